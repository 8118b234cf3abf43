//! The Asterisk driver: one task per FastAGI connection that carries the switch-neutral
//! [`CallEngine`]'s actions to the channel, and the channel's notices, fetched documents,
//! REST commands and timers back into it (SPEC §16). The engine is the same as for
//! FreeSWITCH and does not know which switch it drives; the CDR, callbacks, outbox and
//! live rows are written by the same code as FreeSWITCH's (`super::freeswitch`'s
//! `record`, `live_row`, `fetch` modules).
//!
//! Layout: [`render`] (operations → AGI commands, replies → outcomes, chan_sip's SIP
//! codes), [`ari`] (out-of-band hang-up and channel checks, and why ARI), [`manager`]
//! (what goes over AMI, and why), this module (the call task).
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
//! - **Gather** (SPEC §12.1) runs the engine's own rules; the driver only makes the switch
//!   report digits, which FastAGI does only through the command running when they come
//!   (`tests/fixtures/agi/gather-*.txt`): a Gather's prompts stop at a key
//!   ([`render::plan_prompt`]: Flite with interrupt keys, `STREAM FILE`, `WAIT FOR DIGIT`)
//!   and their reply's digit goes to the engine before the prompt's end (so the barge-in
//!   is the switch's own stop, and the engine's `Interrupt` has nothing left to do); while
//!   the Gather listens with nothing running, the driver keeps a `WAIT FOR DIGIT` running
//!   until the Gather's deadline. Digits pressed in the few microseconds between two
//!   commands (or while a spoken prompt waits for its Flite turn) are dropped by Asterisk.
//! - **Flite safety** ([`tts`]): at most `[asterisk] tts_concurrency` syntheses at once per
//!   Asterisk, in a fair queue a hung-up call leaves.
//! - **Dial** (SPEC §11) is Asterisk's own `Dial()` on the caller's channel
//!   ([`render::dial_plan`]): every destination at once, the ring window, `L()` for
//!   `timeLimit`, `g` so the AGI goes on after the callee hangs up. FastAGI is blocked while
//!   `Dial()` runs, so its outcome is read when it returns (captures `dial-*.txt`):
//!   `DIALSTATUS` (ANSWER/BUSY/NOANSWER/CANCEL/CONGESTION/CHANUNAVAIL → the engine's
//!   cause), `HANGUPCAUSE` (the callee's), `DIALEDPEERNUMBER` (which destination answered)
//!   and `ANSWEREDTIME` (how long the bridge lasted: the caller's answer time is now minus
//!   it). **B-leg identity**: the uuid voxbridge chose for each leg (`DialBLegUUID`, the
//!   leg's CDR), matched to the Asterisk channel by `DIALEDPEERNUMBER`; chosen over ARI
//!   originate + bridge because that needs the caller in Stasis and an ARI event client
//!   for every state change, while `Dial()` gives ringing, early media, the race and the
//!   answer inside the switch. **The answer while `Dial()` runs**: FastAGI is blocked,
//!   so the driver asks ARI every 250 ms for the caller's `DIALEDPEERNUMBER` (cleared
//!   before the Dial; set by Dial at the answer, `dial-ari-while-bridged.txt`): the caller
//!   is answered and bridged then, and DialAnswer/DialConnected go out at the answer as on
//!   FreeSWITCH (without ARI configured: when `Dial()` returns). From then the callee is
//!   a live call under its uuid; REST `DELETE` of it reads the caller's `DIALEDPEERNAME`
//!   over ARI, finds that channel's id in ARI's channel list and deletes it — `Dial()`
//!   returns (`g`) and the caller goes on. `hangupOnStar` (`H`), `sendDigits` (`D()`)
//!   and `sipHeaders` (inherited `__SIPADDHEADER<n>` variables) are `Dial()`'s own, one
//!   value for all legs; per-leg digits and headers and `confirmSound`/`confirmKey` run in
//!   the shipped dialplan's routines on the callee's channel (`b()`, `U()`), whose mark
//!   `SHARED(voxbridge_dial)` then tells the answer and a callee dropped unconfirmed
//!   ([`render::dial_plan`]).
//! - **Record** (SPEC §12.2), a plain one, is `RECORD FILE` into
//!   `<record.dir>/<RecordingID>.wav` ([`render::record_plan`]); its reply and the time it
//!   took become the engine's report ([`render::record_report`]: the key, silence or the
//!   limit — Asterisk says `(timeout)` for both, told apart by the time against
//!   `maxLength` — or the hangup, held like any `result=-1` until `HANGUP`). The row,
//!   RecordStop and action follow as on FreeSWITCH (the same builder,
//!   `freeswitch::record::recording_row`, and the same ordered writer). The file is
//!   written by Asterisk: `[record] dir` must be a directory both reach (the bundle's
//!   Asterisk runs as voxbridge's user).
//! - **`recordSession`** is `EXEC MixMonitor "<record.dir>/<RecordingID>.wav"` (both
//!   directions mixed; the app returns at once). It ends with the channel: at `HANGUP`
//!   the engine hears the file is complete, its duration measured on voxbridge's clock
//!   (Asterisk reports nothing about it over FastAGI, and at `HANGUP` it has not flushed
//!   the file yet) from the MixMonitor's reply to the document's `Hangup`, else to the
//!   `HANGUP` notice — within ~20 ms of the WAV in the live suite, where counting from
//!   the command's sending to the notice ran up to 124 ms long.
//! - **AMI** ([`manager`], `[asterisk] ami_address`) does what neither FastAGI (blocked
//!   in `Dial()` / `RECORD FILE`) nor ARI (Stasis channels only) can: the REST stop of
//!   recordings (`StopMixMonitor`; the reserved digit `D` received by a running
//!   `RECORD FILE`), `startOnDialAnswer` (`MixMonitor` on the caller at the answer),
//!   `digitsMatch`/`digitsMatchBLeg` (`DTMFEnd` of the caller and of the callee during
//!   the Dial; a caller's `*` with `hangupOnStar` then reaches the engine too, so the
//!   callee's CDR says `Caller` as on FreeSWITCH), and the callee's answer (`DialEnd`)
//!   instead of ARI's poll while the session is up. The call subscribes to its events
//!   by its linked id at the start.
//! - Not yet on Asterisk (each a clear refusal, never a silent skip): Speak in early media
//!   (app_flite answers); Record in mp3 (Asterisk has no mp3 writer). Without AMI:
//!   `startOnDialAnswer` (the engine hears `Input::RecordingNotStarted` and notes it, so
//!   no row or RecordStop names a file that does not exist), the REST stop of a
//!   recording (the API answers 501 naming it), Dial `digitsMatch`/`digitsMatchBLeg`.

pub mod ari;
pub mod manager;
pub mod media;
pub mod render;
pub mod tts;

