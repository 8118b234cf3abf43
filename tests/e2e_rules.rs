//! SPEC §4, rule by rule, end to end: the simulated switch hands calls to the real
//! `voxbridge serve`, which fetches documents from a real local application and reports
//! back to it. Every test checks what the caller saw (SIP refusal code, or the BYE and
//! its cause), whether the call was ever answered, and the hangup callback's fields
//! (cause, code, name, source, reason, status, durations, delivery id, signature).
//!
//! Simulator speed: 20× for most tests. The tests where a `sched_hangup` must be
//! recognised as the document's own when it fires run at 1×: voxbridge attributes a
//! fired schedule by comparing the switch's hangup with the moment it is due on its own
//! (real-time) clock, so an accelerated switch clock would fire it "too early".

use crate::e2e_support::*;
use std::time::Duration;
use voxbridge::cause::HangupCause;
use voxbridge_sim::Outcome;

const SPEED: f64 = 20.0;

// ------------------------------------------------------------------ rule 1: immediate

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_1_hangup_is_immediate_and_nothing_after_it_runs_or_is_fetched() {
    let (app, server) = setup().await;
    let never = app.xml("/doc/never", &xml("<Speak>never</Speak>"));
    let url = app.xml(
        "/doc/r1",
        &xml(&format!(
            "<Speak>before</Speak><Hangup/><Speak>after</Speak><Play>{}</Play><Wait length=\"2\"/><Redirect>{never}</Redirect>",
            app.url("/media/after.wav")
        )),
    );
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    assert_bye(&r, HangupCause::NORMAL_CLEARING);
    assert_eq!(
        ran(&r),
        [
            "speak flite|slt|before",
            "call-command hangup NORMAL_CLEARING"
        ]
    );
    assert_eq!(
        requested(&r),
        ["speak", "call-command hangup NORMAL_CLEARING"],
        "nothing after the Hangup is sent"
    );
    assert_eq!(
        commands_with(&r, "uuid_answer").len(),
        1,
        "answered once, with api uuid_answer: {:?}",
        r.commands
    );
    assert!(
        app.hits_on("/doc/never").is_empty(),
        "the Redirect after Hangup is never fetched"
    );
    assert!(app.hits_on("/media/after.wav").is_empty());
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::NORMAL_CLEARING, "Normal Hangup", "Answer XML").answered(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_1_elements_after_hangup_are_still_parsed_so_a_broken_one_is_an_error() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/r1b",
        &xml("\n<Hangup reason=\"busy\"/>\n<Speak>x</Speak>\n<Bogus/>\n"),
    );
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    // Not a busy refusal: the document never ran (rule 8 on an unanswered call).
    assert_refused(&r, 603, HangupCause::CALL_REJECTED);
    assert_eq!(ran(&r), ["call-command hangup CALL_REJECTED"]);
    let cb = hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::CALL_REJECTED, "Error: *", "Error"),
    )
    .await;
    assert!(
        cb.must("HangupCauseName").contains("Bogus"),
        "{:?}",
        cb.params()
    );
}

