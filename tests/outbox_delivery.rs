//! The outbox worker against a real local receiver: retries through an outage and 503s,
//! permanent failures, giving up, fairness between receivers, post-call responses,
//! signing, and a graceful stop.

use crate::outbox_support::{after_claim_passes, eventually, DeadPort, Receiver, Reply};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use voxbridge::app::callbacks;
use voxbridge::app::outbox::schedule::RetrySchedule;
use voxbridge::app::outbox::{
    self, OutboxSettings, OutboxWorker, PostCallResponse, PostCallResponseHandler,
    DELIVERY_ID_HEADER,
};
use voxbridge::app::sign::SIGNATURE_HEADER;
use voxbridge::cause::HangupCause;
use voxbridge::config::Account;
use voxbridge::document::model::HttpMethod;
use voxbridge::record::call::{CallRecord, Direction, HangupSource};
use voxbridge::record::callback::NewCallback;
use voxbridge::store::{self, BoxFuture, DeliveryState, DeliveryStatus, StoreHandle};

const TOKEN: &str = "s3cret-token";

fn record(uuid: &str, account: &str) -> CallRecord {
    let start = OffsetDateTime::now_utc() - Duration::from_secs(30);
    CallRecord {
        call_uuid: uuid.into(),
        account_id: account.into(),
        direction: Direction::Inbound,
        from: "+15550001".into(),
        to: "7000".into(),
        caller_name: "Ann".into(),
        forwarded_from: None,
        start_time: start,
        answer_time: Some(start + Duration::from_secs(2)),
        end_time: start + Duration::from_secs(30),
        duration_secs: 30,
        bill_duration_secs: 28,
        hangup_cause: HangupCause::NORMAL_CLEARING,
        hangup_cause_code: 16,
        hangup_cause_name: "Normal Hangup".into(),
        hangup_source: HangupSource::AnswerXml,
        hangup_reason: "completed".into(),
        sip_status: Some(200),
        caller_abandoned: false,
        notes: vec![],
    }
}

fn settings(initial_ms: u64, max_ms: u64, give_up_ms: u64, concurrency: usize) -> OutboxSettings {
    OutboxSettings {
        schedule: RetrySchedule {
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_millis(max_ms),
            give_up_after: Duration::from_millis(give_up_ms),
        },
        request_timeout: Duration::from_secs(5),
        concurrency,
    }
}

fn accounts() -> Vec<Account> {
    vec![Account {
        auth_id: "MA1".into(),
        auth_token: TOKEN.into(),
    }]
}

struct Hook(mpsc::UnboundedSender<PostCallResponse>);

impl PostCallResponseHandler for Hook {
    fn handle(&self, response: PostCallResponse) -> BoxFuture<'_, ()> {
        let _ = self.0.send(response);
        Box::pin(async {})
    }
}

struct Setup {
    store: StoreHandle,
    worker: OutboxWorker,
    posts: mpsc::UnboundedReceiver<PostCallResponse>,
    _dir: tempfile::TempDir,
}

async fn setup(settings: OutboxSettings) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&format!("sqlite://{}", dir.path().join("vb.db").display()))
        .await
        .unwrap();
    let (tx, posts) = mpsc::unbounded_channel();
    let worker = outbox::start(store.clone(), settings, &accounts(), Arc::new(Hook(tx))).unwrap();
    Setup {
        store,
        worker,
        posts,
        _dir: dir,
    }
}

async fn finish(store: &StoreHandle, rec: &CallRecord, cbs: Vec<NewCallback>) {
    store.finish_call(rec.clone(), cbs).await.unwrap();
}

/// Records `n` calls `<prefix>-<i>`, each with one hangup callback to `url`.
async fn finish_with_hangups(store: &StoreHandle, prefix: &str, n: usize, url: &str) {
    for i in 0..n {
        let rec = record(&format!("{prefix}-{i}"), "MA1");
        finish(store, &rec, vec![callbacks::hangup_callback(&rec, url)]).await;
    }
}

/// A worker on `store` whose post-call hook is dropped.
fn start_worker(store: &StoreHandle, settings: OutboxSettings) -> OutboxWorker {
    let (tx, _posts) = mpsc::unbounded_channel();
    outbox::start(store.clone(), settings, &accounts(), Arc::new(Hook(tx))).unwrap()
}

async fn delivery(store: &StoreHandle, account: &str, uuid: &str, index: usize) -> DeliveryStatus {
    store.cdr(account, uuid).await.unwrap().unwrap().deliveries[index].clone()
}

