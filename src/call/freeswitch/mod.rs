//! The FreeSWITCH driver: one task per channel that carries the sans-IO
//! [`CallEngine`]'s actions to the switch over the outbound Event Socket, and the switch's
//! events, fetched documents, REST commands and timers back into it.
//!
//! The task owns one `select!` loop and never blocks it on the network: document fetches
//! run on their own tasks, and commands to the switch go through one writer task so they
//! keep their order while the loop keeps draining the (bounded) event stream — a loop
//! that awaited a reply while the stream was full would deadlock the connection.
//!
//! Decisions (SPEC §2, reference §2.5–2.8):
//! - The engine speaks switch-neutral [`crate::call::channel_op::ChannelOp`]s; `render`
//!   turns each into a dialplan application (name, argument, `http_cache://` paths, TTS
//!   voices from `[tts]`) and reads the switch's replies (`-ERR`, `Application-Response`)
//!   back as outcomes. Everything else here is carrying them.
//! - Every application is sent with `event-lock: true` and an `Event-UUID` chosen here, and
//!   registered *before* it is sent, so its CHANNEL_EXECUTE_COMPLETE can never arrive
//!   before we know whose it is.
//! - FreeSWITCH expands `${…}` in application arguments. Document text must reach the
//!   caller verbatim, so before the first argument that contains `${` the driver sets
//!   `app_disable_expand_variables=true` on the channel (once; calls without such text
//!   pay nothing).
//! - `Kill` (REST hangup, empty-document timeout) is `api uuid_kill <uuid> <cause>` on the
//!   call's own socket: it takes effect even while an event-locked playback runs. Its reply
//!   (and that of the `sendmsg` hangup the engine may fall back to) is fed back to the
//!   engine as an input; a REST hangup is answered only once the switch has replied.
//! - A `Redirect` from a document fetched over http(s) may not point at `file://`: a
//!   remote application must not make voxbridge read local files. The fetcher enforces
//!   it ([`crate::app::fetch`]); the driver tells it which document asked.
//! - The channel is released first (`exit`), the record written after (CDR + callbacks,
//!   one transaction, by the [`RecordKeeper`] on its own task): a slow, full or corrupt
//!   store never keeps a FreeSWITCH session alive (issue 10 point 1). The channel has
//!   always been hung up by then, except when the socket was lost (then there is nothing
//!   left to hang up on this connection).
//! - The live row is durable before the first command that changes the channel: the
//!   writer task holds the first command until the row is committed, which the document
//!   fetch normally hides. A row that cannot be written refuses the call (503, source
//!   `Error`), as does a store known to be failing when the call arrives (issue 10
//!   points 1 and 3). So a crash at any moment after the first command leaves a live row
//!   that the next start closes out.
//! - Calls still up when the shutdown grace expires are hung up (`uuid_kill`) and
//!   recorded like any other call (source `Error`), see [`CallServices::cut_off`].

use crate::app::callbacks::{self, CallbackTargets};
use crate::app::fetch::{CallStatus, FetchParams, FetchRequest, Fetcher};
use crate::call::engine::{
    Action, CallEngine, DocumentFetch, EngineSettings, FetchFailure, HangupCommand, Input, OpId,
    Reaction,
};
use crate::call::hangup::Ending;
use crate::call::live::{CallCommand, HangupReply, LiveCalls};
use crate::call::record::{CallRecord, Direction};
use crate::call::route::{Resolved, Router};
use crate::call::switch_clock::{event_timestamp, SwitchClock};
use crate::cause::HangupCause;
use crate::config::Config;
use crate::document::model::FetchEvent;
use crate::esl::command::Execute;
use crate::esl::event::{ChannelData, Event};
use crate::esl::outbound::{EventStream, OutboundConnection, SocketEvent};
use crate::metrics::Metrics;
use crate::store::keeper::{Admission, RecordKeeper};
use crate::store::{NewLiveCall, StoreHandle};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

mod closeout;
mod render;
pub use closeout::close_out_abandoned;

/// The events `myevents` subscribes to that the driver never reads. They are dropped
/// with `nixevent` at the handshake: the switch then neither builds nor sends them (each
/// is 5–7 KiB of URL-encoded text), which halves the events of a typical call. What is
/// kept: CHANNEL_EXECUTE_COMPLETE, CHANNEL_ANSWER, CHANNEL_HANGUP,
/// CHANNEL_HANGUP_COMPLETE and DTMF.
pub const UNUSED_EVENTS: &[&str] = &[
    "CHANNEL_APPLICATION",
    "CHANNEL_BRIDGE",
    "CHANNEL_CREATE",
    "CHANNEL_DATA",
    "CHANNEL_DESTROY",
    "CHANNEL_EXECUTE",
    "CHANNEL_ORIGINATE",
    "CHANNEL_OUTGOING",
    "CHANNEL_PARK",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_STATE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_UNPARK",
    "CHANNEL_UUID",
    "DETECTED_SPEECH",
    "NOTALK",
    "TALK",
];

/// Everything a call task shares with the others.
pub struct CallServices {
    pub config: Arc<Config>,
    pub router: Router,
    pub fetcher: Fetcher,
    pub store: StoreHandle,
    pub engine_settings: EngineSettings,
    pub metrics: Arc<Metrics>,
    pub live: LiveCalls,
    /// Final records, written off the call's path; admission while the store fails.
    pub keeper: RecordKeeper,
    /// Set when the shutdown grace has expired: every call still up hangs its channel up
    /// and closes out with its record (issue 10 point 2).
    pub cut_off: watch::Sender<bool>,
}

