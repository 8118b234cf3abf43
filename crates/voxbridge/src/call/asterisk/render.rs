//! Engine operations → FastAGI commands for Asterisk, and the switch's replies → outcomes.
//! The only place that knows Asterisk's application names and chan_sip's SIP codes.
//!
//! | ChannelOp | AGI command |
//! |---|---|
//! | Answer | `ANSWER` |
//! | PreAnswer | `EXEC Progress` (183, early media) |
//! | Speak | `EXEC Flite "<text>"`; before answer (PreAnswer) not supported yet — app_flite always answers — app_flite's voice is the one in `flite.conf`: the app has no voice argument, so `[tts]` voices do not apply on Asterisk (logged once per call) |
//! | Play `file://` | `EXEC Playback "<path without extension>"` (`,noanswer` before answer: early media) |
//! | Play `http(s)://` | fetched into voxbridge's media cache by the driver ([`super::media`]), then as `file://` |
//! | Wait | `EXEC Wait <seconds>` |
//! | SendDigits | `EXEC SendDTMF <digits>` |
//! | Hangup | `EXEC Hangup <q850>` |
//! | ArmHangup | `SET VARIABLE voxbridge_scheduled_cause "<q850>"`, `SET VARIABLE TIMEOUT(absolute) "<secs>"` |
//! | CancelArmedHangups | `SET VARIABLE TIMEOUT(absolute) "0"` |
//! | Speak in a Gather | `EXEC Flite "<text>,<keys>"` (stops at a key; the reply is the key) |
//! | Play in a Gather | `STREAM FILE "<path>" "<keys>"` |
//! | Silence (Wait in a Gather) | `WAIT FOR DIGIT <ms>` |
//! | FlushDigits | `NOOP` (Asterisk keeps no digits between commands) |
//! | a Gather listening | `WAIT FOR DIGIT <ms until its deadline>`, run by the driver |
//! | Record (plain) | `RECORD FILE "<path without .wav>" wav "<finishOnKey>" <maxLength ms> [BEEP] [s=<timeout s>]` ([`record_plan`], [`record_report`]) |
//! | StartSessionRecording (`recordSession`) | `EXEC MixMonitor "<path>.wav"` (returns at once; the file is complete at the hangup) |
//! | Bridge (Dial) | `SET VARIABLE CALLERID(num/name)` (and `__voxbridge_dial_*` for the dialplan's routines), `EXEC Dial "<dest>&<dest>,<ring s>,g[H][D()][b()][U()]L(<limit ms>)"`, then `GET VARIABLE DIALSTATUS`/`HANGUPCAUSE`/`DIALEDPEERNUMBER`/`ANSWEREDTIME` (and `SHARED(voxbridge_dial)`) ([`dial_plan`]) |
//!
//! **Schedule inside the switch.** `TIMEOUT(absolute)` is Asterisk's own timer on the
//! channel: it fires even if voxbridge is busy or gone. On its own it carries no cause
//! (`progress-wait-timeout.txt`: HANGUPCAUSE 0, the caller gets 603), so the shipped dialplan
//! has `exten => T,1,Hangup(${voxbridge_scheduled_cause})`: once voxbridge has closed the
//! socket after the timeout's `HANGUP`, Asterisk runs the `T` (timeout) extension and the
//! caller gets the mapped cause (486 for busy before answer). The record takes the cause
//! from the schedule voxbridge armed (see the driver).
//!
//! Text is escaped twice: for the application's own argument splitting
//! ([`app_arg`]) and for the AGI line ([`AgiCommand`]); line breaks in document text
//! become spaces (a TTS engine reads them as pauses anyway).

use crate::agi::command::app_arg;
use crate::agi::{AgiCommand, Reply};
use crate::call::channel_op::{
    Bridge, ChannelOp, HungUpBy, MediaItem, OpOutcome, RecordCaller, RecordEndedBy, RecordFormat,
    RecordReport,
};
use crate::cause::HangupCause;
use crate::document::model::DialTarget;
use std::time::Duration;

/// What running one operation takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Send these commands in order; the last reply is the outcome (a failing one stops).
    Commands(Vec<AgiCommand>),
    /// Not possible on this switch (yet): the text says what and why.
    Refuse(String),
}

/// The channel variable the dialplan's `T` extension hangs up with.
pub const SCHEDULED_CAUSE: &str = "voxbridge_scheduled_cause";

/// [`plan`] for a channel that is `answered` or not. Before answer the only media is
/// early media (PreAnswer): `Playback` gets its `noanswer` option (it answers the channel
/// otherwise), and `Flite`, which always answers and has no such option, is refused —
/// it would answer a call the document means to refuse (seen live: 200 instead of 486).
pub fn plan_on(op: &ChannelOp, answered: bool) -> Plan {
    if answered {
        return plan(op);
    }
    match op {
        ChannelOp::Speak { .. } => Plan::Refuse(
            "not supported yet on Asterisk: Speak in early media (app_flite answers the channel)"
                .into(),
        ),
        ChannelOp::Play { url } => match playback_name(url) {
            Ok(name) => match AgiCommand::exec("Playback", &format!("{},noanswer", app_arg(&name)))
            {
                Ok(cmd) => Plan::Commands(vec![cmd]),
                Err(e) => Plan::Refuse(format!("cannot build the AGI command: {e}")),
            },
            Err(why) => Plan::Refuse(why),
        },
        _ => plan(op),
    }
}

/// The DTMF keys that stop a Gather's prompt (every key a phone sends).
pub const GATHER_KEYS: &str = "0123456789*#ABCD";

/// [`plan_on`] for a prompt of a running Gather (SPEC §12.1): the prompt stops at the
/// first digit and the reply carries it (`result=<ASCII code>`, read by [`digit`]) — the
/// barge-in, since a FastAGI `EXEC Playback` reports no digit. Speak is
/// `EXEC Flite "<text>,<keys>"` (app_flite's interrupt keys; result = the key, capture
/// `gather-flite-barge-in.txt`), Play is `STREAM FILE` with escape digits
/// (`gather-stream-file.txt`), a Wait is `WAIT FOR DIGIT`. A Gather answers first, so
/// there is no early-media case.
pub fn plan_prompt(op: &ChannelOp) -> Plan {
    let built = match op {
        ChannelOp::Speak { text, .. } => AgiCommand::exec(
            "Flite",
            &format!("{},{GATHER_KEYS}", app_arg(&one_line(text))),
        ),
        ChannelOp::Play { url } => match playback_name(url) {
            Ok(name) => AgiCommand::stream_file(&name, GATHER_KEYS),
            Err(why) => return Plan::Refuse(why),
        },
        other => return plan(other),
    };
    match built {
        Ok(cmd) => Plan::Commands(vec![cmd]),
        Err(e) => Plan::Refuse(format!("cannot build the AGI command: {e}")),
    }
}

