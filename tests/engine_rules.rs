//! The call engine, driven as the FreeSWITCH driver drives it, read as a specification of
//! SPEC §3 (what each element does to the switch, and whether it answers) and §4 (every
//! Hangup rule), and of the attribution table of §5.2.
//!
//! The harness plays the driver: it feeds inputs at chosen times and collects actions.
//! Where the switch would react (an app completes, the channel hangs up), the test says
//! so explicitly, with the events and dispositions the transcripts show.

use std::time::{Duration, Instant};
use voxbridge::call::engine::{
    Action, CallEngine, ChannelOp, CommandFailure, DocumentFetch, EngineSettings, FetchFailure,
    HangupCommand, HungUpBy, Input, OpId, OpOutcome, Reaction, MAX_FETCHES_PER_CALL,
};
use voxbridge::call::hangup::Ending;
use voxbridge::cause::HangupCause;
use voxbridge::document::model::{
    AnswerDocument, Dtmf, FetchEvent, Hangup, HangupReason, HttpMethod, Instruction, Play,
    PostCall, Redirect, Reject, Speak, Voice, Wait,
};
use voxbridge::record::call::HangupSource;

const ANSWER_URL: &str = "http://app.test/answer";

// ---------------------------------------------------------------- documents

fn speak(text: &str) -> Instruction {
    Instruction::Speak(Speak {
        text: text.into(),
        voice: Voice::Woman,
        language: "en-US".into(),
        loop_count: 1,
    })
}

fn speak_loop(text: &str, loop_count: u32) -> Instruction {
    Instruction::Speak(Speak {
        text: text.into(),
        voice: Voice::Woman,
        language: "en-US".into(),
        loop_count,
    })
}

fn play(url: &str, loop_count: u32) -> Instruction {
    Instruction::Play(Play {
        url: url.into(),
        loop_count,
    })
}

fn wait(secs: u32) -> Instruction {
    Instruction::Wait(Wait { length_secs: secs })
}

fn dtmf(digits: &str) -> Instruction {
    Instruction::Dtmf(Dtmf {
        digits: digits.into(),
        async_: false,
    })
}

fn hangup() -> Instruction {
    hangup_with(None, None, None)
}

fn hangup_reason(reason: HangupReason) -> Instruction {
    hangup_with(Some(reason), None, None)
}

fn hangup_with(
    reason: Option<HangupReason>,
    schedule_secs: Option<u32>,
    post_call_url: Option<&str>,
) -> Instruction {
    Instruction::Hangup(Hangup {
        reason,
        schedule_secs,
        post_call: post_call_url.map(|u| PostCall {
            url: u.into(),
            method: HttpMethod::Post,
        }),
    })
}

fn reject(reason: HangupReason) -> Instruction {
    Instruction::Reject(Reject { reason })
}

fn redirect(url: &str) -> Instruction {
    Instruction::Redirect(Redirect {
        url: url.into(),
        method: HttpMethod::Post,
    })
}

fn doc(instructions: Vec<Instruction>) -> AnswerDocument {
    AnswerDocument { instructions }
}

// ---------------------------------------------------------------- harness

/// Plays the driver around one engine.
struct Call {
    engine: CallEngine,
    t0: Instant,
    now: Instant,
}

impl Call {
    fn new() -> Self {
        Self::with(EngineSettings::default(), Some(ANSWER_URL))
    }

    fn with(settings: EngineSettings, answer_url: Option<&str>) -> Self {
        let t0 = Instant::now();
        Self {
            engine: CallEngine::new(settings, answer_url.map(String::from)),
            t0,
            now: t0,
        }
    }

    /// Moves the clock to `secs` after the start of the call.
    fn at(&mut self, secs: f64) -> &mut Self {
        self.now = self.t0 + Duration::from_secs_f64(secs);
        self
    }

    fn feed(&mut self, input: Input) -> Vec<Action> {
        let reaction = self.engine.handle(self.now, input);
        assert_ne!(reaction, Reaction::AfterFinish, "input after Finish");
        self.drain()
    }

    fn feed_reaction(&mut self, input: Input) -> (Reaction, Vec<Action>) {
        let reaction = self.engine.handle(self.now, input);
        (reaction, self.drain())
    }

    /// The driver's sleep until `poll_timeout()` ended at the current time.
    fn timeout(&mut self) -> (Reaction, Vec<Action>) {
        let reaction = self.engine.handle_timeout(self.now);
        (reaction, self.drain())
    }

    fn drain(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        while let Some(a) = self.engine.poll_action() {
            out.push(a);
        }
        out
    }

    /// Start, and serve the first document.
    fn run(&mut self, answered: bool, instructions: Vec<Instruction>) -> Vec<Action> {
        let a = self.feed(Input::Start { answered });
        assert_eq!(
            a,
            vec![Action::Fetch(DocumentFetch {
                url: ANSWER_URL.into(),
                method: HttpMethod::Post,
                event: FetchEvent::StartApp,
            })]
        );
        self.serve(instructions)
    }

    fn serve(&mut self, instructions: Vec<Instruction>) -> Vec<Action> {
        self.feed(Input::DocumentFetched(Ok(doc(instructions))))
    }

    /// The switch completes the app executed in `actions` (as it does with event-lock),
    /// and — like the switch — raises CHANNEL_ANSWER when the app is `answer`.
    fn complete(&mut self, actions: &[Action]) -> Vec<Action> {
        let (id, app) = only_execute(actions);
        if app == ChannelOp::Answer {
            assert_eq!(self.feed(Input::Answered), vec![]);
        }
        let response = match app {
            // "FILE PLAYED" and "_none_" on the switch: both ran to their end.
            ChannelOp::Play { .. } => OpOutcome::Completed,
            _ => OpOutcome::Completed,
        };
        self.feed(Input::OpFinished {
            id,
            outcome: response,
        })
    }

    /// Completes every app in turn until the engine asks for something other than an app
    /// (a fetch, a timer, a kill) or executes `hangup`. Returns the apps in order and the
    /// last batch of actions. Each app takes one second of call time.
    fn complete_all(&mut self, mut actions: Vec<Action>) -> (Vec<ChannelOp>, Vec<Action>) {
        let mut apps = Vec::new();
        let mut t = self.now.duration_since(self.t0).as_secs_f64();
        loop {
            let Some((_, app)) = executes(&actions).into_iter().next() else {
                return (apps, actions);
            };
            apps.push(app.clone());
            if matches!(app, ChannelOp::Hangup { .. }) {
                return (apps, actions);
            }
            if !matches!(
                app,
                ChannelOp::Answer | ChannelOp::PreAnswer | ChannelOp::CancelArmedHangups
            ) {
                t += 1.0;
                self.at(t);
            }
            actions = self.complete(&actions);
        }
    }

    /// The switch executes the `hangup` app in `actions`: CHANNEL_HANGUP, the app's
    /// EXECUTE_COMPLETE, then HANGUP_COMPLETE with the disposition the switch reports
    /// when it sent the hangup itself.
    fn switch_hangs_up(&mut self, actions: &[Action]) -> Ending {
        let (id, app) = only_execute(actions);
        let ChannelOp::Hangup { cause } = app else {
            panic!("expected hangup, got {app:?}");
        };
        assert_eq!(self.feed(Input::ChannelHungUp { cause }), vec![]);
        assert_eq!(
            self.feed(Input::OpFinished {
                id,
                outcome: OpOutcome::Completed
            }),
            vec![]
        );
        self.hangup_complete(cause, self.sent_disposition())
    }

    fn sent_disposition(&self) -> &'static str {
        if self.engine.answered() {
            "send_bye"
        } else {
            "send_refuse"
        }
    }

    /// HANGUP_COMPLETE with the disposition the transcripts show, read as the driver
    /// reads it: `recv_*` the caller hung up, `send_*` the switch did.
    fn hangup_complete(&mut self, cause: HangupCause, disposition: &str) -> Ending {
        let hung_up_by = match disposition.split('_').next() {
            Some("recv") => HungUpBy::Caller,
            Some("send") => HungUpBy::Switch,
            _ => HungUpBy::Unknown,
        };
        let a = self.feed(Input::HangupComplete {
            cause,
            hung_up_by,
            detail: Some(disposition.into()),
        });
        finish(&a)
    }
}

fn executes(actions: &[Action]) -> Vec<(OpId, ChannelOp)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Run { id, op: app } => Some((*id, app.clone())),
            _ => None,
        })
        .collect()
}

fn only_execute(actions: &[Action]) -> (OpId, ChannelOp) {
    let ex = executes(actions);
    assert_eq!(ex.len(), 1, "expected exactly one Execute in {actions:?}");
    ex[0].clone()
}

fn finish(actions: &[Action]) -> Ending {
    let ends: Vec<&Ending> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Finish(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(ends.len(), 1, "expected one Finish in {actions:?}");
    ends[0].clone()
}

/// The kinds of operations, in order (names of this test, not of any switch).
fn names(ops: &[ChannelOp]) -> Vec<&'static str> {
    ops.iter()
        .map(|op| match op {
            ChannelOp::Answer => "answer",
            ChannelOp::PreAnswer => "pre_answer",
            ChannelOp::Speak { .. } => "speak",
            ChannelOp::Play { .. } => "play",
            ChannelOp::Wait { .. } => "wait",
            ChannelOp::SendDigits { .. } => "send_digits",
            ChannelOp::Hangup { .. } => "hangup",
            ChannelOp::ArmHangup { .. } => "arm_hangup",
            ChannelOp::CancelArmedHangups => "cancel_armed_hangups",
            ChannelOp::Bridge(_) => "bridge",
            ChannelOp::FlushDigits => "flush_digits",
            ChannelOp::Silence { .. } => "silence",
            ChannelOp::Record(_) => "record",
            ChannelOp::StartSessionRecording { .. } => "start_session_recording",
        })
        .collect()
}