impl CallServices {
    /// Builds the shared services from the configuration.
    pub fn new(
        config: Arc<Config>,
        store: StoreHandle,
        metrics: Arc<Metrics>,
        live: LiveCalls,
    ) -> anyhow::Result<Self> {
        let fetcher = Fetcher::new(crate::app::fetch::FetchConfig::from_config(&config.app))?;
        let keeper = RecordKeeper::new(
            store.clone(),
            metrics.clone(),
            crate::store::keeper::DEFAULT_CAPACITY,
        );
        Ok(Self {
            router: Router::new(&config),
            engine_settings: EngineSettings::from_config(&config),
            fetcher,
            store,
            metrics,
            live,
            keeper,
            cut_off: watch::channel(false).0,
            config,
        })
    }
}

/// What the caller of a call is, from the `connect` reply.
#[derive(Clone, Debug)]
struct CallFacts {
    uuid: String,
    answered: bool,
    direction: Direction,
    from: String,
    to: String,
    caller_name: String,
    forwarded_from: Option<String>,
    start_time: OffsetDateTime,
    variables: HashMap<String, String>,
}

impl CallFacts {
    fn from_channel(uuid: &str, ch: &ChannelData) -> Self {
        let variables: HashMap<String, String> = ch
            .variables()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let direction = match ch.direction() {
            Some("outbound") => Direction::Outbound,
            _ => Direction::Inbound,
        };
        let start_time = ch
            .header("Caller-Channel-Created-Time")
            .or_else(|| ch.header("Channel-Channel-Created-Time"))
            .and_then(micros_to_time)
            .unwrap_or_else(OffsetDateTime::now_utc);
        let forwarded_from = variables
            .get("sip_h_Diversion")
            .or_else(|| variables.get("sip_h_diversion"))
            .and_then(|d| diversion_user(d));
        Self {
            uuid: uuid.to_string(),
            answered: ch.is_answered(),
            direction,
            from: ch.caller_id_number().unwrap_or_default().to_string(),
            to: ch.destination_number().unwrap_or_default().to_string(),
            caller_name: ch.caller_id_name().unwrap_or_default().to_string(),
            forwarded_from,
            start_time,
            variables,
        }
    }
}

impl CallFacts {
    /// What the safety net records when building the call itself failed: the uuid, the
    /// caller and the callee as the channel gives them, and the callback targets the
    /// configuration gives without the channel's variables (which may be what broke).
    fn bare(services: &CallServices, conn: &OutboundConnection, uuid: &str) -> (Self, Resolved) {
        let ch = conn.channel();
        let facts = Self {
            uuid: uuid.to_string(),
            answered: false,
            direction: Direction::Inbound,
            from: ch.caller_id_number().unwrap_or_default().to_string(),
            to: ch.destination_number().unwrap_or_default().to_string(),
            caller_name: ch.caller_id_name().unwrap_or_default().to_string(),
            forwarded_from: None,
            start_time: OffsetDateTime::now_utc(),
            variables: HashMap::new(),
        };
        let resolved = services.router.callback_targets(&HashMap::new(), &facts.to);
        (facts, resolved)
    }
}

/// The number in a Diversion header: `<sip:1234@host>;reason=…` → `1234`.
fn diversion_user(header: &str) -> Option<String> {
    let uri = header.split(['<', '>']).find(|s| s.contains("sip:"))?;
    let user = uri.split("sip:").nth(1)?.split(['@', ';']).next()?;
    (!user.is_empty()).then(|| user.to_string())
}

/// Switch timestamps are microseconds since the epoch; `0` means "never". A value out
/// of range (the switch's text is not trusted) is "unknown", never a panic.
fn micros_to_time(text: &str) -> Option<OffsetDateTime> {
    let us = text.trim().parse::<i128>().ok().filter(|v| *v > 0)?;
    OffsetDateTime::from_unix_timestamp_nanos(us.checked_mul(1000)?).ok()
}

/// Commands to the switch, carried in order by the writer task.
enum Outgoing {
    Execute {
        app: String,
        arg: String,
        event_uuid: String,
    },
    Kill {
        cause: HangupCause,
    },
    HangupMessage {
        cause: HangupCause,
    },
    Exit,
}

/// What the writer and fetch tasks report back to the loop.
enum Feedback {
    /// The switch refused an application we sent (`-ERR`); it will never complete.
    ExecuteFailed { event_uuid: String, reason: String },
    /// What the switch answered to a `uuid_kill` or hangup message (`Err`: its `-ERR`
    /// reply, or why it could not be sent).
    CommandDone {
        command: HangupCommand,
        result: Result<(), String>,
    },
    Fetched {
        result: Result<crate::app::fetch::Fetched, crate::app::fetch::FetchError>,
        elapsed: Duration,
    },
}

