//! VoxML JSON (TryVox dialect, SPEC §3.2) into the instruction model.
//!
//! `{"voxml_version":"1.0","instructions":[{"verb":"Say","text":"…"}, …]}`
//!
//! The JSON is read into a `serde_json::Value` first and then checked by hand rather
//! than deserialised into structs: that way every problem can name the instruction
//! index, the verb, the field and the value found, and all problems are collected at
//! once. serde_json's own recursion limit (128) bounds nesting.
//!
//! Decisions where TryVox is silent or differs from Answer XML:
//! - `Hangup` without `reason` means `completed` (TryVox's default), so it becomes
//!   `reason: Some(Completed)`; XML's "no reason" rule does not apply to VoxML.
//! - `Hangup` has no `schedule` (TryVox documents none): it is an unknown field.
//! - `null` for an optional field is the same as leaving it out (many serialisers
//!   write `null` for "none").
//! - Strings are compared exactly (`"WOMAN"`, `"POST"`); numbers must be JSON whole
//!   numbers, not strings.

use serde_json::{Map, Value};

use super::error::{one_of, DocumentError, ErrorKind, Location, Position, Problem, MAX_PROBLEMS};
use super::model::{
    AnswerDocument, Hangup, HttpMethod, Instruction, Play, PostCall, Redirect, Reject, Speak,
    Voice, Wait,
};
use super::rules;

/// Verbs voxbridge executes.
const VERBS: &[&str] = &["Say", "Play", "Pause", "Hangup", "Reject", "Redirect"];
/// TryVox verbs that come in later issues.
const NOT_YET_VERBS: &[&str] = &["Gather", "Record", "Dial", "Conference", "Stream"];
const TOP_FIELDS: &[&str] = &["voxml_version", "instructions"];

pub(crate) fn parse(text: &str) -> Result<AnswerDocument, DocumentError> {
    let value: Value = serde_json::from_str(text).map_err(syntax_error)?;
    let mut problems = Vec::new();
    let Value::Object(top) = value else {
        return Err(DocumentError::single(Problem {
            kind: ErrorKind::WrongRoot,
            location: Location::Document,
            subject: String::new(),
            detail: format!(
                "the document is a JSON {}, expected an object {{\"voxml_version\":\"1.0\",\"instructions\":[…]}}",
                json_type(&value)
            ),
        }));
    };

    match top.get("voxml_version") {
        Some(Value::String(v)) if v == "1.0" => {}
        Some(other) => problems.push(top_problem(
            ErrorKind::Version,
            format!("field voxml_version={}", render(other)),
            "expected \"1.0\"",
        )),
        None => problems.push(top_problem(
            ErrorKind::Version,
            "field \"voxml_version\"".into(),
            "missing, expected \"1.0\"",
        )),
    }
    for key in top.keys().filter(|k| !TOP_FIELDS.contains(&k.as_str())) {
        problems.push(top_problem(
            ErrorKind::UnknownField,
            format!("field {}", quoted(key)),
            format!("unknown field, expected {}", one_of(TOP_FIELDS)),
        ));
    }

    let mut instructions = Vec::new();
    match top.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (i, item) in list.iter().enumerate() {
                if problems.len() >= MAX_PROBLEMS {
                    break;
                }
                if let Some(ins) = instruction(i, item, &mut problems) {
                    instructions.push(ins);
                }
            }
        }
        Some(other) => problems.push(top_problem(
            ErrorKind::InvalidValue,
            format!("field instructions={}", render(other)),
            "expected a list of instructions",
        )),
    }

    problems.truncate(MAX_PROBLEMS);
    match DocumentError::from_problems(problems) {
        Some(e) => Err(e),
        None => Ok(AnswerDocument { instructions }),
    }
}

/// serde_json's message, with its " at line L column C" moved to the front in our form.
fn syntax_error(e: serde_json::Error) -> DocumentError {
    let msg = e.to_string();
    let msg = match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    };
    let location = if e.line() == 0 {
        Location::Document
    } else {
        Location::At(Position {
            line: u32::try_from(e.line()).unwrap_or(u32::MAX),
            col: u32::try_from(e.column().max(1)).unwrap_or(u32::MAX),
        })
    };
    DocumentError::single(Problem {
        kind: ErrorKind::Syntax,
        location,
        subject: String::new(),
        detail: format!("malformed JSON: {msg}"),
    })
}

