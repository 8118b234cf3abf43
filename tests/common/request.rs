//! Reading a request a test application received: its headers, and its form fields —
//! voxbridge sends callbacks as `application/x-www-form-urlencoded` bodies, and GET
//! fetches carry them in the query.

use axum::http::HeaderMap;

/// A header's value, when present and text.
pub fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The fields of a request: the query for GET, the body for anything else.
pub fn fields(method: &str, query: &str, body: &[u8]) -> Vec<(String, String)> {
    let raw: &[u8] = if method == "GET" {
        query.as_bytes()
    } else {
        body
    };
    form_urlencoded::parse(raw).into_owned().collect()
}

/// The first value of `key` among `fields`.
pub fn field(fields: Vec<(String, String)>, key: &str) -> Option<String> {
    fields.into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}
