//! SPEC §11, end to end on the simulator: the real `voxbridge serve`, a real local
//! application, the simulated switch (which replays transcripts i, j and k for the
//! bridge). Each test is named after the rule it checks. Their twins on the real switch
//! are in `live_freeswitch.rs` (`live::dial_…`).

use crate::e2e_support::*;
use std::time::Duration;
use voxbridge::cause::HangupCause;
use voxbridge_sim::{CallReport, Callee};

const SPEED: f64 = 20.0;

/// A callee that answers after `ring` and hangs up `talk` later (`None`: stays).
fn answers(ring: u64, talk: Option<u64>) -> Callee {
    Callee::Answers {
        after: Duration::from_secs(ring),
        hangs_up_after: talk.map(Duration::from_secs),
    }
}

/// The `bridge` application voxbridge asked for, and the B-leg uuid it chose.
fn bridge_of(r: &CallReport) -> (String, String) {
    let app = r
        .apps
        .iter()
        .find(|a| a.name == "bridge")
        .unwrap_or_else(|| panic!("no bridge: {:?}", requested(r)));
    let uuid = app
        .arg
        .split("origination_uuid=")
        .nth(1)
        .and_then(|rest| rest.split([',', ']']).next())
        .unwrap_or_default()
        .to_string();
    (app.arg.clone(), uuid)
}

