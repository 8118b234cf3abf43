//! Prometheus metrics, rendered in the text exposition format on `GET /metrics`.
//!
//! A few atomics and one small map behind a mutex are all voxbridge needs, so this is
//! written out rather than pulling in a metrics framework and its global recorder:
//! state is passed explicitly (an `Arc<Metrics>` per server), which also keeps tests
//! that run several servers in one process from sharing counters.

use crate::esl::counters::EslCountersSnapshot;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Delivery counters since start, for metrics (counted by the outbox worker).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub delivered: u64,
    /// Attempts that failed and were rescheduled.
    pub retried: u64,
    /// Rows marked failed (permanent, or given up).
    pub failed: u64,
}

/// Upper bounds (seconds) of the document-fetch latency histogram.
const FETCH_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What voxbridge counts itself: calls and document fetches. Everything other parts
/// already count (ESL sockets, callback deliveries, the store, live calls) is read from
/// them at scrape time ([`Scrape`]), so nothing is counted twice.
#[derive(Default)]
pub struct Metrics {
    calls_started: AtomicU64,
    /// (cause, source) → calls ended.
    calls_ended: Mutex<BTreeMap<(String, String), u64>>,
    fetch_buckets: [AtomicU64; 11],
    fetch_count: AtomicU64,
    fetch_sum_micros: AtomicU64,
    fetch_errors: AtomicU64,
    /// reason → calls refused before any document was fetched.
    calls_refused: Mutex<BTreeMap<String, u64>>,
    /// Final records handed to the store and not yet written.
    records_waiting: AtomicU64,
}

/// Values owned elsewhere, read when `/metrics` is scraped.
#[derive(Default, Clone, Debug)]
pub struct Scrape {
    /// Calls this process controls now (the live-call registry).
    pub live_calls: u64,
    /// Outbox rows not yet delivered; `None` when the store could not say (the sample is
    /// then left out rather than reported as 0).
    pub outbox_backlog: Option<u64>,
    /// Callback delivery outcomes since start (the outbox worker's counters).
    pub deliveries: OutboxStats,
    /// Store errors since start.
    pub store_errors: u64,
    /// The most recent store operation succeeded.
    pub store_ok: bool,
    pub esl: EslCountersSnapshot,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// A call was taken over from the switch.
    pub fn call_started(&self) {
        self.calls_started.fetch_add(1, Ordering::Relaxed);
    }

    /// A call ended with this hangup cause (switch name) and HangupSource.
    pub fn call_ended(&self, cause: &str, source: &str) {
        let mut map = self.calls_ended.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((cause.to_string(), source.to_string()))
            .or_default() += 1;
    }

    /// A call was refused for `reason` (e.g. `store_unavailable`) without running.
    pub fn call_refused(&self, reason: &str) {
        let mut map = self.calls_refused.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(reason.to_string()).or_default() += 1;
    }

    /// How many final records now wait for the store.
    pub fn records_waiting(&self, n: usize) {
        self.records_waiting.store(n as u64, Ordering::Relaxed);
    }

