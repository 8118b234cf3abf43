//! The callbacks a finished call owes the application (SPEC §5.2, §5.3, §4 rule 5), built
//! from the one [`CallRecord`] so the hangup callback, the status event and the post-call
//! workflow can never disagree.
//!
//! A callback is rendered completely — URL, method, content type and body — when the call
//! finishes, and written to the outbox in the same transaction as the CDR. The
//! `DeliveryID` is therefore generated *first* (a UUIDv7, so ids sort by creation time) and
//! put into the payload before it is serialized; the delivery worker sends the stored
//! bytes unchanged on every attempt, which is what makes the `DeliveryID` and the signed
//! body identical across retries and restarts.

use crate::cause::HangupCause;
use crate::record::call::{format_cdr_time, format_rfc3339, CallRecord};
use crate::record::callback::{CallbackKind, NewCallback};
use serde::Serialize;

/// The HTTP method of a callback: the one the documents use.
use crate::document::model::HttpMethod;

/// `application/x-www-form-urlencoded`, the body type of form callbacks.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
/// `application/json`, the body type of the status event.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// Where a finished call's callbacks go. Empty URLs mean "none of that kind".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallbackTargets {
    /// The hangup URL (after the SPEC §2 fallback chain; normally never empty).
    pub hangup_url: String,
    /// JSON status events; empty: none.
    pub status_callback_url: String,
    /// The post-call workflow of the Hangup that actually closed the call, if any.
    pub post_call: Option<(String, HttpMethod)>,
}

/// A fresh `DeliveryID`: a UUIDv7, unique and, within this process, strictly ordered by
/// creation (receivers and tests may sort a call's callbacks by it). Its 48-bit time and
/// 12-bit counter come from [`next_v7_tick`]; the other 62 bits are random, from the
/// thread's CSPRNG (seeded once from the OS): `Uuid::now_v7` asks the kernel
/// (`getrandom`) twice for every id (issue 16).
pub fn new_delivery_id() -> String {
    let tick = next_v7_tick();
    let mut bytes: [u8; 10] = rand::random();
    // rand_a (12 bits, after the version nibble): the counter within the millisecond.
    bytes[0] = ((tick >> 8) & 0x0f) as u8;
    bytes[1] = tick as u8;
    uuid::Builder::from_unix_timestamp_millis(tick >> 12, &bytes)
        .into_uuid()
        .to_string()
}

/// Milliseconds since the epoch << 12 | a counter: strictly increasing across calls.
/// Normally the clock's millisecond with counter 0, or one more than the last tick when
/// that is not later (same millisecond, more than 4,096 ids in one, or the clock stepped
/// back) — so ids never repeat or go backwards, at the price of running a little ahead
/// of the clock in a burst.
fn next_v7_tick() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        << 12;
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// Every callback the call owes, in the order they are enqueued: hangup, status,
/// post-call. Targets with an empty URL are skipped.
pub fn for_call(record: &CallRecord, targets: &CallbackTargets) -> Vec<NewCallback> {
    let mut out = Vec::with_capacity(3);
    if !targets.hangup_url.trim().is_empty() {
        out.push(hangup_callback(record, targets.hangup_url.trim()));
    }
    if !targets.status_callback_url.trim().is_empty() {
        out.push(status_callback(record, targets.status_callback_url.trim()));
    }
    if let Some((url, method)) = &targets.post_call {
        if !url.trim().is_empty() {
            out.push(post_call_callback(record, url.trim(), *method));
        }
    }
    out
}

/// The hangup callback: a form POST of [`hangup_params`] with `Event=Hangup`.
pub fn hangup_callback(record: &CallRecord, url: &str) -> NewCallback {
    let delivery_id = new_delivery_id();
    let params = hangup_params(record, "Hangup", &delivery_id);
    NewCallback {
        delivery_id,
        kind: CallbackKind::Hangup,
        method: HttpMethod::Post,
        url: url.to_string(),
        content_type: Some(FORM_CONTENT_TYPE.to_string()),
        body: encode_form(&params).into_bytes(),
    }
}

/// The JSON status event of SPEC §5.3, POSTed as `application/json`.
pub fn status_callback(record: &CallRecord, url: &str) -> NewCallback {
    let delivery_id = new_delivery_id();
    let body = status_event_json(record, &delivery_id);
    NewCallback {
        delivery_id,
        kind: CallbackKind::Status,
        method: HttpMethod::Post,
        url: url.to_string(),
        content_type: Some(JSON_CONTENT_TYPE.to_string()),
        body: body.into_bytes(),
    }
}

