//! Cluster removal on a real apiserver, with OCM's own ManifestWork and ManagedClusterAddOn
//! CRDs (as OCM's API module v1.3.0 publishes them): deleting a ManagedCluster deletes its
//! add-ons, then its ManifestWorks in cleanup-priority order, waiting for what the agent still
//! holds; the work RoleBinding — the agent's access to finish — goes last, then the cluster.
//! And auto-acceptance: every cluster accepted once, on first sight; a later denial sticks.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::time::Duration;

use futures::FutureExt as _;
use ocm_api::cluster::v1::{CONDITION_HUB_ACCEPTED, ManagedCluster, ManagedClusterSpec};
use ocm_api::condition::{self, ConditionStatus};
use ocm_api::k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use ocm_api::k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use ocm_api::kube::api::{
    ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams,
};
use ocm_api::kube::{Api, Client};
use ocm_hub_server::registration::acceptance::{self, AUTO_ACCEPTED_ANNOTATION, AcceptanceConfig};
use ocm_hub_server::registration::cleanup::{self, CONDITION_DELETING, RESOURCE_CLEANUP_FINALIZER};
use ocm_hub_server::registration::clusters::SharedClusters;
use ocm_hub_server::registration::rbac;
use ocm_testenv::Cluster;
use tokio_util::sync::CancellationToken;

async fn eventually<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    ocm_testenv::eventually(what, Duration::from_secs(30), check).await
}

