//! `ocm-hub` as a user runs it, against a real hub apiserver: it installs its CRDs, creates its
//! PKI and becomes ready; an agent with only a bootstrap token joins over the broker (creates
//! its ManagedCluster and a CSR), the CSR of a listed bootstrap user is approved and signed,
//! the agent receives its certificate as a CSR update, its cluster is accepted on first sight
//! (the bootstrap user is auto-approved, OCM's ManagedClusterAutoApproval), and with that
//! certificate (mutual TLS, no token) it may watch and report its own ManagedCluster — but not
//! another's. `/metrics` counts what
//! happened; SIGTERM stops the hub cleanly.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::collections::BTreeMap;
use std::time::Duration;

use ocm_api::cluster::v1::{ManagedCluster, ManagedClusterSpec};
use ocm_api::k8s_openapi::ByteString;
use ocm_api::k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use ocm_api::k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use ocm_api::k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ocm_api::kube::Api;
use ocm_api::kube::api::PostParams;
use ocm_testenv::{Cluster, free_port};
use ocm_transport::client::{self, InboxOptions, Interest, PublishError, Role, TransportConfig};
use ocm_transport::event_type::{DataType, EventAction, SubResource};
use ocm_transport::grpc_config::GrpcClientConfig;
use ocm_transport::registration::{self, CLUSTER_NAME_LABEL, Decoded, RegistrationKind};
use ocm_transport::tls::PemIdentity;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use tokio_util::sync::CancellationToken;

const BOOTSTRAP_SA: &str = "agent-registration-bootstrap";
const BOOTSTRAP_USER: &str =
    "system:serviceaccount:open-cluster-management:agent-registration-bootstrap";

