//! The one SQLite writer: a dedicated thread that owns the write connection and commits
//! whatever writes are queued in one transaction.
//!
//! SQLite allows one writer at a time and the cost of a commit is mostly its fsync, so
//! batching is what lets thousands of calls per second finish: under load, each commit
//! carries many writes. Each write runs inside its own SAVEPOINT, so one bad write (a
//! constraint violation) is rolled back alone and the rest of the batch still commits —
//! and a CDR with its callbacks stays all-or-nothing. When the transaction as a whole
//! fails (busy, disk full, I/O), every write of the batch is handed back to its caller
//! with the error, to be retried by the store's retry policy.
//!
//! Durability by need: a transaction is fsynced (`synchronous = FULL`) only when it holds
//! a write that must survive a power loss — a call's record with its callbacks
//! ([`WriteOp::Finish`]), notes added to a record, and the outbox rows of a call still live
//! ([`WriteOp::Enqueue`]: a ring event, an element's request). The other writes (live-call rows,
//! the answer time, a scheduled hangup, outbox claims and attempt results) commit with
//! `synchronous = NORMAL`: in WAL mode the commit is in the file (a process crash or kill
//! loses nothing) but not yet on the disk until the next fsynced commit or checkpoint,
//! which carries every frame before it. What a power loss can take is therefore only what
//! was written since the last record: live rows (the call's socket died with the machine;
//! what the switch did is reconciled from the switch, see `store::keeper`), an answer time,
//! a claim (void at the next start anyway) or an attempt result (the callback is then sent
//! again with the same `DeliveryID`, which receivers de-duplicate — SPEC §5.4 never lets a
//! row be marked delivered before a 2xx, and that still holds). Concurrent records share
//! one fsync: the batch is one transaction.
//!
//! Group commit: under traffic, writes nobody waits for in a hurry (records, answer
//! times, outbox rows of a live call, settled delivery attempts) are held for
//! [`GROUP_COMMIT_LINGER`] from the first of them, and every such write queued meanwhile
//! joins their transaction. A write someone does wait for (a call's live row, which its
//! first command waits for; a recording's row; an outbox claim or a retry's result,
//! which the delivery worker waits for) is committed at once, with whatever else of its
//! kind is queued: it neither waits for the held writes nor takes them along, so its
//! commit stays small (and, but for a recording's row, needs no fsync), while the held
//! ones share theirs. Committing such a write ahead of held ones queued before it is
//! safe: a live row written after its call's record is a no-op and one written before is
//! removed by it, recordings' rows are ordered among themselves, an attempt is only ever
//! made on a committed row, and a claim cannot take a row whose settled result is still
//! held (the row stays claimed until that result is committed).
//! Nothing is reported committed before it is; the writes only share the transaction's
//! fixed cost (locks, WAL frames of shared pages, the fsync).

use super::codec::{self, i64_from_u64, nanos, notes_json, store_error};
use crate::record::call::CallRecord;
use crate::record::callback::{receiver_of, NewCallback};
use crate::store::{
    AttemptResult, ClaimRequest, ClaimedCallbacks, DeliveryState, FinishOutcome, NewLiveCall,
    Recording, StoreError, StoreErrorKind,
};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, Notify};

/// One write, as queued to the writer.
#[derive(Debug)]
pub(super) enum WriteOp {
    StartCall(NewLiveCall),
    Answered {
        call_uuid: String,
        at: OffsetDateTime,
    },
    ScheduledHangup {
        call_uuid: String,
        at: Option<OffsetDateTime>,
    },
    AddNotes {
        call_uuid: String,
        notes: Vec<String>,
    },
    Finish {
        record: Box<CallRecord>,
        callbacks: Vec<NewCallback>,
        now: OffsetDateTime,
        /// A Dial's B-leg: its A-leg.
        parent: Option<String>,
    },
    /// Callbacks of a call still in progress, outside any CDR: an outbound call's ring
    /// event, a Dial's leg events (SPEC §11.4), an element's request through the outbox.
    Enqueue {
        call_uuid: String,
        account_id: String,
        callbacks: Vec<NewCallback>,
        now: OffsetDateTime,
    },
    Claim(ClaimRequest),
    AddRecording(Box<Recording>),
    DeleteRecording {
        account_id: String,
        recording_id: String,
    },
    Attempt {
        delivery_id: String,
        at: OffsetDateTime,
        result: AttemptResult,
    },
}

