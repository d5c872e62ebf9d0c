//! Writing the status agents report into their ManifestWorks, coalesced per work.
//!
//! Every work has a slot holding at most one pending status. A status offered to a work whose
//! slot already holds one replaces it (latest wins: the greater `sequenceid` when the two
//! compare, else the later arrival), so a burst of statuses for one work costs one write, or
//! two when the burst straddles a write. Works are spread by UID over a fixed set of writer
//! tasks, each with a bounded queue of work UIDs; one work always goes to the same writer, so
//! its writes never race. A full queue makes the offering Publish wait: back-pressure on the
//! agents rather than unbounded memory.
//!
//! What a write does (OCM's hub `HandleStatusUpdate`, plus the skipping): `Deleted=True` removes
//! the `manifest-work-cleanup` finalizer (the agent has cleaned up); a status for a generation
//! older than the work's is ignored; otherwise the finalizer is added if missing (not on a work
//! being deleted: the apiserver refuses new finalizers then) and the status is written with a
//! merge patch of the status subresource — unless its hash equals the last one written, or it
//! equals what the work already holds. The last hash and sequence ID per work live in memory; a
//! restarted hub compares with the stored status instead, so it does not rewrite what is there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ocm_api::kube::api::{Patch, PatchParams};
use ocm_api::kube::runtime::reflector::{ObjectRef, Store};
use ocm_api::kube::{Api, Client};
use ocm_api::work::v1::{MANIFEST_WORK_FINALIZER, ManifestWork, ManifestWorkStatus};
use ocm_transport::sequence_id::SequenceId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::HubMetrics;

/// A status waiting to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingStatus {
    pub cluster: String,
    pub name: String,
    pub uid: String,
    /// The generation the status was reported for.
    pub generation: i64,
    /// The agent's `statushash` (or ours, when it sent none).
    pub hash: String,
    pub sequence: Option<SequenceId>,
    pub status: ManifestWorkStatus,
    /// `Deleted=True`: the agent finished; remove the finalizer.
    pub deleted: bool,
}

/// Why a status cost no write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The same hash as the last status written, or the status the work already holds.
    Unchanged,
    /// For an older generation than the work's.
    Stale,
    /// An older (or the same) sequence ID than one already taken for this work.
    Outdated,
    /// Replaced by a newer status before it was written.
    Coalesced,
    /// No such work (any more).
    Gone,
    /// `Deleted=True` for a work nobody is deleting: an agent does not get to drop the
    /// finalizer that keeps a work until its resources are gone.
    NotDeleting,
}

impl Skip {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unchanged => "unchanged",
            Self::Stale => "stale",
            Self::Outdated => "outdated",
            Self::Coalesced => "coalesced",
            Self::Gone => "gone",
            Self::NotDeleting => "not_deleting",
        }
    }
}

/// One work's slot.
#[derive(Debug, Default)]
pub struct Slot {
    pending: Option<PendingStatus>,
    /// The work's UID is in its writer's queue.
    queued: bool,
    /// The hash of the last status written (or found already stored).
    last_hash: Option<String>,
    /// The newest sequence ID taken for this work.
    last_sequence: Option<SequenceId>,
    /// The resourceVersion the last write left the work at.
    written_version: Option<String>,
    /// Writes that failed in a row: the pending status is kept and tried again, later each
    /// time ([`retry_delay`]).
    failures: u32,
}

/// How long after its `failures`-th failure in a row a status is written again: 1 s, doubled
/// each time, at most 30 s. A status the agent has already published successfully is never
/// dropped — the agent resends only when its status changes, and a lost `Deleted=True` would
/// leave the work terminating.
pub fn retry_delay(failures: u32) -> Duration {
    Duration::from_secs(1)
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)))
        .min(Duration::from_secs(30))
}

/// What offering a status to a slot did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// Pending now; the work must be put in its writer's queue.
    Queue,
    /// Pending now, replacing one that was (which will not be written).
    Replaced,
    /// Pending now; the work is already queued.
    Pending,
    /// Not taken.
    Skipped(Skip),
}

