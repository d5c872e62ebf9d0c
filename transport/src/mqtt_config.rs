//! OCM's MQTT configuration file (sdk-go's MQTT options):
//!
//! ```yaml
//! brokerHost: broker.example.com:8883
//! username: …            # optional
//! password: …
//! caData: <base64 PEM>   # or caFile
//! clientCertData: …      # or clientCertFile, with clientKeyData / clientKeyFile
//! keepAlive: 60          # seconds
//! pubQoS: 1
//! subQoS: 1
//! topics:
//!   sourceEvents: sources/maestro/consumers/+/sourceevents
//!   agentEvents: sources/maestro/consumers/+/agentevents
//!   sourceBroadcast: sources/+/sourcebroadcast   # optional
//!   agentBroadcast: clusters/+/agentbroadcast    # optional
//! ```
//!
//! As in OCM, TLS is used only when a client certificate and key are configured; a CA with a
//! username and password alone connects in plain text. Files are read through a function the
//! caller passes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::mqtt_topics::{TopicError, Topics};
use crate::mqtt_transport::{MqttSettings, Role};
use crate::pem_source::{PemSourceError, TlsFiles};
use crate::tls::{self, PemIdentity, ReloadableIdentity};

/// The file as written. Its `Debug` hides the password.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MqttConfigFile {
    #[serde(default)]
    pub broker_host: String,
    pub username: Option<String>,
    pub password: Option<String>,
    #[serde(flatten)]
    pub tls: TlsFiles,
    pub keep_alive: Option<u64>,
    #[serde(rename = "pubQoS")]
    pub pub_qos: Option<u8>,
    #[serde(rename = "subQoS")]
    pub sub_qos: Option<u8>,
    pub topics: Option<TopicsFile>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicsFile {
    #[serde(default)]
    pub source_events: String,
    #[serde(default)]
    pub agent_events: String,
    pub source_broadcast: Option<String>,
    pub agent_broadcast: Option<String>,
}

/// A usable MQTT configuration. Its `Debug` hides the password.
#[derive(Clone)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, String)>,
    /// CA and client identity, when TLS is to be used.
    pub tls: Option<(Option<String>, PemIdentity)>,
    pub keep_alive: Duration,
    pub topics: Topics,
}

impl std::fmt::Debug for MqttConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttConfigFile")
            .field("broker_host", &self.broker_host)
            .field("username", &self.username)
            .field(
                "password",
                &crate::grpc_config::redacted(self.password.as_ref()),
            )
            .field("tls", &self.tls)
            .field("keep_alive", &self.keep_alive)
            .field("pub_qos", &self.pub_qos)
            .field("sub_qos", &self.sub_qos)
            .field("topics", &self.topics)
            .finish()
    }
}

impl std::fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field(
                "credentials",
                &self
                    .credentials
                    .as_ref()
                    .map(|(user, _)| (user, "<redacted>")),
            )
            .field(
                "tls",
                &self
                    .tls
                    .as_ref()
                    .map(|(ca, id)| (ca.as_ref().map(|_| "<PEM>"), id)),
            )
            .field("keep_alive", &self.keep_alive)
            .field("topics", &self.topics)
            .finish()
    }
}

impl MqttConfigFile {
    pub fn from_yaml(text: &str) -> Result<Self, MqttConfigError> {
        crate::grpc_config::config_from_yaml(text).map_err(|e| MqttConfigError::Yaml(e.to_string()))
    }

