//! Requests to the application whose response is ignored, made while the call goes on
//! (a Gather with `redirect="false"`, SPEC §12.1): rendered now, written to the outbox
//! off the call's loop, and delivered by the outbox with its guarantees (retries, the
//! same `DeliveryID` on every attempt, signed at delivery). A row the store cannot take
//! is logged with everything needed to send it by hand; the call itself goes on.

use super::CallServices;
use crate::app::callbacks::action_request;
use crate::call::engine::DocumentFetch;
use crate::call::route::Resolved;
use std::sync::Arc;
use tracing::Instrument;

pub(in crate::call) fn enqueue(
    services: &Arc<CallServices>,
    resolved: &Resolved,
    call_uuid: &str,
    req: DocumentFetch,
    params: Vec<(String, String)>,
) {
    let row = action_request(&req.url, req.method, &params);
    tracing::info!(
        url = %req.url,
        event = req.event.as_str(),
        delivery_id = %row.delivery_id,
        "action requested through the outbox"
    );
    let store = services.store.clone();
    let (call_uuid, account_id) = (call_uuid.to_string(), resolved.account_id.clone());
    tokio::spawn(
        async move {
            let (url, delivery_id) = (row.url.clone(), row.delivery_id.clone());
            if let Err(e) = store
                .enqueue_callbacks(&call_uuid, &account_id, vec![row])
                .await
            {
                tracing::error!(%url, %delivery_id, error = %e, "ACTION REQUEST NOT STORED");
            }
        }
        .in_current_span(),
    );
}
