//! Where the hub's services send events to agents: the gRPC broker's subscribers and, when the
//! hub also serves works over an MQTT broker, that broker's topic of the event's cluster. The
//! broker is built from the services, and the services send through the broker, so the links
//! are made once both exist.

use std::sync::{Arc, OnceLock};

use ocm_transport::CloudEvent;
use ocm_transport::broker::Broker;
use ocm_transport::event_type::{DataType, EventType};
use ocm_transport::mqtt_transport::MqttClient;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SentLabels {
    pub data_type: String,
    /// `spec.update_request`, `spec.resync_response`, …
    pub action: String,
}

/// An MQTT broker carrying some data types (the hub's work driver).
#[derive(Debug, Clone)]
pub struct MqttRoute {
    pub client: MqttClient,
    pub data_types: Vec<DataType>,
}

#[derive(Debug, Default)]
struct Links {
    broker: OnceLock<Broker>,
    mqtt: OnceLock<MqttRoute>,
    sent: Family<SentLabels, Counter>,
}

/// A handle to the send side; clones share it.
#[derive(Clone, Default, Debug)]
pub struct Outbox(Arc<Links>);

impl Outbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// Events sent, by data type and action (for `/metrics`).
    pub fn sent_counter(&self) -> Family<SentLabels, Counter> {
        self.0.sent.clone()
    }

    /// Connects the outbox to the broker (once; later calls are ignored).
    pub fn connect(&self, broker: Broker) {
        let _ = self.0.broker.set(broker);
    }

    /// Also sends events of `route.data_types` through an MQTT broker (once).
    pub fn connect_mqtt(&self, route: MqttRoute) {
        let _ = self.0.mqtt.set(route);
    }

    /// Sends `event` to the gRPC subscribers of its cluster and data type, and to its MQTT
    /// topic when that route carries the data type; returns how many gRPC subscribers queued
    /// it. Events sent before anything is connected have nobody to go to.
    pub fn send(&self, event: &CloudEvent) -> usize {
        let event_type = event.event_type.parse::<EventType>().ok();
        if let Some(event_type) = &event_type {
            self.0
                .sent
                .get_or_create(&SentLabels {
                    data_type: event_type.data_type.to_string(),
                    action: format!(
                        "{}.{}",
                        event_type.sub_resource.as_str(),
                        event_type.action.as_str()
                    ),
                })
                .inc();
        }
        if let Some(event_type) = &event_type {
            self.publish_mqtt(event, event_type);
        }
        let Some(broker) = self.0.broker.get() else {
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

    /// Sends `event` only to its MQTT topic, when that route carries its data type: for what
    /// agents connected over gRPC learn by their resync instead.
    pub fn send_to_mqtt(&self, event: &CloudEvent) {
        if let Ok(event_type) = event.event_type.parse::<EventType>() {
            self.publish_mqtt(event, &event_type);
        }
    }

    fn publish_mqtt(&self, event: &CloudEvent, event_type: &EventType) {
        if let Some(route) = self.0.mqtt.get()
            && route.data_types.contains(&event_type.data_type)
            && let Err(error) = route.client.try_publish(event)
        {
            // The agent gets what it missed at its next resync (every reconnect).
            tracing::warn!(cluster = event.cluster_name().unwrap_or_default(), event_type = %event.event_type, %error, "hub event not sent over MQTT");
        }
    }
}
