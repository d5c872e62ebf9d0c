//! An agent joins a real hub (`ocm-hub`'s assembly, in process, on a real apiserver) with a
//! bootstrap token: with auto-approval it gets its certificate straight away, and joining again
//! (a restart) works; without, it waits until a person approves its request.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::time::Duration;

use ocm_api::k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use ocm_api::k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use ocm_api::k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use ocm_api::k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ocm_api::kube::api::{ListParams, Patch, PatchParams, PostParams};
use ocm_api::kube::{Api, Client};
use ocm_hub_server::hub::{self, HubConfig};
use ocm_hub_server::pki::PkiConfig;
use ocm_hub_server::registration::availability::AvailabilityConfig;
use ocm_hub_server::registration::rbac;
use ocm_spoke_agent::bootstrap::{BootstrapConfig, bootstrap};
use ocm_spoke_agent::csr::AgentName;
use ocm_testenv::{Cluster, free_port};
use ocm_transport::broker::BrokerConfig;
use ocm_transport::client::TransportConfig;
use ocm_transport::grpc_config::GrpcClientConfig;
use tokio_util::sync::CancellationToken;

const BOOTSTRAP_USER: &str =
    "system:serviceaccount:open-cluster-management:agent-registration-bootstrap";

/// A hub on `cluster`, with the bootstrap ServiceAccount; returns its broker port, CA and a
/// bootstrap token.
async fn start_hub(
    kube: &Client,
    auto_approved: Vec<String>,
    cancel: &CancellationToken,
) -> (u16, String, String) {
    let pp = PostParams::default();
    let meta = |name: &str| ObjectMeta {
        name: Some(name.into()),
        ..ObjectMeta::default()
    };
    Api::<Namespace>::all(kube.clone())
        .create(
            &pp,
            &Namespace {
                metadata: meta("open-cluster-management"),
                ..Namespace::default()
            },
        )
        .await
        .unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(kube.clone(), "open-cluster-management");
    accounts
        .create(
            &pp,
            &ServiceAccount {
                metadata: meta("agent-registration-bootstrap"),
                ..ServiceAccount::default()
            },
        )
        .await
        .unwrap();
    Api::<ClusterRole>::all(kube.clone())
        .create(&pp, &rbac::bootstrap_cluster_role())
        .await
        .unwrap();
    Api::<ClusterRoleBinding>::all(kube.clone())
        .create(
            &pp,
            &rbac::bootstrap_binding("open-cluster-management", "agent-registration-bootstrap"),
        )
        .await
        .unwrap();
    let token = accounts
        .create_token_request(
            "agent-registration-bootstrap",
            &pp,
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
    let grpc_port = free_port().unwrap();
    let config = HubConfig {
        grpc_listen: format!("127.0.0.1:{grpc_port}").parse().unwrap(),
        health_listen: format!("127.0.0.1:{}", free_port().unwrap())
            .parse()
            .unwrap(),
        pki: PkiConfig::new(vec!["localhost".into()]),
        serving_files: None,
        client_cert_validity: Duration::from_secs(3600),
        auto_approved_users: auto_approved,
        auth_cache_ttl: Duration::from_secs(1),
        availability: AvailabilityConfig::default(),
        lease_write_interval: Duration::from_secs(60),
        broker: BrokerConfig::default(),
        max_message_size: 4 << 20,
    };
    tokio::spawn(hub::run(kube.clone(), config, cancel.clone()));
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

fn config(port: u16, ca: &str, token: &str, timeout: Duration) -> BootstrapConfig {
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

fn user_of(identity: &ocm_transport::tls::PemIdentity) -> String {
    let der = x509_parser::pem::parse_x509_pem(identity.cert_chain.as_bytes())
        .unwrap()
        .1
        .contents;
    ocm_transport::tls::cert_identity(&der.into()).unwrap().user
}

#[tokio::test]
async fn with_auto_approval_a_bootstrap_token_gets_the_agent_its_certificate_again_and_again() {
    let cluster = Cluster::start("join-auto").await.unwrap();
    let kube = cluster.client().unwrap();
    let cancel = CancellationToken::new();
    let (port, ca, token) = start_hub(&kube, vec![BOOTSTRAP_USER.into()], &cancel).await;
    // The hub may still be starting its broker: bootstrap waits for its subscriptions.
    let identity = bootstrap(&config(port, &ca, &token, Duration::from_secs(60)), &cancel)
        .await
        .unwrap();
    assert_eq!(
        user_of(&identity),
        "system:open-cluster-management:cluster1:agent1"
    );
    // A restarted agent without its credential joins again: its ManagedCluster exists already.
    let again = bootstrap(&config(port, &ca, &token, Duration::from_secs(60)), &cancel)
        .await
        .unwrap();
    assert_ne!(again.key, identity.key, "a new key");
    cancel.cancel();
    cluster.stop();
}

#[tokio::test]
async fn without_auto_approval_the_agent_waits_for_a_person() {
    let cluster = Cluster::start("join-manual").await.unwrap();
    let kube = cluster.client().unwrap();
    let cancel = CancellationToken::new();
    let (port, ca, token) = start_hub(&kube, Vec::new(), &cancel).await;
    let joining = tokio::spawn({
        let (config, cancel) = (
            config(port, &ca, &token, Duration::from_secs(60)),
            cancel.clone(),
        );
        async move { bootstrap(&config, &cancel).await }
    });
    // A person approves the pending request, as `ocmctl accept` will.
    let csrs: Api<CertificateSigningRequest> = Api::all(kube.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let name = loop {
        let pending = csrs
            .list(&ListParams::default().labels("open-cluster-management.io/cluster-name=cluster1"))
            .await
            .unwrap();
        if let Some(csr) = pending.items.first() {
            break csr.metadata.name.clone().unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "no CSR arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!joining.is_finished(), "joined without approval");
    let approve = serde_json::json!({"status": {"conditions": [{"type": "Approved", "status": "True", "reason": "ApprovedByHubAdmin", "message": "approved by a test"}]}});
    csrs.patch_subresource(
        "approval",
        &name,
        &PatchParams::default(),
        &Patch::Merge(approve),
    )
    .await
    .unwrap();
    let identity = tokio::time::timeout(Duration::from_secs(30), joining)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        user_of(&identity),
        "system:open-cluster-management:cluster1:agent1"
    );
    cancel.cancel();
    cluster.stop();
}
