//! The demo's calls: who calls which number, which document answers, what the caller
//! does, and how the call must end (SPEC §4 and §5.2) — the demo fails if it does not.

use std::time::Duration;
use voxbridge::cause::HangupCause;
use voxbridge::record::call::HangupSource;
use voxbridge_sim::CallScript;

/// How the caller must see the call end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Refused before answer with this SIP final response.
    Refused(u16),
    /// voxbridge hung up the answered call: the caller got a BYE.
    Bye,
    /// The caller hung up first (BYE after answer, CANCEL before).
    CallerHungUp,
}

/// What a scenario must come to.
#[derive(Clone, Debug)]
pub struct Expected {
    pub ending: Ending,
    pub answered: bool,
    /// The CDR's and the hangup callback's `HangupCause`.
    pub cause: HangupCause,
    pub source: HangupSource,
    /// `HangupCauseName` starts with this (error names carry a detail after `Error: `).
    pub cause_name: &'static str,
    /// `BillDuration` above zero (answered calls) or zero (never answered).
    pub billed: bool,
    /// The call lasted at least this long (simulated seconds; the scheduled hangup).
    pub min_duration: u64,
    /// A post-call workflow POST must be delivered too.
    pub post_call: bool,
}

/// One call of the demo.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub title: &'static str,
    /// One sentence: what this call shows.
    pub shows: &'static str,
    /// The called number; a `[[route]]` sends it to `document`.
    pub destination: &'static str,
    /// A document the demo app serves (`examples/documents/<name>`, or `broken.xml`).
    pub document: &'static str,
    pub script: CallScript,
    pub expected: Expected,
}

/// A ringing call (extension 7001 of the shipped dialplan: voxbridge decides whether to
/// answer) from a named caller, which waits for an answer as long as the demo needs.
fn ringing(destination: &str, number: &str, name: &str) -> CallScript {
    CallScript::ringing()
        .destination(destination)
        .caller(number, name)
        // Simulated time runs fast; a caller must not give up on a ringing call just
        // because the machine is busy and a fetch takes a few real milliseconds.
        .originate_timeout(Duration::from_secs(24 * 3600))
}

