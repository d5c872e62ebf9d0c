//! `work.open-cluster-management.io`: ManifestWork, the workload the hub asks one managed cluster
//! to apply, and AppliedManifestWork, the agent's record on that cluster of what it applied.
//!
//! [`v1`] holds the kinds and the pure helpers the hub and the agent share (the hub hash and
//! AppliedManifestWork names, `manifestConfigs` matching, ownership under a delete option);
//! [`validation`] holds the rules OCM's work webhook enforces.

pub mod v1;
pub mod validation;

/// The API group.
pub const GROUP: &str = "work.open-cluster-management.io";
