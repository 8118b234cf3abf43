//! The connection actor shared by outbound and inbound sockets: one task per socket
//! that owns the `TcpStream`, writes commands, reads frames, matches replies to
//! commands, and delivers everything else on a bounded event stream.
//!
//! Why an actor (and how it avoids the defects listed in `reference/deps.md` §1.1):
//! - **Reply correlation.** ESL answers commands strictly in order. The actor is the only
//!   writer, and it queues a command's reply waiter in the same step that appends the
//!   command's bytes to its output buffer, so the waiter queue and the byte stream can
//!   never disagree — concurrent callers cannot get each other's replies (defect 8).
//! - **Cancel safety.** A caller hands over the whole command and goes away if it likes;
//!   the actor always writes whole commands, and a dropped waiter only discards its reply.
//! - **Backpressure, never loss.** The event stream is a bounded channel; when it is full
//!   the actor stops *reading* the socket (the switch then buffers) but keeps writing
//!   commands, so a hangup can still go out. Nothing is dropped, so
//!   CHANNEL_HANGUP_COMPLETE always arrives.
//! - **Endings.** EOF, an I/O error, a framing error or the switch's final disconnect
//!   notice end the task: every pending waiter fails at once, the socket is closed, and the
//!   stream ends with [`SocketEvent::Closed`]. A linger notice is delivered but is not an
//!   ending. No busy loop, no waiter left hanging (defects 5 and 6).
//! - **Never a live channel left parked.** A framing error (garbage, an oversized frame)
//!   on an outbound socket whose channel has not hung up means we stop reading, but the
//!   socket can still be written: before closing it the actor writes `api uuid_kill` and a
//!   `sendmsg hangup` (for a socket without `full`), since a socket closed on a live
//!   channel leaves the call parked until the caller gives up (reference §2.7).
//! - **Small.** The socket is read on readiness, so an idle call holds no read buffer; one
//!   is allocated (4 KiB, more for a large frame) when bytes arrive and freed once they are
//!   decoded (SPEC §9: ≤ 64 KiB per parked call).

use crate::esl::command::Command;
use crate::esl::counters::{bump, EslCounters};
use crate::esl::event::{ApiResponse, ChannelData, DisconnectNotice, Event, Message, Reply};
use crate::esl::frame::{FrameDecoder, MAX_BODY, MAX_HEADER_BLOCK};
use bytes::{Buf, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// Read buffer allocated when bytes are about to arrive; a frame larger than this grows
/// it (the decoder reserves toward the announced length). It is dropped again once
/// everything in it is decoded, so a parked call holds none. 16 KiB: a hangup brings
/// CHANNEL_HANGUP and CHANNEL_HANGUP_COMPLETE back to back, ~11 KB, which took three
/// `recvfrom`s with 4 KiB and takes one now (issue 16).
const READ_BUF: usize = 16 * 1024;
/// Stop taking commands while this much output is still unwritten.
const OUT_HIGH_WATER: usize = 64 * 1024;
/// Commands that may wait for the actor.
const COMMAND_QUEUE: usize = 16;

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The switch sent its final disconnect notice.
    Disconnected,
    /// The peer closed the socket between frames, without a notice.
    Eof,
    /// The peer closed the socket in the middle of a frame.
    Truncated { buffered: usize },
    /// The byte stream is not ESL (garbage, bad `Content-Length`, oversized headers).
    Protocol(String),
    /// The switch refused us (`text/rude-rejection`).
    Rejected(String),
    /// A socket error.
    Io(String),
    /// We closed it: every handle was dropped.
    Local,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Disconnected => f.write_str("the switch disconnected"),
            CloseReason::Eof => f.write_str("the peer closed the connection"),
            CloseReason::Truncated { buffered } => write!(
                f,
                "the peer closed the connection in the middle of a frame ({buffered} bytes buffered)"
            ),
            CloseReason::Protocol(e) => write!(f, "protocol error: {e}"),
            CloseReason::Rejected(t) => write!(f, "rejected by the switch: {}", t.trim_end()),
            CloseReason::Io(e) => write!(f, "socket error: {e}"),
            CloseReason::Local => f.write_str("closed locally"),
        }
    }
}

