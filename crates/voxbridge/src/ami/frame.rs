//! AMI messages on the wire: `Key: Value` lines ending with `\r\n` (a bare `\n` is
//! tolerated), one message per block, a blank line ending it. The connection opens with a
//! banner line (`Asterisk Call Manager/9.0.0`) that is not a message.
//!
//! Limits (the decoder never buffers more than them, whatever the peer sends): a line of
//! [`MAX_LINE`] bytes, a message of [`MAX_FIELDS`] lines. Going beyond either, or a line
//! that is not `Key: Value`, is a [`FrameError`]: the caller closes that connection.
//! Bytes that are not UTF-8 are kept lossily, never a failure.

use bytes::{Buf, BytesMut};

/// The longest line accepted, line end excluded. Asterisk's own manager lines are far
/// shorter; a `Command` action's `Output:` lines are one line of CLI output each.
pub const MAX_LINE: usize = 8 * 1024;

/// The most lines in one message (a `Command` reply has one `Output:` per CLI line).
pub const MAX_FIELDS: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("AMI line longer than {limit} bytes")]
    LineTooLong { limit: usize },
    #[error("AMI message of more than {limit} lines")]
    TooManyFields { limit: usize },
    #[error("AMI line is not `Key: Value`: {0:?}")]
    NotAField(String),
}

/// One AMI message: its fields in order (a key may repeat, e.g. `Output`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    fields: Vec<(String, String)>,
}

/// What a message is, by its first field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind<'a> {
    /// `Response: Success|Error|Goodbye|…` to an action.
    Response(&'a str),
    /// `Event: <name>`.
    Event(&'a str),
    /// Neither (not expected from Asterisk; ignored by the client).
    Other,
}

impl Message {
    pub fn new(fields: Vec<(String, String)>) -> Self {
        Self { fields }
    }

    /// The first value of `key` (keys compare case-insensitively, as Asterisk does).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order (`Output` lines of a `Command` reply).
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    pub fn kind(&self) -> Kind<'_> {
        match self.fields.first() {
            Some((k, v)) if k.eq_ignore_ascii_case("Response") => Kind::Response(v),
            Some((k, v)) if k.eq_ignore_ascii_case("Event") => Kind::Event(v),
            _ => Kind::Other,
        }
    }

    /// The event's name, if this is an event.
    pub fn event(&self) -> Option<&str> {
        match self.kind() {
            Kind::Event(name) => Some(name),
            _ => None,
        }
    }

    pub fn action_id(&self) -> Option<&str> {
        self.get("ActionID")
    }

    /// A `Response: Success` (or `Goodbye`, the answer to `Logoff`).
    pub fn is_success(&self) -> bool {
        matches!(self.kind(), Kind::Response(r) if r.eq_ignore_ascii_case("Success") || r.eq_ignore_ascii_case("Goodbye"))
    }

    /// The `Message:` text (why an action failed).
    pub fn text(&self) -> &str {
        self.get("Message").unwrap_or_default()
    }
}

/// Splits a byte stream into the banner line and then messages.
#[derive(Debug, Default)]
pub struct Decoder {
    banner_seen: bool,
    /// Bytes already searched for `\n` (a slow line is scanned once).
    scanned: usize,
    /// The message being read.
    fields: Vec<(String, String)>,
}

/// What the decoder found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The first line of the connection (`Asterisk Call Manager/9.0.0`).
    Banner(String),
    Message(Message),
}

impl Decoder {
    /// The next banner or complete message in `buf` (consumed); `Ok(None)` when more
    /// bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        while let Some(line) = self.line(buf)? {
            if !self.banner_seen {
                self.banner_seen = true;
                return Ok(Some(Frame::Banner(line)));
            }
            if line.is_empty() {
                if self.fields.is_empty() {
                    continue; // blank lines between messages
                }
                return Ok(Some(Frame::Message(Message::new(std::mem::take(
                    &mut self.fields,
                )))));
            }
            if self.fields.len() >= MAX_FIELDS {
                return Err(FrameError::TooManyFields { limit: MAX_FIELDS });
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err(FrameError::NotAField(line.chars().take(80).collect()));
            };
            if key.is_empty() || key.contains(' ') {
                return Err(FrameError::NotAField(line.chars().take(80).collect()));
            }
            let value = value.strip_prefix(' ').unwrap_or(value);
            self.fields.push((key.to_string(), value.to_string()));
        }
        Ok(None)
    }

    fn line(&mut self, buf: &mut BytesMut) -> Result<Option<String>, FrameError> {
        match buf[self.scanned..].iter().position(|b| *b == b'\n') {
            Some(at) => {
                let end = self.scanned + at;
                self.scanned = 0;
                let mut len = end;
                if len > 0 && buf[len - 1] == b'\r' {
                    len -= 1;
                }
                if len > MAX_LINE {
                    return Err(FrameError::LineTooLong { limit: MAX_LINE });
                }
                let line = String::from_utf8_lossy(&buf[..len]).into_owned();
                buf.advance(end + 1);
                Ok(Some(line))
            }
            None => {
                if buf.len() > MAX_LINE + 1 {
                    return Err(FrameError::LineTooLong { limit: MAX_LINE });
                }
                self.scanned = buf.len();
                Ok(None)
            }
        }
    }
}

/// An action to send: `Action: <name>`, its fields, and the `ActionID` the client adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    name: String,
    fields: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "AMI action field {0:?}: names are letters, digits, '-' and '_'; values have no line breaks"
)]
pub struct ActionError(pub String);

