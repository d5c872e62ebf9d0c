//! A real tinyproxy (Debian package `tinyproxy`, installed by `cargo xtask test`) on 127.0.0.1:
//! the HTTP CONNECT proxy a spoke behind a corporate proxy reaches its hub through. Optional
//! basic credentials, and an outgoing address of its own ([`TinyproxyOptions::bind`]), so a
//! test can tell the proxy's connections to the hub from anyone else's.
//!
//! ```no_run
//! # fn demo() -> Result<(), ocm_testenv::TestEnvError> {
//! let mut proxy = ocm_testenv::Tinyproxy::start(ocm_testenv::TinyproxyOptions::default())?;
//! // … `--proxy-url` `proxy.url()` …
//! proxy.stop();      // every tunnel drops
//! proxy.restart()?;  // the same port again
//! # Ok(()) }
//! ```

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::error::TestEnvError;
use crate::process::{Process, log_tail};

const COMPONENT: &str = "tinyproxy";

/// How the proxy is set up.
#[derive(Debug, Clone, Default)]
pub struct TinyproxyOptions {
    /// Basic credentials the proxy requires (`BasicAuth`): `(user, password)`.
    pub basic_auth: Option<(String, String)>,
    /// The local address its connections to targets come from (`Bind`), e.g. 127.0.0.2.
    pub bind: Option<Ipv4Addr>,
}

/// A running tinyproxy; stopped (and its directory removed) when dropped.
#[derive(Debug)]
pub struct Tinyproxy {
    process: Option<Process>,
    port: u16,
    dir: PathBuf,
    binary: PathBuf,
    /// How many times it was started (each run's log starts empty).
    runs: u32,
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> TestEnvError + '_ {
    move |error| TestEnvError::Io {
        cluster: COMPONENT.to_owned(),
        what: what.to_owned(),
        error,
    }
}

impl Tinyproxy {
    /// Starts a proxy on a free port of 127.0.0.1, letting 127.0.0.1 through to any port.
    /// Fails if tinyproxy is not installed.
    pub fn start(options: TinyproxyOptions) -> Result<Self, TestEnvError> {
        use std::os::unix::fs::PermissionsExt as _;
        let binary = ["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .ok_or(TestEnvError::TinyproxyMissing)?;
        let port = crate::ports::free_port()?;
        let dir = std::env::temp_dir().join(format!("ocm-tinyproxy-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(io("creating the proxy directory"))?;
        // Run as root, tinyproxy drops to `nobody`, which must still write its log.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
            .map_err(io("opening the proxy directory to its user"))?;
        let root = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false);
        let mut config = format!(
            "Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 600\nMaxClients 50\n\
             LogLevel Connect\nLogFile \"{}\"\nPidFile \"{}\"\n",
            dir.join("tinyproxy.log").display(),
            dir.join("tinyproxy.pid").display(),
        );
        if root {
            config.push_str("User nobody\nGroup nogroup\n");
        }
        if let Some((user, password)) = &options.basic_auth {
            config.push_str(&format!("BasicAuth {user} {password}\n"));
        }
        if let Some(bind) = options.bind {
            config.push_str(&format!("Bind {bind}\n"));
        }
        std::fs::write(dir.join("tinyproxy.conf"), config)
            .map_err(io("writing the proxy configuration"))?;
        let mut proxy = Self {
            process: None,
            port,
            dir,
            binary,
            runs: 0,
        };
        proxy.spawn()?;
        Ok(proxy)
    }

    fn spawn(&mut self) -> Result<(), TestEnvError> {
        self.runs += 1;
        let log = self.dir.join("tinyproxy.log");
        // Each run's log from its start: the previous run's moves aside.
        if log.exists() {
            let _ = std::fs::rename(
                &log,
                self.dir.join(format!("tinyproxy-{}.log", self.runs - 1)),
            );
        }
        let args = vec![
            "-d".to_owned(),
            "-c".to_owned(),
            self.dir.join("tinyproxy.conf").display().to_string(),
        ];
        let mut process = Process::spawn(
            COMPONENT,
            COMPONENT,
            &self.binary,
            &args,
            self.dir.join("tinyproxy.out"),
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_err() {
            if process.exited().is_some() || Instant::now() > deadline {
                return Err(TestEnvError::ComponentExited {
                    cluster: COMPONENT.to_owned(),
                    component: COMPONENT,
                    status: "not listening".to_owned(),
                    log: process.log().to_owned(),
                    log_tail: format!("{}\n{}", log_tail(process.log(), 30), self.log()),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.process = Some(process);
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`, without credentials.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The log of the current run (tinyproxy's `LogLevel Connect`: one line per CONNECT).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("tinyproxy.log")).unwrap_or_default()
    }

    /// The targets of the CONNECT requests of the current run, in order (`host:port`).
    pub fn connects(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|line| {
                let (_, request) = line.split_once("): CONNECT ")?;
                Some(request.split_whitespace().next()?.to_owned())
            })
            .collect()
    }

    /// The proxy's directory (configuration and logs).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Stops the proxy: every tunnel through it drops.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop(Duration::ZERO);
        }
    }

    /// Starts the stopped proxy again on the same port.
    pub fn restart(&mut self) -> Result<(), TestEnvError> {
        self.stop();
        self.spawn()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os(crate::KEEP_ENV).is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
