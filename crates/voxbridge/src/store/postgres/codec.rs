//! Between PostgreSQL rows and the store's domain types, and from PostgreSQL errors to
//! [`StoreError`]. The column lists match the SQLite store's, so both stores read the
//! same shape; times are BIGINT nanoseconds (see the migration).

use crate::cause::HangupCause;
use crate::document::model::HttpMethod;
use crate::record::call::{CallRecord, Direction, HangupSource};
use crate::record::callback::CallbackKind;
use crate::store::recording::{Recording, RecordingEndReason, RecordingKind};
use crate::store::{
    DeliveryState, DeliveryStatus, LiveCall, PendingCallback, StoreError, StoreErrorKind,
};
use time::OffsetDateTime;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

pub type Result<T> = std::result::Result<T, StoreError>;

/// Nanoseconds since the epoch (exact round trip; good to 2262).
pub fn nanos(t: OffsetDateTime) -> i64 {
    let n = t.unix_timestamp_nanos();
    n.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

pub fn time_from(n: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(n as i128)
        .map_err(|e| invalid(format!("time {n} out of range: {e}")))
}

fn opt_time(n: Option<i64>) -> Result<Option<OffsetDateTime>> {
    n.map(time_from).transpose()
}

fn invalid(message: String) -> StoreError {
    StoreError::new(StoreErrorKind::Invalid, message)
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T> {
    row.try_get(idx).map_err(store_error)
}

fn u16_from(v: i32, what: &str) -> Result<u16> {
    u16::try_from(v).map_err(|_| invalid(format!("{what} {v} out of range")))
}

fn u32_from(v: i32, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| invalid(format!("{what} {v} out of range")))
}

fn u64_from(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| invalid(format!("{what} {v} is negative")))
}

/// Whole seconds (or counts) are `u64` in Rust and BIGINT in PostgreSQL.
pub fn i64_from_u64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub fn direction_from(text: &str) -> Result<Direction> {
    match text {
        "inbound" => Ok(Direction::Inbound),
        "outbound" => Ok(Direction::Outbound),
        other => Err(invalid(format!("unknown direction {other:?}"))),
    }
}

fn kind_from(text: &str) -> Result<CallbackKind> {
    CallbackKind::parse(text).ok_or_else(|| invalid(format!("unknown callback kind {text:?}")))
}

fn method_from(text: &str) -> Result<HttpMethod> {
    HttpMethod::parse(text).ok_or_else(|| invalid(format!("unknown method {text:?}")))
}

pub const LIVE_COLUMNS: &str = "call_uuid, account_id, direction, from_number, to_number, \
     caller_name, forwarded_from, start_time, answer_time, scheduled_hangup_at, hangup_url, \
     status_callback_url, switch_name";

pub fn live_call(row: &Row) -> Result<LiveCall> {
    Ok(LiveCall {
        call_uuid: get(row, 0)?,
        account_id: get(row, 1)?,
        direction: direction_from(get(row, 2)?)?,
        from: get(row, 3)?,
        to: get(row, 4)?,
        caller_name: get(row, 5)?,
        forwarded_from: get(row, 6)?,
        start_time: time_from(get(row, 7)?)?,
        answer_time: opt_time(get(row, 8)?)?,
        scheduled_hangup_at: opt_time(get(row, 9)?)?,
        hangup_url: get(row, 10)?,
        status_callback_url: get(row, 11)?,
        switch_name: get(row, 12)?,
    })
}

pub const CDR_COLUMNS: &str = "call_uuid, account_id, direction, from_number, to_number, \
     caller_name, forwarded_from, start_time, answer_time, end_time, duration_secs, \
     bill_duration_secs, hangup_cause, hangup_cause_code, hangup_cause_name, hangup_source, \
     hangup_reason, sip_status, caller_abandoned, notes";

pub fn call_record(row: &Row) -> Result<CallRecord> {
    let source: &str = get(row, 15)?;
    let notes: &str = get(row, 19)?;
    Ok(CallRecord {
        call_uuid: get(row, 0)?,
        account_id: get(row, 1)?,
        direction: direction_from(get(row, 2)?)?,
        from: get(row, 3)?,
        to: get(row, 4)?,
        caller_name: get(row, 5)?,
        forwarded_from: get(row, 6)?,
        start_time: time_from(get(row, 7)?)?,
        answer_time: opt_time(get(row, 8)?)?,
        end_time: time_from(get(row, 9)?)?,
        duration_secs: u64_from(get(row, 10)?, "duration_secs")?,
        bill_duration_secs: u64_from(get(row, 11)?, "bill_duration_secs")?,
        hangup_cause: HangupCause(u16_from(get(row, 12)?, "hangup_cause")?),
        hangup_cause_code: u16_from(get(row, 13)?, "hangup_cause_code")?,
        hangup_cause_name: get(row, 14)?,
        hangup_source: HangupSource::parse(source)
            .ok_or_else(|| invalid(format!("unknown hangup source {source:?}")))?,
        hangup_reason: get(row, 16)?,
        sip_status: get::<Option<i32>>(row, 17)?
            .map(|v| u16_from(v, "sip_status"))
            .transpose()?,
        caller_abandoned: get(row, 18)?,
        notes: serde_json::from_str(notes)
            .map_err(|e| invalid(format!("notes are not a JSON list: {e}")))?,
    })
}

