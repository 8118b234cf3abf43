//! Embedded migrations, applied at open. The version is SQLite's `user_version`; each
//! step runs in its own transaction, so a crash mid-migration leaves the previous
//! version intact.

use rusqlite::Connection;

/// `(version, sql)`, in order. Append only: a released step is never edited.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_dial_legs.sql")),
    (3, include_str!("migrations/0003_recordings.sql")),
    (4, include_str!("migrations/0004_live_call_switch.sql")),
    (5, include_str!("migrations/0005_live_calls_one_tree.sql")),
];

/// The schema version this build writes.
pub const LATEST: u32 = 5;

/// Brings the database up to [`LATEST`]. Refuses a database written by a newer build
/// rather than guessing at its tables.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<Result<u32, String>> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > LATEST {
        return Ok(Err(format!(
            "the database has schema version {current}, but this voxbridge knows only up to \
             {LATEST}; use a newer voxbridge or another store.url"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "store schema migrated");
    }
    Ok(Ok(LATEST))
}
