//! The composition root: `voxbridge serve` wires the store, the outbox worker, the ESL
//! listener and the REST API together, and shuts them down gracefully.
//!
//! Order matters:
//! - the store is opened and the previous run reconciled *before* anything can start a
//!   call, so reconciliation only ever sees calls of the previous run;
//! - at shutdown the ESL listener stops first and live calls get a bounded grace period
//!   (`esl.shutdown_grace`) to end, their records written as usual; the REST API keeps
//!   serving meanwhile, so an operator can still inspect or hang up what is left. Calls
//!   still up when the grace expires are cut off: each hangs its channel up
//!   (NORMAL_TEMPORARY_FAILURE) and closes out with its record and callbacks (source
//!   `Error`, "cut off at shutdown"); a call task still running after
//!   [`crate::esl::listener::CUT_OFF_LIMIT`] is aborted, inner task included, and its
//!   live row closed out at the next start. Then the records handed to the keeper are
//!   written (bounded), the API stops, the outbox finishes the deliveries in flight
//!   (undelivered rows stay pending for the next start), and the store is closed last.
//! - the switch's session is never held by a slow store: calls leave their socket before
//!   their record is written, and `linger` is bounded ([`LINGER_SECS`]) so even a stuck
//!   voxbridge cannot keep a hung-up session alive on the switch.

use crate::api::{self, ApiState};
use crate::app::outbox::{self, OutboxSettings, OutboxStatsSource, OutboxWorker};
use crate::call::fleet::NodeDuties;
use crate::call::freeswitch::{self, CallServices};
use crate::call::live::LiveCalls;
use crate::call::postcall_runner::PostCallMode;
use crate::call::reconcile;
use crate::call::switches::Switches;
use crate::config::Config;
use crate::esl::command::Linger;
use crate::esl::counters::EslCounters;
use crate::esl::listener::{ListenerOptions, OutboundListener};
use crate::esl::outbound::OutboundOptions;
use crate::metrics::Metrics;
use crate::store::keeper::RecordKeeper;
use crate::store::{self, StoreHandle};
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Structured logs to stderr (`key=value` fields; each call's lines carry its span's
/// `call_uuid`); `RUST_LOG` respected (default `info`). Colours only on a terminal, so a
/// log file or the journal gets plain text.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Runs the server until SIGTERM/SIGINT.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let running = start(config).await?;
    // One machine-readable line on stdout, so scripts (and tests using port 0) learn
    // the addresses actually bound.
    println!(
        "voxbridge listening esl={} api={}",
        running.esl_addr, running.api_addr
    );
    wait_for_shutdown_signal().await?;
    running.shutdown().await;
    Ok(())
}

/// A started server: its bound addresses and what is needed to stop it.
pub struct Running {
    pub esl_addr: SocketAddr,
    pub api_addr: SocketAddr,
    pub store: StoreHandle,
    pub live: LiveCalls,
    pub metrics: Arc<Metrics>,
    /// The FastAGI listener's address when `[asterisk] enabled` (SPEC §16).
    pub agi_addr: Option<SocketAddr>,
    agi_task: Option<tokio::task::JoinHandle<()>>,
    stop_esl: watch::Sender<bool>,
    stop_api: watch::Sender<bool>,
    esl_task: tokio::task::JoinHandle<()>,
    api_task: tokio::task::JoinHandle<()>,
    outbox: OutboxWorker,
    keeper: RecordKeeper,
    _switches: Switches,
    _retention: Option<crate::store::retention::RetentionTask>,
    /// This node's heartbeat and take-over duties (PostgreSQL fleets only).
    node: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
}

/// `linger N` asked of the switch: how long it keeps a hung-up session's socket open for
/// us. We leave (`exit`) as soon as CHANNEL_HANGUP_COMPLETE has been read, so this only
/// matters when voxbridge is stuck — and then the switch must not keep the session (and
/// its slot under max-sessions) forever, as `linger` without a number would.
pub const LINGER_SECS: u32 = 30;

/// Longest a shutdown waits for the records handed to the keeper to be written.
const RECORDS_LIMIT: Duration = Duration::from_secs(10);

