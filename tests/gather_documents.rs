//! SPEC §12.1/§12.2 in the documents: `<Gather>` and `<Record>` in Answer XML, `Gather`
//! and `Record` in VoxML (snake_case fields, prompts as a `prompts` list), and the bad
//! documents of issue 13's acceptance, in the parser and in `voxbridge check`.

use assert_cmd::Command;
use voxbridge::document::model::{
    AudioFormat, Gather, HttpMethod, Instruction, Record, Redirect, Speak, Voice, Wait,
};
use voxbridge::document::{parse, Dialect, DocumentError, ErrorKind};

fn doc(body: &str) -> String {
    format!("<Response>\n  {body}\n</Response>\n")
}

fn parse_xml(text: &str) -> Result<Vec<Instruction>, DocumentError> {
    parse(text.as_bytes(), Dialect::Xml).map(|d| d.instructions)
}

fn parse_voxml(text: &str) -> Result<Vec<Instruction>, DocumentError> {
    parse(text.as_bytes(), Dialect::VoxMl).map(|d| d.instructions)
}

fn speak(text: &str) -> Instruction {
    Instruction::Speak(Speak {
        text: text.into(),
        voice: Voice::Woman,
        language: "en-US".into(),
        loop_count: 1,
    })
}

fn defaults(action: &str, prompts: Vec<Instruction>) -> Gather {
    Gather {
        action: action.into(),
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

#[test]
fn gather_defaults_follow_spec_12_1() {
    let got = parse_xml(&doc(
        "<Gather action=\"https://app.test/menu\"><Speak>Press 1</Speak><Wait/></Gather>",
    ))
    .unwrap();
    assert_eq!(
        got,
        [Instruction::Gather(defaults(
            "https://app.test/menu",
            vec![speak("Press 1"), Instruction::Wait(Wait { length_secs: 1 })]
        ))]
    );
}

#[test]
fn gather_every_attribute_is_read() {
    let got = parse_xml(&doc(
        "<Gather action=\"https://app.test/m\" method=\"GET\" inputType=\"dtmf\" executionTimeout=\"60\" \
         digitEndTimeout=\"auto\" finishOnKey=\"*\" numDigits=\"4\" redirect=\"false\" log=\"false\" \
         speechEndTimeout=\"2\" speechModel=\"phone_call\" hints=\"sales,support\" language=\"en-GB\" \
         profanityFilter=\"true\" interimSpeechResultsCallback=\"https://app.test/i\" \
         interimSpeechResultsCallbackMethod=\"GET\"/>",
    ))
    .unwrap();
    let mut want = defaults("https://app.test/m", vec![]);
    want.method = HttpMethod::Get;
    want.execution_timeout_secs = 60;
    want.finish_on_key = Some('*');
    want.num_digits = 4;
    want.redirect = false;
    want.log = false;
    assert_eq!(got, [Instruction::Gather(want)]);
    let none = parse_xml(&doc(
        "<Gather action=\"https://a.test/\" finishOnKey=\"\"/>",
    ))
    .unwrap();
    let Instruction::Gather(g) = &none[0] else {
        panic!("{none:?}")
    };
    assert_eq!(g.finish_on_key, None);
}

/// The acceptance's bad documents, each naming line and column.
#[test]
fn gather_bad_documents_name_line_and_column() {
    use ErrorKind::*;
    let cases = [
        (
            doc("<Gather action=\"https://a.test/\" numDigits=\"0\"/>"),
            r#"line 2, col 3: <Gather> attribute numDigits="0": expected a whole number from 1 to 32"#,
            InvalidValue,
        ),
        (
            doc("<Gather action=\"https://a.test/\" finishOnKey=\"AB\"/>"),
            r#"line 2, col 3: <Gather> attribute finishOnKey="AB": expected one key of 0-9, * or #, or none (or empty) to disable it"#,
            InvalidValue,
        ),
        (
            doc("<Gather action=\"https://a.test/\" inputType=\"speech\"/>"),
            r#"line 2, col 3: <Gather> attribute inputType="speech": not supported yet (no speech recognizer), expected dtmf"#,
            NotSupported,
        ),
        (
            doc("<Gather action=\"https://a.test/\" inputType=\"dtmf speech\"/>"),
            r#"line 2, col 3: <Gather> attribute inputType="dtmf speech": not supported yet (no speech recognizer), expected dtmf"#,
            NotSupported,
        ),
        (
            doc("<Gather action=\"https://a.test/\">\n    <Record/>\n  </Gather>"),
            "line 3, col 5: <Record> inside <Gather>: not allowed, expected Speak, Play or Wait",
            ForbiddenNesting,
        ),
        (
            doc("<Gather action=\"https://a.test/\"><Gather action=\"https://a.test/\"/></Gather>"),
            "line 2, col 36: <Gather> inside <Gather>: not allowed, expected Speak, Play or Wait",
            ForbiddenNesting,
        ),
        (
            doc("<Gather action=\"https://a.test/\" executionTimeout=\"4\"/>"),
            r#"line 2, col 3: <Gather> attribute executionTimeout="4": expected a whole number of seconds from 5 to 60"#,
            InvalidValue,
        ),
        (
            doc("<Gather action=\"https://a.test/\" digitEndTimeout=\"11\"/>"),
            r#"line 2, col 3: <Gather> attribute digitEndTimeout="11": expected a whole number of seconds from 2 to 10, or auto (5)"#,
            InvalidValue,
        ),
        (
            doc("<Gather action=\"file:///srv/next.xml\" redirect=\"false\"/>"),
            r#"line 2, col 3: <Gather> attribute action="file:///srv/next.xml": with redirect="false" the action is requested through the outbox: expected an http(s):// URL"#,
            InvalidValue,
        ),
        (
            doc("<Gather action=\"https://a.test/\">press</Gather>"),
            r#"line 2, col 3: <Gather> text "press": not allowed, <Gather> takes no text"#,
            TextNotAllowed,
        ),
        (
            doc("<Record maxLength=\"5\" transcriptionType=\"auto\"/>"),
            r#"line 2, col 3: <Record> attribute transcriptionType="auto": not supported yet"#,
            NotSupported,
        ),
        (
            doc("<Record fileFormat=\"ogg\"/>"),
            r#"line 2, col 3: <Record> attribute fileFormat="ogg": expected wav or mp3"#,
            InvalidValue,
        ),
    ];
    for (text, want, kind) in cases {
        let err = parse_xml(&text).unwrap_err();
        assert_eq!(err.problems()[0].to_string(), want, "document:\n{text}");
        assert_eq!(err.problems()[0].kind, kind, "document:\n{text}");
    }
}

#[test]
fn record_reads_every_attribute_and_voxml_the_same_in_snake_case() {
    let want = Record {
        action: Some("https://a.test/r".into()),
        method: HttpMethod::Get,
        redirect: true,
        file_format: Some(AudioFormat::Mp3),
        timeout_secs: 3,
        max_length_secs: 5,
        play_beep: false,
        finish_on_key: "#*".into(),
        record_session: false,
        start_on_dial_answer: true,
        callback: Some(Redirect {
            url: "https://a.test/cb".into(),
            method: HttpMethod::Get,
        }),
    };
    let got = parse_xml(&doc(
        "<Record action=\"https://a.test/r\" method=\"GET\" maxLength=\"5\" finishOnKey=\"#*\" \
         playBeep=\"false\" recordSession=\"false\" startOnDialAnswer=\"true\" fileFormat=\"mp3\" \
         timeout=\"3\" callbackUrl=\"https://a.test/cb\" callbackMethod=\"GET\" redirect=\"true\"/>",
    ))
    .unwrap();
    assert_eq!(got, [Instruction::Record(want.clone())]);
    let got = parse_voxml(
        r##"{"voxml_version":"1.0","instructions":[{"verb":"Record","action":"https://a.test/r",
            "method":"GET","max_length":5,"finish_on_key":"#*","play_beep":false,
            "record_session":false,"start_on_dial_answer":true,"file_format":"mp3","timeout":3,
            "callback_url":"https://a.test/cb","callback_method":"GET","redirect":true}]}"##,
    )
    .unwrap();
    assert_eq!(got, [Instruction::Record(want)]);
    // The defaults of SPEC §12.2.
    let got = parse_xml(&doc("<Record/>")).unwrap();
    assert_eq!(
        got,
        [Instruction::Record(Record {
            action: None,
            method: HttpMethod::Post,
            redirect: false,
            file_format: None,
            timeout_secs: 60,
            max_length_secs: 60,
            play_beep: true,
            finish_on_key: "1234567890*#".into(),
            record_session: false,
            start_on_dial_answer: false,
            callback: None,
        })]
    );
}

