//! The CloudEvents JSON *structured* format (`application/cloudevents+json`): the whole event,
//! attributes and data, as one JSON object. OCM's receivers switch to it when the content type
//! says so, on gRPC and MQTT alike; senders use binary mode.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::event::{CloudEvent, ExtensionValue};

/// Whether a content type announces a structured CloudEvent (`application/cloudevents+json`,
/// also with parameters such as `; charset=utf-8`).
pub fn is_structured(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    media_type.eq_ignore_ascii_case("application/cloudevents+json")
}

/// Decodes a structured JSON CloudEvent.
pub fn decode(bytes: &[u8]) -> Result<CloudEvent, StructuredError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| StructuredError::NotJson(e.to_string()))?;
    let Value::Object(mut object) = value else {
        return Err(StructuredError::NotAnObject);
    };
    let mut take_string = |name: &'static str| -> Result<Option<String>, StructuredError> {
        match object.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(StructuredError::AttributeNotString(name)),
        }
    };
    let spec_version =
        take_string("specversion")?.ok_or(StructuredError::Missing("specversion"))?;
    let id = take_string("id")?.ok_or(StructuredError::Missing("id"))?;
    let source = take_string("source")?.ok_or(StructuredError::Missing("source"))?;
    let event_type = take_string("type")?.ok_or(StructuredError::Missing("type"))?;
    let data_content_type = take_string("datacontenttype")?;
    let subject = take_string("subject")?;
    let data_schema = take_string("dataschema")?;
    let time = take_string("time")?
        .map(|t| t.parse().map_err(|_| StructuredError::BadTime(t)))
        .transpose()?;
    let data = decode_data(&mut object, data_content_type.as_deref())?;
    let extensions = decode_extensions(object)?;
    Ok(CloudEvent {
        id,
        source,
        spec_version,
        event_type,
        time,
        data_content_type,
        subject,
        data_schema,
        extensions,
        data,
    })
}

fn decode_data(
    object: &mut Map<String, Value>,
    content_type: Option<&str>,
) -> Result<Option<Vec<u8>>, StructuredError> {
    if let Some(encoded) = object.remove("data_base64") {
        use base64::Engine as _;
        let Value::String(encoded) = encoded else {
            return Err(StructuredError::AttributeNotString("data_base64"));
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| StructuredError::BadBase64(e.to_string()))?;
        return Ok(Some(bytes));
    }
    let json_content = content_type.is_none_or(|ct| {
        let media_type = ct.split(';').next().unwrap_or_default().trim();
        media_type.ends_with("/json") || media_type.ends_with("+json")
    });
    match object.remove("data") {
        None | Some(Value::Null) => Ok(None),
        // Non-JSON data travels as a JSON string holding the raw text.
        Some(Value::String(text)) if !json_content => Ok(Some(text.into_bytes())),
        Some(value) => Ok(Some(value.to_string().into_bytes())),
    }
}

fn decode_extensions(
    object: Map<String, Value>,
) -> Result<BTreeMap<String, ExtensionValue>, StructuredError> {
    object
        .into_iter()
        .map(|(name, value)| {
            let value = match value {
                Value::String(s) => ExtensionValue::String(s),
                Value::Bool(b) => ExtensionValue::Boolean(b),
                Value::Number(n) => {
                    let integer = n.as_i64().and_then(|i| i32::try_from(i).ok());
                    ExtensionValue::Integer(
                        integer.ok_or_else(|| StructuredError::BadExtension(name.clone()))?,
                    )
                }
                _ => return Err(StructuredError::BadExtension(name)),
            };
            Ok((name, value))
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StructuredError {
    #[error("structured CloudEvent is not JSON: {0}")]
    NotJson(String),
    #[error("structured CloudEvent is not a JSON object")]
    NotAnObject,
    #[error("structured CloudEvent has no {0:?}")]
    Missing(&'static str),
    #[error("structured CloudEvent attribute {0:?} is not a string")]
    AttributeNotString(&'static str),
    #[error("structured CloudEvent time {0:?} is not an RFC 3339 timestamp")]
    BadTime(String),
    #[error("structured CloudEvent data_base64 is not base64: {0}")]
    BadBase64(String),
    #[error("structured CloudEvent extension {0:?} is not a string, boolean or 32-bit integer")]
    BadExtension(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_content_types_are_recognised_with_parameters_and_any_case() {
        assert!(is_structured("application/cloudevents+json"));
        assert!(is_structured("Application/CloudEvents+JSON; charset=utf-8"));
        assert!(!is_structured("application/json"));
        assert!(!is_structured("application/cloudevents-batch+json"));
    }

    #[test]
    fn structured_event_decodes_attributes_extensions_and_json_data() {
        let json =
            br#"{"specversion":"1.0","id":"1","source":"kube","type":"a.b.c.spec.create_request",
            "datacontenttype":"application/json","time":"2025-12-16T06:00:17.771003Z",
            "clustername":"cluster1","resourceversion":2,"flag":true,"data":{"manifests":[]}}"#;
        let event = decode(json).unwrap();
        assert_eq!(event.source, "kube");
        assert_eq!(event.cluster_name(), Some("cluster1"));
        assert_eq!(
            event.extensions["resourceversion"],
            ExtensionValue::Integer(2)
        );
        assert_eq!(event.extensions["flag"], ExtensionValue::Boolean(true));
        assert_eq!(event.data.as_deref(), Some(&br#"{"manifests":[]}"#[..]));
        assert!(event.time.is_some());
    }

    #[test]
    fn structured_event_decodes_base64_and_text_data() {
        let binary = decode(
            br#"{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"AAEC"}"#,
        )
        .unwrap();
        assert_eq!(binary.data, Some(vec![0, 1, 2]));
        let text = decode(br#"{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":"text/plain","data":"hi"}"#).unwrap();
        assert_eq!(text.data, Some(b"hi".to_vec()));
    }

    #[test]
    fn malformed_structured_events_are_refused_with_the_reason() {
        let cases: [(&[u8], &str); 5] = [
            (b"not json", "not JSON"),
            (b"[1]", "not a JSON object"),
            (
                br#"{"specversion":"1.0","source":"s","type":"t"}"#,
                "has no \"id\"",
            ),
            (
                br#"{"specversion":"1.0","id":"1","source":"s","type":"t","time":"yesterday"}"#,
                "not an RFC 3339",
            ),
            (
                br#"{"specversion":"1.0","id":"1","source":"s","type":"t","x":{"a":1}}"#,
                "extension \"x\"",
            ),
        ];
        for (input, reason) in cases {
            let err = decode(input).unwrap_err().to_string();
            assert!(
                err.contains(reason),
                "{}: {err}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