fn hangup_app(cause: HangupCause) -> ChannelOp {
    ChannelOp::Hangup { cause }
}

fn post_call_url(e: &Ending) -> Option<&str> {
    e.post_call.as_ref().map(|p| p.url.as_str())
}

fn speak_app(text: &str) -> ChannelOp {
    ChannelOp::Speak {
        voice: Voice::Woman,
        language: "en-US".into(),
        text: text.into(),
    }
}

// ================================================================ SPEC §4 rule 1

#[test]
fn rule_1_immediate_hangup_ends_the_call_and_nothing_after_it_runs() {
    let mut call = Call::new();
    let a = call.run(
        false,
        vec![
            speak("hi"),
            hangup(),
            speak("never"),
            redirect("http://app.test/never"),
        ],
    );
    let (apps, last) = call.complete_all(a);
    assert_eq!(
        apps,
        vec![
            ChannelOp::Answer,
            speak_app("hi"),
            hangup_app(HangupCause::NORMAL_CLEARING)
        ]
    );
    let e = call.switch_hangs_up(&last);
    assert_eq!(e.cause, HangupCause::NORMAL_CLEARING);
    assert_eq!(e.cause_code, 16);
    assert_eq!(e.cause_name, "Normal Hangup");
    assert_eq!(e.source, HangupSource::AnswerXml);
    assert_eq!(e.reason, HangupReason::Completed);
    assert_eq!(e.sip_status, Some(200));
    assert_eq!(
        call.engine.fetch_count(),
        1,
        "the Redirect after Hangup was fetched"
    );
}

#[test]
fn rule_1_the_hangup_app_completing_does_not_resume_the_document() {
    let mut call = Call::new();
    let a = call.run(true, vec![wait(1), hangup(), speak("never")]);
    let (_, last) = call.complete_all(a);
    // The hangup app's own completion arrives before CHANNEL_HANGUP in some orders.
    let (id, _) = only_execute(&last);
    let after = call.feed(Input::OpFinished {
        id,
        outcome: OpOutcome::Completed,
    });
    assert_eq!(after, vec![]);
}

// ================================================================ SPEC §4 rule 2 + the table

#[test]
fn rule_2_first_hangup_without_reason_rejects_an_unanswered_call_without_answering() {
    let mut call = Call::new();
    let a = call.run(false, vec![hangup(), speak("never")]);
    assert_eq!(
        executes(&a),
        vec![(executes(&a)[0].0, hangup_app(HangupCause::CALL_REJECTED))]
    );
    let e = call.switch_hangs_up(&a);
    assert!(!e.answered);
    assert_eq!(e.cause, HangupCause::CALL_REJECTED);
    assert_eq!(e.cause_code, 21);
    assert_eq!(e.cause_name, "Rejected");
    assert_eq!(e.reason, HangupReason::Rejected);
    assert_eq!(e.source, HangupSource::AnswerXml);
    assert_eq!(e.sip_status, Some(603));
}

#[test]
fn rule_2_busy_hangup_on_an_unanswered_call_is_486_and_never_answered() {
    let mut call = Call::new();
    let a = call.run(false, vec![hangup_reason(HangupReason::Busy)]);
    let (apps, last) = call.complete_all(a);
    assert_eq!(apps, vec![hangup_app(HangupCause::USER_BUSY)]);
    let e = call.switch_hangs_up(&last);
    assert_eq!(
        (
            e.cause_code,
            e.cause_name.as_str(),
            e.reason,
            e.sip_status,
            e.answered
        ),
        (17, "Busy Line", HangupReason::Busy, Some(486), false)
    );
}

#[test]
fn rule_2_hangup_after_a_wait_keeps_the_call_unanswered_and_is_480() {
    let mut call = Call::new();
    let a = call.run(false, vec![wait(2), hangup()]);
    let (apps, last) = call.complete_all(a);
    assert_eq!(
        apps,
        vec![
            ChannelOp::Wait {
                duration: Duration::from_millis(2000)
            },
            hangup_app(HangupCause::NORMAL_CLEARING)
        ]
    );
    let e = call.switch_hangs_up(&last);
    assert_eq!(e.cause_name, "Normal Hangup");
    assert_eq!(e.sip_status, Some(480));
    assert!(!e.answered);
}

#[test]
fn rule_2_busy_after_a_speak_answers_for_the_speak_then_byes_with_user_busy() {
    let mut call = Call::new();
    let a = call.run(
        false,
        vec![speak("sorry"), hangup_reason(HangupReason::Busy)],
    );
    let (apps, last) = call.complete_all(a);
    assert_eq!(
        names(&apps),
        vec!["answer", "speak", "hangup"],
        "answer only because Speak needs it"
    );
    assert_eq!(apps[2], hangup_app(HangupCause::USER_BUSY));
    let e = call.switch_hangs_up(&last);
    assert!(e.answered);
    assert_eq!(e.cause, HangupCause::USER_BUSY);
    assert_eq!(e.sip_status, Some(200), "a BYE after answer");
    assert_eq!(e.cause_name, "Busy Line");
}

/// SPEC §4 table, every row, both answer states. `first` rows put the Hangup first;
/// the others put a Wait (which never answers) before it.
#[test]
fn rule_2_reason_table_every_row_before_and_after_answer() {
    use HangupReason::*;
    let rows: [(Option<HangupReason>, bool, HangupCause, &str, HangupReason); 7] = [
        (
            Some(Rejected),
            false,
            HangupCause::CALL_REJECTED,
            "Rejected",
            Rejected,
        ),
        (Some(Busy), false, HangupCause::USER_BUSY, "Busy Line", Busy),
        (
            Some(Completed),
            false,
            HangupCause::NORMAL_CLEARING,
            "Normal Hangup",
            Completed,
        ),
        (Some(Busy), true, HangupCause::USER_BUSY, "Busy Line", Busy),
        (
            Some(Completed),
            true,
            HangupCause::NORMAL_CLEARING,
            "Normal Hangup",
            Completed,
        ),
        (None, true, HangupCause::CALL_REJECTED, "Rejected", Rejected),
        (
            None,
            false,
            HangupCause::NORMAL_CLEARING,
            "Normal Hangup",
            Completed,
        ),
    ];
    for (reason, first, cause, name, reported) in rows {
        for answered in [false, true] {
            let mut call = Call::new();
            let mut doc = vec![hangup_with(reason, None, None)];
            if !first {
                doc.insert(0, wait(1));
            }
            let a = call.run(answered, doc);
            let (apps, last) = call.complete_all(a);
            assert!(
                !apps
                    .iter()
                    .any(|a| matches!(a, ChannelOp::Answer | ChannelOp::PreAnswer)),
                "Hangup must never answer: {apps:?}"
            );
            assert_eq!(
                apps.last(),
                Some(&hangup_app(cause)),
                "{reason:?} first={first}"
            );
            let e = call.switch_hangs_up(&last);
            let case = format!("{reason:?} first={first} answered={answered}");
            assert_eq!(e.cause, cause, "{case}");
            assert_eq!(e.cause_code, cause.q850(), "{case}");
            assert_eq!(e.cause_name, name, "{case}");
            assert_eq!(e.reason, reported, "{case}");
            assert_eq!(e.source, HangupSource::AnswerXml, "{case}");
            let sip = if answered {
                200
            } else {
                cause.sip_refuse_code()
            };
            assert_eq!(e.sip_status, Some(sip), "{case}");
        }
    }
}

#[test]
fn rule_2_first_hangup_on_an_answered_call_is_a_rejected_bye() {
    let mut call = Call::new();
    let a = call.run(true, vec![hangup()]);
    assert_eq!(only_execute(&a).1, hangup_app(HangupCause::CALL_REJECTED));
    let e = call.switch_hangs_up(&a);
    assert_eq!((e.cause_code, e.sip_status), (21, Some(200)));
    assert_eq!(e.reason, HangupReason::Rejected);
}

#[test]
fn rule_2_a_hangup_first_in_a_redirected_document_counts_as_first() {
    let mut call = Call::new();
    let a = call.run(false, vec![wait(1), redirect("http://app.test/next")]);
    let (_, last) = call.complete_all(a);
    assert_eq!(
        last,
        vec![Action::Fetch(DocumentFetch {
            url: "http://app.test/next".into(),
            method: HttpMethod::Post,
            event: FetchEvent::Redirect,
        })]
    );
    let a = call.serve(vec![hangup()]);
    assert_eq!(only_execute(&a).1, hangup_app(HangupCause::CALL_REJECTED));
    let e = call.switch_hangs_up(&a);
    assert_eq!(e.reason, HangupReason::Rejected);
    assert_eq!(e.sip_status, Some(603));
}