/// Whether `newer` comes after `older` by sequence ID; IDs that do not compare (absent, or of
/// different nodes) count as newer, so arrival order decides.
fn comes_after(newer: Option<SequenceId>, older: Option<SequenceId>) -> bool {
    match (newer, older) {
        (Some(newer), Some(older)) => newer
            .compare(older)
            .map_or(true, |o| o == std::cmp::Ordering::Greater),
        _ => true,
    }
}

/// Offers `status` to `slot` (pure; the caller holds the lock).
pub fn offer(slot: &mut Slot, status: PendingStatus) -> Offered {
    let pending_deleted = slot.pending.as_ref().is_some_and(|p| p.deleted);
    if !status.deleted {
        if pending_deleted || !comes_after(status.sequence, slot.last_sequence) {
            return Offered::Skipped(Skip::Outdated);
        }
        if slot.pending.is_none() && slot.last_hash.as_deref() == Some(status.hash.as_str()) {
            slot.last_sequence = status.sequence.or(slot.last_sequence);
            return Offered::Skipped(Skip::Unchanged);
        }
    }
    if status.sequence.is_some() && comes_after(status.sequence, slot.last_sequence) {
        slot.last_sequence = status.sequence;
    }
    let replaced = slot.pending.replace(status).is_some();
    if !slot.queued {
        slot.queued = true;
        Offered::Queue
    } else if replaced {
        Offered::Replaced
    } else {
        Offered::Pending
    }
}

/// What the last write left behind, as a writer sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    pub hash: Option<String>,
    pub version: Option<String>,
}

/// What writing a status to `work` (the hub's current copy) takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Skip(Skip),
    RemoveFinalizer,
    Write { add_finalizer: bool, status: bool },
}

/// Decides what `status` costs against `work` (pure).
pub fn decide(work: &ManifestWork, status: &PendingStatus, written: &Written) -> Decision {
    let finalized = work
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == MANIFEST_WORK_FINALIZER);
    if status.deleted {
        if work.metadata.deletion_timestamp.is_none() {
            return Decision::Skip(Skip::NotDeleting);
        }
        return if finalized {
            Decision::RemoveFinalizer
        } else {
            Decision::Skip(Skip::Unchanged)
        };
    }
    if work.metadata.generation.unwrap_or_default() > status.generation {
        return Decision::Skip(Skip::Stale);
    }
    let add_finalizer = !finalized && work.metadata.deletion_timestamp.is_none();
    // The stored status can be trusted only when it is not older than the last write.
    let store_current =
        written.version.is_none() || written.version == work.metadata.resource_version;
    let unchanged = written.hash.as_deref() == Some(status.hash.as_str())
        || (store_current && work.status.clone().unwrap_or_default() == status.status);
    if unchanged && !add_finalizer {
        return Decision::Skip(Skip::Unchanged);
    }
    Decision::Write {
        add_finalizer,
        status: !unchanged,
    }
}

/// Tuning of the writers.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Writer tasks (at least one).
    pub writers: usize,
    /// Works each writer's queue holds before offers wait.
    pub queue: usize,
    /// Attempts per write on transient failures.
    pub attempts: u32,
    /// Pause before the second attempt; doubled for each further one.
    pub retry_delay: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            // Each first status is two requests (finalizer, status) to an apiserver that may
            // answer in a tenth of a second under load: at 4 writers, 10,000 works fanned out
            // at once were written at about 15 a second.
            writers: 16,
            queue: 256,
            attempts: 4,
            retry_delay: Duration::from_millis(100),
        }
    }
}

/// The slots and the writers' queues; clones share them.
#[derive(Clone)]
pub struct StatusWriter {
    inner: Arc<Inner>,
}

struct Inner {
    slots: Mutex<HashMap<String, Slot>>,
    queues: Vec<mpsc::Sender<String>>,
    metrics: Arc<HubMetrics>,
}

