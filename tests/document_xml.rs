//! Answer XML: every element and attribute of SPEC §3.1, valid and invalid, with the
//! exact error text for at least one case of every error kind.

use voxbridge::document::model::{
    Dtmf, Hangup, HangupReason, HttpMethod, Instruction, Play, PostCall, Redirect, Speak, Voice,
    Wait,
};
use voxbridge::document::{parse, Dialect, DocumentError, ErrorKind, MAX_DOCUMENT_BYTES};

/// The body on line 2, indented by two spaces, so its element starts at line 2, col 3.
fn doc(body: &str) -> String {
    format!("<Response>\n  {body}\n</Response>\n")
}

fn parse_xml(text: &str) -> Result<Vec<Instruction>, DocumentError> {
    parse(text.as_bytes(), Dialect::Xml).map(|d| d.instructions)
}

fn speak(text: &str) -> Speak {
    Speak {
        text: text.into(),
        voice: Voice::Woman,
        language: "en-US".into(),
        loop_count: 1,
    }
}

fn hangup() -> Hangup {
    Hangup {
        reason: None,
        schedule_secs: None,
        post_call: None,
    }
}

#[test]
fn valid_elements_and_attributes() {
    let cases: Vec<(&str, Instruction)> = vec![
        // Speak: text, voice, language, loop and their defaults.
        ("<Speak>Hello</Speak>", Instruction::Speak(speak("Hello"))),
        (
            r#"<Speak voice="MAN" language="fr-FR" loop="0">Bonjour</Speak>"#,
            Instruction::Speak(Speak {
                voice: Voice::Man,
                language: "fr-FR".into(),
                loop_count: 0,
                ..speak("Bonjour")
            }),
        ),
        (
            r#"<Speak voice="WOMAN" loop="3">Hi</Speak>"#,
            Instruction::Speak(Speak {
                loop_count: 3,
                ..speak("Hi")
            }),
        ),
        // Surrounding whitespace is not spoken; inner line breaks are kept.
        (
            "<Speak>\n    two\n    lines\n  </Speak>",
            Instruction::Speak(speak("two\n    lines")),
        ),
        // Entities, character references, CDATA and comments, as any XML user expects.
        (
            "<Speak>Tom &amp; Jerry &lt;3 &quot;x&quot; &apos;y&apos; &gt; &#233;&#x41;</Speak>",
            Instruction::Speak(speak("Tom & Jerry <3 \"x\" 'y' > éA")),
        ),
        (
            "<Speak><![CDATA[a <b> & c]]></Speak>",
            Instruction::Speak(speak("a <b> & c")),
        ),
        (
            "<Speak>Hel<!-- not spoken -->lo</Speak>",
            Instruction::Speak(speak("Hello")),
        ),
        (
            "<Speak language='en-GB'>Single quotes</Speak>",
            Instruction::Speak(Speak {
                language: "en-GB".into(),
                ..speak("Single quotes")
            }),
        ),
        // Play: URL text and loop.
        (
            "<Play>https://cdn.example.com/a.wav</Play>",
            Instruction::Play(Play {
                url: "https://cdn.example.com/a.wav".into(),
                loop_count: 1,
            }),
        ),
        (
            r#"<Play loop="0"> file:///srv/moh.wav </Play>"#,
            Instruction::Play(Play {
                url: "file:///srv/moh.wav".into(),
                loop_count: 0,
            }),
        ),
        (
            "<Play>tone_stream://%(100,100,350,440)</Play>",
            Instruction::Play(Play {
                url: "tone_stream://%(100,100,350,440)".into(),
                loop_count: 1,
            }),
        ),
        (
            r#"<Play loop="2">silence_stream://1000</Play>"#,
            Instruction::Play(Play {
                url: "silence_stream://1000".into(),
                loop_count: 2,
            }),
        ),
        // Wait: length and its default.
        ("<Wait/>", Instruction::Wait(Wait { length_secs: 1 })),
        (
            r#"<Wait length="10"/>"#,
            Instruction::Wait(Wait { length_secs: 10 }),
        ),
        (
            r#"<Wait length="5">  </Wait>"#,
            Instruction::Wait(Wait { length_secs: 5 }),
        ),
        // PreAnswer with each allowed child, and empty.
        (
            r#"<PreAnswer><Speak>a</Speak><Play>http://x/a.wav</Play><Wait length="2"/></PreAnswer>"#,
            Instruction::PreAnswer(vec![
                Instruction::Speak(speak("a")),
                Instruction::Play(Play {
                    url: "http://x/a.wav".into(),
                    loop_count: 1,
                }),
                Instruction::Wait(Wait { length_secs: 2 }),
            ]),
        ),
        ("<PreAnswer/>", Instruction::PreAnswer(vec![])),
        // Hangup: every attribute.
        ("<Hangup/>", Instruction::Hangup(hangup())),
        ("<Hangup></Hangup>", Instruction::Hangup(hangup())),
        (
            r#"<Hangup reason="rejected"/>"#,
            Instruction::Hangup(Hangup {
                reason: Some(HangupReason::Rejected),
                ..hangup()
            }),
        ),
        (
            r#"<Hangup reason="busy"/>"#,
            Instruction::Hangup(Hangup {
                reason: Some(HangupReason::Busy),
                ..hangup()
            }),
        ),
        (
            r#"<Hangup schedule="60"/>"#,
            Instruction::Hangup(Hangup {
                schedule_secs: Some(60),
                ..hangup()
            }),
        ),
        (
            r#"<Hangup postCallUrl="https://app.example/post"/>"#,
            Instruction::Hangup(Hangup {
                post_call: Some(PostCall {
                    url: "https://app.example/post".into(),
                    method: HttpMethod::Post,
                }),
                ..hangup()
            }),
        ),
        (
            r#"<Hangup reason="busy" schedule="5" postCallUrl="https://app.example/post?a=1&amp;b=2" postCallMethod="GET"/>"#,
            Instruction::Hangup(Hangup {
                reason: Some(HangupReason::Busy),
                schedule_secs: Some(5),
                post_call: Some(PostCall {
                    url: "https://app.example/post?a=1&b=2".into(),
                    method: HttpMethod::Get,
                }),
            }),
        ),
        // Hangup may hold comments (they are not text).
        (
            "<Hangup><!-- why --></Hangup>",
            Instruction::Hangup(hangup()),
        ),
        // Redirect: URL text and method.
        (
            "<Redirect>https://app.example/next</Redirect>",
            Instruction::Redirect(Redirect {
                url: "https://app.example/next".into(),
                method: HttpMethod::Post,
            }),
        ),
        (
            r#"<Redirect method="GET">https://app.example/next?x=1&amp;y=2</Redirect>"#,
            Instruction::Redirect(Redirect {
                url: "https://app.example/next?x=1&y=2".into(),
                method: HttpMethod::Get,
            }),
        ),
        (
            r#"<Redirect method="POST">file:///srv/next.xml</Redirect>"#,
            Instruction::Redirect(Redirect {
                url: "file:///srv/next.xml".into(),
                method: HttpMethod::Post,
            }),
        ),
        // DTMF: digits and async.
        (
            "<DTMF>12#*w9</DTMF>",
            Instruction::Dtmf(Dtmf {
                digits: "12#*w9".into(),
                async_: true,
            }),
        ),
        (
            r#"<DTMF async="false">ABCD</DTMF>"#,
            Instruction::Dtmf(Dtmf {
                digits: "ABCD".into(),
                async_: false,
            }),
        ),
        (
            r#"<DTMF async="true">0</DTMF>"#,
            Instruction::Dtmf(Dtmf {
                digits: "0".into(),
                async_: true,
            }),
        ),
    ];
    for (body, expected) in cases {
        let got = parse_xml(&doc(body)).unwrap_or_else(|e| panic!("{body}: {e}"));
        assert_eq!(got, vec![expected], "{body}");
    }
}

