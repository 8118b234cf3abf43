//! Client→switch commands, encoded the way `mod_event_socket` reads them
//! (`reference/freeswitch-esl.md` §1.1, §2.3–2.5, §3).
//!
//! Argument safety is the point of this module. A CR or LF inside a header line would end
//! that line (or the whole command) early and the rest would be read as a second command,
//! shifting every later reply by one. So:
//! - a command line or header value containing CR, LF or NUL is an error, never sent;
//! - an application argument that contains CR/LF, or is longer than
//!   [`MAX_HEADER_ARG`], goes as a body with `content-type: text/plain` and
//!   `content-length` instead of `execute-app-arg` (the switch uses the body as the
//!   argument when `execute-app-arg` is absent, `switch_ivr_parse_event`);
//! - NUL is refused everywhere: the switch is C and would cut the text there.

use std::fmt;

/// Longest application argument sent as a header; longer ones go as a body.
pub const MAX_HEADER_ARG: usize = 2048;

/// Why a command could not be built. Nothing is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("{what} contains a line break (CR/LF), which would split the command")]
    LineBreak { what: &'static str },
    #[error("{what} contains a NUL byte")]
    Nul { what: &'static str },
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} {value:?} contains whitespace")]
    Whitespace { what: &'static str, value: String },
}

/// One command ready to be written.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    line: String,
    headers: Vec<(&'static str, String)>,
    body: Option<String>,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `auth` carries the password: never print it.
        let line = if self.line.starts_with("auth ") {
            "auth <redacted>"
        } else {
            self.line.as_str()
        };
        f.debug_struct("Command")
            .field("line", &line)
            .field("headers", &self.headers)
            .field("body", &self.body)
            .finish()
    }
}

fn check_line(what: &'static str, v: &str) -> Result<(), CommandError> {
    if v.contains(['\r', '\n']) {
        return Err(CommandError::LineBreak { what });
    }
    if v.contains('\0') {
        return Err(CommandError::Nul { what });
    }
    Ok(())
}

fn check_word(what: &'static str, v: &str) -> Result<(), CommandError> {
    check_line(what, v)?;
    if v.is_empty() {
        return Err(CommandError::Empty { what });
    }
    if v.contains(char::is_whitespace) {
        return Err(CommandError::Whitespace {
            what,
            value: v.to_string(),
        });
    }
    Ok(())
}

/// How `linger` is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linger {
    /// `linger`: keep the socket until we `exit` or close (Linger-Time -1).
    Forever,
    /// `linger N`: the switch closes N seconds after the hangup.
    Seconds(u32),
}

