//! Outbound calls through the switch (SPEC §13): `POST Call/` → a queue paced by
//! `outbound.max_cps` → `bgapi originate … '&socket(<esl listener> async full)'` on the
//! dialer's own inbound ESL connection → either the answered channel comes back to the
//! ESL listener as a normal call (`Direction=outbound`), or the call ends unanswered and
//! is closed out here from the inbound events.
//!
//! Switch facts this relies on (transcripts o, p, p2–p4, and the real switch):
//! - `&socket(…)` must be quoted, else the app gets only its address and connects in
//!   static single-channel mode (o2);
//! - the socket app runs on the originated channel itself (uuid = `origination_uuid`,
//!   `Call-Direction: outbound`) and only once `originate` has returned: with
//!   `ignore_early_media=true` that is at the answer, never on a 183 alone;
//! - a callee that refuses or never answers fails the originate (`-ERR USER_BUSY`,
//!   `-ERR NO_ANSWER` at `originate_timeout`, whole epoch seconds), the BACKGROUND_JOB
//!   comes *before* the channel's CHANNEL_HANGUP_COMPLETE, and no socket ever connects;
//! - variables in `{…}` become channel variables (so the answered call carries its
//!   answer URL, account and parties as `voxbridge_*` variables), and a value with
//!   spaces survives inside single quotes; `execute_on_answer='sched_hangup +N
//!   ALLOTTED_TIMEOUT'` arms the time limit inside the switch at the answer.
//!
//! The dialer's inbound connection subscribes to CHANNEL_PROGRESS, _PROGRESS_MEDIA,
//! _ANSWER and _HANGUP_COMPLETE, filtered on `variable_voxbridge_dialer` (a value of this
//! process), so other users of a shared switch stay out; BACKGROUND_JOB passes a
//! second filter and `bgapi` matches its own `Job-UUID`.
//!
//! Every call accepted has a live row from the moment `POST Call/` answers 201, and ends
//! with a CDR and a hangup callback whatever happens:
//!
//! | how it ends | CallStatus | HangupCause | HangupSource |
//! |---|---|---|---|
//! | answered | (the socket call's record) | | |
//! | answered, `time_limit` ran out | `completed` | ALLOTTED_TIMEOUT | `API` (name `Time Limit`) |
//! | callee busy (486) | `busy` | USER_BUSY | `Callee` |
//! | `ring_timeout` ran out | `no-answer` | NO_ANSWER | `Callee` |
//! | `hangup_on_ring` ran out | `no-answer` | NO_ANSWER | `Callee` |
//! | REST DELETE while queued or ringing | `cancel` | ORIGINATOR_CANCEL | `API` |
//! | refused, unroutable, any other failure | `failed` | as the switch says | `Callee` |
//! | no BACKGROUND_JOB within ring_timeout + `outbound.job_grace` | `failed` | as known | `Error` |
//! | the switch connection lost while ringing | `failed` | as known | `Error` |
//!
//! An answered call whose socket never reaches voxbridge (listener refusing, voxbridge
//! stopping) is closed out here too, from its CHANNEL_HANGUP_COMPLETE, unless the socket
//! side has written its record or is still running (source `Unknown`). A voxbridge
//! restart while calls ring leaves their live rows to reconciliation (SPEC §2 step 7).

use super::channel::micros_to_time;
use super::CallServices;
use crate::app::callbacks::{self, CallbackTargets, FORM_CONTENT_TYPE};
use crate::call::live::{CallCommand, HangupReply, Registration};
use crate::call::outbound::{CallRequest, Destination};
use crate::cause::HangupCause;
use crate::config::OutboundConfig;
use crate::document::model::HttpMethod;
use crate::esl::counters::EslCounters;
use crate::esl::event::Event;
use crate::esl::inbound::{ClientEvent, InboundClient, InboundOptions};
use crate::record::call::{CallRecord, Direction, HangupSource};
use crate::record::callback::{CallbackKind, NewCallback};
use crate::store::NewLiveCall;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::Instrument;

