//! The demo's web application: a real local HTTP server, as a customer's app would be.
//! It serves the example answer documents (compiled in from `examples/documents/`, so
//! the demo works from any directory), receives the callbacks, checks the
//! `X-Voxbridge-Signature` of every request and remembers what it received so the
//! demo can tell each call's story from the application's side.
//!
//! It is deliberately lenient where `examples/app.rs` is strict: a request with a bad
//! signature is still answered (and recorded as such), because the demo's job is to
//! *show* what arrived; the example app shows how a real application refuses it.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use voxbridge::app::sign;

/// The example documents, as shipped in `examples/documents/`.
const SHIPPED: &[(&str, &str)] = &[
    (
        "greeting.xml",
        include_str!("../../examples/documents/greeting.xml"),
    ),
    (
        "greeting.json",
        include_str!("../../examples/documents/greeting.json"),
    ),
    (
        "reject-busy.xml",
        include_str!("../../examples/documents/reject-busy.xml"),
    ),
    (
        "reject-busy.json",
        include_str!("../../examples/documents/reject-busy.json"),
    ),
    (
        "hangup-after-a-minute.xml",
        include_str!("../../examples/documents/hangup-after-a-minute.xml"),
    ),
    (
        "post-call.xml",
        include_str!("../../examples/documents/post-call.xml"),
    ),
    (
        "post-call.json",
        include_str!("../../examples/documents/post-call.json"),
    ),
    (
        "empty.xml",
        include_str!("../../examples/documents/empty.xml"),
    ),
    (
        "empty.json",
        include_str!("../../examples/documents/empty.json"),
    ),
];

/// A document that fails validation on purpose (SPEC §3.1): `reason="later"` is not a
/// Hangup reason. It is not shipped in `examples/documents/` because those are meant
/// to be copied.
pub const BROKEN_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Speak>You will never hear this: the document is checked before anything runs.</Speak>
  <Hangup reason="later"/>
</Response>
"#;

/// The application URL the shipped post-call documents point at; the demo app serves
/// the same documents with it replaced by its own callback route.
const SHIPPED_POST_CALL_URL: &str = "https://app.example.com/voxbridge/post-call";

/// Where the demo app receives callbacks.
pub const HANGUP_PATH: &str = "/callbacks/hangup";
pub const POST_CALL_PATH: &str = "/callbacks/post-call";

/// One request the app received.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    /// Path and query, as requested.
    pub path: String,
    /// Form parameters (body for POST, query for GET).
    pub params: Vec<(String, String)>,
    /// The signature check: `Ok` or why it failed.
    pub signature: Result<(), String>,
}

impl Received {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn call_uuid(&self) -> Option<&str> {
        self.param("CallUUID")
    }
}

struct AppState {
    auth_token: String,
    documents: HashMap<String, String>,
    received: Mutex<Vec<Received>>,
}

/// The running demo app.
pub struct DemoApp {
    pub addr: SocketAddr,
    state: Arc<AppState>,
    task: tokio::task::JoinHandle<()>,
}

impl DemoApp {
    /// Binds 127.0.0.1 on a free port and serves until dropped.
    pub async fn start(auth_token: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let base = format!("http://{addr}");
        let state = Arc::new(AppState {
            auth_token: auth_token.to_string(),
            documents: documents(&base)?,
            received: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/documents/{name}", any(document))
            .route(HANGUP_PATH, any(callback))
            .route(POST_CALL_PATH, any(callback))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "demo app stopped");
            }
        });
        Ok(Self { addr, state, task })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of a served document.
    pub fn document_url(&self, name: &str) -> String {
        format!("{}/documents/{name}", self.base_url())
    }

    /// Everything received about one call, in arrival order.
    pub fn received_for(&self, call_uuid: &str) -> Vec<Received> {
        self.state
            .received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|r| r.call_uuid() == Some(call_uuid))
            .cloned()
            .collect()
    }
}

impl Drop for DemoApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The shipped documents plus the broken one, with the post-call URL pointed here.
fn documents(base: &str) -> anyhow::Result<HashMap<String, String>> {
    let mut docs = HashMap::new();
    for (name, text) in SHIPPED {
        let text = if name.starts_with("post-call") {
            anyhow::ensure!(
                text.contains(SHIPPED_POST_CALL_URL),
                "examples/documents/{name} no longer names {SHIPPED_POST_CALL_URL}; update the demo"
            );
            text.replace(SHIPPED_POST_CALL_URL, &format!("{base}{POST_CALL_PATH}"))
        } else {
            (*text).to_string()
        };
        docs.insert((*name).to_string(), text);
    }
    docs.insert("broken.xml".into(), BROKEN_XML.into());
    Ok(docs)
}

async fn document(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.record(&method, &uri, &headers, &body);
    match state.documents.get(&name) {
        Some(text) => {
            let content_type = if name.ends_with(".json") {
                "application/json"
            } else {
                "text/xml"
            };
            ([(header::CONTENT_TYPE, content_type)], text.clone()).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such document").into_response(),
    }
}

async fn callback(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    state.record(&method, &uri, &headers, &body);
    StatusCode::OK
}

impl AppState {
    fn record(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        // voxbridge signs the full URL it requested; behind no proxy that is
        // http://<Host header><path and query>.
        let url = format!("http://{host}{uri}");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let signature = match headers
            .get(sign::SIGNATURE_HEADER)
            .and_then(|h| h.to_str().ok())
        {
            Some(h) => sign::verify(&self.auth_token, h, now, method.as_str(), &url, body)
                .map_err(|e| e.to_string()),
            None => Err("no X-Voxbridge-Signature header".to_string()),
        };
        let form: &[u8] = if *method == Method::GET {
            uri.query().unwrap_or_default().as_bytes()
        } else {
            body
        };
        let params = form_urlencoded::parse(form).into_owned().collect();
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Received {
                method: method.to_string(),
                path: uri.to_string(),
                params,
                signature,
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_call_documents_point_at_the_demo_app() {
        let docs = documents("http://127.0.0.1:9").unwrap();
        for name in ["post-call.xml", "post-call.json"] {
            assert!(
                docs[name].contains("http://127.0.0.1:9/callbacks/post-call"),
                "{name}"
            );
            assert!(!docs[name].contains("app.example.com"), "{name}");
        }
        assert_eq!(docs["greeting.xml"], SHIPPED[0].1);
    }
}
