//! How the engine's switch-neutral operations look on FreeSWITCH, and how FreeSWITCH's
//! replies read back as outcomes. Everything FreeSWITCH-specific about an operation is
//! here: application names and arguments, media paths, the TTS engine and voices.
//!
//! * **Play**: `http(s)://u` → `playback http_cache://u` (mod_http_cache fetches and
//!   caches it); `file:///p` → `/p` (FreeSWITCH wants a plain path; percent-escapes are
//!   decoded); `tone_stream://`, `silence_stream://` and anything else pass unchanged.
//! * **Speak**: `speak <engine>|<voice>|<text>` with the engine and voice from the
//!   `[tts]` configuration (WOMAN → slt, MAN → kal, flite by default). The language is
//!   not passed on: flite has no language selection.
//! * **Wait** is `sleep <ms>`; **SendDigits** `send_dtmf`. **Silence** (a Wait inside a
//!   Gather) is `playback silence_stream://<ms>`: a digit ends `sleep` *before* its DTMF
//!   event goes out (transcript q), whereas `playback` reports the digit first and ends
//!   only on `uuid_break` (or a `playback_terminators` key, also reported first).
//! * **ArmHangup** is `sched_hangup +<secs> <cause>` — always relative, with the `+`
//!   (reference §5); **CancelArmedHangups** `sched_cancel` without argument, which
//!   cancels all of the channel's scheduled tasks.
//! * **Hangup** is `hangup <cause>` here, but the driver sends it as `sendmsg`
//!   `call-command: hangup` with `hangup-cause: <cause>` (no application; transcript z4
//!   shows the same queueing and the same SIP codes as the app), as it sends **Answer**
//!   as `api uuid_answer`: see `writer::SwitchCommand`.
//! * **FlushDigits** is `flush_dtmf` (a Gather's first step); the engine's
//!   **Interrupt** (a Gather's barge-in) is `api uuid_break <uuid>` on the call's own
//!   socket, which stops the running prompt (`FILE PLAYED`), not the queued commands.
//! * **Who hung up**: `sip_hangup_disposition` `recv_*` is the caller, `send_*` the switch.
//! * **Outcomes**: a `-ERR …` reply to `sendmsg` (or an `Application-Response` that
//!   starts with `-ERR`) means the switch refused the application; a response that says
//!   `ERROR` or `NOT FOUND` (`FILE NOT FOUND`, `PLAYBACK ERROR`) means it ran and failed;
//!   anything else (`FILE PLAYED`, `_none_`, …) means it completed.

use crate::call::channel_op::{
    Bridge, BridgeOutcome, BridgeReport, ChannelOp, CommandFailure, Confirm, HungUpBy, MediaItem,
    OpOutcome, RecordCaller, RecordEndedBy, RecordReport, RecordingStop,
};
use crate::cause::HangupCause;
use crate::config::{DialConfig, TtsConfig};
use crate::document::model::{DialTarget, Voice};
use crate::esl::event::Event;

/// One dialplan application, as `sendmsg` `execute` carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Application {
    /// `execute-app-name`.
    pub name: &'static str,
    /// `execute-app-arg` (empty: none). It may contain newlines or `%`/`&` (Speak
    /// text), so the driver sends it as a `text/plain` body (reference §2.5), and must
    /// keep the switch from expanding `${…}` in it (`app_disable_expand_variables`).
    pub arg: String,
}

/// The application that carries out `op`.
pub fn application(op: &ChannelOp, tts: &TtsConfig, dial: &DialConfig) -> Application {
    let (name, arg) = match op {
        ChannelOp::Answer => ("answer", String::new()),
        ChannelOp::PreAnswer => ("pre_answer", String::new()),
        ChannelOp::Speak { voice, text, .. } => {
            let (engine, voice) = tts_voice(tts, *voice);
            ("speak", format!("{engine}|{voice}|{text}"))
        }
        ChannelOp::Play { url } => ("playback", playback_path(url)),
        ChannelOp::Wait { duration } => ("sleep", duration.as_millis().to_string()),
        ChannelOp::Silence { duration } => (
            "playback",
            format!("silence_stream://{}", duration.as_millis()),
        ),
        ChannelOp::SendDigits { digits } => ("send_dtmf", digits.clone()),
        ChannelOp::Hangup { cause } => ("hangup", cause.name().to_string()),
        ChannelOp::ArmHangup { after, cause } => (
            "sched_hangup",
            format!("+{} {}", after.as_secs(), cause.name()),
        ),
        ChannelOp::CancelArmedHangups => ("sched_cancel", String::new()),
        ChannelOp::Bridge(bridge) => ("bridge", dial_string(bridge, dial)),
        ChannelOp::FlushDigits => ("flush_dtmf", String::new()),
        ChannelOp::Record(r) => ("record", record_arg(r)),
        ChannelOp::StartSessionRecording { path } => ("record_session", path.clone()),
    };
    Application { name, arg }
}

