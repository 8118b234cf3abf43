//! The `Recording` resource (SPEC §12.3): the account's recordings, their audio, and
//! deleting them.
//!
//! | Method, path | Query | Answer |
//! |---|---|---|
//! | `GET Recording/` | `limit` (≤ 100, 20), `offset`, `call_uuid` | `{"api_id","meta","objects"}`, newest first |
//! | `GET Recording/{id}/` | none | the recording, below |
//! | `GET Recording/{id}.{ext}` | none | the audio: `audio/wav` (`audio/mpeg` for mp3), byte ranges |
//! | `DELETE Recording/{id}/` | none | 204, the file removed; 404 after |
//! | `DELETE Call/{uuid}/Record/` | none | 204, the call's recordings stop now (see below) |
//!
//! A recording: `recording_id, call_uuid, recording_format, recording_type` (`call`),
//! `recording_duration_ms, recording_start_ms, recording_end_ms` (epoch ms),
//! `recording_url` (`<api.public_url>/api/v1/Account/{auth_id}/Recording/{id}.{ext}`, the
//! `RecordUrl` of the callbacks), `add_time` (`YYYY-MM-DD HH:MM:SS` UTC, as the CDRs),
//! `from_number, to_number, resource_uri`. Another account's recording is 404, as an
//! unknown one (an account must not learn that it exists).
//!
//! Decisions:
//! * **Ranges**: one `bytes=` range (`a-b`, `a-`, `-n`) answers 206 with `Content-Range`;
//!   a range past the end answers 416 with `Content-Range: bytes */<size>`; a header that
//!   is not one byte range (several ranges, other units, garbage) is ignored and the whole
//!   file served (RFC 9110 lets a server ignore Range). `Accept-Ranges: bytes` always.
//! * **The extension must be the recording's format**: `{id}.mp3` of a wav recording is 404.
//! * **The audio is streamed** from the file in 64 KiB chunks ([`FileBody`]), so an hour of
//!   session recording costs no more memory than a second.
//! * **A row whose file is gone** (removed by hand) answers 404 for the audio and is
//!   logged at warn; the row stays listed until it is deleted.
//! * **Deleting** removes the row first, then the file: a crash in between leaves a stray
//!   file, never a row that points at nothing. A file already gone is fine.
//! * `DELETE Call/{uuid}/Record/` stops every recording of a live call now: a plain
//!   `<Record>` ends (`RecordingEndReason=Stopped`, then its action as usual), a
//!   background one stops and its file is complete, a `startOnDialAnswer` one still
//!   waiting is dropped. 204 when the call is live here — also when nothing was
//!   recording (the call's recordings are stopped either way: idempotent); a call held
//!   by another node of a fleet is passed to it, as `DELETE Call/{uuid}/`; else 404.

use super::auth::Authenticated;
use super::error::{new_api_id, ApiError};
use super::query::{Params, DEFAULT_LIMIT};
use super::ApiState;
use crate::record::call::format_cdr_time;
use crate::store::{Recording, RecordingQuery};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::io::SeekFrom;
use tokio::io::AsyncSeekExt;

/// One recording as the API shows it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct RecordingJson {
    pub recording_id: String,
    pub call_uuid: String,
    pub recording_format: String,
    pub recording_type: &'static str,
    pub recording_duration_ms: u64,
    pub recording_start_ms: i64,
    pub recording_end_ms: i64,
    pub recording_url: String,
    pub add_time: String,
    pub from_number: String,
    pub to_number: String,
    pub resource_uri: String,
}

/// `GET Recording/{id}/`.
#[derive(Debug, Serialize)]
pub struct RecordingResponse {
    pub api_id: String,
    #[serde(flatten)]
    pub recording: RecordingJson,
}

/// `GET Recording/`.
#[derive(Debug, Serialize)]
pub struct RecordingListResponse {
    pub api_id: String,
    pub meta: super::cdrs::Meta,
    pub objects: Vec<RecordingJson>,
}

