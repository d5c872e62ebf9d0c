//! What a Publish or Subscribe asks to do, in Kubernetes RBAC terms, as OCM's hub maps it for
//! its SubjectAccessReview (OCM's gRPC broker authorizer). The broker hands the
//! result to a pluggable authorizer; the hub's checks it against RBAC.

use crate::event::CloudEvent;
use crate::event_type::{DataType, EventAction, EventType, SubResource};
use ocm_api::registration::{ClusterNameError, truncated, validate_cluster_name};

/// A resource attribute check: may the caller `verb` this?
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccessRequest {
    pub verb: &'static str,
    pub group: String,
    pub resource: String,
    pub subresource: Option<&'static str>,
    pub namespace: String,
    pub name: Option<String>,
}

/// The check for publishing `event`: verb from the action (`resync_request` is `list`,
/// `resync_response` is `update`),
/// namespace from `clustername`, `status` subresource for status events.
pub fn publish_access(event: &CloudEvent) -> Result<AccessRequest, AccessError> {
    let cluster = match event.cluster_name() {
        Some(cluster) => checked_cluster(cluster)?,
        None => return Err(AccessError::NoClusterName),
    };
    let event_type: EventType = checked_type(&event.event_type)?
        .parse()
        .map_err(|_| AccessError::BadType(truncated(&event.event_type, MAX_TYPE_LENGTH)))?;
    let verb = match event_type.action {
        EventAction::CreateRequest => "create",
        EventAction::UpdateRequest => "update",
        EventAction::DeleteRequest => "delete",
        EventAction::ResyncRequest => "list",
        // OCM's hub never asks agents for a status resync, so its mapping has no verb for the
        // answer; an answer is an upsert, so ours checks it as an update.
        EventAction::ResyncResponse => "update",
        action @ EventAction::WatchRequest => {
            return Err(AccessError::ActionNotPublishable(action.as_str()));
        }
    };
    let mut request = resource_of(&event_type.data_type, cluster, verb);
    if event_type.sub_resource == SubResource::Status {
        request.subresource = Some("status");
    }
    if event_type.data_type == DataType::token_requests() {
        request.name = Some(token_request_name(event)?);
    }
    Ok(request)
}

/// The check for subscribing to `data_type` events of `cluster`: verb `watch` (`subscribe`
/// for token requests) in the cluster's namespace.
pub fn subscribe_access(cluster: &str, data_type: &str) -> Result<AccessRequest, AccessError> {
    let cluster = checked_cluster(cluster)?;
    let data_type: DataType = checked_type(data_type)?
        .parse()
        .map_err(|_| AccessError::BadType(truncated(data_type, MAX_TYPE_LENGTH)))?;
    let verb = if data_type == DataType::token_requests() {
        "subscribe"
    } else {
        "watch"
    };
    Ok(resource_of(&data_type, cluster, verb))
}

/// Longest event or data type taken to the authorizer: a data type is `<group>.<version>.
/// <resource>` (a DNS subdomain and two DNS labels), an event type adds two short segments.
const MAX_TYPE_LENGTH: usize = 400;

/// A cluster name is a managed cluster's only when it is a DNS-1123 label that is not
/// reserved (OCM's ManagedCluster webhook requires the label): checked before anything else, so
/// a peer cannot make the hub review, cache or log a name of megabytes.
fn checked_cluster(cluster: &str) -> Result<String, AccessError> {
    if cluster.is_empty() {
        return Err(AccessError::NoClusterName);
    }
    validate_cluster_name(cluster).map_err(AccessError::BadClusterName)?;
    Ok(cluster.to_owned())
}

fn checked_type(text: &str) -> Result<&str, AccessError> {
    if text.len() > MAX_TYPE_LENGTH {
        return Err(AccessError::BadType(truncated(text, MAX_TYPE_LENGTH)));
    }
    Ok(text)
}

