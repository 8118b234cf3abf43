//! The PostgreSQL store (SPEC §14): the same [`Store`] behaviour as
//! [`crate::store::sqlite::SqliteStore`], on a database that several voxbridge nodes share.
//!
//! Client: `tokio-postgres` pooled by `deadpool-postgres` (see `docs/fleet.md` for why
//! not sqlx). Each operation takes a pooled connection for one statement or one
//! transaction; prepared statements are cached per connection. No writer thread and no
//! batching as in SQLite: PostgreSQL takes concurrent writers itself, and group commit
//! does the batching of fsyncs.
//!
//! What differs from SQLite, because a database here is shared by a fleet:
//! - **Live rows name their node** ([`PostgresOptions::node_id`]). [`Store::all_live_calls`]
//!   returns this node's calls only, so a node that restarts reconciles its own calls and
//!   never closes out the calls another node is running. A dead node's calls are first
//!   adopted by a survivor ([`fleet`]) and then reconciled the same way.
//! - **Outbox claims are leases held by a node** (`claimed_by`): rows are picked with
//!   `FOR UPDATE SKIP LOCKED`, so two nodes claiming at once never get the same row, and
//!   a claimed row is not due again before its lease ends — one delivery of a row in
//!   flight at a time, fleet-wide. A node that dies leaves its leases to expire (or to be
//!   released by the survivor that declares it dead); any node then retries the row with
//!   the same DeliveryID. At open a node releases only the claims of its own previous run,
//!   never another node's.
//! - **Migrations** are serialized across nodes by an advisory lock, so a fleet that
//!   starts at once migrates once.
//!
//! TLS: `sslmode=require`, `verify-ca` or `verify-full` (with `sslrootcert`) in the URL,
//! on rustls ([`tls`]); `prefer` (libpq's default) and `disable` connect in plain text.

mod codec;
pub mod fleet;
mod schema;
pub mod tls;

use crate::record::call::CallRecord;
use crate::record::callback::{receiver_of, NewCallback};
use crate::store::health::HealthTracker;
use crate::store::recording::{Recording, RecordingPage, RecordingQuery};
use crate::store::retry::RetryPolicy;
use crate::store::{
    AttemptResult, BoxFuture, CdrPage, ClaimRequest, ClaimedCallbacks, DeliveryState,
    FinishOutcome, LiveCall, NewLiveCall, Store, StoreError, StoreErrorKind, StoreHealth,
    StoredCdr,
};
use codec::{i64_from_u64, nanos, notes_json, store_error};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_postgres::NoTls;

pub use codec::error_chain;
pub use schema::LATEST as SCHEMA_VERSION;

/// Longest wait for a free pooled connection before an operation counts as failed (busy).
const POOL_WAIT: Duration = Duration::from_secs(30);

