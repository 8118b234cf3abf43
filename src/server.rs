//! The composition root: `voxbridge serve` wires the store, the outbox worker, the ESL
//! listener and the REST API together, and shuts them down gracefully.
//!
//! Order matters: the store is opened and the previous run reconciled *before* anything
//! can start a call, so reconciliation only ever sees calls of the previous run.

use crate::app::outbox::{self, LogPostCallResponse, OutboxSettings, OutboxWorker};
use crate::config::Config;
use crate::store::{self, reconcile, StoreHandle};
use anyhow::Context;
use std::sync::Arc;

/// Structured logs to stderr; `RUST_LOG` respected (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the server until SIGTERM/SIGINT.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // Settings first: a bad value must stop us before anything touches the store.
    let outbox_settings =
        OutboxSettings::from_config(&config.outbox).map_err(anyhow::Error::msg)?;
    let store = open_store(&config).await?;
    reconcile_previous_run(&store, &config).await?;
    let outbox = start_outbox(store.clone(), outbox_settings, &config)?;
    tracing::info!(
        store = %store.describe(),
        outbox_concurrency = config.outbox.concurrency,
        accounts = config.accounts.len(),
        "voxbridge serving: store {}, outbox delivering (ESL listener and REST API: not in this build yet)",
        store.describe()
    );
    wait_for_shutdown_signal().await?;
    tracing::info!("shutting down: finishing callbacks in flight");
    outbox.stop().await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Opens `[store] url`, applying migrations.
async fn open_store(config: &Config) -> anyhow::Result<StoreHandle> {
    store::open(&config.store.url)
        .await
        .with_context(|| format!("cannot open the store {:?}", config.store.url))
}

/// Closes out the calls a previous run left live (SPEC §2 step 7).
async fn reconcile_previous_run(store: &StoreHandle, config: &Config) -> anyhow::Result<()> {
    if config.switch.is_some() {
        // The inbound ESL client (uuid_exists) is not part of this build yet; without it
        // a call still up on the switch cannot be told from one that is gone.
        tracing::warn!(
            "[switch] is configured, but checking calls with uuid_exists is not supported \
             yet: calls left live by the previous run are closed out without asking"
        );
    }
    let report = reconcile::reconcile(store.as_ref(), None, time::OffsetDateTime::now_utc())
        .await
        .context("reconciling calls left live by the previous run")?;
    if !report.closed.is_empty() || !report.already_finished.is_empty() {
        tracing::warn!(
            closed = report.closed.len(),
            already_finished = report.already_finished.len(),
            still_up = report.still_up.len(),
            "reconciled calls left live by the previous run"
        );
    }
    Ok(())
}

/// Starts the callback delivery worker with `[outbox]` and the accounts' signing keys.
fn start_outbox(
    store: StoreHandle,
    settings: OutboxSettings,
    config: &Config,
) -> anyhow::Result<OutboxWorker> {
    let worker = outbox::start(
        store,
        settings,
        &config.accounts,
        Arc::new(LogPostCallResponse),
    )?;
    Ok(worker)
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
