//! SPEC §12.1 in the sans-IO engine: what a Gather asks of the switch and when, driven as
//! the FreeSWITCH driver drives it (inputs at chosen times, actions collected). The
//! switch-level view (flush_dtmf, uuid_break) is in `gather_rules` and the live suite.

use std::time::{Duration, Instant};
use voxbridge::call::engine::{
    Action, CallEngine, ChannelOp, EngineSettings, Input, OpId, OpOutcome, Reaction,
};
use voxbridge::cause::HangupCause;
use voxbridge::document::model::{
    AnswerDocument, FetchEvent, Gather, HttpMethod, Instruction, Speak, Voice, Wait,
};

fn speak(text: &str) -> Instruction {
    Instruction::Speak(Speak {
        text: text.into(),
        voice: Voice::Woman,
        language: "en-US".into(),
        loop_count: 1,
    })
}

fn gather(prompts: Vec<Instruction>) -> Gather {
    Gather {
        action: "http://app.test/menu".into(),
        method: HttpMethod::Post,
        execution_timeout_secs: 15,
        digit_end_timeout_secs: 5,
        finish_on_key: Some('#'),
        num_digits: 32,
        redirect: true,
        log: true,
        prompts,
    }
}

struct Call {
    engine: CallEngine,
    t0: Instant,
    now: Instant,
    /// The operation in flight, as the driver would track it.
    running: Option<(OpId, ChannelOp)>,
}

impl Call {
    /// A call (answered or not) that has fetched `instructions` and run up to the first
    /// operation.
    fn start(answered: bool, instructions: Vec<Instruction>) -> (Self, Vec<Action>) {
        let t0 = Instant::now();
        let mut call = Call {
            engine: CallEngine::new(EngineSettings::default(), Some("http://app.test/a".into())),
            t0,
            now: t0,
            running: None,
        };
        call.feed(Input::Start { answered });
        let first = call.feed(Input::DocumentFetched(Ok(AnswerDocument { instructions })));
        (call, first)
    }

    fn at(&mut self, secs: f64) -> &mut Self {
        self.now = self.t0 + Duration::from_secs_f64(secs);
        self
    }

    fn feed(&mut self, input: Input) -> Vec<Action> {
        let r = self.engine.handle(self.now, input);
        assert_ne!(r, Reaction::AfterFinish);
        self.drain()
    }

    fn drain(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        while let Some(a) = self.engine.poll_action() {
            if let Action::Run { id, op } = &a {
                assert!(self.running.is_none(), "two operations in flight: {a:?}");
                self.running = Some((*id, op.clone()));
            }
            out.push(a);
        }
        out
    }

    /// The running operation completes (as its CHANNEL_EXECUTE_COMPLETE would say).
    fn complete(&mut self) -> Vec<Action> {
        let (id, _) = self.running.take().expect("an operation runs");
        self.feed(Input::OpFinished {
            id,
            outcome: OpOutcome::Completed,
        })
    }

    fn digit(&mut self, d: char) -> Vec<Action> {
        self.feed(Input::Dtmf(d))
    }

    fn timeout(&mut self) -> Vec<Action> {
        self.engine.handle_timeout(self.now);
        self.drain()
    }

    fn running_op(&self) -> Option<&ChannelOp> {
        self.running.as_ref().map(|(_, op)| op)
    }

    fn due_in(&self) -> Option<Duration> {
        self.engine.poll_timeout().map(|d| d - self.t0)
    }
}

fn ops(actions: &[Action]) -> Vec<&ChannelOp> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Run { op, .. } => Some(op),
            _ => None,
        })
        .collect()
}

fn is_speak(op: &ChannelOp, text: &str) -> bool {
    matches!(op, ChannelOp::Speak { text: t, .. } if t == text)
}

#[test]
fn gather_answers_a_ringing_call_then_flushes_the_digits_then_plays_the_prompts() {
    let (mut call, first) = Call::start(
        false,
        vec![Instruction::Gather(gather(vec![speak("menu")]))],
    );
    assert_eq!(ops(&first), [&ChannelOp::Answer]);
    let next = call.complete();
    assert_eq!(ops(&next), [&ChannelOp::FlushDigits]);
    let next = call.complete();
    assert!(is_speak(ops(&next)[0], "menu"), "{next:?}");
}

#[test]
fn gather_digits_before_the_flush_completes_are_not_counted() {
    let mut g = gather(vec![speak("menu")]);
    g.num_digits = 1;
    let (mut call, first) = Call::start(true, vec![Instruction::Gather(g)]);
    assert_eq!(ops(&first), [&ChannelOp::FlushDigits]);
    // A digit pressed during the element before (its event comes before flush's end).
    assert_eq!(
        call.engine.handle(call.now, Input::Dtmf('9')),
        Reaction::NoEffect
    );
    assert!(call.drain().is_empty());
    let next = call.complete();
    assert!(is_speak(ops(&next)[0], "menu"));
    call.at(1.0).digit('4');
    let done = call.complete();
    assert!(
        done.contains(&Action::Fetch(voxbridge::call::engine::DocumentFetch {
            url: "http://app.test/menu".into(),
            method: HttpMethod::Post,
            event: FetchEvent::Gather { digits: "4".into() },
        })),
        "{done:?}"
    );
}

