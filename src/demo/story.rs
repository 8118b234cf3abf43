//! A call's story in plain words, from three points of view that must agree: the caller
//! (the simulator's report: what ran on the channel, how the call ended on the SIP
//! side), voxbridge (the CDR and its callbacks' delivery status in the store) and the
//! application (the requests it received). Anything that differs from the scenario's
//! expectation is listed, so the demo doubles as an end-to-end check.

use super::app::{Received, HANGUP_PATH};
use super::scenario::{Ending, Scenario};
use std::fmt::Write as _;
use std::time::Duration;
use voxbridge::record::callback::CallbackKind;
use voxbridge::store::{DeliveryState, DeliveryStatus, StoredCdr};
use voxbridge_sim::{AppRecord, AppStatus, CallReport, Outcome};

/// Everything known about one finished call.
pub struct CallFacts<'a> {
    pub scenario: &'a Scenario,
    pub answer_url: &'a str,
    pub report: &'a CallReport,
    pub cdr: Option<&'a StoredCdr>,
    pub received: &'a [Received],
}

/// The rendered story and what did not match the expectation.
pub struct Story {
    pub text: String,
    pub problems: Vec<String>,
}

/// Tells the story of one call.
pub fn tell(number: usize, of: usize, f: &CallFacts<'_>) -> Story {
    let s = f.scenario;
    let r = f.report;
    let mut out = String::new();
    let mut problems = Vec::new();
    let _ = writeln!(out, "Call {number} of {of}: {}", s.title);
    let _ = writeln!(out, "  what it shows: {}", s.shows);
    let _ = writeln!(
        out,
        "  {} ({}) dials {}; the switch hands the ringing call to voxbridge",
        s.script.caller_name, s.script.caller_number, s.destination
    );
    let _ = writeln!(out, "  [[route]] {} -> {}", s.destination, f.answer_url);

    for req in f
        .received
        .iter()
        .filter(|q| q.path.starts_with("/documents/"))
    {
        let _ = writeln!(
            out,
            "  the app was asked for the document: {} {} (Event={}, CallStatus={}), {}",
            req.method,
            req.path,
            req.param("Event").unwrap_or("?"),
            req.param("CallStatus").unwrap_or("?"),
            signature_words(req)
        );
        if let Err(e) = &req.signature {
            problems.push(format!("document request signature: {e}"));
        }
    }

    let heard = r
        .apps
        .iter()
        .any(|a| a.status == AppStatus::Completed && is_media(&a.name));
    if !heard {
        let _ = writeln!(
            out,
            "  the caller heard {}",
            if r.answered() {
                "silence"
            } else {
                "only ringing"
            }
        );
    }
    // voxbridge answers with `api uuid_answer` (no application runs for it).
    if r.commands.iter().any(|c| c.contains("uuid_answer")) {
        let at = r
            .answered_at
            .map(|t| format!("at {:>5} ", secs(t)))
            .unwrap_or_default();
        let _ = writeln!(out, "  {at}the call was answered (uuid_answer)");
    }
    for (app, times) in collapse(&r.apps) {
        let repeat = if times > 1 {
            format!(" (x{times})")
        } else {
            String::new()
        };
        let at = app
            .started_at
            .map(|t| format!("at {:>5} ", secs(t)))
            .unwrap_or_default();
        let _ = writeln!(out, "  {at}{}{repeat}", app_words(app));
    }

    // voxbridge hangs up with `sendmsg call-command: hangup` (no application runs for it).
    for h in r
        .hangup_commands
        .iter()
        .filter(|h| h.status == AppStatus::Completed)
    {
        let at = r
            .hangup_at
            .map(|t| format!("at {:>5} ", secs(t)))
            .unwrap_or_default();
        let _ = writeln!(out, "  {at}voxbridge ended the call ({})", h.label());
    }

    let _ = writeln!(out, "  ended: {}", ending_words(r));
    match r.answered_at {
        Some(at) => {
            let _ = writeln!(
                out,
                "  answered: yes, at {}; billed {} s of {} s",
                secs(at),
                r.billsec,
                r.duration_secs
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  answered: no; billed {} s of {} s",
                r.billsec, r.duration_secs
            );
        }
    }
    check_ending(s, r, &mut problems);

    match f.cdr {
        None => problems.push("no CDR in the store".into()),
        Some(cdr) => {
            let rec = &cdr.record;
            let _ = writeln!(
                out,
                "  voxbridge recorded: HangupCause={} ({}), HangupSource={}, HangupCauseName={}, BillDuration={} s",
                rec.hangup_cause.name(),
                rec.hangup_cause_code,
                rec.hangup_source.as_str(),
                rec.hangup_cause_name,
                rec.bill_duration_secs
            );
            for note in &rec.notes {
                let _ = writeln!(out, "  note: {note}");
            }
            check_record(s, cdr, &mut problems);
            for d in &cdr.deliveries {
                let _ = writeln!(out, "  {}", delivery_words(d, f.received));
            }
            check_deliveries(s, cdr, f.received, &mut problems);
        }
    }

    if problems.is_empty() {
        let _ = writeln!(out, "  => as expected");
    } else {
        let _ = writeln!(out, "  => NOT AS EXPECTED:");
        for p in &problems {
            let _ = writeln!(out, "     - {p}");
        }
    }
    Story {
        text: out,
        problems,
    }
}

