//! Replays the real FreeSWITCH 1.10.12 captures in `tests/fixtures/esl/` through the codec:
//! every switch frame must decode to the right message type with the right key headers,
//! and every command the capture's client sent must be what our encoder produces for the
//! same command.

use bytes::BytesMut;
use std::collections::BTreeMap;
use voxbridge::esl::command::{Command, Execute, Linger};
use voxbridge::esl::event::{EventFormat, Message};
use voxbridge::esl::frame::FrameDecoder;
use voxbridge_sim::transcript::{self, Connection, TranscriptFrame};

fn fixture(name: &str) -> Vec<TranscriptFrame> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/esl");
    let path = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with(&format!("{name}-")) && f.ends_with(".txt"))
        })
        .unwrap_or_else(|| panic!("no fixture {name}"));
    transcript::parse(&std::fs::read(path).unwrap()).unwrap()
}

fn label(f: &TranscriptFrame) -> String {
    let c = match f.connection {
        Connection::Outbound => "OUTBOUND",
        Connection::Inbound => "INBOUND",
    };
    format!("{c}#{}", f.socket)
}

/// The switch frames of each connection, decoded from the concatenated byte stream fed in
/// `chunk`-sized reads, next to the raw bytes of each captured frame.
fn decode_connections(
    frames: &[TranscriptFrame],
    chunk: usize,
) -> BTreeMap<String, Vec<(Message, Vec<u8>)>> {
    let mut streams: BTreeMap<String, Vec<&TranscriptFrame>> = BTreeMap::new();
    for f in frames.iter().filter(|f| f.from_switch) {
        streams.entry(label(f)).or_default().push(f);
    }
    let mut out = BTreeMap::new();
    for (conn, fs) in streams {
        let wire: Vec<u8> = fs.iter().flat_map(|f| f.bytes.iter().copied()).collect();
        let mut dec = FrameDecoder::default();
        let mut buf = BytesMut::new();
        let mut msgs = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(frame) = dec.decode(&mut buf).expect("transcript frames decode") {
                msgs.push(Message::decode(frame));
            }
        }
        assert!(buf.is_empty(), "{conn}: {} bytes left over", buf.len());
        assert_eq!(
            msgs.len(),
            fs.len(),
            "{conn}: one message per captured frame"
        );
        out.insert(
            conn,
            msgs.into_iter()
                .zip(fs.iter().map(|f| f.bytes.clone()))
                .collect(),
        );
    }
    out
}

/// What a decoded message is, in the same words as [`raw_kind`].
fn kind(m: &Message) -> String {
    match m {
        Message::AuthRequest => "auth".into(),
        Message::Reply(_) => "reply".into(),
        Message::ChannelData(_) => "channel_data".into(),
        Message::ApiResponse(_) => "api".into(),
        Message::Event(e) => e.name().to_string(),
        Message::Diverted(_) => "diverted".into(),
        Message::Disconnect(d) if d.is_final() => "disconnect".into(),
        Message::Disconnect(_) => "linger".into(),
        Message::RudeRejection(_) => "rude".into(),
        Message::Log(_) => "log".into(),
        Message::Unexpected(u) => format!("unexpected: {}", u.reason),
    }
}

/// What a captured frame is, judged from its raw bytes alone (independent of the codec).
fn raw_kind(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    if text.starts_with("Event-Name: ") {
        return "channel_data".into();
    }
    let ct = text
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or("?");
    match ct {
        "text/event-plain" => text
            .lines()
            .find_map(|l| l.strip_prefix("Event-Name: "))
            .unwrap_or("?")
            .to_string(),
        "text/event-json" => {
            let at = text.find("\"Event-Name\":\"").expect("json event name") + 14;
            text[at..].split('"').next().unwrap().to_string()
        }
        "text/disconnect-notice" if text.contains("Content-Disposition: linger") => "linger".into(),
        "text/disconnect-notice" => "disconnect".into(),
        "command/reply" => "reply".into(),
        "api/response" => "api".into(),
        "auth/request" => "auth".into(),
        other => other.to_string(),
    }
}

/// Every transcript: a–h from the first capture session, i–t and the Dial's u–y
/// recorded with `examples/capture.rs`.
const ALL: &[&str] = &[
    "a", "b", "c", "d", "e", "e2", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "o2", "p",
    "r", "s", "t", "u", "v", "w", "x", "y",
];

type Expected = (&'static str, &'static str, &'static [(&'static str, usize)]);

