//! The ValidatingWebhookConfiguration that has the apiserver call the work webhook: ManifestWork
//! CREATE and UPDATE (not the status subresource) sent to `https://<host>:<port>/validate-work`,
//! trusted through the hub CA, failing closed as OCM's does — except an UPDATE that leaves
//! the spec as it was ([`SPEC_CHANGED`]), which the webhook would admit unread.

use ocm_api::k8s_openapi::ByteString;
use ocm_api::k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, RuleWithOperations, ValidatingWebhook, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ocm_api::kube::api::{Patch, PatchParams};
use ocm_api::kube::{Api, Client};

use super::review::{WORK_GROUP, WORK_RESOURCE};

/// The path the webhook serves.
pub const PATH: &str = "/validate-work";
/// The configuration's default name.
pub const DEFAULT_NAME: &str = "ocm-rs-work-validator";
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
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("https://[{host}]:{port}{PATH}")
    } else {
        format!("https://{host}:{port}{PATH}")
    }
}

/// The configuration: one webhook at `url`, trusting `ca_pem`, for ManifestWork CREATE and
/// UPDATE changing the spec ([`SPEC_CHANGED`]), `failurePolicy: Fail`, no side effects,
/// AdmissionReview v1, `timeout_seconds`.
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
        webhooks: Some(vec![ValidatingWebhook {
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
        }]),
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
