//! The durable store: live calls, CDRs and the callback outbox, behind one [`Store`] trait.
//!
//! The REST API, the call driver and the outbox worker all hold the same
//! `Arc<dyn Store>` ([`StoreHandle`]). The trait speaks only in domain types (no SQL, no
//! SQLite types): [`sqlite::SqliteStore`] (one process per file, the default) and
//! [`postgres::PostgresStore`] (a fleet of nodes on one database, SPEC §14) implement it,
//! and one behavioural suite (`tests/store_behaviour.rs`) runs on both.
//!
//! Failure policy, the same for every implementation:
//! - every error is logged loudly and counted ([`Store::health`]), see [`health`];
//! - the writes a live call makes (start, answer, schedule) retry transient errors
//!   (busy, locked, disk full, I/O) with a bounded backoff, then return the error. A call
//!   that is running goes on without its answer or schedule write; but a call whose
//!   *start* row cannot be written is refused (503) before its first command, since a
//!   crash would otherwise lose it (issue 10 point 3);
//! - [`Store::finish_call`] retries transient errors until it succeeds or the store is
//!   closed: the call record must not be lost. The call driver never waits for it: it
//!   releases the channel first and hands the record to the [`keeper`], which also
//!   decides whether new calls are taken while the store cannot write.

pub mod error;
pub mod health;
pub mod keeper;
pub mod postgres;
pub mod recording;
pub mod retention;
pub mod retry;
pub mod sqlite;

use crate::document::model::HttpMethod;
use crate::record::call::{CallRecord, Direction};
use crate::record::callback::{CallbackKind, NewCallback};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use time::OffsetDateTime;

pub use error::{StoreError, StoreErrorKind};
pub use health::StoreHealth;
pub use recording::{Recording, RecordingEndReason, RecordingKind, RecordingPage, RecordingQuery};

/// A boxed, sendable future: what the object-safe async methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The one handle every area shares.
pub type StoreHandle = Arc<dyn Store>;

/// Opens the store named by `config.store.url`: `sqlite://<path>` (relative to the working
/// directory; `sqlite://:memory:` for a private in-memory database) or `postgres://…` /
/// `postgresql://…` (a libpq-style URL; this node's id is the host name, see
/// [`open_as_node`]). Migrations are applied before this returns.
pub async fn open(url: &str) -> Result<StoreHandle, StoreError> {
    open_as_node(url, &crate::config::default_node_id()).await
}

/// As [`open`], naming this node (`[node] id`) for a PostgreSQL store shared by a fleet.
pub async fn open_as_node(url: &str, node_id: &str) -> Result<StoreHandle, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.to_string();
        let store = tokio::task::spawn_blocking(move || {
            sqlite::SqliteStore::open(&path, sqlite::SqliteOptions::default())
        })
        .await
        .map_err(|e| StoreError::new(StoreErrorKind::Other, format!("open task failed: {e}")))??;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(open_postgres(url, node_id).await?))
    } else {
        Err(StoreError::new(
            StoreErrorKind::Invalid,
            format!(
                "store.url: {url:?} is not a store URL (expected sqlite://<path> or \
                 postgres://user@host:port/database)"
            ),
        ))
    }
}

/// Opens a PostgreSQL store as its own type, for the fleet duties only it has
/// (heartbeat, taking over dead nodes, finding a call's owner).
pub async fn open_postgres(
    url: &str,
    node_id: &str,
) -> Result<postgres::PostgresStore, StoreError> {
    postgres::PostgresStore::open(
        url,
        postgres::PostgresOptions {
            node_id: node_id.to_string(),
            ..postgres::PostgresOptions::default()
        },
    )
    .await
}

