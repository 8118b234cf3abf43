//! What the Asterisk driver does over AMI ([`crate::ami`]), and why.
//!
//! **Why AMI as well as ARI.** FastAGI is blocked while `Dial()`, `RECORD FILE` run, and
//! ARI acts only on channels inside Stasis (a FastAGI channel is not): neither can start
//! or stop a recording on the channel, or tell voxbridge the digits pressed during a
//! bridge. AMI can, on any channel, by name — each out-of-band action below is one AMI
//! action, each fact one event (captured in `tests/fixtures/ami/dial-digits-record-stop.txt`):
//!
//! | what | AMI |
//! |---|---|
//! | REST stop of a `recordSession` / `startOnDialAnswer` recording | `StopMixMonitor` (`Channel`): one per running MixMonitor (Asterisk stops the first it finds; they are all this call's) |
//! | REST stop of a running plain Record (`RECORD FILE`) | `PlayDTMF` `Digit: D` `Receive: true`: the channel "receives" [`STOP_DIGIT`], which voxbridge adds to `RECORD FILE`'s escape digits; the reply `(dtmf)` with `D` is read as a stop, not a key |
//! | `startOnDialAnswer` | `MixMonitor` (`Channel`, `File`) on the caller when the callee answers, beside the running `Dial()` |
//! | `digitsMatch` (caller) | `DTMFEnd` `Direction: Received` on the caller's channel (`Uniqueid` = the call's id) while a Dial runs, fed to the engine as the caller's digits |
//! | `digitsMatchBLeg` (callee) | `DTMFEnd` `Direction: Received` on a channel the Dial created (`DialBegin`'s `DestUniqueid`), matched here ([`CalleeDigits`]) and fed to the engine as a match |
//! | the callee's answer | `DialEnd` `DialStatus: ANSWER` naming the `DestUniqueid` whose `DialBegin` gave its `DialString` (the `DIALEDPEERNUMBER` the driver maps to a leg) |
//!
//! Every channel of a call carries the caller's `Linkedid`, so the call subscribes to its
//! own events once ([`crate::ami::Ami::channel_events`]); the far end of a loop back into
//! the same Asterisk is a new call with its own linked id, and never reaches it. The
//! session lets through only [`EVENTS`] (a `Filter` each): a busy switch's other events
//! are never sent to voxbridge.
//!
//! `D` is safe to reserve: a document's `finishOnKey` is 0-9, `*` and `#` (SPEC §12.2),
//! and a caller's phone has no `D` key; one pressed anyway (RFC 2833 allows it) ends the
//! recording like a stop.

use crate::ami::{Action, Ami, AmiError, AmiOptions, Message};
use crate::config::AsteriskConfig;

/// The events voxbridge needs (everything else is filtered out in Asterisk).
pub const EVENTS: &[&str] = &["DTMFEnd", "DialBegin", "DialEnd"];
/// Their classes (the `Events` action's mask).
pub const EVENT_CLASSES: &str = "call,dtmf";
/// The digit a REST stop makes a running `RECORD FILE` receive.
pub const STOP_DIGIT: char = 'D';

/// The AMI session of `[asterisk] ami_*`; `None` when `ami_address` is empty.
pub fn start(config: &AsteriskConfig) -> Option<Ami> {
    let address = config.ami_address.trim();
    if address.is_empty() {
        return None;
    }
    Some(Ami::start(AmiOptions {
        address: address.to_string(),
        user: config.ami_user.clone(),
        secret: config.ami_secret.clone(),
        events: EVENTS.iter().map(|e| e.to_string()).collect(),
        event_classes: EVENT_CLASSES.into(),
    }))
}

/// One event of a call, as the driver reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// A digit the channel `uniqueid` received from its far end.
    Digit { uniqueid: String, digit: char },
    /// The caller's `Dial()` started ringing `dest` (a channel id) for `dial_string`.
    DialBegin { dest: String, dial_string: String },
    /// The caller's `Dial()` stopped ringing `dest`, with `status` (`ANSWER`, …).
    DialEnd { dest: String, status: String },
}

