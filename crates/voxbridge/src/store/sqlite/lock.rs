//! One process per database file.
//!
//! SQLite itself would let a second `voxbridge serve` open the same file: both would
//! then claim the same outbox rows (callbacks delivered twice) and the second one's
//! reconciliation would close out the first one's live calls as `Unknown`. So a store
//! on a file takes an exclusive lock on a sidecar file, `<database>.lock`, for as long as
//! it is open, and writes who holds it (pid, start time) into it, so the refusal can name
//! the holder.
//!
//! Why a sidecar and `flock` (`File::try_lock`): SQLite's own locks on the database are
//! POSIX record locks, which a process loses when it closes *any* descriptor of the file;
//! a lock on a file SQLite never opens cannot interfere with them. The kernel drops the
//! lock when the process dies, so a crash (even SIGKILL) never leaves a stale lock behind
//! — the file's contents may stay, but only the lock counts.

use crate::store::{StoreError, StoreErrorKind};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Held for the store's lifetime; released when dropped (or when the process dies).
#[derive(Debug)]
pub(super) struct DatabaseLock {
    _file: File,
    path: PathBuf,
}

impl DatabaseLock {
    /// The lock file of `database`.
    pub(super) fn path_for(database: &Path) -> PathBuf {
        let mut name = database.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Takes the lock of `database` without waiting: a database in use by another process
    /// is an [`StoreErrorKind::InUse`] error naming the holder.
    pub(super) fn acquire(database: &Path) -> Result<Self, StoreError> {
        let path = Self::path_for(database);
        let io = |what: &str, e: std::io::Error| {
            StoreError::new(
                StoreErrorKind::Io,
                format!("{what} the lock file {}: {e}", path.display()),
            )
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io("cannot open", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(StoreError::new(
                    StoreErrorKind::InUse,
                    format!(
                        "{} is in use by another voxbridge process ({}); one process per \
                         database file",
                        database.display(),
                        if holder.is_empty() {
                            "holder unknown".to_string()
                        } else {
                            holder.to_string()
                        }
                    ),
                ));
            }
            Err(TryLockError::Error(e)) => return Err(io("cannot lock", e)),
        }
        let started = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let who = format!("pid {} since {started}\n", std::process::id());
        // Best effort: the lock is what counts, the text only names the holder.
        let _ = file
            .set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(who.as_bytes()));
        Ok(Self { _file: file, path })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}
