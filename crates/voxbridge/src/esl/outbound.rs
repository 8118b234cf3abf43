//! One outbound connection: the switch's `socket` app controlling one channel
//! (`reference/freeswitch-esl.md` §2).
//!
//! The handshake (`connect`, `myevents`, `linger`, extra `event` subscriptions) runs in the
//! per-call task under one timeout, never in the accept loop, so a peer that connects and
//! goes quiet only costs its own task.
//!
//! Apps can be run two ways, both with `event-lock: true` and a fresh `Event-UUID`:
//! - [`OutboundConnection::execute`] waits for the CHANNEL_EXECUTE_COMPLETE whose
//!   `Application-UUID` is ours and returns its `Application-Response`;
//! - [`OutboundConnection::send_execute`] only queues the app and returns its id; the
//!   completion arrives on the [`EventStream`] like every other event (or a
//!   [`SocketEvent::ExecuteRejected`] if the switch refused it). This is the form for a
//!   driver that owns one `select!` loop over events, timers and API commands.
//!
//! **Drain the event stream.** It is bounded and the connection stops reading the socket
//! while it is full, so a task that awaits `execute` must also be receiving events (the
//! same `select!` loop, or another task). Completions are handed to `execute` waiters as
//! soon as they are read, and are also delivered on the stream. Replies share the socket
//! with events too: awaiting a reply (`hangup`, `api`) without draining is safe only while
//! the stream has room, which is why `send_hangup`/`send_command` exist for a driver loop.
//!
//! Hangup semantics (transcripts c, e2): after CHANNEL_HANGUP the running app still gets
//! its EXECUTE_COMPLETE; apps queued behind it never run, so their `execute` fails with
//! [`EslError::HungUp`] when CHANNEL_HANGUP_COMPLETE arrives, and any app sent after that
//! fails at once. EOF or the final disconnect notice fails everything still waiting.

use crate::esl::command::{Command, Execute, Linger};
use crate::esl::connection::{self, ActorOptions, Mode, PendingResponse, Response, Session};
pub use crate::esl::connection::{CloseReason, EslError, EventStream, SocketEvent};
use crate::esl::counters::EslCounters;
use crate::esl::event::{ApiResponse, ChannelData, Event, EventFormat, Reply};
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpStream;

/// How an outbound connection is set up.
#[derive(Clone, Debug)]
pub struct OutboundOptions {
    /// Bound on the handshake's `connect` reply (the later steps have `reply_timeout`:
    /// once the channel is known it is not abandoned for being slow).
    pub handshake_timeout: Duration,
    /// Bound on each later command's reply (not on an app's run time).
    pub reply_timeout: Duration,
    /// `linger` so CHANNEL_HANGUP_COMPLETE reaches us (SPEC §2 step 1); `None` skips it.
    pub linger: Option<Linger>,
    /// Format for `myevents` and the extra subscription.
    pub format: EventFormat,
    /// Extra `event <fmt> …` names beyond what `myevents` gives (e.g. `BACKGROUND_JOB`
    /// for `bgapi` on this socket). Empty: no `event` command is sent.
    pub events: Vec<String>,
    /// Events `myevents` subscribes to that the caller does not use, dropped with
    /// `nixevent …` right after it, so the switch neither builds nor sends them (SPEC §9:
    /// no event subscription the call does not use). Empty: no `nixevent` is sent.
    pub nix_events: Vec<String>,
    /// Capacity of the per-call event stream.
    pub event_capacity: usize,
}

impl Default for OutboundOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(5),
            reply_timeout: Duration::from_secs(30),
            linger: Some(Linger::Forever),
            format: EventFormat::Plain,
            events: Vec::new(),
            nix_events: Vec::new(),
            event_capacity: 64,
        }
    }
}

/// A handshake that failed, and the channel it had taken over if `connect` succeeded.
#[derive(Debug)]
pub struct HandshakeFailure {
    pub error: EslError,
    /// Set when the failure came after `connect`: the channel was ours and has been hung
    /// up (best effort); it still needs a record.
    pub channel: Option<Arc<ChannelData>>,
}

