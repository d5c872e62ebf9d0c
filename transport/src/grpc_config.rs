//! OCM's gRPC client configuration file (sdk-go's gRPC options): the YAML an agent's bootstrap
//! and hub-kubeconfig Secrets carry as `config.yaml`.
//!
//! ```yaml
//! url: hub.example.com:8090
//! caData: <base64 PEM>            # or caFile
//! clientCertData: <base64 PEM>    # or clientCertFile (with clientKeyData / clientKeyFile)
//! token: <bearer token>           # or tokenFile; only with a CA
//! keepAliveConfig: {enable: true, time: 30s, timeout: 10s, permitWithoutStream: false}
//! serverHealthinessTimeout: 40s
//! ```
//!
//! Parsing is pure; files the configuration names are read through a function the caller
//! passes, so only binaries touch the file system.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::pem_source::{PemSourceError, TlsFiles};
use crate::tls::PemIdentity;

/// The file as written, before referenced files are read. Its `Debug` hides the token.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcConfigFile {
    #[serde(default)]
    pub url: String,
    #[serde(flatten)]
    pub tls: TlsFiles,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub keep_alive_config: Option<KeepAliveFile>,
    pub server_healthiness_timeout: Option<GoDuration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeepAliveFile {
    #[serde(default)]
    pub enable: bool,
    pub time: Option<GoDuration>,
    pub timeout: Option<GoDuration>,
    #[serde(default)]
    pub permit_without_stream: bool,
}

/// A duration as Go configurations write it: `"30s"`, `"1m30s"`, `"500ms"`, or an integer of
/// nanoseconds (`time.Duration` marshalled as JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Nanos(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Nanos(n) => Ok(Self(Duration::from_nanos(n))),
            Raw::Text(text) => parse_go_duration(&text).map(Self).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{text:?} is not a duration such as \"30s\" or \"1m30s\""
                ))
            }),
        }
    }
}

/// Go's `time.ParseDuration` for non-negative values: a sequence of `<number><unit>`.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text.trim();
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (number, tail) = rest.split_at(number_len);
        let value: f64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let seconds_per_unit = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        // Go refuses a sum past its range too; `+=` would panic.
        total = total.checked_add(Duration::try_from_secs_f64(value * seconds_per_unit).ok()?)?;
        rest = tail;
    }
    Some(total)
}

/// A usable client configuration. Its `Debug` hides the token (the identity's key is hidden by
/// `PemIdentity`'s own).
#[derive(Clone)]
pub struct GrpcClientConfig {
    /// `host:port` of the broker.
    pub url: String,
    pub ca_pem: Option<String>,
    pub client_identity: Option<PemIdentity>,
    pub token: Option<String>,
    /// HTTP/2 keepalive `(time, timeout, permit_without_stream)`, if enabled.
    pub keep_alive: Option<(Duration, Duration, bool)>,
    /// Reconnect when no heartbeat arrives for this long.
    pub server_healthiness_timeout: Option<Duration>,
    /// An HTTP CONNECT proxy to reach the broker through. Not part of OCM's file: Go clients
    /// take it from `HTTPS_PROXY`, and so do our binaries, which set it here.
    pub proxy: Option<crate::http_proxy::HttpProxy>,
}

/// What `Debug` shows of a secret: whether there is one, never its value.
pub(crate) fn redacted(secret: Option<&String>) -> Option<&'static str> {
    secret.map(|_| "<redacted>")
}

impl std::fmt::Debug for GrpcConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcConfigFile")
            .field("url", &self.url)
            .field("tls", &self.tls)
            .field("token", &redacted(self.token.as_ref()))
            .field("token_file", &self.token_file)
            .field("keep_alive_config", &self.keep_alive_config)
            .field(
                "server_healthiness_timeout",
                &self.server_healthiness_timeout,
            )
            .finish()
    }
}

impl std::fmt::Debug for GrpcClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcClientConfig")
            .field("url", &self.url)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<PEM>"))
            .field("client_identity", &self.client_identity)
            .field("token", &redacted(self.token.as_ref()))
            .field("keep_alive", &self.keep_alive)
            .field(
                "server_healthiness_timeout",
                &self.server_healthiness_timeout,
            )
            .field("proxy", &self.proxy)
            .finish()
    }
}

