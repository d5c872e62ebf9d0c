//! One client interface over either transport (`ocm_transport::client`): the same agent code
//! runs over gRPC to our broker and over MQTT through a real Mosquitto, both with mutual TLS on
//! 127.0.0.1. It gets a resync cue per data type, only its own cluster's events of the data types
//! it asked for, and its status reaches the hub side.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

#[path = "support/mosquitto.rs"]
mod mosquitto;
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mosquitto::Mosquitto;
use ocm_transport::access::AccessRequest;
use ocm_transport::backoff::Backoff;
use ocm_transport::broker::{self, Authorizer, Broker, BrokerConfig, EventHandler, Identity};
use ocm_transport::client::{
    self, Inbox, InboxOptions, Interest, Publisher, Role, TransportConfig,
};
use ocm_transport::event::CloudEvent;
use ocm_transport::event_type::DataType;
use ocm_transport::grpc_config::GrpcClientConfig;
use ocm_transport::mqtt_topics::Topics;
use ocm_transport::mqtt_transport::MqttSettings;
use ocm_transport::tls::{self, ReloadableIdentity};
use support::TestCa;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::Status;

const WORK_SPEC: &str =
    "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request";
const WORK_STATUS: &str =
    "io.open-cluster-management.works.v1alpha1.manifestbundles.status.update_request";
const LEASE_SPEC: &str = "coordination.k8s.io.v1.leases.spec.update_request";
const CSR_SPEC: &str = "certificates.k8s.io.v1.certificatesigningrequests.spec.update_request";

/// Extensions of string type only, so events compare equal after either transport (MQTT carries
/// every extension as a string).
fn event(event_type: &str, source: &str, cluster: &str) -> CloudEvent {
    let mut event = support::event(event_type, source, cluster, "");
    event.extensions.remove("resourceversion");
    event
}

fn quick() -> InboxOptions {
    InboxOptions {
        backoff: Backoff {
            initial: Duration::from_millis(50),
            factor: 2.0,
            cap: Duration::from_millis(400),
            jitter: 0.5,
        },
        ..InboxOptions::default()
    }
}

