//! Registration at scale (issue 4): simulated agents join a real `ocm-hub` on a real hub
//! apiserver with auto-approval, then thousands of them heartbeat.
//!
//! `cargo build --release -p ocm-hub-server --bin ocm-hub && cargo bench -p ocm-sim --bench
//!  registration [-- --joiners 500 --total 5000 --in-flight 300 --ramp shortcut --lease 10
//!  --settle 30 --window 60 --hub-arg <ocm-hub argument>…]`
//!
//! The default is 5,000 clusters, which takes about 8 minutes; the 10,000
//! (`--total 10000`) takes about 19 minutes on the 2-core reference machine (BENCHMARKS.md).
//!
//! - A hub cluster (etcd, kube-apiserver, kube-controller-manager, … from `ocm-testenv`) and the
//!   real `ocm-hub` binary as a child process, with `--auto-approved-users` naming the bootstrap
//!   ServiceAccount it creates (`--bootstrap-service-account`): the hub approves and signs the
//!   agents' CSRs and accepts their clusters on first sight (OCM's ManagedClusterAutoApproval).
//!   Every other hub setting is its default (`--lease-write-interval 60s`,
//!   `--auth-cache-ttl 60s`, …) unless given with `--hub-arg`.
//! - **Join**: `--joiners` simulated spokes start at once. Each runs the agent's own bootstrap
//!   (ECDSA key, CSR, ManagedCluster over gRPC with the bootstrap token), then its own mutual-TLS
//!   connection, and once accepted renews its lease and reports Joined and Available, with the
//!   agent's own code ([`ocm_sim::spoke`]). Measured: from the start until each ManagedCluster
//!   is `Available=True` on the hub apiserver (a watch in this process); p50, p99, all; and for
//!   each spoke when its certificate arrived, when its own subscription was allowed and when it
//!   saw itself accepted.
//! - **Memory**: hub RSS before the first spoke, with the joiners, and with `--total`; per
//!   registered cluster = growth ÷ clusters.
//! - **Ramp** to `--total`, at most `--in-flight` clusters at a time not yet Available. With
//!   `--ramp shortcut` (the default) the ManagedCluster is created through the hub's broker with
//!   the bootstrap token, as bootstrap's first step does (with `leaseDurationSeconds: --lease`),
//!   the spoke's certificate is issued from the hub CA (the Secret `ocm-hub-ca`, the subject the
//!   hub's signer would issue) instead of through a CSR, and the spoke connects once the hub has
//!   accepted its cluster; from there on it is the same spoke, and the hub does all the rest
//!   (create, auto-accept, per-cluster RBAC, namespace, lease, availability, status). With
//!   `--ramp bootstrap` every spoke joins as the joiners do. Measured: time, the apiserver write
//!   requests it took per cluster, and each process's CPU meanwhile.
//! - **Heartbeat**: the joiners get `leaseDurationSeconds: --lease` from the benchmark as a hub
//!   administrator would set it (OCM's agents create their ManagedCluster with the default
//!   60 s), and their agents follow it. With every cluster Available, after at least `--settle`
//!   seconds and once no ManagedCluster has changed for 15 s (the hub's work from the ramp is
//!   done; at most 10 minutes), a `--window`-second window: hub CPU (utime+stime from `/proc`)
//!   as % of one core, and the other processes'; apiserver write requests per second (growth of
//!   `apiserver_request_total` for POST, PUT, PATCH, APPLY, DELETE, without access and token
//!   reviews, which store nothing and are shown apart) with the largest contributors; storage
//!   writes per second (`etcd_requests_total` create/update/delete: what reached etcd);
//!   renewals the spokes sent; and that no cluster left Available.
//!
//! Everything shares the machine: apiserver, etcd, hub and the simulated spokes' TLS. Under
//! `cargo test` (no `--bench` argument) it makes one small pass, so the suite keeps it working.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)] // a benchmark report

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use ocm_api::cluster::v1::ManagedCluster;
use ocm_api::kube::{Api, Client};
use ocm_sim::fleet::{self, Clusters, Spokes, cluster_name};
use ocm_sim::hub::{self, HubProcess};
use ocm_sim::identity::Issuer;
use ocm_sim::measure::{
    self, CpuReading, Metrics, Sample, is_storage_write, percentile, request_key, secs,
    storage_key, top,
};
use ocm_sim::model::ClusterModel;
use ocm_sim::spoke::Milestone;
use ocm_testenv::Cluster;
use ocm_transport::grpc_config::GrpcClientConfig;
use tokio_util::sync::CancellationToken;

