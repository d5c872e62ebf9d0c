//! `cluster.open-cluster-management.io/v1`: ManagedCluster, the hub's record of one managed
//! cluster (as OCM's registration controllers keep it).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::{Condition, DNS_LABEL, QUALIFIED_NAME};

/// `ManagedClusterConditionAvailable`: the agent's lease is fresh and the cluster's `/livez`
/// answers.
pub const CONDITION_AVAILABLE: &str = "ManagedClusterConditionAvailable";
/// `HubAcceptedManagedCluster`: a hub administrator accepted the cluster.
pub const CONDITION_HUB_ACCEPTED: &str = "HubAcceptedManagedCluster";
/// `ManagedClusterJoined`: the agent has joined with an approved certificate.
pub const CONDITION_JOINED: &str = "ManagedClusterJoined";
/// `ManagedClusterConditionClockSynced`.
pub const CONDITION_CLOCK_SYNCED: &str = "ManagedClusterConditionClockSynced";
/// `ClusterCertificateRotated`: set by the agent each time it rotates its client certificate.
pub const CONDITION_CERTIFICATE_ROTATED: &str = "ClusterCertificateRotated";

/// The taint placed on a cluster whose Available condition is `Unknown`.
pub const TAINT_UNREACHABLE: &str = "cluster.open-cluster-management.io/unreachable";
/// The taint placed on a cluster whose Available condition is `False`.
pub const TAINT_UNAVAILABLE: &str = "cluster.open-cluster-management.io/unavailable";

/// The desired state of a managed cluster.
// clippy reads the printer columns' repeated `type_ = "string"` as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "cluster.open-cluster-management.io",
    version = "v1",
    kind = "ManagedCluster",
    shortname = "mcl",
    shortname = "mcls",
    status = "ManagedClusterStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "ManagedCluster represents the desired state and current status of a managed cluster. It is cluster-scoped; its name is the cluster's name. Joining is a double opt-in: the agent asks (ManagedCluster and CSR), a hub administrator accepts (hubAcceptsClient and CSR approval).",
    printcolumn(
        name = "Hub Accepted",
        type_ = "boolean",
        json_path = ".spec.hubAcceptsClient"
    ),
    printcolumn(
        name = "Managed Cluster URLs",
        type_ = "string",
        json_path = ".spec.managedClusterClientConfigs[*].url"
    ),
    printcolumn(
        name = "Joined",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="ManagedClusterJoined")].status"#
    ),
    printcolumn(
        name = "Available",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="ManagedClusterConditionAvailable")].status"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClusterSpec {
    /// How to reach the managed cluster's apiserver (informational).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_cluster_client_configs: Vec<ClientConfig>,
    /// The hub's half of the double opt-in: only then may the agent use the hub.
    #[serde(default)]
    pub hub_accepts_client: bool,
    /// How often the agent renews its lease; the hub marks the cluster `Unknown` after five
    /// missed renewals.
    #[serde(default = "default_lease_duration_seconds")]
    pub lease_duration_seconds: i32,
    /// Taints keep placements away unless they tolerate them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
}

fn default_lease_duration_seconds() -> i32 {
    60
}

impl ManagedClusterSpec {
    /// The lease period the agent renews at; OCM reads 0 (or less) as 60 s.
    pub fn lease_duration(&self) -> std::time::Duration {
        match u64::try_from(self.lease_duration_seconds) {
            Ok(seconds) if seconds > 0 => std::time::Duration::from_secs(seconds),
            _ => std::time::Duration::from_secs(60),
        }
    }
}

/// As the apiserver defaults it: a 60 s lease.
impl Default for ManagedClusterSpec {
    fn default() -> Self {
        Self {
            managed_cluster_client_configs: Vec::new(),
            hub_accepts_client: false,
            lease_duration_seconds: default_lease_duration_seconds(),
            taints: Vec::new(),
        }
    }
}

/// The managed cluster's apiserver address.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfig {
    pub url: String,
    /// PEM CA bundle for `url` (base64 in JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>", extend("format" = "byte"))]
    pub ca_bundle: Option<ByteString>,
}

/// Keeps placements away from a cluster unless they tolerate it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    #[schemars(length(max = 316), regex(pattern = QUALIFIED_NAME))]
    pub key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 1024))]
    pub value: String,
    pub effect: TaintEffect,
    /// When the taint was added; set by the hub.
    #[serde(default)]
    pub time_added: Option<Time>,
}

/// What a taint does to placement.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum TaintEffect {
    /// Not selected by placements that do not tolerate it; existing decisions are removed.
    NoSelect,
    /// Avoided where possible.
    PreferNoSelect,
    /// Not newly selected; existing decisions stay.
    NoSelectIfNew,
}

/// What the hub knows about a managed cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClusterStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Summed over the cluster's nodes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "crate::schema::resource_list")]
    pub capacity: BTreeMap<String, Quantity>,
    /// Summed over the cluster's nodes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "crate::schema::resource_list")]
    pub allocatable: BTreeMap<String, Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<ManagedClusterVersion>,
    /// ClusterClaims the agent collected from its cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_claims: Vec<ManagedClusterClaim>,
    /// Namespaces the cluster sets bound to this cluster ask it to manage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["clusterSet", "name"]))]
    pub managed_namespaces: Vec<ClusterSetManagedNamespace>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ManagedClusterVersion {
    /// The managed cluster's Kubernetes version, e.g. `v1.33.2`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kubernetes: String,
}

/// One ClusterClaim as reported in status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ManagedClusterClaim {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 1024))]
    pub value: String,
}

/// A namespace a cluster set asks its clusters to manage, and how that went.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSetManagedNamespace {
    #[schemars(length(max = 63), regex(pattern = DNS_LABEL))]
    pub name: String,
    /// The cluster set that asks for it.
    pub cluster_set: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
