//! `originate {origination_uuid=<O>,…}<dial string> '&socket(<addr> async full)'`: an
//! outbound call handed to a socket (transcripts o and p).
//!
//! The switch places the call on a new **outbound** channel under the origination UUID
//! and runs the `socket` app on that channel itself, only once the callee answered:
//!
//! - while it rings, inbound listeners see the channel's CHANNEL_CREATE, CHANNEL_OUTGOING,
//!   CHANNEL_PROGRESS (`Channel-State: CS_CONSUME_MEDIA`, call state `DOWN`, not yet
//!   through any dialplan), then at the answer CHANNEL_PROGRESS_MEDIA and CHANNEL_ANSWER
//!   (call state still `RINGING`: it is updated after the event);
//! - at the answer `originate` returns `+OK <O>` (the BACKGROUND_JOB of a `bgapi`) and
//!   the socket app connects; its `connect` reply shows the answered outbound channel;
//! - a callee that refuses (486 → USER_BUSY…) or never answers before `originate_timeout`
//!   (whole epoch seconds, like the bridge of transcript k: `=3` gave up after 2.35 s in
//!   p) fails the originate with `-ERR <CAUSE>`, published *before* the channel's
//!   CHANNEL_HANGUP_COMPLETE as in p, and there is **no** socket connection at all.
//!
//! The callee is scripted by number like a `bridge`'s ([`CallScript::callee`]); an
//! unknown number is refused with NO_ROUTE_DESTINATION.

use super::{Call, CallerEvent, Timer, TimerKind};
use crate::api;
use crate::channel::HangupSide;
use crate::report::ChanMsg;
use crate::script::{CallScript, Callee};
use crate::Shared;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use voxbridge::cause::HangupCause;

/// ~20 ms for the INVITE round trip, as in the transcripts.
const FIRST_RESPONSE: Duration = Duration::from_millis(20);

/// An originate that hands the answered channel to a socket.
#[derive(Debug)]
pub(crate) struct DialOut {
    /// The dial string without its `{…}` variables: the channel's name.
    pub endpoint: String,
    /// What the destination does; `None`: no route to it.
    pub callee: Option<Callee>,
    /// `originate_timeout` in seconds (default 60).
    pub timeout_secs: i64,
    pub result: OriginateResult,
}

/// Where the originate's result goes.
#[derive(Debug)]
pub(crate) enum OriginateResult {
    /// `api originate`: the caller waits for the text.
    Api(oneshot::Sender<String>),
    /// `bgapi originate`: the channel publishes the BACKGROUND_JOB itself, so that it
    /// comes before the failed channel's hangup events, as on the switch (p).
    Job {
        job_uuid: String,
        line: String,
    },
    Done,
}

impl DialOut {
    pub fn new(
        endpoint: &str,
        script: &CallScript,
        destination: &str,
        timeout: Option<i64>,
    ) -> Self {
        DialOut {
            endpoint: endpoint.to_string(),
            callee: script.callees.get(destination).copied(),
            timeout_secs: timeout.unwrap_or(60),
            result: OriginateResult::Done,
        }
    }
}

/// What happens next while the callee rings.
enum Step {
    Ring,
    Answer,
    Fail(HangupCause),
}

