//! The Asterisk driver: one task per FastAGI connection that carries the switch-neutral
//! [`CallEngine`]'s actions to the channel, and the channel's notices, fetched documents,
//! REST commands and timers back into it (SPEC §16). The engine is the same as for
//! FreeSWITCH and does not know which switch it drives; the CDR, callbacks, outbox and
//! live rows are written by the same code as FreeSWITCH's (`super::freeswitch`'s
//! `record`, `live_row`, `fetch` modules).
//!
//! Layout: [`render`] (operations → AGI commands, replies → outcomes, chan_sip's SIP
//! codes), [`ari`] (out-of-band hang-up and channel checks, and why ARI), this module (the
//! call task).
//!
//! Decisions (facts from `tests/fixtures/agi/`):
//! - **The call's id** is Asterisk's `agi_uniqueid` (`1796449610.0`), which is also the ARI
//!   channel id. Its integer part is the channel's creation time (the start time).
//! - **Start**: before the engine starts, the task reads `${CHANNEL(state)}` (`Up`: the
//!   dialplan answered) and the per-call variables the dialplan may set —
//!   `voxbridge_answer_url`, `voxbridge_hangup_url`, `voxbridge_status_callback_url`,
//!   `voxbridge_fallback_answer_url`, `voxbridge_account` (the FreeSWITCH names) and the
//!   configured `extra_variables` — one `GET VARIABLE` each (sub-millisecond on loopback).
//! - **One operation at a time** on the AGI socket, each on its own small task so the loop
//!   keeps reading notices. An application returning `result=-1` means the channel hung up
//!   under it — and that reply comes *before* the `HANGUP` notice — so such an outcome is
//!   held back for up to [`HANGUP_NOTICE_WAIT`]: if `HANGUP` comes, the engine hears the
//!   channel is down first and runs nothing more; if not, the operation failed.
//! - **The end**: on `HANGUP` the task reads `${HANGUPCAUSE}` and
//!   `${CHANNEL(hangupsource)}` (still answered on a dead channel) — the twin of
//!   FreeSWITCH's CHANNEL_HANGUP_COMPLETE — feeds the engine, then **closes the socket at
//!   once**: Asterisk keeps the channel until then, and an unanswered caller gets its
//!   486/403 only at that moment. The record is written after the close.
//! - **Kill** (REST hang-up, empty-document timeout) goes through ARI
//!   (`DELETE /channels/{id}?reason_code=…`): it ends a running Playback at once. Without
//!   ARI configured it falls back to `EXEC Hangup` on the socket, which runs once the
//!   current application returns.
//! - **SIP status**: the engine's `sip_status` follows FreeSWITCH's table; for an
//!   unanswered call the record gets chan_sip's code instead ([`render::chan_sip_refuse_code`]:
//!   21 → 403, 17 → 486).
//! - A socket that closes before `HANGUP` is a lost socket (SPEC §2 step 7); the call is
//!   closed out with what is known, and hung up through ARI in case the channel lives on.
//! - **Schedule**: `TIMEOUT(absolute)` inside the switch plus the dialplan's `T` extension
//!   that hangs up with `${voxbridge_scheduled_cause}` ([`render`]); when it fires the AGI
//!   reports HANGUPCAUSE 0 and an empty source, and the record takes the armed cause.
//! - **http(s) media** for Play is fetched and cached by voxbridge ([`media`]) and played
//!   from the local file (the switch has no HTTP media cache).
//! - **Reconciliation** after a restart asks ARI per live row (`crate::server`).
//! - Not yet on Asterisk (each a clear refusal, never a silent skip): Speak in early media
//!   (app_flite answers), Dial/Gather/Record.

pub mod ari;
pub mod media;
pub mod render;

use crate::agi::{AgiCommand, AgiConnection, AgiEvent, AgiEvents, Reply};
use crate::app::fetch::{FetchError, FetchRequest, Fetched};
use crate::call::engine::{
    Action, CallEngine, CommandFailure, DocumentFetch, HangupCommand, Input, OpId, OpOutcome,
    Reaction,
};
use crate::call::freeswitch::channel::CallFacts;
use crate::call::freeswitch::live_row::LiveRowWrites;
use crate::call::freeswitch::{fetch, record, CallServices};
use crate::call::hangup::Ending;
use crate::call::live::{CallCommand, HangupReply};
use crate::call::route::Resolved;
use crate::cause::HangupCause;
use crate::document::model::FetchEvent;
use crate::record::call::Direction;
use crate::store::keeper::Admission;
use ari::{Ari, AriError};
use render::Plan;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

