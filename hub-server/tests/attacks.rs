//! Attacks on a running `ocm-hub` (the real binary, a real apiserver with the controller
//! manager signing, real mutual TLS), one test per group of findings of the project's security
//! review (docs/security.md lists them all with their results). Each attack is carried out as a
//! stranger, a bootstrap-token holder or an accepted agent would, and each test fails on a hub
//! that lets the attack through.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::collections::BTreeMap;
use std::time::Duration;

use ocm_api::cluster::v1::{ManagedCluster, ManagedClusterSpec, Taint, TaintEffect};
use ocm_api::k8s_openapi::ByteString;
use ocm_api::k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use ocm_api::k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use ocm_api::k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use ocm_api::k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use ocm_api::k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ocm_api::kube::api::{DeleteParams, ListParams, PostParams};
use ocm_api::kube::{Api, Client};
use ocm_api::work::v1::{ManifestWork, ManifestWorkSpec};
use ocm_hub_server::registration::rbac;
use ocm_proto::SubscriptionRequest;
use ocm_testenv::{Cluster, free_port};
use ocm_transport::CloudEvent;
use ocm_transport::client::{self, InboxOptions, Interest, Role, TransportConfig};
use ocm_transport::event_type::{DataType, EventAction, SubResource};
use ocm_transport::grpc_client::GrpcClient;
use ocm_transport::grpc_config::GrpcClientConfig;
use ocm_transport::registration::{self, CLUSTER_NAME_LABEL, RegistrationKind};
use ocm_transport::tls::PemIdentity;
use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair};
use tokio_util::sync::CancellationToken;
use tonic::Code;

const BOOTSTRAP_SA: &str = "agent-registration-bootstrap";
const BOOTSTRAP_USER: &str =
    "system:serviceaccount:open-cluster-management:agent-registration-bootstrap";
const MANAGED_CLUSTERS: &str = "system:open-cluster-management:managed-clusters";

/// A hub cluster with the real `ocm-hub` running against it.
struct Hub {
    cluster: Cluster,
    process: tokio::process::Child,
    grpc_port: u16,
    kube: Client,
    ca: String,
}

