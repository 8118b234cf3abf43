//! `GET /health`: 200 `{"status":"ok",…}` while the store works, 503
//! `{"status":"degraded",…}` with the store's last error when its most recent operation
//! failed — calls go on without the store (SPEC §2), so "degraded", not "down".
//!
//! Not authenticated, like `/metrics`: both are for the operator's probes and scrapers,
//! and the API listens on loopback unless configured otherwise.

use super::ApiState;
use crate::record::call::format_rfc3339;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct HealthResponse {
    /// `ok` or `degraded`.
    pub status: &'static str,
    pub store: StoreStatus,
    /// Calls this process controls now.
    pub live_calls: usize,
}

#[derive(Debug, Serialize)]
pub struct StoreStatus {
    pub ok: bool,
    /// Errors since start.
    pub error_count: u64,
    pub last_error: Option<String>,
    /// RFC 3339, UTC.
    pub last_error_at: Option<String>,
}

pub async fn health(State(state): State<ApiState>) -> impl IntoResponse {
    let h = state.store.health();
    let body = HealthResponse {
        status: if h.ok { "ok" } else { "degraded" },
        store: StoreStatus {
            ok: h.ok,
            error_count: h.error_count,
            last_error: h.last_error,
            last_error_at: h.last_error_at.map(format_rfc3339),
        },
        live_calls: state.live.len(),
    };
    let code = if h.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
