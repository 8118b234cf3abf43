//! `<Dial>` (SPEC §11): ring the destinations at once, bridge the caller to the first
//! that answers, and decide what the Dial's end means — its `DialStatus`, the `action`
//! request, and whether a bridge the callee ended leaves the caller to hang up with
//! `Callee Hangup`. The engine ([`crate::call::engine`]) keeps one [`DialRun`] while the
//! bridge is in flight and asks this module at every turn; the driver only carries the
//! [`Bridge`] out and reports how it ended.
//!
//! Decisions:
//! * **Never answers.** A Dial does not need an answered call: the switch answers the
//!   caller when a callee answers. A Dial that finds no one leaves the caller unanswered,
//!   so a following `<Hangup reason="busy"/>` still gives a real 486.
//! * **Leg uuids are chosen here** (UUIDv4), one per destination, before the switch
//!   creates the legs: the action's `DialBLegUUID` and every report name the leg by the
//!   uuid voxbridge gave it.
//! * **`DialStatus`** comes from how the bridge ended: a bridge happened → `completed`;
//!   otherwise the switch's cause: USER_BUSY → `busy`; NO_ANSWER, NO_USER_RESPONSE,
//!   ALLOTTED_TIMEOUT (the ring window ran out) → `no-answer`; ORIGINATOR_CANCEL or the
//!   caller gone before an answer → `cancel`; anything else (unroutable, rejected,
//!   refused by the switch) → `failed`.
//! * **Who ended a bridge.** The callee ended it unless the engine knows better: the
//!   caller pressed `*` with `hangupOnStar` (the switch's `bridge_terminate_key`), the
//!   `timeLimit` fired (the callee leg's ALLOTTED_TIMEOUT: a remote party cannot send
//!   that cause, it is the switch's own 602), or the REST API hung the callee up. Only a
//!   bridge the callee ended makes an empty rest of the document end the caller with
//!   `Callee Hangup` / source `Callee` (SPEC §11.4); after the others the document has
//!   simply run out (SPEC §4 rule 6).
//! * **`digitsMatch` / `digitsMatchBLeg`** are watched only while a callee is bridged
//!   (SPEC §11.4 puts `DialDigitsMatch` after `DialConnected`). A pattern is digits,
//!   `*`, `#` and `X` (any digit 0-9). The caller's digits are matched here, from the
//!   caller's own DTMF events: a pattern matches when the digits pressed since the last
//!   match end with it (nothing is taken from the caller: the callee still hears every
//!   digit). The callee's digits never reach the caller's socket, so the switch matches
//!   them (FreeSWITCH: `bind_digit_action` on the callee's side, see the driver) and
//!   reports each match, which the engine posts the same way. `DialDigitsMatch` is the
//!   digits as pressed.
//! * **The caller hung up** while the Dial ran: the call is over, but the `action` is
//!   still requested, through the outbox, its response ignored (SPEC §11.4), with
//!   `cancel` if no one had answered and `completed` if the legs were bridged.

use super::{Begin, DocumentFetch};
use crate::call::channel_op::{
    Bridge, BridgeLeg, BridgeOutcome, BridgeReport, Confirm, MediaItem, OpId,
};
use crate::cause::HangupCause;
use crate::document::model::{AnswerDocument, Dial, DialOutcome, FetchEvent, Instruction};
use crate::record::call::HangupSource;
use std::time::Duration;

/// SPEC §11.4 `DialStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialStatus {
    /// A bridge happened and ended.
    Completed,
    /// Every destination was busy.
    Busy,
    /// The ring window ran out.
    NoAnswer,
    /// Unroutable, rejected, any other failure.
    Failed,
    /// The caller hung up before an answer.
    Cancel,
}

impl DialStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DialStatus::Completed => "completed",
            DialStatus::Busy => "busy",
            DialStatus::NoAnswer => "no-answer",
            DialStatus::Failed => "failed",
            DialStatus::Cancel => "cancel",
        }
    }
}

