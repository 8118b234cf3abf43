//! The outbound connection and listener against scripted switch peers on 127.0.0.1:
//! transcript replays (the recorded switch side drives us; what we send back must be what
//! the capture's client sent), hangup and EOF semantics, backpressure, and bad peers.

use crate::esl_support::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use voxbridge::esl::command::{Command, Execute, Linger};
use voxbridge::esl::counters::EslCounters;
use voxbridge::esl::event::EventFormat;
use voxbridge::esl::listener::{ListenerOptions, OutboundListener};
use voxbridge::esl::outbound::{OutboundConnection, OutboundOptions};
use voxbridge::esl::{CloseReason, Disposition, EslError, EventStream, SocketEvent};
use voxbridge_sim::transcript::{Connection, TranscriptFrame};

const WAIT: Duration = Duration::from_secs(5);

type Accepted = (OutboundConnection, EventStream);

struct Running {
    addr: SocketAddr,
    calls: mpsc::Receiver<Accepted>,
    counters: Arc<EslCounters>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// A listener whose handler hands every connection to the test.
async fn start(options: ListenerOptions) -> Running {
    let listener = OutboundListener::bind("127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let counters = listener.counters();
    let (tx, calls) = mpsc::channel(64);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(listener.run(
        move |conn, events| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((conn, events)).await;
            }
        },
        async move {
            let _ = stopped.await;
        },
    ));
    Running {
        addr,
        calls,
        counters,
        stop: Some(stop),
        task,
    }
}

fn options(format: EventFormat, linger: Option<Linger>, events: &[&str]) -> ListenerOptions {
    ListenerOptions {
        outbound: OutboundOptions {
            format,
            linger,
            events: events.iter().map(|s| s.to_string()).collect(),
            handshake_timeout: Duration::from_secs(2),
            ..OutboundOptions::default()
        },
        shutdown_grace: Duration::from_secs(2),
        ..ListenerOptions::default()
    }
}

fn default_options() -> ListenerOptions {
    options(EventFormat::Plain, Some(Linger::Forever), &[])
}

async fn next_call(r: &mut Running) -> Accepted {
    tokio::time::timeout(WAIT, r.calls.recv())
        .await
        .expect("a call within the bound")
        .expect("listener alive")
}

/// Drains an event stream in the background (as a call driver's select loop would), so
/// the test can await `execute` and look at events in order.
struct Items {
    rx: mpsc::UnboundedReceiver<SocketEvent>,
}

impl Items {
    fn spawn(mut events: EventStream) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(item) = events.recv().await {
                if tx.send(item).is_err() {
                    break;
                }
            }
        });
        Self { rx }
    }

    async fn next(&mut self) -> Option<SocketEvent> {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("an item within the bound")
    }

    /// Items up to and including the first one matching `pred`.
    async fn until(&mut self, pred: impl Fn(&SocketEvent) -> bool) -> Vec<SocketEvent> {
        let mut seen = Vec::new();
        loop {
            let item = self.next().await.expect("stream ended before the item");
            let hit = pred(&item);
            seen.push(item);
            if hit {
                return seen;
            }
        }
    }

    /// Everything until the stream ends.
    async fn rest(&mut self) -> Vec<SocketEvent> {
        let mut seen = Vec::new();
        while let Some(item) = self.next().await {
            seen.push(item);
        }
        seen
    }
}

fn is_event(name: &'static str) -> impl Fn(&SocketEvent) -> bool {
    move |i| matches!(i, SocketEvent::Event(e) if e.is(name))
}

fn last_event(items: &[SocketEvent]) -> &voxbridge::esl::Event {
    match items.last() {
        Some(SocketEvent::Event(e)) => e,
        other => panic!("{other:?}"),
    }
}

fn tail_kinds(items: &[SocketEvent], n: usize) -> Vec<String> {
    items[items.len().saturating_sub(n)..]
        .iter()
        .map(|i| match i {
            SocketEvent::Event(e) => e.name().to_string(),
            SocketEvent::Diverted(_) => "Diverted".into(),
            SocketEvent::Disconnect(d) => format!("{:?}", d.disposition),
            SocketEvent::Closed(r) => format!("Closed({r})"),
            SocketEvent::ExecuteRejected { .. } => "ExecuteRejected".into(),
        })
        .collect()
}

// ---------------------------------------------------------------- transcript replays

/// The recorded switch side of one outbound socket, cut into steps: one command the
/// capture's client sent, then every frame the switch sent before the next command.
fn steps(frames: &[TranscriptFrame], socket: u32) -> Vec<(Vec<u8>, Vec<Vec<u8>>)> {
    let mut steps: Vec<(Vec<u8>, Vec<Vec<u8>>)> = Vec::new();
    for f in frames
        .iter()
        .filter(|f| f.connection == Connection::Outbound && f.socket == socket)
    {
        if f.from_switch {
            steps
                .last_mut()
                .expect("client speaks first")
                .1
                .push(f.bytes.clone());
        } else {
            steps.push((f.bytes.clone(), Vec::new()));
        }
    }
    steps
}

