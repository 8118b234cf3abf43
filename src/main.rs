//! The `voxbridge` command line: `serve`, `check`, `demo`.

mod demo;

/// mimalloc instead of glibc malloc: see the commit that added it (issue 16).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "voxbridge",
    version,
    about = "Call-control server for FreeSWITCH"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: ESL listener, REST API, outbox delivery.
    Serve {
        /// TOML configuration file; without one, safe loopback defaults are used.
        #[arg(long, env = "VOXBRIDGE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Validate an answer document (file path, file:// or http(s):// URL) and print its plan.
    Check {
        /// The document to check.
        target: String,
    },
    /// Run the whole pipeline on this machine (server, switch simulator, a local app
    /// serving the example documents) and tell each call's story. No FreeSWITCH needed.
    Demo {
        /// Fewer calls on a fast clock (a few seconds in all).
        #[arg(long)]
        short: bool,
        /// How much faster than real time the simulated switch runs (default 20; 60
        /// with --short).
        #[arg(long, value_name = "N")]
        speed: Option<f64>,
    },
}

fn database_in_use(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<voxbridge::store::StoreError>()
            .is_some_and(|s| s.kind == voxbridge::store::StoreErrorKind::InUse)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        // The demo's output is its stories; the server's logs stay quiet unless asked.
        Command::Demo { .. } => demo::init_logging(),
        _ => voxbridge::server::init_logging(),
    }
    let default_workers = voxbridge::config::RuntimeConfig::default().worker_threads;
    match cli.command {
        Command::Serve { config } => {
            let cfg = match voxbridge::config::Config::load(config.as_deref()) {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprintln!("voxbridge: {e}");
                    return ExitCode::from(2);
                }
            };
            // `[runtime] worker_threads` sizes the runtime, so it is built after the load.
            let Some(runtime) = runtime(cfg.runtime.worker_threads) else {
                return ExitCode::FAILURE;
            };
            match runtime.block_on(voxbridge::server::serve(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("voxbridge: {e:#}");
                    // Another process serving this database is a configuration mistake
                    // (exit 2, like a bad key), not a crash to restart into.
                    if database_in_use(&e) {
                        ExitCode::from(2)
                    } else {
                        ExitCode::FAILURE
                    }
                }
            }
        }
        Command::Check { target } => {
            let Some(runtime) = runtime(default_workers) else {
                return ExitCode::FAILURE;
            };
            let mut out = std::io::stdout();
            let code = runtime.block_on(voxbridge::cli::check::run(&target, &mut out));
            ExitCode::from(code)
        }
        Command::Demo { short, speed } => {
            let Some(runtime) = runtime(default_workers) else {
                return ExitCode::FAILURE;
            };
            let options = demo::DemoOptions { short, speed };
            let mut out = std::io::stdout();
            match runtime.block_on(demo::run(&options, &mut out)) {
                Ok(summary) if summary.all_as_expected() => ExitCode::SUCCESS,
                Ok(_) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("voxbridge demo: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// The async runtime with `workers` worker threads (`[runtime]`, see
/// `voxbridge::config::RuntimeConfig` for why one by default).
fn runtime(workers: usize) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("voxbridge: cannot start the async runtime: {e}");
            None
        }
    }
}
