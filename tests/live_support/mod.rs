//! The live suite's machinery (SPEC §10): one harness — the real `voxbridge` binary, a
//! local application, and a switch reached over one inbound ESL session — and one runner
//! that places a scenario's call and checks what the caller saw, what voxbridge reported
//! (callbacks, and the CDR read back over REST) and, where the scenario asks, what the
//! REST API shows while the call is up ([`rest`]). [`run_suite`] runs the scenarios
//! concurrently against one harness, then the stress run ([`stress`]) alone, and prints
//! the summary line.
//!
//! Two backends run the same scenarios ([`scenarios::all`]):
//! - a real FreeSWITCH, when `VOXBRIDGE_TEST_FS_ESL=host:port` is set ([`LiveConfig`]); its
//!   dialplan (the shipped `dialplan/freeswitch/voxbridge.xml`) connects to voxbridge on
//!   127.0.0.1:8084, so one voxbridge listens there for the whole run, started by the
//!   first live test ([`run_live`]);
//! - the in-process simulator, through its inbound side (`bgapi originate` to extensions
//!   7000/7001 that connect to voxbridge), so the suite's own code runs on every build.
#![allow(dead_code)]

pub mod app;
pub mod caller;
use crate::common;
pub mod process;
pub mod rest;
pub mod scenarios;
pub mod stress;

use app::{App, Params, TagLog};
use caller::{LegEnd, SwitchTarget, Switchboard};
use process::VoxbridgeProcess;
use rest::Rest;
use scenarios::{Action, Expect, Name, Originate, Probe, Scenario, Timing};
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use voxbridge_sim::{CallScript, InboundServer, Sim};

/// Settings of the live run, from the environment.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    pub switch: SwitchTarget,
    /// Where voxbridge listens for the switch's `socket` app (the dialplan's address).
    pub esl_listen: String,
    /// Who may connect to it.
    pub esl_allow: Vec<String>,
}

impl LiveConfig {
    /// `None` unless `VOXBRIDGE_TEST_FS_ESL` is set.
    pub fn from_env() -> Option<LiveConfig> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let esl = var("VOXBRIDGE_TEST_FS_ESL")?;
        Some(LiveConfig {
            switch: SwitchTarget {
                esl: esl.trim().to_string(),
                password: var("VOXBRIDGE_TEST_FS_PASSWORD").unwrap_or_else(|| "ClueCon".into()),
                profile: var("VOXBRIDGE_TEST_FS_PROFILE").unwrap_or_else(|| "external".into()),
                sip_target: var("VOXBRIDGE_TEST_FS_SIP_TARGET")
                    .unwrap_or_else(|| "127.0.0.1:5060".into()),
            },
            esl_listen: var("VOXBRIDGE_TEST_ESL_LISTEN").unwrap_or_else(|| "127.0.0.1:8084".into()),
            esl_allow: var("VOXBRIDGE_TEST_ESL_ALLOW")
                .map(|v| v.split(',').map(|c| c.trim().to_string()).collect())
                .unwrap_or_else(|| vec!["127.0.0.0/8".into(), "::1/128".into()]),
        })
    }
}

/// Everything one run needs. Field order is drop order: the switch side goes first.
pub struct Harness {
    pub backend: &'static str,
    pub target: SwitchTarget,
    /// The one inbound ESL session every caller of the run uses.
    pub board: Arc<Switchboard>,
    sim: Option<(Sim, InboundServer)>,
    pub vb: VoxbridgeProcess,
    pub app: App,
}

impl Harness {
    /// voxbridge and the app, against a real switch. Checks first that the switch's
    /// inbound ESL answers, so a wrong address or password fails with a clear message.
    pub async fn live(cfg: &LiveConfig) -> Result<Harness, String> {
        let board = Switchboard::connect(&cfg.switch).await.map_err(|e| {
            format!(
                "cannot use the switch's inbound ESL at {} (VOXBRIDGE_TEST_FS_ESL / _PASSWORD): {e}",
                cfg.switch.esl
            )
        })?;
        let status = board.api("status").await?;
        if !status.contains("is ready") {
            return Err(format!("the switch is not ready: {}", status.trim()));
        }
        let app = App::start().await?;
        let vb = VoxbridgeProcess::start(&cfg.esl_listen, &cfg.esl_allow, &app.base).await?;
        Ok(Harness {
            backend: "FreeSWITCH",
            target: cfg.switch.clone(),
            board: Arc::new(board),
            sim: None,
            vb,
            app,
        })
    }

    /// The same, against the simulator: its inbound side on a free port, extension 7000
    /// answered by the "dialplan" and 7001 handed over ringing, both connecting to
    /// voxbridge like `socket 127.0.0.1:<port> async full`. Built through
    /// [`Harness::live`], so the live path (preflight, fixed ESL port) runs on every build.
    pub async fn simulated() -> Result<Harness, String> {
        let sim = Sim::with_speed(1.0);
        let inbound = sim
            .listen_inbound("127.0.0.1:0".parse().expect("literal"), "ClueCon")
            .await
            .map_err(|e| format!("simulator inbound port: {e}"))?;
        let esl: std::net::SocketAddr = {
            // A free port for voxbridge's ESL listener, like the dialplan's fixed 8084.
            let probe = std::net::TcpListener::bind("127.0.0.1:0")
                .map_err(|e| format!("no free port: {e}"))?;
            probe
                .local_addr()
                .map_err(|e| format!("no free port: {e}"))?
        };
        // Speech takes time as on a real switch (the TTS scenario checks billed time).
        let tts = Duration::from_millis(250);
        sim.set_originate_extension("7000", esl, CallScript::answered().speak_per_word(tts));
        // The test destinations of the shipped switch (its README): 7002 answers, 7003 is
        // busy, 7004 rings forever, 7005 echoes, 7007 answers and presses 1234# a second
        // later; any other number has no route.
        let answers = voxbridge_sim::Callee::Answers {
            after: Duration::ZERO,
            hangs_up_after: None,
        };
        let callees = |script: CallScript| {
            script
                .callee("7002", answers)
                .callee("7003", voxbridge_sim::Callee::Refuses(486))
                .callee("7004", voxbridge_sim::Callee::RingsForever)
                .callee(
                    "7005",
                    voxbridge_sim::Callee::Answers {
                        after: Duration::ZERO,
                        hangs_up_after: None,
                    },
                )
                .callee_media("7005", voxbridge_sim::CalleeMedia::Echo)
                .callee("7007", answers)
                .callee_presses("7007", Duration::from_secs(1), "1234#")
        };
        sim.set_originate_extension(
            "7001",
            esl,
            callees(CallScript::ringing().speak_per_word(tts)),
        );
        let cfg = LiveConfig {
            switch: SwitchTarget {
                esl: inbound.local_addr().to_string(),
                password: "ClueCon".into(),
                profile: "external".into(),
                sip_target: "127.0.0.1:5060".into(),
            },
            esl_listen: esl.to_string(),
            esl_allow: vec!["127.0.0.0/8".into()],
        };
        let mut h = Harness::live(&cfg).await?;
        h.backend = "simulator";
        h.sim = Some((sim, inbound));
        Ok(h)
    }
}

/// Settings of a live run against Asterisk (SPEC §16): FreeSWITCH places the calls
/// (`VOXBRIDGE_TEST_FS_ESL`) into Asterisk's SIP port (`VOXBRIDGE_TEST_AST_SIP`, the
/// bundle's `ast env` sets it), whose dialplan hands them to voxbridge's FastAGI listener
/// on 127.0.0.1:4573; ARI at `VOXBRIDGE_TEST_AST_ARI`. `None` unless all are set.
pub fn asterisk_from_env() -> Option<(LiveConfig, String)> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let mut cfg = LiveConfig::from_env()?;
    cfg.switch.sip_target = var("VOXBRIDGE_TEST_AST_SIP")?;
    // The ESL listener is not used by these calls: a free port, so a FreeSWITCH run on
    // 8084 is not disturbed.
    cfg.esl_listen = "127.0.0.1:0".into();
    let ari = var("VOXBRIDGE_TEST_AST_ARI")?;
    // http(s) media is cached where Asterisk (same host) can read it, outside the tree.
    let media = std::env::temp_dir().join(format!("voxbridge-live-media-{}", std::process::id()));
    // AMI (issue 17): the bundle's manager interface, on its usual address unless
    // `ast env` says otherwise.
    let extra = format!(
        "[asterisk]\nenabled = true\nagi_listen = \"{}\"\nari_url = \"{ari}\"\nari_user = \"{}\"\nari_password = \"{}\"\nmedia_cache_dir = {:?}\ndial_number_template = \"SIP/{{number}}@self\"\nami_address = \"{}\"\nami_user = \"{}\"\nami_secret = \"{}\"\n",
        var("VOXBRIDGE_TEST_AST_AGI_LISTEN").unwrap_or_else(|| "127.0.0.1:4573".into()),
        var("AST_ARI_USER").unwrap_or_else(|| "voxbridge".into()),
        var("AST_ARI_PASSWORD").unwrap_or_else(|| "voxbridge".into()),
        media.display().to_string(),
        var("AST_AMI").unwrap_or_else(|| "127.0.0.1:5038".into()),
        var("AST_AMI_USER").unwrap_or_else(|| "voxbridge".into()),
        var("AST_AMI_SECRET").unwrap_or_else(|| "voxbridge".into()),
    );
    Some((cfg, extra))
}

