//! Records byte-exact ESL transcripts from a real FreeSWITCH, in the format of
//! `tests/fixtures/esl/` (see its README), so that new switch behaviour lands with its
//! ground truth and the simulator can be checked against it (`tests/sim_fidelity.rs`).
//!
//! ```sh
//! ../shared/freeswitch/fs start --dialplan tests/fixtures/esl/capture-dialplan.xml
//! flock /tmp/fs-live.lock cargo run --example capture -- i --out tests/fixtures/esl/i-….txt
//! cargo run --example capture -- --list
//! ```
//!
//! Each scenario is a fixed script (commands to send, events to wait for), so a capture
//! can be re-run. The tool plays both clients of the existing transcripts: an inbound ESL
//! client on 127.0.0.1:8021 that places the calls, and the server the switch's `socket`
//! app connects to. That server listens on **127.0.0.1:8094**, not 8084 (which belongs to
//! voxbridge and the live suite): calls reach it through the capture dialplan (7900
//! answers then hands over, 7901 hands over a ringing call) or through
//! `originate … &socket(127.0.0.1:8094 async full)`.
//!
//! Every command is built with voxbridge's own encoder (`voxbridge::esl::command`), so the
//! client side of a transcript is byte for byte what voxbridge would send. Frames are split
//! here on raw bytes (header block up to the blank line, then `Content-Length` bytes), not
//! with voxbridge's decoder, so a decoder bug cannot shape the recording.
//!
//! Sanitising: `FreeSWITCH-IPv4`/`FreeSWITCH-IPv6` values are rewritten to loopback
//! addresses of the same byte length on the wire (so every `Content-Length` holds).
//! Nothing else is touched; the hostname (`FreeSWITCH-Hostname`) is the real one.
//!
//! On any failure the tool kills the channels it created (by uuid, never anything else)
//! and writes what it saw to `<out>.failed` instead of the transcript.

use anyhow::{anyhow, bail, Context, Result};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use voxbridge::esl::command::{Command, Execute, Linger};
use voxbridge::esl::event::EventFormat;
use voxbridge::esl::urlcode;

const ESL: &str = "127.0.0.1:8021";
const PASSWORD: &str = "ClueCon";
/// Where the capture's own outbound-socket server listens.
const SOCKET_ADDR: &str = "127.0.0.1:8094";
/// How long any one expected frame may take.
const WAIT: Duration = Duration::from_secs(20);
const CALLER: &str = "origination_caller_id_number=15551230000,origination_caller_id_name=ESL-Test";
/// The events the outbound client subscribes to after `myevents`, as in transcripts a–h.
const EVENTS: &[&str] = &[
    "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "DTMF",
    "CHANNEL_ANSWER",
];

// ---------------------------------------------------------------------------------------
// The transcript being written.

#[derive(Clone)]
struct Log(Arc<Mutex<LogInner>>);

struct LogInner {
    start: Instant,
    out: Vec<u8>,
}

impl Log {
    fn new() -> Self {
        Log(Arc::new(Mutex::new(LogInner {
            start: Instant::now(),
            out: Vec::new(),
        })))
    }

    fn frame(&self, conn: &str, from_switch: bool, bytes: &[u8]) {
        let mut l = self.0.lock().unwrap();
        let t = l.start.elapsed().as_secs_f64();
        let marker = if from_switch {
            format!(
                "<<<<<<<< [{conn}] +{t:.3}s RECEIVED from FreeSWITCH ({} bytes)\n",
                bytes.len()
            )
        } else {
            format!(
                ">>>>>>>> [{conn}] +{t:.3}s SENT to FreeSWITCH ({} bytes)\n",
                bytes.len()
            )
        };
        l.out.extend_from_slice(marker.as_bytes());
        l.out.extend_from_slice(bytes);
        if !bytes.ends_with(b"\n") {
            l.out.extend_from_slice(
                b"\n[[no newline at end of frame; the line break before this marker is not on the wire]]\n",
            );
        }
        l.out
            .extend_from_slice(b"-------- end of frame --------\n\n");
    }

    fn note(&self, text: &str) {
        let mut l = self.0.lock().unwrap();
        l.out
            .extend_from_slice(format!("### NOTE: {text}\n").as_bytes());
    }

    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.0.lock().unwrap().out)
    }
}

/// Rewrites `FreeSWITCH-IPv4`/`-IPv6` values (plain header lines, URL-encoded or not, and
/// JSON members) to loopback addresses of exactly the same byte length.
fn sanitise(bytes: &mut [u8]) {
    for (name, v6) in [("FreeSWITCH-IPv4", false), ("FreeSWITCH-IPv6", true)] {
        for (prefix, end) in [
            (format!("{name}: "), b'\n'),
            (format!("\"{name}\":\""), b'"'),
        ] {
            let mut from = 0;
            while let Some(at) = find(&bytes[from..], prefix.as_bytes()) {
                let start = from + at + prefix.len();
                let len = bytes[start..]
                    .iter()
                    .position(|b| *b == end)
                    .unwrap_or(bytes.len() - start);
                let encoded = bytes[start..start + len].windows(3).any(|w| w == b"%3A");
                let fake = loopback(len, v6, encoded);
                bytes[start..start + len].copy_from_slice(fake.as_bytes());
                from = start + len;
            }
        }
    }
}