/// Group, resource and name by data type: ManifestWorks for manifestbundles, the cluster itself
/// for managedclusters, ServiceAccount tokens for tokenrequests, else the type's own.
fn resource_of(data_type: &DataType, cluster: String, verb: &'static str) -> AccessRequest {
    let (group, resource, subresource, name) = if *data_type == DataType::manifest_bundles() {
        (
            "work.open-cluster-management.io".to_owned(),
            "manifestworks".to_owned(),
            None,
            None,
        )
    } else if *data_type == DataType::managed_clusters() {
        (
            data_type.group.clone(),
            data_type.resource.clone(),
            None,
            Some(cluster.clone()),
        )
    } else if *data_type == DataType::token_requests() {
        (
            String::new(),
            "serviceaccounts".to_owned(),
            Some("token"),
            None,
        )
    } else {
        (
            data_type.group.clone(),
            data_type.resource.clone(),
            None,
            None,
        )
    };
    AccessRequest {
        verb,
        group,
        resource,
        subresource,
        namespace: cluster,
        name,
    }
}

/// A token request is authorized against the ServiceAccount it names.
fn token_request_name(event: &CloudEvent) -> Result<String, AccessError> {
    let data = event
        .data
        .as_deref()
        .ok_or(AccessError::TokenRequestWithoutName)?;
    let value: serde_json::Value =
        serde_json::from_slice(data).map_err(|_| AccessError::TokenRequestWithoutName)?;
    value
        .pointer("/metadata/name")
        .and_then(|n| n.as_str())
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .ok_or(AccessError::TokenRequestWithoutName)
}

