//! A fake Asterisk channel for tests that must not need the switch: it connects to
//! voxbridge's FastAGI listener like `AGI(agi://…)`, sends an environment, and answers
//! commands the way the bundled Asterisk 20.20.1 does in `tests/fixtures/agi/`:
//! `ANSWER` → `200 result=0`; `EXEC Hangup N` → `200 result=-1`, then `HANGUP`;
//! long applications (Flite, Playback, Wait…) take `app_time` unless the channel is hung
//! up under them (the caller at `caller_hangs_up_after`, or ARI), which gives
//! `200 result=-1` first and `HANGUP` after it; after `HANGUP`, `GET VARIABLE HANGUPCAUSE`
//! and `${CHANNEL(hangupsource)}` answer as on the switch (0 and the channel's name when the
//! caller hung up, N and `dialplan/builtin` for `Hangup`, 16 and empty for ARI); other
//! commands on a dead channel answer `511`. A tiny ARI (`DELETE /ari/channels/{id}`) hangs
//! the channel up from outside.
//!
//! DTMF as on the bundle (`gather-flite-barge-in.txt`, `gather-stream-file.txt`): the
//! caller's digits (`dtmf`, times from the connection) reach only a command that reads them
//! — `EXEC Flite "<text>,<keys>"`, `STREAM FILE … "<keys>"`, `WAIT FOR DIGIT` — which stops
//! and replies `200 result=<ASCII code>`; a digit pressed while no such command runs is lost.
//! `RECORD FILE "<name>" wav "<keys>" <ms> [BEEP] [s=N]` records until a key (`(dtmf)`),
//! the limit or the silence (`(timeout)`, see `record_speech`) or the hangup, writes
//! `<name>.wav` (8 kHz 16-bit mono, the samples `endpos` reports) and replies as
//! `record-file.txt`.
//! A shared [`FliteMeter`] counts the Flite syntheses running at once across channels.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::agi_argv;

/// The applications the fake channel has (others answer `200 result=-2`, as in
/// `bad-command.txt`).
const KNOWN_APPS: &[&str] = &[
    "Flite", "Playback", "Wait", "SendDTMF", "Progress", "Hangup", "Dial",
];

/// How one fake channel behaves.
#[derive(Clone, Debug)]
pub struct FakeChannel {
    pub uniqueid: String,
    pub extension: String,
    pub answered: bool,
    pub variables: HashMap<String, String>,
    /// How long a media application runs when nothing interrupts it.
    pub app_time: Duration,
    pub caller_hangs_up_after: Option<Duration>,
    /// Digits the caller presses, at these times from the connection.
    pub dtmf: Vec<(Duration, char)>,
    /// Counts Flite runs across channels (several channels share one).
    pub flite: Option<Arc<FliteMeter>>,
    /// What `EXEC Dial` leaves on the channel after `app_time` (as `dial-*.txt`):
    /// `DIALSTATUS`, `HANGUPCAUSE`, `DIALEDPEERNUMBER`, `ANSWEREDTIME`; with
    /// `DIALSTATUS=ANSWER` the channel is answered.
    pub dial_result: Vec<(&'static str, &'static str)>,
    /// When set, `dial_result` is visible to ARI this long into the `Dial()` (the callee
    /// answered then), while the application keeps running for `app_time`.
    pub dial_answer_after: Option<Duration>,
    /// `RECORD FILE … s=N` hears this much speech, then silence: it ends `(timeout)`
    /// N seconds later with the trailing silence cut (as `res_agi` does). `None`: the
    /// caller never stops talking.
    pub record_speech: Option<Duration>,
    /// Digits pressed during the bridge, this long after the callee answered: by the
    /// callee (`true`) or the caller. With a [`fake_ami`] they are `DTMFEnd` events
    /// (`Direction: Received`), as on the bundle (`tests/fixtures/ami/`); FastAGI hears
    /// none of them (it is blocked in `Dial()`).
    pub bridge_dtmf: Vec<(Duration, bool, char)>,
}

