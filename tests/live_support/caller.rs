//! The caller: an inbound ESL session that places a SIP call looped back into the switch
//! and reads what the calling leg (the "A-leg") saw, exactly as the recording client of
//! transcripts e and f did:
//!
//! ```text
//! event plain BACKGROUND_JOB CHANNEL_HANGUP_COMPLETE
//! filter Event-Name BACKGROUND_JOB
//! filter Unique-ID <A>
//! bgapi originate {origination_uuid=<A>,origination_caller_id_number=<tag>,
//!     origination_caller_id_name=voxbridge-live,originate_timeout=<s>}sofia/<profile>/<ext>@<ip:port> &park()
//! ```
//!
//! The originate result (`+OK <A>` / `-ERR <CAUSE>`) comes as the BACKGROUND_JOB body; the
//! A-leg's CHANNEL_HANGUP_COMPLETE carries the SIP status it received, the Q.850 reason of
//! a BYE, who hung up, and the answer time. The two arrive in either order (f1: hangup
//! first; f4: job first). "Answered" is judged by the answer time, never by `+OK`, which
//! early media alone produces (reference §9).

use std::sync::Arc;
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

/// The A-leg's CHANNEL_HANGUP_COMPLETE and when it reached us.
#[derive(Clone, Debug)]
pub struct LegEnd {
    pub event: Event,
    pub seen_at: Instant,
}

/// One placed call, seen from the calling side.
pub struct Caller {
    session: InboundSession,
    pub a_uuid: String,
    originate: watch::Receiver<Option<Result<String, String>>>,
    ended: watch::Receiver<Option<LegEnd>>,
    /// Why the event stream ended early, if it did.
    stream_end: watch::Receiver<Option<String>>,
}

impl Caller {
    /// Connects, subscribes and filters on the A-leg (before the call exists, so no
    /// event of it can be missed).
    pub async fn connect(target: &SwitchTarget, a_uuid: &str) -> Result<Caller, String> {
        let mut options = target.options();
        options.events = vec!["CHANNEL_HANGUP_COMPLETE".into()];
        options.filters = vec![
            ("Event-Name".into(), "BACKGROUND_JOB".into()),
            ("Unique-ID".into(), a_uuid.into()),
        ];
        let (session, mut events) =
            InboundSession::connect(&options, Arc::new(EslCounters::default()))
                .await
                .map_err(|e| format!("inbound ESL {}: {e}", target.esl))?;
        let (ended_tx, ended) = watch::channel(None);
        let (end_tx, stream_end) = watch::channel(None);
        let want = a_uuid.to_string();
        tokio::spawn(async move {
            while let Some(item) = events.recv().await {
                match item {
                    SocketEvent::Event(ev)
                        if ev.is("CHANNEL_HANGUP_COMPLETE")
                            && ev.unique_id() == Some(want.as_str()) =>
                    {
                        let _ = ended_tx.send(Some(LegEnd {
                            event: ev,
                            seen_at: Instant::now(),
                        }));
                    }
                    SocketEvent::Closed(reason) => {
                        let _ = end_tx.send(Some(format!("inbound ESL closed: {reason}")));
                        break;
                    }
                    _ => {}
                }
            }
        });
        let (_, originate) = watch::channel(None);
        Ok(Caller {
            session,
            a_uuid: a_uuid.to_string(),
            originate,
            ended,
            stream_end,
        })
    }

    /// `api <cmd>` on the caller's session.
    pub async fn api(&self, cmd: &str) -> Result<String, String> {
        self.session
            .api(cmd)
            .await
            .map(|r| r.body)
            .map_err(|e| format!("api {cmd}: {e}"))
    }

    /// Starts `bgapi originate …`; the result is awaited with [`Caller::originate_result`].
    pub fn originate(
        &mut self,
        target: &SwitchTarget,
        tag: &str,
        ext: &str,
        timeout_s: u64,
    ) -> String {
        let cmd = format!(
            "originate {{origination_uuid={a},origination_caller_id_number={tag},\
             origination_caller_id_name=voxbridge-live,originate_timeout={timeout_s}}}\
             sofia/{profile}/{ext}@{sip} &park()",
            a = self.a_uuid,
            profile = target.profile,
            sip = target.sip_target,
        );
        let (tx, rx) = watch::channel(None);
        self.originate = rx;
        let session = self.session.clone();
        let line = cmd.clone();
        tokio::spawn(async move {
            let result = match session.bgapi(&line).await {
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
                let why = self.stream_end.borrow().clone().unwrap_or_default();
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
        let _ = self.session.exit().await;
    }
}
