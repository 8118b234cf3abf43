//! Bytes the switch writes, frame by frame, in the exact header order of
//! `reference/freeswitch-esl.md` §1.2 and the transcripts.
//!
//! Events are kept with decoded values ([`SimEvent`]) and encoded here, per listener, in
//! the format that listener asked for: plain (`Name: urlencode(value)` lines, inner
//! `Content-Length` + body or one blank line) or JSON (one compact object, string values,
//! duplicate keys kept, `Content-Length` + `_body` for a body). The outer frame always puts
//! `Content-Length` before `Content-Type`.

/// Body of the disconnect notice (`mes.c:send_disconnect`), 67 bytes.
pub const GOODBYE: &str = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n";

/// One event as the switch fires it: ordered headers with decoded values, optional body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimEvent {
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl SimEvent {
    /// `Event-Name`.
    pub fn name(&self) -> &str {
        self.get("Event-Name").unwrap_or("")
    }

    /// First value of a header, case-insensitive (as `switch_event_get_header`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Adds a header at the bottom. Empty values are dropped, as the switch deletes a
    /// header set to an empty value.
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        if !value.is_empty() {
            self.headers.push((name.to_string(), value));
        }
    }
}

/// Where event headers go: a structured [`SimEvent`], or straight into plain wire
/// bytes ([`PlainSink`]) — the fast path when one socket is the only receiver.
pub trait HeaderSink {
    /// Adds `prefix` + `name` with a raw value; empty values are dropped, as the switch
    /// deletes a header set to an empty value.
    fn header(&mut self, prefix: &str, name: &str, value: &str);

    /// Like [`HeaderSink::header`] when the plain (URL-encoded) form is already known.
    fn encoded(&mut self, prefix: &str, name: &str, value: &str, _plain: &str) {
        self.header(prefix, name, value);
    }
}

impl HeaderSink for SimEvent {
    fn header(&mut self, prefix: &str, name: &str, value: &str) {
        if value.is_empty() {
            return;
        }
        let mut full = String::with_capacity(prefix.len() + name.len());
        full.push_str(prefix);
        full.push_str(name);
        self.headers.push((full, value.to_string()));
    }
}

/// Writes `Name: urlencode(value)` lines into a buffer.
pub struct PlainSink<'a>(pub &'a mut Vec<u8>);

impl HeaderSink for PlainSink<'_> {
    fn header(&mut self, prefix: &str, name: &str, value: &str) {
        if value.is_empty() {
            return;
        }
        self.0.extend_from_slice(prefix.as_bytes());
        self.0.extend_from_slice(name.as_bytes());
        self.0.extend_from_slice(b": ");
        url_encode_into(value, self.0);
        self.0.push(b'\n');
    }

    fn encoded(&mut self, prefix: &str, name: &str, value: &str, plain: &str) {
        if value.is_empty() {
            return;
        }
        self.0.extend_from_slice(prefix.as_bytes());
        self.0.extend_from_slice(name.as_bytes());
        self.0.extend_from_slice(b": ");
        self.0.extend_from_slice(plain.as_bytes());
        self.0.push(b'\n');
    }
}

/// `true` for bytes the switch escapes (`switch_url_encode_opt`): controls, non-ASCII
/// and `SWITCH_URL_UNSAFE`.
const fn escape_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i < 0x20 || i > 0x7E;
        i += 1;
    }
    let unsafe_bytes = b"\r\n #%&+:;<=>?@[\\]^`{|}\"";
    let mut j = 0;
    while j < unsafe_bytes.len() {
        t[unsafe_bytes[j] as usize] = true;
        j += 1;
    }
    t
}

static ESCAPE: [bool; 256] = escape_table();

fn is_upper_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'A'..=b'F').contains(&b)
}

/// The switch's URL encoding appended to `out`: byte for byte what
/// [`voxbridge::esl::urlcode::encode`] returns (a test checks it), without allocating, and
/// copying runs of safe bytes at once — events carry hundreds of values.
pub fn url_encode_into(value: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = value.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !ESCAPE[b as usize] {
            i += 1;
            continue;
        }
        // The quirk: `%` followed by two uppercase hex digits is copied as is.
        if b == b'%'
            && i + 2 < bytes.len()
            && is_upper_hex(bytes[i + 1])
            && is_upper_hex(bytes[i + 2])
        {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[run..i]);
        out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 0x0F) as usize]]);
        i += 1;
        run = i;
    }
    out.extend_from_slice(&bytes[run..]);
}

/// [`url_encode_into`] as a `String`.
pub fn url_encode(value: &str) -> String {
    let mut out = Vec::with_capacity(value.len() + 8);
    url_encode_into(value, &mut out);
    // Only ASCII bytes and `%XX` are ever added to the copied UTF-8 runs.
    String::from_utf8(out).unwrap_or_default()
}

