//! One FastAGI connection: the handshake (reading the environment under a timeout), then
//! an actor task that owns the socket.
//!
//! - Commands are written in the order given and their replies matched in that order
//!   (Asterisk runs one command at a time and answers each with one line).
//! - `HANGUP` becomes [`AgiEvent::Hangup`] (once), whenever it comes: before or after the
//!   reply of the command it interrupted.
//! - A line over [`MAX_LINE`], or an I/O error, closes this connection only: pending
//!   commands fail with [`AgiError::Closed`] and the stream ends with
//!   [`AgiEvent::Closed`]. Lines the protocol does not know are logged and skipped.
//! - [`AgiConnection::close`] (or dropping every handle) shuts the socket: for Asterisk
//!   that is what releases a hung-up channel.

use crate::agi::command::AgiCommand;
use crate::agi::env::{AgiEnv, EnvError};
use crate::agi::line::{LineDecoder, LineError, MAX_LINE};
use crate::agi::message::{Message, Reply};
use bytes::BytesMut;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// Lines of a multi-line `520-…` usage reply kept at most (the rest are dropped).
const MAX_USAGE_LINES: usize = 64;

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The switch closed it.
    Eof,
    /// We closed it.
    Local,
    /// The peer broke the protocol (too long a line…); the text says how.
    Protocol(String),
    Io(String),
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Eof => write!(f, "closed by the switch"),
            CloseReason::Local => write!(f, "closed by us"),
            CloseReason::Protocol(e) => write!(f, "protocol error: {e}"),
            CloseReason::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgiError {
    #[error("FastAGI connection closed: {0}")]
    Closed(CloseReason),
    #[error("FastAGI handshake: {0}")]
    Handshake(String),
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, &'static str),
}

/// What the switch says on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgiEvent {
    /// `HANGUP`: the channel is down. It stays allocated until the connection closes.
    Hangup,
    /// The connection ended; nothing follows.
    Closed(CloseReason),
}

pub type AgiEvents = mpsc::UnboundedReceiver<AgiEvent>;

enum Request {
    Command(AgiCommand, oneshot::Sender<Result<Reply, AgiError>>),
    Close,
}

/// A handle on one FastAGI connection (cheap to clone).
#[derive(Clone, Debug)]
pub struct AgiConnection {
    requests: mpsc::UnboundedSender<Request>,
    env: Arc<AgiEnv>,
    peer: SocketAddr,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Command(c, _) => write!(f, "Command({})", c.line()),
            Request::Close => write!(f, "Close"),
        }
    }
}

