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
//! - `Dial` takes the XML attributes in snake_case (`callerId` → `caller_id`,
//!   `digitsMatchBLeg` → `digits_match_b_leg`, …): the style of every other VoxML field.
//!   Destinations are two lists, `numbers` and `users`; an entry is a string (the number
//!   or `sip:` URI) or an object `{"number"|"user": …, "send_digits", "send_on_preanswer"}`
//!   (users also `sip_headers`). Numbers come before users in `DialBLegPosition`.
//!   Booleans are JSON booleans; digit patterns and SIP headers are the XML strings
//!   (`"12,34"`, `"k=v,k2=v2"`), so one value means the same in both dialects.
//! - Strings are compared exactly (`"WOMAN"`, `"POST"`); numbers must be JSON whole
//!   numbers, not strings.

use serde_json::{Map, Value};

use super::error::{one_of, DocumentError, ErrorKind, Location, Position, Problem, MAX_PROBLEMS};
use super::model::{
    AnswerDocument, Dial, DialDestination, DialTarget, Gather, Hangup, HttpMethod, Instruction,
    Play, PostCall, Record, Redirect, Reject, Speak, Voice, Wait,
};
use super::rules;

/// Verbs voxbridge executes.
const VERBS: &[&str] = &[
    "Say", "Play", "Pause", "Hangup", "Reject", "Redirect", "Dial", "Gather", "Record",
];
/// Verbs a Gather's `prompts` may hold.
const PROMPT_VERBS: &[&str] = &["Say", "Play", "Pause"];
/// TryVox verbs that come in later issues.
const NOT_YET_VERBS: &[&str] = &["Conference", "Stream"];
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
    instruction_at(format!("instructions[{index}]"), item, None, problems)
}

