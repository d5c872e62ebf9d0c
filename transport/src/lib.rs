//! CloudEvents between hub and spokes: the event model, OCM's gRPC and MQTT v5 bindings,
//! payload codecs, resync, mutual TLS and certificate reloading.
//!
//! Architecture invariant: this crate knows nothing about controllers and makes no Kubernetes
//! API calls. Its implementation arrives with issue 3; this crate fixes its place in the layout.
