//! One simulated call: the switch's `socket <addr> async full` application talking to
//! the client, and the channel it controls.
//!
//! One task per call owns the channel, the TCP connection and every timer, so nothing
//! is shared or locked on the hot path. Each stimulus (a command, a message from another
//! connection, a timer, the caller) is handled to completion: the reply goes out first,
//! then every event the switch would fire, in the switch's order, as the transcripts
//! show (`reference/freeswitch-esl.md` §2):
//!
//! - `sendmsg` replies `+OK` at once and queues the command (async mode); the park loop
//!   runs queued commands in order. An app sent with `event-lock: true` blocks the queue
//!   until it ends; without it, a later command runs *nested* inside a running
//!   playback/speak/sleep, which resumes afterwards (or ends, if the nested command hung
//!   up the call). In static mode (`socket <addr>` without `async`, transcript o2) the
//!   command runs inline instead: its reply is held until it is done, nothing else is
//!   read meanwhile, and the channel never parks;
//! - an app runs as CHANNEL_EXECUTE, its effects, CHANNEL_EXECUTE_COMPLETE with the
//!   `Application-UUID` the client chose;
//! - the hangup sequence is CHANNEL_HANGUP, EXECUTE_COMPLETE of every running app,
//!   CHANNEL_UNPARK, EXECUTE_COMPLETE of `socket`, CHANNEL_STATE CS_HANGUP and
//!   CS_REPORTING, CHANNEL_HANGUP_COMPLETE with the CDR variables; then the linger
//!   notice, and the socket stays open (linger), closes N s later (`linger N`) or at once
//!   with the disconnect notice (no linger). Queued commands never run after a hangup.
//!   In static mode the socket closes with the disconnect notice right after the running
//!   apps' EXECUTE_COMPLETE; the rest reaches inbound listeners only.

mod caller_media;
mod dial_out;

pub(crate) use dial_out::{DialOut, OriginateResult};

use super::api;
use super::caller_leg::{CallerEnd, CallerLeg};
use super::channel::{Channel, ChannelParams, HangupSide, OtherLeg};
use super::command::{Command, CommandReader};
use super::event::Subscriptions;
use super::registry::Leg;
use super::report::{AppRecord, AppStatus, CallReport, ChanMsg, HangupCommandRecord, Outcome};
use super::script::{CallScript, Callee, CallerAction, PlayLength};
use super::wire::{self, EventFormat, SimEvent};
use super::{LingerNotice, Shared};
use crate::recording::{self, RecordArgs, SessionRecording, Stopped};
use bytes::BytesMut;
use caller_media::CallerMedia;
use rand::RngExt;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use voxbridge::cause::HangupCause;

/// Spacing of the digits of one DTMF string (simulated).
/// Between two digits of one `uuid_send_dtmf`: 0.52 s apart in transcript l (`1234#`),
/// 0.64 s in h.
const DTMF_GAP: Duration = Duration::from_millis(520);
/// A `loops` repetition stops after a run shorter than this (simulated, §2.5).
const MIN_LOOP_RUN_US: i64 = 500_000;

/// Everything a call task starts with.
pub(crate) struct CallSetup {
    pub shared: Arc<Shared>,
    pub script: CallScript,
    pub target: SocketAddr,
    pub uuid: String,
    pub caller_uuid: String,
    pub rx: mpsc::UnboundedReceiver<ChanMsg>,
    pub tx: mpsc::UnboundedSender<ChanMsg>,
    pub report: oneshot::Sender<CallReport>,
    /// For `originate`: `+OK <uuid>\n` on answer/early media, `-ERR <CAUSE>\n` on failure.
    pub originate: Option<oneshot::Sender<String>>,
    /// For `originate … '&socket(…)'`: the channel is the dialled one, and the socket
    /// connects only once it answered (module `dial_out`).
    pub dial_out: Option<DialOut>,
}

/// Runs one call to the end and sends its report.
pub(crate) async fn run(setup: CallSetup) {
    let CallSetup {
        shared,
        script,
        target,
        uuid,
        caller_uuid,
        rx,
        tx,
        report,
        originate,
        dial_out,
    } = setup;
    let mut rx = rx;
    let mut call = Call::new(
        shared.clone(),
        script,
        target,
        &uuid,
        &caller_uuid,
        tx,
        originate,
        dial_out.as_ref().map(|d| d.endpoint.clone()),
    );
    if let Some(d) = dial_out {
        if !call.ring_out(d, &mut rx).await {
            let r = call.finish();
            shared.registry.unregister(&uuid, &caller_uuid);
            let _ = report.send(r);
            return;
        }
    }
    // Held until the client's first command shows it is serving this connection.
    let slot = shared.connect_slots.clone().acquire_owned().await.ok();
    match TcpStream::connect(target).await {
        Ok(stream) => {
            let _ = stream.set_nodelay(true);
            call.connect_slot = slot;
            call.report.connected = true;
            call.connected_at = Some(Instant::now());
            call.serve(stream, rx).await;
        }
        Err(e) => {
            // f8: nothing listens; `socket` returns, the dialplan runs out.
            tracing::debug!(%target, error = %e, "sim: socket app could not connect");
            call.hangup(HangupCause::NORMAL_CLEARING, HangupSide::Local);
        }
    }
    let r = call.finish();
    shared.registry.unregister(&uuid, &caller_uuid);
    let _ = report.send(r);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Playback(PlayLength),
    Speak,
    Sleep,
    /// `record`; `by_silence`: its natural end is the caller's silence (else its time
    /// limit).
    Record {
        by_silence: bool,
    },
    /// `bridge`: driven by [`BridgeStep`] timers, ends when either leg does.
    Bridge,
    Instant,
}

impl Kind {
    /// Apps that poll for queued commands while they run (`switch_ivr_parse_all_events`).
    fn nestable(self) -> bool {
        !matches!(self, Kind::Instant)
    }
}

/// A queued `sendmsg execute`.
#[derive(Clone, Debug)]
struct ExecMsg {
    app: String,
    arg: String,
    event_uuid: Option<String>,
    uuid_name: Option<String>,
    event_lock: bool,
    loops: i64,
    record: usize,
}

#[derive(Clone, Debug)]
enum Queued {
    Execute(ExecMsg),
    /// `call-command: hangup`; `record` indexes [`CallReport::hangup_commands`].
    Hangup {
        cause: HangupCause,
        record: usize,
    },
}

/// An app on the execution stack (innermost last).
#[derive(Debug)]
struct Running {
    msg: ExecMsg,
    arg: String,
    app_uuid: String,
    kind: Kind,
    started_us: i64,
    loop_no: i64,
    /// Real deadline while active; `None` while suspended or endless.
    deadline: Option<Instant>,
    /// Real time left when suspended by a nested app (`None` = endless).
    remaining: Option<Duration>,
    suspended: bool,
    /// Its simulated length when it runs to its natural end (`None` = endless).
    length: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Natural,
    /// `uuid_break` or a playback terminator.
    Break,
    Hangup {
        remote: bool,
    },
}

#[derive(Debug)]
enum TimerKind {
    Caller(CallerEvent),
    OriginateTimeout,
    Park,
    FirstPacket,
    LingerClose,
    Bridge(BridgeStep),
}

/// What the B-leg of the running `bridge` does next.
#[derive(Debug, Clone, Copy)]
enum BridgeStep {
    /// 180 Ringing.
    Ring,
    /// 200 OK: the caller is answered (if not yet) and bridged.
    Answer,
    /// The callee hangs up (NORMAL_CLEARING).
    CalleeHangsUp,
    /// A final error response with this cause.
    Refused(HangupCause),
    /// The dial string's `originate_timeout` ran out.
    Timeout,
    /// The callee leg's `execute_on_answer='sched_hangup +N <cause>'` fired: the switch
    /// hangs the callee up with that cause (a Dial's `timeLimit`).
    SchedHangup(HangupCause),
    /// The bridged callee presses its scripted digits ([`CallScript::callee_digits`]).
    CalleeDigits,
}

/// The B-leg of the running `bridge`.
#[derive(Debug)]
struct BLeg {
    uuid: String,
    channel_name: String,
    destination: String,
    created_us: i64,
    bridged: bool,
    /// How the callee ended a bridged call, if it did.
    hangup_cause: Option<HangupCause>,
}

#[derive(Debug)]
enum CallerEvent {
    HangUp,
    Dtmf(char),
}

#[derive(Debug)]
struct Timer {
    at: Instant,
    kind: TimerKind,
}

#[derive(Debug)]
struct Sched {
    id: u64,
    at_us: i64,
    cause: HangupCause,
}

/// Work that must follow the reply to the current command.
#[derive(Debug)]
enum Pending {
    Hangup(HangupCause, HangupSide),
    CallerHangup(HangupCause),
    Break {
        all: bool,
    },
    Dtmf(String),
    Event(Box<SimEvent>),
    CalleeHangup(HangupCause),
    /// `uuid_record <uuid> start <path>`.
    RecordStart(String),
    /// `uuid_record <uuid> stop <path|all>`.
    RecordStop(String),
}

struct Call {
    shared: Arc<Shared>,
    script: CallScript,
    ch: Channel,
    caller_uuid: String,
    self_tx: mpsc::UnboundedSender<ChanMsg>,
    socket_data: String,
    out: Vec<u8>,
    sock_open: bool,
    close_now: bool,
    subs: Subscriptions,
    myevents: bool,
    linger: Option<i64>,
    resume: bool,
    got_first_packet: bool,
    got_connect: bool,
    /// Real time the TCP connection to the client was made (for latency figures).
    connected_at: Option<Instant>,
    parked: bool,
    acked: bool,
    queue: VecDeque<Queued>,
    stack: Vec<Running>,
    /// `record_session`s in progress (media bugs, independent of the app stack).
    session_recordings: Vec<SessionRecording>,
    timers: Vec<Timer>,
    scheds: Vec<Sched>,
    pending: Vec<Pending>,
    respond_code: Option<u16>,
    apps_started: usize,
    left_parked: bool,
    originate: Option<oneshot::Sender<String>>,
    connect_slot: Option<tokio::sync::OwnedSemaphorePermit>,
    /// Placed by `originate`: the caller's leg is a channel of this switch too, and
    /// inbound listeners see it end (module `caller_leg`).
    originated: bool,
    /// The cause the caller's leg ended with when it cancelled (NO_ANSWER when it gave up
    /// waiting, else the cause it was killed with).
    caller_cancel_cause: Option<HangupCause>,
    /// The callee of the running `bridge`.
    b_leg: Option<BLeg>,
    /// The other legs of a multi-leg bridge: uuid, and the cause of a leg that refused
    /// (`None`: it rang, so it ends LOSE_RACE when another answers).
    race_losers: Vec<(String, Option<HangupCause>)>,
    /// Where the bridge's one simulated callee stands among its legs (dial-string
    /// order, as `originate_causes` lists them).
    race_position: usize,
    /// What the caller's leg sent and received (module `caller_media`).
    caller_media: CallerMedia,
    /// The running bridge's `execute_on_answer` hangup of its callee (a Dial's
    /// `timeLimit`): fires this long after the answer, with this cause.
    bridge_sched_hangup: Option<(Duration, HangupCause)>,
    /// The running bridge's answer confirmation (`group_confirm_key` of its leg): the
    /// key (`exec`: the confirm file is an app run on the callee) and whether the callee
    /// has pressed it.
    bridge_confirm: Option<(String, bool)>,
    /// `divert_events on`: events the channel queues for itself (a digit action's
    /// match) go to the socket.
    divert: bool,
    /// `bind_digit_action <realm>,<binding>,<string>,<value>,peer`: bindings on the
    /// digits of the bridge's other leg, `(realm, binding, string, value)`.
    peer_digit_actions: Vec<(String, String, String, String)>,
    /// The other leg's digits the digit machine holds (no binding matched them yet).
    peer_digits: String,
    /// Static mode: the reply to the `sendmsg` being run inline, and where in `out` it
    /// goes once the command is done; nothing is written or read meanwhile.
    held_reply: Option<(usize, Vec<u8>)>,
    report: CallReport,
}

