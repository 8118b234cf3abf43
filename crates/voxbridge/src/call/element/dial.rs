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
//! * **The caller hung up** while the Dial ran: the call is over, but the `action` is
//!   still requested, through the outbox, its response ignored (SPEC §11.4), with
//!   `cancel` if no one had answered and `completed` if the legs were bridged.

use super::{Begin, DocumentFetch};
use crate::call::channel_op::{Bridge, BridgeLeg, BridgeOutcome, BridgeReport, OpId};
use crate::cause::HangupCause;
use crate::document::model::{Dial, FetchEvent};
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
pub fn begin(dial: Dial) -> Begin {
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
        };
        Self {
            dial,
            bridge,
            op,
            rang: false,
            bridged: None,
            cut: None,
        }
    }

    /// Whether `uuid` is one of this Dial's legs.
    pub fn has_leg(&self, uuid: &str) -> bool {
        self.bridge.legs.iter().any(|l| l.uuid == uuid)
    }

    /// A DTMF digit from the caller while the Dial runs: with `hangupOnStar`, `*` during
    /// the bridge is the switch ending it (`bridge_terminate_key`), not the callee.
    pub fn on_caller_digit(&mut self, digit: char) {
        if digit == '*' && self.dial.hangup_on_star && self.bridged.is_some() {
            self.cut.get_or_insert(BridgeCut::Star);
        }
    }
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
    let extra = vec![
        ("DialStatus".to_string(), end.status.as_str().to_string()),
        ("DialRingStatus".to_string(), run.rang.to_string()),
        (
            "DialHangupCause".to_string(),
            end.hangup_cause
                .map(|c| c.name().to_string())
                .unwrap_or_default(),
        ),
        ("DialALegUUID".to_string(), a_leg.to_string()),
        (
            "DialBLegUUID".to_string(),
            end.b_leg.clone().unwrap_or_default(),
        ),
    ];
    Some(DocumentFetch {
        url: action.url.clone(),
        method: action.method,
        event: FetchEvent::DialAction,
        extra,
    })
}
