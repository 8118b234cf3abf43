//! What the switch sends, decoded into typed messages: events (plain and JSON), command
//! replies, API responses, the `connect` reply (channel data), disconnect notices, and
//! the rest of `reference/freeswitch-esl.md` §1.2.
//!
//! Decoding never fails as a whole: a frame that cannot be understood becomes
//! [`Message::Unexpected`], which the connection logs and skips. Only framing errors
//! (see [`crate::esl::frame`]) end a connection, because only they lose the byte stream.
//!
//! Plain and JSON events decode to the same [`Event`]: values URL-decoded (plain) or
//! unescaped (JSON), headers in wire order with duplicates kept (CHANNEL_HANGUP_COMPLETE
//! carries `Hangup-Cause` twice), the inner `Content-Length` dropped and the inner body in
//! [`Event::body`]. JSON array values (e.g. `variable_DP_MATCH: ["7000","7000"]`) become the
//! switch's own plain form `ARRAY::7000|:7000`, so a driver sees the same value whichever
//! format it subscribed with.
//!
//! The serializers at the end ([`serialize_plain`], [`plain_event_frame`],
//! [`json_event_frame`], [`connect_reply_frame`]) produce the switch's exact bytes; the
//! simulator uses them and the property tests round-trip through them.

use crate::cause::HangupCause;
use crate::esl::frame::{DecodedHeaders, Frame, Headers};
use crate::esl::urlcode;
use bytes::Bytes;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// The switch's event serialization formats we speak (`event plain|json …`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EventFormat {
    #[default]
    Plain,
    Json,
}

impl EventFormat {
    /// The word used in `event <fmt>` and `myevents <fmt>`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventFormat::Plain => "plain",
            EventFormat::Json => "json",
        }
    }

    /// The `Content-Type` of an event frame in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            EventFormat::Plain => "text/event-plain",
            EventFormat::Json => "text/event-json",
        }
    }
}

/// One switch event with decoded values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    headers: Headers,
    body: Option<String>,
    format: EventFormat,
}

impl Event {
    /// An event from already-decoded headers (tests, the simulator).
    pub fn new(headers: Headers, body: Option<String>, format: EventFormat) -> Self {
        Self {
            headers,
            body,
            format,
        }
    }

    /// `Event-Name` (e.g. `CHANNEL_EXECUTE_COMPLETE`); empty only for events built by hand
    /// and for [`Message::Diverted`] ones.
    pub fn name(&self) -> &str {
        self.headers.get("Event-Name").unwrap_or("")
    }

    /// `true` when this is the event `name` (exact, as the switch spells names).
    pub fn is(&self, name: &str) -> bool {
        self.name() == name
    }

    /// The first value of a header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// Every header in wire order, duplicates included.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The event's own body (BACKGROUND_JOB output, an XML CDR…).
    pub fn body(&self) -> Option<&str> {
        self.body.as_deref()
    }

    /// The format it arrived in.
    pub fn format(&self) -> EventFormat {
        self.format
    }

    /// `Unique-ID`: the channel the event is about.
    pub fn unique_id(&self) -> Option<&str> {
        self.header("Unique-ID")
    }

    /// `Application` on CHANNEL_EXECUTE / _COMPLETE.
    pub fn application(&self) -> Option<&str> {
        self.header("Application")
    }

    /// `Application-Data`: the (variable-expanded) argument the app ran with.
    pub fn application_data(&self) -> Option<&str> {
        self.header("Application-Data")
    }

    /// `Application-UUID`: the `Event-UUID` we sent with the `sendmsg`.
    pub fn application_uuid(&self) -> Option<&str> {
        self.header("Application-UUID")
    }

    /// `Application-Response` on CHANNEL_EXECUTE_COMPLETE (`FILE PLAYED`, `_none_`, …).
    pub fn application_response(&self) -> Option<&str> {
        self.header("Application-Response")
    }

    /// `Hangup-Cause` as the switch names it (`NORMAL_CLEARING`).
    pub fn hangup_cause(&self) -> Option<&str> {
        self.header("Hangup-Cause")
    }

    /// `Hangup-Cause` parsed the switch's way (unknown names become NORMAL_CLEARING).
    pub fn hangup_cause_code(&self) -> Option<HangupCause> {
        self.hangup_cause().map(HangupCause::parse_switch)
    }

    /// A channel variable, `variable_<name>`.
    pub fn variable(&self, name: &str) -> Option<&str> {
        find_variable(&self.headers, name)
    }

    /// Several channel variables in one pass over the headers (a final event carries
    /// ~200 of them; a lookup each was a pass each): `names[i]`'s first value at `i`.
    pub fn variables_of<const N: usize>(&self, names: [&str; N]) -> [Option<&str>; N] {
        let mut found = [None; N];
        let mut left = N;
        for (n, v) in self.headers.iter() {
            let Some(var) = variable_name(n) else {
                continue;
            };
            for (slot, want) in found.iter_mut().zip(names) {
                if slot.is_none() && var.eq_ignore_ascii_case(want) {
                    *slot = Some(v);
                    left -= 1;
                }
            }
            if left == 0 {
                break;
            }
        }
        found
    }

    /// `Job-UUID` on BACKGROUND_JOB.
    pub fn job_uuid(&self) -> Option<&str> {
        self.header("Job-UUID")
    }

