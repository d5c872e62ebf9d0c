//! Where the binaries are: a flat directory named by `OCM_TEST_ASSETS`, or the version-keyed
//! cache that `cargo xtask k8s-bins` fills.

use std::path::{Path, PathBuf};

use crate::components::{ALL, Component, ETCD, KUBERNETES, KWOK, KWOK_STAGES};

/// Environment variable naming a flat directory that holds all six binaries (like envtest's
/// `KUBEBUILDER_ASSETS`). When set, the cache is not consulted.
pub const ASSETS_ENV: &str = "OCM_TEST_ASSETS";
/// Environment variable overriding the cache root (default `$XDG_CACHE_HOME/ocm-rs/k8s`, else
/// `$HOME/.cache/ocm-rs/k8s`).
pub const CACHE_ENV: &str = "OCM_K8S_CACHE";
/// File written into a component's cache directory once all its binaries are built and checked.
pub const COMPLETE_STAMP: &str = ".complete";

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
        for component in ALL {
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
        for component in ALL {
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
}
