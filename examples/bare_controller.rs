//! The floor of the switch bench: the least any outbound-socket controller must do for
//! the bench's call, with nothing of what makes voxbridge voxbridge.
//!
//! It holds the same conversation with the switch as voxbridge does for that call — the
//! same handshake in one write (`connect`, `myevents`, `nixevent` of the same events,
//! `linger`), `api uuid_answer`, `playback` of the tone with `event-lock`, `hangup`,
//! then closing the socket on CHANNEL_HANGUP_COMPLETE — and the same two HTTP requests
//! on kept-alive connections: the answer document's `POST` before answering and the
//! hangup callback's after. Nothing else: no store (no live row, no record, no outbox,
//! no fsync), no decoding of header values (a frame is split at its blank line and
//! `Content-Length`, and the three headers it needs are found by their text), no document
//! parsing, no signature, no logging, one thread. It is not a controller anyone should
//! run: a crash loses every call in it, and a reply it does not expect ends the call.
//!
//! What it costs is what the machine charges for the call's I/O (accepts, reads,
//! writes, wake-ups) — the part of voxbridge's CPU per call no code change removes:
//!
//! ```text
//! cargo build --release --example bare_controller
//! BENCH_ONLY=voxbridge BENCH_VOXBRIDGE=target/release/examples/bare_controller \
//!     cargo bench --bench switch
//! ```
//!
//! (the bench then labels it "voxbridge"). It takes the bench's command line (`serve
//! --config FILE`), reads `default_answer_url` and `[esl] listen` from that file, and
//! prints the `esl=` line the bench waits for.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The same events voxbridge drops at the handshake (`UNUSED_EVENTS`).
const HANDSHAKE: &[u8] = b"connect\n\nmyevents\n\nnixevent CHANNEL_APPLICATION \
CHANNEL_CREATE CHANNEL_DATA CHANNEL_DESTROY CHANNEL_EXECUTE CHANNEL_ORIGINATE \
CHANNEL_OUTGOING CHANNEL_PARK CHANNEL_STATE CHANNEL_UNBRIDGE CHANNEL_UNPARK CHANNEL_UUID \
DETECTED_SPEECH NOTALK TALK\n\nlinger 30\n\n";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let config = args
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1))
        .and_then(|path| std::fs::read_to_string(path).ok())
        .unwrap_or_else(|| {
            eprintln!("bare_controller: usage: bare_controller serve --config FILE");
            std::process::exit(2)
        });
    // `key` of `[section]`, from the simple TOML the bench writes.
    let setting = |section: &str, key: &str| {
        let mut current = String::new();
        config.lines().find_map(|l| {
            let l = l.trim();
            if let Some(name) = l.strip_prefix('[') {
                current = name.trim_end_matches(']').to_string();
                return None;
            }
            let (k, v) = l.split_once('=')?;
            (current == section && k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
        })
    };
    let (Some(listen), Some(answer_url)) = (
        setting("esl", "listen"),
        setting("app", "default_answer_url"),
    ) else {
        eprintln!("bare_controller: the config names no [esl] listen or default_answer_url");
        std::process::exit(2)
    };
    let app = answer_url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(&listen).await.expect("listen");
        println!("esl={listen} (bare_controller)");
        let pool = Arc::new(Pool {
            addr: app,
            idle: Mutex::new(Vec::new()),
        });
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let pool = pool.clone();
            tokio::spawn(async move {
                if let Err(e) = call(socket, &pool).await {
                    eprintln!("bare_controller: a call failed: {e}");
                }
            });
        }
    });
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