/// Per transcript and connection: how many frames of each kind the switch sent.
const EXPECTED: &[Expected] = &[
    (
        "a",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 4),
        ],
    ),
    (
        "a",
        "OUTBOUND#1",
        &[
            ("CHANNEL_EXECUTE", 1),
            ("CHANNEL_EXECUTE_COMPLETE", 2),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_PARK", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNPARK", 1),
            ("channel_data", 1),
            ("disconnect", 1),
            ("linger", 1),
            ("reply", 5),
        ],
    ),
    (
        "b",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 4),
        ],
    ),
    (
        "b",
        "OUTBOUND#1",
        &[
            ("CHANNEL_ANSWER", 1),
            ("CHANNEL_EXECUTE", 4),
            ("CHANNEL_EXECUTE_COMPLETE", 5),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_PROGRESS_MEDIA", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNPARK", 1),
            ("channel_data", 1),
            ("disconnect", 1),
            ("linger", 1),
            ("reply", 7),
        ],
    ),
    (
        "c",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("api", 1),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 4),
        ],
    ),
    (
        "c",
        "OUTBOUND#1",
        &[
            ("CHANNEL_ANSWER", 1),
            ("CHANNEL_EXECUTE", 2),
            ("CHANNEL_EXECUTE_COMPLETE", 3),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_PARK", 1),
            ("CHANNEL_PROGRESS_MEDIA", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNPARK", 1),
            ("channel_data", 1),
            ("linger", 1),
            ("reply", 5),
        ],
    ),
    (
        "d",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 4),
        ],
    ),
    (
        "d",
        "OUTBOUND#1",
        &[
            ("CHANNEL_EXECUTE", 2),
            ("CHANNEL_EXECUTE_COMPLETE", 3),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_PARK", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNPARK", 1),
            ("channel_data", 1),
            ("disconnect", 1),
            ("linger", 1),
            ("reply", 6),
        ],
    ),
    (
        "e",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 3),
            ("CHANNEL_HANGUP_COMPLETE", 2),
            ("api", 7),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 9),
        ],
    ),
    (
        "e2",
        "OUTBOUND#1",
        &[
            ("CHANNEL_EXECUTE", 1),
            ("CHANNEL_EXECUTE_COMPLETE", 2),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_PARK", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNPARK", 1),
            ("channel_data", 1),
            ("disconnect", 1),
            ("linger", 1),
            ("reply", 4),
        ],
    ),
    (
        "e2",
        "OUTBOUND#2",
        &[
            ("CHANNEL_EXECUTE", 1),
            ("CHANNEL_EXECUTE_COMPLETE", 2),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNPARK", 1),
            ("channel_data", 1),
            ("disconnect", 1),
            ("linger", 1),
            ("reply", 4),
        ],
    ),
    (
        "f",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 8),
            ("CHANNEL_HANGUP_COMPLETE", 8),
            ("auth", 8),
            ("disconnect", 8),
            ("reply", 48),
        ],
    ),
    (
        "g",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 4),
        ],
    ),
    (
        "g",
        "OUTBOUND#1",
        &[
            ("CHANNEL_EXECUTE", 2),
            ("CHANNEL_EXECUTE_COMPLETE", 3),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_PARK", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNPARK", 1),
            ("channel_data", 1),
            ("disconnect", 1),
            ("reply", 3),
        ],
    ),
    (
        "h",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("api", 1),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 4),
        ],
    ),
    (
        "h",
        "OUTBOUND#1",
        &[
            ("CHANNEL_ANSWER", 1),
            ("CHANNEL_EXECUTE", 3),
            ("CHANNEL_EXECUTE_COMPLETE", 4),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_PARK", 1),
            ("CHANNEL_PROGRESS_MEDIA", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNPARK", 1),
            ("DTMF", 2),
            ("api", 1),
            ("channel_data", 1),
            ("disconnect", 1),
            ("linger", 1),
            ("reply", 7),
        ],
    ),
    (
        "i",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("api", 1),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 5),
        ],
    ),
    (
        "i",
        "OUTBOUND#1",
        &[
            ("CHANNEL_ANSWER", 1),
            ("CHANNEL_BRIDGE", 1),
            ("CHANNEL_EXECUTE", 2),
            ("CHANNEL_EXECUTE_COMPLETE", 3),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_PROGRESS_MEDIA", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNBRIDGE", 1),
            ("CHANNEL_UNPARK", 1),
            ("channel_data", 1),
            ("disconnect", 1),
            ("linger", 1),
            ("reply", 6),
        ],
    ),
    (
        "j",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 5),
        ],
    ),
    (
        "j",
        "OUTBOUND#1",
        &[
            ("CHANNEL_EXECUTE", 1),
            ("CHANNEL_EXECUTE_COMPLETE", 2),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNPARK", 1),
            ("channel_data", 1),
            ("disconnect", 1),
            ("linger", 1),
            ("reply", 6),
        ],
    ),
    (
        "k",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 5),
        ],
    ),
    (
        "k",
        "OUTBOUND#1",
        &[
            ("CHANNEL_EXECUTE", 2),
            ("CHANNEL_EXECUTE_COMPLETE", 3),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_PROGRESS", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNPARK", 1),
            ("channel_data", 1),
            ("disconnect", 1),
            ("linger", 1),
            ("reply", 6),
        ],
    ),
    (
        "l",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("api", 1),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 5),
        ],
    ),
    (
        "l",
        "OUTBOUND#1",
        &[
            ("CHANNEL_EXECUTE", 2),
            ("CHANNEL_EXECUTE_COMPLETE", 3),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNPARK", 1),
            ("DTMF", 5),
            ("api", 1),
            ("channel_data", 1),
            ("disconnect", 1),
            ("linger", 1),
            ("reply", 6),
        ],
    ),
    (
        "m",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 5),
        ],
    ),
    (
        "m",
        "OUTBOUND#1",
        &[
            ("CHANNEL_EXECUTE", 2),
            ("CHANNEL_EXECUTE_COMPLETE", 3),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNPARK", 1),
            ("RECORD_START", 1),
            ("RECORD_STOP", 1),
            ("channel_data", 1),
            ("disconnect", 1),
            ("linger", 1),
            ("reply", 6),
        ],
    ),
    (
        "n",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("api", 1),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 5),
        ],
    ),
    (
        "n",
        "OUTBOUND#1",
        &[
            ("CHANNEL_EXECUTE", 3),
            ("CHANNEL_EXECUTE_COMPLETE", 4),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNPARK", 1),
            ("DTMF", 1),
            ("RECORD_START", 1),
            ("RECORD_STOP", 1),
            ("channel_data", 1),
            ("disconnect", 1),
            ("linger", 1),
            ("reply", 7),
        ],
    ),
    (
        "o",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("CHANNEL_ANSWER", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_PROGRESS", 1),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 6),
        ],
    ),
    (
        "o",
        "OUTBOUND#1",
        &[
            ("CHANNEL_EXECUTE", 2),
            ("CHANNEL_EXECUTE_COMPLETE", 3),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNPARK", 1),
            ("channel_data", 1),
            ("disconnect", 1),
            ("linger", 1),
            ("reply", 6),
        ],
    ),
    (
        "o2",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("CHANNEL_ANSWER", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_PROGRESS", 1),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 6),
        ],
    ),
    (
        "o2",
        "OUTBOUND#1",
        &[
            ("CHANNEL_EXECUTE", 2),
            ("CHANNEL_EXECUTE_COMPLETE", 2),
            ("CHANNEL_HANGUP", 1),
            ("channel_data", 1),
            ("disconnect", 1),
            ("reply", 5),
        ],
    ),
    (
        "p",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_PROGRESS", 1),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 6),
        ],
    ),
    (
        "r",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 5),
        ],
    ),
    (
        "r",
        "OUTBOUND#1",
        &[
            ("CHANNEL_EXECUTE", 2),
            ("CHANNEL_EXECUTE_COMPLETE", 3),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNPARK", 1),
            ("RECORD_START", 1),
            ("RECORD_STOP", 1),
            ("channel_data", 1),
            ("disconnect", 1),
            ("linger", 1),
            ("reply", 6),
        ],
    ),
    (
        "s",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("api", 1),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 5),
        ],
    ),
    (
        "s",
        "OUTBOUND#1",
        &[
            ("CHANNEL_EXECUTE", 1),
            ("CHANNEL_EXECUTE_COMPLETE", 2),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNPARK", 1),
            ("RECORD_START", 1),
            ("RECORD_STOP", 1),
            ("channel_data", 1),
            ("disconnect", 1),
            ("linger", 1),
            ("reply", 5),
        ],
    ),
    (
        "t",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 5),
        ],
    ),
    (
        "t",
        "OUTBOUND#1",
        &[
            ("CHANNEL_EXECUTE", 6),
            ("CHANNEL_EXECUTE_COMPLETE", 7),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNPARK", 1),
            ("RECORD_START", 2),
            ("RECORD_STOP", 2),
            ("channel_data", 1),
            ("disconnect", 1),
            ("linger", 1),
            ("reply", 10),
        ],
    ),
    (
        "u",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("api", 1),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 5),
        ],
    ),
    (
        "u",
        "OUTBOUND#1",
        &[
            ("CHANNEL_EXECUTE", 1),
            ("CHANNEL_EXECUTE_COMPLETE", 2),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_PROGRESS", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNPARK", 1),
            ("channel_data", 1),
            ("disconnect", 1),
            ("linger", 1),
            ("reply", 5),
        ],
    ),
    (
        "v",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("api", 2),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 5),
        ],
    ),
    (
        "v",
        "OUTBOUND#1",
        &[
            ("CHANNEL_ANSWER", 1),
            ("CHANNEL_BRIDGE", 1),
            ("CHANNEL_EXECUTE", 2),
            ("CHANNEL_EXECUTE_COMPLETE", 3),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_PROGRESS_MEDIA", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNBRIDGE", 1),
            ("CHANNEL_UNPARK", 1),
            ("channel_data", 1),
            ("disconnect", 1),
            ("linger", 1),
            ("reply", 6),
        ],
    ),
    (
        "w",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("api", 1),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 5),
        ],
    ),
    (
        "w",
        "OUTBOUND#1",
        &[
            ("CHANNEL_ANSWER", 1),
            ("CHANNEL_BRIDGE", 1),
            ("CHANNEL_EXECUTE", 1),
            ("CHANNEL_EXECUTE_COMPLETE", 2),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_PROGRESS_MEDIA", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNBRIDGE", 1),
            ("CHANNEL_UNPARK", 1),
            ("channel_data", 1),
            ("disconnect", 1),
            ("linger", 1),
            ("reply", 5),
        ],
    ),
    (
        "x",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("api", 1),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 5),
        ],
    ),
    (
        "x",
        "OUTBOUND#1",
        &[
            ("CHANNEL_ANSWER", 1),
            ("CHANNEL_BRIDGE", 1),
            ("CHANNEL_EXECUTE", 2),
            ("CHANNEL_EXECUTE_COMPLETE", 3),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_PROGRESS", 1),
            ("CHANNEL_PROGRESS_MEDIA", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNBRIDGE", 1),
            ("CHANNEL_UNPARK", 1),
            ("channel_data", 1),
            ("disconnect", 1),
            ("linger", 1),
            ("reply", 6),
        ],
    ),
    (
        "y",
        "INBOUND#1",
        &[
            ("BACKGROUND_JOB", 1),
            ("api", 1),
            ("auth", 1),
            ("disconnect", 1),
            ("reply", 5),
        ],
    ),
    (
        "y",
        "OUTBOUND#1",
        &[
            ("CHANNEL_EXECUTE", 1),
            ("CHANNEL_EXECUTE_COMPLETE", 2),
            ("CHANNEL_HANGUP", 1),
            ("CHANNEL_HANGUP_COMPLETE", 1),
            ("CHANNEL_PROGRESS", 1),
            ("CHANNEL_STATE", 2),
            ("CHANNEL_UNPARK", 1),
            ("channel_data", 1),
            ("disconnect", 1),
            ("linger", 1),
            ("reply", 6),
        ],
    ),
];

