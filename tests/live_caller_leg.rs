//! The caller's leg the live suite reads — the originate result and the A-leg's
//! CHANNEL_HANGUP_COMPLETE — as the simulator reports it, checked against what the real
//! switch reported in transcript f for the same case. This is what makes the
//! simulator-backed run of the live suite (`live_suite_against_simulator`) a fair
//! rehearsal of the real one: the caller-side fields it asserts on are the switch's.
//!
//! Each case is set up as the capture was: `bgapi originate` to 7001 through the
//! simulator's inbound port, the socket-controlled leg driven by a scripted outbound
//! server (apps with event-lock), and the suite's own callers (`live_support::caller`)
//! reading the result.

mod live_support;
mod sim_support;

use live_support::caller::{SwitchTarget, Switchboard};
use sim_support::{decode, event_headers, get, Peer};
use std::time::Duration;
use tokio::net::TcpListener;
use voxbridge_sim::transcript::{self, Connection};
use voxbridge_sim::{CallScript, Sim, SimConfig};

/// The A-leg variables compared with the transcript: present in both with the same
/// value, or absent from both.
const SAME: &[&str] = &[
    "Hangup-Cause",
    "Answer-State",
    "Call-Direction",
    "variable_hangup_cause",
    "variable_hangup_cause_q850",
    "variable_sip_term_status",
    "variable_sip_term_cause",
    "variable_proto_specific_hangup_cause",
    "variable_sip_invite_failure_status",
    "variable_sip_invite_failure_phrase",
    "variable_sip_hangup_disposition",
    "variable_sip_reason",
];

/// The case's originate command, result and A-leg headers, from transcript f.
fn case(n: u32) -> (String, String, Vec<(String, String)>) {
    let text = String::from_utf8(sim_support::fixture_bytes(
        "f-caller-side-hangup-causes.txt",
    ))
    .expect("utf-8 transcript");
    let marker = format!("########## case f{n}:");
    let start = text.find(&marker).expect("case in transcript");
    let end = text[start + marker.len()..]
        .find("########## case f")
        .map(|e| start + marker.len() + e)
        .unwrap_or(text.len());
    let frames = transcript::parse(&text.as_bytes()[start..end]).expect("transcript parses");
    let (mut cmd, mut job, mut a_leg) = (String::new(), String::new(), Vec::new());
    for f in frames
        .iter()
        .filter(|f| f.connection == Connection::Inbound)
    {
        let s = String::from_utf8_lossy(&f.bytes);
        if !f.from_switch {
            if s.starts_with("bgapi originate") {
                cmd = s.trim_end().to_string();
            }
            continue;
        }
        let frame = decode(&f.bytes);
        let h = event_headers(&frame);
        match get(&h, "Event-Name") {
            Some("BACKGROUND_JOB") => {
                let inner = decode(frame.body.as_deref().expect("job body"));
                job = String::from_utf8_lossy(inner.body.as_deref().expect("job output"))
                    .trim()
                    .to_string();
            }
            Some("CHANNEL_HANGUP_COMPLETE") => a_leg = h,
            _ => {}
        }
    }
    assert!(
        !cmd.is_empty() && !job.is_empty() && !a_leg.is_empty(),
        "f{n} incomplete"
    );
    (cmd, job, a_leg)
}

