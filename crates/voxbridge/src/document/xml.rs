//! Answer XML (Vobiz/Plivo dialect, SPEC §3.1) into the instruction model.
//!
//! Two passes: quick-xml's pull parser builds a small tree that remembers where every
//! element starts (line and column of its `<`), then the tree is validated against the
//! element table, collecting every problem rather than stopping at the first one.
//! Malformed XML stops the first pass at once: nothing after a syntax error can be
//! trusted.
//!
//! Safety decisions:
//! - `<!DOCTYPE>` is rejected outright, so no entity can ever be declared, let alone
//!   expanded (billion laughs, external entities). Only the five predefined entities
//!   and character references are resolved.
//! - Elements may nest at most [`MAX_DEPTH`] deep (real documents need 3), which also
//!   bounds the validator's recursion.
//! - Only UTF-8 (or its ASCII subset) is accepted; a declaration naming another
//!   encoding is an error rather than a silent misreading.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use quick_xml::XmlVersion;

use super::error::{
    one_of, show, DocumentError, ErrorKind, Location, Position, Problem, MAX_PROBLEMS,
};
use super::model::{
    AnswerDocument, Dial, DialDestination, DialTarget, Dtmf, Gather, Hangup, HttpMethod,
    Instruction, Play, PostCall, Record, Redirect, Speak, Voice, Wait,
};
use super::rules;

/// Deepest element nesting accepted (`Response > PreAnswer > Speak` is 3).
pub(crate) const MAX_DEPTH: usize = 8;

/// Elements the top level of a `<Response>` may hold.
const TOP_ELEMENTS: &[&str] = &[
    "Speak",
    "Play",
    "Wait",
    "PreAnswer",
    "Hangup",
    "Redirect",
    "DTMF",
    "Dial",
    "Gather",
    "Record",
];
/// Elements `<PreAnswer>` may hold.
const PRE_ANSWER_ELEMENTS: &[&str] = &["Speak", "Play", "Wait"];
/// Elements `<Gather>` may hold: its prompts.
const GATHER_ELEMENTS: &[&str] = &["Speak", "Play", "Wait"];
/// Elements of the dialect that come in later issues.
const NOT_YET_ELEMENTS: &[&str] = &["Conference", "Stream"];
/// Elements `<Dial>` may hold.
const DIAL_ELEMENTS: &[&str] = &["Number", "User"];

/// One element as read from the text, before validation.
struct Node {
    name: String,
    pos: Position,
    /// Attributes in document order, values with entities resolved and whitespace
    /// normalised as XML prescribes.
    attrs: Vec<(String, String)>,
    /// All character data directly inside the element (text, CDATA, entities),
    /// concatenated.
    text: String,
    children: Vec<Node>,
}

/// Parses an Answer XML document (already UTF-8, BOM removed, size checked).
pub(crate) fn parse(text: &str) -> Result<AnswerDocument, DocumentError> {
    let mut problems = Vec::new();
    let Some(root) = read_tree(text, &mut problems) else {
        if problems.is_empty() {
            problems.push(Problem {
                kind: ErrorKind::WrongRoot,
                location: Location::Document,
                subject: String::new(),
                detail: "no root element, expected <Response>".into(),
            });
        }
        return Err(finish(problems));
    };
    // Problems found while reading attributes do not stop validation: the admin
    // sees everything wrong with the document at once.
    let instructions = validate_response(&root, &mut problems);
    if problems.is_empty() {
        Ok(AnswerDocument { instructions })
    } else {
        Err(finish(problems))
    }
}

fn finish(mut problems: Vec<Problem>) -> DocumentError {
    sort_and_cap(&mut problems);
    DocumentError::from_problems(problems).unwrap_or_else(|| {
        DocumentError::single(Problem {
            kind: ErrorKind::Syntax,
            location: Location::Document,
            subject: String::new(),
            detail: "invalid document".into(),
        })
    })
}

/// Document order (by position), so the first problem is the topmost one.
fn sort_and_cap(problems: &mut Vec<Problem>) {
    problems.sort_by_key(|p| match &p.location {
        Location::At(pos) => (1, *pos),
        _ => (0, Position { line: 0, col: 0 }),
    });
    problems.truncate(MAX_PROBLEMS);
}

/// Turns byte offsets into line/column, moving forward through the text (offsets of
/// successive events only grow, so the whole document is scanned once).
struct LineCounter<'a> {
    text: &'a str,
    offset: usize,
    line: u32,
    col: u32,
    after_cr: bool,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            offset: 0,
            line: 1,
            col: 1,
            after_cr: false,
        }
    }

    fn at(&mut self, byte: u64) -> Position {
        let mut target = usize::try_from(byte)
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        while !self.text.is_char_boundary(target) {
            target -= 1;
        }
        if target < self.offset {
            *self = Self::new(self.text);
        }
        for c in self.text[self.offset..target].chars() {
            match c {
                '\n' if self.after_cr => self.after_cr = false,
                '\n' => {
                    self.line += 1;
                    self.col = 1;
                }
                '\r' => {
                    self.line += 1;
                    self.col = 1;
                    self.after_cr = true;
                }
                _ => {
                    self.col += 1;
                    self.after_cr = false;
                }
            }
        }
        self.offset = target;
        Position {
            line: self.line,
            col: self.col,
        }
    }
}