impl std::fmt::Debug for StatusWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusWriter")
            .field("writers", &self.inner.queues.len())
            .finish_non_exhaustive()
    }
}

impl StatusWriter {
    /// Starts the writers, which write through `client` what they find in `works` until
    /// `cancel`.
    pub fn start(
        client: Client,
        works: Store<ManifestWork>,
        metrics: Arc<HubMetrics>,
        config: WriterConfig,
        cancel: CancellationToken,
    ) -> Self {
        let mut queues = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..config.writers.max(1) {
            let (queue, receiver) = mpsc::channel(config.queue.max(1));
            queues.push(queue);
            receivers.push(receiver);
        }
        let writer = Self {
            inner: Arc::new(Inner {
                slots: Mutex::default(),
                queues,
                metrics,
            }),
        };
        for receiver in receivers {
            tokio::spawn(writer.clone().run(
                client.clone(),
                works.clone(),
                receiver,
                config,
                cancel.clone(),
            ));
        }
        writer
    }

    /// Takes `status` for writing; waits only when its writer's queue is full. Errors only when
    /// the writers have stopped.
    pub async fn submit(&self, status: PendingStatus) -> Result<(), tonic::Status> {
        let uid = status.uid.clone();
        let offered = {
            let mut slots = self.slots();
            offer(slots.entry(uid.clone()).or_default(), status)
        };
        match offered {
            Offered::Queue => {
                let queue = &self.inner.queues[shard(&uid, self.inner.queues.len())];
                queue
                    .send(uid)
                    .await
                    .map_err(|_| tonic::Status::unavailable("the hub is stopping"))?;
            }
            Offered::Replaced => self.inner.metrics.skipped_status(Skip::Coalesced.as_str()),
            Offered::Pending => {}
            Offered::Skipped(skip) => self.inner.metrics.skipped_status(skip.as_str()),
        }
        Ok(())
    }

    /// The hash of the last status written for `uid` (or found already stored), as the agent
    /// sent it.
    pub fn last_hash(&self, uid: &str) -> Option<String> {
        self.slots()
            .get(uid)
            .and_then(|slot| slot.last_hash.clone())
    }

