//! The real-switch benchmark (issue 16, SPEC §9 "On the real switch"): the same short call
//! driven by voxbridge and by FreeSWITCH's own mod_httapi, in the same run, on the real
//! FreeSWITCH from `../shared/freeswitch/` (or any switch with the shipped dialplan).
//!
//! The call: answer, a 0.2 s tone, hang up. voxbridge gets it on extension 7001 (the
//! unanswered hand-off, `socket 127.0.0.1:8084 async full`) and fetches
//! `<Response><Play>tone_stream://%(200,0,440)</Play><Hangup/></Response>` from an answer
//! server this bench runs; its hangup callback goes to a receiver here that counts it.
//! mod_httapi gets it on extension 7100 (`httapi {url=http://127.0.0.1:8085/}`) and fetches
//! the equivalent httapi document (`answer`, `playback`, `hangup`) from a server this bench
//! runs on 127.0.0.1:8085; its closing request (`exiting=true`, sent when the channel
//! reports) is counted as that call's callback.
//!
//! Calls are placed through the switch's inbound ESL, paced at `BENCH_RATE`:
//! `bgapi originate {origination_uuid=…}loopback/<ext> &park()` (`BENCH_MODE=loopback`) or
//! `…sofia/external/<ext>@127.0.0.1:5060 &park()` (`BENCH_MODE=sip`: a SIP call looped back
//! into the switch, RTP and all). A call is complete when its calling leg was answered, stayed
//! answered ≥ 150 ms (the 200 ms tone played), ended with NORMAL_CLEARING, and its callback arrived.
//!
//! Printed per phase: CPU per call of the switch and of voxbridge (utime + stime from
//! `/proc/<pid>/stat`, before and after the phase — never from timing), setup latency
//! p50/p99 (the bench's `bgapi` sent → the calling leg's CHANNEL_ANSWER received), how long
//! the answered call was held (the tone plus what the controller adds), peak RSS of the switch (VmRSS
//! sampled) and of voxbridge (VmHWM), `/proc/loadavg` at the start (other builds share
//! the machine), and the ratio (switch + voxbridge) / (switch with httapi). Then means of
//! the runs with their spread.
//!
//! Knobs (environment): `BENCH_CALLS` (1000), `BENCH_RATE` calls/s (100 loopback, 50 sip),
//! `BENCH_MODE` loopback|sip, `BENCH_RUNS` (3), `BENCH_FS_ESL` (127.0.0.1:8021),
//! `BENCH_FS_PASSWORD` (ClueCon), `BENCH_FS_PID` (found from the switch's `run_dir`
//! otherwise), `BENCH_ONLY` voxbridge|httapi (one controller, for profiling),
//! `BENCH_VOXBRIDGE` (another build's binary, to compare builds with one bench; default the
//! release binary cargo built for this bench; `target/release/examples/bare_controller`
//! measures the floor: the same call's I/O with nothing else, see that example), and
//! `BENCH_ATTACH`: a shell command started at the beginning of each measured voxbridge
//! phase with `{pid}` replaced by voxbridge's pid and stopped with SIGINT at its end, e.g.
//! `BENCH_ATTACH='strace -c -f -o /tmp/strace.txt -p {pid}'` (voxbridge's CPU figures are
//! meaningless while a tracer is attached).
//!
//! Without a switch at `BENCH_FS_ESL` it prints one line and exits 0; run without `--bench`
//! (as `cargo test --all-targets` does) it does nothing. The switch is shared:
//! run it under the lock the other users of the switch take, e.g.
//! `flock /tmp/fs-live.lock cargo bench --bench switch` (build first with `--no-run`, so the
//! lock is not held while compiling). Port 127.0.0.1:8084 (where the dialplan sends calls)
//! and 127.0.0.1:8085 (httapi's URL) must be free.
//!
//! Decisions:
//! - The bench's own inbound ESL session costs the switch the same per call for both
//!   controllers (BACKGROUND_JOB, and CHANNEL_ANSWER / CHANNEL_HANGUP_COMPLETE of calling
//!   legs only: `filter Call-Direction outbound`), so the ratio stays fair; the switch's
//!   idle CPU over the phase is counted too and printed separately.
//! - The order of the two phases alternates between runs, so drift (other engineers'
//!   builds, the switch's caches) does not always favour the same controller.
//! - One voxbridge process per run, with a fresh SQLite file; each run starts with a few
//!   unmeasured warm-up calls through both controllers (HTTP pools, the switch's caches).
//! - mod_httapi is measured as the bundle configures it (`debug` on: one CRIT log line per
//!   fetch). The switch's session counter is read before and after each phase: sessions
//!   that are not ours (somebody else's calls) are reported, since their CPU is counted.

