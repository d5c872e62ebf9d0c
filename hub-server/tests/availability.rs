//! Liveness on a real apiserver: an accepted cluster gets its lease; while its agent renews,
//! renewals stay in memory (the Lease object is not rewritten per heartbeat) and the cluster
//! keeps no taint; when the agent stops, the cluster becomes Available=Unknown with the
//! `unreachable` taint within the (shortened) grace; when it comes back, the taint goes.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use ocm_api::cluster::v1::{
    CONDITION_AVAILABLE, ManagedCluster, ManagedClusterSpec, TAINT_UNREACHABLE,
};
use ocm_api::condition::{self, ConditionStatus};
use ocm_api::k8s_openapi::api::coordination::v1::Lease;
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use ocm_api::kube::Api;
use ocm_api::kube::api::{Patch, PatchParams, PostParams};
use ocm_hub_server::registration::acceptance::{self, AcceptanceConfig};
use ocm_hub_server::registration::availability::{self, AvailabilityConfig};
use ocm_hub_server::registration::clusters::SharedClusters;
use ocm_hub_server::registration::liveness::Liveness;
use ocm_hub_server::services::{LeaseOps, Outbox, RegistrationService};
use ocm_testenv::Cluster;
use ocm_transport::broker::{EventHandler, Identity};
use ocm_transport::event_type::{EventAction, SubResource};
use ocm_transport::registration::{self, RegistrationKind};
use tokio_util::sync::CancellationToken;

async fn eventually<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    ocm_testenv::eventually(what, Duration::from_secs(20), check).await
}

fn available(cluster: &ManagedCluster) -> Option<(ConditionStatus, String)> {
    let conditions = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    condition::find(&conditions, CONDITION_AVAILABLE).map(|c| (c.status, c.reason.clone()))
}

fn unreachable(cluster: &ManagedCluster) -> bool {
    cluster
        .spec
        .taints
        .iter()
        .any(|t| t.key == TAINT_UNREACHABLE)
}

/// What the agent reports from its cluster's `/livez`.
async fn report_available(clusters: &Api<ManagedCluster>) {
    let current = clusters.get("cluster1").await.unwrap();
    let mut conditions = current.status.map(|s| s.conditions).unwrap_or_default();
    condition::set(
        &mut conditions,
        CONDITION_AVAILABLE,
        ConditionStatus::True,
        "ManagedClusterAvailable",
        "Managed cluster is available",
        ocm_api::k8s_openapi::jiff::Timestamp::now(),
    );
    clusters
        .patch_status(
            "cluster1",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"conditions": conditions}})),
        )
        .await
        .unwrap();
}

