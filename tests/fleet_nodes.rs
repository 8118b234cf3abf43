//! Two real `voxbridge serve` processes on one PostgreSQL (SPEC §14, issue 15), with the
//! simulator as the switch and a real local app:
//! - calls spread over both nodes; either node lists all of the account's live calls;
//!   a DELETE through node B of a call node A holds is 204, the caller gets its BYE
//!   within 1 s, and the CDR (read through B) says `API`;
//! - SIGKILL node A with calls live and callbacks pending: within `node.lease` and a few
//!   seconds node B closes A's calls out (after `uuid_exists` on the switch) and every
//!   callback is delivered — each DeliveryID once, none missing, counted.
//!
//! Skipped, loudly, without PostgreSQL binaries (tests/pg_support).

use crate::e2e_support::{rest, sim, xml, Answer, App, Server, ServerOptions, PATIENCE};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use voxbridge::cause::HangupCause;
use voxbridge_sim::{CallHandle, CallScript, Outcome};

/// `node.lease` of both nodes, seconds: short, so a take-over is quick to see.
const LEASE_SECS: u64 = 2;

async fn node(app: &App, store_url: &str, id: &str, switch_esl: Option<&str>) -> Server {
    let switch = switch_esl
        .map(|esl| format!("[switch]\nesl = \"{esl}\"\npassword = \"ClueCon\"\n"))
        .unwrap_or_default();
    Server::start(
        app,
        ServerOptions {
            store_url: Some(store_url.to_string()),
            extra_toml: format!("[node]\nid = \"{id}\"\nlease = {LEASE_SECS}\n{switch}"),
            ..ServerOptions::default()
        },
    )
    .await
}

async fn live_list(server: &Server) -> HashSet<String> {
    let (status, body) = rest(server, reqwest::Method::GET, "Call/?status=live").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body["calls"].clone()).unwrap()
}

/// Waits until `server`'s live list is exactly `want`.
async fn wait_live(server: &Server, want: &HashSet<String>) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = live_list(server).await;
        if &got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "live list {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The CDR of a call, through the REST API of `server`, once written.