fn param(hit: &Hit, key: &str) -> String {
    hit.param(key).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_answered_the_caller_is_answered_by_the_bridge_and_ends_as_callee_hangup() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/d1",
        &xml("<Dial callerId=\"15550001111\"><Number>7002</Number></Dial>"),
    );
    let sim = sim(SPEED);
    let script = ringing(&url).callee("7002", answers(1, Some(2)));
    let r = report(sim.place_call(script, server.esl)).await;

    assert!(
        !requested(&r).iter().any(|a| a == "answer") && commands_with(&r, "uuid_answer").is_empty(),
        "voxbridge never answers for a Dial: {:?} {:?}",
        requested(&r),
        r.commands
    );
    let (arg, b_leg) = bridge_of(&r);
    assert!(!b_leg.is_empty(), "{arg}");
    assert!(
        arg.contains("origination_caller_id_number=15550001111"),
        "{arg}"
    );
    assert!(arg.contains("originate_timeout=120"), "{arg}");
    assert!(
        commands_with(&r, "continue_on_fail=true").len() == 1
            && commands_with(&r, "hangup_after_bridge=false").len() == 1,
        "the caller's channel is set up so the Dial can go on after it: {:?}",
        r.commands
    );
    // Nothing after the Dial, the callee hung up: the caller ends with its cause.
    assert_bye(&r, HangupCause::NORMAL_CLEARING);
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::NORMAL_CLEARING, "Callee Hangup", "Callee").answered(),
    )
    .await;
    check_leg_cdr(
        &server,
        &r.uuid,
        &b_leg,
        ("NORMAL_CLEARING", "Callee Hangup", "Callee"),
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_action_is_fetched_as_the_next_document_with_the_dial_outcome() {
    let (app, server) = setup().await;
    let after = app.xml("/doc/after", &xml("<Speak>after the call</Speak>"));
    let url = app.xml(
        "/doc/d2",
        &xml(&format!(
            "<Dial action=\"{after}\"><Number>7002</Number></Dial><Speak>never</Speak>"
        )),
    );
    let sim = sim(SPEED);
    let script = ringing(&url).callee("7002", answers(1, Some(2)));
    let r = report(sim.place_call(script, server.esl)).await;

    let (_, b_leg) = bridge_of(&r);
    let hits = app.hits_on("/doc/after");
    assert_eq!(hits.len(), 1, "the action is requested once");
    let action = &hits[0];
    assert_eq!(param(action, "Event"), "DialAction");
    assert_eq!(param(action, "DialStatus"), "completed");
    assert_eq!(param(action, "DialALegUUID"), r.uuid);
    assert_eq!(param(action, "DialBLegUUID"), b_leg);
    assert_eq!(param(action, "DialHangupCause"), "NORMAL_CLEARING");
    assert_eq!(param(action, "DialRingStatus"), "true");
    assert_eq!(param(action, "CallStatus"), "in-progress");
    action.verify_signature(app.port, TOKEN).unwrap();
    assert!(
        ran(&r)
            .iter()
            .any(|a| a == "speak flite|slt|after the call"),
        "{:?}",
        ran(&r)
    );
    assert!(!ran(&r).iter().any(|a| a.contains("never")));
    hangup_checked(
        &app,
        &r,
        &Expected::new(
            HangupCause::NORMAL_CLEARING,
            "End Of XML Instructions",
            "Answer XML",
        )
        .answered(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_busy_leaves_the_caller_unanswered_so_a_following_busy_hangup_gives_486() {
    let (app, server) = setup().await;
    let action = app.xml("/doc/busy-action", &xml("<Hangup reason=\"busy\"/>"));
    let url = app.xml(
        "/doc/d3",
        &xml(&format!(
            "<Dial action=\"{action}\"><Number>7003</Number></Dial>"
        )),
    );
    let sim = sim(SPEED);
    let script = ringing(&url).callee("7003", Callee::Refuses(486));
    let r = report(sim.place_call(script, server.esl)).await;

    assert_refused(&r, 486, HangupCause::USER_BUSY);
    let hit = &app.hits_on("/doc/busy-action")[0];
    assert_eq!(param(hit, "DialStatus"), "busy");
    assert_eq!(param(hit, "DialBLegUUID"), "", "no one answered");
    assert_eq!(param(hit, "DialHangupCause"), "USER_BUSY");
    assert_eq!(param(hit, "CallStatus"), "ringing");
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::USER_BUSY, "Busy Line", "Answer XML").reason("busy"),
    )
    .await;
    let (_, b_leg) = bridge_of(&r);
    check_leg_cdr(
        &server,
        &r.uuid,
        &b_leg,
        ("USER_BUSY", "Busy Line", "Callee"),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_no_answer_runs_the_next_element_on_the_still_unanswered_caller() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/d4",
        &xml("<Dial timeout=\"2\"><Number>7004</Number></Dial><Hangup reason=\"busy\"/>"),
    );
    let sim = sim(SPEED);
    let script = ringing(&url).callee("7004", Callee::RingsForever);
    let r = report(sim.place_call(script, server.esl)).await;

    let (arg, _) = bridge_of(&r);
    assert!(arg.contains("originate_timeout=2"), "{arg}");
    assert_refused(&r, 486, HangupCause::USER_BUSY);
    assert_eq!(
        ran(&r).last().map(String::as_str),
        Some("call-command hangup USER_BUSY"),
        "{:?}",
        ran(&r)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_unroutable_is_failed_and_an_empty_rest_is_the_end_of_the_document() {
    let (app, server) = setup().await;
    let action = app.xml("/doc/failed-action", &xml("<Wait length=\"1\"/>"));
    let url = app.xml(
        "/doc/d5",
        &xml(&format!(
            "<Dial action=\"{action}\"><Number>7999</Number></Dial>"
        )),
    );
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    let hit = &app.hits_on("/doc/failed-action")[0];
    assert_eq!(param(hit, "DialStatus"), "failed");
    assert_eq!(param(hit, "DialHangupCause"), "NO_ROUTE_DESTINATION");
    assert_eq!(param(hit, "DialBLegUUID"), "");
    // Never answered: the end of the document refuses the caller (480).
    assert!(!r.answered(), "{r:?}");
    hangup_checked(
        &app,
        &r,
        &Expected::new(
            HangupCause::NORMAL_CLEARING,
            "End Of XML Instructions",
            "Answer XML",
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_caller_hangs_up_while_ringing_is_cancel_and_the_action_goes_through_the_outbox() {
    let (app, server) = setup().await;
    let action = app.xml("/doc/cancel-action", &xml("<Speak>ignored</Speak>"));
    let url = app.xml(
        "/doc/d6",
        &xml(&format!(
            "<Dial action=\"{action}\"><Number>7004</Number></Dial>"
        )),
    );
    let sim = sim(SPEED);
    let script = ringing(&url)
        .callee("7004", Callee::RingsForever)
        .caller_hangs_up_during("bridge", Duration::from_secs(2));
    let r = report(sim.place_call(script, server.esl)).await;

    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::ORIGINATOR_CANCEL, "Caller Hangup", "Caller").cancelled(),
    )
    .await;
    let (kind, _, status, _) = server.outbox_final(&r.uuid, "action").await;
    assert_eq!((kind.as_str(), status.as_str()), ("action", "delivered"));
    let hits = app.hits_on("/doc/cancel-action");
    assert_eq!(hits.len(), 1);
    assert_eq!(param(&hits[0], "DialStatus"), "cancel");
    assert_eq!(param(&hits[0], "Event"), "DialAction");
    assert!(!param(&hits[0], "DeliveryID").is_empty());
    hits[0].verify_signature(app.port, TOKEN).unwrap();
    assert!(
        !ran(&r).iter().any(|a| a.contains("ignored")),
        "the response of the action is ignored"
    );
    let (_, b_leg) = bridge_of(&r);
    let cdr = leg_cdr(&server, &b_leg).await;
    assert_eq!(cdr["hangup_source"], "Caller", "{cdr}");
    assert_eq!(cdr["answer_time"], serde_json::Value::Null, "{cdr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_time_limit_cuts_the_bridge_and_the_document_goes_on() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/d7",
        &xml("<Dial timeLimit=\"3\"><Number>7002</Number></Dial><Speak>time is up</Speak>"),
    );
    let sim = sim(SPEED);
    let script = ringing(&url).callee("7002", answers(0, None));
    let r = report(sim.place_call(script, server.esl)).await;

    let (arg, _) = bridge_of(&r);
    assert!(
        arg.contains("execute_on_answer='sched_hangup +3 ALLOTTED_TIMEOUT'"),
        "{arg}"
    );
    assert!(ran(&r).iter().any(|a| a == "speak flite|slt|time is up"));
    hangup_checked(
        &app,
        &r,
        &Expected::new(
            HangupCause::NORMAL_CLEARING,
            "End Of XML Instructions",
            "Answer XML",
        )
        .answered(),
    )
    .await;
    let (_, b_leg) = bridge_of(&r);
    check_leg_cdr(
        &server,
        &r.uuid,
        &b_leg,
        ("ALLOTTED_TIMEOUT", "Dial Time Limit", "Answer XML"),
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_hangup_on_star_ends_the_bridge_and_the_caller_continues() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/d8",
        &xml("<Dial hangupOnStar=\"true\"><Number>7002</Number></Dial>"),
    );
    let sim = sim(SPEED);
    // Apps: set ×4 (the bridge's prelude), bridge.
    let script = ringing(&url)
        .callee("7002", answers(0, None))
        .dtmf_during_app(5, Duration::from_secs(2), "*");
    let r = report(sim.place_call(script, server.esl)).await;

    assert_eq!(commands_with(&r, "bridge_terminate_key=*").len(), 1);
    // The star, not the callee, ended the bridge: the document simply ran out.
    hangup_checked(
        &app,
        &r,
        &Expected::new(
            HangupCause::NORMAL_CLEARING,
            "End Of XML Instructions",
            "Answer XML",
        )
        .answered(),
    )
    .await;
    let (_, b_leg) = bridge_of(&r);
    check_leg_cdr(
        &server,
        &r.uuid,
        &b_leg,
        ("NORMAL_CLEARING", "Caller Hangup", "Caller"),
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_rest_delete_of_the_caller_during_the_bridge_ends_it_as_api() {
    let (app, server) = setup().await;
    let url = app.xml("/doc/d9", &xml("<Dial><Number>7002</Number></Dial>"));
    let sim = sim(SPEED);
    let script = ringing(&url).callee("7002", answers(0, None));
    let call = sim.place_call(script, server.esl);
    let uuid = call.uuid.clone();
    let deadline = std::time::Instant::now() + PATIENCE;
    while server
        .log_text()
        .lines()
        .all(|l| !(l.contains("bridged") && l.contains(&uuid)))
    {
        assert!(std::time::Instant::now() < deadline, "never bridged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = voxbridge::http_client::builder()
        .build()
        .unwrap()
        .delete(format!(
            "http://{}/api/v1/Account/{ACCOUNT}/Call/{uuid}/",
            server.api
        ))
        .header("X-Auth-ID", ACCOUNT)
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 204);
    let r = report(call).await;
    assert_bye(&r, HangupCause::NORMAL_CLEARING);
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::NORMAL_CLEARING, "Normal Hangup", "API").answered(),
    )
    .await;
    let (_, b_leg) = bridge_of(&r);
    check_leg_cdr(
        &server,
        &r.uuid,
        &b_leg,
        ("NORMAL_CLEARING", "Normal Hangup", "API"),
        true,
    )
    .await;
}

/// Runs at 1×: the schedule is recognised by comparing the switch's hangup with its due
/// time on voxbridge's own clock (see e2e_rules).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_a_schedule_armed_before_the_dial_ends_the_bridged_call_when_it_fires() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/d10",
        &xml("<Hangup schedule=\"3\"/><Dial><Number>7002</Number></Dial>"),
    );
    let sim = sim(1.0);
    let script = ringing(&url).callee("7002", answers(0, None));
    let r = report(sim.place_call(script, server.esl)).await;

    assert_bye(&r, HangupCause::NORMAL_CLEARING);
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::NORMAL_CLEARING, "Normal Hangup", "Answer XML").answered(),
    )
    .await;
    let (_, b_leg) = bridge_of(&r);
    check_leg_cdr(
        &server,
        &r.uuid,
        &b_leg,
        ("NORMAL_CLEARING", "Caller Hangup", "Caller"),
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_legs_are_live_calls_and_rest_delete_of_the_callee_ends_only_it() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/d11",
        &xml("<Dial><Number>7002</Number></Dial><Speak>the caller continues</Speak>"),
    );
    let sim = sim(SPEED);
    let script = ringing(&url).callee("7002", answers(0, None));
    let call = sim.place_call(script, server.esl);
    let a_leg = call.uuid.clone();
    // While bridged, the live list holds both legs (the B-leg is listed from its
    // ringing on: wait until it is in progress).
    let b_leg = live_leg_of(&server, &a_leg).await;
    let b = live_leg_with_status(&server, &b_leg, "in-progress").await;
    assert_eq!(b["parent_call_uuid"], a_leg.as_str(), "{b}");
    assert_eq!(b["to"], "7002", "{b}");
    assert_eq!(b["direction"], "outbound", "{b}");
    let (status, a) = rest(
        &server,
        reqwest::Method::GET,
        &format!("Call/{a_leg}/?status=live"),
    )
    .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["bridged_to"], b_leg.as_str(), "{a}");

    let (status, body) = rest(&server, reqwest::Method::DELETE, &format!("Call/{b_leg}/")).await;
    assert_eq!(status, 204, "{body}");
    let r = report(call).await;
    let (arg, chosen) = bridge_of(&r);
    assert_eq!(chosen, b_leg, "{arg}");
    assert!(
        ran(&r)
            .iter()
            .any(|a| a == "speak flite|slt|the caller continues"),
        "{:?}",
        ran(&r)
    );
    let (status, _) = rest(&server, reqwest::Method::DELETE, &format!("Call/{b_leg}/")).await;
    assert_eq!(status, 404, "the callee is gone");
    hangup_checked(
        &app,
        &r,
        &Expected::new(
            HangupCause::NORMAL_CLEARING,
            "End Of XML Instructions",
            "Answer XML",
        )
        .answered(),
    )
    .await;
    check_leg_cdr(
        &server,
        &r.uuid,
        &b_leg,
        ("NORMAL_CLEARING", "Normal Hangup", "API"),
        true,
    )
    .await;
}

/// The B-leg of `a_leg` once the live list holds it (beside its caller).
async fn live_leg_of(server: &Server, a_leg: &str) -> String {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let (status, body) = rest(server, reqwest::Method::GET, "Call/?status=live").await;
        assert_eq!(status, 200, "{body}");
        let calls: Vec<String> = serde_json::from_value(body["calls"].clone()).unwrap();
        if let Some(b) = calls.iter().find(|c| *c != a_leg) {
            assert!(calls.iter().any(|c| c == a_leg), "{calls:?}");
            return b.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no B-leg listed live");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The live details of `b_leg` once its `call_status` is `status`.
async fn live_leg_with_status(server: &Server, b_leg: &str, status: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let (code, body) = rest(
            server,
            reqwest::Method::GET,
            &format!("Call/{b_leg}/?status=live"),
        )
        .await;
        assert_eq!(code, 200, "{body}");
        if body["call_status"] == status {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the B-leg never became {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SPEC §11.2 "while it is up": a B-leg is listed live from its ringing on, `ringing`
/// with its parent and no answer time, the caller not yet `bridged_to` it. `DELETE` of
/// the ringing leg ends only it (the switch fails a one-leg bridge at once, transcript
/// y): DialStatus `failed`, its CDR `API` and unanswered, the caller goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_legs_are_listed_live_while_they_ring_and_delete_of_a_ringing_leg_ends_only_it() {
    let (app, server) = setup().await;
    let action = app.xml("/doc/d12-action", &xml("<Hangup reason=\"busy\"/>"));
    let url = app.xml(
        "/doc/d12",
        &xml(&format!(
            "<Dial action=\"{action}\" timeout=\"60\"><Number>7004</Number></Dial>"
        )),
    );
    let sim = sim(1.0);
    let script = ringing(&url).callee("7004", Callee::RingsForever);
    let call = sim.place_call(script, server.esl);
    let a_leg = call.uuid.clone();
    let b_leg = live_leg_of(&server, &a_leg).await;
    let b = live_leg_with_status(&server, &b_leg, "ringing").await;
    assert_eq!(b["parent_call_uuid"], a_leg.as_str(), "{b}");
    assert_eq!(b["to"], "7004", "{b}");
    assert_eq!(b["direction"], "outbound", "{b}");
    assert!(b["answer_time"].is_null(), "{b}");
    let (status, a) = rest(
        &server,
        reqwest::Method::GET,
        &format!("Call/{a_leg}/?status=live"),
    )
    .await;
    assert_eq!(status, 200, "{a}");
    assert!(
        a.get("bridged_to").is_none(),
        "not bridged while it rings: {a}"
    );

    let (status, body) = rest(&server, reqwest::Method::DELETE, &format!("Call/{b_leg}/")).await;
    assert_eq!(status, 204, "{body}");
    let r = report(call).await;
    let (_, chosen) = bridge_of(&r);
    assert_eq!(chosen, b_leg);
    // The caller went on: the action ran and refused it busy, never answered.
    let hits = app.hits_on("/doc/d12-action");
    assert_eq!(hits.len(), 1, "the action is requested once");
    assert_eq!(param(&hits[0], "DialStatus"), "failed");
    assert_eq!(param(&hits[0], "DialHangupCause"), "NORMAL_CLEARING");
    assert_eq!(param(&hits[0], "DialBLegUUID"), "");
    assert_refused(&r, 486, HangupCause::USER_BUSY);
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::USER_BUSY, "Busy Line", "Answer XML").reason("busy"),
    )
    .await;
    check_leg_cdr(
        &server,
        &r.uuid,
        &b_leg,
        ("NORMAL_CLEARING", "Normal Hangup", "API"),
        false,
    )
    .await;
    let (status, _) = rest(
        &server,
        reqwest::Method::GET,
        &format!("Call/{b_leg}/?status=live"),
    )
    .await;
    assert_eq!(status, 404, "the leg left the live list");
}

/// The B-leg's own CDR over REST (SPEC §11.2), once written.
async fn leg_cdr(server: &Server, b_leg: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let (status, body) = rest(server, reqwest::Method::GET, &format!("Call/{b_leg}/")).await;
        if status == 200 {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no CDR for the B-leg {b_leg}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The B-leg's CDR: linked to its caller, outbound, with this cause, name and source.
async fn check_leg_cdr(
    server: &Server,
    a_leg: &str,
    b_leg: &str,
    want: (&str, &str, &str),
    answered: bool,
) {
    let (cause, name, source) = want;
    let cdr = leg_cdr(server, b_leg).await;
    assert_eq!(cdr["parent_call_uuid"], a_leg, "{cdr}");
    assert_eq!(cdr["direction"], "outbound", "{cdr}");
    assert_eq!(cdr["hangup_cause"], cause, "{cdr}");
    assert_eq!(cdr["hangup_cause_name"], name, "{cdr}");
    assert_eq!(cdr["hangup_source"], source, "{cdr}");
    assert_eq!(cdr["answer_time"].is_string(), answered, "{cdr}");
    assert_eq!(
        cdr["callback_deliveries"].as_array().map(Vec::len),
        Some(0),
        "the hangup URL is the A-leg's only: {cdr}"
    );
}

/// The Dial's leg events of a call, in the order voxbridge created them (their
/// `DeliveryID`s are UUIDv7: they sort by creation).
async fn dial_events(app: &App, call_uuid: &str, count: usize) -> Vec<Hit> {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let mut hits = app.callbacks_for("/events", call_uuid);
        if hits.len() >= count {
            hits.sort_by_key(|h| h.must("DeliveryID"));
            return hits;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {count} Dial events arrived",
            hits.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_callback_url_gets_answer_connected_hangup_through_the_outbox() {
    let (app, server) = setup().await;
    let events = app.url("/events");
    let url = app.xml(
        "/doc/d12",
        &xml(&format!(
            "<Dial callbackUrl=\"{events}\" callerId=\"15550001111\"><Number>7002</Number></Dial>"
        )),
    );
    let sim = sim(SPEED);
    let script = ringing(&url).callee("7002", answers(1, Some(2)));
    let r = report(sim.place_call(script, server.esl)).await;
    let (_, b_leg) = bridge_of(&r);

    let hits = dial_events(&app, &r.uuid, 3).await;
    let names: Vec<String> = hits.iter().map(|h| h.must("Event")).collect();
    assert_eq!(names, ["DialAnswer", "DialConnected", "DialHangup"]);
    let actions: Vec<String> = hits.iter().map(|h| h.must("DialAction")).collect();
    assert_eq!(actions, ["answer", "connected", "hangup"]);
    for h in &hits {
        assert_eq!(h.must("CallUUID"), r.uuid);
        assert_eq!(h.must("DialALegUUID"), r.uuid);
        assert_eq!(h.must("DialBLegUUID"), b_leg);
        assert_eq!(h.must("DialBLegTo"), "7002");
        assert_eq!(h.must("DialBLegFrom"), "15550001111");
        assert_eq!(h.must("DialBLegPosition"), "1");
        h.verify_signature(app.port, TOKEN).unwrap();
    }
    let hangup = &hits[2];
    assert_eq!(hangup.must("DialBLegHangupCause"), "NORMAL_CLEARING");
    assert_eq!(hangup.must("DialBLegHangupCauseCode"), "16");
    assert_eq!(hangup.must("DialBLegHangupCauseName"), "Callee Hangup");
    assert_eq!(hangup.must("DialBLegHangupSource"), "Callee");
    assert!(hangup.must("DialBLegBillDuration").parse::<u64>().is_ok());
    assert!(hangup.must("DialBLegDuration").parse::<u64>().is_ok());
    let rows: Vec<String> = server
        .outbox(&r.uuid)
        .into_iter()
        .filter(|row| row.0 == "dial_event")
        .map(|row| row.0)
        .collect();
    assert_eq!(rows.len(), 3, "each event is its own outbox row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_callback_url_of_a_destination_that_never_answers_gets_only_dial_hangup() {
    let (app, server) = setup().await;
    let events = app.url("/events");
    let url = app.xml(
        "/doc/d13",
        &xml(&format!(
            "<Dial callbackUrl=\"{events}\"><Number>7003</Number></Dial><Wait length=\"1\"/>"
        )),
    );
    let sim = sim(SPEED);
    let script = ringing(&url).callee("7003", Callee::Refuses(486));
    let r = report(sim.place_call(script, server.esl)).await;

    app.hangup_callback(&r.uuid).await;
    let hits = dial_events(&app, &r.uuid, 1).await;
    assert_eq!(hits.len(), 1, "only DialHangup");
    assert_eq!(hits[0].must("Event"), "DialHangup");
    assert_eq!(hits[0].must("DialBLegHangupCause"), "USER_BUSY");
    assert_eq!(hits[0].must("DialBLegBillDuration"), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_two_destinations_the_first_to_answer_wins_the_other_gets_lose_race() {
    let (app, server) = setup().await;
    let events = app.url("/events");
    let url = app.xml(
        "/doc/d14",
        &xml(&format!(
            "<Dial callbackUrl=\"{events}\"><Number>7004</Number><Number>7002</Number></Dial>"
        )),
    );
    let sim = sim(SPEED);
    let script = ringing(&url)
        .callee("7004", Callee::RingsForever)
        .callee("7002", answers(1, Some(2)));
    let r = report(sim.place_call(script, server.esl)).await;

    let arg = &r.apps.iter().find(|a| a.name == "bridge").unwrap().arg;
    let uuids: Vec<&str> = arg
        .split("origination_uuid=")
        .skip(1)
        .filter_map(|rest| rest.split([',', ']']).next())
        .collect();
    assert_eq!(
        uuids.len(),
        2,
        "one leg per destination, rung at once: {arg}"
    );
    let (loser, winner) = (uuids[0], uuids[1]);
    assert!(arg.contains("]sofia/gateway/default/7004,["), "{arg}");

    let hits = dial_events(&app, &r.uuid, 4).await;
    let of = |leg: &str| -> Vec<String> {
        hits.iter()
            .filter(|h| h.must("DialBLegUUID") == leg)
            .map(|h| h.must("Event"))
            .collect()
    };
    assert_eq!(of(winner), ["DialAnswer", "DialConnected", "DialHangup"]);
    assert_eq!(of(loser), ["DialHangup"]);
    let lost = hits
        .iter()
        .find(|h| h.must("DialBLegUUID") == loser)
        .unwrap();
    assert_eq!(lost.must("DialBLegHangupCause"), "LOSE_RACE");
    assert_eq!(lost.must("DialBLegHangupCauseName"), "Lose Race");
    assert_eq!(lost.must("DialBLegPosition"), "1");
    assert_eq!(lost.must("DialBLegTo"), "7004");
    check_leg_cdr(
        &server,
        &r.uuid,
        loser,
        ("LOSE_RACE", "Lose Race", "Answer XML"),
        false,
    )
    .await;
    check_leg_cdr(
        &server,
        &r.uuid,
        winner,
        ("NORMAL_CLEARING", "Callee Hangup", "Callee"),
        true,
    )
    .await;
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::NORMAL_CLEARING, "Callee Hangup", "Callee").answered(),
    )
    .await;
}

/// SPEC §11.1 "`sipHeaders` … echoed in callbacks": every header sent on the callee's
/// INVITE as `X-VH-<name>` comes back under that very name in each Dial event and in
/// the action request (docs/dial.md says why that name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_sip_headers_are_echoed_as_x_vh_params_in_every_dial_callback_and_the_action() {
    let (app, server) = setup().await;
    let events = app.url("/events");
    let after = app.xml("/doc/after-sh", &xml("<Wait length=\"1\"/>"));
    let url = app.xml(
        "/doc/d-sh",
        &xml(&format!(
            "<Dial callbackUrl=\"{events}\" action=\"{after}\" sipHeaders=\"Account=42,Tier=gold\"><Number>7002</Number></Dial>"
        )),
    );
    let sim = sim(SPEED);
    let script = ringing(&url).callee("7002", answers(1, Some(2)));
    let r = report(sim.place_call(script, server.esl)).await;

    let (arg, _) = bridge_of(&r);
    assert!(
        arg.contains("sip_h_X-VH-Account=42") && arg.contains("sip_h_X-VH-Tier=gold"),
        "sent on the INVITE: {arg}"
    );
    let hits = dial_events(&app, &r.uuid, 3).await;
    let names: Vec<String> = hits.iter().map(|h| h.must("Event")).collect();
    assert_eq!(names, ["DialAnswer", "DialConnected", "DialHangup"]);
    for h in &hits {
        assert_eq!(h.must("X-VH-Account"), "42", "{:?}", h.must("Event"));
        assert_eq!(h.must("X-VH-Tier"), "gold", "{:?}", h.must("Event"));
    }
    let action = app.hits_on("/doc/after-sh");
    assert_eq!(action.len(), 1);
    assert_eq!(param(&action[0], "Event"), "DialAction");
    assert_eq!(param(&action[0], "X-VH-Account"), "42");
    assert_eq!(param(&action[0], "X-VH-Tier"), "gold");
    action[0].verify_signature(app.port, TOKEN).unwrap();
}

/// A `<User sipHeaders>` goes on that leg's INVITE only, after the Dial's: its events
/// echo both, a leg without its own headers only the Dial's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_user_sip_headers_are_echoed_only_for_their_own_leg() {
    let (app, server) = setup().await;
    let events = app.url("/events");
    let url = app.xml(
        "/doc/d-sh2",
        &xml(&format!(
            "<Dial callbackUrl=\"{events}\" sipHeaders=\"Account=42\"><Number>7004</Number><User sipHeaders=\"Desk=7\">sip:7002@127.0.0.1:5060</User></Dial>"
        )),
    );
    let sim = sim(SPEED);
    let script = ringing(&url)
        .callee("7002", answers(1, Some(2)))
        .callee("7004", Callee::RingsForever);
    let r = report(sim.place_call(script, server.esl)).await;
    let hits = dial_events(&app, &r.uuid, 4).await;
    for h in &hits {
        assert_eq!(h.must("X-VH-Account"), "42");
        let own = h.param("X-VH-Desk");
        if h.must("DialBLegPosition") == "2" {
            assert_eq!(own.as_deref(), Some("7"), "{:?}", h.must("Event"));
        } else {
            assert_eq!(own, None, "the Number leg sent no Desk header");
        }
    }
}

/// SPEC §11.1/§11.4 `digitsMatch`: the caller's digits during the bridge are matched by
/// the engine from the caller's own DTMF events; a match posts `DialDigitsMatch`
/// (pressed by `aleg`) to the callbackUrl, after DialConnected and before DialHangup.
/// Nothing is asked of the switch for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_digits_match_of_the_caller_posts_dial_digits_match_between_connected_and_hangup() {
    let (app, server) = setup().await;
    let events = app.url("/events");
    let url = app.xml(
        "/doc/d-dm",
        &xml(&format!(
            "<Dial callbackUrl=\"{events}\" digitsMatch=\"*1,99X\"><Number>7002</Number></Dial>"
        )),
    );
    let sim = sim(SPEED);
    // Apps: set ×4 (the bridge's prelude), bridge (the 5th); the caller presses 7*1.
    let script = ringing(&url)
        .callee("7002", answers(0, Some(4)))
        .dtmf_during_app(5, Duration::from_secs(1), "7*1");
    let r = report(sim.place_call(script, server.esl)).await;

    assert!(
        commands_with(&r, "divert_events").is_empty()
            && !requested(&r).iter().any(|a| a.contains("digit_action")),
        "the caller's digits need nothing from the switch: {:?} {:?}",
        r.commands,
        requested(&r)
    );
    let (_, b_leg) = bridge_of(&r);
    let hits = dial_events(&app, &r.uuid, 4).await;
    let names: Vec<String> = hits.iter().map(|h| h.must("Event")).collect();
    assert_eq!(
        names,
        [
            "DialAnswer",
            "DialConnected",
            "DialDigitsMatch",
            "DialHangup"
        ]
    );
    let m = &hits[2];
    assert_eq!(m.must("DialDigitsMatch"), "*1");
    assert_eq!(m.must("DialDigitsPressedBy"), "aleg");
    assert_eq!(m.must("DialAction"), "digits");
    assert_eq!(m.must("DialBLegStatus"), "connected");
    assert_eq!(m.must("DialBLegUUID"), b_leg);
    assert_eq!(m.must("DialALegUUID"), r.uuid);
    assert_eq!(m.must("DialBLegPosition"), "1");
    m.verify_signature(app.port, TOKEN).unwrap();
}

/// SPEC §11.1 `digitsMatchBLeg`: the callee's digits never reach the caller's socket, so
/// the caller's channel binds the patterns to its bridge peer's digits
/// (`bind_digit_action …,peer`) and, with `divert_events on`, the switch's match comes
/// back on the socket; it posts `DialDigitsMatch` pressed by `bleg`. (The simulator
/// replays what the real switch did with 7007 pressing `1234#`: docs/dial.md.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_digits_match_b_leg_binds_the_callee_s_digits_and_posts_their_match() {
    let (app, server) = setup().await;
    let events = app.url("/events");
    let url = app.xml(
        "/doc/d-dmb",
        &xml(&format!(
            "<Dial callbackUrl=\"{events}\" digitsMatchBLeg=\"55,1234#\"><Number>7007</Number></Dial>"
        )),
    );
    let sim = sim(SPEED);
    let script = ringing(&url)
        .callee("7007", answers(0, Some(4)))
        .callee_presses("7007", Duration::from_secs(1), "1234#");
    let r = report(sim.place_call(script, server.esl)).await;

    assert_eq!(
        commands_with(&r, "divert_events on").len(),
        1,
        "{:?}",
        r.commands
    );
    let binds: Vec<&str> = r
        .apps
        .iter()
        .filter(|a| a.name == "bind_digit_action")
        .map(|a| a.arg.as_str())
        .collect();
    assert_eq!(
        binds,
        [
            "voxbridge_dial,55,voxbridge_digits_match,bleg,peer",
            "voxbridge_dial,1234#,voxbridge_digits_match,bleg,peer"
        ]
    );
    let (_, b_leg) = bridge_of(&r);
    let hits = dial_events(&app, &r.uuid, 4).await;
    let names: Vec<String> = hits.iter().map(|h| h.must("Event")).collect();
    assert_eq!(
        names,
        [
            "DialAnswer",
            "DialConnected",
            "DialDigitsMatch",
            "DialHangup"
        ]
    );
    let m = &hits[2];
    assert_eq!(m.must("DialDigitsMatch"), "1234#");
    assert_eq!(m.must("DialDigitsPressedBy"), "bleg");
    assert_eq!(m.must("DialBLegUUID"), b_leg);
}

/// A second Dial on the same call clears the first one's callee bindings before its
/// own (they outlive the bridge on the channel), and `divert_events` is sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_a_second_dial_clears_the_first_one_s_callee_digit_bindings() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/d-dm2",
        &xml(
            "<Dial digitsMatchBLeg=\"1234#\" timeLimit=\"1\"><Number>7002</Number></Dial>\
             <Dial timeLimit=\"1\"><Number>7002</Number></Dial>",
        ),
    );
    let sim = sim(SPEED);
    let script = ringing(&url).callee("7002", answers(0, None));
    let r = report(sim.place_call(script, server.esl)).await;
    assert_eq!(commands_with(&r, "divert_events on").len(), 1);
    let digit_apps: Vec<&str> = r
        .apps
        .iter()
        .filter(|a| a.name.contains("digit_action") || a.name == "bridge")
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(
        digit_apps,
        [
            "bind_digit_action",
            "bridge",
            "clear_digit_action",
            "bridge"
        ]
    );
}

/// SPEC §11.1 `confirmSound` + `confirmKey`: the confirm document is fetched with a
/// signed POST (`Event=DialConfirmSound`) before the legs ring; its Play/Wait become the
/// leg's `group_confirm_file`, the key its `group_confirm_key`, and a callee that presses
/// the key is bridged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_confirm_key_pressed_by_the_callee_bridges_it_after_the_confirm_sound() {
    let (app, server) = setup().await;
    let events = app.url("/events");
    let confirm = app.xml(
        "/doc/confirm",
        &xml("<Wait length=\"1\"/><Play>https://media.test/press-one.wav</Play>"),
    );
    let url = app.xml(
        "/doc/d-cf",
        &xml(&format!(
            "<Dial callbackUrl=\"{events}\" confirmSound=\"{confirm}\" confirmKey=\"1\"><Number>7007</Number></Dial>"
        )),
    );
    let sim = sim(SPEED);
    let script = ringing(&url)
        .callee("7007", answers(0, Some(3)))
        .callee_presses("7007", Duration::from_secs(1), "1234#");
    let r = report(sim.place_call(script, server.esl)).await;

    let hits = app.hits_on("/doc/confirm");
    assert_eq!(hits.len(), 1, "the confirm document is fetched once");
    assert_eq!(hits[0].method, "POST");
    assert_eq!(param(&hits[0], "Event"), "DialConfirmSound");
    assert_eq!(param(&hits[0], "CallUUID"), r.uuid);
    hits[0].verify_signature(app.port, TOKEN).unwrap();
    let (arg, _) = bridge_of(&r);
    assert!(
        arg.contains("group_confirm_file='file_string://silence_stream://1000!http_cache://https://media.test/press-one.wav'")
            && arg.contains("group_confirm_key=1"),
        "{arg}"
    );
    let hits = dial_events(&app, &r.uuid, 3).await;
    let names: Vec<String> = hits.iter().map(|h| h.must("Event")).collect();
    assert_eq!(names, ["DialAnswer", "DialConnected", "DialHangup"]);
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::NORMAL_CLEARING, "Callee Hangup", "Callee").answered(),
    )
    .await;
}

