//! The SPEC §9 load benchmark: the real `voxbridge` binary against the in-process
//! FreeSWITCH simulator, a local answer server and a callback receiver, all on loopback.
//!
//! `cargo bench --bench calls` prints:
//! 1. complete calls per second (connect → document fetched → Speak → Hangup → CDR
//!    written → hangup callback delivered), and the p50/p99 time from the switch's TCP
//!    connect to voxbridge's first `sendmsg` (the switch-side view of accept → first
//!    command; the answer server answers at once, so this is voxbridge's own latency);
//! 2. resident memory growth of the voxbridge process per parked call, with 10,000
//!    concurrent calls parked on an empty `<Response/>`.
//!
//! Knobs (environment): `BENCH_CALLS` (default 20000), `BENCH_INFLIGHT`
//! (default 500), `BENCH_PARKED` (default 10000), `BENCH_STORE_URL` (default: a fresh
//! SQLite file; e.g. `postgres://voxbridge@127.0.0.1:5432/bench` for the PostgreSQL
//! store of a fleet, SPEC §14 — an empty database, migrated at start). The simulator shares the
//! machine's two cores with voxbridge, so the throughput figure is a lower bound.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use voxbridge_sim::{CallScript, Outcome, Sim, SimConfig};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Default)]
struct AppCounters {
    answers: AtomicU64,
    hangups: AtomicU64,
    seen: Mutex<HashSet<String>>,
}

