//! The real `ocm-hub` binary as a child process against a test hub cluster, and what a
//! simulated spoke needs from that hub to join: a bootstrap token and the hub's CA.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ocm_api::k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use ocm_api::k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use ocm_api::kube::api::PostParams;
use ocm_api::kube::{Api, Client};
use ocm_testenv::{Cluster, Process, free_port};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::SimError;
use crate::measure::Metrics;

/// Where `ocm-hub` keeps its CA (the default `--namespace`) and the Secret's name.
pub const HUB_NAMESPACE: &str = "open-cluster-management-hub";
pub const HUB_CA_SECRET: &str = "ocm-hub-ca";

/// A running `ocm-hub`.
#[derive(Debug)]
pub struct HubProcess {
    process: Process,
    pub grpc_port: u16,
    pub health_port: u16,
    /// What it was started with, to start it again the same way.
    binary: PathBuf,
    cluster: String,
    args: Vec<String>,
    restarts: usize,
}

impl HubProcess {
    /// `ocm-hub` beside the running executable's build directory (`target/<profile>/`).
    pub fn binary_beside_current_exe() -> Result<PathBuf, SimError> {
        let exe = std::env::current_exe().map_err(|source| SimError::Proc {
            path: "current exe".to_owned(),
            source,
        })?;
        let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let path = dir.join("ocm-hub");
        if path.exists() {
            Ok(path)
        } else {
            Err(SimError::HubBinaryMissing {
                profile: if dir.ends_with("release") {
                    "--release "
                } else {
                    ""
                },
                path,
            })
        }
    }

    /// Starts `binary` against `hub` on free ports with `args` added, its log in `log`, and
    /// waits (up to `timeout`) until it answers `/readyz`. Call from a long-lived thread (the
    /// process dies with the thread that started it; see [`Process::spawn`]).
    pub async fn start(
        binary: &Path,
        hub: &Cluster,
        args: &[String],
        log: PathBuf,
        timeout: Duration,
    ) -> Result<Self, SimError> {
        let (grpc_port, health_port) = (free_port()?, free_port()?);
        let mut all: Vec<String> = vec![
            "--kubeconfig".into(),
            hub.kubeconfig_path().display().to_string(),
            "--grpc-listen".into(),
            format!("127.0.0.1:{grpc_port}"),
            "--health-listen".into(),
            format!("127.0.0.1:{health_port}"),
        ];
        all.extend(args.iter().cloned());
        let process = Process::spawn(hub.name(), "ocm-hub", binary, &all, log.clone())?;
        let mut started = Self {
            process,
            grpc_port,
            health_port,
            binary: binary.to_path_buf(),
            cluster: hub.name().to_owned(),
            args: all,
            restarts: 0,
        };
        started.until_ready(timeout).await?;
        Ok(started)
    }

    /// Stops it (SIGTERM, SIGKILL after `grace`) and starts it again with the same arguments
    /// and ports, its log beside the first one; waits until it answers `/readyz`.
    pub async fn restart(&mut self, grace: Duration, timeout: Duration) -> Result<(), SimError> {
        self.process.stop(grace);
        self.restarts += 1;
        let log = self
            .process
            .log()
            .with_extension(format!("restart-{}.log", self.restarts));
        self.process = Process::spawn(&self.cluster, "ocm-hub", &self.binary, &self.args, log)?;
        self.until_ready(timeout).await
    }

