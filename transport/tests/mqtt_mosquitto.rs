//! The MQTT transport against a real Mosquitto (Debian package `mosquitto`, installed by
//! `cargo xtask test`) with TLS 1.3 and required client certificates, on 127.0.0.1.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

#[path = "support/go_interop.rs"]
mod go_interop;
#[path = "support/mosquitto.rs"]
mod mosquitto;
mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mosquitto::Mosquitto;
use ocm_transport::backoff::Backoff;
use ocm_transport::event::{CloudEvent, JSON};
use ocm_transport::mqtt_config::MqttConfigFile;
use ocm_transport::mqtt_topics::Topics;
use ocm_transport::mqtt_transport::{self, MqttClient, MqttSettings, Role};
use ocm_transport::tls::{self, ReloadableIdentity};
use support::{TestCa, event};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn topics() -> Topics {
    Topics::new(
        "sources/hub/clusters/+/sourceevents",
        "sources/hub/clusters/+/agentevents",
        None,
        None,
    )
    .unwrap()
}

fn agent_topics(cluster: &str) -> Topics {
    Topics::new(
        &format!("sources/hub/clusters/{cluster}/sourceevents"),
        &format!("sources/hub/clusters/{cluster}/agentevents"),
        None,
        None,
    )
    .unwrap()
}

