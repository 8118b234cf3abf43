//! What the REST and operations tests share: the real `voxbridge serve` binary on a
//! temporary config and SQLite file, a local application (documents + callback
//! receiver), and HTTP helpers — a Rust client, and raw HTTP over a TcpStream the way
//! `curl` would send it.
#![allow(dead_code)]

use crate::common;

use common::app::{FakeApp, Reply as AppReply};
use common::process::{voxbridge_command, ServeProcess};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

pub const ONE: (&str, &str) = ("MA_ONE", "token-one");
pub const TWO: (&str, &str) = ("MA_TWO", "token-two");

/// A document the sim plays until something stops it: a call parked mid-playback.
pub const LONG_PLAY: &str = "<Response><Play>silence_stream://-1</Play></Response>";

// ---------------------------------------------------------------------------------------
// The application: serves documents, records callbacks.

/// One callback as received.
#[derive(Clone, Debug)]
pub struct Callback {
    pub path: String,
    pub params: HashMap<String, String>,
}

/// The customer's web application, on 127.0.0.1: the one fake app
/// (`tests/common/app.rs`) with this harness's conventions — documents at `/doc/<name>`,
/// callbacks posted to `/cb/<kind>`.
pub struct App(FakeApp);

impl std::ops::Deref for App {
    type Target = FakeApp;
    fn deref(&self) -> &FakeApp {
        &self.0
    }
}

impl App {
    pub async fn start() -> Self {
        Self(FakeApp::start().await)
    }

    /// Serves `xml` at `/doc/<name>`.
    pub fn document(&self, name: &str, xml: &str) -> String {
        self.0
            .answer(&format!("/doc/{name}"), AppReply::doc("text/xml", xml));
        self.url(&format!("/doc/{name}"))
    }

    /// Every callback posted to `/cb/…`, in arrival order.
    pub fn callbacks(&self) -> Vec<Callback> {
        self.hits()
            .into_iter()
            .filter(|h| h.method == "POST" && h.path.starts_with("/cb/"))
            .map(|h| Callback {
                params: h.params().into_iter().collect(),
                path: h.path,
            })
            .collect()
    }

    /// The hangup callbacks of one call.
    pub fn hangups_of(&self, call_uuid: &str) -> Vec<Callback> {
        self.callbacks()
            .into_iter()
            .filter(|c| c.path == "/cb/hangup")
            .filter(|c| c.params.get("CallUUID").map(String::as_str) == Some(call_uuid))
            .collect()
    }

