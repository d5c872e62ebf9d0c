//! ocm-rs itself on local clusters, set up as a user would with `ocmctl` — through its own
//! library functions: `ocmctl init` on the hub (CRDs, bootstrap ServiceAccount, hub CA, a token),
//! `ocm-hub` started against it, `ocmctl join --local` for each managed cluster (an `ocm-agent`
//! with OCM's bootstrap config), and `ocmctl accept` once each has asked to join. Used by the
//! local environment (`cargo xtask up`) and its tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ocm_api::cluster::v1::{CONDITION_AVAILABLE, ManagedCluster};
use ocm_api::condition::{self, ConditionStatus};
use ocm_api::kube::Api;
use ocm_cli::hub::HubUrl;
use ocm_cli::join::JoinRequest;
use ocm_cli::local::LocalFiles;

use crate::{Cluster, Process, TestEnvError, free_port};

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

/// `ocmctl init` on `hub`, then `ocm-hub` against it, `ocmctl join --local` for each of
/// `managed` and `ocmctl accept` for each; waits (up to `timeout`) until all are Available.
/// Logs go to `dir/logs/`, each agent's bootstrap config and pid to `dir/agents/<cluster>/`
/// (so `ocmctl unjoin --state-dir dir/agents` finds them).
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
    let hub_url = HubUrl::parse(&format!("localhost:{grpc_port}"))
        .map_err(|e| TestEnvError::Ocm(e.to_string()))?;
    let deadline = tokio::time::Instant::now() + timeout;
    let client = hub.client()?;

    // `ocmctl init`: the token is valid for a week, as long as a local environment lives.
    let init = ocm_cli::init::init(
        &client,
        &ocm_cli::init::InitOptions {
            hub_url: hub_url.clone(),
            token_expiration: Duration::from_secs(7 * 24 * 3600),
        },
    )
    .await
    .map_err(|e| TestEnvError::Ocm(format!("ocmctl init: {e}")))?;

    // ocm-hub, reusing init's CA; joins are approved by `ocmctl accept` below, not by the hub.
    let hub_args: Vec<String> = vec![
        "--kubeconfig".into(),
        hub.kubeconfig_path().display().to_string(),
        "--grpc-listen".into(),
        format!("127.0.0.1:{grpc_port}"),
        "--health-listen".into(),
        format!("127.0.0.1:{health_port}"),
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
    // What `ocmctl init --wait` waits for: the broker serves with init's CA.
    loop {
        if let Some((_, hub_process)) = registration.processes.first_mut()
            && let Some(status) = hub_process.exited()
        {
            return Err(TestEnvError::Ocm(format!(
                "ocm-hub exited ({status}); see {}",
                logs.join("ocm-hub.log").display()
            )));
        }
        match ocm_cli::hub::probe(&hub_url, &init.ca_pem).await {
            Ok(()) => break,
            Err(e) if tokio::time::Instant::now() > deadline => {
                return Err(TestEnvError::Ocm(format!("ocm-hub did not serve: {e}")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }

    // `ocmctl join --local` on each managed cluster, with the agent tied to this supervisor.
    for cluster in managed {
        let request = JoinRequest::new(
            cluster.name(),
            hub_url.clone(),
            &init.join.hub_token,
            &init.join.ca_data,
        )
        .map_err(|e| TestEnvError::Ocm(format!("ocmctl join {}: {e}", cluster.name())))?;
        ocm_cli::join::preflight(&request)
            .await
            .map_err(|e| TestEnvError::Ocm(format!("ocmctl join {}: {e}", cluster.name())))?;
        let mut files = LocalFiles::new(&dir.join("agents"), cluster.name());
        files.log = logs.join(format!("ocm-agent-{}.log", cluster.name()));
        let fail = |e: ocm_cli::local::LocalError| {
            TestEnvError::Ocm(format!("ocmctl join --local {}: {e}", cluster.name()))
        };
        ocm_cli::local::write_bootstrap_config(&files, &request.bootstrap_config())
            .map_err(fail)?;
        let health = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let args = ocm_cli::local::agent_args(
            cluster.name(),
            &files,
            Some(cluster.kubeconfig_path()),
            health,
        );
        let agent = Process::spawn(
            cluster.name(),
            "ocm-agent",
            &binaries.agent,
            &args,
            files.log.clone(),
        )?;
        ocm_cli::local::record_pid(&files, agent.pid()).map_err(fail)?;
        registration
            .processes
            .push((format!("ocm-agent ({})", cluster.name()), agent));
    }

    // `ocmctl accept --wait`: the hub administrator's half of the double opt-in — approve each
    // agent's certificate request once it is there, and accept the cluster.
    let clusters: Api<ManagedCluster> = Api::all(client.clone());
    for cluster in managed {
        let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
        let options = ocm_cli::accept::AcceptOptions {
            wait,
            ..ocm_cli::accept::AcceptOptions::default()
        };
        ocm_cli::accept::accept(&client, cluster.name(), &options)
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

/// The main job's ManifestWork: an nginx Deployment (two replicas) with its replica counts fed
/// back (OCM's WellKnownStatus).
pub fn nginx_work(cluster: &str) -> ocm_api::work::v1::ManifestWork {
    use ocm_api::work::v1::{
        FeedbackRule, FeedbackType, Manifest, ManifestConfigOption, ResourceIdentifier,
    };
    let deployment = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}
            }
        }
    });
    let mut work = ocm_cli::works::work("nginx", cluster, &[Manifest(deployment)]);
    let mut feedback = ManifestConfigOption::new(ResourceIdentifier {
        group: "apps".into(),
        resource: "deployments".into(),
        name: "nginx".into(),
        namespace: "default".into(),
    });
    feedback.feedback_rules = vec![FeedbackRule {
        r#type: FeedbackType::WellKnownStatus,
        json_paths: Vec::new(),
    }];
    work.spec.manifest_configs = vec![feedback];
    work
}

/// Delivers [`nginx_work`] to `cluster` through the hub and waits until the hub shows it Applied
/// and Available with both replicas available.
pub async fn deliver_nginx(
    hub: &Cluster,
    cluster: &str,
    timeout: Duration,
) -> Result<(), TestEnvError> {
    use ocm_api::work::v1::{CONDITION_APPLIED, CONDITION_AVAILABLE, ManifestWork};
    let client = hub.client()?;
    let works: Api<ManifestWork> = Api::namespaced(client, cluster);
    let work = nginx_work(cluster);
    match works
        .create(&ocm_api::kube::api::PostParams::default(), &work)
        .await
    {
        Ok(_) => {}
        Err(ocm_api::kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => {
            return Err(TestEnvError::Ocm(format!(
                "creating the nginx ManifestWork: {error}"
            )));
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(Some(work)) = works.get_opt("nginx").await {
            let status = work.status.clone().unwrap_or_default();
            let is_true = |t: &str| {
                condition::find(&status.conditions, t)
                    .is_some_and(|c| c.status == ConditionStatus::True)
            };
            let available = status
                .resource_status
                .manifests
                .iter()
                .flat_map(|m| &m.status_feedback.values)
                .find(|v| v.name == "AvailableReplicas")
                .and_then(|v| v.field_value.integer);
            if is_true(CONDITION_APPLIED) && is_true(CONDITION_AVAILABLE) && available == Some(2) {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(TestEnvError::Ocm(format!(
                "the nginx ManifestWork for {cluster} never became Applied and Available with 2 replicas"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn io(what: &str, error: &std::io::Error) -> TestEnvError {
    TestEnvError::Ocm(format!("{what}: {error}"))
}