impl WriteOp {
    /// Whether the write must be on the disk when its caller is told it is committed
    /// (see the module docs).
    fn needs_fsync(&self) -> bool {
        match self {
            // Outbox rows of a live call (a ring event, an element's request) carry the
            // same delivery guarantee as the record's own callbacks.
            WriteOp::Finish { .. } | WriteOp::AddNotes { .. } | WriteOp::Enqueue { .. } => true,
            // A recording's row is the customer's only way to its file (and a deleted
            // one must not come back pointing at nothing).
            WriteOp::AddRecording(_) | WriteOp::DeleteRecording { .. } => true,
            WriteOp::StartCall(_)
            | WriteOp::Answered { .. }
            | WriteOp::ScheduledHangup { .. }
            | WriteOp::Claim(_)
            | WriteOp::Attempt { .. } => false,
        }
    }
}

/// How long writes that may wait ([`WriteOp::may_linger`]) are held for more to join
/// their transaction, from the first of them. Under traffic the records (with their
/// outbox rows) and answer times of several calls then share one commit, and the records
/// one fsync, instead of committing one by one.
///
/// 40 ms (issue 16). With 10 ms, and a live row taking the held writes along in its own
/// commit, a call cost 18.4 WAL `pwrite64`s and 0.93 `fsync`s at 100 calls/s on the real
/// switch; with records held apart for 40 ms, 14.6 and 0.24 (`strace -c -f`, loopback).
/// voxbridge's CPU per call fell ~10 % (0.905 → 0.82 ms, two alternating pairs of 3 ×
/// 1,000 calls), and the simulator bench's throughput rose from ~1,550 to ~2,550 calls/s
/// (records no longer each pay an fsync). What it costs is a callback leaving ≤ 40 ms
/// later and a finished call's CDR showing over REST ≤ 40 ms later — nothing a caller
/// hears: a live row never waits, and no call's step waits for a held write (a ring
/// callback's row is written on its own task).
pub(super) const GROUP_COMMIT_LINGER: Duration = Duration::from_millis(40);
/// The writer lingers only when its last commit ended less than this ago (traffic): a
/// lone write at a quiet moment commits at once.
const GROUP_COMMIT_BUSY: Duration = Duration::from_millis(50);

impl WriteOp {
    /// Whether the write may wait [`GROUP_COMMIT_LINGER`] for company: nothing waits
    /// for it that the linger would slow down. Not a live row (the call's first command
    /// waits for it), nor a recording's row (a REST request or the Record element waits
    /// for it), nor an outbox claim or a retry's result: the delivery worker claims again
    /// only once a claim is committed, and holds a slot until a retry's time is
    /// recorded, so lingering them would cap delivery at about `concurrency / (2 ×
    /// linger)` callbacks per second (≈ 700/s with 64 slots and 40 ms, measured with the
    /// simulator bench). A settled result (delivered, failed for good) may: the worker
    /// gives its slot back before writing it (`app::outbox`), and the row stays claimed
    /// until it is committed.
    pub(super) fn may_linger(&self) -> bool {
        match self {
            WriteOp::Answered { .. }
            | WriteOp::ScheduledHangup { .. }
            | WriteOp::AddNotes { .. }
            | WriteOp::Finish { .. }
            | WriteOp::Enqueue { .. } => true,
            WriteOp::Attempt { result, .. } => !matches!(result, AttemptResult::Retry { .. }),
            WriteOp::StartCall(_)
            | WriteOp::AddRecording(_)
            | WriteOp::DeleteRecording { .. }
            | WriteOp::Claim(_) => false,
        }
    }
}

