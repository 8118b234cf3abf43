//! Fetching answer documents (SPEC §5.1).
//!
//! A fetch asks one URL (`http(s)://` or `file://`) for a document, retries where a
//! retry can help, then tries the fallback URL once, and hands back a parsed,
//! validated [`AnswerDocument`] or a [`FetchError`] that keeps apart the two things
//! the call engine reports differently: *no document* (unreachable, HTTP error,
//! wrong type, too large) and *an invalid document*.
//!
//! Decisions (SPEC is silent on these):
//! - The fallback URL is tried when the answer URL gives **no document**; a document
//!   that arrives but is invalid is the application's bug, reported as such, and is
//!   not papered over by the fallback.
//! - HTTP redirects (3xx) are not followed: the signature covers the URL requested,
//!   and a POST silently turned into a GET would lose the parameters. A 3xx is an
//!   HTTP error naming the code; configure the final URL.
//! - Any 2xx with a document content type is a document. Retries happen on connect
//!   errors, timeouts, other transport failures (a reset mid-response), 5xx and 429;
//!   never on other statuses, a wrong type or an oversized body — those will not fix
//!   themselves in 400 ms.
//! - `file://` documents are read from disk with no retries; a relative path
//!   (`file://docs/a.xml`) is relative to the working directory. Whether a URL is a
//!   local file is decided on its parsed scheme, case-insensitively and after trimming
//!   whitespace (`FILE://`, ` file:///`, `File:/a`, `file:relative` are all files).
//! - **Local files stay local.** The policy lives here, where files are read, and is
//!   decided on the scheme of the document that asked for the fetch
//!   ([`FetchRequest::asked_by`]): a URL from the configuration or the channel (no asker),
//!   or a Redirect in a `file://` document, may name any supported URL; a Redirect in a
//!   document that came from anywhere else (http(s), or an asker whose scheme cannot be
//!   read) may only name `http://` or `https://`. Anything else is refused before any I/O,
//!   whatever its spelling (upper case, spaces, `file:` without slashes, percent-encoded
//!   schemes…). It applies to every fetch — a live call's Redirects and a post-call
//!   workflow's alike — so a remote application can never make voxbridge read a file.
//! - How many fetches a call may make ([`crate::document::MAX_FETCHES_PER_CALL`]) is
//!   counted by the call engine, which knows what a call is.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::app::sign;
use crate::config::AppConfig;
use crate::document::model::{AnswerDocument, HttpMethod};
use crate::document::{self, Dialect, DocumentError, MAX_DOCUMENT_BYTES};
use crate::record::call::Direction;

/// Timeouts, retries and backoff for document fetches.
#[derive(Clone, Debug, PartialEq)]
pub struct FetchConfig {
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed for one whole attempt: connect, request, complete response body.
    pub total_timeout: Duration,
    /// Extra attempts at the answer URL after the first (not at the fallback URL).
    pub retries: u32,
    /// Wait before each retry; the last value repeats if there are more retries.
    pub backoff: Vec<Duration>,
}

impl Default for FetchConfig {
    /// SPEC §5.1: connect 2 s, total 5 s, 2 retries after 100 ms then 400 ms.
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_secs(5),
            retries: 2,
            backoff: vec![Duration::from_millis(100), Duration::from_millis(400)],
        }
    }
}

impl FetchConfig {
    /// From the `[app]` section. Negative or non-finite seconds fall back to the
    /// defaults rather than panicking inside `Duration`.
    pub fn from_config(app: &AppConfig) -> Self {
        let defaults = Self::default();
        let secs = |v: f64, default: Duration| {
            Duration::try_from_secs_f64(v)
                .ok()
                .filter(|d| !d.is_zero())
                .unwrap_or(default)
        };
        Self {
            connect_timeout: secs(app.connect_timeout, defaults.connect_timeout),
            total_timeout: secs(app.fetch_timeout, defaults.total_timeout),
            retries: app.fetch_retries,
            backoff: app
                .fetch_backoff_ms
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
        }
    }

    /// The wait before retry number `retry` (0-based).
    fn backoff_before(&self, retry: u32) -> Duration {
        let idx = usize::try_from(retry).unwrap_or(usize::MAX);
        self.backoff
            .get(idx)
            .or(self.backoff.last())
            .copied()
            .unwrap_or_default()
    }
}

