//! Hangup rules (SPEC §4) and attribution (SPEC §5.2): which cause a document's Hangup
//! acts with, what the record calls it, and — once the switch reports the channel gone —
//! which of the candidate endings actually closed the call.
//!
//! Everything here is pure. The engine records its own decisions ([`Intent`]) and the
//! hangups it armed inside the switch ([`ArmedSchedule`]); [`attribute`] turns those and
//! the switch's final report into the one [`Ending`] the call record is built from.
//!
//! # How a call's ending is attributed
//!
//! The switch tells us, at the end, the cause and which side hung up ([`HungUpBy`];
//! FreeSWITCH: `sip_hangup_disposition` `recv_*` means the far end (the caller) acted
//! first, `send_*` means the switch sent the hangup itself because we, a schedule, or
//! someone else asked it to).
//!
//! * [`HungUpBy::Caller`] → **the caller** won, whatever we had
//!   asked for in the meantime: source `Caller`, name `Caller Hangup`, reason `completed`,
//!   `caller_abandoned` when the call was never answered (CallStatus `cancel`).
//! * [`HungUpBy::Switch`] (or [`HungUpBy::Unknown`]) → one of ours. Candidates are our own first
//!   ending decision (a document Hangup/Reject, the end of the document, the REST API,
//!   the empty-document timeout, an error) and the schedules armed with `sched_hangup`.
//!   A schedule is a candidate only if its cause is the switch's cause and it was due
//!   (allowing for the switch firing up to a second early, see [`SCHEDULE_EARLY_FIRE`]).
//!   - only our decision → it; only a due schedule → it;
//!   - both: if only one of them has the switch's cause, that one; else the schedule wins
//!     when it was already due when we decided (it fired first), our decision otherwise.
//!   - neither → **someone outside** (e.g. `uuid_kill` from the switch console, or the
//!     switch itself on an application failure): source `Unknown`, name `Unknown`, and a
//!     note that says so. We never guess a source we cannot support.
//!
//! The recorded cause is always the switch's reported cause (it normally equals ours).
//!
//! # SIP status
//! The status the caller saw: 487 when the caller abandoned an unanswered call; 200 for a
//! call that had been answered (the call ended with a BYE, whichever side sent it); and
//! for an unanswered call refused by the switch, the code mod_sofia sends for the cause
//! (`HangupCause::sip_refuse_code`: 486 / 603 / 480 …). Unknown (`None`) when the
//! socket was lost before the switch confirmed that the channel was down.

use crate::cause::HangupCause;
use crate::document::model::{HangupReason, PostCall};
use crate::record::call::HangupSource;
use std::time::{Duration, Instant};

/// `HangupCauseName` of a document Hangup/Reject that acted with NORMAL_CLEARING, and of
/// a REST API hangup.
pub const NAME_NORMAL_HANGUP: &str = "Normal Hangup";
/// `HangupCauseName` for USER_BUSY from a document.
pub const NAME_BUSY_LINE: &str = "Busy Line";
/// `HangupCauseName` for CALL_REJECTED from a document.
pub const NAME_REJECTED: &str = "Rejected";
/// `HangupCauseName` when a non-empty document ran out of elements (SPEC §4 rule 6).
pub const NAME_END_OF_DOCUMENT: &str = "End Of XML Instructions";
/// `HangupCauseName` when the caller hung up first.
pub const NAME_CALLER_HANGUP: &str = "Caller Hangup";
/// `HangupCauseName` when an empty document parked the call too long (SPEC §4 rule 7).
pub const NAME_TIMEOUT: &str = "Timeout";
/// `HangupCauseName` when nobody we know of ended the call, or the socket was lost.
pub const NAME_UNKNOWN: &str = "Unknown";

/// How much earlier than its nominal time a `sched_hangup +N` may fire: the switch's
/// scheduler works on whole epoch seconds, so it fires up to ~1 s early (reference §5,
/// §9: `+3` at 2.98 s, `+4` at 3.46 s); half a second more covers event latency.
pub const SCHEDULE_EARLY_FIRE: Duration = Duration::from_millis(1500);

