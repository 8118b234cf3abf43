//! The scenarios of the live suite, shared by both backends (a real FreeSWITCH and the
//! simulator): the answer documents a call gets, what the caller does, and what must be
//! seen on both sides — the caller's leg (what a SIP phone would have got) and voxbridge's
//! hangup callback (what the application is told).
//!
//! Each scenario is named after the SPEC rule it checks: `rule_N_…` for the §4 hangup
//! rules, `voxml_…` for the VoxML verbs (§3.2), `rest_…` for the REST API (§6). Media is a tone
//! (`tone_stream://`, always available) wherever the point is "something is playing";
//! one scenario uses `<Speak>` on purpose, to check that TTS works on the switch.

/// A one-second tone. (`{app}` in a document is replaced by the local application's
/// base URL.)
/// The same rules on Asterisk (SPEC §16).
pub mod asterisk;
/// The Dial attributes beyond the bridge itself (SPEC §11.1).
pub mod dial_attrs;

pub const TONE_1S: &str = "tone_stream://%(1000,0,350,440)";
/// Three seconds of the same tone.
pub const TONE_3S: &str = "tone_stream://%(3000,0,350,440)";
/// A tone that plays until something stops it.
pub const TONE_FOREVER: &str = "tone_stream://%(1000,0,350,440);loops=-1";
/// Spoken in the TTS scenario: long enough (~2–3 s with flite) that a `speak` that
/// returns at once (no TTS engine) is visible in the billed time.
pub const SPEECH: &str = "This is the voxbridge live suite speaking through the switch.";
/// A prompt long enough (about ten seconds of flite) that a digit pressed two seconds
/// after the answer always lands inside it.
pub const MENU: &str = "Welcome to the voxbridge live suite. For sales, press one. For support, \
     press two. For billing, press three. To hear these options again, please stay on the line \
     and wait for the menu to repeat itself.";

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
    /// A VoxML document (`application/json`): the `instructions` array; the app wraps it
    /// in `{"voxml_version":"1.0","instructions":…}`.
    VoxMl(String),
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
    /// `api uuid_kill <B-leg>` this many seconds after answer: a Dial's callee hangs up.
    /// The B-leg's uuid is the one voxbridge chose (its `bridged b_leg=…` log line).
    CalleeHangsUp {
        after: f64,
    },
    /// REST `DELETE …/Call/{B-leg}/` this many seconds after answer, after checking that
    /// the live list holds both legs and the B-leg's details name its parent.
    RestHangupCallee {
        after: f64,
    },
    /// `api uuid_kill <A-leg>` this many seconds after the originate was sent, while the
    /// call still rings: the caller gives up (CANCEL).
    CallerCancels {
        after: f64,
    },
    /// The caller presses `digits` (`uuid_send_dtmf` on its leg, RFC 2833, ~0.5 s
    /// apart) `after` seconds after its originate returned.
    CallerPresses {
        after: f64,
        digits: &'static str,
    },
    /// From the answer on, the caller sends a 1004 Hz tone into the call
    /// (`uuid_broadcast <A-leg> tone_stream://… aleg`: its own leg plays it towards the
    /// switch); `after` seconds later the callee is killed, as in
    /// [`Action::CalleeHangsUp`]. With an echoing callee (7005), what the caller then
    /// receives crossed the bridge twice.
    CallerTalksThenCalleeHangsUp {
        after: f64,
    },
    /// `after` seconds after voxbridge sent the bridge, while the destinations ring:
    /// the live list holds the caller and the leg (voxbridge's `origination_uuid`), the
    /// leg's details say `ringing` with its parent and no answer time, the caller has no
    /// `bridged_to`; then REST `DELETE …/Call/{B-leg}/` → 204.
    RestHangupRingingCallee {
        after: f64,
    },
    /// REST `DELETE …/Call/{A-leg}/` this many seconds after answer, while bridged, after
    /// checking (as [`Action::RestHangupCallee`]) that the live list holds both legs.
    RestHangupBridgedCaller {
        after: f64,
    },
    /// REST `DELETE …/Call/{uuid}/Record/` this many seconds after answer (204 expected).
    RestStopsRecordings {
        after: f64,
    },
}

/// Something checked through voxbridge's REST API or log, besides the caller's leg and
/// the callbacks (which every scenario checks, with the CDR read back over REST).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Probe {
    /// While the call is up: `GET Call/?status=live` lists it, `GET Call/{uuid}/?status=live`
    /// gives its details (from, to, direction, caller name, this `call_status`, an answer
    /// time once in progress, no schedule), `GET Call/{uuid}/` is 404 pointing at
    /// `?status=live`, and `DELETE` of a call nobody knows is 404 with a JSON error.
    LiveWhileUp { call_status: &'static str },
    /// While the call is up: the live details show `scheduled_hangup_at`, no more than
    /// `secs` (+1) from now. Once the call is over it is compared with when the switch
    /// really ended it (the caller's `end_uepoch`): if the schedule `fires`, the call
    /// ended then (±1.5 s: the API has whole seconds, the switch's scheduler fires up to
    /// 1 s early); if not (a Redirect cancelled it), the call outlived it by more than 1 s.
    /// (Not "about `secs` from now": the moment the test asks can lag the arming by a
    /// second or two when many scenarios run at once; the switch's end time cannot.)
    ScheduleArmed { secs: f64, fires: bool },
    /// `at` seconds after answer the call is still live and `scheduled_hangup_at` is
    /// empty: the schedule was cancelled.
    ScheduleGone { at: f64 },
    /// Once the call is over: `DELETE` and `GET …?status=live` of it answer 404.
    GoneAfterEnd,
    /// Once the call is over: its Dial's B-leg at `position` (1-based, document order:
    /// the `position`-th of voxbridge's `dial leg ended b_leg=…` lines) has its own CDR
    /// over REST: `parent_call_uuid` the call, direction `outbound`, this cause (when
    /// given), name and source, answered or not, and no callback deliveries (the hangup
    /// URL is the A-leg's).
    LegCdr {
        position: usize,
        cause: Option<&'static str>,
        name: &'static str,
        source: &'static str,
        answered: bool,
    },
    /// The post-call document ran in post-call mode: its Redirect was fetched with
    /// `CallStatus=completed`, and voxbridge logged these elements as skipped, in order.
    PostCallMode { skipped: &'static [&'static str] },
    /// voxbridge logged a Gather barge-in whose prompt stopped at most `ms` after the
    /// first digit (both times the switch's: the DTMF event and the completion).
    BargeInWithinMs(u64),
    /// The Dial's callee channel (the B-leg voxbridge logged as bridged) is gone from the
    /// switch (`uuid_exists` → false) at most this many seconds after the action (the
    /// REST DELETE sent, the digits sent): the switch sent it BYE.
    CalleeGoneWithin(f64),
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
    /// The caller's leg got early media (`progress_media_uepoch`) before any answer.
    EarlyMedia,
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
    /// How the Reason of the BYE the caller received begins (`variable_sip_reason`):
    /// `Q.850;cause=N;` for a cause up to 127, `SIP;cause=N;` above (reference §4.2).
    pub bye_reason: Option<String>,
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
    /// A Dial's action request (`Event=DialAction`) must carry this `DialStatus`, its
    /// `DialALegUUID` the call's uuid and a `DialBLegUUID` exactly when `completed`.
    pub dial_status: Option<&'static str>,
    /// The Dial's `callbackUrl` events (`Event`), in `DeliveryID` (creation) order.
    pub dial_events: Vec<&'static str>,
    /// The `Digits` of the Gather fetch (with `InputType=dtmf`), when one is expected.
    pub gather_digits: Option<&'static str>,
    /// The caller's leg sent and received at least this many RTP media packets
    /// (`rtp_audio_{out,in}_media_packet_count`, 50 a second): media crossed the call.
    pub caller_media_packets: Option<u64>,
    /// A recording is expected (SPEC §12.2).
    pub recording: Option<RecordingWant>,
    /// `(Event, name, value)`: every Dial event with that `Event` (`DialAction`: the
    /// action request) carries the parameter `name` with `value`.
    pub dial_params: Vec<(&'static str, &'static str, &'static str)>,
}

