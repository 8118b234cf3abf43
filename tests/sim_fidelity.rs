//! The simulator against the real switch: for transcripts (a), (b), (c), (d), (g) and
//! (h), a tiny client replays the commands the transcript's client sent, and every frame
//! the simulator sends must match the transcript's frame at the same position: same
//! frame type and event, same header names in the same order (outer and inner), and the
//! same values in the same URL-encoding once UUIDs and numbers (times, sequence numbers,
//! ports, lengths) are set aside. For (i)–(p), captured on the bundled test switch, the
//! sequence and the behaviour headers are compared (see [`Compare::Sequence`]), and for
//! the Dial's transcripts (u)–(y) also the bridge's result variables; (o) and
//! (p) are replayed with both clients, inbound and socket server, and so is (o2), the
//! socket app in static mode. (z4), the `call-command: hangup` voxbridge ends calls
//! with, is replayed call by call (one outbound socket each).

use crate::sim_support::{assert_same_shape, decode, label, WAIT};
use bytes::BytesMut;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use voxbridge::esl::frame::{Frame, FrameDecoder};
use voxbridge_sim::transcript::{Connection, TranscriptFrame};
use voxbridge_sim::{CallScript, Callee, LingerNotice, Sim, SimConfig};

const SPEED: f64 = 20.0;

fn fixture(name: &str) -> Vec<TranscriptFrame> {
    fixture_socket(name, 1)
}

/// The frames of the transcript's `socket`-th outbound connection (z4 has four calls).
fn fixture_socket(name: &str, socket: u32) -> Vec<TranscriptFrame> {
    crate::sim_support::fixture(name)
        .into_iter()
        .filter(|f| f.connection == Connection::Outbound && f.socket == socket)
        .collect()
}

struct Client {
    stream: TcpStream,
    buf: BytesMut,
    dec: FrameDecoder,
    got: Vec<Frame>,
    eof: bool,
}

impl Client {
    async fn read_until(&mut self, count: usize) {
        while self.got.len() < count && !self.eof {
            if let Some(f) = self.dec.decode(&mut self.buf).unwrap() {
                self.got.push(f);
                continue;
            }
            match tokio::time::timeout(WAIT, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => self.eof = true,
                Ok(Ok(_)) => {}
                Err(_) => break,
            }
        }
        while let Some(f) = self.dec.decode(&mut self.buf).unwrap() {
            self.got.push(f);
        }
    }
}

/// How closely a replay is compared with its transcript.
#[derive(Clone, Copy, PartialEq)]
enum Compare {
    /// Header for header (transcripts a–h, from the switch the templates come from).
    Shape,
    /// The headers that carry the behaviour (event, application, response, digit,
    /// cause, answer state, direction), frame by frame, in two sequences compared apart:
    /// the events, and the other frames (replies, linger and disconnect notices). Where a
    /// reply or the linger notice lands among events is thread timing on the switch (in
    /// j the reply to a sendmsg came after four events; README: "its position varies").
    /// Transcripts i–p come from the bundled test switch, whose channels differ in
    /// configuration only (G722 negotiated between its loopback profiles, a different
    /// SIP variable order, host name `vm`), which the simulator's channel templates (from
    /// a–h) do not copy.
    Sequence,
}

/// The headers compared in [`Compare::Sequence`] mode.
const BEHAVIOUR: &[&str] = &[
    "Event-Name",
    "Application",
    "Application-Data",
    "Application-Response",
    "DTMF-Digit",
    "Hangup-Cause",
    "Answer-State",
    "Channel-Call-State",
    "Call-Direction",
    "Reply-Text",
    "Content-Disposition",
];

fn is_event(f: &Frame) -> bool {
    f.content_type()
        .is_some_and(|c| c.starts_with("text/event"))
}

fn behaviour(f: &Frame) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = f
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), voxbridge::esl::urlcode::decode(v)))
        .collect();
    h.extend(crate::sim_support::event_headers(f));
    BEHAVIOUR
        .iter()
        .filter_map(|n| {
            crate::sim_support::get(&h, n).map(|v| {
                // Recordings live in each switch's own directory: compare file names.
                let v = match v.rsplit_once('/') {
                    Some((_, file)) if v.ends_with(".wav") && v.starts_with('/') => file,
                    _ => v,
                };
                (n.to_string(), crate::sim_support::normalize(v))
            })
        })
        .collect()
}

/// Replays the client side of `file` against the simulator and compares.
async fn replay(file: &str, script: CallScript, config: SimConfig) -> Vec<Frame> {
    replay_as(file, script, config, Compare::Shape).await
}

async fn replay_as(
    file: &str,
    script: CallScript,
    config: SimConfig,
    compare: Compare,
) -> Vec<Frame> {
    replay_killing(file, script, config, compare, None).await
}

/// Whose channel a transcript's INBOUND-ESL client killed with `api uuid_kill`.
enum Victim {
    /// The socket's own channel (the A-leg).
    Own,
    /// This uuid, as recorded (a bridge leg's `origination_uuid`, which the replayed
    /// `bridge` command gives the simulator's leg too).
    Recorded(String),
}

/// [`replay_as`], and `after` the call starts, `api uuid_kill <victim>` over the
/// simulator's inbound side, as the transcript's INBOUND-ESL client did.
async fn replay_killing(
    file: &str,
    script: CallScript,
    config: SimConfig,
    compare: Compare,
    kill: Option<(Duration, Victim)>,
) -> Vec<Frame> {
    replay_frames(file, fixture(file), script, config, compare, kill).await
}

