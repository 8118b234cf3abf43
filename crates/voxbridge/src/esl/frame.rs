//! ESL framing, both directions: a header block ended by a blank line, then exactly
//! `Content-Length` bytes of body.
//!
//! This layer knows nothing about what frames mean. It keeps headers in wire order,
//! duplicates included, with raw (not URL-decoded) values, because the switch's header
//! order is part of what the simulator must reproduce and because only some frames
//! (the `connect` reply, plain event bodies) are URL-encoded at all.
//!
//! Limits follow `reference/freeswitch-esl.md` §1.1: a body over 16 MiB or an unbounded
//! header block is a connection error — the caller closes that one connection.

use bytes::{Buf, Bytes, BytesMut};
use std::fmt;

/// Largest body the switch itself accepts (`MAX_CONTENT_LENGTH`).
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// Largest header block we accept. A `connect` reply is ~6–8 KiB; anything near this
/// bound is not FreeSWITCH.
pub const MAX_HEADER_BLOCK: usize = 1024 * 1024;
/// Most the decoder reserves ahead of bytes it has not received yet.
const RESERVE_STEP: usize = 64 * 1024;

/// Ordered header list. Lookups are case-insensitive and the first match wins, as in
/// `switch_event_get_header`.
///
/// Stored compactly: every name and value lives in one `String`, with a small span per
/// header. A FreeSWITCH event carries ~150 headers; one allocation per header pair would
/// cost ~300 allocations per event, on the hot path of every call.
#[derive(Clone, Default)]
pub struct Headers {
    text: String,
    spans: Vec<Span>,
}

/// One header inside [`Headers::text`]: the name starts at `start`, the value follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u32,
    name_len: u32,
    value_len: u32,
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for about `headers` headers totalling `text_bytes` bytes.
    pub fn with_capacity(headers: usize, text_bytes: usize) -> Self {
        Self {
            text: String::with_capacity(text_bytes),
            spans: Vec::with_capacity(headers),
        }
    }

    pub fn push(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        let (name, value) = (name.as_ref(), value.as_ref());
        let start = self.text.len();
        self.text.push_str(name);
        self.text.push_str(value);
        self.spans.push(Span {
            start: start as u32,
            name_len: name.len() as u32,
            value_len: value.len() as u32,
        });
    }

    /// Appends a header whose value is written by `write` straight into the shared
    /// buffer (used by decoders, to avoid a temporary `String` per value).
    pub fn push_with(&mut self, name: &str, write: impl FnOnce(&mut String)) {
        let start = self.text.len();
        self.text.push_str(name);
        let value_start = self.text.len();
        write(&mut self.text);
        self.spans.push(Span {
            start: start as u32,
            name_len: name.len() as u32,
            value_len: (self.text.len() - value_start) as u32,
        });
    }

    fn pair(&self, s: &Span) -> (&str, &str) {
        let start = s.start as usize;
        let mid = start + s.name_len as usize;
        let end = mid + s.value_len as usize;
        // Spans are only ever built from whole `&str`s pushed at char boundaries.
        (&self.text[start..mid], &self.text[mid..end])
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every value of `name`, in wire order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.spans.iter().map(|s| self.pair(s))
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Frees spare capacity (for headers kept for a long time, such as channel data).
    pub fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.spans.shrink_to_fit();
    }

    /// The first header's name (the connect reply is recognised by `Event-Name` there).
    pub fn first_name(&self) -> Option<&str> {
        self.spans.first().map(|s| self.pair(s).0)
    }

    /// Header names in wire order (what the simulator's fidelity tests compare).
    pub fn names(&self) -> Vec<&str> {
        self.iter().map(|(n, _)| n).collect()
    }

    /// A copy with every value passed through `f` (used to URL-decode).
    pub fn map_values(&self, f: impl Fn(&str) -> String) -> Headers {
        let mut out = Headers::with_capacity(self.len(), self.text.len());
        for (n, v) in self.iter() {
            out.push(n, f(v));
        }
        out
    }
}

/// Builds [`Headers`] from URL-encoded `Name: value` pairs, decoding each value as it
/// is copied, byte by byte, into the one buffer; the whole text is checked for UTF-8
/// once at the end ([`DecodedHeaders::finish`]).
///
/// This is the hot path of every event (issue 16): checking each run of escapes for
/// UTF-8 as it is decoded, as [`crate::esl::urlcode::decode_into`] must, cost more than
/// the decoding. Text that does not come out as UTF-8 (the switch never sends such) is
/// left to the careful decoder, which replaces bad bytes the same way everywhere.
pub(crate) struct DecodedHeaders {
    text: Vec<u8>,
    spans: Vec<Span>,
}