struct Running {
    client: MqttClient,
    events: mpsc::Receiver<CloudEvent>,
    subscribed: mpsc::Receiver<()>,
    cancel: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn start_client(
    broker: &Mosquitto,
    pki: &TestCa,
    name: &str,
    role: Role,
    topics: Topics,
) -> Running {
    let identity = pki.client(name, None);
    let tls = tls::mqtt_client_config(
        &pki.pem(),
        Some(ReloadableIdentity::new(&identity).unwrap()),
    )
    .unwrap();
    let settings = MqttSettings {
        host: "127.0.0.1".into(),
        port: broker.port,
        client_id: format!("{name}-client"),
        credentials: None,
        tls: Some(Arc::new(tls)),
        keep_alive: Duration::from_secs(60),
        topics,
        role,
        max_packet_size: 512 << 10,
        queue_capacity: 64,
    };
    let (client, eventloop) = mqtt_transport::connect(settings).unwrap();
    let (events_tx, events) = mpsc::channel(16);
    let (subscribed_tx, subscribed) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let backoff = Backoff {
        initial: Duration::from_millis(50),
        factor: 2.0,
        cap: Duration::from_millis(500),
        jitter: 0.5,
    };
    tokio::spawn(eventloop.run(events_tx, subscribed_tx, backoff, cancel.clone()));
    Running {
        client,
        events,
        subscribed,
        cancel,
    }
}

async fn next<T>(receiver: &mut mpsc::Receiver<T>, what: &str) -> T {
    tokio::time::timeout(Duration::from_secs(10), receiver.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap()
}

const SPEC: &str = "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request";
const STATUS: &str =
    "io.open-cluster-management.works.v1alpha1.manifestbundles.status.update_request";

#[tokio::test]
async fn spec_reaches_only_its_cluster_and_status_reaches_the_source() {
    let pki = TestCa::new("mqtt-ca");
    let broker = Mosquitto::start(&pki);
    let mut source = start_client(
        &broker,
        &pki,
        "hub",
        Role::Source {
            source_id: "hub".into(),
        },
        topics(),
    );
    let mut cluster1 = start_client(
        &broker,
        &pki,
        "cluster1-work-agent",
        Role::Agent {
            cluster: "cluster1".into(),
        },
        agent_topics("cluster1"),
    );
    let mut cluster2 = start_client(
        &broker,
        &pki,
        "cluster2-work-agent",
        Role::Agent {
            cluster: "cluster2".into(),
        },
        agent_topics("cluster2"),
    );
    for (running, what) in [
        (&mut source, "source"),
        (&mut cluster1, "cluster1"),
        (&mut cluster2, "cluster2"),
    ] {
        next(&mut running.subscribed, what).await;
    }

    let spec = event(SPEC, "hub", "cluster1", "");
    source.client.publish(&spec).await.unwrap();
    let received = next(&mut cluster1.events, "the spec event at cluster1").await;
    assert_eq!(
        (&received.id, &received.source, &received.event_type),
        (&spec.id, &spec.source, &spec.event_type)
    );
    assert_eq!((received.time, &received.data), (spec.time, &spec.data));
    // MQTT carries no types: extensions arrive as strings and convert on use.
    assert_eq!(received.extension_integer("resourceversion"), Some(2));
    assert_eq!(received.cluster_name(), Some("cluster1"));

    let status = event(STATUS, "cluster1-work-agent", "cluster1", "hub");
    cluster1.client.publish(&status).await.unwrap();
    let received = next(&mut source.events, "the status at the source").await;
    assert_eq!((received.id, received.source), (status.id, status.source));

    // cluster2 speaking for cluster1 on its own topic: the source refuses it, and takes
    // cluster2's own status after it.
    let forged = event(STATUS, "cluster2-work-agent", "cluster1", "hub");
    cluster2.client.publish(&forged).await.unwrap();
    let own = event(STATUS, "cluster2-work-agent", "cluster2", "hub");
    cluster2.client.publish(&own).await.unwrap();
    let received = next(&mut source.events, "cluster2's own status at the source").await;
    assert_eq!(
        received.id, own.id,
        "the event claiming another cluster than its topic's was refused"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        cluster2.events.try_recv().is_err(),
        "cluster2 received cluster1's event"
    );
}

#[tokio::test]
async fn after_a_broker_restart_the_agent_resubscribes_and_signals_a_resync() {
    let pki = TestCa::new("mqtt-ca");
    let mut broker = Mosquitto::start(&pki);
    let mut source = start_client(
        &broker,
        &pki,
        "hub",
        Role::Source {
            source_id: "hub".into(),
        },
        topics(),
    );
    let mut agent = start_client(
        &broker,
        &pki,
        "cluster1-work-agent",
        Role::Agent {
            cluster: "cluster1".into(),
        },
        agent_topics("cluster1"),
    );
    next(&mut source.subscribed, "source").await;
    next(&mut agent.subscribed, "agent").await;

    broker.restart();
    next(&mut agent.subscribed, "the agent's resubscription").await;
    next(&mut source.subscribed, "the source's resubscription").await;
    let spec = event(SPEC, "hub", "cluster1", "");
    source.client.publish(&spec).await.unwrap();
    assert_eq!(
        next(&mut agent.events, "a spec event after the restart")
            .await
            .id,
        spec.id
    );
}

#[tokio::test]
async fn a_client_without_certificate_is_refused_by_the_broker() {
    let pki = TestCa::new("mqtt-ca");
    let broker = Mosquitto::start(&pki);
    let tls = tls::mqtt_client_config(&pki.pem(), None).unwrap();
    let mut options = rumqttc::v5::MqttOptions::new("anonymous", "127.0.0.1", broker.port);
    options.set_transport(rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Rustls(
        Arc::new(tls),
    )));
    let (_client, mut eventloop) = rumqttc::v5::AsyncClient::new(options, 4);
    let outcome = tokio::time::timeout(Duration::from_secs(10), eventloop.poll())
        .await
        .unwrap();
    assert!(
        outcome.is_err(),
        "connected without a client certificate: {outcome:?}"
    );
}

/// An OCM MQTT config file (`BuildMQTTOptionsFromFlags`' format) for `name`, with its client
/// certificate written beside it.
fn ocm_mqtt_config(dir: &std::path::Path, broker: &Mosquitto, pki: &TestCa, name: &str) -> PathBuf {
    let identity = pki.client(name, None);
    std::fs::write(dir.join("ca.pem"), pki.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.crt")), &identity.cert_chain).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), &identity.key).unwrap();
    let config = format!(
        "brokerHost: 127.0.0.1:{port}\ncaFile: {d}/ca.pem\nclientCertFile: {d}/{name}.crt\nclientKeyFile: {d}/{name}.key\nkeepAlive: 60\npubQoS: 1\nsubQoS: 1\ntopics:\n  sourceEvents: sources/hub/clusters/+/sourceevents\n  agentEvents: sources/hub/clusters/+/agentevents\n",
        port = broker.port,
        d = dir.display()
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, config).unwrap();
    path
}

#[tokio::test]
async fn ocms_own_go_mqtt_agent_and_our_source_understand_each_other() {
    let pki = TestCa::new("mqtt-ca");
    let broker = Mosquitto::start(&pki);
    let files = tempfile::tempdir().unwrap();
    let binary = tokio::task::spawn_blocking(go_interop::build)
        .await
        .unwrap();

    // Our source reads the same OCM config format the Go agent reads.
    let source_file = ocm_mqtt_config(files.path(), &broker, &pki, "hub");
    let source_config = MqttConfigFile::from_yaml(&std::fs::read_to_string(&source_file).unwrap())
        .unwrap()
        .resolve(|p| std::fs::read_to_string(p))
        .unwrap();
    let (ca, identity) = source_config.tls.unwrap();
    let tls = tls::mqtt_client_config(
        &ca.unwrap(),
        Some(ReloadableIdentity::new(&identity).unwrap()),
    )
    .unwrap();
    let settings = MqttSettings {
        host: source_config.host,
        port: source_config.port,
        client_id: "hub-client".into(),
        credentials: source_config.credentials,
        tls: Some(Arc::new(tls)),
        keep_alive: source_config.keep_alive,
        topics: source_config.topics,
        role: Role::Source {
            source_id: "hub".into(),
        },
        max_packet_size: 512 << 10,
        queue_capacity: 64,
    };
    let (source, eventloop) = mqtt_transport::connect(settings).unwrap();
    let (events_tx, mut events) = mpsc::channel(16);
    let (subscribed_tx, mut subscribed) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    tokio::spawn(eventloop.run(events_tx, subscribed_tx, Backoff::default(), cancel.clone()));
    next(&mut subscribed, "the source's subscription").await;

    let agent_file = ocm_mqtt_config(files.path(), &broker, &pki, "cluster1-work-agent");
    let mut child = tokio::process::Command::new(&binary)
        .arg(format!("--mqtt-config={}", agent_file.display()))
        .arg("--cluster=cluster1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // The Go agent's status update, published on the topic OCM derives, decoded by us.
    let status = next(&mut events, "the Go agent's status update").await;
    assert_eq!(status.id, "go-status-1");
    assert_eq!(status.event_type, STATUS);
    assert_eq!(status.source, "cluster1-work-agent");
    assert_eq!(status.time, "2025-12-16T06:00:17.923Z".parse().ok());
    assert_eq!(status.data_content_type.as_deref(), Some(JSON));
    assert_eq!(status.data.as_deref(), Some(&br#"{"conditions":[]}"#[..]));
    assert_eq!(status.cluster_name(), Some("cluster1"));
    assert_eq!(status.extension_str("originalsource"), Some("kube"));
    assert_eq!(status.extension_integer("resourceversion"), Some(3));
    assert_eq!(
        status.extension_timestamp("deletiontimestamp"),
        "2025-12-16T06:05:00Z".parse().ok()
    );
    assert_eq!(
        status.extension_str("sequenceid"),
        Some("2000808179729960960")
    );

    // Our spec event, decoded by OCM's reader. QoS 1 with clean start delivers only to a live
    // subscription, so repeat it until the Go agent has one and exits with what it got.
    let spec = event(SPEC, "hub", "cluster1", "");
    let stdout = child.stdout.take().unwrap();
    let read = tokio::spawn(async move {
        use tokio::io::AsyncReadExt as _;
        let mut out = Vec::new();
        let mut stdout = stdout;
        stdout.read_to_end(&mut out).await.unwrap();
        out
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !read.is_finished() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Go agent received nothing"
        );
        source.publish(&spec).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "the Go agent failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&read.await.unwrap()).unwrap();
    let received = &report["event"];
    assert_eq!(received["id"], spec.id.as_str());
    assert_eq!(received["type"], SPEC);
    assert_eq!(received["source"], "hub");
    assert_eq!(received["time"], "2025-12-16T06:00:17.771003Z");
    assert_eq!(received["clustername"], "cluster1");
    assert_eq!(received["originalsource"], "");
    assert_eq!(received["resourceid"], "uid-1");
    assert_eq!(received["datacontenttype"], JSON);
    assert_eq!(received["data"], serde_json::json!({"manifests": []}));
    // Over MQTT every extension arrives as a string; OCM's codecs convert on use.
    assert_eq!(received["resourceversion"], "2");
    assert_eq!(report["extensionTypes"]["resourceversion"], "string");
    cancel.cancel();
}