/// Wire format of events on one connection: the client side's own type.
pub use voxbridge::esl::event::EventFormat;

/// Serializes an event in `format`, outer frame included.
pub fn event_frame(event: &SimEvent, format: EventFormat) -> Vec<u8> {
    match format {
        EventFormat::Plain => plain_event_frame(event),
        EventFormat::Json => json_event_frame(event),
    }
}

/// The body of a `text/event-plain` frame (`switch_event_serialize(…, encode=TRUE)`).
pub fn plain_event_body(event: &SimEvent) -> Vec<u8> {
    let mut inner = Vec::with_capacity(8192);
    for (n, v) in &event.headers {
        inner.extend_from_slice(n.as_bytes());
        inner.extend_from_slice(b": ");
        url_encode_into(v, &mut inner);
        inner.push(b'\n');
    }
    match &event.body {
        Some(body) => {
            inner.extend_from_slice(format!("Content-Length: {}\n\n", body.len()).as_bytes());
            inner.extend_from_slice(body.as_bytes());
        }
        None => inner.push(b'\n'),
    }
    inner
}

fn plain_event_frame(event: &SimEvent) -> Vec<u8> {
    outer("text/event-plain", plain_event_body(event))
}

/// Appends a plain event frame whose header lines (without the final blank line) are
/// already in `lines`: the outer frame, the lines, the blank line.
pub fn plain_frame_into(lines: &[u8], out: &mut Vec<u8>) {
    let len = lines.len() + 1;
    out.extend_from_slice(
        format!("Content-Length: {len}\nContent-Type: text/event-plain\n\n").as_bytes(),
    );
    out.extend_from_slice(lines);
    out.push(b'\n');
}

fn json_event_frame(event: &SimEvent) -> Vec<u8> {
    let mut json = String::with_capacity(8192);
    json.push('{');
    let mut first = true;
    let mut field = |json: &mut String, k: &str, v: &str| {
        if !first {
            json.push(',');
        }
        first = false;
        push_json_string(json, k);
        json.push(':');
        // Array headers (`ARRAY::a|:b`) become JSON arrays.
        match v.strip_prefix("ARRAY::") {
            Some(items) => {
                json.push('[');
                for (i, item) in items.split("|:").enumerate() {
                    if i > 0 {
                        json.push(',');
                    }
                    push_json_string(json, item);
                }
                json.push(']');
            }
            None => push_json_string(json, v),
        }
    };
    for (n, v) in &event.headers {
        field(&mut json, n, v);
    }
    if let Some(body) = &event.body {
        field(&mut json, "Content-Length", &body.len().to_string());
        field(&mut json, "_body", body);
    }
    json.push('}');
    outer("text/event-json", json.into_bytes())
}

/// cJSON-style string: `"` `\` and controls escaped, everything else (UTF-8, `/`) raw.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn outer(content_type: &str, body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 64);
    out.extend_from_slice(
        format!(
            "Content-Length: {}\nContent-Type: {content_type}\n\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&body);
    out
}

/// The `connect` reply: the CHANNEL_DATA event as URL-encoded header lines, no length,
/// ending with the four reply headers (`mes.c:parse_command`).
pub fn connect_reply(channel_data: &SimEvent, full: bool, sync: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(8192);
    for (n, v) in &channel_data.headers {
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b": ");
        url_encode_into(v, &mut out);
        out.push(b'\n');
    }
    out.extend_from_slice(b"Content-Type: command/reply\nReply-Text: %2BOK%0A\n");
    out.extend_from_slice(if sync {
        b"Socket-Mode: static\n".as_slice()
    } else {
        b"Socket-Mode: async\n".as_slice()
    });
    out.extend_from_slice(if full {
        b"Control: full\n\n".as_slice()
    } else {
        b"Control: single-channel\n\n".as_slice()
    });
    out
}

/// `Content-Type: command/reply` with a raw `Reply-Text` (truncated to 511 bytes, as the
/// switch's `char reply[512]`).
pub fn command_reply(text: &str) -> Vec<u8> {
    let mut end = text.len().min(511);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "Content-Type: command/reply\nReply-Text: {}\n\n",
        &text[..end]
    )
    .into_bytes()
}

/// The "~" form of command/reply used by `bgapi`: extra header lines after Reply-Text.
pub fn bgapi_reply(job_uuid: &str) -> Vec<u8> {
    format!(
        "Content-Type: command/reply\nReply-Text: +OK Job-UUID: {job_uuid}\nJob-UUID: {job_uuid}\n\n"
    )
    .into_bytes()
}

pub fn api_response(output: &str) -> Vec<u8> {
    let mut out = format!(
        "Content-Type: api/response\nContent-Length: {}\n\n",
        output.len()
    )
    .into_bytes();
    out.extend_from_slice(output.as_bytes());
    out
}

pub fn auth_request() -> Vec<u8> {
    b"Content-Type: auth/request\n\n".to_vec()
}

