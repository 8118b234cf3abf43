//! The Dial attributes beyond the bridge itself (SPEC §11.1): `sipHeaders` echoed,
//! `digitsMatch` / `digitsMatchBLeg`, `confirmSound` / `confirmKey`, `dialMusic`. Each
//! bridges the ringing 7001 to a test destination of the shipped switch (7002 answers
//! with a tone, 7007 answers and presses `1234#` about a second later).

use super::*;

/// The suite's scenarios, then these.
pub fn after(mut all: Vec<Scenario>) -> Vec<Scenario> {
    all.extend(scenarios());
    all
}

fn scenarios() -> Vec<Scenario> {
    vec![
    scenario(
        "dial_sip_headers_are_echoed_as_x_vh_params_in_the_dial_events_and_the_action",
        "<Dial sipHeaders=\"Account=42,Tier=gold\" callbackUrl action> to 7002, callee killed after 2 s: DialAnswer, DialConnected, DialHangup and the action each carry X-VH-Account=42 and X-VH-Tier=gold; the action's tone plays, BYE End Of XML Instructions",
        Ext::Ringing,
        vec![
            Doc::Xml(format!("<Response><Dial sipHeaders=\"Account=42,Tier=gold\" callbackUrl=\"{{app}}/events\" action=\"{DIAL_ACTION}\"><Number>7002</Number></Dial></Response>")),
            Doc::Xml(format!("<Response><Play>{TONE_1S}</Play></Response>")),
        ],
        Expect::bye("NORMAL_CLEARING", 16)
            .record("NORMAL_CLEARING", 16, END_OF_XML, "Answer XML", "completed")
            .fetches(&["StartApp", "DialAction"])
            .dial_status("completed")
            .dial_events(&["DialAnswer", "DialConnected", "DialHangup"])
            .dial_param("DialAnswer", "X-VH-Account", "42")
            .dial_param("DialConnected", "X-VH-Tier", "gold")
            .dial_param("DialHangup", "X-VH-Account", "42")
            .dial_param("DialAction", "X-VH-Account", "42")
            .dial_param("DialAction", "X-VH-Tier", "gold")
            .timing(Timing::AnsweredFor { min: 2.5, max: 8.0 }),
    )
    .acting(Action::CalleeHangsUp { after: 2.0 }),
    scenario(
        "dial_digits_match_of_the_caller_posts_dial_digits_match_aleg",
        "<Dial digitsMatch=\"12\" timeLimit=\"4\" callbackUrl> to 7002; the caller presses 12 a second after the answer: DialDigitsMatch (12, aleg) between DialConnected and DialHangup; the time limit ends the bridge, BYE End Of XML Instructions",
        Ext::Ringing,
        vec![Doc::Xml("<Response><Dial digitsMatch=\"12\" timeLimit=\"4\" callbackUrl=\"{app}/events\"><Number>7002</Number></Dial></Response>".into())],
        Expect::bye("NORMAL_CLEARING", 16)
            .record("NORMAL_CLEARING", 16, END_OF_XML, "Answer XML", "completed")
            .dial_events(&["DialAnswer", "DialConnected", "DialDigitsMatch", "DialHangup"])
            .dial_param("DialDigitsMatch", "DialDigitsMatch", "12")
            .dial_param("DialDigitsMatch", "DialDigitsPressedBy", "aleg")
            .timing(Timing::AnsweredFor { min: 3.0, max: 9.0 }),
    )
    .acting(Action::CallerPresses { after: 1.0, digits: "12" }),
    scenario(
        "dial_digits_match_b_leg_of_the_callee_posts_dial_digits_match_bleg",
        "<Dial digitsMatchBLeg=\"55,12X4#\" timeLimit=\"4\" callbackUrl> to 7007 (answers, presses 1234# a second later): the switch matches the callee's digits (bind_digit_action on the peer, divert_events) and DialDigitsMatch (1234#, bleg) comes between DialConnected and DialHangup; the time limit ends the bridge, BYE End Of XML Instructions",
        Ext::Ringing,
        vec![Doc::Xml("<Response><Dial digitsMatchBLeg=\"55,12X4#\" timeLimit=\"4\" callbackUrl=\"{app}/events\"><Number>7007</Number></Dial></Response>".into())],
        Expect::bye("NORMAL_CLEARING", 16)
            .record("NORMAL_CLEARING", 16, END_OF_XML, "Answer XML", "completed")
            .dial_events(&["DialAnswer", "DialConnected", "DialDigitsMatch", "DialHangup"])
            .dial_param("DialDigitsMatch", "DialDigitsMatch", "1234#")
            .dial_param("DialDigitsMatch", "DialDigitsPressedBy", "bleg")
            .timing(Timing::AnsweredFor { min: 3.0, max: 9.0 }),
    ),
    scenario(
        "dial_confirm_key_pressed_by_the_callee_bridges_it",
        "<Dial confirmSound=\"…?step=1\" confirmKey=\"1\" timeLimit=\"4\" callbackUrl> to 7007 (answers, presses 1234#): the confirm document (<Wait length=\"1\"/>) is fetched (DialConfirmSound), 7007 hears it and its 1 confirms: bridged; the time limit ends it, BYE End Of XML Instructions",
        Ext::Ringing,
        vec![
            Doc::Xml("<Response><Dial confirmSound=\"{app}/answer?step=1\" confirmKey=\"1\" timeLimit=\"4\" callbackUrl=\"{app}/events\"><Number>7007</Number></Dial></Response>".into()),
            Doc::Xml("<Response><Wait length=\"1\"/></Response>".into()),
        ],
        Expect::bye("NORMAL_CLEARING", 16)
            .record("NORMAL_CLEARING", 16, END_OF_XML, "Answer XML", "completed")
            .fetches(&["StartApp", "DialConfirmSound"])
            .dial_events(&["DialAnswer", "DialConnected", "DialHangup"])
            // The time limit counts from the callee's answer, ~1.3 s before its 1
            // confirmed and the bridge answered the caller: 2.7 s measured.
            .timing(Timing::AnsweredFor { min: 1.5, max: 8.0 }),
    ),
    scenario(
        "dial_confirm_key_never_pressed_drops_the_callee_at_the_ring_timeout_486",
        "<Dial timeout=\"3\" confirmSound confirmKey=\"9\" action> to 7007 (presses 1234#, never 9): never bridged, dropped when the ring window runs out; DialStatus no-answer, the caller still unanswered; the action's busy Hangup gives 486",
        Ext::Ringing,
        vec![
            Doc::Xml("<Response><Dial timeout=\"3\" confirmSound=\"{app}/answer?step=1\" confirmKey=\"9\" action=\"{app}/answer?step=2\"><Number>7007</Number></Dial></Response>".into()),
            Doc::Xml("<Response><Wait length=\"1\"/></Response>".into()),
            Doc::Xml("<Response><Hangup reason=\"busy\"/></Response>".into()),
        ],
        Expect::refused(486, "USER_BUSY")
            .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
            .fetches(&["StartApp", "DialConfirmSound", "DialAction"])
            .dial_status("no-answer")
            .timing(Timing::LastedAtLeast(2.0)),
    ),
    scenario(
        "dial_music_document_is_early_media_to_the_ringing_caller_486",
        "<Dial timeout=\"3\" dialMusic=\"…?step=1\" action> to 7004 (180, never answers): the music document (a tone) is fetched (DialMusic) and the caller, never answered, gets it as early media while 7004 rings; DialStatus no-answer; the action's busy Hangup gives 486",
        Ext::Ringing,
        vec![
            Doc::Xml("<Response><Dial timeout=\"3\" dialMusic=\"{app}/answer?step=1\" action=\"{app}/answer?step=2\"><Number>7004</Number></Dial></Response>".into()),
            Doc::Xml("<Response><Play>tone_stream://%(400,200,440)</Play></Response>".into()),
            Doc::Xml("<Response><Hangup reason=\"busy\"/></Response>".into()),
        ],
        Expect::refused(486, "USER_BUSY")
            .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
            .originate_ok()
            .fetches(&["StartApp", "DialMusic", "DialAction"])
            .dial_status("no-answer")
            .timing(Timing::EarlyMedia)
            .timing(Timing::LastedAtLeast(2.0)),
    ),
    ]
}
