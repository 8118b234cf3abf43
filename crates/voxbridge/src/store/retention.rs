//! Retention: what a store keeps, and the periodic task that prunes the rest, the same
//! rules for SQLite and PostgreSQL ([`crate::store::Store::prune_old`]):
//! - **delivered outbox rows** whose delivery is older than `retention_delivered_days`
//!   (default 30): once delivered, a row is only history;
//! - **CDRs** that ended longer ago than `retention_cdr_days` (default 90), together
//!   with their remaining outbox rows (delivered or permanently failed) — never a call
//!   that still has a pending callback, whatever its age.
//!
//! `0` keeps that kind forever. Each store deletes in small batches (a transaction
//! each), so live-call writes are never held up for long. SQLite then checkpoints its
//! WAL ([`crate::store::sqlite::retention`]); PostgreSQL leaves reclaiming space to
//! autovacuum. In a fleet every node runs the task: the deletes are idempotent and each
//! re-checks, inside its statement, that no callback of the call is pending, so two
//! nodes pruning at once delete each row once, and a callback enqueued for an old call
//! before the delete keeps its CDR.

use crate::config::StoreConfig;
use crate::store::StoreHandle;
use std::time::Duration;
use time::OffsetDateTime;

/// Rows (or CDRs) deleted per transaction.
pub const BATCH: usize = 500;

/// What to keep, from the `[store]` section.
#[derive(Clone, Debug, PartialEq)]
pub struct RetentionPolicy {
    /// CDRs (and their callback rows) older than this are deleted; `None`: kept forever.
    pub cdrs: Option<Duration>,
    /// Delivered callback rows older than this are deleted; `None`: kept forever.
    pub delivered_callbacks: Option<Duration>,
    /// Time between two runs.
    pub interval: Duration,
}

impl RetentionPolicy {
    /// From `[store] retention_cdr_days`, `retention_delivered_days` and
    /// `retention_interval_secs` (validated by the config loader).
    pub fn from_config(store: &StoreConfig) -> Self {
        let days = |d: f64| {
            (d > 0.0)
                .then(|| Duration::try_from_secs_f64(d * 86_400.0).ok())
                .flatten()
        };
        Self {
            cdrs: days(store.retention_cdr_days),
            delivered_callbacks: days(store.retention_delivered_days),
            interval: Duration::try_from_secs_f64(store.retention_interval_secs)
                .ok()
                .filter(|d| !d.is_zero())
                .unwrap_or(Duration::from_secs(3600)),
        }
    }

    /// Whether the policy keeps everything (nothing to run).
    pub fn keeps_everything(&self) -> bool {
        self.cdrs.is_none() && self.delivered_callbacks.is_none()
    }
}

/// What one run removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub cdrs: u64,
    pub callbacks: u64,
    /// SQLite: whether the WAL checkpoint completed (it may not while readers hold old
    /// pages). PostgreSQL: always `false` (autovacuum's business).
    pub checkpointed: bool,
}

/// The periodic retention task; stops when dropped.
pub struct RetentionTask(tokio::task::JoinHandle<()>);

impl Drop for RetentionTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts pruning `store` every `policy.interval` (the first run one interval after
/// start: a restart loop must not turn into a pruning loop). `None` when the policy
/// keeps everything.
pub fn start(store: StoreHandle, policy: RetentionPolicy) -> Option<RetentionTask> {
    if policy.keeps_everything() {
        return None;
    }
    Some(RetentionTask(tokio::spawn(async move {
        let mut tick = tokio::time::interval(policy.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            match store.prune_old(&policy, OffsetDateTime::now_utc()).await {
                Ok(Some(p)) => {
                    if p.cdrs > 0 || p.callbacks > 0 {
                        tracing::info!(
                            cdrs = p.cdrs,
                            callbacks = p.callbacks,
                            checkpointed = p.checkpointed,
                            "retention: old records pruned"
                        );
                    }
                }
                // A store retention does not apply to (a private in-memory one).
                Ok(None) => return,
                Err(e) => tracing::warn!(error = %e, "retention run failed; next run retries"),
            }
        }
    })))
}
