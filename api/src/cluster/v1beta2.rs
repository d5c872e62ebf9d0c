//! `cluster.open-cluster-management.io/v1beta2`: ManagedClusterSet, a group of managed clusters,
//! and ManagedClusterSetBinding, which makes a set usable from one namespace.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::{Condition, DNS_LABEL};

/// The label naming the set a cluster belongs to (`ExclusiveClusterSetLabel` selection).
pub const CLUSTER_SET_LABEL: &str = "cluster.open-cluster-management.io/clusterset";
/// `ClusterSetEmpty`: the set selects no cluster.
pub const CONDITION_CLUSTER_SET_EMPTY: &str = "ClusterSetEmpty";
/// `Bound`: a binding's set exists and may be bound in its namespace.
pub const CONDITION_BOUND: &str = "Bound";

/// Which clusters a set holds.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "cluster.open-cluster-management.io",
    version = "v1beta2",
    kind = "ManagedClusterSet",
    shortname = "mclset",
    shortname = "mclsets",
    status = "ManagedClusterSetStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "ManagedClusterSet groups managed clusters: those labelled with its name, or those its label selector picks. Workloads reach a set's clusters only from namespaces it is bound to (ManagedClusterSetBinding).",
    printcolumn(
        name = "Empty",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="ClusterSetEmpty")].status"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("default" = {"clusterSelector": {"selectorType": "ExclusiveClusterSetLabel"}}))]
pub struct ManagedClusterSetSpec {
    #[serde(default)]
    pub cluster_selector: ManagedClusterSelector,
    /// Namespaces every cluster of the set should manage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub managed_namespaces: Vec<ManagedNamespaceConfig>,
}

/// How a set selects its clusters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("default" = {"selectorType": "ExclusiveClusterSetLabel"}))]
pub struct ManagedClusterSelector {
    #[serde(default)]
    pub selector_type: SelectorType,
    /// With `LabelSelector`: the clusters whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::label_selector")]
    pub label_selector: Option<LabelSelector>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SelectorType {
    /// Clusters labelled `cluster.open-cluster-management.io/clusterset=<set>`; a cluster is in
    /// at most one such set.
    #[default]
    ExclusiveClusterSetLabel,
    /// Clusters matching `labelSelector`; sets may overlap.
    LabelSelector,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ManagedNamespaceConfig {
    #[schemars(length(max = 63), regex(pattern = DNS_LABEL))]
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ManagedClusterSetStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Makes a cluster set usable from the binding's namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "cluster.open-cluster-management.io",
    version = "v1beta2",
    kind = "ManagedClusterSetBinding",
    namespaced,
    shortname = "mclsetbinding",
    shortname = "mclsetbindings",
    status = "ManagedClusterSetBindingStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "ManagedClusterSetBinding binds a ManagedClusterSet to a namespace, so that placements in that namespace may select the set's clusters. Its name must be the set's name."
)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClusterSetBindingSpec {
    /// The bound set; must equal the binding's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1))]
    pub cluster_set: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ManagedClusterSetBindingStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