impl DecodedHeaders {
    pub(crate) fn with_capacity(headers: usize, text_bytes: usize) -> Self {
        Self {
            text: Vec::with_capacity(text_bytes),
            spans: Vec::with_capacity(headers),
        }
    }

    /// Appends `name` as it is and `value` URL-decoded.
    pub(crate) fn push_decoded(&mut self, name: &[u8], value: &[u8]) {
        self.push_value(name, value, true);
    }

    /// Appends `name` as it is and `value` URL-decoded if it may hold an escape
    /// (`escaped`), else copied.
    pub(crate) fn push_value(&mut self, name: &[u8], value: &[u8], escaped: bool) {
        let start = self.text.len();
        self.text.extend_from_slice(name);
        let value_start = self.text.len();
        if escaped {
            crate::esl::urlcode::decode_bytes_into(value, &mut self.text);
        } else {
            self.text.extend_from_slice(value);
        }
        self.spans.push(Span {
            start: start as u32,
            name_len: name.len() as u32,
            value_len: (self.text.len() - value_start) as u32,
        });
    }

    /// The headers, if the decoded text is UTF-8. Every span then starts and ends on a
    /// character boundary (checked all the same: a slice off one would panic): a name
    /// is UTF-8 on its own (a line's bytes up to its first `:`, from a block already
    /// checked), so a value ending inside a character would leave the next name, or
    /// the end of the text, to continue it — and the text would not be UTF-8.
    pub(crate) fn finish(self) -> Option<Headers> {
        let text = String::from_utf8(self.text).ok()?;
        let ok = self.spans.iter().all(|s| {
            let start = s.start as usize;
            let mid = start + s.name_len as usize;
            text.is_char_boundary(mid) && text.is_char_boundary(mid + s.value_len as usize)
        });
        ok.then_some(Headers {
            text,
            spans: self.spans,
        })
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl FromIterator<(String, String)> for Headers {
    fn from_iter<T: IntoIterator<Item = (String, String)>>(iter: T) -> Self {
        let mut h = Headers::new();
        for (n, v) in iter {
            h.push(n, v);
        }
        h
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for Headers {
    fn from_iter<T: IntoIterator<Item = (&'a str, &'a str)>>(iter: T) -> Self {
        let mut h = Headers::new();
        for (n, v) in iter {
            h.push(n, v);
        }
        h
    }
}

/// One ESL frame: headers plus an optional body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    pub headers: Headers,
    pub body: Option<Bytes>,
}

impl Frame {
    /// `Content-Type`, the frame's kind on the switch→client side.
    pub fn content_type(&self) -> Option<&str> {
        self.headers.get("Content-Type")
    }

    /// Writes the frame as it goes on the wire: each header `Name: value\n` in order,
    /// a blank line, then the body. `Content-Length` must already be among the headers
    /// when there is a body (the switch puts it in different places per frame type, so
    /// the caller chooses). Used by the simulator.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        for (n, v) in self.headers.iter() {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        if let Some(body) = &self.body {
            out.extend_from_slice(body);
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

/// Why a byte stream is not ESL. Every variant ends that connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("header block exceeds {limit} bytes")]
    HeaderBlockTooLarge { limit: usize },
    #[error("Content-Length {value:?} is not a number from 0 to {limit}")]
    BadContentLength { value: String, limit: usize },
}

/// Incremental decoder: feed it a buffer as bytes arrive; it takes whole frames off the
/// front and leaves partial ones for the next read. It never panics on any input.
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    max_header_block: usize,
    max_body: usize,
    /// Where the search for the end of the header block resumes, so a frame that
    /// arrives in many small reads is not rescanned from the start each time.
    scanned: usize,
    /// A parsed header block whose body has not fully arrived yet, so a large body that
    /// comes in many reads does not have its headers parsed again on every read.
    head: Option<Head>,
}

/// A parsed header block and where its frame ends.
#[derive(Clone, Debug)]
struct Head {
    headers: Headers,
    has_length: bool,
    block_len: usize,
    sep_len: usize,
    body_len: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(MAX_HEADER_BLOCK, MAX_BODY)
    }
}

impl FrameDecoder {
    pub fn new(max_header_block: usize, max_body: usize) -> Self {
        Self {
            max_header_block,
            max_body,
            scanned: 0,
            head: None,
        }
    }

