//! The SQLite store on real files: live calls, finishing a call atomically and once,
//! CDR queries, reopen/migrations, claims, and how it behaves when the file is locked,
//! damaged or from a newer build.

use std::sync::Arc;
use std::time::Duration;
use time::macros::datetime;
use time::OffsetDateTime;
use voxbridge::app::callbacks::{self, CallbackTargets};
use voxbridge::cause::HangupCause;
use voxbridge::document::model::HttpMethod;
use voxbridge::record::call::{CallRecord, Direction, HangupSource};
use voxbridge::record::callback::{CallbackKind, NewCallback};
use voxbridge::store::sqlite::{SqliteOptions, SqliteStore};
use voxbridge::store::{
    self, AttemptResult, ClaimRequest, DeliveryState, FinishOutcome, NewLiveCall, Store,
    StoreErrorKind, StoreHandle,
};

fn live(uuid: &str, account: &str, start: OffsetDateTime) -> NewLiveCall {
    NewLiveCall {
        call_uuid: uuid.into(),
        account_id: account.into(),
        direction: Direction::Inbound,
        from: "+15550001".into(),
        to: "7000".into(),
        caller_name: "Ann".into(),
        forwarded_from: Some("+15559999".into()),
        start_time: start,
        hangup_url: "http://127.0.0.1:9/hangup".into(),
        status_callback_url: "http://127.0.0.1:9/status".into(),
    }
}

fn record(uuid: &str, account: &str, start: OffsetDateTime) -> CallRecord {
    CallRecord {
        call_uuid: uuid.into(),
        account_id: account.into(),
        direction: Direction::Outbound,
        from: "+15550001".into(),
        to: "7000".into(),
        caller_name: "Ann \"the caller\" 😀".into(),
        forwarded_from: None,
        start_time: start,
        answer_time: Some(start + Duration::from_millis(1_500)),
        end_time: start + Duration::from_secs(46),
        duration_secs: 46,
        bill_duration_secs: 44,
        hangup_cause: HangupCause::USER_BUSY,
        hangup_cause_code: 17,
        hangup_cause_name: "Busy Line".into(),
        hangup_source: HangupSource::AnswerXml,
        hangup_reason: "busy".into(),
        sip_status: Some(486),
        caller_abandoned: false,
        notes: vec!["skipped Speak (post-call mode)".into()],
    }
}

fn targets() -> CallbackTargets {
    CallbackTargets {
        hangup_url: "http://127.0.0.1:9/hangup".into(),
        status_callback_url: "http://127.0.0.1:9/status".into(),
        post_call: None,
    }
}

async fn open_file(dir: &tempfile::TempDir) -> StoreHandle {
    let url = format!("sqlite://{}", dir.path().join("vb.db").display());
    store::open(&url).await.expect("open store")
}