fn header_of(raw: &[u8], name: &str) -> Option<String> {
    String::from_utf8_lossy(raw)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(String::from))
}

/// Plays the switch: for each step, reads our command, checks it is byte for byte what
/// the capture's client sent (its `Event-UUID`s mapped to ours), then sends the recorded
/// frames with the same mapping. UUIDs are 36 bytes both ways, so lengths still hold.
async fn replay_peer(
    addr: SocketAddr,
    steps: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
) -> Result<usize, String> {
    let mut peer = SwitchPeer::connect(addr).await;
    let mut map: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let apply = |map: &[(Vec<u8>, Vec<u8>)], b: &[u8]| {
        map.iter()
            .fold(b.to_vec(), |acc, (from, to)| replace(&acc, from, to))
    };
    let mut ended_by_switch = false;
    for (i, (client, frames)) in steps.iter().enumerate() {
        let got = peer.read().await.ok_or_else(|| {
            format!(
                "step {i}: EOF instead of {:?}",
                String::from_utf8_lossy(client)
            )
        })?;
        if let (Some(theirs), Some(ours)) =
            (header_of(client, "Event-UUID"), got.header("Event-UUID"))
        {
            map.push((theirs.into_bytes(), ours.as_bytes().to_vec()));
        }
        let expected = apply(&map, client);
        if got.raw != expected {
            return Err(format!(
                "step {i}: we sent {:?}, the capture's client sent {:?}",
                String::from_utf8_lossy(&got.raw),
                String::from_utf8_lossy(&expected)
            ));
        }
        for f in frames {
            peer.send(&apply(&map, f)).await;
            ended_by_switch = f.windows(24).any(|w| w == b"Content-Disposition: dis");
        }
    }
    if !ended_by_switch && !peer.closed_within(WAIT).await {
        return Err("we never closed the socket".into());
    }
    Ok(steps.len())
}

const EVENTS: &[&str] = &[
    "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "DTMF",
    "CHANNEL_ANSWER",
];

fn unlocked(app: &str, arg: &str) -> Command {
    Command::execute(&Execute {
        app: app.into(),
        arg: Some(arg.into()),
        event_lock: false,
        event_uuid: None,
        loops: None,
        target: None,
    })
    .unwrap()
}

async fn replay(
    name: &str,
    opts: ListenerOptions,
    socket: u32,
) -> (
    Running,
    Accepted,
    tokio::task::JoinHandle<Result<usize, String>>,
) {
    let mut running = start(opts).await;
    let frames = fixture(name);
    let peer = tokio::spawn(replay_peer(running.addr, steps(&frames, socket)));
    let call = next_call(&mut running).await;
    (running, call, peer)
}

async fn peer_ok(peer: tokio::task::JoinHandle<Result<usize, String>>) {
    let steps = tokio::time::timeout(WAIT, peer)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(steps >= 3);
}

#[tokio::test]
async fn replay_a_unanswered_call_rejected() {
    let (_r, (conn, events), peer) = replay(
        "a",
        options(EventFormat::Plain, Some(Linger::Forever), EVENTS),
        1,
    )
    .await;
    let mut items = Items::spawn(events);
    assert_eq!(conn.channel().answer_state(), Some("ringing"));
    assert_eq!(conn.uuid(), FIXTURE_UUID);
    assert!(conn
        .command(&unlocked("hangup", "CALL_REJECTED"))
        .await
        .unwrap()
        .is_ok());
    let seen = items.until(is_event("CHANNEL_HANGUP_COMPLETE")).await;
    assert_eq!(last_event(&seen).hangup_cause(), Some("CALL_REJECTED"));
    assert!(seen.iter().any(is_event("CHANNEL_HANGUP")));
    conn.exit().await.unwrap();
    let rest = items.rest().await;
    assert_eq!(
        tail_kinds(&rest, 3),
        ["Linger", "Disconnect", "Closed(the switch disconnected)"]
    );
    peer_ok(peer).await;
}

#[tokio::test]
async fn replay_b_answer_playback_sched_hangup() {
    let (_r, (conn, events), peer) = replay(
        "b",
        options(EventFormat::Plain, Some(Linger::Seconds(5)), EVENTS),
        1,
    )
    .await;
    let mut items = Items::spawn(events);
    assert_eq!(conn.execute("answer", None).await.unwrap(), "_none_");
    let tone = "tone_stream://%(500,500,440);loops=2";
    assert_eq!(
        conn.execute("playback", Some(tone)).await.unwrap(),
        "FILE PLAYED"
    );
    assert_eq!(
        conn.execute("sched_hangup", Some("+2 ALLOTTED_TIMEOUT"))
            .await
            .unwrap(),
        "_none_"
    );
    // This one is cut off by the scheduled hangup, its completion after the linger notice.
    let endless = "tone_stream://%(1000,0,350,440);loops=-1";
    assert_eq!(
        conn.execute("playback", Some(endless)).await.unwrap(),
        "FILE PLAYED"
    );
    let seen = items.until(is_event("CHANNEL_HANGUP_COMPLETE")).await;
    assert_eq!(last_event(&seen).hangup_cause(), Some("ALLOTTED_TIMEOUT"));
    assert!(seen
        .iter()
        .any(|i| matches!(i, SocketEvent::Disconnect(d) if d.disposition == Disposition::Linger)));
    let rest = items.rest().await;
    assert_eq!(
        tail_kinds(&rest, 2),
        ["Disconnect", "Closed(the switch disconnected)"]
    );
    peer_ok(peer).await;
}