/// Runs one call from the handshake's end to its record. Never panics on anything the
/// switch, the application or the store does; every path writes the record.
///
/// The call runs on its own task so that even a bug that panics in it cannot lose the
/// call: the channel is then killed and the call closed out with what is known
/// (HangupSource `Error`), its callbacks enqueued like any other.
pub async fn run_call(services: Arc<CallServices>, conn: OutboundConnection, events: EventStream) {
    let uuid = conn.uuid().to_string();
    let span = tracing::info_span!("call", call_uuid = %uuid);
    // The task is built inside the net too: reading the channel's (switch-supplied)
    // headers and routing the call are as able to panic as running it. What the net
    // knows of the call is filled in as soon as the task has read the channel.
    let known: Arc<std::sync::Mutex<Option<(CallFacts, Resolved)>>> = Arc::default();
    let call = {
        let (services, conn, known) = (services.clone(), conn.clone(), known.clone());
        async move {
            let task = CallTask::new(services.clone(), conn.clone());
            let (facts, resolved) = (task.facts.clone(), task.resolved.clone());
            *known.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((facts.clone(), resolved.clone()));
            if services.keeper.admit() == Admission::RefuseStoreUnavailable {
                drop(task);
                closeout::refuse_store_unavailable(&services, &conn, events, &facts, &resolved)
                    .await;
                return;
            }
            task.run(events).await
        }
    };
    // Aborted with this future (the listener aborts what is left after the shutdown
    // cut-off): no call task may outlive the server and write to a closed store.
    let mut inner = AbortOnDrop(tokio::spawn(call.instrument(span.clone())));
    let outcome = (&mut inner.0).await;
    if let Err(e) = outcome {
        if e.is_panic() {
            let known = known.lock().unwrap_or_else(|e| e.into_inner()).take();
            let (facts, resolved) =
                known.unwrap_or_else(|| CallFacts::bare(&services, &conn, &uuid));
            close_out_after_panic(&services, &conn, &facts, &resolved)
                .instrument(span)
                .await;
        }
    }
}

/// A spawned task that is aborted when this handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The safety net of [`run_call`]: hang the channel up, write the record, leave.
async fn close_out_after_panic(
    services: &CallServices,
    conn: &OutboundConnection,
    facts: &CallFacts,
    resolved: &Resolved,
) {
    tracing::error!("the call's task panicked (a bug): hanging up and closing the call out");
    let cause = HangupCause::NORMAL_TEMPORARY_FAILURE;
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        conn.api(&format!("uuid_kill {} {}", facts.uuid, cause.name())),
    )
    .await;
    let live = services
        .store
        .live_call(&resolved.account_id, &facts.uuid)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| crate::store::LiveCall {
            call_uuid: facts.uuid.clone(),
            account_id: resolved.account_id.clone(),
            direction: facts.direction,
            from: facts.from.clone(),
            to: facts.to.clone(),
            caller_name: facts.caller_name.clone(),
            forwarded_from: facts.forwarded_from.clone(),
            start_time: facts.start_time,
            answer_time: None,
            scheduled_hangup_at: None,
            hangup_url: resolved.hangup_url.clone(),
            status_callback_url: resolved.status_callback_url.clone().unwrap_or_default(),
        });
    let mut record = crate::store::reconcile::closed_out_record(&live, OffsetDateTime::now_utc());
    record.hangup_cause = cause;
    record.hangup_cause_code = cause.q850();
    record.hangup_cause_name = "Error: internal error".into();
    record.hangup_source = crate::call::record::HangupSource::Error;
    record.notes = vec!["the call's task failed (a bug); closed out with what was known".into()];
    services
        .metrics
        .call_ended(record.hangup_cause.name(), record.hangup_source.as_str());
    let targets = CallbackTargets {
        hangup_url: resolved.hangup_url.clone(),
        status_callback_url: resolved.status_callback_url.clone().unwrap_or_default(),
        post_call: None,
    };
    let callbacks = callbacks::for_call(&record, &targets);
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.exit()).await;
    services.keeper.keep(record, callbacks).await;
}

struct CallTask {
    services: Arc<CallServices>,
    conn: OutboundConnection,
    facts: CallFacts,
    /// The call's URLs and account (only callback targets when it could not be routed).
    resolved: Resolved,
    engine: CallEngine,
    /// Event-UUID → the engine's id, for apps sent and not yet completed.
    apps: HashMap<String, OpId>,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    outgoing_rx: Option<mpsc::UnboundedReceiver<Outgoing>>,
    feedback_tx: mpsc::UnboundedSender<Feedback>,
    feedback: mpsc::UnboundedReceiver<Feedback>,
    expansion_disabled: bool,
    /// The URL that served the document being executed: the asker of its Redirects.
    document_url: Option<String>,
    answer_time: Option<OffsetDateTime>,
    /// The document fetch in flight (with its retries), aborted when the call ends: the
    /// application must not be asked for a document for a call that is over.
    fetch_task: Option<tokio::task::AbortHandle>,
    hangup_complete: Option<Event>,
    hangup_event: Option<Event>,
    /// The call's live-row writes (start, answer, schedule), chained so they reach the
    /// store in order. Never awaited by the loop: only the writer task waits, for the
    /// start row alone, before the first command (issue 10 point 3) — while the document
    /// is being fetched, so the fsync normally costs the caller nothing. The final record
    /// does not wait for them either: once it lands, later live-row writes are no-ops.
    store_chain: Option<tokio::task::JoinHandle<()>>,
    /// The switch's time, for the engine's inputs.
    clock: SwitchClock,
    /// REST hangups waiting to hear whether the switch took the kill.
    api_hangups: Vec<tokio::sync::oneshot::Sender<HangupReply>>,
    /// Resolves once the live row is committed (`true`) or could not be (`false`); the
    /// writer task holds the first command to the channel until then.
    live_row: Option<oneshot::Receiver<bool>>,
    /// Set by the writer task when the live row could not be written and the call was
    /// refused for it.
    refused_for_store: Arc<AtomicBool>,
    /// The shutdown grace expired while the channel was up: we hung it up.
    cut_off_at: Option<Instant>,
}

