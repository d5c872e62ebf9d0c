//! The gRPC CloudEvents broker the hub embeds (OCM's sdk-go gRPC protocol): `Publish` hands
//! an agent's event to the hub service of its data type; `Subscribe` streams the hub's events
//! for one cluster and data type, starting with the `subscription-id` header and carrying a
//! heartbeat at a fixed interval.
//!
//! Every call is authenticated (client certificate CN/O, or a bearer token through a pluggable
//! [`TokenAuthenticator`]) and authorized through a pluggable [`Authorizer`] with OCM's mapping
//! ([`crate::access`]).

mod authn;
pub mod keyed_limit;

use crate::wire_count::{Counted, WireBytes};
use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tonic::{Request, Response, Status};

use crate::access::{AccessError, AccessRequest, publish_access, subscribe_access};
use crate::event::CloudEvent;
use crate::event_type::{DataType, EventType, HEARTBEAT_TYPE};
use crate::grpc_binding;
use crate::subscriptions::Subscriptions;
pub use authn::Authenticated;
use keyed_limit::KeyedRateLimit;
use ocm_proto::{CloudEvent as ProtoEvent, PublishRequest, SubscriptionRequest};

/// Response header naming a subscription; OCM's Go client fails a Subscribe without it.
pub const SUBSCRIPTION_ID_HEADER: &str = "subscription-id";

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

/// Checks bearer tokens (the hub wires Kubernetes TokenReview in).
#[tonic::async_trait]
pub trait TokenAuthenticator: Send + Sync + 'static {
    async fn authenticate(&self, token: &str) -> Result<Identity, String>;

    /// Whether `token` would be answered without asking anyone (a cached decision). Tokens
    /// that would not are limited per peer address before they are reviewed.
    fn knows(&self, _token: &str) -> bool {
        false
    }
}

/// Decides whether `who` may do `request` (the hub wires SubjectAccessReview in).
#[tonic::async_trait]
pub trait Authorizer: Send + Sync + 'static {
    async fn authorize(&self, who: &Identity, request: &AccessRequest) -> Result<bool, String>;
}

/// Handles the events agents publish for one data type.
#[tonic::async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// Errors travel to the client as they are; use [`crate::status_error`] bodies with
    /// `FailedPrecondition` for Kubernetes failures, as OCM does.
    async fn handle(&self, who: &Identity, event: CloudEvent) -> Result<(), Status>;
}

/// Broker settings.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Heartbeat on every Subscribe stream (OCM: 10 s).
    pub heartbeat_interval: Duration,
    /// Undelivered events a subscriber may hold before it is dropped (OCM: 100).
    pub queue_capacity: usize,
    /// What any one peer may cost the broker.
    pub limits: BrokerLimits,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(10),
            queue_capacity: 100,
            limits: BrokerLimits::default(),
        }
    }
}

/// Bounds on what peers may cost the broker, authenticated or not.
#[derive(Debug, Clone)]
pub struct BrokerLimits {
    /// Connections open or in their TLS handshake at once; more wait to be accepted.
    pub max_connections: usize,
    /// HTTP/2 streams a connection may have open at once (advertised in SETTINGS). An agent
    /// needs one per data type it subscribes to, plus its publishes in flight.
    pub max_concurrent_streams: u32,
    /// A Publish (or the opening of a Subscribe) that has not been answered by then fails.
    pub request_timeout: Duration,
    /// HTTP/2 PINGs on idle connections, and how long an answer may take before the
    /// connection is closed: a vanished peer's streams do not linger.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// Connections are closed (gracefully: open streams end, clients reconnect and resync)
    /// this long after they opened, so a credential is authenticated again at least this
    /// often. The hub sets it no longer than its client certificates' lifetime.
    pub max_connection_age: Option<Duration>,
    /// Calls (Publish or Subscribe) one identity may make a second, and their burst.
    pub calls_per_identity: f64,
    pub call_burst_per_identity: u32,
    /// Reviews of tokens the authenticator does not know yet, per peer address a second, and
    /// their burst: a flood of random tokens from one address then costs few reviews.
    pub token_reviews_per_peer: f64,
    pub token_review_burst_per_peer: u32,
}