/// [`replay_killing`] of the given frames of `file`.
async fn replay_frames(
    file: &str,
    frames: Vec<TranscriptFrame>,
    script: CallScript,
    config: SimConfig,
    compare: Compare,
    kill: Option<(Duration, Victim)>,
) -> Vec<Frame> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let config_dir = config.recordings_dir.to_string_lossy().into_owned();
    let sim = Sim::new(config);
    let call = sim.place_call(script, addr);
    if let Some((after, victim)) = kill {
        let uuid = match victim {
            Victim::Own => call.uuid.clone(),
            Victim::Recorded(u) => u,
        };
        let inbound = sim
            .listen_inbound("127.0.0.1:0".parse().unwrap(), "ClueCon")
            .await
            .unwrap();
        let options = voxbridge::esl::inbound::InboundOptions {
            addr: inbound.local_addr().to_string(),
            password: "ClueCon".into(),
            ..voxbridge::esl::inbound::InboundOptions::default()
        };
        let real_after = sim.clock().real(after);
        tokio::spawn(async move {
            let _keep = inbound;
            let (session, _events) = voxbridge::esl::inbound::InboundSession::connect(
                &options,
                std::sync::Arc::new(voxbridge::esl::counters::EslCounters::default()),
            )
            .await
            .expect("the simulator's inbound side");
            tokio::time::sleep(real_after).await;
            let reply = session.api(&format!("uuid_kill {uuid}")).await;
            assert!(
                reply.as_ref().is_ok_and(|r| r.body.starts_with("+OK")),
                "uuid_kill {uuid}: {reply:?}"
            );
            // Keep the session until the replay is over.
            tokio::time::sleep(WAIT).await;
        });
    }
    let (stream, _) = listener.accept().await.unwrap();
    let mut client = Client {
        stream,
        buf: BytesMut::new(),
        dec: FrameDecoder::default(),
        got: Vec::new(),
        eof: false,
    };
    let recorded_uuid = frames
        .iter()
        .find(|f| f.from_switch)
        .map(|f| decode(&f.bytes))
        .and_then(|f| f.headers.get("Unique-ID").map(str::to_string))
        .expect("connect reply first");
    let mut expected = 0;
    for f in &frames {
        if f.from_switch {
            expected += 1;
            continue;
        }
        client.read_until(expected).await;
        let mut cmd = String::from_utf8_lossy(&f.bytes).into_owned();
        if let Some(ours) = client.got.first().and_then(|c| c.headers.get("Unique-ID")) {
            cmd = cmd.replace(&recorded_uuid, ours);
        }
        // A file in the test switch's recordings directory is the same file in the
        // simulator's (execute-app-arg is a header: no length to fix up).
        cmd = cmd.replace(CAPTURED_RECORDINGS_DIR, &config_dir);
        client.stream.write_all(cmd.as_bytes()).await.unwrap();
    }
    client.read_until(expected).await;
    // The transcript's client closes here (or FreeSWITCH already did).
    drop(client.stream);
    let report = call
        .report_within(WAIT)
        .await
        .expect("the call ends once the socket is closed");
    assert!(report.connected && report.got_connect);

    let want: Vec<Frame> = frames
        .iter()
        .filter(|f| f.from_switch)
        .map(|f| decode(&f.bytes))
        .collect();
    let got = client.got;
    match compare {
        Compare::Shape => {
            let want_labels: Vec<String> = want.iter().map(label).collect();
            let got_labels: Vec<String> = got.iter().map(label).collect();
            assert_eq!(
                got_labels, want_labels,
                "{file}: frame sequence differs\n got: {got_labels:#?}\nwant: {want_labels:#?}"
            );
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_same_shape(&format!("{file}: frame {i}"), g, w);
            }
        }
        Compare::Sequence => assert_same_sequences(file, &got, &want),
    }
    got
}

/// [`Compare::Sequence`]: the events, and the other frames, each as a sequence of their
/// behaviour headers.
fn assert_same_sequences(context: &str, got: &[Frame], want: &[Frame]) {
    for events in [true, false] {
        let pick = |frames: &[Frame]| -> Vec<Vec<(String, String)>> {
            frames
                .iter()
                .filter(|f| is_event(f) == events)
                .map(behaviour)
                .collect()
        };
        let (g, w) = (pick(got), pick(want));
        assert_eq!(
            g,
            w,
            "{context}: {} differ",
            if events {
                "events"
            } else {
                "replies and notices"
            }
        );
    }
}

fn client(stream: TcpStream) -> Client {
    Client {
        stream,
        buf: BytesMut::new(),
        dec: FrameDecoder::default(),
        got: Vec::new(),
        eof: false,
    }
}

/// What an originate replay saw on each connection.
struct OriginateReplay {
    inbound: Vec<Frame>,
    /// `None`: the switch never connected to the socket server.
    outbound: Option<Vec<Frame>>,
}