/// The final disconnect notice; without a session only Content-Type and Content-Length.
pub fn disconnect_notice(session_uuid: Option<&str>, body: &str) -> Vec<u8> {
    let mut out = String::from("Content-Type: text/disconnect-notice\n");
    if let Some(uuid) = session_uuid {
        out.push_str(&format!(
            "Controlled-Session-UUID: {uuid}\nContent-Disposition: disconnect\n"
        ));
    }
    out.push_str(&format!("Content-Length: {}\n\n{body}", body.len()));
    out.into_bytes()
}

/// The notice sent when the channel goes down on a lingering socket. `Channel-Name` is
/// raw (not URL-encoded) here, as in the transcripts.
pub fn linger_notice(session_uuid: &str, channel_name: &str, linger_secs: i64) -> Vec<u8> {
    format!(
        "Content-Type: text/disconnect-notice\nControlled-Session-UUID: {session_uuid}\nContent-Disposition: linger\nChannel-Name: {channel_name}\nLinger-Time: {linger_secs}\nContent-Length: 0\n\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bg() -> SimEvent {
        let mut e = SimEvent::default();
        e.push("Event-Name", "BACKGROUND_JOB");
        e.push("Job-Command-Arg", "a b:c");
        e.push("Empty", "");
        e.body = Some("+OK\n".into());
        e
    }

    #[test]
    fn plain_nests_body_and_encodes_values() {
        let f = event_frame(&bg(), EventFormat::Plain);
        let inner =
            "Event-Name: BACKGROUND_JOB\nJob-Command-Arg: a%20b%3Ac\nContent-Length: 4\n\n+OK\n";
        let expect = format!(
            "Content-Length: {}\nContent-Type: text/event-plain\n\n{inner}",
            inner.len()
        );
        assert_eq!(String::from_utf8(f).unwrap(), expect);
        let mut no_body = bg();
        no_body.body = None;
        assert!(plain_event_body(&no_body).ends_with(b"a%20b%3Ac\n\n"));
    }

    #[test]
    fn json_keeps_duplicates_and_escapes() {
        let mut e = bg();
        e.push("Hangup-Cause", "NORMAL_CLEARING");
        e.push("Hangup-Cause", "NORMAL_CLEARING");
        e.push("Q", "say \"hi\"\r\n/é");
        e.push("DP", "ARRAY::7000|:7000");
        let f = String::from_utf8(event_frame(&e, EventFormat::Json)).unwrap();
        let body = f.split_once("\n\n").unwrap().1;
        assert_eq!(body.matches("\"Hangup-Cause\"").count(), 2);
        assert!(body.contains(r#""Q":"say \"hi\"\r\n/é""#));
        assert!(body.contains(r#""DP":["7000","7000"]"#));
        assert!(body.ends_with(r#""Content-Length":"4","_body":"+OK\n"}"#));
        assert!(f.starts_with(&format!(
            "Content-Length: {}\nContent-Type: text/event-json\n\n",
            body.len()
        )));
    }

    #[test]
    fn fast_encoder_matches_the_reference() {
        for v in [
            "",
            "sofia/internal/1000@127.0.0.1",
            "+OK\n",
            "100%41",
            "100%4a",
            "50%",
            "%",
            "%4",
            "café ☎",
            "a/b,c!$'()*-._~ \"<>{}|\\^`[]?#&=;:@",
            "\u{7f}\u{0}",
        ] {
            assert_eq!(url_encode(v), voxbridge::esl::urlcode::encode(v), "{v:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_encoder_equals_the_reference_for_any_text(v in ".*") {
            proptest::prop_assert_eq!(url_encode(&v), voxbridge::esl::urlcode::encode(&v));
        }

        #[test]
        fn fast_encoder_handles_percent_runs(v in "[%A-Fa-f0-9 ]{0,12}") {
            proptest::prop_assert_eq!(url_encode(&v), voxbridge::esl::urlcode::encode(&v));
        }
    }

    #[test]
    fn replies_match_the_transcripts() {
        assert_eq!(
            command_reply("+OK will linger").len(),
            57,
            "transcript a: 57 bytes"
        );
        assert_eq!(
            disconnect_notice(Some("e300f525-1572-4a6c-982e-1439546ddb55"), GOODBYE).len(),
            218
        );
        assert_eq!(disconnect_notice(None, GOODBYE).len(), 124);
        assert_eq!(
            linger_notice(
                "e300f525-1572-4a6c-982e-1439546ddb55",
                "sofia/internal/15551230000@127.0.0.1",
                -1
            )
            .len(),
            213
        );
        assert_eq!(
            api_response("true"),
            b"Content-Type: api/response\nContent-Length: 4\n\ntrue"
        );
        assert_eq!(command_reply(&"x".repeat(600)).len(), 42 + 511);
    }
}
