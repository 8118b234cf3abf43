//! The live twins of `tests/outbound_calls.rs` (SPEC §13, issue 14): `POST Call/`
//! against the real switch's test destinations (`../shared/freeswitch/README.md`:
//! 7002 answers with an endless tone, 7003 answers 486, 7004 rings and never answers).
//!
//! With `VOXBRIDGE_TEST_FS_ESL=host:port` each test runs the real `voxbridge serve`
//! with `[switch]` pointing there: voxbridge originates `sofia/<profile>/<ext>@<sip
//! target>` with `'&socket(<its own listener> async full)'`, so these tests need no
//! dialplan of their own and never touch port 8084. Without it they run against the
//! simulator's inbound port, scripted with the same destinations, so they cannot rot.
//! Selected by `cargo test --test live_freeswitch live::` like the rest of the suite.

use super::e2e_support::{self, xml, App, Server, ServerOptions, ACCOUNT, PATIENCE, TOKEN};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use voxbridge_sim::{CallScript, Callee, InboundServer, Sim};

/// The switch the calls go through: the real one, or a simulator kept alive here.
struct Switch {
    esl: String,
    password: String,
    real: bool,
    _sim: Option<(Sim, InboundServer)>,
}

async fn switch() -> Switch {
    if let Ok(esl) = std::env::var("VOXBRIDGE_TEST_FS_ESL") {
        return Switch {
            esl,
            password: std::env::var("VOXBRIDGE_TEST_FS_PASSWORD")
                .unwrap_or_else(|_| "ClueCon".into()),
            real: true,
            _sim: None,
        };
    }
    let sim = e2e_support::sim(1.0);
    let answers = Callee::Answers {
        after: Duration::ZERO,
        hangs_up_after: None,
    };
    sim.set_originate_callees(
        CallScript::answered()
            .callee("7002", answers)
            .callee("7003", Callee::Refuses(486))
            .callee("7004", Callee::RingsForever),
    );
    let inbound = sim
        .listen_inbound("127.0.0.1:0".parse().unwrap(), "ClueCon")
        .await
        .unwrap();
    Switch {
        esl: inbound.local_addr().to_string(),
        password: "ClueCon".into(),
        real: false,
        _sim: Some((sim, inbound)),
    }
}

struct Rig {
    switch: Switch,
    app: App,
    server: Server,
}

async fn rig() -> Rig {
    let switch = switch().await;
    let switches = format!(
        "[switch]\nesl = \"{}\"\npassword = \"{}\"\n",
        switch.esl, switch.password
    );
    rig_with(switch, &switches).await
}

/// A rig whose voxbridge has the `[switch]`/`[[switch]]` tables `switches`.
async fn rig_with(switch: Switch, switches: &str) -> Rig {
    let profile = std::env::var("VOXBRIDGE_TEST_FS_PROFILE").unwrap_or_else(|_| "external".into());
    let target =
        std::env::var("VOXBRIDGE_TEST_FS_SIP_TARGET").unwrap_or_else(|_| "127.0.0.1:5060".into());
    let app = App::start().await;
    let server = Server::start(
        &app,
        ServerOptions {
            extra_toml: format!(
                "{switches}[dial]\n\
                 number_template = \"sofia/{profile}/{{number}}@{target}\"\n"
            ),
            ..ServerOptions::default()
        },
    )
    .await;
    Rig {
        switch,
        app,
        server,
    }
}

impl Rig {
    fn calls_url(&self) -> String {
        format!("http://{}/api/v1/Account/{ACCOUNT}/Call/", self.server.api)
    }

    async fn post(&self, body: Value) -> Vec<String> {
        let r = client()
            .post(self.calls_url())
            .header("X-Auth-ID", ACCOUNT)
            .header("X-Auth-Token", TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 201, "POST Call/ answered {status}: {v}");
        match &v["request_uuid"] {
            Value::String(u) => vec![u.clone()],
            Value::Array(list) => list
                .iter()
                .map(|u| u.as_str().unwrap().to_string())
                .collect(),
            other => panic!("request_uuid {other}"),
        }
    }