impl Call {
    #[allow(clippy::too_many_arguments)] // one per part of the call's setup
    fn new(
        shared: Arc<Shared>,
        script: CallScript,
        target: SocketAddr,
        uuid: &str,
        caller_uuid: &str,
        self_tx: mpsc::UnboundedSender<ChanMsg>,
        originate: Option<oneshot::Sender<String>>,
        dialled: Option<String>,
    ) -> Self {
        let created_us = shared.sw.clock.now_us();
        let socket_data = format!(
            "{}:{}{}{}",
            target.ip(),
            target.port(),
            if script.sync { "" } else { " async" },
            if script.full { " full" } else { "" }
        );
        let ch = Channel::new(&ChannelParams {
            uuid: uuid.to_string(),
            caller_number: script.caller_number.clone(),
            caller_name: script.caller_name.clone(),
            destination: script.destination.clone(),
            answered: script.answered,
            socket_data: socket_data.clone(),
            socket_host: target.ip().to_string(),
            extra_vars: script.variables.clone(),
            created_us,
            dialled,
        });
        let mut report = CallReport::aborted(uuid.to_string(), caller_uuid.to_string(), "");
        if script.answered {
            report.answered_at = Some(Duration::ZERO);
            report.early_media_at = Some(Duration::ZERO);
        }
        let mut call = Call {
            shared,
            ch,
            caller_uuid: caller_uuid.to_string(),
            self_tx,
            socket_data,
            out: Vec::new(),
            sock_open: false,
            close_now: false,
            subs: Subscriptions::default(),
            myevents: false,
            linger: None,
            resume: false,
            got_first_packet: false,
            got_connect: false,
            connected_at: None,
            parked: false,
            acked: false,
            queue: VecDeque::new(),
            stack: Vec::new(),
            session_recordings: Vec::new(),
            timers: Vec::new(),
            scheds: Vec::new(),
            pending: Vec::new(),
            respond_code: None,
            apps_started: 0,
            left_parked: false,
            originated: originate.is_some(),
            originate,
            connect_slot: None,
            caller_cancel_cause: None,
            b_leg: None,
            bridge_sched_hangup: None,
            bridge_confirm: None,
            divert: false,
            peer_digit_actions: Vec::new(),
            peer_digits: String::new(),
            race_losers: Vec::new(),
            race_position: 0,
            caller_media: CallerMedia::default(),
            held_reply: None,
            report,
            script,
        };
        if call.script.answered {
            call.resolve_originate_ok();
        }
        let clock = call.shared.sw.clock.clone();
        let actions = call.script.caller.clone();
        for a in actions {
            match a {
                CallerAction::HangUpAt(at) => call.timers.push(Timer {
                    at: clock.deadline(at),
                    kind: TimerKind::Caller(CallerEvent::HangUp),
                }),
                CallerAction::DtmfAt { at, digits } => {
                    call.schedule_dtmf(clock.deadline(at), &digits)
                }
                _ => {}
            }
        }
        // A dialled channel has no caller waiting for it: its callee's ring timeout is
        // the originate's (module `dial_out`).
        if !call.script.answered && !call.ch.outbound {
            call.timers.push(Timer {
                at: clock.deadline(call.script.originate_timeout),
                kind: TimerKind::OriginateTimeout,
            });
        }
        call
    }

    fn since_start(&self) -> Duration {
        Duration::from_micros((self.shared.sw.clock.now_us() - self.ch.created_us).max(0) as u64)
    }

    // ---------------------------------------------------------------- I/O loop

    async fn serve(&mut self, stream: TcpStream, mut rx: mpsc::UnboundedReceiver<ChanMsg>) {
        self.sock_open = true;
        self.timers.push(Timer {
            at: Instant::now() + self.shared.config.first_packet_timeout,
            kind: TimerKind::FirstPacket,
        });
        let (mut rd, mut wr) = stream.into_split();
        let mut buf = BytesMut::with_capacity(4096);
        let mut reader = CommandReader::default();
        let mut write_failed = false;
        loop {
            if self.release_held_reply() {
                // Static mode reads the next command only now.
                self.read_commands(&mut reader, &mut buf).await;
                self.release_held_reply();
            }
            if !self.out.is_empty() && self.held_reply.is_none() {
                if !write_failed && wr.write_all(&self.out).await.is_err() {
                    write_failed = true;
                    self.peer_gone();
                }
                self.out.clear();
            }
            if self.close_now || !self.sock_open {
                break;
            }
            let deadline = self.next_deadline();
            tokio::select! {
                msg = rx.recv() => {
                    if let Some(msg) = msg {
                        self.on_message(msg);
                    }
                }
                r = rd.read_buf(&mut buf), if self.held_reply.is_none() => {
                    match r {
                        Ok(0) | Err(_) => self.peer_gone(),
                        Ok(_) => self.read_commands(&mut reader, &mut buf).await,
                    }
                }
                _ = sleep_until_opt(deadline) => self.on_timers(),
            }
        }
        let _ = wr.shutdown().await;
    }

