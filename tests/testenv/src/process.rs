//! One component process of a local cluster: spawned with its log in a file, tied to our
//! process so it dies with it, and stopped on request.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::TestEnvError;

/// A running component (etcd, kube-apiserver, …).
#[derive(Debug)]
pub struct Process {
    component: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `binary args…` with stdout and stderr appended to `log`.
    ///
    /// It runs under `setpriv --pdeathsig KILL`: the kernel kills it when the thread that
    /// spawned it exits, so a test process killed outright (a CI timeout, SIGKILL) leaves no
    /// orphan behind. Spawn from a long-lived thread (a test's or the runtime's own), never from
    /// `spawn_blocking`, whose threads exit when idle.
    pub fn spawn(
        cluster: &str,
        component: &'static str,
        binary: &Path,
        args: &[String],
        log: PathBuf,
    ) -> Result<Self, TestEnvError> {
        let io_error = |what: &str| {
            let what = format!("{what} {}", log.display());
            move |error| TestEnvError::Io {
                cluster: cluster.to_owned(),
                what,
                error,
            }
        };
        let stdout = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io_error("opening log"))?;
        let stderr = stdout.try_clone().map_err(io_error("opening log"))?;
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--"])
            .arg(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|error| {
                if error.kind() == std::io::ErrorKind::NotFound {
                    TestEnvError::SetprivMissing(error)
                } else {
                    TestEnvError::Spawn {
                        cluster: cluster.to_owned(),
                        component,
                        binary: binary.to_owned(),
                        error,
                    }
                }
            })?;
        Ok(Self {
            component,
            child,
            log,
        })
    }

    pub fn component(&self) -> &'static str {
        self.component
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Fails with the log's tail if the process has ended.
    pub(crate) fn check_running(&mut self, cluster: &str) -> Result<(), TestEnvError> {
        match self.exited() {
            None => Ok(()),
            Some(status) => Err(TestEnvError::ComponentExited {
                cluster: cluster.to_owned(),
                component: self.component,
                status: status.to_string(),
                log: self.log.clone(),
                log_tail: log_tail(&self.log, 30),
            }),
        }
    }

    /// SIGTERM, then SIGKILL if it is still running after `grace`; reaps it either way.
    pub fn stop(&mut self, grace: Duration) {
        if self.exited().is_some() {
            return;
        }
        if !grace.is_zero() {
            if let Ok(pid) = i32::try_from(self.child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if self.exited().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

/// The last `lines` lines of a log file (or why it could not be read).
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopped_process_is_reaped_and_its_log_kept() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sleep.log");
        let args = ["-c".to_owned(), "echo started; exec sleep 60".to_owned()];
        let mut process = Process::spawn("t", "sleeper", Path::new("/bin/sh"), &args, log).unwrap();
        let pid = process.pid();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !log_tail(process.log(), 1).contains("started") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(process.check_running("t").is_ok());
        process.stop(Duration::from_secs(5));
        assert!(process.exited().is_some());
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} still exists"
        );
        assert_eq!(log_tail(process.log(), 5), "started");
    }

    #[test]
    fn exited_process_reports_its_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("fail.log");
        let args = [
            "-c".to_owned(),
            "echo 'bad flag --x' >&2; exit 3".to_owned(),
        ];
        let mut process =
            Process::spawn("c1", "failing", Path::new("/bin/sh"), &args, log).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while process.exited().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let message = process.check_running("c1").unwrap_err().to_string();
        assert!(message.contains("cluster c1: failing exited"), "{message}");
        assert!(message.contains("bad flag --x"), "{message}");
    }
}