impl Default for BrokerLimits {
    fn default() -> Self {
        Self {
            max_connections: 50_000,
            max_concurrent_streams: 100,
            request_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(20),
            max_connection_age: None,
            calls_per_identity: 1_000.0,
            call_burst_per_identity: 5_000,
            token_reviews_per_peer: 20.0,
            token_review_burst_per_peer: 100,
        }
    }
}

/// Identities and peer addresses a limit keeps track of at once.
const LIMIT_KEYS: usize = 200_000;

/// The broker: routing table, handlers and security hooks. Clone it freely; clones share state.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    config: BrokerConfig,
    subscriptions: Subscriptions<Arc<ProtoEvent>>,
    handlers: HashMap<DataType, Arc<dyn EventHandler>>,
    tokens: Option<Arc<dyn TokenAuthenticator>>,
    authorizer: Arc<dyn Authorizer>,
    /// Bytes on the wire of every connection [`serve`] accepted.
    wire: Arc<WireBytes>,
    calls_per_identity: KeyedRateLimit<String>,
    token_reviews_per_peer: KeyedRateLimit<IpAddr>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("config", &self.inner.config)
            .field("subscriptions", &self.inner.subscriptions.len())
            .field(
                "data_types",
                &self.inner.handlers.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Broker {
    pub fn new(
        config: BrokerConfig,
        handlers: HashMap<DataType, Arc<dyn EventHandler>>,
        tokens: Option<Arc<dyn TokenAuthenticator>>,
        authorizer: Arc<dyn Authorizer>,
    ) -> Self {
        let subscriptions = Subscriptions::new(config.queue_capacity);
        let limits = &config.limits;
        let calls_per_identity = KeyedRateLimit::new(
            limits.calls_per_identity,
            limits.call_burst_per_identity,
            LIMIT_KEYS,
        );
        let token_reviews_per_peer = KeyedRateLimit::new(
            limits.token_reviews_per_peer,
            limits.token_review_burst_per_peer,
            LIMIT_KEYS,
        );
        Self {
            inner: Arc::new(Inner {
                calls_per_identity,
                token_reviews_per_peer,
                config,
                subscriptions,
                handlers,
                tokens,
                authorizer,
                wire: Arc::default(),
            }),
        }
    }

    /// Bytes received and sent on the wire by every connection served, TLS included.
    pub fn wire_bytes(&self) -> &WireBytes {
        &self.inner.wire
    }

    /// Sends a hub event to every subscriber of its cluster and data type; returns how many
    /// queued it. Subscribers that fell behind are dropped and logged.
    pub fn send(&self, event: &CloudEvent) -> Result<usize, Status> {
        let event_type: EventType = event
            .event_type
            .parse()
            .map_err(|e| Status::invalid_argument(format!("{e}")))?;
        let cluster = event.cluster_name().unwrap_or_default();
        let wire = Arc::new(grpc_binding::encode(event));
        let routed = self
            .inner
            .subscriptions
            .route(cluster, &event_type.data_type, &wire);
        for id in &routed.overflowed {
            tracing::warn!(cluster, subscription = %id, data_type = %event_type.data_type, "subscriber fell behind; dropping its stream");
        }
        Ok(routed.delivered)
    }

    /// Ends every Subscribe stream (on shutdown): clients see the stream close, reconnect and
    /// resync.
    pub fn close_all(&self) {
        self.inner.subscriptions.clear();
    }

    /// Ends every Subscribe stream of `cluster` (its grants changed or it was deleted): its
    /// agents subscribe again and are authorized anew. Returns how many ended.
    pub fn close_cluster(&self, cluster: &str) -> usize {
        let closed = self.inner.subscriptions.close_cluster(cluster);
        if closed > 0 {
            tracing::info!(
                cluster,
                streams = closed,
                "closed the cluster's streams: its access changed"
            );
        }
        closed
    }

    /// Live Subscribe streams.
    pub fn subscriber_count(&self) -> usize {
        self.inner.subscriptions.len()
    }

    /// Who a request was authenticated as by [`authn`] (before its body was read), counted
    /// against the identity's rate.
    fn authenticated<T>(&self, request: &Request<T>) -> Result<Authenticated, Status> {
        let authenticated = request
            .extensions()
            .get::<Authenticated>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("the request was not authenticated"))?;
        if !self
            .inner
            .calls_per_identity
            .try_take(&authenticated.identity.user)
        {
            tracing::debug!(user = %authenticated.identity.user, "calls over the identity's rate");
            return Err(Status::resource_exhausted(format!(
                "{} makes calls faster than the broker allows; retry later",
                authenticated.identity.user
            )));
        }
        Ok(authenticated)
    }

    async fn authorize(&self, who: &Identity, request: &AccessRequest) -> Result<(), Status> {
        // An agent's certificate names its cluster (`system:open-cluster-management:<cluster>:
        // <agent>`): it acts for that cluster only, whatever RBAC would allow it elsewhere —
        // the cluster-wide CSR and ManagedCluster read grants OCM's roles give agents included.
        if let Some(own) = ocm_api::registration::agent_user_cluster(&who.user)
            && request.namespace != own
        {
            return Err(Status::permission_denied(format!(
                "{} is an agent of cluster {own} and may not act for cluster {}",
                who.user, request.namespace
            )));
        }
        match self.inner.authorizer.authorize(who, request).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Status::permission_denied(format!(
                "{} may not {} {}/{} in {}",
                who.user, request.verb, request.group, request.resource, request.namespace
            ))),
            Err(reason) => Err(Status::permission_denied(format!(
                "authorization failed: {reason}"
            ))),
        }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<ProtoEvent, Status>> + Send>>;

