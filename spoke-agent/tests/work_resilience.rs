//! ManifestWork delivery across failures (issue 5): a real hub (`ocm-hub`'s assembly in
//! process), a real managed cluster with kwok nodes and the agent joined over gRPC and mutual
//! TLS.
//!
//! - The hub restarts (stopped, its gRPC port released, started again on the same port against
//!   the same apiserver) while its work changes: the spoke follows the change, what did not
//!   change is not written again (same resourceVersion), and the work's status on the hub
//!   converges on the new generation.
//! - The agent's connection to the broker runs through a [`Relay`], cut for 30 s while the work
//!   changes on the hub (a new generation, a new work, a deleted work) and on the spoke (drift,
//!   a deleted Deployment): the agent keeps the spoke as it last knew it while cut off, nothing
//!   crosses the cut, and once restored every change arrives, the statuses converge and the
//!   cluster is Available again, all within 60 s, without a new join.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

mod support;

use std::time::Duration;

use ocm_api::cluster::v1::{CONDITION_AVAILABLE as CLUSTER_AVAILABLE, ManagedCluster};
use ocm_api::condition::{self, ConditionStatus};
use ocm_api::k8s_openapi::api::apps::v1::Deployment;
use ocm_api::k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use ocm_api::k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use ocm_api::kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use ocm_api::kube::{Api, Client};
use ocm_api::work::v1::{
    CONDITION_APPLIED, CONDITION_AVAILABLE, Manifest, ManifestWork, ManifestWorkSpec,
    ManifestsTemplate,
};
use ocm_spoke_agent::agent::{self, AgentError, WorkOptions};
use ocm_testenv::{Cluster, Relay};
use serde_json::json;
use support::works::{agent_config, feedback, holds, web_work};
use support::{BOOTSTRAP_USER, start_hub, start_hub_on};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const CLUSTER: &str = "cluster1";

async fn eventually<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    ocm_testenv::eventually(what, Duration::from_secs(60), check).await
}

/// [`eventually`] against a shared deadline: everything after a recovery must happen by then.
async fn by<T>(deadline: Instant, what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    let left = deadline.saturating_duration_since(Instant::now());
    ocm_testenv::eventually(what, left, check).await
}

/// A work of one ConfigMap `name` in `default`.
fn config_map_work(name: &str) -> ManifestWork {
    let mut work = ManifestWork::new(
        name,
        ManifestWorkSpec {
            workload: ManifestsTemplate {
                manifests: vec![Manifest(json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": "default"},
                    "data": {"work": name}
                }))],
            },
            ..ManifestWorkSpec::default()
        },
    );
    work.metadata.namespace = Some(CLUSTER.into());
    work
}

/// Applied and Available, both for the work's current generation.
fn converged(work: &ManifestWork) -> bool {
    holds(work, CONDITION_APPLIED) && holds(work, CONDITION_AVAILABLE)
}

/// The generation the work's Applied condition was set for.
fn applied_generation(work: &ManifestWork) -> Option<i64> {
    condition::find(&work.status.as_ref()?.conditions, CONDITION_APPLIED)?.observed_generation
}

fn cluster_available(cluster: &ManagedCluster) -> Option<ConditionStatus> {
    let conditions = &cluster.status.as_ref()?.conditions;
    condition::find(conditions, CLUSTER_AVAILABLE).map(|c| c.status)
}

/// A Deployment the controller manager has finished rolling out with `replicas` available, so
/// that nothing but a write of its spec would change it any more.
fn rolled_out(deployment: &Deployment, replicas: i32) -> bool {
    let (Some(spec), Some(status)) = (&deployment.spec, &deployment.status) else {
        return false;
    };
    spec.replicas == Some(replicas)
        && status.observed_generation == deployment.metadata.generation
        && status.available_replicas == Some(replicas)
        && status.updated_replicas == Some(replicas)
        && status.replicas == Some(replicas)
        && status.conditions.iter().flatten().any(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("NewReplicaSetAvailable")
        })
}

