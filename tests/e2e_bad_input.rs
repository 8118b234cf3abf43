//! Issue 10: bad input and failed commands end calls cleanly. Each test drives the real
//! `voxbridge serve` binary with the simulated switch and a real local application, and
//! is named after the guarantee it checks.

use crate::e2e_support::*;
use crate::esl_support::SwitchPeer;
use voxbridge::cause::HangupCause;
use voxbridge_sim::PlayLength;

const SPEED: f64 = 20.0;

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
        ["playback", "speak", "call-command hangup NORMAL_CLEARING"],
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

/// How the raw switch of [`play_switch`] treats voxbridge's commands.
#[derive(Clone, Default)]
struct SwitchBehaviour {
    /// Applications it starts but never completes (media that plays on).
    hold: Vec<&'static str>,
    /// `-ERR` to `api uuid_kill`.
    refuse_kill: bool,
    /// `-ERR` to `sendmsg` `call-command: hangup`.
    refuse_hangup_message: bool,
    /// Never answers `exit` and keeps the socket open (a switch slow to let go).
    ignore_exit: bool,
}

/// Plays the switch for one call from raw bytes: answers every command the way
/// FreeSWITCH does (or refuses it, per `how`), completes applications at once, and ends
/// the channel when it takes a hangup. `caller_hangs_up` ends it as the caller would.
/// Returns every command line voxbridge sent (`sendmsg` shown with what it carried).
async fn play_switch(
    mut peer: SwitchPeer,
    uuid: String,
    connect_reply: Vec<u8>,
    how: SwitchBehaviour,
    caller_hangs_up: tokio::sync::oneshot::Receiver<()>,
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut caller_hangs_up = Some(caller_hangs_up);
    let hang_up_as = |cause: &str, disposition: &str| {
        let mut bytes = crate::esl_support::event(
            &[
                ("Event-Name", "CHANNEL_HANGUP"),
                ("Unique-ID", &uuid),
                ("Hangup-Cause", cause),
            ],
            None,
        );
        bytes.extend(crate::esl_support::event(
            &[
                ("Event-Name", "CHANNEL_HANGUP_COMPLETE"),
                ("Unique-ID", &uuid),
                ("Hangup-Cause", cause),
                ("Answer-State", "hangup"),
                ("variable_hangup_cause", cause),
                ("variable_sip_hangup_disposition", disposition),
            ],
            None,
        ));
        bytes
    };
    let hang_up = |cause: &str| hang_up_as(cause, "send_bye");
    loop {
        let cmd = match caller_hangs_up.as_mut() {
            Some(rx) => tokio::select! {
                cmd = peer.read() => cmd,
                _ = rx => {
                    caller_hangs_up = None;
                    peer.send(&hang_up_as("NORMAL_CLEARING", "recv_bye")).await;
                    continue;
                }
            },
            None => peer.read().await,
        };
        let Some(cmd) = cmd else { break };
        if cmd.line.starts_with("connect") {
            seen.push(cmd.line.clone());
            peer.send(&connect_reply).await;
        } else if cmd.line.starts_with("sendmsg") {
            let app = cmd
                .header("execute-app-name")
                .unwrap_or_default()
                .to_string();
            let arg = cmd
                .header("execute-app-arg")
                .unwrap_or_default()
                .to_string();
            if cmd.header("call-command") == Some("hangup") {
                let cause = cmd
                    .header("hangup-cause")
                    .unwrap_or("NORMAL_CLEARING")
                    .to_string();
                seen.push(format!("sendmsg hangup {cause}"));
                if how.refuse_hangup_message {
                    peer.send(&crate::esl_support::reply("-ERR refused by the test"))
                        .await;
                } else {
                    peer.send(&crate::esl_support::reply("+OK")).await;
                    peer.send(&hang_up(&cause)).await;
                }
                continue;
            }
            seen.push(format!("execute {app} {arg}").trim().to_string());
            peer.send(&crate::esl_support::reply("+OK")).await;
            let app_uuid = cmd.header("Event-UUID").unwrap_or_default().to_string();
            if app == "hangup" {
                let cause = if arg.is_empty() {
                    "NORMAL_CLEARING"
                } else {
                    &arg
                };
                let mut bytes =
                    crate::esl_support::execute_complete(&uuid, &app, &app_uuid, "_none_");
                bytes.extend(hang_up(cause));
                peer.send(&bytes).await;
            } else if !how.hold.contains(&app.as_str()) {
                peer.send(&crate::esl_support::execute_complete(
                    &uuid, &app, &app_uuid, "_none_",
                ))
                .await;
            }
        } else if let Some(api) = cmd.line.strip_prefix("api ") {
            seen.push(cmd.line.clone());
            if api.starts_with("uuid_kill") && how.refuse_kill {
                peer.send(&crate::esl_support::api_response(
                    "-ERR refused by the test\n",
                ))
                .await;
            } else if api.starts_with("uuid_kill") {
                peer.send(&crate::esl_support::api_response("+OK\n")).await;
                peer.send(&hang_up("NORMAL_CLEARING")).await;
            } else {
                peer.send(&crate::esl_support::api_response("+OK\n")).await;
            }
        } else if cmd.line.starts_with("exit") {
            seen.push(cmd.line.clone());
            if !how.ignore_exit {
                peer.send(&crate::esl_support::reply("+OK bye")).await;
                break;
            }
        } else {
            peer.send(&crate::esl_support::reply("+OK")).await;
        }
    }
    seen
}