/// The step asks the engine to run the Dial (the engine keeps the [`DialRun`]).
pub fn begin(dial: Box<Dial>) -> Begin {
    Begin::Dial(dial)
}

/// Why a bridge ended early, as far as the engine itself knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BridgeCut {
    /// `*` from the caller with `hangupOnStar`.
    Star,
    /// REST `DELETE Call/{B-leg}`.
    ApiOnCallee,
}

/// A Dial in flight.
#[derive(Clone, Debug)]
pub struct DialRun {
    pub dial: Dial,
    pub bridge: Bridge,
    /// The bridge operation's id.
    pub op: OpId,
    /// A destination rang or sent early media.
    pub rang: bool,
    /// The callee bridged to the caller, once one answered.
    pub bridged: Option<String>,
    /// Set when the engine itself cut the bridge short.
    pub cut: Option<BridgeCut>,
    /// Legs the REST API hung up while they rang (`DELETE Call/{B-leg}` before an
    /// answer): their CDRs say `API`, whatever cause the switch gives them.
    pub api_cut_legs: Vec<String>,
    /// The caller's digits during the bridge since the last `digitsMatch` match (at
    /// most the longest pattern's length).
    caller_digits: String,
}

/// `DialDigitsPressedBy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PressedBy {
    /// The caller (`digitsMatch`).
    ALeg,
    /// The bridged callee (`digitsMatchBLeg`).
    BLeg,
}

impl PressedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            PressedBy::ALeg => "aleg",
            PressedBy::BLeg => "bleg",
        }
    }
}

/// Whether `digits` are what `pattern` asks for: same length, each position equal, an
/// `X` (or `x`) standing for any digit 0-9.
pub fn pattern_matches(pattern: &str, digits: &str) -> bool {
    pattern.len() == digits.len()
        && pattern
            .bytes()
            .zip(digits.bytes())
            .all(|(p, d)| p == d || (matches!(p, b'X' | b'x') && d.is_ascii_digit()))
}

impl DialRun {
    /// Starts a Dial: one leg per destination, each with a fresh uuid.
    pub fn new(dial: Dial, op: OpId, mut new_uuid: impl FnMut() -> String) -> Self {
        let legs = dial
            .destinations
            .iter()
            .map(|d| BridgeLeg {
                uuid: new_uuid(),
                target: d.target.clone(),
                send_digits: d.send_digits.clone(),
                send_on_preanswer: d.send_on_preanswer,
                sip_headers: d.sip_headers.clone(),
            })
            .collect();
        let bridge = Bridge {
            legs,
            ring_timeout: Duration::from_secs(u64::from(dial.timeout_secs)),
            time_limit: Duration::from_secs(u64::from(dial.time_limit_secs)),
            hangup_on_star: dial.hangup_on_star,
            caller_id: dial.caller_id.clone(),
            caller_name: dial.caller_name.clone(),
            sip_headers: dial.sip_headers.clone(),
            callee_digit_patterns: dial.digits_match_b_leg.clone(),
            caller_digits_watched: !dial.digits_match.is_empty(),
            confirm: None,
            music: None,
        };
        Self {
            dial,
            bridge,
            op,
            rang: false,
            bridged: None,
            cut: None,
            api_cut_legs: Vec::new(),
            caller_digits: String::new(),
        }
    }

    /// The bridged callee: its uuid, 1-based position and destination.
    pub fn bridged_leg(&self) -> Option<(String, usize, String)> {
        let b_leg = self.bridged.as_ref()?;
        let i = self.bridge.legs.iter().position(|l| l.uuid == *b_leg)?;
        Some((
            b_leg.clone(),
            i + 1,
            self.bridge.legs[i].target.as_str().to_string(),
        ))
    }

    /// Whether `uuid` is one of this Dial's legs.
    pub fn has_leg(&self, uuid: &str) -> bool {
        self.bridge.legs.iter().any(|l| l.uuid == uuid)
    }

