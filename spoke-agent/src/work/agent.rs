//! The work agent's loop (after OCM's work agent over gRPC): ManifestWorks
//! arrive as manifestbundle spec events on the agent's connection, are kept in memory, applied
//! by [`Applier`] (a few at a time, one work never twice at once), and their status goes back
//! as a status event whenever it differs from the last one sent.
//!
//! Status follows the spoke within about a second: every kind a work applied is watched, and a
//! change of one of its objects re-runs that work (an edit is put back, feedback re-read). A
//! slow periodic pass catches anything a watch missed. A work the hub deletes has its resources
//! removed, then `Deleted=True` is reported and the work forgotten. After every
//! (re)subscription the agent asks the hub for what changed since the generations it holds.
//! AppliedManifestWorks of works the hub no longer has are evicted after a grace period.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use ocm_api::condition::{Condition, ConditionStatus};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use ocm_api::k8s_openapi::jiff::Timestamp;
use ocm_api::kube::Api;
use ocm_api::kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use ocm_api::kube::runtime::{WatchStreamExt as _, watcher};
use ocm_api::work::v1::{
    AppliedManifestWork, CONDITION_DELETED, ManifestWork, ManifestWorkStatus,
    REASON_MANIFESTS_DELETED,
};
use ocm_transport::client::Publisher;
use ocm_transport::event::CloudEvent;
use ocm_transport::event_type::{DataType, EventAction, EventType, SubResource};
use ocm_transport::resync::{
    ResourceVersion, ResourceVersionList, StatusHashList, plan_status_resync,
};
use ocm_transport::sequence_id::SequenceIdGenerator;
use ocm_transport::work as codec;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::cache::{CachedWork, WorkCache, Written};
use super::reconcile::{Applier, WorkOutcome};
use crate::health::{AgentHealth, Loop, WORK_LOOP_TICK, WorkTrigger};

/// How the work agent runs.
#[derive(Debug, Clone)]
pub struct WorkAgentConfig {
    pub cluster: String,
    /// The `source` of this agent's status events (OCM: the klusterlet's agent ID).
    pub agent_id: String,
    /// Works reconciled at once.
    pub concurrency: usize,
    /// The slow pass over every work, besides the watches.
    pub resync_every: Duration,
    /// How long an AppliedManifestWork the hub no longer knows is kept (OCM: 60 minutes).
    pub eviction_grace: Duration,
    /// Changes seen by watches within this window are handled together.
    pub settle: Duration,
    /// Where the works held are remembered across restarts; `None` forgets them.
    pub cache: Option<WorkCache>,
    /// Where the loop shows it turns, and what it counts.
    pub health: Arc<AgentHealth>,
}

impl WorkAgentConfig {
    pub fn new(cluster: &str, agent_id: &str) -> Self {
        Self {
            cluster: cluster.to_owned(),
            agent_id: agent_id.to_owned(),
            concurrency: 4,
            resync_every: Duration::from_secs(60),
            eviction_grace: Duration::from_secs(3600),
            settle: Duration::from_millis(100),
            cache: None,
            health: Arc::default(),
        }
    }
}

/// What reaches the work agent from the connection.
#[derive(Debug)]
pub struct WorkInbox {
    /// manifestbundle events of this cluster.
    pub events: mpsc::Receiver<CloudEvent>,
    /// After every (re)subscription to manifestbundles.
    pub resync: mpsc::Receiver<()>,
}

struct Entry {
    work: ManifestWork,
    /// The status hash last sent, so an unchanged status is not sent again.
    sent: Option<String>,
    running: bool,
    /// Changed while running: run again after.
    again: bool,
    /// What the cache holds for it.
    written: Option<Written>,
}

/// A resource a work applied, as watches report it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ResourceKey {
    group: String,
    resource: String,
    namespace: String,
    name: String,
}

struct Finished {
    uid: String,
    result: Result<Done, String>,
}

enum Done {
    Applied {
        status: ManifestWorkStatus,
        sent: Option<String>,
        retry: Option<Duration>,
        kinds: Vec<ApiResource>,
        written: Option<Written>,
    },
    Deleted,
    Deleting,
}

