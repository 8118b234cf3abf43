//! The sans-IO call engine: one state machine per call that decides what happens to the
//! channel, and nothing else (model: str0m / quinn-proto).
//!
//! It owns no socket, no task and no clock, and knows no switch. The driver feeds it
//! [`Input`]s — the channel's events, finished operations, fetched documents, REST
//! commands — each with the current `Instant`, and drains [`Action`]s with
//! [`CallEngine::poll_action`]: fetch a document, run one switch-neutral [`ChannelOp`]
//! (answer, speak, play, wait, send digits, hang up, arm or cancel a scheduled hangup),
//! kill the channel, publish the armed scheduled hangup, and finally [`Action::Finish`]
//! with the call's [`Ending`]. Time follows quinn-proto: the driver sleeps until
//! [`CallEngine::poll_timeout`] and then calls [`CallEngine::handle_timeout`]; the engine
//! keeps its own deadlines, the driver no timer table.
//!
//! ```text
//! driver ── handle(now, Input) ──▶ CallEngine ── poll_action() ──▶ Action ──▶ driver
//!        ── handle_timeout(now) ─▶            ── poll_timeout() ─▶ Instant
//! ```
//!
//! How an operation becomes a command on the wire, and how the switch's reply becomes
//! an [`OpOutcome`], is the driver's (`crate::call::freeswitch` and its `render` module
//! hold the command names, arguments, media paths and TTS voices).
//!
//! # Lifecycle (SPEC §2)
//! `Start` → `Fetch(StartApp)` → `DocumentFetched` → the elements, one operation at a
//! time (`Run`, then wait for its `OpFinished`) → the call ends → the switch reports
//! `ChannelHungUp` and `HangupComplete` → `Finish`. `Finish` is emitted exactly once, at
//! `HangupComplete` or `SocketLost`, and after it every input is answered with
//! [`Reaction::AfterFinish`] and produces nothing.
//!
//! # Decisions the driver must know
//! * **One operation in flight.** The engine sends nothing else to the channel until the
//!   driver reports the running [`ChannelOp`] finished with its [`OpId`].
//! * **Ending the call.** Hangups that come from the document (a Hangup/Reject element, the
//!   end of the document, a document error) are [`ChannelOp::Hangup`]: nothing else is
//!   running then, so it executes at once. Hangups that come from outside the document's
//!   flow (REST API, empty-document timeout) are [`Action::Kill`], which must work even
//!   while a long Play runs. A kill that finds the channel gone
//!   ([`CommandFailure::ChannelGone`]) is a harmless race with a caller hanging up.
//! * **Failed commands are inputs.** A refusal is never taken as "the call is closing":
//!   our hangup operation refused → [`Action::Kill`]; the kill refused →
//!   [`Action::HangupAfterOp`]; that refused too → the engine notes it, stops believing
//!   the call is closing (so a REST hangup or the caller can still end it) and re-arms
//!   the empty-document timer as the backstop that ends it later. Answer refused is a
//!   rule-8 error (nothing that needs an answered call may run), and cancelling the
//!   armed hangups refused keeps the previous document's schedules armed (they are still
//!   in the switch, so a firing one is still recognised and still shown).
//! * **First hangup wins** (SPEC §4 rule 4): after the engine has sent its own hangup or
//!   learned that the channel is down it never sends anything to the channel again; later
//!   Hangups, API requests, timer expiries and fetch results are no-ops.
//! * **Loops** are done here, never by the switch: `loop=N` is N `Run`s, `loop=0`
//!   repeats until the call ends, and a failed or too-short run ends any loop
//!   ([`crate::call::element::repeat`]). Execution then continues with the next element.
//! * **Elements** (SPEC §3) are in [`crate::call::element`], one file each: what each
//!   asks for when the cursor reaches it ([`crate::call::element::Begin`]) and whether it
//!   needs an answered call. Before the first step that does, on an unanswered call,
//!   the engine runs [`ChannelOp::Answer`] and waits for it. Redirect's new document
//!   cancels every scheduled hangup armed by the previous one
//!   ([`ChannelOp::CancelArmedHangups`]) once it has arrived, before its first element:
//!   a document owns its timers.
//! * **No answer URL** for a call is handled as SPEC §4 rule 8 (a document error: 603 if
//!   unanswered, NORMAL_CLEARING if answered, source `Error`).
//! * **Fetch limit**: at most [`MAX_FETCHES_PER_CALL`] fetches (the first included); the
//!   next Redirect is a document error "redirect limit of 100 fetches reached".
//!
//! Attribution of the final outcome is in [`crate::call::hangup`].

use crate::call::element::dial::{self, DialRun};
use crate::call::element::gather::{self, DigitEffect, GatherRun};
use crate::call::element::record::{self, RecordSettings, Recording};
use crate::call::element::{flatten, repeat, Begin, Step};
use crate::call::hangup::{
    self, error_cause, ArmedSchedule, ChannelDown, DocumentHangup, EndFacts, Intent, IntentKind,
};
use crate::cause::HangupCause;
use crate::document::model::{AnswerDocument, Dial, DialMusic, FetchEvent, HttpMethod, PostCall};
use crate::record::call::HangupSource;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The outcome [`Action::Finish`] carries (defined with the attribution rules).
pub use crate::call::hangup::Ending;

/// SPEC §3: at most this many document fetches per call (a redirect-loop guard).
pub const MAX_FETCHES_PER_CALL: u32 = 100;

pub use crate::call::element::repeat::MIN_LOOP_RUN;

pub use crate::call::channel_op::{
    Bridge, BridgeLeg, BridgeOutcome, BridgeReport, ChannelOp, CommandFailure, HangupCommand,
    HungUpBy, OpId, OpOutcome, RecordCaller, RecordEndedBy, RecordFormat, RecordReport,
    RecordingStop, StopRecordings,
};

pub use crate::call::element::DocumentFetch;

/// Why no runnable document came back from a fetch. Both end the call per SPEC §4 rule 8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchFailure {
    /// Nothing usable arrived: unreachable after retries and the fallback URL, an error
    /// status, a wrong content type, too large… The text says which.
    NoDocument(String),
    /// A document arrived but did not parse or validate; the text is the parser's error.
    Invalid(String),
}

impl FetchFailure {
    /// The text recorded in the notes and (shortened) in `HangupCauseName`.
    pub fn message(&self) -> String {
        match self {
            FetchFailure::NoDocument(detail) => format!("no document: {detail}"),
            FetchFailure::Invalid(detail) => format!("invalid document: {detail}"),
        }
    }
}

