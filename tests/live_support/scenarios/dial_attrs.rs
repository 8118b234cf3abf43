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
    vec![scenario(
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
    .acting(Action::CalleeHangsUp { after: 2.0 })]
}