use axum::extract::{Query, State};
use axum::routing::{any, post};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use voxbridge::esl::counters::EslCounters;
use voxbridge::esl::inbound::{InboundOptions, InboundSession, SocketEvent};
use voxbridge::esl::EventStream;

/// The document both controllers run: answer, 0.2 s of 440 Hz, hang up.
const TONE: &str = "tone_stream://%(200,0,440)";
const VOXBRIDGE_EXT: &str = "7001";
const HTTAPI_EXT: &str = "7100";
/// Where the bundle's 7100 extension fetches its httapi document.
const HTTAPI_LISTEN: &str = "127.0.0.1:8085";
/// Where the dialplan's `socket` app connects (7000/7001).
const VOXBRIDGE_ESL: &str = "127.0.0.1:8084";
/// A call whose calling leg stayed answered for less than this did not hear the tone. The
/// tone is 200 ms on the controlled leg, but the calling leg sees less: the switch's µs
/// timestamps move in 20 ms steps here (differences come out as exact multiples of 20 ms),
/// and over SIP the calling leg's answer is the 200 OK, which on a loaded machine can
/// arrive tens of ms after the controlled leg answered and started playing (httapi plays
/// at once, so its calls showed 160 ms now and then).
const MIN_ANSWERED: Duration = Duration::from_millis(150);
const WARMUP_CALLS: usize = 10;
/// Caller-id name on every bench call (shows in `show channels`).
const CALLER_NAME: &str = "voxbridge-bench";

fn env_str(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v.parse().unwrap_or_else(|_| {
            eprintln!("switch bench: {name}={v:?} is not a number");
            std::process::exit(2)
        }),
        _ => default,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Loopback,
    Sip,
}

/// Which controller runs the call in a phase.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Controller {
    Voxbridge,
    Httapi,
}

impl Controller {
    fn name(self) -> &'static str {
        match self {
            Controller::Voxbridge => "voxbridge",
            Controller::Httapi => "httapi",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Controller::Voxbridge => VOXBRIDGE_EXT,
            Controller::Httapi => HTTAPI_EXT,
        }
    }

    /// One digit of the per-call caller-id number, so callbacks map back to calls.
    fn digit(self) -> u8 {
        match self {
            Controller::Voxbridge => 1,
            Controller::Httapi => 2,
        }
    }
}

struct Settings {
    calls: usize,
    rate: f64,
    mode: Mode,
    runs: usize,
    esl: String,
    password: String,
    only: Option<Controller>,
    attach: Option<String>,
}

impl Settings {
    fn from_env() -> Settings {
        let mode = match env_str("BENCH_MODE", "loopback").as_str() {
            "loopback" => Mode::Loopback,
            "sip" => Mode::Sip,
            other => {
                eprintln!("switch bench: BENCH_MODE={other:?}: expected loopback or sip");
                std::process::exit(2)
            }
        };
        let only = match std::env::var("BENCH_ONLY").ok().as_deref() {
            None | Some("") => None,
            Some("voxbridge") => Some(Controller::Voxbridge),
            Some("httapi") => Some(Controller::Httapi),
            Some(other) => {
                eprintln!("switch bench: BENCH_ONLY={other:?}: expected voxbridge or httapi");
                std::process::exit(2)
            }
        };
        let default_rate = if mode == Mode::Sip { 50.0 } else { 100.0 };
        let rate: f64 = env_num("BENCH_RATE", default_rate);
        Settings {
            calls: env_num("BENCH_CALLS", 1000usize).max(1),
            rate: if rate > 0.0 { rate } else { default_rate },
            mode,
            runs: env_num("BENCH_RUNS", 3usize).max(1),
            esl: env_str("BENCH_FS_ESL", "127.0.0.1:8021"),
            password: env_str("BENCH_FS_PASSWORD", "ClueCon"),
            only,
            attach: std::env::var("BENCH_ATTACH").ok().filter(|v| !v.is_empty()),
        }
    }

    fn dial_string(&self, ext: &str) -> String {
        match self.mode {
            Mode::Loopback => format!("loopback/{ext}"),
            Mode::Sip => format!("sofia/external/{ext}@127.0.0.1:5060"),
        }
    }

    fn controllers(&self, run: usize) -> Vec<Controller> {
        match self.only {
            Some(c) => vec![c],
            None if run.is_multiple_of(2) => vec![Controller::Voxbridge, Controller::Httapi],
            None => vec![Controller::Httapi, Controller::Voxbridge],
        }
    }
}

// ---------------------------------------------------------------- /proc

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU time (user + system, all threads) a process has used, in seconds.
fn cpu_secs(pid: u32, ticks: f64) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // The command name is in parentheses and may contain spaces: count from after it.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after the name.
    (field(11) + field(12)) / ticks
}

