//! `GET /metrics`: the Prometheus text format, assembled at scrape time from
//! [`crate::metrics::Metrics`] and the counters the other parts keep (see
//! [`crate::metrics::Scrape`]).

use super::ApiState;
use crate::metrics::Scrape;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use std::time::Duration;

/// A scrape does not wait longer than this for the backlog count.
const BACKLOG_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    let outbox_backlog =
        match tokio::time::timeout(BACKLOG_TIMEOUT, state.store.outbox_backlog()).await {
            Ok(Ok(n)) => Some(n),
            // The store logged and counted its error; the sample is left out.
            Ok(Err(_)) => None,
            Err(_) => {
                tracing::warn!("the outbox backlog count timed out; left out of this scrape");
                None
            }
        };
    let health = state.store.health();
    let text = state.metrics.render(&Scrape {
        live_calls: state.live.len() as u64,
        outbox_backlog,
        deliveries: state.outbox.read(),
        store_errors: health.error_count,
        store_ok: health.ok,
        esl: state.esl.snapshot(),
    });
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