/// The digit a prompt or listen command's reply reports: `result=` is its ASCII code
/// (0: none; -1: hung up or failed).
pub fn digit(reply: &Reply) -> Option<char> {
    match (reply.code, reply.result) {
        (200, Some(r)) if r > 0 => u8::try_from(r)
            .ok()
            .map(char::from)
            .filter(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D')),
        _ => None,
    }
}

pub fn plan(op: &ChannelOp) -> Plan {
    let built = match op {
        ChannelOp::Answer => Ok(AgiCommand::answer()),
        ChannelOp::PreAnswer => AgiCommand::exec("Progress", ""),
        ChannelOp::Speak { text, .. } => AgiCommand::exec("Flite", &app_arg(&one_line(text))),
        ChannelOp::Play { url } => match playback_name(url) {
            Ok(name) => AgiCommand::exec("Playback", &app_arg(&name)),
            Err(why) => return Plan::Refuse(why),
        },
        ChannelOp::Wait { duration } => {
            AgiCommand::exec("Wait", &format!("{:.3}", duration.as_secs_f64()))
        }
        ChannelOp::SendDigits { digits } => {
            if !digits.chars().all(|c| {
                c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D' | 'a'..='d' | 'w' | 'W')
            }) {
                return Plan::Refuse(format!(
                    "DTMF digits {digits:?} contain characters SendDTMF does not send"
                ));
            }
            AgiCommand::exec("SendDTMF", digits)
        }
        ChannelOp::Hangup { cause } => AgiCommand::exec("Hangup", &cause.q850().to_string()),
        ChannelOp::ArmHangup { after, cause } => {
            let cmds = AgiCommand::set_variable(SCHEDULED_CAUSE, &cause.q850().to_string())
                .and_then(|c| {
                    let secs = after.as_secs().max(1).to_string();
                    Ok(vec![
                        c,
                        AgiCommand::set_variable("TIMEOUT(absolute)", &secs)?,
                    ])
                });
            return match cmds {
                Ok(cmds) => Plan::Commands(cmds),
                Err(e) => Plan::Refuse(format!("cannot build the AGI command: {e}")),
            };
        }
        ChannelOp::CancelArmedHangups => AgiCommand::set_variable("TIMEOUT(absolute)", "0"),
        // A Wait inside a Gather: silence that ends at the first digit and reports it.
        ChannelOp::Silence { duration } => Ok(AgiCommand::wait_for_digit(*duration)),
        // Asterisk drops the digits pressed while no command runs (capture
        // `gather-flite-barge-in.txt`: a digit between two commands is never reported), so
        // there is nothing held to drop; `NOOP` keeps the order (a listen still in flight
        // replies first).
        ChannelOp::FlushDigits => AgiCommand::verbatim("NOOP"),
        // A Dial needs the dial strings of the configuration: see [`dial_plan`].
        ChannelOp::Bridge(_) => {
            return Plan::Refuse("a Dial is planned with its dial strings (dial_plan)".into())
        }
        ChannelOp::Record(rec) => return record_plan(rec),
        // Both directions, mixed, in the background (capture `record-file.txt`: the app
        // returns at once); the format follows the extension, and only wav is written.
        ChannelOp::StartSessionRecording { path } => {
            if !path.ends_with(".wav") {
                return Plan::Refuse(format!(
                    "not supported yet on Asterisk: Record recordSession into {path:?} (MixMonitor writes wav here, no mp3)"
                ));
            }
            AgiCommand::exec("MixMonitor", &app_arg(path))
        }
    };
    match built {
        Ok(cmd) => Plan::Commands(vec![cmd]),
        Err(e) => Plan::Refuse(format!("cannot build the AGI command: {e}")),
    }
}

/// Samples per second of Asterisk's `wav` format (8 kHz, 16-bit mono): `RECORD FILE`'s
/// `endpos` is in these.
pub const WAV_RATE: u64 = 8000;

/// How close to `maxLength` a `(timeout)` must come to count as the limit (see
/// [`record_report`]).
pub const MAX_LENGTH_MARGIN: Duration = Duration::from_millis(500);

/// A plain Record (SPEC §12.2) as `RECORD FILE` (capture `record-file.txt`): the file
/// without its extension (Asterisk adds `.wav`), the finish keys as escape digits,
/// `maxLength` as the timeout in ms, `playBeep` as `BEEP`, the silence `timeout` as
/// `s=<whole seconds, rounded up>`. Asterisk's `wav` is the only format: it has no mp3
/// writer (mp3 is refused by name; the engine asks for it only when `[record] mp3` says
/// the switch can).
pub fn record_plan(rec: &RecordCaller) -> Plan {
    if rec.format != RecordFormat::Wav {
        return Plan::Refuse(
            "not supported yet on Asterisk: Record in mp3 (Asterisk writes no mp3)".into(),
        );
    }
    let Some(name) = rec.path.strip_suffix(".wav").filter(|n| !n.is_empty()) else {
        return Plan::Refuse(format!("Record into {:?}: not a .wav path", rec.path));
    };
    if !rec
        .finish_keys
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D'))
    {
        return Plan::Refuse(format!(
            "Record finishOnKey {:?}: only DTMF keys can end a RECORD FILE",
            rec.finish_keys
        ));
    }
    let timeout_ms = i64::try_from(rec.max_length.as_millis().max(1000)).unwrap_or(i64::MAX);
    let silence = (!rec.silence_timeout.is_zero())
        .then(|| rec.silence_timeout.as_millis().div_ceil(1000) as u64);
    match AgiCommand::record_file(name, "wav", &rec.finish_keys, timeout_ms, rec.beep, silence) {
        Ok(cmd) => Plan::Commands(vec![cmd]),
        Err(e) => Plan::Refuse(format!("cannot build the AGI command: {e}")),
    }
}

/// `RECORD FILE`'s reply as the engine's [`RecordReport`]. `(dtmf)`: the key
/// (`result=` its ASCII code). `(hangup)`/`result=-1`: [`RecordEndedBy::Other`] (the
/// engine knows the channel went down). `(timeout)` is **both** the silence and the
/// length limit — Asterisk does not tell them apart — so it is read from the time the
/// command took (`elapsed`, measured by the driver): at least `maxLength` minus
/// [`MAX_LENGTH_MARGIN`] is the limit, less is silence (only possible when silence
/// detection was asked for). A silence that ends in the last half second before
/// `maxLength` is therefore reported as the limit. The duration is `endpos` (samples of
/// the 8 kHz file, after Asterisk cut the trailing silence) when given, else `elapsed`.
pub fn record_report(reply: &Reply, elapsed: Duration, asked: &RecordCaller) -> RecordReport {
    let endpos = reply
        .text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("endpos="))
        .and_then(|n| n.parse::<u64>().ok());
    let duration = endpos.map_or(elapsed, |n| Duration::from_millis(n * 1000 / WAV_RATE));
    let ended_by = if reply.text.contains("(dtmf)") {
        digit(reply).map_or(RecordEndedBy::Other, RecordEndedBy::Key)
    } else if reply.text.contains("(timeout)")
        && !asked.silence_timeout.is_zero()
        && elapsed + MAX_LENGTH_MARGIN < asked.max_length
    {
        RecordEndedBy::Silence
    } else {
        RecordEndedBy::Other
    };
    let ended_at_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    RecordReport {
        ended_by,
        duration,
        ended_at_ms: i64::try_from(ended_at_ms).ok(),
    }
}

