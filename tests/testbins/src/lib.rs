//! Real Kubernetes binaries for ocm-rs' tests and local environment.
//!
//! There is no Docker engine on our machines, so etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler, kubectl and kwok are built from their official Go modules and cached outside
//! the repository, keyed by component and version ([`components`]). [`Assets`] finds them;
//! [`go_build`] builds what is missing.
//!
//! Architecture invariant: this crate has no dependency on Kubernetes client libraries, so the
//! `cargo xtask k8s-bins` command compiles in seconds before the long Go build starts.

pub mod assets;
pub mod components;
pub mod go_build;

pub use assets::{Assets, AssetsError, AssetsLocation};
