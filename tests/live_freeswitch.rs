//! The live suite (SPEC §10): SIP calls looped back into a real FreeSWITCH, onto the
//! extensions shipped in `dialplan/freeswitch/voxbridge.xml`, driven by the real
//! `voxbridge` binary and a real local application — checking what the **caller** got
//! (486 / 603 / 480 / BYE + Q.850 cause, answered or not, billed time) and what voxbridge
//! reported (the hangup callback's cause, code, name, source, reason, BillDuration).
//!
//! - `live::<rule>`: one test per scenario against a real switch, skipped (one line on
//!   the terminal) unless `VOXBRIDGE_TEST_FS_ESL=host:port` is set. How to run it, the
//!   variables and what the switch needs: `docs/live-suite.md`.
//! - `live_suite_against_simulator`: the same scenarios against the in-process
//!   simulator's inbound side, on every `cargo test`, so the suite's own code (originate,
//!   filters, caller-leg reading, callbacks, REST hangup) cannot rot unnoticed.

mod live_support;

use live_support::{run_all_simulated, run_live, scenarios};

/// One `#[test]` per scenario, named after it; the list is checked against
/// `scenarios::all()` so a new scenario cannot miss its live test.
macro_rules! live_tests {
    ($($name:ident),* $(,)?) => {
        mod live {
            $(
                #[test]
                fn $name() {
                    super::run_live(stringify!($name));
                }
            )*
        }
        const LIVE_TESTS: &[&str] = &[$(stringify!($name)),*];
    };
}

live_tests!(
    rule_2_first_hangup_on_a_ringing_call_is_603_never_answered,
    rule_2_busy_hangup_on_a_ringing_call_is_486_never_answered,
    rule_2_hangup_after_a_wait_keeps_the_call_unanswered_and_is_480,
    rule_2_first_hangup_on_an_answered_call_is_a_rejected_bye,
    rule_2_a_hangup_first_in_a_redirected_document_counts_as_first,
    rule_1_busy_after_media_answers_then_byes_with_user_busy,
    rule_2_busy_after_a_speak_answers_for_the_speak_then_byes_with_user_busy,
    rule_3_scheduled_hangup_fires_inside_the_switch_about_2s_later,
    rule_3_schedule_with_nothing_after_ends_at_once_as_end_of_document,
    rule_4_caller_hangs_up_mid_playback_source_caller_nothing_after_runs,
    rule_4_rest_api_hangup_mid_playback_byes_at_once_source_api,
    rule_5_post_call_workflow_of_the_closing_hangup_fires,
    rule_6_document_that_runs_out_ends_with_end_of_xml_instructions,
    loop_of_any_count_on_media_that_fails_costs_the_switch_one_playback,
    rule_7_empty_response_rings_until_the_caller_gives_up,
    rule_8_invalid_document_is_refused_603_with_the_parse_error,
    rule_8_no_document_is_refused_603_source_error,
);

#[test]
fn every_scenario_has_a_live_test() {
    let mut listed: Vec<&str> = LIVE_TESTS.to_vec();
    let mut defined: Vec<&str> = scenarios::all().iter().map(|s| s.name).collect();
    listed.sort_unstable();
    defined.sort_unstable();
    assert_eq!(listed, defined);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_suite_against_simulator() {
    let (failed, pending) = run_all_simulated().await;
    for p in &pending {
        eprintln!("{p}");
    }
    assert!(
        failed.is_empty(),
        "{} of {} scenarios failed against the simulator:\n\n{}",
        failed.len(),
        scenarios::all().len(),
        failed.join("\n")
    );
}

#[test]
fn the_live_readme_lists_every_scenario() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/live-suite.md");
    let text = std::fs::read_to_string(path).expect("docs/live-suite.md");
    for s in scenarios::all() {
        assert!(
            text.contains(&format!("`{}`", s.name)),
            "docs/live-suite.md does not describe {}",
            s.name
        );
    }
}
