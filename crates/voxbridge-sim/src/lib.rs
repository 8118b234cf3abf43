//! A FreeSWITCH simulator: plays the switch side of outbound and inbound ESL as the
//! real switch does (see the transcripts in `tests/fixtures/esl/`), for tests, the
//! benchmark and the demo. Everything runs in-process on 127.0.0.1.
//!
//! ```no_run
//! # async fn demo() {
//! use std::time::Duration;
//! use voxbridge_sim::{CallScript, Outcome, Sim, SimConfig};
//!
//! // 20× faster than real time: a 60 s schedule takes 3 s.
//! let sim = Sim::new(SimConfig { speed: 20.0, ..SimConfig::default() });
//! let call = sim.place_call(
//!     CallScript::ringing()                      // like extension 7001: not answered yet
//!         .var("voxbridge_answer_url", "http://127.0.0.1:9000/answer")
//!         .caller_hangs_up_during("playback", Duration::from_secs(2)),
//!     "127.0.0.1:8084".parse().unwrap(),        // voxbridge's ESL listener
//! );
//! let report = call.report().await;              // when the connection has ended
//! match report.outcome {
//!     Outcome::Refused { sip, .. } => println!("refused with {sip}"),
//!     Outcome::Bye { cause, .. } => println!("BYE {cause}"),
//!     other => println!("{other:?}"),
//! }
//! # }
//! ```
//!
//! - [`Sim::place_call`] plays the `socket <addr> async full` application: it connects to
//!   the target like the switch does and serves one channel (module [`call`]);
//! - [`Sim::listen_inbound`] plays the switch's inbound port (auth, api, bgapi, events);
//! - [`CallScript`] scripts the channel and the caller, [`CallReport`] says what the caller
//!   saw; [`SimConfig::speed`] accelerates every simulated duration.

mod api;
mod call;
mod caller_leg;
mod channel;
mod clock;
mod command;
mod event;
mod inbound;
mod recording;
mod registry;
mod report;
mod script;
mod templates;
pub mod transcript;
mod wire;

pub use clock::SimClock;
pub use command::{Command, CommandReader};
pub use inbound::InboundServer;
pub use report::{AppRecord, AppStatus, CallHandle, CallReport, HangupCommandRecord, Outcome};
pub use script::{CallScript, Callee, CalleeMedia, CallerAction, PlayLength};
pub use wire::{EventFormat, SimEvent};

use event::{EventBus, SwitchInfo};
use registry::Registry;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Where the linger notice falls in the hangup sequence. The switch does not fix it
/// (transcripts a, c, d, h: after CHANNEL_HANGUP_COMPLETE; b: right after
/// CHANNEL_HANGUP), so a client must cope with both; tests can pick either.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LingerNotice {
    #[default]
    AfterHangupComplete,
    AfterHangup,
}

/// Simulator settings. Durations are simulated (divided by `speed` in real time), except
/// `first_packet_timeout`, which guards the protocol rather than a call and would
/// otherwise shrink below what a busy client needs to answer.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// How much faster than real time simulated time runs (20.0 = a 60 s schedule
    /// takes 3 s). Event times and CDR epochs stay simulated.
    pub speed: f64,
    /// The socket closes if the client sends nothing this long (switch: 25 s). Real time.
    pub first_packet_timeout: Duration,
    /// After `connect`, the channel parks (CHANNEL_PARK, then queued commands run) this
    /// long later, or at the first `sendmsg`, whichever comes first. Zero parks at
    /// `connect`, before any later command (so CHANNEL_PARK is not delivered).
    pub park_delay: Duration,
    pub linger_notice: LingerNotice,
    /// At most this many calls may wait for the client's first command at once; more
    /// wait before connecting. A burst of thousands of simultaneous connects otherwise
    /// overflows the client's accept queue (the kernel drops the connections), which a
    /// real switch, admitting calls at a bounded rate, does not cause.
    pub max_pending_connects: usize,
    /// `$${recordings_dir}`: where relative `record`/`record_session` names go. The
    /// simulator writes the files it records (module `recording`).
    pub recordings_dir: std::path::PathBuf,
    /// The switch's `switchname` (its events' `FreeSWITCH-Switchname` and
    /// `FreeSWITCH-Hostname`): `fs-test`, as in the transcripts. Two simulators with
    /// different names play two switches of a fleet (SPEC §14).
    pub switchname: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            speed: 1.0,
            first_packet_timeout: Duration::from_secs(25),
            park_delay: Duration::from_millis(20),
            linger_notice: LingerNotice::AfterHangupComplete,
            max_pending_connects: 256,
            recordings_dir: recording::default_dir(),
            switchname: "fs-test".into(),
        }
    }
}