/// One instruction at `path`; inside a Gather (`parent`) only the prompt verbs.
fn instruction_at(
    path: String,
    item: &Value,
    parent: Option<&str>,
    problems: &mut Vec<Problem>,
) -> Option<Instruction> {
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
    if let Some(parent) = parent {
        if !PROMPT_VERBS.contains(&verb) {
            let detail = if VERBS.contains(&verb) || NOT_YET_VERBS.contains(&verb) {
                format!(
                    "not allowed inside {parent}, expected {}",
                    one_of(PROMPT_VERBS)
                )
            } else {
                format!("unknown verb, expected {}", one_of(PROMPT_VERBS))
            };
            problems.push(at(
                ErrorKind::ForbiddenNesting,
                format!("verb {}", quoted(verb)),
                detail,
            ));
            return None;
        }
    }
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
        "Dial" => dial(&mut f),
        "Gather" => gather(&mut f),
        "Record" => record(&mut f),
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

    /// A JSON boolean field.
    fn boolean(&mut self, key: &'static str) -> Option<bool> {
        let value = self.get(key)?.clone();
        match value {
            Value::Bool(b) => Some(b),
            other => {
                self.invalid(key, &other, "expected true or false, as a JSON boolean");
                None
            }
        }
    }

    /// A field that is a string through `rule`, or a JSON whole number through the same
    /// rule (a timeout given as `5` or `"auto"`).
    fn string_or_number<T>(
        &mut self,
        key: &'static str,
        rule: impl Fn(&str) -> Result<T, &'static str>,
    ) -> Option<T> {
        match self.map.get(key) {
            Some(Value::Number(_)) => self.number(key, rule),
            _ => self.string(key, rule),
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

const DIAL_FIELDS: &[&str] = &[
    "numbers",
    "users",
    "action",
    "method",
    "redirect",
    "callback_url",
    "callback_method",
    "caller_id",
    "caller_name",
    "timeout",
    "time_limit",
    "hangup_on_star",
    "dial_music",
    "confirm_sound",
    "confirm_key",
    "digits_match",
    "digits_match_b_leg",
    "sip_headers",
];

fn dial(f: &mut Fields<'_>) -> Option<Instruction> {
    let mut destinations = Vec::new();
    for (key, user) in [("numbers", false), ("users", true)] {
        let Some(value) = f.get(key).cloned() else {
            continue;
        };
        let Value::Array(list) = &value else {
            f.invalid(key, &value, "expected a list of destinations");
            continue;
        };
        for (i, entry) in list.iter().enumerate() {
            if let Some(d) = dial_destination(f, key, i, entry, user) {
                destinations.push(d);
            }
        }
    }
    let action = f.string("action", rules::document_url);
    let method = f.string("method", rules::method);
    let redirect = f.boolean("redirect").unwrap_or(true);
    let callback = f.string("callback_url", rules::callback_url);
    let callback_method = f.string("callback_method", rules::method);
    let caller_id = f.string("caller_id", rules::caller_id);
    let caller_name = f.string("caller_name", rules::caller_name);
    let timeout_secs = f.number("timeout", rules::ring_timeout).unwrap_or(120);
    let time_limit_secs = f.number("time_limit", rules::time_limit).unwrap_or(14_400);
    let hangup_on_star = f.boolean("hangup_on_star").unwrap_or(false);
    let dial_music = f
        .string("dial_music", rules::dial_music)
        .unwrap_or_default();
    let confirm_sound = f.string("confirm_sound", rules::document_url);
    let confirm_key = f.string("confirm_key", rules::confirm_key);
    let digits_match = f.string("digits_match", rules::digit_patterns);
    let digits_match_b_leg = f.string("digits_match_b_leg", rules::digit_patterns);
    let sip_headers = f.string("sip_headers", rules::sip_headers);
    f.finish(DIAL_FIELDS);
    if destinations.is_empty() && !f.failed {
        let subject = format!("{} field \"numbers\"", f.verb);
        f.fail(
            ErrorKind::Missing,
            subject,
            "no destination, expected at least one entry in \"numbers\" or \"users\"",
        );
    }
    for (given, needs) in [
        ("method", "action"),
        ("callback_method", "callback_url"),
        ("confirm_key", "confirm_sound"),
    ] {
        let has = |k: &str| f.map.get(k).is_some_and(|v| !v.is_null());
        if has(given) && !has(needs) {
            let subject = format!("{} field {}", f.verb, quoted(given));
            f.fail(
                ErrorKind::Missing,
                subject,
                format!("given without {needs}, expected both or only {needs}"),
            );
        }
    }
    let dial = Dial {
        destinations,
        action: action.map(|url| Redirect {
            url,
            method: method.unwrap_or(HttpMethod::Post),
        }),
        redirect,
        callback: callback.map(|url| Redirect {
            url,
            method: callback_method.unwrap_or(HttpMethod::Post),
        }),
        caller_id,
        caller_name,
        timeout_secs,
        time_limit_secs,
        hangup_on_star,
        dial_music,
        confirm_sound,
        confirm_key,
        digits_match: digits_match.unwrap_or_default(),
        digits_match_b_leg: digits_match_b_leg.unwrap_or_default(),
        sip_headers: sip_headers.unwrap_or_default(),
    };
    f.ok(Instruction::Dial(Box::new(dial)))
}

/// One entry of `numbers` / `users`: a string, or an object with the destination and
/// its options.
fn dial_destination(
    f: &mut Fields<'_>,
    list: &str,
    index: usize,
    entry: &Value,
    user: bool,
) -> Option<DialDestination> {
    let key = if user { "user" } else { "number" };
    let rule = if user {
        rules::sip_user
    } else {
        rules::dial_number
    };
    let target = |text: &str| {
        rule(text).map(|t| {
            if user {
                DialTarget::User(t)
            } else {
                DialTarget::Number(t)
            }
        })
    };
    let name = format!("{list}[{index}]");
    let bad = |f: &mut Fields<'_>, what: &str, value: &Value, expected: &str| {
        f.invalid(what, value, expected);
        None
    };
    match entry {
        Value::String(text) => match target(text) {
            Ok(target) => Some(DialDestination {
                target,
                send_digits: None,
                send_on_preanswer: false,
                sip_headers: Vec::new(),
            }),
            Err(expected) => bad(f, &name, entry, expected),
        },
        Value::Object(map) => {
            let known: &[&str] = if user {
                &["user", "send_digits", "send_on_preanswer", "sip_headers"]
            } else {
                &["number", "send_digits", "send_on_preanswer"]
            };
            if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
                let subject = format!("{} field {name}.{unknown}", f.verb);
                f.fail(
                    ErrorKind::UnknownField,
                    subject,
                    format!("unknown field, expected {}", one_of(known)),
                );
                return None;
            }
            let text = match map.get(key) {
                Some(Value::String(t)) => t.as_str(),
                other => {
                    let value = other.cloned().unwrap_or(Value::Null);
                    let expected = if user {
                        rules::EXPECT_SIP_USER
                    } else {
                        rules::EXPECT_DIAL_NUMBER
                    };
                    return bad(f, &format!("{name}.{key}"), &value, expected);
                }
            };
            let target = match target(text) {
                Ok(t) => t,
                Err(expected) => {
                    return bad(f, &format!("{name}.{key}"), &map[key], expected);
                }
            };
            let send_digits = match map.get("send_digits") {
                None | Some(Value::Null) => None,
                Some(Value::String(d)) => match rules::dtmf_digits(d) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        return bad(f, &format!("{name}.send_digits"), &map["send_digits"], e)
                    }
                },
                Some(v) => return bad(f, &format!("{name}.send_digits"), v, rules::EXPECT_DIGITS),
            };
            let send_on_preanswer = match map.get("send_on_preanswer") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(v) => {
                    return bad(
                        f,
                        &format!("{name}.send_on_preanswer"),
                        v,
                        rules::EXPECT_BOOL,
                    )
                }
            };
            let sip_headers = match map.get("sip_headers") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::String(h)) => match rules::sip_headers(h) {
                    Ok(h) => h,
                    Err(e) => {
                        return bad(f, &format!("{name}.sip_headers"), &map["sip_headers"], e)
                    }
                },
                Some(v) => {
                    return bad(
                        f,
                        &format!("{name}.sip_headers"),
                        v,
                        rules::EXPECT_SIP_HEADERS,
                    )
                }
            };
            Some(DialDestination {
                target,
                send_digits,
                send_on_preanswer,
                sip_headers,
            })
        }
        other => {
            let expected = if user {
                "expected a sip: URI string or an object {\"user\": …}"
            } else {
                "expected a number string or an object {\"number\": …}"
            };
            bad(f, &name, other, expected)
        }
    }
}