    /// Handles the whole commands in `buf`, up to one whose reply static mode holds.
    async fn read_commands(&mut self, reader: &mut CommandReader, buf: &mut BytesMut) {
        while !self.close_now && self.held_reply.is_none() {
            match reader.next(buf) {
                Ok(Some(cmd)) => self.on_command(cmd).await,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(uuid = %self.ch.uuid, error = %e, "sim: closing socket on a bad packet");
                    self.close_socket();
                    break;
                }
            }
        }
    }

    /// Static mode: puts the held `sendmsg` reply in place once its command is done (the
    /// app ended, or the channel is down); true if it did.
    fn release_held_reply(&mut self) -> bool {
        let done = self.stack.is_empty() && self.queue.is_empty();
        if !(done || self.ch.is_down() || self.close_now) {
            return false;
        }
        let Some((pos, reply)) = self.held_reply.take() else {
            return false;
        };
        let pos = pos.min(self.out.len());
        self.out.splice(pos..pos, reply);
        true
    }

    fn next_deadline(&self) -> Option<Instant> {
        let clock = &self.shared.sw.clock;
        let timers = self.timers.iter().map(|t| t.at);
        let app = self.stack.last().and_then(|r| r.deadline);
        let scheds = self.scheds.iter().map(|s| clock.instant_at(s.at_us));
        timers.chain(app).chain(scheds).min()
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        // Timers in time order; each may change what the next one finds.
        loop {
            let due = self
                .timers
                .iter()
                .enumerate()
                .filter(|(_, t)| t.at <= now)
                .min_by_key(|(_, t)| t.at)
                .map(|(i, _)| i);
            let Some(i) = due else { break };
            let t = self.timers.swap_remove(i);
            self.on_timer(t.kind);
        }
        let now_us = self.shared.sw.clock.now_us();
        while let Some(pos) = self.scheds.iter().position(|s| s.at_us <= now_us) {
            let s = self.scheds.remove(pos);
            tracing::debug!(uuid = %self.ch.uuid, id = s.id, "sim: scheduled hangup fires");
            self.hangup(s.cause, HangupSide::Local);
        }
        if let Some(top) = self.stack.last() {
            if top.deadline.is_some_and(|d| d <= now) {
                self.complete_top(End::Natural);
            }
        }
        self.pump();
    }

    fn on_timer(&mut self, kind: TimerKind) {
        match kind {
            TimerKind::Caller(CallerEvent::HangUp) => {
                self.caller_hangup(HangupCause::NORMAL_CLEARING)
            }
            TimerKind::Caller(CallerEvent::Dtmf(d)) => self.dtmf(d),
            TimerKind::OriginateTimeout => {
                if !self.ch.is_down() && !self.ch.answered() && !self.ch.media {
                    // f7: the caller's originate gives up with NO_ANSWER and CANCELs.
                    self.caller_hangup(HangupCause::NO_ANSWER);
                }
            }
            TimerKind::Park => self.start_park(),
            TimerKind::FirstPacket => {
                if !self.got_first_packet {
                    tracing::debug!(uuid = %self.ch.uuid, "sim: no first packet in time, closing");
                    self.close_socket();
                }
            }
            TimerKind::Bridge(step) => self.bridge_step(step),
            TimerKind::LingerClose => {
                self.out
                    .extend(wire::disconnect_notice(Some(&self.ch.uuid), wire::GOODBYE));
                self.close_socket();
            }
        }
    }

    fn on_message(&mut self, msg: ChanMsg) {
        match msg {
            ChanMsg::Api { line, leg, reply } => {
                let text = self.channel_api(&line, leg);
                let _ = reply.send(text);
            }
            ChanMsg::Sendmsg { cmd, reply } => {
                let text = self.sendmsg(&cmd);
                let _ = reply.send(text);
            }
            ChanMsg::CallerHangup => self.caller_hangup(HangupCause::NORMAL_CLEARING),
            ChanMsg::CallerDtmf(digits) => self.schedule_dtmf(Instant::now(), &digits),
            ChanMsg::JobDone(event) => self.fire(*event),
        }
        self.run_pending();
        self.pump();
    }

    /// The client closed the connection (or it broke).
    fn peer_gone(&mut self) {
        self.close_socket();
    }

    fn close_socket(&mut self) {
        if !self.sock_open && self.close_now {
            return;
        }
        self.sock_open = false;
        self.close_now = true;
        self.connect_slot = None;
        if !self.ch.is_down() {
            if self.resume {
                // §2.7: `socket` returns and the dialplan has nothing left.
                self.hangup(HangupCause::NORMAL_CLEARING, HangupSide::Local);
            } else {
                // Transcript f7: the channel stays parked until the caller gives up.
                self.left_parked = true;
            }
        }
    }

    // ---------------------------------------------------------------- commands

    async fn on_command(&mut self, cmd: Command) {
        self.report.commands.push(cmd.to_text());
        if self.report.first_sendmsg_after.is_none() && cmd.to_text().starts_with("sendmsg") {
            self.report.first_sendmsg_after = self.connected_at.map(|t| t.elapsed());
        }
        let first = !self.got_first_packet;
        self.got_first_packet = true;
        self.connect_slot = None;
        let reply = self.dispatch(&cmd).await;
        // §2.2: only `connect` answers the first packet.
        if let Some(reply) = reply {
            if self.script.sync && cmd.is("sendmsg") && self.got_connect {
                // Static mode runs the command inline: the reply waits for its end.
                self.held_reply = Some((self.out.len(), reply));
            } else if !first || cmd.is("connect") {
                self.out.extend(reply);
            }
        }
        self.run_pending();
        self.pump();
    }

    async fn dispatch(&mut self, cmd: &Command) -> Option<Vec<u8>> {
        let reply = |t: &str| Some(wire::command_reply(t));
        if cmd.is("exit") || cmd.is("...") {
            self.out.extend(wire::command_reply("+OK bye"));
            self.out
                .extend(wire::disconnect_notice(Some(&self.ch.uuid), wire::GOODBYE));
            self.close_socket();
            return None;
        }
        if cmd.is("connect") {
            self.got_connect = true;
            self.report.got_connect = true;
            let data = self.ch.channel_data(&self.shared.sw);
            // Static mode never parks: the socket app reads commands itself.
            if !self.parked && !self.script.sync && self.park_pending().is_none() {
                let delay = self.shared.config.park_delay;
                if delay.is_zero() {
                    self.start_park();
                } else {
                    let at = self.shared.sw.clock.deadline(delay);
                    self.timers.push(Timer {
                        at,
                        kind: TimerKind::Park,
                    });
                }
            }
            return Some(wire::connect_reply(
                &data,
                self.script.full,
                self.script.sync,
            ));
        }
        if cmd.is("filter") {
            return reply(&filter(&mut self.subs, cmd.args()));
        }
        if cmd.is("resume") {
            self.resume = true;
            self.ch.vars.set("socket_resume", "true");
            return reply("+OK");
        }
        if cmd.is("getvar") {
            return match self.ch.vars.get(cmd.args()) {
                Some(v) if !v.is_empty() => reply(v),
                _ => reply("-ERR command not found"),
            };
        }
        if cmd.is("myevents") {
            if self.myevents {
                return reply("-ERR aready enabled.");
            }
            self.myevents = true;
            let lower = cmd.line.to_ascii_lowercase();
            if lower.contains("json") {
                self.subs.format = EventFormat::Json;
            } else if lower.contains("xml") {
                return reply("-ERR xml events are not supported by the simulator");
            }
            self.subs.add_myevents();
            self.subs.only_uuid = Some(self.ch.uuid.clone());
            return reply("+OK Events Enabled");
        }
        if cmd.is("divert_events") {
            return match cmd.args() {
                a if a.eq_ignore_ascii_case("on") => {
                    self.divert = true;
                    reply("+OK events diverted")
                }
                a if a.eq_ignore_ascii_case("off") => {
                    self.divert = false;
                    reply("+OK events not diverted")
                }
                _ => reply("-ERR missing value."),
            };
        }
        if cmd.is("sendmsg") {
            let text = self.sendmsg_routed(cmd).await;
            return reply(text.trim_end());
        }
        // Everything below needs `full` (§2.3).
        if !self.script.full {
            return reply("-ERR command not found");
        }
        if cmd.is("nolinger") {
            self.linger = None;
            return reply("+OK will not linger");
        }
        if cmd.is("linger") {
            let secs = cmd.args().parse::<i64>().unwrap_or(0);
            return if secs > 0 {
                self.linger = Some(secs);
                reply(&format!("+OK will linger {secs} seconds"))
            } else {
                self.linger = Some(-1);
                reply("+OK will linger")
            };
        }
        if cmd.is("nixevent") {
            self.subs.remove_names(cmd.args().split_whitespace());
            return reply("+OK events nixed");
        }
        if cmd.is("noevents") {
            return if self.subs.any() {
                self.subs.clear_names();
                reply("+OK no longer listening for events")
            } else {
                reply("-ERR not listening for events")
            };
        }
        if cmd.is("event") {
            return reply(&event_command(&mut self.subs, cmd.args()));
        }
        if cmd.is("nolog") {
            return reply("+OK no longer logging");
        }
        if cmd.is("log") {
            return reply("+OK log level debug [7]");
        }
        if cmd.is("api ") {
            let out = self.api_from_socket(cmd.args()).await;
            return Some(wire::api_response(&out));
        }
        if cmd.is("bgapi ") {
            let job = cmd
                .header("Job-UUID")
                .map(str::to_string)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            self.bgapi_from_socket(cmd.args().to_string(), job.clone());
            return Some(wire::bgapi_reply(&job));
        }
        reply("-ERR command not found")
    }

    fn park_pending(&self) -> Option<&Timer> {
        self.timers
            .iter()
            .find(|t| matches!(t.kind, TimerKind::Park))
    }

    /// `sendmsg [uuid]`: own channel here, another one through the registry.
    async fn sendmsg_routed(&mut self, cmd: &Command) -> String {
        let target = {
            let a = cmd.args();
            if a.is_empty() {
                cmd.header("session-id").unwrap_or("").trim().to_string()
            } else {
                a.to_string()
            }
        };
        if target.is_empty() || target == self.ch.uuid {
            return self.sendmsg(cmd);
        }
        let Some(entry) = self.shared.registry.get(&target) else {
            return format!("-ERR invalid session id [{target}]");
        };
        let (tx, rx) = oneshot::channel();
        let msg = ChanMsg::Sendmsg {
            cmd: cmd.clone(),
            reply: tx,
        };
        if entry.tx.send(msg).is_err() {
            return format!("-ERR invalid session id [{target}]");
        }
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_else(|| format!("-ERR invalid session id [{target}]"))
    }

    /// `sendmsg` to this channel: queued, `+OK` at once (async mode).
    fn sendmsg(&mut self, cmd: &Command) -> String {
        let command = cmd
            .header("call-command")
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match command.as_str() {
            "execute" => {
                let app = cmd
                    .header("execute-app-name")
                    .unwrap_or("")
                    .trim()
                    .to_string();
                let mut arg = cmd.header("execute-app-arg").unwrap_or("").to_string();
                if arg.is_empty()
                    && cmd
                        .header("content-type")
                        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/plain"))
                {
                    if let Some(body) = &cmd.body {
                        arg = String::from_utf8_lossy(body).into_owned();
                    }
                }
                let loops = cmd
                    .header("loops")
                    .and_then(|l| l.trim().parse::<i64>().ok())
                    .unwrap_or(1);
                let msg = ExecMsg {
                    event_uuid: cmd.header("Event-UUID").map(|s| s.trim().to_string()),
                    uuid_name: cmd.header("Event-UUID-Name").map(|s| s.trim().to_string()),
                    event_lock: cmd.header("event-lock").is_some_and(switch_true),
                    loops: if loops == 0 { 1 } else { loops },
                    record: self.report.apps.len(),
                    app: app.clone(),
                    arg: arg.clone(),
                };
                self.report.apps.push(AppRecord {
                    name: app,
                    arg,
                    event_uuid: msg.event_uuid.clone(),
                    event_lock: msg.event_lock,
                    status: AppStatus::Pending,
                    response: None,
                    nested: false,
                    started_at: None,
                    ended_at: None,
                    runs: 0,
                });
                if self.ch.is_down() || self.left_parked {
                    self.report.apps[msg.record].status = AppStatus::Skipped;
                } else {
                    self.queue.push_back(Queued::Execute(msg));
                }
            }
            "hangup" => {
                let cause = cmd
                    .header("hangup-cause")
                    .map(HangupCause::parse_switch)
                    .unwrap_or(HangupCause::NORMAL_CLEARING);
                let record = self.report.hangup_commands.len();
                self.report.hangup_commands.push(HangupCommandRecord {
                    cause,
                    after_apps: self.report.apps.len(),
                    status: AppStatus::Pending,
                });
                if self.ch.is_down() {
                    self.report.hangup_commands[record].status = AppStatus::Skipped;
                } else {
                    self.queue.push_back(Queued::Hangup { cause, record });
                }
            }
            // unicast, nomedia, xferext and unknown commands: nothing the simulator models.
            _ => {}
        }
        "+OK".into()
    }

    /// Which of this call's legs `uuid` names: commands for them are handled by this
    /// task (routing them through the registry would wait on this very task).
    fn own_leg(&self, uuid: &str) -> Option<Leg> {
        if uuid == self.ch.uuid {
            Some(Leg::Controlled)
        } else if uuid == self.caller_uuid {
            Some(Leg::Caller)
        } else if self.b_leg.as_ref().is_some_and(|b| b.uuid == uuid) {
            Some(Leg::Callee)
        } else {
            None
        }
    }

    /// `api …` on this socket: own channel handled here, anything else routed.
    async fn api_from_socket(&mut self, line: &str) -> String {
        self.shared.count_api(line);
        let (cmd, args) = api::split(line);
        if api::is_channel_command(cmd) {
            if let Some(leg) = api::target_uuid(cmd, args).and_then(|u| self.own_leg(u)) {
                return self.channel_api(line, leg);
            }
        }
        if cmd == "sched_del" && args.split_whitespace().next() == Some(self.ch.uuid.as_str()) {
            return self.channel_api(line, Leg::Controlled);
        }
        api::run(&self.shared, line).await
    }

    fn bgapi_from_socket(&mut self, line: String, job: String) {
        self.shared.count_api(&line);
        let (cmd, args) = api::split(&line);
        let own = api::is_channel_command(cmd)
            .then(|| api::target_uuid(cmd, args).and_then(|u| self.own_leg(u)))
            .flatten();
        if let Some(leg) = own {
            let out = self.channel_api(&line, leg);
            let ev = api::background_job(&self.shared, &job, Some(&self.ch.uuid), &line, &out);
            self.pending.push(Pending::Event(Box::new(ev)));
            return;
        }
        let shared = self.shared.clone();
        let tx = self.self_tx.clone();
        let owner = self.ch.uuid.clone();
        tokio::spawn(async move {
            let out = api::run(&shared, &line).await;
            let ev = api::background_job(&shared, &job, Some(&owner), &line, &out);
            if tx.send(ChanMsg::JobDone(Box::new(ev.clone()))).is_err() {
                // The socket is gone; inbound listeners still get the job.
                shared.bus.publish(Arc::new(ev));
            }
        });
    }

    /// A channel command addressed to this channel (by either leg's UUID).
    fn channel_api(&mut self, line: &str, leg: Leg) -> String {
        let (cmd, args) = api::split(line);
        let words: Vec<&str> = args.split_whitespace().collect();
        if leg == Leg::Callee {
            return self.callee_api(cmd, &words);
        }
        let via_caller_leg = leg == Leg::Caller;
        let down = self.ch.is_down() || self.left_parked;
        match cmd {
            "uuid_exists" => return if down { "false" } else { "true" }.into(),
            "sched_del" => {
                let before = self.scheds.len();
                match words.first().and_then(|w| w.parse::<u64>().ok()) {
                    Some(id) => self.scheds.retain(|s| s.id != id),
                    None => self.scheds.clear(),
                }
                return format!("+OK Deleted: {}\n", before - self.scheds.len());
            }
            _ => {}
        }
        if down {
            return api::NO_SUCH_CHANNEL.into();
        }
        match cmd {
            // Answers at once, outside the channel's queue of messages (mod_commands:
            // `switch_channel_answer` in the socket's thread); no application runs.
            "uuid_answer" => {
                self.answer();
                "+OK\n".into()
            }
            "uuid_kill" => {
                let cause = words
                    .get(1)
                    .map(|c| HangupCause::parse_switch(c))
                    .unwrap_or(HangupCause::NORMAL_CLEARING);
                if via_caller_leg {
                    self.pending.push(Pending::CallerHangup(cause));
                } else {
                    self.pending.push(Pending::Hangup(cause, HangupSide::Local));
                }
                "+OK\n".into()
            }
            "uuid_break" => {
                let all = words.get(1).is_some_and(|w| w.eq_ignore_ascii_case("all"));
                self.pending.push(Pending::Break { all });
                "+OK\n".into()
            }
            // A media bug like `record_session`'s, started or stopped beside whatever
            // application runs (capture z): `start` fires RECORD_START, `stop <path|all>`
            // the RECORD_STOP of each matching recording. A relative path resolves to the
            // recordings directory, as for the app.
            "uuid_record" => {
                let (Some(action), Some(file)) = (words.get(1), words.get(2)) else {
                    return api::usage(cmd);
                };
                let path = recording::resolve(&self.shared.config.recordings_dir, file);
                match *action {
                    "start" => {
                        self.pending.push(Pending::RecordStart(path));
                        "+OK Success\n".into()
                    }
                    "stop" => {
                        let found = *file == "all"
                            || self.session_recordings.iter().any(|r| r.path == path);
                        if !found {
                            return format!("-ERR Cannot stop record session {file}\n");
                        }
                        let which = if *file == "all" {
                            "all".to_string()
                        } else {
                            path
                        };
                        self.pending.push(Pending::RecordStop(which));
                        "+OK Success\n".into()
                    }
                    _ => api::usage(cmd),
                }
            }
            "uuid_send_dtmf" => {
                let Some(digits) = words.get(1) else {
                    return api::usage(cmd);
                };
                if via_caller_leg {
                    // The caller's leg sends RFC 2833 to us (transcript h).
                    self.pending.push(Pending::Dtmf(digits.to_string()));
                }
                format!("+OK {} sent DTMF {digits}.\n", words[0])
            }
            "uuid_broadcast" if via_caller_leg => {
                // The caller's own leg plays something into the call (the live suite's
                // talking caller); only its duration is modelled, as packets.
                if words.get(1).is_none() {
                    return api::usage(cmd);
                }
                let now_us = self.shared.sw.clock.now_us();
                self.caller_media.caller_talks(now_us);
                "+OK Message sent\n".into()
            }
            "uuid_broadcast" => {
                "-ERR uuid_broadcast on the controlled channel is not supported by the simulator\n"
                    .into()
            }
            "uuid_getvar" => match words.get(1) {
                Some(name) => self.ch.vars.get(name).unwrap_or("_undef_").to_string(),
                None => api::usage(cmd),
            },
            "uuid_setvar" => match words.get(1) {
                Some(name) => {
                    let value = args
                        .splitn(3, char::is_whitespace)
                        .nth(2)
                        .unwrap_or("")
                        .trim()
                        .trim_matches('"');
                    self.ch.vars.set(name, value);
                    "+OK\n".into()
                }
                None => api::usage(cmd),
            },
            "sched_hangup" => {
                let (Some(when), Some(_)) = (words.first(), words.get(1)) else {
                    return api::usage(cmd);
                };
                let cause = words
                    .get(2)
                    .map(|c| HangupCause::parse_switch(c))
                    .unwrap_or(HangupCause::ALLOTTED_TIMEOUT);
                self.schedule_hangup(when, cause);
                "+OK\n".into()
            }
            _ => format!("-ERR {cmd} Command not found!\n"),
        }
    }

    /// A command naming the running bridge's callee: `uuid_kill` is the callee hanging
    /// up (transcript i), `uuid_exists` answers; the callee is no simulated channel of its
    /// own, so nothing else is.
    fn callee_api(&mut self, cmd: &str, words: &[&str]) -> String {
        let live = self.b_leg.is_some() && !self.ch.is_down();
        match cmd {
            "uuid_exists" => if live { "true" } else { "false" }.into(),
            _ if !live => api::NO_SUCH_CHANNEL.into(),
            "uuid_kill" => {
                let cause = words
                    .get(1)
                    .map(|c| HangupCause::parse_switch(c))
                    .unwrap_or(HangupCause::NORMAL_CLEARING);
                self.pending.push(Pending::CalleeHangup(cause));
                "+OK\n".into()
            }
            _ => format!("-ERR {cmd} on a bridge's callee is not supported by the simulator\n"),
        }
    }

    fn run_pending(&mut self) {
        for p in std::mem::take(&mut self.pending) {
            match p {
                Pending::Hangup(cause, side) => self.hangup(cause, side),
                Pending::CallerHangup(cause) => self.caller_hangup(cause),
                Pending::Break { all } => self.uuid_break(all),
                Pending::Dtmf(digits) => self.schedule_dtmf(Instant::now(), &digits),
                Pending::Event(e) => self.fire(*e),
                Pending::CalleeHangup(cause) => self.callee_hangs_up(cause),
                Pending::RecordStart(path) => {
                    let now_us = self.shared.sw.clock.now_us();
                    self.fire_channel("RECORD_START", &[("Record-File-Path", path.as_str())]);
                    self.session_recordings.push(SessionRecording {
                        path,
                        started_us: now_us,
                    });
                }
                Pending::RecordStop(which) => {
                    let now_us = self.shared.sw.clock.now_us();
                    let (stop, keep): (Vec<_>, Vec<_>) =
                        std::mem::take(&mut self.session_recordings)
                            .into_iter()
                            .partition(|r| which == "all" || r.path == which);
                    self.session_recordings = keep;
                    for r in stop {
                        self.session_recording_stop(r, now_us);
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------- events

    /// Fires an event: to this socket if subscribed, to inbound listeners if any.
    fn fire(&mut self, event: SimEvent) {
        if self.sock_open && self.subs.wants(&event) {
            self.out.extend(wire::event_frame(&event, self.subs.format));
            self.report.events.push(event.name().to_string());
        }
        if self.shared.bus.has_listeners() {
            self.shared.bus.publish(Arc::new(event));
        }
    }

    fn fire_channel(&mut self, name: &str, tail: &[(&str, &str)]) {
        let to_bus = self.shared.bus.has_listeners();
        let to_socket = self.sock_open && self.subs.wants_name(name);
        if !to_bus && !to_socket {
            // Nobody listens: keep the sequence counter moving, skip building it.
            self.shared.sw.skip_event();
            return;
        }
        if to_socket
            && !to_bus
            && self.subs.format == EventFormat::Plain
            && !self.subs.has_filters()
        {
            // The common case: plain bytes straight to this socket (its `myevents` uuid
            // filter always passes its own channel's events).
            self.ch
                .plain_event_into(&self.shared.sw, name, tail, &mut self.out);
            self.report.events.push(name.to_string());
            return;
        }
        let e = self.ch.event(&self.shared.sw, name, tail);
        self.fire(e);
    }

    // ---------------------------------------------------------------- park & queue

    fn start_park(&mut self) {
        if self.parked || self.ch.is_down() {
            return;
        }
        self.timers.retain(|t| !matches!(t.kind, TimerKind::Park));
        if self.script.answered && !self.acked {
            self.ack();
        }
        self.parked = true;
        self.fire_channel("CHANNEL_PARK", &[]);
    }

    /// Runs queued commands while the queue may be read: nothing running, or the
    /// innermost running app polls for commands and no running app holds the event lock.
    fn pump(&mut self) {
        if !self.got_connect || self.ch.is_down() || self.left_parked {
            return;
        }
        if !self.parked && !self.script.sync {
            if self.queue.is_empty() {
                return;
            }
            // The park loop is what runs queued commands: a sendmsg starts it now.
            self.start_park();
        }
        loop {
            if self.ch.is_down() {
                break;
            }
            let can = self.stack.iter().all(|r| !r.msg.event_lock)
                && self.stack.last().is_none_or(|r| r.kind.nestable());
            if !can {
                break;
            }
            let Some(q) = self.queue.pop_front() else {
                break;
            };
            match q {
                Queued::Execute(msg) => self.start_exec(msg, 1),
                Queued::Hangup { cause, record } => {
                    self.report.hangup_commands[record].status = AppStatus::Completed;
                    self.hangup(cause, HangupSide::Local);
                }
            }
        }
    }

    // ---------------------------------------------------------------- apps

    fn start_exec(&mut self, msg: ExecMsg, loop_no: i64) {
        let record = msg.record;
        if self.ch.is_down() {
            self.report.apps[record].status = AppStatus::Skipped;
            return;
        }
        let app = msg.app.to_ascii_lowercase();
        let Some(kind_hint) = app_kind(&app) else {
            // `switch_core_session_execute_application_get_flags`: no such app.
            tracing::debug!(uuid = %self.ch.uuid, app = %msg.app, "sim: unknown application");
            self.report.apps[record].status = AppStatus::Unknown;
            self.hangup(HangupCause::DESTINATION_OUT_OF_ORDER, HangupSide::Local);
            return;
        };
        let arg = expand(&msg.arg, &self.ch.vars);
        let app_uuid = msg
            .event_uuid
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if needs_media(&app) && !self.ch.media {
            self.pre_answer();
        }
        self.ch.before_execute(&app, &arg, loop_no, msg.loops);
        let mut tail: Vec<(&str, &str)> = vec![
            ("Application", app.as_str()),
            ("Application-Data", arg.as_str()),
            ("Application-UUID", app_uuid.as_str()),
        ];
        if let Some(n) = &msg.uuid_name {
            tail.push(("Application-UUID-Name", n.as_str()));
        }
        self.fire_channel("CHANNEL_EXECUTE", &tail);
        self.ch.after_execute(&app, &arg);
        let now_us = self.shared.sw.clock.now_us();
        let nested = !self.stack.is_empty();
        if let Some(parent) = self.stack.last_mut() {
            parent.remaining = parent
                .deadline
                .map(|d| d.saturating_duration_since(Instant::now()));
            parent.deadline = None;
            parent.suspended = true;
        }
        {
            let since = self.since_start();
            let r = &mut self.report.apps[record];
            r.nested |= nested;
            r.arg = arg.clone();
            if r.started_at.is_none() {
                r.started_at = Some(since);
            }
        }
        self.apps_started += 1;
        self.caller_actions_for_app(&app);
        let record = (kind_hint == Kind::Record { by_silence: false }).then(|| {
            RecordArgs::parse(
                &arg,
                &self.shared.config.recordings_dir,
                self.script.record_silence_after,
                now_us,
            )
        });
        let kind = match kind_hint {
            Kind::Playback(_) => Kind::Playback(self.script.playback(&arg)),
            Kind::Record { .. } => Kind::Record {
                by_silence: record.as_ref().is_some_and(|r| r.by_silence),
            },
            k => k,
        };
        let length = match kind {
            Kind::Playback(PlayLength::For(d)) => Some(d),
            Kind::Playback(_) => None,
            Kind::Speak => Some(self.script.speak(speak_text(&arg))),
            Kind::Sleep => Some(Duration::from_millis(
                arg.trim().parse::<u64>().unwrap_or(0),
            )),
            Kind::Record { .. } => record.as_ref().and_then(|r| r.length),
            Kind::Bridge => None,
            Kind::Instant => Some(Duration::ZERO),
        };
        let clock = self.shared.sw.clock.clone();
        self.stack.push(Running {
            msg,
            arg: arg.clone(),
            app_uuid,
            kind,
            started_us: now_us,
            loop_no,
            deadline: length.map(|d| clock.deadline(d)),
            remaining: None,
            suspended: false,
            length,
        });
        let depth = self.stack.len();
        match app.as_str() {
            "answer" => self.answer(),
            "pre_answer" => self.pre_answer(),
            "ring_ready" => self.ring_ready(),
            "hangup" => {
                let cause = if arg.trim().is_empty() {
                    HangupCause::NORMAL_CLEARING
                } else {
                    HangupCause::parse_switch(&arg)
                };
                self.hangup(cause, HangupSide::Local);
            }
            "respond" => {
                let digits: String = arg
                    .trim()
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                match digits.parse::<u16>() {
                    Ok(code) if code >= 400 => {
                        self.respond_code = Some(code);
                        self.hangup(HangupCause::from_sip(code), HangupSide::Local);
                    }
                    _ => {
                        tracing::debug!(uuid = %self.ch.uuid, %arg, "sim: respond: cannot respond")
                    }
                }
            }
            "sched_hangup" => {
                let mut words = arg.split_whitespace();
                let when = words.next().unwrap_or("");
                let cause = words
                    .next()
                    .map(HangupCause::parse_switch)
                    .unwrap_or(HangupCause::ALLOTTED_TIMEOUT);
                self.schedule_hangup(when, cause);
            }
            "sched_cancel" => {
                let a = arg.trim();
                match a.parse::<u64>() {
                    Ok(id) => self.scheds.retain(|s| s.id != id),
                    Err(_) if a.is_empty() || a == self.ch.uuid => self.scheds.clear(),
                    Err(_) => {}
                }
            }
            "set" | "export" => {
                if let Some((name, value)) = arg.split_once('=') {
                    let name = name.trim().trim_start_matches("nolocal:");
                    self.ch.vars.set(name, value);
                }
            }
            "unset" => self.ch.vars.unset(arg.trim()),
            "bind_digit_action" => {
                // <realm>,<binding>,<string>[,<value>][,<dtmf target>][,<event target>]:
                // only the peer's digits are simulated (a Dial's digitsMatchBLeg).
                let parts: Vec<&str> = arg.splitn(6, ',').collect();
                if parts.len() >= 5 && parts[4].trim() == "peer" {
                    self.peer_digit_actions.push((
                        parts[0].to_string(),
                        parts[1].to_string(),
                        parts[2].to_string(),
                        parts[3].to_string(),
                    ));
                } else {
                    tracing::warn!(uuid = %self.ch.uuid, %arg, "sim: bind_digit_action on the channel's own digits is not simulated");
                }
            }
            "clear_digit_action" => {
                let realm = arg.split(',').next().unwrap_or("").trim().to_string();
                self.peer_digit_actions
                    .retain(|(r, ..)| !(realm.is_empty() || realm == "all" || *r == realm));
                self.peer_digits.clear();
            }
            "bridge" => self.start_bridge(&arg),
            "record" => {
                let path = record.map(|r| r.path).unwrap_or_default();
                self.ch.vars.set("silence_hits_exhausted", "false");
                self.fire_channel("RECORD_START", &[("Record-File-Path", path.as_str())]);
            }
            "record_session" => {
                // A media bug: the app completes at once, the recording runs until
                // stop_record_session or the hangup (transcript t).
                let file = arg.split_whitespace().next().unwrap_or("");
                let path = recording::resolve(&self.shared.config.recordings_dir, file);
                self.fire_channel("RECORD_START", &[("Record-File-Path", path.as_str())]);
                self.session_recordings.push(SessionRecording {
                    path,
                    started_us: now_us,
                });
            }
            "stop_record_session" => {
                // The switch matches the media bug by its path as RECORD_START reported
                // it (absolute), or `all`; a relative name stops nothing (transcript t).
                let which = arg.trim().to_string();
                let (stop, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.session_recordings)
                    .into_iter()
                    .partition(|r| which == "all" || r.path == which);
                self.session_recordings = keep;
                for r in stop {
                    self.session_recording_stop(r, now_us);
                }
            }
            "speak" => {
                let parts: Vec<&str> = arg.splitn(3, '|').collect();
                let (engine, voice) = if parts.len() == 3 {
                    (parts[0].to_string(), parts[1].to_string())
                } else {
                    let v = |n: &str| self.ch.vars.get(n).unwrap_or("").to_string();
                    (v("tts_engine"), v("tts_voice"))
                };
                if engine.is_empty() || voice.is_empty() {
                    self.hangup(HangupCause::DESTINATION_OUT_OF_ORDER, HangupSide::Local);
                }
            }
            _ => {}
        }
        // Instant apps (and apps whose effect ended the call) complete now.
        if self.stack.len() == depth
            && (kind == Kind::Instant || matches!(kind, Kind::Playback(PlayLength::NotFound)))
        {
            self.complete_top(End::Natural);
        }
    }

    fn complete_top(&mut self, end: End) {
        let Some(r) = self.stack.pop() else {
            return;
        };
        let now_us = self.shared.sw.clock.now_us();
        let response = match (r.kind, end) {
            (Kind::Playback(PlayLength::NotFound), _) => "FILE NOT FOUND",
            (Kind::Playback(_), End::Hangup { remote: true }) => "PLAYBACK ERROR",
            (Kind::Playback(_), _) => "FILE PLAYED",
            _ => "_none_",
        };
        if let Kind::Playback(l) = r.kind {
            if l != PlayLength::NotFound {
                let elapsed_ms = ((now_us - r.started_us).max(0) / 1000) as u64;
                let secs = elapsed_ms.div_ceil(1000);
                self.ch
                    .vars
                    .set("playback_last_offset_pos", (elapsed_ms * 8).to_string());
                self.ch.vars.set("playback_seconds", secs.to_string());
                self.ch.vars.set("playback_ms", (secs * 1000).to_string());
                self.ch
                    .vars
                    .set("playback_samples", (secs * 8000).to_string());
            }
        }
        if let Kind::Record { by_silence } = r.kind {
            self.record_stop(&r, now_us, end, by_silence && end == End::Natural);
        }
        if r.kind == Kind::Bridge {
            self.end_bridge(end);
        }
        if response != "_none_" {
            self.ch.vars.set("current_application_response", response);
        }
        let app = r.msg.app.to_ascii_lowercase();
        let mut tail: Vec<(&str, &str)> = vec![
            ("Application", app.as_str()),
            ("Application-Data", r.arg.as_str()),
            ("Application-Response", response),
            ("Application-UUID", r.app_uuid.as_str()),
        ];
        if let Some(n) = &r.msg.uuid_name {
            tail.push(("Application-UUID-Name", n.as_str()));
        }
        self.fire_channel("CHANNEL_EXECUTE_COMPLETE", &tail);
        self.ch.after_execute_complete();
        let since = self.since_start();
        {
            let rec = &mut self.report.apps[r.msg.record];
            rec.status = AppStatus::Completed;
            rec.response = Some(response.to_string());
            rec.ended_at = Some(since);
            rec.runs += 1;
        }
        if app == "answer" && self.ch.answered() && !self.acked {
            self.ack();
        }
        let ran_us = now_us - r.started_us;
        let again = !self.ch.is_down()
            && end == End::Natural
            && (r.msg.loops < 0 || r.loop_no < r.msg.loops)
            && ran_us >= MIN_LOOP_RUN_US;
        if again {
            let mut msg = r.msg;
            msg.event_uuid = Some(r.app_uuid);
            self.start_exec(msg, r.loop_no + 1);
            return;
        }
        if let Some(parent) = self.stack.last_mut() {
            if parent.suspended {
                parent.suspended = false;
                parent.deadline = parent.remaining.map(|d| Instant::now() + d);
            }
        }
    }

    /// The variables a finished `record` leaves and its RECORD_STOP (transcripts m, n).
    /// The simulated channel records 8 kHz 16-bit mono, into a real file (`recording`).
    fn record_stop(&mut self, r: &Running, now_us: i64, end: End, by_silence: bool) {
        // The audio recorded: all of it when the record ran its course (the simulator's
        // own lateness on a loaded machine is not audio), else up to now.
        let ms = match (end, r.length) {
            (End::Natural, Some(length)) => length.as_millis() as u64,
            _ => ((now_us - r.started_us).max(0) / 1000) as u64,
        };
        let stopped = Stopped::of_ms(ms);
        let size = stopped.size.to_string();
        let vars = &mut self.ch.vars;
        vars.set("record_record_file_size", size.as_str());
        vars.set("record_file_size", size.as_str());
        vars.set("record_seconds", (ms / 1000).to_string());
        vars.set("record_ms", ms.to_string());
        vars.set("record_samples", stopped.samples.to_string());
        if by_silence {
            vars.set("silence_hits_exhausted", "true");
        }
        let path = RecordArgs::parse(
            &r.arg,
            &self.shared.config.recordings_dir,
            Duration::ZERO,
            0,
        )
        .path;
        recording::write_wav(&path, stopped.samples);
        self.fire_channel("RECORD_STOP", &[("Record-File-Path", path.as_str())]);
    }

    /// A `record_session` ends (stop_record_session or the hangup): its variables, the
    /// file, RECORD_STOP (transcript t). The switch's completion cause is
    /// `success-maxtime` when the app stops it and `success-silence` at the hangup.
    fn session_recording_stop(&mut self, r: SessionRecording, now_us: i64) {
        let cause = if self.ch.is_down() {
            "success-silence"
        } else {
            "success-maxtime"
        };
        let stopped = Stopped::of_ms(((now_us - r.started_us).max(0) / 1000) as u64);
        let vars = &mut self.ch.vars;
        vars.set("record_file_size", stopped.size.to_string());
        vars.set("record_samples", stopped.samples.to_string());
        vars.set("record_seconds", (stopped.ms / 1000).to_string());
        vars.set("record_ms", stopped.ms.to_string());
        vars.set("record_completion_cause", cause);
        recording::write_wav(&r.path, stopped.samples);
        self.fire_channel(
            "RECORD_STOP",
            &[
                ("Record-File-Path", r.path.as_str()),
                ("Record-Completion-Cause", cause),
            ],
        );
    }

    // ---------------------------------------------------------------- bridge

    /// `bridge <dial string>`: one destination, `{var=value,…}` in front. The callee's
    /// behaviour comes from [`CallScript::callees`]; what the A-leg sees follows
    /// transcripts i (answered, callee hangs up), j (busy) and k (no answer).
    fn start_bridge(&mut self, arg: &str) {
        let Some(legs) = DialString::parse_legs(arg) else {
            // Failover (`|`), an empty endpoint, an app: not simulated. Like an app
            // the simulator does not know, the call ends.
            tracing::warn!(uuid = %self.ch.uuid, %arg, "sim: bridge dial string not supported by the simulator");
            self.hangup(HangupCause::DESTINATION_OUT_OF_ORDER, HangupSide::Local);
            return;
        };
        // Several legs ring at once (`,`): the one that answers first wins and the
        // others end with LOSE_RACE; with no answer, the refusals end at once and the
        // bridge fails with the first leg's cause, in dial-string order (seen on the
        // switch: 7999,7003 failed NO_ROUTE_DESTINATION, 7003,7999 USER_BUSY; a leg that
        // rings on decides instead). The simulator plays the winner (or, with
        // none, the leg that decides the failure) as the bridge's one callee and keeps
        // the others' causes for `originate_causes`.
        let callee_of = |d: &DialString| self.script.callees.get(&d.destination).copied();
        let answers_after = |c: Option<Callee>| match c {
            Some(Callee::Answers { after, .. }) => Some(after),
            _ => None,
        };
        let chosen = (0..legs.len())
            .filter(|i| answers_after(callee_of(&legs[*i])).is_some())
            .min_by_key(|i| answers_after(callee_of(&legs[*i])))
            .or_else(|| {
                (0..legs.len()).find(|i| matches!(callee_of(&legs[*i]), Some(Callee::RingsForever)))
            })
            .unwrap_or(0);
        self.race_losers = legs
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != chosen)
            .map(|(_, d)| {
                let refused = match callee_of(d) {
                    Some(Callee::Refuses(code)) => Some(HangupCause::from_sip(code)),
                    None => Some(HangupCause::NO_ROUTE_DESTINATION),
                    _ => None,
                };
                let uuid = d
                    .var("origination_uuid")
                    .map(str::to_string)
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                (uuid, refused)
            })
            .collect();
        self.race_position = chosen;
        let dial = legs.into_iter().nth(chosen).expect("chosen among the legs");
        // An unknown number: the test switch's dialplan has no route for it (404 with
        // its Q.850 reason, `-ERR NO_ROUTE_DESTINATION` to an originate).
        let callee = self.script.callees.get(&dial.destination).copied();
        let now = Instant::now();
        let now_us = self.shared.sw.clock.now_us();
        let clock = self.shared.sw.clock.clone();
        self.b_leg = Some(BLeg {
            uuid: dial
                .var("origination_uuid")
                .map(str::to_string)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            channel_name: dial.endpoint.clone(),
            destination: dial.destination.clone(),
            created_us: now_us,
            bridged: false,
            hangup_cause: None,
        });
        if let Some(b) = &self.b_leg {
            self.shared
                .registry
                .register_callee(&b.uuid, self.self_tx.clone());
        }
        self.bridge_confirm = dial
            .var("group_confirm_key")
            .map(|k| (k.to_string(), false));
        // `execute_on_answer='sched_hangup +N CAUSE'` (a Dial's timeLimit): armed on
        // the callee's answer.
        self.bridge_sched_hangup = dial
            .vars
            .iter()
            .filter(|(k, _)| k.starts_with("execute_on_answer"))
            .find_map(|(_, v)| {
                let mut words = v.strip_prefix("sched_hangup")?.split_whitespace();
                let secs = words.next()?.trim_start_matches('+').parse::<u64>().ok()?;
                let cause = words
                    .next()
                    .map(HangupCause::parse_switch)
                    .unwrap_or(HangupCause::ALLOTTED_TIMEOUT);
                Some((Duration::from_secs(secs), cause))
            });
        let mut at = |after: Duration, step: BridgeStep| {
            self.timers.push(Timer {
                at: now + clock.real(after),
                kind: TimerKind::Bridge(step),
            });
        };
        // ~20 ms for the INVITE round trip, as in the transcripts.
        const FIRST_RESPONSE: Duration = Duration::from_millis(20);
        // Another leg that rings sends its 180 before the winner's 200 reaches the
        // caller (transcript x: 7004's CHANNEL_PROGRESS, then 7002's answer).
        let another_rings = self
            .race_losers
            .iter()
            .any(|(_, refused)| refused.is_none());
        match callee {
            Some(Callee::Answers { after, .. }) if after.is_zero() && another_rings => {
                at(FIRST_RESPONSE, BridgeStep::Ring);
                at(FIRST_RESPONSE * 2, BridgeStep::Answer);
            }
            Some(Callee::Answers { after, .. }) if after.is_zero() => {
                at(FIRST_RESPONSE, BridgeStep::Answer);
            }
            Some(Callee::Answers { after, .. }) => {
                at(FIRST_RESPONSE, BridgeStep::Ring);
                at(after, BridgeStep::Answer);
            }
            Some(Callee::Refuses(code)) => at(
                FIRST_RESPONSE,
                BridgeStep::Refused(HangupCause::from_sip(code)),
            ),
            Some(Callee::RingsForever) => at(FIRST_RESPONSE, BridgeStep::Ring),
            None => at(
                FIRST_RESPONSE,
                BridgeStep::Refused(HangupCause::parse_switch("NO_ROUTE_DESTINATION")),
            ),
        }
        if matches!(callee, Some(Callee::Answers { .. } | Callee::RingsForever)) {
            // The originate timer works on whole epoch seconds, like sched_hangup:
            // `originate_timeout=3` gave up after 2.2 s in transcript k.
            let secs = dial
                .var("originate_timeout")
                .or(dial.var("leg_timeout"))
                .and_then(|t| t.parse::<i64>().ok())
                .unwrap_or(60);
            let give_up_us = (now_us / 1_000_000 + secs) * 1_000_000;
            self.timers.push(Timer {
                at: clock.instant_at(give_up_us),
                kind: TimerKind::Bridge(BridgeStep::Timeout),
            });
        }
    }

    fn bridge_step(&mut self, step: BridgeStep) {
        if self.ch.is_down() || !self.stack.last().is_some_and(|r| r.kind == Kind::Bridge) {
            return;
        }
        let Some(b) = &self.b_leg else { return };
        let (b_uuid, dest) = (b.uuid.clone(), b.destination.clone());
        match step {
            BridgeStep::Ring => {
                self.originating(&b_uuid, &dest);
                if self.ch.vars.get("ringback").is_some_and(|r| !r.is_empty()) {
                    // `ringback` set: the switch answers the callee's 180 with early
                    // media of its own to the caller (183, CHANNEL_PROGRESS_MEDIA at
                    // once), measured on the real switch (docs/dial.md).
                    self.pre_answer();
                    return;
                }
                // The callee's 180 reaches the caller as CHANNEL_PROGRESS, but unlike
                // the `ring_ready` app the call state stays RINGING (transcript k).
                let state = self.ch.call_state;
                self.ring_ready();
                self.ch.call_state = state;
            }
            BridgeStep::Answer => {
                // `group_confirm_key=<key>`: the callee answered, hears the confirm file
                // and is bridged only once it pressed the key; a callee that never does
                // is dropped at the ring timeout (the Timeout timer stays), as measured
                // on the real switch (docs/dial.md). `exec`: bridged after the app.
                if let Some((key, false)) = self.bridge_confirm.clone() {
                    if key != "exec" {
                        let pressed =
                            self.script
                                .callee_digits
                                .get(&dest)
                                .and_then(|(after, digits)| {
                                    digits.contains(key.as_str()).then_some(*after)
                                });
                        if let Some(after) = pressed {
                            self.bridge_confirm = Some((key, true));
                            self.timers.push(Timer {
                                at: self.shared.sw.clock.deadline(after),
                                kind: TimerKind::Bridge(BridgeStep::Answer),
                            });
                        }
                        return;
                    }
                }
                self.timers
                    .retain(|t| !matches!(t.kind, TimerKind::Bridge(BridgeStep::Timeout)));
                self.originating(&b_uuid, &dest);
                self.answer();
                let now_us = self.shared.sw.clock.now_us();
                let mut causes: Vec<String> = self
                    .race_losers
                    .iter()
                    .map(|(u, refused)| {
                        format!("{u};{}", refused.unwrap_or(HangupCause::LOSE_RACE).name())
                    })
                    .collect();
                causes.insert(
                    self.race_position.min(causes.len()),
                    format!("{b_uuid};NONE"),
                );
                let vars = &mut self.ch.vars;
                vars.set("originate_causes", originate_causes(&causes));
                vars.set("signal_bond", b_uuid.as_str());
                vars.unset("originate_signal_bond");
                vars.set("originate_disposition", "SUCCESS");
                vars.set("DIALSTATUS", "SUCCESS");
                let media = self
                    .script
                    .callee_media
                    .get(&dest)
                    .copied()
                    .unwrap_or_default();
                self.caller_media.bridged(now_us, media);
                let b = self.b_leg.as_mut().expect("checked above");
                b.bridged = true;
                self.ch.other_leg = Some(OtherLeg {
                    uuid: b.uuid.clone(),
                    channel_name: b.channel_name.clone(),
                    destination: b.destination.clone(),
                    created_us: b.created_us,
                    answered_us: now_us,
                });
                self.fire_channel("CHANNEL_BRIDGE", &[]);
                if let Some((after, cause)) = self.bridge_sched_hangup.take() {
                    self.timers.push(Timer {
                        at: self.shared.sw.clock.deadline(after),
                        kind: TimerKind::Bridge(BridgeStep::SchedHangup(cause)),
                    });
                }
                let confirmed_by_key = self.bridge_confirm.as_ref().is_some_and(|(_, c)| *c);
                if let (Some((after, _)), false) =
                    (self.script.callee_digits.get(&dest), confirmed_by_key)
                {
                    self.timers.push(Timer {
                        at: self.shared.sw.clock.deadline(*after),
                        kind: TimerKind::Bridge(BridgeStep::CalleeDigits),
                    });
                }
                if let Some(Callee::Answers {
                    hangs_up_after: Some(d),
                    ..
                }) = self.script.callees.get(&dest).copied()
                {
                    self.timers.push(Timer {
                        at: self.shared.sw.clock.deadline(d),
                        kind: TimerKind::Bridge(BridgeStep::CalleeHangsUp),
                    });
                }
            }
            BridgeStep::CalleeHangsUp => self.callee_hangs_up(HangupCause::NORMAL_CLEARING),
            BridgeStep::CalleeDigits => {
                if let Some((_, digits)) = self.script.callee_digits.get(&dest).cloned() {
                    for d in digits.chars() {
                        self.peer_digit(d);
                    }
                }
            }
            BridgeStep::SchedHangup(cause) => self.callee_hangs_up(cause),
            BridgeStep::Refused(cause) => {
                self.bridge_failed(&b_uuid, &dest, cause);
                // `switch_channel_handle_cause`: these causes never end the caller.
                let vars = &self.ch.vars;
                let go_on = matches!(
                    cause.name(),
                    "NO_ANSWER" | "NO_USER_RESPONSE" | "ORIGINATOR_CANCEL"
                ) || vars.get("continue_on_fail").is_some_and(|v| {
                    switch_true(v) || v.split(',').any(|c| c.trim() == cause.name())
                });
                if go_on {
                    self.complete_top(End::Natural);
                } else {
                    // Transcript j: the bridge app hangs the caller up with the cause,
                    // before its own EXECUTE_COMPLETE.
                    self.hangup(cause, HangupSide::Local);
                }
            }
            BridgeStep::Timeout => {
                // Transcript k: no answer is not a failure that ends the caller.
                self.bridge_failed(&b_uuid, &dest, HangupCause::NO_ANSWER);
                self.complete_top(End::Natural);
            }
        }
    }

    /// A digit of the bridged callee reaches the caller's digit machine for its peer
    /// (mod_dptools' `bind_digit_action …,peer`): a binding equal to the digits held
    /// (a `~regex` one matching them) matches, queues the plain event `<string>:
    /// <value>`, `digits: <digits>` on this channel — on the socket with `divert_events
    /// on`, as measured on the real switch (docs/dial.md) — and the machine starts
    /// afresh; digits no binding can still complete are dropped.
    fn peer_digit(&mut self, digit: char) {
        if self.peer_digit_actions.is_empty() {
            return;
        }
        self.peer_digits.push(digit);
        let held = self.peer_digits.clone();
        let matches = |binding: &str, full: bool| match binding.strip_prefix('~') {
            Some(re) => !full || regex::Regex::new(re).is_ok_and(|r| r.is_match(&held)),
            None if full => binding == held,
            None => binding.starts_with(held.as_str()),
        };
        let hit = self
            .peer_digit_actions
            .iter()
            .find(|(_, b, ..)| matches(b, true))
            .cloned();
        if let Some((_, _, string, value)) = hit {
            self.peer_digits.clear();
            if self.divert && self.sock_open {
                let event = SimEvent {
                    headers: vec![(string, value), ("digits".into(), held)],
                    body: None,
                };
                self.out.extend(wire::event_frame(&event, self.subs.format));
            }
        } else if !self
            .peer_digit_actions
            .iter()
            .any(|(_, b, ..)| matches(b, false))
        {
            self.peer_digits.clear();
        }
    }

    /// The callee ends: a bridged call's bridge returns; a ringing one fails as if
    /// refused with `cause`.
    fn callee_hangs_up(&mut self, cause: HangupCause) {
        if self.ch.is_down() || !self.stack.last().is_some_and(|r| r.kind == Kind::Bridge) {
            return;
        }
        let Some(b) = self.b_leg.as_mut() else { return };
        if b.bridged {
            b.hangup_cause = Some(cause);
            self.complete_top(End::Natural);
        } else {
            self.bridge_step(BridgeStep::Refused(cause));
        }
    }

    /// Variables the A-leg carries while its bridge's originate runs (transcripts i, k):
    /// `failure`/`INVALIDARGS` until the outcome is known.
    fn originating(&mut self, b_uuid: &str, dest: &str) {
        let vars = &mut self.ch.vars;
        if vars.get("originate_signal_bond").is_some() {
            return;
        }
        vars.set("originate_disposition", "failure");
        vars.set("DIALSTATUS", "INVALIDARGS");
        vars.set("originate_signal_bond", b_uuid);
        vars.set("originated_legs", format!("{b_uuid};Outbound Call;{dest}"));
    }

    /// Variables of a failed bridge (transcripts j, k).
    fn bridge_failed(&mut self, b_uuid: &str, dest: &str, cause: HangupCause) {
        self.originating(b_uuid, dest);
        let vars = &mut self.ch.vars;
        vars.set("last_bridge_hangup_cause", cause.name());
        vars.set("originate_disposition", cause.name());
        vars.set("DIALSTATUS", dial_status(cause));
        let mut causes: Vec<String> = self
            .race_losers
            .iter()
            .map(|(u, refused)| format!("{u};{}", refused.unwrap_or(cause).name()))
            .collect();
        causes.insert(
            self.race_position.min(causes.len()),
            format!("{b_uuid};{}", cause.name()),
        );
        vars.set("originate_causes", originate_causes(&causes));
        vars.set("originate_failed_cause", cause.name());
    }

    /// The bridge app returns: CHANNEL_UNBRIDGE first if the legs were bridged.
    fn end_bridge(&mut self, end: End) {
        self.timers
            .retain(|t| !matches!(t.kind, TimerKind::Bridge(_)));
        let Some(b) = self.b_leg.take() else { return };
        self.shared.registry.unregister_callee(&b.uuid);
        if !b.bridged {
            if matches!(end, End::Hangup { .. })
                && self.ch.vars.get("originate_disposition") != Some("SUCCESS")
                && self.ch.vars.get("originate_failed_cause").is_none()
            {
                // The caller's channel went while the legs rang (transcript u: the
                // caller's CANCEL): the originate is cancelled, every ringing leg with it.
                self.bridge_failed(&b.uuid, &b.destination, HangupCause::ORIGINATOR_CANCEL);
            }
            return;
        }
        let now_us = self.shared.sw.clock.now_us();
        self.caller_media.unbridged(now_us);
        let cause = match end {
            End::Hangup { .. } => self
                .ch
                .hangup
                .map(|(c, _)| c)
                .unwrap_or(HangupCause::NORMAL_CLEARING),
            _ => b.hangup_cause.unwrap_or(HangupCause::NORMAL_CLEARING),
        };
        let vars = &mut self.ch.vars;
        vars.set("last_bridge_to", b.uuid.as_str());
        vars.set("bridge_channel", b.channel_name.as_str());
        vars.set("bridge_uuid", b.uuid.as_str());
        vars.set("last_sent_callee_id_name", b.destination.as_str());
        vars.set("last_sent_callee_id_number", b.destination.as_str());
        vars.set("last_bridge_hangup_cause", cause.name());
        vars.set("bridge_hangup_cause", cause.name());
        self.fire_channel("CHANNEL_UNBRIDGE", &[]);
    }

    fn uuid_break(&mut self, all: bool) {
        if all {
            for q in self.queue.drain(..) {
                match q {
                    Queued::Execute(m) => self.report.apps[m.record].status = AppStatus::Flushed,
                    Queued::Hangup { record, .. } => {
                        self.report.hangup_commands[record].status = AppStatus::Flushed
                    }
                }
            }
        }
        if self
            .stack
            .last()
            .is_some_and(|r| r.kind.nestable() && !r.suspended)
        {
            self.complete_top(End::Break);
        }
    }

    // ---------------------------------------------------------------- call control

    fn pre_answer(&mut self) {
        if self.ch.media || self.ch.is_down() {
            return;
        }
        let now = self.shared.sw.clock.now_us();
        self.ch.media_up(now);
        self.fire_channel("CHANNEL_PROGRESS_MEDIA", &[]);
        self.ch.after_progress_media();
        self.report.early_media_at = Some(self.since_start());
        self.resolve_originate_ok();
    }

    fn answer(&mut self) {
        if self.ch.answered() || self.ch.is_down() {
            return;
        }
        self.pre_answer();
        let now = self.shared.sw.clock.now_us();
        self.ch.mark_answered(now);
        self.fire_channel("CHANNEL_ANSWER", &[]);
        self.ch.after_answer();
        self.report.answered_at = Some(self.since_start());
    }

    fn ack(&mut self) {
        self.acked = true;
        let tag: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(13)
            .map(char::from)
            .collect();
        self.ch.ack_received(&tag);
    }

    fn ring_ready(&mut self) {
        if self.ch.answered() || self.ch.media || self.ch.progress_us != 0 {
            return;
        }
        let now = self.shared.sw.clock.now_us();
        self.ch.ring_ready(now);
        self.fire_channel("CHANNEL_PROGRESS", &[]);
        self.ch.call_state = "RING_WAIT";
    }

    /// `sched_hangup [+]N`: the switch reads `atol(arg+1)` with or without the `+`, so
    /// without it the number is a (past) epoch and the hangup fires at once (§5). The
    /// scheduler works on whole epoch seconds: `+N` fires when the epoch second reaches
    /// the current one plus N, i.e. up to 1 s early, as observed.
    fn schedule_hangup(&mut self, when: &str, cause: HangupCause) {
        let when = when.trim();
        let relative = when.starts_with('+');
        let digits: String = when
            .chars()
            .skip(1)
            .take_while(char::is_ascii_digit)
            .collect();
        let n = digits.parse::<i64>().unwrap_or(0);
        let now_us = self.shared.sw.clock.now_us();
        let at_us = if relative && n > 0 {
            (now_us / 1_000_000 + n) * 1_000_000
        } else {
            now_us
        };
        let id = self.shared.registry.new_sched(&self.ch.uuid);
        self.scheds.push(Sched { id, at_us, cause });
    }

    fn caller_hangup(&mut self, cause: HangupCause) {
        if self.ch.is_down() || self.left_parked {
            return;
        }
        if self.ch.answered() {
            self.hangup(cause, HangupSide::RemoteBye);
        } else {
            self.caller_cancel_cause = Some(cause);
            self.hangup(HangupCause::ORIGINATOR_CANCEL, HangupSide::RemoteCancel);
        }
    }

    fn schedule_dtmf(&mut self, start: Instant, digits: &str) {
        let gap = self.shared.sw.clock.real(DTMF_GAP);
        for (i, d) in digits.chars().enumerate() {
            self.timers.push(Timer {
                at: start + gap * i as u32,
                kind: TimerKind::Caller(CallerEvent::Dtmf(d)),
            });
        }
    }

    fn dtmf(&mut self, digit: char) {
        if self.ch.is_down() || !self.ch.media || self.left_parked {
            return;
        }
        let d = digit.to_string();
        self.ch.digits.push(digit);
        // A digit ends a running `sleep` (no `sleep_eat_digits`), and the switch dequeues
        // it only afterwards: the sleep's CHANNEL_EXECUTE_COMPLETE comes first, then the
        // DTMF event (transcript q: `sleep 2000` ended 0.58 s in by a digit).
        if self
            .stack
            .last()
            .is_some_and(|r| matches!(r.kind, Kind::Sleep) && !r.suspended)
        {
            self.complete_top(End::Break);
        }
        self.fire_channel(
            "DTMF",
            &[
                ("DTMF-Digit", d.as_str()),
                ("DTMF-Duration", "2080"),
                ("DTMF-Source", "RTP"),
            ],
        );
        // `bridge_terminate_key` on the caller ends a bridge: the switch hangs the
        // callee up, the bridge returns and the caller stays.
        let bridged = self.b_leg.as_ref().is_some_and(|b| b.bridged)
            && self.stack.last().is_some_and(|r| r.kind == Kind::Bridge);
        if bridged && self.ch.vars.get("bridge_terminate_key") == Some(d.as_str()) {
            self.callee_hangs_up(HangupCause::NORMAL_CLEARING);
            return;
        }
        let terminators = self
            .ch
            .vars
            .get("playback_terminators")
            .unwrap_or("*")
            .to_string();
        let stops = match terminators.as_str() {
            "none" => false,
            "any" => true,
            t => t.contains(digit),
        };
        // `playback_terminators` end a playback or a record (transcript n).
        let top_is_playback = self.stack.last().is_some_and(|r| {
            matches!(r.kind, Kind::Playback(_) | Kind::Record { .. }) && !r.suspended
        });
        if stops && top_is_playback {
            self.ch.vars.set("playback_terminator_used", d);
            self.complete_top(End::Break);
        }
    }

    fn caller_actions_for_app(&mut self, app: &str) {
        let index = self.apps_started;
        let occurrence = self
            .report
            .apps
            .iter()
            .filter(|a| a.name.eq_ignore_ascii_case(app) && a.started_at.is_some())
            .count();
        let clock = self.shared.sw.clock.clone();
        let actions = self.script.caller.clone();
        for a in actions {
            match a {
                CallerAction::HangUpDuringApp { index: i, after } if i == index => {
                    self.timers.push(Timer {
                        at: clock.deadline(after),
                        kind: TimerKind::Caller(CallerEvent::HangUp),
                    })
                }
                CallerAction::HangUpDuringNamed {
                    app: name,
                    occurrence: n,
                    after,
                } if name.eq_ignore_ascii_case(app) && n == occurrence => self.timers.push(Timer {
                    at: clock.deadline(after),
                    kind: TimerKind::Caller(CallerEvent::HangUp),
                }),
                CallerAction::DtmfDuringApp {
                    index: i,
                    after,
                    digits,
                } if i == index => self.schedule_dtmf(clock.deadline(after), &digits),
                _ => {}
            }
        }
    }

    /// The whole hangup sequence (first hangup wins; later ones do nothing).
    fn hangup(&mut self, cause: HangupCause, side: HangupSide) {
        if self.ch.is_down() {
            return;
        }
        self.ch.begin_hangup(cause, side);
        self.fire_channel("CHANNEL_HANGUP", &[]);
        self.ch.after_hangup_event();
        self.report.hangup_at = Some(self.since_start());
        let linger_early = self.shared.config.linger_notice == LingerNotice::AfterHangup;
        if linger_early {
            self.linger_notice();
        }
        while !self.stack.is_empty() {
            self.complete_top(End::Hangup {
                remote: side != HangupSide::Local,
            });
        }
        for q in self.queue.drain(..) {
            match q {
                Queued::Execute(m) => self.report.apps[m.record].status = AppStatus::Skipped,
                Queued::Hangup { record, .. } => {
                    self.report.hangup_commands[record].status = AppStatus::Skipped
                }
            }
        }
        if self.script.sync && self.sock_open {
            // Static mode (transcript o2): no linger; the socket app ends with the
            // channel, and the rest of the hangup reaches inbound listeners only.
            self.out
                .extend(wire::disconnect_notice(Some(&self.ch.uuid), wire::GOODBYE));
            self.sock_open = false;
            self.close_now = true;
        }
        if self.parked {
            self.fire_channel("CHANNEL_UNPARK", &[]);
        }
        let response = self
            .ch
            .vars
            .get("current_application_response")
            .unwrap_or("_none_")
            .to_string();
        let socket_uuid = uuid::Uuid::new_v4().to_string();
        let data = self.socket_data.clone();
        self.fire_channel(
            "CHANNEL_EXECUTE_COMPLETE",
            &[
                ("Application", "socket"),
                ("Application-Data", data.as_str()),
                ("Application-Response", response.as_str()),
                ("Application-UUID", socket_uuid.as_str()),
            ],
        );
        self.ch.enter_cs_hangup();
        self.fire_channel("CHANNEL_STATE", &[]);
        // Session recordings close with the media bugs, in CS_HANGUP (transcript t).
        let now = self.shared.sw.clock.now_us();
        for r in std::mem::take(&mut self.session_recordings) {
            self.session_recording_stop(r, now);
        }
        self.ch.hangup_state(now);
        self.ch.enter_cs_reporting();
        self.fire_channel("CHANNEL_STATE", &[]);
        self.fire_channel("CHANNEL_HANGUP_COMPLETE", &[]);
        if !linger_early {
            self.linger_notice();
        }
        self.scheds.clear();
        match self.linger {
            None => {
                if self.sock_open {
                    self.out
                        .extend(wire::disconnect_notice(Some(&self.ch.uuid), wire::GOODBYE));
                }
                self.close_now = true;
            }
            Some(n) if n > 0 => {
                let at = self.shared.sw.clock.deadline(Duration::from_secs(n as u64));
                self.timers.push(Timer {
                    at,
                    kind: TimerKind::LingerClose,
                });
            }
            Some(_) => {}
        }
        let end = match side {
            HangupSide::Local if self.ch.answered() => CallerEnd::ByeReceived { cause },
            HangupSide::Local => CallerEnd::Refused {
                sip: self.respond_code.unwrap_or_else(|| cause.sip_refuse_code()),
                cause,
            },
            HangupSide::RemoteBye => CallerEnd::ByeSent { cause },
            HangupSide::RemoteCancel => CallerEnd::Cancelled {
                cause: self
                    .caller_cancel_cause
                    .unwrap_or(HangupCause::NORMAL_CLEARING),
            },
        };
        self.caller_leg_ends(end, self.ch.hangup_us);
    }

    /// The caller's leg ends too: the `originate` result if still pending, and its
    /// CHANNEL_HANGUP_COMPLETE for inbound listeners (only for calls placed by
    /// `originate`: a call from outside has no caller leg on this switch).
    fn caller_leg_ends(&mut self, end: CallerEnd, hangup_us: i64) {
        if !self.originated {
            return;
        }
        let pending = self.originate.take();
        let (media_in_packets, media_out_packets) = self.caller_media.packets(hangup_us);
        let leg = CallerLeg {
            media_in_packets,
            media_out_packets,
            uuid: &self.caller_uuid,
            destination: &self.ch.destination,
            caller_number: &self.ch.caller_number,
            caller_name: &self.ch.caller_name,
            created_us: self.ch.created_us,
            answered_us: self.ch.answered_us,
            // Early media the caller got before an answer (a dialplan-answered call's
            // media is its answer).
            progress_media_us: if self.ch.answered_us != 0
                && self.ch.progress_media_us >= self.ch.answered_us
            {
                0
            } else {
                self.ch.progress_media_us
            },
            hangup_us,
            end,
        };
        if let Some(tx) = pending {
            let _ = tx.send(leg.originate_error());
        }
        if self.shared.bus.has_listeners() {
            let event = leg.hangup_complete(&self.shared.sw);
            self.shared.bus.publish(Arc::new(event));
        }
    }

    fn linger_notice(&mut self) {
        if let (Some(secs), true) = (self.linger, self.sock_open) {
            self.out
                .extend(wire::linger_notice(&self.ch.uuid, &self.ch.name, secs));
        }
    }

    fn resolve_originate_ok(&mut self) {
        if let Some(tx) = self.originate.take() {
            let _ = tx.send(format!("+OK {}\n", self.caller_uuid));
        }
    }

    // ---------------------------------------------------------------- report

    fn finish(mut self) -> CallReport {
        let answered = self.ch.answered();
        let mut r = std::mem::replace(
            &mut self.report,
            CallReport::aborted(String::new(), String::new(), ""),
        );
        for a in &mut r.apps {
            if a.status == AppStatus::Pending && self.ch.is_down() {
                a.status = AppStatus::Skipped;
            }
        }
        for h in &mut r.hangup_commands {
            if h.status == AppStatus::Pending && self.ch.is_down() {
                h.status = AppStatus::Skipped;
            }
        }
        match self.ch.hangup {
            Some((cause, side)) => {
                r.hangup_cause = Some(cause);
                r.hangup_disposition = self
                    .ch
                    .vars
                    .get("sip_hangup_disposition")
                    .map(str::to_string);
                r.duration_secs = self.ch.duration_secs();
                r.billsec = self.ch.billsec();
                r.outcome = match side {
                    HangupSide::Local if answered => Outcome::Bye {
                        cause,
                        q850: cause.q850(),
                    },
                    HangupSide::Local => Outcome::Refused {
                        sip: self.respond_code.unwrap_or_else(|| cause.sip_refuse_code()),
                        cause,
                    },
                    _ => Outcome::CallerHungUp { cause, answered },
                };
            }
            None => {
                // Left parked (f7): ringing, the caller's originate timeout cancels it.
                r.outcome = Outcome::LeftParked;
                if !answered && !self.ch.media {
                    r.hangup_cause = Some(HangupCause::ORIGINATOR_CANCEL);
                    r.hangup_at = Some(self.since_start().max(self.script.originate_timeout));
                    // Reported at once, although the real caller gives up only when its
                    // originate_timeout runs out.
                    let now = self.shared.sw.clock.now_us();
                    self.caller_leg_ends(
                        CallerEnd::Cancelled {
                            cause: HangupCause::NO_ANSWER,
                        },
                        now,
                    );
                }
                if let Some(tx) = self.originate.take() {
                    // Early media but never answered, left parked: the caller's originate
                    // already returned +OK on the early media; nothing else is pending.
                    let _ = tx.send("-ERR NO_ANSWER\n".to_string());
                }
            }
        }
        r
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The simulated applications and how they run; `None` = not an application.
fn app_kind(app: &str) -> Option<Kind> {
    Some(match app {
        "playback" => Kind::Playback(PlayLength::NotFound),
        "speak" => Kind::Speak,
        "sleep" => Kind::Sleep,
        "record" => Kind::Record { by_silence: false },
        "bridge" => Kind::Bridge,
        "record_session" | "stop_record_session" => Kind::Instant,
        "answer" | "pre_answer" | "ring_ready" | "hangup" | "respond" | "sched_hangup"
        | "sched_cancel" | "set" | "export" | "unset" | "send_dtmf" | "log" | "info" | "event"
        | "flush_dtmf" | "bind_digit_action" | "clear_digit_action" => Kind::Instant,
        _ => return None,
    })
}

/// Apps without `SAF_SUPPORT_NOMEDIA`: they pre-answer a channel without media.
fn needs_media(app: &str) -> bool {
    matches!(app, "playback" | "speak" | "send_dtmf" | "record")
}

/// `DIALSTATUS` for a failed bridge's cause.
/// `originate_causes` as the switch writes it: `uuid;CAUSE` for one leg, the array form
/// `ARRAY::uuid;CAUSE|:uuid;CAUSE` for several, in dial-string order (transcript x).
fn originate_causes(entries: &[String]) -> String {
    match entries {
        [one] => one.clone(),
        many => format!("ARRAY::{}", many.join("|:")),
    }
}

fn dial_status(cause: HangupCause) -> &'static str {
    match cause.name() {
        "USER_BUSY" => "BUSY",
        "NO_ANSWER" | "NO_USER_RESPONSE" => "NOANSWER",
        "CALL_REJECTED" => "CALL_REJECTED",
        "NO_ROUTE_DESTINATION" | "UNALLOCATED_NUMBER" => "INVALIDARGS",
        // Transcript u: the caller cancelled while the leg rang.
        "ORIGINATOR_CANCEL" => "CANCEL",
        // Transcript y: the ringing leg killed (`uuid_kill`): the cause's own name.
        "NORMAL_CLEARING" => "NORMAL_CLEARING",
        _ => "FAIL",
    }
}

/// A `bridge` dial string with one destination: `{a=b,…}endpoint/user@host`.
#[derive(Debug)]
struct DialString {
    vars: Vec<(String, String)>,
    endpoint: String,
    destination: String,
}

impl DialString {
    /// `None` for what the simulator does not dial: several destinations (`,` `|`
    /// outside the braces), `[…]` per-leg variables, an empty endpoint.
    fn parse(arg: &str) -> Option<DialString> {
        let mut req = api::parse_originate(arg.trim())?;
        // One leg's own `[var=value,…]` (what voxbridge's Dial sends, with the leg's
        // `origination_uuid`): its variables win over the `{…}` ones.
        if let Some(inner) = req.endpoint.strip_prefix('[') {
            let end = inner.find(']')?;
            for kv in inner[..end].split(',') {
                if let Some((k, v)) = kv.split_once('=') {
                    let v = v.trim().trim_matches('\'').to_string();
                    req.vars.retain(|(n, _)| n != k.trim());
                    req.vars.push((k.trim().to_string(), v));
                }
            }
            req.endpoint = inner[end + 1..].to_string();
            let last = req.endpoint.rsplit('/').next().unwrap_or(&req.endpoint);
            req.destination = last.split('@').next().unwrap_or(last).to_string();
        }
        if !req.app.is_empty() || req.endpoint.contains([',', '|', '[']) || req.endpoint.is_empty()
        {
            return None;
        }
        Some(DialString {
            vars: req.vars,
            endpoint: req.endpoint,
            destination: req.destination,
        })
    }

    /// Every leg of a dial string: `{global}` then `,`-separated legs, each with its own
    /// `[vars]` (which win over the global ones). `None` for failover (`|`) or what
    /// [`DialString::parse`] refuses.
    fn parse_legs(arg: &str) -> Option<Vec<DialString>> {
        let arg = arg.trim();
        let (global, rest) = match arg.strip_prefix('{') {
            Some(inner) => {
                let end = inner.find('}')?;
                (&arg[..end + 2], &inner[end + 1..])
            }
            None => ("", arg),
        };
        // Split on `,` outside `[…]` and quotes.
        let mut legs = Vec::new();
        let (mut depth, mut quoted, mut start) = (0i32, false, 0usize);
        for (i, c) in rest.char_indices() {
            match c {
                '\'' => quoted = !quoted,
                '[' if !quoted => depth += 1,
                ']' if !quoted => depth -= 1,
                ',' if !quoted && depth == 0 => {
                    legs.push(&rest[start..i]);
                    start = i + 1;
                }
                '|' if !quoted && depth == 0 => return None,
                _ => {}
            }
        }
        legs.push(&rest[start..]);
        legs.into_iter()
            .map(|leg| DialString::parse(&format!("{global}{}", leg.trim())))
            .collect()
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn speak_text(arg: &str) -> &str {
    let parts: Vec<&str> = arg.splitn(3, '|').collect();
    if parts.len() == 3 {
        parts[2]
    } else {
        arg
    }
}

/// `switch_true`.
fn switch_true(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "true" | "yes" | "on" | "1" | "enabled" | "active" | "allow"
    )
}

/// `${var}` expansion of an app argument from the channel variables.
fn expand(arg: &str, vars: &super::channel::Vars) -> String {
    if !arg.contains("${") || vars.get("app_disable_expand_variables") == Some("true") {
        return arg.to_string();
    }
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                out.push_str(vars.get(&after[..end]).unwrap_or(""));
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// `filter` (`mes.c:parse_command`).
pub(crate) fn filter(subs: &mut Subscriptions, args: &str) -> String {
    let mut words = args.splitn(2, char::is_whitespace);
    let first = words.next().unwrap_or("").trim();
    let rest = words.next().unwrap_or("").trim();
    if first.eq_ignore_ascii_case("delete") {
        let mut w = rest.splitn(2, char::is_whitespace);
        let header = w.next().unwrap_or("").trim();
        let value = w.next().map(str::trim).filter(|v| !v.is_empty());
        if header.is_empty() {
            return "-ERR invalid syntax".into();
        }
        subs.delete_filter(header, value);
        return format!("+OK filter deleted. [{header}][{}]", value.unwrap_or(""));
    }
    let (header, value) = if first.eq_ignore_ascii_case("add") {
        let mut w = rest.splitn(2, char::is_whitespace);
        (
            w.next().unwrap_or("").trim().to_string(),
            w.next().unwrap_or("").trim().to_string(),
        )
    } else {
        (first.to_string(), rest.to_string())
    };
    if header.is_empty() || value.is_empty() {
        return "-ERR invalid syntax".into();
    }
    subs.add_filter(&header, &value);
    format!("+OK filter added. [{header}]=[{value}]")
}

/// `event [plain|json|xml] NAMES…`.
pub(crate) fn event_command(subs: &mut Subscriptions, args: &str) -> String {
    let mut words = args.split_whitespace().peekable();
    let format = match words.peek().map(|w| w.to_ascii_lowercase()) {
        Some(w) if w == "plain" => {
            words.next();
            EventFormat::Plain
        }
        Some(w) if w == "json" => {
            words.next();
            EventFormat::Json
        }
        Some(w) if w == "xml" => {
            return "-ERR xml events are not supported by the simulator".into();
        }
        _ => EventFormat::Plain,
    };
    subs.format = format;
    if subs.add_names(words) == 0 {
        return "-ERR no keywords supplied".into();
    }
    format!("+OK event listener enabled {}", format.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::Vars;

    #[test]
    fn expands_variables() {
        let mut v = Vars::default();
        v.set("name", "Ann");
        assert_eq!(expand("hi ${name}!", &v), "hi Ann!");
        assert_eq!(expand("${nope}x", &v), "x");
        assert_eq!(expand("open ${name", &v), "open ${name");
    }

    #[test]
    fn filter_and_event_replies() {
        let mut s = Subscriptions::default();
        assert_eq!(
            filter(&mut s, "Event-Name BACKGROUND_JOB"),
            "+OK filter added. [Event-Name]=[BACKGROUND_JOB]"
        );
        assert_eq!(filter(&mut s, "Unique-ID"), "-ERR invalid syntax");
        assert_eq!(
            event_command(&mut s, "plain CHANNEL_EXECUTE DTMF"),
            "+OK event listener enabled plain"
        );
        assert_eq!(
            event_command(&mut s, "json NOPE"),
            "-ERR no keywords supplied"
        );
        assert_eq!(s.format, EventFormat::Json);
    }
}
