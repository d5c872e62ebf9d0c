//! The `io.cloudevents.v1` `CloudEventService` protocol, as OCM's Go implementation speaks it.
//!
//! The `.proto` files and their generated code arrive with the CloudEvents transport (issue 3);
//! until then this crate is only the place they will live, so the workspace layout is final.
