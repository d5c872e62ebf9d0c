//! The gRPC CloudEvents broker the hub embeds (OCM's sdk-go gRPC protocol): `Publish` hands
//! an agent's event to the hub service of its data type; `Subscribe` streams the hub's events
//! for one cluster and data type, starting with the `subscription-id` header and carrying a
//! heartbeat at a fixed interval.
//!
//! Every call is authenticated (client certificate CN/O, or a bearer token through a pluggable
//! [`TokenAuthenticator`]) and authorized through a pluggable [`Authorizer`] with OCM's mapping
//! ([`crate::access`]).

use crate::wire_count::{Counted, WireBytes};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tonic::{Request, Response, Status};

use crate::access::{AccessRequest, publish_access, subscribe_access};
use crate::event::CloudEvent;
use crate::event_type::{DataType, EventType, HEARTBEAT_TYPE};
use crate::subscriptions::Subscriptions;
use crate::{grpc_binding, tls};
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
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(10),
            queue_capacity: 100,
        }
    }
}

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
        Self {
            inner: Arc::new(Inner {
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

    /// Live Subscribe streams.
    pub fn subscriber_count(&self) -> usize {
        self.inner.subscriptions.len()
    }

    async fn authenticate<T>(&self, request: &Request<T>) -> Result<Identity, Status> {
        if let Some(certs) = request.peer_certs()
            && let Some(leaf) = certs.first()
        {
            let identity =
                tls::cert_identity(leaf).map_err(|e| Status::unauthenticated(e.to_string()))?;
            return Ok(Identity {
                user: identity.user,
                groups: identity.groups,
            });
        }
        let bearer = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match (bearer, &self.inner.tokens) {
            (Some(token), Some(tokens)) => tokens
                .authenticate(token)
                .await
                .map_err(Status::unauthenticated),
            _ => Err(Status::unauthenticated(
                "no client certificate and no bearer token",
            )),
        }
    }

    async fn authorize(&self, who: &Identity, request: &AccessRequest) -> Result<(), Status> {
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
        let who = self.authenticate(&request).await?;
        let wire = request
            .into_inner()
            .event
            .ok_or_else(|| Status::invalid_argument("PublishRequest has no event"))?;
        let event =
            grpc_binding::decode(wire).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let access =
            publish_access(&event).map_err(|e| Status::permission_denied(e.to_string()))?;
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
        let who = self.authenticate(&request).await?;
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
) -> impl Stream<Item = Result<ProtoEvent, Status>> + Send {
    struct State {
        subscription: crate::subscriptions::Subscription<Arc<ProtoEvent>>,
        heartbeat: tokio::time::Interval,
        broker: Broker,
        ended: bool,
    }
    impl Drop for State {
        fn drop(&mut self) {
            self.broker
                .inner
                .subscriptions
                .unsubscribe(self.subscription.id);
        }
    }
    let start = tokio::time::Instant::now() + heartbeat_interval;
    let state = State {
        subscription,
        heartbeat: tokio::time::interval_at(start, heartbeat_interval),
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
        };
        Some((item, state))
    })
}

/// Serves the broker on `listener` with mutual TLS until `shutdown` completes. Each TLS
/// handshake runs on its own task (with a 10 s limit), so a slow or hostile client holds up
/// nobody; failed handshakes are logged and dropped.
pub async fn serve(
    broker: Broker,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    max_message_size: usize,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let wire = Arc::clone(&broker.inner.wire);
    let (connections, incoming) = tokio::sync::mpsc::channel::<Result<_, std::io::Error>>(64);
    let accept_loop = tokio::spawn(async move {
        loop {
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
            let tcp = Counted::new(tcp, Arc::clone(&wire));
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
    let service = ocm_proto::CloudEventServiceServer::new(broker)
        .max_decoding_message_size(max_message_size)
        .max_encoding_message_size(max_message_size);
    let result = tonic::transport::Server::builder()
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