#[derive(Clone, Copy)]
enum Server {
    HangupBeforeAnswer(&'static str),
    /// Answer, a 1 s tone, then hang up with the cause (f4–f6).
    HangupAfterAnswer(&'static str),
    /// `connect`, then close without hanging up (f7).
    CloseAfterConnect,
    /// Nothing listens (f8).
    Absent,
}

async fn serve(listener: TcpListener, how: Server) {
    let mut p = Peer::accept(&listener).await;
    let cause = match how {
        Server::CloseAfterConnect => {
            p.connect_channel().await;
            return;
        }
        Server::HangupAfterAnswer(c) => {
            p.start().await;
            p.execute("answer", "", true).await;
            p.until_event("CHANNEL_EXECUTE_COMPLETE").await;
            p.execute("playback", "tone_stream://%(1000,0,440)", true)
                .await;
            p.until_event("CHANNEL_EXECUTE_COMPLETE").await;
            c
        }
        Server::HangupBeforeAnswer(c) => {
            p.start().await;
            c
        }
        Server::Absent => return,
    };
    p.execute("hangup", cause, true).await;
    p.until_event("CHANNEL_HANGUP_COMPLETE").await;
    p.cmd("exit").await;
    p.drain().await;
}

async fn check(n: u32, how: Server) {
    let (cmd, job, want) = case(n);
    let sim = Sim::new(SimConfig {
        speed: 20.0,
        ..SimConfig::default()
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    match how {
        Server::Absent => drop(listener),
        _ => {
            tokio::spawn(serve(listener, how));
        }
    }
    sim.set_originate_target(target, CallScript::ringing());
    let inbound = sim
        .listen_inbound("127.0.0.1:0".parse().unwrap(), "ClueCon")
        .await
        .unwrap();
    let switch = SwitchTarget {
        esl: inbound.local_addr().to_string(),
        password: "ClueCon".into(),
        profile: "external".into(),
        sip_target: "127.0.0.1:5060".into(),
    };
    let field = |key: &str| {
        cmd.split(&format!("{key}="))
            .nth(1)
            .and_then(|r| r.split([',', '}']).next())
            .unwrap_or_else(|| panic!("f{n}: {key} in {cmd}"))
            .to_string()
    };
    let a_uuid = field("origination_uuid");
    let timeout: u64 = field("originate_timeout").parse().unwrap();
    let board = std::sync::Arc::new(Switchboard::connect(&switch).await.unwrap());
    let mut caller = board.caller(&a_uuid).await.unwrap();
    let sent = caller.originate(&field("origination_caller_id_number"), "7001", timeout);
    assert!(
        sent.ends_with("sofia/external/7001@127.0.0.1:5060 &park()"),
        "{sent}"
    );
    let leg = caller.leg_end(Duration::from_secs(10)).await.unwrap();
    let result = caller
        .originate_result(Duration::from_secs(5))
        .await
        .unwrap();
    caller.cleanup().await;
    assert_eq!(result, job, "f{n}: originate result");
    let got: Vec<(String, String)> = leg
        .event
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for name in SAME {
        assert_eq!(get(&got, name), get(&want, name), "f{n}: {name}");
    }
    let answered = |h: &[(String, String)]| get(h, "variable_answer_epoch") != Some("0");
    assert_eq!(answered(&got), answered(&want), "f{n}: answered");
    let billsec =
        |h: &[(String, String)]| -> i64 { get(h, "variable_billsec").unwrap().parse().unwrap() };
    // Truncated epoch seconds: the same call can show one second more or less.
    assert!((billsec(&got) - billsec(&want)).abs() <= 1, "f{n}: billsec");
}

#[tokio::test]
async fn f1_f2_f3_refused_before_answer() {
    check(1, Server::HangupBeforeAnswer("USER_BUSY")).await;
    check(2, Server::HangupBeforeAnswer("CALL_REJECTED")).await;
    check(3, Server::HangupBeforeAnswer("NORMAL_CLEARING")).await;
}

#[tokio::test]
async fn f4_f5_f6_bye_after_answer() {
    check(4, Server::HangupAfterAnswer("USER_BUSY")).await;
    check(5, Server::HangupAfterAnswer("CALL_REJECTED")).await;
    check(6, Server::HangupAfterAnswer("NORMAL_CLEARING")).await;
}

#[tokio::test]
async fn f7_caller_gives_up_on_a_parked_call() {
    check(7, Server::CloseAfterConnect).await;
}

#[tokio::test]
async fn f8_nothing_listening() {
    check(8, Server::Absent).await;
}
