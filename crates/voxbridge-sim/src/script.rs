//! What a simulated call looks like and what its caller does.
//!
//! A [`CallScript`] describes the channel the dialplan hands to the `socket` app
//! (answered like extension 7000 of the transcripts, or still ringing like 7001), the
//! caller's numbers and the variables the dialplan set, how long media apps take, and
//! what the caller does: hang up at a moment or during an app (CANCEL before answer,
//! BYE after), press DTMF, give up when nobody answers (originate timeout).
//!
//! All durations are simulated; the simulator's speed factor divides them.

use std::collections::HashMap;
use std::time::Duration;

/// One thing the caller does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallerAction {
    /// Hang up this long after the call started (channel creation).
    HangUpAt(Duration),
    /// Hang up `after` into the `index`-th app executed on the channel (1-based,
    /// counting every CHANNEL_EXECUTE).
    HangUpDuringApp { index: usize, after: Duration },
    /// Hang up `after` into the `occurrence`-th (1-based) execution of `app`.
    HangUpDuringNamed {
        app: String,
        occurrence: usize,
        after: Duration,
    },
    /// Send RFC 2833 digits this long after the call started (needs media).
    DtmfAt { at: Duration, digits: String },
    /// Send digits `after` into the `index`-th executed app.
    DtmfDuringApp {
        index: usize,
        after: Duration,
        digits: String,
    },
}

/// How long a playback lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlayLength {
    For(Duration),
    /// Until something stops it (`loops=-1`, `silence_stream://-1`).
    Forever,
    /// The switch cannot open it: `FILE NOT FOUND` at once.
    NotFound,
}

/// What the destination of a `bridge` (the B-leg) does, as the bundled test switch's
/// extensions do (7002 answers, 7003 is busy, 7004 rings forever, 7008 answers after 2 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Callee {
    /// Rings (180) until `after`, then answers (200; at once when zero); hangs up
    /// `hangs_up_after` the answer (`None`: stays until the caller or the switch ends it).
    Answers {
        after: Duration,
        hangs_up_after: Option<Duration>,
    },
    /// A final SIP error at once: 486 is USER_BUSY, 603 CALL_REJECTED, 404
    /// NO_ROUTE_DESTINATION…
    Refuses(u16),
    /// 180 and never answers: the bridge gives up at the dial string's
    /// `originate_timeout` (default 60 s) with NO_ANSWER.
    RingsForever,
}

/// What an answered callee sends into the bridge (the test switch: 7002 an endless
/// tone, 7005 `echo`). The simulator carries no audio: it counts the RTP media packets
/// the caller's leg would have received from the bridge (50 a second, 20 ms ptime), and
/// reports them in the caller leg's `rtp_audio_in_media_packet_count`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CalleeMedia {
    /// Its own audio, from its answer until the bridge ends.
    #[default]
    Tone,
    /// What it hears: the caller's audio back, only while the caller sends some (on the
    /// switch a silent caller received 0 media packets from 7005).
    Echo,
}

/// A scripted call.
#[derive(Clone, Debug)]
pub struct CallScript {
    pub answered: bool,
    pub destination: String,
    pub caller_number: String,
    pub caller_name: String,
    /// Variables the dialplan set before the `socket` app (e.g. `voxbridge_answer_url`).
    pub variables: Vec<(String, String)>,
    /// `playback` lengths by exact argument.
    pub playback_lengths: HashMap<String, PlayLength>,
    /// Length of a playback of anything not in the table and not a stream URL.
    pub default_playback: Duration,
    /// `speak` lengths by exact text.
    pub speak_lengths: HashMap<String, Duration>,
    pub speak_per_word: Duration,
    pub caller: Vec<CallerAction>,
    /// A call nobody answers (no answer, no early media) is cancelled by the caller
    /// after this long.
    pub originate_timeout: Duration,
    /// `socket … async full` (true) or without `full`.
    pub full: bool,
    /// `socket <addr>` without `async`: static mode, where `sendmsg` runs inline (its
    /// reply comes once the app has ended, the app's events after it), the channel is
    /// never parked, and the socket closes right after the hangup (transcript o2).
    pub sync: bool,
    /// How long into a `record` with silence detection (a `silence_thresh` argument) the
    /// caller's silence ends it. Transcript m: `silence_hits` 2 ended it after 3.98 s.
    pub record_silence_after: Duration,
    /// `bridge` destinations by number (the user part of the dial string); any other
    /// number is refused with NO_ROUTE_DESTINATION, like the test switch's unknown
    /// extensions.
    pub callees: HashMap<String, Callee>,
    /// What an answering callee sends, by number ([`CalleeMedia::Tone`] when absent).
    pub callee_media: HashMap<String, CalleeMedia>,
    /// DTMF a `bridge` destination presses once it answered (how long after, which
    /// digits), like the test switch's 7007 (`send_dtmf 1234#` a second after answer).
    pub callee_digits: HashMap<String, (Duration, String)>,
}

