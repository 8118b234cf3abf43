//! Value rules shared by both dialects, so an XML attribute and the VoxML field that
//! means the same thing accept exactly the same values and say the same "expected …".
//!
//! Each rule takes the value as text (XML attributes are text; VoxML strings are
//! passed as is, VoxML numbers as their decimal form) and returns the typed value or
//! the "expected …" half of the message.

use super::model::{AudioFormat, HangupReason, HttpMethod, Voice};

pub(crate) const EXPECT_VOICE: &str = "expected WOMAN or MAN";
pub(crate) const EXPECT_LOOP: &str = "expected a whole number, 0 (until the call ends) or more";
pub(crate) const EXPECT_LENGTH: &str =
    "expected a whole number of seconds from 1 to 2147483 (the longest sleep the switch takes)";

/// The longest `Wait` the switch can carry out: FreeSWITCH's `sleep` reads its argument
/// with `atoi` into milliseconds, so anything above `i32::MAX` ms (24.8 days) would be
/// silently truncated to some other length. Longer Waits are **refused** as a document
/// error rather than capped: a document that asks for 50 days of silence is a bug its
/// author should hear about, and a cap would run something other than what it says.
pub const MAX_WAIT_SECS: u32 = (i32::MAX as u32) / 1000;
pub(crate) const EXPECT_SCHEDULE: &str = "expected a whole number of seconds greater than 0";
pub(crate) const EXPECT_METHOD: &str = "expected POST or GET";
pub(crate) const EXPECT_BOOL: &str = "expected true or false";
pub(crate) const EXPECT_LANGUAGE: &str = "expected a language tag such as en-US";
pub(crate) const EXPECT_MEDIA_URL: &str =
    "expected an http(s)://, file://, tone_stream:// or silence_stream:// URL without spaces";
pub(crate) const EXPECT_DOCUMENT_URL: &str = "expected an http(s):// or file:// URL without spaces";
pub(crate) const EXPECT_CALLBACK_URL: &str = "expected an http(s):// URL without spaces";
pub(crate) const EXPECT_DIGITS: &str =
    "expected DTMF digits 0-9, *, #, A-D, and w or W for a pause";

pub(crate) fn voice(v: &str) -> Result<Voice, &'static str> {
    match v {
        "WOMAN" => Ok(Voice::Woman),
        "MAN" => Ok(Voice::Man),
        _ => Err(EXPECT_VOICE),
    }
}

/// A BCP-47-like tag: 2–3 letters, then `-`-separated groups of 1–8 letters or
/// digits. Kept strict because the tag ends up in a switch command line.
pub(crate) fn language(v: &str) -> Result<String, &'static str> {
    let mut parts = v.split('-');
    let primary = parts.next().unwrap_or_default();
    let primary_ok =
        (2..=3).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_alphabetic());
    let rest_ok =
        parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    if primary_ok && rest_ok {
        Ok(v.to_string())
    } else {
        Err(EXPECT_LANGUAGE)
    }
}

/// A whole decimal number as written (surrounding spaces tolerated, no sign, no
/// fraction). `None` for anything else, including values too large for `u32`.
fn whole_number(v: &str) -> Option<u32> {
    let t = v.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse::<u32>().ok()
}

pub(crate) fn loop_count(v: &str) -> Result<u32, &'static str> {
    whole_number(v).ok_or(EXPECT_LOOP)
}

pub(crate) fn length_secs(v: &str) -> Result<u32, &'static str> {
    whole_number(v)
        .filter(|n| (1..=MAX_WAIT_SECS).contains(n))
        .ok_or(EXPECT_LENGTH)
}

pub(crate) fn schedule_secs(v: &str) -> Result<u32, &'static str> {
    whole_number(v).filter(|n| *n > 0).ok_or(EXPECT_SCHEDULE)
}

pub(crate) fn method(v: &str) -> Result<HttpMethod, &'static str> {
    match v.trim() {
        "POST" => Ok(HttpMethod::Post),
        "GET" => Ok(HttpMethod::Get),
        _ => Err(EXPECT_METHOD),
    }
}