/// A controlled channel. Cheap to clone; the socket closes when every clone is dropped
/// (hang the channel up first: a socket closed without a hangup leaves the call parked,
/// transcript f).
#[derive(Clone, Debug)]
pub struct OutboundConnection {
    session: Session,
    channel: Arc<ChannelData>,
    uuid: Arc<str>,
    peer: SocketAddr,
}

impl OutboundConnection {
    /// Runs the handshake on an accepted socket: `connect` (→ channel data), `myevents`,
    /// `linger`, then `event …` if asked. Only a missing or broken `connect` reply, a
    /// closed socket or the timeout fail it; a `-ERR` to the later commands (e.g. a socket
    /// without `full`, which refuses `linger`) is logged and the call goes on.
    ///
    /// A failure after `connect` leaves a channel that is ours and parked: it is hung up
    /// here (best effort, see [`hang_up_best_effort`](Self::hang_up_best_effort)) before
    /// the socket closes, and [`HandshakeFailure::channel`] carries its data so the
    /// caller can still close the call out with a record.
    pub async fn handshake_checked(
        stream: TcpStream,
        peer: SocketAddr,
        options: &OutboundOptions,
        counters: Arc<EslCounters>,
    ) -> Result<(OutboundConnection, EventStream), HandshakeFailure> {
        let connected = OnceLock::new();
        match Self::handshake_inner(stream, peer, options, counters, &connected).await {
            Ok(pair) => Ok(pair),
            Err(error) => {
                let channel = match connected.get() {
                    Some(conn) => {
                        let conn: &OutboundConnection = conn;
                        conn.hang_up_best_effort(
                            "NORMAL_TEMPORARY_FAILURE",
                            Duration::from_secs(2),
                        )
                        .await;
                        Some(conn.channel.clone())
                    }
                    None => None,
                };
                Err(HandshakeFailure { error, channel })
            }
        }
    }

    /// [`handshake_checked`](Self::handshake_checked), reporting only the error.
    pub async fn handshake(
        stream: TcpStream,
        peer: SocketAddr,
        options: &OutboundOptions,
        counters: Arc<EslCounters>,
    ) -> Result<(OutboundConnection, EventStream), EslError> {
        Self::handshake_checked(stream, peer, options, counters)
            .await
            .map_err(|f| f.error)
    }

    async fn handshake_inner(
        stream: TcpStream,
        peer: SocketAddr,
        options: &OutboundOptions,
        counters: Arc<EslCounters>,
        connected: &OnceLock<OutboundConnection>,
    ) -> Result<(OutboundConnection, EventStream), EslError> {
        let _ = stream.set_nodelay(true);
        let (session, events) = connection::spawn(
            stream,
            BytesMut::new(),
            ActorOptions {
                mode: Mode::Outbound,
                peer,
                event_capacity: options.event_capacity,
                reply_timeout: options.reply_timeout,
                counters,
            },
        );
        // The handshake timeout is for a peer that never answers `connect` (a health
        // check, a stuck peer). Once the channel data is in, a channel on the switch is
        // ours: giving up on it then would leave it parked, with no record (transcript
        // f), only because we were slow. The later steps are bounded like any command,
        // by the reply timeout.
        //
        // The subscription steps do not depend on the channel data, so they go out in the
        // same write as `connect` (the switch answers one command at a time, in order):
        // the whole handshake is one round trip (issue 16).
        let after = options.handshake_timeout;
        let steps = Self::steps(options)?;
        let connect = session.send_request(&Command::connect()).await?;
        let pending = session.send_pipelined(&steps).await?;
        let channel = match tokio::time::timeout(after, Self::connect(&session, connect)).await {
            Ok(channel) => channel?,
            Err(_) => {
                return Err(EslError::Timeout {
                    what: "the outbound handshake".into(),
                    after,
                })
            }
        };
        let conn = Self::setup(session, channel, peer, connected)?;
        let replies = pending.replies(&conn.session).await?;
        for (cmd, reply) in steps.iter().zip(&replies) {
            conn.warn_on_refusal(cmd, reply);
        }
        Ok((conn, events))
    }

