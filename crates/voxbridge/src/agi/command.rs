//! Client → switch commands. Each is one line; the argument of `EXEC` (and every value)
//! is sent in double quotes with `\` and `"` escaped by a backslash, which is how
//! Asterisk's AGI parser (`parse_args`) reads it back verbatim (the capture
//! `answer-speak-hangup.txt` shows `\"` and `\\` arriving as `"` and `\`). `EXEC` does not
//! expand `${…}` (same capture), so document text cannot reach the dialplan's functions.
//!
//! A CR, LF or NUL in any part is refused ([`CommandError`]): it would end the line and
//! let the rest be read as a second command. How an application splits its own argument
//! (commas) is the caller's business — see [`app_arg`].

/// One command line, without its `\n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgiCommand {
    line: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("a line break or NUL in an AGI command argument")]
    LineBreak,
    #[error("not a valid name for {what}: {name:?}")]
    BadName { what: &'static str, name: String },
}

impl AgiCommand {
    /// `ANSWER`.
    pub fn answer() -> Self {
        Self {
            line: "ANSWER".into(),
        }
    }

    /// `EXEC <app> "<data>"` (`EXEC <app>` without data).
    pub fn exec(app: &str, data: &str) -> Result<Self, CommandError> {
        check_name("an application", app)?;
        let line = if data.is_empty() {
            format!("EXEC {app}")
        } else {
            format!("EXEC {app} {}", quote(data)?)
        };
        Ok(Self { line })
    }

    /// `GET VARIABLE <name>`.
    pub fn get_variable(name: &str) -> Result<Self, CommandError> {
        check_name("a variable", name)?;
        Ok(Self {
            line: format!("GET VARIABLE {name}"),
        })
    }

    /// `GET FULL VARIABLE "<expression>"`: the expression is expanded by the switch
    /// (`${CHANNEL(hangupsource)}`) — never pass it text from a document.
    pub fn get_full_variable(expression: &str) -> Result<Self, CommandError> {
        Ok(Self {
            line: format!("GET FULL VARIABLE {}", quote(expression)?),
        })
    }

    /// `SET VARIABLE <name> "<value>"` (`name` may be a function: `TIMEOUT(absolute)`).
    pub fn set_variable(name: &str, value: &str) -> Result<Self, CommandError> {
        check_name("a variable", name)?;
        Ok(Self {
            line: format!("SET VARIABLE {name} {}", quote(value)?),
        })
    }

    /// `STREAM FILE "<name>" "<escape digits>"`: plays `name` (no extension) and stops at
    /// the first of `escape` pressed, replying `200 result=<its ASCII code> endpos=…`
    /// (`result=0` when played to its end; capture `gather-stream-file.txt`).
    pub fn stream_file(name: &str, escape: &str) -> Result<Self, CommandError> {
        Ok(Self {
            line: format!("STREAM FILE {} {}", quote(name)?, quote(escape)?),
        })
    }

    /// `RECORD FILE "<name>" <format> "<escape digits>" <timeout ms> [BEEP] [s=<silence s>]`:
    /// records the caller into `<name>.<format>` until a key of `escape`, `timeout_ms`
    /// (`-1`: none), `silence_secs` of silence (`None`: no detection) or the hangup. The
    /// reply is `200 result=<ASCII code> (dtmf) endpos=<samples>`, `result=0 (timeout)` for
    /// both silence and the limit, or `result=-1 (hangup)` (capture `record-file.txt`).
    pub fn record_file(
        name: &str,
        format: &str,
        escape: &str,
        timeout_ms: i64,
        beep: bool,
        silence_secs: Option<u64>,
    ) -> Result<Self, CommandError> {
        check_name("a recording format", format)?;
        let mut line = format!(
            "RECORD FILE {} {format} {} {timeout_ms}",
            quote(name)?,
            quote(escape)?
        );
        if beep {
            line.push_str(" BEEP");
        }
        if let Some(s) = silence_secs {
            line.push_str(&format!(" s={s}"));
        }
        Ok(Self { line })
    }

    /// `WAIT FOR DIGIT <ms>`: `200 result=<ASCII code>` at the first digit, `result=0`
    /// after `ms` without one (capture `gather-flite-barge-in.txt`).
    pub fn wait_for_digit(timeout: std::time::Duration) -> Self {
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128);
        Self {
            line: format!("WAIT FOR DIGIT {ms}"),
        }
    }

    /// A command this module has no builder for (`NOOP`, `HANGUP`, `CHANNEL STATUS`),
    /// written as given: it must not contain a line break.
    pub fn verbatim(line: &str) -> Result<Self, CommandError> {
        if line.contains(['\r', '\n', '\0']) {
            return Err(CommandError::LineBreak);
        }
        Ok(Self {
            line: line.to_string(),
        })
    }

    /// The line as sent, without its `\n`.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// The bytes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.line.len() + 1);
        b.extend_from_slice(self.line.as_bytes());
        b.push(b'\n');
        b
    }
}

/// Escapes `text` as one argument of a dialplan application (`AST_STANDARD_APP_ARGS`):
/// `\`, `"` and `,` get a backslash, so the application receives `text` verbatim as one
/// argument instead of splitting it at its commas or eating its quotes.
pub fn app_arg(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if matches!(c, '\\' | '"' | ',') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn quote(value: &str) -> Result<String, CommandError> {
    if value.contains(['\r', '\n', '\0']) {
        return Err(CommandError::LineBreak);
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '\\' | '"') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(out)
}

/// Application and variable names: letters, digits, `_`, and a function's `(…)` argument
/// without spaces or quotes.
fn check_name(what: &'static str, name: &str) -> Result<(), CommandError> {
    let ok = !name.is_empty()
        && name.len() <= 80
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '(' | ')' | '-' | '.' | '/'));
    if ok {
        Ok(())
    } else {
        Err(CommandError::BadName {
            what,
            name: name.chars().take(80).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_quotes_its_data_as_the_capture_did() {
        let text = app_arg(r#"Hello, world. A "quote" and ${CHANNEL(name)}"#);
        let c = AgiCommand::exec("Flite", &text).unwrap();
        // The comma as in tests/fixtures/agi/answer-speak-hangup.txt (`\\,`); the quotes
        // are escaped for the application too, so Flite says them instead of eating them.
        assert_eq!(
            c.line(),
            r#"EXEC Flite "Hello\\, world. A \\\"quote\\\" and ${CHANNEL(name)}""#
        );
        assert_eq!(
            AgiCommand::exec("Progress", "").unwrap().line(),
            "EXEC Progress"
        );
        assert_eq!(AgiCommand::answer().to_bytes(), b"ANSWER\n");
    }

    #[test]
    fn nothing_can_inject_a_second_command() {
        for bad in ["a\nHANGUP", "a\rb", "a\0b"] {
            assert_eq!(AgiCommand::exec("Flite", bad), Err(CommandError::LineBreak));
            assert_eq!(
                AgiCommand::set_variable("X", bad),
                Err(CommandError::LineBreak)
            );
        }
        assert!(AgiCommand::exec("Flite x", "a").is_err());
        assert!(AgiCommand::get_variable("A B").is_err());
        assert!(AgiCommand::set_variable("TIMEOUT(absolute)", "2").is_ok());
    }
}
