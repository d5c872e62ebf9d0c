//! The webhook configurations that have the apiserver call the hub, trusted through the hub CA
//! and failing closed as OCM's do:
//! - validating: ManifestWork CREATE and UPDATE (not the status subresource) at
//!   `/validate-work` — except an UPDATE that leaves the spec as it was ([`SPEC_CHANGED`]),
//!   which the webhook would admit unread; ManagedCluster CREATE and UPDATE at
//!   `/validate-managedcluster`; ManagedClusterSetBinding CREATE and UPDATE at
//!   `/validate-managedclustersetbinding`;
//! - mutating: ManagedCluster CREATE and UPDATE at `/mutate-managedcluster` (OCM's defaults).

use ocm_api::k8s_openapi::ByteString;
use ocm_api::k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations,
    ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ocm_api::kube::api::{Patch, PatchParams};
use ocm_api::kube::{Api, Client};

use super::review::{WORK_GROUP, WORK_RESOURCE};

/// The path the work webhook serves.
pub const PATH: &str = "/validate-work";
/// The path validating ManagedClusters.
pub const CLUSTER_VALIDATE_PATH: &str = "/validate-managedcluster";
/// The path validating ManagedClusterSetBindings.
pub const BINDING_VALIDATE_PATH: &str = "/validate-managedclustersetbinding";
/// The path defaulting ManagedClusters.
pub const CLUSTER_MUTATE_PATH: &str = "/mutate-managedcluster";
/// The validating configuration's default name.
pub const DEFAULT_NAME: &str = "ocm-rs-work-validator";
/// The mutating configuration's name.
pub const MUTATING_NAME: &str = "ocm-rs-cluster-defaulter";
/// OCM's webhook names for the registration objects.
pub const CLUSTER_WEBHOOK_NAME: &str =
    "managedclustervalidators.admission.cluster.open-cluster-management.io";
pub const BINDING_WEBHOOK_NAME: &str =
    "managedclustersetbindingvalidators.admission.cluster.open-cluster-management.io";
pub const MUTATING_WEBHOOK_NAME: &str =
    "managedclustermutators.admission.cluster.open-cluster-management.io";
/// The webhook's name, OCM's: the apiserver quotes it when it refuses a request
/// (`admission webhook "manifestworkvalidators.admission.work.open-cluster-management.io"
/// denied the request: …`).
pub const WEBHOOK_NAME: &str = "manifestworkvalidators.admission.work.open-cluster-management.io";

/// The match condition sending only CREATEs and spec-changing UPDATEs (CEL): labels,
/// annotations and finalizers are no business of validation ([`super::review::judge`] admits
/// such updates unread), and every work's first status adds the cleanup finalizer — skipping
/// the call saves the apiserver an AdmissionReview round trip per work delivered.
pub const SPEC_CHANGED: &str = "request.operation != 'UPDATE' || !has(object.spec) || \
     !has(oldObject.spec) || object.spec != oldObject.spec";

/// `https://<host>:<port>/validate-work` (an IPv6 address in brackets).
pub fn url(host: &str, port: u16) -> String {
    url_of(host, port, PATH)
}

/// `https://<host>:<port><path>` (an IPv6 address in brackets).
pub fn url_of(host: &str, port: u16, path: &str) -> String {
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("https://[{host}]:{port}{path}")
    } else {
        format!("https://{host}:{port}{path}")
    }
}

/// `url` with its path replaced by `path`.
fn with_path(url: &str, path: &str) -> String {
    match url.strip_suffix(PATH) {
        Some(base) => format!("{base}{path}"),
        None => url.to_owned(),
    }
}

fn client_config(url: String, ca_pem: &str) -> WebhookClientConfig {
    WebhookClientConfig {
        url: Some(url),
        ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
        service: None,
    }
}

fn rule(group: &str, resource: &str, scope: &str) -> RuleWithOperations {
    RuleWithOperations {
        api_groups: Some(vec![group.to_owned()]),
        api_versions: Some(vec!["*".to_owned()]),
        operations: Some(vec!["CREATE".to_owned(), "UPDATE".to_owned()]),
        resources: Some(vec![resource.to_owned()]),
        scope: Some(scope.to_owned()),
    }
}

/// A validating webhook for `resource` at `path`, failing closed.
fn validating(
    name: &str,
    url: String,
    ca_pem: &str,
    rule: RuleWithOperations,
    timeout_seconds: i32,
) -> ValidatingWebhook {
    ValidatingWebhook {
        name: name.to_owned(),
        client_config: client_config(url, ca_pem),
        rules: Some(vec![rule]),
        failure_policy: Some("Fail".to_owned()),
        match_policy: Some("Equivalent".to_owned()),
        side_effects: "None".to_owned(),
        admission_review_versions: vec!["v1".to_owned()],
        timeout_seconds: Some(timeout_seconds),
        ..ValidatingWebhook::default()
    }
}

/// The mutating configuration: ManagedCluster CREATE and UPDATE at the mutating path of
/// `url`'s server, failing closed.
pub fn mutating_configuration(
    url: &str,
    ca_pem: &str,
    timeout_seconds: i32,
) -> MutatingWebhookConfiguration {
    MutatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(MUTATING_NAME.to_owned()),
            ..ObjectMeta::default()
        },
        webhooks: Some(vec![MutatingWebhook {
            name: MUTATING_WEBHOOK_NAME.to_owned(),
            client_config: client_config(with_path(url, CLUSTER_MUTATE_PATH), ca_pem),
            rules: Some(vec![rule(CLUSTERS_GROUP, "managedclusters", "Cluster")]),
            failure_policy: Some("Fail".to_owned()),
            match_policy: Some("Equivalent".to_owned()),
            side_effects: "None".to_owned(),
            admission_review_versions: vec!["v1".to_owned()],
            timeout_seconds: Some(timeout_seconds),
            reinvocation_policy: Some("Never".to_owned()),
            ..MutatingWebhook::default()
        }]),
    }
}

