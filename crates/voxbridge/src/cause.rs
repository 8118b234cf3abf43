//! FreeSWITCH hangup causes (`switch_call_cause_t`) and their SIP mappings.
//!
//! Everything here is a transcription of the switch's own tables (see
//! `reference/freeswitch-esl.md` §4): names from `CAUSE_CHART`, the Q.850 value the
//! switch reports as `hangup_cause_q850`, the SIP code mod_sofia sends when it refuses
//! an unanswered inbound call (`hangup_cause_to_sip`), and the cause it derives from a
//! received SIP code (`sofia_glue_sip_cause_to_freeswitch`). The simulator, the call
//! engine and the call records all use this one table so they cannot disagree.

use std::fmt;

/// A FreeSWITCH hangup cause, by its numeric `switch_call_cause_t` value.
///
/// The value is kept even when it has no name (the switch accepts any number from
/// `hangup 486`, which it then calls `UNKNOWN`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct HangupCause(pub u16);

/// `(name, value)` for every cause in `switch_types.h`, in table order.
const CAUSES: &[(&str, u16)] = &[
    ("NONE", 0),
    ("UNALLOCATED_NUMBER", 1),
    ("NO_ROUTE_TRANSIT_NET", 2),
    ("NO_ROUTE_DESTINATION", 3),
    ("CHANNEL_UNACCEPTABLE", 6),
    ("CALL_AWARDED_DELIVERED", 7),
    ("NORMAL_CLEARING", 16),
    ("USER_BUSY", 17),
    ("NO_USER_RESPONSE", 18),
    ("NO_ANSWER", 19),
    ("SUBSCRIBER_ABSENT", 20),
    ("CALL_REJECTED", 21),
    ("NUMBER_CHANGED", 22),
    ("REDIRECTION_TO_NEW_DESTINATION", 23),
    ("EXCHANGE_ROUTING_ERROR", 25),
    ("DESTINATION_OUT_OF_ORDER", 27),
    ("INVALID_NUMBER_FORMAT", 28),
    ("FACILITY_REJECTED", 29),
    ("RESPONSE_TO_STATUS_ENQUIRY", 30),
    ("NORMAL_UNSPECIFIED", 31),
    ("NORMAL_CIRCUIT_CONGESTION", 34),
    ("NETWORK_OUT_OF_ORDER", 38),
    ("NORMAL_TEMPORARY_FAILURE", 41),
    ("SWITCH_CONGESTION", 42),
    ("ACCESS_INFO_DISCARDED", 43),
    ("REQUESTED_CHAN_UNAVAIL", 44),
    ("PRE_EMPTED", 45),
    ("FACILITY_NOT_SUBSCRIBED", 50),
    ("OUTGOING_CALL_BARRED", 52),
    ("INCOMING_CALL_BARRED", 54),
    ("BEARERCAPABILITY_NOTAUTH", 57),
    ("BEARERCAPABILITY_NOTAVAIL", 58),
    ("SERVICE_UNAVAILABLE", 63),
    ("BEARERCAPABILITY_NOTIMPL", 65),
    ("CHAN_NOT_IMPLEMENTED", 66),
    ("FACILITY_NOT_IMPLEMENTED", 69),
    ("SERVICE_NOT_IMPLEMENTED", 79),
    ("INVALID_CALL_REFERENCE", 81),
    ("INCOMPATIBLE_DESTINATION", 88),
    ("INVALID_MSG_UNSPECIFIED", 95),
    ("MANDATORY_IE_MISSING", 96),
    ("MESSAGE_TYPE_NONEXIST", 97),
    ("WRONG_MESSAGE", 98),
    ("IE_NONEXIST", 99),
    ("INVALID_IE_CONTENTS", 100),
    ("WRONG_CALL_STATE", 101),
    ("RECOVERY_ON_TIMER_EXPIRE", 102),
    ("MANDATORY_IE_LENGTH_ERROR", 103),
    ("PROTOCOL_ERROR", 111),
    ("INTERWORKING", 127),
    ("SUCCESS", 142),
    ("ORIGINATOR_CANCEL", 487),
    ("CRASH", 700),
    ("SYSTEM_SHUTDOWN", 701),
    ("LOSE_RACE", 702),
    ("MANAGER_REQUEST", 703),
    ("BLIND_TRANSFER", 800),
    ("ATTENDED_TRANSFER", 801),
    ("ALLOTTED_TIMEOUT", 802),
    ("USER_CHALLENGE", 803),
    ("MEDIA_TIMEOUT", 804),
    ("PICKED_OFF", 805),
    ("USER_NOT_REGISTERED", 806),
    ("PROGRESS_TIMEOUT", 807),
    ("INVALID_GATEWAY", 808),
    ("GATEWAY_DOWN", 809),
    ("INVALID_URL", 810),
    ("INVALID_PROFILE", 811),
    ("NO_PICKUP", 812),
    ("SRTP_READ_ERROR", 813),
    ("BOWOUT", 814),
    ("BUSY_EVERYWHERE", 815),
    ("DECLINE", 816),
    ("DOES_NOT_EXIST_ANYWHERE", 817),
    ("NOT_ACCEPTABLE", 818),
    ("UNWANTED", 819),
    ("NO_IDENTITY", 820),
    ("BAD_IDENTITY_INFO", 821),
    ("UNSUPPORTED_CERTIFICATE", 822),
    ("INVALID_IDENTITY", 823),
    ("STALE_DATE", 824),
    ("REJECT_ALL", 825),
];

