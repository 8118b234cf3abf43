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
use crate::document::model::Voice;
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
    /// Send DTMF `digits` to the caller.
    SendDigits { digits: String },
    /// Hang up now with `cause`. Nothing else runs then, so it never interrupts.
    Hangup { cause: HangupCause },
    /// Arm a hangup `after` from now with `cause`, kept by the switch: it fires even if
    /// voxbridge is busy or gone.
    ArmHangup { after: Duration, cause: HangupCause },
    /// Cancel every hangup armed on this channel.
    CancelArmedHangups,
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