pub(crate) fn boolean(v: &str) -> Result<bool, &'static str> {
    match v.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(EXPECT_BOOL),
    }
}

/// XML `<Hangup reason>`: only the two causes Vobiz documents.
pub(crate) const EXPECT_XML_REASON: &str = "expected rejected or busy";

pub(crate) fn xml_hangup_reason(v: &str) -> Result<HangupReason, &'static str> {
    match v.trim() {
        "rejected" => Ok(HangupReason::Rejected),
        "busy" => Ok(HangupReason::Busy),
        _ => Err(EXPECT_XML_REASON),
    }
}

/// VoxML `Hangup.reason`: TryVox's three values.
pub(crate) const EXPECT_VOXML_REASON: &str = "expected completed, busy or rejected";

pub(crate) fn voxml_hangup_reason(v: &str) -> Result<HangupReason, &'static str> {
    match v {
        "completed" => Ok(HangupReason::Completed),
        "busy" => Ok(HangupReason::Busy),
        "rejected" => Ok(HangupReason::Rejected),
        _ => Err(EXPECT_VOXML_REASON),
    }
}

/// VoxML `Reject.reason`: a reject always refuses, so `completed` makes no sense.
pub(crate) const EXPECT_REJECT_REASON: &str = "expected busy or rejected";

pub(crate) fn reject_reason(v: &str) -> Result<HangupReason, &'static str> {
    match v {
        "busy" => Ok(HangupReason::Busy),
        "rejected" => Ok(HangupReason::Rejected),
        _ => Err(EXPECT_REJECT_REASON),
    }
}

/// Whether `url` starts with one of `schemes` (case-insensitively) and contains no
/// whitespace or control characters — it is passed on to the switch or to HTTP as is.
fn url_with_scheme(url: &str, schemes: &[&str]) -> bool {
    let lower_prefix: String = url
        .chars()
        .take(20)
        .collect::<String>()
        .to_ascii_lowercase();
    let scheme_ok = schemes
        .iter()
        .any(|s| lower_prefix.starts_with(s) && url.len() > s.len());
    scheme_ok && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Where `Play` may take its audio from (SPEC §3.1).
pub(crate) fn media_url(v: &str) -> Result<String, &'static str> {
    let t = v.trim();
    if url_with_scheme(
        t,
        &[
            "http://",
            "https://",
            "file://",
            "tone_stream://",
            "silence_stream://",
        ],
    ) && http_url_parses(t)
    {
        Ok(t.to_string())
    } else {
        Err(EXPECT_MEDIA_URL)
    }
}

/// Where a `Redirect` may fetch its next document from.
pub(crate) fn document_url(v: &str) -> Result<String, &'static str> {
    let t = v.trim();
    if url_with_scheme(t, &["http://", "https://", "file://"]) && http_url_parses(t) {
        Ok(t.to_string())
    } else {
        Err(EXPECT_DOCUMENT_URL)
    }
}

/// Where a post-call workflow is sent (always over HTTP).
pub(crate) fn callback_url(v: &str) -> Result<String, &'static str> {
    let t = v.trim();
    if url_with_scheme(t, &["http://", "https://"]) && http_url_parses(t) {
        Ok(t.to_string())
    } else {
        Err(EXPECT_CALLBACK_URL)
    }
}

/// An `http(s)://` URL must also be one the HTTP client can request (a host, a valid
/// port); other schemes are left to the switch.
fn http_url_parses(t: &str) -> bool {
    let lower = t.get(..8).unwrap_or(t).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        url::Url::parse(t).is_ok_and(|u| u.host_str().is_some_and(|h| !h.is_empty()))
    } else {
        true
    }
}

pub(crate) fn dtmf_digits(v: &str) -> Result<String, &'static str> {
    let t = v.trim();
    if !t.is_empty()
        && t.chars().all(|c| {
            c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D' | 'a'..='d' | 'w' | 'W')
        })
    {
        Ok(t.to_string())
    } else {
        Err(EXPECT_DIGITS)
    }
}