/// What a successful write returns.
#[derive(Debug)]
pub(super) enum WriteReply {
    Done,
    Finish(FinishOutcome),
    Claimed(ClaimedCallbacks),
    /// The row [`WriteOp::DeleteRecording`] removed, if there was one.
    Deleted(Option<Box<Recording>>),
}

/// A write that did not happen, handed back so it can be retried without a copy.
#[derive(Debug)]
pub(super) struct Failed {
    pub error: StoreError,
    pub op: WriteOp,
}

pub(super) type Reply = Result<WriteReply, Failed>;

// Writes are moved through the channel once; Close is sent once per store. Boxing the
// common case to shrink the rare one would cost an allocation per write.
#[allow(clippy::large_enum_variant)]
pub(super) enum Message {
    Write(WriteOp, oneshot::Sender<Reply>),
    /// Commit what is queued, then stop; answered when done.
    Close(oneshot::Sender<()>),
}

/// The way into the writer thread: its queue, and a nudge that ends a group commit's
/// linger at once when a write someone is waiting for arrives.
pub(super) struct Writes {
    tx: mpsc::Sender<Message>,
    urgent: Arc<Urgent>,
}

impl Writes {
    /// Queues `msg`. A write that may not linger (a live row, a recording's row) or a
    /// `Close` wakes the writer from a linger, so it is committed at once.
    pub(super) async fn send(&self, msg: Message) -> Result<(), mpsc::error::SendError<Message>> {
        let urgent = match &msg {
            Message::Write(op, _) => !op.may_linger(),
            Message::Close(_) => true,
        };
        self.tx.send(msg).await?;
        if urgent {
            self.urgent.raise();
        }
        Ok(())
    }
}

/// Set (and the writer thread unparked) when a write that must not wait was queued.
struct Urgent {
    raised: AtomicBool,
    thread: std::sync::OnceLock<std::thread::Thread>,
}

impl Urgent {
    fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    /// Whether it was raised since the last call.
    fn take(&self) -> bool {
        self.raised.swap(false, Ordering::AcqRel)
    }
}

/// Starts the writer thread on `conn`.
pub(super) fn spawn(
    conn: Connection,
    signal: Arc<Notify>,
    options: &super::SqliteOptions,
) -> std::io::Result<(Writes, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel(options.write_queue.max(1));
    let (max_batch, linger) = (options.max_batch.max(1), options.group_commit_linger);
    let urgent = Arc::new(Urgent {
        raised: AtomicBool::new(false),
        thread: std::sync::OnceLock::new(),
    });
    let theirs = urgent.clone();
    let handle = std::thread::Builder::new()
        .name("voxbridge-store-writer".into())
        .spawn(move || run(conn, rx, signal, &theirs, max_batch, linger))?;
    let _ = urgent.thread.set(handle.thread().clone());
    Ok((Writes { tx, urgent }, handle))
}

type Pending = (WriteOp, oneshot::Sender<Reply>);