/// A Dial's legs as one `Dial()` (SPEC §11; captures `dial-*.txt`): every destination at
/// once (`&`), the ring window in whole seconds, and options `g` (the AGI goes on after
/// the callee hangs up: `Dial` returns 0, not -1) and `L(<ms>)` for `timeLimit` (counted
/// from the callee's answer by Asterisk's bridge). `callerId`/`callerName` are set on the
/// caller's channel first (`CALLERID(num)`/`(name)`), which the outgoing legs take; the
/// call's own record keeps the caller's number read at the start.
///
/// The Dial's options that act on the callee:
/// - `hangupOnStar` → `H`: the caller's `*` (features.conf's `disconnect`, `*` by
///   default) ends the bridge and the callee's channel; with `g` the caller goes on with
///   the document. The `*` itself is never reported (FastAGI is blocked in `Dial()`), and
///   what the caller's channel says afterwards (DIALSTATUS ANSWER, HANGUPCAUSE 16, empty
///   hangupsource; seen live) is what a callee hanging up leaves too, so the callee's CDR
///   says `Callee` where FreeSWITCH says `Caller`.
/// - `sendDigits` → `D(<digits>)` after the callee answers, `D(::<digits>)` on its early
///   media (`sendOnPreanswer`), when every leg has the same; `w` is Asterisk's half-second
///   pause too. Legs whose after-answer digits differ get them from the shipped
///   dialplan's `U()` routine ([`DIAL_ANSWERED_ROUTINE`]) on the leg that answered; early
///   digits that differ between legs are refused by name (`D()` is one for all and no
///   routine runs on a callee's early media).
/// - `sipHeaders` → `SET VARIABLE __SIPADDHEADER<n> "X-VH-<name>: <value>"` on the caller
///   before the Dial (what chan_sip's `SIPAddHeader` does): the `__` makes the callee
///   channels inherit it and chan_sip puts every `SIPADDHEADER*` variable on the INVITE.
///   The slots [`SIP_HEADER_SLOTS`] are all rewritten before every Dial once
///   `clear_headers` is set (a previous Dial set some), so headers never leak to the next Dial.
///   A leg's own headers, when the legs' differ, are added on that callee's channel by
///   the pre-dial routine `b()` ([`DIAL_LEG_ROUTINE`], `SIPADDHEADER61…70`).
/// - `confirmSound`/`confirmKey` → the `U()` routine plays the media to the callee that
///   answered (no key: then bridges it) or plays it again and again until the key; a
///   callee that never presses it is dropped once its channel is as old as the ring
///   timeout (`GOSUB_RESULT=ABORT`, capture `dial-confirm-unpressed.txt`), which is what
///   FreeSWITCH's `group_confirm` does at the originate timeout — the Dial then reads as
///   not answered (no-answer). One difference: Asterisk's race is over at the first
///   answer (the other legs are hung up before the routine runs), where FreeSWITCH keeps
///   the others ringing while one is asked.
///
/// The routines (`dialplan/asterisk/extensions.conf`) take their data from inherited
/// caller variables `voxbridge_dial_*` (listed in that file); each callee finds its leg by its own
/// `${DIALEDPEERNUMBER}` (capture `dial-legs-differ.txt`), and the answering routine marks
/// the outcome on the caller in `SHARED(voxbridge_dial)` ([`DIAL_MARK`]): `bridged` or
/// `unconfirmed`. Values go through `SET VARIABLE`, never through `Dial()`'s option
/// parsing, so a header value may hold commas, parentheses or `${…}` (kept verbatim).
///
/// `digitsMatch` and `digitsMatchBLeg` change nothing here: FastAGI hears no digit while
/// `Dial()` runs, so the driver hears them as AMI events (`super::manager`) and refuses
/// them by name when AMI is off.
///
/// Refused by name on Asterisk: `dialMusic` as a document (`m()` plays a music-on-hold
/// class from musiconhold.conf, not media voxbridge fetched per call; a class per call
/// needs a realtime backend or a reload of every class per Dial: docs/dial.md).
pub fn dial_plan(bridge: &Bridge, setup: &DialSetup<'_>) -> Plan {
    let refuse = |what: &str| Plan::Refuse(format!("not supported yet on Asterisk: Dial {what}"));
    if bridge.music.is_some() {
        return refuse("dialMusic (other than real)");
    }
    if bridge.legs.is_empty() {
        return Plan::Refuse("a Dial without destinations".into());
    }
    let mut dests = Vec::new();
    for leg in &bridge.legs {
        match dial_destination(&leg.target, setup.number_template) {
            Ok(d) => dests.push(d),
            Err(why) => return Plan::Refuse(why),
        }
    }
    for leg in &bridge.legs {
        if let Some(digits) = &leg.send_digits {
            if digits.is_empty()
                || !digits
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D' | 'w' | 'W'))
            {
                return Plan::Refuse(format!(
                    "Dial sendDigits {digits:?}: only DTMF keys and w/W pauses can be sent"
                ));
            }
        }
    }
    let first = &bridge.legs[0];
    let digits_agree = bridge.legs.iter().all(|l| {
        l.send_digits == first.send_digits && l.send_on_preanswer == first.send_on_preanswer
    });
    if !digits_agree
        && bridge
            .legs
            .iter()
            .any(|l| l.send_on_preanswer && l.send_digits.is_some())
    {
        return refuse(
            "sendDigits with sendOnPreanswer that differ between legs (Dial's D() is one for all)",
        );
    }
    let headers_agree = bridge
        .legs
        .iter()
        .all(|l| l.sip_headers == first.sip_headers);
    let per_leg_headers = !headers_agree;
    let per_leg_digits = !digits_agree;
    let answer_routine = dial_answer_routine(bridge);
    if per_leg_headers || per_leg_digits {
        // Two legs to one destination would find the same leg's data.
        for (i, a) in bridge.legs.iter().enumerate() {
            for (j, b) in bridge.legs.iter().enumerate().skip(i + 1) {
                if dests[i] == dests[j]
                    && (a.sip_headers != b.sip_headers || a.send_digits != b.send_digits)
                {
                    return refuse(&format!(
                        "legs {} and {} to the same destination with different sipHeaders/sendDigits",
                        i + 1,
                        j + 1
                    ));
                }
            }
        }
    }
    let common: Vec<String> = bridge
        .sip_headers
        .iter()
        .chain(if per_leg_headers {
            [].iter()
        } else {
            first.sip_headers.iter()
        })
        .map(|(k, v)| format!("X-VH-{k}: {v}"))
        .collect();
    if common.len() > SIP_HEADER_SLOTS.len()
        || bridge
            .legs
            .iter()
            .any(|l| per_leg_headers && l.sip_headers.len() > LEG_HEADER_SLOTS)
    {
        return refuse(&format!(
            "with more than {} sipHeaders",
            SIP_HEADER_SLOTS.len()
        ));
    }
    let confirm = match &bridge.confirm {
        None => None,
        Some(c) => {
            if let Some(key) = c.key {
                if !(key.is_ascii_digit() || matches!(key, '*' | '#' | 'A'..='D')) {
                    return Plan::Refuse(format!("Dial confirmKey {key:?}: not a DTMF key"));
                }
            }
            match confirm_media_names(&c.media, &setup.fetched_media) {
                Ok(names) => Some((names, c.key)),
                Err(why) => return Plan::Refuse(why),
            }
        }
    };
    let mut options = String::from("g");
    if bridge.hangup_on_star {
        options.push('H');
    }
    if digits_agree {
        if let Some(digits) = &first.send_digits {
            if first.send_on_preanswer {
                options.push_str(&format!("D(::{digits})"));
            } else {
                options.push_str(&format!("D({digits})"));
            }
        }
    }
    if per_leg_headers {
        options.push_str(&format!("b({DIAL_LEG_ROUTINE}^s^1)"));
    }
    if answer_routine {
        options.push_str(&format!("U({DIAL_ANSWERED_ROUTINE})"));
    }

    let mut vars: Vec<(String, String)> = Vec::new();
    if let Some(number) = &bridge.caller_id {
        vars.push(("CALLERID(num)".into(), number.clone()));
    }
    if let Some(name) = &bridge.caller_name {
        vars.push(("CALLERID(name)".into(), name.clone()));
    }
    if setup.clear_headers || !common.is_empty() {
        for (i, slot) in SIP_HEADER_SLOTS.iter().enumerate() {
            let value = common.get(i).cloned().unwrap_or_default();
            vars.push((slot.to_string(), value));
        }
    }
    if per_leg_headers || answer_routine {
        vars.push((DIAL_MARK.into(), String::new()));
        vars.push((
            "__voxbridge_dial_caller".into(),
            setup.caller_channel.into(),
        ));
        vars.push((
            "__voxbridge_dial_legs".into(),
            bridge.legs.len().to_string(),
        ));
        for (i, (leg, dest)) in bridge.legs.iter().zip(&dests).enumerate() {
            let n = i + 1;
            vars.push((
                format!("__voxbridge_dial_leg{n}"),
                dialed_peer_number(dest).to_string(),
            ));
            let own: &[(String, String)] = if per_leg_headers {
                &leg.sip_headers
            } else {
                &[]
            };
            vars.push((
                format!("__voxbridge_dial_leg{n}_headers"),
                own.len().to_string(),
            ));
            for (j, (k, v)) in own.iter().enumerate() {
                vars.push((
                    format!("__voxbridge_dial_leg{n}_h{}", j + 1),
                    format!("X-VH-{k}: {v}"),
                ));
            }
            let digits = match (&leg.send_digits, per_leg_digits) {
                (Some(d), true) if !leg.send_on_preanswer => d.clone(),
                _ => String::new(),
            };
            vars.push((format!("__voxbridge_dial_leg{n}_digits"), digits));
        }
        let (mode, media, key) = match &confirm {
            None => ("", String::new(), String::new()),
            Some((names, None)) => ("play", names.join("&"), String::new()),
            Some((names, Some(k))) => ("key", names.join("&"), k.to_string()),
        };
        vars.push(("__voxbridge_dial_confirm".into(), mode.into()));
        vars.push(("__voxbridge_dial_confirm_media".into(), media));
        vars.push(("__voxbridge_dial_confirm_key".into(), key));
        vars.push((
            "__voxbridge_dial_ring".into(),
            bridge.ring_timeout.as_secs().max(1).to_string(),
        ));
    }
    // Cleared so the driver's ARI watch sees only this Dial's answer.
    vars.push(("DIALEDPEERNUMBER".into(), String::new()));

    let mut cmds = Vec::new();
    for (name, value) in &vars {
        match AgiCommand::set_variable(name, value) {
            Ok(c) => cmds.push(c),
            Err(e) => return Plan::Refuse(format!("Dial: cannot set {name}: {e}")),
        }
    }
    let ring = bridge.ring_timeout.as_secs().max(1);
    let limit_ms = bridge.time_limit.as_millis().max(1000);
    match AgiCommand::exec(
        "Dial",
        &format!("{},{ring},{options}L({limit_ms})", dests.join("&")),
    ) {
        Ok(c) => cmds.push(c),
        Err(e) => return Plan::Refuse(format!("cannot build the Dial's AGI command: {e}")),
    }
    Plan::Commands(cmds)
}

