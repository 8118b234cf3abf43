//! The FastAGI protocol module (`voxbridge::agi`) against the transcripts captured from
//! the bundled Asterisk (`tests/fixtures/agi/`), property tests of its codec and quoting,
//! and peers that misbehave on the listener.

use crate::agi_support::{agi_argv, play_switch, read, Line, TRANSCRIPTS};
use proptest::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use voxbridge::agi::command::app_arg;
use voxbridge::agi::{
    AgiCommand, AgiConnection, AgiEvent, AgiListener, AgiListenerOptions, LineDecoder, Message,
};

/// The command the driver would build for a transcript's command line (by its argv).
fn command_for(line: &str) -> AgiCommand {
    let argv = agi_argv(line);
    let a: Vec<&str> = argv.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["ANSWER"] => AgiCommand::answer(),
        ["EXEC", app] => AgiCommand::exec(app, "").unwrap(),
        ["EXEC", app, data] => AgiCommand::exec(app, data).unwrap(),
        ["GET", "VARIABLE", name] => AgiCommand::get_variable(name).unwrap(),
        ["GET", "FULL", "VARIABLE", expr] => AgiCommand::get_full_variable(expr).unwrap(),
        ["SET", "VARIABLE", name, value] => AgiCommand::set_variable(name, value).unwrap(),
        _ => AgiCommand::verbatim(line).unwrap(),
    }
}

/// The reply lines of a transcript, in order, as the connection must hand them back.
fn replies(lines: &[Line]) -> Vec<String> {
    let mut past_env = false;
    lines
        .iter()
        .filter_map(|l| match l {
            Line::S(s) if s.is_empty() => {
                past_env = true;
                None
            }
            Line::S(s) if past_env && s.as_bytes().first().is_some_and(u8::is_ascii_digit) => {
                Some(s.clone())
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn every_transcript_replays_reply_for_reply_with_its_hangup_notice() {
    for name in TRANSCRIPTS {
        let lines = read(name);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let switch = tokio::spawn(play_switch(
            TcpStream::connect(addr).await.unwrap(),
            lines.clone(),
        ));
        let (stream, peer) = listener.accept().await.unwrap();
        let (conn, mut events) = AgiConnection::accept(stream, peer, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(conn.env().uniqueid().is_some(), "{name}");
        assert_eq!(conn.env().get("network"), Some("yes"));
        let expected = lines.iter().any(|l| *l == Line::S("HANGUP".into())) as usize;
        let mut hangups = 0;
        let mut got = Vec::new();
        for line in &lines {
            match line {
                Line::C(c) => {
                    let reply = conn
                        .command(command_for(c))
                        .await
                        .unwrap_or_else(|e| panic!("{name}: {c}: {e}"));
                    got.push(reply.text);
                }
                Line::Close => {
                    // As the driver does: the notice is awaited before the close.
                    if expected == 1 && hangups == 0 {
                        let ev = tokio::time::timeout(Duration::from_secs(5), events.recv()).await;
                        assert_eq!(ev, Ok(Some(AgiEvent::Hangup)), "{name}");
                        hangups += 1;
                    }
                    conn.close()
                }
                Line::S(_) => {}
            }
        }
        assert_eq!(got, replies(&lines), "{name}");
        switch
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        loop {
            match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
                Ok(Some(AgiEvent::Hangup)) => hangups += 1,
                Ok(Some(AgiEvent::Closed(_))) | Ok(None) => break,
                Err(_) => panic!("{name}: no Closed event"),
            }
        }
        let expected = lines.iter().any(|l| *l == Line::S("HANGUP".into())) as usize;
        assert_eq!(
            hangups, expected,
            "{name}: one Hangup event per HANGUP notice"
        );
    }
}

#[test]
fn the_transcripts_say_what_the_caller_got() {
    assert_eq!(
        crate::agi_support::caller_end("busy", "sip_term_status").as_deref(),
        Some("486")
    );
    assert_eq!(
        crate::agi_support::caller_end("rejected", "sip_term_status").as_deref(),
        Some("403")
    );
    let lines = read("caller-hangup-playback");
    let after_playback: Vec<_> = lines
        .iter()
        .skip_while(|l| !matches!(l, Line::C(c) if c.starts_with("EXEC Playback")))
        .skip(1)
        .take(2)
        .cloned()
        .collect();
    // The interrupted command's reply comes before the HANGUP notice.
    assert_eq!(
        after_playback,
        vec![Line::S("200 result=-1".into()), Line::S("HANGUP".into())]
    );
}

#[tokio::test]
async fn a_hangup_between_a_command_and_its_reply_still_gives_the_reply() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let switch = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"agi_uniqueid: 1.1\n\n").await.unwrap();
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf).await.unwrap();
        // HANGUP first, then the reply, split mid-line across writes.
        s.write_all(b"HANGUP\n200 res").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.write_all(b"ult=-1\r\n").await.unwrap();
        let _ = s.read(&mut buf).await;
    });
    let (stream, peer) = listener.accept().await.unwrap();
    let (conn, mut events) = AgiConnection::accept(stream, peer, Duration::from_secs(5))
        .await
        .unwrap();
    let reply = conn
        .command(AgiCommand::exec("Playback", "beep").unwrap())
        .await
        .unwrap();
    assert!(reply.is_hangup_result());
    assert_eq!(events.recv().await, Some(AgiEvent::Hangup));
    conn.close();
    switch.await.unwrap();
}

