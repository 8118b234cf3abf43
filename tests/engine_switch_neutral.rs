//! Issue 11 point 1: the call engine decides in switch-neutral terms. FreeSWITCH's
//! application names, `sched_hangup` syntax, `http_cache://` paths, flite voices and
//! `-ERR` replies belong to the FreeSWITCH driver (`src/call/freeswitch/render.rs`);
//! this test keeps them from coming back into the engine, its vocabulary, its element
//! files, or the engine's tests (which must construct no ESL types).

use std::path::{Path, PathBuf};

/// Words that only make sense on FreeSWITCH (matched case-insensitively).
const FREESWITCH_WORDS: &[&str] = &[
    "playback",
    "sched_hangup",
    "sched_cancel",
    "uuid_kill",
    "http_cache",
    "flite",
    "-err",
    "sendmsg",
    "send_dtmf",
    "pre_answer",
    "application-response",
    "sip_hangup_disposition",
    "channel_answer",
    "channel_hangup",
    "event-lock",
    "crate::esl",
    "call::freeswitch::",
];

/// The library crate's directory.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crates/voxbridge")
}

/// The engine, its vocabulary, and every element file under `src/call/element/`.
fn engine_sources() -> Vec<PathBuf> {
    let mut files = vec![
        root().join("src/call/engine.rs"),
        root().join("src/call/channel_op.rs"),
    ];
    let elements = root().join("src/call/element");
    if let Ok(dir) = std::fs::read_dir(&elements) {
        for entry in dir.flatten() {
            if entry.path().extension().is_some_and(|e| e == "rs") {
                files.push(entry.path());
            }
        }
    }
    files.push(root().join("src/call/element.rs"));
    files.into_iter().filter(|p| p.exists()).collect()
}

fn offences(path: &Path, words: &[&str]) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let lower = line.to_ascii_lowercase();
        for word in words {
            if lower.contains(word) {
                found.push(format!(
                    "{}:{}: `{word}` in {line:?}",
                    path.display(),
                    n + 1
                ));
            }
        }
    }
    found
}

#[test]
fn the_engine_and_its_elements_name_nothing_of_freeswitch() {
    let files = engine_sources();
    assert!(files.len() >= 2, "engine sources not found: {files:?}");
    let found: Vec<String> = files
        .iter()
        .flat_map(|f| offences(f, FREESWITCH_WORDS))
        .collect();
    assert!(
        found.is_empty(),
        "FreeSWITCH in the engine:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_engine_tests_construct_no_esl_types() {
    for name in ["engine_rules.rs", "engine_properties.rs"] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join(name);
        let found = offences(&path, &["esl::", "voxbridge::call::freeswitch"]);
        assert!(found.is_empty(), "{}", found.join("\n"));
    }
}

/// The guard itself must bite: FreeSWITCH's rendering module is full of these words.
#[test]
fn the_guard_recognises_freeswitch_text() {
    let render = root().join("src/call/freeswitch/render.rs");
    let found = offences(&render, FREESWITCH_WORDS);
    for word in ["playback", "sched_hangup", "http_cache", "flite", "-err"] {
        assert!(
            found.iter().any(|f| f.contains(&format!("`{word}`"))),
            "{word} not recognised"
        );
    }
}