/// Replays an `originate … '&socket(…)'` transcript (o, p) with both of its clients: the
/// inbound one (its commands verbatim, the socket address rewritten to our listener) and,
/// when the simulator connects, the outbound one; then compares each connection's frames
/// with the transcript's as [`Compare::Sequence`] does.
async fn replay_originate(file: &str, callees: CallScript) -> OriginateReplay {
    let frames = crate::sim_support::fixture(file);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let sim = Sim::new(config(Duration::ZERO, LingerNotice::AfterHangupComplete));
    sim.set_originate_callees(callees);
    let server = sim
        .listen_inbound("127.0.0.1:0".parse().unwrap(), "ClueCon")
        .await
        .unwrap();
    let mut inbound = client(TcpStream::connect(server.local_addr()).await.unwrap());
    let mut outbound: Option<Client> = None;
    let (mut expected_in, mut expected_out) = (0, 0);
    for f in &frames {
        let is_inbound = f.connection == Connection::Inbound;
        if f.from_switch {
            if is_inbound {
                expected_in += 1;
            } else {
                expected_out += 1;
            }
            continue;
        }
        let cmd = String::from_utf8_lossy(&f.bytes).replace("127.0.0.1:8094", &addr.to_string());
        let peer = if is_inbound {
            inbound.read_until(expected_in).await;
            &mut inbound
        } else {
            if outbound.is_none() {
                let (stream, _) = tokio::time::timeout(WAIT, listener.accept())
                    .await
                    .expect("the socket app connects")
                    .unwrap();
                outbound = Some(client(stream));
            }
            let out = outbound.as_mut().unwrap();
            out.read_until(expected_out).await;
            out
        };
        peer.stream.write_all(cmd.as_bytes()).await.unwrap();
    }
    inbound.read_until(expected_in).await;
    if let Some(out) = outbound.as_mut() {
        out.read_until(expected_out).await;
    } else {
        // Give a (wrong) late connection the time to show up.
        let late = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
        assert!(late.is_err(), "{file}: the socket app connected");
    }
    let want = |conn: Connection| -> Vec<Frame> {
        frames
            .iter()
            .filter(|f| f.from_switch && f.connection == conn)
            .map(|f| decode(&f.bytes))
            .collect()
    };
    assert_same_sequences(
        &format!("{file} (inbound)"),
        &inbound.got,
        &want(Connection::Inbound),
    );
    let outbound = outbound.map(|out| {
        assert_same_sequences(
            &format!("{file} (outbound socket)"),
            &out.got,
            &want(Connection::Outbound),
        );
        out.got
    });
    OriginateReplay {
        inbound: inbound.got,
        outbound,
    }
}

/// The body of the BACKGROUND_JOB among `frames`.
fn background_job_body(frames: &[Frame]) -> String {
    frames
        .iter()
        .find(|f| crate::sim_support::event_name(f).as_deref() == Some("BACKGROUND_JOB"))
        .map(|f| {
            let inner = decode(f.body.as_deref().unwrap_or_default());
            String::from_utf8_lossy(inner.body.as_deref().unwrap_or_default()).into_owned()
        })
        .expect("a BACKGROUND_JOB")
}

fn config(park_delay: Duration, linger_notice: LingerNotice) -> SimConfig {
    SimConfig {
        speed: SPEED,
        park_delay,
        linger_notice,
        ..SimConfig::default()
    }
}

/// Parking waits for the first sendmsg, as it did in these captures.
fn park_on_sendmsg() -> SimConfig {
    config(Duration::from_secs(60), LingerNotice::AfterHangupComplete)
}

#[tokio::test]
async fn a_unanswered_call_rejected() {
    let got = replay(
        "a-unanswered-call-rejected-plain.txt",
        CallScript::ringing(),
        park_on_sendmsg(),
    )
    .await;
    assert_eq!(got.len(), 17);
}

#[tokio::test]
async fn b_answer_playback_sched_hangup() {
    // In (b) the channel parked before the subscriptions (no CHANNEL_PARK) and the
    // linger notice came right after CHANNEL_HANGUP.
    let got = replay(
        "b-answer-playback-sched-hangup-plain.txt",
        CallScript::ringing(),
        config(Duration::ZERO, LingerNotice::AfterHangup),
    )
    .await;
    assert_eq!(got.len(), 26);
}

#[tokio::test]
async fn c_caller_hangup_mid_playback() {
    let got = replay(
        "c-caller-hangup-mid-playback-plain.txt",
        CallScript::ringing().caller_hangs_up_during("playback", Duration::from_millis(1500)),
        park_on_sendmsg(),
    )
    .await;
    assert_eq!(got.len(), 20);
}

#[tokio::test]
async fn d_answered_call_json_events() {
    replay(
        "d-answered-call-json-events.txt",
        CallScript::answered(),
        park_on_sendmsg(),
    )
    .await;
}

#[tokio::test]
async fn g_no_linger_hangup() {
    let got = replay(
        "g-no-linger-hangup.txt",
        CallScript::answered(),
        park_on_sendmsg(),
    )
    .await;
    assert_eq!(got.len(), 16);
}

#[tokio::test]
async fn h_dtmf_during_playback() {
    let got = replay(
        "h-dtmf-during-playback-plain.txt",
        CallScript::ringing().dtmf_during_app(2, Duration::from_millis(1300), "1#"),
        park_on_sendmsg(),
    )
    .await;
    assert_eq!(got.len(), 28);
}

#[tokio::test]
async fn l_dtmf_prompt_barge_in_uuid_break() {
    // The caller's digits start 0.5 s into the prompt; the client breaks the prompt at the
    // first one and the others keep coming.
    let got = replay_as(
        "l-dtmf-prompt-barge-in-uuid-break.txt",
        CallScript::answered().dtmf_during_app(1, Duration::from_millis(800), "1234#"),
        // As in (b), the channel parked before the first sendmsg (no CHANNEL_PARK).
        config(Duration::ZERO, LingerNotice::AfterHangupComplete),
        Compare::Sequence,
    )
    .await;
    assert_eq!(got.len(), 25);
}

#[tokio::test]
async fn q_gather_flush_dtmf_speak_barge_in() {
    // A digit during the `sleep` ends it and is dequeued after it; flush_dtmf; a digit
    // 1 s into the spoken prompt, which the client breaks.
    let got = replay_as(
        "q-gather-flush-dtmf-speak-barge-in.txt",
        CallScript::answered()
            .speak_per_word(Duration::from_millis(400))
            .dtmf_during_app(1, Duration::from_millis(300), "9")
            .dtmf_during_app(3, Duration::from_millis(1000), "2"),
        config(Duration::ZERO, LingerNotice::AfterHangupComplete),
        Compare::Sequence,
    )
    .await;
    assert!(!got.is_empty());
}

