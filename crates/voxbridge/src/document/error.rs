//! Document errors: what was wrong with an answer document, said so an admin can fix it.
//!
//! Every problem names where it is (an XML `line, col` pointing at the element's `<`,
//! or a VoxML `instructions[i]` path), what it is about (element, attribute or field
//! and the value found) and what was expected, e.g.
//! `line 3, col 5: <Hangup> attribute reason="later": expected rejected or busy`.
//! The call engine logs and reports these; `voxbridge check` prints them one per line.

use std::fmt;

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, col {}", self.line, self.col)
    }
}

/// Where in the document a problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// The document as a whole (size, encoding, empty input).
    Document,
    /// A place in the text (XML elements, JSON syntax errors).
    At(Position),
    /// A VoxML path such as `instructions[2]` (JSON values carry no positions).
    Path(String),
}

/// What kind of problem it is; lets callers and tests tell problems apart without
/// matching on message text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// More than [`crate::document::MAX_DOCUMENT_BYTES`].
    TooLarge,
    /// Not UTF-8, or an XML declaration naming another encoding.
    Encoding,
    /// Not well-formed XML or JSON.
    Syntax,
    /// A `<!DOCTYPE>`: rejected so no entity is ever declared or expanded.
    Doctype,
    /// An entity reference other than the five predefined ones or a character reference.
    UndefinedEntity,
    /// No root, a root other than `<Response>`, or a JSON top level that is not an object.
    WrongRoot,
    /// `voxml_version` missing or not `"1.0"`.
    Version,
    UnknownElement,
    UnknownAttribute,
    /// A VoxML `verb` that does not exist.
    UnknownVerb,
    /// A VoxML field that the verb (or the top level) does not have.
    UnknownField,
    /// An attribute or field given twice.
    Duplicate,
    /// A value outside what the attribute or field accepts.
    InvalidValue,
    /// A required value (text, URL, field) is missing or blank.
    Missing,
    /// An element, attribute or verb that voxbridge does not implement yet.
    NotSupported,
    /// An element where it may not be (e.g. `<Hangup>` inside `<PreAnswer>`).
    ForbiddenNesting,
    /// Non-blank text where none is allowed (e.g. `<Hangup>bye</Hangup>`).
    TextNotAllowed,
}

/// One problem in a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub kind: ErrorKind,
    pub location: Location,
    /// What the problem is about, as written in the message:
    /// `<Hangup> attribute reason="later"`, `Hangup field "foo"`, `<Gather>`, or empty.
    pub subject: String,
    /// What is wrong and what was expected: `expected rejected or busy`.
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        match &self.location {
            Location::Document => {}
            Location::At(p) => {
                write!(f, "{p}")?;
                sep = ": ";
            }
            Location::Path(p) => {
                write!(f, "{p}")?;
                sep = ": ";
            }
        }
        if !self.subject.is_empty() {
            write!(f, "{sep}{}", self.subject)?;
            sep = ": ";
        }
        write!(f, "{sep}{}", self.detail)
    }
}

/// Everything found wrong with one document (never empty). The first problem is the
/// first one in document order, so a fix-and-retry loop always starts at the top.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentError {
    problems: Vec<Problem>,
}

/// Collecting stops after this many problems: a document that is wrong everywhere
/// (e.g. the wrong file) should not produce a thousand-line error report.
pub const MAX_PROBLEMS: usize = 20;

impl DocumentError {
    /// A document error with a single problem.
    pub fn single(problem: Problem) -> Self {
        Self {
            problems: vec![problem],
        }
    }

    /// `None` when the list is empty (the document was valid).
    pub fn from_problems(problems: Vec<Problem>) -> Option<Self> {
        if problems.is_empty() {
            None
        } else {
            Some(Self { problems })
        }
    }

    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// The first problem (there is always one).
    pub fn first(&self) -> &Problem {
        // The constructors never build an empty list.
        &self.problems[0]
    }

    /// The kind of the first problem.
    pub fn kind(&self) -> ErrorKind {
        self.first().kind
    }
}

impl fmt::Display for DocumentError {
    /// All problems on one line, separated by `; ` (log-friendly). A single problem
    /// displays exactly as the problem itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DocumentError {}

/// Joins words as `a`, `a or b`, `a, b or c` for "expected …" messages.
pub(crate) fn one_of(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Shows a value inside a message: quoted, and cut short so a huge value cannot
/// flood a log line. Control characters are escaped so the message stays one line.
pub(crate) fn show(value: &str) -> String {
    const MAX_CHARS: usize = 60;
    let mut out = String::with_capacity(value.len().min(MAX_CHARS) + 2);
    out.push('"');
    for (i, c) in value.chars().enumerate() {
        if i == MAX_CHARS {
            out.push('…');
            break;
        }
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_expected_words() {
        assert_eq!(one_of(&["a"]), "a");
        assert_eq!(one_of(&["a", "b"]), "a or b");
        assert_eq!(one_of(&["a", "b", "c"]), "a, b or c");
    }

    #[test]
    fn shows_values_quoted_escaped_and_short() {
        assert_eq!(show("later"), "\"later\"");
        assert_eq!(show("a\"b\nc"), "\"a\\\"b\\nc\"");
        let long = "x".repeat(100);
        assert_eq!(show(&long).chars().count(), 60 + 3);
    }

    #[test]
    fn display_formats_each_location() {
        let p = Problem {
            kind: ErrorKind::InvalidValue,
            location: Location::At(Position { line: 3, col: 5 }),
            subject: "<Hangup> attribute reason=\"later\"".into(),
            detail: "expected rejected or busy".into(),
        };
        assert_eq!(
            p.to_string(),
            "line 3, col 5: <Hangup> attribute reason=\"later\": expected rejected or busy"
        );
        let d = Problem {
            kind: ErrorKind::TooLarge,
            location: Location::Document,
            subject: String::new(),
            detail: "too large".into(),
        };
        assert_eq!(d.to_string(), "too large");
        let e = DocumentError::from_problems(vec![p.clone(), d]).unwrap();
        assert!(e.to_string().ends_with("; too large"));
        assert_eq!(DocumentError::single(p.clone()).to_string(), p.to_string());
    }
}
