//! A hub for the agent's tests: `ocm-hub`'s assembly in process on a real apiserver, with the
//! bootstrap ServiceAccount and RBAC an `ocmctl init` sets up.

#![allow(dead_code)] // not every test crate uses every helper

pub(crate) mod works;

use std::time::Duration;

use ocm_api::k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use ocm_api::k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use ocm_api::kube::api::PostParams;
use ocm_api::kube::{Api, Client};
use ocm_hub_server::hub::{self, HubClients, HubConfig};
use ocm_hub_server::pki::PkiConfig;
use ocm_hub_server::registration::availability::AvailabilityConfig;
use ocm_spoke_agent::bootstrap::BootstrapConfig;
use ocm_spoke_agent::csr::AgentName;
use ocm_testenv::free_port;
use ocm_transport::broker::BrokerConfig;
use ocm_transport::client::TransportConfig;
use ocm_transport::grpc_config::GrpcClientConfig;
use tokio_util::sync::CancellationToken;

pub(crate) const BOOTSTRAP_USER: &str =
    "system:serviceaccount:open-cluster-management:agent-registration-bootstrap";

/// A hub on `cluster`, with the bootstrap ServiceAccount; returns its broker port, CA and a
/// bootstrap token.
pub(crate) async fn start_hub(
    kube: &Client,
    auto_approved: Vec<String>,
    cancel: &CancellationToken,
) -> (u16, String, String) {
    start_hub_issuing(kube, auto_approved, Duration::from_secs(3600), cancel).await
}

/// [`start_hub`] issuing client certificates valid for `validity`.
pub(crate) async fn start_hub_issuing(
    kube: &Client,
    auto_approved: Vec<String>,
    validity: Duration,
    cancel: &CancellationToken,
) -> (u16, String, String) {
    let hub = start_hub_on(kube, auto_approved, validity, free_port().unwrap(), cancel).await;
    (hub.port, hub.ca, hub.token)
}

/// A hub started by [`start_hub_on`].
pub(crate) struct RunningHub {
    /// The broker's port.
    pub(crate) port: u16,
    pub(crate) ca: String,
    /// A bootstrap token.
    pub(crate) token: String,
    /// The hub itself: ends once its token is cancelled and it has let go of its ports.
    pub(crate) task: tokio::task::JoinHandle<Result<(), hub::HubError>>,
    /// Where `/metrics` is served.
    pub(crate) health_port: u16,
}

/// [`start_hub_issuing`] with the broker on `grpc_port` — a port a stopped hub of the same
/// apiserver used, to restart it where its agents look for it — and the hub's task, to await
/// its end.
pub(crate) async fn start_hub_on(
    kube: &Client,
    auto_approved: Vec<String>,
    validity: Duration,
    grpc_port: u16,
    cancel: &CancellationToken,
) -> RunningHub {
    start_hub_with(kube, auto_approved, validity, grpc_port, |_| {}, cancel).await
}

/// [`start_hub_on`] with its configuration changed by `adjust` (e.g. an MQTT work driver).
pub(crate) async fn start_hub_with(
    kube: &Client,
    auto_approved: Vec<String>,
    validity: Duration,
    grpc_port: u16,
    adjust: impl FnOnce(&mut HubConfig),
    cancel: &CancellationToken,
) -> RunningHub {
    let clients = HubClients::from(kube.clone());
    start_hub_with_clients(clients, auto_approved, validity, grpc_port, adjust, cancel).await
}

