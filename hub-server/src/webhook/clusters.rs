//! Admission of ManagedClusters and ManagedClusterSetBindings, as OCM's registration webhooks
//! decide it (pure; the SubjectAccessReviews are the server's):
//!
//! - a new ManagedCluster's name is a cluster name (a DNS-1123 label, not reserved:
//!   [`ocm_api::registration::validate_cluster_name`]);
//! - client URLs (`spec.managedClusterClientConfigs[].url`) are `https://` URLs, when set or
//!   changed;
//! - accepting a cluster (`hubAcceptsClient` turned on, or created on) needs `update` on
//!   `register.open-cluster-management.io` `managedclusters/accept` for that cluster;
//! - putting a cluster into a cluster set, or taking it out, by the
//!   `cluster.open-cluster-management.io/clusterset` label needs `create` on
//!   `managedclustersets/join` for each set concerned but `default`, the set of every cluster
//!   that names none;
//! - a ManagedClusterSetBinding is named after its set, and creating it needs `create` on
//!   `managedclustersets/bind` for that set.
//!
//! And the defaults OCM's mutating webhook sets before a ManagedCluster is stored
//! ([`defaults`]): the `default` cluster set label when the cluster names no set, and each
//! taint's `timeAdded` (kept from before for a taint that was already there, now for a new one).

use ocm_api::cluster::v1::{ManagedCluster, Taint};
use ocm_api::cluster::v1beta2::{CLUSTER_SET_LABEL, ManagedClusterSetBinding};
use ocm_api::k8s_openapi::api::authentication::v1::UserInfo;
use ocm_api::k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use ocm_api::kube::core::admission::{AdmissionRequest, Operation};
use ocm_api::kube::core::response::{StatusCause, StatusDetails, StatusSummary};
use ocm_api::kube::core::{DynamicObject, Status};
use serde::de::DeserializeOwned;

use super::review::{bad_request, forbidden};

/// The API group of ManagedClusters, cluster sets and their bindings.
pub const CLUSTER_GROUP: &str = "cluster.open-cluster-management.io";
/// The group of the `managedclusters/accept` permission.
pub const REGISTER_GROUP: &str = "register.open-cluster-management.io";
/// The set a cluster that names none belongs to.
pub const DEFAULT_SET: &str = "default";

/// A permission the requester must hold for the request to be admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needed {
    pub group: &'static str,
    pub resource: &'static str,
    pub subresource: &'static str,
    pub verb: &'static str,
    pub name: String,
}

impl Needed {
    fn accept(cluster: &str) -> Self {
        Self {
            group: REGISTER_GROUP,
            resource: "managedclusters",
            subresource: "accept",
            verb: "update",
            name: cluster.to_owned(),
        }
    }

    fn join(set: &str) -> Self {
        Self {
            group: CLUSTER_GROUP,
            resource: "managedclustersets",
            subresource: "join",
            verb: "create",
            name: set.to_owned(),
        }
    }

    fn bind(set: &str) -> Self {
        Self {
            group: CLUSTER_GROUP,
            resource: "managedclustersets",
            subresource: "bind",
            verb: "create",
            name: set.to_owned(),
        }
    }

    /// The SubjectAccessReview that asks whether `requester` holds it.
    pub fn review(&self, requester: &UserInfo) -> SubjectAccessReview {
        SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: requester.username.clone(),
                groups: requester.groups.clone(),
                uid: requester.uid.clone(),
                extra: requester.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(self.group.to_owned()),
                    resource: Some(self.resource.to_owned()),
                    subresource: Some(self.subresource.to_owned()),
                    verb: Some(self.verb.to_owned()),
                    name: Some(self.name.clone()),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        }
    }

    /// The refusal when the review says no.
    pub fn denied(&self, requester: &UserInfo) -> Status {
        let user = requester.username.as_deref().unwrap_or("");
        forbidden(match self.subresource {
            "accept" => format!(
                "user {user} cannot accept ManagedCluster {:?}: it needs update on {}/{}/{}",
                self.name, self.group, self.resource, self.subresource
            ),
            "join" => format!(
                "user {user} cannot add a ManagedCluster to, or take it out of, ManagedClusterSet {:?}: it needs create on {}/{}/{}",
                self.name, self.group, self.resource, self.subresource
            ),
            _ => format!(
                "user {user} cannot bind ManagedClusterSet {:?}: it needs create on {}/{}/{}",
                self.name, self.group, self.resource, self.subresource
            ),
        })
    }
}

