//! Fuzz target: no bytes make either answer-document parser (or the plan built from
//! what they accept) panic, hang or overflow the stack.
//!
//! Run from the repository root: `cargo fuzz run -s none document_parse`
//! (`-s none` works on stable; drop it on nightly to get AddressSanitizer).

#![no_main]

use libfuzzer_sys::fuzz_target;
use voxbridge::document::{parse, plan::plan, Dialect};

fuzz_target!(|data: &[u8]| {
    for dialect in [Dialect::Xml, Dialect::VoxMl] {
        match parse(data, dialect) {
            Ok(doc) => {
                let _ = plan(&doc);
            }
            Err(e) => {
                // Every error renders, and has a first problem.
                let _ = e.to_string();
                let _ = e.first();
            }
        }
    }
    let _ = Dialect::sniff(data);
});
