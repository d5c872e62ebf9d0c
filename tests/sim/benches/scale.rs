//! Scale scenarios (issue 6): thousands of simulated spokes against one real `ocm-hub` and a
//! real hub apiserver, each spoke with its own mutual-TLS connection and identity, applying
//! ManifestWorks to an in-memory cluster with the agent's own status code
//! ([`ocm_sim::works`]).
//!
//! `cargo build --release -p ocm-hub-server --bin ocm-hub && cargo bench -p ocm-sim --bench
//!  scale [-- --spokes 1000 --scenarios s1,s2,s3,s4,s5 --lease 10 --window 60 --churn-every 10
//!  --kill-percent 10 --in-flight 300 --hub-arg <ocm-hub argument>…]`
//!
//! - **Setup**: a hub cluster from `ocm-testenv`, the real `ocm-hub` binary (auto-approval of
//!   the bootstrap ServiceAccount, every other flag its default unless `--hub-arg`), and
//!   `--spokes` simulated spokes brought in as the registration benchmark's ramp does
//!   ([`ocm_sim::fleet::ramp`], identities from the hub CA), with `leaseDurationSeconds:
//!   --lease`. Then until no ManagedCluster has changed for 15 s.
//! - **S1 idle**: a `--window` with every spoke connected and renewing: hub RSS growth per
//!   spoke (from before the first spoke), `ocm-hub` CPU, the hub process's socket bytes per
//!   second (`rchar`+`wchar`: agents and apiserver together), apiserver writes per second.
//! - **S2 fan-out**: one ManifestWork per cluster (a two-replica Deployment with well-known
//!   status feedback), created through the hub apiserver 32 at a time: per work create → Applied
//!   (`Applied=True` at its generation, seen by a watch in this process) p50/p99, and until all
//!   are Applied.
//! - **S3 status churn**: every spoke turns its Deployment's ready replicas every
//!   `--churn-every` seconds (each at its own phase); over a `--window`: statuses the spokes sent
//!   and ManifestWork status writes at the apiserver per second, and the lag from a spoke's
//!   change to the value in the hub's ManifestWork (p50/p99).
//! - **S4 hub restart**: `ocm-hub` is stopped (SIGTERM) and started again with the same ports:
//!   until every spoke has resubscribed its works and sent its spec resync, and the count of
//!   works the hub sent again at a generation already applied (redundant re-applies; target 0),
//!   counted until 15 s after the last resync.
//! - **S5 liveness**: `--kill-percent` of the spokes stop; until every one of their clusters is
//!   no longer Available on the hub, against the configured grace (5 × `--lease`). Then they
//!   start again as the same agents, until all are Available again; then as many others freeze
//!   (connected but silent, as a stopped process) until Unknown, and go on until Available.
//!
//! Everything shares the machine: apiserver, etcd, hub and the simulated spokes' TLS. Under
//! `cargo test` (no `--bench` argument) it makes one small pass, so the suite keeps it working.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)] // a benchmark report

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use futures::StreamExt as _;
use ocm_api::condition::{self, ConditionStatus};
use ocm_api::kube::api::PostParams;
use ocm_api::kube::runtime::{WatchStreamExt as _, watcher};
use ocm_api::kube::{Api, Client};
use ocm_api::work::v1::{
    CONDITION_APPLIED, FeedbackRule, FeedbackType, Manifest, ManifestConfigOption, ManifestWork,
    ManifestWorkSpec, ManifestsTemplate, ResourceIdentifier,
};
use ocm_sim::fleet::{self, Clusters, RampPlan, Spokes, cluster_name};
use ocm_sim::hub::{self, HubProcess};
use ocm_sim::identity::Issuer;
use ocm_sim::measure::{self, CpuReading, Metrics, percentile, request_key, secs, top};
use ocm_sim::model::ClusterModel;
use ocm_sim::works::WorkCounters;
use ocm_testenv::Cluster;
use ocm_transport::grpc_config::GrpcClientConfig;