/// The post-call workflow request: the hangup callback's fields with `Event=PostCall`,
/// as a form body (POST) or in the query string (GET; parameters already in the URL are
/// kept, as for document fetches).
pub fn post_call_callback(record: &CallRecord, url: &str, method: HttpMethod) -> NewCallback {
    let delivery_id = new_delivery_id();
    let params = hangup_params(record, "PostCall", &delivery_id);
    match method {
        HttpMethod::Post => NewCallback {
            delivery_id,
            kind: CallbackKind::PostCall,
            method,
            url: url.to_string(),
            content_type: Some(FORM_CONTENT_TYPE.to_string()),
            body: encode_form(&params).into_bytes(),
        },
        HttpMethod::Get => NewCallback {
            delivery_id,
            kind: CallbackKind::PostCall,
            method,
            url: url_with_query(url, &params),
            content_type: None,
            body: Vec::new(),
        },
    }
}

/// An element's `action` requested through the outbox (response ignored): the fetch
/// parameters of its event (SPEC §5.1 and the element's own, e.g. a Gather's `Digits`,
/// a Dial's `DialStatus`) plus `DeliveryID`, as a form body (POST) or in the query
/// string (GET).
pub fn action_request(url: &str, method: HttpMethod, params: &[(String, String)]) -> NewCallback {
    form_request(CallbackKind::Action, url, method, params)
}

/// A Dial's leg event to its `callbackUrl` (SPEC §11.4), rendered like
/// [`action_request`].
pub fn dial_event_callback(
    url: &str,
    method: HttpMethod,
    params: &[(String, String)],
) -> NewCallback {
    form_request(CallbackKind::DialEvent, url, method, params)
}

/// A Dial's `DialDigitsMatch` event (SPEC §11.4): the Dial event `params` plus the digits
/// that matched and who pressed them (`aleg`/`bleg`), to the Dial's `callbackUrl`.
pub fn dial_digits_match_callback(
    url: &str,
    method: HttpMethod,
    mut params: Vec<(String, String)>,
    digits: String,
    pressed_by: &str,
) -> NewCallback {
    params.extend([
        ("DialDigitsMatch".to_string(), digits),
        ("DialDigitsPressedBy".to_string(), pressed_by.to_string()),
    ]);
    dial_event_callback(url, method, &params)
}

/// A Record's `Event=RecordStop` to its `callbackUrl` (SPEC §12.2), rendered like
/// [`action_request`].
pub fn record_stop_callback(
    url: &str,
    method: HttpMethod,
    params: &[(String, String)],
) -> NewCallback {
    form_request(CallbackKind::RecordStop, url, method, params)
}

/// `params` plus the `DeliveryID`, as a form POST or a GET query.
fn form_request(
    kind: CallbackKind,
    url: &str,
    method: HttpMethod,
    params: &[(String, String)],
) -> NewCallback {
    let delivery_id = new_delivery_id();
    let mut pairs: Vec<(&str, String)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    pairs.push(("DeliveryID", delivery_id.clone()));
    let form = |pairs: &[(&str, String)]| {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
            .finish()
    };
    match method {
        HttpMethod::Post => NewCallback {
            delivery_id,
            kind,
            method,
            url: url.to_string(),
            content_type: Some(FORM_CONTENT_TYPE.to_string()),
            body: form(&pairs).into_bytes(),
        },
        HttpMethod::Get => {
            let url = match url::Url::parse(url) {
                Ok(mut u) => {
                    u.query_pairs_mut()
                        .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
                    u.to_string()
                }
                Err(_) => {
                    let sep = if url.contains('?') { '&' } else { '?' };
                    format!("{url}{sep}{}", form(&pairs))
                }
            };
            NewCallback {
                delivery_id,
                kind,
                method,
                url,
                content_type: None,
                body: Vec::new(),
            }
        }
    }
}

