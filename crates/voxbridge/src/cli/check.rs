//! `voxbridge check`: validate a document and print its plan.
//!
//! Uses the server's own fetcher and parser, so a document `check` accepts is one
//! the server executes. Meant for admins and for CI on their documents:
//! exit 0 and the plan when valid, exit 1 and every problem (one per line, each with
//! its line and column) otherwise.
//!
//! An `http(s)://` target is fetched as the server would on a new inbound call
//! (POST, `Event=StartApp`, `CallStatus=ringing`), with a fresh `CallUUID` and
//! `CallerName=voxbridge check` so the application can tell it apart from a call;
//! unsigned, since `check` has no account. No retries or fallback: an admin wants
//! to see the first failure at once.

use std::io::Write;
use std::path::PathBuf;

use crate::app::fetch::{
    self, CallStatus, FetchConfig, FetchError, FetchParams, FetchRequest, Fetcher,
};
use crate::document::model::{FetchEvent, HttpMethod};
use crate::document::plan::plan;
use crate::document::{AnswerDocument, Dialect};
use crate::record::call::Direction;

/// Checks `target` and writes the plan or the errors to `out`; returns the exit code
/// (0 valid, 1 invalid or unreachable).
pub async fn run(target: &str, out: &mut dyn Write) -> u8 {
    match load(target).await {
        Ok((dialect, doc)) => {
            let n = doc.instructions.len();
            let _ = writeln!(
                out,
                "{target}: valid {dialect} document, {n} instruction{}",
                if n == 1 { "" } else { "s" }
            );
            for line in plan(&doc) {
                let _ = writeln!(out, "{line}");
            }
            0
        }
        Err(Failure::Invalid(dialect, e)) => {
            let _ = writeln!(out, "{target}: invalid {dialect} document");
            for p in e.problems() {
                let _ = writeln!(out, "{p}");
            }
            1
        }
        Err(Failure::Unavailable(msg)) => {
            let _ = writeln!(out, "{target}: could not get a document: {msg}");
            1
        }
    }
}

enum Failure {
    Invalid(Dialect, crate::document::DocumentError),
    Unavailable(String),
}

async fn load(target: &str) -> Result<(Dialect, AnswerDocument), Failure> {
    let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return load_url(target).await;
    }
    let path = if lower.starts_with("file://") {
        fetch::file_url_path(target)
    } else {
        PathBuf::from(target)
    };
    let (dialect, bytes) = fetch::read_file(&path)
        .await
        .map_err(|f| Failure::Unavailable(f.to_string()))?;
    crate::document::parse(&bytes, dialect)
        .map(|doc| (dialect, doc))
        .map_err(|e| Failure::Invalid(dialect, e))
}

async fn load_url(url: &str) -> Result<(Dialect, AnswerDocument), Failure> {
    let config = FetchConfig {
        retries: 0,
        ..FetchConfig::default()
    };
    let fetcher = Fetcher::new(config)
        .map_err(|e| Failure::Unavailable(format!("cannot set up HTTP: {e}")))?;
    let params = FetchParams {
        call_uuid: uuid::Uuid::new_v4().to_string(),
        from: String::new(),
        to: String::new(),
        caller_name: "voxbridge check".into(),
        direction: Direction::Inbound,
        call_status: CallStatus::Ringing,
        event: FetchEvent::StartApp,
        forwarded_from: None,
        account_id: String::new(),
        extra: Vec::new(),
    }
    .to_pairs();
    let req = FetchRequest {
        url,
        fallback_url: None,
        method: HttpMethod::Post,
        params: &params,
        signing_token: None,
        asked_by: None,
    };
    match fetcher.fetch(&req).await {
        Ok(f) => Ok((f.dialect, f.document)),
        Err(FetchError::InvalidDocument { dialect, error, .. }) => {
            Err(Failure::Invalid(dialect, error))
        }
        Err(FetchError::NoDocument { failures, .. }) => Err(Failure::Unavailable(
            failures
                .iter()
                .map(|f| f.failure.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )),
        // Never for a check: it has no asking document.
        Err(refused @ FetchError::Refused { .. }) => Err(Failure::Unavailable(refused.to_string())),
    }
}
