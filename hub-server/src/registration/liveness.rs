//! Cluster liveness kept in memory. Every lease renewal an agent publishes is recorded here;
//! the Lease object on the apiserver is refreshed at a lower rate, so ten thousand heartbeating
//! clusters cost the apiserver writes only when something changes (availability) or when the
//! slower refresh is due.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;

/// When each cluster last renewed, and when its Lease object was last written.
#[derive(Debug, Default)]
pub struct Liveness {
    clusters: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    renewed: Timestamp,
    written: Option<Timestamp>,
}

/// What a renewal asks of the cluster's Lease object (see [`Liveness::lease_write`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseWrite {
    /// Written within the interval: nothing.
    NotDue,
    /// Neither written by this hub nor read at start: write it, and report the outcome, since
    /// a missing Lease is the agent's to hear of; then call [`Liveness::wrote`].
    First,
    /// Due, and already recorded as written: refresh the object.
    Refresh,
}

impl Liveness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a renewal at `at`, keeping the latest.
    pub fn renewed(&self, cluster: &str, at: Timestamp) {
        let mut clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        let entry = clusters.entry(cluster.to_owned()).or_insert(Entry {
            renewed: at,
            written: None,
        });
        if at > entry.renewed {
            entry.renewed = at;
        }
    }

    /// What a renewal of `cluster` at `now` asks of its Lease object, which is written at most
    /// every `interval`. A due refresh is recorded as written at once, so renewals arriving
    /// together send one refresh.
    pub fn lease_write(&self, cluster: &str, now: Timestamp, interval: Duration) -> LeaseWrite {
        let mut clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        match clusters.get_mut(cluster) {
            Some(Entry {
                written: Some(written),
                ..
            }) if now.duration_since(*written).unsigned_abs() < interval => LeaseWrite::NotDue,
            Some(Entry {
                written: written @ Some(_),
                ..
            }) => {
                *written = Some(now);
                LeaseWrite::Refresh
            }
            _ => LeaseWrite::First,
        }
    }

    /// Records that the Lease object was written at `now`.
    pub fn wrote(&self, cluster: &str, now: Timestamp) {
        let mut clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = clusters.get_mut(cluster) {
            entry.written = Some(now);
        }
    }

    /// Seeds a cluster from its stored Lease (on hub start), unless a renewal is already known.
    pub fn seed(&self, cluster: &str, renewed: Timestamp) {
        let mut clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        clusters.entry(cluster.to_owned()).or_insert(Entry {
            renewed,
            written: Some(renewed),
        });
    }

    /// When `cluster` last renewed; a cluster never heard of starts its grace at `now`, as OCM
    /// creates a missing Lease with the current time rather than judging the cluster lost at once
    /// (an agent just accepted has not renewed yet).
    pub fn last_renewed_or_start(&self, cluster: &str, now: Timestamp) -> Timestamp {
        let mut clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        clusters
            .entry(cluster.to_owned())
            .or_insert(Entry {
                renewed: now,
                written: None,
            })
            .renewed
    }

    /// When `cluster` last renewed, if ever.
    pub fn last_renewed(&self, cluster: &str) -> Option<Timestamp> {
        let clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        clusters.get(cluster).map(|e| e.renewed)
    }

    pub fn forget(&self, cluster: &str) {
        let mut clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        clusters.remove(cluster);
    }
}

/// Whether a cluster that last renewed at `renewed` is lost at `now`: OCM's rule, `now ≥
/// renewed + grace_multiplier × lease_duration` (multiplier 5 by default).
pub fn lease_expired(
    renewed: Option<Timestamp>,
    now: Timestamp,
    lease_duration: Duration,
    grace_multiplier: u32,
) -> bool {
    match renewed {
        None => true,
        Some(renewed) => {
            now.duration_since(renewed).unsigned_abs() >= lease_duration * grace_multiplier
                && now >= renewed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap_or_default()
    }

    #[test]
    fn renewals_are_kept_in_memory_and_the_lease_is_written_at_the_slower_rate() {
        let liveness = Liveness::new();
        let every = Duration::from_secs(60);
        liveness.renewed("c1", at(100));
        assert_eq!(
            liveness.lease_write("c1", at(100), every),
            LeaseWrite::First,
            "never written"
        );
        assert_eq!(
            liveness.lease_write("c1", at(100), every),
            LeaseWrite::First,
            "a first write counts only once it succeeded"
        );
        liveness.wrote("c1", at(100));
        liveness.renewed("c1", at(110));
        assert_eq!(
            liveness.lease_write("c1", at(110), every),
            LeaseWrite::NotDue
        );
        assert_eq!(
            liveness.lease_write("c1", at(159), every),
            LeaseWrite::NotDue
        );
        assert_eq!(
            liveness.lease_write("c1", at(160), every),
            LeaseWrite::Refresh,
            "60 s after the last write"
        );
        assert_eq!(
            liveness.lease_write("c1", at(160), every),
            LeaseWrite::NotDue,
            "a refresh claims its slot: a renewal arriving with it sends none"
        );
        assert_eq!(liveness.last_renewed("c1"), Some(at(110)));
        // An older renewal arriving late does not move time back.
        liveness.renewed("c1", at(105));
        assert_eq!(liveness.last_renewed("c1"), Some(at(110)));
        liveness.seed("c1", at(10));
        assert_eq!(
            liveness.last_renewed("c1"),
            Some(at(110)),
            "seeding never overrides"
        );
        liveness.forget("c1");
        assert_eq!(liveness.last_renewed("c1"), None);
        // A Lease read at start counts as written: its refreshes need not check it exists.
        liveness.seed("c2", at(10));
        assert_eq!(
            liveness.lease_write("c2", at(100), every),
            LeaseWrite::Refresh
        );
    }

    #[test]
    fn a_cluster_never_heard_of_starts_its_grace_when_first_checked() {
        let liveness = Liveness::new();
        assert_eq!(liveness.last_renewed_or_start("c1", at(100)), at(100));
        assert_eq!(
            liveness.last_renewed_or_start("c1", at(200)),
            at(100),
            "the start is kept, not moved on every check"
        );
        assert_eq!(
            liveness.lease_write("c1", at(100), Duration::from_secs(60)),
            LeaseWrite::First,
            "the first renewal still writes the Lease"
        );
        liveness.renewed("c1", at(150));
        assert_eq!(liveness.last_renewed_or_start("c1", at(300)), at(150));
    }

    #[test]
    fn a_cluster_is_lost_after_grace_times_its_lease_duration() {
        let lease = Duration::from_secs(60);
        assert!(!lease_expired(Some(at(0)), at(299), lease, 5));
        assert!(lease_expired(Some(at(0)), at(300), lease, 5));
        assert!(lease_expired(None, at(0), lease, 5), "never renewed");
        assert!(
            !lease_expired(Some(at(100)), at(50), lease, 5),
            "renewal from the future"
        );
    }
}
