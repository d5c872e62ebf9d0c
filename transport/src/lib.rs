//! CloudEvents between hub and spokes: the event model, OCM's gRPC and MQTT v5 bindings,
//! payload codecs, resync, mutual TLS and certificate reloading.
//!
//! Built so far (issue 3, in progress): the event model ([`event`]), OCM's event type strings
//! ([`event_type`]), the gRPC binding ([`grpc_binding`]) and the structured JSON format
//! ([`structured`]). The broker, clients, MQTT, codecs and resync follow.
//!
//! Architecture invariant: this crate knows nothing about controllers and makes no Kubernetes
//! API calls.

pub mod event;
pub mod event_type;
pub mod grpc_binding;
pub mod structured;

pub use event::{CloudEvent, ExtensionValue};
pub use event_type::{DataType, EventAction, EventType, SubResource};
