//! One line from the switch after the environment, typed.
//!
//! - `200 result=<n>` and `200 result=<n> (<data>)` (and `endpos=…` extras kept as text):
//!   a command's reply;
//! - `510 Invalid or unknown command`, `511 Command Not Permitted on a dead channel or
//!   intercept routine`, `520 …`: a command's refusal (code and text);
//! - `520-Invalid command syntax.  Proper usage follows:` opens a multi-line usage text
//!   that ends with a `520 End of proper usage.` line — the connection folds it into one
//!   reply;
//! - `HANGUP`: the channel hung up (Asterisk's notice, any moment);
//! - anything else is [`Message::Unknown`]: logged and ignored by the connection, which
//!   closes only on limits, so a switch version that adds a line does not drop calls.

/// A reply to one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// `200` for a command that ran; `510`/`511`/`520` when it was refused.
    pub code: u16,
    /// The `result=` value (`None` when the reply has none, e.g. `510 …`).
    pub result: Option<i64>,
    /// What the parentheses hold (`GET VARIABLE`'s value), if any.
    pub data: Option<String>,
    /// The whole line (for logs and notes).
    pub text: String,
}

impl Reply {
    /// The command ran (`200`).
    pub fn is_ok(&self) -> bool {
        self.code == 200
    }

    /// The command ran and reported `result=-1`: for `EXEC`, the application returned
    /// -1, which Asterisk does when the channel hung up during it (or the app failed).
    pub fn is_hangup_result(&self) -> bool {
        self.is_ok() && self.result == Some(-1)
    }
}

/// A line from the switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Reply(Reply),
    /// First line of a `520-…` multi-line usage reply.
    UsageStart(String),
    /// `HANGUP`.
    Hangup,
    Unknown(String),
}

impl Message {
    pub fn parse(line: &str) -> Message {
        if line == "HANGUP" {
            return Message::Hangup;
        }
        let bytes = line.as_bytes();
        if bytes.len() >= 4 && bytes[..3].iter().all(u8::is_ascii_digit) {
            let code: u16 = line[..3].parse().unwrap_or(0);
            match bytes[3] {
                b'-' => return Message::UsageStart(line.to_string()),
                b' ' => return Message::Reply(parse_reply(code, line)),
                _ => {}
            }
        } else if bytes.len() == 3 && bytes.iter().all(u8::is_ascii_digit) {
            let code: u16 = line.parse().unwrap_or(0);
            return Message::Reply(Reply {
                code,
                result: None,
                data: None,
                text: line.to_string(),
            });
        }
        Message::Unknown(line.to_string())
    }
}

fn parse_reply(code: u16, line: &str) -> Reply {
    let rest = &line[4..];
    let (result, data) = match rest.strip_prefix("result=") {
        Some(after) => {
            let end = after.find(' ').unwrap_or(after.len());
            let result = after[..end].parse::<i64>().ok();
            let tail = after[end..].trim_start();
            let data = tail
                .strip_prefix('(')
                .and_then(|t| t.rfind(')').map(|close| t[..close].to_string()));
            (result, data)
        }
        None => (None, None),
    };
    Reply {
        code,
        result,
        data,
        text: line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(line: &str) -> Reply {
        match Message::parse(line) {
            Message::Reply(r) => r,
            other => panic!("{line:?} → {other:?}"),
        }
    }

    #[test]
    fn replies_as_the_bundle_sends_them() {
        let r = reply("200 result=-1");
        assert!(r.is_ok() && r.is_hangup_result() && r.data.is_none());
        let r = reply("200 result=1 (17)");
        assert_eq!((r.result, r.data.as_deref()), (Some(1), Some("17")));
        let r = reply("200 result=1 ()");
        assert_eq!(r.data.as_deref(), Some(""));
        let r = reply("200 result=1 (a (nested) value)");
        assert_eq!(r.data.as_deref(), Some("a (nested) value"));
        let r = reply("200 result=0 endpos=8000");
        assert_eq!((r.result, r.data), (Some(0), None));
        let r = reply("510 Invalid or unknown command");
        assert_eq!((r.code, r.result, r.is_ok()), (510, None, false));
        let r = reply("511 Command Not Permitted on a dead channel or intercept routine");
        assert_eq!(r.code, 511);
    }

    #[test]
    fn hangup_usage_and_unknown_lines() {
        assert_eq!(Message::parse("HANGUP"), Message::Hangup);
        assert!(matches!(
            Message::parse("520-Invalid command syntax.  Proper usage follows:"),
            Message::UsageStart(_)
        ));
        assert!(matches!(Message::parse("hello"), Message::Unknown(_)));
        assert!(matches!(
            Message::parse("2x0 result=1"),
            Message::Unknown(_)
        ));
        assert!(matches!(Message::parse(""), Message::Unknown(_)));
        assert_eq!(reply("200 result=abc").result, None);
    }
}
