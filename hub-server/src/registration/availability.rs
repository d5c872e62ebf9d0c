//! Cluster availability and taints (OCM's hub lease controller): an accepted cluster whose agent
//! stopped renewing for `grace × leaseDurationSeconds` becomes `Available=Unknown`
//! (`ManagedClusterLeaseUpdateStopped`), and every cluster carries the NoSelect taint its
//! Available condition calls for — `unreachable` when Unknown or missing, `unavailable` when
//! False, none when True. Renewals come from memory ([`Liveness`]); the apiserver is written
//! only when a condition or taint actually changes.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use jiff::Timestamp;
use ocm_api::cluster::v1::{
    CONDITION_AVAILABLE, ManagedCluster, TAINT_UNAVAILABLE, TAINT_UNREACHABLE, Taint, TaintEffect,
};
use ocm_api::condition::{self, Condition, ConditionStatus};
use ocm_api::k8s_openapi::api::coordination::v1::Lease;
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use ocm_api::kube::api::{ListParams, Patch, PatchParams};
use ocm_api::kube::runtime::reflector::Store;
use ocm_api::kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use super::liveness::{Liveness, lease_expired};
use crate::csr::CLUSTER_NAME_LABEL;

/// How availability is judged.
#[derive(Debug, Clone, Copy)]
pub struct AvailabilityConfig {
    /// A cluster is lost after this many lease durations without a renewal (OCM: 5).
    pub grace_multiplier: u32,
    /// How often clusters are checked.
    pub check_every: Duration,
}

impl Default for AvailabilityConfig {
    fn default() -> Self {
        Self {
            grace_multiplier: 5,
            check_every: Duration::from_secs(1),
        }
    }
}

/// The Available condition the hub sets for `cluster`, if it sets one now: `Unknown` once an
/// accepted cluster's lease expired (and it is not already Unknown).
pub fn lost_condition(
    cluster: &ManagedCluster,
    renewed: Option<Timestamp>,
    now: Timestamp,
    grace_multiplier: u32,
) -> Option<Vec<Condition>> {
    if !cluster.spec.hub_accepts_client || cluster.metadata.deletion_timestamp.is_some() {
        return None;
    }
    if !lease_expired(
        renewed,
        now,
        cluster.spec.lease_duration(),
        grace_multiplier,
    ) {
        return None;
    }
    let mut conditions = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let changed = condition::set(
        &mut conditions,
        CONDITION_AVAILABLE,
        ConditionStatus::Unknown,
        "ManagedClusterLeaseUpdateStopped",
        &format!(
            "Registration agent stopped updating its lease within {} seconds.",
            (cluster.spec.lease_duration() * grace_multiplier).as_secs()
        ),
        now,
    );
    changed.then_some(conditions)
}

/// The taints `cluster` should carry, if they differ from what it has: the other taints kept,
/// `unreachable`/`unavailable` added or removed by its Available condition.
pub fn desired_taints(cluster: &ManagedCluster, now: Timestamp) -> Option<Vec<Taint>> {
    let conditions = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let wanted = match condition::find(conditions, CONDITION_AVAILABLE).map(|c| c.status) {
        None | Some(ConditionStatus::Unknown) => Some(TAINT_UNREACHABLE),
        Some(ConditionStatus::False) => Some(TAINT_UNAVAILABLE),
        Some(ConditionStatus::True) => None,
    };
    let current = &cluster.spec.taints;
    let ours = |t: &Taint| t.key == TAINT_UNREACHABLE || t.key == TAINT_UNAVAILABLE;
    let has_exactly = match wanted {
        Some(key) => current
            .iter()
            .filter(|t| ours(t))
            .map(|t| t.key.as_str())
            .eq([key]),
        None => !current.iter().any(ours),
    };
    if has_exactly {
        return None;
    }
    let mut taints: Vec<Taint> = current.iter().filter(|t| !ours(t)).cloned().collect();
    if let Some(key) = wanted {
        taints.push(Taint {
            key: key.to_owned(),
            value: String::new(),
            effect: TaintEffect::NoSelect,
            time_added: Some(Time(now)),
        });
    }
    Some(taints)
}