    /// Waits for the hangup callback of `call_uuid`.
    pub async fn hangup_of(&self, call_uuid: &str, within: Duration) -> Callback {
        let hit = self
            .wait_for(
                within,
                &format!("the hangup callback of {call_uuid}"),
                |hits| {
                    hits.iter()
                        .find(|h| {
                            h.path == "/cb/hangup"
                                && h.param("CallUUID").as_deref() == Some(call_uuid)
                        })
                        .cloned()
                },
            )
            .await;
        Callback {
            params: hit.params().into_iter().collect(),
            path: hit.path,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The real binary.

/// The standard test configuration: ports 0, a SQLite file in `dir`, two accounts,
/// fast callback retries. `extra` is appended (more sections).
pub fn config_text(dir: &Path, app: &App, extra: &str) -> String {
    format!(
        r#"
[esl]
listen = "127.0.0.1:0"
shutdown_grace = 10
[api]
listen = "127.0.0.1:0"
[store]
url = "sqlite://{db}"
[app]
default_answer_url = "{answer}"
default_hangup_url = "{hangup}"
[outbox]
initial_backoff = 0.05
max_backoff = 0.2
[[account]]
auth_id = "{one}"
auth_token = "{one_token}"
[[account]]
auth_id = "{two}"
auth_token = "{two_token}"
{extra}
"#,
        db = dir.join("voxbridge.db").display(),
        answer = app.url("/doc/default"),
        hangup = app.url("/cb/hangup"),
        one = ONE.0,
        one_token = ONE.1,
        two = TWO.0,
        two_token = TWO.1,
    )
}

/// A running `voxbridge serve`; killed on drop so a failing test leaves nothing behind.
pub struct Voxbridge {
    process: ServeProcess,
    pub esl: SocketAddr,
    pub api: SocketAddr,
    pub log: PathBuf,
}

impl Voxbridge {
    /// Writes `config` to `dir/voxbridge.toml` and starts the binary on it, in `dir`.
    pub fn start(dir: &Path, config: &str) -> Self {
        let path = dir.join("voxbridge.toml");
        std::fs::write(&path, config).unwrap();
        Self::start_with(dir, &["serve", "--config", path.to_str().unwrap()], &[])
    }

    /// Starts the binary with these arguments and extra environment, in `dir`, and
    /// waits for its `voxbridge listening esl=… api=…` line.
    pub fn start_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = dir.join(format!(
            "voxbridge-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut cmd = voxbridge_command();
        cmd.args(args).current_dir(dir).env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let process = ServeProcess::start(cmd, &log, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{e}"));
        Self {
            esl: process.esl,
            api: process.api,
            log: process.log.clone(),
            process,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api)
    }

    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (polling, without blocking the runtime) for the process to exit.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.process.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "voxbridge did not exit within {within:?}\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// After a SIGTERM: waits until the ESL listener says it stopped accepting and waits
    /// for the live calls (its log line), failing if the process exits meanwhile. The
    /// server's own word, not a sleep: a slow machine only makes this wait longer.
    pub async fn wait_draining(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self
            .log_text()
            .contains("ESL listener stopped accepting; waiting for live calls")
        {
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "no sign of draining 30 s after SIGTERM:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.assert_running();
    }

    pub fn assert_running(&mut self) {
        if let Some(status) = self.process.try_wait() {
            panic!("voxbridge exited early: {status}\n{}", self.log_text());
        }
    }
}

// ---------------------------------------------------------------------------------------
// HTTP.

/// How a request authenticates.
#[derive(Clone, Copy, Debug)]
pub enum Auth<'a> {
    None,
    Headers(&'a str, &'a str),
    Basic(&'a str, &'a str),
}

/// A response, body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub text: String,
    pub json: Value,
}

pub fn client() -> reqwest::Client {
    voxbridge::http_client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub async fn request(vb: &Voxbridge, method: &str, path: &str, auth: Auth<'_>) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client().request(method, vb.url(path));
    req = match auth {
        Auth::None => req,
        Auth::Headers(id, token) => req.header("X-Auth-ID", id).header("X-Auth-Token", token),
        Auth::Basic(id, token) => req.basic_auth(id, Some(token)),
    };
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        content_type,
        text,
        json,
    }
}

pub async fn get(vb: &Voxbridge, path: &str, auth: Auth<'_>) -> Reply {
    request(vb, "GET", path, auth).await
}

pub async fn delete(vb: &Voxbridge, path: &str, auth: Auth<'_>) -> Reply {
    request(vb, "DELETE", path, auth).await
}

/// A raw HTTP/1.1 exchange over a TcpStream, as `curl` would do it: the request text is
/// sent as is (`Connection: close` lets the reply end at EOF). Returns (status, headers
/// lower-cased, body).
pub fn raw_http(addr: SocketAddr, request: &str) -> (u16, HashMap<String, String>, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// The keys of a JSON object.
pub fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

pub fn key_set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// SPEC §6 live details.
pub const LIVE_KEYS: &[&str] = &[
    "api_id",
    "call_uuid",
    "direction",
    "from",
    "to",
    "caller_name",
    "call_status",
    "session_start",
    "answer_time",
    "scheduled_hangup_at",
];

/// SPEC §6 CDR (a list object has the same keys without `api_id`).
pub const CDR_KEYS: &[&str] = &[
    "call_uuid",
    "direction",
    "from_number",
    "to_number",
    "initiation_time",
    "answer_time",
    "end_time",
    "call_duration",
    "bill_duration",
    "hangup_cause",
    "hangup_cause_code",
    "hangup_cause_name",
    "hangup_source",
    "hangup_reason",
    "callback_deliveries",
];

/// `YYYY-MM-DD HH:MM:SS`, the time format of the API and the hangup callback.
pub fn is_cdr_time(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    let b = s.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

/// Polls `cond` every 20 ms until it holds.
pub async fn wait_for<F, Fut>(within: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `call_uuid` shows on the account's live list.
pub async fn wait_live(vb: &Voxbridge, account: (&str, &str), call_uuid: &str) {
    let path = format!("/api/v1/Account/{}/Call/?status=live", account.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(vb, &path, Auth::Headers(account.0, account.1)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let live = r.json["calls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str() == Some(call_uuid));
        if live {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "call {call_uuid} never showed as live\n{}",
            vb.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the account has a CDR for `call_uuid`, and returns it.
pub async fn wait_cdr(vb: &Voxbridge, account: (&str, &str), call_uuid: &str) -> Value {
    let path = format!("/api/v1/Account/{}/Call/{call_uuid}/", account.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(vb, &path, Auth::Headers(account.0, account.1)).await;
        if r.status == 200 {
            return r.json;
        }
        assert_eq!(r.status, 404, "{}", r.text);
        assert!(
            Instant::now() < deadline,
            "no CDR for {call_uuid}\n{}",
            vb.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// GETs `path` until `done` holds for the JSON reply, and returns it.
pub async fn poll_json(
    vb: &Voxbridge,
    path: &str,
    auth: Auth<'_>,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(vb, path, auth).await;
        if done(&r.json) {
            return r.json;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: last reply {} {}",
            r.status,
            r.text
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
