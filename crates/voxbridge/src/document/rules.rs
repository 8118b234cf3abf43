//! Value rules shared by both dialects, so an XML attribute and the VoxML field that
//! means the same thing accept exactly the same values and say the same "expected …".
//!
//! Each rule takes the value as text (XML attributes are text; VoxML strings are
//! passed as is, VoxML numbers as their decimal form) and returns the typed value or
//! the "expected …" half of the message.

use super::model::{HangupReason, HttpMethod, Voice};

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

/// Names an admin may have meant when a name is only wrong in letter case.
pub(crate) fn case_hint<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .find(|k| **k != name && k.eq_ignore_ascii_case(name))
        .copied()
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
    fn hints_only_for_case_mistakes() {
        assert_eq!(case_hint("speak", &["Speak", "Play"]), Some("Speak"));
        assert_eq!(case_hint("Speak", &["Speak"]), None);
        assert_eq!(case_hint("Talk", &["Speak"]), None);
    }
}
