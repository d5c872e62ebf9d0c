//! Work delivery, the hub's half (as OCM's hub serves works over gRPC): the
//! broker service for the `manifestbundles` data type.
//!
//! - [`publisher`]: a reflector over every ManifestWork, sending spec events to the subscribed
//!   agents of the work's cluster on create, on a change of generation, labels or annotations,
//!   when deletion starts and when the work is gone.
//! - [`WorkService`], the broker's handler: answers an agent's spec resync (works it lacks or
//!   holds at an older generation, deleting works always, and a deletion with
//!   `resourceversion` for each work the hub no longer has) and takes status updates
//!   (`status.update_request`, and `status.resync_response` for tolerance) into
//!   [`status::StatusWriter`], which writes them coalesced per work.
//!
//! Errors go back to the agent as OCM's do: an undecodable event is `InvalidArgument` with the
//! reason; writes happen after Publish returns, so their failures are logged and counted
//! (`ocm_hub_work_status_write_failures`), not returned.

pub mod mqtt;
pub mod publisher;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use ocm_api::kube::runtime::reflector::{self, Store};
use ocm_api::kube::{Api, Client};
use ocm_api::work::v1::ManifestWork;
use ocm_transport::CloudEvent;
use ocm_transport::broker::{EventHandler, Identity};
use ocm_transport::event_type::{DataType, EventAction, EventType, SubResource};
use ocm_transport::resync::{
    self, HubResource, ResourceVersionList, SpecResyncStep, StatusHash, StatusHashList,
};
use ocm_transport::status_hash::status_hash;
use ocm_transport::work;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::metrics::HubMetrics;
use crate::services::{HUB_SOURCE, Outbox};
use status::{PendingStatus, Skip, StatusWriter, WriterConfig};

/// Work delivery settings.
#[derive(Debug, Clone, Copy)]
pub struct WorkConfig {
    pub writers: WriterConfig,
    /// How long a Publish waits for the first list of ManifestWorks before it is refused with
    /// `Unavailable` (the agent retries).
    pub ready_timeout: Duration,
}

impl Default for WorkConfig {
    fn default() -> Self {
        Self {
            writers: WriterConfig::default(),
            ready_timeout: Duration::from_secs(10),
        }
    }
}

/// Starts the publisher and the status writers (until `cancel`) and returns the broker's
/// handler for `manifestbundles`. Events go out through `outbox` once it is connected.
pub fn start(
    client: Client,
    outbox: Outbox,
    metrics: Arc<HubMetrics>,
    config: WorkConfig,
    cancel: CancellationToken,
) -> WorkService {
    let (works, writer) = reflector::store::<ManifestWork>();
    let (listed_tx, listed) = tokio::sync::watch::channel(false);
    let statuses = StatusWriter::start(
        client.clone(),
        works.clone(),
        Arc::clone(&metrics),
        config.writers,
        cancel.clone(),
    );
    tokio::spawn(publisher::run(
        Api::all(client),
        writer,
        outbox.clone(),
        statuses.clone(),
        listed_tx,
        cancel,
    ));
    WorkService {
        works,
        listed,
        statuses,
        outbox,
        metrics,
        ready_timeout: config.ready_timeout,
    }
}

/// The broker's handler for `io.open-cluster-management.works.v1alpha1.manifestbundles`.
#[derive(Clone)]
pub struct WorkService {
    works: Store<ManifestWork>,
    /// True once the first listing of works is in `works`. Not the store's own
    /// `wait_until_ready`: that wakes only one of several waiters, and thousands of agents
    /// resyncing at a hub's start wait together.
    listed: tokio::sync::watch::Receiver<bool>,
    statuses: StatusWriter,
    outbox: Outbox,
    metrics: Arc<HubMetrics>,
    ready_timeout: Duration,
}

impl std::fmt::Debug for WorkService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkService")
            .field("works", &self.works.len())
            .field("statuses", &self.statuses)
            .finish_non_exhaustive()
    }
}

impl WorkService {
    /// The ManifestWorks, once they have been listed.
    async fn ready_works(&self) -> Result<&Store<ManifestWork>, Status> {
        let mut listed = self.listed.clone();
        match tokio::time::timeout(self.ready_timeout, listed.wait_for(|listed| *listed)).await {
            Ok(Ok(_)) => Ok(&self.works),
            _ => Err(Status::unavailable(
                "the hub has not listed its ManifestWorks yet; retry",
            )),
        }
    }

    /// Answers an agent's spec resync (§5.1): the versions are generations.
    async fn resync(&self, cluster: &str, event: &CloudEvent) -> Result<(), Status> {
        let held: ResourceVersionList = match event.data.as_deref() {
            Some(data) if !data.is_empty() => serde_json::from_slice(data).map_err(|e| {
                Status::invalid_argument(format!("resync request of cluster {cluster}: {e}"))
            })?,
            _ => ResourceVersionList::default(),
        };
        let works = self
            .ready_works()
            .await?
            .state_filter(|w| w.metadata.namespace.as_deref() == Some(cluster));
        let hub: Vec<HubResource> = works
            .iter()
            .filter_map(|w| {
                Some(HubResource {
                    resource_id: w.metadata.uid.clone()?,
                    version: w.metadata.generation.unwrap_or_default(),
                    deleting: w.metadata.deletion_timestamp.is_some(),
                })
            })
            .collect();
        let steps = resync::plan_spec_resync(&hub, &held);
        tracing::debug!(
            cluster,
            held = held.resource_versions.len(),
            hub = hub.len(),
            answers = steps.len(),
            "work spec resync"
        );
        for step in steps {
            let event = match step {
                SpecResyncStep::Send { resource_id } => {
                    let Some(found) = works
                        .iter()
                        .find(|w| w.metadata.uid.as_deref() == Some(resource_id.as_str()))
                    else {
                        continue;
                    };
                    work::encode_spec(
                        found,
                        HUB_SOURCE,
                        EventAction::ResyncResponse,
                        uuid::Uuid::new_v4().to_string(),
                        jiff::Timestamp::now(),
                    )
                    .map_err(|e| Status::internal(e.to_string()))?
                }
                SpecResyncStep::Delete {
                    resource_id,
                    resource_version,
                } => resync::synthesized_delete(
                    &DataType::manifest_bundles(),
                    HUB_SOURCE,
                    cluster,
                    &resource_id,
                    resource_version,
                    uuid::Uuid::new_v4().to_string(),
                    jiff::Timestamp::now(),
                )
                .map_err(|e| Status::invalid_argument(e.to_string()))?,
            };
            self.outbox.send(&event);
        }
        Ok(())
    }

