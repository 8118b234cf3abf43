//! Store health: every error is logged loudly and counted here, so `/health` and the
//! metrics can show a store in trouble (disk full, locked, corrupt) while calls go on.

use super::error::StoreError;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use time::OffsetDateTime;

/// A snapshot for `/health` and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreHealth {
    /// The most recent store operation succeeded.
    pub ok: bool,
    /// Errors since start.
    pub error_count: u64,
    /// The most recent error, with its kind.
    pub last_error: Option<String>,
    pub last_error_at: Option<OffsetDateTime>,
    /// The most recent *write* succeeded, or failed for a reason that is not the store's
    /// (a constraint). Reads do not count: a full disk still reads fine. This is what
    /// decides whether new calls are taken ([`crate::store::keeper`]).
    pub writable: bool,
}

/// Shared, lock-light tracker an implementation updates on every operation.
#[derive(Debug)]
pub struct HealthTracker {
    ok: AtomicBool,
    writable: AtomicBool,
    errors: AtomicU64,
    last: Mutex<Option<(String, OffsetDateTime)>>,
}

impl Default for HealthTracker {
    fn default() -> Self {
        Self {
            ok: AtomicBool::new(true),
            writable: AtomicBool::new(true),
            errors: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }
}

impl HealthTracker {
    pub fn record_ok(&self) {
        self.ok.store(true, Ordering::Relaxed);
    }

    /// A write committed.
    pub fn record_write_ok(&self) {
        self.ok.store(true, Ordering::Relaxed);
        self.writable.store(true, Ordering::Relaxed);
    }

    /// A write failed: logged and counted like any error, and the store counts as unable
    /// to write when the failure is the store's (busy, disk full, I/O, corrupt).
    pub fn record_write_error(&self, what: &str, error: &StoreError) {
        use super::error::StoreErrorKind as K;
        self.record_error(what, error);
        if matches!(error.kind, K::Busy | K::DiskFull | K::Io | K::Corrupt) {
            self.writable.store(false, Ordering::Relaxed);
        }
    }

    /// Logs at error level and counts. `what` names the operation.
    pub fn record_error(&self, what: &str, error: &StoreError) {
        self.ok.store(false, Ordering::Relaxed);
        let count = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::error!(
            operation = what,
            kind = error.kind.as_str(),
            error_count = count,
            "STORE ERROR during {what}: {error}"
        );
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        *last = Some((error.to_string(), OffsetDateTime::now_utc()));
    }

    pub fn snapshot(&self) -> StoreHealth {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        StoreHealth {
            ok: self.ok.load(Ordering::Relaxed),
            error_count: self.errors.load(Ordering::Relaxed),
            last_error: last.as_ref().map(|(m, _)| m.clone()),
            last_error_at: last.map(|(_, t)| t),
            writable: self.writable.load(Ordering::Relaxed),
        }
    }
}
