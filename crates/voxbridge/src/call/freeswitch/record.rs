//! The call's record (CDR) and its hand-over to the keeper: the one place a driver path
//! turns what it knows into a [`CallRecord`].
//!
//! Two builders, one per kind of knowledge:
//! - [`from_ending`]: the call ran — the engine's [`Ending`] says how it ended and the
//!   switch's final event (CHANNEL_HANGUP_COMPLETE, else CHANNEL_HANGUP) gives the
//!   times, durations and Q.850 code; the channel facts fill in what it lacks.
//! - [`closed_out_with_error`]: the call never ran its document (refused for the store,
//!   handshake failed after `connect`) or its task panicked — what the live row knows
//!   (or would have said, [`live_from_facts`]), ended now, source `Error`.
//!
//! [`mark_error`] turns either into "voxbridge ended it for an error of its own" (the
//! refused and cut-off calls of the normal path), and [`keep`] hands the record with its
//! callbacks to the [`RecordKeeper`](crate::store::keeper::RecordKeeper).

use super::channel::{micros_to_time, CallFacts};
use super::CallServices;
use crate::app::callbacks::{self, CallbackTargets};
use crate::call::hangup::Ending;
use crate::call::route::Resolved;
use crate::cause::HangupCause;
use crate::document::model::HttpMethod;
use crate::esl::event::Event;
use crate::record::call::{CallRecord, HangupSource};
use crate::record::callback::NewCallback;
use crate::store::LiveCall;
use time::OffsetDateTime;

/// The record of a call that ran: the engine's `ending`, the switch's `final_event`
/// (its `*_uepoch`, `duration`, `billsec`, `hangup_cause_q850` variables win), the
/// answer time seen on CHANNEL_ANSWER, then the channel facts.
pub(in crate::call) fn from_ending(
    facts: &CallFacts,
    resolved: &Resolved,
    ending: &Ending,
    final_event: Option<&Event>,
    answer_seen: Option<OffsetDateTime>,
) -> CallRecord {
    let [start_uepoch, answer_uepoch, end_uepoch, duration, billsec, q850] = match final_event {
        Some(e) => e.variables_of([
            "start_uepoch",
            "answer_uepoch",
            "end_uepoch",
            "duration",
            "billsec",
            "hangup_cause_q850",
        ]),
        None => [None; 6],
    };
    let start_time = start_uepoch
        .and_then(micros_to_time)
        .unwrap_or(facts.start_time);
    let answer_time = if ending.answered {
        answer_uepoch
            .and_then(micros_to_time)
            .or(answer_seen)
            .or(if facts.answered {
                Some(start_time)
            } else {
                None
            })
    } else {
        None
    };
    let end_time = end_uepoch
        .and_then(micros_to_time)
        .unwrap_or_else(OffsetDateTime::now_utc);
    let whole = |from: OffsetDateTime| -> u64 {
        (end_time.unix_timestamp() - from.unix_timestamp()).max(0) as u64
    };
    let duration_secs = duration
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| whole(start_time));
    let bill_duration_secs = match answer_time {
        None => 0,
        Some(at) => billsec
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| whole(at)),
    };
    let cause_code = q850
        .and_then(|v| v.parse::<u16>().ok())
        .unwrap_or(ending.cause_code);
    // A `POST Call/` time limit is armed inside the switch at the answer (`sched_hangup
    // +N ALLOTTED_TIMEOUT`, originate module): when the switch ends the call with it and
    // nothing of ours claims the end, it is that limit, set by the REST request.
    let (cause_name, source, mut notes) = (
        ending.cause_name.clone(),
        ending.source,
        ending.notes.clone(),
    );
    let time_limit = facts.variables.get(TIME_LIMIT_VARIABLE);
    let (cause_name, source) = match time_limit {
        Some(limit)
            if source == HangupSource::Unknown && ending.cause == HangupCause::ALLOTTED_TIMEOUT =>
        {
            notes.push(format!(
                "the time_limit of {limit} s set by POST Call/ ran out"
            ));
            (NAME_TIME_LIMIT.to_string(), HangupSource::Api)
        }
        _ => (cause_name, source),
    };
    CallRecord {
        call_uuid: facts.uuid.clone(),
        account_id: resolved.account_id.clone(),
        direction: facts.direction,
        from: facts.from.clone(),
        to: facts.to.clone(),
        caller_name: facts.caller_name.clone(),
        forwarded_from: facts.forwarded_from.clone(),
        start_time,
        answer_time,
        end_time,
        duration_secs,
        bill_duration_secs,
        hangup_cause: ending.cause,
        hangup_cause_code: cause_code,
        hangup_cause_name: cause_name,
        hangup_source: source,
        hangup_reason: ending.reason.as_str().to_string(),
        sip_status: ending.sip_status,
        caller_abandoned: ending.caller_abandoned,
        notes,
    }
}

