//! One client interface over either transport: agents and sources open a connection from a
//! [`TransportConfig`] — gRPC to a broker, or an MQTT v5 broker — and get a [`Publisher`] and an
//! [`Inbox`] of decoded events plus resync cues. Nothing above this module knows which transport
//! carries its events.
//!
//! The receiving side runs on its own tasks, which end when `cancel` fires or when the inbox is
//! dropped.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use ocm_proto::SubscriptionRequest;

use crate::backoff::Backoff;
use crate::event::CloudEvent;
use crate::event_type::{DataType, EventType};
use crate::grpc_client::{GrpcClient, SubscribeOptions};
use crate::grpc_config::GrpcClientConfig;
use crate::mqtt_transport::{self, MqttClient, MqttError, MqttSettings};
use crate::tls::TlsError;

pub use crate::mqtt_transport::Role;

/// Which transport, and how to reach it.
#[derive(Debug, Clone)]
pub enum TransportConfig {
    Grpc(GrpcClientConfig),
    Mqtt(MqttSettings),
}

/// What the client listens to.
#[derive(Debug, Clone)]
pub struct Interest {
    /// An agent of one cluster, or a source. (With MQTT the role is also in the settings'
    /// topics; this one decides the gRPC subscription and which events are kept.)
    pub role: Role,
    pub data_types: Vec<DataType>,
}

/// How the receiving side behaves.
#[derive(Debug, Clone, Copy)]
pub struct InboxOptions {
    pub backoff: Backoff,
    /// gRPC's `serverHealthinessTimeout`; MQTT relies on its keepalive instead.
    pub heartbeat_timeout: Option<Duration>,
    /// Decoded events held for the caller before the transport waits for it.
    pub capacity: usize,
}

impl Default for InboxOptions {
    fn default() -> Self {
        Self {
            backoff: Backoff::default(),
            heartbeat_timeout: None,
            capacity: 256,
        }
    }
}

/// Publishes events; clones share the connection.
#[derive(Debug, Clone)]
pub enum Publisher {
    Grpc(GrpcClient),
    Mqtt(MqttClient),
}

impl Publisher {
    pub async fn publish(&self, event: &CloudEvent) -> Result<(), PublishError> {
        match self {
            Self::Grpc(client) => Ok(client.publish(event).await?),
            Self::Mqtt(client) => Ok(client.publish(event).await?),
        }
    }
}

/// What arrives.
#[derive(Debug)]
pub struct Inbox {
    /// Decoded events of the data types of interest (for an agent: of its own cluster).
    pub events: mpsc::Receiver<CloudEvent>,
    /// After every (re)subscription, the data type that was (re)subscribed: resync it now.
    /// Read it alongside `events`: a cue not taken holds up the connection it came from.
    pub resync: mpsc::Receiver<DataType>,
}

/// Connects as `interest` says; the connection is made in the background and remade whenever it
/// breaks. Call within a Tokio runtime.
pub fn open(
    config: TransportConfig,
    interest: Interest,
    options: InboxOptions,
    cancel: CancellationToken,
) -> Result<(Publisher, Inbox), OpenError> {
    let (events_tx, events) = mpsc::channel(options.capacity.max(1));
    let (resync_tx, resync) = mpsc::channel(interest.data_types.len().max(1) * 2);
    let publisher = match config {
        TransportConfig::Grpc(config) => {
            let client = GrpcClient::new(&config)?;
            let subscribe_options = SubscribeOptions {
                backoff: options.backoff,
                heartbeat_timeout: options
                    .heartbeat_timeout
                    .or(config.server_healthiness_timeout),
            };
            for data_type in interest.data_types {
                tokio::spawn(grpc_subscription(
                    client.clone(),
                    subscription_request(&interest.role, &data_type),
                    data_type,
                    events_tx.clone(),
                    resync_tx.clone(),
                    subscribe_options,
                    cancel.clone(),
                ));
            }
            Publisher::Grpc(client)
        }
        TransportConfig::Mqtt(settings) => {
            let (client, eventloop) = mqtt_transport::connect(settings)?;
            let (raw_tx, raw) = mpsc::channel(options.capacity.max(1));
            let (subscribed_tx, subscribed) = mpsc::channel(4);
            tokio::spawn(eventloop.run(raw_tx, subscribed_tx, options.backoff, cancel.clone()));
            tokio::spawn(mqtt_inbox(
                raw,
                subscribed,
                interest.data_types,
                events_tx,
                resync_tx,
            ));
            Publisher::Mqtt(client)
        }
    };
    Ok((publisher, Inbox { events, resync }))
}

