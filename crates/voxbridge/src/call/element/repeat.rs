//! Loops of Speak and Play, done by the engine, never by the switch (reference §9).
//!
//! `loop=N` is N runs; `loop=0` repeats until the call ends. For every loop count, a run
//! that fails or lasts less than [`MIN_LOOP_RUN`] ends the loop (with a note) so a
//! broken URL cannot make voxbridge hammer the switch: `<Play loop="100000">` on a dead
//! URL costs one failed play, not 100,000. (A deliberately repeated clip shorter than
//! 100 ms plays once: no real prompt is that short.)

use crate::call::channel_op::OpOutcome;
use std::time::Duration;

/// A repetition of a looping Speak/Play (any `loop` other than 1) shorter than this ends
/// the loop: no audible media is that short, but a failing URL is.
pub const MIN_LOOP_RUN: Duration = Duration::from_millis(100);

/// One run of a looping step has finished: `runs` is how many have now finished, `took`
/// how long this one ran. Returns whether the loop is over; notes what failed or why
/// the loop stopped early.
pub fn after_run(
    what: &str,
    loop_count: u32,
    runs: u32,
    outcome: &OpOutcome,
    took: Duration,
    notes: &mut Vec<String>,
) -> bool {
    let failure = match outcome {
        OpOutcome::Completed => None,
        OpOutcome::Failed(reason) | OpOutcome::Refused(reason) => Some(reason.trim()),
    };
    if let Some(reason) = failure {
        let note = format!("{what}: {reason}");
        if notes.last() != Some(&note) {
            notes.push(note);
        }
    }
    if loop_count != 0 && runs >= loop_count {
        return true;
    }
    let too_short = took < MIN_LOOP_RUN;
    if failure.is_none() && !too_short {
        return false;
    }
    let left = if loop_count == 0 {
        "endless loop".to_string()
    } else {
        format!("loop of {loop_count}")
    };
    notes.push(format!(
        "{what}: {left} stopped after {runs} run(s): {}",
        if failure.is_some() {
            "the switch reported an error"
        } else {
            "a run was shorter than 100 ms"
        }
    ));
    true
}
