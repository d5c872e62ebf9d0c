//! The hub's registration controllers: what acceptance grants ([`rbac`], [`acceptance`]).

pub mod acceptance;
pub mod rbac;