#[test]
fn rule_2_reject_never_answers_or_pre_answers() {
    for (reason, cause, sip) in [
        (HangupReason::Busy, HangupCause::USER_BUSY, 486),
        (HangupReason::Rejected, HangupCause::CALL_REJECTED, 603),
    ] {
        let mut call = Call::new();
        let a = call.run(false, vec![wait(1), reject(reason), speak("never")]);
        let (apps, last) = call.complete_all(a);
        assert_eq!(
            apps,
            vec![
                ChannelOp::Wait {
                    duration: Duration::from_millis(1000)
                },
                hangup_app(cause)
            ]
        );
        let e = call.switch_hangs_up(&last);
        assert_eq!(e.sip_status, Some(sip));
        assert_eq!(e.reason, reason);
        assert!(e.notes.is_empty(), "{:?}", e.notes);
    }
}

#[test]
fn rule_2_reject_on_an_answered_call_acts_as_hangup_and_notes_a_warning() {
    let mut call = Call::new();
    let a = call.run(false, vec![speak("hello"), reject(HangupReason::Busy)]);
    let (apps, last) = call.complete_all(a);
    assert_eq!(names(&apps), vec!["answer", "speak", "hangup"]);
    let e = call.switch_hangs_up(&last);
    assert_eq!(e.cause, HangupCause::USER_BUSY);
    assert_eq!(e.cause_name, "Busy Line");
    assert_eq!(e.sip_status, Some(200));
    assert!(
        e.notes
            .iter()
            .any(|n| n.contains("Reject") && n.contains("answered")),
        "{:?}",
        e.notes
    );
}

// ================================================================ SPEC §4 rule 3

#[test]
fn rule_3_schedule_arms_sched_hangup_and_continues_then_the_switch_fires_it() {
    let mut call = Call::new();
    let a = call.run(
        true,
        vec![hangup_with(None, Some(2), None), speak_loop("hold", 0)],
    );
    let (id, app) = only_execute(&a);
    assert_eq!(
        app,
        ChannelOp::ArmHangup {
            after: Duration::from_secs(2),
            cause: HangupCause::NORMAL_CLEARING
        },
        "a scheduled Hangup is never first: no reason → NORMAL_CLEARING"
    );
    assert!(a.contains(&Action::ScheduleArmed {
        after: Duration::from_secs(2)
    }));
    assert_eq!(
        call.engine.scheduled_hangup_due(),
        Some(call.t0 + Duration::from_secs(2))
    );
    call.at(0.1);
    let a = call.feed(Input::OpFinished {
        id,
        outcome: OpOutcome::Completed,
    });
    let (speak_id, app) = only_execute(&a);
    assert_eq!(
        app,
        speak_app("hold"),
        "execution continues with the next element"
    );
    // The switch fires the schedule at ~2 s (transcript b: the playback ends FILE PLAYED).
    call.at(2.0);
    assert_eq!(
        call.feed(Input::ChannelHungUp {
            cause: HangupCause::NORMAL_CLEARING
        }),
        vec![]
    );
    assert_eq!(
        call.feed(Input::OpFinished {
            id: speak_id,
            outcome: OpOutcome::Completed
        }),
        vec![],
        "nothing is executed on a hung-up channel"
    );
    let e = call.hangup_complete(HangupCause::NORMAL_CLEARING, "send_bye");
    assert_eq!(e.source, HangupSource::AnswerXml);
    assert_eq!(e.cause_name, "Normal Hangup");
    assert_eq!(e.reason, HangupReason::Completed);
}

#[test]
fn rule_3_scheduled_hangup_uses_its_mapped_reason_when_it_fires() {
    let mut call = Call::new();
    let a = call.run(
        false,
        vec![
            hangup_with(Some(HangupReason::Busy), Some(5), None),
            wait(30),
        ],
    );
    let (_, app) = only_execute(&a);
    assert_eq!(
        app,
        ChannelOp::ArmHangup {
            after: Duration::from_secs(5),
            cause: HangupCause::USER_BUSY
        }
    );
    let a = call.complete(&a);
    assert_eq!(
        only_execute(&a).1,
        ChannelOp::Wait {
            duration: Duration::from_millis(30_000)
        }
    );
    call.at(4.6); // the switch's scheduler fires early
    call.feed(Input::ChannelHungUp {
        cause: HangupCause::USER_BUSY,
    });
    let e = call.hangup_complete(HangupCause::USER_BUSY, "send_refuse");
    assert_eq!(
        (e.source, e.cause_name.as_str(), e.reason, e.sip_status),
        (
            HangupSource::AnswerXml,
            "Busy Line",
            HangupReason::Busy,
            Some(486)
        )
    );
    assert!(!e.answered);
}

#[test]
fn rule_3_schedule_with_nothing_after_it_ends_the_call_at_once_as_end_of_document() {
    let mut call = Call::new();
    let a = call.run(true, vec![hangup_with(None, Some(2), None)]);
    let (apps, last) = call.complete_all(a);
    assert_eq!(
        apps,
        vec![
            ChannelOp::ArmHangup {
                after: Duration::from_secs(2),
                cause: HangupCause::NORMAL_CLEARING
            },
            hangup_app(HangupCause::NORMAL_CLEARING)
        ]
    );
    let e = call.switch_hangs_up(&last);
    assert_eq!(e.cause_name, "End Of XML Instructions");
    assert_eq!(e.source, HangupSource::AnswerXml);
}

#[test]
fn rule_3_redirect_cancels_the_armed_schedule_before_the_new_document_runs() {
    let mut call = Call::new();
    let a = call.run(
        false,
        vec![
            hangup_with(None, Some(10), Some("http://app.test/post")),
            redirect("http://app.test/next"),
        ],
    );
    let a = call.complete(&a);
    assert!(matches!(
        &a[..],
        [Action::Fetch(DocumentFetch {
            event: FetchEvent::Redirect,
            ..
        })]
    ));
    let a = call.serve(vec![speak("new document")]);
    assert_eq!(only_execute(&a).1, ChannelOp::CancelArmedHangups);
    assert!(a.contains(&Action::ScheduleCleared));
    assert_eq!(call.engine.scheduled_hangup_due(), None);
    let (apps, last) = call.complete_all(a);
    assert_eq!(
        names(&apps),
        vec!["cancel_armed_hangups", "answer", "speak", "hangup"]
    );
    let e = call.switch_hangs_up(&last);
    assert_eq!(e.cause_name, "End Of XML Instructions");
    assert_eq!(
        e.post_call, None,
        "the cancelled schedule's workflow never fires"
    );
    assert!(
        e.notes.iter().any(|n| n.contains("cancelled by Redirect")),
        "{:?}",
        e.notes
    );
}

#[test]
fn rule_3_a_redirected_document_arms_its_own_schedule() {
    let mut call = Call::new();
    let a = call.run(
        true,
        vec![
            hangup_with(None, Some(10), None),
            redirect("http://app.test/next"),
        ],
    );
    let a = call.complete(&a);
    assert!(matches!(&a[..], [Action::Fetch(_)]));
    call.at(1.0);
    let a = call.serve(vec![
        hangup_with(Some(HangupReason::Busy), Some(3), None),
        wait(60),
    ]);
    assert_eq!(only_execute(&a).1, ChannelOp::CancelArmedHangups);
    let a = call.complete(&a);
    assert_eq!(
        only_execute(&a).1,
        ChannelOp::ArmHangup {
            after: Duration::from_secs(3),
            cause: HangupCause::USER_BUSY
        }
    );
    assert!(a.contains(&Action::ScheduleArmed {
        after: Duration::from_secs(3)
    }));
    assert_eq!(
        call.engine.scheduled_hangup_due(),
        Some(call.t0 + Duration::from_secs(4))
    );
    let a = call.complete(&a);
    assert_eq!(
        only_execute(&a).1,
        ChannelOp::Wait {
            duration: Duration::from_millis(60_000)
        }
    );
}

#[test]
fn rule_3_redirect_without_an_armed_schedule_sends_no_sched_cancel() {
    let mut call = Call::new();
    let a = call.run(true, vec![redirect("http://app.test/next")]);
    assert!(matches!(&a[..], [Action::Fetch(_)]));
    let a = call.serve(vec![wait(1)]);
    assert_eq!(
        only_execute(&a).1,
        ChannelOp::Wait {
            duration: Duration::from_millis(1000)
        }
    );
}

#[test]
fn rule_3_the_earliest_of_several_schedules_is_published() {
    let mut call = Call::new();
    let a = call.run(
        true,
        vec![
            hangup_with(None, Some(60), None),
            hangup_with(None, Some(5), None),
            wait(100),
        ],
    );
    assert!(a.contains(&Action::ScheduleArmed {
        after: Duration::from_secs(60)
    }));
    call.at(1.0);
    let a = call.complete(&a);
    assert!(
        a.contains(&Action::ScheduleArmed {
            after: Duration::from_secs(5)
        }),
        "{a:?}"
    );
}

// ================================================================ SPEC §4 rule 4

