//! The switch's inbound ESL port (`mod_event_socket`, default 8021): `auth/request`,
//! `auth`, `api`, `bgapi` with BACKGROUND_JOB, `event` subscriptions with filters,
//! `sendmsg <uuid>`, `exit` (`reference/freeswitch-esl.md` §3, transcript e). It acts on
//! the same simulated channels as the outbound side.

use super::api;
use super::call::{event_command, filter};
use super::command::CommandReader;
use super::event::Subscriptions;
use super::report::ChanMsg;
use super::wire::{self, SimEvent};
use super::Shared;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

/// A running inbound listener; dropping it stops accepting (open sessions end when
/// their peers close).
#[derive(Debug)]
pub struct InboundServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl InboundServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for InboundServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) async fn listen(
    shared: Arc<Shared>,
    addr: SocketAddr,
    password: &str,
) -> std::io::Result<InboundServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let password = password.to_string();
    let task = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(Session::new(shared.clone(), password.clone()).run(stream));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sim: inbound accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
    Ok(InboundServer { addr, task })
}

struct Session {
    shared: Arc<Shared>,
    password: String,
    authed: bool,
    subs: Subscriptions,
    events: Option<broadcast::Receiver<Arc<SimEvent>>>,
    out: Vec<u8>,
    close: bool,
}

impl Session {
    fn new(shared: Arc<Shared>, password: String) -> Self {
        Session {
            shared,
            password,
            authed: false,
            subs: Subscriptions::default(),
            events: None,
            out: wire::auth_request(),
            close: false,
        }
    }

    async fn run(mut self, stream: TcpStream) {
        let (mut rd, mut wr) = stream.into_split();
        let mut buf = BytesMut::with_capacity(4096);
        let mut reader = CommandReader::default();
        let first_deadline = tokio::time::Instant::now() + self.shared.config.first_packet_timeout;
        let mut got_first = false;
        loop {
            if !self.out.is_empty() {
                if wr.write_all(&self.out).await.is_err() {
                    break;
                }
                self.out.clear();
            }
            if self.close {
                break;
            }
            tokio::select! {
                r = rd.read_buf(&mut buf) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(_) => loop {
                        match reader.next(&mut buf) {
                            Ok(Some(cmd)) => {
                                got_first = true;
                                self.on_command(cmd).await;
                                if self.close { break; }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                tracing::warn!(error = %e, "sim: inbound: closing on a bad packet");
                                self.close = true;
                                break;
                            }
                        }
                    },
                },
                ev = recv_event(&mut self.events) => match ev {
                    Ok(ev) => {
                        if self.subs.wants(&ev) {
                            self.out.extend(wire::event_frame(&ev, self.subs.format));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.out.extend(wire::disconnect_notice(None, "killed listener because of lost events\n"));
                        self.close = true;
                    }
                    Err(broadcast::error::RecvError::Closed) => self.events = None,
                },
                _ = tokio::time::sleep_until(first_deadline), if !got_first => {
                    self.close = true;
                }
            }
        }
        let _ = wr.shutdown().await;
    }

    async fn on_command(&mut self, cmd: super::command::Command) {
        let reply = |t: &str| wire::command_reply(t);
        if cmd.is("exit") || cmd.is("...") {
            self.out.extend(reply("+OK bye"));
            self.out
                .extend(wire::disconnect_notice(None, wire::GOODBYE));
            self.close = true;
            return;
        }
        if !self.authed {
            if cmd.is("auth ") {
                let given = cmd.line.get(5..).unwrap_or("");
                if given == self.password {
                    self.authed = true;
                    self.out.extend(reply("+OK accepted"));
                } else {
                    self.out.extend(reply("-ERR invalid"));
                    self.out
                        .extend(wire::disconnect_notice(None, wire::GOODBYE));
                    self.close = true;
                }
            } else {
                self.out.extend(reply("-ERR command not found"));
            }
            return;
        }
        if cmd.is("api ") {
            self.shared.count_api(cmd.args());
            let out = api::run(&self.shared, cmd.args()).await;
            self.out.extend(wire::api_response(&out));
        } else if cmd.is("bgapi ") {
            let job = cmd
                .header("Job-UUID")
                .map(str::to_string)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            self.out.extend(wire::bgapi_reply(&job));
            let shared = self.shared.clone();
            let line = cmd.args().to_string();
            shared.count_api(&line);
            tokio::spawn(async move {
                if let Some(out) = api::run_background(&shared, &line, &job).await {
                    let ev = api::background_job(&shared, &job, None, &line, &out);
                    shared.bus.publish(Arc::new(ev));
                }
            });
        } else if cmd.is("event") {
            let text = event_command(&mut self.subs, cmd.args());
            if self.subs.any() && self.events.is_none() {
                self.events = Some(self.shared.bus.subscribe());
            }
            self.out.extend(reply(&text));
        } else if cmd.is("nixevent") {
            self.subs.remove_names(cmd.args().split_whitespace());
            self.out.extend(reply("+OK events nixed"));
        } else if cmd.is("noevents") {
            if self.subs.any() {
                self.subs.clear_names();
                self.events = None;
                self.out.extend(reply("+OK no longer listening for events"));
            } else {
                self.out.extend(reply("-ERR not listening for events"));
            }
        } else if cmd.is("filter") {
            let text = filter(&mut self.subs, cmd.args());
            self.out.extend(reply(&text));
        } else if cmd.is("sendmsg") {
            let target = match cmd.args() {
                "" => cmd.header("session-id").unwrap_or("").trim().to_string(),
                a => a.to_string(),
            };
            let text = self.sendmsg(&target, cmd.clone()).await;
            self.out.extend(reply(&text));
        } else if cmd.is("linger") || cmd.is("nolinger") {
            self.out.extend(reply("-ERR not controlling a session"));
        } else if cmd.is("nolog") {
            self.out.extend(reply("+OK no longer logging"));
        } else if cmd.is("log") {
            self.out.extend(reply("+OK log level debug [7]"));
        } else {
            self.out.extend(reply("-ERR command not found"));
        }
    }

    async fn sendmsg(&self, target: &str, cmd: super::command::Command) -> String {
        let invalid = format!("-ERR invalid session id [{target}]");
        let Some(entry) = self.shared.registry.get(target) else {
            return invalid;
        };
        let (tx, rx) = oneshot::channel();
        if entry.tx.send(ChanMsg::Sendmsg { cmd, reply: tx }).is_err() {
            return invalid;
        }
        match tokio::time::timeout(Duration::from_secs(5), rx).await {
            Ok(Ok(text)) => text,
            _ => invalid,
        }
    }
}

async fn recv_event(
    rx: &mut Option<broadcast::Receiver<Arc<SimEvent>>>,
) -> Result<Arc<SimEvent>, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