/// A loopback address written in exactly `len` bytes (`0000::1`, `0000%3A%3A1`,
/// `127.0.0.1`, zero-padded to fit).
fn loopback(len: usize, v6: bool, encoded: bool) -> String {
    let tail = match (v6, encoded) {
        (true, true) => "%3A%3A1",
        (true, false) => "::1",
        (false, _) => "127.0.0.1",
    };
    if len < tail.len() {
        return "0".repeat(len);
    }
    let pad = "0".repeat(len - tail.len());
    if v6 {
        format!("{pad}{tail}")
    } else {
        format!("127.0.0.{pad}1")
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------
// One ESL frame as read, with just enough parsing to script against it.

#[derive(Clone, Debug)]
struct Frame {
    headers: Vec<(String, String)>,
    /// For `text/event-plain`: the event's own headers, URL-decoded.
    event: Vec<(String, String)>,
    body: Vec<u8>,
}

fn parse_headers(block: &str) -> Vec<(String, String)> {
    block
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

impl Frame {
    fn parse(raw: &[u8]) -> Frame {
        let split = find(raw, b"\n\n").map(|i| i + 2).unwrap_or(raw.len());
        let headers = parse_headers(&String::from_utf8_lossy(&raw[..split]));
        let body = raw[split..].to_vec();
        let mut event = Vec::new();
        if lookup(&headers, "Content-Type") == Some("text/event-plain") {
            let inner_end = find(&body, b"\n\n").unwrap_or(body.len());
            event = parse_headers(&String::from_utf8_lossy(&body[..inner_end]))
                .into_iter()
                .map(|(n, v)| (n, urlcode::decode(&v)))
                .collect();
        }
        Frame {
            headers,
            event,
            body,
        }
    }

    fn content_type(&self) -> &str {
        lookup(&self.headers, "Content-Type").unwrap_or("")
    }

    fn event_name(&self) -> Option<&str> {
        lookup(&self.event, "Event-Name")
    }

    fn var(&self, name: &str) -> Option<&str> {
        lookup(&self.event, name)
    }

    /// The reply text of a `command/reply` or the body of an `api/response`.
    fn reply_text(&self) -> String {
        match self.content_type() {
            "api/response" => String::from_utf8_lossy(&self.body).into_owned(),
            _ => lookup(&self.headers, "Reply-Text")
                .unwrap_or("")
                .to_string(),
        }
    }
}

fn lookup<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------------------
// A logged connection.

struct Conn {
    name: String,
    log: Log,
    writer: Option<OwnedWriteHalf>,
    rx: mpsc::UnboundedReceiver<Frame>,
    /// Frames read but not consumed by a wait yet.
    pending: VecDeque<Frame>,
    eof: bool,
}

impl Conn {
    fn spawn(stream: TcpStream, name: &str, log: Log) -> Conn {
        let (mut reader, writer) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let (task_log, task_name) = (log.clone(), name.to_string());
        tokio::spawn(async move {
            let mut buf = Vec::new();
            loop {
                while let Some(n) = frame_len(&buf) {
                    let mut raw: Vec<u8> = buf.drain(..n).collect();
                    sanitise(&mut raw);
                    task_log.frame(&task_name, true, &raw);
                    if tx.send(Frame::parse(&raw)).is_err() {
                        return;
                    }
                }
                let mut chunk = [0u8; 65536];
                match reader.read(&mut chunk).await {
                    Ok(0) | Err(_) => {
                        task_log.note(&format!(
                            "[{task_name}] connection closed by FreeSWITCH (EOF)"
                        ));
                        return;
                    }
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        });
        Conn {
            name: name.to_string(),
            log,
            writer: Some(writer),
            rx,
            pending: VecDeque::new(),
            eof: false,
        }
    }

    async fn send(&mut self, cmd: &Command) -> Result<()> {
        let bytes = cmd.to_bytes();
        self.log.frame(&self.name, false, &bytes);
        let w = self.writer.as_mut().context("connection already closed")?;
        w.write_all(&bytes).await?;
        Ok(())
    }

    /// Several commands in one write (each logged as its own frame, as they are framed
    /// on the wire).
    async fn send_all(&mut self, cmds: &[Command]) -> Result<()> {
        let mut bytes = Vec::new();
        for cmd in cmds {
            let one = cmd.to_bytes();
            self.log.frame(&self.name, false, &one);
            bytes.extend_from_slice(&one);
        }
        let w = self.writer.as_mut().context("connection already closed")?;
        w.write_all(&bytes).await?;
        Ok(())
    }

    /// Reads one more frame into `pending`.
    async fn read_more(&mut self, deadline: Instant) -> Result<()> {
        if self.eof {
            bail!("[{}] closed", self.name);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.rx.recv()).await {
            Ok(Some(f)) => {
                self.pending.push_back(f);
                Ok(())
            }
            Ok(None) => {
                self.eof = true;
                bail!("[{}] closed", self.name)
            }
            Err(_) => bail!("[{}] timed out", self.name),
        }
    }

    /// Takes the first frame (read or still to come) that `want` accepts; the frames
    /// before it stay for later waits.
    async fn take(&mut self, what: &str, want: impl Fn(&Frame) -> bool) -> Result<Frame> {
        let deadline = Instant::now() + WAIT;
        let mut scanned = 0;
        loop {
            if let Some(i) = self.pending.iter().skip(scanned).position(&want) {
                return Ok(self.pending.remove(scanned + i).unwrap());
            }
            scanned = self.pending.len();
            self.read_more(deadline)
                .await
                .with_context(|| format!("waiting for {what}"))?;
        }
    }

    /// The next `command/reply` or `api/response`.
    async fn reply(&mut self) -> Result<String> {
        let f = self
            .take("a reply", |f| {
                matches!(f.content_type(), "command/reply" | "api/response")
            })
            .await?;
        Ok(f.reply_text())
    }

    async fn cmd(&mut self, cmd: Command) -> Result<String> {
        self.send(&cmd).await?;
        self.reply().await
    }

    async fn api(&mut self, line: &str) -> Result<String> {
        self.cmd(Command::api(line)?).await
    }

    /// The event `name` whose (decoded) header `header` is `value`.
    async fn event_where(&mut self, name: &str, header: &str, value: &str) -> Result<Frame> {
        self.take(&format!("{name} with {header}={value}"), |f| {
            f.event_name() == Some(name) && f.var(header) == Some(value)
        })
        .await
    }

    async fn event(&mut self, name: &str) -> Result<Frame> {
        self.take(name, |f| f.event_name() == Some(name)).await
    }

    /// Waits until the switch closes the connection.
    async fn closed(&mut self) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        while !self.eof {
            match self.read_more(deadline).await {
                Ok(()) => {}
                Err(_) if self.eof => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `exit`, then the final disconnect notice and EOF.
    async fn exit(&mut self) -> Result<()> {
        self.cmd(Command::exit()).await?;
        self.closed().await
    }
}

/// Length of the first complete frame in `buf`, if there is one.
fn frame_len(buf: &[u8]) -> Option<usize> {
    let head = find(buf, b"\n\n")? + 2;
    let text = String::from_utf8_lossy(&buf[..head]);
    let body = lookup(&parse_headers(&text), "Content-Length")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    (buf.len() >= head + body).then_some(head + body)
}

// ---------------------------------------------------------------------------------------
// The capture session: log, listener, the uuids to clean up on failure.

struct Capture {
    log: Log,
    listener: TcpListener,
    sockets: u32,
    /// Channels this capture created, killed if the scenario fails.
    uuids: Vec<String>,
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Capture {
    async fn inbound(&self) -> Result<Conn> {
        let stream = TcpStream::connect(ESL)
            .await
            .with_context(|| format!("inbound ESL {ESL}"))?;
        let mut c = Conn::spawn(stream, "INBOUND-ESL", self.log.clone());
        c.take("auth/request", |f| f.content_type() == "auth/request")
            .await?;
        let r = c.cmd(Command::auth(PASSWORD)?).await?;
        if !r.starts_with("+OK") {
            bail!("auth: {r}");
        }
        Ok(c)
    }

    /// Accepts the next connection of the switch's `socket` app.
    async fn accept(&mut self) -> Result<Conn> {
        let (stream, _) = tokio::time::timeout(WAIT, self.listener.accept())
            .await
            .context("the switch's socket app did not connect")??;
        self.sockets += 1;
        let name = if self.sockets == 1 {
            "OUTBOUND-SOCKET".to_string()
        } else {
            format!("OUTBOUND-SOCKET#{}", self.sockets)
        };
        Ok(Conn::spawn(stream, &name, self.log.clone()))
    }

    /// Best effort: kill every channel this capture created, on a connection of its own
    /// that is not recorded.
    async fn clean_up(&self) {
        let Ok(stream) = TcpStream::connect(ESL).await else {
            return;
        };
        let mut c = Conn::spawn(stream, "cleanup", Log::new());
        let _ = c.take("auth", |f| f.content_type() == "auth/request").await;
        let _ = c.cmd(Command::auth(PASSWORD).unwrap()).await;
        for u in &self.uuids {
            let _ = c.api(&format!("uuid_kill {u}")).await;
        }
    }
}

/// The standard start of an outbound session, as in transcripts a–h: connect, myevents,
/// linger, `event plain` with `events`. Returns the channel's uuid.
async fn start_session(out: &mut Conn, events: &[&str]) -> Result<String> {
    out.send(&Command::connect()).await?;
    let data = out
        .take("connect reply", |f| {
            lookup(&f.headers, "Event-Name") == Some("CHANNEL_DATA")
        })
        .await?;
    let uuid = lookup(&data.headers, "Unique-ID")
        .context("connect reply without Unique-ID")?
        .to_string();
    out.cmd(Command::myevents(EventFormat::Plain)).await?;
    out.cmd(Command::linger(Linger::Forever)).await?;
    out.cmd(Command::event(EventFormat::Plain, events)?).await?;
    Ok(uuid)
}

/// `sendmsg` execute with `event-lock: true` and an Event-UUID; returns that uuid.
async fn execute(out: &mut Conn, app: &str, arg: Option<&str>) -> Result<String> {
    let id = new_uuid();
    let r = out
        .cmd(Command::execute(&Execute::locked(app, arg, &id))?)
        .await?;
    if !r.starts_with("+OK") {
        bail!("execute {app}: {r}");
    }
    Ok(id)
}

async fn execute_complete(out: &mut Conn, app_uuid: &str) -> Result<Frame> {
    out.event_where("CHANNEL_EXECUTE_COMPLETE", "Application-UUID", app_uuid)
        .await
}

/// Hang up from the socket, wait for CHANNEL_HANGUP_COMPLETE, then `exit`.
async fn hang_up_and_exit(out: &mut Conn, cause: &str) -> Result<()> {
    execute(out, "hangup", Some(cause)).await?;
    out.event("CHANNEL_HANGUP_COMPLETE").await?;
    out.take("linger notice", |f| {
        f.content_type() == "text/disconnect-notice"
            && lookup(&f.headers, "Content-Disposition") == Some("linger")
    })
    .await?;
    out.exit().await
}

/// Inbound client that places a call to the capture dialplan and hears its result.
async fn caller(cap: &mut Capture, ext: &str, app: &str) -> Result<(Conn, String, String)> {
    let mut inb = cap.inbound().await?;
    let a = new_uuid();
    let job = new_uuid();
    inb.cmd(Command::event(EventFormat::Plain, &["BACKGROUND_JOB"])?)
        .await?;
    inb.cmd(Command::filter("Job-UUID", &job)?).await?;
    cap.uuids.push(a.clone());
    let line = format!(
        "originate {{origination_uuid={a},{CALLER}}}sofia/external/{ext}@127.0.0.1:5060 {app}"
    );
    let r = inb.cmd(Command::bgapi(&line, &job)?).await?;
    if !r.starts_with("+OK") {
        bail!("bgapi originate: {r}");
    }
    Ok((inb, a, job))
}

/// The caller's side ends: its BACKGROUND_JOB (if still due) and `exit`.
async fn caller_done(inb: &mut Conn, job: &str) -> Result<()> {
    inb.event_where("BACKGROUND_JOB", "Job-UUID", job).await?;
    inb.exit().await
}

// ---------------------------------------------------------------------------------------
// Scenarios.

struct Scenario {
    name: &'static str,
    file: &'static str,
    title: &'static str,
    about: &'static str,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "i",
        file: "i-bridge-answered-callee-hangs-up.txt",
        title: "bridge from an unanswered socket-controlled channel to a callee that answers, then hangs up",
        about: "Call: inbound ESL `bgapi originate` of sofia/external/7901@127.0.0.1:5060 (capture dialplan: socket, unanswered).
Outbound client: connect, myevents, linger, event plain <list + CHANNEL_BRIDGE CHANNEL_UNBRIDGE CHANNEL_PROGRESS
      CHANNEL_PROGRESS_MEDIA CHANNEL_ORIGINATE>, then sendmsg execute bridge (event-lock) of
      {origination_uuid=<B>}sofia/external/7002@127.0.0.1:5060 (7002 answers with a tone). The bridge answers the
      socket's channel. 2 s after CHANNEL_BRIDGE, the INBOUND-ESL connection runs `api uuid_kill <B>` (the callee
      hangs up). The socket then sees CHANNEL_UNBRIDGE and the bridge's CHANNEL_EXECUTE_COMPLETE, and hangs its own
      channel up (NORMAL_CLEARING), waits for CHANNEL_HANGUP_COMPLETE and the linger notice, and sends exit.",
    },
    Scenario {
        name: "j",
        file: "j-bridge-busy.txt",
        title: "bridge to a busy destination (486)",
        about: "Call: inbound ESL `bgapi originate` of sofia/external/7901@127.0.0.1:5060 (capture dialplan: socket, unanswered).
Outbound client: connect, myevents, linger, event plain <list + bridge events>, then sendmsg execute bridge
      (event-lock) of {origination_uuid=<B>}sofia/external/7003@127.0.0.1:5060 (7003 answers `486 Busy Here`).
      The bridge fails at once: its CHANNEL_EXECUTE_COMPLETE carries the originate result variables. The socket's
      channel was never answered; the client hangs it up with USER_BUSY and sends exit.",
    },
    Scenario {
        name: "k",
        file: "k-bridge-no-answer.txt",
        title: "bridge to a destination that rings and never answers (ring timeout)",
        about: "Call: inbound ESL `bgapi originate` of sofia/external/7901@127.0.0.1:5060 (capture dialplan: socket, unanswered).
Outbound client: connect, myevents, linger, event plain <list + bridge events>, then sendmsg execute bridge
      (event-lock) of {origination_uuid=<B>,originate_timeout=3}sofia/external/7004@127.0.0.1:5060 (7004 sends
      180 Ringing and never answers). After 3 s the bridge gives up: CHANNEL_EXECUTE_COMPLETE with the
      NO_ANSWER originate result. The client hangs the channel up with NO_ANSWER and sends exit.",
    },
    Scenario {
        name: "u",
        file: "u-bridge-caller-cancels-while-ringing.txt",
        title: "bridge ringing 7004; the caller gives up (CANCEL) while it rings",
        about: "Call: inbound ESL `bgapi originate` of sofia/external/7901@127.0.0.1:5060 (capture dialplan: socket, unanswered).
Outbound client: connect, myevents, linger, event plain <list + bridge events>, then sendmsg execute bridge (event-lock) of {origination_uuid=<B>,originate_timeout=30}sofia/external/7004@127.0.0.1:5060 (180, never answers).
      1 s after CHANNEL_PROGRESS the INBOUND-ESL connection runs `api uuid_kill <calling leg>` (the caller's CANCEL).
      The socket sees the bridge's CHANNEL_EXECUTE_COMPLETE and its own channel's end; the client waits for
      CHANNEL_HANGUP_COMPLETE and the linger notice, and sends exit.",
    },
    Scenario {
        name: "v",
        file: "v-bridge-callee-side-hangs-up.txt",
        title: "bridge answered by 7002; the callee's own side hangs up (BYE towards B)",
        about: "Call: inbound ESL `bgapi originate` of sofia/external/7901@127.0.0.1:5060 (capture dialplan: socket, unanswered).
Outbound client: connect, myevents, linger, event plain <list + bridge events>, then sendmsg execute bridge (event-lock) of {origination_uuid=<B>,origination_caller_id_number=15559990002}sofia/external/7002@127.0.0.1:5060.
      2 s after CHANNEL_BRIDGE the INBOUND-ESL connection finds the callee's far-end channel (`show channels like
      15559990002`, the uuid that is not B) and kills it: the callee sends BYE to B. The socket sees CHANNEL_UNBRIDGE and
      the bridge's completion, hangs its channel up (NORMAL_CLEARING) and sends exit. Compare i (B killed by the switch).",
    },
    Scenario {
        name: "w",
        file: "w-bridge-a-leg-killed.txt",
        title: "bridge answered by 7002; `uuid_kill` of the socket's own channel (the A-leg) during the bridge",
        about: "Call: inbound ESL `bgapi originate` of sofia/external/7901@127.0.0.1:5060 (capture dialplan: socket, unanswered).
Outbound client: connect, myevents, linger, event plain <list + bridge events>, then sendmsg execute bridge (event-lock) of {origination_uuid=<B>}sofia/external/7002@127.0.0.1:5060.
      2 s after CHANNEL_BRIDGE the INBOUND-ESL connection runs `api uuid_kill <the socket's channel>` (what voxbridge
      does for REST DELETE of the A-leg). The socket sees its channel and the bridge end; the client waits for
      CHANNEL_HANGUP_COMPLETE and the linger notice, and sends exit.",
    },
    Scenario {
        name: "x",
        file: "x-bridge-two-destinations-lose-race.txt",
        title: "bridge to two destinations at once: 7004 rings, 7002 answers and wins; the loser ends LOSE_RACE",
        about: "Call: inbound ESL `bgapi originate` of sofia/external/7901@127.0.0.1:5060 (capture dialplan: socket, unanswered).
Outbound client: connect, myevents, linger, event plain <list + bridge events>, then sendmsg execute bridge (event-lock) of {originate_timeout=30}[origination_uuid=<L>]sofia/external/7004@127.0.0.1:5060,[origination_uuid=<B>]sofia/external/7002@127.0.0.1:5060.
      7002 answers and is bridged, 7004 is cancelled. 2 s after CHANNEL_BRIDGE the INBOUND-ESL connection runs
      `api uuid_kill <B>`. The bridge's completion carries `originate_causes` in the switch's ARRAY form
      (`ARRAY::<L>;LOSE_RACE|:<B>;NONE`). The client hangs its channel up (NORMAL_CLEARING) and sends exit.",
    },
    Scenario {
        name: "y",
        file: "y-bridge-ringing-b-leg-killed.txt",
        title: "bridge ringing 7004; `uuid_kill` of the only B-leg while it rings",
        about: "Call: inbound ESL `bgapi originate` of sofia/external/7901@127.0.0.1:5060 (capture dialplan: socket, unanswered).
Outbound client: connect, myevents, linger, event plain <list + bridge events>, then sendmsg execute bridge (event-lock) of {origination_uuid=<B>,originate_timeout=30}sofia/external/7004@127.0.0.1:5060.
      1 s after CHANNEL_PROGRESS the INBOUND-ESL connection runs `api uuid_kill <B>` (what voxbridge does for REST
      DELETE of a ringing leg). The bridge fails at once with NORMAL_CLEARING; the socket's channel stays, unanswered.
      The client hangs it up (NORMAL_CLEARING) and sends exit.",
    },
    Scenario {
        name: "z2",
        file: "z2-bridge-callee-digits-bind-digit-action-diverted.txt",
        title: "the callee's digits matched by bind_digit_action on the bridge peer, the match diverted to the socket",
        about: "Call: inbound ESL `bgapi originate` of sofia/external/7901@127.0.0.1:5060 (capture dialplan: socket, unanswered).
Outbound client: connect, myevents, linger, event plain <list + bridge events>, `divert_events on`, then sendmsg
      execute bind_digit_action `voxbridge_dial,1234#,voxbridge_digits_match,bleg,peer` (the caller's channel
      watches its bridge peer's digits), then bridge (event-lock) of {origination_uuid=<B>}sofia/external/7007@…
      (7007 answers, then presses 1234# ~1 s later). The callee's DTMF never shows on this socket; the match does,
      as a text/event-plain frame with no Event-Name: `voxbridge_digits_match: bleg`, `digits: 1234%23`. Then the
      INBOUND-ESL connection kills the B-leg; the client hangs up and sends exit.",
    },
    Scenario {
        name: "z3",
        file: "z3-bridge-ringback-file-string-early-media.txt",
        title: "a ringback file string played to the unanswered caller while the callee rings",
        about: "Call: inbound ESL `bgapi originate` of sofia/external/7901@127.0.0.1:5060 (capture dialplan: socket, unanswered).
Outbound client: connect, myevents, linger, event plain <list + bridge events>, then set
      ringback=file_string://tone_stream://%(400,200,440) and bridge (event-lock) of
      {origination_uuid=<B>,ignore_early_media=true}sofia/external/7008@… (7008: 180, answers after 2 s). The
      caller gets early media at once (CHANNEL_PROGRESS_MEDIA, not a bare CHANNEL_PROGRESS), the tone loops, the
      answer bridges at ~2 s. The INBOUND-ESL connection kills the B-leg; the client hangs up and sends exit.",
    },
    Scenario {
        name: "l",
        file: "l-dtmf-prompt-barge-in-uuid-break.txt",
        title: "DTMF collected during a prompt, with barge-in by `uuid_break`",
        about: "Call: inbound ESL `bgapi originate` of sofia/external/7900@127.0.0.1:5060 (capture dialplan: answer, socket).
Outbound client: connect, myevents, linger, event plain <list>, then an endless tone playback (event-lock) as the
      prompt. The INBOUND-ESL connection runs `api uuid_send_dtmf <A-leg> 1234#` (RFC 2833 from the caller). On the
      first DTMF event the socket sends `api uuid_break <own uuid>` on its own connection (barge-in): the
      playback's CHANNEL_EXECUTE_COMPLETE follows while the other digits keep arriving as DTMF events. At `#` the
      client hangs up (NORMAL_CLEARING) and sends exit.",
    },
    Scenario {
        name: "q",
        file: "q-gather-flush-dtmf-speak-barge-in.txt",
        title: "a Gather as voxbridge runs it: digits pressed before it flushed, a `speak` prompt barged in",
        about: "Call: inbound ESL `bgapi originate` of sofia/external/7900@127.0.0.1:5060 (capture dialplan: answer, socket).
Outbound client: connect, myevents, linger, event plain <list>, then the element before the Gather: `sleep 2000`
      (event-lock), during which the INBOUND-ESL connection runs `api uuid_send_dtmf <A-leg> 9` (a digit pressed
      before the Gather). Then the Gather: `flush_dtmf` (event-lock; the switch drops the digits it holds), then a
      `speak flite|slt|<long menu>` prompt; 1 s into it `api uuid_send_dtmf <A-leg> 2`; on that DTMF event the
      socket sends `api uuid_break <own uuid>`: the speak's CHANNEL_EXECUTE_COMPLETE follows. The client hangs up
      (NORMAL_CLEARING) and sends exit.",
    },
    Scenario {
        name: "m",
        file: "m-record-ended-by-silence.txt",
        title: "`record` ended by silence",
        about: "Call: inbound ESL `bgapi originate` of sofia/external/7900@127.0.0.1:5060 &playback(silence_stream://30000)
      (capture dialplan: answer, socket): the caller sends 30 s of silence.
Outbound client: connect, myevents, linger, event plain <list + RECORD_START RECORD_STOP>, then sendmsg execute
      record (event-lock) `capture-m-<uuid>.wav 20 200 2` (relative: recordings_dir; at most 20 s; silence
      threshold 200, 2 s of silence ends it). The record ends by silence after ~2 s: its CHANNEL_EXECUTE_COMPLETE
      carries the record_* variables and silence_hits_exhausted. The client hangs up and sends exit.",
    },
    Scenario {
        name: "n",
        file: "n-record-ended-by-key.txt",
        title: "`record` ended by a DTMF key",
        about: "Call: inbound ESL `bgapi originate` of sofia/external/7900@127.0.0.1:5060 &playback(silence_stream://30000)
      (capture dialplan: answer, socket): the caller sends silence.
Outbound client: connect, myevents, linger, event plain <list + RECORD_START RECORD_STOP>, then sendmsg execute
      set playback_terminators=# (event-lock), then record (event-lock) `capture-n-<uuid>.wav 20 200 10`
      (at most 20 s, 10 s of silence). 1.5 s into the recording the INBOUND-ESL connection runs
      `api uuid_send_dtmf <A-leg> #`; the DTMF ends the record (playback_terminator_used). The client hangs up
      and sends exit.",
    },
    Scenario {
        name: "r",
        file: "r-record-ended-by-max-length.txt",
        title: "`record` ended by its time limit (maxLength)",
        about: "Call: inbound ESL `bgapi originate` of sofia/external/7900@127.0.0.1:5060 &playback(silence_stream://30000)
      (capture dialplan: answer, socket): the caller sends silence.
Outbound client: connect, myevents, linger, event plain <list + RECORD_START RECORD_STOP>, then sendmsg execute
      record (event-lock) `capture-r-<uuid>.wav 3 200 10` (at most 3 s, 10 s of silence). The limit ends it:
      RECORD_STOP and CHANNEL_EXECUTE_COMPLETE with record_ms ~3000, silence_hits_exhausted false and no
      playback_terminator_used. The client hangs up and sends exit.",
    },
    Scenario {
        name: "s",
        file: "s-record-ended-by-caller-hangup.txt",
        title: "`record` ended by the caller hanging up",
        about: "Call: inbound ESL `bgapi originate` of sofia/external/7900@127.0.0.1:5060 &playback(silence_stream://30000)
      (capture dialplan: answer, socket): the caller sends silence.
Outbound client: connect, myevents, linger, event plain <list + RECORD_START RECORD_STOP>, then sendmsg execute
      record (event-lock) `capture-s-<uuid>.wav 20 200 10`. 1.5 s into the recording the INBOUND-ESL connection
      runs `api uuid_kill <A-leg>` (the caller hangs up): CHANNEL_HANGUP, RECORD_STOP, the record's
      CHANNEL_EXECUTE_COMPLETE, CHANNEL_HANGUP_COMPLETE, the linger notice; the client sends exit.",
    },
    Scenario {
        name: "t",
        file: "t-record-session-and-stop.txt",
        title: "`record_session` stopped by `stop_record_session`, and a second one completed by the hangup",
        about: "Call: inbound ESL `bgapi originate` of sofia/external/7900@127.0.0.1:5060 &playback(silence_stream://30000)
      (capture dialplan: answer, socket).
Outbound client: connect, myevents, linger, event plain <list + RECORD_START RECORD_STOP>, then sendmsg execute
      record_session (event-lock) `capture-t1-<uuid>.wav` (it returns at once: the recording runs in a media
      bug), a 2 s tone playback, stop_record_session with the absolute path RECORD_START reported (RECORD_STOP; a relative name
      matches no recording and stops nothing). Then record_session
      `capture-t2-<uuid>.wav`, a 1 s tone playback, and hangup NORMAL_CLEARING: the second file's RECORD_STOP
      comes with the hangup. The client waits for CHANNEL_HANGUP_COMPLETE and sends exit.",
    },
    Scenario {
        name: "z",
        file: "z-uuid-record-beside-an-app-and-record-broken.txt",
        title: "`uuid_record start/stop` beside a running playback, and a `record` ended by `uuid_break`",
        about: "Call: inbound ESL `bgapi originate` of sofia/external/7900@127.0.0.1:5060 &playback(silence_stream://30000)
      (capture dialplan: answer, socket).
Outbound client: connect, myevents, linger, event plain <list + RECORD_START RECORD_STOP>, then sendmsg execute
      playback (event-lock) of a 3 s tone; while it plays the socket runs `api uuid_record <own uuid> start
      /tmp/capture-u1-<uuid>.wav` (RECORD_START at once, beside the playback), 1 s later `api uuid_record <own
      uuid> stop /tmp/capture-u1-<uuid>.wav` (RECORD_STOP). Then record (event-lock) `/tmp/capture-u2-<uuid>.wav
      20 200 10` after `set playback_terminators=#`; 1 s in, `api uuid_break <own uuid>`: RECORD_STOP and the
      record's CHANNEL_EXECUTE_COMPLETE (neither silence_hits_exhausted nor playback_terminator_used). The
      client hangs up and sends exit.",
    },
    Scenario {
        name: "o",
        file: "o-originate-socket-answered.txt",
        title: "outbound call: `originate … &socket(…)` answered",
        about: "Call: the INBOUND-ESL connection subscribes to BACKGROUND_JOB CHANNEL_PROGRESS CHANNEL_ANSWER
      CHANNEL_HANGUP_COMPLETE, filtered on its Job-UUID and the call's origination_uuid, then runs
      `bgapi originate {origination_uuid=<O>,…,originate_timeout=10}sofia/external/7008@127.0.0.1:5060
      '&socket(127.0.0.1:8094 async full)'` (the app in single quotes: see o2). 7008 rings 2 s, then answers; only then does the `socket` app run on
      the originated (outbound-direction) channel and connect.
Outbound client: connect (the channel is answered, Call-Direction: outbound), myevents, linger, event plain <list>,
      a 1 s tone playback (event-lock), hangup NORMAL_CLEARING, exit.",
    },
    Scenario {
        name: "o2",
        file: "o2-originate-socket-unquoted-app-args.txt",
        title: "outbound call: `originate … &socket(127.0.0.1:8094 async full)` WITHOUT quotes loses `async full`",
        about: "Call: as in (o), but the app is not quoted. originate splits its arguments on spaces, so the socket app
      gets only `127.0.0.1:8094` (variable_current_application_data) and `async`/`full` are taken as the
      dialplan and context arguments. The connect reply says `Socket-Mode: static`, `Control: single-channel`;
      `linger` and `event plain …` answer `-ERR command not found` (myevents and sendmsg work). Without linger
      the switch closes the socket right after the hangup's CHANNEL_EXECUTE_COMPLETE: no CHANNEL_HANGUP_COMPLETE
      on the socket (only on the INBOUND-ESL connection).",
    },
    Scenario {
        name: "p",
        file: "p-originate-socket-not-answered.txt",
        title: "outbound call: `originate … &socket(…)` never answered (ring timeout)",
        about: "Call: as in (o), to 7004 (180 Ringing, never answers) with originate_timeout=3. The BACKGROUND_JOB result
      is `-ERR NO_ANSWER`, the channel ends with NO_ANSWER, and no socket connection is ever made: the `socket`
      app only runs on an answered originate. The client waits 2 s more on 127.0.0.1:8094 to show that.",
    },
    Scenario {
        name: "p2",
        file: "p2-originate-socket-busy.txt",
        title: "outbound call: `originate … '&socket(…)'` to a busy callee",
        about: "Call: as in (o), to 7003 (`respond 486`), with the events a dialer reads: BACKGROUND_JOB
      CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE. The BACKGROUND_JOB is
      `-ERR USER_BUSY`, the channel ends USER_BUSY (q850 17, sip_term_status 486) without ringing, and no socket
      connection is made.",
    },
    Scenario {
        name: "p3",
        file: "p3-originate-socket-cancelled-while-ringing.txt",
        title: "outbound call: `originate … '&socket(…)'` cancelled while ringing (`uuid_kill`)",
        about: "Call: as in (p2), to 7004 (180, never answers) with originate_timeout=30. At its CHANNEL_PROGRESS the
      INBOUND-ESL connection runs `api uuid_kill <O> ORIGINATOR_CANCEL` (a REST DELETE while ringing). The
      BACKGROUND_JOB result, the channel's CHANNEL_HANGUP_COMPLETE (cause, q850, disposition) follow; no socket.",
    },
    Scenario {
        name: "p4",
        file: "p4-originate-socket-time-limit.txt",
        title: "outbound call: a time limit armed at answer by `execute_on_answer='sched_hangup +2 ALLOTTED_TIMEOUT'`",
        about: "Call: as in (p2), to 7002 (answers at once, endless tone), with the originate variable
      `execute_on_answer='sched_hangup +2 ALLOTTED_TIMEOUT'` (single quotes keep the spaces). The socket
      connects after the answer; the client only subscribes and waits: the switch hangs the channel up about
      2 s after the answer (ALLOTTED_TIMEOUT) by itself. The client then sends exit.",
    },
    Scenario {
        name: "z4",
        file: "z4-hangup-call-command.txt",
        title: "`sendmsg` `call-command: hangup` (no application): unanswered causes, and queued behind playbacks",
        about: "What voxbridge's document hangup sends (issue 16): `sendmsg` with `call-command: hangup` and
      `hangup-cause: <CAUSE>`, no `execute-app-name`. Four calls, one after the other:
      1-3. inbound ESL `bgapi originate` of sofia/external/7901@127.0.0.1:5060 (capture dialplan: socket, unanswered),
      the INBOUND-ESL connection also subscribed to the calling leg's CHANNEL_HANGUP_COMPLETE (what the caller gets:
      `sip_term_status`). The socket sends the hangup command at once with USER_BUSY (1), CALL_REJECTED (2),
      NORMAL_CLEARING (3), waits for CHANNEL_HANGUP_COMPLETE and the linger notice, and sends exit.
      4. 7900 (answered): an event-locked 1 s tone playback, a second event-locked 0.5 s tone queued behind it,
      then the hangup command (NORMAL_CLEARING), then a third event-locked playback queued behind the hangup. The
      hangup runs after both tones; the third playback never runs.",
    },
    Scenario {
        name: "z5",
        file: "z5-handshake-in-one-write.txt",
        title: "the outbound handshake in one write: `connect`, `myevents`, `nixevent`, `linger`",
        about: "What voxbridge's handshake sends (issue 16): the four commands in ONE write, before the channel
      data has come back. Call: inbound ESL `bgapi originate` of sofia/external/7901@127.0.0.1:5060 (capture
      dialplan: socket, unanswered). The switch answers them one at a time, in order: the channel data, then
      three `+OK` replies. The socket then ends the call with `call-command: hangup` (NORMAL_CLEARING), takes
      CHANNEL_HANGUP (CHANNEL_EXECUTE is nixevented, so the only events are the channel's own), the linger
      notice, and sends exit.",
    },
];

/// What an outbound-call dialer reads on its inbound connection (SPEC §13).
const DIALER_EVENTS: &[&str] = &[
    "BACKGROUND_JOB",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_ANSWER",
    "CHANNEL_HANGUP_COMPLETE",
];

/// `originate {…}sofia/external/<dest> '&socket(…)'` with the dialer's events (p2, p3, p4).
async fn originate_outcome(cap: &mut Capture, scenario: &str) -> Result<()> {
    let mut inb = cap.inbound().await?;
    let o = new_uuid();
    let job = new_uuid();
    inb.cmd(Command::event(EventFormat::Plain, DIALER_EVENTS)?)
        .await?;
    inb.cmd(Command::filter("Job-UUID", &job)?).await?;
    inb.cmd(Command::filter("Unique-ID", &o)?).await?;
    cap.uuids.push(o.clone());
    let (dest, extra) = match scenario {
        "p2" => ("7003", ",originate_timeout=10".to_string()),
        "p3" => ("7004", ",originate_timeout=30".to_string()),
        _ => (
            "7002",
            ",originate_timeout=10,ignore_early_media=true,execute_on_answer='sched_hangup +2 ALLOTTED_TIMEOUT'"
                .to_string(),
        ),
    };
    let line = format!(
        "originate {{origination_uuid={o},{CALLER}{extra}}}sofia/external/{dest}@127.0.0.1:5060 '&socket({SOCKET_ADDR} async full)'"
    );
    let r = inb.cmd(Command::bgapi(&line, &job)?).await?;
    if !r.starts_with("+OK") {
        bail!("bgapi originate: {r}");
    }
    match scenario {
        "p3" => {
            inb.event_where("CHANNEL_PROGRESS", "Unique-ID", &o).await?;
            inb.api(&format!("uuid_kill {o} ORIGINATOR_CANCEL")).await?;
        }
        "p4" => {
            let mut out = cap.accept().await?;
            start_session(&mut out, EVENTS).await?;
            out.event("CHANNEL_HANGUP_COMPLETE").await?;
            out.cmd(Command::exit()).await?;
        }
        _ => {}
    }
    inb.event_where("BACKGROUND_JOB", "Job-UUID", &job).await?;
    inb.event_where("CHANNEL_HANGUP_COMPLETE", "Unique-ID", &o)
        .await?;
    if scenario != "p4" {
        if tokio::time::timeout(Duration::from_secs(2), cap.listener.accept())
            .await
            .is_ok()
        {
            bail!("the socket app connected for an unanswered originate");
        }
        cap.log
            .note("[OUTBOUND-SOCKET] no connection to 127.0.0.1:8094 within 2 s after the hangup (none expected)");
    }
    inb.exit().await
}

const BRIDGE_EVENTS: &[&str] = &[
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_ORIGINATE",
];
const RECORD_EVENTS: &[&str] = &["RECORD_START", "RECORD_STOP"];

fn with(extra: &[&'static str]) -> Vec<&'static str> {
    EVENTS.iter().chain(extra).copied().collect()
}

async fn bridge(
    cap: &mut Capture,
    dest: &str,
    vars: &str,
    callee_hangs_up: bool,
    cause: &str,
) -> Result<()> {
    let (mut inb, _a, job) = caller(cap, "7901", "&park()").await?;
    let mut out = cap.accept().await?;
    start_session(&mut out, &with(BRIDGE_EVENTS)).await?;
    let b = new_uuid();
    cap.uuids.push(b.clone());
    let arg = format!("{{origination_uuid={b}{vars}}}sofia/external/{dest}@127.0.0.1:5060");
    let app = execute(&mut out, "bridge", Some(&arg)).await?;
    if callee_hangs_up {
        out.event("CHANNEL_BRIDGE").await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        inb.api(&format!("uuid_kill {b}")).await?;
    }
    execute_complete(&mut out, &app).await?;
    hang_up_and_exit(&mut out, cause).await?;
    caller_done(&mut inb, &job).await
}

/// How a Dial's bridge is ended in the scenarios u–y (SPEC §11, issue #12).
#[derive(Clone, Copy, PartialEq, Eq)]
enum BridgeEnd {
    /// u: the caller gives up (CANCEL: `uuid_kill` of the calling leg) while 7004 rings.
    CallerCancels,
    /// v: the callee's own side hangs up (its far-end channel is killed: BYE to B).
    CalleeByes,
    /// w: `uuid_kill` of the socket's own channel (the A-leg) during the bridge.
    KillALeg,
    /// x: two destinations, 7004 (rings) and 7002 (answers): LOSE_RACE; then B killed.
    LoseRace,
    /// y: `uuid_kill` of the only B-leg while it rings.
    KillRingingBLeg,
}

/// The caller ID the B-leg presents in v, so that its far end can be found by it.
const V_CALLEE_CID: &str = "15559990002";

async fn bridge_ends(cap: &mut Capture, how: BridgeEnd) -> Result<()> {
    let (mut inb, caller_leg, job) = caller(cap, "7901", "&park()").await?;
    let mut out = cap.accept().await?;
    let own = start_session(&mut out, &with(BRIDGE_EVENTS)).await?;
    let b = new_uuid();
    cap.uuids.push(b.clone());
    let sip = |dest: &str| format!("sofia/external/{dest}@127.0.0.1:5060");
    let arg = match how {
        BridgeEnd::CallerCancels | BridgeEnd::KillRingingBLeg => {
            format!(
                "{{origination_uuid={b},originate_timeout=30}}{}",
                sip("7004")
            )
        }
        BridgeEnd::CalleeByes => format!(
            "{{origination_uuid={b},origination_caller_id_number={V_CALLEE_CID}}}{}",
            sip("7002")
        ),
        BridgeEnd::KillALeg => format!("{{origination_uuid={b}}}{}", sip("7002")),
        BridgeEnd::LoseRace => {
            let loser = new_uuid();
            cap.uuids.push(loser.clone());
            format!(
                "{{originate_timeout=30}}[origination_uuid={loser}]{},[origination_uuid={b}]{}",
                sip("7004"),
                sip("7002")
            )
        }
    };
    let app = execute(&mut out, "bridge", Some(&arg)).await?;
    let ringing = matches!(how, BridgeEnd::CallerCancels | BridgeEnd::KillRingingBLeg);
    if ringing {
        out.event("CHANNEL_PROGRESS").await?;
    } else {
        out.event("CHANNEL_BRIDGE").await?;
    }
    tokio::time::sleep(Duration::from_secs(if ringing { 1 } else { 2 })).await;
    let victim = match how {
        BridgeEnd::CallerCancels => caller_leg.clone(),
        BridgeEnd::KillALeg => own.clone(),
        BridgeEnd::LoseRace | BridgeEnd::KillRingingBLeg => b.clone(),
        BridgeEnd::CalleeByes => {
            // The far end of B: the switch's inbound channel for the INVITE B sent,
            // presenting V_CALLEE_CID (B itself shows it too: skip B's uuid).
            let rows = inb
                .api(&format!("show channels like {V_CALLEE_CID}"))
                .await?;
            let far = rows
                .lines()
                .filter_map(|l| l.split(',').next())
                .find(|u| u.len() == 36 && u.matches('-').count() == 4 && *u != b)
                .with_context(|| format!("no far end of {b} in: {rows}"))?
                .to_string();
            log::info(&format!("callee's far end {far}"));
            far
        }
    };
    inb.api(&format!("uuid_kill {victim}")).await?;
    execute_complete(&mut out, &app).await?;
    if matches!(how, BridgeEnd::CallerCancels | BridgeEnd::KillALeg) {
        // The socket's channel is going already: its end, the linger notice, exit.
        out.event("CHANNEL_HANGUP_COMPLETE").await?;
        out.take("linger notice", |f| {
            f.content_type() == "text/disconnect-notice"
                && lookup(&f.headers, "Content-Disposition") == Some("linger")
        })
        .await?;
        out.exit().await?;
    } else {
        hang_up_and_exit(&mut out, "NORMAL_CLEARING").await?;
    }
    caller_done(&mut inb, &job).await
}

/// `digitsMatchBLeg` as voxbridge's Dial carries it out (`render::callee_digit_bindings`):
/// the caller's channel binds a pattern to its bridge peer's digits, the socket diverts
/// session events, and the callee's match comes back as an event without `Event-Name`.
async fn callee_digits_matched(cap: &mut Capture) -> Result<()> {
    let (mut inb, _a, job) = caller(cap, "7901", "&park()").await?;
    let mut out = cap.accept().await?;
    start_session(&mut out, &with(BRIDGE_EVENTS)).await?;
    let r = out.cmd(Command::divert_events(true)).await?;
    if !r.starts_with("+OK") {
        bail!("divert_events on: {r}");
    }
    let bind = execute(
        &mut out,
        "bind_digit_action",
        Some("voxbridge_dial,1234#,voxbridge_digits_match,bleg,peer"),
    )
    .await?;
    execute_complete(&mut out, &bind).await?;
    let b = new_uuid();
    cap.uuids.push(b.clone());
    let arg = format!("{{origination_uuid={b}}}sofia/external/7007@127.0.0.1:5060");
    let app = execute(&mut out, "bridge", Some(&arg)).await?;
    out.event("CHANNEL_BRIDGE").await?;
    out.take("the diverted digit-action match", |f| {
        f.content_type() == "text/event-plain" && f.body.starts_with(b"voxbridge_digits_match: ")
    })
    .await?;
    inb.api(&format!("uuid_kill {b}")).await?;
    execute_complete(&mut out, &app).await?;
    hang_up_and_exit(&mut out, "NORMAL_CLEARING").await?;
    caller_done(&mut inb, &job).await
}

/// `dialMusic` as voxbridge's Dial carries it out (`render::music_vars`): the caller's
/// `ringback` is a `file_string://` and the bridge ignores the callee's early media; the
/// unanswered caller gets early media at once, while the callee still rings.
async fn ringback_music(cap: &mut Capture) -> Result<()> {
    let (mut inb, _a, job) = caller(cap, "7901", "&park()").await?;
    let mut out = cap.accept().await?;
    start_session(&mut out, &with(BRIDGE_EVENTS)).await?;
    let set = execute(
        &mut out,
        "set",
        Some("ringback=file_string://tone_stream://%(400,200,440)"),
    )
    .await?;
    execute_complete(&mut out, &set).await?;
    let b = new_uuid();
    cap.uuids.push(b.clone());
    let arg = format!(
        "{{origination_uuid={b},ignore_early_media=true}}sofia/external/7008@127.0.0.1:5060"
    );
    let app = execute(&mut out, "bridge", Some(&arg)).await?;
    out.event("CHANNEL_PROGRESS_MEDIA").await?;
    out.event("CHANNEL_BRIDGE").await?;
    inb.api(&format!("uuid_kill {b}")).await?;
    execute_complete(&mut out, &app).await?;
    hang_up_and_exit(&mut out, "NORMAL_CLEARING").await?;
    caller_done(&mut inb, &job).await
}

async fn dtmf_barge_in(cap: &mut Capture) -> Result<()> {
    let (mut inb, a, job) = caller(cap, "7900", "&park()").await?;
    let mut out = cap.accept().await?;
    let own = start_session(&mut out, EVENTS).await?;
    inb.event_where("BACKGROUND_JOB", "Job-UUID", &job).await?;
    let prompt = execute(
        &mut out,
        "playback",
        Some("tone_stream://%(1000,0,440);loops=-1"),
    )
    .await?;
    out.event_where("CHANNEL_EXECUTE", "Application-UUID", &prompt)
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    inb.api(&format!("uuid_send_dtmf {a} 1234#")).await?;
    let first = out.event("DTMF").await?;
    log::info(&format!("first digit {:?}", first.var("DTMF-Digit")));
    out.api(&format!("uuid_break {own}")).await?;
    execute_complete(&mut out, &prompt).await?;
    out.event_where("DTMF", "DTMF-Digit", "#").await?;
    hang_up_and_exit(&mut out, "NORMAL_CLEARING").await?;
    inb.exit().await
}

/// What voxbridge's Gather sends (see `call::element::gather`): a digit pressed during
/// the element before it, `flush_dtmf`, a spoken prompt, a digit, `uuid_break`.
async fn gather_flush_and_barge_in(cap: &mut Capture) -> Result<()> {
    let (mut inb, a, job) = caller(cap, "7900", "&park()").await?;
    let mut out = cap.accept().await?;
    let own = start_session(&mut out, EVENTS).await?;
    inb.event_where("BACKGROUND_JOB", "Job-UUID", &job).await?;
    let before = execute(&mut out, "sleep", Some("2000")).await?;
    out.event_where("CHANNEL_EXECUTE", "Application-UUID", &before)
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    inb.api(&format!("uuid_send_dtmf {a} 9")).await?;
    execute_complete(&mut out, &before).await?;
    let flush = execute(&mut out, "flush_dtmf", None).await?;
    execute_complete(&mut out, &flush).await?;
    let prompt = execute(
        &mut out,
        "speak",
        Some(
            "flite|slt|Welcome. For sales, press one. For support, press two. For billing, \
             press three. To hear these options again, stay on the line.",
        ),
    )
    .await?;
    out.event_where("CHANNEL_EXECUTE", "Application-UUID", &prompt)
        .await?;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    inb.api(&format!("uuid_send_dtmf {a} 2")).await?;
    // The 9 pressed during the sleep arrives as its own DTMF event (when the switch
    // dequeues it), before flush_dtmf completes; wait for the 2.
    out.event_where("DTMF", "DTMF-Digit", "2").await?;
    out.api(&format!("uuid_break {own}")).await?;
    execute_complete(&mut out, &prompt).await?;
    hang_up_and_exit(&mut out, "NORMAL_CLEARING").await?;
    inb.exit().await
}

async fn record(cap: &mut Capture, by_key: bool) -> Result<()> {
    // The caller sends audio (silence): a parked caller sends no RTP, and the record
    // then ends with record_ms=0.
    let (mut inb, a, job) = caller(cap, "7900", "&playback(silence_stream://30000)").await?;
    let mut out = cap.accept().await?;
    start_session(&mut out, &with(RECORD_EVENTS)).await?;
    inb.event_where("BACKGROUND_JOB", "Job-UUID", &job).await?;
    let file = format!(
        "capture-{}-{}.wav",
        if by_key { "n" } else { "m" },
        new_uuid()
    );
    let rec = if by_key {
        let set = execute(&mut out, "set", Some("playback_terminators=#")).await?;
        execute_complete(&mut out, &set).await?;
        let rec = execute(&mut out, "record", Some(&format!("{file} 20 200 10"))).await?;
        out.event_where("CHANNEL_EXECUTE", "Application-UUID", &rec)
            .await?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        inb.api(&format!("uuid_send_dtmf {a} #")).await?;
        rec
    } else {
        execute(&mut out, "record", Some(&format!("{file} 20 200 2"))).await?
    };
    execute_complete(&mut out, &rec).await?;
    hang_up_and_exit(&mut out, "NORMAL_CLEARING").await?;
    inb.exit().await
}

/// `record` ended by its limit (`max_length`) or by the caller hanging up (`caller_hangs_up`).
async fn record_limit_or_hangup(cap: &mut Capture, caller_hangs_up: bool) -> Result<()> {
    let (mut inb, a, job) = caller(cap, "7900", "&playback(silence_stream://30000)").await?;
    let mut out = cap.accept().await?;
    start_session(&mut out, &with(RECORD_EVENTS)).await?;
    inb.event_where("BACKGROUND_JOB", "Job-UUID", &job).await?;
    if caller_hangs_up {
        let file = format!("capture-s-{}.wav", new_uuid());
        let rec = execute(&mut out, "record", Some(&format!("{file} 20 200 10"))).await?;
        out.event_where("CHANNEL_EXECUTE", "Application-UUID", &rec)
            .await?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        inb.api(&format!("uuid_kill {a}")).await?;
        execute_complete(&mut out, &rec).await?;
        out.event("CHANNEL_HANGUP_COMPLETE").await?;
        out.take("linger notice", |f| {
            f.content_type() == "text/disconnect-notice"
                && lookup(&f.headers, "Content-Disposition") == Some("linger")
        })
        .await?;
        out.exit().await?;
    } else {
        let file = format!("capture-r-{}.wav", new_uuid());
        let rec = execute(&mut out, "record", Some(&format!("{file} 3 200 10"))).await?;
        execute_complete(&mut out, &rec).await?;
        hang_up_and_exit(&mut out, "NORMAL_CLEARING").await?;
    }
    inb.exit().await
}

/// `record_session` (both directions, in the background): one stopped by
/// `stop_record_session`, one completed by the hangup.
async fn record_session(cap: &mut Capture) -> Result<()> {
    let (mut inb, _a, job) = caller(cap, "7900", "&playback(silence_stream://30000)").await?;
    let mut out = cap.accept().await?;
    start_session(&mut out, &with(RECORD_EVENTS)).await?;
    inb.event_where("BACKGROUND_JOB", "Job-UUID", &job).await?;
    let id = new_uuid();
    let first = format!("capture-t1-{id}.wav");
    let second = format!("capture-t2-{id}.wav");
    let rs = execute(&mut out, "record_session", Some(&first)).await?;
    // stop_record_session matches the media bug by its absolute path (a relative name
    // stops nothing): take it from RECORD_START.
    let start = out.event("RECORD_START").await?;
    let path = start
        .var("Record-File-Path")
        .context("RECORD_START without Record-File-Path")?
        .to_string();
    execute_complete(&mut out, &rs).await?;
    let tone = execute(
        &mut out,
        "playback",
        Some("tone_stream://%(1000,0,440);loops=2"),
    )
    .await?;
    execute_complete(&mut out, &tone).await?;
    let stop = execute(&mut out, "stop_record_session", Some(&path)).await?;
    execute_complete(&mut out, &stop).await?;
    out.event("RECORD_STOP").await?;
    let rs = execute(&mut out, "record_session", Some(&second)).await?;
    execute_complete(&mut out, &rs).await?;
    let tone = execute(
        &mut out,
        "playback",
        Some("tone_stream://%(1000,0,440);loops=1"),
    )
    .await?;
    execute_complete(&mut out, &tone).await?;
    hang_up_and_exit(&mut out, "NORMAL_CLEARING").await?;
    inb.exit().await
}

/// What voxbridge does for `startOnDialAnswer` and REST stops: `uuid_record` beside a
/// running application, and `uuid_break` of a running `record`.
async fn uuid_record_and_break(cap: &mut Capture) -> Result<()> {
    let (mut inb, _a, job) = caller(cap, "7900", "&playback(silence_stream://30000)").await?;
    let mut out = cap.accept().await?;
    let own = start_session(&mut out, &with(RECORD_EVENTS)).await?;
    inb.event_where("BACKGROUND_JOB", "Job-UUID", &job).await?;
    let id = new_uuid();
    let first = format!("/tmp/capture-u1-{id}.wav");
    let second = format!("/tmp/capture-u2-{id}.wav");
    let tone = execute(
        &mut out,
        "playback",
        Some("tone_stream://%(1000,0,440);loops=3"),
    )
    .await?;
    out.event_where("CHANNEL_EXECUTE", "Application-UUID", &tone)
        .await?;
    let r = out.api(&format!("uuid_record {own} start {first}")).await?;
    log::info(&format!("uuid_record start: {}", r.trim()));
    out.event("RECORD_START").await?;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let r = out.api(&format!("uuid_record {own} stop {first}")).await?;
    log::info(&format!("uuid_record stop: {}", r.trim()));
    out.event("RECORD_STOP").await?;
    execute_complete(&mut out, &tone).await?;
    let set = execute(&mut out, "set", Some("playback_terminators=#")).await?;
    execute_complete(&mut out, &set).await?;
    let rec = execute(&mut out, "record", Some(&format!("{second} 20 200 10"))).await?;
    out.event_where("CHANNEL_EXECUTE", "Application-UUID", &rec)
        .await?;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    out.api(&format!("uuid_break {own}")).await?;
    execute_complete(&mut out, &rec).await?;
    hang_up_and_exit(&mut out, "NORMAL_CLEARING").await?;
    let _ = std::fs::remove_file(&first);
    let _ = std::fs::remove_file(&second);
    inb.exit().await
}

/// `quoted`: the app in single quotes, as originate needs it. Unquoted, originate splits
/// its arguments on spaces: the app gets `127.0.0.1:8094` alone, and `async`/`full` become
/// the dialplan and context arguments (transcript o2).
async fn originate_socket(cap: &mut Capture, answered: bool, quoted: bool) -> Result<()> {
    let mut inb = cap.inbound().await?;
    let o = new_uuid();
    let job = new_uuid();
    inb.cmd(Command::event(
        EventFormat::Plain,
        &[
            "BACKGROUND_JOB",
            "CHANNEL_PROGRESS",
            "CHANNEL_ANSWER",
            "CHANNEL_HANGUP_COMPLETE",
        ],
    )?)
    .await?;
    inb.cmd(Command::filter("Job-UUID", &job)?).await?;
    inb.cmd(Command::filter("Unique-ID", &o)?).await?;
    cap.uuids.push(o.clone());
    let (dest, timeout) = if answered { ("7008", 10) } else { ("7004", 3) };
    let app = if quoted {
        format!("'&socket({SOCKET_ADDR} async full)'")
    } else {
        format!("&socket({SOCKET_ADDR} async full)")
    };
    let line = format!(
        "originate {{origination_uuid={o},{CALLER},originate_timeout={timeout}}}sofia/external/{dest}@127.0.0.1:5060 {app}"
    );
    let r = inb.cmd(Command::bgapi(&line, &job)?).await?;
    if !r.starts_with("+OK") {
        bail!("bgapi originate: {r}");
    }
    if answered {
        let mut out = cap.accept().await?;
        start_session(&mut out, EVENTS).await?;
        let play = execute(
            &mut out,
            "playback",
            Some("tone_stream://%(1000,0,440);loops=1"),
        )
        .await?;
        execute_complete(&mut out, &play).await?;
        if quoted {
            hang_up_and_exit(&mut out, "NORMAL_CLEARING").await?;
        } else {
            // Static single-channel mode refused `linger`: the switch closes at hangup.
            execute(&mut out, "hangup", Some("NORMAL_CLEARING")).await?;
            out.closed().await?;
        }
        inb.event_where("BACKGROUND_JOB", "Job-UUID", &job).await?;
        inb.event_where("CHANNEL_HANGUP_COMPLETE", "Unique-ID", &o)
            .await?;
    } else {
        inb.event_where("BACKGROUND_JOB", "Job-UUID", &job).await?;
        inb.event_where("CHANNEL_HANGUP_COMPLETE", "Unique-ID", &o)
            .await?;
        if tokio::time::timeout(Duration::from_secs(2), cap.listener.accept())
            .await
            .is_ok()
        {
            bail!("the socket app connected for an unanswered originate");
        }
        cap.log
            .note("[OUTBOUND-SOCKET] no connection to 127.0.0.1:8094 within 2 s after the hangup (none expected)");
    }
    inb.exit().await
}

/// A tiny stderr progress log (the transcript itself is the output).
mod log {
    pub fn info(msg: &str) {
        eprintln!("capture: {msg}");
    }
}

/// `sendmsg call-command: hangup` (z4): what the caller gets on an unanswered channel for
/// each cause voxbridge sends, and where the command runs among queued applications.
async fn hangup_call_command(cap: &mut Capture) -> Result<()> {
    for cause in ["USER_BUSY", "CALL_REJECTED", "NORMAL_CLEARING"] {
        let (mut inb, a, job) = caller(cap, "7901", "&park()").await?;
        inb.cmd(Command::event(
            EventFormat::Plain,
            &["CHANNEL_HANGUP_COMPLETE"],
        )?)
        .await?;
        inb.cmd(Command::filter("Unique-ID", &a)?).await?;
        let mut out = cap.accept().await?;
        start_session(&mut out, EVENTS).await?;
        let r = out.cmd(Command::hangup(cause)?).await?;
        if !r.starts_with("+OK") {
            bail!("call-command hangup {cause}: {r}");
        }
        until_linger_notice(&mut out).await?;
        out.exit().await?;
        inb.event_where("CHANNEL_HANGUP_COMPLETE", "Unique-ID", &a)
            .await?;
        caller_done(&mut inb, &job).await?;
    }
    let (mut inb, _a, job) = caller(cap, "7900", "&park()").await?;
    let mut out = cap.accept().await?;
    start_session(&mut out, EVENTS).await?;
    inb.event_where("BACKGROUND_JOB", "Job-UUID", &job).await?;
    let first = execute(&mut out, "playback", Some("tone_stream://%(1000,0,440)")).await?;
    let second = execute(&mut out, "playback", Some("tone_stream://%(500,0,660)")).await?;
    let r = out.cmd(Command::hangup("NORMAL_CLEARING")?).await?;
    if !r.starts_with("+OK") {
        bail!("call-command hangup: {r}");
    }
    let after = execute(&mut out, "playback", Some("tone_stream://%(500,0,880)")).await?;
    execute_complete(&mut out, &first).await?;
    execute_complete(&mut out, &second).await?;
    until_linger_notice(&mut out).await?;
    if out
        .pending
        .iter()
        .any(|f| f.var("Application-UUID") == Some(after.as_str()))
    {
        bail!("the playback queued behind the hangup command ran");
    }
    cap.log.note(&format!(
        "[OUTBOUND-SOCKET] no event for the playback queued behind the hangup (Application-UUID {after})"
    ));
    out.exit().await?;
    inb.exit().await
}

/// The outbound handshake in one write (z5): the switch reads and answers the commands
/// queued behind `connect` in order, the channel data first.
async fn handshake_one_write(cap: &mut Capture) -> Result<()> {
    let (mut inb, _a, job) = caller(cap, "7901", "&park()").await?;
    let mut out = cap.accept().await?;
    let steps = [
        Command::connect(),
        Command::myevents(EventFormat::Plain),
        Command::nixevent(&["CHANNEL_EXECUTE"])?,
        Command::linger(Linger::Forever),
    ];
    out.send_all(&steps).await?;
    cap.log
        .note("[OUTBOUND-SOCKET] the four commands above went out in one write");
    let first = out
        .take("the first frame back", |f| {
            matches!(f.content_type(), "command/reply" | "api/response")
        })
        .await?;
    if lookup(&first.headers, "Event-Name") != Some("CHANNEL_DATA") {
        bail!("the first frame back is not the channel data");
    }
    for what in ["myevents", "nixevent", "linger"] {
        let r = out.reply().await?;
        if !r.starts_with("+OK") {
            bail!("{what} in the same write as connect: {r}");
        }
    }
    let r = out.cmd(Command::hangup("NORMAL_CLEARING")?).await?;
    if !r.starts_with("+OK") {
        bail!("call-command hangup: {r}");
    }
    until_linger_notice(&mut out).await?;
    out.exit().await?;
    caller_done(&mut inb, &job).await
}

/// After a hangup on a lingering socket: CHANNEL_HANGUP, CHANNEL_HANGUP_COMPLETE, then
/// the linger notice.
async fn until_linger_notice(out: &mut Conn) -> Result<()> {
    out.event("CHANNEL_HANGUP").await?;
    out.event("CHANNEL_HANGUP_COMPLETE").await?;
    out.take("linger notice", |f| {
        f.content_type() == "text/disconnect-notice"
            && lookup(&f.headers, "Content-Disposition") == Some("linger")
    })
    .await?;
    Ok(())
}

async fn run(cap: &mut Capture, name: &str) -> Result<()> {
    match name {
        "i" => bridge(cap, "7002", "", true, "NORMAL_CLEARING").await,
        "j" => bridge(cap, "7003", "", false, "USER_BUSY").await,
        "k" => bridge(cap, "7004", ",originate_timeout=3", false, "NO_ANSWER").await,
        "u" => bridge_ends(cap, BridgeEnd::CallerCancels).await,
        "v" => bridge_ends(cap, BridgeEnd::CalleeByes).await,
        "w" => bridge_ends(cap, BridgeEnd::KillALeg).await,
        "x" => bridge_ends(cap, BridgeEnd::LoseRace).await,
        "y" => bridge_ends(cap, BridgeEnd::KillRingingBLeg).await,
        "l" => dtmf_barge_in(cap).await,
        "z2" => callee_digits_matched(cap).await,
        "z3" => ringback_music(cap).await,
        "z4" => hangup_call_command(cap).await,
        "z5" => handshake_one_write(cap).await,
        "q" => gather_flush_and_barge_in(cap).await,
        "m" => record(cap, false).await,
        "n" => record(cap, true).await,
        "r" => record_limit_or_hangup(cap, false).await,
        "s" => record_limit_or_hangup(cap, true).await,
        "t" => record_session(cap).await,
        "z" => uuid_record_and_break(cap).await,
        "o" => originate_socket(cap, true, true).await,
        "o2" => originate_socket(cap, true, false).await,
        "p" => originate_socket(cap, false, true).await,
        "p2" | "p3" | "p4" => originate_outcome(cap, name).await,
        other => Err(anyhow!("unknown scenario {other:?} (try --list)")),
    }
}

const FORMAT: &str = "#
# Format: every frame is shown verbatim between a marker line and an end line.
#   <<<<<<<< [CONNECTION] +T RECEIVED from FreeSWITCH (N bytes)   = bytes FreeSWITCH sent to the test client
#   >>>>>>>> [CONNECTION] +T SENT to FreeSWITCH (N bytes)         = bytes the test client sent to FreeSWITCH
#   -------- end of frame --------                                 = end marker (not on the wire)
# Between the marker and the end line the bytes are exactly what crossed the socket, one ESL
# frame per block (header block + Content-Length body).  Lines starting with '###' and this
# '#' header are annotations.  T = seconds since the scenario started.
# CONNECTION: OUTBOUND-SOCKET = FreeSWITCH's `socket` app connecting to our server on
#             127.0.0.1:8094 (\"async full\");  INBOUND-ESL = our client on 127.0.0.1:8021.
# Recorded with `cargo run --example capture -- SCENARIO` (examples/capture.rs); the client's
# commands are built by voxbridge's own encoder.
";

fn header(s: &Scenario, version: &str) -> String {
    let mut h = format!("# ESL wire transcript: ({}) {}\n", s.name, s.title);
    let _ = writeln!(
        h,
        "# {version} (git tag v1.10.12, commit a88d069d6ffb74df797bcaf001f7e63181c07a09)"
    );
    for line in s.about.lines() {
        let _ = writeln!(h, "# {line}");
    }
    h.push_str(FORMAT);
    h.push('\n');
    h
}

/// The switch's version line, asked on a connection that is not recorded.
async fn switch_version() -> Result<String> {
    let stream = TcpStream::connect(ESL).await?;
    let mut c = Conn::spawn(stream, "version", Log::new());
    c.take("auth", |f| f.content_type() == "auth/request")
        .await?;
    c.cmd(Command::auth(PASSWORD)?).await?;
    let v = c.api("version short").await?;
    Ok(format!("FreeSWITCH {}", v.trim()))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args[0] == "--list" || args[0] == "--help" {
        eprintln!("usage: capture <scenario> [--out FILE]   (or --list)\n");
        for s in SCENARIOS {
            eprintln!("  {}  {}  ({})", s.name, s.title, s.file);
        }
        return Ok(());
    }
    let scenario = SCENARIOS
        .iter()
        .find(|s| s.name == args[0])
        .ok_or_else(|| anyhow!("unknown scenario {:?} (try --list)", args[0]))?;
    let out = match args.get(1).map(String::as_str) {
        Some("--out") => args.get(2).cloned().context("--out FILE")?,
        Some(other) => bail!("unexpected argument {other:?}"),
        None => format!("tests/fixtures/esl/{}", scenario.file),
    };
    let version = switch_version().await?;
    let listener = TcpListener::bind(SOCKET_ADDR)
        .await
        .with_context(|| format!("listen on {SOCKET_ADDR}"))?;
    let mut cap = Capture {
        log: Log::new(),
        listener,
        sockets: 0,
        uuids: Vec::new(),
    };
    let result = tokio::time::timeout(Duration::from_secs(90), run(&mut cap, scenario.name)).await;
    let result = result.unwrap_or_else(|_| Err(anyhow!("scenario took longer than 90 s")));
    if let Err(e) = result {
        cap.clean_up().await;
        // What was captured so far, for diagnosis; never mistaken for a transcript.
        let failed = format!("{out}.failed");
        let _ = std::fs::write(&failed, cap.log.take());
        return Err(e.context(format!(
            "scenario {} (partial capture in {failed})",
            scenario.name
        )));
    }
    // Let the reader tasks log what is still in flight (final notices, EOF notes).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut text = header(scenario, &version).into_bytes();
    text.extend_from_slice(&cap.log.take());
    std::fs::write(&out, &text).with_context(|| format!("write {out}"))?;
    log::info(&format!("{} bytes written to {out}", text.len()));
    Ok(())
}
