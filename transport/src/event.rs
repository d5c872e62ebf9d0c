//! The CloudEvent as ocm-rs handles it in memory, independent of any wire binding.
//!
//! A small model of our own rather than cloudevents-sdk's: OCM's bindings are non-standard
//! (see [`crate::grpc_binding`]), its extensions are typed per data type (`resourceversion` is an
//! integer for manifestbundles and a string elsewhere), and the mapping code has to see exactly
//! which variant each attribute has.

use std::collections::BTreeMap;

use jiff::Timestamp;

/// The only CloudEvents spec version OCM speaks.
pub const SPEC_VERSION: &str = "1.0";
/// Content type of every OCM payload.
pub const JSON: &str = "application/json";

/// A CloudEvent: the four required attributes, the optional ones OCM uses, typed extensions
/// and raw data bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CloudEvent {
    pub id: String,
    pub source: String,
    pub spec_version: String,
    /// The `type` attribute, e.g.
    /// `io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request`.
    pub event_type: String,
    pub time: Option<Timestamp>,
    pub data_content_type: Option<String>,
    pub subject: Option<String>,
    pub data_schema: Option<String>,
    /// Extension attributes by name (without any wire prefix).
    pub extensions: BTreeMap<String, ExtensionValue>,
    pub data: Option<Vec<u8>>,
}

/// The value of an extension attribute, in the CloudEvents type system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionValue {
    Boolean(bool),
    Integer(i32),
    String(String),
    Bytes(Vec<u8>),
    Uri(String),
    UriRef(String),
    Timestamp(Timestamp),
}

/// OCM's extension attribute names (`generic/types/types.go`).
pub mod extension {
    pub const RESOURCE_ID: &str = "resourceid";
    pub const RESOURCE_VERSION: &str = "resourceversion";
    pub const CLUSTER_NAME: &str = "clustername";
    pub const ORIGINAL_SOURCE: &str = "originalsource";
    pub const DELETION_TIMESTAMP: &str = "deletiontimestamp";
    pub const SEQUENCE_ID: &str = "sequenceid";
    pub const STATUS_HASH: &str = "statushash";
    pub const METADATA: &str = "metadata";
    pub const LOG_TRACING: &str = "logtracing";
}

impl CloudEvent {
    /// A string extension, if present and a string.
    pub fn extension_str(&self, name: &str) -> Option<&str> {
        match self.extensions.get(name)? {
            ExtensionValue::String(s) | ExtensionValue::Uri(s) | ExtensionValue::UriRef(s) => {
                Some(s)
            }
            _ => None,
        }
    }

    /// An integer extension, accepting a decimal string as OCM's receivers do (`ToInteger`).
    pub fn extension_integer(&self, name: &str) -> Option<i64> {
        match self.extensions.get(name)? {
            ExtensionValue::Integer(i) => Some(i64::from(*i)),
            ExtensionValue::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// A timestamp extension, accepting an RFC 3339 string as OCM's receivers do (`ToTime`).
    pub fn extension_timestamp(&self, name: &str) -> Option<Timestamp> {
        match self.extensions.get(name)? {
            ExtensionValue::Timestamp(t) => Some(*t),
            ExtensionValue::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// `clustername`: the cluster an event is for or from.
    pub fn cluster_name(&self) -> Option<&str> {
        self.extension_str(extension::CLUSTER_NAME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receivers_are_lenient_about_integer_and_time_encodings_as_ocm_is() {
        let mut event = CloudEvent::default();
        event
            .extensions
            .insert("a".into(), ExtensionValue::Integer(3));
        event
            .extensions
            .insert("b".into(), ExtensionValue::String("42".into()));
        event.extensions.insert(
            "c".into(),
            ExtensionValue::String("2025-12-16T06:00:17.771003Z".into()),
        );
        event
            .extensions
            .insert("d".into(), ExtensionValue::Boolean(true));
        assert_eq!(event.extension_integer("a"), Some(3));
        assert_eq!(event.extension_integer("b"), Some(42));
        assert_eq!(event.extension_integer("d"), None);
        let time = event.extension_timestamp("c").unwrap();
        assert_eq!(time.as_microsecond(), 1_765_864_817_771_003);
        assert_eq!(
            event.extension_str("a"),
            None,
            "ToString accepts only strings"
        );
    }
}