    /// Takes one whole frame off the front of `buf`, `Ok(None)` if more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let head = match self.head.take() {
            Some(head) => head,
            None => match self.decode_head(buf)? {
                Some(head) => head,
                None => return Ok(None),
            },
        };
        let total = head.block_len + head.sep_len + head.body_len;
        if buf.len() < total {
            // Grow toward the announced size, but never commit memory to a length the
            // peer has only claimed: a lying `Content-Length: 16000000` costs us nothing
            // until the bytes actually arrive.
            buf.reserve((total - buf.len()).min(RESERVE_STEP));
            self.head = Some(head);
            return Ok(None);
        }
        let mut frame_bytes = buf.split_to(total);
        self.scanned = 0;
        let body = if head.has_length {
            frame_bytes.advance(head.block_len + head.sep_len);
            Some(frame_bytes.freeze())
        } else {
            None
        };
        Ok(Some(Frame {
            headers: head.headers,
            body,
        }))
    }

    /// Finds and parses the next header block, `Ok(None)` if it is not complete yet.
    fn decode_head(&mut self, buf: &mut BytesMut) -> Result<Option<Head>, FrameError> {
        // Blank lines between frames are harmless (the switch skips them too).
        let skip = buf
            .iter()
            .take_while(|b| **b == b'\n' || **b == b'\r')
            .count();
        if skip > 0 {
            buf.advance(skip);
            self.scanned = self.scanned.saturating_sub(skip);
        }
        let Some((block_len, sep_len)) = self.find_block_end(buf) else {
            if buf.len() > self.max_header_block {
                return Err(FrameError::HeaderBlockTooLarge {
                    limit: self.max_header_block,
                });
            }
            return Ok(None);
        };
        if block_len > self.max_header_block {
            return Err(FrameError::HeaderBlockTooLarge {
                limit: self.max_header_block,
            });
        }
        let headers = parse_header_block(&buf[..block_len]);
        let length = headers.get("Content-Length");
        let body_len = match length {
            None => 0,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n <= self.max_body => n,
                _ => {
                    return Err(FrameError::BadContentLength {
                        value: v.to_string(),
                        limit: self.max_body,
                    })
                }
            },
        };
        Ok(Some(Head {
            has_length: length.is_some(),
            headers,
            block_len,
            sep_len,
            body_len,
        }))
    }

    /// Finds the blank line ending the header block: `\n\n`, or `\n\r\n`
    /// (a `\r` before a `\n` does not count as content). Returns (block length,
    /// separator length).
    fn find_block_end(&mut self, buf: &[u8]) -> Option<(usize, usize)> {
        let start = self.scanned.saturating_sub(2).min(buf.len());
        let found =
            memchr::memchr_iter(b'\n', &buf[start..]).find_map(|i| blank_line_at(buf, start + i));
        if found.is_none() {
            self.scanned = buf.len();
        }
        found
    }
}

/// If the `\n` at `i` starts a blank line (`\n` or `\r\n` follows), the length of the
/// block before it (`i + 1`) and of the separator.
pub(crate) fn blank_line_at(b: &[u8], i: usize) -> Option<(usize, usize)> {
    match (b.get(i + 1), b.get(i + 2)) {
        (Some(b'\n'), _) => Some((i + 1, 1)),
        (Some(b'\r'), Some(b'\n')) => Some((i + 1, 2)),
        _ => None,
    }
}

