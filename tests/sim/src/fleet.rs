//! A fleet of simulated spokes and what the hub apiserver says about their clusters: the
//! pieces every scale benchmark shares — a watch of ManagedClusters ([`Clusters`]), the hub
//! administrator's lease-duration setting, and the spoke tasks ([`Spokes`]), each stoppable on
//! its own.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use ocm_api::cluster::v1::{
    CONDITION_AVAILABLE, CONDITION_HUB_ACCEPTED, ManagedCluster, ManagedClusterSpec,
};
use ocm_api::condition::{self, ConditionStatus};
use ocm_api::kube::api::{Patch, PatchParams};
use ocm_api::kube::runtime::{WatchStreamExt as _, watcher};
use ocm_api::kube::{Api, Client};
use ocm_spoke_agent::bootstrap::BootstrapConfig;
use ocm_spoke_agent::csr::AgentName;
use ocm_transport::client::{Publisher, TransportConfig};
use ocm_transport::grpc_client::GrpcClient;
use ocm_transport::grpc_config::GrpcClientConfig;
use ocm_transport::tls::PemIdentity;
use tokio_util::sync::CancellationToken;

use crate::SimError;
use crate::identity::Issuer;
use crate::model::ClusterModel;
use crate::spoke::{self, Counters, SpokeConfig};
use crate::works::WorkCounters;

#[derive(Debug, Default)]
struct Seen {
    first_available: Option<Instant>,
    available: bool,
    accepted: bool,
    lease_seconds: i32,
}

/// What the hub apiserver says about every ManagedCluster, from a watch ([`watch_clusters`]).
#[derive(Debug, Default)]
pub struct Clusters {
    seen: Mutex<HashMap<String, Seen>>,
    /// When a ManagedCluster last changed.
    changed: Mutex<Option<Instant>>,
}

impl Clusters {
    /// How long no ManagedCluster has changed.
    pub fn quiet_for(&self) -> Duration {
        self.changed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map_or(Duration::ZERO, |at| at.elapsed())
    }

    pub fn record(&self, cluster: &ManagedCluster) {
        *self.changed.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        let Some(name) = cluster.metadata.name.clone() else {
            return;
        };
        let conditions = cluster
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        let is_true = |type_: &str| {
            condition::find(conditions, type_).is_some_and(|c| c.status == ConditionStatus::True)
        };
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let entry = seen.entry(name).or_default();
        entry.available = is_true(CONDITION_AVAILABLE);
        entry.accepted = is_true(CONDITION_HUB_ACCEPTED);
        entry.lease_seconds = cluster.spec.lease_duration_seconds;
        if entry.available && entry.first_available.is_none() {
            entry.first_available = Some(Instant::now());
        }
    }

    pub fn available(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|s| s.available)
            .count()
    }

    /// How many of `names` are Available.
    pub fn available_among(&self, names: &[String]) -> usize {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        names
            .iter()
            .filter(|n| seen.get(*n).is_some_and(|s| s.available))
            .count()
    }

    /// Accepted clusters not in `except`.
    pub fn accepted_except(&self, except: &HashSet<String>) -> Vec<String> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(name, s)| s.accepted && !except.contains(*name))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Available clusters whose lease duration is not yet `seconds`.
    pub fn lease_to_change(&self, seconds: i32) -> Vec<String> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, s)| s.available && s.accepted && s.lease_seconds != seconds)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// When each of `names` first became Available, after `start`.
    pub fn times_to_available(&self, names: &[String], start: Instant) -> Vec<Duration> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut times: Vec<Duration> = names
            .iter()
            .filter_map(|n| seen.get(n).and_then(|s| s.first_available))
            .map(|at| at.saturating_duration_since(start))
            .collect();
        times.sort_unstable();
        times
    }
}

pub async fn watch_clusters(client: Client, clusters: Arc<Clusters>) {
    let stream = watcher(
        Api::<ManagedCluster>::all(client),
        watcher::Config::default(),
    )
    .default_backoff();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(cluster) | watcher::Event::InitApply(cluster)) => {
                clusters.record(&cluster);
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(%err, "ManagedCluster watch"),
        }
    }
}

