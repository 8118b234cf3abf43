//! Issue 10: the store and the socket never strand a call. Each test is named after the
//! guarantee it checks, on the real binary, the simulator and real SQLite files.

use crate::common::process::{voxbridge_command, ServeProcess};
use std::path::Path;
use std::time::{Duration, Instant};
use voxbridge::cause::HangupCause;

fn minimal_config(dir: &Path, db: &Path) -> std::path::PathBuf {
    let config = dir.join("voxbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[esl]\nlisten = \"127.0.0.1:0\"\n[api]\nlisten = \"127.0.0.1:0\"\n\
             [store]\nurl = \"sqlite://{}\"\n[app]\ndefault_answer_url = \"file:///dev/null\"\n",
            db.display()
        ),
    )
    .unwrap();
    config
}

/// Two processes on one SQLite file would both claim the outbox (double delivery) and
/// the second would close the first one's live calls as `Unknown`: the second `serve`
/// must refuse to start, exit 2 and name the process holding the file.
#[test]
fn a_second_serve_on_one_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("voxbridge.db");
    let config = minimal_config(dir.path(), &db);
    let mut first_cmd = voxbridge_command();
    first_cmd.arg("serve").arg("--config").arg(&config);
    let mut first = ServeProcess::start(
        first_cmd,
        &dir.path().join("first.log"),
        Duration::from_secs(30),
    )
    .unwrap();

    let started = Instant::now();
    let mut second = voxbridge_command()
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("second.log")).unwrap())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = second.kill();
            let _ = second.wait();
            panic!("the second serve is still running on the same database file");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(dir.path().join("second.log")).unwrap();
    assert_eq!(status.code(), Some(2), "second serve: {stderr}");
    assert!(
        stderr.contains(&format!("pid {}", first.pid())),
        "names the holder: {stderr}"
    );
    assert!(stderr.contains("voxbridge.db"), "names the file: {stderr}");
    assert!(first.try_wait().is_none(), "the first one keeps serving");
    assert!(
        !first.log_text().contains("pending again"),
        "nothing of the first one's was touched"
    );

    // Once the holder is gone (even killed), the file can be served again.
    drop(first);
    let mut again_cmd = voxbridge_command();
    again_cmd.arg("serve").arg("--config").arg(&config);
    let again = ServeProcess::start(
        again_cmd,
        &dir.path().join("again.log"),
        Duration::from_secs(30),
    );
    assert!(again.is_ok(), "{:?}", again.err());
}

// ------------------------------------------------------------------ a disk that fills up

/// A small tmpfs of its own, so the store's disk can really fill up (root only; the
/// tests that need it say so and stop when it cannot be mounted). Unmounted on drop.
struct SmallDisk {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: mounting a tmpfs needs root; this test cannot run here");
            return None;
        }
        Some(SmallDisk { path, _dir: dir })
    }

    /// Writes a filler file until the disk refuses more.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path.join("filler")).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.flush();
        // Small leftovers too, so not even one page is free.
        while f.write_all(&chunk[..512]).is_ok() {}
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.path.join("filler"));
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

const SHORT_CALL: &str = r#"<Response><Speak>Hello.</Speak><Hangup/></Response>"#;

async fn no_channel_left(sim: &voxbridge_sim::Sim, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    while sim.live_channels() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim.live_channels()
}