async fn call(socket: TcpStream, pool: &Pool) -> Result<()> {
    let mut esl = Esl {
        socket,
        buf: Vec::with_capacity(16 * 1024),
        scanned: 0,
    };
    esl.socket.write_all(HANDSHAKE).await?;
    let (channel, _) = esl.frame().await?;
    let uuid = header(&channel, "Unique-ID").ok_or("no Unique-ID")?;
    let from = header(&channel, "Caller-Caller-ID-Number").unwrap_or_default();
    for _ in 0..3 {
        esl.frame().await?; // the replies to myevents, nixevent, linger
    }
    pool.post("/answer", &format!("CallUUID={uuid}&From={from}"))
        .await?;
    esl.socket
        .write_all(format!("api uuid_answer {uuid}\n\n").as_bytes())
        .await?;
    // The reply to the api command; CHANNEL_ANSWER may come before or after it.
    while !esl.frame().await?.0.contains("Content-Type: api/response") {}
    esl.socket
        .write_all(
            b"sendmsg\ncall-command: execute\nexecute-app-name: playback\n\
              execute-app-arg: tone_stream://%(200,0,440)\nevent-lock: true\n\n",
        )
        .await?;
    esl.until("CHANNEL_EXECUTE_COMPLETE").await?;
    esl.socket
        .write_all(b"sendmsg\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING\n\n")
        .await?;
    esl.until("CHANNEL_HANGUP_COMPLETE").await?;
    drop(esl);
    pool.post(
        "/hangup",
        &format!(
            "CallUUID={uuid}&From={from}&HangupCause=NORMAL_CLEARING&HangupSource=Answer%20XML"
        ),
    )
    .await?;
    Ok(())
}

/// `Name: value` in a header block, as it is on the wire (not URL-decoded).
fn header(block: &str, name: &str) -> Option<String> {
    block.lines().find_map(|l| {
        let (n, v) = l.split_once(": ")?;
        (n == name).then(|| v.to_string())
    })
}

struct Esl {
    socket: TcpStream,
    buf: Vec<u8>,
    /// How far `buf` is known to hold no blank line.
    scanned: usize,
}

impl Esl {
    /// The next frame: its header block and its body.
    async fn frame(&mut self) -> Result<(String, Vec<u8>)> {
        loop {
            if let Some(end) = blank_line(&self.buf, self.scanned) {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let len: usize = header(&head, "Content-Length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if self.buf.len() >= end + 2 + len {
                    let body = self.buf[end + 2..end + 2 + len].to_vec();
                    self.buf.drain(..end + 2 + len);
                    self.scanned = 0;
                    return Ok((head, body));
                }
            } else {
                self.scanned = self.buf.len().saturating_sub(1);
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.socket.read(&mut chunk).await?;
            if n == 0 {
                return Err("the switch closed the socket".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Frames until an event named `name` (an event body's first line names it).
    async fn until(&mut self, name: &str) -> Result<()> {
        let line = format!("Event-Name: {name}\n");
        loop {
            let (_, body) = self.frame().await?;
            if body.starts_with(line.as_bytes()) {
                return Ok(());
            }
        }
    }
}

/// Where the first `\n\n` at or after `from` starts.
fn blank_line(buf: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(i) = buf.get(at..)?.iter().position(|b| *b == b'\n') {
        let nl = at + i;
        if buf.get(nl + 1) == Some(&b'\n') {
            return Some(nl);
        }
        at = nl + 1;
    }
    None
}

/// Where the first `\r\n\r\n` starts.
fn end_of_head(buf: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(i) = buf.get(at..)?.iter().position(|b| *b == b'\r') {
        let cr = at + i;
        if buf.get(cr..cr + 4) == Some(b"\r\n\r\n") {
            return Some(cr);
        }
        at = cr + 1;
    }
    None
}

/// Kept-alive HTTP/1.1 connections to the bench's application.
struct Pool {
    addr: String,
    idle: Mutex<Vec<TcpStream>>,
}

impl Pool {
    async fn post(&self, path: &str, body: &str) -> Result<()> {
        let idle = self.idle.lock().map_err(|_| "pool poisoned")?.pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => TcpStream::connect(&self.addr).await?,
        };
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-www-form-urlencoded\r\n\
             content-length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        conn.write_all(request.as_bytes()).await?;
        let mut response = Vec::with_capacity(1024);
        loop {
            let mut chunk = [0u8; 4096];
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                return Err("the application closed the connection".into());
            }
            response.extend_from_slice(&chunk[..n]);
            if let Some(end) = end_of_head(&response) {
                let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if response.len() >= end + 4 + len {
                    break;
                }
            }
        }
        self.idle.lock().map_err(|_| "pool poisoned")?.push(conn);
        Ok(())
    }
}