impl HangupCause {
    pub const NONE: Self = Self(0);
    pub const NORMAL_CLEARING: Self = Self(16);
    pub const USER_BUSY: Self = Self(17);
    pub const NO_USER_RESPONSE: Self = Self(18);
    pub const NO_ANSWER: Self = Self(19);
    pub const CALL_REJECTED: Self = Self(21);
    pub const DESTINATION_OUT_OF_ORDER: Self = Self(27);
    pub const NORMAL_UNSPECIFIED: Self = Self(31);
    pub const NORMAL_TEMPORARY_FAILURE: Self = Self(41);
    pub const ORIGINATOR_CANCEL: Self = Self(487);
    pub const SYSTEM_SHUTDOWN: Self = Self(701);
    pub const MANAGER_REQUEST: Self = Self(703);
    pub const ALLOTTED_TIMEOUT: Self = Self(802);

    /// The switch's name for the cause, `UNKNOWN` for a value not in its table
    /// (as `switch_channel_cause2str` does).
    pub fn name(self) -> &'static str {
        CAUSES
            .iter()
            .find(|(_, v)| *v == self.0)
            .map(|(n, _)| *n)
            .unwrap_or("UNKNOWN")
    }

    /// Looks a cause up by name, case-insensitively. `None` for an unknown name.
    pub fn from_name(name: &str) -> Option<Self> {
        CAUSES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
            .map(|(_, v)| Self(*v))
    }

    /// Parses a cause the way the switch's `switch_channel_str2cause` does: a value
    /// starting with a digit is taken as a number (not validated), a name is matched
    /// case-insensitively, and anything else silently becomes NORMAL_CLEARING.
    pub fn parse_switch(text: &str) -> Self {
        let t = text.trim();
        if t.as_bytes().first().is_some_and(u8::is_ascii_digit) {
            let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
            return Self(
                digits
                    .parse::<u32>()
                    .map(|v| v.min(u16::MAX as u32) as u16)
                    .unwrap_or(0),
            );
        }
        Self::from_name(t).unwrap_or(Self::NORMAL_CLEARING)
    }

    /// The value FreeSWITCH reports as `hangup_cause_q850`: the cause itself when it is a
    /// Q.850 value (≤ 127), 16 otherwise (`switch_channel_cause_q850`).
    pub fn q850(self) -> u16 {
        if self.0 <= 127 {
            self.0
        } else {
            16
        }
    }

    /// The SIP final response mod_sofia sends when it ends an unanswered inbound call
    /// with this cause (`hangup_cause_to_sip`); 480 is the default branch.
    pub fn sip_refuse_code(self) -> u16 {
        match self.name() {
            "UNALLOCATED_NUMBER" | "NO_ROUTE_TRANSIT_NET" | "NO_ROUTE_DESTINATION" => 404,
            "USER_BUSY" => 486,
            "NO_USER_RESPONSE" => 408,
            "NO_ANSWER" | "SUBSCRIBER_ABSENT" | "NORMAL_UNSPECIFIED" => 480,
            "CALL_REJECTED" | "DECLINE" | "REJECT_ALL" => 603,
            "NUMBER_CHANGED" | "REDIRECTION_TO_NEW_DESTINATION" => 410,
            "DESTINATION_OUT_OF_ORDER" | "INVALID_PROFILE" => 502,
            "INVALID_NUMBER_FORMAT" | "INVALID_URL" | "INVALID_GATEWAY" => 484,
            "FACILITY_REJECTED" | "FACILITY_NOT_IMPLEMENTED" | "SERVICE_NOT_IMPLEMENTED" => 501,
            "REQUESTED_CHAN_UNAVAIL"
            | "NORMAL_CIRCUIT_CONGESTION"
            | "NETWORK_OUT_OF_ORDER"
            | "NORMAL_TEMPORARY_FAILURE"
            | "SWITCH_CONGESTION"
            | "GATEWAY_DOWN"
            | "BEARERCAPABILITY_NOTAVAIL" => 503,
            "OUTGOING_CALL_BARRED"
            | "INCOMING_CALL_BARRED"
            | "BEARERCAPABILITY_NOTAUTH"
            | "STALE_DATE" => 403,
            "BEARERCAPABILITY_NOTIMPL" | "INCOMPATIBLE_DESTINATION" => 488,
            "RECOVERY_ON_TIMER_EXPIRE" => 504,
            "ORIGINATOR_CANCEL" => 487,
            "EXCHANGE_ROUTING_ERROR" => 483,
            "BUSY_EVERYWHERE" => 600,
            "DOES_NOT_EXIST_ANYWHERE" => 604,
            "NOT_ACCEPTABLE" => 606,
            "UNWANTED" => 607,
            "NO_IDENTITY" => 428,
            "BAD_IDENTITY_INFO" => 429,
            "UNSUPPORTED_CERTIFICATE" => 437,
            "INVALID_IDENTITY" => 438,
            _ => 480,
        }
    }

    /// The cause the switch derives from a SIP final response it received
    /// (`sofia_glue_sip_cause_to_freeswitch`); NORMAL_UNSPECIFIED for any other code.
    pub fn from_sip(code: u16) -> Self {
        let name = match code {
            200 => "NORMAL_CLEARING",
            401 | 402 | 403 | 407 | 603 | 608 => "CALL_REJECTED",
            607 => "UNWANTED",
            404 => "UNALLOCATED_NUMBER",
            485 | 604 => "NO_ROUTE_DESTINATION",
            408 | 504 => "RECOVERY_ON_TIMER_EXPIRE",
            410 => "NUMBER_CHANGED",
            413 | 414 | 416 | 420 | 421 | 423 | 505 | 513 => "INTERWORKING",
            480 => "NO_USER_RESPONSE",
            400 | 481 | 500 | 503 => "NORMAL_TEMPORARY_FAILURE",
            486 | 600 => "USER_BUSY",
            484 => "INVALID_NUMBER_FORMAT",
            488 | 606 => "INCOMPATIBLE_DESTINATION",
            502 => "NETWORK_OUT_OF_ORDER",
            405 => "SERVICE_UNAVAILABLE",
            406 | 415 | 501 => "SERVICE_NOT_IMPLEMENTED",
            482 | 483 => "EXCHANGE_ROUTING_ERROR",
            487 => "ORIGINATOR_CANCEL",
            428 => "NO_IDENTITY",
            429 => "BAD_IDENTITY_INFO",
            437 => "UNSUPPORTED_CERTIFICATE",
            438 => "INVALID_IDENTITY",
            _ => "NORMAL_UNSPECIFIED",
        };
        Self::from_name(name).unwrap_or(Self::NORMAL_UNSPECIFIED)
    }
}