    async fn until_ready(&mut self, timeout: Duration) -> Result<(), SimError> {
        let deadline = tokio::time::Instant::now() + timeout;
        while http_status(self.health_port, "/readyz").await != Some(200) {
            if let Some(status) = self.process.exited() {
                return Err(SimError::Hub(format!(
                    "exited ({status}); see {}",
                    self.process.log().display()
                )));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(SimError::Hub(format!(
                    "not ready within {timeout:?}; see {}",
                    self.process.log().display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Whether it has exited, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.process.exited()
    }

    pub fn log(&self) -> &Path {
        self.process.log()
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        self.process.stop(grace);
    }

    /// The hub's own counters (`ocm_hub_published_events_total`,
    /// `ocm_hub_work_status_writes_total`, …) named in `names`, from its `/metrics`.
    pub async fn metrics(&self, names: &[&str]) -> Result<Metrics, SimError> {
        match http_get(self.health_port, "/metrics").await {
            Some((200, body)) => Ok(Metrics::parse(&body, names)),
            Some((status, _)) => Err(SimError::Hub(format!("GET /metrics answered {status}"))),
            None => Err(SimError::Hub("GET /metrics: no answer".to_owned())),
        }
    }
}

/// A token of the bootstrap ServiceAccount `namespace/name` (which `ocm-hub
/// --bootstrap-service-account` creates), valid for `expiration`.
pub async fn bootstrap_token(
    client: &Client,
    namespace: &str,
    name: &str,
    expiration: Duration,
) -> Result<String, SimError> {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![ocm_api::registration::BROKER_TOKEN_AUDIENCE.to_owned()],
            expiration_seconds: i64::try_from(expiration.as_secs()).ok(),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let issued = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .map_err(SimError::kube("requesting a bootstrap token"))?;
    issued
        .status
        .map(|s| s.token)
        .ok_or_else(|| SimError::Hub("the TokenRequest came back without a token".to_owned()))
}

/// The hub CA's certificate (PEM), what agents' bootstrap configs carry as `caData`.
pub async fn hub_ca_pem(client: &Client) -> Result<String, SimError> {
    let secret = Api::<Secret>::namespaced(client.clone(), HUB_NAMESPACE)
        .get(HUB_CA_SECRET)
        .await
        .map_err(SimError::kube("reading the hub CA Secret"))?;
    secret
        .data
        .and_then(|d| d.get("tls.crt").map(|b| b.0.clone()))
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            SimError::Hub(format!(
                "{HUB_NAMESPACE}/{HUB_CA_SECRET} has no PEM tls.crt"
            ))
        })
}

/// The HTTP status of GET `path` on 127.0.0.1:`port`, if it answered.
async fn http_status(port: u16, path: &str) -> Option<u16> {
    http_get(port, path).await.map(|(status, _)| status)
}

/// GET `path` on 127.0.0.1:`port` (plain HTTP/1.1, as the hub's and agent's health endpoints
/// serve it): the status and the body, if it answered.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    Some((status, body))
}

/// The bootstrap ServiceAccount a benchmark's hub creates, whose joins it approves by itself.
pub const BOOTSTRAP_NAMESPACE: &str = "open-cluster-management";
pub const BOOTSTRAP_SA: &str = "agent-registration-bootstrap";
pub const BOOTSTRAP_USER: &str =
    "system:serviceaccount:open-cluster-management:agent-registration-bootstrap";

/// A benchmark's hub: a test hub cluster named `name` and the `ocm-hub` beside the running
/// executable on it, auto-approving the bootstrap ServiceAccount's joins (OCM's
/// ManagedClusterAutoApproval), with `extra` arguments; its log `ocm-hub.log` in `logs`. First
/// checks that `spokes` connections fit under the open-files limit.
pub async fn start_bench_hub(
    name: &str,
    spokes: usize,
    extra: &[String],
    logs: &Path,
) -> Result<(Cluster, HubProcess), SimError> {
    let open_files = crate::raise_open_files_limit()?;
    let needed = u64::try_from(spokes)
        .unwrap_or(u64::MAX)
        .saturating_add(1_024);
    if open_files <= needed {
        return Err(SimError::Hub(format!(
            "{spokes} spokes need an open-files limit above {needed}; the hard limit is {open_files} (raise it with `ulimit -Hn` as root)"
        )));
    }
    let binary = HubProcess::binary_beside_current_exe()?;
    let cluster = Cluster::start(name).await?;
    let args: Vec<String> = [
        "--auto-approved-users".to_owned(),
        BOOTSTRAP_USER.to_owned(),
        "--bootstrap-service-account".to_owned(),
        format!("{BOOTSTRAP_NAMESPACE}/{BOOTSTRAP_SA}"),
    ]
    .into_iter()
    .chain(extra.iter().cloned())
    .collect();
    let hub = HubProcess::start(
        &binary,
        &cluster,
        &args,
        logs.join("ocm-hub.log"),
        Duration::from_secs(60),
    )
    .await?;
    Ok((cluster, hub))
}