const METRICS: &[&str] = &["apiserver_request_total", "etcd_requests_total"];

/// How the clusters after the joiners come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ramp {
    /// Each spoke bootstraps, exactly as the joiners do.
    Bootstrap,
    /// The ManagedCluster is created through the hub's broker (bootstrap token), the identity
    /// issued from the hub CA, and the spoke connects once its cluster is accepted.
    Shortcut,
}

#[derive(Debug, Clone)]
struct Options {
    joiners: usize,
    total: usize,
    in_flight: usize,
    lease_seconds: i32,
    settle: Duration,
    window: Duration,
    ramp: Ramp,
    /// Extra `ocm-hub` arguments (`--hub-arg --auth-cache-ttl=10s`, repeatable).
    hub_args: Vec<String>,
    /// Longest any phase may take before the run fails.
    phase_timeout: Duration,
}

fn options(args: &[String]) -> anyhow::Result<Options> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not, and then one small
    // pass checks that the benchmark still works.
    if !args.iter().any(|a| a == "--bench") {
        return Ok(Options {
            joiners: 3,
            total: 6,
            in_flight: 3,
            lease_seconds: 10,
            settle: Duration::from_secs(1),
            window: Duration::from_secs(3),
            ramp: Ramp::Shortcut,
            hub_args: Vec::new(),
            phase_timeout: Duration::from_secs(120),
        });
    }
    let mut options = Options {
        joiners: 500,
        total: 5_000,
        in_flight: 300,
        lease_seconds: 10,
        settle: Duration::from_secs(30),
        window: Duration::from_secs(60),
        ramp: Ramp::Shortcut,
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
            "--joiners" => options.joiners = usize::try_from(number()?)?,
            "--total" => options.total = usize::try_from(number()?)?,
            "--in-flight" => options.in_flight = usize::try_from(number()?)?,
            "--lease" => options.lease_seconds = i32::try_from(number()?)?,
            "--settle" => options.settle = Duration::from_secs(number()?),
            "--window" => options.window = Duration::from_secs(number()?),
            "--hub-arg" => options.hub_args.push(value.to_owned()),
            "--ramp" => {
                options.ramp = match value {
                    "shortcut" => Ramp::Shortcut,
                    "bootstrap" => Ramp::Bootstrap,
                    other => bail!("--ramp {other}: shortcut or bootstrap"),
                }
            }
            _ => {}
        }
    }
    ensure!(
        options.joiners >= 1 && options.total >= options.joiners && options.in_flight >= 1,
        "need 1 ≤ --joiners ≤ --total and --in-flight ≥ 1"
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
// What the hub apiserver says about the clusters, from a watch.

// ---------------------------------------------------------------------------------------------
// The spokes.

// ---------------------------------------------------------------------------------------------
// Figures.

// ---------------------------------------------------------------------------------------------

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
        hub::start_bench_hub("sim-hub", options.total, &options.hub_args, &logs).await?;
    let kube = cluster.client()?;
    let hub_log = hub.log().to_path_buf();
    let outcome = run(&options, &cluster, &kube, &mut hub).await;
    eprintln!("[done] whole run {}", secs(begun.elapsed()));
    hub.stop(Duration::from_secs(5));
    if let Err(err) = &outcome {
        eprintln!(
            "the run failed: {err:#}\nhub log: {}\nsimulator log: {}",
            hub_log.display(),
            sim_log.display()
        );
        // Kept for inspection.
        return outcome;
    }
    if std::env::var_os(ocm_testenv::KEEP_ENV).is_some() {
        // Dump every ManagedCluster (with its managedFields: who wrote it, when) for inspection.
        if let Ok(list) = Api::<ManagedCluster>::all(cluster.client()?)
            .list(&Default::default())
            .await
        {
            std::fs::write(
                logs.join("managedclusters.json"),
                serde_json::to_vec_pretty(&list.items)?,
            )?;
        }
        eprintln!(
            "logs kept in {}; cluster directory {}",
            logs.display(),
            cluster.dir().display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&logs);
    }
    cluster.stop();
    outcome
}