/// Consecutive identical executions (a `loop="0"` Speak) shown once with a count.
fn collapse(apps: &[AppRecord]) -> Vec<(&AppRecord, usize)> {
    let mut out: Vec<(&AppRecord, usize)> = Vec::new();
    for app in apps {
        match out.last_mut() {
            Some((prev, n))
                if prev.name == app.name && prev.arg == app.arg && prev.status == app.status =>
            {
                *n += 1
            }
            _ => out.push((app, 1)),
        }
    }
    out
}

fn is_media(name: &str) -> bool {
    matches!(name, "speak" | "playback" | "sleep" | "send_dtmf")
}

/// One application the switch was asked to run, in words.
fn app_words(app: &AppRecord) -> String {
    let what = match app.name.as_str() {
        "speak" => {
            // engine|voice|text
            let mut parts = app.arg.splitn(3, '|');
            let engine = parts.next().unwrap_or_default();
            let voice = parts.next().unwrap_or_default();
            let text = parts.next().unwrap_or(&app.arg);
            format!("heard (speak, {engine}/{voice}): {text}")
        }
        "playback" => format!("heard (playback): {}", app.arg),
        "sleep" => format!("heard (sleep): {} ms of silence", app.arg),
        "send_dtmf" => format!("heard (send_dtmf): {}", app.arg),
        "answer" => "the call was answered (answer)".to_string(),
        "pre_answer" => "early media started (pre_answer)".to_string(),
        "sched_hangup" => format!(
            "a hangup was armed inside the switch (sched_hangup {})",
            app.arg
        ),
        other if app.arg.is_empty() => format!("the switch ran {other}"),
        other => format!("the switch ran {other} {}", app.arg),
    };
    match app.status {
        AppStatus::Completed => what,
        AppStatus::Skipped => format!("{what} -- never ran: the call was already down"),
        AppStatus::Flushed => format!("{what} -- cancelled before it ran"),
        AppStatus::Unknown => format!("{what} -- unknown application"),
        AppStatus::Pending => format!("{what} -- still running when the call ended"),
    }
}

/// How the call ended, from the caller's side.
fn ending_words(r: &CallReport) -> String {
    let at = r
        .hangup_at
        .map(|t| format!(" at {}", secs(t)))
        .unwrap_or_default();
    match &r.outcome {
        Outcome::Refused { sip, cause } => format!(
            "refused before answer with SIP {sip} ({}){at}",
            cause.name()
        ),
        Outcome::Bye { cause, q850 } => format!(
            "voxbridge hung up the answered call: BYE with cause {} (Q.850 {q850}){at}",
            cause.name()
        ),
        Outcome::CallerHungUp {
            cause,
            answered: true,
        } => format!("the Caller hung up (BYE, {}){at}", cause.name()),
        Outcome::CallerHungUp {
            cause,
            answered: false,
        } => format!(
            "the Caller gave up before answer (CANCEL, {}){at}",
            cause.name()
        ),
        Outcome::LeftParked => {
            "voxbridge left the socket without hanging up: the call stays parked".to_string()
        }
        Outcome::Aborted(why) => format!("the simulated call broke off: {why}"),
    }
}

fn check_ending(s: &Scenario, r: &CallReport, problems: &mut Vec<String>) {
    let e = &s.expected;
    let ok = match (e.ending, &r.outcome) {
        (Ending::Refused(code), Outcome::Refused { sip, .. }) => *sip == code,
        (Ending::Bye, Outcome::Bye { .. }) => true,
        (Ending::CallerHungUp, Outcome::CallerHungUp { .. }) => true,
        _ => false,
    };
    if !ok {
        problems.push(format!(
            "expected the call to end as {:?}, it ended as {:?}",
            e.ending, r.outcome
        ));
    }
    if r.answered() != e.answered {
        problems.push(format!(
            "expected answered={}, the caller saw answered={}",
            e.answered,
            r.answered()
        ));
    }
}