/// What the caller's channel must hold before a `bridge` runs (sent as `set`
/// applications just before it, in order):
/// * `continue_on_fail=true` — without it a refused bridge (486, 603, 404) makes the
///   switch hang the caller up itself before the bridge returns (transcript j), and the
///   Dial could not go on with its action or next element;
/// * `hangup_after_bridge=false` — the caller stays when the callee hangs up (the
///   dialplan may have set it);
/// * `bridge_terminate_key` — `*` for `hangupOnStar`, else cleared, so an earlier
///   Dial's key cannot linger;
/// * `sip_ignore_remote_cause=true` — after a failed bridge mod_sofia would otherwise
///   refuse the still unanswered caller with the *callee's* SIP status
///   (`last_bridge_proto_specific_hangup_cause`): measured on the real switch, a Dial to
///   an unroutable number followed by the end of the document gave the caller 404, not
///   the 480 of NORMAL_CLEARING. The document's own cause decides the caller's SIP code.
///
/// Then, for `digitsMatchBLeg`, one `bind_digit_action` per pattern (after a
/// `clear_digit_action` when an earlier Dial of the call bound some: bindings outlive the
/// bridge) — see [`callee_digit_bindings`]; and for a `dialMusic` document
/// `ringback` / `transfer_ringback` (see [`music_vars`]), or their `unset` when an earlier
/// Dial of the call set them.
pub fn bridge_prelude(bridge: &Bridge, earlier: EarlierDials) -> Vec<Application> {
    let key = if bridge.hangup_on_star { "*" } else { "" };
    let mut apps: Vec<Application> = [
        "continue_on_fail=true".to_string(),
        "hangup_after_bridge=false".to_string(),
        "sip_ignore_remote_cause=true".to_string(),
        format!("bridge_terminate_key={key}"),
    ]
    .into_iter()
    .map(|arg| Application { name: "set", arg })
    .collect();
    if earlier.bound_callee_digits {
        apps.push(Application {
            name: "clear_digit_action",
            arg: format!("{CALLEE_DIGITS_REALM},peer"),
        });
    }
    apps.extend(callee_digit_bindings(&bridge.callee_digit_patterns));
    match &bridge.music {
        Some(items) => apps.extend(
            music_vars(items)
                .into_iter()
                .map(|arg| Application { name: "set", arg }),
        ),
        None if earlier.set_music => {
            apps.extend(["ringback", "transfer_ringback"].map(|v| Application {
                name: "unset",
                arg: v.to_string(),
            }))
        }
        None => {}
    }
    apps
}

/// What earlier Dials of the call left on the caller's channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EarlierDials {
    /// `bind_digit_action`s of a `digitsMatchBLeg`.
    pub bound_callee_digits: bool,
    /// `ringback` of a `dialMusic` document.
    pub set_music: bool,
}

/// `dialMusic` as a document: the caller's `ringback` (an unanswered caller) and
/// `transfer_ringback` (one already answered) are its media as one file string, so the
/// switch plays it to the caller instead of the callees' ringing. Measured on
/// FreeSWITCH 1.10.12 with 7008 (180, answers after 2 s): with `ringback` set the caller
/// gets early media at once (CHANNEL_PROGRESS_MEDIA 0.06 s after the bridge began, where
/// it got a plain CHANNEL_PROGRESS without), then the answer at 2 s. The switch rewinds a
/// ringback file at its end to loop it until the answer — **but a stream that cannot be
/// rewound ends the originate**: measured, `ringback=tone_stream://%(400,200,440)` or
/// `silence_stream://500` made the bridge fail NO_ANSWER after 0.6 s while 7008 still
/// rang, whereas the same in `file_string://` looped until the answer at 2 s. So the
/// music is always a `file_string://`, even of one piece. The dial string also gets
/// `ignore_early_media=true` (see [`dial_string`]): a callee's own 183 media would
/// otherwise replace the music.
pub fn music_vars(items: &[MediaItem]) -> Vec<String> {
    let media = match media_file_string(items) {
        m if m.starts_with("file_string://") => m,
        one => format!("file_string://{one}"),
    };
    vec![
        format!("ringback={media}"),
        format!("transfer_ringback={media}"),
    ]
}

/// The digit-action realm voxbridge binds the callee's patterns in.
pub const CALLEE_DIGITS_REALM: &str = "voxbridge_dial";

/// `digitsMatchBLeg` on FreeSWITCH. The callee's DTMF is an event of the B-leg only:
/// the caller's socket (`myevents`) never sees it. So the caller's channel binds each
/// pattern to the digits of its bridge **peer** —
/// `bind_digit_action voxbridge_dial,<pattern>,voxbridge_digits_match,bleg,peer` — and
/// the switch matches them. Measured on FreeSWITCH 1.10.12 (7007 presses `1234#` after
/// answering): on a match the switch queues a plain event with
/// `voxbridge_digits_match: bleg` and `digits: 1234#` on the caller's channel, which
/// reaches the socket only with `divert_events on` (sent before the first such bridge);
/// the binding's string is no `exec:`/`api:`, so nothing runs on the switch. The digit
/// machine's own rules apply: a pattern matches digits pressed with less than 1.5 s
/// between them (`bind_digit_digit_timeout`), and the digits it takes are not passed on
/// to the caller. A pattern with `X` becomes the regex `~^…$` with `\d` for each `X`.
pub fn callee_digit_bindings(patterns: &[String]) -> Vec<Application> {
    patterns
        .iter()
        .flat_map(|p| binding_strings(p))
        .map(|binding| Application {
            name: "bind_digit_action",
            arg: format!("{CALLEE_DIGITS_REALM},{binding},voxbridge_digits_match,bleg,peer"),
        })
        .collect()
}

/// Most `X`s of a callee pattern spelled out as literal bindings (10 per `X`).
pub const MAX_EXPANDED_X: usize = 2;

/// The digit-machine bindings of one callee pattern. Literal digits are matched
/// exactly; an `X` (any digit) is spelled out into the ten literal patterns, up to
/// [`MAX_EXPANDED_X`] of them (100 bindings), because the regex form `~^…\d…$` proved
/// unreliable on FreeSWITCH 1.10.12: with `12X4#` the live scenario (7007 pressing
/// `1234#`) got no match in 3 of 8 concurrent runs, with the literal `1234#` in none of
/// 8. A pattern with more `X`s keeps the regex form (docs/dial.md says so).
pub fn binding_strings(pattern: &str) -> Vec<String> {
    let xs = pattern.chars().filter(|c| matches!(c, 'X' | 'x')).count();
    if xs == 0 {
        return vec![pattern.to_string()];
    }
    if xs > MAX_EXPANDED_X {
        let body: String = pattern
            .chars()
            .map(|c| match c {
                'X' | 'x' => "\\d".to_string(),
                '*' => "\\*".to_string(),
                c => c.to_string(),
            })
            .collect();
        return vec![format!("~^{body}$")];
    }
    let mut out = vec![String::new()];
    for c in pattern.chars() {
        out = match c {
            'X' | 'x' => out
                .iter()
                .flat_map(|prefix| ('0'..='9').map(move |d| format!("{prefix}{d}")))
                .collect(),
            c => out
                .into_iter()
                .map(|prefix| format!("{prefix}{c}"))
                .collect(),
        };
    }
    out
}

