//! The registration agent's main loop (after OCM's registration agent): a stored credential or a
//! bootstrap join, then — over mutual TLS with its own certificate — it follows its
//! ManagedCluster and lease, and once the hub has accepted it, renews the lease with jitter
//! and reports its cluster's status (Joined, Available from `/livez`, Kubernetes version,
//! capacity and allocatable) whenever that changes.

use std::sync::Arc;
use std::time::Duration;

use ocm_api::cluster::v1::{
    CONDITION_AVAILABLE, CONDITION_CERTIFICATE_ROTATED, CONDITION_HUB_ACCEPTED, CONDITION_JOINED,
    ManagedCluster, ManagedClusterClaim, ManagedClusterStatus, ManagedClusterVersion,
};
use ocm_api::cluster::v1alpha1::ClusterClaim;
use ocm_api::condition::{self, ConditionStatus};
use ocm_api::k8s_openapi::api::coordination::v1::Lease;
use ocm_api::k8s_openapi::api::core::v1::Node;
use ocm_api::k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use ocm_api::kube::api::{ListParams, Patch, PatchParams};
use ocm_api::kube::{Api, Client};
use ocm_api::registration::CLUSTER_LEASE;
use ocm_transport::CloudEvent;
use ocm_transport::client::{self, InboxOptions, Interest, Publisher, Role, TransportConfig};
use ocm_transport::event_type::{DataType, EventAction, SubResource};
use ocm_transport::mqtt_config::MqttConfig;
use ocm_transport::registration::{self, Decoded, RegistrationKind};
use ocm_transport::tls::PemIdentity;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bootstrap::{self, BootstrapConfig};
use crate::credentials::{AGENT_NAMESPACE, CredentialStore};
use crate::health::{AgentHealth, Loop};
use crate::rotation::{self, CertificateError, Validity};
use crate::status::{self, ClaimPolicy};
use crate::work::agent::{self as work_agent, WorkAgentConfig, WorkInbox};
use crate::work::cache::WorkCache;
use crate::work::reconcile::Applier;

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// How to join; its transport (with the bootstrap token) also says where the hub is.
    pub bootstrap: BootstrapConfig,
    pub credentials: CredentialStore,
    /// How often the cluster's status is computed (and sent if it changed).
    pub status_every: Duration,
    /// Which ClusterClaims are reported.
    pub claims: ClaimPolicy,
    /// How ManifestWorks are handled.
    pub work: WorkOptions,
}

/// The work agent's settings.
#[derive(Debug, Clone)]
pub struct WorkOptions {
    /// The longest raw-JSON feedback value reported.
    pub max_json_raw: usize,
    /// How long an AppliedManifestWork the hub no longer knows is kept.
    pub eviction_grace: Duration,
    /// The slow pass over every work, besides the watches.
    pub resync_every: Duration,
    /// Where ManifestWorks come from: the hub's gRPC broker (`None`, over the registration
    /// connection) or an MQTT broker (OCM's `--workload-source-driver=mqtt`).
    pub mqtt: Option<MqttConfig>,
}

