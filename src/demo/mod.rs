//! `voxbridge demo`: a newcomer's first five minutes. The whole pipeline on one machine,
//! with no FreeSWITCH and no network: the real server (ESL listener, call engine, store,
//! outbox; SQLite in a temporary directory, ports chosen by the system), a local web app
//! serving the example documents and receiving callbacks ([`app`]), and the switch
//! simulator placing a handful of calls ([`scenario`]). Each call's story is printed in
//! plain words ([`story`]): what the caller heard, how the call ended, what was billed
//! and which callbacks the app received.
//!
//! Every story is also checked against what SPEC §4/§5.2 says must happen; the demo
//! exits non-zero if any call did not end as expected, so it doubles as a smoke test of
//! a build (`voxbridge demo --short` runs in the test suite).

pub mod app;
pub mod scenario;
pub mod story;

use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use voxbridge::config::{Account, Config, Route};
use voxbridge::server;
use voxbridge::store::{DeliveryState, StoredCdr};
use voxbridge_sim::{CallReport, Sim, SimConfig};

/// The account the demo's calls belong to; its token signs every request.
pub const DEMO_ACCOUNT: &str = "MA0000000DEMO";

/// Default clock speed of the full demo: a one-minute call takes three seconds.
pub const DEFAULT_SPEED: f64 = 20.0;
/// Default clock speed of `--short`: fast enough for a test suite.
pub const SHORT_SPEED: f64 = 60.0;

/// How long to wait, in real time, for a call to end and its callbacks to be delivered.
const CALL_DEADLINE: Duration = Duration::from_secs(30);
const DELIVERY_DEADLINE: Duration = Duration::from_secs(10);

/// `voxbridge demo` options.
#[derive(Clone, Debug, Default)]
pub struct DemoOptions {
    /// The six core calls only, on a fast clock.
    pub short: bool,
    /// How much faster than real time the simulated switch runs.
    pub speed: Option<f64>,
}

/// What the demo came to.
#[derive(Debug, PartialEq, Eq)]
pub struct DemoSummary {
    pub calls: usize,
    pub as_expected: usize,
}

impl DemoSummary {
    pub fn all_as_expected(&self) -> bool {
        self.calls == self.as_expected
    }
}

