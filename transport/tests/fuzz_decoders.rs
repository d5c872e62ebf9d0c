//! Fuzzing every decoder a network peer (or a configuration file) reaches in the transport:
//! protobuf bytes through OCM's gRPC mapping, MQTT user properties and payloads, structured JSON
//! CloudEvents, manifestbundle spec and status payloads, resync payloads, registration objects,
//! event and data types, the broker's access mapping, Go durations and the gRPC and MQTT
//! configuration files.
//!
//! Each target feeds fully random inputs and mutations of valid encodings (bytes flipped,
//! inserted, removed and truncated; JSON values replaced by huge, empty, unicode, control
//! character, deeply nested and wide ones; lengths claimed far beyond what was sent) and proves
//! three things of every case: the decoder does not panic, it answers with a value (`Ok` or an
//! error it can display), and its peak heap stays within a bound of the input's size
//! (`support/fuzz.rs`). Where a decoded value carries a promise (an authorized namespace is a
//! valid cluster name, a parsed event type prints back as it was read), that is checked too.
//!
//! `OCM_FUZZ_CASES=200000 cargo test --release -p ocm-transport --test fuzz_decoders -- --nocapture`
//! runs a long session; docs/testing.md says more.

#![allow(clippy::unwrap_used)] // a failing case shows the value

#[path = "support/fuzz.rs"]
mod fuzz;

use std::collections::BTreeMap;
use std::path::Path;

use jiff::Timestamp;
use proptest::prelude::*;
use proptest::sample::Index;
use prost::Message as _;
use serde_json::{Value, json};

use ocm_api::cluster::v1::ManagedCluster;
use ocm_api::k8s_openapi::api::authentication::v1::TokenRequest;
use ocm_api::k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use ocm_api::k8s_openapi::api::coordination::v1::Lease;
use ocm_api::k8s_openapi::api::events::v1::Event;
use ocm_api::kube::core::DynamicObject;
use ocm_api::registration::validate_cluster_name;
use ocm_proto::v1::cloud_event::Data;
use ocm_proto::v1::cloud_event_attribute_value::Attr;
use ocm_proto::{CloudEventAttributeValue, PublishRequest, SubscriptionRequest};
use ocm_transport::access::{AccessRequest, publish_access, subscribe_access};
use ocm_transport::event::{CloudEvent, ExtensionValue, JSON, SPEC_VERSION, extension};
use ocm_transport::event_type::{DataType, EventAction, EventType};
use ocm_transport::grpc_config::{GoDuration, GrpcConfigFile, parse_go_duration};
use ocm_transport::mqtt_binding::MqttMessage;
use ocm_transport::mqtt_config::MqttConfigFile;
use ocm_transport::mqtt_transport::Role;
use ocm_transport::payload::{ManifestBundle, ManifestBundleStatus};
use ocm_transport::registration::{self, RegistrationKind};
use ocm_transport::resync::{
    HubResource, ResourceVersionList, StatusHashList, plan_spec_resync, plan_status_resync,
};
use ocm_transport::sequence_id::SequenceId;
use ocm_transport::status_error::Status;
use ocm_transport::{grpc_binding, mqtt_binding, mqtt_topics, structured, work};

use fuzz::{
    bounded, mutated_bytes, mutated_json, mutated_seed, random_bytes, run, run_within, wild_string,
};

// ---------------------------------------------------------------------------------------------
// Valid inputs the mutations start from: what OCM's Go agents and hub put on the wire.

const UID: &str = "55c61e54-a3f6-563d-9fec-b1fe297bdfdb";
const SPEC_TYPE: &str =
    "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request";
const STATUS_TYPE: &str =
    "io.open-cluster-management.works.v1alpha1.manifestbundles.status.update_request";

fn bundle_json() -> Value {
    json!({
        "manifests": [
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "c", "namespace": "default"}, "data": {"k": "v"}},
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
             "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "n", "image": "nginx"}]}}}}
        ],
        "deleteOption": {"propagationPolicy": "SelectivelyOrphan", "selectivelyOrphans": {
            "orphaningRules": [{"group": "", "resource": "configmaps", "name": "c", "namespace": "default"}]}},
        "manifestConfigs": [{
            "resourceIdentifier": {"group": "apps", "resource": "deployments", "name": "web", "namespace": "default"},
            "feedbackRules": [{"type": "WellKnownStatus"}, {"type": "JSONPaths", "jsonPaths": [{"name": "r", "path": ".status.replicas"}]}],
            "updateStrategy": {"type": "ServerSideApply", "serverSideApply": {"force": true, "fieldManager": "x"}},
            "conditionRules": [{"condition": "Complete", "type": "CEL", "celExpressions": ["object.status.ready"]}]
        }],
        "executer": {"subject": {"type": "ServiceAccount", "serviceAccount": {"namespace": "ns", "name": "sa"}}}
    })
}

fn status_json() -> Value {
    json!({
        "conditions": [
            {"type": "Applied", "status": "True", "observedGeneration": 1,
             "lastTransitionTime": "2025-12-16T06:00:17Z", "reason": "AppliedManifestWorkComplete",
             "message": "Apply manifest work complete"},
            {"type": "Deleted", "status": "False", "lastTransitionTime": "2025-12-16T06:00:17Z",
             "reason": "Pending", "message": ""}
        ],
        "resourceStatus": [{
            "resourceMeta": {"ordinal": 0, "group": "", "version": "v1", "kind": "ConfigMap",
                             "resource": "configmaps", "name": "c", "namespace": "default"},
            "statusFeedback": {"values": [
                {"name": "replicas", "fieldValue": {"type": "Integer", "integer": 2}},
                {"name": "phase", "fieldValue": {"type": "String", "string": "Running"}},
                {"name": "raw", "fieldValue": {"type": "JsonRaw", "jsonRaw": "[1,2]"}}
            ]},
            "conditions": null
        }],
        "manifestBundle": bundle_json()
    })
}

fn metadata_json() -> Value {
    json!({"name": "w", "namespace": "cluster1", "uid": UID, "resourceVersion": "1",
           "generation": 1, "creationTimestamp": "2025-12-16T06:00:17Z",
           "labels": {"cloudevents.open-cluster-management.io/originalsource": "kube"},
           "annotations": {"a": "b"}, "finalizers": ["f"],
           "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u"}]})
}

fn managed_cluster_json() -> Value {
    json!({"apiVersion": "cluster.open-cluster-management.io/v1", "kind": "ManagedCluster",
           "metadata": {"name": "cluster1", "uid": UID, "resourceVersion": "42",
                        "labels": {"cluster.open-cluster-management.io/clusterset": "default"}},
           "spec": {"hubAcceptsClient": true, "leaseDurationSeconds": 60,
                    "managedClusterClientConfigs": [{"url": "https://c1:6443", "caBundle": "Y2E="}],
                    "taints": [{"key": "k", "value": "v", "effect": "NoSelect",
                                "timeAdded": "2025-12-16T06:00:17Z"}]},
           "status": {"conditions": [{"type": "ManagedClusterConditionAvailable", "status": "True",
                                      "lastTransitionTime": "2025-12-16T06:00:17Z",
                                      "reason": "ManagedClusterAvailable", "message": "ok"}],
                      "capacity": {"cpu": "32", "memory": "256Gi"},
                      "allocatable": {"cpu": "31500m", "memory": "250Gi"},
                      "version": {"kubernetes": "v1.36.3"},
                      "clusterClaims": [{"name": "id.k8s.io", "value": "c1"}]}})
}

