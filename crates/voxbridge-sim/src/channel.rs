//! One simulated channel (the socket-controlled B-leg): its caller profile, states,
//! timestamps and channel variables, and the events it fires with exactly the header
//! layout the switch uses (`switch_caller_profile_event_set_data`,
//! `switch_channel_event_set_basic_data`, `…_extended_data`).
//!
//! Channel variables are an ordered list with the switch's semantics: setting a variable
//! removes it and appends it at the end, setting an empty value removes it. The order of
//! `variable_*` headers in every event follows from that, and the transcripts show which
//! variables each step sets, in which order; the methods below reproduce those steps.

use super::event::{local_stamp, SwitchInfo};
use super::templates::{templates, ConnectTemplate, Pairs};
use super::wire::{plain_frame_into, url_encode, HeaderSink, PlainSink, SimEvent};
use std::sync::{Arc, OnceLock};
use voxbridge::cause::HangupCause;

/// One channel variable with its plain wire encoding, computed once when set: every
/// event carries every variable, so encoding per event would dominate the cost. Shared
/// (`Arc`) so template variables are not copied into every call.
#[derive(Clone, Debug)]
struct Var {
    name: Arc<str>,
    value: Arc<str>,
    encoded: Arc<str>,
}

impl Var {
    fn new(name: &str, value: &str) -> Self {
        Var {
            name: name.into(),
            encoded: url_encode(value).into(),
            value: value.into(),
        }
    }
}

/// Ordered channel variables.
#[derive(Clone, Debug, Default)]
pub struct Vars(Vec<Var>);

impl Vars {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|v| &*v.name == name).map(|v| &*v.value)
    }

    /// Remove, then append unless empty (`switch_channel_set_variable`).
    pub fn set(&mut self, name: &str, value: impl AsRef<str>) {
        let value = value.as_ref();
        self.unset(name);
        if !value.is_empty() {
            self.0.push(Var::new(name, value));
        }
    }

    fn set_var(&mut self, var: &Var) {
        self.unset(&var.name);
        self.0.push(var.clone());
    }

    /// Sets a variable where it stands (appended if new): for template variables whose
    /// position the switch would not change.
    pub fn replace(&mut self, name: &str, value: &str) {
        match self.0.iter_mut().find(|v| &*v.name == name) {
            Some(v) => *v = Var::new(name, value),
            None => self.0.push(Var::new(name, value)),
        }
    }

    pub fn unset(&mut self, name: &str) {
        if let Some(pos) = self.0.iter().position(|v| &*v.name == name) {
            self.0.remove(pos);
        }
    }

    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|v| (&*v.name, &*v.value))
    }

    #[cfg(test)]
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|v| &*v.name).collect()
    }

    fn write(&self, sink: &mut impl HeaderSink) {
        for v in &self.0 {
            sink.encoded("variable_", &v.name, &v.value, &v.encoded);
        }
    }
}

/// The templates' variables, encoded once per process.
struct Prepared {
    /// `(variable, contains a call-specific token)`.
    ringing: Vec<(Var, bool)>,
    answered: Vec<(Var, bool)>,
    media: Vec<Var>,
    answer: Vec<Var>,
    rtp_stats: Vec<Var>,
}

fn prepared() -> &'static Prepared {
    static P: OnceLock<Prepared> = OnceLock::new();
    P.get_or_init(|| {
        let t = templates();
        let connect = |tpl: &ConnectTemplate| {
            tpl.vars
                .iter()
                .map(|(n, v)| {
                    let tokens = v.contains(&tpl.uuid)
                        || v.contains(&tpl.caller_number)
                        || v.contains(&tpl.caller_name)
                        || v.contains(&tpl.destination);
                    (Var::new(n, v), tokens)
                })
                .collect()
        };
        let plain = |pairs: &Pairs| pairs.iter().map(|(n, v)| Var::new(n, v)).collect();
        Prepared {
            ringing: connect(&t.ringing),
            answered: connect(&t.answered),
            media: plain(&t.media_vars),
            answer: plain(&t.answer_vars),
            rtp_stats: plain(&t.rtp_stats),
        }
    })
}

