//! The outbox delivery worker (SPEC §5.4): takes due callback rows from the store, sends
//! them, and records every attempt — so a callback is delivered across application
//! outages and voxbridge restarts, and never marked delivered before a 2xx.
//!
//! - Woken by the store when rows are committed; otherwise it sleeps until the next row
//!   falls due (and re-checks every [`IDLE_POLL`] in case rows came from elsewhere).
//! - Up to `concurrency` attempts run at once, and one receiver (`scheme://host:port`)
//!   may hold at most half of them, so one slow receiver never stalls the others.
//! - Each attempt sends the stored bytes unchanged with the row's `DeliveryID` (in the
//!   payload and as [`DELIVERY_ID_HEADER`]) and a fresh signature (SPEC §7) made with the
//!   call's account token, looked up when the attempt is made.
//! - Retryable failures are rescheduled per [`schedule::RetrySchedule`]; permanent ones
//!   and expired windows mark the row failed.
//! - [`OutboxWorker::stop`] lets attempts in flight finish (bounded by the request
//!   timeout) and leaves every other row pending for the next start.
//! - A 2xx with a body to a post-call request is handed to a
//!   [`PostCallResponseHandler`] (post-call mode, SPEC §4 rule 5).

pub mod classify;
pub mod schedule;

use crate::app::sign;
use crate::config::{Account, OutboxConfig};
use crate::document::model::HttpMethod;
use crate::metrics::OutboxStats;
use crate::record::callback::CallbackKind;
use crate::store::{AttemptResult, BoxFuture, ClaimRequest, PendingCallback, StoreHandle};
use bytes::Bytes;
use classify::{classify_failure, classify_status, transport_failure, Verdict};
use schedule::{NextAttempt, RetrySchedule};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The header carrying the row's idempotency key on every attempt.
pub const DELIVERY_ID_HEADER: &str = "X-Voxbridge-Delivery-ID";

/// Longest sleep between looks at the store when nothing is known to be due.
pub const IDLE_POLL: Duration = Duration::from_secs(2);

/// Largest post-call response handed to the hook (documents are far smaller).
pub const MAX_POST_CALL_RESPONSE: usize = 1024 * 1024;

/// Response bytes read (and dropped) from other callbacks, so the connection can be
/// reused.
const MAX_DRAINED_RESPONSE: usize = 64 * 1024;

/// How long past the request timeout a claimed row stays claimed, covering the time to
/// record the attempt.
const CLAIM_MARGIN: Duration = Duration::from_secs(30);

/// The worker's settings, validated from `[outbox]`.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxSettings {
    pub schedule: RetrySchedule,
    pub request_timeout: Duration,
    pub concurrency: usize,
}

impl OutboxSettings {
    /// Checks every value, naming the key that is wrong.
    /// (The rules are [`OutboxConfig::checked`]'s.)
    pub fn from_config(c: &OutboxConfig) -> Result<Self, String> {
        let times = c.checked()?;
        Ok(Self {
            schedule: RetrySchedule {
                initial: times.initial_backoff,
                max: times.max_backoff,
                give_up_after: times.give_up_after,
            },
            request_timeout: times.request_timeout,
            concurrency: c.concurrency,
        })
    }

    /// Most attempts one receiver may have in flight: half the slots (at least one).
    pub fn per_receiver_limit(&self) -> usize {
        (self.concurrency / 2).max(1)
    }
}

/// A post-call request's answer, for post-call mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostCallResponse {
    pub call_uuid: String,
    pub account_id: String,
    pub delivery_id: String,
    /// The URL the request went to (documents resolve relative URLs against it).
    pub url: String,
    pub content_type: Option<String>,
    /// Never empty.
    pub body: Bytes,
}

/// Receives the document a post-call workflow answered with. Called once per delivered
/// post-call row with a non-empty 2xx body, on its own task (it may take long), and only
/// after the delivery has been recorded: a call has at most one post-call row, so its
/// workflow runs **at most once** — a 2xx whose recording failed is delivered again (same
/// DeliveryID) and only the recorded one is handed over; a crash while the workflow runs
/// does not run it again (the row is already delivered).
pub trait PostCallResponseHandler: Send + Sync {
    fn handle(&self, response: PostCallResponse) -> BoxFuture<'_, ()>;
}

