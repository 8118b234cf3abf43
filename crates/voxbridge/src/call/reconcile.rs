//! Reconciliation at start (SPEC §2 step 7): calls the store still shows as live were
//! left by a previous run that stopped before their final event. Each is closed out with
//! what is known — HangupSource `Unknown`, HangupCauseName `Unknown`, NORMAL_CLEARING,
//! ended now — and its callbacks are enqueued, so no call ends without a hangup callback.
//!
//! When an inbound ESL connection to the switch is configured, the switch is asked which
//! channels it still has: a call the switch still has is left alone and reported, since
//! the switch will end it and something else may yet take control of it. An answer that
//! cannot be had counts as "gone".
//!
//! Asking must scale (issue 10 point 9): a crash with 1,000 calls up used to mean 1,000
//! `uuid_exists` one after the other, each allowed [`PROBE_TIMEOUT`], before the listener
//! could bind. Now:
//! - with a [`ChannelList`] (`show channels as json`), one round trip answers for every
//!   call ([`reconcile_listed`]);
//! - with only a [`UuidProbe`], up to [`PROBE_CONCURRENCY`] probes are in flight at once
//!   ([`reconcile`]);
//! - calls left `still_up` are not forgotten: [`sweep_still_up`] checks them again
//!   (the server runs it periodically) and closes out those the switch no longer has.
//!
//! Run it before the ESL listener accepts calls: it closes every live row it finds.

use crate::app::callbacks::{self, CallbackTargets};
use crate::cause::HangupCause;
use crate::esl::inbound::InboundClient;
use crate::record::call::{CallRecord, HangupSource};
use crate::store::{BoxFuture, FinishOutcome, LiveCall, Store, StoreError};
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// HangupCauseName of a call closed out without its final event.
pub const UNKNOWN_CAUSE_NAME: &str = "Unknown";

/// Longest wait for one `uuid_exists` answer, or for the channel list.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Most `uuid_exists` probes in flight at once.
pub const PROBE_CONCURRENCY: usize = 64;

/// Lists the channels the switch has now, in one request (`show channels as json`):
/// `None` when it cannot tell.
pub trait ChannelList: Send + Sync {
    fn channel_uuids(&self) -> BoxFuture<'_, Option<HashSet<String>>>;

    /// The channels, among those of the switches `calls` are on (each row names its
    /// switch): several switches ask only those ([`crate::call::switches`]); one switch
    /// lists its own.
    fn channels_of<'a>(&'a self, calls: &'a [LiveCall]) -> BoxFuture<'a, Option<HashSet<String>>> {
        let _ = calls;
        self.channel_uuids()
    }
}

/// Asks the switch whether a channel still exists: `Some(true)` up, `Some(false)` gone,
/// `None` could not tell. Any `Fn(String) -> impl Future<Output = Option<bool>>` is one.
pub trait UuidProbe: Send + Sync {
    fn uuid_exists(&self, call_uuid: &str) -> BoxFuture<'_, Option<bool>>;

    /// As [`UuidProbe::uuid_exists`], asking the switch the call's live row names
    /// (several switches: [`crate::call::switches`]); one switch ignores the name.
    fn uuid_exists_on<'a>(
        &'a self,
        switch_name: &'a str,
        call_uuid: &'a str,
    ) -> BoxFuture<'a, Option<bool>> {
        let _ = switch_name;
        self.uuid_exists(call_uuid)
    }
}

impl<F, Fut> UuidProbe for F
where
    F: Fn(String) -> Fut + Send + Sync,
    Fut: Future<Output = Option<bool>> + Send + 'static,
{
    fn uuid_exists(&self, call_uuid: &str) -> BoxFuture<'_, Option<bool>> {
        Box::pin(self(call_uuid.to_string()))
    }
}

/// What reconciliation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Closed out: CDR written and callbacks enqueued.
    pub closed: Vec<String>,
    /// Their CDR already existed (the previous run stopped between the two writes);
    /// the stale live row was removed.
    pub already_finished: Vec<String>,
    /// Still up on the switch: left live, untouched.
    pub still_up: Vec<String>,
}

/// Closes out every live call of a previous run (see the module docs), asking `probe`
/// (if any) about each call, [`PROBE_CONCURRENCY`] at a time.
pub async fn reconcile(
    store: &dyn Store,
    probe: Option<&dyn UuidProbe>,
    now: OffsetDateTime,
) -> Result<ReconcileReport, StoreError> {
    let calls = store.all_live_calls().await?;
    let up = match probe {
        Some(probe) => probe_all(probe, &calls).await,
        None => HashSet::new(),
    };
    close_out_all(store, calls, &up, now).await
}

