//! Work delivery over MQTT, end to end: a real hub apiserver with the hub's work driver on a
//! real Mosquitto (TLS 1.3, client certificates, an access-control list that lets each cluster
//! read and write only its own topics), a real spoke cluster with kwok nodes, and the agent
//! registered over gRPC with its ManifestWorks coming over MQTT (OCM's
//! `--workload-source-driver=mqtt`). A work is applied with its replicas fed back; the broker
//! restarts while the work changes on the hub, and the change still arrives; deletion
//! completes through MQTT.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

mod support;

use std::time::{Duration, Instant};

use ocm_api::k8s_openapi::api::core::v1::ConfigMap;
use ocm_api::kube::Api;
use ocm_api::kube::api::{DeleteParams, PostParams};
use ocm_api::work::v1::{CONDITION_APPLIED, CONDITION_AVAILABLE, ManifestWork};
use ocm_spoke_agent::agent::{self, WorkOptions};
use ocm_testenv::{Cluster, Mosquitto};
use ocm_transport::mqtt_config::MqttConfig;
use ocm_transport::mqtt_transport::Role;
use support::works::{agent_config, feedback, holds, wait_cluster_available, web_work};
use support::{BOOTSTRAP_USER, start_hub_with};
use tokio_util::sync::CancellationToken;

/// The hub (CN `ocm-hub`) may use every topic of its source; each cluster (CN = its name) may
/// only read its own spec topic and write its own status topic.
const ACL: &str = "user ocm-hub\ntopic readwrite sources/kube/#\n\n\
                   pattern read sources/kube/consumers/%u/sourceevents\n\
                   pattern write sources/kube/consumers/%u/agentevents\n";

/// OCM's MQTT config file for `user`, with the source `kube` in its topics.
fn mqtt_config(broker: &Mosquitto, user: &str) -> MqttConfig {
    let (cert, key) = broker.client_certificate(user).unwrap();
    let dir = broker.dir();
    std::fs::write(dir.join(format!("{user}.crt")), cert).unwrap();
    std::fs::write(dir.join(format!("{user}.key")), key).unwrap();
    std::fs::write(dir.join("ca.crt"), broker.ca_pem()).unwrap();
    let file = dir.join(format!("{user}.yaml"));
    std::fs::write(
        &file,
        format!(
            "brokerHost: {address}\ncaFile: {d}/ca.crt\nclientCertFile: {d}/{user}.crt\n\
             clientKeyFile: {d}/{user}.key\nkeepAlive: 5\ntopics:\n  \
             sourceEvents: sources/kube/consumers/+/sourceevents\n  \
             agentEvents: sources/kube/consumers/+/agentevents\n",
            address = broker.address(),
            d = dir.display()
        ),
    )
    .unwrap();
    MqttConfig::load(&file).unwrap()
}

async fn eventually<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    ocm_testenv::eventually(what, Duration::from_secs(90), check).await
}

#[tokio::test]
async fn a_manifest_work_travels_over_mosquitto_survives_a_broker_restart_and_is_deleted() {
    let (hub_cluster, spoke_cluster) =
        tokio::join!(Cluster::start("mqtt-hub"), Cluster::start("mqtt-spoke"));
    let (hub_cluster, spoke_cluster) = (hub_cluster.unwrap(), spoke_cluster.unwrap());
    let (hub, spoke) = (
        hub_cluster.client().unwrap(),
        spoke_cluster.client().unwrap(),
    );
    let mut broker = Mosquitto::start(ACL).unwrap();
    let hub_mqtt = mqtt_config(&broker, "ocm-hub")
        .settings(
            "ocm-hub",
            Role::Source {
                source_id: "kube".into(),
            },
            1024,
        )
        .unwrap();
    let agent_mqtt = mqtt_config(&broker, "cluster1");

    let cancel = CancellationToken::new();
    let running_hub = start_hub_with(
        &hub,
        vec![BOOTSTRAP_USER.into()],
        Duration::from_secs(3600),
        ocm_testenv::free_port().unwrap(),
        |config| config.work_mqtt = Some(hub_mqtt),
        &cancel,
    )
    .await;
    let running = CancellationToken::new();
    let agent = tokio::spawn(agent::run(
        spoke.clone(),
        agent_config(
            &spoke,
            running_hub.port,
            &running_hub.ca,
            &running_hub.token,
            WorkOptions {
                mqtt: Some(agent_mqtt),
                ..WorkOptions::default()
            },
        ),
        running.clone(),
    ));

    wait_cluster_available(&hub, "cluster1").await;

    // Created on the hub → over Mosquitto → applied → status back over Mosquitto.
    let works: Api<ManifestWork> = Api::namespaced(hub.clone(), "cluster1");
    let created = Instant::now();
    works
        .create(
            &PostParams::default(),
            &web_work("over-mqtt", "cluster1", "mqtt-app", 2, "blue"),
        )
        .await
        .unwrap();
    eventually(
        "Applied and Available with 2 replicas fed back",
        async || {
            let work = works.get("over-mqtt").await.unwrap();
            (holds(&work, CONDITION_APPLIED)
                && holds(&work, CONDITION_AVAILABLE)
                && feedback(&work, "AvailableReplicas") == Some(2))
            .then_some(())
        },
    )
    .await;
    eprintln!(
        "created → Available with feedback over MQTT: {:?}",
        created.elapsed()
    );
    assert!(
        broker
            .log()
            .contains("sources/kube/consumers/cluster1/sourceevents"),
        "the agent subscribed to its own spec topic on the broker:\n{}",
        broker.log()
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(spoke.clone(), "mqtt-app");
    assert_eq!(
        config_maps.get("settings").await.unwrap().data.unwrap()["mode"],
        "blue"
    );

    // The broker goes away; the work changes meanwhile; nothing is lost once it is back.
    broker.stop();
    let mut changed = works.get("over-mqtt").await.unwrap();
    changed.spec = web_work("over-mqtt", "cluster1", "mqtt-app", 3, "green").spec;
    works
        .replace("over-mqtt", &PostParams::default(), &changed)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.restart().unwrap();
    eventually(
        "the change applied and fed back after the broker came back",
        async || {
            let work = works.get("over-mqtt").await.unwrap();
            (holds(&work, CONDITION_APPLIED) && feedback(&work, "AvailableReplicas") == Some(3))
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        config_maps.get("settings").await.unwrap().data.unwrap()["mode"],
        "green"
    );

    // Deleted on the hub: the agent removes the resources and reports Deleted over MQTT, so
    // the hub lets the work go.
    works
        .delete("over-mqtt", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the ManifestWork gone from the hub", async || {
        works
            .get_opt("over-mqtt")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(config_maps.get_opt("settings").await.unwrap().is_none());

    running.cancel();
    agent.await.unwrap().unwrap();
    cancel.cancel();
    hub_cluster.stop();
    spoke_cluster.stop();
}
