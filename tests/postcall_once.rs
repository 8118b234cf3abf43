//! A post-call workflow runs at most once per call: the outbox hands a post-call
//! response to post-call mode only once its delivery is recorded. A delivery whose 2xx
//! could not be recorded is delivered again later (same DeliveryID, the receiver can
//! de-duplicate) — and only that recorded delivery's response runs the workflow.
//!
//! The store here is the real SQLite store behind a wrapper that fails the first
//! "delivered" write, as a full disk or a locked file would.

use crate::outbox_support::{after_claim_passes, Receiver, Reply};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use voxbridge::app::callbacks;
use voxbridge::app::outbox::schedule::RetrySchedule;
use voxbridge::app::outbox::{self, OutboxSettings, PostCallResponse, PostCallResponseHandler};
use voxbridge::cause::HangupCause;
use voxbridge::config::Account;
use voxbridge::document::model::HttpMethod;
use voxbridge::record::call::{CallRecord, Direction, HangupSource};
use voxbridge::record::callback::NewCallback;
use voxbridge::store::{
    self, AttemptResult, BoxFuture, CdrPage, ClaimRequest, ClaimedCallbacks, FinishOutcome,
    LiveCall, NewLiveCall, Store, StoreError, StoreErrorKind, StoreHandle, StoreHealth, StoredCdr,
};

/// The real store, except that the first `Delivered` write fails.
struct FailFirstDelivered {
    inner: StoreHandle,
    failed_once: AtomicBool,
}

impl Store for FailFirstDelivered {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn call_started(&self, call: NewLiveCall) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.call_started(call)
    }
    fn call_answered(&self, u: &str, at: OffsetDateTime) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.call_answered(u, at)
    }
    fn set_scheduled_hangup(
        &self,
        u: &str,
        at: Option<OffsetDateTime>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.set_scheduled_hangup(u, at)
    }
    fn add_cdr_notes(&self, u: &str, notes: Vec<String>) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.add_cdr_notes(u, notes)
    }
    fn enqueue_callbacks(
        &self,
        u: &str,
        a: &str,
        callbacks: Vec<voxbridge::record::callback::NewCallback>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.enqueue_callbacks(u, a, callbacks)
    }
    fn live_call(&self, a: &str, u: &str) -> BoxFuture<'_, Result<Option<LiveCall>, StoreError>> {
        self.inner.live_call(a, u)
    }
    fn live_call_uuids(&self, a: &str) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        self.inner.live_call_uuids(a)
    }
    fn all_live_calls(&self) -> BoxFuture<'_, Result<Vec<LiveCall>, StoreError>> {
        self.inner.all_live_calls()
    }
    fn finish_call(
        &self,
        record: CallRecord,
        callbacks: Vec<NewCallback>,
    ) -> BoxFuture<'_, Result<FinishOutcome, StoreError>> {
        self.inner.finish_call(record, callbacks)
    }
    fn cdr(&self, a: &str, u: &str) -> BoxFuture<'_, Result<Option<StoredCdr>, StoreError>> {
        self.inner.cdr(a, u)
    }
    fn prune_old<'a>(
        &'a self,
        policy: &'a voxbridge::store::retention::RetentionPolicy,
        now: time::OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<voxbridge::store::retention::Pruned>, StoreError>> {
        self.inner.prune_old(policy, now)
    }
    fn cdrs(&self, a: &str, limit: u32, offset: u64) -> BoxFuture<'_, Result<CdrPage, StoreError>> {
        self.inner.cdrs(a, limit, offset)
    }
    fn add_recording(
        &self,
        r: voxbridge::store::Recording,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.add_recording(r)
    }
    fn recording(
        &self,
        a: &str,
        id: &str,
    ) -> BoxFuture<'_, Result<Option<voxbridge::store::Recording>, StoreError>> {
        self.inner.recording(a, id)
    }
    fn recordings(
        &self,
        a: &str,
        q: voxbridge::store::RecordingQuery,
    ) -> BoxFuture<'_, Result<voxbridge::store::RecordingPage, StoreError>> {
        self.inner.recordings(a, q)
    }
    fn delete_recording(
        &self,
        a: &str,
        id: &str,
    ) -> BoxFuture<'_, Result<Option<voxbridge::store::Recording>, StoreError>> {
        self.inner.delete_recording(a, id)
    }
    fn claim_due_callbacks(
        &self,
        request: ClaimRequest,
    ) -> BoxFuture<'_, Result<ClaimedCallbacks, StoreError>> {
        self.inner.claim_due_callbacks(request)
    }
    fn record_attempt(
        &self,
        delivery_id: &str,
        at: OffsetDateTime,
        result: AttemptResult,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        if matches!(result, AttemptResult::Delivered { .. })
            && !self.failed_once.swap(true, Ordering::SeqCst)
        {
            return Box::pin(async {
                Err(StoreError::new(
                    StoreErrorKind::DiskFull,
                    "disk full (test)",
                ))
            });
        }
        self.inner.record_attempt(delivery_id, at, result)
    }
    fn outbox_backlog(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.inner.outbox_backlog()
    }
    fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        self.inner.outbox_signal()
    }
    fn health(&self) -> StoreHealth {
        self.inner.health()
    }
    fn close(&self) -> BoxFuture<'_, ()> {
        self.inner.close()
    }
}

