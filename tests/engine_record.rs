//! SPEC §12.2 in the sans-IO engine: what a Record asks of the switch and what the
//! application is told, driven as a driver drives it (inputs at chosen times, actions
//! collected) — the orders of events the real switch showed (captures m, n, r, s, t, u)
//! and the ones it may show (a socket lost before RECORD_STOP). The switch-level view is
//! in `record_rules` and the live suite.

use std::time::{Duration, Instant};
use voxbridge::call::element::record::RecordSettings;
use voxbridge::call::engine::{
    Action, CallEngine, ChannelOp, EngineSettings, HungUpBy, Input, OpId, RecordEndedBy,
    RecordReport, RecordingStop,
};
use voxbridge::cause::HangupCause;
use voxbridge::document::model::{
    AnswerDocument, FetchEvent, HttpMethod, Instruction, Record, Redirect, Wait,
};

const EPOCH_MS: i64 = 1_790_000_000_000;

fn record() -> Record {
    Record {
        action: Some("http://app.test/vm".into()),
        method: HttpMethod::Post,
        redirect: false,
        file_format: None,
        timeout_secs: 60,
        max_length_secs: 5,
        play_beep: true,
        finish_on_key: "#".into(),
        record_session: false,
        start_on_dial_answer: false,
        callback: Some(Redirect {
            url: "http://app.test/rs".into(),
            method: HttpMethod::Post,
        }),
    }
}

struct Call {
    engine: CallEngine,
    t0: Instant,
    now: Instant,
}

impl Call {
    fn start(instructions: Vec<Instruction>) -> (Self, Vec<Action>) {
        let t0 = Instant::now();
        let settings = EngineSettings {
            record: RecordSettings {
                dir: "/rec".into(),
                ..RecordSettings::default()
            },
            ..EngineSettings::default()
        };
        let engine = CallEngine::new(settings, Some("http://app.test/a".into()))
            .with_recording_urls("http://vb/api/v1/Account/MA1/Recording/")
            .with_wall_clock(t0, EPOCH_MS);
        let mut call = Call {
            engine,
            t0,
            now: t0,
        };
        call.feed(Input::Start { answered: true });
        let first = call.feed(Input::DocumentFetched(Ok(AnswerDocument { instructions })));
        (call, first)
    }

    fn at(&mut self, secs: f64) -> &mut Self {
        self.now = self.t0 + Duration::from_secs_f64(secs);
        self
    }

    fn feed(&mut self, input: Input) -> Vec<Action> {
        self.engine.handle(self.now, input);
        let mut out = Vec::new();
        while let Some(a) = self.engine.poll_action() {
            out.push(a);
        }
        out
    }
}