/// `Gather` (SPEC §12.1) with the XML attributes in snake_case (`num_digits`,
/// `finish_on_key`, `execution_timeout`, `digit_end_timeout`, …; numbers as JSON
/// numbers, `digit_end_timeout` also `"auto"`, booleans as JSON booleans) and its
/// prompts as a `prompts` list of `Say`/`Play`/`Pause` instructions — the same words
/// as the top level, since TryVox documents no nesting of its own.
fn gather(f: &mut Fields<'_>) -> Option<Instruction> {
    let present = f.map.get("action").is_some_and(|v| !v.is_null());
    let action = f.string("action", rules::document_url);
    if !present {
        let subject = format!("{} field \"action\"", f.verb);
        f.fail(
            ErrorKind::Missing,
            subject,
            "missing, expected the URL that gets the digits",
        );
    }
    let method = f
        .string("method", rules::method)
        .unwrap_or(HttpMethod::Post);
    if let Some(rules::InputType::Speech) = f.string("input_type", rules::input_type) {
        let value = f.map.get("input_type").cloned().unwrap_or(Value::Null);
        let subject = format!("{} field input_type={}", f.verb, render(&value));
        f.fail(
            ErrorKind::NotSupported,
            subject,
            "not supported yet (no speech recognizer), expected dtmf",
        );
    }
    let execution_timeout_secs = f
        .number("execution_timeout", rules::execution_timeout)
        .unwrap_or(15);
    let digit_end_timeout_secs = f
        .string_or_number("digit_end_timeout", rules::digit_end_timeout)
        .unwrap_or(5);
    let finish_on_key = f
        .string("finish_on_key", rules::gather_finish_key)
        .unwrap_or(Some('#'));
    let num_digits = f.number("num_digits", rules::num_digits).unwrap_or(32);
    let redirect = f.boolean("redirect").unwrap_or(true);
    let log = f.boolean("log").unwrap_or(true);
    f.string_or_number("speech_end_timeout", rules::speech_end_timeout);
    f.string("speech_model", rules::plain_text);
    f.string("hints", rules::plain_text);
    f.string("language", rules::language);
    f.boolean("profanity_filter");
    f.string("interim_speech_results_callback", rules::callback_url);
    f.string("interim_speech_results_callback_method", rules::method);
    if let (Some(url), false) = (&action, redirect) {
        if rules::callback_url(url).is_err() {
            let subject = format!("{} field action={}", f.verb, quoted(url));
            f.fail(
                ErrorKind::InvalidValue,
                subject,
                "with redirect=false the action is requested through the outbox: expected an http(s):// URL",
            );
        }
    }
    let mut prompts = Vec::new();
    match f.get("prompts").cloned() {
        None => {}
        Some(Value::Array(list)) => {
            for (j, item) in list.iter().enumerate() {
                let path = format!("{}.prompts[{j}]", f.path);
                match instruction_at(path, item, Some("Gather"), f.problems) {
                    Some(i) => prompts.push(i),
                    None => f.failed = true,
                }
            }
        }
        Some(other) => f.invalid(
            "prompts",
            &other,
            "expected a list of Say, Play or Pause instructions",
        ),
    }
    f.finish(&[
        "action",
        "method",
        "input_type",
        "execution_timeout",
        "digit_end_timeout",
        "finish_on_key",
        "num_digits",
        "redirect",
        "log",
        "prompts",
        "speech_end_timeout",
        "speech_model",
        "hints",
        "language",
        "profanity_filter",
        "interim_speech_results_callback",
        "interim_speech_results_callback_method",
    ]);
    f.ok(Instruction::Gather(Gather {
        action: action?,
        method,
        execution_timeout_secs,
        digit_end_timeout_secs,
        finish_on_key,
        num_digits,
        redirect,
        log,
        prompts,
    }))
}