/// How long an operation that returned `result=-1` waits for the `HANGUP` notice before
/// it counts as a failure (the notice came within ~50 ms on the bundle).
pub const HANGUP_NOTICE_WAIT: Duration = Duration::from_secs(1);

/// The channel variables read at the start (besides `extra_variables`).
const CALL_VARIABLES: &[&str] = &[
    "voxbridge_answer_url",
    "voxbridge_hangup_url",
    "voxbridge_status_callback_url",
    "voxbridge_fallback_answer_url",
    "voxbridge_account",
];

/// What the Asterisk call tasks share: the services every driver uses, and ARI.
pub struct AsteriskServices {
    pub calls: Arc<CallServices>,
    pub ari: Option<Ari>,
    /// Where http(s) media for `Play` is fetched to ([`media`]).
    pub media: Option<media::MediaCache>,
}

/// The handler the FastAGI listener runs for every accepted channel.
pub fn handler(
    services: Arc<AsteriskServices>,
) -> impl Fn(
    AgiConnection,
    AgiEvents,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
       + Send
       + Sync
       + 'static {
    move |conn, events| Box::pin(run_call(services.clone(), conn, events))
}

/// Runs one call from the AGI environment to its record. Never panics on anything the
/// switch, the application or the store does; a bug that panics in the call's task still
/// ends with the channel released and a record (source `Error`).
pub async fn run_call(services: Arc<AsteriskServices>, conn: AgiConnection, events: AgiEvents) {
    let uuid = conn.env().uniqueid().unwrap_or_default().to_string();
    let span = tracing::info_span!("call", call_uuid = %uuid, switch = "asterisk");
    let known: Arc<std::sync::Mutex<Option<(CallFacts, Resolved)>>> = Arc::default();
    let task = {
        let (services, conn, known) = (services.clone(), conn.clone(), known.clone());
        async move {
            let Some(task) = CallTask::start(services, conn, known).await else {
                return;
            };
            task.run(events).await
        }
    };
    let handle = tokio::spawn(task.instrument(span.clone()));
    let abort = handle.abort_handle();
    let _guard = AbortOnDrop(abort);
    if let Err(e) = handle.await {
        if e.is_panic() {
            async {
                tracing::error!(
                    "the call's task panicked (a bug): hanging up and closing the call out"
                );
                if let Some(ari) = &services.ari {
                    let _ = ari
                        .hangup(&uuid, HangupCause::NORMAL_TEMPORARY_FAILURE)
                        .await;
                }
                conn.close();
                let known = known.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some((facts, resolved)) = known {
                    let live = record::live_from_facts(&facts, &resolved);
                    let rec = record::closed_out_with_error(
                        &live,
                        "Error: internal error",
                        "the call's task failed (a bug); closed out with what was known",
                    );
                    record::keep(&services.calls, &resolved, rec, None, Vec::new()).await;
                }
            }
            .instrument(span)
            .await;
        }
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the call's helper tasks report to its loop.
enum Report {
    /// An operation's reply (or why there is none).
    Op {
        id: OpId,
        outcome: OpOutcome,
        hangup_result: bool,
    },
    /// A held `result=-1` outcome's wait for `HANGUP` is over.
    HeldExpired { id: OpId },
    /// What the switch said to a hang-up command.
    HangupDone {
        command: HangupCommand,
        result: Result<(), CommandFailure>,
    },
    Fetched {
        result: Result<Fetched, FetchError>,
        elapsed: Duration,
    },
    /// `${HANGUPCAUSE}` and `${CHANNEL(hangupsource)}` after `HANGUP`.
    EndFacts {
        cause: Option<String>,
        source: Option<String>,
    },
}

struct CallTask {
    services: Arc<AsteriskServices>,
    conn: AgiConnection,
    facts: CallFacts,
    resolved: Resolved,
    engine: CallEngine,
    reports_tx: mpsc::UnboundedSender<Report>,
    reports: mpsc::UnboundedReceiver<Report>,
    document_url: Option<String>,
    fetch_task: Option<tokio::task::AbortHandle>,
    live_row_writes: LiveRowWrites,
    live_row: Option<oneshot::Receiver<bool>>,
    answer_time: Option<OffsetDateTime>,
    api_hangups: Vec<oneshot::Sender<HangupReply>>,
    /// An outcome of `result=-1` waiting to see whether `HANGUP` follows.
    held: Option<(OpId, OpOutcome)>,
    /// `HANGUP` seen; the end facts are being read.
    hangup_seen: bool,
    /// The op in flight is our own Answer (its completion is the answer time).
    answering: Option<OpId>,
    /// Set when the store refused the live row: the call is refused (SPEC issue 10).
    refused_for_store: bool,
    /// Hangups armed in the switch (`TIMEOUT(absolute)`): when due and with what cause.
    armed: Vec<(Instant, HangupCause)>,
    /// The cause of our first kill (ARI carries only its Q.850 value: ALLOTTED_TIMEOUT
    /// comes back as 16, and is recorded as what we asked for).
    killed_with: Option<HangupCause>,
}

impl CallTask {
    /// Reads the channel's state and variables, routes the call; `None` when the
    /// connection ended before that (nothing was taken over: the dialplan goes on).
    async fn start(
        services: Arc<AsteriskServices>,
        conn: AgiConnection,
        known: Arc<std::sync::Mutex<Option<(CallFacts, Resolved)>>>,
    ) -> Option<CallTask> {
        let calls = services.calls.clone();
        let state = match conn
            .command(AgiCommand::get_full_variable("${CHANNEL(state)}").ok()?)
            .await
        {
            Ok(reply) => reply.data.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "FastAGI connection ended before the call was taken over");
                return None;
            }
        };
        let mut variables = HashMap::new();
        let extra = calls.config.app.extra_variables.clone();
        for name in CALL_VARIABLES.iter().map(|s| s.to_string()).chain(extra) {
            let Ok(cmd) = AgiCommand::get_variable(&name) else {
                tracing::warn!(variable = %name, "extra variable name not usable on Asterisk; skipped");
                continue;
            };
            match conn.command(cmd).await {
                Ok(Reply {
                    result: Some(1),
                    data: Some(v),
                    ..
                }) => {
                    variables.insert(name, v);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "FastAGI connection ended before the call was taken over");
                    return None;
                }
            }
        }
        let env = conn.env();
        let uuid = env.uniqueid().unwrap_or_default().to_string();
        let start_time = uuid
            .split('.')
            .next()
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .filter(|t| (OffsetDateTime::now_utc() - *t).whole_days().abs() < 2)
            .unwrap_or_else(OffsetDateTime::now_utc);
        let forwarded_from = match env.get("rdnis") {
            Some("unknown") | Some("") | None => None,
            Some(v) => Some(v.to_string()),
        };
        let facts = CallFacts {
            uuid: uuid.clone(),
            answered: state.trim().eq_ignore_ascii_case("up"),
            direction: Direction::Inbound,
            from: env.caller_id().to_string(),
            to: env.destination().to_string(),
            caller_name: env.caller_name().to_string(),
            forwarded_from,
            start_time,
            variables,
            // The AGI environment names no system; one Asterisk per deployment so far.
            switch_name: String::new(),
        };
        let settings = calls.engine_settings.clone();
        let (resolved, engine) = match calls.router.resolve(&facts.variables, &facts.to) {
            Ok(r) => {
                let engine = CallEngine::new(settings, Some(r.answer_url.clone()));
                (r, engine)
            }
            Err(e) => {
                tracing::error!(error = %e, destination = %facts.to, "call cannot be routed; refusing it");
                (
                    calls.router.callback_targets(&facts.variables, &facts.to),
                    CallEngine::refusing(settings, e.to_string()),
                )
            }
        };
        *known.lock().unwrap_or_else(|p| p.into_inner()) = Some((facts.clone(), resolved.clone()));
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let live_row_writes = LiveRowWrites::new(calls.store.clone(), &uuid);
        Some(CallTask {
            services,
            conn,
            facts,
            resolved,
            engine,
            reports_tx,
            reports,
            document_url: None,
            fetch_task: None,
            live_row_writes,
            live_row: None,
            answer_time: None,
            api_hangups: Vec::new(),
            held: None,
            hangup_seen: false,
            answering: None,
            refused_for_store: false,
            armed: Vec::new(),
            killed_with: None,
        })
    }

    async fn run(mut self, mut events: AgiEvents) {
        let calls = self.services.calls.clone();
        tracing::info!(
            from = %self.facts.from,
            to = %self.facts.to,
            answered = self.facts.answered,
            channel = ?self.conn.env().channel(),
            "call taken over (Asterisk)"
        );
        calls.metrics.call_started();
        if calls.keeper.admit() == Admission::RefuseStoreUnavailable {
            tracing::error!("the store is failing: refusing the call");
            self.refused_for_store = true;
        }
        let answered_at = self.facts.answered.then_some(self.facts.start_time);
        self.answer_time = answered_at;
        if !self.refused_for_store {
            self.live_row = Some(self.live_row_writes.start(
                &self.facts,
                &self.resolved,
                answered_at,
            ));
        }
        let (commands_tx, mut commands) = mpsc::channel(8);
        let registration =
            calls
                .live
                .register(&self.facts.uuid, &self.resolved.account_id, commands_tx);
        let mut cut_off = calls.cut_off.subscribe();
        let mut cut_off_at: Option<Instant> = None;
        let mut events_open = true;

        let mut ending = if self.refused_for_store {
            self.refuse_for_store().await;
            None
        } else {
            let answered = self.facts.answered;
            self.input(Input::Start { answered });
            self.drain_actions().await
        };
        while ending.is_none() {
            let wait = self
                .engine
                .poll_timeout()
                .map(|due| due.saturating_duration_since(Instant::now()))
                .into_iter()
                .chain(
                    cut_off_at
                        .map(|at| (at + CUT_OFF_WAIT).saturating_duration_since(Instant::now())),
                )
                .min();
            let sleep = async move {
                match wait {
                    Some(w) => tokio::time::sleep(w).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = events.recv(), if events_open => match ev {
                    Some(AgiEvent::Hangup) => self.on_hangup_notice(),
                    Some(AgiEvent::Closed(reason)) => {
                        events_open = false;
                        self.on_closed(reason.to_string());
                    }
                    None => {
                        events_open = false;
                        self.on_closed("the connection's task ended".into());
                    }
                },
                Some(report) = self.reports.recv() => self.on_report(report),
                Some(cmd) = commands.recv() => self.on_command(cmd),
                Ok(()) = cut_off.changed(), if cut_off_at.is_none() => {
                    if !self.engine.is_finished() {
                        tracing::warn!("shutdown grace expired with the call up: hanging it up");
                        cut_off_at = Some(Instant::now());
                        self.kill(HangupCommand::Kill, HangupCause::NORMAL_TEMPORARY_FAILURE);
                    }
                }
                _ = sleep => {
                    if cut_off_at.is_some_and(|at| Instant::now() >= at + CUT_OFF_WAIT) {
                        tracing::warn!("no hangup from the switch after the cut-off; closing the call out");
                        self.input(Input::SocketLost);
                    }
                    self.engine.handle_timeout(Instant::now());
                }
            }
            ending = self.drain_actions().await;
        }
        let ending = ending.expect("loop ends only with an ending");
        drop(registration);
        for reply in self.api_hangups.drain(..) {
            let _ = reply.send(HangupReply::Ending);
        }
        if let Some(fetch) = self.fetch_task.take() {
            fetch.abort();
        }
        // Release the channel first: Asterisk keeps it (and the caller's final response)
        // until the FastAGI connection closes.
        self.conn.close();
        self.finish(ending, cut_off_at.is_some()).await;
    }
}

