//! Work delivery (issue 5): ManifestWorks created on a real hub, applied by real `ocm-agent`
//! processes on two real managed clusters, their status written back on the hub.
//!
//! `cargo build --release -p ocm-hub-server --bin ocm-hub -p ocm-spoke-agent --bin ocm-agent &&
//!  cargo bench -p ocm-sim --bench work [-- --singles 20 --per-spoke 50 --feedback 20
//!  --settle 15 --idle-window 5]`
//!
//! - **Setup**: a hub cluster and two managed clusters from `ocm-testenv` (etcd, kube-apiserver,
//!   kube-controller-manager, kube-scheduler, a kwok node, so Deployments get Running pods); the
//!   real `ocm-hub` binary with `--auto-approved-users` naming the bootstrap ServiceAccount it
//!   creates (OCM's ManagedClusterAutoApproval), and one real `ocm-agent` per managed cluster
//!   started as `ocmctl join --local` starts it, with OCM's gRPC bootstrap config (the hub CA and
//!   a token of the bootstrap ServiceAccount). Every flag is the binaries' default.
//! - Every time is taken in this process: from just before the create (or the spoke change) to
//!   the moment a watch of ManifestWorks on the hub apiserver delivers the status in question.
//!   "Applied" means the work's `Applied` condition is True with `observedGeneration` equal to
//!   the work's generation. A work is a ConfigMap and a one-replica Deployment in `default`.
//! - **Idle**: agent RSS (VmRSS from `/proc`, sampled every 100 ms) once both clusters are
//!   Available and `--settle` seconds have passed, over `--idle-window` seconds (the largest
//!   sample).
//! - **One work**: first one work per agent (its first work: the agent starts its watches), then
//!   `--singles` works one after the other, alternating between the clusters, each deleted (and
//!   gone) before the next: create → Applied, p50/p99.
//! - **Feedback**: a work with a CRD (status subresource) and one custom resource of it, with a
//!   JSONPaths feedback rule on `.status.value`. The benchmark patches the resource's status on
//!   the managed cluster (a field the agent neither owns nor writes) `--feedback` times, one
//!   after the other: patch → the new value in the hub's ManifestWork status, p50/p99.
//! - **100 works**: `--per-spoke` works for each cluster, all created at once: per work create →
//!   Applied p50/p99, and until all are Applied; agent RSS at most while they apply; the hub
//!   apiserver's ManifestWork status writes (`apiserver_request_total`, resource
//!   `manifestworks`, subresource `status`, PUT/PATCH/APPLY) per second, and `ocm-hub`'s own
//!   counters (events agents published, status writes, statuses that cost no write); CPU of
//!   every process meanwhile. Then every Deployment is checked to have its pod available on its
//!   cluster, and the works are deleted (until gone from the hub).
//!
//! Everything shares the machine: three clusters, the hub, two agents and this process. Under
//! `cargo test` (no `--bench` argument) it makes one small pass, so the suite keeps it working.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)] // a benchmark report

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use futures::StreamExt as _;
use ocm_api::cluster::v1::{CONDITION_AVAILABLE as CLUSTER_AVAILABLE, ManagedCluster};
use ocm_api::condition::{self, ConditionStatus};
use ocm_api::k8s_openapi::api::apps::v1::Deployment;
use ocm_api::kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use ocm_api::kube::runtime::{WatchStreamExt as _, watcher};
use ocm_api::kube::{Api, Client};
use ocm_api::work::v1::{
    CONDITION_APPLIED, FeedbackRule, FeedbackType, FieldValue, JsonPath, Manifest,
    ManifestConfigOption, ManifestWork, ManifestWorkSpec, ManifestsTemplate, ResourceIdentifier,
};
use ocm_sim::agent::{AgentProcess, Bootstrap};
use ocm_sim::hub::{self, HubProcess};
use ocm_sim::measure::{self, Metrics, Sample};
use ocm_testenv::Cluster;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const BOOTSTRAP_NAMESPACE: &str = "open-cluster-management";
const BOOTSTRAP_SA: &str = "agent-registration-bootstrap";
const BOOTSTRAP_USER: &str =
    "system:serviceaccount:open-cluster-management:agent-registration-bootstrap";
/// The managed clusters' names on the hub.
const CLUSTERS: [&str; 2] = ["cluster1", "cluster2"];
/// The custom resource the feedback phase changes.
const PROBE_GROUP: &str = "bench.ocm-rs.io";
const PROBE_NAME: &str = "probe";
const FEEDBACK_WORK: &str = "feedback";
const FEEDBACK_VALUE: &str = "value";
/// The targets for the agent's resident memory, MiB.
const TARGET_IDLE_MIB: f64 = 20.0;
const TARGET_BUSY_MIB: f64 = 64.0;
const HUB_METRICS: &[&str] = &[
    "ocm_hub_published_events_total",
    "ocm_hub_work_status_writes_total",
    "ocm_hub_work_status_write_failures_total",
    "ocm_hub_work_status_skipped_total",
];

#[derive(Debug, Clone)]
struct Options {
    singles: usize,
    per_spoke: usize,
    feedbacks: usize,
    settle: Duration,
    idle_window: Duration,
    /// Longest one work (or one feedback change, or one deletion) may take.
    timeout: Duration,
    /// Longest the 100-work phase may take until all are Applied (and again until all are gone).
    batch_timeout: Duration,
}

