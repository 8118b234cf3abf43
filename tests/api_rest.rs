//! The REST API (SPEC §6) through the real `voxbridge serve` binary, the switch
//! simulator and a local application: authentication, account isolation, hang-up of a
//! live call mid-playback, live details, CDRs, trailing-slash variants, exact JSON
//! shapes, and one exchange in raw HTTP as `curl` sends it.

mod api_support;

use api_support::*;
use serde_json::Value;
use std::time::{Duration, Instant};
use voxbridge::cause::HangupCause;
use voxbridge_sim::{CallScript, Outcome, Sim, SimConfig};

fn sim() -> Sim {
    // Real-time clock: the tests compare the simulator's timings with real instants.
    Sim::new(SimConfig {
        speed: 1.0,
        ..SimConfig::default()
    })
}

/// A call parked mid-playback. Ringing when handed over, so the document's Play answers
/// it: a channel answered *before* the takeover shows `ringing` on the live API (the
/// driver records no answer time for it — reported to the call-path owner).
fn parked_call(app: &App, account: &str) -> CallScript {
    CallScript::ringing()
        .caller("15551230000", "Parked Caller")
        .destination("7000")
        .var("voxbridge_answer_url", &app.document("long", LONG_PLAY))
        .var("voxbridge_account", account)
}

fn base(account: &str) -> String {
    format!("/api/v1/Account/{account}")
}