/// Runs until `cancel` or until the inbox closes.
pub async fn run(
    applier: Applier,
    hub: Publisher,
    mut inbox: WorkInbox,
    config: WorkAgentConfig,
    cancel: CancellationToken,
) {
    let sequence = Arc::new(SequenceIdGenerator::default());
    let mut works: HashMap<String, Entry> = HashMap::new();
    let mut due: HashMap<String, Instant> = HashMap::new();
    let mut index: HashMap<ResourceKey, BTreeSet<String>> = HashMap::new();
    let mut watched: HashSet<(String, String, String)> = HashSet::new();
    let (changed_tx, mut changed) = mpsc::channel::<ResourceKey>(1024);
    let mut running: JoinSet<Finished> = JoinSet::new();
    let mut slow_pass = tokio::time::interval(config.resync_every);
    slow_pass.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut eviction = tokio::time::interval(Duration::from_secs(60));
    eviction.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When the last spec resync the hub took was sent; `None` until one succeeds after the
    // latest (re)subscription. Eviction waits for it: after a resync that failed (the hub not
    // ready, a broken stream) every work would look unknown, and its resources be deleted.
    let mut synced_at: Option<Instant> = None;
    let mut resync = ResyncRetry::default();
    let mut deleted_recently = Forgotten::default();
    // What made each work due (for the latency metrics), until its next pass starts.
    let mut triggers: HashMap<String, WorkTrigger> = HashMap::new();
    let health = Arc::clone(&config.health);
    let _vital = health.guard(
        Loop::WorkAgent,
        health.stall_limit(WORK_LOOP_TICK),
        Some(cancel.clone()),
    );
    let mut vital_tick = tokio::time::interval(WORK_LOOP_TICK);
    if let Some(cache) = &config.cache {
        for cached in remembered(cache, &config).await {
            let uid = cached.work.metadata.uid.clone().unwrap_or_default();
            if let Some(status) = &cached.work.status {
                reindex(&mut index, &uid, status);
            }
            let written = Some(Written::of(&cached.work, cached.sent.as_deref()));
            works.insert(
                uid,
                Entry {
                    work: cached.work,
                    sent: cached.sent,
                    running: false,
                    again: false,
                    written,
                },
            );
        }
    }
    loop {
        health.beat(Loop::WorkAgent);
        // Start what is due, as far as the concurrency allows.
        let now = Instant::now();
        let ready: Vec<String> = due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in ready {
            if running.len() >= config.concurrency.max(1) {
                break;
            }
            due.remove(&uid);
            let Some(entry) = works.get_mut(&uid) else {
                continue;
            };
            if entry.running {
                entry.again = true;
                continue;
            }
            entry.running = true;
            let task = reconcile(
                applier.clone(),
                hub.clone(),
                (Arc::clone(&sequence), config.agent_id.clone()),
                entry.work.clone(),
                entry.sent.clone(),
                (config.cache.clone(), entry.written.clone()),
                (
                    triggers.remove(&uid).unwrap_or_default(),
                    Arc::clone(&health),
                ),
            );
            running.spawn(task);
        }
        // With every slot taken, what is due waits for a slot (`join_next`), not for its time:
        // sleeping until a time already past would spin.
        let next_due = if running.len() >= config.concurrency.max(1) {
            None
        } else {
            due.values().min().copied()
        };
        tokio::select! {
            () = cancel.cancelled() => break,
            event = inbox.events.recv() => {
                let Some(event) = event else { break };
                if is_status_resync_request(&event) {
                    for uid in statuses_asked_for(&mut works, &event, &config.cluster) {
                        due.insert(uid, Instant::now());
                    }
                } else if deleted_recently.is_deletion_of_forgotten(&event) {
                    // The hub announces a work's removal once more when it lets it go (after
                    // our Deleted=True): already done.
                    tracing::debug!(cluster = %config.cluster, event = %event.id, "deletion of a work already deleted");
                } else if let Some(uid) = receive(&mut works, &event, &config.cluster) {
                    triggers.entry(uid.clone()).or_default().received(Instant::now());
                    due.insert(uid, Instant::now());
                }
            }
            cue = inbox.resync.recv() => {
                if cue.is_none() {
                    break;
                }
                synced_at = None;
                resync = ResyncRetry::default();
                if ask_for_changes(&hub, &works, &config).await {
                    synced_at = Some(Instant::now());
                } else {
                    resync.failed();
                }
            }
            () = sleep_until(resync.at) => {
                if ask_for_changes(&hub, &works, &config).await {
                    synced_at = Some(Instant::now());
                    resync = ResyncRetry::default();
                } else {
                    resync.failed();
                }
            }
            Some(key) = changed.recv() => {
                for uid in index.get(&key).into_iter().flatten() {
                    triggers.entry(uid.clone()).or_default().changed(Instant::now());
                    let at = Instant::now() + config.settle;
                    due.entry(uid.clone()).and_modify(|d| *d = (*d).min(at)).or_insert(at);
                }
            }
            Some(finished) = running.join_next() => {
                let Ok(finished) = finished else { continue };
                let uid = finished.uid.clone();
                let Some(entry) = works.get_mut(&uid) else { continue };
                entry.running = false;
                match finished.result {
                    Ok(Done::Applied { status, sent, retry, kinds, written }) => {
                        reindex(&mut index, &uid, &status);
                        entry.work.status = Some(status);
                        entry.sent = sent;
                        entry.written = written;
                        for kind in kinds {
                            if watched.insert((kind.group.clone(), kind.version.clone(), kind.plural.clone())) {
                                tokio::spawn(watch_kind(applier.clone(), kind, changed_tx.clone(), cancel.clone()));
                            }
                        }
                        if let Some(retry) = retry {
                            due.entry(uid.clone()).or_insert(Instant::now() + retry);
                        }
                    }
                    Ok(Done::Deleted) => {
                        deleted_recently.remember(&uid);
                        works.remove(&uid);
                        due.remove(&uid);
                        triggers.remove(&uid);
                        reindex(&mut index, &uid, &ManifestWorkStatus::default());
                        continue;
                    }
                    Ok(Done::Deleting) => {
                        due.insert(uid.clone(), Instant::now() + Duration::from_millis(500));
                    }
                    Err(error) => {
                        tracing::warn!(cluster = %config.cluster, work = %name_of(&entry.work), %error, "work not reconciled; retrying");
                        due.insert(uid.clone(), Instant::now() + Duration::from_secs(5));
                    }
                }
                if std::mem::take(&mut entry.again) {
                    due.insert(uid, Instant::now());
                }
            }
            _ = slow_pass.tick() => {
                let now = Instant::now();
                for uid in works.keys() {
                    due.entry(uid.clone()).or_insert(now);
                }
            }
            _ = eviction.tick() => {
                // Only once the hub has had time to answer a resync: before that every work
                // would look unknown.
                if synced_at.is_some_and(|at| at.elapsed() > Duration::from_secs(30)) {
                    let known: HashSet<String> = works.values().map(|e| name_of(&e.work)).collect();
                    evict(&applier, &config, &known).await;
                }
            }
            () = sleep_until(next_due) => {}
            _ = vital_tick.tick() => {}
        }
    }
    running.abort_all();
}

