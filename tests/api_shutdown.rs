//! Graceful shutdown of the real binary (SPEC §8): SIGTERM stops new calls, lets live
//! calls end within `esl.shutdown_grace` (the REST API still answers meanwhile), flushes
//! the callbacks, and exits 0. A call still up when the grace expires is cut off without
//! a record in this run; the next start closes it out (HangupSource `Unknown`).

mod api_support;

use api_support::*;
use std::path::Path;
use std::time::{Duration, Instant};
use voxbridge::cause::HangupCause;
use voxbridge_sim::{CallScript, Outcome, Sim, SimConfig};

fn sim() -> Sim {
    Sim::new(SimConfig {
        speed: 1.0,
        ..SimConfig::default()
    })
}

/// (hangup_source, hangup_cause_name) of a call's CDR, read from the file as another
/// process would, or `None`; and whether a live row is left.
fn db_state(db: &Path, call_uuid: &str) -> (Option<(String, String)>, bool) {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let cdr = conn
        .query_row(
            "SELECT hangup_source, hangup_cause_name FROM cdrs WHERE call_uuid = ?1",
            [call_uuid],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ok();
    let live: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM live_calls WHERE call_uuid = ?1",
            [call_uuid],
            |r| r.get(0),
        )
        .unwrap();
    (cdr, live > 0)
}

fn pending_callbacks(db: &Path) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM outbox WHERE status = 'pending'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_live_call_finish_and_writes_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("voxbridge.db");
    let app = App::start().await;
    let mut vb = Voxbridge::start(dir.path(), &config_text(dir.path(), &app, ""));
    let sim = sim();
    // Two seconds of audio, then the document runs out.
    let doc = app.document(
        "short",
        "<Response><Play>silence_stream://2000</Play></Response>",
    );
    let call = sim.place_call(
        CallScript::ringing()
            .var("voxbridge_answer_url", &doc)
            .var("voxbridge_account", ONE.0),
        vb.esl,
    );
    let uuid = call.uuid.clone();
    wait_live(&vb, ONE, &uuid).await;

    let signalled = Instant::now();
    vb.sigterm();
    // Still draining: the API answers and shows the call.
    tokio::time::sleep(Duration::from_millis(200)).await;
    vb.assert_running();
    let r = get(
        &vb,
        &format!("/api/v1/Account/{}/Call/?status=live", ONE.0),
        Auth::Headers(ONE.0, ONE.1),
    )
    .await;
    assert_eq!(r.json["calls"], serde_json::json!([uuid]), "{}", r.text);
    // No new call is taken any more.
    assert!(
        std::net::TcpStream::connect(vb.esl).is_err(),
        "the ESL listener still accepts after SIGTERM"
    );

    let status = vb.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}\n{}", vb.log_text());
    let report = call.report_within(Duration::from_secs(5)).await.unwrap();
    assert!(matches!(report.outcome, Outcome::Bye { .. }), "{report:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "exit within the grace"
    );

    // The record is written, the live row gone, the callback delivered before exit.
    let (cdr, live) = db_state(&db, &uuid);
    assert_eq!(
        cdr,
        Some((
            "Answer XML".to_string(),
            "End Of XML Instructions".to_string()
        ))
    );
    assert!(!live);
    assert_eq!(app.hangups_of(&uuid).len(), 1);
    assert_eq!(pending_callbacks(&db), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_can_be_hung_up_through_the_api_while_draining() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("voxbridge.db");
    let app = App::start().await;
    let mut vb = Voxbridge::start(dir.path(), &config_text(dir.path(), &app, ""));
    let sim = sim();
    let call = sim.place_call(
        CallScript::ringing()
            .var("voxbridge_answer_url", &app.document("long", LONG_PLAY))
            .var("voxbridge_account", ONE.0),
        vb.esl,
    );
    let uuid = call.uuid.clone();
    wait_live(&vb, ONE, &uuid).await;
    vb.sigterm();
    tokio::time::sleep(Duration::from_millis(200)).await;
    vb.assert_running();
    let r = delete(
        &vb,
        &format!("/api/v1/Account/{}/Call/{uuid}/", ONE.0),
        Auth::Headers(ONE.0, ONE.1),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let status = vb.wait_exit(Duration::from_secs(8)).await;
    assert!(status.success(), "{status}\n{}", vb.log_text());
    let report = call.report_within(Duration::from_secs(5)).await.unwrap();
    assert!(matches!(report.outcome, Outcome::Bye { .. }), "{report:?}");
    let (cdr, live) = db_state(&db, &uuid);
    assert_eq!(cdr, Some(("API".to_string(), "Normal Hangup".to_string())));
    assert!(!live);
    let cb = app.hangups_of(&uuid);
    assert_eq!(cb.len(), 1, "delivered before exit");
    assert_eq!(cb[0].params["HangupSource"], "API");
}

/// Issue 10 point 2: a socket closed on a live channel leaves the call parked until the
/// caller gives up (reference §2.7). A call still up when the grace expires is hung up
/// and closed out with its CDR and callback before the process exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_outliving_the_grace_is_hung_up_and_closed_out() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("voxbridge.db");
    let app = App::start().await;
    let config =
        config_text(dir.path(), &app, "").replace("shutdown_grace = 10", "shutdown_grace = 0.5");
    let mut vb = Voxbridge::start(dir.path(), &config);
    let sim = sim();
    let call = sim.place_call(
        CallScript::ringing()
            .var("voxbridge_answer_url", &app.document("long", LONG_PLAY))
            .var("voxbridge_account", ONE.0),
        vb.esl,
    );
    let uuid = call.uuid.clone();
    wait_live(&vb, ONE, &uuid).await;
    vb.sigterm();
    let status = vb.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "{status}\n{}", vb.log_text());
    assert!(
        vb.log_text().contains("shutdown grace expired"),
        "{}",
        vb.log_text()
    );
    // The switch saw the channel hung up (not left parked), with a 503-class cause.
    let report = call.report_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        report.outcome,
        Outcome::Bye {
            cause: HangupCause::NORMAL_TEMPORARY_FAILURE,
            q850: 41
        },
        "{report:?}"
    );
    let (cdr, live) = db_state(&db, &uuid);
    assert_eq!(
        cdr,
        Some((
            "Error".to_string(),
            "Error: cut off at shutdown".to_string()
        ))
    );
    assert!(!live, "closed out by this run, not left for the next start");
    let cb = app.hangups_of(&uuid);
    assert_eq!(cb.len(), 1, "delivered before exit");
    assert_eq!(cb[0].params["HangupSource"], "Error");
}