/// The decision before any API call.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterVerdict {
    Allow,
    Deny(Box<Status>),
    /// Allowed if the requester holds every one of these.
    Check(Vec<Needed>),
}

/// Judges a ManagedCluster CREATE or UPDATE.
pub fn judge_cluster(request: &AdmissionRequest<DynamicObject>) -> ClusterVerdict {
    let Some((cluster, old)) = objects::<ManagedCluster>(request) else {
        return ClusterVerdict::Allow;
    };
    let (cluster, old) = match (cluster, old) {
        (Ok(cluster), Ok(old)) => (cluster, old),
        (Err(why), _) | (_, Err(why)) => return ClusterVerdict::Deny(Box::new(bad_request(why))),
    };
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let mut errors = Vec::new();
    // Only a new name: a cluster stored before names were checked must still be updatable
    // (its finalizers released, its deletion finished).
    if old.is_none()
        && let Err(e) = ocm_api::registration::validate_cluster_name(&name)
    {
        errors.push(("metadata.name", e.to_string()));
    }
    let urls_changed = old.as_ref().is_none_or(|old| {
        old.spec.managed_cluster_client_configs != cluster.spec.managed_cluster_client_configs
    });
    if urls_changed {
        for (i, config) in cluster
            .spec
            .managed_cluster_client_configs
            .iter()
            .enumerate()
        {
            if !config.url.starts_with("https://") || config.url.len() <= "https://".len() {
                errors.push((
                    "spec.managedClusterClientConfigs",
                    format!("[{i}].url {:?} is not an https:// URL", config.url),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return ClusterVerdict::Deny(Box::new(invalid("ManagedCluster", &name, &errors)));
    }
    let mut needed = Vec::new();
    let was_accepted = old.as_ref().is_some_and(|old| old.spec.hub_accepts_client);
    if cluster.spec.hub_accepts_client && !was_accepted {
        needed.push(Needed::accept(&name));
    }
    let set_of = |c: &ManagedCluster| {
        c.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(CLUSTER_SET_LABEL))
            .cloned()
    };
    let (set, old_set) = (set_of(&cluster), old.as_ref().and_then(set_of));
    // `default` is where a cluster that names no set goes (the defaults put it there), so
    // entering or leaving it asks nothing; any other set is joined or left only with `join`.
    if set != old_set {
        needed.extend(
            set.iter()
                .chain(old_set.iter())
                .filter(|s| s.as_str() != DEFAULT_SET)
                .map(|s| Needed::join(s)),
        );
    }
    if needed.is_empty() {
        ClusterVerdict::Allow
    } else {
        ClusterVerdict::Check(needed)
    }
}

/// Judges a ManagedClusterSetBinding CREATE or UPDATE.
pub fn judge_binding(request: &AdmissionRequest<DynamicObject>) -> ClusterVerdict {
    let Some((binding, old)) = objects::<ManagedClusterSetBinding>(request) else {
        return ClusterVerdict::Allow;
    };
    let (binding, old) = match (binding, old) {
        (Ok(binding), Ok(old)) => (binding, old),
        (Err(why), _) | (_, Err(why)) => return ClusterVerdict::Deny(Box::new(bad_request(why))),
    };
    let name = binding.metadata.name.clone().unwrap_or_default();
    let set = binding.spec.cluster_set.clone();
    if name != set {
        return ClusterVerdict::Deny(Box::new(invalid(
            "ManagedClusterSetBinding",
            &name,
            &[(
                "spec.clusterSet",
                format!("{set:?} must equal the binding's name {name:?}"),
            )],
        )));
    }
    if old.is_some_and(|old| old.spec.cluster_set == set) {
        return ClusterVerdict::Allow;
    }
    ClusterVerdict::Check(vec![Needed::bind(&set)])
}

/// The JSON patch (RFC 6902) of OCM's defaults for a ManagedCluster CREATE or UPDATE, if any
/// is needed; `now` is the `timeAdded` of new taints.
pub fn defaults(
    request: &AdmissionRequest<DynamicObject>,
    now: ocm_api::k8s_openapi::jiff::Timestamp,
) -> Result<Option<serde_json::Value>, Box<Status>> {
    let Some((cluster, old)) = objects::<ManagedCluster>(request) else {
        return Ok(None);
    };
    let (cluster, old) = match (cluster, old) {
        (Ok(cluster), Ok(old)) => (cluster, old),
        (Err(why), _) | (_, Err(why)) => return Err(Box::new(bad_request(why))),
    };
    let mut ops = Vec::new();
    let labels = cluster.metadata.labels.clone().unwrap_or_default();
    if !labels.contains_key(CLUSTER_SET_LABEL) {
        if cluster.metadata.labels.is_none() {
            ops.push(serde_json::json!({"op": "add", "path": "/metadata/labels", "value": {}}));
        }
        ops.push(serde_json::json!({
            "op": "add",
            // `/` in a key is written `~1` in a JSON pointer.
            "path": format!("/metadata/labels/{}", CLUSTER_SET_LABEL.replace('~', "~0").replace('/', "~1")),
            "value": DEFAULT_SET,
        }));
    }
    let old_taints = old.map(|old| old.spec.taints).unwrap_or_default();
    let taints: Vec<Taint> = cluster
        .spec
        .taints
        .iter()
        .map(|taint| {
            let before = old_taints
                .iter()
                .find(|t| t.key == taint.key && t.value == taint.value && t.effect == taint.effect);
            let mut taint = taint.clone();
            taint.time_added = match before {
                Some(before) => before.time_added.clone(),
                None => Some(ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now)),
            };
            taint
        })
        .collect();
    if taints != cluster.spec.taints {
        let value = serde_json::to_value(&taints)
            .map_err(|e| Box::new(super::review::internal(format!("writing taints: {e}"))))?;
        ops.push(serde_json::json!({"op": "replace", "path": "/spec/taints", "value": value}));
    }
    Ok((!ops.is_empty()).then_some(serde_json::Value::Array(ops)))
}

/// The request's object and, on UPDATE, its old object, decoded; `None` for what admission
/// does not look at (a subresource, DELETE, CONNECT).
#[allow(clippy::type_complexity)]
fn objects<K: DeserializeOwned>(
    request: &AdmissionRequest<DynamicObject>,
) -> Option<(Result<K, String>, Result<Option<K>, String>)> {
    if request
        .sub_resource
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        return None;
    }
    let decode = |object: Option<&DynamicObject>, what: &str| -> Result<K, String> {
        let object = object.ok_or_else(|| format!("the request has no {what}"))?;
        serde_json::to_value(object)
            .and_then(serde_json::from_value::<K>)
            .map_err(|err| format!("the request's {what} cannot be read: {err}"))
    };
    match request.operation {
        Operation::Create => Some((decode(request.object.as_ref(), "object"), Ok(None))),
        Operation::Update => Some((
            decode(request.object.as_ref(), "object"),
            decode(request.old_object.as_ref(), "oldObject").map(Some),
        )),
        Operation::Delete | Operation::Connect => None,
    }
}

/// `422 Invalid` for `kind` `name`, one cause per field error.
fn invalid(kind: &str, name: &str, errors: &[(&str, String)]) -> Status {
    let listed: Vec<String> = errors
        .iter()
        .map(|(field, detail)| format!("{field}: Invalid value: {detail}"))
        .collect();
    let aggregate = match listed.as_slice() {
        [one] => format!(": {one}"),
        many => format!(": [{}]", many.join(", ")),
    };
    Status {
        status: Some(StatusSummary::Failure),
        code: 422,
        reason: "Invalid".to_owned(),
        message: format!("{kind}.{CLUSTER_GROUP} {name:?} is invalid{aggregate}"),
        metadata: None,
        details: Some(StatusDetails {
            name: name.to_owned(),
            group: CLUSTER_GROUP.to_owned(),
            kind: kind.to_owned(),
            uid: String::new(),
            causes: errors
                .iter()
                .map(|(field, detail)| StatusCause {
                    reason: "FieldValueInvalid".to_owned(),
                    message: format!("Invalid value: {detail}"),
                    field: (*field).to_owned(),
                })
                .collect(),
            retry_after_seconds: 0,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use ocm_api::kube::core::admission::AdmissionReview;
    use serde_json::{Value, json};

    fn request(
        kind: &str,
        resource: &str,
        operation: &str,
        object: Value,
        old: Option<Value>,
    ) -> AdmissionRequest<DynamicObject> {
        let review: AdmissionReview<DynamicObject> = serde_json::from_value(json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "1", "name": object["metadata"]["name"], "operation": operation,
                "kind": {"group": CLUSTER_GROUP, "version": "v1", "kind": kind},
                "resource": {"group": CLUSTER_GROUP, "version": "v1", "resource": resource},
                "userInfo": {"username": "alice"},
                "object": object, "oldObject": old,
            }
        }))
        .unwrap();
        review.try_into().unwrap()
    }

    fn cluster(name: &str, accepted: bool, set: Option<&str>, urls: &[&str]) -> Value {
        let mut labels = json!({});
        if let Some(set) = set {
            labels[CLUSTER_SET_LABEL] = json!(set);
        }
        json!({"apiVersion": "cluster.open-cluster-management.io/v1", "kind": "ManagedCluster",
            "metadata": {"name": name, "labels": labels},
            "spec": {"hubAcceptsClient": accepted,
                "managedClusterClientConfigs": urls.iter().map(|u| json!({"url": u})).collect::<Vec<_>>()}})
    }

    fn cluster_request(operation: &str, object: Value, old: Option<Value>) -> ClusterVerdict {
        judge_cluster(&request(
            "ManagedCluster",
            "managedclusters",
            operation,
            object,
            old,
        ))
    }

    #[test]
    fn new_clusters_need_a_cluster_name_and_https_urls() {
        for bad in ["kube-system", "Bad_Name", "default"] {
            let ClusterVerdict::Deny(status) =
                cluster_request("CREATE", cluster(bad, false, None, &[]), None)
            else {
                panic!("{bad} admitted")
            };
            assert_eq!(status.code, 422, "{bad}");
            assert!(
                status.message.contains("metadata.name"),
                "{}",
                status.message
            );
        }
        let ClusterVerdict::Deny(status) = cluster_request(
            "CREATE",
            cluster("c1", false, None, &["http://c1:6443"]),
            None,
        ) else {
            panic!("http admitted")
        };
        assert!(status.message.contains("https://"), "{}", status.message);
        assert_eq!(
            cluster_request(
                "CREATE",
                cluster("c1", false, None, &["https://c1:6443"]),
                None
            ),
            ClusterVerdict::Allow
        );
        // A name stored before names were checked may still be updated.
        assert_eq!(
            cluster_request(
                "UPDATE",
                cluster("Old_Name", false, None, &[]),
                Some(cluster("Old_Name", false, None, &[]))
            ),
            ClusterVerdict::Allow
        );
    }

    #[test]
    fn accepting_and_moving_between_sets_need_their_permissions() {
        assert_eq!(
            cluster_request(
                "UPDATE",
                cluster("c1", true, None, &[]),
                Some(cluster("c1", false, None, &[]))
            ),
            ClusterVerdict::Check(vec![Needed::accept("c1")])
        );
        assert_eq!(
            cluster_request(
                "UPDATE",
                cluster("c1", true, None, &[]),
                Some(cluster("c1", true, None, &[]))
            ),
            ClusterVerdict::Allow,
            "already accepted"
        );
        assert_eq!(
            cluster_request(
                "UPDATE",
                cluster("c1", false, Some("finance"), &[]),
                Some(cluster("c1", false, Some("dev"), &[]))
            ),
            ClusterVerdict::Check(vec![Needed::join("finance"), Needed::join("dev")])
        );
        assert_eq!(
            cluster_request("CREATE", cluster("c1", true, Some("dev"), &[]), None),
            ClusterVerdict::Check(vec![Needed::accept("c1"), Needed::join("dev")])
        );
        assert_eq!(
            cluster_request(
                "UPDATE",
                cluster("c1", false, Some("dev"), &[]),
                Some(cluster("c1", false, Some(DEFAULT_SET), &[]))
            ),
            ClusterVerdict::Check(vec![Needed::join("dev")]),
            "leaving default asks nothing"
        );
        assert_eq!(
            cluster_request("CREATE", cluster("c1", false, Some(DEFAULT_SET), &[]), None),
            ClusterVerdict::Allow
        );
        let review = Needed::accept("c1").review(&UserInfo {
            username: Some("alice".into()),
            ..UserInfo::default()
        });
        let attributes = review.spec.resource_attributes.unwrap();
        assert_eq!(
            (
                attributes.group.as_deref(),
                attributes.resource.as_deref(),
                attributes.subresource.as_deref(),
                attributes.verb.as_deref(),
                attributes.name.as_deref()
            ),
            (
                Some(REGISTER_GROUP),
                Some("managedclusters"),
                Some("accept"),
                Some("update"),
                Some("c1")
            )
        );
    }

    #[test]
    fn a_binding_is_named_after_its_set_and_needs_bind() {
        let binding = |name: &str, set: &str| {
            json!({"apiVersion": "cluster.open-cluster-management.io/v1beta2",
                "kind": "ManagedClusterSetBinding",
                "metadata": {"name": name, "namespace": "team-a"}, "spec": {"clusterSet": set}})
        };
        let judge = |object| {
            judge_binding(&request(
                "ManagedClusterSetBinding",
                "managedclustersetbindings",
                "CREATE",
                object,
                None,
            ))
        };
        assert!(matches!(
            judge(binding("dev", "prod")),
            ClusterVerdict::Deny(status) if status.code == 422
        ));
        assert_eq!(
            judge(binding("dev", "dev")),
            ClusterVerdict::Check(vec![Needed::bind("dev")])
        );
    }

    #[test]
    fn defaults_add_the_default_set_and_date_new_taints_only() {
        let now = ocm_api::k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let mut object = cluster("c1", false, None, &[]);
        object["spec"]["taints"] = json!([
            {"key": "old", "effect": "NoSelect"},
            {"key": "new", "effect": "NoSelect"},
        ]);
        let mut old = cluster("c1", false, Some("dev"), &[]);
        old["spec"]["taints"] =
            json!([{"key": "old", "effect": "NoSelect", "timeAdded": "2026-01-01T00:00:00Z"}]);
        let patch = defaults(
            &request(
                "ManagedCluster",
                "managedclusters",
                "UPDATE",
                object,
                Some(old),
            ),
            now,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            patch[0],
            json!({"op": "add", "path": "/metadata/labels/cluster.open-cluster-management.io~1clusterset", "value": "default"})
        );
        assert_eq!(patch[1]["path"], "/spec/taints");
        assert_eq!(patch[1]["value"][0]["timeAdded"], "2026-01-01T00:00:00Z");
        assert_eq!(patch[1]["value"][1]["timeAdded"], "2027-01-15T08:00:00Z");
        // Nothing to default: no patch.
        let settled = defaults(
            &request(
                "ManagedCluster",
                "managedclusters",
                "CREATE",
                cluster("c1", false, Some("dev"), &[]),
                None,
            ),
            now,
        )
        .unwrap();
        assert_eq!(settled, None);
    }
}