/// Logs for the demo: its output is the stories, and every problem is told in them, so
/// the server's own logs are off unless `RUST_LOG` asks for them (the broken-document
/// call would otherwise print an alarming ERROR line that is exactly what it shows).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// A directory under the system's temp dir, removed when dropped (the demo's store).
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn create() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("voxbridge-demo-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&path)
            .with_context(|| format!("cannot create a temporary directory {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the demo, writing the stories to `out`.
pub async fn run(options: &DemoOptions, out: &mut dyn Write) -> anyhow::Result<DemoSummary> {
    let speed = options.speed.unwrap_or(if options.short {
        SHORT_SPEED
    } else {
        DEFAULT_SPEED
    });
    anyhow::ensure!(
        speed.is_finite() && (0.1..=10_000.0).contains(&speed),
        "--speed {speed}: expected a number from 0.1 to 10000"
    );
    let started = Instant::now();
    let scratch = ScratchDir::create()?;
    let token = uuid::Uuid::new_v4().simple().to_string();
    let web = app::DemoApp::start(&token)
        .await
        .context("cannot start the demo web app on 127.0.0.1")?;
    let scenarios = scenario::scenarios(options.short, speed);

    let db = scratch.0.join("voxbridge.db");
    let config = demo_config(&web, &token, &db, &scenarios)?;
    let running = server::start(config)
        .await
        .context("cannot start the voxbridge server")?;

    writeln!(
        out,
        "voxbridge demo: the whole pipeline on this machine, no FreeSWITCH, no network.\n\
         \x20 switch    the FreeSWITCH simulator (src/sim/), clock x{speed} (a simulated minute takes {:.1} s)\n\
         \x20 voxbridge ESL {} | REST API http://{} | store {} (temporary)\n\
         \x20 web app   {} serves examples/documents/, receives callbacks, verifies X-Voxbridge-Signature\n\
         \x20 account   {DEMO_ACCOUNT} (its auth_token signs every request)\n",
        60.0 / speed,
        running.esl_addr,
        running.api_addr,
        db.display(),
        web.base_url(),
    )?;

    let sim = Sim::new(SimConfig {
        speed,
        // The switch closes a socket that stays silent 25 s; keep that in real time so a
        // busy machine is not mistaken for a dead voxbridge.
        first_packet_timeout: Duration::from_secs_f64(25.0 * speed),
        ..SimConfig::default()
    });
    // All calls at once, as a switch would send them; stories are told in order.
    let handles: Vec<_> = scenarios
        .iter()
        .map(|s| sim.place_call(s.script.clone(), running.esl_addr))
        .collect();

    let mut as_expected = 0;
    let total = scenarios.len();
    for (i, (scenario, handle)) in scenarios.iter().zip(handles).enumerate() {
        let uuid = handle.uuid.clone();
        let report = match handle.report_within(CALL_DEADLINE).await {
            Some(r) => r,
            None => {
                writeln!(
                    out,
                    "Call {} of {total}: {}\n  => NOT AS EXPECTED: the call did not end within {} s\n",
                    i + 1,
                    scenario.title,
                    CALL_DEADLINE.as_secs()
                )?;
                continue;
            }
        };
        let cdr = settled_cdr(&running, &report).await;
        let received = web.received_for(&uuid);
        let answer_url = web.document_url(scenario.document);
        let told = story::tell(
            i + 1,
            total,
            &story::CallFacts {
                scenario,
                answer_url: &answer_url,
                report: &report,
                cdr: cdr.as_ref(),
                received: &received,
            },
        );
        writeln!(out, "{}", told.text)?;
        if told.problems.is_empty() {
            as_expected += 1;
        }
    }

    running.shutdown().await;
    let summary = DemoSummary {
        calls: total,
        as_expected,
    };
    writeln!(
        out,
        "{} of {} calls ended as expected ({:.1} s).",
        summary.as_expected,
        summary.calls,
        started.elapsed().as_secs_f64()
    )?;
    if summary.all_as_expected() {
        writeln!(
            out,
            "Next: `voxbridge serve --config examples/voxbridge.toml` with a real FreeSWITCH \
             (dialplan/freeswitch/), and `cargo run --example app` for an application that \
             serves documents and verifies signatures."
        )?;
    }
    drop(scratch);
    Ok(summary)
}

/// The server's configuration: loopback on free ports, the temporary store, one account,
/// a `[[route]]` per scenario to its document on the demo app, callbacks to the app.
fn demo_config(
    web: &app::DemoApp,
    token: &str,
    db: &std::path::Path,
    scenarios: &[scenario::Scenario],
) -> anyhow::Result<Config> {
    let mut config = Config::default();
    config.esl.listen = "127.0.0.1:0".parse()?;
    config.api.listen = "127.0.0.1:0".parse()?;
    config.store.url = format!("sqlite://{}", db.display());
    config.accounts = vec![Account {
        auth_id: DEMO_ACCOUNT.into(),
        auth_token: token.into(),
    }];
    config.app.default_hangup_url = format!("{}{}", web.base_url(), app::HANGUP_PATH);
    // A first failed delivery would wait 1 s before the retry; the demo app is local and
    // answers at once, so keep retries quick should the machine hiccup.
    config.outbox.initial_backoff = 0.1;
    config.routes = scenarios
        .iter()
        .map(|s| Route {
            destination: s.destination.into(),
            answer_url: web.document_url(s.document),
            account: DEMO_ACCOUNT.into(),
            ..Route::default()
        })
        .collect();
    Ok(config)
}

/// The call's CDR once none of its callbacks is pending (or the deadline passed).
async fn settled_cdr(running: &server::Running, report: &CallReport) -> Option<StoredCdr> {
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    loop {
        let cdr = running
            .store
            .cdr(DEMO_ACCOUNT, &report.uuid)
            .await
            .ok()
            .flatten();
        let settled = cdr.as_ref().is_some_and(|c| {
            !c.deliveries.is_empty()
                && c.deliveries
                    .iter()
                    .all(|d| d.status != DeliveryState::Pending)
        });
        if settled || Instant::now() >= deadline {
            return cdr;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
