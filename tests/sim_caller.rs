//! The caller's side of transcript (f): each case is run through the simulator the way
//! the capture was made — an inbound `bgapi originate` to extension 7001, whose
//! socket-controlled leg is driven by a small outbound server — and the simulator's
//! report and originate result must agree with what the real caller leg reported
//! (SIP code, cause, Q.850 value, answered or not, billsec).

mod sim_support;

use sim_support::{assert_same_shape, decode, event_headers, get, Peer};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use voxbridge::cause::HangupCause;
use voxbridge_sim::transcript::{self, Connection};
use voxbridge_sim::{CallReport, CallScript, Outcome, Sim, SimConfig};

/// What the transcript shows for one case.
struct Case {
    originate_cmd: String,
    /// The BACKGROUND_JOB frame carrying the originate result.
    job_frame: Vec<u8>,
    job_body: String,
    /// The caller leg's CHANNEL_HANGUP_COMPLETE, decoded.
    a_leg: Vec<(String, String)>,
}

fn case(n: u32) -> Case {
    let text = sim_support::fixture_bytes("f-caller-side-hangup-causes.txt");
    let text = String::from_utf8(text).unwrap();
    let marker = format!("########## case f{n}:");
    let start = text.find(&marker).expect("case in transcript");
    let end = text[start + marker.len()..]
        .find("########## case f")
        .map(|e| start + marker.len() + e)
        .unwrap_or(text.len());
    let frames = transcript::parse(&text.as_bytes()[start..end]).unwrap();
    let mut c = Case {
        originate_cmd: String::new(),
        job_frame: Vec::new(),
        job_body: String::new(),
        a_leg: Vec::new(),
    };
    for f in frames
        .iter()
        .filter(|f| f.connection == Connection::Inbound)
    {
        let s = String::from_utf8_lossy(&f.bytes);
        if !f.from_switch && s.starts_with("bgapi originate") {
            c.originate_cmd = s.trim_end().to_string();
            continue;
        }
        if !f.from_switch {
            continue;
        }
        let frame = decode(&f.bytes);
        let h = event_headers(&frame);
        match get(&h, "Event-Name") {
            Some("BACKGROUND_JOB") => {
                let inner = decode(frame.body.as_deref().unwrap());
                c.job_body = String::from_utf8_lossy(inner.body.as_deref().unwrap()).into_owned();
                c.job_frame = f.bytes.clone();
            }
            Some("CHANNEL_HANGUP_COMPLETE") => c.a_leg = h,
            _ => {}
        }
    }
    assert!(!c.originate_cmd.is_empty() && !c.job_body.is_empty() && !c.a_leg.is_empty());
    c
}

