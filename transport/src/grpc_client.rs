//! The gRPC client agents (and sources) use (after sdk-go's gRPC transport): one HTTP/2 connection
//! over mutual TLS, a Subscribe stream per data type that survives broker restarts, lost
//! heartbeats and network failures by reconnecting with jittered exponential backoff and
//! re-subscribing — after which the caller resyncs — and Publish.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use ocm_proto::{CloudEventServiceClient, PublishRequest, SubscriptionRequest};

use crate::backoff::Backoff;
use crate::broker::SUBSCRIPTION_ID_HEADER;
use crate::event::CloudEvent;
use crate::event_type::HEARTBEAT_TYPE;
use crate::grpc_binding;
use crate::grpc_config::GrpcClientConfig;
use crate::rate_limit::RateLimiter;
use crate::tls::{self, PemIdentity, ReloadableIdentity, TlsError};

/// A connection to a broker. Clones share the connection, the rate limit and rotations.
#[derive(Clone)]
pub struct GrpcClient {
    /// Replaced on certificate rotation, so the next handshake presents the new certificate.
    channel: Arc<ArcSwap<Channel>>,
    make_channel: Arc<dyn Fn() -> Channel + Send + Sync>,
    identity: Option<Arc<ReloadableIdentity>>,
    /// Bumped on every rotation; open subscriptions end and resubscribe on the new connection.
    rotations: Arc<watch::Sender<u64>>,
    /// Set when the broker refuses this client's credential, cleared when it is accepted again.
    refusal: Arc<watch::Sender<Option<String>>>,
    /// The Subscribe streams the broker answered, open now and lost so far.
    streams: Arc<watch::Sender<Streams>>,
    token: Option<Arc<str>>,
    /// The limit is per connection, as OCM's.
    publish_limit: Arc<RateLimiter>,
}

impl std::fmt::Debug for GrpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcClient")
            .field("client_certificate", &self.identity.is_some())
            .field("token", &self.token.is_some())
            .field("rotations", &*self.rotations.borrow())
            .field("streams", &*self.streams.borrow())
            .finish_non_exhaustive()
    }
}

