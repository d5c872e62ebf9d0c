//! The double opt-in's hub half on a real apiserver with real RBAC: an unaccepted cluster's
//! agents may only read their own ManagedCluster; accepting grants the namespace, renewal,
//! status, lease and work access (and records HubAcceptedManagedCluster); denying takes the
//! namespace access back; deleting the cluster removes every grant and then the cluster.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::time::Duration;

use futures::FutureExt as _;
use ocm_api::cluster::v1::{CONDITION_HUB_ACCEPTED, ManagedCluster, ManagedClusterSpec};
use ocm_api::condition::{self, ConditionStatus};
use ocm_api::k8s_openapi::api::core::v1::Namespace;
use ocm_api::k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use ocm_api::kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use ocm_api::kube::{Api, Client};
use ocm_hub_server::auth::SubjectAccessReviewAuthorizer;
use ocm_hub_server::registration::acceptance::{self, AcceptanceConfig};
use ocm_hub_server::registration::clusters::SharedClusters;
use ocm_hub_server::registration::rbac;
use ocm_testenv::Cluster;
use ocm_transport::access::AccessRequest;
use ocm_transport::broker::{Authorizer, Identity};
use tokio_util::sync::CancellationToken;

fn agent(cluster: &str) -> Identity {
    Identity {
        user: format!("system:open-cluster-management:{cluster}:agent1"),
        groups: vec![
            format!("system:open-cluster-management:{cluster}"),
            "system:open-cluster-management:managed-clusters".into(),
        ],
    }
}

fn ask(
    verb: &'static str,
    group: &str,
    resource: &str,
    subresource: Option<&'static str>,
    namespace: &str,
    name: Option<&str>,
) -> AccessRequest {
    AccessRequest {
        verb,
        group: group.into(),
        resource: resource.into(),
        subresource,
        namespace: namespace.into(),
        name: name.map(str::to_owned),
    }
}

/// What an agent of cluster1 asks the broker for, and whether each should be allowed.
fn agent_requests(accepted: bool) -> Vec<(AccessRequest, bool)> {
    vec![
        (
            ask(
                "watch",
                "cluster.open-cluster-management.io",
                "managedclusters",
                None,
                "cluster1",
                Some("cluster1"),
            ),
            true,
        ),
        (
            ask(
                "update",
                "cluster.open-cluster-management.io",
                "managedclusters",
                Some("status"),
                "cluster1",
                Some("cluster1"),
            ),
            accepted,
        ),
        (
            ask(
                "renew",
                "register.open-cluster-management.io",
                "managedclusters",
                Some("clientcertificates"),
                "",
                Some("cluster1"),
            ),
            accepted,
        ),
        (
            ask(
                "update",
                "coordination.k8s.io",
                "leases",
                None,
                "cluster1",
                None,
            ),
            accepted,
        ),
        (
            ask(
                "watch",
                "work.open-cluster-management.io",
                "manifestworks",
                None,
                "cluster1",
                None,
            ),
            accepted,
        ),
        (
            ask(
                "update",
                "work.open-cluster-management.io",
                "manifestworks",
                Some("status"),
                "cluster1",
                None,
            ),
            accepted,
        ),
        (
            ask("create", "events.k8s.io", "events", None, "cluster1", None),
            accepted,
        ),
        // Never another cluster's.
        (
            ask(
                "watch",
                "cluster.open-cluster-management.io",
                "managedclusters",
                None,
                "cluster2",
                Some("cluster2"),
            ),
            false,
        ),
        (
            ask(
                "update",
                "coordination.k8s.io",
                "leases",
                None,
                "cluster2",
                None,
            ),
            false,
        ),
    ]
}

/// Waits until RBAC answers every request as expected (RBAC reaches the authorizer a moment
/// after the write).
async fn until_rbac(authorizer: &SubjectAccessReviewAuthorizer, accepted: bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut wrong = Vec::new();
        for (request, expected) in agent_requests(accepted) {
            if authorizer
                .authorize(&agent("cluster1"), &request)
                .await
                .unwrap()
                != expected
            {
                wrong.push(format!(
                    "{} {}/{:?} in {:?}: expected {expected}",
                    request.verb, request.resource, request.subresource, request.namespace
                ));
            }
        }
        if wrong.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "RBAC still wrong (accepted={accepted}):\n{}",
            wrong.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn eventually<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    ocm_testenv::eventually(what, Duration::from_secs(20), check).await
}