/// `record.dir` must exist before the switch writes a recording there (FreeSWITCH's
/// `record` fails on a missing directory and hangs the call up). Created if missing; a
/// directory that cannot be created is logged, not fatal: calls without a Record do not
/// need it.
fn prepare_record_dir(dir: &str) {
    if let Err(e) = std::fs::create_dir_all(dir) {
        tracing::warn!(%dir, error = %e, "record.dir cannot be created: <Record> will fail until it exists");
    }
}

/// Opens everything and starts serving; returns once both listeners are bound.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let config = Arc::new(config);
    // Settings first: a bad value must stop us before anything touches the store.
    let outbox_settings =
        OutboxSettings::from_config(&config.outbox).map_err(anyhow::Error::msg)?;
    let (store, fleet_store) = open_store(&config).await?;
    let esl_counters = Arc::new(EslCounters::default());
    let switches = Switches::start(config.switches.iter(), esl_counters.clone());
    let still_up = reconcile_previous_run(&store, &switches, &config).await?;
    if !switches.is_empty() && !still_up.is_empty() {
        tokio::spawn(sweep_still_up(store.clone(), switches.clone(), still_up));
    }

    let metrics = Arc::new(Metrics::new());
    let live = LiveCalls::new();
    // The REST API's address is known before any call runs: recordings' URLs name it.
    let api_listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen for the REST API on api.listen {}",
                config.api.listen
            )
        })?;
    let api_addr = api_listener.local_addr()?;
    prepare_record_dir(&config.record.dir);
    let services = Arc::new(CallServices::new(
        config.clone(),
        store.clone(),
        metrics.clone(),
        live.clone(),
        config.api.public_base(api_addr),
    )?);
    let outbox = outbox::start(
        store.clone(),
        outbox_settings,
        &config.accounts,
        Arc::new(PostCallMode::new(services.clone())),
    )?;

    let (stop_esl, stop_esl_rx) = watch::channel(false);
    let (stop_api, stop_api_rx) = watch::channel(false);
    let listener = OutboundListener::bind(
        config.esl.listen,
        ListenerOptions {
            allow: config.esl.allow.clone(),
            max_connections: config.esl.max_calls,
            outbound: OutboundOptions {
                handshake_timeout: Duration::from_secs_f64(config.esl.handshake_timeout),
                linger: Some(Linger::Seconds(LINGER_SECS)),
                nix_events: crate::call::freeswitch::UNUSED_EVENTS
                    .iter()
                    .map(|e| e.to_string())
                    .collect(),
                ..OutboundOptions::default()
            },
            shutdown_grace: Duration::from_secs_f64(config.esl.shutdown_grace),
        },
    )
    .await
    .with_context(|| {
        format!(
            "cannot listen for the switch on esl.listen {}",
            config.esl.listen
        )
    })?
    .with_counters(esl_counters.clone())
    .on_abandoned({
        let services = services.clone();
        Arc::new(move |channel, error| {
            let services = services.clone();
            Box::pin(async move {
                freeswitch::close_out_abandoned(&services, &channel, &error.to_string()).await
            })
        })
    })
    .on_cut_off({
        let services = services.clone();
        move || {
            let _ = services.cut_off.send(true);
        }
    });
    let esl_addr = listener.local_addr()?;
    let (agi_addr, agi_task) =
        match start_asterisk(&config, &services, stop_esl.subscribe()).await? {
            Some((addr, task)) => (Some(addr), Some(task)),
            None => (None, None),
        };
    let keeper = services.keeper.clone();
    // `POST Call/` places calls through the switches (one dialer each); their answered
    // channels come back to the listener just bound.
    let outbound = freeswitch::originate::Dialers::new(
        config
            .switches
            .iter()
            .map(|sw| {
                freeswitch::originate::Dialer::start(
                    services.clone(),
                    sw,
                    esl_addr,
                    esl_counters.clone(),
                )
            })
            .collect(),
    );
    let esl_task = tokio::spawn(listener.run(freeswitch::handler(services), stopped(stop_esl_rx)));

    let app = api::router(ApiState {
        config: config.clone(),
        store: store.clone(),
        live: live.clone(),
        metrics: metrics.clone(),
        esl: esl_counters,
        outbox: outbox.stats_source(),
        public_base: config.api.public_base(api_addr).into(),
        outbound,
        fleet: fleet_store
            .clone()
            .map(api::fleet::Fleet::new)
            .transpose()
            .map_err(anyhow::Error::msg)?,
    });
    let api_stop = stopped(stop_api_rx);
    let api_task = tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(api_listener, service)
            .with_graceful_shutdown(api_stop)
            .await
        {
            tracing::error!(error = %e, "REST API server failed");
        }
    });
    let node = fleet_store.map(|pg| {
        let api_url = config.node.api_url_or(api_addr);
        tracing::info!(node = %pg.node_id(), %api_url, lease_secs = config.node.lease, "fleet node: heartbeat and take-over of dead nodes");
        let duties = NodeDuties {
            store: pg,
            api_url,
            lease: config.node.lease(),
            switches: switches.clone(),
            still_up: Default::default(),
        };
        let (stop, stop_rx) = watch::channel(false);
        (stop, tokio::spawn(duties.run(stop_rx)))
    });
    if config.app.default_answer_url.trim().is_empty() && config.routes.is_empty() {
        tracing::warn!(
            "no app.default_answer_url and no [[route]]: calls are refused (603) unless the \
             dialplan sets voxbridge_answer_url"
        );
    }
    if config.accounts.is_empty() {
        tracing::warn!(
            "no [[account]]: callbacks go unsigned and the REST API answers 401 to everything"
        );
    }
    tracing::info!(
        esl = %esl_addr,
        api = %api_addr,
        store = %store.describe(),
        accounts = config.accounts.len(),
        routes = config.routes.len(),
        "voxbridge serving"
    );
    // Old CDRs and delivered callbacks pruned by the same rules on either store.
    let retention = crate::store::retention::start(
        store.clone(),
        crate::store::retention::RetentionPolicy::from_config(&config.store),
    );
    Ok(Running {
        esl_addr,
        api_addr,
        store,
        live,
        metrics,
        agi_addr,
        agi_task,
        stop_esl,
        stop_api,
        esl_task,
        api_task,
        outbox,
        keeper,
        _switches: switches,
        _retention: retention,
        node,
    })
}