#[tokio::test]
async fn replay_c_caller_hangs_up_mid_playback() {
    let (_r, (conn, events), peer) = replay(
        "c",
        options(EventFormat::Plain, Some(Linger::Forever), EVENTS),
        1,
    )
    .await;
    let mut items = Items::spawn(events);
    assert_eq!(conn.execute("answer", None).await.unwrap(), "_none_");
    let endless = "tone_stream://%(1000,0,350,440);loops=-1";
    assert_eq!(
        conn.execute("playback", Some(endless)).await.unwrap(),
        "PLAYBACK ERROR"
    );
    let seen = items.until(is_event("CHANNEL_HANGUP_COMPLETE")).await;
    assert_eq!(
        last_event(&seen).variable("sip_hangup_disposition"),
        Some("recv_bye")
    );
    items
        .until(|i| matches!(i, SocketEvent::Disconnect(d) if !d.is_final()))
        .await;
    // Still open after the linger notice; we close it.
    assert!(!conn.is_closed());
    drop(conn);
    assert_eq!(
        tail_kinds(&items.rest().await, 1),
        ["Closed(closed locally)"]
    );
    peer_ok(peer).await;
}

#[tokio::test]
async fn replay_d_json_events() {
    let (_r, (conn, events), peer) = replay(
        "d",
        options(EventFormat::Json, Some(Linger::Forever), EVENTS),
        1,
    )
    .await;
    let mut items = Items::spawn(events);
    assert!(conn.channel().is_answered());
    let tone = "tone_stream://%(500,500,440);loops=2";
    assert_eq!(
        conn.execute("playback", Some(tone)).await.unwrap(),
        "FILE PLAYED"
    );
    assert!(conn
        .command(&unlocked("hangup", "NORMAL_CLEARING"))
        .await
        .unwrap()
        .is_ok());
    let seen = items.until(is_event("CHANNEL_HANGUP_COMPLETE")).await;
    let hc = last_event(&seen);
    assert_eq!(hc.format(), EventFormat::Json);
    assert_eq!(hc.headers().get_all("Hangup-Cause").count(), 2);
    conn.exit().await.unwrap();
    assert_eq!(
        tail_kinds(&items.rest().await, 3),
        ["Linger", "Disconnect", "Closed(the switch disconnected)"]
    );
    peer_ok(peer).await;
}

#[tokio::test]
async fn replay_e2_killed_from_outside() {
    let mut running = start(options(EventFormat::Plain, Some(Linger::Forever), &[])).await;
    let frames = fixture("e2");
    for (socket, cause) in [(1, "NORMAL_CLEARING"), (2, "USER_BUSY")] {
        let peer = tokio::spawn(replay_peer(running.addr, steps(&frames, socket)));
        let (conn, events) = next_call(&mut running).await;
        let mut items = Items::spawn(events);
        let endless = "tone_stream://%(1000,0,350,440);loops=-1";
        assert_eq!(
            conn.execute("playback", Some(endless)).await.unwrap(),
            "FILE PLAYED"
        );
        let seen = items.until(is_event("CHANNEL_HANGUP_COMPLETE")).await;
        assert_eq!(last_event(&seen).hangup_cause(), Some(cause));
        conn.exit().await.unwrap();
        items.rest().await;
        peer_ok(peer).await;
    }
}

#[tokio::test]
async fn replay_g_no_linger() {
    let (_r, (conn, events), peer) = replay("g", options(EventFormat::Plain, None, &[]), 1).await;
    let mut items = Items::spawn(events);
    let tone = "tone_stream://%(500,500,440);loops=1";
    assert_eq!(
        conn.execute("playback", Some(tone)).await.unwrap(),
        "FILE PLAYED"
    );
    assert!(conn
        .command(&unlocked("hangup", "NORMAL_CLEARING"))
        .await
        .unwrap()
        .is_ok());
    let rest = items.rest().await;
    assert_eq!(
        tail_kinds(&rest, 3),
        [
            "CHANNEL_HANGUP_COMPLETE",
            "Disconnect",
            "Closed(the switch disconnected)"
        ]
    );
    // The connection is gone: commands fail at once instead of hanging.
    assert!(matches!(
        conn.execute("answer", None).await,
        Err(EslError::Closed(CloseReason::Disconnected))
    ));
    peer_ok(peer).await;
}