/// The hub administrator's part: `leaseDurationSeconds` set on every Available cluster.
pub async fn set_lease_durations(
    client: Client,
    clusters: Arc<Clusters>,
    seconds: i32,
    cancel: CancellationToken,
) {
    let api = Api::<ManagedCluster>::all(client);
    let mut asked: HashSet<String> = HashSet::new();
    while !cancel.is_cancelled() {
        let due: Vec<String> = clusters
            .lease_to_change(seconds)
            .into_iter()
            .filter(|n| !asked.contains(n))
            .collect();
        let patch = serde_json::json!({"spec": {"leaseDurationSeconds": seconds}});
        let results: Vec<(String, bool)> = futures::stream::iter(due)
            .map(|name| {
                let (api, patch) = (api.clone(), patch.clone());
                async move {
                    let ok = api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .is_ok();
                    (name, ok)
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        // A failed patch is retried on the next round.
        asked.extend(results.into_iter().filter(|(_, ok)| *ok).map(|(n, _)| n));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The simulated spokes of a run, each a task.
#[derive(Debug)]
pub struct Spokes {
    /// The hub's broker, with the bootstrap token (an identity replaces it per spoke).
    pub transport: GrpcClientConfig,
    pub model: Arc<ClusterModel>,
    pub counters: Arc<Counters>,
    /// Set: spokes receive works too, counted here.
    pub works: Option<Arc<WorkCounters>>,
    pub errors: Arc<Mutex<Vec<String>>>,
    /// Stops every spoke.
    pub cancel: CancellationToken,
    /// Each running spoke's controls, by cluster.
    pub each: HashMap<String, SpokeControls>,
    /// The identity each spoke was started with (`None`: it joined through bootstrap), so a
    /// spoke stopped can start again as the same agent.
    started_with: HashMap<String, Option<PemIdentity>>,
    pub started: usize,
}

/// One running spoke's controls.
#[derive(Debug)]
pub struct SpokeControls {
    /// Stops it (a child of [`Spokes::cancel`]).
    pub stop: CancellationToken,
    /// Freezes it while true.
    pub pause: tokio::sync::watch::Sender<bool>,
}

/// The cluster name of the `index`th spoke.
pub fn cluster_name(index: usize) -> String {
    format!("sim-{index:05}")
}

/// The agent name of a simulated spoke.
pub fn agent_name(cluster: &str) -> AgentName {
    AgentName {
        cluster: cluster.to_owned(),
        agent: "agent".to_owned(),
    }
}

impl Spokes {
    /// No spokes yet, each to connect through `transport`.
    pub fn new(transport: GrpcClientConfig, model: Arc<ClusterModel>) -> Self {
        Self {
            transport,
            model,
            counters: Arc::new(Counters::default()),
            works: None,
            errors: Arc::new(Mutex::new(Vec::new())),
            cancel: CancellationToken::new(),
            each: HashMap::new(),
            started_with: HashMap::new(),
            started: 0,
        }
    }

    fn config(&self, cluster: &str) -> SpokeConfig {
        SpokeConfig {
            bootstrap: BootstrapConfig {
                transport: TransportConfig::Grpc(self.transport.clone()),
                name: agent_name(cluster),
                expiration_seconds: None,
                timeout: Duration::from_secs(900),
                waiting_notice: Duration::from_secs(900),
            },
            model: Arc::clone(&self.model),
            inbox_capacity: if self.works.is_some() { 64 } else { 16 },
            works: self.works.clone(),
            paused: None,
        }
    }

    /// Starts the spoke of `cluster`: it joins through bootstrap unless given `identity`, then
    /// runs.
    pub fn start(&mut self, cluster: &str, identity: Option<PemIdentity>) {
        let mut config = self.config(cluster);
        let (pause, paused) = tokio::sync::watch::channel(false);
        config.paused = Some(paused);
        let cancel = self.cancel.child_token();
        self.each.insert(
            cluster.to_owned(),
            SpokeControls {
                stop: cancel.clone(),
                pause,
            },
        );
        self.started_with
            .insert(cluster.to_owned(), identity.clone());
        let (counters, errors) = (Arc::clone(&self.counters), Arc::clone(&self.errors));
        tokio::spawn(async move {
            if let Err(err) = spoke::run(config, identity, counters, cancel).await {
                errors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(err.to_string());
            }
        });
        self.started += 1;
    }

    /// Stops the spoke of `cluster` (as if its agent died); whether it was running.
    pub fn kill(&mut self, cluster: &str) -> bool {
        self.each
            .remove(cluster)
            .inspect(|spoke| spoke.stop.cancel())
            .is_some()
    }

    /// Freezes the spoke of `cluster` (as a stopped process: connected, silent); whether it is
    /// running.
    pub fn pause(&self, cluster: &str) -> bool {
        self.each
            .get(cluster)
            .inspect(|spoke| {
                spoke.pause.send_replace(true);
            })
            .is_some()
    }

    /// Lets a paused spoke go on; whether it is running.
    pub fn resume(&self, cluster: &str) -> bool {
        self.each
            .get(cluster)
            .inspect(|spoke| {
                spoke.pause.send_replace(false);
            })
            .is_some()
    }

    /// Starts the spoke of `cluster` again as the same agent (stopping it first if it runs):
    /// with the identity it had, or through bootstrap again if it joined that way; whether it
    /// had been started before.
    pub fn restart(&mut self, cluster: &str) -> bool {
        let Some(identity) = self.started_with.get(cluster).cloned() else {
            return false;
        };
        self.kill(cluster);
        self.start(cluster, identity);
        self.started -= 1;
        true
    }

    /// Fails when any spoke has failed.
    pub fn check(&self) -> Result<(), SimError> {
        let errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        match errors.first() {
            Some(first) => Err(SimError::Spokes {
                failed: errors.len(),
                first: first.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// How [`ramp`] brings clusters in.
#[derive(Debug, Clone)]
pub struct RampPlan {
    /// Spokes `0..first` are started already.
    pub first: usize,
    /// Clusters when done: every one Available.
    pub total: usize,
    /// At most this many clusters not yet Available at a time.
    pub in_flight: usize,
    /// `leaseDurationSeconds` of the clusters created.
    pub lease_seconds: i32,
    /// Fail when not done by then.
    pub deadline: Instant,
}

/// Brings the fleet to `plan.total` Available clusters, printing progress every 15 s. With an
/// `issuer` (the shortcut), each ManagedCluster is created through the hub's broker with the
/// bootstrap token, as bootstrap's first step does, and its spoke starts with an identity from
/// the hub's CA once the hub has accepted it; without, every spoke bootstraps. `hub_exited`
/// says whether (and how) the hub died. Returns the clusters created or started.
#[allow(clippy::print_stderr)] // a benchmark's progress, on its terminal
pub async fn ramp(
    spokes: &mut Spokes,
    clusters: &Clusters,
    issuer: Option<&Issuer>,
    plan: &RampPlan,
    mut hub_exited: impl FnMut() -> Option<String>,
) -> Result<usize, SimError> {
    let creators: Vec<Publisher> = (0..8)
        .map(|_| GrpcClient::new(&spokes.transport).map(Publisher::Grpc))
        .collect::<Result<_, _>>()
        .map_err(|e| SimError::Hub(format!("connecting to the broker: {e}")))?;
    let started_at = Instant::now();
    let mut report_at = started_at + Duration::from_secs(15);
    let mut created = plan.first;
    let mut connecting: HashSet<String> = (0..plan.first).map(cluster_name).collect();
    loop {
        let available = clusters.available();
        if available >= plan.total {
            return Ok(created.max(spokes.started));
        }
        match issuer {
            None => {
                while spokes.started < plan.total && spokes.started - available < plan.in_flight {
                    spokes.start(&cluster_name(spokes.started), None);
                }
            }
            Some(issuer) => {
                while created < plan.total && created - available < plan.in_flight {
                    let hub = creators[created % creators.len()].clone();
                    tokio::spawn(create_cluster(
                        hub,
                        cluster_name(created),
                        plan.lease_seconds,
                        Arc::clone(&spokes.errors),
                    ));
                    created += 1;
                }
                for name in clusters.accepted_except(&connecting) {
                    let identity = issuer.issue(&agent_name(&name))?;
                    spokes.start(&name, Some(identity));
                    connecting.insert(name);
                }
            }
        }
        spokes.check()?;
        if let Some(status) = hub_exited() {
            return Err(SimError::Hub(format!("exited ({status})")));
        }
        if Instant::now() > plan.deadline {
            return Err(SimError::Timeout(format!(
                "only {available} of {} clusters Available",
                plan.total
            )));
        }
        if Instant::now() > report_at {
            report_at += Duration::from_secs(15);
            eprintln!(
                "[ramp] {:.0} s: {} created, {} spokes started, {} joined, {} connected, {available} Available",
                started_at.elapsed().as_secs_f64(),
                created.max(spokes.started),
                spokes.started,
                spokes.counters.joined.load(Ordering::Relaxed),
                spokes.counters.connected.load(Ordering::Relaxed),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates `name` through the hub's broker, retrying a few times.
async fn create_cluster(
    hub: Publisher,
    name: String,
    lease_seconds: i32,
    errors: Arc<Mutex<Vec<String>>>,
) {
    let cluster = ManagedCluster::new(
        &name,
        ManagedClusterSpec {
            lease_duration_seconds: lease_seconds,
            ..ManagedClusterSpec::default()
        },
    );
    let mut attempt = 0;
    while let Err(err) = spoke::create_cluster(&hub, &cluster).await {
        attempt += 1;
        if attempt == 5 {
            errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{name}: creating its ManagedCluster: {err}"));
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
