//! The two dialects are one product (SPEC §3): the same flow written in Answer XML and in
//! VoxML must do the same thing to the switch and be reported the same way. Each row is
//! one flow in both dialects; both calls go through the real `voxbridge serve` and the
//! simulator, and must show the caller the same outcome, run the same applications and
//! produce the same hangup callback.

use crate::e2e_support::*;
use std::sync::Arc;
use std::time::Duration;
use voxbridge::cause::HangupCause;
use voxbridge_sim::{CallScript, Outcome};

#[derive(Clone, Copy)]
enum Leg {
    Ringing,
    Answered,
    /// Ringing; the caller hangs up 1 s into the first `speak`.
    CallerLeavesMidSpeak,
}

struct Row {
    name: &'static str,
    /// Inner XML of `<Response>` (`{post}`/`{next}` are filled in).
    xml: &'static str,
    /// The `instructions` array of the VoxML document (same placeholders).
    voxml: &'static str,
    /// The document a Redirect in the row leads to, in each dialect.
    next: Option<(&'static str, &'static str)>,
    leg: Leg,
    outcome: Outcome,
    ran: &'static [&'static str],
    expected: Expected,
    /// Whether the row's post-call URL must be called.
    post_call: bool,
}

fn rows() -> Vec<Row> {
    use HangupCause as C;
    let refused = |sip, cause| Outcome::Refused { sip, cause };
    let bye = |cause: HangupCause| Outcome::Bye {
        cause,
        q850: cause.q850(),
    };
    vec![
        Row {
            name: "reject-first",
            xml: r#"<Hangup/>"#,
            voxml: r#"[{"verb":"Reject"}]"#,
            next: None,
            leg: Leg::Ringing,
            outcome: refused(603, C::CALL_REJECTED),
            ran: &["call-command hangup CALL_REJECTED"],
            expected: Expected::new(C::CALL_REJECTED, "Rejected", "Answer XML").reason("rejected"),
            post_call: false,
        },
        Row {
            name: "rejected-reason",
            xml: r#"<Hangup reason="rejected"/>"#,
            voxml: r#"[{"verb":"Hangup","reason":"rejected"}]"#,
            next: None,
            leg: Leg::Ringing,
            outcome: refused(603, C::CALL_REJECTED),
            ran: &["call-command hangup CALL_REJECTED"],
            expected: Expected::new(C::CALL_REJECTED, "Rejected", "Answer XML").reason("rejected"),
            post_call: false,
        },
        Row {
            name: "busy-before-answer",
            xml: r#"<Hangup reason="busy"/>"#,
            voxml: r#"[{"verb":"Reject","reason":"busy"}]"#,
            next: None,
            leg: Leg::Ringing,
            outcome: refused(486, C::USER_BUSY),
            ran: &["call-command hangup USER_BUSY"],
            expected: Expected::new(C::USER_BUSY, "Busy Line", "Answer XML").reason("busy"),
            post_call: false,
        },
        Row {
            name: "busy-after-speak",
            xml: r#"<Speak>Please hold</Speak><Hangup reason="busy"/>"#,
            voxml: r#"[{"verb":"Say","text":"Please hold"},{"verb":"Hangup","reason":"busy"}]"#,
            next: None,
            leg: Leg::Ringing,
            outcome: bye(C::USER_BUSY),
            ran: &[
                "speak flite|slt|Please hold",
                "call-command hangup USER_BUSY",
            ],
            expected: Expected::new(C::USER_BUSY, "Busy Line", "Answer XML")
                .reason("busy")
                .answered(),
            post_call: false,
        },
        Row {
            name: "reject-on-answered-call-acts-as-hangup",
            xml: r#"<Hangup reason="busy"/>"#,
            voxml: r#"[{"verb":"Reject","reason":"busy"}]"#,
            next: None,
            leg: Leg::Answered,
            outcome: bye(C::USER_BUSY),
            ran: &["call-command hangup USER_BUSY"],
            expected: Expected::new(C::USER_BUSY, "Busy Line", "Answer XML")
                .reason("busy")
                .answered(),
            post_call: false,
        },
        Row {
            name: "completed-after-speak-with-post-call",
            xml: r#"<Speak voice="MAN">Goodbye</Speak><Hangup postCallUrl="{post}"/><Speak>never</Speak>"#,
            voxml: r#"[{"verb":"Say","text":"Goodbye","voice":"MAN"},{"verb":"Hangup","post_call_url":"{post}"},{"verb":"Say","text":"never"}]"#,
            next: None,
            leg: Leg::Ringing,
            outcome: bye(C::NORMAL_CLEARING),
            ran: &[
                "speak flite|kal|Goodbye",
                "call-command hangup NORMAL_CLEARING",
            ],
            expected: Expected::new(C::NORMAL_CLEARING, "Normal Hangup", "Answer XML").answered(),
            post_call: true,
        },
        Row {
            name: "completed-after-wait-never-answers",
            xml: r#"<Wait length="2"/><Hangup/>"#,
            voxml: r#"[{"verb":"Pause","length":2},{"verb":"Hangup","reason":"completed"}]"#,
            next: None,
            leg: Leg::Ringing,
            outcome: refused(480, C::NORMAL_CLEARING),
            ran: &["sleep 2000", "call-command hangup NORMAL_CLEARING"],
            expected: Expected::new(C::NORMAL_CLEARING, "Normal Hangup", "Answer XML"),
            post_call: false,
        },
        Row {
            name: "play-loop-then-end-of-document",
            xml: r#"<Play loop="2">tone_stream://%(200,0,440)</Play>"#,
            voxml: r#"[{"verb":"Play","url":"tone_stream://%(200,0,440)","loop":2}]"#,
            next: None,
            leg: Leg::Ringing,
            outcome: bye(C::NORMAL_CLEARING),
            ran: &[
                "playback tone_stream://%(200,0,440)",
                "playback tone_stream://%(200,0,440)",
                "call-command hangup NORMAL_CLEARING",
            ],
            expected: Expected::new(C::NORMAL_CLEARING, "End Of XML Instructions", "Answer XML")
                .answered(),
            post_call: false,
        },
        Row {
            name: "redirect-then-first-element-reject",
            xml: r#"<Wait length="1"/><Redirect>{next}</Redirect><Speak>never</Speak>"#,
            voxml: r#"[{"verb":"Pause","length":1},{"verb":"Redirect","url":"{next}"},{"verb":"Say","text":"never"}]"#,
            next: Some((r#"<Hangup/>"#, r#"[{"verb":"Reject"}]"#)),
            leg: Leg::Ringing,
            outcome: refused(603, C::CALL_REJECTED),
            ran: &["sleep 1000", "call-command hangup CALL_REJECTED"],
            expected: Expected::new(C::CALL_REJECTED, "Rejected", "Answer XML").reason("rejected"),
            post_call: false,
        },
        Row {
            name: "empty-document-times-out",
            xml: "",
            voxml: "[]",
            next: None,
            leg: Leg::Answered,
            outcome: bye(C::ALLOTTED_TIMEOUT),
            ran: &[],
            expected: Expected::new(C::ALLOTTED_TIMEOUT, "Timeout", "Answer XML").answered(),
            post_call: false,
        },
        Row {
            name: "caller-hangs-up-mid-speak",
            xml: r#"<Speak>a long message for the caller</Speak><Hangup reason="busy"/>"#,
            voxml: r#"[{"verb":"Say","text":"a long message for the caller"},{"verb":"Hangup","reason":"busy"}]"#,
            next: None,
            leg: Leg::CallerLeavesMidSpeak,
            outcome: Outcome::CallerHungUp {
                cause: C::NORMAL_CLEARING,
                answered: true,
            },
            // The interrupted speak completes (with an error response) as the call goes.
            ran: &["speak flite|slt|a long message for the caller"],
            expected: Expected::new(C::NORMAL_CLEARING, "Caller Hangup", "Caller").answered(),
            post_call: false,
        },
        Row {
            name: "invalid-reason-is-a-document-error",
            xml: r#"<Hangup reason="later"/>"#,
            voxml: r#"[{"verb":"Hangup","reason":"later"}]"#,
            next: None,
            leg: Leg::Ringing,
            outcome: refused(603, C::CALL_REJECTED),
            ran: &["call-command hangup CALL_REJECTED"],
            expected: Expected::new(C::CALL_REJECTED, "Error: invalid document*", "Error"),
            post_call: false,
        },
    ]
}

fn script(leg: Leg, url: &str) -> CallScript {
    match leg {
        Leg::Ringing => ringing(url),
        Leg::Answered => answered(url),
        Leg::CallerLeavesMidSpeak => ringing(url)
            .speak_length("a long message for the caller", Duration::from_secs(20))
            .caller_hangs_up_during("speak", Duration::from_secs(1)),
    }
}

/// Runs one dialect of one row and checks it against the row; returns what ran.
async fn run(
    app: Arc<App>,
    (esl, db): (std::net::SocketAddr, std::path::PathBuf),
    row: Arc<Row>,
    voxml: bool,
) -> Vec<String> {
    let dialect = if voxml { "voxml" } else { "xml" };
    let tag = format!("{}-{dialect}", row.name);
    let post = app.url(&format!("/post/{tag}"));
    let next_url = app.url(&format!("/doc/{tag}-next"));
    let fill = |s: &str| s.replace("{post}", &post).replace("{next}", &next_url);
    let doc = |instructions: &str| {
        if voxml {
            format!(
                r#"{{"voxml_version":"1.0","instructions":{}}}"#,
                fill(instructions)
            )
        } else {
            format!("<Response>{}</Response>", fill(instructions))
        }
    };
    let serve = |path: &str, body: String| {
        if voxml {
            app.voxml(path, &body)
        } else {
            app.xml(path, &body)
        }
    };
    if let Some((x, v)) = row.next {
        serve(&format!("/doc/{tag}-next"), doc(if voxml { v } else { x }));
    }
    let url = serve(
        &format!("/doc/{tag}"),
        doc(if voxml { row.voxml } else { row.xml }),
    );
    let sim = sim(20.0);
    let r = report(sim.place_call(script(row.leg, &url), esl)).await;

    assert_eq!(r.outcome, row.outcome, "{tag}: caller's view {r:#?}");
    let ran = ran(&r);
    assert_eq!(ran, row.ran, "{tag}: applications");
    // A ringing call that ended answered was answered by voxbridge, once, with
    // `api uuid_answer` (no `answer` application: issue 16).
    let answered_here = !matches!(row.leg, Leg::Answered) && r.answered();
    assert_eq!(
        commands_with(&r, "uuid_answer").len(),
        usize::from(answered_here),
        "{tag}: {:?}",
        r.commands
    );
    hangup_checked(&app, &r, &row.expected).await;
    let fetch = &app.hits_on(&format!("/doc/{tag}"))[0];
    assert_eq!(fetch.must("Event"), "StartApp", "{tag}");
    if row.post_call {
        let hit = app
            .wait_for(PATIENCE, &format!("{tag}: post-call"), |hits| {
                hits.iter()
                    .find(|h| h.path == format!("/post/{tag}"))
                    .cloned()
            })
            .await;
        assert_eq!(hit.must("Event"), "PostCall", "{tag}");
        assert_eq!(hit.must("CallUUID"), r.uuid, "{tag}");
    } else {
        // No post-call row was ever queued for the call (the outbox is the only way a
        // request leaves), so none can arrive later.
        let rows = outbox_rows(&db, &r.uuid);
        assert!(
            rows.iter().all(|row| row.0 != "post_call"),
            "{tag}: {rows:?}"
        );
        assert!(app.hits_on(&format!("/post/{tag}")).is_empty(), "{tag}");
    }
    ran
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_flow_in_xml_and_voxml_drives_the_switch_the_same_way() {
    let app = Arc::new(App::start().await);
    let server = Server::start(
        &app,
        ServerOptions {
            empty_document_timeout: 1,
            ..ServerOptions::default()
        },
    )
    .await;
    let mut tasks = tokio::task::JoinSet::new();
    for row in rows() {
        let row = Arc::new(row);
        let (app, server_at, r) = (app.clone(), (server.esl, server.db.clone()), row.clone());
        tasks.spawn(async move {
            let xml = run(app.clone(), server_at.clone(), r.clone(), false).await;
            let voxml = run(app, server_at, r.clone(), true).await;
            assert_eq!(xml, voxml, "{}: both dialects ran the same apps", r.name);
            r.name
        });
    }
    let mut done = Vec::new();
    while let Some(res) = tasks.join_next().await {
        match res {
            Ok(name) => done.push(name),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(done.len(), rows().len());
}