/// The channel variable that marks this process's originates (the events filter).
pub const DIALER_VARIABLE: &str = "voxbridge_dialer";
/// Channel events of an originated call the dialer reads.
const EVENTS: &[&str] = &[
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_ANSWER",
    "CHANNEL_HANGUP_COMPLETE",
];
/// After a failed originate, how long its CHANNEL_HANGUP_COMPLETE (cause code, SIP
/// status, times) is waited for; it normally follows the job within milliseconds (p).
const HANGUP_COMPLETE_WAIT: Duration = Duration::from_secs(2);
/// After an answered call's channel is gone, how long its socket side has to write its
/// record before the dialer closes the call out itself.
const ANSWERED_RECORD_GRACE: Duration = Duration::from_secs(10);
/// How long past its time limit an answered call's end is watched for.
const ANSWERED_WATCH_MARGIN: Duration = Duration::from_secs(120);
/// How long a call waits for the switch connection before its originate fails.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Where an accepted call stands before its socket takes over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for its turn under `outbound.max_cps`.
    Queued,
    /// The originate is out; the callee has not answered.
    Ringing,
    /// Answered: the socket side runs the document.
    Answered,
}

impl Phase {
    /// The live-call API's `call_status`.
    pub fn call_status(self) -> &'static str {
        match self {
            Phase::Queued => "queued",
            Phase::Ringing => "ringing",
            Phase::Answered => "in-progress",
        }
    }
}

/// Why `POST Call/` could not accept the calls.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("{queued} calls are queued and {asked} more would exceed outbound.max_queued ({max})")]
    QueueFull {
        queued: usize,
        asked: usize,
        max: usize,
    },
    #[error("the call cannot be recorded: {0}")]
    Store(String),
    /// The request's `switch` names no configured switch.
    #[error("switch: no switch is configured with the name {0:?} (configured: {1})")]
    UnknownSwitch(String, String),
}

struct Tracked {
    account_id: String,
    phase: Phase,
    events: mpsc::UnboundedSender<Event>,
}

struct Inner {
    config: OutboundConfig,
    /// The configured name of the switch this dialer places calls through.
    switch_name: String,
    socket: String,
    dialer_id: String,
    client: InboundClient,
    services: Arc<CallServices>,
    turns: mpsc::Sender<oneshot::Sender<()>>,
    enqueue: tokio::sync::Mutex<()>,
    calls: Mutex<HashMap<String, Tracked>>,
}

/// Places `POST Call/` calls through the configured switch. Cheap to clone.
#[derive(Clone)]
pub struct Dialer {
    inner: Arc<Inner>,
}

/// One [`Dialer`] per configured switch (SPEC §14): `POST Call/` goes to the switch its
/// `switch` parameter names, else to the next in turn (round-robin, one request at a
/// time: a bulk request's calls all go through one switch). `outbound.max_cps` and
/// `outbound.max_queued` hold per switch — the admission limit is each switch's own.
#[derive(Clone)]
pub struct Dialers {
    dialers: Arc<Vec<Dialer>>,
    next: Arc<std::sync::atomic::AtomicUsize>,
}

impl Dialers {
    /// `None` without any switch.
    pub fn new(dialers: Vec<Dialer>) -> Option<Dialers> {
        (!dialers.is_empty()).then(|| Dialers {
            dialers: Arc::new(dialers),
            next: Arc::default(),
        })
    }

    /// The dialer for a request: the named switch's, or the next one in turn.
    fn pick(&self, switch: Option<&str>) -> Result<&Dialer, PlaceError> {
        match switch {
            Some(name) => self
                .dialers
                .iter()
                .find(|d| d.inner.switch_name == name)
                .ok_or_else(|| {
                    let names: Vec<String> = self
                        .dialers
                        .iter()
                        .map(|d| format!("{:?}", d.inner.switch_name))
                        .collect();
                    PlaceError::UnknownSwitch(name.to_string(), names.join(", "))
                }),
            None => {
                let turn = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(&self.dialers[turn % self.dialers.len()])
            }
        }
    }

    /// As [`Dialer::place`], through the switch the request names or the next one.
    pub async fn place(
        &self,
        account_id: &str,
        request: CallRequest,
    ) -> Result<Vec<String>, PlaceError> {
        let dialer = self.pick(request.switch.as_deref())?;
        dialer.place(account_id, request).await
    }

    /// As [`Dialer::phase`], whichever dialer tracks the call.
    pub fn phase(&self, account_id: &str, call_uuid: &str) -> Option<Phase> {
        self.dialers
            .iter()
            .find_map(|d| d.phase(account_id, call_uuid))
    }
}