    /// `connect`'s response: the channel data.
    async fn connect(session: &Session, sent: PendingResponse) -> Result<ChannelData, EslError> {
        match sent.response(session).await? {
            Response::ChannelData(cd) => Ok(cd),
            Response::Reply(r) => Err(EslError::Handshake(format!(
                "connect answered {:?} instead of channel data",
                r.text()
            ))),
            Response::Api(a) => Err(EslError::Handshake(format!(
                "connect answered an api/response {:?}",
                a.body
            ))),
        }
    }

    /// The subscription steps sent after `connect`: `myevents`, `nixevent` of what the
    /// call never reads, `linger`, extra `event`s.
    fn steps(options: &OutboundOptions) -> Result<Vec<Command>, EslError> {
        let mut steps = vec![Command::myevents(options.format)];
        if !options.nix_events.is_empty() {
            steps.push(Command::nixevent(&options.nix_events)?);
        }
        if let Some(l) = options.linger {
            steps.push(Command::linger(l));
        }
        if !options.events.is_empty() {
            steps.push(Command::event(options.format, &options.events)?);
        }
        Ok(steps)
    }

    /// The connection, once the channel data is in: from here on a failure hangs the
    /// channel up (`connected`).
    fn setup(
        session: Session,
        channel: ChannelData,
        peer: SocketAddr,
        connected: &OnceLock<OutboundConnection>,
    ) -> Result<OutboundConnection, EslError> {
        let Some(uuid) = channel.uuid().map(Arc::<str>::from) else {
            return Err(EslError::Handshake(
                "the connect reply carries no Unique-ID".into(),
            ));
        };
        let conn = OutboundConnection {
            session,
            channel: Arc::new(channel),
            uuid,
            peer,
        };
        let _ = connected.set(conn.clone());
        Ok(conn)
    }

    /// Logs a refused handshake step (`myevents`, `nixevent`, `linger`, `event`) as a
    /// warning and otherwise ignores it: the call is still worth running without it (e.g.
    /// a switch that refuses `linger` still delivers events). Only a transport failure
    /// ends the handshake.
    fn warn_on_refusal(&self, cmd: &Command, reply: &Reply) {
        if reply.is_err() {
            tracing::warn!(peer = %self.peer, uuid = %self.uuid, command = cmd.line(), reply = reply.text(), "ESL handshake step refused");
        }
    }

    /// Hangs the channel up without relying on the connection's health, bounded by
    /// `within`: `api uuid_kill <uuid> <cause>` (needs `full`; kills even under an
    /// event-locked app) and, when that is refused or unanswered, `sendmsg hangup` and
    /// a short pause so the switch acts on it before the socket closes. For the paths
    /// that must close a socket on a channel that may be live (reference §2.7).
    pub async fn hang_up_best_effort(&self, cause: &str, within: Duration) {
        let kill = format!("uuid_kill {} {cause}", self.uuid);
        match tokio::time::timeout(within / 2, self.api(&kill)).await {
            Ok(Ok(r)) if r.body.starts_with("+OK") || r.body.contains("No such channel") => {}
            _ => {
                let _ = tokio::time::timeout(within / 2, async {
                    if self.send_hangup(cause).await.is_ok() {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                })
                .await;
            }
        }
    }

    /// The channel data from the `connect` reply.
    pub fn channel(&self) -> &ChannelData {
        &self.channel
    }

    /// The controlled channel's UUID.
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// The switch's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// `true` once the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    /// Why the connection ended, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.session.close_reason()
    }

    /// Runs `app` (event-locked) and waits for its CHANNEL_EXECUTE_COMPLETE; returns
    /// `Application-Response` (`_none_`, `FILE PLAYED`, …). Fails with
    /// [`EslError::Rejected`] on a `-ERR`, [`EslError::HungUp`] if the channel hung up
    /// before the app could run, [`EslError::Closed`] if the socket went away. No
    /// timeout: an app may run for an hour; wrap it if you need one.
    pub async fn execute(&self, app: &str, arg: Option<&str>) -> Result<String, EslError> {
        let app_id = Execute::new_event_uuid();
        let cmd = Command::execute(&Execute::locked(app, arg, &app_id))?;
        let rx = self.session.execute_waiting(&cmd, app_id).await?;
        self.session.wait_app(app, rx).await
    }

