//! The real `ocm-agent` binary as a child process on a test managed cluster, joining a hub with
//! OCM's gRPC bootstrap config, as `ocmctl join --local` starts it (`--cluster-name`,
//! `--bootstrap-config`, `--kubeconfig`, `--health-listen`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use ocm_testenv::{Cluster, Process, free_port};

use crate::SimError;

/// What an agent's bootstrap config holds: the hub's broker address, the hub CA and a bootstrap
/// token.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// `host:port` of the hub's gRPC broker, as the hub's serving certificate names it.
    pub url: String,
    pub ca_pem: String,
    pub token: String,
}

/// A running `ocm-agent`.
#[derive(Debug)]
pub struct AgentProcess {
    process: Process,
    pub cluster_name: String,
    pub health_port: u16,
}

impl AgentProcess {
    /// Starts `binary` for the managed cluster `spoke`, registering as `cluster_name`, with
    /// `args` added. Its bootstrap config (`url`, `caFile`, `tokenFile`; the files beside it) and
    /// log go to `dir/<cluster_name>/`. Returns once it runs; joining is the caller's to wait for.
    /// Call from a long-lived thread (the process dies with the thread that started it; see
    /// [`Process::spawn`]).
    pub fn start(
        binary: &Path,
        spoke: &Cluster,
        cluster_name: &str,
        bootstrap: &Bootstrap,
        dir: &Path,
        args: &[String],
    ) -> Result<Self, SimError> {
        let dir = dir.join(cluster_name);
        let write = |name: &str, text: &str| -> Result<PathBuf, SimError> {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|source| SimError::Proc {
                path: path.display().to_string(),
                source,
            })?;
            Ok(path)
        };
        std::fs::create_dir_all(&dir).map_err(|source| SimError::Proc {
            path: dir.display().to_string(),
            source,
        })?;
        let ca = write("ca.pem", &bootstrap.ca_pem)?;
        let token = write("token", &bootstrap.token)?;
        let config = write(
            "bootstrap.yaml",
            &format!(
                "url: {:?}\ncaFile: {:?}\ntokenFile: {:?}\n",
                bootstrap.url,
                ca.display().to_string(),
                token.display().to_string()
            ),
        )?;
        let health_port = free_port()?;
        let mut all: Vec<String> = vec![
            "--cluster-name".into(),
            cluster_name.to_owned(),
            "--bootstrap-config".into(),
            config.display().to_string(),
            "--kubeconfig".into(),
            spoke.kubeconfig_path().display().to_string(),
            "--health-listen".into(),
            format!("127.0.0.1:{health_port}"),
        ];
        all.extend(args.iter().cloned());
        let process = Process::spawn(
            spoke.name(),
            "ocm-agent",
            binary,
            &all,
            dir.join("ocm-agent.log"),
        )?;
        Ok(Self {
            process,
            cluster_name: cluster_name.to_owned(),
            health_port,
        })
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
}
