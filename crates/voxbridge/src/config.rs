//! Configuration: one TOML file, `VOXBRIDGE_…` environment overrides, safe defaults.
//!
//! Every key of SPEC §8 keeps its name and meaning. Environment variables map onto keys
//! by replacing the first `_` after the prefix with a section separator, so
//! `VOXBRIDGE_STORE_URL` sets `store.url` and `VOXBRIDGE_APP_DEFAULT_ANSWER_URL` sets
//! `app.default_answer_url`. Unknown keys are errors (a typo must not silently fall
//! back to a default), and every error names the key.

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub esl: EslConfig,
    pub api: ApiConfig,
    pub store: StoreConfig,
    pub app: AppConfig,
    pub outbox: OutboxConfig,
    pub tts: TtsConfig,
    pub dial: DialConfig,
    /// Recordings (SPEC §12.2).
    pub record: RecordConfig,
    #[serde(rename = "account")]
    pub accounts: Vec<Account>,
    #[serde(rename = "route")]
    pub routes: Vec<Route>,
    /// The FreeSWITCH switches reached over inbound ESL (reconciliation, `POST Call/`,
    /// `uuid_exists`): none, one `[switch]` table, or several `[[switch]]` (SPEC §14).
    #[serde(rename = "switch", skip_serializing_if = "SwitchList::is_empty")]
    pub switches: SwitchList,
    /// Calls placed through `POST Call/` (SPEC §13).
    pub outbound: OutboundConfig,
    /// Asterisk: the FastAGI listener and the ARI connection (SPEC §16).
    pub asterisk: AsteriskConfig,
    /// This node in a fleet sharing one PostgreSQL store (SPEC §14).
    pub node: NodeConfig,
    /// The process's async runtime.
    pub runtime: RuntimeConfig,
}

/// `[runtime]`: the threads that run voxbridge's sockets and call tasks.
///
/// **One worker by default** (issue 16). A call is a chain of small steps — a socket read,
/// an engine step, a command written — and with two workers the idle one is woken for
/// nearly every step only to find nothing to steal, so at the rates real switches run
/// (tens to hundreds of calls per second) a second worker costs ~17 % more CPU per call
/// and buys nothing: one worker carries ~1,500 calls/s of the simulator bench at
/// ~0.65 ms each, several times what one switch admits. Nothing blocks a worker: SQLite
/// writes have their own thread, reads and file work go to the blocking pool. Raise it
/// for one voxbridge in front of many busy switches (`cargo bench --bench calls` shows
/// where one worker saturates).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Async worker threads, 1–64.
    pub worker_threads: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self { worker_threads: 1 }
    }
}

/// The highest `[runtime] worker_threads` accepted.
pub const MAX_WORKER_THREADS: usize = 64;

/// `[outbound]`: how `POST Call/` places calls through the `[switch]` (SPEC §13).
///
/// The dial strings are not here: SPEC §11.1 and §13 say outbound calls use the same
/// ones as a document's Dial, from `[dial]` ([`DialConfig`]). The old
/// `[outbound] number_template`/`sip_profile` keys are still read, with a deprecation
/// warning, as `[dial]`'s (see [`Config::load_with_env`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Originates per second, at most (the switch's own admission limit is 30 by default).
    pub max_cps: f64,
    /// Calls accepted but not yet originated, at most; beyond it `POST Call/` answers 429.
    pub max_queued: usize,
    /// Deprecated: `[dial] number_template`. Accepted (moved there at load, with a
    /// warning) so configurations written for the first outbound release keep working.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_template: Option<String>,
    /// Deprecated: `[dial] sip_profile`, accepted like `number_template`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_profile: Option<String>,
    /// Where the switch's `socket` app hands the answered call back (`host:port`); empty:
    /// the address voxbridge's ESL listener is bound to.
    pub socket: String,
    /// Seconds beyond the ring timeout an originate's BACKGROUND_JOB may take before the
    /// call is given up and closed out (a switch that never answers the job).
    pub job_grace: f64,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            max_cps: 20.0,
            max_queued: 10_000,
            number_template: None,
            sip_profile: None,
            socket: String::new(),
            job_grace: 30.0,
        }
    }
}

