//! `api` / `bgapi` commands, shared by the outbound socket (`full` mode) and the inbound
//! side. Channel commands are routed to the task that owns the channel; the replies are
//! the switch's texts (`reference/freeswitch-esl.md` §3, §5): `+OK\n`,
//! `-ERR No such channel!\n`, `true`/`false` without newline, `-ERR <cmd> Command not
//! found!\n`.

use super::report::ChanMsg;
use super::script::CallScript;
use super::wire::SimEvent;
use super::Shared;
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
    "uuid_kill",
    "uuid_break",
    "uuid_exists",
    "uuid_send_dtmf",
    "uuid_getvar",
    "uuid_setvar",
    "sched_hangup",
];

pub fn is_channel_command(cmd: &str) -> bool {
    CHANNEL_COMMANDS.contains(&cmd)
}

pub fn usage(cmd: &str) -> String {
    let syntax = match cmd {
        "uuid_kill" => "<uuid> [cause]",
        "uuid_break" => "<uuid> [all]",
        "uuid_exists" => "<uuid>",
        "uuid_send_dtmf" => "<uuid> <dtmf_data>",
        "uuid_getvar" => "<uuid> <var>",
        "uuid_setvar" => "<uuid> <var> [value]",
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
    let (cmd, args) = split(line);
    if is_channel_command(cmd) {
        return match target_uuid(cmd, args) {
            Some(uuid) => route(shared, uuid, line).await,
            None => usage(cmd),
        };
    }
    match cmd {
        "sched_del" => {
            let Some(target) = args.split_whitespace().next() else {
                return usage(cmd);
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
        "originate" => originate(shared, args).await,
        "" => "-ERR no reply\n".into(),
        _ => format!("-ERR {cmd} Command not found!\n"),
    }
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

/// Why an originate's application cannot be simulated, if it cannot: `&socket(…)`.
///
/// The switch runs the socket app on the originated (outbound-direction) channel itself,
/// only once the callee answered, under the `origination_uuid` (transcript o); a callee
/// that never answers gives `-ERR NO_ANSWER` and no connection at all (p). The simulator
/// models calls handed over by a dialplan (a caller leg and a controlled leg), not that,
/// so it says so rather than fake it. An unquoted `&socket(addr async full)` gets its own
/// message: originate splits it on spaces and the switch connects in static
/// single-channel mode, where `linger` and `event` are refused (transcript o2).
fn unsupported_app(app: &str) -> Option<String> {
    let args = app.strip_prefix("&socket(")?;
    let Some(args) = args.strip_suffix(')') else {
        return Some(format!(
            "-ERR not supported by the simulator: socket app {app:?} is not `async full` \
             (an unquoted &socket(addr async full) loses its arguments: quote the app)\n"
        ));
    };
    let words: Vec<&str> = args.split_whitespace().skip(1).collect();
    if !(words.contains(&"async") && words.contains(&"full")) {
        return Some(format!(
            "-ERR not supported by the simulator: socket app {app:?} is not `async full`\n"
        ));
    }
    Some(
        "-ERR not supported by the simulator yet: originate to '&socket(…)' (an outbound \
         call handed to a socket; transcripts o and p show the switch's behaviour)\n"
            .to_string(),
    )
}

/// `originate`: places a simulated call to the configured outbound target and returns
/// when the caller's leg is answered or gets early media (`+OK <uuid>`), or fails
/// (`-ERR <CAUSE>`), like the switch's originate.
async fn originate(shared: &Arc<Shared>, args: &str) -> String {
    let Some(req) = parse_originate(args) else {
        return usage("originate");
    };
    if let Some(err) = unsupported_app(&req.app) {
        return err;
    }
    let Some((target, template)) = shared.originate_target_for(&req.destination) else {
        // No endpoint to reach: the switch answers this for an unknown endpoint module.
        return "-ERR CHAN_NOT_IMPLEMENTED\n".into();
    };
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
    let caller_uuid = req
        .var("origination_uuid")
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let (tx, rx) = oneshot::channel();
    let handle = shared.spawn_call(script, target, caller_uuid, Some(tx));
    shared.keep_originated(handle);
    rx.await
        .unwrap_or_else(|_| "-ERR NORMAL_CLEARING\n".to_string())
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
        assert!(unsupported_app(&quoted.app)
            .unwrap()
            .starts_with("-ERR not supported by the simulator yet: originate to '&socket"));
        // Transcript o2: unquoted, `async` and `full` become the dialplan and context.
        let bare =
            parse_originate("{origination_uuid=u}sofia/external/7008@127.0.0.1:5060 &socket(127.0.0.1:8084 async full)")
                .unwrap();
        assert_eq!(bare.app, "&socket(127.0.0.1:8084");
        assert_eq!(bare.rest, ["async", "full)"]);
        assert!(unsupported_app(&bare.app)
            .unwrap()
            .contains("quote the app"));
        assert!(unsupported_app("&socket(127.0.0.1:8084)").is_some());
        assert_eq!(unsupported_app("&park()"), None);
        assert_eq!(target_uuid("sched_hangup", "+5 u1 USER_BUSY"), Some("u1"));
        assert_eq!(split("uuid_kill  u1 "), ("uuid_kill", "u1"));
    }
}
