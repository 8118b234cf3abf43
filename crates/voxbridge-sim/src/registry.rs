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
    pub leg: Leg,
}

/// Which leg of a simulated call a UUID names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Leg {
    /// The socket-controlled channel.
    Controlled,
    /// The caller's leg (the A-leg of the transcripts' originate).
    Caller,
    /// The callee of the controlled channel's running `bridge`.
    Callee,
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
                leg: Leg::Controlled,
            },
        );
        map.insert(
            caller_uuid.to_string(),
            Entry {
                tx,
                leg: Leg::Caller,
            },
        );
        self.sessions_since_start.fetch_add(1, Ordering::Relaxed);
    }

    /// A channel `originate` placed (transcript o): one channel, no caller leg.
    pub fn register_dialled(&self, uuid: &str, tx: mpsc::UnboundedSender<ChanMsg>) {
        lock(&self.channels).insert(
            uuid.to_string(),
            Entry {
                tx,
                leg: Leg::Controlled,
            },
        );
        self.sessions_since_start.fetch_add(1, Ordering::Relaxed);
    }

    /// A bridge's callee, routed to the call that dialled it while the bridge runs.
    pub fn register_callee(&self, uuid: &str, tx: mpsc::UnboundedSender<ChanMsg>) {
        lock(&self.channels).insert(
            uuid.to_string(),
            Entry {
                tx,
                leg: Leg::Callee,
            },
        );
    }

    pub fn unregister_callee(&self, uuid: &str) {
        let mut map = lock(&self.channels);
        if map.get(uuid).is_some_and(|e| e.leg == Leg::Callee) {
            map.remove(uuid);
        }
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
    /// Every channel's UUID (each leg its own), as `show channels` lists them.
    pub fn uuids(&self) -> Vec<String> {
        lock(&self.channels).keys().cloned().collect()
    }

    pub fn live(&self) -> usize {
        lock(&self.channels)
            .values()
            .filter(|e| e.leg == Leg::Controlled)
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
