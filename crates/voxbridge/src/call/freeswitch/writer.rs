//! The ordered writer: the one task per call that sends commands to the switch, in the
//! order the call's loop queued them, so the loop itself never awaits a reply (a loop
//! that waited while the bounded event stream was full would deadlock the connection).
//!
//! It also holds the first command that changes the channel until the call's live row
//! is committed (issue 10 point 3); a row that cannot be written refuses the call
//! (`sendmsg hangup`, 503) and nothing more but `exit` goes to the channel.

use super::WorkerReport;
use crate::call::engine::HangupCommand;
use crate::cause::HangupCause;
use crate::esl::command::{Command, Execute};
use crate::esl::outbound::OutboundConnection;
use crate::store::keeper::{RecordKeeper, RefusalHeld};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::oneshot;
use tracing::Instrument;

/// A command for the switch, queued by the call's loop and sent by the writer in order.
pub(super) enum SwitchCommand {
    /// `sendmsg execute` of an application, event-locked, tagged with `event_uuid` (its
    /// CHANNEL_EXECUTE_COMPLETE carries it back as `Application-UUID`).
    Execute {
        app: String,
        arg: String,
        event_uuid: String,
    },
    /// `api uuid_answer <uuid>`: answers the channel at once, in the switch's socket
    /// thread, where `sendmsg execute answer` waits for the parked channel's next 20 ms
    /// tick (issue 16: setup 33 → ~13 ms, httapi's). No application runs, so no
    /// CHANNEL_EXECUTE / EXECUTE_COMPLETE pair is built; the `+OK` completes the engine's
    /// Answer (`event_uuid` is its id in the call's table of apps), a `-ERR` refuses it.
    /// Sent only when nothing is queued on the channel (the engine runs one operation
    /// at a time), so running it ahead of the channel's message queue reorders nothing.
    Answer { event_uuid: String },
    /// `sendmsg` `call-command: hangup` with `hangup-cause: <cause>`: the engine's own
    /// hangup (a Hangup/Reject element, the end of the document, a document error). Not
    /// the `hangup` application (issue 16): no CHANNEL_EXECUTE / EXECUTE_COMPLETE pair is
    /// built for it and no `application` row update in the switch's core DB, and the
    /// caller gets the same cause (transcript z4: 486 / 603 / 480 before an answer, a BYE
    /// with the cause after). The switch queues it like an app, behind an event-locked
    /// one, and drops whatever is queued after it (z4). Its `+OK` means queued: it
    /// completes the engine's Hangup (`event_uuid` is its id in the call's table of
    /// apps; the CHANNEL_HANGUP that follows carries the cause); a `-ERR` refuses it,
    /// and the engine falls back to a kill.
    Hangup {
        cause: HangupCause,
        event_uuid: String,
    },
    /// `api uuid_kill <uuid> <cause>`: ends the channel even under an event-locked app.
    Kill { cause: HangupCause },
    /// `sendmsg` `call-command: hangup` after a refused kill: queued behind the running
    /// application; its result goes back as a [`HangupCommand::HangupAfterOp`].
    HangupMessage { cause: HangupCause },
    /// `api uuid_kill <leg> NORMAL_CLEARING` of a Dial's callee (REST `DELETE` of the
    /// B-leg); `replies` hear whether the switch took it.
    KillLeg {
        uuid: String,
        replies: Vec<tokio::sync::oneshot::Sender<crate::call::live::HangupReply>>,
    },
    /// `api uuid_break <uuid>`: stops the running application (a Gather's barge-in);
    /// the commands queued behind it stay queued.
    Break,
    /// `api uuid_record <uuid> stop <path>`: ends a background recording now, even under
    /// an event-locked application (`stop_record_session` would wait behind it). The
    /// switch then reports its RECORD_STOP.
    StopSessionRecording { path: String },
    /// `api uuid_record <uuid> start <path>`: a background recording of the whole call,
    /// started beside the running application (a Dial's bridge).
    StartSessionRecording { path: String },
    /// `event plain RECORD_START RECORD_STOP`: `myevents` does not include RECORD_*
    /// (reference §2.4), and only a call that records needs them, so they are subscribed
    /// before its first recording rather than at every handshake (SPEC §9).
    SubscribeRecordEvents,
    /// `divert_events on`: events the channel queues for itself (a `bind_digit_action`
    /// match) come to the socket.
    DivertEvents,
    /// Leave the socket, by closing it once everything before is written (to the
    /// switch the same as `exit`, without its round trip: see `Session::close`); the
    /// writer stops after it.
    Exit,
}