fn csr_json() -> Value {
    json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
           "metadata": {"name": "cluster1-abcde", "uid": UID, "resourceVersion": "7",
                        "labels": {"open-cluster-management.io/cluster-name": "cluster1"}},
           "spec": {"request": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K",
                    "signerName": "open-cluster-management.io/grpc", "expirationSeconds": 3600,
                    "usages": ["digital signature", "key encipherment", "client auth"],
                    "username": "u", "groups": ["g"], "extra": {"k": ["v"]}},
           "status": {"certificate": "Y2VydA==",
                      "conditions": [{"type": "Approved", "status": "True", "reason": "R",
                                      "lastUpdateTime": "2025-12-16T06:00:17Z"}]}})
}

fn lease_json() -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": "managed-cluster-lease", "namespace": "cluster1", "uid": UID,
                        "resourceVersion": "9"},
           "spec": {"holderIdentity": "agent", "leaseDurationSeconds": 60,
                    "renewTime": "2025-12-16T06:00:17.123456Z", "leaseTransitions": 1}})
}

fn event_json() -> Value {
    json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
           "metadata": {"name": "e.1", "namespace": "cluster1", "uid": UID},
           "eventTime": "2025-12-16T06:00:17.123456Z", "reportingController": "agent",
           "reportingInstance": "agent-1", "action": "Apply", "reason": "Applied", "type": "Normal",
           "note": "applied", "regarding": {"kind": "ManifestWork", "name": "w"},
           "series": {"count": 2, "lastObservedTime": "2025-12-16T06:00:18.000000Z"}})
}

fn addon_json(version: &str) -> Value {
    json!({"apiVersion": format!("addon.open-cluster-management.io/{version}"),
           "kind": "ManagedClusterAddOn",
           "metadata": {"name": "a", "namespace": "cluster1", "uid": UID, "resourceVersion": "3"},
           "spec": {"installNamespace": "x"}, "status": {"conditions": []}})
}

fn token_request_json() -> Value {
    json!({"metadata": {"name": "addon-agent", "namespace": "cluster1", "uid": UID},
           "spec": {"audiences": ["a"], "expirationSeconds": 3600},
           "status": {"token": "t", "expirationTimestamp": "2025-12-16T06:00:17Z"}})
}

fn resync_versions_json() -> Value {
    json!({"resourceVersions": [{"resourceID": UID, "resourceVersion": 3},
                                {"resourceID": "b", "resourceVersion": 0}]})
}

fn resync_hashes_json() -> Value {
    json!({"statusHashes": [{"resourceID": UID, "statusHash": "e3b23766"}]})
}

fn registration_payload(kind: RegistrationKind) -> Value {
    match kind {
        RegistrationKind::ManagedCluster => managed_cluster_json(),
        RegistrationKind::CertificateSigningRequest => csr_json(),
        RegistrationKind::Lease => lease_json(),
        RegistrationKind::Event => event_json(),
        RegistrationKind::ManagedClusterAddOnV1alpha1 => addon_json("v1alpha1"),
        RegistrationKind::ManagedClusterAddOnV1beta1 => addon_json("v1beta1"),
        RegistrationKind::TokenRequest => token_request_json(),
    }
}

fn string(s: &str) -> ExtensionValue {
    ExtensionValue::String(s.to_owned())
}

fn event(
    event_type: &str,
    extensions: &[(&str, ExtensionValue)],
    data: Option<&Value>,
) -> CloudEvent {
    CloudEvent {
        id: "8a3993ab-1193-4d40-bc8c-6bc1fc098089".into(),
        source: "cluster1-work-agent".into(),
        spec_version: SPEC_VERSION.into(),
        event_type: event_type.into(),
        time: Some("2025-12-16T06:00:17.923Z".parse().unwrap()),
        data_content_type: data.map(|_| JSON.to_owned()),
        subject: None,
        data_schema: None,
        extensions: extensions
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        data: data.map(|d| serde_json::to_vec(d).unwrap()),
    }
}

fn spec_event() -> CloudEvent {
    event(
        SPEC_TYPE,
        &[
            (extension::RESOURCE_ID, string(UID)),
            (extension::RESOURCE_VERSION, ExtensionValue::Integer(3)),
            (extension::CLUSTER_NAME, string("cluster1")),
            (extension::ORIGINAL_SOURCE, string("")),
            (extension::METADATA, string(&metadata_json().to_string())),
            (extension::LOG_TRACING, string("{}")),
        ],
        Some(&bundle_json()),
    )
}

fn deleting_spec_event() -> CloudEvent {
    let mut event = spec_event();
    event.extensions.insert(
        extension::DELETION_TIMESTAMP.into(),
        ExtensionValue::Timestamp("2025-12-16T06:05:00Z".parse().unwrap()),
    );
    event.data = None;
    event.data_content_type = None;
    event
}

fn status_event() -> CloudEvent {
    event(
        STATUS_TYPE,
        &[
            (extension::RESOURCE_ID, string(UID)),
            (extension::RESOURCE_VERSION, ExtensionValue::Integer(1)),
            (extension::CLUSTER_NAME, string("cluster1")),
            (extension::ORIGINAL_SOURCE, string("kube")),
            (extension::SEQUENCE_ID, string("2000808179729960960")),
            (extension::STATUS_HASH, string("e3b23766")),
            (extension::METADATA, string(&metadata_json().to_string())),
            (extension::LOG_TRACING, string("{}")),
        ],
        Some(&status_json()),
    )
}

fn registration_event(kind: RegistrationKind) -> CloudEvent {
    let event_type = kind
        .data_type()
        .event_type(
            ocm_transport::event_type::SubResource::Spec,
            EventAction::UpdateRequest,
        )
        .to_string();
    event(
        &event_type,
        &[
            (extension::RESOURCE_ID, string(UID)),
            (extension::RESOURCE_VERSION, string("42")),
            (extension::CLUSTER_NAME, string("cluster1")),
            (extension::ORIGINAL_SOURCE, string("")),
        ],
        Some(&registration_payload(kind)),
    )
}

fn resync_event(data_type: &DataType, status: bool) -> CloudEvent {
    let (sub, data) = if status {
        ("status", resync_hashes_json())
    } else {
        ("spec", resync_versions_json())
    };
    event(
        &format!("{data_type}.{sub}.resync_request"),
        &[
            (extension::CLUSTER_NAME, string("cluster1")),
            (extension::ORIGINAL_SOURCE, string("")),
        ],
        Some(&data),
    )
}