/// Flite syntheses running at once on the fake "server", and the most ever seen.
#[derive(Debug, Default)]
pub struct FliteMeter {
    running: AtomicUsize,
    max: AtomicUsize,
    runs: AtomicUsize,
}

impl FliteMeter {
    /// The most Flite runs that overlapped.
    pub fn max_overlap(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
    /// Flite runs started in all.
    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
    fn start(&self) {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        self.runs.fetch_add(1, Ordering::SeqCst);
    }
    fn end(&self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FakeChannel {
    pub fn ringing(uniqueid: &str) -> Self {
        Self {
            uniqueid: uniqueid.to_string(),
            extension: "7001".into(),
            answered: false,
            variables: HashMap::new(),
            app_time: Duration::from_millis(50),
            caller_hangs_up_after: None,
            dtmf: Vec::new(),
            flite: None,
            dial_result: Vec::new(),
            dial_answer_after: None,
            record_speech: None,
            bridge_dtmf: Vec::new(),
        }
    }
}

/// What the fake channel saw.
#[derive(Clone, Debug, Default)]
pub struct ChannelLog {
    /// Every command line received, in order.
    pub commands: Vec<String>,
    /// The client closed the connection after `HANGUP` (the channel is released).
    pub closed_after_hangup: bool,
    pub hangup_cause: Option<u16>,
    /// When `EXEC Dial` replied.
    pub dial_returned_at: Option<std::time::SystemTime>,
}

/// Channels an ARI request can reach, by uniqueid.
#[derive(Clone, Default)]
pub struct Registry(
    Arc<Mutex<HashMap<String, mpsc::UnboundedSender<u16>>>>,
    /// Channel variables ARI can read (`GET /channels/{id}/variable`), by uniqueid.
    Arc<Mutex<HashMap<String, HashMap<String, String>>>>,
    /// The AMI side ([`fake_ami`]).
    Arc<Mutex<AmiSide>>,
);

/// What the fake AMI shares with the fake channels.
#[derive(Default)]
pub struct AmiSide {
    /// Logged-in sessions: raw event text to write to each.
    sessions: Vec<mpsc::UnboundedSender<String>>,
    /// The actions seen after login: `<Action> <Channel> [<File>|<Digit>]`.
    actions: Vec<String>,
    /// Digits a `PlayDTMF` with `Receive: true` makes a channel receive, by name.
    receive: HashMap<String, mpsc::UnboundedSender<char>>,
}

impl Registry {
    /// Writes an event to every logged-in AMI session.
    fn ami_event(&self, fields: &[(&str, &str)]) {
        let mut text = String::new();
        for (k, v) in fields {
            text.push_str(&format!("{k}: {v}\r\n"));
        }
        text.push_str("\r\n");
        self.2
            .lock()
            .unwrap()
            .sessions
            .retain(|tx| tx.send(text.clone()).is_ok());
    }
    /// The AMI actions the fake has carried out (`<Action> <Channel> [<File>|<Digit>]`).
    pub fn ami_actions(&self) -> Vec<String> {
        self.2.lock().unwrap().actions.clone()
    }
    /// How many AMI sessions are logged in.
    pub fn ami_sessions(&self) -> usize {
        self.2.lock().unwrap().sessions.len()
    }
    fn add(&self, id: &str, tx: mpsc::UnboundedSender<u16>) {
        self.0.lock().unwrap().insert(id.to_string(), tx);
    }
    fn remove(&self, id: &str) {
        self.0.lock().unwrap().remove(id);
    }
    fn set_variables(&self, id: &str, vars: &[(&str, &str)]) {
        let mut all = self.1.lock().unwrap();
        let of = all.entry(id.to_string()).or_default();
        for (k, v) in vars {
            of.insert(k.to_string(), v.to_string());
        }
    }
    /// A variable as ARI reads it: `None` when the channel is gone.
    pub fn variable(&self, id: &str, name: &str) -> Option<String> {
        if !self.exists(id) {
            return None;
        }
        let all = self.1.lock().unwrap();
        Some(
            all.get(id)
                .and_then(|v| v.get(name))
                .cloned()
                .unwrap_or_default(),
        )
    }
    /// ARI's `GET /channels`: every channel's id and name.
    fn list(&self) -> serde_json::Value {
        let ids: Vec<String> = self.0.lock().unwrap().keys().cloned().collect();
        let vars = self.1.lock().unwrap();
        let channels: Vec<serde_json::Value> = ids
            .iter()
            .map(|id| {
                let name = vars
                    .get(id)
                    .and_then(|v| v.get("CHANNEL_NAME"))
                    .cloned()
                    .unwrap_or_else(|| format!("SIP/127.0.0.1-{}", id.replace('.', "")));
                serde_json::json!({ "id": id, "name": name })
            })
            .collect();
        serde_json::Value::Array(channels)
    }
    /// Whether the channel still exists (ARI `GET /channels/{id}`).
    pub fn exists(&self, id: &str) -> bool {
        self.0.lock().unwrap().contains_key(id)
    }
    /// ARI's hang-up: `true` if the channel exists.
    pub fn hangup(&self, id: &str, cause: u16) -> bool {
        self.0
            .lock()
            .unwrap()
            .get(id)
            .is_some_and(|tx| tx.send(cause).is_ok())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Ended {
    Caller,
    Dialplan(u16),
    Soft(u16),
}

/// Runs one call against voxbridge's FastAGI listener at `agi`; returns what it saw.
pub async fn run_channel(agi: SocketAddr, ch: FakeChannel, registry: Registry) -> ChannelLog {
    let stream = TcpStream::connect(agi)
        .await
        .expect("connect to the FastAGI listener");
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    let name = format!("SIP/127.0.0.1-{}", ch.uniqueid.replace('.', ""));
    let env = format!(
        "agi_network: yes\nagi_request: agi://127.0.0.1:4573\nagi_channel: {name}\nagi_language: en\n\
         agi_type: SIP\nagi_uniqueid: {id}\nagi_version: 20.20.1\nagi_callerid: 15551230000\n\
         agi_calleridname: Fake\nagi_dnid: {ext}\nagi_rdnis: unknown\nagi_context: from-sip\n\
         agi_extension: {ext}\nagi_priority: 1\nagi_enhanced: 0.0\nagi_accountcode: \n\n",
        id = ch.uniqueid,
        ext = ch.extension,
    );
    w.write_all(env.as_bytes()).await.unwrap();
    let (ari_tx, mut ari_rx) = mpsc::unbounded_channel();
    registry.add(&ch.uniqueid, ari_tx);
    let (received_tx, mut received) = mpsc::unbounded_channel();
    registry
        .2
        .lock()
        .unwrap()
        .receive
        .insert(name.clone(), received_tx);
    let mut log = ChannelLog::default();
    let mut answered = ch.answered;
    let mut ended: Option<Ended> = None;
    let started = tokio::time::Instant::now();
    let caller_at = ch.caller_hangs_up_after.map(|d| started + d);
    // TIMEOUT(absolute): fires as a soft hangup with no cause (progress-wait-timeout.txt).
    let mut timeout_at: Option<tokio::time::Instant> = None;
    let mut variables = ch.variables.clone();
    let mut digits: VecDeque<(tokio::time::Instant, char)> =
        ch.dtmf.iter().map(|(at, d)| (started + *at, *d)).collect();
    loop {
        // Between commands the caller (or ARI) may hang up too.
        let idle_end = async {
            match caller_at {
                Some(at) if ended.is_none() => tokio::time::sleep_until(at).await,
                _ => std::future::pending().await,
            }
        };
        let timeout = async {
            match timeout_at {
                Some(at) if ended.is_none() => tokio::time::sleep_until(at).await,
                _ => std::future::pending().await,
            }
        };
        let line = tokio::select! {
            l = lines.next_line() => l,
            _ = timeout => {
                ended = Some(Ended::Soft(0));
                let _ = w.write_all(b"HANGUP\n").await;
                continue;
            }
            _ = idle_end => {
                ended = Some(Ended::Caller);
                let _ = w.write_all(b"HANGUP\n").await;
                continue;
            }
            Some(cause) = ari_rx.recv(), if ended.is_none() => {
                ended = Some(Ended::Soft(cause));
                let _ = w.write_all(b"HANGUP\n").await;
                continue;
            }
        };
        let Ok(Some(line)) = line else {
            log.closed_after_hangup = ended.is_some();
            registry.remove(&ch.uniqueid);
            registry.2.lock().unwrap().receive.remove(&name);
            break;
        };
        log.commands.push(line.clone());
        let argv = agi_argv(&line);
        let a: Vec<&str> = argv.iter().map(String::as_str).collect();
        let reply = match (a.as_slice(), ended) {
            (["GET", "VARIABLE", "HANGUPCAUSE"], _) => {
                let c = match ended {
                    Some(Ended::Dialplan(c)) | Some(Ended::Soft(c)) => c,
                    _ => 0,
                };
                log.hangup_cause = Some(c);
                format!("200 result=1 ({c})")
            }
            (["GET", "FULL", "VARIABLE", "${CHANNEL(hangupsource)}"], _) => match ended {
                Some(Ended::Caller) => format!("200 result=1 ({name})"),
                Some(Ended::Dialplan(_)) => "200 result=1 (dialplan/builtin)".into(),
                _ => "200 result=1 ()".into(),
            },
            (["GET", "FULL", "VARIABLE", "${CHANNEL(linkedid)}"], _) => {
                format!("200 result=1 ({})", ch.uniqueid)
            }
            (["GET", "FULL", "VARIABLE", "${CHANNEL(state)}"], _) => {
                format!("200 result=1 ({})", if answered { "Up" } else { "Ring" })
            }
            (["GET", "VARIABLE", var], _) => match variables.get(*var) {
                Some(v) => format!("200 result=1 ({v})"),
                None => "200 result=0".into(),
            },
            (_, Some(_)) => {
                "511 Command Not Permitted on a dead channel or intercept routine".into()
            }
            (["ANSWER"], None) => {
                answered = true;
                "200 result=0".into()
            }
            (["EXEC", "Hangup", cause], None) => {
                let c = cause.parse().unwrap_or(16);
                ended = Some(Ended::Dialplan(c));
                w.write_all(b"200 result=-1\n").await.unwrap();
                "HANGUP".into()
            }
            (["EXEC", "MixMonitor", path], None) => {
                // Returns at once (record-file.txt); the fake writes the file's header.
                write_wav(path, 0);
                "200 result=0".into()
            }
            (["EXEC", "SendDTMF", ..], None) | (["EXEC", "Progress"], None) => {
                "200 result=0".into()
            }
            (["EXEC", app, ..], None) if !KNOWN_APPS.contains(app) => {
                // As the switch answers for an application it does not have.
                "200 result=-2".into()
            }
            (["EXEC", "Dial", ..], None) => {
                // At the answer the callee becomes a channel of its own (`callee-<id>`,
                // named `SIP/self-callee`) that ARI lists and can hang up: Dial() then
                // returns at once with the callee's cause.
                let callee_id = format!("callee-{}", ch.uniqueid);
                let (callee_tx, mut callee_rx) = mpsc::unbounded_channel();
                // AMI, as the bundle tells it (`dial-digits-record-stop.txt`).
                let peer = ch
                    .dial_result
                    .iter()
                    .find(|(k, _)| *k == "DIALEDPEERNUMBER")
                    .map_or("7002", |(_, v)| *v);
                registry.ami_event(&[
                    ("Event", "DialBegin"),
                    ("Channel", &name),
                    ("Uniqueid", &ch.uniqueid),
                    ("Linkedid", &ch.uniqueid),
                    ("DestChannel", "SIP/self-callee"),
                    ("DestUniqueid", &callee_id),
                    ("DestLinkedid", &ch.uniqueid),
                    ("DialString", peer),
                ]);
                if let Some(after) = ch.dial_answer_after {
                    let (registry, id, callee_id, bridge_dtmf, name) = (
                        registry.clone(),
                        ch.uniqueid.clone(),
                        callee_id.clone(),
                        ch.bridge_dtmf.clone(),
                        name.clone(),
                    );
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        registry.ami_event(&[
                            ("Event", "DialEnd"),
                            ("Channel", &name),
                            ("Uniqueid", &id),
                            ("Linkedid", &id),
                            ("DestUniqueid", &callee_id),
                            ("DestLinkedid", &id),
                            ("DialStatus", "ANSWER"),
                        ]);
                        let answered = tokio::time::Instant::now();
                        for (at, by_callee, digit) in bridge_dtmf {
                            tokio::time::sleep_until(answered + at).await;
                            let (chan, uid) = if by_callee {
                                ("SIP/self-callee", callee_id.as_str())
                            } else {
                                (name.as_str(), id.as_str())
                            };
                            registry.ami_event(&[
                                ("Event", "DTMFEnd"),
                                ("Channel", chan),
                                ("Uniqueid", uid),
                                ("Linkedid", &id),
                                ("Digit", &digit.to_string()),
                                ("DurationMs", "100"),
                                ("Direction", "Received"),
                            ]);
                        }
                    });
                }
                if let Some(after) = ch.dial_answer_after {
                    let (registry, id, vars, callee_id) = (
                        registry.clone(),
                        ch.uniqueid.clone(),
                        ch.dial_result.clone(),
                        callee_id.clone(),
                    );
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        registry.add(&callee_id, callee_tx);
                        registry.set_variables(&callee_id, &[("CHANNEL_NAME", "SIP/self-callee")]);
                        registry.set_variables(&id, &vars);
                        registry.set_variables(&id, &[("DIALEDPEERNAME", "SIP/self-callee")]);
                    });
                }
                let cut = tokio::select! {
                    r = run_media(
                        &mut w,
                        ch.app_time,
                        false,
                        &mut digits,
                        caller_at,
                        timeout_at,
                        &mut ari_rx,
                        &mut received,
                        &mut ended,
                    ) => Err(r),
                    Some(cause) = callee_rx.recv() => Ok(cause),
                };
                registry.remove(&callee_id);
                for (k, v) in &ch.dial_result {
                    variables.insert(k.to_string(), v.to_string());
                }
                let r = match cut {
                    Ok(cause) => {
                        variables.insert("HANGUPCAUSE".into(), cause.to_string());
                        Some(0)
                    }
                    Err(r) => r,
                };
                if variables.get("DIALSTATUS").map(String::as_str) == Some("ANSWER") {
                    answered = true;
                }
                log.dial_returned_at = Some(std::time::SystemTime::now());
                r.map_or_else(|| "HANGUP".into(), |_| "200 result=0".to_string())
            }
            (["EXEC", app, rest @ ..], None) => {
                // A media application: runs app_time unless hung up under it (or, with
                // interrupt keys, a digit stops it).
                let keys = *app == "Flite" && rest.first().is_some_and(|a| has_keys(a));
                let flite = ch.flite.as_ref().filter(|_| *app == "Flite");
                if let Some(m) = flite {
                    m.start();
                }
                let r = run_media(
                    &mut w,
                    ch.app_time,
                    keys,
                    &mut digits,
                    caller_at,
                    timeout_at,
                    &mut ari_rx,
                    &mut received,
                    &mut ended,
                )
                .await;
                if let Some(m) = flite {
                    m.end();
                }
                r.map_or_else(|| "HANGUP".into(), |d| format!("200 result={d}"))
            }
            (["STREAM", "FILE", ..], None) => run_media(
                &mut w,
                ch.app_time,
                true,
                &mut digits,
                caller_at,
                timeout_at,
                &mut ari_rx,
                &mut received,
                &mut ended,
            )
            .await
            .map_or_else(|| "HANGUP".into(), |d| format!("200 result={d} endpos=800")),
            (["WAIT", "FOR", "DIGIT", ms], None) => {
                let ms: u64 = ms.parse().unwrap_or(0);
                run_media(
                    &mut w,
                    Duration::from_millis(ms),
                    true,
                    &mut digits,
                    caller_at,
                    timeout_at,
                    &mut ari_rx,
                    &mut received,
                    &mut ended,
                )
                .await
                .map_or_else(|| "HANGUP".into(), |d| format!("200 result={d}"))
            }
            (["RECORD", "FILE", name, format, keys, ms, rest @ ..], None) => {
                let limit = Duration::from_millis(ms.parse().unwrap_or(0));
                let silence = rest
                    .iter()
                    .find_map(|a| a.strip_prefix("s="))
                    .and_then(|n| n.parse::<u64>().ok())
                    .map(Duration::from_secs);
                // A digit AMI made the channel receive before RECORD FILE started is not
                // lost when it is one of the escape keys: the command ends at once,
                // `(randomerror)` with no audio (capture `record-stop-at-start.txt`).
                let keys_str = keys.trim_matches('"');
                if let Ok(d) = received.try_recv() {
                    if keys_str.contains(d) {
                        let _ = w
                            .write_all(
                                format!("200 result={} (randomerror) endpos=0\n", u32::from(d))
                                    .as_bytes(),
                            )
                            .await;
                        continue;
                    }
                }
                let (length, cut) = match (silence, ch.record_speech) {
                    (Some(s), Some(speech)) if speech + s < limit => {
                        (speech + s, s.saturating_sub(Duration::from_secs(1)))
                    }
                    _ => (limit, Duration::ZERO),
                };
                let started = tokio::time::Instant::now();
                let r = run_media(
                    &mut w,
                    length,
                    !keys.is_empty(),
                    &mut digits,
                    caller_at,
                    timeout_at,
                    &mut ari_rx,
                    &mut received,
                    &mut ended,
                )
                .await;
                let kept = started.elapsed().saturating_sub(cut);
                let samples = kept.as_millis() as u64 * 8;
                write_wav(&format!("{name}.{format}"), samples);
                match r {
                    None => "HANGUP".into(),
                    Some(0) => format!("200 result=0 (timeout) endpos={samples}"),
                    Some(d) => format!("200 result={d} (dtmf) endpos={samples}"),
                }
            }
            (["NOOP", ..], None) => "200 result=0".into(),
            (["SET", "VARIABLE", "TIMEOUT(absolute)", secs], None) => {
                let secs: f64 = secs.parse().unwrap_or(0.0);
                timeout_at = (secs > 0.0)
                    .then(|| tokio::time::Instant::now() + Duration::from_secs_f64(secs));
                "200 result=1".into()
            }
            (["SET", "VARIABLE", ..], None) => "200 result=1".into(),
            _ => "510 Invalid or unknown command".into(),
        };
        if w.write_all(format!("{reply}\n").as_bytes()).await.is_err() {
            break;
        }
    }
    log
}

/// A canonical 44-byte-header WAV of `samples` silent samples (8 kHz, 16-bit mono).
fn write_wav(path: &str, samples: u64) {
    let data = (samples * 2) as u32;
    let mut b = Vec::with_capacity(44 + data as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&8000u32.to_le_bytes());
    b.extend_from_slice(&16000u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data.to_le_bytes());
    b.resize(44 + data as usize, 0);
    if let Err(e) = std::fs::write(path, b) {
        eprintln!("fake RECORD FILE could not write {path}: {e}");
    }
}

/// Whether Flite's argument ends with interrupt keys (`text,keys`, the comma unescaped).
fn has_keys(arg: &str) -> bool {
    let b = arg.as_bytes();
    (0..b.len()).any(|i| b[i] == b',' && (i == 0 || b[i - 1] != b'\\'))
}

/// Runs a media command for `length`: `Some(0)` at its end, `Some(ascii)` when `keys` and
/// a digit comes, `None` (after writing `200 result=-1`) when the channel is hung up under
/// it. Digits due before it started were pressed between commands: lost, as on the switch.
#[allow(clippy::too_many_arguments)]
async fn run_media(
    w: &mut tokio::net::tcp::OwnedWriteHalf,
    length: Duration,
    keys: bool,
    digits: &mut VecDeque<(tokio::time::Instant, char)>,
    caller_at: Option<tokio::time::Instant>,
    timeout_at: Option<tokio::time::Instant>,
    ari_rx: &mut mpsc::UnboundedReceiver<u16>,
    received: &mut mpsc::UnboundedReceiver<char>,
    ended: &mut Option<Ended>,
) -> Option<u32> {
    // A digit AMI made the channel receive before this command is lost, as one pressed.
    while received.try_recv().is_ok() {}
    let now = tokio::time::Instant::now();
    while digits.front().is_some_and(|(at, _)| *at <= now) {
        digits.pop_front();
    }
    let done = tokio::time::sleep(length);
    let next_digit = digits.front().copied().filter(|_| keys);
    let digit = async {
        match next_digit {
            Some((at, d)) => {
                tokio::time::sleep_until(at).await;
                d
            }
            None => std::future::pending().await,
        }
    };
    let caller = async {
        match caller_at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    let timeout = async {
        match timeout_at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    let end = tokio::select! {
        _ = done => return Some(0),
        d = digit => {
            digits.pop_front();
            return Some(u32::from(d));
        }
        _ = timeout => Ended::Soft(0),
        _ = caller => Ended::Caller,
        Some(cause) = ari_rx.recv() => Ended::Soft(cause),
        Some(d) = received.recv(), if keys => return Some(u32::from(d)),
    };
    *ended = Some(end);
    let _ = w.write_all(b"200 result=-1\n").await;
    None
}

/// A fake ARI on `127.0.0.1:0`: `DELETE /ari/channels/{id}?reason_code=N` → 204 (the
/// channel hangs up with N) or 404. Returns its base URL (`…/ari`) and the server task.
pub async fn fake_ari(
    registry: Registry,
) -> (String, tokio::task::JoinHandle<()>, Arc<Mutex<Vec<String>>>) {
    use axum::extract::{Path, Query, State};
    use axum::http::StatusCode;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let state = (registry, seen.clone());
    let app = axum::Router::new()
        .route(
            "/ari/channels",
            axum::routing::get(
                |State((reg, _seen)): State<(Registry, Arc<Mutex<Vec<String>>>)>| async move {
                    axum::Json(reg.list())
                },
            ),
        )
        .route(
            "/ari/channels/{id}/variable",
            axum::routing::get(
                |State((reg, _seen)): State<(Registry, Arc<Mutex<Vec<String>>>)>,
                 Path(id): Path<String>,
                 Query(q): Query<HashMap<String, String>>| async move {
                    let name = q.get("variable").cloned().unwrap_or_default();
                    match reg.variable(&id, &name) {
                        Some(v) => (
                            StatusCode::OK,
                            axum::Json(serde_json::json!({ "value": v })),
                        ),
                        None => (
                            StatusCode::NOT_FOUND,
                            axum::Json(serde_json::json!({ "message": "Channel not found" })),
                        ),
                    }
                },
            ),
        )
        .route(
            "/ari/channels/{id}",
            axum::routing::get(
                |State((reg, seen)): State<(Registry, Arc<Mutex<Vec<String>>>)>,
                 Path(id): Path<String>| async move {
                    seen.lock().unwrap().push(format!("GET {id}"));
                    if reg.exists(&id) {
                        StatusCode::OK
                    } else {
                        StatusCode::NOT_FOUND
                    }
                },
            )
            .delete(
                |State((reg, seen)): State<(Registry, Arc<Mutex<Vec<String>>>)>,
                 Path(id): Path<String>,
                 Query(q): Query<HashMap<String, String>>| async move {
                    let code = q
                        .get("reason_code")
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(16);
                    seen.lock()
                        .unwrap()
                        .push(format!("DELETE {id} reason_code={code}"));
                    if reg.hangup(&id, code) {
                        StatusCode::NO_CONTENT
                    } else {
                        StatusCode::NOT_FOUND
                    }
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/ari"), task, seen)
}

/// A fake AMI on `127.0.0.1:0` for the fake channels (the switch side of
/// `tests/fixtures/ami/dial-digits-record-stop.txt`): banner, `Login`/`Filter`/`Events`
/// answered `Success`, then the fake channels' events (`DialBegin`, `DialEnd`,
/// `DTMFEnd`) written to every session; `MixMonitor` writes the file's header,
/// `StopMixMonitor` succeeds, `PlayDTMF` with `Receive: true` makes the channel receive
/// the digit (a running `RECORD FILE` with it among its keys stops). Every action after
/// login is logged ([`Registry::ami_actions`]).
pub async fn fake_ami(registry: Registry) -> SocketAddr {
    use tokio::io::AsyncReadExt;
    use voxbridge::ami::{Decoder, Frame};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let registry = registry.clone();
            tokio::spawn(async move {
                let (mut r, mut w) = stream.into_split();
                if w.write_all(b"Asterisk Call Manager/9.0.0\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                let (events_tx, mut events) = mpsc::unbounded_channel::<String>();
                let mut events_tx = Some(events_tx);
                let mut decoder = Decoder::default();
                let mut buf = bytes::BytesMut::from("client\r\n");
                let _ = decoder.decode(&mut buf);
                loop {
                    let message = match decoder.decode(&mut buf) {
                        Ok(Some(Frame::Message(m))) => m,
                        Ok(_) => {
                            tokio::select! {
                                n = r.read_buf(&mut buf) => match n {
                                    Ok(0) | Err(_) => return,
                                    Ok(_) => continue,
                                },
                                Some(text) = events.recv() => {
                                    if w.write_all(text.as_bytes()).await.is_err() {
                                        return;
                                    }
                                    continue;
                                }
                            }
                        }
                        Err(_) => return,
                    };
                    let action = message.get("Action").unwrap_or_default().to_string();
                    let id = message.action_id().unwrap_or_default().to_string();
                    let channel = message.get("Channel").unwrap_or_default().to_string();
                    let ok = match action.as_str() {
                        "Login" | "Filter" => true,
                        "Events" => {
                            if let Some(tx) = events_tx.take() {
                                registry.2.lock().unwrap().sessions.push(tx);
                            }
                            true
                        }
                        "MixMonitor" => {
                            let file = message.get("File").unwrap_or_default().to_string();
                            write_wav(&file, 0);
                            registry
                                .2
                                .lock()
                                .unwrap()
                                .actions
                                .push(format!("MixMonitor {channel} {file}"));
                            true
                        }
                        "StopMixMonitor" => {
                            registry
                                .2
                                .lock()
                                .unwrap()
                                .actions
                                .push(format!("StopMixMonitor {channel}"));
                            true
                        }
                        "PlayDTMF" => {
                            let digit = message.get("Digit").unwrap_or_default().to_string();
                            let mut side = registry.2.lock().unwrap();
                            side.actions.push(format!(
                                "PlayDTMF {channel} {digit} receive={}",
                                message.get("Receive").unwrap_or("false")
                            ));
                            let to = side.receive.get(&channel).cloned();
                            drop(side);
                            match (to, digit.chars().next()) {
                                (Some(to), Some(d)) if message.get("Receive") == Some("true") => {
                                    to.send(d).is_ok()
                                }
                                _ => false,
                            }
                        }
                        _ => false,
                    };
                    let reply = if ok {
                        format!("Response: Success\r\nActionID: {id}\r\n\r\n")
                    } else {
                        format!(
                            "Response: Error\r\nActionID: {id}\r\nMessage: No such channel\r\n\r\n"
                        )
                    };
                    if w.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}
