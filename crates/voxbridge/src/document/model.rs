//! The one instruction model both answer-document dialects parse into.
//!
//! The call engine only ever sees these types: it never knows whether a document was
//! Answer XML or VoxML JSON. Values here are already validated (a `Wait` has a length
//! of at least one second, a schedule is positive, …), so the engine need not check.

/// A parsed, validated answer document: the instructions to execute, in order.
///
/// An empty list is meaningful (SPEC §4 rule 7: the call stays parked).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnswerDocument {
    pub instructions: Vec<Instruction>,
}

/// One step of an answer document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Instruction {
    /// Text to speech (XML `<Speak>`, VoxML `Say`). Needs an answered call.
    Speak(Speak),
    /// Play an audio URL (XML `<Play>`, VoxML `Play`). Needs an answered call.
    Play(Play),
    /// Wait in whatever state the call is in (XML `<Wait>`, VoxML `Pause`).
    Wait(Wait),
    /// Early media: `pre_answer`, then the children (only Speak, Play, Wait).
    PreAnswer(Vec<Instruction>),
    /// End the call (SPEC §4). Never answers.
    Hangup(Hangup),
    /// VoxML `Reject`: end the call with `reason`, never answering; on an already
    /// answered call it acts as a Hangup with that reason (and the engine logs a warning).
    Reject(Reject),
    /// Fetch a new document and replace the rest of this one.
    Redirect(Redirect),
    /// Send DTMF digits. Needs an answered call.
    Dtmf(Dtmf),
    /// Bridge the caller to a second leg (SPEC §11). Never answers by itself: the
    /// bridge answers the caller when a callee answers.
    Dial(Box<Dial>),
    /// Collect the caller's DTMF while playing prompts (SPEC §12.1). Answers the call.
    Gather(Gather),
    /// Record the caller, or the whole call in the background (SPEC §12.2). It answers
    /// the call, except `startOnDialAnswer` (the Dial's bridge answers it).
    Record(Record),
}

/// A recording's container as the document asks for it (SPEC §12.2 `fileFormat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioFormat {
    Wav,
    Mp3,
}

/// `<Record>` (SPEC §12.2): validated values, defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Requested when the file is complete (`Event=Record`); `None`: no request.
    pub action: Option<String>,
    pub method: HttpMethod,
    /// false (the default for Record): the action is requested through the outbox, its
    /// response ignored, execution goes on; true: its response is the next document.
    pub redirect: bool,
    /// `None`: the configuration's `record.format`.
    pub file_format: Option<AudioFormat>,
    /// Seconds of silence that end a plain Record (1–3600, default 60).
    pub timeout_secs: u32,
    /// The longest a plain Record runs, in seconds (1–14400, default 60).
    pub max_length_secs: u32,
    pub play_beep: bool,
    /// Keys that end a plain Record (default `1234567890*#`); empty: none.
    pub finish_on_key: String,
    /// The whole call, both directions, in the background until the hangup.
    pub record_session: bool,
    /// The same, from the moment the next Dial's callee answers.
    pub start_on_dial_answer: bool,
    /// `Event=RecordStop` goes there through the outbox when the file is complete.
    pub callback: Option<Redirect>,
}

/// A complete recording as its `action` and `callbackUrl` are told (SPEC §12.2); decided
/// by the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingFacts {
    pub recording_id: String,
    /// `RecordUrl` and `RecordFile`: where the application downloads it.
    pub url: String,
    pub duration_ms: u64,
    /// Epoch milliseconds.
    pub start_ms: i64,
    pub end_ms: i64,
    /// `RecordingTimeout`, `maxLength`, `FinishedOnKey`, `HungUp` (or `Stopped`).
    pub end_reason: String,
    /// The finish key that ended it; empty otherwise.
    pub digits: String,
}

