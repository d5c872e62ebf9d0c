//! `cluster.open-cluster-management.io`: managed clusters, cluster sets and their bindings,
//! cluster claims.

pub mod v1;
pub mod v1alpha1;
pub mod v1beta2;

/// The API group.
pub const GROUP: &str = "cluster.open-cluster-management.io";
