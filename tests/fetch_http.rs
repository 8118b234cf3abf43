//! The document fetcher against real HTTP servers on 127.0.0.1 (wiremock, and a raw
//! TCP server where wiremock cannot misbehave enough).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use voxbridge::app::fetch::{
    CallStatus, FetchConfig, FetchError, FetchFailure, FetchParams, FetchRequest, Fetcher,
};
use voxbridge::document::model::{FetchEvent, HttpMethod, Instruction};
use voxbridge::document::{Dialect, ErrorKind, MAX_DOCUMENT_BYTES};
use voxbridge::record::call::Direction;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const XML_DOC: &str = r#"<Response><Speak>Hello</Speak><Hangup reason="busy"/></Response>"#;
const JSON_DOC: &str = r#"{"voxml_version":"1.0","instructions":[{"verb":"Say","text":"Hello"},{"verb":"Hangup","reason":"busy"}]}"#;

fn xml_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(XML_DOC, "text/xml")
}

/// Short waits so the suite stays fast; the shapes are those of the defaults.
fn config() -> FetchConfig {
    FetchConfig {
        connect_timeout: Duration::from_secs(1),
        total_timeout: Duration::from_secs(2),
        retries: 2,
        backoff: vec![Duration::from_millis(50), Duration::from_millis(150)],
    }
}

fn fetcher() -> Fetcher {
    Fetcher::new(config()).expect("client builds")
}

fn params() -> Vec<(String, String)> {
    FetchParams {
        call_uuid: "6f1c7a52-0000-4000-8000-000000000001".into(),
        from: "+14155550100".into(),
        to: "2000".into(),
        caller_name: "Ann O'Neil & Co".into(),
        direction: Direction::Inbound,
        call_status: CallStatus::Ringing,
        event: FetchEvent::StartApp,
        forwarded_from: Some("3000".into()),
        account_id: "MA123".into(),
        extra: vec![("sip_h_X-Tenant".into(), "blue green".into())],
    }
    .to_pairs()
}

fn request<'a>(url: &'a str, params: &'a [(String, String)]) -> FetchRequest<'a> {
    FetchRequest {
        url,
        fallback_url: None,
        method: HttpMethod::Post,
        params,
        signing_token: None,
        asked_by: None,
    }
}

fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

#[tokio::test]
async fn posts_the_parameters_as_a_form_and_keeps_the_url_query() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/answer"))
        .respond_with(xml_ok())
        .expect(1)
        .mount(&server)
        .await;
    let url = format!("{}/answer?tenant=7&lang=en", server.uri());
    let params = params();
    let fetched = fetcher()
        .fetch(&request(&url, &params))
        .await
        .expect("document");

    assert_eq!(fetched.url, url);
    assert_eq!(fetched.attempts, 1);
    assert!(!fetched.from_fallback);
    assert_eq!(fetched.dialect, Dialect::Xml);
    assert_eq!(fetched.document.instructions.len(), 2);

    let reqs = server.received_requests().await.unwrap();
    let req = &reqs[0];
    assert_eq!(req.method.as_str(), "POST");
    assert_eq!(
        req.headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(req.url.query(), Some("tenant=7&lang=en"));
    assert_eq!(form_pairs(&req.body), params);
    assert!(req.headers.get("x-voxbridge-signature").is_none());
}

#[tokio::test]
async fn get_appends_the_parameters_to_the_existing_query() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/answer"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(JSON_DOC, "application/json; charset=utf-8"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let url = format!("{}/answer?tenant=7", server.uri());
    let params = params();
    let req = FetchRequest {
        method: HttpMethod::Get,
        ..request(&url, &params)
    };
    let fetched = fetcher().fetch(&req).await.expect("document");
    assert_eq!(fetched.dialect, Dialect::VoxMl);

    let reqs = server.received_requests().await.unwrap();
    assert_eq!(reqs[0].method.as_str(), "GET");
    assert!(reqs[0].body.is_empty());
    let query: Vec<(String, String)> = reqs[0].url.query_pairs().into_owned().collect();
    let mut expected = vec![("tenant".to_string(), "7".to_string())];
    expected.extend(params);
    assert_eq!(query, expected);
}

