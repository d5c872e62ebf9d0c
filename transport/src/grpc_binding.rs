//! OCM's mapping between a [`CloudEvent`] and the `io.cloudevents.v1.CloudEvent` protobuf
//! message (OCM's sdk-go gRPC protocol). It is *not* the CloudEvents protobuf format:
//!
//! - attribute keys carry a `ce-` prefix (`ce-time`, `ce-clustername`, …), except the content
//!   type, which goes under the bare key `contenttype`;
//! - data is always `binary_data`; a Go receiver ignores `text_data` and `proto_data`, and so do
//!   we;
//! - receivers ignore keys that have neither the prefix nor the name `contenttype`;
//! - a structured content type (`application/cloudevents+json`) means `binary_data` holds the
//!   whole event.

use jiff::Timestamp;
use ocm_proto::v1::cloud_event::Data;
use ocm_proto::v1::cloud_event_attribute_value::Attr;
use ocm_proto::{CloudEvent as ProtoEvent, CloudEventAttributeValue};

use crate::event::{CloudEvent, ExtensionValue};
use crate::structured::{self, StructuredError};

/// Prefix of every attribute key but the content type.
pub const ATTRIBUTE_PREFIX: &str = "ce-";
/// Key of the data content type, without the prefix.
pub const CONTENT_TYPE_KEY: &str = "contenttype";

const TIME: &str = "time";
const SUBJECT: &str = "subject";
const DATA_SCHEMA: &str = "dataschema";

/// Encodes in binary mode, as OCM's Go writer does.
pub fn encode(event: &CloudEvent) -> ProtoEvent {
    let mut attributes = std::collections::BTreeMap::new();
    let mut put = |name: &str, attr: Attr| {
        attributes.insert(
            format!("{ATTRIBUTE_PREFIX}{name}"),
            CloudEventAttributeValue { attr: Some(attr) },
        );
    };
    if let Some(time) = event.time {
        put(TIME, Attr::CeTimestamp(to_proto_timestamp(time)));
    }
    if let Some(subject) = &event.subject {
        put(SUBJECT, Attr::CeString(subject.clone()));
    }
    if let Some(schema) = &event.data_schema {
        put(DATA_SCHEMA, Attr::CeUri(schema.clone()));
    }
    for (name, value) in &event.extensions {
        put(name, to_attr(value));
    }
    if let Some(content_type) = &event.data_content_type {
        attributes.insert(
            CONTENT_TYPE_KEY.to_owned(),
            CloudEventAttributeValue {
                attr: Some(Attr::CeString(content_type.clone())),
            },
        );
    }
    ProtoEvent {
        id: event.id.clone(),
        source: event.source.clone(),
        spec_version: event.spec_version.clone(),
        r#type: event.event_type.clone(),
        attributes,
        data: event.data.clone().map(Data::BinaryData),
    }
}

/// Decodes as OCM's Go reader does, refusing what it cannot decode with the reason.
pub fn decode(message: ProtoEvent) -> Result<CloudEvent, DecodeError> {
    let content_type = match message.attributes.get(CONTENT_TYPE_KEY) {
        None => None,
        Some(value) => Some(string_value(CONTENT_TYPE_KEY, value)?),
    };
    let binary_data = match message.data {
        Some(Data::BinaryData(bytes)) => Some(bytes),
        // What a Go receiver does: only binary_data is data.
        Some(Data::TextData(_) | Data::ProtoData(_)) | None => None,
    };
    if content_type
        .as_deref()
        .is_some_and(structured::is_structured)
    {
        let bytes = binary_data.ok_or(DecodeError::StructuredWithoutData)?;
        return Ok(structured::decode(&bytes)?);
    }
    if message.spec_version.is_empty() {
        return Err(DecodeError::MissingSpecVersion);
    }
    if message.attributes.is_empty() {
        return Err(DecodeError::NoAttributes);
    }
    let mut event = CloudEvent {
        id: message.id,
        source: message.source,
        spec_version: message.spec_version,
        event_type: message.r#type,
        data_content_type: content_type,
        data: binary_data,
        ..CloudEvent::default()
    };
    for (key, value) in &message.attributes {
        let Some(name) = key.strip_prefix(ATTRIBUTE_PREFIX) else {
            continue; // `contenttype`, handled above, or a key the Go reader ignores too
        };
        match name {
            TIME => event.time = Some(timestamp_value(key, value)?),
            SUBJECT => event.subject = Some(string_value(key, value)?),
            DATA_SCHEMA => event.data_schema = Some(string_value(key, value)?),
            // The required attributes travel in their own fields.
            "id" | "source" | "specversion" | "type" => {}
            _ => {
                let value = from_attr(key, value)?;
                event.extensions.insert(name.to_owned(), value);
            }
        }
    }
    Ok(event)
}