/// Everything the engine reacts to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The switch handed us the channel; `answered` from the connect reply's
    /// `Answer-State` (`answered` → true; `ringing`/`early` → false).
    Start { answered: bool },
    /// The result of the last [`Action::Fetch`].
    DocumentFetched(Result<AnswerDocument, FetchFailure>),
    /// A [`ChannelOp`] the engine started has finished (or was refused).
    OpFinished { id: OpId, outcome: OpOutcome },
    /// The switch reports the call answered.
    Answered,
    /// A DTMF digit from the caller: counted by a running Gather, else ignored.
    Dtmf(char),
    /// The switch reports the channel down; nothing more may be run on it.
    ChannelHungUp { cause: HangupCause },
    /// The switch's last word on the channel: the cause and which side hung up
    /// (`detail`: the switch's own words for it, for the notes).
    HangupComplete {
        cause: HangupCause,
        hung_up_by: HungUpBy,
        detail: Option<String>,
    },
    /// The connection to the switch closed or failed before its last word.
    SocketLost,
    /// REST `DELETE Call/{uuid}`.
    ApiHangup,
    /// A [`HangupCommand`] did not take effect. (An operation the switch refuses comes
    /// back as [`Input::OpFinished`] with [`OpOutcome::Refused`].)
    CommandFailed {
        command: HangupCommand,
        failure: CommandFailure,
    },
    /// A Dial's destination rang or sent early media (the caller's channel reports the
    /// callee's progress as its own).
    CalleeProgress,
    /// A Dial's callee answered and is bridged to the caller.
    Bridged { b_leg: String },
    /// The [`ChannelOp::Bridge`] with `id` ended (instead of [`Input::OpFinished`]).
    BridgeEnded { id: OpId, report: BridgeReport },
    /// The bridged callee pressed digits that matched a `digitsMatchBLeg` pattern (the
    /// switch matched them; SPEC §11.1).
    CalleeDigits { digits: String },
    /// REST `DELETE Call/{B-leg}`: end only this leg; the caller continues as when a
    /// callee hangs up (SPEC §11.2), or, for a leg still ringing, the other legs ring
    /// on. `NoEffect` when it is no leg of the running Dial, a leg that lost the race,
    /// or the call is already closing.
    ApiHangupLeg { leg_uuid: String },
    /// The [`ChannelOp::Record`] with `id` ended (instead of [`Input::OpFinished`]).
    RecordEnded { id: OpId, report: RecordReport },
    /// A recording's file is complete (the switch reports every recording that stops;
    /// the engine takes those it started in the background).
    RecordingStopped(RecordingStop),
    /// A background recording the engine asked for ([`Action::StartRecording`]) could not
    /// be started by the driver, for `reason`: it is dropped with a CDR note — no file, no
    /// row, no RecordStop.
    RecordingNotStarted { path: String, reason: String },
    /// REST `DELETE Call/{uuid}/Record/`: stop the call's recordings now. `NoEffect`
    /// when none runs.
    ApiStopRecordings,
}

/// What the engine asks the driver to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Fetch a document and feed back [`Input::DocumentFetched`].
    Fetch(DocumentFetch),
    /// Start an operation on the channel and feed back [`Input::OpFinished`] with `id`.
    Run { id: OpId, op: ChannelOp },
    /// Hang the channel up now, even while an operation runs.
    Kill { cause: HangupCause },
    /// Hang the channel up once the operation in progress has returned (the last resort
    /// when [`Action::Kill`] was refused).
    HangupAfterOp { cause: HangupCause },
    /// The earliest armed scheduled hangup is now `after` from now (for the live-call API's
    /// `scheduled_hangup_at`); replaces any earlier value.
    ScheduleArmed { after: Duration },
    /// No scheduled hangup is armed any more.
    ScheduleCleared,
    /// A Dial is over: each of its legs ended so (their CDRs; SPEC §11.2), and, when
    /// the Dial has a `callbackUrl`, each is owed a `DialHangup` there.
    LegsEnded {
        legs: Vec<dial::LegEnding>,
        callback: Option<crate::document::model::Redirect>,
    },
    /// A Dial's callee answered and is bridged: `DialAnswer` then `DialConnected` to the
    /// Dial's `callbackUrl` (SPEC §11.4).
    DialAnswered {
        b_leg: String,
        position: usize,
        to: String,
        callback: crate::document::model::Redirect,
    },
    /// Digits of the caller or of the bridged callee matched a pattern of the Dial:
    /// `DialDigitsMatch` to its `callbackUrl`, after `DialConnected` (SPEC §11.4).
    DialDigitsMatch {
        b_leg: String,
        position: usize,
        to: String,
        digits: String,
        pressed_by: dial::PressedBy,
        callback: crate::document::model::Redirect,
    },
    /// Hang up the Dial's callee `leg_uuid` (not the caller), even while the bridge runs.
    KillLeg { leg_uuid: String },
    /// Stop the call's recordings now, even while an operation runs (see
    /// [`StopRecordings`]); each is then reported as it ends.
    StopRecordings(StopRecordings),
    /// Stop the running operation now (a Gather's barge-in); it then finishes as
    /// usual and is reported with [`Input::OpFinished`]. Nothing queued is dropped.
    Interrupt,
    /// A recording's file is complete: write its row, then (through the outbox) its
    /// `RecordStop` to the callback URL, if any. Its `action`, if any, follows as a
    /// [`Action::Fetch`] or [`Action::Request`] (SPEC §12.2).
    RecordingComplete(Box<record::Completed>),
    /// Start a background recording of the whole call into `path` now, beside the
    /// running operation (`startOnDialAnswer`: the bridge is running when the callee
    /// answers); the switch reports its end with [`Input::RecordingStopped`].
    StartRecording { path: String },
    /// Request the application through the outbox, its response ignored (a Gather or a
    /// Dial with `redirect="false"`, or a Dial's action after the caller hung up): same
    /// parameters as a fetch for `event`, delivered with the outbox's guarantees.
    /// Execution does not wait for it.
    Request(DocumentFetch),
    /// The call is over: write the record. Emitted exactly once.
    Finish(Ending),
}

/// How the engine took an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reaction {
    /// The input changed the call (and may have produced actions).
    Acted,
    /// The input changed nothing: a stale or duplicate event, a wake-up before any
    /// deadline, or a hangup request after the call had already begun to close (first
    /// hangup wins). For `ApiHangup` this means "accepted, the call is already ending"
    /// (HTTP 204).
    NoEffect,
    /// The call has already finished; the input was dropped. For `ApiHangup`: 404.
    AfterFinish,
}

/// Per-call settings, shared by all calls of a server.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineSettings {
    /// SPEC §4 rule 7 (config `app.empty_document_timeout`).
    pub empty_document_timeout: Duration,
    /// Fetch limit per call (SPEC §3); [`MAX_FETCHES_PER_CALL`] in production.
    pub max_fetches: u32,
    /// Where and how recordings are made (config `[record]`).
    pub record: RecordSettings,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            empty_document_timeout: Duration::from_secs(3600),
            max_fetches: MAX_FETCHES_PER_CALL,
            record: RecordSettings::default(),
        }
    }
}

impl EngineSettings {
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            empty_document_timeout: Duration::from_secs(config.app.empty_document_timeout),
            max_fetches: MAX_FETCHES_PER_CALL,
            record: RecordSettings::from_config(&config.record),
        }
    }
}

/// The document being executed: its steps and where the engine is in them.
#[derive(Debug)]
struct RunningDocument {
    steps: Vec<Step>,
    cursor: usize,
    /// Completed repetitions of the media step at `cursor`.
    repetitions: u32,
}

/// Why the engine started the operation in flight: what its outcome means.
#[derive(Clone, Debug)]
enum OpPurpose {
    /// Answering for the step at the cursor, which then runs.
    Answer,
    /// Executing the step at the cursor.
    Step { started: Instant },
    /// Cancelling the previous document's schedules before the new one runs.
    CancelSchedules,
    /// Our own hangup.
    Hangup,
    /// A Dial's bridge ([`CallEngine::dial`] holds its state).
    Dial,
    /// An operation of the running Gather (its flush or a prompt).
    Gather,
    /// A plain Record ([`CallEngine::rec_caller`] holds it); it ends with
    /// [`Input::RecordEnded`].
    Record,
    /// Starting the background recording of `path` (`recordSession`).
    SessionStart { path: String },
}

