//! One behavioural suite for every store (SPEC §14: "both stores pass one shared
//! behavioural test suite"): each test is an `async fn(Db)` run on SQLite and on
//! PostgreSQL, as `<test>::sqlite` and `<test>::postgres`. Live calls, finishing a call
//! atomically and once, CDR queries, reopening, claims and their leases, attempts.
//! What only one store does is tested beside it (`store_sqlite.rs`: locks, damaged
//! files; `store_postgres.rs`: several nodes on one database).

use crate::store_support::{claim_all, live, now, record, targets, Db};
use std::time::Duration;
use time::macros::datetime;
use voxbridge::app::callbacks;
use voxbridge::document::model::HttpMethod;
use voxbridge::record::call::HangupSource;
use voxbridge::record::callback::{CallbackKind, NewCallback};
use voxbridge::store::{AttemptResult, ClaimRequest, DeliveryState, FinishOutcome, StoreErrorKind};

/// Runs each named `async fn(Db)` on SQLite and on PostgreSQL, as `<name>::sqlite` and
/// `<name>::postgres`. Without PostgreSQL binaries the second says so and passes (CI
/// sets `VOXBRIDGE_TEST_PG_REQUIRED=1`, which makes it fail instead).
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Db::sqlite()).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                match super::Db::postgres().await {
                    Some(db) => super::$name(db).await,
                    None => eprintln!("SKIPPED {}::postgres: no PostgreSQL", stringify!($name)),
                }
            }
        }
    )*};
}

on_both_stores!(
    live_calls_are_scoped_to_their_account,
    finish_writes_cdr_callbacks_and_ends_the_live_call_once,
    a_failure_between_cdr_and_outbox_rows_leaves_neither,
    cdrs_are_listed_newest_first_with_paging,
    everything_survives_a_reopen,
    claims_respect_receiver_room_and_a_restart_releases_its_own,
    a_claim_lease_hands_a_row_out_once_until_it_expires,
    attempts_are_recorded_and_a_delivered_row_stays_delivered,
    thousands_of_concurrent_finishes_all_land,
    callbacks_keep_method_and_url,
    notes_are_appended_to_a_finished_call,
    the_backlog_counts_pending_rows_only,
    retention_prunes_old_rows_and_never_a_call_with_a_pending_callback,
);

