//! Reading what the client sends, the way the switch's `mes.c:read_packet` does.
//!
//! Leading CR/LF bytes are skipped; the header block ends at the second `\n` in a row
//! (a `\r` in between does not break the run, so `\n\n` and `\r\n\r\n` both end it); the
//! first line is the command; the other lines are `Name: value` split at the first `:`
//! with leading spaces dropped and values kept raw (not URL-decoded); lines without `:`
//! are ignored; a `Content-Length` header (any case) is followed by exactly that many
//! body bytes. A length outside 0..=16 MiB ends the connection, as on the switch. The
//! header block is bounded too (the switch forces a block end at 10 MiB; we close the
//! connection at 1 MiB, which no legitimate command approaches).

use bytes::{Buf, BytesMut};

pub const MAX_BODY: usize = 16 * 1024 * 1024;
pub const MAX_BLOCK: usize = 1024 * 1024;

/// One client command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Command {
    /// First line, CR/LF stripped.
    pub line: String,
    /// Other header lines in order, raw values.
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl Command {
    /// First header with this name, case-insensitive; the first one wins.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `true` if the command line starts with `word` (case-insensitive), as the switch's
    /// `strncasecmp` prefix matching.
    pub fn is(&self, word: &str) -> bool {
        self.line.len() >= word.len()
            && self.line.as_bytes()[..word.len()].eq_ignore_ascii_case(word.as_bytes())
    }

    /// The text after the first word, trimmed.
    pub fn args(&self) -> &str {
        self.line
            .split_once(char::is_whitespace)
            .map(|(_, r)| r.trim())
            .unwrap_or("")
    }

    /// The whole command as text (for reports and logs).
    pub fn to_text(&self) -> String {
        let mut s = self.line.clone();
        for (n, v) in &self.headers {
            s.push('\n');
            s.push_str(n);
            s.push_str(": ");
            s.push_str(v);
        }
        if let Some(b) = &self.body {
            s.push_str("\n\n");
            s.push_str(&String::from_utf8_lossy(b));
        }
        s
    }
}

/// Why the connection must close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("command header block exceeds {MAX_BLOCK} bytes")]
    BlockTooLarge,
    #[error("Content-Length {0:?} is not a number from 0 to {MAX_BODY}")]
    BadContentLength(String),
}

/// Incremental reader: call [`CommandReader::next`] after each read.
#[derive(Debug, Default)]
pub struct CommandReader {
    /// Scan position inside the header block (so split reads are not rescanned).
    scanned: usize,
    newlines: u8,
    /// Length of a complete header block whose body has not fully arrived yet.
    block_end: Option<usize>,
}

impl CommandReader {
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, CommandError> {
        if self.scanned == 0 && self.block_end.is_none() {
            let skip = buf
                .iter()
                .take_while(|b| **b == b'\n' || **b == b'\r')
                .count();
            buf.advance(skip);
        }
        let mut end = self.block_end;
        while end.is_none() && self.scanned < buf.len() {
            let b = buf[self.scanned];
            self.scanned += 1;
            match b {
                b'\n' => {
                    self.newlines += 1;
                    if self.newlines == 2 {
                        end = Some(self.scanned);
                        break;
                    }
                }
                b'\r' => {}
                _ => self.newlines = 0,
            }
        }
        let Some(block_len) = end else {
            if buf.len() > MAX_BLOCK {
                return Err(CommandError::BlockTooLarge);
            }
            return Ok(None);
        };
        let block = String::from_utf8_lossy(&buf[..block_len]).into_owned();
        let mut lines = block.split('\n').map(|l| l.trim_end_matches('\r'));
        let line = lines.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        for l in lines {
            if let Some((n, v)) = l.split_once(':') {
                headers.push((n.to_string(), v.trim_start_matches(' ').to_string()));
            }
        }
        let mut cmd = Command {
            line,
            headers,
            body: None,
        };
        let body_len = match cmd.header("Content-Length") {
            None => None,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n <= MAX_BODY => Some(n),
                _ => return Err(CommandError::BadContentLength(v.to_string())),
            },
        };
        let total = block_len + body_len.unwrap_or(0);
        if buf.len() < total {
            // The block is complete, only the body is missing.
            self.block_end = Some(block_len);
            return Ok(None);
        }
        let mut taken = buf.split_to(total);
        taken.advance(block_len);
        if body_len.is_some() {
            cmd.body = Some(taken.to_vec());
        }
        self.scanned = 0;
        self.newlines = 0;
        self.block_end = None;
        Ok(Some(cmd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(bytes: &[u8]) -> Result<Vec<Command>, CommandError> {
        let mut r = CommandReader::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in bytes {
            buf.extend_from_slice(&[*b]);
            while let Some(c) = r.next(&mut buf)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    #[test]
    fn reads_commands_like_the_switch() {
        let cmds = all(b"\r\n\nconnect\n\nsendmsg\ncall-command: execute\nexecute-app-name: speak\ncontent-type: text/plain\ncontent-length: 5\n\nhi\nyo\r\n\r\napi uuid_break x\r\n\r\nbgapi originate {a=b}sofia/x/7001@127.0.0.1:5060 &park()\n\n").unwrap();
        assert_eq!(cmds.len(), 4);
        assert_eq!(cmds[0].line, "connect");
        assert_eq!(cmds[1].header("EXECUTE-APP-NAME"), Some("speak"));
        assert_eq!(cmds[1].body.as_deref(), Some(&b"hi\nyo"[..]));
        assert_eq!(cmds[2].line, "api uuid_break x");
        assert!(cmds[3].is("bgapi "));
        assert_eq!(
            cmds[3].args(),
            "originate {a=b}sofia/x/7001@127.0.0.1:5060 &park()"
        );
    }

    proptest::proptest! {
        /// Whatever a client sends, the reader returns commands or an error, never panics,
        /// and always makes progress or waits for more bytes.
        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(
            proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), 0..16)) {
            let mut r = CommandReader::default();
            let mut buf = BytesMut::new();
            'outer: for c in chunks {
                buf.extend_from_slice(&c);
                loop {
                    match r.next(&mut buf) {
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(_) => break 'outer,
                    }
                }
            }
        }
    }

    #[test]
    fn bad_lengths_close() {
        assert!(matches!(
            all(b"sendmsg\nContent-Length: 99999999999\n\n"),
            Err(CommandError::BadContentLength(_))
        ));
        assert!(matches!(
            all(b"sendmsg\nContent-Length: -3\n\n"),
            Err(CommandError::BadContentLength(_))
        ));
        let mut r = CommandReader::default();
        let mut buf = BytesMut::from(&vec![b'a'; MAX_BLOCK + 1][..]);
        assert_eq!(r.next(&mut buf), Err(CommandError::BlockTooLarge));
    }
}
