//! What only the SQLite store does, on real files: how it behaves when the file is locked,
//! damaged or from a newer build, and `:memory:`. The behaviour every store shares is in
//! `store_behaviour.rs`, which runs on SQLite too.

use crate::store_support::{claim_all, live, now, record, targets};
use std::sync::Arc;
use std::time::Duration;
use time::macros::datetime;
use voxbridge::app::callbacks;
use voxbridge::store::sqlite::{SqliteOptions, SqliteStore};
use voxbridge::store::{
    self, AttemptResult, DeliveryState, FinishOutcome, StoreErrorKind, StoreHandle,
};

fn fast_busy() -> SqliteOptions {
    SqliteOptions {
        busy_timeout: Duration::from_millis(20),
        ..SqliteOptions::default()
    }
}

/// Holds the database's write lock from another connection, as another process could.
fn lock_database(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_delays_the_record_but_never_loses_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vb.db");
    let store: StoreHandle =
        Arc::new(SqliteStore::open(path.to_str().unwrap(), fast_busy()).unwrap());
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    store.call_started(live("locked", "MA1", t0)).await.unwrap();

    let lock = lock_database(&path);
    let rec = record("locked", "MA1", t0);
    let cbs = callbacks::for_call(&rec, &targets());
    let finishing = {
        let store = store.clone();
        tokio::spawn(async move { store.finish_call(rec, cbs).await })
    };
    // The store reports the trouble while it retries...
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.health().error_count < 2 {
        assert!(std::time::Instant::now() < deadline, "no error reported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let health = store.health();
    assert!(!health.ok);
    assert!(
        health.last_error.as_deref().unwrap().contains("busy"),
        "{health:?}"
    );
    assert!(!finishing.is_finished(), "finish_call must keep retrying");
    // ...and the record lands once the lock is gone.
    drop(lock);
    let outcome = tokio::time::timeout(Duration::from_secs(15), finishing)
        .await
        .expect("finish_call completes after the lock is released")
        .unwrap()
        .unwrap();
    assert_eq!(outcome, FinishOutcome::Finished);
    assert!(store.cdr("MA1", "locked").await.unwrap().is_some());
    assert!(store.health().ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_call_writes_give_up_after_a_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vb.db");
    let store: StoreHandle =
        Arc::new(SqliteStore::open(path.to_str().unwrap(), fast_busy()).unwrap());
    let _lock = lock_database(&path);
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    // Bounded: returns an error (the call goes on) instead of waiting for the lock.
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        store.call_started(live("l", "MA1", t0)),
    )
    .await
    .expect("bounded")
    .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Busy);
    assert!(err.is_transient());
    assert!(
        store.health().error_count >= 6,
        "first try + 5 retries, each counted"
    );
}

/// The group commit's linger in the tests below: stretched so that what they measure is
/// which behaviour happened, not how fast the machine is.
const LINGER: Duration = Duration::from_secs(3);

/// A store in a fresh file whose group commit lingers [`LINGER`].
fn lingering_store() -> (tempfile::TempDir, StoreHandle) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vb.db");
    let options = SqliteOptions {
        group_commit_linger: LINGER,
        ..SqliteOptions::default()
    };
    let store: StoreHandle = Arc::new(SqliteStore::open(path.to_str().unwrap(), options).unwrap());
    (dir, store)
}