/// What a Dial's plan needs from the driver besides the Dial.
#[derive(Clone, Debug, Default)]
pub struct DialSetup<'a> {
    /// `[asterisk] dial_number_template` (`{number}` is the `<Number>`).
    pub number_template: &'a str,
    /// An earlier Dial of the call set `sipHeaders`: rewrite every slot.
    pub clear_headers: bool,
    /// The caller's channel name (`agi_channel`): where the answering routine marks the
    /// outcome ([`DIAL_MARK`]).
    pub caller_channel: &'a str,
    /// http(s) media of the `confirmSound` document, fetched by the driver into its
    /// media cache: URL → local name for `Playback` ([`super::media`]). A URL not in it
    /// could not be fetched and is left out (logged by the driver).
    pub fetched_media: std::collections::HashMap<String, String>,
}

/// The shipped dialplan's pre-dial routine, run by `b()` on every callee channel before
/// its INVITE: adds that leg's own headers (`dialplan/asterisk/extensions.conf`).
pub const DIAL_LEG_ROUTINE: &str = "voxbridge-dial-leg";

/// The shipped dialplan's routine run by `U()` on the callee that answered, before the
/// bridge: the leg's own digits and the confirmation.
pub const DIAL_ANSWERED_ROUTINE: &str = "voxbridge-dial-answered";

/// The caller's mark of a Dial's outcome, written by [`DIAL_ANSWERED_ROUTINE`]:
/// [`DIAL_BRIDGED`] or [`DIAL_UNCONFIRMED`] (empty before). A Dial with that routine is
/// answered when this says bridged — `DIALEDPEERNUMBER` is set at the callee's answer,
/// before the routine (capture `dial-confirm-key.txt`) — and one whose callee never
/// confirmed returns DIALSTATUS ANSWER all the same (`dial-confirm-unpressed.txt`).
pub const DIAL_MARK: &str = "SHARED(voxbridge_dial)";
pub const DIAL_BRIDGED: &str = "bridged";
pub const DIAL_UNCONFIRMED: &str = "unconfirmed";

/// A leg's own headers fit `SIPADDHEADER61…70`.
pub const LEG_HEADER_SLOTS: usize = 10;

/// Whether the Dial runs [`DIAL_ANSWERED_ROUTINE`] (its answer is then the routine's
/// [`DIAL_MARK`], not `DIALEDPEERNUMBER`).
pub fn dial_answer_routine(bridge: &Bridge) -> bool {
    let first = bridge.legs.first();
    bridge.confirm.is_some()
        || bridge.legs.iter().any(|l| {
            first.is_some_and(|f| {
                l.send_digits != f.send_digits || l.send_on_preanswer != f.send_on_preanswer
            })
        })
}

/// The cause of a Dial whose answering routine ran but did not bridge the callee that
/// answered (`None`: it did, or no callee answered — DIALSTATUS says why then): never
/// confirmed ([`DIAL_UNCONFIRMED`]) → NO_ANSWER, as FreeSWITCH's `group_confirm` ends
/// at the ring timeout; no mark at all (the caller left while the callee was asked) →
/// ORIGINATOR_CANCEL.
pub fn dial_routine_not_bridged(status: &str, mark: Option<&str>) -> Option<HangupCause> {
    if status.trim() != "ANSWER" {
        return None;
    }
    match mark.map(str::trim) {
        Some(DIAL_BRIDGED) => None,
        Some(DIAL_UNCONFIRMED) => Some(HangupCause::NO_ANSWER),
        _ => Some(HangupCause::ORIGINATOR_CANCEL),
    }
}

/// The http(s) URLs of a Dial's `confirmSound` media, which the driver fetches first.
pub fn confirm_media_urls(bridge: &Bridge) -> Vec<String> {
    bridge
        .confirm
        .iter()
        .flat_map(|c| &c.media)
        .filter_map(|item| match item {
            MediaItem::Play { url } => {
                let lower = url.to_ascii_lowercase();
                (lower.starts_with("http://") || lower.starts_with("https://")).then(|| url.clone())
            }
            MediaItem::Silence { .. } => None,
        })
        .collect()
}

