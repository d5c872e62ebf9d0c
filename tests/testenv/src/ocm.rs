//! ocm-rs itself on local clusters: `ocm-hub` on the hub cluster (with its bootstrap
//! ServiceAccount), an `ocm-agent` per managed cluster joining with that account's token, and
//! the clusters accepted — what a user would do with `ocmctl init`, `join` and `accept`. Used by
//! the local environment (`cargo xtask up`) and its tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use ocm_api::cluster::v1::{CONDITION_AVAILABLE, ManagedCluster};
use ocm_api::condition::{self, ConditionStatus};
use ocm_api::k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use ocm_api::k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use ocm_api::kube::Api;
use ocm_api::kube::api::PostParams;

use crate::{Cluster, Process, TestEnvError, free_port};

const BOOTSTRAP_NAMESPACE: &str = "open-cluster-management";
const BOOTSTRAP_ACCOUNT: &str = "agent-registration-bootstrap";

/// Where the ocm-rs binaries are.
#[derive(Debug, Clone)]
pub struct OcmBinaries {
    pub hub: PathBuf,
    pub agent: PathBuf,
}

impl OcmBinaries {
    /// `ocm-hub` and `ocm-agent` beside the running executable's build directory
    /// (`target/<profile>/`), where `cargo build` puts them.
    pub fn beside_current_exe() -> Result<Self, TestEnvError> {
        let exe = std::env::current_exe()
            .map_err(|e| missing(PathBuf::from("current exe"), &e.to_string()))?;
        let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let binaries = Self {
            hub: dir.join("ocm-hub"),
            agent: dir.join("ocm-agent"),
        };
        for binary in [&binaries.hub, &binaries.agent] {
            if !binary.exists() {
                return Err(missing(binary.clone(), "not built"));
            }
        }
        Ok(binaries)
    }
}

fn missing(path: PathBuf, detail: &str) -> TestEnvError {
    TestEnvError::Ocm(format!(
        "{} ({detail}): build ocm-rs first with `cargo build -p ocm-hub-server -p ocm-spoke-agent` (`cargo xtask up` and `cargo xtask test` do)",
        path.display()
    ))
}

/// The running hub and agents.
#[derive(Debug)]
pub struct Registration {
    pub processes: Vec<(String, Process)>,
    pub grpc_port: u16,
}

impl Registration {
    /// `(name, pid)` of every process.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.processes
            .iter()
            .map(|(name, p)| (name.clone(), p.pid()))
            .collect()
    }

    pub fn stop(&mut self) {
        // Agents first, so none reports to a hub that is going away.
        for (_, process) in self.processes.iter_mut().rev() {
            process.stop(Duration::from_secs(5));
        }
    }
}