/// Everything that can go wrong talking to the switch. Every variant names what failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EslError {
    #[error("invalid command: {0}")]
    Command(#[from] crate::esl::command::CommandError),
    #[error("connection closed: {0}")]
    Closed(CloseReason),
    #[error("no reply to {what} within {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("{command} refused: {reply}")]
    Rejected { command: String, reply: String },
    #[error("unexpected reply to {command}: {got}")]
    UnexpectedReply { command: String, got: String },
    #[error("the channel hung up; the application will never complete")]
    HungUp,
    #[error("handshake failed: {0}")]
    Handshake(String),
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("cannot connect to {addr}: {error}")]
    Connect { addr: String, error: String },
    #[error("not connected to the switch")]
    NotConnected,
}

/// Commands sent by [`Session::send_pipelined`] whose replies are still to come.
#[derive(Debug)]
pub(crate) struct Pipelined {
    waiting: Vec<(String, oneshot::Receiver<Result<Response, EslError>>)>,
}

impl Pipelined {
    /// Their replies, in order, each bounded by the reply timeout.
    pub(crate) async fn replies(self, session: &Session) -> Result<Vec<Reply>, EslError> {
        let mut replies = Vec::with_capacity(self.waiting.len());
        for (line, rx) in self.waiting {
            match session.wait(&line, rx, Some(session.reply_timeout)).await? {
                Response::Reply(r) => replies.push(r),
                other => {
                    return Err(EslError::UnexpectedReply {
                        command: redact(&line),
                        got: other.describe(),
                    })
                }
            }
        }
        Ok(replies)
    }
}

/// A command sent by [`Session::send_request`] whose response is still to come.
#[derive(Debug)]
pub(crate) struct PendingResponse {
    what: String,
    rx: oneshot::Receiver<Result<Response, EslError>>,
}

impl PendingResponse {
    /// Its response; unbounded here, so the caller bounds it (the handshake's timeout).
    pub(crate) async fn response(self, session: &Session) -> Result<Response, EslError> {
        session.wait(&self.what, self.rx, None).await
    }
}

/// One item of a socket's event stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketEvent {
    /// A switch event (CHANNEL_EXECUTE_COMPLETE, DTMF, CHANNEL_HANGUP_COMPLETE, …).
    Event(Event),
    /// An event the session diverted to the socket (`divert_events on`; no
    /// `Event-Name`): a `bind_digit_action` match ([`Message::Diverted`]).
    Diverted(Event),
    /// The switch refused (or will never run) an app sent with `send_execute`:
    /// no CHANNEL_EXECUTE_COMPLETE will come for `app_id`.
    ExecuteRejected { app_id: String, reason: String },
    /// A disconnect notice. A linger notice ([`DisconnectNotice::is_final`] false) is not
    /// the end: events keep coming.
    Disconnect(DisconnectNotice),
    /// The last item: the connection is gone.
    Closed(CloseReason),
}

/// A socket's event stream (bounded: while it is full the socket is not read).
#[derive(Debug)]
pub struct EventStream {
    // Boxed so each channel's slot block stays small on an idle call (32 slots × 8 bytes
    // instead of 32 × 96).
    rx: mpsc::Receiver<Box<SocketEvent>>,
}

impl EventStream {
    /// The next item; `None` after [`SocketEvent::Closed`] has been taken.
    pub async fn recv(&mut self) -> Option<SocketEvent> {
        self.rx.recv().await.map(|b| *b)
    }

    /// The next item if one is ready.
    pub fn try_recv(&mut self) -> Option<SocketEvent> {
        self.rx.try_recv().ok().map(|b| *b)
    }
}

/// What a command's reply frame was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Reply(Reply),
    Api(ApiResponse),
    ChannelData(ChannelData),
}

impl Response {
    fn describe(&self) -> String {
        match self {
            Response::Reply(r) => format!("command/reply {:?}", r.text()),
            Response::Api(a) => format!("api/response {:?}", a.body),
            Response::ChannelData(_) => "channel data".into(),
        }
    }
}

