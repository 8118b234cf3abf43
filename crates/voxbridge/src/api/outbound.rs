//! `POST Call/` (SPEC §13): make calls. The body is JSON (`Content-Type:
//! application/json`, what the Vobiz SDKs send) or a form; its parameters are checked by
//! [`crate::call::outbound::parse`] (400 naming the parameter) and the calls handed to
//! the dialer of a configured switch: the one the `switch` parameter names, else the
//! next in turn (SPEC §14).
//!
//! | Answer | When |
//! |---|---|
//! | 201 `{"api_id","message":"call fired","request_uuid":"<uuid>"}` | one destination; `request_uuid` is the call's `CallUUID` |
//! | 201 with `request_uuid` a list | bulk `to` (`a<b<…`, up to 1000), in the order given |
//! | 400 `{"api_id","error"}` | a parameter missing or invalid (`switch` naming no configured switch included), or a body that is neither JSON nor a form |
//! | 429 | `outbound.max_queued` calls are already waiting |
//! | 503 | no `[switch]` configured, or the calls cannot be recorded |
//!
//! The single-call answer has exactly these three fields: the Vobiz Python SDK parses it
//! into a model that forbids extra fields.

use super::auth::Authenticated;
use super::error::{new_api_id, ApiError};
use super::ApiState;
use crate::call::freeswitch::originate::PlaceError;
use crate::call::outbound;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// `POST Call/` and `POST Call`.
pub async fn make_call(
    auth: Authenticated,
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = read_params(&headers, &body)?;
    let request = outbound::parse(&params).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let Some(dialer) = &state.outbound else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no switch is configured to place calls ([switch] esl, password)",
        ));
    };
    let bulk = request.to.len() > 1;
    match dialer.place(&auth.account_id, request).await {
        Ok(uuids) => {
            tracing::info!(account = %auth.account_id, calls = uuids.len(), "outbound calls accepted");
            let request_uuid = if bulk {
                json!(uuids)
            } else {
                json!(uuids.first().cloned().unwrap_or_default())
            };
            let body = json!({
                "api_id": new_api_id(),
                "message": "call fired",
                "request_uuid": request_uuid,
            });
            Ok((StatusCode::CREATED, Json(body)).into_response())
        }
        Err(e @ PlaceError::QueueFull { .. }) => {
            Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string()))
        }
        Err(e @ PlaceError::UnknownSwitch(..)) => Err(ApiError::bad_request(e.to_string())),
        Err(e @ PlaceError::Store(_)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            e.to_string(),
        )),
    }
}

/// The body's parameters as name → text: a JSON object (numbers and booleans as their
/// text, `null` as absent) or a form.
fn read_params(headers: &HeaderMap, body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let looks_json = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if content_type == "application/json" || (content_type.is_empty() && looks_json) {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
        let serde_json::Value::Object(map) = value else {
            return Err(ApiError::bad_request("the JSON body must be an object"));
        };
        let mut out = Vec::with_capacity(map.len());
        for (name, value) in map {
            let text = match value {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "{name}: expected a string or a number"
                    )))
                }
            };
            out.push((name, text));
        }
        return Ok(out);
    }
    if content_type == "application/x-www-form-urlencoded" || content_type.is_empty() {
        return Ok(form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("Content-Type {content_type:?}: send application/json or a form"),
    ))
}