#[tonic::async_trait]
impl ocm_proto::CloudEventService for Broker {
    async fn publish(&self, request: Request<PublishRequest>) -> Result<Response<()>, Status> {
        let who = self.authenticated(&request)?.identity;
        let wire = request
            .into_inner()
            .event
            .ok_or_else(|| Status::invalid_argument("PublishRequest has no event"))?;
        let event =
            grpc_binding::decode(wire).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let access = publish_access(&event).map_err(|e| match e {
            AccessError::BadClusterName(_) | AccessError::BadType(_) => {
                Status::invalid_argument(e.to_string())
            }
            _ => Status::permission_denied(e.to_string()),
        })?;
        self.authorize(&who, &access).await?;
        let event_type: EventType = event
            .event_type
            .parse()
            .map_err(|e| Status::invalid_argument(format!("{e}")))?;
        let handler = self
            .inner
            .handlers
            .get(&event_type.data_type)
            .ok_or_else(|| {
                Status::invalid_argument(format!(
                    "no service for data type {}",
                    event_type.data_type
                ))
            })?;
        handler.handle(&who, event).await?;
        Ok(Response::new(()))
    }

    type SubscribeStream = EventStream;

    async fn subscribe(
        &self,
        request: Request<SubscriptionRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let authenticated = self.authenticated(&request)?;
        let who = authenticated.identity;
        let subscription = request.into_inner();
        let access = subscribe_access(&subscription.cluster_name, &subscription.data_type)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.authorize(&who, &access).await?;
        let data_type: DataType = subscription
            .data_type
            .parse()
            .map_err(|e| Status::invalid_argument(format!("{e}")))?;
        let subscribed = self
            .inner
            .subscriptions
            .subscribe(&subscription.cluster_name, data_type);
        let id = subscribed.id;
        tracing::debug!(cluster = %subscription.cluster_name, user = %who.user, subscription = %id, "subscribed");
        let stream = subscriber_stream(
            self.clone(),
            subscribed,
            self.inner.config.heartbeat_interval,
            authenticated.valid_until,
        );
        let mut response = Response::new(Box::pin(stream) as EventStream);
        if let Ok(value) = id.to_string().parse() {
            response
                .metadata_mut()
                .insert(SUBSCRIPTION_ID_HEADER, value);
        }
        Ok(response)
    }
}