type ReplyTx = oneshot::Sender<Result<Response, EslError>>;
type AppTx = oneshot::Sender<Result<String, EslError>>;
type JobTx = oneshot::Sender<Result<Event, EslError>>;

/// A command handed to the actor.
pub(crate) struct Request {
    bytes: Vec<u8>,
    reply: Option<ReplyTx>,
    /// `Event-UUID` of a `sendmsg execute`, so a `-ERR` can be tied to the app.
    app_id: Option<String>,
    app_waiter: Option<AppTx>,
    job: Option<(String, JobTx)>,
    /// Leave: close the socket once everything queued before is written (no bytes).
    close: bool,
}

struct PendingReply {
    tx: Option<ReplyTx>,
    app_id: Option<String>,
}

/// Which side of ESL the socket is; decides whether hangup events concern us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Outbound,
    Inbound,
}

#[derive(Debug, Default)]
struct Shared {
    closed: OnceLock<CloseReason>,
}

/// Options of one connection actor.
pub(crate) struct ActorOptions {
    pub mode: Mode,
    pub peer: SocketAddr,
    pub event_capacity: usize,
    pub reply_timeout: Duration,
    pub counters: Arc<EslCounters>,
}

/// A cheap, cloneable handle to the actor. Dropping every clone closes the socket.
#[derive(Clone)]
pub(crate) struct Session {
    tx: mpsc::Sender<Box<Request>>,
    shared: Arc<Shared>,
    reply_timeout: Duration,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("closed", &self.shared.closed.get())
            .finish()
    }
}