/// The confirmation media as `Playback`/`Read` names: `file://` paths without their
/// extension, http(s) media by the local name the driver fetched it to (left out when
/// the fetch failed), a Wait as that many seconds of the core sound `silence/1`
/// (rounded up), nothing usable as one second of it. The names are `&`-joined into one
/// application argument, so a name holding `&`, `,`, quotes, parentheses, `^`, `|`, `$`
/// or a line break is refused.
pub fn confirm_media_names(
    items: &[MediaItem],
    fetched: &std::collections::HashMap<String, String>,
) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for item in items {
        match item {
            MediaItem::Play { url } => {
                let lower = url.to_ascii_lowercase();
                let name = if lower.starts_with("http://") || lower.starts_with("https://") {
                    match fetched.get(url) {
                        Some(local) => local.clone(),
                        None => continue,
                    }
                } else {
                    playback_name(url)?
                };
                if name.chars().any(|c| {
                    matches!(
                        c,
                        '&' | ',' | '"' | '\'' | '(' | ')' | '^' | '|' | '$' | '\\'
                    ) || c.is_control()
                }) {
                    return Err(format!(
                        "Dial confirmSound media {url:?}: its file name has characters Asterisk's Read() would split on"
                    ));
                }
                names.push(name);
            }
            MediaItem::Silence { duration } => {
                let secs = duration.as_millis().div_ceil(1000).max(1);
                names.extend((0..secs).map(|_| "silence/1".to_string()));
            }
        }
    }
    if names.is_empty() {
        names.push("silence/1".into());
    }
    Ok(names)
}

/// The caller's variables chan_sip turns into INVITE headers for `sipHeaders` (inherited
/// by the callee channels: `__`). Numbered from 51 so a dialplan's own `SIPAddHeader`
/// (which counts from 01) is left alone.
pub const SIP_HEADER_SLOTS: [&str; 10] = [
    "__SIPADDHEADER51",
    "__SIPADDHEADER52",
    "__SIPADDHEADER53",
    "__SIPADDHEADER54",
    "__SIPADDHEADER55",
    "__SIPADDHEADER56",
    "__SIPADDHEADER57",
    "__SIPADDHEADER58",
    "__SIPADDHEADER59",
    "__SIPADDHEADER60",
];

/// The `Dial()` destination of a target: a `<Number>` through the template, a `<User>`
/// `sip:user@host[:port]` as `SIP/user@host[:port]`. Characters that mean something to
/// `Dial()` (`&`, `,`, `(`, `)`, `|`, quotes, spaces) are refused.
pub fn dial_destination(target: &DialTarget, number_template: &str) -> Result<String, String> {
    let dest = match target {
        DialTarget::Number(n) => number_template.replace("{number}", n),
        DialTarget::User(uri) => {
            let rest = uri
                .strip_prefix("sip:")
                .or_else(|| uri.strip_prefix("sips:"))
                .unwrap_or(uri);
            format!("SIP/{rest}")
        }
    };
    if dest
        .chars()
        .any(|c| matches!(c, '&' | ',' | '(' | ')' | '|' | '"' | '\\' | '\'') || c.is_whitespace())
    {
        return Err(format!(
            "Dial destination {dest:?} has characters Dial() would split on"
        ));
    }
    Ok(dest)
}

/// The part of a destination `Dial()` reports as `DIALEDPEERNUMBER` (what follows the
/// technology: `SIP/7002@self` → `7002@self`).
pub fn dialed_peer_number(destination: &str) -> &str {
    destination
        .split_once('/')
        .map_or(destination, |(_, rest)| rest)
}

/// `DIALSTATUS` (with the caller's `HANGUPCAUSE` after `Dial`, which is the callee's) as
/// the cause of a Dial that bridged no one. BUSY → USER_BUSY, NOANSWER → NO_ANSWER,
/// CANCEL → ORIGINATOR_CANCEL, CONGESTION → the cause if one came, else
/// NORMAL_CIRCUIT_CONGESTION; CHANUNAVAIL and anything else → the cause if one came, else
/// DESTINATION_OUT_OF_ORDER (the Dial failed).
pub fn dial_failure_cause(status: &str, cause: Option<&str>) -> HangupCause {
    let given = cause
        .map(str::trim)
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|c| *c != 0)
        .map(|c| HangupCause::parse_switch(&c.to_string()));
    match status.trim() {
        "BUSY" => HangupCause::USER_BUSY,
        "NOANSWER" => HangupCause::NO_ANSWER,
        "CANCEL" => HangupCause::ORIGINATOR_CANCEL,
        "CONGESTION" => given.unwrap_or(HangupCause(34)),
        _ => given.unwrap_or(HangupCause::DESTINATION_OUT_OF_ORDER),
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n', '\0'], " ")
}

/// The name `Playback` is given for a document URL: `file://` paths without their audio
/// extension (Asterisk picks the format itself). http(s) and FreeSWITCH's own schemes are
/// refused with the reason.
pub fn playback_name(url: &str) -> Result<String, String> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Err(format!(
            "Play {url}: http(s) media is fetched into the media cache first (the driver's job)"
        ));
    }
    let Some(path) = url.strip_prefix("file://") else {
        return Err(format!(
            "Play {url}: only file:// media can be played on Asterisk"
        ));
    };
    let path = percent_decode(path);
    let stem = match path.rsplit_once('.') {
        Some((stem, ext))
            if !stem.is_empty()
                && !ext.contains('/')
                && matches!(
                    ext.to_ascii_lowercase().as_str(),
                    "wav" | "gsm" | "ulaw" | "alaw" | "sln" | "slin" | "g722" | "pcm" | "mp3"
                ) =>
        {
            stem.to_string()
        }
        _ => path,
    };
    if stem.is_empty() {
        return Err(format!("Play {url}: no file named"));
    }
    Ok(stem)
}

/// `%XX` escapes decoded; anything else (a lone `%`) kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How a command's reply reads to the engine. `result=-1` is not decided here: it is what
/// an application returns when the channel hung up under it (the caller's loop waits a
/// moment for the `HANGUP` notice before taking it as a failure).
pub fn outcome(reply: &Reply) -> OpOutcome {
    match (reply.code, reply.result) {
        (200, Some(r)) if r >= 0 => OpOutcome::Completed,
        (200, Some(-2)) => OpOutcome::Refused(format!(
            "the switch has no such application ({})",
            reply.text
        )),
        (200, _) => OpOutcome::Failed(format!("the application failed ({})", reply.text)),
        _ => OpOutcome::Refused(reply.text.clone()),
    }
}

/// Who ended the call, from `${CHANNEL(hangupsource)}` read after `HANGUP`: the channel's
/// own name when its far end (the caller) hung up, `dialplan/builtin` for the `Hangup`
/// application, empty for a soft hangup (ARI, a timeout) — both the switch's doing.
pub fn hung_up_by(source: Option<&str>, channel: Option<&str>) -> HungUpBy {
    match source.map(str::trim) {
        Some(s) if channel.is_some_and(|c| c == s) => HungUpBy::Caller,
        Some("") | Some("dialplan/builtin") => HungUpBy::Switch,
        _ => HungUpBy::Unknown,
    }
}

/// `${HANGUPCAUSE}` after `HANGUP`. Asterisk reports 0 ("not defined") when the far end
/// sent a plain BYE (capture `caller-hangup-playback.txt`): that is a normal clearing.
pub fn hangup_cause(value: Option<&str>) -> HangupCause {
    match value.map(str::trim).and_then(|v| v.parse::<u16>().ok()) {
        Some(0) | None => HangupCause::NORMAL_CLEARING,
        Some(code) => HangupCause::parse_switch(&code.to_string()),
    }
}