/// Who ended the call, as far as the channel's variables are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HangupSide {
    /// The switch hung up (app, API, schedule): `send_bye` / `send_refuse`.
    Local,
    /// The caller sent BYE: `recv_bye`.
    RemoteBye,
    /// The caller sent CANCEL before answer: `recv_cancel`.
    RemoteCancel,
}

/// What a new channel looks like.
#[derive(Clone, Debug)]
pub struct ChannelParams {
    pub uuid: String,
    pub caller_number: String,
    pub caller_name: String,
    pub destination: String,
    pub answered: bool,
    /// The `socket` app's data, e.g. `127.0.0.1:8084 async full`.
    pub socket_data: String,
    pub socket_host: String,
    /// Variables the dialplan set before the `socket` app.
    pub extra_vars: Vec<(String, String)>,
    pub created_us: i64,
    /// A channel `originate` placed (transcript o): its dial string (the channel
    /// name, e.g. `sofia/external/7008@127.0.0.1:5060`). `None`: a call that came in.
    pub dialled: Option<String>,
}

#[derive(Debug)]
pub struct Channel {
    pub uuid: String,
    pub name: String,
    pub caller_number: String,
    pub caller_name: String,
    pub destination: String,
    presence_id: String,
    /// `Channel-State`: CS_EXECUTE, CS_HANGUP, CS_REPORTING.
    pub state: &'static str,
    /// `Channel-State-Number`: 4, then 10 from the hangup on (even while `state` still
    /// reads CS_EXECUTE), 11 when reporting.
    pub state_number: u8,
    /// `Channel-Call-State`: RINGING, RING_WAIT, EARLY, ACTIVE, HANGUP.
    pub call_state: &'static str,
    pub created_us: i64,
    pub answered_us: i64,
    pub progress_us: i64,
    pub progress_media_us: i64,
    pub hangup_us: i64,
    pub media: bool,
    pub hangup: Option<(HangupCause, HangupSide)>,
    pub vars: Vars,
    pub last_app: Option<(String, String)>,
    /// DTMF received from the caller (`digits_dialed` in the CDR).
    pub digits: String,
    /// The B-leg of a `bridge` once it answered: its `Other-Leg-*` profile is in every
    /// later event of this channel, also after the bridge ended (transcript i).
    pub other_leg: Option<OtherLeg>,
    /// Placed by `originate` (`Call-Direction: outbound`, transcript o), not a call that
    /// came in through the dialplan.
    pub outbound: bool,
    /// `Channel-HIT-Dialplan`: false while an originated channel rings (it has not run
    /// any dialplan or application yet), true once an application runs on it.
    pub hit_dialplan: bool,
    /// An originated channel whose callee answered: its profile names the parties the
    /// other way round (see `profile`).
    pub callee_connected: bool,
}

/// The callee of a `bridge` as the A-leg's events describe it.
#[derive(Clone, Debug)]
pub struct OtherLeg {
    pub uuid: String,
    pub channel_name: String,
    pub destination: String,
    pub created_us: i64,
    pub answered_us: i64,
}

impl Channel {
    pub fn new(p: &ChannelParams) -> Self {
        let (t, prep) = (templates(), prepared());
        let mut vars = if p.answered {
            instantiate(&t.answered, &prep.answered, p)
        } else {
            instantiate(&t.ringing, &prep.ringing, p)
        };
        if p.dialled.is_some() {
            vars.replace("direction", "outbound");
            vars.replace("is_outbound", "true");
        }
        Channel {
            uuid: p.uuid.clone(),
            name: p
                .dialled
                .clone()
                .unwrap_or_else(|| format!("sofia/internal/{}@127.0.0.1", p.caller_number)),
            caller_number: p.caller_number.clone(),
            caller_name: p.caller_name.clone(),
            destination: p.destination.clone(),
            presence_id: format!("{}@127.0.0.1", p.caller_number),
            state: "CS_EXECUTE",
            state_number: 4,
            call_state: if p.answered { "ACTIVE" } else { "RINGING" },
            created_us: p.created_us,
            answered_us: if p.answered { p.created_us } else { 0 },
            progress_us: 0,
            progress_media_us: if p.answered { p.created_us } else { 0 },
            hangup_us: 0,
            media: p.answered,
            hangup: None,
            vars,
            last_app: None,
            digits: String::new(),
            other_leg: None,
            outbound: p.dialled.is_some(),
            hit_dialplan: p.dialled.is_none(),
            callee_connected: false,
        }
    }