/// Starts the actor on `stream`. `initial` holds bytes already read (inbound reads the
/// `auth/request` before the actor exists).
pub(crate) fn spawn(
    stream: TcpStream,
    initial: BytesMut,
    opts: ActorOptions,
) -> (Session, EventStream) {
    let (tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let (events_tx, events_rx) = mpsc::channel(opts.event_capacity.max(1));
    let shared = Arc::new(Shared::default());
    let buf = initial;
    let actor = Actor {
        stream,
        peer: opts.peer,
        mode: opts.mode,
        buf,
        decoder: FrameDecoder::new(MAX_HEADER_BLOCK, MAX_BODY),
        out: BytesMut::new(),
        cmd_rx,
        cmd_closed: false,
        events_tx,
        events_open: true,
        pending: VecDeque::new(),
        replies: VecDeque::new(),
        apps: HashMap::new(),
        jobs: HashMap::new(),
        hung_up: false,
        channel_uuid: None,
        counters: opts.counters,
        shared: shared.clone(),
    };
    tokio::spawn(actor.run());
    (
        Session {
            tx,
            shared,
            reply_timeout: opts.reply_timeout,
        },
        EventStream { rx: events_rx },
    )
}

impl Session {
    fn closed_error(&self) -> EslError {
        EslError::Closed(
            self.shared
                .closed
                .get()
                .cloned()
                .unwrap_or(CloseReason::Local),
        )
    }

    /// Why the connection ended, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared.closed.get().cloned()
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.get().is_some() || self.tx.is_closed()
    }

    /// Leaves the socket without a word: it is closed once every command queued before
    /// is written; commands after it fail with [`EslError::Closed`]. To the switch this
    /// is `exit` without its round trip — its listener leaves its loop on the closed
    /// socket just as on `exit` (reference §2.7) — so it is how a call leaves once its
    /// channel is gone (issue 16: one write, one wake-up and one read fewer per call).
    /// A connection already gone counts as closed.
    pub async fn close(&self) {
        let _ = self
            .submit(Request {
                bytes: Vec::new(),
                reply: None,
                app_id: None,
                app_waiter: None,
                job: None,
                close: true,
            })
            .await;
    }

    async fn submit(&self, req: Request) -> Result<(), EslError> {
        self.tx
            .send(Box::new(req))
            .await
            .map_err(|_| self.closed_error())
    }

    async fn wait<T>(
        &self,
        what: &str,
        rx: oneshot::Receiver<Result<T, EslError>>,
        timeout: Option<Duration>,
    ) -> Result<T, EslError> {
        let res = match timeout {
            Some(after) => match tokio::time::timeout(after, rx).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(EslError::Timeout {
                        what: what.to_string(),
                        after,
                    })
                }
            },
            None => rx.await,
        };
        // The actor answers every waiter before it ends; a dropped sender still means
        // the connection is gone, never a hang.
        res.unwrap_or_else(|_| Err(self.closed_error()))
    }

    /// Sends `cmd` and waits (bounded by the reply timeout) for its reply frame.
    pub async fn request(&self, cmd: &Command) -> Result<Response, EslError> {
        let rx = self.submit_command(cmd).await?;
        self.wait(cmd.line(), rx, Some(self.reply_timeout)).await
    }

    /// Queues `cmd`; the receiver gets its reply frame.
    async fn submit_command(
        &self,
        cmd: &Command,
    ) -> Result<oneshot::Receiver<Result<Response, EslError>>, EslError> {
        let (tx, rx) = oneshot::channel();
        self.submit(Request {
            bytes: cmd.to_bytes(),
            reply: Some(tx),
            app_id: None,
            app_waiter: None,
            job: None,
            close: false,
        })
        .await?;
        Ok(rx)
    }

    /// Sends every command of `cmds` at once, in order, each queued behind whatever was
    /// sent before it (their bytes can share its write); their replies are awaited later
    /// with [`Pipelined::replies`]. The switch answers in the same order
    /// (`mod_event_socket` reads and answers one command at a time from the stream), so
    /// this is one round trip instead of one per command.
    pub(crate) async fn send_pipelined(&self, cmds: &[Command]) -> Result<Pipelined, EslError> {
        let mut waiting = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            let rx = self.submit_command(cmd).await?;
            waiting.push((cmd.line().to_string(), rx));
        }
        Ok(Pipelined { waiting })
    }

    /// Sends `cmd` without waiting: its response is awaited later with
    /// [`PendingResponse::response`], so commands sent right after it share its write.
    pub(crate) async fn send_request(&self, cmd: &Command) -> Result<PendingResponse, EslError> {
        let rx = self.submit_command(cmd).await?;
        Ok(PendingResponse {
            what: cmd.line().to_string(),
            rx,
        })
    }

    /// Sends `cmd` and expects a `command/reply`; `-ERR` is an error.
    pub async fn command_ok(&self, cmd: &Command) -> Result<Reply, EslError> {
        let reply = self.command(cmd).await?;
        if reply.is_err() {
            return Err(EslError::Rejected {
                command: redact(cmd.line()),
                reply: reply.text().to_string(),
            });
        }
        Ok(reply)
    }

    /// Sends `cmd` and expects a `command/reply` (returned whatever its text).
    pub async fn command(&self, cmd: &Command) -> Result<Reply, EslError> {
        match self.request(cmd).await? {
            Response::Reply(r) => Ok(r),
            other => Err(EslError::UnexpectedReply {
                command: redact(cmd.line()),
                got: other.describe(),
            }),
        }
    }

    /// `api …` → the `api/response` body.
    pub async fn api(&self, command: &str) -> Result<ApiResponse, EslError> {
        let cmd = Command::api(command)?;
        match self.request(&cmd).await? {
            Response::Api(a) => Ok(a),
            other => Err(EslError::UnexpectedReply {
                command: cmd.line().to_string(),
                got: other.describe(),
            }),
        }
    }

    /// `bgapi …` with a fresh `Job-UUID`; resolves with the matching BACKGROUND_JOB
    /// (its body is the command's output). Needs a BACKGROUND_JOB subscription.
    pub async fn bgapi(&self, command: &str) -> Result<Event, EslError> {
        let job_uuid = uuid::Uuid::new_v4().to_string();
        let cmd = Command::bgapi(command, &job_uuid)?;
        let (reply_tx, reply_rx) = oneshot::channel();
        let (job_tx, job_rx) = oneshot::channel();
        self.submit(Request {
            bytes: cmd.to_bytes(),
            reply: Some(reply_tx),
            app_id: None,
            app_waiter: None,
            job: Some((job_uuid, job_tx)),
            close: false,
        })
        .await?;
        match self
            .wait(cmd.line(), reply_rx, Some(self.reply_timeout))
            .await?
        {
            Response::Reply(r) if r.is_ok() => {}
            Response::Reply(r) => {
                return Err(EslError::Rejected {
                    command: cmd.line().to_string(),
                    reply: r.text().to_string(),
                })
            }
            other => {
                return Err(EslError::UnexpectedReply {
                    command: cmd.line().to_string(),
                    got: other.describe(),
                })
            }
        }
        self.wait(cmd.line(), job_rx, None).await
    }

    /// Queues `cmd` without waiting for its reply; a `-ERR` is logged.
    pub async fn send_only(&self, cmd: &Command) -> Result<(), EslError> {
        self.submit(Request {
            bytes: cmd.to_bytes(),
            reply: None,
            app_id: None,
            app_waiter: None,
            job: None,
            close: false,
        })
        .await
    }

    /// Queues a `sendmsg execute` whose completion resolves the returned receiver.
    pub async fn execute_waiting(
        &self,
        cmd: &Command,
        app_id: String,
    ) -> Result<oneshot::Receiver<Result<String, EslError>>, EslError> {
        let (tx, rx) = oneshot::channel();
        self.submit(Request {
            bytes: cmd.to_bytes(),
            reply: None,
            app_id: Some(app_id),
            app_waiter: Some(tx),
            job: None,
            close: false,
        })
        .await?;
        Ok(rx)
    }

    /// Waits for an execute registered with [`Session::execute_waiting`].
    pub async fn wait_app(
        &self,
        what: &str,
        rx: oneshot::Receiver<Result<String, EslError>>,
    ) -> Result<String, EslError> {
        self.wait(what, rx, None).await
    }

    /// Queues a `sendmsg execute` without waiting: completion (or
    /// [`SocketEvent::ExecuteRejected`]) arrives on the event stream.
    pub async fn execute_no_wait(&self, cmd: &Command, app_id: String) -> Result<(), EslError> {
        self.submit(Request {
            bytes: cmd.to_bytes(),
            reply: None,
            app_id: Some(app_id),
            app_waiter: None,
            job: None,
            close: false,
        })
        .await
    }
}

