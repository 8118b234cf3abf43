//! The SPEC §4 scenarios on Asterisk (SPEC §16): the same documents, the same REST,
//! callback and CDR checks as on FreeSWITCH, with what chan_sip sends the caller —
//! 403 for CALL_REJECTED (21; chan_sip's mapping, there is no documented way to make it
//! 603), 486 for USER_BUSY — and no Q.850 Reason header on chan_sip's BYE. Media is
//! speech (app_flite): the FreeSWITCH tone streams do not exist on Asterisk.
//! voxbridge is logged in to the bundle's AMI, which the Dial digit, `startOnDialAnswer`
//! and REST-stop scenarios need (FastAGI is blocked inside `Dial()` / `RECORD FILE`).

use super::*;

pub fn all() -> Vec<Scenario> {
    vec![
        scenario(
            "asterisk_rule_2_first_hangup_on_a_ringing_call_is_403_recorded_rejected_never_answered",
            "<Hangup/> first on 7001: chan_sip sends 403 for cause 21; recorded CALL_REJECTED 21, never answered",
            Ext::Ringing,
            vec![xml("<Response><Hangup/><Speak>never</Speak></Response>")],
            Expect::refused(403, "CALL_REJECTED").record(
                "CALL_REJECTED",
                21,
                REJECTED,
                "Answer XML",
                "rejected",
            ),
        ),
        scenario(
            "asterisk_rule_2_busy_hangup_on_a_ringing_call_is_486_never_answered",
            "<Hangup reason=\"busy\"/> on 7001: SIP 486, never answered, not billed",
            Ext::Ringing,
            vec![xml(r#"<Response><Hangup reason="busy"/></Response>"#)],
            Expect::refused(486, "USER_BUSY").record("USER_BUSY", 17, BUSY, "Answer XML", "busy"),
        ),
        Scenario {
            needs_tts: true,
            ..scenario(
                "asterisk_rule_2_busy_after_a_speak_answers_for_the_speak_then_byes_with_user_busy",
                "<Speak> then <Hangup reason=\"busy\"/> on 7001: Flite really plays, then BYE; recorded USER_BUSY 17",
                Ext::Ringing,
                vec![xml(format!(
                    "<Response><Speak>{SPEECH}</Speak><Hangup reason=\"busy\"/></Response>"
                ))],
                Expect {
                    bye_reason: None,
                    caller_cause: "NORMAL_CLEARING",
                    ..Expect::bye("USER_BUSY", 17)
                }
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                .timing(Timing::BilledAtLeastMs(1000)),
            )
        },
        Scenario {
            needs_tts: true,
            ..scenario(
                "asterisk_rule_6_document_that_runs_out_ends_with_end_of_xml_instructions",
                "a Speak and nothing else on 7001: answered, then BYE NORMAL_CLEARING, End Of XML Instructions",
                Ext::Ringing,
                vec![xml("<Response><Speak>Goodbye.</Speak></Response>")],
                Expect {
                    bye_reason: None,
                    ..Expect::bye("NORMAL_CLEARING", 16)
                }
                .record("NORMAL_CLEARING", 16, END_OF_XML, "Answer XML", "completed"),
            )
        },
        Scenario {
            action: Action::CallerHangsUp { after: 1.5 },
            needs_tts: true,
            ..scenario(
                "asterisk_rule_4_caller_hangs_up_mid_speak_source_caller_nothing_after_runs",
                "the caller hangs up during an endless Speak: source Caller, the Redirect after it is never fetched",
                Ext::Ringing,
                vec![
                    xml(format!(
                        "<Response><Speak loop=\"0\">{SPEECH}</Speak>\
                         <Redirect>{{app}}/answer?step=1</Redirect></Response>"
                    )),
                    xml(r#"<Response><Hangup reason="busy"/></Response>"#),
                ],
                Expect::caller_bye().record("NORMAL_CLEARING", 16, CALLER, "Caller", "completed"),
            )
        },
        scenario(
            "asterisk_rule_3_a_schedule_firing_before_answer_refuses_with_its_reason_486",
            "<Hangup schedule=\"2\" reason=\"busy\"/><Wait length=\"30\"/> on 7001: TIMEOUT(absolute) fires while it rings, the T extension hangs up with 17: 486, never answered",
            Ext::Ringing,
            vec![xml(
                r#"<Response><Hangup schedule="2" reason="busy"/><Wait length="30"/><Hangup/></Response>"#,
            )],
            Expect::refused(486, "USER_BUSY")
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                .timing(Timing::LastedAtMost(5.0)),
        ),
        Scenario {
            probes: vec![Probe::ScheduleArmed {
                secs: 3.0,
                fires: true,
            }],
            needs_tts: true,
            ..scenario(
                "asterisk_rule_3_armed_schedule_shows_on_the_live_call_and_fires_with_its_reason",
                "<Hangup schedule=\"3\" reason=\"busy\"/> then an endless Speak: scheduled_hangup_at ≈ now+3 s on the live call; it fires as a BYE, recorded USER_BUSY, source Answer XML",
                Ext::Ringing,
                vec![xml(format!(
                    "<Response><Hangup schedule=\"3\" reason=\"busy\"/><Speak loop=\"0\">{SPEECH}</Speak></Response>"
                ))],
                Expect {
                    bye_reason: None,
                    caller_cause: "NORMAL_CLEARING",
                    ..Expect::bye("USER_BUSY", 17)
                }
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                .timing(Timing::AnsweredFor { min: 1.8, max: 4.5 }),
            )
        },
        Scenario {
            action: Action::RestHangup { after: 1.0 },
            needs_tts: true,
            probes: vec![
                Probe::LiveWhileUp {
                    call_status: "in-progress",
                },
                Probe::GoneAfterEnd,
            ],
            ..scenario(
                "asterisk_rule_4_rest_api_hangup_mid_speak_byes_within_1s_source_api",
                "REST DELETE during an endless <Speak loop=\"0\">: ARI ends the Flite at once, BYE within 1 s, source API, cause 16",
                Ext::Ringing,
                vec![xml(format!(
                    "<Response><Speak loop=\"0\">{SPEECH}</Speak><Hangup reason=\"busy\"/></Response>"
                ))],
                Expect {
                    bye_reason: None,
                    ..Expect::bye("NORMAL_CLEARING", 16)
                }
                .record("NORMAL_CLEARING", 16, NORMAL, "API", "completed")
                .timing(Timing::ApiHangupWithin(1.0)),
            )
        },
        scenario(
            "asterisk_rule_2_first_hangup_on_an_answered_call_is_a_rejected_bye",
            "<Hangup/> first on 7000 (answered by the dialplan): a BYE (chan_sip sends no Reason), recorded CALL_REJECTED 21",
            Ext::Answered,
            vec![xml("<Response><Hangup/></Response>")],
            Expect {
                bye_reason: None,
                ..Expect::bye("NORMAL_CLEARING", 16)
            }
            .record("CALL_REJECTED", 21, REJECTED, "Answer XML", "rejected"),
        ),
        scenario(
            "asterisk_rule_2_a_hangup_first_in_a_redirected_document_counts_as_first",
            "<Redirect> to a document whose first element is <Hangup/>: 403 (cause 21), never answered",
            Ext::Ringing,
            vec![
                xml("<Response><Redirect>{app}/answer?step=1</Redirect></Response>"),
                xml("<Response><Hangup/></Response>"),
            ],
            Expect::refused(403, "CALL_REJECTED")
                .record("CALL_REJECTED", 21, REJECTED, "Answer XML", "rejected")
                .fetches(&["StartApp", "Redirect"]),
        ),
        scenario(
            "asterisk_rule_2_hangup_after_a_wait_keeps_the_call_unanswered_and_is_603",
            "<Wait/> then <Hangup/> on 7001: Wait does not answer; NORMAL_CLEARING before answer is 603 on chan_sip (480 on FreeSWITCH)",
            Ext::Ringing,
            vec![xml(r#"<Response><Wait length="1"/><Hangup/></Response>"#)],
            Expect::refused(603, "CALL_REJECTED").record(
                "NORMAL_CLEARING",
                16,
                NORMAL,
                "Answer XML",
                "completed",
            ),
        ),
        scenario(
            "asterisk_rule_2_hangup_after_early_media_refuses_486_without_answering",
            "<PreAnswer><Play>file://beep</Play></PreAnswer><Hangup reason=\"busy\"/> on 7001: Progress (183) and Playback beep,noanswer as early media, then 486, never answered",
            Ext::Ringing,
            vec![xml(
                "<Response><PreAnswer><Play>file://beep</Play></PreAnswer><Hangup reason=\"busy\"/></Response>",
            )],
            Expect::refused(486, "USER_BUSY")
                .originate_ok()
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy"),
        ),
        Scenario {
            needs_tts: true,
            ..scenario(
                "asterisk_rule_5_post_call_workflow_of_the_closing_hangup_fires",
                "<Speak> then <Hangup postCallUrl=…/>: BYE, NORMAL_CLEARING, and the PostCall request arrives",
                Ext::Ringing,
                vec![xml(
                    "<Response><Speak>Bye.</Speak><Hangup postCallUrl=\"{app}/postcall\"/></Response>",
                )],
                Expect {
                    bye_reason: None,
                    ..Expect::bye("NORMAL_CLEARING", 16)
                }
                .record("NORMAL_CLEARING", 16, NORMAL, "Answer XML", "completed")
                .post_call(),
            )
        },
        scenario(
            "asterisk_rule_7_empty_response_on_an_answered_call_times_out_allotted_timeout",
            "<Response/> on 7000 (answered): after empty_document_timeout (6 s) ARI hangs it up; BYE, recorded ALLOTTED_TIMEOUT 16 `Timeout`",
            Ext::Answered,
            vec![xml("<Response/>")],
            Expect {
                bye_reason: None,
                ..Expect::bye("NORMAL_CLEARING", 16)
            }
            .record("ALLOTTED_TIMEOUT", 16, TIMEOUT, "Answer XML", "completed")
            .timing(Timing::AnsweredFor { min: 5.0, max: 9.0 }),
        ),
        scenario(
            "asterisk_rule_8_no_document_is_refused_403_source_error",
            "the answer URL answers 404: refused with cause 21 (403 on chan_sip), source Error",
            Ext::Ringing,
            vec![Doc::Status(404)],
            Expect::refused(403, "CALL_REJECTED").record(
                "CALL_REJECTED",
                21,
                Name::Prefix("Error: no document"),
                "Error",
                "completed",
            ),
        ),
        scenario(
            "asterisk_voxml_reject_busy_on_a_ringing_call_is_486_never_answered",
            "VoxML Reject reason busy on 7001: SIP 486, never answered",
            Ext::Ringing,
            vec![Doc::VoxMl(r#"[{"verb":"Reject","reason":"busy"}]"#.into())],
            Expect::refused(486, "USER_BUSY").record("USER_BUSY", 17, BUSY, "Answer XML", "busy"),
        ),
        scenario(
            "asterisk_rule_1_busy_after_http_media_answers_then_byes_with_user_busy",
            "<Play> of the app's http WAV (fetched and cached by voxbridge, Playback of the file) then <Hangup reason=\"busy\"/>: answered for the Play, billed ≥ 1 s, then BYE; the Play after the Hangup never runs",
            Ext::Ringing,
            vec![xml(
                "<Response><Play>{app}/media/tone.wav</Play><Hangup reason=\"busy\"/><Play>{app}/media/tone.wav</Play></Response>",
            )],
            Expect {
                bye_reason: None,
                caller_cause: "NORMAL_CLEARING",
                ..Expect::bye("USER_BUSY", 17)
            }
            .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
            .timing(Timing::BilledAtLeastMs(1000)),
        ),
        Scenario {
            needs_tts: true,
            ..scenario(
                "asterisk_dtmf_and_wait_after_a_speak_then_busy",
                "<Speak>, <DTMF>12#</DTMF> (SendDTMF), <Wait length=\"1\"/>, <Hangup reason=\"busy\"/>: answered, BYE, recorded USER_BUSY",
                Ext::Ringing,
                vec![xml(
                    "<Response><Speak>Digits.</Speak><DTMF>12#</DTMF><Wait length=\"1\"/><Hangup reason=\"busy\"/></Response>",
                )],
                Expect {
                    bye_reason: None,
                    caller_cause: "NORMAL_CLEARING",
                    ..Expect::bye("USER_BUSY", 17)
                }
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                .timing(Timing::BilledAtLeastMs(1000)),
            )
        },
        Scenario {
            action: Action::CallerPresses {
                after: 2.0,
                digits: "2",
            },
            needs_tts: true,
            ..scenario(
                "asterisk_gather_menu_digit_during_the_spoken_prompt_stops_it_and_its_action_runs",
                "<Gather numDigits=\"1\"> with a ~10 s <Speak> prompt on 7000; the caller presses 2 \
                 2 s in: Flite (interrupt keys) stops at the digit, the second prompt never plays, \
                 the action gets Digits=2 InputType=dtmf and its document (busy) ends the call",
                Ext::Answered,
                vec![
                    xml(format!(
                        "<Response><Gather action=\"{{app}}/answer?step=1\" numDigits=\"1\">\
                         <Speak>{MENU}</Speak><Speak>never heard</Speak></Gather>\
                         <Speak>never reached</Speak></Response>"
                    )),
                    xml("<Response><Hangup reason=\"busy\"/></Response>"),
                ],
                Expect {
                    bye_reason: None,
                    caller_cause: "NORMAL_CLEARING",
                    ..Expect::bye("USER_BUSY", 17)
                }
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                .fetches(&["StartApp", "Gather"])
                .gather_digits("2")
                .timing(Timing::AnsweredFor { min: 1.5, max: 6.0 }),
            )
        },
        Scenario {
            action: Action::CallerPresses {
                after: 1.0,
                digits: "123#",
            },
            ..scenario(
                "asterisk_gather_finish_on_key_after_123_over_a_looping_file_posts_digits_123",
                "<Gather finishOnKey=\"#\"> over <Play loop=\"0\">file://silence/1</Play> (STREAM FILE \
                 with escape digits) on 7000; the caller presses 123#: the first stops the prompt, the \
                 rest are heard by WAIT FOR DIGIT; Digits=123, its document runs",
                Ext::Answered,
                vec![
                    xml(
                        "<Response><Gather action=\"{app}/answer?step=1\" finishOnKey=\"#\">\
                         <Play loop=\"0\">file://silence/1</Play></Gather></Response>",
                    ),
                    xml("<Response><Hangup reason=\"busy\"/></Response>"),
                ],
                Expect {
                    bye_reason: None,
                    caller_cause: "NORMAL_CLEARING",
                    ..Expect::bye("USER_BUSY", 17)
                }
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                .fetches(&["StartApp", "Gather"])
                .gather_digits("123"),
            )
        },
        Scenario {
            action: Action::CallerPresses {
                after: 1.5,
                digits: "3",
            },
            ..scenario(
                "asterisk_gather_wait_prompt_a_digit_ends_it_and_is_posted",
                "<Gather numDigits=\"1\"><Wait length=\"8\"/></Gather> on 7000; the caller presses 3 \
                 during the Wait (WAIT FOR DIGIT): it ends there, Digits=3, well before the 8 s",
                Ext::Answered,
                vec![
                    xml(
                        "<Response><Gather action=\"{app}/answer?step=1\" numDigits=\"1\">\
                         <Wait length=\"8\"/></Gather></Response>",
                    ),
                    xml("<Response><Hangup reason=\"busy\"/></Response>"),
                ],
                Expect {
                    bye_reason: None,
                    caller_cause: "NORMAL_CLEARING",
                    ..Expect::bye("USER_BUSY", 17)
                }
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                .fetches(&["StartApp", "Gather"])
                .gather_digits("3")
                .timing(Timing::AnsweredFor { min: 1.0, max: 6.0 }),
            )
        },
        scenario(
            "asterisk_gather_no_input_goes_on_with_the_next_element_without_a_request",
            "<Gather executionTimeout=\"5\"> with file://beep on 7001 and no key pressed: answered, \
             no request after ~5 s of listening, the next element (busy) ends the call",
            Ext::Ringing,
            vec![xml(
                "<Response><Gather action=\"{app}/answer?step=1\" executionTimeout=\"5\">\
                 <Play>file://beep</Play></Gather><Hangup reason=\"busy\"/></Response>",
            )],
            Expect {
                bye_reason: None,
                caller_cause: "NORMAL_CLEARING",
                ..Expect::bye("USER_BUSY", 17)
            }
            .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
            .timing(Timing::AnsweredFor { min: 4.8, max: 9.0 }),
        ),
        scenario(
            "asterisk_dial_answered_bridges_until_time_limit_then_the_action_runs",
            "<Dial timeLimit=\"3\" action callbackUrl> to 7002 (answers) on 7001: Dial() answers the caller when 7002 does, L() ends the bridge after 3 s, the action gets DialStatus completed and its busy Hangup BYEs; DialAnswer, DialConnected, DialHangup arrive",
            Ext::Ringing,
            vec![
                xml(
                    "<Response><Dial timeLimit=\"3\" action=\"{app}/answer?step=1\" callbackUrl=\"{app}/events\">\
                     <Number>7002</Number></Dial></Response>",
                ),
                xml("<Response><Hangup reason=\"busy\"/></Response>"),
            ],
            Expect {
                bye_reason: None,
                caller_cause: "NORMAL_CLEARING",
                ..Expect::bye("USER_BUSY", 17)
            }
            .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
            .dial_events(&["DialAnswer", "DialConnected", "DialHangup"])
            .fetches(&["StartApp", "DialAction"])
            .dial_status("completed")
            .timing(Timing::AnsweredFor { min: 2.5, max: 6.0 }),
        ),
        scenario(
            "asterisk_dial_busy_leaves_the_caller_unanswered_and_a_busy_hangup_after_it_is_486",
            "<Dial action callbackUrl> to 7003 (486) on 7001: DialStatus busy, the caller still unanswered; the action's <Hangup reason=\"busy\"/> refuses it 486",
            Ext::Ringing,
            vec![
                xml(
                    "<Response><Dial action=\"{app}/answer?step=1\" callbackUrl=\"{app}/events\">\
                     <Number>7003</Number></Dial></Response>",
                ),
                xml("<Response><Hangup reason=\"busy\"/></Response>"),
            ],
            Expect::refused(486, "USER_BUSY")
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                .dial_events(&["DialHangup"])
                .fetches(&["StartApp", "DialAction"])
                .dial_status("busy"),
        )
        .probing(Probe::LegCdr {
            position: 1,
            cause: Some("USER_BUSY"),
            name: "Busy Line",
            source: "Callee",
            answered: false,
        }),
        scenario(
            "asterisk_dial_no_answer_after_the_ring_timeout_runs_the_next_element_486",
            "<Dial timeout=\"2\" action> to 7004 (rings forever) on 7001: DialStatus no-answer after ~2 s, the caller unanswered; the next document's busy Hangup gives 486",
            Ext::Ringing,
            vec![
                xml(
                    "<Response><Dial timeout=\"2\" action=\"{app}/answer?step=1\"><Number>7004</Number></Dial></Response>",
                ),
                xml("<Response><Hangup reason=\"busy\"/></Response>"),
            ],
            Expect::refused(486, "USER_BUSY")
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                .fetches(&["StartApp", "DialAction"])
                .dial_status("no-answer")
                .timing(Timing::LastedAtLeast(1.5)),
        ),
        scenario(
            "asterisk_dial_rest_hangup_of_the_callee_ends_only_it_the_caller_continues",
            "<Dial> to 7002 then <Play>file://beep</Play> on 7001; 2 s after answer the live list holds both legs, the B-leg's details name its parent, and DELETE of the B-leg → 204: ARI hangs the callee up, Dial() returns, the beep plays, BYE End Of XML Instructions",
            Ext::Ringing,
            vec![xml(
                "<Response><Dial><Number>7002</Number></Dial><Play>file://beep</Play></Response>",
            )],
            Expect {
                bye_reason: None,
                ..Expect::bye("NORMAL_CLEARING", 16)
            }
            .record("NORMAL_CLEARING", 16, END_OF_XML, "Answer XML", "completed")
            .timing(Timing::AnsweredFor { min: 1.5, max: 8.0 }),
        )
        .acting(Action::RestHangupCallee { after: 2.0 })
        .probing(Probe::LegCdr {
            position: 1,
            cause: Some("NORMAL_CLEARING"),
            name: "Normal Hangup",
            source: "API",
            answered: true,
        }),
        scenario(
            "asterisk_dial_hangup_on_star_ends_the_bridge_hangs_up_the_callee_and_the_caller_continues",
            "<Dial hangupOnStar=\"true\"> to 7002 then <Play>file://beep</Play> on 7001 (Dial option H); \
             the caller presses * (uuid_send_dtmf) 2 s after answer: Dial() returns (g), the callee's \
             leg ends, the beep plays, BYE End Of XML Instructions (with sipHeaders and sendDigits \
             also given: __SIPADDHEADER51 and D(1) on the same Dial()). The * reaches voxbridge as \
             AMI's DTMFEnd (FastAGI is blocked in Dial()), so the callee's CDR says Caller Hangup / \
             Caller, as on FreeSWITCH",
            Ext::Ringing,
            vec![xml(
                "<Response><Dial hangupOnStar=\"true\" sipHeaders=\"Team=blue\">\
                 <Number sendDigits=\"1\">7002</Number></Dial>\
                 <Play>file://beep</Play></Response>",
            )],
            Expect {
                bye_reason: None,
                ..Expect::bye("NORMAL_CLEARING", 16)
            }
            .record("NORMAL_CLEARING", 16, END_OF_XML, "Answer XML", "completed")
            .timing(Timing::AnsweredFor { min: 2.0, max: 8.0 }),
        )
        .acting(Action::CallerPresses {
            after: 2.0,
            digits: "*",
        })
        .probing(Probe::LegCdr {
            position: 1,
            cause: Some("NORMAL_CLEARING"),
            name: "Caller Hangup",
            source: "Caller",
            answered: true,
        }),
        scenario(
            "asterisk_dial_digits_match_of_the_caller_posts_dial_digits_match_aleg",
            "<Dial digitsMatch=\"12\" timeLimit=\"4\" callbackUrl> to 7002 on 7001; the caller presses 12 \
             (uuid_send_dtmf) a second after the answer: AMI's DTMFEnd (Received on the caller) feeds \
             the engine while Dial() blocks FastAGI; DialDigitsMatch (12, aleg) between DialConnected \
             and DialHangup; L(4000) ends the bridge, BYE End Of XML Instructions",
            Ext::Ringing,
            vec![xml(
                "<Response><Dial digitsMatch=\"12\" timeLimit=\"4\" callbackUrl=\"{app}/events\">\
                 <Number>7002</Number></Dial></Response>",
            )],
            Expect {
                bye_reason: None,
                ..Expect::bye("NORMAL_CLEARING", 16)
            }
            .record("NORMAL_CLEARING", 16, END_OF_XML, "Answer XML", "completed")
            .dial_events(&["DialAnswer", "DialConnected", "DialDigitsMatch", "DialHangup"])
            .dial_param("DialDigitsMatch", "DialDigitsMatch", "12")
            .dial_param("DialDigitsMatch", "DialDigitsPressedBy", "aleg")
            .timing(Timing::AnsweredFor { min: 3.0, max: 9.0 }),
        )
        .acting(Action::CallerPresses {
            after: 1.0,
            digits: "12",
        }),
        scenario(
            "asterisk_dial_digits_match_b_leg_of_the_callee_posts_dial_digits_match_bleg",
            "<Dial digitsMatchBLeg=\"55,12X4#\" timeLimit=\"4\" callbackUrl> to 7007 on 7001 (answers, \
             SendDTMF 1234# a second later): AMI's DTMFEnd Received on the callee's channel (its \
             DialBegin's DestUniqueid), matched by voxbridge: DialDigitsMatch (1234#, bleg) between \
             DialConnected and DialHangup; L(4000) ends the bridge, BYE End Of XML Instructions",
            Ext::Ringing,
            vec![xml(
                "<Response><Dial digitsMatchBLeg=\"55,12X4#\" timeLimit=\"4\" \
                 callbackUrl=\"{app}/events\"><Number>7007</Number></Dial></Response>",
            )],
            Expect {
                bye_reason: None,
                ..Expect::bye("NORMAL_CLEARING", 16)
            }
            .record("NORMAL_CLEARING", 16, END_OF_XML, "Answer XML", "completed")
            .dial_events(&["DialAnswer", "DialConnected", "DialDigitsMatch", "DialHangup"])
            .dial_param("DialDigitsMatch", "DialDigitsMatch", "1234#")
            .dial_param("DialDigitsMatch", "DialDigitsPressedBy", "bleg")
            .timing(Timing::AnsweredFor { min: 3.0, max: 9.0 }),
        ),
        scenario(
            "asterisk_dial_confirm_key_pressed_by_the_callee_bridges_it",
            "<Dial confirmSound=\"…?step=1\" confirmKey=\"1\" timeLimit=\"4\" callbackUrl> to 7007 \
             (answers, presses 1234#) on 7001: the confirm document (a beep, a second of silence) \
             is fetched (DialConfirmSound); the shipped dialplan's U(voxbridge-dial-answered) \
             plays it to 7007 with Read() and its 1 confirms: bridged, DialAnswer at the \
             confirmation (the routine's mark, not DIALEDPEERNUMBER); L() ends it, BYE End Of XML \
             Instructions",
            Ext::Ringing,
            vec![
                xml(
                    "<Response><Dial confirmSound=\"{app}/answer?step=1\" confirmKey=\"1\" \
                     timeLimit=\"4\" callbackUrl=\"{app}/events\"><Number>7007</Number></Dial></Response>",
                ),
                xml("<Response><Play>file://beep</Play><Wait length=\"1\"/></Response>"),
            ],
            Expect {
                bye_reason: None,
                ..Expect::bye("NORMAL_CLEARING", 16)
            }
            .record("NORMAL_CLEARING", 16, END_OF_XML, "Answer XML", "completed")
            .fetches(&["StartApp", "DialConfirmSound"])
            .dial_events(&["DialAnswer", "DialConnected", "DialHangup"])
            .timing(Timing::AnsweredFor { min: 1.5, max: 8.0 }),
        ),
        scenario(
            "asterisk_dial_confirm_key_never_pressed_drops_the_callee_at_the_ring_timeout_486",
            "<Dial timeout=\"4\" confirmSound confirmKey=\"9\" action> to 7007 (presses 1234#, \
             never 9) on 7001: the routine replays the prompt and drops the callee when its \
             channel is 4 s old (GOSUB_RESULT=ABORT, mark unconfirmed) although Dial() says \
             ANSWER; DialStatus no-answer, the caller never answered; the action's busy Hangup \
             gives 486",
            Ext::Ringing,
            vec![
                xml(
                    "<Response><Dial timeout=\"4\" confirmSound=\"{app}/answer?step=1\" \
                     confirmKey=\"9\" action=\"{app}/answer?step=2\"><Number>7007</Number></Dial></Response>",
                ),
                xml("<Response><Play>file://beep</Play><Wait length=\"1\"/></Response>"),
                xml("<Response><Hangup reason=\"busy\"/></Response>"),
            ],
            Expect::refused(486, "USER_BUSY")
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                .fetches(&["StartApp", "DialConfirmSound", "DialAction"])
                .dial_status("no-answer")
                .timing(Timing::LastedAtLeast(3.0)),
        ),
        scenario(
            "asterisk_dial_legs_with_their_own_send_digits_bridge_the_answering_one",
            "<Dial timeLimit=\"3\" action callbackUrl> to 7004 (rings, sendDigits 4) and 7008 \
             (answers after 2 s, sendDigits 55) on 7001: the digits differ, so each leg's are \
             inherited variables and the shipped dialplan's U() routine sends 7008's on its \
             answer; bridged to 7008, 7004 loses the race; L() ends the bridge after 3 s and the \
             action's busy Hangup BYEs",
            Ext::Ringing,
            vec![
                xml(
                    "<Response><Dial timeLimit=\"3\" action=\"{app}/answer?step=1\" callbackUrl=\"{app}/events\">\
                     <Number sendDigits=\"4\">7004</Number><Number sendDigits=\"55\">7008</Number></Dial></Response>",
                ),
                xml("<Response><Hangup reason=\"busy\"/></Response>"),
            ],
            Expect {
                bye_reason: None,
                caller_cause: "NORMAL_CLEARING",
                ..Expect::bye("USER_BUSY", 17)
            }
            .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
            .fetches(&["StartApp", "DialAction"])
            .dial_events(&["DialAnswer", "DialConnected", "DialHangup", "DialHangup"])
            .dial_status("completed")
            .timing(Timing::AnsweredFor { min: 2.5, max: 7.0 }),
        )
        .probing(Probe::LegCdr {
            position: 1,
            cause: Some("LOSE_RACE"),
            name: "Lose Race",
            source: "Answer XML",
            answered: false,
        }),
        Scenario {
            action: Action::CallerPresses {
                after: 2.5,
                digits: "#",
            },
            caller_sends_audio: true,
            ..scenario(
                "asterisk_record_voicemail_finish_on_key_is_a_real_wav_of_the_recorded_length",
                "<Record maxLength=\"5\" finishOnKey=\"#\" redirect=\"true\"> on 7000 (RECORD FILE), \
                 the caller sends audio and presses # (uuid_send_dtmf) ~2 s into it: Asterisk writes \
                 <record.dir>/<RecordingID>.wav, the action and RecordStop say FinishedOnKey, Digits=#, \
                 the WAV downloaded through the API is RecordingDurationMs long, deleted 204",
                Ext::Answered,
                vec![
                    xml(
                        "<Response><Record action=\"{app}/answer?step=1\" redirect=\"true\" \
                         maxLength=\"5\" finishOnKey=\"#\" callbackUrl=\"{app}/events\"/>\
                         <Hangup/></Response>",
                    ),
                    xml("<Response><Hangup reason=\"busy\"/></Response>"),
                ],
                Expect {
                    bye_reason: None,
                    caller_cause: "NORMAL_CLEARING",
                    ..Expect::bye("USER_BUSY", 17)
                }
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                    .fetches(&["StartApp", "Record"])
                    .recording(RecordingWant {
                        reason: "FinishedOnKey",
                        digits: "#",
                        min_ms: 500,
                        max_ms: 4000,
                        action: true,
                        like_the_call_ms: None,
                    }),
            )
        },
        Scenario {
            caller_sends_audio: true,
            ..scenario(
                "asterisk_record_max_length_2_ends_it_as_max_length",
                "<Record maxLength=\"2\" playBeep=\"false\" redirect=\"true\"> on 7000, the caller \
                 sends audio (silence, timeout 60): RECORD FILE replies (timeout) after 2 s, read as \
                 the limit (it ran maxLength); the action's document runs",
                Ext::Answered,
                vec![
                    xml(
                        "<Response><Record action=\"{app}/answer?step=1\" redirect=\"true\" \
                         maxLength=\"2\" playBeep=\"false\" callbackUrl=\"{app}/events\"/>\
                         </Response>",
                    ),
                    xml("<Response><Hangup reason=\"busy\"/></Response>"),
                ],
                Expect {
                    bye_reason: None,
                    caller_cause: "NORMAL_CLEARING",
                    ..Expect::bye("USER_BUSY", 17)
                }
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                    .fetches(&["StartApp", "Record"])
                    .recording(RecordingWant {
                        reason: "maxLength",
                        digits: "",
                        min_ms: 1500,
                        max_ms: 2600,
                        action: true,
                        like_the_call_ms: None,
                    }),
            )
        },
        Scenario {
            caller_sends_audio: true,
            ..scenario(
                "asterisk_record_silence_timeout_ends_it_as_recording_timeout",
                "<Record timeout=\"2\" maxLength=\"20\" playBeep=\"false\" redirect=\"true\"> on \
                 7000, the caller sends silence: Asterisk's silence detection (s=2) ends RECORD FILE \
                 with (timeout) long before maxLength, read as RecordingTimeout; Asterisk cuts the \
                 trailing silence to 1 s",
                Ext::Answered,
                vec![
                    xml(
                        "<Response><Record action=\"{app}/answer?step=1\" redirect=\"true\" \
                         timeout=\"2\" playBeep=\"false\" maxLength=\"20\" \
                         callbackUrl=\"{app}/events\"/></Response>",
                    ),
                    xml("<Response><Hangup reason=\"busy\"/></Response>"),
                ],
                Expect {
                    bye_reason: None,
                    caller_cause: "NORMAL_CLEARING",
                    ..Expect::bye("USER_BUSY", 17)
                }
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                    .fetches(&["StartApp", "Record"])
                    .recording(RecordingWant {
                        reason: "RecordingTimeout",
                        digits: "",
                        min_ms: 300,
                        max_ms: 3000,
                        action: true,
                        like_the_call_ms: None,
                    }),
            )
        },
        Scenario {
            needs_tts: true,
            caller_sends_audio: true,
            ..scenario(
                "asterisk_record_session_is_mix_monitor_and_records_the_whole_call",
                "<Record recordSession=\"true\"/><Speak>…</Speak><Hangup reason=\"busy\"/> on 7000: \
                 MixMonitor in the background, the Speak runs at once; at the hangup RecordStop \
                 (HungUp) and a WAV as long as the caller's billed call",
                Ext::Answered,
                vec![xml(format!(
                    "<Response><Record recordSession=\"true\" callbackUrl=\"{{app}}/events\"/>\
                     <Speak>{SPEECH}</Speak><Hangup reason=\"busy\"/></Response>"
                ))],
                Expect {
                    bye_reason: None,
                    caller_cause: "NORMAL_CLEARING",
                    ..Expect::bye("USER_BUSY", 17)
                }
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                .recording(RecordingWant {
                    reason: "HungUp",
                    digits: "",
                    min_ms: 1000,
                    max_ms: 30_000,
                    action: false,
                    like_the_call_ms: Some(700),
                }),
            )
        },
        Scenario {
            caller_sends_audio: true,
            ..scenario(
                "asterisk_record_start_on_dial_answer_is_mix_monitor_over_ami_from_the_answer",
                "<Record startOnDialAnswer=\"true\"/><Dial timeLimit=\"4\"><Number>7002</Number></Dial> \
                 on 7001: when AMI's DialEnd says 7002 answered, AMI's MixMonitor starts on the caller \
                 beside the running Dial(); L(4000) ends the bridge and the document runs out; \
                 RecordStop HungUp, a WAV as long as the caller's billed (bridged) call",
                Ext::Ringing,
                vec![xml(
                    "<Response><Record startOnDialAnswer=\"true\" callbackUrl=\"{app}/events\"/>\
                     <Dial timeLimit=\"4\"><Number>7002</Number></Dial></Response>",
                )],
                Expect {
                    bye_reason: None,
                    ..Expect::bye("NORMAL_CLEARING", 16)
                }
                .record("NORMAL_CLEARING", 16, END_OF_XML, "Answer XML", "completed")
                .timing(Timing::AnsweredFor { min: 3.0, max: 9.0 })
                .recording(RecordingWant {
                    reason: "HungUp",
                    digits: "",
                    min_ms: 2500,
                    max_ms: 8000,
                    action: false,
                    like_the_call_ms: Some(700),
                }),
            )
        },
        Scenario {
            action: Action::RestStopsRecordings { after: 1.5 },
            caller_sends_audio: true,
            ..scenario(
                "asterisk_record_rest_stop_of_a_mix_monitor_ends_it_at_once_and_the_call_goes_on",
                "<Record recordSession=\"true\"/><Wait length=\"4\"/><Hangup reason=\"busy\"/> on 7000; \
                 DELETE Call/{uuid}/Record/ 1.5 s after answer: 204, AMI's StopMixMonitor beside the \
                 running Wait, RecordStop Stopped with ~1.5 s; the Wait and the busy hangup still run",
                Ext::Answered,
                vec![xml(
                    "<Response><Record recordSession=\"true\" callbackUrl=\"{app}/events\"/>\
                     <Wait length=\"4\"/><Hangup reason=\"busy\"/></Response>",
                )],
                Expect {
                    bye_reason: None,
                    caller_cause: "NORMAL_CLEARING",
                    ..Expect::bye("USER_BUSY", 17)
                }
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                .timing(Timing::AnsweredFor { min: 3.5, max: 9.0 })
                .recording(RecordingWant {
                    reason: "Stopped",
                    digits: "",
                    min_ms: 500,
                    max_ms: 3000,
                    action: false,
                    like_the_call_ms: None,
                }),
            )
        },
        Scenario {
            action: Action::RestStopsRecordings { after: 1.5 },
            caller_sends_audio: true,
            ..scenario(
                "asterisk_record_rest_stop_of_a_running_record_file_ends_it_as_stopped",
                "<Record maxLength=\"10\" finishOnKey=\"#\" playBeep=\"false\" redirect=\"true\"> on 7000; \
                 DELETE Call/{uuid}/Record/ 1.5 s after answer: 204, AMI's PlayDTMF makes the channel \
                 receive D (voxbridge's reserved escape digit), RECORD FILE replies (dtmf) at once: \
                 RecordingEndReason Stopped, no Digits, ~1.5 s; the action's document runs",
                Ext::Answered,
                vec![
                    xml(
                        "<Response><Record action=\"{app}/answer?step=1\" redirect=\"true\" \
                         maxLength=\"10\" finishOnKey=\"#\" playBeep=\"false\" \
                         callbackUrl=\"{app}/events\"/></Response>",
                    ),
                    xml("<Response><Hangup reason=\"busy\"/></Response>"),
                ],
                Expect {
                    bye_reason: None,
                    caller_cause: "NORMAL_CLEARING",
                    ..Expect::bye("USER_BUSY", 17)
                }
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                .fetches(&["StartApp", "Record"])
                .recording(RecordingWant {
                    reason: "Stopped",
                    digits: "",
                    min_ms: 500,
                    max_ms: 3000,
                    action: true,
                    like_the_call_ms: None,
                }),
            )
        },
    ]
}

/// One call of the live Flite-safety test (`FLITE_CONCURRENT`): two Speaks then busy; it
/// passes only if both were really spoken (billed ≥ 2 s) and the call ended as written.
pub fn flite_call() -> Scenario {
    Scenario {
        needs_tts: true,
        ..scenario(
            super::super::FLITE_CONCURRENT,
            "one of five calls placed at once on 7001: <Speak> twice then <Hangup reason=\"busy\"/>; \
             Flite runs one synthesis at a time, every call completes",
            Ext::Ringing,
            vec![xml(format!(
                "<Response><Speak>{SPEECH}</Speak><Speak>Second sentence.</Speak>\
                 <Hangup reason=\"busy\"/></Response>"
            ))],
            Expect {
                bye_reason: None,
                caller_cause: "NORMAL_CLEARING",
                ..Expect::bye("USER_BUSY", 17)
            }
            .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
            .timing(Timing::BilledAtLeastMs(2000)),
        )
    }
}

fn xml(text: impl Into<String>) -> Doc {
    Doc::Xml(text.into())
}