#[tokio::test]
async fn replay_h_dtmf_then_uuid_break() {
    let (_r, (conn, events), peer) = replay(
        "h",
        options(EventFormat::Plain, Some(Linger::Forever), EVENTS),
        1,
    )
    .await;
    let mut items = Items::spawn(events);
    assert_eq!(conn.execute("answer", None).await.unwrap(), "_none_");
    // The driver style: queue the playback, keep reading events, act on them.
    let endless = "tone_stream://%(1000,0,350,440);loops=-1";
    let playback = conn.send_execute("playback", Some(endless)).await.unwrap();
    let seen = items.until(is_event("DTMF")).await;
    assert_eq!(last_event(&seen).dtmf_digit(), Some("1"));
    let seen = items.until(is_event("DTMF")).await;
    assert_eq!(last_event(&seen).dtmf_digit(), Some("#"));
    // A hangup queues behind the event-locked playback until uuid_break ends it.
    assert!(conn
        .command(&unlocked("hangup", "NORMAL_CLEARING"))
        .await
        .unwrap()
        .is_ok());
    let brk = conn
        .api(&format!("uuid_break {}", conn.uuid()))
        .await
        .unwrap();
    assert_eq!(brk.body, "+OK\n");
    let seen = items
        .until(|i| {
            matches!(i, SocketEvent::Event(e) if e.application_uuid() == Some(playback.as_str())
            && e.is("CHANNEL_EXECUTE_COMPLETE"))
        })
        .await;
    assert_eq!(
        last_event(&seen).application_response(),
        Some("FILE PLAYED")
    );
    items.until(is_event("CHANNEL_HANGUP_COMPLETE")).await;
    conn.exit().await.unwrap();
    items.rest().await;
    peer_ok(peer).await;
}

// ---------------------------------------------------------------- semantics

/// Accepts one call and answers its handshake; the test then scripts the peer.
async fn one_call(opts: ListenerOptions) -> (Running, Accepted, SwitchPeer, String) {
    let mut running = start(opts).await;
    let uuid = new_uuid();
    let mut peer = SwitchPeer::connect(running.addr).await;
    let (peer, call) = tokio::join!(
        async {
            peer.handshake(&uuid).await;
            peer
        },
        next_call(&mut running)
    );
    (running, call, peer, uuid)
}

#[tokio::test]
async fn apps_queued_behind_a_hangup_fail_and_the_running_one_completes() {
    let (_r, (conn, events), mut peer, uuid) = one_call(default_options()).await;
    let mut items = Items::spawn(events);
    let running = tokio::spawn({
        let conn = conn.clone();
        async move { conn.execute("playback", Some("a.wav")).await }
    });
    let a = peer.expect("sendmsg").await;
    peer.send(&reply("+OK")).await;
    let queued = tokio::spawn({
        let conn = conn.clone();
        async move { conn.execute("playback", Some("b.wav")).await }
    });
    let b = peer.expect("sendmsg").await;
    assert_eq!(b.header("execute-app-arg"), Some("b.wav"));
    peer.send(&reply("+OK")).await;
    // Caller hangs up: HANGUP, the running app's completion, then HANGUP_COMPLETE.
    peer.send(&event(
        &[
            ("Event-Name", "CHANNEL_HANGUP"),
            ("Unique-ID", &uuid),
            ("Hangup-Cause", "NORMAL_CLEARING"),
        ],
        None,
    ))
    .await;
    peer.send(&linger_notice(&uuid)).await;
    peer.send(&execute_complete(
        &uuid,
        "playback",
        a.header("Event-UUID").unwrap(),
        "PLAYBACK ERROR",
    ))
    .await;
    peer.send(&hangup_complete(&uuid, "NORMAL_CLEARING")).await;
    assert_eq!(running.await.unwrap().unwrap(), "PLAYBACK ERROR");
    assert_eq!(queued.await.unwrap(), Err(EslError::HungUp));
    // An app sent now never runs: it fails at once and nothing is written.
    assert_eq!(conn.execute("answer", None).await, Err(EslError::HungUp));
    let id = conn.send_execute("answer", None).await.unwrap();
    let seen = items
        .until(|i| matches!(i, SocketEvent::ExecuteRejected { .. }))
        .await;
    assert!(
        matches!(seen.last(), Some(SocketEvent::ExecuteRejected { app_id, .. }) if *app_id == id)
    );
    assert!(seen.iter().any(is_event("CHANNEL_HANGUP_COMPLETE")));
    // The linger notice did not end anything: getvar still works.
    let getvar = tokio::spawn({
        let conn = conn.clone();
        async move { conn.getvar("hangup_cause").await }
    });
    let g = peer.expect("getvar").await;
    assert_eq!(g.line, "getvar hangup_cause");
    peer.send(&reply("NORMAL_CLEARING")).await;
    assert_eq!(
        getvar.await.unwrap().unwrap().as_deref(),
        Some("NORMAL_CLEARING")
    );
    // Then the switch's final notice ends the stream.
    peer.send(&final_notice(&uuid)).await;
    drop(peer);
    let rest = items.rest().await;
    assert_eq!(
        tail_kinds(&rest, 2),
        ["Disconnect", "Closed(the switch disconnected)"]
    );
}

