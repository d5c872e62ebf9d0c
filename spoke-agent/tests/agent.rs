//! The registration agent end to end, on a real hub and a real spoke cluster: it joins with a
//! bootstrap token and keeps its credential in a Secret on its cluster; once accepted it reports
//! Joined and Available with the spoke's Kubernetes version and node capacity, and renews its
//! lease; stopped, its cluster becomes Unknown after the grace; started again, it reuses the
//! stored certificate (no new CSR) and the cluster is Available again. The hub reviews the
//! agent's token and permissions through a client of their own.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ocm_api::cluster::v1::{
    CONDITION_AVAILABLE, CONDITION_JOINED, ManagedCluster, TAINT_UNREACHABLE,
};
use ocm_api::cluster::v1alpha1::{ClusterClaim, ClusterClaimSpec};
use ocm_api::condition::{self, ConditionStatus};
use ocm_api::k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use ocm_api::kube::api::{ListParams, Patch, PatchParams, PostParams};
use ocm_api::kube::client::{Body, ClientBuilder};
use ocm_api::kube::{Api, Client};
use ocm_hub_server::hub::HubClients;
use ocm_spoke_agent::agent::{self, AgentConfig};
use ocm_spoke_agent::credentials::{AGENT_NAMESPACE, CredentialStore, HUB_SECRET};
use ocm_testenv::{Cluster, free_port};
use support::{BOOTSTRAP_USER, config, start_hub_with_clients};
use tokio_util::sync::CancellationToken;
use tower::util::MapRequestLayer;

type Paths = Arc<Mutex<Vec<String>>>;

/// A client of `cluster` that notes the path of every request it sends in `paths`.
fn recording_client(cluster: &Cluster, paths: &Paths) -> Client {
    let paths = Arc::clone(paths);
    let note = MapRequestLayer::new(move |request: http::Request<Body>| {
        if let Ok(mut paths) = paths.lock() {
            paths.push(request.uri().path().to_owned());
        }
        request
    });
    ClientBuilder::try_from(cluster.kube_config().clone())
        .unwrap()
        .with_layer(&note)
        .build()
}

/// How many of `paths` end with `suffix`.
fn requests_to(paths: &Paths, suffix: &str) -> usize {
    let paths = paths.lock().unwrap();
    paths.iter().filter(|p| p.ends_with(suffix)).count()
}

fn condition_of(cluster: &ManagedCluster, type_: &str) -> Option<ConditionStatus> {
    let conditions = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    condition::find(&conditions, type_).map(|c| c.status)
}

fn unreachable(cluster: &ManagedCluster) -> bool {
    cluster
        .spec
        .taints
        .iter()
        .any(|t| t.key == TAINT_UNREACHABLE)
}

async fn eventually<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    ocm_testenv::eventually(what, Duration::from_secs(40), check).await
}

