//! Retention on a real SQLite file: what is pruned, what never is, and (ignored, run by
//! hand) how many bytes a call costs on disk with retention keeping the file bounded.
//!
//! Measure: `cargo test --release --test it store_retention:: -- --ignored --nocapture`

use std::time::Duration;
use time::OffsetDateTime;
use voxbridge::app::callbacks::{self, CallbackTargets};
use voxbridge::cause::HangupCause;
use voxbridge::config::StoreConfig;
use voxbridge::document::model::HttpMethod;
use voxbridge::record::call::{CallRecord, Direction, HangupSource};
use voxbridge::store::sqlite::retention::{prune_store, RetentionPolicy};
use voxbridge::store::{self, AttemptResult, StoreHandle};

const DAY: Duration = Duration::from_secs(86_400);

fn record(uuid: &str, end: OffsetDateTime) -> CallRecord {
    CallRecord {
        call_uuid: uuid.into(),
        account_id: "MA1".into(),
        direction: Direction::Inbound,
        from: "+15550001".into(),
        to: "7000".into(),
        caller_name: "Ann".into(),
        forwarded_from: None,
        start_time: end - Duration::from_secs(46),
        answer_time: Some(end - Duration::from_secs(44)),
        end_time: end,
        duration_secs: 46,
        bill_duration_secs: 44,
        hangup_cause: HangupCause::NORMAL_CLEARING,
        hangup_cause_code: 16,
        hangup_cause_name: "Normal Hangup".into(),
        hangup_source: HangupSource::AnswerXml,
        hangup_reason: "completed".into(),
        sip_status: None,
        caller_abandoned: false,
        notes: Vec::new(),
    }
}

fn targets(post_call: bool) -> CallbackTargets {
    CallbackTargets {
        hangup_url: "http://127.0.0.1:9/hangup".into(),
        status_callback_url: "http://127.0.0.1:9/status".into(),
        post_call: post_call.then(|| ("http://127.0.0.1:9/post".to_string(), HttpMethod::Post)),
    }
}

/// Writes a finished call; delivers its callbacks at `delivered_at` (all of them, or
/// all but the last when `leave_one_pending`). Returns the delivery ids.
async fn call(
    store: &StoreHandle,
    uuid: &str,
    end: OffsetDateTime,
    delivered_at: OffsetDateTime,
    leave_one_pending: bool,
) -> Vec<String> {
    let rec = record(uuid, end);
    let cbs = callbacks::for_call(&rec, &targets(false));
    let ids: Vec<String> = cbs.iter().map(|c| c.delivery_id.clone()).collect();
    store.finish_call(rec, cbs).await.unwrap();
    let deliver = if leave_one_pending {
        &ids[..ids.len() - 1]
    } else {
        &ids[..]
    };
    for id in deliver {
        store
            .record_attempt(id, delivered_at, AttemptResult::Delivered { status: 200 })
            .await
            .unwrap();
    }
    ids
}

fn count(db: &std::path::Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn delivered_callbacks_and_old_cdrs_are_pruned_pending_ones_never() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vb.db");
    let url = format!("sqlite://{}", db.display());
    let store = store::open(&url).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let old = now - 100 * DAY;
    // Ended 100 days ago, all delivered: goes entirely.
    call(&store, "old-done", old, old, false).await;
    // Ended 100 days ago with a callback still pending: kept whole.
    call(&store, "old-pending", old, old, true).await;
    // Ended 40 days ago, delivered then: the CDR stays, its delivered rows go.
    call(&store, "recent", now - 40 * DAY, now - 40 * DAY, false).await;
    // Today: untouched.
    call(&store, "today", now, now, false).await;

    let policy = RetentionPolicy::from_config(&StoreConfig::default());
    assert_eq!(policy.cdrs, Some(90 * DAY), "documented default");
    assert_eq!(
        policy.delivered_callbacks,
        Some(30 * DAY),
        "documented default"
    );
    let pruned = prune_store(&url, &policy, now).unwrap().unwrap();

    let cdrs = |uuid: &str| {
        count(
            &db,
            &format!("SELECT COUNT(*) FROM cdrs WHERE call_uuid = '{uuid}'"),
        )
    };
    let rows = |uuid: &str| {
        count(
            &db,
            &format!("SELECT COUNT(*) FROM outbox WHERE call_uuid = '{uuid}'"),
        )
    };
    assert_eq!((cdrs("old-done"), rows("old-done")), (0, 0));
    assert_eq!(
        (cdrs("old-pending"), rows("old-pending")),
        (1, 1),
        "a pending callback keeps its call (its delivered one ages out)"
    );
    assert_eq!((cdrs("recent"), rows("recent")), (1, 0));
    assert_eq!((cdrs("today"), rows("today")), (1, 2));
    // Delivered rows older than 30 days: old-done's 2, old-pending's 1, recent's 2.
    assert_eq!(pruned.cdrs, 1);
    assert_eq!(pruned.callbacks, 5);
    // The store goes on reading what is left.
    assert!(store.cdr("MA1", "old-done").await.unwrap().is_none());
    assert!(store.cdr("MA1", "today").await.unwrap().is_some());

    // Zero keeps forever.
    let keep = RetentionPolicy {
        cdrs: None,
        delivered_callbacks: None,
        interval: Duration::from_secs(1),
    };
    let pruned = prune_store(&url, &keep, now + 1000 * DAY).unwrap().unwrap();
    assert_eq!((pruned.cdrs, pruned.callbacks), (0, 0));
}