impl Command {
    fn bare(line: impl Into<String>) -> Self {
        Self {
            line: line.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// The first line (the command itself).
    pub fn line(&self) -> &str {
        &self.line
    }

    /// `true` for `api …`, whose answer is an `api/response`, not a `command/reply`.
    pub fn is_api(&self) -> bool {
        self.line.starts_with("api ")
    }

    /// `connect`: the first command on an outbound socket; the reply is the channel data.
    pub fn connect() -> Self {
        Self::bare("connect")
    }

    /// `linger` / `linger N`.
    pub fn linger(linger: Linger) -> Self {
        match linger {
            Linger::Forever => Self::bare("linger"),
            Linger::Seconds(n) => Self::bare(format!("linger {n}")),
        }
    }

    pub fn nolinger() -> Self {
        Self::bare("nolinger")
    }

    /// `myevents` (plain) or `myevents json`.
    pub fn myevents(format: crate::esl::event::EventFormat) -> Self {
        match format {
            crate::esl::event::EventFormat::Plain => Self::bare("myevents"),
            f => Self::bare(format!("myevents {}", f.as_str())),
        }
    }

    /// `event <fmt> NAME…` (names such as `CHANNEL_ANSWER`, `ALL`, `CUSTOM sub::class`).
    pub fn event<S: AsRef<str>>(
        format: crate::esl::event::EventFormat,
        names: &[S],
    ) -> Result<Self, CommandError> {
        if names.is_empty() {
            return Err(CommandError::Empty { what: "event list" });
        }
        let mut line = format!("event {}", format.as_str());
        for n in names {
            check_word("event name", n.as_ref())?;
            line.push(' ');
            line.push_str(n.as_ref());
        }
        Ok(Self::bare(line))
    }

    /// `nixevent NAME…`.
    pub fn nixevent<S: AsRef<str>>(names: &[S]) -> Result<Self, CommandError> {
        if names.is_empty() {
            return Err(CommandError::Empty { what: "event list" });
        }
        let mut line = String::from("nixevent");
        for n in names {
            check_word("event name", n.as_ref())?;
            line.push(' ');
            line.push_str(n.as_ref());
        }
        Ok(Self::bare(line))
    }

    /// `filter <header> <value>`: only events whose header equals the value pass.
    pub fn filter(header: &str, value: &str) -> Result<Self, CommandError> {
        check_word("filter header", header)?;
        check_line("filter value", value)?;
        if value.is_empty() {
            return Err(CommandError::Empty {
                what: "filter value",
            });
        }
        Ok(Self::bare(format!("filter {header} {value}")))
    }

    /// `filter delete <header> [value]`.
    pub fn filter_delete(header: &str, value: Option<&str>) -> Result<Self, CommandError> {
        check_word("filter header", header)?;
        match value {
            Some(v) => {
                check_line("filter value", v)?;
                Ok(Self::bare(format!("filter delete {header} {v}")))
            }
            None => Ok(Self::bare(format!("filter delete {header}"))),
        }
    }

    /// `api <command> [args]`: runs synchronously, answered by an `api/response`.
    pub fn api(command: &str) -> Result<Self, CommandError> {
        check_line("api command", command)?;
        if command.trim().is_empty() {
            return Err(CommandError::Empty {
                what: "api command",
            });
        }
        Ok(Self::bare(format!("api {command}")))
    }

    /// `bgapi <command>` with our own `Job-UUID`, so the BACKGROUND_JOB can be matched.
    pub fn bgapi(command: &str, job_uuid: &str) -> Result<Self, CommandError> {
        check_line("bgapi command", command)?;
        if command.trim().is_empty() {
            return Err(CommandError::Empty {
                what: "bgapi command",
            });
        }
        check_word("Job-UUID", job_uuid)?;
        let mut c = Self::bare(format!("bgapi {command}"));
        c.headers.push(("Job-UUID", job_uuid.to_string()));
        Ok(c)
    }

    /// `sendmsg` with `call-command: execute`. See [`Execute`].
    pub fn execute(e: &Execute) -> Result<Self, CommandError> {
        check_word("application name", &e.app)?;
        let mut c = Self::bare(match &e.target {
            Some(uuid) => {
                check_word("sendmsg uuid", uuid)?;
                format!("sendmsg {uuid}")
            }
            None => "sendmsg".to_string(),
        });
        c.headers.push(("call-command", "execute".into()));
        c.headers.push(("execute-app-name", e.app.clone()));
        let arg = e.arg.as_deref().filter(|a| !a.is_empty());
        if let Some(a) = arg {
            if a.contains('\0') {
                return Err(CommandError::Nul {
                    what: "application argument",
                });
            }
        }
        let as_body = arg.filter(|a| a.contains(['\r', '\n']) || a.len() > MAX_HEADER_ARG);
        if let (Some(a), None) = (arg, as_body) {
            c.headers.push(("execute-app-arg", a.to_string()));
        }
        if let Some(loops) = e.loops {
            c.headers.push(("loops", loops.to_string()));
        }
        if e.event_lock {
            c.headers.push(("event-lock", "true".into()));
        }
        if let Some(id) = &e.event_uuid {
            check_word("Event-UUID", id)?;
            c.headers.push(("Event-UUID", id.clone()));
        }
        if let Some(a) = as_body {
            c.headers.push(("content-type", "text/plain".into()));
            c.headers.push(("content-length", a.len().to_string()));
            c.body = Some(a.to_string());
        }
        Ok(c)
    }

    /// `sendmsg` with `call-command: hangup` and a `hangup-cause` (a cause name such as
    /// `CALL_REJECTED`; the switch turns an unknown name into NORMAL_CLEARING).
    pub fn hangup(cause: &str) -> Result<Self, CommandError> {
        check_word("hangup cause", cause)?;
        let mut c = Self::bare("sendmsg");
        c.headers.push(("call-command", "hangup".into()));
        c.headers.push(("hangup-cause", cause.to_string()));
        Ok(c)
    }

    /// `exit`: the switch answers `+OK bye`, sends a disconnect notice and closes.
    pub fn exit() -> Self {
        Self::bare("exit")
    }

    /// `auth <password>` (inbound).
    pub fn auth(password: &str) -> Result<Self, CommandError> {
        check_line("password", password)?;
        Ok(Self::bare(format!("auth {password}")))
    }

    /// `resume`: the dialplan continues after the socket closes.
    pub fn resume() -> Self {
        Self::bare("resume")
    }

    /// `getvar <name>`: the raw value as Reply-Text (`-ERR command not found` if unset).
    pub fn getvar(name: &str) -> Result<Self, CommandError> {
        check_word("variable name", name)?;
        Ok(Self::bare(format!("getvar {name}")))
    }

    /// `divert_events on|off`: whether events the session queues for itself (its
    /// input-callback events, e.g. a `bind_digit_action` match) go to this socket.
    pub fn divert_events(on: bool) -> Self {
        Self::bare(if on {
            "divert_events on"
        } else {
            "divert_events off"
        })
    }

    /// `noevents`.
    pub fn noevents() -> Self {
        Self::bare("noevents")
    }

    /// Any other single-line command, checked for line breaks.
    pub fn raw(line: &str) -> Result<Self, CommandError> {
        check_line("command", line)?;
        if line.trim().is_empty() {
            return Err(CommandError::Empty { what: "command" });
        }
        Ok(Self::bare(line))
    }

    /// The bytes on the wire: the line, `Name: value` headers, a blank line, the body.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.line.as_bytes());
        out.push(b'\n');
        for (n, v) in &self.headers {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        if let Some(b) = &self.body {
            out.extend_from_slice(b.as_bytes());
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.line.len() + 2 + 48 * self.headers.len());
        self.encode_into(&mut out);
        out
    }
}

/// A `sendmsg` `call-command: execute`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Execute {
    pub app: String,
    pub arg: Option<String>,
    /// `event-lock: true`: queued apps run strictly one after another. Without it, an app
    /// sent while another runs executes *inside* it and cuts it short.
    pub event_lock: bool,
    /// Comes back as `Application-UUID` on CHANNEL_EXECUTE / _COMPLETE.
    pub event_uuid: Option<String>,
    /// `loops: N` (-1 = forever). Beware: every repetition fires its own
    /// EXECUTE_COMPLETE with the same `Application-UUID`, and repetition stops after any
    /// run shorter than 0.5 s (reference §9) — voxbridge loops itself instead.
    pub loops: Option<i32>,
    /// `sendmsg <uuid>`: another channel than the socket's own (inbound use).
    pub target: Option<String>,
}

impl Execute {
    /// A fresh `Event-UUID` (a random UUIDv4) for an execute. Drawn from the thread's
    /// CSPRNG (seeded once from the OS) rather than `Uuid::new_v4`, which asks the kernel
    /// (`getrandom`) for every id: ~3 syscalls per call for a value that only has to be
    /// unique among the apps of one channel (issue 16).
    pub fn new_event_uuid() -> String {
        uuid::Builder::from_random_bytes(rand::random())
            .into_uuid()
            .to_string()
    }

