//! Whole call flows: both dialects of the same flow give the same instructions, the
//! seeds' examples give the expected plans, and every shipped example is valid.

use std::path::Path;

use voxbridge::document::model::Instruction;
use voxbridge::document::plan::plan;
use voxbridge::document::{parse, Dialect};

fn xml(text: &str) -> Vec<Instruction> {
    parse(text.as_bytes(), Dialect::Xml)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .instructions
}

fn voxml(text: &str) -> Vec<Instruction> {
    parse(text.as_bytes(), Dialect::VoxMl)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .instructions
}

fn plan_of(text: &str, dialect: Dialect) -> Vec<String> {
    plan(&parse(text.as_bytes(), dialect).unwrap_or_else(|e| panic!("{text}: {e}")))
}

#[test]
fn both_dialects_of_a_flow_are_the_same_instructions() {
    let flows: &[(&str, &str, &str)] = &[
        (
            "greeting then busy",
            r#"<Response><Speak>Hello</Speak><Wait length="2"/><Hangup reason="busy"/></Response>"#,
            r#"{"voxml_version":"1.0","instructions":[{"verb":"Say","text":"Hello"},{"verb":"Pause","length":2},{"verb":"Hangup","reason":"busy"}]}"#,
        ),
        (
            "busy at once",
            r#"<Response><Hangup reason="busy"/></Response>"#,
            r#"{"voxml_version":"1.0","instructions":[{"verb":"Hangup","reason":"busy"}]}"#,
        ),
        (
            "rejected at once",
            r#"<Response><Hangup reason="rejected"/></Response>"#,
            r#"{"voxml_version":"1.0","instructions":[{"verb":"Hangup","reason":"rejected"}]}"#,
        ),
        (
            "every Speak attribute",
            r#"<Response><Speak voice="MAN" language="fr-FR" loop="0">Bonjour</Speak></Response>"#,
            r#"{"voxml_version":"1.0","instructions":[{"verb":"Say","text":"Bonjour","voice":"MAN","language":"fr-FR","loop":0}]}"#,
        ),
        (
            "music then redirect",
            r#"<Response><Play loop="3">https://cdn.example.com/moh.wav</Play><Redirect method="GET">https://app.example.com/next?step=2</Redirect></Response>"#,
            r#"{"voxml_version":"1.0","instructions":[{"verb":"Play","url":"https://cdn.example.com/moh.wav","loop":3},{"verb":"Redirect","url":"https://app.example.com/next?step=2","method":"GET"}]}"#,
        ),
        (
            "post-call workflow",
            r#"<Response><Speak>Bye</Speak><Hangup reason="rejected" postCallUrl="https://app.example.com/post"/></Response>"#,
            r#"{"voxml_version":"1.0","instructions":[{"verb":"Say","text":"Bye"},{"verb":"Hangup","reason":"rejected","post_call_url":"https://app.example.com/post"}]}"#,
        ),
        (
            "empty",
            "<Response></Response>",
            r#"{"voxml_version":"1.0","instructions":[]}"#,
        ),
    ];
    for (name, x, v) in flows {
        let from_xml = xml(x);
        assert!(!from_xml.is_empty() || *name == "empty", "{name}");
        assert_eq!(from_xml, voxml(v), "flow {name}");
    }
}

