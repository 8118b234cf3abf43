//! `POST Call/` end to end (SPEC §13, issue 14): the real binary, the simulator playing
//! the switch on both sides (its inbound port takes the `bgapi originate`, its dialled
//! channel connects back to voxbridge's ESL listener once answered, transcripts o and p),
//! and a local application serving the answer document and receiving the callbacks.
//!
//! Destinations as on the test switch (`../shared/freeswitch/README.md`): 7002 answers,
//! 7003 is busy (486), 7004 rings and never answers, 7008 rings then answers.

use crate::e2e_support::{self, xml, App, Server, ServerOptions, ACCOUNT, PATIENCE, TOKEN};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use voxbridge_sim::{CallScript, Callee, InboundServer, Sim};

/// A simulator whose inbound port places calls to the test destinations.
async fn switch(sim: &Sim) -> InboundServer {
    sim.set_originate_callees(
        CallScript::answered()
            .callee(
                "7002",
                Callee::Answers {
                    after: Duration::ZERO,
                    hangs_up_after: None,
                },
            )
            .callee("7003", Callee::Refuses(486))
            .callee("7004", Callee::RingsForever)
            .callee(
                "7008",
                Callee::Answers {
                    after: Duration::from_millis(500),
                    hangs_up_after: None,
                },
            ),
    );
    sim.listen_inbound("127.0.0.1:0".parse().unwrap(), "ClueCon")
        .await
        .unwrap()
}

/// The server configured to place calls through the simulator.
async fn setup(extra: &str) -> (Sim, InboundServer, App, Server) {
    let sim = e2e_support::sim(1.0);
    let inbound = switch(&sim).await;
    let app = App::start().await;
    let server = Server::start(
        &app,
        ServerOptions {
            extra_toml: format!(
                "[switch]\nesl = \"{}\"\npassword = \"ClueCon\"\n[dial]\n\
                 number_template = \"sofia/external/{{number}}@127.0.0.1:5060\"\n[outbound]\n{extra}",
                inbound.local_addr()
            ),
            ..ServerOptions::default()
        },
    )
    .await;
    (sim, inbound, app, server)
}

fn client() -> reqwest::Client {
    voxbridge::http_client::builder().build().unwrap()
}

fn calls_url(server: &Server) -> String {
    format!("http://{}/api/v1/Account/{ACCOUNT}/Call/", server.api)
}

