//! What the agent says about itself on `/readyz`, `/healthz` and `/metrics`.
//!
//! - **Ready** only while it is registered and connected: it holds its own certificate (not
//!   the bootstrap token), has seen its ManagedCluster accepted by the hub, and every
//!   subscription of its connection is open ([`ocm_transport::grpc_client::Streams`]). A cut to
//!   the hub makes it not ready until the subscriptions are open again.
//! - **Live** while its vital loops turn: the registration loop, the work agent's loop and the
//!   lease renewal. A loop that ended while it should run (a panic, an early return) or has not
//!   turned within its limit (blocked on something that does not answer) makes `/healthz`
//!   fail, so a kubelet restarts the agent. Losing the hub is not a liveness failure: restarting
//!   would not bring it back.
//! - **Metrics** ([`AgentMetrics`]), in an explicit registry, as the hub's.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ocm_transport::event_type::DataType;
use ocm_transport::grpc_client::Streams;
use ocm_transport::health::{Probe, ProbeAnswer};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a vital loop may go without turning before `/healthz` fails, by default.
pub const DEFAULT_STALL_LIMIT: Duration = Duration::from_secs(180);

/// How often the work agent's loop turns at least, to show it is not stuck.
pub(crate) const WORK_LOOP_TICK: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DataTypeLabels {
    /// The CloudEvents data type, e.g. `cluster.open-cluster-management.io.v1.managedclusters`.
    pub data_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `applied` (every manifest applied), `failed` (the apply or one of its manifests
    /// failed), `deleted` (a deleted work's resources removed).
    pub outcome: String,
}

/// What the agent counts (names in [`AgentMetrics::register`]).
#[derive(Debug, Clone)]
pub struct AgentMetrics {
    /// 1 while every subscription of the hub connection is open.
    pub hub_connected: Gauge,
    /// Subscribe streams open to the hub.
    pub hub_open_subscriptions: Gauge,
    /// Times the connection came back after subscriptions were lost.
    pub hub_reconnects: Counter,
    /// 1 while connected with its own certificate and its cluster accepted.
    pub registered: Gauge,
    /// Resync requests the hub took, by data type.
    pub resyncs_sent: Family<DataTypeLabels, Counter>,
    /// Apply passes over a ManifestWork, by outcome.
    pub work_applies: Family<OutcomeLabels, Counter>,
    /// From a ManifestWork (new or changed) received to its manifests applied.
    pub work_apply_latency: Histogram,
    /// From the change that made a work's status change (the work received, or a change of an
    /// object it applied seen by a watch) to that status published to the hub.
    pub work_status_latency: Histogram,
}

fn latency_histogram() -> Histogram {
    // 5 ms to about 41 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self {
            hub_connected: Gauge::default(),
            hub_open_subscriptions: Gauge::default(),
            hub_reconnects: Counter::default(),
            registered: Gauge::default(),
            resyncs_sent: Family::default(),
            work_applies: Family::default(),
            work_apply_latency: latency_histogram(),
            work_status_latency: latency_histogram(),
        }
    }
}

impl AgentMetrics {
    /// Registers every metric in `registry` (counters get Prometheus' `_total` suffix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "ocm_agent_hub_connected",
            "1 while every subscription of the agent's hub connection is open",
            self.hub_connected.clone(),
        );
        registry.register(
            "ocm_agent_hub_open_subscriptions",
            "Subscribe streams open to the hub",
            self.hub_open_subscriptions.clone(),
        );
        registry.register(
            "ocm_agent_hub_reconnects",
            "Times the hub connection came back after its subscriptions were lost",
            self.hub_reconnects.clone(),
        );
        registry.register(
            "ocm_agent_registered",
            "1 while connected with the agent's own certificate and its cluster accepted",
            self.registered.clone(),
        );
        registry.register(
            "ocm_agent_resyncs_sent",
            "Resync requests the hub took, by data type",
            self.resyncs_sent.clone(),
        );
        registry.register(
            "ocm_agent_work_applies",
            "Apply passes over ManifestWorks, by outcome (applied, failed, deleted)",
            self.work_applies.clone(),
        );
        registry.register(
            "ocm_agent_work_apply_latency_seconds",
            "From a ManifestWork received to its manifests applied",
            self.work_apply_latency.clone(),
        );
        registry.register(
            "ocm_agent_work_status_report_latency_seconds",
            "From a work received or a change of its objects seen to its status published",
            self.work_status_latency.clone(),
        );
    }
}

