//! Token buckets by key that never wait: how often one identity, or one unauthenticated peer,
//! may ask something of the broker. A caller over its rate is refused at once (the client backs
//! off and retries), so a flood costs the broker a map lookup per request and nothing more.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use tokio::time::Instant;

/// At most `rate` calls a second per key after a `burst`; at most `max_keys` keys tracked.
#[derive(Debug)]
pub struct KeyedRateLimit<K> {
    rate: f64,
    burst: f64,
    max_keys: usize,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    counted: Instant,
}

impl Bucket {
    fn refilled(self, now: Instant, rate: f64, burst: f64) -> f64 {
        (self.tokens + now.duration_since(self.counted).as_secs_f64() * rate).min(burst)
    }
}

impl<K: Hash + Eq + Clone> KeyedRateLimit<K> {
    pub fn new(rate_per_second: f64, burst: u32, max_keys: usize) -> Self {
        Self {
            rate: rate_per_second.max(f64::MIN_POSITIVE),
            burst: f64::from(burst.max(1)),
            max_keys: max_keys.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token of `key`'s bucket; false when it has none left, or when `max_keys` keys
    /// are all in use (a key whose bucket is full again is forgotten to make room).
    pub fn try_take(&self, key: &K) -> bool {
        let now = Instant::now();
        let (rate, burst) = (self.rate, self.burst);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(key) && buckets.len() >= self.max_keys {
            // A full bucket is the same as no bucket: forget those.
            buckets.retain(|_, bucket| bucket.refilled(now, rate, burst) < burst);
            if buckets.len() >= self.max_keys {
                return false;
            }
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            counted: now,
        });
        let tokens = bucket.refilled(now, rate, burst);
        if tokens < 1.0 {
            return false;
        }
        *bucket = Bucket {
            tokens: tokens - 1.0,
            counted: now,
        };
        true
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_key_gets_its_burst_then_its_rate_and_others_are_unaffected() {
        let limit = KeyedRateLimit::new(10.0, 5, 100);
        assert_eq!((0..8).filter(|_| limit.try_take(&"a")).count(), 5);
        assert!(limit.try_take(&"b"), "another key has its own bucket");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!((0..8).filter(|_| limit.try_take(&"a")).count(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_is_bounded_and_forgets_idle_keys() {
        let limit = KeyedRateLimit::new(1.0, 1, 3);
        for key in 0..3 {
            assert!(limit.try_take(&key));
        }
        assert!(!limit.try_take(&3), "three keys are busy");
        assert_eq!(limit.len(), 3);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(limit.try_take(&3), "idle keys were forgotten");
        assert_eq!(limit.len(), 1);
    }
}
