//! The broker under load, over mutual TLS on 127.0.0.1: throughput from one source to many
//! subscribed clusters, fan-out latency of one event to every subscriber, and broker memory per
//! idle subscriber.
//!
//! `cargo bench -p ocm-transport --bench broker [-- --subscribers 1000,10000 --rounds 20
//!  --throughput-runs 5 --settle 25]`
//!
//! The broker runs in a child process (this binary again, with `--broker-process`), so its
//! resident memory is its own: the hub embeds the broker, and the source is the hub's own work
//! service, which hands events to `Broker::send`. The child does exactly that on command. The
//! subscribers are this process: one [`GrpcClient`] per simulated cluster, each with its own TLS
//! connection and client certificate handshake, subscribed to `manifestbundles` for its cluster,
//! exactly as an agent subscribes. Both processes share the machine's two cores, so every
//! figure includes the subscribers' own TLS and decoding work.
//!
//! - **throughput**: the source sends 100 events per cluster as fast as it can (the broker's
//!   per-subscriber queue holds 100, so nothing may be dropped); events/s = events / (time from
//!   the first send until the last event has arrived at its subscriber).
//!   The broker's CPU time over all bursts ÷ their events is its cost per delivered event
//!   (sending, routing, encoding, TLS), what a dedicated hub core would divide into.
//! - **fan-out latency**: the source sends one event to each of the N clusters; each latency is
//!   from the start of that fan-out to the moment the subscriber has decoded its event. Both
//!   processes read the same system clock.
//! - **memory**: (broker RSS with N idle subscribers − RSS before the first) / N, measured after
//!   `--settle` seconds so heartbeats have run; again after the fan-out rounds. The RSS after the
//!   throughput bursts is shown whole: a burst holds 100,000 events in the queues at its peak,
//!   and the allocator keeps much of that memory for reuse after the queues drain.
//!
//! Under `cargo test` (no `--bench` argument) it makes one small pass, so the suite keeps the
//! benchmark working; every run fails loudly if any event is lost or any subscriber dropped.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)] // a benchmark report

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use ocm_proto::SubscriptionRequest;
use ocm_transport::access::AccessRequest;
use ocm_transport::broker::{self, Authorizer, Broker, BrokerConfig, Identity};
use ocm_transport::event::{CloudEvent, ExtensionValue, JSON, SPEC_VERSION, extension};
use ocm_transport::event_type::DataType;
use ocm_transport::grpc_client::{GrpcClient, SubscribeOptions};
use ocm_transport::grpc_config::GrpcClientConfig;
use ocm_transport::tls::{self, PemIdentity, ReloadableIdentity};

const SPEC_UPDATE: &str =
    "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.update_request";
/// Events per cluster in a throughput burst: the broker's default queue capacity.
const THROUGHPUT_PER_CLUSTER: usize = 100;
/// Subscribers connecting at once while the benchmark ramps up.
const CONNECT_BATCH: usize = 250;

struct Options {
    subscribers: Vec<usize>,
    rounds: usize,
    throughput_runs: usize,
    settle: Duration,
}

fn options(args: &[String]) -> Options {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not, and then one small
    // pass checks that the benchmark still works.
    if !args.iter().any(|a| a == "--bench") {
        return Options {
            subscribers: vec![20, 60],
            rounds: 2,
            throughput_runs: 1,
            settle: Duration::from_millis(500),
        };
    }
    let mut options = Options {
        subscribers: vec![1_000, 10_000],
        rounds: 20,
        throughput_runs: 5,
        settle: Duration::from_secs(25),
    };
    for pair in args.windows(2) {
        match pair[0].as_str() {
            "--subscribers" => {
                options.subscribers = pair[1].split(',').map(|n| n.parse().unwrap()).collect();
                options.subscribers.sort_unstable();
            }
            "--rounds" => options.rounds = pair[1].parse().unwrap(),
            "--throughput-runs" => options.throughput_runs = pair[1].parse().unwrap(),
            "--settle" => options.settle = Duration::from_secs(pair[1].parse().unwrap()),
            _ => {}
        }
    }
    options
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Some(at) = args.iter().position(|a| a == "--broker-process") {
        runtime.block_on(broker_process(Path::new(&args[at + 1])));
    } else {
        runtime.block_on(bench(options(&args)));
    }
}

