//! The real `voxbridge serve` binary, configured for one run of the suite: its own
//! SQLite file, the local application as answer and hangup URL, one REST account.

use super::common::process::{voxbridge_command, ServeProcess};
use std::net::SocketAddr;
use std::time::Duration;

/// `[app] empty_document_timeout` of the suite's voxbridge, seconds (SPEC §4 rule 7).
pub const EMPTY_DOCUMENT_TIMEOUT: u64 = 6;

/// REST credentials of the suite's account (also the key its callbacks are signed with).
pub const AUTH_ID: &str = "MALIVE000001";
pub const AUTH_TOKEN: &str = "live-suite-token";

/// A running `voxbridge serve`; killed on drop, so a failing test leaves nothing behind.
pub struct VoxbridgeProcess {
    process: ServeProcess,
    pub esl_addr: SocketAddr,
    pub api_addr: SocketAddr,
    _dir: tempfile::TempDir,
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
        Self::start_with(esl_listen, esl_allow, app_base, "").await
    }

    /// [`VoxbridgeProcess::start`] with `extra` appended to the configuration (the
    /// `[asterisk]` table of the Asterisk runs).
    pub async fn start_with(
        esl_listen: &str,
        esl_allow: &[String],
        app_base: &str,
        extra: &str,
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
# Short, so the rule 7 timeout scenarios end in seconds; longer than the 4 s after which
# the caller gives up in rule_7_empty_response_rings_until_the_caller_gives_up.
empty_document_timeout = {EMPTY_DOCUMENT_TIMEOUT}

# Numbers reach the switch's own test destinations (7002–7008), looped back over SIP.
[dial]
number_template = "sofia/external/{{number}}@127.0.0.1:5060"

[outbox]
initial_backoff = 0.2
max_backoff = 1.0

# The switch runs as the same user and writes the recordings here; voxbridge serves them.
[record]
dir = "{recordings}"

[[account]]
auth_id = "{AUTH_ID}"
auth_token = "{AUTH_TOKEN}"

{extra}
"#,
            db = dir.path().join("voxbridge.db").display(),
            recordings = dir.path().join("recordings").display(),
        );
        std::fs::write(&config, toml).map_err(|e| format!("writing the config: {e}"))?;
        let mut cmd = voxbridge_command();
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info,voxbridge=debug".into()),
            )
            // Plain log lines: they are quoted in failure reports.
            .env("NO_COLOR", "1");
        let started = tokio::task::spawn_blocking(move || {
            ServeProcess::start(cmd, &log, Duration::from_secs(20))
        })
        .await
        .map_err(|e| format!("starting voxbridge: {e}"))?;
        match started {
            Ok(process) => Ok(VoxbridgeProcess {
                esl_addr: process.esl,
                api_addr: process.api,
                process,
                _dir: dir,
            }),
            Err(why) => Err(format!(
                "voxbridge did not start (esl.listen {esl_listen}{}): {why}",
                if esl_listen.ends_with(":8084") {
                    "; is another voxbridge — e.g. the docker-compose service — already on 8084?"
                } else {
                    ""
                },
            )),
        }
    }

    /// The REST base of our account.
    pub fn account_url(&self) -> String {
        format!("http://{}/api/v1/Account/{AUTH_ID}", self.api_addr)
    }

    /// The last `lines` lines of its log (stderr).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.process.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Log lines that mention the call UUID `uuid` as a whole token. Asterisk's uniqueids
    /// prefix one another (`1796486406.1` and `1796486406.13`), so a plain substring match
    /// would hand one call's lines to another.
    pub fn log_lines_with(&self, uuid: &str, max: usize) -> String {
        let text = self.process.log_text();
        let hits: Vec<&str> = text.lines().filter(|l| mentions_uuid(l, uuid)).collect();
        hits[hits.len().saturating_sub(max)..].join("\n")
    }
}

/// Whether `line` holds `uuid` with no uuid character (alphanumeric, `-`, or a `.` that
/// goes on with one) glued to either side.
pub fn mentions_uuid(line: &str, uuid: &str) -> bool {
    let glued = |c: Option<char>, then: Option<char>| match c {
        Some(c) if c.is_ascii_alphanumeric() || c == '-' => true,
        Some('.') => then.is_some_and(|t| t.is_ascii_alphanumeric()),
        _ => false,
    };
    line.match_indices(uuid).any(|(at, _)| {
        let mut before = line[..at].chars().rev();
        let mut after = line[at + uuid.len()..].chars();
        let (b, bb) = (before.next(), before.next());
        let (a, aa) = (after.next(), after.next());
        !glued(b, bb) && !glued(a, aa)
    })
}

#[cfg(test)]
mod tests {
    use super::mentions_uuid;

    #[test]
    fn an_asterisk_uniqueid_does_not_match_a_longer_one() {
        let line = r#"call{call_uuid=1796486406.13 switch="asterisk"}: call ended"#;
        assert!(!mentions_uuid(line, "1796486406.1"));
        assert!(mentions_uuid(line, "1796486406.13"));
        assert!(mentions_uuid("b_leg=\"1796486406.1\".", "1796486406.1"));
        assert!(!mentions_uuid("x1796486406.1", "1796486406.1"));
        assert!(mentions_uuid("uuid f39a2159-40c9 ended", "f39a2159-40c9"));
        assert!(!mentions_uuid(
            "uuid f39a2159-40c9-4cd7 ended",
            "f39a2159-40c9"
        ));
    }
}
