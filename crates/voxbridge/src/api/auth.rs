//! REST authentication (SPEC §6, §7): the credentials of a configured `[[account]]`, in
//! `X-Auth-ID` + `X-Auth-Token` headers (Vobiz) or HTTP Basic `auth_id:auth_token`
//! (Plivo's SDKs), and the `{auth_id}` in the path must name that same account.
//!
//! - When `X-Auth-ID` is present the headers are used and `Authorization` is ignored:
//!   Vobiz's Fern SDK sends both the X-Auth headers and an `Authorization: Bearer` token.
//! - Comparisons run in constant time over SHA-256 digests of both sides, so neither the
//!   content nor the length of a configured id or token leaks through timing; every
//!   account is compared, matching or not.
//! - A path `auth_id` that differs from the credentials' is 401, like wrong credentials:
//!   a valid account is not told whether another account exists.
//! - With no account configured, every request is 401 (SPEC §8).

use super::error::ApiError;
use super::ApiState;
use crate::config::Account;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The account a request was authenticated as; its id equals the path's `{auth_id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub account_id: String,
}

/// Credentials as presented, before they are checked.
#[derive(Debug, PartialEq, Eq)]
struct Presented {
    auth_id: String,
    auth_token: String,
}

impl FromRequestParts<ApiState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let path_id = RawPathParams::from_request_parts(parts, state)
            .await
            .ok()
            .and_then(|params| {
                params
                    .iter()
                    .find(|(name, _)| *name == "auth_id")
                    .map(|(_, value)| value.to_string())
            })
            .ok_or_else(|| ApiError::unauthorized("the path names no account"))?;
        authenticate(&state.config.accounts, &parts.headers, &path_id)
    }
}

/// Checks the request's credentials against the configured accounts and the path.
fn authenticate(
    accounts: &[Account],
    headers: &HeaderMap,
    path_auth_id: &str,
) -> Result<Authenticated, ApiError> {
    if accounts.is_empty() {
        return Err(ApiError::unauthorized(
            "no account is configured on this server; the REST API is disabled",
        ));
    }
    let presented = presented(headers)?;
    let account = matching_account(accounts, &presented)
        .ok_or_else(|| ApiError::unauthorized("invalid credentials"))?;
    if account.auth_id != path_auth_id {
        return Err(ApiError::unauthorized(
            "the auth_id in the path does not match the credentials",
        ));
    }
    Ok(Authenticated {
        account_id: account.auth_id.clone(),
    })
}

/// Reads `X-Auth-ID`/`X-Auth-Token`, else `Authorization: Basic`.
fn presented(headers: &HeaderMap) -> Result<Presented, ApiError> {
    let text = |name: &str| -> Result<Option<String>, ApiError> {
        match headers.get(name) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .map(|s| Some(s.trim().to_string()))
                .map_err(|_| ApiError::unauthorized(format!("header {name} is not valid text"))),
        }
    };
    if let Some(auth_id) = text("x-auth-id")? {
        let auth_token = text("x-auth-token")?.ok_or_else(|| {
            ApiError::unauthorized("header X-Auth-ID is present but X-Auth-Token is missing")
        })?;
        return Ok(Presented {
            auth_id,
            auth_token,
        });
    }
    if let Some(authorization) = text("authorization")? {
        let (scheme, rest) = authorization
            .split_once(' ')
            .unwrap_or((authorization.as_str(), ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return basic(rest.trim());
        }
        return Err(ApiError::unauthorized(format!(
            "Authorization scheme {scheme:?} is not accepted alone: send X-Auth-ID and \
             X-Auth-Token, or HTTP Basic"
        )));
    }
    Err(ApiError::unauthorized(
        "authentication required: X-Auth-ID and X-Auth-Token headers, or HTTP Basic",
    ))
}

fn basic(encoded: &str) -> Result<Presented, ApiError> {
    let bad = || ApiError::unauthorized("malformed HTTP Basic credentials");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (auth_id, auth_token) = text.split_once(':').ok_or_else(bad)?;
    Ok(Presented {
        auth_id: auth_id.to_string(),
        auth_token: auth_token.to_string(),
    })
}

/// The account whose id and token both equal the presented ones. Every account is
/// compared (no early exit), in constant time per comparison.
fn matching_account<'a>(accounts: &'a [Account], presented: &Presented) -> Option<&'a Account> {
    let id = Sha256::digest(presented.auth_id.as_bytes());
    let token = Sha256::digest(presented.auth_token.as_bytes());
    let mut found = None;
    for account in accounts {
        let id_eq = Sha256::digest(account.auth_id.as_bytes()).ct_eq(&id);
        let token_eq = Sha256::digest(account.auth_token.as_bytes()).ct_eq(&token);
        if bool::from(id_eq & token_eq) && found.is_none() {
            found = Some(account);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accounts() -> Vec<Account> {
        vec![
            Account {
                auth_id: "MA1".into(),
                auth_token: "token-one".into(),
            },
            Account {
                auth_id: "MA2".into(),
                auth_token: "token-two".into(),
            },
        ]
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn basic_header(user_pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    }

    #[test]
    fn x_auth_headers_and_basic_are_accepted() {
        let h = headers(&[("x-auth-id", "MA2"), ("x-auth-token", "token-two")]);
        assert_eq!(
            authenticate(&accounts(), &h, "MA2").unwrap().account_id,
            "MA2"
        );
        let h = headers(&[("authorization", &basic_header("MA1:token-one"))]);
        assert_eq!(
            authenticate(&accounts(), &h, "MA1").unwrap().account_id,
            "MA1"
        );
        // The Fern SDK's extra Bearer header does not get in the way.
        let h = headers(&[
            ("x-auth-id", "MA1"),
            ("x-auth-token", "token-one"),
            ("authorization", "Bearer something"),
        ]);
        assert!(authenticate(&accounts(), &h, "MA1").is_ok());
    }

    #[test]
    fn wrong_or_missing_credentials_are_401() {
        let cases: Vec<(HeaderMap, &str, &str)> = vec![
            (headers(&[]), "MA1", "authentication required"),
            (
                headers(&[("x-auth-id", "MA1")]),
                "MA1",
                "X-Auth-Token is missing",
            ),
            (
                headers(&[("x-auth-id", "MA1"), ("x-auth-token", "token-two")]),
                "MA1",
                "invalid credentials",
            ),
            (
                headers(&[("x-auth-id", "MA1"), ("x-auth-token", "token-one")]),
                "MA2",
                "does not match",
            ),
            (
                headers(&[("authorization", "Basic !!!")]),
                "MA1",
                "malformed",
            ),
            (
                headers(&[("authorization", &basic_header("MA1"))]),
                "MA1",
                "malformed",
            ),
            (
                headers(&[("authorization", "Bearer token-one")]),
                "MA1",
                "not accepted alone",
            ),
            (
                headers(&[("x-auth-id", "MA1"), ("x-auth-token", "token-one-longer")]),
                "MA1",
                "invalid credentials",
            ),
        ];
        for (h, path, want) in cases {
            let e = authenticate(&accounts(), &h, path).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::UNAUTHORIZED);
            assert!(e.message.contains(want), "{:?} → {}", h, e.message);
        }
    }

    #[test]
    fn no_accounts_means_everything_is_401() {
        let h = headers(&[("x-auth-id", "MA1"), ("x-auth-token", "token-one")]);
        let e = authenticate(&[], &h, "MA1").unwrap_err();
        assert!(e.message.contains("no account is configured"));
    }
}
