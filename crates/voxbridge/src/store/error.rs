//! Store errors, classified by what the caller should do about them — not by backend.

use std::fmt;

/// What kind of failure, in terms that decide retry and alerting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreErrorKind {
    /// Another writer holds the database (SQLite busy/locked); retrying helps.
    Busy,
    /// The disk (or a quota) is full; retrying helps once space is freed.
    DiskFull,
    /// An I/O error from the OS; may be transient.
    Io,
    /// The database file is damaged or not a database. Needs an operator.
    Corrupt,
    /// A uniqueness or other constraint failed: the write itself is wrong, retrying
    /// cannot help (e.g. a DeliveryID used twice).
    Constraint,
    /// A stored value could not be read back, or a request was invalid.
    Invalid,
    /// The store was closed (shutdown); nothing more will be written.
    Closed,
    /// The database belongs to another running process (one process per file).
    InUse,
    /// Anything else (a bug, most likely): not retried.
    Other,
}

impl StoreErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreErrorKind::Busy => "busy",
            StoreErrorKind::DiskFull => "disk_full",
            StoreErrorKind::Io => "io",
            StoreErrorKind::Corrupt => "corrupt",
            StoreErrorKind::Constraint => "constraint",
            StoreErrorKind::Invalid => "invalid",
            StoreErrorKind::Closed => "closed",
            StoreErrorKind::InUse => "in_use",
            StoreErrorKind::Other => "other",
        }
    }
}

/// A store failure: its kind and a message naming what failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError {
    pub kind: StoreErrorKind,
    pub message: String,
}

impl StoreError {
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn closed() -> Self {
        Self::new(StoreErrorKind::Closed, "the store is closed")
    }

    /// Whether trying the same write again later may succeed: busy, disk full, I/O.
    ///
    /// Corruption is not transient: retrying a write on a damaged file cannot succeed and
    /// only hides the damage behind a retry loop. It is reported at once (the caller logs
    /// the record in full) and the store counts as unable to write, so new calls are
    /// refused until an operator repairs or replaces the file and restarts.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            StoreErrorKind::Busy | StoreErrorKind::DiskFull | StoreErrorKind::Io
        )
    }

    /// Prefixes the message with what was being done.
    pub fn context(mut self, what: &str) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store error ({}): {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for StoreError {}