#[test]
fn every_switch_frame_decodes_with_the_right_type() {
    for &name in ALL {
        let frames = fixture(name);
        let whole = decode_connections(&frames, usize::MAX);
        // Incremental decoding must give the very same messages.
        for chunk in [1, 7, 1500] {
            assert_eq!(
                decode_connections(&frames, chunk),
                whole,
                "{name} in {chunk}-byte reads"
            );
        }
        let expected: Vec<_> = EXPECTED.iter().filter(|(t, _, _)| *t == name).collect();
        assert_eq!(whole.len(), expected.len(), "{name}: connections");
        for (_, conn, counts) in expected {
            let msgs = &whole[*conn];
            let mut got: BTreeMap<String, usize> = BTreeMap::new();
            for (m, raw) in msgs {
                let k = kind(m);
                assert_eq!(
                    k,
                    raw_kind(raw),
                    "{name} {conn}: {}",
                    String::from_utf8_lossy(raw)
                );
                *got.entry(k).or_default() += 1;
            }
            let want: BTreeMap<String, usize> =
                counts.iter().map(|(k, n)| (k.to_string(), *n)).collect();
            assert_eq!(got, want, "{name} {conn}");
        }
    }
}

/// Every event of every transcript carries `Event-Name` and a channel `Unique-ID` (except
/// BACKGROUND_JOB), its own values decoded (no `%XX` left in the ones that had any).
#[test]
fn key_headers_of_every_event() {
    for &name in ALL {
        for (conn, msgs) in decode_connections(&fixture(name), usize::MAX) {
            for (m, _) in &msgs {
                let Message::Event(e) = m else { continue };
                assert!(!e.name().is_empty());
                assert!(
                    e.header("Core-UUID").is_some(),
                    "{name} {conn} {}",
                    e.name()
                );
                assert!(e.header("Event-Content-Length").is_none());
                if e.is("BACKGROUND_JOB") {
                    assert!(e.job_uuid().is_some());
                    assert!(e.body().is_some(), "{name}: BACKGROUND_JOB has a body");
                    continue;
                }
                assert!(e.unique_id().is_some(), "{name} {conn} {}", e.name());
                if let Some(d) = e.header("Event-Date-Local") {
                    assert!(d.contains(' ') && !d.contains("%20"), "{d}");
                }
                if e.name().starts_with("CHANNEL_EXECUTE") {
                    assert!(e.application().is_some() && e.application_uuid().is_some());
                }
                if e.is("CHANNEL_EXECUTE_COMPLETE") {
                    assert!(e.application_response().is_some());
                }
                if e.is("CHANNEL_HANGUP_COMPLETE") {
                    assert_eq!(e.headers().get_all("Hangup-Cause").count(), 2, "{name}");
                    assert!(e.variable("hangup_cause_q850").is_some());
                    assert!(e.variable("billsec").is_some());
                }
            }
        }
    }
}

fn outbound(name: &str, socket: &str) -> Vec<Message> {
    decode_connections(&fixture(name), usize::MAX)
        .remove(socket)
        .unwrap()
        .into_iter()
        .map(|(m, _)| m)
        .collect()
}