/// Issue 10 point 1: with the store's disk full, no call keeps a switch session — the
/// calls are refused (503) and their sockets left — and once space is back every refused
/// call has its CDR and hangup callback, and new calls run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_never_holds_a_switch_session() {
    use crate::e2e_support::*;
    let Some(disk) = SmallDisk::mount(4) else {
        return;
    };
    let app = App::start().await;
    let doc = app.xml("/doc/short", SHORT_CALL);
    let server = Server::start(
        &app,
        ServerOptions {
            db_dir: Some(disk.path.clone()),
            ..ServerOptions::default()
        },
    )
    .await;
    let sim = sim(20.0);

    disk.fill();
    let mut uuids = Vec::new();
    for _ in 0..5 {
        let call = sim.place_call(ringing(&doc), server.esl);
        uuids.push(call.uuid.clone());
        let r = report(call).await;
        assert_refused(&r, 503, HangupCause::NORMAL_TEMPORARY_FAILURE);
        assert!(
            !r.commands.iter().any(|c| c.contains("execute-app-name")),
            "no document ran: {r:#?}"
        );
    }
    assert_eq!(
        no_channel_left(&sim, PATIENCE).await,
        0,
        "a switch session is held while the disk is full\n{}",
        server.log_text()
    );
    // Only the first call, whose live-row write found the disk full, had its document
    // fetched (the fetch hides that write); the others were refused without a request.
    assert!(
        app.hits_on("/doc/short").len() <= 1,
        "the application was asked for documents of refused calls"
    );
    let log = server.log_text();
    assert!(log.contains("THE STORE CANNOT WRITE"), "{log}");
    let metrics = voxbridge::http_client::builder()
        .build()
        .unwrap()
        .get(format!("http://{}/metrics", server.api))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("voxbridge_calls_refused_total{reason=\"store_unavailable\"} 5\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("voxbridge_records_waiting 5\n"),
        "five records wait for the disk: {metrics}"
    );

    disk.free();
    for uuid in &uuids {
        let cdr = server.cdr(uuid).await;
        assert_eq!(cdr.source, "Error");
        assert_eq!(cdr.cause_name, "Error: store unavailable");
        assert_eq!(cdr.cause_code, 41);
        let hit = app.hangup_callback(uuid).await;
        assert_eq!(hit.must("HangupCauseName"), "Error: store unavailable");
    }
    // Taking calls again.
    let r = report(sim.place_call(ringing(&doc), server.esl)).await;
    assert_eq!(server.cdr(&r.uuid).await.source, "Answer XML", "{r:#?}");
    assert!(server.log_text().contains("the store writes again"));
}

// ------------------------------------------------------------------ a scripted switch

/// The switch side of one outbound socket, scripted byte by byte.
struct FakeSwitch {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl FakeSwitch {
    async fn connect(esl: std::net::SocketAddr) -> FakeSwitch {
        FakeSwitch {
            stream: tokio::net::TcpStream::connect(esl).await.unwrap(),
            buf: Vec::new(),
        }
    }

