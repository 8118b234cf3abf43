//! End-to-end harness: the real `voxbridge serve` binary, the in-process FreeSWITCH
//! simulator and a real local HTTP application (answer documents + callback receiver),
//! all on 127.0.0.1.
//!
//! - [`App`] is the one fake application (`tests/common/app.rs`): it serves scripted
//!   answers by path (`/doc/<name>`, `/post/<name>`: a document, an error status, or a
//!   reply that never comes) and records every request it gets, so a test can count
//!   fetches, read callbacks and check their signatures.
//! - [`Server`] starts the binary with a temporary config and SQLite file, learns its
//!   ports from the `voxbridge listening …` line, keeps its log in a file, and kills it
//!   when dropped (a failing test leaves no process behind).
//! - [`Expected`] + [`check_hangup`] assert every field of a hangup callback, including
//!   the signature, recomputed here with HMAC-SHA256 independently of `app::sign`.
#![allow(dead_code)]

use crate::common;

use common::process::{voxbridge_command, ServeProcess};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use voxbridge::cause::HangupCause;
use voxbridge_sim::{CallHandle, CallReport, CallScript, Sim, SimConfig};

/// The one account of every test server: its token signs the call's requests.
pub const ACCOUNT: &str = "MA0000000001";
pub const TOKEN: &str = "e2e-token-4f8a";

#[allow(unused_imports)] // each test file uses part of it
pub use common::app::{Answer, FakeApp as App, Hit, Reply, PATIENCE};

/// A REST request as the account's owner: status and JSON body (`null` when none).
pub async fn rest(
    server: &Server,
    method: reqwest::Method,
    path: &str,
) -> (u16, serde_json::Value) {
    let url = format!("http://{}/api/v1/Account/{ACCOUNT}/{path}", server.api);
    let r = voxbridge::http_client::builder()
        .build()
        .unwrap()
        .request(method, url)
        .header("X-Auth-ID", ACCOUNT)
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

/// A URL whose port refuses connections for the rest of the test process.
pub fn dead_url(path: &str) -> String {
    let port = common::local_http::DeadPort::new().forever();
    format!("http://127.0.0.1:{port}{path}")
}

// ------------------------------------------------------------------------ the server

/// The application and a server on default options: the start of most end-to-end tests.
pub async fn setup() -> (App, Server) {
    setup_with(ServerOptions::default()).await
}

/// The application and a server on `options`.
pub async fn setup_with(options: ServerOptions) -> (App, Server) {
    let app = App::start().await;
    let server = Server::start(&app, options).await;
    (app, server)
}

/// An Answer XML document with `body` inside `<Response>`.
pub fn xml(body: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response>{body}</Response>")
}

/// Settings that vary between tests.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// `app.empty_document_timeout`, seconds (real time).
    pub empty_document_timeout: u64,
    /// Extra TOML appended to the config (e.g. `[[route]]` tables).
    pub extra_toml: String,
    /// Whether `app.status_callback_url` points at the app's `/status`.
    pub status_callback: bool,
    /// `app.fetch_timeout`, seconds.
    pub fetch_timeout: f64,
    /// `outbox.request_timeout`, seconds.
    pub callback_timeout: f64,
    /// Where the SQLite file lives (e.g. a small tmpfs, or a directory kept across a
    /// restart); `None`: the server's own temporary directory.
    pub db_dir: Option<PathBuf>,
    /// `store.url` instead of the SQLite file (a PostgreSQL database shared by several
    /// servers); [`Server::cdr`] and [`Server::outbox`] read SQLite and do not apply.
    pub store_url: Option<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            empty_document_timeout: 60,
            extra_toml: String::new(),
            status_callback: true,
            fetch_timeout: 2.0,
            callback_timeout: 5.0,
            db_dir: None,
            store_url: None,
        }
    }
}

