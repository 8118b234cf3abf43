//! The live suite on Asterisk (SPEC §16): SIP calls placed by FreeSWITCH into the bundled
//! Asterisk (`../shared/asterisk/`), whose dialplan (`dialplan/asterisk/extensions.conf`, or
//! the bundle's built-in 7000/7001) hands them to the real `voxbridge` binary over FastAGI;
//! the same checks as on FreeSWITCH of what the caller got (486 / 403 / BYE) and what
//! voxbridge reported (callbacks and the CDR read back over REST). Each test is named after
//! its rule, with the switch in the name. Skipped unless `VOXBRIDGE_TEST_FS_ESL` and the
//! bundle's `VOXBRIDGE_TEST_AST_SIP` / `VOXBRIDGE_TEST_AST_ARI` are set:
//!
//! ```sh
//! ../shared/asterisk/ast start --dialplan dialplan/asterisk/extensions.conf
//! eval "$(../shared/asterisk/ast env)"   # also AST_AMI*: voxbridge logs in to AMI
//! flock /tmp/fs-live.lock env VOXBRIDGE_TEST_FS_ESL=127.0.0.1:8021 cargo test --test live_asterisk
//! ```

mod common;
mod live_support;

use live_support::run_asterisk;

macro_rules! asterisk_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_asterisk(stringify!($name));
            }
        )*
        const TESTS: &[&str] = &[$(stringify!($name)),*];
    };
}

asterisk_tests!(
    asterisk_rule_2_first_hangup_on_a_ringing_call_is_403_recorded_rejected_never_answered,
    asterisk_rule_2_busy_hangup_on_a_ringing_call_is_486_never_answered,
    asterisk_rule_2_busy_after_a_speak_answers_for_the_speak_then_byes_with_user_busy,
    asterisk_rule_6_document_that_runs_out_ends_with_end_of_xml_instructions,
    asterisk_rule_4_caller_hangs_up_mid_speak_source_caller_nothing_after_runs,
    asterisk_rule_3_a_schedule_firing_before_answer_refuses_with_its_reason_486,
    asterisk_rule_3_armed_schedule_shows_on_the_live_call_and_fires_with_its_reason,
    asterisk_rule_4_rest_api_hangup_mid_speak_byes_within_1s_source_api,
    asterisk_rule_2_first_hangup_on_an_answered_call_is_a_rejected_bye,
    asterisk_rule_2_a_hangup_first_in_a_redirected_document_counts_as_first,
    asterisk_rule_2_hangup_after_a_wait_keeps_the_call_unanswered_and_is_603,
    asterisk_rule_2_hangup_after_early_media_refuses_486_without_answering,
    asterisk_rule_5_post_call_workflow_of_the_closing_hangup_fires,
    asterisk_rule_7_empty_response_on_an_answered_call_times_out_allotted_timeout,
    asterisk_rule_8_no_document_is_refused_403_source_error,
    asterisk_voxml_reject_busy_on_a_ringing_call_is_486_never_answered,
    asterisk_rule_1_busy_after_http_media_answers_then_byes_with_user_busy,
    asterisk_dtmf_and_wait_after_a_speak_then_busy,
    asterisk_gather_menu_digit_during_the_spoken_prompt_stops_it_and_its_action_runs,
    asterisk_gather_finish_on_key_after_123_over_a_looping_file_posts_digits_123,
    asterisk_gather_wait_prompt_a_digit_ends_it_and_is_posted,
    asterisk_gather_no_input_goes_on_with_the_next_element_without_a_request,
    asterisk_dial_answered_bridges_until_time_limit_then_the_action_runs,
    asterisk_dial_busy_leaves_the_caller_unanswered_and_a_busy_hangup_after_it_is_486,
    asterisk_dial_no_answer_after_the_ring_timeout_runs_the_next_element_486,
    asterisk_dial_rest_hangup_of_the_callee_ends_only_it_the_caller_continues,
    asterisk_dial_hangup_on_star_ends_the_bridge_hangs_up_the_callee_and_the_caller_continues,
    asterisk_dial_digits_match_of_the_caller_posts_dial_digits_match_aleg,
    asterisk_dial_digits_match_b_leg_of_the_callee_posts_dial_digits_match_bleg,
    asterisk_dial_confirm_key_pressed_by_the_callee_bridges_it,
    asterisk_dial_confirm_key_never_pressed_drops_the_callee_at_the_ring_timeout_486,
    asterisk_dial_legs_with_their_own_send_digits_bridge_the_answering_one,
    asterisk_record_voicemail_finish_on_key_is_a_real_wav_of_the_recorded_length,
    asterisk_record_max_length_2_ends_it_as_max_length,
    asterisk_record_silence_timeout_ends_it_as_recording_timeout,
    asterisk_record_session_is_mix_monitor_and_records_the_whole_call,
    asterisk_record_start_on_dial_answer_is_mix_monitor_over_ami_from_the_answer,
    asterisk_record_rest_stop_of_a_mix_monitor_ends_it_at_once_and_the_call_goes_on,
    asterisk_record_rest_stop_of_a_running_record_file_ends_it_as_stopped,
);

/// Flite safety (issue 17): five calls speaking at once; Asterisk survives, all complete.
#[test]
fn asterisk_flite_five_calls_speaking_at_once_all_complete_and_the_asterisk_survives() {
    run_asterisk(live_support::FLITE_CONCURRENT);
}

#[test]
fn every_asterisk_scenario_has_its_test() {
    let names: Vec<&str> = live_support::scenarios::asterisk::all()
        .iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, TESTS);
}
