//! `ocmctl join --local`: the agent as a local background process instead of a Deployment — for
//! the local environment, a laptop, or a cluster whose nodes cannot run our image. Its files live
//! in a state directory, one subdirectory per cluster ([`LocalFiles`]): OCM's gRPC bootstrap
//! config (it holds the token, so only the owner may read it), the agent's log and its pid, by
//! which `ocmctl unjoin` finds and stops it.
//!
//! With a proxy (`join --proxy-url`), the agent gets its URL in its environment
//! (`OCM_PROXY_URL`, readable only by its owner, unlike its command line) and an `https://`
//! proxy's CA as `proxy-ca.crt` in the state directory.
//!
//! The agent runs in its own process group, so a Ctrl-C in the terminal that ran `ocmctl` does
//! not reach it. A pid is only ever signalled after `/proc` shows it is still this cluster's
//! agent with this bootstrap config, so a reused pid is never hit.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Where one cluster's local agent keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFiles {
    pub dir: PathBuf,
    /// OCM's gRPC bootstrap config (url, caData, token); mode 0600.
    pub bootstrap_config: PathBuf,
    /// The agent's output, appended to.
    pub log: PathBuf,
    pub pid: PathBuf,
    /// An `https://` proxy's CA, when the agent reaches the hub through one.
    pub proxy_ca: PathBuf,
}

impl LocalFiles {
    /// `<state_dir>/<cluster>/{bootstrap-config.yaml, ocm-agent.log, ocm-agent.pid}`.
    pub fn new(state_dir: &Path, cluster: &str) -> Self {
        let dir = state_dir.join(cluster);
        Self {
            bootstrap_config: dir.join("bootstrap-config.yaml"),
            log: dir.join("ocm-agent.log"),
            pid: dir.join("ocm-agent.pid"),
            proxy_ca: dir.join("proxy-ca.crt"),
            dir,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the agent binary {} cannot be started ({source}): pass --agent-binary, or build it with `cargo build -p ocm-spoke-agent`",
        path.display()
    )]
    AgentBinary {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "an agent for cluster {cluster:?} already runs here (pid {pid}): run `ocmctl unjoin --cluster-name {cluster}` first to join again"
    )]
    AlreadyRunning { cluster: String, pid: u32 },
    #[error("the agent exited at once ({status}); its log {}:\n{tail}", log.display())]
    Exited {
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "the agent (pid {pid}) did not stop after SIGTERM and SIGKILL; stop it yourself, then run unjoin again"
    )]
    Unstoppable { pid: u32 },
    #[error("no free port on 127.0.0.1 for the agent's health endpoint: {0}")]
    NoPort(#[source] std::io::Error),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LocalError {
    let path = path.to_owned();
    move |source| LocalError::Io { what, path, source }
}

/// The agent's command line.
pub fn agent_args(
    cluster: &str,
    files: &LocalFiles,
    spoke_kubeconfig: Option<&Path>,
    health_listen: SocketAddr,
) -> Vec<String> {
    let mut args = vec![
        "--cluster-name".to_owned(),
        cluster.to_owned(),
        "--bootstrap-config".to_owned(),
        files.bootstrap_config.display().to_string(),
        "--health-listen".to_owned(),
        health_listen.to_string(),
    ];
    if let Some(kubeconfig) = spoke_kubeconfig {
        args.push("--kubeconfig".to_owned());
        args.push(kubeconfig.display().to_string());
    }
    args
}

/// Writes the bootstrap config (readable by the owner only) into a new or existing state
/// directory.
pub fn write_bootstrap_config(files: &LocalFiles, yaml: &str) -> Result<(), LocalError> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&files.dir)
        .map_err(io("creating the state directory", &files.dir))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&files.bootstrap_config)
        .map_err(io("writing", &files.bootstrap_config))?;
    // An existing file keeps its mode on open; make sure.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io("restricting", &files.bootstrap_config))?;
    file.write_all(yaml.as_bytes())
        .map_err(io("writing", &files.bootstrap_config))
}

/// Writes an `https://` proxy's CA into the state directory (created by
/// [`write_bootstrap_config`]).
pub fn write_proxy_ca(files: &LocalFiles, pem: &str) -> Result<(), LocalError> {
    std::fs::write(&files.proxy_ca, pem).map_err(io("writing", &files.proxy_ca))
}