/// A callee that never presses the `confirmKey` is never bridged: it is dropped when the
/// ring window runs out, the Dial is `no-answer` and the caller, still unanswered, goes
/// on with the next element (a busy Hangup gives a real 486).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_confirm_key_never_pressed_drops_the_callee_at_the_ring_timeout() {
    let (app, server) = setup().await;
    let confirm = app.xml("/doc/confirm9", &xml("<Wait length=\"1\"/>"));
    let after = app.xml("/doc/after-cf", &xml("<Hangup reason=\"busy\"/>"));
    let url = app.xml(
        "/doc/d-cf9",
        &xml(&format!(
            "<Dial timeout=\"2\" action=\"{after}\" confirmSound=\"{confirm}\" confirmKey=\"9\"><Number>7007</Number></Dial>"
        )),
    );
    let sim = sim(SPEED);
    let script = ringing(&url)
        .callee("7007", answers(0, None))
        .callee_presses("7007", Duration::from_secs(1), "1234#");
    let r = report(sim.place_call(script, server.esl)).await;

    let (arg, _) = bridge_of(&r);
    assert!(arg.contains("group_confirm_key=9"), "{arg}");
    let action = app.hits_on("/doc/after-cf");
    assert_eq!(action.len(), 1);
    assert_eq!(param(&action[0], "DialStatus"), "no-answer");
    assert_eq!(param(&action[0], "DialBLegUUID"), "");
    assert_refused(&r, 486, HangupCause::USER_BUSY);
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::USER_BUSY, "Busy Line", "Answer XML").reason("busy"),
    )
    .await;
}