/// The default handler until post-call mode exists: logs what was received.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogPostCallResponse;

impl PostCallResponseHandler for LogPostCallResponse {
    fn handle(&self, response: PostCallResponse) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            tracing::info!(
                call_uuid = %response.call_uuid,
                delivery_id = %response.delivery_id,
                bytes = response.body.len(),
                "post-call response received; post-call mode is not supported yet, ignored"
            );
        })
    }
}

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Reads an outbox worker's counters (see [`OutboxWorker::stats_source`]).
#[derive(Clone)]
pub struct OutboxStatsSource(Arc<Counters>);

impl OutboxStatsSource {
    pub fn read(&self) -> OutboxStats {
        OutboxStats {
            delivered: self.0.delivered.load(Ordering::Relaxed),
            retried: self.0.retried.load(Ordering::Relaxed),
            failed: self.0.failed.load(Ordering::Relaxed),
            claim_passes: self.0.claim_passes.load(Ordering::Relaxed),
        }
    }
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    claim_passes: AtomicU64,
}

/// The running worker. Dropping it without [`OutboxWorker::stop`] aborts nothing: the
/// task keeps running until the runtime ends.
pub struct OutboxWorker {
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    counters: Arc<Counters>,
}

impl OutboxWorker {
    pub fn stats(&self) -> OutboxStats {
        self.stats_source().read()
    }

    /// A handle that reads the counters after the worker itself has been moved (the
    /// REST API's `/metrics` keeps one while `serve` keeps the worker to stop it).
    pub fn stats_source(&self) -> OutboxStatsSource {
        OutboxStatsSource(self.counters.clone())
    }

