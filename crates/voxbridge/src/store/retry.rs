//! How long the store keeps trying a write that failed transiently.
//!
//! Two policies: the writes a live call makes give up after a short, bounded time (the
//! call must go on), and the final record never gives up while the process runs.

use std::time::Duration;

/// A doubling backoff with a cap and an optional bound on the number of retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// `None`: retry until the store is closed.
    pub max_retries: Option<u32>,
}

impl RetryPolicy {
    /// For the writes of a live call: 50 ms doubling, 5 retries (about 1.5 s in all).
    pub const LIVE_CALL: RetryPolicy = RetryPolicy {
        first_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(800),
        max_retries: Some(5),
    };

    /// For the final call record: 50 ms doubling to 5 s, forever.
    pub const CALL_RECORD: RetryPolicy = RetryPolicy {
        first_delay: Duration::from_millis(50),
        max_delay: Duration::from_secs(5),
        max_retries: None,
    };

    /// The delay before retry number `retry` (1-based), or `None` when out of retries.
    pub fn delay(&self, retry: u32) -> Option<Duration> {
        if let Some(max) = self.max_retries {
            if retry > max {
                return None;
            }
        }
        let shift = retry.saturating_sub(1).min(20);
        Some(
            self.first_delay
                .saturating_mul(1u32 << shift)
                .min(self.max_delay),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_call_policy_is_bounded() {
        let p = RetryPolicy::LIVE_CALL;
        let delays: Vec<_> = (1..=6).map(|n| p.delay(n)).collect();
        assert_eq!(delays[0], Some(Duration::from_millis(50)));
        assert_eq!(delays[1], Some(Duration::from_millis(100)));
        assert_eq!(delays[4], Some(Duration::from_millis(800)));
        assert_eq!(delays[5], None);
    }

    #[test]
    fn call_record_policy_never_gives_up_and_caps() {
        let p = RetryPolicy::CALL_RECORD;
        assert_eq!(p.delay(1_000_000), Some(Duration::from_secs(5)));
        assert_eq!(p.delay(3), Some(Duration::from_millis(200)));
    }
}