#[derive(Clone, Copy)]
enum Server {
    /// Hang up the unanswered channel with this cause.
    HangupBeforeAnswer(&'static str),
    /// Answer, play a 1 s tone, hang up with this cause.
    HangupAfterAnswer(&'static str),
    /// `connect`, then close the socket without hanging up.
    CloseAfterConnect,
    /// Nothing listens.
    Absent,
}

/// The outbound server of the capture (apps with event-lock).
async fn serve(listener: TcpListener, how: Server) {
    let mut p = Peer::accept(&listener).await;
    match how {
        Server::CloseAfterConnect => {
            p.connect_channel().await;
            return;
        }
        Server::HangupAfterAnswer(_) => {
            p.start().await;
            p.execute("answer", "", true).await;
            p.until_event("CHANNEL_EXECUTE_COMPLETE").await;
            p.execute("playback", "tone_stream://%(1000,0,440)", true)
                .await;
            p.until_event("CHANNEL_EXECUTE_COMPLETE").await;
        }
        _ => {
            p.start().await;
        }
    }
    let cause = match how {
        Server::HangupBeforeAnswer(c) | Server::HangupAfterAnswer(c) => c,
        _ => unreachable!(),
    };
    p.execute("hangup", cause, true).await;
    p.until_event("CHANNEL_HANGUP_COMPLETE").await;
    assert_eq!(p.cmd("exit").await, "+OK bye");
    p.drain().await;
}

/// Runs case `n` and returns the simulator's report after checking the originate result.
async fn run(n: u32, how: Server) -> (Case, CallReport) {
    let c = case(n);
    let sim = Sim::new(SimConfig {
        speed: 20.0,
        ..SimConfig::default()
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target: SocketAddr = listener.local_addr().unwrap();
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
    let mut esl = Peer::connect(inbound.local_addr()).await;
    let greeting = esl.next().await.unwrap();
    assert_eq!(greeting.content_type(), Some("auth/request"));
    assert_eq!(esl.cmd("auth ClueCon").await, "+OK accepted");
    assert_eq!(
        esl.cmd("event plain BACKGROUND_JOB").await,
        "+OK event listener enabled plain"
    );
    let job_reply = esl.cmd(&c.originate_cmd).await;
    assert!(job_reply.starts_with("+OK Job-UUID: "), "{job_reply}");
    esl.until_event("BACKGROUND_JOB").await;
    let job = esl.frames.last().unwrap().clone();
    assert_same_shape(&format!("f{n} BACKGROUND_JOB"), &job, &decode(&c.job_frame));
    let inner = decode(job.body.as_deref().unwrap());
    let body = String::from_utf8_lossy(inner.body.as_deref().unwrap()).into_owned();
    assert_eq!(body, c.job_body, "f{n}: originate result");

    let a_uuid = c
        .originate_cmd
        .split("origination_uuid=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let report = sim
        .take_originated(&a_uuid)
        .expect("originated call handle")
        .report_within(Duration::from_secs(5))
        .await
        .expect("report");
    (c, report)
}

fn a_var<'a>(c: &'a Case, name: &str) -> &'a str {
    get(&c.a_leg, name).unwrap_or_else(|| panic!("A-leg lacks {name}"))
}

/// The checks every case shares: answered or not, billsec.
fn common(n: u32, c: &Case, r: &CallReport) {
    let a_answered = a_var(c, "variable_answer_epoch") != "0";
    assert_eq!(r.answered(), a_answered, "f{n}: answered");
    let a_billsec: i64 = a_var(c, "variable_billsec").parse().unwrap();
    // Truncated epoch seconds: the same call can show one more second.
    assert!(
        (a_billsec..=a_billsec + 1).contains(&r.billsec),
        "f{n}: billsec {} vs caller's {a_billsec}",
        r.billsec
    );
}

#[tokio::test]
async fn f1_f2_f3_refused_before_answer() {
    for (n, cause) in [
        (1, "USER_BUSY"),
        (2, "CALL_REJECTED"),
        (3, "NORMAL_CLEARING"),
    ] {
        let (c, r) = run(n, Server::HangupBeforeAnswer(cause)).await;
        let sip: u16 = a_var(&c, "variable_sip_term_status").parse().unwrap();
        assert_eq!(r.sip_code(), Some(sip), "f{n}: SIP code");
        assert_eq!(
            r.outcome,
            Outcome::Refused {
                sip,
                cause: HangupCause::from_name(a_var(&c, "Hangup-Cause")).unwrap()
            },
            "f{n}"
        );
        assert_eq!(r.hangup_disposition.as_deref(), Some("send_refuse"));
        assert_eq!(r.early_media_at, None, "f{n}: hangup must not pre-answer");
        common(n, &c, &r);
    }
}

#[tokio::test]
async fn f4_f5_f6_bye_after_answer() {
    for (n, cause) in [
        (4, "USER_BUSY"),
        (5, "CALL_REJECTED"),
        (6, "NORMAL_CLEARING"),
    ] {
        let (c, r) = run(n, Server::HangupAfterAnswer(cause)).await;
        assert_eq!(a_var(&c, "variable_sip_term_status"), "200");
        assert_eq!(r.sip_code(), Some(200), "f{n}");
        let q850: u16 = a_var(&c, "variable_hangup_cause_q850").parse().unwrap();
        assert_eq!(
            r.outcome,
            Outcome::Bye {
                cause: HangupCause::from_name(a_var(&c, "Hangup-Cause")).unwrap(),
                q850
            },
            "f{n}"
        );
        assert_eq!(
            a_var(&c, "variable_sip_reason"),
            format!("Q.850;cause={q850};text=\"{cause}\"")
        );
        assert_eq!(r.hangup_disposition.as_deref(), Some("send_bye"));
        assert_eq!(r.executed(), ["answer", "playback", "hangup"]);
        common(n, &c, &r);
    }
}

#[tokio::test]
async fn f7_socket_closed_without_hangup_leaves_the_call_parked() {
    let (c, r) = run(7, Server::CloseAfterConnect).await;
    assert_eq!(r.outcome, Outcome::LeftParked);
    // The caller gave up (CANCEL → 487); the controlled leg ends ORIGINATOR_CANCEL.
    assert_eq!(
        r.sip_code().map(|c| c.to_string()).as_deref(),
        Some(a_var(&c, "variable_sip_invite_failure_status"))
    );
    assert_eq!(r.hangup_cause, Some(HangupCause::ORIGINATOR_CANCEL));
    assert!(
        r.hangup_at >= Some(Duration::from_secs(15)),
        "originate_timeout=15"
    );
    common(7, &c, &r);
}

#[tokio::test]
async fn f8_nothing_listening() {
    let (c, r) = run(8, Server::Absent).await;
    assert!(!r.connected);
    let sip: u16 = a_var(&c, "variable_sip_term_status").parse().unwrap();
    assert_eq!(
        r.outcome,
        Outcome::Refused {
            sip,
            cause: HangupCause::NORMAL_CLEARING
        }
    );
    common(8, &c, &r);
}
