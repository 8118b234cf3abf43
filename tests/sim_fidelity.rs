//! The simulator against the real switch: for transcripts (a), (b), (c), (d), (g) and
//! (h), a tiny client replays the commands the transcript's client sent, and every frame
//! the simulator sends must match the transcript's frame at the same position: same
//! frame type and event, same header names in the same order (outer and inner), and the
//! same values in the same URL-encoding once UUIDs and numbers (times, sequence numbers,
//! ports, lengths) are set aside.

use bytes::BytesMut;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use voxbridge::esl::frame::{Frame, FrameDecoder};
use voxbridge::sim::transcript::{self, Connection, TranscriptFrame};
use voxbridge::sim::{CallScript, LingerNotice, Sim, SimConfig};

const SPEED: f64 = 20.0;
/// Real time allowed for any one expected frame.
const WAIT: Duration = Duration::from_secs(5);

fn fixture(name: &str) -> Vec<TranscriptFrame> {
    let path = format!("{}/tests/fixtures/esl/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    transcript::parse(&bytes)
        .unwrap()
        .into_iter()
        .filter(|f| f.connection == Connection::Outbound && f.socket == 1)
        .collect()
}

fn decode(bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    FrameDecoder::default()
        .decode(&mut buf)
        .expect("frame decodes")
        .expect("whole frame")
}

/// Replaces UUIDs and digit runs so that only structure and encoding remain.
fn normalize(v: &str) -> String {
    static RE: std::sync::OnceLock<(regex::Regex, regex::Regex)> = std::sync::OnceLock::new();
    let (uuid, digits) = RE.get_or_init(|| {
        (
            regex::Regex::new(
                r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
            )
            .unwrap(),
            regex::Regex::new(r"[0-9]+").unwrap(),
        )
    });
    digits.replace_all(&uuid.replace_all(v, "U"), "N").into_owned()
}

/// Headers whose values are random per call (SIP tags, branches) or locale text.
fn value_varies(name: &str) -> bool {
    matches!(
        name,
        "Event-Date-GMT"
            | "Content-Length"
            | "variable_sip_from_tag"
            | "variable_sip_to_tag"
            | "variable_sip_full_via"
            | "variable_sip_full_from"
            | "variable_sip_full_to"
    )
}

/// A frame reduced to what must match: (name, normalized raw value) for the outer
/// headers, the inner headers of plain events, JSON keys of JSON events, other bodies.
#[derive(Debug, PartialEq)]
struct Shape {
    outer: Vec<(String, String)>,
    inner: Vec<(String, String)>,
    body: String,
}

fn pairs<'a>(it: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<(String, String)> {
    it.map(|(n, v)| {
        let v = if value_varies(n) {
            "*".to_string()
        } else {
            normalize(v)
        };
        (n.to_string(), v)
    })
    .collect()
}

/// JSON object keys and values in order, duplicates kept.
fn json_pairs(body: &[u8]) -> Vec<(String, String)> {
    struct V(Vec<(String, String)>);
    impl<'de> serde::Deserialize<'de> for V {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Vis;
            impl<'de> serde::de::Visitor<'de> for Vis {
                type Value = V;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<V, A::Error> {
                    let mut out = Vec::new();
                    while let Some((k, v)) = m.next_entry::<String, serde_json::Value>()? {
                        let v = match v {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        };
                        out.push((k, v));
                    }
                    Ok(V(out))
                }
            }
            d.deserialize_map(Vis)
        }
    }
    let v: V = serde_json::from_slice(body).expect("JSON event body");
    v.0
}

fn shape(f: &Frame) -> Shape {
    let ct = f.content_type().unwrap_or("").to_string();
    let outer = pairs(f.headers.iter());
    let body = f.body.as_deref().unwrap_or(&[]);
    let (inner, body) = match ct.as_str() {
        "text/event-plain" => {
            let inner = decode(body);
            let inner_body = inner.body.as_deref().map(normalize_bytes).unwrap_or_default();
            (pairs(inner.headers.iter()), inner_body)
        }
        "text/event-json" => {
            let kv = json_pairs(body);
            (pairs(kv.iter().map(|(k, v)| (k.as_str(), v.as_str()))), String::new())
        }
        _ => (Vec::new(), normalize_bytes(body)),
    };
    Shape { outer, inner, body }
}

fn normalize_bytes(b: &[u8]) -> String {
    normalize(&String::from_utf8_lossy(b))
}

fn label(f: &Frame) -> String {
    let ct = f.content_type().unwrap_or("?");
    let name = f
        .headers
        .get("Event-Name")
        .map(str::to_string)
        .or_else(|| {
            if ct.starts_with("text/event") {
                let body = f.body.as_deref().unwrap_or(&[]);
                if ct == "text/event-json" {
                    json_pairs(body)
                        .into_iter()
                        .find(|(k, _)| k == "Event-Name")
                        .map(|(_, v)| v)
                } else {
                    decode(body).headers.get("Event-Name").map(str::to_string)
                }
            } else {
                f.headers
                    .get("Reply-Text")
                    .or(f.headers.get("Content-Disposition"))
                    .map(str::to_string)
            }
        })
        .unwrap_or_default();
    format!("{ct} {name}")
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

/// Replays the client side of `file` against the simulator and compares.
async fn replay(file: &str, script: CallScript, config: SimConfig) -> Vec<Frame> {
    let frames = fixture(file);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let sim = Sim::new(config);
    let call = sim.place_call(script, addr);
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
    let want_labels: Vec<String> = want.iter().map(label).collect();
    let got_labels: Vec<String> = got.iter().map(label).collect();
    assert_eq!(
        got_labels, want_labels,
        "{file}: frame sequence differs\n got: {got_labels:#?}\nwant: {want_labels:#?}"
    );
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let (gs, ws) = (shape(g), shape(w));
        if gs != ws {
            let diff = |a: &[(String, String)], b: &[(String, String)]| {
                let n = a.len().max(b.len());
                (0..n)
                    .filter(|k| a.get(*k) != b.get(*k))
                    .take(5)
                    .map(|k| format!("  #{k}: got {:?} want {:?}", a.get(k), b.get(k)))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            panic!(
                "{file}: frame {i} ({}) differs\nouter:\n{}\ninner:\n{}\nbody: got {:?} want {:?}",
                want_labels[i],
                diff(&gs.outer, &ws.outer),
                diff(&gs.inner, &ws.inner),
                gs.body,
                ws.body
            );
        }
    }
    got
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
