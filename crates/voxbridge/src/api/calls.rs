//! The `Call` resource (SPEC §6): hang up a live call, list and inspect live calls, and
//! dispatch the CDR reads to [`super::cdrs`].
//!
//! | Method, path | Query | Answer |
//! |---|---|---|
//! | `DELETE Call/{call_uuid}/` | (ignored) | 204, 404 when not live for this account, 502 when the switch refused to end it |
//! | `GET Call/` | `status=live` | `{"api_id","calls":[uuid…]}`, oldest first |
//! | `GET Call/` | `limit`, `offset` | the CDR list ([`super::cdrs::list`]) |
//! | `GET Call/{call_uuid}/` | `status=live` | live details, below |
//! | `GET Call/{call_uuid}/` | none | the CDR ([`super::cdrs::one`]) |
//!
//! Live details: `call_uuid, direction, from, to, caller_name, call_status` (`queued`
//! or `ringing` for a `POST Call/` call not yet answered, `ringing` or `in-progress`), `session_start`, `answer_time` (`null` before answer) and
//! `scheduled_hangup_at` (`null` unless a `schedule`d Hangup is armed), times as
//! `YYYY-MM-DD HH:MM:SS` UTC like the hangup callback.
//!
//! **One truth.** Whether a call is live is answered by one registry,
//! [`LiveCalls`](crate::call::live::LiveCalls), for the live list, the live details and
//! the hangup alike, so they never disagree. A call leaves it the moment it is over
//! (channel down or socket lost), before its record is written: from then on every live
//! read and DELETE answers 404, never 503. The live details' fields (answer time, armed
//! schedule) are read from the store's live row; the registry decides whether there is
//! one to show.
//!
//! **Several nodes** (SPEC §14, PostgreSQL): the registry is per node, so a request for
//! a call this node does not hold is passed to the node that does ([`super::fleet`]) and
//! its answer relayed; the live list is the store's live rows of the account, every
//! node's (a call that has just ended may still be listed for the moment between its
//! end and its record).
//!
//! The hangup goes to the call's own task, which kills the channel at once, even
//! mid-playback (`uuid_kill`), and answers once the switch has replied: 204 when it took
//! it, **502** when the switch refused `uuid_kill` and the fallback hangup message too
//! (the call is still up; the error says what the switch answered). The CDR then says
//! HangupSource `API`, NORMAL_CLEARING (16), and the hangup callback fires as for any
//! other end. A second DELETE while the call is still closing is accepted again (first
//! hangup wins, nothing more is sent to the switch).

use super::auth::Authenticated;
use super::cdrs;
use super::error::{new_api_id, ApiError};
use super::query::Params;
use super::ApiState;
use crate::call::live::HangupRequest;
use crate::record::call::format_cdr_time;
use crate::store::LiveCall;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::time::Duration;

