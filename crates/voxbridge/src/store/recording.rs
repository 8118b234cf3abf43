//! Recordings in the store (SPEC §12.2, §12.3): one row per file the switch wrote for a
//! call, kept beside the CDRs so the recordings API can list, serve and delete them.
//!
//! Decisions, the same for every store implementation:
//! * **A row is written once the file is complete** (the switch's RECORD_STOP): a row
//!   always names a whole file. Writing it again with the same `recording_id` changes
//!   nothing (the first write wins), so a retried write is harmless.
//! * **The row keeps what the API shows without a join**: the call's numbers are copied
//!   in, because a recording exists while its call is still live (no CDR yet).
//! * **Times** are UTC instants; durations are milliseconds, as the switch measures them.
//! * **Deleting** removes the row and hands it back, so the caller can remove the file;
//!   the store itself never touches files.

use time::OffsetDateTime;

/// What a recording captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordingKind {
    /// `<Record>`: the caller, until silence, a key, `maxLength` or the hangup.
    Caller,
    /// `recordSession="true"`: the whole call, both directions, until the hangup.
    Session,
}

impl RecordingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingKind::Caller => "caller",
            RecordingKind::Session => "session",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "caller" => Some(RecordingKind::Caller),
            "session" => Some(RecordingKind::Session),
            _ => None,
        }
    }
}

/// Why a recording ended: SPEC §12.2's `RecordingEndReason` words, plus `Stopped` for a
/// recording the REST API stopped (`DELETE Call/{uuid}/Record/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordingEndReason {
    /// `timeout` seconds of silence.
    Silence,
    MaxLength,
    FinishedOnKey,
    HungUp,
    Stopped,
}

impl RecordingEndReason {
    /// The word callbacks and the API use.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingEndReason::Silence => "RecordingTimeout",
            RecordingEndReason::MaxLength => "maxLength",
            RecordingEndReason::FinishedOnKey => "FinishedOnKey",
            RecordingEndReason::HungUp => "HungUp",
            RecordingEndReason::Stopped => "Stopped",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            RecordingEndReason::Silence,
            RecordingEndReason::MaxLength,
            RecordingEndReason::FinishedOnKey,
            RecordingEndReason::HungUp,
            RecordingEndReason::Stopped,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }
}

/// One complete recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recording {
    /// A UUID; the file is `<recording_id>.<format>`.
    pub recording_id: String,
    pub call_uuid: String,
    pub account_id: String,
    pub kind: RecordingKind,
    /// The file as the switch wrote it (absolute, on a path voxbridge can read).
    pub file_path: String,
    /// The file's extension and format: `wav` (or `mp3` where the switch can write it).
    pub format: String,
    pub duration_ms: u64,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    pub end_reason: RecordingEndReason,
    pub from_number: String,
    pub to_number: String,
    /// When the row was written (the API's `add_time`).
    pub created_at: OffsetDateTime,
}

/// Which recordings a list asks for (SPEC §12.3: the account's, optionally one call's),
/// newest first, paged like the Call list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingQuery {
    pub call_uuid: Option<String>,
    /// At most this many (the API caps it at 100).
    pub limit: u32,
    pub offset: u64,
}

/// One page of an account's recordings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingPage {
    /// All that match the query, not just this page.
    pub total: u64,
    pub recordings: Vec<Recording>,
}
