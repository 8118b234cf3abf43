//! The switch-neutral vocabulary between the call engine and a switch driver.
//!
//! The engine decides in these terms — answer, speak a text with a voice, play a media
//! URL, wait, send digits, hang up with a cause, arm or cancel a scheduled hangup — and
//! hears back in these terms: an operation finished, failed, or was refused; a hangup
//! command was refused or found the channel gone. How an operation becomes a command on
//! the wire (for FreeSWITCH: `crate::call::freeswitch`'s `render` module) and how the switch's reply is read back
//! are the driver's business, so a driver for another switch is written against this
//! module without touching the engine.

use crate::cause::HangupCause;
use crate::document::model::{DialTarget, Voice};
use std::time::Duration;

/// Identifies one [`ChannelOp`] the engine started; the driver hands it back in
/// [`crate::call::engine::Input::OpFinished`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

/// One operation on the channel. The engine runs one at a time and waits for it to
/// finish before the next (the driver must report every one it was given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelOp {
    /// Answer the call (SPEC §3).
    Answer,
    /// Open early media without answering.
    PreAnswer,
    /// Say `text` with `voice`. `language` is the document's (`en-US` by default); a
    /// text-to-speech engine without language selection ignores it.
    Speak {
        voice: Voice,
        language: String,
        text: String,
    },
    /// Play the media at `url` as the document gave it (`http(s)://`, `file://`, or a
    /// switch-specific scheme the driver passes through).
    Play { url: String },
    /// Keep the channel silent for `duration`.
    Wait { duration: Duration },
    /// Silence for `duration` during which the caller's digits are reported as they come
    /// and the running operation ends only when stopped or over (a Wait inside a
    /// Gather). Unlike [`ChannelOp::Wait`], a digit must not end it by itself before the
    /// digit is reported: on FreeSWITCH a digit ends `sleep` and is only reported after
    /// (transcript q), which would let the next prompt start before the barge-in.
    Silence { duration: Duration },
    /// Send DTMF `digits` to the caller.
    SendDigits { digits: String },
    /// Hang up now with `cause`. Nothing else runs then, so it never interrupts.
    Hangup { cause: HangupCause },
    /// Arm a hangup `after` from now with `cause`, kept by the switch: it fires even if
    /// voxbridge is busy or gone.
    ArmHangup { after: Duration, cause: HangupCause },
    /// Cancel every hangup armed on this channel.
    CancelArmedHangups,
    /// Ring the legs and bridge the caller to the first that answers (SPEC §11). It
    /// ends with [`crate::call::engine::Input::BridgeEnded`], not `OpFinished` (unless
    /// the switch refuses it outright).
    Bridge(Bridge),
    /// Drop the DTMF digits the switch holds for the channel (a Gather's first step, so
    /// digits pressed before it are never counted; their events, if any, arrive before
    /// this operation's completion).
    FlushDigits,
    /// Record the caller into a file (SPEC §12.2, a plain `<Record>`): beep if asked,
    /// then record until silence, the length limit, a finish key, a stop or the hangup.
    /// It ends with [`crate::call::engine::Input::RecordEnded`], not `OpFinished`
    /// (unless the switch refuses it outright).
    Record(RecordCaller),
    /// Start recording the whole call, both directions, into `path`, in the background
    /// (`recordSession`, `startOnDialAnswer`): the operation completes at once and the
    /// call goes on; the file is complete when
    /// [`crate::call::engine::Input::RecordingStopped`] names it (a stop, or the hangup).
    StartSessionRecording { path: String },
}

/// A recording's container. Which ones a switch can write is the driver's knowledge
/// (FreeSWITCH needs mod_shout for mp3); the engine asks only for what the configuration
/// says the switch can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordFormat {
    Wav,
    Mp3,
}

impl RecordFormat {
    /// The file's extension (and the API's `recording_format`).
    pub fn ext(self) -> &'static str {
        match self {
            RecordFormat::Wav => "wav",
            RecordFormat::Mp3 => "mp3",
        }
    }
}