    /// `Job-Owner-UUID`: the session that ran the `bgapi`, if any.
    pub fn job_owner_uuid(&self) -> Option<&str> {
        self.header("Job-Owner-UUID")
    }

    /// `DTMF-Digit` on DTMF (already decoded: `#`, not `%23`).
    pub fn dtmf_digit(&self) -> Option<&str> {
        self.header("DTMF-Digit")
    }

    /// `Answer-State`: `ringing`, `early`, `answered` or `hangup`.
    pub fn answer_state(&self) -> Option<&str> {
        self.header("Answer-State")
    }

    /// `Channel-Name`, e.g. `sofia/internal/1000@127.0.0.1`.
    pub fn channel_name(&self) -> Option<&str> {
        self.header("Channel-Name")
    }

    /// `Event-Subclass` of CUSTOM events.
    pub fn subclass(&self) -> Option<&str> {
        self.header("Event-Subclass")
    }

    /// The frame the switch would send for this event, in its format.
    pub fn to_frame(&self) -> Frame {
        match self.format {
            EventFormat::Plain => {
                plain_event_frame(&self.headers, self.body.as_deref().map(str::as_bytes))
            }
            EventFormat::Json => json_event_frame(&self.headers, self.body.as_deref()),
        }
    }
}

/// The `connect` reply: the channel's data at the moment the socket took control.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelData {
    headers: Headers,
}

impl ChannelData {
    /// Channel data from already-decoded headers.
    pub fn new(headers: Headers) -> Self {
        Self { headers }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// Every header (decoded), in wire order.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The channel UUID (`Unique-ID`, else `Channel-Unique-ID`, else `Caller-Unique-ID`).
    pub fn uuid(&self) -> Option<&str> {
        self.header("Unique-ID")
            .or_else(|| self.header("Channel-Unique-ID"))
            .or_else(|| self.header("Caller-Unique-ID"))
    }

    /// `Answer-State` at connect time: `ringing`, `early`, `answered`.
    pub fn answer_state(&self) -> Option<&str> {
        self.header("Answer-State")
    }

    /// `true` if the channel was already answered when the socket connected.
    pub fn is_answered(&self) -> bool {
        self.answer_state() == Some("answered")
    }

    /// The called number.
    pub fn destination_number(&self) -> Option<&str> {
        self.header("Caller-Destination-Number")
            .or_else(|| self.header("Channel-Destination-Number"))
    }

    pub fn caller_id_number(&self) -> Option<&str> {
        self.header("Caller-Caller-ID-Number")
            .or_else(|| self.header("Channel-Caller-ID-Number"))
    }

    pub fn caller_id_name(&self) -> Option<&str> {
        self.header("Caller-Caller-ID-Name")
            .or_else(|| self.header("Channel-Caller-ID-Name"))
    }

    /// `Call-Direction`: `inbound` or `outbound` (from the switch's point of view).
    pub fn direction(&self) -> Option<&str> {
        self.header("Call-Direction")
            .or_else(|| self.header("Caller-Direction"))
    }

    pub fn channel_name(&self) -> Option<&str> {
        self.header("Channel-Name")
    }

    /// A channel variable, `variable_<name>`.
    pub fn variable(&self, name: &str) -> Option<&str> {
        find_variable(&self.headers, name)
    }

    /// Every channel variable as (name without `variable_`, value), in wire order.
    pub fn variables(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .filter_map(|(n, v)| variable_name(n).map(|n| (n, v)))
    }

    /// The decoded `Reply-Text` (`+OK\n` on success).
    pub fn reply_text(&self) -> Option<&str> {
        self.header("Reply-Text")
    }

    /// `Socket-Mode`: `async` or `static`.
    pub fn socket_mode(&self) -> Option<&str> {
        self.header("Socket-Mode")
    }

    /// `Control`: `full` or `single-channel`. Without `full`, `linger`, `event`, `api`
    /// and `bgapi` are refused.
    pub fn control(&self) -> Option<&str> {
        self.header("Control")
    }
}

/// `n` without its `variable_` prefix (any case), if it has one.
fn variable_name(n: &str) -> Option<&str> {
    // Comparing bytes, then `get`, never slices inside a multi-byte character.
    if n.len() > 9 && n.as_bytes()[..9].eq_ignore_ascii_case(b"variable_") {
        n.get(9..)
    } else {
        None
    }
}

fn find_variable<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(n, _)| variable_name(n).is_some_and(|v| v.eq_ignore_ascii_case(name)))
        .map(|(_, v)| v)
}

/// How a reply text starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    /// `+OK…`
    Ok,
    /// `-ERR…` (or `-USAGE…` from an API)
    Err,
    /// Anything else (a `getvar` value, `true`/`false` from `uuid_exists`).
    Other,
}

impl ReplyKind {
    fn of(text: &str) -> Self {
        if text.starts_with("+OK") {
            ReplyKind::Ok
        } else if text.starts_with("-ERR") || text.starts_with("-USAGE") {
            ReplyKind::Err
        } else {
            ReplyKind::Other
        }
    }
}

/// A `command/reply` frame. `Reply-Text` is raw (never URL-encoded by the switch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    headers: Headers,
}

impl Reply {
    pub fn new(headers: Headers) -> Self {
        Self { headers }
    }

    /// `Reply-Text`, raw (`+OK`, `-ERR invalid session id [x]`, a `getvar` value…).
    pub fn text(&self) -> &str {
        self.headers.get("Reply-Text").unwrap_or("")
    }