#[test]
fn documents_as_any_xml_user_writes_them() {
    let cases: Vec<(&str, usize)> = vec![
        ("<Response/>", 0),
        ("<Response></Response>", 0),
        ("<Response>\n</Response>", 0),
        ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Hangup/></Response>", 1),
        ("<?xml version='1.0' encoding='utf-8' standalone='yes'?><Response/>", 0),
        ("<?xml version=\"1.0\"?>\n<!-- made by the app -->\n<Response>\n  <!-- first -->\n  <Speak>Hi</Speak>\n</Response>\n<!-- trailing -->\n", 1),
        ("\u{FEFF}<Response><Wait/></Response>", 1),
        ("<Response><?app hint?><Wait/></Response>", 1),
        ("<Response><!-- lenient -- like browsers --><Wait/></Response>", 1),
        ("\r\n<Response>\r\n  <Wait/>\r\n  <Hangup/>\r\n</Response>\r\n", 2),
        ("  \n\t<Response >\n<Wait length = \"2\" />\n</Response >", 1),
    ];
    for (text, n) in cases {
        let got = parse_xml(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(got.len(), n, "{text:?}");
    }
}

/// (document, exact text of the first problem, its kind)
fn invalid_cases() -> Vec<(String, &'static str, ErrorKind)> {
    use ErrorKind::*;
    vec![
        // SPEC's own example.
        (
            "<Response>\n  <Speak>Hi</Speak>\n    <Hangup reason=\"later\"/>\n</Response>".into(),
            r#"line 3, col 5: <Hangup> attribute reason="later": expected rejected or busy"#,
            InvalidValue,
        ),
        // Unknown elements and attributes.
        (doc("<Say>hi</Say>"), "line 2, col 3: <Say>: unknown element, expected Speak, Play, Wait, PreAnswer, Hangup, Redirect, DTMF, Dial, Gather or Record", UnknownElement),
        (doc("<speak>hi</speak>"), "line 2, col 3: <speak>: unknown element, did you mean <Speak>? (names are case-sensitive)", UnknownElement),
        (doc("<PreAnswer><Beep/></PreAnswer>"), "line 2, col 14: <Beep>: unknown element, expected Speak, Play or Wait", UnknownElement),
        (doc(r#"<Speak foo="1">x</Speak>"#), r#"line 2, col 3: <Speak> attribute foo="1": unknown attribute, expected voice, language or loop"#, UnknownAttribute),
        (doc(r#"<Hangup Reason="busy"/>"#), r#"line 2, col 3: <Hangup> attribute Reason="busy": unknown attribute, did you mean reason? (names are case-sensitive)"#, UnknownAttribute),
        (doc(r#"<Play length="2">http://x/a.wav</Play>"#), r#"line 2, col 3: <Play> attribute length="2": unknown attribute, expected loop"#, UnknownAttribute),
        (doc(r#"<Wait loop="2"/>"#), r#"line 2, col 3: <Wait> attribute loop="2": unknown attribute, expected length, silence, minSilence or beep"#, UnknownAttribute),
        (doc(r#"<PreAnswer loop="2"/>"#), r#"line 2, col 3: <PreAnswer> attribute loop="2": unknown attribute, <PreAnswer> takes no attributes"#, UnknownAttribute),
        (doc(r#"<Redirect url="https://a/b">https://a/b</Redirect>"#), r#"line 2, col 3: <Redirect> attribute url="https://a/b": unknown attribute, expected method"#, UnknownAttribute),
        (doc(r#"<DTMF digits="1">1</DTMF>"#), r#"line 2, col 3: <DTMF> attribute digits="1": unknown attribute, expected async"#, UnknownAttribute),
        ("<Response xmlns=\"urn:x\"/>".into(), r#"line 1, col 1: <Response> attribute xmlns="urn:x": unknown attribute, <Response> takes no attributes"#, UnknownAttribute),
        // Invalid values, one per attribute.
        (doc(r#"<Speak voice="woman">x</Speak>"#), r#"line 2, col 3: <Speak> attribute voice="woman": expected WOMAN or MAN"#, InvalidValue),
        (doc(r#"<Speak language="en_US">x</Speak>"#), r#"line 2, col 3: <Speak> attribute language="en_US": expected a language tag such as en-US"#, InvalidValue),
        (doc(r#"<Speak language="">x</Speak>"#), r#"line 2, col 3: <Speak> attribute language="": expected a language tag such as en-US"#, InvalidValue),
        (doc(r#"<Speak loop="-1">x</Speak>"#), r#"line 2, col 3: <Speak> attribute loop="-1": expected a whole number, 0 (until the call ends) or more"#, InvalidValue),
        (doc(r#"<Play loop="twice">http://x/a.wav</Play>"#), r#"line 2, col 3: <Play> attribute loop="twice": expected a whole number, 0 (until the call ends) or more"#, InvalidValue),
        (doc(r#"<Wait length="0"/>"#), r#"line 2, col 3: <Wait> attribute length="0": expected a whole number of seconds from 1 to 2147483 (the longest sleep the switch takes)"#, InvalidValue),
        (doc(r#"<Wait length="1.5"/>"#), r#"line 2, col 3: <Wait> attribute length="1.5": expected a whole number of seconds from 1 to 2147483 (the longest sleep the switch takes)"#, InvalidValue),
        (doc(r#"<Hangup reason="completed"/>"#), r#"line 2, col 3: <Hangup> attribute reason="completed": expected rejected or busy"#, InvalidValue),
        (doc(r#"<Hangup schedule="0"/>"#), r#"line 2, col 3: <Hangup> attribute schedule="0": expected a whole number of seconds greater than 0"#, InvalidValue),
        (doc(r#"<Hangup schedule="-5"/>"#), r#"line 2, col 3: <Hangup> attribute schedule="-5": expected a whole number of seconds greater than 0"#, InvalidValue),
        (doc(r#"<Hangup schedule="soon"/>"#), r#"line 2, col 3: <Hangup> attribute schedule="soon": expected a whole number of seconds greater than 0"#, InvalidValue),
        (doc(r#"<Hangup postCallUrl="ftp://x/y"/>"#), r#"line 2, col 3: <Hangup> attribute postCallUrl="ftp://x/y": expected an http(s):// URL without spaces"#, InvalidValue),
        (doc(r#"<Hangup postCallUrl="https://a/b" postCallMethod="PUT"/>"#), r#"line 2, col 3: <Hangup> attribute postCallMethod="PUT": expected POST or GET"#, InvalidValue),
        (doc(r#"<Redirect method="get">https://a/b</Redirect>"#), r#"line 2, col 3: <Redirect> attribute method="get": expected POST or GET"#, InvalidValue),
        (doc(r#"<DTMF async="yes">1</DTMF>"#), r#"line 2, col 3: <DTMF> attribute async="yes": expected true or false"#, InvalidValue),
        (doc("<Play>ftp://x/a.wav</Play>"), r#"line 2, col 3: <Play> text "ftp://x/a.wav": expected an http(s)://, file://, tone_stream:// or silence_stream:// URL without spaces"#, InvalidValue),
        (doc("<Play>http://x/a b.wav</Play>"), r#"line 2, col 3: <Play> text "http://x/a b.wav": expected an http(s)://, file://, tone_stream:// or silence_stream:// URL without spaces"#, InvalidValue),
        (doc("<Redirect>next.xml</Redirect>"), r#"line 2, col 3: <Redirect> text "next.xml": expected an http(s):// or file:// URL without spaces"#, InvalidValue),
        (doc("<DTMF>12x</DTMF>"), r#"line 2, col 3: <DTMF> text "12x": expected DTMF digits 0-9, *, #, A-D, and w or W for a pause"#, InvalidValue),
        // Not supported yet: elements and Wait's later attributes.
        (doc("<Gather/>"), "line 2, col 3: <Gather> attribute action: missing, expected the URL that gets the digits", Missing),
        (doc(r#"<Record transcriptionUrl="https://a/t"/>"#), r#"line 2, col 3: <Record> attribute transcriptionUrl="https://a/t": not supported yet"#, NotSupported),
        (doc("<Conference>room</Conference>"), "line 2, col 3: <Conference>: not supported yet", NotSupported),
        (doc("<Stream>wss://x</Stream>"), "line 2, col 3: <Stream>: not supported yet", NotSupported),
        (doc(r#"<Wait silence="true"/>"#), r#"line 2, col 3: <Wait> attribute silence="true": not supported yet"#, NotSupported),
        (doc(r#"<Wait minSilence="2000"/>"#), r#"line 2, col 3: <Wait> attribute minSilence="2000": not supported yet"#, NotSupported),
        (doc(r#"<Wait beep="true"/>"#), r#"line 2, col 3: <Wait> attribute beep="true": not supported yet"#, NotSupported),
        // Forbidden nesting.
        (doc("<PreAnswer>\n    <Hangup/>\n  </PreAnswer>"), "line 3, col 5: <Hangup> inside <PreAnswer>: not allowed, expected Speak, Play or Wait", ForbiddenNesting),
        (doc("<PreAnswer><PreAnswer/></PreAnswer>"), "line 2, col 14: <PreAnswer> inside <PreAnswer>: not allowed, expected Speak, Play or Wait", ForbiddenNesting),
        (doc("<PreAnswer><DTMF>1</DTMF></PreAnswer>"), "line 2, col 14: <DTMF> inside <PreAnswer>: not allowed, expected Speak, Play or Wait", ForbiddenNesting),
        (doc("<PreAnswer><Redirect>https://a/b</Redirect></PreAnswer>"), "line 2, col 14: <Redirect> inside <PreAnswer>: not allowed, expected Speak, Play or Wait", ForbiddenNesting),
        (doc("<PreAnswer><Gather/></PreAnswer>"), "line 2, col 14: <Gather> inside <PreAnswer>: not allowed, expected Speak, Play or Wait", ForbiddenNesting),
        (doc("<Hangup>\n    <Speak>bye</Speak>\n  </Hangup>"), "line 3, col 5: <Speak> inside <Hangup>: not allowed, <Hangup> takes no children and no text", ForbiddenNesting),
        (doc("<Speak>Hello <break time=\"1s\"/> world</Speak>"), "line 2, col 16: <break> inside <Speak>: not allowed, <Speak> takes text only (SSML is not supported yet)", ForbiddenNesting),
        (doc("<Wait><Wait/></Wait>"), "line 2, col 9: <Wait> inside <Wait>: not allowed, <Wait> takes no child elements", ForbiddenNesting),
        // Text where none is allowed (SPEC §4 rule 9).
        (doc("<Hangup>bye</Hangup>"), r#"line 2, col 3: <Hangup> text "bye": not allowed, <Hangup> takes no text"#, TextNotAllowed),
        (doc("<Hangup reason=\"busy\"><![CDATA[bye]]></Hangup>"), r#"line 2, col 3: <Hangup> text "bye": not allowed, <Hangup> takes no text"#, TextNotAllowed),
        (doc("<Wait>5</Wait>"), r#"line 2, col 3: <Wait> text "5": not allowed, <Wait> takes no text"#, TextNotAllowed),
        (doc("<PreAnswer>ring</PreAnswer>"), r#"line 2, col 3: <PreAnswer> text "ring": not allowed, <PreAnswer> takes no text"#, TextNotAllowed),
        ("<Response>hello</Response>".into(), r#"line 1, col 1: <Response> text "hello": not allowed, <Response> takes no text"#, TextNotAllowed),
        // Missing values.
        (doc("<Speak/>"), "line 2, col 3: <Speak>: the text to speak is missing, expected it as the element's text", Missing),
        (doc("<Speak>  \n  </Speak>"), "line 2, col 3: <Speak>: the text to speak is missing, expected it as the element's text", Missing),
        (doc("<Play loop=\"2\"></Play>"), "line 2, col 3: <Play>: the URL to play is missing, expected it as the element's text", Missing),
        (doc("<Redirect/>"), "line 2, col 3: <Redirect>: the URL to fetch is missing, expected it as the element's text", Missing),
        (doc("<DTMF/>"), "line 2, col 3: <DTMF>: the digits to send is missing, expected it as the element's text", Missing),
        (doc(r#"<Hangup postCallMethod="GET"/>"#), "line 2, col 3: <Hangup> attribute postCallMethod: given without postCallUrl, expected both or only postCallUrl", Missing),
        // Duplicates.
        (doc(r#"<Hangup reason="busy" reason="rejected"/>"#), "line 2, col 3: <Hangup> attribute reason: given twice, expected each attribute at most once", Duplicate),
        // Wrong or missing root.
        ("<Document><Speak>x</Speak></Document>".into(), "line 1, col 1: <Document>: wrong root element, expected <Response>", WrongRoot),
        ("\n<response/>".into(), "line 2, col 1: <response>: wrong root element, expected <Response> (names are case-sensitive)", WrongRoot),
        ("<!-- nothing here -->".into(), "no root element, expected <Response>", WrongRoot),
        ("".into(), "the document is empty, expected <Response>", WrongRoot),
        (" \n\t ".into(), "the document is empty, expected <Response>", WrongRoot),
        // DTDs and entities: rejected, never expanded.
        (
            "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;\">]>\n<Response><Speak>&lol2;</Speak></Response>".into(),
            "line 2, col 1: <!DOCTYPE>: not allowed, answer documents may not declare a DTD or entities",
            Doctype,
        ),
        (
            "<!DOCTYPE r SYSTEM \"file:///etc/passwd\"><Response/>".into(),
            "line 1, col 1: <!DOCTYPE>: not allowed, answer documents may not declare a DTD or entities",
            Doctype,
        ),
        (doc("<Speak>a &nbsp; b</Speak>"), "line 2, col 12: entity &nbsp;: not defined, expected &lt; &gt; &amp; &apos; &quot; or a character reference such as &#233;", UndefinedEntity),
        (doc(r#"<Redirect method="&get;">https://a/b</Redirect>"#), "line 2, col 3: <Redirect> attribute method entity &get;: not defined, expected &lt; &gt; &amp; &apos; &quot; or a character reference such as &#233;", UndefinedEntity),
        // Malformed XML.
        (doc("<Speak>a</Speek>"), "line 2, col 11: malformed XML: ill-formed document: expected `</Speak>`, but `</Speek>` was found", Syntax),
        ("<Response>\n  <Speak>a</Speak>\n".into(), "line 1, col 1: <Response>: malformed XML: never closed", Syntax),
        (doc("<Speak voice=MAN>x</Speak>"), "line 2, col 3: <Speak>: malformed XML: attribute value must be enclosed in `\"` or `'`", Syntax),
        ("<Response/>\n<Response/>".into(), "line 2, col 1: <Response>: malformed XML: content after </Response>, a document has exactly one root element", Syntax),
        ("hello <Response/>".into(), r#"line 1, col 1: text "hello": malformed XML: text before <Response>, expected only the <Response> element"#, Syntax),
        (doc("<Speak>a &#0; b</Speak>"), "line 2, col 12: entity &#0;: malformed XML: not a character allowed in XML", Syntax),
        (doc("<Speak>bell\u{7}</Speak>"), "line 2, col 14: malformed XML: character U+0007 is not allowed in XML", Syntax),
        ("<Response>\n<?xml version=\"1.0\"?></Response>".into(), "line 2, col 1: <?xml?>: malformed XML: the XML declaration must be the very first thing in the document", Syntax),
        // Encoding.
        ("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><Response/>".into(), r#"line 1, col 1: <?xml?> encoding="ISO-8859-1": not supported, expected UTF-8"#, Encoding),
    ]
}

#[test]
fn invalid_documents_name_line_column_element_attribute_and_expectation() {
    for (text, expected, kind) in invalid_cases() {
        let err = parse_xml(&text).expect_err(&text);
        assert_eq!(err.first().to_string(), expected, "document:\n{text}");
        assert_eq!(err.kind(), kind, "document:\n{text}");
    }
}

#[test]
fn invalid_utf8_and_too_large_documents() {
    let err = parse(b"<Response><Speak>caf\xe9</Speak></Response>", Dialect::Xml).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 1, col 21: invalid UTF-8, expected a UTF-8 document"
    );
    assert_eq!(err.kind(), ErrorKind::Encoding);

    let mut big = String::from("<Response>");
    while big.len() <= MAX_DOCUMENT_BYTES {
        big.push_str("<Wait/>");
    }
    big.push_str("</Response>");
    let err = parse_xml(&big).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert_eq!(
        err.to_string(),
        format!(
            "the document is {} bytes, expected at most 102400 (100 KiB)",
            big.len()
        )
    );
    // Exactly at the limit is fine.
    let mut at_limit = String::from("<Response>");
    at_limit.push_str(&" ".repeat(MAX_DOCUMENT_BYTES - "<Response></Response>".len()));
    at_limit.push_str("</Response>");
    assert_eq!(at_limit.len(), MAX_DOCUMENT_BYTES);
    assert!(parse_xml(&at_limit).is_ok());
}

#[test]
fn deep_nesting_is_refused_not_recursed() {
    let depth = 5000;
    let text = format!(
        "<Response>{}{}</Response>",
        "<a>".repeat(depth),
        "</a>".repeat(depth)
    );
    let err = parse_xml(&text).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ForbiddenNesting);
    assert_eq!(
        err.to_string(),
        "line 1, col 32: <a>: nested too deeply, expected at most 8 levels"
    );
}

#[test]
fn all_problems_are_collected_in_document_order() {
    let text = "<Response>\n  <Speak voice=\"ROBOT\">hi</Speak>\n  <Gather/>\n  <Hangup reason=\"later\">bye</Hangup>\n</Response>";
    let err = parse_xml(text).unwrap_err();
    let lines: Vec<String> = err.problems().iter().map(|p| p.to_string()).collect();
    assert_eq!(
        lines,
        [
            r#"line 2, col 3: <Speak> attribute voice="ROBOT": expected WOMAN or MAN"#,
            "line 3, col 3: <Gather> attribute action: missing, expected the URL that gets the digits",
            r#"line 4, col 3: <Hangup> attribute reason="later": expected rejected or busy"#,
            r#"line 4, col 3: <Hangup> text "bye": not allowed, <Hangup> takes no text"#,
        ]
    );
    // A long run of mistakes is cut short.
    let many = doc(&"<Nope/>".repeat(100));
    assert_eq!(parse_xml(&many).unwrap_err().problems().len(), 20);
}

/// SPEC §4 rule 1: elements after a Hangup never run, but a broken one still makes
/// the document an error.
#[test]
fn elements_after_hangup_are_still_validated() {
    let err = parse_xml(&doc("<Hangup/><Speak/>")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Missing);
}

#[test]
fn columns_count_characters_not_bytes() {
    let text = "<Response><Speak>héllo wörld</Speak><Bad/></Response>";
    let err = parse_xml(text).unwrap_err();
    assert!(
        err.to_string().starts_with("line 1, col 37: <Bad>"),
        "{err}"
    );
}

#[test]
fn a_wait_longer_than_the_switch_accepts_is_refused_not_truncated() {
    // FreeSWITCH's sleep takes i32 milliseconds: 2147483 s is the most it can do.
    assert_eq!(
        parse_xml(&doc(r#"<Wait length="2147483"/>"#)).unwrap(),
        vec![Instruction::Wait(Wait {
            length_secs: 2_147_483
        })]
    );
    for too_long in ["2147484", "4294967", "4294967295"] {
        let err = parse_xml(&doc(&format!(r#"<Wait length="{too_long}"/>"#))).unwrap_err();
        assert!(
            err.to_string().contains("from 1 to 2147483"),
            "{too_long}: {err}"
        );
    }
    let voxml = format!(
        r#"{{"voxml_version":"1.0","instructions":[{{"verb":"Pause","length":{}}}]}}"#,
        4_294_967
    );
    let err = parse(voxml.as_bytes(), Dialect::VoxMl).unwrap_err();
    assert!(err.to_string().contains("from 1 to 2147483"), "{err}");
}