/// A Dial getting its media documents before its bridge.
#[derive(Debug)]
struct DialPrep {
    dial: Box<Dial>,
    /// The `dialMusic` document's media once fetched (`None`: `real`, or not usable).
    music: Option<Vec<crate::call::channel_op::MediaItem>>,
    music_done: bool,
    /// The `confirmSound` document's media once fetched (`Some(None)`: not usable).
    confirm: Option<Option<Vec<crate::call::channel_op::MediaItem>>>,
}

/// A call waiting for the empty-document timeout (SPEC §4 rule 7).
#[derive(Clone, Copy, Debug)]
struct Parked {
    /// `None`: too far off to represent; never fires.
    until: Option<Instant>,
}

#[derive(Debug)]
struct InFlight {
    id: OpId,
    purpose: OpPurpose,
}

/// The state machine of one call. See the module docs.
#[derive(Debug)]
pub struct CallEngine {
    settings: EngineSettings,
    /// Where the first document comes from, or why the call cannot be served.
    answer_url: Result<String, String>,
    started: bool,
    answered: bool,
    actions: VecDeque<Action>,
    next_id: u64,
    in_flight: Option<InFlight>,
    /// Fetches made so far (the first included).
    fetches: u32,
    /// The event of the fetch awaiting its result.
    fetching: Option<FetchEvent>,
    program: Option<RunningDocument>,
    /// An empty document parked the call (or every way of hanging up was refused):
    /// the call waits for the empty-document timeout. `until: None` is a timeout too
    /// far off to represent, which never fires.
    parked: Option<Parked>,
    /// Schedules armed in the switch by the current document.
    schedules: Vec<ArmedSchedule>,
    /// Schedules of the previous document while their cancel is in flight: one
    /// may still fire before the switch gets to the cancel, and must then be recognised.
    cancelling: Vec<ArmedSchedule>,
    /// Our first decision to end the call.
    intent: Option<Intent>,
    /// When and with what cause the switch reported the channel down.
    down: Option<(Instant, HangupCause)>,
    finished: bool,
    notes: Vec<String>,
    /// The channel's uuid (`DialALegUUID`); empty until the driver names it.
    call_uuid: String,
    /// The Dial in flight.
    dial: Option<DialRun>,
    /// A Dial whose media documents (`dialMusic`, `confirmSound`) are being fetched; its
    /// bridge starts once they are in.
    dial_waiting: Option<DialPrep>,
    /// The last Dial's bridge was ended by the callee with this cause, and nothing has
    /// run since: if the document runs out now, the caller ends with `Callee Hangup`.
    callee_ended: Option<HangupCause>,
    /// The Gather at the cursor, while it runs (SPEC §12.1).
    gather: Option<Box<GatherRun>>,
    /// The plain Record running (SPEC §12.2).
    rec_caller: Option<Recording>,
    /// Background recordings started and not yet reported complete.
    rec_sessions: Vec<Recording>,
    /// A `startOnDialAnswer` recording waiting for the next Dial's answer.
    rec_on_answer: Option<Recording>,
    /// `<api.public_url>/api/v1/Account/<id>/Recording/`: `RecordUrl`s start so.
    recording_url_base: String,
    /// A switch-time instant and its epoch milliseconds, to date recordings.
    wall: Option<(Instant, i64)>,
}

impl CallEngine {
    /// A call whose first document comes from `answer_url` (`None`: no URL could be
    /// resolved for the call, which is a rule-8 error once started).
    pub fn new(settings: EngineSettings, answer_url: Option<String>) -> Self {
        Self::with_answer_url(
            settings,
            answer_url.ok_or_else(|| "no answer URL for this call".to_string()),
        )
    }

    /// A call that cannot be served, for `reason` (e.g. the routing error): once started
    /// it ends per rule 8, and `reason` is what the record's `Error: …` name and notes say.
    pub fn refusing(settings: EngineSettings, reason: impl Into<String>) -> Self {
        Self::with_answer_url(settings, Err(reason.into()))
    }

    fn with_answer_url(settings: EngineSettings, answer_url: Result<String, String>) -> Self {
        Self {
            settings,
            answer_url,
            started: false,
            answered: false,
            actions: VecDeque::new(),
            next_id: 1,
            in_flight: None,
            fetches: 0,
            fetching: None,
            program: None,
            parked: None,
            schedules: Vec::new(),
            cancelling: Vec::new(),
            intent: None,
            down: None,
            finished: false,
            notes: Vec::new(),
            call_uuid: String::new(),
            dial: None,
            dial_waiting: None,
            callee_ended: None,
            gather: None,
            rec_caller: None,
            rec_sessions: Vec::new(),
            rec_on_answer: None,
            recording_url_base: String::new(),
            wall: None,
        }
    }

    /// Where the call's recordings are served: `RecordUrl` is this base followed by
    /// `<RecordingID>.<ext>` (`<api.public_url>/api/v1/Account/<id>/Recording/`).
    pub fn with_recording_urls(mut self, base: impl Into<String>) -> Self {
        self.recording_url_base = base.into();
        self
    }

    /// Ties the engine's instants to the wall clock: `at` is `epoch_ms` (the driver's
    /// reading; the engine itself reads no clock). Recordings' times are dated by it
    /// when the switch does not give its own.
    pub fn with_wall_clock(mut self, at: Instant, epoch_ms: i64) -> Self {
        self.wall = Some((at, epoch_ms));
        self
    }

    /// Epoch milliseconds of `now`, by the wall clock the driver gave (0 without one).
    fn epoch_ms(&self, now: Instant) -> i64 {
        let Some((at, ms)) = self.wall else {
            return 0;
        };
        let signed = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        if now >= at {
            ms.saturating_add(signed(now - at))
        } else {
            ms.saturating_sub(signed(at - now))
        }
    }

    /// Names the channel the engine runs (reported as `DialALegUUID`).
    pub fn for_channel(mut self, call_uuid: impl Into<String>) -> Self {
        self.call_uuid = call_uuid.into();
        self
    }

    /// The legs of the Dial in flight (their uuids), if one runs.
    pub fn dial_legs(&self) -> Vec<String> {
        self.dial
            .as_ref()
            .map(|d| d.bridge.legs.iter().map(|l| l.uuid.clone()).collect())
            .unwrap_or_default()
    }

    /// Whether the call has been answered (CallStatus `in-progress` vs `ringing`).
    pub fn answered(&self) -> bool {
        self.answered
    }

    /// Whether a Gather runs (SPEC §12.1): its prompts are to stop at a digit. A driver
    /// whose switch reports digits only while a command runs (Asterisk's FastAGI) plays
    /// them with interrupt keys then.
    pub fn gathering(&self) -> bool {
        self.gather.is_some() && !self.is_closing()
    }

    /// Whether a Gather listens with no operation running (its prompts are over or were
    /// cut short): digits are awaited until [`CallEngine::poll_timeout`]. On FreeSWITCH
    /// they come as events anyway; on Asterisk the driver must run a command that waits
    /// for them (digits pressed between commands are dropped by the switch).
    pub fn awaiting_digits(&self) -> bool {
        self.gathering() && self.in_flight.is_none()
    }

    /// Whether [`Action::Finish`] has been produced.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether the call is closing: voxbridge sent its hangup or the channel is down.
    pub fn is_closing(&self) -> bool {
        self.intent.is_some() || self.down.is_some() || self.finished
    }

    /// When the earliest armed scheduled hangup is due, if any.
    pub fn scheduled_hangup_due(&self) -> Option<Instant> {
        self.schedules.iter().map(|s| s.due).min()
    }

    /// Fetches made so far.
    pub fn fetch_count(&self) -> u32 {
        self.fetches
    }