fn check_record(s: &Scenario, cdr: &StoredCdr, problems: &mut Vec<String>) {
    let e = &s.expected;
    let rec = &cdr.record;
    if rec.hangup_cause != e.cause {
        problems.push(format!(
            "expected HangupCause {}, recorded {}",
            e.cause.name(),
            rec.hangup_cause.name()
        ));
    }
    if rec.hangup_source != e.source {
        problems.push(format!(
            "expected HangupSource {}, recorded {}",
            e.source.as_str(),
            rec.hangup_source.as_str()
        ));
    }
    if !rec.hangup_cause_name.starts_with(e.cause_name) {
        problems.push(format!(
            "expected HangupCauseName {:?}, recorded {:?}",
            e.cause_name, rec.hangup_cause_name
        ));
    }
    if (rec.bill_duration_secs > 0) != e.billed {
        problems.push(format!(
            "expected {}, recorded BillDuration {} s",
            if e.billed {
                "a billed call"
            } else {
                "nothing billed"
            },
            rec.bill_duration_secs
        ));
    }
    if rec.duration_secs < e.min_duration {
        problems.push(format!(
            "expected the call to last at least {} s, it lasted {} s",
            e.min_duration, rec.duration_secs
        ));
    }
    if rec.answer_time.is_some() != e.answered {
        problems.push(format!(
            "expected answered={}, the CDR says answered={}",
            e.answered,
            rec.answer_time.is_some()
        ));
    }
}

/// A callback's delivery, with what the application received.
fn delivery_words(d: &DeliveryStatus, received: &[Received]) -> String {
    let what = match d.kind {
        CallbackKind::Hangup => "hangup callback",
        CallbackKind::Status => "status callback",
        CallbackKind::PostCall => "post-call workflow",
        CallbackKind::DialEvent => "Dial leg event",
        CallbackKind::Ring => "ring callback",
        CallbackKind::Action => "action request (response ignored)",
        CallbackKind::RecordStop => "RecordStop callback",
    };
    let status = match d.status {
        DeliveryState::Delivered => format!(
            "delivered ({} attempt{})",
            d.attempts,
            if d.attempts == 1 { "" } else { "s" }
        ),
        DeliveryState::Pending => format!(
            "pending ({} attempts; last error: {})",
            d.attempts,
            d.last_error.as_deref().unwrap_or("none")
        ),
        DeliveryState::Failed => format!(
            "failed ({} attempts; {})",
            d.attempts,
            d.last_error.as_deref().unwrap_or("no error recorded")
        ),
    };
    let seen = received
        .iter()
        .find(|q| q.param("DeliveryID") == Some(d.delivery_id.as_str()));
    let app_side = match seen {
        Some(q) => format!(
            "; the app received Event={} CallStatus={} HangupCause={} HangupSource={} HangupCauseName={}, {}",
            q.param("Event").unwrap_or("?"),
            q.param("CallStatus").unwrap_or("?"),
            q.param("HangupCause").unwrap_or("?"),
            q.param("HangupSource").unwrap_or("?"),
            q.param("HangupCauseName").unwrap_or("?"),
            signature_words(q)
        ),
        None => "; the app has not received it".to_string(),
    };
    format!("{what} {} {}: {status}{app_side}", d.method.as_str(), d.url)
}

fn check_deliveries(
    s: &Scenario,
    cdr: &StoredCdr,
    received: &[Received],
    problems: &mut Vec<String>,
) {
    let rec = &cdr.record;
    let find = |kind: CallbackKind| cdr.deliveries.iter().find(|d| d.kind == kind);
    match find(CallbackKind::Hangup) {
        None => problems.push("no hangup callback was enqueued".into()),
        Some(d) if d.status != DeliveryState::Delivered => problems.push(format!(
            "the hangup callback was not delivered ({})",
            d.status.as_str()
        )),
        Some(_) => {
            match received
                .iter()
                .find(|q| q.path.starts_with(HANGUP_PATH) && q.param("Event") == Some("Hangup"))
            {
                None => problems.push("the app did not receive the hangup callback".into()),
                Some(q) => {
                    if q.param("HangupCause") != Some(rec.hangup_cause.name())
                        || q.param("HangupSource") != Some(rec.hangup_source.as_str())
                        || q.param("HangupCauseName") != Some(rec.hangup_cause_name.as_str())
                    {
                        problems.push(
                            "the hangup callback the app received differs from the CDR".into(),
                        );
                    }
                    if let Err(e) = &q.signature {
                        problems.push(format!("hangup callback signature: {e}"));
                    }
                }
            }
        }
    }
    let post = find(CallbackKind::PostCall);
    match (s.expected.post_call, post) {
        (true, None) => problems.push("no post-call workflow was enqueued".into()),
        (true, Some(d)) if d.status != DeliveryState::Delivered => problems.push(format!(
            "the post-call workflow was not delivered ({})",
            d.status.as_str()
        )),
        (false, Some(_)) => problems.push("an unexpected post-call workflow was enqueued".into()),
        _ => {}
    }
}

fn signature_words(q: &Received) -> String {
    match &q.signature {
        Ok(()) => "signature verified".to_string(),
        Err(e) => format!("signature REJECTED: {e}"),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