/// The longest error text put into `HangupCauseName` (the full text goes to the notes).
const MAX_ERROR_NAME_CHARS: usize = 120;

/// What a document Hangup (or Reject) acts with: the cause sent to the switch and the
/// `HangupReason` reported for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocumentHangup {
    pub cause: HangupCause,
    pub reason: HangupReason,
}

/// SPEC §4 table: the cause of a document Hangup.
///
/// `first` is whether the Hangup is element 0 of the document being executed (a document
/// reached by Redirect counts as new). A first Hangup without reason is a rejection —
/// whether or not the call is answered (on an answered call that is a BYE with cause 21).
/// A scheduled Hangup is never first; the caller passes `first = false` for it.
pub fn document_hangup(reason: Option<HangupReason>, first: bool) -> DocumentHangup {
    let reason = match reason {
        Some(r) => r,
        None if first => HangupReason::Rejected,
        None => HangupReason::Completed,
    };
    DocumentHangup {
        cause: reason_cause(reason),
        reason,
    }
}

/// The cause a reason maps to: rejected → CALL_REJECTED, busy → USER_BUSY,
/// completed → NORMAL_CLEARING.
pub fn reason_cause(reason: HangupReason) -> HangupCause {
    match reason {
        HangupReason::Rejected => HangupCause::CALL_REJECTED,
        HangupReason::Busy => HangupCause::USER_BUSY,
        HangupReason::Completed => HangupCause::NORMAL_CLEARING,
    }
}

/// `HangupCauseName` for a call ended by a document Hangup with this reason.
pub fn document_cause_name(reason: HangupReason) -> &'static str {
    match reason {
        HangupReason::Rejected => NAME_REJECTED,
        HangupReason::Busy => NAME_BUSY_LINE,
        HangupReason::Completed => NAME_NORMAL_HANGUP,
    }
}

/// SPEC §4 rule 8: the cause for an error ending — CALL_REJECTED on an unanswered call
/// (the caller hears 603, nothing is billed), NORMAL_CLEARING on an answered one.
pub fn error_cause(answered: bool) -> HangupCause {
    if answered {
        HangupCause::NORMAL_CLEARING
    } else {
        HangupCause::CALL_REJECTED
    }
}

/// `Error: <short reason>`: one line, at most [`MAX_ERROR_NAME_CHARS`] characters, so a
/// 100 KiB parse error cannot bloat every callback. The full text goes to the notes.
pub fn error_cause_name(message: &str) -> String {
    let one_line: String = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut name = String::from("Error: ");
    let budget = MAX_ERROR_NAME_CHARS - name.len();
    if one_line.chars().count() > budget {
        name.extend(one_line.chars().take(budget - 1));
        name.push('…');
    } else {
        name.push_str(&one_line);
    }
    name
}

pub use crate::call::channel_op::HungUpBy;

/// One way voxbridge itself decided to end the call. Only the first is ever kept
/// (SPEC §4 rule 4); `at` is when the engine sent it to the switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    pub at: Instant,
    pub kind: IntentKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntentKind {
    /// A document Hangup (or Reject) without schedule, executed.
    Document {
        hangup: DocumentHangup,
        post_call: Option<PostCall>,
    },
    /// A non-empty document ran out of elements (rule 6).
    EndOfDocument,
    /// The REST API asked to hang up (`uuid_kill`).
    Api,
    /// An empty document parked the call for `empty_document_timeout` (rule 7).
    EmptyDocumentTimeout,
    /// No document, an invalid one, or an internal error (rule 8).
    Error {
        /// Full text (goes to notes); the cause name carries a shortened copy.
        message: String,
        cause: HangupCause,
    },
}

impl IntentKind {
    /// The cause voxbridge asks the switch to hang up with.
    pub fn cause(&self) -> HangupCause {
        match self {
            IntentKind::Document { hangup, .. } => hangup.cause,
            IntentKind::EndOfDocument | IntentKind::Api => HangupCause::NORMAL_CLEARING,
            IntentKind::EmptyDocumentTimeout => HangupCause::ALLOTTED_TIMEOUT,
            IntentKind::Error { cause, .. } => *cause,
        }
    }
}