impl GrpcClient {
    /// A client for `config`: TLS 1.3 with the configured CA and client certificate, or a bearer
    /// token, through an HTTP CONNECT proxy if one is configured. The connection is made on
    /// first use and remade whenever it breaks.
    pub fn new(config: &GrpcClientConfig) -> Result<Self, TlsError> {
        let identity = config
            .client_identity
            .as_ref()
            .map(ReloadableIdentity::new)
            .transpose()?;
        let ca = config
            .ca_pem
            .as_deref()
            .ok_or_else(|| TlsError::Rustls("no CA configured".to_owned()))?;
        let tls = Arc::new(tls::client_config(ca, identity.clone())?);
        let (host, port) = split_host_port(&config.url);
        let server_name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| TlsError::Rustls(format!("server name {host:?}: {e}")))?;
        let address = format!("{host}:{port}");
        let mut endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| TlsError::Rustls(e.to_string()))?
            .connect_timeout(Duration::from_secs(10));
        if let Some((time, timeout, while_idle)) = config.keep_alive {
            endpoint = endpoint
                .http2_keep_alive_interval(time)
                .keep_alive_timeout(timeout)
                .keep_alive_while_idle(while_idle);
        }
        let proxy = config.proxy.clone();
        let make_channel = move || {
            let (tls, address, server_name, proxy) = (
                Arc::clone(&tls),
                address.clone(),
                server_name.clone(),
                proxy.clone(),
            );
            endpoint.connect_with_connector_lazy(tower::service_fn(move |_| {
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls));
                let (address, server_name, proxy) =
                    (address.clone(), server_name.clone(), proxy.clone());
                async move {
                    let tcp = crate::http_proxy::connect(proxy.as_ref(), &address).await?;
                    let stream = connector.connect(server_name, tcp).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
        };
        Ok(Self {
            channel: Arc::new(ArcSwap::from_pointee(make_channel())),
            make_channel: Arc::new(make_channel),
            identity,
            rotations: Arc::new(watch::channel(0).0),
            refusal: Arc::new(watch::channel(None).0),
            streams: Arc::new(watch::channel(Streams::default()).0),
            token: config.token.as_deref().map(Arc::from),
            publish_limit: Arc::new(RateLimiter::ocm_default()),
        })
    }

    /// Switches to a new client certificate (a renewal): new connections present it at once,
    /// and every open subscription resubscribes on a new connection (then resyncs), since a TLS
    /// session keeps the certificate it was opened with.
    pub fn rotate_certificate(&self, identity: &PemIdentity) -> Result<(), TlsError> {
        let current = self.identity.as_ref().ok_or_else(|| {
            TlsError::Rustls("this client has no client certificate to rotate".to_owned())
        })?;
        current.reload(identity)?;
        self.channel.store(Arc::new((self.make_channel)()));
        self.rotations.send_modify(|generation| *generation += 1);
        Ok(())
    }

    /// Ends every open subscription and retries waiting ones now: they subscribe again (and
    /// resync) at once. For when the caller's permissions changed, e.g. its cluster was just
    /// accepted and the subscriptions refused until then are waiting out their backoff.
    pub fn resubscribe(&self) {
        self.rotations.send_modify(|generation| *generation += 1);
    }

    /// Follows whether the broker refuses this client's credential (`Some(why)`): a client
    /// certificate it does not trust or that expired, or a token it does not accept. An agent
    /// takes this as its cue to bootstrap again; a network failure is never a refusal.
    pub fn credential_refusal(&self) -> watch::Receiver<Option<String>> {
        self.refusal.subscribe()
    }

    /// Follows this client's Subscribe streams (all clones' together): how many are open now,
    /// and how many that had opened were lost (an error, the broker ending them, missing
    /// heartbeats) — not those ended for a rotation or a [`Self::resubscribe`]. An agent is
    /// connected while every subscription it keeps is open.
    pub fn streams(&self) -> watch::Receiver<Streams> {
        self.streams.subscribe()
    }

    fn record(&self, outcome: Result<(), &Status>) {
        let refused = outcome.err().and_then(refusal_reason);
        if let Some(why) = &refused {
            tracing::warn!(reason = %why, "the broker refused this client's credential");
        }
        self.refusal.send_if_modified(|current| {
            let changed = *current != refused;
            *current = refused;
            changed
        });
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.token
            && let Ok(value) = format!("Bearer {token}").parse()
        {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    /// Publishes one event, at most 50 a second after a burst of 100 (OCM's client limit).
    pub async fn publish(&self, event: &CloudEvent) -> Result<(), Status> {
        self.publish_limit.acquire().await;
        let mut client = CloudEventServiceClient::new((*self.channel.load_full()).clone());
        let request = self.request(PublishRequest {
            event: Some(grpc_binding::encode(event)),
        });
        let outcome = client.publish(request).await.map(|_| ());
        self.record(outcome.as_ref().map(|_| ()));
        outcome
    }

    /// Subscribes once and lets go: the subscription ID the broker answers with, or the status
    /// it refused with (`PermissionDenied`, `Unauthenticated`, …). For checks — a join's
    /// preflight, a test of who may subscribe to what; [`Self::run_subscription`] keeps one.
    pub async fn try_subscribe(&self, subscription: SubscriptionRequest) -> Result<String, Status> {
        let mut client = CloudEventServiceClient::new((*self.channel.load_full()).clone());
        let outcome = client.subscribe(self.request(subscription)).await;
        self.record(outcome.as_ref().map(|_| ()));
        let response = outcome?;
        response
            .metadata()
            .get(SUBSCRIPTION_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| Status::internal("the broker sent no subscription-id header"))
    }

    /// Keeps a subscription alive until `cancel`: decoded events go to `events`, and after every
    /// successful (re)subscription `subscribed` receives the subscription ID, the caller's cue
    /// to resync. A broken stream, an error, or no message (not even a heartbeat) within
    /// `heartbeat_timeout` leads to a reconnect after a backoff delay. Events that cannot be
    /// decoded are logged and skipped. Returns when cancelled or when `events` is closed.
    pub async fn run_subscription(
        &self,
        subscription: SubscriptionRequest,
        events: mpsc::Sender<CloudEvent>,
        subscribed: mpsc::Sender<String>,
        options: SubscribeOptions,
        cancel: CancellationToken,
    ) {
        let mut attempt = 0u32;
        loop {
            let outcome = tokio::select! {
                () = cancel.cancelled() => return,
                outcome = self.subscribe_once(&subscription, &events, &subscribed, options.heartbeat_timeout) => outcome,
            };
            match outcome {
                StreamEnd::ConsumerGone => return,
                StreamEnd::Rotated => {
                    attempt = 0;
                    tracing::info!(cluster = %subscription.cluster_name, "client certificate rotated; resubscribing");
                }
                StreamEnd::Broken { reason, received } => {
                    if received {
                        attempt = 0;
                    }
                    let delay = options.backoff.delay(attempt);
                    attempt = attempt.saturating_add(1);
                    tracing::warn!(
                        cluster = %subscription.cluster_name,
                        data_type = %subscription.data_type,
                        %reason,
                        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        "subscription lost; reconnecting"
                    );
                    // A resubscription asked for (rotation, new permissions) cuts the wait short.
                    let mut asked = self.rotations.subscribe();
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(delay) => {}
                        _ = asked.changed() => attempt = 0,
                    }
                }
            }
        }
    }

    async fn subscribe_once(
        &self,
        subscription: &SubscriptionRequest,
        events: &mpsc::Sender<CloudEvent>,
        subscribed: &mpsc::Sender<String>,
        heartbeat_timeout: Option<Duration>,
    ) -> StreamEnd {
        let mut rotated = self.rotations.subscribe();
        let mut client = CloudEventServiceClient::new((*self.channel.load_full()).clone());
        let response = match client.subscribe(self.request(subscription.clone())).await {
            Ok(response) => response,
            Err(status) => {
                self.record(Err(&status));
                return StreamEnd::broken(&status, false);
            }
        };
        self.record(Ok(()));
        let Some(id) = response
            .metadata()
            .get(SUBSCRIPTION_ID_HEADER)
            .and_then(|v| v.to_str().ok())
        else {
            return StreamEnd::Broken {
                reason: "no subscription-id header".to_owned(),
                received: false,
            };
        };
        if subscribed.send(id.to_owned()).await.is_err() {
            return StreamEnd::ConsumerGone;
        }
        let open = OpenStream::new(&self.streams);
        let mut stream = response.into_inner();
        let mut received = false;
        loop {
            let message = async {
                match heartbeat_timeout {
                    Some(limit) => tokio::time::timeout(limit, stream.message())
                        .await
                        .map_err(|_| limit),
                    None => Ok(stream.message().await),
                }
            };
            let next = tokio::select! {
                _ = rotated.changed() => return StreamEnd::Rotated,
                next = message => match next {
                    Ok(next) => next,
                    Err(limit) => {
                        open.lost();
                        return StreamEnd::Broken { reason: format!("no heartbeat for {limit:?}"), received };
                    }
                },
            };
            let message = match next {
                Ok(Some(message)) => message,
                Ok(None) => {
                    open.lost();
                    return StreamEnd::Broken {
                        reason: "stream closed by the broker".to_owned(),
                        received,
                    };
                }
                Err(status) => {
                    open.lost();
                    return StreamEnd::broken(&status, received);
                }
            };
            received = true;
            if message.r#type == HEARTBEAT_TYPE {
                continue;
            }
            match grpc_binding::decode(message) {
                Ok(event) => {
                    if events.send(event).await.is_err() {
                        return StreamEnd::ConsumerGone;
                    }
                }
                Err(err) => {
                    tracing::warn!(cluster = %subscription.cluster_name, %err, "undecodable event skipped")
                }
            }
        }
    }
}