#[tokio::test]
async fn both_dialects_fetched_give_the_same_instructions() {
    let server = MockServer::start().await;
    Mock::given(path("/xml"))
        .respond_with(xml_ok())
        .mount(&server)
        .await;
    Mock::given(path("/json"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(JSON_DOC, "application/json"))
        .mount(&server)
        .await;
    let f = fetcher();
    let a = f
        .fetch(&request(&format!("{}/xml", server.uri()), &[]))
        .await
        .unwrap();
    let b = f
        .fetch(&request(&format!("{}/json", server.uri()), &[]))
        .await
        .unwrap();
    assert_eq!(a.document, b.document);
    assert_ne!(a.dialect, b.dialect);
}

/// Answers with the given statuses in turn (then the last one), recording when each
/// request arrived.
struct Sequence {
    statuses: Vec<u16>,
    seen: Arc<Mutex<Vec<Instant>>>,
}

impl Respond for Sequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut seen = self.seen.lock().unwrap();
        seen.push(Instant::now());
        let status = self.statuses[(seen.len() - 1).min(self.statuses.len() - 1)];
        if status == 200 {
            xml_ok()
        } else {
            ResponseTemplate::new(status)
        }
    }
}

#[tokio::test]
async fn retries_5xx_with_backoff_then_succeeds() {
    let server = MockServer::start().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    Mock::given(path("/answer"))
        .respond_with(Sequence {
            statuses: vec![503, 503, 200],
            seen: seen.clone(),
        })
        .expect(3)
        .mount(&server)
        .await;
    let url = format!("{}/answer", server.uri());
    let fetched = fetcher()
        .fetch(&request(&url, &[]))
        .await
        .expect("third attempt succeeds");
    assert_eq!(fetched.attempts, 3);
    assert_eq!(fetched.url, url);

    // The waits between attempts are at least the configured backoff, in order.
    let times = seen.lock().unwrap().clone();
    assert_eq!(times.len(), 3);
    assert!(
        times[1] - times[0] >= Duration::from_millis(50),
        "{:?}",
        times[1] - times[0]
    );
    assert!(
        times[2] - times[1] >= Duration::from_millis(150),
        "{:?}",
        times[2] - times[1]
    );
}

