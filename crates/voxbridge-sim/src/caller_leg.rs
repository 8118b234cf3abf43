//! The caller's own leg of an `originate`d call (the "A-leg", `sofia/external/<ext>@…`),
//! as an inbound listener sees it end: its CHANNEL_HANGUP_COMPLETE.
//!
//! Transcript f shows what the real caller leg reports, and the live suite reads exactly
//! these headers, so the simulator reproduces them:
//! - the controlled leg refused the INVITE (f1–f3, f8): `recv_refuse`, `sip_term_status`
//!   and `sip_invite_failure_status` = the refusal code; the cause is the one in the
//!   refusal's `Reason: Q.850` header (so a 480 sent for NORMAL_CLEARING reads
//!   NORMAL_CLEARING, not NO_USER_RESPONSE), or the code's own cause when the switch sent
//!   no Q.850 reason (causes above 127 — inferred from `sofia_on_hangup`);
//! - the controlled leg sent a BYE (f4–f6): `recv_bye`, `sip_term_status` 200,
//!   `sip_reason` with the Q.850 cause, which becomes the caller leg's cause; for a cause
//!   above 127 the switch sends `Reason: SIP;cause=<N>;text="<NAME>"` instead (reference
//!   §4.2) and the caller's leg ends NORMAL_CLEARING — seen on FreeSWITCH 1.10.12 by the
//!   live suite for ALLOTTED_TIMEOUT (`SIP;cause=802;text="ALLOTTED_TIMEOUT"`);
//! - the caller hung up an answered call (`uuid_kill <A-leg>`, transcript c): `send_bye`,
//!   the kill's cause, no `sip_term_*` (those are only set for a *received* status);
//! - the caller cancelled an unanswered call (f7: `originate_timeout` ran out → NO_ANSWER):
//!   `send_cancel`, `sip_invite_failure_status` 487.
//!
//! The `originate` result always names the same cause as the leg (`-ERR <cause>`) when
//! the call was never answered or given early media; see [`CallerLeg::originate_error`].

use super::event::{local_stamp, SwitchInfo};
use super::wire::SimEvent;
use voxbridge::cause::HangupCause;

/// How the caller's leg ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallerEnd {
    /// The controlled leg refused the INVITE with this SIP code, hanging up with `cause`.
    Refused { sip: u16, cause: HangupCause },
    /// The controlled leg sent a BYE with this cause.
    ByeReceived { cause: HangupCause },
    /// The caller sent BYE on the answered call, with its own cause.
    ByeSent { cause: HangupCause },
    /// The caller sent CANCEL before answer: NO_ANSWER when it gave up waiting, else the
    /// cause it was killed with.
    Cancelled { cause: HangupCause },
}

/// What is known of the caller's leg when it ends.
#[derive(Clone, Debug)]
pub(crate) struct CallerLeg<'a> {
    pub uuid: &'a str,
    pub destination: &'a str,
    pub caller_number: &'a str,
    pub caller_name: &'a str,
    pub created_us: i64,
    /// 0 when never answered.
    pub answered_us: i64,
    /// When the caller got early media (183 with SDP); 0 when it never did.
    pub progress_media_us: i64,
    pub hangup_us: i64,
    pub end: CallerEnd,
    /// RTP media packets it received and sent (module `call::caller_media`).
    pub media_in_packets: u64,
    pub media_out_packets: u64,
}

