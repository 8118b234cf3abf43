//! Reader for the byte-exact ESL transcripts in `tests/fixtures/esl/` (captured from a
//! real FreeSWITCH 1.10.12). The simulator is checked against them and replay tests
//! feed their switch-side bytes through the codec.
//!
//! Format: a marker line `<<<<<<<< [CONN] +T RECEIVED from FreeSWITCH (N bytes)` or
//! `>>>>>>>> [CONN] +T SENT to FreeSWITCH (N bytes)`, exactly N bytes, an optional
//! `[[no newline at end of frame; …]]` line, then `-------- end of frame --------`.

/// Which socket a captured frame crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    /// The switch's `socket` app connecting to us (outbound mode).
    Outbound,
    /// Our client connected to the switch's port 8021 (inbound mode).
    Inbound,
}

/// One captured frame.
#[derive(Clone, Debug, PartialEq)]
pub struct TranscriptFrame {
    pub connection: Connection,
    /// Which socket of that kind when a scenario has several (`[OUTBOUND-SOCKET#2]`),
    /// 1 when the marker carries no number.
    pub socket: u32,
    /// `true` for bytes FreeSWITCH sent, `false` for bytes the client sent.
    pub from_switch: bool,
    /// Seconds since the scenario started.
    pub at: f64,
    pub bytes: Vec<u8>,
}

/// Why a transcript could not be read.
#[derive(Debug, thiserror::Error)]
#[error("transcript line {line}: {what}")]
pub struct TranscriptError {
    pub line: usize,
    pub what: String,
}

/// Parses a whole transcript file.
pub fn parse(text: &[u8]) -> Result<Vec<TranscriptFrame>, TranscriptError> {
    const NO_NEWLINE: &[u8] = b"[[no newline at end of frame";
    const END: &[u8] = b"-------- end of frame --------";
    let mut frames = Vec::new();
    let mut pos = 0;
    let mut line_no = 1;
    while pos < text.len() {
        let line_end = text[pos..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|i| pos + i)
            .unwrap_or(text.len());
        let line = &text[pos..line_end];
        let next = (line_end + 1).min(text.len());
        let is_recv = line.starts_with(b"<<<<<<<< [");
        let is_sent = line.starts_with(b">>>>>>>> [");
        if !(is_recv || is_sent) {
            pos = next;
            line_no += 1;
            continue;
        }
        let header = String::from_utf8_lossy(line);
        let marker_line = line_no;
        let err = |what: &str| TranscriptError {
            line: marker_line,
            what: format!("{what}: {header}"),
        };
        let tag = header
            .split_once('[')
            .and_then(|(_, r)| r.split_once(']'))
            .map(|(t, _)| t)
            .ok_or_else(|| err("no [CONNECTION]"))?;
        let (kind, socket) = match tag.split_once('#') {
            Some((k, n)) => (k, n.parse::<u32>().map_err(|_| err("bad socket number"))?),
            None => (tag, 1),
        };
        let connection = match kind {
            "OUTBOUND-SOCKET" => Connection::Outbound,
            "INBOUND-ESL" => Connection::Inbound,
            _ => return Err(err("unknown connection")),
        };
        let at = header
            .split_whitespace()
            .find_map(|w| w.strip_prefix('+').and_then(|t| t.strip_suffix('s')))
            .and_then(|t| t.parse::<f64>().ok())
            .ok_or_else(|| err("no +T time"))?;
        let n = header
            .rsplit_once('(')
            .and_then(|(_, r)| r.strip_suffix(" bytes)"))
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| err("no byte count"))?;
        let start = next;
        let end = start + n;
        if end > text.len() {
            return Err(err("frame runs past the end of the file"));
        }
        let bytes = text[start..end].to_vec();
        line_no += 1 + bytes.iter().filter(|b| **b == b'\n').count();
        // After the frame: optional "no newline" note (preceded by a display newline),
        // then the end marker.
        let mut rest = end;
        if text[rest..].starts_with(b"\n") && text[rest + 1..].starts_with(NO_NEWLINE) {
            rest += 1;
        }
        if text[rest..].starts_with(NO_NEWLINE) {
            let e = text[rest..].iter().position(|b| *b == b'\n').unwrap_or(0);
            rest += e + 1;
            line_no += 1;
        }
        if !text[rest..].starts_with(END) {
            return Err(err("frame not followed by the end marker"));
        }
        frames.push(TranscriptFrame {
            connection,
            socket,
            from_switch: is_recv,
            at,
            bytes,
        });
        pos = rest;
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_fixture() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/esl");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("txt") {
                continue;
            }
            let frames = parse(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(frames.len() > 5, "{}", path.display());
            seen += 1;
        }
        assert_eq!(seen, 35);
    }
}
