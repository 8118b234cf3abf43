//! Calls that never run a document but must still end properly: refused because the
//! store cannot write, or abandoned because the handshake failed after `connect`. Each
//! hangs the channel up (a socket closed on a live channel leaves the call parked,
//! reference §2.7), then leaves the socket, then hands its record to the keeper — so
//! every call that reached voxbridge has a CDR and a hangup callback (SPEC §2 step 7).

use super::channel::CallFacts;
use super::{record, CallServices};
use crate::call::route::Resolved;
use crate::cause::HangupCause;
use crate::esl::event::ChannelData;
use crate::esl::outbound::{EventStream, OutboundConnection, SocketEvent};
use std::time::Duration;

/// HangupCauseName of a call refused because the store could not write.
pub const STORE_UNAVAILABLE: &str = "Error: store unavailable";

/// How long a refused call waits for the switch to confirm the hangup before leaving.
const HANGUP_CONFIRM_WAIT: Duration = Duration::from_secs(5);

/// A record for a call that ended without its document running, handed to the keeper.
async fn keep_error_record(
    services: &CallServices,
    facts: &CallFacts,
    resolved: &Resolved,
    name: &str,
    note: &str,
) {
    let live = record::live_from_facts(facts, resolved);
    let record = record::closed_out_with_error(&live, name, note);
    record::keep(services, resolved, record, None, Vec::new()).await;
}

/// The store cannot write: refuse the call at once (SIP 503), without asking the
/// application for a document, and keep its record for when the store recovers.
pub(super) async fn refuse_store_unavailable(
    services: &CallServices,
    conn: &OutboundConnection,
    mut events: EventStream,
    facts: &CallFacts,
    resolved: &Resolved,
) {
    tracing::warn!(
        from = %facts.from,
        to = %facts.to,
        "refusing the call (503): the store cannot write"
    );
    let cause = HangupCause::NORMAL_TEMPORARY_FAILURE;
    if let Err(e) = conn.send_hangup(cause.name()).await {
        tracing::warn!(error = %e, "could not hang the refused call up");
    }
    // Leave only once the switch has taken the hangup: `exit` first could end the park
    // with the hangup still queued.
    let _ = tokio::time::timeout(HANGUP_CONFIRM_WAIT, async {
        while let Some(item) = events.recv().await {
            match item {
                SocketEvent::Event(e)
                    if matches!(e.name(), "CHANNEL_HANGUP" | "CHANNEL_HANGUP_COMPLETE") =>
                {
                    break
                }
                SocketEvent::Closed(_) => break,
                _ => {}
            }
        }
    })
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.exit()).await;
    keep_error_record(
        services,
        facts,
        resolved,
        STORE_UNAVAILABLE,
        "refused: the store could not write (503); record kept until it recovered",
    )
    .await;
}

/// The handshake failed after `connect` (the listener has already hung the channel up,
/// best effort): the call is closed out with a record and its callbacks.
pub async fn close_out_abandoned(services: &CallServices, channel: &ChannelData, error: &str) {
    let Some(uuid) = channel.uuid() else { return };
    let facts = CallFacts::from_channel(uuid, channel, &services.config.app.extra_variables);
    let resolved = services
        .router
        .callback_targets(&facts.variables, &facts.to);
    let span = tracing::info_span!("call", call_uuid = %facts.uuid);
    let _enter = span.enter();
    tracing::error!(
        error,
        "handshake failed after connect: the channel was hung up; closing the call out"
    );
    drop(_enter);
    keep_error_record(
        services,
        &facts,
        &resolved,
        "Error: ESL handshake failed",
        &format!("the ESL handshake failed after connect ({error}); the channel was hung up"),
    )
    .await;
}