fn subscription_request(role: &Role, data_type: &DataType) -> SubscriptionRequest {
    let (source, cluster_name) = match role {
        Role::Agent { cluster } => (String::new(), cluster.clone()),
        Role::Source { source_id } => (source_id.clone(), String::new()),
    };
    SubscriptionRequest {
        source,
        cluster_name,
        data_type: data_type.to_string(),
    }
}

/// One gRPC subscription, its (re)subscriptions turned into resync cues for its data type.
async fn grpc_subscription(
    client: GrpcClient,
    request: SubscriptionRequest,
    data_type: DataType,
    events: mpsc::Sender<CloudEvent>,
    resync: mpsc::Sender<DataType>,
    options: SubscribeOptions,
    cancel: CancellationToken,
) {
    let (subscribed_tx, mut subscribed) = mpsc::channel::<String>(4);
    let run = client.run_subscription(request, events, subscribed_tx, options, cancel);
    let cue = async {
        // A caller that dropped its resync receiver still gets events: keep draining the
        // subscription IDs, since the subscription ends when nobody takes them.
        let mut cueing = true;
        while subscribed.recv().await.is_some() {
            if cueing && resync.send(data_type.clone()).await.is_err() {
                cueing = false;
            }
        }
    };
    // The subscription ends on cancel or when the inbox is gone; the cue loop ends with it.
    tokio::join!(run, cue);
}

/// MQTT topics carry every data type of a cluster: keep the ones of interest, and turn each
/// (re)subscription into a resync cue per data type.
async fn mqtt_inbox(
    mut raw: mpsc::Receiver<CloudEvent>,
    mut subscribed: mpsc::Receiver<()>,
    data_types: Vec<DataType>,
    events: mpsc::Sender<CloudEvent>,
    resync: mpsc::Sender<DataType>,
) {
    loop {
        tokio::select! {
            event = raw.recv() => {
                let Some(event) = event else { return };
                let wanted = event
                    .event_type
                    .parse::<EventType>()
                    .is_ok_and(|t| data_types.contains(&t.data_type));
                if wanted && events.send(event).await.is_err() {
                    return;
                }
            }
            cue = subscribed.recv() => {
                if cue.is_none() {
                    return;
                }
                // A caller that dropped its resync receiver still gets events.
                if !resync.is_closed() {
                    for data_type in &data_types {
                        if resync.send(data_type.clone()).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The broker refused it: `FailedPrecondition` carries OCM's `{"ErrStatus":…}` body
    /// ([`crate::status_error`]), `InvalidArgument` a malformed event, `PermissionDenied` an
    /// authorization failure.
    #[error("broker refused the event: {0}")]
    Grpc(#[from] tonic::Status),
    #[error(transparent)]
    Mqtt(#[from] MqttError),
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Mqtt(#[from] MqttError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_subscribe_by_cluster_and_sources_by_source_id() {
        let data_type = DataType::manifest_bundles();
        let agent = subscription_request(
            &Role::Agent {
                cluster: "cluster1".into(),
            },
            &data_type,
        );
        assert_eq!(
            (agent.source.as_str(), agent.cluster_name.as_str()),
            ("", "cluster1")
        );
        assert_eq!(
            agent.data_type,
            "io.open-cluster-management.works.v1alpha1.manifestbundles"
        );
        let source = subscription_request(
            &Role::Source {
                source_id: "maestro".into(),
            },
            &data_type,
        );
        assert_eq!(
            (source.source.as_str(), source.cluster_name.as_str()),
            ("maestro", "")
        );
    }
}