/// Who this node is and how it uses the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresOptions {
    /// This node's id (`[node] id`): written on its live rows and outbox claims.
    pub node_id: String,
    /// Most connections this node holds.
    pub pool_size: usize,
    /// How long an operation waits for a connection (from the pool, or a new one)
    /// before it counts as a (transient) failure.
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            node_id: crate::config::default_node_id(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// The PostgreSQL implementation of [`Store`].
pub struct PostgresStore {
    pool: Pool,
    describe: String,
    node_id: String,
    health: Arc<HealthTracker>,
    signal: Arc<Notify>,
    closed: AtomicBool,
}

/// `postgres://user@host:port/db`, without the password, for logs and errors.
fn describe(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…` or `postgresql://…`), applies migrations and
    /// releases the outbox claims this node's previous run left.
    pub async fn open(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let prepared = tls::prepare(url)?;
        let mut config: tokio_postgres::Config = prepared.url.parse().map_err(|e| {
            StoreError::new(
                StoreErrorKind::Invalid,
                format!("store.url is not a PostgreSQL URL: {e}"),
            )
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name(format!("voxbridge {}", options.node_id));
        }
        if options.node_id.trim().is_empty() {
            return Err(StoreError::new(
                StoreErrorKind::Invalid,
                "node.id must not be empty",
            ));
        }
        let describe = match prepared.mode {
            tls::SslMode::Disable | tls::SslMode::Prefer => describe(&config),
            mode => format!("{} (TLS, {mode:?})", describe(&config)),
        };
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match prepared.tls {
            Some(tls) => Manager::from_config(config, tls, manager_config),
            None => Manager::from_config(config, NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            // Waiting for a free connection is back-pressure, not a failure: only a
            // database that answers nothing for this long counts as busy.
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| {
                StoreError::new(StoreErrorKind::Other, format!("cannot build the pool: {e}"))
            })?;
        let store = Self {
            pool,
            describe,
            node_id: options.node_id,
            health: Arc::new(HealthTracker::default()),
            signal: Arc::new(Notify::new()),
            closed: AtomicBool::new(false),
        };
        let opened = async {
            let mut client = store.client().await?;
            schema::migrate(&mut client).await?;
            let released = client
                .execute(
                    "UPDATE outbox SET claimed_until = NULL, claimed_by = NULL, \
                     next_attempt_at = LEAST(next_attempt_at, $1) \
                     WHERE status = 'pending' AND claimed_by = $2",
                    &[&nanos(OffsetDateTime::now_utc()), &store.node_id],
                )
                .await
                .map_err(store_error)?;
            if released > 0 {
                tracing::info!(
                    released,
                    "outbox rows this node had in flight when it stopped are pending again"
                );
            }
            Ok::<_, StoreError>(())
        }
        .await;
        if let Err(e) = opened {
            let e = e.context(&format!("opening {}", store.describe));
            store.health.record_error("open", &e);
            return Err(e);
        }
        Ok(store)
    }

    /// This node's id, as written on its live rows and claims.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    async fn client(&self) -> Result<Object, StoreError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(StoreError::closed());
        }
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => store_error(e),
            deadpool_postgres::PoolError::Closed => StoreError::closed(),
            deadpool_postgres::PoolError::Timeout(t) => StoreError::new(
                StoreErrorKind::Busy,
                format!("no database connection within the timeout ({t:?})"),
            ),
            other => StoreError::new(StoreErrorKind::Io, other.to_string()),
        })
    }

    /// Runs `op` (one statement or one transaction on a pooled connection), retrying
    /// transient failures per `policy`; every failure is logged and counted.
    async fn run<T, F, Fut>(
        &self,
        what: &'static str,
        write: bool,
        policy: RetryPolicy,
        mut op: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut retry = 0u32;
        loop {
            let result = if self.closed.load(Ordering::Relaxed) {
                Err(StoreError::closed())
            } else {
                op().await
            };
            match result {
                Ok(value) => {
                    if write {
                        self.health.record_write_ok();
                    } else {
                        self.health.record_ok();
                    }
                    return Ok(value);
                }
                Err(error) => {
                    if write {
                        self.health.record_write_error(what, &error);
                    } else {
                        self.health.record_error(what, &error);
                    }
                    if !error.is_transient() {
                        return Err(error);
                    }
                    retry += 1;
                    match policy.delay(retry) {
                        Some(delay) => {
                            tracing::warn!(
                                operation = what,
                                retry,
                                delay_ms = delay.as_millis() as u64,
                                "retrying store operation"
                            );
                            tokio::time::sleep(delay).await;
                        }
                        None => return Err(error),
                    }
                }
            }
        }
    }

    async fn write<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.run(what, true, RetryPolicy::LIVE_CALL, op).await
    }

    /// Reads are retried like a live call's writes: a dropped connection is replaced by
    /// the pool on the next try.
    async fn read<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.run(what, false, RetryPolicy::LIVE_CALL, op).await
    }

    /// One row of an account read by its id: `sql` takes the id as `$1` and the account
    /// as `$2`; `None` when the account has no such row (another account's is none).
    fn account_row<T: Send + 'static>(
        &self,
        what: &'static str,
        sql: String,
        id: &str,
        account_id: &str,
        decode: fn(&tokio_postgres::Row) -> Result<T, StoreError>,
    ) -> impl Future<Output = Result<Option<T>, StoreError>> + Send + '_ {
        let (id, account_id) = (id.to_string(), account_id.to_string());
        async move {
            let (sql, id, account_id) = (&sql, &id, &account_id);
            self.read(what, || async move {
                let client = self.client().await?;
                let rows = query(&client, sql, &[id, account_id]).await?;
                rows.first().map(decode).transpose()
            })
            .await
        }
    }
}