impl Dialer {
    /// Starts the dialer's inbound connection, its pacer and its event router. `socket`
    /// is where the switch hands answered calls back (the bound ESL listener, unless
    /// `outbound.socket` says otherwise).
    pub fn start(
        services: Arc<CallServices>,
        switch: &crate::config::SwitchConfig,
        socket: SocketAddr,
        counters: Arc<EslCounters>,
    ) -> Dialer {
        let config = services.config.outbound.clone();
        let dialer_id = uuid::Uuid::new_v4().simple().to_string();
        let (client, events) = InboundClient::start(
            InboundOptions {
                addr: switch.esl.clone(),
                password: switch.password.clone(),
                events: EVENTS.iter().map(|e| e.to_string()).collect(),
                filters: vec![
                    (format!("variable_{DIALER_VARIABLE}"), dialer_id.clone()),
                    ("Event-Name".into(), "BACKGROUND_JOB".into()),
                ],
                event_capacity: 1024,
                ..InboundOptions::default()
            },
            counters,
        );
        let (turns, turns_rx) = mpsc::channel(config.max_queued.max(1));
        let socket = if config.socket.is_empty() {
            socket.to_string()
        } else {
            config.socket.clone()
        };
        let interval = Duration::from_secs_f64(1.0 / config.max_cps);
        let inner = Arc::new(Inner {
            config,
            switch_name: switch.name.clone(),
            socket,
            dialer_id,
            client,
            services,
            turns,
            enqueue: tokio::sync::Mutex::new(()),
            calls: Mutex::new(HashMap::new()),
        });
        tokio::spawn(pace(turns_rx, interval));
        tokio::spawn(route_events(Arc::downgrade(&inner), events));
        Dialer { inner }
    }

    /// Where the call stands, while the dialer tracks it (queued, ringing, or answered
    /// until its channel is gone); `None` otherwise or for another account's call.
    pub fn phase(&self, account_id: &str, call_uuid: &str) -> Option<Phase> {
        let calls = self.inner.lock_calls();
        calls
            .get(call_uuid)
            .filter(|t| t.account_id == account_id)
            .map(|t| t.phase)
    }

    /// Accepts one call per destination: each gets its uuid (the `request_uuid`), a live
    /// row and a place in the queue. All or none: a queue without room for every
    /// destination refuses the request.
    pub async fn place(
        &self,
        account_id: &str,
        request: CallRequest,
    ) -> Result<Vec<String>, PlaceError> {
        let inner = &self.inner;
        let _one_at_a_time = inner.enqueue.lock().await;
        let asked = request.to.len();
        let room = inner.turns.capacity();
        if room < asked {
            let max = inner.config.max_queued;
            return Err(PlaceError::QueueFull {
                queued: max - room,
                asked,
                max,
            });
        }
        let request = Arc::new(request);
        // The callback URLs follow the same chains as on the socket side (SPEC §2): the
        // request's hangup_url, else a route's or the default, else the answer URL.
        let mut variables = HashMap::new();
        variables.insert(
            "voxbridge_answer_url".to_string(),
            request.answer_url.clone(),
        );
        variables.insert("voxbridge_account".to_string(), account_id.to_string());
        if let Some(url) = &request.hangup_url {
            variables.insert("voxbridge_hangup_url".to_string(), url.clone());
        }
        let mut uuids = Vec::with_capacity(asked);
        for dest in &request.to {
            let targets = inner
                .services
                .router
                .callback_targets(&variables, &dest.display());
            let hangup_url = targets.hangup_url;
            let status_callback_url = targets.status_callback_url.unwrap_or_default();
            let uuid = uuid::Uuid::new_v4().to_string();
            let requested_at = OffsetDateTime::now_utc();
            inner
                .services
                .store
                .call_started(NewLiveCall {
                    call_uuid: uuid.clone(),
                    account_id: account_id.to_string(),
                    direction: Direction::Outbound,
                    from: request.from.clone(),
                    to: dest.display(),
                    caller_name: request.caller_name.clone(),
                    forwarded_from: None,
                    start_time: requested_at,
                    hangup_url: hangup_url.clone(),
                    status_callback_url: status_callback_url.clone(),
                    // The dialer's switch: the answered channel's connect reply will
                    // say the same FreeSWITCH-Switchname (the configured name).
                    switch_name: inner.switch_name.clone(),
                })
                .await
                .map_err(|e| PlaceError::Store(e.to_string()))?;
            let (commands_tx, commands) = mpsc::channel(4);
            let registration = inner.services.live.register(&uuid, account_id, commands_tx);
            let (events_tx, events) = mpsc::unbounded_channel();
            inner.lock_calls().insert(
                uuid.clone(),
                Tracked {
                    account_id: account_id.to_string(),
                    phase: Phase::Queued,
                    events: events_tx,
                },
            );
            let (turn_tx, turn) = oneshot::channel();
            // Room was checked under the enqueue lock; only this path sends.
            if inner.turns.try_send(turn_tx).is_err() {
                inner.lock_calls().remove(&uuid);
                return Err(PlaceError::QueueFull {
                    queued: inner.config.max_queued,
                    asked,
                    max: inner.config.max_queued,
                });
            }
            let call = OutboundCall {
                inner: inner.clone(),
                uuid: uuid.clone(),
                account_id: account_id.to_string(),
                request: request.clone(),
                dest: dest.clone(),
                hangup_url: hangup_url.clone(),
                status_callback_url: status_callback_url.clone(),
                requested_at,
                _registration: registration,
            };
            let span = tracing::info_span!("outbound", call_uuid = %uuid);
            tokio::spawn(call.run(turn, commands, events).instrument(span));
            uuids.push(uuid);
        }
        Ok(uuids)
    }
}

