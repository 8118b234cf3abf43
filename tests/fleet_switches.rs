//! Several switches behind one voxbridge (SPEC §14, issue 15 point 4): two simulators
//! play two FreeSWITCH boxes named `fs-a` and `fs-b` (their `FreeSWITCH-Switchname`),
//! each with its inbound ESL port on port 0, and the real binary is configured with
//! both as `[[switch]]`. Each simulator counts the API commands it ran, so a test can
//! say which switch was asked and that the other was not.

use crate::e2e_support::{self, rest, xml, App, Server, ServerOptions, ACCOUNT, PATIENCE, TOKEN};
use reqwest::Method;
use serde_json::Value;
use std::time::{Duration, Instant};
use voxbridge_sim::{CallScript, Callee, InboundServer, Sim, SimConfig};

/// A simulated switch called `name`: 7002 answers, 7004 rings until cancelled.
async fn switch(name: &str) -> (Sim, InboundServer) {
    let sim = Sim::new(SimConfig {
        switchname: name.into(),
        ..SimConfig::default()
    });
    sim.set_originate_callees(
        CallScript::answered()
            .callee(
                "7002",
                Callee::Answers {
                    after: Duration::ZERO,
                    hangs_up_after: None,
                },
            )
            .callee("7004", Callee::RingsForever),
    );
    let inbound = sim
        .listen_inbound("127.0.0.1:0".parse().unwrap(), "ClueCon")
        .await
        .unwrap();
    (sim, inbound)
}

fn two_switches(a: &InboundServer, b: &InboundServer) -> String {
    format!(
        "[[switch]]\nname = \"fs-a\"\nesl = \"{}\"\npassword = \"ClueCon\"\n\
         [[switch]]\nname = \"fs-b\"\nesl = \"{}\"\npassword = \"ClueCon\"\n\
         [dial]\nnumber_template = \"sofia/external/{{number}}@127.0.0.1:5060\"\n",
        a.local_addr(),
        b.local_addr()
    )
}