/// What the call driver writes when a call starts: enough to show it on the live-call
/// API and to close it out after a crash (its callback URLs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLiveCall {
    pub call_uuid: String,
    pub account_id: String,
    pub direction: Direction,
    pub from: String,
    pub to: String,
    pub caller_name: String,
    pub forwarded_from: Option<String>,
    pub start_time: OffsetDateTime,
    /// Where the hangup callback goes if the call has to be closed out at the next start.
    pub hangup_url: String,
    /// Where the JSON status event goes (empty: none).
    pub status_callback_url: String,
    /// The switch the call is on (connect reply's `FreeSWITCH-Switchname`; empty when
    /// unknown): the configured switch of that name is the one asked about the call
    /// (SPEC §14; see [`crate::config::SwitchConfig`]).
    pub switch_name: String,
}

/// A call the store shows as live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveCall {
    pub call_uuid: String,
    pub account_id: String,
    pub direction: Direction,
    pub from: String,
    pub to: String,
    pub caller_name: String,
    pub forwarded_from: Option<String>,
    pub start_time: OffsetDateTime,
    pub answer_time: Option<OffsetDateTime>,
    /// When an armed `schedule`d Hangup will fire (SPEC §4 rule 3).
    pub scheduled_hangup_at: Option<OffsetDateTime>,
    pub hangup_url: String,
    pub status_callback_url: String,
    /// The switch the call is on, as [`NewLiveCall::switch_name`] (empty: unknown).
    pub switch_name: String,
}

impl LiveCall {
    /// `in-progress` once answered, `ringing` before (the live-call API's `call_status`).
    pub fn call_status(&self) -> &'static str {
        if self.answer_time.is_some() {
            "in-progress"
        } else {
            "ringing"
        }
    }
}

/// What [`Store::finish_call`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishOutcome {
    /// The CDR and its callbacks were written and the live row removed.
    Finished,
    /// A CDR for this call already existed; nothing was written (first hangup wins).
    AlreadyFinished,
}

/// Where an outbox row stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Not yet delivered; will be attempted (again) at `next_attempt_at`.
    Pending,
    /// A 2xx was received.
    Delivered,
    /// A permanent failure (other 4xx, bad URL) or given up after the retry window.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => DeliveryState::Pending,
            "delivered" => DeliveryState::Delivered,
            "failed" => DeliveryState::Failed,
            _ => return None,
        })
    }
}

/// The delivery status of one callback, as the CDR and the REST API report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryStatus {
    pub delivery_id: String,
    pub kind: CallbackKind,
    pub url: String,
    pub method: HttpMethod,
    pub status: DeliveryState,
    pub attempts: u32,
    /// HTTP status of the last attempt that got a response.
    pub last_status: Option<u16>,
    /// Why the last attempt failed (cleared once delivered).
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub last_attempt_at: Option<OffsetDateTime>,
    /// When the next attempt is due (pending rows only).
    pub next_attempt_at: Option<OffsetDateTime>,
    pub delivered_at: Option<OffsetDateTime>,
}

/// A CDR with the delivery status of its callbacks.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredCdr {
    pub record: CallRecord,
    /// A Dial's B-leg: the A-leg it belongs to (SPEC §11.2); `None` for other calls.
    pub parent_call_uuid: Option<String>,
    /// In the order they were enqueued.
    pub deliveries: Vec<DeliveryStatus>,
}

/// One page of an account's CDRs, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct CdrPage {
    /// All CDRs of the account, not just this page.
    pub total: u64,
    pub cdrs: Vec<StoredCdr>,
}

/// A claim on due outbox rows for one delivery worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRequest {
    pub now: OffsetDateTime,
    /// At most this many rows.
    pub limit: usize,
    /// Claimed rows are not handed out again before this time (a worker that died
    /// mid-attempt releases its rows by letting the claim expire).
    pub claim_until: OffsetDateTime,
    /// How many more rows each receiver ([`crate::record::callback::receiver_of`]) may
    /// get in this claim; receivers not listed get up to `default_receiver_room`.
    pub receiver_room: Vec<(String, usize)>,
    pub default_receiver_room: usize,
}