fn options(args: &[String]) -> anyhow::Result<Options> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not, and then one small
    // pass checks that the benchmark still works.
    if !args.iter().any(|a| a == "--bench") {
        return Ok(Options {
            singles: 2,
            per_spoke: 2,
            feedbacks: 2,
            settle: Duration::from_secs(1),
            idle_window: Duration::from_secs(1),
            timeout: Duration::from_secs(60),
            batch_timeout: Duration::from_secs(60),
        });
    }
    let mut options = Options {
        singles: 20,
        per_spoke: 50,
        feedbacks: 20,
        settle: Duration::from_secs(15),
        idle_window: Duration::from_secs(5),
        timeout: Duration::from_secs(60),
        batch_timeout: Duration::from_secs(300),
    };
    for pair in args.windows(2) {
        let value = pair[1].as_str();
        let number = || -> anyhow::Result<u64> {
            value
                .parse()
                .with_context(|| format!("{} {value}: not a number", pair[0]))
        };
        match pair[0].as_str() {
            "--singles" => options.singles = usize::try_from(number()?)?,
            "--per-spoke" => options.per_spoke = usize::try_from(number()?)?,
            "--feedback" => options.feedbacks = usize::try_from(number()?)?,
            "--settle" => options.settle = Duration::from_secs(number()?),
            "--idle-window" => options.idle_window = Duration::from_secs(number()?),
            _ => {}
        }
    }
    ensure!(
        options.singles >= 1 && options.per_spoke >= 1 && options.feedbacks >= 1,
        "--singles, --per-spoke and --feedback must be at least 1"
    );
    Ok(options)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let options = options(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(options))
}

// ---------------------------------------------------------------------------------------------
// What the hub apiserver says about the ManifestWorks, from a watch.

/// One work as the watch last showed it.
#[derive(Debug, Default)]
struct Seen {
    uid: String,
    generation: i64,
    /// When `Applied=True` for `generation` was first seen.
    applied: Option<Instant>,
    /// When each value of the feedback [`FEEDBACK_VALUE`] was first seen.
    feedback: HashMap<String, Instant>,
}

#[derive(Debug, Default)]
struct State {
    /// By `namespace/name`.
    seen: HashMap<String, Seen>,
    /// When each work (`namespace/name`, UID) was seen deleted.
    gone: HashMap<(String, String), Instant>,
}

#[derive(Debug)]
struct Works {
    state: Mutex<State>,
    /// Bumped on every change, to wake the waiters.
    changed: tokio::sync::watch::Sender<u64>,
    synced: AtomicBool,
}

fn key_of(work: &ManifestWork) -> String {
    format!(
        "{}/{}",
        work.metadata.namespace.as_deref().unwrap_or_default(),
        work.metadata.name.as_deref().unwrap_or_default()
    )
}

fn render(value: &FieldValue) -> String {
    value
        .string
        .clone()
        .or_else(|| value.integer.map(|i| i.to_string()))
        .or_else(|| value.boolean.map(|b| b.to_string()))
        .or_else(|| value.json_raw.clone())
        .unwrap_or_default()
}

