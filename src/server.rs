//! The composition root: `voxbridge serve` wires the store, the outbox worker, the ESL
//! listener and the REST API together, and shuts them down gracefully.

use crate::config::Config;

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
pub async fn serve(_config: Config) -> anyhow::Result<()> {
    anyhow::bail!("serve: not supported yet")
}