impl CallTask {
    fn input(&mut self, input: Input) -> Reaction {
        self.engine.handle(Instant::now(), input)
    }

    /// Carries out every action the engine has queued; the ending once it finishes.
    async fn drain_actions(&mut self) -> Option<Ending> {
        while let Some(action) = self.engine.poll_action() {
            match action {
                Action::Fetch(req) => self.start_fetch(req),
                Action::Run { id, op } => {
                    // The live row is durable before the first command that changes the
                    // channel (the document fetch normally hides the wait).
                    if let Some(durable) = self.live_row.take() {
                        if !durable.await.unwrap_or(false) {
                            self.refused_for_store = true;
                            self.refuse_for_store().await;
                            self.input(Input::OpFinished {
                                id,
                                outcome: OpOutcome::Refused(
                                    "the store could not write the live call".into(),
                                ),
                            });
                            continue;
                        }
                    }
                    if matches!(op, crate::call::channel_op::ChannelOp::Answer) {
                        self.answering = Some(id);
                    }
                    self.run_op(id, &op);
                }
                Action::Kill { cause } => self.kill(HangupCommand::Kill, cause),
                Action::HangupAfterOp { cause } => self.kill(HangupCommand::HangupAfterOp, cause),
                Action::ScheduleArmed { after } => {
                    self.live_row_writes
                        .scheduled_hangup(Some(OffsetDateTime::now_utc() + after));
                }
                Action::ScheduleCleared => self.live_row_writes.scheduled_hangup(None),
                // A Dial's legs: its Bridge is refused on Asterisk (render::plan), so no
                // leg ever exists here.
                Action::LegsEnded { .. }
                | Action::DialAnswered { .. }
                | Action::DialDigitsMatch { .. }
                | Action::KillLeg { .. } => {
                    tracing::warn!("a Dial leg action on Asterisk, where Dial is not supported yet")
                }
                // Only a Gather interrupts its prompt, and a Gather's first operation is
                // refused on Asterisk (render::plan), so nothing is playing to interrupt.
                Action::Interrupt => {
                    tracing::warn!("interrupt asked on Asterisk, where Gather is not supported yet")
                }
                Action::Request(req) => {
                    let params = fetch::params(
                        &self.facts,
                        &self.resolved,
                        self.engine.answered(),
                        req.event.clone(),
                        &self.services.calls.config.app.extra_variables,
                    );
                    crate::call::freeswitch::request::enqueue(
                        &self.services.calls,
                        &self.resolved,
                        &self.facts.uuid,
                        req,
                        params,
                    );
                }
                Action::Finish(ending) => return Some(ending),
            }
        }
        None
    }