/// Every kind of event a peer sends or receives, valid.
fn seed_events() -> Vec<CloudEvent> {
    let mut events = vec![
        spec_event(),
        deleting_spec_event(),
        status_event(),
        resync_event(&DataType::manifest_bundles(), false),
        resync_event(&DataType::manifest_bundles(), true),
        resync_event(&DataType::leases(), false),
    ];
    events.extend(RegistrationKind::ALL.into_iter().map(registration_event));
    // With every typed attribute the gRPC mapping has.
    let mut typed = status_event();
    typed.subject = Some("s".into());
    typed.data_schema = Some("https://example/schema".into());
    typed
        .extensions
        .insert("flag".into(), ExtensionValue::Boolean(true));
    typed
        .extensions
        .insert("blob".into(), ExtensionValue::Bytes(vec![0, 1, 2]));
    typed
        .extensions
        .insert("uri".into(), ExtensionValue::Uri("https://x/y".into()));
    typed
        .extensions
        .insert("ref".into(), ExtensionValue::UriRef("/y".into()));
    events.push(typed);
    events
}

fn structured_seeds() -> Vec<Value> {
    let mut spec = json!({"specversion": "1.0", "id": "1", "source": "kube", "type": SPEC_TYPE,
        "datacontenttype": "application/json", "time": "2025-12-16T06:00:17.771003Z",
        "clustername": "cluster1", "resourceversion": 2, "resourceid": UID, "flag": true,
        "metadata": metadata_json().to_string(), "data": bundle_json()});
    let binary = json!({"specversion": "1.0", "id": "1", "source": "s", "type": "t",
        "data_base64": "AAECAwQFBgcICQ=="});
    let text = json!({"specversion": "1.0", "id": "1", "source": "s", "type": "t",
        "datacontenttype": "text/plain", "data": "hi"});
    let status = json!({"specversion": "1.0", "id": "2", "source": "cluster1-work-agent",
        "type": STATUS_TYPE, "clustername": "cluster1", "resourceid": UID, "resourceversion": 1,
        "sequenceid": "2000808179729960960", "statushash": "e3b23766", "data": status_json()});
    spec["subject"] = json!("s");
    vec![spec, binary, text, status]
}

fn proto_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = seed_events()
        .iter()
        .flat_map(|e| {
            let wire = grpc_binding::encode(e);
            [
                wire.encode_to_vec(),
                PublishRequest { event: Some(wire) }.encode_to_vec(),
            ]
        })
        .collect();
    for json in structured_seeds() {
        let wire = ocm_proto::CloudEvent {
            id: String::new(),
            source: String::new(),
            spec_version: String::new(),
            r#type: String::new(),
            attributes: BTreeMap::from([(
                grpc_binding::CONTENT_TYPE_KEY.to_owned(),
                CloudEventAttributeValue {
                    attr: Some(Attr::CeString("application/cloudevents+json".into())),
                },
            )]),
            data: Some(Data::BinaryData(serde_json::to_vec(&json).unwrap())),
        };
        seeds.push(PublishRequest { event: Some(wire) }.encode_to_vec());
    }
    seeds.push(
        SubscriptionRequest {
            source: "kube".into(),
            cluster_name: "cluster1".into(),
            data_type: DataType::manifest_bundles().to_string(),
        }
        .encode_to_vec(),
    );
    seeds
}

// ---------------------------------------------------------------------------------------------
// What the decoders are run as, with the promises their results keep.

/// An authorization request names a cluster only when the name is a managed cluster's, and
/// brings nothing larger than the type bound to the authorizer.
fn check_access(request: &AccessRequest) {
    assert!(
        validate_cluster_name(&request.namespace).is_ok(),
        "authorized namespace {:?} is not a cluster name",
        request.namespace
    );
    assert!(request.group.len() <= 400 && request.resource.len() <= 400);
}

/// What the hub and agents do with a decoded event: the access mapping and every payload codec
/// its type may name. Errors are fine; each must display.
fn decode_downstream(event: &CloudEvent) {
    if let Ok(request) = publish_access(event) {
        fuzz::reached("access mapped");
        check_access(&request);
    }
    match work::decode_spec(event) {
        Ok(work) => {
            fuzz::reached("spec decoded");
            assert_eq!(
                work.metadata.uid.as_deref(),
                event.extension_str("resourceid")
            );
        }
        Err(e) => drop(e.to_string()),
    }
    match work::decode_status(event) {
        Ok(status) => {
            fuzz::reached("status decoded");
            assert_eq!(
                Some(status.resource_id()),
                event.extension_str("resourceid")
            );
            let _ = (status.sequence(), status.is_deleted());
        }
        Err(e) => drop(e.to_string()),
    }
    decode_registration(event);
    if let Some(data) = event.data.as_deref() {
        decode_resync(data);
    }
}

fn decode_registration(event: &CloudEvent) {
    fn one<K: serde::de::DeserializeOwned>(kind: RegistrationKind, event: &CloudEvent) {
        match registration::decode::<K>(kind, event) {
            Ok(registration::Decoded::Deleted { uid, .. }) => {
                fuzz::reached("registration deletion");
                assert!(!uid.is_empty());
            }
            Ok(registration::Decoded::Object(_)) => fuzz::reached("registration object"),
            Err(e) => drop(e.to_string()),
        }
    }
    one::<ManagedCluster>(RegistrationKind::ManagedCluster, event);
    one::<CertificateSigningRequest>(RegistrationKind::CertificateSigningRequest, event);
    one::<Lease>(RegistrationKind::Lease, event);
    one::<Event>(RegistrationKind::Event, event);
    one::<DynamicObject>(RegistrationKind::ManagedClusterAddOnV1alpha1, event);
    one::<DynamicObject>(RegistrationKind::ManagedClusterAddOnV1beta1, event);
    one::<TokenRequest>(RegistrationKind::TokenRequest, event);
}

/// The resync payloads as the hub (spec) and the agent (status) read them, and the plans they
/// make from them.
fn decode_resync(data: &[u8]) {
    if let Ok(held) = serde_json::from_slice::<ResourceVersionList>(data) {
        fuzz::reached("resource versions");
        let hub = [
            HubResource {
                resource_id: UID.into(),
                version: 2,
                deleting: false,
            },
            HubResource {
                resource_id: "gone".into(),
                version: 0,
                deleting: true,
            },
        ];
        let plan = plan_spec_resync(&hub, &held);
        assert!(plan.len() <= hub.len() + held.resource_versions.len());
    }
    if let Ok(listed) = serde_json::from_slice::<StatusHashList>(data) {
        fuzz::reached("status hashes");
        let held = [(UID, "e3b23766"), ("other", "")];
        let plan = plan_status_resync(held, &listed);
        assert!(plan.len() <= held.len());
    }
}

