//! A hub for the agent's tests: `ocm-hub`'s assembly in process on a real apiserver, with the
//! bootstrap ServiceAccount and RBAC an `ocmctl init` sets up.

#![allow(dead_code)] // not every test crate uses every helper

use std::time::Duration;

use ocm_api::k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use ocm_api::k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use ocm_api::kube::api::PostParams;
use ocm_api::kube::{Api, Client};
use ocm_hub_server::hub::{self, HubConfig};
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
    let accounts: Api<ServiceAccount> = Api::namespaced(kube.clone(), "open-cluster-management");
    let grpc_port = free_port().unwrap();
    let config = HubConfig {
        grpc_listen: format!("127.0.0.1:{grpc_port}").parse().unwrap(),
        health_listen: format!("127.0.0.1:{}", free_port().unwrap())
            .parse()
            .unwrap(),
        pki: PkiConfig::new(vec!["localhost".into()]),
        serving_files: None,
        client_cert_validity: validity,
        auto_approved_users: auto_approved,
        auth_cache_ttl: Duration::from_secs(1),
        availability: AvailabilityConfig::default(),
        lease_write_interval: Duration::from_secs(60),
        broker: BrokerConfig::default(),
        max_message_size: 4 << 20,
        // As `ocmctl init` sets up: the account agents join with.
        bootstrap_service_account: Some((
            "open-cluster-management".into(),
            "agent-registration-bootstrap".into(),
        )),
    };
    tokio::spawn(hub::run(kube.clone(), config, cancel.clone()));
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
    (grpc_port, ca, token)
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
