//! What the work webhook answers, as OCM's work webhook decides it: the rules of
//! [`ocm_api::work::validation`] on CREATE and UPDATE, then — when `spec.executor` is set and
//! new or changed — the requester's `execute-as` permission for the executor's service account,
//! which needs a SubjectAccessReview ([`Verdict::CheckExecuteAs`]; the API call is the caller's).
//!
//! Refusals read as the apiserver's own: an invalid work is `422 Invalid` with a message such as
//! `ManifestWork.work.open-cluster-management.io "web" is invalid:
//! spec.workload.manifests[0].metadata.name: Required value: …` and one cause per field, as
//! Kubernetes' `NewInvalid` writes them.

use ocm_api::k8s_openapi::api::authentication::v1::UserInfo;
use ocm_api::k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use ocm_api::kube::core::admission::{AdmissionRequest, Operation};
use ocm_api::kube::core::response::{StatusCause, StatusDetails, StatusSummary};
use ocm_api::kube::core::{DynamicObject, Status};
use ocm_api::work::v1::{ManifestWork, ManifestWorkSubjectServiceAccount};
use ocm_api::work::validation::{self, FieldError, Limits};

/// The API group of ManifestWork.
pub const WORK_GROUP: &str = "work.open-cluster-management.io";
/// The resource the webhook validates.
pub const WORK_RESOURCE: &str = "manifestworks";
/// The verb OCM checks for an executor: may the requester have works run as this subject?
pub const EXECUTE_AS: &str = "execute-as";

/// The decision before any API call.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Allow,
    /// Refused, with the Status the requester sees (behind the apiserver's "admission webhook
    /// … denied the request: ").
    Deny(Status),
    /// Allowed if the requester may `execute-as` the executor.
    CheckExecuteAs(ExecuteAs),
}

/// An `execute-as` check: may the requester have a work in `namespace` run as `executor`?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecuteAs {
    pub namespace: String,
    pub executor: ManifestWorkSubjectServiceAccount,
}

impl ExecuteAs {
    /// The SubjectAccessReview OCM's webhook makes: verb `execute-as` on
    /// `work.open-cluster-management.io` `manifestworks`, resource name the executor's user
    /// name, in the work's namespace, for the requester with its groups, UID and extra.
    pub fn review(&self, requester: &UserInfo) -> SubjectAccessReview {
        SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: requester.username.clone(),
                groups: requester.groups.clone(),
                uid: requester.uid.clone(),
                extra: requester.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(WORK_GROUP.to_owned()),
                    resource: Some(WORK_RESOURCE.to_owned()),
                    verb: Some(EXECUTE_AS.to_owned()),
                    namespace: Some(self.namespace.clone()),
                    name: Some(self.executor.user_name()),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        }
    }

    /// The refusal when the review says no, in OCM's words.
    pub fn denied(&self, requester: &UserInfo) -> Status {
        forbidden(format!(
            "user {} cannot manipulate the Manifestwork with executor {}/{} in namespace {}",
            requester.username.as_deref().unwrap_or(""),
            self.executor.namespace,
            self.executor.name,
            self.namespace
        ))
    }
}

