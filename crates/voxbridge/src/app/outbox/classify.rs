//! What an attempt's result means for the row (SPEC §5.4): 2xx delivered; connect
//! errors, timeouts, 5xx and 429 retried; every other status — 404 and 410 included —
//! is a permanent failure, as is a request that cannot even be built (bad URL).
//!
//! 1xx and 3xx count as "other": redirects are not followed, since the signature names
//! the URL it was made for and a redirected POST would lose its body.

/// The verdict on one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    Retry,
    Permanent,
}

/// Why an attempt got no HTTP response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportFailure {
    /// Connection refused, unreachable, DNS, TLS handshake.
    Connect,
    /// No complete response within the request timeout.
    Timeout,
    /// The connection broke mid-request or the response was malformed.
    Broken,
    /// The request could not be built (bad URL, unsupported scheme).
    InvalidRequest,
}

pub fn classify_status(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        429 | 500..=599 => Verdict::Retry,
        _ => Verdict::Permanent,
    }
}

pub fn classify_failure(failure: TransportFailure) -> Verdict {
    match failure {
        TransportFailure::Connect | TransportFailure::Timeout | TransportFailure::Broken => {
            Verdict::Retry
        }
        TransportFailure::InvalidRequest => Verdict::Permanent,
    }
}

/// Sorts a reqwest error into a [`TransportFailure`].
pub fn transport_failure(e: &reqwest::Error) -> TransportFailure {
    if e.is_builder() {
        TransportFailure::InvalidRequest
    } else if e.is_timeout() {
        TransportFailure::Timeout
    } else if e.is_connect() {
        TransportFailure::Connect
    } else {
        TransportFailure::Broken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        for s in [200, 201, 202, 204, 299] {
            assert_eq!(classify_status(s), Verdict::Delivered, "{s}");
        }
        for s in [429, 500, 502, 503, 504, 599] {
            assert_eq!(classify_status(s), Verdict::Retry, "{s}");
        }
        for s in [
            400, 401, 403, 404, 405, 408, 410, 413, 422, 100, 301, 302, 307, 600, 0,
        ] {
            assert_eq!(classify_status(s), Verdict::Permanent, "{s}");
        }
    }

    #[test]
    fn transport_failures() {
        assert_eq!(classify_failure(TransportFailure::Connect), Verdict::Retry);
        assert_eq!(classify_failure(TransportFailure::Timeout), Verdict::Retry);
        assert_eq!(classify_failure(TransportFailure::Broken), Verdict::Retry);
        assert_eq!(
            classify_failure(TransportFailure::InvalidRequest),
            Verdict::Permanent
        );
    }

    #[tokio::test]
    async fn real_errors_are_sorted() {
        let client = crate::http_client::builder()
            .timeout(std::time::Duration::from_millis(300))
            .build()
            .unwrap();
        // Connection refused: bind, note the port, close it.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = client
            .post(format!("http://127.0.0.1:{port}/x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(transport_failure(&e), TransportFailure::Connect);

        // Accepts but never answers: timeout.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let (_sock, _) = listener.accept().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        });
        let e = client
            .post(format!("http://{addr}/x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(transport_failure(&e), TransportFailure::Timeout);
        hold.abort();

        let e = client.post("not a url").send().await.unwrap_err();
        assert_eq!(transport_failure(&e), TransportFailure::InvalidRequest);
    }
}