/// [`start_hub_with`] on `clients` (its main client also sets the hub up for the test).
pub(crate) async fn start_hub_with_clients(
    clients: HubClients,
    auto_approved: Vec<String>,
    validity: Duration,
    grpc_port: u16,
    adjust: impl FnOnce(&mut HubConfig),
    cancel: &CancellationToken,
) -> RunningHub {
    let kube = &clients.main.clone();
    let accounts: Api<ServiceAccount> = Api::namespaced(kube.clone(), "open-cluster-management");
    let health_port = free_port().unwrap();
    let mut config = HubConfig {
        grpc_listen: format!("127.0.0.1:{grpc_port}").parse().unwrap(),
        health_listen: format!("127.0.0.1:{health_port}").parse().unwrap(),
        pki: PkiConfig::new(vec!["localhost".into()]),
        serving_files: None,
        client_cert_validity: validity,
        auto_approved_users: auto_approved,
        token_audiences: vec![ocm_api::registration::BROKER_TOKEN_AUDIENCE.to_owned()],
        auth_cache_ttl: Duration::from_secs(1),
        access_cache_ttl: Duration::from_secs(1),
        availability: AvailabilityConfig::default(),
        lease_write_interval: Duration::from_secs(60),
        broker: BrokerConfig::default(),
        max_message_size: 4 << 20,
        // As `ocmctl init` sets up: the account agents join with.
        bootstrap_service_account: Some((
            "open-cluster-management".into(),
            "agent-registration-bootstrap".into(),
        )),
        work_mqtt: None,
    };
    adjust(&mut config);
    let task = tokio::spawn(hub::run(clients, config, cancel.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while accounts
        .get_opt("agent-registration-bootstrap")
        .await
        .ok()
        .flatten()
        .is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hub never created the bootstrap account"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = accounts
        .create_token_request(
            "agent-registration-bootstrap",
            &PostParams::default(),
            &TokenRequest {
                spec: TokenRequestSpec {
                    audiences: vec![ocm_api::registration::BROKER_TOKEN_AUDIENCE.to_owned()],
                    expiration_seconds: Some(3600),
                    ..TokenRequestSpec::default()
                },
                ..TokenRequest::default()
            },
        )
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let secrets: Api<Secret> = Api::namespaced(kube.clone(), "open-cluster-management-hub");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let ca = loop {
        if let Ok(Some(secret)) = secrets.get_opt("ocm-hub-ca").await
            && let Some(data) = secret.data
        {
            break String::from_utf8(data["tls.crt"].0.clone()).unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hub never created its CA"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    RunningHub {
        port: grpc_port,
        ca,
        token,
        task,
        health_port,
    }
}

pub(crate) fn config(port: u16, ca: &str, token: &str, timeout: Duration) -> BootstrapConfig {
    BootstrapConfig {
        transport: TransportConfig::Grpc(GrpcClientConfig {
            url: format!("localhost:{port}"),
            ca_pem: Some(ca.to_owned()),
            client_identity: None,
            token: Some(token.to_owned()),
            keep_alive: None,
            server_healthiness_timeout: None,
            proxy: None,
        }),
        name: AgentName {
            cluster: "cluster1".into(),
            agent: "agent1".into(),
        },
        expiration_seconds: None,
        timeout,
        waiting_notice: Duration::from_secs(1),
    }
}

pub(crate) fn user_of(identity: &ocm_transport::tls::PemIdentity) -> String {
    let der = x509_parser::pem::parse_x509_pem(identity.cert_chain.as_bytes())
        .unwrap()
        .1
        .contents;
    ocm_transport::tls::cert_identity(&der.into()).unwrap().user
}

/// The value of the hub counter `name` with all of `labels` (`key="value"`), from its
/// `/metrics`; 0 when it has not been counted yet.
pub(crate) async fn hub_counter(health_port: u16, name: &str, labels: &[&str]) -> f64 {
    let text = http_get_body(health_port, "/metrics").await;
    text.lines()
        .filter(|line| line.starts_with(name) && labels.iter().all(|l| line.contains(l)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A plain HTTP GET on 127.0.0.1 (the hub's health endpoint), body as text.
async fn http_get_body(port: u16, path: &str) -> String {
    http_get(port, path).await.1
}

/// A plain HTTP GET on 127.0.0.1 (a health endpoint): the status code and the body.
pub(crate) async fn http_get(port: u16, path: &str) -> (u16, String) {
    try_http_get(port, path)
        .await
        .unwrap_or_else(|e| panic!("GET {path} on 127.0.0.1:{port}: {e}"))
}

/// [`http_get`], or why there is no answer (nothing listening yet).
pub(crate) async fn try_http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {head:?}"));
    Ok((status, body.to_owned()))
}

/// The value of the sample `name` (exactly that name, e.g. `…_seconds_count`) with all of
/// `labels` (`key="value"`) from the `/metrics` on `port`, summed over the other labels; 0 when
/// it has none yet.
pub(crate) async fn metric(port: u16, name: &str, labels: &[&str]) -> f64 {
    let text = http_get_body(port, "/metrics").await;
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
                && labels.iter().all(|l| line.contains(l))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
