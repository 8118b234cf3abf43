//! Answer documents: Answer XML and VoxML JSON into one instruction model.
//!
//! [`parse`] is the one entry point the server, `voxbridge check` and the fuzz target
//! share, so whatever `check` accepts the server executes, and vice versa. The
//! dialect is decided by the caller (from the response `Content-Type`, or for files
//! by [`Dialect::for_file`]); the resulting [`AnswerDocument`] does not say which it was.

pub mod error;
pub mod model;
pub mod plan;
mod rules;
mod voxml;
mod xml;

use std::path::Path;

pub use error::{DocumentError, ErrorKind, Location, Position, Problem};
pub use model::AnswerDocument;

/// Largest document accepted, in bytes (SPEC §3: 100 KiB, as Vobiz).
pub const MAX_DOCUMENT_BYTES: usize = 100 * 1024;

/// Most documents one call may fetch (the first, redirects, post-call documents):
/// a guard against redirect loops. Counted by the call engine.
pub const MAX_FETCHES_PER_CALL: u32 = 100;

/// The two document languages (SPEC §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Vobiz/Plivo Answer XML, root `<Response>`.
    Xml,
    /// TryVox VoxML JSON, `{"voxml_version":"1.0","instructions":[…]}`.
    VoxMl,
}

impl Dialect {
    /// The name admins know the dialect by, for logs and `check` output.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Xml => "Answer XML",
            Dialect::VoxMl => "VoxML",
        }
    }

    /// The dialect a response `Content-Type` announces: `text/xml` and
    /// `application/xml` are XML, `application/json` is VoxML, parameters such as
    /// `charset` are ignored (the document must be UTF-8 either way). `None` for any
    /// other type: the fetcher reports it by name.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case("text/xml")
            || essence.eq_ignore_ascii_case("application/xml")
        {
            Some(Dialect::Xml)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Some(Dialect::VoxMl)
        } else {
            None
        }
    }

    /// The dialect of content without a type: `<` first is XML, `{` first is VoxML,
    /// after any BOM and whitespace.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'<') => Some(Dialect::Xml),
            Some(b'{') => Some(Dialect::VoxMl),
            _ => None,
        }
    }

    /// The dialect of a document on disk: by extension (`.xml`, `.json`), else by
    /// its first non-blank byte.
    pub fn for_file(path: &Path, bytes: &[u8]) -> Option<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        if ext.eq_ignore_ascii_case("xml") {
            Some(Dialect::Xml)
        } else if ext.eq_ignore_ascii_case("json") {
            Some(Dialect::VoxMl)
        } else {
            Self::sniff(bytes)
        }
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Parses and validates a document of the given dialect.
///
/// Never panics, whatever the bytes: bad input is a [`DocumentError`] naming what
/// was wrong and where. Checks, in order: size, UTF-8, then the dialect's syntax and
/// rules (SPEC §3, §4 rule 9).
pub fn parse(bytes: &[u8], dialect: Dialect) -> Result<AnswerDocument, DocumentError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(DocumentError::single(Problem {
            kind: ErrorKind::TooLarge,
            location: Location::Document,
            subject: String::new(),
            detail: format!(
                "the document is {} bytes, expected at most {MAX_DOCUMENT_BYTES} (100 KiB)",
                bytes.len()
            ),
        }));
    }
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| not_utf8(bytes, e))?;
    if text.trim().is_empty() {
        return Err(DocumentError::single(Problem {
            kind: ErrorKind::WrongRoot,
            location: Location::Document,
            subject: String::new(),
            detail: match dialect {
                Dialect::Xml => "the document is empty, expected <Response>".into(),
                Dialect::VoxMl => {
                    "the document is empty, expected {\"voxml_version\":\"1.0\",\"instructions\":[…]}".into()
                }
            },
        }));
    }
    match dialect {
        Dialect::Xml => xml::parse(text),
        Dialect::VoxMl => voxml::parse(text),
    }
}

/// Names the line and column of the first byte that is not UTF-8.
fn not_utf8(bytes: &[u8], e: std::str::Utf8Error) -> DocumentError {
    let good = &bytes[..e.valid_up_to()];
    // The prefix is valid UTF-8 by definition of valid_up_to.
    let prefix = std::str::from_utf8(good).unwrap_or_default();
    let line = prefix.matches('\n').count() + 1;
    let col = prefix
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    DocumentError::single(Problem {
        kind: ErrorKind::Encoding,
        location: Location::At(Position {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            col: u32::try_from(col).unwrap_or(u32::MAX),
        }),
        subject: String::new(),
        detail: "invalid UTF-8, expected a UTF-8 document".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(Dialect::from_content_type("text/xml"), Some(Dialect::Xml));
        assert_eq!(
            Dialect::from_content_type("application/xml; charset=utf-8"),
            Some(Dialect::Xml)
        );
        assert_eq!(
            Dialect::from_content_type("Application/JSON"),
            Some(Dialect::VoxMl)
        );
        assert_eq!(Dialect::from_content_type("text/html"), None);
        assert_eq!(Dialect::from_content_type(""), None);
    }

    #[test]
    fn sniffing_and_extensions() {
        assert_eq!(
            Dialect::sniff(b"\xEF\xBB\xBF \n<Response/>"),
            Some(Dialect::Xml)
        );
        assert_eq!(Dialect::sniff(b"  {}"), Some(Dialect::VoxMl));
        assert_eq!(Dialect::sniff(b"hello"), None);
        assert_eq!(Dialect::sniff(b""), None);
        assert_eq!(
            Dialect::for_file(Path::new("a.XML"), b"{"),
            Some(Dialect::Xml)
        );
        assert_eq!(
            Dialect::for_file(Path::new("a.json"), b"<"),
            Some(Dialect::VoxMl)
        );
        assert_eq!(
            Dialect::for_file(Path::new("a.txt"), b"<"),
            Some(Dialect::Xml)
        );
    }

    #[test]
    fn size_and_encoding_are_checked_first() {
        let big = vec![b' '; MAX_DOCUMENT_BYTES + 1];
        let e = parse(&big, Dialect::Xml).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        assert_eq!(
            e.to_string(),
            "the document is 102401 bytes, expected at most 102400 (100 KiB)"
        );
        let e = parse(
            b"<Response>\n  <Speak>\xff</Speak></Response>",
            Dialect::Xml,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2, col 10: invalid UTF-8, expected a UTF-8 document"
        );
    }
}
