//! The AMI client (`voxbridge::ami`, issue 17) against a fake manager interface on
//! loopback: login with the event whitelist, ActionID correlation, events routed by their
//! `Linkedid` (replaying the events of `tests/fixtures/ami/dial-digits-record-stop.txt`,
//! captured from the real Asterisk), and bad input or a dropped session closing only
//! that connection, the client reconnecting.

use bytes::BytesMut;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use voxbridge::ami::{Action, Ami, AmiError, AmiOptions, Decoder, Frame, Message};

const BANNER: &str = "Asterisk Call Manager/9.0.0\r\n";

fn options(addr: std::net::SocketAddr) -> AmiOptions {
    AmiOptions {
        address: addr.to_string(),
        user: "voxbridge".into(),
        secret: "s3cret".into(),
        events: vec!["DTMFEnd".into(), "DialBegin".into(), "DialEnd".into()],
        event_classes: "call,dtmf".into(),
    }
}

/// The client side of one fake session: reads the client's actions.
struct Peer {
    stream: TcpStream,
    decoder: Decoder,
    buf: BytesMut,
}

impl Peer {
    async fn accept(listener: &TcpListener) -> Peer {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.write_all(BANNER.as_bytes()).await.unwrap();
        let mut decoder = Decoder::default();
        // The client sends no banner: give the decoder one.
        let mut buf = BytesMut::from("client\r\n");
        assert!(matches!(
            decoder.decode(&mut buf),
            Ok(Some(Frame::Banner(_)))
        ));
        Peer {
            stream,
            decoder,
            buf,
        }
    }

    async fn action(&mut self) -> Option<Message> {
        loop {
            if let Some(Frame::Message(m)) = self.decoder.decode(&mut self.buf).unwrap() {
                return Some(m);
            }
            if self.stream.read_buf(&mut self.buf).await.ok()? == 0 {
                return None;
            }
        }
    }

    async fn reply(&mut self, to: &Message, status: &str, extra: &str) {
        let id = to.action_id().unwrap_or_default();
        let text = format!("Response: {status}\r\nActionID: {id}\r\n{extra}\r\n");
        self.stream.write_all(text.as_bytes()).await.unwrap();
    }

    /// Answers the login and the setup actions with success; returns them.
    async fn log_in(&mut self) -> Vec<Message> {
        let mut seen = Vec::new();
        for _ in 0..5 {
            let a = self.action().await.expect("a setup action");
            self.reply(&a, "Success", "Message: ok\r\n").await;
            seen.push(a);
        }
        seen
    }
}

#[tokio::test]
async fn ami_client_logs_in_with_the_event_whitelist_and_matches_responses_by_action_id() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ami = Ami::start(options(listener.local_addr().unwrap()));
    let mut peer = Peer::accept(&listener).await;
    let setup = peer.log_in().await;
    let names: Vec<_> = setup.iter().map(|m| m.get("Action").unwrap()).collect();
    assert_eq!(names, ["Login", "Filter", "Filter", "Filter", "Events"]);
    assert_eq!(setup[0].get("Username"), Some("voxbridge"));
    assert_eq!(setup[0].get("Secret"), Some("s3cret"));
    assert_eq!(
        setup[0].get("Events"),
        Some("off"),
        "no events before the filters"
    );
    let filters: Vec<_> = setup[1..4]
        .iter()
        .map(|m| m.get("Filter").unwrap())
        .collect();
    assert_eq!(
        filters,
        ["Event: DTMFEnd", "Event: DialBegin", "Event: DialEnd"]
    );
    assert_eq!(setup[4].get("EventMask"), Some("call,dtmf"));
    assert!(ami.wait_connected(Duration::from_secs(5)).await);

    // Two actions in flight, answered in the other order: each gets its own answer.
    let first = {
        let ami = ami.clone();
        tokio::spawn(async move {
            ami.send(
                Action::new("StopMixMonitor")
                    .field("Channel", "SIP/a-1")
                    .unwrap(),
            )
            .await
        })
    };
    let a1 = peer.action().await.unwrap();
    let second = {
        let ami = ami.clone();
        tokio::spawn(async move {
            ami.send(Action::new("PlayDTMF").field("Channel", "SIP/b-2").unwrap())
                .await
        })
    };
    let a2 = peer.action().await.unwrap();
    assert_ne!(a1.action_id(), a2.action_id());
    peer.reply(&a2, "Success", "Message: DTMF successfully queued\r\n")
        .await;
    peer.reply(&a1, "Error", "Message: No such channel\r\n")
        .await;
    let got2 = second.await.unwrap().unwrap();
    assert_eq!(got2.text(), "DTMF successfully queued");
    match first.await.unwrap() {
        Err(AmiError::Refused { action, message }) => {
            assert_eq!(action, "StopMixMonitor");
            assert_eq!(message, "No such channel");
        }
        other => panic!("{other:?}"),
    }
    // A value that would inject a second field is refused before anything is sent.
    assert!(Action::new("Hangup")
        .field("Channel", "x\r\nAction: Logoff")
        .is_err());
}