#[test]
fn rule_4_caller_hangs_up_mid_speak_no_further_app_is_executed() {
    let mut call = Call::new();
    let a = call.run(
        false,
        vec![
            speak("long"),
            hangup_with(Some(HangupReason::Busy), None, Some("http://app.test/post")),
        ],
    );
    let a = call.complete(&a); // answer
    let (speak_id, _) = only_execute(&a);
    call.at(1.5);
    // Transcript c: CHANNEL_HANGUP, then the interrupted app's PLAYBACK ERROR.
    assert_eq!(
        call.feed(Input::ChannelHungUp {
            cause: HangupCause::NORMAL_CLEARING
        }),
        vec![]
    );
    assert_eq!(
        call.feed(Input::OpFinished {
            id: speak_id,
            outcome: OpOutcome::Failed("PLAYBACK ERROR".into())
        }),
        vec![]
    );
    let e = call.hangup_complete(HangupCause::NORMAL_CLEARING, "recv_bye");
    assert_eq!(e.source, HangupSource::Caller);
    assert_eq!(e.cause_name, "Caller Hangup");
    assert_eq!(e.reason, HangupReason::Completed);
    assert!(!e.caller_abandoned);
    assert_eq!(e.sip_status, Some(200));
    assert_eq!(e.post_call, None, "the Hangup was never reached");
}

#[test]
fn rule_4_caller_abandons_before_answer_is_cancel_with_487() {
    let mut call = Call::new();
    let a = call.run(false, vec![wait(30)]);
    let (id, _) = only_execute(&a);
    call.at(3.0);
    call.feed(Input::ChannelHungUp {
        cause: HangupCause::ORIGINATOR_CANCEL,
    });
    call.feed(Input::OpFinished {
        id,
        outcome: OpOutcome::Completed,
    });
    let e = call.hangup_complete(HangupCause::ORIGINATOR_CANCEL, "recv_cancel");
    assert_eq!(e.source, HangupSource::Caller);
    assert!(e.caller_abandoned);
    assert_eq!(e.sip_status, Some(487));
    assert_eq!(e.cause_code, 16, "ORIGINATOR_CANCEL reports q850 16");
}

#[test]
fn rule_4_caller_bye_that_beats_our_hangup_is_recorded_as_the_caller() {
    let mut call = Call::new();
    let a = call.run(
        true,
        vec![
            wait(1),
            hangup_with(Some(HangupReason::Busy), None, Some("http://app.test/post")),
        ],
    );
    let (_, last) = call.complete_all(a);
    assert_eq!(only_execute(&last).1, hangup_app(HangupCause::USER_BUSY));
    // The caller's BYE arrived first: the switch reports recv_bye and the BYE's cause.
    call.feed(Input::ChannelHungUp {
        cause: HangupCause::NORMAL_CLEARING,
    });
    let e = call.hangup_complete(HangupCause::NORMAL_CLEARING, "recv_bye");
    assert_eq!(e.source, HangupSource::Caller);
    assert_eq!(e.cause, HangupCause::NORMAL_CLEARING);
    assert_eq!(e.post_call, None, "our Hangup did not close the call");
}

#[test]
fn rule_4_schedule_that_fires_first_wins_over_a_later_hangup_with_post_call() {
    let mut call = Call::new();
    let a = call.run(
        true,
        vec![
            hangup_with(None, Some(2), Some("http://app.test/scheduled")),
            speak("long"),
            hangup_with(None, None, Some("http://app.test/explicit")),
        ],
    );
    let a = call.complete(&a); // sched_hangup taken
    let (speak_id, _) = only_execute(&a);
    call.at(1.98);
    call.feed(Input::ChannelHungUp {
        cause: HangupCause::NORMAL_CLEARING,
    });
    assert_eq!(
        call.feed(Input::OpFinished {
            id: speak_id,
            outcome: OpOutcome::Completed
        }),
        vec![],
        "the later Hangup is never executed"
    );
    let e = call.hangup_complete(HangupCause::NORMAL_CLEARING, "send_bye");
    assert_eq!(e.source, HangupSource::AnswerXml);
    assert_eq!(post_call_url(&e), Some("http://app.test/scheduled"));
}

#[test]
fn rule_4_a_hangup_reached_before_the_schedule_fires_wins() {
    let mut call = Call::new();
    let a = call.run(
        true,
        vec![
            hangup_with(None, Some(60), Some("http://app.test/scheduled")),
            speak("short"),
            hangup_with(
                Some(HangupReason::Busy),
                None,
                Some("http://app.test/explicit"),
            ),
        ],
    );
    let (apps, last) = call.complete_all(a);
    assert_eq!(names(&apps), vec!["arm_hangup", "speak", "hangup"]);
    let e = call.switch_hangs_up(&last);
    assert_eq!(e.cause_name, "Busy Line");
    assert_eq!(post_call_url(&e), Some("http://app.test/explicit"));
    assert!(
        e.notes
            .iter()
            .any(|n| n.contains("http://app.test/scheduled") && n.contains("not called")),
        "{:?}",
        e.notes
    );
}

#[test]
fn rule_4_schedule_due_just_before_our_end_of_document_hangup_is_the_winner() {
    // The Speak ends at the very moment the schedule is due: we send the end-of-document
    // hangup, but the switch had already fired the schedule (same cause).
    let mut call = Call::new();
    let a = call.run(
        true,
        vec![
            hangup_with(None, Some(2), Some("http://app.test/scheduled")),
            speak("x"),
        ],
    );
    let a = call.complete(&a);
    call.at(2.05);
    let a = call.complete(&a); // speak completes; end of document
    assert_eq!(only_execute(&a).1, hangup_app(HangupCause::NORMAL_CLEARING));
    call.feed(Input::ChannelHungUp {
        cause: HangupCause::NORMAL_CLEARING,
    });
    let e = call.hangup_complete(HangupCause::NORMAL_CLEARING, "send_bye");
    assert_eq!(post_call_url(&e), Some("http://app.test/scheduled"));
    assert_eq!(e.cause_name, "Normal Hangup");
}

#[test]
fn rule_4_api_hangup_mid_playback_kills_and_is_recorded_as_api() {
    let mut call = Call::new();
    let a = call.run(true, vec![play("http://app.test/long.wav", 1), hangup()]);
    let (play_id, app) = only_execute(&a);
    assert_eq!(
        app,
        ChannelOp::Play {
            url: "http://app.test/long.wav".into()
        }
    );
    call.at(3.0);
    let (r, a) = call.feed_reaction(Input::ApiHangup);
    assert_eq!(r, Reaction::Acted);
    assert_eq!(
        a,
        vec![Action::Kill {
            cause: HangupCause::NORMAL_CLEARING
        }],
        "uuid_kill, not a sendmsg queued behind the event lock"
    );
    call.feed(Input::ChannelHungUp {
        cause: HangupCause::NORMAL_CLEARING,
    });
    assert_eq!(
        call.feed(Input::OpFinished {
            id: play_id,
            outcome: OpOutcome::Completed
        }),
        vec![],
        "the document's Hangup is not executed after the API's"
    );
    let e = call.hangup_complete(HangupCause::NORMAL_CLEARING, "send_bye");
    assert_eq!(e.source, HangupSource::Api);
    assert_eq!(e.cause_name, "Normal Hangup");
    assert_eq!(e.cause_code, 16);
    assert_eq!(e.reason, HangupReason::Completed);
}

#[test]
fn rule_4_api_hangup_twice_second_is_accepted_but_does_nothing() {
    let mut call = Call::new();
    let _ = call.run(true, vec![wait(30)]);
    assert_eq!(call.feed_reaction(Input::ApiHangup).0, Reaction::Acted);
    assert_eq!(
        call.feed_reaction(Input::ApiHangup),
        (Reaction::NoEffect, vec![])
    );
    call.feed(Input::ChannelHungUp {
        cause: HangupCause::NORMAL_CLEARING,
    });
    let e = call.hangup_complete(HangupCause::NORMAL_CLEARING, "send_bye");
    assert_eq!(e.source, HangupSource::Api);
    // After the call is over: the REST layer answers 404.
    assert_eq!(
        call.engine.handle(call.now, Input::ApiHangup),
        Reaction::AfterFinish
    );
    assert_eq!(call.engine.poll_action(), None);
}

#[test]
fn rule_4_api_hangup_after_the_document_hung_up_is_a_no_op() {
    let mut call = Call::new();
    let a = call.run(false, vec![hangup_reason(HangupReason::Busy)]);
    assert_eq!(only_execute(&a).1, hangup_app(HangupCause::USER_BUSY));
    assert_eq!(
        call.feed_reaction(Input::ApiHangup),
        (Reaction::NoEffect, vec![])
    );
    let e = call.switch_hangs_up(&a);
    assert_eq!(e.source, HangupSource::AnswerXml);
    assert_eq!(e.sip_status, Some(486));
}

#[test]
fn rule_4_api_hangup_after_the_caller_hung_up_is_a_no_op() {
    let mut call = Call::new();
    let _ = call.run(true, vec![wait(30)]);
    call.feed(Input::ChannelHungUp {
        cause: HangupCause::NORMAL_CLEARING,
    });
    assert_eq!(
        call.feed_reaction(Input::ApiHangup),
        (Reaction::NoEffect, vec![])
    );
    let e = call.hangup_complete(HangupCause::NORMAL_CLEARING, "recv_bye");
    assert_eq!(e.source, HangupSource::Caller);
}