// --- Gather (SPEC §12.1) and Record (§12.2) -------------------------------------

pub(crate) const EXPECT_EXECUTION_TIMEOUT: &str = "expected a whole number of seconds from 5 to 60";
pub(crate) const EXPECT_DIGIT_END_TIMEOUT: &str =
    "expected a whole number of seconds from 2 to 10, or auto (5)";
pub(crate) const EXPECT_GATHER_FINISH_KEY: &str =
    "expected one key of 0-9, * or #, or none (or empty) to disable it";
pub(crate) const EXPECT_NUM_DIGITS: &str = "expected a whole number from 1 to 32";
pub(crate) const EXPECT_INPUT_TYPE: &str = "expected dtmf (speech and dtmf speech come later)";
pub(crate) const EXPECT_SPEECH_END_TIMEOUT: &str =
    "expected a whole number of seconds from 1 to 10, or auto";
pub(crate) const EXPECT_TEXT: &str = "expected printable text";
pub(crate) const EXPECT_FILE_FORMAT: &str = "expected wav or mp3";
pub(crate) const EXPECT_SILENCE_TIMEOUT: &str = "expected a whole number of seconds from 1 to 3600";
pub(crate) const EXPECT_MAX_LENGTH: &str = "expected a whole number of seconds from 1 to 14400";
pub(crate) const EXPECT_RECORD_FINISH_KEYS: &str =
    "expected keys among 0-9, * and # (each at most once), or none (or empty) to disable";

/// What the caller chose to collect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InputType {
    Dtmf,
    /// `speech` or `dtmf speech`: valid words, not supported yet (no recognizer).
    Speech,
}

pub(crate) fn input_type(v: &str) -> Result<InputType, &'static str> {
    let words: Vec<&str> = v.split_whitespace().collect();
    match words.as_slice() {
        ["dtmf"] => Ok(InputType::Dtmf),
        ["speech"] | ["dtmf", "speech"] | ["speech", "dtmf"] => Ok(InputType::Speech),
        _ => Err(EXPECT_INPUT_TYPE),
    }
}

pub(crate) fn execution_timeout(v: &str) -> Result<u32, &'static str> {
    whole_number(v)
        .filter(|n| (5..=60).contains(n))
        .ok_or(EXPECT_EXECUTION_TIMEOUT)
}

/// `auto` is 5 s (SPEC §12.1).
pub(crate) fn digit_end_timeout(v: &str) -> Result<u32, &'static str> {
    if v.trim() == "auto" {
        return Ok(5);
    }
    whole_number(v)
        .filter(|n| (2..=10).contains(n))
        .ok_or(EXPECT_DIGIT_END_TIMEOUT)
}

pub(crate) fn speech_end_timeout(v: &str) -> Result<(), &'static str> {
    if v.trim() == "auto" || whole_number(v).is_some_and(|n| (1..=10).contains(&n)) {
        Ok(())
    } else {
        Err(EXPECT_SPEECH_END_TIMEOUT)
    }
}

/// A Gather's `finishOnKey`: one key, or `""`/`none` for none.
pub(crate) fn gather_finish_key(v: &str) -> Result<Option<char>, &'static str> {
    let t = v.trim();
    if t.is_empty() || t == "none" {
        return Ok(None);
    }
    let mut chars = t.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => Ok(Some(c)),
        _ => Err(EXPECT_GATHER_FINISH_KEY),
    }
}

pub(crate) fn num_digits(v: &str) -> Result<u32, &'static str> {
    whole_number(v)
        .filter(|n| (1..=32).contains(n))
        .ok_or(EXPECT_NUM_DIGITS)
}

/// Free text that is validated only (speech hints, a model name): no control characters.
pub(crate) fn plain_text(v: &str) -> Result<String, &'static str> {
    if v.chars().any(char::is_control) {
        Err(EXPECT_TEXT)
    } else {
        Ok(v.to_string())
    }
}

