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
    /// REST `DELETE Call/{B-leg}`: hang up only this callee of the call's Dial; the
    /// caller stays (SPEC §11.2).
    HangupLeg {
        leg_uuid: String,
        reply: oneshot::Sender<HangupReply>,
    },
    /// REST `DELETE Call/{uuid}/Record/`: stop the call's recordings now (SPEC §12.3).
    /// `reply` hears whether anything was recording, or why the switch cannot stop what
    /// records (not supported yet there).
    StopRecordings {
        reply: oneshot::Sender<Result<bool, String>>,
    },
}

/// What the registry knows of a Dial's B-leg (SPEC §11.2): enough for the live
/// details, without a store row of its own. A leg is registered when its bridge is sent
/// (it rings: no `answer_time`) and leaves when it ends — when another leg wins the race,
/// or when the Dial is over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegInfo {
    /// The A-leg (the call voxbridge was handed).
    pub parent_call_uuid: String,
    /// The number or SIP URI the Dial called.
    pub to: String,
    /// The caller ID presented to it.
    pub from: String,
    pub start_time: time::OffsetDateTime,
    /// Set once this leg answered and is bridged to the caller.
    pub answer_time: Option<time::OffsetDateTime>,
}

impl LegInfo {
    /// `ringing` until it answered, then `in-progress` (the live details' `call_status`).
    pub fn call_status(&self) -> &'static str {
        if self.answer_time.is_some() {
            "in-progress"
        } else {
            "ringing"
        }
    }
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
    /// Set for a Dial's B-leg: commands go to its parent call's task.
    leg: Option<LegInfo>,
    /// What the call's task knows before its live row shows it (see [`Fresh`]).
    fresh: Fresh,
}