#[test]
fn gather_first_digit_interrupts_the_prompt_once_and_skips_the_rest() {
    let (mut call, _) = Call::start(
        true,
        vec![
            Instruction::Gather(gather(vec![speak("one"), speak("two")])),
            speak("after"),
        ],
    );
    call.complete(); // flush
    assert!(is_speak(call.running_op().unwrap(), "one"));
    let barge = call.at(1.0).digit('1');
    assert_eq!(barge, [Action::Interrupt], "the prompt stops at once");
    assert_eq!(
        call.at(1.2).digit('2'),
        [],
        "only the first digit interrupts"
    );
    let after_prompt = call.at(1.25).complete();
    assert!(
        ops(&after_prompt).is_empty(),
        "the second prompt is skipped: {after_prompt:?}"
    );
    // digitEndTimeout (5 s) after the last digit (1.2 s).
    assert_eq!(call.due_in(), Some(Duration::from_secs_f64(6.2)));
    let done = call.at(6.2).timeout();
    assert!(
        matches!(
            &done[..],
            [Action::Fetch(f)] if f.event == FetchEvent::Gather { digits: "12".into() }
        ),
        "{done:?}"
    );
}

#[test]
fn gather_execution_timeout_counts_from_the_end_of_the_prompts_and_no_input_goes_on() {
    let mut g = gather(vec![
        speak("menu"),
        Instruction::Wait(Wait { length_secs: 2 }),
    ]);
    g.execution_timeout_secs = 5;
    let (mut call, _) = Call::start(true, vec![Instruction::Gather(g), speak("no choice")]);
    call.complete(); // flush
    assert_eq!(call.due_in(), None, "no deadline while the prompts play");
    call.at(4.0).complete(); // the speak
    assert_eq!(
        call.running_op(),
        Some(&ChannelOp::Silence {
            duration: Duration::from_secs(2)
        }),
        "a Wait prompt is silence the caller can interrupt"
    );
    assert_eq!(call.due_in(), None);
    call.at(6.0).complete(); // the wait
    assert_eq!(call.due_in(), Some(Duration::from_secs(11)));
    assert!(call.at(10.9).timeout().is_empty(), "not yet");
    let next = call.at(11.0).timeout();
    assert!(
        !next
            .iter()
            .any(|a| matches!(a, Action::Fetch(_) | Action::Request(_))),
        "no input: no request: {next:?}"
    );
    assert!(is_speak(ops(&next)[0], "no choice"));
}

#[test]
fn gather_num_digits_and_finish_on_key_end_the_input_at_once() {
    let mut g = gather(vec![]);
    g.num_digits = 3;
    let (mut call, _) = Call::start(true, vec![Instruction::Gather(g.clone())]);
    call.complete(); // flush: no prompts, it listens now
    assert_eq!(call.due_in(), Some(Duration::from_secs(15)));
    call.at(1.0).digit('1');
    call.at(1.5).digit('2');
    let done = call.at(2.0).digit('3');
    assert!(
        matches!(
            &done[..],
            [Action::Fetch(f)] if f.event == FetchEvent::Gather { digits: "123".into() }
        ),
        "{done:?}"
    );

    let (mut call, _) = Call::start(true, vec![Instruction::Gather(g)]);
    call.complete();
    call.at(1.0).digit('7');
    let done = call.at(1.5).digit('#');
    assert!(
        matches!(
            &done[..],
            [Action::Fetch(f)] if f.event == FetchEvent::Gather { digits: "7".into() }
        ),
        "the finish key is not part of the digits: {done:?}"
    );
}

#[test]
fn gather_finish_on_key_alone_is_no_input() {
    let (mut call, _) = Call::start(
        true,
        vec![Instruction::Gather(gather(vec![])), speak("next")],
    );
    call.complete();
    let next = call.at(1.0).digit('#');
    assert!(
        !next.iter().any(|a| matches!(a, Action::Fetch(_))),
        "{next:?}"
    );
    assert!(is_speak(ops(&next)[0], "next"));
}

#[test]
fn gather_redirect_false_requests_through_the_outbox_and_goes_on() {
    let mut g = gather(vec![speak("menu")]);
    g.redirect = false;
    g.num_digits = 1;
    let (mut call, _) = Call::start(true, vec![Instruction::Gather(g), speak("thanks")]);
    call.complete();
    assert_eq!(call.at(0.5).digit('5'), [Action::Interrupt]);
    let next = call.at(0.6).complete();
    assert!(
        matches!(
            &next[0],
            Action::Request(r) if r.event == FetchEvent::Gather { digits: "5".into() }
        ),
        "{next:?}"
    );
    assert!(is_speak(ops(&next)[0], "thanks"));
}

#[test]
fn gather_input_complete_while_the_prompt_runs_waits_for_its_completion() {
    let mut g = gather(vec![speak("menu")]);
    g.num_digits = 1;
    let (mut call, _) = Call::start(true, vec![Instruction::Gather(g)]);
    call.complete();
    let barge = call.at(1.0).digit('3');
    assert_eq!(
        barge,
        [Action::Interrupt],
        "nothing else while the prompt still runs"
    );
    let done = call.at(1.02).complete();
    assert!(matches!(&done[..], [Action::Fetch(_)]), "{done:?}");
}

#[test]
fn gather_caller_hanging_up_mid_gather_makes_no_request() {
    let (mut call, _) = Call::start(true, vec![Instruction::Gather(gather(vec![speak("menu")]))]);
    call.complete();
    call.at(1.0).digit('1');
    let gone = call.at(1.1).feed(Input::ChannelHungUp {
        cause: HangupCause::NORMAL_CLEARING,
    });
    assert!(gone.is_empty());
    let after = call.at(1.2).complete();
    assert!(after.is_empty(), "the call is over: {after:?}");
    assert_eq!(call.due_in(), None);
    assert!(call.at(10.0).timeout().is_empty());
}
