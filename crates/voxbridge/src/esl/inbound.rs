//! The inbound client: voxbridge connecting to the switch's own ESL port (8021) with a
//! password (`reference/freeswitch-esl.md` §3), for reconciliation and for commands on
//! channels another node controls.
//!
//! - [`InboundSession`]: one authenticated connection: `api`, `bgapi` (our own `Job-UUID`,
//!   resolved by the matching BACKGROUND_JOB), event subscriptions and filters, an event
//!   stream. It ends for good when the socket does.
//! - [`InboundClient`]: keeps a session alive: reconnects with exponential backoff,
//!   re-authenticates and re-applies every subscription and filter. A command issued
//!   while disconnected fails at once with [`EslError::NotConnected`] instead of waiting
//!   for a reconnect that may never come; one in flight when the socket drops fails with
//!   [`EslError::Closed`].

use crate::esl::command::Command;
use crate::esl::connection::{self, ActorOptions, Mode, Session};
pub use crate::esl::connection::{CloseReason, EslError, EventStream, SocketEvent};
use crate::esl::counters::EslCounters;
use crate::esl::event::{ApiResponse, Event, EventFormat, Message, Reply};
use crate::esl::frame::FrameDecoder;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

/// How to reach and use the switch's inbound socket.
#[derive(Clone, Debug)]
pub struct InboundOptions {
    /// `host:port` of the switch's event socket (default port 8021).
    pub addr: String,
    pub password: String,
    /// Format for event subscriptions.
    pub format: EventFormat,
    /// Events to subscribe to besides BACKGROUND_JOB (always subscribed: `bgapi` needs it).
    pub events: Vec<String>,
    /// `filter <header> <value>` pairs applied after subscribing.
    pub filters: Vec<(String, String)>,
    /// Bound on TCP connect + `auth/request` + `auth` + subscriptions.
    pub connect_timeout: Duration,
    /// Bound on each command's reply.
    pub reply_timeout: Duration,
    /// Capacity of the event stream.
    pub event_capacity: usize,
    /// First reconnect delay; doubles up to `backoff_max` ([`InboundClient`] only).
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl Default for InboundOptions {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8021".into(),
            password: "ClueCon".into(),
            format: EventFormat::Plain,
            events: Vec::new(),
            filters: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            reply_timeout: Duration::from_secs(30),
            event_capacity: 256,
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
        }
    }
}

/// One authenticated inbound connection.
#[derive(Clone, Debug)]
pub struct InboundSession {
    session: Session,
}

impl InboundSession {
    /// Connects, answers `auth/request`, subscribes (`event <fmt> BACKGROUND_JOB …`) and
    /// applies the filters, all within `options.connect_timeout`.
    pub async fn connect(
        options: &InboundOptions,
        counters: Arc<EslCounters>,
    ) -> Result<(InboundSession, EventStream), EslError> {
        let after = options.connect_timeout;
        match tokio::time::timeout(after, Self::connect_inner(options, counters)).await {
            Ok(r) => r,
            Err(_) => Err(EslError::Timeout {
                what: format!("connecting to the switch at {}", options.addr),
                after,
            }),
        }
    }

    async fn connect_inner(
        options: &InboundOptions,
        counters: Arc<EslCounters>,
    ) -> Result<(InboundSession, EventStream), EslError> {
        let connect_err = |e: std::io::Error| EslError::Connect {
            addr: options.addr.clone(),
            error: e.to_string(),
        };
        let mut stream = TcpStream::connect(&options.addr)
            .await
            .map_err(connect_err)?;
        let _ = stream.set_nodelay(true);
        let peer = stream.peer_addr().map_err(connect_err)?;
        let buf = read_auth_request(&mut stream, peer).await?;
        let (session, events) = connection::spawn(
            stream,
            buf,
            ActorOptions {
                mode: Mode::Inbound,
                peer,
                event_capacity: options.event_capacity,
                reply_timeout: options.reply_timeout,
                counters,
            },
        );
        let reply = session.command(&Command::auth(&options.password)?).await?;
        if !reply.is_ok() {
            return Err(EslError::Auth(reply.text().to_string()));
        }
        let s = InboundSession { session };
        let mut names = vec!["BACKGROUND_JOB".to_string()];
        names.extend(
            options
                .events
                .iter()
                .filter(|n| !n.eq_ignore_ascii_case("BACKGROUND_JOB"))
                .cloned(),
        );
        s.subscribe(options.format, &names).await?;
        for (h, v) in &options.filters {
            s.filter(h, v).await?;
        }
        Ok((s, events))
    }