    /// A DTMF digit from the caller while the Dial runs: with `hangupOnStar`, `*` during
    /// the bridge is the switch ending it (`bridge_terminate_key`), not the callee.
    /// Returns the digits that matched a `digitsMatch` pattern, if this digit completed
    /// one (the digits are then forgotten, so the next match starts afresh).
    pub fn on_caller_digit(&mut self, digit: char) -> Option<String> {
        self.bridged.as_ref()?;
        if digit == '*' && self.dial.hangup_on_star {
            self.cut.get_or_insert(BridgeCut::Star);
        }
        let longest = self.dial.digits_match.iter().map(String::len).max()?;
        self.caller_digits.push(digit);
        if self.caller_digits.len() > longest {
            let drop = self.caller_digits.len() - longest;
            self.caller_digits.drain(..drop);
        }
        let pressed = &self.caller_digits;
        let hit = self.dial.digits_match.iter().find_map(|p| {
            let tail = pressed.get(pressed.len().checked_sub(p.len())?..)?;
            pattern_matches(p, tail).then(|| tail.to_string())
        })?;
        self.caller_digits.clear();
        Some(hit)
    }
}

/// The most pieces a Dial media document may have (loops counted): the switch gets them
/// as one string.
pub const MAX_MEDIA_ITEMS: usize = 50;

/// The `confirmSound` request (SPEC §11.1: fetched with POST, signed like every fetch,
/// `Event=DialConfirmSound`).
pub fn confirm_sound_request(url: &str) -> DocumentFetch {
    DocumentFetch {
        url: url.to_string(),
        method: crate::document::model::HttpMethod::Post,
        event: FetchEvent::DialConfirmSound,
    }
}

/// The `dialMusic` request (SPEC §11.1: fetched with POST, signed, `Event=DialMusic`).
pub fn dial_music_request(url: &str) -> DocumentFetch {
    DocumentFetch {
        url: url.to_string(),
        method: crate::document::model::HttpMethod::Post,
        event: FetchEvent::DialMusic,
    }
}

/// What the callee hears on answer: the `confirmSound` document's media (`None`: it
/// could not be had, see [`media_items`]), and the `confirmKey`.
pub fn confirm(media: Option<Vec<MediaItem>>, key: Option<char>) -> Confirm {
    Confirm {
        media: media.unwrap_or_default(),
        key,
    }
}

/// The pieces of a Dial media document (`dialMusic`, `confirmSound`): Play and Wait, in order, each
/// Play repeated `loop` times (`loop="0"`, "until the call ends", plays once: the
/// callee is waiting for it to end). `Err` names what cannot be used:
/// * any element but Play, Wait (and Speak, see below);
/// * `<Speak>`: **not supported yet** — FreeSWITCH plays these documents as one file
///   string (`ringback`, `group_confirm_file`), and TTS is no file format there (measured on
///   1.10.12: `speak:` and `tts://` in `group_confirm_file` → "Invalid file format",
///   the leg fails DESTINATION_OUT_OF_ORDER);
/// * a Play URL holding `'` or `!` (they delimit the file string);
/// * more than [`MAX_MEDIA_ITEMS`] pieces.
pub fn media_items(doc: &AnswerDocument) -> Result<Vec<MediaItem>, String> {
    let mut items = Vec::new();
    for (i, instruction) in doc.instructions.iter().enumerate() {
        let at = i + 1;
        match instruction {
            Instruction::Play(p) => {
                if p.url.contains(['\'', '!']) {
                    return Err(format!(
                        "element {at} <Play>: a URL with ' or ! cannot be played here"
                    ));
                }
                for _ in 0..p.loop_count.max(1) {
                    items.push(MediaItem::Play { url: p.url.clone() });
                    if items.len() > MAX_MEDIA_ITEMS {
                        break;
                    }
                }
            }
            Instruction::Wait(w) => items.push(MediaItem::Silence {
                duration: Duration::from_secs(u64::from(w.length_secs)),
            }),
            Instruction::Speak(_) => {
                return Err(format!(
                    "element {at} <Speak>: not supported yet in a Dial media document"
                ))
            }
            other => {
                return Err(format!(
                "element {at} <{}>: not allowed, a Dial media document holds Play and Wait only",
                other.name()
            ))
            }
        }
        if items.len() > MAX_MEDIA_ITEMS {
            return Err(format!(
                "more than {MAX_MEDIA_ITEMS} pieces (loops counted)"
            ));
        }
    }
    Ok(items)
}