fn fast_busy() -> SqliteOptions {
    SqliteOptions {
        busy_timeout: Duration::from_millis(20),
        ..SqliteOptions::default()
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[tokio::test]
async fn live_calls_are_scoped_to_their_account() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_file(&dir).await;
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    store.call_started(live("a1", "MA1", t0)).await.unwrap();
    store
        .call_started(live("a2", "MA1", t0 + Duration::from_secs(1)))
        .await
        .unwrap();
    store.call_started(live("b1", "MA2", t0)).await.unwrap();

    let got = store.live_call("MA1", "a1").await.unwrap().unwrap();
    assert_eq!(got.call_status(), "ringing");
    assert_eq!(got.forwarded_from.as_deref(), Some("+15559999"));
    assert_eq!(got.start_time, t0);
    assert_eq!(got.scheduled_hangup_at, None);
    // Another account cannot see it.
    assert_eq!(store.live_call("MA2", "a1").await.unwrap(), None);
    assert_eq!(store.live_call("MA1", "nope").await.unwrap(), None);

    let answered = t0 + Duration::from_millis(2_250);
    store.call_answered("a1", answered).await.unwrap();
    let sched = t0 + Duration::from_secs(60);
    store.set_scheduled_hangup("a1", Some(sched)).await.unwrap();
    let got = store.live_call("MA1", "a1").await.unwrap().unwrap();
    assert_eq!(got.answer_time, Some(answered));
    assert_eq!(got.call_status(), "in-progress");
    assert_eq!(got.scheduled_hangup_at, Some(sched));
    store.set_scheduled_hangup("a1", None).await.unwrap();
    assert_eq!(
        store
            .live_call("MA1", "a1")
            .await
            .unwrap()
            .unwrap()
            .scheduled_hangup_at,
        None
    );

    assert_eq!(store.live_call_uuids("MA1").await.unwrap(), ["a1", "a2"]);
    assert_eq!(store.live_call_uuids("MA2").await.unwrap(), ["b1"]);
    assert!(store.live_call_uuids("MA3").await.unwrap().is_empty());
    // Writes for an unknown call are harmless no-ops.
    store.call_answered("ghost", t0).await.unwrap();
    assert!(store.health().ok);
}

#[tokio::test]
async fn finish_writes_cdr_callbacks_and_ends_the_live_call_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_file(&dir).await;
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    store.call_started(live("c1", "MA1", t0)).await.unwrap();
    let rec = record("c1", "MA1", t0);
    let cbs = callbacks::for_call(&rec, &targets());
    let ids: Vec<String> = cbs.iter().map(|c| c.delivery_id.clone()).collect();

    let outcome = store.finish_call(rec.clone(), cbs).await.unwrap();
    assert_eq!(outcome, FinishOutcome::Finished);
    assert_eq!(store.live_call("MA1", "c1").await.unwrap(), None);

    let cdr = store.cdr("MA1", "c1").await.unwrap().unwrap();
    assert_eq!(cdr.record, rec, "every CallRecord field round-trips");
    assert_eq!(cdr.deliveries.len(), 2);
    assert_eq!(cdr.deliveries[0].kind, CallbackKind::Hangup);
    assert_eq!(cdr.deliveries[1].kind, CallbackKind::Status);
    assert_eq!(
        cdr.deliveries
            .iter()
            .map(|d| d.delivery_id.clone())
            .collect::<Vec<_>>(),
        ids
    );
    for d in &cdr.deliveries {
        assert_eq!(d.status, DeliveryState::Pending);
        assert_eq!(d.attempts, 0);
        assert_eq!(d.last_status, None);
        assert!(d.next_attempt_at.is_some());
    }
    assert_eq!(store.cdr("MA2", "c1").await.unwrap(), None, "scoped");

    // The second finish (a late hangup) changes nothing: first hangup wins.
    let mut late = record("c1", "MA1", t0);
    late.hangup_source = HangupSource::Api;
    let late_cbs = callbacks::for_call(&late, &targets());
    assert_eq!(
        store.finish_call(late, late_cbs).await.unwrap(),
        FinishOutcome::AlreadyFinished
    );
    let again = store.cdr("MA1", "c1").await.unwrap().unwrap();
    assert_eq!(again.record.hangup_source, HangupSource::AnswerXml);
    assert_eq!(
        again.deliveries.len(),
        2,
        "no callbacks from the late finish"
    );

    // A finished call cannot come back as live.
    store.call_started(live("c1", "MA1", t0)).await.unwrap();
    assert_eq!(store.live_call("MA1", "c1").await.unwrap(), None);
}

#[tokio::test]
async fn a_failure_between_cdr_and_outbox_rows_leaves_neither() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_file(&dir).await;
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    store.call_started(live("x1", "MA1", t0)).await.unwrap();
    let rec = record("x1", "MA1", t0);

    // The CDR insert succeeds, then the second outbox row violates the unique
    // DeliveryID: the transaction must take the CDR and the first row back with it.
    let first = callbacks::hangup_callback(&rec, "http://127.0.0.1:9/a");
    let mut second = callbacks::status_callback(&rec, "http://127.0.0.1:9/b");
    second.delivery_id = first.delivery_id.clone();
    let err = store
        .finish_call(rec.clone(), vec![first, second])
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Constraint, "{err}");

    assert_eq!(store.cdr("MA1", "x1").await.unwrap(), None, "no CDR");
    assert!(
        store.live_call("MA1", "x1").await.unwrap().is_some(),
        "the live row is still there"
    );
    let page = store.cdrs("MA1", 100, 0).await.unwrap();
    assert_eq!(page.total, 0);
    let claimed = claim_all(store.as_ref()).await;
    assert!(claimed.is_empty(), "no outbox row: {claimed:?}");
    let health = store.health();
    assert!(health.error_count >= 1);
    assert!(health.last_error.unwrap().contains("constraint"));

    // A DeliveryID colliding with another call's row fails the same way.
    let other = record("x0", "MA1", t0);
    let taken = callbacks::hangup_callback(&other, "http://127.0.0.1:9/a");
    let taken_id = taken.delivery_id.clone();
    store.finish_call(other, vec![taken]).await.unwrap();
    let mut clash = callbacks::hangup_callback(&rec, "http://127.0.0.1:9/a");
    clash.delivery_id = taken_id;
    assert!(store.finish_call(rec.clone(), vec![clash]).await.is_err());
    assert_eq!(store.cdr("MA1", "x1").await.unwrap(), None);

    // With proper callbacks the same call then finishes normally.
    let cbs = callbacks::for_call(&rec, &targets());
    assert_eq!(
        store.finish_call(rec, cbs).await.unwrap(),
        FinishOutcome::Finished
    );
    assert_eq!(
        store
            .cdr("MA1", "x1")
            .await
            .unwrap()
            .unwrap()
            .deliveries
            .len(),
        2
    );
}

