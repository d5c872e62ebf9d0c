//! The hub's registration controllers: what acceptance grants ([`rbac`], [`acceptance`]), and
//! whether clusters are alive ([`liveness`], [`availability`]).

pub mod acceptance;
pub mod availability;
pub mod liveness;
pub mod rbac;