/// `[node]`: who this voxbridge is among the nodes sharing a PostgreSQL store (SPEC §14).
/// Ignored with SQLite, whose file belongs to one process.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Unique per node; default: the host name.
    pub id: String,
    /// How the other nodes reach this node's REST API; empty: `http://<api.listen>`.
    pub api_url: String,
    /// Seconds without a heartbeat after which the other nodes take this one's calls
    /// and callbacks over.
    pub lease: f64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            id: default_node_id(),
            api_url: String::new(),
            lease: 15.0,
        }
    }
}

/// `[asterisk]`: calls handed over by Asterisk's `AGI(agi://…)` (SPEC §16). Off unless
/// `enabled`, so a FreeSWITCH-only deployment binds nothing more.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AsteriskConfig {
    /// Run the FastAGI listener.
    pub enabled: bool,
    /// FastAGI listener (`AGI(agi://127.0.0.1:4573)` in the dialplan).
    pub agi_listen: SocketAddr,
    /// CIDRs allowed to connect; anyone else is closed at once and logged.
    pub allow: Vec<String>,
    /// Seconds the switch has to send the AGI environment.
    pub handshake_timeout: f64,
    /// Upper bound on concurrently controlled channels; more are refused at accept.
    pub max_calls: usize,
    /// ARI base URL (`http://host:8088/ari`): out-of-band actions (REST hang-up while a
    /// Playback runs, reconciliation after a restart). Empty: none (a REST hang-up then
    /// waits for the running application to return).
    pub ari_url: String,
    pub ari_user: String,
    pub ari_password: String,
    /// Directory where http(s) media for `Play` is fetched to and cached (Asterisk has
    /// no HTTP media cache); it must be readable by Asterisk.
    pub media_cache_dir: String,
    /// How many Flite syntheses may run at once on this Asterisk (at least 1). The
    /// bundled app_flite crashes Asterisk (a libflite segfault) when two synthesise at
    /// the same time, so the default is 1: Speaks queue fairly, in arrival order.
    pub tts_concurrency: usize,
    /// Asterisk dial string of a Dial's `<Number>`; `{number}` is replaced by the number
    /// as written. Default `SIP/{number}` (a chan_sip peer or extension); the bundle's own
    /// test callees: `SIP/{number}@self`. A `<User>` `sip:alice@h:5080` is `SIP/alice@h:5080`.
    pub dial_number_template: String,
    /// AMI `host:port` (the manager interface, `127.0.0.1:5038`): what FastAGI and ARI
    /// cannot do while the socket is blocked in `Dial()` / `RECORD FILE` — the REST stop
    /// of recordings, Record `startOnDialAnswer`, Dial `digitsMatch`/`digitsMatchBLeg`,
    /// the callee's answer as an event. Empty: AMI off, and those stay refused by name.
    pub ami_address: String,
    /// manager.conf user (needs read `call,dtmf` and write `call,system`).
    pub ami_user: String,
    pub ami_secret: String,
}

impl Default for AsteriskConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            agi_listen: "127.0.0.1:4573".parse().expect("valid literal"),
            allow: vec!["127.0.0.0/8".into(), "::1/128".into()],
            handshake_timeout: 5.0,
            max_calls: 20_000,
            ari_url: String::new(),
            ari_user: String::new(),
            ari_password: String::new(),
            media_cache_dir: "voxbridge-media".into(),
            tts_concurrency: 1,
            dial_number_template: "SIP/{number}".into(),
            ami_address: String::new(),
            ami_user: String::new(),
            ami_secret: String::new(),
        }
    }
}

impl NodeConfig {
    /// `api_url`, or the REST listener's own address when it is not set.
    pub fn api_url_or(&self, api_listen: SocketAddr) -> String {
        if self.api_url.is_empty() {
            format!("http://{api_listen}")
        } else {
            self.api_url.trim_end_matches('/').to_string()
        }
    }

    pub fn lease(&self) -> Duration {
        Duration::try_from_secs_f64(self.lease).unwrap_or(Duration::from_secs(15))
    }
}