/// `POST Call/` as JSON with our credentials.
async fn post(server: &Server, body: Value) -> (u16, Value) {
    let r = client()
        .post(calls_url(server))
        .header("X-Auth-ID", ACCOUNT)
        .header("X-Auth-Token", TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn live_status(server: &Server, uuid: &str) -> Option<String> {
    let r = client()
        .get(format!("{}{uuid}/?status=live", calls_url(server)))
        .header("X-Auth-ID", ACCOUNT)
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .unwrap();
    if r.status().as_u16() != 200 {
        return None;
    }
    let v: Value = r.json().await.unwrap();
    v["call_status"].as_str().map(str::to_string)
}

/// Polls the live details until `call_status` is `want` (fails after PATIENCE).
async fn wait_live_status(server: &Server, uuid: &str, want: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if live_status(server, uuid).await.as_deref() == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "{uuid} never showed {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn speak_then_hangup(app: &App) -> String {
    app.xml(
        "/answer",
        &xml("<Speak>Hello from an outbound call</Speak><Hangup/>"),
    )
}

#[tokio::test]
async fn the_sdk_request_places_a_call_that_runs_its_document() {
    let (sim, _inbound, app, server) = setup("").await;
    let answer = speak_then_hangup(&app);
    // Exactly what vobiz-python's `client.calls.make_call(...)` sends (Fern client,
    // src/vobiz/calls/raw_client.py + core/client_wrapper.py): POST to the path with
    // the trailing slash, a JSON body of from/to/answer_url/answer_method,
    // Content-Type application/json, X-Auth-Token and X-Auth-ID, X-Fern-* headers.
    let body = serde_json::to_vec(&serde_json::json!({
        "from": "15551230000",
        "to": "7002",
        "answer_url": answer,
        "answer_method": "POST",
    }))
    .unwrap();
    let r = client()
        .post(calls_url(&server))
        .header("content-type", "application/json")
        .header("X-Fern-Language", "Python")
        .header("X-Fern-Runtime", "python/3.11.2")
        .header("X-Fern-Platform", "linux/6.1.0")
        .header("X-Auth-Token", TOKEN)
        .header("X-Auth-ID", ACCOUNT)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: Value = r.json().await.unwrap();
    // The SDK's MakeCallResponse forbids extra fields: exactly these three.
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["api_id", "message", "request_uuid"]);
    assert_eq!(v["message"], "call fired");
    let uuid = v["request_uuid"].as_str().unwrap().to_string();
    assert_eq!(uuid.len(), 36);

    let fetch = app
        .wait_for(PATIENCE, "the answer fetch", |hits| {
            hits.iter()
                .find(|h| h.path == "/answer" && h.param("CallUUID").as_deref() == Some(&uuid))
                .cloned()
        })
        .await;
    assert_eq!(fetch.must("Direction"), "outbound");
    assert_eq!(fetch.must("CallStatus"), "in-progress");
    assert_eq!(fetch.must("Event"), "StartApp");
    assert_eq!(fetch.must("From"), "15551230000");
    assert_eq!(fetch.must("To"), "7002");

    let hangup = app.hangup_callback(&uuid).await;
    assert_eq!(hangup.must("Direction"), "outbound");
    assert_eq!(hangup.must("CallStatus"), "completed");
    assert_eq!(hangup.must("HangupSource"), "Answer XML");
    assert_eq!(hangup.must("From"), "15551230000");
    assert_eq!(hangup.must("To"), "7002");
    hangup.verify_signature(app.port, TOKEN).unwrap();
    let cdr = server.cdr(&uuid).await;
    assert!(cdr.answered);
    assert_eq!(cdr.source, "Answer XML");

    // The switch side ran the document: speak, then the hangup.
    let report = e2e_support::report(sim.take_originated(&uuid).expect("originated")).await;
    let ran = e2e_support::ran(&report);
    assert!(
        ran.iter().any(|a| a.starts_with("speak")),
        "speak never ran: {ran:?}"
    );
}

#[tokio::test]
async fn a_busy_callee_is_reported_busy_without_an_answer_fetch() {
    let (_sim, _inbound, app, server) = setup("").await;
    let answer = speak_then_hangup(&app);
    let (status, v) = post(
        &server,
        serde_json::json!({"from": "15551230000", "to": "7003", "answer_url": answer}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let uuid = v["request_uuid"].as_str().unwrap().to_string();
    let hangup = app.hangup_callback(&uuid).await;
    assert_eq!(hangup.must("CallStatus"), "busy");
    assert_eq!(hangup.must("HangupCause"), "USER_BUSY");
    assert_eq!(hangup.must("HangupCauseCode"), "17");
    assert_eq!(hangup.must("Direction"), "outbound");
    assert_eq!(hangup.must("BillDuration"), "0");
    assert_eq!(hangup.must("AnswerTime"), "");
    let cdr = server.cdr(&uuid).await;
    assert!(!cdr.answered);
    assert_eq!(cdr.source, "Callee");
    assert!(app
        .hits_on("/answer")
        .iter()
        .all(|h| h.param("CallUUID").as_deref() != Some(&uuid)));
    // The status event agrees.
    let status_event = app
        .wait_for(PATIENCE, "the status event", |hits| {
            hits.iter()
                .find(|h| h.path == "/status" && String::from_utf8_lossy(&h.body).contains(&uuid))
                .cloned()
        })
        .await;
    let ev: Value = serde_json::from_slice(&status_event.body).unwrap();
    assert_eq!(ev["status"], "busy");
}

#[tokio::test]
async fn no_answer_within_ring_timeout_after_a_ring_event() {
    let (_sim, _inbound, app, server) = setup("").await;
    let answer = speak_then_hangup(&app);
    let placed = Instant::now();
    let (status, v) = post(
        &server,
        serde_json::json!({
            "from": "15551230000", "to": "7004", "answer_url": answer,
            "ring_timeout": 3, "ring_url": app.url("/ring"),
        }),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let uuid = v["request_uuid"].as_str().unwrap().to_string();
    wait_live_status(&server, &uuid, "ringing").await;
    let ring = app
        .wait_for(PATIENCE, "the ring event", |hits| {
            hits.iter()
                .find(|h| h.path == "/ring" && h.param("CallUUID").as_deref() == Some(&uuid))
                .cloned()
        })
        .await;
    assert_eq!(ring.must("Event"), "Ring");
    assert_eq!(ring.must("CallStatus"), "ringing");
    assert_eq!(ring.must("Direction"), "outbound");
    ring.verify_signature(app.port, TOKEN).unwrap();
    let hangup = app.hangup_callback(&uuid).await;
    let took = placed.elapsed();
    assert_eq!(hangup.must("CallStatus"), "no-answer");
    assert_eq!(hangup.must("HangupCause"), "NO_ANSWER");
    // originate_timeout works on whole epoch seconds: 2–3 s, never much less.
    assert!(took >= Duration::from_secs(2), "ended after {took:?}");
    assert_eq!(live_status(&server, &uuid).await, None);
}

#[tokio::test]
async fn time_limit_ends_the_answered_call_in_the_switch() {
    let (_sim, _inbound, app, server) = setup("").await;
    let answer = app.xml("/answer", &xml("<Wait length=\"60\"/>"));
    let (status, v) = post(
        &server,
        serde_json::json!({
            "from": "15551230000", "to": "7002", "answer_url": answer, "time_limit": 3,
        }),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let uuid = v["request_uuid"].as_str().unwrap().to_string();
    wait_live_status(&server, &uuid, "in-progress").await;
    let details: Value = client()
        .get(format!("{}{uuid}/?status=live", calls_url(&server)))
        .header("X-Auth-ID", ACCOUNT)
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        details["scheduled_hangup_at"].is_string(),
        "time_limit not visible: {details}"
    );
    let hangup = app.hangup_callback(&uuid).await;
    assert_eq!(hangup.must("HangupCause"), "ALLOTTED_TIMEOUT");
    assert_eq!(hangup.must("CallStatus"), "completed");
    // The limit the REST request set, armed in the switch: source API, `Time Limit`.
    assert_eq!(hangup.must("HangupSource"), "API");
    assert_eq!(hangup.must("HangupCauseName"), "Time Limit");
    let secs: u64 = hangup.must("BillDuration").parse().unwrap();
    assert!((2..=4).contains(&secs), "billed {secs} s");
}

#[tokio::test]
async fn delete_while_ringing_cancels_and_bulk_places_one_call_per_destination() {
    let (_sim, _inbound, app, server) = setup("").await;
    let answer = speak_then_hangup(&app);
    let (status, v) = post(
        &server,
        serde_json::json!({
            "from": "15551230000", "to": "7004<7003", "answer_url": answer,
        }),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let uuids: Vec<String> = v["request_uuid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    assert_eq!(uuids.len(), 2);
    assert_ne!(uuids[0], uuids[1]);
    wait_live_status(&server, &uuids[0], "ringing").await;
    let r = client()
        .delete(format!("{}{}/", calls_url(&server), uuids[0]))
        .header("X-Auth-ID", ACCOUNT)
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let cancelled = app.hangup_callback(&uuids[0]).await;
    assert_eq!(cancelled.must("CallStatus"), "cancel");
    assert_eq!(cancelled.must("HangupSource"), "API");
    let busy = app.hangup_callback(&uuids[1]).await;
    assert_eq!(busy.must("CallStatus"), "busy");
    assert_eq!(server.cdr(&uuids[0]).await.source, "API");
}

#[tokio::test]
async fn queued_calls_show_queued_and_can_be_cancelled_and_a_full_queue_answers_429() {
    // One originate every 20 s: the second call of a bulk waits in the queue.
    let (_sim, _inbound, app, server) = setup("max_cps = 0.05\nmax_queued = 2\n").await;
    let answer = speak_then_hangup(&app);
    let (status, v) = post(
        &server,
        serde_json::json!({"from": "1", "to": "7003<7004", "answer_url": answer}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let second = v["request_uuid"][1].as_str().unwrap().to_string();
    wait_live_status(&server, &second, "queued").await;
    // The first went out; the second holds one place of two: three more do not fit.
    let (full, body) = post(
        &server,
        serde_json::json!({"from": "1", "to": "7002<7002", "answer_url": answer}),
    )
    .await;
    assert_eq!(full, 429, "{body}");
    let r = client()
        .delete(format!("{}{second}", calls_url(&server)))
        .header("X-Auth-ID", ACCOUNT)
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let cancelled = app.hangup_callback(&second).await;
    assert_eq!(cancelled.must("CallStatus"), "cancel");
    assert_eq!(cancelled.must("HangupSource"), "API");
}

#[tokio::test]
async fn bad_parameters_are_named_and_no_switch_is_503() {
    let (_sim, _inbound, app, server) = setup("").await;
    let answer = speak_then_hangup(&app);
    let (status, v) = post(
        &server,
        serde_json::json!({"from": "15551230000", "to": "7002", "answer_url": "ftp://x/y"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        v["error"].as_str().unwrap().starts_with("answer_url:"),
        "{v}"
    );
    let (status, v) = post(
        &server,
        serde_json::json!({"from": "15551230000", "answer_url": answer}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().starts_with("to:"), "{v}");
    // A form works like JSON.
    let r = client()
        .post(calls_url(&server))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .form(&[("from", "1"), ("to", "7002"), ("answer_url", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"].as_str().unwrap().starts_with("answer_url:"),
        "{v}"
    );

    let plain = Server::start(&app, ServerOptions::default()).await;
    let (status, v) = post(
        &plain,
        serde_json::json!({"from": "1", "to": "7002", "answer_url": answer}),
    )
    .await;
    assert_eq!(status, 503, "{v}");
}

/// The `bgapi originate` commands a fake switch was sent, in order.
type Originates = Arc<std::sync::Mutex<Vec<String>>>;

/// A switch whose inbound port accepts everything, takes `bgapi` (`+OK Job-UUID`) and
/// never sends the BACKGROUND_JOB; it answers `api` with `-ERR No such channel!`.
/// Keeps the originate commands it was sent.
async fn silent_switch() -> (std::net::SocketAddr, Originates) {
    fake_switch(false).await
}

/// As [`silent_switch`]; with `answered_end`, right after each originate it also sends
/// the originated channel's CHANNEL_HANGUP_COMPLETE of an answered call (answer_epoch
/// set), as a loaded real switch did when a short document ended the call before the
/// originate's `+OK` reached the dialer.
async fn fake_switch(answered_end: bool) -> (std::net::SocketAddr, Originates) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let originates = Originates::default();
    let seen = originates.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let _ = stream.write_all(b"Content-Type: auth/request\n\n").await;
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                        let cmd = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 2);
                        let reply = if cmd.starts_with("bgapi") {
                            let job = cmd
                                .lines()
                                .find_map(|l| l.strip_prefix("Job-UUID: "))
                                .unwrap_or("")
                                .to_string();
                            let mut reply = format!(
                                "Content-Type: command/reply\nReply-Text: +OK Job-UUID: {job}\nJob-UUID: {job}\n\n"
                            );
                            if cmd.contains("originate") {
                                seen.lock().unwrap().push(cmd.clone());
                                let uuid = cmd
                                    .split("origination_uuid=")
                                    .nth(1)
                                    .and_then(|r| r.split([',', '}']).next())
                                    .unwrap_or("")
                                    .to_string();
                                if answered_end {
                                    let now = std::time::SystemTime::now()
                                        .duration_since(std::time::UNIX_EPOCH)
                                        .unwrap()
                                        .as_secs();
                                    let body = format!(
                                        "Event-Name: CHANNEL_HANGUP_COMPLETE\nUnique-ID: {uuid}\n\
                                         Hangup-Cause: NORMAL_CLEARING\n\
                                         variable_answer_epoch: {}\n\
                                         variable_answer_uepoch: {}\n\
                                         variable_billsec: 1\n\
                                         variable_hangup_cause_q850: 16\n\n",
                                        now - 1,
                                        (now - 1) * 1_000_000
                                    );
                                    reply.push_str(&format!(
                                        "Content-Length: {}\nContent-Type: text/event-plain\n\n{body}",
                                        body.len()
                                    ));
                                }
                            }
                            reply
                        } else if cmd.starts_with("api ") {
                            let body = "-ERR No such channel!\n";
                            format!(
                                "Content-Type: api/response\nContent-Length: {}\n\n{body}",
                                body.len()
                            )
                        } else {
                            "Content-Type: command/reply\nReply-Text: +OK\n\n".to_string()
                        };
                        if stream.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, originates)
}

#[tokio::test]
async fn an_originate_whose_background_job_never_comes_is_closed_out_failed() {
    let (addr, originates) = silent_switch().await;
    let app = App::start().await;
    let server = Server::start(
        &app,
        ServerOptions {
            extra_toml: format!(
                "[switch]\nesl = \"{addr}\"\npassword = \"ClueCon\"\n[outbound]\njob_grace = 1\n"
            ),
            ..ServerOptions::default()
        },
    )
    .await;
    let answer = speak_then_hangup(&app);
    let (status, v) = post(
        &server,
        serde_json::json!({
            "from": "15551230000", "to": "7002", "answer_url": answer, "ring_timeout": 1,
        }),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let uuid = v["request_uuid"].as_str().unwrap().to_string();
    let hangup = app.hangup_callback(&uuid).await;
    assert_eq!(originates.lock().unwrap().len(), 1);
    assert_eq!(hangup.must("CallStatus"), "failed");
    assert_eq!(hangup.must("HangupSource"), "Error");
    assert!(
        hangup
            .must("HangupCauseName")
            .contains("no originate result"),
        "{:?}",
        hangup.params()
    );
    assert_eq!(live_status(&server, &uuid).await, None);
    assert_eq!(server.cdr(&uuid).await.source, "Error");
}

#[tokio::test]
async fn hangup_on_ring_gives_up_that_long_after_ringing_starts() {
    let (_sim, _inbound, app, server) = setup("").await;
    let answer = speak_then_hangup(&app);
    let placed = Instant::now();
    let (status, v) = post(
        &server,
        serde_json::json!({
            "from": "15551230000", "to": "7004", "answer_url": answer,
            "ring_timeout": 60, "hangup_on_ring": 2,
        }),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let uuid = v["request_uuid"].as_str().unwrap().to_string();
    let hangup = app.hangup_callback(&uuid).await;
    let took = placed.elapsed();
    assert_eq!(hangup.must("CallStatus"), "no-answer");
    assert_eq!(hangup.must("HangupCause"), "NO_ANSWER");
    assert!(took >= Duration::from_secs(2), "gave up after {took:?}");
}

#[tokio::test]
async fn originates_are_paced_by_max_cps() {
    // Five busy callees refuse at once, so each hangup callback follows its originate
    // closely: at 2 originates per second, the five take at least 2 s from first to last.
    let (_sim, _inbound, app, server) = setup("max_cps = 2\n").await;
    let answer = speak_then_hangup(&app);
    let (status, v) = post(
        &server,
        serde_json::json!({
            "from": "15551230000", "to": "7003<7003<7003<7003<7003", "answer_url": answer,
        }),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let mut arrivals = Vec::new();
    for uuid in v["request_uuid"].as_array().unwrap() {
        let hit = app.hangup_callback(uuid.as_str().unwrap()).await;
        assert_eq!(hit.must("CallStatus"), "busy");
        arrivals.push(hit.at);
    }
    arrivals.sort();
    let spread = arrivals[4] - arrivals[0];
    assert!(
        spread >= Duration::from_millis(1900),
        "five originates at max_cps=2 within {spread:?}"
    );
}

#[tokio::test]
async fn a_call_ringing_when_voxbridge_dies_is_closed_out_at_the_next_start() {
    let sim = e2e_support::sim(1.0);
    let inbound = switch(&sim).await;
    let app = App::start().await;
    let db_dir = tempfile::tempdir().unwrap();
    let options = ServerOptions {
        extra_toml: format!(
            "[switch]\nesl = \"{}\"\npassword = \"ClueCon\"\n[dial]\n\
             number_template = \"sofia/external/{{number}}@127.0.0.1:5060\"\n",
            inbound.local_addr()
        ),
        db_dir: Some(db_dir.path().to_path_buf()),
        ..ServerOptions::default()
    };
    let server = Server::start(&app, options.clone()).await;
    let answer = speak_then_hangup(&app);
    let (status, v) = post(
        &server,
        serde_json::json!({"from": "15551230000", "to": "7004", "answer_url": answer, "ring_timeout": 4}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let uuid = v["request_uuid"].as_str().unwrap().to_string();
    wait_live_status(&server, &uuid, "ringing").await;
    // `ringing` is shown from the originate on: wait for the switch's channel itself.
    let deadline = Instant::now() + PATIENCE;
    while sim.live_channels() == 0 {
        assert!(
            Instant::now() < deadline,
            "the originate never reached the switch"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGKILL while the callee rings. The switch gives up ringing (NO_ANSWER at
    // ring_timeout) while nobody listens; the live row written at the 201 makes the next
    // start close the call out, since the switch no longer lists its channel. (One still
    // listed would be left live, for the sweep:
    // `fleet_switches::reconciliation_after_a_restart_asks_the_switch_each_call_is_on`.)
    drop(server);
    let deadline = Instant::now() + PATIENCE;
    while sim.live_channels() > 0 {
        assert!(
            Instant::now() < deadline,
            "the callee never stopped ringing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let restarted = Server::start(&app, options).await;
    let hangup = app.hangup_callback(&uuid).await;
    assert_eq!(hangup.must("Direction"), "outbound");
    assert_eq!(hangup.must("HangupSource"), "Unknown");
    assert_eq!(hangup.must("CallStatus"), "failed");
    assert_eq!(hangup.must("To"), "7004");
    assert_eq!(restarted.cdr(&uuid).await.source, "Unknown");
}

#[tokio::test]
async fn an_answered_call_that_ends_before_its_originate_result_is_not_closed_out_as_failed() {
    let (addr, originates) = fake_switch(true).await;
    let app = App::start().await;
    let server = Server::start(
        &app,
        ServerOptions {
            extra_toml: format!("[switch]\nesl = \"{addr}\"\npassword = \"ClueCon\"\n"),
            ..ServerOptions::default()
        },
    )
    .await;
    let answer = speak_then_hangup(&app);
    let (status, v) = post(
        &server,
        serde_json::json!({"from": "15551230000", "to": "7002", "answer_url": answer}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let uuid = v["request_uuid"].as_str().unwrap().to_string();
    // No socket ever comes here, so after its grace the dialer closes the answered call
    // out itself — as answered (never `failed`), source Unknown.
    let hangup = app.hangup_callback(&uuid).await;
    assert_eq!(originates.lock().unwrap().len(), 1);
    assert_eq!(
        hangup.must("CallStatus"),
        "completed",
        "{:?}",
        hangup.params()
    );
    assert_eq!(hangup.must("HangupSource"), "Unknown");
    assert_ne!(hangup.must("AnswerTime"), "");
    assert_eq!(hangup.must("BillDuration"), "1");
}

/// SPEC §11.1, §13: a `POST Call/` `to` becomes a dial string as a Dial's destination
/// does, from `[dial]`; the first outbound release's `[outbound] number_template` and
/// `sip_profile` are still read (as `[dial]`'s, with a deprecation warning).
#[tokio::test]
async fn post_call_dial_strings_come_from_dial_and_the_old_outbound_keys_still_work() {
    let cases = [
        (
            "[dial]\nnumber_template = \"sofia/test/{number}@10.0.0.9\"\nsip_profile = \"internal\"\n",
            "sofia/test/7002@10.0.0.9",
            "sofia/internal/bob@10.0.0.9:5080",
        ),
        (
            "[outbound]\nnumber_template = \"sofia/old/{number}@10.0.0.8\"\nsip_profile = \"oldprofile\"\n",
            "sofia/old/7002@10.0.0.8",
            "sofia/oldprofile/bob@10.0.0.9:5080",
        ),
    ];
    for (section, number_dial, user_dial) in cases {
        let (addr, originates) = silent_switch().await;
        let app = App::start().await;
        let server = Server::start(
            &app,
            ServerOptions {
                extra_toml: format!(
                    "[switch]\nesl = \"{addr}\"\npassword = \"ClueCon\"\n{section}"
                ),
                ..ServerOptions::default()
            },
        )
        .await;
        let answer = speak_then_hangup(&app);
        for to in ["7002", "sip:bob@10.0.0.9:5080"] {
            let (status, v) = post(
                &server,
                serde_json::json!({"from": "15551230000", "to": to, "answer_url": answer}),
            )
            .await;
            assert_eq!(status, 201, "{section}: {v}");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while originates.lock().unwrap().len() < 2 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let sent = originates.lock().unwrap().clone();
        assert_eq!(sent.len(), 2, "{section}: {sent:?}");
        for want in [number_dial, user_dial] {
            assert!(
                sent.iter()
                    .any(|c| c.contains(&format!("}}{want} '&socket("))),
                "{section}: no originate to {want}: {sent:?}"
            );
        }
        let deprecated = section.starts_with("[outbound]");
        for key in ["number_template", "sip_profile"] {
            let warning = format!("outbound.{key} is deprecated: outbound calls use [dial] {key}");
            assert_eq!(
                server.log_text().contains(&warning),
                deprecated,
                "{section}: the warning {warning:?}"
            );
        }
    }
}