/// OCM's published CRD in `file`, read from OCM's API module as cached (never copied here).
fn upstream_crd(file: &str) -> CustomResourceDefinition {
    let dir = ocm_testbins::assets::reference_crds_dir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("OCM's reference CRD {}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap()
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn works_resource() -> ApiResource {
    resource(
        "work.open-cluster-management.io",
        "v1",
        "ManifestWork",
        "manifestworks",
    )
}

fn addons_resource() -> ApiResource {
    resource(
        "addon.open-cluster-management.io",
        "v1alpha1",
        "ManagedClusterAddOn",
        "managedclusteraddons",
    )
}

/// An object of `kind` in cluster1's namespace, held by the agent's finalizer when `held`.
async fn create(
    api: &Api<DynamicObject>,
    kind: &ApiResource,
    name: &str,
    priority: Option<&str>,
    held: bool,
) {
    let mut object = DynamicObject::new(name, kind).within("cluster1");
    if let Some(priority) = priority {
        object.metadata.annotations = Some(
            [(
                cleanup::CLEANUP_PRIORITY_ANNOTATION.to_owned(),
                priority.to_owned(),
            )]
            .into(),
        );
    }
    if held {
        object.metadata.finalizers = Some(vec![
            "cluster.open-cluster-management.io/manifest-work-cleanup".to_owned(),
        ]);
    }
    object.data = serde_json::json!({"spec": {}});
    api.create(&PostParams::default(), &object).await.unwrap();
}

/// What the agent does once it has removed what a work applied.
async fn release(api: &Api<DynamicObject>, name: &str) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
}

async fn deleting(api: &Api<DynamicObject>, name: &str) -> Option<bool> {
    api.get_opt(name)
        .await
        .unwrap()
        .map(|o| o.metadata.deletion_timestamp.is_some())
}

fn deleting_condition(cluster: &ManagedCluster) -> Option<(ConditionStatus, String, String)> {
    let conditions = cluster.status.as_ref()?.conditions.clone();
    condition::find(&conditions, CONDITION_DELETING)
        .map(|c| (c.status, c.reason.clone(), c.message.clone()))
}

async fn start(name: &str) -> (Cluster, Client) {
    let hub = Cluster::start(name).await.unwrap();
    let kube = hub.client().unwrap();
    let mut crds = ocm_api::crds::hub();
    crds.push(upstream_crd(
        "work_v1_0000_00_work.open-cluster-management.io_manifestworks.crd.yaml",
    ));
    crds.push(upstream_crd(
        "addon_v1alpha1_0000_01_addon.open-cluster-management.io_managedclusteraddons.crd.yaml",
    ));
    ocm_hub_server::crds::install(&kube, &crds, Duration::from_secs(30))
        .await
        .unwrap();
    (hub, kube)
}

#[tokio::test]
async fn deleting_a_cluster_removes_addons_then_works_by_priority_and_waits_for_the_agent() {
    let (hub, kube) = start("cleanup").await;
    let cancel = CancellationToken::new();
    let shared = SharedClusters::new();
    let controllers = vec![
        acceptance::run(
            kube.clone(),
            shared.feed(),
            AcceptanceConfig::default(),
            cancel.clone(),
        )
        .boxed(),
        cleanup::run(kube.clone(), shared.feed(), cancel.clone()).boxed(),
    ];
    tokio::spawn(shared.run(kube.clone(), cancel.clone(), controllers));
    let clusters: Api<ManagedCluster> = Api::all(kube.clone());
    clusters
        .create(
            &PostParams::default(),
            &ManagedCluster::new(
                "cluster1",
                ManagedClusterSpec {
                    hub_accepts_client: true,
                    ..ManagedClusterSpec::default()
                },
            ),
        )
        .await
        .unwrap();
    let bindings: Api<RoleBinding> = Api::namespaced(kube.clone(), "cluster1");
    let work_binding = rbac::work_role_binding_name("cluster1");
    eventually("the work RoleBinding and both finalizers", async || {
        let cluster = clusters.get("cluster1").await.unwrap();
        let finalizers = cluster.metadata.finalizers.unwrap_or_default();
        (finalizers.contains(&RESOURCE_CLEANUP_FINALIZER.to_owned())
            && finalizers.contains(&acceptance::CLEANUP_FINALIZER.to_owned())
            && bindings.get_opt(&work_binding).await.unwrap().is_some())
        .then_some(())
    })
    .await;

    let (works_kind, addons_kind) = (works_resource(), addons_resource());
    let works: Api<DynamicObject> = Api::namespaced_with(kube.clone(), "cluster1", &works_kind);
    let addons: Api<DynamicObject> = Api::namespaced_with(kube.clone(), "cluster1", &addons_kind);
    create(&addons, &addons_kind, "observability", None, true).await;
    create(&works, &works_kind, "app", None, true).await;
    create(&works, &works_kind, "config", Some("0"), false).await;
    create(&works, &works_kind, "crds", Some("90"), true).await;

    clusters
        .delete("cluster1", &DeleteParams::default())
        .await
        .unwrap();
    // Add-ons first: the works are untouched while the add-on is held.
    eventually("the add-on deleting", async || {
        deleting(&addons, "observability").await.filter(|d| *d)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(deleting(&works, "app").await, Some(false));
    let cluster = clusters.get("cluster1").await.unwrap();
    let (status, reason, message) = deleting_condition(&cluster).unwrap();
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::False, "ResourceRemaining")
    );
    assert!(message.contains("managedclusteraddons"), "{message}");
    // The agent's access ends everywhere but its work RoleBinding.
    eventually("the per-cluster ClusterRole to go", async || {
        Api::<ClusterRole>::all(kube.clone())
            .get_opt(&rbac::cluster_role_name("cluster1"))
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        bindings
            .get_opt(&rbac::registration_role_binding_name("cluster1"))
            .await
            .unwrap()
            .is_none()
    );

    // Released: the priority-0 bucket of works goes; the priority-90 one waits for it.
    release(&addons, "observability").await;
    eventually(
        "the unheld priority-0 work gone and the held one deleting",
        async || {
            (deleting(&works, "config").await.is_none()
                && deleting(&works, "app").await == Some(true))
            .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        deleting(&works, "crds").await,
        Some(false),
        "a higher bucket waits for the lower one"
    );
    assert!(
        bindings.get_opt(&work_binding).await.unwrap().is_some(),
        "the agent keeps its work access while works remain"
    );
    release(&works, "app").await;
    eventually("the priority-90 work deleting", async || {
        deleting(&works, "crds").await.filter(|d| *d)
    })
    .await;
    assert!(clusters.get_opt("cluster1").await.unwrap().is_some());

    // The last work released: the work RoleBinding goes, then the cluster.
    release(&works, "crds").await;
    eventually("the ManagedCluster to go", async || {
        clusters
            .get_opt("cluster1")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(bindings.get_opt(&work_binding).await.unwrap().is_none());
    cancel.cancel();
    hub.stop();
}

fn accepted_condition(cluster: &ManagedCluster) -> Option<ConditionStatus> {
    let conditions = cluster.status.as_ref()?.conditions.clone();
    condition::find(&conditions, CONDITION_HUB_ACCEPTED).map(|c| c.status)
}

#[tokio::test]
async fn auto_acceptance_accepts_each_cluster_once_and_a_denial_sticks() {
    let (hub, kube) = start("auto-accept").await;
    let cancel = CancellationToken::new();
    let shared = SharedClusters::new();
    let accepting = acceptance::run(
        kube.clone(),
        shared.feed(),
        AcceptanceConfig {
            auto_accept: true,
            ..AcceptanceConfig::default()
        },
        cancel.clone(),
    );
    tokio::spawn(shared.run(kube.clone(), cancel.clone(), vec![accepting.boxed()]));
    let clusters: Api<ManagedCluster> = Api::all(kube.clone());
    clusters
        .create(
            &PostParams::default(),
            &ManagedCluster::new("cluster1", ManagedClusterSpec::default()),
        )
        .await
        .unwrap();
    let accepted = eventually("accepted automatically", async || {
        let cluster = clusters.get("cluster1").await.unwrap();
        (accepted_condition(&cluster) == Some(ConditionStatus::True)).then_some(cluster)
    })
    .await;
    assert!(accepted.spec.hub_accepts_client);
    let stamped = accepted.metadata.annotations.unwrap()[AUTO_ACCEPTED_ANNOTATION].clone();
    assert!(stamped.parse::<jiff::Timestamp>().is_ok(), "{stamped}");

    // An administrator denies it: it stays denied.
    clusters
        .patch(
            "cluster1",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"hubAcceptsClient": false}})),
        )
        .await
        .unwrap();
    eventually("denied", async || {
        let cluster = clusters.get("cluster1").await.unwrap();
        (accepted_condition(&cluster) == Some(ConditionStatus::False)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cluster = clusters.get("cluster1").await.unwrap();
    assert!(
        !cluster.spec.hub_accepts_client,
        "never accepted a second time"
    );
    assert_eq!(
        cluster.metadata.annotations.unwrap()[AUTO_ACCEPTED_ANNOTATION],
        stamped
    );
    cancel.cancel();
    hub.stop();
}