/// The SPEC §5.2 parameters, in the order listed there and nothing else (receivers built
/// for Vobiz compare names). `SIPStatus` appears only when known; `AnswerTime` is present
/// but empty for an unanswered call.
pub fn hangup_params(
    record: &CallRecord,
    event: &str,
    delivery_id: &str,
) -> Vec<(&'static str, String)> {
    let mut p: Vec<(&'static str, String)> = Vec::with_capacity(20);
    p.push(("Event", event.to_string()));
    p.push(("CallUUID", record.call_uuid.clone()));
    p.push(("From", record.from.clone()));
    p.push(("To", record.to.clone()));
    p.push(("CallerName", record.caller_name.clone()));
    p.push(("Direction", record.direction.as_str().to_string()));
    p.push(("CallStatus", record.call_status().to_string()));
    p.push(("HangupCause", record.hangup_cause.name().to_string()));
    p.push(("HangupCauseCode", record.hangup_cause_code.to_string()));
    p.push(("HangupCauseName", record.hangup_cause_name.clone()));
    p.push(("HangupSource", record.hangup_source.as_str().to_string()));
    p.push(("HangupReason", record.hangup_reason.clone()));
    if let Some(sip) = record.sip_status {
        p.push(("SIPStatus", sip.to_string()));
    }
    p.push(("Duration", record.duration_secs.to_string()));
    p.push(("BillDuration", record.bill_duration_secs.to_string()));
    p.push(("StartTime", format_cdr_time(record.start_time)));
    p.push((
        "AnswerTime",
        record.answer_time.map(format_cdr_time).unwrap_or_default(),
    ));
    p.push(("EndTime", format_cdr_time(record.end_time)));
    p.push(("DeliveryID", delivery_id.to_string()));
    p
}

/// The `call-ended` event, keys in the order SPEC §5.3 shows them.
#[derive(Serialize)]
struct StatusEvent<'a> {
    event: &'static str,
    call_uuid: &'a str,
    status: &'static str,
    duration: u64,
    end_time: String,
    hangup_reason: &'static str,
    hangup_cause: &'static str,
    hangup_source: &'static str,
    delivery_id: &'a str,
}

/// The JSON body of the status event.
pub fn status_event_json(record: &CallRecord, delivery_id: &str) -> String {
    let event = StatusEvent {
        event: "call-ended",
        call_uuid: &record.call_uuid,
        status: record.call_status(),
        duration: record.duration_secs,
        end_time: format_rfc3339(record.end_time),
        hangup_reason: status_hangup_reason(record.hangup_cause),
        hangup_cause: record.hangup_cause.name(),
        hangup_source: record.hangup_source.as_str(),
        delivery_id,
    };
    // Serializing a struct of strings and integers cannot fail; the fallback keeps the
    // function total anyway.
    serde_json::to_string(&event).unwrap_or_else(|_| String::from("{}"))
}

/// SPEC §5.3: `busy` for USER_BUSY, `rejected` for CALL_REJECTED, else `completed`.
pub fn status_hangup_reason(cause: HangupCause) -> &'static str {
    match cause {
        HangupCause::USER_BUSY => "busy",
        HangupCause::CALL_REJECTED => "rejected",
        _ => "completed",
    }
}