/// Most YAML events that aliases may replay in one configuration file. serde-saphyr's default
/// (a million) let 400 bytes of nested aliases make the parser hold 67 MB before its node budget
/// stopped it; OCM's files have a few dozen keys, so a thousand leaves room for any alias a
/// person writes.
const MAX_REPLAYED_YAML_EVENTS: usize = 1_000;

/// Parses one of OCM's YAML configuration files (this one and the MQTT one) with aliases bounded.
pub(crate) fn config_from_yaml<T: DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
    let options = serde_saphyr::options! {
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_REPLAYED_YAML_EVENTS,
        },
    };
    serde_saphyr::from_str_with_options(text, options)
}

impl GrpcConfigFile {
    pub fn from_yaml(text: &str) -> Result<Self, GrpcConfigError> {
        config_from_yaml(text).map_err(|e| GrpcConfigError::Yaml(e.to_string()))
    }

    /// Reads what the file refers to through `read` and checks the combination.
    pub fn resolve(
        self,
        read: impl Fn(&Path) -> std::io::Result<String>,
    ) -> Result<GrpcClientConfig, GrpcConfigError> {
        if self.url.is_empty() {
            return Err(GrpcConfigError::Missing("url"));
        }
        let (ca_pem, client_identity) = self.tls.resolve(&read)?;
        let token = match (self.token, self.token_file) {
            (Some(token), _) => Some(token),
            (None, Some(path)) => Some(
                read(&path)
                    .map_err(|e| PemSourceError::File {
                        what: "tokenFile",
                        path,
                        detail: e.to_string(),
                    })?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        // As OCM's loader: a token must never travel without TLS to a known server.
        if token.is_some() && ca_pem.is_none() {
            return Err(GrpcConfigError::TokenWithoutCa);
        }
        let keep_alive = self.keep_alive_config.filter(|k| k.enable).map(|k| {
            (
                k.time.map_or(Duration::from_secs(30), |d| d.0),
                k.timeout.map_or(Duration::from_secs(10), |d| d.0),
                k.permit_without_stream,
            )
        });
        Ok(GrpcClientConfig {
            url: self.url,
            ca_pem,
            client_identity,
            token,
            keep_alive,
            server_healthiness_timeout: self.server_healthiness_timeout.map(|d| d.0),
            proxy: None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrpcConfigError {
    #[error("gRPC config is not valid YAML: {0}")]
    Yaml(String),
    #[error("gRPC config has no {0}")]
    Missing(&'static str),
    #[error("gRPC config: {0}")]
    Source(#[from] PemSourceError),
    #[error("gRPC config has a token but no CA (caData or caFile); a token is only sent over TLS")]
    TokenWithoutCa,
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

    #[test]
    fn bootstrap_config_with_inline_ca_and_token_resolves() {
        use base64::Engine as _;
        let ca = base64::engine::general_purpose::STANDARD
            .encode("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
        let yaml = format!(
            "url: hub.example.com:8090\ncaData: {ca}\ntoken: abc.def\nkeepAliveConfig:\n  enable: true\n  time: 1m30s\nserverHealthinessTimeout: 40s\n"
        );
        let config = GrpcConfigFile::from_yaml(&yaml)
            .unwrap()
            .resolve(no_files)
            .unwrap();
        assert_eq!(config.url, "hub.example.com:8090");
        assert!(
            config
                .ca_pem
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert_eq!(config.token.as_deref(), Some("abc.def"));
        assert_eq!(
            config.keep_alive,
            Some((Duration::from_secs(90), Duration::from_secs(10), false))
        );
        assert_eq!(
            config.server_healthiness_timeout,
            Some(Duration::from_secs(40))
        );
    }

    #[test]
    fn files_are_read_through_the_callers_reader() {
        let yaml = "url: h:1\ncaFile: /ca.crt\nclientCertFile: /tls.crt\nclientKeyFile: /tls.key\n";
        let read = |path: &Path| Ok(format!("contents of {}", path.display()));
        let config = GrpcConfigFile::from_yaml(yaml)
            .unwrap()
            .resolve(read)
            .unwrap();
        assert_eq!(config.ca_pem.as_deref(), Some("contents of /ca.crt"));
        let identity = config.client_identity.unwrap();
        assert_eq!(
            (identity.cert_chain.as_str(), identity.key.as_str()),
            ("contents of /tls.crt", "contents of /tls.key")
        );
        let err = GrpcConfigFile::from_yaml(yaml)
            .unwrap()
            .resolve(no_files)
            .unwrap_err();
        assert!(err.to_string().contains("cannot read /ca.crt"), "{err}");
    }

    #[test]
    fn unsafe_or_incomplete_configs_are_refused_with_the_reason() {
        let cases = [
            ("caData: x\n", "no url"),
            ("url: h:1\ntoken: t\n", "token but no CA"),
            ("url: h:1\nclientCertData: eA==\n", "without its key"),
            ("url: h:1\ncaData: '%%%'\n", "not base64"),
            (
                "url: h:1\nserverHealthinessTimeout: soon\n",
                "not a duration",
            ),
            ("url: [", "not valid YAML"),
        ];
        for (yaml, reason) in cases {
            let err = GrpcConfigFile::from_yaml(yaml)
                .and_then(|f| f.resolve(no_files))
                .unwrap_err();
            assert!(err.to_string().contains(reason), "{yaml:?}: {err}");
        }
    }

    /// `levels` of anchors, each a list of `fanout` aliases of the one before: `fanout^levels`
    /// scalars from a few hundred bytes.
    fn alias_bomb(levels: usize, fanout: usize, key: &str) -> String {
        let mut yaml = format!("a0: &a0 [{}]\n", vec!["xxxxxxxx"; fanout].join(", "));
        for level in 1..=levels {
            let previous = format!("*a{}", level - 1);
            yaml.push_str(&format!(
                "a{level}: &a{level} [{}]\n",
                vec![previous.as_str(); fanout].join(", ")
            ));
        }
        yaml + &format!("{key}: *a{levels}\n")
    }

    #[test]
    fn nested_aliases_are_refused_before_they_expand() {
        // 367 bytes that expanded to 10,000 scalars, 34 MB in the parser, before the limit
        // (found by tests/fuzz_decoders.rs).
        let yaml = alias_bomb(4, 10, "unknown") + "url: h:1\n";
        let err = GrpcConfigFile::from_yaml(&yaml).unwrap_err().to_string();
        assert!(err.contains("alias replay limit exceeded"), "{err}");
        // An alias or two, as a person might write, still work.
        let file =
            GrpcConfigFile::from_yaml("host: &hub hub.example.com:8090\nurl: *hub\n").unwrap();
        assert_eq!(file.url, "hub.example.com:8090");
    }

    #[test]
    fn go_durations_parse_like_time_parse_duration() {
        let cases = [
            ("10s", Duration::from_secs(10)),
            ("1m30s", Duration::from_secs(90)),
            ("500ms", Duration::from_millis(500)),
            ("1h", Duration::from_secs(3600)),
            ("1.5s", Duration::from_millis(1500)),
            ("0", Duration::ZERO),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_go_duration(text), Some(expected), "{text}");
        }
        for bad in ["", "10", "s", "10x", "-1s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
        // Parts that fit alone but not together (found by tests/fuzz_decoders.rs, which saw
        // "overflow when adding durations").
        assert_eq!(
            parse_go_duration("270015325096382448s18176728748613168128s"),
            None
        );
        let nanos: GoDuration = serde_json::from_str("1500000000").unwrap();
        assert_eq!(nanos.0, Duration::from_millis(1500));
    }

    #[test]
    fn debug_output_never_shows_the_token_or_key() {
        let file = GrpcConfigFile::from_yaml(
            "url: hub:8090\ncaData: Y2E=\ntoken: s3cr3t-token\nclientKeyData: a2V5LWJ5dGVz\n",
        )
        .unwrap();
        let shown = format!("{file:?}");
        assert!(
            !shown.contains("s3cr3t-token") && !shown.contains("a2V5LWJ5dGVz"),
            "{shown}"
        );
        let config = GrpcClientConfig {
            url: "hub:8090".into(),
            ca_pem: Some("ca".into()),
            client_identity: None,
            token: Some("s3cr3t-token".into()),
            keep_alive: None,
            server_healthiness_timeout: None,
            proxy: None,
        };
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("s3cr3t-token") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