/// A server whose every call (destination 7001, transcript (a)'s) gets `doc`.
async fn raw_setup(doc: &str) -> (App, Server) {
    let app = App::start().await;
    let url = app.xml("/doc/raw", &xml(doc));
    let server = Server::start(
        &app,
        ServerOptions {
            extra_toml: format!("[[route]]\ndestination = \"7001\"\nanswer_url = \"{url}\"\n"),
            ..ServerOptions::default()
        },
    )
    .await;
    (app, server)
}

/// Starts a raw call; returns its uuid, the switch task and the caller's hang-up trigger.
fn raw_call(
    server: &Server,
    connect_reply: impl FnOnce(&str) -> Vec<u8>,
    how: SwitchBehaviour,
) -> (
    String,
    tokio::task::JoinHandle<Vec<String>>,
    tokio::sync::oneshot::Sender<()>,
) {
    let uuid = crate::esl_support::new_uuid();
    let connect = connect_reply(&uuid);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let esl = server.esl;
    let task = tokio::spawn({
        let uuid = uuid.clone();
        async move {
            let peer = SwitchPeer::connect(esl).await;
            play_switch(peer, uuid, connect, how, rx).await
        }
    });
    (uuid, task, tx)
}

async fn live_list(server: &Server) -> Vec<String> {
    let (status, body) = rest(server, reqwest::Method::GET, "Call/?status=live").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body["calls"].clone()).unwrap()
}