    pub fn resolve(
        self,
        read: impl Fn(&Path) -> std::io::Result<String>,
    ) -> Result<MqttConfig, MqttConfigError> {
        let (host, port) = self
            .broker_host
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host.to_owned(), port.parse().ok()?)))
            .filter(|(host, _)| !host.is_empty())
            .ok_or_else(|| MqttConfigError::BrokerHost(self.broker_host.clone()))?;
        for (key, qos) in [("pubQoS", self.pub_qos), ("subQoS", self.sub_qos)] {
            // The transport publishes and subscribes with QoS 1, OCM's default; QoS 0 would lose
            // events between resyncs and QoS 2 buys nothing over idempotent handlers.
            if qos.is_some_and(|q| q != 1) {
                return Err(MqttConfigError::Unsupported(key));
            }
        }
        let (ca, identity) = self.tls.resolve(&read)?;
        let tls = identity.map(|identity| (ca, identity));
        let credentials = match (self.username, self.password) {
            (Some(user), password) => Some((user, password.unwrap_or_default())),
            (None, _) => None,
        };
        let topics_file = self.topics.ok_or(MqttConfigError::Missing("topics"))?;
        let topics = Topics::new(
            &topics_file.source_events,
            &topics_file.agent_events,
            topics_file.source_broadcast.as_deref(),
            topics_file.agent_broadcast.as_deref(),
        )?;
        Ok(MqttConfig {
            host,
            port,
            credentials,
            tls,
            keep_alive: Duration::from_secs(self.keep_alive.unwrap_or(60)),
            topics,
        })
    }
}

/// Largest MQTT message sent or accepted: a ManifestWork of the 500 KiB admission limit with
/// its bundle metadata fits.
pub const DEFAULT_MAX_PACKET_SIZE: u32 = 1 << 20;