/// A confirm document that cannot be used (here: a `<Speak>`, which FreeSWITCH cannot
/// play as a confirm file) does not stop the Dial: it is logged and noted on the call's
/// record, the callee hears silence and (no key) is bridged after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_confirm_sound_that_cannot_be_used_is_noted_and_the_callee_hears_silence() {
    let (app, server) = setup().await;
    let confirm = app.xml("/doc/confirm-speak", &xml("<Speak>press one</Speak>"));
    let url = app.xml(
        "/doc/d-cfs",
        &xml(&format!(
            "<Dial confirmSound=\"{confirm}\"><Number>7002</Number></Dial>"
        )),
    );
    let sim = sim(SPEED);
    let script = ringing(&url).callee("7002", answers(0, Some(2)));
    let r = report(sim.place_call(script, server.esl)).await;

    let (arg, _) = bridge_of(&r);
    assert!(
        arg.contains("group_confirm_key=exec")
            && arg.contains("group_confirm_file='playback silence_stream://250'"),
        "{arg}"
    );
    let cdr = server.cdr(&r.uuid).await;
    assert!(
        cdr.notes.iter().any(|n| n
            == "Dial confirmSound not used: element 1 <Speak>: not supported yet in a Dial media document; the callee hears silence"),
        "{:?}",
        cdr.notes
    );
    assert!(cdr.answered, "bridged after the silence");
}

