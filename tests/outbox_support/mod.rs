//! A real callback receiver for the outbox tests: an axum server on 127.0.0.1 that
//! records every request and answers from a script (status, delay, body).
#![allow(dead_code)]

#[path = "../common/mod.rs"]
mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use common::local_http::LocalServer;
use common::request;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use voxbridge::app::sign;

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
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

/// One request as received.
#[derive(Clone, Debug)]
pub struct Hit {
    pub method: String,
    /// Path and query, as sent.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status it was answered with.
    pub replied: u16,
    pub at: Instant,
}

impl Hit {
    pub fn header(&self, name: &str) -> Option<String> {
        request::header(&self.headers, name)
    }

    /// Form fields of the body (POST) or the query (GET).
    pub fn params(&self) -> Vec<(String, String)> {
        let query = self.uri.split_once('?').map(|(_, q)| q).unwrap_or("");
        request::fields(&self.method, query, &self.body)
    }

    pub fn param(&self, key: &str) -> Option<String> {
        request::field(self.params(), key)
    }

    /// Checks `X-Voxbridge-Signature` as a receiving application would.
    pub fn verify_signature(&self, token: &str, port: u16) -> Result<(), String> {
        let header = self
            .header(sign::SIGNATURE_HEADER)
            .ok_or("no signature header")?;
        let url = format!("http://127.0.0.1:{port}{}", self.uri);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        sign::verify(token, &header, now, &self.method, &url, &self.body)
            .map_err(|e| format!("{e} (url {url})"))
    }
}

struct Inner {
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
    hits: Mutex<Vec<Hit>>,
    completed: AtomicUsize,
}

/// A running receiver.
pub struct Receiver {
    pub port: u16,
    inner: Arc<Inner>,
    server: LocalServer,
}

#[allow(unused_imports)] // only some of the files that include this module use it
pub use common::local_http::DeadPort;

impl Receiver {
    /// Starts on `port` (0: any). The script is used first, then `default` forever.
    pub async fn start(port: u16, script: Vec<Reply>, default: Reply) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        Self::start_on(listener, script, default)
    }

    /// Starts on a listener the test holds (a [`DeadPort`] that comes up).
    pub fn start_on(listener: tokio::net::TcpListener, script: Vec<Reply>, default: Reply) -> Self {
        let inner = Arc::new(Inner {
            script: Mutex::new(script.into()),
            default: Mutex::new(default),
            hits: Mutex::new(Vec::new()),
            completed: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let server = LocalServer::serve(listener, app);
        Self {
            port: server.port,
            inner,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.inner.hits.lock().unwrap().clone()
    }

    /// Requests whose (possibly delayed) reply has been sent.
    pub fn completed(&self) -> usize {
        self.inner.completed.load(Ordering::SeqCst)
    }

    pub fn set_default(&self, reply: Reply) {
        *self.inner.default.lock().unwrap() = reply;
    }

    /// Waits until `pred(hits)` holds, failing the test after `limit`.
    pub async fn wait_for(&self, limit: Duration, what: &str, pred: impl Fn(&[Hit]) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            if pred(&self.hits()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; hits: {:?}",
                self.hits()
                    .iter()
                    .map(|h| (&h.method, &h.uri, h.replied))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let next = inner.script.lock().unwrap().pop_front();
        next.unwrap_or_else(|| inner.default.lock().unwrap().clone())
    };
    inner.hits.lock().unwrap().push(Hit {
        method: method.to_string(),
        uri: uri.to_string(),
        headers,
        body,
        replied: reply.status,
        at: Instant::now(),
    });
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    inner.completed.fetch_add(1, Ordering::SeqCst);
    let status = StatusCode::from_u16(reply.status).unwrap();
    match reply.content_type {
        Some(ct) => (status, [("content-type", ct)], reply.body).into_response(),
        None => (status, reply.body).into_response(),
    }
}

/// Polls `check` until it returns `Some`, failing after `limit`.
pub async fn eventually<T>(
    limit: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