// ---------------------------------------------------------------------------------------------
// The broker process: the hub's broker with an embedded source, driven over stdin.

/// Every authenticated caller may do anything: authorization is the hub's business, not the
/// broker's cost being measured here.
struct AllowAll;

#[tonic::async_trait]
impl Authorizer for AllowAll {
    async fn authorize(&self, _: &Identity, _: &AccessRequest) -> Result<bool, String> {
        Ok(true)
    }
}

/// A ManifestBundle spec event of realistic size: one nginx Deployment.
fn spec_event(cluster: &str, sent: Timestamp) -> CloudEvent {
    const BUNDLE: &str = r#"{"manifests":[{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"nginx","namespace":"default","labels":{"app":"nginx"}},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"nginx"}},"template":{"metadata":{"labels":{"app":"nginx"}},"spec":{"containers":[{"name":"nginx","image":"nginx:1.27","ports":[{"containerPort":80}],"resources":{"requests":{"cpu":"100m","memory":"64Mi"}}}]}}}}],"deleteOption":{"propagationPolicy":"Foreground"},"manifestConfigs":[{"resourceIdentifier":{"group":"apps","resource":"deployments","name":"nginx","namespace":"default"},"feedbackRules":[{"type":"WellKnownStatus"}]}]}"#;
    let id = uuid::Uuid::new_v4().to_string();
    let mut extensions = std::collections::BTreeMap::new();
    extensions.insert(
        extension::RESOURCE_ID.to_owned(),
        ExtensionValue::String(id.clone()),
    );
    extensions.insert(
        extension::RESOURCE_VERSION.to_owned(),
        ExtensionValue::Integer(1),
    );
    extensions.insert(
        extension::CLUSTER_NAME.to_owned(),
        ExtensionValue::String(cluster.to_owned()),
    );
    CloudEvent {
        id,
        source: "ocm-hub".to_owned(),
        spec_version: SPEC_VERSION.to_owned(),
        event_type: SPEC_UPDATE.to_owned(),
        time: Some(sent),
        data_content_type: Some(JSON.to_owned()),
        extensions,
        data: Some(BUNDLE.as_bytes().to_vec()),
        ..CloudEvent::default()
    }
}