/// The channel variable a `POST Call/` call carries its `time_limit` in.
pub const TIME_LIMIT_VARIABLE: &str = "voxbridge_time_limit";
/// `HangupCauseName` when a `POST Call/` time limit ended the call.
pub const NAME_TIME_LIMIT: &str = "Time Limit";

/// What the live row would have said, from the channel facts (a channel the dialplan
/// answered counts as answered from its start).
pub(in crate::call) fn live_from_facts(facts: &CallFacts, resolved: &Resolved) -> LiveCall {
    LiveCall {
        call_uuid: facts.uuid.clone(),
        account_id: resolved.account_id.clone(),
        direction: facts.direction,
        from: facts.from.clone(),
        to: facts.to.clone(),
        caller_name: facts.caller_name.clone(),
        forwarded_from: facts.forwarded_from.clone(),
        start_time: facts.start_time,
        answer_time: facts.answered.then_some(facts.start_time),
        scheduled_hangup_at: None,
        hangup_url: resolved.hangup_url.clone(),
        status_callback_url: resolved.status_callback_url.clone().unwrap_or_default(),
        switch_name: facts.switch_name.clone(),
    }
}

/// The record of a call voxbridge ended for an error of its own without seeing its
/// end: what `live` knows, ended now, NORMAL_TEMPORARY_FAILURE, HangupCauseName `name`,
/// `note` its only note.
pub(in crate::call) fn closed_out_with_error(
    live: &LiveCall,
    name: &str,
    note: &str,
) -> CallRecord {
    let mut record = crate::call::reconcile::closed_out_record(live, OffsetDateTime::now_utc());
    record.notes.clear();
    mark_error(
        &mut record,
        HangupCause::NORMAL_TEMPORARY_FAILURE,
        name,
        note,
    );
    record
}

/// The record says voxbridge ended the call with `cause` for an error of its own.
pub(in crate::call) fn mark_error(
    record: &mut CallRecord,
    cause: HangupCause,
    name: &str,
    note: &str,
) {
    record.hangup_cause = cause;
    record.hangup_cause_code = cause.q850();
    record.hangup_cause_name = name.to_string();
    record.hangup_source = HangupSource::Error;
    record.notes.push(note.to_string());
}

/// Counts the call as ended and hands its record, with the callbacks it owes (hangup,
/// status, and the document's post-call request if it set one), to the keeper: one
/// transaction, written on the keeper's task.
pub(in crate::call) async fn keep(
    services: &CallServices,
    resolved: &Resolved,
    record: CallRecord,
    post_call: Option<(String, HttpMethod)>,
    dial_notices: Vec<NewCallback>,
) {
    services
        .metrics
        .call_ended(record.hangup_cause.name(), record.hangup_source.as_str());
    let targets = CallbackTargets {
        hangup_url: resolved.hangup_url.clone(),
        status_callback_url: resolved.status_callback_url.clone().unwrap_or_default(),
        post_call,
    };
    let mut callbacks = callbacks::for_call(&record, &targets);
    callbacks.extend(dial_notices);
    if callbacks.is_empty() {
        tracing::warn!("no hangup URL for this call: the record is stored without a callback");
    }
    services.keeper.keep(record, callbacks).await;
}