/// SPEC §11.1 `dialMusic` = a document: fetched with a signed POST (`Event=DialMusic`)
/// before the legs ring, its Play/Wait become the caller's `ringback` (looped by the
/// switch), and the caller, still unanswered, gets it as early media while the callee
/// rings; the callee's own early media is ignored (`ignore_early_media=true`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_music_document_is_fetched_and_played_to_the_ringing_caller_as_early_media() {
    let (app, server) = setup().await;
    let music = app.xml(
        "/doc/music",
        &xml("<Play loop=\"2\">tone_stream://%(400,200,440)</Play><Wait length=\"1\"/>"),
    );
    let after = app.xml("/doc/after-music", &xml("<Hangup reason=\"busy\"/>"));
    let url = app.xml(
        "/doc/d-mu",
        &xml(&format!(
            "<Dial timeout=\"2\" dialMusic=\"{music}\" action=\"{after}\"><Number>7004</Number></Dial>"
        )),
    );
    let sim = sim(SPEED);
    let script = ringing(&url).callee("7004", Callee::RingsForever);
    let r = report(sim.place_call(script, server.esl)).await;

    let hits = app.hits_on("/doc/music");
    assert_eq!(hits.len(), 1, "the music document is fetched once");
    assert_eq!(hits[0].method, "POST");
    assert_eq!(param(&hits[0], "Event"), "DialMusic");
    assert_eq!(param(&hits[0], "CallStatus"), "ringing");
    hits[0].verify_signature(app.port, TOKEN).unwrap();
    let media = "file_string://tone_stream://%(400,200,440)!tone_stream://%(400,200,440)!silence_stream://1000";
    assert_eq!(
        commands_with(&r, &format!("ringback={media}")).len(),
        2,
        "ringback and transfer_ringback: {:?}",
        r.commands
    );
    let (arg, _) = bridge_of(&r);
    assert!(arg.contains("ignore_early_media=true"), "{arg}");
    assert!(
        r.early_media_at.is_some(),
        "the ringing caller got the music as early media"
    );
    let action = app.hits_on("/doc/after-music");
    assert_eq!(param(&action[0], "DialStatus"), "no-answer");
    assert!(
        !r.answered(),
        "a Dial with music still never answers the caller"
    );
    assert_eq!(r.billsec, 0);
}

