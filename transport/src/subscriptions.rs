//! The broker's routing table: every Subscribe stream is a subscriber of one cluster and data
//! type, with a bounded queue of its own (as OCM's gRPC broker keeps them).
//!
//! An event goes to every subscriber whose cluster and data type match. A subscriber whose queue
//! is full is a spoke that does not keep up: it is dropped — its stream ends with
//! `ResourceExhausted`, its client reconnects and resyncs — and nobody else waits for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;

use crate::event_type::DataType;

/// The ID sent in the `subscription-id` response header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriptionId(uuid::Uuid);

impl std::fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The receiving end of a subscription, owned by its Subscribe stream.
#[derive(Debug)]
pub struct Subscription<T> {
    pub id: SubscriptionId,
    pub events: mpsc::Receiver<T>,
    overflowed: Arc<AtomicBool>,
    /// Where the subscriber is filed, so removing it looks at its own key only.
    key: Key,
}

impl<T> Subscription<T> {
    /// Whether the queue ended because the subscriber fell behind (rather than the broker
    /// shutting down or the subscription being removed).
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }
}

#[derive(Debug)]
struct Subscriber<T> {
    id: SubscriptionId,
    queue: mpsc::Sender<T>,
    overflowed: Arc<AtomicBool>,
}

type Key = (String, DataType);

/// Subscribers by cluster and data type. `T` is what is queued (a shared, ready-to-send event).
#[derive(Debug)]
pub struct Subscriptions<T> {
    by_key: RwLock<HashMap<Key, Vec<Subscriber<T>>>>,
    queue_capacity: usize,
}

/// What routing one event did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Routed {
    pub delivered: usize,
    /// Subscribers dropped because their queue was full.
    pub overflowed: Vec<SubscriptionId>,
}

impl<T: Clone> Subscriptions<T> {
    /// Each subscriber may hold `queue_capacity` undelivered events (OCM's broker: 100).
    pub fn new(queue_capacity: usize) -> Self {
        Self {
            by_key: RwLock::default(),
            queue_capacity: queue_capacity.max(1),
        }
    }

    pub fn subscribe(&self, cluster: &str, data_type: DataType) -> Subscription<T> {
        let (queue, events) = mpsc::channel(self.queue_capacity);
        let overflowed = Arc::new(AtomicBool::new(false));
        let id = SubscriptionId(uuid::Uuid::new_v4());
        let subscriber = Subscriber {
            id,
            queue,
            overflowed: Arc::clone(&overflowed),
        };
        let key = (cluster.to_owned(), data_type);
        self.write()
            .entry(key.clone())
            .or_default()
            .push(subscriber);
        Subscription {
            id,
            events,
            overflowed,
            key,
        }
    }

    /// Removes a subscription (its stream ended); one already removed is ignored. Costs the
    /// subscribers of its own cluster and data type, not the table: at 10,000 spokes
    /// reconnecting at once, a scan of every key per disconnect was quadratic.
    pub fn unsubscribe(&self, subscription: &Subscription<T>) {
        let mut by_key = self.write();
        if let Some(subscribers) = by_key.get_mut(&subscription.key) {
            subscribers.retain(|s| s.id != subscription.id);
            if subscribers.is_empty() {
                by_key.remove(&subscription.key);
            }
        }
    }

    /// Removes every subscription of `cluster` (its access changed, or it was deleted); their
    /// streams end once drained, and their clients subscribe again, authorized anew. Returns
    /// how many there were.
    pub fn close_cluster(&self, cluster: &str) -> usize {
        let mut closed = 0;
        self.write().retain(|(of, _), subscribers| {
            if of == cluster {
                closed += subscribers.len();
                false
            } else {
                true
            }
        });
        closed
    }

