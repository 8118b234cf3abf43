//! `<Record>` (SPEC §12.2): the recordings of one call, as state the engine keeps and
//! rules it applies. The engine stays the dispatcher: it runs the operations and feeds
//! back what the switch reports; this module decides names, formats, end reasons and
//! what the application is told.
//!
//! Three kinds, one vocabulary ([`crate::call::channel_op`]):
//! * **plain** — the caller, now: the call is answered, the switch beeps (`playBeep`)
//!   and records until `timeout` seconds of silence, `maxLength`, a `finishOnKey` key,
//!   a stop (REST) or the hangup ([`ChannelOp::Record`]); the document waits for it.
//! * **`recordSession="true"`** — the whole call, both directions, in the background
//!   from now until the hangup ([`ChannelOp::StartSessionRecording`]); execution goes
//!   on at once.
//! * **`startOnDialAnswer="true"`** — the same, from the moment the next Dial's callee
//!   answers: armed here, started by the engine when the bridge reports the answer
//!   (beside the running bridge, [`crate::call::engine::Action::StartRecording`]). It
//!   stays armed until a Dial is answered or the call ends (then nothing was recorded:
//!   no file, no callback, a CDR note).
//!
//! Decisions:
//! * **Names.** Every recording gets a fresh `RecordingID` (a UUID) and the file
//!   `<record.dir>/<RecordingID>.<ext>`; `RecordUrl` is the REST API's
//!   `…/Recording/<RecordingID>.<ext>` for the call's account.
//! * **mp3** only where the configuration says the switch can write it (`record.mp3`;
//!   FreeSWITCH needs mod_shout). Otherwise the file is wav, and the CDR notes say the
//!   mp3 asked for was recorded as wav.
//! * **End reasons.** The switch tells silence (`RecordingTimeout`) and a finish key
//!   (`FinishedOnKey`, the key in `Digits`) apart; anything else is the hangup
//!   (`HungUp`) if the channel went down, a REST stop (`Stopped`) if one was asked for,
//!   else the length limit (`maxLength`). A background recording ends `HungUp` at the
//!   hangup, `Stopped` when REST stopped it.
//! * **Times.** `RecordingDurationMs` is the audio the switch wrote; `RecordingEndMs`
//!   the switch's time of the end, `RecordingStartMs` = end − duration (the audio's
//!   start, after the beep).
//! * **What follows.** When a file is complete its row is written, then (through the
//!   outbox) `Event=RecordStop` to `callbackUrl`. A plain Record's `action`
//!   (`Event=Record`) is requested with the same fields: `redirect="false"` (the
//!   default) through the outbox, response ignored, execution goes on; `true`: its
//!   response is the next document. A background recording's `action` is always
//!   requested through the outbox: its file completes at the hangup or at a REST stop,
//!   never at a point of the document where a new document could take over. After the
//!   hangup a plain Record's `action` too goes through the outbox (there is no call left
//!   to run a document on).
//! * **A recording the switch never reported** (the socket was lost, the call ended
//!   before the report): completed at the call's end from what the engine knows (the
//!   engine's own times; duration from when it was started), noted in the CDR.

use super::Begin;
use crate::call::channel_op::{
    ChannelOp, RecordCaller, RecordEndedBy, RecordFormat, RecordReport, RecordingStop,
};
use crate::document::model::{AudioFormat, HttpMethod, Record, RecordingFacts, Redirect};
use crate::store::{RecordingEndReason, RecordingKind};
use std::time::{Duration, Instant};

/// Where and how recordings are made (config `[record]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordSettings {
    /// Absolute directory both the switch and voxbridge reach.
    pub dir: String,
    /// A Record without `fileFormat` gets this.
    pub default_format: RecordFormat,
    /// The switch can write mp3.
    pub mp3: bool,
}

impl Default for RecordSettings {
    fn default() -> Self {
        Self {
            dir: "/var/lib/voxbridge/recordings".into(),
            default_format: RecordFormat::Wav,
            mp3: false,
        }
    }
}

impl RecordSettings {
    pub fn from_config(config: &crate::config::RecordConfig) -> Self {
        Self {
            dir: config.dir.trim_end_matches('/').to_string(),
            default_format: if config.format == "mp3" {
                RecordFormat::Mp3
            } else {
                RecordFormat::Wav
            },
            mp3: config.mp3,
        }
    }
}

/// One recording voxbridge started (or armed), until its file is complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recording {
    pub recording_id: String,
    pub path: String,
    pub format: RecordFormat,
    pub kind: RecordingKind,
    /// `action` and how it is requested.
    pub action: Option<(String, HttpMethod, bool)>,
    pub callback: Option<Redirect>,
    /// When the engine started it (switch time); `None` while armed for a Dial.
    pub started: Option<Instant>,
    /// A REST stop was asked for.
    pub stop_requested: bool,
}

