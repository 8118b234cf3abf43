//! Retention on SQLite: how big the file may grow, and what keeps it there.
//!
//! Every call leaves a CDR and its callback rows (hangup, status, post-call) whose bodies
//! are the bulk of the file. Without pruning the file grows forever, so the periodic
//! task ([`crate::store::retention`], the rules shared with PostgreSQL) deletes, in small
//! transactions so the writer is never held up for long, old delivered callback rows
//! and old CDRs with their remaining rows — never a call that still has a pending
//! callback. After each run it checkpoints the WAL
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
use crate::store::{StoreError, StoreErrorKind};
use rusqlite::{params, Connection};
use time::OffsetDateTime;

pub use crate::store::retention::{Pruned, RetentionPolicy, BATCH};

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
    prune_target(&Target::parse(spec)?, policy, now)
}

/// One run on the store's database, on a connection of its own (blocking).
pub(super) fn prune_target(
    target: &Target,
    policy: &RetentionPolicy,
    now: OffsetDateTime,
) -> Result<Option<Pruned>, StoreError> {
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
