//! voxbridge's REST API as the application uses it during a live call (SPEC §6): the
//! live-call list and details, the CDR, DELETE — and the checks the scenarios' probes
//! make with them. Each check returns the mismatches it found (empty: all good), so a
//! scenario's report lists them beside the caller's leg and the callbacks.

use super::app::Params;
use super::process::{AUTH_ID, AUTH_TOKEN};
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// The fields of `GET Call/{uuid}/?status=live` (SPEC §6; every answer has an `api_id`).
const LIVE_KEYS: &[&str] = &[
    "api_id",
    "call_uuid",
    "direction",
    "from",
    "to",
    "caller_name",
    "call_status",
    "session_start",
    "answer_time",
    "scheduled_hangup_at",
];

/// One answer of the API.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub text: String,
    /// `Null` when the body is not JSON (a 204, say).
    pub json: Value,
}

/// The suite's account on one voxbridge.
#[derive(Clone)]
pub struct Rest {
    client: reqwest::Client,
    /// `http://…/api/v1/Account/{auth_id}`
    base: String,
}

impl Rest {
    pub fn new(account_url: String) -> Rest {
        Rest {
            client: voxbridge::http_client::builder().build().unwrap(),
            base: account_url,
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str) -> Result<Reply, String> {
        let url = format!("{}/{path}", self.base);
        let resp = self
            .client
            .request(method.clone(), &url)
            .header("X-Auth-ID", AUTH_ID)
            .header("X-Auth-Token", AUTH_TOKEN)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply { status, text, json })
    }

    /// `GET path` as bytes (the audio of a recording): status and body.
    pub async fn get_bytes(&self, path: &str) -> Result<(u16, Vec<u8>), String> {
        let url = format!("{}/{path}", self.base);
        let resp = self
            .client
            .get(&url)
            .header("X-Auth-ID", AUTH_ID)
            .header("X-Auth-Token", AUTH_TOKEN)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
        Ok((status, bytes.to_vec()))
    }

    pub async fn get(&self, path: &str) -> Result<Reply, String> {
        self.send(reqwest::Method::GET, path).await
    }

    pub async fn delete(&self, path: &str) -> Result<Reply, String> {
        self.send(reqwest::Method::DELETE, path).await
    }

