//! The ManifestWorks of one simulated spoke. What the hub sends is "applied" to the in-memory
//! cluster — each manifest's live object is the manifest as a healthy cluster would show it
//! (a Deployment with its replicas ready, a Job complete) — and the status is built with the
//! agent's own code ([`ocm_spoke_agent::work::status::work_status`]: per-manifest conditions,
//! feedback rules, condition rules, the work's summary) and sent with the agent's own codec and
//! sequence IDs, only when its hash changed, as `ocm-agent` does. Spec and status resyncs
//! follow the agent too: after every subscription the spoke lists the generations it holds, and
//! a status resync request resends every status whose hash the hub lacks.
//!
//! A work received again at a generation already applied is a **redundant re-apply** (a real
//! agent would read every object again): the hub-restart scenario counts them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ocm_api::condition::{Condition, ConditionStatus};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use ocm_api::kube::api::{ApiResource, GroupVersionKind};
use ocm_api::work::v1::{
    CONDITION_DELETED, ManifestWork, ManifestWorkStatus, REASON_MANIFESTS_DELETED,
};
use ocm_spoke_agent::work::reconcile::{apply_order, resource_meta};
use ocm_spoke_agent::work::status::{self, Applied, Live, ManifestOutcome};
use ocm_transport::event::CloudEvent;
use ocm_transport::event_type::{DataType, EventAction, EventType, SubResource};
use ocm_transport::resync::{
    ResourceVersion, ResourceVersionList, StatusHashList, plan_status_resync,
};
use ocm_transport::sequence_id::SequenceIdGenerator;
use ocm_transport::work as codec;
use serde_json::{Value, json};

/// The largest raw feedback value kept, as the agent's default.
const MAX_RAW: usize = 1024;

/// What the works of all spokes of a run have done, counted together.
#[derive(Debug, Default)]
pub struct WorkCounters {
    /// Works applied at a new generation.
    pub applied: AtomicU64,
    /// Works received again at a generation already applied.
    pub redundant: AtomicU64,
    /// Status updates sent.
    pub statuses_sent: AtomicU64,
    /// Works deleted.
    pub deleted: AtomicU64,
    /// Events refused (undecodable, or for another cluster).
    pub refused: AtomicU64,
    /// Spec resync requests sent (one per subscription of the works).
    pub resyncs: AtomicU64,
    /// When each cluster last changed what its workloads report, and how many replicas of
    /// each Deployment it reports not ready since: the status churn's lag is measured from here.
    pub changed: Mutex<HashMap<String, (i64, Instant)>>,
    /// How often every spoke turns its workloads' status, in milliseconds (0: never).
    churn_every_ms: AtomicU64,
}

