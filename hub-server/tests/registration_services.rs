//! The hub's registration services behind the real broker, on a real apiserver, driven by an
//! agent through our gRPC client over mutual TLS: what the agent publishes lands in the hub's
//! Kubernetes (ManagedCluster, its status, CSR, lease, event), the hub's objects come back as
//! spec events, a spec resync answers with what the agent lacks and deletes what the hub lost,
//! and bad requests fail as OCM's clients expect.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ocm_api::cluster::v1::{
    ManagedCluster, ManagedClusterSpec, ManagedClusterStatus, ManagedClusterVersion,
};
use ocm_api::k8s_openapi::ByteString;
use ocm_api::k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use ocm_api::k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use ocm_api::k8s_openapi::api::core::v1::Namespace;
use ocm_api::k8s_openapi::api::events::v1::Event;
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use ocm_api::kube::Api;
use ocm_api::kube::api::{ListParams, PostParams};
use ocm_api::kube::runtime::watcher;
use ocm_hub_server::crds;
use ocm_hub_server::pki::{HubPki, PkiConfig, ensure};
use ocm_hub_server::services::source::publish_changes;
use ocm_hub_server::services::{
    ClusterIndex, CsrOps, EventOps, LeaseOps, ManagedClusterOps, Outbox, RegistrationService,
};
use ocm_testenv::Cluster;
use ocm_transport::access::AccessRequest;
use ocm_transport::broker::{self, Authorizer, Broker, BrokerConfig, EventHandler, Identity};
use ocm_transport::client::{
    self, Inbox, InboxOptions, Interest, PublishError, Publisher, Role, TransportConfig,
};
use ocm_transport::event::CloudEvent;
use ocm_transport::event_type::{DataType, EventAction, SubResource};
use ocm_transport::grpc_config::GrpcClientConfig;
use ocm_transport::registration::{self, CLUSTER_NAME_LABEL, Decoded, RegistrationKind};
use ocm_transport::resync::{ResourceVersion, ResourceVersionList};
use ocm_transport::status_error;
use ocm_transport::tls::{self, PemIdentity, ReloadableIdentity};
use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair};
use tokio_util::sync::CancellationToken;

const AGENT: &str = "system:open-cluster-management:cluster1:agent1";
const MANAGED_CLUSTERS: &str = "system:open-cluster-management:managed-clusters";

/// An agent may act in its own cluster's namespace only (RBAC's job in the hub; here the
/// services are under test).
struct OwnClusterOnly;

#[tonic::async_trait]
impl Authorizer for OwnClusterOnly {
    async fn authorize(&self, who: &Identity, request: &AccessRequest) -> Result<bool, String> {
        Ok(who
            .groups
            .iter()
            .any(|g| *g == format!("system:open-cluster-management:{}", request.namespace)))
    }
}