#[tokio::test]
async fn err_replies_fail_the_app_or_are_reported_on_the_stream() {
    let (_r, (conn, events), mut peer, _uuid) = one_call(default_options()).await;
    let mut items = Items::spawn(events);
    let exec = tokio::spawn({
        let conn = conn.clone();
        async move { conn.execute("playback", Some("x.wav")).await }
    });
    peer.expect("sendmsg").await;
    peer.send(&reply("-ERR invalid session id [x]")).await;
    match exec.await.unwrap() {
        Err(EslError::Rejected { reply, .. }) => assert_eq!(reply, "-ERR invalid session id [x]"),
        other => panic!("{other:?}"),
    }
    let id = conn.send_execute("playback", Some("y.wav")).await.unwrap();
    peer.expect("sendmsg").await;
    peer.send(&reply("-ERR no such app")).await;
    let seen = items
        .until(|i| matches!(i, SocketEvent::ExecuteRejected { .. }))
        .await;
    match seen.last() {
        Some(SocketEvent::ExecuteRejected { app_id, reason }) => {
            assert_eq!(app_id, &id);
            assert_eq!(reason, "-ERR no such app");
        }
        other => panic!("{other:?}"),
    }
    let hang = tokio::spawn({
        let conn = conn.clone();
        async move { conn.hangup("USER_BUSY").await }
    });
    let h = peer.expect("sendmsg").await;
    assert_eq!(h.header("call-command"), Some("hangup"));
    assert_eq!(h.header("hangup-cause"), Some("USER_BUSY"));
    peer.send(&reply("-ERR invalid session id [x]")).await;
    assert!(matches!(
        hang.await.unwrap(),
        Err(EslError::Rejected { .. })
    ));
}

#[tokio::test]
async fn eof_fails_every_pending_waiter_at_once() {
    let (_r, (conn, events), mut peer, _uuid) = one_call(default_options()).await;
    let mut items = Items::spawn(events);
    let exec = tokio::spawn({
        let conn = conn.clone();
        async move { conn.execute("playback", Some("long.wav")).await }
    });
    let api = tokio::spawn({
        let conn = conn.clone();
        async move { conn.api("status").await }
    });
    peer.expect("sendmsg").await;
    peer.send(&reply("+OK")).await;
    peer.expect("api status").await;
    // The switch goes away with an app running and a command unanswered.
    drop(peer);
    let started = Instant::now();
    let exec = tokio::time::timeout(WAIT, exec)
        .await
        .expect("no hang")
        .unwrap();
    let api = tokio::time::timeout(WAIT, api)
        .await
        .expect("no hang")
        .unwrap();
    assert_eq!(exec, Err(EslError::Closed(CloseReason::Eof)));
    assert_eq!(api, Err(EslError::Closed(CloseReason::Eof)));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "failed promptly"
    );
    assert_eq!(
        tail_kinds(&items.rest().await, 1),
        ["Closed(the peer closed the connection)"]
    );
    assert!(conn.is_closed());
    assert_eq!(conn.close_reason(), Some(CloseReason::Eof));
    assert_eq!(
        conn.api("status").await,
        Err(EslError::Closed(CloseReason::Eof))
    );
}