/// The SIP final response chan_sip sends when it ends an unanswered inbound call with
/// `cause` (`hangup_cause2sip` in chan_sip.c); causes it does not map get **603
/// Declined**. Notably CALL_REJECTED (21) gets **403 Forbidden** (capture `rejected.txt`)
/// and NORMAL_CLEARING (16) 603. chan_sip has no documented way to send 603 for cause
/// 21, so voxbridge records CALL_REJECTED / 21 and the caller hears 403 (README, Asterisk).
pub fn chan_sip_refuse_code(cause: HangupCause) -> u16 {
    match cause.q850() {
        1 | 3 | 26 => 404,
        17 => 486,
        18 => 408,
        19 | 20 => 480,
        21 => 403,
        22 => 410,
        27 => 502,
        28 => 484,
        29 => 501,
        31 => 480,
        34 | 38 | 41 | 42 | 44 | 47 => 503,
        58 | 65 | 88 => 488,
        102 => 504,
        _ => 603,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::model::Voice;
    use std::time::Duration;

    fn line(op: ChannelOp) -> String {
        match plan(&op) {
            Plan::Commands(c) => c
                .iter()
                .map(|c| c.line().to_string())
                .collect::<Vec<_>>()
                .join(" | "),
            Plan::Refuse(why) => format!("refused: {why}"),
        }
    }

    #[test]
    fn operations_become_agi_commands() {
        assert_eq!(line(ChannelOp::Answer), "ANSWER");
        assert_eq!(line(ChannelOp::PreAnswer), "EXEC Progress");
        assert_eq!(
            line(ChannelOp::Speak {
                voice: Voice::Man,
                language: "en-US".into(),
                text: "Hi, there\nbye".into()
            }),
            r#"EXEC Flite "Hi\\, there bye""#
        );
        assert_eq!(
            line(ChannelOp::Wait {
                duration: Duration::from_millis(1500)
            }),
            r#"EXEC Wait "1.500""#
        );
        assert_eq!(
            line(ChannelOp::Hangup {
                cause: HangupCause::USER_BUSY
            }),
            r#"EXEC Hangup "17""#
        );
        assert_eq!(
            line(ChannelOp::SendDigits {
                digits: "12#".into()
            }),
            r#"EXEC SendDTMF "12#""#
        );
        assert!(line(ChannelOp::SendDigits {
            digits: "1\"x".into()
        })
        .starts_with("refused"));
        assert_eq!(
            line(ChannelOp::ArmHangup {
                after: Duration::from_secs(2),
                cause: HangupCause::USER_BUSY
            }),
            r#"SET VARIABLE voxbridge_scheduled_cause "17" | SET VARIABLE TIMEOUT(absolute) "2""#
        );
        assert_eq!(
            line(ChannelOp::CancelArmedHangups),
            r#"SET VARIABLE TIMEOUT(absolute) "0""#
        );
    }

    #[test]
    fn early_media_never_answers() {
        let play = ChannelOp::Play {
            url: "file://beep".into(),
        };
        match plan_on(&play, false) {
            Plan::Commands(c) => assert_eq!(c[0].line(), r#"EXEC Playback "beep,noanswer""#),
            other => panic!("{other:?}"),
        }
        let speak = ChannelOp::Speak {
            voice: Voice::Woman,
            language: "en-US".into(),
            text: "hi".into(),
        };
        assert!(matches!(plan_on(&speak, false), Plan::Refuse(_)));
        assert!(matches!(plan_on(&speak, true), Plan::Commands(_)));
    }

    fn setup(template: &str, clear_headers: bool) -> DialSetup<'_> {
        DialSetup {
            number_template: template,
            clear_headers,
            caller_channel: "SIP/127.0.0.1-00000003",
            fetched_media: Default::default(),
        }
    }

    #[test]
    fn a_dial_is_one_dial_app_with_every_destination_and_its_limits() {
        use crate::call::channel_op::{Bridge, BridgeLeg};
        let leg = |uuid: &str, target: DialTarget| BridgeLeg {
            uuid: uuid.into(),
            target,
            send_digits: None,
            send_on_preanswer: false,
            sip_headers: Vec::new(),
        };
        let mut b = Bridge {
            legs: vec![
                leg("u-1", DialTarget::Number("+15557654321".into())),
                leg(
                    "u-2",
                    DialTarget::User("sip:alice@pbx.example.com:5080".into()),
                ),
            ],
            ring_timeout: Duration::from_secs(25),
            time_limit: Duration::from_secs(3),
            hangup_on_star: false,
            caller_id: Some("15550001111".into()),
            caller_name: None,
            sip_headers: Vec::new(),
            callee_digit_patterns: Vec::new(),
            caller_digits_watched: false,
            confirm: None,
            music: None,
        };
        match dial_plan(&b, &setup("SIP/{number}@trunk", false)) {
            Plan::Commands(c) => assert_eq!(
                c.iter().map(|c| c.line()).collect::<Vec<_>>(),
                [
                    r#"SET VARIABLE CALLERID(num) "15550001111""#,
                    r#"SET VARIABLE DIALEDPEERNUMBER """#,
                    r#"EXEC Dial "SIP/+15557654321@trunk&SIP/alice@pbx.example.com:5080,25,gL(3000)""#,
                ]
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(dialed_peer_number("SIP/7002@self"), "7002@self");
        // Digits are watched over AMI (the driver): the same Dial() either way.
        let mut watched = b.clone();
        watched.caller_digits_watched = true;
        watched.callee_digit_patterns = vec!["12".into()];
        assert_eq!(
            dial_plan(&watched, &setup("SIP/{number}", false)),
            dial_plan(&b, &setup("SIP/{number}", false))
        );
        b.hangup_on_star = true;
        b.caller_id = None;
        b.sip_headers = vec![("a".into(), "1 2".into())];
        for l in &mut b.legs {
            l.send_digits = Some("ww12#".into());
            l.sip_headers = vec![("u".into(), "9".into())];
        }
        match dial_plan(&b, &setup("SIP/{number}", false)) {
            Plan::Commands(c) => {
                let lines: Vec<_> = c.iter().map(|c| c.line().to_string()).collect();
                assert_eq!(lines[0], r#"SET VARIABLE __SIPADDHEADER51 "X-VH-a: 1 2""#);
                assert_eq!(lines[1], r#"SET VARIABLE __SIPADDHEADER52 "X-VH-u: 9""#);
                assert_eq!(lines[2], r#"SET VARIABLE __SIPADDHEADER53 """#);
                assert_eq!(lines.len(), 12);
                assert_eq!(
                    lines[11],
                    r#"EXEC Dial "SIP/+15557654321&SIP/alice@pbx.example.com:5080,25,gHD(ww12#)L(3000)""#
                );
            }
            other => panic!("{other:?}"),
        }
        b.legs[0].send_on_preanswer = true;
        assert!(
            matches!(dial_plan(&b, &setup("SIP/{number}", false)), Plan::Refuse(r) if r.contains("sendDigits"))
        );
        for l in &mut b.legs {
            l.send_on_preanswer = true;
        }
        b.sip_headers.clear();
        for l in &mut b.legs {
            l.sip_headers.clear();
        }
        match dial_plan(&b, &setup("SIP/{number}", true)) {
            Plan::Commands(c) => {
                let lines: Vec<_> = c.iter().map(|c| c.line().to_string()).collect();
                assert_eq!(
                    lines[0], r#"SET VARIABLE __SIPADDHEADER51 """#,
                    "a previous Dial's headers are cleared"
                );
                assert!(lines.last().unwrap().contains(",25,gHD(::ww12#)L(3000)"));
            }
            other => panic!("{other:?}"),
        }
        assert!(dial_destination(&DialTarget::Number("1&2".into()), "SIP/{number}").is_err());
        assert_eq!(
            dial_failure_cause("BUSY", Some("17")),
            HangupCause::USER_BUSY
        );
        assert_eq!(
            dial_failure_cause("NOANSWER", Some("0")),
            HangupCause::NO_ANSWER
        );
        assert_eq!(
            dial_failure_cause("CANCEL", None),
            HangupCause::ORIGINATOR_CANCEL
        );
        assert_eq!(
            dial_failure_cause("CHANUNAVAIL", Some("0")),
            HangupCause::DESTINATION_OUT_OF_ORDER
        );
    }

    fn two_legs() -> Bridge {
        use crate::call::channel_op::BridgeLeg;
        let leg = |uuid: &str, n: &str| BridgeLeg {
            uuid: uuid.into(),
            target: DialTarget::Number(n.into()),
            send_digits: None,
            send_on_preanswer: false,
            sip_headers: Vec::new(),
        };
        Bridge {
            legs: vec![leg("u-1", "7004"), leg("u-2", "7008")],
            ring_timeout: Duration::from_secs(10),
            time_limit: Duration::from_secs(3),
            hangup_on_star: false,
            caller_id: None,
            caller_name: None,
            sip_headers: vec![("All".into(), "x".into())],
            callee_digit_patterns: Vec::new(),
            caller_digits_watched: false,
            confirm: None,
            music: None,
        }
    }

    fn lines(plan: Plan) -> Vec<String> {
        match plan {
            Plan::Commands(c) => c.iter().map(|c| c.line().to_string()).collect(),
            Plan::Refuse(why) => panic!("refused: {why}"),
        }
    }

    /// Capture `dial-legs-differ.txt` is this plan, sent by hand.
    #[test]
    fn legs_that_differ_get_their_own_headers_and_digits_from_the_dialplan_routines() {
        let mut b = two_legs();
        b.legs[0].sip_headers = vec![("Leg".into(), "four, (ringing)".into())];
        b.legs[0].send_digits = Some("4".into());
        b.legs[1].sip_headers = vec![
            ("Leg".into(), "two".into()),
            ("Only".into(), "${x}$[1+1]".into()),
        ];
        b.legs[1].send_digits = Some("55".into());
        let l = lines(dial_plan(&b, &setup("SIP/{number}@self", false)));
        let at = |prefix: &str| {
            l.iter()
                .find(|c| c.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix} in {l:#?}"))
                .as_str()
        };
        // The Dial's own header stays one for all; the legs' own are the routine's.
        assert_eq!(
            at("SET VARIABLE __SIPADDHEADER51 "),
            r#"SET VARIABLE __SIPADDHEADER51 "X-VH-All: x""#
        );
        assert_eq!(
            at("SET VARIABLE __SIPADDHEADER52 "),
            r#"SET VARIABLE __SIPADDHEADER52 """#
        );
        assert_eq!(
            at("SET VARIABLE SHARED"),
            r#"SET VARIABLE SHARED(voxbridge_dial) """#
        );
        assert_eq!(
            at("SET VARIABLE __voxbridge_dial_caller "),
            r#"SET VARIABLE __voxbridge_dial_caller "SIP/127.0.0.1-00000003""#
        );
        assert_eq!(
            at("SET VARIABLE __voxbridge_dial_legs "),
            r#"SET VARIABLE __voxbridge_dial_legs "2""#
        );
        assert_eq!(
            at("SET VARIABLE __voxbridge_dial_leg1 "),
            r#"SET VARIABLE __voxbridge_dial_leg1 "7004@self""#
        );
        assert_eq!(
            at("SET VARIABLE __voxbridge_dial_leg1_h1 "),
            r#"SET VARIABLE __voxbridge_dial_leg1_h1 "X-VH-Leg: four, (ringing)""#
        );
        assert_eq!(
            at("SET VARIABLE __voxbridge_dial_leg2_headers "),
            r#"SET VARIABLE __voxbridge_dial_leg2_headers "2""#
        );
        assert_eq!(
            at("SET VARIABLE __voxbridge_dial_leg2_h2 "),
            r#"SET VARIABLE __voxbridge_dial_leg2_h2 "X-VH-Only: ${x}$[1+1]""#
        );
        assert_eq!(
            at("SET VARIABLE __voxbridge_dial_leg2_digits "),
            r#"SET VARIABLE __voxbridge_dial_leg2_digits "55""#
        );
        assert_eq!(
            at("SET VARIABLE __voxbridge_dial_confirm "),
            r#"SET VARIABLE __voxbridge_dial_confirm """#
        );
        assert_eq!(
            l.last().unwrap(),
            r#"EXEC Dial "SIP/7004@self&SIP/7008@self,10,gb(voxbridge-dial-leg^s^1)U(voxbridge-dial-answered)L(3000)""#
        );
        assert!(dial_answer_routine(&b));

        // Only the headers differ: b() alone, digits stay D() for all.
        let mut h = two_legs();
        h.legs[1].sip_headers = vec![("Only".into(), "here".into())];
        for leg in &mut h.legs {
            leg.send_digits = Some("1".into());
        }
        let l = lines(dial_plan(&h, &setup("SIP/{number}", false)));
        assert!(
            l.last()
                .unwrap()
                .ends_with(r#",10,gD(1)b(voxbridge-dial-leg^s^1)L(3000)""#),
            "{l:?}"
        );
        assert!(!dial_answer_routine(&h));
        assert!(l
            .iter()
            .any(|c| c == r#"SET VARIABLE __voxbridge_dial_leg1_headers "0""#));

        // Early digits that differ cannot be per leg; two legs to one destination with
        // different data cannot be told apart by the routine.
        let mut early = two_legs();
        early.legs[0].send_digits = Some("1".into());
        early.legs[0].send_on_preanswer = true;
        assert!(matches!(dial_plan(&early, &setup("SIP/{number}", false)),
            Plan::Refuse(r) if r.contains("sendOnPreanswer")));
        let mut same = two_legs();
        same.legs[1].target = DialTarget::Number("7004".into());
        same.legs[1].send_digits = Some("2".into());
        assert!(matches!(dial_plan(&same, &setup("SIP/{number}", false)),
            Plan::Refuse(r) if r.contains("same destination")));
    }

    /// Captures `dial-confirm-key.txt` / `dial-confirm-unpressed.txt` are this plan.
    #[test]
    fn confirm_runs_the_answering_routine_with_its_media_key_and_ring_window() {
        use crate::call::channel_op::Confirm;
        let mut b = two_legs();
        b.legs.truncate(1);
        b.legs[0].target = DialTarget::Number("7007".into());
        b.sip_headers.clear();
        b.confirm = Some(Confirm {
            media: vec![
                MediaItem::Play {
                    url: "file:///srv/press-one.wav".into(),
                },
                MediaItem::Silence {
                    duration: Duration::from_millis(1500),
                },
                MediaItem::Play {
                    url: "https://app.test/a.wav".into(),
                },
                MediaItem::Play {
                    url: "https://app.test/gone.wav".into(),
                },
            ],
            key: Some('1'),
        });
        let mut s = setup("SIP/{number}@self", false);
        s.fetched_media
            .insert("https://app.test/a.wav".into(), "/var/cache/vb/abc".into());
        let l = lines(dial_plan(&b, &s));
        assert!(
            l.contains(&r#"SET VARIABLE __voxbridge_dial_confirm "key""#.to_string()),
            "{l:#?}"
        );
        assert!(l.contains(&r#"SET VARIABLE __voxbridge_dial_confirm_key "1""#.to_string()));
        assert!(l.contains(&r#"SET VARIABLE __voxbridge_dial_ring "10""#.to_string()));
        assert!(l.contains(
            &r#"SET VARIABLE __voxbridge_dial_confirm_media "/srv/press-one&silence/1&silence/1&/var/cache/vb/abc""#
                .to_string()
        ), "the media that could not be fetched is left out: {l:#?}");
        assert_eq!(
            l.last().unwrap(),
            r#"EXEC Dial "SIP/7007@self,10,gU(voxbridge-dial-answered)L(3000)""#
        );
        assert_eq!(confirm_media_urls(&b).len(), 2);

        let mut play = b.clone();
        play.confirm = Some(Confirm {
            media: Vec::new(),
            key: None,
        });
        let l = lines(dial_plan(&play, &setup("SIP/{number}", false)));
        assert!(l.contains(&r#"SET VARIABLE __voxbridge_dial_confirm "play""#.to_string()));
        assert!(
            l.contains(&r#"SET VARIABLE __voxbridge_dial_confirm_media "silence/1""#.to_string())
        );

        let mut bad = b.clone();
        bad.confirm = Some(Confirm {
            media: vec![MediaItem::Play {
                url: "file:///a,b.wav".into(),
            }],
            key: Some('1'),
        });
        assert!(matches!(
            dial_plan(&bad, &setup("SIP/{number}", false)),
            Plan::Refuse(_)
        ));
        bad.confirm = Some(Confirm {
            media: Vec::new(),
            key: Some('x'),
        });
        assert!(matches!(
            dial_plan(&bad, &setup("SIP/{number}", false)),
            Plan::Refuse(_)
        ));

        // What the caller's channel says after the Dial.
        assert_eq!(dial_routine_not_bridged("ANSWER", Some("bridged")), None);
        assert_eq!(
            dial_routine_not_bridged("ANSWER", Some("unconfirmed")),
            Some(HangupCause::NO_ANSWER)
        );
        assert_eq!(
            dial_routine_not_bridged("ANSWER", None),
            Some(HangupCause::ORIGINATOR_CANCEL)
        );
        assert_eq!(dial_routine_not_bridged("NOANSWER", None), None);
    }

    #[test]
    fn a_record_is_record_file_and_its_reply_tells_the_key_silence_or_the_limit() {
        let rec = RecordCaller {
            path: "/var/rec/abc.wav".into(),
            format: RecordFormat::Wav,
            beep: true,
            silence_timeout: Duration::from_millis(1500),
            max_length: Duration::from_secs(10),
            finish_keys: "#".into(),
        };
        assert_eq!(
            line(ChannelOp::Record(rec.clone())),
            r##"RECORD FILE "/var/rec/abc" wav "#" 10000 BEEP s=2"##
        );
        let plain = RecordCaller {
            beep: false,
            silence_timeout: Duration::ZERO,
            finish_keys: String::new(),
            ..rec.clone()
        };
        assert_eq!(
            line(ChannelOp::Record(plain.clone())),
            r#"RECORD FILE "/var/rec/abc" wav "" 10000"#
        );
        let mp3 = RecordCaller {
            format: RecordFormat::Mp3,
            path: "/var/rec/abc.mp3".into(),
            ..rec.clone()
        };
        assert!(line(ChannelOp::Record(mp3)).contains("not supported yet on Asterisk"));
        let bad_keys = RecordCaller {
            finish_keys: "#\"".into(),
            ..rec.clone()
        };
        assert!(line(ChannelOp::Record(bad_keys)).starts_with("refused"));
        assert_eq!(
            line(ChannelOp::StartSessionRecording {
                path: "/var/rec/a,b.wav".into()
            }),
            r#"EXEC MixMonitor "/var/rec/a\\,b.wav""#
        );
        assert!(line(ChannelOp::StartSessionRecording {
            path: "/var/rec/s.mp3".into()
        })
        .contains("not supported yet on Asterisk"));

        let r = |t: &str| match crate::agi::Message::parse(t) {
            crate::agi::Message::Reply(r) => r,
            _ => unreachable!(),
        };
        let key = record_report(
            &r("200 result=35 (dtmf) endpos=12000"),
            Duration::from_secs(2),
            &rec,
        );
        assert_eq!(key.ended_by, RecordEndedBy::Key('#'));
        assert_eq!(key.duration, Duration::from_millis(1500));
        let silence = record_report(
            &r("200 result=0 (timeout) endpos=24000"),
            Duration::from_secs(5),
            &rec,
        );
        assert_eq!(silence.ended_by, RecordEndedBy::Silence);
        assert_eq!(silence.duration, Duration::from_secs(3));
        let limit = record_report(
            &r("200 result=0 (timeout) endpos=80000"),
            Duration::from_millis(10_020),
            &rec,
        );
        assert_eq!(limit.ended_by, RecordEndedBy::Other);
        // Without silence detection a (timeout) is always the limit.
        let limit = record_report(
            &r("200 result=0 (timeout) endpos=0"),
            Duration::from_secs(3),
            &plain,
        );
        assert_eq!(limit.ended_by, RecordEndedBy::Other);
        assert_eq!(limit.duration, Duration::ZERO);
        let hangup = record_report(
            &r("200 result=-1 (hangup) endpos=4000"),
            Duration::from_secs(1),
            &rec,
        );
        assert_eq!(hangup.ended_by, RecordEndedBy::Other);
        assert_eq!(hangup.duration, Duration::from_millis(500));
    }

    #[test]
    fn playback_names() {
        assert_eq!(
            playback_name("file:///var/s/a%20b.wav").unwrap(),
            "/var/s/a b"
        );
        assert_eq!(playback_name("file://beep").unwrap(), "beep");
        assert_eq!(playback_name("file:///x.y/z").unwrap(), "/x.y/z");
        assert!(playback_name("https://x.test/a.wav")
            .unwrap_err()
            .contains("media cache"));
        assert!(playback_name("tone_stream://%(100,0,440)").is_err());
        assert_eq!(playback_name("file://50%").unwrap(), "50%");
    }

    #[test]
    fn replies_and_end_facts() {
        let r = |t: &str| match crate::agi::Message::parse(t) {
            crate::agi::Message::Reply(r) => r,
            _ => unreachable!(),
        };
        assert_eq!(outcome(&r("200 result=0")), OpOutcome::Completed);
        assert!(matches!(
            outcome(&r("200 result=-2")),
            OpOutcome::Refused(_)
        ));
        assert!(matches!(outcome(&r("200 result=-1")), OpOutcome::Failed(_)));
        assert!(matches!(
            outcome(&r("511 Command Not Permitted")),
            OpOutcome::Refused(_)
        ));
        let ch = Some("SIP/127.0.0.1-00000003");
        assert_eq!(hung_up_by(ch, ch), HungUpBy::Caller);
        assert_eq!(hung_up_by(Some("dialplan/builtin"), ch), HungUpBy::Switch);
        assert_eq!(hung_up_by(Some(""), ch), HungUpBy::Switch);
        assert_eq!(hung_up_by(None, ch), HungUpBy::Unknown);
        assert_eq!(hangup_cause(Some("0")), HangupCause::NORMAL_CLEARING);
        assert_eq!(hangup_cause(Some("17")), HangupCause::USER_BUSY);
        assert_eq!(chan_sip_refuse_code(HangupCause::CALL_REJECTED), 403);
        assert_eq!(chan_sip_refuse_code(HangupCause::USER_BUSY), 486);
        assert_eq!(chan_sip_refuse_code(HangupCause::NORMAL_CLEARING), 603);
    }
}
