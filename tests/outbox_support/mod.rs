//! A real callback receiver for the outbox tests (the one fake app, answering from a
//! script: status, delay, body), and a poll helper.
#![allow(dead_code)]

use crate::common;

use std::time::{Duration, Instant};

/// The callback receiver of these tests is the one fake app (`tests/common/app.rs`),
/// started with a script: `Receiver::start_scripted(port, script, default)` answers the
/// first requests from `script`, then `default` forever.
#[allow(unused_imports)] // each test file uses part of it
pub use common::app::{FakeApp as Receiver, Hit, Reply};

#[allow(unused_imports)] // only some of the files that include this module use it
pub use common::local_http::DeadPort;

/// Polls `check` until it returns `Some`, failing after `limit`.
pub async fn eventually<T>(
    limit: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the outbox worker has looked at the store `n` more times. The way to say
/// "and nothing more was sent" without sleeping and hoping: a row still due would have
/// been claimed (and its request made) by one of these passes. A slow machine only makes
/// this wait longer.
pub async fn after_claim_passes(worker: &voxbridge::app::outbox::OutboxWorker, n: u64) {
    let start = worker.stats().claim_passes;
    eventually(Duration::from_secs(30), "outbox claim passes", async || {
        (worker.stats().claim_passes >= start + n).then_some(())
    })
    .await;
}
