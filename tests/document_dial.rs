//! `<Dial>` (SPEC §11.1) in both dialects: every attribute and child parsed, every bad
//! value, unknown attribute, missing destination and forbidden child an error with its
//! line/column (XML) or instruction path (VoxML), and the features not carried out yet
//! refused as "not supported yet" rather than silently dropped.

use voxbridge::document::model::{
    Dial, DialDestination, DialMusic, DialTarget, HttpMethod, Instruction, Redirect,
};
use voxbridge::document::{parse, Dialect};

fn xml(body: &str) -> Result<Vec<Instruction>, String> {
    let text = format!("<Response>\n  {body}\n</Response>\n");
    parse(text.as_bytes(), Dialect::Xml)
        .map(|d| d.instructions)
        .map_err(|e| e.to_string())
}

fn voxml(item: &str) -> Result<Vec<Instruction>, String> {
    let text = format!(r#"{{"voxml_version":"1.0","instructions":[{item}]}}"#);
    parse(text.as_bytes(), Dialect::VoxMl)
        .map(|d| d.instructions)
        .map_err(|e| e.to_string())
}

fn number(n: &str) -> DialDestination {
    DialDestination {
        target: DialTarget::Number(n.into()),
        send_digits: None,
        send_on_preanswer: false,
        sip_headers: Vec::new(),
    }
}

fn dial(destinations: Vec<DialDestination>) -> Dial {
    Dial {
        destinations,
        action: None,
        redirect: true,
        callback: None,
        caller_id: None,
        caller_name: None,
        timeout_secs: 120,
        time_limit_secs: 14_400,
        hangup_on_star: false,
        dial_music: DialMusic::Real,
        confirm_sound: None,
        confirm_key: None,
        digits_match: Vec::new(),
        digits_match_b_leg: Vec::new(),
        sip_headers: Vec::new(),
    }
}

fn only_dial(parsed: Result<Vec<Instruction>, String>) -> Dial {
    match parsed.as_deref() {
        Ok([Instruction::Dial(d)]) => (**d).clone(),
        other => panic!("expected one Dial, got {other:?}"),
    }
}

#[test]
fn dial_defaults_and_bare_text_is_one_number() {
    assert_eq!(
        only_dial(xml("<Dial>15557654321</Dial>")),
        dial(vec![number("15557654321")])
    );
    assert_eq!(
        only_dial(xml("<Dial><Number>+15557654321</Number></Dial>")),
        dial(vec![number("+15557654321")])
    );
}

#[test]
fn dial_every_attribute_and_child_is_read() {
    let d = only_dial(xml(
        r#"<Dial action="https://app.test/dial-done" method="GET" redirect="false" callerId="15551230000" callerName="Front Desk" timeout="30" timeLimit="600" hangupOnStar="true" dialMusic="real" sipHeaders="a=1,Bb=x2">
    <User sendDigits="ww12" sipHeaders="u=9">sip:alice@pbx.example.com:5080</User>
    <Number sendDigits="1234" sendOnPreanswer="true">15557654321</Number>
  </Dial>"#,
    ));
    let mut want = dial(vec![
        DialDestination {
            target: DialTarget::User("sip:alice@pbx.example.com:5080".into()),
            send_digits: Some("ww12".into()),
            send_on_preanswer: false,
            sip_headers: vec![("u".into(), "9".into())],
        },
        DialDestination {
            target: DialTarget::Number("15557654321".into()),
            send_digits: Some("1234".into()),
            send_on_preanswer: true,
            sip_headers: Vec::new(),
        },
    ]);
    want.action = Some(Redirect {
        url: "https://app.test/dial-done".into(),
        method: HttpMethod::Get,
    });
    want.redirect = false;
    want.caller_id = Some("15551230000".into());
    want.caller_name = Some("Front Desk".into());
    want.timeout_secs = 30;
    want.time_limit_secs = 600;
    want.hangup_on_star = true;
    want.sip_headers = vec![("a".into(), "1".into()), ("Bb".into(), "x2".into())];
    assert_eq!(d, want);
}

#[test]
fn dial_errors_name_line_column_attribute_and_expectation() {
    let cases = [
        (
            "<Dial/>",
            "line 2, col 3: <Dial>: no destination, expected at least one <Number> or <User>",
        ),
        (
            r#"<Dial timeout="0"><Number>1</Number></Dial>"#,
            "line 2, col 3: <Dial> attribute timeout=\"0\": expected a whole number of seconds from 1 to 86400",
        ),
        (
            r#"<Dial timelimit="5"><Number>1</Number></Dial>"#,
            "line 2, col 3: <Dial> attribute timelimit=\"5\": unknown attribute, did you mean timeLimit? (names are case-sensitive)",
        ),
        (
            "<Dial><Number>12a</Number></Dial>",
            "line 2, col 9: <Number> text \"12a\": expected a phone number: digits with an optional leading +, at most 32",
        ),
        (
            "<Dial><User>alice@h</User></Dial>",
            "line 2, col 9: <User> text \"alice@h\": expected a SIP URI sip:user@host or sip:user@host:port (letters, digits and . - _ + only)",
        ),
        (
            "<Dial><Speak>hi</Speak></Dial>",
            "line 2, col 9: <Speak> inside <Dial>: not allowed, expected Number or User",
        ),
        (
            "<Dial><number>1</number></Dial>",
            "line 2, col 9: <number> inside <Dial>: unknown element, did you mean <Number>? (names are case-sensitive)",
        ),
        (
            "<Dial>1<Number>2</Number></Dial>",
            "line 2, col 3: <Dial> text \"1\": not allowed beside <Number>/<User>, expected either one number as text or child elements",
        ),
        (
            r#"<Dial sipHeaders="a-b=1"><Number>1</Number></Dial>"#,
            "line 2, col 3: <Dial> attribute sipHeaders=\"a-b=1\": expected name=value pairs separated by commas, names and values of A-Z a-z 0-9 only",
        ),
        (
            r#"<Dial method="GET"><Number>1</Number></Dial>"#,
            "line 2, col 3: <Dial> attribute method: given without action, expected both or only action",
        ),
        (
            r#"<Dial callbackMethod="GET"><Number>1</Number></Dial>"#,
            "line 2, col 3: <Dial> attribute callbackMethod: given without callbackUrl, expected both or only callbackUrl",
        ),
        (
            r#"<Dial confirmSound="https://app.test/c" confirmKey="55"><Number>1</Number></Dial>"#,
            "line 2, col 3: <Dial> attribute confirmKey=\"55\": expected one key: 0-9, * or #",
        ),
        (
            r#"<Dial dialMusic="ftp://app.test/m"><Number>1</Number></Dial>"#,
            "line 2, col 3: <Dial> attribute dialMusic=\"ftp://app.test/m\": expected real or an http(s):// or file:// document URL without spaces",
        ),
        (
            r#"<Dial digitsMatch="12,3Y"><Number>1</Number></Dial>"#,
            "line 2, col 3: <Dial> attribute digitsMatch=\"12,3Y\": expected comma-separated digit patterns of 0-9, *, # and X (any digit)",
        ),
    ];
    for (body, want) in cases {
        let err = xml(body).expect_err(body);
        assert_eq!(err.lines().next().unwrap_or(""), want, "{body}");
    }
}

#[test]
fn dial_never_answers_in_the_plan() {
    let d = Instruction::Dial(Box::new(dial(vec![number("1")])));
    assert!(!d.needs_answer());
    assert_eq!(d.name(), "Dial");
}

#[test]
fn voxml_dial_takes_the_xml_attributes_in_snake_case() {
    let d = only_dial(voxml(
        r#"{"verb":"Dial","numbers":["15557654321",{"number":"+1555","send_digits":"12","send_on_preanswer":true}],"users":["sip:alice@pbx.example.com"],"action":"https://app.test/done","method":"GET","redirect":false,"timeout":30,"time_limit":600,"hangup_on_star":true,"caller_id":"1555","caller_name":"Desk","sip_headers":"a=1"}"#,
    ));
    let mut want = dial(vec![
        number("15557654321"),
        DialDestination {
            target: DialTarget::Number("+1555".into()),
            send_digits: Some("12".into()),
            send_on_preanswer: true,
            sip_headers: Vec::new(),
        },
        DialDestination {
            target: DialTarget::User("sip:alice@pbx.example.com".into()),
            send_digits: None,
            send_on_preanswer: false,
            sip_headers: Vec::new(),
        },
    ]);
    want.action = Some(Redirect {
        url: "https://app.test/done".into(),
        method: HttpMethod::Get,
    });
    want.redirect = false;
    want.timeout_secs = 30;
    want.time_limit_secs = 600;
    want.hangup_on_star = true;
    want.caller_id = Some("1555".into());
    want.caller_name = Some("Desk".into());
    want.sip_headers = vec![("a".into(), "1".into())];
    assert_eq!(d, want);
}

#[test]
fn voxml_dial_errors_name_the_instruction_and_field() {
    let cases = [
        (
            r#"{"verb":"Dial"}"#,
            r#"instructions[0]: Dial field "numbers": no destination, expected at least one entry in "numbers" or "users""#,
        ),
        (
            r#"{"verb":"Dial","numbers":["12a"]}"#,
            r#"instructions[0]: Dial field numbers[0]="12a": expected a phone number: digits with an optional leading +, at most 32"#,
        ),
        (
            r#"{"verb":"Dial","numbers":["1"],"timeout":"30"}"#,
            r#"instructions[0]: Dial field timeout="30": expected a whole number of seconds from 1 to 86400"#,
        ),
        (
            r#"{"verb":"Dial","numbers":["1"],"hangupOnStar":true}"#,
            r#"instructions[0]: Dial field "hangupOnStar": unknown field, expected numbers, users, action, method, redirect, callback_url, callback_method, caller_id, caller_name, timeout, time_limit, hangup_on_star, dial_music, confirm_sound, confirm_key, digits_match, digits_match_b_leg or sip_headers"#,
        ),
    ];
    for (item, want) in cases {
        let err = voxml(item).expect_err(item);
        assert_eq!(err.lines().next().unwrap_or(""), want, "{item}");
    }
}

/// `digitsMatch` / `digitsMatchBLeg` are carried out (SPEC §11.1): both dialects take
/// them, as the same patterns.
#[test]
fn dial_digits_match_patterns_parse_in_both_dialects() {
    let x = only_dial(xml(
        r#"<Dial digitsMatch="*1,99X" digitsMatchBLeg="1234#"><Number>7002</Number></Dial>"#,
    ));
    assert_eq!(x.digits_match, ["*1", "99X"]);
    assert_eq!(x.digits_match_b_leg, ["1234#"]);
    let v = only_dial(voxml(
        r#"{"verb":"Dial","numbers":["7002"],"digits_match":"*1,99X","digits_match_b_leg":"1234#"}"#,
    ));
    assert_eq!(v, x);
}
