//! A real local Kubernetes cluster made of processes: etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler and kwok with simulated nodes.

use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ocm_api::k8s_openapi::api::core::v1::{Node, ServiceAccount};
use ocm_api::kube::api::PostParams;
use ocm_api::kube::config::{KubeConfigOptions, Kubeconfig};
use ocm_api::kube::{self, Api, Client};
use ocm_testbins::Assets;

use crate::error::TestEnvError;
use crate::kubeconfig;
use crate::pki::{CertAndKey, ClientIdentity, ClusterCa, ServiceAccountKey};
use crate::ports::free_port;
use crate::process::{Process, log_tail};

/// Environment variable: parent directory of per-cluster directories (default
/// `$TMPDIR/ocm-testenv`).
pub const DIR_ENV: &str = "OCM_TESTENV_DIR";
/// Environment variable: when set to `1`, cluster directories (logs, certificates, etcd data)
/// are kept even after a clean stop.
pub const KEEP_ENV: &str = "OCM_TESTENV_KEEP";

/// With `OCM_TESTENV_PROFILING=1` the apiserver serves `/debug/pprof` (off by default: it is
/// for finding where a benchmark's apiserver CPU goes, e.g.
/// `kubectl get --raw '/debug/pprof/profile?seconds=20'`).
pub const PROFILING_ENV: &str = "OCM_TESTENV_PROFILING";

/// Annotation kwok selects the nodes it simulates by.
pub const KWOK_NODE_ANNOTATION: (&str, &str) = ("kwok.x-k8s.io/node", "fake");

const START_ATTEMPTS: usize = 3;
const POLL: Duration = Duration::from_millis(50);

/// How to start a cluster. `ClusterConfig::new("hub")` is a one-node cluster in a fresh
/// directory under `$OCM_TESTENV_DIR`.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    name: String,
    nodes: usize,
    dir: Option<PathBuf>,
    start_timeout: Duration,
    cert_validity: time::Duration,
    assets: Option<Assets>,
}

impl ClusterConfig {
    /// A cluster called `name` (a DNS label: lower-case letters, digits and `-`).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            nodes: 1,
            dir: None,
            start_timeout: Duration::from_secs(120),
            cert_validity: time::Duration::days(30),
            assets: None,
        }
    }

    /// Number of kwok-simulated nodes (at least one).
    pub fn nodes(mut self, nodes: usize) -> Self {
        self.nodes = nodes.max(1);
        self
    }

    /// Use exactly this directory for the cluster's files (emptied first), rather than a fresh
    /// one under `$OCM_TESTENV_DIR`.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Lifetime of the cluster's CA and certificates (default 30 days).
    pub fn cert_validity(mut self, validity: time::Duration) -> Self {
        self.cert_validity = validity;
        self
    }

    /// Use these binaries instead of looking them up from the environment.
    pub fn assets(mut self, assets: Assets) -> Self {
        self.assets = Some(assets);
        self
    }

    fn validate(&self) -> Result<(), TestEnvError> {
        let valid = !self.name.is_empty()
            && self.name.len() <= 40
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !self.name.starts_with('-')
            && !self.name.ends_with('-');
        if valid {
            Ok(())
        } else {
            Err(TestEnvError::InvalidName(self.name.clone()))
        }
    }

    fn resolve_dir(&self) -> PathBuf {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        if let Some(dir) = &self.dir {
            return dir.clone();
        }
        let base = std::env::var_os(DIR_ENV)
            .filter(|v| !v.is_empty())
            .map_or_else(|| std::env::temp_dir().join("ocm-testenv"), PathBuf::from);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        base.join(format!("{}-{}-{n}", self.name, std::process::id()))
    }
}

/// A running cluster. Dropping it kills every process; if the thread is panicking (a failing
/// test), the components' log tails are printed and the directory is kept for inspection.
#[derive(Debug)]
pub struct Cluster {
    name: String,
    dir: PathBuf,
    server: String,
    kubeconfig_path: PathBuf,
    kube_config: kube::Config,
    ca: ClusterCa,
    node_names: Vec<String>,
    processes: Vec<Process>,
    start_timeout: Duration,
    keep_dir: bool,
    stopped: bool,
}

