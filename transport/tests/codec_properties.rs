//! Property round-trips of the codecs: whatever event, type string, payload, registration
//! object or ManifestWork goes in comes back out — over the gRPC mapping exactly, over MQTT as
//! the strings Go writes, which convert back on use.

#![allow(clippy::unwrap_used)] // a failing property shows the value

use jiff::Timestamp;
use proptest::prelude::*;

use ocm_api::condition::{Condition, ConditionStatus};
use ocm_api::k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use ocm_api::work::v1::{
    DeleteOption, DeletePropagationPolicy, FeedbackValue, FieldValue, MANIFEST_WORK_FINALIZER,
    Manifest, ManifestCondition, ManifestResourceMeta, ManifestResourceStatus, ManifestWork,
    ManifestWorkSpec, ManifestWorkStatus, ManifestsTemplate, ResourceIdentifier, SelectivelyOrphan,
    StatusFeedbackResult,
};
use ocm_transport::event::{CloudEvent, ExtensionValue, JSON, SPEC_VERSION};
use ocm_transport::event_type::{DataType, EventAction, EventType, SubResource};
use ocm_transport::payload::{ManifestBundle, ManifestBundleStatus};
use ocm_transport::registration::{self, Decoded, RegistrationKind};
use ocm_transport::resync::{ResourceVersion, ResourceVersionList, StatusHash, StatusHashList};
use ocm_transport::sequence_id::SequenceId;
use ocm_transport::status_hash::status_hash;
use ocm_transport::work::{self, ORIGINAL_SOURCE_LABEL};
use ocm_transport::{grpc_binding, mqtt_binding};

/// Timestamps between 1970 and 2242, to the nanosecond.
fn timestamp() -> impl Strategy<Value = Timestamp> {
    (0i64..(1 << 33), 0i32..1_000_000_000).prop_map(|(s, n)| Timestamp::new(s, n).unwrap())
}

fn extension_value() -> impl Strategy<Value = ExtensionValue> {
    prop_oneof![
        any::<bool>().prop_map(ExtensionValue::Boolean),
        any::<i32>().prop_map(ExtensionValue::Integer),
        ".{0,40}".prop_map(ExtensionValue::String),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(ExtensionValue::Bytes),
        "https://[a-z]{1,10}\\.example/[a-z]{0,10}".prop_map(ExtensionValue::Uri),
        "/[a-z]{0,10}".prop_map(ExtensionValue::UriRef),
        timestamp().prop_map(ExtensionValue::Timestamp),
    ]
}

/// Extension names as CloudEvents allows them, minus the names of spec attributes.
fn extension_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{0,19}".prop_filter("a spec attribute", |name| {
        ![
            "id",
            "source",
            "specversion",
            "type",
            "time",
            "subject",
            "dataschema",
            "datacontenttype",
        ]
        .contains(&name.as_str())
    })
}

fn event_type() -> impl Strategy<Value = EventType> {
    let token = "[a-z0-9][a-z0-9-]{0,12}";
    let sub_resource = prop_oneof![Just(SubResource::Spec), Just(SubResource::Status)];
    let action = prop_oneof![
        Just(EventAction::CreateRequest),
        Just(EventAction::UpdateRequest),
        Just(EventAction::DeleteRequest),
        Just(EventAction::ResyncRequest),
        Just(EventAction::ResyncResponse),
    ];
    (
        proptest::collection::vec(token, 1..5),
        token,
        token,
        sub_resource,
        action,
    )
        .prop_map(
            |(group, version, resource, sub_resource, action)| EventType {
                data_type: DataType {
                    group: group.join("."),
                    version,
                    resource,
                },
                sub_resource,
                action,
            },
        )
}

