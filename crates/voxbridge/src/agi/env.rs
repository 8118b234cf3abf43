//! The environment Asterisk sends when it connects: `agi_<name>: <value>` lines, then an
//! empty line. Limits: at most [`MAX_ENV_LINES`] lines (the bundle sends 21, plus one per
//! `agi_arg_N`); a line without `: ` is a protocol error (it is not FastAGI).

use std::collections::BTreeMap;

/// Most environment lines accepted before the empty line.
pub const MAX_ENV_LINES: usize = 256;

/// The environment of one FastAGI session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgiEnv {
    /// Every `agi_*` value by its name without the `agi_` prefix (`channel`, `uniqueid`…).
    values: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("environment line is not `agi_<name>: <value>`: {0:?}")]
    Malformed(String),
    #[error("environment longer than {MAX_ENV_LINES} lines")]
    TooLong,
}

impl AgiEnv {
    /// Adds one line; `Ok(true)` when it was the empty line that ends the environment.
    pub fn push_line(&mut self, line: &str) -> Result<bool, EnvError> {
        if line.is_empty() {
            return Ok(true);
        }
        if self.values.len() >= MAX_ENV_LINES {
            return Err(EnvError::TooLong);
        }
        let (name, value) = line
            .split_once(':')
            .filter(|(n, _)| n.starts_with("agi_") && !n.contains(' '))
            .ok_or_else(|| EnvError::Malformed(truncate(line)))?;
        let value = value.strip_prefix(' ').unwrap_or(value);
        self.values
            .insert(name["agi_".len()..].to_string(), value.to_string());
        Ok(false)
    }

    /// A value by its name without `agi_` (`get("uniqueid")`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The channel's unique id (`agi_uniqueid`, e.g. `1796449610.0`): the call's id.
    pub fn uniqueid(&self) -> Option<&str> {
        self.get("uniqueid").filter(|v| !v.is_empty())
    }

    /// The channel's name (`SIP/127.0.0.1-00000000`).
    pub fn channel(&self) -> Option<&str> {
        self.get("channel")
    }

    /// The caller's number; Asterisk writes `unknown` when there is none.
    pub fn caller_id(&self) -> &str {
        known(self.get("callerid"))
    }

    pub fn caller_name(&self) -> &str {
        known(self.get("calleridname"))
    }

    /// The called number: the extension the dialplan ran `AGI()` in (`agi_extension`),
    /// else the dialed number (`agi_dnid`).
    pub fn destination(&self) -> &str {
        match known(self.get("extension")) {
            "" => known(self.get("dnid")),
            ext => ext,
        }
    }

    /// `agi_arg_1`, `agi_arg_2`…: the arguments after the URL in `AGI(agi://…,a,b)`.
    pub fn args(&self) -> Vec<&str> {
        (1..).map_while(|n| self.get(&format!("arg_{n}"))).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

fn known(v: Option<&str>) -> &str {
    match v {
        Some("unknown") | None => "",
        Some(v) => v,
    }
}

fn truncate(line: &str) -> String {
    line.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_bundles_environment() {
        let mut env = AgiEnv::default();
        for l in [
            "agi_network: yes",
            "agi_channel: SIP/127.0.0.1-00000000",
            "agi_uniqueid: 1796449610.0",
            "agi_callerid: 15551230000",
            "agi_calleridname: AGI-Capture",
            "agi_dnid: 7001",
            "agi_rdnis: unknown",
            "agi_extension: 7001",
            "agi_accountcode: ",
            "agi_arg_1: x",
        ] {
            assert!(!env.push_line(l).unwrap());
        }
        assert!(env.push_line("").unwrap());
        assert_eq!(env.uniqueid(), Some("1796449610.0"));
        assert_eq!(env.destination(), "7001");
        assert_eq!(env.caller_id(), "15551230000");
        assert_eq!(env.get("accountcode"), Some(""));
        assert_eq!(env.get("rdnis").map(|_| known(env.get("rdnis"))), Some(""));
        assert_eq!(env.args(), vec!["x"]);
    }

    #[test]
    fn rejects_what_is_not_an_environment() {
        let mut env = AgiEnv::default();
        assert!(env.push_line("GET / HTTP/1.1").is_err());
        assert!(env.push_line("hello").is_err());
        for n in 0..MAX_ENV_LINES {
            env.push_line(&format!("agi_x{n}: 1")).unwrap();
        }
        assert_eq!(env.push_line("agi_one_more: 1"), Err(EnvError::TooLong));
    }
}