fn run(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Message>,
    signal: Arc<Notify>,
    urgent: &Urgent,
    max_batch: usize,
    linger: Duration,
) {
    let mut closing: Option<oneshot::Sender<()>> = None;
    // Query-planner stability guarantee: without it SQLite marks a statement to be
    // re-planned when a parameter it looked at while planning (here: against the partial
    // index `outbox_due`, or STAT4 samples) is bound to a new value, and every execution
    // of the cached statement is prepared again (`sqlite3Reprepare`, 4 % of the process's
    // CPU at 100 calls/s, issue 16). The writer's statements have one plan whatever the
    // values.
    if let Err(e) = conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    ) {
        tracing::warn!(error = %e, "could not enable the query-planner stability guarantee");
    }
    let mut conn = Committer {
        conn: &mut conn,
        synchronous: None,
    };
    let mut last_commit: Option<Instant> = None;
    // Writes that may linger, oldest first, and when they are committed at the latest.
    let mut held: Vec<Pending> = Vec::new();
    let mut held_until = Instant::now();
    // The last turn stopped draining at `max_batch`: writes may be queued whose nudge
    // (if urgent) was already taken, so the next turn does not wait.
    let mut more = false;
    loop {
        // Writes that may not linger, committed in this turn.
        let mut now: Vec<Pending> = Vec::new();
        if held.is_empty() {
            match rx.blocking_recv() {
                Some(Message::Write(op, reply)) => sort_into(op, reply, &mut held, &mut now),
                Some(Message::Close(done)) => closing = Some(done),
                None => break,
            }
            held_until = Instant::now() + linger;
        } else if !more {
            // Group commit: the held writes wait for company until `held_until` — but a
            // write someone waits for (a live row) ends the wait at once and is
            // committed alone, without them. Writes that may wait do not wake the
            // thread: they are drained when the wait ends.
            while !urgent.take() {
                let left = held_until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                std::thread::park_timeout(left);
            }
        }
        // What raised it is in the queue now, and is drained just below.
        urgent.take();
        more = drain_into(&mut rx, &mut held, &mut now, &mut closing, max_batch);
        if let Some(done) = closing.take() {
            // Refuse new writes, commit the ones already queued, then answer.
            rx.close();
            while let Ok(msg) = rx.try_recv() {
                match msg {
                    Message::Write(op, reply) => sort_into(op, reply, &mut held, &mut now),
                    Message::Close(other) => {
                        let _ = other.send(());
                    }
                }
            }
            now.append(&mut held);
            for chunk in chunks(now, max_batch) {
                commit_batch(&mut conn, chunk, &signal);
            }
            let _ = done.send(());
            break;
        }
        if !now.is_empty() {
            commit_batch(&mut conn, now, &signal);
            last_commit = Some(Instant::now());
        }
        // A lone write at a quiet moment does not wait; under traffic the held writes
        // go once their linger is over or a batch is full.
        let busy = last_commit.is_some_and(|at| at.elapsed() < GROUP_COMMIT_BUSY);
        if !held.is_empty() && (!busy || held.len() >= max_batch || Instant::now() >= held_until) {
            commit_batch(&mut conn, std::mem::take(&mut held), &signal);
            last_commit = Some(Instant::now());
        }
    }
}

/// Files a write under what it waits for: `held` if it may linger, `now` if not.
fn sort_into(
    op: WriteOp,
    reply: oneshot::Sender<Reply>,
    held: &mut Vec<Pending>,
    now: &mut Vec<Pending>,
) {
    if op.may_linger() {
        held.push((op, reply));
    } else {
        now.push((op, reply));
    }
}

/// Takes whatever is queued, filing each write with [`sort_into`], until the queue is
/// empty, a `Close` comes, or either kind holds `max_batch` writes; true in the last case
/// (more may be queued).
fn drain_into(
    rx: &mut mpsc::Receiver<Message>,
    held: &mut Vec<Pending>,
    now: &mut Vec<Pending>,
    closing: &mut Option<oneshot::Sender<()>>,
    max_batch: usize,
) -> bool {
    while closing.is_none() {
        if held.len() >= max_batch || now.len() >= max_batch {
            return true;
        }
        match rx.try_recv() {
            Ok(Message::Write(op, reply)) => sort_into(op, reply, held, now),
            Ok(Message::Close(done)) => *closing = Some(done),
            Err(_) => break,
        }
    }
    false
}

fn chunks(mut items: Vec<Pending>, size: usize) -> Vec<Vec<Pending>> {
    let mut out = Vec::new();
    while items.len() > size {
        let tail = items.split_off(size);
        out.push(std::mem::replace(&mut items, tail));
    }
    if !items.is_empty() {
        out.push(items);
    }
    out
}

/// The writer connection with the `synchronous` level it was last set to.
struct Committer<'a> {
    conn: &'a mut Connection,
    synchronous: Option<Synchronous>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Synchronous {
    /// WAL: commit without fsync (durable against a process crash only).
    Normal,
    /// WAL: fsync at commit (durable against a power loss).
    Full,
}

