//! What the `ocmctl` tests share: the real `ocm-hub` and `ocm-agent` binaries (built if they
//! are missing), `ocm-hub` as a process on a test hub, and `ocmctl` as a user runs it.

#![allow(dead_code)] // not every test crate uses every helper

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use ocm_testenv::ocm::OcmBinaries;
use ocm_testenv::{Cluster, Process, free_port};

/// `ocm-hub` and `ocm-agent` beside this test's executable (`target/<profile>/`). `cargo xtask
/// test` (`cargo test --workspace`) builds them with everything else; a plain `cargo test -p
/// ocm-cli` does not, so a missing binary is built here once, as `cargo xtask up` builds them.
pub(crate) fn binaries() -> &'static OcmBinaries {
    static BINARIES: OnceLock<OcmBinaries> = OnceLock::new();
    BINARIES.get_or_init(|| {
        if let Ok(found) = OcmBinaries::beside_current_exe() {
            return found;
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build.args([
            "build",
            "--package",
            "ocm-hub-server",
            "--package",
            "ocm-spoke-agent",
            "--bins",
        ]);
        let profile_dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf));
        if profile_dir.is_some_and(|dir| dir.ends_with("release")) {
            build.arg("--release");
        }
        let status = build.status().expect("running cargo build");
        assert!(status.success(), "building ocm-hub and ocm-agent failed");
        OcmBinaries::beside_current_exe().expect("ocm-hub and ocm-agent after building them")
    })
}

/// `ocm-hub` serving its broker on 127.0.0.1:`grpc_port`, with its log beside the hub
/// cluster's component logs.
pub(crate) fn start_hub(hub: &Cluster, grpc_port: u16, extra: &[&str]) -> Process {
    let mut args: Vec<String> = vec![
        "--kubeconfig".into(),
        hub.kubeconfig_path().display().to_string(),
        "--grpc-listen".into(),
        format!("127.0.0.1:{grpc_port}"),
        "--health-listen".into(),
        format!("127.0.0.1:{}", free_port().unwrap()),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    Process::spawn(
        hub.name(),
        "ocm-hub",
        &binaries().hub,
        &args,
        hub.dir().join("logs").join("ocm-hub.log"),
    )
    .unwrap()
}

/// What an `ocmctl` run printed.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) ok: bool,
    pub(crate) out: String,
    pub(crate) err: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            ok: output.status.success(),
            out: String::from_utf8_lossy(&output.stdout).into_owned(),
            err: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// The `ocmctl` binary against the cluster of `kubeconfig`.
pub(crate) fn ocmctl_command(kubeconfig: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ocmctl"));
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("OCM_HUB_KUBECONFIG")
        .env_remove("OCMCTL_STATE_DIR");
    command
}

pub(crate) fn ocmctl(kubeconfig: &Path, args: &[&str]) -> Run {
    ocmctl_command(kubeconfig, args).output().unwrap().into()
}

/// The arguments of the `ocmctl join …` line in `text`, for `cluster`.
pub(crate) fn join_args(text: &str, cluster: &str) -> Vec<String> {
    let line = text
        .lines()
        .find(|l| l.starts_with("ocmctl join "))
        .unwrap_or_else(|| panic!("no join command in:\n{text}"));
    line.replace("<cluster_name>", cluster)
        .split_whitespace()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

/// Replaces the value after `flag` in `args`.
pub(crate) fn with_flag(args: &[String], flag: &str, value: &str) -> Vec<String> {
    let mut args = args.to_vec();
    let at = args.iter().position(|a| a == flag).unwrap() + 1;
    args[at] = value.to_owned();
    args
}

pub(crate) fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A scratch state directory whose local agents are killed when the test ends, passed or not.
pub(crate) struct StateDir {
    pub(crate) dir: tempfile::TempDir,
}

impl StateDir {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else {
            return;
        };
        for entry in entries.flatten() {
            let pid = std::fs::read_to_string(entry.path().join("ocm-agent.pid"))
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok());
            if let Some(pid) = pid {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}
