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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SkipLabels {
    /// `unchanged` (same status hash, or the status already stored), `stale` (for an older
    /// generation), `outdated` (an older sequence ID than one already taken), `coalesced`
    /// (replaced by a newer status before it was written), `gone` (no such work).
    pub reason: String,
}

/// What the hub counts.
#[derive(Debug, Default)]
pub struct HubMetrics {
    /// Live Subscribe streams.
    pub subscribers: Gauge,
    /// Events agents published, by data type and outcome (`ok` or the gRPC code).
    pub published: Family<PublishLabels, Counter>,
    /// ManifestWork status writes (patches of the status subresource) the apiserver accepted.
    pub work_status_writes: Counter,
    /// ManifestWork status writes that failed after their retries.
    pub work_status_write_failures: Counter,
    /// Agents' ManifestWork statuses that cost no write, by reason.
    pub work_status_skipped: Family<SkipLabels, Counter>,
    /// Bytes on the wire of the broker's connections (TLS included), by direction.
    pub broker_bytes: Family<DirectionLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    /// `received` or `sent`.
    pub direction: String,
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
        registry.register(
            "ocm_hub_work_status_writes",
            "ManifestWork status writes accepted by the apiserver",
            metrics.work_status_writes.clone(),
        );
        registry.register(
            "ocm_hub_work_status_write_failures",
            "ManifestWork status writes that failed after their retries",
            metrics.work_status_write_failures.clone(),
        );
        registry.register(
            "ocm_hub_broker_bytes",
            "Bytes on the wire of the broker's agent connections, TLS included, by direction",
            metrics.broker_bytes.clone(),
        );
        registry.register(
            "ocm_hub_work_status_skipped",
            "ManifestWork statuses from agents that cost no write, by reason",
            metrics.work_status_skipped.clone(),
        );
        metrics
    }

    /// Brings the wire byte counters up to the broker's totals.
    pub fn wire_bytes(&self, received: u64, sent: u64) {
        for (direction, total) in [("received", received), ("sent", sent)] {
            let counter = self.broker_bytes.get_or_create(&DirectionLabels {
                direction: direction.to_owned(),
            });
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    /// Counts a status that cost no write.
    pub fn skipped_status(&self, reason: &str) {
        self.work_status_skipped
            .get_or_create(&SkipLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// How many statuses were skipped for `reason` so far.
    pub fn skipped_statuses(&self, reason: &str) -> u64 {
        self.work_status_skipped
            .get_or_create(&SkipLabels {
                reason: reason.to_owned(),
            })
            .get()
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