/// [`ChannelOp::Record`]: record the caller (one direction) into `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordCaller {
    /// Absolute path of the file to write, `<record.dir>/<RecordingID>.<ext>`: a place
    /// both the switch and voxbridge can reach.
    pub path: String,
    pub format: RecordFormat,
    /// A short tone before the recording starts (`playBeep`).
    pub beep: bool,
    /// This much silence from the caller ends the recording (`timeout`).
    pub silence_timeout: Duration,
    /// The recording's length limit (`maxLength`). Switches check it coarsely: the
    /// test FreeSWITCH runs to the next whole second past it.
    pub max_length: Duration,
    /// Keys that end the recording (not recorded as audio); empty: none.
    pub finish_keys: String,
}

/// What the switch says about how a [`ChannelOp::Record`] ended. The switch tells
/// silence and a finish key apart from the rest; a limit, a stop and the hangup all look
/// alike on the wire, and the engine knows which one it was (it asked for the stop, it
/// saw the hangup).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordEndedBy {
    /// The caller's silence lasted the whole silence timeout.
    Silence,
    /// The caller pressed this finish key.
    Key(char),
    /// Anything else: the length limit, a stop, or the channel going down.
    Other,
}

/// The end of a [`ChannelOp::Record`] as the switch reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordReport {
    pub ended_by: RecordEndedBy,
    /// The audio recorded, as the switch measured it.
    pub duration: Duration,
    /// When the recording ended, epoch milliseconds on the switch's clock (its event's
    /// timestamp); `None` if the switch did not say.
    pub ended_at_ms: Option<i64>,
}

/// A background recording ([`ChannelOp::StartSessionRecording`]) whose file is now
/// complete, as the switch reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingStop {
    /// The file, as the operation named it.
    pub path: String,
    pub duration: Duration,
    /// Epoch milliseconds on the switch's clock; `None` if the switch did not say.
    pub ended_at_ms: Option<i64>,
}

/// How a [`ChannelOp`] ended, as the driver reads the switch's reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpOutcome {
    /// It ran to its end (or was cut short by the caller: the channel's own events say so).
    Completed,
    /// It ran and the switch reported a failure (a media URL that could not be played…);
    /// the text is the switch's, for the record's notes.
    Failed(String),
    /// The switch would not run it at all (or it could not be sent); the text says why.
    Refused(String),
}

/// The two ways the engine hangs up from outside the document's flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HangupCommand {
    /// [`crate::call::engine::Action::Kill`]: at once, even while an operation runs.
    Kill,
    /// [`crate::call::engine::Action::HangupAfterOp`]: the fallback when a kill was
    /// refused; the switch ends the call once the operation in progress has returned.
    HangupAfterOp,
}

/// Why a [`HangupCommand`] did not take effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandFailure {
    /// The channel is already gone (a race with the caller hanging up): its hangup
    /// events follow, nothing needs doing.
    ChannelGone,
    /// The switch refused it, or it could not be sent; the text says why.
    Refused(String),
}

/// Which side ended the call, as the switch reports it at the end (the FreeSWITCH
/// driver reads it from the SIP disposition, see its `render` module).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HungUpBy {
    /// The far end (the caller) ended it.
    Caller,
    /// The switch ended it on request (ours, a scheduled hangup, or someone else's).
    Switch,
    /// Not reported or not recognised: decided from our own records as if `Switch`.
    Unknown,
}