/// The dialects differ on purpose in one place: XML `<Hangup/>` has no reason (the
/// engine applies the first-element rule), VoxML `Hangup` defaults to `completed`.
#[test]
fn reasonless_hangup_differs_between_dialects_as_specified() {
    let x = xml("<Response><Hangup/></Response>");
    let v = voxml(r#"{"voxml_version":"1.0","instructions":[{"verb":"Hangup"}]}"#);
    assert_ne!(x, v);
    assert_eq!(
        plan(&parse(b"<Response><Hangup/></Response>", Dialect::Xml).unwrap()),
        ["1  Hangup → hangup CALL_REJECTED (603 if unanswered), no reason on the first element means rejected"]
    );
}

#[test]
fn seed_example_speak_then_hangup() {
    let text = "<Response>\n  <Speak>Thanks for calling</Speak>\n  <Hangup/>\n</Response>";
    assert_eq!(
        plan_of(text, Dialect::Xml),
        [
            r#"1  Speak voice=WOMAN language=en-US loop=1 "Thanks for calling" → speak once, after answering the call if not answered yet"#,
            "2  Hangup → hangup NORMAL_CLEARING (480 if unanswered)",
        ]
    );
}

#[test]
fn seed_example_busy_alone() {
    assert_eq!(
        plan_of(
            r#"<Response><Hangup reason="busy"/></Response>"#,
            Dialect::Xml
        ),
        ["1  Hangup reason=busy → hangup USER_BUSY (486 if unanswered)"]
    );
}

#[test]
fn seed_example_schedule_then_endless_speak() {
    let text = r#"<Response><Hangup schedule="60"/><Speak loop="0">Goodbye in a minute</Speak></Response>"#;
    assert_eq!(
        plan_of(text, Dialect::Xml),
        [
            "1  Hangup schedule=60 → sched_hangup +60 NORMAL_CLEARING, then continue with the next element",
            r#"2  Speak voice=WOMAN language=en-US loop=0 "Goodbye in a minute" → speak repeated until the call ends, after answering the call if not answered yet"#,
            r#"end  no more instructions → hangup NORMAL_CLEARING (480 if unanswered) "End Of XML Instructions""#,
        ]
    );
}

#[test]
fn seed_example_voxml_say_pause_hangup_with_each_reason() {
    for (reason, effect) in [
        ("completed", "hangup NORMAL_CLEARING (480 if unanswered)"),
        ("busy", "hangup USER_BUSY (486 if unanswered)"),
        ("rejected", "hangup CALL_REJECTED (603 if unanswered)"),
    ] {
        let text = format!(
            r#"{{"voxml_version":"1.0","instructions":[{{"verb":"Say","text":"Hi"}},{{"verb":"Pause","length":1}},{{"verb":"Hangup","reason":"{reason}"}}]}}"#
        );
        assert_eq!(
            plan_of(&text, Dialect::VoxMl),
            [
                r#"1  Speak voice=WOMAN language=en-US loop=1 "Hi" → speak once, after answering the call if not answered yet"#.to_string(),
                "2  Wait length=1 → sleep 1000 ms, in whatever state the call is (ringing, early media or answered)".to_string(),
                format!("3  Hangup reason={reason} → {effect}"),
            ],
            "reason {reason}"
        );
    }
}

#[test]
fn seed_example_empty_response() {
    assert_eq!(
        plan_of("<Response></Response>", Dialect::Xml),
        ["(empty document) → nothing is done: the call stays as it is until the caller or the API hangs up, or empty_document_timeout ends it with ALLOTTED_TIMEOUT"]
    );
}

#[test]
fn plan_marks_unreached_elements_and_early_media_children() {
    let text = r#"<Response>
        <PreAnswer><Play>tone_stream://%(1000,0,425)</Play></PreAnswer>
        <Redirect>https://app.example.com/next</Redirect>
        <Speak>never</Speak>
    </Response>"#;
    assert_eq!(
        plan_of(text, Dialect::Xml),
        [
            "1  PreAnswer (1 element) → pre_answer: early media (183), the call is not answered",
            "1.1  Play loop=1 tone_stream://%(1000,0,425) → playback once, as early media (not answered)",
            "2  Redirect POST https://app.example.com/next → fetch a new document (Event=Redirect) and run it instead of the rest",
            r#"3  Speak voice=WOMAN language=en-US loop=1 "never" → speak once, after answering the call if not answered yet  (never reached: 2 ends the call)"#,
        ]
    );
    let reject = r#"{"voxml_version":"1.0","instructions":[{"verb":"Reject","reason":"busy"}]}"#;
    assert_eq!(
        plan_of(reject, Dialect::VoxMl),
        ["1  Reject reason=busy → hangup USER_BUSY (486 if unanswered) without answering (acts as Hangup if already answered)"]
    );
    let post = r#"<Response><Wait/><Hangup reason="rejected" postCallUrl="https://a.example/p" postCallMethod="GET"/></Response>"#;
    assert_eq!(
        plan_of(post, Dialect::Xml)[1],
        "2  Hangup reason=rejected postCallUrl=https://a.example/p postCallMethod=GET → hangup CALL_REJECTED (603 if unanswered); if this Hangup ends the call: post-call GET https://a.example/p"
    );
}

#[test]
fn shipped_examples_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/documents");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/documents exists") {
        let path = entry.expect("readable dir").path();
        let bytes = std::fs::read(&path).expect("readable example");
        let dialect = Dialect::for_file(&path, &bytes).expect("known dialect");
        let doc = parse(&bytes, dialect).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!plan(&doc).is_empty());
        seen += 1;
    }
    assert!(seen >= 9, "expected the example documents, found {seen}");
    let minute = std::fs::read(dir.join("hangup-after-a-minute.xml")).unwrap();
    let doc = parse(&minute, Dialect::Xml).unwrap();
    assert!(matches!(&doc.instructions[0], Instruction::Hangup(h) if h.schedule_secs == Some(60)));
    assert!(matches!(&doc.instructions[1], Instruction::Speak(s) if s.loop_count == 0));
    let post_xml = parse(
        &std::fs::read(dir.join("post-call.xml")).unwrap(),
        Dialect::Xml,
    )
    .unwrap();
    let post_json = parse(
        &std::fs::read(dir.join("post-call.json")).unwrap(),
        Dialect::VoxMl,
    )
    .unwrap();
    // Same media and post-call target; only the reason differs (XML: none → NORMAL_CLEARING
    // as it is not first; VoxML: completed).
    assert_eq!(post_xml.instructions[0], post_json.instructions[0]);
    match (&post_xml.instructions[1], &post_json.instructions[1]) {
        (Instruction::Hangup(a), Instruction::Hangup(b)) => assert_eq!(a.post_call, b.post_call),
        other => panic!("expected two Hangups, got {other:?}"),
    }
}
