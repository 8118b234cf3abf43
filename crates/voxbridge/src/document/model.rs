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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchEvent {
    /// The first document of a call.
    StartApp,
    /// A document a `Redirect` pointed to.
    Redirect,
}

impl FetchEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            FetchEvent::StartApp => "StartApp",
            FetchEvent::Redirect => "Redirect",
        }
    }
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

impl Instruction {
    /// Whether executing this instruction requires an answered call first (SPEC §3).
    pub fn needs_answer(&self) -> bool {
        matches!(
            self,
            Instruction::Speak(_) | Instruction::Play(_) | Instruction::Dtmf(_)
        )
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
        }
    }
}