/// Records the agent's pid for `unjoin`.
pub fn record_pid(files: &LocalFiles, pid: u32) -> Result<(), LocalError> {
    std::fs::write(&files.pid, format!("{pid}\n")).map_err(io("writing", &files.pid))
}

/// A free port on 127.0.0.1 (for the agent's health endpoint: several local agents must not
/// share the default one).
pub fn free_local_port() -> Result<u16, LocalError> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(LocalError::NoPort)
}

/// The pid of this cluster's running local agent, if one runs.
pub fn running(files: &LocalFiles, cluster: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(&files.pid)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    is_our_agent(pid, files, cluster).then_some(pid)
}

fn is_our_agent(pid: u32, files: &LocalFiles, cluster: &str) -> bool {
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| proc_state(&stat))
        .is_some_and(|state| state != 'Z' && state != 'X');
    alive
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmdline| is_agent_cmdline(&cmdline, cluster, &files.bootstrap_config))
}

/// The state letter of `/proc/<pid>/stat` (`R`, `S`, `Z` …); the command name before it may hold
/// spaces and parentheses, so it is read after the last `)`.
fn proc_state(stat: &str) -> Option<char> {
    let (_, after) = stat.rsplit_once(')')?;
    after.trim_start().chars().next()
}

/// Whether a NUL-separated command line runs the agent of `cluster` with `bootstrap_config`.
fn is_agent_cmdline(cmdline: &[u8], cluster: &str, bootstrap_config: &Path) -> bool {
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let has = |flag: &str, value: &[u8]| {
        args.windows(2)
            .any(|pair| pair[0] == flag.as_bytes() && pair[1] == value)
    };
    has("--cluster-name", cluster.as_bytes())
        && has(
            "--bootstrap-config",
            bootstrap_config.as_os_str().as_encoded_bytes(),
        )
}

/// The last `lines` lines of a log, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A started local agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub pid: u32,
    pub health: SocketAddr,
    pub log: PathBuf,
}

/// Starts `agent_binary` for `cluster` in the background with `bootstrap_yaml`, against the
/// managed cluster of `spoke_kubeconfig` (else the agent's own default, as ocmctl's), reaching
/// the hub through `proxy` if given. Fails if one already runs, or if the agent exits within
/// its first second (its log tail says why).
pub async fn start(
    cluster: &str,
    bootstrap_yaml: &str,
    files: &LocalFiles,
    agent_binary: &Path,
    spoke_kubeconfig: Option<&Path>,
    proxy: Option<&crate::join::AgentProxy>,
) -> Result<Started, LocalError> {
    if let Some(pid) = running(files, cluster) {
        return Err(LocalError::AlreadyRunning {
            cluster: cluster.to_owned(),
            pid,
        });
    }
    write_bootstrap_config(files, bootstrap_yaml)?;
    let health = SocketAddr::from(([127, 0, 0, 1], free_local_port()?));
    let mut args = agent_args(cluster, files, spoke_kubeconfig, health);
    match proxy.and_then(crate::join::AgentProxy::ca_pem) {
        Some(ca) => {
            write_proxy_ca(files, ca)?;
            args.push("--proxy-ca-file".to_owned());
            args.push(files.proxy_ca.display().to_string());
        }
        None => match std::fs::remove_file(&files.proxy_ca) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("removing", &files.proxy_ca)(e));
            }
            _ => {}
        },
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&files.log)
        .map_err(io("opening the agent log", &files.log))?;
    let log_err = log
        .try_clone()
        .map_err(io("opening the agent log", &files.log))?;
    let mut child = {
        use std::os::unix::process::CommandExt as _;
        let mut command = Command::new(agent_binary);
        command
            .args(args)
            // The flags decide, not what the caller's environment happens to hold.
            .env_remove("OCM_AGENT_KUBECONFIG")
            .env_remove("OCM_CLUSTER_NAME")
            .env_remove(crate::join::PROXY_URL_ENV);
        if let Some(proxy) = proxy {
            // Not an argument: /proc/<pid>/cmdline is anyone's to read, the environment only
            // its owner's.
            command.env(crate::join::PROXY_URL_ENV, proxy.url());
        }
        command
            // Its log is a file: plain text, no colour codes.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(|source| LocalError::AgentBinary {
                path: agent_binary.to_owned(),
                source,
            })?
    };
    record_pid(files, child.id())?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            let _ = std::fs::remove_file(&files.pid);
            return Err(LocalError::Exited {
                status: status.to_string(),
                log: files.log.clone(),
                tail: log_tail(&files.log, 20),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Started {
        pid: child.id(),
        health,
        log: files.log.clone(),
    })
}