use crate::agi::{AgiCommand, AgiConnection, AgiEvent, AgiEvents, Reply};
use crate::app::fetch::{FetchError, FetchRequest, Fetched};
use crate::call::channel_op::{RecordCaller, RecordReport};
use crate::call::engine::{
    Action, CallEngine, CommandFailure, DocumentFetch, HangupCommand, Input, OpId, OpOutcome,
    Reaction,
};
use crate::call::freeswitch::channel::CallFacts;
use crate::call::freeswitch::dial_legs::{self, DialLegs};
use crate::call::freeswitch::live_row::LiveRowWrites;
use crate::call::freeswitch::{fetch, record, CallServices, Notice};
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
use tokio::sync::{mpsc, oneshot, watch};
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
    /// The AMI session ([`manager`]): `None` when `[asterisk] ami_address` is empty.
    pub ami: Option<crate::ami::Ami>,
    /// Where http(s) media for `Play` is fetched to ([`media`]).
    pub media: Option<media::MediaCache>,
    /// At most `[asterisk] tts_concurrency` Flite syntheses at once on this Asterisk
    /// ([`tts`]).
    pub flite: tts::FliteQueue,
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
    /// A Dial's `Dial()` returned; what the caller's channel says of it.
    DialEnded {
        id: OpId,
        facts: DialFacts,
        hangup_result: bool,
    },
    /// What ARI said to the hang-up of the Dial's callee `leg_uuid`.
    LegKilled {
        leg_uuid: String,
        result: Result<(), String>,
    },
    /// ARI saw the Dial's callee answer (`DIALEDPEERNUMBER` set) while `Dial()` runs.
    DialAnswered { id: OpId, peer: String },
    /// A Dial's end held for [`STAR_EVENT_GRACE`] (so AMI's `DTMFEnd` of a `*` that
    /// ended it reaches the engine first) is due.
    DialSettled {
        id: OpId,
        facts: DialFacts,
        hangup_result: bool,
    },
    /// AMI's `MixMonitor` for the recording into `path` failed.
    SessionNotStarted { path: String, why: String },
    /// AMI's `StopMixMonitor` stopped the recording into `path`.
    SessionStopped { path: String },
    /// A plain Record's `RECORD FILE` replied.
    RecordEnded {
        id: OpId,
        report: RecordReport,
        hangup_result: bool,
    },
    /// A digit a Gather's prompt stopped at (sent before that prompt's [`Report::Op`]).
    Digit(char),
    /// The listen of a Gather (`WAIT FOR DIGIT`) is over, with the digit if one came.
    Listened { digit: Option<char> },
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
    /// An operation's end (`OpFinished`, `RecordEnded`) from a `result=-1` reply,
    /// waiting to see whether `HANGUP` follows.
    held: Option<(OpId, Input)>,
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
    /// True once the channel is down or the socket gone: an operation still waiting for
    /// its Flite turn leaves the queue ([`tts`]).
    down: watch::Sender<bool>,
    /// A Gather's `WAIT FOR DIGIT` is in flight (the driver's own, not an engine op).
    listening: bool,
    /// The Dial in flight: its op, its legs, and each leg's `DIALEDPEERNUMBER`.
    dial: Option<DialRun>,
    /// A Dial that returned `-1`, waiting to see whether `HANGUP` follows.
    held_dial: Option<(OpId, DialFacts)>,
    /// The Dial whose legs are being closed (for their CDRs and callbacks).
    dial_legs: Option<DialLegs>,
    /// The ordered writer of this call's mid-call store writes (Dial callbacks,
    /// recordings' rows and their RecordStop).
    notices: Option<mpsc::UnboundedSender<Notice>>,
    /// Recordings completed while the call was closing: written before its record.
    closing_recordings: Vec<crate::store::Recording>,
    /// RecordStop callbacks of those, written with the call's record.
    closing_requests: Vec<crate::record::callback::NewCallback>,
    /// Background recordings (MixMonitor) started: the file and when (its end is the
    /// hangup: reported then, measured on voxbridge's clock).
    sessions: Vec<(String, Instant)>,
    /// The `EXEC MixMonitor` of a session still on its way: when its reply comes, the
    /// audiohook is on the channel and the session's clock starts again from there. The
    /// command's round trip is no part of the file (a CI run measured the clock 124 ms
    /// longer than the WAV, against the live suite's 100 ms allowance), and the file
    /// itself cannot say: at `HANGUP` Asterisk has not flushed it yet (2,048 ms of a
    /// 3,120 ms file on the disk, measured).
    session_execs: Vec<(OpId, String)>,
    /// When the document's own `Hangup` went to the channel (`EXEC Hangup`, nothing else
    /// running on the socket): the sessions' files end there, not at the `HANGUP` notice
    /// that follows ~40 ms later. Forgotten if the switch refuses it.
    hangup_sent: Option<(OpId, Instant)>,
    /// A Dial set `sipHeaders` on the caller (inherited variables): the next Dial clears
    /// them ([`render::dial_plan`]).
    sip_headers_set: bool,
    /// The plain Record (`RECORD FILE`) running.
    recording: Option<OpId>,
    /// Resolves once the last recording row written mid-call is stored: a Record's
    /// action fetch waits for it, so its `RecordUrl` answers when the application asks.
    recording_written: Option<oneshot::Receiver<()>>,
    /// The call's command channel (its bridged callee is registered live with it).
    commands: Option<mpsc::Sender<CallCommand>>,
    /// The bridged callee's place in the live registry (SPEC §11.2).
    leg_registration: Option<crate::call::live::Registration>,
    /// REST hang-ups of the callee waiting for ARI's answer.
    leg_hangups: Vec<(String, oneshot::Sender<HangupReply>)>,
    /// This call's AMI events (every channel with its linked id); taken by the loop.
    ami_events: Option<crate::ami::ChannelEvents>,
    /// The running Dial's `digitsMatchBLeg`, matched against the callee's digits.
    callee_digits: Option<manager::CalleeDigits>,
    /// When the plain Record's `RECORD FILE` was sent, and whether it beeps first (a
    /// REST stop waits until it records: [`manager::record_file_stop_delay`]).
    record_sent: Option<(Instant, bool)>,
}

/// A Dial being carried out on Asterisk.
struct DialRun {
    id: OpId,
    legs: DialLegs,
    /// `(DIALEDPEERNUMBER it would report, leg uuid)`, in document order.
    peers: Vec<(String, String)>,
    /// The leg ARI saw answer while `Dial()` ran (the engine has heard of it).
    answered: Option<String>,
    /// The ARI watcher of the answer, stopped when the Dial ends (none while AMI's
    /// `DialEnd` tells the answer).
    watcher: Option<tokio::task::AbortHandle>,
    /// AMI's `DialBegin`s: each ringing channel's id and its dial string.
    dests: HashMap<String, String>,
    /// The channel id of the callee that answered (AMI's `DialEnd`).
    answered_dest: Option<String>,
    /// The shipped dialplan's answering routine runs on the callee (confirmation,
    /// per-leg digits): its mark, not `DIALEDPEERNUMBER`, says the callee was bridged.
    routine: bool,
}