#[tokio::test]
async fn a_full_stream_pauses_reading_but_loses_nothing() {
    let mut opts = default_options();
    opts.outbound.event_capacity = 4;
    let (_r, (conn, mut events), mut peer, uuid) = one_call(opts).await;
    // 300 events and the hangup, while nobody reads the stream.
    let mut burst = Vec::new();
    for i in 0..300 {
        burst.extend(event(
            &[
                ("Event-Name", "DTMF"),
                ("Unique-ID", &uuid),
                ("DTMF-Digit", &(i % 10).to_string()),
                ("Seq", &i.to_string()),
            ],
            None,
        ));
    }
    burst.extend(hangup_complete(&uuid, "NORMAL_CLEARING"));
    let writer = tokio::spawn(async move {
        peer.send(&burst).await;
        peer
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Commands still go out while the stream is full.
    let hang = tokio::spawn({
        let conn = conn.clone();
        async move { conn.hangup("NORMAL_CLEARING").await }
    });
    let mut peer = tokio::time::timeout(WAIT, writer).await.unwrap().unwrap();
    let h = tokio::time::timeout(WAIT, peer.expect("sendmsg"))
        .await
        .expect("hangup written while the stream is full");
    assert_eq!(h.header("call-command"), Some("hangup"));
    peer.send(&reply("+OK")).await;
    let mut seqs = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            SocketEvent::Event(e) if e.is("DTMF") => {
                seqs.push(e.header("Seq").unwrap().parse::<u32>().unwrap())
            }
            SocketEvent::Event(e) if e.is("CHANNEL_HANGUP_COMPLETE") => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seqs, (0..300).collect::<Vec<_>>());
    hang.await.unwrap().unwrap();
}

#[tokio::test]
async fn multi_line_speak_goes_as_a_body() {
    let (_r, (conn, events), mut peer, uuid) = one_call(default_options()).await;
    let _items = Items::spawn(events);
    let text = "flite|slt|Hello,\nline two\r\nexecute-app-name: hangup";
    let exec = tokio::spawn({
        let conn = conn.clone();
        async move { conn.execute("speak", Some(text)).await }
    });
    let got = peer.expect("sendmsg").await;
    assert_eq!(got.header("execute-app-name"), Some("speak"));
    assert_eq!(got.header("execute-app-arg"), None);
    assert_eq!(got.header("content-type"), Some("text/plain"));
    assert_eq!(got.body.as_deref(), Some(text.as_bytes()));
    peer.send(&reply("+OK")).await;
    peer.send(&execute_complete(
        &uuid,
        "speak",
        got.header("Event-UUID").unwrap(),
        "_none_",
    ))
    .await;
    assert_eq!(exec.await.unwrap().unwrap(), "_none_");
    assert!(matches!(
        conn.execute("play\nback", None).await,
        Err(EslError::Command(_))
    ));
}

// ---------------------------------------------------------------- the listener and bad peers

#[tokio::test]
async fn a_peer_that_closes_at_once_does_not_delay_the_next_call() {
    let mut running = start(default_options()).await;
    // A health check that connects and leaves, and one that connects and says nothing.
    drop(tokio::net::TcpStream::connect(running.addr).await.unwrap());
    let _silent = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    let started = Instant::now();
    let uuid = new_uuid();
    let mut peer = SwitchPeer::connect(running.addr).await;
    let (_, (conn, _events)) = tokio::join!(peer.handshake(&uuid), next_call(&mut running));
    let took = started.elapsed();
    assert_eq!(conn.uuid(), uuid);
    assert!(
        took < Duration::from_secs(1),
        "the next call waited {took:?}"
    );
    // All three connections counted (polled: the counter moves on the listener's task).
    let deadline = Instant::now() + WAIT;
    while running.counters.snapshot().accepted < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(running.counters.snapshot().accepted, 3);
}

#[tokio::test]
async fn a_switch_slow_after_connect_keeps_its_call() {
    // Seen under CPU starvation (e2e_load): the switch answered `connect`, the
    // subscription replies came later than the handshake timeout, and the connection was
    // dropped: the channel stayed parked on the switch, with no record and no callback.
    // Only `connect` is bounded by the handshake timeout.
    let mut opts = default_options();
    opts.outbound.handshake_timeout = Duration::from_millis(300);
    let mut running = start(opts).await;
    let uuid = new_uuid();
    let mut peer = SwitchPeer::connect(running.addr).await;
    let slow = async {
        peer.expect("connect").await;
        peer.send(&connect_reply(&uuid)).await;
        peer.expect("myevents").await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        peer.send(&reply("+OK Events Enabled")).await;
        peer.expect("linger").await;
        peer.send(&reply("+OK will linger")).await;
    };
    let (_, (conn, _events)) = tokio::join!(slow, next_call(&mut running));
    assert_eq!(conn.uuid(), uuid);
    // A peer that never answers `connect` is still given up on.
    let mut silent = SwitchPeer::connect(running.addr).await;
    silent.expect("connect").await;
    assert!(silent.closed_within(Duration::from_secs(2)).await);
}

#[tokio::test]
async fn the_handshake_steps_go_out_before_any_of_their_replies() {
    // Issue 16: myevents, nixevent and linger do not wait for each other's replies (one
    // round trip, not three). This peer answers none of them until it has read all three;
    // a voxbridge that waited for each reply would never send the second one. The replies
    // then come in order, one of them refused: a refusal is only a warning.
    let mut opts = default_options();
    opts.outbound.nix_events = vec!["CHANNEL_EXECUTE".into(), "CHANNEL_STATE".into()];
    let mut running = start(opts).await;
    let uuid = new_uuid();
    let mut peer = SwitchPeer::connect(running.addr).await;
    let script = async {
        peer.expect("connect").await;
        peer.send(&connect_reply(&uuid)).await;
        let myevents = peer.expect("myevents").await;
        let nixevent = peer.expect("nixevent").await;
        let linger = peer.expect("linger").await;
        peer.send(&reply("+OK Events Enabled")).await;
        peer.send(&reply("-ERR no keywords supplied")).await;
        peer.send(&reply("+OK will linger")).await;
        (myevents, nixevent, linger)
    };
    let ((myevents, nixevent, linger), (conn, _events)) =
        tokio::join!(script, next_call(&mut running));
    assert_eq!(conn.uuid(), uuid);
    assert_eq!(myevents.line, "myevents");
    assert_eq!(nixevent.line, "nixevent CHANNEL_EXECUTE CHANNEL_STATE");
    assert_eq!(linger.line, "linger");
    // The connection is in step after the pipelined replies: the next reply is this api's.
    let api = async { conn.api("uptime").await };
    let answer = async {
        peer.expect("api uptime").await;
        peer.send(&api_response("42")).await;
    };
    let (got, ()) = tokio::join!(api, answer);
    assert_eq!(got.unwrap().body, "42");
}

#[tokio::test(flavor = "current_thread")]
async fn bad_peers_lose_only_their_own_connection() {
    let logs = LogCapture::default();
    let _guard = logs.install();
    let (mut running, (conn, events), mut good, uuid) = one_call(default_options()).await;
    let mut items = Items::spawn(events);
    let exec = tokio::spawn({
        let conn = conn.clone();
        async move { conn.execute("playback", Some("long.wav")).await }
    });
    let app = good.expect("sendmsg").await;
    good.send(&reply("+OK")).await;

    // Garbage, a huge Content-Length and a frame cut off by EOF, each instead of the
    // connect reply.
    let uuid2 = new_uuid();
    let cut = connect_reply(&uuid2);
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"HELLO SWITCH\r\n\r\n\x00\x01binary".to_vec()),
        (
            "huge length",
            b"Content-Length: 99999999999\nContent-Type: text/event-plain\n\n".to_vec(),
        ),
        ("truncated", cut[..cut.len() / 2].to_vec()),
    ];
    for (what, bytes) in &bad {
        let mut peer = SwitchPeer::connect(running.addr).await;
        peer.expect("connect").await;
        peer.send(bytes).await;
        if *what == "truncated" {
            peer.stream.shutdown().await.ok();
        }
        assert!(
            peer.closed_within(WAIT).await,
            "{what}: we closed the connection"
        );
    }
    // A call whose switch breaks mid-call: its waiter fails, nobody else's does.
    let (mut broken, (conn3, _ev3)) = {
        let u = new_uuid();
        let mut p = SwitchPeer::connect(running.addr).await;
        let (_, c) = tokio::join!(p.handshake(&u), next_call(&mut running));
        (p, c)
    };
    let exec3 = tokio::spawn(async move { conn3.execute("playback", Some("x.wav")).await });
    broken.expect("sendmsg").await;
    broken
        .send(b"Content-Length: 500\nContent-Type: text/event-plain\n\nEvent-Name: CHANNEL_EXEC")
        .await;
    broken.stream.shutdown().await.ok();
    assert_eq!(
        tokio::time::timeout(WAIT, exec3).await.unwrap().unwrap(),
        Err(EslError::Closed(CloseReason::Truncated { buffered: 76 }))
    );

    // The good call carries on and completes.
    good.send(&execute_complete(
        &uuid,
        "playback",
        app.header("Event-UUID").unwrap(),
        "FILE PLAYED",
    ))
    .await;
    assert_eq!(exec.await.unwrap().unwrap(), "FILE PLAYED");
    good.send(&hangup_complete(&uuid, "NORMAL_CLEARING")).await;
    items.until(is_event("CHANNEL_HANGUP_COMPLETE")).await;

    let c = running.counters.snapshot();
    assert_eq!(c.protocol_errors, 4, "{c:?}");
    assert_eq!(c.handshake_failures, 3, "{c:?}");
    let text = logs.text();
    assert!(text.contains("frame has no Content-Type"), "{text}");
    assert!(text.contains("Content-Length \"99999999999\""), "{text}");
    assert!(text.contains("in the middle of a frame"), "{text}");
    assert!(text.contains("127.0.0.1"), "logs name the peer: {text}");
}