// ------------------------------------------------------------------ rule 2: never answers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_2_hangup_first_rejects_with_603_and_never_answers() {
    let (app, server) = setup().await;
    let url = app.xml("/doc/first", &xml("<Hangup/>"));
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    assert_refused(&r, 603, HangupCause::CALL_REJECTED);
    assert_eq!(
        requested(&r),
        ["call-command hangup CALL_REJECTED"],
        "no answer or pre_answer before the Hangup"
    );
    assert_eq!(r.hangup_disposition.as_deref(), Some("send_refuse"));
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::CALL_REJECTED, "Rejected", "Answer XML").reason("rejected"),
    )
    .await;
    // The fetch that started it all: StartApp, ringing, signed.
    let fetch = &app.hits_on("/doc/first")[0];
    assert_eq!(fetch.must("Event"), "StartApp");
    assert_eq!(fetch.must("CallStatus"), "ringing");
    assert_eq!(fetch.must("CallUUID"), r.uuid);
    fetch.verify_signature(app.port, TOKEN).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_2_busy_before_answer_is_486_never_answered_not_billed() {
    let (app, server) = setup().await;
    let url = app.xml("/doc/busy", &xml("<Hangup reason=\"busy\"/>"));
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    assert_refused(&r, 486, HangupCause::USER_BUSY);
    assert_eq!(requested(&r), ["call-command hangup USER_BUSY"]);
    let cb = hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::USER_BUSY, "Busy Line", "Answer XML").reason("busy"),
    )
    .await;
    // The JSON status event (SPEC §5.3) agrees.
    let status = app
        .wait_for(PATIENCE, "the status event", |hits| {
            hits.iter().find(|h| h.path == "/status").cloned()
        })
        .await;
    status.verify_signature(app.port, TOKEN).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(v["event"], "call-ended");
    assert_eq!(v["call_uuid"], r.uuid.as_str());
    assert_eq!(v["status"], "completed");
    assert_eq!(v["hangup_reason"], "busy");
    assert_eq!(v["hangup_cause"], "USER_BUSY");
    assert_eq!(v["hangup_source"], "Answer XML");
    assert_eq!(
        status.header("x-voxbridge-delivery-id").as_deref(),
        v["delivery_id"].as_str()
    );
    assert_ne!(
        v["delivery_id"].as_str(),
        Some(cb.must("DeliveryID").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_2_hangup_without_reason_after_a_wait_is_480_never_answered() {
    let (app, server) = setup().await;
    let url = app.xml("/doc/w", &xml("<Wait length=\"1\"/><Hangup/>"));
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    assert_refused(&r, 480, HangupCause::NORMAL_CLEARING);
    assert_eq!(
        ran(&r),
        ["sleep 1000", "call-command hangup NORMAL_CLEARING"]
    );
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::NORMAL_CLEARING, "Normal Hangup", "Answer XML"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_2_busy_after_a_speak_is_answered_and_the_bye_carries_user_busy() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/sb",
        &xml("<Speak>Please hold</Speak><Hangup reason=\"busy\"/>"),
    );
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    assert_bye(&r, HangupCause::USER_BUSY);
    assert_eq!(
        r.outcome,
        Outcome::Bye {
            cause: HangupCause::USER_BUSY,
            q850: 17
        }
    );
    assert_eq!(
        ran(&r),
        [
            "speak flite|slt|Please hold",
            "call-command hangup USER_BUSY"
        ]
    );
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::USER_BUSY, "Busy Line", "Answer XML")
            .reason("busy")
            .answered(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_2_rejected_on_an_answered_call_is_a_bye_with_cause_21() {
    let (app, server) = setup().await;
    let url = app.xml("/doc/rj", &xml("<Hangup reason=\"rejected\"/>"));
    let sim = sim(SPEED);
    let r = report(sim.place_call(answered(&url), server.esl)).await;

    assert_bye(&r, HangupCause::CALL_REJECTED);
    assert_eq!(requested(&r), ["call-command hangup CALL_REJECTED"]);
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::CALL_REJECTED, "Rejected", "Answer XML")
            .reason("rejected")
            .answered(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_2_hangup_after_early_media_refuses_without_answering() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/early",
        &xml("<PreAnswer><Speak>please wait</Speak></PreAnswer><Hangup reason=\"busy\"/>"),
    );
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    assert_eq!(
        r.outcome,
        Outcome::Refused {
            sip: 486,
            cause: HangupCause::USER_BUSY
        },
        "{r:#?}"
    );
    assert!(r.early_media_at.is_some(), "the PreAnswer gave early media");
    assert!(!r.answered(), "the Hangup did not answer");
    assert_eq!(
        ran(&r),
        [
            "pre_answer",
            "speak flite|slt|please wait",
            "call-command hangup USER_BUSY"
        ]
    );
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::USER_BUSY, "Busy Line", "Answer XML").reason("busy"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_2_hangup_first_in_a_redirected_document_counts_as_first() {
    let (app, server) = setup().await;
    let next = app.xml("/doc/next", &xml("<Hangup/>"));
    let url = app.xml(
        "/doc/start",
        &xml(&format!(
            "<Wait length=\"1\"/><Redirect method=\"GET\">{next}</Redirect>"
        )),
    );
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    assert_refused(&r, 603, HangupCause::CALL_REJECTED);
    let redirect = &app.hits_on("/doc/next")[0];
    assert_eq!(redirect.method, "GET");
    assert_eq!(redirect.must("Event"), "Redirect");
    assert_eq!(redirect.must("CallStatus"), "ringing");
    redirect.verify_signature(app.port, TOKEN).unwrap();
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::CALL_REJECTED, "Rejected", "Answer XML").reason("rejected"),
    )
    .await;
}