fn assert_error_body(r: &Reply, status: u16) {
    assert_eq!(r.status, status, "{}", r.text);
    assert!(r.content_type.starts_with("application/json"), "{r:?}");
    assert_eq!(keys(&r.json), key_set(&["api_id", "error"]), "{}", r.text);
    assert!(uuid::Uuid::parse_str(r.json["api_id"].as_str().unwrap()).is_ok());
    assert!(!r.json["error"].as_str().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failures_and_account_isolation() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start().await;
    let vb = Voxbridge::start(dir.path(), &config_text(dir.path(), &app, ""));
    let sim = sim();
    let call = sim.place_call(parked_call(&app, ONE.0), vb.esl);
    wait_live(&vb, ONE, &call.uuid).await;

    let one_call = format!("{}/Call/{}/", base(ONE.0), call.uuid);
    let live_list = format!("{}/Call/?status=live", base(ONE.0));

    // Missing credentials, on every route.
    for (method, path) in [
        ("GET", live_list.as_str()),
        ("GET", &format!("{one_call}?status=live")),
        ("GET", one_call.as_str()),
        ("DELETE", one_call.as_str()),
        ("GET", &format!("{}/Call/", base(ONE.0))),
    ] {
        let r = request(&vb, method, path, Auth::None).await;
        assert_error_body(&r, 401);
        assert!(r.json["error"]
            .as_str()
            .unwrap()
            .contains("authentication required"));
    }
    // Wrong token, unknown id, half the headers, Basic with a wrong token.
    for auth in [
        Auth::Headers(ONE.0, "token-wrong"),
        Auth::Headers(ONE.0, TWO.1),
        Auth::Headers("MA_NOBODY", ONE.1),
        Auth::Basic(ONE.0, "nope"),
    ] {
        let r = get(&vb, &live_list, auth).await;
        assert_error_body(&r, 401);
    }
    // Valid credentials of another account than the path's: 401, not a peek.
    let r = get(&vb, &live_list, Auth::Headers(TWO.0, TWO.1)).await;
    assert_error_body(&r, 401);
    assert!(r.json["error"].as_str().unwrap().contains("does not match"));
    let r = delete(&vb, &one_call, Auth::Headers(TWO.0, TWO.1)).await;
    assert_error_body(&r, 401);

    // Account two, on its own path, asking about account one's call: 404, never 403.
    let two_view = format!("{}/Call/{}/", base(TWO.0), call.uuid);
    for (method, path) in [
        ("GET", format!("{two_view}?status=live")),
        ("GET", two_view.clone()),
        ("DELETE", two_view.clone()),
    ] {
        let r = request(&vb, method, &path, Auth::Headers(TWO.0, TWO.1)).await;
        assert_error_body(&r, 404);
    }
    let r = get(
        &vb,
        &format!("{}/Call/?status=live", base(TWO.0)),
        Auth::Headers(TWO.0, TWO.1),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json["calls"],
        serde_json::json!([]),
        "account two sees nothing"
    );

    // Basic auth works like the headers.
    let r = get(&vb, &live_list, Auth::Basic(ONE.0, ONE.1)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["calls"], serde_json::json!([call.uuid]));

    // Bad parameters, unknown resources and methods: JSON errors too.
    let r = get(
        &vb,
        &format!("{}/Call/?limit=500", base(ONE.0)),
        Auth::Basic(ONE.0, ONE.1),
    )
    .await;
    assert_error_body(&r, 400);
    assert!(r.json["error"].as_str().unwrap().contains("limit"));
    let r = get(
        &vb,
        &format!("{}/Nope/", base(ONE.0)),
        Auth::Basic(ONE.0, ONE.1),
    )
    .await;
    assert_error_body(&r, 404);
    let r = request(
        &vb,
        "POST",
        &format!("{}/Call/", base(ONE.0)),
        Auth::Basic(ONE.0, ONE.1),
    )
    .await;
    assert_error_body(&r, 405);

    // The call was never touched by any of that.
    let r = get(
        &vb,
        &format!("{one_call}?status=live"),
        Auth::Headers(ONE.0, ONE.1),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        delete(&vb, &one_call, Auth::Headers(ONE.0, ONE.1))
            .await
            .status,
        204
    );
    let report = call.report_within(Duration::from_secs(10)).await.unwrap();
    assert!(
        matches!(report.outcome, Outcome::Bye { .. }),
        "{:?}",
        report.outcome
    );

    // Every rejection left a log line naming the reason.
    let log = vb.log_text();
    assert!(log.contains("REST request rejected"), "{log}");
    assert!(log.contains("invalid credentials"), "{log}");
    assert!(!log.contains(ONE.1), "a token leaked into the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_mid_playback_hangs_up_within_a_second_and_records_api() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start().await;
    let vb = Voxbridge::start(dir.path(), &config_text(dir.path(), &app, ""));
    let sim = sim();
    let call = sim.place_call(parked_call(&app, ONE.0), vb.esl);
    let uuid = call.uuid.clone();
    wait_live(&vb, ONE, &uuid).await;
    // The call exists by now: its channel was created before this instant.
    let seen = Instant::now();

    // Live details, exact shape, once the Play has answered the call.
    let live = &poll_json(
        &vb,
        &format!("{}/Call/{uuid}/?status=live", base(ONE.0)),
        Auth::Headers(ONE.0, ONE.1),
        "the call answered",
        |j| j["call_status"] == "in-progress",
    )
    .await;
    assert_eq!(keys(live), key_set(LIVE_KEYS), "{live}");
    assert_eq!(live["call_uuid"], uuid.as_str());
    assert_eq!(live["direction"], "inbound");
    assert_eq!(live["from"], "15551230000");
    assert_eq!(live["to"], "7000");
    assert_eq!(live["caller_name"], "Parked Caller");
    assert_eq!(live["call_status"], "in-progress");
    assert!(is_cdr_time(&live["session_start"]), "{live}");
    assert!(is_cdr_time(&live["answer_time"]), "{live}");
    assert_eq!(live["scheduled_hangup_at"], Value::Null);

    // A CDR read while the call is live is 404, pointing at ?status=live.
    let r = get(
        &vb,
        &format!("{}/Call/{uuid}/", base(ONE.0)),
        Auth::Headers(ONE.0, ONE.1),
    )
    .await;
    assert_error_body(&r, 404);
    assert!(r.json["error"].as_str().unwrap().contains("status=live"));

    // Let the playback run a moment, then hang up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requested = Instant::now();
    let r = delete(
        &vb,
        &format!("{}/Call/{uuid}/", base(ONE.0)),
        Auth::Headers(ONE.0, ONE.1),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(r.text, "", "204 has no body");

    let report = call.report_within(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        report.outcome,
        Outcome::Bye {
            cause: HangupCause::NORMAL_CLEARING,
            q850: 16
        },
        "{report:?}"
    );
    // The BYE went out within 1 s of the request. hangup_at counts from the channel's
    // creation, which happened before `seen`: seen + hangup_at is at or after the BYE.
    let hangup_at = report.hangup_at.expect("hangup time");
    let bye_no_later_than = seen + hangup_at;
    assert!(
        bye_no_later_than < requested + Duration::from_secs(1),
        "BYE {:?} after the request",
        bye_no_later_than.saturating_duration_since(requested)
    );
    // …and not before it, with the playback running until then.
    assert!(hangup_at >= requested.saturating_duration_since(seen));
    let playback = report
        .apps()
        .iter()
        .find(|a| a.name == "playback")
        .expect("playback ran");
    assert!(
        playback.started_at.expect("playback started")
            < requested.saturating_duration_since(seen) + Duration::from_millis(1),
        "{playback:?}"
    );

    // The CDR: exact shape, API attribution.
    let cdr = wait_cdr(&vb, ONE, &uuid).await;
    let mut want = key_set(CDR_KEYS);
    want.insert("api_id".into());
    assert_eq!(keys(&cdr), want, "{cdr}");
    assert_eq!(cdr["call_uuid"], uuid.as_str());
    assert_eq!(cdr["direction"], "inbound");
    assert_eq!(cdr["from_number"], "15551230000");
    assert_eq!(cdr["to_number"], "7000");
    assert_eq!(cdr["hangup_source"], "API");
    assert_eq!(cdr["hangup_cause"], "NORMAL_CLEARING");
    assert_eq!(cdr["hangup_cause_code"], 16);
    assert_eq!(cdr["hangup_cause_name"], "Normal Hangup");
    assert_eq!(cdr["hangup_reason"], "completed");
    for t in ["initiation_time", "answer_time", "end_time"] {
        assert!(is_cdr_time(&cdr[t]), "{t}: {cdr}");
    }
    assert!(
        cdr["call_duration"].is_u64() && cdr["bill_duration"].is_u64(),
        "{cdr}"
    );

    // The hangup callback says the same, and the CDR shows it delivered.
    let cb = app.hangup_of(&uuid, Duration::from_secs(10)).await;
    assert_eq!(cb.params["HangupSource"], "API");
    assert_eq!(cb.params["HangupCause"], "NORMAL_CLEARING");
    assert_eq!(cb.params["HangupCauseCode"], "16");
    assert_eq!(cb.params["HangupCauseName"], "Normal Hangup");
    assert_eq!(
        cb.params["StartTime"],
        cdr["initiation_time"].as_str().unwrap()
    );
    assert_eq!(cb.params["EndTime"], cdr["end_time"].as_str().unwrap());
    let cdr = poll_json(
        &vb,
        &format!("{}/Call/{uuid}", base(ONE.0)),
        Auth::Headers(ONE.0, ONE.1),
        "the hangup callback marked delivered",
        |j| j["callback_deliveries"][0]["status"] == "delivered",
    )
    .await;
    let delivered = &cdr["callback_deliveries"];
    let deliveries = delivered.as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{delivered}");
    assert_eq!(
        keys(&deliveries[0]),
        key_set(&["kind", "url", "status", "attempts"])
    );
    assert_eq!(deliveries[0]["kind"], "hangup");
    assert_eq!(deliveries[0]["url"], app.url("/cb/hangup").as_str());
    assert_eq!(deliveries[0]["attempts"], 1);

    // DELETE again: the call is over.
    let r = delete(
        &vb,
        &format!("{}/Call/{uuid}/", base(ONE.0)),
        Auth::Headers(ONE.0, ONE.1),
    )
    .await;
    assert_error_body(&r, 404);
    let r = get(
        &vb,
        &format!("{}/Call/{uuid}/?status=live", base(ONE.0)),
        Auth::Headers(ONE.0, ONE.1),
    )
    .await;
    assert_error_body(&r, 404);
    assert_eq!(app.hangups_of(&uuid).len(), 1, "one hangup callback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_works_with_and_without_the_trailing_slash() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start().await;
    let vb = Voxbridge::start(dir.path(), &config_text(dir.path(), &app, ""));
    let sim = sim();
    let auth = Auth::Headers(ONE.0, ONE.1);

    let a = sim.place_call(parked_call(&app, ONE.0), vb.esl);
    let b = sim.place_call(parked_call(&app, ONE.0), vb.esl);
    wait_live(&vb, ONE, &a.uuid).await;
    wait_live(&vb, ONE, &b.uuid).await;

    for slash in ["", "/"] {
        let r = get(
            &vb,
            &format!("{}/Call{slash}?status=live", base(ONE.0)),
            auth,
        )
        .await;
        assert_eq!(r.status, 200, "Call{slash}: {}", r.text);
        assert_eq!(keys(&r.json), key_set(&["api_id", "calls"]));
        let mut calls: Vec<&str> = r.json["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        calls.sort();
        let mut want = vec![a.uuid.as_str(), b.uuid.as_str()];
        want.sort();
        assert_eq!(calls, want);

        let r = get(
            &vb,
            &format!("{}/Call/{}{slash}?status=live", base(ONE.0), a.uuid),
            auth,
        )
        .await;
        assert_eq!(r.status, 200, "Call/uuid{slash}: {}", r.text);
        assert_eq!(keys(&r.json), key_set(LIVE_KEYS));

        let r = get(&vb, &format!("{}/Call{slash}", base(ONE.0)), auth).await;
        assert_eq!(r.status, 200, "Call{slash} list: {}", r.text);
        assert_eq!(keys(&r.json), key_set(&["api_id", "meta", "objects"]));
    }
    // DELETE without the slash (Fern SDK) and with it (Plivo/older SDKs).
    assert_eq!(
        delete(&vb, &format!("{}/Call/{}", base(ONE.0), a.uuid), auth)
            .await
            .status,
        204
    );
    assert_eq!(
        delete(&vb, &format!("{}/Call/{}/", base(ONE.0), b.uuid), auth)
            .await
            .status,
        204
    );
    for handle in [a, b] {
        let uuid = handle.uuid.clone();
        let report = handle.report_within(Duration::from_secs(10)).await.unwrap();
        assert!(matches!(report.outcome, Outcome::Bye { .. }), "{report:?}");
        let cdr = wait_cdr(&vb, ONE, &uuid).await;
        assert_eq!(cdr["hangup_source"], "API");
        for slash in ["", "/"] {
            let r = get(&vb, &format!("{}/Call/{uuid}{slash}", base(ONE.0)), auth).await;
            assert_eq!(r.status, 200, "{}", r.text);
            assert_eq!(r.json["call_uuid"], uuid.as_str());
            let r = delete(&vb, &format!("{}/Call/{uuid}{slash}", base(ONE.0)), auth).await;
            assert_error_body(&r, 404);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_http_hangup_and_list_as_curl_sends_them() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start().await;
    let vb = Voxbridge::start(dir.path(), &config_text(dir.path(), &app, ""));
    let sim = sim();
    let call = sim.place_call(parked_call(&app, ONE.0), vb.esl);
    let uuid = call.uuid.clone();
    wait_live(&vb, ONE, &uuid).await;
    let api = vb.api;

    // curl -s -u MA_ONE:token-one http://…/api/v1/Account/MA_ONE/Call/?status=live
    let basic = base64_basic(ONE.0, ONE.1);
    let (status, headers, body) = tokio::task::spawn_blocking(move || {
        raw_http(
            api,
            &format!(
                "GET /api/v1/Account/MA_ONE/Call/?status=live HTTP/1.1\r\nHost: {api}\r\n\
                 User-Agent: curl/8.5.0\r\nAccept: */*\r\nAuthorization: Basic {basic}\r\n\
                 Connection: close\r\n\r\n"
            ),
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(headers["content-type"].starts_with("application/json"));
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["calls"], serde_json::json!([uuid]));

    // curl -X DELETE -H 'X-Auth-ID: …' -H 'X-Auth-Token: …' http://…/Call/<uuid>/
    let path = format!("/api/v1/Account/MA_ONE/Call/{uuid}/");
    let request = format!(
        "DELETE {path} HTTP/1.1\r\nHost: {api}\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\
         X-Auth-ID: MA_ONE\r\nX-Auth-Token: token-one\r\nConnection: close\r\n\r\n"
    );
    let req = request.clone();
    let (status, _, body) = tokio::task::spawn_blocking(move || raw_http(api, &req))
        .await
        .unwrap();
    assert_eq!(status, 204, "{body}");
    assert_eq!(body, "");
    let report = call.report_within(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        report.outcome,
        Outcome::Bye {
            cause: HangupCause::NORMAL_CLEARING,
            q850: 16
        }
    );
    let cdr = wait_cdr(&vb, ONE, &uuid).await;
    assert_eq!(cdr["hangup_source"], "API");

    // The same DELETE again: 404 with a JSON error, over raw HTTP too.
    let (status, headers, body) = tokio::task::spawn_blocking(move || raw_http(api, &request))
        .await
        .unwrap();
    assert_eq!(status, 404, "{body}");
    assert!(headers["content-type"].starts_with("application/json"));
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(keys(&json), key_set(&["api_id", "error"]));

    // No credentials at all: 401 with a WWW-Authenticate challenge.
    let (status, headers, _) = tokio::task::spawn_blocking(move || {
        raw_http(
            api,
            &format!("GET /api/v1/Account/MA_ONE/Call/ HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n"),
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 401);
    assert!(headers["www-authenticate"].starts_with("Basic"));
}

fn base64_basic(id: &str, token: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{id}:{token}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdr_list_is_newest_first_paged_and_per_account() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start().await;
    let vb = Voxbridge::start(dir.path(), &config_text(dir.path(), &app, ""));
    let sim = sim();
    let busy = app.document("busy", r#"<Response><Hangup reason="busy"/></Response>"#);

    // Five calls of account one, one of account two, one after another so their start
    // times order them.
    let mut ones = Vec::new();
    for i in 0..5 {
        let handle = sim.place_call(
            CallScript::ringing()
                .caller(&format!("1555000000{i}"), "Lister")
                .var("voxbridge_answer_url", &busy)
                .var("voxbridge_account", ONE.0),
            vb.esl,
        );
        let uuid = handle.uuid.clone();
        let report = handle.report_within(Duration::from_secs(10)).await.unwrap();
        assert_eq!(report.sip_code(), Some(486), "{report:?}");
        wait_cdr(&vb, ONE, &uuid).await;
        ones.push(uuid);
        // Start times have whole-second text but finer storage; keep them apart anyway.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let other = sim.place_call(
        CallScript::ringing()
            .var("voxbridge_answer_url", &busy)
            .var("voxbridge_account", TWO.0),
        vb.esl,
    );
    let other_uuid = other.uuid.clone();
    other.report_within(Duration::from_secs(10)).await.unwrap();
    wait_cdr(&vb, TWO, &other_uuid).await;

    let newest_first: Vec<String> = ones.iter().rev().cloned().collect();
    let auth = Auth::Headers(ONE.0, ONE.1);

    // Default page: everything, newest first, exact shapes.
    let r = get(&vb, &format!("{}/Call/", base(ONE.0)), auth).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(keys(&r.json), key_set(&["api_id", "meta", "objects"]));
    assert_eq!(
        keys(&r.json["meta"]),
        key_set(&["limit", "offset", "total_count", "next", "previous"])
    );
    assert_eq!(r.json["meta"]["limit"], 20);
    assert_eq!(r.json["meta"]["offset"], 0);
    assert_eq!(r.json["meta"]["total_count"], 5);
    assert_eq!(r.json["meta"]["next"], Value::Null);
    assert_eq!(r.json["meta"]["previous"], Value::Null);
    let objects = r.json["objects"].as_array().unwrap();
    let got: Vec<&str> = objects
        .iter()
        .map(|o| o["call_uuid"].as_str().unwrap())
        .collect();
    assert_eq!(got, newest_first);
    for o in objects {
        assert_eq!(keys(o), key_set(CDR_KEYS), "{o}");
        assert_eq!(o["hangup_cause"], "USER_BUSY");
        assert_eq!(o["hangup_cause_code"], 17);
        assert_eq!(o["hangup_cause_name"], "Busy Line");
        assert_eq!(o["hangup_source"], "Answer XML");
        assert_eq!(o["hangup_reason"], "busy");
        assert_eq!(o["answer_time"], Value::Null, "never answered");
        assert_eq!(o["bill_duration"], 0);
    }

    // Pages of two.
    let r = get(
        &vb,
        &format!("{}/Call/?limit=2&offset=2", base(ONE.0)),
        auth,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let got: Vec<&str> = r.json["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["call_uuid"].as_str().unwrap())
        .collect();
    assert_eq!(got, newest_first[2..4]);
    assert_eq!(
        r.json["meta"]["next"],
        "/api/v1/Account/MA_ONE/Call/?limit=2&offset=4"
    );
    assert_eq!(
        r.json["meta"]["previous"],
        "/api/v1/Account/MA_ONE/Call/?limit=2&offset=0"
    );
    // Following `next` (a path on the same server) gives the last one.
    let next = r.json["meta"]["next"].as_str().unwrap().to_string();
    let r = get(&vb, &next, auth).await;
    assert_eq!(r.json["objects"].as_array().unwrap().len(), 1);
    assert_eq!(r.json["objects"][0]["call_uuid"], ones[0].as_str());
    assert_eq!(r.json["meta"]["next"], Value::Null);
    // Past the end: an empty page, not an error.
    let r = get(&vb, &format!("{}/Call/?offset=50", base(ONE.0)), auth).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["objects"], serde_json::json!([]));
    assert_eq!(r.json["meta"]["total_count"], 5);

    // Bad values name the parameter.
    for (query, name) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("offset=x", "offset"),
        ("status=queued", "status"),
        ("from_number=1", "from_number"),
    ] {
        let r = get(&vb, &format!("{}/Call/?{query}", base(ONE.0)), auth).await;
        assert_error_body(&r, 400);
        assert!(
            r.json["error"].as_str().unwrap().contains(name),
            "{}",
            r.text
        );
    }

    // Account two sees only its own.
    let r = get(
        &vb,
        &format!("{}/Call/", base(TWO.0)),
        Auth::Basic(TWO.0, TWO.1),
    )
    .await;
    assert_eq!(r.json["meta"]["total_count"], 1);
    assert_eq!(r.json["objects"][0]["call_uuid"], other_uuid.as_str());
    let r = get(
        &vb,
        &format!("{}/Call/{}/", base(TWO.0), ones[0]),
        Auth::Basic(TWO.0, TWO.1),
    )
    .await;
    assert_error_body(&r, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_armed_schedule_shows_on_the_live_call() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start().await;
    let vb = Voxbridge::start(dir.path(), &config_text(dir.path(), &app, ""));
    let sim = sim();
    let doc = app.document(
        "scheduled",
        r#"<Response><Hangup schedule="600"/><Play>silence_stream://-1</Play></Response>"#,
    );
    let call = sim.place_call(
        CallScript::answered()
            .var("voxbridge_answer_url", &doc)
            .var("voxbridge_account", ONE.0),
        vb.esl,
    );
    let uuid = call.uuid.clone();
    wait_live(&vb, ONE, &uuid).await;
    let path = format!("{}/Call/{uuid}?status=live", base(ONE.0));
    let live = poll_json(
        &vb,
        &path,
        Auth::Headers(ONE.0, ONE.1),
        "scheduled_hangup_at",
        |j| !j["scheduled_hangup_at"].is_null(),
    )
    .await;
    assert_eq!(keys(&live), key_set(LIVE_KEYS));
    assert!(is_cdr_time(&live["scheduled_hangup_at"]), "{live}");
    // About ten minutes from now (the text has whole seconds).
    let at = time::PrimitiveDateTime::parse(
        live["scheduled_hangup_at"].as_str().unwrap(),
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
    )
    .unwrap()
    .assume_utc();
    let from_now = at - time::OffsetDateTime::now_utc();
    assert!(
        from_now > time::Duration::seconds(590) && from_now <= time::Duration::seconds(601),
        "{from_now}"
    );
    assert_eq!(
        delete(
            &vb,
            &format!("{}/Call/{uuid}", base(ONE.0)),
            Auth::Headers(ONE.0, ONE.1)
        )
        .await
        .status,
        204
    );
    let report = call.report_within(Duration::from_secs(10)).await.unwrap();
    assert!(matches!(report.outcome, Outcome::Bye { .. }), "{report:?}");
    let cdr = wait_cdr(&vb, ONE, &uuid).await;
    assert_eq!(cdr["hangup_source"], "API", "the API came first");
}
