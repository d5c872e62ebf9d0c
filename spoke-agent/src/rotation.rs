//! When the agent renews its client certificate: at a jittered 70–90 %
//! of its lifetime — about 80 %, as OCM's client-certificate controller does — so a fleet whose
//! certificates were issued together does not renew all at once. A failed renewal is retried
//! well before expiry; an expired certificate means bootstrapping again.

use std::time::Duration;

use jiff::Timestamp;

/// A certificate's validity period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: Timestamp,
    pub not_after: Timestamp,
}

#[derive(Debug, thiserror::Error)]
#[error("the client certificate cannot be read: {0}")]
pub struct CertificateError(String);

impl Validity {
    /// The validity of the first certificate in `cert_pem`.
    pub fn of(cert_pem: &str) -> Result<Self, CertificateError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| CertificateError(format!("not PEM: {e}")))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&pem.contents)
            .map_err(|e| CertificateError(format!("not a certificate: {e}")))?;
        let at = |t: x509_parser::time::ASN1Time| {
            Timestamp::from_second(t.timestamp())
                .map_err(|e| CertificateError(format!("validity out of range: {e}")))
        };
        Ok(Self {
            not_before: at(parsed.validity().not_before)?,
            not_after: at(parsed.validity().not_after)?,
        })
    }

    fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unsigned_abs()
    }

    /// When to renew: `fraction` (0.7–0.9, see [`jittered_fraction`]) of the way through the
    /// lifetime.
    pub fn renewal_due(&self, fraction: f64) -> Timestamp {
        let into = self.lifetime().mul_f64(fraction.clamp(0.0, 1.0));
        self.not_before.checked_add(into).unwrap_or(self.not_after)
    }

    /// After a failed renewal at `now`, when to try again: a tenth of the time left, between
    /// 5 s and 5 minutes, and never after expiry.
    pub fn retry_at(&self, now: Timestamp) -> Timestamp {
        let left = self.not_after.duration_since(now).unsigned_abs();
        let delay = (left / 10).clamp(Duration::from_secs(5), Duration::from_secs(300));
        now.checked_add(delay)
            .unwrap_or(self.not_after)
            .min(self.not_after)
    }
}

/// A fraction of the lifetime, uniform in 0.7–0.9.
pub fn jittered_fraction() -> f64 {
    let mut bytes = [0u8; 2];
    let spread = if getrandom::fill(&mut bytes).is_ok() {
        f64::from(u16::from_le_bytes(bytes)) / f64::from(u16::MAX)
    } else {
        0.5
    };
    0.7 + 0.2 * spread
}

/// How long from `now` until `at` (zero if it has passed), for timers.
pub fn until(now: Timestamp, at: Timestamp) -> Duration {
    if at <= now {
        Duration::ZERO
    } else {
        at.duration_since(now).unsigned_abs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap_or_default()
    }

    #[test]
    fn renewal_falls_at_seventy_to_ninety_percent_of_the_lifetime() {
        let day = Validity {
            not_before: at(0),
            not_after: at(86_400),
        };
        assert_eq!(day.renewal_due(0.8), at(69_120));
        assert_eq!(day.renewal_due(2.0), at(86_400), "never after expiry");
        for _ in 0..100 {
            let fraction = jittered_fraction();
            assert!((0.7..=0.9).contains(&fraction), "{fraction}");
        }
    }

    #[test]
    fn a_failed_renewal_is_retried_within_the_time_left() {
        let day = Validity {
            not_before: at(0),
            not_after: at(86_400),
        };
        assert_eq!(day.retry_at(at(70_000)), at(70_300), "capped at 5 minutes");
        assert_eq!(
            day.retry_at(at(86_000)),
            at(86_040),
            "a tenth of what is left"
        );
        assert_eq!(day.retry_at(at(86_398)), at(86_400), "never after expiry");
        assert_eq!(until(at(10), at(5)), Duration::ZERO);
        assert_eq!(until(at(5), at(10)), Duration::from_secs(5));
    }

    #[test]
    fn validity_is_read_from_the_certificate() {
        let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let mut params = rcgen::CertificateParams::default();
        params.not_before = rcgen::date_time_ymd(2026, 1, 1);
        params.not_after = rcgen::date_time_ymd(2026, 1, 2);
        let cert = params.self_signed(&key).unwrap_or_else(|e| panic!("{e}"));
        let validity = Validity::of(&cert.pem()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(validity.lifetime(), Duration::from_secs(86_400));
        assert!(Validity::of("not a certificate").is_err());
    }
}
