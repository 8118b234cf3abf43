//! The `Call` resource (SPEC §6): hang up a live call, list and inspect live calls, and
//! dispatch the CDR reads to [`super::cdrs`].
//!
//! | Method, path | Query | Answer |
//! |---|---|---|
//! | `DELETE Call/{call_uuid}/` | (ignored) | 204, or 404 when not live for this account |
//! | `GET Call/` | `status=live` | `{"api_id","calls":[uuid…]}`, oldest first |
//! | `GET Call/` | `limit`, `offset` | the CDR list ([`super::cdrs::list`]) |
//! | `GET Call/{call_uuid}/` | `status=live` | live details, below |
//! | `GET Call/{call_uuid}/` | none | the CDR ([`super::cdrs::one`]) |
//!
//! Live details: `call_uuid, direction, from, to, caller_name, call_status` (`ringing`
//! or `in-progress`), `session_start`, `answer_time` (`null` before answer) and
//! `scheduled_hangup_at` (`null` unless a `schedule`d Hangup is armed), times as
//! `YYYY-MM-DD HH:MM:SS` UTC like the hangup callback.
//!
//! Live reads come from the store (what a multi-node deployment will share); the hangup
//! goes to the call's own task through [`LiveCalls`](crate::call::live::LiveCalls),
//! which kills the channel at once, even mid-playback. The CDR then says HangupSource
//! `API`, NORMAL_CLEARING (16), and the hangup callback fires as for any other end.
//! A second DELETE while the call is still closing is accepted again (first hangup wins,
//! nothing more is sent to the switch); once the record is written it is 404.

use super::auth::Authenticated;
use super::cdrs;
use super::error::{new_api_id, ApiError};
use super::query::Params;
use super::ApiState;
use crate::call::live::HangupRequest;
use crate::call::record::format_cdr_time;
use crate::store::LiveCall;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
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
        let calls = state
            .store
            .live_call_uuids(&auth.account_id)
            .await
            .map_err(|e| ApiError::store(&e))?;
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
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &["status"])?;
    if params.live {
        return match state.store.live_call(&auth.account_id, &call_uuid).await {
            Ok(Some(call)) => Ok(Json(LiveCallResponse::from(call)).into_response()),
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
) -> Result<StatusCode, ApiError> {
    let request = tokio::time::timeout(
        HANGUP_REPLY_TIMEOUT,
        state.live.hangup(&auth.account_id, &call_uuid),
    )
    .await;
    match request {
        Ok(HangupRequest::Accepted) => {
            tracing::info!(call_uuid = %call_uuid, account = %auth.account_id, "REST hangup accepted");
            Ok(StatusCode::NO_CONTENT)
        }
        Ok(HangupRequest::NotFound) => Err(ApiError::not_found(format!(
            "call {call_uuid} is not live (unknown, or already ended)"
        ))),
        Err(_) => {
            tracing::error!(call_uuid = %call_uuid, "the call's task did not take the REST hangup in time");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("call {call_uuid} did not respond to the hangup request; retry"),
            ))
        }
    }
}
