//! FastAGI test support: the transcripts of `tests/fixtures/agi/` read back, Asterisk's
//! own argument splitting (to check what a command means to the switch, not its bytes),
//! and a scripted fake Asterisk that replays a transcript's switch side over TCP.
#![allow(dead_code)]

pub mod fake;

use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One line of a transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// From Asterisk.
    S(String),
    /// From the client.
    C(String),
    /// The client closed the connection.
    Close,
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/agi")
        .join(format!("{name}.txt"))
}

pub const TRANSCRIPTS: &[&str] = &[
    "busy",
    "rejected",
    "answer-speak-hangup",
    "caller-hangup-playback",
    "rest-hangup-playback",
    "progress-wait-timeout",
    "bad-command",
    "gather-flite-barge-in",
    "gather-stream-file",
    "dial-answered",
    "dial-busy",
    "dial-no-answer",
    "dial-caller-hangs-up",
    "record-file",
    "dial-ari-while-bridged",
    "dial-confirm-key",
    "dial-confirm-unpressed",
    "dial-legs-differ",
];

/// The wire lines of a transcript (notes and outside events dropped).
pub fn read(name: &str) -> Vec<Line> {
    let text = std::fs::read_to_string(fixture(name)).expect("transcript");
    text.lines()
        .filter_map(|l| {
            if l == "C (close)" {
                Some(Line::Close)
            } else if let Some(s) = l.strip_prefix("S ") {
                Some(Line::S(s.to_string()))
            } else if l == "S" {
                Some(Line::S(String::new()))
            } else {
                l.strip_prefix("C ").map(|c| Line::C(c.to_string()))
            }
        })
        .collect()
}

/// The caller's end as the transcript's last `!` line records it (`sip_term_status=486`…).
pub fn caller_end(name: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(fixture(name)).ok()?;
    let line = text
        .lines()
        .find(|l| l.starts_with("! caller A-leg ended:"))?;
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_string))
}

/// Asterisk's `parse_args` (res_agi.c): split at spaces outside double quotes, a
/// backslash takes the next character literally, quotes are removed.
pub fn agi_argv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut escaped, mut any) = (false, false, false);
    for c in line.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
            any = true;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' | '\t' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            _ => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Plays Asterisk's side of `lines` on `stream`: writes every `S` line up to the next
/// `C`, then reads one command line and checks it means the same (same argv) as the
/// transcript's. Returns the commands it read, or what differed.
pub async fn play_switch(stream: TcpStream, lines: Vec<Line>) -> Result<Vec<String>, String> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut got = Vec::new();
    for line in lines {
        match line {
            Line::S(s) => w
                .write_all(format!("{s}\n").as_bytes())
                .await
                .map_err(|e| e.to_string())?,
            Line::C(expected) => {
                let mut buf = String::new();
                let n = r.read_line(&mut buf).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err(format!("EOF, expected {expected:?}"));
                }
                let sent = buf.trim_end_matches('\n');
                if agi_argv(sent) != agi_argv(&expected) {
                    return Err(format!("sent {sent:?}, the transcript has {expected:?}"));
                }
                got.push(sent.to_string());
            }
            Line::Close => {
                let mut buf = String::new();
                let n = r.read_line(&mut buf).await.map_err(|e| e.to_string())?;
                if n != 0 {
                    return Err(format!("expected the client to close, got {buf:?}"));
                }
            }
        }
    }
    Ok(got)
}

/// A transcript's `agi_<key>` environment value (`agi_channel`, …).
pub fn env_value(lines: &[Line], key: &str) -> Option<String> {
    let prefix = format!("{key}: ");
    lines.iter().find_map(|l| match l {
        Line::S(s) => s.strip_prefix(&prefix).map(str::to_string),
        _ => None,
    })
}
