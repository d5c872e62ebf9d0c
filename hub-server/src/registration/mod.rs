//! The hub's registration controllers: what acceptance grants ([`rbac`], [`acceptance`]),
//! whether clusters are alive ([`liveness`], [`availability`]), and cluster sets and their
//! bindings ([`clustersets`]), what a restarted hub need not apply again ([`standing`]), and what a deleted cluster leaves behind ([`cleanup`]).

pub mod acceptance;
pub mod availability;
pub mod cleanup;
pub mod clusters;
pub mod clustersets;
pub mod drift;
pub mod finalizer;
pub mod liveness;
pub mod ownership;
pub mod rbac;
pub mod standing;
