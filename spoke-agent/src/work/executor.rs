//! Executor checks (OCM's `pkg/work/spoke/auth/basic`): a
//! work naming an executor service account is applied only where that account may act, as
//! OCM's agent checks before it applies with its own identity:
//!
//! - a SubjectAccessReview on the managed cluster for each verb the apply needs (`create`,
//!   `update`, `patch`, `get`, and `delete` when the work owns the resource);
//! - for RBAC kinds (roles, role bindings, cluster roles, cluster role bindings) also a dry-run
//!   create of the manifest **as** the service account, since a review cannot see privilege
//!   escalation: the apiserver refuses a Role granting more than its creator holds (unless it
//!   may `escalate`), and a binding to a role it does not hold (unless it may `bind`). A
//!   `Forbidden` answer refuses the manifest; `AlreadyExists` allows it, as the apiserver checks
//!   escalation before existence.
//!
//! The dry run goes through the agent's own client with `Impersonate-User:
//! system:serviceaccount:<ns>:<name>` on that one request, as OCM's impersonating client sends
//! it: the apiserver then adds the account's groups (`system:serviceaccounts`,
//! `system:serviceaccounts:<ns>`, `system:authenticated`), so the agent needs `impersonate` on
//! service accounts only, not on groups.
//!
//! A refusal is [`ExecutorError::NotAllowed`], worded as OCM words it and retried after
//! [`NOT_ALLOWED_RETRY`]; a check that could not be made is [`ExecutorError::Check`].

use std::time::Duration;

use http::{HeaderName, HeaderValue};
use ocm_api::k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use ocm_api::kube::api::{ApiResource, DynamicObject, PostParams};
use ocm_api::kube::core::Request;
use ocm_api::kube::{Api, Client, Resource as _};
use ocm_api::work::v1::{ManifestResourceMeta, ManifestWorkSubjectServiceAccount};
use serde_json::Value;

/// How long a work whose executor was refused waits before it is tried again (OCM: 60 s).
pub const NOT_ALLOWED_RETRY: Duration = Duration::from_secs(60);

/// The API group whose kinds are also checked for privilege escalation.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The RBAC resources a dry run checks.
const RBAC_RESOURCES: [&str; 4] = [
    "roles",
    "rolebindings",
    "clusterroles",
    "clusterrolebindings",
];

/// The header that makes one request act as another user.
const IMPERSONATE_USER: HeaderName = HeaderName::from_static("impersonate-user");

/// Why an executor may not apply a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// A SubjectAccessReview refused this verb.
    Verb { executor: String, verb: String },
    /// The impersonated dry-run create was forbidden; the apiserver's message.
    Escalation { message: String },
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Verb { executor, verb } => {
                write!(f, ": the executor {executor} may not {verb} it")
            }
            Self::Escalation { message } => {
                write!(f, ", error: permission escalation: {message}")
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The executor may not apply the resource: retried after [`NOT_ALLOWED_RETRY`].
    #[error(
        "not allowed to apply the resource {resource}{denial}, will try again in {}",
        go_duration(NOT_ALLOWED_RETRY)
    )]
    NotAllowed {
        /// OCM's `<group> <resource>, <namespace> <name>`.
        resource: String,
        denial: Denial,
    },
    /// Whether it may could not be found out.
    #[error("checking whether the executor {executor} may apply the resource {resource}: {source}")]
    Check {
        executor: String,
        resource: String,
        #[source]
        source: Box<ocm_api::kube::Error>,
    },
}

impl ExecutorError {
    /// When the work is to be tried again for this error, if it is a refusal (other errors
    /// take the agent's usual failure retry).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::NotAllowed { .. } => Some(NOT_ALLOWED_RETRY),
            Self::Check { .. } => None,
        }
    }
}

/// The verbs applying a resource needs, in OCM's order.
pub fn verbs(owned: bool) -> &'static [&'static str] {
    if owned {
        &["create", "update", "patch", "get", "delete"]
    } else {
        &["create", "update", "patch", "get"]
    }
}

/// The groups a service account's requests carry.
pub fn groups(account: &ManifestWorkSubjectServiceAccount) -> Vec<String> {
    vec![
        "system:serviceaccounts".to_owned(),
        format!("system:serviceaccounts:{}", account.namespace),
        "system:authenticated".to_owned(),
    ]
}