/// How a Dial ended, for the action request and for what follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialEnd {
    pub status: DialStatus,
    /// The bridged callee, if any.
    pub b_leg: Option<String>,
    /// `DialHangupCause`: the callee's cause after a bridge, the failure's otherwise.
    pub hangup_cause: Option<HangupCause>,
    /// The callee ended the bridge (not `*`, `timeLimit` or the REST API): with nothing
    /// after the Dial, the caller is hung up with this cause as `Callee Hangup`.
    pub callee_ended: Option<HangupCause>,
}

/// The end of a Dial, from the switch's report (`None`: the bridge never reported, the
/// caller's channel went first) and whether the caller is gone.
pub fn end(run: &DialRun, report: Option<&BridgeReport>, caller_gone: bool) -> DialEnd {
    let bridged = match report.map(|r| &r.outcome) {
        Some(BridgeOutcome::Bridged {
            b_leg,
            callee_cause,
        }) => Some((b_leg.clone(), *callee_cause)),
        _ => run.bridged.clone().map(|b| (b, None)),
    };
    if let Some((b_leg, callee_cause)) = bridged {
        let time_limit = callee_cause == Some(HangupCause::ALLOTTED_TIMEOUT);
        let callee_ended = (!caller_gone && run.cut.is_none() && !time_limit)
            .then(|| callee_cause.unwrap_or(HangupCause::NORMAL_CLEARING));
        return DialEnd {
            status: DialStatus::Completed,
            b_leg: Some(b_leg),
            hangup_cause: callee_cause,
            callee_ended,
        };
    }
    let cause = match report.map(|r| &r.outcome) {
        Some(BridgeOutcome::NotBridged { cause }) => Some(*cause),
        _ => None,
    };
    let status = if caller_gone {
        DialStatus::Cancel
    } else {
        match cause {
            Some(HangupCause::USER_BUSY) => DialStatus::Busy,
            Some(
                HangupCause::NO_ANSWER
                | HangupCause::NO_USER_RESPONSE
                | HangupCause::ALLOTTED_TIMEOUT,
            ) => DialStatus::NoAnswer,
            Some(HangupCause::ORIGINATOR_CANCEL) => DialStatus::Cancel,
            _ => DialStatus::Failed,
        }
    };
    DialEnd {
        status,
        b_leg: None,
        hangup_cause: cause.or(caller_gone.then_some(HangupCause::ORIGINATOR_CANCEL)),
        callee_ended: None,
    }
}

/// The action request of an ended Dial: SPEC §11.4's parameters beside the §5.1 ones.
pub fn action_request(run: &DialRun, end: &DialEnd, a_leg: &str) -> Option<DocumentFetch> {
    let action = run.dial.action.as_ref()?;
    let outcome = DialOutcome {
        status: end.status.as_str().to_string(),
        ring_status: run.rang,
        hangup_cause: end
            .hangup_cause
            .map(|c| c.name().to_string())
            .unwrap_or_default(),
        a_leg_uuid: a_leg.to_string(),
        b_leg_uuid: end.b_leg.clone().unwrap_or_default(),
        sip_headers: run.bridge.sip_headers_of(end.b_leg.as_deref()),
    };
    Some(DocumentFetch {
        url: action.url.clone(),
        method: action.method,
        event: FetchEvent::DialAction(Box::new(outcome)),
    })
}