    /// One answer-document fetch (retries and fallback included) took `elapsed`.
    pub fn fetch_observed(&self, elapsed: Duration, ok: bool) {
        let secs = elapsed.as_secs_f64();
        for (i, bound) in FETCH_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.fetch_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.fetch_count.fetch_add(1, Ordering::Relaxed);
        self.fetch_sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        if !ok {
            self.fetch_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self, scrape: &Scrape) -> String {
        let mut out = String::with_capacity(4096);
        gauge(
            &mut out,
            "voxbridge_live_calls",
            "Calls this process controls now.",
            scrape.live_calls,
        );
        counter(
            &mut out,
            "voxbridge_calls_started_total",
            "Calls taken over from the switch.",
            self.calls_started.load(Ordering::Relaxed),
        );
        header(
            &mut out,
            "voxbridge_calls_ended_total",
            "counter",
            "Calls ended, by hangup cause and hangup source.",
        );
        for ((cause, source), n) in self
            .calls_ended
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "voxbridge_calls_ended_total{{cause=\"{}\",source=\"{}\"}} {n}",
                escape(cause),
                escape(source)
            );
        }
        header(
            &mut out,
            "voxbridge_calls_refused_total",
            "counter",
            "Calls refused without running, by reason (store_unavailable: the store could \
             not write, SIP 503).",
        );
        for (reason, n) in self
            .calls_refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "voxbridge_calls_refused_total{{reason=\"{}\"}} {n}",
                escape(reason)
            );
        }
        gauge(
            &mut out,
            "voxbridge_records_waiting",
            "Final call records handed to the store and not yet written.",
            self.records_waiting.load(Ordering::Relaxed),
        );
        self.render_fetches(&mut out);
        header(
            &mut out,
            "voxbridge_callback_deliveries_total",
            "counter",
            "Callback delivery attempts by outcome: delivered (2xx), retried (failed, \
             rescheduled), failed (permanent, or given up).",
        );
        for (outcome, n) in [
            ("delivered", scrape.deliveries.delivered),
            ("retried", scrape.deliveries.retried),
            ("failed", scrape.deliveries.failed),
        ] {
            let _ = writeln!(
                out,
                "voxbridge_callback_deliveries_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        header(
            &mut out,
            "voxbridge_outbox_backlog",
            "gauge",
            "Callbacks written but not yet delivered (pending outbox rows).",
        );
        if let Some(backlog) = scrape.outbox_backlog {
            let _ = writeln!(out, "voxbridge_outbox_backlog {backlog}");
        }
        counter(
            &mut out,
            "voxbridge_store_errors_total",
            "Store errors (disk full, locked, corrupt, I/O).",
            scrape.store_errors,
        );
        gauge(
            &mut out,
            "voxbridge_store_up",
            "1 when the most recent store operation succeeded.",
            u64::from(scrape.store_ok),
        );
        self.render_esl(&mut out, &scrape.esl);
        out
    }

    fn render_fetches(&self, out: &mut String) {
        header(
            out,
            "voxbridge_document_fetch_seconds",
            "histogram",
            "Answer-document fetch latency, retries and fallback included.",
        );
        for (i, bound) in FETCH_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "voxbridge_document_fetch_seconds_bucket{{le=\"{bound}\"}} {}",
                self.fetch_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.fetch_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "voxbridge_document_fetch_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "voxbridge_document_fetch_seconds_sum {}",
            self.fetch_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "voxbridge_document_fetch_seconds_count {count}");
        counter(
            out,
            "voxbridge_document_fetch_errors_total",
            "Fetches that produced no valid document.",
            self.fetch_errors.load(Ordering::Relaxed),
        );
    }

    fn render_esl(&self, out: &mut String, esl: &EslCountersSnapshot) {
        counter(
            out,
            "voxbridge_esl_protocol_errors_total",
            "ESL connections closed because the byte stream was not ESL.",
            esl.protocol_errors,
        );
        counter(
            out,
            "voxbridge_esl_unexpected_frames_total",
            "ESL frames skipped as undecodable (the connection carried on).",
            esl.unexpected_frames,
        );
        counter(
            out,
            "voxbridge_esl_handshake_failures_total",
            "Outbound handshakes (connect, linger, myevents…) that failed or timed out.",
            esl.handshake_failures,
        );
        counter(
            out,
            "voxbridge_esl_connections_accepted_total",
            "Outbound ESL connections accepted.",
            esl.accepted,
        );
        header(
            out,
            "voxbridge_esl_connections_rejected_total",
            "counter",
            "Outbound ESL connections refused, by reason.",
        );
        let _ = writeln!(
            out,
            "voxbridge_esl_connections_rejected_total{{reason=\"not_allowed\"}} {}",
            esl.rejected_not_allowed
        );
        let _ = writeln!(
            out,
            "voxbridge_esl_connections_rejected_total{{reason=\"over_limit\"}} {}",
            esl.rejected_over_limit
        );
        gauge(
            out,
            "voxbridge_esl_connections_active",
            "Outbound ESL connections being handled now.",
            esl.active,
        );
    }
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_move_and_render() {
        let m = Metrics::new();
        m.call_started();
        m.call_started();
        m.call_ended("USER_BUSY", "Answer XML");
        m.fetch_observed(Duration::from_millis(30), true);
        let text = m.render(&Scrape {
            live_calls: 1,
            outbox_backlog: Some(3),
            deliveries: OutboxStats {
                delivered: 4,
                retried: 2,
                failed: 1,
            },
            store_errors: 0,
            store_ok: true,
            esl: EslCountersSnapshot {
                protocol_errors: 5,
                rejected_not_allowed: 6,
                ..EslCountersSnapshot::default()
            },
        });
        assert!(text.contains("voxbridge_live_calls 1\n"), "{text}");
        assert!(text.contains("voxbridge_calls_started_total 2\n"));
        assert!(text
            .contains("voxbridge_calls_ended_total{cause=\"USER_BUSY\",source=\"Answer XML\"} 1"));
        assert!(text.contains("voxbridge_document_fetch_seconds_bucket{le=\"0.025\"} 0"));
        assert!(text.contains("voxbridge_document_fetch_seconds_bucket{le=\"0.05\"} 1"));
        assert!(text.contains("voxbridge_document_fetch_seconds_count 1"));
        assert!(text.contains("voxbridge_callback_deliveries_total{outcome=\"delivered\"} 4"));
        assert!(text.contains("voxbridge_callback_deliveries_total{outcome=\"retried\"} 2"));
        assert!(text.contains("voxbridge_callback_deliveries_total{outcome=\"failed\"} 1"));
        assert!(text.contains("voxbridge_outbox_backlog 3\n"));
        assert!(text.contains("voxbridge_esl_protocol_errors_total 5\n"));
        assert!(
            text.contains("voxbridge_esl_connections_rejected_total{reason=\"not_allowed\"} 6\n")
        );
        assert!(text.contains("voxbridge_store_up 1\n"));
    }

    #[test]
    fn every_sample_has_help_and_type_and_labels_are_escaped() {
        let m = Metrics::new();
        m.call_ended("X\"Y", "a\\b\nc");
        let text = m.render(&Scrape::default());
        assert!(text.contains(r#"cause="X\"Y",source="a\\b\nc""#), "{text}");
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("voxbridge_outbox_backlog")),
            "an unknown backlog is left out"
        );
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let base = name
                    .trim_end_matches("_bucket")
                    .trim_end_matches("_sum")
                    .trim_end_matches("_count");
                assert!(
                    typed.contains(name) || typed.contains(base),
                    "{name} has no # TYPE line"
                );
            }
        }
    }
}