struct Hook(mpsc::UnboundedSender<PostCallResponse>);

impl PostCallResponseHandler for Hook {
    fn handle(&self, response: PostCallResponse) -> BoxFuture<'_, ()> {
        let _ = self.0.send(response);
        Box::pin(async {})
    }
}

fn record(uuid: &str) -> CallRecord {
    let start = OffsetDateTime::now_utc() - Duration::from_secs(30);
    CallRecord {
        call_uuid: uuid.into(),
        account_id: "MA1".into(),
        direction: Direction::Inbound,
        from: "+15550001".into(),
        to: "7000".into(),
        caller_name: "Ann".into(),
        forwarded_from: None,
        start_time: start,
        answer_time: None,
        end_time: start + Duration::from_secs(30),
        duration_secs: 30,
        bill_duration_secs: 0,
        hangup_cause: HangupCause::USER_BUSY,
        hangup_cause_code: 17,
        hangup_cause_name: "Busy Line".into(),
        hangup_source: HangupSource::AnswerXml,
        hangup_reason: "busy".into(),
        sip_status: Some(486),
        caller_abandoned: false,
        notes: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_call_workflow_runs_at_most_once_even_when_its_delivery_is_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let real = store::open(&format!("sqlite://{}", dir.path().join("vb.db").display()))
        .await
        .unwrap();
    let store: StoreHandle = Arc::new(FailFirstDelivered {
        inner: real,
        failed_once: AtomicBool::new(false),
    });
    let doc = "<Response><Speak>bye</Speak></Response>";
    let rx = Receiver::start_scripted(
        0,
        vec![],
        Reply::status(200).with_body("application/xml", doc),
    )
    .await;
    let (tx, mut posts) = mpsc::unbounded_channel();
    let settings = OutboxSettings {
        schedule: RetrySchedule {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(400),
            give_up_after: Duration::from_secs(600),
        },
        request_timeout: Duration::from_secs(1),
        concurrency: 4,
    };
    let accounts = vec![Account {
        auth_id: "MA1".into(),
        auth_token: "t".into(),
    }];
    let worker = outbox::start(store.clone(), settings, &accounts, Arc::new(Hook(tx))).unwrap();
    let rec = record("c-once");
    let post = callbacks::post_call_callback(&rec, &rx.url("/pc"), HttpMethod::Post);
    store.finish_call(rec, vec![post]).await.unwrap();

    // The first 2xx is not recorded: the row is claimed again once its claim lapses
    // (request timeout + the outbox's claim margin) and delivered a second time.
    rx.wait_until(Duration::from_secs(90), "the repeated delivery", |h| {
        h.len() == 2
    })
    .await;
    let first = tokio::time::timeout(Duration::from_secs(10), posts.recv())
        .await
        .expect("the recorded delivery runs the workflow")
        .unwrap();
    assert_eq!(first.call_uuid, "c-once");
    // The worker has looked at the store twice more: the row is delivered, no second run.
    after_claim_passes(&worker, 2).await;
    assert!(
        posts.try_recv().is_err(),
        "the workflow ran twice for one call"
    );
    worker.stop().await;
}