// ------------------------------------------------------------------ rule 3: schedule

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_3_schedule_arms_the_switch_and_its_hangup_ends_a_long_speak() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/sched",
        &xml("<Hangup schedule=\"2\" reason=\"busy\"/><Speak>a very long announcement</Speak><Hangup reason=\"rejected\"/>"),
    );
    let sim = sim(1.0);
    let call = sim.place_call(
        answered(&url).speak_length("a very long announcement", Duration::from_secs(30)),
        server.esl,
    );
    // While it is armed, the live row shows when it is due (what the live API reports).
    let uuid = call.uuid.clone();
    let db = server.db.clone();
    let armed = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(conn) = rusqlite::Connection::open_with_flags(
                &db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            ) {
                let at: Option<Option<i64>> = conn
                    .query_row(
                        "SELECT scheduled_hangup_at FROM live_calls WHERE call_uuid = ?1",
                        [&uuid],
                        |r| r.get(0),
                    )
                    .ok();
                if let Some(Some(at)) = at {
                    return Some(at);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    })
    .await
    .unwrap();
    let r = report(call).await;

    assert!(
        armed.is_some(),
        "scheduled_hangup_at was never recorded on the live call"
    );
    assert_bye(&r, HangupCause::USER_BUSY);
    assert_eq!(commands_with(&r, "sched_hangup").len(), 1);
    let sched = r.apps.iter().find(|a| a.name == "sched_hangup").unwrap();
    assert_eq!(sched.arg, "+2 USER_BUSY", "always relative, with the +");
    let speak = r.apps.iter().find(|a| a.name == "speak").unwrap();
    let armed_at = sched.started_at.unwrap();
    let ended = r.hangup_at.unwrap();
    // The switch's scheduler works on whole epoch seconds: +2 fires 1–2 s after. The lower
    // bound proves it is relative to the arming; the upper one only has to tell it apart
    // from the 30 s Speak running out, with room for a loaded machine.
    assert!(
        ended >= armed_at + Duration::from_millis(900)
            && ended <= armed_at + Duration::from_secs(12),
        "armed at {armed_at:?}, ended at {ended:?}"
    );
    assert!(
        speak.ended_at.unwrap() < Duration::from_secs(15),
        "the Speak was cut short"
    );
    assert!(
        r.hangup_commands.is_empty() && !requested(&r).contains(&"hangup".to_string()),
        "the later Hangup never ran: {:?}",
        requested(&r)
    );
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::USER_BUSY, "Busy Line", "Answer XML")
            .reason("busy")
            .answered(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_3_a_schedule_firing_before_answer_refuses_the_call_with_its_reason() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/sched-ringing",
        &xml("<Hangup schedule=\"2\" reason=\"busy\"/><Wait length=\"30\"/><Hangup/>"),
    );
    let sim = sim(1.0);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    assert_refused(&r, 486, HangupCause::USER_BUSY);
    assert_eq!(requested(&r), ["sched_hangup", "sleep"]);
    // The Wait would have lasted 30 s: half of that tells the schedule fired.
    assert!(
        r.hangup_at.unwrap() < Duration::from_secs(15),
        "{:?}",
        r.hangup_at
    );
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::USER_BUSY, "Busy Line", "Answer XML").reason("busy"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_3_schedule_with_nothing_after_it_ends_the_call_at_once() {
    let (app, server) = setup().await;
    let post = app.url("/post/never");
    let url = app.xml(
        "/doc/schedlast",
        &xml(&format!(
            "<Speak>hi</Speak><Hangup schedule=\"30\" reason=\"busy\" postCallUrl=\"{post}\"/>"
        )),
    );
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    // The document ran out: rule 6, not the schedule's busy.
    assert_bye(&r, HangupCause::NORMAL_CLEARING);
    assert_eq!(
        ran(&r),
        [
            "speak flite|slt|hi",
            "sched_hangup +30 USER_BUSY",
            "call-command hangup NORMAL_CLEARING"
        ]
    );
    // The schedule would have fired at 30 s: half of that tells it did not wait.
    assert!(
        r.hangup_at.unwrap() < Duration::from_secs(15),
        "{:?}",
        r.hangup_at
    );
    hangup_checked(
        &app,
        &r,
        &Expected::new(
            HangupCause::NORMAL_CLEARING,
            "End Of XML Instructions",
            "Answer XML",
        )
        .answered(),
    )
    .await;
    let kinds: Vec<String> = server.outbox(&r.uuid).into_iter().map(|r| r.0).collect();
    assert_eq!(
        kinds,
        ["hangup", "status"],
        "the schedule never fired: no post-call"
    );
    let cdr = server.cdr(&r.uuid).await;
    assert!(
        cdr.notes
            .iter()
            .any(|n| n.contains("did not close the call")),
        "{:?}",
        cdr.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_3_redirect_to_a_document_without_schedule_cancels_it() {
    let (app, server) = setup().await;
    let post = app.url("/post/cancelled");
    let next = app.xml(
        "/doc/after",
        &xml("<Speak>five seconds of talk</Speak><Hangup reason=\"busy\"/>"),
    );
    let url = app.xml(
        "/doc/before",
        &xml(&format!(
            "<Hangup schedule=\"2\" postCallUrl=\"{post}\"/><Redirect>{next}</Redirect>"
        )),
    );
    // 5×: the schedule would fire 0.2–0.4 s (real) after it is armed, well inside the
    // 1 s (real) Speak, unless it is cancelled.
    let sim = sim(5.0);
    let r = report(sim.place_call(
        answered(&url).speak_length("five seconds of talk", Duration::from_secs(5)),
        server.esl,
    ))
    .await;

    assert_bye(&r, HangupCause::USER_BUSY);
    assert_eq!(
        ran(&r),
        [
            "sched_hangup +2 NORMAL_CLEARING",
            "sched_cancel",
            "speak flite|slt|five seconds of talk",
            "call-command hangup USER_BUSY"
        ]
    );
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::USER_BUSY, "Busy Line", "Answer XML")
            .reason("busy")
            .answered(),
    )
    .await;
    let kinds: Vec<String> = server.outbox(&r.uuid).into_iter().map(|r| r.0).collect();
    assert_eq!(kinds, ["hangup", "status"]);
}

// ------------------------------------------------------------------ rule 4: first wins

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_4_first_hangup_wins_the_second_is_never_sent() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/two",
        &xml("<Speak>hi</Speak><Hangup reason=\"busy\"/><Hangup reason=\"rejected\"/>"),
    );
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    assert_bye(&r, HangupCause::USER_BUSY);
    assert_eq!(
        ran(&r),
        ["speak flite|slt|hi", "call-command hangup USER_BUSY"]
    );
    assert!(commands_with(&r, "uuid_kill").is_empty());
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::USER_BUSY, "Busy Line", "Answer XML")
            .reason("busy")
            .answered(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_4_caller_hangs_up_mid_speak_wins_nothing_more_runs_callback_still_sent() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/mid",
        &xml("<Speak>a long message for the caller</Speak><Speak>second</Speak><Hangup reason=\"busy\"/>"),
    );
    let sim = sim(SPEED);
    let r = report(
        sim.place_call(
            ringing(&url)
                .speak_length("a long message for the caller", Duration::from_secs(20))
                .caller_hangs_up_during("speak", Duration::from_secs(2)),
            server.esl,
        ),
    )
    .await;

    assert_eq!(
        r.outcome,
        Outcome::CallerHungUp {
            cause: HangupCause::NORMAL_CLEARING,
            answered: true
        },
        "{r:#?}"
    );
    assert_eq!(r.hangup_disposition.as_deref(), Some("recv_bye"));
    assert_eq!(
        requested(&r),
        ["speak"],
        "no further app after the caller left"
    );
    assert!(commands_with(&r, "uuid_kill").is_empty());
    let cb = hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::NORMAL_CLEARING, "Caller Hangup", "Caller").answered(),
    )
    .await;
    // The caller left 2 simulated seconds into a 20-second Speak. At SPEED a simulated
    // second is 50 ms of wall clock, so a loaded machine may add a second between the
    // answer and the Speak; the bound only has to tell "cut short" from "played out".
    let billed: u64 = cb.must("BillDuration").parse().unwrap();
    assert!(
        (2..=5).contains(&billed),
        "BillDuration {billed}: the Speak was not cut short at 2 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_4_caller_cancels_before_answer_and_the_callback_says_cancel() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/cancel",
        &xml("<Wait length=\"10\"/><Hangup reason=\"busy\"/>"),
    );
    let sim = sim(SPEED);
    let r = report(sim.place_call(
        ringing(&url).caller_hangs_up_during("sleep", Duration::from_secs(1)),
        server.esl,
    ))
    .await;

    assert_eq!(r.sip_code(), Some(487));
    assert_eq!(requested(&r), ["sleep"]);
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::ORIGINATOR_CANCEL, "Caller Hangup", "Caller").cancelled(),
    )
    .await;
    let status = app
        .wait_for(PATIENCE, "the status event", |hits| {
            hits.iter().find(|h| h.path == "/status").cloned()
        })
        .await;
    let v: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(v["status"], "cancel");
    assert_eq!(v["hangup_source"], "Caller");
    assert_eq!(v["hangup_reason"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_4_caller_hangs_up_while_the_document_is_fetched_and_nothing_is_sent() {
    let (app, server) = setup().await;
    app.answer("/doc/slow", Answer::Hang);
    let sim = sim(SPEED);
    let r = report(sim.place_call(
        ringing(&app.url("/doc/slow")).caller_hangs_up_at(Duration::from_secs(10)),
        server.esl,
    ))
    .await;

    assert_eq!(r.sip_code(), Some(487));
    assert!(
        r.apps.is_empty() && r.hangup_commands.is_empty(),
        "nothing executed: {:?}",
        requested(&r)
    );
    assert!(commands_with(&r, "uuid_kill").is_empty());
    assert_eq!(app.hits_on("/doc/slow").len(), 1);
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::ORIGINATOR_CANCEL, "Caller Hangup", "Caller").cancelled(),
    )
    .await;
    // The call is over: the fetch for it is abandoned, not retried (2 s fetch timeout).
    // The fetch runs on the call's own task, and the CDR is written as that task ends: once
    // the record is there, nothing can fetch for this call any more.
    server.cdr(&r.uuid).await;
    assert_eq!(
        app.hits_on("/doc/slow").len(),
        1,
        "no document is fetched for a call that has ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_4_of_two_armed_schedules_the_one_that_fires_first_is_recorded() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/two-scheds",
        &xml("<Hangup schedule=\"4\" reason=\"busy\"/><Hangup schedule=\"1\" reason=\"rejected\"/><Speak>hold the line please</Speak>"),
    );
    let sim = sim(1.0);
    let r = report(sim.place_call(
        answered(&url).speak_length("hold the line please", Duration::from_secs(30)),
        server.esl,
    ))
    .await;

    assert_bye(&r, HangupCause::CALL_REJECTED);
    // The cause says which schedule fired; the 30 s Speak was cut long before its end.
    assert!(
        r.hangup_at.unwrap() < Duration::from_secs(15),
        "{:?}",
        r.hangup_at
    );
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::CALL_REJECTED, "Rejected", "Answer XML")
            .reason("rejected")
            .answered(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_4_the_linger_notice_before_hangup_complete_changes_nothing() {
    // Transcript b: the switch may send the linger notice right after CHANNEL_HANGUP.
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/linger",
        &xml("<Speak>hi</Speak><Hangup reason=\"busy\"/>"),
    );
    let sim = voxbridge_sim::Sim::new(voxbridge_sim::SimConfig {
        speed: SPEED,
        linger_notice: voxbridge_sim::LingerNotice::AfterHangup,
        ..voxbridge_sim::SimConfig::default()
    });
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    assert_bye(&r, HangupCause::USER_BUSY);
    let cb = hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::USER_BUSY, "Busy Line", "Answer XML")
            .reason("busy")
            .answered(),
    )
    .await;
    // The record was built from CHANNEL_HANGUP_COMPLETE, not cut short by the notice.
    assert_eq!(cb.must("BillDuration"), r.billsec.to_string());
    // Nothing was sent after the hangup: voxbridge left by closing the socket (the
    // simulator reports a call only once its socket is closed), not with `exit`.
    assert_eq!(
        r.commands.last().map(String::as_str),
        Some("sendmsg\ncall-command: hangup\nhangup-cause: USER_BUSY")
    );
}