    /// `api <command>` → the raw output.
    pub async fn api(&self, command: &str) -> Result<ApiResponse, EslError> {
        self.session.api(command).await
    }

    /// `bgapi <command>` → the BACKGROUND_JOB event (its body is the output), matched by
    /// the `Job-UUID` we chose. Several may be in flight; each gets its own.
    pub async fn bgapi(&self, command: &str) -> Result<Event, EslError> {
        self.session.bgapi(command).await
    }

    /// `event <fmt> NAMES…`.
    pub async fn subscribe<S: AsRef<str>>(
        &self,
        format: EventFormat,
        names: &[S],
    ) -> Result<Reply, EslError> {
        self.session
            .command_ok(&Command::event(format, names)?)
            .await
    }

    /// `filter <header> <value>`.
    pub async fn filter(&self, header: &str, value: &str) -> Result<Reply, EslError> {
        self.session
            .command_ok(&Command::filter(header, value)?)
            .await
    }

    /// Any command answered by a `command/reply`.
    pub async fn command(&self, cmd: &Command) -> Result<Reply, EslError> {
        self.session.command(cmd).await
    }

    /// `exit`; a connection already gone counts as done.
    pub async fn exit(&self) -> Result<(), EslError> {
        match self.session.command(&Command::exit()).await {
            Ok(_) | Err(EslError::Closed(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.session.is_closed()
    }
}

/// Reads frames until `auth/request`; anything else first is an error.
async fn read_auth_request(stream: &mut TcpStream, peer: SocketAddr) -> Result<BytesMut, EslError> {
    let mut buf = BytesMut::with_capacity(1024);
    let mut decoder = FrameDecoder::default();
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => {
                return match Message::decode(frame) {
                    Message::AuthRequest => Ok(buf),
                    Message::RudeRejection(text) => {
                        Err(EslError::Closed(CloseReason::Rejected(text)))
                    }
                    other => Err(EslError::Handshake(format!(
                        "{peer} sent {other:?} instead of auth/request"
                    ))),
                };
            }
            Ok(None) => {}
            Err(e) => return Err(EslError::Closed(CloseReason::Protocol(e.to_string()))),
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) if buf.is_empty() => return Err(EslError::Closed(CloseReason::Eof)),
            Ok(0) => {
                return Err(EslError::Closed(CloseReason::Truncated {
                    buffered: buf.len(),
                }))
            }
            Ok(_) => {}
            Err(e) => return Err(EslError::Closed(CloseReason::Io(e.to_string()))),
        }
    }
}

/// An item of the [`InboundClient`]'s stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// (Re)connected, authenticated and subscribed.
    Connected,
    Event(Event),
    /// The connection ended; a reconnect follows.
    Disconnected(CloseReason),
}

struct ClientInner {
    current: Mutex<Option<InboundSession>>,
    /// Dropped with the last client handle: tells the supervisor to stop.
    _stop: watch::Sender<()>,
}

/// A self-healing inbound connection. Cheap to clone; the supervisor stops when the last
/// clone is dropped.
#[derive(Clone)]
pub struct InboundClient {
    inner: Arc<ClientInner>,
}

impl InboundClient {
    /// Starts connecting in the background. The stream carries
    /// [`ClientEvent::Connected`] each time a session is up, the events, and
    /// [`ClientEvent::Disconnected`] each time it drops.
    pub fn start(
        options: InboundOptions,
        counters: Arc<EslCounters>,
    ) -> (InboundClient, mpsc::Receiver<ClientEvent>) {
        let (stop_tx, stop_rx) = watch::channel(());
        let inner = Arc::new(ClientInner {
            current: Mutex::new(None),
            _stop: stop_tx,
        });
        let (tx, rx) = mpsc::channel(options.event_capacity.max(1));
        tokio::spawn(supervise(
            Arc::downgrade(&inner),
            options,
            counters,
            tx,
            stop_rx,
        ));
        (InboundClient { inner }, rx)
    }

    fn session(&self) -> Result<InboundSession, EslError> {
        let guard = self
            .inner
            .current
            .lock()
            .map_err(|_| EslError::NotConnected)?;
        match guard.as_ref() {
            Some(s) if !s.is_closed() => Ok(s.clone()),
            _ => Err(EslError::NotConnected),
        }
    }