fn cloud_event() -> impl Strategy<Value = CloudEvent> {
    (
        "[a-f0-9-]{1,36}",
        ".{0,20}",
        event_type(),
        proptest::option::of(timestamp()),
        proptest::option::of(".{0,20}"),
        proptest::option::of("https://[a-z]{1,10}\\.example/schema"),
        proptest::collection::btree_map(extension_name(), extension_value(), 0..8),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 1..200)),
    )
        .prop_map(
            |(id, source, event_type, time, subject, data_schema, extensions, data)| CloudEvent {
                id,
                source,
                spec_version: SPEC_VERSION.to_owned(),
                event_type: event_type.to_string(),
                time,
                data_content_type: data.as_ref().map(|_| JSON.to_owned()),
                subject,
                data_schema,
                extensions,
                data,
            },
        )
        // Only heartbeats travel without attributes, and they are never decoded.
        .prop_filter("no attributes at all", |e| {
            e.time.is_some()
                || e.subject.is_some()
                || e.data_schema.is_some()
                || !e.extensions.is_empty()
                || e.data_content_type.is_some()
        })
}

/// JSON values as manifests and conditions hold them.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = serde_json::Value> {
    proptest::collection::btree_map("[a-zA-Z]{1,8}", json_value(), 0..5)
        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
}

fn lease() -> impl Strategy<Value = Lease> {
    let name = "[a-z][a-z0-9-]{0,20}";
    (
        name,
        name,
        proptest::option::of("[a-f0-9-]{36}"),
        proptest::option::of(0u64..u64::from(u32::MAX) * 1000),
        proptest::option::of(1i32..3600),
        proptest::option::of(name),
        proptest::option::of((0i64..(1 << 33), 0i32..1_000_000).prop_map(|(s, us)| {
            // The wire keeps microseconds for MicroTime, as Kubernetes does.
            MicroTime(Timestamp::new(s, us * 1000).unwrap())
        })),
    )
        .prop_map(
            |(name, namespace, uid, version, duration, holder, renew)| Lease {
                metadata: ObjectMeta {
                    name: Some(name),
                    namespace: Some(namespace),
                    uid,
                    resource_version: version.map(|v| v.to_string()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    lease_duration_seconds: duration,
                    holder_identity: holder,
                    renew_time: renew,
                    ..LeaseSpec::default()
                }),
            },
        )
}

fn delete_option() -> impl Strategy<Value = DeleteOption> {
    let rule = ("[a-z]{0,5}", "[a-z]{1,8}", "[a-z]{0,5}", "[a-z]{1,8}").prop_map(
        |(group, resource, namespace, name)| ResourceIdentifier {
            group,
            resource,
            name,
            namespace,
        },
    );
    (
        prop_oneof![
            Just(DeletePropagationPolicy::Foreground),
            Just(DeletePropagationPolicy::Orphan),
            Just(DeletePropagationPolicy::SelectivelyOrphan),
        ],
        proptest::collection::vec(rule, 0..3),
        proptest::option::of(0i64..100_000),
    )
        .prop_map(|(propagation_policy, rules, ttl)| DeleteOption {
            propagation_policy,
            selectively_orphan: (!rules.is_empty()).then_some(SelectivelyOrphan {
                orphaning_rules: rules,
            }),
            ttl_seconds_after_finished: ttl,
        })
}

/// A hub ManifestWork: any name, labels, generation (within the wire's 32 bits), manifests and
/// delete option, maybe being deleted.
fn manifest_work() -> impl Strategy<Value = ManifestWork> {
    let name = "[a-z][a-z0-9-]{0,20}";
    (
        (name, name, "[a-f0-9-]{36}", 1i64..=i64::from(i32::MAX)),
        proptest::collection::btree_map("[a-z]{1,8}", "[a-z0-9]{0,8}", 0..3),
        proptest::collection::vec(json_object(), 0..4),
        proptest::option::of(delete_option()),
        proptest::option::of(0i64..(1 << 33)),
    )
        .prop_map(
            |((name, namespace, uid, generation), labels, manifests, delete_option, deleted)| {
                ManifestWork {
                    metadata: ObjectMeta {
                        name: Some(name),
                        namespace: Some(namespace),
                        uid: Some(uid),
                        generation: Some(generation),
                        labels: (!labels.is_empty()).then_some(labels),
                        deletion_timestamp: deleted
                            .map(|s| Time(Timestamp::from_second(s).unwrap())),
                        ..ObjectMeta::default()
                    },
                    spec: ManifestWorkSpec {
                        workload: ManifestsTemplate {
                            manifests: manifests.into_iter().map(Manifest).collect(),
                        },
                        delete_option,
                        ..ManifestWorkSpec::default()
                    },
                    status: None,
                }
            },
        )
}