/// What the caller's channel says after `Dial()` (captures `dial-*.txt`).
#[derive(Clone, Debug, Default)]
struct DialFacts {
    status: Option<String>,
    cause: Option<String>,
    peer: Option<String>,
    answered_secs: Option<u64>,
    /// The answering routine's mark ([`render::DIAL_MARK`]), read only when it ran.
    mark: Option<String>,
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
        // Every channel of the call (the callees of its Dial too) carries the caller's
        // linked id: the call's AMI events are those (manager).
        let ami_events = match &services.ami {
            Some(ami) => {
                let linked = conn
                    .command(AgiCommand::get_full_variable("${CHANNEL(linkedid)}").ok()?)
                    .await
                    .ok()
                    .and_then(|r| r.data)
                    .map(|d| d.trim().to_string())
                    .filter(|d| !d.is_empty())
                    .unwrap_or_else(|| uuid.clone());
                Some(ami.channel_events(&linked))
            }
            None => None,
        };
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
                let engine =
                    CallEngine::new(settings, Some(r.answer_url.clone())).for_channel(&uuid);
                (r, engine)
            }
            Err(e) => {
                tracing::error!(error = %e, destination = %facts.to, "call cannot be routed; refusing it");
                (
                    calls.router.callback_targets(&facts.variables, &facts.to),
                    CallEngine::refusing(settings, e.to_string()).for_channel(&uuid),
                )
            }
        };
        // Recordings are named by the REST API's URL, and dated by voxbridge's clock
        // (Asterisk's replies carry no timestamps).
        let now_ms = i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
            .unwrap_or_default();
        let engine = engine
            .with_recording_urls(format!(
                "{}/api/v1/Account/{}/Recording/",
                calls.public_base, resolved.account_id
            ))
            .with_wall_clock(Instant::now(), now_ms);
        *known.lock().unwrap_or_else(|p| p.into_inner()) = Some((facts.clone(), resolved.clone()));
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let live_row_writes = LiveRowWrites::new(calls.store.clone(), calls.live.clone(), &uuid);
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
            down: watch::channel(false).0,
            listening: false,
            dial: None,
            held_dial: None,
            dial_legs: None,
            notices: None,
            closing_recordings: Vec::new(),
            closing_requests: Vec::new(),
            recording_written: None,
            sessions: Vec::new(),
            session_execs: Vec::new(),
            hangup_sent: None,
            sip_headers_set: false,
            recording: None,
            commands: None,
            leg_registration: None,
            leg_hangups: Vec::new(),
            ami_events,
            callee_digits: None,
            record_sent: None,
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
        let (commands_tx, mut commands) = mpsc::channel(8);
        self.commands = Some(commands_tx.clone());
        let registration =
            calls
                .live
                .register(&self.facts.uuid, &self.resolved.account_id, commands_tx);
        // After registering: the registry is told a pre-answered call's answer time.
        let answered_at = self.facts.answered.then_some(self.facts.start_time);
        self.answer_time = answered_at;
        if !self.refused_for_store {
            self.live_row = Some(self.live_row_writes.start(
                &self.facts,
                &self.resolved,
                answered_at,
            ));
        }
        let mut cut_off = calls.cut_off.subscribe();
        let mut cut_off_at: Option<Instant> = None;
        let mut events_open = true;
        let mut ami_events = self.ami_events.take();

        let mut ending = if self.refused_for_store {
            self.refuse_for_store().await;
            None
        } else {
            let answered = self.facts.answered;
            self.input(Input::Start { answered });
            self.drain_actions().await
        };
        while ending.is_none() {
            self.listen_if_awaited();
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
                event = async {
                    match ami_events.as_mut() {
                        Some(events) => events.recv().await,
                        None => std::future::pending().await,
                    }
                }, if ami_events.is_some() => match event {
                    Some(event) => self.on_ami_event(&event),
                    None => ami_events = None,
                },
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
        self.down.send_replace(true);
        drop(registration);
        self.leg_registration = None;
        for reply in self.api_hangups.drain(..) {
            let _ = reply.send(HangupReply::Ending);
        }
        for (_, reply) in self.leg_hangups.drain(..) {
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
                Action::LegsEnded { legs, callback } => {
                    if let Some(dial) = self.dial_legs.take() {
                        let hangups = dial_legs::leg_endings(
                            &self.services.calls.store,
                            &dial,
                            &self.facts,
                            &self.resolved.account_id,
                            legs,
                            callback.as_ref(),
                        );
                        self.enqueue_now(hangups);
                    }
                }
                // The digits came as AMI events (manager): posted as on FreeSWITCH.
                Action::DialDigitsMatch {
                    b_leg,
                    position,
                    to,
                    digits,
                    pressed_by,
                    callback,
                } => {
                    let Some(dial) = self.dial_legs.as_ref() else {
                        continue;
                    };
                    let params =
                        dial_legs::event_params(dial, &self.facts, "digits", &b_leg, position, &to);
                    let event = crate::app::callbacks::dial_digits_match_callback(
                        &callback.url,
                        callback.method,
                        params,
                        digits,
                        pressed_by.as_str(),
                    );
                    self.enqueue_now(vec![event]);
                }
                Action::DialAnswered {
                    b_leg,
                    position,
                    to,
                    callback,
                } => {
                    let Some(dial) = self.dial_legs.as_ref() else {
                        continue;
                    };
                    let events = ["answer", "connected"].map(|status| {
                        let params = dial_legs::event_params(
                            dial,
                            &self.facts,
                            status,
                            &b_leg,
                            position,
                            &to,
                        );
                        crate::app::callbacks::dial_event_callback(
                            &callback.url,
                            callback.method,
                            &params,
                        )
                    });
                    self.enqueue_now(events.into());
                }
                Action::KillLeg { leg_uuid } => self.kill_leg(leg_uuid),
                // A Gather's barge-in: its prompt already stopped at the digit (interrupt
                // keys, render::plan_prompt) and reported it, so nothing plays any more.
                Action::Interrupt => {
                    tracing::debug!("barge-in: the prompt stopped at the digit in the switch")
                }
                Action::RecordingComplete(done) => self.recording_complete(*done),
                // Over AMI (manager); without it the REST stop is refused before it
                // reaches the engine (on_command), so this never comes.
                Action::StopRecordings(stop) => self.stop_recordings(stop),
                Action::StartRecording { path } => self.start_recording_on_answer(path),
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
        let job = self.job_for(op);
        if let crate::call::channel_op::ChannelOp::Play { url } = op {
            let lower = url.to_ascii_lowercase();
            if lower.starts_with("http://") || lower.starts_with("https://") {
                return self.play_remote(id, url.clone(), answered, job);
            }
        }
        if let crate::call::channel_op::ChannelOp::Bridge(bridge) = op {
            return self.dial(id, bridge);
        }
        if let crate::call::channel_op::ChannelOp::Record(rec) = op {
            return self.record(id, rec);
        }
        let plan = if job.reads_digit {
            render::plan_prompt(op)
        } else {
            render::plan_on(op, answered)
        };
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
                    crate::call::channel_op::ChannelOp::StartSessionRecording { path } => {
                        self.sessions.push((path.clone(), Instant::now()));
                        self.session_execs.push((id, path.clone()));
                    }
                    crate::call::channel_op::ChannelOp::Hangup { .. } => {
                        self.hangup_sent.get_or_insert((id, Instant::now()));
                    }
                    _ => {}
                }
                tokio::spawn(
                    run_commands(self.conn.clone(), id, cmds, reports, job).in_current_span(),
                );
            }
        }
    }

    /// How `op` is run: a Gather's prompt reports the digit it stopped at, a Speak waits
    /// for its Flite turn.
    fn job_for(&self, op: &crate::call::channel_op::ChannelOp) -> Job {
        use crate::call::channel_op::ChannelOp;
        let reads_digit = matches!(op, ChannelOp::Silence { .. })
            || (self.engine.gathering()
                && matches!(op, ChannelOp::Speak { .. } | ChannelOp::Play { .. }));
        let flite = matches!(op, ChannelOp::Speak { .. })
            .then(|| (self.services.flite.clone(), self.down.subscribe()));
        Job { reads_digit, flite }
    }

    /// A Dial: `Dial()` on the caller's channel ([`render::dial_plan`]); its end is read
    /// from the channel's variables and reported as [`Report::DialEnded`].
    fn dial(&mut self, id: OpId, bridge: &crate::call::channel_op::Bridge) {
        let template = self
            .services
            .calls
            .config
            .asterisk
            .dial_number_template
            .clone();
        let template = &template;
        let reports = self.reports_tx.clone();
        let watched = bridge.caller_digits_watched || !bridge.callee_digit_patterns.is_empty();
        if watched && self.services.ami.is_none() {
            let what = if bridge.caller_digits_watched {
                "digitsMatch"
            } else {
                "digitsMatchBLeg"
            };
            let why = format!(
                "not supported yet on Asterisk: Dial {what} without AMI (the digits pressed \
                 during Dial() reach voxbridge only as AMI events: set [asterisk] ami_address)"
            );
            tracing::warn!(reason = %why, "Dial refused on Asterisk");
            let _ = reports.send(Report::Op {
                id,
                outcome: OpOutcome::Refused(why),
                hangup_result: false,
            });
            return;
        }
        if watched && !self.ami_events_flowing() {
            // Configured but down (reconnecting): the Dial runs, its digits may be missed.
            tracing::warn!(
                "AMI is not connected: this Dial's digitsMatch/digitsMatchBLeg may miss digits"
            );
        }
        self.callee_digits = (!bridge.callee_digit_patterns.is_empty())
            .then(|| manager::CalleeDigits::new(&bridge.callee_digit_patterns));
        let caller = self.conn.env().channel().unwrap_or_default().to_string();
        let setup = render::DialSetup {
            number_template: template,
            clear_headers: self.sip_headers_set,
            caller_channel: &caller,
            fetched_media: HashMap::new(),
        };
        // http(s) confirmation media is fetched in the Dial's task, then planned again
        // with the local names; this first plan decides whether the Dial is refused.
        let media_urls = render::confirm_media_urls(bridge);
        let replan = (!media_urls.is_empty()).then(|| {
            (
                bridge.clone(),
                template.clone(),
                caller.clone(),
                self.sip_headers_set,
                self.services.media.clone(),
            )
        });
        let cmds = match render::dial_plan(bridge, &setup) {
            Plan::Commands(cmds) => {
                self.sip_headers_set |= !bridge.sip_headers.is_empty()
                    || bridge.legs.iter().any(|l| !l.sip_headers.is_empty());
                cmds
            }
            Plan::Refuse(why) => {
                tracing::warn!(reason = %why, "Dial refused on Asterisk");
                let _ = reports.send(Report::Op {
                    id,
                    outcome: OpOutcome::Refused(why),
                    hangup_result: false,
                });
                return;
            }
        };
        let peers = bridge
            .legs
            .iter()
            .filter_map(|l| {
                let dest = render::dial_destination(&l.target, template).ok()?;
                Some((
                    render::dialed_peer_number(&dest).to_string(),
                    l.uuid.clone(),
                ))
            })
            .collect();
        let routine = render::dial_answer_routine(bridge);
        // AMI's DialEnd tells the answer when the session is up; ARI's poll otherwise. A
        // Dial whose answering routine runs on the callee (confirmation, per-leg digits)
        // is answered when the routine marks it bridged, not at the callee's answer
        // (DialEnd says ANSWER before the confirmation), so ARI reads that mark.
        let ami_up = self.services.ami.as_ref().is_some_and(|a| a.is_connected());
        let watcher = self
            .services
            .ari
            .clone()
            .filter(|_| routine || !ami_up)
            .map(|ari| {
                let (reports, uuid) = (self.reports_tx.clone(), self.facts.uuid.clone());
                tokio::spawn(watch_dial_answer(ari, uuid, id, routine, reports).in_current_span())
                    .abort_handle()
            });
        self.dial = Some(DialRun {
            id,
            legs: DialLegs {
                bridge: bridge.clone(),
                sent_at: OffsetDateTime::now_utc(),
                bridged: None,
            },
            peers,
            answered: None,
            watcher,
            dests: HashMap::new(),
            answered_dest: None,
            routine,
        });
        let conn = self.conn.clone();
        tokio::spawn(
            async move {
                let cmds = match replan {
                    None => cmds,
                    Some((bridge, template, caller, clear_headers, cache)) => {
                        let mut fetched = HashMap::new();
                        for url in media_urls {
                            let got = match &cache {
                                Some(cache) => cache.local(&url).await,
                                None => Err(format!(
                                    "{url}: no [asterisk] media_cache_dir to fetch it into"
                                )),
                            };
                            match got {
                                Ok(local) => {
                                    fetched.insert(url, local);
                                }
                                Err(why) => tracing::warn!(
                                    reason = %why,
                                    "confirmSound media left out: the callee hears the rest"
                                ),
                            }
                        }
                        let setup = render::DialSetup {
                            number_template: &template,
                            clear_headers,
                            caller_channel: &caller,
                            fetched_media: fetched,
                        };
                        match render::dial_plan(&bridge, &setup) {
                            Plan::Commands(cmds) => cmds,
                            Plan::Refuse(why) => {
                                let _ = reports.send(Report::Op {
                                    id,
                                    outcome: OpOutcome::Refused(why),
                                    hangup_result: false,
                                });
                                return;
                            }
                        }
                    }
                };
                let mut cmds = cmds;
                if watched {
                    // Two SIP channels bridged with nothing to watch are bridged natively
                    // (`native_rtp`: RTP relayed below the channel core), and RFC 2833
                    // digits then raise no DTMFEnd at all (seen live). An audiohook on the
                    // caller keeps the bridge in the core: `VOLUME(TX)` at gain 1 (no
                    // change to the audio) is the cheapest one the bundle has.
                    match AgiCommand::set_variable("VOLUME(TX)", "1") {
                        Ok(keep_in_core) => cmds.insert(0, keep_in_core),
                        Err(e) => tracing::warn!(error = %e, "cannot keep the bridge in the core"),
                    }
                }
                let mut last = None;
                for cmd in cmds {
                    tracing::debug!(command = %cmd.line(), "AGI command");
                    match conn.command(cmd).await {
                        Ok(reply)
                            if render::outcome(&reply) == OpOutcome::Completed
                                || reply.is_hangup_result() =>
                        {
                            last = Some(reply)
                        }
                        Ok(reply) => {
                            let _ = reports.send(Report::Op {
                                id,
                                outcome: render::outcome(&reply),
                                hangup_result: false,
                            });
                            return;
                        }
                        Err(crate::agi::AgiError::Closed(_)) => return,
                        Err(e) => {
                            let _ = reports.send(Report::Op {
                                id,
                                outcome: OpOutcome::Refused(e.to_string()),
                                hangup_result: false,
                            });
                            return;
                        }
                    }
                    if last.as_ref().is_some_and(|r| r.is_hangup_result()) {
                        break;
                    }
                }
                // Readable on a dead channel too (`dial-caller-hangs-up.txt`).
                let read = |name: &'static str| {
                    let conn = conn.clone();
                    async move {
                        let cmd = AgiCommand::get_variable(name).ok()?;
                        match conn.command(cmd).await {
                            Ok(Reply {
                                result: Some(1),
                                data,
                                ..
                            }) => data.filter(|d| !d.trim().is_empty()),
                            _ => None,
                        }
                    }
                };
                let facts = DialFacts {
                    status: read("DIALSTATUS").await,
                    cause: read("HANGUPCAUSE").await,
                    peer: read("DIALEDPEERNUMBER").await,
                    answered_secs: read("ANSWEREDTIME")
                        .await
                        .and_then(|s| s.trim().parse().ok()),
                    mark: match routine {
                        true => read(render::DIAL_MARK).await,
                        false => None,
                    },
                };
                tracing::info!(?facts, "Dial ended");
                let _ = reports.send(Report::DialEnded {
                    id,
                    facts,
                    hangup_result: last.is_some_and(|r| r.is_hangup_result()),
                });
            }
            .in_current_span(),
        );
    }

    /// A Dial's end as the engine hears it (SPEC §11.4): bridged to the leg whose
    /// `DIALEDPEERNUMBER` answered — the caller answered when it did (`ANSWEREDTIME`
    /// before now), the other legs lost the race — or not bridged with the cause of
    /// `DIALSTATUS`. `timeLimit` ran out when the bridge lasted it (Asterisk's `L()` ends
    /// it then; the callee's cause is ALLOTTED_TIMEOUT, as on FreeSWITCH).
    fn dial_ended(&mut self, id: OpId, facts: DialFacts) {
        use crate::call::channel_op::{BridgeOutcome, BridgeReport};
        let Some(mut run) = self.dial.take_if(|d| d.id == id) else {
            return;
        };
        if let Some(watcher) = run.watcher.take() {
            watcher.abort();
        }
        self.leg_registration = None;
        let status = facts.status.clone().unwrap_or_default();
        // A callee the answering routine did not bridge (never confirmed, or the caller
        // left while it was asked) leaves DIALSTATUS ANSWER all the same.
        let not_bridged = run
            .routine
            .then(|| render::dial_routine_not_bridged(&status, facts.mark.as_deref()))
            .flatten();
        let answered_leg = (status.trim() == "ANSWER" && not_bridged.is_none())
            .then(|| {
                run.peers
                    .iter()
                    .find(|(peer, _)| facts.peer.as_deref().map(str::trim) == Some(peer.as_str()))
                    .or_else(|| (run.peers.len() == 1).then(|| &run.peers[0]))
                    .map(|(_, uuid)| uuid.clone())
            })
            .flatten();
        let answered_leg = run.answered.clone().or(answered_leg);
        let report = match answered_leg {
            Some(b_leg) if run.answered.is_some() => {
                // The engine heard of the answer when ARI saw it: only the end is new.
                bridged_report(&run, &facts, b_leg)
            }
            Some(b_leg) => {
                let secs = facts.answered_secs.unwrap_or(0);
                let now = OffsetDateTime::now_utc();
                let answered_at = now - time::Duration::seconds(secs as i64);
                if !self.engine.answered() {
                    self.answer_time.get_or_insert(answered_at);
                    self.live_row_writes.answered(answered_at);
                    self.input(Input::Answered);
                }
                run.legs.bridged = Some((b_leg.clone(), run.legs.sent_at, answered_at));
                let report = bridged_report(&run, &facts, b_leg.clone());
                self.dial_legs = Some(run.legs);
                tracing::info!(%b_leg, answered_secs = secs, "bridged");
                self.input(Input::Bridged {
                    b_leg: b_leg.clone(),
                });
                report
            }
            None => {
                let cause = not_bridged
                    .unwrap_or_else(|| render::dial_failure_cause(&status, facts.cause.as_deref()));
                let leg_causes = run
                    .peers
                    .iter()
                    .map(|(_, uuid)| (uuid.clone(), cause))
                    .collect();
                self.dial_legs = Some(run.legs);
                BridgeReport {
                    outcome: BridgeOutcome::NotBridged { cause },
                    leg_causes,
                }
            }
        };
        tracing::info!(?report, "bridge ended");
        self.input(Input::BridgeEnded { id, report });
    }

    /// One of this call's AMI events ([`manager`]): during a Dial, the caller's and the
    /// bridged callee's digits and the callee's answer.
    fn on_ami_event(&mut self, message: &crate::ami::Message) {
        let Some(event) = manager::read(&self.facts.uuid, message) else {
            return;
        };
        tracing::debug!(?event, "AMI event");
        let Some(run) = self.dial.as_mut() else {
            return;
        };
        match event {
            manager::CallEvent::Digit { uniqueid, digit } if uniqueid == self.facts.uuid => {
                // FastAGI is blocked in Dial(): this is the only way the caller's digits
                // (digitsMatch, hangupOnStar's `*`) reach the engine.
                self.input(Input::Dtmf(digit));
            }
            manager::CallEvent::Digit { uniqueid, digit } => {
                // Only the bridged callee's: with an answering routine, DialEnd comes
                // before its confirmation, whose key is not a digitsMatchBLeg digit.
                if run.answered_dest.as_deref() != Some(uniqueid.as_str()) || run.answered.is_none()
                {
                    return;
                }
                let matched = self.callee_digits.as_mut().and_then(|m| m.press(digit));
                if let Some(digits) = matched {
                    self.input(Input::CalleeDigits { digits });
                }
            }
            manager::CallEvent::DialBegin { dest, dial_string } => {
                run.dests.insert(dest, dial_string);
            }
            manager::CallEvent::DialEnd { dest, status } => {
                if status.trim() != "ANSWER" {
                    return;
                }
                let Some(peer) = run.dests.get(&dest).cloned() else {
                    return;
                };
                run.answered_dest = Some(dest);
                if run.routine {
                    // Answered is not bridged yet: the routine's mark says it (ARI).
                    return;
                }
                let id = run.id;
                self.dial_answered_live(id, &peer);
            }
        }
    }

    /// Whether the end of Dial `id` must wait for a `*` AMI may still deliver: a bridged
    /// `hangupOnStar` Dial, with AMI's events flowing.
    fn star_may_follow(&self, id: OpId) -> bool {
        self.ami_events_flowing()
            && self
                .dial
                .as_ref()
                .is_some_and(|d| d.id == id && d.legs.bridge.hangup_on_star && d.answered.is_some())
    }

    fn ami_events_flowing(&self) -> bool {
        self.services.ami.as_ref().is_some_and(|a| a.is_connected())
    }

    /// `startOnDialAnswer`: the callee answered while `Dial()` holds the FastAGI socket,
    /// so the MixMonitor is started over AMI on the caller's channel; without AMI the
    /// armed recording is dropped with its reason (no file, no row, no RecordStop).
    fn start_recording_on_answer(&mut self, path: String) {
        let channel = self.conn.env().channel().map(str::to_string);
        let (Some(ami), Some(channel)) = (self.services.ami.clone(), channel) else {
            self.input(Input::RecordingNotStarted {
                path,
                reason: "not supported yet on Asterisk: Record startOnDialAnswer without AMI \
                         (FastAGI is blocked in Dial() when the callee answers; set \
                         [asterisk] ami_address)"
                    .into(),
            });
            return;
        };
        self.sessions.push((path.clone(), Instant::now()));
        let reports = self.reports_tx.clone();
        tokio::spawn(
            async move {
                match manager::mix_monitor(&ami, &channel, &path).await {
                    Ok(()) => tracing::info!(%path, "MixMonitor started over AMI"),
                    Err(e) => {
                        let _ = reports.send(Report::SessionNotStarted {
                            path,
                            why: e.to_string(),
                        });
                    }
                }
            }
            .in_current_span(),
        );
    }

    /// REST stop of the call's recordings over AMI: `StopMixMonitor` per background
    /// recording, and the reserved digit for a running `RECORD FILE` ([`manager`]).
    /// A failed action is logged; that recording then ends with the call.
    fn stop_recordings(&mut self, stop: crate::call::channel_op::StopRecordings) {
        let (Some(ami), Some(channel)) = (
            self.services.ami.clone(),
            self.conn.env().channel().map(str::to_string),
        ) else {
            tracing::warn!("no AMI or no channel name: the recordings go on until the hangup");
            return;
        };
        let sessions: Vec<String> = stop
            .sessions
            .into_iter()
            .filter(|p| self.sessions.iter().any(|(s, _)| s == p))
            .collect();
        let caller = stop.caller && self.recording.is_some();
        let caller_delay = self.record_sent.map_or(Duration::ZERO, |(sent, beep)| {
            manager::record_file_stop_delay(sent.elapsed(), beep)
        });
        let reports = self.reports_tx.clone();
        tokio::spawn(
            async move {
                for path in sessions {
                    // `EXEC MixMonitor` goes over FastAGI and the stop over AMI: a stop
                    // right after the start can reach Asterisk first and find no
                    // MixMonitor yet, so a refused stop is tried again a few times.
                    let mut tries = 0;
                    loop {
                        match manager::stop_mix_monitor(&ami, &channel).await {
                            Ok(()) => {
                                let _ = reports.send(Report::SessionStopped { path });
                                break;
                            }
                            Err(e) if tries < MIX_MONITOR_STOP_RETRIES => {
                                tries += 1;
                                tracing::debug!(%path, error = %e, tries, "StopMixMonitor refused; trying again");
                                tokio::time::sleep(MIX_MONITOR_STOP_PAUSE).await;
                            }
                            Err(e) => {
                                tracing::warn!(%path, error = %e, "StopMixMonitor failed; the recording ends with the call");
                                break;
                            }
                        }
                    }
                }
                if caller {
                    tokio::time::sleep(caller_delay).await;
                    if let Err(e) = manager::stop_record_file(&ami, &channel).await {
                        tracing::warn!(error = %e, "PlayDTMF to stop RECORD FILE failed; it ends at its own limits");
                    }
                }
            }
            .in_current_span(),
        );
    }

    /// ARI saw the callee `peer` answer while `Dial()` runs: the caller is answered now
    /// (Dial answered it) and bridged to that leg — DialAnswer and DialConnected go out
    /// at the answer, as on FreeSWITCH.
    fn dial_answered_live(&mut self, id: OpId, peer: &str) {
        let Some(run) = self
            .dial
            .as_mut()
            .filter(|d| d.id == id && d.answered.is_none())
        else {
            return;
        };
        let Some(b_leg) = run
            .peers
            .iter()
            .find(|(p, _)| p == peer.trim())
            .map(|(_, uuid)| uuid.clone())
        else {
            tracing::warn!(%peer, "ARI names a dialled peer that is none of the Dial's legs");
            return;
        };
        run.answered = Some(b_leg.clone());
        let now = OffsetDateTime::now_utc();
        self.dial_legs = Some(DialLegs {
            bridge: run.legs.bridge.clone(),
            sent_at: run.legs.sent_at,
            bridged: Some((b_leg.clone(), run.legs.sent_at, now)),
        });
        if !self.engine.answered() {
            self.answer_time.get_or_insert(now);
            self.live_row_writes.answered(now);
            self.input(Input::Answered);
        }
        tracing::info!(%b_leg, "bridged");
        self.register_leg(&b_leg, now);
        self.input(Input::Bridged { b_leg });
    }

    /// The Dial's callee answered and is bridged: it is listed live under its own uuid
    /// (SPEC §11.2) until the Dial ends.
    fn register_leg(&mut self, b_leg: &str, answered: OffsetDateTime) {
        let (Some(commands), Some(dial)) = (self.commands.clone(), self.dial_legs.as_ref()) else {
            return;
        };
        let to = dial
            .bridge
            .legs
            .iter()
            .find(|l| l.uuid == b_leg)
            .map(|l| l.target.as_str().to_string())
            .unwrap_or_default();
        let info = crate::call::live::LegInfo {
            parent_call_uuid: self.facts.uuid.clone(),
            to,
            from: dial
                .bridge
                .caller_id
                .clone()
                .unwrap_or_else(|| self.facts.from.clone()),
            start_time: dial.sent_at,
            answer_time: Some(answered),
        };
        self.leg_registration = Some(self.services.calls.live.register_leg(
            b_leg,
            &self.resolved.account_id,
            info,
            commands,
        ));
    }

    /// Hangs the bridged callee up through ARI (REST `DELETE Call/{B-leg}`): its channel
    /// is the caller's `DIALEDPEERNAME`, found by name among ARI's channels. `Dial()` then
    /// returns (the `g` option) and the caller goes on with the document.
    fn kill_leg(&mut self, leg_uuid: String) {
        let reports = self.reports_tx.clone();
        let Some(ari) = self.services.ari.clone() else {
            let _ = reports.send(Report::LegKilled {
                leg_uuid,
                result: Err(
                    "hanging up a Dial's callee on Asterisk needs ARI ([asterisk] ari_url)".into(),
                ),
            });
            return;
        };
        let uuid = self.facts.uuid.clone();
        tokio::spawn(
            async move {
                let result = async {
                    let name = ari
                        .variable(&uuid, "DIALEDPEERNAME")
                        .await
                        .map_err(|e| e.to_string())?;
                    let id = ari
                        .channel_id_by_name(name.trim())
                        .await
                        .map_err(|e| e.to_string())?
                        .ok_or_else(|| format!("no channel named {name:?}: the callee is gone"))?;
                    ari.hangup(&id, HangupCause::NORMAL_CLEARING)
                        .await
                        .map_err(|e| e.to_string())
                }
                .await;
                if let Err(why) = &result {
                    tracing::warn!(b_leg = %leg_uuid, reason = %why, "the callee could not be hung up");
                }
                let _ = reports.send(Report::LegKilled { leg_uuid, result });
            }
            .in_current_span(),
        );
    }

    /// Writes callbacks of this live call to the outbox now, in order (one writer task
    /// per call: DialAnswer → DialConnected → DialHangup must not be reordered).
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
                self.services.calls.store.clone(),
                self.facts.uuid.clone(),
                self.resolved.account_id.clone(),
            )
        });
        let _ = queue.send(notice);
    }

    /// A recording's file is complete (SPEC §12.2): its row, then its `RecordStop`, in
    /// the call's order of store writes (once the call is closing: before its record,
    /// the RecordStop in the record's transaction) — as on FreeSWITCH.
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

    /// A plain Record: `RECORD FILE` ([`render::record_plan`]); its reply and the time it
    /// took are read as the engine's report ([`render::record_report`]).
    fn record(&mut self, id: OpId, rec: &RecordCaller) {
        let reports = self.reports_tx.clone();
        // With AMI, a REST stop makes the channel receive the reserved digit (manager).
        let stoppable = self.services.ami.is_some();
        let mut rec = rec.clone();
        if stoppable {
            rec.finish_keys.push(manager::STOP_DIGIT);
        }
        let rec = &rec;
        let cmd = match render::record_plan(rec) {
            Plan::Commands(mut cmds) if cmds.len() == 1 => cmds.remove(0),
            Plan::Commands(_) => unreachable!("record_plan gives one command"),
            Plan::Refuse(why) => {
                tracing::warn!(reason = %why, "Record refused on Asterisk");
                let _ = reports.send(Report::Op {
                    id,
                    outcome: OpOutcome::Refused(why),
                    hangup_result: false,
                });
                return;
            }
        };
        self.recording = Some(id);
        self.record_sent = Some((Instant::now(), rec.beep));
        let conn = self.conn.clone();
        let asked = rec.clone();
        tokio::spawn(
            async move {
                tracing::debug!(command = %cmd.line(), "AGI command");
                let started = Instant::now();
                match conn.command(cmd).await {
                    // `(writefile)`: the file could not be opened; nothing was recorded.
                    Ok(reply) if reply.text.contains("(writefile)") => {
                        tracing::warn!(reply = %reply.text, "RECORD FILE could not write its file");
                        let _ = reports.send(Report::Op {
                            id,
                            outcome: OpOutcome::Failed(reply.text),
                            hangup_result: false,
                        });
                    }
                    Ok(reply) if reply.is_ok() && reply.result.is_some_and(|r| r >= -1) => {
                        tracing::info!(reply = %reply.text, "RECORD FILE replied");
                        if stoppable && reply.text.contains("(randomerror)") {
                            // Our stop digit hit the beep or the first instants: Asterisk
                            // wrote no file (record-stop-at-start.txt). A 0 ms recording
                            // is what happened; its file is made so its URL answers.
                            manager::ensure_empty_wav(&asked.path);
                        }
                        let mut report = render::record_report(&reply, started.elapsed(), &asked);
                        if stoppable
                            && report.ended_by
                                == crate::call::channel_op::RecordEndedBy::Key(manager::STOP_DIGIT)
                        {
                            // Our own stop (or a `D` the caller sent): not a finish key.
                            report.ended_by = crate::call::channel_op::RecordEndedBy::Other;
                        }
                        let _ = reports.send(Report::RecordEnded {
                            id,
                            report,
                            hangup_result: reply.is_hangup_result(),
                        });
                    }
                    Ok(reply) => {
                        let _ = reports.send(Report::Op {
                            id,
                            outcome: render::outcome(&reply),
                            hangup_result: false,
                        });
                    }
                    Err(crate::agi::AgiError::Closed(_)) => {}
                    Err(e) => {
                        let _ = reports.send(Report::Op {
                            id,
                            outcome: OpOutcome::Refused(e.to_string()),
                            hangup_result: false,
                        });
                    }
                }
            }
            .in_current_span(),
        );
    }

    /// A Gather listens with nothing running: Asterisk reports digits only while a
    /// command runs, so the driver waits for one (`WAIT FOR DIGIT`) until the Gather's
    /// deadline; the engine's own timer ends the input when it passes.
    fn listen_if_awaited(&mut self) {
        if self.listening || self.hangup_seen || !self.engine.awaiting_digits() {
            return;
        }
        let Some(due) = self.engine.poll_timeout() else {
            return;
        };
        let left = due.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            return;
        }
        self.listening = true;
        let cmd = AgiCommand::wait_for_digit(left.min(MAX_LISTEN));
        let conn = self.conn.clone();
        let reports = self.reports_tx.clone();
        tokio::spawn(
            async move {
                let digit = match conn.command(cmd).await {
                    Ok(reply) => render::digit(&reply),
                    Err(_) => None,
                };
                let _ = reports.send(Report::Listened { digit });
            }
            .in_current_span(),
        );
    }

    /// Play of http(s) media: fetched (once, cached) by voxbridge, then `Playback` of the
    /// local file; a fetch that fails is the operation's failure.
    fn play_remote(&mut self, id: OpId, url: String, answered: bool, job: Job) {
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
                let plan = if job.reads_digit {
                    render::plan_prompt(&op)
                } else {
                    render::plan_on(&op, answered)
                };
                match plan {
                    Plan::Commands(cmds) => run_commands(conn, id, cmds, reports, job).await,
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
            | FetchEvent::Record(_)
            | FetchEvent::DialConfirmSound
            | FetchEvent::DialMusic => (None, self.document_url.clone()),
        };
        // A Record's action waits for the recording's row, so its RecordUrl answers.
        let after = match req.event {
            FetchEvent::Record(_) => self.recording_written.take(),
            _ => None,
        };
        let token = self.resolved.auth_token.clone();
        let reports = self.reports_tx.clone();
        let task = tokio::spawn(
            async move {
                if let Some(written) = after {
                    let _ = written.await;
                }
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
                if self.recording == Some(id) {
                    self.recording = None;
                }
                // A Hangup that ran answers `result=-1` (its channel is gone): only one
                // the switch would not run leaves the channel up.
                if self.hangup_sent.is_some_and(|(op, _)| op == id)
                    && matches!(outcome, OpOutcome::Refused(_))
                {
                    self.hangup_sent = None;
                }
                if let Some(i) = self.session_execs.iter().position(|(op, _)| *op == id) {
                    let (_, path) = self.session_execs.remove(i);
                    if outcome == OpOutcome::Completed {
                        if let Some(session) = self.sessions.iter_mut().find(|(p, _)| *p == path) {
                            session.1 = Instant::now();
                        }
                    }
                }
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
                    self.held = Some((id, Input::OpFinished { id, outcome }));
                    let reports = self.reports_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(HANGUP_NOTICE_WAIT).await;
                        let _ = reports.send(Report::HeldExpired { id });
                    });
                    return;
                }
                self.input(Input::OpFinished { id, outcome });
            }
            Report::RecordEnded {
                id,
                report,
                hangup_result,
            } => {
                tracing::info!(?report, "record ended");
                self.recording = None;
                let input = Input::RecordEnded { id, report };
                if hangup_result && !self.hangup_seen {
                    // The caller hung up under the recording: the engine must hear the
                    // channel is down first (the end reason is HungUp, not maxLength).
                    self.held = Some((id, input));
                    let reports = self.reports_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(HANGUP_NOTICE_WAIT).await;
                        let _ = reports.send(Report::HeldExpired { id });
                    });
                    return;
                }
                self.input(input);
            }
            Report::Digit(digit) => {
                self.input(Input::Dtmf(digit));
            }
            Report::Listened { digit } => {
                self.listening = false;
                if let Some(digit) = digit {
                    self.input(Input::Dtmf(digit));
                }
            }
            Report::HeldExpired { id } => {
                if let Some((_, input)) = self.held.take_if(|(h, _)| *h == id) {
                    self.input(input);
                }
                if let Some((held, facts)) = self.held_dial.take_if(|(h, _)| *h == id) {
                    self.dial_ended(held, facts);
                }
            }
            Report::DialAnswered { id, peer } => self.dial_answered_live(id, &peer),
            Report::SessionNotStarted { path, why } => {
                self.sessions.retain(|(p, _)| *p != path);
                tracing::warn!(%path, reason = %why, "MixMonitor over AMI failed");
                self.input(Input::RecordingNotStarted {
                    path,
                    reason: format!("AMI MixMonitor failed: {why}"),
                });
            }
            Report::SessionStopped { path } => {
                let Some(i) = self.sessions.iter().position(|(p, _)| *p == path) else {
                    return;
                };
                let (path, started) = self.sessions.remove(i);
                let stop = crate::call::channel_op::RecordingStop {
                    path,
                    duration: started.elapsed(),
                    ended_at_ms: i64::try_from(
                        OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000,
                    )
                    .ok(),
                };
                tracing::info!(?stop, "MixMonitor stopped over AMI");
                self.input(Input::RecordingStopped(stop));
            }
            Report::LegKilled { leg_uuid, result } => {
                let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.leg_hangups)
                    .into_iter()
                    .partition(|(uuid, _)| *uuid == leg_uuid);
                self.leg_hangups = others;
                for (_, reply) in mine {
                    let _ = reply.send(match &result {
                        Ok(()) => HangupReply::Ending,
                        Err(why) => HangupReply::Refused(why.clone()),
                    });
                }
            }
            Report::DialEnded {
                id,
                facts,
                hangup_result,
            } if self.star_may_follow(id) => {
                // A `*` that ended the bridge is an AMI event that may trail the
                // Dial's own return: give it a moment to reach the engine first.
                let reports = self.reports_tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(STAR_EVENT_GRACE).await;
                    let _ = reports.send(Report::DialSettled {
                        id,
                        facts,
                        hangup_result,
                    });
                });
            }
            Report::DialEnded {
                id,
                facts,
                hangup_result,
            }
            | Report::DialSettled {
                id,
                facts,
                hangup_result,
            } => {
                if hangup_result && !self.hangup_seen {
                    // The caller probably hung up: let its HANGUP reach the engine first.
                    self.held_dial = Some((id, facts));
                    let reports = self.reports_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(HANGUP_NOTICE_WAIT).await;
                        let _ = reports.send(Report::HeldExpired { id });
                    });
                    return;
                }
                self.dial_ended(id, facts);
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
        self.down.send_replace(true);
        self.input(Input::ChannelHungUp {
            cause: HangupCause::NORMAL_CLEARING,
        });
        if let Some((_, input)) = self.held.take() {
            self.input(input);
        }
        if let Some((id, facts)) = self.held_dial.take() {
            self.dial_ended(id, facts);
        }
        // MixMonitor ends with the channel: its files are as long as the call on
        // voxbridge's clock, from the MixMonitor's reply to the document's Hangup (else
        // to this notice).
        let now_ms =
            i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).ok();
        let ended = self.hangup_sent.map_or_else(Instant::now, |(_, at)| at);
        for (path, started) in std::mem::take(&mut self.sessions) {
            let stop = crate::call::channel_op::RecordingStop {
                path,
                duration: ended.saturating_duration_since(started),
                ended_at_ms: now_ms,
            };
            tracing::info!(?stop, "MixMonitor ended with the channel");
            self.input(Input::RecordingStopped(stop));
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
        self.down.send_replace(true);
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
            CallCommand::HangupLeg { leg_uuid, reply } => {
                tracing::info!(b_leg = %leg_uuid, "hangup of the Dial's callee requested through the REST API");
                let input = Input::ApiHangupLeg {
                    leg_uuid: leg_uuid.clone(),
                };
                match self.input(input) {
                    Reaction::Acted => self.leg_hangups.push((leg_uuid, reply)),
                    _ if self.engine.is_closing() => {
                        let _ = reply.send(HangupReply::Ending);
                    }
                    _ => {
                        let _ = reply.send(HangupReply::Over);
                    }
                }
            }
            // Not supported yet on Asterisk: a running RECORD FILE ends only at its own
            // limits (FastAGI is busy with it; ARI cannot interrupt it) and background
            // recordings are refused, so the REST stop finds nothing it can stop.
            CallCommand::StopRecordings { reply } if self.services.ami.is_some() => {
                tracing::info!("stopping the recordings requested through the REST API");
                if !self.services.ami.as_ref().is_some_and(|a| a.is_connected()) {
                    let why = "AMI is not connected: the recordings cannot be stopped now";
                    tracing::warn!("{why}");
                    let _ = reply.send(Err(why.to_string()));
                    return;
                }
                let acted = self.input(Input::ApiStopRecordings) == Reaction::Acted;
                let _ = reply.send(Ok(acted));
            }
            CallCommand::StopRecordings { reply } => {
                if self.sessions.is_empty() && self.recording.is_none() {
                    let _ = reply.send(Ok(false));
                    return;
                }
                let why = "not supported yet on Asterisk without AMI: stopping a recording \
                           through the REST API (RECORD FILE and MixMonitor run on the busy \
                           FastAGI socket and ARI cannot stop them; set [asterisk] ami_address)";
                tracing::warn!("{why}");
                let _ = reply.send(Err(why.to_string()));
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
        for row in std::mem::take(&mut self.closing_recordings) {
            // Before the record (and the RecordStop rows in its transaction), so the
            // application that hears of a recording can fetch it; bounded, as on
            // FreeSWITCH (the file stays on disk, logged).
            let id = row.recording_id.clone();
            let write = self.services.calls.store.add_recording(row);
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
        record::keep(
            &self.services.calls,
            &self.resolved,
            rec,
            post_call,
            notices,
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
    job: Job,
) {
    let mut report = Report::Op {
        id,
        outcome: OpOutcome::Refused("no command".into()),
        hangup_result: false,
    };
    // Held until the last reply: the synthesis is over only when Flite has returned.
    let _turn = match job.flite {
        Some((queue, mut down)) => match queue.turn(&mut down).await {
            Some(turn) => Some(turn),
            None => {
                tracing::info!("the channel ended while its Speak waited for a Flite turn");
                let _ = reports.send(Report::Op {
                    id,
                    outcome: OpOutcome::Failed("the channel ended before its Flite turn".into()),
                    hangup_result: false,
                });
                return;
            }
        },
        None => None,
    };
    for cmd in cmds {
        tracing::debug!(command = %cmd.line(), "AGI command");
        report = match conn.command(cmd).await {
            Ok(reply) => {
                if let Some(digit) = render::digit(&reply).filter(|_| job.reads_digit) {
                    let _ = reports.send(Report::Digit(digit));
                }
                Report::Op {
                    id,
                    outcome: render::outcome(&reply),
                    hangup_result: reply.is_hangup_result(),
                }
            }
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

/// How long the end of a bridged `hangupOnStar` Dial waits for AMI's `DTMFEnd` of the
/// `*` that may have ended it (the event and `Dial()`'s return race; the event came
/// first in every capture).
const STAR_EVENT_GRACE: Duration = Duration::from_millis(300);

/// How often a refused `StopMixMonitor` is tried again, and the pause between tries (a
/// stop racing the MixMonitor's own start on the FastAGI socket).
const MIX_MONITOR_STOP_RETRIES: u32 = 5;
const MIX_MONITOR_STOP_PAUSE: Duration = Duration::from_millis(200);

/// How often ARI is asked whether a running Dial's callee answered.
const DIAL_ANSWER_POLL: Duration = Duration::from_millis(250);

/// Asks ARI every [`DIAL_ANSWER_POLL`] for the caller's `DIALEDPEERNUMBER` (cleared before
/// the Dial): set means a callee answered. Ends at the first answer, when the channel is
/// gone, or when aborted at the Dial's end. One small GET per dialling call per poll.
async fn watch_dial_answer(
    ari: Ari,
    uuid: String,
    id: OpId,
    routine: bool,
    reports: mpsc::UnboundedSender<Report>,
) {
    loop {
        tokio::time::sleep(DIAL_ANSWER_POLL).await;
        // With the answering routine, DIALEDPEERNUMBER is set before the callee is
        // asked (`dial-confirm-key.txt`): the routine's mark says when it is bridged.
        if routine {
            match ari.variable(&uuid, render::DIAL_MARK).await {
                Ok(mark) if mark.trim() == render::DIAL_BRIDGED => {}
                Ok(mark) if mark.trim() == render::DIAL_UNCONFIRMED => return,
                Ok(_) => continue,
                Err(AriError::ChannelGone) => {
                    if !matches!(ari.channel_exists(&uuid).await, Ok(true)) {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "ARI poll of the Dial's mark failed");
                    continue;
                }
            }
        }
        match ari.variable(&uuid, "DIALEDPEERNUMBER").await {
            Ok(peer) if !peer.trim().is_empty() => {
                let _ = reports.send(Report::DialAnswered { id, peer });
                return;
            }
            Ok(_) => {}
            // 404 is also ARI's answer for a variable it does not have.
            Err(AriError::ChannelGone) => {
                if !matches!(ari.channel_exists(&uuid).await, Ok(true)) {
                    return;
                }
            }
            Err(e) => tracing::debug!(error = %e, "ARI poll of the Dial's answer failed"),
        }
    }
}

/// How an operation's commands are run (see [`CallTask::job_for`]).
struct Job {
    /// The reply's `result=` is a digit pressed (a Gather's prompt, a listen).
    reads_digit: bool,
    /// A Flite synthesis: wait for a turn in the server's queue first.
    flite: Option<(tts::FliteQueue, watch::Receiver<bool>)>,
}

/// The longest single `WAIT FOR DIGIT` of a listening Gather (another follows until the
/// Gather's deadline).
const MAX_LISTEN: Duration = Duration::from_secs(10);

/// How early a `TIMEOUT(absolute)` may fire before its nominal time (whole seconds).
const SCHEDULE_EARLY_FIRE: Duration = Duration::from_millis(1500);

/// How long a call cut off at shutdown waits for the switch's hangup.
const CUT_OFF_WAIT: Duration = Duration::from_secs(3);

/// A Dial that bridged `b_leg`: the callee's cause (ALLOTTED_TIMEOUT when the bridge
/// lasted the `timeLimit`, which Asterisk's `L()` ended), the other legs lost the race.
fn bridged_report(
    run: &DialRun,
    facts: &DialFacts,
    b_leg: String,
) -> crate::call::channel_op::BridgeReport {
    use crate::call::channel_op::{BridgeOutcome, BridgeReport};
    let secs = facts.answered_secs.unwrap_or(0);
    let callee_cause = if secs + 1 >= run.legs.bridge.time_limit.as_secs() {
        HangupCause::ALLOTTED_TIMEOUT
    } else {
        render::hangup_cause(facts.cause.as_deref())
    };
    let leg_causes = run
        .peers
        .iter()
        .filter(|(_, uuid)| *uuid != b_leg)
        .map(|(_, uuid)| (uuid.clone(), HangupCause::LOSE_RACE))
        .collect();
    BridgeReport {
        outcome: BridgeOutcome::Bridged {
            b_leg,
            callee_cause: Some(callee_cause),
        },
        leg_causes,
    }
}