fn start_agent(
    spoke: &Client,
    port: u16,
    ca: &str,
    token: &str,
    running: &CancellationToken,
) -> JoinHandle<Result<(), AgentError>> {
    tokio::spawn(agent::run(
        spoke.clone(),
        agent_config(spoke, port, ca, token, WorkOptions::default()),
        running.clone(),
    ))
}

async fn wait_available(clusters: &Api<ManagedCluster>) {
    eventually("cluster1 Available", async || {
        let cluster = clusters.get_opt(CLUSTER).await.unwrap()?;
        (cluster_available(&cluster) == Some(ConditionStatus::True)).then_some(())
    })
    .await;
}

/// The resourceVersion and UID of a spoke object.
fn version_of<K: ocm_api::kube::Resource>(object: &K) -> (String, String) {
    let meta = object.meta();
    (
        meta.resource_version.clone().unwrap(),
        meta.uid.clone().unwrap(),
    )
}

#[tokio::test]
async fn hub_restart_leaves_workloads_untouched_and_status_converges() {
    let (hub_cluster, spoke_cluster) = tokio::join!(
        Cluster::start("restart-hub"),
        Cluster::start("restart-spoke")
    );
    let (hub_cluster, spoke_cluster) = (hub_cluster.unwrap(), spoke_cluster.unwrap());
    let (hub, spoke) = (
        hub_cluster.client().unwrap(),
        spoke_cluster.client().unwrap(),
    );
    let started = Instant::now();
    let first_life = CancellationToken::new();
    let first = start_hub_on(
        &hub,
        vec![BOOTSTRAP_USER.into()],
        Duration::from_secs(3600),
        ocm_testenv::free_port().unwrap(),
        &first_life,
    )
    .await;
    let port = first.port;
    let running = CancellationToken::new();
    let agent = start_agent(&spoke, port, &first.ca, &first.token, &running);
    let clusters: Api<ManagedCluster> = Api::all(hub.clone());
    wait_available(&clusters).await;
    eprintln!("cluster Available: {:?}", started.elapsed());

    // Applied and Available on the hub with the replicas fed back, well before the agent's
    // 60 s pass: a rollout that ends before the agent's Deployment watch has listed is seen in
    // that listing.
    let works: Api<ManifestWork> = Api::namespaced(hub.clone(), CLUSTER);
    works
        .create(
            &PostParams::default(),
            &web_work("web", CLUSTER, "app", 2, "blue"),
        )
        .await
        .unwrap();
    let before = by(
        Instant::now() + Duration::from_secs(20),
        "Applied and Available with 2 replicas fed back",
        async || {
            let work = works.get("web").await.unwrap();
            (converged(&work) && feedback(&work, "AvailableReplicas") == Some(2)).then_some(work)
        },
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(spoke.clone(), "app");
    let config_maps: Api<ConfigMap> = Api::namespaced(spoke.clone(), "app");
    let namespaces: Api<Namespace> = Api::all(spoke.clone());
    let deployment = eventually("the Deployment rolled out", async || {
        let deployment = deployments.get("web").await.unwrap();
        rolled_out(&deployment, 2).then_some(deployment)
    })
    .await;
    let deployment_before = version_of(&deployment);
    let namespace_before = version_of(&namespaces.get("app").await.unwrap());
    let (_, config_map_uid) = version_of(&config_maps.get("settings").await.unwrap());
    eprintln!("work Available on the hub: {:?}", started.elapsed());

    // The hub stops, and lets go of its port.
    first_life.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(30), first.task)
        .await
        .expect("the hub did not stop within 30 s after its cancellation");
    stopped.unwrap().unwrap();
    // Bound as the hub binds it (SO_REUSEADDR, so its closed connections do not count).
    drop(
        tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the stopped hub still holds its gRPC port"),
    );
    let stopped_at = Instant::now();

    // The work changes while no hub runs: only the ConfigMap's data.
    let mut changed = works.get("web").await.unwrap();
    changed.spec = web_work("web", CLUSTER, "app", 2, "green").spec;
    let changed = works
        .replace("web", &PostParams::default(), &changed)
        .await
        .unwrap();
    let generation = changed.metadata.generation.unwrap();
    assert!(generation > before.metadata.generation.unwrap());
    assert_eq!(
        config_maps.get("settings").await.unwrap().data.unwrap()["mode"],
        "blue",
        "no hub, so the change cannot have reached the spoke"
    );

    // Started again on the same port with the same apiserver.
    let second_life = CancellationToken::new();
    let second = start_hub_on(
        &hub,
        vec![BOOTSTRAP_USER.into()],
        Duration::from_secs(3600),
        port,
        &second_life,
    )
    .await;
    eventually("the restarted hub listening on its port", async || {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(drop)
    })
    .await;
    let restarted_at = Instant::now();
    eprintln!("hub down for {:?}", restarted_at - stopped_at);

    // The spoke follows the change…
    eventually("the changed ConfigMap on the spoke", async || {
        let data = config_maps.get("settings").await.unwrap().data.unwrap();
        (data["mode"] == "green").then_some(())
    })
    .await;
    eprintln!(
        "hub restarted → change applied on the spoke: {:?}",
        restarted_at.elapsed()
    );
    // …and the hub's status converges on the new generation, with the replicas fed back.
    let after = eventually(
        "Applied and Available for the new generation, 2 replicas fed back",
        async || {
            let work = works.get("web").await.unwrap();
            (work.metadata.generation == Some(generation)
                && converged(&work)
                && feedback(&work, "AvailableReplicas") == Some(2))
            .then_some(work)
        },
    )
    .await;
    eprintln!(
        "hub restarted → status converged on the hub: {:?}",
        restarted_at.elapsed()
    );
    let manifests_reported = &after.status.as_ref().unwrap().resource_status.manifests;
    assert_eq!(manifests_reported.len(), 3, "{manifests_reported:?}");
    for manifest in manifests_reported {
        assert!(
            condition::find(&manifest.conditions, CONDITION_APPLIED)
                .is_some_and(|c| c.status == ConditionStatus::True),
            "{manifest:?}"
        );
    }

    // What did not change was not written again: no re-apply storm after the restart. Watched
    // for a few seconds past convergence, in case a late pass rewrites it.
    let watch_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < watch_until {
        assert_eq!(
            version_of(&deployments.get("web").await.unwrap()),
            deployment_before,
            "the unchanged Deployment was written again"
        );
        assert_eq!(
            version_of(&namespaces.get("app").await.unwrap()),
            namespace_before,
            "the unchanged Namespace was written again"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, uid) = version_of(&config_maps.get("settings").await.unwrap());
    assert_eq!(
        uid, config_map_uid,
        "the ConfigMap was updated, not recreated"
    );
    let cluster = clusters.get(CLUSTER).await.unwrap();
    assert_eq!(cluster_available(&cluster), Some(ConditionStatus::True));
    eprintln!("test took {:?}", started.elapsed());

    running.cancel();
    agent.await.unwrap().unwrap();
    second_life.cancel();
    second.task.await.unwrap().unwrap();
    hub_cluster.stop();
    spoke_cluster.stop();
}

#[tokio::test]
async fn broker_cut_for_30s_loses_nothing_and_status_converges() {
    let (hub_cluster, spoke_cluster) =
        tokio::join!(Cluster::start("cut-hub"), Cluster::start("cut-spoke"));
    let (hub_cluster, spoke_cluster) = (hub_cluster.unwrap(), spoke_cluster.unwrap());
    let (hub, spoke) = (
        hub_cluster.client().unwrap(),
        spoke_cluster.client().unwrap(),
    );
    let started = Instant::now();
    let hub_life = CancellationToken::new();
    let (port, ca, token) = start_hub(&hub, vec![BOOTSTRAP_USER.into()], &hub_life).await;
    let relay = Relay::start(([127, 0, 0, 1], port).into()).await.unwrap();
    let running = CancellationToken::new();
    let agent = start_agent(&spoke, relay.port(), &ca, &token, &running);
    let clusters: Api<ManagedCluster> = Api::all(hub.clone());
    wait_available(&clusters).await;
    // A 2 s lease: the hub gives up on a silent agent after 10 s (grace 5), well within the cut.
    clusters
        .patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"leaseDurationSeconds": 2}})),
        )
        .await
        .unwrap();

    let works: Api<ManifestWork> = Api::namespaced(hub.clone(), CLUSTER);
    works
        .create(
            &PostParams::default(),
            &web_work("web", CLUSTER, "app", 2, "blue"),
        )
        .await
        .unwrap();
    works
        .create(&PostParams::default(), &config_map_work("doomed"))
        .await
        .unwrap();
    // As in the first test, the replicas fed back are not waited for here.
    let before = eventually("web Applied and Available", async || {
        let work = works.get("web").await.unwrap();
        converged(&work).then_some(work)
    })
    .await;
    eventually("doomed Applied and Available", async || {
        converged(&works.get("doomed").await.unwrap()).then_some(())
    })
    .await;
    let deployments: Api<Deployment> = Api::namespaced(spoke.clone(), "app");
    let config_maps: Api<ConfigMap> = Api::namespaced(spoke.clone(), "app");
    let default_maps: Api<ConfigMap> = Api::namespaced(spoke.clone(), "default");
    assert!(default_maps.get_opt("doomed").await.unwrap().is_some());
    let deployment = eventually("the Deployment rolled out", async || {
        let deployment = deployments.get("web").await.unwrap();
        rolled_out(&deployment, 2).then_some(deployment)
    })
    .await;
    let (_, deployment_uid) = version_of(&deployment);
    let csrs: Api<CertificateSigningRequest> = Api::all(hub.clone());
    let joined = ListParams::default().labels("open-cluster-management.io/cluster-name=cluster1");
    let csrs_before = csrs.list(&joined).await.unwrap().items.len();
    eprintln!("works Available on the hub: {:?}", started.elapsed());
    // Renewing its 2 s lease, the cluster is Available going into the cut.
    wait_available(&clusters).await;

    // The cut.
    relay.cut();
    let cut_at = Instant::now();
    let forwarded = relay.forwarded();
    ocm_testenv::eventually(
        "no connection through the cut relay",
        Duration::from_secs(5),
        async || (relay.live() == 0).then_some(()),
    )
    .await;

    // On the hub: a new generation of `web` (3 replicas, another setting), a new work, and a
    // work deleted (held by its finalizer until the agent reports its resources gone).
    let mut changed = works.get("web").await.unwrap();
    changed.spec = web_work("web", CLUSTER, "app", 3, "green").spec;
    let changed = works
        .replace("web", &PostParams::default(), &changed)
        .await
        .unwrap();
    let generation = changed.metadata.generation.unwrap();
    let old_generation = before.metadata.generation.unwrap();
    assert!(generation > old_generation);
    works
        .create(&PostParams::default(), &config_map_work("extra"))
        .await
        .unwrap();
    works
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();

    // On the spoke: drift is put back by the agent on its own, to what it last heard from the
    // hub, and a deleted Deployment is recreated.
    config_maps
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"mode": "edited"}})),
        )
        .await
        .unwrap();
    ocm_testenv::eventually(
        "the drift put back while cut off",
        Duration::from_secs(10),
        async || {
            let data = config_maps.get("settings").await.unwrap().data.unwrap();
            (data["mode"] == "blue").then_some(())
        },
    )
    .await;
    deployments
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    ocm_testenv::eventually(
        "the deleted Deployment recreated while cut off",
        Duration::from_secs(10),
        async || {
            let deployment = deployments.get_opt("web").await.unwrap()?;
            (version_of(&deployment).1 != deployment_uid).then_some(())
        },
    )
    .await;

    // The hub hears nothing: after the grace it takes the cluster for lost.
    ocm_testenv::eventually(
        "the silent cluster Available=Unknown on the hub",
        Duration::from_secs(25),
        async || {
            let cluster = clusters.get(CLUSTER).await.unwrap();
            (cluster_available(&cluster) == Some(ConditionStatus::Unknown)).then_some(())
        },
    )
    .await;
    eprintln!("cut → cluster Unknown on the hub: {:?}", cut_at.elapsed());

    tokio::time::sleep_until(cut_at + Duration::from_secs(30)).await;
    // Nothing crossed the cut, either way, though the agent kept trying.
    assert!(relay.refused() > 0, "the agent never tried to reconnect");
    assert_eq!(relay.forwarded(), forwarded);
    let web = works.get("web").await.unwrap();
    assert_eq!(applied_generation(&web), Some(old_generation));
    assert!(works.get_opt("doomed").await.unwrap().is_some());
    assert!(
        works
            .get("extra")
            .await
            .unwrap()
            .status
            .is_none_or(|s| s.conditions.is_empty())
    );
    assert_eq!(
        config_maps.get("settings").await.unwrap().data.unwrap()["mode"],
        "blue"
    );
    assert!(default_maps.get_opt("extra").await.unwrap().is_none());
    assert!(default_maps.get_opt("doomed").await.unwrap().is_some());

    relay.restore();
    let restored_at = Instant::now();
    let deadline = restored_at + Duration::from_secs(60);
    eprintln!(
        "cut for {:?}; {} connection attempts refused",
        restored_at - cut_at,
        relay.refused()
    );

    // Everything arrives: the new generation, the new work, the deletion…
    by(deadline, "the new generation on the spoke", async || {
        let deployment = deployments.get("web").await.unwrap();
        let data = config_maps.get("settings").await.unwrap().data.unwrap();
        (data["mode"] == "green" && deployment.spec.unwrap().replicas == Some(3)).then_some(())
    })
    .await;
    eprintln!(
        "restored → new generation on the spoke: {:?}",
        restored_at.elapsed()
    );
    by(deadline, "the new work on the spoke", async || {
        default_maps.get_opt("extra").await.unwrap().map(drop)
    })
    .await;
    by(deadline, "the deleted work's ConfigMap gone", async || {
        default_maps
            .get_opt("doomed")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    // …and the statuses converge.
    by(
        deadline,
        "web Applied and Available for the new generation with 3 replicas fed back",
        async || {
            let work = works.get("web").await.unwrap();
            (work.metadata.generation == Some(generation)
                && converged(&work)
                && feedback(&work, "AvailableReplicas") == Some(3))
            .then_some(())
        },
    )
    .await;
    eprintln!(
        "restored → web's status converged: {:?}",
        restored_at.elapsed()
    );
    by(deadline, "extra Applied and Available", async || {
        converged(&works.get("extra").await.unwrap()).then_some(())
    })
    .await;
    by(
        deadline,
        "the deleted work released by the hub",
        async || {
            works
                .get_opt("doomed")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    by(deadline, "cluster1 Available again", async || {
        let cluster = clusters.get(CLUSTER).await.unwrap();
        (cluster_available(&cluster) == Some(ConditionStatus::True)).then_some(())
    })
    .await;
    eprintln!(
        "restored → everything converged: {:?}",
        restored_at.elapsed()
    );
    // The agent came back with the certificate it had: no new join.
    assert_eq!(csrs.list(&joined).await.unwrap().items.len(), csrs_before);
    eprintln!("test took {:?}", started.elapsed());

    running.cancel();
    agent.await.unwrap().unwrap();
    hub_life.cancel();
    drop(relay);
    hub_cluster.stop();
    spoke_cluster.stop();
}
