//! One simulated spoke: the agent's registration loop without a managed cluster. It joins with
//! the agent's own bootstrap (unless given an identity), then over its own mutual-TLS connection
//! follows its ManagedCluster and lease exactly as `ocm-agent` does — a spec resync after every
//! subscription, the lease renewed on acceptance before the status report and then every jittered
//! `leaseDurationSeconds` (re-timed when the duration changes), status reported on every
//! ManagedCluster change if it differs — with the agent's own functions for each step.
//!
//! Not simulated (yet): certificate rotation (certificates last the hub's 24 h by default, far
//! beyond a benchmark) and re-bootstrapping after a refused certificate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ocm_api::cluster::v1::ManagedCluster;
use ocm_api::k8s_openapi::api::coordination::v1::Lease;
use ocm_spoke_agent::agent;
use ocm_spoke_agent::bootstrap::{self, BootstrapConfig, BootstrapError};
use ocm_transport::client::{
    self, InboxOptions, Interest, OpenError, PublishError, Publisher, Role, TransportConfig,
};
use ocm_transport::event::CloudEvent;
use ocm_transport::event_type::{DataType, EventAction, SubResource};
use ocm_transport::registration::{self, Decoded, RegistrationKind};
use ocm_transport::tls::PemIdentity;
use tokio_util::sync::CancellationToken;

use crate::model::ClusterModel;
use crate::works::{SpokeWorks, WorkCounters};

/// How one simulated spoke runs.
#[derive(Debug, Clone)]
pub struct SpokeConfig {
    /// The hub's broker (with the bootstrap token) and the agent's name, as for `ocm-agent`.
    pub bootstrap: BootstrapConfig,
    /// The cluster it reports on.
    pub model: Arc<ClusterModel>,
    /// Decoded events held for the spoke before its connection waits (the agent's default is
    /// 256; a spoke that only follows its own ManagedCluster and lease needs few).
    pub inbox_capacity: usize,
    /// Also receive ManifestWorks, apply them to the in-memory cluster and report their status
    /// ([`SpokeWorks`]), counted here (which also says whether to churn their status).
    pub works: Option<Arc<WorkCounters>>,
    /// While true the spoke is frozen, as a stopped agent process: its connection stays open
    /// but it renews nothing and handles nothing (what arrives waits in its inbox, then in the
    /// hub's queue for it). `None`: never paused.
    pub paused: Option<tokio::sync::watch::Receiver<bool>>,
}

/// What all spokes of a run have done, counted together.
#[derive(Debug, Default)]
pub struct Counters {
    /// Identities obtained through bootstrap.
    pub joined: AtomicUsize,
    /// Own mutual-TLS connections whose ManagedCluster subscription is established.
    pub connected: AtomicUsize,
    /// Spokes that have seen themselves accepted.
    pub accepted: AtomicUsize,
    /// Lease renewals sent.
    pub renewals: AtomicU64,
    /// Spokes that ended with an error.
    pub failed: AtomicUsize,
    /// When each spoke first reached each milestone.
    pub timeline: Timeline,
}

/// A step of a spoke's way in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Milestone {
    /// Its certificate arrived (bootstrap done).
    Joined,
    /// Its own connection's ManagedCluster subscription is established (RBAC allowed it).
    Subscribed,
    /// It saw its ManagedCluster accepted (and renewed its lease at once).
    Accepted,
}

/// When each spoke first reached each [`Milestone`].
#[derive(Debug, Default)]
pub struct Timeline {
    reached: Mutex<HashMap<Milestone, HashMap<String, Instant>>>,
}

impl Timeline {
    /// Records `cluster` reaching `milestone` now, unless it did before.
    pub fn record(&self, cluster: &str, milestone: Milestone) {
        let mut reached = self.reached.lock().unwrap_or_else(|e| e.into_inner());
        reached
            .entry(milestone)
            .or_default()
            .entry(cluster.to_owned())
            .or_insert_with(Instant::now);
    }

