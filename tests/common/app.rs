//! The one fake customer application every harness uses (issue 11 point 8): a real axum
//! server on 127.0.0.1 that records every request it gets and answers from a script.
//!
//! What it answers, first match wins:
//! 1. the path's own script (`reply`/`script`: a queue whose last reply stays);
//! 2. the responder, when the harness gave one (the live suite routes by caller tag);
//! 3. the shared queue (`start_scripted`), then the default reply;
//! 4. unscripted: 404 for `/doc/…` (so a test with a wrong document path fails loudly),
//!    200 with an empty body for anything else (callbacks are simply acknowledged).
//!
//! Each harness keeps its own vocabulary on top (`e2e_support`'s `xml`/`voxml`,
//! `api_support`'s `document`/`callbacks`, the outbox tests' `Receiver`, the live suite's
//! tags), but there is one server, one request record ([`Hit`]) and one way to wait.
#![allow(dead_code)]

use super::local_http::LocalServer;
use super::request;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a wait without its own limit may take before the test fails. Generous: the
/// machine is shared; nothing waits this long when things work.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    /// Held back this long before answering (a slow application).
    pub delay: Duration,
    pub body: String,
    pub content_type: Option<String>,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            delay: Duration::ZERO,
            body: String::new(),
            content_type: None,
        }
    }

    /// 200 with this body and content type.
    pub fn doc(content_type: &str, body: &str) -> Self {
        Self::status(200).with_body(content_type, body)
    }

    /// A reply that never comes (the request stays open until the client gives up).
    pub fn hang() -> Self {
        Self::status(200).delayed(Duration::from_secs(3600))
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn with_body(mut self, content_type: &str, body: &str) -> Self {
        self.content_type = Some(content_type.into());
        self.body = body.into();
        self
    }
}

/// The end-to-end tests' shorthand for a reply.
#[derive(Clone, Debug)]
pub enum Answer {
    /// 200 with this body and content type.
    Doc {
        content_type: &'static str,
        body: String,
    },
    /// This status, empty body.
    Status(u16),
    /// Never answers.
    Hang,
}

impl From<Answer> for Reply {
    fn from(a: Answer) -> Reply {
        match a {
            Answer::Doc { content_type, body } => Reply::doc(content_type, &body),
            Answer::Status(s) => Reply::status(s),
            Answer::Hang => Reply::hang(),
        }
    }
}

/// One request as the application received it.
#[derive(Clone, Debug)]
pub struct Hit {
    pub method: String,
    pub path: String,
    /// The raw query string ("" when none).
    pub query: String,
    /// Path and query, as sent.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status it was (or is being) answered with.
    pub replied: u16,
    pub at: Instant,
    /// Wall-clock arrival (to line up with the server's log).
    pub wall: std::time::SystemTime,
}

impl Hit {
    pub fn header(&self, name: &str) -> Option<String> {
        request::header(&self.headers, name)
    }

    /// Form fields: the query for GET, the body for anything else.
    pub fn params(&self) -> Vec<(String, String)> {
        request::fields(&self.method, &self.query, &self.body)
    }

    pub fn param(&self, key: &str) -> Option<String> {
        request::field(self.params(), key)
    }

    /// The query's fields, whatever the method (a Redirect's `?step=N`).
    pub fn query_param(&self, key: &str) -> Option<String> {
        request::field(request::fields("GET", &self.query, b""), key)
    }

    /// `param`, failing the test with the whole request when it is missing.
    pub fn must(&self, key: &str) -> String {
        self.param(key).unwrap_or_else(|| {
            panic!(
                "{key} missing from {} {}: {:?}",
                self.method,
                self.path,
                self.params()
            )
        })
    }

    /// The call this request is about: `CallUUID` of a form, `call_uuid` of a JSON body.
    pub fn call_uuid(&self) -> Option<String> {
        self.param("CallUUID").or_else(|| {
            serde_json::from_slice::<serde_json::Value>(&self.body)
                .ok()?
                .get("call_uuid")?
                .as_str()
                .map(str::to_string)
        })
    }