/// What a scenario's one recording must be: its `RecordStop` (to `{app}/events`) and,
/// when `action`, its `Event=Record` fetch with the same fields; the file downloaded
/// through the API is a WAV whose length is `RecordingDurationMs` (±100 ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordingWant {
    pub reason: &'static str,
    pub digits: &'static str,
    pub min_ms: u64,
    pub max_ms: u64,
    /// The action is fetched as the next document (`redirect="true"`).
    pub action: bool,
    /// A recording of the whole call: it ends when the caller's leg ends, within this
    /// many ms, and starts within 3 s of its answer (the hand-over and the fetch).
    pub like_the_call_ms: Option<u64>,
}

impl Expect {
    /// The unanswered call was refused with `sip` (SPEC §4 table, "unanswered" column).
    fn refused(sip: u16, cause: &'static str) -> Self {
        Expect {
            originate: Originate::Err(cause),
            answered: false,
            caller_cause: cause,
            caller_sip: Some(sip),
            bye_reason: None,
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
            dial_status: None,
            dial_events: Vec::new(),
            gather_digits: None,
            caller_media_packets: None,
            recording: None,
            dial_params: Vec::new(),
        }
    }

    /// The answered call got a BYE carrying `cause` (Q.850 `q850`).
    fn bye(cause: &'static str, q850: u16) -> Self {
        Expect {
            originate: Originate::Ok,
            answered: true,
            caller_cause: cause,
            caller_sip: Some(200),
            bye_reason: Some(format!("Q.850;cause={q850};")),
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
            bye_reason: None,
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
            bye_reason: None,
            caller_disposition: "send_cancel",
            sip_status: Some(487),
            ..Self::refused(0, "NO_ANSWER")
        }
    }

