//! The inbound client against a scripted switch that answers the way transcript (e)
//! shows: auth, api, bgapi with BACKGROUND_JOB (the recorded frames, with our Job-UUIDs),
//! events, and a switch that drops the connection.

use crate::esl_support::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use voxbridge::esl::counters::EslCounters;
use voxbridge::esl::inbound::{ClientEvent, InboundClient, InboundOptions, InboundSession};
use voxbridge::esl::{CloseReason, EslError, SocketEvent};

const WAIT: Duration = Duration::from_secs(5);

/// Recorded switch frames from transcript (e), by what they are.
struct Recorded {
    status: Vec<u8>,
    /// BACKGROUND_JOB of the `originate` (body `+OK 109a128a-…\n`) and of the `uuid_kill`
    /// (body `+OK\n`), with the Job-UUID the switch chose then.
    job_originate: (Vec<u8>, String),
    job_kill: (Vec<u8>, String),
    hangup_complete: Vec<u8>,
}

fn recorded() -> Recorded {
    let frames = fixture("e");
    let from_switch: Vec<&Vec<u8>> = frames
        .iter()
        .filter(|f| f.from_switch)
        .map(|f| &f.bytes)
        .collect();
    let find = |needle: &str| -> Vec<u8> {
        from_switch
            .iter()
            .find(|b| String::from_utf8_lossy(b).contains(needle))
            .map(|b| b.to_vec())
            .unwrap_or_else(|| panic!("no frame with {needle}"))
    };
    let job = |needle: &str| {
        let raw = find(needle);
        let id = String::from_utf8_lossy(&raw)
            .lines()
            .find_map(|l| l.strip_prefix("Job-UUID: ").map(String::from))
            .unwrap();
        (raw, id)
    };
    Recorded {
        status: find("Content-Length: 339"),
        job_originate: job("Job-Command: originate"),
        job_kill: job("Job-Command: uuid_kill"),
        hangup_complete: find("Event-Name: CHANNEL_HANGUP_COMPLETE"),
    }
}

/// A scripted inbound switch. Every session's commands are recorded.
struct Switch {
    addr: SocketAddr,
    sessions: Arc<Mutex<Vec<Vec<String>>>>,
    /// While false, connections are closed right after accept.
    open: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
}

async fn switch(password: &'static str, rude: bool) -> Switch {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sessions = Arc::new(Mutex::new(Vec::new()));
    let open = Arc::new(AtomicBool::new(true));
    let accepted = Arc::new(AtomicUsize::new(0));
    let (s, o, a) = (sessions.clone(), open.clone(), accepted.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            a.fetch_add(1, Ordering::SeqCst);
            if !o.load(Ordering::SeqCst) {
                drop(stream);
                continue;
            }
            let index = {
                let mut all = s.lock().unwrap();
                all.push(Vec::new());
                all.len() - 1
            };
            tokio::spawn(session(
                SwitchPeer::new(stream),
                password,
                rude,
                s.clone(),
                index,
            ));
        }
    });
    Switch {
        addr,
        sessions,
        open,
        accepted,
    }
}