/// A client's Subscribe streams ([`GrpcClient::streams`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Streams {
    /// Streams the broker answered (with a subscription ID) that have not ended.
    pub open: usize,
    /// Streams that had opened and were then lost, over the client's life.
    pub lost: u64,
}

/// One open stream, counted while it lives; marked lost when it ends for a failure.
struct OpenStream<'a> {
    streams: &'a watch::Sender<Streams>,
    lost: std::cell::Cell<bool>,
}

impl<'a> OpenStream<'a> {
    fn new(streams: &'a watch::Sender<Streams>) -> Self {
        streams.send_modify(|s| s.open += 1);
        Self {
            streams,
            lost: std::cell::Cell::new(false),
        }
    }

    fn lost(&self) {
        self.lost.set(true);
    }
}

impl Drop for OpenStream<'_> {
    fn drop(&mut self) {
        let lost = self.lost.get();
        self.streams.send_modify(|s| {
            s.open = s.open.saturating_sub(1);
            if lost {
                s.lost += 1;
            }
        });
    }
}

/// How a subscription behaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubscribeOptions {
    pub backoff: Backoff,
    /// `serverHealthinessTimeout`: reconnect when nothing arrives for this long.
    pub heartbeat_timeout: Option<Duration>,
}

enum StreamEnd {
    ConsumerGone,
    /// The client certificate changed: resubscribe at once on the new connection.
    Rotated,
    Broken {
        reason: String,
        received: bool,
    },
}