    /// `true` while a session is up.
    pub fn is_connected(&self) -> bool {
        self.session().is_ok()
    }

    pub async fn api(&self, command: &str) -> Result<ApiResponse, EslError> {
        self.session()?.api(command).await
    }

    /// The uuids of every channel the switch has now, in one round trip (`show channels
    /// as json`). `None` when the switch cannot be asked or its answer is not the list.
    pub async fn channel_uuids(&self) -> Option<std::collections::HashSet<String>> {
        let reply = self.api("show channels as json").await.ok()?;
        parse_channel_list(&reply.body)
    }

    pub async fn bgapi(&self, command: &str) -> Result<Event, EslError> {
        self.session()?.bgapi(command).await
    }

    pub async fn command(&self, cmd: &Command) -> Result<Reply, EslError> {
        self.session()?.command(cmd).await
    }
}

async fn supervise(
    inner: Weak<ClientInner>,
    options: InboundOptions,
    counters: Arc<EslCounters>,
    tx: mpsc::Sender<ClientEvent>,
    mut stop: watch::Receiver<()>,
) {
    let mut backoff = options.backoff_initial;
    loop {
        let attempt = tokio::select! {
            r = InboundSession::connect(&options, counters.clone()) => r,
            _ = stop.changed() => return,
        };
        match attempt {
            Ok((session, mut events)) => {
                backoff = options.backoff_initial;
                if !set_current(&inner, Some(session.clone())) {
                    return;
                }
                tracing::info!(addr = %options.addr, "inbound ESL connected");
                let _ = tx.send(ClientEvent::Connected).await;
                let reason = loop {
                    let item = tokio::select! {
                        item = events.recv() => item,
                        _ = stop.changed() => {
                            let _ = session.exit().await;
                            return;
                        }
                    };
                    match item {
                        Some(SocketEvent::Event(ev)) => {
                            let _ = tx.send(ClientEvent::Event(ev)).await;
                        }
                        Some(SocketEvent::Closed(reason)) => break reason,
                        Some(_) => {}
                        None => break session.session.close_reason().unwrap_or(CloseReason::Local),
                    }
                };
                if !set_current(&inner, None) {
                    return;
                }
                tracing::warn!(addr = %options.addr, reason = %reason, "inbound ESL connection lost; reconnecting");
                let _ = tx.send(ClientEvent::Disconnected(reason)).await;
            }
            Err(e) => {
                tracing::warn!(addr = %options.addr, error = %e, retry_in = ?backoff, "inbound ESL connect failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(options.backoff_max);
    }
}

/// Publishes the live session; `false` when every client handle is gone.
fn set_current(inner: &Weak<ClientInner>, session: Option<InboundSession>) -> bool {
    let Some(inner) = inner.upgrade() else {
        return false;
    };
    if let Ok(mut guard) = inner.current.lock() {
        *guard = session;
    }
    true
}

/// `show channels as json`: `{"row_count":N,"rows":[{"uuid":…},…]}`; with no channel the
/// switch leaves `rows` out (`{"row_count":0}`).
pub fn parse_channel_list(body: &str) -> Option<std::collections::HashSet<String>> {
    let value: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
    let count = value.get("row_count")?.as_u64()?;
    let rows = match value.get("rows") {
        Some(rows) => rows.as_array()?.as_slice(),
        None => &[],
    };
    let uuids: std::collections::HashSet<String> = rows
        .iter()
        .filter_map(|r| r.get("uuid")?.as_str().map(str::to_string))
        .collect();
    (uuids.len() as u64 == count).then_some(uuids)
}

#[cfg(test)]
mod channel_list_tests {
    use super::parse_channel_list;

    #[test]
    fn show_channels_as_json() {
        let body = r#"{"row_count":2,"rows":[{"uuid":"a","direction":"inbound"},{"uuid":"b"}]}"#;
        let got = parse_channel_list(body).unwrap();
        assert!(got.contains("a") && got.contains("b") && got.len() == 2);
        assert_eq!(parse_channel_list("{\"row_count\":0}\n").unwrap().len(), 0);
        assert_eq!(parse_channel_list("-ERR no reply"), None);
        // A list that does not add up is not trusted.
        assert_eq!(
            parse_channel_list(r#"{"row_count":3,"rows":[{"uuid":"a"}]}"#),
            None
        );
    }
}