    /// Sends one operation on its own task; its reply comes back as [`Report::Op`].
    fn run_op(&mut self, id: OpId, op: &crate::call::channel_op::ChannelOp) {
        if let crate::call::channel_op::ChannelOp::Speak { voice, .. } = op {
            tracing::debug!(
                ?voice,
                "Flite speaks with flite.conf's voice (app_flite takes no voice argument)"
            );
        }
        let answered = self.engine.answered();
        if let crate::call::channel_op::ChannelOp::Play { url } = op {
            let lower = url.to_ascii_lowercase();
            if lower.starts_with("http://") || lower.starts_with("https://") {
                return self.play_remote(id, url.clone(), answered);
            }
        }
        let plan = render::plan_on(op, answered);
        let reports = self.reports_tx.clone();
        match plan {
            Plan::Refuse(why) => {
                tracing::warn!(op = ?op, reason = %why, "operation refused on Asterisk");
                let _ = reports.send(Report::Op {
                    id,
                    outcome: OpOutcome::Refused(why),
                    hangup_result: false,
                });
            }
            Plan::Commands(cmds) => {
                match op {
                    crate::call::channel_op::ChannelOp::ArmHangup { after, cause } => {
                        self.armed.push((Instant::now() + *after, *cause));
                    }
                    crate::call::channel_op::ChannelOp::CancelArmedHangups => self.armed.clear(),
                    _ => {}
                }
                tokio::spawn(run_commands(self.conn.clone(), id, cmds, reports).in_current_span());
            }
        }
    }

