//! The plan of a document: one line per instruction saying what it will do to the
//! switch, e.g. `3  Hangup reason=busy → hangup USER_BUSY (486 if unanswered)`.
//!
//! `voxbridge check` prints it so admins can see, before any call, how a document
//! ends the call (SPEC §4): which cause, which SIP code a caller who was never
//! answered will get, and which elements are never reached.

use crate::cause::HangupCause;

use super::error::show;
use super::model::{AnswerDocument, HangupReason, Instruction, Voice};

/// The cause SPEC §4 gives a Hangup that ends the call now: its reason, or without
/// one CALL_REJECTED when it is the first element of the document, else
/// NORMAL_CLEARING.
pub fn hangup_cause(reason: Option<HangupReason>, first_element: bool) -> HangupCause {
    match reason {
        Some(r) => reason_cause(r),
        None if first_element => HangupCause::CALL_REJECTED,
        None => HangupCause::NORMAL_CLEARING,
    }
}

/// The cause a document reason maps to.
pub fn reason_cause(reason: HangupReason) -> HangupCause {
    match reason {
        HangupReason::Rejected => HangupCause::CALL_REJECTED,
        HangupReason::Busy => HangupCause::USER_BUSY,
        HangupReason::Completed => HangupCause::NORMAL_CLEARING,
    }
}

/// `USER_BUSY (486 if unanswered)`.
fn cause_text(cause: HangupCause) -> String {
    format!(
        "{} ({} if unanswered)",
        cause.name(),
        cause.sip_refuse_code()
    )
}

/// The plan, one line per instruction (children of PreAnswer numbered `2.1`, `2.2`),
/// plus a last line saying how the call ends when the document runs out.
pub fn plan(doc: &AnswerDocument) -> Vec<String> {
    let mut lines = Vec::new();
    if doc.instructions.is_empty() {
        lines.push(
            "(empty document) → nothing is done: the call stays as it is until the caller or the \
             API hangs up, or empty_document_timeout ends it with ALLOTTED_TIMEOUT"
                .to_string(),
        );
        return lines;
    }
    let mut ended_at: Option<usize> = None;
    for (i, ins) in doc.instructions.iter().enumerate() {
        let number = (i + 1).to_string();
        let mut line = format!("{number}  {}", describe(ins, i == 0, false));
        if let Some(end) = ended_at {
            line.push_str(&format!("  (never reached: {} ends the call)", end + 1));
        }
        lines.push(line);
        let children = match ins {
            Instruction::PreAnswer(children) => Some((children, true)),
            Instruction::Gather(g) => Some((&g.prompts, false)),
            _ => None,
        };
        if let Some((children, early_media)) = children {
            for (j, child) in children.iter().enumerate() {
                let mut line = format!(
                    "{number}.{}  {}",
                    j + 1,
                    describe(child, false, early_media)
                );
                if ended_at.is_some() {
                    line.push_str("  (never reached)");
                }
                lines.push(line);
            }
        }
        if ended_at.is_none() && ends_document(ins) {
            ended_at = Some(i);
        }
    }
    if ended_at.is_none() {
        lines.push(format!(
            "end  no more instructions → hangup {} \"End Of XML Instructions\"",
            cause_text(HangupCause::NORMAL_CLEARING)
        ));
    }
    lines
}

/// Whether nothing after this instruction runs in this document.
fn ends_document(ins: &Instruction) -> bool {
    match ins {
        Instruction::Hangup(h) => h.schedule_secs.is_none(),
        Instruction::Reject(_) | Instruction::Redirect(_) => true,
        _ => false,
    }
}

fn times(loop_count: u32) -> String {
    match loop_count {
        0 => "repeated until the call ends".into(),
        1 => "once".into(),
        n => format!("{n} times"),
    }
}

fn voice(v: Voice) -> &'static str {
    match v {
        Voice::Woman => "WOMAN",
        Voice::Man => "MAN",
    }
}