/// The energy below which `record` counts a frame as silence (the value of transcripts
/// m, n, r and s, FreeSWITCH's documented example).
pub const RECORD_SILENCE_THRESHOLD: u32 = 200;

/// The beep before a `<Record>` (`playBeep`): half a second of 1 kHz.
pub const RECORD_BEEP: &str = "tone_stream://%(500,0,1000)";

/// `record <path> <limit s> <threshold> <silence s>` (reference §7.2). The limit is
/// checked on whole epoch seconds, so the file runs up to a second past it (transcript
/// r: 3.66 s for 3). The last number is "silence hits": seconds of silence, counted in
/// packets of the channel's codec — on the test switch's G722 (16 kHz audio in an 8 kHz
/// RTP clock) the silence lasts about twice as long as asked (transcript m: 3.98 s for
/// 2), a switch quirk written down rather than guessed around.
fn record_arg(r: &RecordCaller) -> String {
    format!(
        "{} {} {} {}",
        r.path,
        r.max_length.as_secs().max(1),
        RECORD_SILENCE_THRESHOLD,
        r.silence_timeout.as_secs().max(1)
    )
}

/// What runs before a `record` (sent as applications just before it, in order):
/// * the beep (`playback` of [`RECORD_BEEP`]) when `playBeep` asks for it;
/// * `playback_terminators=<keys>` (`none` when no key ends it) — `record` takes its
///   finish keys from there (transcript n);
/// * `playback_terminator_used=` (unset) — the variable outlives the application, so a
///   key that ended an earlier record or playback would otherwise read as this one's.
pub fn record_prelude(r: &RecordCaller) -> Vec<Application> {
    let mut apps = Vec::new();
    if r.beep {
        apps.push(Application {
            name: "playback",
            arg: RECORD_BEEP.to_string(),
        });
    }
    let keys = if r.finish_keys.is_empty() {
        "none"
    } else {
        r.finish_keys.as_str()
    };
    apps.push(Application {
        name: "set",
        arg: format!("playback_terminators={keys}"),
    });
    apps.push(Application {
        name: "set",
        arg: "playback_terminator_used=".to_string(),
    });
    apps
}

/// What runs right after a `record` (queued behind it, so before the engine's next
/// operation): `unset playback_terminators`, so the finish keys of a Record do not make
/// later `playback`s stop on a key (voxbridge's Play is not ended by digits; a Gather
/// stops its prompts with `uuid_break`).
pub fn record_epilogue() -> Application {
    Application {
        name: "unset",
        arg: "playback_terminators".to_string(),
    }
}