/// A token of the bootstrap ServiceAccount the hub created (`--bootstrap-service-account`).
async fn bootstrap_token(kube: &ocm_api::kube::Client) -> String {
    Api::<ServiceAccount>::namespaced(kube.clone(), "open-cluster-management")
        .create_token_request(
            BOOTSTRAP_SA,
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
        .token
}

async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// An agent's CSR for cluster1 and the key it keeps.
fn agent_csr() -> (CertificateSigningRequest, String) {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::OrganizationName,
        "system:open-cluster-management:cluster1",
    );
    dn.push(
        DnType::CustomDnType(vec![2, 5, 4, 10]),
        "system:open-cluster-management:managed-clusters",
    );
    dn.push(
        DnType::CommonName,
        "system:open-cluster-management:cluster1:agent1",
    );
    params.distinguished_name = dn;
    let key = KeyPair::generate().unwrap();
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some("cluster1-q8v3m".into()),
            labels: Some(BTreeMap::from([(
                CLUSTER_NAME_LABEL.to_owned(),
                "cluster1".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(pem.into_bytes()),
            signer_name: "open-cluster-management.io/grpc".into(),
            usages: Some(vec![
                "digital signature".into(),
                "key encipherment".into(),
                "client auth".into(),
            ]),
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    };
    (csr, key.serialize_pem())
}

fn grpc(
    port: u16,
    ca: &str,
    token: Option<String>,
    identity: Option<PemIdentity>,
) -> TransportConfig {
    TransportConfig::Grpc(GrpcClientConfig {
        url: format!("localhost:{port}"),
        ca_pem: Some(ca.to_owned()),
        client_identity: identity,
        token,
        keep_alive: None,
        server_healthiness_timeout: None,
        proxy: None,
    })
}

#[tokio::test]
async fn the_hub_binary_lets_a_bootstrap_agent_join_and_obtain_its_certificate() {
    let hub = Cluster::start("hubbin").await.unwrap();
    let kube = hub.client().unwrap();
    let (grpc_port, health_port) = (free_port().unwrap(), free_port().unwrap());
    let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_ocm-hub"))
        .arg("--kubeconfig")
        .arg(hub.kubeconfig_path())
        .args(["--grpc-listen", &format!("127.0.0.1:{grpc_port}")])
        .args(["--health-listen", &format!("127.0.0.1:{health_port}")])
        .args(["--auto-approved-users", BOOTSTRAP_USER])
        .args([
            "--bootstrap-service-account",
            &format!("open-cluster-management/{BOOTSTRAP_SA}"),
        ])
        .args(["--auth-cache-ttl", "0s"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while http_get(health_port, "/readyz").await.map(|r| r.0) != Some(200) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ocm-hub never became ready"
        );
        assert!(process.try_wait().unwrap().is_none(), "ocm-hub exited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(http_get(health_port, "/healthz").await.unwrap().0, 200);
    let token = bootstrap_token(&kube).await;
    let ca_secret = Api::<Secret>::namespaced(kube.clone(), "open-cluster-management-hub")
        .get("ocm-hub-ca")
        .await
        .unwrap();
    let ca = String::from_utf8(ca_secret.data.unwrap()["tls.crt"].0.clone()).unwrap();

    // Bootstrap: token only.
    let cancel = CancellationToken::new();
    let interest = Interest {
        role: Role::Agent {
            cluster: "cluster1".into(),
        },
        data_types: vec![
            DataType::managed_clusters(),
            DataType::certificate_signing_requests(),
        ],
    };
    let (bootstrap, mut inbox) = client::open(
        grpc(grpc_port, &ca, Some(token), None),
        interest.clone(),
        InboxOptions::default(),
        cancel.clone(),
    )
    .unwrap();
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(20), inbox.resync.recv())
            .await
            .unwrap()
            .unwrap();
    }
    let joining = ManagedCluster::new("cluster1", ManagedClusterSpec::default());
    bootstrap
        .publish(
            &registration::encode(
                RegistrationKind::ManagedCluster,
                SubResource::Spec,
                EventAction::CreateRequest,
                "cluster1",
                &joining,
                uuid::Uuid::new_v4().to_string(),
                jiff::Timestamp::now(),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let (csr, key) = agent_csr();
    bootstrap
        .publish(
            &registration::encode(
                RegistrationKind::CertificateSigningRequest,
                SubResource::Spec,
                EventAction::CreateRequest,
                "cluster1",
                &csr,
                uuid::Uuid::new_v4().to_string(),
                jiff::Timestamp::now(),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    // The signed CSR comes back as a CSR update.
    let certificate = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let event = inbox.events.recv().await.unwrap();
            if !event.event_type.starts_with("certificates.k8s.io") {
                continue;
            }
            if let Ok(Decoded::Object(csr)) = registration::decode::<CertificateSigningRequest>(
                RegistrationKind::CertificateSigningRequest,
                &event,
            ) && let Some(certificate) = csr.status.and_then(|s| s.certificate)
            {
                return String::from_utf8(certificate.0).unwrap();
            }
        }
    })
    .await
    .expect("the certificate never reached the agent");
    cancel.cancel();

    // With its certificate alone, the agent watches its own ManagedCluster (not yet accepted).
    let cancel = CancellationToken::new();
    let identity = PemIdentity {
        cert_chain: certificate,
        key,
    };
    let (agent, mut inbox) = client::open(
        grpc(grpc_port, &ca, None, Some(identity.clone())),
        Interest {
            role: Role::Agent {
                cluster: "cluster1".into(),
            },
            data_types: vec![DataType::managed_clusters()],
        },
        InboxOptions::default(),
        cancel.clone(),
    )
    .unwrap();
    tokio::time::timeout(Duration::from_secs(30), inbox.resync.recv())
        .await
        .unwrap()
        .unwrap();
    // Accepted on first sight, it may report its status (from the object as the hub has it).
    let clusters: Api<ManagedCluster> = Api::all(kube.clone());
    let accepted = ocm_testenv::eventually(
        "cluster1 auto-accepted",
        Duration::from_secs(30),
        async || {
            let cluster = clusters.get("cluster1").await.unwrap();
            let conditions = cluster
                .status
                .clone()
                .map(|s| s.conditions)
                .unwrap_or_default();
            (cluster.spec.hub_accepts_client
                && ocm_api::condition::find(&conditions, "HubAcceptedManagedCluster")
                    .is_some_and(|c| c.status == ocm_api::condition::ConditionStatus::True))
            .then_some(cluster)
        },
    )
    .await;
    assert!(
        accepted
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("open-cluster-management.io/automatically-accepted-on"))
    );
    agent
        .publish(
            &registration::encode(
                RegistrationKind::ManagedCluster,
                SubResource::Status,
                EventAction::UpdateRequest,
                "cluster1",
                &accepted,
                uuid::Uuid::new_v4().to_string(),
                jiff::Timestamp::now(),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    // Another cluster's ManagedCluster: never.
    let other = ManagedCluster::new("cluster2", ManagedClusterSpec::default());
    let err = agent
        .publish(
            &registration::encode(
                RegistrationKind::ManagedCluster,
                SubResource::Spec,
                EventAction::CreateRequest,
                "cluster2",
                &other,
                uuid::Uuid::new_v4().to_string(),
                jiff::Timestamp::now(),
            )
            .unwrap(),
        )
        .await
        .unwrap_err();
    let PublishError::Grpc(status) = &err else {
        panic!("{err}")
    };
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status}");
    cancel.cancel();

    let (_, metrics) = http_get(health_port, "/metrics").await.unwrap();
    assert!(metrics.contains("ocm_hub_published_events_total{data_type=\"cluster.open-cluster-management.io.v1.managedclusters\",outcome=\"ok\"} 2"), "a create and a status report: {metrics}");

    nix_term(&process);
    let status = tokio::time::timeout(Duration::from_secs(15), process.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "ocm-hub exited with {status}");
    hub.stop();
}

fn nix_term(process: &tokio::process::Child) {
    let pid = process.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
}