/// A complete recording's row and its `RecordStop` callbacks (SPEC §12.2), the same for
/// every switch: the row names the call, its account and numbers; the callback carries
/// the recording's facts.
pub(in crate::call) fn recording_row(
    facts: &CallFacts,
    resolved: &Resolved,
    done: &crate::call::element::record::Completed,
) -> (crate::store::Recording, Vec<NewCallback>) {
    let at_ms = |ms: i64| {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .unwrap_or_else(|_| OffsetDateTime::now_utc())
    };
    let row = crate::store::Recording {
        recording_id: done.facts.recording_id.clone(),
        call_uuid: facts.uuid.clone(),
        account_id: resolved.account_id.clone(),
        kind: done.kind,
        file_path: done.path.clone(),
        format: done.format.ext().to_string(),
        duration_ms: done.facts.duration_ms,
        start: at_ms(done.facts.start_ms),
        end: at_ms(done.facts.end_ms),
        end_reason: done.end_reason,
        from_number: facts.from.clone(),
        to_number: facts.to.clone(),
        created_at: OffsetDateTime::now_utc(),
    };
    let callbacks = done
        .callback
        .iter()
        .map(|cb| {
            let mut params: Vec<(String, String)> = [
                ("Event", "RecordStop".to_string()),
                ("CallUUID", facts.uuid.clone()),
                ("From", facts.from.clone()),
                ("To", facts.to.clone()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            params.extend(
                done.facts
                    .params()
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v)),
            );
            callbacks::record_stop_callback(&cb.url, cb.method, &params)
        })
        .collect();
    (row, callbacks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::model::HangupReason;
    use crate::esl::event::EventFormat;
    use crate::record::call::Direction;
    use std::collections::HashMap;

    const START: i64 = 1_795_235_000;

    fn facts(answered: bool) -> CallFacts {
        CallFacts {
            uuid: "u-1".into(),
            answered,
            direction: Direction::Inbound,
            from: "1001".into(),
            to: "7000".into(),
            caller_name: "Alice".into(),
            forwarded_from: Some("2002".into()),
            start_time: OffsetDateTime::from_unix_timestamp(START).unwrap(),
            switch_name: "fs-test".into(),
            variables: HashMap::new(),
        }
    }

    fn resolved() -> Resolved {
        Resolved {
            answer_url: "http://127.0.0.1:1/answer".into(),
            fallback_answer_url: None,
            hangup_url: "http://127.0.0.1:1/hangup".into(),
            status_callback_url: None,
            account_id: "acc".into(),
            auth_token: None,
        }
    }

    fn ending(answered: bool) -> Ending {
        Ending {
            cause: HangupCause::NORMAL_CLEARING,
            cause_code: 16,
            cause_name: "Normal Hangup".into(),
            source: HangupSource::Caller,
            reason: HangupReason::Completed,
            post_call: None,
            caller_abandoned: false,
            sip_status: Some(200),
            answered,
            notes: vec!["from the engine".into()],
        }
    }

    fn hangup_complete(vars: &[(&str, &str)]) -> Event {
        let mut headers = vec![("Event-Name".to_string(), "CHANNEL_HANGUP_COMPLETE".into())];
        headers.extend(
            vars.iter()
                .map(|(k, v)| (format!("variable_{k}"), v.to_string())),
        );
        Event::new(headers.into_iter().collect(), None, EventFormat::Plain)
    }

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    #[test]
    fn the_switch_final_variables_win_over_what_the_driver_saw() {
        let event = hangup_complete(&[
            ("start_uepoch", "1795235001000000"),
            ("answer_uepoch", "1795235003000000"),
            ("end_uepoch", "1795235010000000"),
            ("duration", "9"),
            ("billsec", "7"),
            ("hangup_cause_q850", "31"),
        ]);
        let record = from_ending(
            &facts(false),
            &resolved(),
            &ending(true),
            Some(&event),
            Some(at(START + 5)),
        );
        assert_eq!(record.start_time, at(START + 1));
        assert_eq!(record.answer_time, Some(at(START + 3)));
        assert_eq!(record.end_time, at(START + 10));
        assert_eq!((record.duration_secs, record.bill_duration_secs), (9, 7));
        assert_eq!(record.hangup_cause_code, 31);
        assert_eq!(record.hangup_cause_name, "Normal Hangup");
        assert_eq!(record.hangup_source, HangupSource::Caller);
        assert_eq!(record.forwarded_from.as_deref(), Some("2002"));
        assert_eq!(record.account_id, "acc");
        assert_eq!(record.notes, vec!["from the engine".to_string()]);
    }

    #[test]
    fn without_switch_variables_the_answer_seen_and_the_facts_fill_in() {
        let event = hangup_complete(&[("end_uepoch", "1795235020000000")]);
        let seen = from_ending(
            &facts(false),
            &resolved(),
            &ending(true),
            Some(&event),
            Some(at(START + 5)),
        );
        assert_eq!(seen.start_time, at(START));
        assert_eq!(seen.answer_time, Some(at(START + 5)));
        assert_eq!((seen.duration_secs, seen.bill_duration_secs), (20, 15));
        assert_eq!(seen.hangup_cause_code, 16);
        // Answered by the dialplan before the hand-over: answered from its start.
        let by_dialplan = from_ending(&facts(true), &resolved(), &ending(true), Some(&event), None);
        assert_eq!(by_dialplan.answer_time, Some(at(START)));
        assert_eq!(by_dialplan.bill_duration_secs, 20);
    }

    #[test]
    fn a_call_the_engine_never_saw_answered_bills_nothing() {
        let event = hangup_complete(&[("answer_uepoch", "1795235003000000"), ("billsec", "7")]);
        let record = from_ending(
            &facts(true),
            &resolved(),
            &ending(false),
            Some(&event),
            Some(at(START + 5)),
        );
        assert_eq!(record.answer_time, None);
        assert_eq!(record.bill_duration_secs, 0);
    }

    #[test]
    fn an_error_close_out_says_error_with_its_one_note() {
        let live = live_from_facts(&facts(true), &resolved());
        assert_eq!(live.answer_time, Some(at(START)));
        let record = closed_out_with_error(&live, "Error: internal error", "what happened");
        assert_eq!(record.hangup_cause, HangupCause::NORMAL_TEMPORARY_FAILURE);
        assert_eq!(record.hangup_cause_code, 41);
        assert_eq!(record.hangup_cause_name, "Error: internal error");
        assert_eq!(record.hangup_source, HangupSource::Error);
        assert_eq!(record.notes, vec!["what happened".to_string()]);
        assert_eq!(record.answer_time, Some(at(START)));
        assert!(record.end_time >= record.start_time);
    }
}
