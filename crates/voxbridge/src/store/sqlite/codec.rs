//! Between SQLite rows and the store's domain types, and from SQLite errors to
//! [`StoreError`]. Everything backend-specific about values lives here.

use crate::cause::HangupCause;
use crate::document::model::HttpMethod;
use crate::record::call::{CallRecord, Direction, HangupSource};
use crate::record::callback::CallbackKind;
use crate::store::{
    DeliveryState, DeliveryStatus, LiveCall, PendingCallback, Recording, RecordingEndReason,
    RecordingKind, StoreError, StoreErrorKind,
};
use rusqlite::ffi::ErrorCode;
use rusqlite::Row;
use time::OffsetDateTime;

/// Times are stored as nanoseconds since the epoch (exact round trip; good to 2262).
pub fn nanos(t: OffsetDateTime) -> i64 {
    let n = t.unix_timestamp_nanos();
    n.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

pub fn time_from(n: i64) -> rusqlite::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(n as i128)
        .map_err(|e| conversion(format!("time {n} out of range: {e}")))
}

fn opt_time(n: Option<i64>) -> rusqlite::Result<Option<OffsetDateTime>> {
    n.map(time_from).transpose()
}

fn conversion(message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::new(std::io::Error::other(message)),
    )
}

pub fn direction_from(text: &str) -> rusqlite::Result<Direction> {
    match text {
        "inbound" => Ok(Direction::Inbound),
        "outbound" => Ok(Direction::Outbound),
        other => Err(conversion(format!("unknown direction {other:?}"))),
    }
}

fn u16_from(v: i64, what: &str) -> rusqlite::Result<u16> {
    u16::try_from(v).map_err(|_| conversion(format!("{what} {v} out of range")))
}

fn u64_from(v: i64, what: &str) -> rusqlite::Result<u64> {
    u64::try_from(v).map_err(|_| conversion(format!("{what} {v} is negative")))
}

fn u32_from(v: i64, what: &str) -> rusqlite::Result<u32> {
    u32::try_from(v).map_err(|_| conversion(format!("{what} {v} out of range")))
}

/// Whole seconds (or counts) are `u64` in Rust and `INTEGER` (i64) in SQLite.
pub fn i64_from_u64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub const LIVE_COLUMNS: &str = "call_uuid, account_id, direction, from_number, to_number, \
     caller_name, forwarded_from, start_time, answer_time, scheduled_hangup_at, hangup_url, \
     status_callback_url, switch_name";

pub fn live_call(row: &Row<'_>) -> rusqlite::Result<LiveCall> {
    Ok(LiveCall {
        call_uuid: row.get(0)?,
        account_id: row.get(1)?,
        direction: direction_from(&row.get::<_, String>(2)?)?,
        from: row.get(3)?,
        to: row.get(4)?,
        caller_name: row.get(5)?,
        forwarded_from: row.get(6)?,
        start_time: time_from(row.get(7)?)?,
        answer_time: opt_time(row.get(8)?)?,
        scheduled_hangup_at: opt_time(row.get(9)?)?,
        hangup_url: row.get(10)?,
        status_callback_url: row.get(11)?,
        switch_name: row.get(12)?,
    })
}

pub const CDR_COLUMNS: &str = "call_uuid, account_id, direction, from_number, to_number, \
     caller_name, forwarded_from, start_time, answer_time, end_time, duration_secs, \
     bill_duration_secs, hangup_cause, hangup_cause_code, hangup_cause_name, hangup_source, \
     hangup_reason, sip_status, caller_abandoned, notes";

pub fn call_record(row: &Row<'_>) -> rusqlite::Result<CallRecord> {
    let source: String = row.get(15)?;
    let notes: String = row.get(19)?;
    Ok(CallRecord {
        call_uuid: row.get(0)?,
        account_id: row.get(1)?,
        direction: direction_from(&row.get::<_, String>(2)?)?,
        from: row.get(3)?,
        to: row.get(4)?,
        caller_name: row.get(5)?,
        forwarded_from: row.get(6)?,
        start_time: time_from(row.get(7)?)?,
        answer_time: opt_time(row.get(8)?)?,
        end_time: time_from(row.get(9)?)?,
        duration_secs: u64_from(row.get(10)?, "duration_secs")?,
        bill_duration_secs: u64_from(row.get(11)?, "bill_duration_secs")?,
        hangup_cause: HangupCause(u16_from(row.get(12)?, "hangup_cause")?),
        hangup_cause_code: u16_from(row.get(13)?, "hangup_cause_code")?,
        hangup_cause_name: row.get(14)?,
        hangup_source: HangupSource::parse(&source)
            .ok_or_else(|| conversion(format!("unknown hangup source {source:?}")))?,
        hangup_reason: row.get(16)?,
        sip_status: row
            .get::<_, Option<i64>>(17)?
            .map(|v| u16_from(v, "sip_status"))
            .transpose()?,
        caller_abandoned: row.get::<_, i64>(18)? != 0,
        notes: serde_json::from_str(&notes)
            .map_err(|e| conversion(format!("notes are not a JSON list: {e}")))?,
    })
}

