//! The outbound-socket listener: FreeSWITCH's `socket` app connects here once per
//! channel (SPEC §1).
//!
//! Admission (allow-list, connection limit, one task per connection) and the drain on
//! shutdown are the accept loop both switch listeners share, [`crate::listen`]; this
//! module brings the ESL side: each connection's task runs the handshake under its own
//! timeout and then the handler. A protocol error closes only that connection (logged,
//! counted in [`EslCounters::protocol_errors`]); a panicking handler only ends its own task.
//!
//! A handshake that fails after `connect` has taken a channel over: it is hung up before
//! the socket closes (a closed socket leaves a live call parked, reference §2.7) and
//! handed to the [`abandoned`](OutboundListener::on_abandoned) handler, which closes the
//! call out with a record.
//!
//! Shutdown: as [`crate::listen`] says — stop accepting, wait up to
//! [`ListenerOptions::shutdown_grace`], then the [`cut-off`](OutboundListener::on_cut_off)
//! hook (the call driver hangs every call still up and closes it out with its record),
//! then [`CUT_OFF_LIMIT`] more before what is left is aborted.

use crate::esl::counters::{bump, EslCounters};
use crate::esl::event::ChannelData;
use crate::esl::outbound::{EventStream, OutboundConnection, OutboundOptions};
use crate::esl::EslError;
use crate::listen::{self, Gate};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// Accept queue asked of the kernel (which caps it at `net.core.somaxconn`).
///
/// The usual 128 is too shallow for a switch: in outbound mode the switch waits for our
/// `connect`, so a connection dropped from a full accept queue is not noticed by the switch
/// — its call just sits parked. A burst of new calls must fit in the queue.
pub const ACCEPT_BACKLOG: u32 = 4096;

pub use crate::listen::CUT_OFF_LIMIT;

/// Closes out a channel whose handshake failed after `connect` (it has been hung up).
pub type AbandonedHandler = Arc<
    dyn Fn(Arc<ChannelData>, EslError) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// Listener settings.
#[derive(Clone, Debug)]
pub struct ListenerOptions {
    /// CIDRs allowed to connect (`config::EslConfig::allow`).
    pub allow: Vec<String>,
    /// Most connections handled at once (`config::EslConfig::max_calls`).
    pub max_connections: usize,
    /// Handshake and event-stream settings for each connection.
    pub outbound: OutboundOptions,
    /// How long shutdown waits for live connections.
    pub shutdown_grace: Duration,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        Self {
            allow: vec!["127.0.0.0/8".into(), "::1/128".into()],
            max_connections: 20_000,
            outbound: OutboundOptions::default(),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// A bound outbound-socket listener.
pub struct OutboundListener {
    listener: TcpListener,
    options: ListenerOptions,
    counters: Arc<EslCounters>,
    abandoned: Option<AbandonedHandler>,
    cut_off: Option<Box<dyn FnOnce() + Send>>,
}

impl OutboundListener {
    /// Binds `addr` with a deep accept queue ([`ACCEPT_BACKLOG`]).
    pub async fn bind(addr: SocketAddr, options: ListenerOptions) -> std::io::Result<Self> {
        Ok(Self::new(listen::bind(addr, ACCEPT_BACKLOG)?, options))
    }

    /// Wraps an already bound listener.
    pub fn new(listener: TcpListener, options: ListenerOptions) -> Self {
        Self {
            listener,
            options,
            counters: Arc::new(EslCounters::default()),
            abandoned: None,
            cut_off: None,
        }
    }

    /// Runs `handler` for a channel whose handshake failed after `connect`.
    pub fn on_abandoned(mut self, handler: AbandonedHandler) -> Self {
        self.abandoned = Some(handler);
        self
    }

    /// Called once when the shutdown grace expires with connections still live.
    pub fn on_cut_off(mut self, hook: impl FnOnce() + Send + 'static) -> Self {
        self.cut_off = Some(Box::new(hook));
        self
    }

    /// Shares `counters` (e.g. with the metrics registry) instead of fresh ones.
    pub fn with_counters(mut self, counters: Arc<EslCounters>) -> Self {
        self.counters = counters;
        self
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The counters this listener and its connections update.
    pub fn counters(&self) -> Arc<EslCounters> {
        self.counters.clone()
    }

    /// Accepts until `shutdown` completes (the shared accept loop, [`crate::listen`]).
    /// `handler` runs once per successful handshake, in that connection's own task, and
    /// owns the call from there.
    pub async fn run<H, F>(self, handler: H, shutdown: impl Future<Output = ()>)
    where
        H: Fn(OutboundConnection, EventStream) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let gate = Gate {
            protocol: "ESL",
            allow: self.options.allow.clone(),
            max_connections: self.options.max_connections,
            shutdown_grace: self.options.shutdown_grace,
        };
        let handler = Arc::new(handler);
        let outbound = Arc::new(self.options.outbound.clone());
        let counters = self.counters.clone();
        let abandoned = self.abandoned.clone();
        listen::accept_until(
            self.listener,
            &gate,
            self.counters,
            shutdown,
            self.cut_off,
            move |stream, peer| {
                let handler = handler.clone();
                let outbound = outbound.clone();
                let counters = counters.clone();
                let abandoned = abandoned.clone();
                async move {
                    serve_connection(stream, peer, &outbound, counters, &*handler, abandoned).await
                }
            },
        )
        .await;
    }
}

async fn serve_connection<H, F>(
    stream: TcpStream,
    peer: SocketAddr,
    options: &OutboundOptions,
    counters: Arc<EslCounters>,
    handler: &H,
    abandoned: Option<AbandonedHandler>,
) where
    H: Fn(OutboundConnection, EventStream) -> F,
    F: Future<Output = ()>,
{
    // Boxed: unboxed, the handshake's state machine is part of this connection's task
    // for the call's whole life, though it is over once the call starts (2.5 KiB of every
    // parked call: SPEC §9).
    let handshake = Box::pin(OutboundConnection::handshake_checked(
        stream,
        peer,
        options,
        counters.clone(),
    ));
    match handshake.await {
        Ok((conn, events)) => handler(conn, events).await,
        Err(failure) => {
            let e = failure.error;
            bump(&counters.handshake_failures);
            if let Some(channel) = failure.channel {
                tracing::warn!(peer = %peer, uuid = ?channel.uuid(), error = %e, "ESL handshake failed after connect; the channel was hung up");
                if let Some(abandoned) = abandoned {
                    abandoned(channel, e).await;
                }
                return;
            }
            match &e {
                // A TCP health check: connected and left without a word.
                EslError::Closed(crate::esl::CloseReason::Eof) => {
                    tracing::info!(peer = %peer, "ESL peer closed before the handshake")
                }
                _ => tracing::warn!(peer = %peer, error = %e, "ESL handshake failed"),
            }
        }
    }
}

crate::listen::accept_counters!(EslCounters);