/// The broker's path for a Publish or Subscribe body.
fn decode_grpc_bytes(bytes: &[u8]) {
    if let Ok(message) = ocm_proto::CloudEvent::decode(bytes) {
        match grpc_binding::decode(message) {
            Ok(event) => {
                fuzz::reached("CloudEvent mapped");
                decode_downstream(&event);
            }
            Err(e) => drop(e.to_string()),
        }
    }
    if let Ok(PublishRequest {
        event: Some(message),
    }) = PublishRequest::decode(bytes)
    {
        match grpc_binding::decode(message) {
            Ok(event) => {
                fuzz::reached("PublishRequest mapped");
                decode_downstream(&event);
            }
            Err(e) => drop(e.to_string()),
        }
    }
    if let Ok(request) = SubscriptionRequest::decode(bytes)
        && let Ok(access) = subscribe_access(&request.cluster_name, &request.data_type)
    {
        fuzz::reached("subscription mapped");
        check_access(&access);
        assert_eq!(access.namespace, request.cluster_name);
    }
}

fn event_size(event: &CloudEvent) -> usize {
    let extension = |v: &ExtensionValue| match v {
        ExtensionValue::String(s) | ExtensionValue::Uri(s) | ExtensionValue::UriRef(s) => s.len(),
        ExtensionValue::Bytes(b) => b.len(),
        _ => 12,
    };
    event.id.len()
        + event.source.len()
        + event.spec_version.len()
        + event.event_type.len()
        + event.data_content_type.as_ref().map_or(0, String::len)
        + event.subject.as_ref().map_or(0, String::len)
        + event.data_schema.as_ref().map_or(0, String::len)
        + event
            .extensions
            .iter()
            .map(|(k, v)| k.len() + extension(v))
            .sum::<usize>()
        + event.data.as_ref().map_or(0, Vec::len)
}

// ---------------------------------------------------------------------------------------------
// Structure-aware mutations of events.

const EXTENSION_NAMES: [&str; 12] = [
    extension::RESOURCE_ID,
    extension::RESOURCE_VERSION,
    extension::CLUSTER_NAME,
    extension::ORIGINAL_SOURCE,
    extension::DELETION_TIMESTAMP,
    extension::SEQUENCE_ID,
    extension::STATUS_HASH,
    extension::METADATA,
    extension::LOG_TRACING,
    "time",
    "specversion",
    "datacontenttype",
];