/// A live call's answer time and scheduled hangup as its task knows them. Its live row
/// gets them too, but those writes may wait up to a group commit's linger (40 ms) in the
/// store, so the REST API's live details overlay these: a call is never shown
/// `in-progress` without the answer time it got (issue 16).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fresh {
    pub answer_time: Option<time::OffsetDateTime>,
    /// `Some(None)`: a scheduled hangup was cleared; `None`: nothing known here.
    pub scheduled_hangup_at: Option<Option<time::OffsetDateTime>>,
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
                leg: None,
                fresh: Fresh::default(),
            },
        );
        Registration {
            calls: self.clone(),
            call_uuid: call_uuid.to_string(),
            seq,
        }
    }

    /// Registers a Dial's B-leg under its own uuid, served by its parent call's task
    /// (`commands`): it is listed live and can be hung up alone while the guard lives.
    pub fn register_leg(
        &self,
        leg_uuid: &str,
        account_id: &str,
        info: LegInfo,
        commands: mpsc::Sender<CallCommand>,
    ) -> Registration {
        let seq = self
            .next_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.lock().insert(
            leg_uuid.to_string(),
            Entry {
                account_id: account_id.to_string(),
                commands,
                seq,
                leg: Some(info),
                fresh: Fresh::default(),
            },
        );
        Registration {
            calls: self.clone(),
            call_uuid: leg_uuid.to_string(),
            seq,
        }
    }

    /// The live B-leg `call_uuid` of the account, if it is one.
    pub fn leg(&self, account_id: &str, call_uuid: &str) -> Option<LegInfo> {
        self.lock()
            .get(call_uuid)
            .filter(|e| e.account_id == account_id)
            .and_then(|e| e.leg.clone())
    }

    /// The B-leg `leg_uuid` answered and is bridged: its times from the switch.
    pub fn leg_answered(
        &self,
        leg_uuid: &str,
        start_time: time::OffsetDateTime,
        answer_time: time::OffsetDateTime,
    ) {
        if let Some(leg) = self.lock().get_mut(leg_uuid).and_then(|e| e.leg.as_mut()) {
            leg.start_time = start_time;
            leg.answer_time = Some(answer_time);
        }
    }

    /// The live B-leg bridged to the call `parent_call_uuid`, if any (`bridged_to`):
    /// an answered one, not one still ringing.
    pub fn bridged_to(&self, account_id: &str, parent_call_uuid: &str) -> Option<String> {
        self.lock()
            .iter()
            .find(|(_, e)| {
                e.account_id == account_id
                    && e.leg.as_ref().is_some_and(|l| {
                        l.parent_call_uuid == parent_call_uuid && l.answer_time.is_some()
                    })
            })
            .map(|(uuid, _)| uuid.clone())
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
    /// The call's answer time and scheduled hangup as its task knows them, for `call_uuid`
    /// of `account_id` (nothing for another account's call).
    pub fn fresh(&self, account_id: &str, call_uuid: &str) -> Fresh {
        self.lock()
            .get(call_uuid)
            .filter(|e| e.account_id == account_id)
            .map(|e| e.fresh)
            .unwrap_or_default()
    }

    /// Notes what the call's task learned (see [`Fresh`]) on its entry, if it is live.
    pub fn update_fresh(&self, call_uuid: &str, update: impl FnOnce(&mut Fresh)) {
        if let Some(entry) = self.lock().get_mut(call_uuid) {
            update(&mut entry.fresh);
        }
    }

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
        let command = match entry.leg {
            Some(_) => CallCommand::HangupLeg {
                leg_uuid: call_uuid.to_string(),
                reply,
            },
            None => CallCommand::Hangup { reply },
        };
        if entry.commands.send(command).await.is_err() {
            return HangupRequest::NotFound;
        }
        match rx.await {
            Ok(HangupReply::Ending) => HangupRequest::Accepted,
            Ok(HangupReply::Refused(reply)) => HangupRequest::Failed(reply),
            Ok(HangupReply::Over) | Err(_) => HangupRequest::NotFound,
        }
    }

    /// Asks the call (or, for a Dial's callee, its caller's call, which owns the
    /// recordings) to stop its recordings. `None` when the call is not live here for
    /// this account; `Some(Ok(recording))`: whether anything was recording;
    /// `Some(Err(why))`: something records that this switch cannot stop yet. A call that
    /// cannot record (still ringing) drops the request: nothing was recording.
    pub async fn stop_recordings(
        &self,
        account_id: &str,
        call_uuid: &str,
    ) -> Option<Result<bool, String>> {
        let entry = self.lock().get(call_uuid).cloned();
        let entry = entry.filter(|e| e.account_id == account_id)?;
        let (reply, rx) = oneshot::channel();
        entry
            .commands
            .send(CallCommand::StopRecordings { reply })
            .await
            .ok()?;
        Some(rx.await.unwrap_or(Ok(false)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Removes its call from the registry when dropped — only its own entry: an outbound
/// call is registered by the dialer while it rings and again by its socket once
/// answered (same uuid, either may come first), and the dialer's leaving must not
/// unregister the live call.
pub struct Registration {
    calls: LiveCalls,
    call_uuid: String,
    seq: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut calls = self.calls.lock();
        if calls
            .get(&self.call_uuid)
            .is_some_and(|e| e.seq == self.seq)
        {
            calls.remove(&self.call_uuid);
        }
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
            while let Some(CallCommand::Hangup { reply } | CallCommand::HangupLeg { reply, .. }) =
                rx.recv().await
            {
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

    #[test]
    fn fresh_details_follow_the_task_and_stay_within_the_account() {
        let calls = LiveCalls::new();
        let (tx, _rx) = mpsc::channel(1);
        let _reg = calls.register("u1", "MA1", tx);
        assert_eq!(calls.fresh("MA1", "u1"), Fresh::default());
        let at = time::macros::datetime!(2026-04-09 10:00:00 UTC);
        calls.update_fresh("u1", |f| f.answer_time = Some(at));
        calls.update_fresh("u1", |f| f.scheduled_hangup_at = Some(Some(at)));
        calls.update_fresh("gone", |f| f.answer_time = Some(at));
        let fresh = calls.fresh("MA1", "u1");
        assert_eq!(fresh.answer_time, Some(at));
        assert_eq!(fresh.scheduled_hangup_at, Some(Some(at)));
        calls.update_fresh("u1", |f| f.scheduled_hangup_at = Some(None));
        assert_eq!(calls.fresh("MA1", "u1").scheduled_hangup_at, Some(None));
        assert_eq!(
            calls.fresh("MA2", "u1"),
            Fresh::default(),
            "another account's call"
        );
        assert_eq!(calls.fresh("MA1", "gone"), Fresh::default());
    }

    #[test]
    fn a_registration_removes_only_its_own_entry() {
        let calls = LiveCalls::new();
        let (tx, _rx) = mpsc::channel(1);
        let ringing = calls.register("u1", "MA1", tx.clone());
        let answered = calls.register("u1", "MA1", tx);
        drop(ringing);
        assert!(calls.contains("MA1", "u1"));
        drop(answered);
        assert!(calls.is_empty());
    }

    #[test]
    fn a_ringing_leg_is_listed_but_bridged_to_no_one_until_it_answers() {
        let calls = LiveCalls::new();
        let (tx, _rx) = mpsc::channel(4);
        let t0 = time::OffsetDateTime::UNIX_EPOCH;
        let leg = |to: &str| LegInfo {
            parent_call_uuid: "a".into(),
            to: to.into(),
            from: "1555".into(),
            start_time: t0,
            answer_time: None,
        };
        let _a = calls.register("a", "MA1", tx.clone());
        let _b1 = calls.register_leg("b1", "MA1", leg("7002"), tx.clone());
        let _b2 = calls.register_leg("b2", "MA1", leg("7004"), tx);
        assert_eq!(calls.uuids("MA1"), ["a", "b1", "b2"]);
        assert_eq!(calls.leg("MA1", "b1").unwrap().call_status(), "ringing");
        assert_eq!(calls.bridged_to("MA1", "a"), None);
        let answered = t0 + time::Duration::seconds(3);
        calls.leg_answered("b1", t0 + time::Duration::seconds(1), answered);
        let b1 = calls.leg("MA1", "b1").unwrap();
        assert_eq!(b1.call_status(), "in-progress");
        assert_eq!(b1.answer_time, Some(answered));
        assert_eq!(calls.bridged_to("MA1", "a").as_deref(), Some("b1"));
        assert_eq!(calls.leg("MA1", "b2").unwrap().call_status(), "ringing");
    }
}