impl Default for CallScript {
    fn default() -> Self {
        Self::ringing()
    }
}

impl CallScript {
    /// Extension 7001 of the transcripts: the `socket` app runs on an unanswered channel.
    pub fn ringing() -> Self {
        CallScript {
            answered: false,
            destination: "7001".into(),
            caller_number: "15551230000".into(),
            caller_name: "ESL-Test".into(),
            variables: Vec::new(),
            playback_lengths: HashMap::new(),
            default_playback: Duration::from_secs(1),
            speak_lengths: HashMap::new(),
            speak_per_word: Duration::from_millis(60),
            caller: Vec::new(),
            originate_timeout: Duration::from_secs(60),
            full: true,
            sync: false,
            record_silence_after: Duration::from_millis(3980),
            callees: HashMap::new(),
            callee_media: HashMap::new(),
            callee_digits: HashMap::new(),
        }
    }

    /// Extension 7000: the dialplan answers before the `socket` app.
    pub fn answered() -> Self {
        CallScript {
            answered: true,
            destination: "7000".into(),
            ..Self::ringing()
        }
    }

    pub fn destination(mut self, number: &str) -> Self {
        self.destination = number.to_string();
        self
    }

    pub fn caller(mut self, number: &str, name: &str) -> Self {
        self.caller_number = number.to_string();
        self.caller_name = name.to_string();
        self
    }

    /// A channel variable set by the dialplan.
    pub fn var(mut self, name: &str, value: &str) -> Self {
        self.variables.push((name.to_string(), value.to_string()));
        self
    }

    pub fn playback_length(mut self, path: &str, length: PlayLength) -> Self {
        self.playback_lengths.insert(path.to_string(), length);
        self
    }

    pub fn default_playback(mut self, d: Duration) -> Self {
        self.default_playback = d;
        self
    }

    pub fn speak_length(mut self, text: &str, d: Duration) -> Self {
        self.speak_lengths.insert(text.to_string(), d);
        self
    }

    pub fn speak_per_word(mut self, d: Duration) -> Self {
        self.speak_per_word = d;
        self
    }

    pub fn caller_hangs_up_at(mut self, at: Duration) -> Self {
        self.caller.push(CallerAction::HangUpAt(at));
        self
    }

    pub fn caller_hangs_up_during_app(mut self, index: usize, after: Duration) -> Self {
        self.caller
            .push(CallerAction::HangUpDuringApp { index, after });
        self
    }

    /// Hang up `after` into the first execution of `app`.
    pub fn caller_hangs_up_during(mut self, app: &str, after: Duration) -> Self {
        self.caller.push(CallerAction::HangUpDuringNamed {
            app: app.to_string(),
            occurrence: 1,
            after,
        });
        self
    }

    pub fn dtmf_at(mut self, at: Duration, digits: &str) -> Self {
        self.caller.push(CallerAction::DtmfAt {
            at,
            digits: digits.to_string(),
        });
        self
    }

    pub fn dtmf_during_app(mut self, index: usize, after: Duration, digits: &str) -> Self {
        self.caller.push(CallerAction::DtmfDuringApp {
            index,
            after,
            digits: digits.to_string(),
        });
        self
    }

    pub fn originate_timeout(mut self, d: Duration) -> Self {
        self.originate_timeout = d;
        self
    }

    /// What `bridge` to `number` reaches.
    pub fn callee(mut self, number: &str, callee: Callee) -> Self {
        self.callees.insert(number.to_string(), callee);
        self
    }

    /// What the callee `number` sends once bridged (see [`CalleeMedia`]).
    pub fn callee_media(mut self, number: &str, media: CalleeMedia) -> Self {
        self.callee_media.insert(number.to_string(), media);
        self
    }

