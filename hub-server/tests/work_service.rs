//! The hub's work service behind the real broker, on a real apiserver with the real RBAC the hub
//! grants an accepted cluster (checked by SubjectAccessReview), driven by an agent through our
//! gRPC client over mutual TLS: a ManifestWork reaches the agent as OCM's spec event, label
//! changes follow, status comes back into the work (with the finalizer) — not rewritten when
//! unchanged, ignored when stale, coalesced in a burst — a spec resync answers with the newer
//! work and a deletion for the unknown one, a malformed status is refused, and deletion runs to
//! its end through the agent's `Deleted=True`.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ocm_api::condition::{Condition, ConditionStatus};
use ocm_api::k8s_openapi::api::core::v1::Namespace;
use ocm_api::k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use ocm_api::kube::api::{DeleteParams, GetParams, Patch, PatchParams, PostParams};
use ocm_api::kube::core::Request;
use ocm_api::kube::{Api, Client};
use ocm_api::work::v1::{
    CONDITION_APPLIED, CONDITION_DELETED, MANIFEST_WORK_FINALIZER, Manifest, ManifestWork,
    ManifestWorkSpec, ManifestWorkStatus, ManifestsTemplate, REASON_MANIFESTS_DELETED,
};
use ocm_hub_server::auth::SubjectAccessReviewAuthorizer;
use ocm_hub_server::crds;
use ocm_hub_server::metrics::HubMetrics;
use ocm_hub_server::pki::{HubPki, PkiConfig, ensure};
use ocm_hub_server::registration::rbac;
use ocm_hub_server::services::Outbox;
use ocm_hub_server::work::{self, WorkConfig};
use ocm_testenv::Cluster;
use ocm_transport::broker::{self, Broker, BrokerConfig, EventHandler};
use ocm_transport::client::TransportConfig;
use ocm_transport::client::{self, Inbox, InboxOptions, Interest, PublishError, Publisher, Role};
use ocm_transport::event::{CloudEvent, ExtensionValue, extension};
use ocm_transport::event_type::{DataType, EventAction};
use ocm_transport::grpc_config::GrpcClientConfig;
use ocm_transport::resync::{self, ResourceVersion, ResourceVersionList};
use ocm_transport::sequence_id::SequenceIdGenerator;
use ocm_transport::tls::{self, PemIdentity, ReloadableIdentity};
use ocm_transport::work::{self as codec, ORIGINAL_SOURCE_LABEL};
use prometheus_client::registry::Registry;
use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair};
use tokio_util::sync::CancellationToken;

const CLUSTER: &str = "cluster1";
const AGENT: &str = "system:open-cluster-management:cluster1:agent1";
const AGENT_ID: &str = "cluster1-work-agent";

fn agent_identity(pki: &HubPki) -> PemIdentity {
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

/// The next spec event the agent receives.
async fn next_event(inbox: &mut Inbox, what: &str) -> CloudEvent {
    tokio::time::timeout(Duration::from_secs(15), inbox.events.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap()
}

/// Nothing arrives for a while: the hub's own writes do not echo back to the agent.
async fn quiet(inbox: &mut Inbox, what: &str) {
    if let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(1500), inbox.events.recv()).await
    {
        panic!(
            "{what}: unexpected {} {:?}",
            event.event_type, event.extensions
        );
    }
}

async fn eventually<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    ocm_testenv::eventually(what, Duration::from_secs(20), check).await
}