/// The host name (the kernel's), else `voxbridge`: the default `[node] id`.
pub fn default_node_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "voxbridge".into())
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EslConfig {
    /// Outbound-socket listener (`socket 127.0.0.1:8084 async full` in the dialplan).
    pub listen: SocketAddr,
    /// CIDRs allowed to connect; anyone else is closed at once and logged.
    pub allow: Vec<String>,
    /// Seconds the switch has to answer `connect` (the subscription commands after it
    /// have the reply timeout: a channel we know is never dropped for being slow).
    pub handshake_timeout: f64,
    /// Upper bound on concurrently controlled channels; more are refused at accept.
    pub max_calls: usize,
    /// Seconds live calls get to end after SIGTERM/SIGINT before they are cut off (their
    /// records are then written by the next start's reconciliation).
    pub shutdown_grace: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// REST API, `/metrics` and `/health`.
    pub listen: SocketAddr,
    /// The API's address as the customer's application reaches it (`https://vb.example.com`),
    /// the base of every `RecordUrl`/`recording_url` (SPEC §12.2). Empty: `http://<listen>`.
    pub public_url: String,
}

impl ApiConfig {
    /// [`ApiConfig::public_url`], or `http://<bound>` when it is empty (`bound`: the
    /// address the API listener got, which differs from `listen` for port 0); no
    /// trailing `/`.
    pub fn public_base(&self, bound: std::net::SocketAddr) -> String {
        let url = self.public_url.trim().trim_end_matches('/');
        if url.is_empty() {
            format!("http://{bound}")
        } else {
            url.to_string()
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://<path>` (relative to the working directory) or `postgres://…` (later).
    pub url: String,

    // --- retention (issue 10 point 8; see `store::sqlite::retention`) ---
    /// Days a CDR is kept after the call ended (with its callback rows); 0: forever.
    pub retention_cdr_days: f64,
    /// Days a delivered callback row is kept after its delivery; 0: forever.
    pub retention_delivered_days: f64,
    /// Seconds between two retention runs (each ends with a WAL checkpoint).
    pub retention_interval_secs: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AppConfig {
    pub default_answer_url: String,
    /// Empty: the answer URL.
    pub default_hangup_url: String,
    pub fallback_answer_url: String,
    /// Empty: no JSON status events.
    pub status_callback_url: String,
    /// Seconds an empty document may park a call before ALLOTTED_TIMEOUT (SPEC §4 rule 7).
    pub empty_document_timeout: u64,
    /// Seconds to establish a connection to the application.
    pub connect_timeout: f64,
    /// Seconds for a whole document fetch attempt.
    pub fetch_timeout: f64,
    /// Extra attempts after the first, on connect errors, timeouts, 5xx and 429.
    pub fetch_retries: u32,
    /// Backoff before each retry, milliseconds (the last value repeats).
    pub fetch_backoff_ms: Vec<u64>,
    /// Channel variables sent along with every fetch (SPEC §5.1 `extra_variables`).
    pub extra_variables: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// First retry delay, seconds; doubles each attempt.
    pub initial_backoff: f64,
    /// Largest delay between attempts, seconds.
    pub max_backoff: f64,
    /// Give up after this many seconds since the row was written.
    pub give_up_after: f64,
    /// Seconds for one delivery attempt.
    pub request_timeout: f64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TtsConfig {
    /// TTS engine for `speak` (`flite` by default).
    pub engine: String,
    /// Document voice (`WOMAN`/`MAN`) → engine voice. Defaults: WOMAN → slt, MAN → kal.
    pub voices: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub auth_id: String,
    pub auth_token: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Route {
    /// Exact called number, or a regex written `/…/`.
    pub destination: String,
    pub answer_url: String,
    pub hangup_url: String,
    pub fallback_answer_url: String,
    pub status_callback_url: String,
    pub account: String,
}

/// One switch: `[switch]`, or one of several `[[switch]]` (SPEC §14).
///
/// **Which switch a call is on** is decided by name: a call's connect reply says
/// `FreeSWITCH-Switchname` (FreeSWITCH's `switchname` in `switch.conf.xml`, by default
/// its host name), the live row records it, and the configured switch of that `name` is
/// the one asked about the call. The `Core-UUID` of the connect reply was the other
/// candidate; it was not chosen because it changes at every restart of the switch, so
/// it would have to be learnt again on every reconnect and a row written before a
/// restart would name a switch nobody knows any more, while a name is the operator's,
/// stable and visible in the configuration. With one switch configured its `name` may
/// be left empty: that switch is every call's switch, whatever name it reports.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SwitchConfig {
    /// The switch's `FreeSWITCH-Switchname`; required (and unique) with several.
    pub name: String,
    /// Inbound ESL address of the switch, e.g. `127.0.0.1:8021`.
    pub esl: String,
    pub password: String,
}

impl Default for SwitchConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            esl: "127.0.0.1:8021".into(),
            password: "ClueCon".into(),
        }
    }
}

/// The configured switches: a single `[switch]` table or an array of `[[switch]]`
/// tables, the same thing to everything that uses them. Written back (defaults, the
/// environment's key types) as one table when there is one, an array otherwise.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SwitchList(pub Vec<SwitchConfig>);

impl SwitchList {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, SwitchConfig> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The first switch, if any (the one of a single-switch configuration).
    pub fn first(&self) -> Option<&SwitchConfig> {
        self.0.first()
    }
}

impl Serialize for SwitchList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for SwitchList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(SwitchConfig),
            Many(Vec<SwitchConfig>),
        }
        match OneOrMany::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected one [switch] table or [[switch]] tables with keys name, esl, password",
            )
        })? {
            OneOrMany::One(one) => Ok(SwitchList(vec![one])),
            OneOrMany::Many(many) => Ok(SwitchList(many)),
        }
    }
}

