//! Talking to ocm-hub's broker as an agent would, before any agent does: its address
//! ([`HubUrl`]), whether it serves with a certificate of the hub CA ([`probe`],
//! [`wait_until_serving`]) and whether it accepts a bootstrap token ([`check_token`]).

use std::sync::Arc;
use std::time::Duration;

use ocm_proto::SubscriptionRequest;
use ocm_transport::event_type::DataType;
use ocm_transport::grpc_client::{GrpcClient, refusal_reason};
use ocm_transport::grpc_config::GrpcClientConfig;

use crate::progress::{Observer, format_elapsed};

/// Where agents reach ocm-hub's gRPC broker: `host:port`, as the `url` of OCM's gRPC config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubUrl {
    host: String,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a hub URL: {why}; give the broker's host:port as agents reach it (ocm-hub's --grpc-listen port, a name in its --grpc-hosts), e.g. hub.example.com:8090"
)]
pub struct HubUrlError {
    text: String,
    why: &'static str,
}

impl HubUrl {
    /// `host:port`, `[v6]:port`, optionally after `https://`; without a port, 443 (as agents read
    /// it). No path, no other scheme.
    pub fn parse(text: &str) -> Result<Self, HubUrlError> {
        let error = |why| HubUrlError {
            text: text.to_owned(),
            why,
        };
        let rest = text.strip_prefix("https://").unwrap_or(text);
        if rest.contains("://") {
            return Err(error("only https:// or no scheme at all"));
        }
        if rest.contains('/') || rest.contains(char::is_whitespace) {
            return Err(error("it has a path or spaces"));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, tail) = v6.split_once(']').ok_or_else(|| error("unclosed '['"))?;
            match tail {
                "" => (host, None),
                _ => (
                    host,
                    Some(
                        tail.strip_prefix(':')
                            .ok_or_else(|| error("junk after ']'"))?,
                    ),
                ),
            }
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(error("no host"));
        }
        let port = match port {
            None => 443,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| error("the port is not a number from 1 to 65535"))?,
        };
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl std::fmt::Display for HubUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why the broker does not (yet) serve as agents need it to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "nothing answers at {url} ({detail}): start ocm-hub with its broker there (--grpc-listen), or correct the hub URL"
    )]
    Unreachable { url: String, detail: String },
    #[error(
        "the broker at {url} presented a certificate the hub CA does not accept for {host:?} ({detail}): give ocm-hub --grpc-hosts {host} and restart it, or check that the CA is this hub's"
    )]
    Certificate {
        url: String,
        host: String,
        detail: String,
    },
    #[error("TLS handshake with {url} failed ({detail}): is this ocm-hub's gRPC broker?")]
    Handshake { url: String, detail: String },
    #[error("{url} is not ocm-hub's gRPC broker: it did not agree to HTTP/2")]
    NotGrpc { url: String },
    #[error("the hub CA is not a usable PEM certificate: {0}")]
    Ca(String),
}

/// One TLS handshake with the broker, trusting only `ca_pem` and checking the certificate names
/// the URL's host — what every agent does first. Ok means the hub serves with this CA.
pub async fn probe(url: &HubUrl, ca_pem: &str) -> Result<(), ProbeError> {
    probe_via(url, ca_pem, None).await
}

/// [`probe`], through an HTTP CONNECT proxy when one is given (as the agent will connect).
pub async fn probe_via(
    url: &HubUrl,
    ca_pem: &str,
    proxy: Option<&ocm_transport::http_proxy::HttpProxy>,
) -> Result<(), ProbeError> {
    let config = ocm_transport::tls::client_config(ca_pem, None)
        .map_err(|e| ProbeError::Ca(e.to_string()))?;
    let server_name = rustls::pki_types::ServerName::try_from(url.host.clone()).map_err(|e| {
        ProbeError::Handshake {
            url: url.to_string(),
            detail: format!("host name: {e}"),
        }
    })?;
    let unreachable = |detail: String| ProbeError::Unreachable {
        url: url.to_string(),
        detail,
    };
    let tcp = tokio::time::timeout(
        Duration::from_secs(5),
        ocm_transport::http_proxy::connect(proxy, &url.to_string()),
    )
    .await
    .map_err(|_| unreachable("no answer within 5s".to_owned()))?
    .map_err(|e| unreachable(e.to_string()))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = tokio::time::timeout(Duration::from_secs(10), connector.connect(server_name, tcp))
        .await
        .map_err(|_| ProbeError::Handshake {
            url: url.to_string(),
            detail: "no answer within 10s".to_owned(),
        })?
        .map_err(|e| handshake_error(url, &e))?;
    if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err(ProbeError::NotGrpc {
            url: url.to_string(),
        });
    }
    Ok(())
}

fn handshake_error(url: &HubUrl, error: &std::io::Error) -> ProbeError {
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(detail)) => ProbeError::Certificate {
            url: url.to_string(),
            host: url.host.clone(),
            detail: detail.to_string(),
        },
        Some(other) => ProbeError::Handshake {
            url: url.to_string(),
            detail: other.to_string(),
        },
        None => ProbeError::Handshake {
            url: url.to_string(),
            detail: error.to_string(),
        },
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ocm-hub did not serve at {url} within {waited}. Last: {last}")]
pub struct NotServing {
    pub url: String,
    pub waited: String,
    pub last: ProbeError,
}

