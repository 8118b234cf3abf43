//! Many simultaneous simulated calls against one listener: every channel's replies and
//! events stay on its own socket (each `execute` completes with its own
//! Application-UUID) and every report carries its own call's cause. Prints the
//! throughput it saw (a figure, not an assertion).

mod sim_support;

use sim_support::{get, Peer};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use voxbridge::cause::HangupCause;
use voxbridge_sim::{CallScript, Outcome, Sim, SimConfig};

/// 1,000 in release builds; fewer in debug builds, where the suite must stay fast on a
/// 2-core CI machine (the concurrency is the point, not the count).
const CALLS: usize = if cfg!(debug_assertions) { 500 } else { 1000 };
const CAUSES: [&str; 3] = ["USER_BUSY", "CALL_REJECTED", "NORMAL_CLEARING"];

/// One call as a voxbridge-like server would drive it; the destination number says
/// which cause to use, so a crossed reply would show up as a wrong cause.
async fn drive(mut p: Peer) {
    let data = p.connect_channel().await;
    let n: usize = get(&data, "Caller-Destination-Number")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(p.cmd("myevents").await, "+OK Events Enabled");
    assert_eq!(p.cmd("linger").await, "+OK will linger");
    let app_uuid = format!("00000000-0000-4000-8000-{n:012}");
    let reply = p
        .cmd(&format!(
            "sendmsg\ncall-command: execute\nexecute-app-name: answer\nevent-lock: true\nEvent-UUID: {app_uuid}"
        ))
        .await;
    assert_eq!(reply, "+OK");
    let done = p.until_event("CHANNEL_EXECUTE_COMPLETE").await;
    assert_eq!(get(&done, "Application-UUID"), Some(app_uuid.as_str()));
    p.execute("hangup", CAUSES[n % 3], true).await;
    let hc = p.until_event("CHANNEL_HANGUP_COMPLETE").await;
    assert_eq!(get(&hc, "Hangup-Cause"), Some(CAUSES[n % 3]));
    assert_eq!(p.cmd("exit").await, "+OK bye");
    p.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_channels_without_crossed_replies() {
    let sim = Sim::new(SimConfig {
        speed: 20.0,
        ..SimConfig::default()
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..CALLS {
            let p = Peer::accept(&listener).await;
            tasks.push(tokio::spawn(drive(p)));
        }
        for t in tasks {
            t.await.expect("server side of a call");
        }
    });
    let started = Instant::now();
    let handles: Vec<_> = (0..CALLS)
        .map(|n| {
            // Long enough that no caller gives up while all calls share 2 cores.
            let script = CallScript::ringing()
                .destination(&n.to_string())
                .originate_timeout(Duration::from_secs(3600));
            sim.place_call(script, addr)
        })
        .collect();
    for (n, h) in handles.into_iter().enumerate() {
        let r = h
            .report_within(Duration::from_secs(30))
            .await
            .expect("report");
        let cause = HangupCause::from_name(CAUSES[n % 3]).unwrap();
        assert_eq!(
            r.outcome,
            Outcome::Bye {
                cause,
                q850: cause.q850()
            },
            "call {n}"
        );
    }
    server.await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "sim_load: {CALLS} concurrent calls in {secs:.2} s ({:.0} calls/s, debug={})",
        CALLS as f64 / secs,
        cfg!(debug_assertions)
    );
    assert_eq!(sim.live_channels(), 0);
}