    /// When `cluster` reached `milestone`, if it has.
    pub fn reached(&self, cluster: &str, milestone: Milestone) -> Option<Instant> {
        let reached = self.reached.lock().unwrap_or_else(|e| e.into_inner());
        reached.get(&milestone)?.get(cluster).copied()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpokeError {
    #[error("{cluster}: joining: {source}")]
    Bootstrap {
        cluster: String,
        #[source]
        source: BootstrapError,
    },
    #[error("{cluster}: connecting to the hub: {source}")]
    Open {
        cluster: String,
        #[source]
        source: OpenError,
    },
    #[error("{0}: registration needs the gRPC transport")]
    NotGrpc(String),
}

/// Creates `cluster` on the hub through its broker, as bootstrap's first step does (the hub's
/// ManagedCluster service creates the object; an agent's `hubAcceptsClient` is always false
/// there): the shortcut's way in, for spokes given an identity instead of bootstrapping. `hub`
/// publishes with the bootstrap token. A cluster that exists already is fine.
pub async fn create_cluster(hub: &Publisher, cluster: &ManagedCluster) -> Result<(), PublishError> {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let event = registration::encode(
        RegistrationKind::ManagedCluster,
        SubResource::Spec,
        EventAction::CreateRequest,
        &name,
        cluster,
        format!("{name}-create"),
        jiff::Timestamp::now(),
    )
    .map_err(|e| PublishError::Grpc(tonic::Status::invalid_argument(e.to_string())))?;
    match hub.publish(&event).await {
        Err(PublishError::Grpc(status))
            if status.code() == tonic::Code::FailedPrecondition
                && ocm_transport::status_error::Status::from_grpc_message(status.message())
                    .reason
                    == "AlreadyExists" =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Runs one spoke until `cancel`: joins through bootstrap unless `identity` is given, then
/// renews and reports. Progress is counted in `counters`.
pub async fn run(
    config: SpokeConfig,
    identity: Option<PemIdentity>,
    counters: Arc<Counters>,
    cancel: CancellationToken,
) -> Result<(), SpokeError> {
    let result = run_inner(&config, identity, &counters, &cancel).await;
    if result.is_err() {
        counters.failed.fetch_add(1, Ordering::Relaxed);
    }
    result
}

async fn run_inner(
    config: &SpokeConfig,
    identity: Option<PemIdentity>,
    counters: &Counters,
    cancel: &CancellationToken,
) -> Result<(), SpokeError> {
    let name = config.bootstrap.name.cluster.clone();
    let identity = match identity {
        Some(identity) => identity,
        None => match bootstrap::bootstrap(&config.bootstrap, cancel).await {
            Ok(identity) => {
                counters.joined.fetch_add(1, Ordering::Relaxed);
                counters.timeline.record(&name, Milestone::Joined);
                identity
            }
            Err(BootstrapError::Cancelled) => return Ok(()),
            Err(source) => {
                return Err(SpokeError::Bootstrap {
                    cluster: name,
                    source,
                });
            }
        },
    };
    // The agent's own connection: its certificate, no token.
    let TransportConfig::Grpc(mut grpc) = config.bootstrap.transport.clone() else {
        return Err(SpokeError::NotGrpc(name));
    };
    grpc.token = None;
    grpc.client_identity = Some(identity);
    let connection = cancel.child_token();
    let _disconnect = connection.clone().drop_guard();
    let (hub, mut inbox) = client::open(
        TransportConfig::Grpc(grpc),
        Interest {
            role: Role::Agent {
                cluster: name.clone(),
            },
            data_types: if config.works.is_some() {
                vec![
                    DataType::managed_clusters(),
                    DataType::leases(),
                    DataType::manifest_bundles(),
                ]
            } else {
                vec![DataType::managed_clusters(), DataType::leases()]
            },
        },
        InboxOptions {
            capacity: config.inbox_capacity.max(1),
            ..InboxOptions::default()
        },
        connection,
    )
    .map_err(|source| SpokeError::Open {
        cluster: name.clone(),
        source,
    })?;

    let mut cluster: Option<ManagedCluster> = None;
    let mut lease: Option<Lease> = None;
    let agent_id = format!("{name}-{}", config.bootstrap.name.agent);
    let mut works = config
        .works
        .as_ref()
        .map(|counters| SpokeWorks::new(&name, &agent_id, Arc::clone(counters)));
    // Whether the churn timer runs at the churn period (after a first, random phase).
    let mut churning = false;
    let churn = tokio::time::sleep(CHURN_CHECK);
    tokio::pin!(churn);
    let mut subscribed = false;
    // As the agent: the first renewal check a second after connecting, then every period.
    let renewal = tokio::time::sleep(Duration::from_secs(1));
    tokio::pin!(renewal);
    let mut paused = config.paused.clone();
    loop {
        if let Some(paused) = paused.as_mut()
            && *paused.borrow_and_update()
        {
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                resumed = paused.wait_for(|paused| !*paused) => {
                    if resumed.is_err() {
                        return Ok(());
                    }
                }
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            Some(Ok(())) = async {
                match paused.as_mut() {
                    Some(paused) => Some(paused.changed().await),
                    None => std::future::pending().await,
                }
            } => {}
            cue = inbox.resync.recv() => {
                let Some(data_type) = cue else { return Ok(()) };
                if !subscribed && data_type == DataType::managed_clusters() {
                    subscribed = true;
                    counters.connected.fetch_add(1, Ordering::Relaxed);
                    counters.timeline.record(&name, Milestone::Subscribed);
                }
                match &works {
                    Some(works) if data_type == DataType::manifest_bundles() => {
                        send_apart(&hub, &name, vec![works.resync_request()]);
                    }
                    _ => agent::resync(&hub, &name, &data_type).await,
                }
            }
            event = inbox.events.recv() => {
                let Some(event) = event else { return Ok(()) };
                if event.event_type.starts_with(&DataType::manifest_bundles().to_string()) {
                    if let Some(works) = works.as_mut() {
                        send_apart(&hub, &name, works.receive(&event));
                    }
                } else if event.event_type.starts_with(&DataType::managed_clusters().to_string()) {
                    let Ok(Decoded::Object(current)) = registration::decode::<ManagedCluster>(RegistrationKind::ManagedCluster, &event) else {
                        continue;
                    };
                    let newly_accepted = agent::accepted(Some(&current)) && !agent::accepted(cluster.as_ref());
                    let period_changed = cluster.as_ref().map(|c| c.spec.lease_duration()) != Some(current.spec.lease_duration());
                    if newly_accepted {
                        counters.accepted.fetch_add(1, Ordering::Relaxed);
                        counters.timeline.record(&name, Milestone::Accepted);
                    }
                    if newly_accepted {
                        // As the agent: renewed before the status report.
                        agent::renew(&hub, &name, lease.as_ref()).await;
                        counters.renewals.fetch_add(1, Ordering::Relaxed);
                        renewal.as_mut().reset(tokio::time::Instant::now() + agent::jittered(current.spec.lease_duration()));
                    } else if period_changed {
                        renewal.as_mut().reset(tokio::time::Instant::now() + agent::jittered(current.spec.lease_duration()));
                    }
                    if agent::accepted(Some(&current)) {
                        agent::report_observed(&hub, &current, &config.model.observed()).await;
                    }
                    cluster = Some(current);
                } else if let Ok(Decoded::Object(current)) = registration::decode::<Lease>(RegistrationKind::Lease, &event) {
                    lease = Some(current);
                }
            }
            () = &mut renewal => {
                let every = cluster.as_ref().map_or(Duration::from_secs(60), |c| c.spec.lease_duration());
                if agent::accepted(cluster.as_ref()) {
                    agent::renew(&hub, &name, lease.as_ref()).await;
                    counters.renewals.fetch_add(1, Ordering::Relaxed);
                }
                renewal.as_mut().reset(tokio::time::Instant::now() + agent::jittered(every));
            }
            () = &mut churn => {
                let every = config.works.as_ref().and_then(|c| c.churn_every());
                let next = match (every, works.as_mut()) {
                    (Some(every), Some(works)) if churning => {
                        send_apart(&hub, &name, works.churn());
                        every
                    }
                    (Some(every), Some(_)) => {
                        churning = true;
                        every.mul_f64(f64::from(random_byte()) / 255.0)
                    }
                    _ => {
                        churning = false;
                        CHURN_CHECK
                    }
                };
                churn.as_mut().reset(tokio::time::Instant::now() + next);
            }
        }
    }
}

/// How often a spoke looks whether status churn was turned on (or off).
const CHURN_CHECK: Duration = Duration::from_secs(1);

fn random_byte() -> u8 {
    let mut byte = [0u8; 1];
    if getrandom::fill(&mut byte).is_err() {
        return 128;
    }
    byte[0]
}

/// Publishes `events` (the works' statuses and resync requests) on a task of their own, as the
/// agent's work loop is apart from its lease renewals: a hub slow to take statuses must not
/// hold up a spoke's heartbeat. What could not be sent is logged; the hub asks for it again
/// through a status resync after the next reconnect.
fn send_apart(hub: &Publisher, cluster: &str, events: Vec<CloudEvent>) {
    if events.is_empty() {
        return;
    }
    let (hub, cluster) = (hub.clone(), cluster.to_owned());
    tokio::spawn(async move {
        for event in events {
            if let Err(err) = hub.publish(&event).await {
                tracing::warn!(%cluster, %err, "simulated work event not sent");
            }
        }
    });
}
