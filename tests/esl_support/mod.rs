//! Test support for the ESL tests: a scripted switch peer that speaks raw bytes, event
//! builders, the transcript fixtures and a log capture.
#![allow(dead_code)]

use bytes::BytesMut;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use voxbridge::esl::event::plain_event_frame;
use voxbridge::esl::frame::{FrameDecoder, Headers};
use voxbridge_sim::transcript::{self, TranscriptFrame};

pub fn fixture(name: &str) -> Vec<TranscriptFrame> {
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

/// The UUID of the channel in transcript (a)'s connect reply.
pub const FIXTURE_UUID: &str = "e300f525-1572-4a6c-982e-1439546ddb55";

/// Transcript (a)'s real connect reply, with the channel UUID replaced by `uuid`
/// (36 characters, like the original).
pub fn connect_reply(uuid: &str) -> Vec<u8> {
    assert_eq!(uuid.len(), FIXTURE_UUID.len());
    let frames = fixture("a");
    let raw = frames
        .iter()
        .find(|f| f.from_switch && f.bytes.starts_with(b"Event-Name: CHANNEL_DATA"))
        .unwrap();
    replace(&raw.bytes, FIXTURE_UUID.as_bytes(), uuid.as_bytes())
}

/// Replaces every occurrence of `from` with `to` (same length keeps Content-Length valid).
pub fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

pub fn reply(text: &str) -> Vec<u8> {
    format!("Content-Type: command/reply\nReply-Text: {text}\n\n").into_bytes()
}

pub fn api_response(body: &str) -> Vec<u8> {
    format!(
        "Content-Type: api/response\nContent-Length: {}\n\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A plain event frame the way the switch writes it.
pub fn event(pairs: &[(&str, &str)], body: Option<&str>) -> Vec<u8> {
    let mut h = Headers::new();
    for (n, v) in pairs {
        h.push(*n, *v);
    }
    plain_event_frame(&h, body.map(str::as_bytes)).to_bytes()
}

pub fn execute_complete(uuid: &str, app: &str, app_uuid: &str, response: &str) -> Vec<u8> {
    event(
        &[
            ("Event-Name", "CHANNEL_EXECUTE_COMPLETE"),
            ("Unique-ID", uuid),
            ("Application", app),
            ("Application-Response", response),
            ("Application-UUID", app_uuid),
        ],
        None,
    )
}

pub fn hangup_complete(uuid: &str, cause: &str) -> Vec<u8> {
    event(
        &[
            ("Event-Name", "CHANNEL_HANGUP_COMPLETE"),
            ("Hangup-Cause", cause),
            ("Unique-ID", uuid),
            ("Answer-State", "hangup"),
            ("Hangup-Cause", cause),
            ("variable_hangup_cause", cause),
        ],
        None,
    )
}

pub fn linger_notice(uuid: &str) -> Vec<u8> {
    format!("Content-Type: text/disconnect-notice\nControlled-Session-UUID: {uuid}\nContent-Disposition: linger\nChannel-Name: sofia/internal/15551230000@127.0.0.1\nLinger-Time: -1\nContent-Length: 0\n\n").into_bytes()
}

pub fn final_notice(uuid: &str) -> Vec<u8> {
    format!("Content-Type: text/disconnect-notice\nControlled-Session-UUID: {uuid}\nContent-Disposition: disconnect\nContent-Length: 67\n\nDisconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n").into_bytes()
}

/// One command as the peer received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub raw: Vec<u8>,
    pub line: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The switch side of a socket, driven by the test.
pub struct SwitchPeer {
    pub stream: TcpStream,
    buf: BytesMut,
    dec: FrameDecoder,
}

impl SwitchPeer {
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            dec: FrameDecoder::default(),
        }
    }

    pub async fn connect(addr: std::net::SocketAddr) -> Self {
        Self::new(TcpStream::connect(addr).await.unwrap())
    }

    /// The next command, or `None` on EOF.
    pub async fn read(&mut self) -> Option<Received> {
        loop {
            let snapshot = self.buf.clone();
            match self.dec.decode(&mut self.buf) {
                Ok(Some(frame)) => {
                    let used = snapshot.len() - self.buf.len();
                    let raw = snapshot[..used].to_vec();
                    let text = String::from_utf8_lossy(&raw).into_owned();
                    let text = text.trim_start_matches(['\r', '\n']);
                    let line = text.lines().next().unwrap_or("").to_string();
                    let block = text.split("\n\n").next().unwrap_or("");
                    let headers = block
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(": "))
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .collect();
                    return Some(Received {
                        raw,
                        line,
                        headers,
                        body: frame.body.map(|b| b.to_vec()),
                    });
                }
                Ok(None) => {}
                Err(e) => panic!("client sent a bad frame: {e}"),
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next command, which must start with `prefix`.
    pub async fn expect(&mut self, prefix: &str) -> Received {
        let r = self
            .read()
            .await
            .unwrap_or_else(|| panic!("EOF while waiting for {prefix:?}"));
        assert!(
            r.line.starts_with(prefix),
            "expected {prefix:?}, got {:?}",
            r.line
        );
        r
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        // The client may already be gone in the failure tests.
        let _ = self.stream.write_all(bytes).await;
    }

    /// Answers the standard handshake: connect → channel data, myevents, linger.
    pub async fn handshake(&mut self, uuid: &str) {
        self.expect("connect").await;
        self.send(&connect_reply(uuid)).await;
        self.expect("myevents").await;
        self.send(&reply("+OK Events Enabled")).await;
        self.expect("linger").await;
        self.send(&reply("+OK will linger")).await;
    }

    /// `true` if the other side closed the socket within `within`.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        let mut scratch = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut scratch)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }
}

/// A fresh UUID string.
pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Log lines written while the guard lives (current thread only: use a
/// current-thread runtime so spawned tasks log here too).
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let sink = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
