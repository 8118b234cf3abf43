//! Invariants of the call engine under arbitrary documents and arbitrary input sequences
//! — events out of order, duplicated, stale, or arriving after the end — since the wire
//! and the application can deliver anything:
//!
//! * it never panics;
//! * at most one application is in flight;
//! * once voxbridge has sent its hangup (or kill) or learned that the channel is down, it
//!   sends nothing more to the switch, and it sends at most one hangup or kill in all
//!   (first hangup wins);
//! * `answer` is executed only right before an element that needs it;
//! * it never fetches more than the limit;
//! * `Finish` comes at most once, and after it every input is dropped;
//! * a `recv_*` disposition is always attributed to the caller, and the recorded cause is
//!   the switch's.

use proptest::prelude::*;
use std::time::{Duration, Instant};
use voxbridge::call::engine::{
    Action, CallEngine, ChannelOp, EngineSettings, FetchFailure, HungUpBy, Input, OpId, OpOutcome,
    Reaction,
};
use voxbridge::cause::HangupCause;
use voxbridge::document::model::{
    AnswerDocument, Dtmf, Gather, Hangup, HangupReason, HttpMethod, Instruction, Play, PostCall,
    Redirect, Reject, Speak, Voice, Wait,
};
use voxbridge::record::call::HangupSource;

const MAX_FETCHES: u32 = 5;