    /// Forgets a work that is gone.
    pub fn forget(&self, uid: &str) {
        self.slots().remove(uid);
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.inner
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn run(
        self,
        client: Client,
        works: Store<ManifestWork>,
        mut queue: mpsc::Receiver<String>,
        config: WriterConfig,
        cancel: CancellationToken,
    ) {
        loop {
            let uid = tokio::select! {
                () = cancel.cancelled() => return,
                uid = queue.recv() => match uid {
                    Some(uid) => uid,
                    None => return,
                },
            };
            let taken = {
                let mut slots = self.slots();
                slots.get_mut(&uid).and_then(|slot| {
                    slot.queued = false;
                    let written = Written {
                        hash: slot.last_hash.clone(),
                        version: slot.written_version.clone(),
                    };
                    slot.pending.take().map(|p| (p, written))
                })
            };
            let Some((status, written)) = taken else {
                continue;
            };
            let outcome = tokio::select! {
                () = cancel.cancelled() => return,
                outcome = write(&client, &works, &status, &written, config) => outcome,
            };
            self.record(&status, outcome);
        }
    }

    fn record(&self, status: &PendingStatus, outcome: Outcome) {
        let metrics = &self.inner.metrics;
        let (cluster, work) = (status.cluster.as_str(), status.name.as_str());
        let mut slots = self.slots();
        let slot = slots.get_mut(&status.uid);
        match outcome {
            Outcome::Written { version } => {
                metrics.work_status_writes.inc();
                tracing::debug!(
                    cluster,
                    work,
                    generation = status.generation,
                    "status written"
                );
                if let Some(slot) = slot {
                    slot.last_hash = Some(status.hash.clone());
                    slot.written_version = version;
                    slot.failures = 0;
                }
            }
            Outcome::Finalized => {
                tracing::info!(
                    cluster,
                    work,
                    "agent deleted the work's resources; finalizer removed"
                );
            }
            Outcome::FinalizerOnly { version } => {
                metrics.skipped_status(Skip::Unchanged.as_str());
                if let Some(slot) = slot {
                    slot.last_hash = Some(status.hash.clone());
                    slot.written_version = version;
                    slot.failures = 0;
                }
            }
            Outcome::Skipped(skip) => {
                metrics.skipped_status(skip.as_str());
                match (skip, slot) {
                    (Skip::Unchanged, Some(slot)) if !status.deleted => {
                        slot.last_hash = Some(status.hash.clone());
                    }
                    // The work went away between the offer and the write: nothing to keep.
                    (Skip::Gone, Some(slot)) if slot.pending.is_none() => {
                        slots.remove(&status.uid);
                    }
                    (Skip::NotDeleting, _) => {
                        tracing::warn!(
                            cluster,
                            work,
                            "ignored Deleted=True for a work that is not being deleted"
                        );
                    }
                    _ => {}
                }
            }
            Outcome::Failed(reason) => {
                metrics.work_status_write_failures.inc();
                let Some(slot) = slot else {
                    tracing::warn!(cluster, work, generation = status.generation, error = %reason, "status not written");
                    return;
                };
                // Kept for another try, unless a newer status has come meanwhile.
                if slot.pending.is_none() {
                    slot.pending = Some(status.clone());
                }
                slot.failures = slot.failures.saturating_add(1);
                let delay = retry_delay(slot.failures);
                tracing::warn!(cluster, work, generation = status.generation, error = %reason, retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "status not written; trying again");
                if !slot.queued {
                    slot.queued = true;
                    let queue =
                        self.inner.queues[shard(&status.uid, self.inner.queues.len())].clone();
                    let uid = status.uid.clone();
                    drop(slots);
                    // Ends with the writers: a closed queue refuses the send.
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = queue.send(uid).await;
                    });
                }
            }
        }
    }
}

/// Which writer a work belongs to.
fn shard(uid: &str, writers: usize) -> usize {
    use std::hash::{BuildHasher as _, BuildHasherDefault, DefaultHasher};
    let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(uid);
    usize::try_from(hash % writers.max(1) as u64).unwrap_or_default()
}

/// What a write did.
#[derive(Debug)]
enum Outcome {
    Written {
        version: Option<String>,
    },
    /// Only the finalizer was added; the status was already there.
    FinalizerOnly {
        version: Option<String>,
    },
    Finalized,
    Skipped(Skip),
    Failed(String),
}

/// The work the status is for, as the hub's cache holds it.
pub fn find_work(
    works: &Store<ManifestWork>,
    cluster: &str,
    name: &str,
    uid: &str,
) -> Option<Arc<ManifestWork>> {
    let same = |w: &ManifestWork| {
        w.metadata.uid.as_deref() == Some(uid) && w.metadata.namespace.as_deref() == Some(cluster)
    };
    works
        .get(&ObjectRef::new(name).within(cluster))
        .filter(|w| same(w))
        .or_else(|| works.find(|w| same(w)))
}

async fn write(
    client: &Client,
    works: &Store<ManifestWork>,
    status: &PendingStatus,
    written: &Written,
    config: WriterConfig,
) -> Outcome {
    let api: Api<ManifestWork> = Api::namespaced(client.clone(), &status.cluster);
    let mut delay = config.retry_delay;
    let mut current = find_work(works, &status.cluster, &status.name, &status.uid)
        .map(|w| ManifestWork::clone(&w));
    let mut last_error = String::new();
    for attempt in 0..config.attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
            // The cache may be behind a conflicting write: read the work itself.
            current = match api.get_opt(&status.name).await {
                Ok(found) => found.filter(|w| w.metadata.uid.as_deref() == Some(&status.uid)),
                Err(err) => {
                    last_error = err.to_string();
                    continue;
                }
            };
        }
        let Some(work) = &current else {
            return Outcome::Skipped(Skip::Gone);
        };
        match attempt_write(&api, work, status, written).await {
            Ok(outcome) => return outcome,
            Err(err) if retriable(&err) => last_error = err.to_string(),
            Err(err) if is_not_found(&err) => return Outcome::Skipped(Skip::Gone),
            Err(err) => return Outcome::Failed(err.to_string()),
        }
    }
    Outcome::Failed(last_error)
}

