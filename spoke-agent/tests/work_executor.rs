//! The executor check on a real managed cluster (kube-apiserver with RBAC): a work whose
//! executor service account may `create` roles still cannot create a Role granting what the
//! account does not hold, nor a ClusterRole without `escalate` — the agent's dry run as that
//! account is refused, the manifest is `Applied=False` with OCM's "not allowed … permission
//! escalation" message, nothing is written, and the work waits a minute before its next try.
//! Once the account holds those permissions (through its groups, which the impersonated request
//! carries) or may `escalate`, the same work applies; applying again (the dry run now answers
//! `AlreadyExists`) still applies, and taking the permissions away refuses it again. A resource
//! the account may not `create` is refused by the SubjectAccessReviews alone.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::time::Duration;

use ocm_api::condition::{self, ConditionStatus};
use ocm_api::k8s_openapi::api::authorization::v1::SubjectAccessReview;
use ocm_api::k8s_openapi::api::core::v1::ConfigMap;
use ocm_api::k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use ocm_api::kube::api::{DeleteParams, PostParams};
use ocm_api::kube::{Api, Client};
use ocm_api::work::v1::{
    CONDITION_APPLIED, ExecutorSubjectType, Manifest, ManifestWork, ManifestWorkExecutor,
    ManifestWorkExecutorSubject, ManifestWorkSpec, ManifestWorkSubjectServiceAccount,
    ManifestsTemplate,
};
use ocm_spoke_agent::work::executor;
use ocm_spoke_agent::work::reconcile::{Applier, FAILURE_RETRY, WorkOutcome};
use ocm_testenv::Cluster;
use serde_json::{Value, json};

const SA_NAMESPACE: &str = "default";
const SA_NAME: &str = "deployer";
const SA_USER: &str = "system:serviceaccount:default:deployer";

fn executor_account() -> ManifestWorkSubjectServiceAccount {
    ManifestWorkSubjectServiceAccount {
        namespace: SA_NAMESPACE.into(),
        name: SA_NAME.into(),
    }
}

fn work(name: &str, manifests: Vec<Value>) -> ManifestWork {
    let mut work = ManifestWork::new(
        name,
        ManifestWorkSpec {
            workload: ManifestsTemplate {
                manifests: manifests.into_iter().map(Manifest).collect(),
            },
            executor: Some(ManifestWorkExecutor {
                subject: Some(ManifestWorkExecutorSubject {
                    r#type: ExecutorSubjectType::ServiceAccount,
                    service_account: Some(executor_account()),
                }),
            }),
            ..ManifestWorkSpec::default()
        },
    );
    work.metadata.namespace = Some("cluster1".into());
    work.metadata.generation = Some(1);
    work
}

/// The manifest's Applied condition: status and message.
fn applied(outcome: &WorkOutcome, kind: &str, name: &str) -> (ConditionStatus, String) {
    let manifest = outcome
        .status
        .resource_status
        .manifests
        .iter()
        .find(|m| m.resource_meta.kind == kind && m.resource_meta.name == name)
        .unwrap_or_else(|| panic!("no status for {kind} {name}: {:?}", outcome.status));
    let condition = condition::find(&manifest.conditions, CONDITION_APPLIED)
        .unwrap_or_else(|| panic!("{kind} {name} has no Applied: {:?}", manifest.conditions));
    (condition.status, condition.message.clone())
}

fn work_applied(outcome: &WorkOutcome) -> Option<ConditionStatus> {
    condition::find(&outcome.status.conditions, CONDITION_APPLIED).map(|c| c.status)
}

/// Creates an RBAC object from its JSON.
async fn create<K>(api: &Api<K>, object: Value)
where
    K: ocm_api::kube::Resource + Clone + std::fmt::Debug + serde::Serialize,
    K: serde::de::DeserializeOwned,
{
    let object: K = serde_json::from_value(object).unwrap();
    api.create(&PostParams::default(), &object).await.unwrap();
}

/// Waits until the apiserver's authorizer answers `allowed` for the executor's `verb` (RBAC
/// changes reach it through a watch), so what follows sees the permissions as set.
async fn until_executor(
    client: &Client,
    allowed: bool,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: &str,
) {
    let meta = ocm_api::work::v1::ManifestResourceMeta {
        group: group.into(),
        resource: resource.into(),
        namespace: namespace.into(),
        name: "any".into(),
        ..Default::default()
    };
    let reviews: Api<SubjectAccessReview> = Api::all(client.clone());
    let question = executor::review(&executor_account(), &meta, verb);
    ocm_testenv::eventually(
        &format!("the executor {verb} {group}/{resource} allowed={allowed}"),
        Duration::from_secs(20),
        async || {
            let answer = reviews
                .create(&PostParams::default(), &question)
                .await
                .unwrap();
            (answer.status.is_some_and(|s| s.allowed) == allowed).then_some(())
        },
    )
    .await;
}

