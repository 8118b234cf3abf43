//! `examples/app.rs`, compiled in as a module and served on 127.0.0.1: its signature
//! check against hand-made requests, its documents against voxbridge's own parser, and
//! the whole path — simulator → voxbridge → the example app → callbacks — with both the
//! right and a wrong account token.

#[allow(dead_code)]
#[path = "../examples/app.rs"]
mod app;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use voxbridge::app::sign;
use voxbridge::config::{Account, Config, Route};
use voxbridge::document::{self, Dialect};
use voxbridge::store::{DeliveryState, StoredCdr};
use voxbridge_sim::{CallScript, Outcome, Sim, SimConfig};

const TOKEN: &str = "example-token";

async fn start_app(public_url: Option<&str>) -> (SocketAddr, Arc<app::AppState>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = app::AppState::new(TOKEN, public_url);
    let router = app::router(state.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (addr, state)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A request as voxbridge sends it, signed with `token` at `t` over `signed_url`.
async fn send(
    url: &str,
    method: &str,
    body: &str,
    signature: Option<(&str, i64, &str)>,
) -> reqwest::Response {
    let client = voxbridge::http_client::builder().build().unwrap();
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client
        .request(m, url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string());
    if let Some((token, t, signed_url)) = signature {
        req = req.header(
            sign::SIGNATURE_HEADER,
            sign::header_value(token, t, method, signed_url, body.as_bytes()),
        );
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn every_request_must_carry_a_valid_signature() {
    let (addr, state) = start_app(None).await;
    let url = format!("http://{addr}/answer");
    let body = "CallUUID=u1&From=15551230000&To=7001&CallerName=Bob&Event=StartApp";

    let r = send(&url, "POST", body, None).await;
    assert_eq!(r.status(), 401);
    let r = send(&url, "POST", body, Some(("other-token", now(), &url))).await;
    assert_eq!(r.status(), 401);
    let r = send(&url, "POST", body, Some((TOKEN, now() - 600, &url))).await;
    assert_eq!(r.status(), 401, "a signature older than 5 min is refused");
    let other_path = format!("http://{addr}/busy");
    let r = send(&url, "POST", body, Some((TOKEN, now(), &other_path))).await;
    assert_eq!(r.status(), 401, "the URL is covered");
    // Signed over one body, sent with another.
    let client = voxbridge::http_client::builder().build().unwrap();
    let r = client
        .post(&url)
        .header(
            sign::SIGNATURE_HEADER,
            sign::header_value(TOKEN, now(), "POST", &url, body.as_bytes()),
        )
        .body(body.replace("Bob", "Eve"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the body is covered");
    let r = send(
        &format!("http://{addr}/hangup"),
        "POST",
        "Event=Hangup",
        None,
    )
    .await;
    assert_eq!(r.status(), 401, "callbacks are checked too");

    let refused = state.refused();
    assert_eq!(refused.len(), 6, "{refused:?}");
    assert!(
        refused[0].contains("no X-Voxbridge-Signature"),
        "{refused:?}"
    );
    assert!(refused[1].contains("does not match"), "{refused:?}");
    assert!(refused[2].contains("outside"), "{refused:?}");
    assert!(state.callbacks().is_empty());

    let r = send(&url, "POST", body, Some((TOKEN, now(), &url))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/xml");
    let text = r.text().await.unwrap();
    assert!(text.contains("Hello Bob, thank you for calling."), "{text}");

    // GET: the parameters are in the query, which the signature covers.
    let get_url = format!("http://{addr}/answer?CallUUID=u2&CallerName=Ann&Event=StartApp");
    let r = send(&get_url, "GET", "", Some((TOKEN, now(), &get_url))).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Hello Ann,"));
    assert_eq!(state.refused().len(), 6);
}

#[tokio::test]
async fn behind_a_proxy_the_public_url_is_what_is_verified() {
    let (addr, state) = start_app(Some("https://app.example.com/")).await;
    let local = format!("http://{addr}/busy");
    let public = "https://app.example.com/busy";
    let r = send(
        &local,
        "POST",
        "Event=StartApp",
        Some((TOKEN, now(), public)),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = send(
        &local,
        "POST",
        "Event=StartApp",
        Some((TOKEN, now(), &local)),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(state.refused().len(), 1);
}

#[tokio::test]
async fn every_document_is_valid_for_voxbridge_and_caller_text_is_escaped() {
    let (addr, _state) = start_app(None).await;
    for (path, dialect) in [
        ("/answer", Dialect::Xml),
        ("/busy", Dialect::Xml),
        ("/voxml", Dialect::VoxMl),
        ("/after-a-minute", Dialect::Xml),
        ("/post-call-flow", Dialect::Xml),
    ] {
        let url = format!("http://{addr}{path}");
        let body = "CallUUID=u&CallerName=%3CBob%20%26%20%22Co%22%3E&Event=StartApp";
        let r = send(&url, "POST", body, Some((TOKEN, now(), &url))).await;
        assert_eq!(r.status(), 200, "{path}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert_eq!(Dialect::from_content_type(&ct), Some(dialect), "{path}");
        let bytes = r.bytes().await.unwrap();
        let doc = document::parse(&bytes, dialect);
        assert!(
            doc.is_ok(),
            "{path}: {:?}\n{}",
            doc.err(),
            String::from_utf8_lossy(&bytes)
        );
        if path == "/answer" {
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                text.contains("Hello &lt;Bob &amp; &quot;Co&quot;&gt;,"),
                "{text}"
            );
        }
        if path == "/post-call-flow" {
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                text.contains(&format!("postCallUrl=\"http://{addr}/post-call\"")),
                "{text}"
            );
        }
    }
}

/// The CDR once none of its callbacks is pending.
async fn settled(running: &voxbridge::server::Running, account: &str, uuid: &str) -> StoredCdr {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(cdr)) = running.store.cdr(account, uuid).await {
            if !cdr.deliveries.is_empty()
                && cdr
                    .deliveries
                    .iter()
                    .all(|d| d.status != DeliveryState::Pending)
            {
                return cdr;
            }
        }
        assert!(
            Instant::now() < deadline,
            "callbacks of {uuid} still pending"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voxbridge_calls_through_the_example_app() {
    let (addr, state) = start_app(None).await;
    let base = format!("http://{addr}");
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.esl.listen = "127.0.0.1:0".parse().unwrap();
    config.api.listen = "127.0.0.1:0".parse().unwrap();
    config.store.url = format!("sqlite://{}", dir.path().join("vb.db").display());
    config.accounts = vec![
        Account {
            auth_id: "MA0000000001".into(),
            auth_token: TOKEN.into(),
        },
        Account {
            auth_id: "MA0000000002".into(),
            auth_token: "not-the-apps-token".into(),
        },
    ];
    config.app.default_hangup_url = format!("{base}/hangup");
    config.app.status_callback_url = format!("{base}/status");
    config.outbox.initial_backoff = 0.1;
    let route = |number: &str, path: &str, account: &str| Route {
        destination: number.into(),
        answer_url: format!("{base}{path}"),
        account: account.into(),
        ..Route::default()
    };
    config.routes = vec![
        route("7001", "/answer", "MA0000000001"),
        route("7002", "/busy", "MA0000000001"),
        route("7003", "/post-call-flow", "MA0000000001"),
        route("7009", "/answer", "MA0000000002"),
    ];
    let running = voxbridge::server::start(config).await.unwrap();

    let sim = Sim::new(SimConfig {
        speed: 20.0,
        ..SimConfig::default()
    });
    let call = |number: &str| {
        sim.place_call(
            CallScript::ringing()
                .destination(number)
                .caller("15551230000", "Bob")
                .originate_timeout(Duration::from_secs(3600)),
            running.esl_addr,
        )
    };
    let greeting = call("7001");
    let busy = call("7002");
    let post_call = call("7003");
    let wrong_token = call("7009");

    let limit = Duration::from_secs(20);
    let greeting = greeting.report_within(limit).await.expect("greeting ends");
    assert!(
        matches!(greeting.outcome, Outcome::Bye { .. }),
        "{:?}",
        greeting.outcome
    );
    let spoken: Vec<&str> = greeting
        .apps()
        .iter()
        .filter(|a| a.name == "speak")
        .map(|a| a.arg.as_str())
        .collect();
    assert_eq!(
        spoken,
        [
            "flite|slt|Hello Bob, thank you for calling.",
            "flite|slt|Goodbye."
        ]
    );
    let busy = busy.report_within(limit).await.expect("busy ends");
    assert_eq!(busy.sip_code(), Some(486));
    assert!(!busy.answered());
    let post_call = post_call
        .report_within(limit)
        .await
        .expect("post-call ends");
    assert!(matches!(post_call.outcome, Outcome::Bye { .. }));
    let wrong = wrong_token.report_within(limit).await.expect("refused");
    assert_eq!(
        wrong.sip_code(),
        Some(603),
        "the app refused the fetch, so the call is rejected"
    );

    for (report, callbacks) in [(&greeting, 2), (&busy, 2), (&post_call, 3)] {
        let cdr = settled(&running, "MA0000000001", &report.uuid).await;
        assert_eq!(cdr.deliveries.len(), callbacks, "{:?}", cdr.deliveries);
        for d in &cdr.deliveries {
            assert_eq!(
                d.status,
                DeliveryState::Delivered,
                "{:?} {:?}",
                d.kind,
                d.last_error
            );
        }
    }
    let got = state.callbacks();
    let hangup_of = |uuid: &str| {
        got.iter()
            .find(|c| {
                c.kind == "hangup" && c.fields.get("CallUUID").map(String::as_str) == Some(uuid)
            })
            .unwrap_or_else(|| panic!("no hangup callback for {uuid}: {got:?}"))
    };
    let h = hangup_of(&busy.uuid);
    assert_eq!(h.fields["HangupCause"], "USER_BUSY");
    assert_eq!(h.fields["HangupSource"], "Answer XML");
    assert_eq!(h.fields["HangupCauseName"], "Busy Line");
    assert_eq!(h.fields["BillDuration"], "0");
    let h = hangup_of(&greeting.uuid);
    assert_eq!(h.fields["HangupCauseName"], "Normal Hangup");
    assert!(!h.duplicate);
    assert!(got.iter().any(|c| c.kind == "post-call"
        && c.fields.get("CallUUID") == Some(&post_call.uuid)
        && c.fields.get("Event").map(String::as_str) == Some("PostCall")));
    assert!(got.iter().any(|c| c.kind == "status"
        && c.fields.get("call_uuid") == Some(&greeting.uuid)
        && c.fields.get("event").map(String::as_str) == Some("call-ended")));

    // The call signed with another account's token: its fetch and its callbacks were
    // refused by the app (401 is final, not retried).
    let cdr = settled(&running, "MA0000000002", &wrong.uuid).await;
    assert_eq!(cdr.record.hangup_source.as_str(), "Error");
    assert!(cdr
        .deliveries
        .iter()
        .all(|d| d.status == DeliveryState::Failed && d.last_status == Some(401)));
    let refused = state.refused();
    assert!(
        refused
            .iter()
            .any(|r| r.starts_with("POST /answer: signature does not match")),
        "{refused:?}"
    );
    assert!(
        refused
            .iter()
            .any(|r| r.starts_with("POST /hangup: signature does not match")),
        "{refused:?}"
    );
    assert!(!got
        .iter()
        .any(|c| c.fields.get("CallUUID") == Some(&wrong.uuid)));

    running.shutdown().await;
}