    async fn live_status(&self, uuid: &str) -> Option<String> {
        let r = client()
            .get(format!("{}{uuid}/?status=live", self.calls_url()))
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

    async fn wait_status(&self, uuid: &str, want: &str) {
        let deadline = Instant::now() + PATIENCE;
        while self.live_status(uuid).await.as_deref() != Some(want) {
            assert!(Instant::now() < deadline, "{uuid} never showed {want}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// On the real switch: the call's channel is gone (nothing of ours left behind).
    async fn assert_gone(&self, uuid: &str) {
        if !self.switch.real {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = fs_api(&self.switch, &format!("uuid_exists {uuid}")).await;
            if out.trim() == "false" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{uuid} still on the switch: {out}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// One `api` command over a fresh inbound connection.
async fn fs_api(sw: &Switch, command: &str) -> String {
    let options = voxbridge::esl::inbound::InboundOptions {
        addr: sw.esl.clone(),
        password: sw.password.clone(),
        ..Default::default()
    };
    let (session, _events) =
        voxbridge::esl::inbound::InboundSession::connect(&options, Default::default())
            .await
            .unwrap();
    let out = session.api(command).await.unwrap().body;
    let _ = session.exit().await;
    out
}

fn client() -> reqwest::Client {
    voxbridge::http_client::builder().build().unwrap()
}

fn kind(rig: &Rig) -> &'static str {
    if rig.switch.real {
        "real switch"
    } else {
        "simulator"
    }
}

fn tag() -> &'static str {
    "15557770000"
}

async fn answered_runs_the_document() {
    let rig = rig().await;
    let answer = rig.app.xml(
        "/answer",
        &xml("<Speak>Hello from an outbound call</Speak><Hangup/>"),
    );
    let uuid = rig
        .post(
            json!({"from": tag(), "to": "7002", "answer_url": answer, "caller_name": "Live Test"}),
        )
        .await
        .remove(0);
    let fetch = rig
        .app
        .wait_for(PATIENCE, "the answer fetch", |hits| {
            hits.iter()
                .find(|h| h.path == "/answer" && h.param("CallUUID").as_deref() == Some(&uuid))
                .cloned()
        })
        .await;
    assert_eq!(fetch.must("Direction"), "outbound", "{:?}", fetch.params());
    assert_eq!(
        fetch.must("CallStatus"),
        "in-progress",
        "{:?}",
        fetch.params()
    );
    assert_eq!(fetch.must("Event"), "StartApp", "{:?}", fetch.params());
    assert_eq!(fetch.must("From"), tag(), "{:?}", fetch.params());
    assert_eq!(fetch.must("To"), "7002", "{:?}", fetch.params());
    let hangup = rig.app.hangup_callback(&uuid).await;
    assert_eq!(hangup.must("CallUUID"), uuid, "{:?}", hangup.params());
    assert_eq!(
        hangup.must("Direction"),
        "outbound",
        "{:?}",
        hangup.params()
    );
    assert_eq!(
        hangup.must("CallStatus"),
        "completed",
        "{:?}",
        hangup.params()
    );
    assert_eq!(
        hangup.must("HangupSource"),
        "Answer XML",
        "{:?}",
        hangup.params()
    );
    assert_eq!(
        hangup.must("HangupCauseName"),
        "Normal Hangup",
        "{:?}",
        hangup.params()
    );
    assert_eq!(
        hangup.must("CallerName"),
        "Live Test",
        "{:?}",
        hangup.params()
    );
    assert_ne!(hangup.must("AnswerTime"), "");
    let cdr = rig.server.cdr(&uuid).await;
    assert!(cdr.answered);
    rig.assert_gone(&uuid).await;
}

async fn busy_is_user_busy_without_an_answer_fetch() {
    let rig = rig().await;
    let answer = rig.app.xml("/answer", &xml("<Hangup/>"));
    let uuid = rig
        .post(json!({"from": tag(), "to": "7003", "answer_url": answer}))
        .await
        .remove(0);
    let hangup = rig.app.hangup_callback(&uuid).await;
    assert_eq!(hangup.must("CallStatus"), "busy", "{:?}", hangup.params());
    assert_eq!(
        hangup.must("HangupCause"),
        "USER_BUSY",
        "{:?}",
        hangup.params()
    );
    assert_eq!(
        hangup.must("HangupCauseCode"),
        "17",
        "{:?}",
        hangup.params()
    );
    assert_eq!(hangup.must("BillDuration"), "0", "{:?}", hangup.params());
    assert_eq!(hangup.must("AnswerTime"), "", "{:?}", hangup.params());
    assert!(rig
        .app
        .hits_on("/answer")
        .iter()
        .all(|h| h.param("Event").as_deref() != Some("StartApp")));
    assert!(!rig.server.cdr(&uuid).await.answered);
    rig.assert_gone(&uuid).await;
}

async fn no_answer_after_ring_timeout_with_a_ring_event() {
    let rig = rig().await;
    let answer = rig.app.xml("/answer", &xml("<Hangup/>"));
    let placed = Instant::now();
    let uuid = rig
        .post(json!({
            "from": tag(), "to": "7004", "answer_url": answer,
            "ring_timeout": 3, "ring_url": rig.app.url("/ring"),
        }))
        .await
        .remove(0);
    let ring = rig
        .app
        .wait_for(PATIENCE, "Event=Ring", |hits| {
            hits.iter()
                .find(|h| h.path == "/ring" && h.param("CallUUID").as_deref() == Some(&uuid))
                .cloned()
        })
        .await;
    assert_eq!(ring.must("Event"), "Ring", "{:?}", ring.params());
    assert_eq!(ring.must("CallStatus"), "ringing", "{:?}", ring.params());
    let hangup = rig.app.hangup_callback(&uuid).await;
    let took = placed.elapsed();
    assert_eq!(
        hangup.must("CallStatus"),
        "no-answer",
        "{:?}",
        hangup.params()
    );
    assert_eq!(
        hangup.must("HangupCause"),
        "NO_ANSWER",
        "{:?}",
        hangup.params()
    );
    // ~3 s: the switch's originate timer runs on whole epoch seconds (k, p: 2.2–2.4 s).
    assert!(took >= Duration::from_secs(2), "no-answer after {took:?}");
    eprintln!(
        "[outbound] ring_timeout=3: no-answer callback {took:?} after POST Call/ ({})",
        kind(&rig)
    );
    rig.assert_gone(&uuid).await;
}

async fn hangup_on_ring_gives_up_after_ringing_that_long() {
    let rig = rig().await;
    let answer = rig.app.xml("/answer", &xml("<Hangup/>"));
    let placed = Instant::now();
    let uuid = rig
        .post(json!({
            "from": tag(), "to": "7004", "answer_url": answer,
            "ring_timeout": 60, "hangup_on_ring": 2,
        }))
        .await
        .remove(0);
    let hangup = rig.app.hangup_callback(&uuid).await;
    let took = placed.elapsed();
    assert_eq!(
        hangup.must("CallStatus"),
        "no-answer",
        "{:?}",
        hangup.params()
    );
    assert_eq!(
        hangup.must("HangupCause"),
        "NO_ANSWER",
        "{:?}",
        hangup.params()
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(30),
        "gave up after {took:?}"
    );
    eprintln!(
        "[outbound] hangup_on_ring=2: no-answer callback {took:?} after POST Call/ ({})",
        kind(&rig)
    );
    rig.assert_gone(&uuid).await;
}

async fn time_limit_ends_the_answered_call_in_the_switch() {
    let rig = rig().await;
    let answer = rig.app.xml("/answer", &xml("<Wait length=\"30\"/>"));
    let uuid = rig
        .post(json!({"from": tag(), "to": "7002", "answer_url": answer, "time_limit": 3}))
        .await
        .remove(0);
    let hangup = rig.app.hangup_callback(&uuid).await;
    assert_eq!(
        hangup.must("HangupCause"),
        "ALLOTTED_TIMEOUT",
        "{:?}",
        hangup.params()
    );
    assert_eq!(
        hangup.must("CallStatus"),
        "completed",
        "{:?}",
        hangup.params()
    );
    assert_eq!(hangup.must("HangupSource"), "API", "{:?}", hangup.params());
    assert_eq!(
        hangup.must("HangupCauseName"),
        "Time Limit",
        "{:?}",
        hangup.params()
    );
    let billed: u64 = hangup.must("BillDuration").parse().unwrap();
    assert!((2..=4).contains(&billed), "billed {billed} s");
    eprintln!(
        "[outbound] time_limit=3: billed {billed} s ({})",
        kind(&rig)
    );
    rig.assert_gone(&uuid).await;
}

async fn delete_while_ringing_is_a_cancel_from_the_api() {
    let rig = rig().await;
    let answer = rig.app.xml("/answer", &xml("<Hangup/>"));
    let uuid = rig
        .post(json!({"from": tag(), "to": "7004", "answer_url": answer, "ring_timeout": 30}))
        .await
        .remove(0);
    rig.wait_status(&uuid, "ringing").await;
    // Let the callee's 180 arrive, so the channel surely exists on the switch.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = client()
        .delete(format!("{}{uuid}/", rig.calls_url()))
        .header("X-Auth-ID", ACCOUNT)
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let hangup = rig.app.hangup_callback(&uuid).await;
    assert_eq!(hangup.must("CallStatus"), "cancel", "{:?}", hangup.params());
    assert_eq!(hangup.must("HangupSource"), "API", "{:?}", hangup.params());
    assert_eq!(rig.server.cdr(&uuid).await.source, "API");
    rig.assert_gone(&uuid).await;
}

async fn delete_after_answer_hangs_up_source_api() {
    let rig = rig().await;
    let answer = rig.app.xml("/answer", &xml("<Wait length=\"30\"/>"));
    let uuid = rig
        .post(json!({"from": tag(), "to": "7002", "answer_url": answer}))
        .await
        .remove(0);
    rig.wait_status(&uuid, "in-progress").await;
    let r = client()
        .delete(format!("{}{uuid}/", rig.calls_url()))
        .header("X-Auth-ID", ACCOUNT)
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let hangup = rig.app.hangup_callback(&uuid).await;
    assert_eq!(
        hangup.must("CallStatus"),
        "completed",
        "{:?}",
        hangup.params()
    );
    assert_eq!(hangup.must("HangupSource"), "API", "{:?}", hangup.params());
    assert_eq!(
        hangup.must("HangupCause"),
        "NORMAL_CLEARING",
        "{:?}",
        hangup.params()
    );
    assert_ne!(hangup.must("AnswerTime"), "");
    rig.assert_gone(&uuid).await;
}

/// Several switches (SPEC §14) on the real one: it is configured as a `[[switch]]` named
/// after its switchname (`api switchname`), beside a second switch
/// that is down. `switch` naming it places the call through it; the answered channel's
/// connect reply gives the same name (no "not a configured name" warning), which the live
/// row keeps; a DELETE ends it (source API); a name no switch has is a 400 naming it.
async fn a_named_switch_places_the_call_and_its_connect_reply_names_it() {
    let switch = switch().await;
    // `api switchname` (mod_commands): the name the switch's events carry. (The test
    // switch's is `fs-test`, not its host name.)
    let name = fs_api(&switch, "switchname").await.trim().to_string();
    assert!(!name.is_empty() && !name.starts_with('-'), "{name:?}");
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_addr = down.local_addr().unwrap();
    drop(down);
    let switches = format!(
        "[[switch]]\nname = \"{name}\"\nesl = \"{}\"\npassword = \"{}\"\n\
         [[switch]]\nname = \"down\"\nesl = \"{down_addr}\"\n",
        switch.esl, switch.password
    );
    let rig = rig_with(switch, &switches).await;
    let answer = rig.app.xml("/answer", &xml("<Wait length=\"30\"/>"));
    let r = client()
        .post(rig.calls_url())
        .header("X-Auth-ID", ACCOUNT)
        .header("X-Auth-Token", TOKEN)
        .json(&json!({"from": tag(), "to": "7002", "answer_url": answer.clone(), "switch": "nowhere"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap_or("").contains("nowhere"), "{v}");
    let uuid = rig
        .post(json!({"from": tag(), "to": "7002", "answer_url": answer, "switch": name}))
        .await
        .remove(0);
    rig.wait_status(&uuid, "in-progress").await;
    let row_switch: String = rusqlite::Connection::open(&rig.server.db)
        .unwrap()
        .query_row(
            "SELECT switch_name FROM live_calls WHERE call_uuid = ?1",
            [&uuid],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(row_switch, name);
    let r = client()
        .delete(format!("{}{uuid}/", rig.calls_url()))
        .header("X-Auth-ID", ACCOUNT)
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let hangup = rig.app.hangup_callback(&uuid).await;
    assert_eq!(hangup.must("HangupSource"), "API", "{:?}", hangup.params());
    let log = rig.server.log_text();
    assert!(
        !log.contains("is no configured [[switch]] name"),
        "the {} said another switchname than {name:?}: {log}",
        kind(&rig)
    );
    rig.assert_gone(&uuid).await;
}

async fn sip_headers_reach_the_callee_as_x_vh() {
    let rig = rig().await;
    let answer = rig.app.xml("/answer", &xml("<Wait length=\"30\"/>"));
    let from = "15557770042";
    let uuid = rig
        .post(json!({
            "from": from, "to": "7002", "answer_url": answer,
            "sip_headers": "Campaign=spring,Batch=42",
        }))
        .await
        .remove(0);
    rig.wait_status(&uuid, "in-progress").await;
    if rig.switch.real {
        // The callee is the switch's own `sofia/internal/<from>@…` leg: the INVITE it
        // received carried the headers, which it keeps as `sip_h_X-VH-*` variables.
        let deadline = Instant::now() + Duration::from_secs(5);
        let callee = loop {
            let list = fs_api(&rig.switch, "show channels as json").await;
            let v: Value = serde_json::from_str(list.trim()).unwrap_or(Value::Null);
            let found = v["rows"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| {
                    r["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(&format!("sofia/internal/{from}@")))
                })
                .and_then(|r| r["uuid"].as_str())
                .map(str::to_string);
            if let Some(uuid) = found {
                break uuid;
            }
            if Instant::now() > deadline {
                let ended: Vec<_> = rig
                    .app
                    .callbacks_for("/hangup", &uuid)
                    .iter()
                    .map(|h| h.params())
                    .collect();
                panic!("the callee's leg is not among {list}; callbacks so far: {ended:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        for (name, want) in [("Campaign", "spring"), ("Batch", "42")] {
            let got = fs_api(
                &rig.switch,
                &format!("uuid_getvar {callee} sip_h_X-VH-{name}"),
            )
            .await;
            assert_eq!(got.trim(), want, "X-VH-{name} on the callee's INVITE");
        }
    }
    let r = client()
        .delete(format!("{}{uuid}/", rig.calls_url()))
        .header("X-Auth-ID", ACCOUNT)
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    rig.app.hangup_callback(&uuid).await;
    rig.assert_gone(&uuid).await;
}

async fn bulk_places_one_call_per_destination() {
    let rig = rig().await;
    let answer = rig.app.xml("/answer", &xml("<Hangup/>"));
    let uuids = rig
        .post(json!({"from": tag(), "to": "7002<7003", "answer_url": answer}))
        .await;
    assert_eq!(uuids.len(), 2);
    assert_ne!(uuids[0], uuids[1]);
    let first = rig.app.hangup_callback(&uuids[0]).await;
    assert_eq!(
        first.must("CallStatus"),
        "completed",
        "{:?}",
        first.params()
    );
    assert_eq!(first.must("To"), "7002", "{:?}", first.params());
    let second = rig.app.hangup_callback(&uuids[1]).await;
    assert_eq!(second.must("CallStatus"), "busy", "{:?}", second.params());
    assert_eq!(second.must("To"), "7003", "{:?}", second.params());
    for u in &uuids {
        rig.assert_gone(u).await;
    }
}

fn run(work: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(work);
}

/// `outbound::live::…`, selected with the rest of the live suite by `live::`.
mod live {
    use super::run;

    #[test]
    fn outbound_answered_call_runs_its_document_with_one_uuid() {
        run(super::answered_runs_the_document());
    }

    #[test]
    fn outbound_busy_destination_is_user_busy_without_an_answer_fetch() {
        run(super::busy_is_user_busy_without_an_answer_fetch());
    }

    #[test]
    fn outbound_ring_timeout_3_is_no_answer_after_a_ring_event() {
        run(super::no_answer_after_ring_timeout_with_a_ring_event());
    }

    #[test]
    fn outbound_hangup_on_ring_2_is_no_answer() {
        run(super::hangup_on_ring_gives_up_after_ringing_that_long());
    }

    #[test]
    fn outbound_time_limit_3_ends_the_call_in_the_switch() {
        run(super::time_limit_ends_the_answered_call_in_the_switch());
    }

    #[test]
    fn outbound_delete_while_ringing_is_cancel_source_api() {
        run(super::delete_while_ringing_is_a_cancel_from_the_api());
    }

    #[test]
    fn outbound_delete_after_answer_hangs_up_source_api() {
        run(super::delete_after_answer_hangs_up_source_api());
    }

    #[test]
    fn outbound_sip_headers_reach_the_callee_as_x_vh() {
        run(super::sip_headers_reach_the_callee_as_x_vh());
    }

    #[test]
    fn outbound_through_a_named_switch_whose_connect_reply_names_it() {
        run(super::a_named_switch_places_the_call_and_its_connect_reply_names_it());
    }

    #[test]
    fn outbound_bulk_7002_7003_places_two_calls() {
        run(super::bulk_places_one_call_per_destination());
    }
}