#[derive(Clone, Debug)]
enum Op {
    Start(bool),
    Doc(Vec<Instruction>),
    DocErr(bool),
    CompleteCurrent(OpOutcome),
    CompleteBogus(u64),
    Answered,
    Dtmf(char),
    HungUp(HangupCause),
    HangupComplete(HangupCause, Option<&'static str>),
    SocketLost,
    Api,
    FireTimer,
    /// The driver wakes up with no deadline due.
    EarlyWakeup,
    Advance(u64),
}

fn reason() -> impl Strategy<Value = Option<HangupReason>> {
    prop_oneof![
        Just(None),
        Just(Some(HangupReason::Rejected)),
        Just(Some(HangupReason::Busy)),
        Just(Some(HangupReason::Completed)),
    ]
}

fn media() -> impl Strategy<Value = Instruction> {
    prop_oneof![
        (0u32..3).prop_map(|loop_count| Instruction::Speak(Speak {
            text: "t".into(),
            voice: Voice::Man,
            language: "en-US".into(),
            loop_count,
        })),
        (0u32..3).prop_map(|loop_count| Instruction::Play(Play {
            url: "http://a.test/x.wav".into(),
            loop_count,
        })),
        (1u32..5).prop_map(|length_secs| Instruction::Wait(Wait { length_secs })),
    ]
}

fn instruction() -> impl Strategy<Value = Instruction> {
    prop_oneof![
        4 => media(),
        1 => prop::collection::vec(media(), 0..3).prop_map(Instruction::PreAnswer),
        1 => Just(Instruction::Dtmf(Dtmf { digits: "1#".into(), async_: false })),
        3 => (reason(), prop::option::of(1u32..10), any::<bool>()).prop_map(|(reason, schedule_secs, pc)| {
            Instruction::Hangup(Hangup {
                reason,
                schedule_secs,
                post_call: pc.then(|| PostCall { url: "http://a.test/pc".into(), method: HttpMethod::Post }),
            })
        }),
        1 => prop_oneof![Just(HangupReason::Busy), Just(HangupReason::Rejected)]
            .prop_map(|reason| Instruction::Reject(Reject { reason })),
        2 => Just(Instruction::Redirect(Redirect { url: "http://a.test/r".into(), method: HttpMethod::Get })),
        2 => (prop::collection::vec(media(), 0..3), 1u32..4, any::<bool>(), any::<bool>()).prop_map(
            |(prompts, num_digits, redirect, finish)| {
                Instruction::Gather(Gather {
                    action: "http://a.test/g".into(),
                    method: HttpMethod::Post,
                    execution_timeout_secs: 5,
                    digit_end_timeout_secs: 2,
                    finish_on_key: finish.then_some('#'),
                    num_digits,
                    redirect,
                    log: true,
                    prompts,
                })
            }
        ),
    ]
}

fn cause() -> impl Strategy<Value = HangupCause> {
    prop_oneof![
        Just(HangupCause::NORMAL_CLEARING),
        Just(HangupCause::USER_BUSY),
        Just(HangupCause::CALL_REJECTED),
        Just(HangupCause::ORIGINATOR_CANCEL),
        Just(HangupCause::ALLOTTED_TIMEOUT),
        Just(HangupCause(486)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => any::<bool>().prop_map(Op::Start),
        4 => prop::collection::vec(instruction(), 0..6).prop_map(Op::Doc),
        1 => any::<bool>().prop_map(Op::DocErr),
        8 => prop_oneof![
                Just(OpOutcome::Completed),
                Just(OpOutcome::Completed),
                Just(OpOutcome::Failed("PLAYBACK ERROR".into())),
                Just(OpOutcome::Failed("FILE NOT FOUND".into())),
            ]
            .prop_map(Op::CompleteCurrent),
        1 => (0u64..20).prop_map(Op::CompleteBogus),
        1 => Just(Op::Answered),
        3 => prop_oneof![Just('1'), Just('2'), Just('#')].prop_map(Op::Dtmf),
        1 => cause().prop_map(Op::HungUp),
        1 => (cause(), prop_oneof![
                Just(None), Just(Some("recv_bye")), Just(Some("recv_cancel")),
                Just(Some("send_bye")), Just(Some("send_refuse")), Just(Some("weird"))
            ]).prop_map(|(c, d)| Op::HangupComplete(c, d)),
        1 => Just(Op::SocketLost),
        1 => Just(Op::Api),
        1 => Just(Op::FireTimer),
        1 => Just(Op::EarlyWakeup),
        3 => (0u64..5000).prop_map(Op::Advance),
    ]
}

/// The driver's view, checking the invariants as actions come out.
struct Checker {
    engine: CallEngine,
    now: Instant,
    in_flight: Option<OpId>,
    /// voxbridge sent a hangup/kill, or the switch reported the channel down.
    closing: bool,
    hangups_sent: u32,
    fetches: u32,
    finished: bool,
    last_app: Option<ChannelOp>,
}

impl Checker {
    fn drain(&mut self, finish_from: Option<(HangupCause, Option<&str>)>) {
        while let Some(action) = self.engine.poll_action() {
            assert!(!self.finished, "action after Finish: {action:?}");
            match action {
                Action::Run { id, op: app } => {
                    assert!(!self.closing, "Execute {app:?} while closing");
                    assert!(self.in_flight.is_none(), "two apps in flight");
                    if self.last_app == Some(ChannelOp::Answer) {
                        assert!(
                            matches!(
                                app,
                                ChannelOp::Speak { .. }
                                    | ChannelOp::Play { .. }
                                    | ChannelOp::SendDigits { .. }
                                    | ChannelOp::FlushDigits
                            ),
                            "answer was not for an element that needs it: {app:?}"
                        );
                    }
                    if let ChannelOp::Hangup { .. } = app {
                        self.closing = true;
                        self.hangups_sent += 1;
                    }
                    self.in_flight = Some(id);
                    self.last_app = Some(app);
                }
                Action::HangupAfterOp { .. } => {
                    // Only ever the fallback of a refused uuid_kill.
                    assert!(self.closing, "hangup message without a kill before it");
                }
                Action::Kill { .. } => {
                    assert!(!self.closing, "Kill while closing");
                    self.closing = true;
                    self.hangups_sent += 1;
                }
                Action::Fetch(_) => {
                    assert!(!self.closing, "Fetch while closing");
                    self.fetches += 1;
                    assert!(self.fetches <= MAX_FETCHES, "fetch limit exceeded");
                }
                Action::Finish(ending) => {
                    self.finished = true;
                    if let Some((cause, disposition)) = finish_from {
                        assert_eq!(ending.cause, cause, "recorded cause is the switch's");
                        if disposition.is_some_and(|d| d.starts_with("recv_")) {
                            assert_eq!(ending.source, HangupSource::Caller);
                        }
                    }
                    assert!(ending.cause_name.len() <= 200);
                }
                Action::ScheduleArmed { .. }
                | Action::ScheduleCleared
                | Action::KillLeg { .. }
                | Action::LegsEnded { .. }
                | Action::DialAnswered { .. }
                | Action::RecordingComplete(_)
                | Action::DialDigitsMatch { .. } => {}
                Action::StopRecordings(_) | Action::StartRecording { .. } => {
                    assert!(!self.closing, "recording command while closing");
                }
                Action::Interrupt => {
                    assert!(self.in_flight.is_some(), "Interrupt with nothing running");
                    assert!(!self.closing, "Interrupt while closing");
                }
                // A Dial's action is still requested after the caller hung up (§11.4),
                // and a Record's once its file is complete (§12.2).
                Action::Request(r) => assert!(
                    !self.closing || matches!(r.event.as_str(), "DialAction" | "Record"),
                    "Request while closing"
                ),
            }
            assert!(self.hangups_sent <= 1, "more than one hangup sent");
        }
        if self.closing {
            assert_eq!(
                self.engine.poll_timeout(),
                None,
                "timer armed while closing"
            );
        }
    }

    fn apply(&mut self, op: Op) {
        let mut finish_from = None;
        let input = match op {
            Op::Advance(ms) => {
                self.now += Duration::from_millis(ms);
                return;
            }
            Op::Start(answered) => Input::Start { answered },
            Op::Doc(instructions) => Input::DocumentFetched(Ok(AnswerDocument { instructions })),
            Op::DocErr(invalid) => Input::DocumentFetched(Err(if invalid {
                FetchFailure::Invalid("line 1, col 1: bad".into())
            } else {
                FetchFailure::NoDocument("HTTP 503".into())
            })),
            Op::CompleteCurrent(outcome) => match self.in_flight {
                Some(id) => Input::OpFinished { id, outcome },
                None => return,
            },
            Op::CompleteBogus(n) => Input::OpFinished {
                id: OpId(1000 + n),
                outcome: OpOutcome::Completed,
            },
            Op::Answered => Input::Answered,
            Op::Dtmf(digit) => Input::Dtmf(digit),
            Op::HungUp(cause) => {
                self.closing = true;
                Input::ChannelHungUp { cause }
            }
            Op::HangupComplete(cause, disposition) => {
                self.closing = true;
                finish_from = Some((cause, disposition));
                Input::HangupComplete {
                    cause,
                    hung_up_by: match disposition.map(|d| d.split('_').next()) {
                        Some(Some("recv")) => HungUpBy::Caller,
                        Some(Some("send")) => HungUpBy::Switch,
                        _ => HungUpBy::Unknown,
                    },
                    detail: disposition.map(String::from),
                }
            }
            Op::SocketLost => Input::SocketLost,
            Op::Api => Input::ApiHangup,
            Op::FireTimer => match self.engine.poll_timeout() {
                Some(due) => {
                    self.now = self.now.max(due);
                    return self.timeout();
                }
                None => return,
            },
            // A wake-up before any deadline (or with none) must be harmless.
            Op::EarlyWakeup => return self.timeout(),
        };
        if let Input::OpFinished { id, .. } = &input {
            if self.in_flight == Some(*id) {
                self.in_flight = None;
            }
        }
        let was_finished = self.finished;
        let reaction = self.engine.handle(self.now, input);
        if was_finished {
            assert_eq!(reaction, Reaction::AfterFinish);
        } else {
            assert_ne!(reaction, Reaction::AfterFinish);
        }
        self.drain(finish_from);
    }
}

impl Checker {
    /// The driver's sleep ended: `handle_timeout` at the current time.
    fn timeout(&mut self) {
        let was_finished = self.finished;
        let reaction = self.engine.handle_timeout(self.now);
        if was_finished {
            assert_eq!(reaction, Reaction::AfterFinish);
        } else {
            assert_ne!(reaction, Reaction::AfterFinish);
        }
        self.drain(None);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn engine_invariants_hold_for_any_input_sequence(
        has_url in prop::bool::weighted(0.95),
        ops in prop::collection::vec(op(), 0..60),
    ) {
        let settings = EngineSettings { max_fetches: MAX_FETCHES, ..EngineSettings::default() };
        let mut checker = Checker {
            engine: CallEngine::new(settings, has_url.then(|| "http://a.test/answer".to_string())),
            now: Instant::now(),
            in_flight: None,
            closing: false,
            hangups_sent: 0,
            fetches: 0,
            finished: false,
            last_app: None,
        };
        for op in ops {
            checker.apply(op);
        }
        // Whatever happened, the switch's final event always produces the one Finish.
        if !checker.finished {
            checker.apply(Op::HangupComplete(HangupCause::NORMAL_CLEARING, Some("send_bye")));
            prop_assert!(checker.finished);
        }
    }
}