fn events(msgs: &[Message], event: &str) -> Vec<voxbridge::esl::Event> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Event(e) if e.is(event) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_connect_reply_and_rejected_hangup() {
    let msgs = outbound("a", "OUTBOUND#1");
    let Message::ChannelData(cd) = &msgs[0] else {
        panic!("first frame is the connect reply: {:?}", msgs[0])
    };
    assert_eq!(cd.answer_state(), Some("ringing"));
    assert!(!cd.is_answered());
    assert_eq!(
        cd.channel_name(),
        Some("sofia/internal/15551230000@127.0.0.1")
    );
    assert_eq!(cd.reply_text(), Some("+OK\n"));
    assert_eq!(cd.uuid(), Some("e300f525-1572-4a6c-982e-1439546ddb55"));
    assert_eq!(cd.destination_number(), Some("7001"));
    assert_eq!(cd.caller_id_number(), Some("15551230000"));
    assert_eq!(cd.caller_id_name(), Some("ESL-Test"));
    assert_eq!(cd.direction(), Some("inbound"));
    assert_eq!(cd.socket_mode(), Some("async"));
    assert_eq!(cd.control(), Some("full"));
    assert_eq!(
        cd.variable("sofia_profile_url"),
        Some("sip:mod_sofia@127.0.0.1:5060")
    );
    assert_eq!(
        cd.variable("sip_Remote-Party-ID"),
        Some("\"ESL-Test\" <sip:15551230000@127.0.0.1>;party=calling;screen=yes;privacy=off")
    );
    assert!(cd.variable("switch_r_sdp").unwrap().contains("\r\nm=audio"));

    let Message::Reply(r) = &msgs[1] else {
        panic!()
    };
    assert_eq!(r.text(), "+OK Events Enabled");

    let hc = events(&msgs, "CHANNEL_HANGUP_COMPLETE");
    assert_eq!(hc.len(), 1);
    let hc = &hc[0];
    assert_eq!(hc.hangup_cause(), Some("CALL_REJECTED"));
    assert_eq!(
        hc.headers().get_all("Hangup-Cause").collect::<Vec<_>>(),
        ["CALL_REJECTED", "CALL_REJECTED"]
    );
    assert_eq!(hc.hangup_cause_code().map(|c| c.0), Some(21));
    assert_eq!(hc.variable("hangup_cause_q850"), Some("21"));
    assert_eq!(hc.variable("sip_hangup_disposition"), Some("send_refuse"));
    assert_eq!(hc.answer_state(), Some("hangup"));

    let hangup = events(&msgs, "CHANNEL_HANGUP");
    assert_eq!(
        hangup[0].variable("hangup_cause"),
        None,
        "not set yet at CHANNEL_HANGUP"
    );

    match &msgs[msgs.len() - 3] {
        Message::Disconnect(d) => {
            assert!(!d.is_final());
            assert_eq!(d.linger_time, Some(-1));
        }
        other => panic!("{other:?}"),
    }
    match msgs.last().unwrap() {
        Message::Disconnect(d) => {
            assert!(d.is_final());
            assert!(d.body.starts_with("Disconnected, goodbye."));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn b_application_uuids_and_responses() {
    let msgs = outbound("b", "OUTBOUND#1");
    let done: Vec<_> = events(&msgs, "CHANNEL_EXECUTE_COMPLETE")
        .iter()
        .map(|e| {
            (
                e.application().unwrap().to_string(),
                e.application_uuid().unwrap().to_string(),
                e.application_response().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        done[0],
        (
            "answer".into(),
            "774ee917-b420-49ae-a919-e75a113cdd97".into(),
            "_none_".into()
        )
    );
    assert_eq!(done[1].2, "FILE PLAYED");
    assert_eq!(done[2].0, "sched_hangup");
    assert_eq!(
        done[3],
        (
            "playback".into(),
            "db9125b7-b993-424b-a7b5-f87c294a9788".into(),
            "FILE PLAYED".into()
        )
    );
    assert_eq!(done[4].0, "socket");
    let hc = &events(&msgs, "CHANNEL_HANGUP_COMPLETE")[0];
    assert_eq!(hc.hangup_cause(), Some("ALLOTTED_TIMEOUT"));
    assert_eq!(hc.variable("hangup_cause_q850"), Some("16"));
    let exec = &events(&msgs, "CHANNEL_EXECUTE")[1];
    assert_eq!(
        exec.application_data(),
        Some("tone_stream://%(500,500,440);loops=2")
    );
    // Here the linger notice comes before EXECUTE_COMPLETE and HANGUP_COMPLETE.
    let linger_at = msgs
        .iter()
        .position(|m| matches!(m, Message::Disconnect(d) if !d.is_final()))
        .unwrap();
    let hc_at = msgs
        .iter()
        .position(|m| matches!(m, Message::Event(e) if e.is("CHANNEL_HANGUP_COMPLETE")))
        .unwrap();
    assert!(linger_at < hc_at);
}

#[test]
fn c_playback_interrupted_by_the_caller() {
    let msgs = outbound("c", "OUTBOUND#1");
    let done = events(&msgs, "CHANNEL_EXECUTE_COMPLETE");
    let playback = done
        .iter()
        .find(|e| e.application() == Some("playback"))
        .unwrap();
    assert_eq!(playback.application_response(), Some("PLAYBACK ERROR"));
    assert_eq!(playback.hangup_cause(), Some("NORMAL_CLEARING"));
    let hc = &events(&msgs, "CHANNEL_HANGUP_COMPLETE")[0];
    assert_eq!(hc.variable("sip_hangup_disposition"), Some("recv_bye"));
}

#[test]
fn d_json_events_decode_like_plain_ones() {
    let msgs = outbound("d", "OUTBOUND#1");
    assert!(matches!(&msgs[0], Message::ChannelData(cd) if cd.is_answered()));
    let hc = &events(&msgs, "CHANNEL_HANGUP_COMPLETE")[0];
    assert_eq!(hc.format(), EventFormat::Json);
    assert_eq!(
        hc.headers().get_all("Hangup-Cause").collect::<Vec<_>>(),
        ["NORMAL_CLEARING", "NORMAL_CLEARING"]
    );
    assert_eq!(hc.variable("hangup_cause_q850"), Some("16"));
    assert_eq!(hc.variable("DP_MATCH"), Some("ARRAY::7000|:7000"));
    assert_eq!(
        hc.variable("sip_full_to"),
        Some("<sip:7000@127.0.0.1:5060>;tag=evDcD6Nmm8KeD")
    );
    assert!(hc
        .variable("switch_r_sdp")
        .unwrap()
        .starts_with("v=0\r\no=FreeSWITCH"));
    let done = events(&msgs, "CHANNEL_EXECUTE_COMPLETE");
    assert_eq!(done[0].application_response(), Some("FILE PLAYED"));
    assert_eq!(
        done[0].application_uuid(),
        Some("68a5de40-2b93-4725-9f78-42fbec3deceb")
    );
    // The same array in a plain transcript reads the same.
    let plain = events(&outbound("e2", "OUTBOUND#1"), "CHANNEL_HANGUP_COMPLETE");
    assert_eq!(plain[0].variable("DP_MATCH"), Some("ARRAY::7000|:7000"));
}

#[test]
fn e_background_jobs_correlate_by_job_uuid() {
    let msgs: Vec<Message> = decode_connections(&fixture("e"), usize::MAX)
        .remove("INBOUND#1")
        .unwrap()
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert!(matches!(msgs[0], Message::AuthRequest));
    let job_replies: Vec<String> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Reply(r) if r.job_uuid().is_some() => {
                assert!(r.is_ok());
                assert_eq!(r.text(), format!("+OK Job-UUID: {}", r.job_uuid().unwrap()));
                Some(r.job_uuid().unwrap().to_string())
            }
            _ => None,
        })
        .collect();
    let jobs = events(&msgs, "BACKGROUND_JOB");
    assert_eq!(jobs.len(), 3);
    for (reply_uuid, job) in job_replies.iter().zip(&jobs) {
        assert_eq!(job.job_uuid(), Some(reply_uuid.as_str()));
    }
    assert_eq!(
        jobs[0].body(),
        Some("+OK 109a128a-4dba-44fc-ae5f-5ecf3ab2b830\n")
    );
    assert_eq!(jobs[0].header("Job-Command"), Some("originate"));
    assert_eq!(
        jobs[0].header("Job-Command-Arg"),
        Some("{origination_uuid=109a128a-4dba-44fc-ae5f-5ecf3ab2b830,origination_caller_id_number=15551230000,origination_caller_id_name=ESL-Test}sofia/external/7000@127.0.0.1:5060 &park()")
    );
    assert_eq!(jobs[1].body(), Some("+OK\n"));
    let api: Vec<String> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::ApiResponse(a) => Some(a.body.clone()),
            _ => None,
        })
        .collect();
    assert!(api[0].starts_with("UP 0 years"));
    assert_eq!(api[1], "true");
    assert_eq!(api[2], "false");
    assert_eq!(api[3], "-ERR No such channel!\n");
    let causes: Vec<_> = events(&msgs, "CHANNEL_HANGUP_COMPLETE")
        .iter()
        .map(|e| e.hangup_cause().unwrap().to_string())
        .collect();
    assert_eq!(causes, ["NORMAL_CLEARING", "USER_BUSY"]);
}

#[test]
fn h_dtmf_digits_are_decoded() {
    let msgs = outbound("h", "OUTBOUND#1");
    let digits: Vec<_> = events(&msgs, "DTMF")
        .iter()
        .map(|e| {
            (
                e.dtmf_digit().unwrap().to_string(),
                e.header("DTMF-Source").unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        digits,
        [
            ("1".to_string(), "RTP".to_string()),
            ("#".into(), "RTP".into())
        ]
    );
    let api = msgs.iter().find_map(|m| match m {
        Message::ApiResponse(a) => Some(a.clone()),
        _ => None,
    });
    assert!(api.unwrap().is_ok());
}

/// The event names of a connection, in order.
fn names(msgs: &[Message]) -> Vec<String> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Event(e) => Some(e.name().to_string()),
            _ => None,
        })
        .collect()
}

fn execute_complete<'a>(done: &'a [voxbridge::esl::Event], app: &str) -> &'a voxbridge::esl::Event {
    done.iter()
        .find(|e| e.application() == Some(app))
        .unwrap_or_else(|| panic!("no CHANNEL_EXECUTE_COMPLETE of {app}"))
}