/// Why a request cannot even be put to the authorizer; the broker denies it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("the event has no ce-clustername attribute")]
    NoClusterName,
    #[error(transparent)]
    BadClusterName(ClusterNameError),
    #[error("{0:?} is not an OCM event or data type")]
    BadType(String),
    #[error("action {0} cannot be published")]
    ActionNotPublishable(&'static str),
    #[error("a token request must carry the ServiceAccount name in metadata.name")]
    TokenRequestWithoutName,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ExtensionValue;

    fn event(event_type: &str, cluster: Option<&str>, data: Option<&str>) -> CloudEvent {
        let mut event = CloudEvent {
            event_type: event_type.into(),
            data: data.map(|d| d.as_bytes().to_vec()),
            ..CloudEvent::default()
        };
        if let Some(cluster) = cluster {
            event
                .extensions
                .insert("clustername".into(), ExtensionValue::String(cluster.into()));
        }
        event
    }

    #[test]
    fn work_status_update_is_an_update_of_manifestworks_status_in_the_cluster_namespace() {
        let e = event(
            "io.open-cluster-management.works.v1alpha1.manifestbundles.status.update_request",
            Some("cluster1"),
            None,
        );
        assert_eq!(
            publish_access(&e).unwrap(),
            AccessRequest {
                verb: "update",
                group: "work.open-cluster-management.io".into(),
                resource: "manifestworks".into(),
                subresource: Some("status"),
                namespace: "cluster1".into(),
                name: None,
            }
        );
    }

    #[test]
    fn verbs_follow_actions_and_registration_types_keep_their_group() {
        let cases = [
            (
                "cluster.open-cluster-management.io.v1.managedclusters.spec.create_request",
                "create",
                Some("cluster1"),
            ),
            (
                "coordination.k8s.io.v1.leases.spec.update_request",
                "update",
                None,
            ),
            (
                "certificates.k8s.io.v1.certificatesigningrequests.spec.delete_request",
                "delete",
                None,
            ),
            (
                "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.resync_request",
                "list",
                None,
            ),
            (
                "io.open-cluster-management.works.v1alpha1.manifestbundles.status.resync_response",
                "update",
                None,
            ),
        ];
        for (event_type, verb, name) in cases {
            let request = publish_access(&event(event_type, Some("cluster1"), None)).unwrap();
            assert_eq!(request.verb, verb, "{event_type}");
            assert_eq!(request.name.as_deref(), name, "{event_type}");
            assert_eq!(request.namespace, "cluster1");
        }
        let lease = publish_access(&event(
            "coordination.k8s.io.v1.leases.spec.update_request",
            Some("c"),
            None,
        ))
        .unwrap();
        assert_eq!(
            (lease.group.as_str(), lease.resource.as_str()),
            ("coordination.k8s.io", "leases")
        );
    }

    #[test]
    fn token_requests_are_checked_against_the_named_service_account() {
        let e = event(
            "authentication.k8s.io.v1.tokenrequests.spec.create_request",
            Some("cluster1"),
            Some(r#"{"metadata":{"name":"addon-agent","namespace":"cluster1","uid":"r1"}}"#),
        );
        let request = publish_access(&e).unwrap();
        assert_eq!(
            (request.group.as_str(), request.resource.as_str()),
            ("", "serviceaccounts")
        );
        assert_eq!(
            (request.subresource, request.name.as_deref()),
            (Some("token"), Some("addon-agent"))
        );
        let nameless = event(
            "authentication.k8s.io.v1.tokenrequests.spec.create_request",
            Some("c"),
            Some("{}"),
        );
        assert_eq!(
            publish_access(&nameless),
            Err(AccessError::TokenRequestWithoutName)
        );
    }

    #[test]
    fn subscribe_is_a_watch_in_the_cluster_namespace() {
        let request = subscribe_access(
            "cluster1",
            "io.open-cluster-management.works.v1alpha1.manifestbundles",
        )
        .unwrap();
        assert_eq!(
            (
                request.verb,
                request.resource.as_str(),
                request.namespace.as_str()
            ),
            ("watch", "manifestworks", "cluster1")
        );
        let tokens =
            subscribe_access("cluster1", "authentication.k8s.io.v1.tokenrequests").unwrap();
        assert_eq!(tokens.verb, "subscribe");
    }

    #[test]
    fn requests_that_cannot_be_checked_are_refused_with_the_reason() {
        let no_cluster = event(
            "coordination.k8s.io.v1.leases.spec.update_request",
            None,
            None,
        );
        assert_eq!(publish_access(&no_cluster), Err(AccessError::NoClusterName));
        let bad_type = event("nonsense", Some("c"), None);
        assert!(matches!(
            publish_access(&bad_type),
            Err(AccessError::BadType(_))
        ));
        let watch = event(
            "coordination.k8s.io.v1.leases.spec.watch_request",
            Some("c"),
            None,
        );
        assert_eq!(
            publish_access(&watch),
            Err(AccessError::ActionNotPublishable("watch_request"))
        );
        assert_eq!(
            subscribe_access("", "coordination.k8s.io.v1.leases"),
            Err(AccessError::NoClusterName)
        );
        assert!(matches!(
            subscribe_access("c", "leases"),
            Err(AccessError::BadType(_))
        ));
    }

    #[test]
    fn cluster_names_that_are_no_managed_cluster_are_refused_before_authorization() {
        let lease = "coordination.k8s.io.v1.leases.spec.update_request";
        let empty = event(lease, Some(""), None);
        assert_eq!(publish_access(&empty), Err(AccessError::NoClusterName));
        let huge = "x".repeat(2 << 20);
        let message = subscribe_access(&huge, "coordination.k8s.io.v1.leases")
            .unwrap_err()
            .to_string();
        assert!(message.len() < 200, "the name is not echoed whole");
        for bad in ["kube-system", "default", "managed-clusters", "UPPER", "a:b"] {
            assert!(
                matches!(
                    subscribe_access(bad, "coordination.k8s.io.v1.leases"),
                    Err(AccessError::BadClusterName(_))
                ),
                "{bad}"
            );
            assert!(
                matches!(
                    publish_access(&event(lease, Some(bad), None)),
                    Err(AccessError::BadClusterName(_))
                ),
                "{bad}"
            );
        }
        let long_type = format!("{}.v1.leases", "g".repeat(1 << 20));
        let Err(AccessError::BadType(quoted)) = subscribe_access("cluster1", &long_type) else {
            panic!("a megabyte type must be refused");
        };
        assert!(quoted.len() < 500);
    }
}
