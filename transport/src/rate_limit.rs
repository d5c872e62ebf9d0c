//! A token bucket for a client's own publishing: OCM's Go clients publish at most 50 events a
//! second with bursts of 100, so one busy agent cannot flood the hub.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Waits, when needed, so that calls average at most `rate` a second after an initial `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>, // (tokens available, when they were counted)
}

impl RateLimiter {
    pub fn new(rate_per_second: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: rate_per_second.max(f64::MIN_POSITIVE),
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// OCM's client limit: 50 per second, bursts of 100.
    pub fn ocm_default() -> Self {
        Self::new(50.0, 100)
    }

    /// Takes one token, sleeping until one is available. Callers queue fairly on the lock.
    pub async fn acquire(&self) {
        let mut state = self.state.lock().await;
        let (tokens, counted) = *state;
        let now = Instant::now();
        let refilled =
            (tokens + now.duration_since(counted).as_secs_f64() * self.rate).min(self.burst);
        if refilled >= 1.0 {
            *state = (refilled - 1.0, now);
            return;
        }
        let wait = Duration::from_secs_f64((1.0 - refilled) / self.rate);
        // Holding the lock while sleeping is the point: the next caller waits behind this one.
        tokio::time::sleep(wait).await;
        *state = (0.0, now + wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_at_once_then_calls_are_paced_at_the_rate() {
        let limiter = RateLimiter::new(50.0, 100);
        let start = Instant::now();
        for _ in 0..100 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst is free");
        for _ in 0..50 {
            limiter.acquire().await;
        }
        let paced = start.elapsed().as_secs_f64();
        assert!(
            (0.99..=1.01).contains(&paced),
            "50 more at 50/s take a second, took {paced}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_refills_up_to_the_burst_only() {
        let limiter = RateLimiter::new(10.0, 5);
        tokio::time::sleep(Duration::from_secs(60)).await;
        let start = Instant::now();
        for _ in 0..6 {
            limiter.acquire().await;
        }
        let elapsed = start.elapsed().as_secs_f64();
        assert!(
            (0.09..=0.11).contains(&elapsed),
            "five free, the sixth waits 0.1 s: {elapsed}"
        );
    }
}
