//! `ocm-localenv`: the local environment for ocm-rs' main job — a hub cluster and managed
//! clusters, each a real Kubernetes (etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler, kwok), running in the background until `ocm-localenv down`.
//!
//! `up` starts a detached supervisor (`serve`) and returns once every cluster is ready; the
//! supervisor owns the clusters, so their processes die with it (even on SIGKILL, through the
//! parent-death signal). `down` stops the supervisor and checks that nothing is left.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line tool reports on the terminal

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use ocm_testenv::{Cluster, ClusterConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Parser)]
#[command(
    name = "ocm-localenv",
    version,
    about = "Local hub and managed clusters for ocm-rs"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start the clusters in the background and return once all are ready.
    Up(UpArgs),
    /// Run the clusters in the foreground until SIGTERM or Ctrl-C.
    Serve(UpArgs),
    /// Stop the clusters and every process they started.
    Down(DirArg),
    /// Show whether the environment runs, and its kubeconfigs.
    Status(DirArg),
}

#[derive(Debug, Args)]
struct DirArg {
    /// Directory for kubeconfigs, logs and cluster state.
    #[arg(long, default_value = ".ocm-local")]
    dir: PathBuf,
}

#[derive(Debug, Args)]
struct UpArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Number of managed clusters beside the hub (named cluster1, cluster2, …).
    #[arg(long, default_value_t = 2)]
    managed: usize,
    /// Give up if the clusters are not ready after this many seconds.
    #[arg(long, default_value_t = 180)]
    timeout: u64,
    /// Also run ocm-rs: `ocmctl init` on the hub, `ocm-hub` against it, and every managed
    /// cluster joined with `ocmctl join --local` (an `ocm-agent`) and accepted with `ocmctl
    /// accept` (the binaries are found beside this one).
    #[arg(long)]
    ocm: bool,
}

