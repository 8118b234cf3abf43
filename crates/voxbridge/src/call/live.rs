//! The calls this process controls right now, by uuid: the one truth of the REST API
//! about live calls. The live list, the live details and the hangup all read it, so they
//! never disagree. A call registers when its task starts and leaves the moment it is
//! over (its engine has finished: the channel is down or the socket lost) — before its
//! record is written — so a uuid missing here is unknown or already ended (404).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// A command from outside the call's own task.
#[derive(Debug)]
pub enum CallCommand {
    /// REST `DELETE Call/{uuid}`: hang up now. The call answers once the switch has
    /// taken the kill (or refused every way of hanging up).
    Hangup { reply: oneshot::Sender<HangupReply> },
}

/// How a call answered a hangup request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HangupReply {
    /// The switch took the hangup, or the call was already closing (first hangup wins).
    Ending,
    /// The call was already over.
    Over,
    /// The switch refused `uuid_kill` and the hangup message: the call is still up.
    Refused(String),
}

/// What a hangup request came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HangupRequest {
    /// The call was live: it is being hung up (or was already closing — first hangup wins).
    Accepted,
    /// No such live call for this account.
    NotFound,
    /// The call is live but the switch would not end it; the text says what it answered.
    Failed(String),
}

#[derive(Clone)]
struct Entry {
    account_id: String,
    commands: mpsc::Sender<CallCommand>,
    /// Registration order, so the live list is oldest first.
    seq: u64,
}

/// Registry of live calls (cheap to clone; one per server).
#[derive(Clone, Default)]
pub struct LiveCalls {
    inner: Arc<Mutex<HashMap<String, Entry>>>,
    next_seq: Arc<std::sync::atomic::AtomicU64>,
}

impl LiveCalls {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a call's command channel; returned guard removes it when dropped, so a
    /// call task that ends in any way (even a panic) leaves the registry.
    pub fn register(
        &self,
        call_uuid: &str,
        account_id: &str,
        commands: mpsc::Sender<CallCommand>,
    ) -> Registration {
        let seq = self
            .next_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.lock().insert(
            call_uuid.to_string(),
            Entry {
                account_id: account_id.to_string(),
                commands,
                seq,
            },
        );
        Registration {
            calls: self.clone(),
            call_uuid: call_uuid.to_string(),
        }
    }

    /// Number of calls registered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The account's live calls, oldest first.
    pub fn uuids(&self, account_id: &str) -> Vec<String> {
        let calls = self.lock();
        let mut mine: Vec<(u64, &String)> = calls
            .iter()
            .filter(|(_, e)| e.account_id == account_id)
            .map(|(uuid, e)| (e.seq, uuid))
            .collect();
        mine.sort();
        mine.into_iter().map(|(_, uuid)| uuid.clone()).collect()
    }

    /// Whether the call is live here for this account.
    pub fn contains(&self, account_id: &str, call_uuid: &str) -> bool {
        self.lock()
            .get(call_uuid)
            .is_some_and(|e| e.account_id == account_id)
    }

    /// Asks the call to hang up. `NotFound` when the call is not live here or belongs to
    /// another account (an account must not learn of another's calls).
    pub async fn hangup(&self, account_id: &str, call_uuid: &str) -> HangupRequest {
        let entry = self.lock().get(call_uuid).cloned();
        let Some(entry) = entry.filter(|e| e.account_id == account_id) else {
            return HangupRequest::NotFound;
        };
        let (reply, rx) = oneshot::channel();
        if entry
            .commands
            .send(CallCommand::Hangup { reply })
            .await
            .is_err()
        {
            return HangupRequest::NotFound;
        }
        match rx.await {
            Ok(HangupReply::Ending) => HangupRequest::Accepted,
            Ok(HangupReply::Refused(reply)) => HangupRequest::Failed(reply),
            Ok(HangupReply::Over) | Err(_) => HangupRequest::NotFound,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Removes its call from the registry when dropped.
pub struct Registration {
    calls: LiveCalls,
    call_uuid: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.calls.lock().remove(&self.call_uuid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hangup_reaches_the_call_of_the_right_account_only() {
        let calls = LiveCalls::new();
        let (tx, mut rx) = mpsc::channel(4);
        let reg = calls.register("u1", "MA1", tx);
        let task = tokio::spawn(async move {
            while let Some(CallCommand::Hangup { reply }) = rx.recv().await {
                let _ = reply.send(HangupReply::Ending);
            }
        });
        assert_eq!(calls.hangup("MA2", "u1").await, HangupRequest::NotFound);
        assert_eq!(calls.hangup("MA1", "u1").await, HangupRequest::Accepted);
        assert_eq!(calls.hangup("MA1", "nope").await, HangupRequest::NotFound);
        drop(reg);
        assert!(calls.is_empty());
        assert_eq!(calls.hangup("MA1", "u1").await, HangupRequest::NotFound);
        task.abort();
    }
}
