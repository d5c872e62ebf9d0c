//! The broker and the client over real mutual TLS on 127.0.0.1: tonic clients as agents, and
//! our own reconnecting client across broker restarts and lost heartbeats.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

#[path = "support/go_interop.rs"]
mod go_interop;
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ocm_proto::{CloudEventServiceClient, PublishRequest, SubscriptionRequest};
use ocm_transport::access::AccessRequest;
use ocm_transport::backoff::Backoff;
use ocm_transport::broker::{
    self, Authorizer, Broker, BrokerConfig, EventHandler, Identity, TokenAuthenticator,
};
use ocm_transport::event::{CloudEvent, ExtensionValue, JSON, SPEC_VERSION};
use ocm_transport::event_type::{DataType, HEARTBEAT_TYPE};
use ocm_transport::grpc_binding;
use ocm_transport::grpc_client::{GrpcClient, SubscribeOptions};
use ocm_transport::grpc_config::GrpcClientConfig;
use ocm_transport::http_proxy::HttpProxy;
use ocm_transport::tls::{self, PemIdentity, ReloadableIdentity};
use support::TestCa;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

const WORK_STATUS: &str =
    "io.open-cluster-management.works.v1alpha1.manifestbundles.status.update_request";
const WORK_SPEC: &str =
    "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.update_request";
const BOOTSTRAP_TOKEN: &str = "bootstrap-token";

struct Pki {
    ca: TestCa,
}

impl Pki {
    fn new() -> Self {
        Self {
            ca: TestCa::new("hub-ca"),
        }
    }

    fn agent(&self, cluster: &str) -> PemIdentity {
        self.agent_named(cluster, "agent")
    }

    fn agent_named(&self, cluster: &str, agent: &str) -> PemIdentity {
        let cn = format!("system:open-cluster-management:{cluster}:{agent}");
        self.ca.client(
            &cn,
            Some(&format!("system:open-cluster-management:{cluster}")),
        )
    }
}

/// Records what agents published.
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, CloudEvent)>>);

#[tonic::async_trait]
impl EventHandler for Recorder {
    async fn handle(&self, who: &Identity, event: CloudEvent) -> Result<(), Status> {
        self.0.lock().unwrap().push((who.user.clone(), event));
        Ok(())
    }
}

/// Stands in for RBAC: an agent may act only in its own cluster's namespace.
struct OwnClusterOnly;

#[tonic::async_trait]
impl Authorizer for OwnClusterOnly {
    async fn authorize(&self, who: &Identity, request: &AccessRequest) -> Result<bool, String> {
        Ok(who
            .groups
            .iter()
            .any(|g| *g == format!("system:open-cluster-management:{}", request.namespace)))
    }
}

struct StaticToken;

#[tonic::async_trait]
impl TokenAuthenticator for StaticToken {
    async fn authenticate(&self, token: &str) -> Result<Identity, String> {
        if token == BOOTSTRAP_TOKEN {
            Ok(Identity {
                user: "bootstrap".into(),
                groups: vec!["system:open-cluster-management:cluster1".into()],
            })
        } else {
            Err("unknown token".into())
        }
    }
}

