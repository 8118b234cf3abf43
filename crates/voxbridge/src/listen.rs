//! The accept loop both switch listeners share: FreeSWITCH's outbound Event Socket
//! (`crate::esl::listener`) and Asterisk's FastAGI (`crate::agi::listener`) are the same
//! shape — the switch opens one TCP connection per channel — so they are admitted, run
//! and drained on shutdown by one piece of code; each protocol brings only its handshake.
//!
//! The loop does as little as possible, so one bad peer never delays the next call: it
//! checks the allow-list (others are closed at once and logged), takes a slot under the
//! connection limit (over the limit: closed and logged), and spawns one task per
//! connection running the protocol's `serve`. A panicking connection task ends only itself
//! (logged).
//!
//! Shutdown: when the `shutdown` future completes the loop stops accepting ("`<protocol>`
//! listener stopped accepting; waiting for live calls" — operators and tests wait for that
//! line) and waits up to [`Gate::shutdown_grace`] for live connections to finish. Then it
//! calls the cut-off hook (the call driver hangs up every call still up and closes it out
//! with its record), waits up to [`CUT_OFF_LIMIT`] more, and only then aborts what is left
//! (their live rows are closed out by reconciliation at the next start).
//!
//! This module sits on the lowest floor: it knows TCP and CIDRs, nothing of a switch.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// How long the calls cut off at the end of the shutdown grace get to hang up and hand
/// their records over before their tasks are aborted.
pub const CUT_OFF_LIMIT: Duration = Duration::from_secs(10);

/// Binds `addr` (address reuse on, so a restart does not wait for TIME_WAIT) with an
/// accept queue of `backlog` (the kernel caps it at `net.core.somaxconn`).
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Who may connect and how many at once, and how long shutdown waits.
#[derive(Clone, Debug)]
pub struct Gate {
    /// The protocol's name in the log lines (`ESL`, `FastAGI`).
    pub protocol: &'static str,
    /// CIDRs allowed to connect.
    pub allow: Vec<String>,
    /// Most connections handled at once.
    pub max_connections: usize,
    /// How long shutdown waits for live connections before the cut-off.
    pub shutdown_grace: Duration,
}

/// The counters the accept loop keeps; each listener's own counters type has them.
pub trait AcceptCounters: Send + Sync + 'static {
    /// Connections admitted and handed to a task.
    fn accepted(&self) -> &AtomicU64;
    /// Peers outside the allow-list, closed at once.
    fn rejected_not_allowed(&self) -> &AtomicU64;
    /// Peers refused because the connection limit was reached.
    fn rejected_over_limit(&self) -> &AtomicU64;
    /// Connections being handled now (a gauge).
    fn active(&self) -> &AtomicU64;
}

/// Implements [`AcceptCounters`] for a counters type with fields of those names.
macro_rules! accept_counters {
    ($counters:ty) => {
        impl $crate::listen::AcceptCounters for $counters {
            fn accepted(&self) -> &std::sync::atomic::AtomicU64 {
                &self.accepted
            }
            fn rejected_not_allowed(&self) -> &std::sync::atomic::AtomicU64 {
                &self.rejected_not_allowed
            }
            fn rejected_over_limit(&self) -> &std::sync::atomic::AtomicU64 {
                &self.rejected_over_limit
            }
            fn active(&self) -> &std::sync::atomic::AtomicU64 {
                &self.active
            }
        }
    };
}
pub(crate) use accept_counters;

/// Accepts on `listener` until `shutdown` completes, runs `serve(stream, peer)` in its own
/// task for every admitted connection, then drains as the module docs say.
pub async fn accept_until<C, S, F>(
    listener: TcpListener,
    gate: &Gate,
    counters: Arc<C>,
    shutdown: impl Future<Output = ()>,
    cut_off: Option<Box<dyn FnOnce() + Send>>,
    serve: S,
) where
    C: AcceptCounters,
    S: Fn(TcpStream, SocketAddr) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let protocol = gate.protocol;
    let limit = Arc::new(Semaphore::new(gate.max_connections.max(1)));
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                log_join(protocol, joined);
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::error!(error = %e, "{protocol} listener accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !cidr_allows(&gate.allow, peer.ip()) {
            bump(counters.rejected_not_allowed());
            tracing::warn!(peer = %peer, "{protocol} connection from a peer outside the allow-list; closed");
            continue;
        }
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            bump(counters.rejected_over_limit());
            tracing::warn!(peer = %peer, limit = gate.max_connections, "{protocol} connection limit reached; connection closed");
            continue;
        };
        bump(counters.accepted());
        let active = Active::new(counters.clone());
        let connection = serve(stream, peer);
        tasks.spawn(async move {
            let _permit = permit;
            let _active = active;
            connection.await;
        });
    }
    drop(listener);
    drain(gate, tasks, cut_off).await;
}

