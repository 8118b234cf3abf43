//! The record keeper: the writes a call must not lose, taken off the call's path, and
//! the store's say in whether new calls are taken.
//!
//! Issue 10 point 1: a slow, full or corrupt store must never hold the switch. A call's
//! driver therefore releases the channel first (`exit`) and only then hands its final
//! record to the keeper, which writes it on its own task — retrying transient failures
//! until it lands or the store is closed ([`crate::store::Store::finish_call`]). The
//! driver waits only for a free slot: at most [`RecordKeeper::capacity`] records wait in
//! memory, so a dead disk cannot grow memory without limit (the writer's own queue is
//! bounded too).
//!
//! Admission ([`RecordKeeper::admit`]): while final records are waiting (or a refused
//! call's record is about to be handed over: [`RefusalHeld`]) *and* the last write failed
//! for a reason of the store's (busy, disk full, I/O, corrupt), new calls are refused at
//! once (SIP 503, HangupSource `Error`), with a log line when the state
//! changes and a metric (`voxbridge_calls_refused_total{reason="store_unavailable"}`).
//! Otherwise a call is taken, and its live row — written before its first command to the
//! channel — is the probe: when it cannot be written the call is refused too. So
//! admission needs no write of its own, and it reopens by itself once a waiting record
//! lands.
//!
//! Corruption is not transient ([`crate::store::StoreError::is_transient`]): a record
//! that meets it is logged in full and given up, and calls keep being refused (each
//! costs one failed live-row write) until an operator repairs or replaces the file.

use crate::metrics::Metrics;
use crate::record::call::CallRecord;
use crate::record::callback::NewCallback;
use crate::store::{FinishOutcome, StoreHandle};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tracing::Instrument;

/// Records that may wait in memory for the store by default (a few KiB each): about a
/// minute of a dead disk at a few hundred calls per second, refused calls included. Past
/// it, a finished call's task waits for room *after* leaving its socket, holding only its
/// slot under `esl.max_calls` — the switch is never held.
pub const DEFAULT_CAPACITY: usize = 20_000;

/// Shared by every call task (cheap to clone).
#[derive(Clone)]
pub struct RecordKeeper {
    inner: Arc<Inner>,
}

struct Inner {
    store: StoreHandle,
    metrics: Arc<Metrics>,
    slots: Arc<Semaphore>,
    capacity: usize,
    waiting: AtomicUsize,
    drained: Notify,
    /// Whether calls were being refused at the last admission check (for the log line
    /// on each change of state).
    refusing: AtomicBool,
    /// Calls refused for their live row whose records are not handed over yet.
    refusals_held: AtomicUsize,
}

/// A call refused because its live row could not be written, from the refusal until its
/// record is handed over (drop it after [`RecordKeeper::keep`], or with the call's task).
/// While one is held, admission counts it like a waiting record: a call arriving between
/// that refusal's hang-up and its record's hand-over is refused at once too, instead of
/// being taken and asking the application for a document it can never run.
pub struct RefusalHeld(Arc<Inner>);

impl Drop for RefusalHeld {
    fn drop(&mut self) {
        self.0.refusals_held.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What [`RecordKeeper::admit`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Take,
    /// The store cannot write now: refuse the call (SIP 503).
    RefuseStoreUnavailable,
}

impl RecordKeeper {
    pub fn new(store: StoreHandle, metrics: Arc<Metrics>, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            inner: Arc::new(Inner {
                store,
                metrics,
                slots: Arc::new(Semaphore::new(capacity)),
                capacity,
                waiting: AtomicUsize::new(0),
                drained: Notify::new(),
                refusing: AtomicBool::new(false),
                refusals_held: AtomicUsize::new(0),
            }),
        }
    }

    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Final records handed over and not yet written.
    pub fn waiting(&self) -> usize {
        self.inner.waiting.load(Ordering::Relaxed)
    }

    /// Whether a new call is taken (see the module docs).
    pub fn admit(&self) -> Admission {
        let failing = !self.inner.store.health().writable;
        let pending = self.waiting() > 0 || self.inner.refusals_held.load(Ordering::Relaxed) > 0;
        let refuse = failing && pending;
        self.note_state(refuse);
        if refuse {
            self.inner.metrics.call_refused("store_unavailable");
            Admission::RefuseStoreUnavailable
        } else {
            Admission::Take
        }
    }

    /// A call was refused because its live row could not be written; hold the result
    /// until its record is handed over.
    pub fn live_row_failed(&self) -> RefusalHeld {
        self.inner.refusals_held.fetch_add(1, Ordering::Relaxed);
        self.note_state(true);
        self.inner.metrics.call_refused("store_unavailable");
        RefusalHeld(self.inner.clone())
    }

    fn note_state(&self, refuse: bool) {
        let was = self.inner.refusing.swap(refuse, Ordering::Relaxed);
        if refuse && !was {
            let health = self.inner.store.health();
            tracing::error!(
                waiting_records = self.waiting(),
                last_error = health.last_error.as_deref().unwrap_or(""),
                "THE STORE CANNOT WRITE: refusing new calls (503) until it recovers"
            );
        } else if was && !refuse {
            tracing::warn!("the store writes again: taking calls");
        }
    }

    /// Hands a final record over; returns once it is queued (waits only while
    /// [`capacity`](Self::capacity) records are already waiting). The record is then
    /// written on its own task, retried until it lands or the store is closed, and, if it
    /// cannot be stored at all, logged in full by the store.
    pub async fn keep(&self, record: CallRecord, callbacks: Vec<NewCallback>) {
        let permit = match self.inner.slots.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => return, // the semaphore is never closed
        };
        self.inner.waiting.fetch_add(1, Ordering::Relaxed);
        self.inner.metrics.records_waiting(self.waiting());
        let inner = self.inner.clone();
        tokio::spawn(
            async move {
                let _permit = permit;
                match inner.store.finish_call(record, callbacks).await {
                    Ok(FinishOutcome::Finished) => tracing::debug!("record written"),
                    Ok(FinishOutcome::AlreadyFinished) => {
                        tracing::debug!("record already written (first hangup wins)")
                    }
                    Err(e) => tracing::error!(error = %e, "THE CALL RECORD COULD NOT BE WRITTEN"),
                }
                let left = inner.waiting.fetch_sub(1, Ordering::Relaxed) - 1;
                inner.metrics.records_waiting(left);
                if left == 0 {
                    inner.drained.notify_waiters();
                }
            }
            .in_current_span(),
        );
    }

    /// Waits until every record handed over is written (or given up), at most `limit`.
    /// Returns how many are still waiting.
    pub async fn drain(&self, limit: Duration) -> usize {
        let _ = tokio::time::timeout(limit, async {
            loop {
                let drained = self.inner.drained.notified();
                if self.waiting() == 0 {
                    return;
                }
                drained.await;
            }
        })
        .await;
        self.waiting()
    }
}