    /// Play of http(s) media: fetched (once, cached) by voxbridge, then `Playback` of the
    /// local file; a fetch that fails is the operation's failure.
    fn play_remote(&mut self, id: OpId, url: String, answered: bool) {
        let reports = self.reports_tx.clone();
        let conn = self.conn.clone();
        let Some(cache) = self.services.media.clone() else {
            let _ = reports.send(Report::Op {
                id,
                outcome: OpOutcome::Refused(format!(
                    "Play {url}: no [asterisk] media_cache_dir to fetch it into"
                )),
                hangup_result: false,
            });
            return;
        };
        tokio::spawn(
            async move {
                let local = match cache.local(&url).await {
                    Ok(path) => path,
                    Err(why) => {
                        tracing::warn!(reason = %why, "media not played");
                        let _ = reports.send(Report::Op {
                            id,
                            outcome: OpOutcome::Failed(why),
                            hangup_result: false,
                        });
                        return;
                    }
                };
                let op = crate::call::channel_op::ChannelOp::Play {
                    url: format!("file://{local}"),
                };
                match render::plan_on(&op, answered) {
                    Plan::Commands(cmds) => run_commands(conn, id, cmds, reports).await,
                    Plan::Refuse(why) => {
                        let _ = reports.send(Report::Op {
                            id,
                            outcome: OpOutcome::Refused(why),
                            hangup_result: false,
                        });
                    }
                }
            }
            .in_current_span(),
        );
    }

