//! The FreeSWITCH driver: one task per channel that carries the sans-IO
//! [`CallEngine`]'s actions to the switch over the outbound Event Socket, and the switch's
//! events, fetched documents, REST commands and timers back into it.
//!
//! The task owns one `select!` loop and never blocks it on the network: document fetches
//! run on their own tasks, and commands to the switch go through one writer task so they
//! keep their order while the loop keeps draining the (bounded) event stream — a loop
//! that awaited a reply while the stream was full would deadlock the connection.
//!
//! Layout, one concern per module; this one is the call task (its `select!` loop and the
//! glue between the engine's actions and the modules below):
//! - [`channel`] — `CallFacts`, what the `connect` reply says of the call.
//! - [`render`] — engine operations → FreeSWITCH applications; replies → outcomes.
//! - [`writer`] — the ordered writer task and the commands it sends (`SwitchCommand`).
//! - [`fetch`] — document fetch parameters, the fetch task, its result for the engine.
//! - [`live_row`] — the call's live row, written in order off the loop.
//! - [`record`] — the one place a `CallRecord` is built and handed to the keeper.
//! - [`closeout`] — calls that end without running a document (store refusal,
//!   handshake failed after `connect`).
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
//! - The engine's own `Hangup` (a Hangup/Reject element, the end of the document, a
//!   document error) is `sendmsg` `call-command: hangup` with `hangup-cause`, not the
//!   `hangup` application: the switch queues it like an app and the caller gets the same
//!   cause, without an EXECUTE pair built for it (issue 16, transcript z4).
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

use crate::app::fetch::Fetcher;
use crate::call::engine::{
    Action, CallEngine, ChannelOp, DocumentFetch, EngineSettings, HangupCommand, Input, OpId,
    Reaction,
};
use crate::call::hangup::Ending;
use crate::call::live::{CallCommand, HangupReply, LiveCalls};
use crate::call::route::{Resolved, Router};
use crate::call::switch_clock::{event_timestamp, SwitchClock};
use crate::cause::HangupCause;
use crate::config::Config;
use crate::esl::command::Execute;
use crate::esl::event::Event;
use crate::esl::outbound::{EventStream, OutboundConnection, SocketEvent};
use crate::metrics::Metrics;
use crate::store::keeper::{Admission, RecordKeeper};
use crate::store::StoreHandle;
use channel::{micros_to_time, CallFacts};
use dial_legs::DialLegs;
use live_row::LiveRowWrites;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;
use writer::{SwitchCommand, Writer};

mod boxed_queue;
pub(in crate::call) mod channel;
mod closeout;
pub(in crate::call) mod dial_legs;
pub(in crate::call) mod fetch;
pub(in crate::call) mod live_row;
pub mod originate;
pub(in crate::call) mod record;
mod render;
pub(in crate::call) mod request;
mod writer;
pub use closeout::{close_out_abandoned, STORE_UNAVAILABLE};

/// The events `myevents` subscribes to that the driver never reads. They are dropped
/// with `nixevent` at the handshake: the switch then neither builds nor sends them (each
/// is 5–7 KiB of URL-encoded text), which halves the events of a typical call. What is
/// kept: CHANNEL_EXECUTE_COMPLETE, CHANNEL_ANSWER, CHANNEL_HANGUP,
/// CHANNEL_HANGUP_COMPLETE and DTMF.
///
/// CHANNEL_PROGRESS, CHANNEL_PROGRESS_MEDIA and CHANNEL_BRIDGE are kept for Dial: with
/// `myevents` the caller's socket sees no event of the callee's leg (transcript i), so
/// the callee ringing (`DialRingStatus`) and answering (the bridged leg's uuid in
/// `Other-Leg-Unique-ID`) arrive only as these events of the caller's own channel. A call
/// without a Dial gets them only for PreAnswer's early media.
pub const UNUSED_EVENTS: &[&str] = &[
    "CHANNEL_APPLICATION",
    "CHANNEL_CREATE",
    "CHANNEL_DATA",
    "CHANNEL_DESTROY",
    "CHANNEL_EXECUTE",
    "CHANNEL_ORIGINATE",
    "CHANNEL_OUTGOING",
    "CHANNEL_PARK",
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
    /// Where the application reaches the REST API (`api.public_url`, or the bound
    /// address): the base of every `RecordUrl`.
    pub public_base: String,
}

impl CallServices {
    /// Builds the shared services from the configuration.
    pub fn new(
        config: Arc<Config>,
        store: StoreHandle,
        metrics: Arc<Metrics>,
        live: LiveCalls,
        public_base: String,
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
            public_base,
            config,
        })
    }
}