async fn claim_all(store: &dyn Store) -> Vec<voxbridge::store::PendingCallback> {
    let now = now() + Duration::from_secs(1);
    store
        .claim_due_callbacks(ClaimRequest {
            now,
            limit: 10_000,
            claim_until: now + Duration::from_secs(60),
            receiver_room: vec![],
            default_receiver_room: 10_000,
        })
        .await
        .unwrap()
        .rows
}

#[tokio::test]
async fn cdrs_are_listed_newest_first_with_paging() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_file(&dir).await;
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    for i in 0..7u64 {
        let rec = record(
            &format!("call-{i}"),
            "MA1",
            t0 + Duration::from_secs(i * 10),
        );
        store.finish_call(rec, vec![]).await.unwrap();
    }
    store
        .finish_call(record("other", "MA2", t0), vec![])
        .await
        .unwrap();

    let page = store.cdrs("MA1", 3, 0).await.unwrap();
    assert_eq!(page.total, 7);
    let uuids: Vec<_> = page
        .cdrs
        .iter()
        .map(|c| c.record.call_uuid.as_str())
        .collect();
    assert_eq!(uuids, ["call-6", "call-5", "call-4"]);
    let page = store.cdrs("MA1", 3, 6).await.unwrap();
    assert_eq!(page.cdrs.len(), 1);
    assert_eq!(page.cdrs[0].record.call_uuid, "call-0");
    assert!(store.cdrs("MA1", 3, 70).await.unwrap().cdrs.is_empty());
    assert_eq!(store.cdrs("MA2", 20, 0).await.unwrap().total, 1);
}

#[tokio::test]
async fn everything_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    let rec = record("keep", "MA1", t0);
    {
        let store = open_file(&dir).await;
        store
            .call_started(live("still-live", "MA1", t0))
            .await
            .unwrap();
        let cbs = callbacks::for_call(&rec, &targets());
        store.finish_call(rec.clone(), cbs).await.unwrap();
        store.close().await;
        // After close, writes are refused rather than silently dropped.
        let err = store
            .call_started(live("late", "MA1", t0))
            .await
            .unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Closed);
    }
    let store = open_file(&dir).await;
    assert_eq!(store.cdr("MA1", "keep").await.unwrap().unwrap().record, rec);
    assert!(store
        .live_call("MA1", "still-live")
        .await
        .unwrap()
        .is_some());
    assert_eq!(claim_all(store.as_ref()).await.len(), 2);
}

#[tokio::test]
async fn claims_respect_receiver_room_and_are_released_by_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    {
        let store = open_file(&dir).await;
        for i in 0..6 {
            let rec = record(&format!("a{i}"), "MA1", t0);
            let cb = callbacks::hangup_callback(&rec, "http://127.0.0.1:1111/a");
            store.finish_call(rec, vec![cb]).await.unwrap();
        }
        for i in 0..2 {
            let rec = record(&format!("b{i}"), "MA1", t0);
            let cb = callbacks::hangup_callback(&rec, "http://127.0.0.1:2222/b");
            store.finish_call(rec, vec![cb]).await.unwrap();
        }
        let now = now() + Duration::from_millis(10);
        let claim = |room: Vec<(String, usize)>| ClaimRequest {
            now,
            limit: 10,
            claim_until: now + Duration::from_secs(600),
            receiver_room: room,
            default_receiver_room: 2,
        };
        // Two per receiver at most, even though A's rows come first.
        let got = store.claim_due_callbacks(claim(vec![])).await.unwrap();
        let mut receivers: Vec<_> = got.rows.iter().map(|r| r.receiver.clone()).collect();
        receivers.sort();
        assert_eq!(
            receivers,
            [
                "http://127.0.0.1:1111",
                "http://127.0.0.1:1111",
                "http://127.0.0.1:2222",
                "http://127.0.0.1:2222"
            ]
        );
        assert!(got.next_due.unwrap() <= now, "A still has due rows");
        // A receiver with no room gets nothing; claimed rows are not handed out twice.
        let got = store
            .claim_due_callbacks(claim(vec![("http://127.0.0.1:1111".into(), 0)]))
            .await
            .unwrap();
        assert!(got.rows.is_empty(), "{:?}", got.rows);
        let got = store.claim_due_callbacks(claim(vec![])).await.unwrap();
        assert_eq!(got.rows.len(), 2);
        assert!(got.rows.iter().all(|r| r.receiver.ends_with(":1111")));
        // The process "dies" with 6 rows claimed.
    }
    let store = open_file(&dir).await;
    assert_eq!(
        claim_all(store.as_ref()).await.len(),
        8,
        "a restart releases every claim of the previous run"
    );
}