impl Works {
    fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            changed: tokio::sync::watch::Sender::new(0),
            synced: AtomicBool::new(false),
        }
    }

    fn record(&self, work: &ManifestWork) {
        let now = Instant::now();
        let uid = work.metadata.uid.clone().unwrap_or_default();
        let generation = work.metadata.generation.unwrap_or_default();
        {
            let mut state = self.state.lock().unwrap();
            let seen = state.seen.entry(key_of(work)).or_default();
            if seen.uid != uid {
                *seen = Seen {
                    uid,
                    ..Seen::default()
                };
            }
            if seen.generation != generation {
                seen.generation = generation;
                seen.applied = None;
            }
            let status = work.status.clone().unwrap_or_default();
            let applied = condition::find(&status.conditions, CONDITION_APPLIED).is_some_and(|c| {
                c.status == ConditionStatus::True && c.observed_generation == Some(generation)
            });
            if applied && seen.applied.is_none() {
                seen.applied = Some(now);
            }
            for value in status
                .resource_status
                .manifests
                .iter()
                .flat_map(|m| &m.status_feedback.values)
                .filter(|v| v.name == FEEDBACK_VALUE)
            {
                seen.feedback
                    .entry(render(&value.field_value))
                    .or_insert(now);
            }
        }
        self.changed.send_modify(|n| *n += 1);
    }

    fn record_gone(&self, work: &ManifestWork) {
        let now = Instant::now();
        let uid = work.metadata.uid.clone().unwrap_or_default();
        {
            let mut state = self.state.lock().unwrap();
            let key = key_of(work);
            if state.seen.get(&key).is_some_and(|s| s.uid == uid) {
                state.seen.remove(&key);
            }
            state.gone.entry((key, uid)).or_insert(now);
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// When the work `key` with `uid` was first seen Applied.
    fn applied(state: &State, key: &str, uid: &str) -> Option<Instant> {
        state
            .seen
            .get(key)
            .filter(|s| s.uid == uid)
            .and_then(|s| s.applied)
    }
}

async fn watch_works(client: Client, works: Arc<Works>) {
    let stream =
        watcher(Api::<ManifestWork>::all(client), watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(work) | watcher::Event::InitApply(work)) => {
                works.record(&work)
            }
            Ok(watcher::Event::Delete(work)) => works.record_gone(&work),
            Ok(watcher::Event::InitDone) => works.synced.store(true, Ordering::SeqCst),
            Ok(watcher::Event::Init) => {}
            Err(err) => tracing::warn!(%err, "ManifestWork watch"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The processes, and what is sampled of them.

struct Fleet {
    hub: HubProcess,
    agents: Vec<AgentProcess>,
    /// Where the hub's, the agents' and this process's logs are.
    logs: PathBuf,
}

impl Fleet {
    /// Fails if the hub or an agent has exited.
    fn check(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.hub.exited() {
            bail!(
                "ocm-hub exited ({status}); see {}",
                self.hub.log().display()
            );
        }
        for agent in &mut self.agents {
            if let Some(status) = agent.exited() {
                bail!(
                    "ocm-agent of {} exited ({status}); see {}",
                    agent.cluster_name,
                    agent.log().display()
                );
            }
        }
        Ok(())
    }

    fn agent_pids(&self) -> Vec<u32> {
        self.agents.iter().map(AgentProcess::pid).collect()
    }
}

/// Waits (up to `timeout`) until `check` finds what it looks for in what the watch saw, failing
/// early if a process exited.
async fn wait_until<T>(
    works: &Works,
    fleet: &mut Fleet,
    what: &str,
    timeout: Duration,
    mut check: impl FnMut(&State) -> Option<T>,
) -> anyhow::Result<T> {
    let mut changed = works.changed.subscribe();
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check(&works.state.lock().unwrap()) {
            return Ok(found);
        }
        fleet.check()?;
        let now = Instant::now();
        ensure!(now < deadline, "{what}: not within {timeout:?}");
        let _ = tokio::time::timeout(
            (deadline - now).min(Duration::from_secs(1)),
            changed.changed(),
        )
        .await;
    }
}

/// Agent RSS every 100 ms, and `ocm-hub`'s status-write counter every second.
#[derive(Debug, Default)]
struct Samples {
    /// KiB per agent.
    rss: Mutex<Vec<(Instant, Vec<u64>)>>,
    status_writes: Mutex<Vec<(Instant, f64)>>,
}

impl Samples {
    /// The largest RSS of each agent sampled between `from` and `to`, KiB.
    fn max_rss(&self, from: Instant, to: Instant) -> Vec<u64> {
        let rss = self.rss.lock().unwrap();
        let mut max: Vec<u64> = Vec::new();
        for (_, values) in rss.iter().filter(|(at, _)| *at >= from && *at <= to) {
            max.resize(values.len(), 0);
            for (m, v) in max.iter_mut().zip(values) {
                *m = (*m).max(*v);
            }
        }
        max
    }

    /// The most status writes `ocm-hub` made in one second between `from` and `to`.
    fn peak_writes_per_second(&self, from: Instant, to: Instant) -> f64 {
        let writes = self.status_writes.lock().unwrap();
        let inside: Vec<&(Instant, f64)> = writes
            .iter()
            .filter(|(at, _)| {
                *at + Duration::from_secs(1) >= from && *at <= to + Duration::from_secs(1)
            })
            .collect();
        inside
            .windows(2)
            .map(|w| (w[1].1 - w[0].1) / w[1].0.duration_since(w[0].0).as_secs_f64())
            .fold(0.0, f64::max)
    }
}

async fn sample(
    pids: Vec<u32>,
    health_port: u16,
    samples: Arc<Samples>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut n: u64 = 0;
    while !cancel.is_cancelled() {
        tick.tick().await;
        let rss: Vec<u64> = pids
            .iter()
            .map(|pid| measure::rss_kib(*pid).unwrap_or(0))
            .collect();
        samples.rss.lock().unwrap().push((Instant::now(), rss));
        if n.is_multiple_of(10)
            && let Some((200, body)) = hub::http_get(health_port, "/metrics").await
        {
            let writes = Metrics::parse(&body, HUB_METRICS)
                .sum("ocm_hub_work_status_writes_total", |_| true);
            samples
                .status_writes
                .lock()
                .unwrap()
                .push((Instant::now(), writes));
        }
        n += 1;
    }
}

/// CPU time of each watched process.
struct CpuReading {
    at: Instant,
    times: Vec<(String, Duration)>,
}

impl CpuReading {
    fn take(pids: &[(String, u32)]) -> anyhow::Result<Self> {
        let at = Instant::now();
        let times = pids
            .iter()
            .map(|(name, pid)| Ok((name.clone(), measure::cpu_time(*pid)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { at, times })
    }

    /// CPU time the agents used together since `earlier`.
    fn agents_since(&self, earlier: &Self) -> Duration {
        self.times
            .iter()
            .zip(&earlier.times)
            .filter(|((name, _), _)| name.starts_with("ocm-agent"))
            .map(|((_, now), (_, then))| now.saturating_sub(*then))
            .sum()
    }

    /// % of one core each process used since `earlier`.
    fn since(&self, earlier: &Self) -> Vec<(String, f64)> {
        let wall = self.at.duration_since(earlier.at).as_secs_f64();
        self.times
            .iter()
            .zip(&earlier.times)
            .map(|((name, now), (_, then))| {
                (
                    name.clone(),
                    now.saturating_sub(*then).as_secs_f64() / wall * 100.0,
                )
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The works.

/// A ConfigMap and a one-replica Deployment, both called `name`, in `default`.
fn app_work(cluster: &str, name: &str) -> ManifestWork {
    let manifests = vec![
        Manifest(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"},
            "data": {"mode": "blue", "owner": name}
        })),
        Manifest(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
                }
            }
        })),
    ];
    work(cluster, name, manifests, Vec::new())
}

fn work(
    cluster: &str,
    name: &str,
    manifests: Vec<Manifest>,
    manifest_configs: Vec<ManifestConfigOption>,
) -> ManifestWork {
    let mut work = ManifestWork::new(
        name,
        ManifestWorkSpec {
            workload: ManifestsTemplate { manifests },
            manifest_configs,
            ..ManifestWorkSpec::default()
        },
    );
    work.metadata.namespace = Some(cluster.to_owned());
    work
}

/// A CRD with a status subresource, one resource of it, and a JSONPaths feedback rule on its
/// `.status.value`.
fn feedback_work(cluster: &str) -> ManifestWork {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("probes.{PROBE_GROUP}")},
        "spec": {
            "group": PROBE_GROUP,
            "names": {"kind": "Probe", "listKind": "ProbeList", "plural": "probes", "singular": "probe"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "properties": {"target": {"type": "string"}}},
                        "status": {"type": "object", "properties": {"value": {"type": "string"}}}
                    }
                }}
            }]
        }
    });
    let probe = json!({
        "apiVersion": format!("{PROBE_GROUP}/v1"), "kind": "Probe",
        "metadata": {"name": PROBE_NAME, "namespace": "default"},
        "spec": {"target": "anything"}
    });
    let mut feedback = ManifestConfigOption::new(ResourceIdentifier {
        group: PROBE_GROUP.into(),
        resource: "probes".into(),
        namespace: "default".into(),
        name: PROBE_NAME.into(),
    });
    feedback.feedback_rules = vec![FeedbackRule {
        r#type: FeedbackType::JsonPaths,
        json_paths: vec![JsonPath {
            name: FEEDBACK_VALUE.into(),
            version: String::new(),
            path: ".status.value".into(),
        }],
    }];
    work(
        cluster,
        FEEDBACK_WORK,
        vec![Manifest(crd), Manifest(probe)],
        vec![feedback],
    )
}