impl Inner {
    fn lock_calls(&self) -> std::sync::MutexGuard<'_, HashMap<String, Tracked>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_phase(&self, uuid: &str, phase: Phase) {
        if let Some(t) = self.lock_calls().get_mut(uuid) {
            t.phase = phase;
        }
    }
}

/// Hands out originate turns, one per `1 / max_cps`; a call cancelled while queued
/// (its turn dropped) costs no interval.
async fn pace(mut turns: mpsc::Receiver<oneshot::Sender<()>>, interval: Duration) {
    while let Some(turn) = turns.recv().await {
        if turn.send(()).is_ok() {
            tokio::time::sleep(interval).await;
        }
    }
}

/// Passes each channel event to its call's task, by `Unique-ID`.
async fn route_events(inner: std::sync::Weak<Inner>, mut events: mpsc::Receiver<ClientEvent>) {
    while let Some(item) = events.recv().await {
        let Some(inner) = inner.upgrade() else { return };
        match item {
            ClientEvent::Event(ev) => {
                if ev.is("BACKGROUND_JOB") {
                    continue; // matched by `bgapi` itself
                }
                let Some(uuid) = ev.unique_id() else { continue };
                if let Some(t) = inner.lock_calls().get(uuid) {
                    let _ = t.events.send(ev);
                }
            }
            ClientEvent::Connected => tracing::info!("outbound dialer connected to the switch"),
            ClientEvent::Disconnected(reason) => {
                tracing::warn!(%reason, "outbound dialer lost the switch; calls ringing now are closed out")
            }
        }
    }
}

/// One accepted call, from the queue to its socket or its record.
struct OutboundCall {
    inner: Arc<Inner>,
    uuid: String,
    account_id: String,
    request: Arc<CallRequest>,
    dest: Destination,
    hangup_url: String,
    status_callback_url: String,
    requested_at: OffsetDateTime,
    /// Keeps the call in the live registry (list, DELETE) while the dialer owns it.
    _registration: Registration,
}

/// How an unanswered call ended, as the dialer decides it.
struct Unanswered {
    cause: HangupCause,
    source: HangupSource,
    name: String,
    note: Option<String>,
}