    /// Recomputes `X-Voxbridge-Signature` (SPEC §7) with our own HMAC-SHA256 over
    /// `t + "." + METHOD + full URL + "." + body` — independently of `app::sign` — and
    /// compares.
    pub fn verify_signature(&self, port: u16, token: &str) -> Result<(), String> {
        let header = self
            .header("x-voxbridge-signature")
            .ok_or("no X-Voxbridge-Signature header")?;
        let mut t = None;
        let mut v1 = None;
        for part in header.split(',') {
            match part.trim().split_once('=') {
                Some(("t", v)) => t = Some(v.to_string()),
                Some(("v1", v)) => v1 = Some(v.to_string()),
                _ => {}
            }
        }
        let (t, v1) = t.zip(v1).ok_or(format!("malformed signature {header:?}"))?;
        let t_num: i64 = t.parse().map_err(|_| format!("bad t in {header:?}"))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        if (now - t_num).abs() > 300 {
            return Err(format!("signature time {t_num} is {} s off", now - t_num));
        }
        let url = format!("http://127.0.0.1:{port}{}", self.uri);
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes()).unwrap();
        mac.update(t.as_bytes());
        mac.update(b".");
        mac.update(self.method.as_bytes());
        mac.update(url.as_bytes());
        mac.update(b".");
        mac.update(&self.body);
        let expected = hex::encode(mac.finalize().into_bytes());
        if expected == v1 {
            Ok(())
        } else {
            Err(format!("signature mismatch for {} {url}", self.method))
        }
    }
}

/// A harness's own routing: the reply for a request, or `None` to fall through.
pub type Responder = Box<dyn Fn(&Hit) -> Option<Reply> + Send + Sync>;

struct Inner {
    by_path: Mutex<HashMap<String, VecDeque<Reply>>>,
    responder: Option<Responder>,
    queue: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
    hits: Mutex<Vec<Hit>>,
    completed: AtomicUsize,
}

/// A running fake application; its server stops when it is dropped.
pub struct FakeApp {
    pub port: u16,
    inner: Arc<Inner>,
    server: LocalServer,
}

impl FakeApp {
    /// On any free port, answering only what is scripted per path.
    pub async fn start() -> FakeApp {
        Self::serve(bind(0).await, None, Vec::new(), None)
    }

    /// With the harness's own routing consulted after the per-path scripts.
    pub async fn start_with(responder: Responder) -> FakeApp {
        Self::serve(bind(0).await, Some(responder), Vec::new(), None)
    }

    /// On `port` (0: any): `script` answers the first requests, whatever their path,
    /// then `default` answers every one after.
    pub async fn start_scripted(port: u16, script: Vec<Reply>, default: Reply) -> FakeApp {
        Self::serve(bind(port).await, None, script, Some(default))
    }

    /// As [`FakeApp::start_scripted`], on a listener the test holds (a `DeadPort` that
    /// comes up).
    pub fn start_scripted_on(
        listener: tokio::net::TcpListener,
        script: Vec<Reply>,
        default: Reply,
    ) -> FakeApp {
        Self::serve(listener, None, script, Some(default))
    }

    fn serve(
        listener: tokio::net::TcpListener,
        responder: Option<Responder>,
        script: Vec<Reply>,
        default: Option<Reply>,
    ) -> FakeApp {
        let inner = Arc::new(Inner {
            by_path: Mutex::new(HashMap::new()),
            responder,
            queue: Mutex::new(script.into()),
            default: Mutex::new(default),
            hits: Mutex::new(Vec::new()),
            completed: AtomicUsize::new(0),
        });
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let server = LocalServer::serve(listener, router);
        FakeApp {
            port: server.port,
            inner,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// Answers every request on `path` with `reply`.
    pub fn answer(&self, path: &str, reply: impl Into<Reply>) {
        self.script(path, vec![reply.into()]);
    }

    /// Answers the requests on `path` with `replies` in turn; the last one stays.
    pub fn script(&self, path: &str, replies: Vec<Reply>) {
        self.inner
            .by_path
            .lock()
            .unwrap()
            .insert(path.to_string(), replies.into());
    }

    /// Serves an Answer XML document on `path`; returns its URL.
    pub fn xml(&self, path: &str, body: &str) -> String {
        self.answer(path, Reply::doc("application/xml", body));
        self.url(path)
    }

    /// Serves a VoxML document on `path`; returns its URL.
    pub fn voxml(&self, path: &str, body: &str) -> String {
        self.answer(path, Reply::doc("application/json", body));
        self.url(path)
    }

    /// Answers `path` with `status` and an empty body; returns its URL.
    pub fn status(&self, path: &str, status: u16) -> String {
        self.answer(path, Reply::status(status));
        self.url(path)
    }

    /// The reply once the shared script is used up.
    pub fn set_default(&self, reply: Reply) {
        *self.inner.default.lock().unwrap() = Some(reply);
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.inner.hits.lock().unwrap().clone()
    }

    pub fn hits_on(&self, path: &str) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.path == path).collect()
    }

