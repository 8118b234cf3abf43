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

mod common;
mod live_support;

mod e2e_support;
/// `POST Call/` against the real switch's test destinations (SPEC §13).
#[path = "live_support/outbound.rs"]
mod outbound;

use live_support::{all_names, block_on_alone, run_all_simulated, run_live};

/// One `#[test]` per scenario, named after it; the list is checked against
/// `all_names()` (the scenarios and the stress run) so a new one cannot miss its live
/// test. The first of them to run starts the whole selected suite at once against the
/// switch (one voxbridge, scenarios concurrently) and prints the summary line; each then
/// reports its own scenario.
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
    rule_4_rest_api_hangup_mid_speak_byes_within_1s_source_api,
    rest_live_details_of_a_ringing_call_say_ringing_without_answer_time,
    rule_3_armed_schedule_shows_on_the_live_call_and_fires_with_its_reason,
    rule_3_a_schedule_firing_before_answer_refuses_with_its_reason_486,
    rule_3_redirect_to_a_document_without_schedule_cancels_it_the_call_outlives_it,
    rule_3_redirect_to_a_document_that_schedules_again_rearms_it,
    rule_5_post_call_document_runs_in_post_call_mode_after_the_end,
    rule_5_post_call_urls_of_hangups_that_did_not_close_the_call_never_fire,
    voxml_reject_on_a_ringing_call_is_603_never_answered,
    voxml_reject_busy_on_a_ringing_call_is_486_never_answered,
    voxml_reject_on_an_answered_call_acts_as_hangup_bye_21,
    voxml_hangup_rejected_on_a_ringing_call_is_603,
    voxml_say_then_hangup_busy_answers_then_byes_with_user_busy,
    voxml_play_then_hangup_completed_is_a_normal_bye_and_its_post_call_fires,
    voxml_play_loop_2_then_end_of_document,
    voxml_pause_then_hangup_completed_never_answers_480,
    voxml_redirect_to_a_reject_counts_as_first_603,
    rule_1_elements_after_hangup_are_still_parsed_so_a_broken_one_refuses_603,
    rule_2_hangup_after_early_media_refuses_486_without_answering,
    rule_6_end_of_document_before_answer_is_480,
    rule_7_empty_response_on_a_ringing_call_times_out_480_allotted_timeout,
    rule_7_empty_response_on_an_answered_call_times_out_allotted_timeout,
    rule_8_no_document_on_an_answered_call_is_a_normal_clearing_bye_source_error,
    rule_9_hangup_with_text_is_a_document_error_603,
    dial_answered_the_bridge_answers_the_caller_and_the_callee_hangup_ends_it,
    dial_action_after_the_callee_hangs_up_is_the_next_document,
    dial_two_destinations_the_first_to_answer_wins_the_other_ends_lose_race,
    dial_busy_leaves_the_caller_unanswered_and_a_busy_hangup_after_it_is_486,
    dial_no_answer_after_the_ring_timeout_runs_the_next_element_486,
    dial_unroutable_is_failed_and_the_document_runs_out_480,
    dial_time_limit_cuts_the_bridge_and_the_document_goes_on,
    dial_rest_hangup_of_the_caller_during_the_bridge_ends_both_source_api,
    dial_rest_hangup_of_the_callee_ends_only_it_the_caller_continues,
    dial_caller_cancels_while_the_destination_rings_the_action_is_cancel,
    dial_legs_are_listed_live_while_they_ring_and_delete_of_a_ringing_leg_ends_only_it,
    dial_every_destination_refusing_gives_each_leg_its_own_cause,
    dial_both_legs_hear_media_during_the_bridge,
    dial_hangup_on_star_ends_the_bridge_hangs_up_the_callee_and_the_caller_continues,
    dial_a_schedule_armed_before_the_dial_ends_both_legs_when_it_fires,
    gather_menu_digit_during_the_prompt_barges_in_within_200ms_and_its_action_runs,
    gather_finish_on_key_after_123_posts_digits_123,
    gather_no_input_goes_on_with_the_next_element_without_a_request,
    gather_wait_prompt_is_silence_a_digit_stops_it_within_200ms,
    gather_bad_document_is_refused_603_naming_line_and_column,
    record_voicemail_max_length_5_finish_on_key_is_a_real_wav_of_the_recorded_length,
    record_session_records_the_whole_call_including_a_speak,
    record_rest_stop_ends_the_calls_recording_at_once_and_the_call_goes_on,
    record_silence_timeout_ends_it_as_recording_timeout,
    record_start_on_dial_answer_records_from_the_callees_answer,
    record_max_length_2_runs_to_the_next_whole_second,
    record_caller_hangs_up_during_it_the_file_and_the_action_still_come,
    dial_sip_headers_are_echoed_as_x_vh_params_in_the_dial_events_and_the_action,
    dial_digits_match_of_the_caller_posts_dial_digits_match_aleg,
    dial_digits_match_b_leg_of_the_callee_posts_dial_digits_match_bleg,
    dial_confirm_key_pressed_by_the_callee_bridges_it,
    dial_confirm_key_never_pressed_drops_the_callee_at_the_ring_timeout_486,
    dial_music_document_is_early_media_to_the_ringing_caller_486,
    stress_200_calls_at_50_per_second_all_called_back_none_left_on_the_switch,
);

#[test]
fn every_scenario_has_a_live_test() {
    let mut listed: Vec<&str> = LIVE_TESTS.to_vec();
    let mut defined: Vec<&str> = all_names();
    listed.sort_unstable();
    defined.sort_unstable();
    assert_eq!(listed, defined);
}

#[test]
fn live_suite_against_simulator() {
    let (failed, pending) = block_on_alone(run_all_simulated()).expect("runtime");
    for p in &pending {
        eprintln!("{p}");
    }
    assert!(
        failed.is_empty(),
        "{} of {} scenarios failed against the simulator:\n\n{}",
        failed.len(),
        all_names().len(),
        failed.join("\n")
    );
}

#[test]
fn the_live_readme_lists_every_scenario() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/live-suite.md");
    let text = std::fs::read_to_string(path).expect("docs/live-suite.md");
    for name in all_names() {
        assert!(
            text.contains(&format!("`{name}`")),
            "docs/live-suite.md does not describe {name}"
        );
    }
}
