//! `POST Call/` (SPEC §13): what an outbound-call request asks for, checked before
//! anything is queued. Switch-neutral: the FreeSWITCH driver turns a [`CallRequest`]
//! into an `originate` ([`crate::call::freeswitch::originate`]).
//!
//! Parameters come as a JSON object or a form; both are read into name → text pairs
//! first (JSON numbers and booleans as their text, so `"time_limit": 30` and
//! `time_limit=30` mean the same). Every rejection names the parameter. Unknown
//! parameters are refused too: a misspelt `ring_timout` silently ignored would place a
//! call that rings two minutes instead of ten seconds.
//!
//! What is not built yet is refused by name rather than ignored: a `GET` answer, hangup
//! or fallback method (voxbridge fetches documents and posts the hangup callback with
//! POST today).

use crate::document::model::HttpMethod;

/// Most destinations one request may carry (`to` separated by `<`).
pub const MAX_DESTINATIONS: usize = 1000;
/// `time_limit` when not given: 4 hours.
pub const DEFAULT_TIME_LIMIT: u64 = 14_400;
/// `ring_timeout` when not given.
pub const DEFAULT_RING_TIMEOUT: u64 = 120;
/// Longest accepted `time_limit`, `ring_timeout` or `hangup_on_ring` (a day).
const MAX_SECONDS: u64 = 86_400;
/// Longest URL accepted (a URL travels inside the originate command).
const MAX_URL_LEN: usize = 2048;

/// The parameters §13 knows, so an unknown one can be named.
const KNOWN: &[&str] = &[
    "from",
    "to",
    "answer_url",
    "answer_method",
    "ring_url",
    "ring_method",
    "hangup_url",
    "hangup_method",
    "fallback_url",
    "fallback_method",
    "caller_name",
    "time_limit",
    "hangup_on_ring",
    "ring_timeout",
    "send_digits",
    "sip_headers",
    "switch",
];

/// One destination of `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// Digits, with an optional leading `+` kept as given.
    Number(String),
    /// `sip:user@host[:port]`, stored without the `sip:` scheme.
    Sip(String),
}

impl Destination {
    /// What `To` reports: the number, or the SIP URI as given.
    pub fn display(&self) -> String {
        match self {
            Destination::Number(n) => n.clone(),
            Destination::Sip(s) => format!("sip:{s}"),
        }
    }
}

/// A checked `POST Call/` request; one call per destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRequest {
    pub from: String,
    pub to: Vec<Destination>,
    pub answer_url: String,
    pub ring_url: Option<String>,
    pub ring_method: HttpMethod,
    pub hangup_url: Option<String>,
    pub fallback_url: Option<String>,
    pub caller_name: String,
    /// Seconds the call may last after answer (a switch-side hangup armed at answer).
    pub time_limit: u64,
    /// Seconds after ringing starts at which the call is given up (`no-answer`).
    pub hangup_on_ring: Option<u64>,
    /// Seconds the callee may ring before the switch gives up (`no-answer`).
    pub ring_timeout: u64,
    /// DTMF sent after answer; `w` is a 0.5 s pause (`W` 1 s).
    pub send_digits: Option<String>,
    /// `k=v` pairs, sent on the INVITE as `X-VH-k: v`.
    pub sip_headers: Vec<(String, String)>,
    /// The configured switch (`[[switch]] name`) to place the calls through; `None`:
    /// the next one in turn (SPEC §14). Whether the name is configured is the dialer's
    /// check (400 naming it), not this parser's.
    pub switch: Option<String>,
}

/// A parameter that is missing or invalid: the 400's text names it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct ParamError {
    pub param: String,
    pub message: String,
}

fn err(param: &str, message: impl Into<String>) -> ParamError {
    ParamError {
        param: param.to_string(),
        message: message.into(),
    }
}

