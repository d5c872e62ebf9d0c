//! Where the binaries are: a flat directory named by `OCM_TEST_ASSETS`, or the version-keyed
//! cache that `cargo xtask k8s-bins` fills. And where OCM's published CRDs are
//! ([`reference_crds_dir`]): the same cache, or a directory named by `OCM_REFERENCE_CRDS`.

use std::path::{Path, PathBuf};

use crate::components::{CLUSTER, Component, ETCD, KUBERNETES, KWOK, KWOK_STAGES, OCM_CRDS};

/// Environment variable naming a flat directory that holds all six binaries (like envtest's
/// `KUBEBUILDER_ASSETS`). When set, the cache is not consulted.
pub const ASSETS_ENV: &str = "OCM_TEST_ASSETS";
/// Environment variable overriding the cache root (default `$XDG_CACHE_HOME/ocm-rs/k8s`, else
/// `$HOME/.cache/ocm-rs/k8s`).
pub const CACHE_ENV: &str = "OCM_K8S_CACHE";
/// File written into a component's cache directory once all its binaries are built and checked.
pub const COMPLETE_STAMP: &str = ".complete";
/// Environment variable naming a directory of OCM's published CRDs to use instead of the cache.
pub const REFERENCE_CRDS_ENV: &str = "OCM_REFERENCE_CRDS";

/// Where to look for the binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetsLocation {
    /// A flat directory holding every binary, trusted as is.
    Directory(PathBuf),
    /// The cache root, holding one `<component>-<version>/` directory per component.
    Cache(PathBuf),
}

impl AssetsLocation {
    /// Reads `OCM_TEST_ASSETS`, `OCM_K8S_CACHE`, `XDG_CACHE_HOME` and `HOME`, in that order.
    pub fn from_env() -> Result<Self, AssetsError> {
        if let Some(dir) = std::env::var_os(ASSETS_ENV).filter(|v| !v.is_empty()) {
            return Ok(Self::Directory(PathBuf::from(dir)));
        }
        Ok(Self::Cache(default_cache_root()?))
    }

    fn file_path(&self, component: &Component, binary: &str) -> PathBuf {
        match self {
            Self::Directory(dir) => dir.join(binary),
            Self::Cache(root) => root.join(component.cache_dir_name()).join(binary),
        }
    }
}

/// The cache root from the environment: `OCM_K8S_CACHE`, else `$XDG_CACHE_HOME/ocm-rs/k8s`,
/// else `$HOME/.cache/ocm-rs/k8s`.
pub fn default_cache_root() -> Result<PathBuf, AssetsError> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(root) = non_empty(CACHE_ENV) {
        return Ok(PathBuf::from(root));
    }
    if let Some(xdg) = non_empty("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(xdg).join("ocm-rs").join("k8s"));
    }
    match non_empty("HOME") {
        Some(home) => Ok(PathBuf::from(home)
            .join(".cache")
            .join("ocm-rs")
            .join("k8s")),
        None => Err(AssetsError::NoCacheRoot),
    }
}

/// Paths of every binary a local cluster needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assets {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub kube_scheduler: PathBuf,
    pub kubectl: PathBuf,
    pub kwok: PathBuf,
    /// kwok's node and pod Stages (multi-document YAML), from the same kwok version.
    pub kwok_stages: PathBuf,
}

impl Assets {
    /// Finds every binary at `location`, or says exactly which are missing and how to get them.
    pub fn locate(location: &AssetsLocation) -> Result<Self, AssetsError> {
        let mut missing = Vec::new();
        for component in CLUSTER {
            if let AssetsLocation::Cache(root) = location {
                let stamp = root.join(component.cache_dir_name()).join(COMPLETE_STAMP);
                if !stamp.is_file() {
                    missing.push(format!(
                        "{} {} (no complete build at {})",
                        component.module,
                        component.version,
                        stamp.parent().unwrap_or(root).display()
                    ));
                    continue;
                }
            }
            for (binary, _) in component.binaries {
                let path = location.file_path(&component, binary);
                if !is_executable(&path) {
                    missing.push(format!(
                        "{binary} (not an executable file: {})",
                        path.display()
                    ));
                }
            }
            for extra in component.extra_files {
                let path = location.file_path(&component, extra.name);
                if !path.is_file() {
                    missing.push(format!("{} (no such file: {})", extra.name, path.display()));
                }
            }
        }
        if !missing.is_empty() {
            return Err(AssetsError::Missing {
                location: location.clone(),
                missing,
            });
        }
        let path = |component: &Component, file: &str| location.file_path(component, file);
        Ok(Self {
            etcd: path(&ETCD, "etcd"),
            kube_apiserver: path(&KUBERNETES, "kube-apiserver"),
            kube_controller_manager: path(&KUBERNETES, "kube-controller-manager"),
            kube_scheduler: path(&KUBERNETES, "kube-scheduler"),
            kubectl: path(&KUBERNETES, "kubectl"),
            kwok: path(&KWOK, "kwok"),
            kwok_stages: path(&KWOK, KWOK_STAGES.name),
        })
    }

    /// [`AssetsLocation::from_env`] then [`Assets::locate`].
    pub fn from_env() -> Result<Self, AssetsError> {
        Self::locate(&AssetsLocation::from_env()?)
    }

