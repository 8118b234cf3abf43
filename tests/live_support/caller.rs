//! The callers: SIP calls looped back into the switch, placed over inbound ESL, and what
//! each calling leg (the "A-leg") saw — exactly as the recording client of transcripts e
//! and f did, except that one session (the [`Switchboard`]) carries every caller of a run:
//!
//! ```text
//! event plain BACKGROUND_JOB CHANNEL_HANGUP_COMPLETE
//! filter Event-Name BACKGROUND_JOB
//! filter Unique-ID <A>            (one per call, added before its originate)
//! bgapi originate {origination_uuid=<A>,origination_caller_id_number=<tag>,
//!     origination_caller_id_name=voxbridge-live,originate_timeout=<s>}sofia/<profile>/<ext>@<ip:port> &park()
//! ```
//!
//! The originate result (`+OK <A>` / `-ERR <CAUSE>`) comes as the BACKGROUND_JOB body (the
//! session matches it by its Job-UUID); the A-leg's CHANNEL_HANGUP_COMPLETE carries the
//! SIP status it received, the Q.850 reason of a BYE, who hung up, and the answer time.
//! The two arrive in either order (f1: hangup first; f4: job first). "Answered" is judged
//! by the answer time, never by `+OK`, which early media alone produces (reference §9).
//!
//! Why one session: a session per call means dozens of event listeners on the switch at
//! once (each one sees every event before its filters drop it), and the real switch was
//! seen to leave some of 34 simultaneous `connect`s unanswered for 10 s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use voxbridge::esl::counters::EslCounters;
use voxbridge::esl::event::Event;
use voxbridge::esl::inbound::{InboundOptions, InboundSession, SocketEvent};

/// How to reach the switch and how to dial its SIP side.
#[derive(Clone, Debug)]
pub struct SwitchTarget {
    /// Inbound ESL `host:port`.
    pub esl: String,
    pub password: String,
    /// The sofia profile that sends the INVITE (`external` in the transcripts).
    pub profile: String,
    /// Where the INVITE goes: the profile that runs the shipped dialplan (`ip:port`).
    pub sip_target: String,
}

impl SwitchTarget {
    pub fn options(&self) -> InboundOptions {
        InboundOptions {
            addr: self.esl.clone(),
            password: self.password.clone(),
            connect_timeout: Duration::from_secs(10),
            reply_timeout: Duration::from_secs(20),
            ..InboundOptions::default()
        }
    }
}

/// `originate …` of one looped-back SIP call from `tag` to `ext`, its A-leg `a_uuid`.
pub fn originate_command(
    target: &SwitchTarget,
    a_uuid: &str,
    tag: &str,
    ext: &str,
    timeout_s: u64,
    app: &str,
) -> String {
    format!(
        "originate {{origination_uuid={a_uuid},origination_caller_id_number={tag},\
         origination_caller_id_name=voxbridge-live,originate_timeout={timeout_s}}}\
         sofia/{profile}/{ext}@{sip} {app}",
        profile = target.profile,
        sip = target.sip_target,
    )
}

/// The A-leg's CHANNEL_HANGUP_COMPLETE and when it reached us.
#[derive(Clone, Debug)]
pub struct LegEnd {
    pub event: Event,
    pub seen_at: Instant,
}

type Waiting = Arc<Mutex<HashMap<String, watch::Sender<Option<LegEnd>>>>>;

/// One inbound ESL session that places every call of a run and hands each caller its
/// A-leg's CHANNEL_HANGUP_COMPLETE.
pub struct Switchboard {
    session: InboundSession,
    pub target: SwitchTarget,
    waiting: Waiting,
    /// Why the event stream ended, once it has.
    stream_end: watch::Receiver<Option<String>>,
}

impl Switchboard {
    pub async fn connect(target: &SwitchTarget) -> Result<Switchboard, String> {
        let mut options = target.options();
        options.events = vec!["CHANNEL_HANGUP_COMPLETE".into()];
        options.filters = vec![("Event-Name".into(), "BACKGROUND_JOB".into())];
        options.event_capacity = 4096;
        let (session, mut events) =
            InboundSession::connect(&options, Arc::new(EslCounters::default()))
                .await
                .map_err(|e| format!("inbound ESL {}: {e}", target.esl))?;
        let waiting: Waiting = Arc::default();
        let demux = waiting.clone();
        let (end_tx, stream_end) = watch::channel(None);
        tokio::spawn(async move {
            while let Some(item) = events.recv().await {
                match item {
                    SocketEvent::Event(ev) if ev.is("CHANNEL_HANGUP_COMPLETE") => {
                        let Some(uuid) = ev.unique_id() else {
                            continue;
                        };
                        let tx = demux.lock().unwrap_or_else(|p| p.into_inner()).remove(uuid);
                        if let Some(tx) = tx {
                            let _ = tx.send(Some(LegEnd {
                                event: ev,
                                seen_at: Instant::now(),
                            }));
                        }
                    }
                    SocketEvent::Closed(reason) => {
                        let _ = end_tx.send(Some(format!("inbound ESL closed: {reason}")));
                        break;
                    }
                    _ => {}
                }
            }
        });
        Ok(Switchboard {
            session,
            target: target.clone(),
            waiting,
            stream_end,
        })
    }