#[tokio::test]
async fn attempts_are_recorded_and_a_delivered_row_stays_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_file(&dir).await;
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    let rec = record("r1", "MA1", t0);
    let cbs = callbacks::for_call(&rec, &targets());
    let (hangup_id, status_id) = (cbs[0].delivery_id.clone(), cbs[1].delivery_id.clone());
    store.finish_call(rec, cbs).await.unwrap();
    let at = now();
    let retry_at = at + Duration::from_secs(3600);
    store
        .record_attempt(
            &hangup_id,
            at,
            AttemptResult::Retry {
                status: Some(503),
                error: "HTTP 503".into(),
                next_attempt_at: retry_at,
            },
        )
        .await
        .unwrap();
    store
        .record_attempt(
            &status_id,
            at,
            AttemptResult::Failed {
                status: Some(404),
                error: "HTTP 404".into(),
            },
        )
        .await
        .unwrap();
    let d = store.cdr("MA1", "r1").await.unwrap().unwrap().deliveries;
    assert_eq!(d[0].status, DeliveryState::Pending);
    assert_eq!(d[0].attempts, 1);
    assert_eq!(d[0].last_status, Some(503));
    assert_eq!(d[0].last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(d[0].next_attempt_at, Some(retry_at));
    assert_eq!(d[1].status, DeliveryState::Failed);
    assert_eq!(d[1].next_attempt_at, None);
    assert!(
        claim_all(store.as_ref()).await.is_empty(),
        "not due, and failed"
    );

    store
        .record_attempt(&hangup_id, at, AttemptResult::Delivered { status: 204 })
        .await
        .unwrap();
    // A late duplicate result cannot take a delivered row back.
    store
        .record_attempt(
            &hangup_id,
            at,
            AttemptResult::Failed {
                status: None,
                error: "late".into(),
            },
        )
        .await
        .unwrap();
    let d = store.cdr("MA1", "r1").await.unwrap().unwrap().deliveries;
    assert_eq!(d[0].status, DeliveryState::Delivered);
    assert_eq!(d[0].attempts, 2);
    assert_eq!(d[0].last_status, Some(204));
    assert_eq!(d[0].last_error, None);
    assert!(d[0].delivered_at.is_some());
}

#[tokio::test]
async fn thousands_of_concurrent_finishes_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_file(&dir).await;
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    let mut tasks = Vec::new();
    for i in 0..2_000 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let uuid = format!("bulk-{i}");
            store.call_started(live(&uuid, "MA1", t0)).await.unwrap();
            let rec = record(&uuid, "MA1", t0);
            let cbs = callbacks::for_call(&rec, &targets());
            store.finish_call(rec, cbs).await.unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), FinishOutcome::Finished);
    }
    assert_eq!(store.cdrs("MA1", 1, 0).await.unwrap().total, 2_000);
    assert!(store.live_call_uuids("MA1").await.unwrap().is_empty());
    assert_eq!(claim_all(store.as_ref()).await.len(), 4_000);
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
async fn urls_other_than_sqlite_are_refused() {
    for url in ["postgres://x/y", "mysql://x", "sqlite://", "voxbridge.db"] {
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

#[tokio::test]
async fn callbacks_keep_method_and_url() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_file(&dir).await;
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    let rec = record("pc", "MA1", t0);
    let cb: NewCallback =
        callbacks::post_call_callback(&rec, "http://127.0.0.1:9/pc?x=1", HttpMethod::Get);
    store.finish_call(rec, vec![cb.clone()]).await.unwrap();
    let rows = claim_all(store.as_ref()).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].method, HttpMethod::Get);
    assert_eq!(rows[0].url, cb.url);
    assert_eq!(rows[0].kind, CallbackKind::PostCall);
    assert_eq!(rows[0].content_type, None);
    assert_eq!(rows[0].account_id, "MA1");
    assert_eq!(rows[0].call_uuid, "pc");
    assert_eq!(rows[0].attempts, 0);
}