async fn post_call(server: &Server, body: Value) -> (u16, Value) {
    let r = voxbridge::http_client::builder()
        .build()
        .unwrap()
        .post(format!(
            "http://{}/api/v1/Account/{ACCOUNT}/Call/",
            server.api
        ))
        .header("X-Auth-ID", ACCOUNT)
        .header("X-Auth-Token", TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Waits until `f` holds (fails naming `what` after PATIENCE).
async fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_ringing(server: &Server, uuid: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, v) = rest(server, Method::GET, &format!("Call/{uuid}/?status=live")).await;
        if status == 200 && v["call_status"] == "ringing" {
            return;
        }
        assert!(Instant::now() < deadline, "{uuid} never rang: {status} {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn live_row_switch(server: &Server, uuid: &str) -> Option<String> {
    let conn = rusqlite::Connection::open_with_flags(
        &server.db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    match conn.query_row(
        "SELECT switch_name FROM live_calls WHERE call_uuid = ?1",
        [uuid],
        |r| r.get(0),
    ) {
        Ok(name) => Some(name),
        Err(rusqlite::Error::QueryReturnedNoRows) => None,
        Err(e) => panic!("reading the live row of {uuid}: {e}"),
    }
}

#[tokio::test]
async fn post_call_takes_turns_or_the_named_switch_and_a_hangup_reaches_the_call_s_switch() {
    let (sim_a, inbound_a) = switch("fs-a").await;
    let (sim_b, inbound_b) = switch("fs-b").await;
    let app = App::start().await;
    let server = Server::start(
        &app,
        ServerOptions {
            extra_toml: two_switches(&inbound_a, &inbound_b),
            ..ServerOptions::default()
        },
    )
    .await;
    let answer = app.xml("/answer", &xml("<Wait length=\"60\"/>"));
    let ringing = |switch: Option<&str>| {
        let mut body = serde_json::json!({
            "from": "15551230000", "to": "7004", "answer_url": answer.clone(),
        });
        if let Some(name) = switch {
            body["switch"] = name.into();
        }
        body
    };

    // Round-robin: two requests without `switch`, one originate on each switch.
    let mut placed = Vec::new();
    for _ in 0..2 {
        let (status, v) = post_call(&server, ringing(None)).await;
        assert_eq!(status, 201, "{v}");
        placed.push(v["request_uuid"].as_str().unwrap().to_string());
    }
    for uuid in &placed {
        wait_ringing(&server, uuid).await;
    }
    // `ringing` is reported from the moment the dialer takes its turn, before its
    // `bgapi originate` has reached a switch: wait for both to have arrived.
    until("both originates reached a switch", || {
        sim_a.api_commands("originate") + sim_b.api_commands("originate") == 2
    })
    .await;
    assert_eq!(
        (
            sim_a.api_commands("originate"),
            sim_b.api_commands("originate")
        ),
        (1, 1)
    );

    // Named: through fs-b only; its live row says so from the 201 on.
    let (status, v) = post_call(&server, ringing(Some("fs-b"))).await;
    assert_eq!(status, 201, "{v}");
    let on_b = v["request_uuid"].as_str().unwrap().to_string();
    wait_ringing(&server, &on_b).await;
    until("the named originate reached fs-b", || {
        sim_b.api_commands("originate") == 2
    })
    .await;
    assert_eq!(sim_b.api_commands("originate"), 2);
    assert_eq!(sim_a.api_commands("originate"), 1);
    assert_eq!(live_row_switch(&server, &on_b).as_deref(), Some("fs-b"));

    // An unknown name: 400 naming the parameter and the name; nothing originated.
    let (status, v) = post_call(&server, ringing(Some("fs-z"))).await;
    assert_eq!(status, 400, "{v}");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(error.contains("switch") && error.contains("fs-z"), "{v}");
    assert_eq!(
        sim_a.api_commands("originate") + sim_b.api_commands("originate"),
        3
    );

    // DELETE of the ringing call on fs-b: cancelled with uuid_kill through fs-b's ESL;
    // fs-a is never asked to kill anything.
    let (status, v) = rest(&server, Method::DELETE, &format!("Call/{on_b}/")).await;
    assert_eq!(status, 204, "{v}");
    let cancelled = app.hangup_callback(&on_b).await;
    assert_eq!(cancelled.must("CallStatus"), "cancel");
    assert_eq!(cancelled.must("HangupSource"), "API");
    assert_eq!(sim_b.api_commands("uuid_kill"), 1);
    assert_eq!(sim_a.api_commands("uuid_kill"), 0);

    // An answered call handed over by fs-b: its live row records fs-b from the connect
    // reply, and a DELETE ends it on fs-b's socket (source API); fs-a sees nothing.
    let call = sim_b.place_call(e2e_support::answered(&answer), server.esl);
    let uuid = call.uuid.clone();
    until("the call from fs-b is live with its switch", || {
        live_row_switch(&server, &uuid).as_deref() == Some("fs-b")
    })
    .await;
    let kills_on_a = sim_a.api_commands("uuid_kill");
    let (status, v) = rest(&server, Method::DELETE, &format!("Call/{uuid}/")).await;
    assert_eq!(status, 204, "{v}");
    let report = e2e_support::report(call).await;
    assert!(report.hangup_cause.is_some(), "{report:?}");
    assert_eq!(server.cdr(&uuid).await.source, "API");
    assert_eq!(sim_a.api_commands("uuid_kill"), kills_on_a);
}

/// A live row left by a previous run is asked of the switch it names. Two channels are
/// up on fs-b; the row of the first names fs-a (where it is not), the row of the second
/// names fs-b: the first is closed out, the second left live. A third row on fs-b whose
/// channel is gone is closed out too. Each switch answers one `show channels`.
#[tokio::test]
async fn reconciliation_after_a_restart_asks_the_switch_each_call_is_on() {
    let (sim_a, inbound_a) = switch("fs-a").await;
    let (sim_b, inbound_b) = switch("fs-b").await;
    let app = App::start().await;
    let db_dir = tempfile::tempdir().unwrap();
    let options = ServerOptions {
        extra_toml: two_switches(&inbound_a, &inbound_b),
        db_dir: Some(db_dir.path().to_path_buf()),
        ..ServerOptions::default()
    };
    // A first run creates the database; it is killed with nothing live.
    let first = Server::start(&app, options.clone()).await;
    let db = first.db.clone();
    drop(first);

    // Two channels up on fs-b, held by a peer that never answers the socket.
    let holder = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let holder_addr = holder.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = holder.accept().await {
            conns.push(c);
        }
    });
    let on_b_named_a = sim_b.place_call(CallScript::answered(), holder_addr);
    let on_b_named_b = sim_b.place_call(CallScript::answered(), holder_addr);
    let gone = "5a1c0d3e-0000-4000-8000-00000000dead".to_string();
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64;
        for (uuid, switch) in [
            (&on_b_named_a.uuid, "fs-a"),
            (&on_b_named_b.uuid, "fs-b"),
            (&gone, "fs-b"),
        ] {
            conn.execute(
                "INSERT INTO live_calls (call_uuid, account_id, direction, from_number, \
                 to_number, caller_name, start_time, hangup_url, status_callback_url, \
                 switch_name) VALUES (?1, ?2, 'inbound', '1000', '7000', '', ?3, ?4, '', ?5)",
                rusqlite::params![uuid, ACCOUNT, now, app.url("/hangup"), switch],
            )
            .unwrap();
        }
    }

    let restarted = Server::start(&app, options).await;
    // Reconciliation ran before the listener was bound: its answers are in.
    let closed = app.hangup_callback(&on_b_named_a.uuid).await;
    assert_eq!(closed.must("HangupSource"), "Unknown");
    assert_eq!(restarted.cdr(&gone).await.source, "Unknown");
    assert_eq!(
        live_row_switch(&restarted, &on_b_named_b.uuid).as_deref(),
        Some("fs-b"),
        "the call still up on its own switch stays live"
    );
    assert_eq!(sim_a.api_commands("show"), 1);
    assert_eq!(sim_b.api_commands("show"), 1);
    held.abort();
}