/// Starts `ocm-hub` on `hub`, an `ocm-agent` for each of `managed`, accepts every cluster and
/// waits (up to `timeout`) until all are Available. Logs go to `dir/logs/`.
pub async fn start(
    binaries: &OcmBinaries,
    hub: &Cluster,
    managed: &[&Cluster],
    dir: &Path,
    timeout: Duration,
) -> Result<Registration, TestEnvError> {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| io("creating the log directory", &e))?;
    let (grpc_port, health_port) = (free_port()?, free_port()?);
    let bootstrap_user = format!("system:serviceaccount:{BOOTSTRAP_NAMESPACE}:{BOOTSTRAP_ACCOUNT}");
    let hub_args: Vec<String> = vec![
        "--kubeconfig".into(),
        hub.kubeconfig_path().display().to_string(),
        "--grpc-listen".into(),
        format!("127.0.0.1:{grpc_port}"),
        "--health-listen".into(),
        format!("127.0.0.1:{health_port}"),
        "--bootstrap-service-account".into(),
        format!("{BOOTSTRAP_NAMESPACE}/{BOOTSTRAP_ACCOUNT}"),
        "--auto-approved-users".into(),
        bootstrap_user,
    ];
    let mut registration = Registration {
        processes: vec![(
            "ocm-hub".to_owned(),
            Process::spawn(
                hub.name(),
                "ocm-hub",
                &binaries.hub,
                &hub_args,
                logs.join("ocm-hub.log"),
            )?,
        )],
        grpc_port,
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let client = hub.client()?;
    // The hub is ready once its CA exists and its bootstrap ServiceAccount is there.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "open-cluster-management-hub");
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), BOOTSTRAP_NAMESPACE);
    let ca = loop {
        if let Some((_, hub_process)) = registration.processes.first_mut()
            && let Some(status) = hub_process.exited()
        {
            return Err(TestEnvError::Ocm(format!(
                "ocm-hub exited ({status}); see {}",
                logs.join("ocm-hub.log").display()
            )));
        }
        let ca = secrets.get_opt("ocm-hub-ca").await.ok().flatten();
        let account = accounts.get_opt(BOOTSTRAP_ACCOUNT).await.ok().flatten();
        if let (Some(ca), Some(_)) = (ca, account)
            && let Some(cert) = ca.data.as_ref().and_then(|d| d.get("tls.crt"))
            && tcp_open(grpc_port).await
        {
            break cert.0.clone();
        }
        if tokio::time::Instant::now() > deadline {
            return Err(TestEnvError::Ocm("ocm-hub did not become ready".into()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let token = accounts
        .create_token_request(
            BOOTSTRAP_ACCOUNT,
            &PostParams::default(),
            &TokenRequest {
                spec: TokenRequestSpec {
                    expiration_seconds: Some(7 * 24 * 3600),
                    ..TokenRequestSpec::default()
                },
                ..TokenRequest::default()
            },
        )
        .await
        .map_err(|e| TestEnvError::Ocm(format!("bootstrap token: {e}")))?
        .status
        .map(|s| s.token)
        .unwrap_or_default();
    let bootstrap = dir.join("bootstrap-config.yaml");
    let ca_data = base64::engine::general_purpose::STANDARD.encode(&ca);
    std::fs::write(
        &bootstrap,
        format!("url: localhost:{grpc_port}\ncaData: {ca_data}\ntoken: {token}\n"),
    )
    .map_err(|e| io("writing the bootstrap config", &e))?;

    for cluster in managed {
        let args: Vec<String> = vec![
            "--cluster-name".into(),
            cluster.name().to_owned(),
            "--bootstrap-config".into(),
            bootstrap.display().to_string(),
            "--kubeconfig".into(),
            cluster.kubeconfig_path().display().to_string(),
            "--health-listen".into(),
            format!("127.0.0.1:{}", free_port()?),
        ];
        let log = logs.join(format!("ocm-agent-{}.log", cluster.name()));
        let agent = Process::spawn(cluster.name(), "ocm-agent", &binaries.agent, &args, log)?;
        registration
            .processes
            .push((format!("ocm-agent ({})", cluster.name()), agent));
    }

    // The hub administrator's half of the double opt-in, with ocmctl's own code.
    let clusters: Api<ManagedCluster> = Api::all(client.clone());
    for cluster in managed {
        let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
        ocm_cli::accept::accept(&client, cluster.name(), wait)
            .await
            .map_err(|e| TestEnvError::Ocm(e.to_string()))?;
    }
    for cluster in managed {
        let name = cluster.name();
        loop {
            let available = clusters
                .get_opt(name)
                .await
                .ok()
                .flatten()
                .and_then(|c| c.status)
                .and_then(|s| {
                    condition::find(&s.conditions, CONDITION_AVAILABLE).map(|c| c.status)
                });
            if available == Some(ConditionStatus::True) {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(TestEnvError::Ocm(format!(
                    "{name} never became Available; see {}",
                    logs.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(registration)
}

async fn tcp_open(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

fn io(what: &str, error: &std::io::Error) -> TestEnvError {
    TestEnvError::Ocm(format!("{what}: {error}"))
}