/// Server-side applies of RBAC objects and namespaces the apiserver has served (its own request
/// counter): the acceptance controller's grant writes.
async fn grant_writes(kube: &Client) -> u64 {
    let request = ocm_api::kube::core::Request::new("")
        .get("metrics", &ocm_api::kube::api::GetParams::default())
        .unwrap();
    let metrics = kube.request_text(request).await.unwrap();
    metrics
        .lines()
        .filter(|line| {
            line.starts_with("apiserver_request_total{")
                && line.contains(r#"verb="APPLY""#)
                && [
                    "rolebindings",
                    "clusterroles",
                    "clusterrolebindings",
                    "namespaces",
                ]
                .iter()
                .any(|r| line.contains(&format!(r#"resource="{r}""#)))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Someone other than the hub takes every rule out of `cluster`'s ClusterRole.
async fn empty_cluster_role(roles: &Api<ClusterRole>, cluster: &str) {
    roles
        .patch(
            &rbac::cluster_role_name(cluster),
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"rules": []})),
        )
        .await
        .unwrap();
}

async fn accepted_condition(clusters: &Api<ManagedCluster>) -> Option<ConditionStatus> {
    let cluster = clusters.get("cluster1").await.ok()?;
    let conditions = cluster.status.map(|s| s.conditions).unwrap_or_default();
    condition::find(&conditions, CONDITION_HUB_ACCEPTED).map(|c| c.status)
}

async fn set_accepted(clusters: &Api<ManagedCluster>, accepted: bool) {
    clusters
        .patch(
            "cluster1",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"hubAcceptsClient": accepted}})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn acceptance_grants_denial_revokes_and_deletion_cleans_up() {
    let (hub, kube) = start_hub("accept").await;
    let cancel = CancellationToken::new();
    let controller = start_acceptance(&kube, &cancel);
    let authorizer = SubjectAccessReviewAuthorizer::new(kube.clone(), Duration::ZERO);
    let clusters: Api<ManagedCluster> = Api::all(kube.clone());
    let roles: Api<ClusterRole> = Api::all(kube.clone());
    let bindings: Api<RoleBinding> = Api::namespaced(kube.clone(), "cluster1");

    // Joined, not accepted: read its own ManagedCluster, nothing else, and no namespace.
    clusters
        .create(
            &PostParams::default(),
            &ManagedCluster::new("cluster1", ManagedClusterSpec::default()),
        )
        .await
        .unwrap();
    until_rbac(&authorizer, false).await;
    assert!(
        Api::<Namespace>::all(kube.clone())
            .get_opt("cluster1")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(accepted_condition(&clusters).await, None);

    // Accepted.
    set_accepted(&clusters, true).await;
    until_rbac(&authorizer, true).await;
    eventually("HubAcceptedManagedCluster=True", async || {
        (accepted_condition(&clusters).await == Some(ConditionStatus::True)).then_some(())
    })
    .await;
    // Measured from here: the grants were applied before the condition was recorded, and the
    // hub's own applies must not come back to it as drift.
    let grants_before = grant_writes(&kube).await;
    let namespace = Api::<Namespace>::all(kube.clone())
        .get("cluster1")
        .await
        .unwrap();
    assert_eq!(
        namespace.metadata.labels.unwrap()["open-cluster-management.io/cluster-name"],
        "cluster1"
    );
    let work = bindings
        .get(&rbac::work_role_binding_name("cluster1"))
        .await
        .unwrap();
    assert_eq!(
        work.metadata.finalizers,
        Some(vec![rbac::WORK_CLEANUP_FINALIZER.to_owned()])
    );
    let finalizers = clusters
        .get("cluster1")
        .await
        .unwrap()
        .metadata
        .finalizers
        .unwrap();
    assert!(finalizers.contains(&acceptance::CLEANUP_FINALIZER.to_owned()));

    // Status changes (availability, the agent's reports) wake the controller but apply no
    // grant again: at thousands of clusters those writes would swamp the apiserver.
    for i in 0..5 {
        clusters
            .patch_status(
                "cluster1",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"status": {"version": {"kubernetes": format!("v1.36.{i}")}}})),
            )
            .await
            .unwrap();
    }
    // Absence is what is asserted: give the controller the time to react.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        grant_writes(&kube).await,
        grants_before,
        "status changes (or the hub's own applies) re-applied the cluster's grants"
    );

    // Drift: someone deletes the registration RoleBinding and empties the ClusterRole. The
    // periodic re-apply is an hour away; the hub puts both back at once.
    bindings
        .delete(
            &rbac::registration_role_binding_name("cluster1"),
            &DeleteParams::default(),
        )
        .await
        .unwrap();
    empty_cluster_role(&roles, "cluster1").await;
    eventually(
        "the deleted RoleBinding and the emptied ClusterRole back",
        async || {
            let binding = bindings
                .get_opt(&rbac::registration_role_binding_name("cluster1"))
                .await
                .unwrap();
            let role = roles
                .get(&rbac::cluster_role_name("cluster1"))
                .await
                .unwrap();
            (binding.is_some() && role.rules.is_some_and(|r| !r.is_empty())).then_some(())
        },
    )
    .await;
    until_rbac(&authorizer, true).await;

    // Denied: the namespace access goes, the namespace stays.
    set_accepted(&clusters, false).await;
    until_rbac(&authorizer, false).await;
    eventually("HubAcceptedManagedCluster=False", async || {
        (accepted_condition(&clusters).await == Some(ConditionStatus::False)).then_some(())
    })
    .await;
    assert!(
        bindings
            .get_opt(&rbac::registration_role_binding_name("cluster1"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        bindings
            .get_opt(&rbac::work_role_binding_name("cluster1"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<Namespace>::all(kube.clone())
            .get_opt("cluster1")
            .await
            .unwrap()
            .is_some()
    );

    // Accepted again, then deleted: every grant goes, then the ManagedCluster itself.
    set_accepted(&clusters, true).await;
    until_rbac(&authorizer, true).await;
    clusters
        .delete("cluster1", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the ManagedCluster to go", async || {
        clusters
            .get_opt("cluster1")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        roles
            .get_opt(&rbac::cluster_role_name("cluster1"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        bindings
            .get_opt(&rbac::registration_role_binding_name("cluster1"))
            .await
            .unwrap()
            .is_none()
    );
    eventually("the agent's access to end", async || {
        let allowed = authorizer
            .authorize(&agent("cluster1"), &agent_requests(true)[0].0)
            .await
            .unwrap();
        (!allowed).then_some(())
    })
    .await;

    stop_acceptance(&cancel, controller).await;
    hub.stop();
}

/// A hub apiserver with OCM's CRDs, and a client of it.
async fn start_hub(name: &str) -> (Cluster, Client) {
    let hub = Cluster::start(name).await.unwrap();
    let kube: Client = hub.client().unwrap();
    ocm_hub_server::crds::install(&kube, &ocm_api::crds::hub(), Duration::from_secs(30))
        .await
        .unwrap();
    (hub, kube)
}

async fn stop_acceptance(cancel: &CancellationToken, controller: tokio::task::JoinHandle<()>) {
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), controller)
        .await
        .unwrap()
        .unwrap();
}

/// Starts the acceptance controller (on a shared cluster cache of its own) until `cancel`.
fn start_acceptance(kube: &Client, cancel: &CancellationToken) -> tokio::task::JoinHandle<()> {
    let shared = SharedClusters::new();
    let accepting = shared.feed();
    tokio::spawn(shared.run(
        kube.clone(),
        cancel.clone(),
        vec![
                acceptance::run(
                    kube.clone(),
                    accepting,
                    AcceptanceConfig::default(),
                    cancel.clone(),
                )
                .boxed(),
            ],
    ))
}

#[tokio::test]
async fn a_restarted_hub_applies_again_only_the_grants_that_no_longer_stand() {
    let (hub, kube) = start_hub("accept-restart").await;
    let clusters: Api<ManagedCluster> = Api::all(kube.clone());
    let roles: Api<ClusterRole> = Api::all(kube.clone());
    let names = ["cluster1", "cluster2"];
    let cancel = CancellationToken::new();
    let controller = start_acceptance(&kube, &cancel);
    for name in names {
        let spec = ManagedClusterSpec {
            hub_accepts_client: true,
            ..ManagedClusterSpec::default()
        };
        clusters
            .create(&PostParams::default(), &ManagedCluster::new(name, spec))
            .await
            .unwrap();
    }
    for name in names {
        eventually("both clusters accepted", async || {
            let cluster = clusters.get(name).await.ok()?;
            let conditions = cluster.status.map(|s| s.conditions).unwrap_or_default();
            (condition::find(&conditions, CONDITION_HUB_ACCEPTED)?.status == ConditionStatus::True)
                .then_some(())
        })
        .await;
    }
    stop_acceptance(&cancel, controller).await;

    // While the hub is down, someone empties cluster2's ClusterRole.
    empty_cluster_role(&roles, "cluster2").await;
    let grants_before = grant_writes(&kube).await;

    let cancel = CancellationToken::new();
    let controller = start_acceptance(&kube, &cancel);
    eventually("cluster2's ClusterRole back", async || {
        let role = roles.get(&rbac::cluster_role_name("cluster2")).await.ok()?;
        role.rules.is_some_and(|r| !r.is_empty()).then_some(())
    })
    .await;
    // Absence is what is asserted for cluster1: give the controller the time to act.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // cluster2's five grants (ClusterRole, ClusterRoleBinding, namespace, two RoleBindings);
    // nothing for cluster1 or the shared roles, which stood. Before, a restart applied all 12.
    assert_eq!(grant_writes(&kube).await - grants_before, 5);

    stop_acceptance(&cancel, controller).await;
    hub.stop();
}