/// A CDR row read as `SELECT {CDR_COLUMNS}, parent_call_uuid`.
pub fn call_record_with_parent(row: &Row<'_>) -> rusqlite::Result<(CallRecord, Option<String>)> {
    Ok((call_record(row)?, row.get(20)?))
}

/// The columns [`recording`] reads, in its order (also the INSERT order).
pub const RECORDING_COLUMNS: &str = "recording_id, call_uuid, account_id, kind, file_path, \
     format, duration_ms, start_time, end_time, end_reason, from_number, to_number, created_at";

pub fn recording(row: &Row<'_>) -> rusqlite::Result<Recording> {
    let kind: String = row.get(3)?;
    let end_reason: String = row.get(9)?;
    Ok(Recording {
        recording_id: row.get(0)?,
        call_uuid: row.get(1)?,
        account_id: row.get(2)?,
        kind: RecordingKind::parse(&kind)
            .ok_or_else(|| conversion(format!("unknown recording kind {kind:?}")))?,
        file_path: row.get(4)?,
        format: row.get(5)?,
        duration_ms: u64_from(row.get(6)?, "duration_ms")?,
        start: time_from(row.get(7)?)?,
        end: time_from(row.get(8)?)?,
        end_reason: RecordingEndReason::parse(&end_reason)
            .ok_or_else(|| conversion(format!("unknown recording end reason {end_reason:?}")))?,
        from_number: row.get(10)?,
        to_number: row.get(11)?,
        created_at: time_from(row.get(12)?)?,
    })
}

pub fn notes_json(notes: &[String]) -> String {
    serde_json::to_string(notes).unwrap_or_else(|_| "[]".into())
}

fn kind_from(text: &str) -> rusqlite::Result<CallbackKind> {
    CallbackKind::parse(text).ok_or_else(|| conversion(format!("unknown callback kind {text:?}")))
}

fn method_from(text: &str) -> rusqlite::Result<HttpMethod> {
    HttpMethod::parse(text).ok_or_else(|| conversion(format!("unknown method {text:?}")))
}

pub const DELIVERY_COLUMNS: &str = "delivery_id, kind, url, method, status, attempts, \
     last_status, last_error, created_at, last_attempt_at, next_attempt_at, delivered_at";

pub fn delivery_status(row: &Row<'_>) -> rusqlite::Result<DeliveryStatus> {
    let status: String = row.get(4)?;
    let status = DeliveryState::parse(&status)
        .ok_or_else(|| conversion(format!("unknown delivery status {status:?}")))?;
    Ok(DeliveryStatus {
        delivery_id: row.get(0)?,
        kind: kind_from(&row.get::<_, String>(1)?)?,
        url: row.get(2)?,
        method: method_from(&row.get::<_, String>(3)?)?,
        status,
        attempts: u32_from(row.get(5)?, "attempts")?,
        last_status: row
            .get::<_, Option<i64>>(6)?
            .map(|v| u16_from(v, "last_status"))
            .transpose()?,
        last_error: row.get(7)?,
        created_at: time_from(row.get(8)?)?,
        last_attempt_at: opt_time(row.get(9)?)?,
        next_attempt_at: if status == DeliveryState::Pending {
            Some(time_from(row.get(10)?)?)
        } else {
            None
        },
        delivered_at: opt_time(row.get(11)?)?,
    })
}

pub const PENDING_COLUMNS: &str = "delivery_id, call_uuid, account_id, kind, method, url, \
     content_type, body, attempts, created_at, receiver, next_attempt_at, id";

pub fn pending_callback(row: &Row<'_>) -> rusqlite::Result<PendingCallback> {
    Ok(PendingCallback {
        delivery_id: row.get(0)?,
        call_uuid: row.get(1)?,
        account_id: row.get(2)?,
        kind: kind_from(&row.get::<_, String>(3)?)?,
        method: method_from(&row.get::<_, String>(4)?)?,
        url: row.get(5)?,
        content_type: row.get(6)?,
        body: row.get(7)?,
        attempts: u32_from(row.get(8)?, "attempts")?,
        created_at: time_from(row.get(9)?)?,
        receiver: row.get(10)?,
    })
}

/// Classifies a SQLite error by what the caller should do about it.
pub fn store_error(e: rusqlite::Error) -> StoreError {
    let kind = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreErrorKind::Busy,
        Some(ErrorCode::DiskFull) => StoreErrorKind::DiskFull,
        Some(
            ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied
            | ErrorCode::ReadOnly
            | ErrorCode::FileLockingProtocolFailed
            | ErrorCode::NoLargeFileSupport
            | ErrorCode::OutOfMemory,
        ) => StoreErrorKind::Io,
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreErrorKind::Corrupt,
        Some(ErrorCode::ConstraintViolation) => StoreErrorKind::Constraint,
        Some(ErrorCode::TooBig) => StoreErrorKind::Invalid,
        Some(_) => StoreErrorKind::Other,
        None => match e {
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::Utf8Error(..) => StoreErrorKind::Invalid,
            _ => StoreErrorKind::Other,
        },
    };
    StoreError::new(kind, e.to_string())
}