impl RecordingFacts {
    /// The SPEC §12.2 fields, in the order the spec lists them.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        vec![
            ("RecordingID", self.recording_id.clone()),
            ("RecordUrl", self.url.clone()),
            ("RecordFile", self.url.clone()),
            ("RecordingDuration", (self.duration_ms / 1000).to_string()),
            ("RecordingDurationMs", self.duration_ms.to_string()),
            ("RecordingStartMs", self.start_ms.to_string()),
            ("RecordingEndMs", self.end_ms.to_string()),
            ("RecordingEndReason", self.end_reason.clone()),
            ("Digits", self.digits.clone()),
        ]
    }
}

/// How many times to repeat media. `0` means "until the call ends".
pub type LoopCount = u32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Speak {
    pub text: String,
    pub voice: Voice,
    /// BCP-47-ish language tag as written in the document, default `en-US`.
    pub language: String,
    pub loop_count: LoopCount,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Voice {
    #[default]
    Woman,
    Man,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Play {
    /// `http(s)://`, `file://`, `tone_stream://` or `silence_stream://` as written.
    pub url: String,
    pub loop_count: LoopCount,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wait {
    /// Whole seconds, at least 1.
    pub length_secs: u32,
}

/// The reason a document gives for hanging up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HangupReason {
    /// CALL_REJECTED (21): SIP 603 before answer.
    Rejected,
    /// USER_BUSY (17): SIP 486 before answer.
    Busy,
    /// NORMAL_CLEARING (16) — VoxML's explicit `completed`.
    Completed,
}

impl HangupReason {
    /// The word used in documents and callbacks (`rejected`, `busy`, `completed`).
    pub fn as_str(self) -> &'static str {
        match self {
            HangupReason::Rejected => "rejected",
            HangupReason::Busy => "busy",
            HangupReason::Completed => "completed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hangup {
    /// `None` when the document gave no reason: the engine then applies the
    /// "first element → rejected, otherwise NORMAL_CLEARING" rule of SPEC §4.
    pub reason: Option<HangupReason>,
    /// Arm a hangup this many seconds from now inside the switch (> 0).
    pub schedule_secs: Option<u32>,
    /// The post-call workflow, fired only if this Hangup actually closes the call.
    pub post_call: Option<PostCall>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// Only `Rejected` or `Busy`.
    pub reason: HangupReason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum HttpMethod {
    #[default]
    Post,
    Get,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Post => "POST",
            HttpMethod::Get => "GET",
        }
    }

    /// Case-insensitive, as documents write it both ways.
    pub fn parse(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("GET") {
            Some(HttpMethod::Get)
        } else if text.eq_ignore_ascii_case("POST") {
            Some(HttpMethod::Post)
        } else {
            None
        }
    }
}

/// The `Event` parameter of a document fetch (SPEC §5.1): why the document is asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchEvent {
    /// The first document of a call.
    StartApp,
    /// A document a `Redirect` pointed to.
    Redirect,
    /// The `action` of a `Dial` that ended, with its outcome (SPEC §11.4).
    DialAction(Box<DialOutcome>),
    /// A Gather's `action` with the caller's digits (SPEC §12.1).
    Gather { digits: String },
    /// A Record's `action` once its file is complete (SPEC §12.2).
    Record(Box<RecordingFacts>),
    /// A Dial's `confirmSound` document, played to the callee on answer (SPEC §11.1).
    DialConfirmSound,
    /// A Dial's `dialMusic` document, looped to the caller while the callees ring.
    DialMusic,
}

impl FetchEvent {
    pub fn as_str(&self) -> &'static str {
        match self {
            FetchEvent::StartApp => "StartApp",
            FetchEvent::Redirect => "Redirect",
            FetchEvent::DialAction(_) => "DialAction",
            FetchEvent::Gather { .. } => "Gather",
            FetchEvent::Record(_) => "Record",
            FetchEvent::DialConfirmSound => "DialConfirmSound",
            FetchEvent::DialMusic => "DialMusic",
        }
    }
}