#[tokio::test]
async fn m_record_ended_by_silence() {
    let got = replay_as(
        "m-record-ended-by-silence.txt",
        CallScript::answered(),
        config(Duration::ZERO, LingerNotice::AfterHangupComplete),
        Compare::Sequence,
    )
    .await;
    let stop = got
        .iter()
        .map(crate::sim_support::event_headers)
        .find(|h| crate::sim_support::get(h, "Event-Name") == Some("RECORD_STOP"))
        .expect("RECORD_STOP");
    assert_eq!(
        crate::sim_support::get(&stop, "variable_silence_hits_exhausted"),
        Some("true")
    );
    // Ended by silence 3.98 s in, as in the transcript; the simulator's lateness under
    // load is not recorded audio.
    assert_eq!(
        crate::sim_support::get(&stop, "variable_record_ms"),
        Some("3980")
    );
    assert!(crate::sim_support::get(&stop, "Record-File-Path")
        .unwrap()
        .ends_with(".wav"));
}

#[tokio::test]
async fn n_record_ended_by_key() {
    let got = replay_as(
        "n-record-ended-by-key.txt",
        // Apps: set (1), record (2); the caller presses # 1.5 s into the record.
        CallScript::answered().dtmf_during_app(2, Duration::from_millis(1500), "#"),
        config(Duration::ZERO, LingerNotice::AfterHangupComplete),
        Compare::Sequence,
    )
    .await;
    let stop = got
        .iter()
        .map(crate::sim_support::event_headers)
        .find(|h| crate::sim_support::get(h, "Event-Name") == Some("RECORD_STOP"))
        .expect("RECORD_STOP");
    assert_eq!(
        crate::sim_support::get(&stop, "variable_playback_terminator_used"),
        Some("#")
    );
    assert_eq!(
        crate::sim_support::get(&stop, "variable_silence_hits_exhausted"),
        Some("false")
    );
}

/// The test switch's `$${recordings_dir}`, as the transcripts show it.
const CAPTURED_RECORDINGS_DIR: &str = "/tmp/voxbridge-freeswitch-1.10.12/recordings";

/// A simulator whose recordings directory is a fresh temporary one; commands of the
/// transcript that name the test switch's directory are rewritten to it.
fn recording_config(dir: &std::path::Path) -> SimConfig {
    SimConfig {
        recordings_dir: dir.to_path_buf(),
        ..config(Duration::ZERO, LingerNotice::AfterHangupComplete)
    }
}

/// The RIFF `data` length of a WAV file the simulator wrote, and the file's size.
fn wav_data_len(path: &str) -> (u64, u64) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WAVE");
    let data = u32::from_le_bytes(bytes[40..44].try_into().unwrap());
    (u64::from(data), bytes.len() as u64)
}

#[tokio::test]
async fn r_record_ended_by_max_length() {
    let dir = tempfile::tempdir().unwrap();
    let got = replay_as(
        "r-record-ended-by-max-length.txt",
        // `record … 3 200 10`: ten seconds of silence (~20 s on the switch's G722) never
        // come before the limit. The default silence (3.98 s, capture m's two seconds)
        // would, when the record starts in the first 20 ms of a second (the limit then
        // runs to 3.98–4 s): a 2% flake seen once under load.
        CallScript::answered().record_silence_after(Duration::from_secs(20)),
        recording_config(dir.path()),
        Compare::Sequence,
    )
    .await;
    let stop = &events_named(&got, "RECORD_STOP")[0];
    let get = |n| crate::sim_support::get(stop, n);
    assert_eq!(get("variable_silence_hits_exhausted"), Some("false"));
    assert_eq!(get("variable_playback_terminator_used"), None);
    // The limit (3 s) is checked on whole epoch seconds: the file runs up to 1 s past it.
    let ms: u64 = get("variable_record_ms").unwrap().parse().unwrap();
    assert!((3000..=4000).contains(&ms), "{ms}");
    let path = get("Record-File-Path").unwrap();
    assert!(path.starts_with(dir.path().to_str().unwrap()), "{path}");
    let (data, size) = wav_data_len(path);
    assert_eq!(size.to_string(), get("variable_record_file_size").unwrap());
    assert_eq!(data, ms * 8 * 2, "8 kHz 16-bit mono for {ms} ms");
}

#[tokio::test]
async fn s_record_ended_by_caller_hangup() {
    let dir = tempfile::tempdir().unwrap();
    let got = replay_as(
        "s-record-ended-by-caller-hangup.txt",
        CallScript::answered().caller_hangs_up_during("record", Duration::from_millis(1500)),
        // The linger notice came right after CHANNEL_HANGUP, before RECORD_STOP.
        SimConfig {
            linger_notice: LingerNotice::AfterHangup,
            ..recording_config(dir.path())
        },
        Compare::Sequence,
    )
    .await;
    let stop = &events_named(&got, "RECORD_STOP")[0];
    let ms: u64 = crate::sim_support::get(stop, "variable_record_ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!((1500..3000).contains(&ms), "{ms}");
    let path = crate::sim_support::get(stop, "Record-File-Path").unwrap();
    let (data, _) = wav_data_len(path);
    assert_eq!(data, ms * 16);
}

#[tokio::test]
async fn t_record_session_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let got = replay_as(
        "t-record-session-and-stop.txt",
        CallScript::answered(),
        recording_config(dir.path()),
        Compare::Sequence,
    )
    .await;
    let stops = events_named(&got, "RECORD_STOP");
    assert_eq!(stops.len(), 2);
    let ms = |e: &Vec<(String, String)>| -> u64 {
        crate::sim_support::get(e, "variable_record_ms")
            .unwrap()
            .parse()
            .unwrap()
    };
    // A 2 s tone before stop_record_session, a 1 s tone before the hangup.
    assert!((2000..2500).contains(&ms(&stops[0])), "{}", ms(&stops[0]));
    assert!((1000..1500).contains(&ms(&stops[1])), "{}", ms(&stops[1]));
    for stop in &stops {
        let path = crate::sim_support::get(stop, "Record-File-Path").unwrap();
        let (data, _) = wav_data_len(path);
        assert_eq!(data, ms(stop) * 16, "{path}");
    }
}

