//! Retention: how big the SQLite file may grow, and what keeps it there.
//!
//! Every call leaves a CDR and its callback rows (hangup, status, post-call) whose bodies
//! are the bulk of the file. Without pruning the file grows forever, so a periodic task
//! ([`start`]) deletes, in small transactions so the writer is never held up for long:
//! - **delivered outbox rows** whose delivery is older than `retention_delivered_days`
//!   (default 30): once delivered, a row is only history;
//! - **CDRs** that ended longer ago than `retention_cdr_days` (default 90), together
//!   with their remaining outbox rows (delivered or permanently failed) — never a call
//!   that still has a pending callback, whatever its age.
//!
//! `0` keeps that kind forever. After each run it checkpoints the WAL
//! (`wal_checkpoint(TRUNCATE)`): the WAL otherwise only grows while readers are busy,
//! and deleted pages are reused by later writes, so the file settles at the size of
//! what retention keeps (README: bytes per call).
//!
//! The task uses its own connection to the same file, with the store's busy timeout: a
//! batch waits for the writer's transaction, and the writer waits at most one batch.
//! A private in-memory store (`sqlite://:memory:`, tests) has nothing to share a
//! connection with and is not pruned.

use super::codec::nanos;
use super::Target;
use crate::config::StoreConfig;
use crate::store::{StoreError, StoreErrorKind};
use rusqlite::{params, Connection};
use std::time::Duration;
use time::OffsetDateTime;

/// Rows deleted per transaction.
const BATCH: usize = 500;

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
}

/// What one run removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub cdrs: u64,
    pub callbacks: u64,
    /// Whether the WAL checkpoint completed (it may not while readers hold old pages).
    pub checkpointed: bool,
}

/// One run on an open connection, with `now` as the current time.
pub fn prune(
    conn: &Connection,
    policy: &RetentionPolicy,
    now: OffsetDateTime,
) -> rusqlite::Result<Pruned> {
    let mut pruned = Pruned::default();
    if let Some(age) = policy.delivered_callbacks {
        let cutoff = nanos(now - age);
        pruned.callbacks += in_batches(conn, |c| {
            c.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
                 WHERE status = 'delivered' AND delivered_at < ?1 LIMIT ?2)",
                params![cutoff, BATCH as i64],
            )
        })?;
    }
    if let Some(age) = policy.cdrs {
        let cutoff = nanos(now - age);
        loop {
            let tx = conn.unchecked_transaction()?;
            let uuids: Vec<String> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT call_uuid FROM cdrs c WHERE end_time < ?1 AND NOT EXISTS \
                     (SELECT 1 FROM outbox o WHERE o.call_uuid = c.call_uuid AND o.status = 'pending') \
                     LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![cutoff, BATCH as i64], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for uuid in &uuids {
                pruned.callbacks +=
                    tx.execute("DELETE FROM outbox WHERE call_uuid = ?1", [uuid])? as u64;
                pruned.cdrs += tx.execute("DELETE FROM cdrs WHERE call_uuid = ?1", [uuid])? as u64;
            }
            tx.commit()?;
            if uuids.len() < BATCH {
                break;
            }
        }
    }
    let (busy, _, _): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    pruned.checkpointed = busy == 0;
    Ok(pruned)
}

/// Repeats a batched delete until a batch deletes fewer than [`BATCH`] rows.
fn in_batches(
    conn: &Connection,
    mut batch: impl FnMut(&Connection) -> rusqlite::Result<usize>,
) -> rusqlite::Result<u64> {
    let mut total = 0u64;
    loop {
        let n = batch(conn)?;
        total += n as u64;
        if n < BATCH {
            return Ok(total);
        }
    }
}

/// One run on the database of `store.url` (`sqlite://<path>`), on its own connection.
/// `Ok(None)` for a store retention does not apply to (in-memory).
pub fn prune_store(
    url: &str,
    policy: &RetentionPolicy,
    now: OffsetDateTime,
) -> Result<Option<Pruned>, StoreError> {
    let Some(spec) = url.strip_prefix("sqlite://") else {
        return Err(StoreError::new(
            StoreErrorKind::Invalid,
            format!("retention: {url:?} is not a sqlite:// store"),
        ));
    };
    let target = Target::parse(spec)?;
    if let Target::Memory(_) = target {
        return Ok(None);
    }
    let conn = target.open().map_err(super::codec::store_error)?;
    conn.busy_timeout(super::SqliteOptions::default().busy_timeout)
        .map_err(super::codec::store_error)?;
    prune(&conn, policy, now)
        .map(Some)
        .map_err(super::codec::store_error)
}

/// The periodic retention task; stops when dropped.
pub struct RetentionTask(tokio::task::JoinHandle<()>);

impl Drop for RetentionTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts pruning `store.url` every `policy.interval` (the first run one interval after
/// start: a restart loop must not turn into a pruning loop). `None` when the policy
/// keeps everything.
pub fn start(store: &StoreConfig, policy: RetentionPolicy) -> Option<RetentionTask> {
    if policy.cdrs.is_none() && policy.delivered_callbacks.is_none() {
        return None;
    }
    let url = store.url.clone();
    Some(RetentionTask(tokio::spawn(async move {
        let mut tick = tokio::time::interval(policy.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let (url, policy) = (url.clone(), policy.clone());
            let run = tokio::task::spawn_blocking(move || {
                prune_store(&url, &policy, OffsetDateTime::now_utc())
            })
            .await;
            match run {
                Ok(Ok(Some(p))) => {
                    if p.cdrs > 0 || p.callbacks > 0 {
                        tracing::info!(
                            cdrs = p.cdrs,
                            callbacks = p.callbacks,
                            checkpointed = p.checkpointed,
                            "retention: old records pruned"
                        );
                    }
                }
                Ok(Ok(None)) => return,
                Ok(Err(e)) => tracing::warn!(error = %e, "retention run failed; next run retries"),
                Err(e) => tracing::error!(error = %e, "retention run panicked"),
            }
        }
    })))
}