/// What a running environment looks like, written by the supervisor once every cluster is
/// ready (`state.json`).
#[derive(Debug, Serialize, Deserialize)]
struct State {
    supervisor_pid: u32,
    started_in_ms: u64,
    clusters: Vec<ClusterState>,
    /// ocm-hub and the agents, with `--ocm`.
    #[serde(default)]
    ocm: Vec<(String, u32)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ClusterState {
    name: String,
    server: String,
    kubeconfig: PathBuf,
    dir: PathBuf,
    components: Vec<(String, u32)>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Up(args) => up(&args),
        Cmd::Serve(args) => serve(&args),
        Cmd::Down(args) => down(&absolute(&args.dir)),
        Cmd::Status(args) => status(&absolute(&args.dir)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn absolute(dir: &Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned())
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

fn kubeconfig_path(dir: &Path, cluster: &str) -> PathBuf {
    dir.join(format!("{cluster}.kubeconfig"))
}

fn cluster_names(managed: usize) -> Vec<String> {
    std::iter::once("hub".to_owned())
        .chain((1..=managed).map(|i| format!("cluster{i}")))
        .collect()
}

/// The state of a running environment; `None` if none runs (no state file, or one whose
/// supervisor is gone).
fn read_state(dir: &Path) -> Result<Option<State>> {
    let path = state_path(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    let state: State =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if is_supervisor(state.supervisor_pid) {
        Ok(Some(state))
    } else {
        Ok(None)
    }
}

/// Whether `pid` is alive and is an `ocm-localenv` (not a recycled pid).
fn is_supervisor(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("ocm-localenv"))
        && !is_zombie(pid)
}

fn is_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid)
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn up(args: &UpArgs) -> Result<()> {
    let dir = absolute(&args.dir.dir);
    if let Some(state) = read_state(&dir)? {
        println!("already running (supervisor pid {})", state.supervisor_pid);
        print_state(&state);
        return Ok(());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _ = std::fs::remove_file(state_path(&dir));
    let log_path = dir.join("localenv.log");
    let log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let exe = std::env::current_exe().context("locating ocm-localenv")?;
    let mut child = Command::new(exe)
        .arg("serve")
        .arg("--dir")
        .arg(&dir)
        .args([
            "--managed",
            &args.managed.to_string(),
            "--timeout",
            &args.timeout.to_string(),
        ])
        .args(args.ocm.then_some("--ocm"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a Ctrl-C in this terminal later must not reach it.
        .process_group(0)
        .spawn()
        .context("starting the ocm-localenv supervisor")?;
    println!(
        "starting {} clusters (log: {})",
        args.managed + 1,
        log_path.display()
    );
    let deadline = Instant::now() + Duration::from_secs(args.timeout + 10);
    loop {
        if let Some(state) = read_state(&dir)? {
            println!("ready in {:.1} s", state.started_in_ms as f64 / 1000.0);
            print_state(&state);
            println!(
                "\nstop everything with: cargo xtask down   (or: ocm-localenv down --dir {})",
                dir.display()
            );
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
            bail!("the supervisor exited ({status}) before the clusters were ready:\n{tail}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "clusters not ready after {} s; see {}",
                args.timeout,
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn print_state(state: &State) {
    for cluster in &state.clusters {
        println!(
            "  {:<10} {:<24} kubeconfig: {}",
            cluster.name,
            cluster.server,
            cluster.kubeconfig.display()
        );
    }
    for (name, pid) in &state.ocm {
        println!("  {name:<22} pid {pid}");
    }
    if let Some(hub) = state.clusters.first() {
        // ocmctl beside this binary, where `cargo xtask up` builds it.
        let ocmctl = std::env::current_exe()
            .ok()
            .map(|exe| exe.with_file_name("ocmctl"))
            .filter(|path| path.is_file());
        match (state.ocm.is_empty(), ocmctl) {
            (false, Some(ocmctl)) => {
                // What the main job did: the clusters joined, nginx delivered to the first.
                for what in [&["get", "clusters"][..], &["get", "works"][..]] {
                    println!("\n$ ocmctl {}", what.join(" "));
                    let shown = std::process::Command::new(&ocmctl)
                        .arg("--kubeconfig")
                        .arg(&hub.kubeconfig)
                        .args(what)
                        .status();
                    if let Err(error) = shown {
                        println!("(ocmctl did not run: {error})");
                    }
                }
                println!(
                    "\ntry: {} --kubeconfig {} get works",
                    ocmctl.display(),
                    hub.kubeconfig.display()
                );
            }
            (false, None) => println!(
                "\ntry: kubectl --kubeconfig {} get managedclusters",
                hub.kubeconfig.display()
            ),
            (true, _) => println!(
                "\ntry: kubectl --kubeconfig {} get nodes",
                hub.kubeconfig.display()
            ),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
// One thread: every cluster process is spawned from it, and their parent-death signal is tied
// to the spawning thread, so it must live as long as the supervisor.
async fn serve(args: &UpArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(env_filter())
        .with_ansi(false)
        .init();
    let dir = absolute(&args.dir.dir);
    let started = Instant::now();
    let names = cluster_names(args.managed);
    let starts = names.iter().map(|name| {
        let config = ClusterConfig::new(name.as_str())
            .dir(dir.join("clusters").join(name))
            .cert_validity(time::Duration::days(365))
            .start_timeout(Duration::from_secs(args.timeout));
        Cluster::start_with(config)
    });
    let mut clusters = futures::future::try_join_all(starts)
        .await
        .context("starting the clusters")?;

    let mut registration = if args.ocm {
        let binaries = ocm_testenv::ocm::OcmBinaries::beside_current_exe()?;
        let (hub, managed) = clusters.split_first().context("no hub cluster")?;
        let managed: Vec<&Cluster> = managed.iter().collect();
        Some(
            ocm_testenv::ocm::start(
                &binaries,
                hub,
                &managed,
                &dir,
                Duration::from_secs(args.timeout),
            )
            .await
            .context("starting ocm-hub and the agents")?,
        )
    } else {
        None
    };
    // The main job's work: nginx delivered to the first managed cluster, through the hub.
    if registration.is_some()
        && let (Some(hub), Some(first)) = (clusters.first(), clusters.get(1))
    {
        ocm_testenv::ocm::deliver_nginx(hub, first.name(), Duration::from_secs(args.timeout))
            .await
            .context("delivering the nginx ManifestWork")?;
    }
    let mut state = State {
        supervisor_pid: std::process::id(),
        started_in_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        clusters: Vec::new(),
        ocm: registration.as_ref().map(|r| r.pids()).unwrap_or_default(),
    };
    for cluster in &clusters {
        let kubeconfig = kubeconfig_path(&dir, cluster.name());
        std::fs::copy(cluster.kubeconfig_path(), &kubeconfig)
            .with_context(|| format!("writing {}", kubeconfig.display()))?;
        state.clusters.push(ClusterState {
            name: cluster.name().to_owned(),
            server: cluster.server_url().to_owned(),
            kubeconfig,
            dir: cluster.dir().to_owned(),
            components: cluster
                .components()
                .into_iter()
                .map(|(c, pid)| (c.to_owned(), pid))
                .collect(),
        });
    }
    // Written last and atomically: its presence means "ready".
    let tmp = dir.join("state.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&state)?)?;
    std::fs::rename(&tmp, state_path(&dir))?;
    tracing::info!(
        clusters = names.len(),
        elapsed_ms = state.started_in_ms,
        "local environment ready"
    );

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut watch = tokio::time::interval(Duration::from_secs(5));
    let mut reported = std::collections::HashSet::new();
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = watch.tick() => {
                for cluster in &mut clusters {
                    for component in cluster.exited_components() {
                        if !reported.insert((cluster.name().to_owned(), component)) {
                            continue;
                        }
                        tracing::error!(cluster = %cluster.name(), component, "component exited; see its log");
                    }
                }
                for (name, process) in registration.iter_mut().flat_map(|r| r.processes.iter_mut()) {
                    if process.exited().is_some() && reported.insert((name.clone(), "ocm")) {
                        tracing::error!(process = %name, log = %process.log().display(), "exited; see its log");
                    }
                }
            }
        }
    }
    tracing::info!("stopping");
    if let Some(registration) = &mut registration {
        registration.stop();
    }
    for cluster in clusters {
        cluster.stop();
    }
    for name in &names {
        let _ = std::fs::remove_file(kubeconfig_path(&dir, name));
    }
    let _ = std::fs::remove_file(state_path(&dir));
    let _ = std::fs::remove_dir(dir.join("clusters"));
    tracing::info!("stopped");
    Ok(())
}

fn env_filter() -> tracing_subscriber::EnvFilter {
    // kube logs every failed request at ERROR; while an apiserver boots, that is every poll.
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,kube_client::client::builder=off".into())
}

fn down(dir: &Path) -> Result<()> {
    let text = match std::fs::read_to_string(state_path(dir)) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            println!("not running ({} has no state.json)", dir.display());
            return Ok(());
        }
        Err(err) => return Err(err).context("reading state.json"),
    };
    let state: State = serde_json::from_str(&text).context("parsing state.json")?;
    let pids: Vec<u32> = state
        .clusters
        .iter()
        .flat_map(|c| c.components.iter().map(|(_, pid)| *pid))
        .chain(state.ocm.iter().map(|(_, pid)| *pid))
        .collect();
    if is_supervisor(state.supervisor_pid) {
        signal(state.supervisor_pid, Signal::SIGTERM);
        if !wait_until(Duration::from_secs(30), || !is_alive(state.supervisor_pid)) {
            eprintln!(
                "supervisor {} did not stop in 30 s; killing it",
                state.supervisor_pid
            );
            signal(state.supervisor_pid, Signal::SIGKILL);
        }
    }
    // The supervisor stops its clusters, and the kernel kills them if it died first; make sure.
    let survivors: Vec<u32> = pids.iter().copied().filter(|pid| is_alive(*pid)).collect();
    for pid in &survivors {
        signal(*pid, Signal::SIGKILL);
    }
    wait_until(Duration::from_secs(10), || {
        pids.iter().all(|pid| !is_alive(*pid))
    });
    let left: Vec<u32> = pids.iter().copied().filter(|pid| is_alive(*pid)).collect();
    let _ = std::fs::remove_file(state_path(dir));
    for cluster in &state.clusters {
        let _ = std::fs::remove_file(&cluster.kubeconfig);
        let _ = std::fs::remove_dir_all(&cluster.dir);
    }
    // The agents' bootstrap configs (tokens of the hub just stopped) and pid files.
    let _ = std::fs::remove_dir_all(dir.join("agents"));
    if !left.is_empty() {
        bail!("processes still running after stop: {left:?}");
    }
    let clusters = state.clusters.len();
    let plural = if clusters == 1 { "" } else { "s" };
    println!(
        "stopped {clusters} cluster{plural} ({} processes); none left running",
        pids.len()
    );
    Ok(())
}

fn status(dir: &Path) -> Result<()> {
    match read_state(dir)? {
        Some(state) => {
            println!("running (supervisor pid {})", state.supervisor_pid);
            for cluster in &state.clusters {
                let dead: Vec<&str> = cluster
                    .components
                    .iter()
                    .filter(|(_, pid)| !is_alive(*pid))
                    .map(|(name, _)| name.as_str())
                    .collect();
                if !dead.is_empty() {
                    println!("  {}: exited: {}", cluster.name, dead.join(", "));
                }
            }
            print_state(&state);
        }
        None => println!("not running"),
    }
    Ok(())
}

fn signal(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}
