//! An example voxbridge application: serves answer documents, verifies the
//! `X-Voxbridge-Signature` of every request, and prints the callbacks it receives.
//!
//! ```sh
//! cargo run --example app                      # listens on 127.0.0.1:5000, token "change-me"
//! cargo run --example app -- --listen 127.0.0.1:5001 --auth-token s3cret
//! EXAMPLE_APP_AUTH_TOKEN=s3cret cargo run --example app
//! ```
//!
//! With `examples/voxbridge.toml` (account token `change-me`, `default_answer_url =
//! http://127.0.0.1:5000/answer`), every call that no `[[route]]` claims is answered here.
//!
//! | path | serves |
//! |---|---|
//! | `/answer` | Answer XML: greets the caller by name, pauses, says goodbye, hangs up |
//! | `/busy` | Answer XML: refuses the call as busy (SIP 486, never answered) |
//! | `/voxml` | the greeting as VoxML JSON |
//! | `/after-a-minute` | Answer XML: a hangup scheduled 60 s ahead, speech until it fires |
//! | `/post-call-flow` | Answer XML: a Hangup with `postCallUrl` pointing at `/post-call` |
//! | `/hangup` | receives the hangup callback (form POST, SPEC §5.2) |
//! | `/post-call` | receives the post-call workflow POST (SPEC §4 rule 5) |
//! | `/status` | receives the JSON `call-ended` status event (SPEC §5.3) |
//!
//! # Verifying `X-Voxbridge-Signature` (in any language)
//!
//! voxbridge signs every document fetch and every callback with the `auth_token` of the
//! account the call belongs to:
//!
//! ```text
//! X-Voxbridge-Signature: t=1763715600,v1=3c5e…(64 lowercase hex digits)
//!
//! 1. Split the value on ',' and each part on its first '=': t = unix seconds, v1 = hex.
//! 2. Refuse when |now - t| > 300 s (a captured request cannot be replayed later).
//! 3. message = t + "." + METHOD + URL + "." + BODY
//!      METHOD  "POST" or "GET"
//!      URL     the full URL voxbridge requested: scheme://host[:port]/path?query, as
//!              configured in voxbridge (for GET including the parameters voxbridge
//!              appended to the query); a default port (80/443) is not written
//!      BODY    the raw body bytes as received, before any form or JSON parsing
//!              (empty for GET)
//! 4. expected = lowercase hex( HMAC-SHA256(key = auth_token, message) )
//! 5. Accept only if expected == v1, compared in constant time.
//! ```
//!
//! Python, for instance:
//!
//! ```text
//! mac = hmac.new(token.encode(), f"{t}.{method}{url}.".encode() + body, hashlib.sha256).hexdigest()
//! ok = abs(time.time() - int(t)) <= 300 and hmac.compare_digest(mac, v1)
//! ```
//!
//! Behind a reverse proxy or TLS terminator the URL voxbridge requested is not what this
//! process sees: pass `--public-url https://app.example.com` and the URL is rebuilt on it.
//!
//! Callbacks are delivered at least once: a retry carries the same `DeliveryID`, so an
//! application de-duplicates on it (here, in memory; a real one uses a unique key in its
//! database).

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, request::Parts, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Form, Router};
use clap::Parser;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use voxbridge::app::sign;

/// Command line; every flag can also come from the environment. (Not `VOXBRIDGE_…`:
/// those configure voxbridge itself, which rejects keys it does not know.)
#[derive(Parser, Clone, Debug)]
#[command(about = "Example voxbridge application: documents, signature checks, callbacks")]
pub struct Args {
    /// Address to listen on.
    #[arg(long, env = "EXAMPLE_APP_LISTEN", default_value = "127.0.0.1:5000")]
    pub listen: SocketAddr,
    /// The `auth_token` of the voxbridge `[[account]]` whose calls this app serves.
    #[arg(long, env = "EXAMPLE_APP_AUTH_TOKEN", default_value = "change-me")]
    pub auth_token: String,
    /// The base URL voxbridge uses for this app, when it is not `http://<Host header>`
    /// (behind a proxy), e.g. `https://app.example.com`.
    #[arg(long, env = "EXAMPLE_APP_PUBLIC_URL")]
    pub public_url: Option<String>,
}

/// Larger bodies are refused before they are read whole (a callback is ~1 KiB).
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Remembered DeliveryIDs; beyond this the set starts over (an example, not a database).
const MAX_REMEMBERED_DELIVERIES: usize = 100_000;