/// `Record` (SPEC §12.2), snake_case fields, the same rules as XML's `<Record>`.
fn record(f: &mut Fields<'_>) -> Option<Instruction> {
    let action = f.string("action", rules::document_url);
    let method = f
        .string("method", rules::method)
        .unwrap_or(HttpMethod::Post);
    let redirect = f.boolean("redirect").unwrap_or(false);
    let file_format = f.string("file_format", rules::file_format);
    let timeout_secs = f.number("timeout", rules::silence_timeout).unwrap_or(60);
    let max_length_secs = f.number("max_length", rules::max_length).unwrap_or(60);
    let play_beep = f.boolean("play_beep").unwrap_or(true);
    let finish_on_key = f
        .string("finish_on_key", rules::record_finish_keys)
        .unwrap_or_else(|| "1234567890*#".to_string());
    let record_session = f.boolean("record_session").unwrap_or(false);
    let start_on_dial_answer = f.boolean("start_on_dial_answer").unwrap_or(false);
    let callback_url = f.string("callback_url", rules::callback_url);
    let callback_method = f.string("callback_method", rules::method);
    for later in [
        "transcription_type",
        "transcription_url",
        "transcription_method",
    ] {
        if let Some(v) = f.map.get(later).filter(|v| !v.is_null()).cloned() {
            let subject = format!("{} field {later}={}", f.verb, render(&v));
            f.fail(ErrorKind::NotSupported, subject, "not supported yet");
        }
    }
    f.taken.extend([
        "transcription_type",
        "transcription_url",
        "transcription_method",
    ]);
    if let (Some(url), false) = (&action, redirect) {
        if rules::callback_url(url).is_err() {
            let subject = format!("{} field action={}", f.verb, quoted(url));
            f.fail(
                ErrorKind::InvalidValue,
                subject,
                "with redirect=false the action is requested through the outbox: expected an http(s):// URL",
            );
        }
    }
    if record_session && start_on_dial_answer {
        let subject = format!("{} field start_on_dial_answer=true", f.verb);
        f.fail(
            ErrorKind::InvalidValue,
            subject,
            "record_session=true already records the whole call from now: choose one",
        );
    }
    f.finish(&[
        "action",
        "method",
        "redirect",
        "file_format",
        "timeout",
        "max_length",
        "play_beep",
        "finish_on_key",
        "record_session",
        "start_on_dial_answer",
        "callback_url",
        "callback_method",
        "transcription_type",
        "transcription_url",
        "transcription_method",
    ]);
    f.ok(Instruction::Record(Record {
        action,
        method,
        redirect,
        file_format,
        timeout_secs,
        max_length_secs,
        play_beep,
        finish_on_key,
        record_session,
        start_on_dial_answer,
        callback: callback_url.map(|url| Redirect {
            url,
            method: callback_method.unwrap_or(HttpMethod::Post),
        }),
    }))
}