#[test]
fn rule_4_api_hangup_while_the_document_is_being_fetched() {
    let mut call = Call::new();
    let a = call.feed(Input::Start { answered: false });
    assert!(matches!(&a[..], [Action::Fetch(_)]));
    assert_eq!(
        call.feed(Input::ApiHangup),
        vec![Action::Kill {
            cause: HangupCause::NORMAL_CLEARING
        }]
    );
    let (r, a) = call.feed_reaction(Input::DocumentFetched(Ok(doc(vec![speak("late")]))));
    assert_eq!(
        (r, a),
        (Reaction::NoEffect, vec![]),
        "a late document does nothing"
    );
    call.feed(Input::ChannelHungUp {
        cause: HangupCause::NORMAL_CLEARING,
    });
    let e = call.hangup_complete(HangupCause::NORMAL_CLEARING, "send_refuse");
    assert_eq!(e.source, HangupSource::Api);
    assert_eq!(e.sip_status, Some(480));
}

#[test]
fn rule_4_a_document_error_after_the_caller_left_sends_nothing() {
    let mut call = Call::new();
    let a = call.run(true, vec![redirect("http://app.test/slow")]);
    assert!(matches!(&a[..], [Action::Fetch(_)]));
    call.feed(Input::ChannelHungUp {
        cause: HangupCause::NORMAL_CLEARING,
    });
    let (r, a) = call.feed_reaction(Input::DocumentFetched(Err(FetchFailure::NoDocument(
        "timeout".into(),
    ))));
    assert_eq!((r, a), (Reaction::NoEffect, vec![]));
    let e = call.hangup_complete(HangupCause::NORMAL_CLEARING, "recv_bye");
    assert_eq!(e.source, HangupSource::Caller);
}

#[test]
fn rule_4_a_hangup_nobody_asked_for_is_unknown() {
    // Transcript e2: `uuid_kill` from outside reaches the socket as NORMAL_CLEARING,
    // send_bye, with no request of ours and no schedule due.
    let mut call = Call::new();
    let a = call.run(
        true,
        vec![hangup_with(None, Some(60), None), speak_loop("music", 0)],
    );
    let a = call.complete(&a);
    let (id, _) = only_execute(&a);
    call.at(5.0);
    call.feed(Input::ChannelHungUp {
        cause: HangupCause::NORMAL_CLEARING,
    });
    call.feed(Input::OpFinished {
        id,
        outcome: OpOutcome::Completed,
    });
    let e = call.hangup_complete(HangupCause::NORMAL_CLEARING, "send_bye");
    assert_eq!(e.source, HangupSource::Unknown);
    assert_eq!(e.cause_name, "Unknown");
    assert_eq!(e.cause, HangupCause::NORMAL_CLEARING);
    assert!(
        e.notes.iter().any(|n| n.contains("without a request")),
        "{:?}",
        e.notes
    );
}

// ================================================================ SPEC §4 rule 5

#[test]
fn rule_5_the_closing_hangup_carries_its_post_call_workflow() {
    let mut call = Call::new();
    let a = call.run(
        true,
        vec![
            speak("bye"),
            hangup_with(None, None, Some("http://app.test/post")),
        ],
    );
    let (_, last) = call.complete_all(a);
    let e = call.switch_hangs_up(&last);
    assert_eq!(
        e.post_call,
        Some(PostCall {
            url: "http://app.test/post".into(),
            method: HttpMethod::Post
        })
    );
}

#[test]
fn rule_5_of_two_hangups_with_post_call_only_the_first_executed_fires() {
    let mut call = Call::new();
    let a = call.run(
        true,
        vec![
            hangup_with(None, None, Some("http://app.test/first")),
            hangup_with(None, None, Some("http://app.test/second")),
        ],
    );
    let e = call.switch_hangs_up(&a);
    assert_eq!(post_call_url(&e), Some("http://app.test/first"));
}

#[test]
fn rule_5_a_schedule_that_never_fired_has_no_workflow_even_when_nothing_follows() {
    let mut call = Call::new();
    let a = call.run(
        true,
        vec![hangup_with(None, Some(5), Some("http://app.test/post"))],
    );
    let (_, last) = call.complete_all(a);
    let e = call.switch_hangs_up(&last);
    assert_eq!(e.cause_name, "End Of XML Instructions");
    assert_eq!(e.post_call, None);
    assert!(e.notes.iter().any(|n| n.contains("http://app.test/post")));
}

#[test]
fn rule_5_no_workflow_when_the_api_ends_the_call() {
    let mut call = Call::new();
    let a = call.run(
        true,
        vec![
            wait(10),
            hangup_with(None, None, Some("http://app.test/post")),
        ],
    );
    assert_eq!(
        only_execute(&a).1,
        ChannelOp::Wait {
            duration: Duration::from_millis(10_000)
        }
    );
    call.feed(Input::ApiHangup);
    call.feed(Input::ChannelHungUp {
        cause: HangupCause::NORMAL_CLEARING,
    });
    let e = call.hangup_complete(HangupCause::NORMAL_CLEARING, "send_bye");
    assert_eq!(e.post_call, None);
}

// ================================================================ SPEC §4 rule 6

#[test]
fn rule_6_a_document_that_runs_out_ends_with_end_of_xml_instructions() {
    let mut call = Call::new();
    let a = call.run(false, vec![speak("hello")]);
    let (apps, last) = call.complete_all(a);
    assert_eq!(
        apps,
        vec![
            ChannelOp::Answer,
            speak_app("hello"),
            hangup_app(HangupCause::NORMAL_CLEARING)
        ]
    );
    let e = call.switch_hangs_up(&last);
    assert_eq!(e.cause, HangupCause::NORMAL_CLEARING);
    assert_eq!(e.cause_code, 16);
    assert_eq!(e.cause_name, "End Of XML Instructions");
    assert_eq!(e.source, HangupSource::AnswerXml);
    assert_eq!(e.reason, HangupReason::Completed);
    assert_eq!(e.post_call, None);
}

#[test]
fn rule_6_an_unanswered_document_that_runs_out_is_480() {
    let mut call = Call::new();
    let a = call.run(false, vec![wait(1)]);
    let (_, last) = call.complete_all(a);
    let e = call.switch_hangs_up(&last);
    assert_eq!(e.cause_name, "End Of XML Instructions");
    assert_eq!(e.sip_status, Some(480));
    assert!(!e.answered);
}

// ================================================================ SPEC §4 rule 7

#[test]
fn rule_7_empty_document_parks_the_call_until_the_timeout() {
    let settings = EngineSettings {
        empty_document_timeout: Duration::from_secs(3600),
        ..EngineSettings::default()
    };
    let mut call = Call::with(settings, Some(ANSWER_URL));
    let a = call.run(false, vec![]);
    assert_eq!(a, vec![], "expected only a timer");
    assert_eq!(
        call.engine.poll_timeout(),
        Some(call.t0 + Duration::from_secs(3600))
    );
    assert!(!call.engine.answered(), "an unanswered call keeps ringing");
    call.at(3599.0);
    assert_eq!(call.timeout(), (Reaction::NoEffect, vec![]), "not yet due");
    call.at(3600.0);
    assert_eq!(
        call.timeout().1,
        vec![Action::Kill {
            cause: HangupCause::ALLOTTED_TIMEOUT
        }]
    );
    call.feed(Input::ChannelHungUp {
        cause: HangupCause::ALLOTTED_TIMEOUT,
    });
    let e = call.hangup_complete(HangupCause::ALLOTTED_TIMEOUT, "send_refuse");
    assert_eq!(e.cause, HangupCause::ALLOTTED_TIMEOUT);
    assert_eq!(e.cause_code, 16);
    assert_eq!(e.cause_name, "Timeout");
    assert_eq!(e.source, HangupSource::AnswerXml);
    assert_eq!(e.sip_status, Some(480));
}

#[test]
fn rule_7_caller_hanging_up_on_a_parked_call_cancels_the_timer() {
    let mut call = Call::new();
    let a = call.run(true, vec![]);
    assert_eq!(a, vec![]);
    assert!(call.engine.poll_timeout().is_some(), "a timer is armed");
    call.at(42.0);
    assert_eq!(
        call.feed(Input::ChannelHungUp {
            cause: HangupCause::NORMAL_CLEARING
        }),
        vec![]
    );
    assert_eq!(call.engine.poll_timeout(), None, "the timer is cancelled");
    call.at(3600.0);
    assert_eq!(
        call.timeout(),
        (Reaction::NoEffect, vec![]),
        "a timer that fires anyway does nothing"
    );
    let e = call.hangup_complete(HangupCause::NORMAL_CLEARING, "recv_bye");
    assert_eq!(e.source, HangupSource::Caller);
}

#[test]
fn rule_7_api_hangup_on_a_parked_call() {
    let mut call = Call::new();
    let a = call.run(false, vec![]);
    assert_eq!(a, vec![]);
    assert!(call.engine.poll_timeout().is_some(), "a timer is armed");
    assert_eq!(
        call.feed(Input::ApiHangup),
        vec![Action::Kill {
            cause: HangupCause::NORMAL_CLEARING
        }]
    );
    assert_eq!(call.engine.poll_timeout(), None, "the timer is cancelled");
    call.feed(Input::ChannelHungUp {
        cause: HangupCause::NORMAL_CLEARING,
    });
    let e = call.hangup_complete(HangupCause::NORMAL_CLEARING, "send_refuse");
    assert_eq!(e.source, HangupSource::Api);
}