#[test]
fn i_bridge_events_reach_the_a_leg_socket_with_the_b_leg_as_other_leg() {
    let msgs = outbound("i", "OUTBOUND#1");
    assert!(matches!(&msgs[0], Message::ChannelData(cd) if !cd.is_answered()));
    let own = match &msgs[0] {
        Message::ChannelData(cd) => cd.uuid().unwrap().to_string(),
        _ => unreachable!(),
    };
    // myevents delivers the A-leg's own events only: none of the B-leg's.
    assert!(msgs.iter().all(|m| match m {
        Message::Event(e) => e.unique_id() == Some(own.as_str()),
        _ => true,
    }));
    let bridge = &events(&msgs, "CHANNEL_BRIDGE")[0];
    let b_leg = bridge.header("Other-Leg-Unique-ID").unwrap().to_string();
    assert_ne!(b_leg, own);
    assert_eq!(bridge.variable("signal_bond"), Some(b_leg.as_str()));
    let n = names(&msgs);
    let at = |name: &str| n.iter().position(|x| x == name).unwrap();
    assert!(at("CHANNEL_ANSWER") < at("CHANNEL_BRIDGE"));
    assert!(at("CHANNEL_BRIDGE") < at("CHANNEL_UNBRIDGE"));
    assert!(at("CHANNEL_UNBRIDGE") < at("CHANNEL_EXECUTE_COMPLETE"));
    let done = events(&msgs, "CHANNEL_EXECUTE_COMPLETE");
    let b = execute_complete(&done, "bridge");
    assert_eq!(b.application_response(), Some("_none_"));
    assert_eq!(b.variable("DIALSTATUS"), Some("SUCCESS"));
    assert_eq!(b.variable("originate_disposition"), Some("SUCCESS"));
    assert_eq!(b.variable("bridge_hangup_cause"), Some("NORMAL_CLEARING"));
    assert_eq!(b.variable("last_bridge_to"), Some(b_leg.as_str()));
    assert_eq!(b.answer_state(), Some("answered"));
    // The channel outlived the bridge: the client's own hangup ended it.
    let hc = &events(&msgs, "CHANNEL_HANGUP_COMPLETE")[0];
    assert_eq!(hc.hangup_cause(), Some("NORMAL_CLEARING"));
    assert_eq!(
        execute_complete(&done, "hangup").application_data(),
        Some("NORMAL_CLEARING")
    );
}

#[test]
fn j_busy_bridge_hangs_the_caller_up_before_its_execute_complete() {
    let msgs = outbound("j", "OUTBOUND#1");
    let n = names(&msgs);
    let hangup = n.iter().position(|x| x == "CHANNEL_HANGUP").unwrap();
    let done_at = n
        .iter()
        .position(|x| x == "CHANNEL_EXECUTE_COMPLETE")
        .unwrap();
    assert!(hangup < done_at, "{n:?}");
    let done = events(&msgs, "CHANNEL_EXECUTE_COMPLETE");
    let b = execute_complete(&done, "bridge");
    assert_eq!(b.hangup_cause(), Some("USER_BUSY"));
    assert_eq!(b.variable("DIALSTATUS"), Some("BUSY"));
    assert_eq!(b.variable("originate_disposition"), Some("USER_BUSY"));
    assert_eq!(b.variable("originate_failed_cause"), Some("USER_BUSY"));
    // The client's hangup never ran: no CHANNEL_EXECUTE of it.
    assert!(events(&msgs, "CHANNEL_EXECUTE")
        .iter()
        .all(|e| e.application() == Some("bridge")));
    let hc = &events(&msgs, "CHANNEL_HANGUP_COMPLETE")[0];
    assert_eq!(hc.variable("sip_hangup_disposition"), Some("send_refuse"));
    assert!(hc.variable("answer_epoch") == Some("0"));
}

#[test]
fn k_unanswered_bridge_leaves_the_caller_up() {
    let msgs = outbound("k", "OUTBOUND#1");
    let n = names(&msgs);
    assert_eq!(
        n.iter().filter(|x| *x == "CHANNEL_PROGRESS").count(),
        1,
        "{n:?}"
    );
    let done = events(&msgs, "CHANNEL_EXECUTE_COMPLETE");
    let b = execute_complete(&done, "bridge");
    assert_eq!(b.answer_state(), Some("ringing"));
    assert_eq!(b.hangup_cause(), None);
    assert_eq!(b.variable("DIALSTATUS"), Some("NOANSWER"));
    assert_eq!(b.variable("originate_disposition"), Some("NO_ANSWER"));
    let hc = &events(&msgs, "CHANNEL_HANGUP_COMPLETE")[0];
    assert_eq!(hc.hangup_cause(), Some("NO_ANSWER"));
    assert_eq!(
        execute_complete(&done, "hangup").application_data(),
        Some("NO_ANSWER")
    );
}

#[test]
fn l_uuid_break_ends_the_prompt_and_digits_keep_coming() {
    let msgs = outbound("l", "OUTBOUND#1");
    let n = names(&msgs);
    let digits: Vec<String> = events(&msgs, "DTMF")
        .iter()
        .map(|e| e.dtmf_digit().unwrap().to_string())
        .collect();
    assert_eq!(digits, ["1", "2", "3", "4", "#"]);
    let first_dtmf = n.iter().position(|x| x == "DTMF").unwrap();
    let prompt_done = n
        .iter()
        .position(|x| x == "CHANNEL_EXECUTE_COMPLETE")
        .unwrap();
    let second_dtmf = first_dtmf
        + 1
        + n[first_dtmf + 1..]
            .iter()
            .position(|x| x == "DTMF")
            .unwrap();
    assert!(
        first_dtmf < prompt_done && prompt_done < second_dtmf,
        "{n:?}"
    );
    let done = events(&msgs, "CHANNEL_EXECUTE_COMPLETE");
    assert_eq!(
        execute_complete(&done, "playback").application_response(),
        Some("FILE PLAYED")
    );
    assert!(msgs
        .iter()
        .any(|m| matches!(m, Message::ApiResponse(a) if a.is_ok())));
}

#[test]
fn q_a_digit_ends_sleep_is_dequeued_before_flush_dtmf_and_uuid_break_ends_speak() {
    let msgs = outbound("q", "OUTBOUND#1");
    let ev: Vec<(String, String)> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Event(e) => Some((
                e.name().to_string(),
                e.dtmf_digit()
                    .or(e.header("Application"))
                    .unwrap_or_default()
                    .to_string(),
            )),
            _ => None,
        })
        .filter(|(n, _)| n == "DTMF" || n.starts_with("CHANNEL_EXECUTE"))
        .collect();
    let at = |name: &str, what: &str| {
        ev.iter()
            .position(|(n, w)| n == name && w == what)
            .unwrap_or_else(|| panic!("no {name} {what} in {ev:?}"))
    };
    // The 9 pressed during `sleep 2000` ends the sleep; its event comes after the
    // sleep's completion and before flush_dtmf runs.
    assert!(at("CHANNEL_EXECUTE_COMPLETE", "sleep") < at("DTMF", "9"));
    assert!(at("DTMF", "9") < at("CHANNEL_EXECUTE", "flush_dtmf"));
    // The 2 during the prompt; uuid_break then ends the speak.
    assert!(at("CHANNEL_EXECUTE", "speak") < at("DTMF", "2"));
    assert!(at("DTMF", "2") < at("CHANNEL_EXECUTE_COMPLETE", "speak"));
    let done = events(&msgs, "CHANNEL_EXECUTE_COMPLETE");
    assert_eq!(
        execute_complete(&done, "speak").application_response(),
        Some("_none_")
    );
    assert_eq!(
        execute_complete(&done, "flush_dtmf").application_response(),
        Some("_none_")
    );
    // The sleep lasted less than its 2 s: the digit cut it short.
    let stamp = |name: &str, app: &str| -> i64 {
        events(&msgs, name)
            .iter()
            .find(|e| e.header("Application") == Some(app))
            .and_then(|e| e.header("Event-Date-Timestamp"))
            .and_then(|t| t.parse().ok())
            .unwrap()
    };
    let slept_us = stamp("CHANNEL_EXECUTE_COMPLETE", "sleep") - stamp("CHANNEL_EXECUTE", "sleep");
    assert!(slept_us < 1_500_000, "sleep ran {slept_us} µs");
}

