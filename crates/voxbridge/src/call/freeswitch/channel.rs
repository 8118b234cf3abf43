//! Channel facts: what the `connect` reply says of the call — caller, callee, direction,
//! the number it was forwarded from (SIP Diversion), whether the dialplan answered it,
//! the variables it reads — read once, when the call is taken over. The switch's text is not
//! trusted: anything missing or malformed falls back to a default, never a panic.

use super::CallServices;
use crate::call::route::Resolved;
use crate::esl::event::ChannelData;
use crate::esl::outbound::OutboundConnection;
use crate::record::call::Direction;
use std::collections::HashMap;
use time::OffsetDateTime;

/// What the channel says of the call, from the `connect` reply.
#[derive(Clone, Debug)]
pub(in crate::call) struct CallFacts {
    pub uuid: String,
    /// The dialplan answered the channel before handing it over.
    pub answered: bool,
    pub direction: Direction,
    pub from: String,
    pub to: String,
    pub caller_name: String,
    /// The user part of the SIP Diversion header, if any.
    pub forwarded_from: Option<String>,
    pub start_time: OffsetDateTime,
    /// The switch the call is on: `FreeSWITCH-Switchname` of the connect reply (else
    /// its host name, else empty) — a fleet's live row records it (SPEC §14).
    pub switch_name: String,
    /// The channel variables the call reads (`variable_*` headers, prefix stripped):
    /// voxbridge's own (`voxbridge_*`: the route's URLs and account, a `POST Call/`'s
    /// parties and time limit) and `[app] extra_variables`. Only these: a switch's
    /// `connect` reply carries 100–200 variables, and this map lives as long as the call
    /// (a parked call held every one of them, in three copies: SPEC §9's memory budget).
    pub variables: HashMap<String, String>,
}

/// Whether the call reads channel variable `name` (see [`CallFacts::variables`]).
fn kept_variable(name: &str, extra_variables: &[String]) -> bool {
    name.starts_with("voxbridge_") || extra_variables.iter().any(|e| e == name)
}

impl CallFacts {
    /// The facts of the channel `ch`; `extra_variables` are the variables the
    /// configuration sends along with every fetch (`[app] extra_variables`).
    pub fn from_channel(uuid: &str, ch: &ChannelData, extra_variables: &[String]) -> Self {
        let variables: HashMap<String, String> = ch
            .variables()
            .filter(|(k, _)| kept_variable(k, extra_variables))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // Like the map: a variable given twice counts with its last value.
        let last_variable = |name: &str| {
            ch.variables()
                .filter(|(k, _)| *k == name)
                .last()
                .map(|(_, v)| v)
        };
        let direction = match ch.direction() {
            Some("outbound") => Direction::Outbound,
            _ => Direction::Inbound,
        };
        let start_time = ch
            .header("Caller-Channel-Created-Time")
            .or_else(|| ch.header("Channel-Channel-Created-Time"))
            .and_then(micros_to_time)
            .unwrap_or_else(OffsetDateTime::now_utc);
        let forwarded_from = last_variable("sip_h_Diversion")
            .or_else(|| last_variable("sip_h_diversion"))
            .and_then(diversion_user);
        // An originated channel's caller profile names the callee once answered
        // (transcript o): the parties of a `POST Call/` call travel as variables.
        let placed = |name: &str| match direction {
            Direction::Outbound => variables.get(name).cloned(),
            Direction::Inbound => None,
        };
        Self {
            uuid: uuid.to_string(),
            answered: ch.is_answered(),
            direction,
            from: placed("voxbridge_outbound_from")
                .unwrap_or_else(|| ch.caller_id_number().unwrap_or_default().to_string()),
            to: placed("voxbridge_outbound_to")
                .unwrap_or_else(|| ch.destination_number().unwrap_or_default().to_string()),
            caller_name: placed("voxbridge_outbound_caller_name")
                .unwrap_or_else(|| ch.caller_id_name().unwrap_or_default().to_string()),
            forwarded_from,
            start_time,
            switch_name: ch
                .header("FreeSWITCH-Switchname")
                .or_else(|| ch.header("FreeSWITCH-Hostname"))
                .unwrap_or_default()
                .to_string(),
            variables,
        }
    }