/// UIDs of the works most recently deleted and forgotten, so that the hub's last word on one
/// (the deletion it sends when it removes the ManifestWork) does not start a second deletion.
#[derive(Default)]
struct Forgotten {
    order: std::collections::VecDeque<String>,
    uids: HashSet<String>,
}

impl Forgotten {
    const KEPT: usize = 1024;

    fn remember(&mut self, uid: &str) {
        if self.uids.insert(uid.to_owned()) {
            self.order.push_back(uid.to_owned());
        }
        while self.order.len() > Self::KEPT {
            if let Some(oldest) = self.order.pop_front() {
                self.uids.remove(&oldest);
            }
        }
    }

    fn is_deletion_of_forgotten(&self, event: &CloudEvent) -> bool {
        event
            .extensions
            .contains_key(ocm_transport::event::extension::DELETION_TIMESTAMP)
            && event
                .extension_str(ocm_transport::event::extension::RESOURCE_ID)
                .is_some_and(|uid| self.uids.contains(uid))
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn name_of(work: &ManifestWork) -> String {
    work.metadata.name.clone().unwrap_or_default()
}

fn is_status_resync_request(event: &CloudEvent) -> bool {
    event.event_type.parse::<EventType>().is_ok_and(|t| {
        (t.sub_resource, t.action) == (SubResource::Status, EventAction::ResyncRequest)
    })
}

/// A source's status resync request (§5.2): the works whose status the source lacks or holds
/// with another hash are marked unsent, so their next pass sends it; their UIDs.
fn statuses_asked_for(
    works: &mut HashMap<String, Entry>,
    event: &CloudEvent,
    cluster: &str,
) -> Vec<String> {
    let listed: StatusHashList = match event.data.as_deref() {
        Some(data) if !data.is_empty() => match serde_json::from_slice(data) {
            Ok(listed) => listed,
            Err(error) => {
                tracing::warn!(%cluster, event = %event.id, %error, "status resync request refused");
                return Vec::new();
            }
        },
        _ => StatusHashList::default(),
    };
    let held = works
        .iter()
        .map(|(uid, entry)| (uid.as_str(), entry.sent.as_deref().unwrap_or_default()));
    let asked: Vec<String> = plan_status_resync(held, &listed)
        .into_iter()
        .map(str::to_owned)
        .collect();
    for uid in &asked {
        if let Some(entry) = works.get_mut(uid) {
            entry.sent = None;
        }
    }
    tracing::info!(%cluster, asked = asked.len(), held = works.len(), "the hub asked for work statuses");
    asked
}

/// Takes a spec event into the store; the UID of the work to reconcile, if any.
fn receive(
    works: &mut HashMap<String, Entry>,
    event: &CloudEvent,
    cluster: &str,
) -> Option<String> {
    let event_type = event.event_type.parse::<EventType>().ok()?;
    if event_type.sub_resource != SubResource::Spec {
        return None;
    }
    let work = match codec::decode_spec(event) {
        Ok(work) => work,
        Err(error) => {
            tracing::warn!(%cluster, event = %event.id, %error, "work event refused");
            return None;
        }
    };
    if work.metadata.namespace.as_deref() != Some(cluster) {
        tracing::warn!(%cluster, work = %name_of(&work), "work for another cluster ignored");
        return None;
    }
    let uid = work.metadata.uid.clone().unwrap_or_default();
    let generation = work.metadata.generation.unwrap_or_default();
    match works.get_mut(&uid) {
        Some(entry) => {
            if work.metadata.deletion_timestamp.is_some() {
                // A deletion carries no spec: keep the one held, mark it deleting.
                entry.work.metadata.deletion_timestamp = work.metadata.deletion_timestamp;
                entry.work.metadata.finalizers = work.metadata.finalizers;
                return Some(uid);
            }
            let held = entry.work.metadata.generation.unwrap_or_default();
            if generation != 0 && generation < held {
                tracing::debug!(%cluster, work = %name_of(&work), generation, held, "older generation ignored");
                return None;
            }
            let status = entry.work.status.take();
            entry.work = work;
            entry.work.status = status;
            Some(uid)
        }
        None => {
            if work.metadata.deletion_timestamp.is_some() && work.spec.workload.manifests.is_empty()
            {
                // Deleting a work this agent never had (after a restart): its name may still
                // find an AppliedManifestWork, so clean up what that owns.
                tracing::info!(%cluster, work = %name_of(&work), "deletion of a work not held");
            }
            works.insert(
                uid.clone(),
                Entry {
                    work,
                    sent: None,
                    running: false,
                    again: false,
                    written: None,
                },
            );
            Some(uid)
        }
    }
}

/// A spec resync that failed is sent again, 1 s after the first failure, doubling to 30 s.
#[derive(Debug, Default)]
struct ResyncRetry {
    at: Option<Instant>,
    failures: u32,
}

impl ResyncRetry {
    fn failed(&mut self) {
        let delay = Duration::from_secs(1)
            .saturating_mul(2u32.saturating_pow(self.failures))
            .min(Duration::from_secs(30));
        self.failures = self.failures.saturating_add(1);
        self.at = Some(Instant::now() + delay);
    }
}

/// The spec resync request: the generation of every work held. Whether the hub took it.
async fn ask_for_changes(
    hub: &Publisher,
    works: &HashMap<String, Entry>,
    config: &WorkAgentConfig,
) -> bool {
    let held = ResourceVersionList {
        resource_versions: works
            .iter()
            .map(|(uid, entry)| ResourceVersion {
                resource_id: uid.clone(),
                resource_version: entry.work.metadata.generation.unwrap_or_default(),
            })
            .collect(),
    };
    let event = ocm_transport::resync::spec_resync_request(
        &DataType::manifest_bundles(),
        &config.agent_id,
        &config.cluster,
        &held,
        uuid::Uuid::new_v4().to_string(),
        jiff::Timestamp::now(),
    );
    match hub.publish(&event).await {
        Ok(()) => {
            tracing::info!(cluster = %config.cluster, held = works.len(), "asked the hub for changed works");
            config.health.resync_sent(&DataType::manifest_bundles());
            true
        }
        Err(error) => {
            tracing::warn!(cluster = %config.cluster, %error, "work resync request not sent; retrying, and evicting nothing until it is");
            false
        }
    }
}

/// The works the cache remembers; none when it cannot be read (the hub then sends them all).
async fn remembered(cache: &WorkCache, config: &WorkAgentConfig) -> Vec<CachedWork> {
    match cache.load().await {
        Ok(works) => {
            tracing::info!(cluster = %config.cluster, works = works.len(), "works remembered from before the restart");
            works
        }
        Err(error) => {
            tracing::warn!(cluster = %config.cluster, %error, "work cache not readable; asking the hub for every work");
            Vec::new()
        }
    }
}

/// Writes the cache entry of `work` if what a restart needs of it changed; what it now holds.
async fn remember(
    cache: Option<&WorkCache>,
    work: &ManifestWork,
    sent: Option<&str>,
    written: Option<Written>,
) -> Option<Written> {
    let cache = cache?;
    let now = Written::of(work, sent);
    if written.as_ref() == Some(&now) {
        return written;
    }
    match cache.store(work, sent).await {
        Ok(()) => Some(now),
        Err(error) => {
            // Not fatal: after a restart the hub sends this work again.
            tracing::warn!(work = %name_of(work), %error, "work not remembered");
            written
        }
    }
}

/// Reconciles one work: applies it (or deletes what it owns) and sends its status if changed;
/// counts the pass and its latencies from `trigger` in `health`.
async fn reconcile(
    applier: Applier,
    hub: Publisher,
    (sequence, agent_id): (Arc<SequenceIdGenerator>, String),
    work: ManifestWork,
    sent: Option<String>,
    (cache, written): (Option<WorkCache>, Option<Written>),
    (trigger, health): (WorkTrigger, Arc<AgentHealth>),
) -> Finished {
    let uid = work.metadata.uid.clone().unwrap_or_default();
    let name = name_of(&work);
    if work.metadata.deletion_timestamp.is_some() {
        let result = match applier.delete(&name).await {
            Ok(true) => {
                let mut done = work.clone();
                done.status = Some(ManifestWorkStatus {
                    conditions: vec![Condition {
                        r#type: CONDITION_DELETED.to_owned(),
                        status: ConditionStatus::True,
                        observed_generation: work.metadata.generation,
                        last_transition_time: Time(Timestamp::now()),
                        reason: REASON_MANIFESTS_DELETED.to_owned(),
                        message: "The resources of the work are deleted".to_owned(),
                    }],
                    ..ManifestWorkStatus::default()
                });
                match send_status(&hub, &sequence, &agent_id, &done).await {
                    Ok(_) => {
                        if let Some(cache) = &cache
                            && let Err(error) = cache.forget(&uid).await
                        {
                            tracing::warn!(work = %name, %error, "deleted work not forgotten");
                        }
                        health.work_applied("deleted", &trigger);
                        Ok(Done::Deleted)
                    }
                    Err(error) => Err(error),
                }
            }
            Ok(false) => Ok(Done::Deleting),
            Err(error) => Err(error.to_string()),
        };
        return Finished { uid, result };
    }
    let result = match applier.apply(&work).await {
        Ok(WorkOutcome {
            status,
            retry_after,
            ..
        }) => {
            let outcome = if retry_after.is_some() {
                "failed"
            } else {
                "applied"
            };
            health.work_applied(outcome, &trigger);
            let kinds = kinds_of(&applier, &work).await;
            let mut reported = work.clone();
            reported.status = Some(status.clone());
            let hash = ocm_transport::status_hash::status_hash(
                &serde_json::to_value(&status).unwrap_or_default(),
            );
            let sent = if sent.as_deref() == Some(hash.as_str()) {
                sent
            } else {
                match send_status(&hub, &sequence, &agent_id, &reported).await {
                    Ok(hash) => {
                        health.work_status_published(&trigger);
                        Some(hash)
                    }
                    // Not sent: try again on the next pass.
                    Err(error) => {
                        tracing::warn!(work = %name, %error, "status not sent");
                        None
                    }
                }
            };
            let retry = retry_after
                .into_iter()
                .chain(sent.is_none().then_some(super::reconcile::FAILURE_RETRY))
                .min();
            let written = remember(cache.as_ref(), &reported, sent.as_deref(), written).await;
            Ok(Done::Applied {
                status,
                sent,
                retry,
                kinds,
                written,
            })
        }
        Err(error) => {
            health.work_applied("failed", &trigger);
            Err(error.to_string())
        }
    };
    Finished { uid, result }
}

/// The kinds a work's manifests are of, to watch.
async fn kinds_of(applier: &Applier, work: &ManifestWork) -> Vec<ApiResource> {
    let mut kinds = Vec::new();
    for manifest in &work.spec.workload.manifests {
        if let Ok(gvk) = super::apply::kind_of(&manifest.0)
            && let Ok((resource, _)) = applier.resolver().resolve(applier.client(), &gvk).await
        {
            kinds.push(resource);
        }
    }
    kinds
}

/// Sends `work`'s status; its hash.
async fn send_status(
    hub: &Publisher,
    sequence: &SequenceIdGenerator,
    agent_id: &str,
    work: &ManifestWork,
) -> Result<String, String> {
    let event = codec::encode_status(
        work,
        agent_id,
        EventAction::UpdateRequest,
        sequence.next_id(),
        uuid::Uuid::new_v4().to_string(),
        jiff::Timestamp::now(),
    )
    .map_err(|e| e.to_string())?;
    let hash = event
        .extension_str(ocm_transport::event::extension::STATUS_HASH)
        .unwrap_or_default()
        .to_owned();
    hub.publish(&event).await.map_err(|e| e.to_string())?;
    tracing::debug!(work = %name_of(work), "status sent");
    Ok(hash)
}

/// Points each resource of `status` at the work `uid` (and forgets what it no longer has).
fn reindex(
    index: &mut HashMap<ResourceKey, BTreeSet<String>>,
    uid: &str,
    status: &ManifestWorkStatus,
) {
    for works in index.values_mut() {
        works.remove(uid);
    }
    index.retain(|_, works| !works.is_empty());
    for manifest in &status.resource_status.manifests {
        let meta = &manifest.resource_meta;
        if meta.resource.is_empty() || meta.name.is_empty() {
            continue;
        }
        index
            .entry(ResourceKey {
                group: meta.group.clone(),
                resource: meta.resource.clone(),
                namespace: meta.namespace.clone(),
                name: meta.name.clone(),
            })
            .or_default()
            .insert(uid.to_owned());
    }
}

/// Watches every object of one kind; reports which changed.
async fn watch_kind(
    applier: Applier,
    kind: ApiResource,
    changed: mpsc::Sender<ResourceKey>,
    cancel: CancellationToken,
) {
    let api: Api<DynamicObject> = Api::all_with(applier.client().clone(), &kind);
    let stream = watcher::watcher(api, watcher::Config::default().any_semantic()).default_backoff();
    futures::pin_mut!(stream);
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => return,
            event = stream.next() => event,
        };
        let Some(event) = event else { return };
        let objects = match event {
            // The listing counts too (the first, and every re-list after an interruption): an
            // object may have changed between a work's apply and this watch's start, or while
            // the watch was down, and no other event would tell.
            Ok(
                watcher::Event::Apply(object)
                | watcher::Event::Delete(object)
                | watcher::Event::InitApply(object),
            ) => vec![object],
            Ok(watcher::Event::Init | watcher::Event::InitDone) => continue,
            Err(error) => {
                tracing::debug!(kind = %kind.plural, %error, "watch interrupted");
                continue;
            }
        };
        for object in objects {
            let key = ResourceKey {
                group: kind.group.clone(),
                resource: kind.plural.clone(),
                namespace: object.metadata.namespace.clone().unwrap_or_default(),
                name: object.metadata.name.clone().unwrap_or_default(),
            };
            if changed.send(key).await.is_err() {
                return;
            }
        }
    }
}