/// A recording's container (SPEC §12.2).
pub(crate) fn file_format(v: &str) -> Result<AudioFormat, &'static str> {
    match v.trim() {
        "wav" => Ok(AudioFormat::Wav),
        "mp3" => Ok(AudioFormat::Mp3),
        _ => Err(EXPECT_FILE_FORMAT),
    }
}

pub(crate) fn silence_timeout(v: &str) -> Result<u32, &'static str> {
    whole_number(v)
        .filter(|n| (1..=3600).contains(n))
        .ok_or(EXPECT_SILENCE_TIMEOUT)
}

pub(crate) fn max_length(v: &str) -> Result<u32, &'static str> {
    whole_number(v)
        .filter(|n| (1..=14400).contains(n))
        .ok_or(EXPECT_MAX_LENGTH)
}

/// A Record's `finishOnKey`: a set of keys (default `1234567890*#`), or `""`/`none`.
pub(crate) fn record_finish_keys(v: &str) -> Result<String, &'static str> {
    let t = v.trim();
    if t.is_empty() || t == "none" {
        return Ok(String::new());
    }
    let mut seen = String::new();
    for c in t.chars() {
        if !(c.is_ascii_digit() || c == '*' || c == '#') || seen.contains(c) {
            return Err(EXPECT_RECORD_FINISH_KEYS);
        }
        seen.push(c);
    }
    Ok(seen)
}

/// Names an admin may have meant when a name is only wrong in letter case.
pub(crate) fn case_hint<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .find(|k| **k != name && k.eq_ignore_ascii_case(name))
        .copied()
}

// ---------------------------------------------------------------------------
// Dial (SPEC §11.1). Every value here ends up inside a FreeSWITCH dial string
// (`{var=value,…}endpoint`), where `,`, `{`, `}`, `[`, `]`, `'`, `|`, `^` and spaces
// have meanings of their own; so each rule admits only characters that cannot
// change the string's structure, and says so in its "expected".

pub(crate) const EXPECT_DIAL_NUMBER: &str =
    "expected a phone number: digits with an optional leading +, at most 32";
pub(crate) const EXPECT_SIP_USER: &str =
    "expected a SIP URI sip:user@host or sip:user@host:port (letters, digits and . - _ + only)";
pub(crate) const EXPECT_RING_TIMEOUT: &str = "expected a whole number of seconds from 1 to 86400";
pub(crate) const EXPECT_TIME_LIMIT: &str = "expected a whole number of seconds from 1 to 2147483";
pub(crate) const EXPECT_CALLER_ID: &str =
    "expected a caller number: digits with an optional leading +, at most 32";
pub(crate) const EXPECT_CALLER_NAME: &str =
    "expected a caller name of at most 64 letters, digits, spaces and . - _";
pub(crate) const EXPECT_DIAL_MUSIC: &str =
    "expected real or an http(s):// or file:// document URL without spaces";
pub(crate) const EXPECT_CONFIRM_KEY: &str = "expected one key: 0-9, * or #";
pub(crate) const EXPECT_DIGIT_PATTERNS: &str =
    "expected comma-separated digit patterns of 0-9, *, # and X (any digit)";
pub(crate) const EXPECT_SIP_HEADERS: &str =
    "expected name=value pairs separated by commas, names and values of A-Z a-z 0-9 only";

/// `<Number>`: digits, optionally after a `+`.
pub(crate) fn dial_number(v: &str) -> Result<String, &'static str> {
    let t = v.trim();
    let digits = t.strip_prefix('+').unwrap_or(t);
    if (1..=32).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(t.to_string())
    } else {
        Err(EXPECT_DIAL_NUMBER)
    }
}

fn sip_token(t: &str) -> bool {
    !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+'))
}

/// `<User>`: `sip:user@host[:port]`.
pub(crate) fn sip_user(v: &str) -> Result<String, &'static str> {
    let t = v.trim();
    let ok = t
        .strip_prefix("sip:")
        .and_then(|rest| rest.split_once('@'))
        .is_some_and(|(user, hostport)| {
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            };
            sip_token(user)
                && sip_token(host)
                && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
        });
    if ok {
        Ok(t.to_string())
    } else {
        Err(EXPECT_SIP_USER)
    }
}

