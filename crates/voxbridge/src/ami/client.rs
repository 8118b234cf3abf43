//! The AMI client: one TCP session to one Asterisk, kept up by a supervisor task.
//!
//! - **Login** with `Events: off`, then one `Filter` action (`Operation: Add`) per event
//!   name the user asked for, then `Events` with the event classes: Asterisk then sends
//!   this session only those events (a whitelist filter is checked in Asterisk before the
//!   event is written), so a busy switch's other events never reach voxbridge's decoder.
//! - **Actions** get an `ActionID` (a counter) and their `Response` is matched by it; an
//!   action that gets no answer in [`ACTION_TIMEOUT`] fails with [`AmiError::Timeout`].
//! - **Events** are routed by their `Linkedid`: every channel of one call (the caller and
//!   the callees its `Dial()` creates) carries the caller's linked id, so a call subscribes
//!   once ([`Ami::channel_events`]) and gets its own events only, in order.
//! - **Reconnect**: a session that drops, fails its login, or sends bad input (a huge
//!   line, garbage, see [`super::frame`]) is closed and logged, and the supervisor
//!   connects again after a backoff (200 ms doubling to [`MAX_BACKOFF`]). Actions asked
//!   for while it is down fail at once with [`AmiError::NotConnected`] (never queued: an
//!   out-of-band action that comes late is worse than one that fails and says so).
//!   Nothing here panics on what the peer sends.

use super::frame::{Action, ActionError, Decoder, Frame, FrameError, Kind, Message};
use bytes::BytesMut;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

