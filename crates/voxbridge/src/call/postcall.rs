//! Post-call mode (SPEC §4 rule 5): running a document after the call is over.
//!
//! When the Hangup that closed a call carries `postCallUrl`, the final call record is
//! delivered there (through the outbox). The response may be empty or an answer
//! document. Such a document cannot touch the call any more, so every element that needs
//! a live call (Speak, Play, Wait, PreAnswer, DTMF, Hangup, Reject) is skipped and listed,
//! and a Redirect is followed: the next document is fetched and treated the same way.
//! Elements after a Redirect are never reached (a Redirect replaces the rest of its
//! document), exactly as on a live call.
//!
//! Like the call engine this is sans-IO: [`PostCallRun::on_response`] takes what a fetch
//! returned and says what to do next; the caller performs the fetch (`Event=Redirect`,
//! with the final call record's parameters) and feeds the result back. The run is
//! bounded by the same 100-fetch limit as a call, the first response included.

use crate::call::engine::{FetchFailure, MAX_FETCHES_PER_CALL};
use crate::document::model::{AnswerDocument, HttpMethod, Instruction, Redirect};

/// What one post-call document amounts to: the elements skipped, in order, and the
/// Redirect to follow, if it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostCallDocument {
    pub skipped: Vec<String>,
    pub redirect: Option<Redirect>,
}

/// Reads one document in post-call mode (pure).
pub fn post_call_document(doc: &AnswerDocument) -> PostCallDocument {
    let mut skipped = Vec::new();
    for ins in &doc.instructions {
        match ins {
            Instruction::Redirect(r) => {
                return PostCallDocument {
                    skipped,
                    redirect: Some(r.clone()),
                };
            }
            Instruction::Speak(_)
            | Instruction::Play(_)
            | Instruction::Wait(_)
            | Instruction::PreAnswer(_)
            | Instruction::Hangup(_)
            | Instruction::Reject(_)
            | Instruction::Dtmf(_)
            | Instruction::Dial(_)
            | Instruction::Gather(_)
            | Instruction::Record(_) => {
                skipped.push(format!("skipped {} (call already ended)", ins.name()));
            }
        }
    }
    PostCallDocument {
        skipped,
        redirect: None,
    }
}

/// What to do after a post-call response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PostCallStep {
    /// Fetch this URL next and feed its result to [`PostCallRun::on_response`].
    Fetch { url: String, method: HttpMethod },
    /// The workflow is over; `notes` lists every skipped element and any error, in order,
    /// for the log and the CDR.
    Done { notes: Vec<String> },
}

/// One post-call workflow, from the response to the post-call request to the last
/// document of its Redirect chain.
#[derive(Clone, Debug)]
pub struct PostCallRun {
    max_fetches: u32,
    /// Requests made so far; the post-call request itself is the first.
    fetches: u32,
    notes: Vec<String>,
    done: bool,
}

impl Default for PostCallRun {
    fn default() -> Self {
        Self::new()
    }
}

impl PostCallRun {
    /// A run whose first request (the post-call delivery) has been made.
    pub fn new() -> Self {
        Self::with_limit(MAX_FETCHES_PER_CALL)
    }

    /// As [`PostCallRun::new`] with another fetch limit (tests).
    pub fn with_limit(max_fetches: u32) -> Self {
        Self {
            max_fetches,
            fetches: 1,
            notes: Vec::new(),
            done: false,
        }
    }

    /// Feeds the outcome of the last request: `Ok(None)` for an empty response (no
    /// document), `Ok(Some(doc))` for a document, `Err` when no valid document came back.
    /// Calling it again after `Done` returns `Done` with no notes.
    pub fn on_response(
        &mut self,
        response: Result<Option<AnswerDocument>, FetchFailure>,
    ) -> PostCallStep {
        if self.done {
            return PostCallStep::Done { notes: Vec::new() };
        }
        let doc = match response {
            Ok(Some(doc)) => doc,
            Ok(None) => return self.finish(),
            Err(failure) => {
                self.notes.push(format!("post-call {}", failure.message()));
                return self.finish();
            }
        };
        let read = post_call_document(&doc);
        self.notes.extend(read.skipped);
        let Some(redirect) = read.redirect else {
            return self.finish();
        };
        if self.fetches >= self.max_fetches {
            self.notes.push(format!(
                "post-call redirect limit of {} fetches reached; not following {}",
                self.max_fetches, redirect.url
            ));
            return self.finish();
        }
        self.fetches += 1;
        PostCallStep::Fetch {
            url: redirect.url,
            method: redirect.method,
        }
    }

    /// Requests made so far, the post-call request included.
    pub fn fetch_count(&self) -> u32 {
        self.fetches
    }