fn epoch_ms(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The API path of a recording (without the public base), e.g.
/// `/api/v1/Account/MA1/Recording/<id>/`.
fn resource_uri(account_id: &str, recording_id: &str) -> String {
    format!(
        "/api/v1/Account/{}/Recording/{}/",
        super::cdrs::path_segment(account_id),
        super::cdrs::path_segment(recording_id)
    )
}

/// `RecordUrl` (SPEC §12.2): where the application downloads the audio.
pub fn recording_url(public_base: &str, account_id: &str, r: &Recording) -> String {
    format!(
        "{public_base}/api/v1/Account/{}/Recording/{}.{}",
        super::cdrs::path_segment(account_id),
        super::cdrs::path_segment(&r.recording_id),
        r.format
    )
}

impl RecordingJson {
    fn new(public_base: &str, r: &Recording) -> Self {
        RecordingJson {
            recording_id: r.recording_id.clone(),
            call_uuid: r.call_uuid.clone(),
            recording_format: r.format.clone(),
            recording_type: "call",
            recording_duration_ms: r.duration_ms,
            recording_start_ms: epoch_ms(r.start),
            recording_end_ms: epoch_ms(r.end),
            recording_url: recording_url(public_base, &r.account_id, r),
            add_time: format_cdr_time(r.created_at),
            from_number: r.from_number.clone(),
            to_number: r.to_number.clone(),
            resource_uri: resource_uri(&r.account_id, &r.recording_id),
        }
    }
}

/// `GET Recording/` and `GET Recording`.
pub async fn list(
    auth: Authenticated,
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Json<RecordingListResponse>, ApiError> {
    let params = Params::parse(query.as_deref(), &["limit", "offset", "call_uuid"])?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    let offset = params.offset.unwrap_or(0);
    let page = state
        .store
        .recordings(
            &auth.account_id,
            RecordingQuery {
                call_uuid: params.call_uuid.clone(),
                limit,
                offset,
            },
        )
        .await
        .map_err(|e| ApiError::store(&e))?;
    let base = &*state.public_base;
    let mut meta = super::cdrs::meta_for(&auth.account_id, "Recording", limit, offset, page.total);
    if let Some(call) = &params.call_uuid {
        // Paging links keep the filter.
        let filter = format!("&call_uuid={}", super::cdrs::path_segment(call));
        meta.next = meta.next.map(|p| p + &filter);
        meta.previous = meta.previous.map(|p| p + &filter);
    }
    Ok(Json(RecordingListResponse {
        api_id: new_api_id(),
        meta,
        objects: page
            .recordings
            .iter()
            .map(|r| RecordingJson::new(base, r))
            .collect(),
    }))
}

/// `GET Recording/{id}/`, `GET Recording/{id}` (the recording) and
/// `GET Recording/{id}.{ext}` (its audio).
pub async fn get(
    auth: Authenticated,
    State(state): State<ApiState>,
    Path((_, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    if let Some((id, ext)) = audio_name(&id) {
        let r = find(&state, &auth.account_id, id).await?;
        if r.format != ext {
            return Err(ApiError::not_found(format!(
                "recording {id} is {}, not {ext}: ask Recording/{id}.{}",
                r.format, r.format
            )));
        }
        return audio(&r, headers.get(header::RANGE)).await;
    }
    let r = find(&state, &auth.account_id, &id).await?;
    let base = &*state.public_base;
    Ok(Json(RecordingResponse {
        api_id: new_api_id(),
        recording: RecordingJson::new(base, &r),
    })
    .into_response())
}

/// `DELETE Recording/{id}/`: the row, then the file.
pub async fn delete(
    auth: Authenticated,
    State(state): State<ApiState>,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let deleted = state
        .store
        .delete_recording(&auth.account_id, &id)
        .await
        .map_err(|e| ApiError::store(&e))?;
    let Some(r) = deleted else {
        return Err(not_found(&id));
    };
    match tokio::fs::remove_file(&r.file_path).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(recording_id = %id, path = %r.file_path, "deleted recording: its file was already gone");
        }
        Err(e) => {
            // The row is gone; the file stays behind. Loud, so an operator cleans up.
            tracing::error!(recording_id = %id, path = %r.file_path, error = %e, "deleted recording: cannot remove its file");
        }
    }
    tracing::info!(recording_id = %id, account = %auth.account_id, "recording deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE Call/{uuid}/Record/` (see the module docs).
pub async fn stop_call_recordings(
    auth: Authenticated,
    State(state): State<ApiState>,
    Path((_, call_uuid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let asked = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        state.live.stop_recordings(&auth.account_id, &call_uuid),
    )
    .await;
    match asked {
        Ok(Some(Err(why))) => {
            tracing::warn!(%call_uuid, account = %auth.account_id, reason = %why, "REST: the call's recordings could not be stopped");
            Err(ApiError::new(StatusCode::NOT_IMPLEMENTED, why))
        }
        Ok(Some(Ok(recording))) => {
            tracing::info!(%call_uuid, account = %auth.account_id, recording, "REST: the call's recordings stopped");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Ok(None) => {
            if let Some(fleet) = &state.fleet {
                if let Some(answer) = fleet
                    .forward_to(
                        axum::http::Method::DELETE,
                        &auth.account_id,
                        &call_uuid,
                        "Record/",
                        None,
                        &headers,
                    )
                    .await
                {
                    return answer;
                }
            }
            Err(ApiError::not_found(format!(
                "call {call_uuid} is not live (unknown, or already ended)"
            )))
        }
        Err(_) => {
            tracing::error!(%call_uuid, "the call's task did not take the REST stop in time");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("call {call_uuid} did not respond to the request; retry"),
            ))
        }
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("recording {id} not found"))
}

async fn find(state: &ApiState, account_id: &str, id: &str) -> Result<Recording, ApiError> {
    match state.store.recording(account_id, id).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(not_found(id)),
        Err(e) => Err(ApiError::store(&e)),
    }
}

/// `<id>.wav` / `<id>.mp3` → (id, ext); anything else is a recording id.
fn audio_name(name: &str) -> Option<(&str, &str)> {
    let (id, ext) = name.rsplit_once('.')?;
    (matches!(ext, "wav" | "mp3") && !id.is_empty()).then_some((id, ext))
}

fn content_type(format: &str) -> &'static str {
    match format {
        "mp3" => "audio/mpeg",
        _ => "audio/wav",
    }
}

/// A `Range` header, as far as it matters here.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    Whole,
    /// Inclusive byte offsets, within the file.
    Part(u64, u64),
    Unsatisfiable,
}

/// Reads one `bytes=` range against a file of `size` bytes (RFC 9110 §14.1.2).
fn wanted(range: Option<&HeaderValue>, size: u64) -> Wanted {
    let Some(spec) = range
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Wanted::Whole;
    };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| s.parse::<u64>().ok();
    match (first.is_empty(), last.is_empty()) {
        // `-n`: the last n bytes.
        (true, false) => match number(last) {
            Some(0) => Wanted::Unsatisfiable,
            Some(n) if size > 0 => Wanted::Part(size.saturating_sub(n), size - 1),
            Some(_) => Wanted::Unsatisfiable,
            None => Wanted::Whole,
        },
        // `a-`: from a to the end.
        (false, true) => match number(first) {
            Some(a) if a < size => Wanted::Part(a, size - 1),
            Some(_) => Wanted::Unsatisfiable,
            None => Wanted::Whole,
        },
        (false, false) => match (number(first), number(last)) {
            (Some(a), Some(b)) if a <= b && a < size => Wanted::Part(a, b.min(size - 1)),
            (Some(a), Some(b)) if a <= b => Wanted::Unsatisfiable,
            _ => Wanted::Whole,
        },
        (true, true) => Wanted::Whole,
    }
}