async fn attempt_write(
    api: &Api<ManifestWork>,
    work: &ManifestWork,
    status: &PendingStatus,
    written: &Written,
) -> Result<Outcome, ocm_api::kube::Error> {
    match decide(work, status, written) {
        Decision::Skip(skip) => Ok(Outcome::Skipped(skip)),
        Decision::RemoveFinalizer => {
            let kept: Vec<&String> = work
                .metadata
                .finalizers
                .iter()
                .flatten()
                .filter(|f| *f != MANIFEST_WORK_FINALIZER)
                .collect();
            patch_finalizers(api, work, &kept).await?;
            Ok(Outcome::Finalized)
        }
        Decision::Write {
            add_finalizer,
            status: write_status,
        } => {
            let mut version = work.metadata.resource_version.clone();
            if add_finalizer {
                let mut finalizers: Vec<&String> =
                    work.metadata.finalizers.iter().flatten().collect();
                let ours = MANIFEST_WORK_FINALIZER.to_owned();
                finalizers.push(&ours);
                version = patch_finalizers(api, work, &finalizers).await?;
            }
            if !write_status {
                return Ok(Outcome::FinalizerOnly { version });
            }
            let patched = api
                .patch_status(
                    &status.name,
                    &PatchParams::default(),
                    &Patch::Merge(status_patch(&status.status)),
                )
                .await?;
            Ok(Outcome::Written {
                version: patched.metadata.resource_version,
            })
        }
    }
}

/// A merge patch replacing the whole status: lists replace lists, and empty ones are written
/// out so that nothing of the previous status survives.
pub fn status_patch(status: &ManifestWorkStatus) -> serde_json::Value {
    serde_json::json!({
        "status": {
            "conditions": &status.conditions,
            "resourceStatus": {"manifests": &status.resource_status.manifests},
        }
    })
}

/// Sets the work's finalizers, guarded by the resourceVersion it was read at (a Conflict means
/// someone else changed it first). Returns the new resourceVersion.
async fn patch_finalizers(
    api: &Api<ManifestWork>,
    work: &ManifestWork,
    finalizers: &[&String],
) -> Result<Option<String>, ocm_api::kube::Error> {
    let name = work.metadata.name.as_deref().unwrap_or_default();
    let patch = serde_json::json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": work.metadata.resource_version,
        }
    });
    let patched = api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(patched.metadata.resource_version)
}

fn retriable(err: &ocm_api::kube::Error) -> bool {
    match err {
        ocm_api::kube::Error::Api(status) => {
            status.code == 409 || status.code == 429 || status.code >= 500
        }
        // Connection trouble.
        _ => true,
    }
}

fn is_not_found(err: &ocm_api::kube::Error) -> bool {
    matches!(err, ocm_api::kube::Error::Api(status) if status.code == 404)
}

#[cfg(test)]
mod tests {
    use ocm_api::condition::{Condition, ConditionStatus};
    use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    use super::*;

    fn status(hash: &str, step: Option<u16>) -> PendingStatus {
        PendingStatus {
            cluster: "cluster1".into(),
            name: "web".into(),
            uid: "uid-1".into(),
            generation: 2,
            hash: hash.into(),
            sequence: step.map(|s| SequenceId::from_parts(1_000, 1, s)),
            status: ManifestWorkStatus::default(),
            deleted: false,
        }
    }