#[tokio::test]
async fn z_uuid_record_beside_an_app_and_record_broken() {
    let dir = tempfile::tempdir().unwrap();
    let got = replay_as(
        "z-uuid-record-beside-an-app-and-record-broken.txt",
        CallScript::answered(),
        recording_config(dir.path()),
        Compare::Sequence,
    )
    .await;
    let starts = events_named(&got, "RECORD_START");
    let stops = events_named(&got, "RECORD_STOP");
    assert_eq!((starts.len(), stops.len()), (2, 2));
    let ms = |e: &Vec<(String, String)>| -> u64 {
        crate::sim_support::get(e, "variable_record_ms")
            .unwrap()
            .parse()
            .unwrap()
    };
    // The replay sends the client's commands without the capture's pauses, so the
    // lengths are short; what holds is the order: both stops, each before what follows.
    assert!(ms(&stops[0]) < 1500 && ms(&stops[1]) < 1500);
    let done = events_named(&got, "CHANNEL_EXECUTE_COMPLETE");
    let record = done
        .iter()
        .find(|h| crate::sim_support::get(h, "Application") == Some("record"))
        .unwrap();
    assert_eq!(
        crate::sim_support::get(record, "variable_silence_hits_exhausted"),
        Some("false")
    );
    assert_eq!(
        crate::sim_support::get(record, "variable_playback_terminator_used"),
        None
    );
    for stop in &stops {
        let path = crate::sim_support::get(stop, "Record-File-Path").unwrap();
        let (data, _) = wav_data_len(path);
        assert_eq!(data, ms(stop) * 16, "{path}");
        let _ = std::fs::remove_file(path);
    }
}

/// The events of one name in a replay, decoded.
fn events_named(got: &[Frame], name: &str) -> Vec<Vec<(String, String)>> {
    got.iter()
        .map(crate::sim_support::event_headers)
        .filter(|h| crate::sim_support::get(h, "Event-Name") == Some(name))
        .collect()
}

#[tokio::test]
async fn i_bridge_answered_callee_hangs_up() {
    let got = replay_as(
        "i-bridge-answered-callee-hangs-up.txt",
        CallScript::ringing().callee(
            "7002",
            Callee::Answers {
                after: Duration::ZERO,
                hangs_up_after: Some(Duration::from_secs(2)),
            },
        ),
        config(Duration::ZERO, LingerNotice::AfterHangupComplete),
        Compare::Sequence,
    )
    .await;
    let want = fixture("i-bridge-answered-callee-hangs-up.txt");
    let b_leg = want
        .iter()
        .filter(|f| f.from_switch)
        .map(|f| crate::sim_support::event_headers(&decode(&f.bytes)))
        .find_map(|h| crate::sim_support::get(&h, "Other-Leg-Unique-ID").map(str::to_string))
        .unwrap();
    let bridge = &events_named(&got, "CHANNEL_BRIDGE")[0];
    assert_eq!(
        crate::sim_support::get(bridge, "Other-Leg-Unique-ID"),
        Some(b_leg.as_str())
    );
    assert_eq!(
        crate::sim_support::get(bridge, "Bridge-B-Unique-ID"),
        Some(b_leg.as_str())
    );
    let done = events_named(&got, "CHANNEL_EXECUTE_COMPLETE");
    let bridge_done = done
        .iter()
        .find(|h| crate::sim_support::get(h, "Application") == Some("bridge"))
        .unwrap();
    for (var, value) in [
        ("variable_DIALSTATUS", "SUCCESS"),
        ("variable_originate_disposition", "SUCCESS"),
        ("variable_bridge_hangup_cause", "NORMAL_CLEARING"),
        ("variable_last_bridge_to", b_leg.as_str()),
    ] {
        assert_eq!(
            crate::sim_support::get(bridge_done, var),
            Some(value),
            "{var}"
        );
    }
}

#[tokio::test]
async fn j_bridge_busy() {
    let got = replay_as(
        "j-bridge-busy.txt",
        CallScript::ringing().callee("7003", Callee::Refuses(486)),
        config(Duration::ZERO, LingerNotice::AfterHangupComplete),
        Compare::Sequence,
    )
    .await;
    let done = events_named(&got, "CHANNEL_EXECUTE_COMPLETE");
    assert_eq!(
        crate::sim_support::get(&done[0], "variable_DIALSTATUS"),
        Some("BUSY")
    );
    let hc = &events_named(&got, "CHANNEL_HANGUP_COMPLETE")[0];
    assert_eq!(
        crate::sim_support::get(hc, "variable_sip_hangup_disposition"),
        Some("send_refuse")
    );
}

#[tokio::test]
async fn k_bridge_no_answer() {
    let got = replay_as(
        "k-bridge-no-answer.txt",
        CallScript::ringing().callee("7004", Callee::RingsForever),
        config(Duration::ZERO, LingerNotice::AfterHangupComplete),
        Compare::Sequence,
    )
    .await;
    let done = events_named(&got, "CHANNEL_EXECUTE_COMPLETE");
    assert_eq!(
        crate::sim_support::get(&done[0], "variable_DIALSTATUS"),
        Some("NOANSWER")
    );
    assert_eq!(
        crate::sim_support::get(&done[0], "Answer-State"),
        Some("ringing")
    );
}