#[tokio::test]
async fn the_server_prunes_on_its_own_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vb.db");
    let url = format!("sqlite://{}", db.display());
    {
        let store = store::open(&url).await.unwrap();
        let old = OffsetDateTime::now_utc() - 100 * DAY;
        call(&store, "old-done", old, old, false).await;
        store.close().await;
    }
    let config = voxbridge::config::Config {
        store: StoreConfig {
            url: url.clone(),
            retention_interval_secs: 0.2,
            ..StoreConfig::default()
        },
        esl: voxbridge::config::EslConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        },
        api: voxbridge::config::ApiConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        },
        ..Default::default()
    };
    let running = voxbridge::server::start(config).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while count(&db, "SELECT COUNT(*) FROM cdrs") > 0 {
        assert!(std::time::Instant::now() < deadline, "never pruned");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(&db, "SELECT COUNT(*) FROM outbox"), 0);
    running.shutdown().await;
}

/// Bytes on disk per call (CDR + hangup, status and post-call rows, all delivered),
/// for the README. Writes `VOXBRIDGE_RETENTION_CALLS` calls (default 100,000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand with --ignored --nocapture"]
async fn bytes_per_call_on_disk() {
    let n: usize = std::env::var("VOXBRIDGE_RETENTION_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vb.db");
    let url = format!("sqlite://{}", db.display());
    let store = store::open(&url).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..n {
        let store = store.clone();
        writes.spawn(async move {
            let rec = record(&format!("{:08}-0000-4000-8000-{:012}", i, i), now);
            let cbs = callbacks::for_call(&rec, &targets(true));
            let ids: Vec<String> = cbs.iter().map(|c| c.delivery_id.clone()).collect();
            store.finish_call(rec, cbs).await.unwrap();
            for id in ids {
                store
                    .record_attempt(&id, now, AttemptResult::Delivered { status: 200 })
                    .await
                    .unwrap();
            }
        });
        while writes.len() > 256 {
            writes.join_next().await;
        }
    }
    while writes.join_next().await.is_some() {}
    let keep_all = RetentionPolicy {
        cdrs: None,
        delivered_callbacks: None,
        interval: Duration::from_secs(1),
    };
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let wal = db.with_extension("db-wal");
    prune_store(&url, &keep_all, now).unwrap();
    let full = size(&db) + size(&wal);
    // Delivered rows pruned: what a CDR alone costs.
    let cdr_only = RetentionPolicy {
        cdrs: None,
        delivered_callbacks: Some(Duration::from_secs(1)),
        interval: Duration::from_secs(1),
    };
    prune_store(&url, &cdr_only, now + Duration::from_secs(10)).unwrap();
    // Pages freed by the delete are reused, not returned: count the live pages.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let free: i64 = conn
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .unwrap();
    let page: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    let used = ((pages - free) * page) as u64;
    println!(
        "{n} calls: {full} bytes with every callback row ({} bytes/call, {:.0} MB per million calls); \
         {used} bytes in use once delivered rows are pruned ({} bytes/call, {:.0} MB per million calls)",
        full / n as u64,
        full as f64 / n as f64,
        used / n as u64,
        used as f64 / n as f64,
    );
    store.close().await;
}