impl Running {
    /// Graceful shutdown: stop accepting calls, let live ones end (bounded), stop the API,
    /// finish deliveries in flight, close the store.
    pub async fn shutdown(self) {
        tracing::info!(live_calls = self.live.len(), "shutting down");
        let _ = self.stop_esl.send(true);
        let _ = self.esl_task.await;
        if let Some(agi) = self.agi_task {
            let _ = agi.await;
        }
        let left = self.keeper.drain(RECORDS_LIMIT).await;
        if left > 0 {
            tracing::error!(
                records = left,
                "call records still not written at shutdown; each is logged in full as the \
                 store closes"
            );
        }
        if let Some((stop, task)) = self.node {
            // The calls are over: leave the fleet cleanly (no take-over needed).
            let _ = stop.send(true);
            let _ = task.await;
        }
        let _ = self.stop_api.send(true);
        let _ = self.api_task.await;
        flush_outbox(&self.store, &self.outbox.stats_source()).await;
        tracing::info!("finishing callbacks in flight");
        self.outbox.stop().await;
        self.store.close().await;
        tracing::info!("stopped");
    }
}

/// Longest a shutdown waits for the outbox to deliver what the last calls enqueued.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);
/// A flush gives up when no delivery attempt has finished for this long: what is left
/// waits for a retry (its receiver is failing) and stays pending for the next start.
const FLUSH_IDLE: Duration = Duration::from_millis(500);

