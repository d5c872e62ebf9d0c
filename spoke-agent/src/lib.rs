//! The ocm-rs agent as a library: what `ocm-agent` runs on a managed cluster.
//!
//! Registration (issue 4): joining the hub with a bootstrap credential and obtaining the
//! agent's client certificate ([`bootstrap`]) with the request OCM's agents make ([`csr`]),
//! keeping that credential on the cluster ([`credentials`]), renewing it ([`rotation`]), and the
//! registration loop — lease renewal and status reports ([`agent`], [`status`]). Work delivery
//! (issue 5, in progress): [`work`]. What the agent says about itself — readiness, its vital
//! loops and its metrics: [`health`].

pub mod agent;
pub mod bootstrap;
pub mod credentials;
pub mod csr;
pub mod health;
pub mod rotation;
pub mod status;
pub mod work;