struct Hub {
    pki: Arc<Pki>,
    broker: Broker,
    recorder: Arc<Recorder>,
    /// The broker's serving certificate, reloadable while it runs.
    serving: Arc<ReloadableIdentity>,
    port: u16,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Hub {
    /// Stops the broker (ending every stream) and waits until it has.
    async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

async fn start_hub(heartbeat: Duration, max_message_size: usize) -> Hub {
    start_hub_with(Arc::new(Pki::new()), heartbeat, max_message_size, 0).await
}

async fn start_hub_with(
    pki: Arc<Pki>,
    heartbeat: Duration,
    max_message_size: usize,
    port: u16,
) -> Hub {
    let serving = ReloadableIdentity::new(&pki.ca.server("hub")).unwrap();
    let server_tls = tls::server_config(Arc::clone(&serving), &pki.ca.pem()).unwrap();
    let recorder = Arc::new(Recorder::default());
    let handlers: HashMap<DataType, Arc<dyn EventHandler>> = HashMap::from([(
        DataType::manifest_bundles(),
        Arc::clone(&recorder) as Arc<dyn EventHandler>,
    )]);
    let config = BrokerConfig {
        heartbeat_interval: heartbeat,
        queue_capacity: 100,
        ..BrokerConfig::default()
    };
    let broker = Broker::new(
        config,
        handlers,
        Some(Arc::new(StaticToken)),
        Arc::new(OwnClusterOnly),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(broker::serve(
        broker.clone(),
        listener,
        Arc::new(server_tls),
        max_message_size,
        async {
            let _ = stop.await;
        },
    ));
    Hub {
        pki,
        broker,
        recorder,
        serving,
        port,
        shutdown: Some(shutdown),
        server,
    }
}

async fn channel(hub: &Hub, identity: Option<&PemIdentity>) -> Channel {
    let identity = identity.map(|i| ReloadableIdentity::new(i).unwrap());
    let config = Arc::new(tls::client_config(&hub.pki.ca.pem(), identity).unwrap());
    let port = hub.port;
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(&config));
            async move {
                let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .unwrap()
}

fn work_event(event_type: &str, cluster: Option<&str>, data: &[u8]) -> CloudEvent {
    let mut event = CloudEvent {
        id: uuid_like(),
        source: "cluster1-work-agent".into(),
        spec_version: SPEC_VERSION.into(),
        event_type: event_type.into(),
        data_content_type: Some(JSON.into()),
        data: Some(data.to_vec()),
        ..CloudEvent::default()
    };
    event
        .extensions
        .insert("resourceversion".into(), ExtensionValue::Integer(1));
    event
        .extensions
        .insert("resourceid".into(), ExtensionValue::String("uid-1".into()));
    if let Some(cluster) = cluster {
        event
            .extensions
            .insert("clustername".into(), ExtensionValue::String(cluster.into()));
    }
    event
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("event-{}", N.fetch_add(1, Ordering::Relaxed))
}

fn subscription(cluster: &str) -> SubscriptionRequest {
    SubscriptionRequest {
        source: String::new(),
        cluster_name: cluster.into(),
        data_type: DataType::manifest_bundles().to_string(),
    }
}

async fn publish(
    client: &mut CloudEventServiceClient<Channel>,
    event: &CloudEvent,
) -> Result<(), Status> {
    client
        .publish(PublishRequest {
            event: Some(grpc_binding::encode(event)),
        })
        .await
        .map(|_| ())
}

#[tokio::test]
async fn subscribe_sends_the_subscription_id_then_its_clusters_events_and_heartbeats() {
    let hub = start_hub(Duration::from_millis(300), 4 << 20).await;
    let mut client =
        CloudEventServiceClient::new(channel(&hub, Some(&hub.pki.agent("cluster1"))).await);
    let response = client.subscribe(subscription("cluster1")).await.unwrap();
    let id = response
        .metadata()
        .get(broker::SUBSCRIPTION_ID_HEADER)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let mut stream = response.into_inner();

    let other_cluster = work_event(WORK_SPEC, Some("cluster2"), b"{}");
    let own = work_event(WORK_SPEC, Some("cluster1"), br#"{"manifests":[]}"#);
    assert_eq!(hub.broker.send(&other_cluster).unwrap(), 0);
    assert_eq!(hub.broker.send(&own).unwrap(), 1);
    let received = stream.message().await.unwrap().unwrap();
    assert_eq!(grpc_binding::decode(received).unwrap(), own);

    let heartbeat = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(heartbeat.r#type, HEARTBEAT_TYPE);
    assert_eq!(heartbeat.spec_version, "1.0");
    assert!(
        heartbeat.attributes.is_empty() && heartbeat.data.is_none() && !heartbeat.id.is_empty()
    );
}

#[tokio::test]
async fn publish_reaches_the_handler_of_its_data_type_as_the_authenticated_agent() {
    let hub = start_hub(Duration::from_secs(10), 4 << 20).await;
    let mut client =
        CloudEventServiceClient::new(channel(&hub, Some(&hub.pki.agent("cluster1"))).await);
    let event = work_event(WORK_STATUS, Some("cluster1"), br#"{"conditions":[]}"#);
    publish(&mut client, &event).await.unwrap();
    let recorded = hub.recorder.0.lock().unwrap().clone();
    assert_eq!(
        recorded,
        [(
            "system:open-cluster-management:cluster1:agent".to_owned(),
            event
        )]
    );
}

/// h2 here is patched to release a connection's buffers whenever they empty
/// (`third_party/h2/PATCHES.md`): events many frames long, in both directions, each after the
/// connection went idle, and interleaved with small ones, must arrive whole and in order.
#[tokio::test]
async fn events_larger_than_the_connection_buffers_cross_an_idle_connection_whole() {
    let hub = start_hub(Duration::from_secs(10), 4 << 20).await;
    let mut client =
        CloudEventServiceClient::new(channel(&hub, Some(&hub.pki.agent("cluster1"))).await);
    let mut stream = client
        .subscribe(subscription("cluster1"))
        .await
        .unwrap()
        .into_inner();
    // Not a repeating pattern, so a misplaced chunk cannot go unnoticed.
    let payload = |size: usize, seed: u8| -> Vec<u8> {
        (0..size)
            .map(|i| b'a' + ((i / 7 + usize::from(seed)) % 26) as u8)
            .collect()
    };
    let mut sent = Vec::new();
    for (round, size) in [(1_u8, 1 << 20), (2, 40 << 10), (3, 17), (4, 3 << 20)] {
        // Idle long enough for every buffer on both ends to have been flushed and released.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let up = work_event(WORK_STATUS, Some("cluster1"), &payload(size, round));
        publish(&mut client, &up).await.unwrap();
        sent.push(up);
        let down = work_event(WORK_SPEC, Some("cluster1"), &payload(size, round + 100));
        assert_eq!(hub.broker.send(&down).unwrap(), 1);
        let received = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            grpc_binding::decode(received).unwrap(),
            down,
            "round {round}: {size} bytes to the agent"
        );
    }
    let recorded: Vec<CloudEvent> = hub
        .recorder
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(_, event)| event.clone())
        .collect();
    assert_eq!(
        recorded, sent,
        "every event from the agent, whole and in order"
    );
}

#[tokio::test]
async fn an_agent_may_neither_publish_nor_subscribe_for_another_cluster() {
    let hub = start_hub(Duration::from_secs(10), 4 << 20).await;
    let mut client =
        CloudEventServiceClient::new(channel(&hub, Some(&hub.pki.agent("cluster1"))).await);
    let err = publish(
        &mut client,
        &work_event(WORK_STATUS, Some("cluster2"), b"{}"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err}");
    let err = client
        .subscribe(subscription("cluster2"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err}");
    assert!(hub.recorder.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn bad_events_are_refused_with_clear_errors_while_streams_carry_on() {
    let hub = start_hub(Duration::from_secs(10), 64 << 10).await;
    let mut client =
        CloudEventServiceClient::new(channel(&hub, Some(&hub.pki.agent("cluster1"))).await);
    let mut stream = client
        .subscribe(subscription("cluster1"))
        .await
        .unwrap()
        .into_inner();

    let mut no_spec_version =
        grpc_binding::encode(&work_event(WORK_STATUS, Some("cluster1"), b"{}"));
    no_spec_version.spec_version.clear();
    let err = client
        .publish(PublishRequest {
            event: Some(no_spec_version),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "CloudEvent has no spec_version")
    );

    let err = publish(&mut client, &work_event(WORK_STATUS, None, b"{}"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("ce-clustername"), "{err}");

    let err = publish(
        &mut client,
        &work_event("not.a.type", Some("cluster1"), b"{}"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");

    let lease = work_event(
        "coordination.k8s.io.v1.leases.spec.update_request",
        Some("cluster1"),
        b"{}",
    );
    let err = publish(&mut client, &lease).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .contains("no service for data type coordination.k8s.io.v1.leases"),
        "{err}"
    );

    let huge = work_event(WORK_STATUS, Some("cluster1"), &vec![b' '; 100 << 10]);
    let err = publish(&mut client, &huge).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err}");

    let event = work_event(WORK_SPEC, Some("cluster1"), b"{}");
    assert_eq!(hub.broker.send(&event).unwrap(), 1);
    assert_eq!(
        grpc_binding::decode(stream.message().await.unwrap().unwrap()).unwrap(),
        event
    );
    publish(
        &mut client,
        &work_event(WORK_STATUS, Some("cluster1"), b"{}"),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn callers_without_certificate_need_a_valid_bearer_token() {
    let hub = start_hub(Duration::from_secs(10), 4 << 20).await;
    let anonymous = channel(&hub, None).await;
    let mut client = CloudEventServiceClient::new(anonymous.clone());
    let err = publish(
        &mut client,
        &work_event(WORK_STATUS, Some("cluster1"), b"{}"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");

    let with_token = |token: &'static str| {
        CloudEventServiceClient::with_interceptor(
            anonymous.clone(),
            move |mut request: tonic::Request<()>| {
                request
                    .metadata_mut()
                    .insert("authorization", format!("Bearer {token}").parse().unwrap());
                Ok(request)
            },
        )
    };
    let err = with_token("forged")
        .publish(PublishRequest {
            event: Some(grpc_binding::encode(&work_event(
                WORK_STATUS,
                Some("cluster1"),
                b"{}",
            ))),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");
    with_token(BOOTSTRAP_TOKEN)
        .publish(PublishRequest {
            event: Some(grpc_binding::encode(&work_event(
                WORK_STATUS,
                Some("cluster1"),
                b"{}",
            ))),
        })
        .await
        .unwrap();
    assert_eq!(hub.recorder.0.lock().unwrap()[0].0, "bootstrap");
}

#[tokio::test]
async fn a_closed_stream_is_unsubscribed() {
    let hub = start_hub(Duration::from_millis(100), 4 << 20).await;
    let mut client =
        CloudEventServiceClient::new(channel(&hub, Some(&hub.pki.agent("cluster1"))).await);
    let stream = client
        .subscribe(subscription("cluster1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hub.broker.subscriber_count(), 1);
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while hub.broker.subscriber_count() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscription not removed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Our client, as an agent of `cluster1`, with quick reconnects for the test.
fn agent_client(hub: &Hub) -> GrpcClient {
    let config = GrpcClientConfig {
        url: format!("localhost:{}", hub.port),
        ca_pem: Some(hub.pki.ca.pem()),
        client_identity: Some(hub.pki.agent("cluster1")),
        token: None,
        keep_alive: None,
        server_healthiness_timeout: None,
        proxy: None,
    };
    GrpcClient::new(&config).unwrap()
}

fn quick(heartbeat_timeout: Option<Duration>) -> SubscribeOptions {
    let backoff = Backoff {
        initial: Duration::from_millis(50),
        factor: 2.0,
        cap: Duration::from_millis(400),
        jitter: 0.5,
    };
    SubscribeOptions {
        backoff,
        heartbeat_timeout,
    }
}

/// A subscription kept alive by our client on its own task.
struct Running {
    events: tokio::sync::mpsc::Receiver<CloudEvent>,
    subscribed: tokio::sync::mpsc::Receiver<String>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(client: &GrpcClient, options: SubscribeOptions) -> Self {
        let (events_tx, events) = tokio::sync::mpsc::channel(16);
        let (subscribed_tx, subscribed) = tokio::sync::mpsc::channel(16);
        let cancel = CancellationToken::new();
        let (client, token) = (client.clone(), cancel.clone());
        let task = tokio::spawn(async move {
            client
                .run_subscription(
                    subscription("cluster1"),
                    events_tx,
                    subscribed_tx,
                    options,
                    token,
                )
                .await;
        });
        Self {
            events,
            subscribed,
            cancel,
            task,
        }
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.task.await.unwrap();
    }
}

async fn next<T>(receiver: &mut tokio::sync::mpsc::Receiver<T>, what: &str) -> T {
    tokio::time::timeout(Duration::from_secs(10), receiver.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap()
}

#[tokio::test]
async fn the_client_resubscribes_after_a_broker_restart_and_signals_a_resync() {
    let hub = start_hub(Duration::from_secs(10), 4 << 20).await;
    let (pki, port) = (Arc::clone(&hub.pki), hub.port);
    let client = agent_client(&hub);
    let mut running = Running::start(&client, quick(None));

    let first = next(&mut running.subscribed, "the first subscription").await;
    let before = work_event(WORK_SPEC, Some("cluster1"), b"{}");
    assert_eq!(hub.broker.send(&before).unwrap(), 1);
    assert_eq!(next(&mut running.events, "an event").await, before);

    hub.stop().await;
    let restarted = start_hub_with(pki, Duration::from_secs(10), 4 << 20, port).await;
    let second = next(
        &mut running.subscribed,
        "a new subscription after the restart",
    )
    .await;
    assert_ne!(first, second);
    let after = work_event(WORK_SPEC, Some("cluster1"), br#"{"manifests":[]}"#);
    assert_eq!(restarted.broker.send(&after).unwrap(), 1);
    assert_eq!(
        next(&mut running.events, "an event after the restart").await,
        after
    );

    client
        .publish(&work_event(WORK_STATUS, Some("cluster1"), b"{}"))
        .await
        .unwrap();
    assert_eq!(restarted.recorder.0.lock().unwrap().len(), 1);
    running.stop().await;
}

#[tokio::test]
async fn client_keepalive_pings_are_answered_and_never_cost_the_stream() {
    // Go agents ping every 5 s or more; ping every 500 ms, with a 1 s answer deadline, and the
    // stream must survive: a broker that ignored pings, or sent GOAWAY for too many of them,
    // would make the client reconnect (and a Go agent resync).
    let hub = start_hub(Duration::from_secs(60), 4 << 20).await;
    let config = GrpcClientConfig {
        url: format!("localhost:{}", hub.port),
        ca_pem: Some(hub.pki.ca.pem()),
        client_identity: Some(hub.pki.agent("cluster1")),
        token: None,
        keep_alive: Some((Duration::from_millis(500), Duration::from_secs(1), true)),
        server_healthiness_timeout: None,
        proxy: None,
    };
    let client = GrpcClient::new(&config).unwrap();
    let mut running = Running::start(&client, quick(None));
    next(&mut running.subscribed, "the subscription").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        running.subscribed.try_recv().is_err(),
        "the client had to resubscribe while pinging"
    );
    let event = work_event(WORK_SPEC, Some("cluster1"), b"{}");
    assert_eq!(hub.broker.send(&event).unwrap(), 1);
    assert_eq!(
        next(&mut running.events, "an event after the pings").await,
        event
    );
    running.stop().await;
}

#[tokio::test]
async fn missing_heartbeats_make_the_client_reconnect() {
    // The broker's heartbeat is far slower than the client's patience.
    let hub = start_hub(Duration::from_secs(60), 4 << 20).await;
    let client = agent_client(&hub);
    let mut running = Running::start(&client, quick(Some(Duration::from_millis(300))));
    let first = next(&mut running.subscribed, "the first subscription").await;
    let second = next(
        &mut running.subscribed,
        "a resubscription after the heartbeat timeout",
    )
    .await;
    assert_ne!(first, second);
    running.stop().await;
}

#[tokio::test]
async fn a_slow_subscriber_is_dropped_without_delaying_the_others() {
    let hub = start_hub(Duration::from_secs(10), 4 << 20).await;
    let agent = hub.pki.agent("cluster1");
    // Separate connections, so HTTP/2 flow control couples nothing but the slow stream itself.
    let mut slow_client = CloudEventServiceClient::new(channel(&hub, Some(&agent)).await);
    let mut fast_client = CloudEventServiceClient::new(channel(&hub, Some(&agent)).await);
    let mut slow = slow_client
        .subscribe(subscription("cluster1"))
        .await
        .unwrap()
        .into_inner();
    let mut fast = fast_client
        .subscribe(subscription("cluster1"))
        .await
        .unwrap()
        .into_inner();

    // Far more than the slow stream's queue (100) and transport buffers can hold.
    let events = 400;
    let payload = vec![b' '; 64 << 10];
    let reader = tokio::spawn(async move {
        let mut received = 0;
        while received < events {
            let message = fast.message().await.unwrap().unwrap();
            if message.r#type != HEARTBEAT_TYPE {
                received += 1;
            }
        }
        received
    });
    let mut overflowed = false;
    for n in 0..events {
        let event = work_event(WORK_SPEC, Some("cluster1"), &payload);
        if hub.broker.send(&event).unwrap() < 2 {
            overflowed = true;
        }
        if n % 50 == 0 {
            tokio::task::yield_now().await;
        }
        // Give the fast reader room to keep up; the slow one reads nothing.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(overflowed, "the slow subscriber was never dropped");
    let received = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(received, events, "the fast subscriber received everything");

    // The slow stream ends with the reason once the client reads what was buffered.
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match slow.message().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the slow stream ended without saying why"),
                Err(status) => return status,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(ended.code(), Code::ResourceExhausted, "{ended}");
}

/// A real tinyproxy (Debian package `tinyproxy`, installed by `cargo xtask test`) on a free port.
struct Tinyproxy {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Tinyproxy {
    fn start() -> Self {
        use std::os::unix::fs::PermissionsExt as _;
        let binary = ["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("tinyproxy is required for the proxy tests: apt-get install tinyproxy (`cargo xtask test` installs it)");
        let dir = tempfile::tempdir().unwrap();
        // tinyproxy drops to `nobody` and must still write its log.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.path().join("tinyproxy.log");
        let config = dir.path().join("tinyproxy.conf");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 60\nMaxClients 20\nUser nobody\nGroup nogroup\nLogLevel Connect\nLogFile \"{}\"\n",
                log.display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new(binary)
            .arg("-d")
            .arg("-c")
            .arg(&config)
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "tinyproxy did not start: {:?}",
                std::fs::read_to_string(&log)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tinyproxy.log")).unwrap_or_default()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn an_agent_behind_an_http_connect_proxy_subscribes_and_publishes_through_it() {
    let hub = start_hub(Duration::from_secs(10), 4 << 20).await;
    let proxy = Tinyproxy::start();
    let config = |proxy_port: u16| GrpcClientConfig {
        url: format!("127.0.0.1:{}", hub.port),
        ca_pem: Some(hub.pki.ca.pem()),
        client_identity: Some(hub.pki.agent("cluster1")),
        token: None,
        keep_alive: None,
        server_healthiness_timeout: None,
        proxy: HttpProxy::parse(&format!("http://127.0.0.1:{proxy_port}")),
    };
    let client = GrpcClient::new(&config(proxy.port)).unwrap();
    let mut running = Running::start(&client, quick(None));
    next(&mut running.subscribed, "a subscription through the proxy").await;
    let event = work_event(WORK_SPEC, Some("cluster1"), b"{}");
    assert_eq!(hub.broker.send(&event).unwrap(), 1);
    assert_eq!(
        next(&mut running.events, "an event through the proxy").await,
        event
    );
    client
        .publish(&work_event(WORK_STATUS, Some("cluster1"), b"{}"))
        .await
        .unwrap();
    assert_eq!(hub.recorder.0.lock().unwrap().len(), 1);
    let log = proxy.log();
    assert!(
        log.contains(&format!("127.0.0.1:{}", hub.port)),
        "the proxy carried the tunnel: {log}"
    );
    running.stop().await;

    // With the proxy gone, the same client cannot reach the hub: the proxy really was the way.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stranded = GrpcClient::new(&config(closed_port)).unwrap();
    let err = stranded
        .publish(&work_event(WORK_STATUS, Some("cluster1"), b"{}"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
}

/// A TLS front for a plain proxy, as an `https://` proxy is: TLS (with `identity`) on a port of
/// its own, each connection's bytes passed on to `backend` once the handshake is done.
async fn tls_front(
    identity: &PemIdentity,
    backend: u16,
) -> (u16, Arc<std::sync::atomic::AtomicU64>) {
    use rustls::pki_types::pem::PemObject as _;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(identity.cert_chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(identity.key.as_bytes()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handshakes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = Arc::clone(&handshakes);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, counted) = (acceptor.clone(), Arc::clone(&counted));
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Ok(mut plain) = tokio::net::TcpStream::connect(("127.0.0.1", backend)).await
                else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (port, handshakes)
}

#[tokio::test]
async fn an_agent_behind_an_https_proxy_verifies_the_proxy_with_its_ca_and_tunnels_through_it() {
    let hub = start_hub(Duration::from_secs(10), 4 << 20).await;
    let proxy = Tinyproxy::start();
    let proxy_ca = TestCa::new("proxy CA");
    let (front, handshakes) = tls_front(&proxy_ca.server("proxy"), proxy.port).await;
    let config = |proxy: HttpProxy| GrpcClientConfig {
        url: format!("127.0.0.1:{}", hub.port),
        ca_pem: Some(hub.pki.ca.pem()),
        client_identity: Some(hub.pki.agent("cluster1")),
        token: None,
        keep_alive: None,
        server_healthiness_timeout: None,
        proxy: Some(proxy),
    };
    let https =
        HttpProxy::from_url(&format!("https://localhost:{front}"), Some(&proxy_ca.pem())).unwrap();
    let client = GrpcClient::new(&config(https)).unwrap();
    let mut running = Running::start(&client, quick(None));
    next(
        &mut running.subscribed,
        "a subscription through the https proxy",
    )
    .await;
    let event = work_event(WORK_SPEC, Some("cluster1"), b"{}");
    assert_eq!(hub.broker.send(&event).unwrap(), 1);
    assert_eq!(
        next(&mut running.events, "an event through the https proxy").await,
        event
    );
    client
        .publish(&work_event(WORK_STATUS, Some("cluster1"), b"{}"))
        .await
        .unwrap();
    running.stop().await;
    assert!(handshakes.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    let log = proxy.log();
    assert!(
        log.contains(&format!("127.0.0.1:{}", hub.port)),
        "the proxy behind the TLS front carried the tunnel: {log}"
    );

    // A proxy whose certificate another CA signed is not trusted: nothing goes through it.
    let stranger = HttpProxy::from_url(
        &format!("https://localhost:{front}"),
        Some(&TestCa::new("another CA").pem()),
    )
    .unwrap();
    let before = handshakes.load(std::sync::atomic::Ordering::SeqCst);
    let refused = GrpcClient::new(&config(stranger)).unwrap();
    let err = refused
        .publish(&work_event(WORK_STATUS, Some("cluster1"), b"{}"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert_eq!(
        handshakes.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "no TLS session with a proxy the CA does not vouch for"
    );
}

#[tokio::test]
async fn a_rotated_client_certificate_resubscribes_and_is_presented_from_then_on() {
    let hub = start_hub(Duration::from_secs(10), 4 << 20).await;
    let client = agent_client(&hub);
    let mut running = Running::start(&client, quick(None));
    let first = next(&mut running.subscribed, "the first subscription").await;
    client
        .publish(&work_event(WORK_STATUS, Some("cluster1"), b"{}"))
        .await
        .unwrap();

    client
        .rotate_certificate(&hub.pki.agent_named("cluster1", "renewed"))
        .unwrap();
    let second = next(
        &mut running.subscribed,
        "a resubscription after the rotation",
    )
    .await;
    assert_ne!(first, second);
    client
        .publish(&work_event(WORK_STATUS, Some("cluster1"), b"{}"))
        .await
        .unwrap();
    let users: Vec<String> = hub
        .recorder
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(user, _)| user.clone())
        .collect();
    assert_eq!(
        users,
        [
            "system:open-cluster-management:cluster1:agent",
            "system:open-cluster-management:cluster1:renewed"
        ]
    );

    let event = work_event(WORK_SPEC, Some("cluster1"), b"{}");
    assert_eq!(
        hub.broker.send(&event).unwrap(),
        1,
        "only the new subscription is left"
    );
    assert_eq!(
        next(&mut running.events, "an event on the new subscription").await,
        event
    );

    let broken = PemIdentity {
        cert_chain: "garbage".into(),
        key: String::new(),
    };
    assert!(
        client.rotate_certificate(&broken).is_err(),
        "a broken certificate is refused"
    );
    running.stop().await;
}

#[tokio::test]
async fn a_certificate_the_broker_does_not_trust_is_reported_as_refused_and_a_network_failure_is_not()
 {
    let hub = start_hub(Duration::from_secs(10), 4 << 20).await;
    let stranger = Pki {
        ca: TestCa::new("another-hub-ca"),
    };
    let config = |port: u16, identity: PemIdentity| GrpcClientConfig {
        url: format!("localhost:{port}"),
        ca_pem: Some(hub.pki.ca.pem()),
        client_identity: Some(identity),
        token: None,
        keep_alive: None,
        server_healthiness_timeout: None,
        proxy: None,
    };
    let client = GrpcClient::new(&config(hub.port, stranger.agent("cluster1"))).unwrap();
    let mut refusal = client.credential_refusal();
    let mut running = Running::start(&client, quick(None));
    tokio::time::timeout(Duration::from_secs(10), refusal.wait_for(Option::is_some))
        .await
        .expect("the refusal is reported")
        .unwrap();
    let why = refusal.borrow().clone().unwrap();
    assert!(why.contains("rejected the client certificate"), "{why}");
    assert!(
        !ocm_transport::grpc_client::is_authenticated_refusal(&why),
        "a TLS alert is not the broker's own word"
    );
    assert!(
        running.subscribed.try_recv().is_err(),
        "never subscribed with an untrusted certificate"
    );
    // Rotated to a certificate the broker trusts: subscribed, and no longer refused.
    client
        .rotate_certificate(&hub.pki.agent("cluster1"))
        .unwrap();
    next(
        &mut running.subscribed,
        "a subscription with the trusted certificate",
    )
    .await;
    assert_eq!(*client.credential_refusal().borrow(), None);
    running.stop().await;

    // Nobody listening is a network failure, not a refusal.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stranded = GrpcClient::new(&config(closed_port, hub.pki.agent("cluster1"))).unwrap();
    let err = stranded
        .publish(&work_event(WORK_STATUS, Some("cluster1"), b"{}"))
        .await
        .unwrap_err();
    assert_eq!(
        ocm_transport::grpc_client::refusal_reason(&err),
        None,
        "{err}"
    );
    assert_eq!(*stranded.credential_refusal().borrow(), None);
}

/// The common name of the certificate the broker presents to a new connection.
async fn presented_server_name(hub: &Hub) -> String {
    let config = tls::client_config(&hub.pki.ca.pem(), None).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", hub.port))
        .await
        .unwrap();
    let server_name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = connector.connect(server_name, tcp).await.unwrap();
    let leaf = &stream.get_ref().1.peer_certificates().unwrap()[0];
    tls::cert_identity(leaf).unwrap().user
}

#[tokio::test]
async fn a_reloaded_serving_certificate_is_presented_to_new_connections_without_a_restart() {
    let hub = start_hub(Duration::from_secs(10), 4 << 20).await;
    let client = agent_client(&hub);
    let mut running = Running::start(&client, quick(None));
    next(&mut running.subscribed, "the subscription").await;
    assert_eq!(presented_server_name(&hub).await, "hub");

    hub.serving
        .reload(&hub.pki.ca.server("hub-renewed"))
        .unwrap();
    assert_eq!(presented_server_name(&hub).await, "hub-renewed");
    // The open stream is untouched: no resubscription, and events still flow on it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        running.subscribed.try_recv().is_err(),
        "the agent had to resubscribe"
    );
    let event = work_event(WORK_SPEC, Some("cluster1"), b"{}");
    assert_eq!(hub.broker.send(&event).unwrap(), 1);
    assert_eq!(next(&mut running.events, "an event").await, event);

    let broken = PemIdentity {
        cert_chain: "garbage".into(),
        key: String::new(),
    };
    assert!(
        hub.serving.reload(&broken).is_err(),
        "a broken certificate is refused"
    );
    assert_eq!(
        presented_server_name(&hub).await,
        "hub-renewed",
        "and the old one kept"
    );
    running.stop().await;
}

#[tokio::test]
async fn ocms_own_go_transport_publishes_to_and_subscribes_from_our_broker() {
    let hub = start_hub(Duration::from_secs(10), 4 << 20).await;
    let binary = tokio::task::spawn_blocking(go_interop::build)
        .await
        .unwrap();
    let files = tempfile::tempdir().unwrap();
    let agent = hub.pki.agent("cluster1");
    for (name, text) in [
        ("ca.pem", hub.pki.ca.pem()),
        ("tls.crt", agent.cert_chain.clone()),
        ("tls.key", agent.key.clone()),
    ] {
        std::fs::write(files.path().join(name), text).unwrap();
    }
    let child = tokio::process::Command::new(&binary)
        .arg(format!("--addr=127.0.0.1:{}", hub.port))
        .arg(format!("--ca={}", files.path().join("ca.pem").display()))
        .arg(format!("--cert={}", files.path().join("tls.crt").display()))
        .arg(format!("--key={}", files.path().join("tls.key").display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // The Go agent subscribes and publishes a status update.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while hub.broker.subscriber_count() == 0 || hub.recorder.0.lock().unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Go client neither subscribed nor published"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (user, published) = hub.recorder.0.lock().unwrap()[0].clone();
    assert_eq!(user, "system:open-cluster-management:cluster1:agent");
    assert_eq!(published.id, "go-status-1");
    assert_eq!(published.event_type, WORK_STATUS);
    assert_eq!(published.time, "2025-12-16T06:00:17.923Z".parse().ok());
    assert_eq!(
        published.data_content_type.as_deref(),
        Some("application/json")
    );
    assert_eq!(
        published.data.as_deref(),
        Some(&br#"{"conditions":[]}"#[..])
    );
    assert_eq!(
        published.extensions["resourceversion"],
        ExtensionValue::Integer(3),
        "Go sends an int as ce_integer"
    );
    assert_eq!(
        published.extensions["deletiontimestamp"],
        ExtensionValue::Timestamp("2025-12-16T06:05:00Z".parse().unwrap())
    );
    assert_eq!(
        published.extension_str("sequenceid"),
        Some("2000808179729960960")
    );

    // Our hub sends a spec event; the Go agent decodes it with OCM's reader.
    let mut spec = work_event(WORK_SPEC, Some("cluster1"), br#"{"manifests":[]}"#);
    spec.time = Some("2025-12-16T06:00:00Z".parse().unwrap());
    spec.extensions.insert(
        "originalsource".into(),
        ExtensionValue::String(String::new()),
    );
    spec.extensions.insert(
        "metadata".into(),
        ExtensionValue::String(r#"{"name":"w"}"#.into()),
    );
    assert_eq!(hub.broker.send(&spec).unwrap(), 1);
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the Go client failed:\n{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let event = &report["event"];
    assert_eq!(event["id"], spec.id.as_str());
    assert_eq!(event["type"], WORK_SPEC);
    assert_eq!(event["source"], spec.source.as_str());
    assert_eq!(event["clustername"], "cluster1");
    assert_eq!(event["originalsource"], "");
    assert_eq!(event["metadata"], r#"{"name":"w"}"#);
    assert_eq!(event["resourceversion"], 1);
    assert_eq!(event["data"], serde_json::json!({"manifests": []}));
    assert_eq!(event["datacontenttype"], "application/json");
    assert_eq!(
        report["extensionTypes"]["resourceversion"], "int32",
        "{report}"
    );
}

/// A party on the path answers the client's hello with a plaintext fatal `bad_certificate`
/// alert, before any server has proven itself: the client reports it, but as a TLS alert, not
/// as the broker's authenticated refusal, so an agent does not drop its credential for it.
#[tokio::test]
async fn a_forged_tls_alert_is_not_taken_for_the_brokers_refusal() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let pki = Pki {
        ca: TestCa::new("hub-ca"),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut hello = [0u8; 4096];
                let _ = tcp.read(&mut hello).await;
                // TLS record: alert, TLS 1.2 framing, 2 bytes: fatal (2), bad_certificate (42).
                let _ = tcp
                    .write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x2a])
                    .await;
            });
        }
    });
    let client = GrpcClient::new(&GrpcClientConfig {
        url: format!("localhost:{port}"),
        ca_pem: Some(pki.ca.pem()),
        client_identity: Some(pki.agent("cluster1")),
        token: None,
        keep_alive: None,
        server_healthiness_timeout: None,
        proxy: None,
    })
    .unwrap();
    let _ = client
        .try_subscribe(SubscriptionRequest {
            source: String::new(),
            cluster_name: "cluster1".into(),
            data_type: DataType::manifest_bundles().to_string(),
        })
        .await;
    let why = client
        .credential_refusal()
        .borrow()
        .clone()
        .expect("the alert is reported");
    assert!(why.contains("BadCertificate"), "{why}");
    assert!(
        !ocm_transport::grpc_client::is_authenticated_refusal(&why),
        "{why}"
    );
}
