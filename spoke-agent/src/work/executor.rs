//! Executor checks (ocm-behaviours.md §2.2 "Executor"): a work naming an executor service
//! account is applied only where that account may act — a SubjectAccessReview on the managed
//! cluster for each verb the apply needs (`get`, `create`, `update`, `patch`, and `delete` when
//! the work owns the resource) — as OCM's agent checks before it applies with its own identity.

use ocm_api::k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use ocm_api::kube::api::PostParams;
use ocm_api::kube::{Api, Client};
use ocm_api::work::v1::{ManifestResourceMeta, ManifestWorkSubjectServiceAccount};

/// The verbs applying a resource needs.
pub fn verbs(owned: bool) -> &'static [&'static str] {
    if owned {
        &["get", "create", "update", "patch", "delete"]
    } else {
        &["get", "create", "update", "patch"]
    }
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
            groups: Some(vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{}", account.namespace),
                "system:authenticated".to_owned(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                group: Some(meta.group.clone()),
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

/// Whether `account` may apply `meta`: `Ok(())`, or the first verb it may not use, in OCM's
/// words.
pub async fn check(
    client: &Client,
    account: &ManifestWorkSubjectServiceAccount,
    meta: &ManifestResourceMeta,
    owned: bool,
) -> Result<(), String> {
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    for verb in verbs(owned) {
        let answer = api
            .create(&PostParams::default(), &review(account, meta, verb))
            .await
            .map_err(|e| format!("checking the executor's permission: {e}"))?;
        if !answer.status.is_some_and(|s| s.allowed) {
            return Err(format!(
                "not allowed to apply the resource {} {}, {} {}: the executor {} may not {verb} it",
                meta.group,
                meta.resource,
                meta.namespace,
                meta.name,
                account.user_name()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_review_asks_as_the_service_account_for_one_verb_on_one_object() {
        let account = ManifestWorkSubjectServiceAccount {
            namespace: "apps".into(),
            name: "deployer".into(),
        };
        let meta = ManifestResourceMeta {
            group: "apps".into(),
            resource: "deployments".into(),
            namespace: "web".into(),
            name: "site".into(),
            ..ManifestResourceMeta::default()
        };
        let asked = review(&account, &meta, "patch").spec;
        assert_eq!(
            asked.user.as_deref(),
            Some("system:serviceaccount:apps:deployer")
        );
        assert!(
            asked
                .groups
                .unwrap_or_default()
                .contains(&"system:serviceaccounts:apps".to_owned())
        );
        let attributes = asked.resource_attributes.unwrap_or_default();
        assert_eq!(
            (
                attributes.verb.as_deref(),
                attributes.resource.as_deref(),
                attributes.namespace.as_deref()
            ),
            (Some("patch"), Some("deployments"), Some("web"))
        );
        assert!(verbs(true).contains(&"delete") && !verbs(false).contains(&"delete"));
    }
}
