//! The HTTP side of voxbridge: the Vobiz-compatible REST API (SPEC §6), `/metrics` and
//! `/health`, as small axum handlers over an explicitly passed [`ApiState`].

use crate::app::outbox::OutboxStatsSource;
use crate::call::live::LiveCalls;
use crate::config::Config;
use crate::esl::counters::EslCounters;
use crate::metrics::Metrics;
use crate::store::StoreHandle;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
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
}

/// The whole HTTP surface.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// 200 when the store answers, 503 with the last store error otherwise.
async fn health(State(state): State<ApiState>) -> impl IntoResponse {
    let h = state.store.health();
    let body = serde_json::json!({
        "status": if h.ok { "ok" } else { "degraded" },
        "store": {
            "ok": h.ok,
            "error_count": h.error_count,
            "last_error": h.last_error,
        },
        "live_calls": state.live.len(),
    });
    let code = if h.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body))
}

async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    let text = state.metrics.render(crate::metrics::Gauges {
        outbox_backlog: 0,
        store_errors: state.store.health().error_count,
    });
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