/// A `/proc/<pid>/status` size field (VmRSS, VmHWM), KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn is_freeswitch(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim() == "freeswitch")
        .unwrap_or(false)
}

// ---------------------------------------------------------------- the switch

/// The bench's inbound ESL session and what it learns about the calling legs.
struct Switch {
    session: InboundSession,
    legs: Arc<Mutex<HashMap<String, Leg>>>,
    pid: u32,
}

/// One calling leg (the `origination_uuid` we chose), as its events told.
#[derive(Default, Clone)]
struct Leg {
    sent_at: Option<Instant>,
    answered_at: Option<Instant>,
    answered_for: Option<Duration>,
    cause: Option<String>,
    originate_error: Option<String>,
}

impl Switch {
    async fn connect(settings: &Settings) -> Result<Switch, String> {
        let options = InboundOptions {
            addr: settings.esl.clone(),
            password: settings.password.clone(),
            events: vec!["CHANNEL_ANSWER".into(), "CHANNEL_HANGUP_COMPLETE".into()],
            // Only the legs the bench originates (and job results): the controlled legs
            // are inbound, so neither controller's channels cost the switch events here.
            filters: vec![
                ("Event-Name".into(), "BACKGROUND_JOB".into()),
                ("Call-Direction".into(), "outbound".into()),
            ],
            connect_timeout: Duration::from_secs(10),
            reply_timeout: Duration::from_secs(60),
            event_capacity: 1 << 16,
            ..InboundOptions::default()
        };
        let (session, events) = InboundSession::connect(&options, Arc::new(EslCounters::default()))
            .await
            .map_err(|e| format!("inbound ESL {}: {e}", settings.esl))?;
        let pid = match std::env::var("BENCH_FS_PID")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            Some(pid) => pid,
            None => find_switch_pid(&session).await?,
        };
        if !is_freeswitch(pid) {
            return Err(format!(
                "pid {pid} is not a freeswitch process on this host"
            ));
        }
        let legs = Arc::new(Mutex::new(HashMap::new()));
        tokio::spawn(read_leg_events(events, legs.clone()));
        Ok(Switch { session, legs, pid })
    }

    async fn api(&self, cmd: &str) -> String {
        match self.session.api(cmd).await {
            Ok(r) => r.body,
            Err(e) => format!("-ERR {e}"),
        }
    }

    /// The switch's "N session(s) since startup" counter.
    async fn sessions_since_startup(&self) -> Option<u64> {
        let status = self.api("status").await;
        status.lines().find_map(|l| {
            let l = l.trim();
            l.strip_suffix("session(s) since startup")
                .and_then(|n| n.trim().parse().ok())
        })
    }

    /// Places one call: `bgapi originate` sent now, its result recorded on the leg.
    fn originate(&self, settings: &Settings, uuid: String, caller: String, ext: &str) {
        let cmd = format!(
            "originate {{origination_uuid={uuid},origination_caller_id_number={caller},\
             origination_caller_id_name={CALLER_NAME},originate_timeout=30}}{} &park()",
            settings.dial_string(ext)
        );
        self.legs.lock().unwrap().insert(
            uuid.clone(),
            Leg {
                sent_at: Some(Instant::now()),
                ..Leg::default()
            },
        );
        let session = self.session.clone();
        let legs = self.legs.clone();
        tokio::spawn(async move {
            let result = match session.bgapi(&cmd).await {
                Ok(job) => job.body().unwrap_or("").trim().to_string(),
                Err(e) => format!("-ERR {e}"),
            };
            if !result.starts_with("+OK") {
                if let Some(leg) = legs.lock().unwrap().get_mut(&uuid) {
                    leg.originate_error = Some(result);
                }
            }
        });
    }
}

/// The switch's pid from its own `run_dir` (the pid file it writes), else `pidof`.
async fn find_switch_pid(session: &InboundSession) -> Result<u32, String> {
    if let Ok(r) = session.api("global_getvar run_dir").await {
        let dir = r.body.trim().to_string();
        if let Ok(text) = std::fs::read_to_string(format!("{dir}/freeswitch.pid")) {
            if let Ok(pid) = text.trim().parse::<u32>() {
                if is_freeswitch(pid) {
                    return Ok(pid);
                }
            }
        }
    }
    let out = Command::new("pidof")
        .arg("freeswitch")
        .output()
        .map_err(|e| format!("pidof: {e}"))?;
    let pids: Vec<u32> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    match pids.as_slice() {
        [pid] => Ok(*pid),
        [] => Err(
            "no freeswitch process on this host: its CPU cannot be read \
                   (set BENCH_FS_PID)"
                .into(),
        ),
        _ => Err(format!(
            "several freeswitch processes {pids:?}: set BENCH_FS_PID"
        )),
    }
}