impl MqttConfig {
    /// Reads OCM's MQTT config file at `path` (and the files it names).
    pub fn load(path: &Path) -> Result<Self, MqttConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| MqttConfigError::File(format!("{}: {e}", path.display())))?;
        MqttConfigFile::from_yaml(&text)?.resolve(|p| std::fs::read_to_string(p))
    }

    /// Connection settings for `role`, with MQTT client ID `client_id` and room for
    /// `queue_capacity` outgoing messages.
    pub fn settings(
        &self,
        client_id: &str,
        role: Role,
        queue_capacity: usize,
    ) -> Result<MqttSettings, MqttConfigError> {
        let tls = match &self.tls {
            None => None,
            Some((ca, identity)) => {
                let ca = ca.as_deref().ok_or(MqttConfigError::Missing(
                    "caData or caFile (needed with a client certificate)",
                ))?;
                let identity = ReloadableIdentity::new(identity)
                    .map_err(|e| MqttConfigError::Tls(e.to_string()))?;
                Some(Arc::new(
                    tls::mqtt_client_config(ca, Some(identity))
                        .map_err(|e| MqttConfigError::Tls(e.to_string()))?,
                ))
            }
        };
        Ok(MqttSettings {
            host: self.host.clone(),
            port: self.port,
            client_id: client_id.to_owned(),
            credentials: self.credentials.clone(),
            tls,
            keep_alive: self.keep_alive,
            topics: self.topics.clone(),
            role,
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            queue_capacity,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MqttConfigError {
    #[error("MQTT config is not valid YAML: {0}")]
    Yaml(String),
    #[error("reading the MQTT config {0}")]
    File(String),
    #[error("MQTT config TLS: {0}")]
    Tls(String),
    #[error("MQTT config brokerHost {0:?} is not host:port")]
    BrokerHost(String),
    #[error("MQTT config has no {0}")]
    Missing(&'static str),
    #[error("MQTT config {0} other than 1 is not supported")]
    Unsupported(&'static str),
    #[error("MQTT config: {0}")]
    Source(#[from] PemSourceError),
    #[error(transparent)]
    Topics(#[from] TopicError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_files(path: &Path) -> std::io::Result<String> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} not found", path.display()),
        ))
    }

    const TOPICS: &str = "topics:\n  sourceEvents: sources/maestro/consumers/+/sourceevents\n  agentEvents: sources/maestro/consumers/+/agentevents\n";

    #[test]
    fn maestro_style_config_resolves_with_tls_from_files() {
        let yaml = format!(
            "brokerHost: broker.example.com:8883\ncaFile: /ca\nclientCertFile: /crt\nclientKeyFile: /key\nkeepAlive: 30\npubQoS: 1\n{TOPICS}"
        );
        let read = |p: &Path| Ok(format!("pem {}", p.display()));
        let config = MqttConfigFile::from_yaml(&yaml)
            .unwrap()
            .resolve(read)
            .unwrap();
        assert_eq!(
            (config.host.as_str(), config.port),
            ("broker.example.com", 8883)
        );
        assert_eq!(config.keep_alive, Duration::from_secs(30));
        let (ca, identity) = config.tls.unwrap();
        assert_eq!(
            (ca.as_deref(), identity.cert_chain.as_str()),
            (Some("pem /ca"), "pem /crt")
        );
        assert_eq!(
            config.topics.agent_subscriptions("c1")[0],
            "sources/maestro/consumers/c1/sourceevents"
        );
    }

    #[test]
    fn credentials_without_client_certificate_mean_plain_text_as_in_ocm() {
        let yaml = format!("brokerHost: b:1883\nusername: u\npassword: p\ncaData: eA==\n{TOPICS}");
        let config = MqttConfigFile::from_yaml(&yaml)
            .unwrap()
            .resolve(no_files)
            .unwrap();
        assert!(config.tls.is_none());
        assert_eq!(config.credentials, Some(("u".into(), "p".into())));
    }

    #[test]
    fn bad_configs_are_refused_with_the_reason() {
        let cases = [
            (
                format!("broker: b:1\n{TOPICS}"),
                "brokerHost \"\" is not host:port",
            ),
            (format!("brokerHost: b\n{TOPICS}"), "is not host:port"),
            ("brokerHost: b:1\n".to_owned(), "no topics"),
            (
                format!("brokerHost: b:1\nsubQoS: 0\n{TOPICS}"),
                "subQoS other than 1",
            ),
            (
                format!("brokerHost: b:1\nclientCertData: eA==\n{TOPICS}"),
                "without its key",
            ),
            (
                "brokerHost: b:1\ntopics:\n  sourceEvents: x\n  agentEvents: y\n".to_owned(),
                "does not match OCM's layout",
            ),
        ];
        for (yaml, reason) in cases {
            let err = MqttConfigFile::from_yaml(&yaml)
                .and_then(|f| f.resolve(no_files))
                .unwrap_err();
            assert!(err.to_string().contains(reason), "{yaml:?}: {err}");
        }
    }

    #[test]
    fn nested_aliases_are_refused_before_they_expand() {
        // Four levels of ten aliases each: 10,000 scalars from 370 bytes.
        let mut yaml = format!("a0: &a0 [{}]\n", ["x"; 10].join(", "));
        for level in 1..=4 {
            let previous = format!("*a{}", level - 1);
            yaml += &format!("a{level}: &a{level} [{}]\n", vec![previous; 10].join(", "));
        }
        yaml += &format!("brokerHost: b:1\n{TOPICS}extra: *a4\n");
        let err = MqttConfigFile::from_yaml(&yaml).unwrap_err().to_string();
        assert!(err.contains("alias replay limit exceeded"), "{err}");
    }

    #[test]
    fn debug_output_never_shows_the_password_or_key() {
        let yaml = format!(
            "brokerHost: b:1883\nusername: u\npassword: hunter2\nclientKeyData: c2VjcmV0a2V5\n{TOPICS}"
        );
        let file = MqttConfigFile::from_yaml(&yaml).unwrap();
        let shown = format!("{file:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("c2VjcmV0a2V5"),
            "{shown}"
        );
        let config = MqttConfigFile::from_yaml(&format!(
            "brokerHost: b:1883\nusername: u\npassword: hunter2\n{TOPICS}"
        ))
        .unwrap()
        .resolve(|_| Ok(String::new()))
        .unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