impl CallTask {
    fn new(services: Arc<CallServices>, conn: OutboundConnection) -> Self {
        let facts = CallFacts::from_channel(conn.uuid(), conn.channel());
        // A call that cannot be routed is refused, but its hangup and status callbacks
        // still follow their own URL chains: no call ends without a hangup callback.
        let settings = services.engine_settings.clone();
        let (resolved, engine) = match services.router.resolve(&facts.variables, &facts.to) {
            Ok(r) => {
                let engine = CallEngine::new(settings, Some(r.answer_url.clone()));
                (r, engine)
            }
            Err(e) => {
                tracing::error!(error = %e, destination = %facts.to, "call cannot be routed; refusing it");
                (
                    services
                        .router
                        .callback_targets(&facts.variables, &facts.to),
                    CallEngine::refusing(settings, e.to_string()),
                )
            }
        };
        let clock = SwitchClock::new(event_timestamp(
            conn.channel().header("Event-Date-Timestamp"),
        ));
        let (outgoing, outgoing_rx) = mpsc::unbounded_channel();
        let (feedback_tx, feedback) = mpsc::unbounded_channel();
        Self {
            services,
            conn,
            facts,
            resolved,
            engine,
            apps: HashMap::new(),
            outgoing,
            outgoing_rx: Some(outgoing_rx),
            feedback_tx,
            feedback,
            expansion_disabled: false,
            document_url: None,
            answer_time: None,
            fetch_task: None,
            hangup_complete: None,
            hangup_event: None,
            store_chain: None,
            clock,
            api_hangups: Vec::new(),
            live_row: None,
            refused_for_store: Arc::new(AtomicBool::new(false)),
            cut_off_at: None,
        }
    }

