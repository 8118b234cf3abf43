//! The real `voxbridge serve` binary, configured for one run of the suite: its own
//! SQLite file, the local application as answer and hangup URL, one REST account.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// REST credentials of the suite's account (also the key its callbacks are signed with).
pub const AUTH_ID: &str = "MALIVE000001";
pub const AUTH_TOKEN: &str = "live-suite-token";

/// A running `voxbridge serve`; killed on drop, so a failing test leaves nothing behind.
pub struct VoxbridgeProcess {
    child: Child,
    pub esl_addr: SocketAddr,
    pub api_addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for VoxbridgeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl VoxbridgeProcess {
    /// Starts the binary and waits for its `voxbridge listening esl=… api=…` line.
    /// `esl_listen` is where the switch's `socket` app connects (`127.0.0.1:0` for the
    /// simulator, which is told the bound port; the shipped dialplan's `127.0.0.1:8084`
    /// for a real switch).
    pub async fn start(
        esl_listen: &str,
        esl_allow: &[String],
        app_base: &str,
    ) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let config = dir.path().join("voxbridge.toml");
        let log = dir.path().join("voxbridge.log");
        let allow = esl_allow
            .iter()
            .map(|c| format!("{c:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let toml = format!(
            r#"[esl]
listen = "{esl_listen}"
allow = [{allow}]

[api]
listen = "127.0.0.1:0"

[store]
url = "sqlite://{db}"

[app]
default_answer_url = "{app_base}/answer"
default_hangup_url = "{app_base}/hangup"

[outbox]
initial_backoff = 0.2
max_backoff = 1.0

[[account]]
auth_id = "{AUTH_ID}"
auth_token = "{AUTH_TOKEN}"
"#,
            db = dir.path().join("voxbridge.db").display(),
        );
        std::fs::write(&config, toml).map_err(|e| format!("writing the config: {e}"))?;
        let log_file = std::fs::File::create(&log).map_err(|e| format!("log file: {e}"))?;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_voxbridge"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info,voxbridge=debug".into()),
            )
            // Plain log lines: they are quoted in failure reports.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        // Our own configuration only: no VOXBRIDGE_* setting of the developer's shell.
        for (k, _) in std::env::vars() {
            if k.starts_with("VOXBRIDGE_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("starting voxbridge: {e}"))?;
        let stdout = child.stdout.take().ok_or("voxbridge stdout not piped")?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Reads the address line, then keeps draining stdout until the process ends.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addrs) = parse_listening(&line) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addrs);
                    }
                }
            }
        });
        let mut vb = VoxbridgeProcess {
            child,
            esl_addr: "0.0.0.0:0".parse().expect("literal"),
            api_addr: "0.0.0.0:0".parse().expect("literal"),
            log,
            _dir: dir,
        };
        match tokio::time::timeout(Duration::from_secs(20), rx).await {
            Ok(Ok((esl, api))) => {
                vb.esl_addr = esl;
                vb.api_addr = api;
                Ok(vb)
            }
            _ => {
                // Give a failing start a moment to finish writing why.
                tokio::time::sleep(Duration::from_millis(200)).await;
                Err(format!(
                    "voxbridge did not start (esl.listen {esl_listen}{}):\n{}",
                    if esl_listen.ends_with(":8084") {
                        "; is another voxbridge — e.g. the docker-compose service — already on 8084?"
                    } else {
                        ""
                    },
                    vb.log_tail(40)
                ))
            }
        }
    }

    /// The REST base of our account.
    pub fn account_url(&self) -> String {
        format!("http://{}/api/v1/Account/{AUTH_ID}", self.api_addr)
    }

    /// The last `lines` lines of its log (stderr).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Log lines that mention `needle` (a call UUID, say).
    pub fn log_lines_with(&self, needle: &str, max: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let hits: Vec<&str> = text.lines().filter(|l| l.contains(needle)).collect();
        hits[hits.len().saturating_sub(max)..].join("\n")
    }
}

/// `voxbridge listening esl=127.0.0.1:8084 api=127.0.0.1:8088`.
fn parse_listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.trim().strip_prefix("voxbridge listening ")?;
    let mut esl = None;
    let mut api = None;
    for word in rest.split_whitespace() {
        if let Some(v) = word.strip_prefix("esl=") {
            esl = v.parse().ok();
        } else if let Some(v) = word.strip_prefix("api=") {
            api = v.parse().ok();
        }
    }
    Some((esl?, api?))
}