#[test]
fn record_bad_combinations_name_line_and_column() {
    let cases = [
        (
            doc("<Speak>hi</Speak>\n  <Record action=\"file:///srv/next.xml\"/>"),
            r#"line 3, col 3: <Record> attribute action="file:///srv/next.xml": with redirect="false" the action is requested through the outbox: expected an http(s):// URL"#,
        ),
        (
            doc("<Record recordSession=\"true\" startOnDialAnswer=\"true\"/>"),
            r#"line 2, col 3: <Record> attribute startOnDialAnswer="true": recordSession="true" already records the whole call from now: choose one"#,
        ),
        (
            doc("<Record maxLength=\"0\"/>"),
            r#"line 2, col 3: <Record> attribute maxLength="0": expected a whole number of seconds from 1 to 14400"#,
        ),
        (
            doc("<Record finishOnKey=\"##\"/>"),
            r###"line 2, col 3: <Record> attribute finishOnKey="##": expected keys among 0-9, * and # (each at most once), or none (or empty) to disable"###,
        ),
    ];
    for (text, want) in cases {
        let err = parse_xml(&text).unwrap_err();
        assert_eq!(err.problems()[0].to_string(), want, "document:\n{text}");
    }
}

#[test]
fn voxml_gather_uses_snake_case_and_a_prompts_list() {
    let got = parse_voxml(
        r#"{"voxml_version":"1.0","instructions":[{"verb":"Gather","action":"https://app.test/m",
            "num_digits":1,"finish_on_key":"*","execution_timeout":10,"digit_end_timeout":"auto",
            "redirect":false,"log":false,"prompts":[{"verb":"Say","text":"Press 1"}]}]}"#,
    )
    .unwrap();
    let mut want = defaults("https://app.test/m", vec![speak("Press 1")]);
    want.num_digits = 1;
    want.finish_on_key = Some('*');
    want.execution_timeout_secs = 10;
    want.redirect = false;
    want.log = false;
    assert_eq!(got, [Instruction::Gather(want)]);
}