/// The value of `var` in the bridge's CHANNEL_EXECUTE_COMPLETE of `frames`.
/// The bridge's completion carries `vars` with the values the switch recorded in `file`.
fn assert_bridge_vars_as_recorded(got: &[Frame], file: &str, vars: &[&str]) {
    let want = recorded(file);
    for var in vars {
        assert_eq!(
            bridge_completion_var(got, var),
            bridge_completion_var(&want, var),
            "{var}"
        );
    }
}

fn bridge_completion_var(frames: &[Frame], var: &str) -> Option<String> {
    events_named(frames, "CHANNEL_EXECUTE_COMPLETE")
        .iter()
        .find(|h| crate::sim_support::get(h, "Application") == Some("bridge"))
        .and_then(|h| crate::sim_support::get(h, var).map(str::to_string))
}

fn recorded(file: &str) -> Vec<Frame> {
    fixture(file)
        .iter()
        .filter(|f| f.from_switch)
        .map(|f| decode(&f.bytes))
        .collect()
}

#[tokio::test]
async fn u_bridge_caller_cancels_while_ringing() {
    // The caller's CANCEL 1 s into the ringing: the caller's channel ends
    // ORIGINATOR_CANCEL, the bridge reports DIALSTATUS=CANCEL for its leg.
    let file = "u-bridge-caller-cancels-while-ringing.txt";
    let got = replay_as(
        file,
        CallScript::ringing()
            .callee("7004", Callee::RingsForever)
            .caller_hangs_up_during("bridge", Duration::from_secs(1)),
        config(Duration::ZERO, LingerNotice::AfterHangupComplete),
        Compare::Sequence,
    )
    .await;
    assert_bridge_vars_as_recorded(
        &got,
        file,
        &[
            "variable_DIALSTATUS",
            "variable_originate_failed_cause",
            "variable_originate_causes",
        ],
    );
}

#[tokio::test]
async fn v_bridge_callee_side_hangs_up() {
    // The callee's own BYE reads on the caller's socket exactly as i's kill of B.
    let file = "v-bridge-callee-side-hangs-up.txt";
    let got = replay_as(
        file,
        CallScript::ringing().callee(
            "7002",
            Callee::Answers {
                after: Duration::ZERO,
                hangs_up_after: Some(Duration::from_secs(2)),
            },
        ),
        config(Duration::ZERO, LingerNotice::AfterHangupComplete),
        Compare::Sequence,
    )
    .await;
    assert_bridge_vars_as_recorded(
        &got,
        file,
        &[
            "variable_DIALSTATUS",
            "variable_bridge_hangup_cause",
            "variable_last_bridge_to",
            "variable_originate_causes",
        ],
    );
}

#[tokio::test]
async fn x_bridge_two_destinations_lose_race() {
    // 7004 rings, 7002 answers and wins: `originate_causes` in the switch's array form,
    // in dial-string order, the loser LOSE_RACE.
    let file = "x-bridge-two-destinations-lose-race.txt";
    let got = replay_as(
        file,
        CallScript::ringing()
            .callee("7004", Callee::RingsForever)
            .callee(
                "7002",
                Callee::Answers {
                    after: Duration::ZERO,
                    hangs_up_after: Some(Duration::from_secs(2)),
                },
            ),
        config(Duration::ZERO, LingerNotice::AfterHangupComplete),
        Compare::Sequence,
    )
    .await;
    let want = recorded(file);
    let causes = bridge_completion_var(&want, "variable_originate_causes").unwrap();
    assert!(causes.starts_with("ARRAY::"), "{causes}");
    for var in [
        "variable_DIALSTATUS",
        "variable_bridge_hangup_cause",
        "variable_last_bridge_to",
        "variable_originate_causes",
    ] {
        assert_eq!(
            bridge_completion_var(&got, var),
            bridge_completion_var(&want, var),
            "{var}"
        );
    }
}

/// The `origination_uuid` of the first leg of the recorded `bridge`.
fn recorded_b_leg(file: &str) -> String {
    recorded(file)
        .iter()
        .map(crate::sim_support::event_headers)
        .find_map(|h| {
            (crate::sim_support::get(&h, "Application") == Some("bridge"))
                .then(|| crate::sim_support::get(&h, "Application-Data").map(str::to_string))
                .flatten()
        })
        .and_then(|d| {
            d.split("origination_uuid=")
                .nth(1)
                .and_then(|r| r.split([',', '}', ']']).next())
                .map(str::to_string)
        })
        .expect("the recorded bridge names its leg")
}

#[tokio::test]
async fn w_bridge_a_leg_killed() {
    // `uuid_kill` of the socket's channel 2 s into the bridge: the bridge still reports
    // a bridge that happened, the callee's cause NORMAL_CLEARING.
    let file = "w-bridge-a-leg-killed.txt";
    let got = replay_killing(
        file,
        CallScript::ringing().callee(
            "7002",
            Callee::Answers {
                after: Duration::ZERO,
                hangs_up_after: None,
            },
        ),
        config(Duration::ZERO, LingerNotice::AfterHangupComplete),
        Compare::Sequence,
        Some((Duration::from_secs(2), Victim::Own)),
    )
    .await;
    assert_bridge_vars_as_recorded(
        &got,
        file,
        &[
            "variable_DIALSTATUS",
            "variable_bridge_hangup_cause",
            "variable_last_bridge_to",
            "variable_originate_causes",
        ],
    );
}