pub(crate) fn ring_timeout(v: &str) -> Result<u32, &'static str> {
    whole_number(v)
        .filter(|n| (1..=86_400).contains(n))
        .ok_or(EXPECT_RING_TIMEOUT)
}

pub(crate) fn time_limit(v: &str) -> Result<u32, &'static str> {
    whole_number(v)
        .filter(|n| (1..=MAX_WAIT_SECS).contains(n))
        .ok_or(EXPECT_TIME_LIMIT)
}

pub(crate) fn caller_id(v: &str) -> Result<String, &'static str> {
    dial_number(v).map_err(|_| EXPECT_CALLER_ID)
}

pub(crate) fn caller_name(v: &str) -> Result<String, &'static str> {
    let t = v.trim();
    if (1..=64).contains(&t.chars().count())
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '-' | '_'))
    {
        Ok(t.to_string())
    } else {
        Err(EXPECT_CALLER_NAME)
    }
}

pub(crate) fn dial_music(v: &str) -> Result<super::model::DialMusic, &'static str> {
    let t = v.trim();
    if t == "real" {
        return Ok(super::model::DialMusic::Real);
    }
    document_url(t)
        .map(super::model::DialMusic::Document)
        .map_err(|_| EXPECT_DIAL_MUSIC)
}

pub(crate) fn confirm_key(v: &str) -> Result<char, &'static str> {
    let mut chars = v.trim().chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => Ok(c),
        _ => Err(EXPECT_CONFIRM_KEY),
    }
}

pub(crate) fn digit_patterns(v: &str) -> Result<Vec<String>, &'static str> {
    let patterns: Vec<String> = v.split(',').map(|p| p.trim().to_string()).collect();
    if patterns.iter().all(|p| {
        (1..=32).contains(&p.len())
            && p.bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'*' | b'#' | b'X' | b'x'))
    }) {
        Ok(patterns)
    } else {
        Err(EXPECT_DIGIT_PATTERNS)
    }
}