/// A `dialMusic` document that cannot be had (here 404) falls back to `real`: nothing is
/// set on the caller, the reason is logged and noted on the call's record, and the Dial
/// goes on (the caller only hears the callee ringing: no early media).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_music_that_cannot_be_fetched_falls_back_to_real_and_is_noted() {
    let (app, server) = setup().await;
    let missing = app.url("/doc/no-such-music");
    let url = app.xml(
        "/doc/d-mu404",
        &xml(&format!(
            "<Dial timeout=\"2\" dialMusic=\"{missing}\"><Number>7004</Number></Dial>"
        )),
    );
    let sim = sim(SPEED);
    let script = ringing(&url).callee("7004", Callee::RingsForever);
    let r = report(sim.place_call(script, server.esl)).await;

    assert!(commands_with(&r, "ringback").is_empty(), "{:?}", r.commands);
    let (arg, _) = bridge_of(&r);
    assert!(!arg.contains("ignore_early_media"), "{arg}");
    assert!(r.early_media_at.is_none(), "only the callee's 180");
    let cdr = server.cdr(&r.uuid).await;
    assert!(
        cdr.notes
            .iter()
            .any(|n| n.starts_with("Dial dialMusic not used:")
                && n.ends_with("the callees' own ringback plays")),
        "{:?}",
        cdr.notes
    );
}

/// A `dialMusic` document holding anything but Play/Wait is refused by name, and the
/// Dial falls back to `real` the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_music_document_with_another_element_is_refused_by_name() {
    let (app, server) = setup().await;
    let music = app.xml(
        "/doc/music-bad",
        &xml("<Play>tone_stream://%(400,200,440)</Play><Hangup/>"),
    );
    let url = app.xml(
        "/doc/d-mubad",
        &xml(&format!(
            "<Dial timeout=\"2\" dialMusic=\"{music}\"><Number>7004</Number></Dial>"
        )),
    );
    let sim = sim(SPEED);
    let script = ringing(&url).callee("7004", Callee::RingsForever);
    let r = report(sim.place_call(script, server.esl)).await;
    assert!(commands_with(&r, "ringback").is_empty());
    let cdr = server.cdr(&r.uuid).await;
    assert!(
        cdr.notes.iter().any(|n| n
            == "Dial dialMusic not used: element 2 <Hangup>: not allowed, a Dial media document holds Play and Wait only; the callees' own ringback plays"),
        "{:?}",
        cdr.notes
    );
}