    pub fn kind(&self) -> ReplyKind {
        ReplyKind::of(self.text())
    }

    pub fn is_ok(&self) -> bool {
        self.kind() == ReplyKind::Ok
    }

    pub fn is_err(&self) -> bool {
        self.kind() == ReplyKind::Err
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// `Job-UUID` of a `bgapi` reply.
    pub fn job_uuid(&self) -> Option<&str> {
        self.header("Job-UUID")
    }
}

/// An `api/response`: the command's raw output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiResponse {
    pub body: String,
}

impl ApiResponse {
    pub fn kind(&self) -> ReplyKind {
        ReplyKind::of(&self.body)
    }

    pub fn is_ok(&self) -> bool {
        self.kind() == ReplyKind::Ok
    }

    pub fn is_err(&self) -> bool {
        self.kind() == ReplyKind::Err
    }
}

/// `Content-Disposition` of a disconnect notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// The channel is down but the switch keeps the socket open (`linger`): more events
    /// (HANGUP_COMPLETE among them) are still coming. Not the end.
    Linger,
    /// The switch is closing the socket. The end.
    Disconnect,
    /// No disposition (inbound sockets, the rude-rejection path): also the end.
    None,
}

/// A `text/disconnect-notice`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisconnectNotice {
    pub disposition: Disposition,
    pub controlled_session_uuid: Option<String>,
    pub channel_name: Option<String>,
    /// `Linger-Time` in seconds; -1 means "until the client exits".
    pub linger_time: Option<i64>,
    pub body: String,
}

impl DisconnectNotice {
    /// `true` unless this is a linger notice: the switch is closing the socket.
    pub fn is_final(&self) -> bool {
        self.disposition != Disposition::Linger
    }
}

/// A `log/data` frame (only after `log <level>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogData {
    pub headers: Headers,
    pub text: String,
}

/// A frame we could not make sense of: logged and skipped, never a panic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unexpected {
    pub content_type: Option<String>,
    pub reason: String,
    pub frame: Frame,
}

/// One decoded switch→client frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// `auth/request` (inbound sockets only, first frame).
    AuthRequest,
    /// `command/reply` to a command other than `connect`.
    Reply(Reply),
    /// The `connect` reply: a `command/reply` carrying the serialized CHANNEL_DATA.
    ChannelData(ChannelData),
    /// `api/response`.
    ApiResponse(ApiResponse),
    /// `text/event-plain` or `text/event-json`.
    Event(Event),
    /// An event without `Event-Name` that a session queued for itself and the switch
    /// diverted to the socket (`divert_events on`): measured on FreeSWITCH 1.10.12, a
    /// `bind_digit_action` match arrives as `text/event-plain` with only
    /// `<string>: <value>` and `digits: <pressed>` (docs/dial.md).
    Diverted(Event),
    /// `text/disconnect-notice`.
    Disconnect(DisconnectNotice),
    /// `text/rude-rejection`: our address is not in the switch's ACL.
    RudeRejection(String),
    /// `log/data`.
    Log(LogData),
    /// Anything else, or an event body that does not decode.
    Unexpected(Unexpected),
}

/// Why an event body did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("event has no Event-Name header")]
    NoEventName,
    #[error("event frame has no body")]
    NoBody,
    #[error("inner Content-Length {value:?} is not a number")]
    BadInnerLength { value: String },
    #[error("inner body is {got} bytes, Content-Length says {expected}")]
    InnerBodyTruncated { expected: usize, got: usize },
    #[error("event-json body is not one JSON object: {0}")]
    Json(String),
}

impl Message {
    /// Decodes one frame. Never fails: what cannot be decoded is [`Message::Unexpected`].
    pub fn decode(frame: Frame) -> Message {
        let Some(ct) = frame.content_type() else {
            return unexpected(frame, "frame has no Content-Type".into());
        };
        match ct {
            "auth/request" => Message::AuthRequest,
            "command/reply" => {
                if frame.headers.get("Event-Name").is_some() {
                    // Kept for the whole call: no slack.
                    let mut headers = decode_values(&frame.headers);
                    headers.shrink_to_fit();
                    Message::ChannelData(ChannelData { headers })
                } else {
                    Message::Reply(Reply {
                        headers: frame.headers,
                    })
                }
            }
            "api/response" => Message::ApiResponse(ApiResponse {
                body: body_text(frame.body.as_ref()),
            }),
            "text/event-plain" => match frame.body.as_deref() {
                None => unexpected(frame, EventError::NoBody.to_string()),
                Some(b) => match decode_plain_any(b) {
                    Ok(ev) => event_or_diverted(frame, ev),
                    Err(e) => unexpected(frame, e.to_string()),
                },
            },
            "text/event-json" => match frame.body.as_deref() {
                None => unexpected(frame, EventError::NoBody.to_string()),
                Some(b) => match decode_json_any(b) {
                    Ok(ev) => event_or_diverted(frame, ev),
                    Err(e) => unexpected(frame, e.to_string()),
                },
            },
            "text/disconnect-notice" => {
                let h = &frame.headers;
                let disposition = match h.get("Content-Disposition") {
                    Some(d) if d.eq_ignore_ascii_case("linger") => Disposition::Linger,
                    Some(_) => Disposition::Disconnect,
                    None => Disposition::None,
                };
                Message::Disconnect(DisconnectNotice {
                    disposition,
                    controlled_session_uuid: h.get("Controlled-Session-UUID").map(String::from),
                    channel_name: h.get("Channel-Name").map(String::from),
                    linger_time: h.get("Linger-Time").and_then(|v| v.trim().parse().ok()),
                    body: body_text(frame.body.as_ref()),
                })
            }
            "text/rude-rejection" => Message::RudeRejection(body_text(frame.body.as_ref())),
            "log/data" => Message::Log(LogData {
                text: body_text(frame.body.as_ref()),
                headers: frame.headers,
            }),
            other => {
                let reason = format!("unsupported Content-Type {other:?}");
                unexpected(frame, reason)
            }
        }
    }
}