fn problem(kind: ErrorKind, pos: Position, subject: String, detail: impl Into<String>) -> Problem {
    Problem {
        kind,
        location: Location::At(pos),
        subject,
        detail: detail.into(),
    }
}

/// XML 1.0 `Char`: no C0 controls other than tab, LF, CR (and no U+FFFE/U+FFFF).
fn is_xml_char(c: char) -> bool {
    !matches!(c, '\u{0}'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}')
}

/// First pass: the element tree. `None` when there is no usable tree (syntax error,
/// DOCTYPE, no root); the reason is in `problems`.
fn read_tree(text: &str, problems: &mut Vec<Problem>) -> Option<Node> {
    let mut lines = LineCounter::new(text);
    if let Some((at, c)) = text.char_indices().find(|(_, c)| !is_xml_char(*c)) {
        problems.push(problem(
            ErrorKind::Syntax,
            lines.at(at as u64),
            String::new(),
            format!(
                "malformed XML: character U+{:04X} is not allowed in XML",
                c as u32
            ),
        ));
        return None;
    }

    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;

    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let mut seen_markup = false;

    loop {
        let start = reader.buffer_position();
        let event = match reader.read_event() {
            Ok(ev) => ev,
            Err(e) => {
                let pos = lines.at(reader.error_position());
                problems.push(problem(
                    ErrorKind::Syntax,
                    pos,
                    String::new(),
                    format!("malformed XML: {e}"),
                ));
                return None;
            }
        };
        match event {
            Event::Decl(decl) => {
                let pos = lines.at(start);
                if seen_markup || start != 0 {
                    problems.push(problem(
                        ErrorKind::Syntax,
                        pos,
                        "<?xml?>".into(),
                        "malformed XML: the XML declaration must be the very first thing in the document",
                    ));
                    return None;
                }
                check_declaration(&decl, pos, problems)?;
            }
            Event::DocType(_) => {
                problems.push(problem(
                    ErrorKind::Doctype,
                    lines.at(start),
                    "<!DOCTYPE>".into(),
                    "not allowed, answer documents may not declare a DTD or entities",
                ));
                return None;
            }
            Event::PI(_) | Event::Comment(_) => {}
            Event::Start(e) | Event::Empty(e) if root.is_some() => {
                let pos = lines.at(start);
                problems.push(problem(
                    ErrorKind::Syntax,
                    pos,
                    format!("<{}>", element_name(&e)),
                    "malformed XML: content after </Response>, a document has exactly one root element",
                ));
                return None;
            }
            Event::Start(e) => {
                seen_markup = true;
                let pos = lines.at(start);
                if stack.len() >= MAX_DEPTH {
                    problems.push(problem(
                        ErrorKind::ForbiddenNesting,
                        pos,
                        format!("<{}>", element_name(&e)),
                        format!("nested too deeply, expected at most {MAX_DEPTH} levels"),
                    ));
                    return None;
                }
                stack.push(new_node(&e, pos, problems));
            }
            Event::Empty(e) => {
                seen_markup = true;
                let pos = lines.at(start);
                let node = new_node(&e, pos, problems);
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::End(_) => {
                // quick-xml has already checked that the name matches.
                let Some(node) = stack.pop() else {
                    problems.push(problem(
                        ErrorKind::Syntax,
                        lines.at(start),
                        String::new(),
                        "malformed XML: closing tag without an opening tag",
                    ));
                    return None;
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                add_text(
                    &mut stack,
                    root.is_some(),
                    &content,
                    lines.at(start),
                    problems,
                )?;
            }
            Event::CData(c) => {
                let content = c.xml10_content();
                add_text(
                    &mut stack,
                    root.is_some(),
                    &content,
                    lines.at(start),
                    problems,
                )?;
            }
            Event::GeneralRef(r) => {
                let pos = lines.at(start);
                let resolved = if r.is_char_ref() {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) if is_xml_char(c) => Some(c.to_string()),
                        _ => None,
                    }
                } else {
                    quick_xml::escape::resolve_xml_entity(&r.xml10_content()).map(str::to_string)
                };
                let Some(resolved) = resolved else {
                    let (kind, detail) = if r.is_char_ref() {
                        (
                            ErrorKind::Syntax,
                            "malformed XML: not a character allowed in XML",
                        )
                    } else {
                        (ErrorKind::UndefinedEntity, UNDEFINED_ENTITY)
                    };
                    problems.push(problem(
                        kind,
                        pos,
                        format!("entity &{};", r.xml10_content()),
                        detail,
                    ));
                    return None;
                };
                add_text(&mut stack, root.is_some(), &resolved, pos, problems)?;
            }
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.first() {
        let innermost = stack.last().unwrap_or(open);
        problems.push(problem(
            ErrorKind::Syntax,
            innermost.pos,
            format!("<{}>", innermost.name),
            "malformed XML: never closed",
        ));
        return None;
    }
    root
}

/// Appends character data to the open element; outside the root only whitespace
/// is allowed.
fn add_text(
    stack: &mut [Node],
    after_root: bool,
    content: &str,
    pos: Position,
    problems: &mut Vec<Problem>,
) -> Option<()> {
    match stack.last_mut() {
        Some(node) => {
            node.text.push_str(content);
            Some(())
        }
        None if content.trim().is_empty() => Some(()),
        None => {
            let place = if after_root {
                "after </Response>"
            } else {
                "before <Response>"
            };
            problems.push(problem(
                ErrorKind::Syntax,
                pos,
                format!("text {}", show(content.trim())),
                format!("malformed XML: text {place}, expected only the <Response> element"),
            ));
            None
        }
    }
}

/// `<?xml version="1.0" encoding="UTF-8"?>`: only UTF-8 or ASCII are read.
fn check_declaration(
    decl: &quick_xml::events::BytesDecl<'_>,
    pos: Position,
    problems: &mut Vec<Problem>,
) -> Option<()> {
    match decl.version() {
        Ok(v) if v == "1.0" || v == "1.1" => {}
        Ok(v) => {
            problems.push(problem(
                ErrorKind::Syntax,
                pos,
                format!("<?xml?> version={}", show(&v)),
                "expected 1.0",
            ));
            return None;
        }
        Err(e) => {
            problems.push(problem(
                ErrorKind::Syntax,
                pos,
                "<?xml?>".into(),
                format!("malformed XML: {e}"),
            ));
            return None;
        }
    }
    if let Some(enc) = decl.encoding() {
        let enc = match enc {
            Ok(enc) => enc.into_owned(),
            Err(e) => {
                problems.push(problem(
                    ErrorKind::Syntax,
                    pos,
                    "<?xml?>".into(),
                    format!("malformed XML: {e}"),
                ));
                return None;
            }
        };
        let name = enc.to_ascii_lowercase();
        if !matches!(name.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii") {
            problems.push(problem(
                ErrorKind::Encoding,
                pos,
                format!("<?xml?> encoding={}", show(&enc)),
                "not supported, expected UTF-8",
            ));
            return None;
        }
    }
    Some(())
}

const UNDEFINED_ENTITY: &str =
    "not defined, expected &lt; &gt; &amp; &apos; &quot; or a character reference such as &#233;";

/// quick-xml's attribute errors start with `position N: ` (an offset inside the
/// tag); the element's line and column already say where, so drop it.
fn without_offset(msg: &str) -> &str {
    match msg.strip_prefix("position ") {
        Some(rest) => rest.split_once(": ").map(|(_, m)| m).unwrap_or(msg),
        None => msg,
    }
}

fn element_name(e: &BytesStart<'_>) -> String {
    e.name().as_ref().to_string()
}

/// Reads an element's name and attributes. Attribute problems are recorded and the
/// attribute dropped, so validation still runs on the rest.
fn new_node(e: &BytesStart<'_>, pos: Position, problems: &mut Vec<Problem>) -> Node {
    let name = element_name(e);
    let mut attrs: Vec<(String, String)> = Vec::new();
    for attr in e.attributes() {
        match attr {
            Ok(a) => {
                let key = a.key.as_ref().to_string();
                match a.normalized_value(XmlVersion::Implicit1_0) {
                    Ok(v) if v.chars().all(is_xml_char) => attrs.push((key, v.into_owned())),
                    Ok(_) => problems.push(problem(
                        ErrorKind::Syntax,
                        pos,
                        format!("<{name}> attribute {key}"),
                        "malformed XML: a character reference names a character not allowed in XML",
                    )),
                    Err(quick_xml::Error::Escape(
                        quick_xml::escape::EscapeError::UnrecognizedEntity(_, ent),
                    )) => problems.push(problem(
                        ErrorKind::UndefinedEntity,
                        pos,
                        format!("<{name}> attribute {key} entity &{ent};"),
                        UNDEFINED_ENTITY,
                    )),
                    Err(err) => problems.push(problem(
                        ErrorKind::Syntax,
                        pos,
                        format!("<{name}> attribute {key}"),
                        format!("malformed XML: {err}"),
                    )),
                }
            }
            Err(quick_xml::events::attributes::AttrError::Duplicated(at, _)) => {
                let raw = e.attributes_raw();
                let key: String = raw
                    .get(at.saturating_sub(name.len())..)
                    .unwrap_or_default()
                    .trim_start()
                    .chars()
                    .take_while(|c| *c != '=' && !c.is_whitespace())
                    .collect();
                problems.push(problem(
                    ErrorKind::Duplicate,
                    pos,
                    format!("<{name}> attribute {key}"),
                    "given twice, expected each attribute at most once",
                ));
            }
            Err(err) => problems.push(problem(
                ErrorKind::Syntax,
                pos,
                format!("<{name}>"),
                format!("malformed XML: {}", without_offset(&err.to_string())),
            )),
        }
    }
    Node {
        name,
        pos,
        attrs,
        text: String::new(),
        children: Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Second pass: validation.

fn validate_response(root: &Node, problems: &mut Vec<Problem>) -> Vec<Instruction> {
    if root.name != "Response" {
        let detail = match rules::case_hint(&root.name, &["Response"]) {
            Some(_) => {
                "wrong root element, expected <Response> (names are case-sensitive)".to_string()
            }
            None => "wrong root element, expected <Response>".to_string(),
        };
        problems.push(problem(
            ErrorKind::WrongRoot,
            root.pos,
            format!("<{}>", root.name),
            detail,
        ));
        return Vec::new();
    }
    Element::new(root, problems).finish(&[], TextRule::None);
    top_children(root, problems)
}

fn top_children(root: &Node, problems: &mut Vec<Problem>) -> Vec<Instruction> {
    let mut out = Vec::new();
    for child in &root.children {
        if let Some(i) = instruction(child, Context::Top, problems) {
            out.push(i);
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Top,
    PreAnswer,
    Gather,
}

/// One instruction element, or `None` when it has problems (recorded).
fn instruction(node: &Node, ctx: Context, problems: &mut Vec<Problem>) -> Option<Instruction> {
    let name = node.name.as_str();
    let nested = match ctx {
        Context::Top => None,
        Context::PreAnswer => Some(("PreAnswer", PRE_ANSWER_ELEMENTS)),
        Context::Gather => Some(("Gather", GATHER_ELEMENTS)),
    };
    if let Some((parent, allowed)) = nested {
        if !allowed.contains(&name) {
            if TOP_ELEMENTS.contains(&name) || NOT_YET_ELEMENTS.contains(&name) {
                problems.push(problem(
                    ErrorKind::ForbiddenNesting,
                    node.pos,
                    format!("<{name}> inside <{parent}>"),
                    format!("not allowed, expected {}", one_of(allowed)),
                ));
                return None;
            }
            unknown_element(node, allowed, problems);
            return None;
        }
    }
    match name {
        "Speak" => speak(node, problems),
        "Play" => play(node, problems),
        "Wait" => wait(node, problems),
        "PreAnswer" => pre_answer(node, problems),
        "Hangup" => hangup(node, problems),
        "Redirect" => redirect(node, problems),
        "DTMF" => dtmf(node, problems),
        "Dial" => dial(node, problems),
        "Gather" => gather(node, problems),
        "Record" => record(node, problems),
        n if NOT_YET_ELEMENTS.contains(&n) => {
            problems.push(problem(
                ErrorKind::NotSupported,
                node.pos,
                format!("<{n}>"),
                "not supported yet",
            ));
            None
        }
        _ => {
            unknown_element(node, TOP_ELEMENTS, problems);
            None
        }
    }
}

fn unknown_element(node: &Node, expected: &[&str], problems: &mut Vec<Problem>) {
    let detail = match rules::case_hint(&node.name, TOP_ELEMENTS)
        .or_else(|| rules::case_hint(&node.name, NOT_YET_ELEMENTS))
    {
        Some(hint) => format!("unknown element, did you mean <{hint}>? (names are case-sensitive)"),
        None => format!("unknown element, expected {}", one_of(expected)),
    };
    problems.push(problem(
        ErrorKind::UnknownElement,
        node.pos,
        format!("<{}>", node.name),
        detail,
    ));
}

/// What character data an element may hold.
enum TextRule {
    /// Only whitespace (comments are not text).
    None,
    /// The element's value: required, trimmed; the message names what it is.
    Required(&'static str),
}

/// Validation helper for one element: hands out attributes by name, then reports
/// the ones nobody asked for as unknown, and checks text and children.
struct Element<'n, 'p> {
    node: &'n Node,
    problems: &'p mut Vec<Problem>,
    taken: Vec<bool>,
    /// Set when any problem was found for this element.
    failed: bool,
}

impl<'n, 'p> Element<'n, 'p> {
    fn new(node: &'n Node, problems: &'p mut Vec<Problem>) -> Self {
        Self {
            node,
            problems,
            taken: vec![false; node.attrs.len()],
            failed: false,
        }
    }

    fn name(&self) -> &str {
        &self.node.name
    }

    /// The raw value of attribute `key`, if present.
    fn raw(&mut self, key: &str) -> Option<&'n str> {
        let idx = self.node.attrs.iter().position(|(k, _)| k == key)?;
        self.taken[idx] = true;
        Some(self.node.attrs[idx].1.as_str())
    }

    /// Attribute `key` through `rule`; `None` when absent or invalid (recorded).
    fn attr<T>(&mut self, key: &str, rule: impl Fn(&str) -> Result<T, &'static str>) -> Option<T> {
        let raw = self.raw(key)?;
        match rule(raw) {
            Ok(v) => Some(v),
            Err(expected) => {
                self.fail(
                    ErrorKind::InvalidValue,
                    format!("<{}> attribute {key}={}", self.name(), show(raw)),
                    expected,
                );
                None
            }
        }
    }

    /// Attributes that exist in the dialect but are not implemented yet.
    fn not_yet(&mut self, key: &str) {
        if let Some(raw) = self.raw(key) {
            self.fail(
                ErrorKind::NotSupported,
                format!("<{}> attribute {key}={}", self.name(), show(raw)),
                "not supported yet",
            );
        }
    }

    fn fail(&mut self, kind: ErrorKind, subject: String, detail: impl Into<String>) {
        self.failed = true;
        self.problems
            .push(problem(kind, self.node.pos, subject, detail));
    }

    /// Reports unknown attributes (given `known` for the message), text and children
    /// not allowed. Returns the element's text value for `TextRule::Required`.
    fn finish(&mut self, known: &[&str], text: TextRule) -> Option<String> {
        self.finish_attributes(known);
        self.finish_text(text)
    }

    /// Reports the attributes nobody asked for as unknown (`known` for the message).
    fn finish_attributes(&mut self, known: &[&str]) {
        for (i, (k, v)) in self.node.attrs.iter().enumerate() {
            if self.taken[i] {
                continue;
            }
            let detail = match rules::case_hint(k, known) {
                Some(hint) => {
                    format!("unknown attribute, did you mean {hint}? (names are case-sensitive)")
                }
                None if known.is_empty() => {
                    format!("unknown attribute, <{}> takes no attributes", self.name())
                }
                None => format!("unknown attribute, expected {}", one_of(known)),
            };
            self.fail(
                ErrorKind::UnknownAttribute,
                format!("<{}> attribute {k}={}", self.name(), show(v)),
                detail,
            );
        }
    }

    /// Checks the element's text against `text`.
    fn finish_text(&mut self, text: TextRule) -> Option<String> {
        let trimmed = self.node.text.trim();
        match text {
            TextRule::None if !trimmed.is_empty() => {
                self.fail(
                    ErrorKind::TextNotAllowed,
                    format!("<{}> text {}", self.name(), show(trimmed)),
                    format!("not allowed, <{}> takes no text", self.name()),
                );
                None
            }
            TextRule::None => None,
            TextRule::Required(what) if trimmed.is_empty() => {
                self.fail(
                    ErrorKind::Missing,
                    format!("<{}>", self.name()),
                    format!("{what} is missing, expected it as the element's text"),
                );
                None
            }
            TextRule::Required(_) => Some(trimmed.to_string()),
        }
    }

    /// Child elements are not allowed in a leaf element.
    fn no_children(&mut self, why: &str) {
        for child in &self.node.children {
            self.failed = true;
            self.problems.push(problem(
                ErrorKind::ForbiddenNesting,
                child.pos,
                format!("<{}> inside <{}>", child.name, self.node.name),
                format!("not allowed, <{}> takes {why}", self.node.name),
            ));
        }
    }

    /// Checks the element's text value with `rule`.
    fn text_value<T>(
        &mut self,
        text: Option<String>,
        rule: impl Fn(&str) -> Result<T, &'static str>,
    ) -> Option<T> {
        let text = text?;
        match rule(&text) {
            Ok(v) => Some(v),
            Err(expected) => {
                self.fail(
                    ErrorKind::InvalidValue,
                    format!("<{}> text {}", self.name(), show(&text)),
                    expected,
                );
                None
            }
        }
    }

    fn ok<T>(&self, value: T) -> Option<T> {
        (!self.failed).then_some(value)
    }
}

fn speak(node: &Node, problems: &mut Vec<Problem>) -> Option<Instruction> {
    let mut el = Element::new(node, problems);
    let voice = el.attr("voice", rules::voice).unwrap_or(Voice::Woman);
    let language = el
        .attr("language", rules::language)
        .unwrap_or_else(|| "en-US".into());
    let loop_count = el.attr("loop", rules::loop_count).unwrap_or(1);
    el.no_children("text only (SSML is not supported yet)");
    let text = el.finish(
        &["voice", "language", "loop"],
        TextRule::Required("the text to speak"),
    );
    let text = text?;
    el.ok(Instruction::Speak(Speak {
        text,
        voice,
        language,
        loop_count,
    }))
}

fn play(node: &Node, problems: &mut Vec<Problem>) -> Option<Instruction> {
    let mut el = Element::new(node, problems);
    let loop_count = el.attr("loop", rules::loop_count).unwrap_or(1);
    el.no_children("only the URL as text");
    let text = el.finish(&["loop"], TextRule::Required("the URL to play"));
    let url = el.text_value(text, rules::media_url)?;
    el.ok(Instruction::Play(Play { url, loop_count }))
}

fn wait(node: &Node, problems: &mut Vec<Problem>) -> Option<Instruction> {
    let mut el = Element::new(node, problems);
    let length_secs = el.attr("length", rules::length_secs).unwrap_or(1);
    for later in ["silence", "minSilence", "beep"] {
        el.not_yet(later);
    }
    el.no_children("no child elements");
    el.finish(&["length", "silence", "minSilence", "beep"], TextRule::None);
    el.ok(Instruction::Wait(Wait { length_secs }))
}

fn pre_answer(node: &Node, problems: &mut Vec<Problem>) -> Option<Instruction> {
    let mut el = Element::new(node, problems);
    el.finish(&[], TextRule::None);
    let failed = el.failed;
    let mut children = Vec::new();
    let mut child_failed = false;
    for child in &node.children {
        match instruction(child, Context::PreAnswer, problems) {
            Some(i) => children.push(i),
            None => child_failed = true,
        }
    }
    (!failed && !child_failed).then_some(Instruction::PreAnswer(children))
}

fn hangup(node: &Node, problems: &mut Vec<Problem>) -> Option<Instruction> {
    let mut el = Element::new(node, problems);
    let reason = el.attr("reason", rules::xml_hangup_reason);
    let schedule_secs = el.attr("schedule", rules::schedule_secs);
    let post_call_url = el.attr("postCallUrl", rules::callback_url);
    let method = el.attr("postCallMethod", rules::method);
    if method.is_some() && post_call_url.is_none() && !el.failed {
        el.fail(
            ErrorKind::Missing,
            format!("<{}> attribute postCallMethod", el.name()),
            "given without postCallUrl, expected both or only postCallUrl",
        );
    }
    el.no_children("no children and no text");
    el.finish(
        &["reason", "schedule", "postCallUrl", "postCallMethod"],
        TextRule::None,
    );
    el.ok(Instruction::Hangup(Hangup {
        reason,
        schedule_secs,
        post_call: post_call_url.map(|url| PostCall {
            url,
            method: method.unwrap_or(HttpMethod::Post),
        }),
    }))
}

fn redirect(node: &Node, problems: &mut Vec<Problem>) -> Option<Instruction> {
    let mut el = Element::new(node, problems);
    let method = el.attr("method", rules::method).unwrap_or(HttpMethod::Post);
    el.no_children("only the URL as text");
    let text = el.finish(&["method"], TextRule::Required("the URL to fetch"));
    let url = el.text_value(text, rules::document_url)?;
    el.ok(Instruction::Redirect(Redirect { url, method }))
}

fn dtmf(node: &Node, problems: &mut Vec<Problem>) -> Option<Instruction> {
    let mut el = Element::new(node, problems);
    // Vobiz/Plivo default: digits are sent without holding up the next element.
    let async_ = el.attr("async", rules::boolean).unwrap_or(true);
    el.no_children("only the digits as text");
    let text = el.finish(&["async"], TextRule::Required("the digits to send"));
    let digits = el.text_value(text, rules::dtmf_digits)?;
    el.ok(Instruction::Dtmf(Dtmf { digits, async_ }))
}

const DIAL_ATTRIBUTES: &[&str] = &[
    "action",
    "method",
    "redirect",
    "callbackUrl",
    "callbackMethod",
    "callerId",
    "callerName",
    "timeout",
    "timeLimit",
    "hangupOnStar",
    "dialMusic",
    "confirmSound",
    "confirmKey",
    "digitsMatch",
    "digitsMatchBLeg",
    "sipHeaders",
];

/// `<Dial>` (SPEC §11.1): `<Number>`/`<User>` children, or bare text as one Number.
fn dial(node: &Node, problems: &mut Vec<Problem>) -> Option<Instruction> {
    let mut el = Element::new(node, problems);
    let action_url = el.attr("action", rules::document_url);
    let method = el.attr("method", rules::method);
    let redirect = el.attr("redirect", rules::boolean).unwrap_or(true);
    let callback_url = el.attr("callbackUrl", rules::callback_url);
    let callback_method = el.attr("callbackMethod", rules::method);
    let caller_id = el.attr("callerId", rules::caller_id);
    let caller_name = el.attr("callerName", rules::caller_name);
    let timeout_secs = el.attr("timeout", rules::ring_timeout).unwrap_or(120);
    let time_limit_secs = el.attr("timeLimit", rules::time_limit).unwrap_or(14_400);
    let hangup_on_star = el.attr("hangupOnStar", rules::boolean).unwrap_or(false);
    let dial_music = el.attr("dialMusic", rules::dial_music).unwrap_or_default();
    let confirm_sound = el.attr("confirmSound", rules::document_url);
    let confirm_key = el.attr("confirmKey", rules::confirm_key);
    let digits_match = el.attr("digitsMatch", rules::digit_patterns);
    let digits_match_b_leg = el.attr("digitsMatchBLeg", rules::digit_patterns);
    let sip_headers = el.attr("sipHeaders", rules::sip_headers);
    for (given, needs) in [
        ("method", "action"),
        ("callbackMethod", "callbackUrl"),
        ("confirmKey", "confirmSound"),
    ] {
        let has = |key: &str| node.attrs.iter().any(|(k, _)| k == key);
        if has(given) && !has(needs) {
            el.fail(
                ErrorKind::Missing,
                format!("<Dial> attribute {given}"),
                format!("given without {needs}, expected both or only {needs}"),
            );
        }
    }
    el.finish_attributes(DIAL_ATTRIBUTES);
    // Bare text is one Number. Text beside child elements is refused rather than
    // guessed at.
    let text = node.text.trim();
    let mut destinations = Vec::new();
    if !text.is_empty() {
        let subject = format!("<Dial> text {}", show(text));
        if !node.children.is_empty() {
            el.fail(
                ErrorKind::TextNotAllowed,
                subject,
                "not allowed beside <Number>/<User>, expected either one number as text or child elements",
            );
        } else {
            match rules::dial_number(text) {
                Ok(number) => destinations.push(DialDestination {
                    target: DialTarget::Number(number),
                    send_digits: None,
                    send_on_preanswer: false,
                    sip_headers: Vec::new(),
                }),
                Err(expected) => el.fail(ErrorKind::InvalidValue, subject, expected),
            }
        }
    }
    let mut failed = el.failed;
    for child in &node.children {
        match dial_destination(child, problems) {
            Some(d) => destinations.push(d),
            None => failed = true,
        }
    }
    if destinations.is_empty() && !failed {
        failed = true;
        problems.push(problem(
            ErrorKind::Missing,
            node.pos,
            "<Dial>".into(),
            "no destination, expected at least one <Number> or <User>",
        ));
    }
    let dial = Dial {
        destinations,
        action: action_url.map(|url| Redirect {
            url,
            method: method.unwrap_or(HttpMethod::Post),
        }),
        redirect,
        callback: callback_url.map(|url| Redirect {
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
    (!failed).then(|| Instruction::Dial(Box::new(dial)))
}

/// One `<Number>` or `<User>` inside a `<Dial>`.
fn dial_destination(node: &Node, problems: &mut Vec<Problem>) -> Option<DialDestination> {
    let name = node.name.as_str();
    if !DIAL_ELEMENTS.contains(&name) {
        let subject = format!("<{name}> inside <Dial>");
        let (kind, detail) = if TOP_ELEMENTS.contains(&name) || NOT_YET_ELEMENTS.contains(&name) {
            (
                ErrorKind::ForbiddenNesting,
                format!("not allowed, expected {}", one_of(DIAL_ELEMENTS)),
            )
        } else {
            let detail = match rules::case_hint(name, DIAL_ELEMENTS) {
                Some(hint) => {
                    format!("unknown element, did you mean <{hint}>? (names are case-sensitive)")
                }
                None => format!("unknown element, expected {}", one_of(DIAL_ELEMENTS)),
            };
            (ErrorKind::UnknownElement, detail)
        };
        problems.push(problem(kind, node.pos, subject, detail));
        return None;
    }
    let mut el = Element::new(node, problems);
    let send_digits = el.attr("sendDigits", rules::dtmf_digits);
    let send_on_preanswer = el.attr("sendOnPreanswer", rules::boolean).unwrap_or(false);
    if name == "User" {
        let sip_headers = el.attr("sipHeaders", rules::sip_headers);
        el.no_children("only the SIP URI as text");
        let text = el.finish(
            &["sendDigits", "sendOnPreanswer", "sipHeaders"],
            TextRule::Required("the SIP URI to call"),
        );
        let uri = el.text_value(text, rules::sip_user)?;
        return el.ok(DialDestination {
            target: DialTarget::User(uri),
            send_digits,
            send_on_preanswer,
            sip_headers: sip_headers.unwrap_or_default(),
        });
    }
    el.no_children("only the number as text");
    let text = el.finish(
        &["sendDigits", "sendOnPreanswer"],
        TextRule::Required("the number to call"),
    );
    let number = el.text_value(text, rules::dial_number)?;
    el.ok(DialDestination {
        target: DialTarget::Number(number),
        send_digits,
        send_on_preanswer,
        sip_headers: Vec::new(),
    })
}

/// Gather's speech-only attributes (SPEC §12.1): validated, otherwise unused.
const SPEECH_ATTRIBUTES: &[&str] = &[
    "speechEndTimeout",
    "speechModel",
    "hints",
    "language",
    "profanityFilter",
    "interimSpeechResultsCallback",
    "interimSpeechResultsCallbackMethod",
];

fn gather(node: &Node, problems: &mut Vec<Problem>) -> Option<Instruction> {
    let mut el = Element::new(node, problems);
    let action = el.attr("action", rules::document_url);
    if action.is_none() && el.node.attrs.iter().all(|(k, _)| k != "action") {
        el.fail(
            ErrorKind::Missing,
            format!("<{}> attribute action", el.name()),
            "missing, expected the URL that gets the digits",
        );
    }
    let method = el.attr("method", rules::method).unwrap_or(HttpMethod::Post);
    if let Some(rules::InputType::Speech) = el.attr("inputType", rules::input_type) {
        let raw = el.raw("inputType").unwrap_or_default();
        el.fail(
            ErrorKind::NotSupported,
            format!("<{}> attribute inputType={}", el.name(), show(raw)),
            "not supported yet (no speech recognizer), expected dtmf",
        );
    }
    let execution_timeout_secs = el
        .attr("executionTimeout", rules::execution_timeout)
        .unwrap_or(15);
    let digit_end_timeout_secs = el
        .attr("digitEndTimeout", rules::digit_end_timeout)
        .unwrap_or(5);
    let finish_on_key = el
        .attr("finishOnKey", rules::gather_finish_key)
        .unwrap_or(Some('#'));
    let num_digits = el.attr("numDigits", rules::num_digits).unwrap_or(32);
    let redirect = el.attr("redirect", rules::boolean).unwrap_or(true);
    let log = el.attr("log", rules::boolean).unwrap_or(true);
    el.attr("speechEndTimeout", rules::speech_end_timeout);
    el.attr("speechModel", rules::plain_text);
    el.attr("hints", rules::plain_text);
    el.attr("language", rules::language);
    el.attr("profanityFilter", rules::boolean);
    el.attr("interimSpeechResultsCallback", rules::callback_url);
    el.attr("interimSpeechResultsCallbackMethod", rules::method);
    if let (Some(url), false) = (&action, redirect) {
        if rules::callback_url(url).is_err() {
            el.fail(
                ErrorKind::InvalidValue,
                format!("<{}> attribute action={}", el.name(), show(url)),
                "with redirect=\"false\" the action is requested through the outbox: expected an http(s):// URL",
            );
        }
    }
    let mut known = vec![
        "action",
        "method",
        "inputType",
        "executionTimeout",
        "digitEndTimeout",
        "finishOnKey",
        "numDigits",
        "redirect",
        "log",
    ];
    known.extend_from_slice(SPEECH_ATTRIBUTES);
    el.finish(&known, TextRule::None);
    let failed = el.failed;
    let mut prompts = Vec::new();
    let mut child_failed = false;
    for child in &node.children {
        match instruction(child, Context::Gather, problems) {
            Some(i) => prompts.push(i),
            None => child_failed = true,
        }
    }
    if failed || child_failed {
        return None;
    }
    Some(Instruction::Gather(Gather {
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

/// `<Record>` (SPEC §12.2). `action` is optional (no action: no request); with
/// `redirect="false"` (the default) it is requested through the outbox, so it must be an
/// http(s) URL. `transcription*` are "not supported yet".
fn record(node: &Node, problems: &mut Vec<Problem>) -> Option<Instruction> {
    let mut el = Element::new(node, problems);
    let action = el.attr("action", rules::document_url);
    let method = el.attr("method", rules::method).unwrap_or(HttpMethod::Post);
    let redirect = el.attr("redirect", rules::boolean).unwrap_or(false);
    let file_format = el.attr("fileFormat", rules::file_format);
    let timeout_secs = el.attr("timeout", rules::silence_timeout).unwrap_or(60);
    let max_length_secs = el.attr("maxLength", rules::max_length).unwrap_or(60);
    let play_beep = el.attr("playBeep", rules::boolean).unwrap_or(true);
    let finish_on_key = el
        .attr("finishOnKey", rules::record_finish_keys)
        .unwrap_or_else(|| "1234567890*#".to_string());
    let record_session = el.attr("recordSession", rules::boolean).unwrap_or(false);
    let start_on_dial_answer = el
        .attr("startOnDialAnswer", rules::boolean)
        .unwrap_or(false);
    let callback_url = el.attr("callbackUrl", rules::callback_url);
    let callback_method = el.attr("callbackMethod", rules::method);
    for later in [
        "transcriptionType",
        "transcriptionUrl",
        "transcriptionMethod",
    ] {
        el.not_yet(later);
    }
    if let (Some(url), false) = (&action, redirect) {
        if rules::callback_url(url).is_err() {
            el.fail(
                ErrorKind::InvalidValue,
                format!("<{}> attribute action={}", el.name(), show(url)),
                "with redirect=\"false\" the action is requested through the outbox: expected an http(s):// URL",
            );
        }
    }
    if record_session && start_on_dial_answer {
        el.fail(
            ErrorKind::InvalidValue,
            format!("<{}> attribute startOnDialAnswer=\"true\"", el.name()),
            "recordSession=\"true\" already records the whole call from now: choose one",
        );
    }
    el.no_children("no child elements");
    el.finish(
        &[
            "action",
            "method",
            "redirect",
            "fileFormat",
            "timeout",
            "maxLength",
            "playBeep",
            "finishOnKey",
            "recordSession",
            "startOnDialAnswer",
            "callbackUrl",
            "callbackMethod",
            "transcriptionType",
            "transcriptionUrl",
            "transcriptionMethod",
        ],
        TextRule::None,
    );
    if el.failed {
        return None;
    }
    Some(Instruction::Record(Record {
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