const METRICS: &[&str] = &[
    "apiserver_request_total",
    "apiserver_admission_webhook_request_total",
];
/// The hub's counter of its broker's bytes on the wire.
const WIRE_BYTES: &str = "ocm_hub_broker_bytes_total";
/// OCM's default: a cluster is Unknown after this many lease durations without a renewal.
const GRACE_MULTIPLIER: u32 = 5;
/// The work each cluster gets in S2.
const WORK_NAME: &str = "scale";
/// Its Deployment's replicas.
const REPLICAS: i64 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scenario {
    Idle,
    FanOut,
    Churn,
    Restart,
    Liveness,
}

#[derive(Debug, Clone)]
struct Options {
    spokes: usize,
    in_flight: usize,
    lease_seconds: i32,
    window: Duration,
    churn_every: Duration,
    kill_percent: usize,
    scenarios: BTreeSet<Scenario>,
    hub_args: Vec<String>,
    /// Longest any phase may take before the run fails.
    phase_timeout: Duration,
}

fn options(args: &[String]) -> anyhow::Result<Options> {
    let every = BTreeSet::from([
        Scenario::Idle,
        Scenario::FanOut,
        Scenario::Churn,
        Scenario::Restart,
        Scenario::Liveness,
    ]);
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not, and then one small
    // pass checks that the benchmark still works.
    if !args.iter().any(|a| a == "--bench") {
        return Ok(Options {
            spokes: 4,
            in_flight: 4,
            lease_seconds: 4,
            window: Duration::from_secs(4),
            churn_every: Duration::from_secs(2),
            kill_percent: 50,
            scenarios: every,
            hub_args: Vec::new(),
            phase_timeout: Duration::from_secs(120),
        });
    }
    let mut options = Options {
        spokes: 1_000,
        in_flight: 300,
        lease_seconds: 10,
        window: Duration::from_secs(60),
        churn_every: Duration::from_secs(10),
        kill_percent: 10,
        scenarios: every,
        hub_args: Vec::new(),
        phase_timeout: Duration::from_secs(1_800),
    };
    for pair in args.windows(2) {
        let value = pair[1].as_str();
        let number = || -> anyhow::Result<u64> {
            value
                .parse()
                .with_context(|| format!("{} {value}: not a number", pair[0]))
        };
        match pair[0].as_str() {
            "--spokes" => options.spokes = usize::try_from(number()?)?,
            "--in-flight" => options.in_flight = usize::try_from(number()?)?,
            "--lease" => options.lease_seconds = i32::try_from(number()?)?,
            "--window" => options.window = Duration::from_secs(number()?),
            "--churn-every" => options.churn_every = Duration::from_secs(number()?),
            "--kill-percent" => options.kill_percent = usize::try_from(number()?)?,
            "--hub-arg" => options.hub_args.push(value.to_owned()),
            "--scenarios" => {
                options.scenarios = value
                    .split(',')
                    .map(|s| match s.trim() {
                        "s1" => Ok(Scenario::Idle),
                        "s2" => Ok(Scenario::FanOut),
                        "s3" => Ok(Scenario::Churn),
                        "s4" => Ok(Scenario::Restart),
                        "s5" => Ok(Scenario::Liveness),
                        other => bail!("--scenarios: {other} is none of s1…s5"),
                    })
                    .collect::<anyhow::Result<_>>()?;
            }
            _ => {}
        }
    }
    ensure!(
        options.spokes >= 1 && options.in_flight >= 1 && (1..=100).contains(&options.kill_percent),
        "need --spokes ≥ 1, --in-flight ≥ 1 and 1 ≤ --kill-percent ≤ 100"
    );
    if options.scenarios.contains(&Scenario::Churn)
        || options.scenarios.contains(&Scenario::Restart)
    {
        // Both need the works of S2.
        options.scenarios.insert(Scenario::FanOut);
    }
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
// What the hub apiserver says about the works, from a watch.

#[derive(Debug, Default)]
struct Works {
    /// By cluster: when its work was created, and first seen Applied.
    created: Mutex<HashMap<String, Instant>>,
    applied: Mutex<HashMap<String, Instant>>,
    /// Whether S3 is measuring, and the lags it measured.
    measuring_lag: AtomicBool,
    lags: Mutex<Vec<Duration>>,
    /// By cluster: the churn change last measured (so each is measured once).
    measured: Mutex<HashMap<String, Instant>>,
}

impl Works {
    fn record(&self, work: &ManifestWork, changes: &WorkCounters) {
        let now = Instant::now();
        let Some(cluster) = work.metadata.namespace.clone() else {
            return;
        };
        let status = work.status.clone().unwrap_or_default();
        let generation = work.metadata.generation;
        let applied = condition::find(&status.conditions, CONDITION_APPLIED).is_some_and(|c| {
            c.status == ConditionStatus::True && c.observed_generation == generation
        });
        if applied {
            self.applied
                .lock()
                .unwrap()
                .entry(cluster.clone())
                .or_insert(now);
        }
        if !self.measuring_lag.load(Ordering::Relaxed) {
            return;
        }
        let ready = status
            .resource_status
            .manifests
            .iter()
            .flat_map(|m| &m.status_feedback.values)
            .find(|v| v.name == "ReadyReplicas")
            .and_then(|v| v.field_value.integer);
        let change = changes.changed.lock().unwrap().get(&cluster).copied();
        if let (Some(ready), Some((unready, at))) = (ready, change)
            && ready == REPLICAS - unready
        {
            let mut measured = self.measured.lock().unwrap();
            if measured.get(&cluster) != Some(&at) {
                measured.insert(cluster, at);
                self.lags
                    .lock()
                    .unwrap()
                    .push(now.saturating_duration_since(at));
            }
        }
    }

    fn applied_count(&self) -> usize {
        self.applied.lock().unwrap().len()
    }

    /// Create → Applied of every work applied, sorted.
    fn times_to_applied(&self) -> Vec<Duration> {
        let created = self.created.lock().unwrap();
        let applied = self.applied.lock().unwrap();
        let mut times: Vec<Duration> = applied
            .iter()
            .filter_map(|(cluster, at)| Some(at.saturating_duration_since(*created.get(cluster)?)))
            .collect();
        times.sort_unstable();
        times
    }
}

async fn watch_works(client: Client, works: Arc<Works>, changes: Arc<WorkCounters>) {
    let stream =
        watcher(Api::<ManifestWork>::all(client), watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(work) | watcher::Event::InitApply(work)) => {
                works.record(&work, &changes);
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(%err, "ManifestWork watch"),
        }
    }
}