impl Action {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            fields: Vec::new(),
        }
    }

    /// Adds `key: value`. A value with a line break (which would start a second field or
    /// end the action early: an injection) or a strange key is refused.
    pub fn field(mut self, key: &str, value: &str) -> Result<Self, ActionError> {
        let key_ok = !key.is_empty()
            && key.bytes().all(|b| {
                b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'(' || b == b')'
            });
        if !key_ok || value.contains(['\r', '\n']) || value.len() > MAX_LINE / 2 {
            return Err(ActionError(key.chars().take(40).collect()));
        }
        self.fields.push((key.to_string(), value.to_string()));
        Ok(self)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The wire form with `ActionID: <id>`, ending with the blank line.
    pub fn encode(&self, action_id: &str) -> String {
        let mut out = format!("Action: {}\r\nActionID: {action_id}\r\n", self.name);
        for (k, v) in &self.fields {
            out.push_str(k);
            out.push_str(": ");
            out.push_str(v);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(d: &mut Decoder, bytes: &[u8]) -> Result<Vec<Frame>, FrameError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(f) = d.decode(&mut buf)? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn banner_then_messages_with_repeated_output_lines() {
        let wire = "Asterisk Call Manager/9.0.0\r\nResponse: Success\r\nActionID: 4\r\nMessage: Command output follows\r\nOutput: line one\r\nOutput: line: two\r\n\r\nEvent: DTMFEnd\r\nDigit: #\r\nDirection: Received\r\n\r\n";
        let frames = decode_all(&mut Decoder::default(), wire.as_bytes()).unwrap();
        assert_eq!(
            frames[0],
            Frame::Banner("Asterisk Call Manager/9.0.0".into())
        );
        let Frame::Message(reply) = &frames[1] else {
            panic!("{frames:?}")
        };
        assert!(reply.is_success());
        assert_eq!(reply.action_id(), Some("4"));
        assert_eq!(
            reply.all("output").collect::<Vec<_>>(),
            ["line one", "line: two"]
        );
        let Frame::Message(event) = &frames[2] else {
            panic!("{frames:?}")
        };
        assert_eq!(event.event(), Some("DTMFEnd"));
        assert_eq!(event.get("digit"), Some("#"));
        assert_eq!(frames.len(), 3);
    }

    #[test]
    fn split_reads_at_every_byte_give_the_same_messages() {
        let wire = b"Asterisk Call Manager/9.0.0\r\nEvent: DialEnd\r\nDialStatus: ANSWER\r\n\r\nResponse: Error\r\nActionID: 7\r\nMessage: No such channel\r\n\r\n";
        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in wire {
            buf.extend_from_slice(&[*b]);
            while let Some(f) = d.decode(&mut buf).unwrap() {
                out.push(f);
            }
        }
        assert_eq!(out, decode_all(&mut Decoder::default(), wire).unwrap());
        assert_eq!(out.len(), 3);
        let Frame::Message(err) = &out[2] else {
            panic!()
        };
        assert!(!err.is_success());
        assert_eq!(err.text(), "No such channel");
    }

    #[test]
    fn a_huge_line_is_an_error_without_buffering_it_all() {
        let mut d = Decoder::default();
        let mut buf = BytesMut::from(&b"Asterisk Call Manager/9.0.0\r\nEvent: x\r\nData: "[..]);
        assert!(matches!(d.decode(&mut buf), Ok(Some(Frame::Banner(_)))));
        assert_eq!(d.decode(&mut buf), Ok(None));
        buf.extend_from_slice(&vec![b'a'; MAX_LINE + 10]);
        assert_eq!(
            d.decode(&mut buf),
            Err(FrameError::LineTooLong { limit: MAX_LINE })
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut d = Decoder::default();
        let r = decode_all(&mut d, b"\xff\xfe banner\r\nthis is not a field\r\n\r\n");
        assert!(matches!(r, Err(FrameError::NotAField(_))), "{r:?}");
        let r = decode_all(&mut Decoder::default(), b"b\n: no key\n\n");
        assert!(matches!(r, Err(FrameError::NotAField(_))), "{r:?}");
        let many = format!("b\r\n{}", "K: v\r\n".repeat(MAX_FIELDS + 1));
        let r = decode_all(&mut Decoder::default(), many.as_bytes());
        assert_eq!(r, Err(FrameError::TooManyFields { limit: MAX_FIELDS }));
        // Bare \n endings and non-UTF-8 values are accepted.
        let ok = decode_all(&mut Decoder::default(), b"b\nEvent: X\nName: caf\xe9\n\n").unwrap();
        let Frame::Message(m) = &ok[1] else { panic!() };
        assert_eq!(m.get("Name"), Some("caf\u{fffd}"));
    }

    #[test]
    fn actions_refuse_line_breaks_so_nothing_can_be_injected() {
        let a = Action::new("StopMixMonitor")
            .field("Channel", "SIP/self-00000001")
            .unwrap();
        assert_eq!(
            a.encode("9"),
            "Action: StopMixMonitor\r\nActionID: 9\r\nChannel: SIP/self-00000001\r\n\r\n"
        );
        assert!(Action::new("X")
            .field("Channel", "a\r\nAction: Hangup")
            .is_err());
        assert!(Action::new("X").field("Bad Key", "v").is_err());
        assert!(Action::new("X").field("", "v").is_err());
    }
}