    /// GETs `path` until `done` holds (every 50 ms, up to `within`); `Err` names `what`
    /// and shows the last answer.
    pub async fn poll(
        &self,
        path: &str,
        within: Duration,
        what: &str,
        done: impl Fn(&Reply) -> bool,
    ) -> Result<Reply, String> {
        let deadline = Instant::now() + within;
        loop {
            let r = self.get(path).await?;
            if done(&r) {
                return Ok(r);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "GET {path}: {what} not seen within {within:?}; last answer {} {}",
                    r.status, r.text
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An error answer of SPEC §6: that status and a JSON body with `api_id` and `error`.
fn is_error(r: &Reply, status: u16) -> bool {
    r.status == status && r.json["api_id"].is_string() && r.json["error"].is_string()
}

/// `YYYY-MM-DD HH:MM:SS` (UTC), the API's time format.
fn parse_time(v: &Value) -> Option<time::OffsetDateTime> {
    let text = v.as_str()?;
    time::PrimitiveDateTime::parse(
        text,
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
    )
    .ok()
    .map(|t| t.assume_utc())
}

/// [`super::scenarios::Probe::LiveWhileUp`].
pub async fn live_while_up(
    rest: &Rest,
    uuid: &str,
    tag: &str,
    ext: &str,
    call_status: &str,
) -> Vec<String> {
    let mut p = Vec::new();
    match rest
        .poll(
            "Call/?status=live",
            Duration::from_secs(3),
            "the call in the live list",
            |r| {
                r.status == 200
                    && r.json["calls"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|u| u == uuid))
            },
        )
        .await
    {
        Ok(_) => {}
        Err(e) => p.push(e),
    }
    let path = format!("Call/{uuid}/?status=live");
    let live = match rest
        .poll(
            &path,
            Duration::from_secs(3),
            &format!("call_status {call_status}"),
            |r| r.status == 200 && r.json["call_status"] == call_status,
        )
        .await
    {
        Ok(r) => r.json,
        Err(e) => {
            p.push(e);
            return p;
        }
    };
    let mut keys: Vec<&str> = live
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    let mut want: Vec<&str> = LIVE_KEYS.to_vec();
    want.sort_unstable();
    if keys != want {
        p.push(format!(
            "live details have keys {keys:?}, expected {want:?}"
        ));
    }
    for (field, value) in [
        ("call_uuid", uuid),
        ("direction", "inbound"),
        ("from", tag),
        ("to", ext),
        ("caller_name", "voxbridge-live"),
    ] {
        if live[field] != value {
            p.push(format!(
                "live details {field}={}, expected {value:?}",
                live[field]
            ));
        }
    }
    if parse_time(&live["session_start"]).is_none() {
        p.push(format!(
            "live details session_start={}, expected a time",
            live["session_start"]
        ));
    }
    let answered = parse_time(&live["answer_time"]).is_some();
    if answered != (call_status == "in-progress") {
        p.push(format!(
            "live details answer_time={} on a call {call_status}",
            live["answer_time"]
        ));
    }
    if !live["scheduled_hangup_at"].is_null() {
        p.push(format!(
            "live details scheduled_hangup_at={}, expected null (nothing scheduled)",
            live["scheduled_hangup_at"]
        ));
    }
    // The CDR does not exist yet: 404 pointing at the live view.
    match rest.get(&format!("Call/{uuid}/")).await {
        Ok(r) if is_error(&r, 404) && r.text.contains("status=live") => {}
        Ok(r) => p.push(format!(
            "GET Call/{uuid}/ while live: {} {}, expected 404 naming ?status=live",
            r.status, r.text
        )),
        Err(e) => p.push(e),
    }
    // A call nobody knows.
    let unknown = uuid::Uuid::new_v4();
    match rest.delete(&format!("Call/{unknown}/")).await {
        Ok(r) if is_error(&r, 404) => {}
        Ok(r) => p.push(format!(
            "DELETE of an unknown call: {} {}, expected 404 with a JSON error",
            r.status, r.text
        )),
        Err(e) => p.push(e),
    }
    p
}

/// [`super::scenarios::Probe::ScheduleArmed`], while the call is up: the time shown, or
/// what is wrong with it.
pub async fn schedule_armed(
    rest: &Rest,
    uuid: &str,
    secs: f64,
) -> Result<time::OffsetDateTime, String> {
    let path = format!("Call/{uuid}/?status=live");
    let asked = time::OffsetDateTime::now_utc();
    match rest
        .poll(&path, Duration::from_secs(2), "scheduled_hangup_at", |r| {
            r.status == 200 && !r.json["scheduled_hangup_at"].is_null()
        })
        .await
    {
        Err(e) => Err(e),
        Ok(r) => match parse_time(&r.json["scheduled_hangup_at"]) {
            None => Err(format!(
                "scheduled_hangup_at={}, expected a time",
                r.json["scheduled_hangup_at"]
            )),
            Some(at) => {
                // Armed before we asked: never further ahead than the schedule itself.
                let ahead = (at - asked).as_seconds_f64();
                if ahead <= secs + 1.0 {
                    Ok(at)
                } else {
                    Err(format!(
                        "scheduled_hangup_at is {ahead:.1} s ahead, expected at most {secs} s"
                    ))
                }
            }
        },
    }
}

/// [`super::scenarios::Probe::ScheduleGone`]: the call is live and nothing is scheduled.
pub async fn schedule_gone(rest: &Rest, uuid: &str) -> Vec<String> {
    match rest.get(&format!("Call/{uuid}/?status=live")).await {
        Ok(r) if r.status == 200 && r.json["scheduled_hangup_at"].is_null() => Vec::new(),
        Ok(r) if r.status == 200 => vec![format!(
            "scheduled_hangup_at={} after the Redirect, expected null (cancelled)",
            r.json["scheduled_hangup_at"]
        )],
        Ok(r) => vec![format!(
            "the call was no longer live when the schedule should have been cancelled: {} {}",
            r.status, r.text
        )],
        Err(e) => vec![e],
    }
}

/// [`super::scenarios::Probe::GoneAfterEnd`].
pub async fn gone_after_end(rest: &Rest, uuid: &str) -> Vec<String> {
    let mut p = Vec::new();
    match rest.delete(&format!("Call/{uuid}/")).await {
        Ok(r) if is_error(&r, 404) => {}
        Ok(r) => p.push(format!(
            "DELETE of the ended call: {} {}, expected 404 with a JSON error",
            r.status, r.text
        )),
        Err(e) => p.push(e),
    }
    match rest.get(&format!("Call/{uuid}/?status=live")).await {
        Ok(r) if is_error(&r, 404) => {}
        Ok(r) => p.push(format!(
            "GET ?status=live of the ended call: {} {}, expected 404",
            r.status, r.text
        )),
        Err(e) => p.push(e),
    }
    p
}

/// The CDR (`GET Call/{uuid}/`) says what the hangup callback said, and shows the
/// callback delivered.
pub async fn cdr_matches_callback(rest: &Rest, uuid: &str, cb: &Params) -> Vec<String> {
    let path = format!("Call/{uuid}/");
    let cdr = match rest
        .poll(
            &path,
            Duration::from_secs(5),
            "the CDR with its hangup callback delivered",
            |r| {
                r.status == 200
                    && r.json["callback_deliveries"].as_array().is_some_and(|d| {
                        d.iter()
                            .any(|d| d["kind"] == "hangup" && d["status"] == "delivered")
                    })
            },
        )
        .await
    {
        Ok(r) => r.json,
        Err(e) => return vec![e],
    };
    let mut p = Vec::new();
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    for (field, param) in [
        ("call_uuid", "CallUUID"),
        ("direction", "Direction"),
        ("from_number", "From"),
        ("to_number", "To"),
        ("hangup_cause", "HangupCause"),
        ("hangup_cause_code", "HangupCauseCode"),
        ("hangup_cause_name", "HangupCauseName"),
        ("hangup_source", "HangupSource"),
        ("hangup_reason", "HangupReason"),
        ("bill_duration", "BillDuration"),
        ("call_duration", "Duration"),
        ("initiation_time", "StartTime"),
        ("answer_time", "AnswerTime"),
        ("end_time", "EndTime"),
    ] {
        let got = text(&cdr[field]);
        let want = cb.get(param).unwrap_or("<missing>");
        if got != want {
            p.push(format!(
                "CDR {field}={got:?} but the hangup callback's {param}={want:?}"
            ));
        }
    }
    p
}
