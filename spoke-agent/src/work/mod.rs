//! The work agent (issue 5): ManifestWorks from the hub applied to this cluster, their status
//! sent back. Built so far: status feedback ([`feedback`]).

pub mod apply;
pub mod feedback;
pub mod reconcile;
pub mod status;