/// A `sched_hangup +N` voxbridge armed inside the switch for a scheduled Hangup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArmedSchedule {
    /// When the switch should fire it (nominally; it may fire up to ~1 s early).
    pub due: Instant,
    pub secs: u32,
    pub hangup: DocumentHangup,
    pub post_call: Option<PostCall>,
}

/// How the call ended, as far as voxbridge decides it. Exactly one per call; the driver
/// adds what only the switch knows (times, durations) to make the
/// [`CallRecord`](crate::record::call::CallRecord).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ending {
    /// The cause the switch reported (or what is known, SPEC §2 step 7).
    pub cause: HangupCause,
    /// `HangupCauseCode`: the Q.850 value of `cause` as the switch reports it in
    /// `hangup_cause_q850` (16 for causes above 127).
    pub cause_code: u16,
    /// `HangupCauseName` (SPEC §5.2 table).
    pub cause_name: String,
    pub source: HangupSource,
    /// `HangupReason`: the reason the closing Hangup acted with, else `completed`.
    pub reason: HangupReason,
    /// The post-call workflow of the Hangup that actually closed the call (rule 5).
    pub post_call: Option<PostCall>,
    /// The caller gave up before answer (CallStatus `cancel`).
    pub caller_abandoned: bool,
    /// What the caller saw: 486/603/480… before answer, 487 when they cancelled, 200 (BYE)
    /// after answer; `None` when unknown.
    pub sip_status: Option<u16>,
    /// Whether the call was ever answered, as far as the engine knows.
    pub answered: bool,
    /// Warnings and errors for the log and the CDR, in order.
    pub notes: Vec<String>,
}

/// What the engine knows when the call ends.
#[derive(Clone, Debug)]
pub struct EndFacts<'a> {
    pub answered: bool,
    pub intent: Option<&'a Intent>,
    /// Schedules armed by the document still in force (not cancelled).
    pub schedules: &'a [ArmedSchedule],
    pub notes: Vec<String>,
}

/// What the switch reported about the channel going down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelDown<'a> {
    /// When the engine learned it (CHANNEL_HANGUP, or HANGUP_COMPLETE if that came first).
    pub at: Instant,
    pub cause: HangupCause,
    pub hung_up_by: HungUpBy,
    /// The switch's own words for who hung up (for the notes), if it gave any.
    pub detail: Option<&'a str>,
}