/// An event without `Event-Name` is one the session queued for itself (a
/// `bind_digit_action` match: its `digits` and the binding's `<string>: <value>`),
/// which the switch forwards to an outbound socket only after `divert_events on`.
fn event_or_diverted(frame: Frame, ev: Event) -> Message {
    if ev.headers.get("Event-Name").is_some() {
        Message::Event(ev)
    } else if ev.headers.is_empty() {
        unexpected(frame, EventError::NoEventName.to_string())
    } else {
        Message::Diverted(ev)
    }
}

fn unexpected(frame: Frame, reason: String) -> Message {
    Message::Unexpected(Unexpected {
        content_type: frame.content_type().map(String::from),
        reason,
        frame,
    })
}

fn body_text(body: Option<&Bytes>) -> String {
    body.map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

fn decode_values(h: &Headers) -> Headers {
    let bytes = h.iter().map(|(n, v)| n.len() + v.len()).sum();
    let mut fast = DecodedHeaders::with_capacity(h.len(), bytes);
    for (n, v) in h.iter() {
        fast.push_decoded(n.as_bytes(), v.as_bytes());
    }
    if let Some(out) = fast.finish() {
        return out;
    }
    let mut out = Headers::with_capacity(h.len(), bytes);
    for (n, v) in h.iter() {
        out.push_with(n, |s| urlcode::decode_into(v, s));
    }
    out
}

/// Decodes a `text/event-plain` body: URL-encoded `Name: value` lines, then a blank
/// line, or `Content-Length: N`, a blank line and N raw bytes of inner body.
pub fn decode_plain(body: &[u8]) -> Result<Event, EventError> {
    named(decode_plain_any(body)?)
}

/// An event must name itself, except one a session diverted to its socket.
fn named(event: Event) -> Result<Event, EventError> {
    if event.headers.get("Event-Name").is_none() {
        return Err(EventError::NoEventName);
    }
    Ok(event)
}

/// [`decode_plain`] without requiring `Event-Name`.
fn decode_plain_any(body: &[u8]) -> Result<Event, EventError> {
    let (headers, inner_len, rest) = match decode_block_fast(body)? {
        Some((headers, inner_len, rest_at)) => (headers, inner_len, &body[rest_at..]),
        None => {
            let (block, rest) = match find_blank_line(body) {
                Some((end, sep)) => (&body[..end], &body[end + sep..]),
                None => (body, &body[body.len()..]),
            };
            let (headers, inner_len) = decode_block_lossy(block)?;
            (headers, inner_len, rest)
        }
    };
    let body = match inner_len {
        None => None,
        Some(n) if rest.len() < n => {
            return Err(EventError::InnerBodyTruncated {
                expected: n,
                got: rest.len(),
            })
        }
        Some(n) => Some(String::from_utf8_lossy(&rest[..n]).into_owned()),
    };
    Ok(Event {
        headers,
        body,
        format: EventFormat::Plain,
    })
}

/// What [`decode_block_fast`] gives: the headers, the inner body's length, and where
/// the bytes after the block start.
type FastBlock = (Headers, Option<usize>, usize);

/// The header block at the front of `body` (up to the first blank line), when its
/// bytes are UTF-8 and its decoded values are too — every block the switch sends —
/// decoded in one pass into one buffer ([`DecodedHeaders`]), with the inner body's
/// length and where the bytes after the block start. `Ok(None)` when either is not
/// UTF-8: [`decode_block_lossy`] then decodes it, replacing the bad bytes.
///
/// One SIMD search over the body for the bytes that matter — line ends, colons and
/// escapes — instead of a search per line and one for the blank line: an event is ~150
/// lines of ~35 bytes, and a search's set-up per short line cost more than its bytes
/// (issue 16). A value without `%` is copied as it is.
fn decode_block_fast(body: &[u8]) -> Result<Option<FastBlock>, EventError> {
    let mut headers = DecodedHeaders::with_capacity(body.len() / 24, body.len());
    let mut inner_len = None;
    let mut line_start = 0;
    let mut colon: Option<usize> = None;
    let mut escaped = false;
    let mut line = |start: usize, end: usize, colon: Option<usize>, escaped: bool| {
        let Some(colon) = colon else {
            // A line without `:` is ignored, as the switch does.
            return Ok(None);
        };
        let value = &body[colon + 1..end];
        let value = value.strip_prefix(b" ").unwrap_or(value);
        let value = value.strip_suffix(b"\r").unwrap_or(value);
        header_value(&body[start..colon], value, &mut |name, value| {
            headers.push_value(name, value, escaped)
        })
    };
    // Where the block ends and what follows it starts: the body's end unless a blank
    // line (`\n` or `\r\n` after a line's `\n`) comes first.
    let mut ends = (body.len(), body.len());
    let mut last_line = true;
    for at in memchr::memchr3_iter(b'\n', b':', b'%', body) {
        match body[at] {
            b'\n' => {
                let blank = &body[line_start..at];
                if line_start > 0 && (blank.is_empty() || blank == b"\r") {
                    ends = (line_start, at + 1);
                    last_line = false;
                    break;
                }
                if let Some(len) = line(line_start, at, colon, escaped)? {
                    inner_len = Some(len);
                }
                (line_start, colon, escaped) = (at + 1, None, false);
            }
            b':' if colon.is_none() => colon = Some(at),
            b'%' if colon.is_some() => escaped = true,
            _ => {}
        }
    }
    if last_line {
        if let Some(len) = line(line_start, body.len(), colon, escaped)? {
            inner_len = Some(len);
        }
    }
    if std::str::from_utf8(&body[..ends.0]).is_err() {
        return Ok(None);
    }
    Ok(headers.finish().map(|h| (h, inner_len, ends.1)))
}

/// Splits one header line at its first `:` (one space after it dropped) for
/// [`header_value`].
fn header_line(
    line: &[u8],
    push: &mut impl FnMut(&[u8], &[u8]),
) -> Result<Option<usize>, EventError> {
    let Some(colon) = memchr::memchr(b':', line) else {
        return Ok(None);
    };
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    header_value(name, value.strip_prefix(b" ").unwrap_or(value), push)
}

/// Hands a header's name and raw value to `push`, except `Content-Length`, whose value
/// it returns (the inner body's length).
fn header_value(
    name: &[u8],
    value: &[u8],
    push: &mut impl FnMut(&[u8], &[u8]),
) -> Result<Option<usize>, EventError> {
    if name.eq_ignore_ascii_case(b"Content-Length") {
        let text = String::from_utf8_lossy(value);
        return match text.trim().parse::<usize>() {
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(EventError::BadInnerLength {
                value: text.into_owned(),
            }),
        };
    }
    push(name, value);
    Ok(None)
}

/// [`decode_block_fast`] for a block or values that are not UTF-8: lines repaired one by
/// one, each run of escapes checked as it is decoded, bad bytes replaced (U+FFFD).
fn decode_block_lossy(block: &[u8]) -> Result<(Headers, Option<usize>), EventError> {
    let text: Cow<'_, str> = match std::str::from_utf8(block) {
        Ok(t) => Cow::Borrowed(t),
        Err(_) => Cow::Owned(
            block
                .split(|b| *b == b'\n')
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    };
    let mut headers = Headers::with_capacity(64, block.len());
    let mut inner_len = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        // Both split bytes are ASCII: the name and value are whole `str`s.
        let found = header_line(line.as_bytes(), &mut |name, value| {
            let (name, value) = (
                std::str::from_utf8(name).unwrap_or_default(),
                std::str::from_utf8(value).unwrap_or_default(),
            );
            headers.push_with(name, |s| urlcode::decode_into(value, s));
        })?;
        if let Some(len) = found {
            inner_len = Some(len);
        }
    }
    Ok((headers, inner_len))
}