#[tokio::test]
async fn peers_outside_the_allow_list_are_closed_at_once() {
    let mut opts = default_options();
    opts.allow = vec!["10.0.0.0/8".into()];
    let running = start(opts).await;
    let mut peer = SwitchPeer::connect(running.addr).await;
    assert!(peer.closed_within(WAIT).await);
    assert_eq!(running.counters.snapshot().rejected_not_allowed, 1);
    assert_eq!(running.counters.snapshot().accepted, 0);
}

#[tokio::test]
async fn the_connection_limit_closes_extra_peers_and_shutdown_waits_for_live_calls() {
    let listener = OutboundListener::bind(
        "127.0.0.1:0".parse().unwrap(),
        ListenerOptions {
            max_connections: 1,
            ..default_options()
        },
    )
    .await
    .unwrap();
    let addr = listener.local_addr().unwrap();
    let counters = listener.counters();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let release_rx = Arc::new(tokio::sync::Mutex::new(Some(release_rx)));
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(listener.run(
        move |conn: OutboundConnection, _events| {
            let release_rx = release_rx.clone();
            async move {
                // Hold the call until the test releases it, then hang up.
                if let Some(rx) = release_rx.lock().await.take() {
                    let _ = rx.await;
                }
                let _ = conn.hangup("NORMAL_CLEARING").await;
            }
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let uuid = new_uuid();
    let mut first = SwitchPeer::connect(addr).await;
    first.handshake(&uuid).await;
    let mut second = SwitchPeer::connect(addr).await;
    assert!(second.closed_within(WAIT).await, "over the limit: closed");
    assert_eq!(counters.snapshot().rejected_over_limit, 1);
    assert_eq!(counters.snapshot().active, 1);

    // Shutdown stops accepting but waits for the live call.
    stop_tx.send(()).unwrap();
    // The stop has been taken (the listening socket is gone), and the listener still
    // waits for the live call: evidence, not a sleep.
    let deadline = Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after the stop");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!task.is_finished(), "waits for the live call");
    release_tx.send(()).unwrap();
    let h = first.expect("sendmsg").await;
    assert_eq!(h.header("call-command"), Some("hangup"));
    first.send(&reply("+OK")).await;
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    assert_eq!(counters.snapshot().active, 0);
}

#[tokio::test]
async fn a_connect_reply_without_a_channel_uuid_fails_the_handshake_only() {
    let running = start(default_options()).await;
    let mut peer = SwitchPeer::connect(running.addr).await;
    peer.expect("connect").await;
    peer.send(b"Event-Name: CHANNEL_DATA\nContent-Type: command/reply\nReply-Text: %2BOK%0A\n\n")
        .await;
    assert!(peer.closed_within(WAIT).await);
    let deadline = Instant::now() + WAIT;
    while running.counters.snapshot().handshake_failures < 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(running.counters.snapshot().handshake_failures, 1);
    assert_eq!(running.counters.snapshot().protocol_errors, 0);
}

#[tokio::test]
async fn a_silent_peer_times_out_in_its_own_task() {
    let mut opts = default_options();
    opts.outbound.handshake_timeout = Duration::from_millis(200);
    let mut running = start(opts).await;
    let mut silent = SwitchPeer::connect(running.addr).await;
    silent.expect("connect").await;
    assert!(
        silent.closed_within(WAIT).await,
        "closed after the handshake timeout"
    );
    assert_eq!(running.counters.snapshot().handshake_failures, 1);
    assert!(running.calls.try_recv().is_err());
    if let Some(stop) = running.stop.take() {
        let _ = stop.send(());
    }
    tokio::time::timeout(WAIT, running.task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn send_hangup_does_not_wait_and_the_end_arrives_on_the_stream() {
    let mut opts = default_options();
    opts.outbound.event_capacity = 1;
    let (_r, (conn, mut events), mut peer, uuid) = one_call(opts).await;
    // The stream is full and nobody drains it: a waiting call could not get its reply,
    // the fire-and-forget one is written anyway.
    peer.send(&event(
        &[
            ("Event-Name", "DTMF"),
            ("Unique-ID", &uuid),
            ("DTMF-Digit", "1"),
        ],
        None,
    ))
    .await;
    peer.send(&event(
        &[
            ("Event-Name", "DTMF"),
            ("Unique-ID", &uuid),
            ("DTMF-Digit", "2"),
        ],
        None,
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn.send_hangup("USER_BUSY").await.unwrap();
    let h = peer.expect("sendmsg").await;
    assert_eq!(h.header("hangup-cause"), Some("USER_BUSY"));
    peer.send(&reply("+OK")).await;
    peer.send(&hangup_complete(&uuid, "USER_BUSY")).await;
    peer.send(&final_notice(&uuid)).await;
    let mut names = Vec::new();
    while let Some(item) = tokio::time::timeout(WAIT, events.recv()).await.unwrap() {
        names.push(tail_kinds(&[item], 1).remove(0));
    }
    assert_eq!(
        names,
        [
            "DTMF",
            "DTMF",
            "CHANNEL_HANGUP_COMPLETE",
            "Disconnect",
            "Closed(the switch disconnected)"
        ]
    );
}

/// Leaving by closing (issue 16): what was queued before `close` is still written, the
/// switch then reads end-of-file with no `exit`, commands after it fail as closed, and
/// the stream ends `Closed(closed locally)`.
#[tokio::test]
async fn close_writes_what_was_queued_then_closes_without_exit() {
    let (_r, (conn, events), mut peer, uuid) = one_call(default_options()).await;
    let mut items = Items::spawn(events);
    peer.send(&hangup_complete(&uuid, "NORMAL_CLEARING")).await;
    items.until(is_event("CHANNEL_HANGUP_COMPLETE")).await;
    conn.send_hangup("NORMAL_CLEARING").await.unwrap();
    conn.close().await;
    let last = peer.expect("sendmsg").await;
    assert_eq!(last.header("call-command"), Some("hangup"));
    assert!(
        peer.read().await.is_none(),
        "the socket was closed after the queued command, with nothing more (no exit)"
    );
    assert!(matches!(conn.getvar("x").await, Err(EslError::Closed(_))));
    let rest = items.rest().await;
    assert_eq!(tail_kinds(&rest, 1), ["Closed(closed locally)"]);
}