pub(crate) fn sip_headers(v: &str) -> Result<Vec<(String, String)>, &'static str> {
    let alnum = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    v.split(',')
        .map(|pair| match pair.trim().split_once('=') {
            Some((k, val)) if alnum(k) && alnum(val) => Ok((k.to_string(), val.to_string())),
            _ => Err(EXPECT_SIP_HEADERS),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(loop_count("0"), Ok(0));
        assert_eq!(loop_count(" 3 "), Ok(3));
        assert_eq!(loop_count("-1"), Err(EXPECT_LOOP));
        assert_eq!(loop_count("1.5"), Err(EXPECT_LOOP));
        assert_eq!(loop_count("99999999999"), Err(EXPECT_LOOP));
        assert_eq!(length_secs("0"), Err(EXPECT_LENGTH));
        assert_eq!(length_secs("1"), Ok(1));
        assert_eq!(schedule_secs("0"), Err(EXPECT_SCHEDULE));
        assert_eq!(schedule_secs("60"), Ok(60));
        assert_eq!(schedule_secs("+60"), Err(EXPECT_SCHEDULE));
    }

    #[test]
    fn languages() {
        assert!(language("en-US").is_ok());
        assert!(language("cmn-Hans-CN").is_ok());
        assert!(language("e").is_err());
        assert!(language("en_US").is_err());
        assert!(language("en-US|x").is_err());
        assert!(language("").is_err());
    }

    #[test]
    fn urls() {
        assert!(media_url("https://a/b.wav").is_ok());
        assert!(media_url("tone_stream://%(100,100,350)").is_ok());
        assert!(media_url("HTTP://a/b.wav").is_ok());
        assert!(media_url("ftp://a/b").is_err());
        assert!(media_url("http://a/b c").is_err());
        assert!(media_url("http://").is_err());
        assert!(media_url("http://a:99999/").is_err());
        assert!(document_url("file:///srv/next.xml").is_ok());
        assert!(document_url("tone_stream://x").is_err());
        assert!(callback_url("file:///x").is_err());
        assert!(callback_url("https://app.example/post").is_ok());
    }

    #[test]
    fn digits() {
        assert_eq!(dtmf_digits("12w#*AD"), Ok("12w#*AD".into()));
        assert!(dtmf_digits("12x").is_err());
        assert!(dtmf_digits("  ").is_err());
    }

    #[test]
    fn gather_and_record_values() {
        assert_eq!(num_digits("0"), Err(EXPECT_NUM_DIGITS));
        assert_eq!(num_digits("32"), Ok(32));
        assert_eq!(num_digits("33"), Err(EXPECT_NUM_DIGITS));
        assert_eq!(gather_finish_key("#"), Ok(Some('#')));
        assert_eq!(gather_finish_key("none"), Ok(None));
        assert_eq!(gather_finish_key(""), Ok(None));
        assert_eq!(gather_finish_key("AB"), Err(EXPECT_GATHER_FINISH_KEY));
        assert_eq!(gather_finish_key("A"), Err(EXPECT_GATHER_FINISH_KEY));
        assert_eq!(digit_end_timeout("auto"), Ok(5));
        assert_eq!(digit_end_timeout("1"), Err(EXPECT_DIGIT_END_TIMEOUT));
        assert_eq!(execution_timeout("4"), Err(EXPECT_EXECUTION_TIMEOUT));
        assert_eq!(execution_timeout("60"), Ok(60));
        assert_eq!(input_type("dtmf speech"), Ok(InputType::Speech));
        assert_eq!(input_type("voice"), Err(EXPECT_INPUT_TYPE));
        assert_eq!(record_finish_keys("*#"), Ok("*#".into()));
        assert_eq!(record_finish_keys("##"), Err(EXPECT_RECORD_FINISH_KEYS));
        assert_eq!(file_format("ogg"), Err(EXPECT_FILE_FORMAT));
    }

    #[test]
    fn hints_only_for_case_mistakes() {
        assert_eq!(case_hint("speak", &["Speak", "Play"]), Some("Speak"));
        assert_eq!(case_hint("Speak", &["Speak"]), None);
        assert_eq!(case_hint("Talk", &["Speak"]), None);
    }
    #[test]
    fn dial_values() {
        assert_eq!(dial_number(" +15551234 "), Ok("+15551234".into()));
        for bad in ["", "+", "12a", "1,2", "++1", &"1".repeat(33)] {
            assert!(dial_number(bad).is_err(), "{bad}");
        }
        assert!(sip_user("sip:alice@pbx.example.com").is_ok());
        assert!(sip_user("sip:7002@127.0.0.1:5060").is_ok());
        for bad in [
            "alice@h",
            "sip:@h",
            "sip:a@",
            "sip:a@h:0",
            "sip:a@h:x",
            "sip:a b@h",
            "sip:a@h,x",
        ] {
            assert!(sip_user(bad).is_err(), "{bad}");
        }
        assert_eq!(ring_timeout("30"), Ok(30));
        assert!(ring_timeout("0").is_err());
        assert!(time_limit("0").is_err());
        assert_eq!(confirm_key("#"), Ok('#'));
        assert!(confirm_key("12").is_err());
        assert_eq!(
            digit_patterns("12,*9X"),
            Ok(vec!["12".to_string(), "*9X".to_string()])
        );
        assert!(digit_patterns("1,,2").is_err());
        assert_eq!(
            sip_headers("a=1,Bb=x2"),
            Ok(vec![("a".into(), "1".into()), ("Bb".into(), "x2".into())])
        );
        for bad in ["a", "a=", "a-b=1", "a=1,", "a=1 2"] {
            assert!(sip_headers(bad).is_err(), "{bad}");
        }
        assert!(caller_name("Front Desk").is_ok());
        assert!(caller_name("a,b").is_err());
        assert_eq!(dial_music("real"), Ok(super::super::model::DialMusic::Real));
        assert!(dial_music("ring").is_err());
    }
}