    /// What the safety net records when building the call itself failed: the uuid, the
    /// caller and the callee as the channel gives them, and the callback targets the
    /// configuration gives without the channel's variables (which may be what broke).
    pub fn bare(
        services: &CallServices,
        conn: &OutboundConnection,
        uuid: &str,
    ) -> (Self, Resolved) {
        let ch = conn.channel();
        let facts = Self {
            uuid: uuid.to_string(),
            answered: false,
            direction: Direction::Inbound,
            from: ch.caller_id_number().unwrap_or_default().to_string(),
            to: ch.destination_number().unwrap_or_default().to_string(),
            caller_name: ch.caller_id_name().unwrap_or_default().to_string(),
            forwarded_from: None,
            start_time: OffsetDateTime::now_utc(),
            switch_name: String::new(),
            variables: HashMap::new(),
        };
        let resolved = services.router.callback_targets(&HashMap::new(), &facts.to);
        (facts, resolved)
    }
}

/// The number in a Diversion header: `<sip:1234@host>;reason=…` → `1234`.
fn diversion_user(header: &str) -> Option<String> {
    let uri = header.split(['<', '>']).find(|s| s.contains("sip:"))?;
    let user = uri.split("sip:").nth(1)?.split(['@', ';']).next()?;
    (!user.is_empty()).then(|| user.to_string())
}

/// Switch timestamps are microseconds since the epoch; `0` means "never". A value out
/// of range (the switch's text is not trusted) is "unknown", never a panic.
pub(in crate::call) fn micros_to_time(text: &str) -> Option<OffsetDateTime> {
    let us = text.trim().parse::<i128>().ok().filter(|v| *v > 0)?;
    OffsetDateTime::from_unix_timestamp_nanos(us.checked_mul(1000)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diversion_number() {
        assert_eq!(
            diversion_user("<sip:1234@10.0.0.1>;reason=unconditional").as_deref(),
            Some("1234")
        );
        assert_eq!(diversion_user("garbage"), None);
    }

    #[test]
    fn only_the_variables_the_call_reads_are_kept() {
        let mut headers = crate::esl::frame::Headers::new();
        headers.push("Caller-Destination-Number", "7000");
        headers.push("variable_voxbridge_answer_url", "http://app/answer");
        headers.push("variable_voxbridge_time_limit", "30");
        headers.push("variable_customer_id", "c-1");
        headers.push(
            "variable_sip_h_Diversion",
            "<sip:1234@10.0.0.1>;reason=busy",
        );
        headers.push("variable_rtp_use_codec_name", "PCMU");
        let ch = ChannelData::new(headers);
        let facts = CallFacts::from_channel("u-1", &ch, &["customer_id".to_string()]);
        let mut kept: Vec<_> = facts.variables.iter().collect();
        kept.sort();
        assert_eq!(
            kept,
            [
                (&"customer_id".to_string(), &"c-1".to_string()),
                (
                    &"voxbridge_answer_url".to_string(),
                    &"http://app/answer".to_string()
                ),
                (&"voxbridge_time_limit".to_string(), &"30".to_string()),
            ]
        );
        // Read from the channel, not from the kept variables.
        assert_eq!(facts.forwarded_from.as_deref(), Some("1234"));
        assert_eq!(facts.to, "7000");
    }

    #[test]
    fn micros() {
        assert_eq!(micros_to_time("0"), None);
        assert_eq!(
            micros_to_time("99999999999999999999999999999999999999"),
            None
        );
        assert_eq!(
            micros_to_time("1795235383226145").map(|t| t.unix_timestamp()),
            Some(1_795_235_383)
        );
    }
}