    fn finish(&mut self) -> PostCallStep {
        self.done = true;
        PostCallStep::Done {
            notes: std::mem::take(&mut self.notes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::model::{Dtmf, Hangup, HangupReason, Play, Reject, Speak, Voice, Wait};

    fn speak() -> Instruction {
        Instruction::Speak(Speak {
            text: "bye".into(),
            voice: Voice::Woman,
            language: "en-US".into(),
            loop_count: 1,
        })
    }

    fn redirect(url: &str) -> Instruction {
        Instruction::Redirect(Redirect {
            url: url.into(),
            method: HttpMethod::Get,
        })
    }

    fn every_live_element() -> Vec<Instruction> {
        vec![
            speak(),
            Instruction::Play(Play {
                url: "http://x.test/a.wav".into(),
                loop_count: 1,
            }),
            Instruction::Wait(Wait { length_secs: 1 }),
            Instruction::PreAnswer(vec![speak()]),
            Instruction::Dtmf(Dtmf {
                digits: "1".into(),
                async_: false,
            }),
            Instruction::Hangup(Hangup {
                reason: Some(HangupReason::Busy),
                schedule_secs: None,
                post_call: None,
            }),
            Instruction::Reject(Reject {
                reason: HangupReason::Rejected,
            }),
        ]
    }

    #[test]
    fn rule_5_post_call_mode_skips_every_live_element_and_lists_it() {
        let doc = AnswerDocument {
            instructions: every_live_element(),
        };
        let read = post_call_document(&doc);
        assert_eq!(
            read.skipped,
            [
                "Speak",
                "Play",
                "Wait",
                "PreAnswer",
                "DTMF",
                "Hangup",
                "Reject"
            ]
            .map(|n| format!("skipped {n} (call already ended)"))
        );
        assert_eq!(read.redirect, None);
    }

    #[test]
    fn rule_5_post_call_mode_follows_redirect_and_never_reaches_what_follows_it() {
        let mut run = PostCallRun::new();
        let first = AnswerDocument {
            instructions: vec![speak(), redirect("http://app.test/next"), speak()],
        };
        assert_eq!(
            run.on_response(Ok(Some(first))),
            PostCallStep::Fetch {
                url: "http://app.test/next".into(),
                method: HttpMethod::Get
            }
        );
        let second = AnswerDocument {
            instructions: vec![Instruction::Hangup(Hangup {
                reason: None,
                schedule_secs: None,
                post_call: None,
            })],
        };
        assert_eq!(
            run.on_response(Ok(Some(second))),
            PostCallStep::Done {
                notes: vec![
                    "skipped Speak (call already ended)".into(),
                    "skipped Hangup (call already ended)".into()
                ]
            }
        );
        assert_eq!(run.fetch_count(), 2);
        assert_eq!(
            run.on_response(Ok(None)),
            PostCallStep::Done { notes: vec![] }
        );
    }

    #[test]
    fn rule_5_empty_post_call_response_is_done_without_notes() {
        let mut run = PostCallRun::new();
        assert_eq!(
            run.on_response(Ok(None)),
            PostCallStep::Done { notes: vec![] }
        );
        let mut run = PostCallRun::new();
        assert_eq!(
            run.on_response(Ok(Some(AnswerDocument::default()))),
            PostCallStep::Done { notes: vec![] }
        );
    }

    #[test]
    fn rule_5_post_call_redirect_loop_stops_at_the_fetch_limit() {
        let mut run = PostCallRun::new();
        let looping = AnswerDocument {
            instructions: vec![redirect("http://app.test/loop")],
        };
        let mut fetches = 1;
        loop {
            match run.on_response(Ok(Some(looping.clone()))) {
                PostCallStep::Fetch { .. } => fetches += 1,
                PostCallStep::Done { notes } => {
                    assert_eq!(notes.len(), 1);
                    assert!(
                        notes[0].contains("redirect limit of 100 fetches"),
                        "{notes:?}"
                    );
                    break;
                }
            }
            assert!(fetches <= 100, "more than 100 fetches");
        }
        assert_eq!(fetches, 100);
        assert_eq!(run.fetch_count(), 100);
    }

    #[test]
    fn rule_5_post_call_fetch_failure_is_noted() {
        let mut run = PostCallRun::new();
        let step = run.on_response(Ok(Some(AnswerDocument {
            instructions: vec![redirect("http://app.test/down")],
        })));
        assert!(matches!(step, PostCallStep::Fetch { .. }));
        assert_eq!(
            run.on_response(Err(FetchFailure::Invalid("line 1, col 1: bad".into()))),
            PostCallStep::Done {
                notes: vec!["post-call invalid document: line 1, col 1: bad".into()]
            }
        );
    }
}