/// `host:port` with a port number and a host (a name or an address), as an ESL
/// address must be.
fn is_host_port(addr: &str) -> bool {
    if let Ok(addr) = addr.parse::<SocketAddr>() {
        return addr.port() > 0;
    }
    match addr.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains(':')
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
                && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => false,
    }
}

impl Default for EslConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8084".parse().expect("valid literal"),
            allow: vec!["127.0.0.0/8".into(), "::1/128".into()],
            handshake_timeout: 5.0,
            max_calls: 20_000,
            shutdown_grace: 30.0,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8088".parse().expect("valid literal"),
            public_url: String::new(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://voxbridge.db".into(),
            retention_cdr_days: 90.0,
            retention_delivered_days: 30.0,
            retention_interval_secs: 3600.0,
        }
    }
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            default_answer_url: String::new(),
            default_hangup_url: String::new(),
            fallback_answer_url: String::new(),
            status_callback_url: String::new(),
            empty_document_timeout: 3600,
            connect_timeout: 2.0,
            fetch_timeout: 5.0,
            fetch_retries: 2,
            fetch_backoff_ms: vec![100, 400],
            extra_variables: Vec::new(),
        }
    }
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            initial_backoff: 1.0,
            max_backoff: 300.0,
            give_up_after: 86_400.0,
            request_timeout: 10.0,
            concurrency: 64,
        }
    }
}

/// `[outbox]`'s times, checked and in their unit. The configuration owns the rules so
/// that a bad value stops the start like any other configuration error, without the
/// configuration depending on the delivery worker (which builds its settings from this).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutboxTimes {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub give_up_after: Duration,
    pub request_timeout: Duration,
}

impl OutboxConfig {
    /// Checks every value, naming the key that is wrong.
    pub fn checked(&self) -> Result<OutboxTimes, String> {
        let secs = |key: &str, v: f64, allow_zero: bool| -> Result<Duration, String> {
            if !v.is_finite() || v < 0.0 || (!allow_zero && v == 0.0) {
                return Err(format!(
                    "outbox.{key}: {v} is not a positive number of seconds"
                ));
            }
            Duration::try_from_secs_f64(v).map_err(|e| format!("outbox.{key}: {e}"))
        };
        let initial_backoff = secs("initial_backoff", self.initial_backoff, false)?;
        let max_backoff = secs("max_backoff", self.max_backoff, false)?;
        if max_backoff < initial_backoff {
            return Err(format!(
                "outbox.max_backoff: {} is less than initial_backoff {}",
                self.max_backoff, self.initial_backoff
            ));
        }
        if self.concurrency == 0 {
            return Err("outbox.concurrency: must be at least 1".into());
        }
        Ok(OutboxTimes {
            initial_backoff,
            max_backoff,
            give_up_after: secs("give_up_after", self.give_up_after, true)?,
            request_timeout: secs("request_timeout", self.request_timeout, false)?,
        })
    }
}

impl Default for TtsConfig {
    fn default() -> Self {
        Self {
            engine: "flite".into(),
            voices: BTreeMap::from([
                ("WOMAN".to_string(), "slt".to_string()),
                ("MAN".to_string(), "kal".to_string()),
            ]),
        }
    }
}

