//! OCM's CloudEvents `type` strings: `<group>.<version>.<resource>.<spec|status>.<action>`
//! (as OCM's sdk-go names them), and the data types the hub serves.

use std::fmt;
use std::str::FromStr;

/// The heartbeat the gRPC broker sends on every Subscribe stream. It is not a resource event.
pub const HEARTBEAT_TYPE: &str = "io.open-cluster-management.cloudevents.heartbeat";

/// What an event says is happening (`EventAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventAction {
    CreateRequest,
    UpdateRequest,
    DeleteRequest,
    ResyncRequest,
    ResyncResponse,
    /// Used only as the authorization verb of Subscribe; never sent on the wire.
    WatchRequest,
}

impl EventAction {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CreateRequest => "create_request",
            Self::UpdateRequest => "update_request",
            Self::DeleteRequest => "delete_request",
            Self::ResyncRequest => "resync_request",
            Self::ResyncResponse => "resync_response",
            Self::WatchRequest => "watch_request",
        }
    }
}

impl FromStr for EventAction {
    type Err = EventTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "create_request" => Self::CreateRequest,
            "update_request" => Self::UpdateRequest,
            "delete_request" => Self::DeleteRequest,
            "resync_request" => Self::ResyncRequest,
            "resync_response" => Self::ResyncResponse,
            "watch_request" => Self::WatchRequest,
            other => return Err(EventTypeError::UnknownAction(other.to_owned())),
        })
    }
}

/// Whether an event carries a resource's spec (source → agent) or status (agent → source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubResource {
    Spec,
    Status,
}

impl SubResource {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Spec => "spec",
            Self::Status => "status",
        }
    }
}

/// `<group>.<version>.<resource>`, e.g. `io.open-cluster-management.works.v1alpha1.manifestbundles`:
/// what a `SubscriptionRequest.data_type` names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DataType {
    pub group: String,
    pub version: String,
    pub resource: String,
}

impl DataType {
    fn new(group: &str, version: &str, resource: &str) -> Self {
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            resource: resource.to_owned(),
        }
    }

    pub fn manifest_bundles() -> Self {
        Self::new(
            "io.open-cluster-management.works",
            "v1alpha1",
            "manifestbundles",
        )
    }
    pub fn managed_clusters() -> Self {
        Self::new(
            "cluster.open-cluster-management.io",
            "v1",
            "managedclusters",
        )
    }
    pub fn certificate_signing_requests() -> Self {
        Self::new("certificates.k8s.io", "v1", "certificatesigningrequests")
    }
    pub fn leases() -> Self {
        Self::new("coordination.k8s.io", "v1", "leases")
    }
    pub fn events() -> Self {
        Self::new("events.k8s.io", "v1", "events")
    }
    pub fn managed_cluster_addons_v1alpha1() -> Self {
        Self::new(
            "addon.open-cluster-management.io",
            "v1alpha1",
            "managedclusteraddons",
        )
    }
    pub fn managed_cluster_addons_v1beta1() -> Self {
        Self::new(
            "addon.open-cluster-management.io",
            "v1beta1",
            "managedclusteraddons",
        )
    }
    pub fn token_requests() -> Self {
        Self::new("authentication.k8s.io", "v1", "tokenrequests")
    }

    /// The event type of this data type with the given subresource and action.
    pub fn event_type(&self, sub_resource: SubResource, action: EventAction) -> EventType {
        EventType {
            data_type: self.clone(),
            sub_resource,
            action,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.group, self.version, self.resource)
    }
}

impl FromStr for DataType {
    type Err = EventTypeError;

    /// The last two dot-separated tokens are version and resource; everything before is the
    /// group (which itself contains dots).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut tokens = s.rsplitn(3, '.');
        match (tokens.next(), tokens.next(), tokens.next()) {
            (Some(resource), Some(version), Some(group))
                if !resource.is_empty() && !version.is_empty() && !group.is_empty() =>
            {
                Ok(Self::new(group, version, resource))
            }
            _ => Err(EventTypeError::TooFewTokens {
                value: s.to_owned(),
                needed: 3,
            }),
        }
    }
}

/// A parsed resource event type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventType {
    pub data_type: DataType,
    pub sub_resource: SubResource,
    pub action: EventAction,
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}",
            self.data_type,
            self.sub_resource.as_str(),
            self.action.as_str()
        )
    }
}