    /// Hangs the channel up from outside the document's flow: through ARI (at once, even
    /// during a Playback), else on the socket after the running application.
    fn kill(&mut self, command: HangupCommand, cause: HangupCause) {
        self.killed_with.get_or_insert(cause);
        let reports = self.reports_tx.clone();
        let ari = self
            .services
            .ari
            .clone()
            .filter(|_| command == HangupCommand::Kill);
        let conn = self.conn.clone();
        let uuid = self.facts.uuid.clone();
        tokio::spawn(
            async move {
                let result = match ari {
                    Some(ari) => match ari.hangup(&uuid, cause).await {
                        Ok(()) => Ok(()),
                        Err(AriError::ChannelGone) => Err(CommandFailure::ChannelGone),
                        Err(e) => Err(CommandFailure::Refused(e.to_string())),
                    },
                    None => {
                        let cmd = AgiCommand::exec("Hangup", &cause.q850().to_string())
                            .expect("a number is a valid argument");
                        match conn.command(cmd).await {
                            Ok(reply) if reply.is_ok() => Ok(()),
                            Ok(reply) => Err(CommandFailure::Refused(reply.text)),
                            Err(e) => Err(CommandFailure::Refused(e.to_string())),
                        }
                    }
                };
                let _ = reports.send(Report::HangupDone { command, result });
            }
            .in_current_span(),
        );
    }

    fn start_fetch(&mut self, req: DocumentFetch) {
        let calls = self.services.calls.clone();
        let params = fetch::params(
            &self.facts,
            &self.resolved,
            self.engine.answered(),
            req.event.clone(),
            &calls.config.app.extra_variables,
        );
        let (fallback, asked_by) = match req.event {
            FetchEvent::StartApp => (self.resolved.fallback_answer_url.clone(), None),
            // A Gather's action is named by the document, like a Redirect's URL.
            FetchEvent::Redirect
            | FetchEvent::Gather { .. }
            | FetchEvent::DialAction(_)
            | FetchEvent::DialConfirmSound
            | FetchEvent::DialMusic => (None, self.document_url.clone()),
        };
        let token = self.resolved.auth_token.clone();
        let reports = self.reports_tx.clone();
        let task = tokio::spawn(
            async move {
                let started = Instant::now();
                let request = FetchRequest {
                    url: &req.url,
                    fallback_url: fallback.as_deref(),
                    method: req.method,
                    params: &params,
                    signing_token: token.as_deref(),
                    asked_by: asked_by.as_deref(),
                };
                let result = calls.fetcher.fetch(&request).await;
                let _ = reports.send(Report::Fetched {
                    result,
                    elapsed: started.elapsed(),
                });
            }
            .in_current_span(),
        );
        self.fetch_task = Some(task.abort_handle());
    }

