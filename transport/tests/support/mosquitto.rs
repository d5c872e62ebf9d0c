//! A real Mosquitto (Debian package `mosquitto`, installed by `cargo xtask test`) on 127.0.0.1 with
//! TLS 1.3 and required client certificates, restartable on the same port.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::TestCa;

/// A real Mosquitto on a fixed port, restartable.
pub(crate) struct Mosquitto {
    child: std::process::Child,
    pub(crate) port: u16,
    dir: PathBuf,
    _scratch: tempfile::TempDir,
}

impl Mosquitto {
    pub(crate) fn start(pki: &TestCa) -> Self {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_owned();
        let server = pki.server("mosquitto");
        std::fs::write(dir.join("ca.pem"), pki.pem()).unwrap();
        std::fs::write(dir.join("server.pem"), &server.cert_chain).unwrap();
        std::fs::write(dir.join("server.key"), &server.key).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "user root\npersistence false\nlog_dest stderr\nlistener {port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\nrequire_certificate true\nuse_identity_as_username true\ntls_version tlsv1.3\n",
            d = dir.display()
        );
        std::fs::write(dir.join("mosquitto.conf"), config).unwrap();
        let child = Self::spawn(&dir);
        let mosquitto = Self {
            child,
            port,
            dir,
            _scratch: scratch,
        };
        mosquitto.wait_listening();
        mosquitto
    }

    fn spawn(dir: &std::path::Path) -> std::process::Child {
        let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("mosquitto is required for the MQTT tests: apt-get install mosquitto (`cargo xtask test` installs it)");
        let log = std::fs::File::create(dir.join("mosquitto.log")).unwrap();
        std::process::Command::new(binary)
            .arg("-c")
            .arg(dir.join("mosquitto.conf"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn wait_listening(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let log = std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default();
            assert!(
                std::time::Instant::now() < deadline,
                "mosquitto did not start:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    #[allow(dead_code)] // not every test crate restarts its broker
    pub(crate) fn restart(&mut self) {
        self.stop();
        self.child = Self::spawn(&self.dir);
        self.wait_listening();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}