#[test]
fn m_record_ended_by_silence() {
    let msgs = outbound("m", "OUTBOUND#1");
    let start = &events(&msgs, "RECORD_START")[0];
    let stop = &events(&msgs, "RECORD_STOP")[0];
    let path = stop.header("Record-File-Path").unwrap();
    assert_eq!(start.header("Record-File-Path"), Some(path));
    assert!(
        path.starts_with('/') && path.contains("/recordings/capture-m-"),
        "{path}"
    );
    let done = events(&msgs, "CHANNEL_EXECUTE_COMPLETE");
    let rec = execute_complete(&done, "record");
    assert_eq!(rec.application_response(), Some("_none_"));
    assert_eq!(rec.variable("silence_hits_exhausted"), Some("true"));
    assert_eq!(rec.variable("playback_terminator_used"), None);
    let ms: u64 = rec.variable("record_ms").unwrap().parse().unwrap();
    assert!((2000..6000).contains(&ms), "{ms}");
}

#[test]
fn n_record_ended_by_key() {
    let msgs = outbound("n", "OUTBOUND#1");
    let n = names(&msgs);
    let dtmf = n.iter().position(|x| x == "DTMF").unwrap();
    assert_eq!(n[dtmf + 1], "RECORD_STOP", "{n:?}");
    let done = events(&msgs, "CHANNEL_EXECUTE_COMPLETE");
    let rec = execute_complete(&done, "record");
    assert_eq!(rec.variable("playback_terminator_used"), Some("#"));
    assert_eq!(rec.variable("silence_hits_exhausted"), Some("false"));
    assert_eq!(rec.variable("record_ms"), Some("1500"));
}

#[test]
fn r_record_ended_by_its_limit_runs_past_it_by_under_a_second() {
    let msgs = outbound("r", "OUTBOUND#1");
    let n = names(&msgs);
    let stop = n.iter().position(|x| x == "RECORD_STOP").unwrap();
    assert_eq!(n[stop + 1], "CHANNEL_EXECUTE_COMPLETE", "{n:?}");
    let done = events(&msgs, "CHANNEL_EXECUTE_COMPLETE");
    let rec = execute_complete(&done, "record");
    assert_eq!(rec.application_response(), Some("_none_"));
    // Nothing names the limit as the end: not silence, not a key.
    assert_eq!(rec.variable("silence_hits_exhausted"), Some("false"));
    assert_eq!(rec.variable("playback_terminator_used"), None);
    let ms: u64 = rec.variable("record_ms").unwrap().parse().unwrap();
    assert!((3000..4000).contains(&ms), "limit 3 s: {ms}");
    let samples: u64 = rec.variable("record_samples").unwrap().parse().unwrap();
    let size: u64 = rec.variable("record_file_size").unwrap().parse().unwrap();
    assert_eq!(
        size,
        44 + 2 * samples,
        "a 44-byte WAV header and 16-bit mono"
    );
    assert_eq!(
        samples * 1000 / ms,
        16000,
        "G722 between the test profiles: 16 kHz"
    );
    // The call stays up: the client hangs up afterwards.
    assert!(n[stop..].contains(&"CHANNEL_HANGUP".to_string()));
}

#[test]
fn s_record_ended_by_the_caller_hanging_up() {
    let msgs = outbound("s", "OUTBOUND#1");
    let kinds: Vec<String> = msgs.iter().map(kind).collect();
    let at = |k: &str| kinds.iter().position(|x| x == k).unwrap();
    // CHANNEL_HANGUP, the linger notice, RECORD_STOP, the record's EXECUTE_COMPLETE,
    // CHANNEL_HANGUP_COMPLETE.
    assert!(at("CHANNEL_HANGUP") < at("linger"), "{kinds:?}");
    assert!(at("linger") < at("RECORD_STOP"), "{kinds:?}");
    assert!(
        at("RECORD_STOP") < at("CHANNEL_EXECUTE_COMPLETE"),
        "{kinds:?}"
    );
    assert!(at("CHANNEL_EXECUTE_COMPLETE") < at("CHANNEL_HANGUP_COMPLETE"));
    let stop = &events(&msgs, "RECORD_STOP")[0];
    assert_eq!(stop.hangup_cause(), Some("NORMAL_CLEARING"));
    let ms: u64 = stop.variable("record_ms").unwrap().parse().unwrap();
    assert!((1000..3000).contains(&ms), "{ms}");
    assert_eq!(stop.variable("silence_hits_exhausted"), Some("false"));
    assert_eq!(stop.variable("playback_terminator_used"), None);
}

#[test]
fn t_record_session_stops_by_its_absolute_path_or_at_hangup() {
    let msgs = outbound("t", "OUTBOUND#1");
    let starts = events(&msgs, "RECORD_START");
    let stops = events(&msgs, "RECORD_STOP");
    assert_eq!((starts.len(), stops.len()), (2, 2));
    for (a, b) in starts.iter().zip(&stops) {
        assert_eq!(a.header("Record-File-Path"), b.header("Record-File-Path"));
    }
    let done = events(&msgs, "CHANNEL_EXECUTE_COMPLETE");
    let stop_app = execute_complete(&done, "stop_record_session");
    // Stopped by the absolute path RECORD_START reported.
    assert_eq!(
        stop_app.application_data(),
        starts[0].header("Record-File-Path")
    );
    assert!(starts[0]
        .header("Record-File-Path")
        .unwrap()
        .starts_with('/'));
    // record_session returns at once; its recording runs on.
    assert_eq!(
        execute_complete(&done, "record_session").application_response(),
        Some("_none_")
    );
    let ms: u64 = stops[0].variable("record_ms").unwrap().parse().unwrap();
    assert!((2000..2500).contains(&ms), "2 s tone: {ms}");
    // The second ends with the call: after the socket app, before HANGUP_COMPLETE.
    let n = names(&msgs);
    let last_stop = n.iter().rposition(|x| x == "RECORD_STOP").unwrap();
    let socket_done = done
        .iter()
        .position(|e| e.application() == Some("socket"))
        .unwrap();
    let socket_at = n
        .iter()
        .enumerate()
        .filter(|(_, x)| *x == "CHANNEL_EXECUTE_COMPLETE")
        .nth(socket_done)
        .unwrap()
        .0;
    let hangup_complete = n
        .iter()
        .position(|x| x == "CHANNEL_HANGUP_COMPLETE")
        .unwrap();
    assert!(
        socket_at < last_stop && last_stop < hangup_complete,
        "{n:?}"
    );
    // The completion causes say nothing useful: stopped by the app it is
    // `success-maxtime`, by the hangup `success-silence`.
    assert_eq!(
        stops[0].header("Record-Completion-Cause"),
        Some("success-maxtime")
    );
    assert_eq!(
        stops[1].header("Record-Completion-Cause"),
        Some("success-silence")
    );
}

fn inbound(name: &str) -> Vec<Message> {
    decode_connections(&fixture(name), usize::MAX)
        .remove("INBOUND#1")
        .unwrap()
        .into_iter()
        .map(|(m, _)| m)
        .collect()
}

