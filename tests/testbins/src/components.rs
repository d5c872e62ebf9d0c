//! The pinned components: which Go module, which version, which binaries or files.
//!
//! Bumping a version here is the whole upgrade: the cache is keyed by component and version,
//! so the next `cargo xtask k8s-bins` builds (or fetches) the new one beside the old.

/// One Go module that yields binaries, files from its source tree, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component {
    /// Short name, used as the cache directory prefix (`<name>-<version>`).
    pub name: &'static str,
    /// Go module path the binaries are built from.
    pub module: &'static str,
    /// Module version (a tag served by the Go module proxy).
    pub version: &'static str,
    /// Binaries built from the module: `(file name, Go package path)`.
    pub binaries: &'static [(&'static str, &'static str)],
    /// Files assembled from the module's own source tree into the cache beside the binaries.
    pub extra_files: &'static [ExtraFile],
    /// Files copied byte for byte from the module's source tree into the cache, each named by
    /// [`copied_file_name`].
    pub copied_files: &'static [&'static str],
}

/// A file concatenated (as a multi-document YAML stream) from files of the module's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtraFile {
    /// File name in the cache directory.
    pub name: &'static str,
    /// Paths inside the module, concatenated in this order.
    pub sources: &'static [&'static str],
}

impl Component {
    /// Directory name of this component inside the cache root.
    pub fn cache_dir_name(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }
}

/// Kubernetes control plane and kubectl. 1.36 is inside k8s-openapi 0.29's supported range
/// (1.33–1.37) and its go.mod asks for Go 1.26.0, which the machines have.
pub const KUBERNETES: Component = Component {
    name: "kubernetes",
    module: "k8s.io/kubernetes",
    version: "v1.36.3",
    binaries: &[
        ("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"),
        (
            "kube-controller-manager",
            "k8s.io/kubernetes/cmd/kube-controller-manager",
        ),
        ("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler"),
        ("kubectl", "k8s.io/kubernetes/cmd/kubectl"),
    ],
    extra_files: &[],
    copied_files: &[],
};

/// etcd 3.6, the release line Kubernetes 1.36 is tested with.
pub const ETCD: Component = Component {
    name: "etcd",
    module: "go.etcd.io/etcd/server/v3",
    version: "v3.6.16",
    binaries: &[("etcd", "go.etcd.io/etcd/server/v3")],
    extra_files: &[],
    copied_files: &[],
};

/// kwok simulates nodes and pods on a real apiserver; v0.8.0 is built against client-go 0.36.
pub const KWOK: Component = Component {
    name: "kwok",
    module: "sigs.k8s.io/kwok",
    version: "v0.8.0",
    binaries: &[("kwok", "sigs.k8s.io/kwok/cmd/kwok")],
    extra_files: &[KWOK_STAGES],
    copied_files: &[],
};

/// kwok acts only through Stages; the binary has none built in (kwokctl assembles them). These
/// are kwok's own "fast" node and pod stages plus lease heartbeats, taken from the same module
/// version so they always match the binary.
pub const KWOK_STAGES: ExtraFile = ExtraFile {
    name: "kwok-stages.yaml",
    sources: &[
        "kustomize/stage/node/fast/node-initialize.yaml",
        "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
        "kustomize/stage/pod/fast/pod-ready.yaml",
        "kustomize/stage/pod/fast/pod-complete.yaml",
        "kustomize/stage/pod/fast/pod-delete.yaml",
    ],
};