/// ManifestWork status patches the apiserver accepted (its own request counter), so a test can
/// see writes that changed nothing, which leave no trace in the objects.
async fn status_patches(kube: &Client) -> u64 {
    let request = Request::new("")
        .get("metrics", &GetParams::default())
        .unwrap();
    let metrics = kube.request_text(request).await.unwrap();
    metrics
        .lines()
        .filter(|line| {
            line.starts_with("apiserver_request_total{")
                && [
                    r#"code="200""#,
                    r#"resource="manifestworks""#,
                    r#"subresource="status""#,
                    r#"verb="PATCH""#,
                ]
                .iter()
                .all(|label| line.contains(label))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn condition(r#type: &str, status: ConditionStatus, reason: &str, message: &str) -> Condition {
    Condition {
        r#type: r#type.into(),
        status,
        observed_generation: None,
        last_transition_time: Time(jiff::Timestamp::from_second(1_765_864_817).unwrap()),
        reason: reason.into(),
        message: message.into(),
    }
}

fn applied(message: &str) -> ManifestWorkStatus {
    ManifestWorkStatus {
        conditions: vec![condition(
            CONDITION_APPLIED,
            ConditionStatus::True,
            "AppliedManifestWorkComplete",
            message,
        )],
        ..ManifestWorkStatus::default()
    }
}

/// The agent's status event for its copy of a work.
fn status_event(
    agent_work: &ManifestWork,
    status: ManifestWorkStatus,
    sequence: &SequenceIdGenerator,
) -> CloudEvent {
    let mut reporting = agent_work.clone();
    reporting.status = Some(status);
    codec::encode_status(
        &reporting,
        AGENT_ID,
        EventAction::UpdateRequest,
        sequence.next_id(),
        uuid::Uuid::new_v4().to_string(),
        jiff::Timestamp::now(),
    )
    .unwrap()
}

fn config_map(data: &str) -> ManifestWorkSpec {
    ManifestWorkSpec {
        workload: ManifestsTemplate {
            manifests: vec![Manifest(serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "web-config", "namespace": "default"},
                "data": {"greeting": data}
            }))],
        },
        ..ManifestWorkSpec::default()
    }
}

fn message_of(work: &ManifestWork) -> Option<String> {
    let status = work.status.as_ref()?;
    ocm_api::condition::find(&status.conditions, CONDITION_APPLIED).map(|c| c.message.clone())
}

