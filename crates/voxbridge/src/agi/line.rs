//! Lines of the FastAGI stream. Asterisk ends every line with `\n` (a `\r` before it is
//! tolerated and dropped). A line longer than [`MAX_LINE`] bytes is a protocol error:
//! the decoder never buffers more than that, whatever the peer sends. Bytes that are not
//! UTF-8 (a Latin-1 caller name) are kept lossily, never a failure.

use bytes::{Buf, BytesMut};

/// The longest line accepted, `\n` excluded. Asterisk's own command buffer is 2 KiB
/// (`AGI_BUF_LEN`); replies carrying a variable's value may be longer, so there is room.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("line longer than {limit} bytes")]
    TooLong { limit: usize },
}

/// Splits a byte stream into lines.
#[derive(Debug)]
pub struct LineDecoder {
    limit: usize,
    /// Bytes already searched for `\n` in the buffer (so a slow line is scanned once).
    scanned: usize,
}

impl Default for LineDecoder {
    fn default() -> Self {
        Self::new(MAX_LINE)
    }
}

impl LineDecoder {
    pub fn new(limit: usize) -> Self {
        Self { limit, scanned: 0 }
    }

    /// The next complete line in `buf` (consumed, without its line end), `Ok(None)` if
    /// more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<String>, LineError> {
        match buf[self.scanned..].iter().position(|b| *b == b'\n') {
            Some(at) => {
                let end = self.scanned + at;
                self.scanned = 0;
                let mut len = end;
                if len > 0 && buf[len - 1] == b'\r' {
                    len -= 1;
                }
                if len > self.limit {
                    return Err(LineError::TooLong { limit: self.limit });
                }
                let line = String::from_utf8_lossy(&buf[..len]).into_owned();
                buf.advance(end + 1);
                Ok(Some(line))
            }
            None => {
                // `+ 1`: room for a `\r` that may precede the `\n` still to come.
                if buf.len() > self.limit + 1 {
                    return Err(LineError::TooLong { limit: self.limit });
                }
                self.scanned = buf.len();
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], limit: usize) -> Result<Vec<String>, LineError> {
        let mut d = LineDecoder::new(limit);
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(l) = d.decode(&mut buf)? {
            out.push(l);
        }
        Ok(out)
    }

    #[test]
    fn splits_on_newline_and_drops_a_carriage_return() {
        assert_eq!(
            lines(b"200 result=0\r\nHANGUP\n\npartial", 100).unwrap(),
            vec!["200 result=0", "HANGUP", ""]
        );
    }

    #[test]
    fn a_line_over_the_limit_is_an_error_with_or_without_its_end() {
        assert!(lines(&[b'x'; 12], 10).is_err());
        let mut long = vec![b'x'; 11];
        long.push(b'\n');
        assert!(lines(&long, 10).is_err());
        let mut ok = vec![b'x'; 10];
        ok.extend_from_slice(b"\r\n");
        assert_eq!(lines(&ok, 10).unwrap().len(), 1);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_kept_lossily() {
        assert_eq!(
            lines(b"agi_calleridname: Jos\xe9\n", 100).unwrap()[0],
            "agi_calleridname: Jos\u{fffd}"
        );
    }
}