fn to_attr(value: &ExtensionValue) -> Attr {
    match value {
        ExtensionValue::Boolean(b) => Attr::CeBoolean(*b),
        ExtensionValue::Integer(i) => Attr::CeInteger(*i),
        ExtensionValue::String(s) => Attr::CeString(s.clone()),
        ExtensionValue::Bytes(b) => Attr::CeBytes(b.clone()),
        ExtensionValue::Uri(u) => Attr::CeUri(u.clone()),
        ExtensionValue::UriRef(u) => Attr::CeUriRef(u.clone()),
        ExtensionValue::Timestamp(t) => Attr::CeTimestamp(to_proto_timestamp(*t)),
    }
}

fn from_attr(key: &str, value: &CloudEventAttributeValue) -> Result<ExtensionValue, DecodeError> {
    Ok(
        match value
            .attr
            .as_ref()
            .ok_or_else(|| DecodeError::EmptyAttribute(key.to_owned()))?
        {
            Attr::CeBoolean(b) => ExtensionValue::Boolean(*b),
            Attr::CeInteger(i) => ExtensionValue::Integer(*i),
            Attr::CeString(s) => ExtensionValue::String(s.clone()),
            Attr::CeBytes(b) => ExtensionValue::Bytes(b.clone()),
            Attr::CeUri(u) => ExtensionValue::Uri(u.clone()),
            Attr::CeUriRef(u) => ExtensionValue::UriRef(u.clone()),
            Attr::CeTimestamp(t) => ExtensionValue::Timestamp(from_proto_timestamp(key, t)?),
        },
    )
}

fn string_value(key: &str, value: &CloudEventAttributeValue) -> Result<String, DecodeError> {
    match &value.attr {
        Some(Attr::CeString(s) | Attr::CeUri(s) | Attr::CeUriRef(s)) => Ok(s.clone()),
        _ => Err(DecodeError::WrongAttributeType {
            key: key.to_owned(),
            expected: "a string",
        }),
    }
}

/// `ce_timestamp`, or an RFC 3339 string (Go's `ToTime` accepts both).
fn timestamp_value(key: &str, value: &CloudEventAttributeValue) -> Result<Timestamp, DecodeError> {
    match &value.attr {
        Some(Attr::CeTimestamp(t)) => from_proto_timestamp(key, t),
        Some(Attr::CeString(s)) => s
            .parse()
            .map_err(|_| DecodeError::BadTimestamp(key.to_owned())),
        _ => Err(DecodeError::WrongAttributeType {
            key: key.to_owned(),
            expected: "a timestamp",
        }),
    }
}

fn to_proto_timestamp(time: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.as_second(),
        nanos: time.subsec_nanosecond(),
    }
}

fn from_proto_timestamp(key: &str, t: &prost_types::Timestamp) -> Result<Timestamp, DecodeError> {
    Timestamp::new(t.seconds, t.nanos).map_err(|_| DecodeError::BadTimestamp(key.to_owned()))
}

