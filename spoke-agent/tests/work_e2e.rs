//! Work delivery end to end: a real hub (`ocm-hub`'s assembly with its work service), a real
//! managed cluster with kwok nodes, the agent joined over gRPC and mTLS. A ManifestWork created
//! on the hub lands on the spoke; its status comes back with the replicas fed back; an edit on
//! the spoke is put back within seconds (watch-driven); a change of the work is followed; and
//! deleting the work removes its resources, after which the hub lets the ManifestWork go.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

mod support;

use std::time::{Duration, Instant};

use ocm_api::k8s_openapi::api::apps::v1::Deployment;
use ocm_api::k8s_openapi::api::core::v1::ConfigMap;
use ocm_api::kube::Api;
use ocm_api::kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use ocm_api::work::v1::{
    CONDITION_APPLIED, CONDITION_AVAILABLE, Manifest, ManifestWork, ManifestWorkSpec,
    ManifestsTemplate,
};
use ocm_spoke_agent::agent::{self, WorkOptions};
use ocm_testenv::Cluster;
use serde_json::json;
use support::works::{agent_config, feedback, holds, wait_cluster_available, web_work};
use support::{BOOTSTRAP_USER, hub_counter, start_hub, start_hub_on};
use tokio_util::sync::CancellationToken;

async fn eventually<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    ocm_testenv::eventually(what, Duration::from_secs(60), check).await
}

#[tokio::test]
async fn a_manifest_work_is_applied_fed_back_kept_followed_and_deleted() {
    let (hub_cluster, spoke_cluster) =
        tokio::join!(Cluster::start("work-hub"), Cluster::start("work-spoke"));
    let (hub_cluster, spoke_cluster) = (hub_cluster.unwrap(), spoke_cluster.unwrap());
    let (hub, spoke) = (
        hub_cluster.client().unwrap(),
        spoke_cluster.client().unwrap(),
    );
    let cancel = CancellationToken::new();
    // The bootstrap identity is auto-approved, so the cluster is also accepted automatically.
    let (port, ca, token) = start_hub(&hub, vec![BOOTSTRAP_USER.into()], &cancel).await;
    let running = CancellationToken::new();
    let agent = tokio::spawn(agent::run(
        spoke.clone(),
        agent_config(&spoke, port, &ca, &token, WorkOptions::default()),
        running.clone(),
    ));
    wait_cluster_available(&hub, "cluster1").await;

    // Created on the hub → applied on the spoke → Applied and Available on the hub.
    let works: Api<ManifestWork> = Api::namespaced(hub.clone(), "cluster1");
    let work = web_work("web", "cluster1", "app", 2, "blue");
    let created = Instant::now();
    works.create(&PostParams::default(), &work).await.unwrap();
    eventually("Applied on the hub", async || {
        let work = works.get("web").await.unwrap();
        holds(&work, CONDITION_APPLIED).then_some(())
    })
    .await;
    eprintln!(
        "ManifestWork created → Applied on the hub: {:?}",
        created.elapsed()
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(spoke.clone(), "app");
    assert_eq!(
        config_maps.get("settings").await.unwrap().data.unwrap()["mode"],
        "blue"
    );
    eventually("Available with 2 replicas fed back", async || {
        let work = works.get("web").await.unwrap();
        (holds(&work, CONDITION_AVAILABLE) && feedback(&work, "AvailableReplicas") == Some(2))
            .then_some(())
    })
    .await;
    let hub_work = works.get("web").await.unwrap();
    assert!(
        hub_work
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"cluster.open-cluster-management.io/manifest-work-cleanup".to_owned()),
        "the hub holds the work until the agent has cleaned up"
    );

    // An edit on the spoke is put back, driven by the watch, not the 60 s pass.
    config_maps
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"mode": "edited"}})),
        )
        .await
        .unwrap();
    let edited = Instant::now();
    ocm_testenv::eventually("the edit put back", Duration::from_secs(10), async || {
        (config_maps.get("settings").await.unwrap().data.unwrap()["mode"] == "blue").then_some(())
    })
    .await;
    eprintln!("spoke edit → restored: {:?}", edited.elapsed());

    // The work changes on the hub: followed, and the new replicas fed back.
    let mut changed = works.get("web").await.unwrap();
    changed.spec = web_work("web", "cluster1", "app", 3, "green").spec;
    works
        .replace("web", &PostParams::default(), &changed)
        .await
        .unwrap();
    eventually("3 replicas fed back", async || {
        let work = works.get("web").await.unwrap();
        (feedback(&work, "AvailableReplicas") == Some(3)).then_some(())
    })
    .await;
    assert_eq!(
        config_maps.get("settings").await.unwrap().data.unwrap()["mode"],
        "green"
    );
    let deployments: Api<Deployment> = Api::namespaced(spoke.clone(), "app");
    assert_eq!(
        deployments.get("web").await.unwrap().spec.unwrap().replicas,
        Some(3)
    );

    // Deleted on the hub: the resources go, then the hub lets the work go.
    works.delete("web", &DeleteParams::default()).await.unwrap();
    eventually("the ManifestWork gone from the hub", async || {
        works.get_opt("web").await.unwrap().is_none().then_some(())
    })
    .await;
    eventually("the ConfigMap gone from the spoke", async || {
        config_maps
            .get_opt("settings")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(deployments.get_opt("web").await.unwrap().is_none());

    running.cancel();
    agent.await.unwrap().unwrap();
    cancel.cancel();
    hub_cluster.stop();
    spoke_cluster.stop();
}

fn config_map_work(name: &str, value: &str) -> ManifestWork {
    let mut work = ManifestWork::new(
        name,
        ManifestWorkSpec {
            workload: ManifestsTemplate {
                manifests: vec![
                    Manifest(
                        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kept"}}),
                    ),
                    Manifest(
                        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "kept"}, "data": {"value": value}}),
                    ),
                ],
            },
            ..ManifestWorkSpec::default()
        },
    );
    work.metadata.namespace = Some("cluster1".into());
    work
}