/// How many clusters' availability writes may be in flight at once (also the request budget of
/// `ocm-hub`'s client for them). The apiserver commits writes in batches, so more in flight is
/// more written per second: with 16 (and taints not yet after conditions), the last of 1,000
/// clusters lost together among 10,000 was marked about 8 s after its grace; 1,000 lost
/// clusters make 2,000 writes, a condition and a taint each.
pub const CONCURRENT_WRITES: usize = 64;

/// A write one availability check calls for.
#[derive(Debug, Clone, PartialEq)]
pub enum AvailabilityWrite {
    /// The cluster's conditions, with Available=Unknown: its lease expired.
    Lost(Vec<Condition>),
    /// The cluster's taints, to match its Available condition.
    Taints(Vec<Taint>),
}

/// The writes one pass over `clusters` calls for, every lost cluster's condition before any
/// taint: the condition is what users and placement act on first, and a taint follows from it
/// on a later pass anyway. In store order, the taints of clusters lost a second earlier held
/// up the conditions of those just lost.
pub fn pass_writes(
    clusters: &[Arc<ManagedCluster>],
    liveness: &Liveness,
    grace_multiplier: u32,
    now: Timestamp,
) -> Vec<(Arc<ManagedCluster>, AvailabilityWrite)> {
    let mut lost = Vec::new();
    let mut taints = Vec::new();
    for cluster in clusters {
        let name = cluster.metadata.name.as_deref().unwrap_or_default();
        // Only accepted clusters have a lease to judge; one not heard from yet gets the full
        // grace.
        let renewed = cluster
            .spec
            .hub_accepts_client
            .then(|| liveness.last_renewed_or_start(name, now));
        if let Some(conditions) = lost_condition(cluster, renewed, now, grace_multiplier) {
            lost.push((Arc::clone(cluster), AvailabilityWrite::Lost(conditions)));
        } else if let Some(wanted) = desired_taints(cluster, now) {
            taints.push((Arc::clone(cluster), AvailabilityWrite::Taints(wanted)));
        }
    }
    lost.extend(taints);
    lost
}

/// Runs until `cancel`, checking every cluster in `store` every `config.check_every` against
/// `liveness` (seeded by [`seed`]). Start it once `store` is ready (see
/// [`super::clusters::SharedClusters::run`]); until then it checks no cluster.
pub async fn run(
    client: Client,
    store: Store<ManagedCluster>,
    liveness: Arc<Liveness>,
    config: AvailabilityConfig,
    cancel: CancellationToken,
) {
    let clusters: Api<ManagedCluster> = Api::all(client);
    let mut tick = tokio::time::interval(config.check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let writes = pass_writes(
            &store.state(),
            &liveness,
            config.grace_multiplier,
            Timestamp::now(),
        );
        // Most passes write nothing; when many clusters go silent together, their writes go
        // out side by side (one at a time, each waiting its turn behind a busy apiserver, the
        // last of a thousand lost clusters was marked minutes late).
        futures::stream::iter(writes)
            .for_each_concurrent(CONCURRENT_WRITES, |(cluster, write)| {
                let clusters = &clusters;
                async move { apply(clusters, &cluster, write).await }
            })
            .await;
    }
}

async fn apply(clusters: &Api<ManagedCluster>, cluster: &ManagedCluster, write: AvailabilityWrite) {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    // Guarded by the resourceVersion seen, so an agent's concurrent report is never lost; a
    // conflict is retried on the next check with the newer object.
    let version = cluster.metadata.resource_version.clone();
    match write {
        AvailabilityWrite::Lost(conditions) => {
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": version},
                "status": {"conditions": conditions},
            });
            match clusters
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => {
                    tracing::warn!(cluster = %name, "lease expired; cluster availability unknown")
                }
                Err(err) => tracing::debug!(cluster = %name, %err, "availability not recorded yet"),
            }
        }
        AvailabilityWrite::Taints(taints) => {
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": version},
                "spec": {"taints": taints},
            });
            match clusters
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => {
                    tracing::info!(cluster = %name, taints = ?taints.iter().map(|t| &t.key).collect::<Vec<_>>(), "taints updated")
                }
                Err(err) => tracing::debug!(cluster = %name, %err, "taints not updated yet"),
            }
        }
    }
}