    /// Status resync requests (§5.2), one per cluster holding works, listing the hash of each
    /// work's stored status: agents resend only statuses that differ. Sent when the hub
    /// (re)subscribes to an MQTT broker, which kept nothing published while it was away.
    pub async fn status_resync_requests(&self) -> Result<Vec<CloudEvent>, Status> {
        let works = self.ready_works().await?;
        let mut by_cluster: std::collections::BTreeMap<String, Vec<StatusHash>> =
            std::collections::BTreeMap::new();
        for work in works.state() {
            let (Some(cluster), Some(uid)) = (&work.metadata.namespace, &work.metadata.uid) else {
                continue;
            };
            let hashes = by_cluster.entry(cluster.clone()).or_default();
            // The agent's own hash when this hub took a status of the work; otherwise the
            // stored status's (if it differs from the agent's, the agent resends once, and the
            // write is skipped as equal to what is stored).
            let hash = self.statuses.last_hash(uid).or_else(|| {
                let stored = work.status.as_ref()?;
                Some(status_hash(&serde_json::to_value(stored).ok()?))
            });
            // A work without a status is listed with an empty hash, which differs from any: the
            // agent sends its status (an unlisted work would be left out).
            hashes.push(StatusHash {
                resource_id: uid.clone(),
                status_hash: hash.unwrap_or_default(),
            });
        }
        Ok(by_cluster
            .into_iter()
            .map(|(cluster, status_hashes)| {
                resync::status_resync_request(
                    &DataType::manifest_bundles(),
                    HUB_SOURCE,
                    &cluster,
                    &StatusHashList { status_hashes },
                    uuid::Uuid::new_v4().to_string(),
                    jiff::Timestamp::now(),
                )
            })
            .collect())
    }

    /// Takes an agent's status for writing (OCM's hub `HandleStatusUpdate`).
    async fn status(&self, who: &Identity, event: &CloudEvent) -> Result<(), Status> {
        let reported = work::decode_status(event).map_err(|e| {
            tracing::info!(user = %who.user, cluster = event.cluster_name().unwrap_or_default(), error = %e, "malformed work status refused");
            Status::invalid_argument(e.to_string())
        })?;
        let (cluster, name, uid) = (reported.cluster(), reported.name(), reported.resource_id());
        let works = self.ready_works().await?;
        let Some(current) = status::find_work(works, cluster, name, uid) else {
            // Deleted meanwhile, as OCM's hub treats it: nothing to do.
            tracing::debug!(
                cluster,
                work = name,
                resource_id = uid,
                "status for a work the hub does not have"
            );
            self.metrics.skipped_status(Skip::Gone.as_str());
            return Ok(());
        };
        let deleted = reported.is_deleted();
        if !deleted && current.metadata.generation.unwrap_or_default() > reported.generation {
            tracing::debug!(cluster, work = name, reported = reported.generation, generation = ?current.metadata.generation, "status of an older generation ignored");
            self.metrics.skipped_status(Skip::Stale.as_str());
            return Ok(());
        }
        let status = reported.work.status.clone().unwrap_or_default();
        let hash = match &reported.status_hash {
            Some(hash) => hash.clone(),
            None => status_hash(
                &serde_json::to_value(&status).map_err(|e| Status::internal(e.to_string()))?,
            ),
        };
        self.statuses
            .submit(PendingStatus {
                cluster: cluster.to_owned(),
                name: current.metadata.name.clone().unwrap_or_default(),
                uid: uid.to_owned(),
                generation: reported.generation,
                hash,
                sequence: reported.sequence(),
                status,
                deleted,
            })
            .await
    }
}

#[tonic::async_trait]
impl EventHandler for WorkService {
    async fn handle(&self, who: &Identity, event: CloudEvent) -> Result<(), Status> {
        let event_type: EventType = event
            .event_type
            .parse()
            .map_err(|e| Status::invalid_argument(format!("{e}")))?;
        // The broker authorized the caller for this cluster (namespace = clustername).
        let cluster = event.cluster_name().unwrap_or_default().to_owned();
        match (event_type.sub_resource, event_type.action) {
            (SubResource::Spec, EventAction::ResyncRequest) => self.resync(&cluster, &event).await,
            (SubResource::Status, EventAction::UpdateRequest | EventAction::ResyncResponse) => {
                self.status(who, &event).await
            }
            (sub, action) => Err(Status::invalid_argument(format!(
                "{} does not accept {}.{} from agents",
                DataType::manifest_bundles(),
                sub.as_str(),
                action.as_str()
            ))),
        }
    }
}