/// A fleet survivor's close-out of a dead node's calls (and the sweep after it) asks
/// `uuid_exists` of the switch each adopted call's row names, through
/// [`voxbridge::call::switches::Switches`] — the probe `NodeDuties` is given.
#[tokio::test]
async fn adopted_calls_are_asked_uuid_exists_on_their_own_switch() {
    use std::collections::HashSet;
    use std::sync::Arc;
    use voxbridge::call::reconcile::{self, UuidProbe};
    use voxbridge::call::switches::Switches;
    use voxbridge::config::SwitchConfig;

    let (sim_a, inbound_a) = switch("fs-a").await;
    let (sim_b, inbound_b) = switch("fs-b").await;
    let holder = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let holder_addr = holder.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = holder.accept().await {
            conns.push(c);
        }
    });
    let up_on_b = sim_b.place_call(CallScript::answered(), holder_addr);
    let db = crate::store_support::Db::sqlite();
    let store = db.open().await;
    let t0 = time::OffsetDateTime::now_utc();
    let rows = [
        // Up on fs-b, but its row names fs-a: fs-a says no.
        ("named-a", up_on_b.caller_uuid.as_str(), "fs-a"),
        ("named-b", up_on_b.uuid.as_str(), "fs-b"),
    ];
    for (_, uuid, switch) in rows {
        let mut call = crate::store_support::live(uuid, ACCOUNT, t0);
        call.switch_name = switch.into();
        store.call_started(call).await.unwrap();
    }
    let configs =
        [("fs-a", &inbound_a), ("fs-b", &inbound_b)].map(|(name, inbound)| SwitchConfig {
            name: name.into(),
            esl: inbound.local_addr().to_string(),
            password: "ClueCon".into(),
        });
    let switches = Switches::start(configs.iter(), Default::default());
    switches.wait_connected(PATIENCE).await;
    let adopted: HashSet<String> = rows.iter().map(|(_, u, _)| u.to_string()).collect();
    let probe: Arc<dyn UuidProbe> = Arc::new(switches);
    let report = reconcile::reconcile_adopted(
        store.as_ref(),
        Some(probe),
        &adopted,
        time::OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert_eq!(report.still_up, vec![up_on_b.uuid.clone()]);
    assert_eq!(report.closed, vec![up_on_b.caller_uuid.clone()]);
    assert_eq!(sim_a.api_commands("uuid_exists"), 1);
    assert_eq!(sim_b.api_commands("uuid_exists"), 1);
    held.abort();
}
