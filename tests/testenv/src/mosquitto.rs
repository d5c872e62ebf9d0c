//! A real Mosquitto MQTT v5 broker (Debian package `mosquitto`, installed by `cargo xtask test`) on
//! 127.0.0.1, with TLS 1.3, required client certificates from its own CA, the certificate's CN
//! as the MQTT user name, and an access-control list — the way a fleet's broker is set up, so
//! a cluster can only read and write its own topics.
//!
//! ```no_run
//! # fn demo() -> Result<(), ocm_testenv::TestEnvError> {
//! let acl = "user hub\ntopic readwrite sources/kube/#\n";
//! let broker = ocm_testenv::Mosquitto::start(acl)?;
//! let (cert, key) = broker.client_certificate("hub")?;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::error::TestEnvError;
use crate::process::{Process, log_tail};

const COMPONENT: &str = "mosquitto";

/// A running Mosquitto; stopped (and its directory removed) when dropped.
pub struct Mosquitto {
    process: Option<Process>,
    port: u16,
    dir: PathBuf,
    binary: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for Mosquitto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mosquitto")
            .field("port", &self.port)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> TestEnvError + '_ {
    move |error| TestEnvError::Io {
        cluster: COMPONENT.to_owned(),
        what: what.to_owned(),
        error,
    }
}

fn pki(what: &'static str) -> impl FnOnce(rcgen::Error) -> TestEnvError {
    move |error| TestEnvError::Pki {
        what,
        detail: error.to_string(),
    }
}

impl Mosquitto {
    /// Starts a broker with `acl` as its access-control list (Mosquitto's `acl_file` syntax;
    /// user names are client certificates' CNs). Fails if Mosquitto is not installed.
    pub fn start(acl: &str) -> Result<Self, TestEnvError> {
        let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .ok_or(TestEnvError::MosquittoMissing)?;
        let dir = std::env::temp_dir().join(format!(
            "ocm-mosquitto-{}-{}",
            std::process::id(),
            crate::ports::free_port()?
        ));
        std::fs::create_dir_all(&dir).map_err(io("creating the broker directory"))?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "ocm-testenv mosquitto CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().map_err(pki("CA key"))?)
            .map_err(pki("CA certificate"))?;
        let mut server =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .map_err(pki("server certificate"))?;
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server
            .distinguished_name
            .push(DnType::CommonName, "mosquitto");
        let server_key = KeyPair::generate().map_err(pki("server key"))?;
        let server_cert = server
            .signed_by(&server_key, &ca)
            .map_err(pki("server certificate"))?;
        let port = crate::ports::free_port()?;
        let write = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text).map_err(io("writing the broker configuration"))
        };
        write("ca.pem", &ca.pem())?;
        write("server.pem", &server_cert.pem())?;
        write("server.key", &server_key.serialize_pem())?;
        write("acl", acl)?;
        let d = dir.display();
        // Run as root, Mosquitto drops to the user `mosquitto` unless told to stay.
        // `/proc/self` belongs to the effective user.
        let root = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false);
        let user = if root { "user root\n" } else { "" };
        write(
            "mosquitto.conf",
            &format!(
                "{user}persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type subscribe\n\
                 listener {port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n\
                 require_certificate true\nuse_identity_as_username true\ntls_version tlsv1.3\nacl_file {d}/acl\n"
            ),
        )?;
        let mut broker = Self {
            process: None,
            port,
            dir,
            binary,
            ca,
        };
        broker.spawn()?;
        Ok(broker)
    }

    fn spawn(&mut self) -> Result<(), TestEnvError> {
        let args = vec!["-c".to_owned(), self.path("mosquitto.conf")];
        let mut process = Process::spawn(
            COMPONENT,
            COMPONENT,
            &self.binary,
            &args,
            self.dir.join("mosquitto.log"),
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if process.exited().is_some() || Instant::now() > deadline {
                return Err(TestEnvError::ComponentExited {
                    cluster: COMPONENT.to_owned(),
                    component: COMPONENT,
                    status: "not listening".to_owned(),
                    log: process.log().to_owned(),
                    log_tail: log_tail(process.log(), 30),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.process = Some(process);
        Ok(())
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`, as OCM's MQTT config's `brokerHost`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The CA the broker's certificate and the client certificates come from (PEM).
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A client certificate and key (PEM) whose CN — the broker's user name — is `user`.
    pub fn client_certificate(&self, user: &str) -> Result<(String, String), TestEnvError> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, user);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().map_err(pki("client key"))?;
        let cert = params
            .signed_by(&key, &self.ca)
            .map_err(pki("client certificate"))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }

    /// The broker's directory (configuration, certificates, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the broker; every client loses its connection.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop(Duration::ZERO);
        }
    }

    /// Starts the stopped broker again on the same port (clean: no sessions kept).
    pub fn restart(&mut self) -> Result<(), TestEnvError> {
        self.stop();
        self.spawn()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os(crate::KEEP_ENV).is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