/// Reads `message` for the call `caller` (its uniqueid); `None` for anything else
/// (a digit sent, a Dial of another channel of the same linked call).
pub fn read(caller: &str, message: &Message) -> Option<CallEvent> {
    let uniqueid = message.get("Uniqueid")?;
    match message.event()? {
        "DTMFEnd" => {
            if !message
                .get("Direction")
                .is_some_and(|d| d.eq_ignore_ascii_case("Received"))
            {
                return None;
            }
            let mut chars = message.get("Digit")?.chars();
            let digit = chars.next().filter(|_| chars.next().is_none())?;
            Some(CallEvent::Digit {
                uniqueid: uniqueid.to_string(),
                digit,
            })
        }
        "DialBegin" if uniqueid == caller => Some(CallEvent::DialBegin {
            dest: message.get("DestUniqueid")?.to_string(),
            dial_string: message.get("DialString").unwrap_or_default().to_string(),
        }),
        "DialEnd" if uniqueid == caller => Some(CallEvent::DialEnd {
            dest: message.get("DestUniqueid")?.to_string(),
            status: message.get("DialStatus").unwrap_or_default().to_string(),
        }),
        _ => None,
    }
}

/// `MixMonitor` of `channel` into `path` (both directions mixed), now.
pub async fn mix_monitor(ami: &Ami, channel: &str, path: &str) -> Result<(), AmiError> {
    let action = Action::new("MixMonitor")
        .field("Channel", channel)?
        .field("File", path)?;
    ami.send(action).await.map(drop)
}

/// `StopMixMonitor` on `channel` (the first MixMonitor Asterisk finds on it).
pub async fn stop_mix_monitor(ami: &Ami, channel: &str) -> Result<(), AmiError> {
    let action = Action::new("StopMixMonitor").field("Channel", channel)?;
    ami.send(action).await.map(drop)
}

/// Makes `channel` receive [`STOP_DIGIT`]: a running `RECORD FILE` with it among its
/// escape digits ends.
pub async fn stop_record_file(ami: &Ami, channel: &str) -> Result<(), AmiError> {
    let action = Action::new("PlayDTMF")
        .field("Channel", channel)?
        .field("Digit", &STOP_DIGIT.to_string())?
        .field("Duration", "100")?
        .field("Receive", "true")?;
    ami.send(action).await.map(drop)
}

/// How long a REST stop waits before making a `RECORD FILE` sent `sent` ago receive
/// [`STOP_DIGIT`]: a digit that arrives while the beep plays, or in the first instants of
/// the recording, ends it with `(randomerror)` and no file at all (measured:
/// `tests/fixtures/ami/record-stop-at-start.txt`), so the stop lands once it records —
/// [`RECORD_FILE_SETTLE`] in, plus [`BEEP_ALLOWANCE`] with a beep (the bundle's is 0.25 s).
pub fn record_file_stop_delay(sent: std::time::Duration, beep: bool) -> std::time::Duration {
    let settle = RECORD_FILE_SETTLE
        + if beep {
            BEEP_ALLOWANCE
        } else {
            std::time::Duration::ZERO
        };
    settle.saturating_sub(sent)
}

/// See [`record_file_stop_delay`].
pub const RECORD_FILE_SETTLE: std::time::Duration = std::time::Duration::from_millis(300);
/// See [`record_file_stop_delay`].
pub const BEEP_ALLOWANCE: std::time::Duration = std::time::Duration::from_millis(500);

/// Writes an empty WAV (8 kHz, 16-bit mono, no samples: Asterisk's `wav`) at `path` if no
/// file is there: a recording stopped before Asterisk wrote anything is 0 ms long, and
/// its row's URL must still answer. Best effort, logged when it cannot.
pub fn ensure_empty_wav(path: &str) {
    if std::path::Path::new(path).exists() {
        return;
    }
    let mut header = Vec::with_capacity(44);
    header.extend_from_slice(b"RIFF");
    header.extend_from_slice(&36u32.to_le_bytes());
    header.extend_from_slice(b"WAVEfmt ");
    header.extend_from_slice(&16u32.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes()); // PCM
    header.extend_from_slice(&1u16.to_le_bytes()); // mono
    header.extend_from_slice(&8000u32.to_le_bytes());
    header.extend_from_slice(&16000u32.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&16u16.to_le_bytes());
    header.extend_from_slice(b"data");
    header.extend_from_slice(&0u32.to_le_bytes());
    match std::fs::write(path, header) {
        Ok(()) => {
            tracing::info!(%path, "RECORD FILE stopped before it wrote anything: an empty WAV stands for it")
        }
        Err(e) => {
            tracing::warn!(%path, error = %e, "RECORD FILE stopped before it wrote anything, and no empty WAV could be written")
        }
    }
}