/// The work of `cluster`: a two-replica Deployment with its well-known status fed back.
fn work_for(cluster: &str) -> ManifestWork {
    let mut work = ManifestWork::new(
        WORK_NAME,
        ManifestWorkSpec {
            workload: ManifestsTemplate {
                manifests: vec![Manifest(serde_json::json!({
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": "web", "namespace": "default"},
                    "spec": {
                        "replicas": REPLICAS,
                        "selector": {"matchLabels": {"app": "web"}},
                        "template": {
                            "metadata": {"labels": {"app": "web"}},
                            "spec": {"containers": [{"name": "web", "image": "nginx"}]},
                        },
                    },
                }))],
            },
            manifest_configs: vec![ManifestConfigOption {
                feedback_rules: vec![FeedbackRule {
                    r#type: FeedbackType::WellKnownStatus,
                    json_paths: Vec::new(),
                }],
                ..ManifestConfigOption::new(ResourceIdentifier {
                    group: "apps".to_owned(),
                    resource: "deployments".to_owned(),
                    name: "web".to_owned(),
                    namespace: "default".to_owned(),
                })
            }],
            ..ManifestWorkSpec::default()
        },
    );
    work.metadata.namespace = Some(cluster.to_owned());
    work
}

// ---------------------------------------------------------------------------------------------

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ocm-sim-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn bench(options: Options) -> anyhow::Result<()> {
    let begun = Instant::now();
    let logs = tempfile_dir()?;
    let sim_log = logs.join("sim.log");
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OCM_SIM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(false)
        .with_writer(Mutex::new(std::fs::File::create(&sim_log)?))
        .init();

    let (cluster, mut hub) =
        hub::start_bench_hub("scale-hub", options.spokes, &options.hub_args, &logs).await?;
    let kube = cluster.client()?;
    let hub_log = hub.log().to_path_buf();
    let outcome = run(&options, &cluster, &kube, &mut hub).await;
    eprintln!("[done] whole run {}", secs(begun.elapsed()));
    hub.stop(Duration::from_secs(5));
    match &outcome {
        Err(err) => {
            eprintln!(
                "the run failed: {err:#}\nhub log: {}\nsimulator log: {}",
                hub_log.display(),
                sim_log.display()
            );
            return outcome;
        }
        Ok(()) if std::env::var_os(ocm_testenv::KEEP_ENV).is_some() => {
            eprintln!("logs kept in {}", logs.display());
        }
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&logs);
        }
    }
    cluster.stop();
    outcome
}