/// Splits a header block into `Name: value` pairs at the first `:`, dropping one space
/// after it and a trailing `\r`. A line without `:` is ignored, as the switch does.
fn parse_header_block(block: &[u8]) -> Headers {
    let mut headers = Headers::with_capacity(8, block.len());
    // Non-UTF-8 bytes are replaced, not fatal: `Reply-Text` is raw (a `getvar` of a
    // Latin-1 variable), and one odd byte must not cost a live call its connection. The
    // block is checked once (the connect reply's is ~150 lines), and lines and colons are
    // found with memchr; both are ASCII, so the slices stay on character boundaries.
    // `from_utf8` first: its ASCII fast path is several times quicker than the lossy
    // conversion's scan, which is only needed when a byte is bad.
    let text = match std::str::from_utf8(block) {
        Ok(t) => std::borrow::Cow::Borrowed(t),
        Err(_) => String::from_utf8_lossy(block),
    };
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
        let line = &text[start..end];
        start = end + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(colon) = memchr::memchr(b':', line.as_bytes()) {
            let value = &line[colon + 1..];
            let value = value.strip_prefix(' ').unwrap_or(value);
            headers.push(line[..colon].trim(), value);
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Result<Vec<Frame>, FrameError> {
        let mut dec = FrameDecoder::default();
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(f) = dec.decode(&mut buf)? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn splits_at_first_colon_and_keeps_duplicates() {
        let f = decode_all(
            b"Content-Type: command/reply\nReply-Text: +OK Job-UUID: 7f4d-1\nJob-UUID: 7f4d-1\nJob-UUID: again\n\n",
        )
        .unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].headers.get("reply-text"), Some("+OK Job-UUID: 7f4d-1"));
        assert_eq!(f[0].headers.get_all("Job-UUID").count(), 2);
        assert_eq!(f[0].body, None);
    }

    #[test]
    fn body_by_content_length_and_byte_at_a_time() {
        let wire =
            b"Content-Type: api/response\nContent-Length: 5\n\nfalseContent-Type: auth/request\n\n";
        let mut dec = FrameDecoder::default();
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for b in wire.iter() {
            buf.extend_from_slice(&[*b]);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].body.as_deref(), Some(&b"false"[..]));
        assert_eq!(frames[1].content_type(), Some("auth/request"));
    }

    #[test]
    fn every_split_of_a_stream_gives_the_same_frames() {
        // LF and CRLF blocks, a `\r` right before the blank line, a body holding blank
        // lines: cut at every position (the scan resumes where the last read stopped).
        let wire: &[u8] = b"Content-Type: auth/request\r\n\r\n\
            Content-Type: text/event-plain\nContent-Length: 12\n\nA: 1\n\nB: 2\n\n\
            Content-Type: command/reply\r\nReply-Text: +OK\n\r\n\
            Content-Type: api/response\nContent-Length: 0\n\n";
        let whole = decode_all(wire).unwrap();
        assert_eq!(whole.len(), 4);
        assert_eq!(whole[1].body.as_deref(), Some(&b"A: 1\n\nB: 2\n\n"[..]));
        assert_eq!(whole[2].headers.get("Reply-Text"), Some("+OK"));
        for cut in 1..wire.len() {
            let mut dec = FrameDecoder::default();
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut got = Vec::new();
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                got.push(f);
            }
            buf.extend_from_slice(&wire[cut..]);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                got.push(f);
            }
            assert_eq!(got, whole, "cut at {cut}");
        }
    }

    #[test]
    fn a_non_utf8_byte_is_replaced_and_the_rest_kept() {
        let f =
            decode_all(b"Content-Type: api/response\nReply-Text: caf\xe9 ok\nX: y\n\n").unwrap();
        assert_eq!(f[0].headers.get("Reply-Text"), Some("caf\u{fffd} ok"));
        assert_eq!(f[0].headers.get("X"), Some("y"));
        assert_eq!(f[0].content_type(), Some("api/response"));
    }

    #[test]
    fn crlf_blocks_work() {
        let f = decode_all(b"Content-Type: auth/request\r\n\r\n").unwrap();
        assert_eq!(f[0].content_type(), Some("auth/request"));
    }

    #[test]
    fn limits_are_errors() {
        assert!(matches!(
            decode_all(b"Content-Length: 99999999999\n\n"),
            Err(FrameError::BadContentLength { .. })
        ));
        assert!(matches!(
            decode_all(b"Content-Length: -1\n\n"),
            Err(FrameError::BadContentLength { .. })
        ));
        let mut dec = FrameDecoder::new(64, 1024);
        let mut buf = BytesMut::from(&[b'a'; 100][..]);
        assert!(matches!(
            dec.decode(&mut buf),
            Err(FrameError::HeaderBlockTooLarge { .. })
        ));
    }

    #[test]
    fn encode_round_trips() {
        let mut h = Headers::new();
        h.push("Content-Length", "3");
        h.push("Content-Type", "text/event-plain");
        let f = Frame {
            headers: h,
            body: Some(Bytes::from_static(b"abc")),
        };
        let back = decode_all(&f.to_bytes()).unwrap();
        assert_eq!(back, vec![f]);
    }
}