impl Committer<'_> {
    /// Sets the level for the next transaction; a no-op when it is already set. Must run
    /// outside a transaction.
    fn set_synchronous(&mut self, level: Synchronous) -> rusqlite::Result<()> {
        if self.synchronous != Some(level) {
            // Until it is known to be set, it is unknown (a failed pragma leaves either).
            self.synchronous = None;
            // Cached: a live row's commit and a held batch's alternate under traffic.
            self.control(match level {
                Synchronous::Normal => "PRAGMA synchronous = NORMAL",
                Synchronous::Full => "PRAGMA synchronous = FULL",
            })?;
            self.synchronous = Some(level);
        }
        Ok(())
    }

    /// Runs one of the fixed transaction-control statements through the statement cache:
    /// `execute_batch` would parse it again on every write (6 % of the process's CPU at
    /// 100 calls/s, issue 16).
    fn control(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    }
}

/// Runs the batch in one transaction and answers every caller.
///
/// First without savepoints: writes almost never fail one by one, and a `SAVEPOINT` /
/// `RELEASE` pair per write was a quarter of the statements the writer ran (issue 16).
/// If a write does fail, that transaction is rolled back and the batch runs again with
/// one savepoint per write, so the bad write is rolled back alone and the others (a CDR
/// with its callbacks all-or-nothing) still commit.
fn commit_batch(committer: &mut Committer<'_>, batch: Vec<Pending>, signal: &Notify) {
    let level = if batch.iter().any(|(op, _)| op.needs_fsync()) {
        Synchronous::Full
    } else {
        Synchronous::Normal
    };
    let outcome = match committer.set_synchronous(level) {
        Err(e) => Err(store_error(e).context("set synchronous")),
        Ok(()) => match run_batch(committer, &batch, false) {
            Ok(Some(done)) => Ok(done),
            Ok(None) => run_batch(committer, &batch, true).and_then(|done| {
                done.ok_or_else(|| {
                    StoreError::new(StoreErrorKind::Other, "an isolated batch was not committed")
                })
            }),
            Err(e) => Err(e),
        },
    };
    let conn = &*committer;
    let (results, new_rows) = match outcome {
        Ok(done) => done,
        Err(error) => {
            if !conn.conn.is_autocommit() {
                let _ = conn.conn.execute_batch("ROLLBACK");
            }
            for (op, reply) in batch {
                let _ = reply.send(Err(Failed {
                    error: error.clone(),
                    op,
                }));
            }
            return;
        }
    };
    for ((op, reply), result) in batch.into_iter().zip(results) {
        let _ = reply.send(result.map_err(|error| Failed { error, op }));
    }
    if new_rows {
        signal.notify_one();
    }
}

/// Each write's result, and whether new outbox rows were committed.
type BatchDone = (Vec<Result<WriteReply, StoreError>>, bool);

/// One transaction over `batch`, committed. With `isolate`, each write runs in its own
/// savepoint and a failing one is rolled back alone; without, the first failing write
/// rolls the transaction back and `Ok(None)` asks for the isolated run. `Err` is a
/// failure of the transaction as a whole (begin, commit, I/O), for every write.
fn run_batch(
    committer: &Committer<'_>,
    batch: &[Pending],
    isolate: bool,
) -> Result<Option<BatchDone>, StoreError> {
    let conn = committer;
    conn.control("BEGIN IMMEDIATE")
        .map_err(|e| store_error(e).context("begin transaction"))?;
    let mut results: Vec<Result<WriteReply, StoreError>> = Vec::with_capacity(batch.len());
    let mut new_rows = false;
    for (op, _) in batch {
        if isolate {
            conn.control("SAVEPOINT op").map_err(store_error)?;
        }
        match apply(conn.conn, op) {
            Ok(reply) => {
                if isolate {
                    conn.control("RELEASE op").map_err(store_error)?;
                }
                if let (WriteOp::Finish { callbacks, .. }, WriteReply::Finish(outcome)) =
                    (op, &reply)
                {
                    new_rows |= *outcome == FinishOutcome::Finished && !callbacks.is_empty();
                }
                if let WriteOp::Enqueue { callbacks, .. } = op {
                    new_rows |= !callbacks.is_empty();
                }
                results.push(Ok(reply));
            }
            Err(e) => {
                if conn.conn.is_autocommit() {
                    // SQLite rolled the whole transaction back (it does for some I/O,
                    // full-disk and memory errors): the batch is lost as a whole.
                    return Err(store_error(e));
                }
                if !isolate {
                    conn.conn
                        .execute_batch("ROLLBACK")
                        .map_err(|e| store_error(e).context("rollback"))?;
                    return Ok(None);
                }
                conn.control("ROLLBACK TO op")
                    .and_then(|()| conn.control("RELEASE op"))
                    .map_err(store_error)?;
                results.push(Err(store_error(e)));
            }
        }
    }
    conn.control("COMMIT")
        .map_err(|e| store_error(e).context("commit"))?;
    Ok(Some((results, new_rows)))
}

