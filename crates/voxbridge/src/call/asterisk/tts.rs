//! Flite safety: the bundled app_flite crashes Asterisk (a libflite segfault, seen live)
//! when two channels synthesise at the same moment, so voxbridge never asks one Asterisk
//! for more than `[asterisk] tts_concurrency` (default 1) Flite runs at once.
//!
//! Decisions:
//! - **One queue per Asterisk server**, shared by every call task of the FastAGI listener
//!   (one Asterisk per deployment so far). It is a [`tokio::sync::Semaphore`], which hands
//!   out permits in the order they were asked for: a fair FIFO, so no call starves.
//! - **A turn lasts until the `EXEC Flite` reply** (or until the connection is gone):
//!   app_flite synthesises the whole text before it plays, and Asterisk replies only once
//!   the application has returned, so a reply means the synthesis is over — even when the
//!   channel was hung up under it (the `HANGUP` notice comes after the reply).
//! - **A call that ends while it waits leaves the queue**: the wait also watches the call's
//!   "channel down" signal (its `HANGUP` notice, its socket closing), and then gives up
//!   without sending anything.
//! - Digits pressed while a Gather's spoken prompt waits for its turn are not heard
//!   (Asterisk drops digits while no command runs); the turn is normally short.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// The Flite queue of one Asterisk server (cheap to clone).
#[derive(Clone, Debug)]
pub struct FliteQueue {
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
}

/// The right to run one Flite synthesis; released when dropped.
#[derive(Debug)]
pub struct FliteTurn {
    _permit: OwnedSemaphorePermit,
}

impl FliteQueue {
    /// A queue letting `concurrency` syntheses run at once (at least 1).
    pub fn new(concurrency: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            waiting: Arc::default(),
        }
    }

    /// Waits for this call's turn, in arrival order; `None` if `down` turns true first
    /// (the channel ended: the call leaves the queue and nothing is synthesised).
    pub async fn turn(&self, down: &mut watch::Receiver<bool>) -> Option<FliteTurn> {
        if *down.borrow() {
            return None;
        }
        let permits = self.permits.clone();
        if let Ok(permit) = permits.clone().try_acquire_owned() {
            return Some(FliteTurn { _permit: permit });
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            waiting = self.waiting.load(Ordering::Relaxed),
            "Flite busy on this Asterisk: the Speak waits for its turn"
        );
        let turn = tokio::select! {
            permit = permits.acquire_owned() => permit.ok().map(|p| FliteTurn { _permit: p }),
            _ = down.wait_for(|d| *d) => None,
        };
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        turn
    }

    /// Calls waiting for their turn now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn turns_are_fair_and_a_call_that_ends_while_waiting_leaves_the_queue() {
        let q = FliteQueue::new(1);
        let (_up, mut never) = watch::channel(false);
        let first = q.turn(&mut never).await.expect("free at once");
        // B waits, then its channel ends: it leaves without a turn.
        let (b_down, mut b_rx) = watch::channel(false);
        let qb = q.clone();
        let b = tokio::spawn(async move { qb.turn(&mut b_rx).await.is_some() });
        // C waits behind B.
        let (_c_up, mut c_rx) = watch::channel(false);
        let qc = q.clone();
        let c = tokio::spawn(async move { qc.turn(&mut c_rx).await.map(|_| ()) });
        while q.waiting() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        b_down.send(true).unwrap();
        assert!(!b.await.unwrap(), "B ended while waiting: no turn");
        assert_eq!(q.waiting(), 1);
        assert!(!c.is_finished(), "C still waits while A holds the turn");
        drop(first);
        c.await.unwrap().expect("C gets the turn once A is done");
    }
}