/// Rows handed to a delivery worker, and when the next unclaimed row falls due.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimedCallbacks {
    pub rows: Vec<PendingCallback>,
    /// The earliest `next_attempt_at` of the pending rows left unclaimed (possibly in
    /// the past when rows were left for lack of room), `None` when there are none.
    pub next_due: Option<OffsetDateTime>,
}

/// An outbox row to attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingCallback {
    pub delivery_id: String,
    pub call_uuid: String,
    pub account_id: String,
    pub kind: CallbackKind,
    pub method: HttpMethod,
    pub url: String,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// Attempts made before this one.
    pub attempts: u32,
    /// When the row was written: the retry window counts from here.
    pub created_at: OffsetDateTime,
    /// `scheme://host:port` of `url`.
    pub receiver: String,
}

/// What one delivery attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    /// A 2xx: the row is done.
    Delivered { status: u16 },
    /// Retryable failure: try again at `next_attempt_at`.
    Retry {
        status: Option<u16>,
        error: String,
        next_attempt_at: OffsetDateTime,
    },
    /// Permanent failure, or retries given up.
    Failed { status: Option<u16>, error: String },
}

/// The store. Object-safe: used as `Arc<dyn Store>`.
///
/// Reads are scoped to an account where the REST API exposes them (an account sees only
/// its own calls). Methods taking `&str` copy what they need before the returned future
/// runs, so the futures borrow only the store.
pub trait Store: Send + Sync + 'static {
    /// A short description for logs, e.g. `sqlite:///var/lib/voxbridge.db`.
    fn describe(&self) -> String;

    /// Records a call as live when the switch hands it over. Bounded retry.
    fn call_started(&self, call: NewLiveCall) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Records the answer time of a live call. Bounded retry; unknown call: no-op.
    fn call_answered(
        &self,
        call_uuid: &str,
        answer_time: OffsetDateTime,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Sets (`Some`) or clears (`None`) the armed scheduled hangup. Bounded retry.
    fn set_scheduled_hangup(
        &self,
        call_uuid: &str,
        at: Option<OffsetDateTime>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Appends notes to a finished call's CDR (post-call mode's skipped elements).
    /// Unknown call: no-op. Bounded retry.
    fn add_cdr_notes(
        &self,
        call_uuid: &str,
        notes: Vec<String>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Writes outbox rows for a call that is still in progress (an element's request
    /// whose response is ignored, e.g. a Gather with `redirect="false"`; a Dial's
    /// `callbackUrl` events, SPEC §11.4; an outbound call's `Event=Ring`, SPEC §13), due
    /// now; the outbox delivers them like any other
    /// row. Bounded retry.
    fn enqueue_callbacks(
        &self,
        call_uuid: &str,
        account_id: &str,
        callbacks: Vec<NewCallback>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// One live call of the account.
    fn live_call(
        &self,
        account_id: &str,
        call_uuid: &str,
    ) -> BoxFuture<'_, Result<Option<LiveCall>, StoreError>>;

    /// The uuids of the account's live calls, oldest first.
    fn live_call_uuids(&self, account_id: &str) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;

    /// Every live call this process holds, of every account (reconciliation at start):
    /// with SQLite every live row; with PostgreSQL this node's rows only, since other
    /// nodes of the fleet run theirs.
    fn all_live_calls(&self) -> BoxFuture<'_, Result<Vec<LiveCall>, StoreError>>;

    /// In one transaction: writes the CDR, removes the live row, enqueues the callbacks.
    /// Idempotent per `call_uuid`: a second finish writes no CDR and no callbacks and
    /// returns [`FinishOutcome::AlreadyFinished`] (first hangup wins); it only removes a
    /// stale live row for the call, should one exist. Transient errors are retried until success or
    /// [`Store::close`]; an error that retrying cannot fix (e.g. a duplicate DeliveryID)
    /// is returned and leaves nothing written.
    fn finish_call(
        &self,
        record: CallRecord,
        callbacks: Vec<NewCallback>,
    ) -> BoxFuture<'_, Result<FinishOutcome, StoreError>>;

    /// In one transaction: writes the CDR of a Dial's B-leg, linked to its A-leg, with
    /// no callbacks (a B-leg's end is reported to the Dial's `callbackUrl`, never to the
    /// hangup URL). Idempotent per `call_uuid` like [`Store::finish_call`].
    ///
    /// The default keeps the record without the link, for stores that have no column
    /// for it.
    fn finish_leg(
        &self,
        record: CallRecord,
        parent_call_uuid: String,
    ) -> BoxFuture<'_, Result<FinishOutcome, StoreError>> {
        let _ = parent_call_uuid;
        self.finish_call(record, Vec::new())
    }

    /// One retention run ([`retention`]): deletes delivered callback rows and CDRs older
    /// than `policy` says, never a CDR with a pending callback, in small batches.
    /// `Ok(None)` for a store retention does not apply to (a private in-memory one).
    fn prune_old<'a>(
        &'a self,
        policy: &'a retention::RetentionPolicy,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<retention::Pruned>, StoreError>>;

    /// The account's CDR of a call, with its callbacks' delivery status.
    fn cdr(
        &self,
        account_id: &str,
        call_uuid: &str,
    ) -> BoxFuture<'_, Result<Option<StoredCdr>, StoreError>>;

    /// The account's CDRs, newest (by start time) first.
    fn cdrs(
        &self,
        account_id: &str,
        limit: u32,
        offset: u64,
    ) -> BoxFuture<'_, Result<CdrPage, StoreError>>;

    /// Writes a complete recording's row (module [`recording`]). A second write with the
    /// same `recording_id` changes nothing. Bounded retry.
    fn add_recording(&self, recording: Recording) -> BoxFuture<'_, Result<(), StoreError>>;

    /// One recording of the account (another account's: `None`).
    fn recording(
        &self,
        account_id: &str,
        recording_id: &str,
    ) -> BoxFuture<'_, Result<Option<Recording>, StoreError>>;

    /// The account's recordings matching `query`, newest (by `created_at`) first.
    fn recordings(
        &self,
        account_id: &str,
        query: RecordingQuery,
    ) -> BoxFuture<'_, Result<RecordingPage, StoreError>>;

    /// Removes one recording's row of the account and returns it (so the caller can
    /// remove its file); `None` if the account has no such recording. Bounded retry.
    fn delete_recording(
        &self,
        account_id: &str,
        recording_id: &str,
    ) -> BoxFuture<'_, Result<Option<Recording>, StoreError>>;

    /// Hands out due outbox rows (pending, `next_attempt_at <= now`, not claimed) in due
    /// order, respecting each receiver's room, and marks them claimed.
    fn claim_due_callbacks(
        &self,
        request: ClaimRequest,
    ) -> BoxFuture<'_, Result<ClaimedCallbacks, StoreError>>;

    /// Records one attempt on a row and releases its claim. Bounded retry.
    fn record_attempt(
        &self,
        delivery_id: &str,
        at: OffsetDateTime,
        result: AttemptResult,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// How many outbox rows are still pending (written, not yet delivered or failed), for
    /// the `voxbridge_outbox_backlog` gauge. A success does not count as a sign of store
    /// health: a scrape that reads fine must not hide a write that just failed.
    fn outbox_backlog(&self) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Notified whenever new outbox rows are committed, so the worker need not poll.
    fn outbox_signal(&self) -> Arc<tokio::sync::Notify>;

    /// Ok / last error / error count, for `/health` and metrics.
    fn health(&self) -> StoreHealth;

    /// Flushes queued writes and stops accepting new ones.
    fn close(&self) -> BoxFuture<'_, ()>;
}