/// The closing ending chosen among the candidates.
enum Winner<'a> {
    Caller,
    Intent(&'a Intent),
    Schedule(&'a ArmedSchedule),
    Outside,
}

/// Attribution at CHANNEL_HANGUP_COMPLETE (or at socket loss after CHANNEL_HANGUP): see
/// the module docs for the rules.
pub fn attribute(facts: EndFacts<'_>, down: ChannelDown<'_>) -> Ending {
    let winner = match down.hung_up_by {
        HungUpBy::Caller => Winner::Caller,
        HungUpBy::Switch | HungUpBy::Unknown => {
            choose_ours(facts.intent, facts.schedules, down.at, down.cause)
        }
    };
    let mut notes = facts.notes;
    let answered = facts.answered;
    let mut ending = match winner {
        Winner::Caller => Ending {
            cause: down.cause,
            cause_code: down.cause.q850(),
            cause_name: NAME_CALLER_HANGUP.into(),
            source: HangupSource::Caller,
            reason: HangupReason::Completed,
            post_call: None,
            caller_abandoned: !answered,
            sip_status: None,
            answered,
            notes: Vec::new(),
        },
        Winner::Intent(intent) => {
            if intent.kind.cause() != down.cause {
                notes.push(format!(
                    "the switch reported {} although voxbridge hung up with {}",
                    down.cause,
                    intent.kind.cause()
                ));
            }
            from_intent(intent, down.cause, answered)
        }
        Winner::Schedule(s) => Ending {
            cause: down.cause,
            cause_code: down.cause.q850(),
            cause_name: document_cause_name(s.hangup.reason).into(),
            source: HangupSource::AnswerXml,
            reason: s.hangup.reason,
            post_call: s.post_call.clone(),
            caller_abandoned: false,
            sip_status: None,
            answered,
            notes: Vec::new(),
        },
        Winner::Outside => {
            notes.push(format!(
                "the switch ended the call ({}, {}) without a request from voxbridge or the caller",
                down.cause,
                down.detail.unwrap_or("no report of who hung up")
            ));
            unknown_ending(down.cause, answered)
        }
    };
    ending.sip_status = Some(sip_status(answered, ending.caller_abandoned, down.cause));
    note_unfired_schedules(&mut notes, facts.schedules, ending.post_call.as_ref());
    ending.notes = notes;
    ending
}

/// Attribution when the socket is lost before CHANNEL_HANGUP_COMPLETE (SPEC §2 step 7).
///
/// Decision: if the switch had already reported the channel down (CHANNEL_HANGUP), we
/// attribute exactly as at HANGUP_COMPLETE without a report of who hung up. If it had not, but
/// voxbridge had already sent its own hangup, that hangup is the recorded ending (we
/// know what we asked for; a socket that drops right after our hangup is the switch
/// closing), with the cause we asked for and an unknown SIP status. Otherwise nothing is
/// known: source and name `Unknown`, NORMAL_CLEARING. Every case adds a note.
pub fn attribute_socket_lost(
    mut facts: EndFacts<'_>,
    down: Option<(Instant, HangupCause)>,
) -> Ending {
    facts
        .notes
        .push("event socket lost before CHANNEL_HANGUP_COMPLETE".into());
    if let Some((at, cause)) = down {
        return attribute(
            facts,
            ChannelDown {
                at,
                cause,
                hung_up_by: HungUpBy::Unknown,
                detail: None,
            },
        );
    }
    let mut notes = facts.notes;
    let mut ending = match facts.intent {
        Some(intent) => {
            notes.push(
                "the switch never confirmed the hangup; recording voxbridge's own request".into(),
            );
            from_intent(intent, intent.kind.cause(), facts.answered)
        }
        None => unknown_ending(HangupCause::NORMAL_CLEARING, facts.answered),
    };
    note_unfired_schedules(&mut notes, facts.schedules, ending.post_call.as_ref());
    ending.notes = notes;
    ending
}

fn choose_ours<'a>(
    intent: Option<&'a Intent>,
    schedules: &'a [ArmedSchedule],
    down_at: Instant,
    cause: HangupCause,
) -> Winner<'a> {
    let due_schedule = schedules
        .iter()
        .filter(|s| s.hangup.cause == cause && s.due <= down_at + SCHEDULE_EARLY_FIRE)
        .min_by_key(|s| s.due);
    match (intent, due_schedule) {
        (Some(i), Some(s)) => {
            if i.kind.cause() != cause || s.due <= i.at {
                Winner::Schedule(s)
            } else {
                Winner::Intent(i)
            }
        }
        (Some(i), None) => Winner::Intent(i),
        (None, Some(s)) => Winner::Schedule(s),
        (None, None) => Winner::Outside,
    }
}

fn from_intent(intent: &Intent, cause: HangupCause, answered: bool) -> Ending {
    let (source, name, reason, post_call) = match &intent.kind {
        IntentKind::Document { hangup, post_call } => (
            HangupSource::AnswerXml,
            document_cause_name(hangup.reason).to_string(),
            hangup.reason,
            post_call.clone(),
        ),
        IntentKind::EndOfDocument => (
            HangupSource::AnswerXml,
            NAME_END_OF_DOCUMENT.to_string(),
            HangupReason::Completed,
            None,
        ),
        IntentKind::Api => (
            HangupSource::Api,
            NAME_NORMAL_HANGUP.to_string(),
            HangupReason::Completed,
            None,
        ),
        IntentKind::EmptyDocumentTimeout => (
            HangupSource::AnswerXml,
            NAME_TIMEOUT.to_string(),
            HangupReason::Completed,
            None,
        ),
        IntentKind::Error { message, .. } => (
            HangupSource::Error,
            error_cause_name(message),
            HangupReason::Completed,
            None,
        ),
    };
    Ending {
        cause,
        cause_code: cause.q850(),
        cause_name: name,
        source,
        reason,
        post_call,
        caller_abandoned: false,
        sip_status: None,
        answered,
        notes: Vec::new(),
    }
}