/// Files of one start attempt, shared by the component launchers.
struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn logs(&self, component: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{component}.log"))
    }
    fn pki(&self, file: &str) -> PathBuf {
        self.dir.join("pki").join(file)
    }
    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
    fn arg(flag: &str, path: &Path) -> String {
        format!("--{flag}={}", path.display())
    }
}

impl Cluster {
    /// Starts a one-node cluster called `name` with default settings.
    pub async fn start(name: &str) -> Result<Self, TestEnvError> {
        Self::start_with(ClusterConfig::new(name)).await
    }

    /// Starts a cluster and returns once the apiserver is ready, every node is Ready and the
    /// controller manager has created the `default` ServiceAccount.
    ///
    /// A port taken by another process between choosing and binding it is retried with new
    /// ports.
    pub async fn start_with(config: ClusterConfig) -> Result<Self, TestEnvError> {
        config.validate()?;
        // kube's TLS uses rustls; ring is the only provider in the build, installed once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let assets = match &config.assets {
            Some(assets) => assets.clone(),
            None => Assets::from_env()?,
        };
        let mut attempt = 1;
        loop {
            match Self::start_once(&config, &assets).await {
                Err(TestEnvError::ComponentExited { ref log_tail, .. })
                    if attempt < START_ATTEMPTS && log_tail.contains("address already in use") =>
                {
                    tracing::warn!(cluster = %config.name, attempt, "a port was taken; retrying");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn start_once(config: &ClusterConfig, assets: &Assets) -> Result<Self, TestEnvError> {
        let started = Instant::now();
        let deadline = started + config.start_timeout;
        let name = config.name.clone();
        let layout = Layout {
            dir: config.resolve_dir(),
        };
        let io = |what: &str| {
            let what = what.to_owned();
            let cluster = name.clone();
            move |error| TestEnvError::Io {
                cluster,
                what,
                error,
            }
        };
        match std::fs::remove_dir_all(&layout.dir) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("clearing its directory")(err));
            }
            _ => {}
        }
        for sub in ["logs", "pki", "etcd"] {
            // 0700: etcd refuses to trust a data directory others can read, and pki holds keys.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(layout.dir.join(sub))
                .map_err(io("creating its directory"))?;
        }

        let etcd_port = free_port()?;
        let etcd_peer_port = free_port()?;
        let api_port = free_port()?;
        let server = format!("https://127.0.0.1:{api_port}");

        let (ca, admin_yaml) = write_credentials(&layout, &name, &server, config.cert_validity)?;
        let kube_config = client_config(&name, &admin_yaml).await?;

        let mut cluster = Self {
            name: name.clone(),
            dir: layout.dir.clone(),
            server: server.clone(),
            kubeconfig_path: layout.path("kubeconfig"),
            kube_config,
            ca,
            node_names: (0..config.nodes)
                .map(|i| format!("{name}-node-{i}"))
                .collect(),
            processes: Vec::new(),
            start_timeout: config.start_timeout,
            keep_dir: std::env::var(KEEP_ENV).is_ok_and(|v| v == "1"),
            stopped: false,
        };
        // From here on, a failure drops `cluster`, which kills what was started; keep the
        // directory so its logs can be read.
        let result = cluster
            .launch(
                &layout,
                assets,
                etcd_port,
                etcd_peer_port,
                api_port,
                deadline,
            )
            .await;
        match result {
            Ok(()) => {
                tracing::info!(
                    cluster = %name,
                    server = %server,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "cluster ready"
                );
                Ok(cluster)
            }
            Err(err) => {
                cluster.keep_dir = true;
                Err(err)
            }
        }
    }

