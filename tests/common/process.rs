//! The real `voxbridge` binary as a child process: started with a clean environment,
//! its stderr kept in a log file (quoted when a test fails), its ports learnt from the
//! `voxbridge listening esl=… api=…` line it prints on stdout, and killed on drop so a
//! failing test leaves no process behind.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// The binary under test, stdin closed. The developer's shell must not reconfigure the
/// server under test, so every `VOXBRIDGE_*` variable is removed.
pub fn voxbridge_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voxbridge"));
    cmd.stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("VOXBRIDGE_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A running `voxbridge serve` whose listening line has been read.
pub struct ServeProcess {
    child: Child,
    pub esl: SocketAddr,
    pub api: SocketAddr,
    pub log: PathBuf,
}

impl ServeProcess {
    /// Spawns `cmd` with stdout piped and stderr appended to a new file `log`, and waits
    /// up to `within` for the listening line (blocking: call it off the runtime, or
    /// where blocking is fine). On failure the child is killed and the error says why,
    /// with the log so far.
    pub fn start(mut cmd: Command, log: &Path, within: Duration) -> Result<Self, String> {
        let log_file =
            std::fs::File::create(log).map_err(|e| format!("log file {}: {e}", log.display()))?;
        cmd.stdout(Stdio::piped()).stderr(log_file);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("starting voxbridge: {e}"))?;
        let stdout = child.stdout.take().ok_or("voxbridge stdout not piped")?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the address line, then keeps draining stdout so the child never blocks
        // on a full pipe.
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
        let mut process = ServeProcess {
            child,
            esl: "0.0.0.0:0".parse().expect("literal"),
            api: "0.0.0.0:0".parse().expect("literal"),
            log: log.to_path_buf(),
        };
        match rx.recv_timeout(within) {
            Ok((esl, api)) => {
                process.esl = esl;
                process.api = api;
                Ok(process)
            }
            Err(_) => {
                let _ = process.child.kill();
                let _ = process.child.wait();
                Err(format!(
                    "voxbridge did not print its listening line within {within:?}; log:\n{}",
                    process.log_text()
                ))
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// CPU seconds (user + system) it has used so far (Linux; 0 elsewhere).
    pub fn cpu_secs(&self) -> f64 {
        proc_cpu_secs(&format!("/proc/{}/stat", self.child.id()))
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `voxbridge listening esl=127.0.0.1:8084 api=127.0.0.1:8088`.
pub fn parse_listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
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

/// CPU seconds of a process from its `/proc/<pid>/stat` (0 when unreadable).
pub fn proc_cpu_secs(stat_path: &str) -> f64 {
    let Ok(text) = std::fs::read_to_string(stat_path) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are 14th and 15th.
    let Some(rest) = text.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // rest starts at field 3 (state), so utime (14) is index 11, stime (15) index 12.
    (ticks(11) + ticks(12)) / 100.0
}