pub fn notes_json(notes: &[String]) -> String {
    serde_json::to_string(notes).unwrap_or_else(|_| "[]".into())
}

pub const DELIVERY_COLUMNS: &str = "delivery_id, kind, url, method, status, attempts, \
     last_status, last_error, created_at, last_attempt_at, next_attempt_at, delivered_at";

pub fn delivery_status(row: &Row) -> Result<DeliveryStatus> {
    let status: &str = get(row, 4)?;
    let status = DeliveryState::parse(status)
        .ok_or_else(|| invalid(format!("unknown delivery status {status:?}")))?;
    Ok(DeliveryStatus {
        delivery_id: get(row, 0)?,
        kind: kind_from(get(row, 1)?)?,
        url: get(row, 2)?,
        method: method_from(get(row, 3)?)?,
        status,
        attempts: u32_from(get(row, 5)?, "attempts")?,
        last_status: get::<Option<i32>>(row, 6)?
            .map(|v| u16_from(v, "last_status"))
            .transpose()?,
        last_error: get(row, 7)?,
        created_at: time_from(get(row, 8)?)?,
        last_attempt_at: opt_time(get(row, 9)?)?,
        next_attempt_at: if status == DeliveryState::Pending {
            Some(time_from(get(row, 10)?)?)
        } else {
            None
        },
        delivered_at: opt_time(get(row, 11)?)?,
    })
}

pub const PENDING_COLUMNS: &str = "delivery_id, call_uuid, account_id, kind, method, url, \
     content_type, body, attempts, created_at, receiver, next_attempt_at, id";

pub fn pending_callback(row: &Row) -> Result<PendingCallback> {
    Ok(PendingCallback {
        delivery_id: get(row, 0)?,
        call_uuid: get(row, 1)?,
        account_id: get(row, 2)?,
        kind: kind_from(get(row, 3)?)?,
        method: method_from(get(row, 4)?)?,
        url: get(row, 5)?,
        content_type: get(row, 6)?,
        body: get(row, 7)?,
        attempts: u32_from(get(row, 8)?, "attempts")?,
        created_at: time_from(get(row, 9)?)?,
        receiver: get(row, 10)?,
    })
}

/// Classifies a PostgreSQL error by what the caller should do about it. A lost or refused
/// connection is I/O (transient: the pool reconnects); lock conflicts, serialization
/// failures and a server at its connection limit are busy; a constraint is the write's own
/// fault and never retried.
pub fn store_error(e: tokio_postgres::Error) -> StoreError {
    let kind = match e.code() {
        Some(code) => sql_state_kind(code),
        // No SQLSTATE: the connection broke, could not be made, or a value did not
        // convert.
        None if e.is_closed() => StoreErrorKind::Io,
        None => {
            let text = e.to_string();
            if text.contains("error deserializing") || text.contains("error serializing") {
                StoreErrorKind::Invalid
            } else {
                StoreErrorKind::Io
            }
        }
    };
    StoreError::new(kind, error_chain(&e))
}

fn sql_state_kind(code: &SqlState) -> StoreErrorKind {
    let class = &code.code()[..2.min(code.code().len())];
    if *code == SqlState::DISK_FULL || *code == SqlState::OUT_OF_MEMORY {
        StoreErrorKind::DiskFull
    } else if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED {
        StoreErrorKind::Corrupt
    } else if *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::LOCK_NOT_AVAILABLE
        || *code == SqlState::TOO_MANY_CONNECTIONS
        || *code == SqlState::CANNOT_CONNECT_NOW
        || *code == SqlState::QUERY_CANCELED
    {
        StoreErrorKind::Busy
    } else {
        match class {
            "23" => StoreErrorKind::Constraint,
            // connection exception, insufficient resources, operator intervention
            // (admin shutdown, crash shutdown), system error
            "08" | "53" | "57" | "58" => StoreErrorKind::Io,
            "22" => StoreErrorKind::Invalid,
            _ => StoreErrorKind::Other,
        }
    }
}

/// The error and its sources, one line (tokio-postgres puts the server's message and
/// the I/O cause in the source chain).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let line = s.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = s.source();
    }
    text
}

/// The columns [`recording`] reads, in its order (also the INSERT order); the same as
/// the SQLite store's.
pub const RECORDING_COLUMNS: &str = "recording_id, call_uuid, account_id, kind, file_path, \
     format, duration_ms, start_time, end_time, end_reason, from_number, to_number, created_at";

pub fn recording(row: &Row) -> Result<Recording> {
    let kind: String = get(row, 3)?;
    let end_reason: String = get(row, 9)?;
    Ok(Recording {
        recording_id: get(row, 0)?,
        call_uuid: get(row, 1)?,
        account_id: get(row, 2)?,
        kind: RecordingKind::parse(&kind)
            .ok_or_else(|| invalid(format!("unknown recording kind {kind:?}")))?,
        file_path: get(row, 4)?,
        format: get(row, 5)?,
        duration_ms: u64_from(get(row, 6)?, "duration_ms")?,
        start: time_from(get(row, 7)?)?,
        end: time_from(get(row, 8)?)?,
        end_reason: RecordingEndReason::parse(&end_reason)
            .ok_or_else(|| invalid(format!("unknown recording end reason {end_reason:?}")))?,
        from_number: get(row, 10)?,
        to_number: get(row, 11)?,
        created_at: time_from(get(row, 12)?)?,
    })
}