    async fn run(mut self, mut events: EventStream) {
        let services = self.services.clone();
        let account_id = self.resolved.account_id.clone();
        tracing::info!(
            from = %self.facts.from,
            to = %self.facts.to,
            answered = self.facts.answered,
            "call taken over"
        );
        services.metrics.call_started();
        self.record_start(&account_id);
        let (commands_tx, mut commands) = mpsc::channel(8);
        let mut cut_off = services.cut_off.subscribe();
        let registration = services
            .live
            .register(&self.facts.uuid, &account_id, commands_tx);
        let writer = self.start_writer();

        let answered = self.facts.answered;
        self.input(Input::Start { answered });
        let mut ending: Option<Ending> = self.drain_actions();
        while ending.is_none() {
            // The engine's deadline is in switch time (see `SwitchClock`); sleep for
            // what is left of it from the switch's now. The shutdown cut-off's is local.
            let engine_wait = self
                .engine
                .poll_timeout()
                .map(|due| due.saturating_duration_since(self.clock.now()));
            let cut_off_wait = self
                .cut_off_at
                .map(|at| (at + CUT_OFF_WAIT).saturating_duration_since(Instant::now()));
            let wait = engine_wait.into_iter().chain(cut_off_wait).min();
            let sleep = async move {
                match wait {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                item = events.recv() => match item {
                    Some(item) => self.on_socket_item(item),
                    None => self.input(Input::SocketLost),
                },
                Some(fb) = self.feedback.recv() => self.on_feedback(fb),
                Some(cmd) = commands.recv() => self.on_command(cmd),
                Ok(()) = cut_off.changed(), if self.cut_off_at.is_none() => self.on_cut_off(),
                _ = sleep => self.on_wakeup(),
            }
            ending = self.drain_actions();
        }
        let ending = ending.expect("loop ends only with an ending");
        // The call is over: it leaves the live registry now (REST answers 404 from here
        // on), not once its record is written, and a REST hangup still waiting hears so.
        drop(registration);
        self.answer_api_hangups(HangupReply::Ending);
        if let Some(fetch) = self.fetch_task.take() {
            fetch.abort();
        }
        // Release the channel before anything touches the store: leave the socket (the
        // switch answers `+OK bye`, sends its final notice, closes).
        let _ = self.outgoing.send(Outgoing::Exit);
        let (closed_tx, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.outgoing, closed_tx));
        let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
        // Let the connection wind down (final notice / EOF) without blocking anyone.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(item) = events.recv().await {
                if matches!(item, SocketEvent::Closed(_)) {
                    break;
                }
            }
        })
        .await;
        self.finish(ending).await;
    }

    /// The shutdown grace expired with this call up: hang it up and close it out. If the
    /// switch does not report the hangup within [`CUT_OFF_WAIT`], the call is closed out
    /// as if the socket were lost.
    fn on_cut_off(&mut self) {
        if self.engine.is_finished() || self.hangup_event.is_some() {
            return;
        }
        tracing::warn!("shutdown grace expired with the call up: hanging it up");
        self.cut_off_at = Some(Instant::now());
        let _ = self.outgoing.send(Outgoing::Kill {
            cause: HangupCause::NORMAL_TEMPORARY_FAILURE,
        });
    }

    /// The live row: what the REST API shows and what a restart closes out. A channel
    /// the dialplan answered before handing it over is recorded as answered at once.
    fn record_start(&mut self, account_id: &str) {
        let live = NewLiveCall {
            call_uuid: self.facts.uuid.clone(),
            account_id: account_id.to_string(),
            direction: self.facts.direction,
            from: self.facts.from.clone(),
            to: self.facts.to.clone(),
            caller_name: self.facts.caller_name.clone(),
            forwarded_from: self.facts.forwarded_from.clone(),
            start_time: self.facts.start_time,
            hangup_url: self.resolved.hangup_url.clone(),
            status_callback_url: self
                .resolved
                .status_callback_url
                .clone()
                .unwrap_or_default(),
        };
        let store = self.services.store.clone();
        let answered_at = self.facts.answered.then(|| {
            self.conn
                .channel()
                .header("Caller-Channel-Answered-Time")
                .and_then(micros_to_time)
                .unwrap_or(self.facts.start_time)
        });
        let (durable_tx, durable) = oneshot::channel();
        self.live_row = Some(durable);
        self.store_write(async move {
            let uuid = live.call_uuid.clone();
            // Bounded retries (RetryPolicy::LIVE_CALL): a row that cannot be written in
            // that time refuses the call; its final record is then kept like any other.
            let result = store.call_started(live).await;
            let _ = durable_tx.send(result.is_ok());
            if let Err(e) = result {
                tracing::error!(error = %e, "could not record the live call; refusing it");
                return;
            }
            if let Some(at) = answered_at {
                if let Err(e) = store.call_answered(&uuid, at).await {
                    tracing::warn!(error = %e, "could not record the answer time");
                }
            }
        });
    }

    /// Queues a live-row write behind the call's earlier ones.
    fn store_write(&mut self, write: impl std::future::Future<Output = ()> + Send + 'static) {
        let previous = self.store_chain.take();
        self.store_chain = Some(tokio::spawn(
            async move {
                if let Some(p) = previous {
                    let _ = p.await;
                }
                write.await
            }
            .in_current_span(),
        ));
    }

    /// Spawns the task that writes commands to the switch in order.
    fn start_writer(&mut self) -> tokio::task::JoinHandle<()> {
        let mut rx = self.outgoing_rx.take().expect("writer started once");
        let conn = self.conn.clone();
        let feedback = self.feedback_tx.clone();
        let uuid = self.facts.uuid.clone();
        let live_row = self.live_row.take();
        let refused = self.refused_for_store.clone();
        let keeper = self.services.keeper.clone();
        tokio::spawn(
            async move {
                let mut live_row = live_row;
                while let Some(cmd) = rx.recv().await {
                    // Point 3: the live row is durable before the first command that
                    // changes the channel (leaving the socket changes nothing).
                    if let (Some(durable), false) = (live_row.take(), matches!(cmd, Outgoing::Exit)) {
                        if !durable.await.unwrap_or(false) {
                            keeper.live_row_failed();
                            refused.store(true, Ordering::Relaxed);
                            refuse_for_store(&conn).await;
                        }
                    }
                    if refused.load(Ordering::Relaxed) && !matches!(cmd, Outgoing::Exit) {
                        // Refused: nothing more goes to the channel; its hangup events
                        // end the call.
                        continue;
                    }
                    match cmd {
                        Outgoing::Execute {
                            app,
                            arg,
                            event_uuid,
                        } => {
                            let arg = (!arg.is_empty()).then_some(arg);
                            let exec = Execute::locked(&app, arg.as_deref(), &event_uuid);
                            if let Err(e) = conn.send_execute_with(exec).await {
                                tracing::warn!(app = %app, error = %e, "the switch did not take an application");
                                let _ = feedback.send(Feedback::ExecuteFailed {
                                    event_uuid,
                                    reason: e.to_string(),
                                });
                            }
                        }
                        Outgoing::Kill { cause } => {
                            let cmd = format!("uuid_kill {uuid} {}", cause.name());
                            let result = match conn.api(&cmd).await {
                                Ok(r) if r.body.starts_with("+OK") => Ok(()),
                                // -ERR No such channel: the caller hung up at the same
                                // moment; the engine knows the switch's events tell the rest.
                                Ok(r) => {
                                    tracing::info!(reply = %r.body.trim(), "uuid_kill not applied");
                                    Err(r.body.trim().to_string())
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "uuid_kill failed");
                                    Err(e.to_string())
                                }
                            };
                            let _ = feedback.send(Feedback::CommandDone {
                                command: HangupCommand::Kill,
                                result,
                            });
                        }
                        Outgoing::HangupMessage { cause } => {
                            let result = conn.hangup(cause.name()).await.map_err(|e| {
                                tracing::warn!(error = %e, "the hangup message was refused");
                                e.to_string()
                            });
                            let _ = feedback.send(Feedback::CommandDone {
                                command: HangupCommand::HangupAfterOp,
                                result,
                            });
                        }
                        Outgoing::Exit => {
                            let _ = conn.exit().await;
                            break;
                        }
                    }
                }
            }
            .in_current_span(),
        )
    }

    /// An input that is not a switch event, stamped with the switch's time now.
    fn input(&mut self, input: Input) {
        let now = self.clock.now();
        self.engine.handle(now, input);
    }

    /// An input caused by a switch event, stamped with the event's own time.
    fn input_from(&mut self, event: &Event, input: Input) {
        let at = self
            .clock
            .at_event(event_timestamp(event.header("Event-Date-Timestamp")));
        self.engine.handle(at, input);
    }

    /// Carries out every action the engine has queued; returns the ending once the
    /// engine finishes.
    fn drain_actions(&mut self) -> Option<Ending> {
        while let Some(action) = self.engine.poll_action() {
            match action {
                Action::Fetch(req) => self.start_fetch(req),
                Action::Run { id, op } => {
                    let app = render::application(&op, &self.services.config.tts);
                    let arg = app.arg;
                    if arg.contains("${") && !self.expansion_disabled {
                        self.expansion_disabled = true;
                        let _ = self.outgoing.send(Outgoing::Execute {
                            app: "set".into(),
                            arg: "app_disable_expand_variables=true".into(),
                            event_uuid: uuid::Uuid::new_v4().to_string(),
                        });
                    }
                    let event_uuid = uuid::Uuid::new_v4().to_string();
                    self.apps.insert(event_uuid.clone(), id);
                    tracing::debug!(app = app.name, arg = %arg, "execute");
                    let _ = self.outgoing.send(Outgoing::Execute {
                        app: app.name.to_string(),
                        arg,
                        event_uuid,
                    });
                }
                Action::Kill { cause } => {
                    let _ = self.outgoing.send(Outgoing::Kill { cause });
                }
                Action::HangupAfterOp { cause } => {
                    let _ = self.outgoing.send(Outgoing::HangupMessage { cause });
                }
                Action::ScheduleArmed { after } => {
                    let at = OffsetDateTime::now_utc() + after;
                    self.spawn_store_schedule(Some(at));
                }
                Action::ScheduleCleared => self.spawn_store_schedule(None),
                Action::Finish(ending) => return Some(ending),
            }
        }
        None
    }

    fn spawn_store_schedule(&mut self, at: Option<OffsetDateTime>) {
        let store = self.services.store.clone();
        let uuid = self.facts.uuid.clone();
        self.store_write(async move {
            if let Err(e) = store.set_scheduled_hangup(&uuid, at).await {
                tracing::warn!(error = %e, "could not record the scheduled hangup");
            }
        });
    }

    fn start_fetch(&mut self, req: DocumentFetch) {
        let resolved = self.resolved.clone();
        let params = FetchParams {
            call_uuid: self.facts.uuid.clone(),
            from: self.facts.from.clone(),
            to: self.facts.to.clone(),
            caller_name: self.facts.caller_name.clone(),
            direction: self.facts.direction,
            call_status: if self.engine.answered() {
                CallStatus::InProgress
            } else {
                CallStatus::Ringing
            },
            event: req.event,
            forwarded_from: self.facts.forwarded_from.clone(),
            account_id: resolved.account_id.clone(),
            extra: self
                .services
                .config
                .app
                .extra_variables
                .iter()
                .filter_map(|name| {
                    self.facts
                        .variables
                        .get(name)
                        .map(|v| (name.clone(), v.clone()))
                })
                .collect(),
        }
        .to_pairs();
        let (fallback, asked_by) = match req.event {
            FetchEvent::StartApp => (resolved.fallback_answer_url.clone(), None),
            FetchEvent::Redirect => (None, self.document_url.clone()),
        };
        let services = self.services.clone();
        let feedback = self.feedback_tx.clone();
        let url = req.url.clone();
        let method = req.method;
        let task = tokio::spawn(
            async move {
                let started = Instant::now();
                let request = FetchRequest {
                    url: &url,
                    fallback_url: fallback.as_deref(),
                    method,
                    params: &params,
                    signing_token: resolved.auth_token.as_deref(),
                    asked_by: asked_by.as_deref(),
                };
                let result = services.fetcher.fetch(&request).await;
                let _ = feedback.send(Feedback::Fetched {
                    result,
                    elapsed: started.elapsed(),
                });
            }
            .in_current_span(),
        );
        self.fetch_task = Some(task.abort_handle());
    }

    fn on_feedback(&mut self, fb: Feedback) {
        match fb {
            Feedback::CommandDone { command, result } => {
                let Err(reply) = result else {
                    self.answer_api_hangups(HangupReply::Ending);
                    return;
                };
                self.input(Input::CommandFailed {
                    command,
                    failure: render::command_failure(&reply),
                });
                if !self.engine.is_closing() {
                    // Every way of hanging up was refused: the call is still up.
                    self.answer_api_hangups(HangupReply::Refused(reply));
                } else if reply.contains("No such channel") {
                    self.answer_api_hangups(HangupReply::Ending);
                }
                // Otherwise a fallback is on its way; its outcome answers.
            }
            Feedback::ExecuteFailed { event_uuid, reason } => {
                if let Some(id) = self.apps.remove(&event_uuid) {
                    self.input(Input::OpFinished {
                        id,
                        outcome: render::refused(&reason),
                    });
                }
            }
            Feedback::Fetched { result, elapsed } => {
                self.services
                    .metrics
                    .fetch_observed(elapsed, result.is_ok());
                let input = match result {
                    Ok(fetched) => {
                        self.document_url = Some(fetched.url.clone());
                        tracing::info!(
                            url = %fetched.url,
                            attempts = fetched.attempts,
                            fallback = fetched.from_fallback,
                            instructions = fetched.document.instructions.len(),
                            "document fetched"
                        );
                        Ok(fetched.document)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "no usable document");
                        Err(match &e {
                            crate::app::fetch::FetchError::InvalidDocument { error, .. } => {
                                FetchFailure::Invalid(error.to_string())
                            }
                            // The document that asked is at fault: it is invalid here.
                            refused @ crate::app::fetch::FetchError::Refused { .. } => {
                                FetchFailure::Invalid(refused.to_string())
                            }
                            other => FetchFailure::NoDocument(other.to_string()),
                        })
                    }
                };
                self.input(Input::DocumentFetched(input));
            }
        }
    }

    fn on_command(&mut self, cmd: CallCommand) {
        match cmd {
            CallCommand::Hangup { reply } => {
                tracing::info!("hangup requested through the REST API");
                let now = self.clock.now();
                match self.engine.handle(now, Input::ApiHangup) {
                    // The kill is on its way: answer once the switch has taken it.
                    Reaction::Acted => self.api_hangups.push(reply),
                    // Already closing (first hangup wins).
                    Reaction::NoEffect => {
                        let _ = reply.send(HangupReply::Ending);
                    }
                    Reaction::AfterFinish => {
                        let _ = reply.send(HangupReply::Over);
                    }
                }
            }
        }
    }

    fn answer_api_hangups(&mut self, answer: HangupReply) {
        for reply in self.api_hangups.drain(..) {
            let _ = reply.send(answer.clone());
        }
    }

    /// A deadline passed: the engine's own (a timer of the document's), or the cut-off's
    /// (the switch never reported the hangup we sent at the shutdown cut-off).
    fn on_wakeup(&mut self) {
        if self
            .cut_off_at
            .is_some_and(|at| Instant::now() >= at + CUT_OFF_WAIT && !self.engine.is_finished())
        {
            tracing::warn!("no hangup from the switch after the cut-off; closing the call out");
            self.input(Input::SocketLost);
        }
        let now = self.clock.now();
        self.engine.handle_timeout(now);
    }

    fn on_socket_item(&mut self, item: SocketEvent) {
        match item {
            SocketEvent::Event(event) => self.on_event(event),
            SocketEvent::ExecuteRejected { app_id, reason } => {
                if let Some(id) = self.apps.remove(&app_id) {
                    self.input(Input::OpFinished {
                        id,
                        outcome: render::refused(&reason),
                    });
                }
            }
            SocketEvent::Disconnect(notice) => {
                tracing::debug!(final_notice = notice.is_final(), "disconnect notice");
            }
            SocketEvent::Closed(reason) => {
                if !self.engine.is_finished() {
                    tracing::warn!(reason = ?reason, "the event socket closed before CHANNEL_HANGUP_COMPLETE");
                    self.input(Input::SocketLost);
                }
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event.name() {
            "CHANNEL_EXECUTE_COMPLETE" => {
                let id = event.application_uuid().and_then(|u| self.apps.remove(u));
                if let Some(id) = id {
                    let response = event.application_response().unwrap_or("_none_");
                    let outcome = render::completion_outcome(response);
                    self.input_from(&event, Input::OpFinished { id, outcome });
                }
            }
            "CHANNEL_ANSWER" => {
                let at = event
                    .header("Caller-Channel-Answered-Time")
                    .and_then(micros_to_time)
                    .unwrap_or_else(OffsetDateTime::now_utc);
                self.answer_time = Some(at);
                let store = self.services.store.clone();
                let uuid = self.facts.uuid.clone();
                self.store_write(async move {
                    if let Err(e) = store.call_answered(&uuid, at).await {
                        tracing::warn!(error = %e, "could not record the answer time");
                    }
                });
                self.input_from(&event, Input::Answered);
            }
            "DTMF" => {
                if let Some(d) = event.dtmf_digit().and_then(|d| d.chars().next()) {
                    self.input_from(&event, Input::Dtmf(d));
                }
            }
            "CHANNEL_HANGUP" => {
                let cause = event
                    .hangup_cause()
                    .map(HangupCause::parse_switch)
                    .unwrap_or(HangupCause::NORMAL_CLEARING);
                tracing::info!(cause = %cause, "channel hung up");
                self.input_from(&event, Input::ChannelHungUp { cause });
                self.hangup_event = Some(event);
            }
            "CHANNEL_HANGUP_COMPLETE" => {
                let cause = event
                    .hangup_cause()
                    .map(HangupCause::parse_switch)
                    .unwrap_or(HangupCause::NORMAL_CLEARING);
                let disposition = event.variable("sip_hangup_disposition");
                let input = Input::HangupComplete {
                    cause,
                    hung_up_by: render::hung_up_by(disposition),
                    detail: disposition.map(str::to_string),
                };
                self.input_from(&event, input);
                self.hangup_complete = Some(event);
            }
            _ => {}
        }
    }

    /// Builds the CDR from the engine's ending and the switch's final variables, and
    /// hands it with its callbacks to the [`RecordKeeper`] (one transaction, written on
    /// its own task; the channel is already released). The call's live-row writes still
    /// in flight need not be waited for: once the record lands they are no-ops.
    async fn finish(&mut self, ending: Ending) {
        let mut record = self.build_record(&ending);
        if self.refused_for_store.load(Ordering::Relaxed) {
            closeout::mark_error(
                &mut record,
                HangupCause::NORMAL_TEMPORARY_FAILURE,
                closeout::STORE_UNAVAILABLE,
                "refused: the store could not write the live call (503)",
            );
        } else if self.cut_off_at.is_some() {
            closeout::mark_error(
                &mut record,
                HangupCause::NORMAL_TEMPORARY_FAILURE,
                "Error: cut off at shutdown",
                "hung up by voxbridge: the shutdown grace expired with the call up",
            );
        }
        tracing::info!(
            cause = %record.hangup_cause,
            source = record.hangup_source.as_str(),
            name = %record.hangup_cause_name,
            duration = record.duration_secs,
            billsec = record.bill_duration_secs,
            "call ended"
        );
        self.services
            .metrics
            .call_ended(record.hangup_cause.name(), record.hangup_source.as_str());
        let targets = CallbackTargets {
            hangup_url: self.resolved.hangup_url.clone(),
            status_callback_url: self
                .resolved
                .status_callback_url
                .clone()
                .unwrap_or_default(),
            post_call: ending.post_call.as_ref().map(|p| (p.url.clone(), p.method)),
        };
        let callbacks = callbacks::for_call(&record, &targets);
        if callbacks.is_empty() {
            tracing::warn!("no hangup URL for this call: the record is stored without a callback");
        }
        self.services.keeper.keep(record, callbacks).await;
    }

    fn build_record(&self, ending: &Ending) -> CallRecord {
        let fin = self.hangup_complete.as_ref().or(self.hangup_event.as_ref());
        let var = |name: &str| fin.and_then(|e| e.variable(name));
        let start_time = var("start_uepoch")
            .and_then(micros_to_time)
            .unwrap_or(self.facts.start_time);
        let answer_time = if ending.answered {
            var("answer_uepoch")
                .and_then(micros_to_time)
                .or(self.answer_time)
                .or(if self.facts.answered {
                    Some(start_time)
                } else {
                    None
                })
        } else {
            None
        };
        let end_time = var("end_uepoch")
            .and_then(micros_to_time)
            .unwrap_or_else(OffsetDateTime::now_utc);
        let whole = |from: OffsetDateTime| -> u64 {
            (end_time.unix_timestamp() - from.unix_timestamp()).max(0) as u64
        };
        let duration_secs = var("duration")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| whole(start_time));
        let bill_duration_secs = match answer_time {
            None => 0,
            Some(at) => var("billsec")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| whole(at)),
        };
        let cause_code = var("hangup_cause_q850")
            .and_then(|v| v.parse::<u16>().ok())
            .unwrap_or(ending.cause_code);
        CallRecord {
            call_uuid: self.facts.uuid.clone(),
            account_id: self.resolved.account_id.clone(),
            direction: self.facts.direction,
            from: self.facts.from.clone(),
            to: self.facts.to.clone(),
            caller_name: self.facts.caller_name.clone(),
            forwarded_from: self.facts.forwarded_from.clone(),
            start_time,
            answer_time,
            end_time,
            duration_secs,
            bill_duration_secs,
            hangup_cause: ending.cause,
            hangup_cause_code: cause_code,
            hangup_cause_name: ending.cause_name.clone(),
            hangup_source: ending.source,
            hangup_reason: ending.reason.as_str().to_string(),
            sip_status: ending.sip_status,
            caller_abandoned: ending.caller_abandoned,
            notes: ending.notes.clone(),
        }
    }
}

