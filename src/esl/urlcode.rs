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
    if !bytes.contains(&b'%') {
        out.push_str(value);
        return;
    }
    let mut raw = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hi = (bytes[i + 1] as char).to_digit(16);
            let lo = (bytes[i + 2] as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                raw.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        raw.push(bytes[i]);
        i += 1;
    }
    match std::str::from_utf8(&raw) {
        Ok(s) => out.push_str(s),
        Err(_) => out.push_str(&String::from_utf8_lossy(&raw)),
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
}