/// What the writer needs besides its queue.
pub(super) struct Writer {
    pub conn: OutboundConnection,
    pub uuid: String,
    /// Where refusals and hangup-command results go (the call's loop).
    pub reports: super::boxed_queue::Sender<WorkerReport>,
    /// Resolves once the live row is committed (`true`) or could not be (`false`).
    pub live_row: Option<oneshot::Receiver<bool>>,
    /// Set here when the call was refused because its live row could not be written.
    pub refused_for_store: Arc<RefusedForStore>,
    pub keeper: RecordKeeper,
}

/// Whether the call was refused because its live row could not be written, and the
/// keeper's hold on that refusal ([`RefusalHeld`]) until the call's record is handed over
/// ([`RefusedForStore::release`], or this dropped with the call's task and its writer).
#[derive(Default)]
pub struct RefusedForStore {
    refused: AtomicBool,
    held: std::sync::Mutex<Option<RefusalHeld>>,
}

impl RefusedForStore {
    fn refuse(&self, held: RefusalHeld) {
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(held);
        self.refused.store(true, Ordering::Relaxed);
    }

    pub fn is_refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    /// The refused call's record is handed over: admission no longer counts it.
    pub fn release(&self) {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

impl Writer {
    /// Spawns the writer on the current span; it ends after `Exit` or when the queue
    /// closes.
    pub fn spawn(
        self,
        mut queue: super::boxed_queue::Receiver<SwitchCommand>,
    ) -> tokio::task::JoinHandle<()> {
        let Writer {
            conn,
            uuid,
            reports,
            mut live_row,
            refused_for_store: refused,
            keeper,
        } = self;
        tokio::spawn(
            async move {
                while let Some(cmd) = queue.recv().await {
                    // Point 3: the live row is durable before the first command that
                    // changes the channel (leaving the socket changes nothing).
                    let changes_channel = !matches!(cmd, SwitchCommand::Exit);
                    if let (Some(durable), true) = (live_row.take(), changes_channel) {
                        if !durable.await.unwrap_or(false) {
                            refused.refuse(keeper.live_row_failed());
                            refuse_for_store(&conn).await;
                        }
                    }
                    if refused.is_refused() && changes_channel {
                        // Refused: nothing more goes to the channel; its hangup events
                        // end the call.
                        continue;
                    }
                    match cmd {
                        SwitchCommand::Execute {
                            app,
                            arg,
                            event_uuid,
                        } => {
                            let arg = (!arg.is_empty()).then_some(arg);
                            let exec = Execute::locked(&app, arg.as_deref(), &event_uuid);
                            if let Err(e) = conn.send_execute_with(exec).await {
                                tracing::warn!(app = %app, error = %e, "the switch did not take an application");
                                let _ = reports.send(WorkerReport::ExecuteRefused {
                                    event_uuid,
                                    reason: e.to_string(),
                                });
                            }
                        }
                        SwitchCommand::Answer { event_uuid } => {
                            let report = match conn.api(&format!("uuid_answer {uuid}")).await {
                                Ok(r) if r.body.starts_with("+OK") => {
                                    WorkerReport::Completed { event_uuid }
                                }
                                Ok(r) => {
                                    tracing::warn!(reply = %r.body.trim(), "uuid_answer refused");
                                    WorkerReport::ExecuteRefused {
                                        event_uuid,
                                        reason: r.body.trim().to_string(),
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "uuid_answer failed");
                                    WorkerReport::ExecuteRefused {
                                        event_uuid,
                                        reason: e.to_string(),
                                    }
                                }
                            };
                            let _ = reports.send(report);
                        }
                        SwitchCommand::Hangup { cause, event_uuid } => {
                            let report = match conn.hangup(cause.name()).await {
                                Ok(()) => WorkerReport::Completed { event_uuid },
                                Err(e) => {
                                    tracing::warn!(error = %e, cause = %cause, "the hangup command was refused");
                                    WorkerReport::ExecuteRefused {
                                        event_uuid,
                                        reason: e.to_string(),
                                    }
                                }
                            };
                            let _ = reports.send(report);
                        }
                        SwitchCommand::Kill { cause } => {
                            let cmd = format!("uuid_kill {uuid} {}", cause.name());
                            let result = match conn.api(&cmd).await {
                                Ok(r) if r.body.starts_with("+OK") => Ok(()),
                                // -ERR No such channel: the caller hung up at the same
                                // moment; the engine knows the switch's events tell the rest.
                                Ok(r) => {
                                    tracing::info!(reply = %r.body.trim(), "uuid_kill not applied");
                                    Err(r.body.trim().to_string())
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "uuid_kill failed");
                                    Err(e.to_string())
                                }
                            };
                            let _ = reports.send(WorkerReport::HangupCommandDone {
                                command: HangupCommand::Kill,
                                result,
                            });
                        }
                        SwitchCommand::KillLeg { uuid: leg, replies } => {
                            use crate::call::live::HangupReply;
                            let cmd = format!("uuid_kill {leg} NORMAL_CLEARING");
                            let answer = match conn.api(&cmd).await {
                                Ok(r) if r.body.starts_with("+OK") => HangupReply::Ending,
                                // Gone at the same moment: it is ending anyway.
                                Ok(r) if r.body.contains("No such channel") => HangupReply::Ending,
                                Ok(r) => HangupReply::Refused(r.body.trim().to_string()),
                                Err(e) => HangupReply::Refused(e.to_string()),
                            };
                            tracing::info!(b_leg = %leg, answer = ?answer, "REST hangup of the Dial's callee");
                            for reply in replies {
                                let _ = reply.send(answer.clone());
                            }
                        }
                        SwitchCommand::HangupMessage { cause } => {
                            let result = conn.hangup(cause.name()).await.map_err(|e| {
                                tracing::warn!(error = %e, "the hangup message was refused");
                                e.to_string()
                            });
                            let _ = reports.send(WorkerReport::HangupCommandDone {
                                command: HangupCommand::HangupAfterOp,
                                result,
                            });
                        }
                        SwitchCommand::Break => {
                            // The interrupted application completes as usual; a refusal
                            // (the channel just went) needs nothing more.
                            match conn.api(&format!("uuid_break {uuid}")).await {
                                Ok(r) if r.body.starts_with("+OK") => {}
                                Ok(r) => {
                                    tracing::info!(reply = %r.body.trim(), "uuid_break not applied")
                                }
                                Err(e) => tracing::warn!(error = %e, "uuid_break failed"),
                            }
                        }
                        SwitchCommand::StartSessionRecording { path } => {
                            match conn.api(&format!("uuid_record {uuid} start {path}")).await {
                                Ok(r) if r.body.starts_with("+OK") => {}
                                Ok(r) => {
                                    tracing::warn!(reply = %r.body.trim(), %path, "uuid_record start refused: nothing is recorded")
                                }
                                Err(e) => tracing::warn!(error = %e, "uuid_record start failed"),
                            }
                        }
                        SwitchCommand::StopSessionRecording { path } => {
                            // A refusal (already stopped, the channel just went) needs
                            // nothing more: a recording that ends reports itself.
                            match conn.api(&format!("uuid_record {uuid} stop {path}")).await {
                                Ok(r) if r.body.starts_with("+OK") => {}
                                Ok(r) => {
                                    tracing::info!(reply = %r.body.trim(), %path, "uuid_record stop not applied")
                                }
                                Err(e) => tracing::warn!(error = %e, "uuid_record stop failed"),
                            }
                        }
                        SwitchCommand::SubscribeRecordEvents => {
                            let cmd = crate::esl::command::Command::event(
                                crate::esl::event::EventFormat::Plain,
                                &["RECORD_START", "RECORD_STOP"],
                            );
                            let result = match cmd {
                                Ok(cmd) => conn.command(&cmd).await.map(|_| ()),
                                Err(e) => {
                                    tracing::error!(error = %e, "cannot build the RECORD_* subscription");
                                    Ok(())
                                }
                            };
                            if let Err(e) = result {
                                tracing::warn!(error = %e, "RECORD_* not subscribed: background recordings complete only at the call's end");
                            }
                        }
                        SwitchCommand::DivertEvents => {
                            match conn.command(&Command::divert_events(true)).await {
                                Ok(r) if !r.is_err() => {}
                                Ok(r) => tracing::warn!(reply = %r.text(), "divert_events refused: the callee's digit matches will not be seen"),
                                Err(e) => tracing::warn!(error = %e, "divert_events failed"),
                            }
                        }
                        SwitchCommand::Exit => {
                            conn.close().await;
                            break;
                        }
                    }
                }
            }
            .in_current_span(),
        )
    }
}

/// Refuses a call whose live row could not be written: `sendmsg hangup` (works without
/// `full`; nothing is running on the channel yet) with NORMAL_TEMPORARY_FAILURE, SIP 503.
async fn refuse_for_store(conn: &OutboundConnection) {
    tracing::error!("refusing the call (503): its live row could not be written");
    let cause = HangupCause::NORMAL_TEMPORARY_FAILURE;
    if let Err(e) = conn.send_hangup(cause.name()).await {
        tracing::warn!(error = %e, "could not hang the refused call up");
    }
}