/// The callee's digits during a bridge, matched against `digitsMatchBLeg` the way the
/// engine matches the caller's (`crate::call::element::dial`): a pattern matches when the
/// digits pressed since the last match end with it; then they start afresh.
#[derive(Debug, Clone, Default)]
pub struct CalleeDigits {
    patterns: Vec<String>,
    pressed: String,
}

impl CalleeDigits {
    pub fn new(patterns: &[String]) -> Self {
        Self {
            patterns: patterns.to_vec(),
            pressed: String::new(),
        }
    }

    /// The digits that matched a pattern, if `digit` completed one.
    pub fn press(&mut self, digit: char) -> Option<String> {
        let longest = self.patterns.iter().map(String::len).max()?;
        self.pressed.push(digit);
        if self.pressed.len() > longest {
            let drop = self.pressed.len() - longest;
            self.pressed.drain(..drop);
        }
        let pressed = &self.pressed;
        let hit = self.patterns.iter().find_map(|p| {
            let tail = pressed.get(pressed.len().checked_sub(p.len())?..)?;
            crate::call::element::dial::pattern_matches(p, tail).then(|| tail.to_string())
        })?;
        self.pressed.clear();
        Some(hit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(fields: &[(&str, &str)]) -> Message {
        Message::new(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn received_digits_and_the_callers_own_dial_events_are_read_the_rest_is_not() {
        let caller = "1796468760.0";
        let digit = |id: &str, d: &str, dir: &str| {
            msg(&[
                ("Event", "DTMFEnd"),
                ("Uniqueid", id),
                ("Linkedid", caller),
                ("Digit", d),
                ("Direction", dir),
            ])
        };
        assert_eq!(
            read(caller, &digit("1796468764.1", "#", "Received")),
            Some(CallEvent::Digit {
                uniqueid: "1796468764.1".into(),
                digit: '#'
            })
        );
        assert_eq!(read(caller, &digit(caller, "1", "Sent")), None);
        assert_eq!(read(caller, &digit(caller, "12", "Received")), None);
        let begin = msg(&[
            ("Event", "DialBegin"),
            ("Uniqueid", caller),
            ("DestUniqueid", "1796468764.1"),
            ("DialString", "7007@self"),
        ]);
        assert_eq!(
            read(caller, &begin),
            Some(CallEvent::DialBegin {
                dest: "1796468764.1".into(),
                dial_string: "7007@self".into()
            })
        );
        let other = msg(&[
            ("Event", "DialEnd"),
            ("Uniqueid", "1796468764.1"),
            ("DestUniqueid", "x"),
            ("DialStatus", "ANSWER"),
        ]);
        assert_eq!(read(caller, &other), None);
    }

    #[test]
    fn a_record_file_stop_waits_until_it_records_and_an_empty_wav_stands_for_none() {
        use std::time::Duration;
        assert_eq!(
            record_file_stop_delay(Duration::ZERO, true),
            Duration::from_millis(800)
        );
        assert_eq!(
            record_file_stop_delay(Duration::from_millis(100), false),
            Duration::from_millis(200)
        );
        assert_eq!(
            record_file_stop_delay(Duration::from_secs(2), true),
            Duration::ZERO
        );
        let dir = tempfile_dir();
        let path = dir.join("r.wav");
        let path = path.to_str().unwrap();
        ensure_empty_wav(path);
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(bytes.len(), 44);
        assert_eq!(&bytes[..4], b"RIFF");
        std::fs::write(path, b"kept").unwrap();
        ensure_empty_wav(path);
        assert_eq!(
            std::fs::read(path).unwrap(),
            b"kept",
            "an existing file is left alone"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vb-manager-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn callee_digits_match_like_the_engines_and_start_afresh_after_a_match() {
        let mut m = CalleeDigits::new(&["55".into(), "12X4#".into()]);
        let got: Vec<_> = "91234#55".chars().filter_map(|d| m.press(d)).collect();
        assert_eq!(got, ["1234#", "55"]);
        assert_eq!(CalleeDigits::new(&[]).press('1'), None);
    }
}