// ------------------------------------------------------------------ rule 5: post-call

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_5_two_hangups_with_post_call_urls_only_the_first_executed_fires() {
    let (app, server) = setup().await;
    let first = app.url("/post/first");
    let second = app.url("/post/second");
    let url = app.xml(
        "/doc/pc",
        &xml(&format!(
            "<Speak>bye</Speak><Hangup postCallUrl=\"{first}\"/><Hangup reason=\"busy\" postCallUrl=\"{second}\"/>"
        )),
    );
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    assert_bye(&r, HangupCause::NORMAL_CLEARING);
    let cb = hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::NORMAL_CLEARING, "Normal Hangup", "Answer XML").answered(),
    )
    .await;
    let post = app
        .wait_for(PATIENCE, "the post-call request", |hits| {
            hits.iter().find(|h| h.path == "/post/first").cloned()
        })
        .await;
    assert_eq!(post.method, "POST");
    assert_eq!(post.must("Event"), "PostCall");
    assert_eq!(post.must("CallUUID"), r.uuid);
    assert_eq!(post.must("HangupCause"), "NORMAL_CLEARING");
    assert_eq!(post.must("BillDuration"), cb.must("BillDuration"));
    post.verify_signature(app.port, TOKEN).unwrap();
    let rows = server.outbox(&r.uuid);
    let post_rows: Vec<&String> = rows
        .iter()
        .filter(|r| r.0 == "post_call")
        .map(|r| &r.1)
        .collect();
    assert_eq!(post_rows, [&first], "only the Hangup that closed the call");
    assert!(app.hits_on("/post/second").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_5_a_scheduled_hangup_that_fires_first_runs_its_workflow_the_later_one_does_not() {
    let (app, server) = setup().await;
    let sched = app.url("/post/sched");
    let later = app.url("/post/later");
    let url = app.xml(
        "/doc/pcs",
        &xml(&format!(
            "<Hangup schedule=\"2\" postCallUrl=\"{sched}\" postCallMethod=\"GET\"/><Speak>long long talk</Speak><Hangup postCallUrl=\"{later}\"/>"
        )),
    );
    let sim = sim(1.0);
    let r = report(sim.place_call(
        answered(&url).speak_length("long long talk", Duration::from_secs(30)),
        server.esl,
    ))
    .await;

    assert_bye(&r, HangupCause::NORMAL_CLEARING);
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::NORMAL_CLEARING, "Normal Hangup", "Answer XML").answered(),
    )
    .await;
    let post = app
        .wait_for(
            PATIENCE,
            "the scheduled Hangup's post-call request",
            |hits| hits.iter().find(|h| h.path == "/post/sched").cloned(),
        )
        .await;
    assert_eq!(
        post.method, "GET",
        "postCallMethod=GET: the record in the query"
    );
    assert!(post.body.is_empty());
    assert_eq!(post.must("Event"), "PostCall");
    assert_eq!(post.must("CallUUID"), r.uuid);
    post.verify_signature(app.port, TOKEN).unwrap();
    let kinds: Vec<(String, String)> = server
        .outbox(&r.uuid)
        .into_iter()
        .map(|r| (r.0, r.1.split('?').next().unwrap().to_string()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("hangup".to_string(), app.url("/hangup")),
            ("status".to_string(), app.url("/status")),
            ("post_call".to_string(), sched.clone())
        ]
    );
    assert!(app.hits_on("/post/later").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_5_a_post_call_document_runs_in_post_call_mode() {
    let (app, server) = setup().await;
    let next = app.xml(
        "/post/next",
        &xml("<Hangup reason=\"busy\"/><Play>tone_stream://%(100,0,440)</Play>"),
    );
    let post = app.xml(
        "/post/doc",
        &xml(&format!(
            "<Speak>too late</Speak><Wait/><Redirect>{next}</Redirect><Speak>never reached</Speak>"
        )),
    );
    let url = app.xml(
        "/doc/pcm",
        &xml(&format!("<Hangup reason=\"busy\" postCallUrl=\"{post}\"/>")),
    );
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    assert_refused(&r, 486, HangupCause::USER_BUSY);
    let fetched = app
        .wait_for(PATIENCE, "the post-call Redirect", |hits| {
            hits.iter().find(|h| h.path == "/post/next").cloned()
        })
        .await;
    assert_eq!(fetched.must("Event"), "Redirect");
    assert_eq!(fetched.must("CallStatus"), "completed");
    assert_eq!(fetched.must("CallUUID"), r.uuid);
    fetched.verify_signature(app.port, TOKEN).unwrap();
    // The skipped elements land in the CDR; nothing reaches the switch any more.
    let deadline = std::time::Instant::now() + PATIENCE;
    let notes = loop {
        let notes = server.cdr(&r.uuid).await.notes;
        if notes.iter().any(|n| n.contains("Play")) || std::time::Instant::now() > deadline {
            break notes;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let skipped: Vec<&String> = notes.iter().filter(|n| n.starts_with("skipped")).collect();
    assert_eq!(
        skipped,
        [
            "skipped Speak (call already ended)",
            "skipped Wait (call already ended)",
            "skipped Hangup (call already ended)",
            "skipped Play (call already ended)"
        ],
        "{notes:?}"
    );
    assert!(server
        .log_text()
        .contains("skipped Speak (call already ended)"));
    assert_eq!(requested(&r), ["call-command hangup USER_BUSY"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_5_a_post_call_url_answering_404_is_a_permanent_failure() {
    let (app, server) = setup().await;
    let post = app.status("/post/gone", 404);
    let url = app.xml(
        "/doc/p404",
        &xml(&format!("<Hangup postCallUrl=\"{post}\"/>")),
    );
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    assert_refused(&r, 603, HangupCause::CALL_REJECTED);
    let row = server.outbox_final(&r.uuid, "post_call").await;
    assert_eq!(
        (row.2.as_str(), row.3),
        ("failed", 1),
        "recorded, not retried: {row:?}"
    );
    // The row is final with one attempt: the one request the app saw.
    assert_eq!(app.hits_on("/post/gone").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_5_of_two_schedules_with_post_call_urls_only_the_one_that_fired_runs() {
    let (app, server) = setup().await;
    let early = app.url("/post/early");
    let late = app.url("/post/late");
    let url = app.xml(
        "/doc/two-pc",
        &xml(&format!(
            "<Hangup schedule=\"4\" postCallUrl=\"{late}\"/><Hangup schedule=\"1\" postCallUrl=\"{early}\"/><Speak>hold the line please</Speak>"
        )),
    );
    let sim = sim(1.0);
    let r = report(sim.place_call(
        answered(&url).speak_length("hold the line please", Duration::from_secs(30)),
        server.esl,
    ))
    .await;

    assert_bye(&r, HangupCause::NORMAL_CLEARING);
    app.hangup_callback(&r.uuid).await;
    app.wait_for(PATIENCE, "the early schedule's post-call", |hits| {
        hits.iter().find(|h| h.path == "/post/early").cloned()
    })
    .await;
    let post_rows: Vec<String> = server
        .outbox(&r.uuid)
        .into_iter()
        .filter(|r| r.0 == "post_call")
        .map(|r| r.1)
        .collect();
    assert_eq!(post_rows, [early]);
    assert!(app.hits_on("/post/late").is_empty());
}

// ------------------------------------------------------------------ rule 6: end of document

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_6_end_of_document_is_normal_clearing_end_of_xml_instructions() {
    let (app, server) = setup().await;
    let url = app.xml("/doc/eod", &xml("<Speak>that is all</Speak>"));
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    assert_bye(&r, HangupCause::NORMAL_CLEARING);
    assert_eq!(
        ran(&r),
        [
            "speak flite|slt|that is all",
            "call-command hangup NORMAL_CLEARING"
        ]
    );
    hangup_checked(
        &app,
        &r,
        &Expected::new(
            HangupCause::NORMAL_CLEARING,
            "End Of XML Instructions",
            "Answer XML",
        )
        .answered(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_6_end_of_document_before_answer_is_480() {
    let (app, server) = setup().await;
    let url = app.xml("/doc/eodr", &xml("<Wait length=\"1\"/>"));
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    assert_refused(&r, 480, HangupCause::NORMAL_CLEARING);
    hangup_checked(
        &app,
        &r,
        &Expected::new(
            HangupCause::NORMAL_CLEARING,
            "End Of XML Instructions",
            "Answer XML",
        ),
    )
    .await;
}

// ------------------------------------------------------------------ rule 7: empty document

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_7_empty_response_leaves_the_call_ringing_until_the_caller_hangs_up() {
    let (app, server) = setup().await;
    let url = app.xml("/doc/empty", "<Response/>");
    let sim = sim(SPEED);
    let r = report(sim.place_call(
        ringing(&url).caller_hangs_up_at(Duration::from_secs(30)),
        server.esl,
    ))
    .await;

    assert!(
        r.apps.is_empty() && r.hangup_commands.is_empty(),
        "nothing executed: {:?}",
        requested(&r)
    );
    assert!(commands_with(&r, "uuid_kill").is_empty());
    assert!(
        r.hangup_at.unwrap() >= Duration::from_secs(30),
        "parked until the caller left"
    );
    assert_eq!(
        r.outcome,
        Outcome::CallerHungUp {
            cause: HangupCause::ORIGINATOR_CANCEL,
            answered: false
        }
    );
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::ORIGINATOR_CANCEL, "Caller Hangup", "Caller").cancelled(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_7_empty_response_times_out_with_allotted_timeout() {
    let (app, server) = setup_with(ServerOptions {
        empty_document_timeout: 1,
        ..ServerOptions::default()
    })
    .await;
    let url = app.xml("/doc/empty", "<Response></Response>");
    let sim = sim(SPEED);
    let started = std::time::Instant::now();
    let r = report(sim.place_call(answered(&url), server.esl)).await;

    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the timeout"
    );
    assert_bye(&r, HangupCause::ALLOTTED_TIMEOUT);
    assert!(
        r.apps.is_empty() && r.hangup_commands.is_empty(),
        "{:?}",
        requested(&r)
    );
    assert_eq!(commands_with(&r, "uuid_kill").len(), 1);
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::ALLOTTED_TIMEOUT, "Timeout", "Answer XML").answered(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_7_empty_response_on_a_ringing_call_times_out_with_480() {
    let (app, server) = setup_with(ServerOptions {
        empty_document_timeout: 1,
        ..ServerOptions::default()
    })
    .await;
    let url = app.xml("/doc/empty", "<Response/>");
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    assert_refused(&r, 480, HangupCause::ALLOTTED_TIMEOUT);
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::ALLOTTED_TIMEOUT, "Timeout", "Answer XML"),
    )
    .await;
}

// ------------------------------------------------------------------ rule 8: no document

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_8_answer_url_down_the_fallback_url_is_used() {
    let (app, server) = setup().await;
    let primary = app.status("/doc/down", 503);
    let fallback = app.xml(
        "/doc/fallback",
        &xml("<Speak>from the fallback</Speak><Hangup reason=\"busy\"/>"),
    );
    let sim = sim(SPEED);
    let r = report(sim.place_call(
        ringing(&primary).var("voxbridge_fallback_answer_url", &fallback),
        server.esl,
    ))
    .await;

    assert_bye(&r, HangupCause::USER_BUSY);
    assert_eq!(
        ran(&r),
        [
            "speak flite|slt|from the fallback",
            "call-command hangup USER_BUSY"
        ]
    );
    assert_eq!(
        app.hits_on("/doc/down").len(),
        3,
        "1 attempt + 2 retries on 503"
    );
    let fb = app.hits_on("/doc/fallback");
    assert_eq!(fb.len(), 1);
    assert_eq!(fb[0].must("Event"), "StartApp");
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::USER_BUSY, "Busy Line", "Answer XML")
            .reason("busy")
            .answered(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_8_answer_and_fallback_down_before_answer_rejects_with_source_error() {
    let (app, server) = setup().await;
    let primary = dead_url("/doc/nothing");
    let fallback = app.status("/doc/fallback-down", 500);
    let sim = sim(SPEED);
    let r = report(sim.place_call(
        ringing(&primary).var("voxbridge_fallback_answer_url", &fallback),
        server.esl,
    ))
    .await;

    assert_refused(&r, 603, HangupCause::CALL_REJECTED);
    assert_eq!(requested(&r), ["call-command hangup CALL_REJECTED"]);
    assert_eq!(
        app.hits_on("/doc/fallback-down").len(),
        1,
        "the fallback is tried once"
    );
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::CALL_REJECTED, "Error: no document*", "Error"),
    )
    .await;
    let cdr = server.cdr(&r.uuid).await;
    assert_eq!(cdr.source, "Error");
    assert!(
        cdr.notes.iter().any(|n| n.contains("no document")),
        "{:?}",
        cdr.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_8_no_document_on_an_answered_call_is_normal_clearing() {
    let (app, server) = setup().await;
    let primary = app.status("/doc/missing", 404);
    let sim = sim(SPEED);
    let r = report(sim.place_call(answered(&primary), server.esl)).await;

    assert_bye(&r, HangupCause::NORMAL_CLEARING);
    assert_eq!(app.hits_on("/doc/missing").len(), 1, "no retry on 404");
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::NORMAL_CLEARING, "Error: *", "Error").answered(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_8_invalid_document_takes_the_error_path_with_the_parse_error_in_log_and_cdr() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/invalid",
        "<Response>\n  <Speak>hi</Speak>\n    <Hangup reason=\"later\"/>\n</Response>",
    );
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    assert_refused(&r, 603, HangupCause::CALL_REJECTED);
    assert_eq!(
        requested(&r),
        ["call-command hangup CALL_REJECTED"],
        "nothing of an invalid document runs"
    );
    let cb = hangup_checked(
        &app,
        &r,
        &Expected::new(
            HangupCause::CALL_REJECTED,
            "Error: invalid document*",
            "Error",
        ),
    )
    .await;
    let name = cb.must("HangupCauseName");
    assert!(
        name.contains("line 3") && name.contains("reason=\"later\""),
        "{name}"
    );
    let cdr = server.cdr(&r.uuid).await;
    assert_eq!(cdr.cause_name, name);
    assert!(
        cdr.notes
            .iter()
            .any(|n| n.contains("line 3, col 5") && n.contains("expected rejected or busy")),
        "{:?}",
        cdr.notes
    );
    let log = server.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains(&r.uuid) && l.contains("line 3, col 5")),
        "the parse error is logged with the call's uuid"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_8_no_answer_url_at_all_refuses_the_call() {
    let (app, server) = setup().await;
    let sim = sim(SPEED);
    let r = report(sim.place_call(voxbridge_sim::CallScript::ringing(), server.esl)).await;

    assert_refused(&r, 603, HangupCause::CALL_REJECTED);
    let cb = hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::CALL_REJECTED, "Error: *", "Error"),
    )
    .await;
    assert!(cb
        .must("HangupCauseName")
        .starts_with("Error: no answer URL"));
    assert!(server.log_text().contains("no answer URL"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_8_a_redirect_loop_is_stopped_at_100_fetches() {
    let (app, server) = setup().await;
    let url = app.url("/doc/loop");
    app.xml("/doc/loop", &xml(&format!("<Redirect>{url}</Redirect>")));
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    assert_refused(&r, 603, HangupCause::CALL_REJECTED);
    let fetches = app.hits_on("/doc/loop");
    assert_eq!(fetches.len(), 100);
    assert_eq!(fetches[0].must("Event"), "StartApp");
    assert!(fetches[1..].iter().all(|h| h.must("Event") == "Redirect"));
    hangup_checked(
        &app,
        &r,
        &Expected::new(
            HangupCause::CALL_REJECTED,
            "Error: redirect limit of 100*",
            "Error",
        ),
    )
    .await;
}

// ------------------------------------------------------------------ rule 9: no children

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_9_hangup_with_text_is_a_document_error_naming_the_line() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/text",
        "<Response>\n<Speak>hi</Speak>\n<Hangup>bye</Hangup>\n</Response>",
    );
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    assert_refused(&r, 603, HangupCause::CALL_REJECTED);
    assert_eq!(requested(&r), ["call-command hangup CALL_REJECTED"]);
    let cb = hangup_checked(
        &app,
        &r,
        &Expected::new(
            HangupCause::CALL_REJECTED,
            "Error: invalid document*",
            "Error",
        ),
    )
    .await;
    let name = cb.must("HangupCauseName");
    assert!(name.contains("line 3") && name.contains("Hangup"), "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_9_hangup_with_a_child_element_is_a_document_error_naming_the_line() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/child",
        "<Response>\n<Hangup>\n  <Speak>x</Speak>\n</Hangup>\n</Response>",
    );
    let sim = sim(SPEED);
    let r = report(sim.place_call(answered(&url), server.esl)).await;

    assert_bye(&r, HangupCause::NORMAL_CLEARING);
    assert!(r.apps.is_empty(), "{:?}", r.apps);
    assert_eq!(ran(&r), ["call-command hangup NORMAL_CLEARING"]);
    let cb = hangup_checked(
        &app,
        &r,
        &Expected::new(
            HangupCause::NORMAL_CLEARING,
            "Error: invalid document*",
            "Error",
        )
        .answered(),
    )
    .await;
    let name = cb.must("HangupCauseName");
    assert!(name.contains("line 3") && name.contains("Speak"), "{name}");
}

// ------------------------------------------------------------------ element mapping

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speak_text_reaches_the_switch_verbatim_without_variable_expansion() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/verbatim",
        &xml("<Speak>Your code is ${destination_number} &amp; 5%</Speak><Hangup reason=\"busy\"/>"),
    );
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    assert_bye(&r, HangupCause::USER_BUSY);
    let speak = r.apps.iter().find(|a| a.name == "speak").unwrap();
    assert_eq!(
        speak.arg,
        "flite|slt|Your code is ${destination_number} & 5%"
    );
    let set = r
        .apps
        .iter()
        .position(|a| a.name == "set")
        .expect("set sent");
    assert_eq!(r.apps[set].arg, "app_disable_expand_variables=true");
    assert!(set < r.apps.iter().position(|a| a.name == "speak").unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speak_loop_0_repeats_until_the_caller_hangs_up() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/endless",
        &xml("<Speak loop=\"0\">still here</Speak><Hangup reason=\"busy\"/>"),
    );
    let sim = sim(SPEED);
    let r = report(
        sim.place_call(
            ringing(&url)
                .speak_length("still here", Duration::from_secs(8))
                .caller_hangs_up_at(Duration::from_secs(30)),
            server.esl,
        ),
    )
    .await;

    assert_eq!(
        r.outcome,
        Outcome::CallerHungUp {
            cause: HangupCause::NORMAL_CLEARING,
            answered: true
        }
    );
    let speaks = r.apps.iter().filter(|a| a.name == "speak").count();
    assert!(speaks >= 3, "repeated until the caller left: {speaks} runs");
    assert!(
        r.hangup_commands.is_empty() && !requested(&r).contains(&"hangup".to_string()),
        "{:?}",
        requested(&r)
    );
    hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::NORMAL_CLEARING, "Caller Hangup", "Caller").answered(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_to_a_file_document_serves_the_call_without_any_app() {
    let docs = tempfile::tempdir().unwrap();
    let doc = docs.path().join("busy.xml");
    std::fs::write(
        &doc,
        "<Response>\n  <Hangup reason=\"busy\"/>\n</Response>\n",
    )
    .unwrap();
    let app = App::start().await;
    let server = Server::start(
        &app,
        ServerOptions {
            extra_toml: format!(
                "[[route]]\ndestination = \"/^70[0-9]1$/\"\nanswer_url = \"file://{}\"\n",
                doc.display()
            ),
            ..ServerOptions::default()
        },
    )
    .await;
    let sim = sim(SPEED);
    let r = report(sim.place_call(
        voxbridge_sim::CallScript::ringing().originate_timeout(Duration::from_secs(600)),
        server.esl,
    ))
    .await;

    assert_refused(&r, 486, HangupCause::USER_BUSY);
    let cb = hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::USER_BUSY, "Busy Line", "Answer XML").reason("busy"),
    )
    .await;
    assert_eq!(cb.must("To"), "7001");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_8_an_unknown_account_refuses_the_call_and_says_why() {
    let (app, server) = setup().await;
    let url = app.xml("/doc/acct", &xml("<Speak>never</Speak>"));
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url).var("voxbridge_account", "MA9"), server.esl)).await;

    assert_refused(&r, 603, HangupCause::CALL_REJECTED);
    assert!(
        app.hits_on("/doc/acct").is_empty(),
        "nothing is fetched for it"
    );
    let cb = hangup_checked(
        &app,
        &r,
        &Expected::new(HangupCause::CALL_REJECTED, "Error: *", "Error"),
    )
    .await;
    let name = cb.must("HangupCauseName");
    assert!(
        name.contains("voxbridge_account") && name.contains("MA9"),
        "{name}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_8_a_remote_document_may_not_redirect_to_a_local_file() {
    let (app, server) = setup().await;
    let local = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(local.path(), "<Response><Speak>secret</Speak></Response>").unwrap();
    let url = app.xml(
        "/doc/to-file",
        &xml(&format!(
            "<Speak>hi</Speak><Redirect>file://{}</Redirect>",
            local.path().display()
        )),
    );
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;

    assert_bye(&r, HangupCause::NORMAL_CLEARING);
    assert_eq!(
        ran(&r),
        ["speak flite|slt|hi", "call-command hangup NORMAL_CLEARING"]
    );
    let cb = hangup_checked(
        &app,
        &r,
        &Expected::new(
            HangupCause::NORMAL_CLEARING,
            "Error: invalid document*",
            "Error",
        )
        .answered(),
    )
    .await;
    assert!(cb.must("HangupCauseName").contains("file://"));
}
