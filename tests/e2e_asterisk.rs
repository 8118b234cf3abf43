//! The Asterisk driver end to end without the switch (SPEC §16): the real `voxbridge serve`
//! with `[asterisk] enabled`, the local application, and a fake Asterisk channel that
//! answers FastAGI commands as the bundled Asterisk does in `tests/fixtures/agi/` (and a
//! fake ARI). The same rules run against the real Asterisk in `tests/live_asterisk.rs`.

use crate::agi_support::fake::{fake_ami, fake_ari, run_channel, FakeChannel, Registry};
use crate::e2e_support::{xml, ServerOptions, ACCOUNT, TOKEN};
use std::net::SocketAddr;
use std::time::Duration;

/// The FastAGI listener's address, from the server's log line.
fn agi_addr(log: &str) -> SocketAddr {
    let at = log
        .find("FastAGI listener for Asterisk")
        .map(|i| &log[i..])
        .and_then(|l| l.split("agi=").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no FastAGI listener line in the log:\n{log}"));
    at.parse().expect("an address")
}

async fn start(
    ari_url: &str,
) -> (
    crate::e2e_support::App,
    crate::e2e_support::Server,
    SocketAddr,
) {
    let app = crate::e2e_support::App::start().await;
    let (server, agi) = start_for(&app, ari_url, None).await;
    (app, server, agi)
}

async fn start_for(
    app: &crate::e2e_support::App,
    ari_url: &str,
    db_dir: Option<std::path::PathBuf>,
) -> (crate::e2e_support::Server, SocketAddr) {
    start_with(app, ari_url, db_dir, "").await
}

async fn start_with(
    app: &crate::e2e_support::App,
    ari_url: &str,
    db_dir: Option<std::path::PathBuf>,
    asterisk_keys: &str,
) -> (crate::e2e_support::Server, SocketAddr) {
    let extra = format!(
        "[asterisk]\nenabled = true\nagi_listen = \"127.0.0.1:0\"\nari_url = \"{ari_url}\"\nari_user = \"u\"\nari_password = \"p\"\n{asterisk_keys}"
    );
    let server = crate::e2e_support::Server::start(
        app,
        ServerOptions {
            extra_toml: extra,
            db_dir,
            ..ServerOptions::default()
        },
    )
    .await;
    let mut log = server.log_text();
    for _ in 0..100 {
        if log.contains("FastAGI listener for Asterisk") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        log = server.log_text();
    }
    let agi = agi_addr(&log);
    (server, agi)
}

fn channel(id: &str, answer_url: &str) -> FakeChannel {
    let mut ch = FakeChannel::ringing(id);
    ch.variables
        .insert("voxbridge_answer_url".into(), answer_url.to_string());
    ch
}

fn execs(commands: &[String]) -> Vec<String> {
    commands
        .iter()
        .filter(|c| c.starts_with("EXEC") || c.as_str() == "ANSWER")
        .cloned()
        .collect()
}

#[tokio::test]
async fn asterisk_busy_on_a_ringing_call_is_hangup_17_never_answered_and_the_channel_released() {
    let (app, server, agi) = start("").await;
    let url = app.xml("/busy", &xml(r#"<Hangup reason="busy"/>"#));
    let log = run_channel(agi, channel("1796449610.1", &url), Registry::default()).await;
    assert_eq!(execs(&log.commands), vec![r#"EXEC Hangup "17""#]);
    assert!(
        log.closed_after_hangup,
        "the connection is closed after HANGUP: {log:?}"
    );
    let cb = app.hangup_callback("1796449610.1").await;
    assert_eq!(cb.must("HangupCause"), "USER_BUSY");
    assert_eq!(cb.must("HangupCauseCode"), "17");
    assert_eq!(cb.must("HangupSource"), "Answer XML");
    assert_eq!(cb.must("SIPStatus"), "486");
    assert_eq!(cb.must("BillDuration"), "0");
    cb.verify_signature(app.port, TOKEN).unwrap();
    let cdr = server.cdr("1796449610.1").await;
    assert!(!cdr.answered);
}

#[tokio::test]
async fn asterisk_first_hangup_is_cause_21_recorded_rejected_with_chan_sips_403() {
    let (app, _server, agi) = start("").await;
    let url = app.xml("/first", &xml("<Hangup/><Speak>never</Speak>"));
    let log = run_channel(agi, channel("1796449610.2", &url), Registry::default()).await;
    assert_eq!(execs(&log.commands), vec![r#"EXEC Hangup "21""#]);
    let cb = app.hangup_callback("1796449610.2").await;
    assert_eq!(cb.must("HangupCause"), "CALL_REJECTED");
    assert_eq!(cb.must("HangupCauseName"), "Rejected");
    assert_eq!(cb.must("HangupReason"), "rejected");
    assert_eq!(cb.must("SIPStatus"), "403");
}

#[tokio::test]
async fn asterisk_speak_answers_first_then_flite_then_busy_bye() {
    let (app, server, agi) = start("").await;
    let url = app.xml(
        "/speak",
        &xml(r#"<Speak>Hello, "world"</Speak><Hangup reason="busy"/>"#),
    );
    let log = run_channel(agi, channel("1796449610.3", &url), Registry::default()).await;
    assert_eq!(
        execs(&log.commands),
        vec![
            "ANSWER".to_string(),
            r#"EXEC Flite "Hello\\, \\\"world\\\"""#.to_string(),
            r#"EXEC Hangup "17""#.to_string()
        ]
    );
    let cb = app.hangup_callback("1796449610.3").await;
    assert_eq!(cb.must("HangupCause"), "USER_BUSY");
    assert_eq!(cb.must("SIPStatus"), "200");
    assert!(server.cdr("1796449610.3").await.answered);
}

#[tokio::test]
async fn asterisk_caller_hangs_up_mid_speak_source_caller_and_nothing_after_runs() {
    let (app, _server, agi) = start("").await;
    let next = app.xml("/next", &xml(r#"<Hangup reason="busy"/>"#));
    let url = app.xml(
        "/long",
        &xml(&format!(
            r#"<Speak loop="0">a long text</Speak><Redirect>{next}</Redirect>"#
        )),
    );
    let mut ch = channel("1796449610.4", &url);
    ch.app_time = Duration::from_secs(30);
    ch.caller_hangs_up_after = Some(Duration::from_millis(300));
    let log = run_channel(agi, ch, Registry::default()).await;
    assert_eq!(
        execs(&log.commands),
        vec![
            "ANSWER".to_string(),
            r#"EXEC Flite "a long text""#.to_string()
        ],
        "nothing is sent after the interrupted Speak"
    );
    assert!(log.closed_after_hangup);
    let cb = app.hangup_callback("1796449610.4").await;
    assert_eq!(cb.must("HangupSource"), "Caller");
    assert_eq!(cb.must("HangupCause"), "NORMAL_CLEARING");
    assert_eq!(cb.must("HangupCauseName"), "Caller Hangup");
    assert!(
        app.hits_on("/next").is_empty(),
        "the Redirect is never fetched"
    );
}

#[tokio::test]
async fn asterisk_rest_delete_mid_speak_goes_through_ari_source_api_cause_16() {
    let registry = Registry::default();
    let (ari_url, _ari, ari_seen) = fake_ari(registry.clone()).await;
    let (app, server, agi) = start(&ari_url).await;
    let url = app.xml("/long", &xml(r#"<Speak loop="0">a long text</Speak>"#));
    let mut ch = channel("1796449610.5", &url);
    ch.app_time = Duration::from_secs(30);
    let call = tokio::spawn(run_channel(agi, ch, registry));
    let client = voxbridge::http_client::builder().build().unwrap();
    let call_url = format!(
        "http://{}/api/v1/Account/{ACCOUNT}/Call/1796449610.5/",
        server.api
    );
    // Wait until the call is live and the Speak runs, then hang it up over REST.
    let mut status = 0;
    for _ in 0..250 {
        let r = client
            .delete(&call_url)
            .basic_auth(ACCOUNT, Some(TOKEN))
            .send()
            .await
            .unwrap();
        status = r.status().as_u16();
        if status == 204 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 204);
    let log = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call ends")
        .unwrap();
    assert!(log.closed_after_hangup);
    assert_eq!(
        ari_seen.lock().unwrap().clone(),
        vec!["DELETE 1796449610.5 reason_code=16".to_string()]
    );
    let cb = app.hangup_callback("1796449610.5").await;
    assert_eq!(cb.must("HangupSource"), "API");
    assert_eq!(cb.must("HangupCause"), "NORMAL_CLEARING");
    assert_eq!(cb.must("HangupCauseCode"), "16");
    let again = client
        .delete(&call_url)
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 404);
}

#[tokio::test]
async fn asterisk_a_socket_closed_before_hangup_is_closed_out_unknown_with_its_callback() {
    let (app, _server, agi) = start("").await;
    let url = app.xml("/long", &xml(r#"<Speak loop="0">a long text</Speak>"#));
    // A peer that takes the call and vanishes mid-command.
    let mut s = tokio::net::TcpStream::connect(agi).await.unwrap();
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    s.write_all(
        b"agi_uniqueid: 1796449610.6\nagi_channel: SIP/x-6\nagi_callerid: 1\nagi_extension: 7001\n\n",
    )
    .await
    .unwrap();
    let (r, mut w) = s.into_split();
    let mut lines = tokio::io::BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains("voxbridge_answer_url") {
            w.write_all(format!("200 result=1 ({url})\n").as_bytes())
                .await
                .unwrap();
        } else if line.starts_with("EXEC") {
            break; // gone mid-command
        } else if line.starts_with("GET FULL") {
            w.write_all(b"200 result=1 (Ring)\n").await.unwrap();
        } else {
            w.write_all(b"200 result=0\n").await.unwrap();
        }
    }
    drop(w);
    drop(lines);
    let cb = app.hangup_callback("1796449610.6").await;
    assert_eq!(cb.must("HangupSource"), "Unknown");
}

#[tokio::test]
async fn asterisk_schedule_is_an_absolute_timeout_in_the_switch_and_fires_with_its_reason() {
    let (app, server, agi) = start("").await;
    let url = app.xml(
        "/sched",
        &xml(r#"<Hangup schedule="1" reason="busy"/><Wait length="30"/><Hangup/>"#),
    );
    let mut ch = channel("1796449610.7", &url);
    ch.app_time = Duration::from_secs(30);
    let log = run_channel(agi, ch, Registry::default()).await;
    assert_eq!(
        log.commands
            .iter()
            .filter(|c| c.starts_with("SET") || c.starts_with("EXEC"))
            .cloned()
            .collect::<Vec<_>>(),
        vec![
            r#"SET VARIABLE voxbridge_scheduled_cause "17""#.to_string(),
            r#"SET VARIABLE TIMEOUT(absolute) "1""#.to_string(),
            r#"EXEC Wait "30.000""#.to_string(),
        ],
        "armed inside the switch, never answered, the Hangup after the Wait never sent"
    );
    assert!(log.closed_after_hangup);
    let cb = app.hangup_callback("1796449610.7").await;
    assert_eq!(cb.must("HangupCause"), "USER_BUSY");
    assert_eq!(cb.must("HangupSource"), "Answer XML");
    assert_eq!(cb.must("HangupReason"), "busy");
    assert_eq!(cb.must("SIPStatus"), "486");
    assert!(!server.cdr("1796449610.7").await.answered);
}

#[tokio::test]
async fn asterisk_redirect_cancels_the_previous_documents_schedule() {
    let (app, _server, agi) = start("").await;
    let next = app.xml("/next", &xml(r#"<Hangup reason="busy"/>"#));
    let url = app.xml(
        "/first",
        &xml(&format!(
            r#"<Hangup schedule="5"/><Redirect>{next}</Redirect>"#
        )),
    );
    let log = run_channel(agi, channel("1796449610.8", &url), Registry::default()).await;
    let sets: Vec<_> = log
        .commands
        .iter()
        .filter(|c| c.contains("TIMEOUT(absolute)"))
        .cloned()
        .collect();
    assert_eq!(
        sets,
        vec![
            r#"SET VARIABLE TIMEOUT(absolute) "5""#.to_string(),
            r#"SET VARIABLE TIMEOUT(absolute) "0""#.to_string()
        ]
    );
    let cb = app.hangup_callback("1796449610.8").await;
    assert_eq!(cb.must("HangupCause"), "USER_BUSY");
    assert_eq!(cb.must("SIPStatus"), "486");
}

#[tokio::test]
async fn asterisk_calls_left_live_by_a_killed_run_are_closed_out_at_the_next_start_after_asking_ari(
) {
    let registry = Registry::default();
    let (ari_url, _ari, ari_seen) = fake_ari(registry.clone()).await;
    let app = crate::e2e_support::App::start().await;
    let db_dir = tempfile::tempdir().unwrap();
    let (server, agi) = start_for(&app, &ari_url, Some(db_dir.path().to_path_buf())).await;
    let url = app.xml("/long", &xml(r#"<Speak loop="0">a long text</Speak>"#));
    let mut ch = channel("1796449610.9", &url);
    ch.app_time = Duration::from_secs(60);
    let call = tokio::spawn(run_channel(agi, ch, registry.clone()));
    // The call is live (its fetch came) and Speaking; then the process dies.
    app.wait_for(Duration::from_secs(10), "the answer fetch", |hits| {
        hits.iter().find(|h| h.path == "/long").cloned()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(server);
    // The socket died with the process: the fake channel ends (as AGI() would return).
    let _ = tokio::time::timeout(Duration::from_secs(10), call).await;
    let (_server2, _) = start_for(&app, &ari_url, Some(db_dir.path().to_path_buf())).await;
    let cb = app.hangup_callback("1796449610.9").await;
    assert_eq!(cb.must("HangupSource"), "Unknown");
    assert!(
        ari_seen
            .lock()
            .unwrap()
            .contains(&"GET 1796449610.9".to_string()),
        "the next start asked Asterisk over ARI: {:?}",
        ari_seen.lock().unwrap()
    );
}

#[tokio::test]
async fn asterisk_a_huge_line_mid_call_closes_that_connection_and_the_call_is_recorded_and_hung_up_over_ari(
) {
    let registry = Registry::default();
    let (ari_url, _ari, ari_seen) = fake_ari(registry.clone()).await;
    let (app, _server, agi) = start(&ari_url).await;
    let url = app.xml("/long", &xml(r#"<Speak loop="0">a long text</Speak>"#));
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let s = tokio::net::TcpStream::connect(agi).await.unwrap();
    let (r, mut w) = s.into_split();
    w.write_all(b"agi_uniqueid: 1796449610.10\nagi_channel: SIP/x-10\nagi_callerid: 1\nagi_extension: 7001\n\n")
        .await
        .unwrap();
    let mut lines = tokio::io::BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains("voxbridge_answer_url") {
            w.write_all(format!("200 result=1 ({url})\n").as_bytes())
                .await
                .unwrap();
        } else if line.starts_with("EXEC") {
            // A reply far over the line limit, never ended.
            let huge = vec![b'x'; voxbridge::agi::MAX_LINE + 100];
            let _ = w.write_all(&huge).await;
        } else if line.starts_with("GET FULL") {
            w.write_all(b"200 result=1 (Ring)\n").await.unwrap();
        } else {
            w.write_all(b"200 result=0\n").await.unwrap();
        }
    }
    // voxbridge closed the connection (the loop above ended on EOF).
    let cb = app.hangup_callback("1796449610.10").await;
    assert_eq!(cb.must("HangupSource"), "Unknown");
    // The channel is not left up: voxbridge asked the switch to hang it up.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !ari_seen
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.starts_with("DELETE 1796449610.10"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no ARI hang-up: {:?}",
            ari_seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Another call right after is served normally.
    let url = app.xml("/busy", &xml(r#"<Hangup reason="busy"/>"#));
    let log = run_channel(agi, channel("1796449610.11", &url), registry).await;
    assert!(log.closed_after_hangup);
    assert_eq!(
        app.hangup_callback("1796449610.11").await.must("SIPStatus"),
        "486"
    );
}

#[tokio::test]
async fn asterisk_play_of_http_media_is_fetched_once_into_the_cache_and_played_from_the_file() {
    let (app, _server, agi) = start("").await;
    app.answer(
        "/media/hello.wav",
        crate::e2e_support::Answer::Doc {
            content_type: "audio/wav",
            body: "RIFF-not-really-a-wav".into(),
        },
    );
    let media = app.url("/media/hello.wav");
    let url = app.xml(
        "/play",
        &xml(&format!(r#"<Play>{media}</Play><Hangup reason="busy"/>"#)),
    );
    let mut played = Vec::new();
    for id in ["1796449610.12", "1796449610.13"] {
        let log = run_channel(agi, channel(id, &url), Registry::default()).await;
        let playback = log
            .commands
            .iter()
            .find(|c| c.starts_with("EXEC Playback"))
            .cloned()
            .unwrap_or_else(|| panic!("no Playback: {:?}", log.commands));
        played.push(playback);
        assert_eq!(
            app.hangup_callback(id).await.must("HangupCause"),
            "USER_BUSY"
        );
    }
    assert_eq!(played[0], played[1], "both calls play the same cached file");
    let stem = crate::agi_support::agi_argv(&played[0])[2].clone();
    let on_disk = std::fs::read_to_string(format!("{stem}.wav")).expect("the cached file");
    assert_eq!(on_disk, "RIFF-not-really-a-wav");
    assert_eq!(app.hits_on("/media/hello.wav").len(), 1, "fetched once");
}

/// The commands that play or listen in a Gather (and its flush).
fn gather_commands(commands: &[String]) -> Vec<String> {
    commands
        .iter()
        .filter(|c| {
            c.starts_with("EXEC Flite")
                || c.starts_with("STREAM FILE")
                || c.starts_with("WAIT FOR DIGIT")
                || c.as_str() == "NOOP"
        })
        .map(|c| {
            // WAIT FOR DIGIT's length depends on when it was sent: keep the command only.
            if c.starts_with("WAIT FOR DIGIT") {
                "WAIT FOR DIGIT".to_string()
            } else {
                c.clone()
            }
        })
        .collect()
}

#[tokio::test]
async fn asterisk_gather_a_digit_stops_the_spoken_prompt_the_rest_are_heard_listening_and_posted() {
    let (app, server, agi) = start("").await;
    let menu = app.xml("/menu", &xml("<Hangup/>"));
    let url = app.xml(
        "/gather",
        &xml(&format!(
            "<Gather action=\"{menu}\" numDigits=\"3\" digitEndTimeout=\"5\">\
             <Speak>Press three digits.</Speak><Speak>Never heard.</Speak></Gather>\
             <Speak>Not reached.</Speak>"
        )),
    );
    let mut ch = channel("1796449610.20", &url);
    ch.app_time = Duration::from_secs(10);
    ch.dtmf = vec![
        (Duration::from_millis(1000), '1'),
        (Duration::from_millis(1600), '2'),
        (Duration::from_millis(2200), '3'),
    ];
    let log = run_channel(agi, ch, Registry::default()).await;
    assert_eq!(
        gather_commands(&log.commands),
        vec![
            "NOOP".to_string(),
            r#"EXEC Flite "Press three digits.,0123456789*#ABCD""#.to_string(),
            "WAIT FOR DIGIT".to_string(),
            "WAIT FOR DIGIT".to_string(),
        ],
        "the first digit stops the prompt, the second prompt is skipped, the rest are awaited: {:?}",
        log.commands
    );
    let hit = &app.hits_on("/menu")[0];
    assert_eq!(hit.must("Event"), "Gather");
    assert_eq!(hit.must("Digits"), "123");
    assert_eq!(hit.must("InputType"), "dtmf");
    assert_eq!(hit.must("CallUUID"), "1796449610.20");
    hit.verify_signature(app.port, TOKEN).unwrap();
    let cdr = server.cdr("1796449610.20").await;
    assert!(cdr.answered);
    assert!(
        cdr.notes
            .iter()
            .any(|n| n == "Gather ended by numDigits: Digits=123"),
        "{:?}",
        cdr.notes
    );
}

#[tokio::test]
async fn asterisk_gather_with_no_input_goes_on_to_the_next_element_without_a_request() {
    let (app, server, agi) = start("").await;
    let action = app.xml("/never", &xml("<Hangup/>"));
    let url = app.xml(
        "/gather",
        &xml(&format!(
            "<Gather action=\"{action}\" executionTimeout=\"5\"><Play>file:///tmp/menu.wav</Play></Gather>\
             <Hangup reason=\"busy\"/>"
        )),
    );
    let mut ch = channel("1796449610.21", &url);
    ch.app_time = Duration::from_millis(300);
    let log = run_channel(agi, ch, Registry::default()).await;
    assert_eq!(
        gather_commands(&log.commands),
        vec![
            "NOOP".to_string(),
            r#"STREAM FILE "/tmp/menu" "0123456789*#ABCD""#.to_string(),
            "WAIT FOR DIGIT".to_string(),
        ],
        "{:?}",
        log.commands
    );
    let waited: u64 = log
        .commands
        .iter()
        .find_map(|c| c.strip_prefix("WAIT FOR DIGIT "))
        .and_then(|ms| ms.parse().ok())
        .expect("a listen");
    assert!(
        (4500..=5000).contains(&waited),
        "listens until executionTimeout (5 s): {waited} ms"
    );
    assert!(log.commands.iter().any(|c| c == r#"EXEC Hangup "17""#));
    assert!(app.hits_on("/never").is_empty(), "no input: no request");
    let cdr = server.cdr("1796449610.21").await;
    assert!(
        cdr.notes
            .iter()
            .any(|n| n == "Gather ended by executionTimeout: no input"),
        "{:?}",
        cdr.notes
    );
}

#[tokio::test]
async fn asterisk_gather_finish_on_key_during_a_wait_prompt_ends_the_input() {
    let (app, _server, agi) = start("").await;
    let done = app.xml("/done", &xml("<Hangup/>"));
    let url = app.xml(
        "/gather",
        &xml(&format!(
            "<Gather action=\"{done}\" finishOnKey=\"#\" digitEndTimeout=\"5\"><Wait length=\"5\"/></Gather>"
        )),
    );
    let mut ch = channel("1796449610.22", &url);
    ch.dtmf = vec![
        (Duration::from_millis(800), '4'),
        (Duration::from_millis(1400), '#'),
    ];
    let log = run_channel(agi, ch, Registry::default()).await;
    assert_eq!(
        log.commands
            .iter()
            .filter(|c| c.starts_with("WAIT FOR DIGIT 5000"))
            .count(),
        1,
        "the Wait is a WAIT FOR DIGIT: {:?}",
        log.commands
    );
    let hit = &app.hits_on("/done")[0];
    assert_eq!(hit.must("Digits"), "4", "the finish key is not a digit");
}

/// Flite safety: the bundled app_flite crashes Asterisk when two syntheses overlap, so
/// voxbridge runs one at a time per Asterisk (`tts_concurrency` = 1), in arrival order.
#[tokio::test]
async fn asterisk_flite_runs_one_at_a_time_across_calls_and_every_call_completes() {
    let (app, _server, agi) = start("").await;
    let url = app.xml(
        "/speak",
        &xml("<Speak>One.</Speak><Speak>Two.</Speak><Hangup/>"),
    );
    let meter = std::sync::Arc::new(crate::agi_support::fake::FliteMeter::default());
    let calls = (0..4).map(|i| {
        let mut ch = channel(&format!("1796449610.3{i}"), &url);
        ch.app_time = Duration::from_millis(150);
        ch.flite = Some(meter.clone());
        tokio::spawn(run_channel(agi, ch, Registry::default()))
    });
    for call in calls.collect::<Vec<_>>() {
        call.await.unwrap();
    }
    assert_eq!(meter.runs(), 8, "every Speak of every call ran");
    assert_eq!(meter.max_overlap(), 1, "never two Flite syntheses at once");
    for i in 0..4 {
        let cb = app.hangup_callback(&format!("1796449610.3{i}")).await;
        assert_eq!(cb.must("HangupCauseName"), "Normal Hangup", "{cb:?}");
    }
}

#[tokio::test]
async fn asterisk_tts_concurrency_lets_that_many_flite_runs_overlap_and_no_more() {
    let app = crate::e2e_support::App::start().await;
    let (_server, agi) = start_with(&app, "", None, "tts_concurrency = 2\n").await;
    let url = app.xml(
        "/speak",
        &xml("<Speak>One.</Speak><Speak>Two.</Speak><Hangup/>"),
    );
    let meter = std::sync::Arc::new(crate::agi_support::fake::FliteMeter::default());
    let calls = (0..4).map(|i| {
        let mut ch = channel(&format!("1796449610.4{i}"), &url);
        ch.app_time = Duration::from_secs(1);
        ch.flite = Some(meter.clone());
        tokio::spawn(run_channel(agi, ch, Registry::default()))
    });
    for call in calls.collect::<Vec<_>>() {
        call.await.unwrap();
    }
    assert_eq!(meter.runs(), 8);
    assert_eq!(meter.max_overlap(), 2, "two at once, never three");
}

#[tokio::test]
async fn asterisk_a_call_that_hangs_up_while_waiting_for_flite_leaves_the_queue_unspoken() {
    let (app, _server, agi) = start("").await;
    let long = app.xml("/long", &xml("<Speak>A long text.</Speak><Hangup/>"));
    let short = app.xml("/short", &xml("<Speak>Never spoken.</Speak><Hangup/>"));
    let meter = std::sync::Arc::new(crate::agi_support::fake::FliteMeter::default());
    let mut a = channel("1796449610.50", &long);
    a.app_time = Duration::from_secs(4);
    a.flite = Some(meter.clone());
    let a = tokio::spawn(run_channel(agi, a, Registry::default()));
    // B comes once A speaks, waits its turn, and its caller hangs up meanwhile.
    app.wait_until(Duration::from_secs(10), "A fetched", |h| {
        h.iter().any(|h| h.path == "/long")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut b = channel("1796449610.51", &short);
    b.caller_hangs_up_after = Some(Duration::from_millis(700));
    b.flite = Some(meter.clone());
    let b_log = run_channel(agi, b, Registry::default()).await;
    assert!(
        !b_log.commands.iter().any(|c| c.starts_with("EXEC Flite")),
        "B left the queue without speaking: {:?}",
        b_log.commands
    );
    assert!(b_log.closed_after_hangup);
    let cb = app.hangup_callback("1796449610.51").await;
    assert_eq!(cb.must("HangupSource"), "Caller");
    assert!(
        !a.is_finished(),
        "B was closed out while A still held the turn"
    );
    a.await.unwrap();
    assert_eq!(meter.runs(), 1);
}

/// A Dial on Asterisk is `Dial()` on the caller's channel; its end is read from the
/// channel's variables (`tests/fixtures/agi/dial-*.txt`).
#[tokio::test]
async fn asterisk_dial_answered_is_one_dial_app_then_the_action_callbacks_and_leg_cdr_follow() {
    let (app, server, agi) = start("").await;
    let events = app.url("/events");
    let next = app.xml("/after", &xml("<Hangup/>"));
    let url = app.xml(
        "/dial",
        &xml(&format!(
            "<Dial action=\"{next}\" callbackUrl=\"{events}\" callerId=\"15550001111\" timeLimit=\"60\" timeout=\"20\">\
             <Number>7004</Number><Number>7002</Number></Dial>"
        )),
    );
    let mut ch = channel("1796449610.60", &url);
    ch.app_time = Duration::from_millis(300);
    ch.dial_result = vec![
        ("DIALSTATUS", "ANSWER"),
        ("HANGUPCAUSE", "16"),
        ("DIALEDPEERNUMBER", "7002"),
        ("ANSWEREDTIME", "2"),
    ];
    let log = run_channel(agi, ch, Registry::default()).await;
    assert!(
        log.commands
            .iter()
            .any(|c| c == r#"EXEC Dial "SIP/7004&SIP/7002,20,gL(60000)""#),
        "{:?}",
        log.commands
    );
    assert!(
        log.commands
            .iter()
            .any(|c| c == r#"SET VARIABLE CALLERID(num) "15550001111""#),
        "{:?}",
        log.commands
    );
    assert!(
        !log.commands.iter().any(|c| c == "ANSWER"),
        "a Dial never answers itself"
    );
    let action = &app.hits_on("/after")[0];
    assert_eq!(action.must("DialStatus"), "completed");
    let b_leg = action.must("DialBLegUUID");
    assert!(!b_leg.is_empty());
    let events = app
        .wait_for(
            Duration::from_secs(10),
            "the Dial events",
            |hits: &[crate::common::app::Hit]| {
                let mut e: Vec<_> = hits
                    .iter()
                    .filter(|h| h.path == "/events")
                    .cloned()
                    .collect();
                (e.len() >= 4).then(|| {
                    e.sort_by_key(|h| h.must("DeliveryID"));
                    e
                })
            },
        )
        .await;
    let of_winner: Vec<String> = events
        .iter()
        .filter(|h| h.must("DialBLegUUID") == b_leg)
        .map(|h| h.must("Event"))
        .collect();
    assert_eq!(of_winner, ["DialAnswer", "DialConnected", "DialHangup"]);
    let winner_hangup = events
        .iter()
        .find(|h| h.must("DialBLegUUID") == b_leg && h.must("Event") == "DialHangup")
        .unwrap();
    assert_eq!(winner_hangup.must("DialBLegTo"), "7002");
    assert_eq!(winner_hangup.must("DialBLegPosition"), "2");
    let loser = events
        .iter()
        .find(|h| h.must("DialBLegUUID") != b_leg)
        .expect("the other leg's DialHangup");
    assert_eq!(loser.must("DialBLegHangupCause"), "LOSE_RACE");
    let leg = server.cdr(&b_leg).await;
    assert!(leg.answered);
    let caller = server.cdr("1796449610.60").await;
    assert!(caller.answered, "the bridge answered the caller");
}

#[tokio::test]
async fn asterisk_dial_busy_leaves_the_caller_unanswered_and_the_action_says_busy() {
    let (app, server, agi) = start("").await;
    let next = app.xml("/after", &xml(r#"<Hangup reason="busy"/>"#));
    let url = app.xml(
        "/dial",
        &xml(&format!(
            "<Dial action=\"{next}\"><Number>7003</Number></Dial>"
        )),
    );
    let mut ch = channel("1796449610.61", &url);
    ch.dial_result = vec![("DIALSTATUS", "BUSY"), ("HANGUPCAUSE", "17")];
    let log = run_channel(agi, ch, Registry::default()).await;
    assert!(log.commands.iter().any(|c| c == r#"EXEC Hangup "17""#));
    let action = &app.hits_on("/after")[0];
    assert_eq!(action.must("DialStatus"), "busy");
    assert_eq!(action.param("DialBLegUUID").unwrap_or_default(), "");
    let cb = app.hangup_callback("1796449610.61").await;
    assert_eq!(cb.must("SIPStatus"), "486");
    assert!(!server.cdr("1796449610.61").await.answered);
}

/// Legs whose `sendDigits` and `sipHeaders` differ: they go in the caller's inherited
/// `voxbridge_dial_leg<i>_*` variables; the shipped dialplan's `b()` routine adds a leg's
/// headers to its INVITE and `U()` sends the answering leg's digits
/// (`dial-legs-differ.txt`); the routine's mark says it bridged.
#[tokio::test]
async fn asterisk_dial_legs_with_their_own_digits_and_headers_get_them_from_the_routines() {
    let (app, server, agi) = start("").await;
    let next = app.xml("/after", &xml("<Hangup/>"));
    let url = app.xml(
        "/dial",
        &xml(&format!(
            "<Dial action=\"{next}\" timeout=\"10\" timeLimit=\"30\"><Number sendDigits=\"12\">7002</Number>\
             <Number>7008</Number><User sipHeaders=\"Leg=a\">sip:7009@pbx.test</User></Dial>"
        )),
    );
    let mut ch = channel("1796449610.62", &url);
    ch.dial_result = vec![
        ("DIALSTATUS", "ANSWER"),
        ("HANGUPCAUSE", "16"),
        ("DIALEDPEERNUMBER", "7002"),
        ("ANSWEREDTIME", "2"),
        ("SHARED(voxbridge_dial)", "bridged"),
    ];
    let log = run_channel(agi, ch, Registry::default()).await;
    for want in [
        r#"SET VARIABLE SHARED(voxbridge_dial) """#,
        r#"SET VARIABLE __voxbridge_dial_legs "3""#,
        r#"SET VARIABLE __voxbridge_dial_leg1 "7002""#,
        r#"SET VARIABLE __voxbridge_dial_leg1_digits "12""#,
        r#"SET VARIABLE __voxbridge_dial_leg2 "7008""#,
        r#"SET VARIABLE __voxbridge_dial_leg2_digits """#,
        r#"SET VARIABLE __voxbridge_dial_leg2_headers "0""#,
        r#"SET VARIABLE __voxbridge_dial_leg3 "7009@pbx.test""#,
        r#"SET VARIABLE __voxbridge_dial_leg3_headers "1""#,
        r#"SET VARIABLE __voxbridge_dial_leg3_h1 "X-VH-Leg: a""#,
        r#"SET VARIABLE __voxbridge_dial_confirm """#,
        r#"EXEC Dial "SIP/7002&SIP/7008&SIP/7009@pbx.test,10,gb(voxbridge-dial-leg^s^1)U(voxbridge-dial-answered)L(30000)""#,
    ] {
        assert!(
            log.commands.iter().any(|c| c == want),
            "{want} in {:#?}",
            log.commands
        );
    }
    let action = &app.hits_on("/after")[0];
    assert_eq!(action.must("DialStatus"), "completed");
    let b_leg = action.must("DialBLegUUID");
    assert!(
        server.cdr(&b_leg).await.answered,
        "the leg the routine bridged"
    );
    assert!(server.cdr("1796449610.62").await.answered);
}

/// `confirmSound` + `confirmKey` on Asterisk: the confirm document is fetched, its media
/// and key go to the answering routine; a callee that never pressed the key leaves
/// DIALSTATUS ANSWER but the mark `unconfirmed` (`dial-confirm-unpressed.txt`): the Dial
/// is no-answer, the caller was never answered and the action's busy Hangup is a 486.
#[tokio::test]
async fn asterisk_dial_confirm_key_never_pressed_is_no_answer_and_the_caller_stays_unanswered() {
    let (app, server, agi) = start("").await;
    let next = app.xml("/after", &xml(r#"<Hangup reason="busy"/>"#));
    let confirm = app.xml(
        "/confirm",
        &xml("<Play>file:///srv/press-five.wav</Play><Wait length=\"1\"/>"),
    );
    let url = app.xml(
        "/dial",
        &xml(&format!(
            "<Dial action=\"{next}\" timeout=\"6\" confirmSound=\"{confirm}\" confirmKey=\"5\">\
             <Number>7007</Number></Dial>"
        )),
    );
    let mut ch = channel("1796449610.64", &url);
    ch.dial_result = vec![
        ("DIALSTATUS", "ANSWER"),
        ("HANGUPCAUSE", "16"),
        ("DIALEDPEERNUMBER", "7007"),
        ("ANSWEREDTIME", "0"),
        ("SHARED(voxbridge_dial)", "unconfirmed"),
    ];
    let log = run_channel(agi, ch, Registry::default()).await;
    for want in [
        r#"SET VARIABLE __voxbridge_dial_confirm "key""#,
        r#"SET VARIABLE __voxbridge_dial_confirm_key "5""#,
        r#"SET VARIABLE __voxbridge_dial_confirm_media "/srv/press-five&silence/1""#,
        r#"SET VARIABLE __voxbridge_dial_ring "6""#,
        r#"EXEC Dial "SIP/7007,6,gU(voxbridge-dial-answered)L(14400000)""#,
    ] {
        assert!(
            log.commands.iter().any(|c| c == want),
            "{want} in {:#?}",
            log.commands
        );
    }
    assert_eq!(
        app.hits_on("/confirm").len(),
        1,
        "the confirm document is fetched"
    );
    let action = &app.hits_on("/after")[0];
    assert_eq!(action.must("DialStatus"), "no-answer");
    let cb = app.hangup_callback("1796449610.64").await;
    assert_eq!(cb.must("SIPStatus"), "486");
    assert!(!server.cdr("1796449610.64").await.answered);
}

/// hangupOnStar, sendDigits and sipHeaders are Dial()'s own: `H`, `D()` and inherited
/// `__SIPADDHEADER<n>` variables; the next Dial clears the headers.
#[tokio::test]
async fn asterisk_dial_hangup_on_star_send_digits_and_sip_headers_are_dial_options() {
    let (app, _server, agi) = start("").await;
    let url = app.xml(
        "/dial",
        &xml(
            "<Dial hangupOnStar=\"true\" sipHeaders=\"Team=blue,Case=42\" timeout=\"10\" timeLimit=\"30\">\
             <Number sendDigits=\"ww12#\">7002</Number></Dial>\
             <Dial timeout=\"10\" timeLimit=\"30\"><Number sendDigits=\"9\" sendOnPreanswer=\"true\">7008</Number></Dial>",
        ),
    );
    let mut ch = channel("1796449610.63", &url);
    ch.dial_result = vec![("DIALSTATUS", "NOANSWER"), ("HANGUPCAUSE", "0")];
    let log = run_channel(agi, ch, Registry::default()).await;
    let sets_and_dials: Vec<&str> = log
        .commands
        .iter()
        .map(String::as_str)
        .filter(|c| c.contains("__SIPADDHEADER") || c.starts_with("EXEC Dial"))
        .collect();
    assert_eq!(sets_and_dials.len(), 22, "{sets_and_dials:?}");
    assert_eq!(
        sets_and_dials[0],
        r#"SET VARIABLE __SIPADDHEADER51 "X-VH-Team: blue""#
    );
    assert_eq!(
        sets_and_dials[1],
        r#"SET VARIABLE __SIPADDHEADER52 "X-VH-Case: 42""#
    );
    assert_eq!(sets_and_dials[2], r#"SET VARIABLE __SIPADDHEADER53 """#);
    assert_eq!(
        sets_and_dials[10],
        r#"EXEC Dial "SIP/7002,10,gHD(ww12#)L(30000)""#
    );
    assert_eq!(
        sets_and_dials[11], r#"SET VARIABLE __SIPADDHEADER51 """#,
        "the second Dial clears the first one's headers"
    );
    assert_eq!(
        sets_and_dials[21],
        r#"EXEC Dial "SIP/7008,10,gD(::9)L(30000)""#
    );
}

/// With ARI, the answer is seen while `Dial()` still runs (the caller's DIALEDPEERNUMBER,
/// `dial-ari-while-bridged.txt`): DialAnswer and DialConnected are written at the answer,
/// not when the bridge ends.
#[tokio::test]
async fn asterisk_dial_answer_seen_over_ari_sends_dial_answer_while_the_bridge_runs() {
    let registry = Registry::default();
    let (ari_url, _ari, _seen) = fake_ari(registry.clone()).await;
    let (app, _server, agi) = start(&ari_url).await;
    let events = app.url("/events");
    let url = app.xml(
        "/dial",
        &xml(&format!(
            "<Dial callbackUrl=\"{events}\"><Number>7002</Number></Dial><Hangup/>"
        )),
    );
    let mut ch = channel("1796449610.63", &url);
    ch.app_time = Duration::from_secs(4);
    ch.dial_answer_after = Some(Duration::from_millis(300));
    ch.dial_result = vec![
        ("DIALSTATUS", "ANSWER"),
        ("HANGUPCAUSE", "16"),
        ("DIALEDPEERNUMBER", "7002"),
        ("ANSWEREDTIME", "4"),
    ];
    let log = run_channel(agi, ch, registry).await;
    let returned = log.dial_returned_at.expect("the Dial ran");
    let hits = app
        .wait_for(
            Duration::from_secs(10),
            "DialAnswer",
            |hits: &[crate::common::app::Hit]| {
                hits.iter()
                    .find(|h| h.path == "/events" && h.must("Event") == "DialAnswer")
                    .cloned()
            },
        )
        .await;
    // The outbox row's DeliveryID is a UUIDv7: its time is when voxbridge wrote it.
    let id = uuid::Uuid::parse_str(&hits.must("DeliveryID")).unwrap();
    let (secs, nanos) = id.get_timestamp().expect("a UUIDv7").to_unix();
    let written = std::time::UNIX_EPOCH + Duration::new(secs, nanos);
    let before_end = returned
        .duration_since(written)
        .unwrap_or_else(|_| panic!("DialAnswer written after the Dial returned"));
    assert!(
        before_end >= Duration::from_secs(2),
        "DialAnswer written {before_end:?} before the 4 s Dial returned (answer at 0.3 s)"
    );
}

/// SPEC §11.2 on Asterisk: the bridged callee is a live call; REST `DELETE` of it finds
/// its channel over ARI (the caller's DIALEDPEERNAME in ARI's channel list) and hangs it
/// up; `Dial()` returns and the caller goes on with the document.
#[tokio::test]
async fn asterisk_dial_rest_delete_of_the_callee_hangs_it_up_over_ari_and_the_caller_goes_on() {
    let registry = Registry::default();
    let (ari_url, _ari, seen) = fake_ari(registry.clone()).await;
    let (app, server, agi) = start(&ari_url).await;
    let events = app.url("/events");
    let url = app.xml(
        "/dial",
        &xml(&format!(
            "<Dial callbackUrl=\"{events}\"><Number>7002</Number></Dial><Hangup reason=\"busy\"/>"
        )),
    );
    let mut ch = channel("1796449610.64", &url);
    ch.app_time = Duration::from_secs(20);
    ch.dial_answer_after = Some(Duration::from_millis(300));
    ch.dial_result = vec![
        ("DIALSTATUS", "ANSWER"),
        ("HANGUPCAUSE", "16"),
        ("DIALEDPEERNUMBER", "7002"),
        ("ANSWEREDTIME", "1"),
    ];
    let started = std::time::Instant::now();
    let call = tokio::spawn(run_channel(agi, ch, registry));
    let answer = app
        .wait_for(
            Duration::from_secs(10),
            "DialAnswer",
            |hits: &[crate::common::app::Hit]| {
                hits.iter()
                    .find(|h| h.path == "/events" && h.must("Event") == "DialAnswer")
                    .cloned()
            },
        )
        .await;
    let b_leg = answer.must("DialBLegUUID");
    let (status, live) = crate::e2e_support::rest(
        &server,
        reqwest::Method::GET,
        &format!("Call/{b_leg}/?status=live"),
    )
    .await;
    assert_eq!(status, 200, "the callee is a live call: {live}");
    assert_eq!(live["parent_call_uuid"], "1796449610.64", "{live}");
    assert_eq!(live["to"], "7002", "{live}");
    let (status, body) =
        crate::e2e_support::rest(&server, reqwest::Method::DELETE, &format!("Call/{b_leg}/")).await;
    assert_eq!(status, 204, "{body}");
    let log = call.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the 20 s Dial ended at the callee's hang-up"
    );
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|s| s == "DELETE callee-1796449610.64 reason_code=16"),
        "{:?}",
        seen.lock().unwrap()
    );
    assert!(
        log.commands.iter().any(|c| c == r#"EXEC Hangup "17""#),
        "the caller went on"
    );
    let leg = server.cdr(&b_leg).await;
    assert_eq!(leg.source, "API");
    assert!(leg.answered);
}

/// The Asterisk server with `[record] dir` in a temporary directory.
async fn start_recording(
    dir: &std::path::Path,
) -> (
    crate::e2e_support::App,
    crate::e2e_support::Server,
    SocketAddr,
) {
    let app = crate::e2e_support::App::start().await;
    let keys = format!("\n[record]\ndir = \"{}\"\n", dir.display());
    let (server, agi) = start_with(&app, "", None, &keys).await;
    (app, server, agi)
}

/// The first request on `path` about the call.
async fn hit_on(
    app: &crate::e2e_support::App,
    path: &str,
    call_uuid: &str,
) -> crate::common::app::Hit {
    app.wait_for(
        crate::e2e_support::PATIENCE,
        &format!("{path} for {call_uuid}"),
        |hits: &[crate::common::app::Hit]| {
            hits.iter()
                .find(|h| h.path == path && h.param("CallUUID").as_deref() == Some(call_uuid))
                .cloned()
        },
    )
    .await
}

fn num(hit: &crate::common::app::Hit, key: &str) -> i64 {
    hit.must(key)
        .parse()
        .unwrap_or_else(|_| panic!("{key}={:?}", hit.param(key)))
}

/// A plain Record on Asterisk is `RECORD FILE` into `<record.dir>/<RecordingID>` (wav),
/// `#` ends it (`record-file.txt`): the same action, RecordStop, row and file download as
/// on FreeSWITCH, and the next element runs (redirect="false").
#[tokio::test]
async fn asterisk_record_voicemail_finish_on_key_is_record_file_then_the_action_record_stop_and_the_row(
) {
    let dir = tempfile::tempdir().unwrap();
    let (app, server, agi) = start_recording(dir.path()).await;
    let vm = app.status("/vm", 200);
    let rs = app.status("/rs", 200);
    let url = app.xml(
        "/vm-doc",
        &xml(&format!(
            "<Speak>Leave a message.</Speak>\
             <Record action=\"{vm}\" maxLength=\"5\" finishOnKey=\"#\" timeout=\"3\" callbackUrl=\"{rs}\"/>\
             <Speak>Goodbye.</Speak>"
        )),
    );
    let uuid = "1796449610.70";
    let mut ch = channel(uuid, &url);
    ch.app_time = Duration::from_millis(200);
    // The Speak ends ~0.2 s in; the key comes ~1.5 s into the recording.
    ch.dtmf = vec![(Duration::from_millis(1700), '#')];
    let log = run_channel(agi, ch, Registry::default()).await;
    let action = hit_on(&app, "/vm", uuid).await;
    assert_eq!(action.must("Event"), "Record");
    action.verify_signature(app.port, TOKEN).expect("signed");
    assert_eq!(action.must("RecordingEndReason"), "FinishedOnKey");
    assert_eq!(action.must("Digits"), "#");
    let id = action.must("RecordingID");
    let stem = dir.path().join(&id);
    let record_cmd = format!(
        r##"RECORD FILE "{}" wav "#" 5000 BEEP s=3"##,
        stem.display()
    );
    assert!(
        log.commands.contains(&record_cmd),
        "{record_cmd} in {:?}",
        log.commands
    );
    assert_eq!(
        execs(&log.commands)[2..],
        [
            r#"EXEC Flite "Goodbye.""#.to_string(),
            r#"EXEC Hangup "16""#.to_string()
        ],
        "the next element runs after the Record (redirect=false): {:?}",
        log.commands
    );
    let ms = num(&action, "RecordingDurationMs");
    assert!((1200..=2200).contains(&ms), "a key ~1.5 s in: {ms} ms");
    assert_eq!(
        num(&action, "RecordingEndMs") - num(&action, "RecordingStartMs"),
        ms
    );
    let file = dir.path().join(format!("{id}.wav"));
    let bytes = std::fs::read(&file).expect("the file RECORD FILE wrote");
    assert_eq!(
        ((bytes.len() - 44) / 16) as i64,
        ms,
        "the reported duration is the file's (endpos samples at 8 kHz)"
    );
    let stop = hit_on(&app, "/rs", uuid).await;
    assert_eq!(stop.must("Event"), "RecordStop");
    for key in [
        "RecordingID",
        "RecordUrl",
        "RecordingDurationMs",
        "RecordingEndReason",
        "Digits",
    ] {
        assert_eq!(stop.param(key), action.param(key), "{key}");
    }
    let (status, list) = crate::e2e_support::rest(
        &server,
        reqwest::Method::GET,
        &format!("Recording/?call_uuid={uuid}"),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["meta"]["total_count"], 1, "{list}");
    assert_eq!(list["objects"][0]["recording_duration_ms"], ms);
    let cdr = server.cdr(uuid).await;
    assert!(
        cdr.notes
            .iter()
            .any(|n| n.contains(&id) && n.contains("ended by FinishedOnKey")),
        "{:?}",
        cdr.notes
    );
}

/// `(timeout)` is both the silence and the limit on Asterisk: told apart by how long the
/// command ran against maxLength. The hangup under RECORD FILE (`result=-1`, then
/// `HANGUP`) is HungUp, and the action goes through the outbox.
#[tokio::test]
async fn asterisk_record_ends_on_max_length_on_silence_and_on_hangup_each_named() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _server, agi) = start_recording(dir.path()).await;
    app.status("/act", 200);
    let act = app.url("/act");
    let doc = |path: &str, attrs: &str| {
        app.xml(
            path,
            &xml(&format!(
                "<Record action=\"{act}\" playBeep=\"false\" {attrs}/><Hangup/>"
            )),
        )
    };
    let max = doc("/max", "maxLength=\"2\" timeout=\"5\"");
    let silence = doc("/silence", "maxLength=\"10\" timeout=\"1\"");
    let hangup = doc("/hangup", "maxLength=\"10\"");
    let mut max_ch = channel("1796449610.71", &max);
    max_ch.record_speech = Some(Duration::from_secs(30));
    let mut silence_ch = channel("1796449610.72", &silence);
    // 0.5 s of speech, then 1 s of silence ends it; Asterisk cuts the silence to 1 s
    // (s=1: nothing cut), so 1.5 s are kept.
    silence_ch.record_speech = Some(Duration::from_millis(500));
    let mut hangup_ch = channel("1796449610.73", &hangup);
    hangup_ch.caller_hangs_up_after = Some(Duration::from_secs(1));
    let (max_log, silence_log, hangup_log) = tokio::join!(
        run_channel(agi, max_ch, Registry::default()),
        run_channel(agi, silence_ch, Registry::default()),
        run_channel(agi, hangup_ch, Registry::default()),
    );

    let a = hit_on(&app, "/act", "1796449610.71").await;
    assert_eq!(a.must("RecordingEndReason"), "maxLength");
    assert!(
        (1900..=2300).contains(&num(&a, "RecordingDurationMs")),
        "{a:?}"
    );
    assert!(
        max_log
            .commands
            .iter()
            .any(|c| c.starts_with("RECORD FILE") && c.ends_with(r#"wav "1234567890*#" 2000 s=5"#)),
        "{:?}",
        max_log.commands
    );

    let a = hit_on(&app, "/act", "1796449610.72").await;
    assert_eq!(a.must("RecordingEndReason"), "RecordingTimeout");
    assert!(
        (1400..=1800).contains(&num(&a, "RecordingDurationMs")),
        "{a:?}"
    );
    assert!(silence_log
        .commands
        .iter()
        .any(|c| c.ends_with("10000 s=1")));

    let a = hit_on(&app, "/act", "1796449610.73").await;
    assert_eq!(a.must("RecordingEndReason"), "HungUp");
    assert!(hangup_log.closed_after_hangup);
    let cb = app.hangup_callback("1796449610.73").await;
    assert_eq!(cb.must("HangupSource"), "Caller");
}

/// `recordSession` on Asterisk is MixMonitor (returns at once, the Speak runs on); the
/// file is complete at the hangup: RecordStop HungUp, as long as the call after it.
#[tokio::test]
async fn asterisk_record_session_is_mix_monitor_and_ends_with_the_channel_hung_up() {
    let dir = tempfile::tempdir().unwrap();
    let (app, server, agi) = start_recording(dir.path()).await;
    let rs = app.status("/rs", 200);
    let url = app.xml(
        "/session",
        &xml(&format!(
            "<Record recordSession=\"true\" callbackUrl=\"{rs}\"/>\
             <Speak>Hello.</Speak><Hangup reason=\"busy\"/>"
        )),
    );
    let uuid = "1796449610.74";
    let mut ch = channel(uuid, &url);
    ch.app_time = Duration::from_millis(600);
    let log = run_channel(agi, ch, Registry::default()).await;
    let stop = hit_on(&app, "/rs", uuid).await;
    assert_eq!(stop.must("Event"), "RecordStop");
    assert_eq!(stop.must("RecordingEndReason"), "HungUp");
    let id = stop.must("RecordingID");
    let file = dir.path().join(format!("{id}.wav"));
    let ex = execs(&log.commands);
    assert_eq!(
        ex,
        [
            "ANSWER".to_string(),
            format!(r#"EXEC MixMonitor "{}""#, file.display()),
            r#"EXEC Flite "Hello.""#.to_string(),
            r#"EXEC Hangup "17""#.to_string(),
        ],
        "MixMonitor returns at once and the document goes on"
    );
    let ms = num(&stop, "RecordingDurationMs");
    assert!(
        (550..=3000).contains(&ms),
        "the Speak's 0.6 s and the hangup: {ms}"
    );
    let (status, list) = crate::e2e_support::rest(
        &server,
        reqwest::Method::GET,
        &format!("Recording/?call_uuid={uuid}"),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["meta"]["total_count"], 1, "{list}");
    assert_eq!(list["objects"][0]["recording_id"], id.as_str());
    let cdr = server.cdr(uuid).await;
    assert!(
        !cdr.notes.iter().any(|n| n.contains("did not report")),
        "the hangup reports the file: {:?}",
        cdr.notes
    );
}

/// `startOnDialAnswer` cannot start on Asterisk (FastAGI is blocked in `Dial()` at the
/// answer): nothing is recorded and the CDR says why — no row, no RecordStop for a file
/// that does not exist.
#[tokio::test]
async fn asterisk_record_start_on_dial_answer_is_refused_by_name_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (app, server, agi) = start_recording(dir.path()).await;
    let rs = app.status("/rs", 200);
    let url = app.xml(
        "/dial-rec",
        &xml(&format!(
            "<Record startOnDialAnswer=\"true\" callbackUrl=\"{rs}\"/>\
             <Dial timeLimit=\"30\"><Number>7002</Number></Dial>"
        )),
    );
    let uuid = "1796449610.75";
    let mut ch = channel(uuid, &url);
    ch.app_time = Duration::from_millis(300);
    ch.dial_result = vec![
        ("DIALSTATUS", "ANSWER"),
        ("HANGUPCAUSE", "16"),
        ("DIALEDPEERNUMBER", "7002"),
        ("ANSWEREDTIME", "1"),
    ];
    let log = run_channel(agi, ch, Registry::default()).await;
    assert!(log.commands.iter().any(|c| c.starts_with("EXEC Dial")));
    assert!(!log.commands.iter().any(|c| c.contains("MixMonitor")));
    let cdr = server.cdr(uuid).await;
    assert!(
        cdr.notes
            .iter()
            .any(|n| n.contains("not supported yet on Asterisk: Record startOnDialAnswer")),
        "{:?}",
        cdr.notes
    );
    let (status, list) = crate::e2e_support::rest(
        &server,
        reqwest::Method::GET,
        &format!("Recording/?call_uuid={uuid}"),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["meta"]["total_count"], 0, "{list}");
    assert!(app.hits_on("/rs").is_empty(), "no RecordStop");
}

/// REST `DELETE Call/{uuid}/Record/` while MixMonitor records: not supported yet on
/// Asterisk, and said so (501 naming it) instead of a 204 that stopped nothing; the
/// recording still completes at the hangup.
#[tokio::test]
async fn asterisk_rest_stop_of_a_recording_is_501_not_supported_yet_and_the_call_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (app, server, agi) = start_recording(dir.path()).await;
    let rs = app.status("/rs", 200);
    let url = app.xml(
        "/session-stop",
        &xml(&format!(
            "<Record recordSession=\"true\" callbackUrl=\"{rs}\"/>\
             <Speak>Hello.</Speak><Hangup reason=\"busy\"/>"
        )),
    );
    let uuid = "1796449610.76";
    let mut ch = channel(uuid, &url);
    ch.app_time = Duration::from_secs(3);
    let call = tokio::spawn(run_channel(agi, ch, Registry::default()));
    let mut last = (0, serde_json::Value::Null);
    for _ in 0..200 {
        last = crate::e2e_support::rest(
            &server,
            reqwest::Method::DELETE,
            &format!("Call/{uuid}/Record/"),
        )
        .await;
        if last.0 == 501 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last.0, 501, "{:?}", last.1);
    assert!(
        last.1.to_string().contains("not supported yet on Asterisk"),
        "{}",
        last.1
    );
    let log = call.await.unwrap();
    assert!(log.commands.iter().any(|c| c == r#"EXEC Hangup "17""#));
    let stop = hit_on(&app, "/rs", uuid).await;
    assert_eq!(stop.must("RecordingEndReason"), "HungUp");
}

/// The Asterisk server with AMI (issue 17) on a [`fake_ami`] sharing `registry` with the
/// fake channels, `[record] dir` in `dir`; returns once the AMI session is logged in.
async fn start_with_ami(
    registry: &Registry,
    dir: &std::path::Path,
) -> (
    crate::e2e_support::App,
    crate::e2e_support::Server,
    SocketAddr,
) {
    let ami = fake_ami(registry.clone()).await;
    let (ari_url, _ari, _seen) = fake_ari(registry.clone()).await;
    let app = crate::e2e_support::App::start().await;
    let keys = format!(
        "ami_address = \"{ami}\"\nami_user = \"u\"\nami_secret = \"p\"\n\n[record]\ndir = \"{}\"\n",
        dir.display()
    );
    let (server, agi) = start_with(&app, &ari_url, None, &keys).await;
    for _ in 0..250 {
        if registry.ami_sessions() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        registry.ami_sessions(),
        1,
        "voxbridge logged in to the fake AMI"
    );
    (app, server, agi)
}

/// The first Dial event `event` about the call.
async fn dial_event(
    app: &crate::e2e_support::App,
    event: &str,
    pressed_by: &str,
) -> crate::common::app::Hit {
    app.wait_for(
        crate::e2e_support::PATIENCE,
        &format!("{event} {pressed_by}"),
        |hits: &[crate::common::app::Hit]| {
            hits.iter()
                .find(|h| {
                    h.path == "/events"
                        && h.must("Event") == event
                        && (pressed_by.is_empty()
                            || h.param("DialDigitsPressedBy").as_deref() == Some(pressed_by))
                })
                .cloned()
        },
    )
    .await
}

/// Simulator twin of the live `asterisk_dial_digits_match_*`: FastAGI is blocked in
/// `Dial()`, so the caller's and the callee's digits come as AMI `DTMFEnd` events; both
/// matches are posted as DialDigitsMatch (aleg / bleg) after DialConnected, and the
/// bridge is kept out of native RTP (`VOLUME(TX)`) before the Dial.
#[tokio::test]
async fn asterisk_ami_dial_digits_of_the_caller_and_the_callee_post_dial_digits_match() {
    let registry = Registry::default();
    let dir = tempfile::tempdir().unwrap();
    let (app, _server, agi) = start_with_ami(&registry, dir.path()).await;
    let events = app.url("/events");
    let url = app.xml(
        "/digits",
        &xml(&format!(
            "<Dial callbackUrl=\"{events}\" digitsMatch=\"12\" digitsMatchBLeg=\"55,12X4#\">\
             <Number>7007</Number></Dial><Hangup/>"
        )),
    );
    let mut ch = channel("1796449610.90", &url);
    ch.app_time = Duration::from_secs(3);
    ch.dial_answer_after = Some(Duration::from_millis(200));
    ch.dial_result = vec![
        ("DIALSTATUS", "ANSWER"),
        ("HANGUPCAUSE", "16"),
        ("DIALEDPEERNUMBER", "7007"),
        ("ANSWEREDTIME", "3"),
    ];
    let ms = Duration::from_millis;
    ch.bridge_dtmf = vec![
        (ms(300), false, '9'),
        (ms(400), true, '1'),
        (ms(500), false, '1'),
        (ms(600), true, '2'),
        (ms(700), true, '3'),
        (ms(800), false, '2'),
        (ms(900), true, '4'),
        (ms(1000), true, '#'),
    ];
    let log = run_channel(agi, ch, registry).await;
    let dial_at = log
        .commands
        .iter()
        .position(|c| c.starts_with("EXEC Dial"))
        .expect("a Dial");
    assert!(
        log.commands[..dial_at]
            .iter()
            .any(|c| c == r#"SET VARIABLE VOLUME(TX) "1""#),
        "the bridge is kept in the core: {:?}",
        log.commands
    );
    let aleg = dial_event(&app, "DialDigitsMatch", "aleg").await;
    assert_eq!(aleg.must("DialDigitsMatch"), "12");
    assert_eq!(aleg.must("DialAction"), "digits");
    let bleg = dial_event(&app, "DialDigitsMatch", "bleg").await;
    assert_eq!(bleg.must("DialDigitsMatch"), "1234#");
    assert_eq!(bleg.must("DialBLegTo"), "7007");
    // In the order voxbridge wrote them (DeliveryID is a UUIDv7), as e2e_dial does.
    let mut hits = app.hits_on("/events");
    hits.sort_by_key(|h| h.must("DeliveryID"));
    let order: Vec<String> = hits.iter().map(|h| h.must("Event")).collect();
    assert_eq!(
        order[..4],
        [
            "DialAnswer",
            "DialConnected",
            "DialDigitsMatch",
            "DialDigitsMatch"
        ],
        "{order:?}"
    );
}

/// Without AMI the same Dial is refused by name (no Dial() that could not watch them).
#[tokio::test]
async fn asterisk_dial_digits_match_without_ami_is_refused_by_name() {
    let registry = Registry::default();
    let (ari_url, _ari, _seen) = fake_ari(registry.clone()).await;
    let (app, server, agi) = start(&ari_url).await;
    let url = app.xml(
        "/digits-no-ami",
        &xml("<Dial digitsMatchBLeg=\"1234#\"><Number>7007</Number></Dial>"),
    );
    let uuid = "1796449610.91";
    let log = run_channel(agi, channel(uuid, &url), registry).await;
    assert!(!log.commands.iter().any(|c| c.starts_with("EXEC Dial")));
    let cdr = server.cdr(uuid).await;
    assert!(
        cdr.notes
            .iter()
            .chain(std::iter::once(&cdr.cause_name))
            .any(|n| n.contains("not supported yet on Asterisk: Dial digitsMatchBLeg without AMI")),
        "{cdr:?}"
    );
}

/// Simulator twin of the live `asterisk_record_start_on_dial_answer_*`: at AMI's
/// DialEnd (ANSWER) the MixMonitor starts over AMI on the caller's channel beside the
/// running `Dial()`; at the hangup RecordStop HungUp, and the row is listed.
#[tokio::test]
async fn asterisk_ami_start_on_dial_answer_is_a_mix_monitor_action_at_the_answer() {
    let registry = Registry::default();
    let dir = tempfile::tempdir().unwrap();
    let (app, server, agi) = start_with_ami(&registry, dir.path()).await;
    let rs = app.status("/rs", 200);
    let url = app.xml(
        "/dial-rec-ami",
        &xml(&format!(
            "<Record startOnDialAnswer=\"true\" callbackUrl=\"{rs}\"/>\
             <Dial timeLimit=\"30\"><Number>7002</Number></Dial>"
        )),
    );
    let uuid = "1796449610.92";
    let mut ch = channel(uuid, &url);
    ch.app_time = Duration::from_millis(1500);
    ch.dial_answer_after = Some(Duration::from_millis(200));
    ch.dial_result = vec![
        ("DIALSTATUS", "ANSWER"),
        ("HANGUPCAUSE", "16"),
        ("DIALEDPEERNUMBER", "7002"),
        ("ANSWEREDTIME", "1"),
    ];
    let log = run_channel(agi, ch, registry.clone()).await;
    assert!(
        !log.commands.iter().any(|c| c.contains("MixMonitor")),
        "not on the blocked FastAGI socket"
    );
    let stop = hit_on(&app, "/rs", uuid).await;
    assert_eq!(stop.must("RecordingEndReason"), "HungUp");
    let id = stop.must("RecordingID");
    let file = dir.path().join(format!("{id}.wav"));
    let channel_name = format!("SIP/127.0.0.1-{}", uuid.replace('.', ""));
    assert_eq!(
        registry.ami_actions(),
        [format!("MixMonitor {channel_name} {}", file.display())]
    );
    let ms = num(&stop, "RecordingDurationMs");
    assert!(
        (900..=3000).contains(&ms),
        "from the answer (0.2 s) to the end (1.5 s): {ms}"
    );
    let (status, list) = crate::e2e_support::rest(
        &server,
        reqwest::Method::GET,
        &format!("Recording/?call_uuid={uuid}"),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["meta"]["total_count"], 1, "{list}");
}

/// Simulator twins of the live REST stops: `DELETE Call/{uuid}/Record/` is 204 with AMI;
/// a MixMonitor is stopped with `StopMixMonitor` (RecordStop Stopped at once, the call
/// goes on), a running `RECORD FILE` gets the reserved `D` (PlayDTMF Receive) among its
/// escape digits and ends Stopped with no Digits.
#[tokio::test]
async fn asterisk_ami_rest_stop_ends_a_mix_monitor_and_a_running_record_file_as_stopped() {
    let registry = Registry::default();
    let dir = tempfile::tempdir().unwrap();
    let (app, server, agi) = start_with_ami(&registry, dir.path()).await;
    let rs = app.status("/rs", 200);
    let vm = app.status("/vm", 200);
    let url = app.xml(
        "/stops",
        &xml(&format!(
            "<Record recordSession=\"true\" callbackUrl=\"{rs}\"/><Wait length=\"1\"/>\
             <Record action=\"{vm}\" maxLength=\"20\" finishOnKey=\"#\" playBeep=\"false\" \
             callbackUrl=\"{rs}\"/><Hangup reason=\"busy\"/>"
        )),
    );
    let uuid = "1796449610.93";
    let mut ch = channel(uuid, &url);
    ch.app_time = Duration::from_secs(2);
    let started = tokio::time::Instant::now();
    let call = tokio::spawn(run_channel(agi, ch, registry.clone()));
    let path = format!("Call/{uuid}/Record/");
    // Once the MixMonitor runs (beside the 2 s Wait): 204.
    let mut last = (0, serde_json::Value::Null);
    for _ in 0..200 {
        last = crate::e2e_support::rest(&server, reqwest::Method::DELETE, &path).await;
        if last.0 == 204 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last.0, 204, "{:?}", last.1);
    let session = hit_on(&app, "/rs", uuid).await;
    assert_eq!(session.must("RecordingEndReason"), "Stopped");
    // The plain Record starts when the Wait is over (~2.1 s in, later on a loaded
    // machine) and would run 20 s. A stop before it starts stops nothing of it, so the
    // stop is repeated each second until the Record's action comes (at most 10 tries).
    tokio::time::sleep_until(started + Duration::from_millis(3500)).await;
    for _ in 0..10 {
        let (status, body) =
            crate::e2e_support::rest(&server, reqwest::Method::DELETE, &path).await;
        // 404 once nothing runs any more (the Record ended under an earlier try).
        assert!(status == 204 || status == 404, "{status} {body}");
        tokio::time::sleep(Duration::from_secs(1)).await;
        if !app.callbacks_for("/vm", uuid).is_empty() {
            break;
        }
    }
    let action = hit_on(&app, "/vm", uuid).await;
    assert_eq!(action.must("RecordingEndReason"), "Stopped");
    assert_eq!(action.param("Digits").unwrap_or_default(), "");
    let log = call.await.unwrap();
    let record = log
        .commands
        .iter()
        .find(|c| c.starts_with("RECORD FILE"))
        .expect("RECORD FILE");
    assert!(
        record.contains(r##" "#D" "##),
        "D is an escape digit: {record}"
    );
    let channel_name = format!("SIP/127.0.0.1-{}", uuid.replace('.', ""));
    assert_eq!(
        registry.ami_actions(),
        [
            format!("StopMixMonitor {channel_name}"),
            format!("PlayDTMF {channel_name} D receive=true"),
        ]
    );
    assert!(
        log.commands.iter().any(|c| c == r#"EXEC Hangup "17""#),
        "the call went on to its busy hangup: {:?}",
        log.commands
    );
}