async fn cdr(server: &Server, uuid: &str) -> serde_json::Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = rest(server, reqwest::Method::GET, &format!("Call/{uuid}/")).await;
        if status == 200 {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "no CDR for {uuid}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `call_uuid → (node_id, switch_name)` of every live row, read from the database.
async fn live_rows(db: &str) -> HashMap<String, (String, String)> {
    let (client, conn) = tokio_postgres::connect(db, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .query(
            "SELECT call_uuid, node_id, switch_name FROM live_calls",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
}

/// An answered call parked by an empty document (SPEC §4 rule 7): live until someone
/// ends it.
fn parked(app: &App) -> CallScript {
    crate::e2e_support::answered(&app.xml("/doc/park", &xml("")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_held_by_node_a_is_listed_and_hung_up_through_node_b() {
    let Some(db) = crate::pg_support::fresh_database().await else {
        eprintln!("SKIPPED: no PostgreSQL");
        return;
    };
    let app = App::start().await;
    let a = node(&app, &db, "node-a", None).await;
    let b = node(&app, &db, "node-b", None).await;
    let sim = sim(1.0);
    let on_a: Vec<CallHandle> = (0..2)
        .map(|_| sim.place_call(parked(&app), a.esl))
        .collect();
    let on_b: Vec<CallHandle> = (0..2)
        .map(|_| sim.place_call(parked(&app), b.esl))
        .collect();
    let all: HashSet<String> = on_a.iter().chain(&on_b).map(|c| c.uuid.clone()).collect();
    // Either node lists every live call of the account.
    wait_live(&a, &all).await;
    // The calls exist by now: their channels were created before this instant.
    let seen = Instant::now();
    wait_live(&b, &all).await;
    // Each live row names its node and the switch from the connect reply.
    let rows = live_rows(&db).await;
    for (calls, node) in [(&on_a, "node-a"), (&on_b, "node-b")] {
        for call in calls {
            assert_eq!(
                rows.get(&call.uuid),
                Some(&(node.to_string(), "fs-test".to_string())),
                "{rows:?}"
            );
        }
    }

    // Live details of A's call, through B: the owner's answer.
    let target = &on_a[0];
    let (status, live) = rest(
        &b,
        reqwest::Method::GET,
        &format!("Call/{}/?status=live", target.uuid),
    )
    .await;
    assert_eq!(status, 200, "{live}");
    assert_eq!(live["call_uuid"], target.uuid.as_str());

    // DELETE through B of a call A holds: 204, BYE within 1 s.
    let requested = Instant::now();
    let (status, body) = rest(
        &b,
        reqwest::Method::DELETE,
        &format!("Call/{}/", target.uuid),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let target = on_a.into_iter().next().unwrap();
    let uuid = target.uuid.clone();
    let report = target.report_within(PATIENCE).await.unwrap();
    let reported = Instant::now();
    assert_eq!(
        report.outcome,
        Outcome::Bye {
            cause: HangupCause::NORMAL_CLEARING,
            q850: 16
        },
        "{report:?}"
    );
    // Two upper bounds on when the BYE went out: the channel's own hangup time counted
    // from before `seen`, and the moment its report (sent after the BYE) arrived.
    let bye_no_later_than = (seen + report.hangup_at.expect("hangup time")).min(reported);
    assert!(
        bye_no_later_than < requested + Duration::from_secs(1),
        "BYE {:?} after the request",
        bye_no_later_than.saturating_duration_since(requested)
    );
    // The CDR, read through B: source API, NORMAL_CLEARING (16).
    let record = cdr(&b, &uuid).await;
    assert_eq!(record["hangup_source"], "API", "{record}");
    assert_eq!(record["hangup_cause"], "NORMAL_CLEARING", "{record}");
    assert_eq!(record["hangup_cause_code"], 16, "{record}");
    app.hangup_callback(&uuid).await;
    // A second DELETE through B: the call is over, 404 (B asks no one).
    let (status, _) = rest(&b, reqwest::Method::DELETE, &format!("Call/{uuid}/")).await;
    assert_eq!(status, 404);
    let mut left = all.clone();
    left.remove(&uuid);
    wait_live(&a, &left).await;
    wait_live(&b, &left).await;
    // B's calls through A the same way.
    let (status, body) = rest(
        &a,
        reqwest::Method::DELETE,
        &format!("Call/{}/", on_b[1].uuid),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(cdr(&a, &on_b[1].uuid).await["hangup_source"], "API");
    assert!(a
        .log_text()
        .contains("REST request passed to the node holding the call"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_calls_and_pending_callbacks_are_taken_over_by_the_survivor() {
    let Some(db) = crate::pg_support::fresh_database().await else {
        eprintln!("SKIPPED: no PostgreSQL");
        return;
    };
    let app = App::start().await;
    // The app refuses callbacks at first: they stay pending, retried by the fleet.
    app.answer("/hangup", Answer::Status(503));
    app.answer("/status", Answer::Status(503));
    let sim = sim(1.0);
    let inbound = sim
        .listen_inbound("127.0.0.1:0".parse().unwrap(), "ClueCon")
        .await
        .unwrap();
    let esl = inbound.local_addr().to_string();
    let a = node(&app, &db, "node-a", Some(&esl)).await;
    let b = node(&app, &db, "node-b", Some(&esl)).await;

    // On A: three calls live, two finished with their callbacks pending.
    let live_on_a: Vec<CallHandle> = (0..3)
        .map(|_| sim.place_call(parked(&app), a.esl))
        .collect();
    let bye = app.xml("/doc/bye", &xml("<Hangup/>"));
    let mut finished = Vec::new();
    for _ in 0..2 {
        let r = sim
            .place_call(crate::e2e_support::ringing(&bye), a.esl)
            .report_within(PATIENCE)
            .await
            .unwrap();
        finished.push(r.uuid);
    }
    let live: HashSet<String> = live_on_a.iter().map(|c| c.uuid.clone()).collect();
    wait_live(&b, &live).await;
    // Each finished call's callbacks have been tried (and refused) at least once.
    for uuid in &finished {
        app.hangup_callback(uuid).await;
    }

    // SIGKILL node A. Its callers give up on their own (the switch keeps a channel whose
    // socket died parked until then), so uuid_exists says they are gone.
    drop(a);
    let killed = Instant::now();
    for call in &live_on_a {
        call.hang_up();
    }
    app.answer("/hangup", Answer::Status(200));
    app.answer("/status", Answer::Status(200));
    let opened = Instant::now();

    // Every call of A gets its hangup and status callback, delivered once per DeliveryID.
    let everyone: Vec<String> = live.iter().cloned().chain(finished.clone()).collect();
    let delivered = app
        .wait_for(
            PATIENCE,
            "every callback delivered after the kill",
            |hits| {
                let after: Vec<_> = hits.iter().filter(|h| h.at >= opened).collect();
                let done = everyone.iter().all(|uuid| {
                    ["/hangup", "/status"].iter().all(|path| {
                        after
                            .iter()
                            .any(|h| h.path == *path && callback_call(h).as_deref() == Some(uuid))
                    })
                });
                done.then_some(Instant::now())
            },
        )
        .await;
    let took = delivered - killed;
    assert!(
        took < Duration::from_secs(LEASE_SECS + 8),
        "take-over and delivery took {took:?} (lease {LEASE_SECS} s)"
    );
    // Let any duplicate show up before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hits = app.hits();
    let mut ok_per_id: HashMap<String, usize> = HashMap::new();
    let mut ids_per_call: HashMap<(String, String), HashSet<String>> = HashMap::new();
    for h in hits
        .iter()
        .filter(|h| h.path == "/hangup" || h.path == "/status")
    {
        let id = h
            .header("x-voxbridge-delivery-id")
            .expect("every callback carries its DeliveryID");
        let call = callback_call(h).expect("callback names its call");
        ids_per_call
            .entry((call, h.path.clone()))
            .or_default()
            .insert(id.clone());
        if h.at >= opened {
            *ok_per_id.entry(id).or_default() += 1;
        }
    }
    assert_eq!(ok_per_id.len(), everyone.len() * 2, "{ok_per_id:?}");
    assert!(
        ok_per_id.values().all(|n| *n == 1),
        "a callback delivered twice: {ok_per_id:?}"
    );
    for ((call, path), ids) in &ids_per_call {
        assert_eq!(
            ids.len(),
            1,
            "{call} {path}: one DeliveryID across retries and nodes: {ids:?}"
        );
    }
    // B closed A's live calls out: Unknown, as after a restart.
    for uuid in &live {
        let record = cdr(&b, uuid).await;
        assert_eq!(record["hangup_source"], "Unknown", "{record}");
    }
    assert!(live_list(&b).await.is_empty());
    let log = b.log_text();
    assert!(log.contains("NODE DEAD"), "{log}");
}

/// The call a callback is about: `CallUUID` (form) or `call_uuid` (JSON).
fn callback_call(h: &crate::e2e_support::Hit) -> Option<String> {
    h.param("CallUUID").or_else(|| {
        serde_json::from_slice::<serde_json::Value>(&h.body)
            .ok()?
            .get("call_uuid")?
            .as_str()
            .map(String::from)
    })
}