/// How long a DELETE waits for the call's task to take the request. The task answers
/// at once unless it is wedged; then the client hears 503 rather than hanging.
const HANGUP_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET Call/?status=live`.
#[derive(Debug, Serialize)]
pub struct LiveListResponse {
    pub api_id: String,
    pub calls: Vec<String>,
}

/// `GET Call/{call_uuid}/?status=live`.
#[derive(Debug, Serialize)]
pub struct LiveCallResponse {
    pub api_id: String,
    pub call_uuid: String,
    pub direction: &'static str,
    pub from: String,
    pub to: String,
    pub caller_name: String,
    pub call_status: &'static str,
    pub session_start: String,
    pub answer_time: Option<String>,
    pub scheduled_hangup_at: Option<String>,
    /// A Dial's B-leg: the A-leg it belongs to (SPEC §11.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_call_uuid: Option<String>,
    /// An A-leg while a Dial has it bridged: the callee's uuid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bridged_to: Option<String>,
}

impl LiveCallResponse {
    /// A Dial's B-leg, from what the registry knows of it (it has no live row: its
    /// parent call's task owns it). Direction `outbound`, status `ringing` until it
    /// answered, then `in-progress`.
    fn of_leg(call_uuid: String, leg: crate::call::live::LegInfo) -> Self {
        LiveCallResponse {
            api_id: new_api_id(),
            call_uuid,
            direction: "outbound",
            call_status: leg.call_status(),
            from: leg.from,
            to: leg.to,
            caller_name: String::new(),
            session_start: format_cdr_time(leg.start_time),
            answer_time: leg.answer_time.map(format_cdr_time),
            scheduled_hangup_at: None,
            parent_call_uuid: Some(leg.parent_call_uuid),
            bridged_to: None,
        }
    }
}

impl From<LiveCall> for LiveCallResponse {
    fn from(call: LiveCall) -> Self {
        LiveCallResponse {
            api_id: new_api_id(),
            direction: call.direction.as_str(),
            call_status: call.call_status(),
            session_start: format_cdr_time(call.start_time),
            answer_time: call.answer_time.map(format_cdr_time),
            scheduled_hangup_at: call.scheduled_hangup_at.map(format_cdr_time),
            call_uuid: call.call_uuid,
            from: call.from,
            to: call.to,
            caller_name: call.caller_name,
            parent_call_uuid: None,
            bridged_to: None,
        }
    }
}

/// `GET Call/` and `GET Call`.
pub async fn get_calls(
    auth: Authenticated,
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &["status", "limit", "offset"])?;
    if params.live {
        if params.limit.is_some() || params.offset.is_some() {
            return Err(ApiError::bad_request(
                "limit and offset page the call records; status=live lists every live call",
            ));
        }
        let calls = match &state.fleet {
            Some(_) => state
                .store
                .live_call_uuids(&auth.account_id)
                .await
                .map_err(|e| ApiError::store(&e))?,
            None => state.live.uuids(&auth.account_id),
        };
        return Ok(Json(LiveListResponse {
            api_id: new_api_id(),
            calls,
        })
        .into_response());
    }
    let page = cdrs::list(&state, &auth.account_id, &params).await?;
    Ok(Json(page).into_response())
}

/// `GET Call/{call_uuid}/` and `GET Call/{call_uuid}`.
pub async fn get_call(
    auth: Authenticated,
    State(state): State<ApiState>,
    Path((_, call_uuid)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &["status"])?;
    if params.live {
        let not_live = || {
            ApiError::not_found(format!(
                "call {call_uuid} is not live (unknown, or already ended)"
            ))
        };
        if !state.live.contains(&auth.account_id, &call_uuid) {
            if let Some(fleet) = &state.fleet {
                let query = query.as_deref();
                if let Some(answer) = fleet
                    .forward(Method::GET, &auth.account_id, &call_uuid, query, &headers)
                    .await
                {
                    return answer;
                }
            }
            return Err(not_live());
        }
        if let Some(leg) = state.live.leg(&auth.account_id, &call_uuid) {
            return Ok(Json(LiveCallResponse::of_leg(call_uuid, leg)).into_response());
        }
        let phase = state
            .outbound
            .as_ref()
            .and_then(|d| d.phase(&auth.account_id, &call_uuid));
        return match state.store.live_call(&auth.account_id, &call_uuid).await {
            Ok(Some(mut call)) => {
                // What the call's task knows is at least as new as its row, whose
                // writes may still wait in a group commit (≤ 40 ms).
                let fresh = state.live.fresh(&auth.account_id, &call_uuid);
                call.answer_time = fresh.answer_time.or(call.answer_time);
                if let Some(at) = fresh.scheduled_hangup_at {
                    call.scheduled_hangup_at = at;
                }
                let mut details = LiveCallResponse::from(call);
                details.bridged_to = state.live.bridged_to(&auth.account_id, &call_uuid);
                // A `POST Call/` call is `queued`, then `ringing`, until it is answered.
                if let Some(phase) = phase.filter(|_| details.answer_time.is_none()) {
                    details.call_status = phase.call_status();
                }
                Ok(Json(details).into_response())
            }
            Ok(None) => Err(ApiError::not_found(format!(
                "call {call_uuid} is not live (unknown, or already ended)"
            ))),
            Err(e) => Err(ApiError::store(&e)),
        };
    }
    let cdr = cdrs::one(&state, &auth.account_id, &call_uuid).await?;
    Ok(Json(cdr).into_response())
}

/// `DELETE Call/{call_uuid}/` and `DELETE Call/{call_uuid}`: hang up now.
pub async fn hangup(
    auth: Authenticated,
    State(state): State<ApiState>,
    Path((_, call_uuid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let request = tokio::time::timeout(
        HANGUP_REPLY_TIMEOUT,
        state.live.hangup(&auth.account_id, &call_uuid),
    )
    .await;
    match request {
        Ok(HangupRequest::Accepted) => {
            tracing::info!(call_uuid = %call_uuid, account = %auth.account_id, "REST hangup accepted");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Ok(HangupRequest::NotFound) => {
            if let Some(fleet) = &state.fleet {
                if let Some(answer) = fleet
                    .forward(Method::DELETE, &auth.account_id, &call_uuid, None, &headers)
                    .await
                {
                    return answer;
                }
            }
            Err(ApiError::not_found(format!(
                "call {call_uuid} is not live (unknown, or already ended)"
            )))
        }
        Ok(HangupRequest::Failed(reply)) => {
            tracing::error!(call_uuid = %call_uuid, reply = %reply, "REST hangup: the switch refused to end the call");
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("the switch refused to end call {call_uuid} ({reply}); it is still live"),
            ))
        }
        Err(_) => {
            tracing::error!(call_uuid = %call_uuid, "the call's task did not take the REST hangup in time");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("call {call_uuid} did not respond to the hangup request; retry"),
            ))
        }
    }
}
