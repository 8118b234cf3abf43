//! WAL checkpoints on their own thread and connection, never on the writer's.
//!
//! SQLite's default is to checkpoint inside the commit that takes the WAL past 1,000
//! pages: the committing thread copies those pages into the database file and fsyncs
//! it before it returns. Here that thread is the one writer, so every ~170 calls a live
//! row — which a call's first command waits for — queued behind a few milliseconds of
//! copying and an fsync of the whole file (seconds when the disk stalls). The writer
//! now only notices the size (SQLite's WAL hook, after each commit) and wakes this
//! thread, which runs a `PASSIVE` checkpoint on its own connection: it copies what no
//! reader still needs, never waits for a lock, and the writer keeps committing meanwhile
//! (issue 16). What a checkpoint guarantees is unchanged: committed frames are in the WAL
//! (and fsynced as their commits said) before they are copied.

use rusqlite::Connection;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// WAL size, in pages, from which a checkpoint is asked for: SQLite's own default.
pub(super) const CHECKPOINT_PAGES: i32 = 1000;

/// The checkpoint thread; stopped (and joined) when dropped.
pub(super) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    due: AtomicBool,
    stop: AtomicBool,
    passes: AtomicU64,
}

impl Checkpointer {
    /// Starts the thread on `conn` (its own connection to the database file) and
    /// installs the writer's side on `writer`: the WAL hook that wakes the thread once
    /// the WAL holds `pages` pages. Installing a WAL hook also ends SQLite's automatic
    /// checkpoints on `writer`.
    pub(super) fn start(
        writer: &mut Connection,
        conn: Connection,
        pages: i32,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            due: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            passes: AtomicU64::new(0),
        });
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("voxbridge-store-checkpoint".into())
            .spawn(move || run(conn, &theirs))?;
        let wake = thread.thread().clone();
        let flag = shared.clone();
        writer
            .wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, in_wal: i32| {
                if in_wal >= pages && !flag.due.swap(true, Ordering::AcqRel) {
                    wake.unpark();
                }
                Ok(())
            }))
            .map_err(std::io::Error::other)?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Checkpoints run so far (what the tests watch).
    pub(super) fn passes(&self) -> u64 {
        self.shared.passes.load(Ordering::Acquire)
    }

    /// Stops the thread after the checkpoint it may be running.
    pub(super) fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(conn: Connection, shared: &Shared) {
    loop {
        while !shared.due.swap(false, Ordering::AcqRel) {
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            std::thread::park();
        }
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        // (busy, pages in the WAL, pages copied); PASSIVE never waits for anyone.
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        }) {
            Ok((in_wal, copied)) => {
                tracing::trace!(in_wal, copied, "WAL checkpoint");
            }
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; the next one retries"),
        }
        shared.passes.fetch_add(1, Ordering::AcqRel);
    }
}
