//! The SQLite store: one file in WAL mode, one writer thread batching writes into
//! transactions ([`writer`]), and a small pool of read connections for queries (WAL lets
//! them read while the writer commits).
//!
//! Durability: a committed CDR with its callbacks is fsynced (`synchronous = FULL`), so it
//! survives a power cut, not only a process kill; batching keeps that affordable (one
//! fsync per batch, not per call). Writes that exist for crash reconciliation or
//! bookkeeping (live-call rows, claims, attempt results) commit without their own fsync:
//! they survive a process kill, and a power loss can take back only those written since
//! the last fsynced commit ([`writer`] has the details).
//!
//! A database file belongs to one voxbridge process, and the store enforces it: opening
//! a file takes an exclusive lock ([`lock`]) and a second process is refused, naming the
//! holder. At open, claims on outbox rows left by a previous run are therefore void and
//! released at once, so a restart resumes the backlog without waiting for claims to
//! expire.
//!
//! WAL checkpoints run on their own thread and connection ([`checkpoint`]), so the
//! writer never stops to copy the WAL into the database file.
//!
//! The writer's queue is bounded ([`SqliteOptions::write_queue`]): when the disk stalls,
//! writers wait for room instead of piling up memory without limit.

mod checkpoint;
mod codec;
mod lock;
pub mod retention;
mod schema;
mod writer;

use crate::record::call::CallRecord;
use crate::record::callback::NewCallback;
use crate::store::health::HealthTracker;
use crate::store::retry::RetryPolicy;
use crate::store::{
    AttemptResult, BoxFuture, CdrPage, ClaimRequest, ClaimedCallbacks, FinishOutcome, LiveCall,
    NewLiveCall, Recording, RecordingPage, RecordingQuery, Store, StoreError, StoreErrorKind,
    StoreHealth, StoredCdr,
};
use codec::store_error;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, Notify};
use writer::{Failed, Message, WriteOp, WriteReply};

pub use schema::LATEST as SCHEMA_VERSION;

/// Tuning knobs; the defaults suit production.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// How long a connection waits on a lock held by someone else before reporting busy.
    pub busy_timeout: Duration,
    /// Idle read connections kept open.
    pub readers: usize,
    /// Most writes committed in one transaction.
    pub max_batch: usize,
    /// Most writes waiting for the writer thread; a caller beyond it waits for room.
    pub write_queue: usize,
    /// Group commit: how long, under traffic, a batch of writes nobody waits for waits
    /// for more (`writer::GROUP_COMMIT_LINGER`, 40 ms; tests stretch it).
    pub group_commit_linger: Duration,
    /// WAL size in pages from which the checkpoint thread copies it into the database
    /// file (SQLite's default, 1,000; tests lower it).
    pub checkpoint_pages: i32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
            readers: 4,
            max_batch: 1024,
            write_queue: 16 * 1024,
            group_commit_linger: writer::GROUP_COMMIT_LINGER,
            checkpoint_pages: checkpoint::CHECKPOINT_PAGES,
        }
    }
}

/// Where the database lives.
#[derive(Clone, Debug)]
enum Target {
    File(PathBuf),
    /// A private in-memory database shared by this store's connections (memdb VFS).
    Memory(String),
}