    /// An event-locked execute with the given `Event-UUID`.
    pub fn locked(app: &str, arg: Option<&str>, event_uuid: &str) -> Self {
        Self {
            app: app.to_string(),
            arg: arg.map(String::from),
            event_lock: true,
            event_uuid: Some(event_uuid.to_string()),
            loops: None,
            target: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esl::event::EventFormat;

    fn s(c: &Command) -> String {
        String::from_utf8(c.to_bytes()).unwrap()
    }

    #[test]
    fn simple_commands() {
        assert_eq!(s(&Command::connect()), "connect\n\n");
        assert_eq!(s(&Command::linger(Linger::Forever)), "linger\n\n");
        assert_eq!(s(&Command::linger(Linger::Seconds(5))), "linger 5\n\n");
        assert_eq!(s(&Command::myevents(EventFormat::Plain)), "myevents\n\n");
        assert_eq!(
            s(&Command::myevents(EventFormat::Json)),
            "myevents json\n\n"
        );
        assert_eq!(
            s(&Command::event(EventFormat::Plain, &["BACKGROUND_JOB", "DTMF"]).unwrap()),
            "event plain BACKGROUND_JOB DTMF\n\n"
        );
        assert_eq!(
            s(&Command::bgapi("uuid_kill a1 USER_BUSY", "0d9a").unwrap()),
            "bgapi uuid_kill a1 USER_BUSY\nJob-UUID: 0d9a\n\n"
        );
        assert_eq!(
            s(&Command::hangup("USER_BUSY").unwrap()),
            "sendmsg\ncall-command: hangup\nhangup-cause: USER_BUSY\n\n"
        );
        assert!(Command::api("status").unwrap().is_api());
    }

    #[test]
    fn execute_header_order_matches_the_reference_client() {
        let e = Execute::locked(
            "playback",
            Some("tone_stream://%(500,500,440);loops=2"),
            "6357",
        );
        assert_eq!(
            s(&Command::execute(&e).unwrap()),
            "sendmsg\ncall-command: execute\nexecute-app-name: playback\nexecute-app-arg: tone_stream://%(500,500,440);loops=2\nevent-lock: true\nEvent-UUID: 6357\n\n"
        );
    }

    #[test]
    fn multi_line_or_long_args_go_as_a_body() {
        let arg = "flite|kal|Hello,\nit's 5% & done";
        let c = Command::execute(&Execute::locked("speak", Some(arg), "5e0c")).unwrap();
        assert_eq!(
            s(&c),
            format!("sendmsg\ncall-command: execute\nexecute-app-name: speak\nevent-lock: true\nEvent-UUID: 5e0c\ncontent-type: text/plain\ncontent-length: {}\n\n{arg}", arg.len())
        );
        let long = "x".repeat(MAX_HEADER_ARG + 1);
        let c = Command::execute(&Execute::locked("speak", Some(&long), "u")).unwrap();
        assert!(!s(&c).contains("execute-app-arg"));
        assert!(s(&c).ends_with(&long));
        let exact = "y".repeat(MAX_HEADER_ARG);
        let c = Command::execute(&Execute::locked("speak", Some(&exact), "u")).unwrap();
        assert!(s(&c).contains("execute-app-arg: yyy"));
    }

    #[test]
    fn line_breaks_never_reach_a_header_line() {
        assert!(matches!(
            Command::api("status\n\nexit"),
            Err(CommandError::LineBreak { .. })
        ));
        assert!(Command::bgapi("status", "a\nb").is_err());
        assert!(Command::execute(&Execute::locked("play\nback", None, "u")).is_err());
        assert!(Command::execute(&Execute::locked("playback", None, "u\r")).is_err());
        assert!(Command::execute(&Execute::locked("speak", Some("a\0b"), "u")).is_err());
        assert!(Command::hangup("USER BUSY").is_err());
        assert!(Command::filter("Unique-ID", "x\ny").is_err());
        assert!(Command::auth("Clue\nCon").is_err());
        assert!(Command::event(EventFormat::Plain, &["A\nB"]).is_err());
        assert!(Command::getvar("a b").is_err());
        assert!(Command::raw("").is_err());
    }

    #[test]
    fn debug_hides_the_password() {
        let c = Command::auth("ClueCon").unwrap();
        assert!(!format!("{c:?}").contains("ClueCon"));
        assert_eq!(s(&c), "auth ClueCon\n\n");
    }
}