async fn wait_until_live(server: &Server, uuid: &str) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !live_list(server).await.contains(&uuid.to_string()) {
        assert!(std::time::Instant::now() < deadline, "{uuid} never live");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

// ------------------------------------------------------------------ failed commands are inputs

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hangup_the_switch_refuses_falls_back_to_uuid_kill_and_the_call_ends() {
    let (app, server) = raw_setup("<Speak>hi</Speak><Hangup reason=\"busy\"/>").await;
    let how = SwitchBehaviour {
        refuse_hangup_message: true,
        ..SwitchBehaviour::default()
    };
    let (uuid, task, _caller) = raw_call(&server, crate::esl_support::connect_reply, how);
    let seen = tokio::time::timeout(PATIENCE, task)
        .await
        .expect("the call never ended")
        .unwrap();
    let refused = seen.iter().position(|l| l == "sendmsg hangup USER_BUSY");
    let kill = seen
        .iter()
        .position(|l| l == &format!("api uuid_kill {uuid} USER_BUSY"));
    assert!(
        refused.is_some() && kill.is_some() && refused < kill,
        "the hangup command, refused, then the kill: {seen:?}"
    );
    assert!(
        !seen.iter().any(|l| l.starts_with("execute hangup")),
        "no hangup application: {seen:?}"
    );
    let cdr = server.cdr(&uuid).await;
    assert_eq!(cdr.source, "Answer XML");
    assert!(
        cdr.notes
            .iter()
            .any(|n| n.contains("did not execute hangup")),
        "{:?}",
        cdr.notes
    );
    app.hangup_callback(&uuid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_hangup_the_switch_refuses_says_so_and_the_call_stays_live() {
    let (app, server) = raw_setup("<Speak loop=\"0\">music</Speak>").await;
    let how = SwitchBehaviour {
        hold: vec!["speak"],
        refuse_kill: true,
        refuse_hangup_message: true,
        ..SwitchBehaviour::default()
    };
    let (uuid, task, caller) = raw_call(&server, crate::esl_support::connect_reply, how);
    wait_until_live(&server, &uuid).await;

    let (status, body) = rest(&server, reqwest::Method::DELETE, &format!("Call/{uuid}/")).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("refused"),
        "{body}"
    );
    assert!(live_list(&server).await.contains(&uuid), "still live");

    // The caller ends it; the record is written as for any call.
    caller.send(()).unwrap();
    let seen = tokio::time::timeout(PATIENCE, task).await.unwrap().unwrap();
    assert!(
        seen.iter().any(|l| l == "sendmsg hangup NORMAL_CLEARING"),
        "the hangup message was tried after uuid_kill: {seen:?}"
    );
    let cdr = server.cdr(&uuid).await;
    assert_eq!(cdr.source, "Caller");
    app.hangup_callback(&uuid).await;
}

// ------------------------------------------------------------------ one truth for the REST API

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_leaves_the_live_registry_when_it_is_over_and_rest_answers_404_after() {
    let (app, server) = raw_setup("<Speak loop=\"0\">music</Speak>").await;
    // The switch is slow to let go of the socket after the call: the call's task is
    // still winding down while the REST API is asked about it.
    let how = SwitchBehaviour {
        hold: vec!["speak"],
        ignore_exit: true,
        ..SwitchBehaviour::default()
    };
    let (uuid, _task, _caller) = raw_call(&server, crate::esl_support::connect_reply, how);
    wait_until_live(&server, &uuid).await;
    let (status, body) = rest(
        &server,
        reqwest::Method::GET,
        &format!("Call/{uuid}/?status=live"),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = rest(&server, reqwest::Method::DELETE, &format!("Call/{uuid}/")).await;
    assert_eq!(status, 204, "{body}");
    let cdr = server.cdr(&uuid).await;
    assert_eq!(cdr.source, "API");
    app.hangup_callback(&uuid).await;

    // Over is over, for every reader of the registry, at once.
    assert!(!live_list(&server).await.contains(&uuid));
    for (method, path) in [
        (reqwest::Method::DELETE, format!("Call/{uuid}/")),
        (reqwest::Method::GET, format!("Call/{uuid}/?status=live")),
    ] {
        let asked = std::time::Instant::now();
        let (status, body) = rest(&server, method.clone(), &path).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        // The switch never lets go of this socket: a REST API that waited for the call's
        // task would hang until the test's patience ran out. A third of it tells them apart.
        assert!(
            asked.elapsed() < PATIENCE / 3,
            "{method} {path} took {:?}",
            asked.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_timestamp_out_of_range_cannot_lose_the_call_record() {
    let (app, server) = raw_setup("<Hangup reason=\"busy\"/>").await;
    // 10^38 µs: parses as a number, but is no time at all (and overflows ×1000).
    let connect = |uuid: &str| {
        crate::esl_support::replace(
            &crate::esl_support::connect_reply(uuid),
            b"Caller-Channel-Created-Time: 1795235383226145",
            b"Caller-Channel-Created-Time: 99999999999999999999999999999999999999",
        )
    };
    let (uuid, task, _caller) = raw_call(&server, connect, SwitchBehaviour::default());
    let seen = tokio::time::timeout(PATIENCE, task)
        .await
        .expect("the call never ended")
        .unwrap();

    assert!(
        seen.contains(&"sendmsg hangup USER_BUSY".to_string()),
        "{seen:?}"
    );
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
                Some("call-command hangup NORMAL_CLEARING"),
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
