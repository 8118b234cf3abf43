//! FreeSWITCH's URL encoding of event header values (`switch_url_encode_opt`) and its
//! inverse (`switch_url_decode`).
//!
//! The switch encodes every byte below 0x20 or above 0x7E and the bytes of
//! `SWITCH_URL_UNSAFE` as `%XX` with uppercase hex; a space becomes `%20`, never `+`.
//! Its one quirk is kept here so the simulator matches the wire byte for byte: a `%`
//! already followed by two *uppercase* hex digits is copied unchanged (so the value
//! `100%41` goes out as `100%41` and comes back as `100A`).

/// Bytes the switch always escapes besides controls and non-ASCII (`SWITCH_URL_UNSAFE`).
const UNSAFE: &[u8] = b"\r\n #%&+:;<=>?@[\\]^`{|}\"";

fn is_upper_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'A'..=b'F').contains(&b)
}

/// Encodes a header value exactly as FreeSWITCH serializes it in plain events.
pub fn encode(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 4);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%'
            && i + 2 < bytes.len()
            && bytes.get(i + 1).copied().is_some_and(is_upper_hex)
            && bytes.get(i + 2).copied().is_some_and(is_upper_hex)
        {
            out.push('%');
            i += 1;
            continue;
        }
        if !(0x20..=0x7E).contains(&b) || UNSAFE.contains(&b) {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0x0F) as usize] as char);
        } else {
            out.push(b as char);
        }
        i += 1;
    }
    out
}

/// Decodes `%XX` (either case) to bytes; anything else is copied. Bytes that do not
/// form valid UTF-8 are replaced (U+FFFD) rather than failing: a header value is text
/// for us, and one bad byte from the wire must not lose the whole event.
pub fn decode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    decode_into(value, &mut out);
    out
}

/// [`decode`], appending to `out` (event decoding writes every value into one buffer).
pub fn decode_into(value: &str, out: &mut String) {
    let bytes = value.as_bytes();
    if memchr::memchr(b'%', bytes).is_none() {
        out.push_str(value);
        return;
    }
    // Copy literal runs as they are and collect each run of `%XX` bytes in a small
    // buffer (a UTF-8 character is several escapes in a row), so decoding allocates
    // nothing for the values the switch sends (events carry hundreds of them).
    let mut pending: [u8; 64] = [0; 64];
    let mut n = 0;
    let mut literal_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let escaped = if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hi = (bytes[i + 1] as char).to_digit(16);
            let lo = (bytes[i + 2] as char).to_digit(16);
            hi.zip(lo).map(|(hi, lo)| (hi * 16 + lo) as u8)
        } else {
            None
        };
        match escaped {
            Some(byte) => {
                out.push_str(&value[literal_start..i]);
                if n == pending.len() {
                    n = flush_escaped(&mut pending, n, out, false);
                }
                pending[n] = byte;
                n += 1;
                i += 3;
                literal_start = i;
            }
            None => {
                if n > 0 {
                    n = flush_escaped(&mut pending, n, out, true);
                }
                i += 1;
            }
        }
    }
    if n > 0 {
        flush_escaped(&mut pending, n, out, true);
    }
    out.push_str(&value[literal_start..]);
}

/// [`decode_into`] on bytes, without the UTF-8 check: `%XX` (either case) becomes its
/// byte, anything else is copied. Whoever calls it checks the result is UTF-8 (see
/// `frame::DecodedHeaders`), falling back to [`decode_into`] when it is not — which
/// gives the same text whenever this one's is valid.
pub fn decode_bytes_into(value: &[u8], out: &mut Vec<u8>) {
    // Literal runs are copied whole; values are short, so the `%`s are found by a plain
    // scan rather than a SIMD search with its set-up.
    let (mut i, mut literal) = (0, 0);
    while let Some(off) = value[i..].iter().position(|b| *b == b'%') {
        let at = i + off;
        i = at + 1;
        if let (Some(hi), Some(lo)) = (
            value.get(at + 1).copied().and_then(hex_digit),
            value.get(at + 2).copied().and_then(hex_digit),
        ) {
            out.extend_from_slice(&value[literal..at]);
            out.push(hi << 4 | lo);
            i = at + 3;
            literal = i;
        }
    }
    out.extend_from_slice(&value[literal..]);
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends the decoded bytes `buf[..n]` as text. Unless `all`, an incomplete UTF-8
/// character at the end is kept (moved to the front) for the next escapes; returns how
/// many bytes were kept. Invalid bytes become U+FFFD.
fn flush_escaped(buf: &mut [u8; 64], n: usize, out: &mut String, all: bool) -> usize {
    let mut start = 0;
    loop {
        match std::str::from_utf8(&buf[start..n]) {
            Ok(s) => {
                out.push_str(s);
                return 0;
            }
            Err(e) => {
                let valid = start + e.valid_up_to();
                // `valid` ends on a character boundary by construction.
                out.push_str(std::str::from_utf8(&buf[start..valid]).unwrap_or(""));
                match e.error_len() {
                    Some(bad) => {
                        out.push('\u{FFFD}');
                        start = valid + bad;
                    }
                    None if !all => {
                        let keep = n - valid;
                        buf.copy_within(valid..n, 0);
                        return keep;
                    }
                    None => {
                        out.push('\u{FFFD}');
                        return 0;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_switch() {
        assert_eq!(
            encode("sofia/internal/1000@127.0.0.1"),
            "sofia/internal/1000%40127.0.0.1"
        );
        assert_eq!(encode("+OK\n"), "%2BOK%0A");
        assert_eq!(encode("Sat, 21 Nov"), "Sat,%2021%20Nov");
        assert_eq!(encode("::1"), "%3A%3A1");
        assert_eq!(encode("café"), "caf%C3%A9");
        assert_eq!(encode("a/b,c!$'()*-._~"), "a/b,c!$'()*-._~");
        // The quirk: an existing %XX with uppercase hex passes through.
        assert_eq!(encode("100%41"), "100%41");
        assert_eq!(encode("100%4a"), "100%254a");
        assert_eq!(encode("50%"), "50%25");
    }

    #[test]
    fn decodes_both_cases_and_keeps_stray_percent() {
        assert_eq!(decode("%2BOK%0A"), "+OK\n");
        assert_eq!(decode("caf%c3%a9"), "café");
        assert_eq!(decode("50%"), "50%");
        assert_eq!(decode("5%zz"), "5%zz");
        assert_eq!(decode("a+b"), "a+b");
        assert_eq!(decode("%FF"), "\u{FFFD}");
    }

    #[test]
    fn long_escaped_runs_and_bad_bytes_decode_like_a_whole_buffer() {
        // 40 euro signs = 120 escaped bytes: characters straddle the 64-byte buffer.
        let text = "€".repeat(40) + "a/b" + &"ü".repeat(33);
        assert_eq!(decode(&encode(&text)), text);
        let mut out = String::new();
        decode_into(&encode(&text), &mut out);
        assert_eq!(out, text);
        // A lone lead byte, then a literal: replaced, the rest kept.
        assert_eq!(decode("%E2x%41"), "\u{FFFD}xA");
        // A truncated character at the very end.
        assert_eq!(decode("ok%E2%82"), "ok\u{FFFD}");
    }
}