fn probe_resource() -> ApiResource {
    ApiResource {
        group: PROBE_GROUP.into(),
        version: "v1".into(),
        api_version: format!("{PROBE_GROUP}/v1"),
        kind: "Probe".into(),
        plural: "probes".into(),
    }
}

/// Creates `work` on the hub: its key, UID and when the request started.
async fn create(hub: &Client, work: &ManifestWork) -> anyhow::Result<(String, String, Instant)> {
    let cluster = work.metadata.namespace.clone().unwrap_or_default();
    let started = Instant::now();
    let created = Api::<ManifestWork>::namespaced(hub.clone(), &cluster)
        .create(&PostParams::default(), work)
        .await
        .with_context(|| format!("creating ManifestWork {}", key_of(work)))?;
    Ok((
        key_of(&created),
        created.metadata.uid.clone().unwrap_or_default(),
        started,
    ))
}

/// Deletes the work `key` (`namespace/name`) on the hub.
async fn delete(hub: &Client, key: &str) -> anyhow::Result<()> {
    let (cluster, name) = key.split_once('/').unwrap_or_default();
    Api::<ManifestWork>::namespaced(hub.clone(), cluster)
        .delete(name, &DeleteParams::default())
        .await
        .with_context(|| format!("deleting ManifestWork {key}"))?;
    Ok(())
}

/// One work created and Applied.
struct OneWork {
    /// Create → Applied.
    applied: Duration,
    /// How long the create request itself took.
    request: Duration,
    /// Its key and UID.
    keyed: (String, String),
}

/// Creates one work and waits until it is Applied.
async fn one_work(
    hub: &Client,
    works: &Works,
    fleet: &mut Fleet,
    work: &ManifestWork,
    timeout: Duration,
) -> anyhow::Result<OneWork> {
    let (key, uid, started) = create(hub, work).await?;
    let request = started.elapsed();
    let applied = wait_until(works, fleet, &format!("{key} Applied"), timeout, |state| {
        Works::applied(state, &key, &uid)
    })
    .await?;
    Ok(OneWork {
        applied: applied.saturating_duration_since(started),
        request,
        keyed: (key, uid),
    })
}

/// Deletes the works `keyed` (key and UID) and waits until they are all gone: from the first
/// delete until the last is gone.
async fn delete_and_wait(
    hub: &Client,
    works: &Works,
    fleet: &mut Fleet,
    keyed: &[(String, String)],
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let results = futures::future::join_all(keyed.iter().map(|(key, _)| delete(hub, key))).await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    wait_until(
        works,
        fleet,
        &format!("{} works gone from the hub", keyed.len()),
        timeout,
        |state| {
            keyed
                .iter()
                .all(|(key, uid)| state.gone.contains_key(&(key.clone(), uid.clone())))
                .then_some(())
        },
    )
    .await?;
    Ok(started.elapsed())
}