/// How long an action waits for its `Response`.
pub const ACTION_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait between two connection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// How long connecting and logging in may take.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and who to log in as, and which events to receive.
#[derive(Clone, Debug)]
pub struct AmiOptions {
    /// `host:port` of the manager interface (`127.0.0.1:5038`).
    pub address: String,
    pub user: String,
    pub secret: String,
    /// Event names let through (`DTMFEnd`, `DialBegin`, …), one `Filter` each.
    pub events: Vec<String>,
    /// The event classes to turn on (`call,dtmf`): the `Events` action's `EventMask`.
    pub event_classes: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmiError {
    #[error("AMI is not connected")]
    NotConnected,
    #[error("the AMI connection closed before the answer")]
    Disconnected,
    #[error("AMI did not answer in {0:?}")]
    Timeout(Duration),
    /// `Response: Error` with its `Message:`.
    #[error("AMI refused {action}: {message}")]
    Refused { action: String, message: String },
    #[error(transparent)]
    Action(#[from] ActionError),
}

struct Request {
    action: Action,
    reply: oneshot::Sender<Result<Message, AmiError>>,
}

type Routes = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Arc<Message>>>>>;

/// A handle on the AMI session (cheap to clone). The supervisor task ends when the last
/// handle is dropped.
#[derive(Clone)]
pub struct Ami {
    requests: mpsc::UnboundedSender<Request>,
    routes: Routes,
    connected: watch::Receiver<bool>,
}

impl std::fmt::Debug for Ami {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ami")
            .field("connected", &*self.connected.borrow())
            .finish()
    }
}

/// The events of one call's channels ([`Ami::channel_events`]); unsubscribes on drop.
pub struct ChannelEvents {
    key: String,
    routes: Routes,
    rx: mpsc::UnboundedReceiver<Arc<Message>>,
}

impl ChannelEvents {
    pub async fn recv(&mut self) -> Option<Arc<Message>> {
        self.rx.recv().await
    }
}

impl Drop for ChannelEvents {
    fn drop(&mut self) {
        // Closed first, so the route is seen as this subscriber's own and removed (a
        // later subscriber to the same id has replaced it and keeps it).
        self.rx.close();
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        if routes.get(&self.key).is_some_and(|tx| tx.is_closed()) {
            routes.remove(&self.key);
        }
    }
}

impl Ami {
    /// Starts the supervisor (connects in the background; see the module docs).
    pub fn start(options: AmiOptions) -> Ami {
        let (requests, rx) = mpsc::unbounded_channel();
        let routes: Routes = Arc::default();
        let (connected_tx, connected) = watch::channel(false);
        tokio::spawn(supervise(options, rx, routes.clone(), connected_tx));
        Ami {
            requests,
            routes,
            connected,
        }
    }

    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Waits until the session is logged in (or `limit` passes); true if it is.
    pub async fn wait_connected(&self, limit: Duration) -> bool {
        let mut connected = self.connected.clone();
        tokio::time::timeout(limit, connected.wait_for(|c| *c))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Sends `action` and waits for its `Response`; `Response: Error` is
    /// [`AmiError::Refused`].
    pub async fn send(&self, action: Action) -> Result<Message, AmiError> {
        let name = action.name().to_string();
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(Request { action, reply })
            .map_err(|_| AmiError::NotConnected)?;
        let message = match tokio::time::timeout(ACTION_TIMEOUT, rx).await {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => return Err(AmiError::Disconnected),
            Err(_) => return Err(AmiError::Timeout(ACTION_TIMEOUT)),
        };
        if message.is_success() {
            Ok(message)
        } else {
            Err(AmiError::Refused {
                action: name,
                message: message.text().to_string(),
            })
        }
    }

    /// How many calls are subscribed to events now.
    pub fn subscribed(&self) -> usize {
        self.routes.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Subscribes to the events whose `Linkedid` is `linked_id` (one subscriber per id:
    /// a second replaces the first).
    pub fn channel_events(&self, linked_id: &str) -> ChannelEvents {
        let (tx, rx) = mpsc::unbounded_channel();
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(linked_id.to_string(), tx);
        ChannelEvents {
            key: linked_id.to_string(),
            routes: self.routes.clone(),
            rx,
        }
    }
}

async fn supervise(
    options: AmiOptions,
    mut requests: mpsc::UnboundedReceiver<Request>,
    routes: Routes,
    connected: watch::Sender<bool>,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut failures = 0u64;
    loop {
        match tokio::time::timeout(LOGIN_TIMEOUT, Session::open(&options)).await {
            Ok(Ok(session)) => {
                tracing::info!(ami = %options.address, "AMI logged in");
                backoff = FIRST_BACKOFF;
                failures = 0;
                connected.send_replace(true);
                let why = session.run(&mut requests, &routes).await;
                connected.send_replace(false);
                match why {
                    None => return, // every handle dropped
                    Some(why) => {
                        tracing::warn!(ami = %options.address, reason = %why, "AMI connection lost; reconnecting")
                    }
                }
            }
            Ok(Err(why)) => {
                failures += 1;
                // Loud once, then quieter: a switch that is down for a while must not
                // fill the log.
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(ami = %options.address, reason = %why, attempts = failures, "AMI connection failed; retrying");
                }
            }
            Err(_) => {
                failures += 1;
                tracing::warn!(ami = %options.address, "AMI login timed out; retrying");
            }
        }
        let pause = tokio::time::sleep(backoff);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                req = requests.recv() => match req {
                    Some(req) => { let _ = req.reply.send(Err(AmiError::NotConnected)); }
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

struct Session {
    stream: TcpStream,
    decoder: Decoder,
    buf: BytesMut,
    next_id: AtomicU64,
}

impl Session {
    async fn open(options: &AmiOptions) -> Result<Session, String> {
        let stream = TcpStream::connect(&options.address)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let mut session = Session {
            stream,
            decoder: Decoder::default(),
            buf: BytesMut::with_capacity(8192),
            next_id: AtomicU64::new(1),
        };
        let login = Action::new("Login")
            .field("Username", &options.user)
            .and_then(|a| a.field("Secret", &options.secret))
            .and_then(|a| a.field("Events", "off"))
            .map_err(|e| e.to_string())?;
        session.call(login).await?;
        for name in &options.events {
            let filter = Action::new("Filter")
                .field("Operation", "Add")
                .and_then(|a| a.field("Filter", &format!("Event: {name}")))
                .map_err(|e| e.to_string())?;
            session.call(filter).await?;
        }
        if !options.event_classes.is_empty() {
            let events = Action::new("Events")
                .field("EventMask", &options.event_classes)
                .map_err(|e| e.to_string())?;
            session.call(events).await?;
        }
        Ok(session)
    }

    fn action_id(&self) -> String {
        self.next_id.fetch_add(1, Ordering::Relaxed).to_string()
    }

    /// During setup: sends `action` and reads until its response (events before it are
    /// dropped: none are routed yet).
    async fn call(&mut self, action: Action) -> Result<Message, String> {
        let id = self.action_id();
        let name = action.name().to_string();
        self.stream
            .write_all(action.encode(&id).as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        loop {
            match self.next_frame().await? {
                Frame::Message(m) if m.action_id() == Some(id.as_str()) => {
                    return if m.is_success() {
                        Ok(m)
                    } else {
                        Err(format!("{name} refused: {}", m.text()))
                    };
                }
                _ => {}
            }
        }
    }

    async fn next_frame(&mut self) -> Result<Frame, String> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf).map_err(bad_input)? {
                return Ok(frame);
            }
            let n = self
                .stream
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("closed by Asterisk".into());
            }
        }
    }

    /// Serves actions and routes events until the connection fails (`Some(why)`) or
    /// every handle is gone (`None`).
    async fn run(
        mut self,
        requests: &mut mpsc::UnboundedReceiver<Request>,
        routes: &Routes,
    ) -> Option<String> {
        let mut pending: HashMap<String, oneshot::Sender<Result<Message, AmiError>>> =
            HashMap::new();
        let why = loop {
            // Frames already buffered first.
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(Frame::Message(m))) => {
                    deliver(m, &mut pending, routes);
                    continue;
                }
                Ok(Some(Frame::Banner(_))) => continue,
                Ok(None) => {}
                Err(e) => break bad_input(e),
            }
            tokio::select! {
                read = self.stream.read_buf(&mut self.buf) => match read {
                    Ok(0) => break "closed by Asterisk".to_string(),
                    Ok(_) => {}
                    Err(e) => break format!("read: {e}"),
                },
                req = requests.recv() => {
                    let req = req?; // None: every handle is gone
                    let id = self.action_id();
                    let wire = req.action.encode(&id);
                    // Bounded: a switch that stops reading must not stall the events.
                    match tokio::time::timeout(ACTION_TIMEOUT, self.stream.write_all(wire.as_bytes())).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            let _ = req.reply.send(Err(AmiError::Disconnected));
                            break format!("write: {e}");
                        }
                        Err(_) => {
                            let _ = req.reply.send(Err(AmiError::Timeout(ACTION_TIMEOUT)));
                            break "write timed out: Asterisk stopped reading".to_string();
                        }
                    }
                    if pending.len() > 1024 {
                        pending.retain(|_, tx| !tx.is_closed());
                    }
                    pending.insert(id, req.reply);
                }
            }
        };
        for (_, reply) in pending.drain() {
            let _ = reply.send(Err(AmiError::Disconnected));
        }
        Some(why)
    }
}

fn bad_input(e: FrameError) -> String {
    tracing::warn!(error = %e, "bad input from AMI: closing the connection");
    format!("bad input: {e}")
}

/// A response to its waiting action; an event to the call subscribed to its `Linkedid`.
fn deliver(
    message: Message,
    pending: &mut HashMap<String, oneshot::Sender<Result<Message, AmiError>>>,
    routes: &Routes,
) {
    match message.kind() {
        Kind::Response(_) => {
            let waiting = message.action_id().and_then(|id| pending.remove(id));
            match waiting {
                Some(reply) => {
                    let _ = reply.send(Ok(message));
                }
                None => tracing::debug!(?message, "AMI response nobody waits for"),
            }
        }
        Kind::Event(_) => {
            let Some(key) = message.get("Linkedid") else {
                return;
            };
            let mut routes = routes.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(tx) = routes.get(key) {
                let key = key.to_string();
                if tx.send(Arc::new(message)).is_err() {
                    routes.remove(&key);
                }
            }
        }
        Kind::Other => tracing::debug!(
            ?message,
            "AMI message that is neither a response nor an event"
        ),
    }
}