fn encode_form(params: &[(&'static str, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
        .finish()
}

/// Appends the parameters to the URL's query, keeping what is already there. A URL the
/// `url` crate cannot parse is extended textually; its delivery will then fail with a
/// clear error instead of the callback being dropped here.
fn url_with_query(url: &str, params: &[(&'static str, String)]) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.query_pairs_mut()
                .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
            u.to_string()
        }
        Err(_) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}{}", encode_form(params))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::call::{Direction, HangupSource};
    use time::macros::datetime;

    /// Delivery ids are UUIDv7 carrying the time they were made, and each sorts after
    /// the one before (many are made within one millisecond here).
    #[test]
    fn delivery_ids_are_ordered_v7_ids_of_now() {
        let before = time::OffsetDateTime::now_utc().unix_timestamp();
        let ids: Vec<String> = (0..10_000).map(|_| new_delivery_id()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(parsed.get_version_num(), 7, "{id}");
            let (secs, _) = parsed.get_timestamp().unwrap().to_unix();
            let secs = secs as i64;
            assert!(
                secs >= before && secs <= before + 5,
                "{id}: {secs} vs {before}"
            );
        }
    }

    fn record() -> CallRecord {
        CallRecord {
            call_uuid: "c0ffee00-0000-4000-8000-000000000001".into(),
            account_id: "MA1".into(),
            direction: Direction::Inbound,
            from: "+15550001".into(),
            to: "7000".into(),
            caller_name: "Ann & Bob".into(),
            forwarded_from: None,
            start_time: datetime!(2026-04-09 10:29:15 UTC),
            answer_time: None,
            end_time: datetime!(2026-04-09 10:30:00 UTC),
            duration_secs: 45,
            bill_duration_secs: 0,
            hangup_cause: HangupCause::USER_BUSY,
            hangup_cause_code: 17,
            hangup_cause_name: "Busy Line".into(),
            hangup_source: HangupSource::AnswerXml,
            hangup_reason: "busy".into(),
            sip_status: Some(486),
            caller_abandoned: false,
            notes: vec![],
        }
    }

    fn form(body: &[u8]) -> Vec<(String, String)> {
        form_urlencoded::parse(body).into_owned().collect()
    }

    fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn hangup_form_has_every_field() {
        let cb = hangup_callback(&record(), "http://127.0.0.1:5000/hangup");
        assert_eq!(cb.kind, CallbackKind::Hangup);
        assert_eq!(cb.method, HttpMethod::Post);
        assert_eq!(cb.content_type.as_deref(), Some(FORM_CONTENT_TYPE));
        let p = form(&cb.body);
        let expect = [
            ("Event", "Hangup"),
            ("CallUUID", "c0ffee00-0000-4000-8000-000000000001"),
            ("From", "+15550001"),
            ("To", "7000"),
            ("CallerName", "Ann & Bob"),
            ("Direction", "inbound"),
            ("CallStatus", "completed"),
            ("HangupCause", "USER_BUSY"),
            ("HangupCauseCode", "17"),
            ("HangupCauseName", "Busy Line"),
            ("HangupSource", "Answer XML"),
            ("HangupReason", "busy"),
            ("SIPStatus", "486"),
            ("Duration", "45"),
            ("BillDuration", "0"),
            ("StartTime", "2026-04-09 10:29:15"),
            ("AnswerTime", ""),
            ("EndTime", "2026-04-09 10:30:00"),
        ];
        for (k, v) in expect {
            assert_eq!(get(&p, k), Some(v), "field {k}");
        }
        assert_eq!(get(&p, "DeliveryID"), Some(cb.delivery_id.as_str()));
        assert_eq!(p.len(), expect.len() + 1, "no other fields: {p:?}");
    }

    #[test]
    fn unknown_sip_status_is_omitted_and_answer_time_filled() {
        let mut r = record();
        r.sip_status = None;
        r.answer_time = Some(datetime!(2026-04-09 10:29:20 UTC));
        r.caller_abandoned = true;
        let p = form(&hangup_callback(&r, "http://h/x").body);
        assert_eq!(get(&p, "SIPStatus"), None);
        assert_eq!(get(&p, "AnswerTime"), Some("2026-04-09 10:29:20"));
        assert_eq!(get(&p, "CallStatus"), Some("cancel"));
    }

    #[test]
    fn status_event_matches_spec() {
        let mut r = record();
        r.hangup_cause = HangupCause::NORMAL_CLEARING;
        let cb = status_callback(&r, "http://h/status");
        assert_eq!(cb.content_type.as_deref(), Some(JSON_CONTENT_TYPE));
        let text = String::from_utf8(cb.body.clone()).unwrap();
        let expected = format!(
            "{{\"event\":\"call-ended\",\"call_uuid\":\"c0ffee00-0000-4000-8000-000000000001\",\
             \"status\":\"completed\",\"duration\":45,\"end_time\":\"2026-04-09T10:30:00Z\",\
             \"hangup_reason\":\"completed\",\"hangup_cause\":\"NORMAL_CLEARING\",\
             \"hangup_source\":\"Answer XML\",\"delivery_id\":\"{}\"}}",
            cb.delivery_id
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn status_reason_mapping() {
        assert_eq!(status_hangup_reason(HangupCause::USER_BUSY), "busy");
        assert_eq!(status_hangup_reason(HangupCause::CALL_REJECTED), "rejected");
        assert_eq!(
            status_hangup_reason(HangupCause::NORMAL_CLEARING),
            "completed"
        );
        assert_eq!(
            status_hangup_reason(HangupCause::ORIGINATOR_CANCEL),
            "completed"
        );
    }

    #[test]
    fn post_call_post_and_get() {
        let r = record();
        let post = post_call_callback(&r, "http://h/pc", HttpMethod::Post);
        assert_eq!(get(&form(&post.body), "Event"), Some("PostCall"));
        assert_eq!(post.url, "http://h/pc");

        let getcb = post_call_callback(&r, "http://h/pc?keep=1", HttpMethod::Get);
        assert!(getcb.body.is_empty());
        assert_eq!(getcb.content_type, None);
        let url = url::Url::parse(&getcb.url).unwrap();
        let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(get(&q, "keep"), Some("1"));
        assert_eq!(get(&q, "Event"), Some("PostCall"));
        assert_eq!(get(&q, "CallerName"), Some("Ann & Bob"));
        assert_eq!(get(&q, "DeliveryID"), Some(getcb.delivery_id.as_str()));
    }

    #[test]
    fn for_call_skips_empty_targets_and_ids_are_unique() {
        let r = record();
        let none = for_call(&r, &CallbackTargets::default());
        assert!(none.is_empty());
        let all = for_call(
            &r,
            &CallbackTargets {
                hangup_url: "http://h/hangup".into(),
                status_callback_url: "http://h/status".into(),
                post_call: Some(("http://h/pc".into(), HttpMethod::Get)),
            },
        );
        let kinds: Vec<_> = all.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            [
                CallbackKind::Hangup,
                CallbackKind::Status,
                CallbackKind::PostCall
            ]
        );
        assert_ne!(all[0].delivery_id, all[1].delivery_id);
        assert_ne!(all[1].delivery_id, all[2].delivery_id);
    }
}