impl Hub {
    async fn start(name: &str, extra: &[&str]) -> Hub {
        let cluster = Cluster::start(name).await.unwrap();
        let kube = cluster.client().unwrap();
        let (grpc_port, health_port) = (free_port().unwrap(), free_port().unwrap());
        let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_ocm-hub"))
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig_path())
            .args(["--grpc-listen", &format!("127.0.0.1:{grpc_port}")])
            .args(["--health-listen", &format!("127.0.0.1:{health_port}")])
            .args([
                "--bootstrap-service-account",
                &format!("open-cluster-management/{BOOTSTRAP_SA}"),
            ])
            .args(extra)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !ready(health_port).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "ocm-hub never ready"
            );
            assert!(process.try_wait().unwrap().is_none(), "ocm-hub exited");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let secret = Api::<Secret>::namespaced(kube.clone(), "open-cluster-management-hub")
            .get("ocm-hub-ca")
            .await
            .unwrap();
        let ca = String::from_utf8(secret.data.unwrap()["tls.crt"].0.clone()).unwrap();
        Hub {
            cluster,
            process,
            grpc_port,
            kube,
            ca,
        }
    }

    fn config(&self, token: Option<String>, identity: Option<PemIdentity>) -> GrpcClientConfig {
        GrpcClientConfig {
            url: format!("localhost:{}", self.grpc_port),
            ca_pem: Some(self.ca.clone()),
            client_identity: identity,
            token,
            keep_alive: None,
            server_healthiness_timeout: None,
            proxy: None,
        }
    }

    fn client(&self, token: Option<String>, identity: Option<PemIdentity>) -> GrpcClient {
        GrpcClient::new(&self.config(token, identity)).unwrap()
    }

    async fn bootstrap_token(&self) -> String {
        Api::<ServiceAccount>::namespaced(self.kube.clone(), "open-cluster-management")
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

    /// A client certificate of `cluster`'s agent, signed by the hub CA as the hub would.
    async fn agent_identity(&self, cluster: &str, validity: Duration) -> PemIdentity {
        let secret = Api::<Secret>::namespaced(self.kube.clone(), "open-cluster-management-hub")
            .get("ocm-hub-ca")
            .await
            .unwrap();
        let data = secret.data.unwrap();
        let key = KeyPair::from_pem(std::str::from_utf8(&data["tls.key"].0).unwrap()).unwrap();
        let issuer = rcgen::Issuer::from_ca_cert_pem(&self.ca, key).unwrap();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::OrganizationName,
            format!("system:open-cluster-management:{cluster}"),
        );
        dn.push(DnType::CustomDnType(vec![2, 5, 4, 10]), MANAGED_CLUSTERS);
        dn.push(
            DnType::CommonName,
            format!("system:open-cluster-management:{cluster}:agent1"),
        );
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(1);
        params.not_after = now + time::Duration::try_from(validity).unwrap();
        let agent_key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&agent_key, &issuer).unwrap();
        PemIdentity {
            cert_chain: cert.pem(),
            key: agent_key.serialize_pem(),
        }
    }

    /// `cluster` created and accepted by the administrator, its grants in place.
    async fn accepted_cluster(&self, name: &str) {
        let mut cluster = ManagedCluster::new(name, ManagedClusterSpec::default());
        cluster.spec.hub_accepts_client = true;
        Api::<ManagedCluster>::all(self.kube.clone())
            .create(&PostParams::default(), &cluster)
            .await
            .unwrap();
        self.wait_accepted(name, true).await;
    }

    async fn wait_accepted(&self, name: &str, accepted: bool) -> ManagedCluster {
        let clusters: Api<ManagedCluster> = Api::all(self.kube.clone());
        ocm_testenv::eventually(
            &format!("{name} accepted: {accepted}"),
            Duration::from_secs(30),
            async || {
                let cluster = clusters.get_opt(name).await.unwrap()?;
                let condition = cluster.status.as_ref().and_then(|s| {
                    ocm_api::condition::find(&s.conditions, "HubAcceptedManagedCluster").cloned()
                })?;
                ((condition.status == ocm_api::condition::ConditionStatus::True) == accepted)
                    .then_some(cluster)
            },
        )
        .await
    }

    fn stop(mut self) {
        let pid = self.process.id().unwrap();
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let _ = self.process.start_kill();
        self.cluster.stop();
    }
}

async fn ready(port: u16) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request = "GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response.starts_with("HTTP/1.1 200")
}

fn create_event<K: ocm_api::kube::Resource + serde::Serialize>(
    kind: RegistrationKind,
    cluster: &str,
    object: &K,
) -> CloudEvent {
    registration::encode(
        kind,
        SubResource::Spec,
        EventAction::CreateRequest,
        cluster,
        object,
        uuid::Uuid::new_v4().to_string(),
        jiff::Timestamp::now(),
    )
    .unwrap()
}