impl Harness {
    /// voxbridge with its FastAGI listener, the app, and FreeSWITCH as the caller into
    /// Asterisk.
    pub async fn asterisk(cfg: &LiveConfig, extra: &str) -> Result<Harness, String> {
        let board = Switchboard::connect(&cfg.switch).await.map_err(|e| {
            format!(
                "cannot use FreeSWITCH's inbound ESL at {} to place the calls: {e}",
                cfg.switch.esl
            )
        })?;
        let app = App::start().await?;
        let vb =
            VoxbridgeProcess::start_with(&cfg.esl_listen, &cfg.esl_allow, &app.base, extra).await?;
        Ok(Harness {
            backend: "Asterisk",
            target: cfg.switch.clone(),
            board: Arc::new(board),
            sim: None,
            vb,
            app,
        })
    }
}

/// One Asterisk scenario by name (`scenarios::asterisk::all`), all of them run once per
/// process against one voxbridge (the first test to get here runs them), like [`run_live`].
pub fn run_asterisk(name: &str) {
    let Some((cfg, extra)) = asterisk_from_env() else {
        static SAID: AtomicBool = AtomicBool::new(false);
        if !SAID.swap(true, Ordering::Relaxed) {
            say(
                "live Asterisk suite SKIPPED: set VOXBRIDGE_TEST_FS_ESL (the caller) and \
                 VOXBRIDGE_TEST_AST_SIP / VOXBRIDGE_TEST_AST_ARI (eval \"$(../shared/asterisk/ast env)\")",
            );
        }
        return;
    };
    let ari_url = std::env::var("VOXBRIDGE_TEST_AST_ARI").unwrap_or_default();
    type Reports = HashMap<String, Result<(), String>>;
    static RUN: std::sync::OnceLock<Result<Reports, String>> = std::sync::OnceLock::new();
    let results = RUN.get_or_init(|| {
        block_on_alone(async {
            // Concurrently, as on FreeSWITCH: voxbridge keeps Flite to one synthesis at a
            // time per Asterisk ([asterisk] tts_concurrency), which is what made the bundle
            // crash (a libflite segfault) when two channels synthesised at once. The
            // scenarios that bound a latency run alone after the batch.
            let h = Arc::new(Harness::asterisk(&cfg, &extra).await?);
            let (timed, rest): (Vec<_>, Vec<_>) = scenarios::asterisk::all()
                .into_iter()
                .partition(|s| s.timed());
            let mut set = tokio::task::JoinSet::new();
            for s in rest {
                let h = h.clone();
                set.spawn(async move { (s.name.to_string(), run_caller_retried(&h, &s).await) });
            }
            let mut out = HashMap::new();
            while let Some(done) = set.join_next().await {
                let (name, r) = done.map_err(|e| format!("a scenario task died: {e}"))?;
                out.insert(name, r);
            }
            for s in timed {
                let r = run_caller_retried(&h, &s).await;
                out.insert(s.name.to_string(), r);
            }
            out.insert(
                FLITE_CONCURRENT.to_string(),
                flite_concurrent(&h, &ari_url).await,
            );
            Ok::<_, String>(out)
        })
        .and_then(|r| r)
    });
    match results {
        Err(e) => panic!("{e}"),
        Ok(r) => match r.get(name) {
            Some(Ok(())) => {}
            Some(Err(report)) => panic!("{report}"),
            None => panic!("{name} is not an Asterisk scenario"),
        },
    }
}

/// [`run_scenario`] for the Asterisk suite, placed once more when the *caller's* leg
/// failed to set up its media: FreeSWITCH and the bundled Asterisk share one host and the
/// RTP range 20000–20999, and FreeSWITCH does not skip a port Asterisk holds — its leg
/// fails with `RTP Bind Error` and the originate with `-ERR INCOMPATIBLE_DESTINATION`
/// (seen once in five concurrent calls). That is the test machine, not voxbridge (whose
/// side of such a call is an ordinary caller hang-up); anything else is reported as is.
async fn run_caller_retried(h: &Harness, s: &Scenario) -> Result<(), String> {
    match run_scenario(h, s).await {
        Err(report) if report.contains("originate: got \"-ERR INCOMPATIBLE_DESTINATION\"") => {
            say(&format!(
                "[{}] {}: the caller's leg could not bind its RTP port (shared range with \
                 Asterisk); placing the call once more",
                h.backend, s.name
            ));
            run_scenario(h, s).await
        }
        other => other,
    }
}

/// The live Flite-safety test (issue 17): several calls placed at once, each speaking.
pub const FLITE_CONCURRENT: &str =
    "asterisk_flite_five_calls_speaking_at_once_all_complete_and_the_asterisk_survives";

/// [`FLITE_CONCURRENT`]: five calls that each Speak twice, placed together; every one must
/// pass the full checks (BYE, billed ≥ 1 s of real speech, callback and CDR), and
/// Asterisk must still answer ARI afterwards (a libflite crash takes the whole switch).
async fn flite_concurrent(h: &Arc<Harness>, ari_url: &str) -> Result<(), String> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let h = h.clone();
        set.spawn(async move { run_caller_retried(&h, &scenarios::asterisk::flite_call()).await });
    }
    let mut failures = Vec::new();
    while let Some(done) = set.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(report)) => failures.push(report),
            Err(e) => failures.push(format!("a call task died: {e}")),
        }
    }
    let client = voxbridge::http_client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let user = std::env::var("AST_ARI_USER").unwrap_or_else(|_| "voxbridge".into());
    let password = std::env::var("AST_ARI_PASSWORD").unwrap_or_else(|_| "voxbridge".into());
    match client
        .get(format!("{}/asterisk/info", ari_url.trim_end_matches('/')))
        .basic_auth(user, Some(password))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => failures.push(format!(
            "Asterisk's ARI answers {} after the calls",
            r.status()
        )),
        Err(e) => failures.push(format!("Asterisk is gone after the calls (ARI: {e})")),
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

/// A caller id unique to one call of this process: digits, like a phone number, so it
/// survives any SIP normalisation on its way to the `From` of the fetch.
fn next_tag() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    static BASE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        (std::process::id() ^ nanos) % 1000
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 10_000;
    format!("1555{base:03}{n:04}")
}

/// What was observed for one call.
struct Observed {
    tag: String,
    a_uuid: String,
    originate: Result<String, String>,
    leg: Result<LegEnd, String>,
    /// (status, body, DELETE sent → caller leg hung up)
    api: Option<(u16, String, Option<Duration>)>,
    log: TagLog,
    /// Problems while acting (uuid_kill refused, DELETE failed to send, …).
    notes: Vec<String>,
    /// The REST DELETE route is not served by this build.
    api_missing: bool,
    /// `scheduled_hangup_at` as the live details showed it.
    scheduled_at: Option<time::OffsetDateTime>,
}