/// `CallStatus` sent with a fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallStatus {
    /// Not answered yet (ringing or early media).
    Ringing,
    /// Answered.
    InProgress,
    /// The call is over (a post-call workflow following a Redirect).
    Completed,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "in-progress",
            CallStatus::Completed => "completed",
        }
    }
}

use crate::document::model::FetchEvent;

/// The SPEC §5.1 parameters of a fetch. The caller (the call engine) fills them in
/// from the channel; the fetcher sends them as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchParams {
    pub call_uuid: String,
    pub from: String,
    pub to: String,
    pub caller_name: String,
    pub direction: Direction,
    pub call_status: CallStatus,
    pub event: FetchEvent,
    /// Sent only when the call carries a Diversion header.
    pub forwarded_from: Option<String>,
    pub account_id: String,
    /// Channel variables named in `extra_variables`, in config order.
    pub extra: Vec<(String, String)>,
}

impl FetchParams {
    /// The parameters as ordered name/value pairs, in SPEC §5.1 order.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = vec![
            ("CallUUID".to_string(), self.call_uuid.clone()),
            ("From".to_string(), self.from.clone()),
            ("To".to_string(), self.to.clone()),
            ("CallerName".to_string(), self.caller_name.clone()),
            ("Direction".to_string(), self.direction.as_str().to_string()),
            (
                "CallStatus".to_string(),
                self.call_status.as_str().to_string(),
            ),
            ("Event".to_string(), self.event.as_str().to_string()),
        ];
        if let Some(ff) = &self.forwarded_from {
            pairs.push(("ForwardedFrom".to_string(), ff.clone()));
        }
        pairs.push(("AccountID".to_string(), self.account_id.clone()));
        pairs.extend(self.event.params());
        pairs.extend(self.extra.iter().cloned());
        pairs
    }
}

/// One fetch: where, how, what to send, and how to sign it.
#[derive(Clone, Copy, Debug)]
pub struct FetchRequest<'a> {
    pub url: &'a str,
    /// Tried once when `url` gives no document.
    pub fallback_url: Option<&'a str>,
    pub method: HttpMethod,
    /// Sent as the form body (POST) or appended to the query (GET).
    pub params: &'a [(String, String)],
    /// The account's auth token: when given, every request carries
    /// `X-Voxbridge-Signature` (SPEC §7).
    pub signing_token: Option<&'a str>,
    /// The URL of the document whose Redirect asks for this fetch; `None` for a URL
    /// from the configuration or the channel. Decides whether `url` may be a local
    /// file (see the module docs).
    pub asked_by: Option<&'a str>,
}

/// A document that was fetched, parsed and validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Fetched {
    pub document: AnswerDocument,
    pub dialect: Dialect,
    /// The URL that served it (the answer URL or the fallback URL), as configured.
    pub url: String,
    /// Requests made in all, including failed ones and the fallback.
    pub attempts: u32,
    /// Whether the fallback URL served it.
    pub from_fallback: bool,
}

/// Why one URL gave no document.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchFailure {
    #[error("not a usable document URL: {0}")]
    BadUrl(String),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Transport(String),
    #[error("HTTP {status}{}", if (300..400).contains(status) { " (redirects are not followed: configure the final URL)" } else { "" })]
    Status { status: u16 },
    #[error("{}", match .0 {
        Some(ct) => format!("Content-Type {ct:?} is not a document type, expected text/xml, application/xml or application/json"),
        None => "no Content-Type, expected text/xml, application/xml or application/json".to_string(),
    })]
    ContentType(Option<String>),
    #[error("the document is larger than {MAX_DOCUMENT_BYTES} bytes (100 KiB)")]
    TooLarge,
    #[error("cannot read {path}: {reason}")]
    File { path: String, reason: String },
    #[error("cannot tell the dialect of {0}: expected a .xml or .json file, or content starting with < or {{")]
    UnknownDialect(String),
}

