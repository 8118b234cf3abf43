//! The kill test: the real `voxbridge serve` with a backlog of callbacks, SIGKILLed while
//! the receiver is down and again mid-delivery, restarted each time: every callback is
//! delivered (duplicates only with the same DeliveryID) and every CDR survives.

use crate::outbox_support::{DeadPort, Receiver, Reply};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use voxbridge::app::callbacks::{self, CallbackTargets};
use voxbridge::app::outbox::DELIVERY_ID_HEADER;
use voxbridge::cause::HangupCause;
use voxbridge::record::call::{CallRecord, Direction, HangupSource};
use voxbridge::store;

const CALLS: usize = 40;
const TOKEN: &str = "kill-test-token";

/// A running `voxbridge serve`; killed on drop so a failing test leaves nothing behind.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn start(config: &Path, log: &Path) -> Self {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_voxbridge"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .env_remove("VOXBRIDGE_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start voxbridge");
        Self {
            child,
            log: log.to_path_buf(),
        }
    }

    /// SIGKILL: no chance to flush or finish anything.
    fn sigkill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then wait for a clean exit.
    async fn sigterm(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "exit after SIGTERM: {status}\n{}",
                    self.log_text()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no exit after SIGTERM\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("voxbridge exited early: {status}\n{}", self.log_text());
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn record(i: usize) -> CallRecord {
    let start = OffsetDateTime::now_utc() - Duration::from_secs(60);
    CallRecord {
        call_uuid: format!("kill-{i:03}"),
        account_id: "MA1".into(),
        direction: Direction::Inbound,
        from: "+15550001".into(),
        to: "7000".into(),
        caller_name: "Kill Test".into(),
        forwarded_from: None,
        start_time: start,
        answer_time: Some(start + Duration::from_secs(1)),
        end_time: start + Duration::from_secs(60),
        duration_secs: 60,
        bill_duration_secs: 59,
        hangup_cause: HangupCause::NORMAL_CLEARING,
        hangup_cause_code: 16,
        hangup_cause_name: "Caller Hangup".into(),
        hangup_source: HangupSource::Caller,
        hangup_reason: "completed".into(),
        sip_status: Some(200),
        caller_abandoned: false,
        notes: vec![],
    }
}

/// Outbox counts as another process would read them: (total, delivered, attempts).
fn outbox_counts(db: &Path) -> (i64, i64, i64) {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(status = 'delivered'), 0), COALESCE(SUM(attempts), 0) \
         FROM outbox",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

async fn wait_until(
    limit: Duration,
    what: &str,
    server: &mut Server,
    mut cond: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + limit;
    while !cond() {
        server.assert_running();
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delivery_loses_no_callback_and_no_cdr() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vb.db");
    let log = dir.path().join("voxbridge.log");
    let dead = DeadPort::new(); // the receiver is down: nothing listens here yet
    let port = dead.port;

    // The backlog, written through the library before the server ever runs.
    let mut expected: HashSet<String> = HashSet::new();
    {
        let store = store::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let targets = CallbackTargets {
            hangup_url: format!("http://127.0.0.1:{port}/hangup"),
            status_callback_url: format!("http://127.0.0.1:{port}/status"),
            post_call: None,
        };
        for i in 0..CALLS {
            let rec = record(i);
            let cbs = callbacks::for_call(&rec, &targets);
            expected.extend(cbs.iter().map(|c| c.delivery_id.clone()));
            store.finish_call(rec, cbs).await.unwrap();
        }
        store.close().await;
    }
    assert_eq!(expected.len(), 2 * CALLS);

    let config = dir.path().join("voxbridge.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[esl]
listen = "127.0.0.1:0"
[api]
listen = "127.0.0.1:0"
[store]
url = "sqlite://{}"
[outbox]
initial_backoff = 0.05
max_backoff = 0.2
give_up_after = 600
request_timeout = 3
concurrency = 8
[[account]]
auth_id = "MA1"
auth_token = "{TOKEN}"
"#,
            db.display()
        ),
    )
    .unwrap();

    // Run 1: the receiver is down. Attempts fail and are recorded; then SIGKILL.
    let mut server = Server::start(&config, &log);
    wait_until(
        Duration::from_secs(20),
        "failed attempts",
        &mut server,
        || outbox_counts(&db).2 >= 10,
    )
    .await;
    server.sigkill();
    assert_eq!(
        outbox_counts(&db).1,
        0,
        "nothing delivered while the receiver is down"
    );

    // Run 2: the receiver is up but slow; SIGKILL while requests are in flight.
    let rx = Receiver::start_scripted_on(
        dead.listen(),
        vec![],
        Reply::status(200).delayed(Duration::from_millis(300)),
    );
    let mut server = Server::start(&config, &log);
    wait_until(
        Duration::from_secs(20),
        "deliveries in progress",
        &mut server,
        || {
            let delivered = outbox_counts(&db).1;
            delivered >= 4 && rx.hits().len() > rx.completed()
        },
    )
    .await;
    server.sigkill();
    let (total, delivered_at_kill, _) = outbox_counts(&db);
    assert!(
        delivered_at_kill < total,
        "the kill must come mid-delivery ({delivered_at_kill}/{total})"
    );

    // Run 3: the receiver answers at once; everything left is delivered. Then a clean
    // SIGTERM shutdown.
    rx.set_default(Reply::status(200));
    let mut server = Server::start(&config, &log);
    wait_until(
        Duration::from_secs(30),
        "every callback delivered",
        &mut server,
        || {
            let (total, delivered, _) = outbox_counts(&db);
            delivered == total
        },
    )
    .await;
    server.sigterm().await;

    // Every callback arrived; a DeliveryID seen twice carried the same request both times.
    let hits = rx.hits();
    let mut by_id: HashMap<String, Vec<&crate::outbox_support::Hit>> = HashMap::new();
    for h in &hits {
        let header_id = h.header(DELIVERY_ID_HEADER).expect("DeliveryID header");
        let body_id = if h.uri == "/status" {
            let json: serde_json::Value = serde_json::from_slice(&h.body).unwrap();
            json["delivery_id"].as_str().unwrap().to_string()
        } else {
            h.param("DeliveryID").unwrap()
        };
        assert_eq!(header_id, body_id, "header and payload agree");
        h.verify_signature(port, TOKEN).unwrap();
        by_id.entry(header_id).or_default().push(h);
    }
    let received: HashSet<String> = by_id.keys().cloned().collect();
    assert_eq!(
        received, expected,
        "every callback delivered, none invented"
    );
    let mut duplicates = 0;
    for (id, copies) in &by_id {
        for c in copies.iter().skip(1) {
            duplicates += 1;
            assert_eq!(c.body, copies[0].body, "duplicate {id} is the same request");
            assert_eq!(c.uri, copies[0].uri);
        }
    }
    eprintln!(
        "kill test: {} requests for {} callbacks ({duplicates} duplicates after SIGKILL)",
        hits.len(),
        expected.len()
    );

    // The CDRs survived all of it.
    let store = store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let page = store.cdrs("MA1", 100, 0).await.unwrap();
    assert_eq!(page.total as usize, CALLS);
    for cdr in &page.cdrs {
        assert_eq!(cdr.deliveries.len(), 2);
        assert!(cdr
            .deliveries
            .iter()
            .all(|d| d.status == voxbridge::store::DeliveryState::Delivered));
    }
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("voxbridge serving"), "{log_text}");
    assert!(
        log_text.contains("pending again"),
        "run 2/3 released claims: {log_text}"
    );
}
