//! `<Gather>` (SPEC §12.1), DTMF only: the rules of one Gather, as a small state
//! machine the engine drives. It answers the call, plays its prompts in order while it
//! listens, and ends on `numDigits` digits, on `finishOnKey`, `digitEndTimeout` after
//! a digit, or `executionTimeout` with no digit (counted from the end of the prompts).
//!
//! Decisions:
//! * **Prompts are the engine's own operations** (Speak, Play, Wait, with their loops),
//!   not one switch primitive such as FreeSWITCH's `play_and_get_digits`: that one
//!   takes a single file, cannot speak, and would hide the digits from the engine until
//!   it returns. Digits come from the channel's DTMF events ([`crate::call::engine::Input::Dtmf`]),
//!   and the timers are the engine's (`poll_timeout`/`handle_timeout`), so the rules
//!   here are the same on every switch.
//! * **Barge-in**: the first digit stops the prompt that is playing at once (the engine
//!   emits [`crate::call::engine::Action::Interrupt`]; FreeSWITCH: `uuid_break`) and the
//!   prompts left are skipped. Further digits end nothing by themselves but re-arm
//!   `digitEndTimeout`.
//! * **Digits pressed before the Gather starts are not counted.** A Gather begins with
//!   [`ChannelOp::FlushDigits`]: the switch drops the digits it holds (FreeSWITCH's
//!   `flush_dtmf` dequeues them, so their DTMF events go out before its
//!   CHANNEL_EXECUTE_COMPLETE), and the Gather only listens once that operation has
//!   finished. Events arrive in order on the socket, so every digit seen before is a
//!   digit pressed before, and is ignored.
//! * **No input**: no request; execution continues with the next element.
//! * `log="false"`: the notes and logs say how many digits there were, never which.
//! * `finishOnKey` pressed with no digit before it ends the input with no digits: no
//!   input, as Plivo does.

use super::{flatten_prompts, repeat, Step};
use crate::call::channel_op::{ChannelOp, OpOutcome};
use crate::document::model::{Gather, HttpMethod};
use std::time::{Duration, Instant};

/// What happens next in a Gather, as the engine carries it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Run this operation (flush, or a prompt).
    Run(ChannelOp),
    /// Nothing to run: wait for digits or the deadline.
    Listen,
    /// The Gather is over.
    Done(Outcome),
}

/// How a Gather ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Empty: no input (no request is made).
    pub digits: String,
    pub action: String,
    pub method: HttpMethod,
    pub redirect: bool,
    /// For the notes: what ended the input, and the digits (masked if `log="false"`).
    pub note: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// `FlushDigits` is running: digits seen now were pressed before the Gather.
    Flushing,
    /// Prompt `index` is running (its run `repetitions` + 1).
    Prompting {
        index: usize,
        repetitions: u32,
        started: Instant,
    },
    /// The prompts are over (or were cut short by a digit).
    Listening,
}

/// One running Gather.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatherRun {
    gather: Gather,
    prompts: Vec<Step>,
    phase: Phase,
    digits: String,
    /// Set once a digit has stopped the prompts.
    barged: bool,
    /// When the digit that interrupted a playing prompt came (switch time), until that
    /// prompt's completion is noted.
    interrupted_at: Option<Instant>,
    /// The input is over but the interrupted prompt has not finished yet.
    pending: Option<Outcome>,
    deadline: Option<Instant>,
}

/// What a digit did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DigitEffect {
    /// Not counted (the Gather is not listening yet) or nothing visible changed.
    Ignored,
    /// Counted; if `interrupt`, the running prompt must be stopped now.
    Counted { interrupt: bool },
}

impl GatherRun {
    /// A Gather begins: flush the digits the switch holds.
    pub fn begin(gather: Gather) -> (Self, ChannelOp) {
        let prompts = flatten_prompts(gather.prompts.clone());
        (
            Self {
                gather,
                prompts,
                phase: Phase::Flushing,
                digits: String::new(),
                barged: false,
                interrupted_at: None,
                pending: None,
                deadline: None,
            },
            ChannelOp::FlushDigits,
        )
    }

    /// When the Gather next needs [`GatherRun::timeout`].
    pub fn deadline(&self) -> Option<Instant> {
        if self.pending.is_some() {
            return None;
        }
        self.deadline
    }

