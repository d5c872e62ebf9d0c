//! CloudEvents between hub and spokes: the event model, OCM's gRPC and MQTT v5 bindings,
//! payload codecs, resync, mutual TLS and certificate reloading.
//!
//! The pieces: the event model ([`event`]) and OCM's event type strings ([`event_type`]); the
//! gRPC and MQTT v5 bindings ([`grpc_binding`], [`mqtt_binding`], [`structured`]); payloads
//! ([`payload`], [`work`], [`registration`], [`resync`]) with `sequenceid` ([`sequence_id`]) and
//! `statushash` ([`status_hash`]); the gRPC broker ([`broker`]) with its routing table
//! ([`subscriptions`]), authorization mapping ([`access`]) and error bodies ([`status_error`]);
//! the reconnecting gRPC client ([`grpc_client`], [`grpc_config`], [`http_proxy`],
//! [`rate_limit`], [`backoff`]); the MQTT transport ([`mqtt_transport`], [`mqtt_topics`],
//! [`mqtt_config`]); mutual TLS with reloadable certificates ([`tls`], [`pem_source`]); and one
//! client interface over either transport ([`client`]); and the health and metrics endpoint
//! both binaries serve ([`health`]).
//!
//! Architecture invariant: this crate knows nothing about controllers and makes no Kubernetes
//! API calls.

pub mod access;
pub mod backoff;
pub mod broker;
pub mod client;
pub mod event;
pub mod event_type;
pub mod grpc_binding;
pub mod grpc_client;
pub mod grpc_config;
pub mod health;
pub mod http_proxy;
pub mod mqtt_binding;
pub mod mqtt_config;
pub mod mqtt_topics;
pub mod mqtt_transport;
pub mod payload;
pub mod pem_source;
pub mod rate_limit;
pub mod registration;
pub mod resync;
pub mod sequence_id;
pub mod status_error;
pub mod status_hash;
pub mod structured;
pub mod subscriptions;
pub mod tls;
pub mod wire_count;
pub mod work;

pub use event::{CloudEvent, ExtensionValue};
pub use event_type::{DataType, EventAction, EventType, SubResource};