async fn next<T>(receiver: &mut mpsc::Receiver<T>, what: &str) -> T {
    tokio::time::timeout(Duration::from_secs(10), receiver.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap()
}

/// An agent of cluster1 interested in works and leases, opened on `config`; returns once both
/// data types have had their resync cue (so both are subscribed).
async fn open_agent(config: TransportConfig) -> (Publisher, Inbox, CancellationToken) {
    let cancel = CancellationToken::new();
    let interest = Interest {
        role: Role::Agent {
            cluster: "cluster1".into(),
        },
        data_types: vec![DataType::manifest_bundles(), DataType::leases()],
    };
    let (publisher, mut inbox) = client::open(config, interest, quick(), cancel.clone()).unwrap();
    let mut cued = vec![
        next(&mut inbox.resync, "a resync cue").await,
        next(&mut inbox.resync, "a second resync cue").await,
    ];
    cued.sort();
    let mut expected = vec![DataType::manifest_bundles(), DataType::leases()];
    expected.sort();
    assert_eq!(cued, expected);
    (publisher, inbox, cancel)
}

/// The agent side, written once: it receives exactly its cluster's work spec and lease (in
/// whatever order the transport interleaves them), then reports a work status.
async fn agent_receives_its_events_and_reports_status(publisher: &Publisher, inbox: &mut Inbox) {
    let mut received = vec![
        next(&mut inbox.events, "an event").await,
        next(&mut inbox.events, "a second event").await,
    ];
    received.sort_by(|a, b| a.event_type.cmp(&b.event_type));
    assert_eq!(
        received,
        [
            event(LEASE_SPEC, "hub", "cluster1"),
            event(WORK_SPEC, "hub", "cluster1")
        ]
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        inbox.events.try_recv().is_err(),
        "another cluster's event or an uninteresting data type arrived"
    );
    publisher
        .publish(&event(WORK_STATUS, "cluster1-work-agent", "cluster1"))
        .await
        .unwrap();
}

#[derive(Default)]
struct Recorder(Mutex<Vec<CloudEvent>>);

#[tonic::async_trait]
impl EventHandler for Recorder {
    async fn handle(&self, _: &Identity, event: CloudEvent) -> Result<(), Status> {
        self.0.lock().unwrap().push(event);
        Ok(())
    }
}

struct AllowAll;

#[tonic::async_trait]
impl Authorizer for AllowAll {
    async fn authorize(&self, _: &Identity, _: &AccessRequest) -> Result<bool, String> {
        Ok(true)
    }
}

#[tokio::test]
async fn an_agent_over_grpc_gets_its_events_and_its_status_reaches_the_hub() {
    let ca = TestCa::new("hub-ca");
    let serving = ca.server("hub");
    let recorder = Arc::new(Recorder::default());
    let handlers: HashMap<DataType, Arc<dyn EventHandler>> = HashMap::from([(
        DataType::manifest_bundles(),
        Arc::clone(&recorder) as Arc<dyn EventHandler>,
    )]);
    let broker = Broker::new(BrokerConfig::default(), handlers, None, Arc::new(AllowAll));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server_tls =
        tls::server_config(ReloadableIdentity::new(&serving).unwrap(), &ca.pem()).unwrap();
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(broker::serve(
        broker.clone(),
        listener,
        Arc::new(server_tls),
        4 << 20,
        async move { stopped.cancelled().await },
    ));

    let config = TransportConfig::Grpc(GrpcClientConfig {
        url: format!("localhost:{port}"),
        ca_pem: Some(ca.pem()),
        client_identity: Some(ca.client(
            "system:open-cluster-management:cluster1:agent",
            Some("system:open-cluster-management:cluster1"),
        )),
        token: None,
        keep_alive: None,
        server_healthiness_timeout: None,
        proxy: None,
    });
    let (publisher, mut inbox, cancel) = open_agent(config).await;

    // Nobody subscribed to CSRs or to cluster2, so the broker routes those nowhere.
    assert_eq!(broker.send(&event(CSR_SPEC, "hub", "cluster1")).unwrap(), 0);
    assert_eq!(
        broker.send(&event(WORK_SPEC, "hub", "cluster2")).unwrap(),
        0
    );
    assert_eq!(
        broker.send(&event(WORK_SPEC, "hub", "cluster1")).unwrap(),
        1
    );
    assert_eq!(
        broker.send(&event(LEASE_SPEC, "hub", "cluster1")).unwrap(),
        1
    );
    agent_receives_its_events_and_reports_status(&publisher, &mut inbox).await;
    assert_eq!(
        *recorder.0.lock().unwrap(),
        [event(WORK_STATUS, "cluster1-work-agent", "cluster1")]
    );

    // Cancelling ends the subscriptions: the broker sees them go.
    cancel.cancel();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while broker.subscriber_count() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscriptions outlived cancel"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
}

fn mqtt(broker: &Mosquitto, ca: &TestCa, name: &str, topics: Topics) -> TransportConfig {
    let identity = ca.client(name, None);
    let tls = tls::mqtt_client_config(&ca.pem(), Some(ReloadableIdentity::new(&identity).unwrap()))
        .unwrap();
    let role = if name == "hub" {
        ocm_transport::mqtt_transport::Role::Source {
            source_id: "hub".into(),
        }
    } else {
        ocm_transport::mqtt_transport::Role::Agent {
            cluster: "cluster1".into(),
        }
    };
    TransportConfig::Mqtt(MqttSettings {
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
    })
}

#[tokio::test]
async fn an_agent_over_mqtt_gets_its_events_and_its_status_reaches_the_source() {
    let ca = TestCa::new("mqtt-ca");
    let broker = Mosquitto::start(&ca);
    let source_topics = Topics::new(
        "sources/hub/clusters/+/sourceevents",
        "sources/hub/clusters/+/agentevents",
        None,
        None,
    )
    .unwrap();
    let agent_topics = Topics::new(
        "sources/hub/clusters/cluster1/sourceevents",
        "sources/hub/clusters/cluster1/agentevents",
        None,
        None,
    )
    .unwrap();
    let source_cancel = CancellationToken::new();
    let (source, mut source_inbox) = client::open(
        mqtt(&broker, &ca, "hub", source_topics),
        Interest {
            role: Role::Source {
                source_id: "hub".into(),
            },
            data_types: vec![DataType::manifest_bundles()],
        },
        quick(),
        source_cancel.clone(),
    )
    .unwrap();
    next(&mut source_inbox.resync, "the source's subscription").await;
    let (publisher, mut inbox, cancel) =
        open_agent(mqtt(&broker, &ca, "cluster1-work-agent", agent_topics)).await;

    // cluster1's topic carries the CSR too; the inbox drops it, since the agent asked for works
    // and leases only. cluster2's topic is not the agent's at all.
    for (event_type, cluster) in [
        (CSR_SPEC, "cluster1"),
        (WORK_SPEC, "cluster2"),
        (WORK_SPEC, "cluster1"),
        (LEASE_SPEC, "cluster1"),
    ] {
        source
            .publish(&event(event_type, "hub", cluster))
            .await
            .unwrap();
    }
    agent_receives_its_events_and_reports_status(&publisher, &mut inbox).await;
    assert_eq!(
        next(&mut source_inbox.events, "the agent's status").await,
        event(WORK_STATUS, "cluster1-work-agent", "cluster1")
    );
    cancel.cancel();
    source_cancel.cancel();
}