impl FetchFailure {
    /// SPEC §5.1: retry on connect errors, timeouts, 5xx and 429.
    pub fn is_retryable(&self) -> bool {
        match self {
            FetchFailure::Connect(_) | FetchFailure::Timeout(_) | FetchFailure::Transport(_) => {
                true
            }
            FetchFailure::Status { status } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// What went wrong at one URL, after all attempts there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlFailure {
    pub url: String,
    pub attempts: u32,
    pub failure: FetchFailure,
}

impl std::fmt::Display for UrlFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.url, self.failure)?;
        if self.attempts > 1 {
            write!(f, " (after {} attempts)", self.attempts)?;
        }
        Ok(())
    }
}

/// A fetch that did not produce a document to execute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchError {
    /// No URL gave a document (SPEC §4 rule 8): one failure per URL tried, the
    /// answer URL first.
    NoDocument {
        attempts: u32,
        failures: Vec<UrlFailure>,
    },
    /// A document from `asked_by` redirected to `url`, which it may not fetch: a remote
    /// document may only redirect to http(s). Nothing was read or requested.
    Refused { url: String, asked_by: String },
    /// `url` answered with a document that failed validation; `failures` holds
    /// what went wrong at a URL tried before it (the answer URL, when the fallback
    /// served the invalid document).
    InvalidDocument {
        url: String,
        dialect: Dialect,
        attempts: u32,
        error: DocumentError,
        failures: Vec<UrlFailure>,
    },
}

impl FetchError {
    /// Requests made in all.
    pub fn attempts(&self) -> u32 {
        match self {
            FetchError::NoDocument { attempts, .. }
            | FetchError::InvalidDocument { attempts, .. } => *attempts,
            FetchError::Refused { .. } => 0,
        }
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::NoDocument { failures, .. } => {
                f.write_str("could not get a document")?;
                for (i, fail) in failures.iter().enumerate() {
                    let label = if i == 0 { "" } else { "fallback " };
                    write!(f, "; {label}{fail}")?;
                }
                Ok(())
            }
            FetchError::InvalidDocument {
                url,
                dialect,
                error,
                ..
            } => {
                write!(f, "invalid {dialect} document from {url}: {error}")
            }
            FetchError::Refused { url, asked_by } => write!(
                f,
                "Redirect to {url} refused: a document fetched from {asked_by} may only \
                 redirect to http:// or https:// (never to a local file such as file://)"
            ),
        }
    }
}

impl std::error::Error for FetchError {}

/// What one URL gave after its attempts.
enum UrlOutcome {
    Document(Dialect, AnswerDocument),
    Invalid(Dialect, DocumentError),
    Failed(FetchFailure),
}

/// Idle connections the fetcher keeps open per host (application server), ready for
/// the next fetch. Without a bound every connection of a burst stays open and idle for
/// reqwest's 90 s, one per fetch that overlapped another: 10,000 calls parked by the
/// bench left 642 idle connections to the application, and 2,000 under a profiler
/// (slower fetches overlap more) held ~7 KiB of hyper's buffers and tasks per parked
/// call (SPEC §9), and a socket at both ends. Fetches beyond this many at once still
/// run, on new connections, closed after use.
pub const MAX_IDLE_CONNECTIONS_PER_HOST: usize = 128;

/// Fetches documents; one per process (it holds the HTTP connection pool).
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    config: FetchConfig,
}