    fn deleted(step: u16) -> PendingStatus {
        PendingStatus {
            deleted: true,
            ..status("d", Some(step))
        }
    }

    #[test]
    fn a_burst_for_one_work_queues_it_once_and_keeps_the_latest() {
        let mut slot = Slot::default();
        assert_eq!(offer(&mut slot, status("a", Some(1))), Offered::Queue);
        assert_eq!(offer(&mut slot, status("b", Some(2))), Offered::Replaced);
        assert_eq!(offer(&mut slot, status("c", Some(3))), Offered::Replaced);
        assert_eq!(slot.pending.as_ref().unwrap().hash, "c");
        // The writer takes it; the next status queues the work again.
        slot.queued = false;
        slot.pending = None;
        assert_eq!(offer(&mut slot, status("d", Some(4))), Offered::Queue);
    }

    #[test]
    fn an_older_sequence_id_never_replaces_a_newer_one() {
        let mut slot = Slot::default();
        offer(&mut slot, status("new", Some(9)));
        assert_eq!(
            offer(&mut slot, status("old", Some(3))),
            Offered::Skipped(Skip::Outdated)
        );
        assert_eq!(slot.pending.as_ref().unwrap().hash, "new");
        // Written since: still older than what was taken.
        slot.pending = None;
        slot.queued = false;
        assert_eq!(
            offer(&mut slot, status("old", Some(3))),
            Offered::Skipped(Skip::Outdated)
        );
        // IDs that do not compare leave arrival order to decide.
        assert_eq!(offer(&mut slot, status("plain", None)), Offered::Queue);
        let other_node = PendingStatus {
            sequence: Some(SequenceId::from_parts(1, 7, 0)),
            ..status("other", None)
        };
        assert_eq!(offer(&mut slot, other_node), Offered::Replaced);
    }

    #[test]
    fn the_last_written_hash_costs_nothing_unless_another_status_is_pending() {
        let mut slot = Slot {
            last_hash: Some("a".into()),
            ..Slot::default()
        };
        assert_eq!(
            offer(&mut slot, status("a", Some(1))),
            Offered::Skipped(Skip::Unchanged)
        );
        assert_eq!(offer(&mut slot, status("b", Some(2))), Offered::Queue);
        // Back to "a" while "b" waits: "a" is the latest and must be written.
        assert_eq!(offer(&mut slot, status("a", Some(3))), Offered::Replaced);
        assert_eq!(slot.pending.as_ref().unwrap().hash, "a");
    }

    #[test]
    fn deleted_is_never_displaced_and_always_taken() {
        let mut slot = Slot::default();
        assert_eq!(offer(&mut slot, status("a", Some(5))), Offered::Queue);
        // Even with an older ID, the agent's Deleted is taken.
        assert_eq!(offer(&mut slot, deleted(1)), Offered::Replaced);
        assert_eq!(
            offer(&mut slot, status("late", Some(9))),
            Offered::Skipped(Skip::Outdated)
        );
        assert!(slot.pending.as_ref().unwrap().deleted);
    }