/// Waits out the shutdown grace, cuts off what is left, then aborts what still is.
async fn drain(gate: &Gate, mut tasks: JoinSet<()>, cut_off: Option<Box<dyn FnOnce() + Send>>) {
    let protocol = gate.protocol;
    let live = tasks.len();
    if live > 0 {
        tracing::info!(live, grace = ?gate.shutdown_grace, "{protocol} listener stopped accepting; waiting for live calls");
    }
    if join_all_within(protocol, &mut tasks, gate.shutdown_grace).await {
        return;
    }
    tracing::warn!(
        left = tasks.len(),
        "{protocol} shutdown grace expired; hanging up the calls still up"
    );
    if let Some(cut_off) = cut_off {
        cut_off();
    }
    if !join_all_within(protocol, &mut tasks, CUT_OFF_LIMIT).await {
        tracing::error!(
            left = tasks.len(),
            "{protocol} calls still not closed after the cut-off; aborting them (their live \
             rows are closed out at the next start)"
        );
        tasks.shutdown().await;
    }
}

/// True when every task ended within `limit`.
async fn join_all_within(protocol: &str, tasks: &mut JoinSet<()>, limit: Duration) -> bool {
    tokio::time::timeout(limit, async {
        while let Some(joined) = tasks.join_next().await {
            log_join(protocol, joined);
        }
    })
    .await
    .is_ok()
}

fn log_join(protocol: &str, joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        if e.is_panic() {
            tracing::error!(error = %e, "{protocol} connection task panicked");
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Keeps the `active` gauge right even if the connection's task panics or is aborted.
struct Active<C: AcceptCounters>(Arc<C>);

impl<C: AcceptCounters> Active<C> {
    fn new(counters: Arc<C>) -> Self {
        counters.active().fetch_add(1, Ordering::Relaxed);
        Self(counters)
    }
}

impl<C: AcceptCounters> Drop for Active<C> {
    fn drop(&mut self) {
        self.0.active().fetch_sub(1, Ordering::Relaxed);
    }
}

/// Parses `a.b.c.d/n` or `x::y/n` into (network, prefix length).
pub fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = match text.split_once('/') {
        Some((ip, len)) => (ip.parse::<IpAddr>().ok()?, len.parse::<u8>().ok()?),
        None => {
            let ip = text.parse::<IpAddr>().ok()?;
            (ip, if ip.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}

/// Whether `peer` lies inside any of the CIDRs (IPv4-mapped IPv6 peers count as IPv4).
pub fn cidr_allows(allow: &[String], peer: IpAddr) -> bool {
    let peer = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(peer),
        v4 => v4,
    };
    allow
        .iter()
        .filter_map(|c| parse_cidr(c))
        .any(|(net, len)| match (net, peer) {
            (IpAddr::V4(n), IpAddr::V4(p)) => {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                u32::from(n) & mask == u32::from(p) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(p)) => {
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                u128::from(n) & mask == u128::from(p) & mask
            }
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matching() {
        let allow = vec!["127.0.0.0/8".to_string(), "::1/128".to_string()];
        assert!(cidr_allows(&allow, "127.0.0.1".parse().unwrap()));
        assert!(cidr_allows(&allow, "::1".parse().unwrap()));
        assert!(cidr_allows(&allow, "::ffff:127.0.0.5".parse().unwrap()));
        assert!(!cidr_allows(&allow, "10.0.0.1".parse().unwrap()));
        assert!(parse_cidr("10.0.0.0/33").is_none());
    }
}