impl StreamEnd {
    fn broken(status: &Status, received: bool) -> Self {
        let reason = match status.code() {
            Code::Unavailable => format!("broker unavailable: {}", status.message()),
            code => format!("{code:?}: {}", status.message()),
        };
        Self::Broken { reason, received }
    }
}

/// Why `status` means the broker refused the client's credential, if it does: `Unauthenticated`,
/// or a TLS alert with which the broker rejected the client certificate during the handshake
/// (with TLS 1.3 the client learns of it only on its first read, as a transport error).
pub fn refusal_reason(status: &Status) -> Option<String> {
    if status.code() == Code::Unauthenticated {
        return Some(format!("{UNAUTHENTICATED}{}", status.message()));
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(status);
    while let Some(error) = next {
        // io::Error hides the error it wraps from `source()`; look inside it explicitly.
        let inner = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        for candidate in [Some(error), inner].into_iter().flatten() {
            if let Some(rustls::Error::AlertReceived(alert)) =
                candidate.downcast_ref::<rustls::Error>()
                && rejects_certificate(*alert)
            {
                return Some(format!(
                    "the broker rejected the client certificate ({alert:?})"
                ));
            }
        }
        // On its way up through h2 the TLS error is flattened into an io::Error carrying only
        // rustls' text ("received fatal alert: UnknownCA").
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && let Some(alert) = io
                .to_string()
                .strip_prefix("received fatal alert: ")
                .map(str::to_owned)
            && CERTIFICATE_ALERTS
                .iter()
                .any(|known| format!("{known:?}") == alert)
        {
            return Some(format!(
                "the broker rejected the client certificate ({alert})"
            ));
        }
        next = inner.and_then(|i| i.source()).or_else(|| error.source());
    }
    None
}

const UNAUTHENTICATED: &str = "unauthenticated: ";

/// Whether a refusal (as [`refusal_reason`] words it) was said by the broker itself, as a gRPC
/// status over the established TLS session. The other kind, a TLS alert, may come before the
/// server has proven who it is, so anyone on the path can send it (a hostile proxy, a spoofed
/// address): an agent should not throw its credential away on one.
pub fn is_authenticated_refusal(reason: &str) -> bool {
    reason.starts_with(UNAUTHENTICATED)
}

/// The alerts with which a TLS server rejects a client certificate.
const CERTIFICATE_ALERTS: [rustls::AlertDescription; 8] = [
    rustls::AlertDescription::BadCertificate,
    rustls::AlertDescription::UnsupportedCertificate,
    rustls::AlertDescription::CertificateRevoked,
    rustls::AlertDescription::CertificateExpired,
    rustls::AlertDescription::CertificateUnknown,
    rustls::AlertDescription::UnknownCA,
    rustls::AlertDescription::AccessDenied,
    rustls::AlertDescription::DecryptError,
];

fn rejects_certificate(alert: rustls::AlertDescription) -> bool {
    CERTIFICATE_ALERTS.contains(&alert)
}

/// `host:port`, `[v6]:port` or a bare host (port 443).
fn split_host_port(url: &str) -> (String, u16) {
    let url = url
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    if let Some(rest) = url.strip_prefix('[')
        && let Some((host, port)) = rest.split_once("]:")
    {
        return (host.to_owned(), port.parse().unwrap_or(443));
    }
    match url.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
            (host.to_owned(), port.parse().unwrap_or(443))
        }
        _ => (url.to_owned(), 443),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_and_port() {
        assert_eq!(
            split_host_port("hub.example.com:8090"),
            ("hub.example.com".into(), 8090)
        );
        assert_eq!(split_host_port("https://hub:443"), ("hub".into(), 443));
        assert_eq!(split_host_port("[::1]:8090"), ("::1".into(), 8090));
        assert_eq!(split_host_port("hub"), ("hub".into(), 443));
    }
}