// ---------------------------------------------------------------------------------------------
// Figures.

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// `p50 / p99 (min–max, n)` of `times`.
fn spread(times: &mut [Duration]) -> String {
    times.sort_unstable();
    format!(
        "**{} / {}** ({}–{}, n = {})",
        ms(percentile(times, 50.0)),
        ms(percentile(times, 99.0)),
        ms(times.first().copied().unwrap_or_default()),
        ms(times.last().copied().unwrap_or_default()),
        times.len()
    )
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Each agent's MiB, and whether the largest meets `target`.
fn rss_figure(kib: &[u64], target: f64) -> String {
    let values: Vec<String> = kib.iter().map(|k| format!("{:.1}", mib(*k))).collect();
    let largest = kib.iter().copied().max().map_or(0.0, mib);
    let verdict = if largest <= target {
        "meets"
    } else {
        "**misses**"
    };
    format!(
        "**{} MiB** ({verdict} ≤ {target:.0} MiB)",
        values.join(" / ")
    )
}

fn is_status_write(sample: &Sample) -> bool {
    sample.label("resource") == "manifestworks"
        && sample.label("subresource") == "status"
        && matches!(sample.label("verb"), "PUT" | "PATCH" | "APPLY")
}

fn is_work_request(sample: &Sample) -> bool {
    sample.label("resource") == "manifestworks" && measure::is_stored_write(sample)
}

fn request_key(sample: &Sample) -> String {
    let resource = match sample.label("subresource") {
        "" => sample.label("resource").to_owned(),
        sub => format!("{}/{sub}", sample.label("resource")),
    };
    format!(
        "{} {resource} {}",
        sample.label("verb"),
        sample.label("code")
    )
}

/// Every request the managed clusters' apiservers counted, by verb and resource, summed over
/// the clusters.
async fn spoke_requests(spokes: &[Client]) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut all: BTreeMap<String, f64> = BTreeMap::new();
    for spoke in spokes {
        let metrics = Metrics::scrape(spoke, &["apiserver_request_total"]).await?;
        for (key, n) in metrics.grouped(
            "apiserver_request_total",
            |_| true,
            |s| {
                let resource = match s.label("subresource") {
                    "" => s.label("resource").to_owned(),
                    sub => format!("{}/{sub}", s.label("resource")),
                };
                format!("{} {resource}", s.label("verb"))
            },
        ) {
            *all.entry(key).or_insert(0.0) += n;
        }
    }
    Ok(all)
}

/// The largest `n` groups, each divided by `per`.
fn top_per(groups: &BTreeMap<String, f64>, per: f64, n: usize) -> String {
    let mut sorted: Vec<(&String, &f64)> = groups.iter().collect();
    sorted.sort_by(|a, b| b.1.total_cmp(a.1));
    let total = groups.values().fold(0.0, |a, b| a + b);
    let largest: Vec<String> = sorted
        .into_iter()
        .take(n)
        .map(|(key, count)| format!("{key} {:.2}", count / per))
        .collect();
    format!("{:.1} in all: {}", total / per, largest.join(", "))
}