fn unknown_ending(cause: HangupCause, answered: bool) -> Ending {
    Ending {
        cause,
        cause_code: cause.q850(),
        cause_name: NAME_UNKNOWN.into(),
        source: HangupSource::Unknown,
        reason: HangupReason::Completed,
        post_call: None,
        caller_abandoned: false,
        sip_status: None,
        answered,
        notes: Vec::new(),
    }
}

/// The SIP status the caller saw (see the module docs).
pub fn sip_status(answered: bool, caller_abandoned: bool, cause: HangupCause) -> u16 {
    if caller_abandoned {
        487
    } else if answered {
        200
    } else {
        cause.sip_refuse_code()
    }
}

/// A schedule with a post-call workflow that did not close the call never fires it
/// (rule 5); say so, so an admin reading the CDR is not left wondering.
fn note_unfired_schedules(
    notes: &mut Vec<String>,
    schedules: &[ArmedSchedule],
    closing: Option<&PostCall>,
) {
    for s in schedules {
        if let Some(pc) = &s.post_call {
            if closing != Some(pc) {
                notes.push(format!(
                    "scheduled Hangup (+{} s) did not close the call; its postCallUrl {} is not called",
                    s.secs, pc.url
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::model::HttpMethod;

    #[test]
    fn reason_to_cause_table() {
        let cases = [
            (
                Some(HangupReason::Rejected),
                false,
                HangupCause::CALL_REJECTED,
            ),
            (Some(HangupReason::Busy), false, HangupCause::USER_BUSY),
            (
                Some(HangupReason::Completed),
                false,
                HangupCause::NORMAL_CLEARING,
            ),
            (Some(HangupReason::Busy), true, HangupCause::USER_BUSY),
            (
                Some(HangupReason::Completed),
                true,
                HangupCause::NORMAL_CLEARING,
            ),
            (None, true, HangupCause::CALL_REJECTED),
            (None, false, HangupCause::NORMAL_CLEARING),
        ];
        for (reason, first, cause) in cases {
            assert_eq!(
                document_hangup(reason, first).cause,
                cause,
                "{reason:?} first={first}"
            );
        }
        assert_eq!(document_hangup(None, true).reason, HangupReason::Rejected);
        assert_eq!(document_hangup(None, false).reason, HangupReason::Completed);
    }

    #[test]
    fn cause_names_follow_the_spec_table() {
        assert_eq!(
            document_cause_name(HangupReason::Completed),
            "Normal Hangup"
        );
        assert_eq!(document_cause_name(HangupReason::Busy), "Busy Line");
        assert_eq!(document_cause_name(HangupReason::Rejected), "Rejected");
    }

    #[test]
    fn error_names_are_short_and_single_line() {
        assert_eq!(error_cause_name("no document"), "Error: no document");
        let long = format!("line 1\n{}", "x".repeat(500));
        let name = error_cause_name(&long);
        assert!(name.starts_with("Error: line 1 xxx"), "{name}");
        assert_eq!(name.chars().count(), MAX_ERROR_NAME_CHARS);
        assert!(name.ends_with('…'));
        assert!(!name.contains('\n'));
    }

    #[test]
    fn rule_8_error_cause_depends_on_answer_state() {
        assert_eq!(error_cause(false), HangupCause::CALL_REJECTED);
        assert_eq!(error_cause(true), HangupCause::NORMAL_CLEARING);
    }

    #[test]
    fn sip_status_before_and_after_answer() {
        assert_eq!(sip_status(false, false, HangupCause::USER_BUSY), 486);
        assert_eq!(sip_status(false, false, HangupCause::CALL_REJECTED), 603);
        assert_eq!(sip_status(false, false, HangupCause::NORMAL_CLEARING), 480);
        assert_eq!(sip_status(false, true, HangupCause::ORIGINATOR_CANCEL), 487);
        assert_eq!(sip_status(true, false, HangupCause::USER_BUSY), 200);
    }

    fn schedule(due: Instant, reason: Option<HangupReason>, url: &str) -> ArmedSchedule {
        ArmedSchedule {
            due,
            secs: 2,
            hangup: document_hangup(reason, false),
            post_call: Some(PostCall {
                url: url.into(),
                method: HttpMethod::Post,
            }),
        }
    }

    fn facts<'a>(intent: Option<&'a Intent>, schedules: &'a [ArmedSchedule]) -> EndFacts<'a> {
        EndFacts {
            answered: true,
            intent,
            schedules,
            notes: Vec::new(),
        }
    }

    #[test]
    fn a_schedule_due_before_our_decision_wins_the_tie() {
        let t0 = Instant::now();
        let s = [schedule(t0 + Duration::from_secs(2), None, "http://a/")];
        let ours = Intent {
            at: t0 + Duration::from_millis(2100),
            kind: IntentKind::EndOfDocument,
        };
        let down = ChannelDown {
            at: t0 + Duration::from_millis(2200),
            cause: HangupCause::NORMAL_CLEARING,
            hung_up_by: HungUpBy::Switch,
            detail: Some("send_bye"),
        };
        let e = attribute(facts(Some(&ours), &s), down);
        assert_eq!(e.cause_name, "Normal Hangup");
        assert_eq!(e.post_call.unwrap().url, "http://a/");
    }

    #[test]
    fn our_decision_before_the_schedule_was_due_wins() {
        let t0 = Instant::now();
        let s = [schedule(t0 + Duration::from_secs(2), None, "http://a/")];
        let ours = Intent {
            at: t0 + Duration::from_millis(1900),
            kind: IntentKind::EndOfDocument,
        };
        let down = ChannelDown {
            at: t0 + Duration::from_millis(1950),
            cause: HangupCause::NORMAL_CLEARING,
            hung_up_by: HungUpBy::Switch,
            detail: Some("send_bye"),
        };
        let e = attribute(facts(Some(&ours), &s), down);
        assert_eq!(e.cause_name, "End Of XML Instructions");
        assert_eq!(e.post_call, None);
        assert!(
            e.notes.iter().any(|n| n.contains("http://a/")),
            "{:?}",
            e.notes
        );
    }

    #[test]
    fn the_cause_tells_a_busy_schedule_from_our_normal_hangup() {
        let t0 = Instant::now();
        let s = [schedule(
            t0 + Duration::from_secs(5),
            Some(HangupReason::Busy),
            "http://a/",
        )];
        let ours = Intent {
            at: t0 + Duration::from_millis(4900),
            kind: IntentKind::Api,
        };
        let down = ChannelDown {
            at: t0 + Duration::from_millis(4950),
            cause: HangupCause::USER_BUSY,
            hung_up_by: HungUpBy::Switch,
            detail: Some("send_bye"),
        };
        let e = attribute(facts(Some(&ours), &s), down);
        assert_eq!(e.source, HangupSource::AnswerXml);
        assert_eq!(e.cause_name, "Busy Line");
        assert_eq!(e.reason, HangupReason::Busy);
    }

    #[test]
    fn a_schedule_far_from_due_is_not_taken_for_an_outside_kill() {
        let t0 = Instant::now();
        let s = [schedule(t0 + Duration::from_secs(60), None, "http://a/")];
        let down = ChannelDown {
            at: t0 + Duration::from_secs(5),
            cause: HangupCause::NORMAL_CLEARING,
            hung_up_by: HungUpBy::Switch,
            detail: Some("send_bye"),
        };
        let e = attribute(facts(None, &s), down);
        assert_eq!(e.source, HangupSource::Unknown);
        assert_eq!(e.cause_name, "Unknown");
        assert_eq!(e.post_call, None);
    }

    #[test]
    fn a_schedule_firing_a_second_early_is_still_recognised() {
        let t0 = Instant::now();
        let s = [schedule(t0 + Duration::from_secs(4), None, "http://a/")];
        let down = ChannelDown {
            at: t0 + Duration::from_millis(3460),
            cause: HangupCause::NORMAL_CLEARING,
            hung_up_by: HungUpBy::Switch,
            detail: Some("send_bye"),
        };
        let e = attribute(facts(None, &s), down);
        assert_eq!(e.source, HangupSource::AnswerXml);
        assert_eq!(e.post_call.unwrap().url, "http://a/");
    }
}