    /// The directory holding `kubectl`, for putting it on a user's `PATH`.
    pub fn kubectl_dir(&self) -> &Path {
        self.kubectl.parent().unwrap_or(Path::new("."))
    }
}

/// The directory holding OCM's published CRDs ([`OCM_CRDS`], one `.crd.yaml` file each): the
/// one `OCM_REFERENCE_CRDS` names, else the cache's complete copy. Tests that compare against or
/// install OCM's own CRDs read them here and fail with this error when they are missing, so a
/// missing reference can never pass as a skipped check.
pub fn reference_crds_dir() -> Result<PathBuf, AssetsError> {
    if let Some(dir) = std::env::var_os(REFERENCE_CRDS_ENV).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        if !dir.is_dir() {
            return Err(AssetsError::ReferenceCrdsMissing {
                detail: format!(
                    "{REFERENCE_CRDS_ENV} names {}, not a directory",
                    dir.display()
                ),
            });
        }
        return Ok(dir);
    }
    reference_crds_in_cache(&default_cache_root()?)
}

/// [`OCM_CRDS`]' directory under the cache root `root`, if `cargo xtask k8s-bins` completed it.
pub fn reference_crds_in_cache(root: &Path) -> Result<PathBuf, AssetsError> {
    let dir = root.join(OCM_CRDS.cache_dir_name());
    if !dir.join(COMPLETE_STAMP).is_file() {
        return Err(AssetsError::ReferenceCrdsMissing {
            detail: format!("no complete copy at {}", dir.display()),
        });
    }
    Ok(dir)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Why the binaries could not be found.
#[derive(Debug, thiserror::Error)]
pub enum AssetsError {
    #[error(
        "cannot choose a cache directory for the Kubernetes test binaries: none of {CACHE_ENV}, \
         XDG_CACHE_HOME or HOME is set; set one of them, or {ASSETS_ENV}"
    )]
    NoCacheRoot,
    #[error(
        "Kubernetes test binaries are missing:\n  - {}\n{}",
        missing.join("\n  - "),
        remedy(location)
    )]
    Missing {
        location: AssetsLocation,
        missing: Vec<String>,
    },
    #[error(
        "OCM's published CRDs ({} {}) are missing: {detail}. Fetch them once with `cargo xtask \
         k8s-bins` (needs Go >= 1.26 and the Go module proxy; `cargo xtask test` does it too), or \
         set {REFERENCE_CRDS_ENV} to a directory holding them.",
        OCM_CRDS.module, OCM_CRDS.version
    )]
    ReferenceCrdsMissing { detail: String },
}

fn remedy(location: &AssetsLocation) -> String {
    match location {
        AssetsLocation::Cache(root) => format!(
            "Build them once with `cargo xtask k8s-bins` (needs Go >= 1.26 and the Go module \
             proxy; they are cached under {}), or set {ASSETS_ENV} to a directory that holds \
             etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok and \
             kwok-stages.yaml.",
            root.display()
        ),
        AssetsLocation::Directory(dir) => format!(
            "{ASSETS_ENV} points at {}; put the missing binaries there, or unset {ASSETS_ENV} \
             and run `cargo xtask k8s-bins` to build them into the cache.",
            dir.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_cache_names_every_component_and_the_build_command() {
        let root = tempfile::tempdir().unwrap();
        let err = Assets::locate(&AssetsLocation::Cache(root.path().to_owned())).unwrap_err();
        let message = err.to_string();
        for component in CLUSTER {
            assert!(message.contains(component.module), "{message}");
            assert!(message.contains(component.version), "{message}");
        }
        assert!(message.contains("cargo xtask k8s-bins"), "{message}");
        assert!(message.contains("OCM_TEST_ASSETS"), "{message}");
    }

    #[test]
    fn flat_directory_reports_only_the_missing_binaries() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kubectl",
            "kwok",
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(dir.path().join("kwok-stages.yaml"), "").unwrap();
        let err = Assets::locate(&AssetsLocation::Directory(dir.path().to_owned())).unwrap_err();
        let AssetsError::Missing { missing, .. } = &err else {
            panic!("unexpected: {err}")
        };
        assert_eq!(missing.len(), 1, "{err}");
        assert!(missing[0].starts_with("kube-scheduler"), "{err}");
    }

    #[test]
    fn cache_without_completion_stamp_counts_as_missing() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(ETCD.cache_dir_name());
        std::fs::create_dir_all(&dir).unwrap();
        let etcd = dir.join("etcd");
        std::fs::write(&etcd, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&etcd, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = Assets::locate(&AssetsLocation::Cache(root.path().to_owned())).unwrap_err();
        assert!(
            err.to_string()
                .contains("go.etcd.io/etcd/server/v3 v3.6.16 (no complete build")
        );
    }

    #[test]
    fn missing_reference_crds_name_the_module_and_the_command() {
        let root = tempfile::tempdir().unwrap();
        let message = reference_crds_in_cache(root.path())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("open-cluster-management.io/api v1.3.0"),
            "{message}"
        );
        assert!(message.contains("cargo xtask k8s-bins"), "{message}");
        assert!(message.contains(REFERENCE_CRDS_ENV), "{message}");
        let dir = root.path().join(OCM_CRDS.cache_dir_name());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(COMPLETE_STAMP), "").unwrap();
        assert_eq!(reference_crds_in_cache(root.path()).unwrap(), dir);
    }
}