#[test]
fn rule_7_a_redirect_to_an_empty_document_parks_too() {
    let mut call = Call::new();
    let a = call.run(true, vec![redirect("http://app.test/empty")]);
    assert!(matches!(&a[..], [Action::Fetch(_)]));
    let a = call.serve(vec![]);
    assert_eq!(a, vec![]);
    assert!(call.engine.poll_timeout().is_some(), "parked with a timer");
}

#[test]
fn rule_7_an_early_wakeup_is_ignored() {
    let mut call = Call::new();
    let _ = call.run(true, vec![]);
    call.at(1.0);
    assert_eq!(call.timeout(), (Reaction::NoEffect, vec![]));
}

// ================================================================ SPEC §4 rule 8

#[test]
fn rule_8_no_document_on_an_unanswered_call_rejects_it_with_source_error() {
    let mut call = Call::new();
    call.feed(Input::Start { answered: false });
    let a = call.feed(Input::DocumentFetched(Err(FetchFailure::NoDocument(
        "http://app.test/answer: connection refused (3 attempts), fallback: HTTP 503".into(),
    ))));
    assert_eq!(only_execute(&a).1, hangup_app(HangupCause::CALL_REJECTED));
    let e = call.switch_hangs_up(&a);
    assert_eq!(e.source, HangupSource::Error);
    assert_eq!(e.cause, HangupCause::CALL_REJECTED);
    assert_eq!(e.sip_status, Some(603));
    assert!(
        e.cause_name
            .starts_with("Error: no document: http://app.test/answer"),
        "{}",
        e.cause_name
    );
    assert!(e.notes[0].contains("connection refused"), "{:?}", e.notes);
    assert_eq!(e.reason, HangupReason::Completed);
}

#[test]
fn rule_8_invalid_document_on_an_answered_call_is_normal_clearing_with_the_parse_error() {
    let mut call = Call::new();
    call.feed(Input::Start { answered: true });
    let error = "line 3, col 5: <Hangup> attribute reason=\"later\": expected rejected or busy";
    let a = call.feed(Input::DocumentFetched(Err(FetchFailure::Invalid(
        error.into(),
    ))));
    assert_eq!(only_execute(&a).1, hangup_app(HangupCause::NORMAL_CLEARING));
    let e = call.switch_hangs_up(&a);
    assert_eq!(e.source, HangupSource::Error);
    assert_eq!(e.cause_name, format!("Error: invalid document: {error}"));
    assert_eq!(e.notes, vec![format!("invalid document: {error}")]);
    assert_eq!(e.sip_status, Some(200));
}

#[test]
fn rule_8_a_failed_redirect_after_answer_ends_with_normal_clearing() {
    let mut call = Call::new();
    let a = call.run(
        false,
        vec![speak("one moment"), redirect("http://app.test/down")],
    );
    let (apps, last) = call.complete_all(a);
    assert_eq!(names(&apps), vec!["answer", "speak"]);
    assert!(matches!(&last[..], [Action::Fetch(_)]));
    let a = call.feed(Input::DocumentFetched(Err(FetchFailure::NoDocument(
        "HTTP 404".into(),
    ))));
    assert_eq!(only_execute(&a).1, hangup_app(HangupCause::NORMAL_CLEARING));
    let e = call.switch_hangs_up(&a);
    assert_eq!(e.cause_name, "Error: no document: HTTP 404");
}

#[test]
fn rule_8_a_call_without_any_answer_url_is_refused_without_fetching() {
    let mut call = Call::with(EngineSettings::default(), None);
    let a = call.feed(Input::Start { answered: false });
    assert_eq!(only_execute(&a).1, hangup_app(HangupCause::CALL_REJECTED));
    assert_eq!(call.engine.fetch_count(), 0);
    let e = call.switch_hangs_up(&a);
    assert_eq!(e.source, HangupSource::Error);
    assert_eq!(e.cause_name, "Error: no answer URL for this call");
}

#[test]
fn rule_8_a_redirect_loop_is_stopped_at_100_fetches() {
    let mut call = Call::new();
    let mut a = call.feed(Input::Start { answered: true });
    let mut fetches = 0;
    while let [Action::Fetch(_)] = &a[..] {
        fetches += 1;
        assert!(
            fetches <= MAX_FETCHES_PER_CALL,
            "fetched more than the limit"
        );
        a = call.serve(vec![redirect("http://app.test/loop")]);
    }
    assert_eq!(fetches, 100);
    assert_eq!(call.engine.fetch_count(), 100);
    assert_eq!(only_execute(&a).1, hangup_app(HangupCause::NORMAL_CLEARING));
    let e = call.switch_hangs_up(&a);
    assert_eq!(e.source, HangupSource::Error);
    assert_eq!(e.cause_name, "Error: redirect limit of 100 fetches reached");
}

// ================================================================ answering (SPEC §3)

#[test]
fn answering_speak_play_and_dtmf_answer_an_unanswered_call_first() {
    for (element, app) in [
        (speak("hi"), speak_app("hi")),
        (
            play("file:///sounds/a.wav", 1),
            ChannelOp::Play {
                url: "file:///sounds/a.wav".into(),
            },
        ),
        (
            dtmf("12#"),
            ChannelOp::SendDigits {
                digits: "12#".into(),
            },
        ),
    ] {
        let mut call = Call::new();
        let a = call.run(false, vec![element]);
        assert_eq!(only_execute(&a).1, ChannelOp::Answer);
        assert!(
            !call.engine.answered(),
            "answered only once the switch says so"
        );
        let a = call.complete(&a);
        assert!(call.engine.answered());
        assert_eq!(only_execute(&a).1, app);
    }
}

#[test]
fn answering_wait_never_answers() {
    let mut call = Call::new();
    let a = call.run(false, vec![wait(3), wait(1)]);
    let (apps, _) = call.complete_all(a);
    assert_eq!(
        apps,
        vec![
            ChannelOp::Wait {
                duration: Duration::from_millis(3000)
            },
            ChannelOp::Wait {
                duration: Duration::from_millis(1000)
            },
            hangup_app(HangupCause::NORMAL_CLEARING)
        ]
    );
    assert!(!call.engine.answered());
}

#[test]
fn answering_happens_once_and_not_at_all_on_an_answered_call() {
    let mut call = Call::new();
    let a = call.run(
        false,
        vec![speak("a"), play("silence_stream://500", 1), dtmf("1")],
    );
    let (apps, _) = call.complete_all(a);
    assert_eq!(
        names(&apps),
        vec!["answer", "speak", "play", "send_digits", "hangup"]
    );

    let mut call = Call::new();
    let a = call.run(true, vec![speak("a")]);
    assert_eq!(only_execute(&a).1, speak_app("a"));
}

#[test]
fn answering_a_channel_answer_event_counts_as_answered() {
    let mut call = Call::new();
    call.feed(Input::Start { answered: false });
    assert_eq!(call.feed(Input::Answered), vec![]);
    assert!(call.engine.answered());
    let a = call.serve(vec![speak("a")]);
    assert_eq!(only_execute(&a).1, speak_app("a"));
}

#[test]
fn pre_answer_runs_its_children_as_early_media_without_answering() {
    let mut call = Call::new();
    let a = call.run(
        false,
        vec![Instruction::PreAnswer(vec![
            speak("early"),
            play("tone_stream://%(500,500,440)", 1),
            wait(1),
        ])],
    );
    let (apps, last) = call.complete_all(a);
    assert_eq!(
        apps,
        vec![
            ChannelOp::PreAnswer,
            speak_app("early"),
            ChannelOp::Play {
                url: "tone_stream://%(500,500,440)".into()
            },
            ChannelOp::Wait {
                duration: Duration::from_millis(1000)
            },
            hangup_app(HangupCause::NORMAL_CLEARING),
        ]
    );
    let e = call.switch_hangs_up(&last);
    assert!(!e.answered);
    assert_eq!(e.sip_status, Some(480), "early media, then refused");
}

#[test]
fn pre_answer_then_a_plain_speak_answers() {
    let mut call = Call::new();
    let a = call.run(
        false,
        vec![Instruction::PreAnswer(vec![speak("ring")]), speak("hello")],
    );
    let (apps, _) = call.complete_all(a);
    assert_eq!(
        names(&apps),
        vec!["pre_answer", "speak", "answer", "speak", "hangup"]
    );
}

#[test]
fn pre_answer_on_an_answered_call_only_runs_the_children() {
    let mut call = Call::new();
    let a = call.run(true, vec![Instruction::PreAnswer(vec![wait(1)])]);
    assert_eq!(
        only_execute(&a).1,
        ChannelOp::Wait {
            duration: Duration::from_millis(1000)
        }
    );
}

#[test]
fn pre_answer_then_hangup_refuses_with_the_hangup_cause() {
    let mut call = Call::new();
    let a = call.run(
        false,
        vec![
            Instruction::PreAnswer(vec![wait(1)]),
            hangup_reason(HangupReason::Busy),
        ],
    );
    let (apps, last) = call.complete_all(a);
    assert_eq!(names(&apps), vec!["pre_answer", "wait", "hangup"]);
    let e = call.switch_hangs_up(&last);
    assert_eq!(e.sip_status, Some(486));
}

// ================================================================ element mapping