fn agent_identity(pki: &HubPki) -> PemIdentity {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::OrganizationName,
        "system:open-cluster-management:cluster1",
    );
    dn.push(DnType::CustomDnType(vec![2, 5, 4, 10]), MANAGED_CLUSTERS);
    dn.push(DnType::CommonName, AGENT);
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &pki.issuer().unwrap()).unwrap();
    PemIdentity {
        cert_chain: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn spec_event<K: ocm_api::kube::Resource + serde::Serialize>(
    kind: RegistrationKind,
    sub: SubResource,
    action: EventAction,
    object: &K,
) -> CloudEvent {
    registration::encode(
        kind,
        sub,
        action,
        "cluster1",
        object,
        uuid::Uuid::new_v4().to_string(),
        jiff::Timestamp::now(),
    )
    .unwrap()
}

/// The next event of `kind` from the hub, skipping others.
async fn next_of(inbox: &mut Inbox, kind: RegistrationKind, what: &str) -> CloudEvent {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let event = tokio::time::timeout_at(deadline, inbox.events.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap();
        if event.event_type.starts_with(&kind.data_type().to_string()) {
            return event;
        }
    }
}

/// The Kubernetes status a refused publish carried.
fn refusal(err: PublishError) -> (tonic::Code, status_error::Status) {
    match err {
        PublishError::Grpc(status) => (
            status.code(),
            status_error::Status::from_grpc_message(status.message()),
        ),
        other => panic!("not a broker refusal: {other}"),
    }
}

#[tokio::test]
async fn an_agent_registers_reports_and_resyncs_through_the_hubs_services() {
    let hub = Cluster::start("services").await.unwrap();
    let kube = hub.client().unwrap();
    let all_crds: Vec<_> = ocm_api::crds::hub();
    crds::install(&kube, &all_crds, Duration::from_secs(30))
        .await
        .unwrap();
    Api::<Namespace>::all(kube.clone())
        .create(
            &PostParams::default(),
            // Labelled as acceptance makes it: a namespace of the cluster's name that is not
            // the cluster's would refuse the cluster.
            &Namespace {
                metadata: ObjectMeta {
                    name: Some("cluster1".into()),
                    labels: Some([(CLUSTER_NAME_LABEL.to_owned(), "cluster1".to_owned())].into()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await
        .unwrap();
    let pki = ensure(&kube, &PkiConfig::new(vec!["localhost".into()]))
        .await
        .unwrap();

    // The hub: services, broker, watchers.
    let outbox = Outbox::new();
    let cluster_index = ClusterIndex::new(RegistrationKind::ManagedCluster);
    let csr_index = ClusterIndex::new(RegistrationKind::CertificateSigningRequest);
    let lease_index = ClusterIndex::new(RegistrationKind::Lease);
    let handlers: HashMap<DataType, Arc<dyn EventHandler>> = HashMap::from([
        (
            DataType::managed_clusters(),
            Arc::new(RegistrationService::new(
                ManagedClusterOps::new(
                    kube.clone(),
                    cluster_index.clone(),
                    Arc::new(OwnClusterOnly),
                ),
                outbox.clone(),
            )) as Arc<dyn EventHandler>,
        ),
        (
            DataType::certificate_signing_requests(),
            Arc::new(RegistrationService::new(
                CsrOps::new(kube.clone(), csr_index.clone()),
                outbox.clone(),
            )),
        ),
        (
            DataType::leases(),
            Arc::new(RegistrationService::new(
                LeaseOps::new(
                    kube.clone(),
                    lease_index.clone(),
                    Arc::new(ocm_hub_server::registration::liveness::Liveness::new()),
                    Duration::ZERO,
                ),
                outbox.clone(),
            )),
        ),
        (
            DataType::events(),
            Arc::new(RegistrationService::new(
                EventOps::new(kube.clone()),
                outbox.clone(),
            )),
        ),
    ]);
    let broker = Broker::new(
        BrokerConfig::default(),
        handlers,
        None,
        Arc::new(OwnClusterOnly),
    );
    outbox.connect(broker.clone());
    let cancel = CancellationToken::new();
    let labelled = watcher::Config::default().labels(CLUSTER_NAME_LABEL);
    tokio::spawn(publish_changes(
        RegistrationKind::ManagedCluster,
        Api::<ManagedCluster>::all(kube.clone()),
        watcher::Config::default(),
        cluster_index,
        outbox.clone(),
        cancel.clone(),
    ));
    tokio::spawn(publish_changes(
        RegistrationKind::CertificateSigningRequest,
        Api::<CertificateSigningRequest>::all(kube.clone()),
        labelled.clone(),
        csr_index,
        outbox.clone(),
        cancel.clone(),
    ));
    tokio::spawn(publish_changes(
        RegistrationKind::Lease,
        Api::<Lease>::all(kube.clone()),
        labelled,
        lease_index,
        outbox.clone(),
        cancel.clone(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server_tls =
        tls::server_config(ReloadableIdentity::new(&pki.serving).unwrap(), &pki.ca_pem).unwrap();
    let stopped = cancel.clone();
    tokio::spawn(broker::serve(
        broker.clone(),
        listener,
        Arc::new(server_tls),
        4 << 20,
        async move { stopped.cancelled().await },
    ));

    // The agent.
    let config = TransportConfig::Grpc(GrpcClientConfig {
        url: format!("localhost:{port}"),
        ca_pem: Some(pki.ca_pem.clone()),
        client_identity: Some(agent_identity(&pki)),
        token: None,
        keep_alive: None,
        server_healthiness_timeout: None,
        proxy: None,
    });
    let interest = Interest {
        role: Role::Agent {
            cluster: "cluster1".into(),
        },
        data_types: vec![
            DataType::managed_clusters(),
            DataType::certificate_signing_requests(),
            DataType::leases(),
        ],
    };
    let (agent, mut inbox): (Publisher, Inbox) =
        client::open(config, interest, InboxOptions::default(), cancel.clone()).unwrap();
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(15), inbox.resync.recv())
            .await
            .unwrap()
            .unwrap();
    }

    // Join: the ManagedCluster is created, not accepted whatever the agent says, and echoed back.
    let joining = ManagedCluster::new(
        "cluster1",
        ManagedClusterSpec {
            hub_accepts_client: true,
            lease_duration_seconds: 60,
            ..ManagedClusterSpec::default()
        },
    );
    agent
        .publish(&spec_event(
            RegistrationKind::ManagedCluster,
            SubResource::Spec,
            EventAction::CreateRequest,
            &joining,
        ))
        .await
        .unwrap();
    let clusters: Api<ManagedCluster> = Api::all(kube.clone());
    let created = clusters.get("cluster1").await.unwrap();
    assert!(
        !created.spec.hub_accepts_client,
        "an agent cannot accept itself"
    );
    let echoed = next_of(
        &mut inbox,
        RegistrationKind::ManagedCluster,
        "the ManagedCluster echo",
    )
    .await;
    let Decoded::Object(mine) =
        registration::decode::<ManagedCluster>(RegistrationKind::ManagedCluster, &echoed).unwrap()
    else {
        panic!("a deletion")
    };
    assert_eq!(mine.metadata.uid, created.metadata.uid);

    // Creating it again: AlreadyExists, as a Kubernetes status the Go agent understands.
    let (code, status) = refusal(
        agent
            .publish(&spec_event(
                RegistrationKind::ManagedCluster,
                SubResource::Spec,
                EventAction::CreateRequest,
                &joining,
            ))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, status.reason.as_str(), status.code),
        (tonic::Code::FailedPrecondition, "AlreadyExists", 409)
    );

    // Another cluster's ManagedCluster, sent as cluster1: refused.
    // Addressed to cluster2, the broker's authorization refuses it; addressed to cluster1 with
    // cluster2's object inside, the service does.
    let foreign = ManagedCluster::new("cluster2", ManagedClusterSpec::default());
    let mut event = spec_event(
        RegistrationKind::ManagedCluster,
        SubResource::Spec,
        EventAction::CreateRequest,
        &foreign,
    );
    for (clustername, says) in [
        ("cluster2", "may not act for cluster cluster2"),
        ("cluster1", "belongs to cluster \"cluster2\""),
    ] {
        event.extensions.insert(
            "clustername".into(),
            ocm_transport::ExtensionValue::String(clustername.into()),
        );
        let err = agent.publish(&event).await.unwrap_err();
        let PublishError::Grpc(status) = &err else {
            panic!("{err}")
        };
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert!(status.message().contains(says), "{status}");
    }
    assert!(clusters.get_opt("cluster2").await.unwrap().is_none());

    // Status: applied with the agent's resourceVersion; a stale one is a Conflict.
    let mut reporting = mine.clone();
    reporting.status = Some(ManagedClusterStatus {
        version: Some(ManagedClusterVersion {
            kubernetes: "v1.33.2".into(),
        }),
        ..ManagedClusterStatus::default()
    });
    agent
        .publish(&spec_event(
            RegistrationKind::ManagedCluster,
            SubResource::Status,
            EventAction::UpdateRequest,
            &reporting,
        ))
        .await
        .unwrap();
    let reported = clusters.get("cluster1").await.unwrap();
    assert_eq!(
        reported.status.unwrap().version.unwrap().kubernetes,
        "v1.33.2"
    );
    let (code, status) = refusal(
        agent
            .publish(&spec_event(
                RegistrationKind::ManagedCluster,
                SubResource::Status,
                EventAction::UpdateRequest,
                &reporting,
            ))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, status.reason.as_str(), status.code),
        (tonic::Code::FailedPrecondition, "Conflict", 409)
    );

    // CSR: created by the hub, with the requester recorded, and echoed back to the agent.
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some("cluster1-x7k2p".into()),
            labels: Some(BTreeMap::from([(
                CLUSTER_NAME_LABEL.to_owned(),
                "cluster1".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(
                b"-----BEGIN CERTIFICATE REQUEST-----\nMA==\n-----END CERTIFICATE REQUEST-----\n"
                    .to_vec(),
            ),
            signer_name: "open-cluster-management.io/grpc".into(),
            usages: Some(vec!["client auth".into()]),
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    };
    // A malformed request is refused by the hub before anything is created (the hub creates
    // CSRs in its own name, so it relays only well-formed agent requests), with the reason.
    let err = agent
        .publish(&spec_event(
            RegistrationKind::CertificateSigningRequest,
            SubResource::Spec,
            EventAction::CreateRequest,
            &csr,
        ))
        .await
        .unwrap_err();
    let PublishError::Grpc(status) = &err else {
        panic!("{err}")
    };
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");
    assert!(status.message().contains("malformed request"), "{status}");
    let mut csr = csr;
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(
        DnType::OrganizationName,
        "system:open-cluster-management:cluster1",
    );
    params
        .distinguished_name
        .push(DnType::CustomDnType(vec![2, 5, 4, 10]), MANAGED_CLUSTERS);
    params.distinguished_name.push(DnType::CommonName, AGENT);
    csr.spec.request = ByteString(
        params
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap()
            .into_bytes(),
    );
    agent
        .publish(&spec_event(
            RegistrationKind::CertificateSigningRequest,
            SubResource::Spec,
            EventAction::CreateRequest,
            &csr,
        ))
        .await
        .unwrap();
    let stored = Api::<CertificateSigningRequest>::all(kube.clone())
        .get("cluster1-x7k2p")
        .await
        .unwrap();
    assert_eq!(
        stored.metadata.annotations.unwrap()["open-cluster-management.io/csr-user"],
        AGENT
    );
    next_of(
        &mut inbox,
        RegistrationKind::CertificateSigningRequest,
        "the CSR echo",
    )
    .await;

    // Lease: the hub creates it; updating a missing one is NotFound.
    let mut lease = Lease {
        metadata: ObjectMeta {
            name: Some("managed-cluster-lease".into()),
            namespace: Some("cluster1".into()),
            labels: Some(BTreeMap::from([(
                CLUSTER_NAME_LABEL.to_owned(),
                "cluster1".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            lease_duration_seconds: Some(60),
            ..LeaseSpec::default()
        }),
    };
    let (code, status) = refusal(
        agent
            .publish(&spec_event(
                RegistrationKind::Lease,
                SubResource::Spec,
                EventAction::UpdateRequest,
                &lease,
            ))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, status.reason.as_str(), status.code),
        (tonic::Code::FailedPrecondition, "NotFound", 404)
    );
    let leases: Api<Lease> = Api::namespaced(kube.clone(), "cluster1");
    let hub_lease = leases.create(&PostParams::default(), &lease).await.unwrap();
    let lease_event = next_of(&mut inbox, RegistrationKind::Lease, "the lease").await;
    let Decoded::Object(received) =
        registration::decode::<Lease>(RegistrationKind::Lease, &lease_event).unwrap()
    else {
        panic!()
    };
    lease = received;
    lease.spec.as_mut().unwrap().renew_time = Some(MicroTime(jiff::Timestamp::now()));
    agent
        .publish(&spec_event(
            RegistrationKind::Lease,
            SubResource::Spec,
            EventAction::UpdateRequest,
            &lease,
        ))
        .await
        .unwrap();
    let renewed = leases.get("managed-cluster-lease").await.unwrap();
    assert!(renewed.spec.unwrap().renew_time.is_some());

    // Spec resync: the agent holds the lease at its first version and a lease the hub never had.
    let held = ResourceVersionList {
        resource_versions: vec![
            ResourceVersion {
                resource_id: hub_lease.metadata.uid.clone().unwrap(),
                resource_version: hub_lease
                    .metadata
                    .resource_version
                    .clone()
                    .unwrap()
                    .parse()
                    .unwrap(),
            },
            ResourceVersion {
                resource_id: "gone-uid".into(),
                resource_version: 7,
            },
        ],
    };
    let mut resync = spec_event(
        RegistrationKind::Lease,
        SubResource::Spec,
        EventAction::ResyncRequest,
        &lease,
    );
    resync.data = Some(serde_json::to_vec(&held).unwrap());
    agent.publish(&resync).await.unwrap();
    let mut answers = Vec::new();
    while answers.len() < 2 {
        let event = next_of(&mut inbox, RegistrationKind::Lease, "the resync answers").await;
        if event.event_type.ends_with("resync_response") {
            answers.push(event);
        }
    }
    let newer = answers
        .iter()
        .find(|e| e.data.is_some())
        .expect("the newer lease");
    assert_eq!(
        newer.extension_str("resourceid"),
        hub_lease.metadata.uid.as_deref()
    );
    let deletion = answers
        .iter()
        .find(|e| e.data.is_none())
        .expect("a deletion");
    assert_eq!(deletion.extension_str("resourceid"), Some("gone-uid"));
    assert!(deletion.extension_timestamp("deletiontimestamp").is_some());
    assert_eq!(deletion.extension_str("resourceversion"), Some("7"));

    // Events: recorded in the cluster's namespace.
    let event = Event {
        metadata: ObjectMeta {
            name: Some("cluster1.available".into()),
            namespace: Some("cluster1".into()),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(jiff::Timestamp::now())),
        reason: Some("AvailableChanged".into()),
        note: Some("cluster became available".into()),
        type_: Some("Normal".into()),
        action: Some("StatusUpdate".into()),
        reporting_controller: Some("ocm-agent".into()),
        reporting_instance: Some("cluster1-agent1".into()),
        regarding: Some(ocm_api::k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("cluster.open-cluster-management.io/v1".into()),
            kind: Some("ManagedCluster".into()),
            name: Some("cluster1".into()),
            namespace: Some("cluster1".into()),
            ..Default::default()
        }),
        ..Event::default()
    };
    agent
        .publish(&spec_event(
            RegistrationKind::Event,
            SubResource::Spec,
            EventAction::CreateRequest,
            &event,
        ))
        .await
        .unwrap();
    let recorded = Api::<Event>::namespaced(kube.clone(), "cluster1")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        recorded
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("AvailableChanged"))
    );

    cancel.cancel();
    hub.stop();
}