    /// Stops taking rows, lets attempts in flight finish (at most the request timeout
    /// and a little more), and returns. Rows not attempted stay pending.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Starts the worker on the current tokio runtime.
pub fn start(
    store: StoreHandle,
    settings: OutboxSettings,
    accounts: &[Account],
    hook: Arc<dyn PostCallResponseHandler>,
) -> Result<OutboxWorker, OutboxError> {
    let client = crate::http_client::builder()
        .timeout(settings.request_timeout)
        .connect_timeout(settings.request_timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("voxbridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| OutboxError::Client(error_chain(&e)))?;
    let counters = Arc::new(Counters::default());
    let ctx = Arc::new(Delivery {
        store,
        client,
        signer: Signer::new(accounts),
        hook,
        settings,
        counters: counters.clone(),
    });
    let (shutdown, rx) = watch::channel(false);
    let task = tokio::spawn(run(ctx, rx));
    Ok(OutboxWorker {
        shutdown,
        task,
        counters,
    })
}

/// Signs with the call's account token; a call whose account is not configured goes
/// unsigned (SPEC §8), logged once per account.
struct Signer {
    tokens: HashMap<String, String>,
    warned: Mutex<HashSet<String>>,
}

impl Signer {
    fn new(accounts: &[Account]) -> Self {
        Self {
            tokens: accounts
                .iter()
                .map(|a| (a.auth_id.clone(), a.auth_token.clone()))
                .collect(),
            warned: Mutex::new(HashSet::new()),
        }
    }

    fn header(
        &self,
        account_id: &str,
        unix: i64,
        method: &str,
        url: &str,
        body: &[u8],
    ) -> Option<String> {
        match self.tokens.get(account_id) {
            Some(token) => Some(sign::header_value(token, unix, method, url, body)),
            None => {
                let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
                if warned.insert(account_id.to_string()) {
                    tracing::warn!(
                        account_id,
                        "no [[account]] with this auth_id: its callbacks are sent unsigned"
                    );
                }
                None
            }
        }
    }
}

struct Delivery {
    store: StoreHandle,
    client: reqwest::Client,
    signer: Signer,
    hook: Arc<dyn PostCallResponseHandler>,
    settings: OutboxSettings,
    counters: Arc<Counters>,
}

/// What one attempt got back.
enum Sent {
    Response {
        status: u16,
        content_type: Option<String>,
        body: Option<Bytes>,
    },
    Failed {
        verdict: Verdict,
        error: String,
    },
}

async fn run(ctx: Arc<Delivery>, mut shutdown: watch::Receiver<bool>) {
    let signal = ctx.store.outbox_signal();
    let concurrency = ctx.settings.concurrency;
    let per_receiver = ctx.settings.per_receiver_limit();
    let claim_for = ctx.settings.request_timeout + CLAIM_MARGIN;
    // An attempt's task answers whether its row is settled (delivered, or failed for
    // good), with the result still to be written when nothing waits for it.
    let mut inflight: JoinSet<Attempted> = JoinSet::new();
    // Settled results being written after their slot was given back.
    let mut recording: JoinSet<()> = JoinSet::new();
    let mut receiver_of: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut busy: HashMap<String, usize> = HashMap::new();

    let release = |id: tokio::task::Id,
                   receiver_of: &mut HashMap<tokio::task::Id, String>,
                   busy: &mut HashMap<String, usize>| {
        if let Some(receiver) = receiver_of.remove(&id) {
            if let Some(n) = busy.get_mut(&receiver) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    busy.remove(&receiver);
                }
            }
        }
    };

    // Look at the store at the next turn. Not after every finished attempt: a pass costs
    // a store transaction, and once a pass found nothing left due, only a commit of new
    // rows (the store's signal), a row falling due (the timer) or an attempt that did
    // not settle its row (a retry is scheduled) can make one due (issue 16).
    let mut claim_now = true;
    // The last pass left due rows behind, for lack of slots or of receiver room.
    let mut left_due = false;
    let mut wake_at = tokio::time::Instant::now();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let now = OffsetDateTime::now_utc();
        let free = concurrency.saturating_sub(inflight.len());
        let mut wait = IDLE_POLL;
        if claim_now && free > 0 {
            claim_now = false;
            let request = ClaimRequest {
                now,
                limit: free,
                claim_until: now + claim_for,
                receiver_room: busy
                    .iter()
                    .map(|(r, n)| (r.clone(), per_receiver.saturating_sub(*n)))
                    .collect(),
                default_receiver_room: per_receiver,
            };
            let claimed = ctx.store.claim_due_callbacks(request).await;
            ctx.counters.claim_passes.fetch_add(1, Ordering::Relaxed);
            match claimed {
                Ok(claimed) => {
                    let got = claimed.rows.len();
                    left_due = got == free || claimed.next_due.is_some_and(|due| due <= now);
                    for row in claimed.rows {
                        *busy.entry(row.receiver.clone()).or_default() += 1;
                        let receiver = row.receiver.clone();
                        let handle = inflight.spawn(attempt(ctx.clone(), row));
                        receiver_of.insert(handle.id(), receiver);
                    }
                    match claimed.next_due {
                        Some(due) if due > now => {
                            wait = (due - now).try_into().unwrap_or(IDLE_POLL).min(IDLE_POLL);
                        }
                        // Due rows were left: for lack of slots (a finishing attempt
                        // wakes us) or of room for their receiver. If this claim made
                        // progress, claim again at once with the new room.
                        Some(_) if got > 0 && got < free => {
                            claim_now = true;
                            continue;
                        }
                        _ => {}
                    }
                }
                Err(e) => {
                    // The store has logged it loudly; try again shortly.
                    tracing::warn!("outbox: cannot claim rows: {e}");
                    wait = Duration::from_secs(1);
                }
            }
            wake_at = tokio::time::Instant::now() + wait.max(Duration::from_millis(5));
        } else if claim_now {
            // No slot free: a finishing attempt wakes us, and claims then.
            left_due = true;
            wake_at = tokio::time::Instant::now() + IDLE_POLL;
        }
        tokio::select! {
            Some(done) = inflight.join_next_with_id(), if !inflight.is_empty() => {
                let (id, settled) = match done {
                    Ok((id, attempted)) => (id, attempted.write_in(&ctx, &mut recording)),
                    Err(e) => {
                        tracing::error!("outbox: a delivery task failed: {e}");
                        (e.id(), false)
                    }
                };
                release(id, &mut receiver_of, &mut busy);
                claim_now |= left_due || !settled;
            }
            _ = signal.notified() => claim_now = true,
            _ = tokio::time::sleep_until(wake_at) => claim_now = true,
            _ = shutdown.changed() => {}
        }
        while let Some(done) = inflight.try_join_next_with_id() {
            let (id, settled) = match done {
                Ok((id, attempted)) => (id, attempted.write_in(&ctx, &mut recording)),
                Err(e) => (e.id(), false),
            };
            release(id, &mut receiver_of, &mut busy);
            claim_now |= left_due || !settled;
        }
        while recording.try_join_next().is_some() {}
    }