    /// The bridged callee `number` presses `digits` `after` its answer.
    pub fn callee_presses(mut self, number: &str, after: Duration, digits: &str) -> Self {
        self.callee_digits
            .insert(number.to_string(), (after, digits.to_string()));
        self
    }

    /// When a silence-detecting `record` ends (see [`CallScript::record_silence_after`]).
    pub fn record_silence_after(mut self, d: Duration) -> Self {
        self.record_silence_after = d;
        self
    }

    /// `socket … async` without `full`: linger, event, api … answer `-ERR command not found`.
    pub fn not_full(mut self) -> Self {
        self.full = false;
        self
    }

    /// `socket <addr>` without `async` (see [`CallScript::sync`]).
    pub fn static_mode(mut self) -> Self {
        self.sync = true;
        self
    }

    /// The length of `playback <arg>` on this call.
    pub fn playback(&self, arg: &str) -> PlayLength {
        if let Some(l) = self.playback_lengths.get(arg) {
            return *l;
        }
        let path = arg.split("@@").next().unwrap_or(arg);
        if let Some(rest) = path.strip_prefix("silence_stream://") {
            let ms = rest.split(',').next().unwrap_or("").trim();
            return match ms.parse::<i64>() {
                Ok(n) if n < 0 => PlayLength::Forever,
                Ok(0) | Err(_) => PlayLength::NotFound,
                Ok(n) => PlayLength::For(Duration::from_millis(n as u64)),
            };
        }
        if let Some(rest) = path.strip_prefix("tone_stream://") {
            return tone_length(rest).unwrap_or(PlayLength::For(self.default_playback));
        }
        PlayLength::For(self.default_playback)
    }

    /// The length of `speak` of `text`.
    pub fn speak(&self, text: &str) -> Duration {
        if let Some(d) = self.speak_lengths.get(text) {
            return *d;
        }
        let words = text.split_whitespace().count().max(1) as u32;
        self.speak_per_word * words
    }
}

/// Length of a TGML tone: the on+off times of every `%(on,off,freq…)` segment, times
/// `loops` (default 1; `-1` forever). `None` when no segment parses.
fn tone_length(tgml: &str) -> Option<PlayLength> {
    let mut loops: i64 = 1;
    let mut per_loop_ms: u64 = 0;
    let mut segments = 0;
    for part in tgml.split(';') {
        let part = part.trim();
        if let Some(n) = part
            .strip_prefix("loops=")
            .or_else(|| part.strip_prefix("L="))
        {
            loops = n.trim().parse().ok()?;
            continue;
        }
        let mut rest = part;
        while let Some(start) = rest.find("%(") {
            let after = &rest[start + 2..];
            let end = after.find(')')?;
            let mut nums = after[..end].split(',').map(|s| s.trim().parse::<u64>());
            let on = nums.next()?.ok()?;
            let off = nums.next()?.ok()?;
            per_loop_ms += on + off;
            segments += 1;
            rest = &after[end + 1..];
        }
    }
    if segments == 0 {
        return None;
    }
    if loops < 0 {
        return Some(PlayLength::Forever);
    }
    Some(PlayLength::For(Duration::from_millis(
        per_loop_ms.saturating_mul(loops.max(1) as u64),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playback_lengths() {
        let s = CallScript::ringing().playback_length(
            "http_cache://http://x/long.wav",
            PlayLength::For(Duration::from_secs(30)),
        );
        assert_eq!(
            s.playback("tone_stream://%(500,500,440);loops=2"),
            PlayLength::For(Duration::from_secs(2))
        );
        assert_eq!(
            s.playback("tone_stream://%(1000,0,350,440);loops=-1"),
            PlayLength::Forever
        );
        assert_eq!(
            s.playback("tone_stream://%(500,500,440);loops=1"),
            PlayLength::For(Duration::from_secs(1))
        );
        assert_eq!(
            s.playback("silence_stream://250"),
            PlayLength::For(Duration::from_millis(250))
        );
        assert_eq!(s.playback("silence_stream://-1"), PlayLength::Forever);
        assert_eq!(s.playback("silence_stream://0"), PlayLength::NotFound);
        assert_eq!(
            s.playback("http_cache://http://x/long.wav"),
            PlayLength::For(Duration::from_secs(30))
        );
        assert_eq!(
            s.playback("/tmp/a.wav"),
            PlayLength::For(Duration::from_secs(1))
        );
        assert_eq!(s.speak("one two three"), Duration::from_millis(180));
    }
}