/// `[dial]`: how a Dial's destinations become switch dial strings (SPEC §11.1).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DialConfig {
    /// Dial string of a `<Number>`; `{number}` is replaced by the number as written
    /// (`+` included). Default `sofia/gateway/default/{number}`. To reach the test
    /// switch's own extensions (the live suite): `sofia/external/{number}@127.0.0.1:5060`.
    pub number_template: String,
    /// SIP profile a `<User>` is sent through: `sip:alice@h:5080` → `sofia/<profile>/alice@h:5080`.
    pub sip_profile: String,
}

impl Default for DialConfig {
    fn default() -> Self {
        Self {
            number_template: "sofia/gateway/default/{number}".into(),
            sip_profile: "external".into(),
        }
    }
}

/// `[record]`: where and how `<Record>` files are made (SPEC §12.2).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RecordConfig {
    /// Where the switch writes recordings, `<dir>/<RecordingID>.<ext>`: a path that both
    /// the switch (which writes) and voxbridge (which serves and deletes) reach, as the
    /// same path. Default `/var/lib/voxbridge/recordings`; created at start if missing.
    pub dir: String,
    /// The format of a Record without `fileFormat`: `wav` (default) or `mp3`.
    pub format: String,
    /// Whether the switch can write mp3 (FreeSWITCH: mod_shout loaded — `module_exists
    /// mod_shout`). false (default): a Record asking for mp3 is recorded as wav and the
    /// call's CDR notes say so. An admin statement rather than a question to the switch
    /// per call (SPEC §9: no `api` round trip a call does not need).
    pub mp3: bool,
}

impl Default for RecordConfig {
    fn default() -> Self {
        Self {
            dir: "/var/lib/voxbridge/recordings".into(),
            format: "wav".into(),
            mp3: false,
        }
    }
}

