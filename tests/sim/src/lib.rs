//! Simulated spokes against a real `ocm-hub`, for scale benchmarks (issue 4's registration
//! benchmark; issue 6's scale harness grows from here).
//!
//! A simulated spoke is the agent without its managed cluster: it joins through
//! [`ocm_spoke_agent::bootstrap::bootstrap`] — its own ECDSA key and CSR, approved and signed by
//! the hub — then keeps its own mutual-TLS connection ([`ocm_transport::client::open`]),
//! subscribed to its ManagedCluster and lease, renews the lease with the agent's own
//! [`ocm_spoke_agent::agent::renew`] and reports status with the agent's own
//! [`ocm_spoke_agent::agent::report_observed`], from an in-memory [`model::ClusterModel`] instead
//! of a spoke apiserver. Thousands run in one process ([`spoke::run`] is one task's worth).
//!
//! A benchmark that needs more spokes than the registration flow can admit in its time budget
//! gives them identities directly from the hub's CA ([`identity::Issuer`]); everything after
//! that is the same.
//!
//! Around it: the real `ocm-hub` binary as a child process ([`hub::HubProcess`]), real
//! `ocm-agent` processes on real managed clusters for the benchmarks that need the whole agent
//! ([`agent::AgentProcess`]), and what the benchmarks read of the machine — resident memory and CPU time of a process, the apiserver's
//! request and storage counters ([`measure`]).

pub mod agent;
pub mod fleet;
pub mod hub;
pub mod identity;
pub mod measure;
pub mod model;
pub mod spoke;
pub mod works;

/// What can go wrong around the simulated spokes (the spokes' own errors are
/// [`spoke::SpokeError`]).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(
        "{path} is missing: build the hub first with `cargo build {profile}-p ocm-hub-server --bin ocm-hub`"
    )]
    HubBinaryMissing {
        path: std::path::PathBuf,
        profile: &'static str,
    },
    #[error(
        "{path} is missing: build it first with `cargo build {profile}-p {package} --bin {bin}`"
    )]
    BinaryMissing {
        path: std::path::PathBuf,
        profile: &'static str,
        package: &'static str,
        bin: &'static str,
    },
    #[error("ocm-hub: {0}")]
    Hub(String),
    #[error(transparent)]
    TestEnv(#[from] ocm_testenv::TestEnvError),
    #[error("the hub cluster: {what}: {source}")]
    Kube {
        what: &'static str,
        #[source]
        source: Box<ocm_api::kube::Error>,
    },
    #[error("reading {path}: {source}")]
    Proc {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: unexpected content: {detail}")]
    ProcFormat { path: String, detail: String },
    #[error("issuing a client certificate: {0}")]
    Certificate(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("{failed} simulated spokes failed; the first: {first}")]
    Spokes { failed: usize, first: String },
    #[error("raising the open-files limit: {0}")]
    Rlimit(#[source] nix::Error),
}

impl SimError {
    fn kube(what: &'static str) -> impl FnOnce(ocm_api::kube::Error) -> Self {
        move |source| Self::Kube {
            what,
            source: Box::new(source),
        }
    }
}

/// The binary `bin` (of the workspace package `package`) beside the running executable's build
/// directory (`target/<profile>/`), where `cargo build` puts it.
pub fn binary_beside_current_exe(
    bin: &'static str,
    package: &'static str,
) -> Result<std::path::PathBuf, SimError> {
    let exe = std::env::current_exe().map_err(|source| SimError::Proc {
        path: "current exe".to_owned(),
        source,
    })?;
    let mut dir = exe
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(bin);
    if path.exists() {
        Ok(path)
    } else {
        Err(SimError::BinaryMissing {
            profile: if dir.ends_with("release") {
                "--release "
            } else {
                ""
            },
            path,
            package,
            bin,
        })
    }
}

/// Raises this process's soft open-files limit to its hard limit (children inherit it): each
/// simulated spoke holds a socket here and one in the hub. Returns the new soft limit.
pub fn raise_open_files_limit() -> Result<u64, SimError> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(SimError::Rlimit)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(SimError::Rlimit)?;
    Ok(hard)
}
