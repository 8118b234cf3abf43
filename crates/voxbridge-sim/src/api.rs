//! `api` / `bgapi` commands, shared by the outbound socket (`full` mode) and the inbound
//! side. Channel commands are routed to the task that owns the channel; the replies are
//! the switch's texts (`reference/freeswitch-esl.md` §3, §5): `+OK\n`,
//! `-ERR No such channel!\n`, `true`/`false` without newline, `-ERR <cmd> Command not
//! found!\n`.

use super::call::{DialOut, OriginateResult};
use super::report::ChanMsg;
use super::script::CallScript;
use super::wire::SimEvent;
use super::Shared;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

pub const NO_SUCH_CHANNEL: &str = "-ERR No such channel!\n";

/// `(command, rest)` of an API line.
pub fn split(line: &str) -> (&str, &str) {
    let line = line.trim();
    match line.split_once(char::is_whitespace) {
        Some((c, r)) => (c, r.trim()),
        None => (line, ""),
    }
}

/// The UUID a channel command addresses, or `None` for a usage error.
pub fn target_uuid<'a>(cmd: &str, args: &'a str) -> Option<&'a str> {
    let mut words = args.split_whitespace();
    match cmd {
        "sched_hangup" => words.nth(1),
        _ => words.next(),
    }
}

const CHANNEL_COMMANDS: &[&str] = &[
    "uuid_answer",
    "uuid_kill",
    "uuid_break",
    "uuid_record",
    "uuid_exists",
    "uuid_send_dtmf",
    "uuid_getvar",
    "uuid_setvar",
    "uuid_broadcast",
    "sched_hangup",
];

pub fn is_channel_command(cmd: &str) -> bool {
    CHANNEL_COMMANDS.contains(&cmd)
}

pub fn usage(cmd: &str) -> String {
    let syntax = match cmd {
        "uuid_answer" => "<uuid>",
        "uuid_kill" => "<uuid> [cause]",
        "uuid_break" => "<uuid> [all]",
        "uuid_record" => "<uuid> [start|stop|mask|unmask] <path> [<limit>] [<recording_vars>]",
        "uuid_exists" => "<uuid>",
        "uuid_send_dtmf" => "<uuid> <dtmf_data>",
        "uuid_getvar" => "<uuid> <var>",
        "uuid_setvar" => "<uuid> <var> [value]",
        "uuid_broadcast" => "<uuid> <path> [aleg|bleg|both]",
        "sched_hangup" => "[+]<time> <uuid> [<cause>]",
        "sched_del" => "<task_id>|<group_id>",
        "originate" => "<call url> <exten>|&<application_name>(<app_args>)",
        _ => "",
    };
    format!("-USAGE: {syntax}\n")
}

/// The reply of a channel command whose channel does not exist (or is down).
pub fn missing(cmd: &str) -> String {
    match cmd {
        "uuid_exists" => "false".into(),
        _ => NO_SUCH_CHANNEL.into(),
    }
}

/// Runs an API command from a connection that does not own the target channel.
pub(crate) async fn run(shared: &Arc<Shared>, line: &str) -> String {
    run_as(shared, line, None)
        .await
        .unwrap_or_else(|| "-ERR no reply\n".into())
}

/// Runs the command of a `bgapi` whose BACKGROUND_JOB carries `job_uuid`; `None` when
/// the job publishes its BACKGROUND_JOB itself: the channel of an `originate …
/// '&socket(…)'` does, so that the result comes before a failed channel's hangup
/// events, as on the switch (transcript p).
pub(crate) async fn run_background(
    shared: &Arc<Shared>,
    line: &str,
    job_uuid: &str,
) -> Option<String> {
    run_as(shared, line, Some(job_uuid)).await
}