impl Call {
    /// Rings the callee; true once it answered (the socket may connect), false when the
    /// originate failed (the channel is down, its events and the result are out).
    pub(super) async fn ring_out(
        &mut self,
        mut d: DialOut,
        rx: &mut mpsc::UnboundedReceiver<ChanMsg>,
    ) -> bool {
        let clock = self.shared.sw.clock.clone();
        let start = Instant::now();
        let now_us = clock.now_us();
        self.ch.state = "CS_CONSUME_MEDIA";
        self.ch.state_number = 7;
        self.ch.call_state = "DOWN";
        self.fire_channel("CHANNEL_CREATE", &[]);
        self.fire_channel("CHANNEL_OUTGOING", &[]);
        let first = start + clock.real(FIRST_RESPONSE);
        let mut steps: Vec<(Instant, Step)> = match d.callee {
            Some(Callee::Answers { after, .. }) if after.is_zero() => vec![(first, Step::Answer)],
            Some(Callee::Answers { after, .. }) => vec![
                (first, Step::Ring),
                (start + clock.real(after.max(FIRST_RESPONSE)), Step::Answer),
            ],
            Some(Callee::RingsForever) => vec![(first, Step::Ring)],
            Some(Callee::Refuses(code)) => vec![(first, Step::Fail(HangupCause::from_sip(code)))],
            None => vec![(
                first,
                Step::Fail(HangupCause::parse_switch("NO_ROUTE_DESTINATION")),
            )],
        };
        let give_up_us = (now_us / 1_000_000 + d.timeout_secs) * 1_000_000;
        steps.push((
            clock.instant_at(give_up_us),
            Step::Fail(HangupCause::NO_ANSWER),
        ));
        steps.sort_by_key(|(at, _)| *at);
        let mut steps = steps.into_iter();
        let Some(mut next) = steps.next() else {
            return false;
        };
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(ChanMsg::Api { line, leg, reply }) => {
                        let (cmd, args) = api::split(&line);
                        if cmd == "uuid_kill" {
                            let cause = args
                                .split_whitespace()
                                .nth(1)
                                .map(HangupCause::parse_switch)
                                .unwrap_or(HangupCause::NORMAL_CLEARING);
                            let _ = reply.send("+OK\n".into());
                            self.ring_out_failed(&mut d, cause, "send_cancel");
                            return false;
                        }
                        let text = self.channel_api(&line, leg);
                        self.pending.clear();
                        let _ = reply.send(text);
                    }
                    Some(ChanMsg::Sendmsg { reply, .. }) => {
                        // Nothing runs on the channel before the socket app does.
                        let _ = reply.send("-ERR not ready\n".into());
                    }
                    Some(_) => {}
                    None => {}
                },
                _ = tokio::time::sleep_until(next.0) => {
                    match next.1 {
                        Step::Ring => {
                            let now = clock.now_us();
                            self.ch.ring_ready(now);
                            self.fire_channel("CHANNEL_PROGRESS", &[]);
                            self.ch.call_state = "RINGING";
                        }
                        Step::Answer => {
                            self.dialled_answered(&mut d);
                            return true;
                        }
                        Step::Fail(cause) => {
                            let disposition = if cause == HangupCause::NO_ANSWER {
                                "send_cancel"
                            } else {
                                "recv_refuse"
                            };
                            self.ring_out_failed(&mut d, cause, disposition);
                            return false;
                        }
                    }
                    match steps.next() {
                        Some(s) => next = s,
                        None => return false,
                    }
                }
            }
        }
    }

    /// The callee's 200: media and answer (events before the call state moves on), the
    /// originate's `+OK`, then the `socket` app starts on the channel.
    fn dialled_answered(&mut self, d: &mut DialOut) {
        let now = self.shared.sw.clock.now_us();
        let state = self.ch.call_state;
        self.ch.media_up(now);
        self.fire_channel("CHANNEL_PROGRESS_MEDIA", &[]);
        self.ch.after_progress_media();
        self.ch.call_state = state;
        self.ch.mark_answered(now);
        self.fire_channel("CHANNEL_ANSWER", &[]);
        self.ch.after_answer();
        self.ch.callee_connected = true;
        self.report.early_media_at = Some(self.since_start());
        self.report.answered_at = Some(self.since_start());
        if let Some(Callee::Answers {
            hangs_up_after: Some(after),
            ..
        }) = d.callee
        {
            self.timers.push(Timer {
                at: self.shared.sw.clock.deadline(after),
                kind: TimerKind::Caller(CallerEvent::HangUp),
            });
        }
        let ok = format!("+OK {}\n", self.ch.uuid);
        publish_result(&self.shared, &mut d.result, &ok);
        self.ch.state = "CS_EXECUTE";
        self.ch.state_number = 4;
        self.ch.hit_dialplan = true;
    }

    /// The originate failed: its result first, then the channel's hangup (p).
    fn ring_out_failed(&mut self, d: &mut DialOut, cause: HangupCause, disposition: &str) {
        let err = format!("-ERR {}\n", cause.name());
        publish_result(&self.shared, &mut d.result, &err);
        self.ch.begin_hangup(cause, HangupSide::Local);
        self.fire_channel("CHANNEL_HANGUP", &[]);
        self.report.hangup_at = Some(self.since_start());
        self.ch.enter_cs_hangup();
        self.fire_channel("CHANNEL_STATE", &[]);
        let now = self.shared.sw.clock.now_us();
        self.ch.hangup_state(now);
        self.ch.vars.set("sip_hangup_disposition", disposition);
        self.ch.enter_cs_reporting();
        self.fire_channel("CHANNEL_STATE", &[]);
        self.fire_channel("CHANNEL_HANGUP_COMPLETE", &[]);
    }
}

fn publish_result(shared: &Arc<Shared>, result: &mut OriginateResult, text: &str) {
    match std::mem::replace(result, OriginateResult::Done) {
        OriginateResult::Api(tx) => {
            let _ = tx.send(text.to_string());
        }
        OriginateResult::Job { job_uuid, line } => {
            let ev = api::background_job(shared, &job_uuid, None, &line, text);
            shared.bus.publish(Arc::new(ev));
        }
        OriginateResult::Done => {}
    }
}