impl OutboundCall {
    async fn run(
        self,
        turn: oneshot::Receiver<()>,
        mut commands: mpsc::Receiver<CallCommand>,
        mut events: mpsc::UnboundedReceiver<Event>,
    ) {
        // Queued.
        tokio::select! {
            _ = turn => {}
            Some(CallCommand::Hangup { reply }) = commands.recv() => {
                let _ = reply.send(HangupReply::Ending);
                tracing::info!("cancelled by the REST API while queued");
                let end = cancelled();
                return self.close_unanswered(end, None).await;
            }
        }
        self.inner.set_phase(&self.uuid, Phase::Ringing);
        if !self.wait_for_switch().await {
            let end = Unanswered {
                cause: HangupCause::NORMAL_TEMPORARY_FAILURE,
                source: HangupSource::Error,
                name: "Error: the switch is not connected".into(),
                note: Some(
                    "the dialer had no connection to the switch; nothing was originated".into(),
                ),
            };
            return self.close_unanswered(end, None).await;
        }
        let command = self.originate_command();
        tracing::info!(%command, "originating");
        let client = self.inner.client.clone();
        let job = client.bgapi(&command);
        tokio::pin!(job);
        let job_deadline = Instant::now()
            + Duration::from_secs(self.request.ring_timeout)
            + Duration::from_secs_f64(self.inner.config.job_grace);
        let mut ring_deadline: Option<Instant> = None;
        let mut rang = false;
        let mut job_done = false;
        let mut failure: Option<Unanswered> = None;
        let mut ours: Option<Unanswered> = None;
        let mut kill_pending: Option<HangupCause> = None;
        let mut complete_wait: Option<Instant> = None;
        loop {
            tokio::select! {
                result = &mut job, if !job_done => {
                    job_done = true;
                    let text = match result {
                        Ok(ev) => ev.body().unwrap_or("").trim().to_string(),
                        Err(e) => {
                            tracing::warn!(error = %e, "originate got no result from the switch");
                            let _ = self.kill(HangupCause::NORMAL_TEMPORARY_FAILURE).await;
                            failure = Some(Unanswered {
                                cause: HangupCause::NORMAL_TEMPORARY_FAILURE,
                                source: HangupSource::Error,
                                name: "Error: switch connection lost while ringing".into(),
                                note: Some(format!("originate: {e}")),
                            });
                            complete_wait = Some(Instant::now() + HANGUP_COMPLETE_WAIT);
                            continue;
                        }
                    };
                    if text.starts_with("+OK") {
                        tracing::info!("answered; the socket runs the document");
                        return self.answered(events, None).await;
                    }
                    let cause_text = text.strip_prefix("-ERR").unwrap_or(&text).trim();
                    let cause = HangupCause::from_name(cause_text)
                        .unwrap_or(HangupCause::NORMAL_TEMPORARY_FAILURE);
                    tracing::info!(result = %text, "originate failed");
                    failure = Some(ours.take().unwrap_or_else(|| switch_ended(cause, &text)));
                    complete_wait = Some(Instant::now() + HANGUP_COMPLETE_WAIT);
                }
                Some(ev) = events.recv() => {
                    match ev.name() {
                        "CHANNEL_PROGRESS" | "CHANNEL_PROGRESS_MEDIA" => {
                            if let Some(cause) = kill_pending.take() {
                                let _ = self.kill(cause).await;
                            }
                            if !rang {
                                rang = true;
                                self.ringing();
                                if let Some(s) = self.request.hangup_on_ring {
                                    ring_deadline = Some(Instant::now() + Duration::from_secs(s));
                                }
                            }
                        }
                        "CHANNEL_ANSWER" => self.answer_seen(&ev).await,
                        "CHANNEL_HANGUP_COMPLETE" if was_answered(&ev) => {
                            // Answered and already over before the originate's `+OK`
                            // reached us (a short document, a loaded switch): the
                            // socket side owns its record.
                            tracing::info!("answered and ended before the originate result came");
                            return self.answered(events, Some(ev)).await;
                        }
                        "CHANNEL_HANGUP_COMPLETE" => {
                            let end = failure.take().or(ours.take()).unwrap_or_else(|| {
                                let cause = ev.hangup_cause().map(HangupCause::parse_switch)
                                    .unwrap_or(HangupCause::NORMAL_CLEARING);
                                switch_ended(cause, cause.name())
                            });
                            return self.close_unanswered(end, Some(&ev)).await;
                        }
                        _ => {}
                    }
                }
                Some(CallCommand::Hangup { reply }) = commands.recv() => {
                    let _ = reply.send(HangupReply::Ending);
                    if ours.is_none() && failure.is_none() {
                        tracing::info!("cancelled by the REST API while ringing");
                        ours = Some(cancelled());
                        if !self.kill(HangupCause::ORIGINATOR_CANCEL).await {
                            // The channel may not exist yet: kill it at its first event.
                            kill_pending = Some(HangupCause::ORIGINATOR_CANCEL);
                        }
                    }
                }
                _ = sleep_until(ring_deadline) => {
                    ring_deadline = None;
                    if ours.is_none() && failure.is_none() {
                        tracing::info!("hangup_on_ring ran out");
                        ours = Some(Unanswered {
                            cause: HangupCause::NO_ANSWER,
                            source: HangupSource::Callee,
                            name: "No Answer".into(),
                            note: Some(format!(
                                "hangup_on_ring: not answered {} s after ringing started",
                                self.request.hangup_on_ring.unwrap_or(0)
                            )),
                        });
                        let _ = self.kill(HangupCause::NO_ANSWER).await;
                    }
                }
                _ = tokio::time::sleep_until(job_deadline), if !job_done => {
                    job_done = true;
                    tracing::error!("no BACKGROUND_JOB for the originate; giving the call up");
                    let _ = self.kill(HangupCause::NORMAL_TEMPORARY_FAILURE).await;
                    failure = Some(Unanswered {
                        cause: HangupCause::NORMAL_TEMPORARY_FAILURE,
                        source: HangupSource::Error,
                        name: "Error: no originate result from the switch".into(),
                        note: Some("the originate's BACKGROUND_JOB never came".into()),
                    });
                    complete_wait = Some(Instant::now() + HANGUP_COMPLETE_WAIT);
                }
                _ = sleep_until(complete_wait) => {
                    let end = failure.take().unwrap_or_else(|| switch_ended(
                        HangupCause::NORMAL_TEMPORARY_FAILURE, "unknown"));
                    return self.close_unanswered(end, None).await;
                }
            }
        }
    }