#[tokio::test]
async fn works_reach_the_agent_and_its_status_comes_back() {
    let hub = Cluster::start("works").await.unwrap();
    let kube = hub.client().unwrap();
    crds::install(&kube, &ocm_api::crds::hub(), Duration::from_secs(30))
        .await
        .unwrap();
    Api::<Namespace>::all(kube.clone())
        .create(&PostParams::default(), &rbac::cluster_namespace(CLUSTER))
        .await
        .unwrap();
    // The RBAC an accepted cluster is granted, checked through SubjectAccessReviews.
    Api::<ClusterRole>::all(kube.clone())
        .create(&PostParams::default(), &rbac::shared_work_role())
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(kube.clone(), CLUSTER)
        .create(&PostParams::default(), &rbac::work_role_binding(CLUSTER))
        .await
        .unwrap();
    let pki = ensure(&kube, &PkiConfig::new(vec!["localhost".into()]))
        .await
        .unwrap();

    // The hub: the work service behind the broker.
    let cancel = CancellationToken::new();
    let metrics = HubMetrics::register(&mut Registry::default());
    let outbox = Outbox::new();
    let service = work::start(
        kube.clone(),
        outbox.clone(),
        Arc::clone(&metrics),
        WorkConfig::default(),
        cancel.clone(),
    );
    let handlers: HashMap<DataType, Arc<dyn EventHandler>> =
        HashMap::from([(DataType::manifest_bundles(), Arc::new(service) as _)]);
    let broker = Broker::new(
        BrokerConfig::default(),
        handlers,
        None,
        Arc::new(SubjectAccessReviewAuthorizer::new(
            kube.clone(),
            Duration::from_secs(10),
        )),
    );
    outbox.connect(broker.clone());
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
            cluster: CLUSTER.into(),
        },
        data_types: vec![DataType::manifest_bundles()],
    };
    let (agent, mut inbox): (Publisher, Inbox) =
        client::open(config, interest, InboxOptions::default(), cancel.clone()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), inbox.resync.recv())
        .await
        .unwrap()
        .unwrap();
    let sequence = SequenceIdGenerator::default();

    // A work is created: the agent receives OCM's spec event for it.
    let works: Api<ManifestWork> = Api::namespaced(kube.clone(), CLUSTER);
    let created = works
        .create(
            &PostParams::default(),
            &ManifestWork::new("web", config_map("hello")),
        )
        .await
        .unwrap();
    let uid = created.metadata.uid.clone().unwrap();
    let event = next_event(&mut inbox, "the new work").await;
    assert_eq!(event.source, "kube");
    assert_eq!(
        event.event_type,
        "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request"
    );
    assert_eq!(
        event.extension_str(extension::RESOURCE_ID),
        Some(uid.as_str())
    );
    assert_eq!(
        event.extensions[extension::RESOURCE_VERSION],
        ExtensionValue::Integer(1),
        "resourceversion is the generation, as a CloudEvents integer"
    );
    assert_eq!(event.cluster_name(), Some(CLUSTER));
    assert_eq!(event.extension_str(extension::ORIGINAL_SOURCE), Some(""));
    assert_eq!(event.extension_str(extension::LOG_TRACING), Some("{}"));
    assert_eq!(event.data_content_type.as_deref(), Some("application/json"));
    let metadata: ObjectMeta =
        serde_json::from_str(event.extension_str(extension::METADATA).unwrap()).unwrap();
    assert_eq!(
        (metadata.name.as_deref(), metadata.uid.as_deref()),
        (Some("web"), Some(uid.as_str()))
    );
    assert!(
        std::str::from_utf8(event.data.as_deref().unwrap())
            .unwrap()
            .starts_with(r#"{"manifests":[{"apiVersion":"v1""#)
    );
    let agent_work = codec::decode_spec(&event).unwrap();
    assert_eq!(agent_work.spec, config_map("hello"));
    assert_eq!(
        agent_work.metadata.labels.as_ref().unwrap()[ORIGINAL_SOURCE_LABEL],
        "kube"
    );

    // A label changes: an update, at the same generation.
    works
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {"tier": "front"}}})),
        )
        .await
        .unwrap();
    let event = next_event(&mut inbox, "the label change").await;
    assert!(
        event.event_type.ends_with(".spec.update_request"),
        "{}",
        event.event_type
    );
    let agent_work = codec::decode_spec(&event).unwrap();
    assert_eq!(
        agent_work.metadata.labels.as_ref().unwrap()["tier"],
        "front"
    );
    assert_eq!(agent_work.metadata.generation, Some(1));

    // The agent reports: the status is written and the finalizer added.
    agent
        .publish(&status_event(&agent_work, applied("first"), &sequence))
        .await
        .unwrap();
    let reported = eventually("the status and the finalizer on the work", async || {
        let work = works.get("web").await.unwrap();
        let finalized = work
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == MANIFEST_WORK_FINALIZER);
        (finalized && message_of(&work).as_deref() == Some("first")).then_some(work)
    })
    .await;
    eventually("the write to be recorded", async || {
        (metrics.work_status_writes.get() == 1).then_some(())
    })
    .await;
    // Neither the status nor the finalizer is news for the agent.
    quiet(&mut inbox, "after the hub's own writes").await;

    // The same status again: no write at all.
    let patches = status_patches(&kube).await;
    agent
        .publish(&status_event(&agent_work, applied("first"), &sequence))
        .await
        .unwrap();
    eventually("the unchanged status to be skipped", async || {
        (metrics.skipped_statuses("unchanged") >= 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status_patches(&kube).await, patches, "no status patch");
    assert_eq!(metrics.work_status_writes.get(), 1);
    assert_eq!(
        works.get("web").await.unwrap().metadata.resource_version,
        reported.metadata.resource_version
    );

    // The spec changes (generation 2); a late status for generation 1 is ignored.
    works
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": config_map("hello again")})),
        )
        .await
        .unwrap();
    let event = next_event(&mut inbox, "the new generation").await;
    assert_eq!(
        event.extensions[extension::RESOURCE_VERSION],
        ExtensionValue::Integer(2)
    );
    let stale_work = agent_work;
    let agent_work = codec::decode_spec(&event).unwrap();
    assert_eq!(agent_work.spec, config_map("hello again"));
    agent
        .publish(&status_event(&stale_work, applied("stale"), &sequence))
        .await
        .unwrap();
    assert_eq!(metrics.skipped_statuses("stale"), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        message_of(&works.get("web").await.unwrap()).as_deref(),
        Some("first")
    );

    // A burst of 50 statuses for one work, all at once: few writes, and the last one wins.
    let writes = metrics.work_status_writes.get();
    let patches = status_patches(&kube).await;
    let burst: Vec<CloudEvent> = (0..50)
        .map(|i| status_event(&agent_work, applied(&format!("burst {i}")), &sequence))
        .collect();
    let published = futures::future::join_all(burst.iter().map(|event| agent.publish(event))).await;
    assert!(published.iter().all(Result::is_ok), "{published:?}");
    eventually("the last status of the burst", async || {
        (message_of(&works.get("web").await.unwrap()).as_deref() == Some("burst 49")).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let burst_writes = metrics.work_status_writes.get() - writes;
    let burst_patches = status_patches(&kube).await - patches;
    eprintln!(
        "a burst of 50 statuses: {burst_writes} writes, {} coalesced",
        metrics.skipped_statuses("coalesced")
    );
    assert!(
        (1..=10).contains(&burst_writes) && burst_patches == burst_writes,
        "50 statuses cost {burst_writes} writes ({burst_patches} patches counted by the apiserver)"
    );
    assert_eq!(
        message_of(&works.get("web").await.unwrap()).as_deref(),
        Some("burst 49"),
        "nothing older overwrote the last"
    );

    // Spec resync: the agent holds the work at generation 1 and a work the hub never had.
    let held = ResourceVersionList {
        resource_versions: vec![
            ResourceVersion {
                resource_id: uid.clone(),
                resource_version: 1,
            },
            ResourceVersion {
                resource_id: "gone-uid".into(),
                resource_version: 7,
            },
        ],
    };
    agent
        .publish(&resync::spec_resync_request(
            &DataType::manifest_bundles(),
            AGENT_ID,
            CLUSTER,
            &held,
            uuid::Uuid::new_v4().to_string(),
            jiff::Timestamp::now(),
        ))
        .await
        .unwrap();
    let mut answers = Vec::new();
    while answers.len() < 2 {
        let event = next_event(&mut inbox, "the resync answers").await;
        assert!(
            event.event_type.ends_with(".spec.resync_response"),
            "{}",
            event.event_type
        );
        answers.push(event);
    }
    let newer = answers.iter().find(|e| e.data.is_some()).expect("the work");
    assert_eq!(
        newer.extension_str(extension::RESOURCE_ID),
        Some(uid.as_str())
    );
    assert_eq!(
        newer.extensions[extension::RESOURCE_VERSION],
        ExtensionValue::Integer(2)
    );
    let deletion = answers
        .iter()
        .find(|e| e.data.is_none())
        .expect("a deletion");
    assert_eq!(
        deletion.extension_str(extension::RESOURCE_ID),
        Some("gone-uid")
    );
    assert_eq!(
        deletion.extensions[extension::RESOURCE_VERSION],
        ExtensionValue::Integer(7),
        "the Go work agent needs resourceversion to decode a deletion"
    );
    let forget = codec::decode_spec(deletion).unwrap();
    assert!(forget.metadata.deletion_timestamp.is_some());

    // A malformed status: refused with the reason; the work is untouched.
    let mut malformed = status_event(&agent_work, applied("malformed"), &sequence);
    malformed.extensions.remove(extension::SEQUENCE_ID);
    let mut bad_data = status_event(&agent_work, applied("malformed"), &sequence);
    bad_data.data = Some(br#"{"conditions":[{"type":"Applied"}]}"#.to_vec());
    for (event, says) in [
        (malformed, "no sequenceid extension"),
        (bad_data, "missing field"),
    ] {
        let err = agent.publish(&event).await.unwrap_err();
        let PublishError::Grpc(status) = &err else {
            panic!("{err}")
        };
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");
        assert!(status.message().contains(says), "{status}");
    }
    let untouched = works.get("web").await.unwrap();
    assert_eq!(message_of(&untouched).as_deref(), Some("burst 49"));

    // Deletion: the finalizer holds the work; the agent hears it is being deleted.
    works.delete("web", &DeleteParams::default()).await.unwrap();
    let event = next_event(&mut inbox, "the deletion").await;
    assert!(
        event.event_type.ends_with(".spec.update_request"),
        "{}",
        event.event_type
    );
    assert!(
        event
            .extension_timestamp(extension::DELETION_TIMESTAMP)
            .is_some()
    );
    assert_eq!(
        (event.data.as_ref(), event.data_content_type.as_ref()),
        (None, None)
    );
    let deleting = codec::decode_spec(&event).unwrap();
    assert_eq!(
        deleting.metadata.finalizers,
        Some(vec![MANIFEST_WORK_FINALIZER.to_owned()])
    );
    assert!(works.get_opt("web").await.unwrap().is_some());

    // The agent reports its resources deleted: the finalizer goes, and with it the work.
    let done = ManifestWorkStatus {
        conditions: vec![condition(
            CONDITION_DELETED,
            ConditionStatus::True,
            REASON_MANIFESTS_DELETED,
            "The manifests are deleted from the cluster cluster1",
        )],
        ..ManifestWorkStatus::default()
    };
    // ...even when the apiserver refuses the hub's writes for a while (here an admission
    // policy; in life an etcd leader change or API priority and fairness): the agent sent its
    // Deleted=True once, and the hub keeps it until it is written.
    let policy = refuse_work_writes(&kube).await;
    agent
        .publish(&status_event(&deleting, done, &sequence))
        .await
        .unwrap();
    eventually("a refused write", async || {
        (metrics.work_status_write_failures.get() > 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        works.get_opt("web").await.unwrap().is_some(),
        "held while refused"
    );
    policy.await;
    eventually("the work to be gone", async || {
        works.get_opt("web").await.unwrap().is_none().then_some(())
    })
    .await;
    let event = next_event(&mut inbox, "the removal").await;
    assert!(
        event.event_type.ends_with(".spec.delete_request"),
        "{}",
        event.event_type
    );
    assert_eq!(
        event.extension_str(extension::RESOURCE_ID),
        Some(uid.as_str())
    );
    assert!(
        event
            .extension_timestamp(extension::DELETION_TIMESTAMP)
            .is_some()
    );

    cancel.cancel();
    hub.stop();
}

/// Makes the apiserver refuse every update of ManifestWorks and their status (a
/// ValidatingAdmissionPolicy), once it has taken effect; the future returned lifts it.
async fn refuse_work_writes(kube: &Client) -> impl std::future::Future<Output = ()> {
    use ocm_api::kube::api::DynamicObject;
    use ocm_api::kube::discovery::ApiResource;
    let resource = |kind: &str, plural: &str| {
        ApiResource::from_gvk_with_plural(
            &ocm_api::kube::core::GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind),
            plural,
        )
    };
    let policies: Api<DynamicObject> = Api::all_with(
        kube.clone(),
        &resource("ValidatingAdmissionPolicy", "validatingadmissionpolicies"),
    );
    let bindings: Api<DynamicObject> = Api::all_with(
        kube.clone(),
        &resource(
            "ValidatingAdmissionPolicyBinding",
            "validatingadmissionpolicybindings",
        ),
    );
    let policy: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "refuse-work-writes"},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": ["work.open-cluster-management.io"],
                "apiVersions": ["*"],
                "operations": ["UPDATE"],
                "resources": ["manifestworks", "manifestworks/status"],
            }]},
            "validations": [{"expression": "false", "message": "refused for the test"}],
        },
    }))
    .unwrap();
    let binding: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "refuse-work-writes"},
        "spec": {"policyName": "refuse-work-writes", "validationActions": ["Deny"]},
    }))
    .unwrap();
    policies
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    // In effect once a harmless update of a work no agent holds is refused.
    let works: Api<ManifestWork> = Api::namespaced(kube.clone(), "default");
    works
        .create(
            &PostParams::default(),
            &ManifestWork::new("probe", config_map("probe")),
        )
        .await
        .unwrap();
    eventually("the policy to take effect", async || {
        works
            .patch(
                "probe",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"probe": "x"}}})),
            )
            .await
            .is_err()
            .then_some(())
    })
    .await;
    async move {
        bindings
            .delete("refuse-work-writes", &DeleteParams::default())
            .await
            .unwrap();
        policies
            .delete("refuse-work-writes", &DeleteParams::default())
            .await
            .unwrap();
    }
}