/// Waits at least `--settle`, then until no ManagedCluster has changed for 15 s (at most 10
/// minutes): the hub's work from the ramp is done (labels, taints, acceptance, status), and what
/// remains is the steady state, in which clusters only renew.
async fn settle(kube: &Client, clusters: &Clusters, options: &Options) -> anyhow::Result<()> {
    let writes = async || -> anyhow::Result<f64> {
        Ok(Metrics::scrape(kube, METRICS)
            .await?
            .sum("apiserver_request_total", measure::is_stored_write))
    };
    let started = Instant::now();
    let quiet = Duration::from_secs(15).min(options.settle.max(Duration::from_secs(1)));
    let interval = Duration::from_secs(10).min(quiet);
    let mut last = writes().await?;
    loop {
        tokio::time::sleep(interval).await;
        let now = writes().await?;
        let rate = (now - last) / interval.as_secs_f64();
        last = now;
        let settled = started.elapsed() >= options.settle && clusters.quiet_for() >= quiet;
        let state = if settled || started.elapsed() >= Duration::from_secs(600) {
            "; measuring"
        } else {
            ""
        };
        eprintln!(
            "[settle] {:.0} s: {rate:.0} write requests/s, no ManagedCluster change for {:.0} s{state}",
            started.elapsed().as_secs_f64(),
            clusters.quiet_for().as_secs_f64()
        );
        if !state.is_empty() {
            return Ok(());
        }
    }
}

