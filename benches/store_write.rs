//! How many finished calls (CDR + outbox rows) the SQLite store writes per second.
//! Not a test: it prints figures. Run with `cargo bench --bench store_write`.
//!
//! Many tasks finish calls concurrently, as call tasks do under load, so the writer's
//! batching is exercised; the file is on disk with `synchronous = FULL`.

use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use voxbridge::app::callbacks::{self, CallbackTargets};
use voxbridge::cause::HangupCause;
use voxbridge::record::call::{CallRecord, Direction, HangupSource};
use voxbridge::store::{self, NewLiveCall, StoreHandle};

const CALLS: usize = 30_000;
const TASKS: usize = 512;

fn record(uuid: &str, start: OffsetDateTime) -> CallRecord {
    CallRecord {
        call_uuid: uuid.into(),
        account_id: "MA0000000001".into(),
        direction: Direction::Inbound,
        from: "+15550001234".into(),
        to: "7000".into(),
        caller_name: "Bench Caller".into(),
        forwarded_from: None,
        start_time: start,
        answer_time: Some(start + Duration::from_millis(800)),
        end_time: start + Duration::from_secs(12),
        duration_secs: 12,
        bill_duration_secs: 11,
        hangup_cause: HangupCause::NORMAL_CLEARING,
        hangup_cause_code: 16,
        hangup_cause_name: "End Of XML Instructions".into(),
        hangup_source: HangupSource::AnswerXml,
        hangup_reason: "completed".into(),
        sip_status: Some(200),
        caller_abandoned: false,
        notes: vec![],
    }
}

fn targets() -> CallbackTargets {
    CallbackTargets {
        hangup_url: "http://127.0.0.1:5000/hangup".into(),
        status_callback_url: "http://127.0.0.1:5000/status".into(),
        post_call: None,
    }
}

/// Runs `per_call` for CALLS calls over TASKS concurrent tasks; returns the elapsed time.
async fn run<F, Fut>(store: &StoreHandle, prefix: &'static str, per_call: F) -> Duration
where
    F: Fn(StoreHandle, String) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let per_call = Arc::new(per_call);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(TASKS);
    for t in 0..TASKS {
        let store = store.clone();
        let per_call = per_call.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while i < CALLS {
                per_call(store.clone(), format!("{prefix}-{i}")).await;
                i += TASKS;
            }
        }));
    }
    for t in tasks {
        t.await.expect("bench task");
    }
    started.elapsed()
}

fn report(what: &str, elapsed: Duration, rows_per_call: usize) {
    let secs = elapsed.as_secs_f64();
    println!(
        "{what}: {CALLS} calls in {secs:.2} s = {:.0} calls/s, {:.0} rows/s ({rows_per_call} rows per call)",
        CALLS as f64 / secs,
        (CALLS * rows_per_call) as f64 / secs
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let store = store::open(&url).await.expect("open store");
        println!("store_write: {url}, {TASKS} concurrent tasks, synchronous=FULL, WAL");

        // finish_call alone: 1 CDR + 2 outbox rows (hangup, status) per call.
        let elapsed = run(&store, "finish", |store, uuid| async move {
            let rec = record(&uuid, OffsetDateTime::now_utc());
            let cbs = callbacks::for_call(&rec, &targets());
            store.finish_call(rec, cbs).await.expect("finish");
        })
        .await;
        report("finish_call (CDR + 2 outbox rows)", elapsed, 3);

        // A call's whole life in the store: start, answer, finish.
        let elapsed = run(&store, "life", |store, uuid| async move {
            let now = OffsetDateTime::now_utc();
            store
                .call_started(NewLiveCall {
                    call_uuid: uuid.clone(),
                    account_id: "MA0000000001".into(),
                    direction: Direction::Inbound,
                    from: "+15550001234".into(),
                    to: "7000".into(),
                    caller_name: "Bench Caller".into(),
                    forwarded_from: None,
                    start_time: now,
                    hangup_url: "http://127.0.0.1:5000/hangup".into(),
                    status_callback_url: "http://127.0.0.1:5000/status".into(),
                    switch_name: String::new(),
                })
                .await
                .expect("start");
            store.call_answered(&uuid, now).await.expect("answer");
            let rec = record(&uuid, now);
            let cbs = callbacks::for_call(&rec, &targets());
            store.finish_call(rec, cbs).await.expect("finish");
        })
        .await;
        report("start + answer + finish_call", elapsed, 3);
        store.close().await;
    });
}