/// State shared by every call and inbound session of one simulator.
#[derive(Debug)]
pub(crate) struct Shared {
    pub sw: SwitchInfo,
    pub bus: EventBus,
    pub registry: Registry,
    pub config: SimConfig,
    pub started: std::time::Instant,
    /// Permits for calls connected but not yet served (see `max_pending_connects`).
    pub connect_slots: Arc<tokio::sync::Semaphore>,
    originate: Mutex<Option<(SocketAddr, CallScript)>>,
    /// What `originate … '&socket(…)'` reaches: its `callees` by number, and the
    /// channel once the socket controls it (playback lengths…).
    dial_out: Mutex<Option<CallScript>>,
    /// Per-destination targets of `originate` (a dialplan of extensions); the default
    /// target above serves every other destination.
    extensions: Mutex<HashMap<String, (SocketAddr, CallScript)>>,
    /// Handles of calls placed by `originate`, by caller UUID, until a test takes them.
    originated: Mutex<HashMap<String, CallHandle>>,
    /// API commands run (`api`/`bgapi`, inbound or on a socket), by command name.
    api_seen: Mutex<HashMap<String, u64>>,
}

/// How many handles of originated calls are kept for [`Sim::take_originated`]; beyond
/// this the oldest are dropped, so a long-running demo does not grow without bound.
const MAX_ORIGINATED: usize = 4096;

impl Shared {
    /// Counts one API command (`line` is `cmd args…`).
    pub fn count_api(&self, line: &str) {
        let cmd = api::split(line).0.to_string();
        *self
            .api_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(cmd)
            .or_default() += 1;
    }

