//! Query parameters of the REST API, read strictly: an unknown or repeated parameter is a
//! 400 naming it. A misspelt filter must not silently return unfiltered data, and a
//! filter Vobiz has but voxbridge does not yet is "not supported", never ignored.

use super::error::ApiError;

/// The most CDRs one page may hold (SPEC §6).
pub const MAX_LIMIT: u32 = 100;
/// CDRs per page when `limit` is not given (SPEC §6).
pub const DEFAULT_LIMIT: u32 = 20;

/// The parameters of one request, validated against what its route accepts.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Params {
    /// `status=live` was given.
    pub live: bool,
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

impl Params {
    /// Parses `query` (without the `?`), accepting only the parameters in `allowed`.
    pub fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Self, ApiError> {
        let mut params = Params::default();
        let mut seen: Vec<String> = Vec::new();
        let query = query.unwrap_or("");
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            if key.is_empty() && value.is_empty() {
                continue;
            }
            if !allowed.contains(&key.as_ref()) {
                return Err(ApiError::bad_request(format!(
                    "query parameter {key:?} is not supported here (supported: {})",
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        allowed.join(", ")
                    }
                )));
            }
            if seen.iter().any(|k| k == key.as_ref()) {
                return Err(ApiError::bad_request(format!(
                    "query parameter {key:?} is given more than once"
                )));
            }
            seen.push(key.to_string());
            match key.as_ref() {
                "status" => {
                    if value != "live" {
                        return Err(ApiError::bad_request(format!(
                            "status={value:?} is not supported: only status=live (voxbridge \
                             has no call queue)"
                        )));
                    }
                    params.live = true;
                }
                "limit" => {
                    let limit = value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "limit={value:?}: expected a whole number from 1 to {MAX_LIMIT}"
                            ))
                        })?;
                    params.limit = Some(limit);
                }
                "offset" => {
                    let offset = value.parse::<u64>().map_err(|_| {
                        ApiError::bad_request(format!(
                            "offset={value:?}: expected a whole number, 0 or more"
                        ))
                    })?;
                    params.offset = Some(offset);
                }
                _ => {}
            }
        }
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &[&str] = &["status", "limit", "offset"];

    #[test]
    fn accepted_values() {
        assert_eq!(Params::parse(None, LIST).unwrap(), Params::default());
        let p = Params::parse(Some("limit=100&offset=40"), LIST).unwrap();
        assert_eq!((p.limit, p.offset, p.live), (Some(100), Some(40), false));
        assert!(Params::parse(Some("status=live"), LIST).unwrap().live);
        assert!(Params::parse(Some(""), &[]).is_ok());
    }

    #[test]
    fn errors_name_the_parameter() {
        for (query, want) in [
            ("limit=0", "limit=\"0\""),
            ("limit=101", "limit=\"101\""),
            ("limit=ten", "limit=\"ten\""),
            ("offset=-1", "offset=\"-1\""),
            ("status=queued", "status=\"queued\""),
            ("from_number=1", "\"from_number\" is not supported"),
            ("limit=1&limit=2", "more than once"),
        ] {
            let e = Params::parse(Some(query), LIST).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(e.message.contains(want), "{query}: {}", e.message);
        }
        let e = Params::parse(Some("limit=5"), &["status"]).unwrap_err();
        assert!(e.message.contains("supported: status"), "{}", e.message);
    }
}