fn redact(line: &str) -> String {
    if line.starts_with("auth ") {
        "auth".to_string()
    } else {
        line.to_string()
    }
}

struct Actor {
    stream: TcpStream,
    peer: SocketAddr,
    mode: Mode,
    buf: BytesMut,
    decoder: FrameDecoder,
    out: BytesMut,
    cmd_rx: mpsc::Receiver<Box<Request>>,
    cmd_closed: bool,
    events_tx: mpsc::Sender<Box<SocketEvent>>,
    events_open: bool,
    /// Items decoded but not yet taken by the consumer. While non-empty the socket is
    /// not read: that is the backpressure.
    pending: VecDeque<Box<SocketEvent>>,
    replies: VecDeque<PendingReply>,
    apps: HashMap<String, AppTx>,
    jobs: HashMap<String, JobTx>,
    /// CHANNEL_HANGUP_COMPLETE of the controlled channel was seen: no app runs any more.
    hung_up: bool,
    channel_uuid: Option<String>,
    counters: Arc<EslCounters>,
    shared: Arc<Shared>,
}

/// One read from the socket into `buf`. A read that did not fill the free space drained
/// the socket, so the stream's readiness is cleared then and there: the next wait goes to
/// epoll instead of trying a read that can only say EAGAIN (a third of the `recvfrom`s of
/// a call did, issue 16). Sound with epoll's edge-triggered readiness (tokio's): the
/// readiness observed *before* the read is the one cleared, so bytes that arrive after it
/// raise a new readiness that is not lost.
fn read_some(stream: &TcpStream, buf: &mut BytesMut) -> std::io::Result<usize> {
    let mut got = None;
    let result = stream.try_io(Interest::READABLE, || {
        let room = buf.capacity() - buf.len();
        let n = stream.try_read_buf(buf)?;
        got = Some(n);
        if n > 0 && n < room {
            // Drained: report it as such so tokio clears the readiness it saw.
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match (result, got) {
        (_, Some(n)) => Ok(n),
        (Err(e), None) => Err(e),
        (Ok(n), None) => Ok(n),
    }
}

impl Actor {
    async fn run(mut self) {
        let reason = self.drive().await;
        self.finish(reason).await;
    }

    async fn drive(&mut self) -> CloseReason {
        loop {
            while self.pending.is_empty() {
                match self.decoder.decode(&mut self.buf) {
                    Ok(Some(frame)) => {
                        if let Some(reason) = self.on_message(Message::decode(frame)) {
                            return reason;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return CloseReason::Protocol(e.to_string()),
                }
            }
            if self.buf.is_empty() && self.buf.capacity() > 0 {
                // Nothing buffered: give the memory back. A parked call then holds no
                // read buffer at all while it waits (readiness needs none).
                self.buf = BytesMut::new();
            }
            if self.cmd_closed && self.out.is_empty() {
                return CloseReason::Local;
            }
            let deliver = !self.pending.is_empty();
            let write = !self.out.is_empty();
            tokio::select! {
                biased;
                permit = self.events_tx.clone().reserve_owned(), if deliver => match permit {
                    Ok(permit) => {
                        if let Some(item) = self.pending.pop_front() {
                            permit.send(item);
                        }
                    }
                    Err(_) => {
                        // Nobody listens any more: stop queueing, keep serving commands.
                        self.events_open = false;
                        self.pending.clear();
                    }
                },
                ready = self.stream.writable(), if write => {
                    if let Err(e) = ready {
                        return CloseReason::Io(e.to_string());
                    }
                    match self.stream.try_write(&self.out) {
                        Ok(0) => return CloseReason::Io("socket accepts no more bytes".into()),
                        Ok(n) => self.out.advance(n),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return CloseReason::Io(e.to_string()),
                    }
                },
                req = self.cmd_rx.recv(), if !self.cmd_closed && self.out.len() < OUT_HIGH_WATER => {
                    match req {
                        Some(req) => {
                            self.on_request(*req);
                            // Whatever else is queued goes out in the same write: one
                            // syscall and one switch read for a run of commands.
                            while !self.cmd_closed && self.out.len() < OUT_HIGH_WATER {
                                match self.cmd_rx.try_recv() {
                                    Ok(req) => self.on_request(*req),
                                    Err(_) => break,
                                }
                            }
                        }
                        None => self.cmd_closed = true,
                    }
                }
                ready = self.stream.readable(), if !deliver => {
                    if let Err(e) = ready {
                        return CloseReason::Io(e.to_string());
                    }
                    if self.buf.capacity() - self.buf.len() < READ_BUF / 4 {
                        self.buf.reserve(READ_BUF);
                    }
                    match read_some(&self.stream, &mut self.buf) {
                        Ok(0) if self.buf.is_empty() => return CloseReason::Eof,
                        Ok(0) => return CloseReason::Truncated { buffered: self.buf.len() },
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return CloseReason::Io(e.to_string()),
                    }
                },
            }
        }
    }

    fn push(&mut self, item: SocketEvent) {
        if self.events_open {
            self.pending.push_back(Box::new(item));
        }
    }

    fn on_request(&mut self, req: Request) {
        if req.close {
            // Take nothing more; the loop closes once `out` is written.
            self.cmd_closed = true;
            return;
        }
        if let (Some(app_id), true) = (&req.app_id, self.hung_up) {
            // The channel is gone: an app queued now never runs and never completes.
            match req.app_waiter {
                Some(tx) => {
                    let _ = tx.send(Err(EslError::HungUp));
                }
                None => self.push(SocketEvent::ExecuteRejected {
                    app_id: app_id.clone(),
                    reason: "the channel has already hung up".into(),
                }),
            }
            return;
        }
        if let (Some(app_id), Some(tx)) = (&req.app_id, req.app_waiter) {
            self.apps.insert(app_id.clone(), tx);
        }
        if let Some((job, tx)) = req.job {
            self.jobs.insert(job, tx);
        }
        self.replies.push_back(PendingReply {
            tx: req.reply,
            app_id: req.app_id,
        });
        self.out.extend_from_slice(&req.bytes);
    }

    /// Handles one decoded frame; `Some` ends the connection.
    fn on_message(&mut self, msg: Message) -> Option<CloseReason> {
        match msg {
            Message::Reply(r) => self.on_response(Response::Reply(r)),
            Message::ApiResponse(a) => self.on_response(Response::Api(a)),
            Message::ChannelData(cd) => {
                if self.channel_uuid.is_none() {
                    self.channel_uuid = cd.uuid().map(String::from);
                }
                self.on_response(Response::ChannelData(cd))
            }
            Message::Event(ev) => self.on_event(ev),
            Message::Diverted(ev) => self.push(SocketEvent::Diverted(ev)),
            Message::Disconnect(notice) => {
                let last = notice.is_final();
                tracing::debug!(peer = %self.peer, uuid = ?self.channel_uuid, disposition = ?notice.disposition, "ESL disconnect notice");
                self.push(SocketEvent::Disconnect(notice));
                if last {
                    return Some(CloseReason::Disconnected);
                }
            }
            Message::RudeRejection(text) => return Some(CloseReason::Rejected(text)),
            Message::AuthRequest => {
                tracing::debug!(peer = %self.peer, "ESL auth/request after the handshake; ignored");
            }
            Message::Log(log) => {
                tracing::trace!(peer = %self.peer, text = %log.text, "ESL log/data");
            }
            Message::Unexpected(u) => {
                if u.content_type.is_none() {
                    // The switch labels every frame; an unlabeled one means the stream
                    // is not ESL at all.
                    return Some(CloseReason::Protocol(u.reason));
                }
                bump(&self.counters.unexpected_frames);
                tracing::warn!(peer = %self.peer, uuid = ?self.channel_uuid, content_type = ?u.content_type, reason = %u.reason, "ESL frame skipped");
            }
        }
        None
    }

    fn on_response(&mut self, resp: Response) {
        let Some(pending) = self.replies.pop_front() else {
            bump(&self.counters.unexpected_frames);
            tracing::warn!(peer = %self.peer, uuid = ?self.channel_uuid, reply = %resp.describe(), "ESL reply with no command waiting; skipped");
            return;
        };
        if let (Some(app_id), Response::Reply(r)) = (&pending.app_id, &resp) {
            if r.is_err() {
                let reason = r.text().to_string();
                match self.apps.remove(app_id) {
                    Some(tx) => {
                        let _ = tx.send(Err(EslError::Rejected {
                            command: "sendmsg execute".into(),
                            reply: reason,
                        }));
                    }
                    None => self.push(SocketEvent::ExecuteRejected {
                        app_id: app_id.clone(),
                        reason,
                    }),
                }
            }
        }
        match pending.tx {
            // The caller may have given up (timeout); its reply is then just dropped.
            Some(tx) => {
                let _ = tx.send(Ok(resp));
            }
            None if pending.app_id.is_none() => {
                if let Response::Reply(r) = &resp {
                    if r.is_err() {
                        tracing::warn!(peer = %self.peer, uuid = ?self.channel_uuid, reply = r.text(), "ESL command sent without waiting was refused");
                    }
                }
            }
            None => {}
        }
    }

    fn on_event(&mut self, ev: Event) {
        match ev.name() {
            "CHANNEL_EXECUTE_COMPLETE" => {
                if let Some(tx) = ev.application_uuid().and_then(|id| self.apps.remove(id)) {
                    let response = ev.application_response().unwrap_or("").to_string();
                    let _ = tx.send(Ok(response));
                }
            }
            "BACKGROUND_JOB" => {
                if let Some(tx) = ev.job_uuid().and_then(|id| self.jobs.remove(id)) {
                    // Claimed by the caller that issued the bgapi: not repeated on the stream.
                    let _ = tx.send(Ok(ev));
                    return;
                }
            }
            "CHANNEL_HANGUP_COMPLETE"
                if self.mode == Mode::Outbound
                    && (self.channel_uuid.is_none()
                        || ev.unique_id() == self.channel_uuid.as_deref()) =>
            {
                // Apps still waiting now were queued behind the hangup: they never run.
                // (The app that was running when the channel hung up has already had its
                // EXECUTE_COMPLETE, which the switch sends before HANGUP_COMPLETE.)
                self.hung_up = true;
                for (_, tx) in self.apps.drain() {
                    let _ = tx.send(Err(EslError::HungUp));
                }
            }
            _ => {}
        }
        self.push(SocketEvent::Event(ev));
    }

    /// Best effort, bounded: the replies cannot be read any more (the stream is not ESL),
    /// so the commands are written and the socket closed after a short pause that lets
    /// the switch act on them before it sees the end of the stream.
    async fn hang_up_before_closing(&mut self) {
        let Some(uuid) = self
            .channel_uuid
            .clone()
            .filter(|_| self.mode == Mode::Outbound && !self.hung_up)
        else {
            return;
        };
        const CAUSE: &str = "NORMAL_TEMPORARY_FAILURE";
        let mut bytes = std::mem::take(&mut self.out).to_vec();
        if let Ok(kill) = Command::api(&format!("uuid_kill {uuid} {CAUSE}")) {
            bytes.extend(kill.to_bytes());
        }
        if let Ok(hangup) = Command::hangup(CAUSE) {
            bytes.extend(hangup.to_bytes());
        }
        let written = tokio::time::timeout(Duration::from_secs(1), async {
            self.stream.write_all(&bytes).await?;
            self.stream.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => {
                tracing::warn!(peer = %self.peer, uuid = %uuid, "hung the channel up before closing its broken socket");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => {
                tracing::warn!(peer = %self.peer, uuid = %uuid, "could not hang the channel up before closing its broken socket")
            }
        }
    }

    async fn finish(mut self, reason: CloseReason) {
        let _ = self.shared.closed.set(reason.clone());
        match &reason {
            CloseReason::Protocol(_) | CloseReason::Truncated { .. } => {
                bump(&self.counters.protocol_errors);
                tracing::warn!(peer = %self.peer, uuid = ?self.channel_uuid, error = %reason, "closing ESL connection");
            }
            CloseReason::Io(_) | CloseReason::Rejected(_) => {
                tracing::warn!(peer = %self.peer, uuid = ?self.channel_uuid, error = %reason, "ESL connection lost");
            }
            _ => {
                tracing::debug!(peer = %self.peer, uuid = ?self.channel_uuid, reason = %reason, "ESL connection ended");
            }
        }
        // Fail every waiter first, so nobody waits on a slow event consumer.
        self.cmd_rx.close();
        let closed = EslError::Closed(reason.clone());
        for p in self.replies.drain(..) {
            if let Some(tx) = p.tx {
                let _ = tx.send(Err(closed.clone()));
            }
        }
        let app_err = if self.hung_up {
            EslError::HungUp
        } else {
            closed.clone()
        };
        for (_, tx) in self.apps.drain() {
            let _ = tx.send(Err(app_err.clone()));
        }
        for (_, tx) in self.jobs.drain() {
            let _ = tx.send(Err(closed.clone()));
        }
        while let Ok(req) = self.cmd_rx.try_recv() {
            let req = *req;
            if let Some(tx) = req.reply {
                let _ = tx.send(Err(closed.clone()));
            }
            if let Some(tx) = req.app_waiter {
                let _ = tx.send(Err(closed.clone()));
            }
            if let Some((_, tx)) = req.job {
                let _ = tx.send(Err(closed.clone()));
            }
        }
        if matches!(reason, CloseReason::Protocol(_)) {
            self.hang_up_before_closing().await;
        }
        let _ = self.stream.shutdown().await;
        drop(self.stream);
        self.buf = BytesMut::new();
        if !self.events_open {
            return;
        }
        self.pending
            .push_back(Box::new(SocketEvent::Closed(reason)));
        for item in self.pending.drain(..) {
            if self.events_tx.send(item).await.is_err() {
                break;
            }
        }
    }
}
