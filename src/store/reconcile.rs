//! Reconciliation at start (SPEC §2 step 7): calls the store still shows as live were
//! left by a previous run that stopped before their final event. Each is closed out with
//! what is known — HangupSource `Unknown`, HangupCauseName `Unknown`, NORMAL_CLEARING,
//! ended now — and its callbacks are enqueued, so no call ends without a hangup callback.
//!
//! When an inbound ESL connection to the switch is configured, the caller passes a
//! [`UuidProbe`] (`uuid_exists`): a call the switch still has is left alone and reported,
//! since the switch will end it and something else may yet take control of it. A probe
//! that cannot answer (`None`, or no answer in [`PROBE_TIMEOUT`]) counts as "gone".
//!
//! Run it before the ESL listener accepts calls: it closes every live row it finds.

use super::{BoxFuture, FinishOutcome, LiveCall, Store, StoreError};
use crate::app::callbacks::{self, CallbackTargets};
use crate::call::record::{CallRecord, HangupSource};
use crate::cause::HangupCause;
use std::future::Future;
use std::time::Duration;
use time::OffsetDateTime;

/// HangupCauseName of a call closed out without its final event.
pub const UNKNOWN_CAUSE_NAME: &str = "Unknown";

/// Longest wait for one `uuid_exists` answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the switch whether a channel still exists: `Some(true)` up, `Some(false)` gone,
/// `None` could not tell. Any `Fn(String) -> impl Future<Output = Option<bool>>` is one.
pub trait UuidProbe: Send + Sync {
    fn uuid_exists(&self, call_uuid: &str) -> BoxFuture<'_, Option<bool>>;
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

/// Closes out every live call of a previous run (see the module docs).
pub async fn reconcile(
    store: &dyn Store,
    probe: Option<&dyn UuidProbe>,
    now: OffsetDateTime,
) -> Result<ReconcileReport, StoreError> {
    let mut report = ReconcileReport::default();
    for call in store.all_live_calls().await? {
        if let Some(probe) = probe {
            let answer = tokio::time::timeout(PROBE_TIMEOUT, probe.uuid_exists(&call.call_uuid))
                .await
                .unwrap_or(None);
            if answer == Some(true) {
                tracing::warn!(
                    call_uuid = %call.call_uuid,
                    "call from a previous run is still up on the switch; left as live"
                );
                report.still_up.push(call.call_uuid);
                continue;
            }
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