/// A callback as this app received it (kept so tests and curious readers can look).
#[derive(Clone, Debug)]
pub struct Callback {
    /// `hangup`, `post-call` or `status`.
    pub kind: &'static str,
    /// Form fields (hangup, post-call) or the JSON object's fields (status).
    pub fields: HashMap<String, String>,
    /// A retry of a delivery already handled.
    pub duplicate: bool,
}

pub struct AppState {
    auth_token: String,
    public_url: Option<String>,
    seen_deliveries: Mutex<HashSet<String>>,
    callbacks: Mutex<Vec<Callback>>,
    refused: Mutex<Vec<String>>,
}

impl AppState {
    pub fn new(auth_token: &str, public_url: Option<&str>) -> Arc<Self> {
        Arc::new(Self {
            auth_token: auth_token.to_string(),
            public_url: public_url.map(|u| u.trim_end_matches('/').to_string()),
            seen_deliveries: Mutex::new(HashSet::new()),
            callbacks: Mutex::new(Vec::new()),
            refused: Mutex::new(Vec::new()),
        })
    }

    /// The callbacks received so far, in order.
    pub fn callbacks(&self) -> Vec<Callback> {
        lock(&self.callbacks).clone()
    }

    /// Requests refused for their signature: `"<METHOD> <path>: <why>"`.
    pub fn refused(&self) -> Vec<String> {
        lock(&self.refused).clone()
    }

    /// The URL voxbridge requested, as it signed it.
    fn signed_url(&self, parts: &Parts) -> String {
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        match &self.public_url {
            Some(base) => format!("{base}{path_and_query}"),
            None => {
                let host = parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or_default();
                format!("http://{host}{path_and_query}")
            }
        }
    }

    fn record(&self, kind: &'static str, fields: HashMap<String, String>) -> bool {
        let duplicate = match fields
            .get("DeliveryID")
            .or_else(|| fields.get("delivery_id"))
        {
            Some(id) => {
                let mut seen = lock(&self.seen_deliveries);
                if seen.len() >= MAX_REMEMBERED_DELIVERIES {
                    seen.clear();
                }
                !seen.insert(id.clone())
            }
            None => false,
        };
        lock(&self.callbacks).push(Callback {
            kind,
            fields,
            duplicate,
        });
        duplicate
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The app: every route behind the signature check.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/answer", any(answer))
        .route("/busy", any(busy))
        .route("/voxml", any(voxml))
        .route("/after-a-minute", any(after_a_minute))
        .route("/post-call-flow", any(post_call_flow))
        .route("/hangup", post(hangup))
        .route("/post-call", any(post_call))
        .route("/status", post(status))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_signature,
        ))
        .with_state(state)
}

/// Verifies `X-Voxbridge-Signature` before any handler runs: 401 otherwise. The body is
/// read here (bounded) because the signature covers its exact bytes, then handed on.
async fn require_signature(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "body too large\n").into_response(),
    };
    let url = state.signed_url(&parts);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let verdict = match parts
        .headers
        .get(sign::SIGNATURE_HEADER)
        .map(|h| h.to_str())
    {
        None => Err("no X-Voxbridge-Signature header".to_string()),
        Some(Err(_)) => Err("X-Voxbridge-Signature is not text".to_string()),
        Some(Ok(h)) => sign::verify(
            &state.auth_token,
            h,
            now,
            parts.method.as_str(),
            &url,
            &body,
        )
        .map_err(|e| e.to_string()),
    };
    match verdict {
        Ok(()) => next.run(Request::from_parts(parts, Body::from(body))).await,
        Err(why) => {
            println!("REFUSED {} {url}: {why}", parts.method);
            lock(&state.refused).push(format!("{} {}: {why}", parts.method, parts.uri.path()));
            (StatusCode::UNAUTHORIZED, format!("signature: {why}\n")).into_response()
        }
    }
}

fn xml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

/// Text for an XML element: document text comes from callers, never trust it raw.
fn escape_xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The fetch parameters (SPEC §5.1): form body for POST, the query for GET.
fn fetch_params(query: Option<&str>, body: &Bytes) -> HashMap<String, String> {
    let source = if body.is_empty() {
        query.unwrap_or_default().as_bytes()
    } else {
        body.as_ref()
    };
    form_urlencoded::parse(source).into_owned().collect()
}

fn log_fetch(route: &str, p: &HashMap<String, String>) {
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    println!(
        "-> {route}: Event={} CallUUID={} From={} ({}) To={} CallStatus={}",
        get("Event"),
        get("CallUUID"),
        get("From"),
        get("CallerName"),
        get("To"),
        get("CallStatus")
    );
}