    /// The next command voxbridge sent (headers only; our commands carry no body here),
    /// or `None` at EOF / after `within`.
    async fn command(&mut self, within: Duration) -> Option<String> {
        use tokio::io::AsyncReadExt;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let cmd = String::from_utf8_lossy(&self.buf[..end]).to_string();
                self.buf.drain(..end + 2);
                return Some(cmd);
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Answers `connect` with a real channel-data reply for `uuid`.
    async fn hand_over(&mut self, uuid: &str) {
        let c = self.command(Duration::from_secs(10)).await.unwrap();
        assert_eq!(c, "connect");
        self.send(&crate::esl_support::connect_reply(uuid)).await;
    }

    /// Answers the rest of the handshake (`myevents`, `nixevent`, `linger`).
    async fn finish_handshake(&mut self) {
        for _ in 0..3 {
            let c = self.command(Duration::from_secs(10)).await.unwrap();
            self.send(&crate::esl_support::reply("+OK")).await;
            if c.starts_with("linger") {
                return;
            }
        }
    }

    /// Everything voxbridge sends until it closes the socket.
    async fn rest(&mut self, within: Duration) -> Vec<String> {
        let mut all = Vec::new();
        while let Some(c) = self.command(within).await {
            all.push(c);
        }
        all
    }
}

fn any_document_route(
    app: &crate::e2e_support::App,
    doc: &str,
) -> crate::e2e_support::ServerOptions {
    crate::e2e_support::ServerOptions {
        extra_toml: format!(
            "[[route]]\ndestination = \"/.*/\"\nanswer_url = \"{}\"\n",
            app.xml("/doc/route", doc)
        ),
        ..crate::e2e_support::ServerOptions::default()
    }
}

fn hung_up(commands: &[String], uuid: &str) -> bool {
    commands
        .iter()
        .any(|c| c == &format!("api uuid_kill {uuid} NORMAL_TEMPORARY_FAILURE"))
        && commands
            .iter()
            .any(|c| c.contains("call-command: hangup") && c.contains("NORMAL_TEMPORARY_FAILURE"))
}

/// Issue 10 point 2: a handshake that fails after `connect` has taken the channel over;
/// closing the socket without a hangup would leave it parked (reference §2.7). It is
/// hung up, and the call gets its CDR and hangup callback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_failure_after_connect_hangs_the_channel_up() {
    use crate::e2e_support::*;
    let app = App::start().await;
    let server = Server::start(&app, any_document_route(&app, SHORT_CALL)).await;
    let uuid = uuid::Uuid::new_v4().to_string();
    let mut switch = FakeSwitch::connect(server.esl).await;
    switch.hand_over(&uuid).await;
    // The switch goes quiet: `myevents` is never answered. After `connect` the steps are
    // bounded by the reply timeout (30 s), not the handshake timeout: a slow switch keeps
    // its call (esl_outbound::a_switch_slow_after_connect_keeps_its_call).
    let commands = switch.rest(Duration::from_secs(45)).await;
    assert!(
        hung_up(&commands, &uuid),
        "the channel was hung up before the socket closed: {commands:#?}"
    );
    let cdr = server.cdr(&uuid).await;
    assert_eq!(cdr.source, "Error");
    assert_eq!(cdr.cause_name, "Error: ESL handshake failed");
    let hit = app.hangup_callback(&uuid).await;
    assert_eq!(hit.must("HangupSource"), "Error");
}

/// Issue 10 point 2: bytes that are not ESL from the switch end the connection, but not
/// before the channel is hung up; the call is closed out with its CDR and callback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_error_from_the_switch_hangs_the_channel_up() {
    use crate::e2e_support::*;
    let app = App::start().await;
    let server = Server::start(&app, any_document_route(&app, SHORT_CALL)).await;
    let uuid = uuid::Uuid::new_v4().to_string();
    let mut switch = FakeSwitch::connect(server.esl).await;
    switch.hand_over(&uuid).await;
    switch.finish_handshake().await;
    switch.send(b"this is not an event socket\n\n").await;
    let commands = switch.rest(Duration::from_secs(10)).await;
    assert!(
        hung_up(&commands, &uuid),
        "the channel was hung up before the socket closed: {commands:#?}"
    );
    let cdr = server.cdr(&uuid).await;
    assert_eq!(cdr.source, "Unknown", "{cdr:?}");
    app.hangup_callback(&uuid).await;
}

/// Issue 10 point 3: the live row is durable before the first command that changes the
/// channel. A store slowed down (another connection holds the write lock for a second)
/// delays the first command instead, so a crash right after it still leaves the row,
/// and the next start closes the call out with its callback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_first_command_loses_no_call() {
    use crate::e2e_support::*;
    let app = App::start().await;
    let db_dir = tempfile::tempdir().unwrap();
    let options = ServerOptions {
        db_dir: Some(db_dir.path().to_path_buf()),
        ..any_document_route(&app, SHORT_CALL)
    };
    let server = Server::start(&app, options.clone()).await;
    let db = server.db.clone();
    let lock = rusqlite::Connection::open(&db).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        lock.execute_batch("COMMIT").unwrap();
    });

    let uuid = uuid::Uuid::new_v4().to_string();
    let mut switch = FakeSwitch::connect(server.esl).await;
    switch.hand_over(&uuid).await;
    switch.finish_handshake().await;
    let first = switch.command(Duration::from_secs(20)).await.unwrap();
    // The first command that changes the channel: an application, or the Answer's
    // `api uuid_answer`.
    assert!(
        first.starts_with("sendmsg") || first.starts_with("api uuid_answer"),
        "{first}"
    );
    // Crash at once: SIGKILL, nothing flushed.
    drop(server);
    release.join().unwrap();
    let live: bool = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM live_calls WHERE call_uuid = ?1",
            [&uuid],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
        == 1;
    assert!(
        live,
        "the live row was not durable when the first command went out"
    );

    let restarted = Server::start(&app, options).await;
    let cdr = restarted.cdr(&uuid).await;
    assert_eq!(cdr.source, "Unknown");
    let hit = app.hangup_callback(&uuid).await;
    assert_eq!(hit.must("HangupSource"), "Unknown");
}

