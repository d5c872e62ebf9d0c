//! The CustomResourceDefinitions ocm-rs installs, generated from the types here. The YAML in
//! `deploy/crds/` is this output, checked by a test to stay current.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::cluster::{v1, v1alpha1, v1beta2};
use crate::{schema, work};

/// Where a CRD is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// On the hub (by `ocm-hub` at start, or `ocmctl init`).
    Hub,
    /// On each managed cluster (by `ocmctl join`).
    Spoke,
}

impl Installed {
    pub const fn dir(self) -> &'static str {
        match self {
            Self::Hub => "hub",
            Self::Spoke => "spoke",
        }
    }
}

/// Every CRD, with where it goes.
pub fn all() -> Vec<(Installed, CustomResourceDefinition)> {
    [
        (Installed::Hub, v1::ManagedCluster::crd()),
        (Installed::Hub, v1beta2::ManagedClusterSet::crd()),
        (Installed::Hub, v1beta2::ManagedClusterSetBinding::crd()),
        (Installed::Hub, work::v1::ManifestWork::crd()),
        (Installed::Spoke, v1alpha1::ClusterClaim::crd()),
        (Installed::Spoke, work::v1::AppliedManifestWork::crd()),
    ]
    .into_iter()
    .map(|(place, crd)| (place, schema::as_ocm_publishes(crd)))
    .collect()
}

/// The CRDs installed on the hub.
pub fn hub() -> Vec<CustomResourceDefinition> {
    installed(Installed::Hub)
}

/// The CRDs installed on every managed cluster.
pub fn spoke() -> Vec<CustomResourceDefinition> {
    installed(Installed::Spoke)
}

fn installed(place: Installed) -> Vec<CustomResourceDefinition> {
    all()
        .into_iter()
        .filter(|(p, _)| *p == place)
        .map(|(_, crd)| crd)
        .collect()
}

/// The file a CRD is kept in under `deploy/crds/`: `<hub|spoke>/<group>_<plural>.yaml`.
pub fn file_name(place: Installed, crd: &CustomResourceDefinition) -> String {
    format!(
        "{}/{}_{}.yaml",
        place.dir(),
        crd.spec.group,
        crd.spec.names.plural
    )
}