    /// Queues `event` for every subscriber of `cluster` and `data_type`, without waiting.
    pub fn route(&self, cluster: &str, data_type: &DataType, event: &T) -> Routed {
        let key = (cluster.to_owned(), data_type.clone());
        let mut routed = Routed::default();
        {
            let by_key = self.read();
            for subscriber in by_key.get(&key).into_iter().flatten() {
                match subscriber.queue.try_send(event.clone()) {
                    Ok(()) => routed.delivered += 1,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        routed.overflowed.push(subscriber.id)
                    }
                    // The stream is already gone; its handler unsubscribes it.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
        }
        if !routed.overflowed.is_empty() {
            let mut by_key = self.write();
            if let Some(subscribers) = by_key.get_mut(&key) {
                subscribers.retain(|s| {
                    let overflowed = routed.overflowed.contains(&s.id);
                    if overflowed {
                        s.overflowed.store(true, Ordering::Release);
                    }
                    !overflowed
                });
                if subscribers.is_empty() {
                    by_key.remove(&key);
                }
            }
        }
        routed
    }

    /// Removes every subscription; their streams end once drained.
    pub fn clear(&self) {
        self.write().clear();
    }

    /// Number of live subscriptions.
    pub fn len(&self) -> usize {
        self.read().values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Key, Vec<Subscriber<T>>>> {
        self.by_key
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Key, Vec<Subscriber<T>>>> {
        self.by_key
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn works() -> DataType {
        DataType::manifest_bundles()
    }

    #[tokio::test]
    async fn events_reach_only_subscribers_of_their_cluster_and_data_type() {
        let subscriptions = Subscriptions::new(10);
        let mut c1_works = subscriptions.subscribe("cluster1", works());
        let mut c1_works_again = subscriptions.subscribe("cluster1", works());
        let mut c2_works = subscriptions.subscribe("cluster2", works());
        let mut c1_leases = subscriptions.subscribe("cluster1", DataType::leases());

        let routed = subscriptions.route("cluster1", &works(), &"w1");
        assert_eq!(
            routed,
            Routed {
                delivered: 2,
                overflowed: vec![]
            }
        );
        assert_eq!(c1_works.events.recv().await, Some("w1"));
        assert_eq!(c1_works_again.events.recv().await, Some("w1"));
        assert!(c2_works.events.try_recv().is_err());
        assert!(c1_leases.events.try_recv().is_err());
        assert_ne!(c1_works.id, c1_works_again.id);
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_dropped_and_others_carry_on() {
        let subscriptions = Subscriptions::new(2);
        let mut slow = subscriptions.subscribe("cluster1", works());
        let mut fast = subscriptions.subscribe("cluster1", works());
        for n in 0..2 {
            assert_eq!(subscriptions.route("cluster1", &works(), &n).delivered, 2);
            assert_eq!(fast.events.recv().await, Some(n));
        }
        // `slow` has read nothing: its queue of 2 is full.
        let routed = subscriptions.route("cluster1", &works(), &2);
        assert_eq!(
            routed,
            Routed {
                delivered: 1,
                overflowed: vec![slow.id]
            }
        );
        assert_eq!(fast.events.recv().await, Some(2));
        assert_eq!(subscriptions.len(), 1);

        // The slow stream drains what it had, then ends, knowing why.
        assert_eq!(slow.events.recv().await, Some(0));
        assert_eq!(slow.events.recv().await, Some(1));
        assert_eq!(slow.events.recv().await, None);
        assert!(slow.overflowed());
        assert!(!fast.overflowed());
    }

    #[tokio::test]
    async fn unsubscribed_streams_receive_nothing_more() {
        let subscriptions = Subscriptions::new(4);
        let mut gone = subscriptions.subscribe("cluster1", works());
        subscriptions.unsubscribe(&gone);
        assert_eq!(subscriptions.route("cluster1", &works(), &1).delivered, 0);
        assert_eq!(gone.events.recv().await, None);
        assert!(!gone.overflowed());
        assert!(subscriptions.is_empty());
    }

    #[tokio::test]
    async fn closing_a_cluster_ends_only_its_streams() {
        let subscriptions = Subscriptions::new(4);
        let mut works1 = subscriptions.subscribe("cluster1", works());
        let mut leases1 = subscriptions.subscribe("cluster1", DataType::leases());
        let mut works2 = subscriptions.subscribe("cluster2", works());
        assert_eq!(subscriptions.close_cluster("cluster1"), 2);
        assert_eq!(works1.events.recv().await, None);
        assert_eq!(leases1.events.recv().await, None);
        assert!(!works1.overflowed(), "closed, not fallen behind");
        assert_eq!(subscriptions.route("cluster2", &works(), &7).delivered, 1);
        assert_eq!(works2.events.recv().await, Some(7));
        // Its stream's own unsubscribe afterwards is harmless.
        subscriptions.unsubscribe(&works1);
        assert_eq!(subscriptions.len(), 1);
    }
}
