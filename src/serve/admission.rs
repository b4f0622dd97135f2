//! Admission by expected queue time (`--max-queue-time`): a new request is refused at once (429)
//! when the model is expected to be further behind than a threshold, so that an overload is
//! answered with quick refusals rather than with long waits for everyone.
//!
//! The expectation ([`super::engine::Engine::backlog`]) is the tokens queued at the model's recent
//! pace; what a request then really waits also depends on what the CPU gives the model threads
//! afterwards, which under overload (the HTTP threads and the clients busy on the same cores)
//! runs up to twice the expectation. So the threshold starts at the limit and is corrected by the
//! waits measured, as a congestion window is: each batch whose oldest request waited longer than
//! the limit lowers it by an eighth (to a quarter of the limit at least); each other batch raises
//! it by 1/256 of the limit, back up to the limit. At equilibrium about one batch in 35 has its
//! oldest request over the limit; at low load nothing waits and the threshold is the limit.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// The queue-time limit and the threshold the expected wait is held to now.
#[derive(Debug)]
pub struct QueueTimeLimit {
    /// `--max-queue-time`.
    limit: Duration,
    /// The threshold, in nanoseconds: between a quarter of `limit` and `limit`.
    threshold: AtomicU64,
}

impl QueueTimeLimit {
    /// A limit of `limit`, its threshold at the limit.
    pub fn new(limit: Duration) -> Self {
        Self { limit, threshold: AtomicU64::new(nanos(limit)) }
    }

    /// The most a new request may expect to wait now.
    pub fn threshold(&self) -> Duration {
        Duration::from_nanos(self.threshold.load(Ordering::Relaxed))
    }

    /// Corrects the threshold with a batch whose oldest request waited `waited` ([`corrected`]).
    /// Two model threads may race here; either correction stands, which is all that is needed.
    pub fn observe(&self, waited: Duration) {
        let next = corrected(self.threshold(), self.limit, waited);
        self.threshold.store(nanos(next), Ordering::Relaxed);
    }
}

/// The threshold after a batch whose oldest request waited `waited`: an eighth lower (not under a
/// quarter of `limit`) when that is over `limit`, else 1/256 of `limit` higher (not over `limit`).
pub fn corrected(threshold: Duration, limit: Duration, waited: Duration) -> Duration {
    if waited > limit {
        (threshold * 7 / 8).max(limit / 4)
    } else {
        (threshold + limit / 256).min(limit)
    }
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_millis(50);

    #[test]
    fn waits_over_the_limit_lower_the_threshold_down_to_a_quarter() {
        let limit = QueueTimeLimit::new(LIMIT);
        assert_eq!(limit.threshold(), LIMIT);
        limit.observe(Duration::from_millis(60));
        assert_eq!(limit.threshold(), LIMIT * 7 / 8);
        for _ in 0..100 {
            limit.observe(Duration::from_millis(60));
        }
        assert_eq!(limit.threshold(), LIMIT / 4);
    }

    #[test]
    fn waits_within_the_limit_bring_it_back_up_to_the_limit_and_no_further() {
        let limit = QueueTimeLimit::new(LIMIT);
        for _ in 0..100 {
            limit.observe(Duration::from_millis(60));
        }
        // 3/4 of the limit back in about 192 steps of 1/256.
        for _ in 0..191 {
            limit.observe(Duration::from_millis(10));
        }
        assert!(limit.threshold() < LIMIT);
        for _ in 0..2 {
            limit.observe(LIMIT); // exactly the limit is within it
        }
        assert_eq!(limit.threshold(), LIMIT);
        limit.observe(Duration::ZERO);
        assert_eq!(limit.threshold(), LIMIT);
    }

    #[test]
    fn the_threshold_stays_between_a_quarter_of_the_limit_and_the_limit() {
        let mut threshold = LIMIT;
        for i in 0u64..10_000 {
            // Pseudo-random waits from 0 to 100 ms.
            let waited = Duration::from_micros((i.wrapping_mul(2_654_435_761) >> 7) % 100_000);
            threshold = corrected(threshold, LIMIT, waited);
            assert!(threshold >= LIMIT / 4 && threshold <= LIMIT, "{threshold:?}");
        }
    }
}
