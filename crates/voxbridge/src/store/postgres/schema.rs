//! Embedded migrations, applied at open. The version lives in `voxbridge_schema`; each
//! step runs in its own transaction, and the whole migration holds a session advisory
//! lock, so nodes of a fleet starting at once migrate one after the other (the later ones
//! find nothing left to do).

use super::codec::store_error;
use crate::store::{StoreError, StoreErrorKind};
use deadpool_postgres::Object;

/// `(version, sql)`, in order. Append only: a released step is never edited.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (
        2,
        include_str!("migrations/0002_dial_legs_and_recordings.sql"),
    ),
];

/// The schema version this build writes.
pub const LATEST: i32 = 2;

/// The advisory lock key for migrations ("voxb" in ASCII).
const MIGRATION_LOCK: i64 = 0x766f_7862;

/// Brings the database up to [`LATEST`]. Refuses a database written by a newer build
/// rather than guessing at its tables.
pub async fn migrate(client: &mut Object) -> Result<i32, StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(store_error)?;
    let result = migrate_locked(client).await;
    // Released on every path; a lost connection releases it anyway.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result
}

async fn migrate_locked(client: &mut Object) -> Result<i32, StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS voxbridge_schema (\
               version INTEGER NOT NULL, \
               migrated_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .map_err(store_error)?;
    let current: i32 = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM voxbridge_schema",
            &[],
        )
        .await
        .map_err(store_error)?
        .try_get(0)
        .map_err(store_error)?;
    if current > LATEST {
        return Err(StoreError::new(
            StoreErrorKind::Invalid,
            format!(
                "the database has schema version {current}, but this voxbridge knows only up \
                 to {LATEST}; use a newer voxbridge or another store.url"
            ),
        ));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = client.transaction().await.map_err(store_error)?;
        tx.batch_execute(sql).await.map_err(store_error)?;
        tx.execute(
            "INSERT INTO voxbridge_schema (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        tracing::info!(version, "store schema migrated (PostgreSQL)");
    }
    Ok(LATEST)
}