/// What stopping found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The agent with this pid was running and has stopped.
    Agent(u32),
    /// No agent of this cluster was running.
    NotRunning,
}

/// Stops the cluster's local agent (SIGTERM, then SIGKILL after `grace`) and removes its pid
/// and bootstrap config; the log stays.
pub async fn stop(
    files: &LocalFiles,
    cluster: &str,
    grace: Duration,
) -> Result<Stopped, LocalError> {
    let outcome = match running(files, cluster) {
        None => Stopped::NotRunning,
        Some(pid) => {
            let target = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
            let _ = kill(target, Signal::SIGTERM);
            if !gone_within(pid, files, cluster, grace).await {
                let _ = kill(target, Signal::SIGKILL);
                if !gone_within(pid, files, cluster, Duration::from_secs(5)).await {
                    return Err(LocalError::Unstoppable { pid });
                }
            }
            Stopped::Agent(pid)
        }
    };
    for file in [&files.pid, &files.bootstrap_config, &files.proxy_ca] {
        match std::fs::remove_file(file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("removing", file)(e));
            }
            _ => {}
        }
    }
    Ok(outcome)
}

async fn gone_within(pid: u32, files: &LocalFiles, cluster: &str, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if !is_our_agent(pid, files, cluster) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cluster_has_its_own_files() {
        let files = LocalFiles::new(Path::new("/state"), "cluster1");
        assert_eq!(
            files.bootstrap_config,
            Path::new("/state/cluster1/bootstrap-config.yaml")
        );
        assert_eq!(files.pid, Path::new("/state/cluster1/ocm-agent.pid"));
        let args = agent_args(
            "cluster1",
            &files,
            Some(Path::new("/k/spoke.kubeconfig")),
            "127.0.0.1:4242".parse().unwrap(),
        );
        assert_eq!(
            args.join(" "),
            "--cluster-name cluster1 --bootstrap-config /state/cluster1/bootstrap-config.yaml \
             --health-listen 127.0.0.1:4242 --kubeconfig /k/spoke.kubeconfig"
        );
    }

    #[test]
    fn only_this_clusters_agent_is_recognised() {
        let config = Path::new("/state/c1/bootstrap-config.yaml");
        let ours = b"/bin/ocm-agent\0--cluster-name\0c1\0--bootstrap-config\0/state/c1/bootstrap-config.yaml\0";
        assert!(is_agent_cmdline(ours, "c1", config));
        assert!(!is_agent_cmdline(ours, "c2", config));
        assert!(!is_agent_cmdline(
            ours,
            "c1",
            Path::new("/other/c1/bootstrap-config.yaml")
        ));
        assert!(!is_agent_cmdline(b"", "c1", config));
        assert!(!is_agent_cmdline(b"sleep\0c1\0", "c1", config));
    }

    #[test]
    fn the_process_state_is_read_after_the_command_name() {
        assert_eq!(proc_state("42 (ocm-agent) S 1 42"), Some('S'));
        assert_eq!(proc_state("42 (a) b) (c) Z 1"), Some('Z'));
        assert_eq!(proc_state("garbage"), None);
    }

    /// A stand-in agent: a script that runs until signalled, so /proc shows our command line.
    fn stand_in(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = dir.join("fake-agent");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    async fn start_retrying(files: &LocalFiles, binary: &Path) -> Result<Started, LocalError> {
        // Another test thread may fork while the script is still open for writing (ETXTBSY).
        for _ in 0..20 {
            match start("c1", "url: hub:8090\n", files, binary, None, None).await {
                Err(LocalError::AgentBinary { source, .. })
                    if source.raw_os_error() == Some(26) =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
        panic!("the stand-in agent stayed busy");
    }

    #[tokio::test]
    async fn a_started_agent_runs_in_the_background_until_stopped() {
        let scratch = tempfile::tempdir().unwrap();
        let files = LocalFiles::new(&scratch.path().join("state"), "c1");
        let binary = stand_in(
            scratch.path(),
            "echo agent up; while true; do sleep 0.1; done",
        );
        let started = start_retrying(&files, &binary).await.unwrap();
        assert_eq!(running(&files, "c1"), Some(started.pid));
        assert_eq!(running(&files, "c2"), None);
        let again = start("c1", "url: hub:8090\n", &files, &binary, None, None).await;
        assert!(
            matches!(again, Err(LocalError::AlreadyRunning { pid, .. }) if pid == started.pid),
            "{again:?}"
        );
        assert_eq!(
            stop(&files, "c1", Duration::from_secs(5)).await.unwrap(),
            Stopped::Agent(started.pid)
        );
        assert_eq!(running(&files, "c1"), None);
        assert!(!files.pid.exists() && !files.bootstrap_config.exists());
        assert!(
            std::fs::read_to_string(&files.log)
                .unwrap()
                .contains("agent up")
        );
    }

    #[tokio::test]
    async fn a_proxy_reaches_the_agent_in_its_environment_never_its_command_line() {
        let scratch = tempfile::tempdir().unwrap();
        let files = LocalFiles::new(&scratch.path().join("state"), "c1");
        let binary = stand_in(
            scratch.path(),
            "echo \"proxy=$OCM_PROXY_URL\"; echo \"args=$*\"; while true; do sleep 0.1; done",
        );
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(vec!["proxy".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        let proxy =
            crate::join::AgentProxy::new("https://alice:s3cret@proxy:3128", Some(&ca)).unwrap();
        let started = loop {
            match start("c1", "url: hub:8090\n", &files, &binary, None, Some(&proxy)).await {
                Err(LocalError::AgentBinary { source, .. })
                    if source.raw_os_error() == Some(26) =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => break other.unwrap(),
            }
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let log = loop {
            let log = std::fs::read_to_string(&files.log).unwrap_or_default();
            if log.contains("args=") {
                break log;
            }
            assert!(tokio::time::Instant::now() < deadline, "no output: {log}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            log.contains("proxy=https://alice:s3cret@proxy:3128"),
            "{log}"
        );
        assert!(
            log.contains(&format!("--proxy-ca-file {}", files.proxy_ca.display())),
            "{log}"
        );
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", started.pid)).unwrap();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains("s3cret"),
            "the password is on the command line"
        );
        assert_eq!(std::fs::read_to_string(&files.proxy_ca).unwrap(), ca);
        stop(&files, "c1", Duration::from_secs(5)).await.unwrap();
        assert!(!files.proxy_ca.exists(), "stop removes the proxy CA too");
    }

    #[tokio::test]
    async fn an_agent_that_exits_at_once_is_reported_with_its_log() {
        let scratch = tempfile::tempdir().unwrap();
        let files = LocalFiles::new(&scratch.path().join("state"), "c1");
        let binary = stand_in(scratch.path(), "echo cannot bind the health port; exit 3");
        let err = start_retrying(&files, &binary)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("exited at once") && err.contains("cannot bind the health port"),
            "{err}"
        );
        assert!(!files.pid.exists());
        let missing = start("c1", "", &files, &scratch.path().join("nope"), None, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(missing.contains("--agent-binary"), "{missing}");
    }

    #[test]
    fn the_bootstrap_config_is_private_and_stop_without_an_agent_cleans_up() {
        use std::os::unix::fs::PermissionsExt as _;
        let scratch = tempfile::tempdir().unwrap();
        let files = LocalFiles::new(scratch.path(), "c1");
        write_bootstrap_config(&files, "url: hub:8090\n").unwrap();
        let mode = std::fs::metadata(&files.bootstrap_config)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A pid that is not this cluster's agent (our own test process) is never signalled.
        record_pid(&files, std::process::id()).unwrap();
        assert_eq!(running(&files, "c1"), None);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let stopped = runtime
            .block_on(stop(&files, "c1", Duration::from_secs(1)))
            .unwrap();
        assert_eq!(stopped, Stopped::NotRunning);
        assert!(!files.pid.exists() && !files.bootstrap_config.exists());
    }
}