async fn run_as(shared: &Arc<Shared>, line: &str, job_uuid: Option<&str>) -> Option<String> {
    let (cmd, args) = split(line);
    if is_channel_command(cmd) {
        return Some(match target_uuid(cmd, args) {
            Some(uuid) => route(shared, uuid, line).await,
            None => usage(cmd),
        });
    }
    if cmd == "originate" {
        return originate(shared, args, job_uuid.map(|job| (job, line))).await;
    }
    Some(match cmd {
        "sched_del" => {
            let Some(target) = args.split_whitespace().next() else {
                return Some(usage(cmd));
            };
            let owner = match target.parse::<u64>() {
                Ok(id) => shared.registry.sched_owner(id),
                Err(_) => Some(target.to_string()),
            };
            match owner {
                Some(uuid) if shared.registry.get(&uuid).is_some() => {
                    route(shared, &uuid, line).await
                }
                _ => "+OK Deleted: 0\n".into(),
            }
        }
        "status" => status(shared),
        // mod_commands' `switchname`: the name events carry as FreeSWITCH-Switchname.
        "switchname" => shared.sw.hostname.clone(),
        "show" if args.split_whitespace().eq(["channels", "as", "json"]) => {
            show_channels_json(shared)
        }
        "" => "-ERR no reply\n".into(),
        _ => format!("-ERR {cmd} Command not found!\n"),
    })
}

/// Sends a channel command to the channel's task and waits for its reply.
pub(crate) async fn route(shared: &Arc<Shared>, uuid: &str, line: &str) -> String {
    let (cmd, _) = split(line);
    let Some(entry) = shared.registry.get(uuid) else {
        return missing(cmd);
    };
    let (tx, rx) = oneshot::channel();
    let msg = ChanMsg::Api {
        line: line.to_string(),
        leg: entry.leg,
        reply: tx,
    };
    if entry.tx.send(msg).is_err() {
        return missing(cmd);
    }
    // A channel task answers at once; the bound only guards against one that is gone.
    match tokio::time::timeout(Duration::from_secs(5), rx).await {
        Ok(Ok(reply)) => reply,
        _ => missing(cmd),
    }
}

/// The BACKGROUND_JOB event of a finished `bgapi` (`mes.c:api_exec`).
pub(crate) fn background_job(
    shared: &Shared,
    job_uuid: &str,
    owner: Option<&str>,
    line: &str,
    output: &str,
) -> SimEvent {
    let (cmd, args) = split(line);
    let mut e = shared.sw.new_event("BACKGROUND_JOB");
    e.push("Job-UUID", job_uuid);
    if let Some(owner) = owner {
        e.push("Job-Owner-UUID", owner);
    }
    e.push("Job-Command", cmd);
    e.push("Job-Command-Arg", args);
    e.body = Some(output.to_string());
    e
}

/// `show channels as json`: `{"row_count":N,"rows":[{"uuid":…},…]}` with the
/// channels up now, `rows` left out when there is none (as the switch does). Only the
/// `uuid` of each row: the other columns are the switch's and nobody reads them here.
fn show_channels_json(shared: &Shared) -> String {
    let uuids = shared.registry.uuids();
    if uuids.is_empty() {
        return "{\"row_count\":0}\n".into();
    }
    // UUIDs are hex and dashes: nothing to escape.
    let rows: Vec<String> = uuids
        .iter()
        .map(|u| format!("{{\"uuid\":\"{u}\"}}"))
        .collect();
    format!(
        "{{\"row_count\":{},\"rows\":[{}]}}\n",
        rows.len(),
        rows.join(",")
    )
}

fn status(shared: &Shared) -> String {
    let up = shared.started.elapsed();
    let secs = up.as_secs();
    let live = shared.registry.live();
    let total = shared
        .registry
        .sessions_since_start
        .load(std::sync::atomic::Ordering::Relaxed);
    format!(
        "UP 0 years, {} days, {} hours, {} minutes, {} seconds, {} milliseconds, {} microseconds\n\
         FreeSWITCH (Version 1.10.12-release  64bit) is ready\n\
         {total} session(s) since startup\n\
         {live} session(s) - peak {live}, last 5min {live} \n\
         0 session(s) per Sec out of max 30, peak 0, last 5min 0 \n\
         1000 session(s) max\n\
         min idle cpu 0.00/100.00\n\
         Current Stack Size/Max 240K/8192K\n",
        secs / 86_400,
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        up.subsec_millis(),
        up.subsec_micros() % 1000,
    )
}

/// What an `originate` asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct OriginateRequest {
    pub vars: Vec<(String, String)>,
    pub endpoint: String,
    pub destination: String,
    /// The application argument, outer single quotes removed.
    pub app: String,
    /// Arguments after the application (dialplan, context, caller id, timeout).
    pub rest: Vec<String>,
}