impl fmt::Display for HangupCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_for_every_table_entry() {
        for (name, value) in CAUSES {
            assert_eq!(HangupCause::from_name(name), Some(HangupCause(*value)));
            assert_eq!(HangupCause(*value).name(), *name);
        }
        assert_eq!(HangupCause(486).name(), "UNKNOWN");
    }

    #[test]
    fn str2cause_semantics() {
        assert_eq!(
            HangupCause::parse_switch("user_busy"),
            HangupCause::USER_BUSY
        );
        assert_eq!(HangupCause::parse_switch("486"), HangupCause(486));
        assert_eq!(
            HangupCause::parse_switch("NO_SUCH_THING"),
            HangupCause::NORMAL_CLEARING
        );
    }

    #[test]
    fn q850_and_sip() {
        assert_eq!(HangupCause::ALLOTTED_TIMEOUT.q850(), 16);
        assert_eq!(HangupCause::ORIGINATOR_CANCEL.q850(), 16);
        assert_eq!(HangupCause::CALL_REJECTED.q850(), 21);
        assert_eq!(HangupCause::USER_BUSY.sip_refuse_code(), 486);
        assert_eq!(HangupCause::CALL_REJECTED.sip_refuse_code(), 603);
        assert_eq!(HangupCause::NORMAL_CLEARING.sip_refuse_code(), 480);
        assert_eq!(HangupCause::ALLOTTED_TIMEOUT.sip_refuse_code(), 480);
        assert_eq!(HangupCause::from_sip(486), HangupCause::USER_BUSY);
        assert_eq!(HangupCause::from_sip(603), HangupCause::CALL_REJECTED);
        assert_eq!(HangupCause::from_sip(480), HangupCause::NO_USER_RESPONSE);
        assert_eq!(HangupCause::from_sip(299), HangupCause::NORMAL_UNSPECIFIED);
    }
}