/// [`ChannelOp::Bridge`]: ring every leg at once, bridge the caller to the first that
/// answers (SPEC §11). The switch answers the caller when the callee answers; the engine
/// never does for a Dial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bridge {
    /// In document order (`DialBLegPosition` is the 1-based index).
    pub legs: Vec<BridgeLeg>,
    /// How long the legs may ring.
    pub ring_timeout: Duration,
    /// How long the bridge may last from the callee's answer.
    pub time_limit: Duration,
    /// `*` from the caller ends the bridge (the caller stays).
    pub hangup_on_star: bool,
    /// Caller ID presented to the callees (`None`: the caller's own).
    pub caller_id: Option<String>,
    pub caller_name: Option<String>,
    /// `X-VH-<name>: <value>` on every leg's INVITE.
    pub sip_headers: Vec<(String, String)>,
    /// `digitsMatchBLeg`: digit patterns (`X` any digit) to watch for on the bridged
    /// callee's side; a match comes back as [`crate::call::engine::Input::CalleeDigits`].
    /// (The caller's digits reach the engine as DTMF and are matched there.)
    pub callee_digit_patterns: Vec<String>,
    /// `digitsMatch` is set: the engine matches the caller's digits during the bridge,
    /// so the driver must deliver the caller's DTMF while bridged (FreeSWITCH does: DTMF
    /// events on the socket; a driver that cannot refuses the Dial by name).
    pub caller_digits_watched: bool,
    /// `confirmSound` / `confirmKey`: played to each callee when it answers, before
    /// the bridge; with a key, only a callee that presses it is bridged.
    pub confirm: Option<Confirm>,
    /// `dialMusic` as a document: looped to the caller until a callee answers, instead
    /// of the callees' own ringback (`None`: theirs, `real`).
    pub music: Option<Vec<MediaItem>>,
}

/// What a callee hears on answer before it is bridged, and the key it must press.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirm {
    /// In order; empty when the document gave nothing usable (silence then).
    pub media: Vec<MediaItem>,
    /// `None`: the media plays and the callee is bridged after it.
    pub key: Option<char>,
}

/// One piece of a Dial's media document (`confirmSound`): what a Play or a Wait of it
/// becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaItem {
    /// The media at `url`, as the document gave it.
    Play { url: String },
    /// Silence.
    Silence { duration: Duration },
}

impl Bridge {
    /// The `sipHeaders` sent on leg `b_leg`'s INVITE: the Dial's, then the leg's own
    /// (`<User sipHeaders>`); the Dial's alone for `None` (no one answered). They are
    /// what the Dial's callbacks echo (SPEC §11.1).
    pub fn sip_headers_of(&self, b_leg: Option<&str>) -> Vec<(String, String)> {
        let own = b_leg
            .and_then(|b| self.legs.iter().find(|l| l.uuid == b))
            .map(|l| l.sip_headers.as_slice())
            .unwrap_or_default();
        self.sip_headers.iter().chain(own).cloned().collect()
    }
}

/// One destination of a [`Bridge`], with the uuid voxbridge chose for its channel, so the
/// leg is known by uuid before the switch creates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeLeg {
    pub uuid: String,
    pub target: DialTarget,
    /// DTMF sent to the callee on answer (or on early media, `send_on_preanswer`).
    pub send_digits: Option<String>,
    pub send_on_preanswer: bool,
    /// Headers for this leg only, beside the Dial's.
    pub sip_headers: Vec<(String, String)>,
}

/// How a [`ChannelOp::Bridge`] ended, as the switch reports it on the caller's channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BridgeOutcome {
    /// A callee answered and was bridged; the bridge is now over. `callee_cause` is how
    /// the callee's leg ended (the switch's `bridge_hangup_cause`), when it did.
    Bridged {
        b_leg: String,
        callee_cause: Option<HangupCause>,
    },
    /// No callee was bridged: `cause` is the switch's reason (USER_BUSY, NO_ANSWER,
    /// NO_ROUTE_DESTINATION, ORIGINATOR_CANCEL…).
    NotBridged { cause: HangupCause },
}

/// The bridge's end, with each leg's own cause where the switch gave one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeReport {
    pub outcome: BridgeOutcome,
    /// `(leg uuid, cause)` per leg that ended before or instead of the bridge (LOSE_RACE
    /// for the losers of a race).
    pub leg_causes: Vec<(String, HangupCause)>,
}

/// Stop the call's recordings now, even while an operation runs (REST
/// `DELETE Call/{uuid}/Record/`): each stopped background recording is then reported
/// with [`crate::call::engine::Input::RecordingStopped`], a running
/// [`ChannelOp::Record`] ends as usual with its report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopRecordings {
    /// The background recordings still running, by the path they were started with.
    pub sessions: Vec<String>,
    /// A [`ChannelOp::Record`] is running and must end now.
    pub caller: bool,
}
