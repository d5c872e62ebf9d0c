//! Reconnect timing shared by the gRPC client and the MQTT transport.

use std::time::Duration;

/// Reconnect timing: `initial × factor^n`, capped, each delay stretched by up to `jitter × 100 %`
/// at random so a broker restart does not bring every agent back in the same instant.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub factor: f64,
    pub cap: Duration,
    pub jitter: f64,
}

impl Default for Backoff {
    /// OCM's: 5 s, ×5, at most 1 min, jitter 1.0.
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(5),
            factor: 5.0,
            cap: Duration::from_secs(60),
            jitter: 1.0,
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.min(64)).unwrap_or(64);
        let base =
            (self.initial.as_secs_f64() * self.factor.powi(exponent)).min(self.cap.as_secs_f64());
        let mut random = [0u8; 4];
        let fraction = match getrandom::fill(&mut random) {
            Ok(()) => f64::from(u32::from_le_bytes(random)) / f64::from(u32::MAX),
            Err(_) => 0.5,
        };
        Duration::from_secs_f64(base * (1.0 + self.jitter * fraction))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_by_its_factor_up_to_the_cap_with_bounded_jitter() {
        let backoff = Backoff::default();
        for (attempt, base) in [(0, 5.0), (1, 25.0), (2, 60.0), (10, 60.0)] {
            let delay = backoff.delay(attempt).as_secs_f64();
            assert!(
                (base..=base * 2.0).contains(&delay),
                "attempt {attempt}: {delay}"
            );
        }
        let steady = Backoff {
            jitter: 0.0,
            ..Backoff::default()
        };
        assert_eq!(steady.delay(1), Duration::from_secs(25));
    }
}