/// Marks AppliedManifestWorks of works the hub no longer has (or of another hub) for eviction,
/// clears the mark of those that came back, and deletes those marked longer than the grace.
async fn evict(applier: &Applier, config: &WorkAgentConfig, known: &HashSet<String>) {
    let api: Api<AppliedManifestWork> = Api::all(applier.client().clone());
    let Ok(list) = api.list(&ListParams::default()).await else {
        return;
    };
    let own_hash = applier.applied_name("");
    let own_hash = own_hash.trim_end_matches('-');
    let now = Timestamp::now();
    for applied in list.items {
        if applied.spec.agent_id != config.agent_id {
            continue;
        }
        let name = applied.metadata.name.clone().unwrap_or_default();
        let work = applied.spec.manifest_work_name.clone();
        let orphaned = applied.spec.hub_hash != own_hash || !known.contains(&work);
        let started = applied
            .status
            .as_ref()
            .and_then(|s| s.eviction_start_time.clone());
        match (orphaned, started) {
            (false, Some(_)) => {
                let _ = api
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(serde_json::json!({"status": {"evictionStartTime": null}})),
                    )
                    .await;
            }
            (true, None) => {
                tracing::info!(cluster = %config.cluster, work = %work, grace_s = config.eviction_grace.as_secs(), "the hub no longer has this work; evicting it after the grace period");
                let _ = api
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(
                            serde_json::json!({"status": {"evictionStartTime": Time(now)}}),
                        ),
                    )
                    .await;
            }
            (true, Some(Time(started)))
                if now.duration_since(started).unsigned_abs() >= config.eviction_grace =>
            {
                tracing::warn!(cluster = %config.cluster, work = %work, "evicting: deleting what the work applied");
                if let Err(error) = applier.delete_applied(&name, &work).await {
                    tracing::warn!(cluster = %config.cluster, work = %work, %error, "eviction not finished");
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocm_transport::event::ExtensionValue;

    fn deletion_of(uid: &str) -> CloudEvent {
        let mut event = CloudEvent::default();
        event.extensions.insert(
            ocm_transport::event::extension::RESOURCE_ID.to_owned(),
            ExtensionValue::String(uid.to_owned()),
        );
        event.extensions.insert(
            ocm_transport::event::extension::DELETION_TIMESTAMP.to_owned(),
            ExtensionValue::Timestamp(Timestamp::UNIX_EPOCH),
        );
        event
    }

    #[test]
    fn a_deletion_of_a_work_just_deleted_is_recognised_and_the_memory_is_bounded() {
        let mut forgotten = Forgotten::default();
        forgotten.remember("first");
        assert!(forgotten.is_deletion_of_forgotten(&deletion_of("first")));
        assert!(!forgotten.is_deletion_of_forgotten(&deletion_of("other")));
        let mut update = deletion_of("first");
        update
            .extensions
            .remove(ocm_transport::event::extension::DELETION_TIMESTAMP);
        assert!(
            !forgotten.is_deletion_of_forgotten(&update),
            "a work created again with the same UID is not a deletion"
        );
        for i in 0..Forgotten::KEPT {
            forgotten.remember(&format!("uid-{i}"));
        }
        assert!(!forgotten.is_deletion_of_forgotten(&deletion_of("first")));
        assert_eq!(forgotten.uids.len(), Forgotten::KEPT);
    }

    #[test]
    fn a_failed_resync_is_retried_sooner_then_later() {
        let mut retry = ResyncRetry::default();
        assert!(retry.at.is_none());
        let mut delays = Vec::new();
        for _ in 0..7 {
            let before = Instant::now();
            retry.failed();
            delays.push(retry.at.unwrap().duration_since(before).as_secs());
        }
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
    }
}
