//! Where the hub's services send events to agents. The broker is built from the services, and
//! the services send through the broker, so the link is made once both exist.

use std::sync::{Arc, OnceLock};

use ocm_transport::CloudEvent;
use ocm_transport::broker::Broker;

/// A handle to the broker's send side; clones share it.
#[derive(Clone, Default, Debug)]
pub struct Outbox(Arc<OnceLock<Broker>>);

impl Outbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects the outbox to the broker (once; later calls are ignored).
    pub fn connect(&self, broker: Broker) {
        let _ = self.0.set(broker);
    }

    /// Sends `event` to the subscribers of its cluster and data type; returns how many queued
    /// it. Events sent before the broker is connected have nobody to go to.
    pub fn send(&self, event: &CloudEvent) -> usize {
        let Some(broker) = self.0.get() else {
            return 0;
        };
        match broker.send(event) {
            Ok(delivered) => delivered,
            Err(status) => {
                tracing::warn!(event_type = %event.event_type, error = %status.message(), "hub event not sent");
                0
            }
        }
    }
}