#[test]
fn o_originated_call_reaches_the_socket_only_once_answered() {
    let msgs = outbound("o", "OUTBOUND#1");
    let Message::ChannelData(cd) = &msgs[0] else {
        panic!("connect reply first")
    };
    assert!(cd.is_answered());
    assert_eq!(cd.direction(), Some("outbound"));
    assert_eq!(cd.socket_mode(), Some("async"));
    assert_eq!(cd.control(), Some("full"));
    let inb = inbound("o");
    assert_eq!(
        names(&inb),
        [
            "CHANNEL_PROGRESS",
            "CHANNEL_ANSWER",
            "BACKGROUND_JOB",
            "CHANNEL_HANGUP_COMPLETE"
        ]
    );
    let job = &events(&inb, "BACKGROUND_JOB")[0];
    assert_eq!(
        job.body(),
        Some(format!("+OK {}\n", cd.uuid().unwrap()).as_str())
    );
}

#[test]
fn o2_unquoted_socket_args_give_a_static_single_channel_socket() {
    let msgs = outbound("o2", "OUTBOUND#1");
    let Message::ChannelData(cd) = &msgs[0] else {
        panic!("connect reply first")
    };
    assert_eq!(cd.socket_mode(), Some("static"));
    assert_eq!(cd.control(), Some("single-channel"));
    assert_eq!(
        cd.variable("current_application_data"),
        Some("127.0.0.1:8094")
    );
    let refused = msgs
        .iter()
        .filter(|m| matches!(m, Message::Reply(r) if r.text() == "-ERR command not found"))
        .count();
    assert_eq!(refused, 2, "linger and event plain");
    assert!(events(&msgs, "CHANNEL_HANGUP_COMPLETE").is_empty());
}

#[test]
fn p_unanswered_originate_never_connects_a_socket() {
    let conns = decode_connections(&fixture("p"), usize::MAX);
    assert_eq!(conns.keys().collect::<Vec<_>>(), ["INBOUND#1"]);
    let inb = inbound("p");
    let job = &events(&inb, "BACKGROUND_JOB")[0];
    assert_eq!(job.body(), Some("-ERR NO_ANSWER\n"));
    let hc = &events(&inb, "CHANNEL_HANGUP_COMPLETE")[0];
    assert_eq!(hc.hangup_cause(), Some("NO_ANSWER"));
    assert_eq!(hc.variable("answer_epoch"), Some("0"));
}

/// Rebuilds each command the capture's client sent with our encoder and compares bytes.
fn our_encoding(sent: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(sent).unwrap();
    let mut lines = text.trim_end_matches('\n').lines();
    let first = lines.next().unwrap();
    let headers: Vec<(&str, &str)> = lines.map(|l| l.split_once(": ").unwrap()).collect();
    let h = |n: &str| headers.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    let (word, rest) = first.split_once(' ').unwrap_or((first, ""));
    let cmd = match word {
        "connect" => Command::connect(),
        "exit" => Command::exit(),
        "myevents" if rest.is_empty() => Command::myevents(EventFormat::Plain),
        "myevents" => Command::myevents(EventFormat::Json),
        "linger" if rest.is_empty() => Command::linger(Linger::Forever),
        "linger" => Command::linger(Linger::Seconds(rest.parse().unwrap())),
        "event" => {
            let mut words = rest.split(' ');
            let format = match words.next().unwrap() {
                "plain" => EventFormat::Plain,
                _ => EventFormat::Json,
            };
            Command::event(format, &words.collect::<Vec<_>>()).unwrap()
        }
        "nixevent" => Command::nixevent(&rest.split(' ').collect::<Vec<_>>()).unwrap(),
        "auth" => Command::auth(rest).unwrap(),
        "api" => Command::api(rest).unwrap(),
        "filter" => {
            let (hdr, val) = rest.split_once(' ').unwrap();
            Command::filter(hdr, val).unwrap()
        }
        "bgapi" if h("Job-UUID").is_some() => Command::bgapi(rest, h("Job-UUID").unwrap()).unwrap(),
        "bgapi" => {
            // The capture's client let the switch pick the Job-UUID; we always send ours.
            let ours = Command::bgapi(rest, "0d9a1c7e-1111-4222-8333-944455556666").unwrap();
            let bytes = ours.to_bytes();
            let expected = format!("{first}\nJob-UUID: 0d9a1c7e-1111-4222-8333-944455556666\n\n");
            assert_eq!(String::from_utf8(bytes).unwrap(), expected);
            return sent.to_vec();
        }
        "sendmsg" if h("call-command") == Some("hangup") => {
            Command::hangup(h("hangup-cause").unwrap()).unwrap()
        }
        "sendmsg" => {
            assert_eq!(h("call-command"), Some("execute"));
            Command::execute(&Execute {
                app: h("execute-app-name").unwrap().to_string(),
                arg: h("execute-app-arg").map(String::from),
                event_lock: h("event-lock") == Some("true"),
                event_uuid: h("Event-UUID").map(String::from),
                loops: None,
                target: None,
            })
            .unwrap()
        }
        other => panic!("command {other:?} not covered"),
    };
    cmd.to_bytes()
}

#[test]
fn what_the_client_sent_is_what_we_encode() {
    let mut seen = BTreeMap::<String, usize>::new();
    for &name in ALL {
        for f in fixture(name).iter().filter(|f| !f.from_switch) {
            let ours = our_encoding(&f.bytes);
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&f.bytes),
                "{name}"
            );
            let word = String::from_utf8_lossy(&f.bytes)
                .split([' ', '\n'])
                .next()
                .unwrap()
                .to_string();
            *seen.entry(word).or_default() += 1;
        }
    }
    for word in [
        "connect", "myevents", "linger", "event", "sendmsg", "exit", "auth", "api", "bgapi",
        "filter",
    ] {
        assert!(
            seen.get(word).copied().unwrap_or(0) > 0,
            "no {word} in the transcripts"
        );
    }
}

