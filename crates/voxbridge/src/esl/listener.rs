//! The outbound-socket listener: FreeSWITCH's `socket` app connects here once per
//! channel (SPEC §1).
//!
//! The accept loop does as little as possible, so one bad peer never delays the next
//! call: it checks the allow-list (others are closed at once and logged), takes a slot
//! under the connection limit (over the limit: closed and logged), and spawns one task per
//! connection. That task runs the handshake under its own timeout and then the handler.
//! A protocol error closes only that connection (logged, counted in
//! [`EslCounters::protocol_errors`]); a panicking handler only ends its own task.
//!
//! A handshake that fails after `connect` has taken a channel over: it is hung up before
//! the socket closes (a closed socket leaves a live call parked, reference §2.7) and
//! handed to the [`abandoned`](OutboundListener::on_abandoned) handler, which closes the
//! call out with a record.
//!
//! Shutdown: when the `shutdown` future completes the loop stops accepting and waits up
//! to [`ListenerOptions::shutdown_grace`] for live connections to finish. Then it calls
//! the [`cut-off`](OutboundListener::on_cut_off) hook (the call driver hangs every call
//! still up and closes it out with its record), waits up to [`CUT_OFF_LIMIT`] more, and
//! only then aborts what is left.

use crate::config::cidr_allows;
use crate::esl::counters::{bump, EslCounters};
use crate::esl::event::ChannelData;
use crate::esl::outbound::{EventStream, OutboundConnection, OutboundOptions};
use crate::esl::EslError;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Accept queue asked of the kernel (which caps it at `net.core.somaxconn`).
///
/// The usual 128 is too shallow for a switch: in outbound mode the switch waits for our
/// `connect`, so a connection dropped from a full accept queue is not noticed by the switch
/// — its call just sits parked. A burst of new calls must fit in the queue.
pub const ACCEPT_BACKLOG: u32 = 4096;

/// How long the calls cut off at the end of the shutdown grace get to hang up and hand
/// their records over before their tasks are aborted.
pub const CUT_OFF_LIMIT: Duration = Duration::from_secs(10);

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
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        Ok(Self::new(socket.listen(ACCEPT_BACKLOG)?, options))
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

    /// Accepts until `shutdown` completes. `handler` runs once per successful handshake,
    /// in that connection's own task, and owns the call from there.
    pub async fn run<H, F>(mut self, handler: H, shutdown: impl Future<Output = ()>)
    where
        H: Fn(OutboundConnection, EventStream) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let limit = Arc::new(Semaphore::new(self.options.max_connections.max(1)));
        let outbound = Arc::new(self.options.outbound.clone());
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    log_join(joined);
                    continue;
                }
                accepted = self.listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::error!(error = %e, "ESL listener accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if !cidr_allows(&self.options.allow, peer.ip()) {
                bump(&self.counters.rejected_not_allowed);
                tracing::warn!(peer = %peer, "ESL connection from a peer outside the allow-list; closed");
                drop(stream);
                continue;
            }
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                bump(&self.counters.rejected_over_limit);
                tracing::warn!(peer = %peer, limit = self.options.max_connections, "ESL connection limit reached; connection closed");
                drop(stream);
                continue;
            };
            bump(&self.counters.accepted);
            let handler = handler.clone();
            let outbound = outbound.clone();
            let counters = self.counters.clone();
            let abandoned = self.abandoned.clone();
            tasks.spawn(async move {
                let _permit = permit;
                let _active = ActiveGuard::new(&counters);
                serve_connection(
                    stream,
                    peer,
                    &outbound,
                    counters.clone(),
                    &*handler,
                    abandoned,
                )
                .await;
            });
        }
        drop(self.listener);
        let live = tasks.len();
        if live > 0 {
            tracing::info!(live, grace = ?self.options.shutdown_grace, "ESL listener stopped accepting; waiting for live calls");
        }
        let drained = tokio::time::timeout(self.options.shutdown_grace, async {
            while let Some(joined) = tasks.join_next().await {
                log_join(joined);
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = tasks.len(),
                "ESL shutdown grace expired; hanging up the calls still up"
            );
            if let Some(cut_off) = self.cut_off.take() {
                cut_off();
            }
            let closed = tokio::time::timeout(CUT_OFF_LIMIT, async {
                while let Some(joined) = tasks.join_next().await {
                    log_join(joined);
                }
            })
            .await;
            if closed.is_err() {
                tracing::error!(
                    left = tasks.len(),
                    "calls still not closed after the cut-off; aborting them (their live rows \
                     are closed out at the next start)"
                );
                tasks.shutdown().await;
            }
        }
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
    match OutboundConnection::handshake_checked(stream, peer, options, counters.clone()).await {
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

fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        if e.is_panic() {
            tracing::error!(error = %e, "ESL connection task panicked");
        }
    }
}

/// Keeps [`EslCounters::active`] right even if the handler panics.
struct ActiveGuard<'a>(&'a EslCounters);

impl<'a> ActiveGuard<'a> {
    fn new(c: &'a EslCounters) -> Self {
        c.active.fetch_add(1, Ordering::Relaxed);
        Self(c)
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}