/// Judges a request as far as it can without the API.
pub fn judge(request: &AdmissionRequest<DynamicObject>, limits: &Limits) -> Verdict {
    if request.resource.group != WORK_GROUP || request.resource.resource != WORK_RESOURCE {
        return Verdict::Deny(bad_request(format!(
            "this webhook validates {WORK_RESOURCE}.{WORK_GROUP}, not {}.{}",
            request.resource.resource, request.resource.group
        )));
    }
    // Only the main resource is validated (the status subresource carries no spec change).
    if request
        .sub_resource
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        return Verdict::Allow;
    }
    match request.operation {
        Operation::Create | Operation::Update => {}
        Operation::Delete | Operation::Connect => return Verdict::Allow,
    }
    let work = match decode(request.object.as_ref(), "object") {
        Ok(work) => work,
        Err(why) => return Verdict::Deny(bad_request(why)),
    };
    let old = match request.operation {
        Operation::Update => match decode(request.old_object.as_ref(), "oldObject") {
            Ok(old) => Some(old),
            Err(why) => return Verdict::Deny(bad_request(why)),
        },
        _ => None,
    };
    // An update that leaves the spec alone (labels, annotations, finalizers) changes nothing
    // validation looks at: admitted, so a work admitted under other rules can still be
    // relabelled and released by its finalizers.
    if old.as_ref().is_some_and(|old| old.spec == work.spec) {
        return Verdict::Allow;
    }
    if let Err(errors) = validation::validate(&work, limits) {
        let name = work
            .metadata
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| request.name.clone());
        return Verdict::Deny(invalid(&name, &errors));
    }
    // As OCM without its NilExecutorValidating gate: no executor, no check; an executor the
    // update keeps as it was is not checked again.
    let Some(executor) = &work.spec.executor else {
        return Verdict::Allow;
    };
    if old
        .as_ref()
        .is_some_and(|old| old.spec.executor.as_ref() == Some(executor))
    {
        return Verdict::Allow;
    }
    // `validate` has made sure a ServiceAccount subject names its account.
    let Some(account) = executor
        .subject
        .as_ref()
        .and_then(|s| s.service_account.clone())
    else {
        return Verdict::Allow;
    };
    let namespace = request
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| work.metadata.namespace.clone())
        .unwrap_or_default();
    Verdict::CheckExecuteAs(ExecuteAs {
        namespace,
        executor: account,
    })
}

/// The request's object as a ManifestWork, or why it is not one.
fn decode(object: Option<&DynamicObject>, what: &str) -> Result<ManifestWork, String> {
    let object = object.ok_or_else(|| format!("the request has no {what}"))?;
    serde_json::to_value(object)
        .and_then(serde_json::from_value::<ManifestWork>)
        .map_err(|err| format!("the request's {what} is not a ManifestWork: {err}"))
}

/// `422 Invalid`, as Kubernetes' `NewInvalid` writes it: the message lists every field error
/// (one alone, several in brackets), each also a cause with its field and type.
pub fn invalid(name: &str, errors: &[FieldError]) -> Status {
    let listed: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let aggregate = match listed.as_slice() {
        [] => String::new(),
        [one] => format!(": {one}"),
        many => format!(": [{}]", many.join(", ")),
    };
    Status {
        status: Some(StatusSummary::Failure),
        code: 422,
        reason: "Invalid".to_owned(),
        message: format!("ManifestWork.{WORK_GROUP} {name:?} is invalid{aggregate}"),
        metadata: None,
        details: Some(StatusDetails {
            name: name.to_owned(),
            group: WORK_GROUP.to_owned(),
            kind: "ManifestWork".to_owned(),
            uid: String::new(),
            causes: errors
                .iter()
                .map(|e| StatusCause {
                    reason: e.kind.cause_type().to_owned(),
                    message: format!("{}: {}", e.kind, e.detail),
                    field: e.field.clone(),
                })
                .collect(),
            retry_after_seconds: 0,
        }),
    }
}

/// `400 BadRequest`.
pub fn bad_request(message: String) -> Status {
    Status::failure(&message, "BadRequest").with_code(400)
}

/// `403 Forbidden`.
pub fn forbidden(message: String) -> Status {
    Status::failure(&message, "Forbidden").with_code(403)
}

