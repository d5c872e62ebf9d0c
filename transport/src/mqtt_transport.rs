//! CloudEvents over an MQTT v5 broker (OCM's sdk-go MQTT protocol), for agents and sources alike:
//! binary-mode messages ([`crate::mqtt_binding`]) on OCM's topic layout ([`Topics`]), QoS 1,
//! clean start (so a resync after every reconnect, not a persistent session, is what guards
//! against lost messages), TLS 1.3 with client certificates.
//!
//! [`MqttEventLoop::run`] drives the connection: it (re)subscribes after every connect, signals
//! each (re)subscription (the cue to resync, as with gRPC), delivers decoded events, and
//! reconnects with backoff when the broker goes away.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, PublishProperties};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::event::{CloudEvent, extension};
use crate::mqtt_binding::{self, MqttMessage};
use crate::mqtt_topics::{TopicError, Topics};

/// Which side of OCM's layout a client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A spoke agent of one cluster.
    Agent { cluster: String },
    /// A source (the hub, or another workload source) with its source ID.
    Source { source_id: String },
}

/// Connection settings (OCM's MQTT config file: `brokerHost`, credentials, TLS, keepAlive,
/// topics).
#[derive(Debug, Clone)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    /// Agents use `<agentID>-client`.
    pub client_id: String,
    pub credentials: Option<(String, String)>,
    /// TLS (1.3, client certificate); `None` is plain TCP, as OCM uses when no client
    /// certificate is configured.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub keep_alive: Duration,
    pub topics: Topics,
    pub role: Role,
    /// Largest message accepted and sent (Maestro's brokers: 512 KiB).
    pub max_packet_size: u32,
    /// Outgoing messages queued for the connection before publishing waits (or
    /// [`MqttClient::try_publish`] fails): an agent needs little, a hub sending to thousands of
    /// clusters at once much more.
    pub queue_capacity: usize,
}

/// Publishes events on the topic the role and the event call for.
#[derive(Debug, Clone)]
pub struct MqttClient {
    client: AsyncClient,
    topics: Topics,
    role: Role,
}

/// Drives the connection; run it on its own task.
pub struct MqttEventLoop {
    eventloop: EventLoop,
    client: AsyncClient,
    subscriptions: Vec<String>,
    role: Role,
}

impl std::fmt::Debug for MqttEventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttEventLoop")
            .field("subscriptions", &self.subscriptions)
            .field("role", &self.role)
            .finish()
    }
}

/// Builds a client and its event loop; nothing connects until the loop runs.
pub fn connect(settings: MqttSettings) -> Result<(MqttClient, MqttEventLoop), MqttError> {
    let subscriptions = match &settings.role {
        Role::Agent { cluster } => settings.topics.agent_subscriptions(cluster),
        Role::Source { source_id } => settings.topics.source_subscriptions(source_id)?,
    };
    let mut options = MqttOptions::new(settings.client_id, settings.host, settings.port);
    options
        .set_clean_start(true)
        .set_keep_alive(settings.keep_alive)
        .set_max_packet_size(Some(settings.max_packet_size));
    if let Some((user, password)) = settings.credentials {
        options.set_credentials(user, password);
    }
    if let Some(tls) = settings.tls {
        options.set_transport(Transport::Tls(TlsConfiguration::Rustls(tls)));
    }
    let (client, eventloop) = AsyncClient::new(options, settings.queue_capacity.max(1));
    let handle = MqttClient {
        client: client.clone(),
        topics: settings.topics,
        role: settings.role.clone(),
    };
    Ok((
        handle,
        MqttEventLoop {
            eventloop,
            client,
            subscriptions,
            role: settings.role,
        },
    ))
}

impl MqttClient {
    /// Publishes `event` with QoS 1 to the topic OCM's layout derives for it.
    pub async fn publish(&self, event: &CloudEvent) -> Result<(), MqttError> {
        let (topic, payload, properties) = self.message(event)?;
        self.client
            .publish_with_properties(topic, QoS::AtLeastOnce, false, payload, properties)
            .await
            .map_err(|e| MqttError::Client(e.to_string()))
    }

