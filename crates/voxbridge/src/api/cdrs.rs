//! Finished calls on the REST API (SPEC §6): `GET Call/{call_uuid}/` (one CDR) and
//! `GET Call/` (the account's CDRs, newest first, paged).
//!
//! Field names are exactly SPEC §6's and nothing more: Vobiz's Fern SDK parses responses
//! with pydantic `extra="forbid"`, so an extra field breaks it. Formats:
//! - times `YYYY-MM-DD HH:MM:SS` in UTC, as in the hangup callback (StartTime/EndTime);
//!   `answer_time` is `null` for a call never answered (the callback sends an empty
//!   AnswerTime; JSON has a proper "absent");
//! - `call_duration`/`bill_duration` whole seconds, `hangup_cause_code` the Q.850 number;
//! - `callback_deliveries[].kind` `hangup`, `status` or `post_call`; `.status` `pending`,
//!   `delivered` or `failed`; `.attempts` the attempts made so far.
//!
//! The list's `meta` follows Plivo/Vobiz: `limit`, `offset`, `total_count`, and `next` /
//! `previous` as paths of the adjacent pages (`null` at either end).

use super::error::{new_api_id, ApiError};
use super::query::{Params, DEFAULT_LIMIT};
use super::ApiState;
use crate::record::call::format_cdr_time;
use crate::store::{DeliveryStatus, StoredCdr};
use serde::Serialize;

/// One CDR as the API shows it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct CdrJson {
    pub call_uuid: String,
    pub direction: &'static str,
    pub from_number: String,
    pub to_number: String,
    pub initiation_time: String,
    pub answer_time: Option<String>,
    pub end_time: String,
    pub call_duration: u64,
    pub bill_duration: u64,
    pub hangup_cause: &'static str,
    pub hangup_cause_code: u16,
    pub hangup_cause_name: String,
    pub hangup_source: &'static str,
    pub hangup_reason: String,
    pub callback_deliveries: Vec<DeliveryJson>,
}

/// The delivery status of one callback of the call.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct DeliveryJson {
    pub kind: &'static str,
    pub url: String,
    pub status: &'static str,
    pub attempts: u32,
}

/// `GET Call/{call_uuid}/`: the CDR with the response's `api_id` first.
#[derive(Debug, Serialize)]
pub struct CdrResponse {
    pub api_id: String,
    #[serde(flatten)]
    pub cdr: CdrJson,
}

/// `GET Call/`.
#[derive(Debug, Serialize)]
pub struct CdrListResponse {
    pub api_id: String,
    pub meta: Meta,
    pub objects: Vec<CdrJson>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Meta {
    pub limit: u32,
    pub offset: u64,
    pub total_count: u64,
    pub next: Option<String>,
    pub previous: Option<String>,
}

impl From<&StoredCdr> for CdrJson {
    fn from(stored: &StoredCdr) -> Self {
        let r = &stored.record;
        CdrJson {
            call_uuid: r.call_uuid.clone(),
            direction: r.direction.as_str(),
            from_number: r.from.clone(),
            to_number: r.to.clone(),
            initiation_time: format_cdr_time(r.start_time),
            answer_time: r.answer_time.map(format_cdr_time),
            end_time: format_cdr_time(r.end_time),
            call_duration: r.duration_secs,
            bill_duration: r.bill_duration_secs,
            hangup_cause: r.hangup_cause.name(),
            hangup_cause_code: r.hangup_cause_code,
            hangup_cause_name: r.hangup_cause_name.clone(),
            hangup_source: r.hangup_source.as_str(),
            hangup_reason: r.hangup_reason.clone(),
            callback_deliveries: stored.deliveries.iter().map(DeliveryJson::from).collect(),
        }
    }
}

impl From<&DeliveryStatus> for DeliveryJson {
    fn from(d: &DeliveryStatus) -> Self {
        DeliveryJson {
            kind: d.kind.as_str(),
            url: d.url.clone(),
            status: d.status.as_str(),
            attempts: d.attempts,
        }
    }
}

/// The CDR of one call of the account. A call still live is 404 too (it has no CDR
/// yet), with a message pointing at `?status=live`.
pub async fn one(
    state: &ApiState,
    account_id: &str,
    call_uuid: &str,
) -> Result<CdrResponse, ApiError> {
    match state.store.cdr(account_id, call_uuid).await {
        Ok(Some(stored)) => Ok(CdrResponse {
            api_id: new_api_id(),
            cdr: CdrJson::from(&stored),
        }),
        Ok(None) => match state.store.live_call(account_id, call_uuid).await {
            Ok(Some(_)) => Err(ApiError::not_found(format!(
                "call {call_uuid} has not ended yet, so it has no record; ask \
                 Call/{call_uuid}/?status=live for its live details"
            ))),
            Ok(None) => Err(ApiError::not_found(format!("call {call_uuid} not found"))),
            Err(e) => Err(ApiError::store(&e)),
        },
        Err(e) => Err(ApiError::store(&e)),
    }
}

/// One page of the account's CDRs, newest first.
pub async fn list(
    state: &ApiState,
    account_id: &str,
    params: &Params,
) -> Result<CdrListResponse, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    let offset = params.offset.unwrap_or(0);
    let page = state
        .store
        .cdrs(account_id, limit, offset)
        .await
        .map_err(|e| ApiError::store(&e))?;
    Ok(CdrListResponse {
        api_id: new_api_id(),
        meta: meta(account_id, limit, offset, page.total),
        objects: page.cdrs.iter().map(CdrJson::from).collect(),
    })
}

fn meta(account_id: &str, limit: u32, offset: u64, total: u64) -> Meta {
    let account = path_segment(account_id);
    let page =
        |offset: u64| format!("/api/v1/Account/{account}/Call/?limit={limit}&offset={offset}");
    let end = offset.saturating_add(u64::from(limit));
    Meta {
        limit,
        offset,
        total_count: total,
        next: (end < total).then(|| page(end)),
        previous: (offset > 0).then(|| page(offset.saturating_sub(u64::from(limit)))),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_links_the_adjacent_pages() {
        let m = meta("MA1", 20, 0, 45);
        assert_eq!(
            m.next.as_deref(),
            Some("/api/v1/Account/MA1/Call/?limit=20&offset=20")
        );
        assert_eq!(m.previous, None);
        let m = meta("MA1", 20, 40, 45);
        assert_eq!(m.next, None);
        assert_eq!(
            m.previous.as_deref(),
            Some("/api/v1/Account/MA1/Call/?limit=20&offset=20")
        );
        let m = meta("MA1", 20, 10, 45);
        assert_eq!(
            m.previous.as_deref(),
            Some("/api/v1/Account/MA1/Call/?limit=20&offset=0")
        );
        assert_eq!(path_segment("MA 1/é"), "MA%201%2F%C3%A9");
        let m = meta("MA1", 20, 0, 0);
        assert_eq!((m.next, m.previous), (None, None));
    }
}