/// How a Dial ended, as its `action` is told (SPEC §11.4); decided by the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialOutcome {
    /// `DialStatus`: completed, busy, no-answer, failed or cancel.
    pub status: String,
    /// `DialRingStatus`: whether a callee rang.
    pub ring_status: bool,
    /// `DialHangupCause`: the callee's cause; empty when none.
    pub hangup_cause: String,
    pub a_leg_uuid: String,
    /// Empty when no callee answered.
    pub b_leg_uuid: String,
    /// `sipHeaders` sent on the bridged callee's INVITE (the Dial's, then its `<User>`'s;
    /// the Dial's alone when no one answered), echoed as `X-VH-<name>` parameters.
    pub sip_headers: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostCall {
    pub url: String,
    pub method: HttpMethod,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    pub url: String,
    pub method: HttpMethod,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dtmf {
    /// Digits `0-9 * # A-D` and `w`/`W` pauses, as `send_dtmf` accepts them.
    pub digits: String,
    pub async_: bool,
}

/// `<Gather>` (SPEC §12.1), DTMF only: validated values, defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gather {
    /// Requested with the digits (never when there was no input).
    pub action: String,
    pub method: HttpMethod,
    /// Seconds to wait for the first digit once the prompts have finished (5–60).
    pub execution_timeout_secs: u32,
    /// Seconds of quiet after a digit that end the input (2–10; `auto` is 5).
    pub digit_end_timeout_secs: u32,
    /// The key that ends the input (not part of the digits); `None`: disabled.
    pub finish_on_key: Option<char>,
    /// The input ends when this many digits have been pressed (1–32).
    pub num_digits: u32,
    /// true: the action's response is the next document; false: the action is
    /// requested through the outbox and execution continues.
    pub redirect: bool,
    /// false: the digits are masked in logs and CDR notes.
    pub log: bool,
    /// Speak, Play and Wait only, played in order until the first digit.
    pub prompts: Vec<Instruction>,
}

impl FetchEvent {
    /// The extra form parameters a fetch for this event carries (SPEC §12.1: a Gather's
    /// `Digits`; §11.4: a Dial's `DialStatus`, …), beside the §5.1 ones.
    pub fn params(&self) -> Vec<(String, String)> {
        let fixed = |pairs: Vec<(&str, String)>| -> Vec<(String, String)> {
            pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
        };
        match self {
            FetchEvent::Gather { digits } => fixed(vec![
                ("InputType", "dtmf".to_string()),
                ("Digits", digits.clone()),
                ("Speech", String::new()),
            ]),
            FetchEvent::Record(facts) => fixed(facts.params()),
            FetchEvent::DialAction(d) => {
                let mut params = fixed(vec![
                    ("DialStatus", d.status.clone()),
                    ("DialRingStatus", d.ring_status.to_string()),
                    ("DialHangupCause", d.hangup_cause.clone()),
                    ("DialALegUUID", d.a_leg_uuid.clone()),
                    ("DialBLegUUID", d.b_leg_uuid.clone()),
                ]);
                params.extend(sip_header_params(&d.sip_headers));
                params
            }
            _ => Vec::new(),
        }
    }
}

/// `sipHeaders` echoed in a Dial's callbacks and action (SPEC §11.1): each header sent
/// on the callee's INVITE as `X-VH-<name>` comes back as a form parameter of that very
/// name, so the application reads the same key it would see on the SIP message.
pub fn sip_header_params(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| (format!("X-VH-{k}"), v.clone()))
        .collect()
}

impl Instruction {
    /// Whether executing this instruction requires an answered call first (SPEC §3).
    pub fn needs_answer(&self) -> bool {
        matches!(
            self,
            Instruction::Speak(_)
                | Instruction::Play(_)
                | Instruction::Dtmf(_)
                | Instruction::Gather(_)
        ) || matches!(self, Instruction::Record(r) if !r.start_on_dial_answer)
    }

