//! VoxML JSON: every verb and field of SPEC §3.2, valid and invalid, with the exact
//! error text for at least one case of every error kind.

use voxbridge::document::model::{
    Hangup, HangupReason, HttpMethod, Instruction, Play, PostCall, Redirect, Reject, Speak, Voice,
    Wait,
};
use voxbridge::document::{parse, Dialect, DocumentError, ErrorKind};

fn parse_voxml(text: &str) -> Result<Vec<Instruction>, DocumentError> {
    parse(text.as_bytes(), Dialect::VoxMl).map(|d| d.instructions)
}

/// A document with the given instructions (JSON text of the list items).
fn doc(items: &str) -> String {
    format!(r#"{{"voxml_version":"1.0","instructions":[{items}]}}"#)
}

fn speak(text: &str) -> Speak {
    Speak {
        text: text.into(),
        voice: Voice::Woman,
        language: "en-US".into(),
        loop_count: 1,
    }
}

fn hangup(reason: HangupReason) -> Hangup {
    Hangup {
        reason: Some(reason),
        schedule_secs: None,
        post_call: None,
    }
}

#[test]
fn valid_verbs_and_fields() {
    let cases: Vec<(&str, Instruction)> = vec![
        (
            r#"{"verb":"Say","text":"Hello"}"#,
            Instruction::Speak(speak("Hello")),
        ),
        (
            r#"{"verb":"Say","text":" Bonjour ","voice":"MAN","language":"fr-FR","loop":0}"#,
            Instruction::Speak(Speak {
                voice: Voice::Man,
                language: "fr-FR".into(),
                loop_count: 0,
                ..speak("Bonjour")
            }),
        ),
        (
            r#"{"verb":"Say","text":"Hi","voice":null,"loop":3}"#,
            Instruction::Speak(Speak {
                loop_count: 3,
                ..speak("Hi")
            }),
        ),
        (
            r#"{"verb":"Play","url":"https://cdn.example.com/a.wav"}"#,
            Instruction::Play(Play {
                url: "https://cdn.example.com/a.wav".into(),
                loop_count: 1,
            }),
        ),
        (
            r#"{"verb":"Play","url":"file:///srv/moh.wav","loop":0}"#,
            Instruction::Play(Play {
                url: "file:///srv/moh.wav".into(),
                loop_count: 0,
            }),
        ),
        (
            r#"{"verb":"Pause"}"#,
            Instruction::Wait(Wait { length_secs: 1 }),
        ),
        (
            r#"{"verb":"Pause","length":7}"#,
            Instruction::Wait(Wait { length_secs: 7 }),
        ),
        // Hangup: completed is the default and explicit.
        (
            r#"{"verb":"Hangup"}"#,
            Instruction::Hangup(hangup(HangupReason::Completed)),
        ),
        (
            r#"{"verb":"Hangup","reason":"completed"}"#,
            Instruction::Hangup(hangup(HangupReason::Completed)),
        ),
        (
            r#"{"verb":"Hangup","reason":"busy"}"#,
            Instruction::Hangup(hangup(HangupReason::Busy)),
        ),
        (
            r#"{"verb":"Hangup","reason":"rejected"}"#,
            Instruction::Hangup(hangup(HangupReason::Rejected)),
        ),
        (
            r#"{"verb":"Hangup","reason":"busy","post_call_url":"https://app.example/post"}"#,
            Instruction::Hangup(Hangup {
                post_call: Some(PostCall {
                    url: "https://app.example/post".into(),
                    method: HttpMethod::Post,
                }),
                ..hangup(HangupReason::Busy)
            }),
        ),
        // Reject: rejected is the default.
        (
            r#"{"verb":"Reject"}"#,
            Instruction::Reject(Reject {
                reason: HangupReason::Rejected,
            }),
        ),
        (
            r#"{"verb":"Reject","reason":"busy"}"#,
            Instruction::Reject(Reject {
                reason: HangupReason::Busy,
            }),
        ),
        (
            r#"{"verb":"Reject","reason":"rejected"}"#,
            Instruction::Reject(Reject {
                reason: HangupReason::Rejected,
            }),
        ),
        // Redirect: POST is the default.
        (
            r#"{"verb":"Redirect","url":"https://app.example/next"}"#,
            Instruction::Redirect(Redirect {
                url: "https://app.example/next".into(),
                method: HttpMethod::Post,
            }),
        ),
        (
            r#"{"verb":"Redirect","url":"https://app.example/next?x=1","method":"GET"}"#,
            Instruction::Redirect(Redirect {
                url: "https://app.example/next?x=1".into(),
                method: HttpMethod::Get,
            }),
        ),
        // Field order does not matter.
        (
            r#"{"text":"Hi","verb":"Say"}"#,
            Instruction::Speak(speak("Hi")),
        ),
    ];
    for (item, expected) in cases {
        let got = parse_voxml(&doc(item)).unwrap_or_else(|e| panic!("{item}: {e}"));
        assert_eq!(got, vec![expected], "{item}");
    }
}

#[test]
fn empty_documents() {
    for text in [
        r#"{"voxml_version":"1.0"}"#,
        r#"{"voxml_version":"1.0","instructions":[]}"#,
        r#"{"voxml_version":"1.0","instructions":null}"#,
        "\u{FEFF}\n  { \"instructions\" : [ ] , \"voxml_version\" : \"1.0\" }\n",
    ] {
        assert_eq!(
            parse_voxml(text).unwrap_or_else(|e| panic!("{text}: {e}")),
            vec![],
            "{text}"
        );
    }
}

/// (document, exact text of the first problem, its kind)
fn invalid_cases() -> Vec<(String, &'static str, ErrorKind)> {
    use ErrorKind::*;
    vec![
        // Unknown fields, on each verb and at the top.
        (
            doc(r#"{"verb":"Say","text":"x"},{"verb":"Pause"},{"verb":"Hangup","foo":1}"#),
            r#"instructions[2]: Hangup field "foo": unknown field, expected reason or post_call_url"#,
            UnknownField,
        ),
        (
            doc(r#"{"verb":"Hangup","schedule":60}"#),
            r#"instructions[0]: Hangup field "schedule": unknown field, expected reason or post_call_url"#,
            UnknownField,
        ),
        (
            doc(r#"{"verb":"Say","text":"x","Voice":"MAN"}"#),
            r#"instructions[0]: Say field "Voice": unknown field, did you mean voice? (fields are case-sensitive)"#,
            UnknownField,
        ),
        (
            doc(r#"{"verb":"Play","url":"http://x/a.wav","length":1}"#),
            r#"instructions[0]: Play field "length": unknown field, expected url or loop"#,
            UnknownField,
        ),
        (
            doc(r#"{"verb":"Pause","loop":1}"#),
            r#"instructions[0]: Pause field "loop": unknown field, expected length"#,
            UnknownField,
        ),
        (
            doc(r#"{"verb":"Reject","post_call_url":"https://a/b"}"#),
            r#"instructions[0]: Reject field "post_call_url": unknown field, expected reason"#,
            UnknownField,
        ),
        (
            doc(r#"{"verb":"Redirect","url":"https://a/b","body":"x"}"#),
            r#"instructions[0]: Redirect field "body": unknown field, expected url or method"#,
            UnknownField,
        ),
        (
            r#"{"voxml_version":"1.0","instructions":[],"extra":true}"#.into(),
            r#"field "extra": unknown field, expected voxml_version or instructions"#,
            UnknownField,
        ),
        // Unknown and not-yet verbs.
        (
            doc(r#"{"verb":"Speak","text":"x"}"#),
            r#"instructions[0]: verb "Speak": unknown verb, expected Say, Play, Pause, Hangup, Reject, Redirect, Dial, Gather or Record"#,
            UnknownVerb,
        ),
        (
            doc(r#"{"verb":"say","text":"x"}"#),
            r#"instructions[0]: verb "say": unknown verb, did you mean Say? (verbs are case-sensitive)"#,
            UnknownVerb,
        ),
        (
            doc(r#"{"verb":"Gather"}"#),
            r#"instructions[0]: Gather field "action": missing, expected the URL that gets the digits"#,
            Missing,
        ),
        (
            doc(r#"{"verb":"Record","transcription_type":"auto"}"#),
            r#"instructions[0]: Record field transcription_type="auto": not supported yet"#,
            NotSupported,
        ),
        (
            doc(r#"{"verb":"Conference","room":"r1"}"#),
            r#"instructions[0]: verb "Conference": not supported yet"#,
            NotSupported,
        ),
        (
            doc(r#"{"verb":"Conference"}"#),
            r#"instructions[0]: verb "Conference": not supported yet"#,
            NotSupported,
        ),
        (
            doc(r#"{"verb":"Stream"}"#),
            r#"instructions[0]: verb "Stream": not supported yet"#,
            NotSupported,
        ),
        // Invalid values, one per field.
        (
            doc(r#"{"verb":"Say","text":"x","voice":"woman"}"#),
            r#"instructions[0]: Say field voice="woman": expected WOMAN or MAN"#,
            InvalidValue,
        ),
        (
            doc(r#"{"verb":"Say","text":"x","language":"english"}"#),
            r#"instructions[0]: Say field language="english": expected a language tag such as en-US"#,
            InvalidValue,
        ),
        (
            doc(r#"{"verb":"Say","text":"x","loop":-1}"#),
            r#"instructions[0]: Say field loop=-1: expected a whole number, 0 (until the call ends) or more"#,
            InvalidValue,
        ),
        (
            doc(r#"{"verb":"Say","text":"x","loop":"2"}"#),
            r#"instructions[0]: Say field loop="2": expected a whole number, 0 (until the call ends) or more"#,
            InvalidValue,
        ),
        (
            doc(r#"{"verb":"Say","text":42}"#),
            r#"instructions[0]: Say field text=42: expected a string"#,
            InvalidValue,
        ),
        (
            doc(r#"{"verb":"Play","url":"ftp://x/a.wav"}"#),
            r#"instructions[0]: Play field url="ftp://x/a.wav": expected an http(s)://, file://, tone_stream:// or silence_stream:// URL without spaces"#,
            InvalidValue,
        ),
        (
            doc(r#"{"verb":"Play","url":"http://x/a.wav","loop":1.5}"#),
            r#"instructions[0]: Play field loop=1.5: expected a whole number, 0 (until the call ends) or more"#,
            InvalidValue,
        ),
        (
            doc(r#"{"verb":"Pause","length":0}"#),
            r#"instructions[0]: Pause field length=0: expected a whole number of seconds from 1 to 2147483 (the longest sleep the switch takes)"#,
            InvalidValue,
        ),
        (
            doc(r#"{"verb":"Hangup","reason":"later"}"#),
            r#"instructions[0]: Hangup field reason="later": expected completed, busy or rejected"#,
            InvalidValue,
        ),
        (
            doc(r#"{"verb":"Hangup","post_call_url":"not a url"}"#),
            r#"instructions[0]: Hangup field post_call_url="not a url": expected an http(s):// URL without spaces"#,
            InvalidValue,
        ),
        (
            doc(r#"{"verb":"Reject","reason":"completed"}"#),
            r#"instructions[0]: Reject field reason="completed": expected busy or rejected"#,
            InvalidValue,
        ),
        (
            doc(r#"{"verb":"Redirect","url":"relative/next"}"#),
            r#"instructions[0]: Redirect field url="relative/next": expected an http(s):// or file:// URL without spaces"#,
            InvalidValue,
        ),
        (
            doc(r#"{"verb":"Redirect","url":"https://a/b","method":"PUT"}"#),
            r#"instructions[0]: Redirect field method="PUT": expected POST or GET"#,
            InvalidValue,
        ),
        (
            doc(r#"{"verb":7}"#),
            r#"instructions[0]: field verb=7: expected Say, Play, Pause, Hangup, Reject, Redirect, Dial, Gather or Record"#,
            InvalidValue,
        ),
        (
            doc(r#""Say""#),
            r#"instructions[0]: instruction "Say": expected an object with a "verb""#,
            InvalidValue,
        ),
        (
            r#"{"voxml_version":"1.0","instructions":{"verb":"Say"}}"#.into(),
            r#"field instructions={"verb":"Say"}: expected a list of instructions"#,
            InvalidValue,
        ),
        // Missing values.
        (
            doc(r#"{"verb":"Say"}"#),
            r#"instructions[0]: Say field "text": missing, expected the text to speak"#,
            Missing,
        ),
        (
            doc(r#"{"verb":"Say","text":"   "}"#),
            r#"instructions[0]: Say field "text": missing, expected the text to speak"#,
            Missing,
        ),
        (
            doc(r#"{"verb":"Play"}"#),
            r#"instructions[0]: Play field "url": missing, expected the URL to play"#,
            Missing,
        ),
        (
            doc(r#"{"verb":"Redirect","method":"GET"}"#),
            r#"instructions[0]: Redirect field "url": missing, expected the URL to fetch"#,
            Missing,
        ),
        (
            doc(r#"{"text":"x"}"#),
            r#"instructions[0]: field "verb": missing, expected Say, Play, Pause, Hangup, Reject, Redirect, Dial, Gather or Record"#,
            Missing,
        ),
        // Version.
        (
            r#"{"voxml_version":"2.0","instructions":[]}"#.into(),
            r#"field voxml_version="2.0": expected "1.0""#,
            Version,
        ),
        (
            r#"{"voxml_version":1.0,"instructions":[]}"#.into(),
            r#"field voxml_version=1.0: expected "1.0""#,
            Version,
        ),
        (
            r#"{"instructions":[]}"#.into(),
            r#"field "voxml_version": missing, expected "1.0""#,
            Version,
        ),
        // Wrong top level.
        (
            r#"[{"verb":"Say","text":"x"}]"#.into(),
            r#"the document is a JSON list, expected an object {"voxml_version":"1.0","instructions":[…]}"#,
            WrongRoot,
        ),
        (
            "".into(),
            r#"the document is empty, expected {"voxml_version":"1.0","instructions":[…]}"#,
            WrongRoot,
        ),
        // Malformed JSON names the line and column.
        (
            "{\"voxml_version\":\"1.0\",\n  \"instructions\": [ {\"verb\": \"Say\",] }".into(),
            "line 2, col 36: malformed JSON: key must be a string",
            Syntax,
        ),
        (
            "{\"voxml_version\":\"1.0\"".into(),
            "line 1, col 22: malformed JSON: EOF while parsing an object",
            Syntax,
        ),
    ]
}

#[test]
fn invalid_documents_name_instruction_verb_field_and_expectation() {
    for (text, expected, kind) in invalid_cases() {
        let err = parse_voxml(&text).expect_err(&text);
        assert_eq!(err.first().to_string(), expected, "document:\n{text}");
        assert_eq!(err.kind(), kind, "document:\n{text}");
    }
}

#[test]
fn all_problems_are_collected() {
    let text = doc(
        r#"{"verb":"Say","loop":-1},{"verb":"Conference"},{"verb":"Hangup","reason":"later","x":1}"#,
    );
    let err = parse_voxml(&text).unwrap_err();
    let lines: Vec<String> = err.problems().iter().map(|p| p.to_string()).collect();
    assert_eq!(
        lines,
        [
            r#"instructions[0]: Say field "text": missing, expected the text to speak"#,
            r#"instructions[0]: Say field loop=-1: expected a whole number, 0 (until the call ends) or more"#,
            r#"instructions[1]: verb "Conference": not supported yet"#,
            r#"instructions[2]: Hangup field reason="later": expected completed, busy or rejected"#,
            r#"instructions[2]: Hangup field "x": unknown field, expected reason or post_call_url"#,
        ]
    );
}

#[test]
fn deep_json_nesting_is_an_error_not_a_crash() {
    let depth = 100_000 / 2;
    let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let err = parse(text.as_bytes(), Dialect::VoxMl).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Syntax);
    assert!(err.to_string().contains("recursion limit"), "{err}");
}