    pub fn answered(&self) -> bool {
        self.answered_us != 0
    }

    pub fn is_down(&self) -> bool {
        self.hangup.is_some()
    }

    pub fn answer_state(&self) -> &'static str {
        if self.hangup.is_some() {
            "hangup"
        } else if self.answered() {
            "answered"
        } else if self.media {
            "early"
        } else {
            "ringing"
        }
    }

    // ---- steps, each reproducing what the switch sets and fires ----

    /// Before CHANNEL_EXECUTE (`switch_ivr_parse_event` + `switch_core_session_exec`).
    pub fn before_execute(&mut self, app: &str, data: &str, loop_no: i64, loops: i64) {
        self.vars.set("current_loop", loop_no.to_string());
        self.vars.set("total_loops", loops.to_string());
        self.vars.set("current_application", app);
        self.vars.set("current_application_data", data);
        self.vars.unset("current_application_response");
        self.last_app = Some((app.to_string(), data.to_string()));
    }

    /// After CHANNEL_EXECUTE, before the app runs.
    pub fn after_execute(&mut self, app: &str, data: &str) {
        self.vars.set("current_application_data", data);
        self.vars.set("current_application", app);
    }

    /// After CHANNEL_EXECUTE_COMPLETE.
    pub fn after_execute_complete(&mut self) {
        self.vars.unset("current_loop");
        self.vars.unset("total_loops");
    }

    /// Media comes up (the 183 of a pre-answer, or the first half of an answer).
    pub fn media_up(&mut self, now_us: i64) {
        for v in &prepared().media {
            self.vars.set_var(v);
        }
        self.media = true;
        self.progress_media_us = now_us;
    }

    /// After CHANNEL_PROGRESS_MEDIA.
    pub fn after_progress_media(&mut self) {
        self.call_state = "EARLY";
        for v in &prepared().answer {
            self.vars.set_var(v);
        }
    }

    pub fn mark_answered(&mut self, now_us: i64) {
        self.answered_us = now_us;
    }

    /// After CHANNEL_ANSWER.
    pub fn after_answer(&mut self) {
        self.call_state = "ACTIVE";
        self.vars.set("endpoint_disposition", "ANSWER");
    }

    /// The caller's ACK of our 200 OK re-sets the SIP dialog variables.
    pub fn ack_received(&mut self, to_tag: &str) {
        let full_to = self
            .vars
            .get("sip_full_to")
            .map(|v| format!("{v};tag={to_tag}"))
            .unwrap_or_default();
        let keep = |v: &Vars, n: &str| v.get(n).unwrap_or_default().to_string();
        let from_tag = keep(&self.vars, "sip_from_tag");
        let call_id = keep(&self.vars, "sip_call_id");
        let via = keep(&self.vars, "sip_full_via");
        let display = keep(&self.vars, "sip_from_display");
        let full_from = keep(&self.vars, "sip_full_from");
        self.vars.set("sip_to_tag", to_tag);
        self.vars.set("sip_from_tag", from_tag);
        self.vars.set(
            "sip_cseq",
            ((self.created_us / 1000) % 1_000_000_000).to_string(),
        );
        self.vars.set("sip_call_id", call_id);
        self.vars.set("sip_full_via", via);
        self.vars.set("sip_from_display", display);
        self.vars.set("sip_full_from", full_from);
        self.vars.set("sip_full_to", full_to);
    }

    pub fn ring_ready(&mut self, now_us: i64) {
        self.progress_us = now_us;
    }

    /// Marks the channel down (`switch_channel_perform_hangup`); the caller's BYE first
    /// sets the SIP reason variables (transcript c).
    pub fn begin_hangup(&mut self, cause: HangupCause, side: HangupSide) {
        if side == HangupSide::RemoteBye {
            self.vars.set(
                "sip_reason",
                format!("Q.850;cause={};text=\"{}\"", cause.q850(), cause.name()),
            );
            self.vars.set("sip_term_status", "200");
            self.vars.set("proto_specific_hangup_cause", "sip:200");
            self.vars.set("sip_term_cause", cause.q850().to_string());
        }
        self.hangup = Some((cause, side));
        self.state_number = 10;
    }

    /// After CHANNEL_HANGUP: sofia's handling of a received BYE/CANCEL finishes.
    pub fn after_hangup_event(&mut self) {
        match self.hangup.map(|(_, s)| s) {
            Some(HangupSide::RemoteBye) => {
                let ua = self
                    .vars
                    .get("sip_user_agent")
                    .unwrap_or_default()
                    .to_string();
                self.vars.set("sip_user_agent", ua);
                self.vars.set("sip_hangup_disposition", "recv_bye");
            }
            Some(HangupSide::RemoteCancel) => {
                self.vars.set("sip_hangup_disposition", "recv_cancel");
            }
            _ => {}
        }
    }

    /// Entering CS_HANGUP (for the CHANNEL_STATE event).
    pub fn enter_cs_hangup(&mut self) {
        self.state = "CS_HANGUP";
        self.state_number = 10;
    }

    /// The CS_HANGUP handler: hangup time, cause variables, CDR timestamps, then
    /// `sofia_on_hangup` (disposition) and the RTP statistics.
    pub fn hangup_state(&mut self, now_us: i64) {
        let Some((cause, side)) = self.hangup else {
            return;
        };
        self.hangup_us = now_us;
        self.vars.set("hangup_cause", cause.name());
        self.vars.set("hangup_cause_q850", cause.q850().to_string());
        self.set_timestamps();
        if side == HangupSide::Local {
            let disposition = if self.answered() {
                "send_bye"
            } else {
                "send_refuse"
            };
            self.vars.set("sip_hangup_disposition", disposition);
        }
        if self.media {
            for v in &prepared().rtp_stats {
                self.vars.set_var(v);
            }
        }
        self.call_state = "HANGUP";
    }

    pub fn enter_cs_reporting(&mut self) {
        self.state = "CS_REPORTING";
        self.state_number = 11;
    }

    /// `switch_channel_set_timestamps`: epochs are truncated seconds and the second,
    /// millisecond and microsecond differences are differences of truncated values.
    fn set_timestamps(&mut self) {
        let v = &mut self.vars;
        let (start, answer, progress, pm, end) = (
            self.created_us,
            self.answered_us,
            self.progress_us,
            self.progress_media_us,
            self.hangup_us,
        );
        let digits = if self.digits.is_empty() {
            "none".to_string()
        } else {
            self.digits.clone()
        };
        v.set("digits_dialed", digits);
        v.set("start_stamp", local_stamp(start));
        v.set("profile_start_stamp", local_stamp(start));
        if answer != 0 {
            v.set("answer_stamp", local_stamp(answer));
        }
        if progress != 0 {
            v.set("progress_stamp", local_stamp(progress));
        }
        if pm != 0 {
            v.set("progress_media_stamp", local_stamp(pm));
        }
        v.set("end_stamp", local_stamp(end));
        let epoch = |us: i64| (us / 1_000_000).to_string();
        v.set("start_epoch", epoch(start));
        v.set("start_uepoch", start.to_string());
        v.set("profile_start_epoch", epoch(start));
        v.set("profile_start_uepoch", start.to_string());
        v.set("answer_epoch", epoch(answer));
        v.set("answer_uepoch", answer.to_string());
        for name in [
            "bridge_epoch",
            "bridge_uepoch",
            "last_hold_epoch",
            "last_hold_uepoch",
            "hold_accum_seconds",
            "hold_accum_usec",
            "hold_accum_ms",
            "resurrect_epoch",
            "resurrect_uepoch",
        ] {
            v.set(name, "0");
        }
        v.set("progress_epoch", epoch(progress));
        v.set("progress_uepoch", progress.to_string());
        v.set("progress_media_epoch", epoch(pm));
        v.set("progress_media_uepoch", pm.to_string());
        v.set("end_epoch", epoch(end));
        v.set("end_uepoch", end.to_string());
        if let Some((app, arg)) = &self.last_app {
            v.set("last_app", app.clone());
            v.set("last_arg", arg.clone());
        }
        v.set(
            "caller_id",
            format!("\"{}\" <{}>", self.caller_name, self.caller_number),
        );
        // Differences at three resolutions; 0 when the later event never happened.
        let diff = |a: i64, b: i64, unit: i64| {
            if a == 0 || b == 0 {
                0
            } else {
                a / unit - b / unit
            }
        };
        let bill_end = if answer != 0 { end } else { 0 };
        let flow_end = if answer != 0 { end } else { 0 };
        for (unit, dur, bill, prog, ans, wait, pmed, flow) in [
            (
                1_000_000,
                "duration",
                "billsec",
                "progresssec",
                "answersec",
                "waitsec",
                "progress_mediasec",
                "flow_billsec",
            ),
            (
                1_000,
                "mduration",
                "billmsec",
                "progressmsec",
                "answermsec",
                "waitmsec",
                "progress_mediamsec",
                "flow_billmsec",
            ),
            (
                1,
                "uduration",
                "billusec",
                "progressusec",
                "answerusec",
                "waitusec",
                "progress_mediausec",
                "flow_billusec",
            ),
        ] {
            v.set(dur, diff(end, start, unit).to_string());
            v.set(bill, diff(bill_end, answer, unit).to_string());
            v.set(prog, diff(progress, start, unit).to_string());
            v.set(ans, diff(answer, start, unit).to_string());
            v.set(wait, "0");
            v.set(pmed, diff(pm, start, unit).to_string());
            v.set(flow, diff(flow_end, start, unit).to_string());
        }
    }

    /// Whole seconds billed, as `variable_billsec` (0 if never answered).
    pub fn billsec(&self) -> i64 {
        if self.answered_us == 0 || self.hangup_us == 0 {
            0
        } else {
            self.hangup_us / 1_000_000 - self.answered_us / 1_000_000
        }
    }

    pub fn duration_secs(&self) -> i64 {
        if self.hangup_us == 0 {
            0
        } else {
            self.hangup_us / 1_000_000 - self.created_us / 1_000_000
        }
    }

    // ---- events ----

    /// The CHANNEL_DATA event of the `connect` reply.
    pub fn channel_data(&self, sw: &SwitchInfo) -> SimEvent {
        let mut e = SimEvent::default();
        sw.standard_headers("CHANNEL_DATA", &mut e);
        self.profile(&mut e, "Channel-");
        self.basic(&mut e);
        self.profile(&mut e, "Caller-");
        self.vars.write(&mut e);
        e
    }

    /// An event with basic data, the caller profile and, except for CHANNEL_STATE and
    /// DTMF, every variable; `tail` headers go last.
    pub fn event(&self, sw: &SwitchInfo, name: &str, tail: &[(&str, &str)]) -> SimEvent {
        let mut e = SimEvent::default();
        e.headers.reserve(240);
        self.write_event(sw, name, tail, &mut e);
        e
    }

    /// The same event as a `text/event-plain` frame appended to `out`, built without
    /// an intermediate [`SimEvent`].
    pub fn plain_event_into(
        &self,
        sw: &SwitchInfo,
        name: &str,
        tail: &[(&str, &str)],
        out: &mut Vec<u8>,
    ) {
        let mut lines = Vec::with_capacity(12 * 1024);
        self.write_event(sw, name, tail, &mut PlainSink(&mut lines));
        plain_frame_into(&lines, out);
    }

    fn write_event(
        &self,
        sw: &SwitchInfo,
        name: &str,
        tail: &[(&str, &str)],
        sink: &mut impl HeaderSink,
    ) {
        sw.standard_headers(name, sink);
        if let (Some(b), "CHANNEL_BRIDGE" | "CHANNEL_UNBRIDGE") = (&self.other_leg, name) {
            sink.header("", "Bridge-A-Unique-ID", &self.uuid);
            sink.header("", "Bridge-B-Unique-ID", &b.uuid);
        }
        if name == "CHANNEL_HANGUP_COMPLETE" {
            if let Some((cause, _)) = self.hangup {
                sink.header("", "Hangup-Cause", cause.name());
            }
        }
        self.basic(sink);
        self.profile(sink, "Caller-");
        if let Some(b) = &self.other_leg {
            self.other_leg_profile(b, sink);
        }
        if !matches!(name, "CHANNEL_STATE" | "DTMF" | "CHANNEL_CALLSTATE") {
            self.vars.write(sink);
        }
        for (n, v) in tail {
            sink.header("", n, v);
        }
    }

    fn basic(&self, e: &mut impl HeaderSink) {
        e.header("", "Channel-State", self.state);
        e.header("", "Channel-Call-State", self.call_state);
        e.header("", "Channel-State-Number", &self.state_number.to_string());
        e.header("", "Channel-Name", &self.name);
        e.header("", "Unique-ID", &self.uuid);
        let direction = self.direction();
        e.header("", "Call-Direction", direction);
        e.header("", "Presence-Call-Direction", direction);
        e.header(
            "",
            "Channel-HIT-Dialplan",
            if self.hit_dialplan { "true" } else { "false" },
        );
        if !self.outbound {
            e.header("", "Channel-Presence-ID", &self.presence_id);
        }
        e.header("", "Channel-Call-UUID", &self.uuid);
        e.header("", "Answer-State", self.answer_state());
        if let Some((cause, _)) = self.hangup {
            e.header("", "Hangup-Cause", cause.name());
        }
        if self.media {
            e.header("", "Channel-Read-Codec-Name", "PCMU");
            e.header("", "Channel-Read-Codec-Rate", "8000");
            e.header("", "Channel-Read-Codec-Bit-Rate", "64000");
            e.header("", "Channel-Write-Codec-Name", "PCMU");
            e.header("", "Channel-Write-Codec-Rate", "8000");
            e.header("", "Channel-Write-Codec-Bit-Rate", "64000");
        }
    }

    /// The caller profile (`switch_caller_profile_event_set_data`) under `prefix`.
    /// `Other-Type: originatee` and the B-leg's caller profile, as in transcript i.
    fn other_leg_profile(&self, b: &OtherLeg, e: &mut impl HeaderSink) {
        e.header("", "Other-Type", "originatee");
        let p = "Other-Leg-";
        let fields: [(&str, &str); 19] = [
            ("Direction", "outbound"),
            ("Logical-Direction", "inbound"),
            ("Username", &self.caller_number),
            ("Dialplan", "XML"),
            ("Caller-ID-Name", &self.caller_name),
            ("Caller-ID-Number", &self.caller_number),
            ("Orig-Caller-ID-Name", &self.caller_name),
            ("Orig-Caller-ID-Number", &self.caller_number),
            ("Callee-ID-Name", &b.destination),
            ("Callee-ID-Number", &b.destination),
            ("Network-Addr", "127.0.0.1"),
            ("ANI", &self.caller_number),
            ("Destination-Number", &b.destination),
            ("Unique-ID", &b.uuid),
            ("Source", "mod_sofia"),
            ("Context", "public"),
            ("Channel-Name", &b.channel_name),
            ("Profile-Created-Time", &b.created_us.to_string()),
            ("Channel-Created-Time", &b.created_us.to_string()),
        ];
        for (n, v) in fields {
            e.header(p, n, v);
        }
        e.header(p, "Channel-Answered-Time", &b.answered_us.to_string());
        for n in [
            "Channel-Progress-Time",
            "Channel-Progress-Media-Time",
            "Channel-Hangup-Time",
            "Channel-Transfer-Time",
            "Channel-Resurrect-Time",
            "Channel-Bridged-Time",
            "Channel-Last-Hold",
            "Channel-Hold-Accum",
        ] {
            e.header(p, n, "0");
        }
        e.header(p, "Screen-Bit", "true");
        e.header(p, "Privacy-Hide-Name", "false");
        e.header(p, "Privacy-Hide-Number", "false");
    }

    fn direction(&self) -> &'static str {
        if self.outbound {
            "outbound"
        } else {
            "inbound"
        }
    }

    /// The caller profile. An originated channel's (transcript o) has no user name or
    /// dialplan, names the callee, and comes from the originate code in `default`.
    fn profile(&self, e: &mut impl HeaderSink, prefix: &str) {
        let t = |us: i64| us.to_string();
        let direction = self.direction();
        e.header(prefix, "Direction", direction);
        e.header(prefix, "Logical-Direction", direction);
        if !self.outbound {
            e.header(prefix, "Username", &self.caller_number);
            e.header(prefix, "Dialplan", "XML");
        }
        let (source, context) = if self.outbound {
            ("src/switch_ivr_originate.c", "default")
        } else {
            ("mod_sofia", "public")
        };
        // Once the callee answered, an originated channel's caller id is the callee's
        // and the callee id the original caller's (transcript o, from the connect on).
        let (id_name, id_number, callee_name, callee_number) = if self.callee_connected {
            (
                &self.destination,
                &self.destination,
                &self.caller_name,
                &self.caller_number,
            )
        } else {
            (
                &self.caller_name,
                &self.caller_number,
                &self.destination,
                &self.destination,
            )
        };
        let ids: [(&str, &str); 4] = [
            ("Caller-ID-Name", id_name),
            ("Caller-ID-Number", id_number),
            ("Orig-Caller-ID-Name", &self.caller_name),
            ("Orig-Caller-ID-Number", &self.caller_number),
        ];
        for (n, v) in ids {
            e.header(prefix, n, v);
        }
        if self.outbound {
            e.header(prefix, "Callee-ID-Name", callee_name);
            e.header(prefix, "Callee-ID-Number", callee_number);
        }
        let fields: [(&str, &str); 8] = [
            ("Network-Addr", "127.0.0.1"),
            ("ANI", &self.caller_number),
            ("Destination-Number", &self.destination),
            ("Unique-ID", &self.uuid),
            ("Source", source),
            ("Context", context),
            ("Channel-Name", &self.name),
            ("Profile-Index", "1"),
        ];
        for (n, v) in fields {
            e.header(prefix, n, v);
        }
        let times: [(&str, String); 11] = [
            ("Profile-Created-Time", t(self.created_us)),
            ("Channel-Created-Time", t(self.created_us)),
            ("Channel-Answered-Time", t(self.answered_us)),
            ("Channel-Progress-Time", t(self.progress_us)),
            ("Channel-Progress-Media-Time", t(self.progress_media_us)),
            ("Channel-Hangup-Time", t(self.hangup_us)),
            ("Channel-Transfer-Time", "0".into()),
            ("Channel-Resurrect-Time", "0".into()),
            ("Channel-Bridged-Time", "0".into()),
            ("Channel-Last-Hold", "0".into()),
            ("Channel-Hold-Accum", "0".into()),
        ];
        for (n, v) in &times {
            e.header(prefix, n, v);
        }
        e.header(prefix, "Screen-Bit", "true");
        e.header(prefix, "Privacy-Hide-Name", "false");
        e.header(prefix, "Privacy-Hide-Number", "false");
    }
}