#[tokio::test]
async fn y_bridge_ringing_b_leg_killed() {
    // `uuid_kill` of the only leg while it rings: the bridge fails at once with
    // NORMAL_CLEARING (without continue_on_fail the switch then hangs the caller up).
    let file = "y-bridge-ringing-b-leg-killed.txt";
    let got = replay_killing(
        file,
        CallScript::ringing().callee("7004", Callee::RingsForever),
        config(Duration::ZERO, LingerNotice::AfterHangupComplete),
        Compare::Sequence,
        Some((
            Duration::from_secs(1),
            Victim::Recorded(recorded_b_leg(file)),
        )),
    )
    .await;
    assert_bridge_vars_as_recorded(
        &got,
        file,
        &[
            "variable_DIALSTATUS",
            "variable_originate_failed_cause",
            "variable_originate_causes",
        ],
    );
}

/// The bundled test switch's destinations as the originate transcripts reach them.
fn test_switch_callees() -> CallScript {
    CallScript::answered()
        .callee(
            "7008",
            Callee::Answers {
                after: Duration::from_secs(2),
                hangs_up_after: None,
            },
        )
        .callee("7003", Callee::Refuses(486))
        .callee("7004", Callee::RingsForever)
}

#[tokio::test]
async fn o_originate_socket_answered() {
    let r = replay_originate("o-originate-socket-answered.txt", test_switch_callees()).await;
    let want = fixture("o-originate-socket-answered.txt");
    let origination_uuid = decode(&want.iter().find(|f| f.from_switch).unwrap().bytes)
        .headers
        .get("Unique-ID")
        .unwrap()
        .to_string();
    assert_eq!(
        background_job_body(&r.inbound),
        format!("+OK {origination_uuid}\n")
    );
    // The socket serves the originated channel itself.
    let outbound = r.outbound.expect("the socket app connected");
    let connect = &outbound[0];
    assert_eq!(
        connect.headers.get("Unique-ID"),
        Some(origination_uuid.as_str())
    );
    assert_eq!(
        connect.headers.get("Channel-Name"),
        Some("sofia/external/7008%40127.0.0.1%3A5060")
    );
    assert_eq!(
        connect.headers.get("Caller-Destination-Number"),
        Some("7008")
    );
    // After the answer the profile names the callee as the caller, and the other way round.
    assert_eq!(connect.headers.get("Caller-Caller-ID-Number"), Some("7008"));
    assert_eq!(
        connect.headers.get("Caller-Callee-ID-Number"),
        Some("15551230000")
    );
    assert_eq!(
        connect.headers.get("Caller-Orig-Caller-ID-Number"),
        Some("15551230000")
    );
    assert_eq!(connect.headers.get("variable_direction"), Some("outbound"));
    assert_eq!(connect.headers.get("Socket-Mode"), Some("async"));
    assert_eq!(connect.headers.get("Control"), Some("full"));
}

#[tokio::test]
async fn p_originate_socket_not_answered() {
    let r = replay_originate("p-originate-socket-not-answered.txt", test_switch_callees()).await;
    assert!(r.outbound.is_none());
    assert_eq!(background_job_body(&r.inbound), "-ERR NO_ANSWER\n");
    let hc = events_named(&r.inbound, "CHANNEL_HANGUP_COMPLETE");
    assert_eq!(
        crate::sim_support::get(&hc[0], "variable_sip_hangup_disposition"),
        Some("send_cancel")
    );
    assert_eq!(
        crate::sim_support::get(&hc[0], "variable_hangup_cause_q850"),
        Some("19")
    );
}

#[tokio::test]
async fn o2_originate_socket_unquoted_app_args() {
    // Unquoted, originate splits `&socket(addr async full)` on spaces: the app gets
    // `addr` alone and connects in static, single-channel mode: `linger` and `event`
    // are refused, and the socket closes right after the hangup, without
    // CHANNEL_HANGUP_COMPLETE (inbound listeners still get it).
    let r = replay_originate(
        "o2-originate-socket-unquoted-app-args.txt",
        test_switch_callees(),
    )
    .await;
    let outbound = r.outbound.expect("the socket app connected");
    let connect = &outbound[0];
    assert_eq!(connect.headers.get("Socket-Mode"), Some("static"));
    assert_eq!(connect.headers.get("Control"), Some("single-channel"));
    assert!(events_named(&outbound, "CHANNEL_HANGUP_COMPLETE").is_empty());
    assert_eq!(events_named(&r.inbound, "CHANNEL_HANGUP_COMPLETE").len(), 1);
}

#[tokio::test]
async fn p2_originate_socket_busy() {
    // A refusal: CHANNEL_HANGUP_COMPLETE (486, q850 17) comes before the job's result.
    let r = replay_originate("p2-originate-socket-busy.txt", test_switch_callees()).await;
    assert!(r.outbound.is_none());
    assert_eq!(background_job_body(&r.inbound), "-ERR USER_BUSY\n");
    let hc = events_named(&r.inbound, "CHANNEL_HANGUP_COMPLETE");
    assert_eq!(
        crate::sim_support::get(&hc[0], "variable_hangup_cause_q850"),
        Some("17")
    );
    assert_eq!(
        crate::sim_support::get(&hc[0], "variable_sip_hangup_disposition"),
        Some("recv_refuse")
    );
}

#[tokio::test]
async fn p3_originate_socket_cancelled_while_ringing() {
    // `uuid_kill <O> ORIGINATOR_CANCEL` at the first CHANNEL_PROGRESS: the channel ends
    // ORIGINATOR_CANCEL (q850 16, send_cancel), then `-ERR ORIGINATOR_CANCEL`.
    let r = replay_originate(
        "p3-originate-socket-cancelled-while-ringing.txt",
        test_switch_callees(),
    )
    .await;
    assert!(r.outbound.is_none());
    assert_eq!(background_job_body(&r.inbound), "-ERR ORIGINATOR_CANCEL\n");
    let hc = events_named(&r.inbound, "CHANNEL_HANGUP_COMPLETE");
    assert_eq!(
        crate::sim_support::get(&hc[0], "Hangup-Cause"),
        Some("ORIGINATOR_CANCEL")
    );
    assert_eq!(
        crate::sim_support::get(&hc[0], "variable_hangup_cause_q850"),
        Some("16")
    );
    assert_eq!(
        crate::sim_support::get(&hc[0], "variable_sip_hangup_disposition"),
        Some("send_cancel")
    );
}