#[tokio::test]
async fn the_agent_joins_reports_renews_and_comes_back_with_its_stored_certificate() {
    let (hub_cluster, spoke_cluster) =
        tokio::join!(Cluster::start("agent-hub"), Cluster::start("agent-spoke"));
    let (hub_cluster, spoke_cluster) = (hub_cluster.unwrap(), spoke_cluster.unwrap());
    let (hub_kube, spoke) = (
        hub_cluster.client().unwrap(),
        spoke_cluster.client().unwrap(),
    );
    let cancel = CancellationToken::new();
    // The hub with its two clients, each noting the paths it requests.
    let (main_paths, review_paths) = (Paths::default(), Paths::default());
    let clients = HubClients {
        main: recording_client(&hub_cluster, &main_paths),
        reviews: recording_client(&hub_cluster, &review_paths),
        availability: recording_client(&hub_cluster, &main_paths),
    };
    let hub = start_hub_with_clients(
        clients,
        vec![BOOTSTRAP_USER.into()],
        Duration::from_secs(3600),
        free_port().unwrap(),
        |_| {},
        &cancel,
    )
    .await;
    let (port, ca, token) = (hub.port, hub.ca, hub.token);
    let agent_config = AgentConfig {
        bootstrap: config(port, &ca, &token, Duration::from_secs(60)),
        credentials: CredentialStore::new(spoke.clone(), AGENT_NAMESPACE, HUB_SECRET),
        status_every: Duration::from_millis(500),
        claims: ocm_spoke_agent::status::ClaimPolicy::default(),
        work: ocm_spoke_agent::agent::WorkOptions::default(),
    };
    let running = CancellationToken::new();
    let agent = tokio::spawn(agent::run(
        spoke.clone(),
        agent_config.clone(),
        running.clone(),
    ));

    // Joined (auto-approved certificate), waiting for the hub administrator.
    let clusters: Api<ManagedCluster> = Api::all(hub_kube.clone());
    eventually("the ManagedCluster", async || {
        clusters.get_opt("cluster1").await.unwrap()
    })
    .await;
    clusters
        .patch(
            "cluster1",
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"spec": {"hubAcceptsClient": true, "leaseDurationSeconds": 1}}),
            ),
        )
        .await
        .unwrap();
    let reported = eventually("Joined and Available", async || {
        let cluster = clusters.get("cluster1").await.unwrap();
        (condition_of(&cluster, CONDITION_JOINED) == Some(ConditionStatus::True)
            && condition_of(&cluster, CONDITION_AVAILABLE) == Some(ConditionStatus::True))
        .then_some(cluster)
    })
    .await;
    let status = reported.status.unwrap();
    assert!(status.version.unwrap().kubernetes.starts_with("v1.36"));
    assert_eq!(status.capacity["cpu"].0, "32", "one kwok node of 32 CPUs");
    assert_eq!(status.allocatable["pods"].0, "110");

    // ClusterClaims created on the spoke (the agent installed their CRD) reach the hub; a
    // spoke-only one stays home.
    let claims: Api<ClusterClaim> = Api::all(spoke.clone());
    let mut spoke_only =
        ClusterClaim::new("secret.example.com", ClusterClaimSpec { value: "x".into() });
    spoke_only.metadata.labels = Some(
        [(
            "open-cluster-management.io/spoke-only".to_owned(),
            "true".to_owned(),
        )]
        .into(),
    );
    for claim in [
        ClusterClaim::new(
            "id.k8s.io",
            ClusterClaimSpec {
                value: "cluster1-id".into(),
            },
        ),
        ClusterClaim::new(
            "region.example.com",
            ClusterClaimSpec {
                value: "eu-west".into(),
            },
        ),
        spoke_only,
    ] {
        eventually("the ClusterClaim CRD on the spoke", async || {
            claims.create(&PostParams::default(), &claim).await.ok()
        })
        .await;
    }
    let reported = eventually("the claims in the hub's status", async || {
        let cluster = clusters.get("cluster1").await.unwrap();
        let claims = cluster.status.map(|s| s.cluster_claims).unwrap_or_default();
        (!claims.is_empty()).then_some(claims)
    })
    .await;
    assert_eq!(
        reported
            .iter()
            .map(|c| (c.name.as_str(), c.value.as_str()))
            .collect::<Vec<_>>(),
        [
            ("id.k8s.io", "cluster1-id"),
            ("region.example.com", "eu-west")
        ]
    );

    // Renewing its 1 s lease keeps it available well past the 5 s grace.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let cluster = clusters.get("cluster1").await.unwrap();
    assert_eq!(
        condition_of(&cluster, CONDITION_AVAILABLE),
        Some(ConditionStatus::True)
    );

    // Stopped: Unknown after the grace.
    running.cancel();
    agent.await.unwrap().unwrap();
    eventually("Available=Unknown and the unreachable taint", async || {
        let cluster = clusters.get("cluster1").await.unwrap();
        (condition_of(&cluster, CONDITION_AVAILABLE) == Some(ConditionStatus::Unknown)
            && unreachable(&cluster))
        .then_some(())
    })
    .await;

    // Started again: the stored certificate, no new CSR, Available again.
    let csrs: Api<CertificateSigningRequest> = Api::all(hub_kube.clone());
    let before = csrs
        .list(&ListParams::default().labels("open-cluster-management.io/cluster-name=cluster1"))
        .await
        .unwrap()
        .items
        .len();
    let running = CancellationToken::new();
    let agent = tokio::spawn(agent::run(spoke.clone(), agent_config, running.clone()));
    eventually("Available again, untainted", async || {
        let cluster = clusters.get("cluster1").await.unwrap();
        (condition_of(&cluster, CONDITION_AVAILABLE) == Some(ConditionStatus::True)
            && !unreachable(&cluster))
        .then_some(())
    })
    .await;
    let after = csrs
        .list(&ListParams::default().labels("open-cluster-management.io/cluster-name=cluster1"))
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(
        (before, after),
        (1, 1),
        "the restarted agent reused its certificate"
    );

    // The bootstrap token was reviewed through the hub's review client (as is any request the
    // hub's RBAC index does not allow), and no review went through the client its listings and
    // writes wait on.
    assert!(
        requests_to(&review_paths, "/tokenreviews") > 0,
        "no TokenReview sent"
    );
    for review in ["/tokenreviews", "/subjectaccessreviews"] {
        assert_eq!(
            requests_to(&main_paths, review),
            0,
            "{review} sent by the main client"
        );
    }
    assert!(requests_to(&main_paths, "/managedclusters") > 0);

    running.cancel();
    agent.await.unwrap().unwrap();
    cancel.cancel();
    hub_cluster.stop();
    spoke_cluster.stop();
}