/// Checks the request's parameters (name → text, as given).
pub fn parse(params: &[(String, String)]) -> Result<CallRequest, ParamError> {
    for (i, (name, _)) in params.iter().enumerate() {
        if !KNOWN.contains(&name.as_str()) {
            return Err(err(name, "unknown parameter"));
        }
        if params[..i].iter().any(|(n, _)| n == name) {
            return Err(err(name, "given more than once"));
        }
    }
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let required = |name: &str| get(name).ok_or_else(|| err(name, "is required"));

    let from = required("from")?;
    if !is_number(from) {
        return Err(err(
            "from",
            format!("{from:?} is not a phone number (digits, optional leading +)"),
        ));
    }
    let to = parse_destinations(required("to")?)?;
    let answer_url = url("answer_url", required("answer_url")?)?;
    post_only("answer_method", get("answer_method"))?;
    let ring_url = get("ring_url").map(|u| url("ring_url", u)).transpose()?;
    let ring_method = method("ring_method", get("ring_method"))?;
    let hangup_url = get("hangup_url")
        .map(|u| url("hangup_url", u))
        .transpose()?;
    post_only("hangup_method", get("hangup_method"))?;
    let fallback_url = get("fallback_url")
        .map(|u| url("fallback_url", u))
        .transpose()?;
    post_only("fallback_method", get("fallback_method"))?;
    let caller_name = match get("caller_name") {
        None => String::new(),
        Some(name) => {
            let ok = name.chars().count() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || " .-_+".contains(c));
            if !ok {
                return Err(err(
                    "caller_name",
                    "at most 64 letters, digits, spaces and . - _ +",
                ));
            }
            name.to_string()
        }
    };
    let time_limit = seconds("time_limit", get("time_limit"))?.unwrap_or(DEFAULT_TIME_LIMIT);
    let hangup_on_ring = seconds("hangup_on_ring", get("hangup_on_ring"))?;
    let ring_timeout =
        seconds("ring_timeout", get("ring_timeout"))?.unwrap_or(DEFAULT_RING_TIMEOUT);
    let send_digits = match get("send_digits") {
        None => None,
        Some(d) => {
            let ok = d.len() <= 64
                && d.chars()
                    .all(|c| c.is_ascii_digit() || "*#ABCDabcdwW".contains(c));
            if !ok {
                return Err(err(
                    "send_digits",
                    "at most 64 of 0-9 * # A-D, w (0.5 s pause) and W (1 s)",
                ));
            }
            Some(d.to_string())
        }
    };
    let sip_headers = match get("sip_headers") {
        None => Vec::new(),
        Some(list) => parse_sip_headers(list)?,
    };
    let switch = get("switch").map(str::to_string);
    Ok(CallRequest {
        switch,
        from: from.to_string(),
        to,
        answer_url,
        ring_url,
        ring_method,
        hangup_url,
        fallback_url,
        caller_name,
        time_limit,
        hangup_on_ring,
        ring_timeout,
        send_digits,
        sip_headers,
    })
}

fn is_number(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    !digits.is_empty() && digits.len() <= 32 && digits.bytes().all(|b| b.is_ascii_digit())
}

fn parse_destinations(to: &str) -> Result<Vec<Destination>, ParamError> {
    let parts: Vec<&str> = to.split('<').map(str::trim).collect();
    if parts.len() > MAX_DESTINATIONS {
        return Err(err(
            "to",
            format!(
                "{} destinations; at most {MAX_DESTINATIONS} separated by <",
                parts.len()
            ),
        ));
    }
    parts
        .into_iter()
        .map(|p| {
            if is_number(p) {
                return Ok(Destination::Number(p.to_string()));
            }
            if let Some(rest) = p.strip_prefix("sip:") {
                let ok = rest.split_once('@').is_some_and(|(user, host)| {
                    !user.is_empty()
                        && !host.is_empty()
                        && rest
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "@.:-_+".contains(c))
                });
                if ok {
                    return Ok(Destination::Sip(rest.to_string()));
                }
            }
            Err(err(
                "to",
                format!("{p:?} is neither a number nor sip:user@host[:port]"),
            ))
        })
        .collect()
}