/// The captured events, replayed: a call subscribed to its linked id gets its own (the
/// caller's and its callee's), in order, and not those of the loop's far end.
#[tokio::test]
async fn ami_client_routes_the_captured_events_by_linkedid_to_their_call_only() {
    let capture = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/ami/dial-digits-record-stop.txt"),
    )
    .unwrap();
    let events: Vec<String> = capture
        .lines()
        .filter_map(|l| l.split_once(" AMI< "))
        .map(|(_, m)| m.replace("\\r\\n", "\r\n"))
        .filter(|m| m.starts_with("Event: "))
        .collect();
    let caller = "1796468760.0";
    let of_caller = events
        .iter()
        .filter(|e| e.contains(&format!("Linkedid: {caller}\r\n")))
        .count();
    assert!(
        of_caller >= 10,
        "the capture has the call's events: {of_caller}"
    );
    assert!(of_caller < events.len(), "and the far end's");

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ami = Ami::start(options(listener.local_addr().unwrap()));
    let mut peer = Peer::accept(&listener).await;
    peer.log_in().await;
    assert!(ami.wait_connected(Duration::from_secs(5)).await);
    let mut call = ami.channel_events(caller);
    let mut other = ami.channel_events("1796468764.2");
    // Split at odd places: the decoder must not care.
    let wire: String = events.concat();
    for chunk in wire.as_bytes().chunks(97) {
        peer.stream.write_all(chunk).await.unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..of_caller {
        let e = tokio::time::timeout(Duration::from_secs(5), call.recv())
            .await
            .expect("every event of the call arrives")
            .unwrap();
        got.push(e);
    }
    assert_eq!(got[0].event(), Some("DTMFEnd"));
    assert_eq!(
        got[0].get("Digit"),
        Some("D"),
        "the PlayDTMF stop digit first"
    );
    assert!(got
        .iter()
        .any(|e| e.event() == Some("DialBegin") && e.get("DialString") == Some("7007@self")));
    let callee_digits: String = got
        .iter()
        .filter(|e| {
            e.get("Uniqueid") == Some("1796468764.1") && e.get("Direction") == Some("Received")
        })
        .filter_map(|e| e.get("Digit"))
        .collect();
    assert_eq!(callee_digits, "1234#");
    let far_end = tokio::time::timeout(Duration::from_secs(5), other.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(far_end.get("Channel"), Some("SIP/self-00000002"));
    // A call that ends unsubscribes: nothing is kept per finished call.
    assert_eq!(ami.subscribed(), 2);
    drop(call);
    drop(other);
    assert_eq!(ami.subscribed(), 0);
}

/// Garbage, a huge line and a dropped session each close only that connection: the
/// client logs it, reconnects with backoff and works again; actions asked for while it
/// is down fail at once instead of hanging.
#[tokio::test]
async fn ami_client_reconnects_after_garbage_a_huge_line_and_a_drop() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ami = Ami::start(options(listener.local_addr().unwrap()));
    let breakers: [&[u8]; 3] = [b"this is not a field\r\n\r\n", &[b'x'; 20_000], b""];
    for (i, bad) in breakers.iter().enumerate() {
        let mut peer = Peer::accept(&listener).await;
        peer.log_in().await;
        assert!(
            ami.wait_connected(Duration::from_secs(5)).await,
            "session {i}"
        );
        if bad.is_empty() {
            drop(peer);
        } else {
            peer.stream.write_all(bad).await.unwrap();
            // The client closes its side: reading ends.
            let mut rest = Vec::new();
            let closed =
                tokio::time::timeout(Duration::from_secs(5), peer.stream.read_to_end(&mut rest))
                    .await;
            assert!(
                closed.is_ok(),
                "session {i}: the client closed the connection"
            );
        }
        // Down now (or soon): an action fails fast, never hangs.
        let mut down_seen = false;
        for _ in 0..100 {
            if !ami.is_connected() {
                down_seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(down_seen, "session {i}: the client saw the session end");
        let r = tokio::time::timeout(Duration::from_secs(2), ami.send(Action::new("Ping")))
            .await
            .expect("an action while down answers at once");
        assert!(
            matches!(r, Err(AmiError::NotConnected) | Err(AmiError::Disconnected)),
            "{r:?}"
        );
    }
    // And a fourth session works.
    let mut peer = Peer::accept(&listener).await;
    peer.log_in().await;
    assert!(ami.wait_connected(Duration::from_secs(5)).await);
    let ping = {
        let ami = ami.clone();
        tokio::spawn(async move { ami.send(Action::new("Ping")).await })
    };
    let a = peer.action().await.unwrap();
    peer.reply(&a, "Success", "Ping: Pong\r\n").await;
    assert_eq!(ping.await.unwrap().unwrap().get("Ping"), Some("Pong"));
}

/// A refused login is retried (with backoff), not a connected session.
#[tokio::test]
async fn ami_client_retries_a_refused_login_and_connects_when_it_is_accepted() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let attempts = Arc::new(AtomicUsize::new(0));
    let ami = Ami::start(options(listener.local_addr().unwrap()));
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    for _ in 0..2 {
        let mut peer = Peer::accept(&listener).await;
        let login = peer.action().await.unwrap();
        log.lock()
            .unwrap()
            .push(login.get("Action").unwrap().to_string());
        peer.reply(&login, "Error", "Message: Authentication failed\r\n")
            .await;
        attempts.fetch_add(1, Ordering::Relaxed);
        assert!(!ami.is_connected());
    }
    let mut peer = Peer::accept(&listener).await;
    peer.log_in().await;
    assert!(ami.wait_connected(Duration::from_secs(5)).await);
    assert_eq!(attempts.load(Ordering::Relaxed), 2);
    assert_eq!(*log.lock().unwrap(), ["Login", "Login"]);
}
