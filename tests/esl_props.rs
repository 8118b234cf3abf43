//! Property tests of the ESL codec: the switch's serializations decode back to what was
//! serialized, commands never let a line break into a header, and no input at all makes
//! the decoders panic.

use bytes::BytesMut;
use proptest::prelude::*;
use voxbridge::esl::command::{Command, Execute, MAX_HEADER_ARG};
use voxbridge::esl::event::{
    decode_json, decode_plain, json_event_frame, plain_event_frame, serialize_plain, EventFormat,
    Message,
};
use voxbridge::esl::frame::{Frame, FrameDecoder, Headers};
use voxbridge::esl::urlcode;

/// Text that stresses the encoding: separators, `%`, CR/LF, spaces, non-ASCII, controls.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[%:a-zA-F0-9 \r\n\t#&+=?@|;<>\\[\\]{}\"'/,.~_-]{0,40}",
        "\\PC{0,20}",
        any::<String>(),
    ]
}

/// The switch copies a `%` followed by two *uppercase* hex digits unencoded (reference
/// §1.3), so such values do not round-trip: that is the switch's behaviour, tested on its
/// own below. Here every such `%` gets a `_` after it.
fn without_quirk(v: String) -> String {
    static QUIRK: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new("%([0-9A-F]{2})").unwrap());
    QUIRK.replace_all(&v, "%_$1").into_owned()
}

fn header_name() -> impl Strategy<Value = String> {
    // Names are never encoded by the switch; a few fixed ones force duplicates.
    prop_oneof![
        Just("Hangup-Cause".to_string()),
        Just("variable_x".to_string()),
        "[A-Za-z][A-Za-z0-9_-]{0,24}",
    ]
    .prop_filter("the inner length is not an event header", |n| {
        !n.eq_ignore_ascii_case("Content-Length")
    })
}

fn headers(quirk_free: bool) -> impl Strategy<Value = Headers> {
    (
        value(),
        proptest::collection::vec((header_name(), value()), 0..12),
    )
        .prop_map(move |(name, rest)| {
            let fix = |v: String| if quirk_free { without_quirk(v) } else { v };
            let mut h = Headers::new();
            h.push("Event-Name", fix(name));
            for (n, v) in rest {
                h.push(n, fix(v));
            }
            h
        })
}

