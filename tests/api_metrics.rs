//! `/metrics` and `/health` of the real binary: counters move with calls, callbacks and
//! ESL errors; health turns 503 "degraded" with the store's error when the store fails.

mod api_support;

use api_support::*;
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;
use voxbridge_sim::{CallScript, Outcome, Sim, SimConfig};

/// Samples of a scrape, `name{labels}` → value.
fn scrape_of(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("name value");
            (name.to_string(), value.parse().expect("a number"))
        })
        .collect()
}

async fn scrape(vb: &Voxbridge) -> HashMap<String, f64> {
    let r = get(vb, "/metrics", Auth::None).await;
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.starts_with("text/plain; version=0.0.4"),
        "{r:?}"
    );
    scrape_of(&r.text)
}

fn value(s: &HashMap<String, f64>, key: &str) -> f64 {
    *s.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {s:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_after_calls() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start().await;
    let vb = Voxbridge::start(dir.path(), &config_text(dir.path(), &app, ""));
    let sim = Sim::new(SimConfig {
        speed: 20.0,
        ..SimConfig::default()
    });

    let before = scrape(&vb).await;
    assert_eq!(value(&before, "voxbridge_live_calls"), 0.0);
    assert_eq!(value(&before, "voxbridge_calls_started_total"), 0.0);
    assert_eq!(
        value(&before, "voxbridge_document_fetch_seconds_count"),
        0.0
    );
    assert_eq!(value(&before, "voxbridge_outbox_backlog"), 0.0);
    assert_eq!(value(&before, "voxbridge_esl_protocol_errors_total"), 0.0);
    assert_eq!(value(&before, "voxbridge_store_up"), 1.0);

    // Two busy rejections and one call hung up through the API.
    let busy = app.document("busy", r#"<Response><Hangup reason="busy"/></Response>"#);
    for _ in 0..2 {
        let report = sim
            .place_call(
                CallScript::ringing()
                    .var("voxbridge_answer_url", &busy)
                    .var("voxbridge_account", ONE.0),
                vb.esl,
            )
            .report_within(Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(report.sip_code(), Some(486));
    }
    let parked = sim.place_call(
        CallScript::ringing()
            .var("voxbridge_answer_url", &app.document("long", LONG_PLAY))
            .var("voxbridge_account", ONE.0),
        vb.esl,
    );
    let uuid = parked.uuid.clone();
    wait_live(&vb, ONE, &uuid).await;
    let during = scrape(&vb).await;
    assert_eq!(value(&during, "voxbridge_live_calls"), 1.0);
    assert_eq!(value(&during, "voxbridge_esl_connections_active"), 1.0);
    let r = delete(
        &vb,
        &format!("/api/v1/Account/{}/Call/{uuid}/", ONE.0),
        Auth::Headers(ONE.0, ONE.1),
    )
    .await;
    assert_eq!(r.status, 204);
    let report = parked.report_within(Duration::from_secs(10)).await.unwrap();
    assert!(matches!(report.outcome, Outcome::Bye { .. }), "{report:?}");

    // A peer that speaks no ESL: the connection is closed and counted.
    let esl = vb.esl;
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(esl).unwrap();
        let _ = s.write_all(b"Content-Length: banana\n\n");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut s, &mut sink);
    })
    .await
    .unwrap();

    // Wait until every callback is delivered, then read everything once.
    let after = {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let s = scrape(&vb).await;
            if value(
                &s,
                "voxbridge_callback_deliveries_total{outcome=\"delivered\"}",
            ) >= 3.0
                && value(&s, "voxbridge_live_calls") == 0.0
                && value(&s, "voxbridge_esl_connections_active") == 0.0
                // The delivered counter moves as the 2xx arrives; the row is marked
                // delivered in the store a moment later.
                && value(&s, "voxbridge_outbox_backlog") == 0.0
            {
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{s:?}\n{}",
                vb.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert_eq!(value(&after, "voxbridge_calls_started_total"), 3.0);
    assert_eq!(
        value(
            &after,
            "voxbridge_calls_ended_total{cause=\"USER_BUSY\",source=\"Answer XML\"}"
        ),
        2.0
    );
    assert_eq!(
        value(
            &after,
            "voxbridge_calls_ended_total{cause=\"NORMAL_CLEARING\",source=\"API\"}"
        ),
        1.0
    );
    assert_eq!(value(&after, "voxbridge_document_fetch_seconds_count"), 3.0);
    assert_eq!(
        value(
            &after,
            "voxbridge_document_fetch_seconds_bucket{le=\"+Inf\"}"
        ),
        3.0
    );
    assert!(value(&after, "voxbridge_document_fetch_seconds_sum") > 0.0);
    assert_eq!(value(&after, "voxbridge_document_fetch_errors_total"), 0.0);
    assert_eq!(
        value(
            &after,
            "voxbridge_callback_deliveries_total{outcome=\"delivered\"}"
        ),
        3.0
    );
    assert_eq!(
        value(
            &after,
            "voxbridge_callback_deliveries_total{outcome=\"failed\"}"
        ),
        0.0
    );
    assert_eq!(value(&after, "voxbridge_outbox_backlog"), 0.0);
    assert_eq!(
        value(&after, "voxbridge_esl_connections_accepted_total"),
        4.0
    );
    // The garbage peer broke the framing during the handshake: both count it.
    assert_eq!(value(&after, "voxbridge_esl_protocol_errors_total"), 1.0);
    assert_eq!(value(&after, "voxbridge_esl_handshake_failures_total"), 1.0);
    assert_eq!(value(&after, "voxbridge_store_errors_total"), 0.0);

    let health = get(&vb, "/health", Auth::None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json["status"], "ok");
    assert_eq!(health.json["live_calls"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_grows_while_the_application_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start().await;
    // Callbacks go to a port nobody listens on.
    // (bound, not listening: it refuses connections and stays ours while the test runs)
    let dead = tokio::net::TcpSocket::new_v4().unwrap();
    dead.bind(([127, 0, 0, 1], 0).into()).unwrap();
    let down = dead.local_addr().unwrap().port();
    let vb = Voxbridge::start(dir.path(), &config_text(dir.path(), &app, ""));
    let sim = Sim::new(SimConfig {
        speed: 20.0,
        ..SimConfig::default()
    });
    let busy = app.document("busy", r#"<Response><Hangup reason="busy"/></Response>"#);
    for _ in 0..2 {
        sim.place_call(
            CallScript::ringing()
                .var("voxbridge_answer_url", &busy)
                .var(
                    "voxbridge_hangup_url",
                    &format!("http://127.0.0.1:{down}/cb/hangup"),
                )
                .var("voxbridge_account", ONE.0),
            vb.esl,
        )
        .report_within(Duration::from_secs(10))
        .await
        .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = scrape(&vb).await;
        if value(&s, "voxbridge_outbox_backlog") == 2.0
            && value(
                &s,
                "voxbridge_callback_deliveries_total{outcome=\"retried\"}",
            ) >= 2.0
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_store_makes_health_degraded_and_the_api_503() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start().await;
    let vb = Voxbridge::start(dir.path(), &config_text(dir.path(), &app, ""));
    let health = get(&vb, "/health", Auth::None).await;
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(
        keys(&health.json),
        key_set(&["status", "store", "live_calls"])
    );
    assert_eq!(health.json["store"]["ok"], true);

    // Overwrite the database and its write-ahead log in place: every later read fails.
    for name in ["voxbridge.db", "voxbridge.db-wal"] {
        let path = dir.path().join(name);
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len == 0 {
            continue;
        }
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all(&vec![0x5a; len as usize]).unwrap();
        f.sync_all().unwrap();
    }
    let r = get(
        &vb,
        &format!("/api/v1/Account/{}/Call/", ONE.0),
        Auth::Headers(ONE.0, ONE.1),
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(keys(&r.json), key_set(&["api_id", "error"]));
    assert!(
        r.json["error"].as_str().unwrap().contains("store"),
        "{}",
        r.text
    );

    let health = get(&vb, "/health", Auth::None).await;
    assert_eq!(health.status, 503, "{}", health.text);
    assert_eq!(health.json["status"], "degraded");
    assert_eq!(health.json["store"]["ok"], false);
    assert!(health.json["store"]["error_count"].as_u64().unwrap() >= 1);
    assert!(
        !health.json["store"]["last_error"]
            .as_str()
            .unwrap()
            .is_empty(),
        "{}",
        health.text
    );
    // A scrape right after does not make the store look healthy again.
    let s = scrape(&vb).await;
    assert_eq!(value(&s, "voxbridge_store_up"), 0.0);
    assert!(value(&s, "voxbridge_store_errors_total") >= 1.0);
    let health = get(&vb, "/health", Auth::None).await;
    assert_eq!(health.status, 503);
}
