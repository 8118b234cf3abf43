//! Helpers for the simulator tests: a minimal scripted ESL peer (what voxbridge would
//! be on the outbound socket, or an inbound client), and frame comparison with the
//! transcripts (header order and encoding, UUIDs and numbers aside).
#![allow(dead_code)]

use bytes::BytesMut;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use voxbridge::esl::frame::{Frame, FrameDecoder};
use voxbridge::esl::urlcode;
use voxbridge_sim::transcript::{self, TranscriptFrame};

/// Real time allowed for any one expected frame.
pub const WAIT: Duration = Duration::from_secs(5);

pub fn fixture(name: &str) -> Vec<TranscriptFrame> {
    let bytes = fixture_bytes(name);
    transcript::parse(&bytes).unwrap()
}

pub fn fixture_bytes(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/esl/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn decode(bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    FrameDecoder::default()
        .decode(&mut buf)
        .expect("frame decodes")
        .expect("whole frame")
}

/// Replaces UUIDs and digit runs so that only structure and encoding remain.
pub fn normalize(v: &str) -> String {
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
    digits
        .replace_all(&uuid.replace_all(v, "U"), "N")
        .into_owned()
}

/// Headers whose values are random per call (SIP tags, branches) or locale text, or
/// name the host (transcripts i–p come from a host called `vm`, a–h from `fs-test`).
fn value_varies(name: &str) -> bool {
    matches!(
        name,
        "Event-Date-GMT"
            | "FreeSWITCH-Hostname"
            | "Content-Length"
            | "variable_sip_from_tag"
            | "variable_sip_to_tag"
            | "variable_sip_full_via"
            | "variable_sip_full_from"
            | "variable_sip_full_to"
    )
}

/// A frame reduced to what must match: (name, normalized raw value) for the outer
/// headers, the inner headers of plain events or the keys of JSON events, the body.
#[derive(Debug, PartialEq)]
pub struct Shape {
    pub outer: Vec<(String, String)>,
    pub inner: Vec<(String, String)>,
    pub body: String,
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

/// JSON object keys and values in order, duplicates kept (arrays as JSON text).
pub fn json_pairs(body: &[u8]) -> Vec<(String, String)> {
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

fn normalize_bytes(b: &[u8]) -> String {
    normalize(&String::from_utf8_lossy(b))
}

pub fn shape(f: &Frame) -> Shape {
    let ct = f.content_type().unwrap_or("").to_string();
    let outer = pairs(f.headers.iter());
    let body = f.body.as_deref().unwrap_or(&[]);
    let (inner, body) = match ct.as_str() {
        "text/event-plain" => {
            let inner = decode(body);
            let inner_body = inner
                .body
                .as_deref()
                .map(normalize_bytes)
                .unwrap_or_default();
            (pairs(inner.headers.iter()), inner_body)
        }
        "text/event-json" => {
            let kv = json_pairs(body);
            (
                pairs(kv.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                String::new(),
            )
        }
        _ => (Vec::new(), normalize_bytes(body)),
    };
    Shape { outer, inner, body }
}

/// Panics with the first differences if two frames do not have the same shape.
pub fn assert_same_shape(context: &str, got: &Frame, want: &Frame) {
    let (gs, ws) = (shape(got), shape(want));
    if gs == ws {
        return;
    }
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
        "{context} ({}) differs\nouter:\n{}\ninner:\n{}\nbody: got {:?} want {:?}",
        label(want),
        diff(&gs.outer, &ws.outer),
        diff(&gs.inner, &ws.inner),
        gs.body,
        ws.body
    );
}

/// Decoded headers of an event frame (plain or JSON), with values URL-decoded.
pub fn event_headers(f: &Frame) -> Vec<(String, String)> {
    let body = f.body.as_deref().unwrap_or(&[]);
    match f.content_type() {
        Some("text/event-plain") => decode(body)
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), urlcode::decode(v)))
            .collect(),
        Some("text/event-json") => json_pairs(body),
        _ => Vec::new(),
    }
}

pub fn get<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// `content-type event-name-or-reply` — one line per frame for sequence comparisons.
pub fn label(f: &Frame) -> String {
    let ct = f.content_type().unwrap_or("?");
    let name = if let Some(n) = f.headers.get("Event-Name") {
        n.to_string()
    } else if ct.starts_with("text/event") {
        get(&event_headers(f), "Event-Name")
            .unwrap_or("")
            .to_string()
    } else {
        f.headers
            .get("Reply-Text")
            .or(f.headers.get("Content-Disposition"))
            .unwrap_or("")
            .to_string()
    };
    format!("{ct} {name}")
}

/// The name of an event frame, `None` for other frames. Plain events start with
/// `Event-Name:`, so the first line is enough.
pub fn event_name(f: &Frame) -> Option<String> {
    let body = f.body.as_deref().unwrap_or(&[]);
    match f.content_type()? {
        "text/event-plain" => {
            let line = body.split(|b| *b == b'\n').next()?;
            let name = std::str::from_utf8(line)
                .ok()?
                .strip_prefix("Event-Name: ")?;
            Some(urlcode::decode(name))
        }
        "text/event-json" => get(&event_headers(f), "Event-Name").map(str::to_string),
        _ => None,
    }
}

