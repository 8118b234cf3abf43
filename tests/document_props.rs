//! Property tests: no input makes either parser panic, and any flow written in both
//! dialects parses to the same instructions it was written from.

use proptest::prelude::*;
use voxbridge::document::model::{
    Hangup, HangupReason, HttpMethod, Instruction, Play, Redirect, Speak, Voice, Wait,
};
use voxbridge::document::{parse, plan::plan, Dialect};

/// Fragments that steer random input into the parsers' interesting paths.
const XML_TOKENS: &[&str] = &[
    "<Response>",
    "</Response>",
    "<Response/>",
    "<Speak>",
    "</Speak>",
    "<Hangup",
    "/>",
    ">",
    "</Hangup>",
    " reason=\"busy\"",
    " schedule=\"0\"",
    " loop='x'",
    "<PreAnswer>",
    "</PreAnswer>",
    "<Play>",
    "</Play>",
    "http://a/b",
    "&amp;",
    "&#",
    "&#x1F600;",
    "&lol;",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?xml version=\"1.0\"?>",
    "<!DOCTYPE r [<!ENTITY e \"x\">]>",
    "\n",
    " ",
    "é",
    "<Wait length=\"1\"/>",
    "\"",
    "'",
    "=",
    "<",
    "&",
    "\u{0}",
    "\r",
];

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"voxml_version\"",
    "\"1.0\"",
    "\"instructions\"",
    "\"verb\"",
    "\"Say\"",
    "\"Hangup\"",
    "\"reason\"",
    "\"busy\"",
    "\"text\"",
    "\"loop\"",
    "-1",
    "0",
    "1e99",
    "null",
    "true",
    "\"\\u0000\"",
    "\"\\ud800\"",
    " ",
    "\n",
    "\"",
    "é",
];

fn token_soup(tokens: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(tokens), 0..60).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        for dialect in [Dialect::Xml, Dialect::VoxMl] {
            if let Ok(doc) = parse(&bytes, dialect) {
                let _ = plan(&doc);
            }
        }
    }

    #[test]
    fn xml_like_input_never_panics(text in token_soup(XML_TOKENS)) {
        if let Err(e) = parse(text.as_bytes(), Dialect::Xml) {
            // Every error has at least one problem with a message.
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn json_like_input_never_panics(text in token_soup(JSON_TOKENS)) {
        if let Err(e) = parse(text.as_bytes(), Dialect::VoxMl) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn flows_written_in_both_dialects_parse_back_equal(flow in prop::collection::vec(instruction(), 0..8)) {
        let (xml, json) = render(&flow);
        let from_xml = parse(xml.as_bytes(), Dialect::Xml).map_err(|e| TestCaseError::fail(format!("{xml}: {e}")))?;
        let from_json = parse(json.as_bytes(), Dialect::VoxMl).map_err(|e| TestCaseError::fail(format!("{json}: {e}")))?;
        prop_assert_eq!(&from_xml.instructions, &flow);
        prop_assert_eq!(&from_json.instructions, &flow);
    }
}

/// Text that survives both dialects unchanged: no surrounding whitespace, not blank,
/// and free of control characters; markup characters included on purpose.
fn text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9<>&'\" éü,.!?-]{0,30}"
        .prop_map(|s| s.trim().to_string())
        .prop_filter("not blank", |s| !s.is_empty())
}

/// Instructions both dialects can express the same way.
fn instruction() -> impl Strategy<Value = Instruction> {
    prop_oneof![
        (
            text(),
            any::<bool>(),
            prop::sample::select(vec!["en-US", "fr-FR", "de"]),
            0u32..5
        )
            .prop_map(|(text, man, lang, loop_count)| Instruction::Speak(Speak {
                text,
                voice: if man { Voice::Man } else { Voice::Woman },
                language: lang.to_string(),
                loop_count,
            })),
        ("[a-z]{1,8}", 0u32..5).prop_map(|(name, loop_count)| Instruction::Play(Play {
            url: format!("https://cdn.example.com/{name}.wav?a=1&b=2"),
            loop_count,
        })),
        (1u32..100).prop_map(|length_secs| Instruction::Wait(Wait { length_secs })),
        prop::sample::select(vec![HangupReason::Busy, HangupReason::Rejected]).prop_map(|r| {
            Instruction::Hangup(Hangup {
                reason: Some(r),
                schedule_secs: None,
                post_call: None,
            })
        }),
        ("[a-z]{1,8}", any::<bool>()).prop_map(|(p, get)| Instruction::Redirect(Redirect {
            url: format!("https://app.example.com/{p}?x=1&y=2"),
            method: if get {
                HttpMethod::Get
            } else {
                HttpMethod::Post
            },
        })),
    ]
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The flow as an Answer XML document and as a VoxML document.
fn render(flow: &[Instruction]) -> (String, String) {
    let mut xml = String::from("<?xml version=\"1.0\"?>\n<Response>\n");
    let mut items = Vec::new();
    for ins in flow {
        match ins {
            Instruction::Speak(s) => {
                let voice = if s.voice == Voice::Man {
                    "MAN"
                } else {
                    "WOMAN"
                };
                xml.push_str(&format!(
                    "  <Speak voice=\"{voice}\" language=\"{}\" loop=\"{}\">{}</Speak>\n",
                    s.language,
                    s.loop_count,
                    esc(&s.text)
                ));
                items.push(serde_json::json!({"verb":"Say","text":s.text,"voice":voice,"language":s.language,"loop":s.loop_count}));
            }
            Instruction::Play(p) => {
                xml.push_str(&format!(
                    "  <Play loop=\"{}\">{}</Play>\n",
                    p.loop_count,
                    esc(&p.url)
                ));
                items.push(serde_json::json!({"verb":"Play","url":p.url,"loop":p.loop_count}));
            }
            Instruction::Wait(w) => {
                xml.push_str(&format!("  <Wait length=\"{}\"/>\n", w.length_secs));
                items.push(serde_json::json!({"verb":"Pause","length":w.length_secs}));
            }
            Instruction::Hangup(h) => {
                let r = h.reason.map(|r| r.as_str()).unwrap_or_default();
                xml.push_str(&format!("  <Hangup reason=\"{r}\"/>\n"));
                items.push(serde_json::json!({"verb":"Hangup","reason":r}));
            }
            Instruction::Redirect(r) => {
                xml.push_str(&format!(
                    "  <Redirect method=\"{}\"><![CDATA[{}]]></Redirect>\n",
                    r.method.as_str(),
                    r.url
                ));
                items.push(
                    serde_json::json!({"verb":"Redirect","url":r.url,"method":r.method.as_str()}),
                );
            }
            other => unreachable!("not generated: {other:?}"),
        }
    }
    xml.push_str("</Response>\n");
    let json = serde_json::json!({"voxml_version":"1.0","instructions":items}).to_string();
    (xml, json)
}