    /// [`Self::publish`] without waiting: fails when the outgoing queue is full.
    pub fn try_publish(&self, event: &CloudEvent) -> Result<(), MqttError> {
        let (topic, payload, properties) = self.message(event)?;
        self.client
            .try_publish_with_properties(topic, QoS::AtLeastOnce, false, payload, properties)
            .map_err(|e| MqttError::Client(e.to_string()))
    }

    fn message(
        &self,
        event: &CloudEvent,
    ) -> Result<(String, Vec<u8>, PublishProperties), MqttError> {
        let topic = match &self.role {
            Role::Agent { cluster } => {
                let original_source = event
                    .extension_str(extension::ORIGINAL_SOURCE)
                    .unwrap_or_default();
                self.topics.agent_publish(cluster, original_source)?
            }
            Role::Source { source_id } => self
                .topics
                .source_publish(source_id, event.cluster_name().unwrap_or_default())?,
        };
        let message = mqtt_binding::encode(event);
        let properties = PublishProperties {
            user_properties: message.user_properties,
            content_type: message.content_type,
            ..PublishProperties::default()
        };
        Ok((topic, message.payload, properties))
    }
}

impl MqttEventLoop {
    /// Runs until `cancel` or until `events` is closed. `subscribed` receives `()` after every
    /// (re)subscription: resync then.
    pub async fn run(
        mut self,
        events: mpsc::Sender<CloudEvent>,
        subscribed: mpsc::Sender<()>,
        backoff: Backoff,
        cancel: CancellationToken,
    ) {
        let mut attempt = 0u32;
        loop {
            let polled = tokio::select! {
                () = cancel.cancelled() => return,
                polled = self.eventloop.poll() => polled,
            };
            match polled {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    attempt = 0;
                    // Clean start: the broker forgot our subscriptions; make them again.
                    let filters = self
                        .subscriptions
                        .iter()
                        .map(|t| Filter::new(t.clone(), QoS::AtLeastOnce));
                    if let Err(err) = self.client.subscribe_many(filters).await {
                        tracing::warn!(%err, "cannot queue MQTT subscriptions");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if subscribed.send(()).await.is_err() {
                        return;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let properties = publish.properties.unwrap_or_default();
                    let message = MqttMessage {
                        user_properties: properties.user_properties,
                        content_type: properties.content_type,
                        payload: publish.payload.to_vec(),
                    };
                    let topic = String::from_utf8_lossy(&publish.topic).into_owned();
                    match mqtt_binding::decode(message) {
                        Ok(event) if self.is_for_me(&event, &topic) => {
                            if events.send(event).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(err) => {
                            tracing::warn!(%topic, %err, "undecodable MQTT message skipped")
                        }
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    let delay = backoff.delay(attempt);
                    attempt = attempt.saturating_add(1);
                    tracing::warn!(%err, delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "MQTT connection lost; reconnecting");
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Topics route, but broadcast topics reach every agent: an agent keeps only events for its
    /// own cluster (or for all clusters), as OCM's agents check `clustername` themselves. A
    /// source keeps only events naming the cluster whose topic they came on: the broker's access
    /// rules are what authenticate an agent, and an event claiming another cluster is refused.
    fn is_for_me(&self, event: &CloudEvent, topic: &str) -> bool {
        match &self.role {
            Role::Agent { cluster } => event
                .cluster_name()
                .is_none_or(|c| c.is_empty() || c == cluster),
            Role::Source { .. } => {
                let claimed = event.cluster_name().unwrap_or_default();
                let from = crate::mqtt_topics::publishing_cluster(topic);
                if from == Some(claimed) {
                    return true;
                }
                tracing::warn!(%topic, claimed, event = %event.id, "event for another cluster than its topic refused");
                false
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MqttError {
    #[error(transparent)]
    Topic(#[from] TopicError),
    #[error("MQTT client: {0}")]
    Client(String),
}