    let in_flight = inflight.len();
    if in_flight > 0 {
        tracing::info!(
            in_flight,
            "outbox stopping: letting attempts in flight finish"
        );
        let grace = ctx.settings.request_timeout + Duration::from_secs(2);
        let drained = tokio::time::timeout(grace, async {
            while let Some(done) = inflight.join_next().await {
                if let Ok(attempted) = done {
                    attempted.write_in(&ctx, &mut recording);
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = inflight.len(),
                "outbox stopping: attempts still running were cut off; their rows stay pending"
            );
            inflight.abort_all();
            while inflight.join_next().await.is_some() {}
        }
    }
    // Results of settled attempts still being written; the store's writes are bounded.
    let grace = ctx.settings.request_timeout + Duration::from_secs(2);
    if tokio::time::timeout(grace, async {
        while recording.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!(
            left = recording.len(),
            "outbox stopping: attempt results not written in time; those callbacks will be sent again with the same DeliveryID"
        );
        recording.abort_all();
    }
    tracing::info!("outbox stopped; undelivered rows stay pending for the next start");
}

/// What an attempt's task hands back to the worker.
struct Attempted {
    /// The row is settled: delivered, or failed for good.
    settled: bool,
    /// A settled result nothing waits for, not written yet: the worker gives the slot
    /// back at once and writes it beside the next attempts (issue 16). With SQLite it
    /// then rides the next group commit instead of paying a commit of its own while the
    /// slot waits. Until it is committed the row stays claimed, so it is not attempted
    /// again; a crash before then sends it again with the same `DeliveryID` (SPEC §5.4:
    /// never marked delivered before a 2xx; receivers de-duplicate).
    unwritten: Option<(String, OffsetDateTime, AttemptResult)>,
}

impl Attempted {
    /// Starts writing the result, if it is left to write, on `recording`; returns whether
    /// the row is settled.
    fn write_in(self, ctx: &Arc<Delivery>, recording: &mut JoinSet<()>) -> bool {
        if let Some((delivery_id, at, result)) = self.unwritten {
            let ctx = ctx.clone();
            recording.spawn(async move {
                write_attempt(&ctx, &delivery_id, at, result).await;
            });
        }
        self.settled
    }
}

/// One attempt on one row. Settled when the row is delivered, or failed for good; not
/// when it is to be tried again (a retry scheduled, or the attempt not recorded), so the
/// worker looks at the store for when. A retry is recorded before the task ends (the
/// worker's next look at the store must see its time), and so is a post-call response
/// to be acted on (only a recorded delivery runs the workflow); any other settled result
/// is handed back unwritten, for the worker to write once the slot is free.
async fn attempt(ctx: Arc<Delivery>, row: PendingCallback) -> Attempted {
    let at = OffsetDateTime::now_utc();
    let sent = send(&ctx, &row, at).await;
    let attempts = row.attempts.saturating_add(1);
    let (result, hand_over) = match sent {
        Sent::Response {
            status,
            content_type,
            body,
        } => match classify_status(status) {
            Verdict::Delivered => {
                let hand_over = (row.kind == CallbackKind::PostCall)
                    .then_some(body)
                    .flatten()
                    .filter(|b| !b.is_empty())
                    .map(|body| (content_type, body));
                (AttemptResult::Delivered { status }, hand_over)
            }
            verdict => (
                failure_result(&ctx, &row, attempts, at, verdict, Some(status), {
                    format!("HTTP {status}")
                }),
                None,
            ),
        },
        Sent::Failed { verdict, error } => (
            failure_result(&ctx, &row, attempts, at, verdict, None, error),
            None,
        ),
    };
    log_result(&row, attempts, &result);
    match &result {
        AttemptResult::Delivered { .. } => &ctx.counters.delivered,
        AttemptResult::Retry { .. } => &ctx.counters.retried,
        AttemptResult::Failed { .. } => &ctx.counters.failed,
    }
    .fetch_add(1, Ordering::Relaxed);
    let settled = !matches!(result, AttemptResult::Retry { .. });
    if settled && hand_over.is_none() {
        return Attempted {
            settled,
            unwritten: Some((row.delivery_id, at, result)),
        };
    }
    if !write_attempt(&ctx, &row.delivery_id, at, result).await {
        // A post-call response is not acted on: only the delivery that is recorded runs
        // the workflow, so it runs at most once per call (SPEC §4 rule 5).
        return Attempted {
            settled: false,
            unwritten: None,
        };
    }
    if let Some((content_type, body)) = hand_over {
        let hook = ctx.hook.clone();
        let response = PostCallResponse {
            call_uuid: row.call_uuid.clone(),
            account_id: row.account_id.clone(),
            delivery_id: row.delivery_id.clone(),
            url: row.url.clone(),
            content_type,
            body,
        };
        tokio::spawn(async move { hook.handle(response).await });
    }
    Attempted {
        settled,
        unwritten: None,
    }
}

/// Records an attempt's result; false (logged) when it could not be.
async fn write_attempt(
    ctx: &Delivery,
    delivery_id: &str,
    at: OffsetDateTime,
    result: AttemptResult,
) -> bool {
    match ctx.store.record_attempt(delivery_id, at, result).await {
        Ok(()) => true,
        Err(e) => {
            // The claim expires and the row is tried again with the same DeliveryID: a
            // duplicate the receiver can recognise, never a loss.
            tracing::error!(
                %delivery_id,
                "outbox: attempt not recorded, the row will be retried: {e}"
            );
            false
        }
    }
}

fn failure_result(
    ctx: &Delivery,
    row: &PendingCallback,
    attempts: u32,
    now: OffsetDateTime,
    verdict: Verdict,
    status: Option<u16>,
    error: String,
) -> AttemptResult {
    if verdict != Verdict::Retry {
        return AttemptResult::Failed { status, error };
    }
    let draw: f64 = rand::random();
    match ctx
        .settings
        .schedule
        .next(attempts, row.created_at, now, draw)
    {
        NextAttempt::At(next_attempt_at) => AttemptResult::Retry {
            status,
            error,
            next_attempt_at,
        },
        NextAttempt::GiveUp => AttemptResult::Failed {
            status,
            error: format!("gave up after {attempts} attempts; last: {error}"),
        },
    }
}

fn log_result(row: &PendingCallback, attempts: u32, result: &AttemptResult) {
    let (id, kind, url) = (&row.delivery_id, row.kind.as_str(), &row.url);
    match result {
        AttemptResult::Delivered { status } => tracing::debug!(
            call_uuid = %row.call_uuid, delivery_id = %id, kind, url = %url, status, attempts,
            "callback delivered"
        ),
        AttemptResult::Retry {
            error,
            next_attempt_at,
            ..
        } => tracing::warn!(
            call_uuid = %row.call_uuid, delivery_id = %id, kind, url = %url, attempts,
            next_attempt_at = %next_attempt_at,
            "callback attempt failed, will retry: {error}"
        ),
        AttemptResult::Failed { error, .. } => tracing::error!(
            call_uuid = %row.call_uuid, delivery_id = %id, kind, url = %url, attempts,
            "callback failed for good: {error}"
        ),
    }
}

/// Sends the row as stored, signed now.
async fn send(ctx: &Delivery, row: &PendingCallback, at: OffsetDateTime) -> Sent {
    // The signature names the URL exactly as requested: normalise it first.
    let url = match url::Url::parse(&row.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u,
        Ok(u) => {
            return Sent::Failed {
                verdict: Verdict::Permanent,
                error: format!("callback URL scheme {:?} is not http(s)", u.scheme()),
            }
        }
        Err(e) => {
            return Sent::Failed {
                verdict: Verdict::Permanent,
                error: format!("callback URL {:?} is invalid: {e}", row.url),
            }
        }
    };
    let (method, body): (reqwest::Method, &[u8]) = match row.method {
        HttpMethod::Get => (reqwest::Method::GET, &[]),
        HttpMethod::Post => (reqwest::Method::POST, &row.body),
    };
    let mut request = ctx
        .client
        .request(method.clone(), url.clone())
        .header(DELIVERY_ID_HEADER, &row.delivery_id);
    if let Some(ct) = &row.content_type {
        request = request.header(reqwest::header::CONTENT_TYPE, ct);
    }
    if let Some(sig) = ctx.signer.header(
        &row.account_id,
        at.unix_timestamp(),
        method.as_str(),
        url.as_str(),
        body,
    ) {
        request = request.header(sign::SIGNATURE_HEADER, sig);
    }
    if row.method == HttpMethod::Post {
        request = request.body(body.to_vec());
    }
    let mut response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            return Sent::Failed {
                verdict: classify_failure(transport_failure(&e)),
                error: error_chain(&e),
            }
        }
    };
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let wants_body = row.kind == CallbackKind::PostCall && (200..300).contains(&status);
    let cap = if wants_body {
        MAX_POST_CALL_RESPONSE
    } else {
        MAX_DRAINED_RESPONSE
    };
    let body = read_capped(&mut response, cap).await;
    let body = match body {
        Ok(b) if wants_body => Some(b),
        Ok(_) => None,
        Err(e) if wants_body => {
            // The 2xx counts: the workflow was triggered. Its document is lost.
            tracing::error!(
                call_uuid = %row.call_uuid, delivery_id = %row.delivery_id,
                "post-call response body not usable: {e}"
            );
            None
        }
        Err(_) => None,
    };
    Sent::Response {
        status,
        content_type,
        body,
    }
}

/// Reads at most `cap` bytes of the body; more is an error (and the rest is dropped).
async fn read_capped(response: &mut reqwest::Response, cap: usize) -> Result<Bytes, String> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(format!("response larger than {cap} bytes"));
    }
    let mut buf = bytes::BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > cap {
                    return Err(format!("response larger than {cap} bytes"));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(e) => return Err(error_chain(&e)),
        }
    }
}