/// Closes out every live call of a previous run, asking the switch once for all of them.
pub async fn reconcile_listed(
    store: &dyn Store,
    list: &dyn ChannelList,
    now: OffsetDateTime,
) -> Result<ReconcileReport, StoreError> {
    let calls = store.all_live_calls().await?;
    let up = if calls.is_empty() {
        HashSet::new()
    } else {
        listed(list, &calls).await
    };
    close_out_all(store, calls, &up, now).await
}

/// Closes out the calls this node just adopted from a dead node of its fleet
/// ([`crate::call::fleet`]), and only those: this node's own live calls are never
/// touched. The switch, when there is one, is asked `uuid_exists` for each (SPEC §14),
/// [`PROBE_CONCURRENCY`] at a time; a call it still has is left live (reported
/// `still_up`, for the sweep). Without a switch every adopted call is closed out.
pub async fn reconcile_adopted(
    store: &dyn Store,
    probe: Option<Arc<dyn UuidProbe>>,
    adopted: &HashSet<String>,
    now: OffsetDateTime,
) -> Result<ReconcileReport, StoreError> {
    let calls: Vec<LiveCall> = store
        .all_live_calls()
        .await?
        .into_iter()
        .filter(|c| adopted.contains(&c.call_uuid))
        .collect();
    let mut up = HashSet::new();
    if let Some(probe) = probe {
        // Tasks of their own (owned uuid, shared probe), so this runs inside a spawned
        // node task; the semaphore keeps PROBE_CONCURRENCY in flight.
        let slots = Arc::new(tokio::sync::Semaphore::new(PROBE_CONCURRENCY));
        let mut probes = tokio::task::JoinSet::new();
        for call in &calls {
            let (probe, slots, uuid) = (probe.clone(), slots.clone(), call.call_uuid.clone());
            let switch = call.switch_name.clone();
            probes.spawn(async move {
                let _slot = slots.acquire_owned().await;
                let answer =
                    tokio::time::timeout(PROBE_TIMEOUT, probe.uuid_exists_on(&switch, &uuid))
                        .await
                        .unwrap_or(None);
                (uuid, answer == Some(true))
            });
        }
        while let Some(done) = probes.join_next().await {
            if let Ok((uuid, true)) = done {
                up.insert(uuid);
            }
        }
    }
    close_out_all(store, calls, &up, now).await
}

/// `uuid_exists <uuid>` over inbound ESL: `true`/`false`, `None` when the switch did not
/// answer either.
impl UuidProbe for InboundClient {
    fn uuid_exists(&self, call_uuid: &str) -> BoxFuture<'_, Option<bool>> {
        let command = format!("uuid_exists {call_uuid}");
        Box::pin(async move {
            match self.api(&command).await {
                Ok(reply) => match reply.body.trim() {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => None,
                },
                Err(_) => None,
            }
        })
    }
}

/// Checks again the calls an earlier reconciliation left `still_up` (only those: this
/// run's own live calls are never touched) and closes out the ones the switch no longer
/// has. Returns the report; its `still_up` is what is left to check next time.
pub async fn sweep_still_up(
    store: &dyn Store,
    list: &dyn ChannelList,
    still_up: &HashSet<String>,
    now: OffsetDateTime,
) -> Result<ReconcileReport, StoreError> {
    let calls: Vec<LiveCall> = store
        .all_live_calls()
        .await?
        .into_iter()
        .filter(|c| still_up.contains(&c.call_uuid))
        .collect();
    let up = if calls.is_empty() {
        HashSet::new()
    } else {
        match tokio::time::timeout(PROBE_TIMEOUT, list.channels_of(&calls)).await {
            Ok(Some(up)) => up,
            // Cannot tell now: keep them for the next sweep rather than guess.
            _ => {
                return Ok(ReconcileReport {
                    still_up: calls.into_iter().map(|c| c.call_uuid).collect(),
                    ..ReconcileReport::default()
                })
            }
        }
    };
    close_out_all(store, calls, &up, now).await
}

async fn listed(list: &dyn ChannelList, calls: &[LiveCall]) -> HashSet<String> {
    match tokio::time::timeout(PROBE_TIMEOUT, list.channels_of(calls)).await {
        Ok(Some(up)) => up,
        _ => {
            tracing::warn!(
                "the switch could not list its channels; every call left live is closed out"
            );
            HashSet::new()
        }
    }
}