/// A fresh directory for this run's logs (kept when the run fails).
fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ocm-sim-registration-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn run(
    options: &Options,
    cluster: &Cluster,
    kube: &Client,
    hub: &mut HubProcess,
) -> anyhow::Result<()> {
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
    let _stop_spokes = spokes.cancel.clone().drop_guard();
    let hub_pid = hub.pid();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_before = measure::rss_kib(hub_pid)?;

    // Join: all at once.
    let joined_at = Instant::now();
    while spokes.started < options.joiners {
        spokes.start(&cluster_name(spokes.started), None);
    }
    let deadline = joined_at + options.phase_timeout;
    while clusters.available() < options.joiners {
        spokes.check()?;
        if let Some(status) = hub.exited() {
            bail!("ocm-hub exited ({status})");
        }
        ensure!(
            Instant::now() < deadline,
            "only {} of {} joiners Available after {:?}",
            clusters.available(),
            options.joiners,
            options.phase_timeout
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let join_all = joined_at.elapsed();
    let joiner_names: Vec<String> = (0..options.joiners).map(cluster_name).collect();
    let join_times = clusters.times_to_available(&joiner_names, joined_at);
    let milestone = |m: Milestone| {
        let mut times: Vec<Duration> = joiner_names
            .iter()
            .filter_map(|n| spokes.counters.timeline.reached(n, m))
            .map(|at| at.saturating_duration_since(joined_at))
            .collect();
        times.sort_unstable();
        format!(
            "{} / {}",
            secs(percentile(&times, 50.0)),
            secs(percentile(&times, 99.0))
        )
    };
    let steps = [
        milestone(Milestone::Joined),
        milestone(Milestone::Subscribed),
        milestone(Milestone::Accepted),
    ];
    tokio::time::sleep(options.settle.min(Duration::from_secs(10))).await;
    let rss_joiners = measure::rss_kib(hub_pid)?;
    eprintln!(
        "[join] {} Available in {} (p50 {}, p99 {})",
        options.joiners,
        secs(join_all),
        secs(percentile(&join_times, 50.0)),
        secs(percentile(&join_times, 99.0))
    );

    // Ramp: the rest, the same way, a bounded number at a time.
    let admin = CancellationToken::new();
    let _stop_admin = admin.clone().drop_guard();
    tokio::spawn(fleet::set_lease_durations(
        kube.clone(),
        Arc::clone(&clusters),
        options.lease_seconds,
        admin.clone(),
    ));
    let mut pids: Vec<(String, u32)> = vec![("ocm-hub".to_owned(), hub_pid)];
    pids.extend(
        cluster
            .components()
            .into_iter()
            .map(|(name, pid)| (name.to_owned(), pid)),
    );
    pids.push(("simulated spokes".to_owned(), std::process::id()));
    let ramp_at = Instant::now();
    let ramp_cpu_before = CpuReading::take(&pids)?;
    let deadline = ramp_at + options.phase_timeout;
    let metrics_before_ramp = Metrics::scrape(kube, METRICS).await?;
    let issuer = match options.ramp {
        Ramp::Shortcut => Some(Issuer::from_hub(kube, time::Duration::hours(24)).await?),
        Ramp::Bootstrap => None,
    };
    let created = fleet::ramp(
        &mut spokes,
        &clusters,
        issuer.as_ref(),
        &fleet::RampPlan {
            first: options.joiners,
            total: options.total,
            in_flight: options.in_flight,
            lease_seconds: options.lease_seconds,
            deadline,
        },
        || hub.exited().map(|status| status.to_string()),
    )
    .await;
    created?;
    let ramp = ramp_at.elapsed();
    let ramp_cpu = CpuReading::take(&pids)?.since(&ramp_cpu_before);
    let metrics_after_ramp = Metrics::scrape(kube, METRICS).await?;
    let ramp_writes = measure::growth(
        &metrics_before_ramp.grouped(
            "apiserver_request_total",
            measure::is_stored_write,
            request_key,
        ),
        &metrics_after_ramp.grouped(
            "apiserver_request_total",
            measure::is_stored_write,
            request_key,
        ),
    );
    let ramp_clusters = (options.total - options.joiners).max(1) as f64;
    while !clusters.lease_to_change(options.lease_seconds).is_empty() {
        ensure!(
            Instant::now() < deadline,
            "lease durations not all set after {:?}",
            options.phase_timeout
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "[ramp] {} Available after {}; every lease at {} s; settling at least {} s",
        options.total,
        secs(ramp),
        options.lease_seconds,
        options.settle.as_secs()
    );

    // Heartbeat: a quiet window with every cluster renewing.
    settle(kube, &clusters, options).await?;
    let metrics_before = Metrics::scrape(kube, METRICS).await?;
    let renewals_before = spokes.counters.renewals.load(Ordering::Relaxed);
    let cpu_before = CpuReading::take(&pids)?;
    let mut fewest_available = options.total;
    let window_end = Instant::now() + options.window;
    while Instant::now() < window_end {
        tokio::time::sleep(Duration::from_secs(1).min(window_end - Instant::now())).await;
        fewest_available = fewest_available.min(clusters.available());
    }
    let cpu_after = CpuReading::take(&pids)?;
    let renewals = spokes.counters.renewals.load(Ordering::Relaxed) - renewals_before;
    let metrics_after = Metrics::scrape(kube, METRICS).await?;
    let rss_total = measure::rss_kib(hub_pid)?;
    spokes.check()?;
    let seconds = cpu_after.at.duration_since(cpu_before.at).as_secs_f64();
    let cpu = cpu_after.since(&cpu_before);

    let requests = |m: &Metrics, keep: fn(&Sample) -> bool| {
        m.grouped("apiserver_request_total", keep, request_key)
    };
    let writes = measure::growth(
        &requests(&metrics_before, measure::is_stored_write),
        &requests(&metrics_after, measure::is_stored_write),
    );
    let reviews = measure::growth(
        &requests(&metrics_before, measure::is_review),
        &requests(&metrics_after, measure::is_review),
    );
    let storage = measure::growth(
        &metrics_before.grouped("etcd_requests_total", is_storage_write, storage_key),
        &metrics_after.grouped("etcd_requests_total", is_storage_write, storage_key),
    );
    let per_second =
        |groups: &BTreeMap<String, f64>| groups.values().fold(0.0, |a, b| a + b) / seconds;

    let per_cluster = |rss: u64, n: usize| rss.saturating_sub(rss_before) as f64 / n as f64;
    println!();
    println!(
        "machine: {} cores; {} clusters ({} joining at once, then at most {} in flight); lease {} s; window {:.0} s; ocm-hub extra arguments: {:?}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        options.total,
        options.joiners,
        options.in_flight,
        options.lease_seconds,
        seconds,
        options.hub_args
    );
    println!();
    println!("| figure | value |");
    println!("|---|---:|");
    println!(
        "| {} joining at once: all Available | **{}** |",
        options.joiners,
        secs(join_all)
    );
    println!(
        "| per cluster, start → Available: p50 / p99 | {} / {} |",
        secs(percentile(&join_times, 50.0)),
        secs(percentile(&join_times, 99.0))
    );
    println!(
        "| … certificate issued / own subscription allowed / saw itself accepted: p50 / p99 | {} · {} · {} |",
        steps[0], steps[1], steps[2]
    );
    println!(
        "| ramp to {} ({}) | {} ({:.0} clusters/s) |",
        options.total,
        match options.ramp {
            Ramp::Shortcut => "identities from the hub CA",
            Ramp::Bootstrap => "the same flow",
        },
        secs(ramp),
        (options.total - options.joiners) as f64 / ramp.as_secs_f64()
    );
    println!(
        "| CPU during the ramp, % of a core | {} |",
        ramp_cpu
            .iter()
            .filter(|(_, percent)| *percent >= 1.0)
            .map(|(name, percent)| format!("{name} {percent:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| apiserver write requests per cluster during the ramp | {:.1}: {} |",
        ramp_writes.values().fold(0.0, |a, b| a + b) / ramp_clusters,
        top(&ramp_writes, ramp_clusters, 8).replace("/s", "")
    );
    println!(
        "| hub RSS: before / {} / {} clusters | {} / {} / {} MiB |",
        options.joiners,
        options.total,
        rss_before / 1024,
        rss_joiners / 1024,
        rss_total / 1024
    );
    println!(
        "| hub RSS per registered cluster at {} / {} | {:.1} / **{:.1} KiB** |",
        options.joiners,
        options.total,
        per_cluster(rss_joiners, options.joiners),
        per_cluster(rss_total, options.total)
    );
    println!(
        "| lease renewals sent in the window | {:.0}/s ({renewals}) |",
        renewals as f64 / seconds
    );
    println!(
        "| clusters Available throughout the window | {fewest_available} of {} |",
        options.total
    );
    for (name, percent) in &cpu {
        let bold = if name == "ocm-hub" { "**" } else { "" };
        println!("| CPU, {name} | {bold}{percent:.1} % of a core{bold} |");
    }
    println!(
        "| apiserver write requests | **{:.1}/s** |",
        per_second(&writes)
    );
    println!("| of which | {} |", top(&writes, seconds, 6));
    println!(
        "| access/token reviews (POST, nothing stored) | {:.1}/s |",
        per_second(&reviews)
    );
    println!(
        "| storage writes (etcd create/update/delete) | {:.1}/s: {} |",
        per_second(&storage),
        top(&storage, seconds, 4)
    );
    ensure!(
        fewest_available == options.total,
        "{} clusters stopped being Available during the window",
        options.total - fewest_available
    );
    Ok(())
}