/// A recording whose file is complete: what its row, its `RecordStop` and its
/// `action` say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completed {
    pub facts: RecordingFacts,
    pub path: String,
    pub format: RecordFormat,
    pub kind: RecordingKind,
    pub end_reason: RecordingEndReason,
    pub callback: Option<Redirect>,
    /// The action, its method, and whether its response is the next document.
    pub action: Option<(String, HttpMethod, bool)>,
}

/// How a Record element starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// A plain Record: run the operation; the document waits for its report.
    Caller(Recording, ChannelOp),
    /// `recordSession`: run the operation (it completes at once), go on.
    Session(Recording, ChannelOp),
    /// `startOnDialAnswer`: keep it until the next Dial's callee answers.
    OnDialAnswer(Recording),
}

/// The step's share of [`super::Step::begin`]: the engine starts it with its settings.
pub fn begin(record: Record) -> Begin {
    Begin::Record(Box::new(record))
}

/// A Record element starts: its name, its file, its operation. A note is pushed when
/// the format asked for cannot be made.
pub fn start(record: Record, settings: &RecordSettings, notes: &mut Vec<String>) -> Start {
    let asked = match record.file_format {
        Some(AudioFormat::Mp3) => RecordFormat::Mp3,
        Some(AudioFormat::Wav) => RecordFormat::Wav,
        None => settings.default_format,
    };
    let format = if asked == RecordFormat::Mp3 && !settings.mp3 {
        let note = "Record: fileFormat mp3 asked, but the switch cannot write mp3 (record.mp3 = false: no mod_shout); recorded as wav".to_string();
        tracing::warn!("{note}");
        notes.push(note);
        RecordFormat::Wav
    } else {
        asked
    };
    let recording_id = uuid::Uuid::new_v4().to_string();
    let path = format!("{}/{recording_id}.{}", settings.dir, format.ext());
    let plain = record.is_plain();
    let recording = Recording {
        recording_id,
        path: path.clone(),
        format,
        kind: if plain {
            RecordingKind::Caller
        } else {
            RecordingKind::Session
        },
        action: record.action.clone().map(|url| {
            // A background recording's action never takes the document over.
            (url, record.method, plain && record.redirect)
        }),
        callback: record.callback.clone(),
        started: None,
        stop_requested: false,
    };
    if record.start_on_dial_answer {
        return Start::OnDialAnswer(recording);
    }
    if record.record_session {
        return Start::Session(recording, ChannelOp::StartSessionRecording { path });
    }
    let op = ChannelOp::Record(RecordCaller {
        path,
        format,
        beep: record.play_beep,
        silence_timeout: secs(record.timeout_secs),
        max_length: secs(record.max_length_secs),
        finish_keys: record.finish_on_key,
    });
    Start::Caller(recording, op)
}

fn secs(n: u32) -> Duration {
    Duration::from_secs(u64::from(n))
}

/// The end of a plain Record from the switch's report (see the module docs for the
/// reasons). `down`: the channel went down before or while it ended; `end_ms`: the
/// end's epoch time when the switch did not give one; `url_base`: the account's
/// `…/Recording/`.
pub fn caller_ended(
    recording: Recording,
    report: &RecordReport,
    down: bool,
    end_ms: i64,
    url_base: &str,
) -> Completed {
    let (reason, digits) = match report.ended_by {
        RecordEndedBy::Silence => (RecordingEndReason::Silence, String::new()),
        RecordEndedBy::Key(k) => (RecordingEndReason::FinishedOnKey, k.to_string()),
        RecordEndedBy::Other if down => (RecordingEndReason::HungUp, String::new()),
        RecordEndedBy::Other if recording.stop_requested => {
            (RecordingEndReason::Stopped, String::new())
        }
        RecordEndedBy::Other => (RecordingEndReason::MaxLength, String::new()),
    };
    let end_ms = report.ended_at_ms.unwrap_or(end_ms);
    complete(recording, reason, digits, report.duration, end_ms, url_base)
}

/// A background recording's file is complete.
pub fn session_stopped(
    recording: Recording,
    stop: &RecordingStop,
    end_ms: i64,
    url_base: &str,
) -> Completed {
    let reason = if recording.stop_requested {
        RecordingEndReason::Stopped
    } else {
        RecordingEndReason::HungUp
    };
    let end_ms = stop.ended_at_ms.unwrap_or(end_ms);
    complete(
        recording,
        reason,
        String::new(),
        stop.duration,
        end_ms,
        url_base,
    )
}

/// A recording the switch never reported, completed at the call's end with the
/// engine's own times.
pub fn unreported(recording: Recording, now: Instant, end_ms: i64, url_base: &str) -> Completed {
    let duration = recording
        .started
        .map(|s| now.saturating_duration_since(s))
        .unwrap_or_default();
    complete(
        recording,
        RecordingEndReason::HungUp,
        String::new(),
        duration,
        end_ms,
        url_base,
    )
}