/// Why a protobuf CloudEvent could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("CloudEvent has no spec_version")]
    MissingSpecVersion,
    #[error("CloudEvent has no attributes (only heartbeats may, and they are not decoded)")]
    NoAttributes,
    #[error("CloudEvent attribute {0:?} has no value")]
    EmptyAttribute(String),
    #[error("CloudEvent attribute {key:?} must be {expected}")]
    WrongAttributeType { key: String, expected: &'static str },
    #[error("CloudEvent attribute {0:?} is not a valid timestamp")]
    BadTimestamp(String),
    #[error("structured CloudEvent without binary_data")]
    StructuredWithoutData,
    #[error(transparent)]
    Structured(#[from] StructuredError),
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::event::{JSON, SPEC_VERSION, extension};

    fn attr(attr: Attr) -> CloudEventAttributeValue {
        CloudEventAttributeValue { attr: Some(attr) }
    }

    fn time(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    /// A status update a Go work agent sent (captured from the wire), as our model.
    fn status_update() -> CloudEvent {
        let string = |s: &str| ExtensionValue::String(s.to_owned());
        CloudEvent {
            id: "8a3993ab-1193-4d40-bc8c-6bc1fc098089".into(),
            source: "cluster1-work-agent".into(),
            spec_version: SPEC_VERSION.into(),
            event_type:
                "io.open-cluster-management.works.v1alpha1.manifestbundles.status.update_request"
                    .into(),
            time: Some(time("2025-12-16T06:00:17.923Z")),
            data_content_type: Some(JSON.into()),
            extensions: BTreeMap::from([
                (extension::CLUSTER_NAME.into(), string("cluster1")),
                (extension::ORIGINAL_SOURCE.into(), string("kube")),
                (
                    extension::RESOURCE_ID.into(),
                    string("55c61e54-a3f6-563d-9fec-b1fe297bdfdb"),
                ),
                (
                    extension::RESOURCE_VERSION.into(),
                    ExtensionValue::Integer(1),
                ),
                (extension::SEQUENCE_ID.into(), string("2000808179729960960")),
                (extension::STATUS_HASH.into(), string("e3b23766")),
                (
                    extension::METADATA.into(),
                    string(r#"{"name":"w","namespace":"cluster1"}"#),
                ),
                (extension::LOG_TRACING.into(), string("{}")),
            ]),
            data: Some(br#"{"conditions":[],"resourceStatus":[]}"#.to_vec()),
            ..CloudEvent::default()
        }
    }

    /// The same event as OCM's Go writer puts it on the wire (§4.6).
    fn status_update_on_the_wire() -> ProtoEvent {
        let string = |s: &str| attr(Attr::CeString(s.to_owned()));
        let stamp = prost_types::Timestamp {
            seconds: 1_765_864_817,
            nanos: 923_000_000,
        };
        ProtoEvent {
            id: "8a3993ab-1193-4d40-bc8c-6bc1fc098089".into(),
            source: "cluster1-work-agent".into(),
            spec_version: "1.0".into(),
            r#type:
                "io.open-cluster-management.works.v1alpha1.manifestbundles.status.update_request"
                    .into(),
            attributes: BTreeMap::from([
                ("contenttype".into(), string("application/json")),
                ("ce-time".into(), attr(Attr::CeTimestamp(stamp))),
                ("ce-clustername".into(), string("cluster1")),
                ("ce-originalsource".into(), string("kube")),
                (
                    "ce-resourceid".into(),
                    string("55c61e54-a3f6-563d-9fec-b1fe297bdfdb"),
                ),
                ("ce-resourceversion".into(), attr(Attr::CeInteger(1))),
                ("ce-sequenceid".into(), string("2000808179729960960")),
                ("ce-statushash".into(), string("e3b23766")),
                (
                    "ce-metadata".into(),
                    string(r#"{"name":"w","namespace":"cluster1"}"#),
                ),
                ("ce-logtracing".into(), string("{}")),
            ]),
            data: Some(Data::BinaryData(
                br#"{"conditions":[],"resourceStatus":[]}"#.to_vec(),
            )),
        }
    }

    #[test]
    fn status_update_encodes_exactly_as_ocm_writes_it() {
        assert_eq!(encode(&status_update()), status_update_on_the_wire());
    }

    #[test]
    fn status_update_decodes_from_what_ocm_writes() {
        assert_eq!(
            decode(status_update_on_the_wire()).unwrap(),
            status_update()
        );
    }

    #[test]
    fn deleting_spec_event_has_no_content_type_and_no_data() {
        let deleted_at = time("2025-12-16T06:05:00Z");
        let event = CloudEvent {
            id: "1".into(),
            source: "kube".into(),
            spec_version: SPEC_VERSION.into(),
            event_type:
                "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.delete_request"
                    .into(),
            extensions: BTreeMap::from([
                (
                    extension::DELETION_TIMESTAMP.into(),
                    ExtensionValue::Timestamp(deleted_at),
                ),
                (
                    extension::CLUSTER_NAME.into(),
                    ExtensionValue::String("cluster1".into()),
                ),
            ]),
            ..CloudEvent::default()
        };
        let wire = encode(&event);
        assert!(!wire.attributes.contains_key("contenttype"));
        assert_eq!(wire.data, None);
        assert_eq!(
            wire.attributes["ce-deletiontimestamp"],
            attr(Attr::CeTimestamp(prost_types::Timestamp {
                seconds: 1_765_865_100,
                nanos: 0
            }))
        );
        assert_eq!(decode(wire).unwrap(), event);
    }

    #[test]
    fn keys_without_the_prefix_and_non_binary_data_are_ignored_as_go_does() {
        let mut wire = status_update_on_the_wire();
        wire.attributes
            .insert("clustername".into(), attr(Attr::CeString("other".into())));
        wire.attributes.insert(
            "datacontenttype".into(),
            attr(Attr::CeString("text/plain".into())),
        );
        wire.data = Some(Data::TextData("ignored".into()));
        let event = decode(wire).unwrap();
        assert_eq!(event.cluster_name(), Some("cluster1"));
        assert_eq!(event.data_content_type.as_deref(), Some(JSON));
        assert_eq!(event.data, None);
    }

    #[test]
    fn time_given_as_an_rfc3339_string_is_accepted() {
        let mut wire = status_update_on_the_wire();
        wire.attributes.insert(
            "ce-time".into(),
            attr(Attr::CeString("2025-12-16T06:00:17.923Z".into())),
        );
        assert_eq!(decode(wire).unwrap().time, status_update().time);
    }

    #[test]
    fn structured_mode_reads_the_whole_event_from_binary_data() {
        let json = br#"{"specversion":"1.0","id":"9","source":"maestro","type":"a.v1.things.spec.create_request","clustername":"c2"}"#;
        let wire = ProtoEvent {
            attributes: BTreeMap::from([(
                "contenttype".into(),
                attr(Attr::CeString("application/cloudevents+json".into())),
            )]),
            data: Some(Data::BinaryData(json.to_vec())),
            ..ProtoEvent::default()
        };
        let event = decode(wire).unwrap();
        assert_eq!((event.id.as_str(), event.source.as_str()), ("9", "maestro"));
        assert_eq!(event.cluster_name(), Some("c2"));
    }

    #[test]
    fn undecodable_messages_are_refused_with_the_reason() {
        let no_spec = ProtoEvent {
            spec_version: String::new(),
            ..status_update_on_the_wire()
        };
        let no_attributes = ProtoEvent {
            attributes: BTreeMap::new(),
            ..status_update_on_the_wire()
        };
        let mut bad_time = status_update_on_the_wire();
        bad_time
            .attributes
            .insert("ce-time".into(), attr(Attr::CeInteger(5)));
        let mut empty = status_update_on_the_wire();
        empty
            .attributes
            .insert("ce-x".into(), CloudEventAttributeValue { attr: None });
        let mut out_of_range = status_update_on_the_wire();
        let far = prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        out_of_range
            .attributes
            .insert("ce-deletiontimestamp".into(), attr(Attr::CeTimestamp(far)));
        let mut content_type = status_update_on_the_wire();
        content_type
            .attributes
            .insert("contenttype".into(), attr(Attr::CeBoolean(true)));
        let cases = [
            (no_spec, "no spec_version"),
            (no_attributes, "no attributes"),
            (bad_time, "\"ce-time\" must be a timestamp"),
            (empty, "\"ce-x\" has no value"),
            (
                out_of_range,
                "\"ce-deletiontimestamp\" is not a valid timestamp",
            ),
            (content_type, "\"contenttype\" must be a string"),
        ];
        for (wire, reason) in cases {
            let err = decode(wire).unwrap_err().to_string();
            assert!(err.contains(reason), "expected {reason:?} in {err:?}");
        }
    }
}