impl Default for WorkOptions {
    fn default() -> Self {
        Self {
            max_json_raw: ocm_api::work::v1::DEFAULT_MAX_JSON_RAW_LENGTH,
            eviction_grace: Duration::from_secs(3600),
            resync_every: Duration::from_secs(60),
            mqtt: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Bootstrap(#[from] bootstrap::BootstrapError),
    #[error("the agent's credential Secret: {0}")]
    Credentials(#[source] Box<ocm_api::kube::Error>),
    #[error("connecting to the hub: {0}")]
    Open(#[from] client::OpenError),
    #[error("registration needs the gRPC transport; the bootstrap config names another")]
    NotGrpc,
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    #[error("the work transport: {0}")]
    WorkTransport(String),
}

/// Why a connection with one credential ended.
enum Ended {
    Cancelled,
    /// The certificate expired before a renewal succeeded.
    Expired,
    /// The hub no longer accepts the certificate (another CA, revoked, …).
    Refused(String),
}

/// How long TLS alerts rejecting the certificate must go on, with no success in between,
/// before the agent believes them. Anyone on the path can send such an alert before the broker
/// has proven who it is; dropping a valid certificate for one would leave the cluster waiting
/// for a person to approve it again. The broker's own `Unauthenticated` is believed at once.
const ALERT_CONFIRMATION: Duration = Duration::from_secs(60);

/// Whether the hub refuses the agent's credential, from what its client reports (pure).
#[derive(Debug, Default)]
struct Refusals {
    /// The first of an unbroken run of TLS alerts, and the latest reason.
    alerts_since: Option<(tokio::time::Instant, String)>,
}

impl Refusals {
    /// Takes the client's latest word; `Some` when the credential is to be given up now.
    fn observe(&mut self, refused: Option<String>, now: tokio::time::Instant) -> Option<String> {
        match refused {
            None => {
                self.alerts_since = None;
                None
            }
            Some(why) if ocm_transport::grpc_client::is_authenticated_refusal(&why) => Some(why),
            Some(why) => {
                let since = self.alerts_since.take().map_or(now, |(since, _)| since);
                self.alerts_since = Some((since, why));
                self.confirm(now)
            }
        }
    }

    /// When the alerts seen so far will have lasted long enough.
    fn confirmation_due(&self) -> Option<tokio::time::Instant> {
        self.alerts_since
            .as_ref()
            .map(|(since, _)| *since + ALERT_CONFIRMATION)
    }

    /// The reason, once the alerts have gone on for [`ALERT_CONFIRMATION`].
    fn confirm(&self, now: tokio::time::Instant) -> Option<String> {
        self.alerts_since
            .as_ref()
            .filter(|(since, _)| now >= *since + ALERT_CONFIRMATION)
            .map(|(_, why)| why.clone())
    }
}

/// The hub's CA as the bootstrap config names it.
fn hub_ca(config: &AgentConfig) -> Option<&str> {
    match &config.bootstrap.transport {
        TransportConfig::Grpc(grpc) => grpc.ca_pem.as_deref(),
        _ => None,
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Runs until `cancel`: with the stored credential or a new one from bootstrapping, and again
/// from bootstrapping whenever the hub refuses the credential or it expires unrenewed.
pub async fn run(
    spoke: Client,
    config: AgentConfig,
    cancel: CancellationToken,
) -> Result<(), AgentError> {
    run_observed(spoke, config, Arc::default(), cancel).await
}

/// [`run`], reporting its readiness, vital loops and metrics to `health`.
pub async fn run_observed(
    spoke: Client,
    config: AgentConfig,
    health: Arc<AgentHealth>,
    cancel: CancellationToken,
) -> Result<(), AgentError> {
    let name = config.bootstrap.name.clone();
    install_spoke_crds(&spoke).await;
    let mut refused_before = false;
    loop {
        let stored = if refused_before {
            None
        } else {
            config
                .credentials
                .load(&name, Duration::from_secs(5), hub_ca(&config))
                .await
                .map_err(|e| AgentError::Credentials(Box::new(e)))?
        };
        let just_joined = stored.is_none();
        let identity = match stored {
            Some(identity) => {
                tracing::info!(cluster = %name.cluster, "using the stored hub credential");
                identity
            }
            None => {
                health.joining();
                let identity = bootstrap::bootstrap(&config.bootstrap, &cancel).await?;
                config
                    .credentials
                    .store(&name, &identity)
                    .await
                    .map_err(|e| AgentError::Credentials(Box::new(e)))?;
                identity
            }
        };
        match connected(&spoke, &config, identity, just_joined, &health, &cancel).await? {
            Ended::Cancelled => return Ok(()),
            Ended::Expired => {
                tracing::warn!(cluster = %name.cluster, "the client certificate expired unrenewed; bootstrapping again");
                refused_before = false;
            }
            Ended::Refused(why) => {
                tracing::warn!(cluster = %name.cluster, reason = %why, "the hub refused the client certificate; bootstrapping again");
                // A certificate refused right after bootstrapping would be refused again: wait
                // rather than flood the hub with requests.
                if refused_before {
                    tokio::select! {
                        () = cancel.cancelled() => return Ok(()),
                        () = tokio::time::sleep(Duration::from_secs(30)) => {}
                    }
                }
                refused_before = true;
            }
        }
    }
}

/// Works with `identity` until it ends: follows the ManagedCluster and lease, renews the lease,
/// reports status, and renews the certificate when due.
///
/// `just_joined`: the certificate was issued moments ago. The hub may have signed it before
/// the cluster's RBAC exists (auto-approval races acceptance), so refused subscriptions are
/// retried within seconds until the ManagedCluster is seen, instead of waiting out OCM's 5–10 s
/// backoff.
async fn connected(
    spoke: &Client,
    config: &AgentConfig,
    identity: PemIdentity,
    just_joined: bool,
    health: &Arc<AgentHealth>,
    cancel: &CancellationToken,
) -> Result<Ended, AgentError> {
    let name = &config.bootstrap.name;
    // Registration over MQTT is not OCM's either.
    let TransportConfig::Grpc(mut grpc) = config.bootstrap.transport.clone() else {
        return Err(AgentError::NotGrpc);
    };
    grpc.token = None;
    grpc.client_identity = Some(identity.clone());
    let interest = Interest {
        role: Role::Agent {
            cluster: name.cluster.clone(),
        },
        data_types: [DataType::managed_clusters(), DataType::leases()]
            .into_iter()
            .chain(config.work.mqtt.is_none().then(DataType::manifest_bundles))
            .collect(),
    };
    let subscriptions = interest.data_types.len();
    let connection = cancel.child_token();
    // The connection's tasks end with this function, whatever the way out.
    let _disconnect = connection.clone().drop_guard();
    let (hub, mut inbox) = client::open(
        TransportConfig::Grpc(grpc),
        interest,
        InboxOptions::default(),
        connection.clone(),
    )?;
    let Publisher::Grpc(grpc_client) = &hub else {
        return Err(AgentError::NotGrpc);
    };
    let mut refusal = grpc_client.credential_refusal();
    let mut refusals = Refusals::default();
    // Ready while this connection is complete and the cluster accepted; the loop below must
    // turn at least every status period.
    let _observed = health.connection(
        grpc_client.streams(),
        subscriptions,
        health.stall_limit(config.status_every),
        connection.clone(),
    );
    let (works_tx, works_resync_tx) = start_work_agent(spoke, config, &hub, health, &connection)?;
    let mut identity = identity;
    let mut validity = Validity::of(&identity.cert_chain)?;
    let mut renew_at = validity.renewal_due(rotation::jittered_fraction());
    let mut renewing: Option<
        tokio::task::JoinHandle<Result<PemIdentity, bootstrap::BootstrapError>>,
    > = None;
    let mut cluster: Option<ManagedCluster> = None;
    let mut lease: Option<Lease> = None;
    // Reported as ClusterCertificateRotated with the next status, as OCM's agent does.
    let mut rotated: Option<Validity> = None;
    let mut status_tick = tokio::time::interval(config.status_every);
    let renewal = tokio::time::sleep(Duration::from_secs(1));
    tokio::pin!(renewal);
    let mut early_retry = Duration::from_secs(1);
    // About a minute of them: after that, the cluster is not seen for another reason (its
    // registration RBAC is missing), and OCM's backoff is the right pace.
    let mut early_retries_left = 10u8;
    let early_retries = tokio::time::sleep(early_retry);
    tokio::pin!(early_retries);
    loop {
        health.beat(Loop::Registration);
        let now = jiff::Timestamp::now();
        let rotation_due = rotation::until(now, renew_at);
        let expiry = rotation::until(now, validity.not_after);
        tokio::select! {
            () = cancel.cancelled() => return Ok(Ended::Cancelled),
            changed = refusal.changed() => {
                if changed.is_err() {
                    return Ok(Ended::Cancelled);
                }
                let refused = refusal.borrow_and_update().clone();
                if let Some(why) = refusals.observe(refused, tokio::time::Instant::now()) {
                    return Ok(Ended::Refused(why));
                }
            }
            () = sleep_until_opt(refusals.confirmation_due()) => {
                if let Some(why) = refusals.confirm(tokio::time::Instant::now()) {
                    return Ok(Ended::Refused(why));
                }
            }
            () = tokio::time::sleep(expiry) => return Ok(Ended::Expired),
            () = tokio::time::sleep(rotation_due), if renewing.is_none() => {
                tracing::info!(cluster = %name.cluster, not_after = %validity.not_after, "renewing the client certificate");
                let (bootstrap_config, current, stop) =
                    (config.bootstrap.clone(), identity.clone(), connection.clone());
                renewing = Some(tokio::spawn(async move {
                    bootstrap::renew(&bootstrap_config, &current, &stop).await
                }));
            }
            done = async {
                match renewing.as_mut() {
                    Some(task) => task.await,
                    None => std::future::pending().await,
                }
            }, if renewing.is_some() => {
                renewing = None;
                match done {
                    Ok(Ok(renewed)) => match rotate(config, grpc_client, &renewed).await {
                        Ok(next) => {
                            identity = renewed;
                            validity = next;
                            rotated = Some(next);
                            renew_at = validity.renewal_due(rotation::jittered_fraction());
                            tracing::info!(cluster = %name.cluster, not_after = %validity.not_after, "client certificate renewed");
                        }
                        Err(err) => {
                            renew_at = validity.retry_at(jiff::Timestamp::now());
                            tracing::warn!(cluster = %name.cluster, %err, retry_at = %renew_at, "renewed certificate not taken into use");
                        }
                    },
                    Ok(Err(err)) => {
                        renew_at = validity.retry_at(jiff::Timestamp::now());
                        tracing::warn!(cluster = %name.cluster, %err, retry_at = %renew_at, "certificate renewal failed");
                    }
                    Err(err) => {
                        renew_at = validity.retry_at(jiff::Timestamp::now());
                        tracing::warn!(cluster = %name.cluster, %err, retry_at = %renew_at, "certificate renewal stopped");
                    }
                }
            }
            cue = inbox.resync.recv() => {
                let Some(data_type) = cue else { return Ok(Ended::Cancelled) };
                if data_type == DataType::manifest_bundles() {
                    // The work agent asks with the generations it holds.
                    let _ = works_resync_tx.try_send(());
                } else if resync_sent(&hub, &name.cluster, &data_type).await {
                    health.resync_sent(&data_type);
                }
            }
            event = inbox.events.recv() => {
                let Some(event) = event else { return Ok(Ended::Cancelled) };
                if event.event_type.starts_with(&DataType::manifest_bundles().to_string()) {
                    if works_tx.send(event).await.is_err() {
                        return Ok(Ended::Cancelled);
                    }
                } else if event.event_type.starts_with(&DataType::managed_clusters().to_string()) {
                    if let Ok(Decoded::Object(current)) = registration::decode::<ManagedCluster>(RegistrationKind::ManagedCluster, &event) {
                        // Renew at once when just accepted, and follow a changed lease duration
                        // now rather than after the old period (OCM resets its ticker too).
                        let newly_accepted = accepted(Some(&current)) && !accepted(cluster.as_ref());
                        let period_changed = cluster.as_ref().map(|c| c.spec.lease_duration()) != Some(current.spec.lease_duration());
                        if newly_accepted && (cluster.is_some() || just_joined) {
                            // Subscriptions refused until now (leases, works) need not wait out
                            // their backoff. Not for an agent that starts with a stored
                            // certificate of an accepted cluster: it subscribed fine, and
                            // resubscribing would make it resync everything twice.
                            grpc_client.resubscribe();
                        }
                        if newly_accepted {
                            // The renewal before the status report: a report saying Available
                            // reaching the hub first, after the cluster was lost (a restarted
                            // agent), was taken back at the hub's next check of its expired
                            // lease.
                            renew(&hub, &name.cluster, lease.as_ref()).await;
                            health.lease_renewed(current.spec.lease_duration());
                            renewal.as_mut().reset(tokio::time::Instant::now() + jittered(current.spec.lease_duration()));
                        } else if period_changed {
                            renewal.as_mut().reset(tokio::time::Instant::now() + jittered(current.spec.lease_duration()));
                        }
                        health.set_accepted(accepted(Some(&current)));
                        cluster = Some(current);
                        report(&hub, spoke, &config.claims, cluster.as_ref(), rotated).await;
                    }
                } else if let Ok(Decoded::Object(current)) = registration::decode::<Lease>(RegistrationKind::Lease, &event) {
                    lease = Some(current);
                }
            }
            () = &mut early_retries, if just_joined && cluster.is_none() && early_retries_left > 0 => {
                tracing::debug!(cluster = %name.cluster, "own ManagedCluster not seen yet; retrying subscriptions");
                early_retries_left -= 1;
                grpc_client.resubscribe();
                early_retry = (early_retry * 2).min(Duration::from_secs(8));
                early_retries.as_mut().reset(tokio::time::Instant::now() + early_retry);
            }
            _ = status_tick.tick() => report(&hub, spoke, &config.claims, cluster.as_ref(), rotated).await,
            () = &mut renewal => {
                let every = cluster.as_ref().map_or(Duration::from_secs(60), |c| c.spec.lease_duration());
                if accepted(cluster.as_ref()) {
                    renew(&hub, &name.cluster, lease.as_ref()).await;
                    health.lease_renewed(every);
                }
                renewal.as_mut().reset(tokio::time::Instant::now() + jittered(every));
            }
        }
    }
}

/// Starts the work agent on this connection; the senders the registration loop hands it its
/// events and resync cues through.
fn start_work_agent(
    spoke: &Client,
    config: &AgentConfig,
    hub: &Publisher,
    health: &Arc<AgentHealth>,
    connection: &CancellationToken,
) -> Result<(mpsc::Sender<CloudEvent>, mpsc::Sender<()>), AgentError> {
    let name = &config.bootstrap.name;
    let hub_url = match &config.bootstrap.transport {
        TransportConfig::Grpc(grpc) => grpc.url.clone(),
        TransportConfig::Mqtt(_) => String::new(),
    };
    let agent_id = format!("{}-{}", name.cluster, name.agent);
    let hub_hash = ocm_api::work::v1::hub_hash(&hub_url);
    let applier = Applier::new(
        spoke.clone(),
        hub_hash.clone(),
        agent_id.clone(),
        config.work.max_json_raw,
    );
    let mut work_config = WorkAgentConfig::new(&name.cluster, &agent_id);
    work_config.cache = Some(WorkCache::new(
        spoke.clone(),
        AGENT_NAMESPACE,
        &agent_id,
        &hub_hash,
    ));
    work_config.eviction_grace = config.work.eviction_grace;
    work_config.resync_every = config.work.resync_every;
    work_config.health = Arc::clone(health);
    let (events_tx, events) = mpsc::channel(256);
    let (resync_tx, resync) = mpsc::channel(4);
    let publisher = match &config.work.mqtt {
        None => hub.clone(),
        Some(mqtt) => {
            // OCM's agents connect as `<agentID>-client`.
            let settings = mqtt
                .settings(
                    &format!("{agent_id}-client"),
                    Role::Agent {
                        cluster: name.cluster.clone(),
                    },
                    256,
                )
                .map_err(|e| AgentError::WorkTransport(e.to_string()))?;
            let (publisher, inbox) = client::open(
                TransportConfig::Mqtt(settings),
                Interest {
                    role: Role::Agent {
                        cluster: name.cluster.clone(),
                    },
                    data_types: vec![DataType::manifest_bundles()],
                },
                InboxOptions::default(),
                connection.clone(),
            )?;
            tracing::info!(cluster = %name.cluster, broker = %format!("{}:{}", mqtt.host, mqtt.port), "ManifestWorks come over MQTT");
            tokio::spawn(forward(
                inbox,
                events_tx.clone(),
                resync_tx.clone(),
                connection.clone(),
            ));
            publisher
        }
    };
    tokio::spawn(work_agent::run(
        applier,
        publisher,
        WorkInbox { events, resync },
        work_config,
        connection.clone(),
    ));
    Ok((events_tx, resync_tx))
}

/// Hands what the MQTT connection receives to the work agent.
async fn forward(
    mut inbox: client::Inbox,
    events: mpsc::Sender<CloudEvent>,
    resync: mpsc::Sender<()>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            event = inbox.events.recv() => {
                let Some(event) = event else { return };
                if events.send(event).await.is_err() {
                    return;
                }
            }
            cue = inbox.resync.recv() => {
                if cue.is_none() || resync.send(()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Takes a renewed certificate into use: stored first (a restart then finds it), then presented
/// on a new connection; the subscriptions move over and resync.
async fn rotate(
    config: &AgentConfig,
    client: &ocm_transport::grpc_client::GrpcClient,
    renewed: &PemIdentity,
) -> Result<Validity, String> {
    let validity = Validity::of(&renewed.cert_chain).map_err(|e| e.to_string())?;
    config
        .credentials
        .store(&config.bootstrap.name, renewed)
        .await
        .map_err(|e| format!("storing it: {e}"))?;
    client
        .rotate_certificate(renewed)
        .map_err(|e| format!("presenting it: {e}"))?;
    Ok(validity)
}

/// Whether the hub has accepted `cluster` (its `HubAcceptedManagedCluster` condition is True).
pub fn accepted(cluster: Option<&ManagedCluster>) -> bool {
    cluster
        .and_then(|c| c.status.as_ref())
        .and_then(|s| condition::find(&s.conditions, CONDITION_HUB_ACCEPTED))
        .is_some_and(|c| c.status == ConditionStatus::True)
}

/// OCM renews with jitter factor 0.25: somewhere in the last quarter before the period ends.
pub fn jittered(period: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let spread = if getrandom::fill(&mut byte).is_ok() {
        f64::from(byte[0]) / 255.0
    } else {
        0.5
    };
    period.mul_f64(0.75 + 0.25 * spread)
}

/// After (re)subscribing, ask the hub for everything of the data type.
pub async fn resync(hub: &Publisher, cluster: &str, data_type: &DataType) {
    resync_sent(hub, cluster, data_type).await;
}

/// [`resync`]; whether the hub took the request.
pub async fn resync_sent(hub: &Publisher, cluster: &str, data_type: &DataType) -> bool {
    let event = ocm_transport::resync::spec_resync_request(
        data_type,
        cluster,
        cluster,
        &ocm_transport::resync::ResourceVersionList::default(),
        uuid::Uuid::new_v4().to_string(),
        jiff::Timestamp::now(),
    );
    match hub.publish(&event).await {
        Ok(()) => true,
        Err(err) => {
            tracing::warn!(%cluster, %data_type, %err, "resync request not sent");
            false
        }
    }
}

/// Renews the cluster lease: the one the hub sent, or — before it has arrived (the lease
/// subscription is refused until the cluster is accepted, then waits out its backoff) — one
/// naming just the lease, which is all the hub needs to record a renewal.
pub async fn renew(hub: &Publisher, cluster: &str, lease: Option<&Lease>) {
    let mut renewed = lease.cloned().unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(CLUSTER_LEASE.to_owned()),
            namespace: Some(cluster.to_owned()),
            ..ObjectMeta::default()
        },
        ..Lease::default()
    });
    renewed.spec.get_or_insert_with(Default::default).renew_time =
        Some(MicroTime(ocm_api::k8s_openapi::jiff::Timestamp::now()));
    let cluster = renewed.metadata.namespace.clone().unwrap_or_default();
    match registration::encode(
        RegistrationKind::Lease,
        SubResource::Spec,
        EventAction::UpdateRequest,
        &cluster,
        &renewed,
        uuid::Uuid::new_v4().to_string(),
        jiff::Timestamp::now(),
    ) {
        Ok(event) => {
            if let Err(err) = hub.publish(&event).await {
                tracing::warn!(%cluster, %err, "lease renewal failed");
            }
        }
        Err(err) => tracing::warn!(%cluster, %err, "lease renewal not encoded"),
    }
}

/// Computes the cluster's status and sends it if it differs from what the hub has.
async fn report(
    hub: &Publisher,
    spoke: &Client,
    claims: &ClaimPolicy,
    cluster: Option<&ManagedCluster>,
    rotated: Option<Validity>,
) {
    let Some(cluster) = cluster else { return };
    if !accepted(Some(cluster)) {
        return;
    }
    let mut observed = observe(spoke, claims).await;
    observed.rotated = rotated;
    report_observed(hub, cluster, &observed).await;
}

/// Sends the status `observed` makes of `cluster` — Joined, Available (from `observed.live`),
/// version, capacity and allocatable — if it differs from what the hub has. What [`run`]
/// reports once accepted; public so a simulated spoke reports exactly as the agent does.
pub async fn report_observed(hub: &Publisher, cluster: &ManagedCluster, observed: &Observed) {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let mut next = cluster.clone();
    let status = next
        .status
        .get_or_insert_with(ManagedClusterStatus::default);
    let now = ocm_api::k8s_openapi::jiff::Timestamp::now();
    condition::set(
        &mut status.conditions,
        CONDITION_JOINED,
        ConditionStatus::True,
        "ManagedClusterJoined",
        "Managed cluster joined",
        now,
    );
    let (available, reason, message) = if observed.live {
        (
            ConditionStatus::True,
            "ManagedClusterAvailable",
            "Managed cluster is available",
        )
    } else {
        (
            ConditionStatus::False,
            "ManagedClusterKubeAPIServerUnavailable",
            "The kube-apiserver of the managed cluster does not answer /livez",
        )
    };
    condition::set(
        &mut status.conditions,
        CONDITION_AVAILABLE,
        available,
        reason,
        message,
        now,
    );
    if let Some(version) = &observed.version {
        status.version = Some(ManagedClusterVersion {
            kubernetes: version.clone(),
        });
    }
    if let Some(nodes) = &observed.nodes {
        status.capacity = status::sum_resources(nodes, false);
        status.allocatable = status::sum_resources(nodes, true);
    }
    if let Some(claims) = &observed.claims {
        status.cluster_claims.clone_from(claims);
    }
    if let Some(rotated) = observed.rotated {
        condition::set(
            &mut status.conditions,
            CONDITION_CERTIFICATE_ROTATED,
            ConditionStatus::True,
            "ClientCertificateUpdated",
            &format!(
                "client certificate rotated starting from {} to {}",
                rotated.not_before, rotated.not_after
            ),
            now,
        );
    }
    if next.status == cluster.status {
        return;
    }
    match registration::encode(
        RegistrationKind::ManagedCluster,
        SubResource::Status,
        EventAction::UpdateRequest,
        &name,
        &next,
        uuid::Uuid::new_v4().to_string(),
        jiff::Timestamp::now(),
    ) {
        Ok(event) => match hub.publish(&event).await {
            Ok(()) => tracing::info!(cluster = %name, ?available, "status reported"),
            // A conflict means a newer ManagedCluster is on its way; report again then.
            Err(err) => tracing::info!(cluster = %name, %err, "status not accepted yet"),
        },
        Err(err) => tracing::warn!(cluster = %name, %err, "status not encoded"),
    }
}

/// What the agent observes of its cluster for the status report.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The apiserver answers `/livez` (or `/healthz`) with `ok`.
    pub live: bool,
    /// Its Kubernetes version, if it could be read.
    pub version: Option<String>,
    /// Its nodes, if they could be listed.
    pub nodes: Option<Vec<Node>>,
    /// Its ClusterClaims as reported ([`status::cluster_claims`]), if they could be read.
    pub claims: Option<Vec<ManagedClusterClaim>>,
    /// The client certificate's validity after the last rotation, if it rotated.
    pub rotated: Option<Validity>,
}

async fn observe(spoke: &Client, policy: &ClaimPolicy) -> Observed {
    let live = match http_get(spoke, "/livez").await {
        Some(ok) => ok,
        None => http_get(spoke, "/healthz").await.unwrap_or(false),
    };
    let version = spoke.apiserver_version().await.ok().map(|v| v.git_version);
    let nodes = Api::<Node>::all(spoke.clone())
        .list(&ListParams::default())
        .await
        .ok()
        .map(|list| list.items);
    let claims = match Api::<ClusterClaim>::all(spoke.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(list) => Some(list.items),
        // No ClusterClaim CRD: no claims.
        Err(ocm_api::kube::Error::Api(status)) if status.code == 404 => Some(Vec::new()),
        Err(err) => {
            tracing::debug!(%err, "ClusterClaims not read");
            None
        }
    };
    Observed {
        live,
        version,
        nodes,
        claims: claims.map(|found| status::cluster_claims(&found, policy)),
        rotated: None,
    }
}

/// The managed cluster's CRDs (ClusterClaim, AppliedManifestWork), applied as OCM's klusterlet
/// installs them. Without the permission the agent still runs; it then reports no claims.
async fn install_spoke_crds(spoke: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(spoke.clone());
    for crd in ocm_api::crds::spoke() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        match crds
            .patch(
                &name,
                &PatchParams::apply("ocm-agent").force(),
                &Patch::Apply(&crd),
            )
            .await
        {
            Ok(_) => tracing::debug!(crd = %name, "CRD applied on the managed cluster"),
            Err(err) => tracing::warn!(crd = %name, %err, "CRD not applied on the managed cluster"),
        }
    }
}

/// Whether GET `path` answers `ok`; `None` if the request could not be made at all.
async fn http_get(spoke: &Client, path: &str) -> Option<bool> {
    let request = http::Request::get(path).body(Vec::new()).ok()?;
    match spoke.request_text(request).await {
        Ok(body) => Some(body.trim() == "ok"),
        Err(ocm_api::kube::Error::Api(_)) => Some(false),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_brokers_own_refusal_is_believed_at_once() {
        let mut refusals = Refusals::default();
        let now = tokio::time::Instant::now();
        assert_eq!(
            refusals.observe(Some("unauthenticated: expired".into()), now),
            Some("unauthenticated: expired".into())
        );
    }

    #[test]
    fn tls_alerts_are_believed_only_when_they_go_on() {
        let mut refusals = Refusals::default();
        let start = tokio::time::Instant::now();
        let alert = || Some("the broker rejected the client certificate (BadCertificate)".into());
        assert_eq!(refusals.observe(alert(), start), None, "one forged alert");
        assert_eq!(
            refusals.confirmation_due(),
            Some(start + ALERT_CONFIRMATION)
        );
        assert_eq!(
            refusals.observe(alert(), start + Duration::from_secs(30)),
            None
        );
        // A success in between starts the count again.
        assert_eq!(
            refusals.observe(None, start + Duration::from_secs(40)),
            None
        );
        assert_eq!(refusals.confirmation_due(), None);
        let again = start + Duration::from_secs(50);
        assert_eq!(refusals.observe(alert(), again), None);
        assert_eq!(refusals.confirm(again + Duration::from_secs(59)), None);
        assert!(refusals.confirm(again + ALERT_CONFIRMATION).is_some());
    }
}