impl Fetcher {
    /// Builds the HTTP client. Fails only if the TLS stack cannot be set up.
    pub fn new(config: FetchConfig) -> Result<Self, reqwest::Error> {
        let client = crate::http_client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.total_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("voxbridge/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(MAX_IDLE_CONNECTIONS_PER_HOST)
            .build()?;
        Ok(Self { client, config })
    }

    pub fn config(&self) -> &FetchConfig {
        &self.config
    }

    /// Fetches, parses and validates a document: the answer URL with retries, then
    /// the fallback URL once if the answer URL gave no document.
    pub async fn fetch(&self, req: &FetchRequest<'_>) -> Result<Fetched, FetchError> {
        if let Some(asked_by) = req.asked_by {
            if !may_fetch(asked_by, req.url) {
                tracing::warn!(
                    url = req.url,
                    asked_by,
                    "refused a Redirect from a remote document to a non-http(s) URL"
                );
                return Err(FetchError::Refused {
                    url: req.url.to_string(),
                    asked_by: asked_by.to_string(),
                });
            }
        }
        let max = self.config.retries.saturating_add(1);
        let (attempts, outcome) = self.try_url(req.url, req, max).await;
        let primary_failure = match outcome {
            UrlOutcome::Document(dialect, document) => {
                return Ok(Fetched {
                    document,
                    dialect,
                    url: req.url.to_string(),
                    attempts,
                    from_fallback: false,
                })
            }
            UrlOutcome::Invalid(dialect, error) => {
                return Err(FetchError::InvalidDocument {
                    url: req.url.to_string(),
                    dialect,
                    attempts,
                    error,
                    failures: Vec::new(),
                })
            }
            UrlOutcome::Failed(failure) => UrlFailure {
                url: req.url.to_string(),
                attempts,
                failure,
            },
        };
        let Some(fallback) = req.fallback_url.filter(|u| !u.trim().is_empty()) else {
            return Err(FetchError::NoDocument {
                attempts,
                failures: vec![primary_failure],
            });
        };
        tracing::warn!(url = req.url, fallback, failure = %primary_failure.failure, "answer URL gave no document, trying the fallback URL");
        let (fb_attempts, outcome) = self.try_url(fallback, req, 1).await;
        let total = attempts + fb_attempts;
        match outcome {
            UrlOutcome::Document(dialect, document) => Ok(Fetched {
                document,
                dialect,
                url: fallback.to_string(),
                attempts: total,
                from_fallback: true,
            }),
            UrlOutcome::Invalid(dialect, error) => Err(FetchError::InvalidDocument {
                url: fallback.to_string(),
                dialect,
                attempts: total,
                error,
                failures: vec![primary_failure],
            }),
            UrlOutcome::Failed(failure) => Err(FetchError::NoDocument {
                attempts: total,
                failures: vec![
                    primary_failure,
                    UrlFailure {
                        url: fallback.to_string(),
                        attempts: fb_attempts,
                        failure,
                    },
                ],
            }),
        }
    }

    /// Up to `max` attempts at one URL, with backoff between retryable failures.
    async fn try_url(&self, url: &str, req: &FetchRequest<'_>, max: u32) -> (u32, UrlOutcome) {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let result = self.attempt(url, req).await;
            let failure = match result {
                Ok((dialect, bytes)) => {
                    let outcome = match document::parse(&bytes, dialect) {
                        Ok(doc) => UrlOutcome::Document(dialect, doc),
                        Err(e) => UrlOutcome::Invalid(dialect, e),
                    };
                    return (attempts, outcome);
                }
                Err(f) => f,
            };
            if !failure.is_retryable() || attempts >= max {
                return (attempts, UrlOutcome::Failed(failure));
            }
            let wait = self.config.backoff_before(attempts - 1);
            tracing::warn!(url, attempt = attempts, %failure, retry_in_ms = wait.as_millis() as u64, "document fetch failed, retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// One request (or one file read): the raw body and its dialect.
    async fn attempt(
        &self,
        url: &str,
        req: &FetchRequest<'_>,
    ) -> Result<(Dialect, Vec<u8>), FetchFailure> {
        let trimmed = url.trim();
        if scheme(trimmed).as_deref() == Some("file") {
            return read_file(&file_url_path(trimmed)).await;
        }
        let parsed = url::Url::parse(trimmed)
            .map_err(|e| FetchFailure::BadUrl(format!("{trimmed:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(FetchFailure::BadUrl(format!(
                "{trimmed:?}: expected an http://, https:// or file:// URL"
            )));
        }
        let deadline = self.config.total_timeout;
        match tokio::time::timeout(deadline, self.http_attempt(parsed, req)).await {
            Ok(r) => r,
            Err(_) => Err(FetchFailure::Timeout(deadline)),
        }
    }

    async fn http_attempt(
        &self,
        mut url: url::Url,
        req: &FetchRequest<'_>,
    ) -> Result<(Dialect, Vec<u8>), FetchFailure> {
        // A fragment never reaches the server, so it is neither sent nor signed.
        url.set_fragment(None);
        let (method, body) = match req.method {
            HttpMethod::Get => {
                if !req.params.is_empty() {
                    url.query_pairs_mut().extend_pairs(req.params.iter());
                }
                (reqwest::Method::GET, Vec::new())
            }
            HttpMethod::Post => {
                let body = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(req.params.iter())
                    .finish();
                (reqwest::Method::POST, body.into_bytes())
            }
        };
        let mut builder = self.client.request(method.clone(), url.clone()).header(
            reqwest::header::ACCEPT,
            "text/xml, application/xml, application/json",
        );
        if method == reqwest::Method::POST {
            builder = builder
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body.clone());
        }
        if let Some(token) = req.signing_token {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            // Sign exactly what the server receives: the final URL (query included;
            // credentials aside, they travel as an Authorization header) and the body.
            let mut signed = url.clone();
            let _ = signed.set_username("");
            let _ = signed.set_password(None);
            let value = sign::header_value(token, now, method.as_str(), signed.as_str(), &body);
            builder = builder.header(sign::SIGNATURE_HEADER, value);
        }
        let mut resp = builder
            .send()
            .await
            .map_err(|e| classify(&e, self.config.total_timeout))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(FetchFailure::Status {
                status: status.as_u16(),
            });
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let dialect = match content_type.as_deref() {
            Some(ct) => Dialect::from_content_type(ct)
                .ok_or_else(|| FetchFailure::ContentType(Some(ct.to_string())))?,
            None => return Err(FetchFailure::ContentType(None)),
        };
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(FetchFailure::TooLarge);
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| classify(&e, self.config.total_timeout))?
        {
            if bytes.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(FetchFailure::TooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((dialect, bytes))
    }
}

/// Sorts a client error into the failure kinds that decide retrying.
fn classify(e: &reqwest::Error, total: Duration) -> FetchFailure {
    if e.is_timeout() {
        FetchFailure::Timeout(total)
    } else if e.is_connect() {
        FetchFailure::Connect(error_chain(e))
    } else if e.is_builder() {
        FetchFailure::BadUrl(error_chain(e))
    } else {
        FetchFailure::Transport(error_chain(e))
    }
}

/// An error with its causes, `outer: inner: root`, so "connection refused" shows.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        source = s.source();
    }
    out
}