/// The customer's application: documents by path, counts hangup callbacks.
async fn start_app(counters: Arc<AppCounters>) -> SocketAddr {
    use axum::routing::post;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let c1 = counters.clone();
    let c2 = counters.clone();
    let router = axum::Router::new()
        .route(
            "/answer",
            post(move || {
                let c = c1.clone();
                async move {
                    c.answers.fetch_add(1, Ordering::Relaxed);
                    (
                        [("content-type", "application/xml")],
                        "<Response><Speak>Hello</Speak><Hangup/></Response>",
                    )
                }
            }),
        )
        .route(
            "/parked",
            post(|| async { ([("content-type", "application/xml")], "<Response/>") }),
        )
        .route(
            "/hangup",
            post(move |body: String| {
                let c = c2.clone();
                async move {
                    if let Some(uuid) = form_value(&body, "CallUUID") {
                        if c.seen.lock().unwrap().insert(uuid) {
                            c.hangups.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    "ok"
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

fn form_value(body: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

struct Server {
    child: Child,
    esl: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(app: SocketAddr) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("voxbridge.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[esl]
listen = "127.0.0.1:0"
max_calls = 20000
[api]
listen = "127.0.0.1:0"
[store]
url = "{store}"
[app]
default_answer_url = "http://{app}/answer"
default_hangup_url = "http://{app}/hangup"
[outbox]
concurrency = 256
[[route]]
destination = "parked"
answer_url = "http://{app}/parked"
"#,
            store = std::env::var("BENCH_STORE_URL")
                .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("bench.db").display())),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_voxbridge"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start voxbridge");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let esl = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("esl="))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no listening line: {line:?}"));
    Server {
        child,
        esl,
        _dir: dir,
    }
}

/// Resident set size of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (user + system) a process has used, from /proc/<pid>/stat, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the full line: 11 and 12 here.
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn throughput(
    sim: &Sim,
    server: &Server,
    counters: &AppCounters,
    calls: usize,
    inflight: usize,
) {
    let cpu_before = cpu_secs(server.child.id());
    let own_before = cpu_secs(std::process::id());
    let limit = Arc::new(Semaphore::new(inflight));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(calls)));
    let failures = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(calls);
    for i in 0..calls {
        let permit = limit.clone().acquire_owned().await.unwrap();
        let handle = sim.place_call(
            CallScript::ringing()
                .caller(&format!("1555{i:07}"), "bench")
                .speak_per_word(Duration::from_millis(1))
                // The caller waits as long as a real one would, in real time.
                .originate_timeout(Duration::from_secs(100_000_000)),
            server.esl,
        );
        let latencies = latencies.clone();
        let failures = failures.clone();
        tasks.push(tokio::spawn(async move {
            let report = handle.report().await;
            drop(permit);
            match (&report.outcome, report.first_sendmsg_after) {
                (Outcome::Bye { .. }, Some(l)) => latencies.lock().unwrap().push(l),
                _ => {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let calls_done = started.elapsed();
    // A call is complete once its hangup callback is delivered.
    let deadline = Instant::now() + Duration::from_secs(120);
    while (counters.hangups.load(Ordering::Relaxed) as usize)
        < calls - failures.load(Ordering::Relaxed) as usize
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all_done = started.elapsed();
    let mut l = latencies.lock().unwrap().clone();
    l.sort();
    let delivered = counters.hangups.load(Ordering::Relaxed);
    println!("calls placed:                 {calls} ({inflight} in flight at most)");
    println!(
        "calls failed:                 {}",
        failures.load(Ordering::Relaxed)
    );
    println!("hangup callbacks delivered:   {delivered}");
    println!(
        "complete calls per second:    {:.0}  (all calls ended in {:.2} s, last callback at {:.2} s)",
        delivered as f64 / all_done.as_secs_f64(),
        calls_done.as_secs_f64(),
        all_done.as_secs_f64()
    );
    println!(
        "CPU per call:                 voxbridge {:.2} ms, simulator + app {:.2} ms",
        (cpu_secs(server.child.id()) - cpu_before) * 1e3 / calls as f64,
        (cpu_secs(std::process::id()) - own_before) * 1e3 / calls as f64
    );
    println!(
        "connect → first sendmsg:      p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&l, 0.50).as_secs_f64() * 1e3,
        percentile(&l, 0.99).as_secs_f64() * 1e3,
        l.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
}

async fn parked_memory(sim: &Sim, server: &Server, parked: usize) {
    let pid = server.child.id();
    let before = rss_kib(pid);
    let mut handles = Vec::with_capacity(parked);
    for i in 0..parked {
        handles.push(
            sim.place_call(
                CallScript::ringing()
                    .destination("parked")
                    .caller(&format!("1666{i:07}"), "parked")
                    .originate_timeout(Duration::from_secs(100_000_000)),
                server.esl,
            ),
        );
        if i % 500 == 499 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Wait until voxbridge has taken every call (the sim's live channels settle).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = rss_kib(pid);
        if (now == last && sim.live_channels() >= parked) || Instant::now() > deadline {
            break;
        }
        last = now;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(pid);
    println!(
        "parked calls:                 {} (sim live channels {})",
        parked,
        sim.live_channels()
    );
    println!(
        "voxbridge RSS:                {:.1} MiB before, {:.1} MiB with the calls parked",
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
    println!(
        "RSS growth per parked call:   {:.1} KiB (SPEC §9: ≤ 64 KiB)",
        (after.saturating_sub(before)) as f64 / parked as f64
    );
    for h in &handles {
        h.hang_up();
    }
    for h in handles {
        let _ = h.report_within(Duration::from_secs(30)).await;
    }
}

fn main() {
    let calls = env_usize("BENCH_CALLS", 20_000);
    let inflight = env_usize("BENCH_INFLIGHT", 500);
    let parked = env_usize("BENCH_PARKED", 10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let counters = Arc::new(AppCounters::default());
        let app = start_app(counters.clone()).await;
        let server = start_server(app);
        let sim = Sim::new(SimConfig {
            speed: 1000.0,
            ..SimConfig::default()
        });
        // Warm up connections and caches.
        throughput(&sim, &server, &counters, 200.min(calls), inflight).await;
        counters.hangups.store(0, Ordering::Relaxed);
        counters.seen.lock().unwrap().clear();
        println!("--- throughput ({inflight} calls in flight) ---");
        throughput(&sim, &server, &counters, calls, inflight).await;
        // Latency without queueing: few calls in flight, so the figure is voxbridge's
        // own accept → first sendmsg, not the wait behind hundreds of other calls.
        counters.hangups.store(0, Ordering::Relaxed);
        counters.seen.lock().unwrap().clear();
        let light = (calls / 5).max(100);
        println!("--- latency (10 calls in flight) ---");
        throughput(&sim, &server, &counters, light, 10).await;
        println!("--- parked calls ---");
        parked_memory(&sim, &server, parked).await;
    });
}