/// A configuration that could not be loaded; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Defaults, then the TOML file (if given), then `VOXBRIDGE_…` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// As [`Config::load`], with the environment passed in (tests use this).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        // Keep only our variables; figment's Env reads the process environment, so
        // feed it through a scoped provider built from the given pairs.
        let ours: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("VOXBRIDGE_") && k != "VOXBRIDGE_CONFIG")
            .filter(|(k, _)| !k.starts_with("VOXBRIDGE_TEST_"))
            .collect();
        let template = key_types();
        let mut from_env: Vec<(String, String)> = Vec::new();
        for (key, value) in ours {
            let rest = &key["VOXBRIDGE_".len()..];
            let Some((section, field)) = rest.split_once('_') else {
                return Err(ConfigError(format!(
                    "environment variable {key}: expected VOXBRIDGE_<SECTION>_<KEY>"
                )));
            };
            let path = format!("{}.{}", section.to_lowercase(), field.to_lowercase());
            // A string key keeps the text as is (a password `12345` is a string); other
            // keys get numbers, booleans and arrays parsed.
            let parsed = match template.find_value(&path) {
                Ok(figment::value::Value::String(..)) => value.clone().into(),
                _ => parse_env_value(&value),
            };
            fig = fig.merge(Serialized::default(&path, parsed));
            from_env.push((path, key));
        }
        let mut cfg: Config = fig
            .extract()
            .map_err(|e| ConfigError(describe(e, &from_env)))?;
        cfg.move_deprecated_dial_keys()?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// `[outbound] number_template`/`sip_profile` (the first outbound release's keys)
    /// become `[dial]`'s, which `POST Call/` and Dial share (SPEC §11.1, §13), with a
    /// warning naming the new key. Set in both places with different values, the
    /// configuration is refused rather than one silently winning.
    fn move_deprecated_dial_keys(&mut self) -> Result<(), ConfigError> {
        let defaults = DialConfig::default();
        let moves = [
            (
                "number_template",
                self.outbound.number_template.take(),
                &mut self.dial.number_template,
                defaults.number_template,
            ),
            (
                "sip_profile",
                self.outbound.sip_profile.take(),
                &mut self.dial.sip_profile,
                defaults.sip_profile,
            ),
        ];
        for (key, old, new, default) in moves {
            let Some(old) = old else { continue };
            if *new != default && *new != old {
                return Err(ConfigError(format!(
                    "outbound.{key} ({old:?}) and dial.{key} ({new:?}) disagree: outbound \
                     calls use [dial] {key}; remove outbound.{key}"
                )));
            }
            tracing::warn!(
                "outbound.{key} is deprecated: outbound calls use [dial] {key} (SPEC §13); \
                 move it there"
            );
            *new = old;
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let workers = self.runtime.worker_threads;
        if !(1..=MAX_WORKER_THREADS).contains(&workers) {
            return Err(ConfigError(format!(
                "runtime.worker_threads: {workers} is not between 1 and {MAX_WORKER_THREADS}"
            )));
        }
        for cidr in &self.esl.allow {
            crate::config::parse_cidr(cidr)
                .ok_or_else(|| ConfigError(format!("esl.allow: {cidr:?} is not a CIDR")))?;
        }
        for (i, route) in self.routes.iter().enumerate() {
            if let Some(re) = route
                .destination
                .strip_prefix('/')
                .and_then(|r| r.strip_suffix('/'))
            {
                regex::Regex::new(re).map_err(|e| {
                    ConfigError(format!("route[{i}].destination: bad regex {re:?}: {e}"))
                })?;
            }
            if !route.account.is_empty()
                && !self.accounts.iter().any(|a| a.auth_id == route.account)
            {
                return Err(ConfigError(format!(
                    "route[{i}].account: no [[account]] with auth_id {:?}",
                    route.account
                )));
            }
        }
        seconds("esl.handshake_timeout", self.esl.handshake_timeout, false)?;
        if !matches!(self.record.format.as_str(), "wav" | "mp3") {
            return Err(ConfigError(format!(
                "record.format: {:?}: expected wav or mp3",
                self.record.format
            )));
        }
        if !self.record.dir.starts_with('/') {
            return Err(ConfigError(format!(
                "record.dir: {:?}: expected an absolute path (the switch resolves a relative one against its own recordings directory)",
                self.record.dir
            )));
        }
        for cidr in &self.asterisk.allow {
            crate::config::parse_cidr(cidr)
                .ok_or_else(|| ConfigError(format!("asterisk.allow: {cidr:?} is not a CIDR")))?;
        }
        seconds(
            "asterisk.handshake_timeout",
            self.asterisk.handshake_timeout,
            false,
        )?;
        if !self.asterisk.dial_number_template.contains("{number}") {
            return Err(ConfigError(
                "asterisk.dial_number_template: must contain {number}".into(),
            ));
        }
        let ami = self.asterisk.ami_address.trim();
        if !ami.is_empty() {
            let port_ok = ami.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !port_ok {
                return Err(ConfigError(format!(
                    "asterisk.ami_address: {ami:?}: expected host:port (e.g. 127.0.0.1:5038), or empty for no AMI"
                )));
            }
            if self.asterisk.ami_user.trim().is_empty() {
                return Err(ConfigError(
                    "asterisk.ami_user: must be set when asterisk.ami_address is (a manager.conf user)"
                        .into(),
                ));
            }
        }
        if self.asterisk.tts_concurrency == 0 {
            return Err(ConfigError(
                "asterisk.tts_concurrency: must be at least 1 (1 keeps Flite safe on the bundle)"
                    .into(),
            ));
        }
        for (key, days) in [
            ("store.retention_cdr_days", self.store.retention_cdr_days),
            (
                "store.retention_delivered_days",
                self.store.retention_delivered_days,
            ),
        ] {
            let ok = days.is_finite()
                && days >= 0.0
                && std::time::Duration::try_from_secs_f64(days * 86_400.0).is_ok();
            if !ok {
                return Err(ConfigError(format!(
                    "{key}: {days} is not a valid number of days (expected 0 or more; 0 keeps forever)"
                )));
            }
        }
        seconds(
            "store.retention_interval_secs",
            self.store.retention_interval_secs,
            false,
        )?;
        seconds("esl.shutdown_grace", self.esl.shutdown_grace, true)?;
        seconds("node.lease", self.node.lease, false)?;
        if self.node.id.trim().is_empty() {
            return Err(ConfigError("node.id: must not be empty".into()));
        }
        if !self.node.api_url.is_empty() && url::Url::parse(&self.node.api_url).is_err() {
            return Err(ConfigError(format!(
                "node.api_url: {:?} is not a URL",
                self.node.api_url
            )));
        }
        seconds("app.connect_timeout", self.app.connect_timeout, false)?;
        seconds("app.fetch_timeout", self.app.fetch_timeout, false)?;
        if self.app.empty_document_timeout == 0 {
            return Err(ConfigError(
                "app.empty_document_timeout: must be at least 1 second".into(),
            ));
        }
        for (i, account) in self.accounts.iter().enumerate() {
            if account.auth_id.trim().is_empty() || account.auth_token.is_empty() {
                return Err(ConfigError(format!(
                    "account[{i}]: auth_id and auth_token must not be empty"
                )));
            }
            if self.accounts[..i]
                .iter()
                .any(|a| a.auth_id == account.auth_id)
            {
                return Err(ConfigError(format!(
                    "account[{i}].auth_id: {:?} is configured twice",
                    account.auth_id
                )));
            }
        }
        self.outbox.checked().map_err(ConfigError)?;
        if self.app.fetch_backoff_ms.is_empty() {
            return Err(ConfigError(
                "app.fetch_backoff_ms: must not be empty".into(),
            ));
        }
        if !self.dial.number_template.contains("{number}") {
            return Err(ConfigError(
                "dial.number_template: must contain {number}".into(),
            ));
        }
        let profile_ok = !self.dial.sip_profile.is_empty()
            && self
                .dial
                .sip_profile
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !profile_ok {
            return Err(ConfigError(
                "dial.sip_profile: expected a profile name (letters, digits, - _ .)".into(),
            ));
        }
        if self.esl.max_calls == 0 {
            return Err(ConfigError("esl.max_calls: must be at least 1".into()));
        }
        let cps = self.outbound.max_cps;
        if !(cps.is_finite() && cps > 0.0 && cps <= 10_000.0) {
            return Err(ConfigError(format!(
                "outbound.max_cps: {cps} is not a rate (expected more than 0, at most 10000)"
            )));
        }
        if self.outbound.max_queued == 0 {
            return Err(ConfigError(
                "outbound.max_queued: must be at least 1".into(),
            ));
        }
        if !self.outbound.socket.is_empty() && self.outbound.socket.parse::<SocketAddr>().is_err() {
            return Err(ConfigError(format!(
                "outbound.socket: {:?} is not ip:port",
                self.outbound.socket
            )));
        }
        seconds("outbound.job_grace", self.outbound.job_grace, false)?;
        self.validate_switches()?;
        Ok(())
    }

    /// Each switch reachable at `host:port`; with several, each named, names unique.
    fn validate_switches(&self) -> Result<(), ConfigError> {
        let several = self.switches.len() > 1;
        for (i, sw) in self.switches.iter().enumerate() {
            let key = if several {
                format!("switch[{i}]")
            } else {
                "switch".to_string()
            };
            if !is_host_port(&sw.esl) {
                return Err(ConfigError(format!(
                    "{key}.esl: {:?} is not host:port",
                    sw.esl
                )));
            }
            let name = sw.name.trim();
            if name != sw.name || name.chars().any(char::is_whitespace) {
                return Err(ConfigError(format!(
                    "{key}.name: {:?} must not contain spaces",
                    sw.name
                )));
            }
            if several && name.is_empty() {
                return Err(ConfigError(format!(
                    "{key}.name: required with several [[switch]] (the switch's \
                     FreeSWITCH-Switchname, which tells which switch a call is on)"
                )));
            }
            if !name.is_empty() && self.switches.0[..i].iter().any(|o| o.name == name) {
                return Err(ConfigError(format!(
                    "{key}.name: {name:?} is configured twice"
                )));
            }
        }
        Ok(())
    }
}