async fn broker_process(dir: &Path) {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let serving = PemIdentity {
        cert_chain: read("server.crt"),
        key: read("server.key"),
    };
    let server_tls =
        tls::server_config(ReloadableIdentity::new(&serving).unwrap(), &read("ca.crt")).unwrap();
    let broker = Broker::new(
        BrokerConfig::default(),
        HashMap::new(),
        None,
        Arc::new(AllowAll),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(broker::serve(
        broker.clone(),
        listener,
        Arc::new(server_tls),
        4 << 20,
        std::future::pending(),
    ));
    let mut stdout = tokio::io::stdout();
    let mut reply = async |line: String| {
        stdout.write_all(line.as_bytes()).await.unwrap();
        stdout.write_all(b"\n").await.unwrap();
        stdout.flush().await.unwrap();
    };
    reply(format!("READY {port}")).await;
    let mut commands = BufReader::new(tokio::io::stdin()).lines();
    while let Some(command) = commands.next_line().await.unwrap() {
        let words: Vec<&str> = command.split_whitespace().collect();
        match words.as_slice() {
            ["burst", clusters, per_cluster] => {
                let (clusters, per_cluster): (usize, usize) =
                    (clusters.parse().unwrap(), per_cluster.parse().unwrap());
                let names: Vec<String> = (0..clusters).map(cluster_name).collect();
                let started = Instant::now();
                let sent = Timestamp::now();
                let mut delivered = 0;
                for _ in 0..per_cluster {
                    for name in &names {
                        delivered += broker.send(&spec_event(name, sent)).unwrap();
                    }
                }
                let took = started.elapsed().as_micros();
                reply(format!("SENT {delivered} {took}")).await;
            }
            ["subscribers"] => reply(format!("SUBSCRIBERS {}", broker.subscriber_count())).await,
            _ => reply(format!("ERROR unknown command {command:?}")).await,
        }
    }
}

fn cluster_name(index: usize) -> String {
    format!("cluster-{index}")
}

// ---------------------------------------------------------------------------------------------
// The driver: subscribers, commands, figures.

struct BrokerProcess {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    port: u16,
}

impl BrokerProcess {
    async fn start(dir: &Path) -> Self {
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .arg("--broker-process")
            .arg(dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = stdout.next_line().await.unwrap().unwrap();
        let port = ready.strip_prefix("READY ").unwrap().parse().unwrap();
        Self {
            child,
            stdin,
            stdout,
            port,
        }
    }

    async fn command(&mut self, command: &str) -> Vec<String> {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
        let line = self.stdout.next_line().await.unwrap().unwrap();
        assert!(!line.starts_with("ERROR"), "{line}");
        line.split_whitespace().skip(1).map(str::to_owned).collect()
    }

    /// Sends `per_cluster` events to each of `clusters`; returns how many subscribers queued
    /// them and how long sending took.
    async fn burst(&mut self, clusters: usize, per_cluster: usize) -> (usize, Duration) {
        let reply = self
            .command(&format!("burst {clusters} {per_cluster}"))
            .await;
        (
            reply[0].parse().unwrap(),
            Duration::from_micros(reply[1].parse().unwrap()),
        )
    }

    async fn subscribers(&mut self) -> usize {
        self.command("subscribers").await[0].parse().unwrap()
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }
}

/// VmRSS of `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// User + system CPU time of `pid` so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // CLK_TCK is 100 on Linux for every architecture we run on.
    Duration::from_millis(ticks * 10)
}

/// What the subscribers received.
#[derive(Default)]
struct Receipts {
    events: AtomicUsize,
    /// Receipt time of the latest event, nanoseconds since the epoch.
    last_ns: AtomicI64,
    latencies_us: Mutex<Vec<u64>>,
}

impl Receipts {
    fn reset(&self) {
        self.events.store(0, Ordering::SeqCst);
        self.last_ns.store(0, Ordering::SeqCst);
        self.latencies_us.lock().unwrap().clear();
    }

    async fn wait_for(&self, expected: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.events.load(Ordering::SeqCst) < expected {
            assert!(
                Instant::now() < deadline,
                "{what}: only {} of {expected} events arrived",
                self.events.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Records every event the subscribers decode: latency from its `time` (the start of its
/// fan-out) to now.
fn collect(mut events: mpsc::Receiver<CloudEvent>, receipts: Arc<Receipts>) {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let now = Timestamp::now().as_nanosecond();
            let sent = event.time.map_or(now, Timestamp::as_nanosecond);
            let latency_us = u64::try_from((now - sent).max(0) / 1_000).unwrap_or(u64::MAX);
            receipts.latencies_us.lock().unwrap().push(latency_us);
            receipts
                .last_ns
                .fetch_max(i64::try_from(now).unwrap(), Ordering::SeqCst);
            receipts.events.fetch_add(1, Ordering::SeqCst);
        }
    });
}

struct Subscribers {
    config: GrpcClientConfig,
    connected: usize,
    events: mpsc::Sender<CloudEvent>,
    subscribed: mpsc::Sender<String>,
    subscriptions: Arc<AtomicUsize>,
    cancel: CancellationToken,
}

impl Subscribers {
    /// Connects subscribers until there are `total`, `CONNECT_BATCH` handshakes at a time (as
    /// agents coming back after a hub restart would, spread by their backoff jitter).
    async fn grow_to(&mut self, total: usize) -> Duration {
        let started = Instant::now();
        while self.connected < total {
            let batch_end = (self.connected + CONNECT_BATCH).min(total);
            for index in self.connected..batch_end {
                let client = GrpcClient::new(&self.config).unwrap();
                let request = SubscriptionRequest {
                    source: String::new(),
                    cluster_name: cluster_name(index),
                    data_type: DataType::manifest_bundles().to_string(),
                };
                let (events, subscribed, cancel) = (
                    self.events.clone(),
                    self.subscribed.clone(),
                    self.cancel.clone(),
                );
                tokio::spawn(async move {
                    client
                        .run_subscription(
                            request,
                            events,
                            subscribed,
                            SubscribeOptions::default(),
                            cancel,
                        )
                        .await;
                });
            }
            self.connected = batch_end;
            let deadline = Instant::now() + Duration::from_secs(60);
            while self.subscriptions.load(Ordering::SeqCst) < self.connected {
                assert!(
                    Instant::now() < deadline,
                    "only {} of {} subscribers subscribed",
                    self.subscriptions.load(Ordering::SeqCst),
                    self.connected
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        started.elapsed()
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1_000.0)
}

fn write_pki(dir: &Path) -> GrpcClientConfig {
    let ca = support::TestCa::new("bench-ca");
    let server = ca.server("ocm-hub");
    std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.crt"), &server.cert_chain).unwrap();
    std::fs::write(dir.join("server.key"), &server.key).unwrap();
    GrpcClientConfig {
        url: "127.0.0.1:0".to_owned(),
        ca_pem: Some(ca.pem()),
        // One identity for every subscriber, so not an agent's (`…:<cluster>:<agent>`), which
        // the broker lets act for its own cluster only.
        client_identity: Some(ca.client(
            "bench-subscriber",
            Some("system:open-cluster-management:managed-clusters"),
        )),
        token: None,
        keep_alive: None,
        server_healthiness_timeout: None,
        proxy: None,
    }
}

async fn bench(options: Options) {
    let largest = options.subscribers.iter().copied().max().unwrap_or(0);
    check_fd_limit(largest);
    let dir = tempfile::tempdir().unwrap();
    let mut config = write_pki(dir.path());
    let mut broker = BrokerProcess::start(dir.path()).await;
    config.url = format!("127.0.0.1:{}", broker.port);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline_kib = rss_kib(broker.pid());

    let receipts = Arc::new(Receipts::default());
    let (events_tx, events_rx) = mpsc::channel(65_536);
    collect(events_rx, Arc::clone(&receipts));
    let subscriptions = Arc::new(AtomicUsize::new(0));
    let (subscribed_tx, mut subscribed_rx) = mpsc::channel::<String>(1_024);
    let counter = Arc::clone(&subscriptions);
    tokio::spawn(async move {
        while subscribed_rx.recv().await.is_some() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let mut subscribers = Subscribers {
        config,
        connected: 0,
        events: events_tx,
        subscribed: subscribed_tx,
        subscriptions: Arc::clone(&subscriptions),
        cancel: CancellationToken::new(),
    };

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "machine: {cores} cores; broker process RSS before any subscriber: {} MiB",
        baseline_kib / 1024
    );
    println!();
    println!(
        "| subscribers | connect (TLS + subscribe) | idle broker RSS | per idle subscriber | idle broker CPU | per subscriber after fan-outs | RSS after throughput bursts | throughput (events/s) | broker CPU per event | fan-out p50 | fan-out p99 | fan-out max |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &n in &options.subscribers {
        let connect = subscribers.grow_to(n).await;
        assert_eq!(broker.subscribers().await, n, "broker subscriber count");

        // Idle: let heartbeats run, then read memory and CPU over a quiet window.
        tokio::time::sleep(options.settle).await;
        let cpu_before = cpu_time(broker.pid());
        let window = Instant::now();
        tokio::time::sleep(options.settle.min(Duration::from_secs(10))).await;
        let idle_cpu = cpu_time(broker.pid())
            .saturating_sub(cpu_before)
            .as_secs_f64()
            / window.elapsed().as_secs_f64();
        let idle_kib = rss_kib(broker.pid());
        let per_idle = idle_kib.saturating_sub(baseline_kib) as f64 / n as f64;

        // Fan-out: one event to every subscriber, `rounds` times.
        let mut latencies = Vec::new();
        for _ in 0..options.rounds {
            receipts.reset();
            let (queued, _) = broker.burst(n, 1).await;
            assert_eq!(queued, n, "every subscriber queued the event");
            receipts.wait_for(n, "fan-out").await;
            latencies.extend(receipts.latencies_us.lock().unwrap().drain(..));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        latencies.sort_unstable();
        tokio::time::sleep(options.settle).await;
        let after_fanout_kib = rss_kib(broker.pid());

        // Throughput: a queue-full of events per cluster, as fast as the source can send.
        let mut rates = Vec::new();
        let (cpu_before, mut events_sent) = (cpu_time(broker.pid()), 0);
        for _ in 0..options.throughput_runs {
            let per_cluster = if n >= 1_000 {
                THROUGHPUT_PER_CLUSTER.min(100_000 / n).max(1)
            } else {
                THROUGHPUT_PER_CLUSTER / 20
            };
            receipts.reset();
            let started_ns = Timestamp::now().as_nanosecond();
            let (queued, _) = broker.burst(n, per_cluster).await;
            assert_eq!(queued, n * per_cluster, "every event queued");
            receipts.wait_for(queued, "throughput").await;
            let took_ns = i128::from(receipts.last_ns.load(Ordering::SeqCst)) - started_ns;
            rates.push(queued as f64 / (took_ns as f64 / 1e9));
            events_sent += queued;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let cpu_per_event_us = cpu_time(broker.pid())
            .saturating_sub(cpu_before)
            .as_secs_f64()
            * 1e6
            / events_sent.max(1) as f64;
        rates.sort_by(f64::total_cmp);
        let throughput = rates[rates.len() / 2];

        tokio::time::sleep(options.settle).await;
        let after_throughput_kib = rss_kib(broker.pid());
        assert_eq!(
            subscriptions.load(Ordering::SeqCst),
            n,
            "a subscriber lost its stream and resubscribed"
        );
        println!(
            "| {n} | {:.1} s ({:.0}/s) | {} MiB | {per_idle:.1} KiB | {:.1} % of a core | {:.1} KiB | {} MiB | {throughput:.0} (median of {}) | {cpu_per_event_us:.1} µs | {} | {} | {} |",
            connect.as_secs_f64(),
            connect_rate(n, &options.subscribers, connect),
            idle_kib / 1024,
            idle_cpu * 100.0,
            after_fanout_kib.saturating_sub(baseline_kib) as f64 / n as f64,
            after_throughput_kib / 1024,
            rates.len(),
            ms(percentile(&latencies, 50.0)),
            ms(percentile(&latencies, 99.0)),
            ms(latencies.last().copied().unwrap_or(0)),
        );
    }
    subscribers.cancel.cancel();
}

/// Subscribers connected before the size `n` step (the previous size, or none).
fn connect_count_before(n: usize, sizes: &[usize]) -> usize {
    sizes.iter().copied().filter(|&s| s < n).max().unwrap_or(0)
}

/// New connections per second during the step up to `n`.
fn connect_rate(n: usize, sizes: &[usize], took: Duration) -> f64 {
    (n - connect_count_before(n, sizes)) as f64 / took.as_secs_f64().max(1e-9)
}

/// Each subscriber holds one socket here and one in the broker process.
fn check_fd_limit(subscribers: usize) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft: Option<usize> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok());
    if let Some(soft) = soft {
        assert!(
            soft > subscribers + 256,
            "{subscribers} subscribers need more than {} open files; raise `ulimit -n` (it is {soft})",
            subscribers + 256
        );
    }
}