    pub fn originate_target(&self) -> Option<(SocketAddr, CallScript)> {
        self.originate
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Where an `originate` to `destination` goes: its extension, else the default.
    pub fn originate_target_for(&self, destination: &str) -> Option<(SocketAddr, CallScript)> {
        let ext = self
            .extensions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(destination)
            .cloned();
        ext.or_else(|| self.originate_target())
    }

    /// The script of `originate … '&socket(…)'` channels, if any was set.
    pub fn dial_out_script(&self) -> Option<CallScript> {
        self.dial_out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn keep_originated(&self, handle: CallHandle) {
        let mut map = self.originated.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ORIGINATED {
            map.clear();
        }
        map.insert(handle.caller_uuid.clone(), handle);
    }

    /// Registers and starts one call.
    pub fn spawn_call(
        self: &Arc<Self>,
        script: CallScript,
        target: SocketAddr,
        caller_uuid: String,
        originate: Option<oneshot::Sender<String>>,
    ) -> CallHandle {
        let uuid = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = mpsc::unbounded_channel();
        let (report_tx, report_rx) = oneshot::channel();
        self.registry.register(&uuid, &caller_uuid, tx.clone());
        tokio::spawn(call::run(call::CallSetup {
            shared: self.clone(),
            script,
            target,
            uuid: uuid.clone(),
            caller_uuid: caller_uuid.clone(),
            rx,
            tx: tx.clone(),
            report: report_tx,
            originate,
            dial_out: None,
        }));
        CallHandle {
            uuid,
            caller_uuid,
            tx,
            report: report_rx,
        }
    }

    /// Starts the channel of an `originate … '&socket(<target> async full)'`: it rings
    /// `dial_out`'s callee under `uuid` (the origination UUID) and connects to `target`
    /// only once answered. The handle's `uuid` and `caller_uuid` are both `uuid`.
    pub(crate) fn spawn_dialled(
        self: &Arc<Self>,
        script: CallScript,
        target: SocketAddr,
        uuid: String,
        dial_out: call::DialOut,
    ) -> CallHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let (report_tx, report_rx) = oneshot::channel();
        self.registry.register_dialled(&uuid, tx.clone());
        tokio::spawn(call::run(call::CallSetup {
            shared: self.clone(),
            script,
            target,
            uuid: uuid.clone(),
            caller_uuid: uuid.clone(),
            rx,
            tx: tx.clone(),
            report: report_tx,
            originate: None,
            dial_out: Some(dial_out),
        }));
        CallHandle {
            uuid: uuid.clone(),
            caller_uuid: uuid,
            tx,
            report: report_rx,
        }
    }
}

/// A simulated switch. Cheap to clone; clones share channels and the clock.
#[derive(Clone, Debug)]
pub struct Sim {
    shared: Arc<Shared>,
}

impl Default for Sim {
    fn default() -> Self {
        Self::new(SimConfig::default())
    }
}

impl Sim {
    pub fn new(config: SimConfig) -> Self {
        let clock = SimClock::new(config.speed);
        Sim {
            shared: Arc::new(Shared {
                sw: SwitchInfo::named(clock, &config.switchname),
                bus: EventBus::new(),
                registry: Registry::default(),
                config: config.clone(),
                started: std::time::Instant::now(),
                connect_slots: Arc::new(tokio::sync::Semaphore::new(
                    config.max_pending_connects.max(1),
                )),
                originate: Mutex::new(None),
                dial_out: Mutex::new(None),
                extensions: Mutex::new(HashMap::new()),
                originated: Mutex::new(HashMap::new()),
                api_seen: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A simulator whose clock runs `speed` times faster than real time.
    pub fn with_speed(speed: f64) -> Self {
        Self::new(SimConfig {
            speed,
            ..SimConfig::default()
        })
    }

    /// How many `cmd` API commands this switch has run (`api` or `bgapi`, from an
    /// inbound connection or a call's socket): which switch of several was asked.
    pub fn api_commands(&self, cmd: &str) -> u64 {
        self.shared
            .api_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(cmd)
            .copied()
            .unwrap_or(0)
    }

    pub fn clock(&self) -> &SimClock {
        &self.shared.sw.clock
    }

    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// Starts a call: the dialplan hands the scripted channel to `socket <target> async
    /// full`. Must be called inside a tokio runtime. The handle knows both UUIDs at once.
    pub fn place_call(&self, script: CallScript, target: SocketAddr) -> CallHandle {
        self.shared
            .spawn_call(script, target, uuid::Uuid::new_v4().to_string(), None)
    }

    /// Where `originate` (inbound `api`/`bgapi`) sends its calls, and what they look like
    /// (destination, caller id and `originate_timeout` come from the originate string).
    pub fn set_originate_target(&self, target: SocketAddr, template: CallScript) {
        *self
            .shared
            .originate
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((target, template));
    }

    /// What `originate {…}<dial string> '&socket(<addr> async full)'` reaches (an
    /// outbound call handed to a socket, transcripts o and p): the callee is scripted by
    /// the number of the dial string with [`CallScript::callee`] (answers after a while,
    /// refuses, rings forever), and the rest of the script describes the channel once
    /// the socket at `<addr>` controls it. Unknown numbers are refused with
    /// NO_ROUTE_DESTINATION, as when nothing is set.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use voxbridge_sim::{CallScript, Callee, Sim};
    /// # let sim = Sim::default();
    /// sim.set_originate_callees(
    ///     CallScript::answered()
    ///         .callee("7002", Callee::Answers { after: Duration::ZERO, hangs_up_after: None })
    ///         .callee("7003", Callee::Refuses(486))
    ///         .callee("7004", Callee::RingsForever),
    /// );
    /// ```
    pub fn set_originate_callees(&self, script: CallScript) {
        *self
            .shared
            .dial_out
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(script);
    }

    /// Like [`Sim::set_originate_target`] for one destination only, so one simulator
    /// can carry both extensions of the shipped dialplan (7000 answered by the dialplan,
    /// 7001 handed over ringing) to the same server.
    pub fn set_originate_extension(
        &self,
        destination: &str,
        target: SocketAddr,
        template: CallScript,
    ) {
        self.shared
            .extensions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(destination.to_string(), (target, template));
    }

    /// Serves the inbound ESL port on `addr` (use port 0 for any free port).
    pub async fn listen_inbound(
        &self,
        addr: SocketAddr,
        password: &str,
    ) -> std::io::Result<InboundServer> {
        inbound::listen(self.shared.clone(), addr, password).await
    }

    /// The handle of a call placed by `originate`, by its caller UUID (the
    /// `origination_uuid`, or the UUID in the `+OK <uuid>` reply), to await its report.
    pub fn take_originated(&self, caller_uuid: &str) -> Option<CallHandle> {
        self.shared
            .originated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(caller_uuid)
    }

    /// Socket-controlled channels alive now.
    pub fn live_channels(&self) -> usize {
        self.shared.registry.live()
    }
}