impl WorkCounters {
    /// Starts (or with `None` stops) the status churn of every spoke: each turns what its
    /// Deployments report every `every`, at a phase of its own.
    pub fn set_churn(&self, every: Option<Duration>) {
        let ms = every.map_or(0, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        self.churn_every_ms.store(ms, Ordering::Relaxed);
    }

    pub fn churn_every(&self) -> Option<Duration> {
        match self.churn_every_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }
}

/// The works one simulated spoke holds, by UID.
#[derive(Debug)]
pub struct SpokeWorks {
    cluster: String,
    agent_id: String,
    sequence: SequenceIdGenerator,
    held: HashMap<String, Held>,
    /// Replicas every Deployment reports not ready (the status churn turns it).
    unready: i64,
    counters: Arc<WorkCounters>,
}

#[derive(Debug)]
struct Held {
    work: ManifestWork,
    /// The generation applied, once applied.
    applied: Option<i64>,
    /// The hash of the status last sent.
    sent: Option<String>,
}

impl SpokeWorks {
    pub fn new(cluster: &str, agent_id: &str, counters: Arc<WorkCounters>) -> Self {
        Self {
            cluster: cluster.to_owned(),
            agent_id: agent_id.to_owned(),
            sequence: SequenceIdGenerator::default(),
            held: HashMap::new(),
            unready: 0,
            counters,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The spec resync request sent after every subscription: the generation of every work
    /// held, so the hub sends only what is newer (and deletions of what it no longer has).
    pub fn resync_request(&self) -> CloudEvent {
        self.counters.resyncs.fetch_add(1, Ordering::Relaxed);
        let held = ResourceVersionList {
            resource_versions: self
                .held
                .iter()
                .map(|(uid, held)| ResourceVersion {
                    resource_id: uid.clone(),
                    resource_version: held.work.metadata.generation.unwrap_or_default(),
                })
                .collect(),
        };
        ocm_transport::resync::spec_resync_request(
            &DataType::manifest_bundles(),
            &self.agent_id,
            &self.cluster,
            &held,
            uuid::Uuid::new_v4().to_string(),
            jiff::Timestamp::now(),
        )
    }

    /// Takes an event of the works' data type; the status events to send for it.
    pub fn receive(&mut self, event: &CloudEvent) -> Vec<CloudEvent> {
        let Ok(event_type) = event.event_type.parse::<EventType>() else {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return Vec::new();
        };
        match (event_type.sub_resource, event_type.action) {
            (SubResource::Status, EventAction::ResyncRequest) => self.statuses_asked_for(event),
            (SubResource::Spec, _) => self.spec(event),
            _ => Vec::new(),
        }
    }

    /// Turns the ready replicas every Deployment reports (one fewer, or all), as a pod
    /// restarting somewhere would; the statuses that changed.
    pub fn churn(&mut self) -> Vec<CloudEvent> {
        self.unready = 1 - self.unready;
        let uids: Vec<String> = self.held.keys().cloned().collect();
        let mut sent = Vec::new();
        let mut changed_at = None;
        for uid in uids {
            if let Some(event) = self.report(&uid) {
                changed_at.get_or_insert_with(Instant::now);
                sent.push(event);
            }
        }
        if let Some(at) = changed_at {
            let mut changed = self
                .counters
                .changed
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            changed.insert(self.cluster.clone(), (self.unready, at));
        }
        sent
    }

    fn spec(&mut self, event: &CloudEvent) -> Vec<CloudEvent> {
        let work = match codec::decode_spec(event) {
            Ok(work) if work.metadata.namespace.as_deref() == Some(self.cluster.as_str()) => work,
            _ => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                return Vec::new();
            }
        };
        let uid = work.metadata.uid.clone().unwrap_or_default();
        if work.metadata.deletion_timestamp.is_some() {
            return self.delete(&uid, work).into_iter().collect();
        }
        let generation = work.metadata.generation.unwrap_or_default();
        match self.held.get_mut(&uid) {
            Some(held) => {
                let applied = held.applied.unwrap_or(i64::MIN);
                if generation != 0 && generation < applied {
                    return Vec::new();
                }
                if generation == applied {
                    self.counters.redundant.fetch_add(1, Ordering::Relaxed);
                }
                let status = held.work.status.take();
                held.work = work;
                held.work.status = status;
            }
            None => {
                self.held.insert(
                    uid.clone(),
                    Held {
                        work,
                        applied: None,
                        sent: None,
                    },
                );
            }
        }
        self.apply(&uid).into_iter().collect()
    }

    /// "Applies" the work: its status from the live objects of the in-memory cluster.
    fn apply(&mut self, uid: &str) -> Option<CloudEvent> {
        let held = self.held.get_mut(uid)?;
        let generation = held.work.metadata.generation.unwrap_or_default();
        if held.applied != Some(generation) {
            held.applied = Some(generation);
            self.counters.applied.fetch_add(1, Ordering::Relaxed);
        }
        self.report(uid)
    }

    /// The work's status now; the status event when its hash differs from the one sent.
    fn report(&mut self, uid: &str) -> Option<CloudEvent> {
        let unready = self.unready;
        let held = self.held.get_mut(uid)?;
        let manifests: Vec<&Value> = held
            .work
            .spec
            .workload
            .manifests
            .iter()
            .map(|m| &m.0)
            .collect();
        let outcomes = apply_order(&manifests)
            .into_iter()
            .map(|index| {
                let manifest = manifests[index];
                let mut meta = resource_meta(index, manifest);
                meta.resource = plural(&meta.group, &meta.version, &meta.kind);
                ManifestOutcome {
                    meta,
                    applied: Applied::Done,
                    live: Live::Found(live_object(manifest, unready)),
                }
            })
            .collect();
        let status = status::work_status(&held.work, outcomes, MAX_RAW, jiff::Timestamp::now());
        held.work.status = Some(status);
        let event = encode(&held.work, &self.agent_id, &self.sequence)?;
        let hash = event
            .extension_str(ocm_transport::event::extension::STATUS_HASH)
            .map(str::to_owned);
        if hash.is_some() && hash == held.sent {
            return None;
        }
        held.sent = hash;
        self.counters.statuses_sent.fetch_add(1, Ordering::Relaxed);
        Some(event)
    }

    /// The work's resources are "deleted" at once: `Deleted=True`, and the work forgotten.
    fn delete(&mut self, uid: &str, deleting: ManifestWork) -> Option<CloudEvent> {
        let mut work = self.held.remove(uid).map_or(deleting, |held| held.work);
        work.status = Some(ManifestWorkStatus {
            conditions: vec![Condition {
                r#type: CONDITION_DELETED.to_owned(),
                status: ConditionStatus::True,
                observed_generation: work.metadata.generation,
                last_transition_time: Time(jiff::Timestamp::now()),
                reason: REASON_MANIFESTS_DELETED.to_owned(),
                message: "The resources of the work are deleted".to_owned(),
            }],
            ..ManifestWorkStatus::default()
        });
        self.counters.deleted.fetch_add(1, Ordering::Relaxed);
        encode(&work, &self.agent_id, &self.sequence)
    }

    /// A status resync request: every status the hub lacks or holds with another hash again.
    fn statuses_asked_for(&mut self, event: &CloudEvent) -> Vec<CloudEvent> {
        let listed: StatusHashList = match event.data.as_deref() {
            Some(data) if !data.is_empty() => match serde_json::from_slice(data) {
                Ok(listed) => listed,
                Err(_) => {
                    self.counters.refused.fetch_add(1, Ordering::Relaxed);
                    return Vec::new();
                }
            },
            _ => StatusHashList::default(),
        };
        let held = self
            .held
            .iter()
            .map(|(uid, held)| (uid.as_str(), held.sent.as_deref().unwrap_or_default()));
        let asked: Vec<String> = plan_status_resync(held, &listed)
            .into_iter()
            .map(str::to_owned)
            .collect();
        asked
            .iter()
            .filter_map(|uid| {
                self.held.get_mut(uid)?.sent = None;
                self.report(uid)
            })
            .collect()
    }
}

fn encode(
    work: &ManifestWork,
    agent_id: &str,
    sequence: &SequenceIdGenerator,
) -> Option<CloudEvent> {
    codec::encode_status(
        work,
        agent_id,
        EventAction::UpdateRequest,
        sequence.next_id(),
        uuid::Uuid::new_v4().to_string(),
        jiff::Timestamp::now(),
    )
    .inspect_err(|error| {
        tracing::warn!(work = ?work.metadata.name, %error, "simulated status not encoded");
    })
    .ok()
}

/// The resource a kind is served as (discovery's answer for the built-in kinds; the usual
/// plural for the rest).
fn plural(group: &str, version: &str, kind: &str) -> String {
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind)).plural
}