fn top_problem(kind: ErrorKind, subject: String, detail: impl Into<String>) -> Problem {
    Problem {
        kind,
        location: Location::Document,
        subject,
        detail: detail.into(),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// A JSON value as it would be written, cut short for messages.
fn render(v: &Value) -> String {
    const MAX_CHARS: usize = 60;
    let s = serde_json::to_string(v).unwrap_or_else(|_| json_type(v).to_string());
    if s.chars().count() > MAX_CHARS {
        let mut cut: String = s.chars().take(MAX_CHARS).collect();
        cut.push('…');
        cut
    } else {
        s
    }
}

fn quoted(key: &str) -> String {
    render(&Value::String(key.to_string()))
}

/// One instruction, or `None` when it has problems (recorded).
fn instruction(index: usize, item: &Value, problems: &mut Vec<Problem>) -> Option<Instruction> {
    let path = format!("instructions[{index}]");
    let at = |kind, subject: String, detail: String| Problem {
        kind,
        location: Location::Path(path.clone()),
        subject,
        detail,
    };
    let Value::Object(map) = item else {
        problems.push(at(
            ErrorKind::InvalidValue,
            format!("instruction {}", render(item)),
            "expected an object with a \"verb\"".into(),
        ));
        return None;
    };
    let verb = match map.get("verb") {
        Some(Value::String(v)) => v.as_str(),
        Some(other) => {
            problems.push(at(
                ErrorKind::InvalidValue,
                format!("field verb={}", render(other)),
                format!("expected {}", one_of(VERBS)),
            ));
            return None;
        }
        None => {
            problems.push(at(
                ErrorKind::Missing,
                "field \"verb\"".into(),
                format!("missing, expected {}", one_of(VERBS)),
            ));
            return None;
        }
    };
    let mut f = Fields {
        path: &path,
        verb,
        map,
        taken: vec!["verb"],
        problems,
        failed: false,
    };
    match verb {
        "Say" => say(&mut f),
        "Play" => play(&mut f),
        "Pause" => pause(&mut f),
        "Hangup" => hangup(&mut f),
        "Reject" => reject(&mut f),
        "Redirect" => redirect(&mut f),
        v if NOT_YET_VERBS.contains(&v) => {
            f.problems.push(at(
                ErrorKind::NotSupported,
                format!("verb {}", quoted(v)),
                "not supported yet".into(),
            ));
            None
        }
        v => {
            let detail =
                match rules::case_hint(v, VERBS).or_else(|| rules::case_hint(v, NOT_YET_VERBS)) {
                    Some(hint) => {
                        format!("unknown verb, did you mean {hint}? (verbs are case-sensitive)")
                    }
                    None => format!("unknown verb, expected {}", one_of(VERBS)),
                };
            f.problems.push(at(
                ErrorKind::UnknownVerb,
                format!("verb {}", quoted(v)),
                detail,
            ));
            None
        }
    }
}

/// Validation helper for one instruction object: hands out fields by name, then
/// reports the fields nobody asked for as unknown.
struct Fields<'a> {
    path: &'a str,
    verb: &'a str,
    map: &'a Map<String, Value>,
    taken: Vec<&'static str>,
    problems: &'a mut Vec<Problem>,
    failed: bool,
}

impl Fields<'_> {
    fn fail(&mut self, kind: ErrorKind, subject: String, detail: impl Into<String>) {
        self.failed = true;
        self.problems.push(Problem {
            kind,
            location: Location::Path(self.path.to_string()),
            subject,
            detail: detail.into(),
        });
    }

    fn get(&mut self, key: &'static str) -> Option<&Value> {
        self.taken.push(key);
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    fn invalid(&mut self, key: &str, value: &Value, expected: &str) {
        let subject = format!("{} field {key}={}", self.verb, render(value));
        self.fail(ErrorKind::InvalidValue, subject, expected.to_string());
    }

    /// A string field through `rule`; `None` when absent or invalid (recorded).
    fn string<T>(
        &mut self,
        key: &'static str,
        rule: impl Fn(&str) -> Result<T, &'static str>,
    ) -> Option<T> {
        let value = self.get(key)?.clone();
        let Value::String(s) = &value else {
            let expected = match rule("") {
                Ok(_) => "expected a string".to_string(),
                Err(e) => format!("{e}, as a string"),
            };
            self.invalid(key, &value, &expected);
            return None;
        };
        match rule(s) {
            Ok(v) => Some(v),
            Err(expected) => {
                self.invalid(key, &value, expected);
                None
            }
        }
    }

    /// A whole-number field through `rule` (which sees its decimal form).
    fn number<T>(
        &mut self,
        key: &'static str,
        rule: impl Fn(&str) -> Result<T, &'static str>,
    ) -> Option<T> {
        let value = self.get(key)?.clone();
        let checked = match value.as_u64() {
            Some(n) => rule(&n.to_string()),
            None => rule("not a number"),
        };
        match checked {
            Ok(v) => Some(v),
            Err(expected) => {
                self.invalid(key, &value, expected);
                None
            }
        }
    }

    /// A required, non-blank string (returned trimmed).
    fn required_text(&mut self, key: &'static str, what: &str) -> Option<String> {
        let present = self.map.get(key).is_some_and(|v| !v.is_null());
        let text = self.string(key, |s| Ok::<_, &'static str>(s.trim().to_string()));
        if !present || text.as_deref() == Some("") {
            let subject = format!("{} field {}", self.verb, quoted(key));
            self.fail(
                ErrorKind::Missing,
                subject,
                format!("missing, expected {what}"),
            );
            return None;
        }
        text
    }

    /// Reports unknown fields; `known` lists what the verb takes (for the message).
    fn finish(&mut self, known: &[&str]) {
        let unknown: Vec<String> = self
            .map
            .keys()
            .filter(|k| !self.taken.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in unknown {
            let detail = match rules::case_hint(&key, known) {
                Some(hint) => {
                    format!("unknown field, did you mean {hint}? (fields are case-sensitive)")
                }
                None => format!("unknown field, expected {}", one_of(known)),
            };
            let subject = format!("{} field {}", self.verb, quoted(&key));
            self.fail(ErrorKind::UnknownField, subject, detail);
        }
    }

    fn ok(&self, i: Instruction) -> Option<Instruction> {
        (!self.failed).then_some(i)
    }
}

fn say(f: &mut Fields<'_>) -> Option<Instruction> {
    let text = f.required_text("text", "the text to speak");
    let voice = f.string("voice", rules::voice).unwrap_or(Voice::Woman);
    let language = f
        .string("language", rules::language)
        .unwrap_or_else(|| "en-US".into());
    let loop_count = f.number("loop", rules::loop_count).unwrap_or(1);
    f.finish(&["text", "voice", "language", "loop"]);
    f.ok(Instruction::Speak(Speak {
        text: text?,
        voice,
        language,
        loop_count,
    }))
}

fn play(f: &mut Fields<'_>) -> Option<Instruction> {
    let present = f.map.get("url").is_some_and(|v| !v.is_null());
    let url = f.string("url", rules::media_url);
    if !present {
        let subject = format!("{} field \"url\"", f.verb);
        f.fail(
            ErrorKind::Missing,
            subject,
            "missing, expected the URL to play",
        );
    }
    let loop_count = f.number("loop", rules::loop_count).unwrap_or(1);
    f.finish(&["url", "loop"]);
    f.ok(Instruction::Play(Play {
        url: url?,
        loop_count,
    }))
}

fn pause(f: &mut Fields<'_>) -> Option<Instruction> {
    let length_secs = f.number("length", rules::length_secs).unwrap_or(1);
    f.finish(&["length"]);
    f.ok(Instruction::Wait(Wait { length_secs }))
}

fn hangup(f: &mut Fields<'_>) -> Option<Instruction> {
    let reason = f.string("reason", rules::voxml_hangup_reason);
    let post_call = f.string("post_call_url", rules::callback_url);
    f.finish(&["reason", "post_call_url"]);
    f.ok(Instruction::Hangup(Hangup {
        reason: Some(reason.unwrap_or(super::model::HangupReason::Completed)),
        schedule_secs: None,
        post_call: post_call.map(|url| PostCall {
            url,
            method: HttpMethod::Post,
        }),
    }))
}

fn reject(f: &mut Fields<'_>) -> Option<Instruction> {
    let reason = f.string("reason", rules::reject_reason);
    f.finish(&["reason"]);
    f.ok(Instruction::Reject(Reject {
        reason: reason.unwrap_or(super::model::HangupReason::Rejected),
    }))
}

fn redirect(f: &mut Fields<'_>) -> Option<Instruction> {
    let present = f.map.get("url").is_some_and(|v| !v.is_null());
    let url = f.string("url", rules::document_url);
    if !present {
        let subject = format!("{} field \"url\"", f.verb);
        f.fail(
            ErrorKind::Missing,
            subject,
            "missing, expected the URL to fetch",
        );
    }
    let method = f
        .string("method", rules::method)
        .unwrap_or(HttpMethod::Post);
    f.finish(&["url", "method"]);
    f.ok(Instruction::Redirect(Redirect { url: url?, method }))
}
