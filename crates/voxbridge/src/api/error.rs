//! Error responses of the REST API: `{"api_id": "<fresh uuid>", "error": "<what was wrong>"}`,
//! the shape Vobiz uses and its SDKs read (they take the message from `error`).
//!
//! Every error response also carries its message in a response extension, so the one
//! logging layer ([`super::access_log`]) can write a line naming the rejection without
//! each handler logging on its own.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A request the API refuses or could not serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

/// The message of an error response, for the access log.
#[derive(Debug, Clone)]
pub struct Rejection(pub String);

#[derive(Serialize)]
struct ErrorBody<'a> {
    api_id: String,
    error: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 401: no or wrong credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 404: unknown to this account (never 403: an account must not learn that another
    /// account's call exists).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 400: a query parameter that is unknown or has a bad value.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 503: the store could not answer. The store has already logged and counted the
    /// error; the client may retry.
    pub fn store(error: &crate::store::StoreError) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the call store is unavailable: {error}"),
        )
    }
}

/// A fresh `api_id`, as every Vobiz response carries.
pub fn new_api_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            api_id: new_api_id(),
            error: &self.message,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // Lets curl and browsers know Basic is accepted.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"voxbridge\""),
            );
        }
        response.extensions_mut().insert(Rejection(self.message));
        response
    }
}
