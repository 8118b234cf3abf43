//! `<Reject>`: refuse the call with its reason's cause, without answering. On a call
//! that is already answered it acts as Hangup with that cause (and says so in the notes).

use super::Begin;
use crate::call::hangup::{reason_cause, DocumentHangup};
use crate::document::model::Reject;

pub fn begin(reject: Reject, answered: bool) -> Begin {
    let note = answered.then(|| {
        format!(
            "Reject (reason={}) on an answered call acts as Hangup",
            reject.reason.as_str()
        )
    });
    Begin::HangUp {
        hangup: DocumentHangup {
            cause: reason_cause(reject.reason),
            reason: reject.reason,
        },
        post_call: None,
        note,
    }
}
