//! What the caller saw, reported when a simulated call ends — the thing every
//! end-to-end test asserts on.
//!
//! The caller's view follows the switch (`reference/freeswitch-esl.md` §4.2, transcript
//! f): a channel the switch ends before answer is refused with a SIP final response
//! (`HangupCause::sip_refuse_code`, or the exact code of `respond`); after answer the
//! caller gets a BYE carrying the Q.850 cause; a caller who hangs up first sent CANCEL
//! (before answer) or BYE (after); and a socket closed without a hangup leaves the call
//! parked (transcript f7), reported at once as [`Outcome::LeftParked`].

use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use voxbridge::cause::HangupCause;

/// How the call ended, from the caller's side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The unanswered call was refused with this SIP code.
    Refused { sip: u16, cause: HangupCause },
    /// The answered call got a BYE with `Reason: Q.850;cause=q850` (or `SIP;cause=N`
    /// for causes above 127, which report q850 16).
    Bye { cause: HangupCause, q850: u16 },
    /// The caller hung up first (CANCEL before answer, BYE after).
    CallerHungUp { cause: HangupCause, answered: bool },
    /// The socket closed while the channel was up and nobody hung it up: on the real
    /// switch it stays parked until the caller gives up.
    LeftParked,
    /// The simulator could not finish the call (a bug or a runtime shutdown).
    Aborted(String),
}

/// What happened to one `sendmsg execute`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppStatus {
    /// Ran (EXECUTE … EXECUTE_COMPLETE).
    Completed,
    /// Queued, but the channel was down before it could run: no events (§9).
    Skipped,
    /// Discarded from the queue by `uuid_break <uuid> all`.
    Flushed,
    /// No such application: the channel was hung up with DESTINATION_OUT_OF_ORDER.
    Unknown,
    /// Still running or queued when the report was taken (socket closed first).
    Pending,
}

/// One application execution request, in the order received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppRecord {
    pub name: String,
    /// Argument after `${var}` expansion.
    pub arg: String,
    /// The `Event-UUID` voxbridge sent (echoed as `Application-UUID`), if any.
    pub event_uuid: Option<String>,
    pub event_lock: bool,
    pub status: AppStatus,
    /// `Application-Response` of the (last) EXECUTE_COMPLETE.
    pub response: Option<String>,
    /// Started inside another running app (no event-lock).
    pub nested: bool,
    /// Simulated time since the call started.
    pub started_at: Option<Duration>,
    pub ended_at: Option<Duration>,
    /// How many times it ran (`loops`).
    pub runs: u32,
}

/// One `sendmsg` `call-command: hangup` (no application: no EXECUTE pair, not in
/// [`CallReport::apps`]), in the order received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HangupCommandRecord {
    /// `hangup-cause` (NORMAL_CLEARING when absent).
    pub cause: HangupCause,
    /// How many `sendmsg execute`s came before it: its place among [`CallReport::apps`].
    pub after_apps: usize,
    /// `Completed`: it hung the channel up; `Skipped`: the channel was down before it
    /// could run; `Flushed`: discarded by `uuid_break all`; `Pending`: still queued.
    pub status: AppStatus,
}

impl HangupCommandRecord {
    /// `call-command hangup <CAUSE>`: how tests list it among application names.
    pub fn label(&self) -> String {
        format!("call-command hangup {}", self.cause.name())
    }
}

/// Everything a test wants to know about one call.
#[derive(Clone, Debug)]
pub struct CallReport {
    /// The socket-controlled channel (B-leg) UUID.
    pub uuid: String,
    /// The caller's leg UUID (`uuid_kill` on it = the caller hangs up).
    pub caller_uuid: String,
    pub outcome: Outcome,
    /// The TCP connection to the target was made.
    pub connected: bool,
    /// The client sent `connect`.
    pub got_connect: bool,
    /// Real (not simulated) time from the TCP connection to the client's first
    /// `sendmsg`: the switch-side view of "accept to first command" (SPEC §9).
    pub first_sendmsg_after: Option<Duration>,
    pub answered_at: Option<Duration>,
    pub early_media_at: Option<Duration>,
    pub hangup_cause: Option<HangupCause>,
    pub hangup_at: Option<Duration>,
    /// `sip_hangup_disposition` (send_refuse, send_bye, recv_bye, recv_cancel).
    pub hangup_disposition: Option<String>,
    /// `variable_duration` / `variable_billsec` (truncated epoch seconds).
    pub duration_secs: i64,
    pub billsec: i64,
    pub apps: Vec<AppRecord>,
    /// Every `call-command: hangup` received, in order.
    pub hangup_commands: Vec<HangupCommandRecord>,
    /// Every command received on the socket, raw text, in order.
    pub commands: Vec<String>,
    /// Names of the events written to the socket, in order.
    pub events: Vec<String>,
}

impl CallReport {
    /// The final SIP response to the caller's INVITE: the refusal code, 200 when the call
    /// was answered, 487 when the caller cancelled (or gave up on a parked call).
    pub fn sip_code(&self) -> Option<u16> {
        match &self.outcome {
            Outcome::Refused { sip, .. } => Some(*sip),
            Outcome::Bye { .. } => Some(200),
            Outcome::CallerHungUp { answered: true, .. } => Some(200),
            Outcome::CallerHungUp {
                answered: false, ..
            } => Some(487),
            Outcome::LeftParked if self.answered() => Some(200),
            Outcome::LeftParked => Some(487),
            Outcome::Aborted(_) => None,
        }
    }