/// Position and length of the first blank line (`\n\n` or `\n\r\n`).
fn find_blank_line(b: &[u8]) -> Option<(usize, usize)> {
    memchr::memchr_iter(b'\n', b).find_map(|i| crate::esl::frame::blank_line_at(b, i))
}

/// Decodes a `text/event-json` body: one JSON object whose keys may repeat.
pub fn decode_json(body: &[u8]) -> Result<Event, EventError> {
    named(decode_json_any(body)?)
}

/// [`decode_json`] without requiring `Event-Name`.
fn decode_json_any(body: &[u8]) -> Result<Event, EventError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let decoded = de
        .deserialize_map(JsonEventVisitor)
        .and_then(|v| de.end().map(|_| v))
        .map_err(|e| EventError::Json(e.to_string()))?;
    Ok(Event {
        headers: decoded.headers,
        body: decoded.body,
        format: EventFormat::Json,
    })
}

struct JsonEvent {
    headers: Headers,
    body: Option<String>,
}

/// Walks the object pair by pair, so duplicate keys are all kept in order (a map type
/// would keep only one `Hangup-Cause`).
struct JsonEventVisitor;

impl<'de> Visitor<'de> for JsonEventVisitor {
    type Value = JsonEvent;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of event headers")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonEvent, A::Error> {
        let mut headers = Headers::with_capacity(map.size_hint().unwrap_or(64), 8 * 1024);
        let mut body = None;
        while let Some(key) = map.next_key::<JsonText<'de>>()? {
            let value = map.next_value::<JsonValue<'de>>()?;
            match (key.0.as_ref(), value) {
                ("_body", JsonValue::Text(t)) => body = Some(t.into_owned()),
                ("_body", JsonValue::Other(t)) => body = Some(t),
                // The body's length: meaningless once the body is a string.
                (k, _) if k.eq_ignore_ascii_case("Content-Length") => {}
                // A null carries no header (the switch never sends one).
                (_, JsonValue::Null) => {}
                (k, JsonValue::Text(t)) => headers.push(k, t.as_ref()),
                (k, JsonValue::Other(t)) => headers.push(k, t),
                (k, JsonValue::Array(items)) => headers.push_with(k, |s| {
                    s.push_str("ARRAY::");
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            s.push_str("|:");
                        }
                        s.push_str(item);
                    }
                }),
            }
        }
        Ok(JsonEvent { headers, body })
    }
}