/// Places the scenario's call and checks it; `Err` carries a full report.
pub async fn run_scenario(h: &Harness, s: &Scenario) -> Result<(), String> {
    let tag = next_tag();
    let a_uuid = uuid::Uuid::new_v4().to_string();
    h.app.register(&tag, &s.docs);
    let mut caller = h.board.caller(&a_uuid).await?;
    if s.needs_tts {
        if let Ok(reply) = caller.api("module_exists mod_flite").await {
            if reply.trim() == "false" {
                caller.cleanup().await;
                return Err(format!(
                    "[{}] {}: mod_flite missing on the switch (`api module_exists mod_flite` → false). \
                     <Speak> uses flite voices (slt/kal): run `load mod_flite` (and enable it in \
                     modules.conf.xml) to check this scenario.",
                    h.backend, s.name
                ));
            }
        }
    }
    let _cmd = if s.caller_sends_audio {
        caller.originate_running(
            &tag,
            s.ext.number(),
            s.originate_timeout,
            "&playback(silence_stream://-1)",
        )
    } else {
        caller.originate(&tag, s.ext.number(), s.originate_timeout)
    };
    let mut obs = Observed {
        tag: tag.clone(),
        a_uuid: a_uuid.clone(),
        originate: Err(String::new()),
        leg: Err(String::new()),
        api: None,
        log: TagLog::default(),
        notes: Vec::new(),
        api_missing: false,
        scheduled_at: None,
    };
    let rest = Rest::new(h.vb.account_url());
    // ---- while the call is up: the REST probes, then the caller's or the API's action
    let while_up: Vec<Probe> = s.probes.iter().filter(|p| p.while_up()).copied().collect();
    if !while_up.is_empty() {
        match call_uuid(h, &tag).await {
            Ok(uuid) => {
                let fetched_at = Instant::now();
                for probe in while_up {
                    let found = match probe {
                        Probe::LiveWhileUp { call_status } => {
                            rest::live_while_up(&rest, &uuid, &tag, s.ext.number(), call_status)
                                .await
                        }
                        Probe::ScheduleArmed { secs, .. } => {
                            match rest::schedule_armed(&rest, &uuid, secs).await {
                                Ok(at) => {
                                    obs.scheduled_at = Some(at);
                                    Vec::new()
                                }
                                Err(e) => vec![e],
                            }
                        }
                        Probe::ScheduleGone { at } => {
                            tokio::time::sleep_until(fetched_at + Duration::from_secs_f64(at))
                                .await;
                            rest::schedule_gone(&rest, &uuid).await
                        }
                        Probe::GoneAfterEnd
                        | Probe::PostCallMode { .. }
                        | Probe::LegCdr { .. }
                        | Probe::BargeInWithinMs(_)
                        | Probe::CalleeGoneWithin(_) => Vec::new(),
                    };
                    obs.notes.extend(found);
                }
            }
            Err(e) => obs.notes.push(e),
        }
    }
    let mut api_sent_at = None;
    // When the action that must end the callee was taken (Probe::CalleeGoneWithin),
    // and the callee when known before it was bridged.
    let mut acted_at = None;
    let mut ringing_leg = None;
    match s.action {
        Action::Nothing => {}
        Action::CallerCancels { after } => {
            // From the moment the Dial rings, not from the originate: a loaded machine
            // may take longer than `after` to hand the call over and fetch.
            match call_uuid(h, &tag).await {
                Ok(uuid) => {
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while !h.vb.log_lines_with(&uuid, 400).contains("app=\"bridge\"") {
                        if Instant::now() >= deadline {
                            obs.notes.push(format!("{uuid} never sent its bridge"));
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                Err(e) => obs.notes.push(e),
            }
            tokio::time::sleep(Duration::from_secs_f64(after)).await;
            if let Err(e) = caller.hang_up().await {
                obs.notes.push(e);
            }
        }
        Action::RestHangupCallee { after } => {
            match caller.originate_result(Duration::from_secs(15)).await {
                Ok(r) if r.starts_with("+OK") => {
                    tokio::time::sleep(Duration::from_secs_f64(after)).await;
                    match (call_uuid(h, &tag).await, b_leg_of(h, &tag).await) {
                        (Ok(a), Ok(b)) => {
                            obs.notes.extend(both_legs_live(&rest, &a, &b).await);
                            acted_at = Some(Instant::now());
                            match rest.delete(&format!("Call/{b}/")).await {
                                Ok(r) if r.status == 204 => {}
                                Ok(r) => obs.notes.push(format!(
                                    "DELETE of the B-leg answered {} {}",
                                    r.status, r.text
                                )),
                                Err(e) => obs.notes.push(e),
                            }
                        }
                        (Err(e), _) | (_, Err(e)) => obs.notes.push(e),
                    }
                }
                Ok(r) => obs.notes.push(format!(
                    "the call was never answered (originate: {r}); no callee to hang up"
                )),
                Err(e) => obs.notes.push(e),
            }
        }
        Action::CalleeHangsUp { after } | Action::CallerTalksThenCalleeHangsUp { after } => {
            match caller.originate_result(Duration::from_secs(15)).await {
                Ok(r) if r.starts_with("+OK") => {
                    if matches!(s.action, Action::CallerTalksThenCalleeHangsUp { .. }) {
                        let play = format!(
                            "uuid_broadcast {} tone_stream://%(1000,0,1004);loops=-1 aleg",
                            caller.a_uuid
                        );
                        match caller.api(&play).await {
                            Ok(r) if r.starts_with("+OK") => {}
                            Ok(r) => obs.notes.push(format!("{play}: {}", r.trim())),
                            Err(e) => obs.notes.push(e),
                        }
                    }
                    tokio::time::sleep(Duration::from_secs_f64(after)).await;
                    match b_leg_of(h, &tag).await {
                        Ok(b) => match caller.api(&format!("uuid_kill {b}")).await {
                            Ok(reply) if reply.starts_with("+OK") => {}
                            Ok(reply) => obs.notes.push(format!("uuid_kill {b}: {}", reply.trim())),
                            Err(e) => obs.notes.push(e),
                        },
                        Err(e) => obs.notes.push(e),
                    }
                }
                Ok(r) => obs.notes.push(format!(
                    "the call was never answered (originate: {r}); no callee to hang up"
                )),
                Err(e) => obs.notes.push(e),
            }
        }
        Action::CallerPresses { after, digits } => {
            match caller.originate_result(Duration::from_secs(15)).await {
                Ok(r) if r.starts_with("+OK") => {
                    tokio::time::sleep(Duration::from_secs_f64(after)).await;
                    acted_at = Some(Instant::now());
                    match caller
                        .api(&format!("uuid_send_dtmf {} {digits}", caller.a_uuid))
                        .await
                    {
                        Ok(r) if r.starts_with("+OK") => {}
                        Ok(r) => obs
                            .notes
                            .push(format!("uuid_send_dtmf {digits}: {}", r.trim())),
                        Err(e) => obs.notes.push(e),
                    }
                }
                Ok(r) => obs.notes.push(format!(
                    "the call was never answered (originate: {r}); no digits pressed"
                )),
                Err(e) => obs.notes.push(e),
            }
        }
        Action::RestHangupRingingCallee { after } => match ringing_leg_of(h, &tag).await {
            Ok((a, b)) => {
                tokio::time::sleep(Duration::from_secs_f64(after)).await;
                obs.notes.extend(ringing_leg_live(&rest, &a, &b).await);
                acted_at = Some(Instant::now());
                match rest.delete(&format!("Call/{b}/")).await {
                    Ok(r) if r.status == 204 => {}
                    Ok(r) => obs.notes.push(format!(
                        "DELETE of the ringing B-leg answered {} {}",
                        r.status, r.text
                    )),
                    Err(e) => obs.notes.push(e),
                }
                ringing_leg = Some(b);
            }
            Err(e) => obs.notes.push(e),
        },
        Action::RestHangupBridgedCaller { after } => {
            match caller.originate_result(Duration::from_secs(15)).await {
                Ok(r) if r.starts_with("+OK") => {
                    tokio::time::sleep(Duration::from_secs_f64(after)).await;
                    match (call_uuid(h, &tag).await, b_leg_of(h, &tag).await) {
                        (Ok(a), Ok(b)) => {
                            obs.notes.extend(both_legs_live(&rest, &a, &b).await);
                            let sent = Instant::now();
                            acted_at = Some(sent);
                            match rest.delete(&format!("Call/{a}/")).await {
                                Ok(r) => {
                                    api_sent_at = Some(sent);
                                    obs.api = Some((r.status, r.text, None));
                                }
                                Err(e) => obs.notes.push(e),
                            }
                        }
                        (Err(e), _) | (_, Err(e)) => obs.notes.push(e),
                    }
                }
                Ok(r) => obs.notes.push(format!(
                    "the call was never answered (originate: {r}); nothing to act on"
                )),
                Err(e) => obs.notes.push(e),
            }
        }
        Action::RestStopsRecordings { after } => {
            match caller.originate_result(Duration::from_secs(15)).await {
                Ok(r) if r.starts_with("+OK") => {
                    tokio::time::sleep(Duration::from_secs_f64(after)).await;
                    match call_uuid(h, &tag).await {
                        Ok(uuid) => match rest.delete(&format!("Call/{uuid}/Record/")).await {
                            Ok(r) if r.status == 204 => {}
                            Ok(r) => obs.notes.push(format!(
                                "DELETE Call/{uuid}/Record/ answered {} {}",
                                r.status, r.text
                            )),
                            Err(e) => obs.notes.push(e),
                        },
                        Err(e) => obs.notes.push(e),
                    }
                }
                Ok(r) => obs.notes.push(format!(
                    "the call was never answered (originate: {r}); nothing to stop"
                )),
                Err(e) => obs.notes.push(e),
            }
        }
        Action::CallerHangsUp { after } | Action::RestHangup { after } => {
            match caller.originate_result(Duration::from_secs(15)).await {
                Ok(r) if r.starts_with("+OK") => {
                    tokio::time::sleep(Duration::from_secs_f64(after)).await;
                    if matches!(s.action, Action::CallerHangsUp { .. }) {
                        if let Err(e) = caller.hang_up().await {
                            obs.notes.push(e);
                        }
                    } else {
                        match call_uuid(h, &tag).await {
                            Ok(uuid) => {
                                let sent = Instant::now();
                                match rest.delete(&format!("Call/{uuid}/")).await {
                                    Ok(r) => {
                                        obs.api_missing =
                                            r.status == 404 && r.text.trim().is_empty();
                                        api_sent_at = Some(sent);
                                        obs.api = Some((r.status, r.text, None));
                                    }
                                    Err(e) => obs.notes.push(e),
                                }
                            }
                            Err(e) => obs.notes.push(e),
                        }
                    }
                }
                Ok(r) => obs.notes.push(format!(
                    "the call was never answered (originate: {r}); nothing to act on"
                )),
                Err(e) => obs.notes.push(e),
            }
        }
    }
    for probe in &s.probes {
        if let (Probe::CalleeGoneWithin(max), Some(at)) = (probe, acted_at) {
            let b = match &ringing_leg {
                Some(b) => Ok(b.clone()),
                None => b_leg_of(h, &tag).await,
            };
            match b {
                Ok(b) => obs
                    .notes
                    .extend(callee_gone_within(&caller, &b, at, *max).await),
                Err(e) => obs.notes.push(e),
            }
        }
    }
    if obs.api_missing {
        // The REST API of this build does not serve the route yet: end the call as the
        // caller would, and report the scenario as not runnable rather than guess.
        let _ = caller.hang_up().await;
        caller.cleanup().await;
        return Err(pending_api(h, s));
    }
    obs.leg = caller
        .leg_end(Duration::from_secs(s.originate_timeout + 30))
        .await;
    obs.originate = caller.originate_result(Duration::from_secs(10)).await;
    if let (Some(sent), Some((_, _, took)), Ok(leg)) = (api_sent_at, obs.api.as_mut(), &obs.leg) {
        *took = Some(leg.seen_at.saturating_duration_since(sent));
    }
    caller.cleanup().await;
    // ---- what voxbridge reported: callbacks (and the post-call run's fetches), the CDR
    let want_post_call = s.expect.post_call;
    let want_fetches = s.expect.fetches.len();
    let want_dial_events = s.expect.dial_events.len();
    let want_record_stop = s.expect.recording.is_some();
    let (_, log) = h
        .app
        .wait_for(&tag, Duration::from_secs(15), |l| {
            !l.hangups.is_empty()
                && (!want_post_call || !l.post_calls.is_empty())
                && l.fetches.len() >= want_fetches
                && l.dial_events.len() >= want_dial_events
                && (!want_record_stop || !l.record_stops.is_empty())
        })
        .await;
    obs.log = log;
    if !want_post_call && s.mentions_post_call() {
        // A workflow that must not fire would have been enqueued with the hangup
        // callback: give it time to show up before saying it did not.
        tokio::time::sleep(Duration::from_secs(1)).await;
        obs.log = h.app.log(&tag);
    }
    if let (Some(cb), Some(uuid)) = (obs.log.hangups.first(), call_uuid_in(&obs.log)) {
        obs.notes
            .extend(rest::cdr_matches_callback(&rest, &uuid, cb).await);
        for probe in &s.probes {
            match probe {
                Probe::GoneAfterEnd => obs.notes.extend(rest::gone_after_end(&rest, &uuid).await),
                Probe::LegCdr {
                    position,
                    cause,
                    name,
                    source,
                    answered,
                } => obs.notes.extend(
                    leg_cdr(
                        h,
                        &rest,
                        &uuid,
                        *position,
                        (*cause, name, source, *answered),
                    )
                    .await,
                ),
                Probe::PostCallMode { skipped } => obs
                    .notes
                    .extend(post_call_mode(h, &obs.log, &uuid, skipped).await),
                Probe::BargeInWithinMs(max) => obs.notes.extend(barge_in(h, &uuid, *max).await),
                _ => {}
            }
        }
    }
    if let Some(want) = &s.expect.recording {
        let found = recording_checks(&rest, &obs, want).await;
        obs.notes.extend(found);
    }
    let problems = check(&s.expect, s, &obs);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(report(h, s, &obs, &problems))
    }
}

/// [`scenarios::RecordingWant`]: the RecordStop (and the action) agree, the file is a
/// real WAV of the reported length, downloadable and deletable through the API.
async fn recording_checks(
    rest: &Rest,
    obs: &Observed,
    want: &scenarios::RecordingWant,
) -> Vec<String> {
    let mut p = Vec::new();
    let Some(stop) = obs.log.record_stops.first() else {
        return vec!["no RecordStop reached {app}/events".into()];
    };
    let field = |name: &str| stop.get(name).unwrap_or("").to_string();
    if field("RecordingEndReason") != want.reason {
        p.push(format!(
            "RecordingEndReason={:?}, expected {:?}",
            field("RecordingEndReason"),
            want.reason
        ));
    }
    if field("Digits") != want.digits {
        p.push(format!(
            "Digits={:?}, expected {:?}",
            field("Digits"),
            want.digits
        ));
    }
    let ms: u64 = field("RecordingDurationMs").parse().unwrap_or(0);
    if ms < want.min_ms || ms > want.max_ms {
        p.push(format!(
            "RecordingDurationMs={ms}, expected {}..={}",
            want.min_ms, want.max_ms
        ));
    }
    let start: i64 = field("RecordingStartMs").parse().unwrap_or(0);
    let end: i64 = field("RecordingEndMs").parse().unwrap_or(0);
    if end - start != ms as i64 || end < 1_700_000_000_000 {
        p.push(format!(
            "RecordingStartMs={start} RecordingEndMs={end} for {ms} ms"
        ));
    }
    if want.action {
        match obs
            .log
            .fetches
            .iter()
            .find(|f| f.get("Event") == Some("Record"))
        {
            Some(f) => {
                for name in [
                    "RecordingID",
                    "RecordUrl",
                    "RecordFile",
                    "RecordingDuration",
                    "RecordingDurationMs",
                    "RecordingStartMs",
                    "RecordingEndMs",
                    "RecordingEndReason",
                    "Digits",
                ] {
                    if f.get(name) != stop.get(name) {
                        p.push(format!(
                            "the action's {name}={:?}, RecordStop's {:?}",
                            f.get(name),
                            stop.get(name)
                        ));
                    }
                }
            }
            None => p.push("no Event=Record fetch of the action".into()),
        }
    }
    if let Some(within) = want.like_the_call_ms {
        // The whole call from the recording's start: it ends with the caller's leg
        // (the switch's clock on both) and starts once the call is answered and
        // handed over (the fetch's latency, longer on a loaded machine).
        let leg_ms = |name: &str| -> i64 {
            obs.leg
                .as_ref()
                .ok()
                .and_then(|l| l.event.variable(name))
                .and_then(|v| v.trim().parse::<i64>().ok())
                .map(|us| us / 1000)
                .unwrap_or(0)
        };
        let (answered, ended) = (leg_ms("answer_uepoch"), leg_ms("end_uepoch"));
        eprintln!(
            "recording of the whole call: {ms} ms, from {} ms after the caller's answer to {} ms \
             from its end (the caller's billed call: {} ms)",
            start - answered,
            end - ended,
            ended - answered
        );
        if end.abs_diff(ended) > within {
            p.push(format!(
                "the recording ends at {end}, the caller's call at {ended} (±{within} ms expected)"
            ));
        }
        if start + 100 < answered || start - answered > 3000 {
            p.push(format!(
                "the recording starts {} ms after the caller's answer (0–3000 expected)",
                start - answered
            ));
        }
    }
    let id = field("RecordingID");
    let url = field("RecordUrl");
    if !url.ends_with(&format!("/Recording/{id}.wav")) {
        p.push(format!("RecordUrl {url:?} does not name {id}.wav"));
    }
    match rest.get_bytes(&format!("Recording/{id}.wav")).await {
        Ok((200, bytes)) => match wav_length_ms(&bytes) {
            Ok((rate, file_ms)) => {
                // The figures, for the record of what the switch really wrote.
                eprintln!(
                    "recording {id}: {} RecordingDurationMs={ms}, the WAV {rate} Hz {file_ms} ms ({} bytes)",
                    want.reason,
                    bytes.len()
                );
                if file_ms.abs_diff(ms) > 100 {
                    p.push(format!(
                        "the WAV ({rate} Hz) holds {file_ms} ms, RecordingDurationMs says {ms}"
                    ));
                }
            }
            Err(e) => p.push(format!("the recording is not a WAV: {e}")),
        },
        Ok((status, _)) => p.push(format!("GET Recording/{id}.wav answered {status}")),
        Err(e) => p.push(e),
    }
    match rest.delete(&format!("Recording/{id}/")).await {
        Ok(r) if r.status == 204 => {}
        Ok(r) => p.push(format!(
            "DELETE Recording/{id}/ answered {} {}",
            r.status, r.text
        )),
        Err(e) => p.push(e),
    }
    match rest.get_bytes(&format!("Recording/{id}.wav")).await {
        Ok((404, _)) => {}
        Ok((status, _)) => p.push(format!("after DELETE the audio answered {status}, not 404")),
        Err(e) => p.push(e),
    }
    p
}

/// A RIFF/WAVE file's sample rate and audio length (16-bit PCM, any channel count).
fn wav_length_ms(bytes: &[u8]) -> Result<(u32, u64), String> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(format!("{} bytes without a RIFF/WAVE header", bytes.len()));
    }
    let (mut at, mut format) = (12, None);
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = at + 8;
        if id == b"fmt " && body + 16 <= bytes.len() {
            let u16_at = |i: usize| u16::from_le_bytes([bytes[body + i], bytes[body + i + 1]]);
            let rate = u32::from_le_bytes(bytes[body + 4..body + 8].try_into().unwrap());
            format = Some((u16_at(2), rate, u16_at(14)));
        }
        if id == b"data" {
            let (channels, rate, bits) = format.ok_or("data before fmt")?;
            let frame = u64::from(channels) * u64::from(bits / 8);
            if frame == 0 || rate == 0 {
                return Err(format!("fmt: {channels} channels, {bits} bits, {rate} Hz"));
            }
            let data = len.min(bytes.len() - body) as u64;
            return Ok((rate, data / frame * 1000 / u64::from(rate)));
        }
        at = body + len + (len & 1);
    }
    Err("no data chunk".into())
}