// ------------------------------------------------------------------ the fault run

/// The fault run (issue 10): 200 calls through one voxbridge while the store's disk is
/// full for 10 s, then recovers. Nothing is left on the switch, and afterwards every
/// call has its CDR and exactly one hangup callback (one DeliveryID). Prints its figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_calls_through_a_failing_disk_leave_nothing_behind() {
    use crate::e2e_support::*;
    use std::collections::{HashMap, HashSet};
    const CALLS: usize = 200;
    let Some(disk) = SmallDisk::mount(16) else {
        return;
    };
    let app = App::start().await;
    let doc = app.xml("/doc/short", SHORT_CALL);
    let server = Server::start(
        &app,
        ServerOptions {
            db_dir: Some(disk.path.clone()),
            ..ServerOptions::default()
        },
    )
    .await;
    let sim = sim(20.0);
    let started = Instant::now();
    let mut reports = tokio::task::JoinSet::new();
    let mut failed_at = None;
    let mut recovered_at = None;
    for i in 0..CALLS {
        // 10 calls a second; the disk fills after the first second, for 10 s.
        tokio::time::sleep_until((started + Duration::from_millis(100 * i as u64)).into()).await;
        if i == 10 {
            disk.fill();
            failed_at = Some(started.elapsed());
        }
        if failed_at.is_some_and(|at| started.elapsed() >= at + Duration::from_secs(10))
            && recovered_at.is_none()
        {
            disk.free();
            recovered_at = Some(started.elapsed());
        }
        let call = sim.place_call(ringing(&doc), server.esl);
        reports.spawn(report(call));
    }
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    let mut uuids = Vec::new();
    while let Some(r) = reports.join_next().await {
        let r = r.unwrap();
        *outcomes.entry(format!("{:?}", r.outcome)).or_default() += 1;
        uuids.push(r.uuid);
    }
    let left = no_channel_left(&sim, PATIENCE).await;
    assert_eq!(
        left,
        0,
        "channels left on the switch\n{}",
        server.log_text()
    );

    let mut by_source: HashMap<String, usize> = HashMap::new();
    for uuid in &uuids {
        let cdr = server.cdr(uuid).await;
        *by_source
            .entry(format!("{} / {}", cdr.source, cdr.cause_name))
            .or_default() += 1;
        app.hangup_callback(uuid).await;
    }
    let all_in = started.elapsed();
    for uuid in &uuids {
        let ids: HashSet<String> = app
            .callbacks_for("/hangup", uuid)
            .iter()
            .filter(|h| h.param("Event").as_deref() == Some("Hangup"))
            .filter_map(|h| {
                h.header("X-Voxbridge-Delivery-Id")
                    .or(h.param("DeliveryID"))
            })
            .collect();
        assert_eq!(ids.len(), 1, "one hangup callback for {uuid}: {ids:?}");
    }
    let store_errors = server
        .log_text()
        .lines()
        .filter(|l| l.contains("STORE ERROR"))
        .count();
    eprintln!(
        "fault run: {CALLS} calls; disk full from {:?} to {:?}; switch channels left: {left}; \
         caller outcomes: {outcomes:?}; CDRs: {by_source:?}; store errors logged: \
         {store_errors}; every CDR and callback in {:?} after the first call",
        failed_at.unwrap(),
        recovered_at.unwrap(),
        all_in
    );
    assert!(store_errors > 0, "the disk never failed a write");
}