/// How long a call cut off at shutdown waits for the switch's hangup events before it is
/// closed out as if its socket were lost.
const CUT_OFF_WAIT: Duration = Duration::from_secs(3);

/// Refuses a call whose live row could not be written: `sendmsg hangup` (works without
/// `full`; nothing is running on the channel yet) with NORMAL_TEMPORARY_FAILURE, SIP 503.
async fn refuse_for_store(conn: &OutboundConnection) {
    tracing::error!("refusing the call (503): its live row could not be written");
    let cause = HangupCause::NORMAL_TEMPORARY_FAILURE;
    if let Err(e) = conn.send_hangup(cause.name()).await {
        tracing::warn!(error = %e, "could not hang the refused call up");
    }
}

/// The handler the ESL listener runs for every accepted channel.
pub fn handler(
    services: Arc<CallServices>,
) -> impl Fn(
    OutboundConnection,
    EventStream,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
       + Send
       + Sync
       + 'static {
    move |conn, events| Box::pin(run_call(services.clone(), conn, events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diversion_number() {
        assert_eq!(
            diversion_user("<sip:1234@10.0.0.1>;reason=unconditional").as_deref(),
            Some("1234")
        );
        assert_eq!(diversion_user("garbage"), None);
    }

    #[test]
    fn micros() {
        assert_eq!(micros_to_time("0"), None);
        assert_eq!(
            micros_to_time("99999999999999999999999999999999999999"),
            None
        );
        assert_eq!(
            micros_to_time("1795235383226145").map(|t| t.unix_timestamp()),
            Some(1_795_235_383)
        );
    }
}