/// A number of seconds `Duration` can hold: finite, not negative, and not zero unless
/// `allow_zero` (a zero timeout would fail every attempt at once).
fn seconds(key: &str, value: f64, allow_zero: bool) -> Result<(), ConfigError> {
    let ok = value.is_finite()
        && value >= 0.0
        && (allow_zero || value > 0.0)
        && std::time::Duration::try_from_secs_f64(value).is_ok();
    if ok {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "{key}: {value} is not a valid number of seconds (expected {})",
            if allow_zero {
                "0 or more"
            } else {
                "more than 0"
            }
        )))
    }
}

/// Environment values are strings; numbers, booleans and TOML arrays are recognised so
/// `VOXBRIDGE_APP_FETCH_RETRIES=3` and `VOXBRIDGE_ESL_ALLOW=["10.0.0.0/8"]` work.
fn parse_env_value(value: &str) -> figment::value::Value {
    let v = value.trim();
    if v.starts_with('[') {
        if let Ok(parsed) = Figment::new()
            .merge(Toml::string(&format!("x = {v}")))
            .extract_inner::<figment::value::Value>("x")
        {
            return parsed;
        }
    }
    if let Ok(i) = v.parse::<i64>() {
        return i.into();
    }
    if let Ok(f) = v.parse::<f64>() {
        return f.into();
    }
    match v {
        "true" => true.into(),
        "false" => false.into(),
        _ => value.to_string().into(),
    }
}