/// [`probe`]s until the broker serves or `timeout` passes, telling `observer` meanwhile.
pub async fn wait_until_serving(
    url: &HubUrl,
    ca_pem: &str,
    timeout: Duration,
    observer: &mut dyn Observer,
) -> Result<(), NotServing> {
    let started = tokio::time::Instant::now();
    let what = format!("waiting for ocm-hub to serve at {url}");
    loop {
        match probe(url, ca_pem).await {
            Ok(()) => {
                observer.done(&format!("ocm-hub serves at {url}"), started.elapsed());
                return Ok(());
            }
            Err(last) if started.elapsed() >= timeout => {
                return Err(NotServing {
                    url: url.to_string(),
                    waited: format_elapsed(started.elapsed()),
                    last,
                });
            }
            Err(_) => observer.waiting(&what, started.elapsed()),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenCheckError {
    #[error(
        "the hub at {url} refused the bootstrap token ({reason}): it is invalid or has expired; on the hub, run `ocmctl get token` for a new join command"
    )]
    Refused { url: String, reason: String },
    #[error(
        "the hub at {url} does not let this token join as cluster {cluster:?} ({reason}): the token lacks OCM's bootstrap role; on the hub, `ocmctl get token` gives one that has it"
    )]
    NotPermitted {
        url: String,
        cluster: String,
        reason: String,
    },
    #[error(
        "the hub at {url} did not answer a subscription for cluster {cluster:?} within {within}: check that ocm-hub is running and reachable from here"
    )]
    NoAnswer {
        url: String,
        cluster: String,
        within: String,
    },
    #[error("connecting to the hub at {url}: {detail}")]
    Client { url: String, detail: String },
}

/// Whether the broker accepts `token` for joining `cluster`: subscribes to the cluster's
/// ManagedCluster events with it — an agent's first step — and lets go at once.
pub async fn check_token(
    url: &HubUrl,
    ca_pem: &str,
    token: &str,
    cluster: &str,
    within: Duration,
) -> Result<(), TokenCheckError> {
    check_token_via(url, ca_pem, token, cluster, within, None).await
}

/// [`check_token`], through an HTTP CONNECT proxy when one is given.
pub async fn check_token_via(
    url: &HubUrl,
    ca_pem: &str,
    token: &str,
    cluster: &str,
    within: Duration,
    proxy: Option<&ocm_transport::http_proxy::HttpProxy>,
) -> Result<(), TokenCheckError> {
    let config = GrpcClientConfig {
        url: url.to_string(),
        ca_pem: Some(ca_pem.to_owned()),
        client_identity: None,
        token: Some(token.to_owned()),
        keep_alive: None,
        server_healthiness_timeout: None,
        proxy: proxy.cloned(),
    };
    let client = GrpcClient::new(&config).map_err(|e| TokenCheckError::Client {
        url: url.to_string(),
        detail: e.to_string(),
    })?;
    let request = SubscriptionRequest {
        source: String::new(),
        cluster_name: cluster.to_owned(),
        data_type: DataType::managed_clusters().to_string(),
    };
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let outcome =
            tokio::time::timeout_at(deadline, client.try_subscribe(request.clone())).await;
        let status = match outcome {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(status)) => status,
            Err(_) => break,
        };
        if let Some(reason) = refusal_reason(&status) {
            return Err(TokenCheckError::Refused {
                url: url.to_string(),
                reason,
            });
        }
        if status.code() == tonic::Code::PermissionDenied {
            return Err(TokenCheckError::NotPermitted {
                url: url.to_string(),
                cluster: cluster.to_owned(),
                reason: status.message().to_owned(),
            });
        }
        // Unavailable and the like: the hub may be starting; ask again until `within`.
        if tokio::time::Instant::now() + Duration::from_millis(250) >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(TokenCheckError::NoAnswer {
        url: url.to_string(),
        cluster: cluster.to_owned(),
        within: format_elapsed(within),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_urls_are_host_and_port_as_agents_read_them() {
        let url = HubUrl::parse("hub.example.com:8090").unwrap();
        assert_eq!((url.host(), url.port()), ("hub.example.com", 8090));
        assert_eq!(url.to_string(), "hub.example.com:8090");
        assert_eq!(
            HubUrl::parse("https://hub.example.com")
                .unwrap()
                .to_string(),
            "hub.example.com:443"
        );
        let v6 = HubUrl::parse("[::1]:8090").unwrap();
        assert_eq!((v6.host(), v6.to_string().as_str()), ("::1", "[::1]:8090"));
        for (bad, why) in [
            ("grpc://hub:8090", "only https://"),
            ("hub:8090/path", "path"),
            (":8090", "no host"),
            ("hub:0", "port"),
            ("hub:http", "port"),
            ("[::1", "unclosed"),
        ] {
            let err = HubUrl::parse(bad).unwrap_err().to_string();
            assert!(
                err.contains(why) && err.contains("host:port"),
                "{bad}: {err}"
            );
        }
    }
}