/// One ESL connection, seen from the client side.
pub struct Peer {
    pub stream: TcpStream,
    buf: BytesMut,
    dec: FrameDecoder,
    /// Every frame received, in order.
    pub frames: Vec<Frame>,
    /// Frames received but not yet consumed by `next` (replies taken out of order
    /// by `reply` leave the events around them here).
    unread: std::collections::VecDeque<Frame>,
    pub eof: bool,
}

impl Peer {
    pub fn new(stream: TcpStream) -> Self {
        Peer {
            stream,
            buf: BytesMut::new(),
            dec: FrameDecoder::default(),
            frames: Vec::new(),
            unread: std::collections::VecDeque::new(),
            eof: false,
        }
    }

    pub async fn accept(listener: &TcpListener) -> Self {
        let (s, _) = tokio::time::timeout(WAIT, listener.accept())
            .await
            .expect("the simulator connects")
            .unwrap();
        Self::new(s)
    }

    pub async fn connect(addr: std::net::SocketAddr) -> Self {
        Self::new(TcpStream::connect(addr).await.unwrap())
    }

    pub async fn send(&mut self, cmd: &str) {
        let mut text = cmd.trim_end_matches('\n').to_string();
        text.push_str("\n\n");
        let _ = self.stream.write_all(text.as_bytes()).await;
    }

    /// Reads one more frame from the wire into `unread`; `false` on EOF or timeout.
    async fn read_one(&mut self) -> bool {
        loop {
            if let Some(f) = self
                .dec
                .decode(&mut self.buf)
                .expect("valid ESL from the sim")
            {
                self.frames.push(f.clone());
                self.unread.push_back(f);
                return true;
            }
            if self.eof {
                return false;
            }
            match tokio::time::timeout(WAIT, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => self.eof = true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }

    /// The next frame not yet consumed.
    pub async fn next(&mut self) -> Option<Frame> {
        if self.unread.is_empty() && !self.read_one().await {
            return None;
        }
        self.unread.pop_front()
    }

    /// The next `command/reply` or `api/response` (events before it stay unread);
    /// returns its text.
    pub async fn reply(&mut self) -> String {
        let mut scanned = 0;
        loop {
            if scanned == self.unread.len() && !self.read_one().await {
                panic!("no reply before EOF/timeout");
            }
            let f = &self.unread[scanned];
            let text = match f.content_type() {
                Some("command/reply") if f.headers.get("Event-Name").is_none() => {
                    Some(f.headers.get("Reply-Text").unwrap_or("").to_string())
                }
                Some("command/reply") => Some("<connect reply>".to_string()),
                Some("api/response") => {
                    Some(String::from_utf8_lossy(f.body.as_deref().unwrap_or(&[])).into_owned())
                }
                _ => None,
            };
            match text {
                Some(t) => {
                    self.unread.remove(scanned);
                    return t;
                }
                None => scanned += 1,
            }
        }
    }

    pub async fn cmd(&mut self, cmd: &str) -> String {
        self.send(cmd).await;
        self.reply().await
    }

    /// Skips frames until the event `name`; returns its decoded headers.
    pub async fn until_event(&mut self, name: &str) -> Vec<(String, String)> {
        loop {
            let f = self
                .next()
                .await
                .unwrap_or_else(|| panic!("no {name} before EOF/timeout"));
            if event_name(&f).as_deref() == Some(name) {
                return event_headers(&f);
            }
        }
    }

    /// The last event `name` received so far, decoded.
    pub fn last_event(&self, name: &str) -> Option<Vec<(String, String)>> {
        self.frames
            .iter()
            .rev()
            .find(|f| event_name(f).as_deref() == Some(name))
            .map(event_headers)
    }

    /// Reads everything until the peer closes.
    pub async fn drain(&mut self) {
        while self.read_one().await {}
        self.unread.clear();
    }

    /// `connect`; returns the decoded channel data.
    pub async fn connect_channel(&mut self) -> Vec<(String, String)> {
        self.send("connect").await;
        let f = self.next().await.expect("connect reply");
        f.headers
            .iter()
            .map(|(n, v)| (n.to_string(), urlcode::decode(v)))
            .collect()
    }

    /// `sendmsg` execute; returns the reply text.
    pub async fn execute(&mut self, app: &str, arg: &str, lock: bool) -> String {
        let mut cmd = format!("sendmsg\ncall-command: execute\nexecute-app-name: {app}\n");
        if !arg.is_empty() {
            cmd.push_str(&format!("execute-app-arg: {arg}\n"));
        }
        if lock {
            cmd.push_str("event-lock: true\n");
        }
        self.cmd(&cmd).await
    }

    /// The usual start of a session, as in the transcripts: connect, myevents, linger.
    pub async fn start(&mut self) -> String {
        let data = self.connect_channel().await;
        assert_eq!(self.cmd("myevents").await, "+OK Events Enabled");
        assert_eq!(self.cmd("linger").await, "+OK will linger");
        get(&data, "Unique-ID").expect("Unique-ID").to_string()
    }

    /// Labels of all frames received so far.
    pub fn labels(&self) -> Vec<String> {
        self.frames.iter().map(label).collect()
    }

    /// Names of the events received so far, in order.
    pub fn event_names(&self) -> Vec<String> {
        self.frames.iter().filter_map(event_name).collect()
    }
}
