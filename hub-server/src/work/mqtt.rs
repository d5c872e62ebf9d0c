//! The hub's work driver over an MQTT v5 broker (OCM's `--work-driver=mqtt`): besides its gRPC
//! broker, the hub connects to an MQTT broker as the source `kube`, sends ManifestWork spec
//! events to each cluster's `sourceevents` topic (through [`Outbox`]) and takes the agents'
//! events from their `agentevents` topics to the same [`WorkService`] gRPC agents use.
//!
//! With MQTT the broker authenticates the agents and its access rules decide who may publish on
//! which cluster's topic; the transport keeps only events whose `clustername` is the cluster of
//! their topic. After every (re)subscription the hub asks each cluster for the statuses whose
//! hash differs from what it holds (clean start: what agents published meanwhile is gone).

use std::sync::Arc;

use ocm_transport::CloudEvent;
use ocm_transport::backoff::Backoff;
use ocm_transport::broker::{EventHandler, Identity};
use ocm_transport::event_type::DataType;
use ocm_transport::mqtt_transport::{self, MqttError, MqttSettings};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::WorkService;
use crate::services::Outbox;
use crate::services::outbox::MqttRoute;

/// Connects to the broker in `settings` (role: the hub's source) and serves works over it until
/// `cancel`; reconnects with backoff whenever the broker goes away.
pub fn start(
    settings: MqttSettings,
    works: WorkService,
    handler: Arc<dyn EventHandler>,
    outbox: &Outbox,
    cancel: CancellationToken,
) -> Result<(), MqttError> {
    let (client, eventloop) = mqtt_transport::connect(settings)?;
    outbox.connect_mqtt(MqttRoute {
        client,
        data_types: vec![DataType::manifest_bundles()],
    });
    let (events_tx, events) = mpsc::channel(1024);
    let (subscribed_tx, subscribed) = mpsc::channel(4);
    tokio::spawn(eventloop.run(events_tx, subscribed_tx, Backoff::default(), cancel.clone()));
    tokio::spawn(serve(
        events,
        subscribed,
        works,
        handler,
        outbox.clone(),
        cancel,
    ));
    Ok(())
}

async fn serve(
    mut events: mpsc::Receiver<CloudEvent>,
    mut subscribed: mpsc::Receiver<()>,
    works: WorkService,
    handler: Arc<dyn EventHandler>,
    outbox: Outbox,
    cancel: CancellationToken,
) {
    let manifest_bundles = DataType::manifest_bundles().to_string();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            cue = subscribed.recv() => {
                if cue.is_none() {
                    return;
                }
                match works.status_resync_requests().await {
                    Ok(requests) => {
                        tracing::info!(clusters = requests.len(), "subscribed to the MQTT broker; asking agents for statuses the hub lacks");
                        for request in &requests {
                            outbox.send(request);
                        }
                    }
                    Err(status) => tracing::warn!(error = %status.message(), "status resync over MQTT not sent"),
                }
            }
            event = events.recv() => {
                let Some(event) = event else { return };
                let cluster = event.cluster_name().unwrap_or_default().to_owned();
                if !event.event_type.starts_with(&manifest_bundles) {
                    tracing::warn!(%cluster, event_type = %event.event_type, "MQTT event of a data type the hub does not serve over MQTT ignored");
                    continue;
                }
                // Who published is the broker's business: the topic named this cluster.
                let who = Identity {
                    user: format!("mqtt:{cluster}"),
                    groups: Vec::new(),
                };
                let id = event.id.clone();
                if let Err(status) = handler.handle(&who, event).await {
                    // No reply channel on MQTT: log with context and go on.
                    tracing::warn!(%cluster, event = %id, code = ?status.code(), error = %status.message(), "MQTT event refused");
                }
            }
        }
    }
}