fn apply(conn: &Connection, op: &WriteOp) -> rusqlite::Result<WriteReply> {
    match op {
        WriteOp::StartCall(call) => start_call(conn, call),
        WriteOp::Answered { call_uuid, at } => {
            conn.prepare_cached("UPDATE live_calls SET answer_time = ?1 WHERE call_uuid = ?2")?
                .execute(params![nanos(*at), call_uuid])?;
            Ok(WriteReply::Done)
        }
        WriteOp::ScheduledHangup { call_uuid, at } => {
            conn.prepare_cached(
                "UPDATE live_calls SET scheduled_hangup_at = ?1 WHERE call_uuid = ?2",
            )?
            .execute(params![at.map(nanos), call_uuid])?;
            Ok(WriteReply::Done)
        }
        WriteOp::AddNotes { call_uuid, notes } => {
            let existing: Option<String> = conn
                .prepare_cached("SELECT notes FROM cdrs WHERE call_uuid = ?1")?
                .query_row([call_uuid], |r| r.get(0))
                .optional()?;
            if let Some(existing) = existing {
                let mut list: Vec<String> = serde_json::from_str(&existing).unwrap_or_default();
                list.extend(notes.iter().cloned());
                conn.prepare_cached("UPDATE cdrs SET notes = ?1 WHERE call_uuid = ?2")?
                    .execute(params![notes_json(&list), call_uuid])?;
            }
            Ok(WriteReply::Done)
        }
        WriteOp::Finish {
            record,
            callbacks,
            now,
            parent,
        } => {
            let reply = finish(conn, record, callbacks, *now)?;
            if let (Some(parent), WriteReply::Finish(FinishOutcome::Finished)) = (parent, &reply) {
                conn.prepare_cached("UPDATE cdrs SET parent_call_uuid = ?1 WHERE call_uuid = ?2")?
                    .execute(params![parent, record.call_uuid])?;
            }
            Ok(reply)
        }
        WriteOp::AddRecording(r) => {
            conn.prepare_cached(&format!(
                "INSERT INTO recordings ({}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
                 ON CONFLICT (recording_id) DO NOTHING",
                codec::RECORDING_COLUMNS
            ))?
            .execute(params![
                r.recording_id,
                r.call_uuid,
                r.account_id,
                r.kind.as_str(),
                r.file_path,
                r.format,
                codec::i64_from_u64(r.duration_ms),
                codec::nanos(r.start),
                codec::nanos(r.end),
                r.end_reason.as_str(),
                r.from_number,
                r.to_number,
                codec::nanos(r.created_at),
            ])?;
            Ok(WriteReply::Done)
        }
        WriteOp::DeleteRecording {
            account_id,
            recording_id,
        } => {
            let row = conn
                .prepare_cached(&format!(
                    "DELETE FROM recordings WHERE recording_id = ?1 AND account_id = ?2 \
                     RETURNING {}",
                    codec::RECORDING_COLUMNS
                ))?
                .query_row([recording_id, account_id], codec::recording)
                .optional()?;
            Ok(WriteReply::Deleted(row.map(Box::new)))
        }
        WriteOp::Enqueue {
            call_uuid,
            account_id,
            callbacks,
            now,
        } => {
            insert_callbacks(conn, call_uuid, account_id, callbacks, *now)?;
            Ok(WriteReply::Done)
        }
        WriteOp::Claim(request) => claim(conn, request),
        WriteOp::Attempt {
            delivery_id,
            at,
            result,
        } => attempt(conn, delivery_id, *at, result),
    }
}