/// OCM's published CRDs, which our CRDs are checked against field by field (the CRD schema
/// test in `ocm-api`) and which tests install where they need OCM's own kinds. OCM's API
/// module carries the generated CRD YAML beside its Go types, so the pinned module version is
/// the pinned schema; nothing is compiled. These are all the CRDs OCM v1.3.0 publishes.
pub const OCM_CRDS: Component = Component {
    name: "ocm-crds",
    module: "open-cluster-management.io/api",
    version: "v1.3.0",
    binaries: &[],
    extra_files: &[],
    copied_files: &[
        "addon/v1alpha1/0000_00_addon.open-cluster-management.io_clustermanagementaddons.crd.yaml",
        "addon/v1alpha1/0000_01_addon.open-cluster-management.io_managedclusteraddons.crd.yaml",
        "addon/v1alpha1/0000_02_addon.open-cluster-management.io_addondeploymentconfigs.crd.yaml",
        "addon/v1alpha1/0000_03_addon.open-cluster-management.io_addontemplates.crd.yaml",
        "addon/v1beta1/0000_00_addon.open-cluster-management.io_clustermanagementaddons.crd.yaml",
        "addon/v1beta1/0000_01_addon.open-cluster-management.io_managedclusteraddons.crd.yaml",
        "addon/v1beta1/0000_02_addon.open-cluster-management.io_addondeploymentconfigs.crd.yaml",
        "cluster/v1/0000_00_clusters.open-cluster-management.io_managedclusters.crd.yaml",
        "cluster/v1alpha1/0000_02_clusters.open-cluster-management.io_clusterclaims.crd.yaml",
        "cluster/v1alpha1/0000_05_clusters.open-cluster-management.io_addonplacementscores.crd.yaml",
        "cluster/v1beta1/0000_02_clusters.open-cluster-management.io_placements.crd.yaml",
        "cluster/v1beta1/0000_03_clusters.open-cluster-management.io_placementdecisions.crd.yaml",
        "cluster/v1beta2/0000_00_clusters.open-cluster-management.io_managedclustersets.crd.yaml",
        "cluster/v1beta2/0000_01_clusters.open-cluster-management.io_managedclustersetbindings.crd.yaml",
        "operator/v1/0000_00_operator.open-cluster-management.io_klusterlets.crd.yaml",
        "operator/v1/0000_01_operator.open-cluster-management.io_clustermanagers.crd.yaml",
        "work/v1/0000_00_work.open-cluster-management.io_manifestworks.crd.yaml",
        "work/v1/0000_01_work.open-cluster-management.io_appliedmanifestworks.crd.yaml",
        "work/v1alpha1/0000_00_work.open-cluster-management.io_manifestworkreplicasets.crd.yaml",
    ],
};

/// Every component, in build order (largest first so it starts earliest).
pub const ALL: [Component; 4] = [KUBERNETES, ETCD, KWOK, OCM_CRDS];

/// The components a local cluster runs (what [`crate::Assets`] locates).
pub const CLUSTER: [Component; 3] = [KUBERNETES, ETCD, KWOK];

/// Oldest Go release that builds every component (the highest `go` directive among them).
pub const MIN_GO: (u32, u32, u32) = (1, 26, 0);

/// The Go toolchain `cargo xtask` selects through an older installed go command
/// (`GOTOOLCHAIN`), so a machine with any Go >= 1.21 builds with this exact release.
pub const GO_TOOLCHAIN: &str = "go1.26.8";

/// The cache file name of a copied module file: its path with `/` turned into `_`
/// (`work/v1/x.crd.yaml` becomes `work_v1_x.crd.yaml`), so files that share a name in different
/// API versions stay apart in one flat directory, sorted by group and version.
pub fn copied_file_name(module_path: &str) -> String {
    module_path.replace('/', "_")
}

/// The Kubernetes minor version as the apiserver reports it, e.g. `"36"`.
pub fn kubernetes_minor() -> &'static str {
    KUBERNETES
        .version
        .split('.')
        .nth(1)
        .unwrap_or(KUBERNETES.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_minor_is_read_from_the_pinned_version() {
        assert_eq!(kubernetes_minor(), "36");
    }

    #[test]
    fn every_binary_name_is_unique_across_components() {
        let mut names: Vec<&str> = ALL
            .iter()
            .flat_map(|c| c.binaries.iter().map(|b| b.0))
            .collect();
        let before = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), before);
    }

    #[test]
    fn copied_files_keep_their_group_and_version_in_a_unique_name() {
        assert_eq!(
            copied_file_name(
                "work/v1/0000_00_work.open-cluster-management.io_manifestworks.crd.yaml"
            ),
            "work_v1_0000_00_work.open-cluster-management.io_manifestworks.crd.yaml"
        );
        let mut names: Vec<String> = OCM_CRDS
            .copied_files
            .iter()
            .map(|f| copied_file_name(f))
            .collect();
        let before = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), before);
    }
}