/// How a `record` ended, from its CHANNEL_EXECUTE_COMPLETE (transcripts m, n, r, s):
/// `silence_hits_exhausted=true` is silence, `playback_terminator_used` the key, anything
/// else a limit, a break or the hangup; `record_ms` is the audio's length.
pub fn record_report(event: &Event) -> RecordReport {
    let var = |name: &str| {
        event
            .variable(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let ended_by = if var("silence_hits_exhausted") == Some("true") {
        RecordEndedBy::Silence
    } else if let Some(key) = var("playback_terminator_used").and_then(|k| k.chars().next()) {
        RecordEndedBy::Key(key)
    } else {
        RecordEndedBy::Other
    };
    RecordReport {
        ended_by,
        duration: record_duration(event),
        ended_at_ms: event_epoch_ms(event),
    }
}

/// A background recording's end, from its RECORD_STOP (transcript t).
pub fn recording_stop(event: &Event) -> Option<RecordingStop> {
    let path = event.header("Record-File-Path")?.trim();
    if path.is_empty() {
        return None;
    }
    Some(RecordingStop {
        path: path.to_string(),
        duration: record_duration(event),
        ended_at_ms: event_epoch_ms(event),
    })
}

fn record_duration(event: &Event) -> std::time::Duration {
    let ms = event
        .variable("record_ms")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    std::time::Duration::from_millis(ms)
}

/// The event's own time (`Event-Date-Timestamp`, epoch µs) in epoch ms.
fn event_epoch_ms(event: &Event) -> Option<i64> {
    event
        .header("Event-Date-Timestamp")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .map(|us| us / 1000)
}

/// The `bridge` dial string: every leg at once (`,`), each `[…]` with the uuid chosen
/// for it and its own options, the Dial's options in front `{…}`:
/// * `originate_timeout` — the ring window (the switch counts whole seconds);
/// * `origination_caller_id_number`/`_name` — `callerId`/`callerName`;
/// * `sip_h_X-VH-<k>=<v>` — `sipHeaders` (the Dial's on every leg, a User's on its own);
/// * `execute_on_answer='sched_hangup +<timeLimit> ALLOTTED_TIMEOUT'` on every leg — the
///   bridge's time limit counts from the callee's answer, and runs inside the switch;
/// * `execute_on_answer_1` / `execute_on_pre_answer='send_dtmf <digits>'` — `sendDigits`
///   to the callee (`w`/`W` are the switch's own 0.5 s / 1 s pauses).
///
/// Every value was restricted by the document rules to characters without meaning in a
/// dial string; the caller name may hold spaces, so it is quoted.
pub fn dial_string(bridge: &Bridge, dial: &DialConfig) -> String {
    let mut global = vec![format!(
        "originate_timeout={}",
        bridge.ring_timeout.as_secs().max(1)
    )];
    if let Some(number) = &bridge.caller_id {
        global.push(format!("origination_caller_id_number={number}"));
    }
    if let Some(name) = &bridge.caller_name {
        global.push(format!("origination_caller_id_name='{name}'"));
    }
    for (k, v) in &bridge.sip_headers {
        global.push(format!("sip_h_X-VH-{k}={v}"));
    }
    if bridge.music.is_some() {
        global.push("ignore_early_media=true".to_string());
    }
    let legs: Vec<String> = bridge
        .legs
        .iter()
        .map(|leg| {
            let mut vars = vec![
                format!("origination_uuid={}", leg.uuid),
                format!(
                    "execute_on_answer='sched_hangup +{} ALLOTTED_TIMEOUT'",
                    bridge.time_limit.as_secs().max(1)
                ),
            ];
            for (k, v) in &leg.sip_headers {
                vars.push(format!("sip_h_X-VH-{k}={v}"));
            }
            vars.extend(confirm_vars(bridge.confirm.as_ref()));
            if let Some(digits) = &leg.send_digits {
                let when = if leg.send_on_preanswer {
                    "execute_on_pre_answer"
                } else {
                    "execute_on_answer_1"
                };
                vars.push(format!("{when}='send_dtmf {digits}'"));
            }
            format!("[{}]{}", vars.join(","), endpoint(&leg.target, dial))
        })
        .collect();
    format!("{{{}}}{}", global.join(","), legs.join(","))
}

/// `confirmSound` / `confirmKey` on a leg: the switch's answer confirmation
/// (`group_confirm_*`, read per leg by the originate), measured on FreeSWITCH 1.10.12
/// with 7007 (answers, presses `1234#` ~1.3 s later):
/// * with a key: `group_confirm_file='<media>',group_confirm_key=<key>` — the switch
///   plays the media to the callee on answer and bridges it only once it pressed the
///   key (key 1: bridged at the `1`). A callee that never presses it hears the media
///   again and again and is dropped when the ring window (`originate_timeout`) runs out:
///   the bridge fails NO_ANSWER (key 9, timeout 6 s: failed at 5.3 s). That is how
///   "pressed or dropped" is carried out; the Dial's `timeout` bounds the wait.
///   (`group_confirm_cancel_timeout` does not drop it: it stops the ring timer.)
/// * without a key: `group_confirm_key=exec,group_confirm_file='playback <media>'` —
///   the switch runs the playback on the callee, then bridges it (the way Plivo's
///   framework does it).
///
/// The media is one file string: `file_string://a!b…` of the Play paths
/// ([`playback_path`]) and `silence_stream://<ms>` for each Wait; silence when the
/// document gave nothing usable.
pub fn confirm_vars(confirm: Option<&Confirm>) -> Vec<String> {
    let Some(confirm) = confirm else {
        return Vec::new();
    };
    let media = media_file_string(&confirm.media);
    match confirm.key {
        Some(key) => vec![
            format!("group_confirm_file='{media}'"),
            format!("group_confirm_key={key}"),
        ],
        None => vec![
            "group_confirm_key=exec".to_string(),
            format!("group_confirm_file='playback {media}'"),
        ],
    }
}

/// A Dial media document as one FreeSWITCH file: its pieces joined in a
/// `file_string://` (one piece alone as itself; none as a short silence).
pub fn media_file_string(items: &[MediaItem]) -> String {
    let pieces: Vec<String> = items
        .iter()
        .map(|item| match item {
            MediaItem::Play { url } => playback_path(url),
            MediaItem::Silence { duration } => {
                format!("silence_stream://{}", duration.as_millis())
            }
        })
        .collect();
    match pieces.as_slice() {
        [] => "silence_stream://250".to_string(),
        [one] => one.clone(),
        many => format!("file_string://{}", many.join("!")),
    }
}

/// A destination's endpoint: a Number through the template, a User through the profile.
pub fn endpoint(target: &DialTarget, dial: &DialConfig) -> String {
    match target {
        DialTarget::Number(n) => dial.number_template.replace("{number}", n),
        DialTarget::User(uri) => {
            let rest = uri.strip_prefix("sip:").unwrap_or(uri);
            format!("sofia/{}/{rest}", dial.sip_profile)
        }
    }
}

/// How a `bridge` ended, from its CHANNEL_EXECUTE_COMPLETE on the caller's channel
/// (transcripts i, j, k): `DIALSTATUS=SUCCESS` means a callee was bridged
/// (`last_bridge_to`, its cause in `bridge_hangup_cause`); anything else is the
/// originate's failure, most precisely in `originate_failed_cause`, else
/// `originate_disposition`. `originate_causes` gives each leg's cause: `uuid;CAUSE` for
/// one leg, and for several the switch's array form `ARRAY::uuid;CAUSE|:uuid;CAUSE`
/// (transcript x), whose entries are split on `|:`.
pub fn bridge_report(event: &Event, bridge: &Bridge) -> BridgeReport {
    let var = |name: &str| {
        event
            .variable(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let leg_causes: Vec<(String, HangupCause)> = var("originate_causes")
        .map(|list| {
            let list = list.strip_prefix("ARRAY::").unwrap_or(list);
            list.split('|')
                .map(|item| item.trim_start_matches(':'))
                .filter_map(|item| item.split_once(';'))
                .filter(|(uuid, _)| bridge.legs.iter().any(|l| l.uuid == *uuid))
                .map(|(uuid, cause)| (uuid.to_string(), HangupCause::parse_switch(cause)))
                .collect()
        })
        .unwrap_or_default();
    let bridged_to = var("last_bridge_to")
        .or_else(|| var("bridge_uuid"))
        .filter(|b| bridge.legs.iter().any(|l| l.uuid == *b));
    let outcome = match (var("DIALSTATUS"), bridged_to) {
        (Some("SUCCESS"), Some(b_leg)) => BridgeOutcome::Bridged {
            b_leg: b_leg.to_string(),
            callee_cause: var("bridge_hangup_cause")
                .or_else(|| var("last_bridge_hangup_cause"))
                .map(HangupCause::parse_switch),
        },
        _ => BridgeOutcome::NotBridged {
            cause: var("originate_failed_cause")
                .or_else(|| var("originate_disposition"))
                .filter(|c| !c.eq_ignore_ascii_case("failure"))
                .map(HangupCause::parse_switch)
                .unwrap_or(HangupCause::NORMAL_TEMPORARY_FAILURE),
        },
    };
    BridgeReport {
        outcome,
        leg_causes,
    }
}

/// `(engine, voice)` for a document voice; the built-in flite defaults fill gaps in the
/// configured map.
pub fn tts_voice(tts: &TtsConfig, voice: Voice) -> (String, String) {
    let (key, fallback) = match voice {
        Voice::Woman => ("WOMAN", "slt"),
        Voice::Man => ("MAN", "kal"),
    };
    let engine = if tts.engine.trim().is_empty() {
        "flite".to_string()
    } else {
        tts.engine.clone()
    };
    let voice = tts
        .voices
        .get(key)
        .filter(|v| !v.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| fallback.to_string());
    (engine, voice)
}

/// What `playback` is given for a document URL (see the module docs).
pub fn playback_path(url: &str) -> String {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return format!("http_cache://{url}");
    }
    if lower.starts_with("file://") {
        if let Some(path) = url::Url::parse(url)
            .ok()
            .and_then(|u| u.to_file_path().ok())
        {
            return path.to_string_lossy().into_owned();
        }
        return url[7..].to_string();
    }
    url.to_string()
}

/// The outcome of an application from its CHANNEL_EXECUTE_COMPLETE
/// `Application-Response` (see the module docs).
pub fn completion_outcome(response: &str) -> OpOutcome {
    let trimmed = response.trim();
    if trimmed.starts_with("-ERR") {
        return OpOutcome::Refused(trimmed.to_string());
    }
    let upper = trimmed.to_ascii_uppercase();
    if upper.contains("ERROR") || upper.contains("NOT FOUND") {
        OpOutcome::Failed(trimmed.to_string())
    } else {
        OpOutcome::Completed
    }
}

/// The outcome of an application the switch would not take (`-ERR` to `sendmsg`, or
/// the command could not be sent): it will never complete.
pub fn refused(reason: &str) -> OpOutcome {
    OpOutcome::Refused(format!("-ERR {}", reason.trim()))
}

/// Why a `uuid_kill` or `sendmsg` hangup did not take effect, from the switch's reply
/// (or the error that kept it from being sent).
pub fn command_failure(reply: &str) -> CommandFailure {
    if reply.contains("No such channel") {
        CommandFailure::ChannelGone
    } else {
        CommandFailure::Refused(reply.trim().to_string())
    }
}

/// Which side hung up, from CHANNEL_HANGUP_COMPLETE's `sip_hangup_disposition`:
/// `recv_*` (bye, cancel, refuse) the caller, `send_*` the switch, anything else unknown.
pub fn hung_up_by(disposition: Option<&str>) -> HungUpBy {
    match disposition.map(str::trim) {
        Some(d) if d.starts_with("recv_") => HungUpBy::Caller,
        Some(d) if d.starts_with("send_") => HungUpBy::Switch,
        _ => HungUpBy::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cause::HangupCause;
    use std::time::Duration;

    #[test]
    fn playback_paths() {
        assert_eq!(
            playback_path("https://x.test/a.wav"),
            "http_cache://https://x.test/a.wav"
        );
        assert_eq!(
            playback_path("HTTP://x.test/a.wav"),
            "http_cache://HTTP://x.test/a.wav"
        );
        assert_eq!(playback_path("file:///var/s/a%20b.wav"), "/var/s/a b.wav");
        assert_eq!(playback_path("file://relative.wav"), "relative.wav");
        assert_eq!(
            playback_path("tone_stream://%(500,500,440)"),
            "tone_stream://%(500,500,440)"
        );
        assert_eq!(
            playback_path("silence_stream://1000"),
            "silence_stream://1000"
        );
        assert_eq!(playback_path("é"), "é");
    }

    /// What `play_maps_urls_for_playback` in the engine's rules asserted before the
    /// engine stopped speaking FreeSWITCH: the document's URLs reach `playback` so.
    #[test]
    fn play_maps_urls_for_playback() {
        let tts = TtsConfig::default();
        let paths: Vec<String> = [
            "https://cdn.test/a.mp3",
            "file:///var/lib/sounds/b.wav",
            "silence_stream://1000",
        ]
        .iter()
        .map(|url| {
            let app = application(
                &ChannelOp::Play {
                    url: url.to_string(),
                },
                &tts,
                &DialConfig::default(),
            );
            assert_eq!(app.name, "playback");
            app.arg
        })
        .collect();
        assert_eq!(
            paths,
            [
                "http_cache://https://cdn.test/a.mp3",
                "/var/lib/sounds/b.wav",
                "silence_stream://1000"
            ]
        );
    }

    #[test]
    fn application_rendering() {
        let speak = |voice| ChannelOp::Speak {
            voice,
            language: "en-US".into(),
            text: "Hello, it's 5% & done".into(),
        };
        let cases = [
            (ChannelOp::Answer, "answer", ""),
            (ChannelOp::PreAnswer, "pre_answer", ""),
            (
                speak(Voice::Man),
                "speak",
                "flite|kal|Hello, it's 5% & done",
            ),
            (
                speak(Voice::Woman),
                "speak",
                "flite|slt|Hello, it's 5% & done",
            ),
            (
                ChannelOp::Play {
                    url: "file:///a.wav".into(),
                },
                "playback",
                "/a.wav",
            ),
            (
                ChannelOp::Wait {
                    duration: Duration::from_secs(2),
                },
                "sleep",
                "2000",
            ),
            (
                ChannelOp::SendDigits {
                    digits: "12#".into(),
                },
                "send_dtmf",
                "12#",
            ),
            (
                ChannelOp::Hangup {
                    cause: HangupCause::USER_BUSY,
                },
                "hangup",
                "USER_BUSY",
            ),
            (
                ChannelOp::ArmHangup {
                    after: Duration::from_secs(30),
                    cause: HangupCause::CALL_REJECTED,
                },
                "sched_hangup",
                "+30 CALL_REJECTED",
            ),
            (ChannelOp::CancelArmedHangups, "sched_cancel", ""),
            (ChannelOp::FlushDigits, "flush_dtmf", ""),
            (
                ChannelOp::Silence {
                    duration: Duration::from_secs(3),
                },
                "playback",
                "silence_stream://3000",
            ),
        ];
        for (op, name, arg) in cases {
            let app = application(&op, &TtsConfig::default(), &DialConfig::default());
            assert_eq!((app.name, app.arg.as_str()), (name, arg), "{op:?}");
        }
    }

    #[test]
    fn voice_map_with_defaults_for_gaps() {
        let mut tts = TtsConfig::default();
        assert_eq!(
            tts_voice(&tts, Voice::Woman),
            ("flite".into(), "slt".into())
        );
        assert_eq!(tts_voice(&tts, Voice::Man), ("flite".into(), "kal".into()));
        tts.engine = "polly".into();
        tts.voices.insert("MAN".into(), "Matthew".into());
        tts.voices.remove("WOMAN");
        assert_eq!(
            tts_voice(&tts, Voice::Man),
            ("polly".into(), "Matthew".into())
        );
        assert_eq!(
            tts_voice(&tts, Voice::Woman),
            ("polly".into(), "slt".into())
        );
    }

    /// What `speak_uses_the_voice_map` in the engine's rules asserted: a configured
    /// voice wins, an unconfigured one falls back, the text goes through unchanged.
    #[test]
    fn speak_uses_the_voice_map() {
        let mut tts = TtsConfig::default();
        tts.voices.insert("WOMAN".into(), "awb".into());
        let speak = |voice, text: &str| ChannelOp::Speak {
            voice,
            language: "en-US".into(),
            text: text.into(),
        };
        assert_eq!(
            application(
                &speak(Voice::Man, "line one\nline two"),
                &tts,
                &DialConfig::default()
            )
            .arg,
            "flite|kal|line one\nline two"
        );
        assert_eq!(
            application(&speak(Voice::Woman, "her"), &tts, &DialConfig::default()).arg,
            "flite|awb|her"
        );
    }

    #[test]
    fn outcomes() {
        for r in ["FILE NOT FOUND", "PLAYBACK ERROR"] {
            assert_eq!(completion_outcome(r), OpOutcome::Failed(r.into()), "{r}");
        }
        assert_eq!(
            completion_outcome("-ERR no such app"),
            OpOutcome::Refused("-ERR no such app".into())
        );
        for r in ["FILE PLAYED", "_none_", ""] {
            assert_eq!(completion_outcome(r), OpOutcome::Completed, "{r}");
        }
        assert_eq!(
            refused("invalid session id [x]"),
            OpOutcome::Refused("-ERR invalid session id [x]".into())
        );
        assert_eq!(
            command_failure("-ERR No such channel!"),
            CommandFailure::ChannelGone
        );
        assert_eq!(
            command_failure("-ERR something broke\n"),
            CommandFailure::Refused("-ERR something broke".into())
        );
    }

    #[test]
    fn dispositions() {
        for d in ["recv_bye", "recv_cancel", "recv_refuse"] {
            assert_eq!(hung_up_by(Some(d)), HungUpBy::Caller);
        }
        for d in ["send_bye", "send_cancel", "send_refuse"] {
            assert_eq!(hung_up_by(Some(d)), HungUpBy::Switch);
        }
        assert_eq!(hung_up_by(None), HungUpBy::Unknown);
        assert_eq!(hung_up_by(Some("")), HungUpBy::Unknown);
    }

    fn leg(uuid: &str, target: DialTarget) -> crate::call::channel_op::BridgeLeg {
        crate::call::channel_op::BridgeLeg {
            uuid: uuid.into(),
            target,
            send_digits: None,
            send_on_preanswer: false,
            sip_headers: Vec::new(),
        }
    }

    fn bridge(legs: Vec<crate::call::channel_op::BridgeLeg>) -> Bridge {
        Bridge {
            legs,
            ring_timeout: Duration::from_secs(30),
            time_limit: Duration::from_secs(600),
            hangup_on_star: false,
            caller_id: None,
            caller_name: None,
            sip_headers: Vec::new(),
            callee_digit_patterns: Vec::new(),
            caller_digits_watched: false,
            confirm: None,
            music: None,
        }
    }

    #[test]
    fn dial_music_is_the_caller_s_ringback_and_a_later_dial_without_unsets_it() {
        let mut b = bridge(vec![leg("u-1", DialTarget::Number("7004".into()))]);
        b.music = Some(vec![
            MediaItem::Play {
                url: "tone_stream://%(200,0,440)".into(),
            },
            MediaItem::Silence {
                duration: Duration::from_millis(500),
            },
        ]);
        let tail: Vec<(String, String)> = bridge_prelude(&b, EarlierDials::default())
            .into_iter()
            .skip(4)
            .map(|a| (a.name.to_string(), a.arg))
            .collect();
        let media = "file_string://tone_stream://%(200,0,440)!silence_stream://500";
        assert_eq!(
            tail,
            [
                ("set".to_string(), format!("ringback={media}")),
                ("set".to_string(), format!("transfer_ringback={media}")),
            ]
        );
        assert!(dial_string(&b, &DialConfig::default()).contains("ignore_early_media=true"));
        b.music = None;
        let earlier = EarlierDials {
            bound_callee_digits: false,
            set_music: true,
        };
        let tail: Vec<String> = bridge_prelude(&b, earlier)
            .into_iter()
            .skip(4)
            .map(|a| format!("{} {}", a.name, a.arg))
            .collect();
        assert_eq!(tail, ["unset ringback", "unset transfer_ringback"]);
        assert!(!dial_string(&b, &DialConfig::default()).contains("ignore_early_media"));
    }

    #[test]
    fn confirm_with_a_key_waits_for_it_without_one_plays_then_bridges() {
        let media = vec![
            MediaItem::Silence {
                duration: Duration::from_secs(1),
            },
            MediaItem::Play {
                url: "https://app.test/press-one.wav".into(),
            },
        ];
        let with_key = Confirm {
            media: media.clone(),
            key: Some('1'),
        };
        assert_eq!(
            confirm_vars(Some(&with_key)),
            [
                "group_confirm_file='file_string://silence_stream://1000!http_cache://https://app.test/press-one.wav'",
                "group_confirm_key=1"
            ]
        );
        let without = Confirm {
            media: media[1..].to_vec(),
            key: None,
        };
        assert_eq!(
            confirm_vars(Some(&without)),
            [
                "group_confirm_key=exec",
                "group_confirm_file='playback http_cache://https://app.test/press-one.wav'"
            ]
        );
        let unusable = Confirm {
            media: Vec::new(),
            key: Some('#'),
        };
        assert_eq!(
            confirm_vars(Some(&unusable))[0],
            "group_confirm_file='silence_stream://250'"
        );
        assert!(confirm_vars(None).is_empty());
    }

    #[test]
    fn callee_digit_patterns_bind_on_the_peer_and_an_earlier_dial_s_are_cleared_first() {
        let mut b = bridge(vec![leg("u-1", DialTarget::Number("7007".into()))]);
        b.callee_digit_patterns = vec!["1234#".into(), "*9X".into()];
        let earlier = EarlierDials {
            bound_callee_digits: true,
            set_music: false,
        };
        let apps: Vec<(String, String)> = bridge_prelude(&b, earlier)
            .into_iter()
            .skip(4)
            .map(|a| (a.name.to_string(), a.arg))
            .collect();
        let want: [(String, String); 3] = [
            ("clear_digit_action".into(), "voxbridge_dial,peer".into()),
            (
                "bind_digit_action".into(),
                "voxbridge_dial,1234#,voxbridge_digits_match,bleg,peer".into(),
            ),
            (
                "bind_digit_action".into(),
                "voxbridge_dial,*90,voxbridge_digits_match,bleg,peer".into(),
            ),
        ];
        assert_eq!(&apps[..3], &want[..]);
        assert_eq!(apps.len(), 1 + 1 + 10, "*9X is spelled out as *90 … *99");
        assert_eq!(binding_strings("1X2x").len(), 100);
        assert_eq!(binding_strings("XXX#"), ["~^\\d\\d\\d#$"]);
        b.callee_digit_patterns.clear();
        assert_eq!(
            bridge_prelude(&b, EarlierDials::default()).len(),
            4,
            "nothing to bind or clear"
        );
    }

    #[test]
    fn dial_string_rings_every_leg_with_its_own_uuid_and_options() {
        let mut b = bridge(vec![
            leg("u-1", DialTarget::Number("+15557654321".into())),
            crate::call::channel_op::BridgeLeg {
                send_digits: Some("ww12".into()),
                sip_headers: vec![("u".into(), "9".into())],
                ..leg(
                    "u-2",
                    DialTarget::User("sip:alice@pbx.example.com:5080".into()),
                )
            },
        ]);
        b.caller_id = Some("15551230000".into());
        b.caller_name = Some("Front Desk".into());
        b.sip_headers = vec![("a".into(), "1".into())];
        let dial = DialConfig::default();
        assert_eq!(
            dial_string(&b, &dial),
            "{originate_timeout=30,origination_caller_id_number=15551230000,\
             origination_caller_id_name='Front Desk',sip_h_X-VH-a=1}\
             [origination_uuid=u-1,execute_on_answer='sched_hangup +600 ALLOTTED_TIMEOUT']\
             sofia/gateway/default/+15557654321,\
             [origination_uuid=u-2,execute_on_answer='sched_hangup +600 ALLOTTED_TIMEOUT',\
             sip_h_X-VH-u=9,execute_on_answer_1='send_dtmf ww12']\
             sofia/external/alice@pbx.example.com:5080"
        );
        let app = application(&ChannelOp::Bridge(b.clone()), &TtsConfig::default(), &dial);
        assert_eq!(app.name, "bridge");
        let sets: Vec<String> = bridge_prelude(&b, EarlierDials::default())
            .into_iter()
            .map(|a| a.arg)
            .collect();
        assert_eq!(
            sets,
            [
                "continue_on_fail=true",
                "hangup_after_bridge=false",
                "sip_ignore_remote_cause=true",
                "bridge_terminate_key="
            ]
        );
    }

    /// The bridge's CHANNEL_EXECUTE_COMPLETE in a capture of the real switch, and the
    /// uuid the capture gave its leg.
    fn bridge_completion(transcript: &str) -> (Event, String) {
        let start = transcript
            .match_indices("Event-Name: CHANNEL_EXECUTE_COMPLETE")
            .map(|(i, _)| i)
            .find(|i| {
                let block = &transcript[*i..];
                let end = block.find("\n\n").unwrap_or(block.len());
                block[..end].contains("\nApplication: bridge\n")
            })
            .expect("the bridge's completion");
        let block = &transcript[start..];
        let end = block.find("\n\n").expect("end of the event") + 2;
        let event = crate::esl::event::decode_plain(&block.as_bytes()[..end]).expect("decodes");
        let uuid = event
            .header("Application-Data")
            .and_then(|d| d.split("origination_uuid=").nth(1))
            .and_then(|r| r.split([',', '}', ']']).next())
            .expect("origination_uuid")
            .to_string();
        (event, uuid)
    }

    #[test]
    fn bridge_reports_read_from_the_real_switch() {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/esl/");
        let read = |name: &str| std::fs::read_to_string(format!("{fixtures}{name}")).unwrap();
        // i: answered, the callee killed: bridged, its cause NORMAL_CLEARING.
        let (event, b) = bridge_completion(&read("i-bridge-answered-callee-hangs-up.txt"));
        let report = bridge_report(
            &event,
            &bridge(vec![leg(&b, DialTarget::Number("7002".into()))]),
        );
        assert_eq!(
            report.outcome,
            BridgeOutcome::Bridged {
                b_leg: b.clone(),
                callee_cause: Some(HangupCause::NORMAL_CLEARING)
            }
        );
        // j: busy; k: no answer.
        for (file, cause) in [
            ("j-bridge-busy.txt", HangupCause::USER_BUSY),
            ("k-bridge-no-answer.txt", HangupCause::NO_ANSWER),
        ] {
            let (event, b) = bridge_completion(&read(file));
            let report = bridge_report(
                &event,
                &bridge(vec![leg(&b, DialTarget::Number("7003".into()))]),
            );
            assert_eq!(
                report.outcome,
                BridgeOutcome::NotBridged { cause },
                "{file}"
            );
            assert_eq!(report.leg_causes, vec![(b, cause)], "{file}");
        }
        // v: the callee's own side hung up (BYE to B): read exactly as i.
        // w: the caller's channel killed during the bridge: still a bridge that happened.
        for file in [
            "v-bridge-callee-side-hangs-up.txt",
            "w-bridge-a-leg-killed.txt",
        ] {
            let (event, b) = bridge_completion(&read(file));
            let report = bridge_report(
                &event,
                &bridge(vec![leg(&b, DialTarget::Number("7002".into()))]),
            );
            assert_eq!(
                report.outcome,
                BridgeOutcome::Bridged {
                    b_leg: b.clone(),
                    callee_cause: Some(HangupCause::NORMAL_CLEARING)
                },
                "{file}"
            );
        }
        // u: the caller cancelled while it rang; y: the ringing leg was killed.
        for (file, cause) in [
            (
                "u-bridge-caller-cancels-while-ringing.txt",
                HangupCause::ORIGINATOR_CANCEL,
            ),
            (
                "y-bridge-ringing-b-leg-killed.txt",
                HangupCause::NORMAL_CLEARING,
            ),
        ] {
            let (event, b) = bridge_completion(&read(file));
            let report = bridge_report(
                &event,
                &bridge(vec![leg(&b, DialTarget::Number("7004".into()))]),
            );
            assert_eq!(
                report.outcome,
                BridgeOutcome::NotBridged { cause },
                "{file}"
            );
            assert_eq!(report.leg_causes, vec![(b, cause)], "{file}");
        }
    }

    /// x: two legs, the loser LOSE_RACE, in the switch's `ARRAY::…|:…` form.
    #[test]
    fn the_array_form_of_originate_causes_names_every_leg() {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/esl/");
        let text =
            std::fs::read_to_string(format!("{fixtures}x-bridge-two-destinations-lose-race.txt"))
                .unwrap();
        let (event, loser) = bridge_completion(&text);
        let winner = event
            .header("Application-Data")
            .and_then(|d| d.rsplit("origination_uuid=").next())
            .and_then(|r| r.split([',', '}', ']']).next())
            .expect("the second leg's origination_uuid")
            .to_string();
        assert_ne!(loser, winner);
        let report = bridge_report(
            &event,
            &bridge(vec![
                leg(&loser, DialTarget::Number("7004".into())),
                leg(&winner, DialTarget::Number("7002".into())),
            ]),
        );
        assert_eq!(
            report.outcome,
            BridgeOutcome::Bridged {
                b_leg: winner.clone(),
                callee_cause: Some(HangupCause::NORMAL_CLEARING)
            }
        );
        assert_eq!(
            report.leg_causes,
            vec![(loser, HangupCause::LOSE_RACE), (winner, HangupCause::NONE)]
        );
    }

    /// The first event named `name` whose block contains `needle`, decoded.
    fn event_in(transcript: &str, name: &str, needle: &str) -> Event {
        let start = transcript
            .match_indices(&format!("Event-Name: {name}"))
            .map(|(i, _)| i)
            .find(|i| {
                let block = &transcript[*i..];
                let end = block.find("\n\n").unwrap_or(block.len());
                block[..end].contains(needle)
            })
            .expect("the event");
        let block = &transcript[start..];
        let end = block.find("\n\n").expect("end of the event") + 2;
        crate::esl::event::decode_plain(&block.as_bytes()[..end]).expect("decodes")
    }

    #[test]
    fn record_rendering() {
        let r = RecordCaller {
            path: "/tmp/rec/abc.wav".into(),
            format: crate::call::channel_op::RecordFormat::Wav,
            beep: true,
            silence_timeout: Duration::from_secs(4),
            max_length: Duration::from_secs(5),
            finish_keys: "#*".into(),
        };
        let app = application(
            &ChannelOp::Record(r.clone()),
            &TtsConfig::default(),
            &DialConfig::default(),
        );
        assert_eq!(
            (app.name, app.arg.as_str()),
            ("record", "/tmp/rec/abc.wav 5 200 4")
        );
        let prelude: Vec<(&str, String)> = record_prelude(&r)
            .into_iter()
            .map(|a| (a.name, a.arg))
            .collect();
        assert_eq!(
            prelude,
            [
                ("playback", RECORD_BEEP.to_string()),
                ("set", "playback_terminators=#*".to_string()),
                ("set", "playback_terminator_used=".to_string()),
            ]
        );
        let after = record_epilogue();
        assert_eq!(
            (after.name, after.arg.as_str()),
            ("unset", "playback_terminators")
        );
        let quiet = RecordCaller {
            beep: false,
            finish_keys: String::new(),
            ..r
        };
        let prelude: Vec<String> = record_prelude(&quiet).into_iter().map(|a| a.arg).collect();
        assert_eq!(
            prelude,
            ["playback_terminators=none", "playback_terminator_used="]
        );
        let session = application(
            &ChannelOp::StartSessionRecording {
                path: "/tmp/rec/s.wav".into(),
            },
            &TtsConfig::default(),
            &DialConfig::default(),
        );
        assert_eq!(
            (session.name, session.arg.as_str()),
            ("record_session", "/tmp/rec/s.wav")
        );
    }

    #[test]
    fn record_reports_read_from_the_real_switch() {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/esl/");
        let read = |name: &str| std::fs::read_to_string(format!("{fixtures}{name}")).unwrap();
        let done = |file: &str| {
            record_report(&event_in(
                &read(file),
                "CHANNEL_EXECUTE_COMPLETE",
                "\nApplication: record\n",
            ))
        };
        let m = done("m-record-ended-by-silence.txt");
        assert_eq!(m.ended_by, RecordEndedBy::Silence);
        assert_eq!(m.duration, Duration::from_millis(3980));
        assert!(m.ended_at_ms.is_some_and(|ms| ms > 1_700_000_000_000));
        let n = done("n-record-ended-by-key.txt");
        assert_eq!(n.ended_by, RecordEndedBy::Key('#'));
        assert_eq!(n.duration, Duration::from_millis(1500));
        let r = done("r-record-ended-by-max-length.txt");
        assert_eq!(r.ended_by, RecordEndedBy::Other);
        assert_eq!(r.duration, Duration::from_millis(3660));
        let s = done("s-record-ended-by-caller-hangup.txt");
        assert_eq!(s.ended_by, RecordEndedBy::Other);
        assert_eq!(s.duration, Duration::from_millis(1540));
        // t: the session recording stopped by stop_record_session.
        let stop = recording_stop(&event_in(
            &read("t-record-session-and-stop.txt"),
            "RECORD_STOP",
            "variable_record_ms: 2020",
        ))
        .expect("a path");
        assert!(stop.path.starts_with('/'), "{}", stop.path);
        assert_eq!(stop.duration, Duration::from_millis(2020));
    }
}