impl Target {
    fn parse(spec: &str) -> Result<Self, StoreError> {
        match spec.trim() {
            "" => Err(StoreError::new(
                StoreErrorKind::Invalid,
                "store.url: sqlite:// needs a path, e.g. sqlite://voxbridge.db",
            )),
            ":memory:" => Ok(Target::Memory(format!(
                "file:/voxbridge-{}?vfs=memdb",
                uuid::Uuid::new_v4().simple()
            ))),
            path => Ok(Target::File(PathBuf::from(path))),
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        match self {
            Target::File(path) => Connection::open(path),
            Target::Memory(uri) => Connection::open_with_flags(
                uri,
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_URI
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            ),
        }
    }

    fn describe(&self) -> String {
        match self {
            Target::File(path) => format!("sqlite://{}", path.display()),
            Target::Memory(_) => "sqlite://:memory:".to_string(),
        }
    }
}

/// Read connections, opened on demand and kept up to a bound.
struct ReadPool {
    target: Target,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl ReadPool {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => self.open().map_err(store_error)?,
        };
        let result = f(&conn).map_err(store_error);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
        result
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = self.target.open()?;
        conn.busy_timeout(self.busy_timeout)?;
        conn.execute_batch("PRAGMA query_only = 1")?;
        Ok(conn)
    }
}

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    target: Target,
    /// The exclusive claim on the file (none for `:memory:`); released on drop.
    _lock: Option<lock::DatabaseLock>,
    writes: writer::Writes,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// WAL checkpoints (none for `:memory:`); stopped after the writer at close.
    checkpointer: Mutex<Option<checkpoint::Checkpointer>>,
    readers: Arc<ReadPool>,
    health: Arc<HealthTracker>,
    signal: Arc<Notify>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `spec` — a path, or `:memory:` —
    /// applies migrations and starts the writer. Blocking: call from a blocking context
    /// (`crate::store::open` does).
    pub fn open(spec: &str, options: SqliteOptions) -> Result<Self, StoreError> {
        let target = Target::parse(spec)?;
        let health = Arc::new(HealthTracker::default());
        // The lock comes before anything touches the database: a second process must not
        // even release the first one's claims.
        let lock = match &target {
            Target::File(path) => {
                let lock = lock::DatabaseLock::acquire(path)?;
                tracing::debug!(lock = %lock.path().display(), "database locked for this process");
                Some(lock)
            }
            Target::Memory(_) => None,
        };
        let mut conn = Self::open_writer(&target, &options).map_err(|e| {
            let e = e.context(&format!("opening {}", target.describe()));
            health.record_error("open", &e);
            e
        })?;
        let checkpointer = match &target {
            Target::File(_) => {
                let theirs = target
                    .open()
                    .and_then(|c| c.busy_timeout(options.busy_timeout).map(|()| c))
                    .map_err(store_error)?;
                Some(
                    checkpoint::Checkpointer::start(&mut conn, theirs, options.checkpoint_pages)
                        .map_err(|e| {
                            StoreError::new(
                                StoreErrorKind::Other,
                                format!("cannot start the checkpoint thread: {e}"),
                            )
                        })?,
                )
            }
            Target::Memory(_) => None,
        };
        let signal = Arc::new(Notify::new());
        let (writes, thread) = writer::spawn(conn, signal.clone(), &options).map_err(|e| {
            StoreError::new(StoreErrorKind::Other, format!("cannot start writer: {e}"))
        })?;
        let readers = Arc::new(ReadPool {
            target: target.clone(),
            busy_timeout: options.busy_timeout,
            idle: Mutex::new(Vec::new()),
            max_idle: options.readers.max(1),
        });
        Ok(Self {
            target,
            _lock: lock,
            writes,
            writer_thread: Mutex::new(Some(thread)),
            checkpointer: Mutex::new(checkpointer),
            readers,
            health,
            signal,
        })
    }

    /// WAL checkpoints run so far by the checkpoint thread (0 for `:memory:`).
    pub fn checkpoints(&self) -> u64 {
        self.checkpointer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, |c| c.passes())
    }

    fn open_writer(target: &Target, options: &SqliteOptions) -> Result<Connection, StoreError> {
        let mut conn = target.open().map_err(store_error)?;
        conn.busy_timeout(options.busy_timeout)
            .map_err(store_error)?;
        if let Target::File(_) = target {
            let mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(store_error)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::new(
                    StoreErrorKind::Io,
                    format!("cannot switch the database to WAL mode (got {mode})"),
                ));
            }
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF;")
            .map_err(store_error)?;
        conn.set_prepared_statement_cache_capacity(64);
        match schema::migrate(&mut conn).map_err(store_error)? {
            Ok(_) => {}
            Err(msg) => return Err(StoreError::new(StoreErrorKind::Invalid, msg)),
        }
        let released = conn
            .execute(
                "UPDATE outbox SET claimed_until = NULL, next_attempt_at = MIN(next_attempt_at, ?1) \
                 WHERE status = 'pending' AND claimed_until IS NOT NULL",
                [codec::nanos(OffsetDateTime::now_utc())],
            )
            .map_err(store_error)?;
        if released > 0 {
            tracing::info!(
                released,
                "outbox rows in flight when the previous run stopped are pending again"
            );
        }
        Ok(conn)
    }

    /// Queues one write and waits for its commit. On failure the write comes back (when
    /// it still exists) so it can be retried without a copy.
    async fn submit(&self, op: WriteOp) -> Result<WriteReply, (StoreError, Option<WriteOp>)> {
        let (tx, rx) = oneshot::channel();
        if let Err(mpsc::error::SendError(msg)) = self.writes.send(Message::Write(op, tx)).await {
            let op = match msg {
                Message::Write(op, _) => Some(op),
                Message::Close(_) => None,
            };
            return Err((StoreError::closed(), op));
        }
        match rx.await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(Failed { error, op })) => Err((error, Some(op))),
            // The writer thread is gone with the write queued.
            Err(_) => Err((StoreError::closed(), None)),
        }
    }

    /// Submits a write, retrying transient failures per `policy`.
    async fn write(
        &self,
        what: &'static str,
        op: WriteOp,
        policy: RetryPolicy,
    ) -> Result<WriteReply, (StoreError, Option<WriteOp>)> {
        let mut op = op;
        let mut retry = 0u32;
        loop {
            match self.submit(op).await {
                Ok(reply) => {
                    self.health.record_write_ok();
                    return Ok(reply);
                }
                Err((error, back)) => {
                    self.health.record_write_error(what, &error);
                    let back = match back {
                        Some(back) if error.is_transient() => back,
                        back => return Err((error, back)),
                    };
                    retry += 1;
                    match policy.delay(retry) {
                        Some(delay) => {
                            tracing::warn!(
                                operation = what,
                                retry,
                                delay_ms = delay.as_millis() as u64,
                                "retrying store write"
                            );
                            tokio::time::sleep(delay).await;
                            op = back;
                        }
                        None => return Err((error, Some(back))),
                    }
                }
            }
        }
    }

    async fn write_simple(&self, what: &'static str, op: WriteOp) -> Result<(), StoreError> {
        self.write(what, op, RetryPolicy::LIVE_CALL)
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
    }

    async fn read<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let result = self.read_unrecorded(f).await;
        match &result {
            Ok(_) => self.health.record_ok(),
            Err(e) => self.health.record_error(what, e),
        }
        result
    }

    /// A read whose success says nothing about the store's health (metrics scrapes);
    /// errors are still the caller's to record.
    async fn read_unrecorded<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || pool.with(f))
            .await
            .unwrap_or_else(|e| {
                Err(StoreError::new(
                    StoreErrorKind::Other,
                    format!("read task failed: {e}"),
                ))
            })
    }
}

