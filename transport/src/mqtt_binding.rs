//! OCM's mapping between a [`CloudEvent`] and an MQTT v5 message (OCM's sdk-go MQTT protocol),
//! binary mode as the Go `mqtt_paho` binding writes it:
//!
//! - every attribute but the content type is a v5 *user property* `ce-<name>`, its value a
//!   string (integers in decimal, timestamps RFC 3339 with nanoseconds trimmed as Go's
//!   `RFC3339Nano`, booleans `true`/`false`, bytes base64);
//! - the content type is the v5 *Content Type* property; the payload is the raw data.
//!
//! MQTT carries no value types, so a decoded extension is always a string; OCM's receivers
//! convert on use ([`CloudEvent::extension_integer`], [`CloudEvent::extension_timestamp`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::event::{CloudEvent, ExtensionValue};
use crate::structured::{self, StructuredError};

/// Prefix of every user property that carries an attribute.
pub const PROPERTY_PREFIX: &str = "ce-";

/// The parts of an MQTT v5 PUBLISH that carry a CloudEvent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MqttMessage {
    /// v5 user properties, in the order written.
    pub user_properties: Vec<(String, String)>,
    /// v5 Content Type property.
    pub content_type: Option<String>,
    pub payload: Vec<u8>,
}

/// Encodes in binary mode.
pub fn encode(event: &CloudEvent) -> MqttMessage {
    let mut properties = vec![
        property("specversion", event.spec_version.clone()),
        property("id", event.id.clone()),
        property("source", event.source.clone()),
        property("type", event.event_type.clone()),
    ];
    if let Some(time) = event.time {
        properties.push(property("time", time.to_string()));
    }
    if let Some(subject) = &event.subject {
        properties.push(property("subject", subject.clone()));
    }
    if let Some(schema) = &event.data_schema {
        properties.push(property("dataschema", schema.clone()));
    }
    for (name, value) in &event.extensions {
        properties.push(property(name, format_value(value)));
    }
    MqttMessage {
        user_properties: properties,
        content_type: event.data_content_type.clone(),
        payload: event.data.clone().unwrap_or_default(),
    }
}

/// Decodes a binary-mode or structured-mode message, refusing one that is neither.
pub fn decode(message: MqttMessage) -> Result<CloudEvent, DecodeError> {
    if message
        .content_type
        .as_deref()
        .is_some_and(structured::is_structured)
    {
        return Ok(structured::decode(&message.payload)?);
    }
    let mut event = CloudEvent {
        data_content_type: message.content_type,
        data: (!message.payload.is_empty()).then_some(message.payload),
        ..CloudEvent::default()
    };
    let mut has_spec_version = false;
    for (key, value) in message.user_properties {
        let Some(name) = key.strip_prefix(PROPERTY_PREFIX) else {
            continue;
        };
        match name {
            "specversion" => {
                has_spec_version = true;
                event.spec_version = value;
            }
            "id" => event.id = value,
            "source" => event.source = value,
            "type" => event.event_type = value,
            "time" => event.time = Some(value.parse().map_err(|_| DecodeError::BadTime(value))?),
            "subject" => event.subject = Some(value),
            "dataschema" => event.data_schema = Some(value),
            _ => {
                event
                    .extensions
                    .insert(name.to_owned(), ExtensionValue::String(value));
            }
        }
    }
    if !has_spec_version {
        return Err(DecodeError::NotACloudEvent);
    }
    Ok(event)
}

fn property(name: &str, value: String) -> (String, String) {
    (format!("{PROPERTY_PREFIX}{name}"), value)
}

/// CloudEvents' canonical string form of a value (Go's `types.Format`).
fn format_value(value: &ExtensionValue) -> String {
    match value {
        ExtensionValue::Boolean(b) => b.to_string(),
        ExtensionValue::Integer(i) => i.to_string(),
        ExtensionValue::String(s) | ExtensionValue::Uri(s) | ExtensionValue::UriRef(s) => s.clone(),
        ExtensionValue::Bytes(b) => STANDARD.encode(b),
        // jiff prints UTC with trailing fractional zeros trimmed, as RFC3339Nano does.
        ExtensionValue::Timestamp(t) => t.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "MQTT message is not a CloudEvent: no ce-specversion user property and no structured content type"
    )]
    NotACloudEvent,
    #[error("MQTT message's ce-time {0:?} is not an RFC 3339 timestamp")]
    BadTime(String),
    #[error(transparent)]
    Structured(#[from] StructuredError),
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::event::{JSON, SPEC_VERSION};

    fn spec_event() -> CloudEvent {
        CloudEvent {
            id: "e1".into(),
            source: "maestro".into(),
            spec_version: SPEC_VERSION.into(),
            event_type:
                "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request"
                    .into(),
            time: Some("2025-12-16T06:00:17.771003Z".parse().unwrap()),
            data_content_type: Some(JSON.into()),
            extensions: BTreeMap::from([
                (
                    "clustername".into(),
                    ExtensionValue::String("cluster1".into()),
                ),
                ("resourceversion".into(), ExtensionValue::Integer(3)),
                (
                    "deletiontimestamp".into(),
                    ExtensionValue::Timestamp("2025-12-16T06:05:00Z".parse().unwrap()),
                ),
                ("flag".into(), ExtensionValue::Boolean(false)),
                ("blob".into(), ExtensionValue::Bytes(vec![0, 1, 2])),
            ]),
            data: Some(br#"{"manifests":[]}"#.to_vec()),
            ..CloudEvent::default()
        }
    }

    #[test]
    fn binary_mode_puts_attributes_in_user_properties_as_go_formats_them() {
        let message = encode(&spec_event());
        let expected: Vec<(String, String)> = [
            ("ce-specversion", "1.0"),
            ("ce-id", "e1"),
            ("ce-source", "maestro"),
            (
                "ce-type",
                "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request",
            ),
            ("ce-time", "2025-12-16T06:00:17.771003Z"),
            ("ce-blob", "AAEC"),
            ("ce-clustername", "cluster1"),
            ("ce-deletiontimestamp", "2025-12-16T06:05:00Z"),
            ("ce-flag", "false"),
            ("ce-resourceversion", "3"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(message.user_properties, expected);
        assert_eq!(message.content_type.as_deref(), Some("application/json"));
        assert_eq!(message.payload, br#"{"manifests":[]}"#);
    }

    #[test]
    fn decoded_extensions_are_strings_that_convert_on_use() {
        let event = decode(encode(&spec_event())).unwrap();
        assert_eq!(
            event.extensions["resourceversion"],
            ExtensionValue::String("3".into())
        );
        assert_eq!(event.extension_integer("resourceversion"), Some(3));
        assert_eq!(
            event.extension_timestamp("deletiontimestamp"),
            "2025-12-16T06:05:00Z".parse().ok()
        );
        let original = spec_event();
        assert_eq!(
            (event.id, event.source, event.time),
            (original.id, original.source, original.time)
        );
        assert_eq!(event.data, original.data);
    }

    #[test]
    fn a_message_without_spec_version_is_not_a_cloud_event() {
        let message = MqttMessage {
            payload: b"{}".to_vec(),
            ..MqttMessage::default()
        };
        assert_eq!(decode(message), Err(DecodeError::NotACloudEvent));
    }

    #[test]
    fn structured_content_type_switches_to_structured_mode() {
        let message = MqttMessage {
            content_type: Some("application/cloudevents+json".into()),
            payload: br#"{"specversion":"1.0","id":"s","source":"kube","type":"t"}"#.to_vec(),
            ..MqttMessage::default()
        };
        assert_eq!(decode(message).unwrap().id, "s");
    }
}
