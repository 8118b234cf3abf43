//! What a driver keeps of a Dial for its legs (SPEC §11.2, §11.4), shared by the
//! FreeSWITCH and Asterisk drivers: each leg's own CDR, linked to the caller's call, and the
//! parameters of the DialAnswer / DialConnected / DialHangup callbacks.

use super::channel::CallFacts;
use crate::call::channel_op::Bridge;
use crate::call::element::dial::LegEnding;
use crate::document::model::Redirect;
use crate::record::callback::NewCallback;
use crate::store::StoreHandle;
use time::OffsetDateTime;
use tracing::Instrument;

/// A Dial being carried out: what was asked, when, and the bridged callee's
/// `(uuid, created, answered)` once the switch reports it.
pub struct DialLegs {
    pub bridge: Bridge,
    pub sent_at: OffsetDateTime,
    pub bridged: Option<(String, OffsetDateTime, OffsetDateTime)>,
}

/// A Dial is over: every leg gets its own CDR (SPEC §11.2), linked to the call, with
/// times from the bridged callee's creation and answer or from when the bridge was sent
/// (legs never bridged), and the engine's cause and source — written on their own tasks
/// (no hangup callback: the hangup URL is the A-leg's). Returns the DialHangup callbacks
/// owed to the Dial's `callbackUrl`, for the caller's ordered outbox writer.
pub fn leg_endings(
    store: &StoreHandle,
    dial: &DialLegs,
    facts: &CallFacts,
    account_id: &str,
    legs: Vec<LegEnding>,
    callback: Option<&Redirect>,
) -> Vec<NewCallback> {
    let mut hangups = Vec::new();
    let end = OffsetDateTime::now_utc();
    let secs = |from: OffsetDateTime| u64::try_from((end - from).whole_seconds()).unwrap_or(0);
    for leg in legs {
        let (start, answer) = match &dial.bridged {
            Some((uuid, created, answered)) if *uuid == leg.b_leg => (*created, Some(*answered)),
            _ => (dial.sent_at, None),
        };
        let record = crate::record::call::CallRecord {
            call_uuid: leg.b_leg.clone(),
            account_id: account_id.to_string(),
            direction: crate::record::call::Direction::Outbound,
            from: dial
                .bridge
                .caller_id
                .clone()
                .unwrap_or_else(|| facts.from.clone()),
            to: leg.to.clone(),
            caller_name: dial
                .bridge
                .caller_name
                .clone()
                .unwrap_or_else(|| facts.caller_name.clone()),
            forwarded_from: None,
            start_time: start,
            answer_time: answer,
            end_time: end,
            duration_secs: secs(start),
            bill_duration_secs: answer.map(secs).unwrap_or(0),
            hangup_cause: leg.cause,
            hangup_cause_code: leg.cause.q850(),
            hangup_cause_name: leg.cause_name.to_string(),
            hangup_source: leg.source,
            hangup_reason: "completed".into(),
            sip_status: None,
            caller_abandoned: false,
            notes: vec![format!(
                "B-leg {} of a Dial on call {}",
                leg.position, facts.uuid
            )],
        };
        tracing::info!(
            b_leg = %leg.b_leg,
            cause = %leg.cause,
            source = leg.source.as_str(),
            name = leg.cause_name,
            "dial leg ended"
        );
        if let Some(cb) = &callback {
            let mut params = event_params(dial, facts, "hangup", &leg.b_leg, leg.position, &leg.to);
            params.extend([
                (
                    "DialBLegDuration".to_string(),
                    record.duration_secs.to_string(),
                ),
                (
                    "DialBLegBillDuration".to_string(),
                    record.bill_duration_secs.to_string(),
                ),
                (
                    "DialBLegHangupCause".to_string(),
                    leg.cause.name().to_string(),
                ),
                (
                    "DialBLegHangupCauseCode".to_string(),
                    leg.cause.q850().to_string(),
                ),
                (
                    "DialBLegHangupCauseName".to_string(),
                    leg.cause_name.to_string(),
                ),
                (
                    "DialBLegHangupSource".to_string(),
                    leg.source.as_str().to_string(),
                ),
            ]);
            hangups.push(crate::app::callbacks::dial_event_callback(
                &cb.url, cb.method, &params,
            ));
        }
        let store = store.clone();
        let parent = facts.uuid.clone();
        tokio::spawn(
            async move {
                if let Err(e) = store.finish_leg(record, parent).await {
                    tracing::error!(error = %e, "the B-leg's record could not be stored");
                }
            }
            .in_current_span(),
        );
    }
    hangups
}

/// The SPEC §11.4 parameters of a Dial leg event; `status` is `answer`,
/// `connected`, `digits` or `hangup` (`DialAction`); the Dial's `sipHeaders` (and the
/// leg's `<User>` ones) are echoed as `X-VH-<name>`.
pub fn event_params(
    dial: &DialLegs,
    facts: &CallFacts,
    status: &str,
    b_leg: &str,
    position: usize,
    to: &str,
) -> Vec<(String, String)> {
    // `DialAction` says what happened, `DialBLegStatus` what the leg is now.
    let (event, leg_status) = match status {
        "answer" => ("DialAnswer", "answer"),
        "connected" => ("DialConnected", "connected"),
        "digits" => ("DialDigitsMatch", "connected"),
        _ => ("DialHangup", "hangup"),
    };
    let from = dial
        .bridge
        .caller_id
        .clone()
        .unwrap_or_else(|| facts.from.clone());
    [
        ("Event", event.to_string()),
        ("DialAction", status.to_string()),
        ("CallUUID", facts.uuid.clone()),
        ("DialALegUUID", facts.uuid.clone()),
        ("DialBLegUUID", b_leg.to_string()),
        ("DialBLegStatus", leg_status.to_string()),
        ("DialBLegFrom", from),
        ("DialBLegTo", to.to_string()),
        ("DialBLegPosition", position.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .chain(crate::document::model::sip_header_params(
        &dial.bridge.sip_headers_of(Some(b_leg)),
    ))
    .collect()
}