/// An error with its causes, which is where reqwest keeps "connection refused".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OutboxConfig {
        OutboxConfig::default()
    }

    #[test]
    fn settings_from_defaults() {
        let s = OutboxSettings::from_config(&config()).unwrap();
        assert_eq!(s.schedule.initial, Duration::from_secs(1));
        assert_eq!(s.schedule.max, Duration::from_secs(300));
        assert_eq!(s.schedule.give_up_after, Duration::from_secs(86_400));
        assert_eq!(s.request_timeout, Duration::from_secs(10));
        assert_eq!(s.per_receiver_limit(), 32);
    }

    #[test]
    fn bad_settings_name_the_key() {
        let mut c = config();
        c.initial_backoff = -1.0;
        assert!(OutboxSettings::from_config(&c)
            .unwrap_err()
            .contains("outbox.initial_backoff"));
        let mut c = config();
        c.max_backoff = 0.5;
        assert!(OutboxSettings::from_config(&c)
            .unwrap_err()
            .contains("outbox.max_backoff"));
        let mut c = config();
        c.request_timeout = f64::NAN;
        assert!(OutboxSettings::from_config(&c)
            .unwrap_err()
            .contains("outbox.request_timeout"));
        let mut c = config();
        c.concurrency = 1;
        assert_eq!(
            OutboxSettings::from_config(&c)
                .unwrap()
                .per_receiver_limit(),
            1
        );
    }

    #[test]
    fn signer_uses_the_account_token_or_nothing() {
        let signer = Signer::new(&[Account {
            auth_id: "MA1".into(),
            auth_token: "tok".into(),
        }]);
        let h = signer
            .header("MA1", 1_700_000_000, "POST", "http://a/b", b"x=1")
            .unwrap();
        assert_eq!(
            sign::verify("tok", &h, 1_700_000_001, "POST", "http://a/b", b"x=1"),
            Ok(())
        );
        assert_eq!(signer.header("nobody", 1, "POST", "http://a/b", b""), None);
    }
}
