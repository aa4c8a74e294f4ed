//! The GPU circuit breaker: after `threshold` consecutive GPU failures, requests go to the CPU
//! for `cooldown`; then one request probes the GPU, and its outcome closes or reopens it.

use std::time::{Duration, Instant};

/// The breaker's position, as the health report shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// The GPU takes requests.
    Closed,
    /// The GPU takes no requests until the cool-down ends.
    Open {
        /// Time left until a probe request may go to the GPU.
        remaining: Duration,
    },
    /// One probe request is (or may now be) on the GPU; its outcome decides.
    HalfOpen,
}

#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    consecutive_failures: u32,
    open_until: Option<Instant>,
    probe_in_flight: bool,
    trips: u64,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold,
            cooldown,
            consecutive_failures: 0,
            open_until: None,
            probe_in_flight: false,
            trips: 0,
        }
    }

    /// Whether the next request may go to the GPU. In the half-open position, only one probe
    /// at a time is let through.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        match self.open_until {
            None => true,
            Some(until) if now < until => false,
            Some(_) if self.probe_in_flight => false,
            Some(_) => {
                self.probe_in_flight = true;
                true
            }
        }
    }

    /// Whether requests go through without probing (no failure streak has opened it).
    pub(crate) fn is_closed(&self) -> bool {
        self.open_until.is_none()
    }

    pub(crate) fn record_success(&mut self) {
        self.consecutive_failures = 0;
        self.open_until = None;
        self.probe_in_flight = false;
    }

    /// Returns true when this failure opened the breaker.
    pub(crate) fn record_failure(&mut self, now: Instant) -> bool {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let was_probe = self.probe_in_flight;
        self.probe_in_flight = false;
        if was_probe || (self.open_until.is_none() && self.consecutive_failures >= self.threshold) {
            self.open_until = Some(now + self.cooldown);
            self.trips += 1;
            return true;
        }
        false
    }

    /// A request that went to the GPU ended without a verdict on the GPU (cancelled, or its
    /// deadline passed): a probe slot it held is released.
    pub(crate) fn record_neutral(&mut self) {
        self.probe_in_flight = false;
    }

    pub(crate) fn state(&self, now: Instant) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(until) if now < until => BreakerState::Open {
                remaining: until - now,
            },
            Some(_) => BreakerState::HalfOpen,
        }
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    pub(crate) fn trips(&self) -> u64 {
        self.trips
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_after_cooldown() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(10));
        assert!(b.allow(t0));
        assert!(!b.record_failure(t0));
        assert!(!b.record_failure(t0));
        b.record_success();
        assert_eq!(b.consecutive_failures(), 0);
        assert!(!b.record_failure(t0));
        assert!(!b.record_failure(t0));
        assert!(
            b.record_failure(t0),
            "the third consecutive failure opens it"
        );
        assert_eq!(b.trips(), 1);
        assert!(!b.allow(t0 + Duration::from_secs(9)));
        assert!(matches!(
            b.state(t0 + Duration::from_secs(9)),
            BreakerState::Open { .. }
        ));
        let later = t0 + Duration::from_secs(10);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert!(b.allow(later), "one probe after the cool-down");
        assert!(!b.allow(later), "only one probe at a time");
        assert!(b.record_failure(later), "a failed probe reopens it");
        assert_eq!(b.trips(), 2);
        assert!(!b.allow(later + Duration::from_secs(5)));
        let again = later + Duration::from_secs(10);
        assert!(b.allow(again));
        b.record_success();
        assert_eq!(b.state(again), BreakerState::Closed);
        assert!(b.allow(again) && b.allow(again));
    }

    #[test]
    fn a_neutral_probe_lets_the_next_one_through() {
        let t0 = Instant::now();
        let mut b = Breaker::new(1, Duration::from_secs(1));
        assert!(b.record_failure(t0));
        let later = t0 + Duration::from_secs(1);
        assert!(b.allow(later));
        b.record_neutral();
        assert!(b.allow(later));
    }
}