fn query_deliveries(
    conn: &Connection,
    call_uuid: &str,
) -> rusqlite::Result<Vec<crate::store::DeliveryStatus>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {} FROM outbox WHERE call_uuid = ?1 ORDER BY id",
        codec::DELIVERY_COLUMNS
    ))?;
    let rows = stmt.query_map([call_uuid], codec::delivery_status)?;
    rows.collect()
}

impl Store for SqliteStore {
    fn describe(&self) -> String {
        self.target.describe()
    }

    fn call_started(&self, call: NewLiveCall) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.write_simple("call_started", WriteOp::StartCall(call)))
    }

    fn call_answered(
        &self,
        call_uuid: &str,
        answer_time: OffsetDateTime,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let op = WriteOp::Answered {
            call_uuid: call_uuid.to_string(),
            at: answer_time,
        };
        Box::pin(self.write_simple("call_answered", op))
    }

    fn set_scheduled_hangup(
        &self,
        call_uuid: &str,
        at: Option<OffsetDateTime>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let op = WriteOp::ScheduledHangup {
            call_uuid: call_uuid.to_string(),
            at,
        };
        Box::pin(self.write_simple("set_scheduled_hangup", op))
    }

    fn add_cdr_notes(
        &self,
        call_uuid: &str,
        notes: Vec<String>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let op = WriteOp::AddNotes {
            call_uuid: call_uuid.to_string(),
            notes,
        };
        Box::pin(self.write_simple("add_cdr_notes", op))
    }

    fn enqueue_callbacks(
        &self,
        call_uuid: &str,
        account_id: &str,
        callbacks: Vec<NewCallback>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let op = WriteOp::Enqueue {
            call_uuid: call_uuid.to_string(),
            account_id: account_id.to_string(),
            callbacks,
            now: OffsetDateTime::now_utc(),
        };
        Box::pin(self.write_simple("enqueue_callbacks", op))
    }

    fn live_call(
        &self,
        account_id: &str,
        call_uuid: &str,
    ) -> BoxFuture<'_, Result<Option<LiveCall>, StoreError>> {
        let (account_id, call_uuid) = (account_id.to_string(), call_uuid.to_string());
        Box::pin(self.read("live_call", move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {} FROM live_calls WHERE call_uuid = ?1 AND account_id = ?2",
                codec::LIVE_COLUMNS
            ))?
            .query_row([&call_uuid, &account_id], codec::live_call)
            .optional()
        }))
    }

    fn live_call_uuids(&self, account_id: &str) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        let account_id = account_id.to_string();
        Box::pin(self.read("live_call_uuids", move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT call_uuid FROM live_calls WHERE account_id = ?1 ORDER BY start_time",
            )?;
            let rows = stmt.query_map([&account_id], |r| r.get(0))?;
            rows.collect()
        }))
    }

    fn all_live_calls(&self) -> BoxFuture<'_, Result<Vec<LiveCall>, StoreError>> {
        Box::pin(self.read("all_live_calls", move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {} FROM live_calls ORDER BY start_time",
                codec::LIVE_COLUMNS
            ))?;
            let rows = stmt.query_map([], codec::live_call)?;
            rows.collect()
        }))
    }

    fn finish_call(
        &self,
        record: CallRecord,
        callbacks: Vec<NewCallback>,
    ) -> BoxFuture<'_, Result<FinishOutcome, StoreError>> {
        Box::pin(async move {
            let call_uuid = record.call_uuid.clone();
            let op = WriteOp::Finish {
                record: Box::new(record),
                callbacks,
                now: OffsetDateTime::now_utc(),
                parent: None,
            };
            match self
                .write("finish_call", op, RetryPolicy::CALL_RECORD)
                .await
            {
                Ok(WriteReply::Finish(outcome)) => Ok(outcome),
                Ok(other) => Err(StoreError::new(
                    StoreErrorKind::Other,
                    format!("finish_call got an unexpected reply {other:?}"),
                )),
                Err((error, op)) => {
                    // The record cannot be stored: put all of it in the log, so an
                    // operator can still recover it.
                    if let Some(WriteOp::Finish {
                        record, callbacks, ..
                    }) = op
                    {
                        tracing::error!(
                            call_uuid = %call_uuid,
                            ?record,
                            callbacks = ?callbacks.iter().map(|c| (&c.delivery_id, c.kind, &c.url)).collect::<Vec<_>>(),
                            "CALL RECORD NOT STORED: {error}"
                        );
                    }
                    Err(error)
                }
            }
        })
    }

    fn finish_leg(
        &self,
        record: CallRecord,
        parent_call_uuid: String,
    ) -> BoxFuture<'_, Result<FinishOutcome, StoreError>> {
        Box::pin(async move {
            let call_uuid = record.call_uuid.clone();
            let op = WriteOp::Finish {
                record: Box::new(record),
                callbacks: Vec::new(),
                now: OffsetDateTime::now_utc(),
                parent: Some(parent_call_uuid),
            };
            match self.write("finish_leg", op, RetryPolicy::CALL_RECORD).await {
                Ok(WriteReply::Finish(outcome)) => Ok(outcome),
                Ok(other) => Err(StoreError::new(
                    StoreErrorKind::Other,
                    format!("finish_leg got an unexpected reply {other:?}"),
                )),
                Err((error, op)) => {
                    if let Some(WriteOp::Finish { record, parent, .. }) = op {
                        tracing::error!(
                            call_uuid = %call_uuid,
                            ?record,
                            ?parent,
                            "B-LEG CALL RECORD NOT STORED: {error}"
                        );
                    }
                    Err(error)
                }
            }
        })
    }

    fn prune_old<'a>(
        &'a self,
        policy: &'a crate::store::retention::RetentionPolicy,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<crate::store::retention::Pruned>, StoreError>> {
        let (target, policy) = (self.target.clone(), policy.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || retention::prune_target(&target, &policy, now))
                .await
                .map_err(|e| StoreError::new(StoreErrorKind::Io, format!("retention: {e}")))?
        })
    }

    fn cdr(
        &self,
        account_id: &str,
        call_uuid: &str,
    ) -> BoxFuture<'_, Result<Option<StoredCdr>, StoreError>> {
        let (account_id, call_uuid) = (account_id.to_string(), call_uuid.to_string());
        Box::pin(self.read("cdr", move |conn| {
            let record = conn
                .prepare_cached(&format!(
                    "SELECT {}, parent_call_uuid FROM cdrs WHERE call_uuid = ?1 AND account_id = ?2",
                    codec::CDR_COLUMNS
                ))?
                .query_row([&call_uuid, &account_id], codec::call_record_with_parent)
                .optional()?;
            match record {
                None => Ok(None),
                Some((record, parent_call_uuid)) => Ok(Some(StoredCdr {
                    deliveries: query_deliveries(conn, &record.call_uuid)?,
                    record,
                    parent_call_uuid,
                })),
            }
        }))
    }

    fn cdrs(
        &self,
        account_id: &str,
        limit: u32,
        offset: u64,
    ) -> BoxFuture<'_, Result<CdrPage, StoreError>> {
        let account_id = account_id.to_string();
        Box::pin(self.read("cdrs", move |conn| {
            let total: i64 = conn
                .prepare_cached("SELECT COUNT(*) FROM cdrs WHERE account_id = ?1")?
                .query_row([&account_id], |r| r.get(0))?;
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {}, parent_call_uuid FROM cdrs WHERE account_id = ?1 \
                 ORDER BY start_time DESC, id DESC LIMIT ?2 OFFSET ?3",
                codec::CDR_COLUMNS
            ))?;
            let offset = i64::try_from(offset).unwrap_or(i64::MAX);
            let records: Vec<(CallRecord, Option<String>)> = stmt
                .query_map(
                    rusqlite::params![account_id, i64::from(limit), offset],
                    codec::call_record_with_parent,
                )?
                .collect::<rusqlite::Result<_>>()?;
            let mut cdrs = Vec::with_capacity(records.len());
            for (record, parent_call_uuid) in records {
                cdrs.push(StoredCdr {
                    deliveries: query_deliveries(conn, &record.call_uuid)?,
                    record,
                    parent_call_uuid,
                });
            }
            Ok(CdrPage {
                total: u64::try_from(total).unwrap_or(0),
                cdrs,
            })
        }))
    }

    fn add_recording(&self, recording: Recording) -> BoxFuture<'_, Result<(), StoreError>> {
        let op = WriteOp::AddRecording(Box::new(recording));
        Box::pin(self.write_simple("add_recording", op))
    }

    fn recording(
        &self,
        account_id: &str,
        recording_id: &str,
    ) -> BoxFuture<'_, Result<Option<Recording>, StoreError>> {
        let (account_id, recording_id) = (account_id.to_string(), recording_id.to_string());
        Box::pin(self.read("recording", move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {} FROM recordings WHERE recording_id = ?1 AND account_id = ?2",
                codec::RECORDING_COLUMNS
            ))?
            .query_row([&recording_id, &account_id], codec::recording)
            .optional()
        }))
    }

    fn recordings(
        &self,
        account_id: &str,
        query: RecordingQuery,
    ) -> BoxFuture<'_, Result<RecordingPage, StoreError>> {
        let account_id = account_id.to_string();
        Box::pin(self.read("recordings", move |conn| {
            // `?2 IS NULL`: no call filter. One statement either way, cached.
            let call = query.call_uuid.as_deref();
            let total: i64 = conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM recordings WHERE account_id = ?1 \
                     AND (?2 IS NULL OR call_uuid = ?2)",
                )?
                .query_row(rusqlite::params![account_id, call], |r| r.get(0))?;
            let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
            let recordings = conn
                .prepare_cached(&format!(
                    "SELECT {} FROM recordings WHERE account_id = ?1 \
                     AND (?2 IS NULL OR call_uuid = ?2) \
                     ORDER BY created_at DESC, id DESC LIMIT ?3 OFFSET ?4",
                    codec::RECORDING_COLUMNS
                ))?
                .query_map(
                    rusqlite::params![account_id, call, i64::from(query.limit), offset],
                    codec::recording,
                )?
                .collect::<rusqlite::Result<_>>()?;
            Ok(RecordingPage {
                total: u64::try_from(total).unwrap_or(0),
                recordings,
            })
        }))
    }

    fn delete_recording(
        &self,
        account_id: &str,
        recording_id: &str,
    ) -> BoxFuture<'_, Result<Option<Recording>, StoreError>> {
        let op = WriteOp::DeleteRecording {
            account_id: account_id.to_string(),
            recording_id: recording_id.to_string(),
        };
        Box::pin(async move {
            match self
                .write("delete_recording", op, RetryPolicy::LIVE_CALL)
                .await
            {
                Ok(WriteReply::Deleted(row)) => Ok(row.map(|r| *r)),
                Ok(other) => Err(StoreError::new(
                    StoreErrorKind::Other,
                    format!("delete_recording got an unexpected reply {other:?}"),
                )),
                Err((e, _)) => Err(e),
            }
        })
    }

    fn claim_due_callbacks(
        &self,
        request: ClaimRequest,
    ) -> BoxFuture<'_, Result<ClaimedCallbacks, StoreError>> {
        Box::pin(async move {
            match self
                .write(
                    "claim_due_callbacks",
                    WriteOp::Claim(request),
                    RetryPolicy::LIVE_CALL,
                )
                .await
            {
                Ok(WriteReply::Claimed(claimed)) => Ok(claimed),
                Ok(other) => Err(StoreError::new(
                    StoreErrorKind::Other,
                    format!("claim got an unexpected reply {other:?}"),
                )),
                Err((e, _)) => Err(e),
            }
        })
    }

    fn record_attempt(
        &self,
        delivery_id: &str,
        at: OffsetDateTime,
        result: AttemptResult,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let op = WriteOp::Attempt {
            delivery_id: delivery_id.to_string(),
            at,
            result,
        };
        Box::pin(self.write_simple("record_attempt", op))
    }

    fn outbox_backlog(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            // Counted on the partial index `outbox_due` (pending rows only), so the cost
            // follows the backlog, not the history.
            let result = self
                .read_unrecorded(|conn| {
                    conn.prepare_cached("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")?
                        .query_row([], |r| r.get::<_, i64>(0))
                })
                .await;
            match result {
                Ok(n) => Ok(u64::try_from(n).unwrap_or(0)),
                Err(e) => {
                    self.health.record_error("outbox_backlog", &e);
                    Err(e)
                }
            }
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
            let (tx, rx) = oneshot::channel();
            if self.writes.send(Message::Close(tx)).await.is_ok() {
                let _ = rx.await;
            }
            let thread = self
                .writer_thread
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(thread) = thread {
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
            let checkpointer = self
                .checkpointer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(mut checkpointer) = checkpointer {
                let _ = tokio::task::spawn_blocking(move || checkpointer.stop()).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cause::HangupCause;
    use crate::document::model::HttpMethod;
    use crate::record::call::{Direction, HangupSource};
    use crate::record::callback::CallbackKind;

    /// A stored row as the store sees it: how it is rendered is the application's.
    fn callback(id: &str, kind: CallbackKind, url: &str) -> NewCallback {
        NewCallback {
            delivery_id: id.into(),
            kind,
            method: HttpMethod::Post,
            url: url.into(),
            content_type: Some("application/x-www-form-urlencoded".into()),
            body: b"CallUUID=c1".to_vec(),
        }
    }

    fn record(uuid: &str) -> CallRecord {
        let now = OffsetDateTime::now_utc();
        CallRecord {
            call_uuid: uuid.into(),
            account_id: "MA1".into(),
            direction: Direction::Inbound,
            from: "1".into(),
            to: "2".into(),
            caller_name: String::new(),
            forwarded_from: None,
            start_time: now,
            answer_time: None,
            end_time: now,
            duration_secs: 0,
            bill_duration_secs: 0,
            hangup_cause: HangupCause::NORMAL_CLEARING,
            hangup_cause_code: 16,
            hangup_cause_name: "Normal Hangup".into(),
            hangup_source: HangupSource::Api,
            hangup_reason: "completed".into(),
            sip_status: None,
            caller_abandoned: false,
            notes: vec![],
        }
    }

    #[tokio::test]
    async fn outbox_backlog_counts_pending_rows_only() {
        let store = SqliteStore::open(":memory:", SqliteOptions::default()).unwrap();
        assert_eq!(store.outbox_backlog().await.unwrap(), 0);
        let rec = record("c1");
        let cbs = vec![
            callback("d1", CallbackKind::Hangup, "http://127.0.0.1:9/h"),
            callback("d2", CallbackKind::Status, "http://127.0.0.1:9/s"),
        ];
        let first = cbs[0].delivery_id.clone();
        store.finish_call(rec, cbs).await.unwrap();
        assert_eq!(store.outbox_backlog().await.unwrap(), 2);
        store
            .record_attempt(
                &first,
                OffsetDateTime::now_utc(),
                AttemptResult::Delivered { status: 200 },
            )
            .await
            .unwrap();
        assert_eq!(store.outbox_backlog().await.unwrap(), 1);
        store.close().await;
    }
}