    /// The caller gave up (CANCEL, `uuid_kill` of its leg) while the call rang: its
    /// originate fails, voxbridge's channel ends ORIGINATOR_CANCEL (487) as the caller's.
    fn caller_cancelled() -> Self {
        Expect {
            originate: Originate::Err("NORMAL_CLEARING"),
            answered: false,
            caller_cause: "NORMAL_CLEARING",
            caller_sip: None,
            bye_reason: None,
            caller_disposition: "send_cancel",
            sip_status: Some(487),
            ..Self::refused(0, "ORIGINATOR_CANCEL")
        }
        .record("ORIGINATOR_CANCEL", 16, CALLER, "Caller", "completed")
        .call_status("cancel")
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

    /// `originate` returned `+OK` although the call was refused: early media alone
    /// completes an originate (reference §9).
    fn originate_ok(mut self) -> Self {
        self.originate = Originate::Ok;
        self
    }

    /// The BYE's Reason begins with `prefix` (instead of `Q.850;cause=N;`).
    fn bye_reason(mut self, prefix: &str) -> Self {
        self.bye_reason = Some(prefix.to_string());
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

    fn dial_events(mut self, events: &[&'static str]) -> Self {
        self.dial_events = events.to_vec();
        self
    }

    fn dial_param(mut self, event: &'static str, name: &'static str, value: &'static str) -> Self {
        self.dial_params.push((event, name, value));
        self
    }

    fn dial_status(mut self, status: &'static str) -> Self {
        self.dial_status = Some(status);
        self
    }

    fn caller_media_packets(mut self, packets: u64) -> Self {
        self.caller_media_packets = Some(packets);
        self
    }

    fn gather_digits(mut self, digits: &'static str) -> Self {
        self.gather_digits = Some(digits);
        self
    }

    fn recording(mut self, want: RecordingWant) -> Self {
        self.recording = Some(want);
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
    /// REST and log checks, in order (the "while up" ones before the action).
    pub probes: Vec<Probe>,
    pub expect: Expect,
    /// The caller's leg sends audio (silence) instead of parking: something to record.
    pub caller_sends_audio: bool,
}

impl Scenario {
    /// Whether the scenario bounds a latency tightly (a Gather's barge-in within 200 ms,
    /// a schedule firing within its second): it then runs alone, after the concurrent
    /// batch (see `run_suite`).
    pub fn timed(&self) -> bool {
        let name = self.name.strip_prefix("asterisk_").unwrap_or(self.name);
        name.starts_with("gather_") || name.starts_with("rule_3_")
    }
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
        probes: Vec::new(),
        expect,
        caller_sends_audio: false,
    }
}

const NORMAL: Name = Name::Exact("Normal Hangup");
const BUSY: Name = Name::Exact("Busy Line");
const REJECTED: Name = Name::Exact("Rejected");
const END_OF_XML: Name = Name::Exact("End Of XML Instructions");
const CALLER: Name = Name::Exact("Caller Hangup");
const TIMEOUT: Name = Name::Exact("Timeout");
const CALLEE: Name = Name::Exact("Callee Hangup");
/// The Dial action of the scenarios: the tag's document 1.
const DIAL_ACTION: &str = "{app}/answer?step=1";

/// Every scenario, in the order the live suite lists them.
pub fn all() -> Vec<Scenario> {
    #[allow(non_snake_case)]
    fn Xml(text: impl Into<String>) -> Doc {
        Doc::Xml(text.into())
    }
    dial_attrs::after(vec![
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
            // Armed before the Play answers: it fires ≥ 1 s after arming, so ≥ 1 s after
            // the call started; answer→end may be a little less (the answer comes some
            // 100 ms after the arming, more while many calls run at once).
            Expect::bye("NORMAL_CLEARING", 16)
                .record("NORMAL_CLEARING", 16, NORMAL, "Answer XML", "completed")
                .timing(Timing::LastedAtLeast(1.0))
                .timing(Timing::AnsweredFor { min: 0.5, max: 3.5 }),
        ),
        scenario(
            "rule_3_schedule_with_nothing_after_ends_at_once_as_end_of_document",
            "<Hangup schedule=\"5\"/> alone on 7001: the document has run out, the call ends at once (480), not after 5 s",
            Ext::Ringing,
            vec![Xml(r#"<Response><Hangup schedule="5"/></Response>"#)],
            Expect::refused(480, "NORMAL_CLEARING")
                .record("NORMAL_CLEARING", 16, END_OF_XML, "Answer XML", "completed")
                .timing(Timing::LastedAtMost(3.9)),
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
            probes: vec![
                Probe::LiveWhileUp {
                    call_status: "in-progress",
                },
                Probe::GoneAfterEnd,
            ],
            ..scenario(
                "rule_4_rest_api_hangup_mid_playback_byes_at_once_source_api",
                "REST DELETE during an endless tone: live list/details while up, the BYE within 1 s (not after the event-locked playback), source API; DELETE again → 404",
                Ext::Ringing,
                vec![Xml(format!(
                    "<Response><Play>{TONE_FOREVER}</Play></Response>"
                ))],
                Expect::bye("NORMAL_CLEARING", 16)
                    .record("NORMAL_CLEARING", 16, NORMAL, "API", "completed")
                    .timing(Timing::ApiHangupWithin(1.0)),
            )
        },
        Scenario {
            action: Action::RestHangup { after: 1.5 },
            needs_tts: true,
            probes: vec![
                Probe::LiveWhileUp {
                    call_status: "in-progress",
                },
                Probe::GoneAfterEnd,
            ],
            ..scenario(
                "rule_4_rest_api_hangup_mid_speak_byes_within_1s_source_api",
                "REST DELETE during an endless <Speak loop=\"0\">: the BYE within 1 s, source API, cause 16; DELETE again → 404",
                Ext::Ringing,
                vec![Xml(format!(
                    "<Response><Speak loop=\"0\">{SPEECH}</Speak><Hangup reason=\"busy\"/></Response>"
                ))],
                Expect::bye("NORMAL_CLEARING", 16)
                    .record("NORMAL_CLEARING", 16, NORMAL, "API", "completed")
                    .timing(Timing::ApiHangupWithin(1.0)),
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
        Scenario {
            action: Action::CallerPresses {
                after: 2.0,
                digits: "2",
            },
            needs_tts: true,
            probes: vec![Probe::BargeInWithinMs(200)],
            ..scenario(
                "gather_menu_digit_during_the_prompt_barges_in_within_200ms_and_its_action_runs",
                "<Gather numDigits=\"1\"> with a long <Speak> prompt on 7000; the caller presses 2 \
                 during it: the prompt stops within 200 ms of the digit (uuid_break), the action \
                 gets Digits=2 InputType=dtmf, its document (busy) runs",
                Ext::Answered,
                vec![
                    Xml(format!(
                        "<Response><Gather action=\"{{app}}/answer?step=1\" numDigits=\"1\">\
                         <Speak>{MENU}</Speak><Speak>never heard</Speak></Gather>\
                         <Speak>never reached</Speak></Response>"
                    )),
                    Xml("<Response><Hangup reason=\"busy\"/></Response>"),
                ],
                Expect::bye("USER_BUSY", 17)
                    .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                    .fetches(&["StartApp", "Gather"])
                    .gather_digits("2"),
            )
        },
        Scenario {
            action: Action::CallerPresses {
                after: 1.0,
                digits: "123#",
            },
            ..scenario(
                "gather_finish_on_key_after_123_posts_digits_123",
                "<Gather finishOnKey=\"#\"> over an endless tone on 7000; the caller presses 123#: \
                 the action gets Digits=123 (the key is not part of them), its document runs",
                Ext::Answered,
                vec![
                    Xml(format!(
                        "<Response><Gather action=\"{{app}}/answer?step=1\" finishOnKey=\"#\">\
                         <Play>{TONE_FOREVER}</Play></Gather></Response>"
                    )),
                    Xml("<Response><Hangup reason=\"busy\"/></Response>"),
                ],
                Expect::bye("USER_BUSY", 17)
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
            probes: vec![Probe::BargeInWithinMs(200)],
            ..scenario(
                "gather_wait_prompt_is_silence_a_digit_stops_it_within_200ms",
                "<Gather numDigits=\"1\"><Wait length=\"6\"/><Play>tone</Play></Gather> on 7000; the \
                 caller presses 3 during the Wait: played as silence_stream, so the digit is reported \
                 while it runs and uuid_break stops it within 200 ms; Digits=3",
                Ext::Answered,
                vec![
                    Xml(format!(
                        "<Response><Gather action=\"{{app}}/answer?step=1\" numDigits=\"1\">\
                         <Wait length=\"6\"/><Play>{TONE_FOREVER}</Play></Gather></Response>"
                    )),
                    Xml("<Response><Hangup reason=\"busy\"/></Response>"),
                ],
                Expect::bye("USER_BUSY", 17)
                    .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                    .fetches(&["StartApp", "Gather"])
                    .gather_digits("3"),
            )
        },
        scenario(
            "gather_no_input_goes_on_with_the_next_element_without_a_request",
            "<Gather executionTimeout=\"5\"> with a 1 s tone on 7001 and no key pressed: answered, \
             no request after ~6 s, the next element (busy) ends the call",
            Ext::Ringing,
            vec![Xml(format!(
                "<Response><Gather action=\"{{app}}/answer?step=1\" executionTimeout=\"5\">\
                 <Play>{TONE_1S}</Play></Gather><Hangup reason=\"busy\"/></Response>"
            ))],
            Expect::bye("USER_BUSY", 17)
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                .timing(Timing::AnsweredFor { min: 5.5, max: 9.0 }),
        ),
        Scenario {
            action: Action::CallerPresses {
                after: 2.5,
                digits: "#",
            },
            caller_sends_audio: true,
            ..scenario(
                "record_voicemail_max_length_5_finish_on_key_is_a_real_wav_of_the_recorded_length",
                "<Record maxLength=\"5\" finishOnKey=\"#\" redirect=\"true\"> on 7000, the caller \
                 presses # ~2 s into it: the switch writes <record.dir>/<RecordingID>.wav, the action \
                 (Event=Record) and RecordStop carry the same 12.2 fields (FinishedOnKey, Digits=#), \
                 the file downloaded through the API is a WAV of RecordingDurationMs, deleted 204",
                Ext::Answered,
                vec![
                    Xml(
                        "<Response><Record action=\"{app}/answer?step=1\" redirect=\"true\" \
                         maxLength=\"5\" finishOnKey=\"#\" callbackUrl=\"{app}/events\"/>\
                         <Hangup/></Response>",
                    ),
                    Xml("<Response><Hangup reason=\"busy\"/></Response>"),
                ],
                Expect::bye("USER_BUSY", 17)
                    .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                    .fetches(&["StartApp", "Record"])
                    .recording(RecordingWant {
                        reason: "FinishedOnKey",
                        digits: "#",
                        // The # comes ~2 s after the answer; the record starts after the fetch and the
                        // beep, which a loaded machine delays (900 ms of audio measured on the
                        // simulator at load 7), so only "some audio" is asserted here.
                        min_ms: 300,
                        max_ms: 4000,
                        action: true,
                        like_the_call_ms: None,
                    }),
            )
        },
        Scenario {
            needs_tts: true,
            caller_sends_audio: true,
            ..scenario(
                "record_session_records_the_whole_call_including_a_speak",
                "<Record recordSession=\"true\"/><Speak>…</Speak><Hangup reason=\"busy\"/> on 7000: \
                 record_session in the background, the Speak runs at once; at the hangup RecordStop \
                 (HungUp) and a WAV as long as the caller's billed call",
                Ext::Answered,
                vec![Xml(format!(
                    "<Response><Record recordSession=\"true\" callbackUrl=\"{{app}}/events\"/>\
                     <Speak>{MENU}</Speak><Hangup reason=\"busy\"/></Response>"
                ))],
                Expect::bye("USER_BUSY", 17)
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
            action: Action::RestStopsRecordings { after: 1.5 },
            caller_sends_audio: true,
            ..scenario(
                "record_rest_stop_ends_the_calls_recording_at_once_and_the_call_goes_on",
                "<Record recordSession=\"true\"/><Play>3 s tone</Play><Hangup reason=\"busy\"/> on 7000; \
                 DELETE Call/{uuid}/Record/ 1.5 s after answer: 204, RecordStop Stopped with ~1.5 s \
                 (uuid_record stop beside the running playback), the tone and the busy hangup still run",
                Ext::Answered,
                vec![Xml(format!(
                    "<Response><Record recordSession=\"true\" callbackUrl=\"{{app}}/events\"/>\
                     <Play>{TONE_3S}</Play><Hangup reason=\"busy\"/></Response>"
                ))],
                Expect::bye("USER_BUSY", 17)
                    .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                    .timing(Timing::AnsweredFor { min: 2.5, max: 8.0 })
                    .recording(RecordingWant {
                        reason: "Stopped",
                        digits: "",
                        min_ms: 500,
                        max_ms: 2900,
                        action: false,
                        like_the_call_ms: None,
                    }),
            )
        },
        Scenario {
            caller_sends_audio: true,
            ..scenario(
                "record_silence_timeout_ends_it_as_recording_timeout",
                "<Record timeout=\"2\" playBeep=\"false\" redirect=\"true\"> on 7000, the caller silent: \
                 the switch's silence detection ends it (RecordingTimeout); the test switch's G722 \
                 counts the silence in 8 kHz packets of 16 kHz audio, so 2 s of timeout last ~4 s",
                Ext::Answered,
                vec![
                    Xml(
                        "<Response><Record action=\"{app}/answer?step=1\" redirect=\"true\" \
                         timeout=\"2\" playBeep=\"false\" maxLength=\"20\" \
                         callbackUrl=\"{app}/events\"/></Response>",
                    ),
                    Xml("<Response><Hangup reason=\"busy\"/></Response>"),
                ],
                Expect::bye("USER_BUSY", 17)
                    .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                    .fetches(&["StartApp", "Record"])
                    .recording(RecordingWant {
                        reason: "RecordingTimeout",
                        digits: "",
                        min_ms: 1500,
                        max_ms: 6000,
                        action: true,
                        like_the_call_ms: None,
                    }),
            )
        },
        Scenario {
            caller_sends_audio: true,
            ..scenario(
                "record_max_length_2_runs_to_the_next_whole_second",
                "<Record maxLength=\"2\" playBeep=\"false\" redirect=\"true\"> on 7000, the caller \
                 silent (timeout 60): the limit ends it (maxLength) after 2–3 s of wall time (the \
                 switch counts whole epoch seconds, capture r); the audio is that less what the switch \
                 did not read while starting the record under load (1.88 s measured on a loaded \
                 2-core CI machine), so 1.5–3.1 s; the action's document runs",
                Ext::Answered,
                vec![
                    Xml(
                        "<Response><Record action=\"{app}/answer?step=1\" redirect=\"true\" \
                         maxLength=\"2\" playBeep=\"false\" callbackUrl=\"{app}/events\"/>\
                         </Response>",
                    ),
                    Xml("<Response><Hangup reason=\"busy\"/></Response>"),
                ],
                Expect::bye("USER_BUSY", 17)
                    .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                    .fetches(&["StartApp", "Record"])
                    .recording(RecordingWant {
                        reason: "maxLength",
                        digits: "",
                        min_ms: 1500,
                        max_ms: 3100,
                        action: true,
                        like_the_call_ms: None,
                    }),
            )
        },
        Scenario {
            action: Action::CallerHangsUp { after: 2.0 },
            caller_sends_audio: true,
            ..scenario(
                "record_caller_hangs_up_during_it_the_file_and_the_action_still_come",
                "<Record> on 7000 (beep, then recording), the caller hangs up 2 s after answer: \
                 source Caller; the action (Event=Record, through the outbox: no call left to run a \
                 document on) and RecordStop say HungUp, the WAV holds what was recorded",
                Ext::Answered,
                vec![Xml(
                    "<Response><Record action=\"{app}/answer?step=1\" \
                     callbackUrl=\"{app}/events\"/><Hangup reason=\"busy\"/></Response>",
                )],
                Expect::caller_bye()
                    .record("NORMAL_CLEARING", 16, CALLER, "Caller", "completed")
                    .fetches(&["StartApp", "Record"])
                    .recording(RecordingWant {
                        reason: "HungUp",
                        digits: "",
                        min_ms: 500,
                        max_ms: 2500,
                        action: true,
                        like_the_call_ms: None,
                    }),
            )
        },
        scenario(
            "gather_bad_document_is_refused_603_naming_line_and_column",
            "<Gather numDigits=\"0\"> is a document error: 603, source Error, line:col in the notes",
            Ext::Ringing,
            vec![Xml(
                "<Response>\n  <Gather action=\"http://127.0.0.1:9/x\" numDigits=\"0\"/>\n</Response>",
            )],
            Expect::refused(603, "CALL_REJECTED").record(
                "CALL_REJECTED",
                21,
                Name::Prefix("Error: invalid document: line 2, col 3"),
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
        Scenario {
            probes: vec![Probe::LiveWhileUp {
                call_status: "ringing",
            }],
            ..scenario(
                "rest_live_details_of_a_ringing_call_say_ringing_without_answer_time",
                "<Wait length=\"3\"/><Hangup reason=\"busy\"/> on 7001: while it waits the live list has it, details say ringing with no answer time; then 486",
                Ext::Ringing,
                vec![Xml(r#"<Response><Wait length="3"/><Hangup reason="busy"/></Response>"#)],
                Expect::refused(486, "USER_BUSY")
                    .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                    .timing(Timing::LastedAtLeast(2.5)),
            )
        },
        // ---- more of rules 1, 2, 6, 7, 8, 9
        scenario(
            "rule_1_elements_after_hangup_are_still_parsed_so_a_broken_one_refuses_603",
            "<Hangup reason=\"busy\"/> then an unknown <Bogus/>: the document is an error, not a busy refusal: 603, source Error",
            Ext::Ringing,
            vec![Xml(
                "<Response>\n<Hangup reason=\"busy\"/>\n<Speak>x</Speak>\n<Bogus/>\n</Response>",
            )],
            Expect::refused(603, "CALL_REJECTED").record(
                "CALL_REJECTED",
                21,
                Name::Prefix("Error: invalid document"),
                "Error",
                "completed",
            ),
        ),
        scenario(
            "rule_2_hangup_after_early_media_refuses_486_without_answering",
            "<PreAnswer><Play>1 s</Play></PreAnswer><Hangup reason=\"busy\"/> on 7001: early media (originate +OK), then 486, never answered, not billed",
            Ext::Ringing,
            vec![Xml(format!(
                "<Response><PreAnswer><Play>{TONE_1S}</Play></PreAnswer><Hangup reason=\"busy\"/></Response>"
            ))],
            Expect::refused(486, "USER_BUSY")
                .originate_ok()
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy"),
        ),
        scenario(
            "rule_6_end_of_document_before_answer_is_480",
            "<Wait length=\"1\"/> alone on 7001: the document runs out before anything answered: 480, End Of XML Instructions",
            Ext::Ringing,
            vec![Xml(r#"<Response><Wait length="1"/></Response>"#)],
            Expect::refused(480, "NORMAL_CLEARING").record(
                "NORMAL_CLEARING",
                16,
                END_OF_XML,
                "Answer XML",
                "completed",
            ),
        ),
        Scenario {
            originate_timeout: 20,
            ..scenario(
                "rule_7_empty_response_on_a_ringing_call_times_out_480_allotted_timeout",
                "<Response/> on 7001, the caller waits: after empty_document_timeout (6 s here) 480 with no Q.850 reason (the caller's leg reads NO_USER_RESPONSE), never answered; voxbridge records ALLOTTED_TIMEOUT `Timeout`",
                Ext::Ringing,
                vec![Xml("<Response/>")],
                Expect::refused(480, "NO_USER_RESPONSE")
                    .record("ALLOTTED_TIMEOUT", 16, TIMEOUT, "Answer XML", "completed")
                    .timing(Timing::LastedAtLeast(5.0)),
            )
        },
        scenario(
            "rule_7_empty_response_on_an_answered_call_times_out_allotted_timeout",
            "<Response/> on 7000 (answered): after empty_document_timeout (6 s here) a BYE with Reason SIP;cause=802 (ALLOTTED_TIMEOUT is above 127; the caller's leg reads NORMAL_CLEARING); voxbridge records ALLOTTED_TIMEOUT 16 `Timeout`",
            Ext::Answered,
            vec![Xml("<Response/>")],
            Expect::bye("NORMAL_CLEARING", 16)
                .bye_reason("SIP;cause=802;text=\"ALLOTTED_TIMEOUT\"")
                .record("ALLOTTED_TIMEOUT", 16, TIMEOUT, "Answer XML", "completed")
                .timing(Timing::AnsweredFor { min: 5.0, max: 9.0 }),
        ),
        scenario(
            "rule_8_no_document_on_an_answered_call_is_a_normal_clearing_bye_source_error",
            "7000 (answered), the answer URL answers 404: BYE with Q.850 16, source Error",
            Ext::Answered,
            vec![Doc::Status(404)],
            Expect::bye("NORMAL_CLEARING", 16).record(
                "NORMAL_CLEARING",
                16,
                Name::Prefix("Error: no document"),
                "Error",
                "completed",
            ),
        ),
        scenario(
            "rule_9_hangup_with_text_is_a_document_error_603",
            "<Hangup>bye</Hangup> (text in a Hangup) on 7001: a document error naming the line: 603, source Error",
            Ext::Ringing,
            vec![Xml("<Response>\n<Speak>hi</Speak>\n<Hangup>bye</Hangup>\n</Response>")],
            Expect::refused(603, "CALL_REJECTED").record(
                "CALL_REJECTED",
                21,
                Name::Prefix("Error: invalid document: line 3"),
                "Error",
                "completed",
            ),
        ),
        // ---- rule 3: schedule, its live visibility, and Redirect
        Scenario {
            probes: vec![Probe::ScheduleArmed {
                secs: 3.0,
                fires: true,
            }],
            ..scenario(
                "rule_3_armed_schedule_shows_on_the_live_call_and_fires_with_its_reason",
                "<Hangup schedule=\"3\" reason=\"busy\"/> then an endless tone: scheduled_hangup_at ≈ now+3 s on the live call; it fires as a BYE with Q.850 17, source Answer XML",
                Ext::Ringing,
                vec![Xml(format!(
                    "<Response><Hangup schedule=\"3\" reason=\"busy\"/><Play>{TONE_FOREVER}</Play></Response>"
                ))],
                Expect::bye("USER_BUSY", 17)
                    .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                    .timing(Timing::AnsweredFor { min: 1.8, max: 4.5 }),
            )
        },
        scenario(
            "rule_3_a_schedule_firing_before_answer_refuses_with_its_reason_486",
            "<Hangup schedule=\"2\" reason=\"busy\"/><Wait length=\"30\"/> on 7001: the schedule fires while it still rings: 486, never answered",
            Ext::Ringing,
            vec![Xml(
                r#"<Response><Hangup schedule="2" reason="busy"/><Wait length="30"/><Hangup/></Response>"#,
            )],
            Expect::refused(486, "USER_BUSY")
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                .timing(Timing::LastedAtMost(10.0)),
        ),
        // The switch's scheduler works on whole epoch seconds: `+N` fires N−1 to N s after
        // it is armed. The Redirect comes ~1 s in, so the first schedule is 3 s (it cannot
        // fire before the Redirect) and the documents outlast it by a clear margin.
        Scenario {
            probes: vec![
                Probe::ScheduleArmed {
                    secs: 3.0,
                    fires: false,
                },
                Probe::ScheduleGone { at: 4.0 },
            ],
            ..scenario(
                "rule_3_redirect_to_a_document_without_schedule_cancels_it_the_call_outlives_it",
                "<Hangup schedule=\"3\"/>, a 1 s tone, <Redirect> to a 4 s tone + busy: the schedule is cancelled (gone from the live call at 4 s), the call ends busy after ~5 s",
                Ext::Ringing,
                vec![
                    Xml(format!(
                        "<Response><Hangup schedule=\"3\"/><Play>{TONE_1S}</Play>\
                         <Redirect>{{app}}/answer?step=1</Redirect></Response>"
                    )),
                    Xml(format!(
                        "<Response><Play loop=\"4\">{TONE_1S}</Play><Hangup reason=\"busy\"/></Response>"
                    )),
                ],
                Expect::bye("USER_BUSY", 17)
                    .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                    .fetches(&["StartApp", "Redirect"])
                    .timing(Timing::AnsweredFor { min: 4.5, max: 8.0 }),
            )
        },
        scenario(
            "rule_3_redirect_to_a_document_that_schedules_again_rearms_it",
            "<Hangup schedule=\"3\"/>, a 1 s tone, <Redirect> to <Hangup schedule=\"4\" reason=\"busy\"/> + 8 s of tone: the new schedule fires (busy, 4–5 s in), neither the old one (NORMAL_CLEARING 2–3 s in) nor the end of the tone",
            Ext::Ringing,
            vec![
                Xml(format!(
                    "<Response><Hangup schedule=\"3\"/><Play>{TONE_1S}</Play>\
                     <Redirect>{{app}}/answer?step=1</Redirect></Response>"
                )),
                Xml(format!(
                    "<Response><Hangup schedule=\"4\" reason=\"busy\"/><Play loop=\"8\">{TONE_1S}</Play></Response>"
                )),
            ],
            Expect::bye("USER_BUSY", 17)
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                .fetches(&["StartApp", "Redirect"])
                .timing(Timing::AnsweredFor { min: 3.5, max: 6.0 }),
        ),
        // ---- rule 5: post-call workflow
        Scenario {
            probes: vec![Probe::PostCallMode {
                skipped: &["Speak", "Wait", "Hangup", "Play"],
            }],
            ..scenario(
                "rule_5_post_call_document_runs_in_post_call_mode_after_the_end",
                "<Play>1 s</Play><Hangup postCallUrl=…/>: after the end the PostCall request (with the final record) gets a document: its Redirect is followed (CallStatus completed), Speak/Wait/Hangup/Play are skipped and logged",
                Ext::Ringing,
                vec![
                    Xml(format!(
                        "<Response><Play>{TONE_1S}</Play>\
                         <Hangup postCallUrl=\"{{app}}/postcall?step=1\"/></Response>"
                    )),
                    Xml(
                        "<Response><Speak>too late</Speak><Wait/>\
                         <Redirect>{app}/answer?step=2</Redirect><Speak>never reached</Speak></Response>",
                    ),
                    Xml(format!(
                        "<Response><Hangup reason=\"busy\"/><Play>{TONE_1S}</Play></Response>"
                    )),
                ],
                Expect::bye("NORMAL_CLEARING", 16)
                    .record("NORMAL_CLEARING", 16, NORMAL, "Answer XML", "completed")
                    .fetches(&["StartApp", "Redirect"])
                    .post_call(),
            )
        },
        scenario(
            "rule_5_post_call_urls_of_hangups_that_did_not_close_the_call_never_fire",
            "a schedule that never fires and a Hangup never reached both carry postCallUrl; the busy Hangup between them closes the call: no PostCall request",
            Ext::Ringing,
            vec![Xml(format!(
                "<Response><Play>{TONE_1S}</Play>\
                 <Hangup schedule=\"30\" postCallUrl=\"{{app}}/postcall\"/>\
                 <Hangup reason=\"busy\"/><Hangup postCallUrl=\"{{app}}/postcall\"/></Response>"
            ))],
            Expect::bye("USER_BUSY", 17).record("USER_BUSY", 17, BUSY, "Answer XML", "busy"),
        ),
        // ---- §3.2: every VoxML verb, with what the caller got
        scenario(
            "voxml_reject_on_a_ringing_call_is_603_never_answered",
            "VoxML Reject on 7001: SIP 603, never answered, CALL_REJECTED",
            Ext::Ringing,
            vec![Doc::VoxMl(r#"[{"verb":"Reject"}]"#.into())],
            Expect::refused(603, "CALL_REJECTED").record(
                "CALL_REJECTED",
                21,
                REJECTED,
                "Answer XML",
                "rejected",
            ),
        ),
        scenario(
            "voxml_reject_busy_on_a_ringing_call_is_486_never_answered",
            "VoxML Reject reason busy on 7001: SIP 486, never answered",
            Ext::Ringing,
            vec![Doc::VoxMl(r#"[{"verb":"Reject","reason":"busy"}]"#.into())],
            Expect::refused(486, "USER_BUSY").record("USER_BUSY", 17, BUSY, "Answer XML", "busy"),
        ),
        scenario(
            "voxml_reject_on_an_answered_call_acts_as_hangup_bye_21",
            "VoxML Reject on 7000 (already answered): acts as Hangup, BYE with Q.850 21",
            Ext::Answered,
            vec![Doc::VoxMl(r#"[{"verb":"Reject"}]"#.into())],
            Expect::bye("CALL_REJECTED", 21).record(
                "CALL_REJECTED",
                21,
                REJECTED,
                "Answer XML",
                "rejected",
            ),
        ),
        scenario(
            "voxml_hangup_rejected_on_a_ringing_call_is_603",
            "VoxML Hangup reason rejected on 7001: SIP 603, never answered",
            Ext::Ringing,
            vec![Doc::VoxMl(r#"[{"verb":"Hangup","reason":"rejected"}]"#.into())],
            Expect::refused(603, "CALL_REJECTED").record(
                "CALL_REJECTED",
                21,
                REJECTED,
                "Answer XML",
                "rejected",
            ),
        ),
        Scenario {
            needs_tts: true,
            ..scenario(
                "voxml_say_then_hangup_busy_answers_then_byes_with_user_busy",
                "VoxML Say (flite) then Hangup busy on 7001: the speech plays (billed ≥ 1 s), then BYE with Q.850 17",
                Ext::Ringing,
                vec![Doc::VoxMl(format!(
                    r#"[{{"verb":"Say","text":"{SPEECH}"}},{{"verb":"Hangup","reason":"busy"}}]"#
                ))],
                Expect::bye("USER_BUSY", 17)
                    .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                    .timing(Timing::BilledAtLeastMs(1000)),
            )
        },
        scenario(
            "voxml_play_then_hangup_completed_is_a_normal_bye_and_its_post_call_fires",
            "VoxML Play (1 s tone) then Hangup completed with post_call_url: BYE Q.850 16 Normal Hangup, the PostCall request arrives",
            Ext::Ringing,
            vec![Doc::VoxMl(format!(
                r#"[{{"verb":"Play","url":"{TONE_1S}"}},{{"verb":"Hangup","reason":"completed","post_call_url":"{{app}}/postcall"}}]"#
            ))],
            Expect::bye("NORMAL_CLEARING", 16)
                .record("NORMAL_CLEARING", 16, NORMAL, "Answer XML", "completed")
                .timing(Timing::AnsweredFor { min: 0.5, max: 4.0 })
                .post_call(),
        ),
        scenario(
            "voxml_play_loop_2_then_end_of_document",
            "VoxML Play loop 2 (1 s tone) and nothing else: answered ≥ 1.6 s, then End Of XML Instructions",
            Ext::Ringing,
            vec![Doc::VoxMl(format!(
                r#"[{{"verb":"Play","url":"{TONE_1S}","loop":2}}]"#
            ))],
            Expect::bye("NORMAL_CLEARING", 16)
                .record("NORMAL_CLEARING", 16, END_OF_XML, "Answer XML", "completed")
                .timing(Timing::AnsweredFor { min: 1.6, max: 5.0 }),
        ),
        scenario(
            "voxml_pause_then_hangup_completed_never_answers_480",
            "VoxML Pause 1 s then Hangup completed on 7001: Pause does not answer; NORMAL_CLEARING = SIP 480",
            Ext::Ringing,
            vec![Doc::VoxMl(
                r#"[{"verb":"Pause","length":1},{"verb":"Hangup","reason":"completed"}]"#.into(),
            )],
            Expect::refused(480, "NORMAL_CLEARING")
                .record("NORMAL_CLEARING", 16, NORMAL, "Answer XML", "completed")
                .timing(Timing::LastedAtLeast(0.8)),
        ),
        scenario(
            "voxml_redirect_to_a_reject_counts_as_first_603",
            "VoxML Pause then Redirect to a VoxML Reject: the new document's Reject is first, 603, never answered",
            Ext::Ringing,
            vec![
                Doc::VoxMl(
                    r#"[{"verb":"Pause","length":1},{"verb":"Redirect","url":"{app}/answer?step=1"},{"verb":"Say","text":"never"}]"#
                        .into(),
                ),
                Doc::VoxMl(r#"[{"verb":"Reject"}]"#.into()),
            ],
            Expect::refused(603, "CALL_REJECTED")
                .record("CALL_REJECTED", 21, REJECTED, "Answer XML", "rejected")
                .fetches(&["StartApp", "Redirect"]),
        ),
        scenario(
            "dial_answered_the_bridge_answers_the_caller_and_the_callee_hangup_ends_it",
            "<Dial callbackUrl><Number>7002</Number></Dial> on 7001 (7002 answers): the bridge answers the caller; the callee is killed 2 s later and, nothing following, the caller gets BYE NORMAL_CLEARING as Callee Hangup; DialAnswer, DialConnected, DialHangup to the callbackUrl",
            Ext::Ringing,
            vec![Xml("<Response><Dial callbackUrl=\"{app}/events\"><Number>7002</Number></Dial></Response>")],
            Expect::bye("NORMAL_CLEARING", 16)
                .record("NORMAL_CLEARING", 16, CALLEE, "Callee", "completed")
                .dial_events(&["DialAnswer", "DialConnected", "DialHangup"])
                .timing(Timing::AnsweredFor { min: 1.5, max: 6.0 }),
        )
        .acting(Action::CalleeHangsUp { after: 2.0 })
        .probing(Probe::LegCdr {
            position: 1,
            cause: Some("NORMAL_CLEARING"),
            name: "Callee Hangup",
            source: "Callee",
            answered: true,
        }),
        Scenario {
            caller_sends_audio: true,
            ..scenario(
                "record_start_on_dial_answer_records_from_the_callees_answer",
                "<Record startOnDialAnswer=\"true\"/><Dial><Number>7002</Number></Dial> on 7001: not \
                 answered by the Record; when 7002 answers, uuid_record starts beside the bridge; the \
                 callee killed 2 s later ends the call (Callee Hangup); RecordStop HungUp, a WAV as \
                 long as the caller's billed (bridged) call",
                Ext::Ringing,
                vec![Xml(
                    "<Response><Record startOnDialAnswer=\"true\" callbackUrl=\"{app}/events\"/>\
                     <Dial><Number>7002</Number></Dial></Response>",
                )],
                Expect::bye("NORMAL_CLEARING", 16)
                    .record("NORMAL_CLEARING", 16, CALLEE, "Callee", "completed")
                    .timing(Timing::AnsweredFor { min: 1.5, max: 6.0 })
                    .recording(RecordingWant {
                        reason: "HungUp",
                        digits: "",
                        min_ms: 1000,
                        max_ms: 6000,
                        action: false,
                        like_the_call_ms: Some(700),
                    }),
            )
        }
        .acting(Action::CalleeHangsUp { after: 2.0 }),
        scenario(
            "dial_two_destinations_the_first_to_answer_wins_the_other_ends_lose_race",
            "<Dial callbackUrl> to 7004 (rings forever) and 7002 (answers) at once: 7002 is bridged, 7004 ends LOSE_RACE (its DialHangup and its CDR say so); the callee killed after 2 s ends the caller as Callee Hangup",
            Ext::Ringing,
            vec![Xml("<Response><Dial callbackUrl=\"{app}/events\"><Number>7004</Number><Number>7002</Number></Dial></Response>")],
            Expect::bye("NORMAL_CLEARING", 16)
                .record("NORMAL_CLEARING", 16, CALLEE, "Callee", "completed")
                .dial_events(&["DialAnswer", "DialConnected", "DialHangup", "DialHangup"])
                .timing(Timing::AnsweredFor { min: 1.5, max: 6.0 }),
        )
        .acting(Action::CalleeHangsUp { after: 2.0 })
        .probing(Probe::LegCdr {
            position: 1,
            cause: Some("LOSE_RACE"),
            name: "Lose Race",
            source: "Answer XML",
            answered: false,
        }),
        scenario(
            "dial_action_after_the_callee_hangs_up_is_the_next_document",
            "<Dial action> to 7002, callee killed after 2 s: the action is fetched (DialAction, completed, the B-leg's uuid) and its 1 s tone plays before the End Of XML BYE",
            Ext::Ringing,
            vec![
                Xml(format!("<Response><Dial action=\"{DIAL_ACTION}\"><Number>7002</Number></Dial><Speak>never</Speak></Response>")),
                Xml(format!("<Response><Play>{TONE_1S}</Play></Response>")),
            ],
            Expect::bye("NORMAL_CLEARING", 16)
                .record("NORMAL_CLEARING", 16, END_OF_XML, "Answer XML", "completed")
                .fetches(&["StartApp", "DialAction"])
                .dial_status("completed")
                .timing(Timing::AnsweredFor { min: 2.5, max: 8.0 }),
        )
        .acting(Action::CalleeHangsUp { after: 2.0 }),
        scenario(
            "dial_busy_leaves_the_caller_unanswered_and_a_busy_hangup_after_it_is_486",
            "<Dial action> to 7003 (486) on 7001: DialStatus busy, no B-leg, the caller still unanswered; the action's <Hangup reason=\"busy\"/> refuses it 486",
            Ext::Ringing,
            vec![
                Xml(format!("<Response><Dial action=\"{DIAL_ACTION}\" callbackUrl=\"{{app}}/events\"><Number>7003</Number></Dial></Response>")),
                Xml("<Response><Hangup reason=\"busy\"/></Response>"),
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
            "dial_no_answer_after_the_ring_timeout_runs_the_next_element_486",
            "<Dial timeout=\"2\" action> to 7004 (rings forever): DialStatus no-answer after ~2 s, the caller unanswered; the next document's busy Hangup gives 486",
            Ext::Ringing,
            vec![
                Xml(format!("<Response><Dial timeout=\"2\" action=\"{DIAL_ACTION}\"><Number>7004</Number></Dial></Response>")),
                Xml("<Response><Hangup reason=\"busy\"/></Response>"),
            ],
            Expect::refused(486, "USER_BUSY")
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                .fetches(&["StartApp", "DialAction"])
                .dial_status("no-answer")
                .timing(Timing::LastedAtLeast(1.0)),
        ),
        scenario(
            "dial_unroutable_is_failed_and_the_document_runs_out_480",
            "<Dial action redirect=\"false\"> to 7999 (no route): DialStatus failed through the outbox, the caller unanswered, the document runs out: 480 End Of XML Instructions",
            Ext::Ringing,
            vec![
                Xml(format!("<Response><Dial redirect=\"false\" action=\"{DIAL_ACTION}\"><Number>7999</Number></Dial></Response>")),
                Xml("<Response><Speak>ignored</Speak></Response>"),
            ],
            Expect::refused(480, "NORMAL_CLEARING")
                .record("NORMAL_CLEARING", 16, END_OF_XML, "Answer XML", "completed")
                .fetches(&["StartApp", "DialAction"])
                .dial_status("failed"),
        ),
        scenario(
            "dial_time_limit_cuts_the_bridge_and_the_document_goes_on",
            "<Dial timeLimit=\"2\"> to 7002 then a 1 s tone: the switch ends the callee 2 s after its answer, the tone plays, BYE End Of XML Instructions",
            Ext::Ringing,
            vec![Xml(format!(
                "<Response><Dial timeLimit=\"2\"><Number>7002</Number></Dial><Play>{TONE_1S}</Play></Response>"
            ))],
            Expect::bye("NORMAL_CLEARING", 16)
                .record("NORMAL_CLEARING", 16, END_OF_XML, "Answer XML", "completed")
                .timing(Timing::AnsweredFor { min: 1.5, max: 6.0 }),
        )
        .probing(Probe::LegCdr {
            position: 1,
            cause: Some("ALLOTTED_TIMEOUT"),
            name: "Dial Time Limit",
            source: "Answer XML",
            answered: true,
        }),
        scenario(
            "dial_rest_hangup_of_the_caller_during_the_bridge_ends_both_source_api",
            "<Dial> to 7002; 2 s after answer the live list holds both legs, then REST DELETE of the caller: the caller gets BYE and the callee's channel is gone within 1 s, both CDRs source API",
            Ext::Ringing,
            vec![Xml("<Response><Dial><Number>7002</Number></Dial></Response>")],
            Expect::bye("NORMAL_CLEARING", 16)
                .record("NORMAL_CLEARING", 16, NORMAL, "API", "completed")
                .timing(Timing::ApiHangupWithin(1.0)),
        )
        .acting(Action::RestHangupBridgedCaller { after: 2.0 })
        .probing(Probe::CalleeGoneWithin(1.0))
        .probing(Probe::LegCdr {
            position: 1,
            cause: None,
            name: "Normal Hangup",
            source: "API",
            answered: true,
        }),
        scenario(
            "dial_rest_hangup_of_the_callee_ends_only_it_the_caller_continues",
            "<Dial> to 7002 then a 1 s tone; 2 s after answer the live list holds both legs, the B-leg's details name its parent, and DELETE of the B-leg → 204: the callee's channel is gone within 1 s, the caller hears the tone, BYE End Of XML Instructions",
            Ext::Ringing,
            vec![Xml(format!(
                "<Response><Dial><Number>7002</Number></Dial><Play>{TONE_1S}</Play></Response>"
            ))],
            Expect::bye("NORMAL_CLEARING", 16)
                .record("NORMAL_CLEARING", 16, END_OF_XML, "Answer XML", "completed")
                .timing(Timing::AnsweredFor { min: 2.5, max: 8.0 }),
        )
        .acting(Action::RestHangupCallee { after: 2.0 })
        .probing(Probe::CalleeGoneWithin(1.0))
        .probing(Probe::LegCdr {
            position: 1,
            cause: Some("NORMAL_CLEARING"),
            name: "Normal Hangup",
            source: "API",
            answered: true,
        }),
        scenario(
            "dial_caller_cancels_while_the_destination_rings_the_action_is_cancel",
            "<Dial action> to 7004, the caller gives up 2 s into the ringing: cancelled, DialStatus cancel through the outbox (response ignored), source Caller",
            Ext::Ringing,
            vec![
                Xml(format!("<Response><Dial action=\"{DIAL_ACTION}\"><Number>7004</Number></Dial></Response>")),
                Xml("<Response><Speak>ignored</Speak></Response>"),
            ],
            Expect::caller_cancelled()
                .fetches(&["StartApp", "DialAction"])
                .dial_status("cancel"),
        )
        .acting(Action::CallerCancels { after: 2.0 })
        .probing(Probe::LegCdr {
            position: 1,
            cause: None,
            name: "Caller Hangup",
            source: "Caller",
            answered: false,
        }),
        scenario(
            "dial_legs_are_listed_live_while_they_ring_and_delete_of_a_ringing_leg_ends_only_it",
            "<Dial action> to 7004 (rings forever) on 7001; 1 s into the ringing the live list holds the leg, ringing, with its parent; DELETE of it → 204: the leg's channel is gone within 1 s, the one-leg bridge fails (DialStatus failed), the action's busy Hangup refuses the caller 486",
            Ext::Ringing,
            vec![
                Xml(format!("<Response><Dial action=\"{DIAL_ACTION}\"><Number>7004</Number></Dial></Response>")),
                Xml("<Response><Hangup reason=\"busy\"/></Response>"),
            ],
            Expect::refused(486, "USER_BUSY")
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                .fetches(&["StartApp", "DialAction"])
                .dial_status("failed"),
        )
        .acting(Action::RestHangupRingingCallee { after: 1.0 })
        .probing(Probe::CalleeGoneWithin(1.0))
        .probing(Probe::LegCdr {
            position: 1,
            cause: Some("NORMAL_CLEARING"),
            name: "Normal Hangup",
            source: "API",
            answered: false,
        }),
        scenario(
            "dial_every_destination_refusing_gives_each_leg_its_own_cause",
            "<Dial action callbackUrl> to 7999 (no route) and 7003 (486) at once on 7001: both refuse, the bridge fails with the first leg's cause (DialStatus failed); the second leg's CDR says USER_BUSY Busy Line (its own cause, from the switch's ARRAY form of originate_causes); the action's busy Hangup refuses the caller 486",
            Ext::Ringing,
            vec![
                Xml(format!("<Response><Dial action=\"{DIAL_ACTION}\" callbackUrl=\"{{app}}/events\"><Number>7999</Number><Number>7003</Number></Dial></Response>")),
                Xml("<Response><Hangup reason=\"busy\"/></Response>"),
            ],
            Expect::refused(486, "USER_BUSY")
                .record("USER_BUSY", 17, BUSY, "Answer XML", "busy")
                .dial_events(&["DialHangup", "DialHangup"])
                .fetches(&["StartApp", "DialAction"])
                .dial_status("failed"),
        )
        .probing(Probe::LegCdr {
            position: 2,
            cause: Some("USER_BUSY"),
            name: "Busy Line",
            source: "Callee",
            answered: false,
        }),
        scenario(
            "dial_both_legs_hear_media_during_the_bridge",
            "<Dial> to 7005 (answers, echoes what it hears); the caller sends a 1004 Hz tone from the answer on, the callee is killed 2 s later: the caller received ≥ 25 RTP media packets — its own tone, back across the bridge both ways (a silent caller receives 0 from 7005)",
            Ext::Ringing,
            vec![Xml("<Response><Dial><Number>7005</Number></Dial></Response>")],
            Expect::bye("NORMAL_CLEARING", 16)
                .record("NORMAL_CLEARING", 16, CALLEE, "Callee", "completed")
                .caller_media_packets(25)
                .timing(Timing::AnsweredFor { min: 1.5, max: 6.0 }),
        )
        .acting(Action::CallerTalksThenCalleeHangsUp { after: 2.0 }),
        scenario(
            "dial_hangup_on_star_ends_the_bridge_hangs_up_the_callee_and_the_caller_continues",
            "<Dial hangupOnStar=\"true\"> to 7002 then a 1 s tone; the caller presses * (RFC 2833 from its own leg) 2 s after answer: the callee's channel is gone, the caller hears the tone, BYE End Of XML Instructions; the callee's CDR says Caller",
            Ext::Ringing,
            vec![Xml(format!(
                "<Response><Dial hangupOnStar=\"true\"><Number>7002</Number></Dial><Play>{TONE_1S}</Play></Response>"
            ))],
            Expect::bye("NORMAL_CLEARING", 16)
                .record("NORMAL_CLEARING", 16, END_OF_XML, "Answer XML", "completed")
                .timing(Timing::AnsweredFor { min: 2.5, max: 8.0 }),
        )
        .acting(Action::CallerPresses {
            after: 2.0,
            digits: "*",
        })
        .probing(Probe::CalleeGoneWithin(5.0))
        .probing(Probe::LegCdr {
            position: 1,
            cause: Some("NORMAL_CLEARING"),
            name: "Caller Hangup",
            source: "Caller",
            answered: true,
        }),
        scenario(
            "dial_a_schedule_armed_before_the_dial_ends_both_legs_when_it_fires",
            "<Hangup schedule=\"5\"/> then <Dial> to 7002 on 7001: the schedule fires inside the switch during the bridge (5 s leave room for a slow bridge on a loaded machine), the caller gets BYE (Answer XML), the callee ends with it (its CDR: Caller)",
            Ext::Ringing,
            vec![Xml(
                "<Response><Hangup schedule=\"5\"/><Dial><Number>7002</Number></Dial></Response>",
            )],
            Expect::bye("NORMAL_CLEARING", 16)
                .record("NORMAL_CLEARING", 16, NORMAL, "Answer XML", "completed")
                .timing(Timing::LastedAtLeast(4.0))
                .timing(Timing::AnsweredFor { min: 0.5, max: 8.0 }),
        )
        .probing(Probe::LegCdr {
            position: 1,
            cause: Some("NORMAL_CLEARING"),
            name: "Caller Hangup",
            source: "Caller",
            answered: true,
        }),
    ])
}

impl Probe {
    /// Checked while the call is up (the others once it is over).
    pub fn while_up(&self) -> bool {
        matches!(
            self,
            Probe::LiveWhileUp { .. } | Probe::ScheduleArmed { .. } | Probe::ScheduleGone { .. }
        )
    }
}

impl Scenario {
    fn acting(mut self, action: Action) -> Self {
        self.action = action;
        self
    }

    fn probing(mut self, probe: Probe) -> Self {
        self.probes.push(probe);
        self
    }

    /// Some document of it names a post-call URL.
    pub fn mentions_post_call(&self) -> bool {
        self.docs.iter().any(|d| match d {
            Doc::Xml(t) | Doc::VoxMl(t) => t.contains("postCallUrl") || t.contains("post_call_url"),
            Doc::Status(_) => false,
        })
    }
}
