//! The HTTP side of voxbridge: the Vobiz-compatible REST API (SPEC §6), `/metrics` and
//! `/health`, as small axum handlers over an explicitly passed [`ApiState`].
//!
//! - [`auth`]: who is asking (X-Auth headers or Basic, constant-time, per account);
//! - [`calls`]: the `Call` resource — hang up, live list, live details;
//! - [`outbound`]: `POST Call/`, making calls (SPEC §13);
//! - [`cdrs`]: finished calls — one CDR, the paged list;
//! - [`recordings`]: the `Recording` resource — list, get, the audio (byte ranges), delete;
//! - [`query`]: strict query-parameter parsing;
//! - [`error`]: the `{"api_id","error"}` error body;
//! - [`fleet`]: with several nodes on PostgreSQL, requests for a call another node holds
//!   are passed to it;
//! - [`health`], [`metrics`]: the operator's endpoints (no authentication).
//!
//! Every path of the API works with and without the trailing slash: Vobiz's Fern SDK
//! sends `…/Call/{uuid}` and `…/Call`, the older SDKs and Plivo's append `/`. Anything
//! else under the API answers a JSON 404 (405 for a wrong method), and every response
//! of 400 or more is logged with the peer, method, path and reason ([`access_log`]).

pub mod auth;
pub mod calls;
pub mod cdrs;
pub mod error;
pub mod fleet;
pub mod health;
pub mod metrics;
pub mod outbound;
pub mod query;
pub mod recordings;

use crate::app::outbox::OutboxStatsSource;
use crate::call::live::LiveCalls;
use crate::config::Config;
use crate::esl::counters::EslCounters;
use crate::metrics::Metrics;
use crate::store::StoreHandle;
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use error::{ApiError, Rejection};
use std::net::SocketAddr;
use std::sync::Arc;

/// Everything the handlers read; cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub config: Arc<Config>,
    pub store: StoreHandle,
    pub live: LiveCalls,
    pub metrics: Arc<Metrics>,
    pub esl: Arc<EslCounters>,
    pub outbox: OutboxStatsSource,
    /// Where the application reaches this API (`api.public_url`, or the bound address):
    /// the base of recording URLs.
    pub public_base: Arc<str>,
    /// Places `POST Call/` calls; `None` without a `[switch]` (then 503).
    pub outbound: Option<crate::call::freeswitch::originate::Dialers>,
    /// This node's fleet, with a PostgreSQL store shared by several nodes (SPEC §14):
    /// requests for calls another node holds are passed to it ([`fleet`]).
    pub fleet: Option<fleet::Fleet>,
}

/// The base of every REST path (SPEC §6).
pub const ACCOUNT_BASE: &str = "/api/v1/Account/{auth_id}";

/// The whole HTTP surface. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so rejections log the peer.
pub fn router(state: ApiState) -> Router {
    let calls = get(calls::get_calls).post(outbound::make_call);
    let call = get(calls::get_call).delete(calls::hangup);
    let stop_recording = axum::routing::delete(recordings::stop_call_recordings);
    let recordings = get(recordings::list);
    let recording = get(recordings::get).delete(recordings::delete);
    Router::new()
        .route("/health", get(health::health))
        .route("/metrics", get(metrics::metrics))
        .route(&format!("{ACCOUNT_BASE}/Call"), calls.clone())
        .route(&format!("{ACCOUNT_BASE}/Call/"), calls)
        .route(&format!("{ACCOUNT_BASE}/Call/{{call_uuid}}"), call.clone())
        .route(&format!("{ACCOUNT_BASE}/Call/{{call_uuid}}/"), call)
        .route(
            &format!("{ACCOUNT_BASE}/Call/{{call_uuid}}/Record"),
            stop_recording.clone(),
        )
        .route(
            &format!("{ACCOUNT_BASE}/Call/{{call_uuid}}/Record/"),
            stop_recording,
        )
        .route(&format!("{ACCOUNT_BASE}/Recording"), recordings.clone())
        .route(&format!("{ACCOUNT_BASE}/Recording/"), recordings)
        .route(
            &format!("{ACCOUNT_BASE}/Recording/{{recording}}"),
            recording.clone(),
        )
        .route(
            &format!("{ACCOUNT_BASE}/Recording/{{recording}}/"),
            recording,
        )
        .fallback(no_such_resource)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(access_log))
        .with_state(state)
}

async fn no_such_resource() -> ApiError {
    ApiError::not_found("no such resource")
}

async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not supported on this resource"),
    )
}

/// Logs every request at debug, and every rejection (status ≥ 400) with its reason:
/// 401 at warn (someone is knocking), other 4xx at info, 5xx at error. Credentials and
/// query strings are never logged.
async fn access_log(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "-".into());
    let response = next.run(request).await;
    let status = response.status();
    let reason = response
        .extensions()
        .get::<Rejection>()
        .map(|r| r.0.as_str())
        .unwrap_or("");
    if status == StatusCode::UNAUTHORIZED {
        tracing::warn!(%peer, %method, %path, status = status.as_u16(), reason, "REST request rejected");
    } else if status.is_server_error() {
        tracing::error!(%peer, %method, %path, status = status.as_u16(), reason, "REST request failed");
    } else if status.is_client_error() {
        tracing::info!(%peer, %method, %path, status = status.as_u16(), reason, "REST request rejected");
    } else {
        tracing::debug!(%peer, %method, %path, status = status.as_u16(), "REST request");
    }
    response
}