/// Transcript z2 (docs/dial.md, `digitsMatchBLeg`): the callee's DTMF is not on the
/// caller's socket, but the match of `bind_digit_action …,peer` is, after `divert_events
/// on`, as a plain event without `Event-Name` — decoded as `Message::Diverted`.
#[test]
fn u_the_callee_s_digit_match_arrives_as_a_diverted_event_and_its_dtmf_does_not() {
    let msgs = outbound("z2", "OUTBOUND#1");
    assert!(
        events(&msgs, "DTMF").is_empty(),
        "the callee's DTMF is the B-leg's"
    );
    let diverted: Vec<&voxbridge::esl::Event> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Diverted(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(diverted.len(), 1);
    assert_eq!(diverted[0].header("voxbridge_digits_match"), Some("bleg"));
    assert_eq!(diverted[0].header("digits"), Some("1234#"));
    let n = names(&msgs);
    let bridged = n.iter().position(|x| x == "CHANNEL_BRIDGE").unwrap();
    let at = msgs
        .iter()
        .position(|m| matches!(m, Message::Diverted(_)))
        .unwrap();
    let bridged_at = msgs
        .iter()
        .position(|m| matches!(m, Message::Event(e) if e.is("CHANNEL_BRIDGE")))
        .unwrap();
    assert!(
        bridged < n.len() && bridged_at < at,
        "the match comes during the bridge"
    );
}

/// Transcript z3 (docs/dial.md, `dialMusic`): with `ringback` a file string, the still
/// unanswered caller gets early media at once — CHANNEL_PROGRESS_MEDIA, no bare
/// CHANNEL_PROGRESS — well before the callee's answer bridges it.
#[test]
fn v_a_ringback_file_string_is_early_media_to_the_caller_before_the_answer() {
    let msgs = outbound("z3", "OUTBOUND#1");
    let n = names(&msgs);
    let at = |name: &str| n.iter().position(|x| x == name).unwrap();
    assert!(!n.iter().any(|x| x == "CHANNEL_PROGRESS"), "{n:?}");
    assert!(at("CHANNEL_PROGRESS_MEDIA") < at("CHANNEL_ANSWER"));
    assert!(at("CHANNEL_ANSWER") < at("CHANNEL_BRIDGE"));
    let media = &events(&msgs, "CHANNEL_PROGRESS_MEDIA")[0];
    let bridge = &events(&msgs, "CHANNEL_BRIDGE")[0];
    let ts = |e: &voxbridge::esl::Event| {
        e.header("Event-Date-Timestamp")
            .and_then(|t| t.parse::<i64>().ok())
            .unwrap()
    };
    assert!(
        ts(bridge) - ts(media) > 1_000_000,
        "7008 rings ~2 s: the music came long before the answer"
    );
}

/// Transcript z5 (issue 16): the handshake's four commands in one write, sent before the
/// channel data came back, are answered one at a time in order — what voxbridge's
/// handshake relies on to take a channel in one round trip.
#[test]
fn z5_the_switch_answers_a_handshake_written_at_once_in_order() {
    let frames = fixture("z5");
    let outbound: Vec<&TranscriptFrame> = frames
        .iter()
        .filter(|f| f.connection == Connection::Outbound)
        .collect();
    let first_four: Vec<String> = outbound[..4]
        .iter()
        .map(|f| {
            assert!(!f.from_switch, "the client's four commands come first");
            assert_eq!(our_encoding(&f.bytes), f.bytes);
            String::from_utf8_lossy(&f.bytes)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        first_four,
        ["connect", "myevents", "nixevent CHANNEL_EXECUTE", "linger"]
    );
    let conns = decode_connections(&frames, usize::MAX);
    let out = &conns["OUTBOUND#1"];
    assert!(matches!(&out[0].0, Message::ChannelData(_)));
    let replies: Vec<String> = out[1..4]
        .iter()
        .map(|(m, _)| match m {
            Message::Reply(r) => r.text().to_string(),
            other => panic!("a reply, not {other:?}"),
        })
        .collect();
    assert_eq!(
        replies,
        ["+OK Events Enabled", "+OK events nixed", "+OK will linger"]
    );
    assert!(
        out[4..]
            .iter()
            .any(|(m, _)| matches!(m, Message::Event(e) if e.name() == "CHANNEL_HANGUP_COMPLETE")),
        "the call then ran on the socket to its end"
    );
}

/// Transcript z4 (issue 16): `sendmsg` `call-command: hangup` runs no application, gives
/// the caller the SIP code the `hangup` app gave (486 / 603 / 480 before an answer), and
/// queues like an app: behind event-locked playbacks, and nothing after it runs.
#[test]
fn z4_the_hangup_command_runs_no_app_keeps_the_caller_s_code_and_queues_like_an_app() {
    let frames = fixture("z4");
    let conns = decode_connections(&frames, usize::MAX);
    for chunk in [1, 1500] {
        assert_eq!(
            decode_connections(&frames, chunk),
            conns,
            "{chunk}-byte reads"
        );
    }
    let sent: Vec<&TranscriptFrame> = frames.iter().filter(|f| !f.from_switch).collect();
    for f in &sent {
        assert_eq!(
            String::from_utf8_lossy(&our_encoding(&f.bytes)),
            String::from_utf8_lossy(&f.bytes)
        );
    }
    let hangup_commands = sent
        .iter()
        .filter(|f| f.bytes.starts_with(b"sendmsg\ncall-command: hangup\n"))
        .count();
    assert_eq!(hangup_commands, 4);
    let msgs =
        |conn: &str| -> Vec<Message> { conns[conn].iter().map(|(m, _)| m.clone()).collect() };
    // All four INBOUND-ESL connections read as one: the calling legs' ends in call order.
    let inb = msgs("INBOUND#1");
    let caller_ends = events(&inb, "CHANNEL_HANGUP_COMPLETE");
    let jobs = events(&inb, "BACKGROUND_JOB");
    for (n, cause, sip, q850) in [
        (1, "USER_BUSY", "486", "17"),
        (2, "CALL_REJECTED", "603", "21"),
        (3, "NORMAL_CLEARING", "480", "16"),
    ] {
        let out = msgs(&format!("OUTBOUND#{n}"));
        let hangup = &events(&out, "CHANNEL_HANGUP")[0];
        assert_eq!(hangup.hangup_cause(), Some(cause), "call {n}");
        for e in events(&out, "CHANNEL_EXECUTE")
            .iter()
            .chain(&events(&out, "CHANNEL_EXECUTE_COMPLETE"))
        {
            // Only the dialplan's own `socket` app: no `hangup` app ran.
            assert_eq!(e.application(), Some("socket"), "call {n}");
        }
        let end = &events(&out, "CHANNEL_HANGUP_COMPLETE")[0];
        assert_eq!(end.variable("sip_hangup_disposition"), Some("send_refuse"));
        assert_eq!(end.variable("hangup_cause_q850"), Some(q850));
        assert_eq!(end.variable("answer_epoch"), Some("0"), "never answered");
        let caller = &caller_ends[n - 1];
        assert_eq!(caller.hangup_cause(), Some(cause), "call {n}");
        assert_eq!(caller.variable("sip_term_status"), Some(sip), "call {n}");
        assert_eq!(
            caller.variable("sip_hangup_disposition"),
            Some("recv_refuse")
        );
        assert_eq!(jobs[n - 1].body(), Some(format!("-ERR {cause}\n").as_str()));
    }
    // Call 4, answered: two tones queued, the hangup, a third tone after it.
    let out = msgs("OUTBOUND#4");
    let steps: Vec<String> = out
        .iter()
        .filter_map(|m| match m {
            Message::Event(e)
                if e.is("CHANNEL_EXECUTE")
                    || e.is("CHANNEL_EXECUTE_COMPLETE")
                    || e.is("CHANNEL_HANGUP") =>
            {
                Some(format!(
                    "{} {}",
                    e.name(),
                    e.application_data().unwrap_or("")
                ))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        steps,
        [
            "CHANNEL_EXECUTE tone_stream://%(1000,0,440)",
            "CHANNEL_EXECUTE_COMPLETE tone_stream://%(1000,0,440)",
            "CHANNEL_EXECUTE tone_stream://%(500,0,660)",
            "CHANNEL_EXECUTE_COMPLETE tone_stream://%(500,0,660)",
            "CHANNEL_HANGUP ",
            "CHANNEL_EXECUTE_COMPLETE 127.0.0.1:8094 async full",
        ],
        "the hangup waits for both tones; the tone sent after it never runs"
    );
    let second_done = &events(&out, "CHANNEL_EXECUTE_COMPLETE")[1];
    let hangup = &events(&out, "CHANNEL_HANGUP")[0];
    assert_eq!(hangup.hangup_cause(), Some("NORMAL_CLEARING"));
    assert_eq!(
        hangup.header("Event-Date-Timestamp"),
        second_done.header("Event-Date-Timestamp"),
        "at once after the second tone"
    );
    let end = &events(&out, "CHANNEL_HANGUP_COMPLETE")[0];
    assert_eq!(end.variable("sip_hangup_disposition"), Some("send_bye"));
}