fn listed(groups: &BTreeMap<String, f64>) -> String {
    if groups.is_empty() {
        return "none".to_owned();
    }
    groups
        .iter()
        .map(|(key, n)| format!("{key}: {n:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------

async fn bench(options: Options) -> anyhow::Result<()> {
    let begun = Instant::now();
    let hub_binary = ocm_sim::binary_beside_current_exe("ocm-hub", "ocm-hub-server")?;
    let agent_binary = ocm_sim::binary_beside_current_exe("ocm-agent", "ocm-spoke-agent")?;
    let logs = std::env::temp_dir().join(format!("ocm-sim-work-{}", std::process::id()));
    std::fs::create_dir_all(&logs)?;
    let sim_log = logs.join("sim.log");
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OCM_SIM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(false)
        .with_writer(Mutex::new(std::fs::File::create(&sim_log)?))
        .init();

    let (hub_cluster, spoke1, spoke2) = tokio::join!(
        Cluster::start("work-hub"),
        Cluster::start("work-spoke1"),
        Cluster::start("work-spoke2")
    );
    let (hub_cluster, spoke1, spoke2) = (hub_cluster?, spoke1?, spoke2?);
    eprintln!(
        "[setup] three clusters ready after {}",
        secs(begun.elapsed())
    );
    let kube = hub_cluster.client()?;
    let hub_log = logs.join("ocm-hub.log");
    let hub = HubProcess::start(
        &hub_binary,
        &hub_cluster,
        &[
            "--auto-approved-users".into(),
            BOOTSTRAP_USER.into(),
            "--bootstrap-service-account".into(),
            format!("{BOOTSTRAP_NAMESPACE}/{BOOTSTRAP_SA}"),
        ],
        hub_log.clone(),
        Duration::from_secs(60),
    )
    .await?;
    let bootstrap = Bootstrap {
        url: format!("127.0.0.1:{}", hub.grpc_port),
        ca_pem: hub::hub_ca_pem(&kube).await?,
        token: hub::bootstrap_token(
            &kube,
            BOOTSTRAP_NAMESPACE,
            BOOTSTRAP_SA,
            Duration::from_secs(4 * 3600),
        )
        .await?,
    };
    let mut fleet = Fleet {
        hub,
        agents: Vec::new(),
        logs: logs.clone(),
    };
    let spokes = [&spoke1, &spoke2];
    let joined_at = Instant::now();
    for (spoke, name) in spokes.iter().zip(CLUSTERS) {
        let agent = AgentProcess::start(&agent_binary, spoke, name, &bootstrap, &logs, &[])?;
        fleet.agents.push(agent);
    }
    let mut pids: Vec<(String, u32)> = vec![("ocm-hub".to_owned(), fleet.hub.pid())];
    for agent in &fleet.agents {
        pids.push((format!("ocm-agent {}", agent.cluster_name), agent.pid()));
    }
    for (label, cluster) in [
        ("hub", &hub_cluster),
        ("spoke1", &spoke1),
        ("spoke2", &spoke2),
    ] {
        for (component, pid) in cluster.components() {
            pids.push((format!("{label} {component}"), pid));
        }
    }
    pids.push(("benchmark".to_owned(), std::process::id()));
    let outcome = run(
        &options,
        &kube,
        &[spoke1.client()?, spoke2.client()?],
        &mut fleet,
        &pids,
        joined_at,
    )
    .await;
    eprintln!("[done] whole run {}", secs(begun.elapsed()));
    for agent in &mut fleet.agents {
        agent.stop(Duration::from_secs(5));
    }
    fleet.hub.stop(Duration::from_secs(5));
    if let Err(err) = &outcome {
        eprintln!(
            "the run failed: {err:#}\nlogs (hub, agents, this process) kept in {}",
            logs.display()
        );
        return outcome;
    }
    if std::env::var_os(ocm_testenv::KEEP_ENV).is_some() {
        eprintln!("logs kept in {}", logs.display());
    } else {
        let _ = std::fs::remove_dir_all(&logs);
    }
    hub_cluster.stop();
    spoke1.stop();
    spoke2.stop();
    outcome
}

async fn run(
    options: &Options,
    kube: &Client,
    spokes: &[Client; 2],
    fleet: &mut Fleet,
    pids: &[(String, u32)],
    joined_at: Instant,
) -> anyhow::Result<()> {
    let works = Arc::new(Works::new());
    tokio::spawn(watch_works(kube.clone(), Arc::clone(&works)));
    let samples = Arc::new(Samples::default());
    let stop_sampling = CancellationToken::new();
    let _stop_sampling = stop_sampling.clone().drop_guard();
    tokio::spawn(sample(
        fleet.agent_pids(),
        fleet.hub.health_port,
        Arc::clone(&samples),
        stop_sampling,
    ));

    // Join: both agents bootstrap, the hub approves and accepts, both clusters Available.
    let clusters: Api<ManagedCluster> = Api::all(kube.clone());
    let deadline = joined_at + Duration::from_secs(120);
    for name in CLUSTERS {
        loop {
            fleet.check()?;
            let available = clusters
                .get_opt(name)
                .await?
                .and_then(|c| c.status)
                .and_then(|s| condition::find(&s.conditions, CLUSTER_AVAILABLE).map(|c| c.status));
            if available == Some(ConditionStatus::True) {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "{name} not Available within 120 s; see the logs in {}",
                fleet.logs.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let join = joined_at.elapsed();
    ensure!(
        works.synced.load(Ordering::SeqCst),
        "the ManifestWork watch has not synced"
    );
    eprintln!(
        "[join] both clusters Available {} after the agents started",
        secs(join)
    );

    // Idle.
    tokio::time::sleep(options.settle).await;
    let idle_from = Instant::now();
    let idle_cpu_before = CpuReading::take(pids)?;
    tokio::time::sleep(options.idle_window).await;
    fleet.check()?;
    let idle_cpu = CpuReading::take(pids)?.since(&idle_cpu_before);
    let rss_idle = samples.max_rss(idle_from, Instant::now());
    eprintln!(
        "[idle] agent RSS {:?} KiB after {} s",
        rss_idle,
        (idle_from - joined_at).as_secs()
    );

    // One work: first each agent's first, then one after the other.
    let mut firsts = Vec::new();
    let mut first_keys = Vec::new();
    for cluster in CLUSTERS {
        let work = app_work(cluster, "first");
        let first = one_work(kube, &works, fleet, &work, options.timeout).await?;
        firsts.push(first.applied);
        first_keys.push(first.keyed);
    }
    delete_and_wait(kube, &works, fleet, &first_keys, options.timeout).await?;
    let singles_cpu_before = CpuReading::take(pids)?;
    let mut singles = Vec::new();
    let mut requests = Vec::new();
    let mut deletions = Vec::new();
    for i in 0..options.singles {
        let cluster = CLUSTERS[i % CLUSTERS.len()];
        let work = app_work(cluster, &format!("one-{i:03}"));
        let one = one_work(kube, &works, fleet, &work, options.timeout).await?;
        singles.push(one.applied);
        requests.push(one.request);
        deletions.push(delete_and_wait(kube, &works, fleet, &[one.keyed], options.timeout).await?);
    }
    let singles_agent_cpu =
        CpuReading::take(pids)?.agents_since(&singles_cpu_before) / options.singles as u32;
    eprintln!(
        "[one work] create → Applied p50 {} p99 {}",
        ms(percentile(
            &{
                let mut s = singles.clone();
                s.sort_unstable();
                s
            },
            50.0
        )),
        ms(*singles.iter().max().unwrap())
    );

    // Feedback: a status field changed on the managed cluster → the new value on the hub.
    let feedback = feedback_work(CLUSTERS[0]);
    let feedback_applied = one_work(kube, &works, fleet, &feedback, options.timeout)
        .await?
        .applied;
    let probes: Api<DynamicObject> =
        Api::namespaced_with(spokes[0].clone(), "default", &probe_resource());
    let feedback_key = key_of(&feedback);
    let mut feedbacks = Vec::new();
    for i in 0..options.feedbacks {
        let value = format!("v{i}");
        let started = Instant::now();
        probes
            .patch_status(
                PROBE_NAME,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"value": value}})),
            )
            .await
            .context("patching the probe's status on the managed cluster")?;
        let seen = wait_until(
            &works,
            fleet,
            &format!("feedback {value} on the hub"),
            options.timeout,
            |state| {
                state
                    .seen
                    .get(&feedback_key)
                    .and_then(|s| s.feedback.get(&value).copied())
            },
        )
        .await?;
        feedbacks.push(seen.saturating_duration_since(started));
    }
    eprintln!(
        "[feedback] slowest spoke change → hub feedback {}",
        ms(*feedbacks.iter().max().unwrap())
    );

    // 100 works at once.
    let batch: Vec<ManifestWork> = CLUSTERS
        .iter()
        .flat_map(|cluster| {
            (0..options.per_spoke).map(move |i| app_work(cluster, &format!("batch-{i:03}")))
        })
        .collect();
    let api_before = Metrics::scrape(kube, &["apiserver_request_total"]).await?;
    let spokes_before = spoke_requests(spokes).await?;
    let hub_before = fleet.hub.metrics(HUB_METRICS).await?;
    let cpu_before = CpuReading::take(pids)?;
    let batch_started = Instant::now();
    let created = futures::future::join_all(batch.iter().map(|w| create(kube, w))).await;
    let created: Vec<(String, String, Instant)> =
        created.into_iter().collect::<anyhow::Result<_>>()?;
    let creates_done = batch_started.elapsed();
    let applied: Vec<Instant> = wait_until(
        &works,
        fleet,
        &format!("{} works Applied", batch.len()),
        options.batch_timeout,
        |state| {
            created
                .iter()
                .map(|(key, uid, _)| Works::applied(state, key, uid))
                .collect::<Option<Vec<Instant>>>()
        },
    )
    .await?;
    let all_applied_at = applied.iter().max().copied().unwrap_or(batch_started);
    let all_applied = all_applied_at.saturating_duration_since(batch_started);
    let mut batch_times: Vec<Duration> = created
        .iter()
        .zip(&applied)
        .map(|((_, _, started), applied)| applied.saturating_duration_since(*started))
        .collect();
    let cpu_applied = CpuReading::take(pids)?;
    let api_applied = Metrics::scrape(kube, &["apiserver_request_total"]).await?;
    let spoke_growth = measure::growth(&spokes_before, &spoke_requests(spokes).await?);
    eprintln!(
        "[batch] {} works Applied {} after the first create",
        batch.len(),
        secs(all_applied)
    );
    // Quiet: until ocm-hub has written no status for 3 s (at most a minute).
    let quiet_deadline = Instant::now() + Duration::from_secs(60);
    let mut last = fleet
        .hub
        .metrics(HUB_METRICS)
        .await?
        .sum("ocm_hub_work_status_writes_total", |_| true);
    let mut last_change = Instant::now();
    while last_change.elapsed() < Duration::from_secs(3) && Instant::now() < quiet_deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        fleet.check()?;
        let now = fleet
            .hub
            .metrics(HUB_METRICS)
            .await?
            .sum("ocm_hub_work_status_writes_total", |_| true);
        if now != last {
            last = now;
            last_change = Instant::now();
        }
    }
    let quiet_at = last_change;
    let api_quiet = Metrics::scrape(kube, &["apiserver_request_total"]).await?;
    let hub_quiet = fleet.hub.metrics(HUB_METRICS).await?;
    let rss_busy = samples.max_rss(batch_started, Instant::now());
    let peak_writes = samples.peak_writes_per_second(batch_started, quiet_at);

    let status_writes = |m: &Metrics| m.sum("apiserver_request_total", is_status_write);
    let writes_to_applied = status_writes(&api_applied) - status_writes(&api_before);
    let writes_to_quiet = status_writes(&api_quiet) - status_writes(&api_before);
    let work_requests = measure::growth(
        &api_before.grouped("apiserver_request_total", is_work_request, request_key),
        &api_quiet.grouped("apiserver_request_total", is_work_request, request_key),
    );
    let hub_growth = |name: &str, key: fn(&Sample) -> String| {
        measure::growth(
            &hub_before.grouped(name, |_| true, key),
            &hub_quiet.grouped(name, |_| true, key),
        )
    };
    let published = hub_growth("ocm_hub_published_events_total", |s| {
        format!("{} {}", s.label("data_type"), s.label("outcome"))
    });
    let hub_writes = hub_growth("ocm_hub_work_status_writes_total", |_| "writes".into());
    let hub_write_failures = hub_growth("ocm_hub_work_status_write_failures_total", |_| {
        "failures".into()
    });
    let skipped = hub_growth("ocm_hub_work_status_skipped_total", |s| {
        s.label("reason").to_owned()
    });
    let batch_cpu = cpu_applied.since(&cpu_before);
    let batch_agent_cpu = cpu_applied.agents_since(&cpu_before) / batch.len() as u32;

    // Every Deployment of the batch has its pod available on its cluster.
    let pods_from = Instant::now();
    for (spoke, cluster) in spokes.iter().zip(CLUSTERS) {
        let deployments: Api<Deployment> = Api::namespaced(spoke.clone(), "default");
        let deadline = Instant::now() + options.batch_timeout;
        loop {
            let ready = deployments
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .filter(|d| {
                    d.metadata
                        .name
                        .as_deref()
                        .is_some_and(|n| n.starts_with("batch-"))
                        && d.status
                            .as_ref()
                            .and_then(|s| s.available_replicas)
                            .is_some_and(|r| r >= 1)
                })
                .count();
            if ready == options.per_spoke {
                break;
            }
            fleet.check()?;
            ensure!(
                Instant::now() < deadline,
                "{cluster}: {ready} of {} Deployments available",
                options.per_spoke
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let pods_ready = pods_from.elapsed();
    let rss_after = samples.max_rss(Instant::now() - Duration::from_millis(500), Instant::now());

    // Delete them all.
    let keyed: Vec<(String, String)> = created
        .iter()
        .map(|(key, uid, _)| (key.clone(), uid.clone()))
        .collect();
    let batch_deleted = delete_and_wait(kube, &works, fleet, &keyed, options.batch_timeout).await?;

    // The report.
    let window = all_applied.as_secs_f64().max(f64::EPSILON);
    let quiet_window = quiet_at
        .saturating_duration_since(batch_started)
        .as_secs_f64()
        .max(f64::EPSILON);
    println!();
    println!(
        "machine: {} cores; 2 managed clusters (one kwok node each); {} single works, {} feedback changes, {} works at once ({} per cluster); settle {} s",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        options.singles,
        options.feedbacks,
        batch.len(),
        options.per_spoke,
        options.settle.as_secs()
    );
    println!();
    println!("| figure | value |");
    println!("|---|---:|");
    println!(
        "| agents started → both clusters Available on the hub | {} |",
        secs(join)
    );
    println!(
        "| agent RSS idle ({} s after joining, largest over {} s), {} / {} | {} |",
        (idle_from - joined_at).as_secs(),
        options.idle_window.as_secs(),
        CLUSTERS[0],
        CLUSTERS[1],
        rss_figure(&rss_idle, TARGET_IDLE_MIB)
    );
    println!(
        "| each agent's first work: create → Applied, {} / {} | {} / {} |",
        CLUSTERS[0],
        CLUSTERS[1],
        ms(firsts[0]),
        ms(firsts[1])
    );
    println!(
        "| one work: create → Applied, p50 / p99 | {} |",
        spread(&mut singles)
    );
    println!(
        "| … of which the create request (admission webhook included), p50 / p99 | {} |",
        spread(&mut requests).replace("**", "")
    );
    println!(
        "| one work: delete → gone from the hub, p50 / p99 | {} |",
        spread(&mut deletions).replace("**", "")
    );
    println!(
        "| feedback work (CRD + resource): create → Applied | {} |",
        ms(feedback_applied)
    );
    println!(
        "| spoke status change → hub feedback, p50 / p99 | {} |",
        spread(&mut feedbacks)
    );
    println!(
        "| {} works at once: create → Applied per work, p50 / p99 | {} |",
        batch.len(),
        spread(&mut batch_times)
    );
    println!(
        "| … all created (requests returned) / all Applied | {} / **{}** |",
        secs(creates_done),
        secs(all_applied)
    );
    println!(
        "| agent RSS at most while they apply, {} / {} | {} |",
        CLUSTERS[0],
        CLUSTERS[1],
        rss_figure(&rss_busy, TARGET_BUSY_MIB)
    );
    println!(
        "| agent RSS after, with {} works each | {} MiB |",
        options.per_spoke,
        rss_after
            .iter()
            .map(|k| format!("{:.1}", mib(*k)))
            .collect::<Vec<_>>()
            .join(" / ")
    );
    println!(
        "| hub status writes (apiserver, manifestworks/status PUT/PATCH/APPLY): first create → all Applied | **{writes_to_applied:.0} in {}: {:.1}/s** |",
        secs(all_applied),
        writes_to_applied / window
    );
    println!(
        "| … until none for 3 s / peak in one second (ocm-hub's counter) | {writes_to_quiet:.0} in {}: {:.1}/s; peak {peak_writes:.0}/s |",
        secs(quiet_at.saturating_duration_since(batch_started)),
        writes_to_quiet / quiet_window
    );
    println!(
        "| ManifestWork write requests on the hub apiserver meanwhile (verb resource code: count) | {} |",
        listed(&work_requests)
    );
    println!(
        "| requests to the managed clusters' apiservers per work meanwhile, all clients (agent, controllers, kwok), largest | {} |",
        top_per(&spoke_growth, batch.len() as f64, 10)
    );
    println!(
        "| ocm-hub: events agents published (data type outcome: count) | {} |",
        listed(&published)
    );
    println!(
        "| ocm-hub: status writes / failed / cost no write (by reason) | {} / {} / {} |",
        hub_writes.values().fold(0.0, |a, b| a + b),
        hub_write_failures.values().fold(0.0, |a, b| a + b),
        listed(&skipped)
    );
    println!(
        "| CPU while the {} works applied (first create → all Applied), % of a core | {} |",
        batch.len(),
        batch_cpu
            .iter()
            .filter(|(_, percent)| *percent >= 1.0)
            .map(|(name, percent)| format!("{name} {percent:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| agent CPU time per work: one at a time (apply, then delete) / {} at once (apply) | {:.1} ms / {:.1} ms |",
        batch.len(),
        singles_agent_cpu.as_secs_f64() * 1000.0,
        batch_agent_cpu.as_secs_f64() * 1000.0
    );
    println!(
        "| CPU idle, % of a core | {} |",
        idle_cpu
            .iter()
            .filter(|(name, _)| name.starts_with("ocm-"))
            .map(|(name, percent)| format!("{name} {percent:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| {} Deployments with their pod available (after all Applied) | {} later |",
        batch.len(),
        secs(pods_ready)
    );
    println!(
        "| {} works deleted → all gone from the hub | {} |",
        batch.len(),
        secs(batch_deleted)
    );
    Ok(())
}