fn complete(
    recording: Recording,
    reason: RecordingEndReason,
    digits: String,
    duration: Duration,
    end_ms: i64,
    url_base: &str,
) -> Completed {
    let duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    let start_ms = end_ms.saturating_sub(i64::try_from(duration_ms).unwrap_or(i64::MAX));
    let url = format!(
        "{url_base}{}.{}",
        recording.recording_id,
        recording.format.ext()
    );
    Completed {
        facts: RecordingFacts {
            recording_id: recording.recording_id,
            url,
            duration_ms,
            start_ms,
            end_ms,
            end_reason: reason.as_str().to_string(),
            digits,
        },
        path: recording.path,
        format: recording.format,
        kind: recording.kind,
        end_reason: reason,
        callback: recording.callback,
        action: recording.action,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            action: Some("https://app.test/vm".into()),
            method: HttpMethod::Post,
            redirect: false,
            file_format: None,
            timeout_secs: 60,
            max_length_secs: 5,
            play_beep: true,
            finish_on_key: "#".into(),
            record_session: false,
            start_on_dial_answer: false,
            callback: None,
        }
    }

    fn settings() -> RecordSettings {
        RecordSettings {
            dir: "/rec".into(),
            ..RecordSettings::default()
        }
    }

    #[test]
    fn a_plain_record_records_the_caller_into_record_dir_named_by_its_id() {
        let mut notes = Vec::new();
        let Start::Caller(rec, ChannelOp::Record(op)) = start(record(), &settings(), &mut notes)
        else {
            panic!("a plain Record records the caller");
        };
        assert_eq!(op.path, format!("/rec/{}.wav", rec.recording_id));
        assert_eq!(op.max_length, Duration::from_secs(5));
        assert_eq!(op.finish_keys, "#");
        assert!(op.beep);
        assert!(notes.is_empty());
    }

    #[test]
    fn mp3_without_the_switch_s_support_is_wav_and_noted() {
        let mut notes = Vec::new();
        let asked = Record {
            file_format: Some(AudioFormat::Mp3),
            ..record()
        };
        let Start::Caller(rec, _) = start(asked.clone(), &settings(), &mut notes) else {
            panic!()
        };
        assert_eq!(rec.format, RecordFormat::Wav);
        assert!(notes[0].contains("recorded as wav"), "{notes:?}");
        let able = RecordSettings {
            mp3: true,
            ..settings()
        };
        let Start::Caller(rec, _) = start(asked, &able, &mut Vec::new()) else {
            panic!()
        };
        assert_eq!(rec.format, RecordFormat::Mp3);
        assert!(rec.path.ends_with(".mp3"));
    }

    #[test]
    fn end_reasons_follow_the_report_then_what_the_engine_knows() {
        let rec = || match start(record(), &settings(), &mut Vec::new()) {
            Start::Caller(r, _) => r,
            _ => unreachable!(),
        };
        let report = |ended_by| RecordReport {
            ended_by,
            duration: Duration::from_millis(4200),
            ended_at_ms: Some(10_000),
        };
        let reason =
            |r: Recording, by, down| caller_ended(r, &report(by), down, 0, "u/").facts.end_reason;
        assert_eq!(
            reason(rec(), RecordEndedBy::Silence, false),
            "RecordingTimeout"
        );
        assert_eq!(
            reason(rec(), RecordEndedBy::Key('#'), false),
            "FinishedOnKey"
        );
        assert_eq!(reason(rec(), RecordEndedBy::Other, false), "maxLength");
        assert_eq!(reason(rec(), RecordEndedBy::Other, true), "HungUp");
        let stopped = Recording {
            stop_requested: true,
            ..rec()
        };
        assert_eq!(reason(stopped, RecordEndedBy::Other, false), "Stopped");
        let done = caller_ended(
            rec(),
            &report(RecordEndedBy::Key('#')),
            false,
            0,
            "https://vb/R/",
        );
        assert_eq!(done.facts.digits, "#");
        assert_eq!(done.facts.duration_ms, 4200);
        assert_eq!((done.facts.start_ms, done.facts.end_ms), (5800, 10_000));
        assert_eq!(
            done.facts.url,
            format!("https://vb/R/{}.wav", done.facts.recording_id)
        );
    }

    #[test]
    fn a_background_recording_s_action_never_takes_the_document_over() {
        let session = Record {
            record_session: true,
            redirect: true,
            ..record()
        };
        let Start::Session(rec, ChannelOp::StartSessionRecording { path }) =
            start(session, &settings(), &mut Vec::new())
        else {
            panic!()
        };
        assert_eq!(rec.path, path);
        assert_eq!(rec.kind, RecordingKind::Session);
        assert_eq!(rec.action.as_ref().map(|a| a.2), Some(false));
    }
}