/// The review asking whether `account` may `verb` the resource `meta` names.
pub fn review(
    account: &ManifestWorkSubjectServiceAccount,
    meta: &ManifestResourceMeta,
    verb: &str,
) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(account.user_name()),
            groups: Some(groups(account)),
            resource_attributes: Some(ResourceAttributes {
                group: Some(meta.group.clone()),
                version: Some(meta.version.clone()).filter(|v| !v.is_empty()),
                resource: Some(meta.resource.clone()),
                namespace: Some(meta.namespace.clone()).filter(|n| !n.is_empty()),
                name: Some(meta.name.clone()),
                verb: Some(verb.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    }
}

/// Whether `meta` is of a kind whose apply is also dry-run as the executor.
pub fn is_rbac(meta: &ManifestResourceMeta) -> bool {
    meta.group == RBAC_GROUP && RBAC_RESOURCES.contains(&meta.resource.as_str())
}

/// OCM's words for the resource: `<group> <resource>, <namespace> <name>`.
pub fn describe(meta: &ManifestResourceMeta) -> String {
    format!(
        "{} {}, {} {}",
        meta.group, meta.resource, meta.namespace, meta.name
    )
}

/// The dry-run create of `manifest` as `account`: a POST to the resource `meta` names (its
/// namespace, if any) with `dryRun=All` and `Impersonate-User`, the manifest without its UID
/// (as OCM clears it) as the body.
pub fn dry_run_create(
    account: &ManifestWorkSubjectServiceAccount,
    meta: &ManifestResourceMeta,
    manifest: &Value,
) -> Result<http::Request<Vec<u8>>, ocm_api::kube::Error> {
    let resource = ApiResource {
        group: meta.group.clone(),
        version: meta.version.clone(),
        api_version: if meta.group.is_empty() {
            meta.version.clone()
        } else {
            format!("{}/{}", meta.group, meta.version)
        },
        kind: meta.kind.clone(),
        plural: meta.resource.clone(),
    };
    let namespace = Some(meta.namespace.as_str()).filter(|n| !n.is_empty());
    let mut body = manifest.clone();
    if let Some(metadata) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("uid");
    }
    let body = serde_json::to_vec(&body).map_err(ocm_api::kube::Error::SerdeError)?;
    let mut request = Request::new(DynamicObject::url_path(&resource, namespace))
        .create(
            &PostParams {
                dry_run: true,
                field_manager: None,
            },
            body,
        )
        .map_err(ocm_api::kube::Error::BuildRequest)?;
    let user = HeaderValue::from_str(&account.user_name())
        .map_err(|e| ocm_api::kube::Error::HttpError(http::Error::from(e)))?;
    request.headers_mut().insert(IMPERSONATE_USER, user);
    Ok(request)
}