async fn wait_state(
    store: &StoreHandle,
    uuid: &str,
    index: usize,
    state: DeliveryState,
) -> DeliveryStatus {
    eventually(Duration::from_secs(20), "delivery state", async || {
        let d = delivery(store, "MA1", uuid, index).await;
        (d.status == state).then_some(d)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_then_503_twice_then_200_delivers_exactly_once_with_one_delivery_id() {
    let s = setup(settings(100, 400, 60_000, 4)).await;
    let dead = DeadPort::new(); // nobody listens: connection refused
    let port = dead.port;
    let rec = record("c-retry", "MA1");
    let cb = callbacks::hangup_callback(&rec, &format!("http://127.0.0.1:{port}/hangup?app=1"));
    let id = cb.delivery_id.clone();
    finish(&s.store, &rec, vec![cb]).await;

    // While the receiver is down, attempts fail with a connect error and are recorded.
    let down = eventually(Duration::from_secs(10), "a refused attempt", async || {
        let d = delivery(&s.store, "MA1", "c-retry", 0).await;
        (d.attempts >= 1).then_some(d)
    })
    .await;
    assert_eq!(down.status, DeliveryState::Pending);
    assert_eq!(down.last_status, None);
    let err = down.last_error.clone().unwrap();
    assert!(err.to_lowercase().contains("connect"), "{err}");

    // The receiver comes up on the same port: 503, 503, then 200.
    let rx = Receiver::start_scripted_on(
        dead.listen(),
        vec![Reply::status(503), Reply::status(503)],
        Reply::status(200),
    );
    let done = wait_state(&s.store, "c-retry", 0, DeliveryState::Delivered).await;

    let hits = rx.hits();
    assert_eq!(
        hits.iter().map(|h| h.replied).collect::<Vec<_>>(),
        [503, 503, 200],
        "arrives exactly once (one 2xx), after two 503s"
    );
    for h in &hits {
        assert_eq!(h.method, "POST");
        assert_eq!(h.uri, "/hangup?app=1");
        assert_eq!(h.header(DELIVERY_ID_HEADER).as_deref(), Some(id.as_str()));
        assert_eq!(h.param("DeliveryID").as_deref(), Some(id.as_str()));
        assert_eq!(h.param("Event").as_deref(), Some("Hangup"));
        assert_eq!(
            h.header("content-type").as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        h.verify_signature(port, TOKEN).unwrap();
    }
    assert_eq!(
        hits[0].body, hits[2].body,
        "the same bytes on every attempt"
    );
    assert!(done.attempts >= down.attempts + 3, "{done:?}");
    assert_eq!(done.last_status, Some(200));
    assert_eq!(done.last_error, None);
    assert!(done.delivered_at.is_some());

    // Nothing more is sent once delivered: two more looks at the store, no request.
    after_claim_passes(&s.worker, 2).await;
    assert_eq!(rx.hits().len(), 3);
    let stats = s.worker.stats();
    assert_eq!(stats.delivered, 1);
    assert!(stats.retried >= 3);
    s.worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_row_records_each_failed_attempt() {
    let s = setup(settings(300, 300, 60_000, 4)).await;
    let rx = Receiver::start_scripted(
        0,
        vec![Reply::status(503), Reply::status(429)],
        Reply::status(204),
    )
    .await;
    let rec = record("c-rows", "MA1");
    finish(
        &s.store,
        &rec,
        vec![callbacks::hangup_callback(&rec, &rx.url("/h"))],
    )
    .await;
    let after_first = eventually(
        Duration::from_secs(10),
        "first attempt recorded",
        async || {
            let d = delivery(&s.store, "MA1", "c-rows", 0).await;
            (d.attempts == 1).then_some(d)
        },
    )
    .await;
    assert_eq!(after_first.last_status, Some(503));
    assert_eq!(after_first.last_error.as_deref(), Some("HTTP 503"));
    assert!(after_first.next_attempt_at.unwrap() > after_first.last_attempt_at.unwrap());
    let after_second = eventually(
        Duration::from_secs(10),
        "second attempt recorded",
        async || {
            let d = delivery(&s.store, "MA1", "c-rows", 0).await;
            (d.attempts == 2).then_some(d)
        },
    )
    .await;
    assert_eq!(after_second.last_status, Some(429), "429 is retried");
    let done = wait_state(&s.store, "c-rows", 0, DeliveryState::Delivered).await;
    assert_eq!(done.attempts, 3);
    assert_eq!(done.last_status, Some(204));
    s.worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_4xx_is_permanent_and_never_retried() {
    let s = setup(settings(50, 100, 60_000, 4)).await;
    let rx404 = Receiver::start_scripted(0, vec![], Reply::status(404)).await;
    let rx410 = Receiver::start_scripted(0, vec![], Reply::status(410)).await;
    let rec = record("c-perm", "MA1");
    let cbs = vec![
        callbacks::hangup_callback(&rec, &rx404.url("/gone")),
        callbacks::post_call_callback(&rec, &rx410.url("/pc"), HttpMethod::Post),
        callbacks::status_callback(&rec, "ftp://127.0.0.1/x"),
    ];
    finish(&s.store, &rec, cbs).await;
    let d404 = wait_state(&s.store, "c-perm", 0, DeliveryState::Failed).await;
    let d410 = wait_state(&s.store, "c-perm", 1, DeliveryState::Failed).await;
    let dftp = wait_state(&s.store, "c-perm", 2, DeliveryState::Failed).await;
    assert_eq!((d404.attempts, d404.last_status), (1, Some(404)));
    assert_eq!((d410.attempts, d410.last_status), (1, Some(410)));
    assert_eq!(dftp.attempts, 1);
    assert!(dftp.last_error.unwrap().contains("not http"));
    // Two more looks at the store later, still one request each.
    after_claim_passes(&s.worker, 2).await;
    assert_eq!(rx404.hits().len(), 1);
    assert_eq!(rx410.hits().len(), 1);
    s.worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_when_the_window_closes() {
    let s = setup(settings(50, 100, 600, 4)).await;
    let rx = Receiver::start_scripted(0, vec![], Reply::status(503)).await;
    let rec = record("c-giveup", "MA1");
    finish(
        &s.store,
        &rec,
        vec![callbacks::hangup_callback(&rec, &rx.url("/h"))],
    )
    .await;
    let d = wait_state(&s.store, "c-giveup", 0, DeliveryState::Failed).await;
    assert!(
        d.last_error.as_deref().unwrap().contains("gave up"),
        "{d:?}"
    );
    assert_eq!(d.last_status, Some(503));
    assert!(d.attempts >= 3, "{d:?}");
    assert_eq!(rx.hits().len() as u32, d.attempts);
    let hits = rx.hits().len();
    after_claim_passes(&s.worker, 2).await;
    assert_eq!(rx.hits().len(), hits, "nothing after giving up");
    s.worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_does_not_stall_the_others() {
    // Four slots; the slow receiver's ten rows are older, so they come first.
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&format!("sqlite://{}", dir.path().join("vb.db").display()))
        .await
        .unwrap();
    let slow = Receiver::start_scripted(
        0,
        vec![],
        Reply::status(200).delayed(Duration::from_secs(2)),
    )
    .await;
    let fast = Receiver::start_scripted(0, vec![], Reply::status(200)).await;
    finish_with_hangups(&store, "slow", 10, &slow.url("/s")).await;
    finish_with_hangups(&store, "fast", 3, &fast.url("/f")).await;
    let worker = start_worker(&store, settings(100, 400, 60_000, 4));
    fast.wait_until(Duration::from_secs(10), "the fast receiver's rows", |h| {
        h.len() == 3
    })
    .await;
    assert_eq!(
        slow.completed(),
        0,
        "the fast receiver was served while the slow one still held its requests"
    );
    assert!(
        slow.hits().len() <= 2,
        "the slow receiver holds at most half the slots"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_call_responses_reach_the_hook_and_get_uses_the_query() {
    let mut s = setup(settings(100, 400, 60_000, 4)).await;
    let doc = "<Response><Speak>bye</Speak></Response>";
    let rx = Receiver::start_scripted(
        0,
        vec![],
        Reply::status(200).with_body("application/xml", doc),
    )
    .await;
    let empty = Receiver::start_scripted(0, vec![], Reply::status(200)).await;
    let rec = record("c-post", "MA1");
    let post = callbacks::post_call_callback(&rec, &rx.url("/pc?flow=7"), HttpMethod::Get);
    let status = callbacks::status_callback(&rec, &empty.url("/status"));
    let post_id = post.delivery_id.clone();
    finish(&s.store, &rec, vec![post, status]).await;

    let got = tokio::time::timeout(Duration::from_secs(10), s.posts.recv())
        .await
        .expect("hook called")
        .unwrap();
    assert_eq!(got.call_uuid, "c-post");
    assert_eq!(got.delivery_id, post_id);
    assert_eq!(got.body, doc.as_bytes());
    assert_eq!(got.content_type.as_deref(), Some("application/xml"));

    let hit = &rx.hits()[0];
    assert_eq!(hit.method, "GET");
    assert!(hit.body.is_empty());
    assert_eq!(hit.param("flow").as_deref(), Some("7"));
    assert_eq!(hit.param("Event").as_deref(), Some("PostCall"));
    assert_eq!(hit.param("DeliveryID").as_deref(), Some(post_id.as_str()));
    hit.verify_signature(rx.port, TOKEN).unwrap();

    // The JSON status event, signed over its body; no hook call for it.
    empty
        .wait_until(Duration::from_secs(10), "status event", |h| h.len() == 1)
        .await;
    let hit = &empty.hits()[0];
    assert_eq!(
        hit.header("content-type").as_deref(),
        Some("application/json")
    );
    let json: serde_json::Value = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!(json["event"], "call-ended");
    assert_eq!(
        json["delivery_id"].as_str(),
        hit.header(DELIVERY_ID_HEADER).as_deref()
    );
    hit.verify_signature(empty.port, TOKEN).unwrap();
    wait_state(&s.store, "c-post", 1, DeliveryState::Delivered).await;
    assert!(
        s.posts.try_recv().is_err(),
        "only post-call bodies go to the hook"
    );
    s.worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_a_configured_account_are_sent_unsigned() {
    let s = setup(settings(100, 400, 60_000, 4)).await;
    let rx = Receiver::start_scripted(0, vec![], Reply::status(200)).await;
    let rec = record("c-anon", "MA-unknown");
    finish(
        &s.store,
        &rec,
        vec![callbacks::hangup_callback(&rec, &rx.url("/h"))],
    )
    .await;
    rx.wait_until(Duration::from_secs(10), "the callback", |h| h.len() == 1)
        .await;
    assert_eq!(rx.hits()[0].header(SIGNATURE_HEADER), None);
    assert!(rx.hits()[0].header(DELIVERY_ID_HEADER).is_some());
    s.worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_lets_the_attempt_in_flight_finish_and_leaves_the_rest_pending() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&format!("sqlite://{}", dir.path().join("vb.db").display()))
        .await
        .unwrap();
    let rx = Receiver::start_scripted(
        0,
        vec![],
        Reply::status(200).delayed(Duration::from_millis(700)),
    )
    .await;
    finish_with_hangups(&store, "g", 3, &rx.url("/h")).await;
    let worker = start_worker(&store, settings(100, 400, 60_000, 1));
    rx.wait_until(Duration::from_secs(10), "the first request", |h| {
        h.len() == 1
    })
    .await;
    worker.stop().await;

    assert_eq!(rx.hits().len(), 1, "no new attempt after stop");
    assert_eq!(rx.completed(), 1);
    let mut states = Vec::new();
    for i in 0..3 {
        let d = delivery(&store, "MA1", &format!("g-{i}"), 0).await;
        states.push((d.status, d.attempts));
    }
    states.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(
        states,
        [
            (DeliveryState::Delivered, 1),
            (DeliveryState::Pending, 0),
            (DeliveryState::Pending, 0)
        ]
    );
}

/// Issue 16: a delivered callback's slot is free again as soon as the 2xx is in, before
/// its result is written — that write waits for the store's group commit (stretched to
/// 3 s here). With one slot, three callbacks to a quick receiver all go out well within
/// one linger, and all three are recorded delivered once it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivered_callback_gives_its_slot_back_before_its_result_is_written() {
    use voxbridge::store::sqlite::{SqliteOptions, SqliteStore};
    let linger = Duration::from_secs(3);
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        group_commit_linger: linger,
        ..SqliteOptions::default()
    };
    let path = dir.path().join("vb.db");
    let store: StoreHandle = Arc::new(SqliteStore::open(path.to_str().unwrap(), options).unwrap());
    let rx = Receiver::start_scripted(0, vec![], Reply::status(200)).await;
    finish_with_hangups(&store, "s", 3, &rx.url("/h")).await;
    let started = std::time::Instant::now();
    let worker = start_worker(&store, settings(100, 400, 60_000, 1));
    rx.wait_until(Duration::from_secs(10), "three requests", |h| h.len() == 3)
        .await;
    assert!(
        started.elapsed() < linger / 2,
        "one slot waited for each result to be written: {:?}",
        started.elapsed()
    );
    for i in 0..3 {
        wait_state(&store, &format!("s-{i}"), 0, DeliveryState::Delivered).await;
    }
    assert_eq!(rx.hits().len(), 3, "each callback sent once");
    worker.stop().await;
}