async fn answer(uri: axum::http::Uri, body: Bytes) -> Response {
    let p = fetch_params(uri.query(), &body);
    log_fetch("/answer", &p);
    let name = p
        .get("CallerName")
        .filter(|n| !n.trim().is_empty())
        .map(String::as_str)
        .unwrap_or("caller");
    xml(format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Speak voice="WOMAN">Hello {}, thank you for calling.</Speak>
  <Wait length="1"/>
  <Speak>Goodbye.</Speak>
  <Hangup/>
</Response>
"#,
        escape_xml(name)
    ))
}

async fn busy(uri: axum::http::Uri, body: Bytes) -> Response {
    log_fetch("/busy", &fetch_params(uri.query(), &body));
    xml(r#"<Response><Hangup reason="busy"/></Response>"#.to_string())
}

async fn voxml(uri: axum::http::Uri, body: Bytes) -> Response {
    log_fetch("/voxml", &fetch_params(uri.query(), &body));
    let doc = serde_json::json!({
        "voxml_version": "1.0",
        "instructions": [
            { "verb": "Say", "text": "Thank you for calling." },
            { "verb": "Pause", "length": 1 },
            { "verb": "Hangup", "reason": "completed" }
        ]
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}

async fn after_a_minute(uri: axum::http::Uri, body: Bytes) -> Response {
    log_fetch("/after-a-minute", &fetch_params(uri.query(), &body));
    xml(r#"<Response>
  <Hangup schedule="60"/>
  <Speak loop="0">This call ends after one minute.</Speak>
</Response>
"#
    .to_string())
}

/// The post-call URL is this app's own `/post-call`, on the URL voxbridge used.
async fn post_call_flow(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    log_fetch("/post-call-flow", &fetch_params(uri.query(), &body));
    let base = match &state.public_url {
        Some(b) => b.clone(),
        None => format!(
            "http://{}",
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1:5000")
        ),
    };
    xml(format!(
        r#"<Response>
  <Speak>Thank you. Goodbye.</Speak>
  <Hangup postCallUrl="{}/post-call"/>
</Response>
"#,
        escape_xml(&base)
    ))
}

fn print_callback(kind: &str, fields: &HashMap<String, String>, duplicate: bool) {
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
    let dup = if duplicate {
        " (duplicate delivery, already handled)"
    } else {
        ""
    };
    println!(
        "<- {kind} callback{dup}: CallUUID={} HangupCause={} ({}) HangupCauseName={:?} HangupSource={:?} CallStatus={} BillDuration={} DeliveryID={}",
        get("CallUUID"),
        get("HangupCause"),
        get("HangupCauseCode"),
        get("HangupCauseName"),
        get("HangupSource"),
        get("CallStatus"),
        get("BillDuration"),
        get("DeliveryID")
    );
}

async fn hangup(
    State(state): State<Arc<AppState>>,
    Form(fields): Form<HashMap<String, String>>,
) -> StatusCode {
    let duplicate = state.record("hangup", fields.clone());
    print_callback("hangup", &fields, duplicate);
    StatusCode::OK
}

/// The post-call workflow: the same record as the hangup callback (Event=PostCall).
/// Answering with an empty 200 ends it; a document here would run in post-call mode.
async fn post_call(
    State(state): State<Arc<AppState>>,
    uri: axum::http::Uri,
    body: Bytes,
) -> StatusCode {
    let fields = fetch_params(uri.query(), &body);
    let duplicate = state.record("post-call", fields.clone());
    print_callback("post-call", &fields, duplicate);
    StatusCode::OK
}

async fn status(State(state): State<Arc<AppState>>, body: Bytes) -> StatusCode {
    let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(&body) else {
        println!("<- status callback: not a JSON object");
        return StatusCode::BAD_REQUEST;
    };
    let fields: HashMap<String, String> = object
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect();
    let duplicate = state.record("status", fields.clone());
    println!(
        "<- status event{}: {}",
        if duplicate { " (duplicate)" } else { "" },
        String::from_utf8_lossy(&body)
    );
    StatusCode::OK
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("example app: cannot listen on {}: {e}", args.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    println!(
        "example app on http://{} (documents: /answer /busy /voxml /after-a-minute /post-call-flow; callbacks: /hangup /post-call /status)",
        args.listen
    );
    let state = AppState::new(&args.auth_token, args.public_url.as_deref());
    if let Err(e) = axum::serve(listener, router(state)).await {
        eprintln!("example app: {e}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