fn run_of(actions: &[Action]) -> (OpId, ChannelOp) {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Run { id, op } => Some((*id, op.clone())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Run in {actions:?}"))
}

fn completed(actions: &[Action]) -> &voxbridge::call::element::record::Completed {
    actions
        .iter()
        .find_map(|a| match a {
            Action::RecordingComplete(c) => Some(&**c),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no RecordingComplete in {actions:?}"))
}

fn requests(actions: &[Action]) -> Vec<&voxbridge::call::engine::DocumentFetch> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Request(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn wait(secs: u32) -> Instruction {
    Instruction::Wait(Wait { length_secs: secs })
}

#[test]
fn engine_record_a_key_ends_it_the_row_then_the_action_through_the_outbox_then_the_next_element() {
    let (mut call, first) = Call::start(vec![Instruction::Record(record()), wait(1)]);
    let (id, op) = run_of(&first);
    let ChannelOp::Record(r) = op else {
        panic!("{op:?}")
    };
    assert!(r.path.starts_with("/rec/") && r.path.ends_with(".wav"));
    assert_eq!(r.max_length, Duration::from_secs(5));
    let report = RecordReport {
        ended_by: RecordEndedBy::Key('#'),
        duration: Duration::from_millis(2100),
        ended_at_ms: Some(EPOCH_MS + 2600),
    };
    let after = call.at(2.6).feed(Input::RecordEnded { id, report });
    let done = completed(&after);
    assert_eq!(done.facts.end_reason, "FinishedOnKey");
    assert_eq!(done.facts.digits, "#");
    assert_eq!(done.facts.start_ms, EPOCH_MS + 500);
    assert_eq!(
        done.facts.url,
        format!(
            "http://vb/api/v1/Account/MA1/Recording/{}.wav",
            done.facts.recording_id
        )
    );
    assert_eq!(done.path, r.path);
    let reqs = requests(&after);
    assert_eq!(reqs.len(), 1);
    assert!(matches!(&reqs[0].event, FetchEvent::Record(f) if **f == done.facts));
    // The row and RecordStop come before the action; the next element runs at once.
    let order: Vec<&str> = after
        .iter()
        .map(|a| match a {
            Action::RecordingComplete(_) => "complete",
            Action::Request(_) => "request",
            Action::Run { .. } => "run",
            _ => "other",
        })
        .collect();
    assert_eq!(order, ["complete", "request", "run"]);
    assert!(matches!(run_of(&after).1, ChannelOp::Wait { .. }));
}

#[test]
fn engine_record_hangup_during_it_is_hung_up_and_the_action_still_goes_out() {
    let mut with_redirect = record();
    with_redirect.redirect = true;
    let (mut call, first) = Call::start(vec![Instruction::Record(with_redirect)]);
    let (id, _) = run_of(&first);
    // Transcript s: CHANNEL_HANGUP, then the record's completion.
    call.at(1.5).feed(Input::ChannelHungUp {
        cause: HangupCause::NORMAL_CLEARING,
    });
    let report = RecordReport {
        ended_by: RecordEndedBy::Other,
        duration: Duration::from_millis(1540),
        ended_at_ms: None,
    };
    let after = call.at(1.6).feed(Input::RecordEnded { id, report });
    let done = completed(&after);
    assert_eq!(done.facts.end_reason, "HungUp");
    assert_eq!(
        done.facts.end_ms,
        EPOCH_MS + 1600,
        "the driver's wall clock"
    );
    // redirect="true" cannot run a document on a call that is over: the outbox.
    assert_eq!(requests(&after).len(), 1);
    assert!(!after.iter().any(|a| matches!(a, Action::Fetch(_))));
    let end = call.at(1.7).feed(Input::HangupComplete {
        cause: HangupCause::NORMAL_CLEARING,
        hung_up_by: HungUpBy::Caller,
        detail: None,
    });
    assert!(matches!(end.last(), Some(Action::Finish(_))));
}

#[test]
fn engine_record_session_goes_on_at_once_and_completes_at_its_record_stop() {
    let session = Record {
        record_session: true,
        ..record()
    };
    let (mut call, first) = Call::start(vec![Instruction::Record(session), wait(3)]);
    let (id, op) = run_of(&first);
    let ChannelOp::StartSessionRecording { path } = op else {
        panic!("{op:?}")
    };
    let next = call.at(0.1).feed(Input::OpFinished {
        id,
        outcome: voxbridge::call::engine::OpOutcome::Completed,
    });
    assert!(matches!(run_of(&next).1, ChannelOp::Wait { .. }), "goes on");
    // Another recording's stop is not ours.
    let other = call.at(1.0).feed(Input::RecordingStopped(RecordingStop {
        path: "/elsewhere.wav".into(),
        duration: Duration::from_secs(1),
        ended_at_ms: None,
    }));
    assert!(other.is_empty(), "{other:?}");
    call.at(3.1).feed(Input::ChannelHungUp {
        cause: HangupCause::NORMAL_CLEARING,
    });
    let stopped = call.at(3.2).feed(Input::RecordingStopped(RecordingStop {
        path: path.clone(),
        duration: Duration::from_millis(3100),
        ended_at_ms: Some(EPOCH_MS + 3200),
    }));
    let done = completed(&stopped);
    assert_eq!(done.facts.end_reason, "HungUp");
    assert_eq!(done.facts.duration_ms, 3100);
    assert_eq!(
        requests(&stopped).len(),
        1,
        "its action, through the outbox"
    );
}

#[test]
fn engine_record_start_on_dial_answer_waits_for_the_bridge_s_answer_and_a_rest_stop_stops_it() {
    let armed = Record {
        start_on_dial_answer: true,
        ..record()
    };
    let dial = voxbridge::document::parse(
        b"<Response><Dial><Number>7002</Number></Dial></Response>",
        voxbridge::document::Dialect::Xml,
    )
    .unwrap()
    .instructions
    .remove(0);
    let (mut call, first) = Call::start(vec![Instruction::Record(armed), dial]);
    let (_, op) = run_of(&first);
    assert!(
        matches!(op, ChannelOp::Bridge(_)),
        "armed, nothing run: {op:?}"
    );
    let ChannelOp::Bridge(bridge) = op else {
        unreachable!()
    };
    let b_leg = bridge.legs[0].uuid.clone();
    let answered = call.at(2.0).feed(Input::Bridged { b_leg });
    let path = answered
        .iter()
        .find_map(|a| match a {
            Action::StartRecording { path } => Some(path.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no StartRecording in {answered:?}"));
    let stop = call.at(3.0).feed(Input::ApiStopRecordings);
    assert!(
        matches!(&stop[..], [Action::StopRecordings(s)] if s.sessions == [path.clone()] && !s.caller),
        "{stop:?}"
    );
    let done = call.at(3.1).feed(Input::RecordingStopped(RecordingStop {
        path,
        duration: Duration::from_millis(1000),
        ended_at_ms: None,
    }));
    assert_eq!(completed(&done).facts.end_reason, "Stopped");
    // Nothing left to stop.
    assert!(call.at(3.2).feed(Input::ApiStopRecordings).is_empty());
}

#[test]
fn engine_record_the_socket_lost_before_the_report_still_completes_it() {
    let (mut call, first) = Call::start(vec![Instruction::Record(record())]);
    assert!(matches!(run_of(&first).1, ChannelOp::Record(_)));
    let end = call.at(4.0).feed(Input::SocketLost);
    let done = completed(&end);
    assert_eq!(done.facts.end_reason, "HungUp");
    assert_eq!(done.facts.duration_ms, 4000, "the engine's own times");
    assert!(
        matches!(end.last(), Some(Action::Finish(f)) if f.notes.iter().any(|n| n.contains("did not report")))
    );
}