/// The uuids of `calls` the probe says are up, asking [`PROBE_CONCURRENCY`] at a time.
async fn probe_all(probe: &dyn UuidProbe, calls: &[LiveCall]) -> HashSet<String> {
    use futures_lite_stream::buffer_unordered;
    let answers = buffer_unordered(
        calls.iter().map(|call| async move {
            let answer = tokio::time::timeout(
                PROBE_TIMEOUT,
                probe.uuid_exists_on(&call.switch_name, &call.call_uuid),
            )
            .await
            .unwrap_or(None);
            (call.call_uuid.clone(), answer == Some(true))
        }),
        PROBE_CONCURRENCY,
    )
    .await;
    answers
        .into_iter()
        .filter(|(_, up)| *up)
        .map(|(uuid, _)| uuid)
        .collect()
}

/// A minimal `buffer_unordered` (no `futures` dependency for one function): runs the
/// futures with at most `limit` in flight, in one task, and collects their outputs.
mod futures_lite_stream {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub async fn buffer_unordered<I, F, T>(futures: I, limit: usize) -> Vec<T>
    where
        I: IntoIterator<Item = F>,
        F: Future<Output = T>,
    {
        let mut pending = futures.into_iter();
        let mut running: Vec<Pin<Box<F>>> = Vec::new();
        let mut done = Vec::new();
        std::future::poll_fn(|cx: &mut Context<'_>| {
            loop {
                while running.len() < limit.max(1) {
                    match pending.next() {
                        Some(f) => running.push(Box::pin(f)),
                        None => break,
                    }
                }
                if running.is_empty() {
                    return Poll::Ready(());
                }
                let before = done.len();
                running.retain_mut(|f| match f.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        done.push(v);
                        false
                    }
                    Poll::Pending => true,
                });
                // Some finished: refill and poll the newcomers; none did: wait.
                if done.len() == before {
                    return Poll::Pending;
                }
            }
        })
        .await;
        done
    }
}

async fn close_out_all(
    store: &dyn Store,
    calls: Vec<LiveCall>,
    up: &HashSet<String>,
    now: OffsetDateTime,
) -> Result<ReconcileReport, StoreError> {
    let mut report = ReconcileReport::default();
    for call in calls {
        if up.contains(&call.call_uuid) {
            tracing::warn!(
                call_uuid = %call.call_uuid,
                "call from a previous run is still up on the switch; left as live"
            );
            report.still_up.push(call.call_uuid);
            continue;
        }
        let record = closed_out_record(&call, now);
        let targets = CallbackTargets {
            hangup_url: call.hangup_url.clone(),
            status_callback_url: call.status_callback_url.clone(),
            post_call: None,
        };
        let cbs = callbacks::for_call(&record, &targets);
        match store.finish_call(record, cbs).await? {
            FinishOutcome::Finished => {
                tracing::warn!(
                    call_uuid = %call.call_uuid,
                    "call from a previous run closed out (HangupSource Unknown)"
                );
                report.closed.push(call.call_uuid);
            }
            FinishOutcome::AlreadyFinished => report.already_finished.push(call.call_uuid),
        }
    }
    Ok(report)
}

/// The switch's own list, over inbound ESL (`show channels as json`).
impl ChannelList for InboundClient {
    fn channel_uuids(&self) -> BoxFuture<'_, Option<HashSet<String>>> {
        Box::pin(InboundClient::channel_uuids(self))
    }
}

/// A [`ChannelList`] that is a shared list (tests, and anything that already knows).
impl ChannelList for Arc<dyn Fn() -> Option<HashSet<String>> + Send + Sync> {
    fn channel_uuids(&self) -> BoxFuture<'_, Option<HashSet<String>>> {
        let answer = self();
        Box::pin(async move { answer })
    }
}

/// The record of a call whose end was never seen: what the live row knows, ended `now`.
pub fn closed_out_record(call: &LiveCall, now: OffsetDateTime) -> CallRecord {
    let end_time = now.max(call.start_time);
    let secs = |from: OffsetDateTime| (end_time - from).whole_seconds().max(0) as u64;
    CallRecord {
        call_uuid: call.call_uuid.clone(),
        account_id: call.account_id.clone(),
        direction: call.direction,
        from: call.from.clone(),
        to: call.to.clone(),
        caller_name: call.caller_name.clone(),
        forwarded_from: call.forwarded_from.clone(),
        start_time: call.start_time,
        answer_time: call.answer_time,
        end_time,
        duration_secs: secs(call.start_time),
        bill_duration_secs: call.answer_time.map(secs).unwrap_or(0),
        hangup_cause: HangupCause::NORMAL_CLEARING,
        hangup_cause_code: HangupCause::NORMAL_CLEARING.q850(),
        hangup_cause_name: UNKNOWN_CAUSE_NAME.to_string(),
        hangup_source: HangupSource::Unknown,
        hangup_reason: "completed".to_string(),
        sip_status: None,
        caller_abandoned: false,
        notes: vec![
            "closed out at start: the previous run stopped before the call's final event"
                .to_string(),
        ],
    }
}