impl CallerLeg<'_> {
    /// The caller leg's own hangup cause.
    pub fn cause(&self) -> HangupCause {
        match self.end {
            CallerEnd::Refused { sip, cause } => {
                if (1..=127).contains(&cause.0) {
                    cause
                } else {
                    HangupCause::from_sip(sip)
                }
            }
            CallerEnd::ByeReceived { cause } => {
                if (1..=127).contains(&cause.0) {
                    cause
                } else {
                    HangupCause::NORMAL_CLEARING
                }
            }
            CallerEnd::ByeSent { cause } | CallerEnd::Cancelled { cause } => cause,
        }
    }

    /// The `originate` result of a call that failed before answer or early media.
    pub fn originate_error(&self) -> String {
        format!("-ERR {}\n", self.cause().name())
    }

    /// CHANNEL_HANGUP_COMPLETE of the caller's leg, headers in the order of transcript f.
    pub fn hangup_complete(&self, sw: &SwitchInfo) -> SimEvent {
        let cause = self.cause();
        let answered = self.answered_us != 0;
        let mut e = sw.new_event("CHANNEL_HANGUP_COMPLETE");
        let name = format!("sofia/external/{}@127.0.0.1:5060", self.destination);
        e.push("Hangup-Cause", cause.name());
        e.push("Channel-State", "CS_REPORTING");
        e.push("Channel-Call-State", "HANGUP");
        e.push("Channel-State-Number", "11");
        e.push("Channel-Name", name.as_str());
        e.push("Unique-ID", self.uuid);
        e.push("Call-Direction", "outbound");
        e.push("Presence-Call-Direction", "outbound");
        e.push(
            "Channel-HIT-Dialplan",
            if answered { "true" } else { "false" },
        );
        e.push("Channel-Call-UUID", self.uuid);
        e.push("Answer-State", "hangup");
        e.push("Hangup-Cause", cause.name());
        e.push("Caller-Direction", "outbound");
        e.push("Caller-Logical-Direction", "outbound");
        e.push("Caller-Caller-ID-Name", self.caller_name);
        e.push("Caller-Caller-ID-Number", self.caller_number);
        e.push("Caller-Orig-Caller-ID-Name", self.caller_name);
        e.push("Caller-Orig-Caller-ID-Number", self.caller_number);
        e.push("Caller-Callee-ID-Name", "Outbound Call");
        e.push("Caller-Callee-ID-Number", self.destination);
        e.push("Caller-Network-Addr", "127.0.0.1");
        e.push("Caller-ANI", self.caller_number);
        e.push("Caller-Destination-Number", self.destination);
        e.push("Caller-Unique-ID", self.uuid);
        e.push("Caller-Source", "src/switch_ivr_originate.c");
        e.push("Caller-Context", "default");
        e.push("Caller-Channel-Name", name.as_str());
        e.push("Caller-Profile-Index", "1");
        e.push("Caller-Profile-Created-Time", self.created_us.to_string());
        e.push("Caller-Channel-Created-Time", self.created_us.to_string());
        e.push("Caller-Channel-Answered-Time", self.answered_us.to_string());
        e.push("Caller-Channel-Progress-Time", "0");
        e.push("Caller-Channel-Progress-Media-Time", "0");
        e.push("Caller-Channel-Hangup-Time", self.hangup_us.to_string());
        for h in [
            "Caller-Channel-Transfer-Time",
            "Caller-Channel-Resurrect-Time",
            "Caller-Channel-Bridged-Time",
            "Caller-Channel-Last-Hold",
            "Caller-Channel-Hold-Accum",
        ] {
            e.push(h, "0");
        }
        e.push("Caller-Screen-Bit", "true");
        e.push("Caller-Privacy-Hide-Name", "false");
        e.push("Caller-Privacy-Hide-Number", "false");
        e.push("variable_direction", "outbound");
        e.push("variable_is_outbound", "true");
        e.push("variable_uuid", self.uuid);
        e.push("variable_call_uuid", self.uuid);
        e.push("variable_sip_profile_name", "external");
        e.push("variable_channel_name", name.as_str());
        e.push(
            "variable_sip_destination_url",
            format!("sip:{}@127.0.0.1:5060", self.destination),
        );
        e.push("variable_origination_uuid", self.uuid);
        e.push("variable_origination_caller_id_number", self.caller_number);
        e.push("variable_origination_caller_id_name", self.caller_name);
        e.push("variable_sofia_profile_name", "external");
        match self.end {
            CallerEnd::Refused { sip, .. } => {
                e.push("variable_sip_hangup_disposition", "recv_refuse");
                e.push("variable_sip_invite_failure_status", sip.to_string());
                if let Some(phrase) = phrase(sip) {
                    e.push("variable_sip_invite_failure_phrase", phrase);
                }
                e.push("variable_sip_term_status", sip.to_string());
                e.push("variable_proto_specific_hangup_cause", format!("sip:{sip}"));
                e.push("variable_sip_term_cause", cause.q850().to_string());
            }
            CallerEnd::ByeReceived { cause: sent } => {
                let reason = if (1..=127).contains(&sent.0) {
                    format!("Q.850;cause={};text=\"{}\"", sent.0, sent.name())
                } else {
                    format!("SIP;cause={};text=\"{}\"", sent.0, sent.name())
                };
                e.push("variable_sip_reason", reason);
                e.push("variable_sip_term_status", "200");
                e.push("variable_proto_specific_hangup_cause", "sip:200");
                e.push("variable_sip_term_cause", cause.q850().to_string());
                e.push("variable_sip_hangup_disposition", "recv_bye");
            }
            CallerEnd::ByeSent { .. } | CallerEnd::Cancelled { .. } => {}
        }
        e.push("variable_hangup_cause", cause.name());
        e.push("variable_hangup_cause_q850", cause.q850().to_string());
        e.push("variable_digits_dialed", "none");
        e.push(
            "variable_rtp_audio_in_media_packet_count",
            self.media_in_packets.to_string(),
        );
        e.push(
            "variable_rtp_audio_out_media_packet_count",
            self.media_out_packets.to_string(),
        );
        self.push_timestamps(&mut e);
        match self.end {
            CallerEnd::ByeSent { .. } => {
                e.push("variable_sip_hangup_disposition", "send_bye");
            }
            CallerEnd::Cancelled { .. } => {
                e.push("variable_sip_hangup_disposition", "send_cancel");
                e.push("variable_sip_invite_failure_status", "487");
                e.push("variable_sip_invite_failure_phrase", "CANCEL");
            }
            _ => {}
        }
        e
    }

    /// `switch_channel_set_timestamps`: epochs in truncated seconds, differences of
    /// truncated values (a 1.52 s call bills 1 or 2 seconds).
    fn push_timestamps(&self, e: &mut SimEvent) {
        let (start, answer, end) = (self.created_us, self.answered_us, self.hangup_us);
        e.push("variable_start_stamp", local_stamp(start));
        if answer != 0 {
            e.push("variable_answer_stamp", local_stamp(answer));
        }
        e.push("variable_end_stamp", local_stamp(end));
        let epoch = |us: i64| (us / 1_000_000).to_string();
        e.push("variable_start_epoch", epoch(start));
        e.push("variable_start_uepoch", start.to_string());
        e.push("variable_answer_epoch", epoch(answer));
        e.push("variable_answer_uepoch", answer.to_string());
        let media = self.progress_media_us;
        e.push("variable_progress_media_epoch", epoch(media));
        e.push("variable_progress_media_uepoch", media.to_string());
        e.push("variable_end_epoch", epoch(end));
        e.push("variable_end_uepoch", end.to_string());
        e.push(
            "variable_caller_id",
            format!("\"{}\" <{}>", self.caller_name, self.caller_number),
        );
        let diff = |a: i64, b: i64, unit: i64| {
            if a == 0 || b == 0 {
                0
            } else {
                a / unit - b / unit
            }
        };
        let bill_end = if answer != 0 { end } else { 0 };
        for (unit, dur, bill) in [
            (1_000_000, "variable_duration", "variable_billsec"),
            (1_000, "variable_mduration", "variable_billmsec"),
            (1, "variable_uduration", "variable_billusec"),
        ] {
            e.push(dur, diff(end, start, unit).to_string());
            e.push(bill, diff(bill_end, answer, unit).to_string());
        }
    }
}

