//! Issue 10: bad input and failed commands end calls cleanly. Each test drives the real
//! `voxbridge serve` binary with the simulated switch and a real local application, and
//! is named after the guarantee it checks.

mod e2e_support;
mod esl_support;

use e2e_support::*;
use esl_support::SwitchPeer;
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

// ------------------------------------------------------------------ no panic from switch input

/// Plays the switch for one call from raw bytes: answers every command the way
/// FreeSWITCH does, completes every application at once, and ends the channel when
/// voxbridge executes `hangup`. Returns the applications voxbridge executed.
async fn play_switch(mut peer: SwitchPeer, uuid: &str, connect_reply: Vec<u8>) -> Vec<String> {
    let mut apps = Vec::new();
    while let Some(cmd) = peer.read().await {
        if cmd.line.starts_with("connect") {
            peer.send(&connect_reply).await;
        } else if cmd.line.starts_with("sendmsg") {
            peer.send(&esl_support::reply("+OK")).await;
            let app = cmd
                .header("execute-app-name")
                .unwrap_or_default()
                .to_string();
            let arg = cmd
                .header("execute-app-arg")
                .unwrap_or_default()
                .to_string();
            let app_uuid = cmd.header("Event-UUID").unwrap_or_default().to_string();
            apps.push(format!("{app} {arg}").trim().to_string());
            if app == "hangup" {
                let cause = if arg.is_empty() {
                    "NORMAL_CLEARING"
                } else {
                    &arg
                };
                peer.send(&esl_support::execute_complete(
                    uuid, &app, &app_uuid, "_none_",
                ))
                .await;
                peer.send(&esl_support::hangup_complete(uuid, cause)).await;
            } else {
                peer.send(&esl_support::execute_complete(
                    uuid, &app, &app_uuid, "_none_",
                ))
                .await;
            }
        } else if cmd.line.starts_with("api ") {
            peer.send(&esl_support::api_response("+OK\n")).await;
        } else if cmd.line.starts_with("exit") {
            peer.send(&esl_support::reply("+OK bye")).await;
            break;
        } else {
            peer.send(&esl_support::reply("+OK")).await;
        }
    }
    apps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_timestamp_out_of_range_cannot_lose_the_call_record() {
    let app = App::start().await;
    let url = app.xml("/doc/busy", &xml("<Hangup reason=\"busy\"/>"));
    let server = Server::start(
        &app,
        ServerOptions {
            extra_toml: format!("[[route]]\ndestination = \"7001\"\nanswer_url = \"{url}\"\n"),
            ..ServerOptions::default()
        },
    )
    .await;
    let uuid = esl_support::new_uuid();
    // 10^38 µs: parses as a number, but is no time at all (and overflows ×1000).
    let connect = esl_support::replace(
        &esl_support::connect_reply(&uuid),
        b"Caller-Channel-Created-Time: 1795235383226145",
        b"Caller-Channel-Created-Time: 99999999999999999999999999999999999999",
    );
    let peer = SwitchPeer::connect(server.esl).await;
    let apps = tokio::time::timeout(PATIENCE, play_switch(peer, &uuid, connect))
        .await
        .expect("the call never ended");

    assert_eq!(apps, ["hangup USER_BUSY"]);
    let cdr = server.cdr(&uuid).await;
    assert_eq!(cdr.source, "Answer XML");
    assert_eq!(cdr.cause_name, "Busy Line");
    let cb = app.hangup_callback(&uuid).await;
    assert_eq!(cb.must("HangupCause"), "USER_BUSY");
}

// ------------------------------------------------------------------ local files stay local

/// A local document that, if voxbridge ever read it, would make voxbridge fetch
/// `/leak` from the application: the proof of a read.
fn plant_leak(path: &std::path::Path, app: &App) {
    std::fs::write(
        path,
        xml(&format!("<Redirect>{}</Redirect>", app.url("/leak"))),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_document_cannot_redirect_to_file_in_any_spelling() {
    let (app, server) = setup().await;
    let local = tempfile::NamedTempFile::new().unwrap();
    plant_leak(local.path(), &app);
    // Relative file URLs resolve against the server's working directory.
    plant_leak(&server.db.with_file_name("leak.xml"), &app);
    let abs = local.path().display().to_string();
    let spellings = [
        format!("file://{abs}"),
        format!("FILE://{abs}"),
        format!(" file://{abs}"),
        format!("File:{abs}"),
        format!("fIlE://localhost{abs}"),
        "file:leak.xml".to_string(),
        "file://leak.xml".to_string(),
        format!("%66ile://{abs}"),
        format!("file:%2F%2F{}", abs.trim_start_matches('/')),
    ];
    let sim = sim(SPEED);
    for (i, target) in spellings.iter().enumerate() {
        let url = app.xml(
            &format!("/doc/to-file-{i}"),
            &xml(&format!("<Speak>hi</Speak><Redirect>{target}</Redirect>")),
        );
        // The document that asks comes over http, whatever the case of its scheme.
        for asker in [url.clone(), url.replacen("http://", "HTTP://", 1)] {
            let r = report(sim.place_call(answered(&asker), server.esl)).await;
            let cb = app.hangup_callback(&r.uuid).await;
            assert_eq!(cb.must("HangupSource"), "Error", "{target:?} from {asker}");
            assert_eq!(
                requested(&r).last().map(String::as_str),
                Some("hangup"),
                "{target:?} from {asker}"
            );
        }
    }
    assert!(
        app.hits_on("/leak").is_empty(),
        "a local file was read: {} hit(s) on /leak",
        app.hits_on("/leak").len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_call_document_cannot_redirect_to_a_local_file() {
    let (app, server) = setup().await;
    let local = tempfile::NamedTempFile::new().unwrap();
    plant_leak(local.path(), &app);
    let post = app.xml(
        "/post/to-file",
        &xml(&format!(
            "<Redirect>FILE://{}</Redirect>",
            local.path().display()
        )),
    );
    let url = app.xml(
        "/doc/pc",
        &xml(&format!("<Hangup reason=\"busy\" postCallUrl=\"{post}\"/>")),
    );
    let sim = sim(SPEED);
    let r = report(sim.place_call(ringing(&url), server.esl)).await;
    assert_refused(&r, 486, HangupCause::USER_BUSY);
    let deadline = std::time::Instant::now() + PATIENCE;
    let notes = loop {
        let notes = server.cdr(&r.uuid).await.notes;
        if notes.iter().any(|n| n.contains("post-call")) || std::time::Instant::now() > deadline {
            break notes;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(
        notes.iter().any(|n| n.contains("refused")),
        "the refusal is noted: {notes:?}"
    );
    assert!(app.hits_on("/leak").is_empty(), "a local file was read");
}