/// The scheme of a URL, lower-cased, after trimming whitespace: the letters before the
/// first `:` when they form a scheme (RFC 3986: a letter, then letters, digits, `+`,
/// `-` or `.`); `None` otherwise (no colon, or `%66ile:` — not a scheme at all).
pub fn scheme(url: &str) -> Option<String> {
    let (scheme, _) = url.trim().split_once(':')?;
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (first_ok && rest_ok).then(|| scheme.to_ascii_lowercase())
}

/// Whether a document fetched from `asked_by` may redirect to `url` (module docs):
/// anything from a `file://` document, only http(s) from any other.
pub fn may_fetch(asked_by: &str, url: &str) -> bool {
    if scheme(asked_by).as_deref() == Some("file") {
        return true;
    }
    matches!(scheme(url).as_deref(), Some("http" | "https"))
}

/// The path a `file:` URL names: `file:///abs/path`, `file://localhost/abs/path`,
/// `file:/abs/path`, or `file://relative/path` and `file:relative/path` (relative to
/// the working directory). The scheme may be in any case; percent escapes are decoded.
pub fn file_url_path(url: &str) -> PathBuf {
    let url = url.trim();
    let rest = url.get(5..).unwrap_or_default();
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let rest = match rest.strip_prefix("localhost/") {
        // Keep the slash: `file://localhost/srv/a.xml` is `/srv/a.xml`.
        Some(_) => &rest["localhost".len()..],
        None => rest,
    };
    PathBuf::from(percent_decode(rest))
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads a document from disk, refusing files over the size limit without reading
/// them whole.
pub async fn read_file(path: &Path) -> Result<(Dialect, Vec<u8>), FetchFailure> {
    use tokio::io::AsyncReadExt;
    let shown = path.display().to_string();
    let file_err = |e: std::io::Error| FetchFailure::File {
        path: shown.clone(),
        reason: e.to_string(),
    };
    let file = tokio::fs::File::open(path).await.map_err(file_err)?;
    let meta = file.metadata().await.map_err(file_err)?;
    if meta.is_dir() {
        return Err(FetchFailure::File {
            path: shown,
            reason: "is a directory".into(),
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(file_err)?;
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(FetchFailure::TooLarge);
    }
    let dialect = Dialect::for_file(path, &bytes).ok_or(FetchFailure::UnknownDialect(shown))?;
    Ok((dialect, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_map_to_paths() {
        assert_eq!(
            file_url_path("file:///srv/a.xml"),
            PathBuf::from("/srv/a.xml")
        );
        assert_eq!(
            file_url_path("file://localhost/srv/a.xml"),
            PathBuf::from("/srv/a.xml")
        );
        assert_eq!(
            file_url_path("file://docs/a%20b.xml"),
            PathBuf::from("docs/a b.xml")
        );
        assert_eq!(
            file_url_path("file://docs/100%"),
            PathBuf::from("docs/100%")
        );
        assert_eq!(file_url_path("file://%zz"), PathBuf::from("%zz"));
        assert_eq!(
            file_url_path(" FILE:///srv/a.xml"),
            PathBuf::from("/srv/a.xml")
        );
        assert_eq!(
            file_url_path("File:/srv/a.xml"),
            PathBuf::from("/srv/a.xml")
        );
        assert_eq!(
            file_url_path("file:docs/a.xml"),
            PathBuf::from("docs/a.xml")
        );
    }

    #[test]
    fn schemes_are_parsed_not_matched() {
        assert_eq!(scheme(" FILE:///x").as_deref(), Some("file"));
        assert_eq!(scheme("File:relative").as_deref(), Some("file"));
        assert_eq!(scheme("HTTPS://a/b").as_deref(), Some("https"));
        assert_eq!(scheme("%66ile:///x"), None);
        assert_eq!(scheme("no-colon"), None);
        assert!(!may_fetch("HTTP://app/doc", "file:///etc/passwd"));
        assert!(!may_fetch("https://app/doc", "%66ile:///etc/passwd"));
        assert!(!may_fetch("garbage", "file:///etc/passwd"));
        assert!(may_fetch("https://app/doc", "HTTPS://app/next"));
        assert!(may_fetch(" File:///srv/a.xml", "file:///srv/b.xml"));
    }

    #[test]
    fn params_in_spec_order() {
        let p = FetchParams {
            call_uuid: "u".into(),
            from: "1000".into(),
            to: "2000".into(),
            caller_name: "Ann".into(),
            direction: Direction::Inbound,
            call_status: CallStatus::Ringing,
            event: FetchEvent::StartApp,
            forwarded_from: Some("3000".into()),
            account_id: "acc".into(),
            extra: vec![("sip_h_X".into(), "v".into())],
        };
        let names: Vec<String> = p.to_pairs().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            names,
            [
                "CallUUID",
                "From",
                "To",
                "CallerName",
                "Direction",
                "CallStatus",
                "Event",
                "ForwardedFrom",
                "AccountID",
                "sip_h_X"
            ]
        );
        let without = FetchParams {
            forwarded_from: None,
            ..p
        };
        assert!(!without.to_pairs().iter().any(|(k, _)| k == "ForwardedFrom"));
    }

    #[test]
    fn retryable_failures() {
        assert!(FetchFailure::Status { status: 503 }.is_retryable());
        assert!(FetchFailure::Status { status: 429 }.is_retryable());
        assert!(!FetchFailure::Status { status: 404 }.is_retryable());
        assert!(!FetchFailure::TooLarge.is_retryable());
        assert!(FetchFailure::Timeout(Duration::from_secs(1)).is_retryable());
    }

    #[test]
    fn config_from_app_section() {
        let app = AppConfig {
            connect_timeout: 0.5,
            fetch_timeout: -1.0,
            fetch_retries: 4,
            fetch_backoff_ms: vec![10, 20],
            ..AppConfig::default()
        };
        let c = FetchConfig::from_config(&app);
        assert_eq!(c.connect_timeout, Duration::from_millis(500));
        assert_eq!(c.total_timeout, Duration::from_secs(5));
        assert_eq!(c.retries, 4);
        assert_eq!(c.backoff_before(0), Duration::from_millis(10));
        assert_eq!(c.backoff_before(3), Duration::from_millis(20));
        assert_eq!(
            FetchConfig::from_config(&AppConfig::default()),
            FetchConfig::default()
        );
    }
}
