//! SPEC §12.1 `<Gather>`, rule by rule, end to end on the simulator: the real
//! `voxbridge serve`, a real local application, the simulated switch playing the caller's
//! DTMF as transcript l shows it (RFC 2833 events, ~0.52 s apart).
//!
//! The barge-in test runs at 1× because its acceptance names a wall-clock bound (the
//! prompt stops within 200 ms of the digit); the others run faster.

use crate::e2e_support::*;
use std::time::Duration;
use voxbridge::cause::HangupCause;
use voxbridge_sim::AppStatus;

const PROMPT: &str = "Press 1 for sales, 2 for support.";

/// The application index (1-based, every CHANNEL_EXECUTE) of the first prompt of a
/// Gather that is the first element of a document on an answered call: `flush_dtmf`
/// is 1, the prompt 2.
const FIRST_PROMPT_APP: usize = 2;

fn app_named<'a>(
    r: &'a voxbridge_sim::CallReport,
    name: &str,
    arg: &str,
) -> &'a voxbridge_sim::AppRecord {
    r.apps
        .iter()
        .find(|a| a.name == name && a.arg.contains(arg))
        .unwrap_or_else(|| panic!("no {name} {arg:?} in {:?}", ran(r)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gather_menu_barge_in_stops_the_prompt_within_200ms_and_the_action_document_runs() {
    let (app, server) = setup().await;
    let menu = app.xml(
        "/menu",
        &xml("<Speak>Support, please hold.</Speak><Hangup/>"),
    );
    let url = app.xml(
        "/doc/menu",
        &xml(&format!(
            "<Gather action=\"{menu}\" numDigits=\"1\"><Speak>{PROMPT}</Speak><Speak>Never heard.</Speak></Gather>\
             <Speak>We did not get your choice.</Speak>"
        )),
    );
    let after = Duration::from_secs(1);
    let script = answered(&url)
        .speak_length(PROMPT, Duration::from_secs(10))
        .dtmf_during_app(FIRST_PROMPT_APP, after, "2");
    let r = report(sim(1.0).place_call(script, server.esl)).await;

    let prompt = app_named(&r, "speak", PROMPT);
    let digit_at = prompt.started_at.expect("prompt started") + after;
    let stopped_at = prompt.ended_at.expect("prompt ended");
    assert!(
        stopped_at >= digit_at && stopped_at - digit_at <= Duration::from_millis(200),
        "the prompt stopped {:?} after the digit",
        stopped_at.checked_sub(digit_at)
    );
    assert_eq!(commands_with(&r, "uuid_break").len(), 1, "one barge-in");
    assert_eq!(
        requested(&r),
        [
            "flush_dtmf",
            "speak",
            "speak",
            "call-command hangup NORMAL_CLEARING"
        ],
        "the second prompt and the element after the Gather never run"
    );
    assert!(ran(&r).contains(&"speak flite|slt|Support, please hold.".to_string()));
    let hit = &app.hits_on("/menu")[0];
    assert_eq!(hit.must("Event"), "Gather");
    assert_eq!(hit.must("Digits"), "2");
    assert_eq!(hit.must("InputType"), "dtmf");
    assert_eq!(hit.must("Speech"), "");
    assert_eq!(hit.must("CallUUID"), r.uuid);
    assert_eq!(hit.must("CallStatus"), "in-progress");
    hit.verify_signature(app.port, TOKEN).expect("signed");
    let cb = app.hangup_callback(&r.uuid).await;
    assert_eq!(cb.must("HangupCauseName"), "Normal Hangup");
    let cdr = server.cdr(&r.uuid).await;
    assert!(
        cdr.notes
            .iter()
            .any(|n| n == "Gather ended by numDigits: Digits=2"),
        "{:?}",
        cdr.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gather_finish_on_key_ends_the_input_and_is_not_part_of_the_digits() {
    let (app, server) = setup().await;
    let done = app.xml("/done", &xml("<Hangup/>"));
    let url = app.xml(
        "/doc/fok",
        &xml(&format!(
            "<Gather action=\"{done}\" finishOnKey=\"#\"><Speak>{PROMPT}</Speak></Gather>"
        )),
    );
    let script = answered(&url)
        .speak_length(PROMPT, Duration::from_secs(10))
        .dtmf_during_app(FIRST_PROMPT_APP, Duration::from_millis(500), "123#");
    let r = report(sim(5.0).place_call(script, server.esl)).await;

    let hit = &app.hits_on("/done")[0];
    assert_eq!(hit.must("Digits"), "123");
    assert_eq!(
        commands_with(&r, "uuid_break").len(),
        1,
        "only the first digit barges in"
    );
    let cdr = server.cdr(&r.uuid).await;
    assert!(
        cdr.notes
            .iter()
            .any(|n| n == "Gather ended by FinishedOnKey: Digits=123"),
        "{:?}",
        cdr.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gather_no_input_goes_on_with_the_next_element_without_a_request() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/none",
        &xml(&format!(
            "<Gather action=\"{}\" executionTimeout=\"5\"><Speak>{PROMPT}</Speak></Gather>\
             <Speak>We did not get your choice. Goodbye.</Speak>",
            app.url("/never")
        )),
    );
    let script = answered(&url).speak_length(PROMPT, Duration::from_secs(1));
    let r = report(sim(1.0).place_call(script, server.esl)).await;

    assert_eq!(
        ran(&r),
        [
            "flush_dtmf".to_string(),
            format!("speak flite|slt|{PROMPT}"),
            "speak flite|slt|We did not get your choice. Goodbye.".to_string(),
            "call-command hangup NORMAL_CLEARING".to_string(),
        ]
    );
    let prompt_end = app_named(&r, "speak", PROMPT).ended_at.unwrap();
    let next = app_named(&r, "speak", "Goodbye").started_at.unwrap();
    assert!(
        next - prompt_end >= Duration::from_millis(4500),
        "executionTimeout counts from the end of the prompts: {:?}",
        next - prompt_end
    );
    assert!(app.hits_on("/never").is_empty(), "no input: no request");
    assert!(commands_with(&r, "uuid_break").is_empty());
    let cb = app.hangup_callback(&r.uuid).await;
    assert_eq!(cb.must("HangupCauseName"), "End Of XML Instructions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gather_digits_pressed_before_it_starts_are_not_counted() {
    let (app, server) = setup().await;
    let got = app.xml("/got", &xml("<Hangup/>"));
    let url = app.xml(
        "/doc/early",
        &xml(&format!(
            "<Speak>Welcome.</Speak><Gather action=\"{got}\" numDigits=\"1\" executionTimeout=\"5\">\
             <Speak>{PROMPT}</Speak></Gather>"
        )),
    );
    // "9" during the welcome (app 1), "4" during the Gather's prompt (app 3).
    let script = answered(&url)
        .speak_length("Welcome.", Duration::from_secs(2))
        .speak_length(PROMPT, Duration::from_secs(10))
        .dtmf_during_app(1, Duration::from_millis(500), "9")
        .dtmf_during_app(3, Duration::from_millis(500), "4");
    let r = report(sim(5.0).place_call(script, server.esl)).await;

    assert_eq!(requested(&r)[..3], ["speak", "flush_dtmf", "speak"]);
    let hit = &app.hits_on("/got")[0];
    assert_eq!(hit.must("Digits"), "4", "the 9 came before the Gather");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gather_digit_end_timeout_ends_the_input_after_the_last_digit() {
    let (app, server) = setup().await;
    let got = app.xml("/got", &xml("<Hangup/>"));
    let url = app.xml(
        "/doc/det",
        &xml(&format!(
            "<Gather action=\"{got}\" digitEndTimeout=\"2\" finishOnKey=\"none\"><Speak>{PROMPT}</Speak></Gather>"
        )),
    );
    let script = answered(&url)
        .speak_length(PROMPT, Duration::from_secs(10))
        .dtmf_during_app(FIRST_PROMPT_APP, Duration::from_millis(200), "42#");
    let r = report(sim(2.0).place_call(script, server.esl)).await;
    assert_eq!(
        app.hits_on("/got")[0].must("Digits"),
        "42#",
        "finishOnKey none: # is a digit"
    );
    let cdr = server.cdr(&r.uuid).await;
    assert!(
        cdr.notes
            .iter()
            .any(|n| n == "Gather ended by digitEndTimeout: Digits=42#"),
        "{:?}",
        cdr.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gather_redirect_false_requests_the_action_through_the_outbox_and_goes_on() {
    let (app, server) = setup().await;
    let action = app.xml("/gathered", &xml("<Speak>ignored</Speak>"));
    let url = app.xml(
        "/doc/nr",
        &xml(&format!(
            "<Gather action=\"{action}\" numDigits=\"2\" redirect=\"false\" log=\"false\"><Speak>{PROMPT}</Speak></Gather>\
             <Speak>Thanks.</Speak>"
        )),
    );
    let script = answered(&url)
        .speak_length(PROMPT, Duration::from_secs(10))
        .dtmf_during_app(FIRST_PROMPT_APP, Duration::from_millis(200), "57");
    let r = report(sim(5.0).place_call(script, server.esl)).await;

    assert!(ran(&r).contains(&"speak flite|slt|Thanks.".to_string()));
    assert!(
        !ran(&r).iter().any(|a| a.contains("ignored")),
        "its response is ignored"
    );
    let hit = app
        .wait_for(PATIENCE, "the Gather action through the outbox", |hits| {
            hits.iter().find(|h| h.path == "/gathered").cloned()
        })
        .await;
    assert_eq!(hit.must("Digits"), "57");
    assert_eq!(hit.must("Event"), "Gather");
    assert!(!hit.must("DeliveryID").is_empty());
    hit.verify_signature(app.port, TOKEN).expect("signed");
    let (kind, _, status, _) = server.outbox_final(&r.uuid, "action").await;
    assert_eq!((kind.as_str(), status.as_str()), ("action", "delivered"));
    let cdr = server.cdr(&r.uuid).await;
    assert!(
        cdr.notes
            .iter()
            .any(|n| n == "Gather ended by numDigits: 2 digit(s), masked (log=false)"),
        "log=false masks the digits: {:?}",
        cdr.notes
    );
    assert!(!cdr.notes.iter().any(|n| n.contains("57")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gather_answers_a_ringing_call_and_the_caller_hanging_up_mid_prompt_ends_it() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/hup",
        &xml(&format!(
            "<Gather action=\"{}\"><Speak>{PROMPT}</Speak></Gather>",
            app.url("/never")
        )),
    );
    let script = ringing(&url)
        .speak_length(PROMPT, Duration::from_secs(10))
        .caller_hangs_up_during("speak", Duration::from_millis(500));
    let r = report(sim(5.0).place_call(script, server.esl)).await;
    assert!(r.answered(), "Gather answers the call");
    assert_eq!(
        commands_with(&r, "uuid_answer").len(),
        1,
        "{:?}",
        r.commands
    );
    assert_eq!(requested(&r)[..1], ["flush_dtmf"]);
    assert!(app.hits_on("/never").is_empty());
    let cb = app.hangup_callback(&r.uuid).await;
    assert_eq!(cb.must("HangupSource"), "Caller");
    assert_eq!(cb.must("HangupCause"), HangupCause::NORMAL_CLEARING.name());
    assert!(r.apps.iter().all(|a| a.status != AppStatus::Flushed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gather_bad_documents_are_errors_naming_line_and_column_at_run_time() {
    let (app, server) = setup().await;
    let url = app.xml(
        "/doc/bad",
        "<Response>\n  <Gather action=\"http://127.0.0.1:1/x\" numDigits=\"0\"/>\n</Response>",
    );
    let r = report(sim(5.0).place_call(ringing(&url), server.esl)).await;
    assert_refused(&r, 603, HangupCause::CALL_REJECTED);
    let cb = app.hangup_callback(&r.uuid).await;
    assert_eq!(cb.must("HangupSource"), "Error");
    let cdr = server.cdr(&r.uuid).await;
    assert!(
        cdr.notes.iter().any(|n| n.contains(
            "line 2, col 3: <Gather> attribute numDigits=\"0\": expected a whole number from 1 to 32"
        )),
        "{:?}",
        cdr.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gather_wait_prompt_is_silence_a_digit_interrupts_before_the_next_prompt_starts() {
    let (app, server) = setup().await;
    let got = app.xml("/got", &xml("<Hangup/>"));
    let url = app.xml(
        "/doc/wait",
        &xml(&format!(
            "<Gather action=\"{got}\" numDigits=\"1\"><Wait length=\"3\"/><Speak>{PROMPT}</Speak></Gather>"
        )),
    );
    let script = answered(&url).dtmf_during_app(FIRST_PROMPT_APP, Duration::from_millis(500), "6");
    let r = report(sim(5.0).place_call(script, server.esl)).await;

    assert_eq!(
        ran(&r)[..2],
        ["flush_dtmf", "playback silence_stream://3000"],
        "a Wait inside a Gather is a playback of silence, which reports the digit before it ends"
    );
    assert!(
        !requested(&r).iter().any(|a| a == "speak"),
        "the prompt after the Wait never starts: {:?}",
        requested(&r)
    );
    assert_eq!(commands_with(&r, "uuid_break").len(), 1);
    assert_eq!(app.hits_on("/got")[0].must("Digits"), "6");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gather_voxml_menu_posts_the_digits_and_runs_the_action_document() {
    let (app, server) = setup().await;
    let menu = app.voxml(
        "/menu.json",
        r#"{"voxml_version":"1.0","instructions":[{"verb":"Hangup","reason":"busy"}]}"#,
    );
    let url = app.voxml(
        "/doc/voxml",
        &format!(
            r#"{{"voxml_version":"1.0","instructions":[
                {{"verb":"Gather","action":"{menu}","num_digits":2,
                  "prompts":[{{"verb":"Say","text":"{PROMPT}"}}]}},
                {{"verb":"Say","text":"never"}}]}}"#
        ),
    );
    let script = answered(&url)
        .speak_length(PROMPT, Duration::from_secs(10))
        .dtmf_during_app(FIRST_PROMPT_APP, Duration::from_millis(300), "42");
    let r = report(sim(5.0).place_call(script, server.esl)).await;
    assert_bye(&r, HangupCause::USER_BUSY);
    assert_eq!(app.hits_on("/menu.json")[0].must("Digits"), "42");
}
