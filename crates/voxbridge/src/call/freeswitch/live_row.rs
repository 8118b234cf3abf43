//! The call's live row: what the REST API shows while the call is up and what the next
//! start closes out if voxbridge stops before the call's end (SPEC §7, issue 10).
//!
//! Its writes (start, answer, scheduled hangup) are chained so they reach the store in
//! order, and never awaited by the call's loop: only the writer task waits, for the
//! start row alone, before the first command (issue 10 point 3) — while the document is
//! being fetched, so the fsync normally costs the caller nothing. The final record does
//! not wait for them either: once it lands, later live-row writes are no-ops.

use super::channel::CallFacts;
use crate::call::live::LiveCalls;
use crate::call::route::Resolved;
use crate::store::{NewLiveCall, StoreHandle};
use std::future::Future;
use time::OffsetDateTime;
use tokio::sync::oneshot;
use tracing::Instrument;

/// The chain of one call's live-row writes.
pub(in crate::call) struct LiveRowWrites {
    store: StoreHandle,
    /// Told the answer time and scheduled hangup at once: the REST API's live details
    /// show them before the row does (its writes may linger in a group commit).
    live: LiveCalls,
    uuid: String,
    /// The last write queued; the next one waits for it.
    last: Option<tokio::task::JoinHandle<()>>,
}

impl LiveRowWrites {
    pub fn new(store: StoreHandle, live: LiveCalls, uuid: &str) -> Self {
        Self {
            store,
            live,
            uuid: uuid.to_string(),
            last: None,
        }
    }

    /// Writes the live row, then `answered_at` if the dialplan answered the channel
    /// before handing it over. The receiver resolves once the row is committed (`true`)
    /// or could not be written after the store's bounded retries (`false`: the call is
    /// refused; its final record is then kept like any other).
    pub fn start(
        &mut self,
        facts: &CallFacts,
        resolved: &Resolved,
        answered_at: Option<OffsetDateTime>,
    ) -> oneshot::Receiver<bool> {
        let live = NewLiveCall {
            call_uuid: facts.uuid.clone(),
            account_id: resolved.account_id.clone(),
            direction: facts.direction,
            from: facts.from.clone(),
            to: facts.to.clone(),
            caller_name: facts.caller_name.clone(),
            forwarded_from: facts.forwarded_from.clone(),
            start_time: facts.start_time,
            hangup_url: resolved.hangup_url.clone(),
            status_callback_url: resolved.status_callback_url.clone().unwrap_or_default(),
            switch_name: facts.switch_name.clone(),
        };
        if let Some(at) = answered_at {
            self.live
                .update_fresh(&self.uuid, |f| f.answer_time = Some(at));
        }
        let store = self.store.clone();
        let (durable_tx, durable) = oneshot::channel();
        self.queue(async move {
            let uuid = live.call_uuid.clone();
            // Bounded retries (RetryPolicy::LIVE_CALL): a row that cannot be written in
            // that time refuses the call; its final record is then kept like any other.
            let result = store.call_started(live).await;
            let _ = durable_tx.send(result.is_ok());
            if let Err(e) = result {
                tracing::error!(error = %e, "could not record the live call; refusing it");
                return;
            }
            if let Some(at) = answered_at {
                if let Err(e) = store.call_answered(&uuid, at).await {
                    tracing::warn!(error = %e, "could not record the answer time");
                }
            }
        });
        durable
    }

    /// The channel was answered at `at`.
    pub fn answered(&mut self, at: OffsetDateTime) {
        self.live
            .update_fresh(&self.uuid, |f| f.answer_time = Some(at));
        let (store, uuid) = (self.store.clone(), self.uuid.clone());
        self.queue(async move {
            if let Err(e) = store.call_answered(&uuid, at).await {
                tracing::warn!(error = %e, "could not record the answer time");
            }
        });
    }

    /// A document armed (`Some`) or cleared (`None`) a scheduled hangup.
    pub fn scheduled_hangup(&mut self, at: Option<OffsetDateTime>) {
        self.live
            .update_fresh(&self.uuid, |f| f.scheduled_hangup_at = Some(at));
        let (store, uuid) = (self.store.clone(), self.uuid.clone());
        self.queue(async move {
            if let Err(e) = store.set_scheduled_hangup(&uuid, at).await {
                tracing::warn!(error = %e, "could not record the scheduled hangup");
            }
        });
    }

    /// Queues a write behind the call's earlier ones.
    fn queue(&mut self, write: impl Future<Output = ()> + Send + 'static) {
        let previous = self.last.take();
        // Boxed: `last` keeps the task's cell allocated after the write is done, and
        // unboxed that cell has room for the whole write — on a parked call, for its
        // whole life (SPEC §9).
        self.last = Some(tokio::spawn(Box::pin(
            async move {
                if let Some(p) = previous {
                    let _ = p.await;
                }
                write.await
            }
            .in_current_span(),
        )));
    }
}