    /// Requests on `path` about one call.
    pub fn callbacks_for(&self, path: &str, call_uuid: &str) -> Vec<Hit> {
        self.hits_on(path)
            .into_iter()
            .filter(|h| h.call_uuid().as_deref() == Some(call_uuid))
            .collect()
    }

    /// Requests whose (possibly delayed) reply has been sent.
    pub fn completed(&self) -> usize {
        self.inner.completed.load(Ordering::SeqCst)
    }

    /// Waits until `pick(hits)` returns something, failing the test after `limit` with
    /// everything the application saw.
    pub async fn wait_for<T>(
        &self,
        limit: Duration,
        what: &str,
        pick: impl Fn(&[Hit]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            {
                let hits = self.inner.hits.lock().unwrap();
                if let Some(v) = pick(&hits) {
                    return v;
                }
            }
            if Instant::now() >= deadline {
                let seen: Vec<String> = self
                    .hits()
                    .iter()
                    .map(|h| {
                        format!(
                            "{} {} {:?} -> {}",
                            h.method,
                            h.uri,
                            h.call_uuid(),
                            h.replied
                        )
                    })
                    .collect();
                panic!("timed out waiting for {what}; the app saw: {seen:#?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until `done(hits)` holds, failing the test after `limit`.
    pub async fn wait_until(&self, limit: Duration, what: &str, done: impl Fn(&[Hit]) -> bool) {
        self.wait_for(limit, what, |hits| done(hits).then_some(()))
            .await
    }

    /// The hangup callback (`Event=Hangup`) of one call, on whatever path the harness
    /// configured (SPEC §2 step 6: every call gets one).
    pub async fn hangup_callback(&self, call_uuid: &str) -> Hit {
        self.hangup_callback_within(call_uuid, PATIENCE).await
    }

    pub async fn hangup_callback_within(&self, call_uuid: &str, limit: Duration) -> Hit {
        self.wait_for(
            limit,
            &format!("the hangup callback of {call_uuid}"),
            |hits| {
                hits.iter()
                    .find(|h| {
                        h.param("Event").as_deref() == Some("Hangup")
                            && h.param("CallUUID").as_deref() == Some(call_uuid)
                    })
                    .cloned()
            },
        )
        .await
    }
}

async fn bind(port: u16) -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap()
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut hit = Hit {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        uri: uri.to_string(),
        headers,
        body,
        replied: 0,
        at: Instant::now(),
        wall: std::time::SystemTime::now(),
    };
    let reply = choose(&inner, &hit);
    hit.replied = reply.status;
    inner.hits.lock().unwrap().push(hit);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    inner.completed.fetch_add(1, Ordering::SeqCst);
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match reply.content_type {
        Some(ct) => (status, [("content-type", ct)], reply.body).into_response(),
        None => (status, reply.body).into_response(),
    }
}

fn choose(inner: &Inner, hit: &Hit) -> Reply {
    if let Some(queue) = inner.by_path.lock().unwrap().get_mut(&hit.path) {
        let reply = if queue.len() > 1 {
            queue.pop_front()
        } else {
            queue.front().cloned()
        };
        if let Some(reply) = reply {
            return reply;
        }
    }
    if let Some(reply) = inner.responder.as_ref().and_then(|r| r(hit)) {
        return reply;
    }
    if let Some(reply) = inner.queue.lock().unwrap().pop_front() {
        return reply;
    }
    if let Some(reply) = inner.default.lock().unwrap().clone() {
        return reply;
    }
    if hit.path.starts_with("/doc/") {
        Reply::status(404)
    } else {
        Reply::status(200)
    }
}
