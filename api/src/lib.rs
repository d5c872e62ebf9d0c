//! Open Cluster Management's API types in Rust, and the Kubernetes facade.
//!
//! Every crate reaches `kube` and `k8s-openapi` through the re-exports here, so bumping either
//! (or the Kubernetes API version, `v1_33`, the oldest hub and spoke minor we support) happens
//! in one place.
//!
//! The OCM kinds, as Rust types whose generated CRDs match OCM's published schemas ([`crds`]):
//! [`cluster`] (ManagedCluster, ManagedClusterSet, ManagedClusterSetBinding, ClusterClaim) and
//! [`work`] (ManifestWork, AppliedManifestWork, and the work webhook's validation), with OCM's
//! [`condition::Condition`], and [`label_selector`] (Kubernetes label selectors evaluated as Go
//! evaluates them). Placement and the add-on kinds arrive with the issues that implement their
//! behaviour.
//!
//! Architecture invariant: types and pure helpers only; no I/O.

pub mod cluster;
pub mod condition;
pub mod crds;
pub mod label_selector;
pub mod registration;
mod schema;
pub mod work;

pub use k8s_openapi;
pub use kube;

/// The oldest Kubernetes minor version whose API types this build uses (`k8s-openapi`'s
/// version feature).
pub const KUBERNETES_API_VERSION: &str = "1.33";

#[cfg(test)]
mod tests {
    #[test]
    fn facade_version_matches_the_enabled_k8s_openapi_feature() {
        let enabled: Vec<&str> = vec![k8s_openapi::k8s_if_1_33! { "1.33" }];
        assert_eq!(enabled, [super::KUBERNETES_API_VERSION]);
    }
}