/// [`Probe::LegCdr`].
async fn leg_cdr(
    h: &Harness,
    rest: &Rest,
    a: &str,
    position: usize,
    want: (Option<&str>, &str, &str, bool),
) -> Vec<String> {
    let (cause, name, source, answered) = want;
    let deadline = Instant::now() + Duration::from_secs(10);
    let b = loop {
        let lines = h.vb.log_lines_with(a, 400);
        let found = lines
            .lines()
            .filter(|l| l.contains("dial leg ended"))
            .filter_map(|l| l.split("b_leg=").nth(1))
            .nth(position.saturating_sub(1))
            .map(|b| b.split_whitespace().next().unwrap_or("").to_string());
        if let Some(b) = found.filter(|b| !b.is_empty()) {
            break b;
        }
        if Instant::now() >= deadline {
            return vec![format!(
                "voxbridge never logged the end of a Dial leg of {a}"
            )];
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let cdr = loop {
        match rest.get(&format!("Call/{b}/")).await {
            Ok(r) if r.status == 200 => break r.json,
            Ok(r) if Instant::now() >= deadline => {
                return vec![format!("no CDR for the B-leg {b}: {} {}", r.status, r.text)]
            }
            Err(e) => return vec![e],
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let mut p = Vec::new();
    let mut want_eq = |field: &str, value: &str| {
        if cdr[field] != value {
            p.push(format!(
                "B-leg CDR {field} = {}, expected {value}: {cdr}",
                cdr[field]
            ));
        }
    };
    want_eq("parent_call_uuid", a);
    want_eq("direction", "outbound");
    want_eq("hangup_cause_name", name);
    want_eq("hangup_source", source);
    if let Some(cause) = cause {
        want_eq("hangup_cause", cause);
    }
    if cdr["answer_time"].is_string() != answered {
        p.push(format!(
            "B-leg CDR answer_time {}, expected answered={answered}",
            cdr["answer_time"]
        ));
    }
    if cdr["callback_deliveries"]
        .as_array()
        .is_some_and(|d| !d.is_empty())
    {
        p.push(format!("the B-leg got callbacks: {cdr}"));
    }
    p
}

/// [`Action::RestHangupCallee`], [`Action::RestHangupBridgedCaller`]: while bridged,
/// the live list holds both legs, the B-leg's details name its parent and the caller's
/// its callee.
async fn both_legs_live(rest: &Rest, a: &str, b: &str) -> Vec<String> {
    let mut p = Vec::new();
    match rest.get("Call/?status=live").await {
        Ok(r) => {
            let calls: Vec<String> =
                serde_json::from_value(r.json["calls"].clone()).unwrap_or_default();
            if !(calls.iter().any(|c| c == a) && calls.iter().any(|c| c == b)) {
                p.push(format!(
                    "live list {calls:?} lacks the caller {a} or the callee {b}"
                ));
            }
        }
        Err(e) => p.push(e),
    }
    match rest.get(&format!("Call/{b}/?status=live")).await {
        Ok(r) if r.status == 200 && r.json["parent_call_uuid"] == a => {}
        Ok(r) => p.push(format!(
            "live details of the B-leg: {} {}, expected parent_call_uuid {a}",
            r.status, r.text
        )),
        Err(e) => p.push(e),
    }
    match rest.get(&format!("Call/{a}/?status=live")).await {
        Ok(r) if r.json["bridged_to"] == b => {}
        Ok(r) => p.push(format!(
            "live details of the caller: {}, expected bridged_to {b}",
            r.text
        )),
        Err(e) => p.push(e),
    }
    p
}

/// The call from `tag` and the first leg of the bridge voxbridge sent for it (the
/// `origination_uuid` in its logged `execute app="bridge"` line), once sent.
async fn ringing_leg_of(h: &Harness, tag: &str) -> Result<(String, String), String> {
    let a = call_uuid(h, tag).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = h.vb.log_lines_with(&a, 400);
        let found = lines
            .lines()
            .filter(|l| l.contains("app=\"bridge\""))
            .find_map(|l| l.split("origination_uuid=").nth(1))
            .and_then(|rest| rest.split([',', ']', '}']).next())
            .map(str::to_string);
        if let Some(b) = found.filter(|b| !b.is_empty()) {
            return Ok((a, b));
        }
        if Instant::now() >= deadline {
            return Err(format!("{a} never sent its bridge"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`Action::RestHangupRingingCallee`]: while the leg rings it is listed live,
/// `ringing`, with its parent and no answer time; the caller is bridged to no one.
async fn ringing_leg_live(rest: &Rest, a: &str, b: &str) -> Vec<String> {
    let mut p = Vec::new();
    match rest.get("Call/?status=live").await {
        Ok(r) => {
            let calls: Vec<String> =
                serde_json::from_value(r.json["calls"].clone()).unwrap_or_default();
            if !(calls.iter().any(|c| c == a) && calls.iter().any(|c| c == b)) {
                p.push(format!(
                    "live list {calls:?} lacks the caller {a} or the ringing leg {b}"
                ));
            }
        }
        Err(e) => p.push(e),
    }
    match rest.get(&format!("Call/{b}/?status=live")).await {
        Ok(r) if r.status == 200
            && r.json["parent_call_uuid"] == a
            && r.json["call_status"] == "ringing"
            && r.json["answer_time"].is_null() => {}
        Ok(r) => p.push(format!(
            "live details of the ringing B-leg: {} {}, expected call_status ringing, parent_call_uuid {a}, no answer_time",
            r.status, r.text
        )),
        Err(e) => p.push(e),
    }
    match rest.get(&format!("Call/{a}/?status=live")).await {
        Ok(r) if r.json.get("bridged_to").is_none() => {}
        Ok(r) => p.push(format!(
            "live details of the caller while its Dial rings: {}, expected no bridged_to",
            r.text
        )),
        Err(e) => p.push(e),
    }
    p
}

/// [`Probe::CalleeGoneWithin`]: polls `uuid_exists <B-leg>` on the switch until it says
/// `false`, and compares the time since the action with `max`.
async fn callee_gone_within(
    caller: &caller::Caller,
    b: &str,
    acted_at: Instant,
    max: f64,
) -> Vec<String> {
    let give_up = acted_at + Duration::from_secs_f64(max) + Duration::from_secs(10);
    loop {
        match caller.api(&format!("uuid_exists {b}")).await {
            Ok(r) if r.trim() == "false" => {
                let took = acted_at.elapsed().as_secs_f64();
                return if took <= max {
                    Vec::new()
                } else {
                    vec![format!(
                        "the callee's channel {b} was gone only {took:.2} s after the action, expected ≤ {max} s"
                    )]
                };
            }
            Ok(_) if Instant::now() < give_up => {}
            Ok(r) => {
                return vec![format!(
                "the callee's channel {b} still exists (uuid_exists: {}) {:.1} s after the action",
                r.trim(),
                acted_at.elapsed().as_secs_f64()
            )]
            }
            Err(e) => return vec![e],
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The B-leg voxbridge bridged the call from `tag` to, from its `bridged b_leg=…` line.
async fn b_leg_of(h: &Harness, tag: &str) -> Result<String, String> {
    let uuid = call_uuid(h, tag).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = h.vb.log_lines_with(&uuid, 400);
        let found = lines
            .lines()
            .filter(|l| l.contains("bridged"))
            .find_map(|l| l.split("b_leg=").nth(1))
            .map(|b| {
                b.split_whitespace()
                    .next()
                    .unwrap_or("")
                    .trim_matches('"')
                    .to_string()
            });
        if let Some(b) = found.filter(|b| !b.is_empty()) {
            return Ok(b);
        }
        if Instant::now() >= deadline {
            return Err(format!("voxbridge never logged the bridge of {uuid}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The CallUUID of the first document fetch.
fn call_uuid_in(log: &TagLog) -> Option<String> {
    log.fetches
        .first()
        .and_then(|f| f.get("CallUUID"))
        .map(str::to_string)
}

/// The CallUUID voxbridge gave the call from `tag` (its first document fetch).
async fn call_uuid(h: &Harness, tag: &str) -> Result<String, String> {
    let (_, log) = h
        .app
        .wait_for(tag, Duration::from_secs(10), |l| !l.fetches.is_empty())
        .await;
    call_uuid_in(&log).ok_or_else(|| {
        "no document fetch carried a CallUUID: cannot address the call over REST".into()
    })
}

/// [`Probe::PostCallMode`]: the post-call document's Redirect was fetched with
/// `CallStatus=completed`, and voxbridge logged exactly `skipped` as skipped.
async fn post_call_mode(h: &Harness, log: &TagLog, uuid: &str, skipped: &[&str]) -> Vec<String> {
    let mut p = Vec::new();
    match log.fetches.last() {
        Some(f) if f.get("Event") == Some("Redirect") => {
            if f.get("CallStatus") != Some("completed") {
                p.push(format!(
                    "the post-call Redirect was fetched with CallStatus={:?}, expected completed",
                    f.get("CallStatus")
                ));
            }
        }
        _ => p.push("the post-call document's Redirect was never fetched".into()),
    }
    match log.post_calls.first() {
        Some(pc) if pc.get("EndTime").is_some_and(|t| !t.is_empty()) => {}
        Some(_) => p.push("the PostCall request carries no EndTime: not the final record".into()),
        None => {}
    }
    let want: Vec<String> = skipped
        .iter()
        .map(|e| format!("skipped {e} (call already ended)"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    let got = loop {
        let got: Vec<String> =
            h.vb.log_lines_with(uuid, 200)
                .lines()
                .filter(|l| l.contains("post-call mode"))
                .filter_map(|l| {
                    let at = l.find("skipped ")?;
                    let rest = &l[at..];
                    Some(rest[..rest.find(')').map_or(rest.len(), |e| e + 1)].to_string())
                })
                .collect();
        if got.len() >= want.len() || Instant::now() >= deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if got != want {
        p.push(format!("post-call mode logged {got:?}, expected {want:?}"));
    }
    p
}

/// [`Probe::BargeInWithinMs`]: voxbridge's log says how long the prompt went on after the
/// first digit, in the switch's own event times.
async fn barge_in(h: &Harness, uuid: &str, max_ms: u64) -> Vec<String> {
    const MARK: &str = "Gather barge-in: the prompt stopped ";
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = h.vb.log_lines_with(uuid, 400);
        let found = text.lines().find_map(|l| {
            let rest = &l[l.find(MARK)? + MARK.len()..];
            rest.split(' ').next()?.parse::<u64>().ok()
        });
        match found {
            Some(ms) if ms <= max_ms => return Vec::new(),
            Some(ms) => {
                return vec![format!(
                    "the prompt stopped {ms} ms after the first digit, expected ≤ {max_ms} ms"
                )]
            }
            None if Instant::now() >= deadline => {
                return vec!["voxbridge logged no Gather barge-in for the call".into()]
            }
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn pending_api(h: &Harness, s: &Scenario) -> String {
    format!(
        "[{}] {}: NOT RUN — this build's REST API does not serve DELETE \
         /api/v1/Account/{{id}}/Call/{{uuid}}/ (404 with an empty body from the router, where \
         SPEC §6 answers 204, or 404 with a JSON error for an unknown call)",
        h.backend, s.name
    )
}

/// `true` for the marker [`pending_api`] produces.
pub fn is_pending(report: &str) -> bool {
    report.contains(": NOT RUN — ")
}

fn var<'a>(ev: &'a voxbridge::esl::event::Event, name: &str) -> Option<&'a str> {
    ev.variable(name)
}

fn num(v: Option<&str>) -> Option<i64> {
    v.and_then(|v| v.trim().parse::<i64>().ok())
}

/// Every difference between what was expected and what was seen.
fn check(e: &Expect, s: &Scenario, o: &Observed) -> Vec<String> {
    let mut p: Vec<String> = o.notes.clone();
    // ---- the originate result
    match (&o.originate, e.originate) {
        (Ok(r), Originate::Ok) => {
            if !(r.starts_with("+OK") && r.contains(&o.a_uuid)) {
                p.push(format!(
                    "originate: got {r:?}, expected \"+OK {}\"",
                    o.a_uuid
                ));
            }
        }
        (Ok(r), Originate::Err(cause)) => {
            if r != &format!("-ERR {cause}") {
                p.push(format!("originate: got {r:?}, expected \"-ERR {cause}\""));
            }
        }
        (Err(err), _) => p.push(format!("originate: {err}")),
    }
    // ---- the caller's leg
    let leg = match &o.leg {
        Ok(l) => Some(&l.event),
        Err(err) => {
            p.push(err.clone());
            None
        }
    };
    let mut a_billsec = None;
    if let Some(ev) = leg {
        if let Some(min) = e.caller_media_packets {
            for dir in ["in", "out"] {
                let name = format!("rtp_audio_{dir}_media_packet_count");
                let got = num(var(ev, &name)).unwrap_or(0);
                if got < min as i64 {
                    p.push(format!(
                        "caller's leg {name} = {got} ({:?}), expected ≥ {min}: no media {}",
                        var(ev, &name),
                        if dir == "in" {
                            "reached the caller"
                        } else {
                            "left the caller"
                        }
                    ));
                }
            }
        }
        let cause = ev.hangup_cause().unwrap_or("");
        if cause != e.caller_cause {
            let mut m = format!(
                "caller's leg Hangup-Cause {cause}, expected {}",
                e.caller_cause
            );
            if s.needs_tts && cause == "DESTINATION_OUT_OF_ORDER" {
                m.push_str(
                    " — `speak` failed on the switch: mod_flite missing or the voice unknown",
                );
            }
            p.push(m);
        }
        let answered = num(var(ev, "answer_epoch")).unwrap_or(0) > 0;
        if answered != e.answered {
            p.push(format!(
                "caller's leg {} (answer_epoch {:?}), expected {}",
                if answered {
                    "was answered"
                } else {
                    "was never answered"
                },
                var(ev, "answer_epoch"),
                if e.answered {
                    "answered"
                } else {
                    "never answered"
                }
            ));
        }
        a_billsec = num(var(ev, "billsec"));
        if !e.answered && a_billsec.unwrap_or(0) != 0 {
            p.push(format!("caller's leg billsec {:?}, expected 0", a_billsec));
        }
        if let Some(sip) = e.caller_sip {
            let got = var(ev, "sip_term_status");
            if got != Some(sip.to_string().as_str()) {
                p.push(format!(
                    "caller's SIP status (sip_term_status) {got:?}, expected {sip}"
                ));
            }
        }
        if let Some(reason) = &e.bye_reason {
            let got = var(ev, "sip_reason").unwrap_or("");
            if !got.starts_with(reason.as_str()) {
                p.push(format!(
                    "BYE Reason (sip_reason) {got:?}, expected {reason}…"
                ));
            }
        }
        let disp = var(ev, "sip_hangup_disposition").unwrap_or("");
        if disp != e.caller_disposition {
            p.push(format!(
                "caller's sip_hangup_disposition {disp:?}, expected {}",
                e.caller_disposition
            ));
        }
        let us = |n: &str| num(var(ev, n)).unwrap_or(0);
        let (start, answer, end) = (us("start_uepoch"), us("answer_uepoch"), us("end_uepoch"));
        for probe in &s.probes {
            if let (Probe::ScheduleArmed { fires, .. }, Some(at)) = (probe, o.scheduled_at) {
                // The switch's end time against voxbridge's shown time (both wall clock).
                let after = end as f64 / 1e6 - at.unix_timestamp() as f64;
                if *fires && !(-1.5..=1.5).contains(&after) {
                    p.push(format!(
                        "the schedule fired {after:.2} s after the scheduled_hangup_at shown ({at}), expected within ±1.5 s"
                    ));
                }
                if !*fires && after <= 1.0 {
                    p.push(format!(
                        "the call ended {after:.2} s after the scheduled_hangup_at shown ({at}): it did not outlive the cancelled schedule"
                    ));
                }
            }
        }
        for t in &e.timing {
            match *t {
                Timing::AnsweredFor { min, max } => {
                    let secs = if answer > 0 {
                        (end - answer) as f64 / 1e6
                    } else {
                        -1.0
                    };
                    if !(min..=max).contains(&secs) {
                        p.push(format!("answered for {secs:.2} s (answer→end on the caller's leg), expected {min}–{max} s"));
                    }
                }
                Timing::LastedAtLeast(min) => {
                    let secs = (end - start) as f64 / 1e6;
                    if secs < min {
                        p.push(format!(
                            "the call lasted {secs:.2} s on the caller's leg, expected ≥ {min} s"
                        ));
                    }
                }
                Timing::LastedAtMost(max) => {
                    let secs = (end - start) as f64 / 1e6;
                    if secs > max {
                        p.push(format!(
                            "the call lasted {secs:.2} s on the caller's leg, expected ≤ {max} s"
                        ));
                    }
                }
                Timing::BilledAtLeastMs(min) => {
                    let ms = us("billmsec");
                    if ms < min as i64 {
                        let mut m = format!("caller's leg billed {ms} ms, expected ≥ {min} ms");
                        if s.needs_tts {
                            m.push_str(
                                " — `speak` returned at once: is mod_flite loaded with voice slt?",
                            );
                        }
                        p.push(m);
                    }
                }
                Timing::EarlyMedia => {
                    let media = us("progress_media_uepoch");
                    if media == 0 || (answer != 0 && media >= answer) {
                        p.push(format!(
                            "the caller's leg got no early media before an answer (progress_media_uepoch {media}, answer_uepoch {answer})"
                        ));
                    }
                }
                Timing::ApiHangupWithin(max) => match &o.api {
                    Some((_, _, Some(took))) if took.as_secs_f64() <= max => {}
                    Some((_, _, Some(took))) => p.push(format!(
                        "the caller's leg ended {:.2} s after the REST DELETE, expected ≤ {max} s",
                        took.as_secs_f64()
                    )),
                    _ => p.push("no REST DELETE was timed".into()),
                },
            }
        }
    }
    if let Some((status, body, _)) = &o.api {
        if *status != 204 {
            p.push(format!(
                "REST DELETE answered {status} {body:?}, expected 204"
            ));
        }
    }
    // ---- voxbridge's side: fetches, hangup callback, post-call
    let events: Vec<&str> = o
        .log
        .fetches
        .iter()
        .map(|f| f.get("Event").unwrap_or("?"))
        .collect();
    if events != e.fetches {
        p.push(format!(
            "document fetches {events:?}, expected {:?}",
            e.fetches
        ));
    }
    if let Some(want) = e.gather_digits {
        match o
            .log
            .fetches
            .iter()
            .find(|f| f.get("Event") == Some("Gather"))
        {
            Some(f) => {
                for (name, value) in [("Digits", want), ("InputType", "dtmf"), ("Speech", "")] {
                    if f.get(name) != Some(value) {
                        p.push(format!(
                            "the Gather fetch has {name}={:?}, expected {value:?}",
                            f.get(name)
                        ));
                    }
                }
            }
            None => p.push("no Gather fetch reached the application".into()),
        }
    }
    let call_uuid = o.log.fetches.first().and_then(|f| f.get("CallUUID"));
    let mut dial_events = o.log.dial_events.clone();
    dial_events.sort_by_key(|d| d.get("DeliveryID").unwrap_or("").to_string());
    let names: Vec<&str> = dial_events
        .iter()
        .map(|d| d.get("Event").unwrap_or("?"))
        .collect();
    if names != e.dial_events {
        p.push(format!(
            "Dial events {names:?}, expected {:?}",
            e.dial_events
        ));
    }
    for d in &dial_events {
        if d.get("DialALegUUID") != call_uuid || d.get("DialBLegUUID").unwrap_or("").is_empty() {
            p.push(format!("Dial event without its legs: {:?}", d.0));
        }
    }
    for (event, name, value) in &e.dial_params {
        let carriers: Vec<_> = if *event == "DialAction" {
            o.log
                .fetches
                .iter()
                .filter(|f| f.get("Event") == Some("DialAction"))
                .collect()
        } else {
            dial_events
                .iter()
                .filter(|d| d.get("Event") == Some(*event))
                .collect()
        };
        if carriers.is_empty() {
            p.push(format!(
                "no {event} reached the application to carry {name}"
            ));
        }
        for c in carriers {
            if c.get(name) != Some(*value) {
                p.push(format!(
                    "{event} has {name}={:?}, expected {value:?}",
                    c.get(name)
                ));
            }
        }
    }
    if let Some(want) = e.dial_status {
        match o
            .log
            .fetches
            .iter()
            .find(|f| f.get("Event") == Some("DialAction"))
        {
            None => p.push("the Dial's action was never requested".into()),
            Some(f) => {
                if f.get("DialStatus") != Some(want) {
                    p.push(format!(
                        "DialStatus {:?}, expected {want}",
                        f.get("DialStatus")
                    ));
                }
                if f.get("DialALegUUID") != call_uuid {
                    p.push(format!(
                        "DialALegUUID {:?}, expected {call_uuid:?}",
                        f.get("DialALegUUID")
                    ));
                }
                let b_leg = f.get("DialBLegUUID").unwrap_or("");
                if b_leg.is_empty() == (want == "completed") {
                    p.push(format!("DialBLegUUID {b_leg:?} with DialStatus {want}"));
                }
            }
        }
    }
    let Some(cb) = o.log.hangups.first() else {
        p.push("no hangup callback reached the application within 15 s".into());
        return p;
    };
    let ids: std::collections::HashSet<&str> = o
        .log
        .hangups
        .iter()
        .filter_map(|h| h.get("DeliveryID"))
        .collect();
    if ids.len() != 1 {
        p.push(format!(
            "{} hangup callbacks with {} DeliveryIDs, expected one (retries keep the DeliveryID)",
            o.log.hangups.len(),
            ids.len()
        ));
    }
    let mut field = |name: &str, want: &str| {
        let got = cb.get(name).unwrap_or("<missing>");
        if got != want {
            p.push(format!("hangup callback {name}={got:?}, expected {want:?}"));
        }
    };
    field("Event", "Hangup");
    field("From", &o.tag);
    field("To", s.ext.number());
    field("Direction", "inbound");
    field("HangupCause", e.cause);
    field("HangupCauseCode", &e.cause_code.to_string());
    field("HangupSource", e.source);
    field("HangupReason", e.reason);
    field("CallStatus", e.call_status);
    if let Some(sip) = e.sip_status {
        field("SIPStatus", &sip.to_string());
    }
    if let Some(uuid) = call_uuid {
        field("CallUUID", uuid);
    }
    let name = cb.get("HangupCauseName").unwrap_or("<missing>");
    let name_ok = match e.cause_name {
        Name::Exact(n) => name == n,
        Name::Prefix(n) => name.starts_with(n),
    };
    if !name_ok {
        p.push(format!(
            "hangup callback HangupCauseName={name:?}, expected {:?}",
            e.cause_name
        ));
    }
    let bill = num(cb.get("BillDuration"));
    let dur = num(cb.get("Duration"));
    let answer_time = cb.get("AnswerTime").unwrap_or("");
    if e.answered {
        if answer_time.is_empty() {
            p.push("hangup callback AnswerTime is empty on an answered call".into());
        }
        match (bill, a_billsec) {
            (Some(b), Some(a)) if (b - a).abs() <= 1 => {}
            (b, a) => p.push(format!(
                "hangup callback BillDuration {b:?}, caller's leg billsec {a:?}: expected equal (±1 s of epoch truncation)"
            )),
        }
    } else {
        if !answer_time.is_empty() {
            p.push(format!(
                "hangup callback AnswerTime={answer_time:?} on a call never answered"
            ));
        }
        if bill != Some(0) {
            p.push(format!(
                "hangup callback BillDuration {bill:?}, expected 0 (never answered)"
            ));
        }
    }
    if let (Some(b), Some(d)) = (bill, dur) {
        if d < b {
            p.push(format!("hangup callback Duration {d} < BillDuration {b}"));
        }
    }
    if e.post_call {
        match o.log.post_calls.first() {
            None => p.push("no post-call workflow request (Event=PostCall) arrived".into()),
            Some(pc) => {
                if pc.get("CallUUID") != cb.get("CallUUID") {
                    p.push("the PostCall request names another CallUUID".into());
                }
                if pc.get("HangupCause") != cb.get("HangupCause") {
                    p.push(
                        "the PostCall request's HangupCause differs from the hangup callback's"
                            .into(),
                    );
                }
            }
        }
    } else if !o.log.post_calls.is_empty() {
        p.push(
            "a post-call workflow request arrived; no Hangup that closed the call asked for one"
                .into(),
        );
    }
    p
}

fn summary(params: &Params, names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{n}={}", params.get(n).unwrap_or("-")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn report(h: &Harness, s: &Scenario, o: &Observed, problems: &[String]) -> String {
    let mut r = format!("[{}] {} — {}\n", h.backend, s.name, s.what);
    r.push_str(&format!(
        "  caller {} (A-leg {}), extension {}\n",
        o.tag,
        o.a_uuid,
        s.ext.number()
    ));
    r.push_str(&format!("  originate: {:?}\n", o.originate));
    match &o.leg {
        Ok(l) => {
            let ev = &l.event;
            let names = [
                "sip_term_status",
                "sip_reason",
                "sip_hangup_disposition",
                "hangup_cause_q850",
                "answer_epoch",
                "billsec",
                "billmsec",
                "mduration",
            ];
            let vars: Vec<String> = names
                .iter()
                .map(|n| format!("{n}={}", var(ev, n).unwrap_or("-")))
                .collect();
            r.push_str(&format!(
                "  caller's leg: Hangup-Cause={} {}\n",
                ev.hangup_cause().unwrap_or("-"),
                vars.join(" ")
            ));
        }
        Err(e) => r.push_str(&format!("  caller's leg: {e}\n")),
    }
    if let Some(api) = &o.api {
        r.push_str(&format!("  REST DELETE: {api:?}\n"));
    }
    let fetches: Vec<String> = o
        .log
        .fetches
        .iter()
        .map(|f| summary(f, &["Event", "CallUUID", "CallStatus", "step"]))
        .collect();
    r.push_str(&format!("  fetches: {fetches:?}\n"));
    for cb in &o.log.hangups {
        r.push_str(&format!(
            "  hangup callback: {}\n",
            summary(
                cb,
                &[
                    "HangupCause",
                    "HangupCauseCode",
                    "HangupCauseName",
                    "HangupSource",
                    "HangupReason",
                    "CallStatus",
                    "SIPStatus",
                    "Duration",
                    "BillDuration",
                    "AnswerTime",
                ]
            )
        ));
    }
    r.push_str("  mismatches:\n");
    for m in problems {
        r.push_str(&format!("   - {m}\n"));
    }
    if let Some(uuid) = o.log.fetches.first().and_then(|f| f.get("CallUUID")) {
        r.push_str(&format!(
            "  voxbridge log for {uuid}:\n{}\n",
            h.vb.log_lines_with(uuid, 40)
        ));
    } else {
        r.push_str(&format!("  voxbridge log (tail):\n{}\n", h.vb.log_tail(30)));
    }
    let strays = h.app.strays();
    if !strays.is_empty() {
        r.push_str(&format!("  requests for unknown callers: {strays:?}\n"));
    }
    r
}

/// Every name the live suite answers for: the scenarios, then the stress run.
pub fn all_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = scenarios::all().iter().map(|s| s.name).collect();
    names.push(stress::NAME);
    names
}

/// Each name's outcome: `Ok` (passed), `Err` with the report (failed or not run).
pub type Results = HashMap<&'static str, Result<(), String>>;

/// The selected scenarios against one harness, concurrently (one voxbridge takes many
/// calls; each call is told apart by its caller number), then the timed ones one at a
/// time ([`scenarios::Scenario::timed`]), then the stress run alone, so load does not
/// skew the timings. Prints the summary line.
pub async fn run_suite(h: Arc<Harness>, names: &[&'static str]) -> Results {
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let (timed, rest): (Vec<_>, Vec<_>) = scenarios::all()
        .into_iter()
        .filter(|s| names.contains(&s.name))
        .partition(|s| s.timed());
    for s in rest {
        let h = h.clone();
        set.spawn(async move { (s.name, run_scenario(&h, &s).await) });
    }
    let mut results = Results::new();
    while let Some(done) = set.join_next().await {
        match done {
            Ok((name, r)) => {
                results.insert(name, r);
            }
            Err(e) => {
                // A panicking scenario task: name it in every result still missing.
                for n in names.iter().filter(|n| **n != stress::NAME) {
                    results
                        .entry(n)
                        .or_insert_with(|| Err(format!("a scenario task died: {e}")));
                }
            }
        }
    }
    // The scenarios that bound a latency (barge-in within 200 ms, a schedule's second)
    // run one at a time after the batch: what they measure is voxbridge and the switch,
    // not fifty other calls synthesising speech on the same two cores.
    for s in timed {
        let r = run_scenario(&h, &s).await;
        results.insert(s.name, r);
    }
    if names.contains(&stress::NAME) {
        let r = stress::run(&h, stress::PLAN).await;
        if let Ok(figures) = &r {
            say(figures);
        }
        results.insert(stress::NAME, r.map(|_| ()));
    }
    let passed = results.values().filter(|r| r.is_ok()).count();
    let not_run = results
        .values()
        .filter(|r| matches!(r, Err(e) if is_pending(e)))
        .count();
    let mut failed: Vec<&str> = results
        .iter()
        .filter(|(_, r)| matches!(r, Err(e) if !is_pending(e)))
        .map(|(n, _)| *n)
        .collect();
    failed.sort_unstable();
    let on = if h.backend == "simulator" {
        "the simulator".to_string()
    } else {
        format!("real FreeSWITCH ({})", h.target.esl)
    };
    say(&format!(
        "live suite: {passed} scenarios passed on {on}, {} failed, {not_run} not run, in {:.0} s{}",
        failed.len(),
        started.elapsed().as_secs_f64(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(" — failed: {}", failed.join(", "))
        }
    ));
    results
}

/// One line straight to the terminal: the test harness hides `eprintln!` of passing tests.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The test-name filters this test binary was started with (`cargo test … live::rule_3`),
/// so a single live test runs only what it selects: libtest's positional arguments,
/// skipping its options and their values. `(filters, --exact)`.
fn test_filters() -> (Vec<String>, bool) {
    const TAKES_VALUE: &[&str] = &[
        "--test-threads",
        "--skip",
        "--format",
        "--color",
        "--logfile",
        "--shuffle-seed",
        "-Z",
    ];
    let mut filters = Vec::new();
    let mut exact = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--exact" {
            exact = true;
        } else if TAKES_VALUE.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            filters.push(a);
        }
    }
    (filters, exact)
}

/// The names whose live test (`live::<name>`) the filters select.
fn selected_names() -> Vec<&'static str> {
    let (filters, exact) = test_filters();
    all_names()
        .into_iter()
        .filter(|n| {
            let test = format!("live::{n}");
            filters.is_empty()
                || filters.iter().any(|f| {
                    if exact {
                        &test == f
                    } else {
                        test.contains(f.as_str())
                    }
                })
        })
        .collect()
}

/// One live test: skipped (with a message on the terminal) without
/// `VOXBRIDGE_TEST_FS_ESL`. Otherwise the first live test to run starts the whole
/// selected suite against the switch — one voxbridge on the dialplan's fixed 8084,
/// scenarios concurrently — and every live test reports its own scenario's outcome.
pub fn run_live(name: &str) {
    let Some(cfg) = LiveConfig::from_env() else {
        static SAID: AtomicBool = AtomicBool::new(false);
        if !SAID.swap(true, Ordering::Relaxed) {
            say(
                "live FreeSWITCH suite SKIPPED: set VOXBRIDGE_TEST_FS_ESL=host:port (see docs/live-suite.md). \
                 The same scenarios ran against the simulator in live_suite_against_simulator.",
            );
        }
        return;
    };
    static RUN: std::sync::OnceLock<Result<Results, String>> = std::sync::OnceLock::new();
    let results = RUN.get_or_init(|| {
        block_on_alone(async {
            let h = Arc::new(Harness::live(&cfg).await?);
            Ok(run_suite(h, &selected_names()).await)
        })
        .and_then(|r| r)
    });
    match results {
        Err(e) => panic!("{e}"),
        Ok(r) => match r.get(name) {
            Some(Ok(())) => {}
            Some(Err(report)) => panic!("{report}"),
            None => panic!("{name} was not selected by this run's test filters"),
        },
    }
}

/// Runs `work` on a runtime of its own while no other suite run of this process does:
/// the real-switch run and the simulator run both check timings, and on a machine with
/// more cores than test threads would otherwise overlap and skew each other.
pub fn block_on_alone<T>(work: impl std::future::Future<Output = T>) -> Result<T, String> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    Ok(rt.block_on(work))
}

/// Every scenario and the stress run against the simulator, one voxbridge. Returns the
/// reports of the scenarios that failed and of those that could not run.
pub async fn run_all_simulated() -> (Vec<String>, Vec<String>) {
    let h = match Harness::simulated().await {
        Ok(h) => Arc::new(h),
        Err(e) => return (vec![e], Vec::new()),
    };
    let results = run_suite(h, &all_names()).await;
    let mut failed = Vec::new();
    let mut pending = Vec::new();
    for r in results.into_values() {
        match r {
            Ok(()) => {}
            Err(r) if is_pending(&r) => pending.push(r),
            Err(r) => failed.push(r),
        }
    }
    (failed, pending)
}