/// An `http(s)://` URL that can travel inside an originate: no spaces, quotes, braces
/// or backslashes (commas are escaped when the originate is built).
fn url(param: &str, value: &str) -> Result<String, ParamError> {
    let parsed =
        url::Url::parse(value).map_err(|e| err(param, format!("{value:?} is not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(err(param, format!("{value:?} is not an http(s) URL")));
    }
    if value.len() > MAX_URL_LEN
        || value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "'\"{}\\^,".contains(c))
    {
        return Err(err(
            param,
            format!("{value:?}: at most {MAX_URL_LEN} characters, without spaces, commas, quotes, braces, ^ or \\"),
        ));
    }
    Ok(value.to_string())
}

fn method(param: &str, value: Option<&str>) -> Result<HttpMethod, ParamError> {
    match value.map(str::to_ascii_uppercase).as_deref() {
        None | Some("POST") => Ok(HttpMethod::Post),
        Some("GET") => Ok(HttpMethod::Get),
        Some(other) => Err(err(param, format!("{other:?}: expected GET or POST"))),
    }
}

fn post_only(param: &str, value: Option<&str>) -> Result<(), ParamError> {
    match method(param, value)? {
        HttpMethod::Post => Ok(()),
        HttpMethod::Get => Err(err(param, "GET is not supported yet (use POST)")),
    }
}

fn seconds(param: &str, value: Option<&str>) -> Result<Option<u64>, ParamError> {
    let Some(v) = value else { return Ok(None) };
    match v.parse::<u64>() {
        Ok(n) if (1..=MAX_SECONDS).contains(&n) => Ok(Some(n)),
        _ => Err(err(
            param,
            format!("{v:?}: expected whole seconds from 1 to {MAX_SECONDS}"),
        )),
    }
}

/// `k=v,k2=v2`: names and values of letters and digits (as a Dial's `sipHeaders`).
fn parse_sip_headers(list: &str) -> Result<Vec<(String, String)>, ParamError> {
    let alnum =
        |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric());
    let pairs: Vec<&str> = list.split(',').map(str::trim).collect();
    if pairs.len() > 16 {
        return Err(err("sip_headers", "at most 16 headers"));
    }
    pairs
        .into_iter()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if alnum(k.trim()) && alnum(v.trim()) => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(err(
                "sip_headers",
                format!("{pair:?}: expected name=value, letters and digits only"),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("from", "15551230000"),
            ("to", "7002"),
            ("answer_url", "http://127.0.0.1:5000/answer"),
        ]
    }

    fn param_of(extra: &[(&'static str, &'static str)]) -> String {
        let mut all = base();
        for (k, v) in extra {
            all.retain(|(n, _)| n != k);
            all.push((k, v));
        }
        parse(&p(&all)).unwrap_err().param
    }

    #[test]
    fn defaults_and_bulk() {
        let r = parse(&p(&base())).unwrap();
        assert_eq!(r.time_limit, DEFAULT_TIME_LIMIT);
        assert_eq!(r.ring_timeout, DEFAULT_RING_TIMEOUT);
        assert_eq!(r.to, vec![Destination::Number("7002".into())]);
        let mut bulk = base();
        bulk[1] = ("to", "7002<sip:alice@127.0.0.1:5060< +919876543210");
        let r = parse(&p(&bulk)).unwrap();
        assert_eq!(
            r.to,
            vec![
                Destination::Number("7002".into()),
                Destination::Sip("alice@127.0.0.1:5060".into()),
                Destination::Number("+919876543210".into()),
            ]
        );
    }

    #[test]
    fn every_bad_parameter_is_named() {
        assert_eq!(param_of(&[("answer_url", "ftp://x/y")]), "answer_url");
        assert_eq!(param_of(&[("answer_url", "not a url")]), "answer_url");
        assert_eq!(param_of(&[("from", "abc")]), "from");
        assert_eq!(param_of(&[("to", "7002<<7003")]), "to");
        assert_eq!(param_of(&[("ring_url", "http://a/b c")]), "ring_url");
        assert_eq!(param_of(&[("ring_method", "PUT")]), "ring_method");
        assert_eq!(param_of(&[("hangup_url", "x")]), "hangup_url");
        assert_eq!(param_of(&[("hangup_method", "GET")]), "hangup_method");
        assert_eq!(param_of(&[("fallback_url", "http://")]), "fallback_url");
        assert_eq!(param_of(&[("fallback_method", "x")]), "fallback_method");
        assert_eq!(param_of(&[("answer_method", "GET")]), "answer_method");
        assert_eq!(param_of(&[("caller_name", "a'b")]), "caller_name");
        assert_eq!(param_of(&[("time_limit", "0")]), "time_limit");
        assert_eq!(param_of(&[("hangup_on_ring", "-1")]), "hangup_on_ring");
        assert_eq!(param_of(&[("ring_timeout", "3.5")]), "ring_timeout");
        assert_eq!(param_of(&[("send_digits", "12x")]), "send_digits");
        assert_eq!(param_of(&[("sip_headers", "a=b,c")]), "sip_headers");
        assert_eq!(
            param_of(&[("machine_detection", "true")]),
            "machine_detection"
        );
        let missing = parse(&p(&[("from", "1"), ("to", "2")])).unwrap_err();
        assert_eq!(missing.param, "answer_url");
    }

    #[test]
    fn at_most_a_thousand_destinations() {
        let many = vec!["7002"; MAX_DESTINATIONS + 1].join("<");
        let mut all = base();
        all[1] = ("to", &many);
        assert_eq!(parse(&p(&all)).unwrap_err().param, "to");
        let ok = vec!["7002"; MAX_DESTINATIONS].join("<");
        all[1] = ("to", &ok);
        assert_eq!(parse(&p(&all)).unwrap().to.len(), MAX_DESTINATIONS);
    }
}