/// The agent's heartbeat: a lease renewal published every 300 ms until cancelled.
fn heartbeat(
    service: Arc<RegistrationService<LeaseOps>>,
    lease: Lease,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let who = Identity {
        user: "system:open-cluster-management:cluster1:agent1".into(),
        groups: vec!["system:open-cluster-management:cluster1".into()],
    };
    tokio::spawn(async move {
        let mut lease = lease;
        while !stop.is_cancelled() {
            lease.spec.as_mut().unwrap().renew_time =
                Some(MicroTime(ocm_api::k8s_openapi::jiff::Timestamp::now()));
            let event = registration::encode(
                RegistrationKind::Lease,
                SubResource::Spec,
                EventAction::UpdateRequest,
                "cluster1",
                &lease,
                uuid::Uuid::new_v4().to_string(),
                jiff::Timestamp::now(),
            )
            .unwrap();
            service.handle(&who, event).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}

#[tokio::test]
async fn a_silent_agent_makes_its_cluster_unknown_and_unreachable_within_the_grace() {
    let hub = Cluster::start("liveness").await.unwrap();
    let kube = hub.client().unwrap();
    ocm_hub_server::crds::install(&kube, &ocm_api::crds::hub(), Duration::from_secs(30))
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let liveness = Arc::new(Liveness::new());
    let shared = SharedClusters::new();
    let accepting = acceptance::run(
        kube.clone(),
        shared.feed(),
        AcceptanceConfig::default(),
        cancel.clone(),
    );
    let config = AvailabilityConfig {
        grace_multiplier: 2,
        check_every: Duration::from_millis(200),
    };
    let checking = availability::run(
        kube.clone(),
        shared.store(),
        Arc::clone(&liveness),
        config,
        cancel.clone(),
    );
    tokio::spawn(shared.run(
        kube.clone(),
        cancel.clone(),
        vec![accepting.boxed(), checking.boxed()],
    ));
    let leases_service = Arc::new(RegistrationService::new(
        LeaseOps::new(
            kube.clone(),
            ocm_hub_server::services::ClusterIndex::new(
                ocm_transport::registration::RegistrationKind::Lease,
            ),
            Arc::clone(&liveness),
            Duration::from_secs(30),
        ),
        Outbox::new(),
    ));

    let clusters: Api<ManagedCluster> = Api::all(kube.clone());
    clusters
        .create(
            &PostParams::default(),
            &ManagedCluster::new(
                "cluster1",
                ManagedClusterSpec {
                    hub_accepts_client: true,
                    lease_duration_seconds: 1,
                    ..ManagedClusterSpec::default()
                },
            ),
        )
        .await
        .unwrap();
    let leases: Api<Lease> = Api::namespaced(kube.clone(), "cluster1");
    let lease = eventually("the hub to create the cluster lease", async || {
        leases.get_opt("managed-cluster-lease").await.unwrap()
    })
    .await;
    // No Available condition yet: unreachable.
    eventually("the unreachable taint on a new cluster", async || {
        unreachable(&clusters.get("cluster1").await.unwrap()).then_some(())
    })
    .await;

    // The agent heartbeats and reports Available: the taint goes and stays gone.
    let beating = CancellationToken::new();
    let beat = heartbeat(Arc::clone(&leases_service), lease, beating.clone());
    report_available(&clusters).await;
    eventually("the taint to go", async || {
        (!unreachable(&clusters.get("cluster1").await.unwrap())).then_some(())
    })
    .await;
    let written = leases
        .get("managed-cluster-lease")
        .await
        .unwrap()
        .metadata
        .resource_version;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cluster = clusters.get("cluster1").await.unwrap();
    assert_eq!(
        available(&cluster).map(|a| a.0),
        Some(ConditionStatus::True),
        "alive for 3 s of 1 s leases"
    );
    assert!(!unreachable(&cluster));
    assert_eq!(
        leases
            .get("managed-cluster-lease")
            .await
            .unwrap()
            .metadata
            .resource_version,
        written,
        "ten heartbeats, no Lease write: renewals stay in memory"
    );

    // The agent goes silent: Unknown and unreachable after 2 × 1 s.
    beating.cancel();
    beat.await.unwrap();
    let lost = eventually("Available=Unknown", async || {
        let cluster = clusters.get("cluster1").await.unwrap();
        (available(&cluster).map(|a| a.0) == Some(ConditionStatus::Unknown)).then_some(cluster)
    })
    .await;
    assert_eq!(
        available(&lost).unwrap().1,
        "ManagedClusterLeaseUpdateStopped"
    );
    eventually("the unreachable taint", async || {
        unreachable(&clusters.get("cluster1").await.unwrap()).then_some(())
    })
    .await;

    // Back again.
    let beating = CancellationToken::new();
    let lease = leases.get("managed-cluster-lease").await.unwrap();
    let beat = heartbeat(Arc::clone(&leases_service), lease, beating.clone());
    report_available(&clusters).await;
    eventually("the taint to go again", async || {
        (!unreachable(&clusters.get("cluster1").await.unwrap())).then_some(())
    })
    .await;
    beating.cancel();
    beat.await.unwrap();

    // A last renewal dated a day ahead (a clock jump, or an agent that lies), then silence: the
    // renewal counts from when the hub got it, so the cluster is lost after the grace as
    // before, and the Lease does not carry the agent's date.
    let mut lease = leases.get("managed-cluster-lease").await.unwrap();
    let tomorrow = ocm_api::k8s_openapi::jiff::Timestamp::now()
        + ocm_api::k8s_openapi::jiff::SignedDuration::from_hours(24);
    lease.spec.as_mut().unwrap().renew_time = Some(MicroTime(tomorrow));
    let who = Identity {
        user: "system:open-cluster-management:cluster1:agent1".into(),
        groups: vec!["system:open-cluster-management:cluster1".into()],
    };
    let event = registration::encode(
        RegistrationKind::Lease,
        SubResource::Spec,
        EventAction::UpdateRequest,
        "cluster1",
        &lease,
        uuid::Uuid::new_v4().to_string(),
        jiff::Timestamp::now(),
    )
    .unwrap();
    leases_service.handle(&who, event).await.unwrap();
    eventually(
        "Available=Unknown after a renewal dated ahead",
        async || {
            let cluster = clusters.get("cluster1").await.unwrap();
            (available(&cluster).map(|a| a.0) == Some(ConditionStatus::Unknown)).then_some(())
        },
    )
    .await;
    let stored = leases.get("managed-cluster-lease").await.unwrap();
    assert!(
        stored
            .spec
            .unwrap()
            .renew_time
            .is_none_or(|t| t.0 < tomorrow),
        "the agent's date was not stored"
    );
    cancel.cancel();
    hub.stop();
}

/// An agent just accepted reports Available before its first renewal reaches the hub; OCM gives
/// it the full grace from then (it creates the missing Lease with the current time) rather
/// than judging it lost at once.
#[tokio::test]
async fn a_just_accepted_cluster_gets_the_full_grace_before_its_first_renewal() {
    let hub = Cluster::start("first-renewal").await.unwrap();
    let kube = hub.client().unwrap();
    ocm_hub_server::crds::install(&kube, &ocm_api::crds::hub(), Duration::from_secs(30))
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let shared = SharedClusters::new();
    let accepting = acceptance::run(
        kube.clone(),
        shared.feed(),
        AcceptanceConfig::default(),
        cancel.clone(),
    );
    let config = AvailabilityConfig {
        grace_multiplier: 2,
        check_every: Duration::from_millis(200),
    };
    let checking = availability::run(
        kube.clone(),
        shared.store(),
        Arc::new(Liveness::new()),
        config,
        cancel.clone(),
    );
    tokio::spawn(shared.run(
        kube.clone(),
        cancel.clone(),
        vec![accepting.boxed(), checking.boxed()],
    ));
    let clusters: Api<ManagedCluster> = Api::all(kube.clone());
    clusters
        .create(
            &PostParams::default(),
            &ManagedCluster::new(
                "cluster1",
                ManagedClusterSpec {
                    hub_accepts_client: true,
                    lease_duration_seconds: 3,
                    ..ManagedClusterSpec::default()
                },
            ),
        )
        .await
        .unwrap();
    report_available(&clusters).await;
    let reported = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        available(&clusters.get("cluster1").await.unwrap()).map(|a| a.0),
        Some(ConditionStatus::True),
        "2 s into a 2 × 3 s grace, no renewal yet"
    );
    // Still no renewal: lost once the grace has passed, not before.
    eventually("Available=Unknown after the grace", async || {
        let cluster = clusters.get("cluster1").await.unwrap();
        (available(&cluster).map(|a| a.0) == Some(ConditionStatus::Unknown)).then_some(())
    })
    .await;
    assert!(
        reported.elapsed() >= Duration::from_secs(5),
        "lost after {:?}, before the 6 s grace",
        reported.elapsed()
    );
    cancel.cancel();
    hub.stop();
}