#[tokio::test]
async fn an_agent_restart_asks_only_for_newer_generations_and_rewrites_nothing() {
    let (hub_cluster, spoke_cluster) = tokio::join!(
        Cluster::start("restart-hub"),
        Cluster::start("restart-spoke")
    );
    let (hub_cluster, spoke_cluster) = (hub_cluster.unwrap(), spoke_cluster.unwrap());
    let (hub, spoke) = (
        hub_cluster.client().unwrap(),
        spoke_cluster.client().unwrap(),
    );
    let cancel = CancellationToken::new();
    let running_hub = start_hub_on(
        &hub,
        vec![BOOTSTRAP_USER.into()],
        Duration::from_secs(3600),
        ocm_testenv::free_port().unwrap(),
        &cancel,
    )
    .await;
    let agent_config = agent_config(
        &spoke,
        running_hub.port,
        &running_hub.ca,
        &running_hub.token,
        WorkOptions::default(),
    );
    let first_run = CancellationToken::new();
    let agent = tokio::spawn(agent::run(
        spoke.clone(),
        agent_config.clone(),
        first_run.clone(),
    ));
    wait_cluster_available(&hub, "cluster1").await;
    let works: Api<ManifestWork> = Api::namespaced(hub.clone(), "cluster1");
    let names = ["first", "second", "third"];
    for name in names {
        works
            .create(&PostParams::default(), &config_map_work(name, "v1"))
            .await
            .unwrap();
    }
    eventually("every work Applied on the hub", async || {
        let mut all = true;
        for name in names {
            all &= holds(&works.get(name).await.unwrap(), CONDITION_APPLIED);
        }
        all.then_some(())
    })
    .await;
    // Let status and cache writes finish before looking.
    tokio::time::sleep(Duration::from_secs(2)).await;
    first_run.cancel();
    agent.await.unwrap().unwrap();

    let config_maps: Api<ConfigMap> = Api::namespaced(spoke.clone(), "kept");
    let spoke_versions = async || {
        let mut versions = Vec::new();
        for name in names {
            versions.push(
                config_maps
                    .get(name)
                    .await
                    .unwrap()
                    .metadata
                    .resource_version,
            );
        }
        versions
    };
    let hub_versions = async || {
        let mut versions = Vec::new();
        for name in names {
            versions.push(works.get(name).await.unwrap().metadata.resource_version);
        }
        versions
    };
    let (spoke_before, hub_before) = (spoke_versions().await, hub_versions().await);
    let resync_label = r#"action="spec.resync_response""#;
    let resent_before = hub_counter(
        running_hub.health_port,
        "ocm_hub_sent_events",
        &[resync_label, "manifestbundles"],
    )
    .await;
    let writes_before =
        hub_counter(running_hub.health_port, "ocm_hub_work_status_writes", &[]).await;

    // While the agent is down, one work changes on the hub.
    let mut second = works.get("second").await.unwrap();
    second.spec = config_map_work("second", "v2").spec;
    works
        .replace("second", &PostParams::default(), &second)
        .await
        .unwrap();

    let second_run = CancellationToken::new();
    let agent = tokio::spawn(agent::run(spoke.clone(), agent_config, second_run.clone()));
    eventually("the changed work applied after the restart", async || {
        let data = config_maps.get("second").await.unwrap().data?;
        (data.get("value")? == "v2"
            && holds(&works.get("second").await.unwrap(), CONDITION_APPLIED))
        .then_some(())
    })
    .await;
    // Absence is what is asserted next: give a re-apply storm the time to show.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (spoke_after, hub_after) = (spoke_versions().await, hub_versions().await);
    let resent = hub_counter(
        running_hub.health_port,
        "ocm_hub_sent_events",
        &[resync_label, "manifestbundles"],
    )
    .await
        - resent_before;
    let writes = hub_counter(running_hub.health_port, "ocm_hub_work_status_writes", &[]).await
        - writes_before;
    assert_eq!(
        resent, 1.0,
        "the restarted agent asked for the one newer work only"
    );
    // The changed work's status may take more than one write (Applied, then Available).
    eprintln!("after the restart: {resent} work resent, {writes} status writes on the hub");
    for (i, name) in names.iter().enumerate() {
        if *name == "second" {
            assert_ne!(
                spoke_after[i], spoke_before[i],
                "the changed work was applied"
            );
        } else {
            assert_eq!(
                spoke_after[i], spoke_before[i],
                "{name} was not rewritten on the spoke"
            );
            assert_eq!(
                hub_after[i], hub_before[i],
                "{name}'s status was not written again on the hub"
            );
        }
    }

    second_run.cancel();
    agent.await.unwrap().unwrap();
    cancel.cancel();
    hub_cluster.stop();
    spoke_cluster.stop();
}
