//! The error a hub returns from Publish when a handler fails: gRPC `FailedPrecondition` whose
//! message is the JSON of a Kubernetes `StatusError`, `{"ErrStatus":{…}}` (as OCM's
//! gRPC broker returns it). Go clients parse it back and act on the reason: the lease client
//! forgets a lease on `NotFound`, ManagedCluster and work callers retry on `Conflict`.

use serde::{Deserialize, Serialize};

/// A Kubernetes `metav1.Status` as carried in a Publish error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Always `{}` (Go's `ListMeta`, never omitted).
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub code: i32,
}

/// The object a status is about.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatusDetails {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    #[serde(rename = "ErrStatus")]
    err_status: Status,
}

fn is_zero(code: &i32) -> bool {
    *code == 0
}

impl Status {
    /// A failure with a Kubernetes reason (`NotFound`, `Conflict`, …) and HTTP code.
    pub fn failure(
        reason: &str,
        code: i32,
        message: impl Into<String>,
        details: Option<StatusDetails>,
    ) -> Self {
        Self {
            metadata: serde_json::Map::new(),
            status: "Failure".to_owned(),
            message: message.into(),
            reason: reason.to_owned(),
            details,
            code,
        }
    }

    /// The gRPC status message: `{"ErrStatus":{…}}`, always well-formed (Go's broker sends `{}`
    /// for errors that are not StatusErrors; we never do).
    pub fn to_grpc_message(&self) -> String {
        let envelope = Envelope {
            err_status: self.clone(),
        };
        serde_json::to_string(&envelope).unwrap_or_else(|_| {
            // Serialising plain strings and integers cannot fail; keep a valid body regardless.
            r#"{"ErrStatus":{"metadata":{},"status":"Failure","reason":"InternalError","code":500}}"#.to_owned()
        })
    }

    /// Reads a Publish error message as Go's `ToStatusError` does: anything that is not an
    /// `ErrStatus` envelope becomes reason `PublishError`, code 500, with the text as message.
    pub fn from_grpc_message(message: &str) -> Self {
        match serde_json::from_str::<Envelope>(message) {
            Ok(envelope)
                if !envelope.err_status.reason.is_empty() || envelope.err_status.code != 0 =>
            {
                envelope.err_status
            }
            _ => Self::failure("PublishError", 500, message, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_serialises_as_gos_status_error() {
        let details = StatusDetails {
            name: "cluster1-lease".into(),
            group: "coordination.k8s.io".into(),
            kind: "leases".into(),
        };
        let status = Status::failure(
            "NotFound",
            404,
            "leases \"cluster1-lease\" not found",
            Some(details),
        );
        assert_eq!(
            status.to_grpc_message(),
            r#"{"ErrStatus":{"metadata":{},"status":"Failure","message":"leases \"cluster1-lease\" not found","reason":"NotFound","details":{"name":"cluster1-lease","group":"coordination.k8s.io","kind":"leases"},"code":404}}"#
        );
        assert_eq!(Status::from_grpc_message(&status.to_grpc_message()), status);
    }

    #[test]
    fn a_go_conflict_parses_and_anything_else_becomes_a_publish_error() {
        let from_go = r#"{"ErrStatus":{"metadata":{},"status":"Failure","message":"conflict","reason":"Conflict","code":409}}"#;
        let status = Status::from_grpc_message(from_go);
        assert_eq!((status.reason.as_str(), status.code), ("Conflict", 409));
        for other in ["{}", "plain text", r#"{"ErrStatus":{}}"#] {
            let status = Status::from_grpc_message(other);
            assert_eq!(
                (status.reason.as_str(), status.code, status.message.as_str()),
                ("PublishError", 500, other)
            );
        }
    }
}