/// The manifest's object as a healthy cluster shows it: identity fields set, and for the
/// kinds with a well-known status, that status (`unready` replicas of a Deployment not ready).
pub fn live_object(manifest: &Value, unready: i64) -> Value {
    let mut live = manifest.clone();
    if let Some(metadata) = live.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("generation".to_owned(), json!(1));
        metadata.insert("resourceVersion".to_owned(), json!("1"));
    }
    let kind = manifest
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let status = match kind {
        "Deployment" | "StatefulSet" | "ReplicaSet" => {
            let replicas = manifest
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let ready = (replicas - unready).max(0);
            Some(json!({
                "observedGeneration": 1,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": ready,
                "availableReplicas": ready,
            }))
        }
        "Job" => Some(json!({
            "succeeded": 1,
            "conditions": [{"type": "Complete", "status": "True"}],
        })),
        _ => None,
    };
    if let (Some(status), Some(object)) = (status, live.as_object_mut()) {
        object.insert("status".to_owned(), status);
    }
    live
}

#[cfg(test)]
mod tests {
    use ocm_api::work::v1::{
        FeedbackRule, FeedbackType, Manifest, ManifestConfigOption, ManifestWorkSpec,
        ManifestsTemplate, ResourceIdentifier,
    };
    use ocm_transport::work::ORIGINAL_SOURCE_LABEL;

