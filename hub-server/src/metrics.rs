//! The hub's Prometheus metrics, in an explicit registry (no global state, so tests can read
//! them).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use ocm_transport::CloudEvent;
use ocm_transport::broker::{EventHandler, Identity};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PublishLabels {
    pub data_type: String,
    pub outcome: String,
}

/// What the hub counts.
#[derive(Debug, Default)]
pub struct HubMetrics {
    /// Live Subscribe streams.
    pub subscribers: Gauge,
    /// Events agents published, by data type and outcome (`ok` or the gRPC code).
    pub published: Family<PublishLabels, Counter>,
}

impl HubMetrics {
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let metrics = Arc::new(Self::default());
        registry.register(
            "ocm_hub_subscribers",
            "Live CloudEvents Subscribe streams",
            metrics.subscribers.clone(),
        );
        registry.register(
            "ocm_hub_published_events",
            "CloudEvents agents published, by data type and outcome",
            metrics.published.clone(),
        );
        metrics
    }
}

/// Counts every event a handler is given, and how it went.
pub struct Counted<H> {
    inner: H,
    data_type: String,
    metrics: Arc<HubMetrics>,
}

impl<H> std::fmt::Debug for Counted<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counted")
            .field("data_type", &self.data_type)
            .finish_non_exhaustive()
    }
}

impl<H> Counted<H> {
    pub fn new(inner: H, data_type: String, metrics: Arc<HubMetrics>) -> Self {
        Self {
            inner,
            data_type,
            metrics,
        }
    }
}

#[tonic::async_trait]
impl<H: EventHandler> EventHandler for Counted<H> {
    async fn handle(&self, who: &Identity, event: CloudEvent) -> Result<(), tonic::Status> {
        let result = self.inner.handle(who, event).await;
        let outcome = match &result {
            Ok(()) => "ok".to_owned(),
            Err(status) => format!("{:?}", status.code()),
        };
        self.metrics
            .published
            .get_or_create(&PublishLabels {
                data_type: self.data_type.clone(),
                outcome,
            })
            .inc();
        result
    }
}