fn secret_reader_role() -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "secret-reader", "namespace": "default"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]
    })
}

fn node_reader_cluster_role() -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "node-reader"},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]
    })
}

#[tokio::test]
async fn rbac_manifests_are_dry_run_as_the_executor_so_it_cannot_grant_what_it_does_not_hold() {
    let cluster = Cluster::start("work-executor-rbac").await.unwrap();
    let client = cluster.client().unwrap();
    ocm_hub_server::crds::install(&client, &ocm_api::crds::spoke(), Duration::from_secs(30))
        .await
        .unwrap();
    let applier = Applier::new(
        client.clone(),
        "hubhash".into(),
        "agent-1".into(),
        64 * 1024,
    );
    let roles: Api<Role> = Api::namespaced(client.clone(), "default");
    let role_bindings: Api<RoleBinding> = Api::namespaced(client.clone(), "default");
    let cluster_roles: Api<ClusterRole> = Api::all(client.clone());
    let cluster_role_bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let sa_subject =
        json!([{"kind": "ServiceAccount", "name": SA_NAME, "namespace": SA_NAMESPACE}]);

    // A resource the executor may not create: refused by the reviews, nothing written, and
    // the work tried again in a minute, as OCM requeues it.
    let plain = work(
        "plain",
        vec![json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "settings", "namespace": "default"}})],
    );
    let refused = applier.apply(&plain).await.unwrap();
    let (status, message) = applied(&refused, "ConfigMap", "settings");
    assert_eq!(status, ConditionStatus::False);
    assert!(
        message.starts_with("not allowed to apply the resource  configmaps, default settings")
            && message.contains(&format!("the executor {SA_USER} may not create it"))
            && message.ends_with("will try again in 1m0s"),
        "{message}"
    );
    assert_eq!(refused.retry_after, Some(executor::NOT_ALLOWED_RETRY));
    assert!(
        Api::<ConfigMap>::namespaced(client.clone(), "default")
            .get_opt("settings")
            .await
            .unwrap()
            .is_none()
    );
    // Beside an ordinary failure, the work is retried as any failed work is.
    let mut mixed = plain.clone();
    mixed.spec.workload.manifests.push(Manifest(json!({
        "apiVersion": "nowhere.io/v1", "kind": "Gadget",
        "metadata": {"name": "g", "namespace": "default"}
    })));
    assert_eq!(
        applier.apply(&mixed).await.unwrap().retry_after,
        Some(FAILURE_RETRY)
    );

    // The executor may manage roles here and cluster roles, but holds nothing they grant and
    // may not escalate.
    create(
        &roles,
        json!({"metadata": {"name": "role-manager", "namespace": "default"},
               "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"],
                          "verbs": ["get", "create", "update", "patch", "delete"]}]}),
    )
    .await;
    create(
        &role_bindings,
        json!({"metadata": {"name": "role-manager", "namespace": "default"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "role-manager"},
               "subjects": sa_subject}),
    )
    .await;
    create(
        &cluster_roles,
        json!({"metadata": {"name": "clusterrole-manager"},
               "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                          "verbs": ["get", "create", "update", "patch", "delete"]}]}),
    )
    .await;
    create(
        &cluster_role_bindings,
        json!({"metadata": {"name": "clusterrole-manager"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "clusterrole-manager"},
               "subjects": sa_subject}),
    )
    .await;
    until_executor(
        &client,
        true,
        "delete",
        "rbac.authorization.k8s.io",
        "roles",
        "default",
    )
    .await;
    until_executor(
        &client,
        true,
        "delete",
        "rbac.authorization.k8s.io",
        "clusterroles",
        "",
    )
    .await;

    let rbac = work(
        "rbac",
        vec![secret_reader_role(), node_reader_cluster_role()],
    );
    let refused = applier.apply(&rbac).await.unwrap();
    for (kind, name, resource) in [
        ("Role", "secret-reader", "roles, default secret-reader"),
        ("ClusterRole", "node-reader", "clusterroles,  node-reader"),
    ] {
        let (status, message) = applied(&refused, kind, name);
        assert_eq!(status, ConditionStatus::False, "{kind}: {message}");
        assert!(
            message.starts_with(&format!(
                "not allowed to apply the resource rbac.authorization.k8s.io {resource}, \
                 error: permission escalation: "
            )) && message.contains(SA_USER)
                && message.ends_with("will try again in 1m0s"),
            "{kind}: {message}"
        );
    }
    assert_eq!(work_applied(&refused), Some(ConditionStatus::False));
    assert!(refused.failed());
    assert_eq!(refused.retry_after, Some(executor::NOT_ALLOWED_RETRY));
    assert!(
        roles.get_opt("secret-reader").await.unwrap().is_none(),
        "the Role was not created"
    );
    assert!(
        cluster_roles
            .get_opt("node-reader")
            .await
            .unwrap()
            .is_none(),
        "the ClusterRole was not created"
    );

    // The executor's namespace group now holds what the Role grants (the impersonated request
    // carries the account's groups), and the account may escalate cluster roles: applied.
    create(
        &roles,
        json!({"metadata": {"name": "secret-access", "namespace": "default"},
               "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]}),
    )
    .await;
    create(
        &role_bindings,
        json!({"metadata": {"name": "secret-access", "namespace": "default"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-access"},
               "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io",
                             "name": "system:serviceaccounts:default"}]}),
    )
    .await;
    create(
        &cluster_roles,
        json!({"metadata": {"name": "clusterrole-escalator"},
               "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                          "verbs": ["escalate"]}]}),
    )
    .await;
    create(
        &cluster_role_bindings,
        json!({"metadata": {"name": "clusterrole-escalator"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "clusterrole-escalator"},
               "subjects": sa_subject}),
    )
    .await;
    until_executor(&client, true, "list", "", "secrets", "default").await;
    until_executor(
        &client,
        true,
        "escalate",
        "rbac.authorization.k8s.io",
        "clusterroles",
        "",
    )
    .await;

    let granted = applier.apply(&rbac).await.unwrap();
    for (kind, name) in [("Role", "secret-reader"), ("ClusterRole", "node-reader")] {
        assert_eq!(
            applied(&granted, kind, name).0,
            ConditionStatus::True,
            "{kind}: {:?}",
            applied(&granted, kind, name)
        );
    }
    assert_eq!(work_applied(&granted), Some(ConditionStatus::True));
    assert_eq!(granted.retry_after, None);
    let role = roles.get("secret-reader").await.unwrap();
    assert_eq!(
        role.rules.unwrap()[0].resources.as_deref(),
        Some(&["secrets".to_owned()][..])
    );
    assert!(
        cluster_roles
            .get_opt("node-reader")
            .await
            .unwrap()
            .is_some()
    );

    // Both exist now: the dry run answers AlreadyExists, which allows the apply.
    let again = applier.apply(&rbac).await.unwrap();
    assert_eq!(
        work_applied(&again),
        Some(ConditionStatus::True),
        "{:?}",
        again.status
    );
    assert_eq!(again.writes, 0);

    // The permissions taken away: the existing Role is refused again (escalation is checked
    // before existence) and left as it is.
    role_bindings
        .delete("secret-access", &DeleteParams::default())
        .await
        .unwrap();
    until_executor(&client, false, "list", "", "secrets", "default").await;
    let revoked = applier.apply(&rbac).await.unwrap();
    let (status, message) = applied(&revoked, "Role", "secret-reader");
    assert_eq!(status, ConditionStatus::False);
    assert!(message.contains("permission escalation"), "{message}");
    assert_eq!(
        applied(&revoked, "ClusterRole", "node-reader").0,
        ConditionStatus::True
    );
    assert_eq!(revoked.retry_after, Some(executor::NOT_ALLOWED_RETRY));
    assert!(
        roles.get_opt("secret-reader").await.unwrap().is_some(),
        "a refused Role the work applied before is not pruned"
    );
    let recorded = Api::<ocm_api::work::v1::AppliedManifestWork>::all(client.clone())
        .get("hubhash-rbac")
        .await
        .unwrap()
        .status
        .unwrap_or_default()
        .applied_resources;
    assert!(
        recorded
            .iter()
            .any(|r| r.resource == "roles" && r.name == "secret-reader"),
        "{recorded:?}"
    );
    cluster.stop();
}