#[test]
/// The engine passes the document's voice, language and text on; the driver maps the
/// voice to its TTS engine (FreeSWITCH: `render::speak_uses_the_voice_map`).
fn speak_passes_the_voice_language_and_text_on() {
    let mut call = Call::new();
    let man = Instruction::Speak(Speak {
        text: "line one\nline two".into(),
        voice: Voice::Man,
        language: "en-US".into(),
        loop_count: 1,
    });
    let a = call.run(true, vec![man, speak("her")]);
    let (apps, _) = call.complete_all(a);
    assert_eq!(
        apps[..2],
        [
            ChannelOp::Speak {
                voice: Voice::Man,
                language: "en-US".into(),
                text: "line one\nline two".into()
            },
            ChannelOp::Speak {
                voice: Voice::Woman,
                language: "en-US".into(),
                text: "her".into()
            }
        ]
    );
}

#[test]
/// The engine passes the document's URLs on unchanged; the driver maps them for its
/// switch (FreeSWITCH: `render::play_maps_urls_for_playback`).
fn play_passes_the_document_urls_on() {
    let mut call = Call::new();
    let a = call.run(
        true,
        vec![
            play("https://cdn.test/a.mp3", 1),
            play("file:///var/lib/sounds/b.wav", 1),
            play("silence_stream://1000", 1),
        ],
    );
    let (apps, _) = call.complete_all(a);
    let paths: Vec<String> = apps
        .iter()
        .filter_map(|a| match a {
            ChannelOp::Play { url } => Some(url.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        paths,
        [
            "https://cdn.test/a.mp3",
            "file:///var/lib/sounds/b.wav",
            "silence_stream://1000"
        ]
    );
}

// ================================================================ loops

#[test]
fn loop_3_executes_the_media_three_times() {
    let mut call = Call::new();
    let a = call.run(
        true,
        vec![play("http://app.test/a.wav", 3), speak_loop("x", 2)],
    );
    let (apps, _) = call.complete_all(a);
    assert_eq!(
        names(&apps),
        vec!["play", "play", "play", "speak", "speak", "hangup"]
    );
}

#[test]
fn loop_0_repeats_until_the_call_ends() {
    let mut call = Call::new();
    let mut a = call.run(true, vec![speak_loop("hold music", 0), speak("never")]);
    for i in 1..=50 {
        assert_eq!(
            only_execute(&a).1,
            speak_app("hold music"),
            "repetition {i}"
        );
        call.at(f64::from(i) * 2.0);
        a = call.complete(&a);
    }
    let (id, _) = only_execute(&a);
    call.feed(Input::ChannelHungUp {
        cause: HangupCause::NORMAL_CLEARING,
    });
    assert_eq!(
        call.feed(Input::OpFinished {
            id,
            outcome: OpOutcome::Completed
        }),
        vec![]
    );
    let e = call.hangup_complete(HangupCause::NORMAL_CLEARING, "recv_bye");
    assert_eq!(e.source, HangupSource::Caller);
}

#[test]
fn loop_0_stops_when_the_switch_reports_an_error_and_the_document_goes_on() {
    let mut call = Call::new();
    let a = call.run(
        true,
        vec![play("http://app.test/missing.wav", 0), speak("after")],
    );
    let (id, _) = only_execute(&a);
    call.at(1.0);
    let a = call.feed(Input::OpFinished {
        id,
        outcome: OpOutcome::Failed("FILE NOT FOUND".into()),
    });
    assert_eq!(only_execute(&a).1, speak_app("after"));
    let (_, last) = call.complete_all(a);
    let e = call.switch_hangs_up(&last);
    assert!(
        e.notes.iter().any(|n| n.contains("FILE NOT FOUND")),
        "{:?}",
        e.notes
    );
    assert!(
        e.notes.iter().any(|n| n.contains("endless loop stopped")),
        "{:?}",
        e.notes
    );
}

#[test]
fn loop_0_stops_after_a_run_too_short_to_be_media() {
    let mut call = Call::new();
    let a = call.run(true, vec![speak_loop("x", 0), wait(1)]);
    let (id, _) = only_execute(&a);
    call.at(0.01);
    let a = call.feed(Input::OpFinished {
        id,
        outcome: OpOutcome::Completed,
    });
    assert_eq!(
        only_execute(&a).1,
        ChannelOp::Wait {
            duration: Duration::from_millis(1000)
        }
    );
}

#[test]
fn a_loop_of_any_count_on_a_dead_url_costs_the_switch_one_failed_playback() {
    let mut call = Call::new();
    let a = call.run(
        true,
        vec![play("http://app.test/missing.wav", 100_000), speak("after")],
    );
    let (id, app) = only_execute(&a);
    assert!(matches!(app, ChannelOp::Play { .. }), "{app:?}");
    call.at(0.02);
    let a = call.feed(Input::OpFinished {
        id,
        outcome: OpOutcome::Failed("FILE NOT FOUND".into()),
    });
    assert_eq!(
        only_execute(&a).1,
        speak_app("after"),
        "the loop ends at the first failed run"
    );
    let (_, last) = call.complete_all(a);
    let e = call.switch_hangs_up(&last);
    assert!(
        e.notes
            .iter()
            .any(|n| n.contains("loop of 100000 stopped after 1 run(s)")),
        "{:?}",
        e.notes
    );
}

#[test]
fn a_loop_of_any_count_stops_after_a_run_too_short_to_be_media() {
    let mut call = Call::new();
    let a = call.run(true, vec![speak_loop("x", 5), wait(1)]);
    let (id, _) = only_execute(&a);
    call.at(0.01);
    let a = call.feed(Input::OpFinished {
        id,
        outcome: OpOutcome::Completed,
    });
    assert_eq!(
        only_execute(&a).1,
        ChannelOp::Wait {
            duration: Duration::from_millis(1000)
        }
    );
}

// ================================================================ socket lost (SPEC §2 step 7)

#[test]
fn socket_lost_mid_call_is_recorded_as_unknown() {
    let mut call = Call::new();
    let _ = call.run(true, vec![speak("x")]);
    let a = call.feed(Input::SocketLost);
    let e = finish(&a);
    assert_eq!(e.source, HangupSource::Unknown);
    assert_eq!(e.cause_name, "Unknown");
    assert_eq!(e.cause, HangupCause::NORMAL_CLEARING);
    assert_eq!(e.sip_status, None);
    assert!(e.notes.iter().any(|n| n.contains("socket lost")));
}

#[test]
fn socket_lost_after_channel_hangup_keeps_the_reported_cause() {
    let mut call = Call::new();
    let _ = call.run(false, vec![wait(10)]);
    call.feed(Input::ChannelHungUp {
        cause: HangupCause::USER_BUSY,
    });
    let e = finish(&call.feed(Input::SocketLost));
    assert_eq!(e.source, HangupSource::Unknown);
    assert_eq!(e.cause, HangupCause::USER_BUSY);
    assert_eq!(e.cause_code, 17);
    assert_eq!(e.sip_status, Some(486));
}

#[test]
fn socket_lost_after_our_own_hangup_is_attributed_to_it() {
    let mut call = Call::new();
    let a = call.run(
        false,
        vec![hangup_with(
            Some(HangupReason::Busy),
            None,
            Some("http://app.test/post"),
        )],
    );
    assert_eq!(only_execute(&a).1, hangup_app(HangupCause::USER_BUSY));
    let e = finish(&call.feed(Input::SocketLost));
    assert_eq!(e.source, HangupSource::AnswerXml);
    assert_eq!(e.cause, HangupCause::USER_BUSY);
    assert_eq!(e.cause_name, "Busy Line");
    assert_eq!(post_call_url(&e), Some("http://app.test/post"));
    assert_eq!(e.sip_status, None, "the switch never confirmed it");
}

#[test]
fn socket_lost_after_channel_hangup_and_our_hangup_is_fully_attributed() {
    let mut call = Call::new();
    let a = call.run(false, vec![hangup()]);
    call.feed(Input::ChannelHungUp {
        cause: HangupCause::CALL_REJECTED,
    });
    let _ = a;
    let e = finish(&call.feed(Input::SocketLost));
    assert_eq!(e.source, HangupSource::AnswerXml);
    assert_eq!(e.sip_status, Some(603));
}

// ================================================================ the engine's own contract

#[test]
fn finish_is_emitted_once_and_every_later_input_is_dropped() {
    let mut call = Call::new();
    let a = call.run(true, vec![hangup()]);
    let (id, _) = only_execute(&a);
    call.feed(Input::ChannelHungUp {
        cause: HangupCause::CALL_REJECTED,
    });
    let _ = call.hangup_complete(HangupCause::CALL_REJECTED, "send_bye");
    assert!(call.engine.is_finished());
    for input in [
        Input::HangupComplete {
            cause: HangupCause::NORMAL_CLEARING,
            hung_up_by: HungUpBy::Unknown,
            detail: None,
        },
        Input::SocketLost,
        Input::ApiHangup,
        Input::OpFinished {
            id,
            outcome: OpOutcome::Completed,
        },
        Input::Start { answered: true },
        Input::DocumentFetched(Ok(doc(vec![speak("x")]))),
    ] {
        assert_eq!(call.engine.handle(call.now, input), Reaction::AfterFinish);
        assert_eq!(call.engine.poll_action(), None);
    }
}

#[test]
fn hangup_complete_without_a_prior_channel_hangup_still_finishes() {
    let mut call = Call::new();
    let a = call.run(true, vec![hangup_reason(HangupReason::Busy)]);
    assert_eq!(only_execute(&a).1, hangup_app(HangupCause::USER_BUSY));
    let e = call.hangup_complete(HangupCause::USER_BUSY, "send_bye");
    assert_eq!(e.cause_name, "Busy Line");
}

#[test]
fn only_one_app_is_in_flight_and_stale_completions_are_ignored() {
    let mut call = Call::new();
    let a = call.run(true, vec![wait(1), wait(2)]);
    let (id, _) = only_execute(&a);
    assert_eq!(
        call.feed_reaction(Input::OpFinished {
            id: OpId(id.0 + 100),
            outcome: OpOutcome::Completed
        }),
        (Reaction::NoEffect, vec![])
    );
    assert_eq!(
        call.feed_reaction(Input::Dtmf('5')),
        (Reaction::NoEffect, vec![])
    );
    let a = call.complete(&a);
    assert_eq!(
        only_execute(&a).1,
        ChannelOp::Wait {
            duration: Duration::from_millis(2000)
        }
    );
    // The same completion twice does not advance twice.
    assert_eq!(
        call.feed_reaction(Input::OpFinished {
            id,
            outcome: OpOutcome::Completed
        }),
        (Reaction::NoEffect, vec![])
    );
}

#[test]
fn a_second_start_is_ignored() {
    let mut call = Call::new();
    call.feed(Input::Start { answered: false });
    assert_eq!(
        call.feed_reaction(Input::Start { answered: true }),
        (Reaction::NoEffect, vec![])
    );
    assert!(!call.engine.answered());
}

#[test]
fn redirect_fetch_carries_the_elements_method_and_answer_state() {
    let mut call = Call::new();
    let a = call.run(
        false,
        vec![
            speak("x"),
            Instruction::Redirect(Redirect {
                url: "http://app.test/next?x=1".into(),
                method: HttpMethod::Get,
            }),
        ],
    );
    let (_, last) = call.complete_all(a);
    assert_eq!(
        last,
        vec![Action::Fetch(DocumentFetch {
            url: "http://app.test/next?x=1".into(),
            method: HttpMethod::Get,
            event: FetchEvent::Redirect,
        })]
    );
    assert!(
        call.engine.answered(),
        "CallStatus in-progress for this fetch"
    );
}

#[test]
fn rule_3_a_schedule_firing_while_its_cancel_is_queued_is_still_recognised() {
    let mut call = Call::new();
    let a = call.run(
        true,
        vec![
            hangup_with(
                Some(HangupReason::Busy),
                Some(2),
                Some("http://app.test/post"),
            ),
            redirect("http://app.test/next"),
        ],
    );
    let a = call.complete(&a);
    assert!(matches!(&a[..], [Action::Fetch(_)]));
    call.at(1.9);
    let a = call.serve(vec![speak("new")]);
    assert_eq!(only_execute(&a).1, ChannelOp::CancelArmedHangups);
    // The switch fires the old schedule before it gets to sched_cancel.
    call.at(2.0);
    call.feed(Input::ChannelHungUp {
        cause: HangupCause::USER_BUSY,
    });
    let e = call.hangup_complete(HangupCause::USER_BUSY, "send_bye");
    assert_eq!(e.source, HangupSource::AnswerXml);
    assert_eq!(e.cause_name, "Busy Line");
    assert_eq!(post_call_url(&e), Some("http://app.test/post"));
}

// ================================================================ failed commands are inputs

#[test]
fn a_refused_hangup_falls_back_to_uuid_kill_and_the_document_cause_is_kept() {
    let mut call = Call::new();
    let a = call.run(true, vec![hangup_reason(HangupReason::Busy)]);
    let (id, app) = only_execute(&a);
    assert_eq!(app, hangup_app(HangupCause::USER_BUSY));
    let a = call.feed(Input::OpFinished {
        id,
        outcome: OpOutcome::Refused("-ERR invalid session id [x]".into()),
    });
    assert_eq!(
        a,
        vec![Action::Kill {
            cause: HangupCause::USER_BUSY
        }]
    );
    call.feed(Input::ChannelHungUp {
        cause: HangupCause::USER_BUSY,
    });
    let e = call.hangup_complete(HangupCause::USER_BUSY, "send_bye");
    assert_eq!(e.source, HangupSource::AnswerXml);
    assert_eq!(e.cause, HangupCause::USER_BUSY);
    assert!(
        e.notes.iter().any(|n| n.contains("did not execute hangup")),
        "{:?}",
        e.notes
    );
}

#[test]
fn a_refused_uuid_kill_falls_back_to_the_hangup_message() {
    let mut call = Call::new();
    let _ = call.run(true, vec![speak_loop("music", 0)]);
    let a = call.feed(Input::ApiHangup);
    assert_eq!(
        a,
        vec![Action::Kill {
            cause: HangupCause::NORMAL_CLEARING
        }]
    );
    let a = call.feed(Input::CommandFailed {
        command: HangupCommand::Kill,
        failure: CommandFailure::Refused("-ERR something broke".into()),
    });
    assert_eq!(
        a,
        vec![Action::HangupAfterOp {
            cause: HangupCause::NORMAL_CLEARING
        }]
    );
    assert!(call.engine.is_closing());
}

#[test]
fn a_kill_refused_because_the_channel_is_gone_waits_for_the_switch_events() {
    let mut call = Call::new();
    let _ = call.run(true, vec![speak_loop("music", 0)]);
    call.feed(Input::ApiHangup);
    let (r, a) = call.feed_reaction(Input::CommandFailed {
        command: HangupCommand::Kill,
        failure: CommandFailure::ChannelGone,
    });
    assert_eq!((r, a), (Reaction::NoEffect, vec![]));
    assert!(call.engine.is_closing());
}

#[test]
fn when_every_way_of_hanging_up_is_refused_the_call_is_not_closing_and_a_timer_is_rearmed() {
    let mut call = Call::new();
    let _ = call.run(true, vec![speak_loop("music", 0)]);
    call.feed(Input::ApiHangup);
    call.feed(Input::CommandFailed {
        command: HangupCommand::Kill,
        failure: CommandFailure::Refused("-ERR a".into()),
    });
    let a = call.feed(Input::CommandFailed {
        command: HangupCommand::HangupAfterOp,
        failure: CommandFailure::Refused("-ERR b".into()),
    });
    assert_eq!(a, vec![], "expected the backstop timer only");
    assert_eq!(
        call.engine.poll_timeout(),
        Some(call.now + EngineSettings::default().empty_document_timeout),
        "the backstop timer is armed"
    );
    assert!(!call.engine.is_closing(), "the call is still up");
    // A second REST hangup is tried for real, not swallowed as "already closing".
    let (r, a) = call.feed_reaction(Input::ApiHangup);
    assert_eq!(r, Reaction::Acted);
    assert!(a.contains(&Action::Kill {
        cause: HangupCause::NORMAL_CLEARING
    }));
    assert_eq!(
        call.engine.poll_timeout(),
        None,
        "the backstop is cancelled"
    );
}

#[test]
fn a_refused_sched_cancel_keeps_the_previous_schedule_armed_and_recognised() {
    let mut call = Call::new();
    let a = call.run(
        true,
        vec![
            hangup_with(Some(HangupReason::Busy), Some(10), None),
            redirect("http://app.test/next"),
        ],
    );
    let a = call.complete(&a);
    assert!(matches!(&a[..], [Action::Fetch(_)]));
    let a = call.serve(vec![speak_loop("music", 0)]);
    let (id, app) = only_execute(&a);
    assert_eq!(app, ChannelOp::CancelArmedHangups);
    let a = call.feed(Input::OpFinished {
        id,
        outcome: OpOutcome::Refused("-ERR sched_cancel failed".into()),
    });
    assert!(
        a.iter().any(|x| matches!(x, Action::ScheduleArmed { .. })),
        "the schedule is still shown: {a:?}"
    );
    assert!(call.engine.scheduled_hangup_due().is_some());
    let (id, app) = only_execute(&a);
    assert_eq!(app, speak_app("music"), "the new document runs");
    // The old schedule fires in the switch at its time: it is the document's hangup.
    call.at(10.0);
    call.feed(Input::ChannelHungUp {
        cause: HangupCause::USER_BUSY,
    });
    call.feed(Input::OpFinished {
        id,
        outcome: OpOutcome::Completed,
    });
    let e = call.hangup_complete(HangupCause::USER_BUSY, "send_bye");
    assert_eq!(e.source, HangupSource::AnswerXml);
    assert!(
        e.notes
            .iter()
            .any(|n| n.contains("cancelling the armed hangups refused")),
        "{:?}",
        e.notes
    );
}

#[test]
fn a_refused_answer_ends_the_call_as_an_error_instead_of_playing_to_nobody() {
    let mut call = Call::new();
    let a = call.run(false, vec![speak("hello")]);
    let (id, app) = only_execute(&a);
    assert_eq!(app, ChannelOp::Answer);
    let a = call.feed(Input::OpFinished {
        id,
        outcome: OpOutcome::Refused("-ERR answer failed".into()),
    });
    assert_eq!(only_execute(&a).1, hangup_app(HangupCause::CALL_REJECTED));
    let e = call.switch_hangs_up(&a);
    assert_eq!(e.source, HangupSource::Error);
    assert!(!call.engine.answered());
}