/// Lets the outbox deliver what can be delivered now — typically the callbacks of the
/// calls that ended during the shutdown grace — before it is stopped. Bounded by
/// [`FLUSH_LIMIT`], and ends early once nothing is pending or nothing moves.
async fn flush_outbox(store: &StoreHandle, stats: &OutboxStatsSource) {
    let started = tokio::time::Instant::now();
    let attempts = || {
        let s = stats.read();
        s.delivered + s.retried + s.failed
    };
    let mut seen = attempts();
    let mut last_progress = started;
    loop {
        let backlog = match store.outbox_backlog().await {
            Ok(n) => n,
            Err(_) => return, // logged by the store; nothing to wait for
        };
        if backlog == 0 {
            return;
        }
        let now = tokio::time::Instant::now();
        let current = attempts();
        if current != seen {
            seen = current;
            last_progress = now;
        }
        if now - last_progress > FLUSH_IDLE || now - started > FLUSH_LIMIT {
            tracing::info!(
                backlog,
                "callbacks left pending at shutdown; they are delivered after the next start"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The FastAGI listener for calls from Asterisk, when `[asterisk] enabled` (SPEC §16):
/// the same call services (store, outbox, REST registry) as FreeSWITCH's calls, the same
/// shutdown (stops with the ESL listener; grace `esl.shutdown_grace`, then the cut-off).
async fn start_asterisk(
    config: &Arc<Config>,
    services: &Arc<CallServices>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<(SocketAddr, tokio::task::JoinHandle<()>)>> {
    use crate::agi::{AgiListener, AgiListenerOptions};
    use crate::call::asterisk::{self, ari::Ari, AsteriskServices};
    let ast = &config.asterisk;
    if !ast.enabled {
        return Ok(None);
    }
    let listener = AgiListener::bind(
        ast.agi_listen,
        AgiListenerOptions {
            allow: ast.allow.clone(),
            max_connections: ast.max_calls,
            handshake_timeout: Duration::from_secs_f64(ast.handshake_timeout),
            shutdown_grace: Duration::from_secs_f64(config.esl.shutdown_grace),
        },
    )
    .await
    .with_context(|| {
        format!(
            "cannot listen for Asterisk on asterisk.agi_listen {}",
            ast.agi_listen
        )
    })?
    .on_cut_off({
        let services = services.clone();
        move || {
            let _ = services.cut_off.send(true);
        }
    });
    let addr = listener.local_addr()?;
    let ari = Ari::from_config(ast)?;
    if ari.is_none() {
        tracing::warn!(
            "asterisk.ari_url is empty: a REST hang-up waits for the running application to \
             return"
        );
    }
    let media = crate::call::asterisk::media::MediaCache::new(&ast.media_cache_dir)?;
    let ami = crate::call::asterisk::manager::start(ast);
    if ami.is_none() {
        tracing::info!(
            "asterisk.ami_address is empty: the REST stop of recordings, Record \
             startOnDialAnswer and Dial digitsMatch/digitsMatchBLeg are refused by name"
        );
    }
    let services = Arc::new(AsteriskServices {
        calls: services.clone(),
        ari,
        ami,
        media: Some(media),
        flite: crate::call::asterisk::tts::FliteQueue::new(ast.tts_concurrency),
    });
    tracing::info!(agi = %addr, ari = %ast.ari_url, ami = %ast.ami_address, "FastAGI listener for Asterisk");
    let task = tokio::spawn(listener.run(asterisk::handler(services), stopped(stop)));
    Ok(Some((addr, task)))
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Opens `[store] url`, applying migrations; a PostgreSQL store comes back a second time
/// as its own type, for the node's fleet duties.
async fn open_store(
    config: &Config,
) -> anyhow::Result<(StoreHandle, Option<Arc<store::postgres::PostgresStore>>)> {
    let url = &config.store.url;
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pg = Arc::new(
            store::open_postgres(url, &config.node.id)
                .await
                .with_context(|| format!("cannot open the store {}", redact(url)))?,
        );
        // Beat once before any call can arrive: a node whose live rows exist without a
        // heartbeat row counts as dead to the others. The address is provisional until
        // the API is bound (with port 0 it is not known yet); the node's duties beat
        // with the real one.
        pg.heartbeat(
            &config.node.api_url_or(config.api.listen),
            config.node.lease(),
            time::OffsetDateTime::now_utc(),
        )
        .await
        .context("cannot write this node's first heartbeat")?;
        return Ok((pg.clone(), Some(pg)));
    }
    let store = store::open(url)
        .await
        .with_context(|| format!("cannot open the store {url:?}"))?;
    Ok((store, None))
}

/// A store URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(unparsable URL)".into(),
    }
}

/// How often the calls a previous run left up on the switch are checked again.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Closes out, as the switch ends them, the calls of a previous run that reconciliation
/// found still up: without this they would stay "live" in the store until the next
/// restart. Only those calls are looked at, never this run's own.
async fn sweep_still_up(
    store: StoreHandle,
    client: Switches,
    mut still_up: std::collections::HashSet<String>,
) {
    while !still_up.is_empty() {
        tokio::time::sleep(SWEEP_EVERY).await;
        let now = time::OffsetDateTime::now_utc();
        match reconcile::sweep_still_up(store.as_ref(), &client, &still_up, now).await {
            Ok(report) => {
                if !report.closed.is_empty() {
                    tracing::warn!(
                        closed = report.closed.len(),
                        left = report.still_up.len(),
                        "calls of a previous run ended on the switch; closed out"
                    );
                }
                still_up = report.still_up.into_iter().collect();
            }
            Err(e) => tracing::warn!(error = %e, "sweep of calls left up failed; retrying later"),
        }
    }
}

/// Closes out the calls a previous run left live (SPEC §2 step 7). With `[switch]`es
/// configured, the switches the calls are on (each live row names its own) are first
/// asked for their channels (one `show channels` each): a call still up on its switch is
/// left alone (its channel is no longer controlled by anyone, so it is logged loudly)
/// and returned, for [`sweep_still_up`].
async fn reconcile_previous_run(
    store: &StoreHandle,
    switches: &Switches,
    config: &Config,
) -> anyhow::Result<std::collections::HashSet<String>> {
    let now = time::OffsetDateTime::now_utc();
    // Asterisk without a FreeSWITCH `[switch]`: ARI says whether each channel is still
    // there (`GET /channels/{id}`). A call's FastAGI socket died with the previous run, so
    // nothing can carry its document on: one still up is hung up over ARI (as its AGI()
    // would once the running application returns) and closed out like the others. With
    // both switches configured FreeSWITCH's channel lists decide (an Asterisk call's live
    // row names no FreeSWITCH switch, so every configured one is asked about it).
    let ari = if config.asterisk.enabled && switches.is_empty() {
        crate::call::asterisk::ari::Ari::from_config(&config.asterisk)?
    } else {
        None
    };
    if let Some(ari) = ari {
        let probe = move |id: String| {
            let ari = ari.clone();
            async move {
                match ari.channel_exists(&id).await {
                    Ok(true) => {
                        tracing::warn!(call_uuid = %id, "an Asterisk call left by the previous run is still up; hanging it up over ARI");
                        match ari
                            .hangup(&id, crate::cause::HangupCause::NORMAL_TEMPORARY_FAILURE)
                            .await
                        {
                            Ok(()) | Err(crate::call::asterisk::ari::AriError::ChannelGone) => {
                                Some(false)
                            }
                            Err(_) => Some(true),
                        }
                    }
                    Ok(false) => Some(false),
                    Err(_) => None,
                }
            }
        };
        let report = reconcile::reconcile(store.as_ref(), Some(&probe), now)
            .await
            .context(
                "reconciling calls left live by the previous run (asking Asterisk over ARI)",
            )?;
        if !report.closed.is_empty() || !report.still_up.is_empty() {
            tracing::warn!(
                closed = report.closed.len(),
                already_finished = report.already_finished.len(),
                still_up = report.still_up.len(),
                "reconciled calls left live by the previous run (Asterisk)"
            );
        }
        return Ok(std::collections::HashSet::new());
    }
    let report = if switches.is_empty() {
        reconcile::reconcile(store.as_ref(), None, now).await
    } else {
        // Each switch asked is given a moment to connect first (`call::switches`); one
        // without calls in the store is not waited for.
        reconcile::reconcile_listed(store.as_ref(), switches, now).await
    }
    .context("reconciling calls left live by the previous run")?;
    if !report.closed.is_empty()
        || !report.already_finished.is_empty()
        || !report.still_up.is_empty()
    {
        tracing::warn!(
            closed = report.closed.len(),
            already_finished = report.already_finished.len(),
            still_up = report.still_up.len(),
            "reconciled calls left live by the previous run"
        );
    }
    Ok(report.still_up.into_iter().collect())
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
#[cfg(unix)]
async fn wait_for_shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_shutdown_signal() -> anyhow::Result<()> {
    tokio::signal::ctrl_c()
        .await
        .context("cannot watch Ctrl-C")?;
    Ok(())
}
