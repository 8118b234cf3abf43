//! Fuzzes the switch→client decoding path: arbitrary bytes, arriving in arbitrary read
//! sizes, through the frame decoder and the message/event decoders. Any panic is a bug.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use voxbridge::esl::event::{decode_json, decode_plain, Message};
use voxbridge::esl::frame::FrameDecoder;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read size, so partial frames are exercised too.
    let (chunk, wire) = match data.split_first() {
        Some((c, rest)) => (usize::from(*c).max(1), rest),
        None => return,
    };
    // Small limits so the limit paths are reachable.
    let mut decoder = FrameDecoder::new(4096, 64 * 1024);
    let mut buf = BytesMut::new();
    'reads: for piece in wire.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(buf.len() < before, "a frame must consume bytes");
                    if let Message::Event(event) = Message::decode(frame) {
                        let _ = event.to_frame().to_bytes();
                    }
                }
                Ok(None) => break,
                Err(_) => break 'reads,
            }
        }
    }
    let _ = decode_plain(wire);
    let _ = decode_json(wire);
});