/// Liveness after a hub restart starts from the Leases' renew times. Call it before agents
/// connect: a renewal the hub hears of first marks its Lease as never written, so the Lease is
/// written at once, and ten thousand agents reconnecting to a restarted hub would all write
/// theirs in one burst (which held the hub's other apiserver requests up for minutes).
///
/// `write_interval` is how often the hub writes a Lease (renewals in between are kept in
/// memory), so a stored renew time may be that much older than the cluster's last renewal: see
/// [`renewed_at_least`].
pub async fn seed(client: &Client, liveness: &Liveness, write_interval: Duration) {
    let now = Timestamp::now();
    let leases: Api<Lease> = Api::all(client.clone());
    match leases
        .list(&ListParams::default().labels(CLUSTER_NAME_LABEL))
        .await
    {
        Ok(list) => {
            for lease in list.items {
                let cluster = lease
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(CLUSTER_NAME_LABEL))
                    .cloned()
                    .unwrap_or_default();
                let renewed = lease
                    .spec
                    .and_then(|s| s.renew_time.or(s.acquire_time))
                    .map(|t| t.0);
                if let Some(renewed) = renewed {
                    liveness.seed(&cluster, renewed_at_least(renewed, write_interval, now));
                }
            }
        }
        Err(err) => tracing::warn!(%err, "cannot read Leases to seed liveness"),
    }
}

/// When a cluster whose stored Lease says `stored` last renewed at the latest, for a hub
/// starting at `now` that writes Leases every `write_interval`: a cluster still renewing when
/// the previous hub stopped had its Lease written at most `write_interval` before, so it is
/// taken to have renewed then (never later than `now`). Taking `stored` as it is would mark
/// live clusters Unknown after a restart whenever the interval is longer than the grace (as
/// with 10 s leases: a 50 s grace against the default 60 s interval), and they would flap back
/// to Available at their next renewal. A cluster that died just before the restart is marked
/// at most `write_interval` late.
pub fn renewed_at_least(stored: Timestamp, write_interval: Duration, now: Timestamp) -> Timestamp {
    let interval = jiff::SignedDuration::try_from(write_interval).unwrap_or_default();
    stored
        .checked_add(interval)
        .map_or(now, |latest| latest.min(now))
        .max(stored)
}

