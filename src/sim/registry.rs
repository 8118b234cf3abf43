//! The live channels of one simulator, by UUID, so `uuid_*` commands from any
//! connection (the channel's own socket, another socket, an inbound session) reach the
//! task that owns the channel. Both legs are registered: the socket-controlled B-leg and
//! the caller's A-leg (`uuid_kill <A-leg>` is how the transcripts make the caller hang up).

use super::report::ChanMsg;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::mpsc;

#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub tx: mpsc::UnboundedSender<ChanMsg>,
    /// The UUID is the caller's leg, not the socket-controlled channel.
    pub caller_leg: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    channels: Mutex<HashMap<String, Entry>>,
    /// `sched_hangup` task id → channel UUID, for `sched_del <id>`.
    sched_owners: Mutex<HashMap<u64, String>>,
    next_sched: AtomicU64,
    pub sessions_since_start: AtomicU64,
}

impl Registry {
    pub fn register(&self, uuid: &str, caller_uuid: &str, tx: mpsc::UnboundedSender<ChanMsg>) {
        let mut map = lock(&self.channels);
        map.insert(
            uuid.to_string(),
            Entry {
                tx: tx.clone(),
                caller_leg: false,
            },
        );
        map.insert(
            caller_uuid.to_string(),
            Entry {
                tx,
                caller_leg: true,
            },
        );
        self.sessions_since_start.fetch_add(1, Ordering::Relaxed);
    }

    pub fn unregister(&self, uuid: &str, caller_uuid: &str) {
        let mut map = lock(&self.channels);
        map.remove(uuid);
        map.remove(caller_uuid);
        lock(&self.sched_owners).retain(|_, owner| owner != uuid);
    }

    pub fn get(&self, uuid: &str) -> Option<Entry> {
        lock(&self.channels).get(uuid).cloned()
    }

    /// Socket-controlled channels alive now.
    pub fn live(&self) -> usize {
        lock(&self.channels)
            .values()
            .filter(|e| !e.caller_leg)
            .count()
    }

    pub fn new_sched(&self, owner: &str) -> u64 {
        let id = self.next_sched.fetch_add(1, Ordering::Relaxed) + 1;
        lock(&self.sched_owners).insert(id, owner.to_string());
        id
    }

    pub fn sched_owner(&self, id: u64) -> Option<String> {
        lock(&self.sched_owners).get(&id).cloned()
    }
}

/// A poisoned lock only means another task panicked mid-update of a plain map; the map
/// itself is still usable, and the simulator must keep serving the other calls.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
