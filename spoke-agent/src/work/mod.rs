//! The work agent (issue 5): ManifestWorks from the hub applied to this cluster, their status
//! sent back. [`agent`] is the loop (events in, status out, watches), [`reconcile`] one work
//! (its AppliedManifestWork, apply in kind order, prune, delete), [`apply`] one manifest by
//! update strategy, [`status`] the conditions, [`feedback`] the feedback values, [`cel`] the
//! condition rules, [`cache`] what the agent holds, kept across restarts.

pub mod agent;
pub mod apply;
pub mod cache;
pub mod cel;
pub mod executor;
pub mod feedback;
pub mod reconcile;
pub mod status;