#[tokio::test]
async fn retries_429_and_gives_up_after_the_configured_attempts() {
    let server = MockServer::start().await;
    Mock::given(path("/answer"))
        .respond_with(ResponseTemplate::new(429))
        .expect(3)
        .mount(&server)
        .await;
    let url = format!("{}/answer", server.uri());
    let err = fetcher().fetch(&request(&url, &[])).await.unwrap_err();
    match &err {
        FetchError::NoDocument { attempts, failures } => {
            assert_eq!(*attempts, 3);
            assert_eq!(failures.len(), 1);
            assert_eq!(failures[0].failure, FetchFailure::Status { status: 429 });
            assert_eq!(failures[0].attempts, 3);
        }
        other => panic!("expected NoDocument, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!("could not get a document; {url}: HTTP 429 (after 3 attempts)")
    );
}

#[tokio::test]
async fn no_retry_on_404() {
    let server = MockServer::start().await;
    Mock::given(path("/answer"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    let url = format!("{}/answer", server.uri());
    let err = fetcher().fetch(&request(&url, &[])).await.unwrap_err();
    assert_eq!(err.attempts(), 1);
    assert!(matches!(
        &err,
        FetchError::NoDocument { failures, .. } if failures[0].failure == FetchFailure::Status { status: 404 }
    ));
}

#[tokio::test]
async fn http_redirects_are_not_followed() {
    let server = MockServer::start().await;
    Mock::given(path("/old"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/new"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/new"))
        .respond_with(xml_ok())
        .expect(0)
        .mount(&server)
        .await;
    let url = format!("{}/old", server.uri());
    let err = fetcher().fetch(&request(&url, &[])).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("could not get a document; {url}: HTTP 302 (redirects are not followed: configure the final URL)")
    );
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_retried() {
    let server = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(xml_ok().set_delay(Duration::from_secs(5)))
        .expect(2)
        .mount(&server)
        .await;
    let cfg = FetchConfig {
        total_timeout: Duration::from_millis(200),
        retries: 1,
        backoff: vec![Duration::from_millis(10)],
        ..config()
    };
    let url = format!("{}/slow", server.uri());
    let err = Fetcher::new(cfg)
        .unwrap()
        .fetch(&request(&url, &[]))
        .await
        .unwrap_err();
    match &err {
        FetchError::NoDocument { attempts, failures } => {
            assert_eq!(*attempts, 2);
            assert!(
                matches!(failures[0].failure, FetchFailure::Timeout(_)),
                "{:?}",
                failures[0]
            );
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn connect_errors_are_retried() {
    // A port that refuses connections while the test runs.
    let dead = tokio::net::TcpSocket::new_v4().unwrap();
    dead.bind(([127, 0, 0, 1], 0).into()).unwrap();
    let port = dead.local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/answer");
    let err = fetcher().fetch(&request(&url, &[])).await.unwrap_err();
    match &err {
        FetchError::NoDocument { attempts, failures } => {
            assert_eq!(*attempts, 3);
            assert!(
                matches!(failures[0].failure, FetchFailure::Connect(_)),
                "{:?}",
                failures[0]
            );
        }
        other => panic!("expected a connect failure, got {other:?}"),
    }
}

#[tokio::test]
async fn the_fallback_url_is_tried_once_after_the_retries() {
    let server = MockServer::start().await;
    Mock::given(path("/answer"))
        .respond_with(ResponseTemplate::new(500))
        .expect(3)
        .mount(&server)
        .await;
    Mock::given(path("/fallback"))
        .respond_with(xml_ok())
        .expect(1)
        .mount(&server)
        .await;
    let url = format!("{}/answer", server.uri());
    let fallback = format!("{}/fallback", server.uri());
    let params = params();
    let req = FetchRequest {
        fallback_url: Some(&fallback),
        ..request(&url, &params)
    };
    let fetched = fetcher().fetch(&req).await.expect("fallback serves");
    assert!(fetched.from_fallback);
    assert_eq!(fetched.url, fallback);
    assert_eq!(fetched.attempts, 4);
    // The fallback gets the same parameters.
    let reqs = server.received_requests().await.unwrap();
    let fb = reqs.iter().find(|r| r.url.path() == "/fallback").unwrap();
    assert_eq!(form_pairs(&fb.body), params);
}

#[tokio::test]
async fn a_failing_fallback_is_tried_only_once_and_both_failures_are_reported() {
    let server = MockServer::start().await;
    Mock::given(path("/answer"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/fallback"))
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .mount(&server)
        .await;
    let url = format!("{}/answer", server.uri());
    let fallback = format!("{}/fallback", server.uri());
    let req = FetchRequest {
        fallback_url: Some(&fallback),
        ..request(&url, &[])
    };
    let err = fetcher().fetch(&req).await.unwrap_err();
    assert_eq!(err.attempts(), 2);
    assert_eq!(
        err.to_string(),
        format!("could not get a document; {url}: HTTP 404; fallback {fallback}: HTTP 503")
    );
}

#[tokio::test]
async fn an_invalid_document_is_reported_as_such_without_retry_or_fallback() {
    let server = MockServer::start().await;
    Mock::given(path("/answer"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            "<Response>\n  <Hangup reason=\"later\"/>\n</Response>",
            "application/xml",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/fallback"))
        .respond_with(xml_ok())
        .expect(0)
        .mount(&server)
        .await;
    let url = format!("{}/answer", server.uri());
    let fallback = format!("{}/fallback", server.uri());
    let req = FetchRequest {
        fallback_url: Some(&fallback),
        ..request(&url, &[])
    };
    let err = fetcher().fetch(&req).await.unwrap_err();
    match &err {
        FetchError::InvalidDocument {
            url: u,
            dialect,
            attempts,
            error,
            failures,
        } => {
            assert_eq!(u, &url);
            assert_eq!(*dialect, Dialect::Xml);
            assert_eq!(*attempts, 1);
            assert!(failures.is_empty());
            assert_eq!(error.kind(), ErrorKind::InvalidValue);
        }
        other => panic!("expected InvalidDocument, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!("invalid Answer XML document from {url}: line 2, col 3: <Hangup> attribute reason=\"later\": expected rejected or busy")
    );
}

#[tokio::test]
async fn wrong_or_missing_content_type_is_no_document() {
    let server = MockServer::start().await;
    Mock::given(path("/html"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(XML_DOC, "text/html; charset=utf-8"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/none"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(XML_DOC.as_bytes()))
        .expect(1)
        .mount(&server)
        .await;
    let f = fetcher();
    let url = format!("{}/html", server.uri());
    let err = f.fetch(&request(&url, &[])).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("could not get a document; {url}: Content-Type \"text/html; charset=utf-8\" is not a document type, expected text/xml, application/xml or application/json")
    );
    let url = format!("{}/none", server.uri());
    let err = f.fetch(&request(&url, &[])).await.unwrap_err();
    match &err {
        FetchError::NoDocument { failures, .. } => {
            // wiremock labels raw bytes application/octet-stream; either way, not a document.
            assert!(
                matches!(failures[0].failure, FetchFailure::ContentType(_)),
                "{:?}",
                failures[0]
            );
        }
        other => panic!("expected NoDocument, got {other:?}"),
    }
}

#[tokio::test]
async fn oversized_documents_are_refused_without_retry() {
    let server = MockServer::start().await;
    let mut big = String::from("<Response>");
    big.push_str(&" ".repeat(MAX_DOCUMENT_BYTES));
    big.push_str("</Response>");
    Mock::given(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(big, "text/xml"))
        .expect(1)
        .mount(&server)
        .await;
    let url = format!("{}/big", server.uri());
    let err = fetcher().fetch(&request(&url, &[])).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "could not get a document; {url}: the document is larger than 102400 bytes (100 KiB)"
        )
    );
}

/// A server that streams an endless chunked body (no Content-Length): the fetcher must
/// stop reading at the limit rather than buffer it all.
#[tokio::test]
async fn oversized_chunked_documents_are_cut_off_at_the_limit() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = sock.read(&mut buf).await;
        let _ = sock
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n",
            )
            .await;
        let chunk = vec![b' '; 8192];
        let mut sent = 0usize;
        // Stop on its own after 10 MiB so a broken fetcher cannot hang the test.
        while sent < 10 * 1024 * 1024 {
            let head = format!("{:x}\r\n", chunk.len());
            if sock.write_all(head.as_bytes()).await.is_err()
                || sock.write_all(&chunk).await.is_err()
                || sock.write_all(b"\r\n").await.is_err()
            {
                return sent;
            }
            sent += chunk.len();
        }
        sent
    });
    let url = format!("http://{addr}/endless");
    let err = fetcher().fetch(&request(&url, &[])).await.unwrap_err();
    assert!(
        matches!(&err, FetchError::NoDocument { failures, .. } if failures[0].failure == FetchFailure::TooLarge),
        "{err:?}"
    );
    let sent = server.await.unwrap();
    assert!(
        sent < 10 * 1024 * 1024,
        "the fetcher kept reading: {sent} bytes"
    );
}

fn hmac_hex(key: &str, message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks the header the way an application would, with its own HMAC code.
fn verify_independently(req: &Request, token: &str) {
    let header = req
        .headers
        .get("x-voxbridge-signature")
        .expect("signature header")
        .to_str()
        .unwrap();
    let (t, v1) = header
        .split_once(",v1=")
        .and_then(|(t, v1)| Some((t.strip_prefix("t=")?, v1)))
        .expect("t=<unix>,v1=<hex>");
    let t: i64 = t.parse().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - t).abs() <= 300, "signature time {t} vs now {now}");
    // The URL as the receiver knows itself: its Host header, path and query.
    let host = req.headers.get("host").unwrap().to_str().unwrap();
    let mut url = format!("http://{host}{}", req.url.path());
    if let Some(q) = req.url.query() {
        url.push('?');
        url.push_str(q);
    }
    let mut message = format!("{t}.{}{url}.", req.method.as_str()).into_bytes();
    message.extend_from_slice(&req.body);
    assert_eq!(
        v1,
        hmac_hex(token, &message),
        "signature over {:?}",
        String::from_utf8_lossy(&message)
    );
    // And a wrong token does not verify.
    assert_ne!(v1, hmac_hex("not-the-token", &message));
}

#[tokio::test]
async fn requests_are_signed_over_the_exact_url_and_body() {
    let server = MockServer::start().await;
    Mock::given(path("/answer"))
        .respond_with(xml_ok())
        .expect(2)
        .mount(&server)
        .await;
    // The fragment never reaches the server, so it must not be signed either.
    let url = format!("{}/answer?tenant=7#section", server.uri());
    let params = params();
    let f = fetcher();
    for m in [HttpMethod::Post, HttpMethod::Get] {
        let req = FetchRequest {
            method: m,
            signing_token: Some("s3cr3t-token"),
            asked_by: None,
            ..request(&url, &params)
        };
        f.fetch(&req).await.expect("document");
    }
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        verify_independently(r, "s3cr3t-token");
    }
    // The GET signature covered the parameters in the query.
    assert!(reqs[1].url.query().unwrap().contains("CallUUID="));
}

#[tokio::test]
async fn file_documents_are_read_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let xml_path = dir.path().join("answer.xml");
    std::fs::write(&xml_path, XML_DOC).unwrap();
    let sniffed = dir.path().join("answer.doc");
    std::fs::write(&sniffed, format!("\n  {JSON_DOC}")).unwrap();

    let f = fetcher();
    let url = format!("file://{}", xml_path.display());
    let a = f.fetch(&request(&url, &[])).await.expect("xml file");
    assert_eq!((a.dialect, a.attempts), (Dialect::Xml, 1));
    let url = format!("file://{}", sniffed.display());
    let b = f
        .fetch(&request(&url, &[]))
        .await
        .expect("sniffed json file");
    assert_eq!(b.dialect, Dialect::VoxMl);
    assert_eq!(a.document, b.document);

    // Relative to the working directory (cargo runs tests from the crate root).
    let rel = f
        .fetch(&request("file://examples/documents/reject-busy.xml", &[]))
        .await
        .expect("relative file");
    assert!(matches!(
        rel.document.instructions[0],
        Instruction::Hangup(_)
    ));

    let big = dir.path().join("big.xml");
    std::fs::write(&big, vec![b' '; MAX_DOCUMENT_BYTES + 1]).unwrap();
    let err = f
        .fetch(&request(&format!("file://{}", big.display()), &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FetchError::NoDocument { failures, .. } if failures[0].failure == FetchFailure::TooLarge)
    );
}

#[tokio::test]
async fn a_missing_file_falls_back_to_http() {
    let server = MockServer::start().await;
    Mock::given(path("/fallback"))
        .respond_with(xml_ok())
        .expect(1)
        .mount(&server)
        .await;
    let fallback = format!("{}/fallback", server.uri());
    let req = FetchRequest {
        fallback_url: Some(&fallback),
        ..request("file:///nonexistent/voxbridge/answer.xml", &[])
    };
    let fetched = fetcher().fetch(&req).await.expect("fallback");
    assert!(fetched.from_fallback);
    assert_eq!(fetched.attempts, 2);
}

#[tokio::test]
async fn unusable_urls_are_no_document() {
    let f = fetcher();
    for url in ["ftp://example.com/a.xml", "not a url", ""] {
        let err = f.fetch(&request(url, &[])).await.unwrap_err();
        assert!(
            matches!(&err, FetchError::NoDocument { failures, attempts: 1 } if matches!(failures[0].failure, FetchFailure::BadUrl(_))),
            "{url}: {err:?}"
        );
    }
}
