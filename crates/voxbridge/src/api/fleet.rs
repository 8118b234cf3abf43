//! The REST API on every node of a fleet (SPEC §14): a request for a live call another
//! node holds is passed to that node and its answer relayed as it is.
//!
//! **How: HTTP to the owner's `[node] api_url`**, found in the call's live row joined to
//! the owner's heartbeat row. Chosen over LISTEN/NOTIFY because the owner's answer is
//! the REST answer (204, 404 if the call ended meanwhile, 502 if the switch refused),
//! which a notification cannot carry back; and because it needs nothing but what every
//! node already serves.
//!
//! **Credentials.** Every node of a fleet has the same `[[account]]`s, so the request is
//! passed on with the customer's own credentials (`X-Auth-ID`/`X-Auth-Token` or
//! `Authorization`) and the owner authenticates it exactly as it would a direct request —
//! no second, fleet-wide secret that could leak or drift. The forwarded request carries
//! [`FORWARDED_BY`] naming the sending node, and a node never forwards a request that
//! carries it, so a stale live row can never bounce a request around the fleet: at worst
//! the owner answers 404 itself.
//!
//! An owner that cannot be reached (it is dying; after `node.lease` a survivor takes its
//! calls over) is a 503 naming the node: retry.

use super::error::ApiError;
use crate::store::postgres::PostgresStore;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;

/// Set on a request one node passes to another; such a request is served locally only.
pub const FORWARDED_BY: &str = "x-voxbridge-forwarded-by";

/// Longest wait for the owner's answer (its own hangup waits at most 5 s for the call).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(8);

/// The headers that carry the customer's credentials.
const CREDENTIALS: [&str; 3] = ["x-auth-id", "x-auth-token", "authorization"];

/// This node in the fleet, as the API sees it.
#[derive(Clone)]
pub struct Fleet {
    store: Arc<PostgresStore>,
    client: reqwest::Client,
}

impl Fleet {
    pub fn new(store: Arc<PostgresStore>) -> Result<Self, String> {
        let client = crate::http_client::builder()
            .timeout(FORWARD_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the fleet's HTTP client: {e}"))?;
        Ok(Self { store, client })
    }

    pub fn node_id(&self) -> &str {
        self.store.node_id()
    }

    /// When another node holds the account's live call, passes the request to it and
    /// returns its answer; `None` when no other node does (answer locally) or the
    /// request was itself forwarded.
    pub async fn forward(
        &self,
        method: Method,
        account_id: &str,
        call_uuid: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Option<Result<Response, ApiError>> {
        self.forward_to(method, account_id, call_uuid, "", query, headers)
            .await
    }

    /// As [`Fleet::forward`], for the call's sub-resource `sub` (`Record/`: `Call/{uuid}/Record/`).
    pub async fn forward_to(
        &self,
        method: Method,
        account_id: &str,
        call_uuid: &str,
        sub: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Option<Result<Response, ApiError>> {
        if headers.contains_key(FORWARDED_BY) {
            return None;
        }
        let owner = match self.store.owner_of(account_id, call_uuid).await {
            Ok(Some(owner)) if owner.node_id != self.node_id() => owner,
            Ok(_) => return None,
            Err(e) => return Some(Err(ApiError::store(&e))),
        };
        let Some(api_url) = owner.api_url else {
            // Its node row is gone: it left or was taken over; the call is about to be
            // closed out by a survivor.
            return Some(Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "call {call_uuid} is held by node {} which is not running; a surviving node \
                     is taking it over, retry",
                    owner.node_id
                ),
            )));
        };
        let mut url = format!("{api_url}/api/v1/Account/{account_id}/Call/{call_uuid}/{sub}");
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            url.push('?');
            url.push_str(q);
        }
        let mut request = self
            .client
            .request(method.clone(), &url)
            .header(FORWARDED_BY, self.node_id());
        for name in CREDENTIALS {
            if let Some(value) = headers.get(HeaderName::from_static(name)) {
                request = request.header(name, value);
            }
        }
        tracing::info!(call_uuid, owner = %owner.node_id, %method, "REST request passed to the node holding the call");
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return Some(Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "call {call_uuid} is held by node {} which cannot be reached ({}); retry",
                        owner.node_id,
                        crate::store::postgres::error_chain(&e)
                    ),
                )))
            }
        };
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .cloned();
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Some(Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!("node {} answered but its body was lost: {e}", owner.node_id),
                )))
            }
        };
        let mut relayed = (status, body).into_response();
        if let Some(ct) = content_type {
            relayed
                .headers_mut()
                .insert(reqwest::header::CONTENT_TYPE, ct);
        }
        Some(Ok(relayed))
    }
}