/// Every key with its default value, optional sections included: what the type of an
/// environment override is judged by.
fn key_types() -> Figment {
    Figment::from(Serialized::defaults(Config {
        switches: SwitchList(vec![SwitchConfig::default()]),
        ..Config::default()
    }))
}

/// Figment's errors as `key: problem`, naming the environment variable when the bad
/// value came from one.
fn describe(e: figment::Error, from_env: &[(String, String)]) -> String {
    e.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let var = from_env.iter().find(|(path, _)| *path == key);
            match (key.is_empty(), var) {
                (true, _) => e.kind.to_string(),
                (false, Some((_, var))) => format!("{key} (from {var}): {}", e.kind),
                (false, None) => format!("{key}: {}", e.kind),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub use crate::listen::{cidr_allows, parse_cidr};

#[cfg(test)]
mod tests {
    #[test]
    fn the_public_base_is_the_configured_url_or_the_bound_address() {
        let bound: std::net::SocketAddr = "127.0.0.1:40123".parse().unwrap();
        let mut api = ApiConfig::default();
        assert_eq!(api.public_base(bound), "http://127.0.0.1:40123");
        api.public_url = "https://vb.example.com/".into();
        assert_eq!(api.public_base(bound), "https://vb.example.com");
    }

    use super::*;

    #[test]
    fn defaults_are_loopback_and_sqlite() {
        let c = Config::load_with_env(None, Vec::new()).unwrap();
        assert_eq!(c.esl.listen.to_string(), "127.0.0.1:8084");
        assert_eq!(c.api.listen.to_string(), "127.0.0.1:8088");
        assert_eq!(c.store.url, "sqlite://voxbridge.db");
        assert_eq!(c.app.empty_document_timeout, 3600);
        assert_eq!(c.tts.voices["WOMAN"], "slt");
    }

    #[test]
    fn env_overrides_and_errors_name_the_key() {
        let c = Config::load_with_env(
            None,
            vec![
                ("VOXBRIDGE_STORE_URL".into(), "sqlite:///tmp/x.db".into()),
                ("VOXBRIDGE_APP_FETCH_RETRIES".into(), "4".into()),
                ("VOXBRIDGE_ESL_ALLOW".into(), "[\"10.0.0.0/8\"]".into()),
            ],
        )
        .unwrap();
        assert_eq!(c.store.url, "sqlite:///tmp/x.db");
        assert_eq!(c.app.fetch_retries, 4);
        assert_eq!(c.esl.allow, vec!["10.0.0.0/8".to_string()]);

        let e = Config::load_with_env(
            None,
            vec![("VOXBRIDGE_APP_FETCH_RETRIES".into(), "many".into())],
        )
        .unwrap_err();
        assert!(e.to_string().contains("app.fetch_retries"), "{e}");
    }

    #[test]
    fn worker_threads_default_to_one_and_are_bounded() {
        assert_eq!(Config::default().runtime.worker_threads, 1);
        let c = Config::load_with_env(
            None,
            vec![("VOXBRIDGE_RUNTIME_WORKER_THREADS".into(), "2".into())],
        )
        .unwrap();
        assert_eq!(c.runtime.worker_threads, 2);
        for bad in ["0", "65"] {
            let e = Config::load_with_env(
                None,
                vec![("VOXBRIDGE_RUNTIME_WORKER_THREADS".into(), bad.into())],
            )
            .unwrap_err();
            assert!(e.to_string().contains("runtime.worker_threads"), "{e}");
        }
    }
}