/// Until no ManagedCluster has changed for 15 s (at most `limit`).
async fn quiet(clusters: &Clusters, limit: Duration) {
    let deadline = Instant::now() + limit;
    while clusters.quiet_for() < Duration::from_secs(15) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One row of the report.
type Row = (String, String);

/// S5: how long past the grace a change of availability may take before the run fails.
const WITHIN_GRACE: Duration = Duration::from_secs(120);
/// S5: how long stopped spokes may take to be Available again once back.
const BACK_WITHIN: Duration = Duration::from_secs(300);

/// Waits until exactly `wanted` of `names` are Available; how long that took from `at`. Fails
/// after `within`.
async fn until_available(
    clusters: &Clusters,
    names: &[String],
    wanted: usize,
    at: Instant,
    within: Duration,
) -> anyhow::Result<Duration> {
    loop {
        let available = clusters.available_among(names);
        if available == wanted {
            return Ok(at.elapsed());
        }
        ensure!(
            at.elapsed() < within,
            "{available} of {} clusters Available after {:?}, waiting for {wanted}",
            names.len(),
            at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The rows so far, on the terminal as each scenario ends (a long run that fails later keeps
/// what it measured).
fn report(rows: &[Row], shown: &mut usize) {
    for (figure, value) in rows.iter().skip(*shown) {
        eprintln!("[measured] {figure}: {value}");
    }
    *shown = rows.len();
}

async fn run(
    options: &Options,
    cluster: &Cluster,
    kube: &Client,
    hub: &mut HubProcess,
) -> anyhow::Result<()> {
    let n = options.spokes;
    let token = hub::bootstrap_token(
        kube,
        hub::BOOTSTRAP_NAMESPACE,
        hub::BOOTSTRAP_SA,
        Duration::from_secs(4 * 3600),
    )
    .await?;
    let ca = hub::hub_ca_pem(kube).await?;
    let clusters = Arc::new(Clusters::default());
    tokio::spawn(fleet::watch_clusters(kube.clone(), Arc::clone(&clusters)));
    let changes = Arc::new(WorkCounters::default());
    let works = Arc::new(Works::default());
    tokio::spawn(watch_works(
        kube.clone(),
        Arc::clone(&works),
        Arc::clone(&changes),
    ));
    let mut spokes = Spokes::new(
        GrpcClientConfig {
            url: format!("127.0.0.1:{}", hub.grpc_port),
            ca_pem: Some(ca),
            client_identity: None,
            token: Some(token),
            keep_alive: None,
            server_healthiness_timeout: None,
            proxy: None,
        },
        Arc::new(ClusterModel::kwok_like(1)),
    );
    spokes.works = Some(Arc::clone(&changes));
    let _stop_spokes = spokes.cancel.clone().drop_guard();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_before = measure::rss_kib(hub.pid())?;
    let mut rows: Vec<Row> = Vec::new();
    let mut shown = 0;

    // The fleet.
    let ramp_at = Instant::now();
    let issuer = Issuer::from_hub(kube, time::Duration::hours(24)).await?;
    fleet::ramp(
        &mut spokes,
        &clusters,
        Some(&issuer),
        &RampPlan {
            first: 0,
            total: n,
            in_flight: options.in_flight,
            lease_seconds: options.lease_seconds,
            deadline: ramp_at + options.phase_timeout,
        },
        || hub.exited().map(|status| status.to_string()),
    )
    .await?;
    rows.push((
        format!("{n} spokes connected, every cluster Available"),
        secs(ramp_at.elapsed()),
    ));
    eprintln!("[fleet] {n} Available after {}", secs(ramp_at.elapsed()));
    quiet(&clusters, Duration::from_secs(600)).await;

    let pids = |hub: &HubProcess| -> Vec<(String, u32)> {
        let mut pids = vec![("ocm-hub".to_owned(), hub.pid())];
        pids.extend(
            cluster
                .components()
                .into_iter()
                .filter(|(name, _)| *name == "kube-apiserver" || *name == "etcd")
                .map(|(name, pid)| (name.to_owned(), pid)),
        );
        pids.push(("simulated spokes".to_owned(), std::process::id()));
        pids
    };
    let cpu_row = |cpu: &[(String, f64)]| {
        cpu.iter()
            .map(|(name, percent)| format!("{name} {percent:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };

    if options.scenarios.contains(&Scenario::Idle) {
        let metrics_before = Metrics::scrape(kube, METRICS).await?;
        let cpu_before = CpuReading::take(&pids(hub))?;
        let wire_before = hub.metrics(&[WIRE_BYTES]).await?;
        tokio::time::sleep(options.window).await;
        let cpu_after = CpuReading::take(&pids(hub))?;
        let wire_after = hub.metrics(&[WIRE_BYTES]).await?;
        let metrics_after = Metrics::scrape(kube, METRICS).await?;
        let rss = measure::rss_kib(hub.pid())?;
        let seconds = cpu_after.at.duration_since(cpu_before.at).as_secs_f64();
        let writes = measure::growth(
            &metrics_before.grouped(
                "apiserver_request_total",
                measure::is_stored_write,
                request_key,
            ),
            &metrics_after.grouped(
                "apiserver_request_total",
                measure::is_stored_write,
                request_key,
            ),
        );
        let cpu = cpu_after.since(&cpu_before);
        rows.push((
            "**S1 idle**: hub RSS / per spoke (growth since before the first)".to_owned(),
            format!(
                "{} MiB / **{:.1} KiB**",
                rss / 1024,
                rss.saturating_sub(rss_before) as f64 / n as f64
            ),
        ));
        rows.push((
            format!("S1: CPU over {:.0} s, % of a core", seconds),
            cpu_row(&cpu),
        ));
        let wire =
            |m: &Metrics, direction: &str| m.sum(WIRE_BYTES, |s| s.label("direction") == direction);
        let per_second = |direction: &str| {
            (wire(&wire_after, direction) - wire(&wire_before, direction)) / 1024.0 / seconds
        };
        rows.push((
            "S1: broker bytes on the wire (TLS included), received / sent".to_owned(),
            format!(
                "{:.1} / {:.1} KiB/s ({:.0} / {:.0} B/s per spoke)",
                per_second("received"),
                per_second("sent"),
                per_second("received") * 1024.0 / n as f64,
                per_second("sent") * 1024.0 / n as f64
            ),
        ));
        rows.push((
            "S1: apiserver writes".to_owned(),
            format!(
                "{:.1}/s: {}",
                writes.values().sum::<f64>() / seconds,
                top(&writes, seconds, 3)
            ),
        ));
        report(&rows, &mut shown);
    }

    if options.scenarios.contains(&Scenario::FanOut) {
        let api_of = |cluster: &str| Api::<ManifestWork>::namespaced(kube.clone(), cluster);
        let metrics_before = Metrics::scrape(kube, METRICS).await?;
        let cpu_before = CpuReading::take(&pids(hub))?;
        let started = Instant::now();
        let created: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
            .map(|i| {
                let name = cluster_name(i);
                let (api, works) = (api_of(&name), Arc::clone(&works));
                async move {
                    works
                        .created
                        .lock()
                        .unwrap()
                        .insert(name.clone(), Instant::now());
                    api.create(&PostParams::default(), &work_for(&name))
                        .await
                        .with_context(|| format!("creating the work of {name}"))?;
                    Ok(())
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        created.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
        let all_created = started.elapsed();
        let deadline = started + options.phase_timeout;
        while works.applied_count() < n {
            spokes.check()?;
            ensure!(
                Instant::now() < deadline,
                "only {} of {n} works Applied after {:?}",
                works.applied_count(),
                options.phase_timeout
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let all_applied = started.elapsed();
        let cpu_after = CpuReading::take(&pids(hub))?;
        let metrics_after = Metrics::scrape(kube, METRICS).await?;
        let times = works.times_to_applied();
        rows.push((
            format!("**S2 fan-out**: {n} works, per work create → Applied, p50 / p99"),
            format!(
                "{} / **{}**",
                secs(percentile(&times, 50.0)),
                secs(percentile(&times, 99.0))
            ),
        ));
        rows.push((
            "S2: all created (requests returned) / all Applied".to_owned(),
            format!("{} / {}", secs(all_created), secs(all_applied)),
        ));
        let writes = |m: &Metrics| {
            m.grouped(
                "apiserver_request_total",
                measure::is_stored_write,
                request_key,
            )
        };
        let writes = measure::growth(&writes(&metrics_before), &writes(&metrics_after));
        let webhook_calls =
            |m: &Metrics| m.sum("apiserver_admission_webhook_request_total", |_| true);
        rows.push((
            "S2: apiserver writes / webhook calls, per work".to_owned(),
            format!(
                "{:.2} / {:.2} ({})",
                writes.values().sum::<f64>() / n as f64,
                (webhook_calls(&metrics_after) - webhook_calls(&metrics_before)) / n as f64,
                measure::per_item(&writes, n, 4)
            ),
        ));
        rows.push((
            "S2: CPU until all Applied, % of a core".to_owned(),
            cpu_row(&cpu_after.since(&cpu_before)),
        ));
        report(&rows, &mut shown);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }

    if options.scenarios.contains(&Scenario::Churn) {
        changes.set_churn(Some(options.churn_every));
        // Every spoke picks its phase within the first period.
        tokio::time::sleep(options.churn_every).await;
        works.measuring_lag.store(true, Ordering::Relaxed);
        let metrics_before = Metrics::scrape(kube, METRICS).await?;
        let sent_before = changes.statuses_sent.load(Ordering::Relaxed);
        let cpu_before = CpuReading::take(&pids(hub))?;
        tokio::time::sleep(options.window).await;
        let cpu_after = CpuReading::take(&pids(hub))?;
        let sent = changes.statuses_sent.load(Ordering::Relaxed) - sent_before;
        let metrics_after = Metrics::scrape(kube, METRICS).await?;
        changes.set_churn(None);
        works.measuring_lag.store(false, Ordering::Relaxed);
        let seconds = cpu_after.at.duration_since(cpu_before.at).as_secs_f64();
        let status_writes = |m: &Metrics| -> BTreeMap<String, f64> {
            m.grouped(
                "apiserver_request_total",
                |s| {
                    measure::is_stored_write(s)
                        && s.label("resource") == "manifestworks"
                        && s.label("subresource") == "status"
                },
                request_key,
            )
        };
        let writes = measure::growth(
            &status_writes(&metrics_before),
            &status_writes(&metrics_after),
        );
        let mut lags = works.lags.lock().unwrap().clone();
        lags.sort_unstable();
        rows.push((
            format!(
                "**S3 status churn** (every spoke every {} s): statuses sent / hub status writes",
                options.churn_every.as_secs()
            ),
            format!(
                "{:.1}/s / **{:.1}/s**",
                sent as f64 / seconds,
                writes.values().sum::<f64>() / seconds
            ),
        ));
        rows.push((
            format!(
                "S3: status lag, spoke change → hub, p50 / p99 ({} changes)",
                lags.len()
            ),
            format!(
                "{} / **{}**",
                secs(percentile(&lags, 50.0)),
                secs(percentile(&lags, 99.0))
            ),
        ));
        rows.push((
            "S3: CPU, % of a core".to_owned(),
            cpu_row(&cpu_after.since(&cpu_before)),
        ));
        report(&rows, &mut shown);
        // Every spoke's last change reaches the hub before the restart.
        tokio::time::sleep(Duration::from_secs(5)).await;
    }

    if options.scenarios.contains(&Scenario::Restart) {
        let redundant_before = changes.redundant.load(Ordering::Relaxed);
        let resyncs_before = changes.resyncs.load(Ordering::Relaxed);
        let metrics_before = Metrics::scrape(kube, METRICS).await?;
        let at = Instant::now();
        hub.restart(Duration::from_secs(10), Duration::from_secs(120))
            .await?;
        let ready = at.elapsed();
        let deadline = at + options.phase_timeout;
        while (changes.resyncs.load(Ordering::Relaxed) - resyncs_before) < n as u64 {
            spokes.check()?;
            if let Some(status) = hub.exited() {
                bail!("ocm-hub exited after its restart ({status})");
            }
            ensure!(
                Instant::now() < deadline,
                "only {} of {n} spokes resynced after {:?}",
                changes.resyncs.load(Ordering::Relaxed) - resyncs_before,
                options.phase_timeout
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let resynced = at.elapsed();
        let metrics_after = Metrics::scrape(kube, METRICS).await?;
        tokio::time::sleep(Duration::from_secs(15)).await;
        let redundant = changes.redundant.load(Ordering::Relaxed) - redundant_before;
        rows.push((
            format!("**S4 hub restart** ({n} × 1 work): ready / every spoke resynced"),
            format!("{} / **{}**", secs(ready), secs(resynced)),
        ));
        rows.push((
            "S4: redundant re-applies (target 0)".to_owned(),
            format!("**{redundant}**"),
        ));
        // Every request the apiserver answered until the last resync (reads and reviews too):
        // what the restarted hub and its reconnecting agents cost it.
        let requests = |m: &Metrics| m.grouped("apiserver_request_total", |_| true, request_key);
        let requests = measure::growth(&requests(&metrics_before), &requests(&metrics_after));
        rows.push((
            "S4: apiserver requests until every spoke resynced, per spoke".to_owned(),
            format!(
                "{:.2} ({})",
                requests.values().sum::<f64>() / n as f64,
                measure::per_item(&requests, n, 6)
            ),
        ));
        report(&rows, &mut shown);
        quiet(&clusters, Duration::from_secs(300)).await;
    }

    if options.scenarios.contains(&Scenario::Liveness) {
        let count = (n * options.kill_percent).div_ceil(100);
        let killed: Vec<String> = (0..count).map(cluster_name).collect();
        // Another set, frozen rather than killed (as large, when there are clusters enough).
        let paused: Vec<String> = (count..(2 * count).min(n)).map(cluster_name).collect();
        let grace = Duration::from_secs(
            u64::try_from(options.lease_seconds).unwrap_or(0) * u64::from(GRACE_MULTIPLIER),
        );
        let at = Instant::now();
        for name in &killed {
            spokes.kill(name);
        }
        let last_unknown = until_available(&clusters, &killed, 0, at, grace + WITHIN_GRACE).await?;
        let others = n - killed.len();
        rows.push((
            format!(
                "**S5 liveness**: {} spokes killed → all not Available (grace {} s)",
                killed.len(),
                grace.as_secs()
            ),
            format!("**{}**", secs(last_unknown)),
        ));
        rows.push((
            "S5: the other clusters still Available".to_owned(),
            format!("{} of {others}", clusters.available()),
        ));
        report(&rows, &mut shown);

        let at = Instant::now();
        for name in &killed {
            spokes.restart(name);
        }
        let back = until_available(&clusters, &killed, killed.len(), at, BACK_WITHIN).await?;
        rows.push((
            "S5: the killed spokes restarted → all Available again".to_owned(),
            secs(back),
        ));
        if !paused.is_empty() {
            let at = Instant::now();
            for name in &paused {
                spokes.pause(name);
            }
            let frozen = until_available(&clusters, &paused, 0, at, grace + WITHIN_GRACE).await?;
            rows.push((
                format!(
                    "S5: {} other spokes frozen (connected, silent) → all not Available",
                    paused.len()
                ),
                secs(frozen),
            ));
            let at = Instant::now();
            for name in &paused {
                spokes.resume(name);
            }
            let thawed = until_available(&clusters, &paused, paused.len(), at, BACK_WITHIN).await?;
            rows.push((
                "S5: the frozen spokes resumed → all Available again".to_owned(),
                secs(thawed),
            ));
        }
        report(&rows, &mut shown);
    }

    spokes.check()?;
    println!();
    println!(
        "machine: {} cores; {n} spokes; lease {} s; window {} s; ocm-hub extra arguments: {:?}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        options.lease_seconds,
        options.window.as_secs(),
        options.hub_args
    );
    println!();
    println!("| figure | value |");
    println!("|---|---:|");
    for (figure, value) in &rows {
        println!("| {figure} | {value} |");
    }
    Ok(())
}