fn condition() -> impl Strategy<Value = Condition> {
    (
        "[A-Z][a-zA-Z]{0,10}",
        prop_oneof![
            Just(ConditionStatus::True),
            Just(ConditionStatus::False),
            Just(ConditionStatus::Unknown),
        ],
        proptest::option::of(0i64..1000),
        // Kubernetes times travel in whole seconds.
        0i64..(1 << 33),
        "[A-Z][a-zA-Z]{0,10}",
        ".{0,20}",
    )
        .prop_map(
            |(r#type, status, observed_generation, at, reason, message)| Condition {
                r#type,
                status,
                observed_generation,
                last_transition_time: Time(Timestamp::from_second(at).unwrap()),
                reason,
                message,
            },
        )
}

fn field_value() -> impl Strategy<Value = FieldValue> {
    prop_oneof![
        any::<i64>().prop_map(FieldValue::integer),
        ".{0,12}".prop_map(FieldValue::string),
        any::<bool>().prop_map(FieldValue::boolean),
        json_object().prop_map(|v| FieldValue::json_raw(v.to_string())),
    ]
}

fn manifest_condition() -> impl Strategy<Value = ManifestCondition> {
    (
        0i32..20,
        (
            "[a-z.]{0,8}",
            "v[0-9]",
            "[A-Z][a-z]{0,8}",
            "[a-z]{1,8}",
            "[a-z]{1,8}",
            "[a-z]{0,8}",
        ),
        proptest::collection::vec(("[a-z]{1,8}", field_value()), 0..3),
        proptest::collection::vec(condition(), 0..3),
    )
        .prop_map(
            |(ordinal, (group, version, kind, resource, name, namespace), values, conditions)| {
                ManifestCondition {
                    resource_meta: ManifestResourceMeta {
                        ordinal,
                        group,
                        version,
                        kind,
                        resource,
                        name,
                        namespace,
                    },
                    status_feedback: StatusFeedbackResult {
                        values: values
                            .into_iter()
                            .map(|(name, field_value)| FeedbackValue { name, field_value })
                            .collect(),
                    },
                    conditions,
                }
            },
        )
}

fn work_status() -> impl Strategy<Value = ManifestWorkStatus> {
    (
        proptest::collection::vec(condition(), 0..4),
        proptest::collection::vec(manifest_condition(), 0..4),
    )
        .prop_map(|(conditions, manifests)| ManifestWorkStatus {
            conditions,
            resource_status: ManifestResourceStatus { manifests },
        })
}