    fn on_report(&mut self, report: Report) {
        match report {
            Report::Op {
                id,
                outcome,
                hangup_result,
            } => {
                if self.answering == Some(id) {
                    self.answering = None;
                    if outcome == OpOutcome::Completed {
                        let at = OffsetDateTime::now_utc();
                        self.answer_time.get_or_insert(at);
                        self.live_row_writes.answered(at);
                        self.input(Input::Answered);
                    }
                }
                if hangup_result && !self.hangup_seen {
                    // The channel probably hung up under the application: its HANGUP
                    // notice follows the reply. Hold the outcome until it does.
                    self.held = Some((id, outcome));
                    let reports = self.reports_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(HANGUP_NOTICE_WAIT).await;
                        let _ = reports.send(Report::HeldExpired { id });
                    });
                    return;
                }
                self.input(Input::OpFinished { id, outcome });
            }
            Report::HeldExpired { id } => {
                if let Some((held, outcome)) = self.held.take_if(|(h, _)| *h == id) {
                    self.input(Input::OpFinished { id: held, outcome });
                }
            }
            Report::HangupDone { command, result } => match result {
                Ok(()) => {
                    for reply in self.api_hangups.drain(..) {
                        let _ = reply.send(HangupReply::Ending);
                    }
                }
                Err(failure) => {
                    let text = format!("{failure:?}");
                    let gone = failure == CommandFailure::ChannelGone;
                    self.input(Input::CommandFailed { command, failure });
                    if !self.engine.is_closing() {
                        for reply in self.api_hangups.drain(..) {
                            let _ = reply.send(HangupReply::Refused(text.clone()));
                        }
                    } else if gone {
                        for reply in self.api_hangups.drain(..) {
                            let _ = reply.send(HangupReply::Ending);
                        }
                    }
                }
            },
            Report::Fetched { result, elapsed } => {
                self.services
                    .calls
                    .metrics
                    .fetch_observed(elapsed, result.is_ok());
                if let Ok(fetched) = &result {
                    self.document_url = Some(fetched.url.clone());
                }
                self.input(Input::DocumentFetched(fetch::engine_result(result)));
            }
            Report::EndFacts {
                cause: value,
                source,
            } => {
                let mut cause = render::hangup_cause(value.as_deref());
                // An absolute timeout (our schedule) ends the channel with no cause and an
                // empty hangup source; the cause it carries is the one we armed (the
                // dialplan's `T` extension hangs up with it once we have closed).
                let soft_without_cause =
                    matches!(value.as_deref().map(str::trim), Some("0") | None)
                        && source.as_deref().is_some_and(|s| s.trim().is_empty());
                let soft = source.as_deref().is_some_and(|s| s.trim().is_empty());
                if let Some(killed) = self
                    .killed_with
                    .filter(|k| soft && k.q850() == cause.q850())
                {
                    cause = killed;
                }
                if soft_without_cause {
                    let now = Instant::now();
                    if let Some((_, armed)) = self
                        .armed
                        .iter()
                        .filter(|(due, _)| *due <= now + SCHEDULE_EARLY_FIRE)
                        .min_by_key(|(due, _)| *due)
                    {
                        tracing::info!(cause = %armed, "the scheduled hangup fired in the switch");
                        cause = *armed;
                    }
                }
                let hung_up_by = render::hung_up_by(source.as_deref(), self.conn.env().channel());
                tracing::info!(cause = %cause, source = ?source, "channel hung up");
                self.input(Input::HangupComplete {
                    cause,
                    hung_up_by,
                    detail: source.map(|s| format!("hangupsource={s}")),
                });
            }
        }
    }

    /// `HANGUP`: the channel is down. The engine hears it at once (so nothing more is
    /// run), a held outcome is released after it, and the end facts are read.
    fn on_hangup_notice(&mut self) {
        if self.hangup_seen {
            return;
        }
        self.hangup_seen = true;
        self.input(Input::ChannelHungUp {
            cause: HangupCause::NORMAL_CLEARING,
        });
        if let Some((id, outcome)) = self.held.take() {
            self.input(Input::OpFinished { id, outcome });
        }
        let conn = self.conn.clone();
        let reports = self.reports_tx.clone();
        tokio::spawn(
            async move {
                let read = |cmd: Result<AgiCommand, _>| {
                    let conn = conn.clone();
                    async move {
                        match cmd {
                            Ok(cmd) => conn.command(cmd).await.ok().and_then(|r| r.data),
                            Err(_) => None,
                        }
                    }
                };
                let cause = read(AgiCommand::get_variable("HANGUPCAUSE")).await;
                let source = read(AgiCommand::get_full_variable("${CHANNEL(hangupsource)}")).await;
                let _ = reports.send(Report::EndFacts { cause, source });
            }
            .in_current_span(),
        );
    }

    /// The connection ended: if the engine has not finished, the socket was lost.
    fn on_closed(&mut self, reason: String) {
        if self.engine.is_finished() {
            return;
        }
        tracing::warn!(reason = %reason, "the FastAGI connection closed before the call's end");
        if !self.hangup_seen {
            // The channel may live on without us: end it through ARI if we can.
            if let Some(ari) = self.services.ari.clone() {
                let uuid = self.facts.uuid.clone();
                tokio::spawn(async move {
                    let _ = ari
                        .hangup(&uuid, HangupCause::NORMAL_TEMPORARY_FAILURE)
                        .await;
                });
            }
        }
        self.input(Input::SocketLost);
    }

    fn on_command(&mut self, cmd: CallCommand) {
        match cmd {
            CallCommand::Hangup { reply } => {
                tracing::info!("hangup requested through the REST API");
                match self.input(Input::ApiHangup) {
                    Reaction::Acted => self.api_hangups.push(reply),
                    Reaction::NoEffect => {
                        let _ = reply.send(HangupReply::Ending);
                    }
                    Reaction::AfterFinish => {
                        let _ = reply.send(HangupReply::Over);
                    }
                }
            }
            // A Dial's callee: no Dial runs on Asterisk yet, so no leg is registered
            // under this call; the API is told the leg is gone.
            CallCommand::HangupLeg { leg_uuid, reply } => {
                tracing::warn!(%leg_uuid, "leg hangup asked on Asterisk, where Dial is not supported yet");
                let _ = reply.send(HangupReply::Over);
            }
        }
    }

    /// The store could not take the live row: the call is refused with a temporary
    /// failure (chan_sip: 503), recorded like any other call (source `Error`).
    async fn refuse_for_store(&mut self) {
        let cmd = AgiCommand::exec(
            "Hangup",
            &HangupCause::NORMAL_TEMPORARY_FAILURE.q850().to_string(),
        )
        .expect("a number is a valid argument");
        let _ = self.conn.command(cmd).await;
    }

    async fn finish(&mut self, ending: Ending, cut_off: bool) {
        let mut rec =
            record::from_ending(&self.facts, &self.resolved, &ending, None, self.answer_time);
        if rec.answer_time.is_none() && !ending.caller_abandoned && rec.sip_status.is_some() {
            rec.sip_status = Some(render::chan_sip_refuse_code(rec.hangup_cause));
        }
        if self.refused_for_store {
            record::mark_error(
                &mut rec,
                HangupCause::NORMAL_TEMPORARY_FAILURE,
                crate::call::freeswitch::STORE_UNAVAILABLE,
                "refused: the store could not write the live call",
            );
        } else if cut_off {
            record::mark_error(
                &mut rec,
                HangupCause::NORMAL_TEMPORARY_FAILURE,
                "Error: cut off at shutdown",
                "hung up by voxbridge: the shutdown grace expired with the call up",
            );
        }
        tracing::info!(
            cause = %rec.hangup_cause,
            source = rec.hangup_source.as_str(),
            name = %rec.hangup_cause_name,
            duration = rec.duration_secs,
            billsec = rec.bill_duration_secs,
            "call ended"
        );
        let post_call = ending.post_call.as_ref().map(|p| (p.url.clone(), p.method));
        record::keep(
            &self.services.calls,
            &self.resolved,
            rec,
            post_call,
            Vec::new(),
        )
        .await;
    }
}