async fn execute(
    client: &Object,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<u64, StoreError> {
    let stmt = client.prepare_cached(sql).await.map_err(store_error)?;
    client.execute(&stmt, params).await.map_err(store_error)
}

/// Outbox rows of one call, pending and due now, inside the caller's transaction.
async fn insert_callbacks(
    tx: &deadpool_postgres::Transaction<'_>,
    call_uuid: &str,
    account_id: &str,
    callbacks: &[NewCallback],
) -> Result<(), StoreError> {
    let insert_row = tx
        .prepare_cached(
            "INSERT INTO outbox (delivery_id, call_uuid, account_id, kind, method, url, \
             receiver, content_type, body, status, attempts, created_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', 0, $10, $10)",
        )
        .await
        .map_err(store_error)?;
    let now = nanos(OffsetDateTime::now_utc());
    for cb in callbacks {
        tx.execute(
            &insert_row,
            &[
                &cb.delivery_id,
                &call_uuid,
                &account_id,
                &cb.kind.as_str(),
                &cb.method.as_str(),
                &cb.url,
                &receiver_of(&cb.url),
                &cb.content_type,
                &cb.body,
                &now,
            ],
        )
        .await
        .map_err(store_error)?;
    }
    Ok(())
}

async fn query(
    client: &Object,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, StoreError> {
    let stmt = client.prepare_cached(sql).await.map_err(store_error)?;
    client.query(&stmt, params).await.map_err(store_error)
}

async fn deliveries_of(
    client: &Object,
    call_uuid: &str,
) -> Result<Vec<crate::store::DeliveryStatus>, StoreError> {
    let rows = query(
        client,
        &format!(
            "SELECT {} FROM outbox WHERE call_uuid = $1 ORDER BY id",
            codec::DELIVERY_COLUMNS
        ),
        &[&call_uuid],
    )
    .await?;
    rows.iter().map(codec::delivery_status).collect()
}

impl PostgresStore {
    async fn start_call(&self, call: &NewLiveCall) -> Result<(), StoreError> {
        let client = self.client().await?;
        // A call whose record is already written must not come back as live.
        execute(
            &client,
            "INSERT INTO live_calls (call_uuid, account_id, direction, from_number, to_number, \
             caller_name, forwarded_from, start_time, hangup_url, status_callback_url, node_id, \
             switch_name) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 \
             WHERE NOT EXISTS (SELECT 1 FROM cdrs WHERE call_uuid = $1) \
             ON CONFLICT (call_uuid) DO NOTHING",
            &[
                &call.call_uuid,
                &call.account_id,
                &call.direction.as_str(),
                &call.from,
                &call.to,
                &call.caller_name,
                &call.forwarded_from,
                &nanos(call.start_time),
                &call.hangup_url,
                &call.status_callback_url,
                &self.node_id,
                &call.switch_name,
            ],
        )
        .await
        .map(|_| ())
    }

    /// The CDR, the end of the live row and the callbacks, in one transaction; a Dial's
    /// B-leg names its A-leg in `parent`.
    async fn finish(
        &self,
        r: &CallRecord,
        callbacks: &[NewCallback],
        parent: Option<&str>,
    ) -> Result<FinishOutcome, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(store_error)?;
        let insert_cdr = tx
            .prepare_cached(&format!(
                "INSERT INTO cdrs ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
                 $12, $13, $14, $15, $16, $17, $18, $19, $20) ON CONFLICT (call_uuid) DO NOTHING",
                codec::CDR_COLUMNS
            ))
            .await
            .map_err(store_error)?;
        let inserted = tx
            .execute(
                &insert_cdr,
                &[
                    &r.call_uuid,
                    &r.account_id,
                    &r.direction.as_str(),
                    &r.from,
                    &r.to,
                    &r.caller_name,
                    &r.forwarded_from,
                    &nanos(r.start_time),
                    &r.answer_time.map(nanos),
                    &nanos(r.end_time),
                    &i64_from_u64(r.duration_secs),
                    &i64_from_u64(r.bill_duration_secs),
                    &i32::from(r.hangup_cause.0),
                    &i32::from(r.hangup_cause_code),
                    &r.hangup_cause_name,
                    &r.hangup_source.as_str(),
                    &r.hangup_reason,
                    &r.sip_status.map(i32::from),
                    &r.caller_abandoned,
                    &notes_json(&r.notes),
                ],
            )
            .await
            .map_err(store_error)?;
        let delete_live = tx
            .prepare_cached("DELETE FROM live_calls WHERE call_uuid = $1")
            .await
            .map_err(store_error)?;
        tx.execute(&delete_live, &[&r.call_uuid])
            .await
            .map_err(store_error)?;
        if inserted == 0 {
            tx.commit().await.map_err(store_error)?;
            return Ok(FinishOutcome::AlreadyFinished);
        }
        if let Some(parent) = parent {
            let link = tx
                .prepare_cached("UPDATE cdrs SET parent_call_uuid = $1 WHERE call_uuid = $2")
                .await
                .map_err(store_error)?;
            tx.execute(&link, &[&parent, &r.call_uuid])
                .await
                .map_err(store_error)?;
        }
        insert_callbacks(&tx, &r.call_uuid, &r.account_id, callbacks).await?;
        // Dropping the transaction on any error above rolls all of it back: the CDR and
        // its callbacks are all-or-nothing.
        tx.commit().await.map_err(store_error)?;
        Ok(FinishOutcome::Finished)
    }

    /// One retention run (rules in [`crate::store::retention`]), in batches of
    /// [`BATCH`](crate::store::retention::BATCH), each its own statement or transaction.
    /// Every delete re-checks its condition in SQL — a delivered row is still delivered,
    /// a CDR still has no pending callback — so nodes pruning at once, or a callback
    /// enqueued for an old call meanwhile, never lose a pending row or its CDR.
    async fn prune(
        &self,
        policy: &crate::store::retention::RetentionPolicy,
        now: OffsetDateTime,
    ) -> Result<crate::store::retention::Pruned, StoreError> {
        use crate::store::retention::{Pruned, BATCH};
        let batch = BATCH as i64;
        let mut pruned = Pruned::default();
        if let Some(age) = policy.delivered_callbacks {
            let cutoff = nanos(now - age);
            loop {
                let n = self
                    .write("prune_delivered", || async move {
                        let client = self.client().await?;
                        execute(
                            &client,
                            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
                             WHERE status = 'delivered' AND delivered_at < $1 LIMIT $2 \
                             FOR UPDATE SKIP LOCKED)",
                            &[&cutoff, &batch],
                        )
                        .await
                    })
                    .await?;
                pruned.callbacks += n;
                if n < BATCH as u64 {
                    break;
                }
            }
        }
        if let Some(age) = policy.cdrs {
            let cutoff = nanos(now - age);
            loop {
                let (found, cdrs, callbacks) = self
                    .write("prune_cdrs", || async move {
                        let mut client = self.client().await?;
                        let tx = client.transaction().await.map_err(store_error)?;
                        let pending = "EXISTS (SELECT 1 FROM outbox o \
                             WHERE o.call_uuid = c.call_uuid AND o.status = 'pending')";
                        let old = tx
                            .prepare_cached(&format!(
                                "SELECT c.call_uuid FROM cdrs c WHERE c.end_time < $1 \
                                 AND NOT {pending} ORDER BY c.end_time LIMIT $2 \
                                 FOR UPDATE SKIP LOCKED"
                            ))
                            .await
                            .map_err(store_error)?;
                        let uuids: Vec<String> = tx
                            .query(&old, &[&cutoff, &batch])
                            .await
                            .map_err(store_error)?
                            .iter()
                            .map(|r| r.try_get(0).map_err(store_error))
                            .collect::<Result<_, _>>()?;
                        if uuids.is_empty() {
                            return Ok((0, 0, 0));
                        }
                        // The CDRs first, each only while it still has no pending row;
                        // then the other rows of the CDRs actually deleted.
                        let delete_cdrs = tx
                            .prepare_cached(&format!(
                                "DELETE FROM cdrs c WHERE c.call_uuid = ANY($1) \
                                 AND NOT {pending} RETURNING c.call_uuid"
                            ))
                            .await
                            .map_err(store_error)?;
                        let gone: Vec<String> = tx
                            .query(&delete_cdrs, &[&uuids])
                            .await
                            .map_err(store_error)?
                            .iter()
                            .map(|r| r.try_get(0).map_err(store_error))
                            .collect::<Result<_, _>>()?;
                        let delete_rows = tx
                            .prepare_cached(
                                "DELETE FROM outbox WHERE call_uuid = ANY($1) \
                                 AND status <> 'pending'",
                            )
                            .await
                            .map_err(store_error)?;
                        let callbacks = tx
                            .execute(&delete_rows, &[&gone])
                            .await
                            .map_err(store_error)?;
                        tx.commit().await.map_err(store_error)?;
                        Ok((uuids.len(), gone.len() as u64, callbacks))
                    })
                    .await?;
                pruned.cdrs += cdrs;
                pruned.callbacks += callbacks;
                if found < BATCH {
                    break;
                }
            }
        }
        Ok(pruned)
    }

    async fn claim(&self, req: &ClaimRequest) -> Result<ClaimedCallbacks, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(store_error)?;
        let mut room: HashMap<String, usize> = req.receiver_room.iter().cloned().collect();
        // Receivers without room are excluded in SQL, so a long queue for one busy
        // receiver cannot hide the others' rows behind the scan limit.
        let full: Vec<String> = room
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(r, _)| r.clone())
            .collect();
        let mut picked = Vec::new();
        let mut ids: Vec<i64> = Vec::new();
        if req.limit > 0 {
            let scan = (req.limit.saturating_mul(4) + 64) as i64;
            // SKIP LOCKED: rows another node is claiming right now are passed over, not
            // waited for and never handed out twice.
            let select = tx
                .prepare_cached(&format!(
                    "SELECT {} FROM outbox WHERE status = 'pending' AND next_attempt_at <= $1 \
                     AND NOT (receiver = ANY($3)) ORDER BY next_attempt_at, id LIMIT $2 \
                     FOR UPDATE SKIP LOCKED",
                    codec::PENDING_COLUMNS
                ))
                .await
                .map_err(store_error)?;
            let rows = tx
                .query(&select, &[&nanos(req.now), &scan, &full])
                .await
                .map_err(store_error)?;
            for row in &rows {
                if picked.len() >= req.limit {
                    break;
                }
                let receiver: String = row.try_get(10).map_err(store_error)?;
                let left = room.entry(receiver).or_insert(req.default_receiver_room);
                if *left == 0 {
                    continue;
                }
                *left -= 1;
                ids.push(row.try_get(12).map_err(store_error)?);
                picked.push(codec::pending_callback(row)?);
            }
        }
        if !ids.is_empty() {
            let mark = tx
                .prepare_cached(
                    "UPDATE outbox SET claimed_until = $1, next_attempt_at = $1, claimed_by = $2 \
                     WHERE id = ANY($3)",
                )
                .await
                .map_err(store_error)?;
            tx.execute(&mark, &[&nanos(req.claim_until), &self.node_id, &ids])
                .await
                .map_err(store_error)?;
        }
        let next_due = tx
            .prepare_cached("SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'")
            .await
            .map_err(store_error)?;
        let next_due: Option<i64> = tx
            .query_one(&next_due, &[])
            .await
            .map_err(store_error)?
            .try_get(0)
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(ClaimedCallbacks {
            rows: picked,
            next_due: next_due.map(codec::time_from).transpose()?,
        })
    }

    async fn attempt(
        &self,
        delivery_id: &str,
        at: OffsetDateTime,
        result: &AttemptResult,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let at = nanos(at);
        match result {
            AttemptResult::Delivered { status } => {
                execute(
                    &client,
                    "UPDATE outbox SET status = $1, attempts = attempts + 1, \
                     last_attempt_at = $2, last_status = $3, last_error = NULL, \
                     delivered_at = $2, claimed_until = NULL, claimed_by = NULL \
                     WHERE delivery_id = $4 AND status = 'pending'",
                    &[
                        &DeliveryState::Delivered.as_str(),
                        &at,
                        &i32::from(*status),
                        &delivery_id,
                    ],
                )
                .await?;
            }
            AttemptResult::Retry {
                status,
                error,
                next_attempt_at,
            } => {
                execute(
                    &client,
                    "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = $1, \
                     last_status = $2, last_error = $3, next_attempt_at = $4, \
                     claimed_until = NULL, claimed_by = NULL \
                     WHERE delivery_id = $5 AND status = 'pending'",
                    &[
                        &at,
                        &status.map(i32::from),
                        error,
                        &nanos(*next_attempt_at),
                        &delivery_id,
                    ],
                )
                .await?;
            }
            AttemptResult::Failed { status, error } => {
                execute(
                    &client,
                    "UPDATE outbox SET status = $1, attempts = attempts + 1, \
                     last_attempt_at = $2, last_status = $3, last_error = $4, \
                     claimed_until = NULL, claimed_by = NULL \
                     WHERE delivery_id = $5 AND status = 'pending'",
                    &[
                        &DeliveryState::Failed.as_str(),
                        &at,
                        &status.map(i32::from),
                        error,
                        &delivery_id,
                    ],
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn add_notes(&self, call_uuid: &str, notes: &[String]) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(store_error)?;
        let select = tx
            .prepare_cached("SELECT notes FROM cdrs WHERE call_uuid = $1 FOR UPDATE")
            .await
            .map_err(store_error)?;
        let existing = tx
            .query_opt(&select, &[&call_uuid])
            .await
            .map_err(store_error)?;
        if let Some(row) = existing {
            let text: String = row.try_get(0).map_err(store_error)?;
            let mut list: Vec<String> = serde_json::from_str(&text).unwrap_or_default();
            list.extend(notes.iter().cloned());
            let update = tx
                .prepare_cached("UPDATE cdrs SET notes = $1 WHERE call_uuid = $2")
                .await
                .map_err(store_error)?;
            tx.execute(&update, &[&notes_json(&list), &call_uuid])
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
    }
}

impl Store for PostgresStore {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn call_started(&self, call: NewLiveCall) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let call = &call;
            self.write("call_started", || self.start_call(call)).await
        })
    }

    fn call_answered(
        &self,
        call_uuid: &str,
        answer_time: OffsetDateTime,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let call_uuid = call_uuid.to_string();
        Box::pin(async move {
            let call_uuid = &call_uuid;
            self.write("call_answered", || async move {
                let client = self.client().await?;
                execute(
                    &client,
                    "UPDATE live_calls SET answer_time = $1 WHERE call_uuid = $2",
                    &[&nanos(answer_time), call_uuid],
                )
                .await
                .map(|_| ())
            })
            .await
        })
    }

    fn set_scheduled_hangup(
        &self,
        call_uuid: &str,
        at: Option<OffsetDateTime>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let call_uuid = call_uuid.to_string();
        Box::pin(async move {
            let call_uuid = &call_uuid;
            self.write("set_scheduled_hangup", || async move {
                let client = self.client().await?;
                execute(
                    &client,
                    "UPDATE live_calls SET scheduled_hangup_at = $1 WHERE call_uuid = $2",
                    &[&at.map(nanos), call_uuid],
                )
                .await
                .map(|_| ())
            })
            .await
        })
    }

    fn add_cdr_notes(
        &self,
        call_uuid: &str,
        notes: Vec<String>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let call_uuid = call_uuid.to_string();
        Box::pin(async move {
            let (call_uuid, notes) = (&call_uuid, &notes);
            self.write("add_cdr_notes", || self.add_notes(call_uuid, notes))
                .await
        })
    }

    fn live_call(
        &self,
        account_id: &str,
        call_uuid: &str,
    ) -> BoxFuture<'_, Result<Option<LiveCall>, StoreError>> {
        let sql = format!(
            "SELECT {} FROM live_calls WHERE call_uuid = $1 AND account_id = $2",
            codec::LIVE_COLUMNS
        );
        Box::pin(self.account_row("live_call", sql, call_uuid, account_id, codec::live_call))
    }

    fn live_call_uuids(&self, account_id: &str) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        let account_id = account_id.to_string();
        Box::pin(async move {
            let account_id = &account_id;
            self.read("live_call_uuids", || async move {
                let client = self.client().await?;
                let rows = query(
                    &client,
                    "SELECT call_uuid FROM live_calls WHERE account_id = $1 \
                     ORDER BY start_time, call_uuid",
                    &[account_id],
                )
                .await?;
                rows.iter()
                    .map(|r| r.try_get(0).map_err(store_error))
                    .collect()
            })
            .await
        })
    }

    /// This node's live calls only (see the module docs): what reconciliation at start
    /// closes out must be this node's own.
    fn all_live_calls(&self) -> BoxFuture<'_, Result<Vec<LiveCall>, StoreError>> {
        Box::pin(self.read("all_live_calls", move || async move {
            let client = self.client().await?;
            let rows = query(
                &client,
                &format!(
                    "SELECT {} FROM live_calls WHERE node_id = $1 ORDER BY start_time",
                    codec::LIVE_COLUMNS
                ),
                &[&self.node_id],
            )
            .await?;
            rows.iter().map(codec::live_call).collect()
        }))
    }

    fn finish_call(
        &self,
        record: CallRecord,
        callbacks: Vec<NewCallback>,
    ) -> BoxFuture<'_, Result<FinishOutcome, StoreError>> {
        Box::pin(async move {
            let (r, cbs) = (&record, &callbacks);
            let result = self
                .run("finish_call", true, RetryPolicy::CALL_RECORD, || {
                    self.finish(r, cbs, None)
                })
                .await;
            match &result {
                Ok(FinishOutcome::Finished) if !callbacks.is_empty() => self.signal.notify_one(),
                Ok(_) => {}
                Err(error) => {
                    // The record cannot be stored: put all of it in the log, so an
                    // operator can still recover it.
                    tracing::error!(
                        call_uuid = %record.call_uuid,
                        ?record,
                        callbacks = ?callbacks.iter().map(|c| (&c.delivery_id, c.kind, &c.url)).collect::<Vec<_>>(),
                        "CALL RECORD NOT STORED: {error}"
                    );
                }
            }
            result
        })
    }

    fn finish_leg(
        &self,
        record: CallRecord,
        parent_call_uuid: String,
    ) -> BoxFuture<'_, Result<FinishOutcome, StoreError>> {
        Box::pin(async move {
            let (r, parent) = (&record, parent_call_uuid.as_str());
            let result = self
                .run("finish_leg", true, RetryPolicy::CALL_RECORD, || {
                    self.finish(r, &[], Some(parent))
                })
                .await;
            if let Err(error) = &result {
                tracing::error!(
                    call_uuid = %record.call_uuid,
                    parent_call_uuid = %parent_call_uuid,
                    ?record,
                    "CALL RECORD NOT STORED: {error}"
                );
            }
            result
        })
    }

    fn enqueue_callbacks(
        &self,
        call_uuid: &str,
        account_id: &str,
        callbacks: Vec<NewCallback>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let (call_uuid, account_id) = (call_uuid.to_string(), account_id.to_string());
        Box::pin(async move {
            if callbacks.is_empty() {
                return Ok(());
            }
            let (call_uuid, account_id, cbs) = (&call_uuid, &account_id, &callbacks);
            let result = self
                .run(
                    "enqueue_callbacks",
                    true,
                    RetryPolicy::CALL_RECORD,
                    || async move {
                        let mut client = self.client().await?;
                        let tx = client.transaction().await.map_err(store_error)?;
                        insert_callbacks(&tx, call_uuid, account_id, cbs).await?;
                        tx.commit().await.map_err(store_error)
                    },
                )
                .await;
            if result.is_ok() {
                self.signal.notify_one();
            }
            result
        })
    }

    fn add_recording(&self, recording: Recording) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let r = &recording;
            self.write("add_recording", || async move {
                let client = self.client().await?;
                execute(
                    &client,
                    &format!(
                        "INSERT INTO recordings ({}) VALUES \
                         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                         ON CONFLICT (recording_id) DO NOTHING",
                        codec::RECORDING_COLUMNS
                    ),
                    &[
                        &r.recording_id,
                        &r.call_uuid,
                        &r.account_id,
                        &r.kind.as_str(),
                        &r.file_path,
                        &r.format,
                        &i64_from_u64(r.duration_ms),
                        &nanos(r.start),
                        &nanos(r.end),
                        &r.end_reason.as_str(),
                        &r.from_number,
                        &r.to_number,
                        &nanos(r.created_at),
                    ],
                )
                .await
                .map(|_| ())
            })
            .await
        })
    }

    fn recording(
        &self,
        account_id: &str,
        recording_id: &str,
    ) -> BoxFuture<'_, Result<Option<Recording>, StoreError>> {
        let sql = format!(
            "SELECT {} FROM recordings WHERE recording_id = $1 AND account_id = $2",
            codec::RECORDING_COLUMNS
        );
        Box::pin(self.account_row("recording", sql, recording_id, account_id, codec::recording))
    }

    fn recordings(
        &self,
        account_id: &str,
        query_: RecordingQuery,
    ) -> BoxFuture<'_, Result<RecordingPage, StoreError>> {
        let account_id = account_id.to_string();
        Box::pin(async move {
            let (account_id, q) = (&account_id, &query_);
            self.read("recordings", || async move {
                let client = self.client().await?;
                // `$2 IS NULL`: no call filter.
                let call = q.call_uuid.as_deref();
                let total: i64 = query(
                    &client,
                    "SELECT COUNT(*) FROM recordings WHERE account_id = $1 \
                     AND ($2::TEXT IS NULL OR call_uuid = $2)",
                    &[account_id, &call],
                )
                .await?
                .first()
                .map(|r| r.try_get(0).map_err(store_error))
                .transpose()?
                .unwrap_or(0);
                let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);
                let rows = query(
                    &client,
                    &format!(
                        "SELECT {} FROM recordings WHERE account_id = $1 \
                         AND ($2::TEXT IS NULL OR call_uuid = $2) \
                         ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4",
                        codec::RECORDING_COLUMNS
                    ),
                    &[account_id, &call, &i64::from(q.limit), &offset],
                )
                .await?;
                Ok(RecordingPage {
                    total: u64::try_from(total).unwrap_or(0),
                    recordings: rows
                        .iter()
                        .map(codec::recording)
                        .collect::<Result<_, _>>()?,
                })
            })
            .await
        })
    }

    fn delete_recording(
        &self,
        account_id: &str,
        recording_id: &str,
    ) -> BoxFuture<'_, Result<Option<Recording>, StoreError>> {
        let (account_id, recording_id) = (account_id.to_string(), recording_id.to_string());
        Box::pin(async move {
            let (account_id, recording_id) = (&account_id, &recording_id);
            self.write("delete_recording", || async move {
                let client = self.client().await?;
                let rows = query(
                    &client,
                    &format!(
                        "DELETE FROM recordings WHERE recording_id = $1 AND account_id = $2 \
                         RETURNING {}",
                        codec::RECORDING_COLUMNS
                    ),
                    &[recording_id, account_id],
                )
                .await?;
                rows.first().map(codec::recording).transpose()
            })
            .await
        })
    }

    fn prune_old<'a>(
        &'a self,
        policy: &'a crate::store::retention::RetentionPolicy,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<crate::store::retention::Pruned>, StoreError>> {
        Box::pin(async move { self.prune(policy, now).await.map(Some) })
    }

    fn cdr(
        &self,
        account_id: &str,
        call_uuid: &str,
    ) -> BoxFuture<'_, Result<Option<StoredCdr>, StoreError>> {
        let (account_id, call_uuid) = (account_id.to_string(), call_uuid.to_string());
        Box::pin(async move {
            let (account_id, call_uuid) = (&account_id, &call_uuid);
            self.read("cdr", || async move {
                let client = self.client().await?;
                let rows = query(
                    &client,
                    &format!(
                        "SELECT {}, parent_call_uuid FROM cdrs \
                         WHERE call_uuid = $1 AND account_id = $2",
                        codec::CDR_COLUMNS
                    ),
                    &[call_uuid, account_id],
                )
                .await?;
                match rows.first() {
                    None => Ok(None),
                    Some(row) => {
                        let record = codec::call_record(row)?;
                        Ok(Some(StoredCdr {
                            deliveries: deliveries_of(&client, &record.call_uuid).await?,
                            parent_call_uuid: row.try_get(20).map_err(store_error)?,
                            record,
                        }))
                    }
                }
            })
            .await
        })
    }

    fn cdrs(
        &self,
        account_id: &str,
        limit: u32,
        offset: u64,
    ) -> BoxFuture<'_, Result<CdrPage, StoreError>> {
        let account_id = account_id.to_string();
        Box::pin(async move {
            let account_id = &account_id;
            self.read("cdrs", || async move {
                let client = self.client().await?;
                let total: i64 = query(
                    &client,
                    "SELECT COUNT(*) FROM cdrs WHERE account_id = $1",
                    &[account_id],
                )
                .await?
                .first()
                .map(|r| r.try_get(0).map_err(store_error))
                .transpose()?
                .unwrap_or(0);
                let offset = i64::try_from(offset).unwrap_or(i64::MAX);
                let rows = query(
                    &client,
                    &format!(
                        "SELECT {}, parent_call_uuid FROM cdrs WHERE account_id = $1 \
                         ORDER BY start_time DESC, id DESC LIMIT $2 OFFSET $3",
                        codec::CDR_COLUMNS
                    ),
                    &[account_id, &i64::from(limit), &offset],
                )
                .await?;
                let mut cdrs = Vec::with_capacity(rows.len());
                for row in &rows {
                    let record = codec::call_record(row)?;
                    cdrs.push(StoredCdr {
                        deliveries: deliveries_of(&client, &record.call_uuid).await?,
                        parent_call_uuid: row.try_get(20).map_err(store_error)?,
                        record,
                    });
                }
                Ok(CdrPage {
                    total: u64::try_from(total).unwrap_or(0),
                    cdrs,
                })
            })
            .await
        })
    }

    fn claim_due_callbacks(
        &self,
        request: ClaimRequest,
    ) -> BoxFuture<'_, Result<ClaimedCallbacks, StoreError>> {
        Box::pin(async move {
            let request = &request;
            self.write("claim_due_callbacks", || self.claim(request))
                .await
        })
    }

    fn record_attempt(
        &self,
        delivery_id: &str,
        at: OffsetDateTime,
        result: AttemptResult,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let delivery_id = delivery_id.to_string();
        Box::pin(async move {
            let (delivery_id, result) = (&delivery_id, &result);
            self.write("record_attempt", || self.attempt(delivery_id, at, result))
                .await
        })
    }

    fn outbox_backlog(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            // Not through `read`: a scrape that reads fine must not mark the store healthy.
            let counted = async {
                let client = self.client().await?;
                let rows = query(
                    &client,
                    "SELECT COUNT(*) FROM outbox WHERE status = 'pending'",
                    &[],
                )
                .await?;
                let n: i64 = rows
                    .first()
                    .map(|r| r.try_get(0).map_err(store_error))
                    .transpose()?
                    .unwrap_or(0);
                Ok::<_, StoreError>(u64::try_from(n).unwrap_or(0))
            }
            .await;
            if let Err(e) = &counted {
                self.health.record_error("outbox_backlog", e);
            }
            counted
        })
    }

    fn outbox_signal(&self) -> Arc<Notify> {
        self.signal.clone()
    }

    fn health(&self) -> StoreHealth {
        self.health.snapshot()
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // Every write is its own transaction, committed before its caller returns:
            // nothing is queued here, so closing is refusing new work and dropping the
            // connections.
            self.closed.store(true, Ordering::Relaxed);
            self.pool.close();
        })
    }
}