/// Whether `account` may apply `manifest` (the resource `meta` names, `owned` by the work):
/// `Ok(())`, or why not.
pub async fn check(
    client: &Client,
    account: &ManifestWorkSubjectServiceAccount,
    meta: &ManifestResourceMeta,
    manifest: &Value,
    owned: bool,
) -> Result<(), ExecutorError> {
    let failed = |source: ocm_api::kube::Error| ExecutorError::Check {
        executor: account.user_name(),
        resource: describe(meta),
        source: Box::new(source),
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    for verb in verbs(owned) {
        let answer = api
            .create(&PostParams::default(), &review(account, meta, verb))
            .await
            .map_err(failed)?;
        if !answer.status.is_some_and(|s| s.allowed) {
            return Err(ExecutorError::NotAllowed {
                resource: describe(meta),
                denial: Denial::Verb {
                    executor: account.user_name(),
                    verb: (*verb).to_owned(),
                },
            });
        }
    }
    if !is_rbac(meta) {
        return Ok(());
    }
    let request = dry_run_create(account, meta, manifest).map_err(failed)?;
    match client.request_text(request).await {
        Ok(_) => Ok(()),
        // The apiserver checks escalation before existence: the create itself would be allowed.
        Err(ocm_api::kube::Error::Api(status)) if status.is_already_exists() => Ok(()),
        Err(ocm_api::kube::Error::Api(status)) if status.is_forbidden() => {
            Err(ExecutorError::NotAllowed {
                resource: describe(meta),
                denial: Denial::Escalation {
                    message: status.message,
                },
            })
        }
        Err(source) => Err(failed(source)),
    }
}

/// A whole-second duration as Go's `time.Duration.String` writes it (`1m0s`, `30s`, `1h0m0s`).
fn go_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployer() -> ManifestWorkSubjectServiceAccount {
        ManifestWorkSubjectServiceAccount {
            namespace: "apps".into(),
            name: "deployer".into(),
        }
    }

    fn meta(group: &str, resource: &str, namespace: &str) -> ManifestResourceMeta {
        ManifestResourceMeta {
            group: group.into(),
            version: "v1".into(),
            kind: "Kind".into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: "site".into(),
            ..ManifestResourceMeta::default()
        }
    }

    #[test]
    fn the_review_asks_as_the_service_account_for_one_verb_on_one_object() {
        let asked = review(&deployer(), &meta("apps", "deployments", "web"), "patch").spec;
        assert_eq!(
            asked.user.as_deref(),
            Some("system:serviceaccount:apps:deployer")
        );
        assert_eq!(
            asked.groups.unwrap_or_default(),
            [
                "system:serviceaccounts",
                "system:serviceaccounts:apps",
                "system:authenticated"
            ]
        );
        let attributes = asked.resource_attributes.unwrap_or_default();
        assert_eq!(
            (
                attributes.verb.as_deref(),
                attributes.group.as_deref(),
                attributes.version.as_deref(),
                attributes.resource.as_deref(),
                attributes.namespace.as_deref(),
                attributes.name.as_deref()
            ),
            (
                Some("patch"),
                Some("apps"),
                Some("v1"),
                Some("deployments"),
                Some("web"),
                Some("site")
            )
        );
        assert!(verbs(true).contains(&"delete") && !verbs(false).contains(&"delete"));
        let cluster_scoped = review(&deployer(), &meta(RBAC_GROUP, "clusterroles", ""), "get");
        assert_eq!(
            cluster_scoped
                .spec
                .resource_attributes
                .unwrap_or_default()
                .namespace,
            None
        );
    }

    #[test]
    fn only_the_four_rbac_kinds_are_dry_run() {
        for resource in RBAC_RESOURCES {
            assert!(is_rbac(&meta(RBAC_GROUP, resource, "")), "{resource}");
        }
        assert!(!is_rbac(&meta("", "roles", "web")), "core group");
        assert!(!is_rbac(&meta(RBAC_GROUP, "rolebindings/status", "web")));
        assert!(!is_rbac(&meta("example.com", "clusterroles", "")));
        assert!(!is_rbac(&meta("apps", "deployments", "web")));
    }

    #[test]
    fn the_dry_run_posts_the_manifest_without_its_uid_as_the_service_account() {
        let manifest = serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "site", "namespace": "web", "uid": "stale"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
        });
        let request =
            dry_run_create(&deployer(), &meta(RBAC_GROUP, "roles", "web"), &manifest).unwrap();
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(
            request.uri().path(),
            "/apis/rbac.authorization.k8s.io/v1/namespaces/web/roles"
        );
        assert!(
            request
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|p| p == "dryRun=All")),
            "{}",
            request.uri()
        );
        assert_eq!(
            request
                .headers()
                .get_all("impersonate-user")
                .iter()
                .collect::<Vec<_>>(),
            ["system:serviceaccount:apps:deployer"]
        );
        assert!(request.headers().get("impersonate-group").is_none());
        let body: Value = serde_json::from_slice(request.body()).unwrap();
        assert_eq!(body.pointer("/metadata/uid"), None);
        assert_eq!(body["rules"], manifest["rules"]);

        let cluster_role = dry_run_create(
            &deployer(),
            &meta(RBAC_GROUP, "clusterroles", ""),
            &serde_json::json!({"kind": "ClusterRole", "metadata": {"name": "site"}}),
        )
        .unwrap();
        assert_eq!(
            cluster_role.uri().path(),
            "/apis/rbac.authorization.k8s.io/v1/clusterroles"
        );
    }

    #[test]
    fn a_refusal_is_worded_as_ocm_words_it_and_retried_after_a_minute() {
        let refused = ExecutorError::NotAllowed {
            resource: describe(&meta(RBAC_GROUP, "roles", "web")),
            denial: Denial::Escalation {
                message: "attempting to grant RBAC permissions not currently held".into(),
            },
        };
        assert_eq!(
            refused.to_string(),
            "not allowed to apply the resource rbac.authorization.k8s.io roles, web site, \
             error: permission escalation: attempting to grant RBAC permissions not currently \
             held, will try again in 1m0s"
        );
        assert_eq!(refused.retry_after(), Some(Duration::from_secs(60)));
        let verb = ExecutorError::NotAllowed {
            resource: describe(&meta("", "configmaps", "web")),
            denial: Denial::Verb {
                executor: "system:serviceaccount:apps:deployer".into(),
                verb: "create".into(),
            },
        };
        assert_eq!(
            verb.to_string(),
            "not allowed to apply the resource  configmaps, web site: the executor \
             system:serviceaccount:apps:deployer may not create it, will try again in 1m0s"
        );
        let unchecked = ExecutorError::Check {
            executor: "system:serviceaccount:apps:deployer".into(),
            resource: describe(&meta("", "configmaps", "web")),
            source: Box::new(ocm_api::kube::Error::LinesCodecMaxLineLengthExceeded),
        };
        assert_eq!(unchecked.retry_after(), None);
        assert_eq!(
            [30, 60, 90, 3600, 3725].map(|s| go_duration(Duration::from_secs(s))),
            ["30s", "1m0s", "1m30s", "1h0m0s", "1h2m5s"]
        );
    }
}
