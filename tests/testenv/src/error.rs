//! Errors of the test environment. Each names the cluster and component concerned and, where a
//! process misbehaved, carries the tail of its log so a failing test explains itself.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TestEnvError {
    /// Running ocm-rs itself (hub and agents) on the local clusters failed.
    #[error("ocm-rs on the local clusters: {0}")]
    Ocm(String),
    #[error(
        "invalid cluster name {0:?}: use a DNS label (lower-case letters, digits and '-', at most \
         40 characters)"
    )]
    InvalidName(String),
    #[error(transparent)]
    Assets(#[from] ocm_testbins::AssetsError),
    #[error(
        "`setpriv` (util-linux) is required to tie cluster processes to the test process so none \
         outlive it; install it with `apt-get install util-linux`: {0}"
    )]
    SetprivMissing(std::io::Error),
    #[error(
        "mosquitto is required for the MQTT tests; install it with `apt-get install mosquitto` \
         (`cargo xtask test` does)"
    )]
    MosquittoMissing,
    #[error(
        "tinyproxy is required for the proxy tests; install it with `apt-get install tinyproxy` \
         (`cargo xtask test` does)"
    )]
    TinyproxyMissing,
    #[error("cluster {cluster}: {what}: {error}")]
    Io {
        cluster: String,
        what: String,
        error: std::io::Error,
    },
    #[error("generating {what}: {detail}")]
    Pki { what: &'static str, detail: String },
    #[error("no free port on 127.0.0.1: {0}")]
    NoFreePort(std::io::Error),
    #[error("cluster {cluster}: starting {component} ({}): {error}", binary.display())]
    Spawn {
        cluster: String,
        component: &'static str,
        binary: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "cluster {cluster}: {component} exited during start-up ({status}); log {}:\n{log_tail}",
        log.display()
    )]
    ComponentExited {
        cluster: String,
        component: &'static str,
        status: String,
        log: PathBuf,
        log_tail: String,
    },
    #[error("cluster {cluster}: not ready after {timeout:?}: {waiting_for}\n{logs}")]
    StartTimeout {
        cluster: String,
        timeout: Duration,
        waiting_for: String,
        logs: String,
    },
    #[error("cluster {cluster}: kubeconfig: {detail}")]
    Kubeconfig { cluster: String, detail: String },
    #[error("cluster {cluster}: Kubernetes API call ({what}): {error}")]
    Kube {
        cluster: String,
        what: &'static str,
        error: kube::Error,
    },
}

use ocm_api::kube;
