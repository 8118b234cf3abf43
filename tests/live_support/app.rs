//! The customer application of the live suite: a real local HTTP server that answers
//! voxbridge's document fetches and receives its callbacks.
//!
//! Calls are told apart by the caller id each scenario originates with
//! (`origination_caller_id_number=<tag>`), which reaches voxbridge as the channel's caller
//! number and the application as `From` — no SIP header tricks needed. A fetch gets the
//! tag's document for its step (`StartApp` → step 0, a Redirect to `{app}/answer?step=N`
//! → step N); an unknown tag gets 404, so a stray call on a shared switch is refused.
//! A post-call URL `{app}/postcall?step=N` answers with document N the same way (the
//! post-call workflow's document, SPEC §4 rule 5); a bare `{app}/postcall` answers empty.

use super::scenarios::Doc;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Form or query parameters of one request, in order.
#[derive(Clone, Debug, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn parse(query: Option<&str>, body: &[u8]) -> Self {
        let mut out: Vec<(String, String)> = Vec::new();
        if let Some(q) = query {
            out.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        out.extend(form_urlencoded::parse(body).into_owned());
        Params(out)
    }
}

/// What the application saw for one tag.
#[derive(Clone, Debug, Default)]
pub struct TagLog {
    /// Document fetches (with `step` from the URL query).
    pub fetches: Vec<Params>,
    /// Hangup callbacks (`Event=Hangup`).
    pub hangups: Vec<Params>,
    /// Post-call workflow requests (`Event=PostCall`).
    pub post_calls: Vec<Params>,
    /// A Dial's leg events to `{app}/events` (they carry no `From`: matched to the tag
    /// by their `CallUUID`, the one of the tag's fetches).
    pub dial_events: Vec<Params>,
}

#[derive(Default)]
struct AppState {
    docs: HashMap<String, Vec<Doc>>,
    log: HashMap<String, TagLog>,
    /// Requests that named no known tag (kept for the failure report).
    strays: Vec<String>,
}

type Shared = Arc<Mutex<AppState>>;

/// A running application; stops when dropped.
pub struct App {
    pub base: String,
    state: Shared,
    task: JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, AppState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl App {
    pub async fn start() -> Result<App, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("local app: cannot listen on 127.0.0.1: {e}"))?;
        let addr: SocketAddr = listener
            .local_addr()
            .map_err(|e| format!("local app: {e}"))?;
        let state: Shared = Arc::default();
        let router = Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(App {
            base: format!("http://{addr}"),
            state,
            task,
        })
    }

    /// Serves `docs` (in fetch order) to calls from `tag`; `{app}` becomes our base URL.
    pub fn register(&self, tag: &str, docs: &[Doc]) {
        let docs = docs
            .iter()
            .map(|d| match d {
                Doc::Xml(x) => Doc::Xml(x.replace("{app}", &self.base)),
                Doc::VoxMl(v) => Doc::VoxMl(v.replace("{app}", &self.base)),
                Doc::Status(s) => Doc::Status(*s),
            })
            .collect();
        let mut st = lock(&self.state);
        st.docs.insert(tag.to_string(), docs);
        st.log.insert(tag.to_string(), TagLog::default());
    }

    pub fn log(&self, tag: &str) -> TagLog {
        lock(&self.state).log.get(tag).cloned().unwrap_or_default()
    }

    pub fn strays(&self) -> Vec<String> {
        lock(&self.state).strays.clone()
    }

    /// Polls the tag's log until `done` holds or `within` has passed; returns the log.
    pub async fn wait_for(
        &self,
        tag: &str,
        within: Duration,
        done: impl Fn(&TagLog) -> bool,
    ) -> (bool, TagLog) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let log = self.log(tag);
            if done(&log) {
                return (true, log);
            }
            if tokio::time::Instant::now() >= deadline {
                return (false, log);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn handle(State(state): State<Shared>, method: Method, uri: Uri, body: Bytes) -> Response {
    let params = Params::parse(uri.query(), &body);
    let mut st = lock(&state);
    if uri.path() == "/events" {
        let call = params.get("CallUUID").unwrap_or("").to_string();
        let tag = st
            .log
            .iter()
            .find(|(_, l)| {
                l.fetches
                    .iter()
                    .any(|f| f.get("CallUUID") == Some(call.as_str()))
            })
            .map(|(t, _)| t.clone());
        return match tag.and_then(|t| st.log.get_mut(&t)) {
            Some(log) => {
                log.dial_events.push(params);
                StatusCode::OK.into_response()
            }
            None => {
                st.strays.push(format!("{method} {uri} CallUUID={call}"));
                StatusCode::NOT_FOUND.into_response()
            }
        };
    }
    let tag = params.get("From").unwrap_or("").to_string();
    if !st.docs.contains_key(&tag) {
        st.strays.push(format!(
            "{method} {uri} From={tag:?} Event={:?}",
            params.get("Event")
        ));
        return StatusCode::NOT_FOUND.into_response();
    }
    let step: Option<usize> = params.get("step").and_then(|s| s.parse().ok());
    match uri.path() {
        "/answer" => {
            let doc = st
                .docs
                .get(&tag)
                .and_then(|d| d.get(step.unwrap_or(0)))
                .cloned();
            if let Some(log) = st.log.get_mut(&tag) {
                log.fetches.push(params);
            }
            serve(doc)
        }
        "/hangup" | "/postcall" => {
            let post_call = params.get("Event") == Some("PostCall");
            if let Some(log) = st.log.get_mut(&tag) {
                if post_call {
                    log.post_calls.push(params);
                } else {
                    log.hangups.push(params);
                }
            }
            match step {
                Some(n) if post_call => serve(st.docs.get(&tag).and_then(|d| d.get(n)).cloned()),
                _ => StatusCode::OK.into_response(),
            }
        }
        other => {
            let line = format!("{method} {other} From={tag}");
            st.strays.push(line);
            StatusCode::NOT_FOUND.into_response()
        }
    }
}

/// One document as HTTP: its dialect's content type (SPEC §3 picks the parser by it).
fn serve(doc: Option<Doc>) -> Response {
    match doc {
        Some(Doc::Xml(x)) => ([(header::CONTENT_TYPE, "text/xml")], x).into_response(),
        Some(Doc::VoxMl(instructions)) => (
            [(header::CONTENT_TYPE, "application/json")],
            format!(r#"{{"voxml_version":"1.0","instructions":{instructions}}}"#),
        )
            .into_response(),
        Some(Doc::Status(code)) => StatusCode::from_u16(code)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
