//! The FastAGI listener: Asterisk's `AGI(agi://host:port)` connects here once per channel
//! (SPEC §16). The same rules as the ESL listener (`crate::esl::listener`): the accept
//! loop only checks the allow-list (others closed at once, logged), takes a slot under the
//! connection limit (over it: closed, logged) and spawns one task per connection, which
//! reads the environment under its own timeout and runs the handler. A peer that sends
//! garbage, a huge line or closes mid-handshake loses only its own connection (logged,
//! counted); a panicking handler ends only its own task.
//!
//! Shutdown: when `shutdown` completes the loop stops accepting and waits up to
//! `shutdown_grace` for live connections; then it calls the cut-off hook (the driver
//! hangs up every call still up and closes it out), waits up to [`CUT_OFF_LIMIT`], and
//! only then aborts what is left.

use crate::agi::connection::{AgiConnection, AgiError, AgiEvents, CloseReason};
use crate::config::cidr_allows;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// How long the calls cut off at the end of the shutdown grace get before their tasks
/// are aborted.
pub const CUT_OFF_LIMIT: Duration = Duration::from_secs(10);

/// What the listener saw (for logs, tests and metrics).
#[derive(Debug, Default)]
pub struct AgiCounters {
    pub accepted: AtomicU64,
    pub rejected_not_allowed: AtomicU64,
    pub rejected_over_limit: AtomicU64,
    /// Connections closed because the environment was not FastAGI, too long, or late.
    pub handshake_failures: AtomicU64,
    pub active: AtomicU64,
}

impl AgiCounters {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Listener settings (`[asterisk]` in the configuration).
#[derive(Clone, Debug)]
pub struct AgiListenerOptions {
    pub allow: Vec<String>,
    pub max_connections: usize,
    /// Time the switch has to send its environment.
    pub handshake_timeout: Duration,
    pub shutdown_grace: Duration,
}

impl Default for AgiListenerOptions {
    fn default() -> Self {
        Self {
            allow: vec!["127.0.0.0/8".into(), "::1/128".into()],
            max_connections: 20_000,
            handshake_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// A bound FastAGI listener.
pub struct AgiListener {
    listener: TcpListener,
    options: AgiListenerOptions,
    counters: Arc<AgiCounters>,
    cut_off: Option<Box<dyn FnOnce() + Send>>,
}

impl AgiListener {
    pub async fn bind(addr: SocketAddr, options: AgiListenerOptions) -> std::io::Result<Self> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        Ok(Self::new(socket.listen(1024)?, options))
    }

    pub fn new(listener: TcpListener, options: AgiListenerOptions) -> Self {
        Self {
            listener,
            options,
            counters: Arc::default(),
            cut_off: None,
        }
    }

    /// Called once when the shutdown grace expires with connections still live.
    pub fn on_cut_off(mut self, hook: impl FnOnce() + Send + 'static) -> Self {
        self.cut_off = Some(Box::new(hook));
        self
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn counters(&self) -> Arc<AgiCounters> {
        self.counters.clone()
    }

    /// Accepts until `shutdown` completes; `handler` runs once per connection whose
    /// environment was read, in that connection's own task.
    pub async fn run<H, F>(mut self, handler: H, shutdown: impl Future<Output = ()>)
    where
        H: Fn(AgiConnection, AgiEvents) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let limit = Arc::new(Semaphore::new(self.options.max_connections.max(1)));
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
                    tracing::error!(error = %e, "FastAGI listener accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if !cidr_allows(&self.options.allow, peer.ip()) {
                bump(&self.counters.rejected_not_allowed);
                tracing::warn!(peer = %peer, "FastAGI connection from a peer outside the allow-list; closed");
                continue;
            }
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                bump(&self.counters.rejected_over_limit);
                tracing::warn!(peer = %peer, limit = self.options.max_connections, "FastAGI connection limit reached; connection closed");
                continue;
            };
            bump(&self.counters.accepted);
            let handler = handler.clone();
            let counters = self.counters.clone();
            let timeout = self.options.handshake_timeout;
            tasks.spawn(async move {
                let _permit = permit;
                counters.active.fetch_add(1, Ordering::Relaxed);
                let _active = ActiveGuard(&counters);
                serve(stream, peer, timeout, &counters, &*handler).await;
            });
        }
        drop(self.listener);
        let live = tasks.len();
        if live > 0 {
            tracing::info!(live, grace = ?self.options.shutdown_grace, "FastAGI listener stopped accepting; waiting for live calls");
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
                "FastAGI shutdown grace expired; hanging up the calls still up"
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
                    "FastAGI calls still not closed after the cut-off; aborting them"
                );
                tasks.shutdown().await;
            }
        }
    }
}

async fn serve<H, F>(
    stream: TcpStream,
    peer: SocketAddr,
    timeout: Duration,
    counters: &AgiCounters,
    handler: &H,
) where
    H: Fn(AgiConnection, AgiEvents) -> F,
    F: Future<Output = ()>,
{
    match AgiConnection::accept(stream, peer, timeout).await {
        Ok((conn, events)) => handler(conn, events).await,
        Err(AgiError::Closed(CloseReason::Eof)) => {
            bump(&counters.handshake_failures);
            tracing::info!(peer = %peer, "FastAGI peer closed before sending its environment");
        }
        Err(e) => {
            bump(&counters.handshake_failures);
            tracing::warn!(peer = %peer, error = %e, "FastAGI handshake failed; connection closed");
        }
    }
}

fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        if e.is_panic() {
            tracing::error!(error = %e, "FastAGI connection task panicked");
        }
    }
}

struct ActiveGuard<'a>(&'a AgiCounters);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}