    /// The element name as an admin would recognise it in logs and plans.
    pub fn name(&self) -> &'static str {
        match self {
            Instruction::Speak(_) => "Speak",
            Instruction::Play(_) => "Play",
            Instruction::Wait(_) => "Wait",
            Instruction::PreAnswer(_) => "PreAnswer",
            Instruction::Hangup(_) => "Hangup",
            Instruction::Reject(_) => "Reject",
            Instruction::Redirect(_) => "Redirect",
            Instruction::Dtmf(_) => "DTMF",
            Instruction::Dial(_) => "Dial",
            Instruction::Gather(_) => "Gather",
            Instruction::Record(_) => "Record",
        }
    }
}

impl Record {
    /// A plain Record (the caller, now) rather than a background one.
    pub fn is_plain(&self) -> bool {
        !self.record_session && !self.start_on_dial_answer
    }
}

/// `<Dial>` (SPEC §11.1): bridge the caller to the first of its destinations to answer.
/// Values are validated; what the engine does with each is in `crate::call::element::dial`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dial {
    /// At least one, in document order (`DialBLegPosition` is the 1-based index here).
    pub destinations: Vec<DialDestination>,
    /// Requested once when the Dial ends (`Event=DialAction`).
    pub action: Option<Redirect>,
    /// `true`: the action's response is the next document; `false`: it is requested
    /// through the outbox, its response ignored, and the next element runs.
    pub redirect: bool,
    /// Real-time leg events (`callbackUrl`, `callbackMethod`).
    pub callback: Option<Redirect>,
    /// Caller ID number presented to the callee (default: the caller's own).
    pub caller_id: Option<String>,
    /// Caller ID name presented to the callee (default: the caller's own).
    pub caller_name: Option<String>,
    /// Seconds the destinations may ring (default 120).
    pub timeout_secs: u32,
    /// Seconds the bridge may last from the callee's answer (default 14400).
    pub time_limit_secs: u32,
    /// `*` from the caller ends the bridge; the caller continues.
    pub hangup_on_star: bool,
    /// What the caller hears while the destinations ring.
    pub dial_music: DialMusic,
    /// A document (Play/Speak/Wait) played to the callee when it answers.
    pub confirm_sound: Option<String>,
    /// The key the callee must press to take the call.
    pub confirm_key: Option<char>,
    /// Digit patterns matched on the caller's digits.
    pub digits_match: Vec<String>,
    /// Digit patterns matched on the callee's digits.
    pub digits_match_b_leg: Vec<String>,
    /// `X-VH-<name>: <value>` on every leg's INVITE, echoed in callbacks.
    pub sip_headers: Vec<(String, String)>,
}

/// One `<Number>` or `<User>` of a Dial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialDestination {
    pub target: DialTarget,
    /// DTMF sent to the callee once it answers (`w` = 0.5 s pause, `W` = 1 s).
    pub send_digits: Option<String>,
    /// Send `send_digits` on early media (183) instead of on answer.
    pub send_on_preanswer: bool,
    /// `<User sipHeaders>`: extra `X-VH-` headers for this leg only.
    pub sip_headers: Vec<(String, String)>,
}

/// Where a Dial leg goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialTarget {
    /// Digits with an optional leading `+`, dialled through `[dial] number_template`.
    Number(String),
    /// `sip:user@host[:port]`, dialled through `[dial] sip_profile`.
    User(String),
}

impl DialTarget {
    /// The destination as the document wrote it (`DialBLegTo`).
    pub fn as_str(&self) -> &str {
        match self {
            DialTarget::Number(n) | DialTarget::User(n) => n,
        }
    }
}

/// `dialMusic`: the callee's own ringback, or a document looped to the caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DialMusic {
    #[default]
    Real,
    /// A document of Play/Speak/Wait, fetched with POST.
    Document(String),
}