    pub fn answered(&self) -> bool {
        self.answered_at.is_some()
    }

    /// The cause in the BYE the caller received, if the switch hung up an answered call.
    pub fn bye_cause(&self) -> Option<HangupCause> {
        match &self.outcome {
            Outcome::Bye { cause, .. } => Some(*cause),
            _ => None,
        }
    }

    pub fn apps(&self) -> &[AppRecord] {
        &self.apps
    }

    /// Names of the apps that ran, in order (repetitions of `loops` once).
    pub fn executed(&self) -> Vec<&str> {
        self.apps
            .iter()
            .filter(|a| a.status == AppStatus::Completed)
            .map(|a| a.name.as_str())
            .collect()
    }

    /// What the client asked the switch to do, in order: each application's name and
    /// each hangup command's [`HangupCommandRecord::label`], with `keep` choosing by
    /// status.
    pub fn requested_where(&self, keep: impl Fn(AppStatus) -> bool) -> Vec<String> {
        self.requested_as(keep, |a| a.name.clone())
    }

    /// [`CallReport::requested_where`] with each application written as `app_label` says.
    pub fn requested_as(
        &self,
        keep: impl Fn(AppStatus) -> bool,
        app_label: impl Fn(&AppRecord) -> String,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let mut hangups = self.hangup_commands.iter().peekable();
        for (i, app) in self.apps.iter().enumerate() {
            while let Some(h) = hangups.next_if(|h| h.after_apps <= i) {
                if keep(h.status) {
                    out.push(h.label());
                }
            }
            if keep(app.status) {
                out.push(app_label(app));
            }
        }
        out.extend(
            hangups
                .filter(|h| keep(h.status))
                .map(HangupCommandRecord::label),
        );
        out
    }

    /// The hangup commands that ran (hung the channel up), as labels.
    pub fn hangups_run(&self) -> Vec<String> {
        self.hangup_commands
            .iter()
            .filter(|h| h.status == AppStatus::Completed)
            .map(HangupCommandRecord::label)
            .collect()
    }

    /// Names of the apps queued but never run because the channel was down.
    pub fn skipped(&self) -> Vec<&str> {
        self.apps
            .iter()
            .filter(|a| a.status == AppStatus::Skipped)
            .map(|a| a.name.as_str())
            .collect()
    }
}

/// Messages to a channel's task.
#[derive(Debug)]
pub(crate) enum ChanMsg {
    /// An API command aimed at this channel (`uuid_kill`, `uuid_break`, …).
    Api {
        line: String,
        /// The leg the command named.
        leg: super::registry::Leg,
        reply: oneshot::Sender<String>,
    },
    /// `sendmsg <uuid>` from another connection.
    Sendmsg {
        cmd: super::command::Command,
        reply: oneshot::Sender<String>,
    },
    CallerHangup,
    CallerDtmf(String),
    /// A background job this socket started finished (BACKGROUND_JOB to deliver).
    JobDone(Box<super::wire::SimEvent>),
}

/// A placed call: its UUIDs, a way to act as the caller, and the report when it ends.
#[derive(Debug)]
pub struct CallHandle {
    pub uuid: String,
    pub caller_uuid: String,
    pub(crate) tx: mpsc::UnboundedSender<ChanMsg>,
    pub(crate) report: oneshot::Receiver<CallReport>,
}

impl CallHandle {
    /// The caller hangs up now (CANCEL before answer, BYE after).
    pub fn hang_up(&self) {
        let _ = self.tx.send(ChanMsg::CallerHangup);
    }

    /// The caller presses these digits now (RFC 2833; needs media).
    pub fn send_dtmf(&self, digits: &str) {
        let _ = self.tx.send(ChanMsg::CallerDtmf(digits.to_string()));
    }

    /// Waits until the call's connection ended and returns what the caller saw.
    pub async fn report(self) -> CallReport {
        let uuid = self.uuid.clone();
        let caller_uuid = self.caller_uuid.clone();
        match self.report.await {
            Ok(r) => r,
            Err(_) => CallReport::aborted(uuid, caller_uuid, "call task ended without a report"),
        }
    }

    /// Like [`CallHandle::report`], giving up after `real` time (not simulated).
    pub async fn report_within(self, real: Duration) -> Option<CallReport> {
        tokio::time::timeout(real, self.report()).await.ok()
    }
}

impl CallReport {
    pub(crate) fn aborted(uuid: String, caller_uuid: String, why: &str) -> Self {
        CallReport {
            uuid,
            caller_uuid,
            outcome: Outcome::Aborted(why.to_string()),
            connected: false,
            got_connect: false,
            first_sendmsg_after: None,
            answered_at: None,
            early_media_at: None,
            hangup_cause: None,
            hangup_at: None,
            hangup_disposition: None,
            duration_secs: 0,
            billsec: 0,
            apps: Vec::new(),
            hangup_commands: Vec::new(),
            commands: Vec::new(),
            events: Vec::new(),
        }
    }
}