fn start_call(conn: &Connection, call: &NewLiveCall) -> rusqlite::Result<WriteReply> {
    // A call whose record is already written must not come back as live: it would be
    // "closed out" again at the next start.
    let finished = conn
        .prepare_cached("SELECT 1 FROM cdrs WHERE call_uuid = ?1")?
        .query_row([&call.call_uuid], |_| Ok(()))
        .optional()?
        .is_some();
    if finished {
        return Ok(WriteReply::Done);
    }
    conn.prepare_cached(
        "INSERT INTO live_calls (call_uuid, account_id, direction, from_number, to_number, \
         caller_name, forwarded_from, start_time, hangup_url, status_callback_url, switch_name) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (call_uuid) DO NOTHING",
    )?
    .execute(params![
        call.call_uuid,
        call.account_id,
        call.direction.as_str(),
        call.from,
        call.to,
        call.caller_name,
        call.forwarded_from,
        nanos(call.start_time),
        call.hangup_url,
        call.status_callback_url,
        call.switch_name,
    ])?;
    Ok(WriteReply::Done)
}

fn finish(
    conn: &Connection,
    r: &CallRecord,
    callbacks: &[NewCallback],
    now: OffsetDateTime,
) -> rusqlite::Result<WriteReply> {
    let inserted = conn
        .prepare_cached(&format!(
            "INSERT INTO cdrs ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
             ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20) ON CONFLICT (call_uuid) DO NOTHING",
            codec::CDR_COLUMNS
        ))?
        .execute(params![
            r.call_uuid,
            r.account_id,
            r.direction.as_str(),
            r.from,
            r.to,
            r.caller_name,
            r.forwarded_from,
            nanos(r.start_time),
            r.answer_time.map(nanos),
            nanos(r.end_time),
            i64_from_u64(r.duration_secs),
            i64_from_u64(r.bill_duration_secs),
            r.hangup_cause.0,
            r.hangup_cause_code,
            r.hangup_cause_name,
            r.hangup_source.as_str(),
            r.hangup_reason,
            r.sip_status,
            r.caller_abandoned,
            notes_json(&r.notes),
        ])?;
    conn.prepare_cached("DELETE FROM live_calls WHERE call_uuid = ?1")?
        .execute([&r.call_uuid])?;
    if inserted == 0 {
        return Ok(WriteReply::Finish(FinishOutcome::AlreadyFinished));
    }
    insert_callbacks(conn, &r.call_uuid, &r.account_id, callbacks, now)?;
    Ok(WriteReply::Finish(FinishOutcome::Finished))
}

/// Outbox rows for a call, pending from `now`.
fn insert_callbacks(
    conn: &Connection,
    call_uuid: &str,
    account_id: &str,
    callbacks: &[NewCallback],
    now: OffsetDateTime,
) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO outbox (delivery_id, call_uuid, account_id, kind, method, url, receiver, \
         content_type, body, status, attempts, created_at, next_attempt_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', 0, ?10, ?10)",
    )?;
    for cb in callbacks {
        insert.execute(params![
            cb.delivery_id,
            call_uuid,
            account_id,
            cb.kind.as_str(),
            cb.method.as_str(),
            cb.url,
            receiver_of(&cb.url),
            cb.content_type,
            cb.body,
            nanos(now),
        ])?;
    }
    Ok(())
}