/// The template's variables with this call's UUID, numbers, destination and times.
fn instantiate(tpl: &ConnectTemplate, prepared: &[(Var, bool)], p: &ChannelParams) -> Vars {
    let call_id = uuid::Uuid::new_v4().to_string();
    let mut vars = Vars(Vec::with_capacity(
        prepared.len() + p.extra_vars.len() + 120,
    ));
    for (var, tokens) in prepared {
        let name = &*var.name;
        let special = match name {
            "current_application_data" => Some(p.socket_data.clone()),
            "socket_host" => Some(p.socket_host.clone()),
            "sip_invite_stamp" => Some(p.created_us.to_string()),
            "sip_call_id" => Some(call_id.clone()),
            _ => None,
        };
        let value = match special {
            Some(v) => Some(v),
            None if *tokens => {
                let mut v = var
                    .value
                    .replace(&tpl.uuid, &p.uuid)
                    .replace(&tpl.caller_number, &p.caller_number)
                    .replace(&tpl.caller_name, &p.caller_name);
                if matches!(
                    name,
                    "sip_req_user"
                        | "sip_to_user"
                        | "sip_req_uri"
                        | "sip_to_uri"
                        | "sip_full_to"
                        | "DP_MATCH"
                ) {
                    v = v.replace(&tpl.destination, &p.destination);
                }
                Some(v)
            }
            None => None,
        };
        match value {
            // An empty caller name leaves empty values, which the switch would not carry.
            Some(v) if v.is_empty() => {}
            Some(v) => vars.0.push(Var::new(name, &v)),
            None => vars.0.push(var.clone()),
        }
        if name == "call_uuid" {
            for (n, v) in &p.extra_vars {
                vars.set(n, v);
            }
        }
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimClock;

    fn params(answered: bool) -> ChannelParams {
        ChannelParams {
            uuid: "11111111-2222-4333-8444-555555555555".into(),
            caller_number: "4915112345".into(),
            caller_name: "Alice".into(),
            destination: "5000".into(),
            answered,
            socket_data: "127.0.0.1:9999 async full".into(),
            socket_host: "127.0.0.1".into(),
            extra_vars: vec![("voxbridge_answer_url".into(), "http://x/a".into())],
            created_us: 1_800_000_000_000_000,
            dialled: None,
        }
    }

    #[test]
    fn instantiates_the_template_for_this_call() {
        let ch = Channel::new(&params(false));
        let names = ch.vars.names();
        let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
        assert_eq!(pos("voxbridge_answer_url"), pos("call_uuid") + 1);
        assert_eq!(
            ch.vars.get("uuid"),
            Some("11111111-2222-4333-8444-555555555555")
        );
        assert_eq!(ch.vars.get("sip_req_user"), Some("5000"));
        assert_eq!(ch.vars.get("sip_from_user"), Some("4915112345"));
        assert_eq!(ch.vars.get("sip_from_display"), Some("Alice"));
        assert_eq!(
            ch.vars.get("current_application_data"),
            Some("127.0.0.1:9999 async full")
        );
        assert_eq!(ch.answer_state(), "ringing");
        let all = ch.vars.iter().map(|(_, v)| v).collect::<Vec<_>>().join(" ");
        assert!(!all.contains("e300f525"));
        assert!(!all.contains("15551230000"));
        assert!(!all.contains("ESL-Test"));
    }

    #[test]
    fn fast_plain_path_equals_the_structured_one() {
        let sw = SwitchInfo::new(SimClock::new(1.0));
        let mut ch = Channel::new(&params(true));
        ch.begin_hangup(HangupCause::USER_BUSY, HangupSide::Local);
        ch.hangup_state(1_800_000_004_000_000);
        let digits = |b: &[u8]| -> String {
            String::from_utf8_lossy(b)
                .chars()
                .map(|c| if c.is_ascii_digit() { 'N' } else { c })
                .collect()
        };
        for name in ["CHANNEL_HANGUP_COMPLETE", "CHANNEL_STATE", "DTMF"] {
            let tail = [("DTMF-Digit", "#")];
            let mut fast = Vec::new();
            ch.plain_event_into(&sw, name, &tail, &mut fast);
            let slow = crate::wire::event_frame(
                &ch.event(&sw, name, &tail),
                crate::wire::EventFormat::Plain,
            );
            assert_eq!(digits(&fast), digits(&slow), "{name}");
        }
    }

    #[test]
    fn cdr_differences_are_of_truncated_values() {
        let sw = SwitchInfo::new(SimClock::new(1.0));
        let mut ch = Channel::new(&params(false));
        ch.created_us = 1_000_000_900_000; // x.9 s
        ch.media_up(1_000_001_100_000);
        ch.mark_answered(1_000_001_100_000);
        ch.begin_hangup(HangupCause::NORMAL_CLEARING, HangupSide::Local);
        ch.hangup_state(1_000_002_400_000);
        assert_eq!(ch.vars.get("duration"), Some("2"));
        assert_eq!(ch.vars.get("billsec"), Some("1"));
        assert_eq!(ch.vars.get("mduration"), Some("1500"));
        assert_eq!(ch.vars.get("sip_hangup_disposition"), Some("send_bye"));
        assert_eq!(ch.billsec(), 1);
        let e = ch.event(&sw, "CHANNEL_HANGUP_COMPLETE", &[]);
        assert_eq!(e.headers[13].0, "Hangup-Cause");
        assert_eq!(
            e.headers
                .iter()
                .filter(|(n, _)| n == "Hangup-Cause")
                .count(),
            2
        );
        assert!(e.get("variable_rtp_audio_rtcp_octet_count").is_some());
    }
}
