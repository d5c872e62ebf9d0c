//! `cluster.open-cluster-management.io/v1alpha1`: ClusterClaim, a fact a managed cluster states
//! about itself. It lives on the managed cluster; the agent copies claims into its
//! ManagedCluster's status.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Well-known claim: a unique identifier of the cluster.
pub const CLAIM_ID: &str = "id.k8s.io";
/// Well-known claim: the ClusterSet the cluster belongs to.
pub const CLAIM_CLUSTER_SET: &str = "clusterset.k8s.io";

/// A claim's value.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "cluster.open-cluster-management.io",
    version = "v1alpha1",
    kind = "ClusterClaim",
    derive = "PartialEq",
    derive = "Default",
    doc = "ClusterClaim states a fact about the managed cluster it is created on (well-known names: id.k8s.io, clusterset.k8s.io). The agent reports claims in its ManagedCluster's status."
)]
pub struct ClusterClaimSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 1024))]
    pub value: String,
}