    async fn launch(
        &mut self,
        layout: &Layout,
        assets: &Assets,
        etcd_port: u16,
        etcd_peer_port: u16,
        api_port: u16,
        deadline: Instant,
    ) -> Result<(), TestEnvError> {
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer_port}");
        let etcd_args = vec![
            format!("--name={}", self.name),
            Layout::arg("data-dir", &layout.path("etcd")),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster={}={peer_url}", self.name),
            // The data is thrown away with the cluster; fsync would only cost time.
            "--unsafe-no-fsync=true".to_owned(),
            "--log-level=warn".to_owned(),
        ];
        self.spawn(layout, "etcd", &assets.etcd, &etcd_args)?;
        self.wait_for("etcd to accept connections", deadline, || {
            let ready = TcpStream::connect((Ipv4Addr::LOCALHOST, etcd_port)).is_ok();
            async move { ready }
        })
        .await?;

        let apiserver_args = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            format!("--secure-port={api_port}"),
            Layout::arg("cert-dir", &layout.pki("")),
            Layout::arg("tls-cert-file", &layout.pki("apiserver.crt")),
            Layout::arg("tls-private-key-file", &layout.pki("apiserver.key")),
            Layout::arg("client-ca-file", &layout.pki("ca.crt")),
            "--authorization-mode=RBAC".to_owned(),
            format!("--service-account-issuer={}", self.server),
            Layout::arg("service-account-key-file", &layout.pki("sa.pub")),
            Layout::arg("service-account-signing-key-file", &layout.pki("sa.key")),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            "--allow-privileged=true".to_owned(),
            format!(
                "--profiling={}",
                std::env::var(PROFILING_ENV).is_ok_and(|v| v == "1")
            ),
            // The `kubernetes` Service cannot point at a loopback address (the apiserver would
            // log a validation error every few seconds), and nothing in the cluster dials it:
            // kwok's pods never run code.
            "--endpoint-reconciler-type=none".to_owned(),
        ];
        self.spawn(
            layout,
            "kube-apiserver",
            &assets.kube_apiserver,
            &apiserver_args,
        )?;
        let client = self.client_at("connecting to the apiserver")?;
        self.wait_for("kube-apiserver /readyz", deadline, || {
            let client = client.clone();
            async move { readyz(&client).await }
        })
        .await?;

        let kcm_args = vec![
            Layout::arg("kubeconfig", &layout.path("kcm.kubeconfig")),
            "--secure-port=0".to_owned(),
            "--leader-elect=false".to_owned(),
            // All controllers act as the manager's own (system:masters) identity. kubeadm gives
            // each controller its own ServiceAccount instead, but minting those credentials
            // one controller at a time delays the manager's start by about 5 s per cluster,
            // and no ocm-rs test is about the controller manager's own permissions.
            "--use-service-account-credentials=false".to_owned(),
            Layout::arg("service-account-private-key-file", &layout.pki("sa.key")),
            Layout::arg("root-ca-file", &layout.pki("ca.crt")),
            Layout::arg("cluster-signing-cert-file", &layout.pki("ca.crt")),
            Layout::arg("cluster-signing-key-file", &layout.pki("ca.key")),
            format!("--cluster-name={}", self.name),
        ];
        self.spawn(
            layout,
            "kube-controller-manager",
            &assets.kube_controller_manager,
            &kcm_args,
        )?;
        let scheduler_args = vec![
            Layout::arg("kubeconfig", &layout.path("scheduler.kubeconfig")),
            "--secure-port=0".to_owned(),
            "--leader-elect=false".to_owned(),
        ];
        self.spawn(
            layout,
            "kube-scheduler",
            &assets.kube_scheduler,
            &scheduler_args,
        )?;
        let kwok_args = vec![
            Layout::arg("kubeconfig", &layout.path("kwok.kubeconfig")),
            Layout::arg("config", &assets.kwok_stages),
            "--manage-all-nodes=false".to_owned(),
            format!(
                "--manage-nodes-with-annotation-selector={}={}",
                KWOK_NODE_ANNOTATION.0, KWOK_NODE_ANNOTATION.1
            ),
            "--cidr=10.244.0.0/16".to_owned(),
            "--node-ip=10.200.0.1".to_owned(),
            "--node-lease-duration-seconds=40".to_owned(),
        ];
        self.spawn(layout, "kwok", &assets.kwok, &kwok_args)?;

        let nodes: Api<Node> = Api::all(client.clone());
        for node_name in &self.node_names {
            let node = kwok_node(node_name);
            nodes
                .create(&PostParams::default(), &node)
                .await
                .map_err(|error| TestEnvError::Kube {
                    cluster: self.name.clone(),
                    what: "creating a kwok node",
                    error,
                })?;
        }
        let node_names = self.node_names.clone();
        self.wait_for("every kwok node to be Ready", deadline, || {
            let nodes = nodes.clone();
            let node_names = node_names.clone();
            async move {
                for name in &node_names {
                    match nodes.get_opt(name).await {
                        Ok(Some(node)) if node_is_ready(&node) => {}
                        _ => return false,
                    }
                }
                true
            }
        })
        .await?;
        let accounts: Api<ServiceAccount> = Api::namespaced(client, "default");
        self.wait_for(
            "the controller manager to create ServiceAccount default/default",
            deadline,
            || {
                let accounts = accounts.clone();
                async move { matches!(accounts.get_opt("default").await, Ok(Some(_))) }
            },
        )
        .await
    }

    fn spawn(
        &mut self,
        layout: &Layout,
        component: &'static str,
        binary: &Path,
        args: &[String],
    ) -> Result<(), TestEnvError> {
        let process = Process::spawn(&self.name, component, binary, args, layout.logs(component))?;
        tracing::debug!(cluster = %self.name, component, pid = process.pid(), "started");
        self.processes.push(process);
        Ok(())
    }

    /// Polls `ready` until it holds, failing early if any component exits and with every
    /// component's log tail on timeout.
    async fn wait_for<F, Fut>(
        &mut self,
        what: &str,
        deadline: Instant,
        mut ready: F,
    ) -> Result<(), TestEnvError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let waiting_since = Instant::now();
        loop {
            self.check_running()?;
            if ready().await {
                let waited_ms =
                    u64::try_from(waiting_since.elapsed().as_millis()).unwrap_or(u64::MAX);
                tracing::debug!(cluster = %self.name, waited_ms, "{what}: done");
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(TestEnvError::StartTimeout {
                    cluster: self.name.clone(),
                    timeout: self.start_timeout,
                    waiting_for: what.to_owned(),
                    logs: self.log_tails(20),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn check_running(&mut self) -> Result<(), TestEnvError> {
        let name = self.name.clone();
        self.processes
            .iter_mut()
            .try_for_each(|p| p.check_running(&name))
    }

    fn client_at(&self, what: &'static str) -> Result<Client, TestEnvError> {
        Client::try_from(self.kube_config.clone()).map_err(|error| TestEnvError::Kube {
            cluster: self.name.clone(),
            what,
            error,
        })
    }

    /// The cluster's name (also its kubeconfig context).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new admin client (`system:masters`). A new one per call, because a kube `Client`
    /// belongs to the Tokio runtime it was made on.
    pub fn client(&self) -> Result<Client, TestEnvError> {
        self.client_at("building an admin client")
    }

    /// The admin client configuration.
    pub fn kube_config(&self) -> &kube::Config {
        &self.kube_config
    }

    /// The admin kubeconfig file (context named after the cluster).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// A kubeconfig for a user authenticated by a client certificate of this cluster's CA, with
    /// only the rights RBAC grants it.
    pub fn kubeconfig_for(&self, user: &str, groups: &[&str]) -> Result<String, TestEnvError> {
        let cert = self.ca.issue_client(ClientIdentity { user, groups })?;
        Ok(kubeconfig::render(
            &self.name,
            &self.server,
            &self.ca.cert_pem(),
            user,
            &cert,
        ))
    }

    /// The cluster CA certificate (PEM): it signs the apiserver's serving certificate, client
    /// certificates, and CSRs approved for `kubernetes.io/kube-apiserver-client`.
    pub fn ca_pem(&self) -> String {
        self.ca.cert_pem()
    }

    /// A service-account token (JWT, ES256) with `claims`, signed with the key this cluster's
    /// apiserver issues tokens with — so a test can present a token the apiserver could have
    /// issued but no longer accepts, such as one that has expired. `iss` is filled in.
    pub fn sign_service_account_token(
        &self,
        claims: &serde_json::Value,
    ) -> Result<String, TestEnvError> {
        use base64::Engine as _;
        let pki = |detail: String| TestEnvError::Pki {
            what: "service-account token",
            detail,
        };
        let pem = std::fs::read_to_string(self.dir.join("pki").join("sa.key"))
            .map_err(|e| pki(format!("reading sa.key: {e}")))?;
        let der = rcgen::KeyPair::from_pem(&pem)
            .map_err(|e| pki(e.to_string()))?
            .serialize_der();
        let rng = ring::rand::SystemRandom::new();
        let key = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &der,
            &rng,
        )
        .map_err(|e| pki(e.to_string()))?;
        let mut claims = claims.clone();
        if let Some(object) = claims.as_object_mut() {
            object.insert("iss".to_owned(), self.server.clone().into());
        }
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let signed = format!(
            "{}.{}",
            b64.encode(br#"{"alg":"ES256","typ":"JWT"}"#),
            b64.encode(claims.to_string())
        );
        let signature = key
            .sign(&rng, signed.as_bytes())
            .map_err(|e| pki(e.to_string()))?;
        Ok(format!("{signed}.{}", b64.encode(signature.as_ref())))
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> &str {
        &self.server
    }

    /// The directory holding the cluster's logs, certificates and etcd data.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The kwok-simulated nodes.
    pub fn node_names(&self) -> &[String] {
        &self.node_names
    }

    /// `(component, pid)` of every process of the cluster.
    pub fn components(&self) -> Vec<(&'static str, u32)> {
        self.processes
            .iter()
            .map(|p| (p.component(), p.pid()))
            .collect()
    }

    /// Components that have exited (a healthy cluster has none).
    pub fn exited_components(&mut self) -> Vec<&'static str> {
        self.processes
            .iter_mut()
            .filter_map(|p| p.exited().map(|_| p.component()))
            .collect()
    }

    /// The last `lines` lines of every component's log, headed by the component name.
    pub fn log_tails(&self, lines: usize) -> String {
        self.processes
            .iter()
            .map(|p| {
                format!(
                    "--- {} ({}) ---\n{}",
                    p.component(),
                    p.log().display(),
                    log_tail(p.log(), lines)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Kills every process and removes the cluster's directory (kept if `OCM_TESTENV_KEEP=1`).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        // Reverse start order: clients of the apiserver first, etcd last. Nothing is kept, so
        // there is no graceful shutdown to wait for.
        while let Some(mut process) = self.processes.pop() {
            process.stop(Duration::ZERO);
        }
        if self.keep_dir {
            tracing::info!(cluster = %self.name, dir = %self.dir.display(), "cluster directory kept");
        } else if let Err(err) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(cluster = %self.name, dir = %self.dir.display(), %err, "cannot remove cluster directory");
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.stopped {
            self.keep_dir = true;
            // Printed into the failing test's captured output, which cargo shows.
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "=== cluster {} failed; directory kept at {}\n{}",
                    self.name,
                    self.dir.display(),
                    self.log_tails(40)
                );
            }
        }
        self.shutdown();
    }
}

/// Generates the cluster's CA, serving certificate, service-account key and one client
/// certificate per component, and writes them with the components' kubeconfigs into `layout`.
/// Returns the CA and the admin kubeconfig.
fn write_credentials(
    layout: &Layout,
    cluster: &str,
    server: &str,
    validity: time::Duration,
) -> Result<(ClusterCa, String), TestEnvError> {
    let ca = ClusterCa::generate(cluster, validity)?;
    let serving = ca.issue_server(
        "kube-apiserver",
        &[
            "127.0.0.1",
            "localhost",
            "10.0.0.1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ],
    )?;
    let sa_key = ServiceAccountKey::generate()?;
    let write = |path: PathBuf, text: &str| {
        std::fs::write(&path, text).map_err(|error| TestEnvError::Io {
            cluster: cluster.to_owned(),
            what: format!("writing {}", path.display()),
            error,
        })
    };
    let ca_pem = ca.cert_pem();
    write(layout.pki("ca.crt"), &ca_pem)?;
    write(layout.pki("ca.key"), ca.key_pem())?;
    write(layout.pki("apiserver.crt"), &serving.cert_pem)?;
    write(layout.pki("apiserver.key"), &serving.key_pem)?;
    write(layout.pki("sa.key"), &sa_key.private_pem)?;
    write(layout.pki("sa.pub"), &sa_key.public_pem)?;
    let identities: [(&str, ClientIdentity<'_>); 4] = [
        (
            "kubeconfig",
            ClientIdentity {
                user: "ocm-testenv-admin",
                groups: &["system:masters"],
            },
        ),
        (
            "kcm.kubeconfig",
            ClientIdentity {
                user: "system:kube-controller-manager",
                groups: &["system:masters"],
            },
        ),
        (
            "scheduler.kubeconfig",
            ClientIdentity {
                user: "system:kube-scheduler",
                groups: &[],
            },
        ),
        (
            "kwok.kubeconfig",
            ClientIdentity {
                user: "kwok-controller",
                groups: &["system:masters"],
            },
        ),
    ];
    let mut admin_yaml = String::new();
    for (file, identity) in identities {
        let label = if file == "kubeconfig" {
            "admin"
        } else {
            identity.user
        };
        let cert: CertAndKey = ca.issue_client(identity)?;
        let yaml = kubeconfig::render(cluster, server, &ca_pem, label, &cert);
        write(layout.path(file), &yaml)?;
        if file == "kubeconfig" {
            admin_yaml = yaml;
        }
    }
    Ok((ca, admin_yaml))
}

async fn client_config(cluster: &str, yaml: &str) -> Result<kube::Config, TestEnvError> {
    let error = |detail: String| TestEnvError::Kubeconfig {
        cluster: cluster.to_owned(),
        detail,
    };
    let kubeconfig = Kubeconfig::from_yaml(yaml).map_err(|e| error(e.to_string()))?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| error(e.to_string()))
}

async fn readyz(client: &Client) -> bool {
    let Ok(request) = http::Request::get("/readyz").body(Vec::new()) else {
        return false;
    };
    matches!(client.request_text(request).await, Ok(body) if body.trim() == "ok")
}

fn node_is_ready(node: &Node) -> bool {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A Node for kwok to simulate. Capacity is given, as a kubelet would report it.
fn kwok_node(name: &str) -> Node {
    let resources = serde_json::json!({ "cpu": "32", "memory": "256Gi", "pods": "110" });
    let node = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {
                KWOK_NODE_ANNOTATION.0: KWOK_NODE_ANNOTATION.1,
                "node.alpha.kubernetes.io/ttl": "0",
            },
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/agent": "",
            },
        },
        "status": { "allocatable": resources, "capacity": resources },
    });
    // The JSON above is a constant shape; it always deserializes.
    serde_json::from_value(node).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_must_be_dns_labels() {
        for bad in ["", "Hub", "hub_1", "-hub", "hub-", "a.b", &"x".repeat(41)] {
            assert!(
                ClusterConfig::new(bad).validate().is_err(),
                "{bad:?} accepted"
            );
        }
        for good in ["hub", "cluster1", "my-spoke-2"] {
            assert!(
                ClusterConfig::new(good).validate().is_ok(),
                "{good:?} refused"
            );
        }
    }

    #[test]
    fn kwok_node_is_annotated_for_kwok_and_reports_capacity() {
        let node = kwok_node("c1-node-0");
        let annotations = node.metadata.annotations.unwrap();
        assert_eq!(
            annotations.get(KWOK_NODE_ANNOTATION.0).map(String::as_str),
            Some("fake")
        );
        let capacity = node.status.unwrap().capacity.unwrap();
        assert_eq!(capacity["pods"].0, "110");
    }

    #[test]
    fn default_directories_are_unique_per_cluster() {
        let a = ClusterConfig::new("hub").resolve_dir();
        let b = ClusterConfig::new("hub").resolve_dir();
        assert_ne!(a, b);
        assert_eq!(
            ClusterConfig::new("hub").dir("/x/y").resolve_dir(),
            PathBuf::from("/x/y")
        );
    }
}
