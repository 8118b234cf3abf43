//! When to try a callback again (SPEC §5.4): exponential backoff from `initial` (1 s),
//! doubling, capped at `max` (5 min), with jitter, for `give_up_after` (24 h) counted
//! from when the row was written. Pure: the jitter draw is passed in.

use std::time::Duration;
use time::OffsetDateTime;

/// How much of a delay jitter may take off: delays fall in `[75 %, 100 %]` of the base.
/// Jitter only ever shortens, so the cap stays a cap and rows that failed together
/// (one receiver down) spread out instead of retrying in lockstep.
pub const JITTER: f64 = 0.25;

/// The retry schedule of one outbox.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetrySchedule {
    pub initial: Duration,
    pub max: Duration,
    pub give_up_after: Duration,
}

/// What to do after a retryable failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextAttempt {
    At(OffsetDateTime),
    GiveUp,
}

impl RetrySchedule {
    /// The delay before the next attempt after `attempts` failed ones (1-based), without
    /// jitter: `initial · 2^(attempts−1)`, at most `max`.
    pub fn base_delay(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(62) as i32;
        let secs = self.initial.as_secs_f64() * 2f64.powi(exp);
        let capped = secs.min(self.max.as_secs_f64());
        Duration::try_from_secs_f64(capped).unwrap_or(self.max)
    }

    /// The jittered delay: `base · (1 − JITTER · r)` for a draw `r` in `[0, 1)`.
    pub fn delay(&self, attempts: u32, r: f64) -> Duration {
        let r = if r.is_finite() {
            r.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.base_delay(attempts).mul_f64(1.0 - JITTER * r)
    }

    /// After `attempts` failed attempts, the last at `now`, of a row written at
    /// `created_at`: the time of the next attempt, or give up. The retry window closes
    /// `give_up_after` after `created_at`; a delay that would overshoot it is shortened so
    /// one last attempt happens as the window closes.
    pub fn next(
        &self,
        attempts: u32,
        created_at: OffsetDateTime,
        now: OffsetDateTime,
        r: f64,
    ) -> NextAttempt {
        let deadline = created_at + self.give_up_after;
        if now >= deadline {
            return NextAttempt::GiveUp;
        }
        let at = now + self.delay(attempts, r);
        NextAttempt::At(at.min(deadline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn spec() -> RetrySchedule {
        RetrySchedule {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            give_up_after: Duration::from_secs(86_400),
        }
    }

    #[test]
    fn doubles_from_initial_and_caps() {
        let s = spec();
        let secs: Vec<f64> = (1..=11).map(|n| s.base_delay(n).as_secs_f64()).collect();
        assert_eq!(
            secs,
            [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0, 300.0]
        );
        // Far past the cap, and with absurd attempt counts, still the cap.
        assert_eq!(s.base_delay(1_000), Duration::from_secs(300));
        assert_eq!(s.base_delay(u32::MAX), Duration::from_secs(300));
        // Attempt 0 (never happens) behaves like the first.
        assert_eq!(s.base_delay(0), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let s = spec();
        for attempts in 1..=12 {
            let base = s.base_delay(attempts);
            for i in 0..100 {
                let r = i as f64 / 100.0;
                let d = s.delay(attempts, r);
                assert!(d <= base, "attempt {attempts} r {r}: {d:?} > {base:?}");
                assert!(
                    d >= base.mul_f64(1.0 - JITTER),
                    "attempt {attempts} r {r}: {d:?} too short"
                );
                assert!(d <= s.max);
            }
        }
        assert_eq!(s.delay(1, 0.0), Duration::from_secs(1));
        assert_eq!(s.delay(1, 0.5), Duration::from_millis(875));
        // Out-of-range draws are clamped, not trusted.
        assert_eq!(s.delay(1, f64::NAN), Duration::from_secs(1));
        assert_eq!(s.delay(1, 7.0), Duration::from_millis(750));
        assert_eq!(s.delay(1, -1.0), Duration::from_secs(1));
    }

    #[test]
    fn gives_up_when_the_window_closes() {
        let s = spec();
        let created = datetime!(2026-04-09 10:00:00 UTC);
        // Early on: now + jittered delay.
        assert_eq!(
            s.next(3, created, created + Duration::from_secs(10), 0.0),
            NextAttempt::At(created + Duration::from_secs(14))
        );
        // Close to the end: the last attempt lands on the deadline, not after it.
        let late = created + Duration::from_secs(86_400 - 60);
        assert_eq!(
            s.next(400, created, late, 0.0),
            NextAttempt::At(created + Duration::from_secs(86_400))
        );
        // At or past the deadline: give up.
        assert_eq!(
            s.next(401, created, created + Duration::from_secs(86_400), 0.0),
            NextAttempt::GiveUp
        );
        assert_eq!(
            s.next(1, created, created + Duration::from_secs(90_000), 0.3),
            NextAttempt::GiveUp
        );
    }

    #[test]
    fn zero_window_gives_up_at_once() {
        let s = RetrySchedule {
            give_up_after: Duration::ZERO,
            ..spec()
        };
        let t = datetime!(2026-04-09 10:00:00 UTC);
        assert_eq!(s.next(1, t, t, 0.0), NextAttempt::GiveUp);
    }
}