async fn audio(r: &Recording, range: Option<&HeaderValue>) -> Result<Response, ApiError> {
    let gone = |e: std::io::Error| {
        tracing::warn!(recording_id = %r.recording_id, path = %r.file_path, error = %e, "recording's file cannot be read");
        ApiError::not_found(format!(
            "the audio of recording {} is not available",
            r.recording_id
        ))
    };
    let mut file = tokio::fs::File::open(&r.file_path).await.map_err(gone)?;
    let size = file.metadata().await.map_err(gone)?.len();
    let (status, first, last) = match wanted(range, size) {
        Wanted::Unsatisfiable => {
            let mut response = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("the range is outside the recording's {size} bytes"),
            )
            .into_response();
            insert(
                &mut response,
                header::CONTENT_RANGE,
                format!("bytes */{size}"),
            );
            return Ok(response);
        }
        Wanted::Whole => (StatusCode::OK, 0, size.saturating_sub(1)),
        Wanted::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b),
    };
    let len = if size == 0 { 0 } else { last - first + 1 };
    file.seek(SeekFrom::Start(first)).await.map_err(gone)?;
    let body = FileBody {
        file,
        left: len,
        recording_id: r.recording_id.clone(),
    };
    let mut response = (status, axum::body::Body::new(body)).into_response();
    insert(&mut response, header::CONTENT_LENGTH, len.to_string());
    insert(
        &mut response,
        header::CONTENT_TYPE,
        content_type(&r.format).to_string(),
    );
    insert(&mut response, header::ACCEPT_RANGES, "bytes".to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        insert(
            &mut response,
            header::CONTENT_RANGE,
            format!("bytes {first}-{last}/{size}"),
        );
    }
    Ok(response)
}

