//! Prometheus metrics, rendered in the text exposition format on `GET /metrics`.
//!
//! A few atomics and one small map behind a mutex are all voxbridge needs, so this is
//! written out rather than pulling in a metrics framework and its global recorder:
//! state is passed explicitly (an `Arc<Metrics>` per server), which also keeps tests
//! that run several servers in one process from sharing counters.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the document-fetch latency histogram.
const FETCH_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
pub struct Metrics {
    live_calls: AtomicU64,
    calls_started: AtomicU64,
    /// (cause, source) → calls ended.
    calls_ended: Mutex<BTreeMap<(String, String), u64>>,
    /// outcome (`delivered`, `retry`, `failed`) → delivery attempts.
    deliveries: Mutex<BTreeMap<String, u64>>,
    fetch_buckets: [AtomicU64; 11],
    fetch_count: AtomicU64,
    fetch_sum_micros: AtomicU64,
    fetch_errors: AtomicU64,
    esl_protocol_errors: AtomicU64,
    esl_rejected_peers: AtomicU64,
}

/// Values read from elsewhere at scrape time (the store, the listener).
#[derive(Default, Clone, Copy, Debug)]
pub struct Gauges {
    pub outbox_backlog: u64,
    pub store_errors: u64,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn call_started(&self) {
        self.calls_started.fetch_add(1, Ordering::Relaxed);
        self.live_calls.fetch_add(1, Ordering::Relaxed);
    }

    pub fn call_ended(&self, cause: &str, source: &str) {
        let _ = self
            .live_calls
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
        let mut map = self.calls_ended.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((cause.to_string(), source.to_string()))
            .or_default() += 1;
    }

    pub fn live_calls(&self) -> u64 {
        self.live_calls.load(Ordering::Relaxed)
    }

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

    pub fn delivery(&self, outcome: &str) {
        let mut map = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(outcome.to_string()).or_default() += 1;
    }

    pub fn esl_protocol_error(&self) {
        self.esl_protocol_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn esl_rejected_peer(&self) {
        self.esl_rejected_peers.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition format.
    pub fn render(&self, gauges: Gauges) -> String {
        let mut out = String::with_capacity(2048);
        header(
            &mut out,
            "voxbridge_live_calls",
            "gauge",
            "Calls currently controlled.",
        );
        let _ = writeln!(out, "voxbridge_live_calls {}", self.live_calls());
        header(
            &mut out,
            "voxbridge_calls_started_total",
            "counter",
            "Calls taken over from the switch.",
        );
        let _ = writeln!(
            out,
            "voxbridge_calls_started_total {}",
            self.calls_started.load(Ordering::Relaxed)
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
        header(
            &mut out,
            "voxbridge_document_fetch_errors_total",
            "counter",
            "Fetches that produced no valid document.",
        );
        let _ = writeln!(
            out,
            "voxbridge_document_fetch_errors_total {}",
            self.fetch_errors.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "voxbridge_callback_deliveries_total",
            "counter",
            "Callback delivery attempts, by outcome.",
        );
        for (outcome, n) in self
            .deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "voxbridge_callback_deliveries_total{{outcome=\"{}\"}} {n}",
                escape(outcome)
            );
        }
        header(
            &mut out,
            "voxbridge_outbox_backlog",
            "gauge",
            "Callbacks not yet delivered.",
        );
        let _ = writeln!(out, "voxbridge_outbox_backlog {}", gauges.outbox_backlog);
        header(
            &mut out,
            "voxbridge_store_errors_total",
            "counter",
            "Store errors (disk full, locked, corrupt).",
        );
        let _ = writeln!(out, "voxbridge_store_errors_total {}", gauges.store_errors);
        header(
            &mut out,
            "voxbridge_esl_protocol_errors_total",
            "counter",
            "ESL connections closed for protocol errors.",
        );
        let _ = writeln!(
            out,
            "voxbridge_esl_protocol_errors_total {}",
            self.esl_protocol_errors.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "voxbridge_esl_rejected_peers_total",
            "counter",
            "ESL connections refused (not allow-listed, or over the call limit).",
        );
        let _ = writeln!(
            out,
            "voxbridge_esl_rejected_peers_total {}",
            self.esl_rejected_peers.load(Ordering::Relaxed)
        );
        out
    }
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
        m.delivery("delivered");
        let text = m.render(Gauges {
            outbox_backlog: 3,
            store_errors: 0,
        });
        assert!(text.contains("voxbridge_live_calls 1\n"), "{text}");
        assert!(text
            .contains("voxbridge_calls_ended_total{cause=\"USER_BUSY\",source=\"Answer XML\"} 1"));
        assert!(text.contains("voxbridge_document_fetch_seconds_bucket{le=\"0.025\"} 0"));
        assert!(text.contains("voxbridge_document_fetch_seconds_bucket{le=\"0.05\"} 1"));
        assert!(text.contains("voxbridge_document_fetch_seconds_count 1"));
        assert!(text.contains("voxbridge_callback_deliveries_total{outcome=\"delivered\"} 1"));
        assert!(text.contains("voxbridge_outbox_backlog 3"));
    }
}