/// What the call's worker tasks (the ordered [`writer`] and the document [`fetch`]) report
/// back to its loop.
enum WorkerReport {
    /// The switch refused an application we sent (`-ERR`); it will never complete.
    ExecuteRefused { event_uuid: String, reason: String },
    /// An operation carried out by a command rather than an application (the Answer's
    /// `uuid_answer`) took effect: it is complete.
    Completed { event_uuid: String },
    /// What the switch answered to a `uuid_kill` or hangup message (`Err`: its `-ERR`
    /// reply, or why it could not be sent).
    HangupCommandDone {
        command: HangupCommand,
        result: Result<(), String>,
    },
    /// The document fetch is over (after its retries and fallback).
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
            *known.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((task.facts.clone(), task.resolved.clone()));
            if services.keeper.admit() == Admission::RefuseStoreUnavailable {
                // Cloned here only: a copy held across `task.run` would live as long as
                // the call (SPEC §9: memory per parked call).
                let (facts, resolved) = (task.facts.clone(), task.resolved.clone());
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
    // Boxed before it is spawned: the call's state machine is ~10 KiB, and spawning it
    // by value moved it through several frames (`memcpy` of it was a visible part of
    // every call's CPU, issue 16); the box is moved instead.
    let mut inner = AbortOnDrop(tokio::spawn(Box::pin(call).instrument(span.clone())));
    let outcome = (&mut inner.0).await;
    if let Err(e) = outcome {
        if e.is_panic() {
            let known = known.lock().unwrap_or_else(|e| e.into_inner()).take();
            let (facts, resolved) =
                known.unwrap_or_else(|| CallFacts::bare(&services, &conn, &uuid));
            // Boxed: the safety net's state machine would otherwise be part of every
            // call's future, parked or not (2 KiB: SPEC §9).
            Box::pin(close_out_after_panic(&services, &conn, &facts, &resolved).instrument(span))
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
    // No live row: it was never written, so no answer time was recorded either.
    let live = services
        .store
        .live_call(&resolved.account_id, &facts.uuid)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| crate::store::LiveCall {
            answer_time: None,
            ..record::live_from_facts(facts, resolved)
        });
    let record = record::closed_out_with_error(
        &live,
        "Error: internal error",
        "the call's task failed (a bug); closed out with what was known",
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.exit()).await;
    record::keep(services, resolved, record, None, Vec::new()).await;
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
    /// The ordered writer's queue.
    to_switch: boxed_queue::Sender<SwitchCommand>,
    to_switch_rx: Option<boxed_queue::Receiver<SwitchCommand>>,
    reports_tx: boxed_queue::Sender<WorkerReport>,
    reports: boxed_queue::Receiver<WorkerReport>,
    expansion_disabled: bool,
    /// The URL that served the document being executed: the asker of its Redirects.
    document_url: Option<String>,
    answer_time: Option<OffsetDateTime>,
    /// The document fetch in flight (with its retries), aborted when the call ends: the
    /// application must not be asked for a document for a call that is over.
    fetch_task: Option<tokio::task::AbortHandle>,
    hangup_complete: Option<Event>,
    hangup_event: Option<Event>,
    /// The call's live-row writes, in order, never awaited here (see [`live_row`]).
    live_row_writes: LiveRowWrites,
    /// The switch's time, for the engine's inputs.
    clock: SwitchClock,
    /// REST hangups waiting to hear whether the switch took the kill.
    api_hangups: Vec<tokio::sync::oneshot::Sender<HangupReply>>,
    /// Resolves once the live row is committed (`true`) or could not be (`false`); the
    /// writer task holds the first command to the channel until then.
    live_row: Option<oneshot::Receiver<bool>>,
    /// Set by the writer task when the live row could not be written and the call was
    /// refused for it.
    refused_for_store: Arc<writer::RefusedForStore>,
    /// The shutdown grace expired while the channel was up: we hung it up.
    cut_off_at: Option<Instant>,
    /// The `record` in flight (a `<Record>`): its CHANNEL_EXECUTE_COMPLETE is read as a
    /// [`crate::call::engine::RecordReport`].
    record_op: Option<OpId>,
    /// RECORD_START/STOP are subscribed (see [`SwitchCommand::SubscribeRecordEvents`]).
    record_events: bool,
    /// The running `record`'s file, and whether its RECORD_START has come.
    record_file: Option<(String, bool)>,
    /// A REST stop came while the `record` had not started yet (its beep or its `set`s
    /// ran): a `uuid_break` then would break the beep, not the record, so it is sent
    /// at the record's RECORD_START.
    break_at_record_start: bool,
    /// The bridge in flight (a Dial): its operation and what was asked, to read its
    /// CHANNEL_EXECUTE_COMPLETE as a [`crate::call::engine::BridgeReport`].
    bridge: Option<(OpId, crate::call::engine::Bridge)>,
    /// Actions to request through the outbox with the call's record (the call was
    /// closing when they were asked for).
    closing_requests: Vec<crate::record::callback::NewCallback>,
    /// The call's command channel (its B-leg is registered with it while bridged).
    commands: Option<mpsc::Sender<CallCommand>>,
    /// The Dial's B-legs' places in the live registry (SPEC §11.2), by uuid: every leg
    /// from its bridge being sent (ringing), the winner until the bridge ends.
    leg_registrations: Vec<(String, crate::call::live::Registration)>,
    /// REST hangups of the B-leg waiting for the switch's answer to the kill.
    leg_hangups: Vec<(String, oneshot::Sender<HangupReply>)>,
    /// The ordered writer of this call's mid-call store writes ([`CallTask::enqueue_now`]).
    notices: Option<mpsc::UnboundedSender<Notice>>,
    /// Recordings completed while the call was closing: written before its record.
    closing_recordings: Vec<crate::store::Recording>,
    /// Resolves once the last recording row written mid-call is stored: a Record's
    /// action fetch waits for it, so its `RecordUrl` answers when the application asks.
    recording_written: Option<oneshot::Receiver<()>>,
    /// The Dial being carried out: what was asked, when, and the bridged callee's
    /// `(uuid, created, answered)` from CHANNEL_BRIDGE — for the legs' own CDRs.
    dial_legs: Option<DialLegs>,
    /// `divert_events on` was sent (once per call, for the first Dial that watches the
    /// callee's digits: their matches arrive as diverted events).
    events_diverted: bool,
    /// What the last Dial left on the channel (callee digit bindings, ringback): the
    /// next Dial clears it first.
    earlier_dials: render::EarlierDials,
}

impl CallTask {
    fn new(services: Arc<CallServices>, conn: OutboundConnection) -> Self {
        let facts = CallFacts::from_channel(
            conn.uuid(),
            conn.channel(),
            &services.config.app.extra_variables,
        );
        // A call that cannot be routed is refused, but its hangup and status callbacks
        // still follow their own URL chains: no call ends without a hangup callback.
        let settings = services.engine_settings.clone();
        let (resolved, engine) = match services.router.resolve(&facts.variables, &facts.to) {
            Ok(r) => {
                let engine =
                    CallEngine::new(settings, Some(r.answer_url.clone())).for_channel(conn.uuid());
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
        let engine = engine
            .with_recording_urls(format!(
                "{}/api/v1/Account/{}/Recording/",
                services.public_base, resolved.account_id
            ))
            .with_wall_clock(clock.now(), epoch_ms(OffsetDateTime::now_utc()));
        let live_row_writes =
            LiveRowWrites::new(services.store.clone(), services.live.clone(), conn.uuid());
        let (to_switch, to_switch_rx) = boxed_queue::channel();
        let (reports_tx, reports) = boxed_queue::channel();
        Self {
            services,
            conn,
            facts,
            resolved,
            engine,
            apps: HashMap::new(),
            to_switch,
            to_switch_rx: Some(to_switch_rx),
            reports_tx,
            reports,
            expansion_disabled: false,
            document_url: None,
            answer_time: None,
            fetch_task: None,
            hangup_complete: None,
            hangup_event: None,
            live_row_writes,
            clock,
            api_hangups: Vec::new(),
            live_row: None,
            refused_for_store: Arc::default(),
            cut_off_at: None,
            bridge: None,
            record_op: None,
            record_events: false,
            record_file: None,
            break_at_record_start: false,
            closing_requests: Vec::new(),
            commands: None,
            leg_registrations: Vec::new(),
            leg_hangups: Vec::new(),
            dial_legs: None,
            events_diverted: false,
            earlier_dials: render::EarlierDials::default(),
            notices: None,
            closing_recordings: Vec::new(),
            recording_written: None,
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
        let (commands_tx, mut commands) = mpsc::channel(8);
        self.commands = Some(commands_tx.clone());
        let mut cut_off = services.cut_off.subscribe();
        let registration = services
            .live
            .register(&self.facts.uuid, &account_id, commands_tx);
        // After registering: the registry is told a pre-answered call's answer time.
        self.record_start();
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
                Some(report) = self.reports.recv() => self.on_report(report),
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
        self.leg_registrations.clear();
        for (_, reply) in self.leg_hangups.drain(..) {
            let _ = reply.send(HangupReply::Ending);
        }
        self.answer_api_hangups(HangupReply::Ending);
        if let Some(fetch) = self.fetch_task.take() {
            fetch.abort();
        }
        // Release the channel before anything touches the store: leave the socket (it
        // is closed once what is queued is written; the switch's listener then ends).
        let _ = self.to_switch.send(SwitchCommand::Exit);
        let (closed_tx, _) = boxed_queue::channel();
        drop(std::mem::replace(&mut self.to_switch, closed_tx));
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
        // Boxed: writing the record (retries, callbacks) is a large state machine that
        // would otherwise be part of every parked call's task (1.6 KB of its 11.9 KB
        // future, measured; SPEC §9 parked-call memory).
        Box::pin(self.finish(ending)).await;
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
        let _ = self.to_switch.send(SwitchCommand::Kill {
            cause: HangupCause::NORMAL_TEMPORARY_FAILURE,
        });
    }

    /// The live row: what the REST API shows and what a restart closes out. A channel
    /// the dialplan answered before handing it over is recorded as answered at once.
    fn record_start(&mut self) {
        let answered_at = self.facts.answered.then(|| {
            self.conn
                .channel()
                .header("Caller-Channel-Answered-Time")
                .and_then(micros_to_time)
                .unwrap_or(self.facts.start_time)
        });
        let durable = self
            .live_row_writes
            .start(&self.facts, &self.resolved, answered_at);
        self.live_row = Some(durable);
        let switches = &self.services.config.switches;
        let reported = &self.facts.switch_name;
        if switches.len() > 1 && !switches.iter().any(|s| s.name == *reported) {
            // SPEC §14: the row's name is how a call's switch is found again.
            tracing::warn!(
                switch = %reported,
                "the switch that handed this call over (its FreeSWITCH-Switchname) is no \
                 configured [[switch]] name: reconciliation will ask every switch about it; \
                 name the [[switch]] after the switch's switchname"
            );
        }
    }

    /// Spawns the ordered writer (see [`writer`]).
    fn start_writer(&mut self) -> tokio::task::JoinHandle<()> {
        let queue = self.to_switch_rx.take().expect("writer started once");
        Writer {
            conn: self.conn.clone(),
            uuid: self.facts.uuid.clone(),
            reports: self.reports_tx.clone(),
            live_row: self.live_row.take(),
            refused_for_store: self.refused_for_store.clone(),
            keeper: self.services.keeper.clone(),
        }
        .spawn(queue)
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
                    if matches!(
                        op,
                        ChannelOp::Record(_) | ChannelOp::StartSessionRecording { .. }
                    ) {
                        self.subscribe_record_events();
                    }
                    if let ChannelOp::Record(record) = &op {
                        for app in render::record_prelude(record) {
                            let _ = self.to_switch.send(SwitchCommand::Execute {
                                app: app.name.to_string(),
                                arg: app.arg,
                                event_uuid: Execute::new_event_uuid(),
                            });
                        }
                        self.record_op = Some(id);
                        self.record_file = Some((record.path.clone(), false));
                        self.break_at_record_start = false;
                    }
                    if let ChannelOp::Bridge(bridge) = &op {
                        let watch = !bridge.callee_digit_patterns.is_empty();
                        if watch && !self.events_diverted {
                            self.events_diverted = true;
                            let _ = self.to_switch.send(SwitchCommand::DivertEvents);
                        }
                        let prelude = render::bridge_prelude(bridge, self.earlier_dials);
                        self.earlier_dials = render::EarlierDials {
                            bound_callee_digits: watch,
                            set_music: bridge.music.is_some(),
                        };
                        for set in prelude {
                            let _ = self.to_switch.send(SwitchCommand::Execute {
                                app: set.name.to_string(),
                                arg: set.arg,
                                event_uuid: uuid::Uuid::new_v4().to_string(),
                            });
                        }
                        self.bridge = Some((id, bridge.clone()));
                        let sent_at = OffsetDateTime::now_utc();
                        self.dial_legs = Some(DialLegs {
                            bridge: bridge.clone(),
                            sent_at,
                            bridged: None,
                        });
                        self.register_ringing_legs(bridge, sent_at);
                    }
                    let config = &self.services.config;
                    let app = render::application(&op, &config.tts, &config.dial);
                    let arg = app.arg;
                    if arg.contains("${") && !self.expansion_disabled {
                        self.expansion_disabled = true;
                        let _ = self.to_switch.send(SwitchCommand::Execute {
                            app: "set".into(),
                            arg: "app_disable_expand_variables=true".into(),
                            event_uuid: Execute::new_event_uuid(),
                        });
                    }
                    let event_uuid = Execute::new_event_uuid();
                    self.apps.insert(event_uuid.clone(), id);
                    if matches!(op, ChannelOp::Answer) {
                        // `api uuid_answer`, not the `answer` app (see `SwitchCommand::Answer`).
                        let _ = self.to_switch.send(SwitchCommand::Answer { event_uuid });
                        continue;
                    }
                    if let ChannelOp::Hangup { cause } = op {
                        // `call-command: hangup`, not the `hangup` app (see
                        // `SwitchCommand::Hangup`).
                        tracing::debug!(cause = %cause, "hangup command");
                        let _ = self
                            .to_switch
                            .send(SwitchCommand::Hangup { cause, event_uuid });
                        continue;
                    }
                    tracing::debug!(app = app.name, arg = %arg, "execute");
                    let _ = self.to_switch.send(SwitchCommand::Execute {
                        app: app.name.to_string(),
                        arg,
                        event_uuid,
                    });
                    if let ChannelOp::Record(_) = &op {
                        let after = render::record_epilogue();
                        let _ = self.to_switch.send(SwitchCommand::Execute {
                            app: after.name.to_string(),
                            arg: after.arg,
                            event_uuid: Execute::new_event_uuid(),
                        });
                    }
                }
                Action::Kill { cause } => {
                    let _ = self.to_switch.send(SwitchCommand::Kill { cause });
                }
                Action::HangupAfterOp { cause } => {
                    let _ = self.to_switch.send(SwitchCommand::HangupMessage { cause });
                }
                Action::ScheduleArmed { after } => {
                    let at = OffsetDateTime::now_utc() + after;
                    self.live_row_writes.scheduled_hangup(Some(at));
                }
                Action::ScheduleCleared => self.live_row_writes.scheduled_hangup(None),
                Action::LegsEnded { legs, callback } => self.record_legs(legs, callback),
                Action::DialAnswered {
                    b_leg,
                    position,
                    to,
                    callback,
                } => {
                    let events = ["answer", "connected"].map(|status| {
                        let params = self.dial_event_params(status, &b_leg, position, &to);
                        crate::app::callbacks::dial_event_callback(
                            &callback.url,
                            callback.method,
                            &params,
                        )
                    });
                    self.enqueue_now(events.into());
                }
                Action::DialDigitsMatch {
                    b_leg,
                    position,
                    to,
                    digits,
                    pressed_by,
                    callback,
                } => {
                    let params = self.dial_event_params("digits", &b_leg, position, &to);
                    let event = crate::app::callbacks::dial_digits_match_callback(
                        &callback.url,
                        callback.method,
                        params,
                        digits,
                        pressed_by.as_str(),
                    );
                    self.enqueue_now(vec![event]);
                }
                Action::KillLeg { leg_uuid } => {
                    let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.leg_hangups)
                        .into_iter()
                        .partition(|(uuid, _)| *uuid == leg_uuid);
                    self.leg_hangups = others;
                    let _ = self.to_switch.send(SwitchCommand::KillLeg {
                        uuid: leg_uuid,
                        replies: mine.into_iter().map(|(_, r)| r).collect(),
                    });
                }
                Action::Interrupt => {
                    let _ = self.to_switch.send(SwitchCommand::Break);
                }
                Action::StopRecordings(stop) => {
                    if stop.caller {
                        // `record` ends on a break like a playback (its report follows,
                        // capture z) — once it runs: before, the break would hit its beep.
                        match &self.record_file {
                            Some((_, false)) => self.break_at_record_start = true,
                            _ => {
                                let _ = self.to_switch.send(SwitchCommand::Break);
                            }
                        }
                    }
                    for path in stop.sessions {
                        let _ = self
                            .to_switch
                            .send(SwitchCommand::StopSessionRecording { path });
                    }
                }
                Action::Request(req) => self.request_through_outbox(req),
                Action::StartRecording { path } => {
                    self.subscribe_record_events();
                    let _ = self
                        .to_switch
                        .send(SwitchCommand::StartSessionRecording { path });
                }
                Action::RecordingComplete(done) => self.recording_complete(*done),
                Action::Finish(ending) => return Some(ending),
            }
        }
        None
    }

    /// A request to the application whose response is ignored (a Gather with
    /// `redirect="false"`, a Dial's action with `redirect="false"` or after the caller
    /// hung up; SPEC §11.4, §12.1): rendered now with the fetch parameters as they are
    /// now, and written to the outbox, which delivers it with its usual guarantees
    /// (signed at delivery). While the call goes on it is written at once, through the
    /// call's ordered queue (after any Dial event already queued); once the call is
    /// closing it goes with the call's record, in one transaction.
    fn request_through_outbox(&mut self, req: DocumentFetch) {
        let params = fetch::params(
            &self.facts,
            &self.resolved,
            self.engine.answered(),
            req.event.clone(),
            &self.services.config.app.extra_variables,
        );
        let row = crate::app::callbacks::action_request(&req.url, req.method, &params);
        tracing::info!(
            url = %req.url,
            event = req.event.as_str(),
            delivery_id = %row.delivery_id,
            "action requested through the outbox (response ignored)"
        );
        if self.engine.is_closing() {
            self.closing_requests.push(row);
        } else {
            self.enqueue_now(vec![row]);
        }
    }

    /// Subscribes RECORD_START/STOP once, before the call's first recording.
    fn subscribe_record_events(&mut self) {
        if !self.record_events {
            self.record_events = true;
            let _ = self.to_switch.send(SwitchCommand::SubscribeRecordEvents);
        }
    }

    /// A recording's file is complete (SPEC §12.2): its row, then its `RecordStop`, in
    /// the call's order of store writes (once the call is closing: before its record,
    /// the RecordStop in the record's transaction).
    fn recording_complete(&mut self, done: crate::call::element::record::Completed) {
        let (row, callbacks) = record::recording_row(&self.facts, &self.resolved, &done);
        tracing::info!(
            recording_id = %row.recording_id,
            path = %row.file_path,
            duration_ms = row.duration_ms,
            reason = row.end_reason.as_str(),
            "recording complete"
        );
        if self.engine.is_closing() {
            self.closing_recordings.push(row);
            self.closing_requests.extend(callbacks);
            return;
        }
        let (written_tx, written) = oneshot::channel();
        self.recording_written = Some(written);
        self.notice(Notice::Recording(Box::new(row), written_tx));
        self.enqueue_now(callbacks);
    }

    fn start_fetch(&mut self, req: DocumentFetch) {
        let after = match req.event {
            crate::document::model::FetchEvent::Record(_) => self.recording_written.take(),
            _ => None,
        };
        let params = fetch::params(
            &self.facts,
            &self.resolved,
            self.engine.answered(),
            req.event.clone(),
            &self.services.config.app.extra_variables,
        );
        self.fetch_task = Some(fetch::spawn(
            self.services.clone(),
            self.resolved.clone(),
            req,
            params,
            self.document_url.clone(),
            self.reports_tx.clone(),
            after,
        ));
    }

    fn on_report(&mut self, report: WorkerReport) {
        match report {
            WorkerReport::HangupCommandDone { command, result } => {
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
            WorkerReport::Completed { event_uuid } => {
                if let Some(id) = self.apps.remove(&event_uuid) {
                    self.input(Input::OpFinished {
                        id,
                        outcome: crate::call::engine::OpOutcome::Completed,
                    });
                }
            }
            WorkerReport::ExecuteRefused { event_uuid, reason } => {
                if let Some(id) = self.apps.remove(&event_uuid) {
                    self.input(Input::OpFinished {
                        id,
                        outcome: render::refused(&reason),
                    });
                }
            }
            WorkerReport::Fetched { result, elapsed } => {
                self.services
                    .metrics
                    .fetch_observed(elapsed, result.is_ok());
                if let Ok(fetched) = &result {
                    self.document_url = Some(fetched.url.clone());
                }
                self.input(Input::DocumentFetched(fetch::engine_result(result)));
            }
        }
    }

    fn on_command(&mut self, cmd: CallCommand) {
        match cmd {
            CallCommand::HangupLeg { leg_uuid, reply } => self.on_leg_hangup(leg_uuid, reply),
            CallCommand::StopRecordings { reply } => {
                tracing::info!("stopping the recordings requested through the REST API");
                let now = self.clock.now();
                let acted = self.engine.handle(now, Input::ApiStopRecordings) == Reaction::Acted;
                let _ = reply.send(Ok(acted));
            }
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

    /// REST `DELETE` of the bridged callee: the engine decides; the kill answers it.
    fn on_leg_hangup(&mut self, leg_uuid: String, reply: oneshot::Sender<HangupReply>) {
        tracing::info!(b_leg = %leg_uuid, "hangup of the Dial's callee requested through the REST API");
        let now = self.clock.now();
        let input = Input::ApiHangupLeg {
            leg_uuid: leg_uuid.clone(),
        };
        match self.engine.handle(now, input) {
            Reaction::Acted => self.leg_hangups.push((leg_uuid, reply)),
            _ if self.engine.is_closing() => {
                let _ = reply.send(HangupReply::Ending);
            }
            _ => {
                let _ = reply.send(HangupReply::Over);
            }
        }
    }

    /// The Dial's bridge is sent: every leg is listed live under its own uuid, ringing,
    /// from now until it ends (SPEC §11.2 "while it is up"). Its start time is when the
    /// bridge was sent until the switch says when the winner's channel was created.
    fn register_ringing_legs(
        &mut self,
        bridge: &crate::call::engine::Bridge,
        sent_at: OffsetDateTime,
    ) {
        let Some(commands) = self.commands.clone() else {
            return;
        };
        let from = bridge
            .caller_id
            .clone()
            .unwrap_or_else(|| self.facts.from.clone());
        self.leg_registrations = bridge
            .legs
            .iter()
            .map(|leg| {
                let info = crate::call::live::LegInfo {
                    parent_call_uuid: self.facts.uuid.clone(),
                    to: leg.target.as_str().to_string(),
                    from: from.clone(),
                    start_time: sent_at,
                    answer_time: None,
                };
                let registration = self.services.live.register_leg(
                    &leg.uuid,
                    &self.resolved.account_id,
                    info,
                    commands.clone(),
                );
                (leg.uuid.clone(), registration)
            })
            .collect();
    }

    /// The Dial's callee answered and is bridged: its live entry is in progress, with
    /// the switch's times; the other legs lost the race (the switch cancels them now)
    /// and leave the live list.
    fn leg_bridged(&mut self, event: &Event, b_leg: &str) {
        let now = OffsetDateTime::now_utc();
        let created = event
            .header("Other-Leg-Channel-Created-Time")
            .and_then(micros_to_time)
            .unwrap_or(now);
        let answered = event
            .header("Other-Leg-Channel-Answered-Time")
            .and_then(micros_to_time)
            .unwrap_or(now);
        if let Some(d) = self.dial_legs.as_mut() {
            d.bridged = Some((b_leg.to_string(), created, answered));
        }
        self.leg_registrations.retain(|(uuid, _)| uuid == b_leg);
        self.services.live.leg_answered(b_leg, created, answered);
    }

    /// A Dial is over: every leg gets its own CDR (SPEC §11.2) and, with a `callbackUrl`,
    /// its DialHangup ([`dial_legs::leg_endings`]).
    fn record_legs(
        &mut self,
        legs: Vec<crate::call::element::dial::LegEnding>,
        callback: Option<crate::document::model::Redirect>,
    ) {
        let Some(dial) = self.dial_legs.take() else {
            return;
        };
        let hangups = dial_legs::leg_endings(
            &self.services.store,
            &dial,
            &self.facts,
            &self.resolved.account_id,
            legs,
            callback.as_ref(),
        );
        self.enqueue_now(hangups);
    }

    /// The SPEC §11.4 parameters of a Dial leg event for the Dial in flight.
    fn dial_event_params(
        &self,
        status: &str,
        b_leg: &str,
        position: usize,
        to: &str,
    ) -> Vec<(String, String)> {
        match &self.dial_legs {
            Some(dial) => dial_legs::event_params(dial, &self.facts, status, b_leg, position, to),
            None => Vec::new(),
        }
    }

    /// Writes callbacks of this live call to the outbox now, in order: one writer
    /// task per call takes them one batch after the other (SPEC §11.4's sequence
    /// DialAnswer → DialConnected → DialHangup must not be reordered by racing tasks).
    fn enqueue_now(&mut self, callbacks: Vec<crate::record::callback::NewCallback>) {
        if callbacks.is_empty() {
            return;
        }
        self.notice(Notice::Callbacks(callbacks));
    }

    /// Queues one mid-call store write on the call's ordered writer task (started on
    /// first use), so a recording's row lands before its RecordStop and its action.
    fn notice(&mut self, notice: Notice) {
        let queue = self.notices.get_or_insert_with(|| {
            Notice::writer(
                self.services.store.clone(),
                self.facts.uuid.clone(),
                self.resolved.account_id.clone(),
            )
        });
        let _ = queue.send(notice);
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
            SocketEvent::Diverted(event) => self.on_diverted(event),
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

    /// An event the channel diverted to the socket: a match of the callee's digits
    /// (`bind_digit_action …,voxbridge_digits_match,bleg,peer`, see
    /// [`render::bridge_prelude`]) carries `voxbridge_digits_match: bleg` and `digits`.
    fn on_diverted(&mut self, event: Event) {
        match (
            event.header("voxbridge_digits_match"),
            event.header("digits"),
        ) {
            (Some("bleg"), Some(digits)) if !digits.is_empty() => {
                let digits = digits.to_string();
                self.input(Input::CalleeDigits { digits });
            }
            _ => tracing::debug!(headers = ?event.headers(), "diverted event ignored"),
        }
    }

    fn on_event(&mut self, event: Event) {
        match event.name() {
            "CHANNEL_EXECUTE_COMPLETE" => {
                let id = event.application_uuid().and_then(|u| self.apps.remove(u));
                if let Some((bridge_id, bridge)) = self.bridge.take_if(|(b, _)| Some(*b) == id) {
                    let report = render::bridge_report(&event, &bridge);
                    self.leg_registrations.clear();
                    tracing::info!(?report, "bridge ended");
                    self.input_from(
                        &event,
                        Input::BridgeEnded {
                            id: bridge_id,
                            report,
                        },
                    );
                } else if let Some(record_id) = self.record_op.take_if(|r| Some(*r) == id) {
                    self.record_file = None;
                    self.break_at_record_start = false;
                    let report = render::record_report(&event);
                    tracing::info!(?report, "record ended");
                    self.input_from(
                        &event,
                        Input::RecordEnded {
                            id: record_id,
                            report,
                        },
                    );
                } else if let Some(id) = id {
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
                self.live_row_writes.answered(at);
                self.input_from(&event, Input::Answered);
            }
            "CHANNEL_PROGRESS" | "CHANNEL_PROGRESS_MEDIA" => {
                self.input_from(&event, Input::CalleeProgress);
            }
            "CHANNEL_BRIDGE" => {
                let b_leg = event
                    .header("Other-Leg-Unique-ID")
                    .or_else(|| event.header("Bridge-B-Unique-ID"));
                if let Some(b_leg) = b_leg {
                    let b_leg = b_leg.to_string();
                    tracing::info!(%b_leg, "bridged");
                    self.leg_bridged(&event, &b_leg);
                    self.input_from(&event, Input::Bridged { b_leg });
                }
            }
            "RECORD_START" => {
                let path = event.header("Record-File-Path").unwrap_or("");
                if let Some((file, started)) = self.record_file.as_mut() {
                    if file == path {
                        *started = true;
                        if std::mem::take(&mut self.break_at_record_start) {
                            let _ = self.to_switch.send(SwitchCommand::Break);
                        }
                    }
                }
            }
            "RECORD_STOP" => {
                if let Some(stop) = render::recording_stop(&event) {
                    self.input_from(&event, Input::RecordingStopped(stop));
                }
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
        let final_event = self.hangup_complete.as_ref().or(self.hangup_event.as_ref());
        let mut record = record::from_ending(
            &self.facts,
            &self.resolved,
            &ending,
            final_event,
            self.answer_time,
        );
        if self.refused_for_store.is_refused() {
            record::mark_error(
                &mut record,
                HangupCause::NORMAL_TEMPORARY_FAILURE,
                closeout::STORE_UNAVAILABLE,
                "refused: the store could not write the live call (503)",
            );
        } else if self.cut_off_at.is_some() {
            record::mark_error(
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
        let post_call = ending.post_call.as_ref().map(|p| (p.url.clone(), p.method));
        for row in std::mem::take(&mut self.closing_recordings) {
            // Before the record (and the RecordStop rows in its transaction), so the
            // application that hears of a recording can fetch it. Bounded: a failing
            // store must not hold the call's end (the file stays on disk, logged).
            let id = row.recording_id.clone();
            let write = self.services.store.add_recording(row);
            match tokio::time::timeout(Duration::from_secs(5), write).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, recording_id = %id, "RECORDING NOT STORED: its row could not be written (the file stays on disk)")
                }
                Err(_) => {
                    tracing::error!(recording_id = %id, "RECORDING NOT STORED: the store did not answer in 5 s (the file stays on disk)")
                }
            }
        }
        let notices = std::mem::take(&mut self.closing_requests);
        record::keep(&self.services, &self.resolved, record, post_call, notices).await;
        self.refused_for_store.release();
    }
}

/// A mid-call store write, in the call's order ([`CallTask::notice`]; the Asterisk
/// driver's writer takes the same).
pub(in crate::call) enum Notice {
    Callbacks(Vec<crate::record::callback::NewCallback>),
    /// A complete recording's row; `written` fires once it is stored (or failed).
    Recording(Box<crate::store::Recording>, oneshot::Sender<()>),
}

impl Notice {
    /// Starts a call's ordered writer of mid-call store writes (both drivers start one
    /// on first use): each notice is written after the one before it.
    pub(in crate::call) fn writer(
        store: StoreHandle,
        uuid: String,
        account: String,
    ) -> mpsc::UnboundedSender<Notice> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Notice>();
        tokio::spawn(
            async move {
                while let Some(notice) = rx.recv().await {
                    match notice {
                        Notice::Callbacks(batch) => {
                            let ids: Vec<String> =
                                batch.iter().map(|c| c.delivery_id.clone()).collect();
                            if let Err(e) = store.enqueue_callbacks(&uuid, &account, batch).await {
                                tracing::error!(error = %e, ?ids, "CALLBACKS NOT STORED: mid-call outbox rows could not be written");
                            }
                        }
                        Notice::Recording(row, written) => {
                            let id = row.recording_id.clone();
                            if let Err(e) = store.add_recording(*row).await {
                                tracing::error!(error = %e, recording_id = %id, "RECORDING NOT STORED: its row could not be written (the file stays on disk)");
                            }
                            let _ = written.send(());
                        }
                    }
                }
            }
            .in_current_span(),
        );
        tx
    }
}

/// Epoch milliseconds of a wall-clock time.
fn epoch_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// How long a call cut off at shutdown waits for the switch's hangup events before it is
/// closed out as if its socket were lost.
const CUT_OFF_WAIT: Duration = Duration::from_secs(3);

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