impl FromStr for EventType {
    type Err = EventTypeError;

    /// Parsed from the end as OCM's `ParseCloudEventsType` does: action, subresource (`spec` or
    /// `status`), resource, version, and the rest is the group.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.split('.').count() < 5 {
            return Err(EventTypeError::TooFewTokens {
                value: s.to_owned(),
                needed: 5,
            });
        }
        let mut tokens = s.rsplitn(3, '.');
        let (Some(action), Some(sub_resource), Some(data_type)) =
            (tokens.next(), tokens.next(), tokens.next())
        else {
            return Err(EventTypeError::TooFewTokens {
                value: s.to_owned(),
                needed: 5,
            });
        };
        let sub_resource = match sub_resource {
            "spec" => SubResource::Spec,
            "status" => SubResource::Status,
            other => return Err(EventTypeError::UnknownSubResource(other.to_owned())),
        };
        let data_type = data_type
            .parse()
            .map_err(|_| EventTypeError::TooFewTokens {
                value: s.to_owned(),
                needed: 5,
            })?;
        Ok(Self {
            data_type,
            sub_resource,
            action: action.parse()?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventTypeError {
    #[error("event type {value:?} has fewer than {needed} dot-separated parts")]
    TooFewTokens { value: String, needed: usize },
    #[error("unknown event subresource {0:?} (expected \"spec\" or \"status\")")]
    UnknownSubResource(String),
    #[error("unknown event action {0:?}")]
    UnknownAction(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_bundle_spec_create_round_trips() {
        let text = "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request";
        let parsed: EventType = text.parse().unwrap();
        assert_eq!(parsed.data_type, DataType::manifest_bundles());
        assert_eq!(parsed.sub_resource, SubResource::Spec);
        assert_eq!(parsed.action, EventAction::CreateRequest);
        assert_eq!(parsed.to_string(), text);
    }

    #[test]
    fn every_hub_data_type_formats_as_ocm_names_it() {
        let expected = [
            (
                DataType::manifest_bundles(),
                "io.open-cluster-management.works.v1alpha1.manifestbundles",
            ),
            (
                DataType::managed_clusters(),
                "cluster.open-cluster-management.io.v1.managedclusters",
            ),
            (
                DataType::certificate_signing_requests(),
                "certificates.k8s.io.v1.certificatesigningrequests",
            ),
            (DataType::leases(), "coordination.k8s.io.v1.leases"),
            (DataType::events(), "events.k8s.io.v1.events"),
            (
                DataType::managed_cluster_addons_v1alpha1(),
                "addon.open-cluster-management.io.v1alpha1.managedclusteraddons",
            ),
            (
                DataType::managed_cluster_addons_v1beta1(),
                "addon.open-cluster-management.io.v1beta1.managedclusteraddons",
            ),
            (
                DataType::token_requests(),
                "authentication.k8s.io.v1.tokenrequests",
            ),
        ];
        for (data_type, text) in expected {
            assert_eq!(data_type.to_string(), text);
            assert_eq!(text.parse::<DataType>().unwrap(), data_type);
        }
    }

    #[test]
    fn every_action_round_trips() {
        for action in [
            EventAction::CreateRequest,
            EventAction::UpdateRequest,
            EventAction::DeleteRequest,
            EventAction::ResyncRequest,
            EventAction::ResyncResponse,
            EventAction::WatchRequest,
        ] {
            let event_type = DataType::leases().event_type(SubResource::Status, action);
            assert_eq!(
                event_type.to_string().parse::<EventType>().unwrap(),
                event_type
            );
        }
    }

    #[test]
    fn malformed_types_are_refused_with_the_reason() {
        let cases = [
            ("a.b.spec", "fewer than 5"),
            (
                "g.v1.things.metadata.create_request",
                "unknown event subresource \"metadata\"",
            ),
            (
                "g.v1.things.spec.explode",
                "unknown event action \"explode\"",
            ),
            ("v1.things.spec.create_request", "fewer than 5"),
            (HEARTBEAT_TYPE, "fewer than 5"),
        ];
        for (text, reason) in cases {
            let err = text.parse::<EventType>().unwrap_err().to_string();
            assert!(err.contains(reason), "{text}: {err}");
        }
        assert!("a.b".parse::<DataType>().is_err());
        assert!("a..b".parse::<DataType>().is_err());
    }
}
