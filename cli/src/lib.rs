//! `ocmctl`'s verbs as a library (issue 4, in progress): the cluster table OCM's printer
//! columns describe ([`clusters`]) and accepting clusters ([`accept`]).

pub mod accept;
pub mod clusters;