    fn work(generation: i64, finalizers: &[&str], deleting: bool) -> ManifestWork {
        ManifestWork {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("cluster1".into()),
                uid: Some("uid-1".into()),
                generation: Some(generation),
                resource_version: Some("10".into()),
                finalizers: (!finalizers.is_empty())
                    .then(|| finalizers.iter().map(|f| (*f).to_owned()).collect()),
                deletion_timestamp: deleting.then_some(Time(jiff::Timestamp::UNIX_EPOCH)),
                ..ObjectMeta::default()
            },
            ..ManifestWork::default()
        }
    }

    fn applied() -> ManifestWorkStatus {
        ManifestWorkStatus {
            conditions: vec![Condition {
                r#type: "Applied".into(),
                status: ConditionStatus::True,
                observed_generation: Some(2),
                last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
                reason: "AppliedManifestWorkComplete".into(),
                message: String::new(),
            }],
            ..ManifestWorkStatus::default()
        }
    }

    #[test]
    fn the_first_status_adds_the_finalizer_and_writes() {
        let first = PendingStatus {
            status: applied(),
            ..status("a", Some(1))
        };
        assert_eq!(
            decide(&work(2, &[], false), &first, &Written::default()),
            Decision::Write {
                add_finalizer: true,
                status: true
            }
        );
        assert_eq!(
            decide(
                &work(2, &["other", MANIFEST_WORK_FINALIZER], false),
                &first,
                &Written::default()
            ),
            Decision::Write {
                add_finalizer: false,
                status: true
            }
        );
        // A work being deleted cannot take a new finalizer; its status is still written.
        assert_eq!(
            decide(&work(2, &[], true), &first, &Written::default()),
            Decision::Write {
                add_finalizer: false,
                status: true
            }
        );
    }

    #[test]
    fn stale_and_unchanged_statuses_are_skipped() {
        let finalized = work(3, &[MANIFEST_WORK_FINALIZER], false);
        let report = PendingStatus {
            status: applied(),
            ..status("a", Some(1))
        };
        assert_eq!(
            decide(&finalized, &report, &Written::default()),
            Decision::Skip(Skip::Stale)
        );
        let finalized = work(2, &[MANIFEST_WORK_FINALIZER], false);
        let same_hash = Written {
            hash: Some("a".into()),
            version: Some("99".into()),
        };
        assert_eq!(
            decide(&finalized, &report, &same_hash),
            Decision::Skip(Skip::Unchanged)
        );
        // A restarted hub finds the status already stored.
        let mut stored = finalized.clone();
        stored.status = Some(applied());
        assert_eq!(
            decide(&stored, &report, &Written::default()),
            Decision::Skip(Skip::Unchanged)
        );
        // ...but not while its cache is older than its own last write.
        let behind = Written {
            hash: Some("b".into()),
            version: Some("11".into()),
        };
        assert_eq!(
            decide(&stored, &report, &behind),
            Decision::Write {
                add_finalizer: false,
                status: true
            }
        );
        // Newer generations than the work's are the agent running ahead of the cache: written.
        let ahead = PendingStatus {
            generation: 5,
            ..report
        };
        assert!(matches!(
            decide(&finalized, &ahead, &Written::default()),
            Decision::Write { status: true, .. }
        ));
    }

    #[test]
    fn deleted_removes_only_our_finalizer_whatever_the_generation() {
        assert_eq!(
            decide(
                &work(9, &[MANIFEST_WORK_FINALIZER], true),
                &deleted(1),
                &Written::default()
            ),
            Decision::RemoveFinalizer
        );
        assert_eq!(
            decide(&work(9, &["other"], true), &deleted(1), &Written::default()),
            Decision::Skip(Skip::Unchanged)
        );
    }

    #[test]
    fn failed_writes_are_tried_again_later_each_time() {
        let delays: Vec<u64> = (1..=7).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
    }

    #[test]
    fn deleted_is_ignored_for_a_work_nobody_deletes() {
        assert_eq!(
            decide(
                &work(9, &[MANIFEST_WORK_FINALIZER], false),
                &deleted(1),
                &Written::default()
            ),
            Decision::Skip(Skip::NotDeleting)
        );
    }

    #[test]
    fn the_patch_replaces_the_whole_status() {
        assert_eq!(
            status_patch(&ManifestWorkStatus::default()),
            serde_json::json!({"status": {"conditions": [], "resourceStatus": {"manifests": []}}})
        );
        let patch = status_patch(&applied());
        assert_eq!(patch["status"]["conditions"][0]["type"], "Applied");
    }

    #[test]
    fn a_work_always_goes_to_the_same_writer() {
        for writers in 1..6 {
            let first = shard("uid-1", writers);
            assert!(first < writers);
            assert_eq!(shard("uid-1", writers), first);
        }
    }
}