    /// The dialer's connection to the switch is up (bounded wait).
    async fn wait_for_switch(&self) -> bool {
        let until = Instant::now() + CONNECT_WAIT;
        while Instant::now() < until {
            if self.inner.client.is_connected() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.inner.client.is_connected()
    }

    /// `originate {vars}<dial string> '&socket(<addr> async full)'`.
    fn originate_command(&self) -> String {
        let r = &self.request;
        // The same dial strings as a Dial's legs (SPEC §11.1, §13): `[dial]`.
        let dial = &self.inner.services.config.dial;
        let dial = match &self.dest {
            Destination::Number(n) => dial.number_template.replace("{number}", n),
            Destination::Sip(rest) => format!("sofia/{}/{rest}", dial.sip_profile),
        };
        let mut vars: Vec<(String, String)> = vec![
            ("origination_uuid".into(), self.uuid.clone()),
            ("origination_caller_id_number".into(), r.from.clone()),
            ("originate_timeout".into(), r.ring_timeout.to_string()),
            // `+OK` (and the socket) only at the answer, never on early media alone.
            ("ignore_early_media".into(), "true".into()),
            (DIALER_VARIABLE.into(), self.inner.dialer_id.clone()),
            ("voxbridge_answer_url".into(), r.answer_url.clone()),
            ("voxbridge_outbound_from".into(), r.from.clone()),
            ("voxbridge_outbound_to".into(), self.dest.display()),
            (
                super::record::TIME_LIMIT_VARIABLE.into(),
                r.time_limit.to_string(),
            ),
            (
                "execute_on_answer".into(),
                format!("sched_hangup +{} ALLOTTED_TIMEOUT", r.time_limit),
            ),
        ];
        if !self.account_id.is_empty() {
            vars.push(("voxbridge_account".into(), self.account_id.clone()));
        }
        if !r.caller_name.is_empty() {
            vars.push(("origination_caller_id_name".into(), r.caller_name.clone()));
            vars.push((
                "voxbridge_outbound_caller_name".into(),
                r.caller_name.clone(),
            ));
        }
        if let Some(url) = &r.hangup_url {
            vars.push(("voxbridge_hangup_url".into(), url.clone()));
        }
        if let Some(url) = &r.fallback_url {
            vars.push(("voxbridge_fallback_answer_url".into(), url.clone()));
        }
        if let Some(digits) = &r.send_digits {
            vars.push(("execute_on_answer_2".into(), format!("send_dtmf {digits}")));
        }
        for (k, v) in &r.sip_headers {
            vars.push((format!("sip_h_X-VH-{k}"), v.clone()));
        }
        let vars: Vec<String> = vars
            .into_iter()
            .map(|(k, v)| {
                if v.contains(' ') {
                    format!("{k}='{v}'")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        format!(
            "originate {{{}}}{dial} '&socket({} async full)'",
            vars.join(","),
            self.inner.socket
        )
    }

    /// `uuid_kill <uuid> <cause>`; false when the switch did not take it.
    async fn kill(&self, cause: HangupCause) -> bool {
        match self
            .inner
            .client
            .api(&format!("uuid_kill {} {}", self.uuid, cause.name()))
            .await
        {
            Ok(r) if r.body.trim_start().starts_with("+OK") => true,
            Ok(r) => {
                tracing::info!(reply = %r.body.trim(), "uuid_kill refused");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "uuid_kill could not be sent");
                false
            }
        }
    }

    /// The callee rings: `Event=Ring` to `ring_url` through the outbox. The row is
    /// written on its own task: the originate's loop never waits for the store (a
    /// group commit may hold the row for a few tens of milliseconds), so an answer right
    /// after the ring is handled at once.
    fn ringing(&self) {
        tracing::info!("ringing");
        let Some(url) = &self.request.ring_url else {
            return;
        };
        let callback = ring_callback(
            &self.uuid,
            &self.request,
            &self.dest,
            &self.account_id,
            url,
            self.request.ring_method,
        );
        let store = self.inner.services.store.clone();
        let (uuid, account_id) = (self.uuid.clone(), self.account_id.clone());
        tokio::spawn(
            async move {
                if let Err(e) = store
                    .enqueue_callbacks(&uuid, &account_id, vec![callback])
                    .await
                {
                    tracing::error!(error = %e, "the ring callback could not be stored; it is not sent");
                }
            }
            .in_current_span(),
        );
    }

    /// CHANNEL_ANSWER: the time limit armed by the switch becomes visible.
    async fn answer_seen(&self, ev: &Event) {
        let answered = ev
            .variable("answer_uepoch")
            .and_then(micros_to_time)
            .unwrap_or_else(OffsetDateTime::now_utc);
        let store = &self.inner.services.store;
        let _ = store.call_answered(&self.uuid, answered).await;
        let at = answered + time::Duration::seconds(self.request.time_limit as i64);
        let _ = store.set_scheduled_hangup(&self.uuid, Some(at)).await;
    }

    /// The socket side owns the call now. The dialer only watches for the channel's end,
    /// to close the call out should the socket never have reached voxbridge.
    async fn answered(self, mut events: mpsc::UnboundedReceiver<Event>, ended: Option<Event>) {
        self.inner.set_phase(&self.uuid, Phase::Answered);
        let OutboundCall {
            inner,
            uuid,
            account_id,
            request,
            dest,
            hangup_url,
            status_callback_url,
            requested_at,
            _registration,
        } = self;
        drop(_registration);
        let mut answer_seen = false;
        // The switch ends the call at its time limit at the latest; an event lost with
        // the inbound connection must not keep this watch forever.
        let watch_until =
            Instant::now() + Duration::from_secs(request.time_limit) + ANSWERED_WATCH_MARGIN;
        let complete = loop {
            if let Some(ev) = &ended {
                break Some(ev.clone());
            }
            let next = tokio::time::timeout_at(watch_until, events.recv()).await;
            let Ok(next) = next else { break None };
            match next {
                Some(ev) if ev.is("CHANNEL_ANSWER") && !answer_seen => {
                    answer_seen = true;
                    let answered = ev
                        .variable("answer_uepoch")
                        .and_then(micros_to_time)
                        .unwrap_or_else(OffsetDateTime::now_utc);
                    let at = answered + time::Duration::seconds(request.time_limit as i64);
                    let _ = inner
                        .services
                        .store
                        .set_scheduled_hangup(&uuid, Some(at))
                        .await;
                }
                Some(ev) if ev.is("CHANNEL_HANGUP_COMPLETE") => break Some(ev),
                Some(_) => {}
                None => break None,
            }
        };
        inner.lock_calls().remove(&uuid);
        let Some(complete) = complete else { return };
        tokio::time::sleep(ANSWERED_RECORD_GRACE).await;
        let services = &inner.services;
        if services.live.contains(&account_id, &uuid) {
            return; // the socket side still runs it and will record it
        }
        if let Ok(Some(_)) = services.store.cdr(&account_id, &uuid).await {
            return;
        }
        tracing::error!(
            "answered call never reached voxbridge's socket (or left no record); closing it out"
        );
        let cause = complete
            .hangup_cause()
            .map(HangupCause::parse_switch)
            .unwrap_or(HangupCause::NORMAL_CLEARING);
        let mut record = base_record(
            &uuid,
            &account_id,
            &request,
            &dest,
            requested_at,
            Some(&complete),
            cause,
        );
        record.answer_time = complete.variable("answer_uepoch").and_then(micros_to_time);
        record.bill_duration_secs = complete
            .variable("billsec")
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        record.hangup_source = HangupSource::Unknown;
        record.hangup_cause_name = crate::call::hangup::NAME_UNKNOWN.into();
        record
            .notes
            .push("answered, but the call's socket never reached voxbridge".into());
        keep(&inner.services, record, &hangup_url, &status_callback_url).await;
    }

    async fn close_unanswered(self, end: Unanswered, complete: Option<&Event>) {
        self.inner.lock_calls().remove(&self.uuid);
        let mut record = base_record(
            &self.uuid,
            &self.account_id,
            &self.request,
            &self.dest,
            self.requested_at,
            complete,
            end.cause,
        );
        record.hangup_source = end.source;
        record.hangup_cause_name = end.name;
        record.notes.extend(end.note);
        tracing::info!(
            call_status = record.call_status(),
            cause = record.hangup_cause.name(),
            source = record.hangup_source.as_str(),
            "outbound call ended unanswered"
        );
        keep(
            &self.inner.services,
            record,
            &self.hangup_url,
            &self.status_callback_url,
        )
        .await;
    }
}

/// Whether a CHANNEL_HANGUP_COMPLETE is of a channel that had been answered.
fn was_answered(ev: &Event) -> bool {
    ev.variable("answer_epoch")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .is_some_and(|v| v > 0)
}

fn cancelled() -> Unanswered {
    Unanswered {
        cause: HangupCause::ORIGINATOR_CANCEL,
        source: HangupSource::Api,
        name: "Cancelled".into(),
        note: None,
    }
}

/// How the switch (the callee's side) ended an unanswered call.
fn switch_ended(cause: HangupCause, text: &str) -> Unanswered {
    let name = match cause {
        HangupCause::USER_BUSY => crate::call::hangup::NAME_BUSY_LINE.to_string(),
        HangupCause::NO_ANSWER | HangupCause::NO_USER_RESPONSE => "No Answer".to_string(),
        HangupCause::ORIGINATOR_CANCEL => "Cancelled".to_string(),
        other => format!("Failed: {}", other.name()),
    };
    Unanswered {
        cause,
        source: HangupSource::Callee,
        name,
        note: Some(format!("originate: {}", text.trim())),
    }
}

/// The record of an outbound call from what the request and the channel's final event
/// say (times, Q.850 code, SIP status); never answered unless the caller sets it.
fn base_record(
    uuid: &str,
    account_id: &str,
    request: &CallRequest,
    dest: &Destination,
    requested_at: OffsetDateTime,
    complete: Option<&Event>,
    cause: HangupCause,
) -> CallRecord {
    let var = |name: &str| complete.and_then(|e| e.variable(name));
    let end_time = var("end_uepoch")
        .and_then(micros_to_time)
        .unwrap_or_else(OffsetDateTime::now_utc);
    let code = var("hangup_cause_q850")
        .and_then(|c| c.trim().parse::<u16>().ok())
        .unwrap_or_else(|| cause.q850());
    let sip_status = var("sip_term_status").and_then(|s| s.trim().parse::<u16>().ok());
    CallRecord {
        call_uuid: uuid.to_string(),
        account_id: account_id.to_string(),
        direction: Direction::Outbound,
        from: request.from.clone(),
        to: dest.display(),
        caller_name: request.caller_name.clone(),
        forwarded_from: None,
        start_time: requested_at,
        answer_time: None,
        end_time,
        duration_secs: (end_time.unix_timestamp() - requested_at.unix_timestamp()).max(0) as u64,
        bill_duration_secs: 0,
        hangup_cause: cause,
        hangup_cause_code: code,
        hangup_cause_name: String::new(),
        hangup_source: HangupSource::Unknown,
        hangup_reason: "completed".into(),
        sip_status,
        caller_abandoned: false,
        notes: Vec::new(),
    }
}

async fn keep(
    services: &CallServices,
    record: CallRecord,
    hangup_url: &str,
    status_callback_url: &str,
) {
    services
        .metrics
        .call_ended(record.hangup_cause.name(), record.hangup_source.as_str());
    let targets = CallbackTargets {
        hangup_url: hangup_url.to_string(),
        status_callback_url: status_callback_url.to_string(),
        post_call: None,
    };
    let callbacks = callbacks::for_call(&record, &targets);
    services.keeper.keep(record, callbacks).await;
}

/// `Event=Ring, CallStatus=ringing` with the parties, as a form (POST) or a query (GET).
fn ring_callback(
    uuid: &str,
    request: &CallRequest,
    dest: &Destination,
    account_id: &str,
    url: &str,
    method: HttpMethod,
) -> NewCallback {
    let delivery_id = callbacks::new_delivery_id();
    let params = [
        ("Event", "Ring".to_string()),
        ("CallUUID", uuid.to_string()),
        ("RequestUUID", uuid.to_string()),
        ("From", request.from.clone()),
        ("To", dest.display()),
        ("CallerName", request.caller_name.clone()),
        ("Direction", "outbound".to_string()),
        ("CallStatus", "ringing".to_string()),
        ("AccountID", account_id.to_string()),
        ("DeliveryID", delivery_id.clone()),
    ];
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &params {
        form.append_pair(k, v);
    }
    let encoded = form.finish();
    match method {
        HttpMethod::Post => NewCallback {
            delivery_id,
            kind: CallbackKind::Ring,
            method,
            url: url.to_string(),
            content_type: Some(FORM_CONTENT_TYPE.to_string()),
            body: encoded.into_bytes(),
        },
        HttpMethod::Get => NewCallback {
            delivery_id,
            kind: CallbackKind::Ring,
            method,
            url: if url.contains('?') {
                format!("{url}&{encoded}")
            } else {
                format!("{url}?{encoded}")
            },
            content_type: None,
            body: Vec::new(),
        },
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
