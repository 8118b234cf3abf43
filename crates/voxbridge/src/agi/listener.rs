//! The FastAGI listener: Asterisk's `AGI(agi://host:port)` connects here once per channel
//! (SPEC §16). Admission (allow-list, connection limit, one task per connection) and the
//! drain on shutdown are the accept loop it shares with the ESL listener,
//! [`crate::listen`]; this module brings the FastAGI side: each connection's task reads the
//! environment under its own timeout and runs the handler. A peer that sends garbage, a
//! huge line or closes mid-handshake loses only its own connection (logged, counted); a
//! panicking handler ends only its own task.

use crate::agi::connection::{AgiConnection, AgiError, AgiEvents, CloseReason};
use crate::listen::{self, Gate};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

pub use crate::listen::CUT_OFF_LIMIT;

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
        Ok(Self::new(listen::bind(addr, 1024)?, options))
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
    pub async fn run<H, F>(self, handler: H, shutdown: impl Future<Output = ()>)
    where
        H: Fn(AgiConnection, AgiEvents) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let gate = Gate {
            protocol: "FastAGI",
            allow: self.options.allow.clone(),
            max_connections: self.options.max_connections,
            shutdown_grace: self.options.shutdown_grace,
        };
        let handler = Arc::new(handler);
        let counters = self.counters.clone();
        let timeout = self.options.handshake_timeout;
        listen::accept_until(
            self.listener,
            &gate,
            self.counters,
            shutdown,
            self.cut_off,
            move |stream, peer| {
                let handler = handler.clone();
                let counters = counters.clone();
                async move { serve(stream, peer, timeout, &counters, &*handler).await }
            },
        )
        .await;
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

crate::listen::accept_counters!(AgiCounters);