    /// The operation the Gather started has finished at `now`.
    pub fn op_finished(
        &mut self,
        now: Instant,
        outcome: &OpOutcome,
        notes: &mut Vec<String>,
    ) -> Next {
        if let Some(digit_at) = self.interrupted_at.take() {
            // Both times are the switch's (the DTMF event's and the completion's), so this
            // is how long the caller heard the prompt after pressing.
            let ms = now.saturating_duration_since(digit_at).as_millis();
            let note = format!("Gather barge-in: the prompt stopped {ms} ms after the first digit");
            tracing::info!("{note}");
            notes.push(note);
        }
        if let Some(done) = self.pending.take() {
            return Next::Done(done);
        }
        let next_index = match self.phase {
            Phase::Flushing => 0,
            Phase::Prompting {
                index,
                repetitions,
                started,
            } => {
                if self.barged {
                    return self.listen(now);
                }
                let step = &self.prompts[index];
                match step.repetition() {
                    Some((loop_count, what)) => {
                        let runs = repetitions + 1;
                        let took = now.saturating_duration_since(started);
                        if repeat::after_run(&what, loop_count, runs, outcome, took, notes) {
                            index + 1
                        } else {
                            self.phase = Phase::Prompting {
                                index,
                                repetitions: runs,
                                started: now,
                            };
                            return Next::Run(prompt_op(step));
                        }
                    }
                    None => index + 1,
                }
            }
            Phase::Listening => return Next::Listen,
        };
        if self.barged {
            return self.listen(now);
        }
        match self.prompts.get(next_index) {
            Some(step) => {
                let op = prompt_op(step);
                self.phase = Phase::Prompting {
                    index: next_index,
                    repetitions: 0,
                    started: now,
                };
                Next::Run(op)
            }
            None => self.listen(now),
        }
    }

    /// The prompts are over: from now on only digits and timers matter.
    fn listen(&mut self, now: Instant) -> Next {
        self.phase = Phase::Listening;
        if self.deadline.is_none() {
            // No digit yet: executionTimeout counts from the end of the prompts.
            self.deadline = Some(now + secs(self.gather.execution_timeout_secs));
        }
        Next::Listen
    }

    /// A digit from the caller at `now`. Once it completes the input,
    /// [`GatherRun::take_complete`] has the outcome.
    pub fn digit(&mut self, now: Instant, digit: char) -> DigitEffect {
        if self.phase == Phase::Flushing || self.pending.is_some() {
            return DigitEffect::Ignored;
        }
        let prompting = matches!(self.phase, Phase::Prompting { .. });
        let interrupt = prompting && !self.barged;
        if interrupt {
            self.interrupted_at = Some(now);
        }
        self.barged = true;
        if Some(digit) == self.gather.finish_on_key {
            self.complete("FinishedOnKey");
        } else {
            self.digits.push(digit);
            if self.digits.chars().count() >= self.gather.num_digits as usize {
                self.complete("numDigits");
            } else {
                self.deadline = Some(now + secs(self.gather.digit_end_timeout_secs));
            }
        }
        DigitEffect::Counted { interrupt }
    }

    /// The deadline has passed at `now`: the input is over.
    pub fn timeout(&mut self, now: Instant) -> bool {
        match self.deadline() {
            Some(due) if due <= now => {}
            _ => return false,
        }
        let why = if self.digits.is_empty() {
            "executionTimeout"
        } else {
            "digitEndTimeout"
        };
        self.complete(why);
        true
    }

    fn complete(&mut self, why: &str) {
        self.deadline = None;
        let shown = if self.digits.is_empty() {
            "no input".to_string()
        } else if self.gather.log {
            format!("Digits={}", self.digits)
        } else {
            format!(
                "{} digit(s), masked (log=false)",
                self.digits.chars().count()
            )
        };
        self.pending = Some(Outcome {
            digits: std::mem::take(&mut self.digits),
            action: self.gather.action.clone(),
            method: self.gather.method,
            redirect: self.gather.redirect,
            note: format!("Gather ended by {why}: {shown}"),
        });
    }

    /// The finished input, taken once (the engine takes it when no operation of the
    /// Gather is running any more; otherwise [`GatherRun::op_finished`] hands it over).
    pub fn take_complete(&mut self) -> Option<Outcome> {
        self.pending.take()
    }
}

fn secs(n: u32) -> Duration {
    Duration::from_secs(u64::from(n))
}

/// The operation that plays a prompt step (Speak, Play or Wait; a Wait is
/// [`ChannelOp::Silence`], so a digit is reported before it ends).
fn prompt_op(step: &Step) -> ChannelOp {
    if let Step::Wait { secs: length } = step {
        return ChannelOp::Silence {
            duration: secs(*length),
        };
    }
    match step.clone().begin(true) {
        super::Begin::Run(op) => op,
        // Prompts are Speak, Play and Wait only (the parsers see to it); anything else
        // would be a bug, played as one second of silence rather than a panic.
        _ => ChannelOp::Wait {
            duration: Duration::from_secs(1),
        },
    }
}
