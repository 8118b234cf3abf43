//! The simulator's clock: simulated time runs `speed` times faster than real time.
//!
//! Every duration in the simulator (app lengths, `sched_hangup +N`, linger, originate
//! timeouts, caller hang-ups) is *simulated*; the clock turns it into a real deadline by
//! dividing by `speed`, so a 60 s schedule at 20× takes 3 s. Event timestamps and the CDR
//! epochs are simulated too, so `billsec` and `duration` read like the real numbers a
//! switch would report for that call.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Simulated wall clock. Cheap to clone; all clones agree.
#[derive(Clone, Debug)]
pub struct SimClock {
    speed: f64,
    origin: Instant,
    /// Simulated epoch (µs) at `origin`.
    origin_epoch_us: i64,
}

impl SimClock {
    /// A clock starting at the real current time. `speed` below 0.001 (or not a
    /// number) is taken as 1: a stopped or backwards clock would hang every call.
    pub fn new(speed: f64) -> Self {
        let speed = if speed.is_finite() && speed >= 0.001 {
            speed
        } else {
            1.0
        };
        let origin_epoch_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        Self {
            speed,
            origin: Instant::now(),
            origin_epoch_us,
        }
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Simulated time now, epoch microseconds.
    pub fn now_us(&self) -> i64 {
        self.at_us(Instant::now())
    }

    /// Simulated epoch microseconds at a real instant.
    pub fn at_us(&self, real: Instant) -> i64 {
        let real_elapsed = real.saturating_duration_since(self.origin);
        self.origin_epoch_us + (real_elapsed.as_secs_f64() * self.speed * 1e6) as i64
    }

    /// How long a simulated duration takes in real time.
    pub fn real(&self, simulated: Duration) -> Duration {
        Duration::from_secs_f64(simulated.as_secs_f64() / self.speed)
    }

    /// The real instant at which `simulated` will have passed from now.
    pub fn deadline(&self, simulated: Duration) -> Instant {
        Instant::now() + self.real(simulated)
    }

    /// The real instant at which the simulated clock reads `epoch_us`.
    pub fn instant_at(&self, epoch_us: i64) -> Instant {
        let sim_from_origin = (epoch_us - self.origin_epoch_us).max(0) as f64 / 1e6;
        self.origin + Duration::from_secs_f64(sim_from_origin / self.speed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accelerated_durations_and_epochs() {
        let c = SimClock::new(20.0);
        assert_eq!(c.real(Duration::from_secs(60)), Duration::from_secs(3));
        let t0 = c.now_us();
        let later = c.instant_at(t0 + 10_000_000);
        let d = later.saturating_duration_since(Instant::now());
        assert!(d <= Duration::from_millis(500), "{d:?}");
        assert!(c.at_us(later) >= t0 + 9_990_000);
        assert_eq!(SimClock::new(0.0).speed(), 1.0);
        assert_eq!(SimClock::new(f64::NAN).speed(), 1.0);
    }
}