/// The demo's calls in order; `short` keeps the five quick core flows, the full demo
/// adds the one-minute call, VoxML and an empty document. `speed` is the simulator's
/// clock speed.
pub fn scenarios(short: bool, speed: f64) -> Vec<Scenario> {
    // voxbridge stops a `loop="0"` whose runs end in under 100 ms of real time (a
    // broken file would otherwise spin the switch), so one run of the endless Speak of
    // the one-minute call must last longer than that in real time: 150 ms real, and
    // never under 2.5 s simulated (what flite takes for the six words).
    let endless_run = Duration::from_secs_f64((0.15 * speed).max(2.5));
    let mut all = vec![
        Scenario {
            title: "A greeting",
            shows: "the document speaks, pauses, speaks again and hangs up; voxbridge answers only when the first <Speak> needs it",
            destination: "7100",
            document: "greeting.xml",
            script: ringing("7100", "15551230001", "Alice"),
            expected: Expected {
                ending: Ending::Bye,
                answered: true,
                cause: HangupCause::NORMAL_CLEARING,
                source: HangupSource::AnswerXml,
                cause_name: "Normal Hangup",
                billed: true,
                min_duration: 0,
                post_call: false,
            },
        },
        Scenario {
            title: "Busy, refused before answer",
            shows: "<Hangup reason=\"busy\"/> on a ringing call: the caller gets SIP 486, nothing is answered or billed",
            destination: "7101",
            document: "reject-busy.xml",
            script: ringing("7101", "15551230002", "Bob"),
            expected: Expected {
                ending: Ending::Refused(486),
                answered: false,
                cause: HangupCause::USER_BUSY,
                source: HangupSource::AnswerXml,
                cause_name: "Busy Line",
                billed: false,
                min_duration: 0,
                post_call: false,
            },
        },
        Scenario {
            title: "Post-call workflow",
            shows: "a closing message, then a Hangup with postCallUrl: after the call, its final record is POSTed to the app",
            destination: "7103",
            document: "post-call.xml",
            script: ringing("7103", "15551230004", "Dave"),
            expected: Expected {
                ending: Ending::Bye,
                answered: true,
                cause: HangupCause::NORMAL_CLEARING,
                source: HangupSource::AnswerXml,
                cause_name: "Normal Hangup",
                billed: true,
                min_duration: 0,
                post_call: true,
            },
        },
        Scenario {
            title: "The caller hangs up mid-sentence",
            shows: "the caller hangs up one second into the first <Speak>; the caller's hangup is recorded, nothing else runs",
            destination: "7104",
            document: "greeting.xml",
            script: ringing("7104", "15551230005", "Erin")
                .speak_per_word(Duration::from_millis(400))
                .caller_hangs_up_during("speak", Duration::from_secs(1)),
            expected: Expected {
                ending: Ending::CallerHungUp,
                answered: true,
                cause: HangupCause::NORMAL_CLEARING,
                source: HangupSource::Caller,
                cause_name: "Caller Hangup",
                billed: true,
                min_duration: 0,
                post_call: false,
            },
        },
        Scenario {
            title: "A broken document",
            shows: "the app answers with an invalid document (reason=\"later\"); nothing of it runs, the call is refused and the error reported",
            destination: "7105",
            document: "broken.xml",
            script: ringing("7105", "15551230006", "Frank"),
            expected: Expected {
                ending: Ending::Refused(603),
                answered: false,
                cause: HangupCause::CALL_REJECTED,
                source: HangupSource::Error,
                cause_name: "Error: ",
                billed: false,
                min_duration: 0,
                post_call: false,
            },
        },
    ];
    if !short {
        all.extend([
            Scenario {
                title: "Hang up after a minute",
                shows: "<Hangup schedule=\"60\"/> arms a hangup inside the switch; the call talks until it fires (the simulator's clock runs fast)",
                destination: "7102",
                document: "hangup-after-a-minute.xml",
                script: ringing("7102", "15551230003", "Carol").speak_per_word(endless_run / 6),
                expected: Expected {
                    ending: Ending::Bye,
                    answered: true,
                    cause: HangupCause::NORMAL_CLEARING,
                    source: HangupSource::AnswerXml,
                    cause_name: "Normal Hangup",
                    billed: true,
                    min_duration: 60,
                    post_call: false,
                },
            },
            Scenario {
                title: "The greeting in VoxML",
                shows: "the same flow written as TryVox VoxML JSON: the engine never sees which dialect it came from",
                destination: "7106",
                document: "greeting.json",
                script: ringing("7106", "15551230007", "Grace"),
                expected: Expected {
                    ending: Ending::Bye,
                    answered: true,
                    cause: HangupCause::NORMAL_CLEARING,
                    source: HangupSource::AnswerXml,
                    cause_name: "Normal Hangup",
                    billed: true,
                min_duration: 0,
                    post_call: false,
                },
            },
            Scenario {
                title: "An empty document; the caller gives up",
                shows: "<Response></Response> leaves the call ringing; after 20 s the caller gives up (CANCEL, CallStatus=cancel)",
                destination: "7107",
                document: "empty.xml",
                script: ringing("7107", "15551230008", "Heidi")
                    .caller_hangs_up_at(Duration::from_secs(20)),
                expected: Expected {
                    ending: Ending::CallerHungUp,
                    answered: false,
                    cause: HangupCause::ORIGINATOR_CANCEL,
                    source: HangupSource::Caller,
                    cause_name: "Caller Hangup",
                    billed: false,
                min_duration: 0,
                    post_call: false,
                },
            },
        ]);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_unique_and_short_is_a_prefix() {
        let full = scenarios(false, 20.0);
        let short = scenarios(true, 20.0);
        assert!(short.len() < full.len());
        for (s, f) in short.iter().zip(&full) {
            assert_eq!(s.destination, f.destination);
        }
        let mut numbers: Vec<_> = full.iter().map(|s| s.destination).collect();
        numbers.sort();
        numbers.dedup();
        assert_eq!(numbers.len(), full.len());
        for s in &full {
            assert_eq!(s.script.destination, s.destination, "{}", s.title);
        }
    }
}