#[tokio::test]
async fn p4_originate_socket_time_limit_armed_at_answer() {
    // `execute_on_answer='sched_hangup +2 ALLOTTED_TIMEOUT'`: the switch hangs the
    // answered call up by itself, the socket sees ALLOTTED_TIMEOUT.
    let callees = CallScript::answered().callee(
        "7002",
        Callee::Answers {
            after: Duration::ZERO,
            hangs_up_after: None,
        },
    );
    let r = replay_originate("p4-originate-socket-time-limit.txt", callees).await;
    let outbound = r.outbound.expect("the socket app connected");
    let hangup = events_named(&outbound, "CHANNEL_HANGUP");
    assert_eq!(
        crate::sim_support::get(&hangup[0], "Hangup-Cause"),
        Some("ALLOTTED_TIMEOUT")
    );
    assert!(background_job_body(&r.inbound).starts_with("+OK "));
}

/// z4: `call-command: hangup` on an unanswered channel, one call per cause. The
/// simulator hangs up with the same cause and no application runs for it. Call 1
/// (USER_BUSY, socket 1) is left out: its socket got the channel's earlier events
/// (CHANNEL_STATE, the `socket` app's CHANNEL_EXECUTE, CHANNEL_PARK) 0.5 s late, after
/// the linger notice — the switch's event dispatch, not the command; calls 2 and 3 did
/// not. USER_BUSY's 486 is checked end to end (`e2e_rules`, the live suite).
#[tokio::test]
async fn z4_hangup_call_command_unanswered() {
    let file = "z4-hangup-call-command.txt";
    for (socket, cause) in [(2, "CALL_REJECTED"), (3, "NORMAL_CLEARING")] {
        let got = replay_frames(
            file,
            fixture_socket(file, socket),
            CallScript::ringing(),
            config(Duration::ZERO, LingerNotice::AfterHangupComplete),
            Compare::Sequence,
            None,
        )
        .await;
        let hangup = &events_named(&got, "CHANNEL_HANGUP")[0];
        assert_eq!(
            crate::sim_support::get(hangup, "Hangup-Cause"),
            Some(cause),
            "socket {socket}"
        );
        assert!(
            events_named(&got, "CHANNEL_EXECUTE")
                .iter()
                .all(|h| crate::sim_support::get(h, "Application") == Some("socket")),
            "socket {socket}: no application of ours ran"
        );
    }
}

/// z5: the handshake in one write (`connect`, `myevents`, `nixevent`, `linger` before
/// the channel data came back): the simulator answers them in order, as the switch did,
/// and the call then ends as in the capture. The subscription is in place before the
/// channel parks, so CHANNEL_PARK (not nixed in the capture) reaches the socket, as it
/// did on the switch: the simulator parks after its default delay, not at `connect`.
#[tokio::test]
async fn z5_handshake_in_one_write() {
    let file = "z5-handshake-in-one-write.txt";
    let got = replay_frames(
        file,
        fixture(file),
        CallScript::ringing(),
        config(Duration::from_millis(20), LingerNotice::AfterHangupComplete),
        Compare::Sequence,
        None,
    )
    .await;
    assert_eq!(got[0].headers.get("Event-Name"), Some("CHANNEL_DATA"));
    let replies: Vec<&str> = got[1..4]
        .iter()
        .map(|f| f.headers.get("Reply-Text").unwrap_or_default())
        .collect();
    assert_eq!(
        replies,
        ["+OK Events Enabled", "+OK events nixed", "+OK will linger"]
    );
}

/// z4 socket 4: the command queued behind two event-locked playbacks runs when the
/// second ends, and the playback sent after it never runs.
#[tokio::test]
async fn z4_hangup_call_command_queued_behind_playbacks() {
    let file = "z4-hangup-call-command.txt";
    let got = replay_frames(
        file,
        fixture_socket(file, 4),
        CallScript::answered(),
        config(Duration::ZERO, LingerNotice::AfterHangupComplete),
        Compare::Sequence,
        None,
    )
    .await;
    let names: Vec<String> = got
        .iter()
        .map(crate::sim_support::event_headers)
        .filter_map(|h| {
            let name = crate::sim_support::get(&h, "Event-Name")?;
            // The `socket` app's data is each listener's address.
            let app = match crate::sim_support::get(&h, "Application") {
                Some("socket") => "socket",
                _ => crate::sim_support::get(&h, "Application-Data").unwrap_or(""),
            };
            matches!(
                name,
                "CHANNEL_EXECUTE" | "CHANNEL_EXECUTE_COMPLETE" | "CHANNEL_HANGUP"
            )
            .then(|| format!("{name} {app}").trim().to_string())
        })
        .collect();
    assert_eq!(
        names,
        [
            "CHANNEL_EXECUTE tone_stream://%(1000,0,440)",
            "CHANNEL_EXECUTE_COMPLETE tone_stream://%(1000,0,440)",
            "CHANNEL_EXECUTE tone_stream://%(500,0,660)",
            "CHANNEL_EXECUTE_COMPLETE tone_stream://%(500,0,660)",
            "CHANNEL_HANGUP",
            "CHANNEL_EXECUTE_COMPLETE socket",
        ]
    );
}
