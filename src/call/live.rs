//! The calls this process controls right now, by uuid: how the REST API reaches a call's
//! task to hang it up. A call registers when its task starts and leaves when its record
//! is written, so a uuid missing here is unknown or already ended (404).

use crate::call::engine::Reaction;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// A command from outside the call's own task.
#[derive(Debug)]
pub enum CallCommand {
    /// REST `DELETE Call/{uuid}`: hang up now. The reply says how the engine took it.
    Hangup { reply: oneshot::Sender<Reaction> },
}

/// What a hangup request came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HangupRequest {
    /// The call was live: it is being hung up (or was already closing — first hangup wins).
    Accepted,
    /// No such live call for this account.
    NotFound,
}

#[derive(Clone)]
struct Entry {
    account_id: String,
    commands: mpsc::Sender<CallCommand>,
}

/// Registry of live calls (cheap to clone; one per server).
#[derive(Clone, Default)]
pub struct LiveCalls {
    inner: Arc<Mutex<HashMap<String, Entry>>>,
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
        self.lock().insert(
            call_uuid.to_string(),
            Entry {
                account_id: account_id.to_string(),
                commands,
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
            Ok(Reaction::Acted) | Ok(Reaction::Ignored) => HangupRequest::Accepted,
            Ok(Reaction::AfterFinish) | Err(_) => HangupRequest::NotFound,
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
                let _ = reply.send(Reaction::Acted);
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