/// The agent's vital loops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loop {
    /// The registration loop: its ManagedCluster, status reports, certificate renewal.
    Registration,
    /// The work agent's loop: ManifestWorks received, applied, their status sent.
    WorkAgent,
    /// The lease renewal (while the cluster is accepted).
    LeaseRenewal,
}

impl Loop {
    const ALL: [Self; 3] = [Self::Registration, Self::WorkAgent, Self::LeaseRenewal];

    fn name(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::WorkAgent => "work-agent",
            Self::LeaseRenewal => "lease-renewal",
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
enum Vital {
    /// Not expected to run now (joining, or not accepted).
    #[default]
    Idle,
    Running {
        epoch: u64,
        last: Instant,
        limit: Duration,
    },
    /// Ended while it should have run.
    Died,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Phase {
    #[default]
    Starting,
    /// Bootstrapping: joining with the bootstrap credential, waiting for approval.
    Joining,
    /// Connected with its own certificate.
    Connected {
        /// Whether its ManagedCluster was seen accepted (`None`: not seen yet).
        accepted: Option<bool>,
    },
}

#[derive(Debug, Default)]
struct State {
    phase: Phase,
    /// The current connection (its follower writes only while it is current).
    connection: u64,
    open: usize,
    expected: usize,
    vitals: [Vital; 3],
    epochs: u64,
}

impl State {
    fn vital(&mut self, which: Loop) -> &mut Vital {
        &mut self.vitals[which as usize]
    }

    fn connected(&self) -> bool {
        matches!(self.phase, Phase::Connected { .. })
            && self.expected > 0
            && self.open >= self.expected
    }

    fn registered(&self) -> bool {
        self.phase
            == Phase::Connected {
                accepted: Some(true),
            }
    }
}

/// The agent's health and metrics, shared by its loops and its health endpoint.
#[derive(Debug)]
pub struct AgentHealth {
    pub metrics: AgentMetrics,
    state: Mutex<State>,
    stall: Duration,
}

impl Default for AgentHealth {
    fn default() -> Self {
        Self::new(DEFAULT_STALL_LIMIT)
    }
}

/// When a work's latest unhandled changes happened.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WorkTrigger {
    /// The first spec received since the last pass.
    pub(crate) received: Option<Instant>,
    /// The first change of one of its objects seen since the last pass.
    pub(crate) changed: Option<Instant>,
}

impl WorkTrigger {
    pub(crate) fn received(&mut self, at: Instant) {
        self.received.get_or_insert(at);
    }

    pub(crate) fn changed(&mut self, at: Instant) {
        self.changed.get_or_insert(at);
    }

    fn earliest(&self) -> Option<Instant> {
        match (self.received, self.changed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl AgentHealth {
    /// `stall`: how long a vital loop may go without turning (the lease renewal: its period
    /// plus this) before `/healthz` fails.
    pub fn new(stall: Duration) -> Self {
        Self {
            metrics: AgentMetrics::default(),
            state: Mutex::new(State::default()),
            stall,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A panic elsewhere while holding the lock leaves a state still worth reading.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut state)
    }

    /// The limit of a loop that turns at least every `period`.
    pub fn stall_limit(&self, period: Duration) -> Duration {
        self.stall.max(period.saturating_mul(3))
    }

    /// The agent is (again) joining with its bootstrap credential.
    pub(crate) fn joining(&self) {
        self.with(|s| {
            s.phase = Phase::Joining;
            s.open = 0;
            s.expected = 0;
        });
        self.publish_state();
    }

    /// A connection with the agent's own certificate, keeping `expected` subscriptions, starts;
    /// it is followed until `cancel` (or the returned handle is dropped). While the handle
    /// lives, the registration loop is expected to turn within `registration_limit`.
    pub(crate) fn connection(
        self: &Arc<Self>,
        streams: watch::Receiver<Streams>,
        expected: usize,
        registration_limit: Duration,
        cancel: CancellationToken,
    ) -> ConnectionHandle {
        let generation = self.with(|s| {
            s.connection += 1;
            s.phase = Phase::Connected { accepted: None };
            s.open = streams.borrow().open;
            s.expected = expected;
            s.epochs += 1;
            let epoch = s.epochs;
            *s.vital(Loop::Registration) = Vital::Running {
                epoch,
                last: Instant::now(),
                limit: registration_limit,
            };
            s.connection
        });
        self.publish_state();
        tokio::spawn(follow(Arc::clone(self), generation, streams, cancel));
        ConnectionHandle {
            health: Arc::clone(self),
            generation,
        }
    }

    /// Whether the hub has accepted the cluster, as its latest ManagedCluster says.
    pub(crate) fn set_accepted(&self, accepted: bool) {
        self.with(|s| {
            if let Phase::Connected { .. } = s.phase {
                s.phase = Phase::Connected {
                    accepted: Some(accepted),
                };
            }
            if !accepted {
                *s.vital(Loop::LeaseRenewal) = Vital::Idle;
            }
        });
        self.publish_state();
    }

    /// The vital loop `which` turned.
    pub(crate) fn beat(&self, which: Loop) {
        self.with(|s| {
            if let Vital::Running { last, .. } = s.vital(which) {
                *last = Instant::now();
            }
        });
    }

    /// The lease was renewed (or its renewal tried); the next is due within `period`.
    pub(crate) fn lease_renewed(&self, period: Duration) {
        let limit = period.saturating_add(self.stall);
        self.with(|s| {
            s.epochs += 1;
            let epoch = s.epochs;
            *s.vital(Loop::LeaseRenewal) = Vital::Running {
                epoch,
                last: Instant::now(),
                limit,
            };
        });
    }

    /// Runs the vital loop `which` until the guard drops: it must turn within `limit`. When
    /// the guard drops during a panic, or while `runs_until` is not cancelled, the loop died.
    pub(crate) fn guard(
        self: &Arc<Self>,
        which: Loop,
        limit: Duration,
        runs_until: Option<CancellationToken>,
    ) -> LoopGuard {
        let epoch = self.with(|s| {
            s.epochs += 1;
            let epoch = s.epochs;
            *s.vital(which) = Vital::Running {
                epoch,
                last: Instant::now(),
                limit,
            };
            epoch
        });
        LoopGuard {
            health: Arc::clone(self),
            which,
            epoch,
            runs_until,
        }
    }

    /// A resync request of `data_type` the hub took.
    pub(crate) fn resync_sent(&self, data_type: &DataType) {
        self.metrics
            .resyncs_sent
            .get_or_create(&DataTypeLabels {
                data_type: data_type.to_string(),
            })
            .inc();
    }

    /// An apply pass over a work ended with `outcome`, started for `trigger`.
    pub(crate) fn work_applied(&self, outcome: &str, trigger: &WorkTrigger) {
        self.metrics
            .work_applies
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
        if outcome == "applied"
            && let Some(received) = trigger.received
        {
            self.metrics
                .work_apply_latency
                .observe(received.elapsed().as_secs_f64());
        }
    }

    /// A work's new status was published, after the changes of `trigger`.
    pub(crate) fn work_status_published(&self, trigger: &WorkTrigger) {
        if let Some(since) = trigger.earliest() {
            self.metrics
                .work_status_latency
                .observe(since.elapsed().as_secs_f64());
        }
    }

    fn publish_state(&self) {
        let (connected, registered, open) = self.with(|s| (s.connected(), s.registered(), s.open));
        self.metrics.hub_connected.set(i64::from(connected));
        self.metrics
            .registered
            .set(i64::from(registered && connected));
        self.metrics
            .hub_open_subscriptions
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }

    /// `/readyz`.
    pub fn readiness(&self) -> ProbeAnswer {
        self.with(|s| match s.phase {
            Phase::Starting => ProbeAnswer::failed("starting"),
            Phase::Joining => ProbeAnswer::failed(
                "joining the hub with the bootstrap credential (waiting for approval)",
            ),
            Phase::Connected { accepted: None } => {
                ProbeAnswer::failed("connected; its ManagedCluster not seen yet")
            }
            Phase::Connected {
                accepted: Some(false),
            } => ProbeAnswer::failed("connected; waiting for the hub to accept the cluster"),
            Phase::Connected { .. } if !s.connected() => ProbeAnswer::failed(format!(
                "not connected to the hub: {} of {} subscriptions open",
                s.open, s.expected
            )),
            Phase::Connected { .. } => ProbeAnswer::ok(format!(
                "ok: registered and connected, {} subscriptions open",
                s.open
            )),
        })
    }

    /// `/healthz`: every vital loop either idle or turning within its limit, none died.
    pub fn liveness(&self) -> ProbeAnswer {
        let now = Instant::now();
        let vitals = self.with(|s| s.vitals);
        let mut ok = true;
        let mut lines = Vec::new();
        for which in Loop::ALL {
            let line = match vitals[which as usize] {
                Vital::Idle => "idle".to_owned(),
                Vital::Died => {
                    ok = false;
                    "DIED (ended while it should run)".to_owned()
                }
                Vital::Running { last, limit, .. } => {
                    let silent = now.saturating_duration_since(last);
                    if silent > limit {
                        ok = false;
                        format!(
                            "STUCK: no turn for {:.1}s (limit {}s)",
                            silent.as_secs_f64(),
                            limit.as_secs()
                        )
                    } else {
                        format!(
                            "running, last turn {:.1}s ago (limit {}s)",
                            silent.as_secs_f64(),
                            limit.as_secs()
                        )
                    }
                }
            };
            lines.push(format!("{}: {line}", which.name()));
        }
        let head = if ok { "ok" } else { "unhealthy" };
        let body = format!("{head}\n{}\n", lines.join("\n"));
        ProbeAnswer { ok, body }
    }
}

impl Probe for AgentHealth {
    fn ready(&self) -> ProbeAnswer {
        self.readiness()
    }

    fn live(&self) -> ProbeAnswer {
        self.liveness()
    }
}

/// A connection's place in the agent's health; dropping it ends the connection there.
#[derive(Debug)]
pub(crate) struct ConnectionHandle {
    health: Arc<AgentHealth>,
    generation: u64,
}

impl Drop for ConnectionHandle {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        self.health.with(|s| {
            if s.connection == self.generation {
                s.open = 0;
                s.expected = 0;
                if let Phase::Connected { .. } = s.phase {
                    s.phase = Phase::Starting;
                }
            }
            *s.vital(Loop::Registration) = if panicking { Vital::Died } else { Vital::Idle };
            *s.vital(Loop::LeaseRenewal) = Vital::Idle;
        });
        self.health.publish_state();
    }
}

/// A vital loop running (see [`AgentHealth::guard`]).
#[derive(Debug)]
pub(crate) struct LoopGuard {
    health: Arc<AgentHealth>,
    which: Loop,
    epoch: u64,
    runs_until: Option<CancellationToken>,
}

impl Drop for LoopGuard {
    fn drop(&mut self) {
        let died = std::thread::panicking()
            || self
                .runs_until
                .as_ref()
                .is_some_and(|token| !token.is_cancelled());
        let which = self.which;
        self.health.with(|s| {
            let vital = s.vital(which);
            // A newer run of the same loop (the next connection's) is not this one's to end.
            if matches!(*vital, Vital::Running { epoch, .. } if epoch != self.epoch) {
                return;
            }
            *vital = if died { Vital::Died } else { Vital::Idle };
        });
        if died {
            tracing::error!(
                vital_loop = which.name(),
                "a vital loop ended while it should run"
            );
        }
    }
}

/// Follows a connection's streams: connected while all are open; a reconnect is counted when
/// they are all open again after some were lost.
async fn follow(
    health: Arc<AgentHealth>,
    generation: u64,
    mut streams: watch::Receiver<Streams>,
    cancel: CancellationToken,
) {
    // The streams lost so far when the connection was last complete; `None` before the first
    // time (that is a connection, not a reconnect).
    let mut lost_when_connected: Option<u64> = None;
    loop {
        let seen = *streams.borrow_and_update();
        let connected = health.with(|s| {
            if s.connection != generation {
                return None;
            }
            s.open = seen.open;
            Some(s.connected())
        });
        let Some(connected) = connected else { return };
        if connected {
            if lost_when_connected.is_some_and(|before| seen.lost > before) {
                health.metrics.hub_reconnects.inc();
                tracing::info!(lost = seen.lost, "reconnected to the hub");
            }
            lost_when_connected = Some(seen.lost);
        }
        health.publish_state();
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = streams.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(health: &AgentHealth) -> String {
        let mut registry = Registry::default();
        health.metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[tokio::test(start_paused = true)]
    async fn ready_only_when_accepted_with_every_subscription_open() {
        let health = Arc::new(AgentHealth::default());
        assert!(!health.readiness().ok, "starting");
        health.joining();
        assert!(!health.readiness().ok, "joining");
        let (streams, rx) = watch::channel(Streams::default());
        let cancel = CancellationToken::new();
        let handle = health.connection(rx, 2, Duration::from_secs(30), cancel.clone());
        streams.send_modify(|s| s.open = 2);
        tokio::task::yield_now().await;
        assert!(
            !health.readiness().ok,
            "connected, its ManagedCluster not seen: {:?}",
            health.readiness()
        );
        health.set_accepted(false);
        assert!(!health.readiness().ok);
        health.set_accepted(true);
        let ready = health.readiness();
        assert!(ready.ok, "{ready:?}");
        assert!(encoded(&health).contains("ocm_agent_hub_connected 1"));
        assert!(encoded(&health).contains("ocm_agent_registered 1"));
        // A subscription lost: not ready.
        streams.send_modify(|s| {
            s.open = 1;
            s.lost = 1;
        });
        tokio::task::yield_now().await;
        let answer = health.readiness();
        assert!(!answer.ok);
        assert_eq!(
            answer.body,
            "not connected to the hub: 1 of 2 subscriptions open"
        );
        assert!(encoded(&health).contains("ocm_agent_hub_connected 0"));
        // Back: ready again, and that was a reconnect.
        streams.send_modify(|s| s.open = 2);
        tokio::task::yield_now().await;
        assert!(health.readiness().ok);
        assert!(
            encoded(&health).contains("ocm_agent_hub_reconnects_total 1"),
            "{}",
            encoded(&health)
        );
        drop(handle);
        assert!(!health.readiness().ok, "the connection ended");
        cancel.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_reconnect_is_counted_even_when_the_drop_was_not_seen() {
        let health = Arc::new(AgentHealth::default());
        let (streams, rx) = watch::channel(Streams::default());
        let cancel = CancellationToken::new();
        let _handle = health.connection(rx, 1, Duration::from_secs(30), cancel.clone());
        streams.send_modify(|s| s.open = 1);
        tokio::task::yield_now().await;
        // Lost and back between two looks, as a watch may coalesce them.
        streams.send_modify(|s| s.lost += 1);
        tokio::task::yield_now().await;
        assert!(encoded(&health).contains("ocm_agent_hub_reconnects_total 1"));
        // Streams ended for a rotation (not lost) are not a reconnect.
        streams.send_modify(|s| s.open = 0);
        tokio::task::yield_now().await;
        streams.send_modify(|s| s.open = 1);
        tokio::task::yield_now().await;
        assert!(encoded(&health).contains("ocm_agent_hub_reconnects_total 1"));
        cancel.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_loop_that_stops_turning_fails_liveness_until_it_turns_again() {
        let health = Arc::new(AgentHealth::new(Duration::from_secs(10)));
        assert!(health.liveness().ok, "nothing runs yet");
        let guard = health.guard(Loop::WorkAgent, Duration::from_secs(10), None);
        tokio::time::advance(Duration::from_secs(8)).await;
        health.beat(Loop::WorkAgent);
        tokio::time::advance(Duration::from_secs(8)).await;
        let live = health.liveness();
        assert!(live.ok, "{}", live.body);
        assert!(live.body.contains("work-agent: running"), "{}", live.body);
        tokio::time::advance(Duration::from_secs(3)).await;
        let stuck = health.liveness();
        assert!(!stuck.ok);
        assert!(
            stuck.body.contains("work-agent: STUCK: no turn for 11.0s"),
            "{}",
            stuck.body
        );
        health.beat(Loop::WorkAgent);
        assert!(health.liveness().ok);
        drop(guard);
        assert!(health.liveness().body.contains("work-agent: idle"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_loop_that_ends_before_its_time_or_panics_died() {
        let health = Arc::new(AgentHealth::default());
        let running = CancellationToken::new();
        // Ends while its connection still runs.
        drop(health.guard(
            Loop::WorkAgent,
            Duration::from_secs(5),
            Some(running.clone()),
        ));
        let dead = health.liveness();
        assert!(!dead.ok);
        assert!(dead.body.contains("work-agent: DIED"), "{}", dead.body);
        // A new run replaces it; ending with its connection is fine.
        let guard = health.guard(
            Loop::WorkAgent,
            Duration::from_secs(5),
            Some(running.clone()),
        );
        assert!(health.liveness().ok);
        running.cancel();
        drop(guard);
        assert!(health.liveness().ok);
        // A panic in a task holding the guard.
        let panicking = Arc::clone(&health);
        let task = tokio::spawn(async move {
            let _guard = panicking.guard(Loop::Registration, Duration::from_secs(5), None);
            panic!("boom");
        });
        assert!(task.await.is_err());
        let dead = health.liveness();
        assert!(dead.body.contains("registration: DIED"), "{}", dead.body);
    }

    #[tokio::test(start_paused = true)]
    async fn an_old_runs_end_does_not_end_the_new_run() {
        let health = Arc::new(AgentHealth::default());
        let old_connection = CancellationToken::new();
        let old = health.guard(
            Loop::WorkAgent,
            Duration::from_secs(5),
            Some(old_connection.clone()),
        );
        let new = health.guard(Loop::WorkAgent, Duration::from_secs(5), None);
        old_connection.cancel();
        drop(old);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(
            !health.liveness().ok,
            "the new run is still watched (and now stuck)"
        );
        drop(new);
    }

    #[tokio::test(start_paused = true)]
    async fn the_lease_renewal_may_take_its_period_plus_the_stall_limit() {
        let health = Arc::new(AgentHealth::new(Duration::from_secs(10)));
        health.lease_renewed(Duration::from_secs(60));
        tokio::time::advance(Duration::from_secs(69)).await;
        assert!(health.liveness().ok);
        tokio::time::advance(Duration::from_secs(2)).await;
        let stuck = health.liveness();
        assert!(
            !stuck.ok && stuck.body.contains("lease-renewal: STUCK"),
            "{}",
            stuck.body
        );
        // Not accepted any more: no renewal expected.
        health.set_accepted(false);
        assert!(health.liveness().ok);
    }

    #[tokio::test(start_paused = true)]
    async fn work_metrics_count_outcomes_and_observe_latencies() {
        let health = AgentHealth::default();
        let mut trigger = WorkTrigger::default();
        trigger.received(Instant::now());
        tokio::time::advance(Duration::from_millis(30)).await;
        trigger.changed(Instant::now());
        tokio::time::advance(Duration::from_millis(20)).await;
        health.work_applied("applied", &trigger);
        health.work_status_published(&trigger);
        health.work_applied("failed", &WorkTrigger::default());
        health.resync_sent(&DataType::manifest_bundles());
        let text = encoded(&health);
        assert!(
            text.contains("ocm_agent_work_applies_total{outcome=\"applied\"} 1"),
            "{text}"
        );
        assert!(text.contains("ocm_agent_work_applies_total{outcome=\"failed\"} 1"));
        assert!(text.contains("ocm_agent_work_apply_latency_seconds_count 1"));
        assert!(text.contains("ocm_agent_work_apply_latency_seconds_sum 0.05"));
        assert!(text.contains("ocm_agent_work_status_report_latency_seconds_sum 0.05"));
        assert!(text.contains(
            "ocm_agent_resyncs_sent_total{data_type=\"io.open-cluster-management.works.v1alpha1.manifestbundles\"} 1"
        ), "{text}");
    }
}
