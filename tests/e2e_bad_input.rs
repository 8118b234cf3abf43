//! Issue 10: bad input and failed commands end calls cleanly. Each test drives the real
//! `voxbridge serve` binary with the simulated switch and a real local application, and
//! is named after the guarantee it checks.

mod e2e_support;

use e2e_support::*;
use voxbridge::cause::HangupCause;
use voxbridge::sim::PlayLength;

const SPEED: f64 = 20.0;

async fn setup() -> (App, Server) {
    setup_with(ServerOptions::default()).await
}

async fn setup_with(options: ServerOptions) -> (App, Server) {
    let app = App::start().await;
    let server = Server::start(&app, options).await;
    (app, server)
}

fn xml(body: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response>{body}</Response>")
}

// ------------------------------------------------------------------ runaway loops

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_loop_on_a_dead_url_costs_the_switch_one_failed_playback() {
    let (app, server) = setup().await;
    let dead = app.url("/media/dead.wav");
    let url = app.xml(
        "/doc/runaway",
        &xml(&format!(
            "<Play loop=\"100000\">{dead}</Play><Speak>after</Speak>"
        )),
    );
    let script =
        answered(&url).playback_length(&format!("http_cache://{dead}"), PlayLength::NotFound);
    let sim = sim(SPEED);
    let r = report(sim.place_call(script, server.esl)).await;

    assert_eq!(
        requested(&r),
        ["playback", "speak", "hangup"],
        "one failed playback, then the document goes on"
    );
    let cb = app.hangup_callback(&r.uuid).await;
    assert_eq!(cb.must("HangupCause"), HangupCause::NORMAL_CLEARING.name());
    let cdr = server.cdr(&r.uuid).await;
    assert!(
        cdr.notes
            .iter()
            .any(|n| n.contains("loop of 100000 stopped after 1 run(s)")),
        "{:?}",
        cdr.notes
    );
}