    use super::*;

    fn work(generation: i64) -> ManifestWork {
        let mut work = ManifestWork::new(
            "web",
            ManifestWorkSpec {
                workload: ManifestsTemplate {
                    manifests: vec![Manifest(json!({
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "metadata": {"name": "web", "namespace": "default"},
                        "spec": {"replicas": 2},
                    }))],
                },
                manifest_configs: vec![ManifestConfigOption {
                    feedback_rules: vec![FeedbackRule {
                        r#type: FeedbackType::WellKnownStatus,
                        json_paths: Vec::new(),
                    }],
                    ..ManifestConfigOption::new(ResourceIdentifier {
                        group: "apps".to_owned(),
                        resource: "deployments".to_owned(),
                        name: "web".to_owned(),
                        namespace: "default".to_owned(),
                    })
                }],
                ..ManifestWorkSpec::default()
            },
        );
        work.metadata.namespace = Some("c1".to_owned());
        work.metadata.uid = Some("uid-1".to_owned());
        work.metadata.generation = Some(generation);
        work.metadata.labels = Some(
            [(ORIGINAL_SOURCE_LABEL.to_owned(), "kube".to_owned())]
                .into_iter()
                .collect(),
        );
        work
    }

    fn spec_event(work: &ManifestWork) -> CloudEvent {
        codec::encode_spec(
            work,
            "kube",
            EventAction::UpdateRequest,
            "e1".to_owned(),
            jiff::Timestamp::now(),
        )
        .unwrap()
    }

    fn ready_replicas(event: &CloudEvent) -> Option<i64> {
        let status = codec::decode_status(event).unwrap();
        let manifest = status
            .work
            .status
            .as_ref()?
            .resource_status
            .manifests
            .first()?;
        manifest
            .status_feedback
            .values
            .iter()
            .find(|v| v.name == "ReadyReplicas")
            .and_then(|v| v.field_value.integer)
    }

    #[test]
    fn a_work_is_applied_once_per_generation_and_its_status_sent_only_when_it_changes() {
        let counters = Arc::new(WorkCounters::default());
        let mut spoke = SpokeWorks::new("c1", "c1-agent", Arc::clone(&counters));
        let sent = spoke.receive(&spec_event(&work(1)));
        assert_eq!(sent.len(), 1);
        assert_eq!(ready_replicas(&sent[0]), Some(2));
        // The same generation again (a resync after a hub restart): redundant, nothing sent.
        assert!(spoke.receive(&spec_event(&work(1))).is_empty());
        assert_eq!(counters.redundant.load(Ordering::Relaxed), 1);
        assert_eq!(counters.applied.load(Ordering::Relaxed), 1);
        // Churn: one replica not ready, then all ready again; each a status.
        let churned = spoke.churn();
        assert_eq!(churned.len(), 1);
        assert_eq!(ready_replicas(&churned[0]), Some(1));
        assert_eq!(ready_replicas(&spoke.churn()[0]), Some(2));
        // A newer generation is applied.
        spoke.receive(&spec_event(&work(2)));
        assert_eq!(counters.applied.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_status_resync_resends_what_the_hub_lacks_and_a_deletion_forgets_the_work() {
        let counters = Arc::new(WorkCounters::default());
        let mut spoke = SpokeWorks::new("c1", "c1-agent", Arc::clone(&counters));
        spoke.receive(&spec_event(&work(1)));
        let ask = ocm_transport::resync::status_resync_request(
            &DataType::manifest_bundles(),
            "kube",
            "c1",
            &StatusHashList::default(),
            "r1".to_owned(),
            jiff::Timestamp::now(),
        );
        assert_eq!(spoke.receive(&ask).len(), 1);
        let mut deleting = work(1);
        deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        let sent = spoke.receive(&spec_event(&deleting));
        assert_eq!(sent.len(), 1);
        assert!(spoke.is_empty());
        assert_eq!(counters.deleted.load(Ordering::Relaxed), 1);
        // A work of another cluster is refused.
        let mut other = work(1);
        other.metadata.namespace = Some("c2".to_owned());
        assert!(spoke.receive(&spec_event(&other)).is_empty());
        assert_eq!(counters.refused.load(Ordering::Relaxed), 1);
    }
}
