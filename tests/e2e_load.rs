//! 1,000 concurrent simulated calls through one real `voxbridge serve`, each with its
//! own document: every call must end with the cause its document asks for, as the caller
//! sees it and as the hangup callback reports it, and every call must get exactly one
//! hangup callback. Prints the figures (never asserts on time: SPEC §9).

mod e2e_support;

use e2e_support::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use voxbridge::cause::HangupCause;
use voxbridge_sim::Outcome;

const CALLS: usize = 1000;

/// What call `i` is told to do, and what must come of it.
fn flow(i: usize) -> (String, Outcome, HangupCause, &'static str) {
    match i % 4 {
        0 => (
            r#"<Response><Hangup reason="busy"/></Response>"#.to_string(),
            Outcome::Refused {
                sip: 486,
                cause: HangupCause::USER_BUSY,
            },
            HangupCause::USER_BUSY,
            "Busy Line",
        ),
        1 => (
            r#"<Response><Hangup/></Response>"#.to_string(),
            Outcome::Refused {
                sip: 603,
                cause: HangupCause::CALL_REJECTED,
            },
            HangupCause::CALL_REJECTED,
            "Rejected",
        ),
        2 => (
            format!(r#"<Response><Speak>call {i}</Speak><Hangup/></Response>"#),
            Outcome::Bye {
                cause: HangupCause::NORMAL_CLEARING,
                q850: 16,
            },
            HangupCause::NORMAL_CLEARING,
            "Normal Hangup",
        ),
        _ => (
            format!(r#"<Response><Speak>call {i}</Speak></Response>"#),
            Outcome::Bye {
                cause: HangupCause::NORMAL_CLEARING,
                q850: 16,
            },
            HangupCause::NORMAL_CLEARING,
            "End Of XML Instructions",
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_each_end_right_with_exactly_one_hangup_callback() {
    let app = App::start().await;
    let server = Server::start(
        &app,
        ServerOptions {
            status_callback: false,
            // A loaded 2-core machine must not turn slowness into retries: what is
            // counted here is what voxbridge decided, not how patient it was.
            fetch_timeout: 20.0,
            callback_timeout: 20.0,
            ..ServerOptions::default()
        },
    )
    .await;
    let sim = sim(20.0);
    for i in 0..CALLS {
        app.xml(&format!("/doc/load-{i}"), &flow(i).0);
    }

    let started = Instant::now();
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let url = app.url(&format!("/doc/load-{i}"));
            sim.place_call(
                ringing(&url).caller(&format!("1555{i:07}"), "Load"),
                server.esl,
            )
        })
        .collect();
    let mut by_uuid = HashMap::new();
    let mut reports = Vec::with_capacity(CALLS);
    for (i, call) in calls.into_iter().enumerate() {
        by_uuid.insert(call.uuid.clone(), i);
        reports.push(call.report_within(Duration::from_secs(60)));
    }
    let mut waiting = tokio::task::JoinSet::new();
    for (i, r) in reports.into_iter().enumerate() {
        waiting.spawn(async move { (i, r.await) });
    }
    let mut outcomes = vec![None; CALLS];
    while let Some(res) = waiting.join_next().await {
        let (i, report) = res.unwrap();
        outcomes[i] = Some(report.unwrap_or_else(|| panic!("call {i} never ended")));
    }
    let calls_done = started.elapsed();

    for (i, r) in outcomes.iter().enumerate() {
        let r = r.as_ref().unwrap();
        if r.outcome != flow(i).1 {
            // What voxbridge said about it (a handshake given up on names only the peer).
            let log = server.log_text();
            let said: Vec<&str> = log
                .lines()
                .filter(|l| l.contains(&r.uuid) || l.contains(" WARN ") || l.contains(" ERROR "))
                .take(20)
                .collect();
            panic!(
                "call {i}: {:?} instead of {:?}\nvoxbridge's log:\n{}\n{r:#?}",
                r.outcome,
                flow(i).1,
                said.join("\n")
            );
        }
    }

    // Exactly one hangup callback per call, each with the right cause.
    app.wait_for(Duration::from_secs(60), "1,000 hangup callbacks", |hits| {
        let n = hits.iter().filter(|h| h.path == "/hangup").count();
        (n >= CALLS).then_some(())
    })
    .await;
    let callbacks_done = started.elapsed();
    // Anything extra (a duplicate) would arrive right behind the others.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut per_call: HashMap<String, usize> = HashMap::new();
    for hit in app.hits_on("/hangup") {
        let uuid = hit.must("CallUUID");
        let i = *by_uuid
            .get(&uuid)
            .unwrap_or_else(|| panic!("callback for an unknown call {uuid}"));
        let (_, _, cause, name) = flow(i);
        assert_eq!(hit.must("HangupCause"), cause.name(), "call {i}");
        assert_eq!(hit.must("HangupCauseName"), name, "call {i}");
        assert_eq!(hit.must("HangupSource"), "Answer XML", "call {i}");
        assert_eq!(hit.must("From"), format!("1555{i:07}"), "call {i}");
        *per_call.entry(uuid).or_default() += 1;
    }
    assert_eq!(per_call.len(), CALLS, "every call got a callback");
    let dupes: Vec<_> = per_call.iter().filter(|(_, n)| **n != 1).collect();
    assert!(dupes.is_empty(), "more than one callback: {dupes:?}");
    // One fetch per call, no retries.
    let fetches = app
        .hits()
        .iter()
        .filter(|h| h.path.starts_with("/doc/load-"))
        .count();
    assert_eq!(fetches, CALLS);

    println!(
        "e2e load: {CALLS} concurrent calls ended in {:.2} s, all {CALLS} hangup callbacks in {:.2} s; \
         CPU: voxbridge {:.2} s ({:.2} ms/call), simulator + app {:.2} s",
        calls_done.as_secs_f64(),
        callbacks_done.as_secs_f64(),
        server.cpu_secs(),
        server.cpu_secs() * 1000.0 / CALLS as f64,
        proc_cpu_secs("/proc/self/stat"),
    );
}
