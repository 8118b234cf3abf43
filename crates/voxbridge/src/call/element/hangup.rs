//! `<Hangup>`: end the call now with the document's reason (SPEC §4 rules 1–2), or with
//! `schedule` arm a hangup in the switch and go on (rule 3). A scheduled Hangup is never
//! "first". The attribution of either is in [`crate::call::hangup`].

use super::Begin;
use crate::call::hangup::document_hangup;
use crate::document::model::Hangup;

pub fn begin(hangup: Hangup, first: bool) -> Begin {
    match hangup.schedule_secs {
        Some(secs) => Begin::ArmHangup {
            secs,
            hangup: document_hangup(hangup.reason, false),
            post_call: hangup.post_call,
        },
        None => Begin::HangUp {
            hangup: document_hangup(hangup.reason, first),
            post_call: hangup.post_call,
            note: None,
        },
    }
}