/// Group commit (issue 16): under traffic an answer time waits for company, but a live
/// row — the call's first command waits for it — is committed at once and alone: the
/// held answer time keeps waiting and does not ride along (so the live row's commit
/// needs no share of the batch). The linger is stretched to 3 s so that what is measured
/// is which behaviour happened, not how fast the machine is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_row_does_not_wait_for_a_group_commit_linger() {
    let (_dir, store) = lingering_store();
    let linger = LINGER;
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    let answered_at = datetime!(2026-04-09 10:00:01 UTC);
    let answer_of = |uuid: &'static str| {
        let store = store.clone();
        async move {
            store
                .all_live_calls()
                .await
                .unwrap()
                .into_iter()
                .find(|c| c.call_uuid == uuid)
                .expect("the call is live")
                .answer_time
        }
    };

    // Without a live row behind it, an answer time right after a commit (traffic) lingers.
    store.call_started(live("a", "MA1", t0)).await.unwrap();
    let started = std::time::Instant::now();
    store.call_answered("a", answered_at).await.unwrap();
    assert!(
        started.elapsed() >= linger / 2,
        "the answer time did not linger: {:?}",
        started.elapsed()
    );

    // A live row queued behind a held answer time commits at once, without it.
    store.call_started(live("b", "MA1", t0)).await.unwrap();
    let answering = {
        let store = store.clone();
        tokio::spawn(async move { store.call_answered("b", answered_at).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    store.call_started(live("c", "MA1", t0)).await.unwrap();
    assert!(
        started.elapsed() < linger / 2,
        "the live row waited for the linger: {:?}",
        started.elapsed()
    );
    assert!(
        answer_of("c").await.is_none(),
        "c is live (committed) and unanswered"
    );
    assert!(
        !answering.is_finished() && answer_of("b").await.is_none(),
        "the held answer time was committed with the live row"
    );
    // The held write still commits, at the end of its linger.
    tokio::time::timeout(linger, answering)
        .await
        .expect("the held answer time committed within its linger")
        .unwrap()
        .unwrap();
    assert_eq!(answer_of("b").await, Some(answered_at));
}

/// Group commit (issue 16): a record lingers with the other held writes, but the outbox's
/// claim and a retry's result do not — the delivery worker claims again only once a
/// claim is committed and holds a slot until a retry's time is recorded, so lingering
/// them would cap delivery at about `concurrency / (2 × linger)` callbacks per second. A
/// settled result does linger (the worker gave its slot back first), and its row is not
/// handed out again meanwhile. The linger is stretched to 3 s so what is measured is
/// which happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_claims_and_retries_do_not_wait_for_a_group_commit_linger_but_a_settled_result_does()
{
    let (_dir, store) = lingering_store();
    let linger = LINGER;
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    store.call_started(live("o", "MA1", t0)).await.unwrap();
    // Right after a commit (traffic): the record is held for its linger.
    let rec = record("o", "MA1", t0);
    let cb = callbacks::hangup_callback(&rec, "http://127.0.0.1:9/h");
    let id = cb.delivery_id.clone();
    let started = std::time::Instant::now();
    store.finish_call(rec, vec![cb]).await.unwrap();
    assert!(
        started.elapsed() >= linger / 2,
        "the record did not linger: {:?}",
        started.elapsed()
    );
    // Still traffic: the claim and a retry's result commit at once (the delivery
    // worker waits for both).
    let started = std::time::Instant::now();
    let claimed = claim_all(&*store).await;
    assert!(
        started.elapsed() < linger / 2,
        "the claim waited for the linger: {:?}",
        started.elapsed()
    );
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].delivery_id, id);
    let started = std::time::Instant::now();
    let retry = AttemptResult::Retry {
        status: Some(503),
        error: "HTTP 503".into(),
        next_attempt_at: now() - time::Duration::seconds(1),
    };
    store.record_attempt(&id, now(), retry).await.unwrap();
    assert!(
        started.elapsed() < linger / 2,
        "the retry's result waited for the linger: {:?}",
        started.elapsed()
    );
    let claimed = claim_all(&*store).await;
    assert_eq!(claimed.len(), 1, "the retry is due again");
    // A settled result lingers (the worker gave its slot back before writing it), and
    // while it is held the row stays claimed: a claim does not hand it out again.
    let started = std::time::Instant::now();
    let held = {
        let (store, id) = (store.clone(), id.clone());
        tokio::spawn(async move {
            store
                .record_attempt(&id, now(), AttemptResult::Delivered { status: 200 })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        claim_all(&*store).await.is_empty(),
        "a row whose delivery is being written was handed out again"
    );
    held.await.unwrap().unwrap();
    assert!(
        started.elapsed() >= linger / 2,
        "the delivered result did not ride a group commit: {:?}",
        started.elapsed()
    );
    let cdr = store.cdr("MA1", "o").await.unwrap().expect("the CDR");
    assert_eq!(cdr.deliveries[0].status, DeliveryState::Delivered);
}

#[tokio::test]
async fn a_damaged_file_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vb.db");
    std::fs::write(&path, vec![0x5Au8; 8192]).unwrap();
    let err = match store::open(&format!("sqlite://{}", path.display())).await {
        Ok(_) => panic!("a garbage file opened as a store"),
        Err(e) => e,
    };
    assert_eq!(err.kind, StoreErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("vb.db"), "names the file: {err}");
}

#[tokio::test]
async fn a_database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vb.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
    }
    let err = match store::open(&format!("sqlite://{}", path.display())).await {
        Ok(_) => panic!("opened a newer schema"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

#[tokio::test]
async fn urls_of_no_store_are_refused() {
    for url in ["mysql://x", "sqlite://", "voxbridge.db"] {
        let err = match store::open(url).await {
            Ok(_) => panic!("{url} opened"),
            Err(e) => e,
        };
        assert_eq!(err.kind, StoreErrorKind::Invalid, "{url}: {err}");
        assert!(err.to_string().contains("store.url"), "{err}");
    }
}

#[tokio::test]
async fn an_in_memory_store_works_across_connections() {
    let store = store::open("sqlite://:memory:").await.unwrap();
    let other = store::open("sqlite://:memory:").await.unwrap();
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    store.call_started(live("m1", "MA1", t0)).await.unwrap();
    // Reads go through a separate connection and see the write.
    assert!(store.live_call("MA1", "m1").await.unwrap().is_some());
    // Each :memory: store is private.
    assert!(other.live_call("MA1", "m1").await.unwrap().is_none());
    let rec = record("m1", "MA1", t0);
    store
        .finish_call(rec.clone(), callbacks::for_call(&rec, &targets()))
        .await
        .unwrap();
    assert_eq!(store.cdr("MA1", "m1").await.unwrap().unwrap().record, rec);
}

/// A batch is first run without a savepoint per write (issue 16); when one write in it
/// fails, the batch runs again with savepoints, so only that write is refused and the
/// others — here another call's record with its callbacks, held in the same group
/// commit — still commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_write_in_a_group_commit_fails_alone() {
    let (_dir, store) = lingering_store();
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    // A live row commits at once; right after it the records linger together.
    store.call_started(live("good", "MA1", t0)).await.unwrap();
    let good = record("good", "MA1", t0);
    let good_cbs = callbacks::for_call(&good, &targets());
    let bad = record("bad", "MA1", t0);
    let first = callbacks::hangup_callback(&bad, "http://127.0.0.1:9/a");
    let mut second = callbacks::status_callback(&bad, "http://127.0.0.1:9/b");
    second.delivery_id = first.delivery_id.clone();
    let (good_done, bad_done) = tokio::join!(
        store.finish_call(good, good_cbs.clone()),
        store.finish_call(bad, vec![first, second])
    );
    assert_eq!(good_done.unwrap(), FinishOutcome::Finished);
    assert_eq!(
        bad_done.unwrap_err().kind,
        StoreErrorKind::Constraint,
        "the bad record is refused"
    );
    let cdr = store
        .cdr("MA1", "good")
        .await
        .unwrap()
        .expect("the good CDR");
    assert_eq!(cdr.deliveries.len(), good_cbs.len());
    assert_eq!(store.cdr("MA1", "bad").await.unwrap(), None);
    assert_eq!(claim_all(&*store).await.len(), good_cbs.len());
}

/// WAL checkpoints run on their own thread (issue 16): the writer never copies the WAL
/// into the database file inside a commit (a live row would wait behind it). With a low
/// threshold the checkpoint thread runs; with one never reached the WAL just grows past
/// SQLite's usual 1,000 pages — nobody else checkpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_checkpoints_run_on_their_own_thread_not_in_the_writers_commits() {
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    for (pages, calls, expect_checkpoints) in [(16, 20, true), (i32::MAX, 150, false)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vb.db");
        let options = SqliteOptions {
            checkpoint_pages: pages,
            ..SqliteOptions::default()
        };
        let sqlite = Arc::new(SqliteStore::open(path.to_str().unwrap(), options).unwrap());
        let store: StoreHandle = sqlite.clone();
        for i in 0..calls {
            let uuid = format!("w-{i}");
            store.call_started(live(&uuid, "MA1", t0)).await.unwrap();
            let rec = record(&uuid, "MA1", t0);
            let cbs = callbacks::for_call(&rec, &targets());
            store.finish_call(rec, cbs).await.unwrap();
        }
        let wal_pages = std::fs::metadata(dir.path().join("vb.db-wal"))
            .unwrap()
            .len()
            / 4096;
        if expect_checkpoints {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while sqlite.checkpoints() == 0 {
                assert!(std::time::Instant::now() < deadline, "no checkpoint ran");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(wal_pages < 1000, "the WAL was reused: {wal_pages} pages");
        } else {
            assert_eq!(sqlite.checkpoints(), 0);
            // Frames in the WAL since it was last reset: a checkpoint by the writer
            // (SQLite's automatic one, at 1,000) would have reset it.
            let in_wal: i64 = rusqlite::Connection::open(&path)
                .unwrap()
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
                .unwrap();
            assert!(
                in_wal > 1000,
                "something else checkpointed the WAL: {in_wal} frames in it ({wal_pages} pages on disk)"
            );
        }
        assert_eq!(store.cdrs("MA1", 1, 0).await.unwrap().total, calls);
    }
}