/// `500 InternalError`: the webhook could not decide (the review failed).
pub fn internal(message: String) -> Status {
    Status::failure(&message, "InternalError").with_code(500)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use ocm_api::kube::core::admission::AdmissionReview;
    use serde_json::{Value, json};

    fn deployment(name: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": name, "namespace": "default"}})
    }

    fn work(manifests: Vec<Value>, executor: Option<(&str, &str)>) -> Value {
        let mut spec = json!({"workload": {"manifests": manifests}});
        if let Some((ns, name)) = executor {
            spec["executor"] = json!({"subject": {"type": "ServiceAccount",
                "serviceAccount": {"namespace": ns, "name": name}}});
        }
        json!({"apiVersion": "work.open-cluster-management.io/v1", "kind": "ManifestWork",
               "metadata": {"name": "web", "namespace": "cluster1"}, "spec": spec})
    }

    fn request(
        operation: &str,
        object: Value,
        old: Option<Value>,
    ) -> AdmissionRequest<DynamicObject> {
        let review: AdmissionReview<DynamicObject> = serde_json::from_value(json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "0b7e", "name": "web", "namespace": "cluster1", "operation": operation,
                "kind": {"group": WORK_GROUP, "version": "v1", "kind": "ManifestWork"},
                "resource": {"group": WORK_GROUP, "version": "v1", "resource": WORK_RESOURCE},
                "userInfo": {"username": "alice", "groups": ["team", "system:authenticated"],
                             "uid": "u-1", "extra": {"scopes": ["a"]}},
                "object": object, "oldObject": old,
            }
        }))
        .unwrap();
        review.try_into().unwrap()
    }

    fn denied(verdict: Verdict) -> Status {
        match verdict {
            Verdict::Deny(status) => status,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_work_is_admitted() {
        let req = request("CREATE", work(vec![deployment("a")], None), None);
        assert_eq!(judge(&req, &Limits::default()), Verdict::Allow);
    }

    #[test]
    fn an_invalid_work_is_refused_as_kubernetes_refuses_invalid_objects() {
        let req = request("CREATE", work(vec![], None), None);
        let status = denied(judge(&req, &Limits::default()));
        assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
        assert!(
            status.message.starts_with(
                "ManifestWork.work.open-cluster-management.io \"web\" is invalid: spec.workload.manifests: "
            ),
            "{}",
            status.message
        );
        let details = status.details.unwrap();
        assert_eq!(details.kind, "ManifestWork");
        assert_eq!(details.causes[0].field, "spec.workload.manifests");

        // Several problems: all listed, in brackets, one cause each.
        let nameless = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}});
        let kindless = json!({"apiVersion": "v1", "metadata": {"name": "x"}});
        let req = request("CREATE", work(vec![nameless, kindless], None), None);
        let status = denied(judge(&req, &Limits::default()));
        assert!(
            status
                .message
                .contains("is invalid: [spec.workload.manifests[0].metadata.name: Required value"),
            "{}",
            status.message
        );
        assert!(
            status
                .message
                .contains(", spec.workload.manifests[1].kind: Required value"),
            "{}",
            status.message
        );
        assert!(status.message.ends_with(']'));
        let causes = status.details.unwrap().causes;
        assert_eq!(causes.len(), 2);
        assert_eq!(causes[0].reason, "FieldValueRequired");
        assert!(causes[0].message.starts_with("Required value: "));
    }

    #[test]
    fn the_size_limit_is_the_configured_one() {
        let req = request("CREATE", work(vec![deployment("a")], None), None);
        let small = Limits {
            max_manifests_size: 10,
        };
        let status = denied(judge(&req, &small));
        assert_eq!(
            status.details.unwrap().causes[0].field,
            "spec.workload.manifests"
        );
    }

    #[test]
    fn updates_are_validated_only_when_the_spec_changes() {
        let good = work(vec![deployment("a")], None);
        let bad = work(vec![deployment("a"), deployment("a")], None);
        let req = request("UPDATE", bad.clone(), Some(good.clone()));
        let status = denied(judge(&req, &Limits::default()));
        assert!(
            status.message.contains("spec.workload.manifests[1]"),
            "{}",
            status.message
        );
        // A label on a work stored before a stricter limit: nothing validation looks at changed.
        let mut relabelled = bad.clone();
        relabelled["metadata"]["labels"] = json!({"a": "b"});
        let req = request("UPDATE", relabelled, Some(bad));
        assert_eq!(judge(&req, &Limits::default()), Verdict::Allow);
    }

    #[test]
    fn a_new_or_changed_executor_needs_execute_as() {
        let with = |name| work(vec![deployment("a")], Some(("ns", name)));
        let check = |name: &str| {
            Verdict::CheckExecuteAs(ExecuteAs {
                namespace: "cluster1".into(),
                executor: ManifestWorkSubjectServiceAccount {
                    namespace: "ns".into(),
                    name: name.into(),
                },
            })
        };
        assert_eq!(
            judge(
                &request("CREATE", with("deployer"), None),
                &Limits::default()
            ),
            check("deployer")
        );
        let changed = request("UPDATE", with("other"), Some(with("deployer")));
        assert_eq!(judge(&changed, &Limits::default()), check("other"));
        let added = request(
            "UPDATE",
            with("deployer"),
            Some(work(vec![deployment("a")], None)),
        );
        assert_eq!(judge(&added, &Limits::default()), check("deployer"));
        // Unchanged executor, changed manifests: validated, not checked again.
        let kept = request(
            "UPDATE",
            work(vec![deployment("b")], Some(("ns", "deployer"))),
            Some(with("deployer")),
        );
        assert_eq!(judge(&kept, &Limits::default()), Verdict::Allow);
        // Removing the executor needs no permission.
        let removed = request(
            "UPDATE",
            work(vec![deployment("a")], None),
            Some(with("deployer")),
        );
        assert_eq!(judge(&removed, &Limits::default()), Verdict::Allow);
    }

    #[test]
    fn the_execute_as_review_is_ocms() {
        let req = request(
            "CREATE",
            work(vec![deployment("a")], Some(("ns", "deployer"))),
            None,
        );
        let Verdict::CheckExecuteAs(check) = judge(&req, &Limits::default()) else {
            panic!("expected a check");
        };
        let review = check.review(&req.user_info);
        let attributes = review.spec.resource_attributes.clone().unwrap();
        assert_eq!(attributes.verb.as_deref(), Some("execute-as"));
        assert_eq!(attributes.group.as_deref(), Some(WORK_GROUP));
        assert_eq!(attributes.resource.as_deref(), Some("manifestworks"));
        assert_eq!(attributes.namespace.as_deref(), Some("cluster1"));
        assert_eq!(
            attributes.name.as_deref(),
            Some("system:serviceaccount:ns:deployer")
        );
        assert_eq!(review.spec.user.as_deref(), Some("alice"));
        assert_eq!(review.spec.uid.as_deref(), Some("u-1"));
        assert_eq!(review.spec.groups.as_ref().unwrap().len(), 2);
        assert!(review.spec.extra.as_ref().unwrap().contains_key("scopes"));
        let status = check.denied(&req.user_info);
        assert_eq!(status.code, 403);
        assert_eq!(
            status.message,
            "user alice cannot manipulate the Manifestwork with executor ns/deployer in namespace cluster1"
        );
    }

    #[test]
    fn other_operations_and_the_status_subresource_are_admitted() {
        let mut req = request("DELETE", Value::Null, Some(work(vec![], None)));
        req.object = None;
        assert_eq!(judge(&req, &Limits::default()), Verdict::Allow);
        let mut status = request("UPDATE", work(vec![], None), Some(work(vec![], None)));
        status.sub_resource = Some("status".into());
        assert_eq!(judge(&status, &Limits::default()), Verdict::Allow);
    }

    #[test]
    fn what_is_not_a_manifestwork_is_a_bad_request() {
        let mut req = request("CREATE", work(vec![deployment("a")], None), None);
        req.resource.resource = "pods".into();
        assert_eq!(denied(judge(&req, &Limits::default())).code, 400);
        let mut spec_not_object = work(vec![], None);
        spec_not_object["spec"]["workload"] = json!("nonsense");
        let req = request("CREATE", spec_not_object, None);
        let status = denied(judge(&req, &Limits::default()));
        assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
        assert!(
            status.message.contains("is not a ManifestWork"),
            "{}",
            status.message
        );
        let mut req = request("CREATE", work(vec![], None), None);
        req.object = None;
        assert!(
            denied(judge(&req, &Limits::default()))
                .message
                .contains("no object")
        );
    }
}