async fn live_calls_are_scoped_to_their_account(db: Db) {
    let store = db.open().await;
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
    // The switch it is on (SPEC §14): what reconciliation asks about it.
    assert_eq!(got.switch_name, "fs-test");
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

async fn finish_writes_cdr_callbacks_and_ends_the_live_call_once(db: Db) {
    let store = db.open().await;
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

async fn a_failure_between_cdr_and_outbox_rows_leaves_neither(db: Db) {
    let store = db.open().await;
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

async fn cdrs_are_listed_newest_first_with_paging(db: Db) {
    let store = db.open().await;
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

async fn everything_survives_a_reopen(db: Db) {
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    let rec = record("keep", "MA1", t0);
    {
        let store = db.open().await;
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
    let store = db.open().await;
    assert_eq!(store.cdr("MA1", "keep").await.unwrap().unwrap().record, rec);
    assert!(store
        .live_call("MA1", "still-live")
        .await
        .unwrap()
        .is_some());
    assert_eq!(claim_all(store.as_ref()).await.len(), 2);
}

async fn claims_respect_receiver_room_and_a_restart_releases_its_own(db: Db) {
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    {
        let store = db.open().await;
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
    let store = db.open().await;
    assert_eq!(
        claim_all(store.as_ref()).await.len(),
        8,
        "a restart releases every claim of its previous run"
    );
}

async fn attempts_are_recorded_and_a_delivered_row_stays_delivered(db: Db) {
    let store = db.open().await;
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

async fn thousands_of_concurrent_finishes_all_land(db: Db) {
    let store = db.open().await;
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

async fn callbacks_keep_method_and_url(db: Db) {
    let store = db.open().await;
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

async fn a_claim_lease_hands_a_row_out_once_until_it_expires(db: Db) {
    let store = db.open().await;
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    let rec = record("lease", "MA1", t0);
    let cb = callbacks::hangup_callback(&rec, "http://127.0.0.1:9/h");
    let id = cb.delivery_id.clone();
    store.finish_call(rec, vec![cb]).await.unwrap();
    let at = now() + Duration::from_millis(10);
    let claim = |at: time::OffsetDateTime| ClaimRequest {
        now: at,
        limit: 10,
        claim_until: at + Duration::from_secs(30),
        receiver_room: vec![],
        default_receiver_room: 10,
    };
    let first = store.claim_due_callbacks(claim(at)).await.unwrap();
    assert_eq!(first.rows.len(), 1);
    assert_eq!(first.rows[0].delivery_id, id);
    assert_eq!(
        first.next_due,
        Some(at + Duration::from_secs(30)),
        "due again when the lease ends"
    );
    // Within the lease nobody gets it again...
    let during = store
        .claim_due_callbacks(claim(at + Duration::from_secs(29)))
        .await
        .unwrap();
    assert!(during.rows.is_empty(), "{:?}", during.rows);
    // ...after it, the row is retried with the same DeliveryID and attempt count.
    let after = store
        .claim_due_callbacks(claim(at + Duration::from_secs(31)))
        .await
        .unwrap();
    assert_eq!(after.rows.len(), 1);
    assert_eq!(after.rows[0].delivery_id, id);
    assert_eq!(after.rows[0].attempts, 0);
}

async fn notes_are_appended_to_a_finished_call(db: Db) {
    let store = db.open().await;
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    let rec = record("noted", "MA1", t0);
    store.finish_call(rec, vec![]).await.unwrap();
    store
        .add_cdr_notes("noted", vec!["skipped Hangup (post-call mode)".into()])
        .await
        .unwrap();
    let notes = store
        .cdr("MA1", "noted")
        .await
        .unwrap()
        .unwrap()
        .record
        .notes;
    assert_eq!(
        notes,
        [
            "skipped Speak (post-call mode)",
            "skipped Hangup (post-call mode)"
        ]
    );
    // Unknown call: a no-op, not an error.
    store
        .add_cdr_notes("ghost", vec!["x".into()])
        .await
        .unwrap();
}

async fn the_backlog_counts_pending_rows_only(db: Db) {
    let store = db.open().await;
    assert_eq!(store.outbox_backlog().await.unwrap(), 0);
    let t0 = datetime!(2026-04-09 10:00:00 UTC);
    let rec = record("b1", "MA1", t0);
    let cbs = callbacks::for_call(&rec, &targets());
    let first = cbs[0].delivery_id.clone();
    store.finish_call(rec, cbs).await.unwrap();
    assert_eq!(store.outbox_backlog().await.unwrap(), 2);
    store
        .record_attempt(&first, now(), AttemptResult::Delivered { status: 200 })
        .await
        .unwrap();
    assert_eq!(store.outbox_backlog().await.unwrap(), 1);
    store.close().await;
}

/// Retention (`store::retention`), the same rules on both stores: delivered callback
/// rows older than 30 days go; CDRs older than 90 days go with their remaining rows,
/// unless a callback of theirs is still pending; batches of 500 are all worked through.
async fn retention_prunes_old_rows_and_never_a_call_with_a_pending_callback(db: Db) {
    use voxbridge::config::StoreConfig;
    use voxbridge::store::retention::RetentionPolicy;
    const DAY: Duration = Duration::from_secs(86_400);
    let store = db.open().await;
    let now = now();
    // A call that ended `end_days_ago`, its callbacks delivered `delivered_days_ago`
    // (all, or all but the last).
    let call = |uuid: &'static str, end_days_ago: u32, leave_one_pending: bool| {
        let store = store.clone();
        async move {
            let end = now - DAY * end_days_ago;
            let rec = record(uuid, "MA1", end - Duration::from_secs(46));
            let cbs = callbacks::for_call(&rec, &targets());
            let ids: Vec<String> = cbs.iter().map(|c| c.delivery_id.clone()).collect();
            assert_eq!(ids.len(), 2, "a hangup and a status callback");
            store.finish_call(rec, cbs).await.unwrap();
            let deliver = if leave_one_pending {
                &ids[..1]
            } else {
                &ids[..]
            };
            for id in deliver {
                store
                    .record_attempt(id, end, AttemptResult::Delivered { status: 200 })
                    .await
                    .unwrap();
            }
        }
    };
    call("old-done", 100, false).await;
    call("old-pending", 100, true).await;
    call("recent", 40, false).await;
    call("today", 0, false).await;
    // More old CDRs than one batch holds (no callbacks: cheap to write).
    for i in 0..520 {
        let rec = record(&format!("bulk-{i}"), "MA1", now - DAY * 120);
        store.finish_call(rec, Vec::new()).await.unwrap();
    }

    let policy = RetentionPolicy::from_config(&StoreConfig::default());
    let pruned = store.prune_old(&policy, now).await.unwrap().unwrap();
    // CDRs: old-done and the 520; rows: old-done's 2, old-pending's delivered 1,
    // recent's 2.
    assert_eq!((pruned.cdrs, pruned.callbacks), (521, 5));

    let deliveries = |uuid: &'static str| {
        let store = store.clone();
        async move {
            store
                .cdr("MA1", uuid)
                .await
                .unwrap()
                .map(|c| c.deliveries.len())
        }
    };
    assert_eq!(deliveries("old-done").await, None);
    assert_eq!(
        deliveries("old-pending").await,
        Some(1),
        "a pending callback keeps its call (its delivered one ages out)"
    );
    assert_eq!(deliveries("recent").await, Some(0));
    assert_eq!(deliveries("today").await, Some(2));
    assert_eq!(deliveries("bulk-519").await, None);
    assert_eq!(store.cdrs("MA1", 10, 0).await.unwrap().total, 3);
    assert_eq!(store.outbox_backlog().await.unwrap(), 1);

    // A second run finds nothing; zero days keep everything.
    let again = store.prune_old(&policy, now).await.unwrap().unwrap();
    assert_eq!((again.cdrs, again.callbacks), (0, 0));
    let keep = RetentionPolicy {
        cdrs: None,
        delivered_callbacks: None,
        interval: Duration::from_secs(1),
    };
    let none = store
        .prune_old(&keep, now + DAY * 1000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((none.cdrs, none.callbacks), (0, 0));
}