#[test]
fn voxml_gather_bad_fields_name_the_path() {
    let cases = [
        (
            r#"{"verb":"Gather","action":"https://a.test/","num_digits":0}"#,
            "instructions[0]: Gather field num_digits=0: expected a whole number from 1 to 32",
        ),
        (
            r#"{"verb":"Gather","action":"https://a.test/","input_type":"speech"}"#,
            r#"instructions[0]: Gather field input_type="speech": not supported yet (no speech recognizer), expected dtmf"#,
        ),
        (
            r#"{"verb":"Gather","action":"https://a.test/","prompts":[{"verb":"Record"}]}"#,
            r#"instructions[0].prompts[0]: verb "Record": not allowed inside Gather, expected Say, Play or Pause"#,
        ),
        (
            r#"{"verb":"Gather","action":"https://a.test/","finish_on_key":"AB"}"#,
            r#"instructions[0]: Gather field finish_on_key="AB": expected one key of 0-9, * or #, or none (or empty) to disable it"#,
        ),
    ];
    for (ins, want) in cases {
        let text = format!(r#"{{"voxml_version":"1.0","instructions":[{ins}]}}"#);
        let err = parse_voxml(&text).unwrap_err();
        assert_eq!(err.problems()[0].to_string(), want, "document:\n{text}");
    }
}

/// `voxbridge check` (the real binary) reports the acceptance's bad documents with line
/// and column, and prints a Gather's plan with its prompts.
#[test]
fn gather_check_cli_reports_bad_documents_and_plans_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.xml");
    std::fs::write(
        &bad,
        "<Response>\n  <Gather action=\"https://a.test/\" numDigits=\"0\" finishOnKey=\"AB\" inputType=\"speech\">\n    <Record/>\n  </Gather>\n</Response>\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_voxbridge"))
        .args(["check", bad.to_str().unwrap()])
        .env("RUST_LOG", "off")
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for line in [
        r#"line 2, col 3: <Gather> attribute numDigits="0": expected a whole number from 1 to 32"#,
        r#"line 2, col 3: <Gather> attribute finishOnKey="AB": expected one key"#,
        r#"line 2, col 3: <Gather> attribute inputType="speech": not supported yet"#,
        "line 3, col 5: <Record> inside <Gather>: not allowed, expected Speak, Play or Wait",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }

    let good = dir.path().join("menu.xml");
    std::fs::write(
        &good,
        "<Response>\n  <Gather action=\"https://a.test/menu\" numDigits=\"1\">\n    <Speak>Press 1</Speak>\n  </Gather>\n  <Speak>Bye</Speak>\n</Response>\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_voxbridge"))
        .args(["check", good.to_str().unwrap()])
        .env("RUST_LOG", "off")
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("1  Gather numDigits=1 finishOnKey=# executionTimeout=15 digitEndTimeout=5 redirect=true log=true (1 prompt)"),
        "{stdout}"
    );
    assert!(stdout.contains("1.1  Speak voice=WOMAN"), "{stdout}");
    assert!(stdout.contains("2  Speak voice=WOMAN"), "{stdout}");
}