proptest! {
    #[test]
    fn grpc_mapping_round_trips_every_event_exactly(event in cloud_event()) {
        let decoded = grpc_binding::decode(grpc_binding::encode(&event)).unwrap();
        prop_assert_eq!(decoded, event);
    }

    #[test]
    fn grpc_wire_bytes_round_trip_through_protobuf(event in cloud_event()) {
        use prost::Message as _;
        let bytes = grpc_binding::encode(&event).encode_to_vec();
        let message = ocm_proto::CloudEvent::decode(bytes.as_slice()).unwrap();
        prop_assert_eq!(grpc_binding::decode(message).unwrap(), event);
    }

    #[test]
    fn mqtt_mapping_round_trips_every_event_as_go_formats_values(event in cloud_event()) {
        let decoded = mqtt_binding::decode(mqtt_binding::encode(&event)).unwrap();
        prop_assert_eq!(&decoded.id, &event.id);
        prop_assert_eq!(&decoded.source, &event.source);
        prop_assert_eq!(&decoded.event_type, &event.event_type);
        prop_assert_eq!(decoded.time, event.time);
        prop_assert_eq!(&decoded.subject, &event.subject);
        prop_assert_eq!(&decoded.data_schema, &event.data_schema);
        prop_assert_eq!(&decoded.data_content_type, &event.data_content_type);
        prop_assert_eq!(&decoded.data, &event.data);
        prop_assert_eq!(decoded.extensions.len(), event.extensions.len());
        for (name, value) in &event.extensions {
            // MQTT carries every value as a string; typed reads convert them back.
            match value {
                ExtensionValue::Integer(i) => {
                    prop_assert_eq!(decoded.extension_integer(name), Some(i64::from(*i)));
                }
                ExtensionValue::Timestamp(t) => {
                    prop_assert_eq!(decoded.extension_timestamp(name), Some(*t));
                }
                ExtensionValue::String(s) | ExtensionValue::Uri(s) | ExtensionValue::UriRef(s) => {
                    prop_assert_eq!(decoded.extension_str(name), Some(s.as_str()));
                }
                ExtensionValue::Boolean(b) => {
                    let text = b.to_string();
                    prop_assert_eq!(decoded.extension_str(name), Some(text.as_str()));
                }
                ExtensionValue::Bytes(_) => prop_assert!(decoded.extension_str(name).is_some()),
            }
        }
    }

    #[test]
    fn event_types_parse_back_from_the_right_whatever_dots_the_group_has(t in event_type()) {
        let text = t.to_string();
        prop_assert_eq!(text.parse::<EventType>().unwrap(), t.clone());
        prop_assert_eq!(t.data_type.to_string().parse::<DataType>().unwrap(), t.data_type);
    }

    #[test]
    fn resync_payloads_round_trip(
        versions in proptest::collection::vec(("[a-f0-9-]{1,36}", any::<i64>()), 0..20),
        hashes in proptest::collection::vec(("[a-f0-9-]{1,36}", "[a-f0-9]{64}"), 0..20),
    ) {
        let versions = ResourceVersionList {
            resource_versions: versions
                .into_iter()
                .map(|(resource_id, resource_version)| ResourceVersion { resource_id, resource_version })
                .collect(),
        };
        let json = serde_json::to_vec(&versions).unwrap();
        prop_assert_eq!(serde_json::from_slice::<ResourceVersionList>(&json).unwrap(), versions);
        let hashes = StatusHashList {
            status_hashes: hashes
                .into_iter()
                .map(|(resource_id, status_hash)| StatusHash { resource_id, status_hash })
                .collect(),
        };
        let json = serde_json::to_vec(&hashes).unwrap();
        prop_assert_eq!(serde_json::from_slice::<StatusHashList>(&json).unwrap(), hashes);
    }

    #[test]
    fn manifest_bundles_and_their_status_round_trip(
        manifests in proptest::collection::vec(json_object(), 0..4),
        configs in proptest::collection::vec(json_object(), 0..3),
        delete_option in proptest::option::of(json_object()),
        conditions in proptest::collection::vec(json_object(), 0..3),
        resource_status in proptest::collection::vec(json_object(), 0..3),
    ) {
        let bundle = ManifestBundle {
            manifests,
            delete_option,
            manifest_configs: configs,
            executer: None,
        };
        prop_assert_eq!(ManifestBundle::from_json(&bundle.to_json()).unwrap(), bundle.clone());
        let status = ManifestBundleStatus {
            manifest_bundle: Some(bundle),
            conditions,
            resource_status,
        };
        prop_assert_eq!(ManifestBundleStatus::from_json(&status.to_json()).unwrap(), status);
    }

    #[test]
    fn registration_objects_round_trip_and_deletions_keep_their_uid(
        lease in lease(),
        deleted_at in proptest::option::of(0i64..(1 << 33)),
        now in timestamp(),
    ) {
        let mut lease = lease;
        lease.metadata.deletion_timestamp =
            deleted_at.map(|s| Time(Timestamp::from_second(s).unwrap()));
        let event = registration::encode(
            RegistrationKind::Lease,
            SubResource::Spec,
            EventAction::UpdateRequest,
            "cluster",
            &lease,
            "id".to_owned(),
            now,
        )
        .unwrap();
        // Through the gRPC wire and back, as the receiving side sees it.
        let event = grpc_binding::decode(grpc_binding::encode(&event)).unwrap();
        let decoded: Result<Decoded<Lease>, _> = registration::decode(RegistrationKind::Lease, &event);
        match (&lease.metadata.deletion_timestamp, &lease.metadata.uid) {
            (None, _) => prop_assert_eq!(decoded.unwrap(), Decoded::Object(lease.clone())),
            (Some(at), Some(uid)) => prop_assert_eq!(
                decoded.unwrap(),
                Decoded::Deleted { uid: uid.clone(), deletion_timestamp: at.0 }
            ),
            // A deletion needs the UID to say what was deleted.
            (Some(_), None) => prop_assert!(decoded.is_err()),
        }
        prop_assert_eq!(
            event.cluster_name(),
            lease.metadata.namespace.as_deref()
        );
    }

    #[test]
    fn a_hub_work_reaches_the_agent_as_it_was(work in manifest_work(), now in timestamp()) {
        let event = work::encode_spec(&work, "kube", EventAction::UpdateRequest, "e".into(), now)
            .unwrap();
        let event = grpc_binding::decode(grpc_binding::encode(&event)).unwrap();
        let received = work::decode_spec(&event).unwrap();
        let (meta, sent) = (&received.metadata, &work.metadata);
        prop_assert_eq!(&meta.uid, &sent.uid);
        prop_assert_eq!(&meta.name, &sent.name);
        prop_assert_eq!(&meta.namespace, &sent.namespace);
        prop_assert_eq!(meta.generation, sent.generation);
        prop_assert_eq!(&meta.labels.as_ref().unwrap()[ORIGINAL_SOURCE_LABEL], "kube");
        for (key, value) in sent.labels.iter().flatten() {
            prop_assert_eq!(&meta.labels.as_ref().unwrap()[key], value);
        }
        match &sent.deletion_timestamp {
            None => {
                prop_assert_eq!(&received.spec, &work.spec);
                prop_assert_eq!(&meta.finalizers, &None);
            }
            Some(at) => {
                prop_assert_eq!(&meta.deletion_timestamp, &Some(at.clone()));
                prop_assert_eq!(&meta.finalizers, &Some(vec![MANIFEST_WORK_FINALIZER.to_owned()]));
                prop_assert!(event.data.is_none());
            }
        }
        // The typed bundle is the JSON envelope of the spec's parts.
        let envelope = ManifestBundle {
            manifests: work.spec.workload.manifests.iter().map(|m| m.0.clone()).collect(),
            delete_option: work.spec.delete_option.as_ref().map(|d| serde_json::to_value(d).unwrap()),
            manifest_configs: Vec::new(),
            executer: None,
        };
        prop_assert_eq!(ManifestBundle::from_json(&ManifestBundle::spec_json(&work.spec)).unwrap(), envelope);
        prop_assert_eq!(ManifestBundle::spec_from_json(&ManifestBundle::spec_json(&work.spec)).unwrap(), work.spec);
    }

    #[test]
    fn an_agents_status_reaches_the_hub_as_it_was_over_either_transport(
        work in manifest_work(),
        status in work_status(),
        millis in 0i64..(1 << 40),
        step in 0u16..4096,
        now in timestamp(),
    ) {
        let mut agent_work = work::decode_spec(
            &work::encode_spec(&work, "kube", EventAction::UpdateRequest, "e".into(), now).unwrap(),
        )
        .unwrap();
        agent_work.status = Some(status.clone());
        let sequence = SequenceId::from_parts(millis, 1, step);
        let event = work::encode_status(
            &agent_work,
            "cluster-work-agent",
            EventAction::UpdateRequest,
            sequence,
            "s".into(),
            now,
        )
        .unwrap();
        let hash = status_hash(&serde_json::to_value(&status).unwrap());
        for received in [
            grpc_binding::decode(grpc_binding::encode(&event)).unwrap(),
            mqtt_binding::decode(mqtt_binding::encode(&event)).unwrap(),
        ] {
            let decoded = work::decode_status(&received).unwrap();
            prop_assert_eq!(decoded.work.status.as_ref(), Some(&status));
            prop_assert_eq!(decoded.status_hash.as_deref(), Some(hash.as_str()));
            prop_assert_eq!(decoded.sequence(), Some(sequence));
            prop_assert_eq!(Some(decoded.generation), work.metadata.generation);
            prop_assert_eq!(decoded.resource_id(), work.metadata.uid.as_deref().unwrap());
            prop_assert_eq!(Some(decoded.cluster()), work.metadata.namespace.as_deref());
            prop_assert_eq!(Some(decoded.name()), work.metadata.name.as_deref());
        }
    }
}