/// `Element attributes → effect`.
fn describe(ins: &Instruction, first: bool, early_media: bool) -> String {
    let answer = if early_media {
        "as early media (not answered)"
    } else {
        "after answering the call if not answered yet"
    };
    match ins {
        Instruction::Speak(s) => format!(
            "Speak voice={} language={} loop={} {} → speak {}, {answer}",
            voice(s.voice),
            s.language,
            s.loop_count,
            show(&s.text),
            times(s.loop_count)
        ),
        Instruction::Play(p) => {
            let how = if p.url.to_ascii_lowercase().starts_with("http") {
                "playback through http_cache://"
            } else {
                "playback"
            };
            format!(
                "Play loop={} {} → {how} {}, {answer}",
                p.loop_count,
                p.url,
                times(p.loop_count)
            )
        }
        Instruction::Wait(w) => format!(
            "Wait length={} → sleep {} ms, in whatever state the call is (ringing, early media or answered)",
            w.length_secs,
            u64::from(w.length_secs) * 1000
        ),
        Instruction::PreAnswer(children) => format!(
            "PreAnswer ({} element{}) → pre_answer: early media (183), the call is not answered",
            children.len(),
            if children.len() == 1 { "" } else { "s" }
        ),
        Instruction::Hangup(h) => {
            let mut attrs = String::from("Hangup");
            if let Some(r) = h.reason {
                attrs.push_str(&format!(" reason={}", r.as_str()));
            }
            if let Some(s) = h.schedule_secs {
                attrs.push_str(&format!(" schedule={s}"));
            }
            if let Some(pc) = &h.post_call {
                attrs.push_str(&format!(" postCallUrl={} postCallMethod={}", pc.url, pc.method.as_str()));
            }
            let mut effect = match h.schedule_secs {
                Some(s) => {
                    let cause = h.reason.map(reason_cause).unwrap_or(HangupCause::NORMAL_CLEARING);
                    format!("sched_hangup +{s} {}, then continue with the next element", cause.name())
                }
                None => {
                    let mut e = format!("hangup {}", cause_text(hangup_cause(h.reason, first)));
                    if h.reason.is_none() && first {
                        e.push_str(", no reason on the first element means rejected");
                    }
                    e
                }
            };
            if let Some(pc) = &h.post_call {
                effect.push_str(&format!(
                    "; if this Hangup ends the call: post-call {} {}",
                    pc.method.as_str(),
                    pc.url
                ));
            }
            format!("{attrs} → {effect}")
        }
        Instruction::Reject(r) => format!(
            "Reject reason={} → hangup {} without answering (acts as Hangup if already answered)",
            r.reason.as_str(),
            cause_text(reason_cause(r.reason))
        ),
        Instruction::Redirect(r) => format!(
            "Redirect {} {} → fetch a new document (Event=Redirect) and run it instead of the rest",
            r.method.as_str(),
            r.url
        ),
        Instruction::Dtmf(d) => format!(
            "DTMF digits={} async={} → send_dtmf {}, {answer}",
            d.digits, d.async_, d.digits
        ),
        Instruction::Dial(d) => describe_dial(d),
        Instruction::Record(r) => describe_record(r, answer),
        Instruction::Gather(g) => {
            let finish = match g.finish_on_key {
                Some(k) => k.to_string(),
                None => "none".to_string(),
            };
            let with_digits = if g.redirect {
                format!(
                    "{} {} (Event=Gather, Digits) and run its document instead of the rest",
                    g.method.as_str(),
                    g.action
                )
            } else {
                format!(
                    "{} {} (Event=Gather, Digits) through the outbox, then continue",
                    g.method.as_str(),
                    g.action
                )
            };
            format!(
                "Gather numDigits={} finishOnKey={finish} executionTimeout={} digitEndTimeout={} \
                 redirect={} log={} ({} prompt{}) → {answer}: play the prompts (the first digit \
                 stops them), collect DTMF; with digits: {with_digits}; no input: continue with \
                 the next element, no request",
                g.num_digits,
                g.execution_timeout_secs,
                g.digit_end_timeout_secs,
                g.redirect,
                g.log,
                g.prompts.len(),
                if g.prompts.len() == 1 { "" } else { "s" }
            )
        }
    }
}

/// `Record …` → what is recorded and what follows.
fn describe_record(r: &crate::document::model::Record, answer: &str) -> String {
    let format = match r.file_format {
        Some(crate::document::model::AudioFormat::Mp3) => "mp3",
        Some(crate::document::model::AudioFormat::Wav) => "wav",
        None => "record.format",
    };
    let then = match (&r.action, r.redirect) {
        (Some(url), true) => format!(
            "{} {url} (Event=Record) and run its document instead of the rest",
            r.method.as_str()
        ),
        (Some(url), false) => format!(
            "{} {url} (Event=Record) through the outbox",
            r.method.as_str()
        ),
        (None, _) => "no action".to_string(),
    };
    let callback = match &r.callback {
        Some(cb) => format!("; RecordStop to {} {}", cb.method.as_str(), cb.url),
        None => String::new(),
    };
    if r.record_session || r.start_on_dial_answer {
        let from = if r.record_session {
            "now"
        } else {
            "the next Dial's answer"
        };
        return format!(
            "Record {} fileFormat={format} → record the whole call (both directions) from {from}              until the hangup, in the background, and continue at once; when the file is              complete: {then}{callback}",
            if r.record_session {
                "recordSession=true"
            } else {
                "startOnDialAnswer=true"
            }
        );
    }
    let keys = if r.finish_on_key.is_empty() {
        "none"
    } else {
        r.finish_on_key.as_str()
    };
    format!(
        "Record maxLength={} timeout={} finishOnKey={keys} playBeep={} fileFormat={format} →          {answer}, {}record the caller until {} s of silence, maxLength, a finish key or the          hangup; then: {then}{callback}",
        r.max_length_secs,
        r.timeout_secs,
        r.play_beep,
        if r.play_beep { "beep, " } else { "" },
        r.timeout_secs
    )
}

/// `Dial …` → what the bridge does and what follows it.
fn describe_dial(d: &crate::document::model::Dial) -> String {
    let targets: Vec<String> = d
        .destinations
        .iter()
        .map(|dest| match &dest.target {
            crate::document::model::DialTarget::Number(n) => format!("Number {n}"),
            crate::document::model::DialTarget::User(u) => format!("User {u}"),
        })
        .collect();
    let mut line = format!(
        "Dial timeout={} timeLimit={} hangupOnStar={} [{}] → bridge, ringing {} at once, first to answer wins; \
         the caller is answered only when a callee answers",
        d.timeout_secs,
        d.time_limit_secs,
        d.hangup_on_star,
        targets.join(", "),
        if d.destinations.len() == 1 { "it" } else { "them all" },
    );
    match &d.action {
        Some(a) if d.redirect => line.push_str(&format!(
            "; then fetch {} {} (Event=DialAction) and run it instead of the rest",
            a.method.as_str(),
            a.url
        )),
        Some(a) => line.push_str(&format!(
            "; then request {} {} (Event=DialAction, response ignored) and continue",
            a.method.as_str(),
            a.url
        )),
        None => line.push_str("; then continue with the next element"),
    }
    line
}