/// The real `voxbridge serve`, killed on drop.
pub struct Server {
    process: ServeProcess,
    pub esl: SocketAddr,
    pub api: SocketAddr,
    pub db: PathBuf,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start(app: &App, options: ServerOptions) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let db = options
            .db_dir
            .as_deref()
            .unwrap_or(dir.path())
            .join("voxbridge.db");
        let log = dir.path().join("voxbridge.log");
        let config = dir.path().join("voxbridge.toml");
        let status = if options.status_callback {
            app.url("/status")
        } else {
            String::new()
        };
        let toml = format!(
            r#"
[esl]
listen = "127.0.0.1:0"
[api]
listen = "127.0.0.1:0"
[store]
url = "{store_url}"
[app]
default_hangup_url = "{hangup}"
status_callback_url = "{status}"
empty_document_timeout = {edt}
connect_timeout = 0.5
fetch_timeout = {fetch_timeout}
fetch_retries = 2
fetch_backoff_ms = [10, 40]
[outbox]
initial_backoff = 0.05
max_backoff = 0.2
request_timeout = {callback_timeout}
[[account]]
auth_id = "{ACCOUNT}"
auth_token = "{TOKEN}"
{extra}
"#,
            store_url = options
                .store_url
                .clone()
                .unwrap_or_else(|| format!("sqlite://{}", db.display())),
            hangup = app.url("/hangup"),
            edt = options.empty_document_timeout,
            fetch_timeout = options.fetch_timeout,
            callback_timeout = options.callback_timeout,
            extra = options.extra_toml,
        );
        std::fs::write(&config, toml).unwrap();
        let mut cmd = voxbridge_command();
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .current_dir(dir.path())
            .env("RUST_LOG", "info");
        let process = tokio::task::spawn_blocking(move || {
            ServeProcess::start(cmd, &log, PATIENCE).unwrap_or_else(|e| panic!("{e}"))
        })
        .await
        .unwrap();
        Server {
            esl: process.esl,
            api: process.api,
            db,
            log: process.log.clone(),
            process,
            _dir: dir,
        }
    }

    /// CPU seconds (user + system) the server process has used so far (Linux; 0 elsewhere).
    pub fn cpu_secs(&self) -> f64 {
        self.process.cpu_secs()
    }

    /// Everything the server logged so far.
    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// The stored CDR of a call, read straight from the SQLite file.
    pub async fn cdr(&self, call_uuid: &str) -> Cdr {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(c) = self.try_cdr(call_uuid) {
                return c;
            }
            assert!(Instant::now() < deadline, "no CDR for {call_uuid}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn try_cdr(&self, call_uuid: &str) -> Option<Cdr> {
        let conn = rusqlite::Connection::open_with_flags(
            &self.db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .ok()?;
        conn.busy_timeout(Duration::from_secs(5)).ok()?;
        conn.query_row(
            "SELECT hangup_cause_name, hangup_source, hangup_reason, bill_duration_secs, \
             answer_time IS NOT NULL, notes, hangup_cause_code FROM cdrs WHERE call_uuid = ?1",
            [call_uuid],
            |r| {
                let notes: String = r.get(5)?;
                Ok(Cdr {
                    cause_name: r.get(0)?,
                    source: r.get(1)?,
                    reason: r.get(2)?,
                    bill_duration: r.get(3)?,
                    answered: r.get(4)?,
                    notes: serde_json::from_str(&notes).unwrap_or_else(|_| vec![notes]),
                    cause_code: r.get(6)?,
                })
            },
        )
        .ok()
    }

    /// The outbox rows of a call: (kind, url, status, attempts), in enqueue order.
    pub fn outbox(&self, call_uuid: &str) -> Vec<(String, String, String, i64)> {
        outbox_rows(&self.db, call_uuid)
    }

    /// Waits until the outbox row of `kind` for the call reaches a final status.
    pub async fn outbox_final(&self, call_uuid: &str, kind: &str) -> (String, String, String, i64) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(row) = self
                .outbox(call_uuid)
                .into_iter()
                .find(|r| r.0 == kind && r.2 != "pending")
            {
                return row;
            }
            assert!(
                Instant::now() < deadline,
                "outbox {kind} of {call_uuid} never settled: {:?}",
                self.outbox(call_uuid)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// CPU seconds of a process from its `/proc/<pid>/stat` (0 when unreadable).
/// The outbox rows of one call in a server's SQLite file: (kind, url, status, attempts).
pub fn outbox_rows(db: &std::path::Path, call_uuid: &str) -> Vec<(String, String, String, i64)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut stmt = conn
        .prepare("SELECT kind, url, status, attempts FROM outbox WHERE call_uuid = ?1 ORDER BY id")
        .unwrap();
    stmt.query_map([call_uuid], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

pub fn proc_cpu_secs(stat_path: &str) -> f64 {
    common::process::proc_cpu_secs(stat_path)
}

/// A CDR row, as stored.
#[derive(Clone, Debug)]
pub struct Cdr {
    pub cause_name: String,
    pub source: String,
    pub reason: String,
    pub bill_duration: i64,
    pub answered: bool,
    pub notes: Vec<String>,
    pub cause_code: i64,
}

// ------------------------------------------------------------------------ calls

/// A simulator at `speed` (simulated durations divided by it).
pub fn sim(speed: f64) -> Sim {
    Sim::new(SimConfig {
        speed,
        ..SimConfig::default()
    })
}

/// A ringing call (extension 7001 of the transcripts) whose document is at `url`.
/// The caller waits 10 simulated minutes for an answer (the default minute is only 3 s
/// of real time at 20×, which a loaded machine can exceed); tests of a caller who gives
/// up say so.
pub fn ringing(url: &str) -> CallScript {
    CallScript::ringing()
        .var("voxbridge_answer_url", url)
        .originate_timeout(Duration::from_secs(600))
}

/// A call the dialplan answered before the socket (extension 7000).
pub fn answered(url: &str) -> CallScript {
    CallScript::answered().var("voxbridge_answer_url", url)
}

/// What the caller saw, once the call is over.
pub async fn report(call: CallHandle) -> CallReport {
    let uuid = call.uuid.clone();
    call.report_within(PATIENCE)
        .await
        .unwrap_or_else(|| panic!("call {uuid} did not end within {PATIENCE:?}"))
}

/// Names of every application voxbridge asked the switch to execute, in order, with its
/// hangup commands among them as `call-command hangup <CAUSE>`.
pub fn requested(r: &CallReport) -> Vec<String> {
    r.requested_where(|_| true)
}

/// Names (and arguments) of the applications that ran, with the hangup command that
/// hung the channel up as `call-command hangup <CAUSE>`.
pub fn ran(r: &CallReport) -> Vec<String> {
    r.requested_as(
        |s| s == voxbridge_sim::AppStatus::Completed,
        |a| {
            if a.arg.is_empty() {
                a.name.clone()
            } else {
                format!("{} {}", a.name, a.arg)
            }
        },
    )
}

/// Raw commands voxbridge sent that contain `needle`.
pub fn commands_with<'a>(r: &'a CallReport, needle: &str) -> Vec<&'a str> {
    r.commands
        .iter()
        .map(String::as_str)
        .filter(|c| c.contains(needle))
        .collect()
}

// ------------------------------------------------------------------------ checks

/// The expected hangup callback of one call.
#[derive(Clone, Debug)]
pub struct Expected {
    pub cause: HangupCause,
    pub name: &'static str,
    pub source: &'static str,
    pub reason: &'static str,
    /// `completed` or `cancel`.
    pub status: &'static str,
    pub answered: bool,
}

impl Expected {
    pub fn new(cause: HangupCause, name: &'static str, source: &'static str) -> Self {
        Self {
            cause,
            name,
            source,
            reason: "completed",
            status: "completed",
            answered: false,
        }
    }

    pub fn reason(mut self, reason: &'static str) -> Self {
        self.reason = reason;
        self
    }

    pub fn answered(mut self) -> Self {
        self.answered = true;
        self
    }

    pub fn cancelled(mut self) -> Self {
        self.status = "cancel";
        self
    }
}

/// Waits for the call's hangup callback, checks it ([`check_hangup`]) and returns it.
pub async fn hangup_checked(app: &App, report: &CallReport, want: &Expected) -> Hit {
    let hit = app.hangup_callback(&report.uuid).await;
    check_hangup(app, &hit, report, want);
    hit
}

/// Checks the hangup callback against what is expected and against what the caller saw:
/// every SPEC §5.2 field, the delivery id (body and header), and the signature.
/// `name` ending in `*` is a prefix match (errors carry their message).
pub fn check_hangup(app: &App, hit: &Hit, report: &CallReport, want: &Expected) {
    let p = |k: &str| hit.must(k);
    let ctx = format!("callback {:?}", hit.params());
    assert_eq!(hit.method, "POST", "{ctx}");
    assert_eq!(
        hit.header("content-type").as_deref(),
        Some("application/x-www-form-urlencoded"),
        "{ctx}"
    );
    assert_eq!(p("Event"), "Hangup", "{ctx}");
    assert_eq!(p("CallUUID"), report.uuid, "{ctx}");
    assert_eq!(p("HangupCause"), want.cause.name(), "{ctx}");
    assert_eq!(p("HangupCauseCode"), want.cause.q850().to_string(), "{ctx}");
    match want.name.strip_suffix('*') {
        Some(prefix) => assert!(p("HangupCauseName").starts_with(prefix), "{ctx}"),
        None => assert_eq!(p("HangupCauseName"), want.name, "{ctx}"),
    }
    assert_eq!(p("HangupSource"), want.source, "{ctx}");
    assert_eq!(p("HangupReason"), want.reason, "{ctx}");
    assert_eq!(p("CallStatus"), want.status, "{ctx}");
    assert_eq!(p("Direction"), "inbound", "{ctx}");
    assert_eq!(
        report.answered(),
        want.answered,
        "caller's view: {report:?}"
    );
    // BillDuration is the switch's billsec: 0 when never answered.
    assert_eq!(p("BillDuration"), report.billsec.to_string(), "{ctx}");
    assert_eq!(p("Duration"), report.duration_secs.to_string(), "{ctx}");
    if !want.answered {
        assert_eq!(p("BillDuration"), "0", "{ctx}");
        assert_eq!(p("AnswerTime"), "", "{ctx}");
    } else {
        assert!(!p("AnswerTime").is_empty(), "{ctx}");
    }
    if let Some(sip) = report.sip_code() {
        assert_eq!(
            p("SIPStatus"),
            sip.to_string(),
            "SIPStatus vs the caller's view; {ctx}"
        );
    }
    let delivery = p("DeliveryID");
    assert!(!delivery.is_empty(), "{ctx}");
    assert_eq!(
        hit.header("x-voxbridge-delivery-id").as_deref(),
        Some(delivery.as_str()),
        "{ctx}"
    );
    hit.verify_signature(app.port, TOKEN)
        .unwrap_or_else(|e| panic!("{e}; {ctx}"));
}

/// The caller was refused before answer with this SIP code and cause.
pub fn assert_refused(r: &CallReport, sip: u16, cause: HangupCause) {
    assert_eq!(
        r.outcome,
        voxbridge_sim::Outcome::Refused { sip, cause },
        "caller's view: {r:#?}"
    );
    assert!(!r.answered(), "never answered: {r:#?}");
    assert!(r.early_media_at.is_none(), "never pre-answered: {r:#?}");
    assert_eq!(r.billsec, 0);
}

/// The answered caller got a BYE with this cause.
pub fn assert_bye(r: &CallReport, cause: HangupCause) {
    assert_eq!(r.bye_cause(), Some(cause), "caller's view: {r:#?}");
    assert!(r.answered());
    assert_eq!(r.sip_code(), Some(200));
}