async fn session(
    mut peer: SwitchPeer,
    password: &'static str,
    rude: bool,
    log: Arc<Mutex<Vec<Vec<String>>>>,
    index: usize,
) {
    let rec = recorded();
    if rude {
        peer.send(
            b"Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n",
        )
        .await;
        peer.send(b"Content-Type: text/disconnect-notice\nContent-Length: 67\n\nDisconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n").await;
        return;
    }
    peer.send(b"Content-Type: auth/request\n\n").await;
    let mut jobs: Vec<(String, String)> = Vec::new();
    while let Some(cmd) = peer.read().await {
        log.lock().unwrap()[index].push(cmd.line.clone());
        let line = cmd.line.as_str();
        if let Some(pw) = line.strip_prefix("auth ") {
            if pw == password {
                peer.send(&reply("+OK accepted")).await;
            } else {
                peer.send(&reply("-ERR invalid")).await;
                return;
            }
        } else if let Some(rest) = line.strip_prefix("event plain ") {
            assert!(rest.starts_with("BACKGROUND_JOB"));
            peer.send(&reply("+OK event listener enabled plain")).await;
        } else if let Some(rest) = line.strip_prefix("filter ") {
            let (h, v) = rest.split_once(' ').unwrap();
            peer.send(&reply(&format!("+OK filter added. [{h}]=[{v}]")))
                .await;
        } else if line == "api status" {
            peer.send(&rec.status).await;
        } else if line == "api hangup_event" {
            peer.send(&api_response("+OK\n")).await;
            peer.send(&rec.hangup_complete).await;
        } else if line == "api never" {
            // No answer: the test checks what a dropped connection does to it.
        } else if line == "api drop" {
            return;
        } else if let Some(command) = line.strip_prefix("bgapi ") {
            let job = cmd
                .header("Job-UUID")
                .expect("our bgapi carries a Job-UUID")
                .to_string();
            peer.send(format!("Content-Type: command/reply\nReply-Text: +OK Job-UUID: {job}\nJob-UUID: {job}\n\n").as_bytes()).await;
            jobs.push((job, command.to_string()));
            if jobs.len() == 2 {
                // Both in flight: results come back in reverse order.
                for (job, command) in jobs.drain(..).rev() {
                    let (raw, recorded_id) = if command.starts_with("originate") {
                        &rec.job_originate
                    } else {
                        &rec.job_kill
                    };
                    peer.send(&replace(raw, recorded_id.as_bytes(), job.as_bytes()))
                        .await;
                }
            }
        } else if line == "exit" {
            peer.send(&reply("+OK bye")).await;
            peer.send(b"Content-Type: text/disconnect-notice\nContent-Length: 67\n\nDisconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n").await;
            return;
        } else {
            peer.send(&reply("-ERR command not found")).await;
        }
    }
}

fn opts(addr: SocketAddr, password: &str) -> InboundOptions {
    InboundOptions {
        addr: addr.to_string(),
        password: password.into(),
        events: vec!["CHANNEL_HANGUP_COMPLETE".into()],
        filters: vec![("Event-Name".into(), "BACKGROUND_JOB".into())],
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        ..InboundOptions::default()
    }
}

fn counters() -> Arc<EslCounters> {
    Arc::new(EslCounters::default())
}

#[tokio::test]
async fn auth_api_and_two_bgapis_answered_in_reverse_order() {
    let sw = switch("ClueCon", false).await;
    let (s, mut events) = InboundSession::connect(&opts(sw.addr, "ClueCon"), counters())
        .await
        .unwrap();
    assert_eq!(
        sw.sessions.lock().unwrap()[0],
        [
            "auth ClueCon",
            "event plain BACKGROUND_JOB CHANNEL_HANGUP_COMPLETE",
            "filter Event-Name BACKGROUND_JOB"
        ]
    );
    let status = s.api("status").await.unwrap();
    assert!(status.body.starts_with("UP 0 years"), "{}", status.body);

    let originate = "originate {origination_uuid=109a128a-4dba-44fc-ae5f-5ecf3ab2b830}sofia/external/7000@127.0.0.1:5060 &park()";
    let (a, b) = tokio::join!(
        s.bgapi(originate),
        s.bgapi("uuid_kill 9dda21c2-8ca0-4e43-a39b-dc964f67674c")
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.header("Job-Command"), Some("originate"));
    assert_eq!(a.body(), Some("+OK 109a128a-4dba-44fc-ae5f-5ecf3ab2b830\n"));
    assert_eq!(b.header("Job-Command"), Some("uuid_kill"));
    assert_eq!(b.body(), Some("+OK\n"));
    assert_ne!(a.job_uuid(), b.job_uuid());

    // Claimed jobs are not repeated on the stream; other events are.
    s.api("hangup_event").await.unwrap();
    match tokio::time::timeout(WAIT, events.recv()).await.unwrap() {
        Some(SocketEvent::Event(e)) => {
            assert!(e.is("CHANNEL_HANGUP_COMPLETE"));
            assert_eq!(e.hangup_cause(), Some("NORMAL_CLEARING"));
        }
        other => panic!("{other:?}"),
    }
    s.exit().await.unwrap();
    match tokio::time::timeout(WAIT, events.recv()).await.unwrap() {
        Some(SocketEvent::Disconnect(d)) => assert!(d.is_final()),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        tokio::time::timeout(WAIT, events.recv()).await.unwrap(),
        Some(SocketEvent::Closed(CloseReason::Disconnected))
    ));
}

