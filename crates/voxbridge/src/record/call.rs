//! The final call record (CDR): what the hangup callback, the status callback, the
//! post-call workflow and the REST API all report. One type, so they cannot disagree.

use crate::cause::HangupCause;
use time::OffsetDateTime;

/// Who ended the call (SPEC §5.2 `HangupSource`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HangupSource {
    Caller,
    Callee,
    Api,
    AnswerXml,
    Error,
    Unknown,
}

impl HangupSource {
    /// The exact text used in callbacks and the REST API.
    pub fn as_str(self) -> &'static str {
        match self {
            HangupSource::Caller => "Caller",
            HangupSource::Callee => "Callee",
            HangupSource::Api => "API",
            HangupSource::AnswerXml => "Answer XML",
            HangupSource::Error => "Error",
            HangupSource::Unknown => "Unknown",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "Caller" => HangupSource::Caller,
            "Callee" => HangupSource::Callee,
            "API" => HangupSource::Api,
            "Answer XML" => HangupSource::AnswerXml,
            "Error" => HangupSource::Error,
            "Unknown" => HangupSource::Unknown,
            _ => return None,
        })
    }
}

/// `inbound` or `outbound`, as the switch reports `Call-Direction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// Everything known about a finished call. Written once, atomically with its callbacks.
#[derive(Clone, Debug, PartialEq)]
pub struct CallRecord {
    pub call_uuid: String,
    /// The account the call belongs to (its REST credentials and signing key).
    pub account_id: String,
    pub direction: Direction,
    pub from: String,
    pub to: String,
    pub caller_name: String,
    /// Forwarding number from a Diversion header, when present.
    pub forwarded_from: Option<String>,
    pub start_time: OffsetDateTime,
    pub answer_time: Option<OffsetDateTime>,
    pub end_time: OffsetDateTime,
    /// Whole seconds, as the switch reports `duration`.
    pub duration_secs: u64,
    /// Whole seconds, 0 if never answered (`billsec`).
    pub bill_duration_secs: u64,
    pub hangup_cause: HangupCause,
    /// The Q.850 value the switch reported (`hangup_cause_q850`).
    pub hangup_cause_code: u16,
    /// Human text per SPEC §5.2 (`Normal Hangup`, `End Of XML Instructions`, …).
    pub hangup_cause_name: String,
    pub hangup_source: HangupSource,
    /// `rejected`, `busy` or `completed` (SPEC §5.2 HangupReason).
    pub hangup_reason: String,
    /// The SIP status the caller saw, when known (486, 603, 480, or 200 for a BYE).
    pub sip_status: Option<u16>,
    /// `true` when the caller abandoned before answer (CallStatus `cancel`).
    pub caller_abandoned: bool,
    /// Instructions skipped (post-call mode) or errors, for the log and the CDR.
    pub notes: Vec<String>,
}

impl CallRecord {
    /// `completed`, or `cancel` when the caller abandoned before answer.
    pub fn call_status(&self) -> &'static str {
        if self.caller_abandoned {
            "cancel"
        } else {
            "completed"
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, the format of StartTime/AnswerTime/EndTime.
pub fn format_cdr_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// RFC 3339 in UTC with a `Z` and whole seconds, the format of the JSON status event.
pub fn format_rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_formats() {
        let t = time::macros::datetime!(2026-04-09 10:30:00 UTC);
        assert_eq!(format_cdr_time(t), "2026-04-09 10:30:00");
        assert_eq!(format_rfc3339(t), "2026-04-09T10:30:00Z");
    }

    #[test]
    fn sources_round_trip() {
        for s in [
            HangupSource::Caller,
            HangupSource::Callee,
            HangupSource::Api,
            HangupSource::AnswerXml,
            HangupSource::Error,
            HangupSource::Unknown,
        ] {
            assert_eq!(HangupSource::parse(s.as_str()), Some(s));
        }
    }
}