impl OriginateRequest {
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses `{a=b,c=d}sofia/profile/ext@host[:port] &app()`.
pub fn parse_originate(args: &str) -> Option<OriginateRequest> {
    let args = args.trim();
    let mut req = OriginateRequest::default();
    let rest = if let Some(inner) = args.strip_prefix('{') {
        let end = inner.find('}')?;
        for kv in inner[..end].split(',') {
            if let Some((k, v)) = kv.split_once('=') {
                let v = v.trim().trim_matches('\'').trim_matches('"');
                req.vars.push((k.trim().to_string(), v.to_string()));
            }
        }
        &inner[end + 1..]
    } else {
        args
    };
    let mut words = split_quoted(rest).into_iter();
    let endpoint = words.next().unwrap_or_default();
    let app = words.next().unwrap_or_default();
    req.rest = words.collect();
    if endpoint.is_empty() {
        return None;
    }
    let last = endpoint.rsplit('/').next().unwrap_or(&endpoint);
    req.destination = last.split('@').next().unwrap_or(last).to_string();
    req.endpoint = endpoint;
    req.app = app;
    Some(req)
}

/// Splits `originate` arguments as the switch does (`switch_separate_string`): on spaces,
/// except inside single quotes, which are removed. So `&socket(127.0.0.1:8084 async full)`
/// unquoted is three words, and the app gets only `127.0.0.1:8084` (transcript o2).
fn split_quoted(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut started = false;
    for c in s.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// The `socket` app of an originate: where it connects and in which mode.
#[derive(Debug, PartialEq, Eq)]
struct SocketApp {
    addr: SocketAddr,
    /// `async` (else static mode, transcript o2).
    is_async: bool,
    full: bool,
}

/// The originate's `&socket(<addr> [async] [full])` app, or why the simulator cannot
/// run it; `None` for any other app.
///
/// The switch runs the socket app on the originated (outbound-direction) channel itself,
/// only once the callee answered, under the `origination_uuid` (transcript o; module
/// `call::dial_out`). Unquoted, `&socket(addr async full)` is split on spaces: the app
/// gets `addr` alone (no closing parenthesis needed) and connects in static
/// single-channel mode (transcript o2).
fn socket_app(app: &str) -> Option<Result<SocketApp, String>> {
    let args = app.strip_prefix("&socket(")?;
    let args = args.strip_suffix(')').unwrap_or(args);
    let mut words = args.split_whitespace();
    let addr = words.next().unwrap_or("");
    let flags: Vec<&str> = words.collect();
    // `host[:port]`, 8084 by default (reference §2.1).
    let parsed = addr
        .parse::<SocketAddr>()
        .or_else(|_| format!("{addr}:8084").parse::<SocketAddr>());
    Some(
        parsed
            .map(|addr| SocketApp {
                addr,
                is_async: flags.contains(&"async"),
                full: flags.contains(&"full"),
            })
            .map_err(|_| {
                format!(
                    "-ERR not supported by the simulator: socket address {addr:?} is not ip[:port]\n"
                )
            }),
    )
}

/// `originate`: places a simulated call to the configured outbound target and returns
/// when the caller's leg is answered or gets early media (`+OK <uuid>`), or fails
/// (`-ERR <CAUSE>`), like the switch's originate. `job`: the `(Job-UUID, command line)`
/// of a `bgapi`, for a channel that publishes its own BACKGROUND_JOB (then `None`).
async fn originate(shared: &Arc<Shared>, args: &str, job: Option<(&str, &str)>) -> Option<String> {
    let Some(req) = parse_originate(args) else {
        return Some(usage("originate"));
    };
    if let Some(app) = socket_app(&req.app) {
        return match app {
            Ok(socket) => originate_to_socket(shared, &req, socket, job).await,
            Err(e) => Some(e),
        };
    }
    let Some((target, template)) = shared.originate_target_for(&req.destination) else {
        // No endpoint to reach: the switch answers this for an unknown endpoint module.
        return Some("-ERR CHAN_NOT_IMPLEMENTED\n".into());
    };
    let script = caller_script(template, &req);
    let caller_uuid = req
        .var("origination_uuid")
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let (tx, rx) = oneshot::channel();
    let handle = shared.spawn_call(script, target, caller_uuid, Some(tx));
    shared.keep_originated(handle);
    Some(
        rx.await
            .unwrap_or_else(|_| "-ERR NORMAL_CLEARING\n".to_string()),
    )
}

/// The template with what the originate string sets: destination, caller id, timeout.
fn caller_script(template: CallScript, req: &OriginateRequest) -> CallScript {
    let mut script: CallScript = template.destination(&req.destination);
    let number = req
        .var("origination_caller_id_number")
        .unwrap_or(&script.caller_number)
        .to_string();
    let name = req
        .var("origination_caller_id_name")
        .unwrap_or(&script.caller_name)
        .to_string();
    script = script.caller(&number, &name);
    if let Some(t) = req
        .var("originate_timeout")
        .and_then(|t| t.parse::<u64>().ok())
    {
        script = script.originate_timeout(Duration::from_secs(t));
    }
    script
}

/// `originate … '&socket(<target> async full)'`: the dialled channel rings its callee
/// and, once answered, is handed to the socket at `target` (module `call::dial_out`).
async fn originate_to_socket(
    shared: &Arc<Shared>,
    req: &OriginateRequest,
    socket: SocketApp,
    job: Option<(&str, &str)>,
) -> Option<String> {
    let template = shared
        .dial_out_script()
        .unwrap_or_else(CallScript::answered);
    let mut script = caller_script(template, req);
    // The `{…}` variables become the channel's own (voxbridge's answer URL, account…).
    for (k, v) in &req.vars {
        script = script.var(k, v);
    }
    // The channel starts down and ringing; its callee decides the rest.
    script.answered = false;
    script.sync = !socket.is_async;
    script.full = socket.full;
    let target = socket.addr;
    let uuid = req
        .var("origination_uuid")
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let timeout = req
        .var("originate_timeout")
        .and_then(|t| t.parse::<i64>().ok());
    let mut dial = DialOut::new(&req.endpoint, &script, &req.destination, timeout);
    let (tx, rx) = oneshot::channel();
    dial.result = match job {
        Some((job_uuid, line)) => OriginateResult::Job {
            job_uuid: job_uuid.to_string(),
            line: line.to_string(),
        },
        None => OriginateResult::Api(tx),
    };
    let handle = shared.spawn_dialled(script, target, uuid, dial);
    shared.keep_originated(handle);
    match job {
        Some(_) => None,
        None => Some(
            rx.await
                .unwrap_or_else(|_| "-ERR NORMAL_CLEARING\n".to_string()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_transcripts_originate() {
        let r = parse_originate("{origination_uuid=dff5557d-f328-4964-8746-f45acb436358,origination_caller_id_number=15551230000,origination_caller_id_name=ESL-Test}sofia/external/7001@127.0.0.1:5060 &park()").unwrap();
        assert_eq!(r.destination, "7001");
        assert_eq!(
            r.var("origination_uuid"),
            Some("dff5557d-f328-4964-8746-f45acb436358")
        );
        assert_eq!(r.app, "&park()");
        assert_eq!(
            parse_originate("loopback/7000 &park()")
                .unwrap()
                .destination,
            "7000"
        );
        assert!(parse_originate("{a=b").is_none());
        let quoted = parse_originate(
            "{origination_uuid=u}sofia/external/7008@127.0.0.1:5060 '&socket(127.0.0.1:8084 async full)'",
        )
        .unwrap();
        assert_eq!(quoted.app, "&socket(127.0.0.1:8084 async full)");
        assert!(quoted.rest.is_empty());
        let app = |addr: &str, is_async, full| {
            Some(Ok(SocketApp {
                addr: addr.parse().unwrap(),
                is_async,
                full,
            }))
        };
        assert_eq!(socket_app(&quoted.app), app("127.0.0.1:8084", true, true));
        assert_eq!(
            socket_app("&socket(127.0.0.1 async full)"),
            app("127.0.0.1:8084", true, true)
        );
        assert!(socket_app("&socket(nowhere async full)").unwrap().is_err());
        // Transcript o2: unquoted, `async` and `full` become the dialplan and context,
        // and the app connects in static mode.
        let bare =
            parse_originate("{origination_uuid=u}sofia/external/7008@127.0.0.1:5060 &socket(127.0.0.1:8084 async full)")
                .unwrap();
        assert_eq!(bare.app, "&socket(127.0.0.1:8084");
        assert_eq!(bare.rest, ["async", "full)"]);
        assert_eq!(socket_app(&bare.app), app("127.0.0.1:8084", false, false));
        assert_eq!(socket_app("&park()"), None);
        assert_eq!(target_uuid("sched_hangup", "+5 u1 USER_BUSY"), Some("u1"));
        assert_eq!(split("uuid_kill  u1 "), ("uuid_kill", "u1"));
    }
}