    /// A caller for A-leg `a_uuid`: its leg's events are let through (before the call
    /// exists, so none can be missed).
    pub async fn caller(self: &Arc<Self>, a_uuid: &str) -> Result<Caller, String> {
        let (tx, ended) = watch::channel(None);
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(a_uuid.to_string(), tx);
        self.session
            .filter("Unique-ID", a_uuid)
            .await
            .map_err(|e| format!("filter Unique-ID {a_uuid}: {e}"))?;
        let (_, originate) = watch::channel(None);
        Ok(Caller {
            board: self.clone(),
            a_uuid: a_uuid.to_string(),
            originate,
            ended,
        })
    }

    /// `api <cmd>` on the switch.
    pub async fn api(&self, cmd: &str) -> Result<String, String> {
        self.session
            .api(cmd)
            .await
            .map(|r| r.body)
            .map_err(|e| format!("api {cmd}: {e}"))
    }

    pub async fn close(&self) {
        let _ = self.session.exit().await;
    }
}

/// One placed call, seen from the calling side.
pub struct Caller {
    board: Arc<Switchboard>,
    pub a_uuid: String,
    originate: watch::Receiver<Option<Result<String, String>>>,
    ended: watch::Receiver<Option<LegEnd>>,
}

impl Caller {
    /// `api <cmd>` on the switch.
    pub async fn api(&self, cmd: &str) -> Result<String, String> {
        self.board.api(cmd).await
    }

    /// Starts `bgapi originate …`; the result is awaited with [`Caller::originate_result`].
    pub fn originate(&mut self, tag: &str, ext: &str, timeout_s: u64) -> String {
        self.originate_running(tag, ext, timeout_s, "&park()")
    }

    /// [`Caller::originate`] with the caller's leg running `app` once answered:
    /// `&park()` sends no audio (nothing to record: a `record` of it ends with
    /// `record_ms=0`), `&playback(silence_stream://-1)` sends silence for as long as
    /// the call lasts.
    pub fn originate_running(&mut self, tag: &str, ext: &str, timeout_s: u64, app: &str) -> String {
        let cmd = originate_command(&self.board.target, &self.a_uuid, tag, ext, timeout_s, app);
        let (tx, rx) = watch::channel(None);
        self.originate = rx;
        let board = self.board.clone();
        let line = cmd.clone();
        tokio::spawn(async move {
            let result = match board.session.bgapi(&line).await {
                Ok(ev) => Ok(ev.body().unwrap_or("").trim().to_string()),
                Err(e) => Err(format!("bgapi {line}: {e}")),
            };
            let _ = tx.send(Some(result));
        });
        cmd
    }

    /// The originate result (BACKGROUND_JOB body, trimmed), waiting up to `within`.
    pub async fn originate_result(&self, within: Duration) -> Result<String, String> {
        let mut rx = self.originate.clone();
        let got = tokio::time::timeout(within, async {
            rx.wait_for(|v| v.is_some()).await.map(|v| v.clone())
        })
        .await;
        match got {
            Ok(Ok(v)) => v.unwrap_or_else(|| Err("no originate result".into())),
            Ok(Err(_)) => Err("the originate task ended without a result".into()),
            Err(_) => Err(format!(
                "no originate result (BACKGROUND_JOB) within {within:?}"
            )),
        }
    }

    /// The A-leg's CHANNEL_HANGUP_COMPLETE, waiting up to `within`.
    pub async fn leg_end(&self, within: Duration) -> Result<LegEnd, String> {
        let mut rx = self.ended.clone();
        let got = tokio::time::timeout(within, async {
            rx.wait_for(|v| v.is_some()).await.map(|v| v.clone())
        })
        .await;
        match got {
            Ok(Ok(v)) => v.ok_or_else(|| "no hangup event".to_string()),
            _ => {
                let why = self.board.stream_end.borrow().clone().unwrap_or_default();
                Err(format!(
                    "the caller's leg {} did not end (no CHANNEL_HANGUP_COMPLETE) within {within:?} {why}",
                    self.a_uuid
                ))
            }
        }
    }

    /// The caller hangs up: `api uuid_kill <A-leg>` (transcript c).
    pub async fn hang_up(&self) -> Result<(), String> {
        let reply = self.api(&format!("uuid_kill {}", self.a_uuid)).await?;
        if reply.starts_with("+OK") {
            Ok(())
        } else {
            Err(format!("uuid_kill {}: {}", self.a_uuid, reply.trim()))
        }
    }

    /// Best effort: make sure nothing of this call stays up on the switch.
    pub async fn cleanup(&self) {
        if self.ended.borrow().is_none() {
            let _ = self.api(&format!("uuid_kill {}", self.a_uuid)).await;
        }
        self.board
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.a_uuid);
    }
}
