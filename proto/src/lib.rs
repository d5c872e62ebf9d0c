//! The `io.cloudevents.v1` `CloudEventService` protocol, as OCM's Go implementation speaks it:
//! the CloudEvents protobuf messages with their field numbers, and the service's generated gRPC
//! client and server (`/io.cloudevents.v1.CloudEventService/Publish` and `/Subscribe`).
//!
//! Only the wire types live here. How OCM fills them — `ce-`-prefixed attribute keys, the bare
//! `contenttype` key, data only in `binary_data` — is the transport crate's mapping.

pub mod codec;

/// Generated code for package `io.cloudevents.v1`.
#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
pub mod v1 {
    tonic::include_proto!("io.cloudevents.v1");
}

pub use v1::cloud_event_service_client::CloudEventServiceClient;
pub use v1::cloud_event_service_server::{CloudEventService, CloudEventServiceServer};
pub use v1::{CloudEvent, CloudEventAttributeValue, PublishRequest, SubscriptionRequest};

#[cfg(test)]
mod tests;
