//! The switch's clock, seen from voxbridge.
//!
//! The engine compares times across inputs — above all "was the armed `sched_hangup`
//! due when the channel went down?" (SPEC §4 rules 3–4). Those times must come from the
//! switch: its events carry `Event-Date-Timestamp` (µs), and a late-delivered event or a
//! switch whose clock runs at another rate (the simulator's accelerated clock) must not
//! turn a fired schedule into an "Unknown" hangup. So every input is stamped in switch
//! time, mapped onto a local `Instant`: events by their own timestamp, local inputs
//! (fetch results, REST commands, timers) by the last event's time plus the local time
//! elapsed since it arrived. The mapping starts at the `connect` reply, so a switch whose
//! wall clock is off by minutes still maps correctly; it never runs backwards.

use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct SwitchClock {
    /// (local instant, switch µs) of the first timestamp seen.
    base: Option<(Instant, i64)>,
    /// The latest mapped time handed out, and the local instant it was handed out at.
    last: Instant,
    last_local: Instant,
}

impl SwitchClock {
    /// Starts at the `connect` reply's `Event-Date-Timestamp`, if it has one.
    pub fn new(connect_timestamp_us: Option<i64>) -> Self {
        let now = Instant::now();
        Self {
            base: connect_timestamp_us.map(|ts| (now, ts)),
            last: now,
            last_local: now,
        }
    }

    /// The switch time of an event with this `Event-Date-Timestamp`.
    pub fn at_event(&mut self, timestamp_us: Option<i64>) -> Instant {
        let local = Instant::now();
        let mapped = match (timestamp_us, self.base) {
            (Some(ts), Some((base_local, base_ts))) => {
                // A timestamp far off the base (a switch bug, a hostile peer) must not
                // overflow `Instant`: it counts as "now" instead.
                let delta = ts.saturating_sub(base_ts);
                if delta >= 0 {
                    base_local
                        .checked_add(Duration::from_micros(delta as u64))
                        .unwrap_or(local)
                } else {
                    base_local
                }
            }
            (Some(ts), None) => {
                self.base = Some((local, ts));
                local
            }
            (None, _) => self.now(),
        };
        let mapped = mapped.max(self.last);
        self.last = mapped;
        self.last_local = local;
        mapped
    }

    /// The switch time now, for inputs that are not switch events.
    pub fn now(&self) -> Instant {
        self.last + Instant::now().saturating_duration_since(self.last_local)
    }
}

/// `Event-Date-Timestamp` of an event's headers, in µs.
pub fn event_timestamp(value: Option<&str>) -> Option<i64> {
    value
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|v| *v > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_switch_time_even_when_it_runs_faster_than_ours() {
        let mut c = SwitchClock::new(Some(1_000_000));
        let t1 = c.at_event(Some(1_000_000));
        // 20 s of switch time pass in no local time at all (an accelerated switch).
        let t2 = c.at_event(Some(21_000_000));
        assert!(t2.duration_since(t1) >= Duration::from_secs(20));
        assert!(c.now() >= t2, "local inputs continue from the last event");
    }

    #[test]
    fn never_runs_backwards() {
        let mut c = SwitchClock::new(Some(5_000_000));
        let t1 = c.at_event(Some(9_000_000));
        let t2 = c.at_event(Some(6_000_000)); // delivered late, stamped earlier
        assert!(t2 >= t1);
        let t3 = c.at_event(None);
        assert!(t3 >= t2);
    }

    #[test]
    fn parses_timestamps() {
        assert_eq!(
            event_timestamp(Some("1795235383226145")),
            Some(1795235383226145)
        );
        assert_eq!(event_timestamp(Some("0")), None);
        assert_eq!(event_timestamp(Some("x")), None);
        assert_eq!(event_timestamp(None), None);
    }
}
