//! Request signing (SPEC §7): every fetch and callback carries
//! `X-Voxbridge-Signature: t=<unix>,v1=<hex HMAC-SHA256(auth_token, t + "." + method + url + "." + body)>`.
//!
//! Unlike Vobiz's V2/V3 signatures, the body is covered and the timestamp bounds replay.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header name, as sent.
pub const SIGNATURE_HEADER: &str = "X-Voxbridge-Signature";

/// How far a receiver should accept the signature's time from its own clock.
pub const SIGNATURE_WINDOW_SECS: i64 = 300;

/// The hex HMAC over `t.METHODurl.body`.
pub fn signature(auth_token: &str, unix_time: i64, method: &str, url: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(auth_token.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(unix_time.to_string().as_bytes());
    mac.update(b".");
    mac.update(method.as_bytes());
    mac.update(url.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The full header value `t=<unix>,v1=<hex>`.
pub fn header_value(
    auth_token: &str,
    unix_time: i64,
    method: &str,
    url: &str,
    body: &[u8],
) -> String {
    format!(
        "t={unix_time},v1={}",
        signature(auth_token, unix_time, method, url, body)
    )
}

/// Why a signature was not accepted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("signature header is malformed (expected t=<unix>,v1=<hex>)")]
    Malformed,
    #[error("signature time {0} is outside the {SIGNATURE_WINDOW_SECS} s window")]
    Expired(i64),
    #[error("signature does not match")]
    Mismatch,
}

/// Checks a received header value: the time window, then the HMAC in constant time.
/// This is what a receiving application does; voxbridge's own examples use it.
pub fn verify(
    auth_token: &str,
    header: &str,
    now_unix: i64,
    method: &str,
    url: &str,
    body: &[u8],
) -> Result<(), VerifyError> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = Some(v),
            _ => {}
        }
    }
    let (t, v1) = t.zip(v1).ok_or(VerifyError::Malformed)?;
    if (now_unix - t).abs() > SIGNATURE_WINDOW_SECS {
        return Err(VerifyError::Expired(t));
    }
    let expected = signature(auth_token, t, method, url, body);
    use subtle::ConstantTimeEq;
    if expected.as_bytes().ct_eq(v1.as_bytes()).into() {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies() {
        let h = header_value(
            "tok",
            1_700_000_000,
            "POST",
            "http://a/b?x=1",
            b"CallUUID=1",
        );
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(
            verify(
                "tok",
                &h,
                1_700_000_010,
                "POST",
                "http://a/b?x=1",
                b"CallUUID=1"
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                "tok",
                &h,
                1_700_000_010,
                "POST",
                "http://a/b?x=1",
                b"CallUUID=2"
            ),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(
                "other",
                &h,
                1_700_000_010,
                "POST",
                "http://a/b?x=1",
                b"CallUUID=1"
            ),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(
                "tok",
                &h,
                1_700_001_000,
                "POST",
                "http://a/b?x=1",
                b"CallUUID=1"
            ),
            Err(VerifyError::Expired(1_700_000_000))
        );
        assert_eq!(
            verify("tok", "garbage", 0, "GET", "u", b""),
            Err(VerifyError::Malformed)
        );
    }
}