fn decode_one(bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let f = FrameDecoder::default()
        .decode(&mut buf)
        .unwrap()
        .expect("a whole frame");
    assert!(buf.is_empty());
    f
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn plain_events_round_trip(h in headers(true), body in proptest::option::of(value())) {
        let frame = plain_event_frame(&h, body.as_deref().map(str::as_bytes));
        let wire = frame.to_bytes();
        match Message::decode(decode_one(&wire)) {
            Message::Event(ev) => {
                prop_assert_eq!(ev.headers(), &h);
                prop_assert_eq!(ev.body(), body.as_deref());
                prop_assert_eq!(ev.format(), EventFormat::Plain);
            }
            other => prop_assert!(false, "{:?}", other),
        }
        // Encoded values never contain a raw line break or `: `-splitting surprise:
        // every serialized line splits back into its own header.
        let ser = serialize_plain(&h, None);
        let lines = ser.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
        prop_assert_eq!(lines, h.len());
    }

    #[test]
    fn json_events_round_trip(h in headers(false), body in proptest::option::of(value())) {
        let wire = json_event_frame(&h, body.as_deref()).to_bytes();
        match Message::decode(decode_one(&wire)) {
            Message::Event(ev) => {
                prop_assert_eq!(ev.headers(), &h);
                prop_assert_eq!(ev.body(), body.as_deref());
                prop_assert_eq!(ev.format(), EventFormat::Json);
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    /// The quirk itself: `%` + two uppercase hex digits passes through the encoder, so
    /// the receiver decodes it to that byte.
    #[test]
    fn uppercase_percent_escapes_pass_through(
        a in value(), b in value(), byte in 0x21u8..0x7f,
    ) {
        let (a, b) = (without_quirk(a), without_quirk(b));
        // `a` must not end in a lone `%` that would pair with ours.
        let a = a.trim_end_matches('%').to_string();
        let v = format!("{a}%{byte:02X}{b}");
        let enc = urlcode::encode(&v);
        let expected_escape = format!("%{byte:02X}");
        prop_assert!(enc.contains(&expected_escape));
        prop_assert_eq!(urlcode::decode(&enc), format!("{a}{}{b}", byte as char));
    }

    /// Whatever the argument, the command is exactly one frame for the switch, with no
    /// header it did not ask for, and the argument arrives whole (as a header or a body).
    #[test]
    fn app_arguments_never_split_a_command(arg in value(), long in any::<bool>()) {
        let arg = if long { arg.repeat(MAX_HEADER_ARG / arg.len().max(1) + 1) } else { arg };
        let exec = Execute::locked("speak", Some(&arg), "5e0c1111-2222-4333-8444-555566667777");
        let cmd = match Command::execute(&exec) {
            Ok(c) => c,
            Err(_) => {
                prop_assert!(arg.contains('\0'));
                return Ok(());
            }
        };
        let wire = cmd.to_bytes();
        let mut buf = BytesMut::from(&wire[..]);
        let mut dec = FrameDecoder::default();
        let frame = dec.decode(&mut buf).unwrap().expect("one frame");
        prop_assert!(buf.is_empty(), "nothing left over for a second command");
        let names = frame.headers.names();
        let allowed = ["call-command", "execute-app-name", "execute-app-arg", "event-lock",
            "Event-UUID", "content-type", "content-length"];
        for n in &names {
            prop_assert!(allowed.contains(n), "unexpected header {:?}", n);
        }
        let via_header = frame.headers.get("execute-app-arg").map(String::from);
        let via_body = frame.body.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
        match (via_header, via_body) {
            (Some(h), None) => prop_assert_eq!(h, arg),
            (None, Some(b)) => prop_assert_eq!(b, arg),
            (None, None) => prop_assert!(arg.is_empty()),
            (Some(_), Some(_)) => prop_assert!(false, "argument sent twice"),
        }
    }

    /// Arbitrary bytes, in arbitrary read sizes: the decoders return frames or errors,
    /// never panic, and never loop without consuming.
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..4096),
        chunk in 1usize..512,
    ) {
        feed(&bytes, chunk);
        let _ = decode_plain(&bytes);
        let _ = decode_json(&bytes);
    }

    /// Same, with input that looks like ESL (real headers, lengths, separators) so the
    /// decoder gets deep into its paths.
    #[test]
    fn esl_like_bytes_never_panic(
        parts in proptest::collection::vec(proptest::sample::select(ESL_PIECES), 0..64),
        chunk in 1usize..64,
    ) {
        let bytes: Vec<u8> = parts.concat();
        feed(&bytes, chunk);
        let _ = decode_plain(&bytes);
        let _ = decode_json(&bytes);
    }
}

const ESL_PIECES: &[&[u8]] = &[
    b"Content-Type: ",
    b"text/event-plain",
    b"text/event-json",
    b"command/reply",
    b"text/disconnect-notice",
    b"api/response",
    b"Content-Length: ",
    b"Event-Name: ",
    b"\n",
    b"\n\n",
    b"\r\n",
    b"12",
    b"0",
    b"{\"Event-Name\":\"X\"",
    b"%4",
    b"%C3",
    b"\xff\xfe",
    b": ",
    b"}",
    b"_body",
    b"ARRAY::",
    b"variable_\xc3",
];

fn feed(bytes: &[u8], chunk: usize) {
    let mut dec = FrameDecoder::new(8 * 1024, 64 * 1024);
    let mut buf = BytesMut::new();
    for piece in bytes.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match dec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(buf.len() < before, "a frame consumed nothing");
                    inspect(Message::decode(frame));
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// Touches every accessor so lazily computed paths run too.
fn inspect(m: Message) {
    match m {
        Message::Event(e) => {
            let _ = (
                e.name(),
                e.unique_id(),
                e.variable("x"),
                e.hangup_cause_code(),
            );
            let _ = e.to_frame().to_bytes();
        }
        Message::ChannelData(c) => {
            let _ = (
                c.uuid(),
                c.variables().count(),
                c.variable("x"),
                c.is_answered(),
            );
        }
        Message::Reply(r) => {
            let _ = (r.kind(), r.job_uuid());
        }
        _ => {}
    }
}

#[test]
fn transcript_frames_survive_mutation() {
    // Every real frame, cut at every 97th byte and with single bytes flipped: no panic.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/esl");
    let raw = std::fs::read(format!("{dir}/d-answered-call-json-events.txt")).unwrap();
    let frames = voxbridge_sim::transcript::parse(&raw).unwrap();
    for f in frames.iter().filter(|f| f.from_switch) {
        for cut in (0..f.bytes.len()).step_by(97) {
            feed(&f.bytes[..cut], 4096);
            let mut flipped = f.bytes.clone();
            flipped[cut] ^= 0x5a;
            feed(&flipped, 4096);
        }
    }
}
