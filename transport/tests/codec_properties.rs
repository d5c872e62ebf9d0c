//! Property round-trips of the codecs: whatever event, type string, payload or registration
//! object goes in comes back out — over the gRPC mapping exactly, over MQTT as the strings Go
//! writes, which convert back on use.

#![allow(clippy::unwrap_used)] // a failing property shows the value

use jiff::Timestamp;
use proptest::prelude::*;

use ocm_api::k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use ocm_transport::event::{CloudEvent, ExtensionValue, JSON, SPEC_VERSION};
use ocm_transport::event_type::{DataType, EventAction, EventType, SubResource};
use ocm_transport::payload::{ManifestBundle, ManifestBundleStatus};
use ocm_transport::registration::{self, Decoded, RegistrationKind};
use ocm_transport::resync::{ResourceVersion, ResourceVersionList, StatusHash, StatusHashList};
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
}