/// Queued events interleaved with heartbeats; ends with `ResourceExhausted` if the subscriber
/// fell behind. Dropping it (the client went away) removes the subscription. A plain state
/// machine over the queue — no task or extra channel per subscriber, since idle subscribers are
/// what a hub holds by the thousand.
fn subscriber_stream(
    broker: Broker,
    subscription: crate::subscriptions::Subscription<Arc<ProtoEvent>>,
    heartbeat_interval: Duration,
    valid_until: Option<std::time::SystemTime>,
) -> impl Stream<Item = Result<ProtoEvent, Status>> + Send {
    struct State {
        subscription: crate::subscriptions::Subscription<Arc<ProtoEvent>>,
        heartbeat: tokio::time::Interval,
        /// When the credential the stream was opened with expires: a stolen certificate does
        /// not keep receiving past its `notAfter` on a connection opened before.
        expiry: Pin<Box<tokio::time::Sleep>>,
        broker: Broker,
        ended: bool,
    }
    impl Drop for State {
        fn drop(&mut self) {
            self.broker
                .inner
                .subscriptions
                .unsubscribe(&self.subscription);
        }
    }
    let start = tokio::time::Instant::now() + heartbeat_interval;
    // Far enough to never come for credentials that do not expire here (tokens are reviewed
    // again on every call, and their streams end with the connection's maximum age).
    let left = valid_until.map_or(Duration::from_secs(100 * 365 * 86_400), |until| {
        until
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
    });
    let state = State {
        subscription,
        heartbeat: tokio::time::interval_at(start, heartbeat_interval),
        expiry: Box::pin(tokio::time::sleep(left)),
        broker,
        ended: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        if state.ended {
            return None;
        }
        let item = tokio::select! {
            event = state.subscription.events.recv() => match event {
                // Usually this subscriber holds the only reference (one subscriber per cluster
                // and data type): take the event without copying it.
                Some(event) => Ok(Arc::unwrap_or_clone(event)),
                None if state.subscription.overflowed() => {
                    state.ended = true;
                    Err(Status::resource_exhausted("subscriber fell behind; reconnect and resync"))
                }
                None => return None,
            },
            _ = state.heartbeat.tick() => Ok(heartbeat_event()),
            () = &mut state.expiry => {
                state.ended = true;
                Err(Status::unauthenticated("the client certificate has expired; reconnect with a renewed one"))
            }
        };
        Some((item, state))
    })
}

/// Serves the broker on `listener` with mutual TLS until `shutdown` completes. Each TLS
/// handshake runs on its own task (with a 10 s limit), so a slow or hostile client holds up
/// nobody; failed handshakes are logged and dropped. At most [`BrokerLimits::max_connections`]
/// connections are open or shaking hands at once; every request is authenticated on its
/// headers before its body is read ([`authn`]); the HTTP/2 limits of [`BrokerLimits`] apply.
pub async fn serve(
    broker: Broker,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    max_message_size: usize,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let wire = Arc::clone(&broker.inner.wire);
    let limits = broker.inner.config.limits.clone();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let (connections, incoming) = tokio::sync::mpsc::channel::<Result<_, std::io::Error>>(64);
    let accept_loop = tokio::spawn(async move {
        loop {
            // A connection's slot is taken before it is accepted and given back when it closes:
            // beyond the cap, new peers wait in the kernel's backlog instead of in memory here.
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let connections = connections.clone();
            let tcp = Counted::new(tcp, Arc::clone(&wire)).holding(slot);
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = connections.send(Ok(tls)).await;
                    }
                    Ok(Err(err)) => tracing::info!(%peer, %err, "TLS handshake refused"),
                    Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    // Subscribe streams never end by themselves; end them, or a graceful shutdown waits forever.
    let closer = broker.clone();
    let shutdown = async move {
        shutdown.await;
        closer.close_all();
    };
    let authenticate_first = authn::AuthenticateFirst {
        broker: broker.clone(),
    };
    let service = ocm_proto::CloudEventServiceServer::new(broker)
        .max_decoding_message_size(max_message_size)
        .max_encoding_message_size(max_message_size);
    let mut server = tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .timeout(limits.request_timeout)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout));
    if let Some(age) = limits.max_connection_age {
        server = server
            .max_connection_age(age)
            .max_connection_age_grace(Duration::from_secs(30));
    }
    let result = server
        .layer(authenticate_first)
        .add_service(service)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::ReceiverStream::new(incoming),
            shutdown,
        )
        .await;
    accept_loop.abort();
    result
}

/// `io.open-cluster-management.cloudevents.heartbeat`: spec version, a fresh ID, the type and
/// nothing else.
pub fn heartbeat_event() -> ProtoEvent {
    ProtoEvent {
        id: uuid::Uuid::new_v4().to_string(),
        spec_version: crate::event::SPEC_VERSION.to_owned(),
        r#type: HEARTBEAT_TYPE.to_owned(),
        ..ProtoEvent::default()
    }
}
