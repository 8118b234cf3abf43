//! Counters of what happened on ESL sockets, shared by the listener and every
//! connection. Plain atomics: metrics read them, nothing here knows about Prometheus.

use std::sync::atomic::{AtomicU64, Ordering};

/// Event Socket counters. Every field only ever grows, except `active`.
#[derive(Debug, Default)]
pub struct EslCounters {
    /// Outbound connections accepted and handed to a task.
    pub accepted: AtomicU64,
    /// Peers outside the allow-list, closed at once.
    pub rejected_not_allowed: AtomicU64,
    /// Peers refused because the connection limit was reached.
    pub rejected_over_limit: AtomicU64,
    /// Outbound handshakes (`connect`, `myevents`, `linger`, …) that failed or timed out.
    pub handshake_failures: AtomicU64,
    /// Connections closed because the byte stream was not ESL (garbage, an oversized or
    /// invalid `Content-Length`, an unbounded header block, a frame cut off by EOF).
    pub protocol_errors: AtomicU64,
    /// Frames skipped because they could not be decoded (unknown type, bad event body);
    /// the connection carried on.
    pub unexpected_frames: AtomicU64,
    /// Outbound connections currently being handled (gauge).
    pub active: AtomicU64,
}

/// A point-in-time copy of [`EslCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EslCountersSnapshot {
    pub accepted: u64,
    pub rejected_not_allowed: u64,
    pub rejected_over_limit: u64,
    pub handshake_failures: u64,
    pub protocol_errors: u64,
    pub unexpected_frames: u64,
    pub active: u64,
}

impl EslCounters {
    pub fn snapshot(&self) -> EslCountersSnapshot {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EslCountersSnapshot {
            accepted: r(&self.accepted),
            rejected_not_allowed: r(&self.rejected_not_allowed),
            rejected_over_limit: r(&self.rejected_over_limit),
            handshake_failures: r(&self.handshake_failures),
            protocol_errors: r(&self.protocol_errors),
            unexpected_frames: r(&self.unexpected_frames),
            active: r(&self.active),
        }
    }
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}