/// Sends `cmds` in order and reports the outcome of the last (or of the first that did not
/// complete). A connection that closed reports nothing: its Closed event ends the call.
async fn run_commands(
    conn: AgiConnection,
    id: OpId,
    cmds: Vec<AgiCommand>,
    reports: mpsc::UnboundedSender<Report>,
) {
    let mut report = Report::Op {
        id,
        outcome: OpOutcome::Refused("no command".into()),
        hangup_result: false,
    };
    for cmd in cmds {
        tracing::debug!(command = %cmd.line(), "AGI command");
        report = match conn.command(cmd).await {
            Ok(reply) => Report::Op {
                id,
                outcome: render::outcome(&reply),
                hangup_result: reply.is_hangup_result(),
            },
            Err(crate::agi::AgiError::Closed(_)) => return,
            Err(e) => Report::Op {
                id,
                outcome: OpOutcome::Refused(e.to_string()),
                hangup_result: false,
            },
        };
        if !matches!(
            report,
            Report::Op {
                outcome: OpOutcome::Completed,
                ..
            }
        ) {
            break;
        }
    }
    let _ = reports.send(report);
}

/// How early a `TIMEOUT(absolute)` may fire before its nominal time (whole seconds).
const SCHEDULE_EARLY_FIRE: Duration = Duration::from_millis(1500);

/// How long a call cut off at shutdown waits for the switch's hangup.
const CUT_OFF_WAIT: Duration = Duration::from_secs(3);
