//! The ocm-rs hub as a library: what `ocm-hub` runs, in modules small enough to test against a
//! real apiserver.
//!
//! Built so far (issue 4, in progress): installing and verifying OCM's CRDs ([`crds`]), and
//! the broker's authentication and authorization by the hub's Kubernetes ([`auth`]), and the
//! hub's CA and serving certificate kept in Secrets ([`pki`]), and the CSR signer's checks,
//! auto-approval rules and issuing ([`csr`]) with the controller that applies them
//! ([`csr_controller`]), and the broker services for the registration data types
//! ([`services`]), and the acceptance controller granting accepted clusters their RBAC
//! ([`registration`]), and the validating admission webhook for ManifestWorks ([`webhook`]).

pub mod auth;
pub mod crds;
pub mod csr;
pub mod csr_controller;
pub mod hub;
pub mod metrics;
pub mod pki;
pub mod rbac_changes;
pub mod rbac_index;
pub mod registration;
pub mod services;
pub mod slim;
pub mod webhook;
pub mod work;