fn timestamp() -> impl Strategy<Value = Timestamp> {
    (
        Timestamp::MIN.as_second()..=Timestamp::MAX.as_second(),
        0i32..1_000_000_000,
    )
        .prop_map(|(s, n)| Timestamp::new(s, n).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn extension_value() -> impl Strategy<Value = ExtensionValue> {
    prop_oneof![
        4 => wild_string().prop_map(ExtensionValue::String),
        2 => any::<i32>().prop_map(ExtensionValue::Integer),
        1 => any::<bool>().prop_map(ExtensionValue::Boolean),
        1 => proptest::collection::vec(any::<u8>(), 0..32).prop_map(ExtensionValue::Bytes),
        1 => wild_string().prop_map(ExtensionValue::Uri),
        1 => wild_string().prop_map(ExtensionValue::UriRef),
        1 => timestamp().prop_map(ExtensionValue::Timestamp),
    ]
}

#[derive(Debug, Clone)]
enum EventOp {
    SetExtension(Index, ExtensionValue),
    SetOddExtension(String, ExtensionValue),
    RemoveExtension(Index),
    SetMetadata(fuzz::Bytes),
    SetType(String),
    SetData(Option<fuzz::Bytes>),
    SetContentType(Option<String>),
}

fn event_op(payloads: Vec<Value>) -> impl Strategy<Value = EventOp> {
    let content_type = proptest::option::of(prop_oneof![
        Just("application/json".to_owned()),
        Just("application/cloudevents+json; charset=utf-8".to_owned()),
        wild_string(),
    ]);
    prop_oneof![
        4 => (any::<Index>(), extension_value()).prop_map(|(i, v)| EventOp::SetExtension(i, v)),
        1 => (wild_string(), extension_value()).prop_map(|(k, v)| EventOp::SetOddExtension(k, v)),
        2 => any::<Index>().prop_map(EventOp::RemoveExtension),
        2 => mutated_json(vec![metadata_json()]).prop_map(EventOp::SetMetadata),
        1 => wild_string().prop_map(EventOp::SetType),
        4 => proptest::option::of(prop_oneof![
            3 => mutated_json(payloads),
            1 => random_bytes(4096),
        ])
        .prop_map(EventOp::SetData),
        1 => content_type.prop_map(EventOp::SetContentType),
    ]
}

fn apply_event_op(event: &mut CloudEvent, op: EventOp) {
    match op {
        EventOp::SetExtension(i, v) => {
            event
                .extensions
                .insert(i.get(&EXTENSION_NAMES).to_string(), v);
        }
        EventOp::SetOddExtension(k, v) => {
            event.extensions.insert(k, v);
        }
        EventOp::RemoveExtension(i) => {
            event.extensions.remove(*i.get(&EXTENSION_NAMES));
        }
        EventOp::SetMetadata(bytes) => {
            event.extensions.insert(
                extension::METADATA.into(),
                ExtensionValue::String(String::from_utf8_lossy(&bytes).into_owned()),
            );
        }
        EventOp::SetType(t) => event.event_type = t,
        EventOp::SetData(d) => event.data = d.map(|d| d.0),
        EventOp::SetContentType(c) => event.data_content_type = c,
    }
}

/// One of `seeds`, changed by up to 6 operations that draw payloads from `payloads`.
fn mutated_event(
    seeds: Vec<CloudEvent>,
    payloads: Vec<Value>,
) -> impl Strategy<Value = CloudEvent> {
    (
        proptest::sample::select(seeds),
        proptest::collection::vec(event_op(payloads), 0..6),
    )
        .prop_map(|(mut event, ops)| {
            for op in ops {
                apply_event_op(&mut event, op);
            }
            event
        })
}

fn all_payloads() -> Vec<Value> {
    let mut payloads = vec![
        bundle_json(),
        status_json(),
        resync_versions_json(),
        resync_hashes_json(),
    ];
    payloads.extend(RegistrationKind::ALL.into_iter().map(registration_payload));
    payloads
}

// ---------------------------------------------------------------------------------------------
// The targets.

#[test]
fn the_allocation_bound_is_measured_for_real() {
    fuzz::assert_allocations_are_counted();
}

#[test]
fn protobuf_bytes_never_panic_the_grpc_decoder_nor_what_follows_it() {
    let inputs = prop_oneof![
        1 => random_bytes(8192),
        2 => mutated_seed(proto_seeds()),
        3 => mutated_proto_event(),
    ];
    run(
        "protobuf CloudEvent/PublishRequest/SubscriptionRequest bytes",
        inputs,
        |bytes| {
            bounded(bytes.len(), || decode_grpc_bytes(&bytes));
        },
    );
}

/// Event types as OCM writes them, from parts that are sometimes wrong.
fn event_type_text() -> impl Strategy<Value = String> {
    let group = prop_oneof![
        Just("io.open-cluster-management.works".to_owned()),
        Just("cluster.open-cluster-management.io".to_owned()),
        Just(String::new()),
        "[a-z0-9-]{1,8}(\\.[a-z0-9-]{0,8}){0,4}",
    ];
    let version = prop_oneof![
        Just("v1".to_owned()),
        Just("v1alpha1".to_owned()),
        "[a-z0-9]{0,4}"
    ];
    let resource = prop_oneof![
        Just("manifestbundles".to_owned()),
        Just("leases".to_owned()),
        "[a-z.]{0,10}",
    ];
    let sub = prop_oneof![
        Just("spec".to_owned()),
        Just("status".to_owned()),
        "[a-z.]{0,6}"
    ];
    let action = prop_oneof![
        4 => proptest::sample::select(vec![
            "create_request",
            "update_request",
            "delete_request",
            "resync_request",
            "resync_response",
            "watch_request",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z_.]{0,16}",
    ];
    (group, version, resource, sub, action)
        .prop_map(|(g, v, r, s, a)| format!("{g}.{v}.{r}.{s}.{a}"))
}

/// Valid protobuf CloudEvents built from the seeds with attributes, data and required fields
/// replaced: the message parses, so `grpc_binding::decode` and what follows see every attribute
/// type, timestamps out of range, odd keys, and every kind of data.
fn mutated_proto_event() -> impl Strategy<Value = fuzz::Bytes> {
    let wires: Vec<ocm_proto::CloudEvent> =
        seed_events().iter().map(grpc_binding::encode).collect();
    let key = prop_oneof![
        3 => proptest::sample::select(EXTENSION_NAMES.to_vec()).prop_map(|n| format!("ce-{n}")),
        1 => proptest::sample::select(vec!["contenttype", "ce-subject", "ce-dataschema",
                                           "ce-id", "ce-type", "ce-"])
            .prop_map(str::to_owned),
        1 => wild_string(),
    ];
    let attr = prop_oneof![
        3 => wild_string().prop_map(Attr::CeString),
        1 => any::<bool>().prop_map(Attr::CeBoolean),
        2 => any::<i32>().prop_map(Attr::CeInteger),
        1 => proptest::collection::vec(any::<u8>(), 0..32).prop_map(Attr::CeBytes),
        1 => wild_string().prop_map(Attr::CeUri),
        1 => wild_string().prop_map(Attr::CeUriRef),
        2 => (any::<i64>(), any::<i32>())
            .prop_map(|(seconds, nanos)| Attr::CeTimestamp(prost_types::Timestamp { seconds, nanos })),
    ];
    let value =
        proptest::option::weighted(0.95, attr).prop_map(|attr| CloudEventAttributeValue { attr });
    let data = proptest::option::of(prop_oneof![
        3 => mutated_json(all_payloads()).prop_map(|b| Data::BinaryData(b.0)),
        1 => mutated_json(structured_seeds()).prop_map(|b| Data::BinaryData(b.0)),
        1 => wild_string().prop_map(Data::TextData),
        1 => (wild_string(), random_bytes(64)).prop_map(|(type_url, value)| {
            Data::ProtoData(prost_types::Any { type_url, value: value.0 })
        }),
    ]);
    (
        proptest::sample::select(wires),
        proptest::collection::vec((key, value), 0..6),
        proptest::collection::vec(any::<Index>(), 0..3),
        proptest::option::weighted(0.5, data),
        proptest::option::weighted(0.2, (wild_string(), wild_string(), wild_string())),
        any::<bool>(),
    )
        .prop_map(|(mut wire, set, removed, data, fields, wrapped)| {
            for (key, value) in set {
                wire.attributes.insert(key, value);
            }
            for index in removed {
                if !wire.attributes.is_empty() {
                    let key = index
                        .get(&wire.attributes.keys().cloned().collect::<Vec<_>>())
                        .clone();
                    wire.attributes.remove(&key);
                }
            }
            if let Some(data) = data {
                wire.data = data;
            }
            if let Some((spec_version, event_type, id)) = fields {
                wire.spec_version = spec_version;
                wire.r#type = event_type;
                wire.id = id;
            }
            fuzz::Bytes(if wrapped {
                PublishRequest { event: Some(wire) }.encode_to_vec()
            } else {
                wire.encode_to_vec()
            })
        })
}

/// The mutations start from valid inputs: each seed decodes with the decoder it is for.
#[test]
fn every_seed_decodes() {
    work::decode_spec(&spec_event()).unwrap();
    work::decode_spec(&deleting_spec_event()).unwrap();
    work::decode_status(&status_event()).unwrap();
    for kind in RegistrationKind::ALL {
        let event = registration_event(kind);
        let decoded = match kind {
            RegistrationKind::ManagedCluster => {
                registration::decode::<ManagedCluster>(kind, &event).map(drop)
            }
            RegistrationKind::CertificateSigningRequest => {
                registration::decode::<CertificateSigningRequest>(kind, &event).map(drop)
            }
            RegistrationKind::Lease => registration::decode::<Lease>(kind, &event).map(drop),
            RegistrationKind::Event => registration::decode::<Event>(kind, &event).map(drop),
            RegistrationKind::TokenRequest => {
                registration::decode::<TokenRequest>(kind, &event).map(drop)
            }
            _ => registration::decode::<DynamicObject>(kind, &event).map(drop),
        };
        decoded.unwrap_or_else(|e| panic!("{kind}: {e}"));
        publish_access(&event).unwrap();
    }
    ManifestBundle::spec_from_json(&serde_json::to_vec(&bundle_json()).unwrap()).unwrap();
    let (_, spec) =
        ManifestBundleStatus::status_from_json(&serde_json::to_vec(&status_json()).unwrap())
            .unwrap();
    assert!(spec.is_some());
    serde_json::from_value::<ResourceVersionList>(resync_versions_json()).unwrap();
    serde_json::from_value::<StatusHashList>(resync_hashes_json()).unwrap();
    for json in structured_seeds() {
        structured::decode(&serde_json::to_vec(&json).unwrap()).unwrap();
    }
    for event in seed_events() {
        let wire = grpc_binding::encode(&event);
        assert_eq!(grpc_binding::decode(wire).unwrap(), event);
        mqtt_binding::decode(mqtt_binding::encode(&event)).unwrap();
    }
    for yaml in grpc_yaml_seeds() {
        let text = String::from_utf8(yaml).unwrap();
        GrpcConfigFile::from_yaml(&text)
            .unwrap()
            .resolve(some_files)
            .unwrap();
    }
    for yaml in mqtt_yaml_seeds() {
        let text = String::from_utf8(yaml).unwrap();
        MqttConfigFile::from_yaml(&text)
            .unwrap()
            .resolve(some_files)
            .unwrap();
    }
}

/// Tags of the length-delimited fields a peer controls: CloudEvent's id, source, spec_version,
/// type, attributes, binary_data, text_data, proto_data; PublishRequest's event; an
/// AttributeValue's strings and bytes.
const LENGTH_DELIMITED_TAGS: [u8; 9] = [0x0a, 0x12, 0x1a, 0x22, 0x2a, 0x32, 0x3a, 0x42, 0x1a];

#[test]
fn protobuf_lengths_claimed_beyond_the_message_allocate_nothing_for_them() {
    let inputs = (
        proptest::sample::select(proto_seeds()),
        any::<Index>(),
        proptest::sample::select(LENGTH_DELIMITED_TAGS.to_vec()),
        (1u64 << 20)..=u64::MAX,
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(seed, cut, tag, length, tail)| {
            // A valid prefix, then a field claiming far more bytes than follow.
            let mut bytes = seed[..cut.index(seed.len() + 1)].to_vec();
            bytes.push(tag);
            prost::encoding::encode_varint(length, &mut bytes);
            bytes.extend(tail);
            fuzz::Bytes(bytes)
        });
    // Nothing here may cost more than a few times what was sent: no decode gets past the lie.
    let tight = fuzz::Bound {
        factor: 4,
        slack: 64 << 10,
    };
    run_within("protobuf claimed lengths", tight, inputs, |bytes| {
        bounded(bytes.len(), || decode_grpc_bytes(&bytes));
    });
}

#[test]
fn structured_json_events_decode_or_are_refused_whatever_the_bytes() {
    let inputs = prop_oneof![
        1 => random_bytes(4096),
        4 => mutated_json(structured_seeds()),
    ];
    run("structured JSON CloudEvent", inputs, |bytes| {
        bounded(bytes.len(), || match structured::decode(&bytes) {
            Ok(event) => {
                fuzz::reached("decoded");
                decode_downstream(&event);
            }
            Err(e) => drop(e.to_string()),
        });
    });
}

fn mqtt_message() -> impl Strategy<Value = MqttMessage> {
    let key = prop_oneof![
        3 => proptest::sample::select(EXTENSION_NAMES.to_vec())
            .prop_map(|n| format!("ce-{n}")),
        2 => proptest::sample::select(vec!["ce-id", "ce-source", "ce-type", "ce-subject",
                                           "ce-dataschema", "ce-time", "ce-specversion"])
            .prop_map(str::to_owned),
        1 => wild_string(),
    ];
    let random = (
        proptest::collection::vec((key, wild_string()), 0..12),
        proptest::option::of(prop_oneof![
            Just("application/json".to_owned()),
            Just("application/cloudevents+json".to_owned()),
            wild_string(),
        ]),
        prop_oneof![random_bytes(4096), mutated_json(all_payloads())],
    )
        .prop_map(|(user_properties, content_type, payload)| MqttMessage {
            user_properties,
            content_type,
            payload: payload.0,
        });
    // Valid encodings with their properties replaced, dropped and repeated.
    let encoded: Vec<MqttMessage> = seed_events().iter().map(mqtt_binding::encode).collect();
    let mutated = (
        proptest::sample::select(encoded),
        proptest::collection::vec((any::<Index>(), 0u8..3, wild_string()), 1..6),
        proptest::option::of(mutated_json(all_payloads())),
    )
        .prop_map(|(mut message, ops, payload)| {
            for (i, op, value) in ops {
                if message.user_properties.is_empty() {
                    break;
                }
                let i = i.index(message.user_properties.len());
                match op {
                    0 => message.user_properties[i].1 = value,
                    1 => {
                        message.user_properties.remove(i);
                    }
                    _ => {
                        let repeated = (message.user_properties[i].0.clone(), value);
                        message.user_properties.push(repeated);
                    }
                }
            }
            if let Some(payload) = payload {
                message.payload = payload.0;
            }
            message
        });
    let structured = mutated_json(structured_seeds()).prop_map(|payload| MqttMessage {
        user_properties: Vec::new(),
        content_type: Some("application/cloudevents+json".into()),
        payload: payload.0,
    });
    prop_oneof![2 => random, 3 => mutated, 1 => structured]
}

fn mqtt_size(message: &MqttMessage) -> usize {
    message
        .user_properties
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum::<usize>()
        + message.content_type.as_ref().map_or(0, String::len)
        + message.payload.len()
}

#[test]
fn mqtt_user_properties_and_payloads_decode_or_are_refused() {
    run("MQTT v5 message", mqtt_message(), |message| {
        bounded(mqtt_size(&message), || {
            match mqtt_binding::decode(message.clone()) {
                // Over MQTT every extension is a string, converted on use.
                Ok(event) => {
                    fuzz::reached("decoded");
                    decode_downstream(&event);
                }
                Err(e) => drop(e.to_string()),
            }
        });
    });
}

#[test]
fn mqtt_topics_name_a_publishing_cluster_only_in_agent_topics() {
    let topic = prop_oneof![
        wild_string(),
        "[a-z+#/$]{0,6}(/[a-z0-9+#$-]{0,8}){0,6}",
        Just("sources/kube/consumers/cluster1/agentevents".to_owned()),
        Just("clusters/cluster2/agentbroadcast".to_owned()),
    ];
    run("MQTT topic", topic, |topic| {
        bounded(topic.len(), || {
            if let Some(cluster) = mqtt_topics::publishing_cluster(&topic) {
                fuzz::reached("cluster named");
                assert!(!cluster.contains('/'));
                assert!(
                    topic.ends_with("/agentevents") || topic.ends_with("/agentbroadcast"),
                    "{topic}"
                );
            }
        });
    });
}

#[test]
fn manifest_bundle_spec_events_decode_or_are_refused_on_the_agent() {
    let events = mutated_event(
        vec![spec_event(), deleting_spec_event()],
        vec![bundle_json()],
    );
    run("manifestbundle spec event (decode_spec)", events, |event| {
        bounded(event_size(&event), || match work::decode_spec(&event) {
            Ok(work) => {
                fuzz::reached("decoded");
                assert_eq!(
                    work.metadata.uid.as_deref(),
                    event.extension_str("resourceid")
                );
                assert_eq!(work.metadata.namespace.as_deref(), event.cluster_name());
            }
            Err(e) => {
                fuzz::reached("refused");
                drop(e.to_string());
            }
        });
    });
}

#[test]
fn manifest_bundle_status_events_decode_or_are_refused_on_the_hub() {
    let events = mutated_event(vec![status_event()], vec![status_json()]);
    run(
        "manifestbundle status event (decode_status)",
        events,
        |event| {
            bounded(event_size(&event), || match work::decode_status(&event) {
                Ok(status) => {
                    fuzz::reached("decoded");
                    assert_eq!(Some(status.cluster()), event.cluster_name());
                    let _ = (status.sequence(), status.is_deleted(), status.name());
                }
                Err(e) => {
                    fuzz::reached("refused");
                    drop(e.to_string());
                }
            });
        },
    );
}

#[test]
fn manifest_bundle_payloads_decode_or_are_refused_in_both_views() {
    let inputs = prop_oneof![
        1 => random_bytes(4096),
        4 => mutated_json(vec![bundle_json(), status_json()]),
        1 => mutated_bytes(serde_json::to_vec(&status_json()).unwrap()),
    ];
    run(
        "ManifestBundle / ManifestBundleStatus JSON",
        inputs,
        |bytes| {
            bounded(bytes.len(), || {
                if let Ok(bundle) = ManifestBundle::from_json(&bytes) {
                    fuzz::reached("bundle");
                    drop(bundle.to_json());
                }
                if let Ok(spec) = ManifestBundle::spec_from_json(&bytes) {
                    fuzz::reached("typed spec");
                    drop(ManifestBundle::spec_json(&spec));
                }
                match ManifestBundleStatus::from_json(&bytes) {
                    Ok(status) => {
                        std::hint::black_box(status.is_deleted());
                    }
                    Err(e) => drop(e.to_string()),
                }
                if let Ok((status, _spec)) = ManifestBundleStatus::status_from_json(&bytes) {
                    fuzz::reached("typed status");
                    std::hint::black_box(ocm_transport::payload::status_is_deleted(&status));
                }
            });
        },
    );
}

#[test]
fn resync_payloads_decode_or_are_refused_and_plan_within_what_was_sent() {
    let inputs = prop_oneof![
        1 => random_bytes(2048),
        4 => mutated_json(vec![resync_versions_json(), resync_hashes_json()]),
    ];
    run("resync payload", inputs, |bytes| {
        bounded(bytes.len(), || decode_resync(&bytes));
    });
}

#[test]
fn registration_events_decode_or_are_refused_for_every_kind() {
    let seeds: Vec<CloudEvent> = RegistrationKind::ALL
        .into_iter()
        .map(registration_event)
        .collect();
    let payloads: Vec<Value> = RegistrationKind::ALL
        .into_iter()
        .map(registration_payload)
        .collect();
    run(
        "registration event (ManagedCluster, CSR, Lease, Event, addons, TokenRequest)",
        mutated_event(seeds, payloads),
        |event| bounded(event_size(&event), || decode_registration(&event)),
    );
}

#[test]
fn any_event_a_peer_publishes_maps_to_access_for_a_valid_cluster_or_is_refused() {
    let events = mutated_event(seed_events(), all_payloads());
    run("publish_access and every payload codec", events, |event| {
        bounded(event_size(&event), || decode_downstream(&event));
    });
}

#[test]
fn subscriptions_map_to_access_for_a_valid_cluster_or_are_refused() {
    let data_type = prop_oneof![
        wild_string(),
        Just(DataType::manifest_bundles().to_string()),
        Just(DataType::token_requests().to_string()),
        "[a-z.]{0,30}\\.v[0-9]\\.[a-z]{1,12}",
    ];
    let cluster = prop_oneof![wild_string(), "[a-z0-9-]{0,70}"];
    run(
        "subscribe_access",
        (cluster, data_type),
        |(cluster, data_type)| {
            bounded(cluster.len() + data_type.len(), || {
                match subscribe_access(&cluster, &data_type) {
                    Ok(access) => {
                        fuzz::reached("mapped");
                        check_access(&access);
                        assert_eq!(access.namespace, cluster);
                    }
                    Err(e) => drop(e.to_string()),
                }
            });
        },
    );
}

#[test]
fn event_types_parse_back_to_exactly_what_was_read_or_are_refused() {
    let text = prop_oneof![
        1 => wild_string(),
        1 => "[a-z.]{0,12}(\\.[a-z0-9_-]{0,10}){0,6}",
        4 => event_type_text(),
        2 => event_type_text().prop_flat_map(|t| mutated_bytes(t.into_bytes()))
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ];
    run(
        "event type / data type / action / sequence ID",
        text,
        |text| {
            bounded(text.len(), || {
                if let Ok(parsed) = text.parse::<EventType>() {
                    fuzz::reached("event type");
                    assert_eq!(parsed.to_string(), text);
                }
                if let Ok(parsed) = text.parse::<DataType>() {
                    fuzz::reached("data type");
                    assert_eq!(parsed.to_string(), text);
                }
                if let Ok(action) = text.parse::<EventAction>() {
                    assert_eq!(action.as_str(), text);
                }
                if let Ok(id) = text.parse::<SequenceId>() {
                    assert!(id.as_i64() >= 0);
                    let _ = id.compare(SequenceId::from_parts(1, 1, 1));
                }
            });
        },
    );
}

#[test]
fn publish_error_bodies_always_read_as_a_status() {
    let status = json!({"ErrStatus": {"metadata": {}, "status": "Failure",
        "message": "leases.coordination.k8s.io \"l\" not found", "reason": "NotFound",
        "details": {"name": "l", "group": "coordination.k8s.io", "kind": "leases"}, "code": 404}});
    let inputs = prop_oneof![
        wild_string().prop_map(|s| fuzz::Bytes(s.into_bytes())),
        mutated_json(vec![status]),
    ];
    run("Publish error message", inputs, |bytes| {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        bounded(text.len(), || drop(Status::from_grpc_message(&text)));
    });
}

/// Go's `time.ParseDuration` spellings, with numbers and units at and past their limits.
fn duration_text() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        "[0-9]{0,25}(\\.[0-9]{0,12})?",
        any::<u64>().prop_map(|n| n.to_string()),
        (any::<u64>(), 0u32..64).prop_map(|(n, shift)| (n >> shift).to_string()),
    ];
    let part = (
        number,
        proptest::sample::select(vec!["ns", "us", "µs", "ms", "s", "m", "h", "", "x", "S"]),
    )
        .prop_map(|(number, unit)| format!("{number}{unit}"));
    prop_oneof![
        4 => proptest::collection::vec(part, 1..6).prop_map(|parts| parts.concat()),
        1 => wild_string(),
    ]
}

#[test]
fn go_durations_parse_or_are_refused_never_overflowing() {
    run_within("Go duration", YAML_BOUND, duration_text(), |text| {
        bounded(text.len(), || {
            if parse_go_duration(&text).is_some() {
                fuzz::reached("parsed");
            }
            // The same text as the configuration files carry it.
            let _ = serde_json::from_str::<GoDuration>(&serde_json::to_string(&text).unwrap());
            let yaml = format!("url: h:1\nserverHealthinessTimeout: {text:?}\n");
            let _ = GrpcConfigFile::from_yaml(&yaml).map(|f| f.resolve(no_files));
        });
    });
}

fn no_files(path: &Path) -> std::io::Result<String> {
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    ))
}

