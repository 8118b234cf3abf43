//! Switch behaviours the simulator must reproduce beyond the single transcripts:
//! schedules on the accelerated clock, the `sched_hangup` quirk, event-lock FIFO versus
//! nested execution, `uuid_break` with and without `all`, channels killed from the
//! inbound side, `respond`, caller hang-ups, loops, and the error replies.

use crate::sim_support::{get, Peer};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use voxbridge::cause::HangupCause;
use voxbridge_sim::{
    AppStatus, CallHandle, CallReport, CallScript, Callee, Outcome, Sim, SimConfig,
};

async fn setup(speed: f64, script: CallScript) -> (Sim, CallHandle, Peer) {
    let sim = Sim::new(SimConfig {
        speed,
        ..SimConfig::default()
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let call = sim.place_call(script, addr);
    let peer = Peer::accept(&listener).await;
    (sim, call, peer)
}

async fn report(call: CallHandle) -> CallReport {
    call.report_within(Duration::from_secs(10))
        .await
        .expect("the call reports")
}

/// Finish a call whose channel is down: wait for HANGUP_COMPLETE, then exit.
async fn finish(mut p: Peer, call: CallHandle) -> (Peer, CallReport) {
    if p.last_event("CHANNEL_HANGUP_COMPLETE").is_none() {
        p.until_event("CHANNEL_HANGUP_COMPLETE").await;
    }
    assert_eq!(p.cmd("exit").await, "+OK bye");
    p.drain().await;
    (p, report(call).await)
}

fn secs(d: Option<Duration>) -> f64 {
    d.expect("time").as_secs_f64()
}

#[tokio::test]
async fn sched_hangup_plus_60_on_the_accelerated_clock() {
    let (_sim, call, mut p) = setup(50.0, CallScript::answered()).await;
    p.start().await;
    p.execute("sched_hangup", "+60 ALLOTTED_TIMEOUT", true)
        .await;
    p.execute("playback", "silence_stream://-1", true).await;
    let hc = p.until_event("CHANNEL_HANGUP_COMPLETE").await;
    assert_eq!(get(&hc, "variable_hangup_cause"), Some("ALLOTTED_TIMEOUT"));
    assert_eq!(get(&hc, "variable_hangup_cause_q850"), Some("16"));
    let (_, r) = finish(p, call).await;
    assert_eq!(
        r.outcome,
        Outcome::Bye {
            cause: HangupCause::ALLOTTED_TIMEOUT,
            q850: 16
        }
    );
    // Whole epoch seconds: fires up to 1 s early, as the real scheduler does.
    let armed = secs(r.apps[0].started_at);
    let fired = secs(r.hangup_at);
    assert!(
        (58.5..=62.0).contains(&(fired - armed)),
        "fired {fired} armed {armed}"
    );
    assert!((59..=62).contains(&r.billsec), "billsec {}", r.billsec);
    assert_eq!(r.apps[1].response.as_deref(), Some("FILE PLAYED"));
}

#[tokio::test]
async fn sched_hangup_without_plus_fires_at_once_and_sched_cancel_disarms() {
    let (_sim, call, mut p) = setup(20.0, CallScript::answered()).await;
    p.start().await;
    p.execute("sched_hangup", "30 USER_BUSY", true).await;
    p.execute("playback", "silence_stream://-1", true).await;
    let (_, r) = finish(p, call).await;
    assert_eq!(r.hangup_cause, Some(HangupCause::USER_BUSY));
    assert!(secs(r.hangup_at) < 1.0, "{:?}", r.hangup_at);

    let (_sim, call, mut p) = setup(20.0, CallScript::answered()).await;
    p.start().await;
    p.execute("sched_hangup", "+1", true).await;
    p.execute("sched_cancel", "", true).await;
    p.execute("playback", "silence_stream://3000", true).await;
    p.execute("hangup", "NORMAL_CLEARING", true).await;
    let (_, r) = finish(p, call).await;
    assert_eq!(r.hangup_cause, Some(HangupCause::NORMAL_CLEARING));
    assert!(secs(r.hangup_at) >= 3.0);
    assert_eq!(
        r.executed(),
        ["sched_hangup", "sched_cancel", "playback", "hangup"]
    );
}

#[tokio::test]
async fn event_lock_runs_fifo() {
    let (_sim, call, mut p) = setup(20.0, CallScript::answered()).await;
    p.start().await;
    p.execute("playback", "silence_stream://2000", true).await;
    p.execute("playback", "silence_stream://500", true).await;
    p.execute("hangup", "", true).await;
    let (p, r) = finish(p, call).await;
    let seq: Vec<String> = p
        .event_names()
        .into_iter()
        .filter(|n| n.starts_with("CHANNEL_EXECUTE"))
        .collect();
    assert_eq!(
        seq[..4],
        [
            "CHANNEL_EXECUTE",
            "CHANNEL_EXECUTE_COMPLETE",
            "CHANNEL_EXECUTE",
            "CHANNEL_EXECUTE_COMPLETE"
        ]
    );
    assert!(r.apps.iter().all(|a| !a.nested));
    assert!(secs(r.apps[1].started_at) >= 2.0);
}

#[tokio::test]
async fn without_event_lock_a_queued_app_runs_nested() {
    let (_sim, call, mut p) = setup(20.0, CallScript::answered()).await;
    p.start().await;
    p.execute("playback", "silence_stream://2000", false).await;
    p.until_event("CHANNEL_EXECUTE").await;
    p.execute("playback", "silence_stream://1000", false).await;
    let inner = p.until_event("CHANNEL_EXECUTE").await;
    assert_eq!(
        get(&inner, "Application-Data"),
        Some("silence_stream://1000")
    );
    let done = p.until_event("CHANNEL_EXECUTE_COMPLETE").await;
    assert_eq!(
        get(&done, "Application-Data"),
        Some("silence_stream://1000")
    );
    let done = p.until_event("CHANNEL_EXECUTE_COMPLETE").await;
    assert_eq!(
        get(&done, "Application-Data"),
        Some("silence_stream://2000")
    );
    p.execute("hangup", "", true).await;
    let (_, r) = finish(p, call).await;
    assert!(r.apps[1].nested && !r.apps[0].nested);
    // The outer playback resumed after the nested one: 2 s of its own + 1 s nested.
    assert!(secs(r.apps[0].ended_at) >= 3.0, "{:?}", r.apps[0].ended_at);

    // A nested hangup cuts a playback short (transcript README).
    let (_sim, call, mut p) = setup(20.0, CallScript::answered()).await;
    p.start().await;
    p.execute("playback", "silence_stream://-1", false).await;
    p.until_event("CHANNEL_EXECUTE").await;
    p.execute("hangup", "USER_BUSY", false).await;
    let (_, r) = finish(p, call).await;
    assert_eq!(r.bye_cause(), Some(HangupCause::USER_BUSY));
    assert_eq!(r.apps[0].response.as_deref(), Some("FILE PLAYED"));
    assert!(r.apps[1].nested);
}

#[tokio::test]
async fn uuid_break_ends_the_playback_and_all_flushes_the_queue() {
    for all in [false, true] {
        let (_sim, call, mut p) = setup(20.0, CallScript::answered()).await;
        let uuid = p.start().await;
        p.execute("playback", "silence_stream://-1", true).await;
        p.execute("playback", "silence_stream://200", true).await;
        p.until_event("CHANNEL_EXECUTE").await;
        let cmd = format!("api uuid_break {uuid}{}", if all { " all" } else { "" });
        assert_eq!(p.cmd(&cmd).await, "+OK\n");
        let done = p.until_event("CHANNEL_EXECUTE_COMPLETE").await;
        assert_eq!(get(&done, "Application-Response"), Some("FILE PLAYED"));
        if !all {
            let second = p.until_event("CHANNEL_EXECUTE").await;
            assert_eq!(
                get(&second, "Application-Data"),
                Some("silence_stream://200")
            );
            p.until_event("CHANNEL_EXECUTE_COMPLETE").await;
        }
        p.execute("hangup", "", true).await;
        let (p, r) = finish(p, call).await;
        let executes = p
            .event_names()
            .iter()
            .filter(|n| *n == "CHANNEL_EXECUTE")
            .count();
        if all {
            assert_eq!(r.apps[1].status, AppStatus::Flushed);
            assert_eq!(executes, 2, "playback + hangup");
        } else {
            assert_eq!(r.apps[1].status, AppStatus::Completed);
            assert_eq!(executes, 3);
        }
    }
}

#[tokio::test]
async fn uuid_kill_and_sched_hangup_from_the_inbound_side() {
    let sim = Sim::new(SimConfig {
        speed: 20.0,
        // Park at the first sendmsg, so CHANNEL_PARK reaches the socket as in e2 #1.
        park_delay: Duration::from_secs(60),
        ..SimConfig::default()
    });
    let inbound = sim
        .listen_inbound("127.0.0.1:0".parse().unwrap(), "ClueCon")
        .await
        .unwrap();
    let mut esl = Peer::connect(inbound.local_addr()).await;
    esl.next().await;
    assert_eq!(esl.cmd("auth ClueCon").await, "+OK accepted");
    assert_eq!(esl.cmd("api status").await.lines().count(), 8);
    assert_eq!(
        esl.cmd("event plain BACKGROUND_JOB CHANNEL_HANGUP_COMPLETE")
            .await,
        "+OK event listener enabled plain"
    );

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Call 1: killed with bgapi uuid_kill (e2 #1).
    let call = sim.place_call(CallScript::answered(), addr);
    let mut p = Peer::accept(&listener).await;
    let uuid = p.start().await;
    p.execute("playback", "tone_stream://%(1000,0,350,440);loops=-1", true)
        .await;
    p.until_event("CHANNEL_EXECUTE").await;
    assert_eq!(esl.cmd(&format!("api uuid_exists {uuid}")).await, "true");
    let reply = esl.cmd(&format!("bgapi uuid_kill {uuid}")).await;
    assert!(reply.starts_with("+OK Job-UUID: "));
    // The job result and the channel's end race, on the switch as here.
    while esl.last_event("BACKGROUND_JOB").is_none()
        || esl.last_event("CHANNEL_HANGUP_COMPLETE").is_none()
    {
        esl.next()
            .await
            .expect("BACKGROUND_JOB and CHANNEL_HANGUP_COMPLETE");
    }
    let job = esl.last_event("BACKGROUND_JOB").unwrap();
    assert_eq!(get(&job, "Job-Command"), Some("uuid_kill"));
    let hc = esl.last_event("CHANNEL_HANGUP_COMPLETE").unwrap();
    assert_eq!(get(&hc, "Unique-ID"), Some(uuid.as_str()));
    assert_eq!(get(&hc, "Hangup-Cause"), Some("NORMAL_CLEARING"));
    let (p, r) = finish(p, call).await;
    assert_eq!(r.bye_cause(), Some(HangupCause::NORMAL_CLEARING));
    // What the outbound socket saw, as in transcript e2 (#1).
    let want: Vec<String> =
        crate::sim_support::fixture("e2-outbound-side-killed-from-outside-plain.txt")
            .iter()
            .filter(|f| f.from_switch && f.socket == 1)
            .map(|f| crate::sim_support::label(&crate::sim_support::decode(&f.bytes)))
            .collect();
    let got = p.labels();
    // e2 #1 lost no CHANNEL_PARK; the same sequence, frame for frame.
    assert_eq!(got, want);
    assert_eq!(esl.cmd(&format!("api uuid_exists {uuid}")).await, "false");
    assert_eq!(
        esl.cmd("api uuid_kill 00000000-1111-4222-8333-444444444444")
            .await,
        "-ERR No such channel!\n"
    );

    // Call 2: sched_hangup +5 USER_BUSY from the inbound side (e2 #2).
    let call = sim.place_call(CallScript::answered(), addr);
    let mut p = Peer::accept(&listener).await;
    let uuid = p.start().await;
    p.execute("playback", "silence_stream://-1", true).await;
    assert_eq!(
        esl.cmd(&format!("api sched_hangup +5 {uuid} USER_BUSY"))
            .await,
        "+OK\n"
    );
    let hc = esl.until_event("CHANNEL_HANGUP_COMPLETE").await;
    assert_eq!(get(&hc, "Hangup-Cause"), Some("USER_BUSY"));
    let (_, r) = finish(p, call).await;
    assert_eq!(r.bye_cause(), Some(HangupCause::USER_BUSY));
    assert!(
        (4.0..=6.0).contains(&secs(r.hangup_at)),
        "{:?}",
        r.hangup_at
    );
    assert_eq!(esl.cmd("exit").await, "+OK bye");
}

#[tokio::test]
async fn respond_sends_the_exact_code() {
    for (code, cause) in [
        (486, HangupCause::USER_BUSY),
        (603, HangupCause::CALL_REJECTED),
        (480, HangupCause::NO_USER_RESPONSE),
    ] {
        let (_sim, call, mut p) = setup(20.0, CallScript::ringing()).await;
        p.start().await;
        p.execute("respond", &code.to_string(), true).await;
        let (_, r) = finish(p, call).await;
        assert_eq!(r.outcome, Outcome::Refused { sip: code, cause });
        assert!(!r.answered() && r.early_media_at.is_none());
    }
    // `hangup 486` is cause 486 (UNKNOWN), which the switch refuses with 480.
    let (_sim, call, mut p) = setup(20.0, CallScript::ringing()).await;
    p.start().await;
    p.execute("hangup", "486", true).await;
    let (_, r) = finish(p, call).await;
    assert_eq!(r.sip_code(), Some(480));
    assert_eq!(r.hangup_cause, Some(HangupCause(486)));
}

#[tokio::test]
async fn caller_hangs_up_before_and_after_answer() {
    // Before answer: CANCEL.
    let (_sim, call, mut p) = setup(
        20.0,
        CallScript::ringing().caller_hangs_up_during("sleep", Duration::from_millis(500)),
    )
    .await;
    p.start().await;
    p.execute("sleep", "5000", true).await;
    p.execute("answer", "", true).await;
    let hc = p.until_event("CHANNEL_HANGUP_COMPLETE").await;
    assert_eq!(
        get(&hc, "variable_sip_hangup_disposition"),
        Some("recv_cancel")
    );
    assert_eq!(get(&hc, "variable_hangup_cause_q850"), Some("16"));
    assert_eq!(p.cmd("exit").await, "+OK bye");
    p.drain().await;
    let r = report(call).await;
    assert_eq!(
        r.outcome,
        Outcome::CallerHungUp {
            cause: HangupCause::ORIGINATOR_CANCEL,
            answered: false
        }
    );
    assert_eq!(r.sip_code(), Some(487));
    assert_eq!(r.skipped(), ["answer"]);

    // After answer: BYE, PLAYBACK ERROR, nothing queued runs afterwards.
    let (_sim, call, mut p) = setup(
        20.0,
        CallScript::ringing().caller_hangs_up_at(Duration::from_secs(3)),
    )
    .await;
    p.start().await;
    p.execute("answer", "", true).await;
    p.execute("playback", "http_cache://http://127.0.0.1/long.wav", true)
        .await;
    p.execute("playback", "silence_stream://-1", true).await;
    let (_, r) = finish(p, call).await;
    assert_eq!(
        r.outcome,
        Outcome::CallerHungUp {
            cause: HangupCause::NORMAL_CLEARING,
            answered: true
        }
    );
    assert_eq!(r.hangup_disposition.as_deref(), Some("recv_bye"));
    assert_eq!(
        r.apps[1].response.as_deref(),
        Some("FILE PLAYED"),
        "1 s default length"
    );
    assert_eq!(r.apps[2].response.as_deref(), Some("PLAYBACK ERROR"));
}

#[tokio::test]
async fn nobody_answers_the_caller_gives_up() {
    let (_sim, call, mut p) = setup(
        50.0,
        CallScript::ringing().originate_timeout(Duration::from_secs(15)),
    )
    .await;
    p.start().await;
    p.execute("ring_ready", "", true).await;
    let (p, r) = finish(p, call).await;
    assert!(p.event_names().contains(&"CHANNEL_PROGRESS".to_string()));
    assert_eq!(r.hangup_cause, Some(HangupCause::ORIGINATOR_CANCEL));
    assert!((15.0..16.0).contains(&secs(r.hangup_at)));
}

#[tokio::test]
async fn playback_pre_answers_and_loops_repeat_with_one_application_uuid() {
    let (_sim, call, mut p) = setup(20.0, CallScript::ringing()).await;
    p.start().await;
    let reply = p
        .cmd("sendmsg\ncall-command: execute\nexecute-app-name: playback\nexecute-app-arg: silence_stream://600\nloops: 3\nevent-lock: true\nEvent-UUID: 5e0c0000-0000-4000-8000-000000000001")
        .await;
    assert_eq!(reply, "+OK");
    p.execute("hangup", "", true).await;
    let (p, r) = finish(p, call).await;
    let names = p.event_names();
    assert_eq!(names[1], "CHANNEL_PROGRESS_MEDIA", "{names:?}");
    assert_eq!(names[2], "CHANNEL_EXECUTE");
    assert_eq!(r.apps[0].runs, 3);
    assert!(r.early_media_at.is_some() && !r.answered());
    assert_eq!(r.sip_code(), Some(480), "pre-answered, then refused");
    let uuids: Vec<String> = p
        .frames
        .iter()
        .map(crate::sim_support::event_headers)
        .filter(|h| get(h, "Application") == Some("playback"))
        .filter_map(|h| get(&h, "Application-UUID").map(str::to_string))
        .collect();
    assert_eq!(uuids.len(), 6);
    assert!(uuids
        .iter()
        .all(|u| u == "5e0c0000-0000-4000-8000-000000000001"));
}

#[tokio::test]
async fn unknown_app_and_apps_after_hangup() {
    let (_sim, call, mut p) = setup(20.0, CallScript::answered()).await;
    p.start().await;
    p.execute("no_such_app", "x", true).await;
    p.execute("playback", "silence_stream://100", true).await;
    let (p, r) = finish(p, call).await;
    assert_eq!(r.bye_cause(), Some(HangupCause::DESTINATION_OUT_OF_ORDER));
    assert_eq!(r.apps[0].status, AppStatus::Unknown);
    assert_eq!(r.skipped(), ["playback"]);
    assert!(!p.event_names().contains(&"CHANNEL_EXECUTE".to_string()));
}

#[tokio::test]
async fn socket_closed_or_exit_without_hangup_is_left_parked() {
    let (_sim, call, mut p) = setup(20.0, CallScript::ringing()).await;
    p.start().await;
    p.execute("playback", "silence_stream://-1", true).await;
    assert_eq!(p.cmd("exit").await, "+OK bye");
    p.drain().await;
    let r = report(call).await;
    assert_eq!(r.outcome, Outcome::LeftParked);
    assert_eq!(r.apps[0].status, AppStatus::Pending);

    let (_sim, call, p) = setup(20.0, CallScript::answered()).await;
    drop(p);
    let r = report(call).await;
    assert_eq!(r.outcome, Outcome::LeftParked);
    assert!(!r.got_connect);
}

#[tokio::test]
async fn error_replies_and_bad_input_never_break_the_sim() {
    let (sim, call, mut p) = setup(20.0, CallScript::ringing().not_full()).await;
    // The first packet gets no reply unless it is `connect`.
    p.send("myevents").await;
    let data = p.connect_channel().await;
    assert_eq!(get(&data, "Control"), Some("single-channel"));
    assert_eq!(get(&data, "Reply-Text"), Some("+OK\n"));
    assert_eq!(p.cmd("myevents").await, "-ERR aready enabled.");
    assert_eq!(p.cmd("linger").await, "-ERR command not found", "not full");
    assert_eq!(p.cmd("api status").await, "-ERR command not found");
    assert_eq!(p.cmd("getvar nope").await, "-ERR command not found");
    assert_eq!(p.cmd("getvar sip_req_user").await, "7001");
    assert_eq!(p.cmd("bogus command").await, "-ERR command not found");
    assert_eq!(p.cmd("divert_events").await, "-ERR missing value.");
    assert_eq!(p.cmd("sendmsg\ncall-command: frobnicate").await, "+OK");
    assert_eq!(
        p.cmd("sendmsg 00000000-0000-4000-8000-000000000000\ncall-command: hangup")
            .await,
        "-ERR invalid session id [00000000-0000-4000-8000-000000000000]"
    );
    // A body length beyond 16 MiB closes this connection only.
    p.stream
        .write_all(b"sendmsg\nContent-Length: 99999999999\n\n")
        .await
        .unwrap();
    p.drain().await;
    let r = report(call).await;
    assert_eq!(r.outcome, Outcome::LeftParked);

    // Full sockets: api errors, and the simulator still serves other calls.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let call = sim.place_call(CallScript::answered(), listener.local_addr().unwrap());
    let mut p = Peer::accept(&listener).await;
    let uuid = p.start().await;
    assert_eq!(p.cmd("api frob x").await, "-ERR frob Command not found!\n");
    assert_eq!(p.cmd("api uuid_kill").await, "-USAGE: <uuid> [cause]\n");
    assert_eq!(p.cmd("linger 5").await, "+OK will linger 5 seconds");
    assert_eq!(p.cmd("nolinger").await, "+OK will not linger");
    assert_eq!(p.cmd("filter Unique-ID").await, "-ERR invalid syntax");
    assert_eq!(p.cmd("getvar uuid").await, uuid);
    p.send("\x00\u{7f}garbage\r\n\r\n").await;
    assert_eq!(p.reply().await, "-ERR command not found");
    p.execute("hangup", "", true).await;
    p.until_event("CHANNEL_HANGUP_COMPLETE").await;
    // No linger: the disconnect notice follows and the socket closes.
    p.drain().await;
    let last = p.frames.last().unwrap();
    assert_eq!(last.headers.get("Content-Disposition"), Some("disconnect"));
    assert_eq!(
        report(call).await.bye_cause(),
        Some(HangupCause::NORMAL_CLEARING)
    );

    // Inbound: commands before auth, a wrong password.
    let inbound = sim
        .listen_inbound("127.0.0.1:0".parse().unwrap(), "ClueCon")
        .await
        .unwrap();
    let mut esl = Peer::connect(inbound.local_addr()).await;
    esl.next().await;
    assert_eq!(esl.cmd("api status").await, "-ERR command not found");
    assert_eq!(esl.cmd("auth wrong").await, "-ERR invalid");
    esl.drain().await;
    assert!(esl.eof);
    assert_eq!(
        esl.frames.last().unwrap().content_type(),
        Some("text/disconnect-notice")
    );
    assert_eq!(sim.live_channels(), 0);
}

#[tokio::test]
async fn a_client_that_says_nothing_is_dropped_after_the_first_packet_timeout() {
    let sim = Sim::new(SimConfig {
        speed: 20.0,
        first_packet_timeout: Duration::from_millis(200),
        ..SimConfig::default()
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let call = sim.place_call(CallScript::ringing(), listener.local_addr().unwrap());
    let mut p = Peer::accept(&listener).await;
    p.drain().await;
    assert!(p.eof && p.frames.is_empty());
    let r = report(call).await;
    assert_eq!(r.outcome, Outcome::LeftParked);
    assert!(r.connected && !r.got_connect);
}

#[tokio::test]
async fn a_playback_terminator_digit_stops_the_playback() {
    let (_sim, call, mut p) = setup(
        20.0,
        CallScript::answered().dtmf_during_app(1, Duration::from_millis(500), "1*"),
    )
    .await;
    p.start().await;
    p.execute("playback", "silence_stream://-1", true).await;
    let done = p.until_event("CHANNEL_EXECUTE_COMPLETE").await;
    assert_eq!(get(&done, "Application-Response"), Some("FILE PLAYED"));
    assert_eq!(get(&done, "variable_playback_terminator_used"), Some("*"));
    let digits: Vec<String> = p
        .frames
        .iter()
        .map(crate::sim_support::event_headers)
        .filter_map(|h| get(&h, "DTMF-Digit").map(str::to_string))
        .collect();
    assert_eq!(digits, ["1", "*"]);
    p.execute("hangup", "", true).await;
    let (p, r) = finish(p, call).await;
    let hc = p.last_event("CHANNEL_HANGUP_COMPLETE").unwrap();
    assert_eq!(get(&hc, "variable_digits_dialed"), Some("1*"));
    assert_eq!(r.executed(), ["playback", "hangup"]);
}

#[tokio::test]
async fn the_bridge_callee_killed_from_the_inbound_side_ends_the_bridge() {
    // Transcript i: `api uuid_kill <B-leg>` on the inbound connection is the callee
    // hanging up; the caller stays up.
    let sim = Sim::new(SimConfig {
        speed: 20.0,
        ..SimConfig::default()
    });
    let inbound = sim
        .listen_inbound("127.0.0.1:0".parse().unwrap(), "ClueCon")
        .await
        .unwrap();
    let mut esl = Peer::connect(inbound.local_addr()).await;
    esl.next().await;
    assert_eq!(esl.cmd("auth ClueCon").await, "+OK accepted");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let script = CallScript::ringing().callee(
        "7002",
        Callee::Answers {
            after: Duration::ZERO,
            hangs_up_after: None,
        },
    );
    let call = sim.place_call(script, listener.local_addr().unwrap());
    let mut p = Peer::accept(&listener).await;
    p.start().await;
    let b = "63c2b360-30a6-48d9-8df6-eb0f0bc4ba20";
    let dial = format!("{{origination_uuid={b}}}sofia/external/7002@127.0.0.1:5060");
    assert_eq!(esl.cmd(&format!("api uuid_exists {b}")).await, "false");
    p.execute("bridge", &dial, true).await;
    let bridge = p.until_event("CHANNEL_BRIDGE").await;
    assert_eq!(get(&bridge, "Other-Leg-Unique-ID"), Some(b));
    assert_eq!(get(&bridge, "Answer-State"), Some("answered"));
    assert_eq!(esl.cmd(&format!("api uuid_exists {b}")).await, "true");
    assert_eq!(
        esl.cmd(&format!("api uuid_kill {b} USER_BUSY")).await,
        "+OK\n"
    );
    p.until_event("CHANNEL_UNBRIDGE").await;
    let done = p.until_event("CHANNEL_EXECUTE_COMPLETE").await;
    assert_eq!(get(&done, "Application"), Some("bridge"));
    assert_eq!(
        get(&done, "variable_bridge_hangup_cause"),
        Some("USER_BUSY")
    );
    assert_eq!(get(&done, "Hangup-Cause"), None, "the caller is still up");
    assert_eq!(esl.cmd(&format!("api uuid_exists {b}")).await, "false");
    p.execute("hangup", "NORMAL_CLEARING", true).await;
    let (p, r) = finish(p, call).await;
    assert!(r.answered());
    // Still bridged-to in later events, as on the switch.
    let hc = p.last_event("CHANNEL_HANGUP_COMPLETE").unwrap();
    assert_eq!(get(&hc, "Other-Leg-Unique-ID"), Some(b));
}

#[tokio::test]
async fn a_refused_bridge_continues_with_continue_on_fail() {
    let script = CallScript::ringing().callee("7003", Callee::Refuses(486));
    let (_sim, call, mut p) = setup(20.0, script).await;
    p.start().await;
    p.execute("set", "continue_on_fail=true", true).await;
    p.execute("bridge", "sofia/external/7003@127.0.0.1:5060", true)
        .await;
    let done = loop {
        let e = p.until_event("CHANNEL_EXECUTE_COMPLETE").await;
        if get(&e, "Application") == Some("bridge") {
            break e;
        }
    };
    assert_eq!(get(&done, "variable_DIALSTATUS"), Some("BUSY"));
    assert_eq!(get(&done, "Answer-State"), Some("ringing"));
    // An unknown destination is refused with 404, like the test switch's.
    p.execute("bridge", "sofia/external/7999@127.0.0.1:5060", true)
        .await;
    let done = p.until_event("CHANNEL_EXECUTE_COMPLETE").await;
    assert_eq!(
        get(&done, "variable_originate_disposition"),
        Some("NO_ROUTE_DESTINATION")
    );
    p.execute("hangup", "USER_BUSY", true).await;
    let (_p, r) = finish(p, call).await;
    assert_eq!(
        r.outcome,
        Outcome::Refused {
            sip: 486,
            cause: HangupCause::USER_BUSY
        }
    );
}

#[tokio::test]
async fn several_bridge_destinations_ring_at_once_and_with_no_answer_fail_as_the_last() {
    // No callee is scripted: both numbers are unroutable, and without continue_on_fail
    // the bridge hangs the caller up with the failure (transcript j).
    let (_sim, call, mut p) = setup(20.0, CallScript::ringing()).await;
    p.start().await;
    p.execute(
        "bridge",
        "sofia/external/7998@127.0.0.1:5060,sofia/external/7999@127.0.0.1:5060",
        true,
    )
    .await;
    let (_p, r) = finish(p, call).await;
    assert_eq!(r.hangup_cause, Some(HangupCause::NO_ROUTE_DESTINATION));
}

#[tokio::test]
async fn failover_bridge_destinations_are_not_simulated() {
    let (_sim, call, mut p) = setup(20.0, CallScript::ringing()).await;
    p.start().await;
    p.execute(
        "bridge",
        "sofia/external/7002@127.0.0.1:5060|sofia/external/7008@127.0.0.1:5060",
        true,
    )
    .await;
    let (_p, r) = finish(p, call).await;
    assert_eq!(r.hangup_cause, Some(HangupCause::DESTINATION_OUT_OF_ORDER));
}

/// An inbound session, authenticated, on a fresh simulator whose `&socket` originates
/// reach `callees`.
async fn inbound_with_callees(callees: CallScript) -> (Sim, voxbridge_sim::InboundServer, Peer) {
    let sim = Sim::with_speed(20.0);
    sim.set_originate_callees(callees);
    let inbound = sim
        .listen_inbound("127.0.0.1:0".parse().unwrap(), "ClueCon")
        .await
        .unwrap();
    let mut esl = Peer::connect(inbound.local_addr()).await;
    esl.next().await;
    assert_eq!(esl.cmd("auth ClueCon").await, "+OK accepted");
    (sim, inbound, esl)
}

#[tokio::test]
async fn an_originated_socket_connects_only_after_the_callee_answers() {
    // Transcript o: the socket app runs on the originated channel once it is answered.
    // The callee rings 40 simulated seconds (2 s here: far more than the window below
    // plus any delay of a loaded machine in delivering CHANNEL_PROGRESS).
    let (sim, _inbound, mut esl) = inbound_with_callees(CallScript::answered().callee(
        "7008",
        Callee::Answers {
            after: Duration::from_secs(40),
            hangs_up_after: None,
        },
    ))
    .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    assert_eq!(
        esl.cmd(
            "event plain CHANNEL_PROGRESS CHANNEL_ANSWER BACKGROUND_JOB CHANNEL_HANGUP_COMPLETE"
        )
        .await,
        "+OK event listener enabled plain"
    );
    let o = "0e31c982-9bed-461f-a466-2db6860449af";
    esl.send(&format!(
        "bgapi originate {{origination_uuid={o}}}sofia/external/7008@127.0.0.1:5060 '&socket({addr} async full)'"
    ))
    .await;
    let progress = esl.until_event("CHANNEL_PROGRESS").await;
    assert_eq!(get(&progress, "Unique-ID"), Some(o));
    assert_eq!(get(&progress, "Call-Direction"), Some("outbound"));
    assert_eq!(get(&progress, "Answer-State"), Some("ringing"));
    // Ringing: nothing connects (the answer is due 2 s after the originate).
    assert!(
        tokio::time::timeout(Duration::from_millis(250), listener.accept())
            .await
            .is_err(),
        "the socket connected while the callee was still ringing"
    );
    assert_eq!(sim.live_channels(), 1);
    let answer = esl.until_event("CHANNEL_ANSWER").await;
    assert_eq!(get(&answer, "Unique-ID"), Some(o));
    let mut p = Peer::accept(&listener).await;
    let data = p.connect_channel().await;
    assert_eq!(get(&data, "Unique-ID"), Some(o));
    assert_eq!(get(&data, "Call-Direction"), Some("outbound"));
    assert_eq!(get(&data, "Answer-State"), Some("answered"));
    assert_eq!(get(&data, "Channel-Call-State"), Some("ACTIVE"));
    assert_eq!(get(&data, "Socket-Mode"), Some("async"));
    let job = esl.until_event("BACKGROUND_JOB").await;
    assert_eq!(get(&job, "Job-Command"), Some("originate"));
    // The channel is under control like any other: hang it up from the socket.
    assert_eq!(p.cmd("myevents").await, "+OK Events Enabled");
    assert_eq!(p.cmd("linger").await, "+OK will linger");
    p.execute("hangup", "NORMAL_CLEARING", true).await;
    let hc = p.until_event("CHANNEL_HANGUP_COMPLETE").await;
    assert_eq!(
        get(&hc, "variable_sip_hangup_disposition"),
        Some("send_bye")
    );
    let seen = esl.until_event("CHANNEL_HANGUP_COMPLETE").await;
    assert_eq!(get(&seen, "Unique-ID"), Some(o));
    assert_eq!(p.cmd("exit").await, "+OK bye");
    let r = report(sim.take_originated(o).expect("the originated call")).await;
    assert!(r.connected && r.answered());
    assert_eq!(r.hangup_cause, Some(HangupCause::NORMAL_CLEARING));
}

#[tokio::test]
async fn an_originated_socket_that_is_not_answered_never_connects() {
    // Transcript p, and a busy callee: `-ERR <CAUSE>`, and no connection at all.
    let (sim, _inbound, mut esl) = inbound_with_callees(
        CallScript::answered()
            .callee("7003", Callee::Refuses(486))
            .callee("7004", Callee::RingsForever),
    )
    .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = format!("'&socket({addr} async full)'");
    for (dial, want) in [
        ("sofia/external/7003@127.0.0.1:5060", "-ERR USER_BUSY\n"),
        (
            "{originate_timeout=2}sofia/external/7004@127.0.0.1:5060",
            "-ERR NO_ANSWER\n",
        ),
        (
            "sofia/external/7999@127.0.0.1:5060",
            "-ERR NO_ROUTE_DESTINATION\n",
        ),
    ] {
        assert_eq!(
            esl.cmd(&format!("api originate {dial} {app}")).await,
            want,
            "{dial}"
        );
    }
    // Killed while ringing: the originate fails with the kill's cause.
    let o = "5ed92f9c-47dd-4ad1-b2f1-2350aaaa577a";
    assert_eq!(
        esl.cmd("event plain BACKGROUND_JOB CHANNEL_PROGRESS").await,
        "+OK event listener enabled plain"
    );
    esl.send(&format!(
        "bgapi originate {{origination_uuid={o}}}sofia/external/7004@127.0.0.1:5060 {app}"
    ))
    .await;
    esl.until_event("CHANNEL_PROGRESS").await;
    assert_eq!(esl.cmd(&format!("api uuid_exists {o}")).await, "true");
    assert_eq!(
        esl.cmd(&format!("api uuid_kill {o} CALL_REJECTED")).await,
        "+OK\n"
    );
    let job = esl.until_event("BACKGROUND_JOB").await;
    assert_eq!(get(&job, "Job-Command"), Some("originate"));
    assert_eq!(esl.cmd(&format!("api uuid_exists {o}")).await, "false");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), listener.accept())
            .await
            .is_err(),
        "a socket connection for a call nobody answered"
    );
    assert_eq!(sim.live_channels(), 0);
}

#[tokio::test]
async fn a_static_socket_runs_sendmsg_inline() {
    // Transcript o2: an unquoted `&socket(addr async full)` connects in static mode,
    // where `sendmsg` runs the app inline: its reply comes when the app has ended, and
    // the app's events after the reply.
    let (sim, _inbound, mut esl) = inbound_with_callees(CallScript::answered().callee(
        "7008",
        Callee::Answers {
            after: Duration::ZERO,
            hangs_up_after: None,
        },
    ))
    .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reply = esl
        .cmd(&format!(
            "api originate {{origination_uuid=e0882144-3c7c-4f1a-ab4a-b9e133057ab4}}sofia/external/7008@127.0.0.1:5060 &socket({addr} async full)"
        ))
        .await;
    assert_eq!(reply, "+OK e0882144-3c7c-4f1a-ab4a-b9e133057ab4\n");
    let mut p = Peer::accept(&listener).await;
    let data = p.connect_channel().await;
    assert_eq!(get(&data, "Socket-Mode"), Some("static"));
    assert_eq!(get(&data, "Control"), Some("single-channel"));
    assert_eq!(p.cmd("myevents").await, "+OK Events Enabled");
    assert_eq!(p.cmd("linger").await, "-ERR command not found");
    // 2 simulated seconds: 100 ms here.
    let sent = std::time::Instant::now();
    assert_eq!(
        p.execute("playback", "silence_stream://2000", false).await,
        "+OK"
    );
    let took = sent.elapsed();
    assert!(took >= Duration::from_millis(90), "replied after {took:?}");
    let labels = p.labels();
    let reply_at = labels
        .iter()
        .rposition(|l| l == "command/reply +OK")
        .unwrap();
    assert!(
        !labels[..reply_at]
            .iter()
            .any(|l| l.contains("CHANNEL_EXECUTE")),
        "{labels:?}"
    );
    for want in ["CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE"] {
        let f = p.next().await.expect("the app's events after the reply");
        assert_eq!(crate::sim_support::event_name(&f).as_deref(), Some(want));
    }
    assert_eq!(p.execute("hangup", "NORMAL_CLEARING", false).await, "+OK");
    p.drain().await;
    let names = p.event_names();
    assert_eq!(
        names.last().map(String::as_str),
        Some("CHANNEL_EXECUTE_COMPLETE")
    );
    assert!(
        !names.iter().any(|n| n == "CHANNEL_HANGUP_COMPLETE"),
        "{names:?}"
    );
    assert!(
        p.labels().last().unwrap().contains("disconnect"),
        "{:?}",
        p.labels()
    );
    assert_eq!(sim.live_channels(), 0);
}

#[tokio::test]
async fn a_ringing_callee_killed_with_a_no_answer_cause_leaves_the_caller_up() {
    // `switch_channel_handle_cause` never ends the caller for NO_ANSWER,
    // NO_USER_RESPONSE or ORIGINATOR_CANCEL (transcript k shows NO_ANSWER). The kill is
    // sent on the socket itself, which handles its own callee's uuid.
    let script = CallScript::ringing().callee("7004", Callee::RingsForever);
    let (_sim, call, mut p) = setup(20.0, script).await;
    p.start().await;
    let b = "6ade7eb4-40d6-4f76-80aa-754f6a0a4ffe";
    p.execute(
        "bridge",
        &format!("{{origination_uuid={b}}}sofia/external/7004@127.0.0.1:5060"),
        true,
    )
    .await;
    let progress = p.until_event("CHANNEL_PROGRESS").await;
    assert_eq!(get(&progress, "Channel-Call-State"), Some("RINGING"));
    assert_eq!(
        p.cmd(&format!("api uuid_kill {b} NO_USER_RESPONSE")).await,
        "+OK\n"
    );
    let done = p.until_event("CHANNEL_EXECUTE_COMPLETE").await;
    assert_eq!(get(&done, "Application"), Some("bridge"));
    assert_eq!(
        get(&done, "variable_originate_failed_cause"),
        Some("NO_USER_RESPONSE")
    );
    assert_eq!(get(&done, "Answer-State"), Some("ringing"));
    assert_eq!(
        p.cmd(&format!("api uuid_kill {b}")).await,
        "-ERR No such channel!\n"
    );
    p.execute("hangup", "NORMAL_CLEARING", true).await;
    let (_p, r) = finish(p, call).await;
    assert!(!r.answered());
}

/// Transcript z4: `call-command: hangup` queues like an app behind event-locked ones,
/// runs no application (no EXECUTE pair), and what is sent after it never runs; the
/// report keeps it apart from the apps, in its place among them.
#[tokio::test]
async fn the_hangup_command_queues_behind_locked_apps_and_is_reported_apart() {
    let (_sim, call, mut p) = setup(20.0, CallScript::answered()).await;
    p.start().await;
    p.execute("playback", "tone_stream://%(1000,0,440)", true)
        .await;
    p.execute("playback", "tone_stream://%(500,0,660)", true)
        .await;
    assert_eq!(
        p.cmd("sendmsg\ncall-command: hangup\nhangup-cause: USER_BUSY")
            .await,
        "+OK"
    );
    p.execute("playback", "tone_stream://%(500,0,880)", true)
        .await;
    p.until_event("CHANNEL_HANGUP_COMPLETE").await;
    let (p, r) = finish(p, call).await;
    assert_eq!(r.bye_cause(), Some(HangupCause::USER_BUSY));
    assert_eq!(r.executed(), ["playback", "playback"]);
    assert_eq!(r.skipped(), ["playback"]);
    assert_eq!(
        r.requested_where(|_| true),
        [
            "playback",
            "playback",
            "call-command hangup USER_BUSY",
            "playback"
        ]
    );
    assert_eq!(r.hangups_run(), ["call-command hangup USER_BUSY"]);
    let executed: Vec<String> = p
        .frames
        .iter()
        .map(crate::sim_support::event_headers)
        .filter(|h| get(h, "Event-Name") == Some("CHANNEL_EXECUTE"))
        .filter_map(|h| get(&h, "Application").map(str::to_string))
        .collect();
    assert_eq!(executed, ["playback", "playback"], "no hangup application");

    // Sent on a channel already down: recorded, never run.
    let (_sim, call, mut p) = setup(20.0, CallScript::answered()).await;
    p.start().await;
    p.execute("hangup", "NORMAL_CLEARING", true).await;
    p.until_event("CHANNEL_HANGUP").await;
    assert_eq!(
        p.cmd("sendmsg\ncall-command: hangup\nhangup-cause: CALL_REJECTED")
            .await,
        "+OK"
    );
    let (_, r) = finish(p, call).await;
    assert_eq!(r.bye_cause(), Some(HangupCause::NORMAL_CLEARING));
    assert!(r.hangups_run().is_empty());
    assert_eq!(r.hangup_commands[0].status, AppStatus::Skipped);
}
