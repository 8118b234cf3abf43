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
//! * **Wait** is `sleep <ms>`; **SendDigits** `send_dtmf`.
//! * **ArmHangup** is `sched_hangup +<secs> <cause>` — always relative, with the `+`
//!   (reference §5); **CancelArmedHangups** `sched_cancel` without argument, which
//!   cancels all of the channel's scheduled tasks.
//! * **Who hung up**: `sip_hangup_disposition` `recv_*` is the caller, `send_*` the switch.
//! * **Outcomes**: a `-ERR …` reply to `sendmsg` (or an `Application-Response` that
//!   starts with `-ERR`) means the switch refused the application; a response that says
//!   `ERROR` or `NOT FOUND` (`FILE NOT FOUND`, `PLAYBACK ERROR`) means it ran and failed;
//!   anything else (`FILE PLAYED`, `_none_`, …) means it completed.

use crate::call::channel_op::{ChannelOp, CommandFailure, HungUpBy, OpOutcome};
use crate::config::TtsConfig;
use crate::document::model::Voice;

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
pub fn application(op: &ChannelOp, tts: &TtsConfig) -> Application {
    let (name, arg) = match op {
        ChannelOp::Answer => ("answer", String::new()),
        ChannelOp::PreAnswer => ("pre_answer", String::new()),
        ChannelOp::Speak { voice, text, .. } => {
            let (engine, voice) = tts_voice(tts, *voice);
            ("speak", format!("{engine}|{voice}|{text}"))
        }
        ChannelOp::Play { url } => ("playback", playback_path(url)),
        ChannelOp::Wait { duration } => ("sleep", duration.as_millis().to_string()),
        ChannelOp::SendDigits { digits } => ("send_dtmf", digits.clone()),
        ChannelOp::Hangup { cause } => ("hangup", cause.name().to_string()),
        ChannelOp::ArmHangup { after, cause } => (
            "sched_hangup",
            format!("+{} {}", after.as_secs(), cause.name()),
        ),
        ChannelOp::CancelArmedHangups => ("sched_cancel", String::new()),
    };
    Application { name, arg }
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
        ];
        for (op, name, arg) in cases {
            let app = application(&op, &TtsConfig::default());
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
            application(&speak(Voice::Man, "line one\nline two"), &tts).arg,
            "flite|kal|line one\nline two"
        );
        assert_eq!(
            application(&speak(Voice::Woman, "her"), &tts).arg,
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
}
