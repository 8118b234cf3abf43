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

use super::common::app::{FakeApp, Hit, Reply};
use super::scenarios::Doc;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    /// A Record's `Event=RecordStop` to `{app}/events` (matched like the Dial events).
    pub record_stops: Vec<Params>,
}

#[derive(Default)]
struct AppState {
    docs: HashMap<String, Vec<Doc>>,
    log: HashMap<String, TagLog>,
    /// Requests that named no known tag (kept for the failure report).
    strays: Vec<String>,
}

type Shared = Arc<Mutex<AppState>>;

/// A running application (the one fake app of `tests/common/app.rs`, routing by tag);
/// stops when dropped.
pub struct App {
    pub base: String,
    state: Shared,
    _server: FakeApp,
}

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, AppState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl App {
    pub async fn start() -> Result<App, String> {
        let state: Shared = Arc::default();
        let routing = state.clone();
        let server = FakeApp::start_with(Box::new(move |hit| Some(respond(&routing, hit)))).await;
        Ok(App {
            base: format!("http://127.0.0.1:{}", server.port),
            state,
            _server: server,
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

/// `GET /media/tone.wav`: one second of 440 Hz, 8 kHz 16-bit mono PCM — the media a
/// switch without an HTTP cache (Asterisk) gets through voxbridge's own cache.
fn tone_wav() -> Vec<u8> {
    const RATE: u32 = 8000;
    let samples: Vec<u8> = (0..RATE)
        .flat_map(|n| {
            let v = (f64::sin(2.0 * std::f64::consts::PI * 440.0 * n as f64 / RATE as f64) * 8000.0)
                as i16;
            v.to_le_bytes()
        })
        .collect();
    let mut wav = Vec::with_capacity(44 + samples.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + samples.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&RATE.to_le_bytes());
    wav.extend_from_slice(&(RATE * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    wav.extend_from_slice(&samples);
    wav
}

/// The tag routing: the caller's tag (`From`) picks the documents, `?step=N` the one.
/// A Dial's `callbackUrl` events (`/events`) carry no tag: they go to the log of the
/// call whose fetches name their `CallUUID`.
fn respond(state: &Shared, hit: &Hit) -> Reply {
    if hit.method == "GET" && hit.path == "/media/tone.wav" {
        return Reply::status(200).with_bytes("audio/wav", tone_wav());
    }
    let params = Params::parse(Some(&hit.query), &hit.body);
    let mut st = lock(state);
    if hit.path == "/events" {
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
                if params.get("Event") == Some("RecordStop") {
                    log.record_stops.push(params);
                } else {
                    log.dial_events.push(params);
                }
                Reply::status(200)
            }
            None => {
                st.strays
                    .push(format!("{} {} CallUUID={call}", hit.method, hit.uri));
                Reply::status(404)
            }
        };
    }
    let tag = params.get("From").unwrap_or("").to_string();
    if !st.docs.contains_key(&tag) {
        st.strays.push(format!(
            "{} {} From={tag:?} Event={:?}",
            hit.method,
            hit.uri,
            params.get("Event")
        ));
        return Reply::status(404);
    }
    let step: Option<usize> = params.get("step").and_then(|s| s.parse().ok());
    match hit.path.as_str() {
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
                _ => Reply::status(200),
            }
        }
        other => {
            let line = format!("{} {other} From={tag}", hit.method);
            st.strays.push(line);
            Reply::status(404)
        }
    }
}

/// One document as HTTP: its dialect's content type (SPEC §3 picks the parser by it).
fn serve(doc: Option<Doc>) -> Reply {
    match doc {
        Some(Doc::Xml(x)) => Reply::doc("text/xml", &x),
        Some(Doc::VoxMl(instructions)) => Reply::doc(
            "application/json",
            &format!(r#"{{"voxml_version":"1.0","instructions":{instructions}}}"#),
        ),
        Some(Doc::Status(code)) => Reply::status(code),
        None => Reply::status(404),
    }
}