async fn listener_with(
    options: AgiListenerOptions,
) -> (
    std::net::SocketAddr,
    Arc<AtomicUsize>,
    Arc<voxbridge::agi::listener::AgiCounters>,
    tokio::sync::oneshot::Sender<()>,
) {
    let listener = AgiListener::new(TcpListener::bind("127.0.0.1:0").await.unwrap(), options);
    let addr = listener.local_addr().unwrap();
    let counters = listener.counters();
    let served = Arc::new(AtomicUsize::new(0));
    let seen = served.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(listener.run(
        move |conn: AgiConnection, _events| {
            let seen = seen.clone();
            async move {
                let reply = conn.command(AgiCommand::answer()).await;
                if reply.is_ok_and(|r| r.is_ok()) {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
                conn.close();
            }
        },
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, served, counters, stop)
}

/// A well-behaved FastAGI peer: environment, answers ANSWER, waits for the close.
async fn good_peer(addr: std::net::SocketAddr) -> bool {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"agi_network: yes\nagi_uniqueid: 1.2\nagi_channel: SIP/x-1\n\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 64];
    let n = s.read(&mut buf).await.unwrap_or(0);
    if &buf[..n] != b"ANSWER\n" {
        return false;
    }
    s.write_all(b"200 result=0\n").await.unwrap();
    matches!(s.read(&mut buf).await, Ok(0))
}

#[tokio::test]
async fn garbage_a_huge_line_and_a_close_mid_command_end_only_their_own_connection() {
    let (addr, served, counters, _stop) = listener_with(AgiListenerOptions::default()).await;
    // Garbage instead of an environment.
    let mut g = TcpStream::connect(addr).await.unwrap();
    g.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 16];
    assert_eq!(
        g.read(&mut buf).await.unwrap_or(0),
        0,
        "garbage peer closed"
    );
    // A line far over the limit, never ended.
    let mut h = TcpStream::connect(addr).await.unwrap();
    let huge = vec![b'a'; voxbridge::agi::MAX_LINE + 10];
    let _ = h.write_all(&huge).await;
    assert_eq!(
        h.read(&mut buf).await.unwrap_or(0),
        0,
        "huge-line peer closed"
    );
    // A peer that closes mid-command.
    let mut m = TcpStream::connect(addr).await.unwrap();
    m.write_all(b"agi_uniqueid: 1.3\n\n").await.unwrap();
    let _ = m.read(&mut buf).await.unwrap();
    drop(m);
    // A good call beside them still works.
    assert!(good_peer(addr).await);
    assert_eq!(served.load(Ordering::SeqCst), 1);
    assert_eq!(
        voxbridge::agi::listener::AgiCounters::get(&counters.handshake_failures),
        2
    );
}

#[tokio::test]
async fn a_peer_outside_the_allow_list_is_closed_unserved() {
    let (addr, served, counters, _stop) = listener_with(AgiListenerOptions {
        allow: vec!["10.0.0.0/8".into()],
        ..AgiListenerOptions::default()
    })
    .await;
    assert!(!good_peer(addr).await);
    assert_eq!(served.load(Ordering::SeqCst), 0);
    assert_eq!(
        voxbridge::agi::listener::AgiCounters::get(&counters.rejected_not_allowed),
        1
    );
}

proptest! {
    #[test]
    fn lines_do_not_depend_on_how_the_bytes_are_split(
        bytes in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()], 0..400),
        cuts in proptest::collection::vec(0usize..400, 0..8),
    ) {
        let whole = {
            let mut d = LineDecoder::new(64);
            let mut buf = bytes::BytesMut::from(&bytes[..]);
            let mut out = Vec::new();
            loop {
                match d.decode(&mut buf) {
                    Ok(Some(l)) => out.push(l),
                    Ok(None) => break Ok(out),
                    Err(e) => break Err(e),
                }
            }
        };
        let mut d = LineDecoder::new(64);
        let mut buf = bytes::BytesMut::new();
        let mut out = Vec::new();
        let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
        points.sort();
        points.push(bytes.len());
        let mut from = 0;
        let mut failed = None;
        'feed: for p in points {
            buf.extend_from_slice(&bytes[from..p]);
            from = p;
            loop {
                match d.decode(&mut buf) {
                    Ok(Some(l)) => { prop_assert!(l.len() <= 64 * 3); out.push(l) }
                    Ok(None) => break,
                    Err(e) => { failed = Some(e); break 'feed; }
                }
            }
        }
        match (whole, failed) {
            (Ok(w), None) => prop_assert_eq!(w, out),
            (Err(_), Some(_)) => {}
            // Split feeding may see an over-long line only once the rest arrives.
            (Err(_), None) | (Ok(_), Some(_)) => prop_assert!(false, "split and whole disagree"),
        }
    }

    #[test]
    fn any_line_parses_without_panicking(line in ".{0,200}") {
        let _ = Message::parse(&line);
    }

    #[test]
    fn replies_round_trip(code in prop_oneof![Just(200u16), Just(510), Just(511)], result in any::<i32>(), data in "[^()\n]{0,40}") {
        let line = format!("{code} result={result} ({data})");
        match Message::parse(&line) {
            Message::Reply(r) => {
                prop_assert_eq!(r.code, code);
                prop_assert_eq!(r.result, Some(result as i64));
                prop_assert_eq!(r.data.as_deref(), Some(data.as_str()));
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn exec_data_reaches_the_switch_verbatim(data in "[^\r\n\0]{1,200}") {
        let cmd = AgiCommand::exec("Flite", &data).unwrap();
        let argv = agi_argv(cmd.line());
        prop_assert_eq!(argv, vec!["EXEC".to_string(), "Flite".to_string(), data.clone()]);
        // And the application-level escaping leaves no bare comma or quote.
        let escaped = app_arg(&data);
        let mut prev_backslash = false;
        for c in escaped.chars() {
            if matches!(c, ',' | '"') { prop_assert!(prev_backslash); }
            prev_backslash = c == '\\' && !prev_backslash;
        }
    }

    #[test]
    fn a_line_break_never_reaches_the_wire(a in ".{0,20}", b in ".{0,20}", brk in prop_oneof![Just("\n"), Just("\r"), Just("\0")]) {
        let data = format!("{a}{brk}{b}");
        prop_assert!(AgiCommand::exec("Flite", &data).is_err());
        prop_assert!(AgiCommand::verbatim(&data).is_err());
    }
}

/// The fake Asterisk of the end-to-end tests (`crate::agi_support::fake`) against the switch it
/// stands in for: the client side of each transcript sent to it, its replies compared line
/// for line with what the real Asterisk answered.
#[tokio::test]
async fn the_fake_asterisk_answers_the_transcripts_commands_as_the_real_one_did() {
    use crate::agi_support::fake::{run_channel, FakeChannel, Registry};
    use tokio::io::AsyncBufReadExt;
    for name in [
        "busy",
        "rejected",
        "answer-speak-hangup",
        "progress-wait-timeout",
        "bad-command",
    ] {
        let lines = read(name);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut ch = FakeChannel::ringing("1796449610.0");
        // Longer than the 2 s absolute timeout of progress-wait-timeout, which must cut
        // its Wait short.
        ch.app_time = Duration::from_secs(3);
        let fake = tokio::spawn(run_channel(addr, ch, Registry::default()));
        let (stream, _) = listener.accept().await.unwrap();
        let (r, mut w) = stream.into_split();
        let mut from_fake = tokio::io::BufReader::new(r).lines();
        // Its environment, up to the empty line.
        while let Some(l) = from_fake.next_line().await.unwrap() {
            if l.is_empty() {
                break;
            }
        }
        let after_env = lines
            .iter()
            .skip_while(|l| **l != Line::S(String::new()))
            .skip(1);
        let mut expected: Vec<String> = Vec::new();
        let mut got: Vec<String> = Vec::new();
        let mut pending = 0usize;
        for line in after_env {
            match line {
                Line::S(s) => {
                    expected.push(s.clone());
                    pending += 1;
                }
                Line::C(_) | Line::Close => {
                    for _ in 0..pending {
                        let l =
                            tokio::time::timeout(Duration::from_secs(15), from_fake.next_line())
                                .await
                                .unwrap_or_else(|_| panic!("{name}: the fake said nothing"))
                                .unwrap()
                                .unwrap_or_default();
                        got.push(l);
                    }
                    pending = 0;
                    match line {
                        Line::C(c) => w.write_all(format!("{c}\n").as_bytes()).await.unwrap(),
                        _ => w.shutdown().await.unwrap(),
                    }
                }
            }
        }
        assert_eq!(got, expected, "{name}");
        let log = fake.await.unwrap();
        assert!(log.closed_after_hangup, "{name}");
    }
}

/// The Dial captures that ran the shipped dialplan's routines were sent by hand; the
/// driver's plan for the same Dial sends every one of those commands (with the caller's
/// channel name) and the same `Dial()` — plus what the capture left at its defaults.
#[test]
fn the_dial_routine_captures_are_what_the_driver_sends() {
    use voxbridge::call::asterisk::render::{dial_plan, DialSetup, Plan};
    use voxbridge::call::channel_op::{Bridge, BridgeLeg, Confirm, MediaItem};
    use voxbridge::document::model::DialTarget;
    let leg = |n: &str| BridgeLeg {
        uuid: format!("u-{n}"),
        target: DialTarget::Number(n.into()),
        send_digits: None,
        send_on_preanswer: false,
        sip_headers: Vec::new(),
    };
    let bridge = |legs: Vec<BridgeLeg>, ring: u64, limit: u64, confirm: Option<Confirm>| Bridge {
        legs,
        ring_timeout: Duration::from_secs(ring),
        time_limit: Duration::from_secs(limit),
        hangup_on_star: false,
        caller_id: None,
        caller_name: None,
        sip_headers: Vec::new(),
        callee_digit_patterns: Vec::new(),
        caller_digits_watched: false,
        confirm,
        music: None,
    };
    let mut four = leg("7004");
    four.sip_headers = vec![("Leg".into(), "four, (ringing)".into())];
    four.send_digits = Some("4".into());
    let mut eight = leg("7008");
    eight.sip_headers = vec![
        ("Leg".into(), "two".into()),
        ("Only".into(), "${x}$[1+1]".into()),
    ];
    eight.send_digits = Some("55".into());
    let key = |k: char, media: Vec<MediaItem>| {
        Some(Confirm {
            media,
            key: Some(k),
        })
    };
    let beep = MediaItem::Play {
        url: "file://beep".into(),
    };
    let cases = [
        ("dial-legs-differ", bridge(vec![four, eight], 10, 3, None)),
        (
            "dial-confirm-key",
            bridge(vec![leg("7007")], 8, 4, key('1', vec![beep.clone()])),
        ),
        (
            "dial-confirm-unpressed",
            bridge(
                vec![leg("7007")],
                5,
                4,
                key(
                    '9',
                    vec![
                        beep,
                        MediaItem::Silence {
                            duration: Duration::from_secs(1),
                        },
                    ],
                ),
            ),
        ),
    ];
    for (name, bridge) in cases {
        let lines = read(name);
        let channel = crate::agi_support::env_value(&lines, "agi_channel").expect("agi_channel");
        let sent: Vec<String> = match dial_plan(
            &bridge,
            &DialSetup {
                number_template: "SIP/{number}@self",
                clear_headers: false,
                caller_channel: &channel,
                fetched_media: Default::default(),
            },
        ) {
            Plan::Commands(c) => c.iter().map(|c| c.line().to_string()).collect(),
            Plan::Refuse(why) => panic!("{name}: refused: {why}"),
        };
        let captured: Vec<&String> = lines
            .iter()
            .filter_map(|l| match l {
                Line::C(c) => Some(c),
                _ => None,
            })
            .take_while(|c| !c.starts_with("GET VARIABLE"))
            .collect();
        let dial = captured.last().unwrap();
        assert!(dial.starts_with("EXEC Dial"), "{name}: {dial}");
        assert_eq!(sent.last(), Some(*dial), "{name}");
        for c in &captured {
            assert!(
                sent.contains(c),
                "{name}: the driver does not send {c}: {sent:#?}"
            );
        }
    }
}

/// Gather on Asterisk rests on what the bundle did in the two Gather captures: a prompt
/// with interrupt keys and `WAIT FOR DIGIT` reply with the digit pressed (its ASCII code),
/// `result=0` when none came — and a digit pressed between commands is lost.
#[test]
fn gather_transcripts_replies_carry_the_digit_pressed_and_the_driver_sends_their_commands() {
    use voxbridge::call::asterisk::render::{digit, plan_prompt, Plan};
    use voxbridge::call::channel_op::ChannelOp;
    let reply = |s: &str| match Message::parse(s) {
        Message::Reply(r) => r,
        other => panic!("{other:?}"),
    };
    let digits_of = |name: &str| -> Vec<(String, Option<char>)> {
        let lines = read(name);
        let mut out = Vec::new();
        let mut last_cmd = String::new();
        for l in lines {
            match l {
                Line::C(c) => last_cmd = c,
                Line::S(s) if s.starts_with("200 ") => {
                    out.push((last_cmd.clone(), digit(&reply(&s))))
                }
                _ => {}
            }
        }
        out
    };
    let flite = digits_of("gather-flite-barge-in");
    assert!(flite[0].0.starts_with("EXEC Flite") && flite[0].0.ends_with(",0123456789*#\""));
    assert_eq!(
        flite[0].1,
        Some('5'),
        "Flite stopped at the 5 and returned it"
    );
    assert_eq!(flite[1], ("WAIT FOR DIGIT 5000".into(), Some('7')));
    assert_eq!(flite[2], ("WAIT FOR DIGIT 500".into(), None));
    assert_eq!(
        flite[3],
        ("WAIT FOR DIGIT 1000".into(), None),
        "the 9 pressed between two commands is never reported"
    );
    let stream = digits_of("gather-stream-file");
    assert_eq!(stream[0].1, Some('#'));
    assert!(stream[0].0.starts_with("STREAM FILE /tmp/"));
    assert_eq!(stream[1].1, None, "played to its end");
    // The driver's commands have the captured shape (argv for argv, keys aside).
    let speak = ChannelOp::Speak {
        voice: voxbridge::document::model::Voice::Woman,
        language: "en-US".into(),
        text: "Press one.".into(),
    };
    let Plan::Commands(cmds) = plan_prompt(&speak) else {
        panic!("Speak in a Gather is planned");
    };
    let argv = agi_argv(cmds[0].line());
    let captured = agi_argv(&flite[0].0);
    assert_eq!(argv[..2], captured[..2]);
    assert_eq!(argv[2], "Press one.,0123456789*#ABCD");
    let play = ChannelOp::Play {
        url: "file:///tmp/voxbridge-agi-capture-tone5s.wav".into(),
    };
    let Plan::Commands(cmds) = plan_prompt(&play) else {
        panic!("Play in a Gather is planned");
    };
    let argv = agi_argv(cmds[0].line());
    assert_eq!(argv[..3], agi_argv(&stream[0].0)[..3]);
}
