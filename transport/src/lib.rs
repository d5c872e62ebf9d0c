//! CloudEvents between hub and spokes: the event model, OCM's gRPC and MQTT v5 bindings,
//! payload codecs, resync, mutual TLS and certificate reloading.
//!
//! Built so far (issue 3, in progress): the event model ([`event`]), OCM's event type strings
//! ([`event_type`]), the gRPC and MQTT v5 bindings ([`grpc_binding`], [`mqtt_binding`]), the
//! structured JSON format ([`structured`]), `sequenceid` ([`sequence_id`]) and `statushash`
//! ([`status_hash`]), the resync payloads and decisions ([`resync`]) and OCM's MQTT topic
//! layout ([`mqtt_topics`]), and the authorization mapping of Publish and Subscribe
//! ([`access`]), Publish's error body ([`status_error`]) and the broker's routing table with one
//! bounded queue per subscriber ([`subscriptions`]), and mutual TLS 1.3 with reloadable
//! certificates and certificate identities ([`tls`]), the gRPC broker ([`broker`]), the
//! reconnecting gRPC client ([`grpc_client`]) and OCM's gRPC client configuration file
//! ([`grpc_config`]), HTTP CONNECT proxies ([`http_proxy`]), the MQTT v5 transport
//! ([`mqtt_transport`]), OCM's MQTT configuration file ([`mqtt_config`]) and the manifestbundle
//! payload envelopes ([`payload`]). Typed work payloads (with the work API) and benchmarks
//! follow.
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

pub use event::{CloudEvent, ExtensionValue};
pub use event_type::{DataType, EventAction, EventType, SubResource};