fn some_files(path: &Path) -> std::io::Result<String> {
    Ok(format!("contents of {}", path.display()))
}

fn grpc_yaml_seeds() -> Vec<Vec<u8>> {
    let ca = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=";
    [
        format!("url: hub.example.com:8090\ncaData: {ca}\ntoken: abc.def\nkeepAliveConfig:\n  enable: true\n  time: 1m30s\n  timeout: 10s\n  permitWithoutStream: true\nserverHealthinessTimeout: 40s\n"),
        "url: h:1\ncaFile: /ca.crt\nclientCertFile: /tls.crt\nclientKeyFile: /tls.key\ntokenFile: /token\n".to_owned(),
        format!("url: \"h:1\"\nclientCertData: {ca}\nclientKeyData: a2V5\ncaData: {ca}\nkeepAliveConfig: {{enable: true, time: 1500000000}}\n"),
    ]
    .map(String::into_bytes)
    .to_vec()
}

const TOPICS: &str = "topics:\n  sourceEvents: sources/maestro/consumers/+/sourceevents\n  agentEvents: sources/maestro/consumers/+/agentevents\n  sourceBroadcast: sources/+/sourcebroadcast\n  agentBroadcast: clusters/+/agentbroadcast\n";

fn mqtt_yaml_seeds() -> Vec<Vec<u8>> {
    [
        format!("brokerHost: broker.example.com:8883\ncaFile: /ca\nclientCertFile: /crt\nclientKeyFile: /key\nkeepAlive: 30\npubQoS: 1\nsubQoS: 1\n{TOPICS}"),
        format!("brokerHost: b:1883\nusername: u\npassword: p\ncaData: eA==\n{TOPICS}"),
        format!("brokerHost: '[::1]:1883'\nclientCertData: eA==\nclientKeyData: eQ==\n{TOPICS}"),
    ]
    .map(String::into_bytes)
    .to_vec()
}