/// A JSON string, borrowed from the input when it has no escapes.
struct JsonText<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for JsonText<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonText<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(JsonText(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(JsonText(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(JsonText(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A header value as the switch's JSON may carry it.
enum JsonValue<'de> {
    Text(Cow<'de, str>),
    Array(Vec<String>),
    /// A number, boolean or nested object, kept as its JSON text.
    Other(String),
    Null,
}

impl<'de> de::Deserialize<'de> for JsonValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a header value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(JsonValue::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(JsonValue::Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(JsonValue::Text(Cow::Owned(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(JsonValue::Other(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(JsonValue::Other(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(JsonValue::Other(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(JsonValue::Other(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(JsonValue::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(JsonValue::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<serde_json::Value>()? {
                    items.push(match item {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    });
                }
                Ok(JsonValue::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let v: serde_json::Value =
                    de::Deserialize::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(JsonValue::Other(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `switch_event_serialize(event, encode=TRUE)`: each header `Name: urlencode(value)\n`,
/// then `Content-Length: N\n\n<body>` or one more `\n`. `headers` hold decoded values.
pub fn serialize_plain(headers: &Headers, body: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 * headers.len() + body.map_or(0, <[u8]>::len));
    for (n, v) in headers.iter() {
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(urlcode::encode(v).as_bytes());
        out.push(b'\n');
    }
    match body {
        Some(b) => {
            out.extend_from_slice(format!("Content-Length: {}\n\n", b.len()).as_bytes());
            out.extend_from_slice(b);
        }
        None => out.push(b'\n'),
    }
    out
}

/// A whole `text/event-plain` frame as the switch sends it (Content-Length first).
pub fn plain_event_frame(headers: &Headers, body: Option<&[u8]>) -> Frame {
    event_frame(EventFormat::Plain, serialize_plain(headers, body))
}

/// `switch_event_serialize_json`: one compact object, values not URL-encoded,
/// duplicate headers as duplicate keys, `ARRAY::a|:b` values as JSON arrays, and a body
/// as `"Content-Length":"N","_body":"…"` at the end.
pub fn serialize_json(headers: &Headers, body: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 * headers.len() + body.map_or(0, str::len));
    out.push(b'{');
    let mut first = true;
    let mut pair = |out: &mut Vec<u8>, name: &str, value: &str, array: bool| {
        if !first {
            out.push(b',');
        }
        first = false;
        push_json_str(out, name);
        out.push(b':');
        if array {
            out.push(b'[');
            for (i, item) in value.split("|:").enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_json_str(out, item);
            }
            out.push(b']');
        } else {
            push_json_str(out, value);
        }
    };
    for (n, v) in headers.iter() {
        match v.strip_prefix("ARRAY::") {
            Some(items) => pair(&mut out, n, items, true),
            None => pair(&mut out, n, v, false),
        }
    }
    if let Some(b) = body {
        pair(&mut out, "Content-Length", &b.len().to_string(), false);
        pair(&mut out, "_body", b, false);
    }
    out.push(b'}');
    out
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json escapes exactly what cJSON escapes: `"`, `\`, \b \f \n \r \t, and other
    // controls as \u00xx (lowercase hex); everything else, UTF-8 included, goes raw.
    match serde_json::to_writer(&mut *out, s) {
        Ok(()) => {}
        Err(_) => out.extend_from_slice(b"\"\""),
    }
}

/// A whole `text/event-json` frame as the switch sends it.
pub fn json_event_frame(headers: &Headers, body: Option<&str>) -> Frame {
    event_frame(EventFormat::Json, serialize_json(headers, body))
}

fn event_frame(format: EventFormat, body: Vec<u8>) -> Frame {
    let mut h = Headers::with_capacity(2, 48);
    h.push("Content-Length", body.len().to_string());
    h.push("Content-Type", format.content_type());
    Frame {
        headers: h,
        body: Some(Bytes::from(body)),
    }
}

/// The `connect` reply: the channel's headers URL-encoded, then `Content-Type:
/// command/reply`, `Reply-Text: %2BOK%0A`, `Socket-Mode` and `Control`; no length.
pub fn connect_reply_frame(channel: &Headers, async_mode: bool, full: bool) -> Frame {
    let mut h = Headers::with_capacity(channel.len() + 4, 8 * 1024);
    for (n, v) in channel.iter() {
        h.push(n, urlcode::encode(v));
    }
    h.push("Content-Type", "command/reply");
    h.push("Reply-Text", "%2BOK%0A");
    h.push("Socket-Mode", if async_mode { "async" } else { "static" });
    h.push("Control", if full { "full" } else { "single-channel" });
    Frame {
        headers: h,
        body: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esl::frame::FrameDecoder;
    use bytes::BytesMut;

    fn frame(bytes: &[u8]) -> Frame {
        let mut buf = BytesMut::from(bytes);
        FrameDecoder::default()
            .decode(&mut buf)
            .unwrap()
            .expect("one whole frame")
    }

    #[test]
    fn plain_event_with_inner_body() {
        let body = b"Event-Name: BACKGROUND_JOB\nJob-UUID: 0d9a\nJob-Command-Arg: a1%20USER_BUSY\nContent-Length: 4\n\n+OK\n";
        let ev = decode_plain(body).unwrap();
        assert_eq!(ev.name(), "BACKGROUND_JOB");
        assert_eq!(ev.header("Job-Command-Arg"), Some("a1 USER_BUSY"));
        assert_eq!(ev.header("Content-Length"), None);
        assert_eq!(ev.body(), Some("+OK\n"));
        assert_eq!(ev.job_uuid(), Some("0d9a"));
    }

    #[test]
    fn plain_event_lines_crlf_colons_and_a_crlf_blank_line() {
        let body = b"Event-Name: CUSTOM\r\nNo colon here\r\nReply: +OK a:b%3Ac\r\n\
            :empty-name\nLast:x\nContent-Length: 4\n\r\nab\n\nrest";
        let ev = decode_plain(body).unwrap();
        assert_eq!(ev.name(), "CUSTOM");
        assert_eq!(ev.header("Reply"), Some("+OK a:b:c"));
        assert_eq!(ev.header("Last"), Some("x"));
        assert_eq!(ev.header(""), Some("empty-name"));
        assert_eq!(ev.headers().len(), 4, "{:?}", ev.headers());
        assert_eq!(ev.body(), Some("ab\n\n"));
    }

    /// The one-pass decoder ([`decode_block_fast`]) against the careful one it falls back
    /// to: the same headers, inner length and rest for every shape a block can take, and
    /// the careful one's replacement characters for what is not UTF-8.
    #[test]
    fn the_one_pass_decoder_gives_what_the_careful_one_does() {
        let careful = |body: &[u8]| {
            let (block, rest) = match find_blank_line(body) {
                Some((end, sep)) => (&body[..end], &body[end + sep..]),
                None => (body, &body[body.len()..]),
            };
            decode_block_lossy(block).map(|(h, len)| (h, len, rest.to_vec()))
        };
        let fast = |body: &[u8]| {
            decode_block_fast(body).map(|d| d.map(|(h, len, at)| (h, len, body[at..].to_vec())))
        };
        let cases: &[&[u8]] = &[
            b"Event-Name: CHANNEL_ANSWER\nCaller-Caller-ID-Name: Jos%C3%A9%20P\nX: 100%25\n\n",
            b"Event-Name: X\r\nA:%3A%3a1\r\nB:  two spaces\r\n\r\ninner",
            b"\nEvent-Name: X\nno colon here\nC: a:b:c\n%41-Name: v%\nD: 5%zz%4\n\nrest",
            b"\n\nEvent-Name: after a blank first line\n",
            b"Event-Name: BACKGROUND_JOB\nContent-Length: 4\n\n+OK\n",
            b"Event-Name: no blank line at all\nLast: %E2%82%AC",
            b"Event-Name: X\nEmpty:\nE: \n\n",
            b"",
        ];
        for case in cases {
            let f = fast(case).expect("valid");
            let c = careful(case).expect("valid");
            assert_eq!(f, Some(c), "{:?}", String::from_utf8_lossy(case));
        }
        // Not UTF-8 once decoded, or not UTF-8 on the wire: the careful decoder's text.
        for bad in [
            &b"Event-Name: X\nA: ok%E2x%41\n\n"[..],
            b"Event-Name: X\nA: %FF\n\n",
            b"Event-Name: X\nA: \xC3%A9\n\n",
        ] {
            assert_eq!(fast(bad).expect("no length error"), None);
            let event = decode_plain(bad).expect("decodes");
            assert!(event.header("A").is_some_and(|v| v.contains('\u{FFFD}')));
        }
        // A bad inner length is the same error either way.
        assert!(matches!(
            fast(b"Event-Name: X\nContent-Length: 4x\n\n"),
            Err(EventError::BadInnerLength { .. })
        ));
    }

    #[test]
    fn variables_of_reads_several_variables_in_one_pass_like_variable() {
        let event = decode_plain(
            b"Event-Name: CHANNEL_HANGUP_COMPLETE\nvariable_billsec: 7\nVARIABLE_Duration: 9\n\
              billsec: not a variable\nvariable_billsec: 8\nvariable_x: %20y\n\n",
        )
        .expect("decodes");
        let names = ["billsec", "duration", "missing", "x"];
        let got = event.variables_of(names);
        assert_eq!(got, [Some("7"), Some("9"), None, Some(" y")]);
        assert_eq!(got, names.map(|n| event.variable(n)));
    }

    #[test]
    fn plain_event_truncated_inner_body_is_an_error() {
        let body = b"Event-Name: BACKGROUND_JOB\nContent-Length: 40\n\n+OK\n";
        assert!(matches!(
            decode_plain(body),
            Err(EventError::InnerBodyTruncated {
                expected: 40,
                got: 4
            })
        ));
        assert!(matches!(
            decode_plain(b"Event-Name: X\nContent-Length: x\n\n"),
            Err(EventError::BadInnerLength { .. })
        ));
        assert_eq!(decode_plain(b"Foo: bar\n\n"), Err(EventError::NoEventName));
    }

    #[test]
    fn json_keeps_duplicates_arrays_and_body() {
        let body = br#"{"Event-Name":"CHANNEL_HANGUP_COMPLETE","Hangup-Cause":"USER_BUSY","variable_DP_MATCH":["7000","7000"],"Hangup-Cause":"USER_BUSY","n":5,"esc":"a\"b\nc","Content-Length":"4","_body":"+OK\n"}"#;
        let ev = decode_json(body).unwrap();
        assert_eq!(ev.headers().get_all("Hangup-Cause").count(), 2);
        assert_eq!(ev.variable("DP_MATCH"), Some("ARRAY::7000|:7000"));
        assert_eq!(ev.header("n"), Some("5"));
        assert_eq!(ev.header("esc"), Some("a\"b\nc"));
        assert_eq!(ev.header("Content-Length"), None);
        assert_eq!(ev.body(), Some("+OK\n"));
        assert_eq!(ev.format(), EventFormat::Json);
        // And back: the serializer restores the array and the trailing body keys.
        let again = serialize_json(ev.headers(), ev.body());
        assert_eq!(decode_json(&again).unwrap().headers(), ev.headers());
        assert!(again.ends_with(br#","Content-Length":"4","_body":"+OK\n"}"#));
    }

    #[test]
    fn json_errors_are_typed() {
        assert!(matches!(decode_json(b"[1,2]"), Err(EventError::Json(_))));
        assert!(matches!(decode_json(b"{\"a\":"), Err(EventError::Json(_))));
        assert!(matches!(
            decode_json(b"{\"Event-Name\":\"X\"} trailing"),
            Err(EventError::Json(_))
        ));
        assert_eq!(decode_json(b"{}"), Err(EventError::NoEventName));
    }

    #[test]
    fn a_diverted_digit_action_match_is_its_own_message() {
        // Byte for byte what FreeSWITCH 1.10.12 sent an outbound socket with
        // `divert_events on` when a `bind_digit_action …,voxbridge_digits_match,bleg,peer`
        // matched the callee's 1234# (docs/dial.md).
        match Message::decode(frame(
            b"Content-Length: 46\nContent-Type: text/event-plain\n\nvoxbridge_digits_match: bleg\ndigits: 1234%23\n\n",
        )) {
            Message::Diverted(ev) => {
                assert_eq!(ev.name(), "");
                assert_eq!(ev.header("voxbridge_digits_match"), Some("bleg"));
                assert_eq!(ev.header("digits"), Some("1234#"));
            }
            other => panic!("{other:?}"),
        }
        // A body with nothing in it is still no event.
        assert!(matches!(
            Message::decode(frame(
                b"Content-Length: 1\nContent-Type: text/event-plain\n\n\n"
            )),
            Message::Unexpected(_)
        ));
    }

    #[test]
    fn replies_and_notices() {
        match Message::decode(frame(
            b"Content-Type: command/reply\nReply-Text: +OK Job-UUID: 7f4d\nJob-UUID: 7f4d\n\n",
        )) {
            Message::Reply(r) => {
                assert!(r.is_ok());
                assert_eq!(r.text(), "+OK Job-UUID: 7f4d");
                assert_eq!(r.job_uuid(), Some("7f4d"));
            }
            other => panic!("{other:?}"),
        }
        match Message::decode(frame(
            b"Content-Type: command/reply\nReply-Text: -ERR invalid session id [x]\n\n",
        )) {
            Message::Reply(r) => assert_eq!(r.kind(), ReplyKind::Err),
            other => panic!("{other:?}"),
        }
        match Message::decode(frame(b"Content-Type: text/disconnect-notice\nControlled-Session-UUID: u\nContent-Disposition: linger\nChannel-Name: sofia/x@y\nLinger-Time: -1\nContent-Length: 0\n\n")) {
            Message::Disconnect(d) => {
                assert!(!d.is_final());
                assert_eq!(d.linger_time, Some(-1));
                assert_eq!(d.channel_name.as_deref(), Some("sofia/x@y"));
            }
            other => panic!("{other:?}"),
        }
        match Message::decode(frame(
            b"Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n",
        )) {
            Message::RudeRejection(t) => assert_eq!(t, "Access Denied, go away.\n"),
            other => panic!("{other:?}"),
        }
        match Message::decode(frame(
            b"Content-Type: text/event-xml\nContent-Length: 2\n\n<>",
        )) {
            Message::Unexpected(u) => {
                assert_eq!(u.content_type.as_deref(), Some("text/event-xml"))
            }
            other => panic!("{other:?}"),
        }
        match Message::decode(frame(
            b"Content-Type: text/event-json\nContent-Length: 3\n\n{x}",
        )) {
            Message::Unexpected(u) => assert!(u.reason.contains("JSON"), "{}", u.reason),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn connect_reply_round_trips_through_the_serializer() {
        let mut ch = Headers::new();
        ch.push("Event-Name", "CHANNEL_DATA");
        ch.push("Unique-ID", "u-1");
        ch.push("Caller-Caller-ID-Name", "John Doe");
        ch.push("Channel-Name", "sofia/internal/1000@127.0.0.1");
        ch.push("variable_sip_from_uri", "1000@127.0.0.1:5060");
        let f = connect_reply_frame(&ch, true, true);
        let bytes = f.to_bytes();
        assert!(bytes.ends_with(
            b"Content-Type: command/reply\nReply-Text: %2BOK%0A\nSocket-Mode: async\nControl: full\n\n"
        ));
        match Message::decode(frame(&bytes)) {
            Message::ChannelData(cd) => {
                assert_eq!(cd.uuid(), Some("u-1"));
                assert_eq!(cd.caller_id_name(), Some("John Doe"));
                assert_eq!(cd.reply_text(), Some("+OK\n"));
                assert_eq!(cd.variable("sip_from_uri"), Some("1000@127.0.0.1:5060"));
                assert_eq!(cd.variables().count(), 1);
                assert_eq!(cd.control(), Some("full"));
            }
            other => panic!("{other:?}"),
        }
    }
}
