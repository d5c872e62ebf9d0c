//! The ocm-rs agent as a library: what `ocm-agent` runs on a managed cluster.
//!
//! Built so far (issue 4, in progress): joining the hub with a bootstrap credential and
//! obtaining the agent's client certificate ([`bootstrap`]), with the certificate request OCM's
//! agents make ([`csr`]).

pub mod bootstrap;
pub mod csr;