#[cfg(test)]
mod tests {
    use ocm_api::cluster::v1::{ManagedClusterSpec, ManagedClusterStatus};

    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap_or_default()
    }

    fn cluster(
        accepted: bool,
        available: Option<ConditionStatus>,
        taints: &[&str],
    ) -> ManagedCluster {
        let mut cluster = ManagedCluster::new(
            "c1",
            ManagedClusterSpec {
                hub_accepts_client: accepted,
                lease_duration_seconds: 60,
                taints: taints
                    .iter()
                    .map(|k| Taint {
                        key: (*k).to_owned(),
                        value: String::new(),
                        effect: TaintEffect::NoSelect,
                        time_added: None,
                    })
                    .collect(),
                ..ManagedClusterSpec::default()
            },
        );
        let mut conditions = Vec::new();
        if let Some(status) = available {
            condition::set(
                &mut conditions,
                CONDITION_AVAILABLE,
                status,
                "r",
                "m",
                at(0),
            );
        }
        cluster.status = Some(ManagedClusterStatus {
            conditions,
            ..ManagedClusterStatus::default()
        });
        cluster
    }

    #[test]
    fn a_pass_writes_every_lost_clusters_condition_before_any_taint() {
        let named = |name: &str, mut cluster: ManagedCluster| {
            cluster.metadata.name = Some(name.to_owned());
            Arc::new(cluster)
        };
        // In store order: a cluster lost a pass ago (its taint due), then two just lost.
        let mut tainting = cluster(true, Some(ConditionStatus::True), &[]);
        let unknown = lost_condition(&tainting, Some(at(0)), at(300), 5);
        tainting.status.as_mut().unwrap().conditions = unknown.unwrap();
        let clusters = [
            named("tainting", tainting),
            named("lost1", cluster(true, Some(ConditionStatus::True), &[])),
            named("alive", cluster(true, Some(ConditionStatus::True), &[])),
            named("lost2", cluster(true, Some(ConditionStatus::True), &[])),
        ];
        let liveness = Liveness::new();
        for name in ["tainting", "lost1", "lost2"] {
            liveness.renewed(name, at(0));
        }
        liveness.renewed("alive", at(250));
        let writes = pass_writes(&clusters, &liveness, 5, at(300));
        let order: Vec<(&str, bool)> = writes
            .iter()
            .map(|(c, w)| {
                (
                    c.metadata.name.as_deref().unwrap_or_default(),
                    matches!(w, AvailabilityWrite::Lost(_)),
                )
            })
            .collect();
        assert_eq!(
            order,
            [("lost1", true), ("lost2", true), ("tainting", false)]
        );
    }

    #[test]
    fn a_restarted_hub_takes_a_stored_lease_as_up_to_one_write_interval_stale() {
        let interval = Duration::from_secs(60);
        // Written 55 s before the restart: the cluster may have renewed until the restart.
        assert_eq!(renewed_at_least(at(1_000), interval, at(1_055)), at(1_055));
        // Written long ago: it renewed at most one interval after the stored time.
        assert_eq!(renewed_at_least(at(1_000), interval, at(5_000)), at(1_060));
        // So a cluster on 10 s leases (grace 50 s) is not lost at once after a restart when
        // its Lease was written 55 s before, and is lost one interval late if it was dead.
        let lease = Duration::from_secs(10);
        let seeded = renewed_at_least(at(1_000), interval, at(1_055));
        assert!(!lease_expired(Some(seeded), at(1_056), lease, 5));
        assert!(lease_expired(Some(seeded), at(1_105), lease, 5));
        // A renew time in the future (clock skew) is kept as it is.
        assert_eq!(renewed_at_least(at(2_000), interval, at(1_000)), at(2_000));
    }

    #[test]
    fn an_accepted_cluster_that_stopped_renewing_becomes_unknown_once() {
        let alive = cluster(true, Some(ConditionStatus::True), &[]);
        assert_eq!(lost_condition(&alive, Some(at(0)), at(299), 5), None);
        let lost = lost_condition(&alive, Some(at(0)), at(300), 5).expect("lost");
        let available = condition::find(&lost, CONDITION_AVAILABLE).unwrap();
        assert_eq!(available.status, ConditionStatus::Unknown);
        assert_eq!(available.reason, "ManagedClusterLeaseUpdateStopped");
        let mut already = alive.clone();
        already.status.as_mut().unwrap().conditions = lost;
        assert_eq!(
            lost_condition(&already, Some(at(0)), at(400), 5),
            None,
            "written once"
        );
        let unaccepted = cluster(false, None, &[]);
        assert_eq!(lost_condition(&unaccepted, None, at(1000), 5), None);
    }

    #[test]
    fn taints_follow_the_available_condition_and_keep_everyone_elses() {
        let keys =
            |t: Option<Vec<Taint>>| t.map(|t| t.into_iter().map(|t| t.key).collect::<Vec<_>>());
        assert_eq!(
            keys(desired_taints(&cluster(true, None, &[]), at(0))),
            Some(vec![TAINT_UNREACHABLE.to_owned()])
        );
        assert_eq!(
            keys(desired_taints(
                &cluster(
                    true,
                    Some(ConditionStatus::False),
                    &["team/x", TAINT_UNREACHABLE]
                ),
                at(0)
            )),
            Some(vec!["team/x".to_owned(), TAINT_UNAVAILABLE.to_owned()])
        );
        assert_eq!(
            keys(desired_taints(
                &cluster(
                    true,
                    Some(ConditionStatus::True),
                    &["team/x", TAINT_UNREACHABLE]
                ),
                at(0)
            )),
            Some(vec!["team/x".to_owned()])
        );
        assert_eq!(
            desired_taints(
                &cluster(true, Some(ConditionStatus::True), &["team/x"]),
                at(0)
            ),
            None
        );
        assert_eq!(
            desired_taints(
                &cluster(true, Some(ConditionStatus::Unknown), &[TAINT_UNREACHABLE]),
                at(0)
            ),
            None
        );
    }
}