/// A YAML document whose aliases expand `fanout^levels` times, under a key the decoder ignores
/// or one it reads.
fn alias_bomb() -> impl Strategy<Value = fuzz::Bytes> {
    (
        1u32..9,
        2usize..12,
        proptest::sample::select(vec![
            "unknown",
            "url",
            "topics",
            "keepAliveConfig",
            "caData",
        ]),
    )
        .prop_map(|(levels, fanout, key)| {
            let mut yaml = format!("a0: &a0 [{}]\n", vec!["xxxxxxxx"; fanout].join(", "));
            for level in 1..=levels {
                let previous = format!("*a{}", level - 1);
                yaml.push_str(&format!(
                    "a{level}: &a{level} [{}]\n",
                    vec![previous.as_str(); fanout].join(", ")
                ));
            }
            yaml.push_str(&format!("{key}: *a{levels}\nurl: h:1\nbrokerHost: b:1\n"));
            fuzz::Bytes(yaml.into_bytes())
        })
}

/// Deep block and flow nesting.
fn deep_yaml() -> impl Strategy<Value = fuzz::Bytes> {
    (1usize..2000, any::<bool>()).prop_map(|(depth, flow)| {
        fuzz::Bytes(if flow {
            format!("url: {}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
        } else {
            let mut yaml = String::from("topics:\n");
            for i in 0..depth.min(400) {
                yaml.push_str(&" ".repeat(i + 1));
                yaml.push_str("- \n");
            }
            yaml.into_bytes()
        })
    })
}

/// serde-saphyr keeps parser state for every open flow collection up to its nesting limit of 255,
/// about 1.3 KiB each, before its depth budget refuses the document: a fixed cost, whatever the
/// input claims.
const YAML_BOUND: fuzz::Bound = fuzz::Bound {
    factor: fuzz::DEFAULT_BOUND.factor,
    slack: 512 << 10,
};

fn config_inputs(
    seeds: Vec<Vec<u8>>,
    json_seeds: Vec<Value>,
) -> impl Strategy<Value = fuzz::Bytes> {
    prop_oneof![
        1 => random_bytes(2048),
        4 => mutated_seed(seeds),
        // JSON is YAML too: structure-aware mutations of the same files.
        3 => mutated_json(json_seeds),
        1 => alias_bomb(),
        1 => deep_yaml(),
    ]
}

#[test]
fn grpc_config_files_parse_and_resolve_or_are_refused() {
    let json_seed = json!({"url": "h:1", "caData": "eA==", "token": "t", "tokenFile": "/t",
        "caFile": "/ca", "clientCertFile": "/c", "clientKeyFile": "/k",
        "keepAliveConfig": {"enable": true, "time": "30s", "timeout": 1000, "permitWithoutStream": false},
        "serverHealthinessTimeout": "1m"});
    let inputs = config_inputs(grpc_yaml_seeds(), vec![json_seed]);
    run_within("gRPC config YAML", YAML_BOUND, inputs, |bytes| {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        bounded(text.len(), || {
            if let Ok(file) = GrpcConfigFile::from_yaml(&text) {
                fuzz::reached("parsed");
                drop(format!("{file:?}"));
                for read in [no_files, some_files] {
                    match file.clone().resolve(read) {
                        Ok(config) => {
                            fuzz::reached("resolved");
                            drop(format!("{config:?}"));
                        }
                        Err(e) => drop(e.to_string()),
                    }
                }
            }
        });
    });
}

#[test]
fn mqtt_config_files_parse_and_resolve_or_are_refused() {
    let json_seed = json!({"brokerHost": "b:1883", "username": "u", "password": "p",
        "caData": "eA==", "clientCertData": "eA==", "clientKeyData": "eQ==", "keepAlive": 60,
        "pubQoS": 1, "subQoS": 1,
        "topics": {"sourceEvents": "$share/g/sources/+/consumers/+/sourceevents",
                   "agentEvents": "sources/maestro/consumers/+/agentevents",
                   "sourceBroadcast": "sources/+/sourcebroadcast",
                   "agentBroadcast": "clusters/+/agentbroadcast"}});
    let inputs = config_inputs(mqtt_yaml_seeds(), vec![json_seed]);
    run_within("MQTT config YAML", YAML_BOUND, inputs, |bytes| {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        bounded(text.len(), || {
            if let Ok(file) = MqttConfigFile::from_yaml(&text) {
                fuzz::reached("parsed");
                drop(format!("{file:?}"));
                for read in [no_files, some_files] {
                    match file.clone().resolve(read) {
                        Ok(config) => {
                            fuzz::reached("resolved");
                            for role in [
                                Role::Agent {
                                    cluster: "cluster1".into(),
                                },
                                Role::Source {
                                    source_id: "kube".into(),
                                },
                            ] {
                                // The PEM it names reaches rustls here.
                                let _ = config.settings("client", role, 16);
                            }
                            let _ = config.topics.agent_subscriptions("cluster1");
                            let _ = config.topics.source_subscriptions("kube");
                        }
                        Err(e) => drop(e.to_string()),
                    }
                }
            }
        });
    });
}

/// The allocation bound itself catches what it should: a decoder that believed a claimed
/// length would fail it.
#[test]
fn a_decoder_trusting_a_claimed_length_would_fail_the_bound() {
    let claimed = 1usize << 24;
    let caught = std::panic::catch_unwind(|| {
        bounded(8, || {
            std::hint::black_box(Vec::<u8>::with_capacity(claimed)).len()
        })
    });
    assert!(
        caught.is_err(),
        "16 MiB for 8 bytes of input passed the bound"
    );
    // While a decoder allocating in proportion to its input passes.
    bounded(1 << 16, || std::hint::black_box(vec![0u8; 1 << 17]).len());
}