impl AgiConnection {
    /// Reads the environment (within `timeout`), then starts the connection's actor.
    pub async fn accept(
        mut stream: TcpStream,
        peer: SocketAddr,
        timeout: Duration,
    ) -> Result<(AgiConnection, AgiEvents), AgiError> {
        let _ = stream.set_nodelay(true);
        let mut buf = BytesMut::with_capacity(4096);
        let mut decoder = LineDecoder::new(MAX_LINE);
        let env = tokio::time::timeout(timeout, read_env(&mut stream, &mut buf, &mut decoder))
            .await
            .map_err(|_| AgiError::Timeout(timeout, "the AGI environment"))??;
        let (requests, rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let actor = Actor {
            stream,
            buf,
            decoder,
            pending: VecDeque::new(),
            usage: None,
            events: events_tx,
            hangup_seen: false,
            peer,
        };
        tokio::spawn(actor.run(rx));
        Ok((
            AgiConnection {
                requests,
                env: Arc::new(env),
                peer,
            },
            events,
        ))
    }

    /// The environment the switch sent.
    pub fn env(&self) -> &AgiEnv {
        &self.env
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Sends `cmd` and waits for its reply (no timeout: an `EXEC Playback` lasts as long
    /// as the media; a hangup or a closed socket ends it).
    pub async fn command(&self, cmd: AgiCommand) -> Result<Reply, AgiError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Command(cmd, tx))
            .map_err(|_| AgiError::Closed(CloseReason::Local))?;
        rx.await
            .unwrap_or(Err(AgiError::Closed(CloseReason::Local)))
    }

    /// Closes the connection (after the commands already given have been written).
    pub fn close(&self) {
        let _ = self.requests.send(Request::Close);
    }
}

async fn read_env(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    decoder: &mut LineDecoder,
) -> Result<AgiEnv, AgiError> {
    let mut env = AgiEnv::default();
    loop {
        while let Some(line) = decoder
            .decode(buf)
            .map_err(|e| AgiError::Handshake(e.to_string()))?
        {
            match env.push_line(&line) {
                Ok(true) => {
                    if env.uniqueid().is_none() {
                        return Err(AgiError::Handshake(
                            "the environment has no agi_uniqueid".into(),
                        ));
                    }
                    return Ok(env);
                }
                Ok(false) => {}
                Err(e @ (EnvError::Malformed(_) | EnvError::TooLong)) => {
                    return Err(AgiError::Handshake(e.to_string()))
                }
            }
        }
        let n = stream
            .read_buf(buf)
            .await
            .map_err(|e| AgiError::Closed(CloseReason::Io(e.to_string())))?;
        if n == 0 {
            return Err(AgiError::Closed(CloseReason::Eof));
        }
    }
}

struct Actor {
    stream: TcpStream,
    buf: BytesMut,
    decoder: LineDecoder,
    pending: VecDeque<oneshot::Sender<Result<Reply, AgiError>>>,
    /// A `520-…` usage reply being collected.
    usage: Option<Vec<String>>,
    events: mpsc::UnboundedSender<AgiEvent>,
    hangup_seen: bool,
    peer: SocketAddr,
}

impl Actor {
    async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Request>) {
        let reason = loop {
            // Lines already buffered (the handshake may have read past the environment).
            if let Err(reason) = self.drain_lines() {
                break reason;
            }
            tokio::select! {
                req = requests.recv() => match req {
                    Some(Request::Command(cmd, reply)) => {
                        if let Err(e) = self.stream.write_all(&cmd.to_bytes()).await {
                            let _ = reply.send(Err(AgiError::Closed(CloseReason::Io(e.to_string()))));
                            break CloseReason::Io(e.to_string());
                        }
                        self.pending.push_back(reply);
                    }
                    Some(Request::Close) | None => break CloseReason::Local,
                },
                read = self.stream.read_buf(&mut self.buf) => match read {
                    Ok(0) => break CloseReason::Eof,
                    Ok(_) => {}
                    Err(e) => break CloseReason::Io(e.to_string()),
                },
            }
        };
        match &reason {
            CloseReason::Protocol(e) => {
                tracing::warn!(peer = %self.peer, error = %e, "FastAGI protocol error; connection closed")
            }
            CloseReason::Io(e) => {
                tracing::warn!(peer = %self.peer, error = %e, "FastAGI connection failed")
            }
            CloseReason::Eof | CloseReason::Local => {}
        }
        let _ = self.stream.shutdown().await;
        for reply in self.pending.drain(..) {
            let _ = reply.send(Err(AgiError::Closed(reason.clone())));
        }
        let _ = self.events.send(AgiEvent::Closed(reason));
    }

    fn drain_lines(&mut self) -> Result<(), CloseReason> {
        loop {
            let line = match self.decoder.decode(&mut self.buf) {
                Ok(Some(line)) => line,
                Ok(None) => return Ok(()),
                Err(e @ LineError::TooLong { .. }) => {
                    return Err(CloseReason::Protocol(e.to_string()))
                }
            };
            self.on_line(line);
        }
    }

    fn on_line(&mut self, line: String) {
        if let Some(usage) = &mut self.usage {
            if line.starts_with("520 ") || line == "520" {
                let mut text = std::mem::take(usage);
                text.push(line);
                self.usage = None;
                self.reply(Reply {
                    code: 520,
                    result: None,
                    data: None,
                    text: text.join("\n"),
                });
            } else if line == "HANGUP" {
                self.hangup();
            } else if usage.len() < MAX_USAGE_LINES {
                usage.push(line);
            }
            return;
        }
        match Message::parse(&line) {
            Message::Reply(reply) => self.reply(reply),
            Message::UsageStart(first) => self.usage = Some(vec![first]),
            Message::Hangup => self.hangup(),
            Message::Unknown(text) => {
                tracing::warn!(peer = %self.peer, line = %text.chars().take(120).collect::<String>(), "FastAGI: line not understood; ignored")
            }
        }
    }

    fn reply(&mut self, reply: Reply) {
        match self.pending.pop_front() {
            Some(tx) => {
                let _ = tx.send(Ok(reply));
            }
            None => {
                tracing::warn!(peer = %self.peer, reply = %reply.text, "FastAGI: a reply with no command waiting; ignored")
            }
        }
    }

    fn hangup(&mut self) {
        if !self.hangup_seen {
            self.hangup_seen = true;
            let _ = self.events.send(AgiEvent::Hangup);
        }
    }
}
