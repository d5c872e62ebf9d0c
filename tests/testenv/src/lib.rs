//! Real local Kubernetes clusters for ocm-rs' tests and local environment.
//!
//! A [`Cluster`] is etcd, kube-apiserver (RBAC, client-certificate authentication with its own
//! CA, a service-account issuer so TokenRequest and TokenReview work), kube-controller-manager
//! (garbage collector, namespace, deployment, replicaset, service-account and CSR-signing
//! controllers, …), kube-scheduler and kwok simulating Ready nodes — all real binaries from
//! [`ocm_testbins`], run as processes on 127.0.0.1 with free ports. Several clusters run side
//! by side, each with its own etcd, CA and directory.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ocm_testenv::TestEnvError> {
//! let cluster = ocm_testenv::Cluster::start("hub").await?;
//! let client = cluster.client()?;
//! // … use `client`, or hand `cluster.kubeconfig_path()` to a process …
//! cluster.stop();
//! # Ok(()) }
//! ```
//!
//! No process outlives its cluster: `stop`, `Drop` (including a panicking test's unwinding) and
//! the kernel's parent-death signal (when the test process itself is killed) all end them.

mod cluster;
mod error;
mod kubeconfig;
pub mod mosquitto;
pub mod ocm;
mod pki;
mod ports;
mod process;
pub mod relay;
pub mod tinyproxy;

pub use cluster::{Cluster, ClusterConfig, DIR_ENV, KEEP_ENV, KWOK_NODE_ANNOTATION, PROFILING_ENV};
pub use error::TestEnvError;
pub use mosquitto::Mosquitto;
pub use ocm_testbins::{Assets, AssetsError, AssetsLocation};
pub use ports::free_port;
pub use process::Process;
pub use relay::Relay;
pub use tinyproxy::{Tinyproxy, TinyproxyOptions};

/// Polls `check` every 100 ms until it yields a value, and panics naming `what` if none comes
/// within `within`: the "eventually" of tests against real clusters (never a timing assertion).
pub async fn eventually<T>(
    what: &str,
    within: std::time::Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never happened within {within:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