#[tokio::test]
async fn a_wrong_password_is_an_auth_error() {
    let sw = switch("ClueCon", false).await;
    match InboundSession::connect(&opts(sw.addr, "wrong"), counters()).await {
        Err(EslError::Auth(text)) => assert_eq!(text, "-ERR invalid"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_rude_rejection_is_reported() {
    let sw = switch("ClueCon", true).await;
    match InboundSession::connect(&opts(sw.addr, "ClueCon"), counters()).await {
        Err(EslError::Closed(CloseReason::Rejected(text))) => {
            assert_eq!(text, "Access Denied, go away.\n")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    match InboundSession::connect(&opts(port, "ClueCon"), counters()).await {
        Err(EslError::Connect { addr, .. }) => assert_eq!(addr, port.to_string()),
        other => panic!("{other:?}"),
    }
}

async fn next(rx: &mut tokio::sync::mpsc::Receiver<ClientEvent>) -> ClientEvent {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("an item")
        .expect("stream open")
}

#[tokio::test]
async fn the_client_reconnects_and_resubscribes() {
    let sw = switch("ClueCon", false).await;
    let (client, mut rx) = InboundClient::start(opts(sw.addr, "ClueCon"), counters());
    assert_eq!(next(&mut rx).await, ClientEvent::Connected);
    assert!(client.api("status").await.unwrap().body.starts_with("UP"));

    // A command in flight when the switch goes away fails at once; none hangs.
    let pending = tokio::spawn({
        let c = client.clone();
        async move { c.api("never").await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    sw.open.store(false, Ordering::SeqCst);
    assert_eq!(
        client.api("drop").await,
        Err(EslError::Closed(CloseReason::Eof))
    );
    assert_eq!(
        tokio::time::timeout(WAIT, pending).await.unwrap().unwrap(),
        Err(EslError::Closed(CloseReason::Eof))
    );
    assert_eq!(
        next(&mut rx).await,
        ClientEvent::Disconnected(CloseReason::Eof)
    );
    // While the switch refuses us, commands fail fast instead of waiting.
    let refused_before = sw.accepted.load(Ordering::SeqCst);
    assert_eq!(client.api("status").await, Err(EslError::NotConnected));
    assert!(!client.is_connected());
    // It keeps retrying (polled: a slow machine makes this wait longer, never pass wrongly).
    let deadline = tokio::time::Instant::now() + WAIT;
    while sw.accepted.load(Ordering::SeqCst) <= refused_before {
        assert!(tokio::time::Instant::now() < deadline, "it keeps retrying");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    sw.open.store(true, Ordering::SeqCst);
    assert_eq!(next(&mut rx).await, ClientEvent::Connected);
    assert!(client.api("status").await.unwrap().body.starts_with("UP"));
    let sessions = sw.sessions.lock().unwrap().clone();
    assert_eq!(sessions.len(), 2);
    for s in &sessions {
        assert_eq!(
            s[..3],
            [
                "auth ClueCon",
                "event plain BACKGROUND_JOB CHANNEL_HANGUP_COMPLETE",
                "filter Event-Name BACKGROUND_JOB"
            ]
        );
    }

    // Dropping the last handle stops the client: it says goodbye and never reconnects.
    drop(client);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = sw.accepted.load(Ordering::SeqCst);
    assert_eq!(
        sw.sessions.lock().unwrap()[1].last().map(String::as_str),
        Some("exit")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sw.accepted.load(Ordering::SeqCst), after);
}
