//! `ocmctl`'s verbs as a library, clusteradm's verbs and habits on an ocm-rs hub: making a
//! cluster a hub ([`init`]), the join command and its token ([`token`]), joining a managed
//! cluster with an in-cluster or local agent ([`join`], [`local`]) and leaving again
//! ([`unjoin`], releasing what the agent applied with [`release`]), accepting clusters ([`accept`]) and listing them ([`clusters`]), and delivering
//! work to them as ManifestWorks ([`works`], with manifests read by [`manifests`]). [`hub`]
//! checks the hub's broker as an agent would; [`progress`] is how waits show themselves and
//! [`table`] how lists print.
//!
//! Functions take values (clients, paths, durations) and return what happened; only the
//! `ocmctl` binary reads flags and the environment and prints.

pub mod accept;
pub mod clusters;
pub mod hub;
pub mod init;
pub mod join;
pub mod local;
pub mod manifests;
pub mod names;
pub mod progress;
pub mod release;
pub mod table;
pub mod token;
pub mod unjoin;
pub mod works;
