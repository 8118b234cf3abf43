//! The scenarios of the live suite, shared by both backends (a real FreeSWITCH and the
//! simulator): the answer documents a call gets, what the caller does, and what must be
//! seen on both sides — the caller's leg (what a SIP phone would have got) and voxbridge's
//! hangup callback (what the application is told).
//!
//! Each scenario is named after the SPEC §4 rule it checks. Media is a tone
//! (`tone_stream://`, always available) wherever the point is "something is playing";
//! one scenario uses `<Speak>` on purpose, to check that TTS works on the switch.

/// A one-second tone. (`{app}` in a document is replaced by the local application's
/// base URL.)
pub const TONE_1S: &str = "tone_stream://%(1000,0,350,440)";
/// A tone that plays until something stops it.
pub const TONE_FOREVER: &str = "tone_stream://%(1000,0,350,440);loops=-1";
/// Spoken in the TTS scenario: long enough (~2–3 s with flite) that a `speak` that
/// returns at once (no TTS engine) is visible in the billed time.
pub const SPEECH: &str = "This is the voxbridge live suite speaking through the switch.";

/// The shipped extensions (dialplan/freeswitch/voxbridge.xml).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ext {
    /// 7000: the dialplan answers, then hands the call over.
    Answered,
    /// 7001: handed over ringing.
    Ringing,
}

impl Ext {
    pub fn number(self) -> &'static str {
        match self {
            Ext::Answered => "7000",
            Ext::Ringing => "7001",
        }
    }
}

/// One answer the local application gives, in fetch order (`StartApp`, then each
/// `Redirect` to `{app}/answer?step=N`).
#[derive(Clone, Debug)]
pub enum Doc {
    Xml(String),
    /// An HTTP error instead of a document.
    Status(u16),
}

/// What the caller does once the call is up (the originate returned `+OK`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    Nothing,
    /// `api uuid_kill <A-leg>` this many seconds after answer: the caller hangs up.
    CallerHangsUp {
        after: f64,
    },
    /// REST `DELETE …/Call/{uuid}/` this many seconds after answer.
    RestHangup {
        after: f64,
    },
}

/// How the originate ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Originate {
    /// `+OK <A-leg uuid>`.
    Ok,
    /// `-ERR <CAUSE>`.
    Err(&'static str),
}

/// A time the caller's leg must show.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Timing {
    /// From answer to end on the caller's leg (µs epochs), seconds.
    AnsweredFor {
        min: f64,
        max: f64,
    },
    /// From start to end on the caller's leg, at least / at most, seconds.
    LastedAtLeast(f64),
    LastedAtMost(f64),
    /// The caller's leg was billed at least this long (`billmsec`): media really played.
    BilledAtLeastMs(u64),
    /// REST DELETE sent → the caller's leg hung up (seen on the inbound socket), seconds.
    ApiHangupWithin(f64),
}