    /// Queues `app` (event-locked) and returns its id (the `Event-UUID`, which comes back
    /// as `Application-UUID`) without waiting for anything. Its CHANNEL_EXECUTE_COMPLETE
    /// arrives on the event stream, or a [`SocketEvent::ExecuteRejected`] if it never runs.
    pub async fn send_execute(&self, app: &str, arg: Option<&str>) -> Result<String, EslError> {
        let app_id = Execute::new_event_uuid();
        let cmd = Command::execute(&Execute::locked(app, arg, &app_id))?;
        self.session.execute_no_wait(&cmd, app_id.clone()).await?;
        Ok(app_id)
    }

    /// Any `sendmsg execute` built by hand (no event-lock, `loops`, …), fire-and-forget
    /// like [`send_execute`](Self::send_execute). `exec.event_uuid` is filled in if empty.
    pub async fn send_execute_with(&self, mut exec: Execute) -> Result<String, EslError> {
        let app_id = exec
            .event_uuid
            .get_or_insert_with(Execute::new_event_uuid)
            .clone();
        let cmd = Command::execute(&exec)?;
        self.session.execute_no_wait(&cmd, app_id.clone()).await?;
        Ok(app_id)
    }

    /// `sendmsg` `call-command: hangup` with `hangup-cause: <cause>`. The switch queues it
    /// behind a running event-locked app; interrupt that with `api uuid_break <uuid>`.
    pub async fn hangup(&self, cause: &str) -> Result<(), EslError> {
        self.session.command_ok(&Command::hangup(cause)?).await?;
        Ok(())
    }

    /// Queues the hangup without waiting for the `+OK` (a `-ERR` is logged): for a
    /// driver's `select!` loop, which then sees CHANNEL_HANGUP_COMPLETE (or the socket's
    /// end) on the event stream.
    pub async fn send_hangup(&self, cause: &str) -> Result<(), EslError> {
        self.session.send_only(&Command::hangup(cause)?).await
    }

    /// Queues any command without waiting for its reply (a `-ERR` is logged).
    pub async fn send_command(&self, cmd: &Command) -> Result<(), EslError> {
        self.session.send_only(cmd).await
    }

    /// `api <command>` over this socket (needs `full`), e.g. `uuid_break <uuid>`.
    pub async fn api(&self, command: &str) -> Result<ApiResponse, EslError> {
        self.session.api(command).await
    }

    /// `bgapi <command>`; resolves with the BACKGROUND_JOB (needs `BACKGROUND_JOB` in
    /// [`OutboundOptions::events`]).
    pub async fn bgapi(&self, command: &str) -> Result<Event, EslError> {
        self.session.bgapi(command).await
    }

    /// `getvar <name>`: `None` when unset or empty (the switch answers `-ERR command not
    /// found` for both).
    pub async fn getvar(&self, name: &str) -> Result<Option<String>, EslError> {
        let reply = self.session.command(&Command::getvar(name)?).await?;
        if reply.is_err() {
            return Ok(None);
        }
        Ok(Some(reply.text().to_string()))
    }

    /// Any command, answered by a `command/reply` (whatever its text).
    pub async fn command(&self, cmd: &Command) -> Result<Reply, EslError> {
        self.session.command(cmd).await
    }

    /// Leaves the socket by closing it (see [`Session::close`]): for a call whose channel
    /// is gone, `exit` without its round trip.
    pub async fn close(&self) {
        self.session.close().await;
    }

    /// `exit`: the switch answers `+OK bye`, sends its final disconnect notice and closes;
    /// the event stream then ends. A connection already gone counts as done.
    pub async fn exit(&self) -> Result<(), EslError> {
        match self.session.command(&Command::exit()).await {
            Ok(_) | Err(EslError::Closed(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