/// How one B-leg of a Dial ended, for its own CDR (SPEC §11.2): who ended it and the
/// name the record gives it. Times are the driver's (the switch's events).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegEnding {
    pub b_leg: String,
    /// 1-based, in document order (`DialBLegPosition`).
    pub position: usize,
    /// The number or SIP URI dialled.
    pub to: String,
    /// This leg was the one bridged to the caller.
    pub bridged: bool,
    pub cause: HangupCause,
    pub source: HangupSource,
    pub cause_name: &'static str,
}

/// `HangupCauseName` of a B-leg's CDR.
pub const NAME_TIME_LIMIT: &str = "Dial Time Limit";
pub const NAME_LOSE_RACE: &str = "Lose Race";
pub const NAME_NO_ANSWER: &str = "No Answer";

/// Every leg's ending (SPEC §11.2, §11.3). `caller_side`: the caller's channel ended
/// the Dial (`Api` for REST on the A-leg, `Caller` for anything else — the caller hung
/// up, or a schedule ended the caller and with it the callee); `None` while the caller
/// stays.
///
/// The bridged leg: ended with the caller → that source; cut by `*` → `Caller`; by REST
/// on the B-leg → `API`; by `timeLimit` → `Answer XML` (`Dial Time Limit`); otherwise
/// the callee hung up → `Callee`. A leg never bridged: with the caller gone → as the
/// caller's side; LOSE_RACE (another answered first) and the ring window running out →
/// `Answer XML`; hung up by REST while it rang → `API`; a refusal (busy, rejected,
/// unroutable) → `Callee`.
pub fn leg_endings(
    run: &DialRun,
    report: Option<&BridgeReport>,
    caller_side: Option<HangupSource>,
) -> Vec<LegEnding> {
    let bridged = match report.map(|r| &r.outcome) {
        Some(BridgeOutcome::Bridged {
            b_leg,
            callee_cause,
        }) => Some((b_leg.clone(), *callee_cause)),
        _ => run.bridged.clone().map(|b| (b, None)),
    };
    let failure = match report.map(|r| &r.outcome) {
        Some(BridgeOutcome::NotBridged { cause }) => Some(*cause),
        _ => None,
    };
    let by_caller = |source: HangupSource| match source {
        HangupSource::Api => crate::call::hangup::NAME_NORMAL_HANGUP,
        _ => crate::call::hangup::NAME_CALLER_HANGUP,
    };
    run.bridge
        .legs
        .iter()
        .enumerate()
        .map(|(i, leg)| {
            let own = report.and_then(|r| {
                r.leg_causes
                    .iter()
                    .find(|(u, _)| *u == leg.uuid)
                    .map(|(_, c)| *c)
            });
            let (cause, source, cause_name, is_bridged) = match &bridged {
                Some((b, callee_cause)) if *b == leg.uuid => {
                    let cause = callee_cause.unwrap_or(HangupCause::NORMAL_CLEARING);
                    let (source, name) = match (caller_side, run.cut) {
                        (Some(s), _) => (s, by_caller(s)),
                        (None, Some(BridgeCut::Star)) => (
                            HangupSource::Caller,
                            crate::call::hangup::NAME_CALLER_HANGUP,
                        ),
                        (None, Some(BridgeCut::ApiOnCallee)) => {
                            (HangupSource::Api, crate::call::hangup::NAME_NORMAL_HANGUP)
                        }
                        (None, None) if cause == HangupCause::ALLOTTED_TIMEOUT => {
                            (HangupSource::AnswerXml, NAME_TIME_LIMIT)
                        }
                        (None, None) => (
                            HangupSource::Callee,
                            crate::call::hangup::NAME_CALLEE_HANGUP,
                        ),
                    };
                    (cause, source, name, true)
                }
                _ => {
                    let cause = own
                        .or(bridged.as_ref().map(|_| HangupCause::LOSE_RACE))
                        .or(failure)
                        .unwrap_or(HangupCause::ORIGINATOR_CANCEL);
                    let api_cut = run.api_cut_legs.contains(&leg.uuid);
                    let (source, name) = match (caller_side, cause) {
                        (_, HangupCause::LOSE_RACE) => (HangupSource::AnswerXml, NAME_LOSE_RACE),
                        (Some(s), _) => (s, by_caller(s)),
                        (None, _) if api_cut => {
                            (HangupSource::Api, crate::call::hangup::NAME_NORMAL_HANGUP)
                        }
                        (None, HangupCause::NO_ANSWER | HangupCause::ALLOTTED_TIMEOUT) => {
                            (HangupSource::AnswerXml, NAME_NO_ANSWER)
                        }
                        (None, HangupCause::USER_BUSY) => {
                            (HangupSource::Callee, crate::call::hangup::NAME_BUSY_LINE)
                        }
                        (None, HangupCause::CALL_REJECTED) => {
                            (HangupSource::Callee, crate::call::hangup::NAME_REJECTED)
                        }
                        (None, _) => (
                            HangupSource::Callee,
                            crate::call::hangup::NAME_CALLEE_HANGUP,
                        ),
                    };
                    (cause, source, name, false)
                }
            };
            LegEnding {
                b_leg: leg.uuid.clone(),
                position: i + 1,
                to: leg.target.as_str().to_string(),
                bridged: is_bridged,
                cause,
                source,
                cause_name,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::model::{DialDestination, DialTarget};

    fn run(digits_match: &[&str], hangup_on_star: bool) -> DialRun {
        let dial = Dial {
            destinations: vec![DialDestination {
                target: DialTarget::Number("7002".into()),
                send_digits: None,
                send_on_preanswer: false,
                sip_headers: Vec::new(),
            }],
            action: None,
            redirect: true,
            callback: None,
            caller_id: None,
            caller_name: None,
            timeout_secs: 120,
            time_limit_secs: 14400,
            hangup_on_star,
            dial_music: Default::default(),
            confirm_sound: None,
            confirm_key: None,
            digits_match: digits_match.iter().map(|s| s.to_string()).collect(),
            digits_match_b_leg: Vec::new(),
            sip_headers: Vec::new(),
        };
        DialRun::new(dial, OpId(1), || "b-1".to_string())
    }

    fn press(run: &mut DialRun, digits: &str) -> Vec<String> {
        digits
            .chars()
            .filter_map(|d| run.on_caller_digit(d))
            .collect()
    }

    #[test]
    fn x_stands_for_any_digit_and_nothing_else() {
        assert!(pattern_matches("12X#", "129#"));
        assert!(pattern_matches("x", "0"));
        assert!(!pattern_matches("X", "*"));
        assert!(!pattern_matches("12", "123"));
        assert!(!pattern_matches("1*", "1#"));
    }

    #[test]
    fn caller_digits_match_only_while_bridged_and_start_afresh_after_a_match() {
        let mut r = run(&["*1", "99X"], false);
        assert!(press(&mut r, "*1").is_empty(), "not bridged yet");
        r.bridged = Some("b-1".into());
        assert_eq!(
            press(&mut r, "7*1"),
            ["*1"],
            "the digits end with a pattern"
        );
        assert_eq!(press(&mut r, "99"), Vec::<String>::new());
        assert_eq!(press(&mut r, "4"), ["994"]);
        // After a match the digits are forgotten: "9" + "94" is one match, not two.
        assert_eq!(press(&mut r, "9949"), ["994"]);
        assert_eq!(press(&mut r, "94"), ["994"]);
    }

    #[test]
    fn star_still_cuts_the_bridge_with_hangup_on_star_and_no_patterns() {
        let mut r = run(&[], true);
        r.bridged = Some("b-1".into());
        assert!(press(&mut r, "*").is_empty());
        assert_eq!(r.cut, Some(BridgeCut::Star));
    }
}