fn claim(conn: &Connection, req: &ClaimRequest) -> rusqlite::Result<WriteReply> {
    let now = nanos(req.now);
    let mut room: HashMap<String, usize> = req.receiver_room.iter().cloned().collect();
    // Receivers without room are excluded in SQL, so a long queue for one busy receiver
    // cannot hide the rows of the others behind the scan limit.
    let full: Vec<&str> = room
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(r, _)| r.as_str())
        .collect();
    let exclusion = if full.is_empty() {
        String::new()
    } else {
        format!(
            " AND receiver NOT IN ({})",
            (0..full.len())
                .map(|i| format!("?{}", i + 3))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let sql = format!(
        "SELECT {} FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?1{exclusion} \
         ORDER BY next_attempt_at, id LIMIT ?2",
        codec::PENDING_COLUMNS
    );
    let scan = (req.limit.saturating_mul(4) + 64) as i64;
    let mut values: Vec<rusqlite::types::Value> = vec![now.into(), scan.into()];
    values.extend(
        full.iter()
            .map(|r| rusqlite::types::Value::from(r.to_string())),
    );

    let mut picked = Vec::new();
    let mut ids = Vec::new();
    if req.limit > 0 {
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(values.iter()))?;
        while let Some(row) = rows.next()? {
            if picked.len() >= req.limit {
                break;
            }
            let receiver: String = row.get(10)?;
            let left = room.entry(receiver).or_insert(req.default_receiver_room);
            if *left == 0 {
                continue;
            }
            *left -= 1;
            ids.push(row.get::<_, i64>(12)?);
            picked.push(codec::pending_callback(row)?);
        }
    }
    let until = nanos(req.claim_until);
    let mut mark = conn.prepare_cached(
        "UPDATE outbox SET claimed_until = ?1, next_attempt_at = ?1 WHERE id = ?2",
    )?;
    for id in ids {
        mark.execute(params![until, id])?;
    }
    let next_due: Option<i64> = conn
        .prepare_cached("SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'")?
        .query_row([], |r| r.get(0))?;
    Ok(WriteReply::Claimed(ClaimedCallbacks {
        rows: picked,
        next_due: next_due.map(codec::time_from).transpose()?,
    }))
}

fn attempt(
    conn: &Connection,
    delivery_id: &str,
    at: OffsetDateTime,
    result: &AttemptResult,
) -> rusqlite::Result<WriteReply> {
    let at = nanos(at);
    match result {
        AttemptResult::Delivered { status } => {
            conn.prepare_cached(
                "UPDATE outbox SET status = ?1, attempts = attempts + 1, last_attempt_at = ?2, \
                 last_status = ?3, last_error = NULL, delivered_at = ?2, claimed_until = NULL \
                 WHERE delivery_id = ?4 AND status = 'pending'",
            )?
            .execute(params![
                DeliveryState::Delivered.as_str(),
                at,
                status,
                delivery_id
            ])?;
        }
        AttemptResult::Retry {
            status,
            error,
            next_attempt_at,
        } => {
            conn.prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ?1, \
                 last_status = ?2, last_error = ?3, next_attempt_at = ?4, claimed_until = NULL \
                 WHERE delivery_id = ?5 AND status = 'pending'",
            )?
            .execute(params![
                at,
                status,
                error,
                nanos(*next_attempt_at),
                delivery_id
            ])?;
        }
        AttemptResult::Failed { status, error } => {
            conn.prepare_cached(
                "UPDATE outbox SET status = ?1, attempts = attempts + 1, last_attempt_at = ?2, \
                 last_status = ?3, last_error = ?4, claimed_until = NULL \
                 WHERE delivery_id = ?5 AND status = 'pending'",
            )?
            .execute(params![
                DeliveryState::Failed.as_str(),
                at,
                status,
                error,
                delivery_id
            ])?;
        }
    }
    Ok(WriteReply::Done)
}

#[cfg(test)]
mod tests {
    use super::{Committer, Synchronous};

    /// The level is set by a cached statement: re-running it from the cache must still
    /// set it each time the commits alternate.
    #[test]
    fn the_synchronous_level_follows_each_commit() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        let level = |c: &Committer<'_>| -> i64 {
            c.conn
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap()
        };
        let mut committer = Committer {
            conn: &mut conn,
            synchronous: None,
        };
        for _ in 0..3 {
            committer.set_synchronous(Synchronous::Normal).unwrap();
            assert_eq!(level(&committer), 1, "NORMAL");
            committer.set_synchronous(Synchronous::Full).unwrap();
            assert_eq!(level(&committer), 2, "FULL");
        }
    }
}
