//! The document's elements, one module each (mini-redis `cmd/`): what each one asks of
//! the engine when the cursor reaches it, and whether it needs an answered call. The
//! engine ([`crate::call::engine`]) is the dispatcher: it keeps the call's state, runs
//! the [`Begin`] an element returns, and feeds the outcome back (loops: [`repeat`]).
//!
//! A new element (Dial, Gather, Record) is a new file here, a [`Step`] variant, and a
//! line in [`Step::begin`]. Elements speak only the switch-neutral
//! [`crate::call::channel_op`] vocabulary.

pub mod dial;
pub mod dtmf;
pub mod gather;
pub mod hangup;
pub mod play;
pub mod preanswer;
pub mod record;
pub mod redirect;
pub mod reject;
pub mod repeat;
pub mod speak;
pub mod wait;

use crate::call::channel_op::ChannelOp;
use crate::call::hangup::DocumentHangup;
use crate::document::model::{
    AnswerDocument, Dial, Dtmf, FetchEvent, Gather, Hangup, HttpMethod, Instruction, Play,
    PostCall, Record, Redirect, Reject, Speak,
};

/// A document fetch for the driver to perform (with retries and the fallback URL, and
/// the SPEC §5.1 parameters; `CallStatus` from the engine's `answered()`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentFetch {
    pub url: String,
    pub method: HttpMethod,
    pub event: FetchEvent,
}

/// One executable step of the current document: an element, with PreAnswer flattened
/// into its marker followed by its children, flagged as early media.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    PreAnswer,
    Speak {
        speak: Speak,
        early: bool,
    },
    Play {
        play: Play,
        early: bool,
    },
    Wait {
        secs: u32,
    },
    Dtmf(Dtmf),
    /// `first`: element 0 of the document (SPEC §4 "first element").
    Hangup {
        hangup: Hangup,
        first: bool,
    },
    Reject(Reject),
    Redirect(Redirect),
    Dial(Box<Dial>),
    /// SPEC §12.1: run by the engine with [`gather::GatherRun`].
    Gather(Gather),
    /// SPEC §12.2: started by the engine with [`record::start`].
    Record(Record),
}

/// What a step asks of the engine when the cursor reaches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Begin {
    /// Run this operation; the step is done when it finishes (or, for Speak and Play,
    /// when [`repeat`] says the loop is over).
    Run(ChannelOp),
    /// Nothing to do; go on with the next step.
    Skip,
    /// SPEC §4 rule 3: arm a hangup `secs` from now and go on once the switch has it.
    ArmHangup {
        secs: u32,
        hangup: DocumentHangup,
        post_call: Option<PostCall>,
    },
    /// End the call now (SPEC §4 rules 1–2), noting `note` if any.
    HangUp {
        hangup: DocumentHangup,
        post_call: Option<PostCall>,
        note: Option<String>,
    },
    /// Fetch the next document; this one is over.
    Fetch(DocumentFetch),
    /// Run a Dial ([`dial`]); the engine keeps its state until the bridge ends.
    Dial(Box<Dial>),
    /// Start a Gather: run its first operation and hand it the channel's digits.
    Gather(Box<gather::GatherRun>, ChannelOp),
    /// Start a Record ([`record::start`], with the engine's settings).
    Record(Box<Record>),
}

impl Step {
    /// SPEC §3: whether the call must be answered before this step runs.
    pub fn needs_answer(&self) -> bool {
        match self {
            Step::Speak { early, .. } | Step::Play { early, .. } => !early,
            Step::Dtmf(_) | Step::Gather(_) => true,
            // A Record armed for the next Dial's answer waits for the Dial, which
            // answers the caller itself.
            Step::Record(r) => !r.start_on_dial_answer,
            _ => false,
        }
    }

    /// What the step asks for, on a call that is `answered` or not.
    pub fn begin(self, answered: bool) -> Begin {
        match self {
            Step::PreAnswer => preanswer::begin(answered),
            Step::Speak { speak, .. } => speak::begin(speak),
            Step::Play { play, .. } => play::begin(play),
            Step::Wait { secs } => wait::begin(secs),
            Step::Dtmf(dtmf) => dtmf::begin(dtmf),
            Step::Hangup { hangup, first } => hangup::begin(hangup, first),
            Step::Reject(reject) => reject::begin(reject, answered),
            Step::Redirect(redirect) => redirect::begin(redirect),
            Step::Dial(d) => dial::begin(d),
            Step::Gather(g) => {
                let (run, op) = gather::GatherRun::begin(g);
                Begin::Gather(Box::new(run), op)
            }
            Step::Record(r) => record::begin(r),
        }
    }

    /// For a step that loops (Speak, Play): its loop count and how notes name it.
    pub fn repetition(&self) -> Option<(u32, String)> {
        match self {
            Step::Speak { speak, .. } => Some(speak::repetition(speak)),
            Step::Play { play, .. } => Some(play::repetition(play)),
            _ => None,
        }
    }
}

/// The document's elements as steps, in order.
pub fn flatten(doc: AnswerDocument) -> Vec<Step> {
    fn one(steps: &mut Vec<Step>, ins: Instruction, index: usize, early: bool) {
        match ins {
            Instruction::Speak(speak) => steps.push(Step::Speak { speak, early }),
            Instruction::Play(play) => steps.push(Step::Play { play, early }),
            Instruction::Wait(w) => steps.push(Step::Wait {
                secs: w.length_secs,
            }),
            Instruction::Dtmf(d) => steps.push(Step::Dtmf(d)),
            Instruction::PreAnswer(children) => {
                steps.push(Step::PreAnswer);
                for child in children {
                    one(steps, child, index, true);
                }
            }
            Instruction::Hangup(hangup) => steps.push(Step::Hangup {
                hangup,
                first: index == 0,
            }),
            Instruction::Reject(r) => steps.push(Step::Reject(r)),
            Instruction::Redirect(r) => steps.push(Step::Redirect(r)),
            Instruction::Dial(d) => steps.push(Step::Dial(d)),
            Instruction::Gather(g) => steps.push(Step::Gather(g)),
            Instruction::Record(r) => steps.push(Step::Record(r)),
        }
    }
    let mut steps = Vec::new();
    for (index, ins) in doc.instructions.into_iter().enumerate() {
        one(&mut steps, ins, index, false);
    }
    steps
}

/// A Gather's prompts (Speak, Play, Wait) as steps on an answered call.
pub fn flatten_prompts(prompts: Vec<Instruction>) -> Vec<Step> {
    flatten(AnswerDocument {
        instructions: prompts,
    })
}