/// Applies the mutating configuration (server-side apply, forced: the hub owns it).
pub async fn apply_mutating(
    client: &Client,
    configuration: &MutatingWebhookConfiguration,
) -> Result<(), ocm_api::kube::Error> {
    let name = configuration.metadata.name.clone().unwrap_or_default();
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .patch(
            &name,
            &PatchParams::apply(crate::crds::FIELD_MANAGER).force(),
            &Patch::Apply(configuration),
        )
        .await
        .map(|_| ())
}

const CLUSTERS_GROUP: &str = super::clusters::CLUSTER_GROUP;

/// The validating configuration: the work webhook at `url`, trusting `ca_pem`, for ManifestWork
/// CREATE and UPDATE changing the spec ([`SPEC_CHANGED`]), then the ManagedCluster and
/// ManagedClusterSetBinding webhooks on the same server; `failurePolicy: Fail`, no side
/// effects, AdmissionReview v1, `timeout_seconds`.
pub fn configuration(
    name: &str,
    url: &str,
    ca_pem: &str,
    timeout_seconds: i32,
) -> ValidatingWebhookConfiguration {
    let strings = |items: &[&str]| Some(items.iter().map(|s| (*s).to_owned()).collect());
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        webhooks: Some(vec![
            ValidatingWebhook {
                name: WEBHOOK_NAME.to_owned(),
                client_config: WebhookClientConfig {
                    url: Some(url.to_owned()),
                    ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
                    service: None,
                },
                rules: Some(vec![RuleWithOperations {
                    api_groups: strings(&[WORK_GROUP]),
                    api_versions: strings(&["*"]),
                    operations: strings(&["CREATE", "UPDATE"]),
                    resources: strings(&[WORK_RESOURCE]),
                    scope: Some("Namespaced".to_owned()),
                }]),
                match_conditions: Some(vec![MatchCondition {
                    name: "spec-changed".to_owned(),
                    expression: SPEC_CHANGED.to_owned(),
                }]),
                failure_policy: Some("Fail".to_owned()),
                match_policy: Some("Equivalent".to_owned()),
                side_effects: "None".to_owned(),
                admission_review_versions: vec!["v1".to_owned()],
                timeout_seconds: Some(timeout_seconds),
                ..ValidatingWebhook::default()
            },
            validating(
                CLUSTER_WEBHOOK_NAME,
                with_path(url, CLUSTER_VALIDATE_PATH),
                ca_pem,
                rule(CLUSTERS_GROUP, "managedclusters", "Cluster"),
                timeout_seconds,
            ),
            validating(
                BINDING_WEBHOOK_NAME,
                with_path(url, BINDING_VALIDATE_PATH),
                ca_pem,
                rule(CLUSTERS_GROUP, "managedclustersetbindings", "Namespaced"),
                timeout_seconds,
            ),
        ]),
    }
}

/// Applies `configuration` (server-side apply, field manager `ocm-rs`, forced: the hub owns it).
pub async fn apply(
    client: &Client,
    configuration: &ValidatingWebhookConfiguration,
) -> Result<(), ocm_api::kube::Error> {
    let name = configuration.metadata.name.clone().unwrap_or_default();
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .patch(
            &name,
            &PatchParams::apply(crate::crds::FIELD_MANAGER).force(),
            &Patch::Apply(configuration),
        )
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn urls_bracket_ipv6_hosts() {
        assert_eq!(
            url("127.0.0.1", 9443),
            "https://127.0.0.1:9443/validate-work"
        );
        assert_eq!(
            url("hub.example", 443),
            "https://hub.example:443/validate-work"
        );
        assert_eq!(url("::1", 9443), "https://[::1]:9443/validate-work");
    }

    #[test]
    fn the_configuration_is_ocms_for_manifestworks() {
        let config = configuration(DEFAULT_NAME, "https://127.0.0.1:1/validate-work", "CA", 10);
        let json = serde_json::to_value(&config).unwrap();
        let webhook = &json["webhooks"][0];
        assert_eq!(json["metadata"]["name"], DEFAULT_NAME);
        assert_eq!(webhook["name"], WEBHOOK_NAME);
        assert_eq!(
            webhook["clientConfig"]["url"],
            "https://127.0.0.1:1/validate-work"
        );
        // Base64 of the PEM text, as the apiserver expects a caBundle.
        assert_eq!(webhook["clientConfig"]["caBundle"], "Q0E=");
        assert_eq!(
            webhook["rules"],
            serde_json::json!([{"apiGroups": ["work.open-cluster-management.io"],
                "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
                "resources": ["manifestworks"], "scope": "Namespaced"}])
        );
        assert_eq!(
            webhook["matchConditions"],
            serde_json::json!([{"name": "spec-changed", "expression": SPEC_CHANGED}])
        );
        assert_eq!(webhook["failurePolicy"], "Fail");
        assert_eq!(webhook["sideEffects"], "None");
        assert_eq!(
            webhook["admissionReviewVersions"],
            serde_json::json!(["v1"])
        );
        assert_eq!(webhook["timeoutSeconds"], 10);
    }
}