/// The reason phrase sofia-sip puts on the refusals the simulator sends.
fn phrase(sip: u16) -> Option<&'static str> {
    Some(match sip {
        404 => "Not Found",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        486 => "Busy Here",
        487 => "Request Terminated",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimClock;

    fn leg(end: CallerEnd, answered_us: i64) -> CallerLeg<'static> {
        CallerLeg {
            uuid: "a1",
            destination: "7001",
            caller_number: "15551230000",
            caller_name: "ESL-Test",
            created_us: 1_795_235_602_406_136,
            answered_us,
            progress_media_us: 0,
            hangup_us: 1_795_235_603_926_140,
            end,
            media_in_packets: 0,
            media_out_packets: 0,
        }
    }

    #[test]
    fn refusal_reads_like_f1_to_f3() {
        let sw = SwitchInfo::new(SimClock::new(1.0));
        for (sip, cause) in [
            (486, HangupCause::USER_BUSY),
            (603, HangupCause::CALL_REJECTED),
            (480, HangupCause::NORMAL_CLEARING),
        ] {
            let l = leg(CallerEnd::Refused { sip, cause }, 0);
            assert_eq!(l.originate_error(), format!("-ERR {}\n", cause.name()));
            let e = l.hangup_complete(&sw);
            assert_eq!(e.get("Hangup-Cause"), Some(cause.name()));
            assert_eq!(
                e.get("variable_sip_term_status"),
                Some(sip.to_string().as_str())
            );
            assert_eq!(
                e.get("variable_sip_hangup_disposition"),
                Some("recv_refuse")
            );
            assert_eq!(e.get("variable_answer_epoch"), Some("0"));
            assert_eq!(e.get("variable_billsec"), Some("0"));
        }
        // No Q.850 reason for a cause above 127: the code decides.
        let l = leg(
            CallerEnd::Refused {
                sip: 480,
                cause: HangupCause::ALLOTTED_TIMEOUT,
            },
            0,
        );
        assert_eq!(l.cause(), HangupCause::NO_USER_RESPONSE);
    }

    #[test]
    fn bye_and_cancel_read_like_f4_and_f7() {
        let sw = SwitchInfo::new(SimClock::new(1.0));
        let e = leg(
            CallerEnd::ByeReceived {
                cause: HangupCause::USER_BUSY,
            },
            1_795_235_602_446_136,
        )
        .hangup_complete(&sw);
        assert_eq!(
            e.get("variable_sip_reason"),
            Some("Q.850;cause=17;text=\"USER_BUSY\"")
        );
        assert_eq!(e.get("variable_sip_hangup_disposition"), Some("recv_bye"));
        // Above 127 the BYE carries a SIP reason and the caller's leg reads
        // NORMAL_CLEARING (FreeSWITCH 1.10.12, live suite, ALLOTTED_TIMEOUT).
        let timed_out = leg(
            CallerEnd::ByeReceived {
                cause: HangupCause::ALLOTTED_TIMEOUT,
            },
            1_795_235_602_446_136,
        )
        .hangup_complete(&sw);
        assert_eq!(
            timed_out.get("variable_sip_reason"),
            Some("SIP;cause=802;text=\"ALLOTTED_TIMEOUT\"")
        );
        assert_eq!(timed_out.get("Hangup-Cause"), Some("NORMAL_CLEARING"));
        assert_eq!(timed_out.get("variable_hangup_cause_q850"), Some("16"));
        assert_eq!(e.get("variable_billsec"), Some("1"));
        assert_eq!(e.get("variable_billmsec"), Some("1480"));
        let l = leg(
            CallerEnd::Cancelled {
                cause: HangupCause::NO_ANSWER,
            },
            0,
        );
        assert_eq!(l.originate_error(), "-ERR NO_ANSWER\n");
        let e = l.hangup_complete(&sw);
        assert_eq!(
            e.get("variable_sip_hangup_disposition"),
            Some("send_cancel")
        );
        assert_eq!(e.get("variable_sip_term_status"), None);
        assert_eq!(e.get("variable_hangup_cause_q850"), Some("19"));
    }
}