/// A certificate request labelled for `label`, to `signer`, for `common_name` in `groups`.
fn csr(label: &str, signer: &str, common_name: &str, groups: &[&str]) -> CertificateSigningRequest {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    for (i, group) in groups.iter().enumerate() {
        let kind = if i == 0 {
            DnType::OrganizationName
        } else {
            DnType::CustomDnType(vec![2, 5, 4, 10])
        };
        dn.push(kind, *group);
    }
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    let key = KeyPair::generate().unwrap();
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some(format!(
                "{label}-{}",
                &uuid::Uuid::new_v4().to_string()[..5]
            )),
            labels: Some(BTreeMap::from([(
                CLUSTER_NAME_LABEL.to_owned(),
                label.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(pem.into_bytes()),
            signer_name: signer.into(),
            usages: Some(vec![
                "digital signature".into(),
                "key encipherment".into(),
                "client auth".into(),
            ]),
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    }
}

/// C1: with the bootstrap token, a kubelet-client CSR for `system:node:evil` is refused before
/// the hub creates anything (on a hub that relays it, the controller manager approves and
/// signs it within seconds), and so is a gRPC-signer request for another cluster's agent.
#[tokio::test]
async fn a_bootstrap_token_cannot_obtain_a_hub_node_certificate_or_another_clusters() {
    let hub = Hub::start("attack-c1", &[]).await;
    let bootstrap = hub.client(Some(hub.bootstrap_token().await), None);
    let node = csr(
        "cluster1",
        "kubernetes.io/kube-apiserver-client-kubelet",
        "system:node:evil",
        &["system:nodes"],
    );
    let refused = bootstrap
        .publish(&create_event(
            RegistrationKind::CertificateSigningRequest,
            "cluster1",
            &node,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused}");
    assert!(refused.message().contains("signer"), "{refused}");
    let stranger = csr(
        "cluster1",
        "open-cluster-management.io/grpc",
        "system:open-cluster-management:cluster2:agent1",
        &["system:open-cluster-management:cluster2", MANAGED_CLUSTERS],
    );
    let refused = bootstrap
        .publish(&create_event(
            RegistrationKind::CertificateSigningRequest,
            "cluster1",
            &stranger,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused}");
    // At most ten waiting requests per cluster, as OCM's agents stop at.
    for n in 0..11 {
        let mine = csr(
            "cluster1",
            "open-cluster-management.io/grpc",
            &format!("system:open-cluster-management:cluster1:agent{n}"),
            &["system:open-cluster-management:cluster1", MANAGED_CLUSTERS],
        );
        let sent = bootstrap
            .publish(&create_event(
                RegistrationKind::CertificateSigningRequest,
                "cluster1",
                &mine,
            ))
            .await;
        if n < 10 {
            sent.unwrap();
        } else {
            assert_eq!(sent.unwrap_err().code(), Code::ResourceExhausted);
        }
    }
    // Time for the controller manager to have approved a kubelet request, had there been one.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let csrs = Api::<CertificateSigningRequest>::all(hub.kube.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        csrs.items
            .iter()
            .all(|c| c.spec.signer_name == "open-cluster-management.io/grpc"),
        "only agent requests exist"
    );
    assert_eq!(csrs.items.len(), 10);
    hub.stop();
}

/// C2, H4, H2: names that would collide with the hub's shared roles, with system or tenant
/// namespaces or with the agents' group, or that are no DNS label at all, get nothing; shared
/// roles survive clusters named `registration` and `work`; an object of a cluster's name that
/// the hub did not make is never adopted, overwritten or deleted; megabyte names are refused
/// before any review and cost the hub no memory.
#[tokio::test]
async fn cluster_names_cannot_take_roles_namespaces_or_memory() {
    let hub = Hub::start("attack-names", &["--auto-approved-users", BOOTSTRAP_USER]).await;
    let kube = hub.kube.clone();
    Api::<Namespace>::all(kube.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some("tenant-a".into()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await
        .unwrap();
    let leases: Api<Lease> = Api::namespaced(kube.clone(), "kube-system");
    leases
        .create(
            &PostParams::default(),
            &Lease {
                metadata: ObjectMeta {
                    name: Some("test-leader".into()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some("the-real-leader".into()),
                    ..LeaseSpec::default()
                }),
            },
        )
        .await
        .unwrap();
    let foreign_rules = vec![PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["configmaps".into()]),
        verbs: vec!["get".into()],
        ..PolicyRule::default()
    }];
    let roles: Api<ClusterRole> = Api::all(kube.clone());
    roles
        .create(
            &PostParams::default(),
            &ClusterRole {
                metadata: ObjectMeta {
                    name: Some(rbac::cluster_role_name("squat")),
                    ..ObjectMeta::default()
                },
                rules: Some(foreign_rules.clone()),
                ..ClusterRole::default()
            },
        )
        .await
        .unwrap();

    let bootstrap = hub.client(Some(hub.bootstrap_token().await), None);
    for name in [
        "kube-system",
        "default",
        "managed-clusters",
        "open-cluster-management-hub",
        "tenant-a",
        "Bad_Name",
    ] {
        let cluster = ManagedCluster::new(name, ManagedClusterSpec::default());
        let refused = bootstrap
            .publish(&create_event(
                RegistrationKind::ManagedCluster,
                name,
                &cluster,
            ))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{name}: {refused}");
    }
    let clusters: Api<ManagedCluster> = Api::all(kube.clone());
    assert!(clusters.get_opt("kube-system").await.unwrap().is_none());
    assert!(clusters.get_opt("tenant-a").await.unwrap().is_none());

    // `registration` and `work` are names like any other: they no longer name shared roles.
    for name in ["cluster1", "registration", "work"] {
        let cluster = ManagedCluster::new(name, ManagedClusterSpec::default());
        bootstrap
            .publish(&create_event(
                RegistrationKind::ManagedCluster,
                name,
                &cluster,
            ))
            .await
            .unwrap();
        hub.wait_accepted(name, true).await;
    }
    let shared = roles.get(rbac::SHARED_REGISTRATION_ROLE).await.unwrap();
    assert!(
        shared
            .rules
            .iter()
            .flatten()
            .any(|r| r.resources.iter().flatten().any(|x| x == "leases")),
        "{shared:?}"
    );
    let shared = roles.get(rbac::SHARED_WORK_ROLE).await.unwrap();
    assert!(
        shared.rules.iter().flatten().any(|r| r
            .resources
            .iter()
            .flatten()
            .any(|x| x == "manifestworks"))
    );
    clusters
        .delete("registration", &DeleteParams::default())
        .await
        .unwrap();
    ocm_testenv::eventually(
        "cluster registration removed",
        Duration::from_secs(30),
        async || {
            clusters
                .get_opt("registration")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    assert!(
        roles
            .get_opt(rbac::SHARED_REGISTRATION_ROLE)
            .await
            .unwrap()
            .is_some()
    );

    // A ClusterRole of the per-cluster name that the hub did not make: the cluster is refused,
    // the role untouched, even when the cluster is deleted.
    let squat = ManagedCluster::new("squat", ManagedClusterSpec::default());
    clusters
        .create(&PostParams::default(), &squat)
        .await
        .unwrap();
    let refused = hub.wait_accepted("squat", false).await;
    let condition = ocm_api::condition::find(
        &refused.status.unwrap().conditions,
        "HubAcceptedManagedCluster",
    )
    .cloned()
    .unwrap();
    assert_eq!(condition.reason, "HubRefusedClusterName");
    assert!(condition.message.contains("ClusterRole"), "{condition:?}");
    clusters
        .delete("squat", &DeleteParams::default())
        .await
        .unwrap();
    ocm_testenv::eventually(
        "cluster squat removed",
        Duration::from_secs(30),
        async || {
            clusters
                .get_opt("squat")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    let kept = roles.get(&rbac::cluster_role_name("squat")).await.unwrap();
    assert_eq!(kept.rules, Some(foreign_rules));
    assert!(kept.metadata.labels.is_none());
    assert_eq!(
        leases
            .get("test-leader")
            .await
            .unwrap()
            .spec
            .unwrap()
            .holder_identity
            .as_deref(),
        Some("the-real-leader")
    );

    // Megabyte cluster names: refused before any review, nothing kept.
    let rss = || {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", hub.process.id().unwrap())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
            .unwrap()
    };
    let before = rss();
    let huge = "a".repeat(2 << 20);
    for _ in 0..100 {
        let refused = bootstrap
            .try_subscribe(SubscriptionRequest {
                source: String::new(),
                cluster_name: huge.clone(),
                data_type: DataType::leases().to_string(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(refused.message().len() < 500, "the name is not echoed");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown = rss().saturating_sub(before);
    assert!(
        grown < 64 << 10,
        "hub RSS grew {grown} KiB for 200 MiB of names"
    );
    hub.stop();
}

/// M7, M1, M5: an accepted agent cannot read or write another cluster's CSRs, cannot change
/// its own labels, taints or finalizers, and loses its streams when its cluster is deleted; a
/// certificate stops working at its `notAfter` even on a connection opened before.
#[tokio::test]
async fn an_agent_acts_only_for_its_cluster_and_only_while_it_may() {
    let hub = Hub::start("attack-agent", &[]).await;
    let kube = hub.kube.clone();
    hub.accepted_cluster("cluster1").await;
    hub.accepted_cluster("cluster2").await;
    let cluster1 = hub.client(
        None,
        Some(
            hub.agent_identity("cluster1", Duration::from_secs(3600))
                .await,
        ),
    );

    // M7: another cluster's CSRs, read or written.
    let refused = cluster1
        .try_subscribe(SubscriptionRequest {
            source: String::new(),
            cluster_name: "cluster2".into(),
            data_type: DataType::certificate_signing_requests().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused}");
    let theirs = csr(
        "cluster2",
        "open-cluster-management.io/grpc",
        "system:open-cluster-management:cluster2:evil",
        &["system:open-cluster-management:cluster2", MANAGED_CLUSTERS],
    );
    let refused = cluster1
        .publish(&create_event(
            RegistrationKind::CertificateSigningRequest,
            "cluster2",
            &theirs,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused}");

    // M1: a spec update changes the client configs and nothing else.
    let clusters: Api<ManagedCluster> = Api::all(kube.clone());
    let mut tainted = clusters.get("cluster1").await.unwrap();
    tainted.spec.taints = vec![Taint {
        key: "admin.example.com/hold".into(),
        value: String::new(),
        effect: TaintEffect::NoSelect,
        time_added: None,
    }];
    // As stored: the defaults (the taint's timeAdded) are in it.
    let tainted = clusters
        .replace("cluster1", &PostParams::default(), &tainted)
        .await
        .unwrap();
    let mut forged = clusters.get("cluster1").await.unwrap();
    forged.metadata.labels = Some(BTreeMap::from([(
        "cluster.open-cluster-management.io/clusterset".to_owned(),
        "finance".to_owned(),
    )]));
    forged.metadata.finalizers = Some(vec![]);
    forged.spec.taints = vec![];
    forged.spec.managed_cluster_client_configs = vec![ocm_api::cluster::v1::ClientConfig {
        url: "https://cluster1.example.com".into(),
        ca_bundle: None,
    }];
    cluster1
        .publish(
            &registration::encode(
                RegistrationKind::ManagedCluster,
                SubResource::Spec,
                EventAction::UpdateRequest,
                "cluster1",
                &forged,
                uuid::Uuid::new_v4().to_string(),
                jiff::Timestamp::now(),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let stored = clusters.get("cluster1").await.unwrap();
    assert_eq!(
        stored.spec.managed_cluster_client_configs,
        forged.spec.managed_cluster_client_configs
    );
    assert_eq!(stored.spec.taints, tainted.spec.taints);
    assert!(
        stored
            .metadata
            .labels
            .unwrap_or_default()
            .get("cluster.open-cluster-management.io/clusterset")
            .is_none_or(|set| set != "finance")
    );
    assert!(
        stored
            .metadata
            .finalizers
            .unwrap_or_default()
            .iter()
            .any(|f| f == "cluster.open-cluster-management.io/api-resource-cleanup")
    );

    // M5: a deleted cluster's open stream gets no more works.
    let cancel = CancellationToken::new();
    let (_, mut inbox) = client::open(
        TransportConfig::Grpc(
            hub.config(
                None,
                Some(
                    hub.agent_identity("cluster1", Duration::from_secs(3600))
                        .await,
                ),
            ),
        ),
        Interest {
            role: Role::Agent {
                cluster: "cluster1".into(),
            },
            data_types: vec![DataType::manifest_bundles()],
        },
        InboxOptions::default(),
        cancel.clone(),
    )
    .unwrap();
    tokio::time::timeout(Duration::from_secs(20), inbox.resync.recv())
        .await
        .unwrap()
        .unwrap();
    let works: Api<ManifestWork> = Api::namespaced(kube.clone(), "cluster1");
    let work = |name: &str| {
        ManifestWork::new(
            name,
            ManifestWorkSpec {
                workload: ocm_api::work::v1::ManifestsTemplate {
                    manifests: vec![ocm_api::work::v1::Manifest(serde_json::json!({
                        "apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": name, "namespace": "default"},
                    }))],
                },
                ..ManifestWorkSpec::default()
            },
        )
    };
    works
        .create(&PostParams::default(), &work("before"))
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(15), inbox.events.recv())
        .await
        .expect("the agent gets works while its cluster exists")
        .unwrap();
    assert!(
        seen.event_type
            .starts_with("io.open-cluster-management.works")
    );
    works
        .delete("before", &DeleteParams::default())
        .await
        .unwrap();
    clusters
        .delete("cluster1", &DeleteParams::default())
        .await
        .unwrap();
    ocm_testenv::eventually("cluster1 removed", Duration::from_secs(30), async || {
        clusters
            .get_opt("cluster1")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    while inbox.events.try_recv().is_ok() {}
    works
        .create(&PostParams::default(), &work("after"))
        .await
        .unwrap();
    let late = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = inbox.events.recv().await.unwrap();
            if event.extension_str("resourceid").is_some() && event.event_type.contains("create") {
                return event;
            }
        }
    })
    .await;
    assert!(
        late.is_err(),
        "a deleted cluster's stream still got a work: {late:?}"
    );
    cancel.cancel();

    // A certificate that expires while its stream is open: the stream ends, refused.
    let short = hub.client(
        None,
        Some(hub.agent_identity("cluster2", Duration::from_secs(8)).await),
    );
    let mut refusal = short.credential_refusal();
    let (events, _events) = tokio::sync::mpsc::channel(16);
    let (subscribed, mut ids) = tokio::sync::mpsc::channel(4);
    let stop = CancellationToken::new();
    let running = {
        let stop = stop.clone();
        async move {
            short
                .run_subscription(
                    SubscriptionRequest {
                        source: String::new(),
                        cluster_name: "cluster2".into(),
                        data_type: DataType::managed_clusters().to_string(),
                    },
                    events,
                    subscribed,
                    ocm_transport::grpc_client::SubscribeOptions::default(),
                    stop,
                )
                .await;
        }
    };
    let watch = async {
        tokio::time::timeout(Duration::from_secs(10), ids.recv())
            .await
            .expect("subscribed while the certificate is valid");
        tokio::time::timeout(Duration::from_secs(30), refusal.wait_for(Option::is_some))
            .await
            .expect("the stream outlived the certificate")
            .unwrap()
            .clone()
    };
    let refused = tokio::select! {
        () = running => panic!("the subscription ended by itself"),
        refused = watch => refused,
    };
    stop.cancel();
    assert!(refused.unwrap().contains("expired"));
    hub.stop();
}

/// H3: a stranger's request is answered `Unauthenticated` on its headers, before its 4 MB body
/// has arrived (a broker that reads the body first answers nothing until it is complete).
#[tokio::test]
async fn a_stranger_is_refused_before_its_body_is_read() {
    let hub = Hub::start("attack-h3", &[]).await;
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject as _;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(hub.ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", hub.grpc_port))
        .await
        .unwrap();
    let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (sender, connection) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(connection);
    let mut sender = sender.ready().await.unwrap();
    let request = http::Request::builder()
        .method("POST")
        .uri(format!(
            "https://localhost:{}/io.cloudevents.v1.CloudEventService/Publish",
            hub.grpc_port
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut body) = sender.send_request(request, false).unwrap();
    // A gRPC frame that announces 4,000,000 bytes, and only the first of them.
    let mut frame = vec![0u8];
    frame.extend_from_slice(&4_000_000u32.to_be_bytes());
    frame.extend_from_slice(&[0u8; 16 << 10]);
    body.send_data(bytes::Bytes::from(frame), false).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .expect("no answer before the body was complete")
        .unwrap();
    let status = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(status.as_deref(), Some("16"), "{response:?}");
    hub.stop();
}
