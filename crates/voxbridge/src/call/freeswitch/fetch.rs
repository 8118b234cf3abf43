//! Document fetches: the parameters the application is sent (SPEC §3: CallUUID, From,
//! To, Direction, CallStatus, Event, ForwardedFrom, the configured extra variables…),
//! the fetch task (its own task, so the call's loop keeps draining the switch's events
//! while the application answers, retries or times out), and what its result means to
//! the engine.

use super::channel::CallFacts;
use super::{CallServices, WorkerReport};
use crate::app::fetch::{CallStatus, FetchError, FetchParams, FetchRequest, Fetched};
use crate::call::engine::{DocumentFetch, FetchFailure};
use crate::call::route::Resolved;
use crate::document::model::{AnswerDocument, FetchEvent};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// The request's parameters as name/value pairs. `answered` is the engine's view (the
/// call is `in-progress` once answered, `ringing` before); `extra_variables` names the
/// channel variables the configuration forwards.
pub(in crate::call) fn params(
    facts: &CallFacts,
    resolved: &Resolved,
    answered: bool,
    event: FetchEvent,
    extra_variables: &[String],
) -> Vec<(String, String)> {
    FetchParams {
        call_uuid: facts.uuid.clone(),
        from: facts.from.clone(),
        to: facts.to.clone(),
        caller_name: facts.caller_name.clone(),
        direction: facts.direction,
        call_status: if answered {
            CallStatus::InProgress
        } else {
            CallStatus::Ringing
        },
        event,
        forwarded_from: facts.forwarded_from.clone(),
        account_id: resolved.account_id.clone(),
        extra: extra_variables
            .iter()
            .filter_map(|name| facts.variables.get(name).map(|v| (name.clone(), v.clone())))
            .collect(),
    }
    .to_pairs()
}

/// Spawns the fetch of `req` (with its retries and, for the answer URL, the fallback
/// URL); its result comes back to the loop as [`WorkerReport::Fetched`]. A `Redirect`
/// names the document that asked (`asked_by`), so the fetcher can refuse `file://`
/// from a remote document.
pub(super) fn spawn(
    services: Arc<CallServices>,
    resolved: Resolved,
    req: DocumentFetch,
    params: Vec<(String, String)>,
    current_document_url: Option<String>,
    reports: super::boxed_queue::Sender<WorkerReport>,
    after: Option<tokio::sync::oneshot::Receiver<()>>,
) -> tokio::task::AbortHandle {
    let (fallback, asked_by) = match req.event {
        FetchEvent::StartApp => (resolved.fallback_answer_url.clone(), None),
        // A Dial's or a Gather's action is named by the document, like a Redirect's URL.
        FetchEvent::Redirect
        | FetchEvent::DialAction(_)
        | FetchEvent::Gather { .. }
        | FetchEvent::Record(_)
        | FetchEvent::DialConfirmSound
        | FetchEvent::DialMusic => (None, current_document_url),
    };
    let url = req.url;
    let method = req.method;
    // Boxed: the call keeps this task's abort handle, which keeps the task's cell (and,
    // unboxed, the room for the whole future) allocated after the fetch is over — on a
    // parked call, for its whole life (SPEC §9).
    let task = tokio::spawn(Box::pin(
        async move {
            if let Some(after) = after {
                // What the request names must exist before the application hears of
                // it (a Record's row, so its RecordUrl answers at once).
                let _ = after.await;
            }
            let started = Instant::now();
            let request = FetchRequest {
                url: &url,
                fallback_url: fallback.as_deref(),
                method,
                params: &params,
                signing_token: resolved.auth_token.as_deref(),
                asked_by: asked_by.as_deref(),
            };
            let result = services.fetcher.fetch(&request).await;
            let _ = reports.send(WorkerReport::Fetched {
                result,
                elapsed: started.elapsed(),
            });
        }
        .in_current_span(),
    ));
    task.abort_handle()
}

/// What a fetch's result is to the engine: the document, or why there is none. A
/// document the fetcher refused (a remote Redirect to `file://`) makes the document
/// that asked invalid here.
pub(in crate::call) fn engine_result(
    result: Result<Fetched, FetchError>,
) -> Result<AnswerDocument, FetchFailure> {
    match result {
        Ok(fetched) => {
            tracing::info!(
                url = %fetched.url,
                attempts = fetched.attempts,
                fallback = fetched.from_fallback,
                instructions = fetched.document.instructions.len(),
                "document fetched"
            );
            Ok(fetched.document)
        }
        Err(e) => {
            tracing::error!(error = %e, "no usable document");
            Err(match &e {
                FetchError::InvalidDocument { error, .. } => {
                    FetchFailure::Invalid(error.to_string())
                }
                refused @ FetchError::Refused { .. } => FetchFailure::Invalid(refused.to_string()),
                other => FetchFailure::NoDocument(other.to_string()),
            })
        }
    }
}