fn micros(event: &voxbridge::esl::event::Event, header: &str) -> Option<u64> {
    event
        .header(header)
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
}

async fn read_leg_events(mut events: EventStream, legs: Arc<Mutex<HashMap<String, Leg>>>) {
    while let Some(item) = events.recv().await {
        let SocketEvent::Event(event) = item else {
            if let SocketEvent::Closed(reason) = item {
                eprintln!("switch bench: inbound ESL closed: {reason:?}");
            }
            continue;
        };
        let Some(uuid) = event.unique_id() else {
            continue;
        };
        let now = Instant::now();
        let mut legs = legs.lock().unwrap();
        let Some(leg) = legs.get_mut(uuid) else {
            continue;
        };
        match event.name() {
            "CHANNEL_ANSWER" => {
                leg.answered_at = Some(now);
            }
            "CHANNEL_HANGUP_COMPLETE" => {
                leg.cause = Some(event.header("Hangup-Cause").unwrap_or("?").to_string());
                if let (Some(answered), Some(ended)) = (
                    micros(&event, "Caller-Channel-Answered-Time"),
                    micros(&event, "Caller-Channel-Hangup-Time"),
                ) {
                    leg.answered_for = Some(Duration::from_micros(ended.saturating_sub(answered)));
                } else {
                    leg.answered_for = Some(Duration::ZERO);
                }
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------- the applications

/// What the two applications saw, by caller-id number.
#[derive(Default)]
struct AppLog {
    /// voxbridge answer fetches and httapi document fetches.
    fetches: Mutex<u64>,
    /// voxbridge hangup callbacks (From) and httapi closing requests (Caller-Caller-ID-Number).
    callbacks: Mutex<HashSet<String>>,
    /// Callbacks that did not say what the call should have ended with.
    odd_callbacks: Mutex<Vec<String>>,
}

fn form_value(body: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// voxbridge's application: the answer document and the hangup-callback receiver.
async fn start_voxbridge_app(log: Arc<AppLog>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let document = format!("<Response><Play>{TONE}</Play><Hangup/></Response>");
    let router = axum::Router::new()
        .route(
            "/answer",
            post(move |State(log): State<Arc<AppLog>>| {
                let document = document.clone();
                async move {
                    *log.fetches.lock().unwrap() += 1;
                    ([("content-type", "application/xml")], document)
                }
            }),
        )
        .route(
            "/hangup",
            post(|State(log): State<Arc<AppLog>>, body: String| async move {
                let from = form_value(&body, "From").unwrap_or_default();
                let cause = form_value(&body, "HangupCause").unwrap_or_default();
                let source = form_value(&body, "HangupSource").unwrap_or_default();
                if cause != "NORMAL_CLEARING" || source != "Answer XML" {
                    log.odd_callbacks.lock().unwrap().push(format!(
                        "From={from} HangupCause={cause} HangupSource={source}"
                    ));
                }
                log.callbacks.lock().unwrap().insert(from);
                "ok"
            }),
        )
        .with_state(log);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// mod_httapi's application on 127.0.0.1:8085: the same call as an httapi document. The
/// module sends GET with the channel's data in the query; its last request, when the
/// channel reports, carries `exiting=true`.
async fn start_httapi_app(log: Arc<AppLog>) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(HTTAPI_LISTEN)
        .await
        .map_err(|e| format!("cannot listen on {HTTAPI_LISTEN} (httapi's URL): {e}"))?;
    let document = format!(
        "<document type=\"text/freeswitch-httapi\"><work>\
         <execute application=\"answer\"/><playback file=\"{TONE}\"/><hangup/>\
         </work></document>"
    );
    let router = axum::Router::new()
        .route(
            "/",
            any(
                move |State(log): State<Arc<AppLog>>, Query(q): Query<HashMap<String, String>>| {
                    let document = document.clone();
                    async move {
                        if q.get("exiting").map(String::as_str) == Some("true") {
                            let from = q.get("Caller-Caller-ID-Number").cloned();
                            log.callbacks
                                .lock()
                                .unwrap()
                                .insert(from.unwrap_or_default());
                        } else {
                            *log.fetches.lock().unwrap() += 1;
                        }
                        ([("content-type", "text/xml")], document)
                    }
                },
            ),
        )
        .with_state(log);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Ok(())
}

// ---------------------------------------------------------------- voxbridge

/// The binary under test: `BENCH_VOXBRIDGE`, else the one cargo built with this bench.
fn voxbridge_binary() -> String {
    env_str("BENCH_VOXBRIDGE", env!("CARGO_BIN_EXE_voxbridge"))
}

struct Voxbridge {
    child: Child,
    dir: tempfile::TempDir,
}

impl Voxbridge {
    fn start(app: SocketAddr) -> Result<Voxbridge, String> {
        // Fail clearly if someone else holds the dialplan's target port.
        drop(std::net::TcpListener::bind(VOXBRIDGE_ESL).map_err(|e| {
            format!(
                "cannot listen on {VOXBRIDGE_ESL} (the dialplan's socket target): {e} — \
                 another voxbridge or a live test holds it; take the switch's lock"
            )
        })?);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let cfg = dir.path().join("voxbridge.toml");
        std::fs::write(
            &cfg,
            format!(
                r#"
[esl]
listen = "{VOXBRIDGE_ESL}"
[api]
listen = "127.0.0.1:0"
[store]
url = "sqlite://{db}"
[app]
default_answer_url = "http://{app}/answer"
default_hangup_url = "http://{app}/hangup"
[[account]]
auth_id = "MA0000000001"
auth_token = "bench-token"
[[route]]
destination = "{VOXBRIDGE_EXT}"
answer_url = "http://{app}/answer"
hangup_url = "http://{app}/hangup"
account = "MA0000000001"
"#,
                db = dir.path().join("voxbridge.db").display(),
            ),
        )
        .map_err(|e| e.to_string())?;
        let stderr =
            std::fs::File::create(dir.path().join("voxbridge.log")).map_err(|e| e.to_string())?;
        let mut child = Command::new(voxbridge_binary())
            .args(["serve", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("start voxbridge: {e}"))?;
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        if !line.contains("esl=") {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.path().join("voxbridge.log")).unwrap_or_default();
            return Err(format!("voxbridge did not start: {line:?} {log}"));
        }
        Ok(Voxbridge { child, dir })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it (SIGTERM, graceful) and returns its warnings and errors.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(self.dir.path().join("voxbridge.log")).unwrap_or_default()
    }
}

impl Drop for Voxbridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A profiler (or tracer) attached to voxbridge for one phase: `BENCH_ATTACH`.
struct Attached(Child);

impl Attached {
    fn start(template: &str, pid: u32) -> Option<Attached> {
        let cmd = template.replace("{pid}", &pid.to_string());
        eprintln!("switch bench: attaching: {cmd}");
        let child = Command::new("sh")
            .args(["-c", &format!("exec {cmd}")])
            .spawn();
        match child {
            Ok(c) => {
                // perf and strace need a moment to attach to every thread.
                std::thread::sleep(Duration::from_millis(500));
                Some(Attached(c))
            }
            Err(e) => {
                eprintln!("switch bench: BENCH_ATTACH failed: {e}");
                None
            }
        }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------- one phase

struct PhaseResult {
    controller: Controller,
    calls: usize,
    complete: usize,
    switch_cpu_ms: f64,
    voxbridge_cpu_ms: Option<f64>,
    bench_cpu_ms: f64,
    setup_p50: Duration,
    setup_p99: Duration,
    /// How long the calling leg stayed answered (the switch's clock, 20 ms steps): the
    /// tone plus whatever the controller adds before and after it.
    held_p50: Duration,
    switch_rss_peak_kib: u64,
    voxbridge_hwm_kib: Option<u64>,
    problems: Vec<String>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Phase<'a> {
    settings: &'a Settings,
    switch: &'a Switch,
    log: &'a AppLog,
    voxbridge: Option<&'a Voxbridge>,
    ticks: f64,
}

impl Phase<'_> {
    /// Places `calls` calls through `controller` at the configured rate and waits until
    /// each is complete (or can no longer become so). `tag` keeps caller ids unique.
    async fn run(
        &self,
        controller: Controller,
        calls: usize,
        tag: usize,
        measure: bool,
    ) -> PhaseResult {
        let fs_pid = self.switch.pid;
        let vb_pid = self.voxbridge.map(Voxbridge::pid);
        let own_pid = std::process::id();
        let attached = match (&self.settings.attach, vb_pid) {
            (Some(t), Some(pid)) if measure && controller == Controller::Voxbridge => {
                Attached::start(t, pid)
            }
            _ => None,
        };
        let sessions_before = self.switch.sessions_since_startup().await;
        self.log.callbacks.lock().unwrap().clear();
        self.log.odd_callbacks.lock().unwrap().clear();
        *self.log.fetches.lock().unwrap() = 0;

        // RSS of the switch, sampled while the calls run.
        let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let sampler = {
            let sampling = sampling.clone();
            tokio::spawn(async move {
                let mut peak = status_kib(fs_pid, "VmRSS");
                while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    peak = peak.max(status_kib(fs_pid, "VmRSS"));
                }
                peak
            })
        };

        let fs_before = cpu_secs(fs_pid, self.ticks);
        let vb_before = vb_pid.map(|p| cpu_secs(p, self.ticks));
        let own_before = cpu_secs(own_pid, self.ticks);

        let interval = Duration::from_secs_f64(1.0 / self.settings.rate);
        let start = tokio::time::Instant::now();
        let mut placed = Vec::with_capacity(calls);
        for i in 0..calls {
            tokio::time::sleep_until(start + interval * i as u32).await;
            let uuid = uuid::Uuid::new_v4().to_string();
            let caller = format!("9{tag:02}{}{i:06}", controller.digit());
            self.switch.originate(
                self.settings,
                uuid.clone(),
                caller.clone(),
                controller.extension(),
            );
            placed.push((uuid, caller));
        }

        // Wait for every call to end and its callback to arrive, or to fail for good.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let done = {
                let legs = self.switch.legs.lock().unwrap();
                let callbacks = self.log.callbacks.lock().unwrap();
                placed.iter().all(|(uuid, caller)| {
                    legs.get(uuid).is_some_and(|l| {
                        l.originate_error.is_some()
                            || (l.cause.is_some() && callbacks.contains(caller))
                    })
                })
            };
            if done || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Let the trailing work of the last calls (channel destruction, the outbox row
        // marked delivered) land inside the measurement.
        tokio::time::sleep(Duration::from_millis(500)).await;

        let fs_cpu = cpu_secs(fs_pid, self.ticks) - fs_before;
        let vb_cpu = vb_pid
            .zip(vb_before)
            .map(|(p, b)| cpu_secs(p, self.ticks) - b);
        let own_cpu = cpu_secs(own_pid, self.ticks) - own_before;
        sampling.store(false, std::sync::atomic::Ordering::Relaxed);
        let switch_rss_peak_kib = sampler.await.unwrap_or(0);
        if let Some(a) = attached {
            a.stop();
        }
        let sessions_after = self.switch.sessions_since_startup().await;

        // Judge every call.
        let mut problems = Vec::new();
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        let mut setups = Vec::with_capacity(calls);
        let mut held = Vec::with_capacity(calls);
        let mut complete = 0;
        {
            let mut legs = self.switch.legs.lock().unwrap();
            let callbacks = self.log.callbacks.lock().unwrap();
            for (uuid, caller) in &placed {
                let leg = legs.remove(uuid).unwrap_or_default();
                if let (Some(sent), Some(answered)) = (leg.sent_at, leg.answered_at) {
                    setups.push(answered.saturating_duration_since(sent));
                }
                if let Some(h) = leg.answered_for.filter(|h| !h.is_zero()) {
                    held.push(h);
                }
                let verdict = if let Some(e) = &leg.originate_error {
                    if !kinds.contains_key("originate failed") {
                        problems.push(format!("originate failed: {e}"));
                    }
                    "originate failed"
                } else if leg.answered_at.is_none() {
                    "never answered"
                } else if leg.cause.is_none() {
                    "did not end"
                } else if leg.answered_for.unwrap_or_default() < MIN_ANSWERED {
                    "answered < 150 ms (no tone)"
                } else if leg.cause.as_deref() != Some("NORMAL_CLEARING") {
                    "not NORMAL_CLEARING"
                } else if !callbacks.contains(caller) {
                    "no callback"
                } else {
                    complete += 1;
                    continue;
                };
                *kinds.entry(verdict).or_default() += 1;
            }
        }
        for (kind, n) in kinds {
            problems.push(format!("{n} call(s): {kind}"));
        }
        let odd = self.log.odd_callbacks.lock().unwrap();
        if let Some(first) = odd.first() {
            problems.push(format!(
                "{} unexpected callback(s), e.g. {first}",
                odd.len()
            ));
        }
        let expected_sessions = 2 * calls as u64;
        if let (Some(b), Some(a)) = (sessions_before, sessions_after) {
            if a - b != expected_sessions {
                problems.push(format!(
                    "the switch created {} sessions, {expected_sessions} expected: \
                     somebody else's calls ran too (their CPU is counted)",
                    a - b
                ));
            }
        }
        setups.sort();
        held.sort();
        PhaseResult {
            controller,
            calls,
            complete,
            switch_cpu_ms: fs_cpu * 1e3 / calls as f64,
            voxbridge_cpu_ms: match controller {
                Controller::Voxbridge => vb_cpu.map(|c| c * 1e3 / calls as f64),
                Controller::Httapi => None,
            },
            bench_cpu_ms: own_cpu * 1e3 / calls as f64,
            setup_p50: percentile(&setups, 0.50),
            setup_p99: percentile(&setups, 0.99),
            held_p50: percentile(&held, 0.50),
            switch_rss_peak_kib,
            voxbridge_hwm_kib: match controller {
                Controller::Voxbridge => vb_pid.map(|p| status_kib(p, "VmHWM")),
                Controller::Httapi => None,
            },
            problems,
        }
    }
}

// ---------------------------------------------------------------- report

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

const HEADER: &str = "  controller  complete    switch CPU/call  own CPU/call  setup p50   p99        held p50   switch RSS peak  own peak RSS";

fn print_row(r: &PhaseResult) {
    println!(
        "  {:<10}  {:>4}/{:<4}  {:>10.2} ms    {:>9}     {:>6.1} ms  {:>6.1} ms  {:>6.0} ms  {:>8.1} MiB      {:>9}",
        r.controller.name(),
        r.complete,
        r.calls,
        r.switch_cpu_ms,
        r.voxbridge_cpu_ms
            .map(|c| format!("{c:.3} ms"))
            .unwrap_or_else(|| "(inside)".into()),
        ms(r.setup_p50),
        ms(r.setup_p99),
        ms(r.held_p50),
        mib(r.switch_rss_peak_kib),
        r.voxbridge_hwm_kib
            .map(|k| format!("{:.1} MiB", mib(k)))
            .unwrap_or_else(|| "-".into()),
    );
    for p in &r.problems {
        println!("      ! {p}");
    }
}

/// Mean and spread (min–max) of a figure over the runs.
fn summary(values: &[f64], unit: &str, precision: usize) -> String {
    if values.is_empty() {
        return "-".into();
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let min = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let unit = if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    };
    format!("{mean:.precision$}{unit} ({min:.precision$}–{max:.precision$})")
}

fn print_means(settings: &Settings, runs: &[Vec<PhaseResult>]) {
    println!(
        "means of {} run(s), spread min–max in parentheses ({} calls at {}/s each, {:?}):",
        runs.len(),
        settings.calls,
        settings.rate,
        settings.mode
    );
    for controller in [Controller::Voxbridge, Controller::Httapi] {
        let rs: Vec<&PhaseResult> = runs
            .iter()
            .flatten()
            .filter(|r| r.controller == controller)
            .collect();
        if rs.is_empty() {
            continue;
        }
        let f = |g: &dyn Fn(&PhaseResult) -> f64| rs.iter().map(|r| g(r)).collect::<Vec<_>>();
        println!("  {}:", controller.name());
        println!(
            "    complete calls           {}/{}",
            rs.iter().map(|r| r.complete).sum::<usize>(),
            rs.iter().map(|r| r.calls).sum::<usize>()
        );
        println!(
            "    switch CPU per call      {}",
            summary(&f(&|r| r.switch_cpu_ms), "ms", 2)
        );
        if controller == Controller::Voxbridge {
            let own: Vec<f64> = rs.iter().filter_map(|r| r.voxbridge_cpu_ms).collect();
            println!("    voxbridge CPU per call   {}", summary(&own, "ms", 3));
            let hwm: Vec<f64> = rs
                .iter()
                .filter_map(|r| r.voxbridge_hwm_kib.map(mib))
                .collect();
            println!("    voxbridge peak RSS       {}", summary(&hwm, "MiB", 1));
            // The machine's speed drifts by ±10 % between runs (other tenants); the
            // bench process works on the same cores at the same time, so this ratio
            // compares builds across runs better than the CPU figure alone (session 8:
            // two SIP pairs gave 1.34 / 1.24 ms against 1.28 / 1.07 ms, and 3.19 / 3.18
            // against 2.98 / 2.97 here).
            let relative: Vec<f64> = rs
                .iter()
                .filter_map(|r| r.voxbridge_cpu_ms.map(|v| v / r.bench_cpu_ms))
                .filter(|x| x.is_finite())
                .collect();
            println!("    voxbridge / bench CPU    {}", summary(&relative, "", 2));
        }
        println!(
            "    setup p50                {}",
            summary(&f(&|r| ms(r.setup_p50)), "ms", 1)
        );
        println!(
            "    setup p99                {}",
            summary(&f(&|r| ms(r.setup_p99)), "ms", 1)
        );
        println!(
            "    answered call held p50   {}",
            summary(&f(&|r| ms(r.held_p50)), "ms", 0)
        );
        println!(
            "    switch RSS peak          {}",
            summary(&f(&|r| mib(r.switch_rss_peak_kib)), "MiB", 1)
        );
        println!(
            "    bench process CPU/call   {}",
            summary(&f(&|r| r.bench_cpu_ms), "ms", 3)
        );
    }
    let ratios: Vec<f64> = runs.iter().filter_map(|r| ratio(r)).collect();
    if !ratios.is_empty() {
        println!(
            "  ratio (switch + voxbridge) / (switch with httapi): {} (SPEC §9: switch alone ≤ 1.3)",
            summary(&ratios, "", 2)
        );
        let switch_only: Vec<f64> = runs.iter().filter_map(|r| switch_ratio(r)).collect();
        println!(
            "  ratio switch with voxbridge / switch with httapi: {}",
            summary(&switch_only, "", 2)
        );
    }
}

fn pair(run: &[PhaseResult]) -> Option<(&PhaseResult, &PhaseResult)> {
    let vb = run.iter().find(|r| r.controller == Controller::Voxbridge)?;
    let ht = run.iter().find(|r| r.controller == Controller::Httapi)?;
    Some((vb, ht))
}

fn ratio(run: &[PhaseResult]) -> Option<f64> {
    let (vb, ht) = pair(run)?;
    Some((vb.switch_cpu_ms + vb.voxbridge_cpu_ms?) / ht.switch_cpu_ms)
}

fn switch_ratio(run: &[PhaseResult]) -> Option<f64> {
    let (vb, ht) = pair(run)?;
    Some(vb.switch_cpu_ms / ht.switch_cpu_ms)
}

// ---------------------------------------------------------------- main

fn switch_reachable(addr: &str) -> bool {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
}

fn main() {
    // `cargo bench` passes `--bench`. `cargo test --all-targets` runs this binary without
    // it: it must not then place thousands of calls on a shared switch.
    if !std::env::args().any(|a| a == "--bench") {
        println!("switch bench: not started by `cargo bench` (no --bench argument); nothing done");
        return;
    }
    let settings = Settings::from_env();
    if !switch_reachable(&settings.esl) {
        println!(
            "switch bench: no FreeSWITCH inbound ESL at {} — skipped (start ../shared/freeswitch/fs)",
            settings.esl
        );
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Err(e) = rt.block_on(bench(settings)) {
        eprintln!("switch bench: {e}");
        std::process::exit(1);
    }
}

async fn bench(settings: Settings) -> Result<(), String> {
    let ticks = clock_ticks_per_sec();
    let switch = Switch::connect(&settings).await?;
    let version = switch.api("version").await;
    let vb_log = Arc::new(AppLog::default());
    let vb_app = start_voxbridge_app(vb_log.clone()).await;
    let ht_log = Arc::new(AppLog::default());
    start_httapi_app(ht_log.clone()).await?;
    println!(
        "switch bench: {} calls at {}/s per phase, mode {:?}, {} run(s); switch pid {} ({}); \
         voxbridge {}; {} CPUs",
        settings.calls,
        settings.rate,
        settings.mode,
        settings.runs,
        switch.pid,
        version.trim(),
        voxbridge_binary(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );

    let mut runs = Vec::new();
    for run in 0..settings.runs {
        let voxbridge = Voxbridge::start(vb_app)?;
        // The switch's own idle CPU, for scale: it is counted in every phase too.
        let idle_before = cpu_secs(switch.pid, ticks);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = (cpu_secs(switch.pid, ticks) - idle_before) * 1e3;
        println!(
            "run {}/{}: voxbridge pid {}; switch idle {:.0} ms CPU/s",
            run + 1,
            settings.runs,
            voxbridge.pid(),
            idle
        );
        let mut results = Vec::new();
        for controller in settings.controllers(run) {
            let log = match controller {
                Controller::Voxbridge => &vb_log,
                Controller::Httapi => &ht_log,
            };
            let phase = Phase {
                settings: &settings,
                switch: &switch,
                log,
                voxbridge: Some(&voxbridge),
                ticks,
            };
            let warm = phase.run(controller, WARMUP_CALLS, 90 + run, false).await;
            if warm.complete < warm.calls {
                println!(
                    "  warm-up through {}: {}/{} complete",
                    controller.name(),
                    warm.complete,
                    warm.calls
                );
                for p in &warm.problems {
                    println!("      ! {p}");
                }
            }
            println!("  {} phase, loadavg {}", controller.name(), loadavg());
            results.push(phase.run(controller, settings.calls, run, true).await);
        }
        let warnings = voxbridge.stop();
        println!("{HEADER}");
        for r in &results {
            print_row(r);
        }
        if let Some(x) = ratio(&results) {
            println!("  ratio (switch + voxbridge) / (switch with httapi): {x:.2}");
        }
        let lines: Vec<&str> = warnings.lines().collect();
        if !lines.is_empty() {
            let mut s = String::new();
            for l in lines.iter().take(3) {
                let _ = writeln!(s, "      {l}");
            }
            println!(
                "  voxbridge logged {} warning/error line(s):\n{s}",
                lines.len()
            );
        }
        runs.push(results);
    }
    print_means(&settings, &runs);
    Ok(())
}