/// `HangupCauseName` in the hangup callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Name {
    Exact(&'static str),
    Prefix(&'static str),
}

/// Everything checked for one scenario.
#[derive(Clone, Debug)]
pub struct Expect {
    // ---- the caller's leg (A-leg CHANNEL_HANGUP_COMPLETE, originate result)
    pub originate: Originate,
    pub answered: bool,
    pub caller_cause: &'static str,
    /// `variable_sip_term_status`: the final SIP status the caller received; `None`
    /// when the caller itself ended the call (the switch sets it only when received).
    pub caller_sip: Option<u16>,
    /// The Q.850 cause in the BYE the caller received (`variable_sip_reason`).
    pub bye_q850: Option<u16>,
    pub caller_disposition: &'static str,
    pub timing: Vec<Timing>,
    // ---- voxbridge's hangup callback
    pub cause: &'static str,
    pub cause_code: u16,
    pub cause_name: Name,
    pub source: &'static str,
    pub reason: &'static str,
    pub call_status: &'static str,
    pub sip_status: Option<u16>,
    /// A post-call workflow request (`Event=PostCall`) must arrive.
    pub post_call: bool,
    /// The `Event` of every document fetch, in order.
    pub fetches: Vec<&'static str>,
}

impl Expect {
    /// The unanswered call was refused with `sip` (SPEC §4 table, "unanswered" column).
    fn refused(sip: u16, cause: &'static str) -> Self {
        Expect {
            originate: Originate::Err(cause),
            answered: false,
            caller_cause: cause,
            caller_sip: Some(sip),
            bye_q850: None,
            caller_disposition: "recv_refuse",
            timing: Vec::new(),
            cause,
            cause_code: 0,
            cause_name: Name::Exact(""),
            source: "Answer XML",
            reason: "completed",
            call_status: "completed",
            sip_status: Some(sip),
            post_call: false,
            fetches: vec!["StartApp"],
        }
    }

    /// The answered call got a BYE carrying `cause` (Q.850 `q850`).
    fn bye(cause: &'static str, q850: u16) -> Self {
        Expect {
            originate: Originate::Ok,
            answered: true,
            caller_cause: cause,
            caller_sip: Some(200),
            bye_q850: Some(q850),
            caller_disposition: "recv_bye",
            sip_status: Some(200),
            ..Self::refused(0, cause)
        }
    }

    /// The caller hung up the answered call itself.
    fn caller_bye() -> Self {
        Expect {
            originate: Originate::Ok,
            answered: true,
            caller_cause: "NORMAL_CLEARING",
            caller_sip: None,
            bye_q850: None,
            caller_disposition: "send_bye",
            sip_status: Some(200),
            ..Self::refused(0, "NORMAL_CLEARING")
        }
    }

    /// The caller gave up on a call nobody answered (its `originate_timeout`, f7).
    fn caller_gave_up() -> Self {
        Expect {
            originate: Originate::Err("NO_ANSWER"),
            answered: false,
            caller_cause: "NO_ANSWER",
            caller_sip: None,
            bye_q850: None,
            caller_disposition: "send_cancel",
            sip_status: Some(487),
            ..Self::refused(0, "NO_ANSWER")
        }
    }

    /// voxbridge's record: cause, code, name, source, reason.
    fn record(
        mut self,
        cause: &'static str,
        code: u16,
        name: Name,
        source: &'static str,
        reason: &'static str,
    ) -> Self {
        self.cause = cause;
        self.cause_code = code;
        self.cause_name = name;
        self.source = source;
        self.reason = reason;
        self
    }

    fn timing(mut self, t: Timing) -> Self {
        self.timing.push(t);
        self
    }

    fn call_status(mut self, s: &'static str) -> Self {
        self.call_status = s;
        self
    }

    fn post_call(mut self) -> Self {
        self.post_call = true;
        self
    }

    fn fetches(mut self, f: &[&'static str]) -> Self {
        self.fetches = f.to_vec();
        self
    }
}

/// One behaviour, checked end to end.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The test's name, after the SPEC §4 rule it checks.
    pub name: &'static str,
    /// One line for the failure report and the README.
    pub what: &'static str,
    pub ext: Ext,
    pub docs: Vec<Doc>,
    pub action: Action,
    /// `originate_timeout` of the caller, seconds.
    pub originate_timeout: u64,
    /// Uses `<Speak>`: the switch needs mod_flite.
    pub needs_tts: bool,
    pub expect: Expect,
}

fn scenario(
    name: &'static str,
    what: &'static str,
    ext: Ext,
    docs: Vec<Doc>,
    expect: Expect,
) -> Scenario {
    Scenario {
        name,
        what,
        ext,
        docs,
        action: Action::Nothing,
        originate_timeout: 20,
        needs_tts: false,
        expect,
    }
}

const NORMAL: Name = Name::Exact("Normal Hangup");
const BUSY: Name = Name::Exact("Busy Line");
const REJECTED: Name = Name::Exact("Rejected");
const END_OF_XML: Name = Name::Exact("End Of XML Instructions");
const CALLER: Name = Name::Exact("Caller Hangup");

/// Every scenario, in the order the live suite lists them.
pub fn all() -> Vec<Scenario> {
    #[allow(non_snake_case)]
    fn Xml(text: impl Into<String>) -> Doc {
        Doc::Xml(text.into())
    }
    vec![
        scenario(
            "rule_2_first_hangup_on_a_ringing_call_is_603_never_answered",
            "<Hangup/> first on 7001: SIP 603, never answered, not billed; the Play after it never runs",
            Ext::Ringing,
            vec![Xml(format!("<Response><Hangup/><Play>{TONE_1S}</Play></Response>"))],
            Expect::refused(603, "CALL_REJECTED").record(
                "CALL_REJECTED",
                21,
                REJECTED,
                "Answer XML",
                "rejected",
            ),
        ),
        scenario(
            "rule_2_busy_hangup_on_a_ringing_call_is_486_never_answered",
            "<Hangup reason=\"busy\"/> on 7001: SIP 486, never answered, not billed",
            Ext::Ringing,
            vec![Xml(r#"<Response><Hangup reason="busy"/></Response>"#)],
            Expect::refused(486, "USER_BUSY").record(
                "USER_BUSY",
                17,
                BUSY,
                "Answer XML",
                "busy",
            ),
        ),
        scenario(
            "rule_2_hangup_after_a_wait_keeps_the_call_unanswered_and_is_480",
            "<Wait/> then <Hangup/> on 7001: Wait does not answer; a non-first Hangup is NORMAL_CLEARING = SIP 480",
            Ext::Ringing,
            vec![Xml(r#"<Response><Wait length="1"/><Hangup/></Response>"#)],
            Expect::refused(480, "NORMAL_CLEARING").record(
                "NORMAL_CLEARING",
                16,
                NORMAL,
                "Answer XML",
                "completed",
            ),
        ),
        scenario(
            "rule_2_first_hangup_on_an_answered_call_is_a_rejected_bye",
            "<Hangup/> first on 7000 (answered by the dialplan): BYE with Q.850 21 CALL_REJECTED",
            Ext::Answered,
            vec![Xml("<Response><Hangup/></Response>")],
            Expect::bye("CALL_REJECTED", 21).record(
                "CALL_REJECTED",
                21,
                REJECTED,
                "Answer XML",
                "rejected",
            ),
        ),
        scenario(
            "rule_2_a_hangup_first_in_a_redirected_document_counts_as_first",
            "<Redirect> to a document whose first element is <Hangup/>: 603, never answered",
            Ext::Ringing,
            vec![
                Xml("<Response><Redirect>{app}/answer?step=1</Redirect></Response>"),
                Xml("<Response><Hangup/></Response>"),
            ],
            Expect::refused(603, "CALL_REJECTED")
                .record("CALL_REJECTED", 21, REJECTED, "Answer XML", "rejected")
                .fetches(&["StartApp", "Redirect"]),
        ),
        scenario(
            "rule_1_busy_after_media_answers_then_byes_with_user_busy",
            "<Play> then <Hangup reason=\"busy\"/> on 7001: answered for the Play, then BYE with Q.850 17; the Play after the Hangup never runs",
            Ext::Ringing,
            vec![Xml(format!(
                "<Response><Play>{TONE_1S}</Play><Hangup reason=\"busy\"/>\
                 <Play>{TONE_FOREVER}</Play></Response>"
            ))],
            Expect::bye("USER_BUSY", 17)
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                .timing(Timing::AnsweredFor { min: 0.5, max: 4.0 }),
        ),
        Scenario {
            needs_tts: true,
            ..scenario(
                "rule_2_busy_after_a_speak_answers_for_the_speak_then_byes_with_user_busy",
                "<Speak> then <Hangup reason=\"busy\"/> on 7001: TTS really plays (mod_flite), then BYE with Q.850 17",
                Ext::Ringing,
                vec![Xml(format!(
                    "<Response><Speak>{SPEECH}</Speak><Hangup reason=\"busy\"/></Response>"
                ))],
                Expect::bye("USER_BUSY", 17)
                    .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                    .timing(Timing::BilledAtLeastMs(1000)),
            )
        },
        scenario(
            "rule_3_scheduled_hangup_fires_inside_the_switch_about_2s_later",
            "<Hangup schedule=\"2\"/> then an endless tone: the switch's sched_hangup ends it 1–2 s later (it fires up to 1 s early), source Answer XML",
            Ext::Ringing,
            vec![Xml(format!(
                "<Response><Hangup schedule=\"2\"/><Play>{TONE_FOREVER}</Play></Response>"
            ))],
            Expect::bye("NORMAL_CLEARING", 16)
                .record("NORMAL_CLEARING", 16, NORMAL, "Answer XML", "completed")
                .timing(Timing::AnsweredFor { min: 0.8, max: 3.5 }),
        ),
        scenario(
            "rule_3_schedule_with_nothing_after_ends_at_once_as_end_of_document",
            "<Hangup schedule=\"5\"/> alone on 7001: the document has run out, the call ends at once (480), not after 5 s",
            Ext::Ringing,
            vec![Xml(r#"<Response><Hangup schedule="5"/></Response>"#)],
            Expect::refused(480, "NORMAL_CLEARING")
                .record("NORMAL_CLEARING", 16, END_OF_XML, "Answer XML", "completed")
                .timing(Timing::LastedAtMost(3.0)),
        ),
        Scenario {
            action: Action::CallerHangsUp { after: 1.0 },
            ..scenario(
                "rule_4_caller_hangs_up_mid_playback_source_caller_nothing_after_runs",
                "the caller hangs up (uuid_kill of its leg) during an endless tone: source Caller, the Redirect after the Play is never fetched",
                Ext::Ringing,
                vec![
                    Xml(format!(
                        "<Response><Play>{TONE_FOREVER}</Play>\
                         <Redirect>{{app}}/answer?step=1</Redirect></Response>"
                    )),
                    Xml(r#"<Response><Hangup reason="busy"/></Response>"#),
                ],
                Expect::caller_bye().record(
                    "NORMAL_CLEARING",
                    16,
                    CALLER,
                    "Caller",
                    "completed",
                ),
            )
        },
        Scenario {
            action: Action::RestHangup { after: 1.0 },
            ..scenario(
                "rule_4_rest_api_hangup_mid_playback_byes_at_once_source_api",
                "REST DELETE during an endless tone: the BYE goes out at once (not after the event-locked playback), source API",
                Ext::Ringing,
                vec![Xml(format!(
                    "<Response><Play>{TONE_FOREVER}</Play></Response>"
                ))],
                Expect::bye("NORMAL_CLEARING", 16)
                    .record("NORMAL_CLEARING", 16, NORMAL, "API", "completed")
                    .timing(Timing::ApiHangupWithin(3.0)),
            )
        },
        scenario(
            "rule_5_post_call_workflow_of_the_closing_hangup_fires",
            "<Play> then <Hangup postCallUrl=…/>: BYE NORMAL_CLEARING and the PostCall request arrives",
            Ext::Ringing,
            vec![Xml(format!(
                "<Response><Play>{TONE_1S}</Play>\
                 <Hangup postCallUrl=\"{{app}}/postcall\"/></Response>"
            ))],
            Expect::bye("NORMAL_CLEARING", 16)
                .record("NORMAL_CLEARING", 16, NORMAL, "Answer XML", "completed")
                .post_call(),
        ),
        scenario(
            "rule_6_document_that_runs_out_ends_with_end_of_xml_instructions",
            "a 1 s tone and nothing else on 7001: answered, then BYE NORMAL_CLEARING, End Of XML Instructions",
            Ext::Ringing,
            vec![Xml(format!("<Response><Play>{TONE_1S}</Play></Response>"))],
            Expect::bye("NORMAL_CLEARING", 16)
                .record("NORMAL_CLEARING", 16, END_OF_XML, "Answer XML", "completed")
                .timing(Timing::AnsweredFor { min: 0.5, max: 4.0 }),
        ),
        scenario(
            "loop_of_any_count_on_media_that_fails_costs_the_switch_one_playback",
            "<Play loop=\"100000\"> of media the switch cannot open on 7000: one failed playback, then BYE NORMAL_CLEARING, End Of XML Instructions, within seconds",
            Ext::Answered,
            vec![Xml(
                "<Response><Play loop=\"100000\">silence_stream://0</Play></Response>",
            )],
            Expect::bye("NORMAL_CLEARING", 16)
                .record("NORMAL_CLEARING", 16, END_OF_XML, "Answer XML", "completed")
                .timing(Timing::AnsweredFor { min: 0.0, max: 5.0 }),
        ),
        Scenario {
            originate_timeout: 4,
            ..scenario(
                "rule_7_empty_response_rings_until_the_caller_gives_up",
                "<Response/> on 7001: never answered, keeps ringing until the caller's originate_timeout (4 s); source Caller, CallStatus cancel",
                Ext::Ringing,
                vec![Xml("<Response/>")],
                Expect::caller_gave_up()
                    .record("ORIGINATOR_CANCEL", 16, CALLER, "Caller", "completed")
                    .call_status("cancel")
                    .timing(Timing::LastedAtLeast(2.5)),
            )
        },
        scenario(
            "rule_8_invalid_document_is_refused_603_with_the_parse_error",
            "<Hangup reason=\"later\"/> is a document error: 603, source Error, the parse error in HangupCauseName",
            Ext::Ringing,
            vec![Xml(r#"<Response><Hangup reason="later"/></Response>"#)],
            Expect::refused(603, "CALL_REJECTED").record(
                "CALL_REJECTED",
                21,
                Name::Prefix("Error: invalid document"),
                "Error",
                "completed",
            ),
        ),
        scenario(
            "rule_8_no_document_is_refused_603_source_error",
            "the answer URL answers 404 (not retried): 603, source Error",
            Ext::Ringing,
            vec![Doc::Status(404)],
            Expect::refused(603, "CALL_REJECTED").record(
                "CALL_REJECTED",
                21,
                Name::Prefix("Error: no document"),
                "Error",
                "completed",
            ),
        ),
    ]
}
