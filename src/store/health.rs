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
}

/// Shared, lock-light tracker an implementation updates on every operation.
#[derive(Debug)]
pub struct HealthTracker {
    ok: AtomicBool,
    errors: AtomicU64,
    last: Mutex<Option<(String, OffsetDateTime)>>,
}

impl Default for HealthTracker {
    fn default() -> Self {
        Self {
            ok: AtomicBool::new(true),
            errors: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }
}

impl HealthTracker {
    pub fn record_ok(&self) {
        self.ok.store(true, Ordering::Relaxed);
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
        }
    }
}