    /// The next action, in order; `None` when there is nothing to do until more input.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When the engine next wants [`CallEngine::handle_timeout`] called (quinn-proto's
    /// shape): the empty-document timeout of a parked call. `None`: no deadline; wait
    /// for input. The driver sleeps until then in the same loop that reads the switch.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.finished || self.is_closing() {
            return None;
        }
        let gather = self.gather.as_ref().and_then(|g| g.deadline());
        let parked = self.parked.and_then(|p| p.until);
        gather.into_iter().chain(parked).min()
    }

    /// Time has reached `now`: acts on every deadline that is due (SPEC §4 rule 7: a
    /// parked call is killed with `ALLOTTED_TIMEOUT`). Early or repeated calls are
    /// harmless and answer [`Reaction::NoEffect`].
    pub fn handle_timeout(&mut self, now: Instant) -> Reaction {
        if self.finished {
            return Reaction::AfterFinish;
        }
        match self.poll_timeout() {
            Some(due) if due <= now => {}
            _ => return Reaction::NoEffect,
        }
        if let Some(g) = self.gather.as_mut() {
            if g.timeout(now) {
                self.after_gather_input(now);
                return Reaction::Acted;
            }
        }
        if self
            .parked
            .is_none_or(|p| p.until.is_none_or(|until| until > now))
        {
            return Reaction::NoEffect;
        }
        self.parked = None;
        self.intent = Some(Intent {
            at: now,
            kind: IntentKind::EmptyDocumentTimeout,
        });
        self.actions.push_back(Action::Kill {
            cause: HangupCause::ALLOTTED_TIMEOUT,
        });
        Reaction::Acted
    }

    /// Feeds one input at time `now`.
    pub fn handle(&mut self, now: Instant, input: Input) -> Reaction {
        if self.finished {
            return Reaction::AfterFinish;
        }
        if let Input::Bridged { .. } = &input {
            self.start_on_dial_answer(now);
        }
        if let Some(reaction) = self.dial_input(now, &input) {
            return reaction;
        }
        match input {
            Input::Start { answered } => self.on_start(now, answered),
            Input::DocumentFetched(result) => self.on_document(now, result),
            Input::OpFinished { id, outcome } => self.on_op_finished(now, id, outcome),
            Input::Answered => {
                if self.answered {
                    return Reaction::NoEffect;
                }
                self.answered = true;
                Reaction::Acted
            }
            Input::Dtmf(digit) => self.on_digit(now, digit),
            Input::ChannelHungUp { cause } => {
                if self.down.is_some() {
                    return Reaction::NoEffect;
                }
                self.down = Some((now, cause));
                self.unpark();
                Reaction::Acted
            }
            Input::HangupComplete {
                cause,
                hung_up_by,
                detail,
            } => {
                let at = match self.down {
                    Some((at, _)) => at,
                    None => {
                        self.down = Some((now, cause));
                        now
                    }
                };
                self.unpark();
                self.recordings_at_end(now);
                let ending = hangup::attribute(
                    self.facts(),
                    ChannelDown {
                        at,
                        cause,
                        hung_up_by,
                        detail: detail.as_deref(),
                    },
                );
                self.finish(ending);
                Reaction::Acted
            }
            Input::SocketLost => {
                self.unpark();
                self.recordings_at_end(now);
                let down = self.down;
                let ending = hangup::attribute_socket_lost(self.facts(), down);
                self.finish(ending);
                Reaction::Acted
            }
            Input::ApiHangup => {
                if self.is_closing() {
                    return Reaction::NoEffect;
                }
                self.unpark();
                self.intent = Some(Intent {
                    at: now,
                    kind: IntentKind::Api,
                });
                self.actions.push_back(Action::Kill {
                    cause: HangupCause::NORMAL_CLEARING,
                });
                Reaction::Acted
            }
            Input::CommandFailed { command, failure } => {
                self.on_command_failed(now, command, failure)
            }
            // Without a Dial in flight (dial_input took them otherwise): stale.
            Input::CalleeProgress
            | Input::Bridged { .. }
            | Input::CalleeDigits { .. }
            | Input::BridgeEnded { .. }
            | Input::ApiHangupLeg { .. } => Reaction::NoEffect,
            Input::RecordEnded { id, report } => self.on_record_ended(now, id, report),
            Input::RecordingStopped(stop) => self.on_recording_stopped(now, stop),
            Input::RecordingNotStarted { path, reason } => {
                let Some(i) = self.rec_sessions.iter().position(|r| r.path == path) else {
                    return Reaction::NoEffect;
                };
                let rec = self.rec_sessions.remove(i);
                let note = format!(
                    "Record {}: the switch did not start the recording: {}; nothing recorded",
                    rec.recording_id,
                    reason.trim()
                );
                tracing::warn!("{note}");
                self.notes.push(note);
                Reaction::Acted
            }
            Input::ApiStopRecordings => self.on_api_stop_recordings(),
        }
    }

    /// The Dial's share of an input: `Some` when the input was the Dial's alone. Digits
    /// are watched (hangupOnStar) and passed on.
    fn dial_input(&mut self, now: Instant, input: &Input) -> Option<Reaction> {
        let closing = self.is_closing();
        let run = self.dial.as_mut()?;
        match input {
            Input::CalleeProgress => {
                run.rang = true;
                Some(Reaction::Acted)
            }
            Input::Bridged { b_leg } => {
                run.rang = true;
                run.bridged = Some(b_leg.clone());
                let leg = run.bridge.legs.iter().position(|l| l.uuid == *b_leg);
                if let (Some(callback), Some(i)) = (run.dial.callback.clone(), leg) {
                    self.actions.push_back(Action::DialAnswered {
                        b_leg: b_leg.clone(),
                        position: i + 1,
                        to: run.bridge.legs[i].target.as_str().to_string(),
                        callback,
                    });
                }
                Some(Reaction::Acted)
            }
            Input::Dtmf(digit) => {
                if let Some(digits) = run.on_caller_digit(*digit) {
                    let matched = Self::digits_matched(run, digits, dial::PressedBy::ALeg);
                    self.actions.extend(matched);
                }
                None
            }
            Input::CalleeDigits { digits } => {
                if run.bridged.is_none() {
                    return Some(Reaction::NoEffect);
                }
                let matched = Self::digits_matched(run, digits.clone(), dial::PressedBy::BLeg);
                self.actions.extend(matched);
                Some(Reaction::Acted)
            }
            Input::ApiHangupLeg { leg_uuid } => {
                if closing || !run.has_leg(leg_uuid) {
                    return Some(Reaction::NoEffect);
                }
                match run.bridged.as_deref() {
                    Some(b) if b == leg_uuid => {
                        run.cut.get_or_insert(dial::BridgeCut::ApiOnCallee);
                    }
                    // Another leg won: this one is gone already (LOSE_RACE).
                    Some(_) => return Some(Reaction::NoEffect),
                    // It still rings (it is listed live): only it ends; the others
                    // ring on, and with none left the bridge fails (the real switch:
                    // NORMAL_CLEARING at once, DialStatus `failed`).
                    None => {
                        if run.api_cut_legs.contains(leg_uuid) {
                            return Some(Reaction::NoEffect);
                        }
                        run.api_cut_legs.push(leg_uuid.clone());
                    }
                }
                self.actions.push_back(Action::KillLeg {
                    leg_uuid: leg_uuid.clone(),
                });
                Some(Reaction::Acted)
            }
            Input::BridgeEnded { id, report } => {
                if run.op != *id {
                    return Some(Reaction::NoEffect);
                }
                if self.in_flight.as_ref().is_some_and(|f| f.id == *id) {
                    self.in_flight = None;
                }
                self.dial_ended(now, Some(report));
                Some(Reaction::Acted)
            }
            _ => None,
        }
    }

    /// A `digitsMatch` / `digitsMatchBLeg` match during the bridge: logged, and posted
    /// to the Dial's `callbackUrl` when it has one.
    fn digits_matched(
        run: &DialRun,
        digits: String,
        pressed_by: dial::PressedBy,
    ) -> Option<Action> {
        let (b_leg, position, to) = run.bridged_leg()?;
        tracing::info!(by = pressed_by.as_str(), %digits, %b_leg, "dial digits matched");
        let callback = run.dial.callback.clone()?;
        Some(Action::DialDigitsMatch {
            b_leg,
            position,
            to,
            digits,
            pressed_by,
            callback,
        })
    }

    /// The Dial in flight is over (`report`: the switch's account of it; `None` when the
    /// switch refused the bridge or the call ended first). Decides what follows.
    fn dial_ended(&mut self, now: Instant, report: Option<&BridgeReport>) {
        let Some(run) = self.dial.take() else {
            return;
        };
        let caller_gone = self.down.is_some() || self.intent.is_some();
        let end = dial::end(&run, report, caller_gone);
        tracing::info!(
            status = end.status.as_str(),
            b_leg = end.b_leg.as_deref().unwrap_or(""),
            cause = end.hangup_cause.map(|c| c.name()).unwrap_or(""),
            "dial ended"
        );
        let action = dial::action_request(&run, &end, &self.call_uuid);
        let legs = dial::leg_endings(&run, report, self.caller_side());
        self.actions.push_back(Action::LegsEnded {
            legs,
            callback: run.dial.callback.clone(),
        });
        if caller_gone || self.is_closing() {
            // SPEC §11.4: the caller hung up — the action is still requested, its
            // response ignored.
            if let Some(request) = action {
                self.actions.push_back(Action::Request(request));
            }
            return;
        }
        self.skip_step();
        match action {
            Some(request) if run.dial.redirect => {
                self.fetch(now, request);
                return;
            }
            Some(request) => self.actions.push_back(Action::Request(request)),
            None => {}
        }
        self.callee_ended = end.callee_ended;
        self.advance(now);
    }

    /// Starts a Dial: first its `confirmSound` document, if it has one (SPEC §11.1), then
    /// the bridge.
    fn start_dial(&mut self, now: Instant, dial: Box<Dial>) {
        self.prepare_dial(
            now,
            DialPrep {
                dial,
                music: None,
                music_done: false,
                confirm: None,
            },
        );
    }

    /// Fetches the Dial's next media document (`dialMusic`, then `confirmSound`), or,
    /// with all of them in, starts its bridge.
    fn prepare_dial(&mut self, now: Instant, prep: DialPrep) {
        if let (DialMusic::Document(url), false) = (&prep.dial.dial_music, prep.music_done) {
            let request = dial::dial_music_request(url);
            self.dial_waiting = Some(prep);
            self.fetch(now, request);
            return;
        }
        if let (Some(url), None) = (&prep.dial.confirm_sound, &prep.confirm) {
            let request = dial::confirm_sound_request(url);
            self.dial_waiting = Some(prep);
            self.fetch(now, request);
            return;
        }
        self.start_bridge(prep);
    }

    /// A media document of the Dial is in (or not): the Dial goes on either way. One
    /// that cannot be had or used is logged and noted on the call's record; then
    /// `dialMusic` falls back to `real` (the callees' own ringback), and the callee of a
    /// `confirmSound` hears silence — with a `confirmKey` it must still press the key:
    /// the document's author asked for a confirmation, so a broken prompt must not let
    /// every callee through unasked.
    fn on_dial_media(
        &mut self,
        now: Instant,
        event: &FetchEvent,
        result: Result<AnswerDocument, FetchFailure>,
    ) {
        let Some(mut prep) = self.dial_waiting.take() else {
            return;
        };
        let media = match result
            .map_err(|f| f.message())
            .and_then(|doc| dial::media_items(&doc))
        {
            Ok(items) => Some(items),
            Err(why) => {
                let (what, fallback) = match event {
                    FetchEvent::DialMusic => ("dialMusic", "the callees' own ringback plays"),
                    _ => ("confirmSound", "the callee hears silence"),
                };
                let note = format!("Dial {what} not used: {why}; {fallback}");
                tracing::warn!("{note}");
                self.notes.push(note);
                None
            }
        };
        match event {
            FetchEvent::DialMusic => {
                prep.music = media;
                prep.music_done = true;
            }
            _ => prep.confirm = Some(media),
        }
        self.prepare_dial(now, prep);
    }

    /// Runs the Dial's bridge: the operation in flight until it ends.
    fn start_bridge(&mut self, prep: DialPrep) {
        let id = OpId(self.next_id());
        let key = prep.dial.confirm_key;
        let mut run = DialRun::new(*prep.dial, id, || uuid::Uuid::new_v4().to_string());
        run.bridge.confirm = prep.confirm.map(|media| dial::confirm(media, key));
        run.bridge.music = prep.music;
        let op = ChannelOp::Bridge(run.bridge.clone());
        self.dial = Some(run);
        self.in_flight = Some(InFlight {
            id,
            purpose: OpPurpose::Dial,
        });
        self.actions.push_back(Action::Run { id, op });
    }

    fn on_start(&mut self, now: Instant, answered: bool) -> Reaction {
        if self.started {
            return Reaction::NoEffect;
        }
        self.started = true;
        self.answered |= answered;
        match self.answer_url.clone() {
            Ok(url) => self.fetch(
                now,
                DocumentFetch {
                    url,
                    method: HttpMethod::Post,
                    event: FetchEvent::StartApp,
                },
            ),
            Err(reason) => self.fail(now, reason),
        }
        Reaction::Acted
    }

    fn on_document(
        &mut self,
        now: Instant,
        result: Result<AnswerDocument, FetchFailure>,
    ) -> Reaction {
        let Some(event) = self.fetching.take() else {
            return Reaction::NoEffect;
        };
        if self.is_closing() {
            return Reaction::NoEffect;
        }
        if matches!(event, FetchEvent::DialConfirmSound | FetchEvent::DialMusic) {
            self.on_dial_media(now, &event, result);
            return Reaction::Acted;
        }
        let doc = match result {
            Ok(doc) => doc,
            Err(failure) => {
                self.fail(now, failure.message());
                return Reaction::Acted;
            }
        };
        self.callee_ended = None;
        self.program = Some(RunningDocument {
            steps: flatten(doc),
            cursor: 0,
            repetitions: 0,
        });
        if !self.schedules.is_empty() {
            // A document owns its timers: drop the previous one's before this one runs.
            self.cancelling = std::mem::take(&mut self.schedules);
            self.run(ChannelOp::CancelArmedHangups, OpPurpose::CancelSchedules);
            self.actions.push_back(Action::ScheduleCleared);
            return Reaction::Acted;
        }
        self.advance(now);
        Reaction::Acted
    }

    fn on_op_finished(&mut self, now: Instant, id: OpId, outcome: OpOutcome) -> Reaction {
        let Some(flight) = self.in_flight.take_if(|f| f.id == id) else {
            return Reaction::NoEffect;
        };
        if let OpOutcome::Refused(reason) = &outcome {
            if self.down.is_none() {
                if let Some(reaction) = self.on_op_refused(now, &flight.purpose, reason) {
                    return reaction;
                }
            }
        }
        if self.is_closing() {
            // The channel is going or gone (e.g. the caller hung up mid-Speak and this is
            // the interrupted Speak's completion): nothing more is executed.
            return Reaction::Acted;
        }
        match flight.purpose {
            OpPurpose::Answer => self.answered = true,
            OpPurpose::CancelSchedules => {
                for s in std::mem::take(&mut self.cancelling) {
                    if let Some(pc) = s.post_call {
                        self.notes.push(format!(
                            "scheduled Hangup (+{} s) cancelled by Redirect; its postCallUrl {} is not called",
                            s.secs, pc.url
                        ));
                    }
                }
            }
            OpPurpose::Hangup => {}
            OpPurpose::Step { started } => self.step_completed(now, started, &outcome),
            OpPurpose::Dial => {
                // Only a refusal comes this way (a bridge ends with BridgeEnded).
                if let OpOutcome::Refused(reason) | OpOutcome::Failed(reason) = &outcome {
                    self.notes.push(format!(
                        "Dial: the switch did not bridge: {}",
                        reason.trim()
                    ));
                }
                self.dial_ended(now, None);
                return Reaction::Acted;
            }
            OpPurpose::Record => {
                // A report comes as RecordEnded; this is a refusal or a failure (or a
                // driver that cannot report): the Record is over without a file we
                // know of, or with what the engine knows.
                if let Some(rec) = self.rec_caller.take() {
                    match &outcome {
                        OpOutcome::Refused(reason) | OpOutcome::Failed(reason) => {
                            let note = format!(
                                "Record {}: the switch did not record: {}",
                                rec.recording_id,
                                reason.trim()
                            );
                            tracing::warn!("{note}");
                            self.notes.push(note);
                        }
                        OpOutcome::Completed => {
                            let done = record::unreported(
                                rec,
                                now,
                                self.epoch_ms(now),
                                &self.recording_url_base,
                            );
                            self.recording_done(now, done, true);
                            return Reaction::Acted;
                        }
                    }
                }
                self.skip_step();
            }
            OpPurpose::SessionStart { path } => {
                if let OpOutcome::Refused(reason) | OpOutcome::Failed(reason) = &outcome {
                    self.rec_sessions.retain(|r| r.path != path);
                    let note = format!(
                        "Record recordSession: the switch did not start the recording: {}",
                        reason.trim()
                    );
                    tracing::warn!("{note}");
                    self.notes.push(note);
                }
                self.skip_step();
            }
            OpPurpose::Gather => {
                let Some(g) = self.gather.as_mut() else {
                    return Reaction::Acted;
                };
                match g.op_finished(now, &outcome, &mut self.notes) {
                    gather::Next::Run(op) => self.run(op, OpPurpose::Gather),
                    gather::Next::Listen => {}
                    gather::Next::Done(outcome) => self.gather_done(now, outcome),
                }
                return Reaction::Acted;
            }
        }
        self.advance(now);
        Reaction::Acted
    }

    /// A DTMF digit: counted by the running Gather, else ignored (a digit pressed when
    /// no Gather listens is not kept for a later one, SPEC §12.1).
    fn on_digit(&mut self, now: Instant, digit: char) -> Reaction {
        if self.is_closing() {
            return Reaction::NoEffect;
        }
        let Some(g) = self.gather.as_mut() else {
            tracing::debug!("DTMF received (no Gather active)");
            return Reaction::NoEffect;
        };
        match g.digit(now, digit) {
            DigitEffect::Ignored => Reaction::NoEffect,
            DigitEffect::Counted { interrupt } => {
                if interrupt && self.in_flight.is_some() {
                    // Barge-in: the prompt stops now; its completion comes back as usual.
                    self.actions.push_back(Action::Interrupt);
                }
                self.after_gather_input(now);
                Reaction::Acted
            }
        }
    }

    /// The Gather may have a complete input: act on it unless one of its operations
    /// is still running (its completion hands the outcome over then).
    fn after_gather_input(&mut self, now: Instant) {
        if self.in_flight.is_some() {
            return;
        }
        if let Some(outcome) = self.gather.as_mut().and_then(|g| g.take_complete()) {
            self.gather_done(now, outcome);
        }
    }

    /// SPEC §12.1: with digits, request `action` (its document next, or through the
    /// outbox and go on); no input: go on with the next element, no request.
    fn gather_done(&mut self, now: Instant, outcome: gather::Outcome) {
        self.gather = None;
        tracing::info!("{}", outcome.note);
        self.notes.push(outcome.note);
        self.skip_step();
        if !outcome.digits.is_empty() {
            let request = DocumentFetch {
                url: outcome.action,
                method: outcome.method,
                event: FetchEvent::Gather {
                    digits: outcome.digits,
                },
            };
            if outcome.redirect {
                self.fetch(now, request);
                return;
            }
            self.actions.push_back(Action::Request(request));
        }
        self.advance(now);
    }

    /// The switch refused an operation while the channel is up. `None`: no special
    /// handling, the refusal is read like any other failure.
    fn on_op_refused(
        &mut self,
        now: Instant,
        purpose: &OpPurpose,
        reply: &str,
    ) -> Option<Reaction> {
        let reply = reply.trim();
        match purpose {
            OpPurpose::Hangup => {
                let cause = self.intent.as_ref()?.kind.cause();
                self.notes.push(format!(
                    "the switch did not execute hangup ({reply}); killing the channel"
                ));
                self.actions.push_back(Action::Kill { cause });
                Some(Reaction::Acted)
            }
            OpPurpose::Answer => {
                self.fail(now, format!("the switch did not answer the call: {reply}"));
                Some(Reaction::Acted)
            }
            OpPurpose::CancelSchedules => {
                let kept = std::mem::take(&mut self.cancelling);
                self.notes.push(format!(
                    "cancelling the armed hangups refused ({reply}); {} scheduled hangup(s) of the previous document stay armed",
                    kept.len()
                ));
                self.schedules.extend(kept);
                if let Some(due) = self.scheduled_hangup_due() {
                    self.actions.push_back(Action::ScheduleArmed {
                        after: due.saturating_duration_since(now),
                    });
                }
                self.advance(now);
                Some(Reaction::Acted)
            }
            OpPurpose::Step { .. }
            | OpPurpose::Dial
            | OpPurpose::Gather
            | OpPurpose::Record
            | OpPurpose::SessionStart { .. } => None,
        }
    }

    /// A kill or hangup the switch refused (see the module docs).
    fn on_command_failed(
        &mut self,
        now: Instant,
        command: HangupCommand,
        failure: CommandFailure,
    ) -> Reaction {
        if self.down.is_some() || self.intent.is_none() {
            return Reaction::NoEffect;
        }
        let reply = match &failure {
            // The channel is already gone; its hangup events (or the socket's end) follow.
            CommandFailure::ChannelGone => return Reaction::NoEffect,
            CommandFailure::Refused(reply) => reply.trim(),
        };
        let Some(cause) = self.intent.as_ref().map(|i| i.kind.cause()) else {
            return Reaction::NoEffect;
        };
        match command {
            HangupCommand::Kill => {
                self.notes.push(format!(
                    "the kill was refused ({reply}); hanging up after the running operation instead"
                ));
                self.actions.push_back(Action::HangupAfterOp { cause });
            }
            HangupCommand::HangupAfterOp => {
                self.notes.push(format!(
                    "the switch refused every way of hanging up ({reply}); the call stays up until the caller, the REST API or the empty-document timeout ends it"
                ));
                tracing::error!(reply, "the switch refused to hang the call up");
                self.intent = None;
                self.park(now);
            }
        }
        Reaction::Acted
    }

    /// The step at the cursor finished one run; move on (or repeat it).
    fn step_completed(&mut self, now: Instant, started: Instant, outcome: &OpOutcome) {
        let Some(program) = self.program.as_mut() else {
            return;
        };
        let Some(step) = program.steps.get(program.cursor) else {
            return;
        };
        let Some((loop_count, what)) = step.repetition() else {
            program.cursor += 1;
            return;
        };
        program.repetitions += 1;
        let took = now.saturating_duration_since(started);
        let over = repeat::after_run(
            &what,
            loop_count,
            program.repetitions,
            outcome,
            took,
            &mut self.notes,
        );
        if over {
            program.cursor += 1;
            program.repetitions = 0;
        }
    }

    /// Runs the document from the cursor until an operation is in flight, a fetch is
    /// pending, the call is parked, or the call is closing.
    fn advance(&mut self, now: Instant) {
        loop {
            if self.is_closing()
                || self.in_flight.is_some()
                || self.fetching.is_some()
                || self.parked.is_some()
                || self.gather.is_some()
            {
                return;
            }
            let Some(program) = self.program.as_ref() else {
                return;
            };
            let Some(step) = program.steps.get(program.cursor).cloned() else {
                if program.steps.is_empty() {
                    self.park(now);
                } else {
                    self.end_of_document(now);
                }
                return;
            };
            if step.needs_answer() && !self.answered {
                self.run(ChannelOp::Answer, OpPurpose::Answer);
                return;
            }
            let purpose = OpPurpose::Step { started: now };
            self.callee_ended = None;
            match step.begin(self.answered) {
                Begin::Skip => {
                    self.skip_step();
                    continue;
                }
                Begin::Run(op) => self.run(op, purpose),
                Begin::ArmHangup {
                    secs,
                    hangup,
                    post_call,
                } => self.arm_schedule(now, secs, hangup, post_call, purpose),
                Begin::HangUp {
                    hangup,
                    post_call,
                    note,
                } => {
                    if let Some(note) = note {
                        tracing::warn!("{note}");
                        self.notes.push(note);
                    }
                    self.hang_up(now, hangup, post_call);
                }
                Begin::Fetch(request) => self.fetch(now, request),
                Begin::Dial(dial) => self.start_dial(now, dial),
                Begin::Gather(run, op) => {
                    self.gather = Some(run);
                    self.run(op, OpPurpose::Gather);
                }
                Begin::Record(r) => {
                    if self.start_record(now, *r) {
                        self.skip_step();
                        continue;
                    }
                }
            }
            return;
        }
    }

    /// A Record element starts (SPEC §12.2, [`record::start`]). `true`: nothing runs,
    /// go on with the next step (a recording armed for the next Dial's answer).
    fn start_record(&mut self, now: Instant, r: crate::document::model::Record) -> bool {
        match record::start(r, &self.settings.record, &mut self.notes) {
            record::Start::Caller(mut rec, op) => {
                rec.started = Some(now);
                self.rec_caller = Some(rec);
                self.run(op, OpPurpose::Record);
                false
            }
            record::Start::Session(mut rec, op) => {
                rec.started = Some(now);
                let path = rec.path.clone();
                self.rec_sessions.push(rec);
                self.run(op, OpPurpose::SessionStart { path });
                false
            }
            record::Start::OnDialAnswer(rec) => {
                if let Some(old) = self.rec_on_answer.replace(rec) {
                    self.notes.push(format!(
                        "Record startOnDialAnswer {}: replaced by a later one before any Dial answered",
                        old.recording_id
                    ));
                }
                true
            }
        }
    }

    /// A Dial's callee answered: a recording armed for it starts now.
    fn start_on_dial_answer(&mut self, now: Instant) {
        if self.dial.is_none() || self.is_closing() {
            return;
        }
        let Some(mut rec) = self.rec_on_answer.take() else {
            return;
        };
        rec.started = Some(now);
        tracing::info!(recording_id = %rec.recording_id, "the Dial's callee answered: recording the call");
        self.actions.push_back(Action::StartRecording {
            path: rec.path.clone(),
        });
        self.rec_sessions.push(rec);
    }

    /// The plain Record's report: its file is complete.
    fn on_record_ended(&mut self, now: Instant, id: OpId, report: RecordReport) -> Reaction {
        let ours = self
            .in_flight
            .as_ref()
            .is_some_and(|f| f.id == id && matches!(f.purpose, OpPurpose::Record));
        if !ours {
            return Reaction::NoEffect;
        }
        self.in_flight = None;
        let Some(rec) = self.rec_caller.take() else {
            return Reaction::Acted;
        };
        let down = self.down.is_some() || self.intent.is_some();
        let done = record::caller_ended(
            rec,
            &report,
            down,
            self.epoch_ms(now),
            &self.recording_url_base,
        );
        let live = !self.is_closing();
        self.recording_done(now, done, live);
        Reaction::Acted
    }

    /// A background recording's file is complete (others' stops are not ours).
    fn on_recording_stopped(&mut self, now: Instant, stop: RecordingStop) -> Reaction {
        let Some(i) = self.rec_sessions.iter().position(|r| r.path == stop.path) else {
            return Reaction::NoEffect;
        };
        let rec = self.rec_sessions.remove(i);
        let done =
            record::session_stopped(rec, &stop, self.epoch_ms(now), &self.recording_url_base);
        let live = !self.is_closing();
        self.recording_done(now, done, live);
        Reaction::Acted
    }

    /// REST `DELETE Call/{uuid}/Record/`: every recording running stops now; one armed
    /// for a Dial's answer is dropped.
    fn on_api_stop_recordings(&mut self) -> Reaction {
        if self.is_closing() {
            return Reaction::NoEffect;
        }
        let mut acted = false;
        if let Some(armed) = self.rec_on_answer.take() {
            self.notes.push(format!(
                "Record startOnDialAnswer {}: stopped through the REST API before any Dial answered; nothing recorded",
                armed.recording_id
            ));
            acted = true;
        }
        let caller = match self.rec_caller.as_mut() {
            Some(rec) if !rec.stop_requested => {
                rec.stop_requested = true;
                true
            }
            _ => false,
        };
        let sessions: Vec<String> = self
            .rec_sessions
            .iter_mut()
            .filter(|r| !r.stop_requested)
            .map(|r| {
                r.stop_requested = true;
                r.path.clone()
            })
            .collect();
        if !caller && sessions.is_empty() {
            return if acted {
                Reaction::Acted
            } else {
                Reaction::NoEffect
            };
        }
        tracing::info!(
            caller,
            sessions = sessions.len(),
            "stopping the call's recordings (REST)"
        );
        self.actions
            .push_back(Action::StopRecordings(StopRecordings { sessions, caller }));
        Reaction::Acted
    }

    /// A recording is complete: its row and RecordStop, then its action (SPEC §12.2).
    /// A plain Record's step is over; with `redirect="true"` on a live call the action's
    /// response is the next document.
    /// `live`: the call can still run a document (not at its end, not closing).
    fn recording_done(&mut self, now: Instant, done: record::Completed, live: bool) {
        let note = format!(
            "Record {} ({}) ended by {}: {} ms{}",
            done.facts.recording_id,
            done.kind.as_str(),
            done.facts.end_reason,
            done.facts.duration_ms,
            if done.facts.digits.is_empty() {
                String::new()
            } else {
                format!(", key {}", done.facts.digits)
            }
        );
        tracing::info!("{note}");
        self.notes.push(note);
        let plain = done.kind == crate::store::RecordingKind::Caller;
        let action = done.action.clone();
        let facts = done.facts.clone();
        self.actions
            .push_back(Action::RecordingComplete(Box::new(done)));
        let request = action.map(|(url, method, redirect)| {
            (
                DocumentFetch {
                    url,
                    method,
                    event: FetchEvent::Record(Box::new(facts)),
                },
                redirect,
            )
        });
        if !plain || !live || self.is_closing() {
            if let Some((request, _)) = request {
                self.actions.push_back(Action::Request(request));
            }
            return;
        }
        self.skip_step();
        match request {
            Some((request, true)) => {
                self.fetch(now, request);
                return;
            }
            Some((request, false)) => self.actions.push_back(Action::Request(request)),
            None => {}
        }
        self.advance(now);
    }

    /// The call is over: recordings the switch never reported are completed with what
    /// the engine knows; one still armed for a Dial recorded nothing.
    fn recordings_at_end(&mut self, now: Instant) {
        if let Some(armed) = self.rec_on_answer.take() {
            self.notes.push(format!(
                "Record startOnDialAnswer {}: no Dial was answered; nothing recorded",
                armed.recording_id
            ));
        }
        let mut left: Vec<Recording> = self.rec_sessions.drain(..).collect();
        if let Some(rec) = self.rec_caller.take() {
            left.push(rec);
        }
        for rec in left {
            self.notes.push(format!(
                "Record {}: the switch did not report the end of the file; completed at the call's end with voxbridge's own times",
                rec.recording_id
            ));
            let done = record::unreported(rec, now, self.epoch_ms(now), &self.recording_url_base);
            self.recording_done(now, done, false);
        }
    }

    fn dial_ended_at_finish(&mut self) {
        if let Some(waiting) = self.dial_waiting.take() {
            // Ended while its media documents were fetched: no leg was ever rung, but
            // the action is owed as for any Dial the caller left (`cancel`).
            let run = DialRun::new(*waiting.dial, OpId(0), String::new);
            let end = dial::end(&run, None, true);
            if let Some(request) = dial::action_request(&run, &end, &self.call_uuid) {
                self.actions.push_back(Action::Request(request));
            }
            return;
        }
        let Some(run) = self.dial.take() else {
            return;
        };
        let end = dial::end(&run, None, true);
        let legs = dial::leg_endings(
            &run,
            None,
            self.caller_side().or(Some(HangupSource::Caller)),
        );
        self.actions.push_back(Action::LegsEnded {
            legs,
            callback: run.dial.callback.clone(),
        });
        if let Some(request) = dial::action_request(&run, &end, &self.call_uuid) {
            self.actions.push_back(Action::Request(request));
        }
    }

    /// How the caller's side ended a Dial's legs, if it did (SPEC §11.2–11.3): `API`
    /// for a REST hangup of the caller, `Caller` for any other end of the caller.
    fn caller_side(&self) -> Option<HangupSource> {
        if let Some(intent) = &self.intent {
            return Some(match intent.kind {
                IntentKind::Api => HangupSource::Api,
                _ => HangupSource::Caller,
            });
        }
        self.down.map(|_| HangupSource::Caller)
    }

    fn skip_step(&mut self) {
        if let Some(p) = self.program.as_mut() {
            p.cursor += 1;
            p.repetitions = 0;
        }
    }

    /// SPEC §4 rule 3: arm a hangup in N seconds with the cause and continue with the next element
    /// once the switch has taken it. A scheduled Hangup is never "first".
    fn arm_schedule(
        &mut self,
        now: Instant,
        secs: u32,
        acted: DocumentHangup,
        post_call: Option<PostCall>,
        purpose: OpPurpose,
    ) {
        self.schedules.push(ArmedSchedule {
            due: now + Duration::from_secs(u64::from(secs)),
            secs,
            hangup: acted,
            post_call,
        });
        self.run(
            ChannelOp::ArmHangup {
                after: Duration::from_secs(u64::from(secs)),
                cause: acted.cause,
            },
            purpose,
        );
        if let Some(due) = self.scheduled_hangup_due() {
            self.actions.push_back(Action::ScheduleArmed {
                after: due.saturating_duration_since(now),
            });
        }
    }

    /// SPEC §4 rules 1–2: end the call now with the document's cause, without answering.
    fn hang_up(&mut self, now: Instant, acted: DocumentHangup, post_call: Option<PostCall>) {
        self.intent = Some(Intent {
            at: now,
            kind: IntentKind::Document {
                hangup: acted,
                post_call,
            },
        });
        self.run(ChannelOp::Hangup { cause: acted.cause }, OpPurpose::Hangup);
    }

    /// SPEC §4 rule 6 — or, right after a bridge the callee ended, SPEC §11.4: the
    /// caller ends with the callee's cause as `Callee Hangup`.
    fn end_of_document(&mut self, now: Instant) {
        let kind = match self.callee_ended.take() {
            Some(cause) => IntentKind::CalleeHangup { cause },
            None => IntentKind::EndOfDocument,
        };
        let cause = kind.cause();
        self.intent = Some(Intent { at: now, kind });
        self.run(ChannelOp::Hangup { cause }, OpPurpose::Hangup);
    }

    /// SPEC §4 rule 7: stay parked; only the timeout, the API or the caller end it.
    fn park(&mut self, now: Instant) {
        self.parked = Some(Parked {
            until: now.checked_add(self.settings.empty_document_timeout),
        });
    }

    fn unpark(&mut self) {
        self.parked = None;
    }

    /// SPEC §4 rule 8: end the call because no runnable document exists.
    fn fail(&mut self, now: Instant, message: String) {
        if self.is_closing() {
            return;
        }
        tracing::warn!(error = %message, "ending the call: document error");
        let cause = error_cause(self.answered);
        self.notes.push(message.clone());
        self.intent = Some(Intent {
            at: now,
            kind: IntentKind::Error { message, cause },
        });
        self.run(ChannelOp::Hangup { cause }, OpPurpose::Hangup);
    }

    fn fetch(&mut self, now: Instant, request: DocumentFetch) {
        if self.is_closing() {
            return;
        }
        if self.fetches >= self.settings.max_fetches {
            let limit = self.settings.max_fetches;
            self.fail(now, format!("redirect limit of {limit} fetches reached"));
            return;
        }
        self.fetches += 1;
        self.fetching = Some(request.event.clone());
        self.actions.push_back(Action::Fetch(request));
    }

    fn run(&mut self, op: ChannelOp, purpose: OpPurpose) {
        let id = OpId(self.next_id());
        self.in_flight = Some(InFlight { id, purpose });
        self.actions.push_back(Action::Run { id, op });
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn facts(&mut self) -> EndFacts<'_> {
        // The call is over: a schedule whose cancel never completed still counts.
        self.schedules.append(&mut self.cancelling);
        EndFacts {
            answered: self.answered,
            intent: self.intent.as_ref(),
            schedules: &self.schedules,
            notes: std::mem::take(&mut self.notes),
        }
    }

    fn finish(&mut self, ending: Ending) {
        if self.dial.is_some() || self.dial_waiting.is_some() {
            // The call ended while its Dial ran and the bridge never reported: the
            // action is still owed (SPEC §11.4).
            self.dial_ended_at_finish();
        }
        self.finished = true;
        self.fetching = None;
        self.actions.push_back(Action::Finish(ending));
    }
}