/// `left` bytes of `file` from where it stands, as a response body, one chunk at a time.
/// A file that ends early (truncated while being sent) ends the body with an error, so
/// the client sees a short response rather than a wrong one.
struct FileBody {
    file: tokio::fs::File,
    left: u64,
    recording_id: String,
}

const CHUNK: usize = 64 * 1024;

impl axum::body::HttpBody for FileBody {
    type Data = axum::body::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(self.left).unwrap_or(CHUNK).min(CHUNK);
        let mut chunk = vec![0u8; want];
        let mut buf = tokio::io::ReadBuf::new(&mut chunk);
        match tokio::io::AsyncRead::poll_read(std::pin::Pin::new(&mut self.file), cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len();
                if n == 0 {
                    tracing::warn!(recording_id = %self.recording_id, left = self.left, "recording's file ended early while being sent");
                    return Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the recording's file ended early",
                    ))));
                }
                chunk.truncate(n);
                self.left -= n as u64;
                Poll::Ready(Some(Ok(http_body::Frame::data(chunk.into()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

fn insert(response: &mut Response, name: header::HeaderName, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(range: &str, size: u64) -> Wanted {
        wanted(Some(&HeaderValue::from_str(range).unwrap()), size)
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(wanted(None, 100), Wanted::Whole);
        assert_eq!(w("bytes=0-9", 100), Wanted::Part(0, 9));
        assert_eq!(w("bytes=90-200", 100), Wanted::Part(90, 99));
        assert_eq!(w("bytes=50-", 100), Wanted::Part(50, 99));
        assert_eq!(w("bytes=-10", 100), Wanted::Part(90, 99));
        assert_eq!(w("bytes=-500", 100), Wanted::Part(0, 99));
        assert_eq!(w("bytes=100-", 100), Wanted::Unsatisfiable);
        assert_eq!(w("bytes=100-200", 100), Wanted::Unsatisfiable);
        assert_eq!(w("bytes=-0", 100), Wanted::Unsatisfiable);
        // Not one byte range: ignored.
        assert_eq!(w("bytes=0-1,5-6", 100), Wanted::Whole);
        assert_eq!(w("items=0-1", 100), Wanted::Whole);
        assert_eq!(w("bytes=9-1", 100), Wanted::Whole);
        assert_eq!(w("bytes=x-1", 100), Wanted::Whole);
    }

    #[test]
    fn audio_names() {
        assert_eq!(audio_name("abc.wav"), Some(("abc", "wav")));
        assert_eq!(audio_name("abc.mp3"), Some(("abc", "mp3")));
        assert_eq!(audio_name("abc"), None);
        assert_eq!(audio_name("abc.ogg"), None);
        assert_eq!(audio_name(".wav"), None);
    }
}
