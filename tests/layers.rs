//! Layers point down only (issue 11 point 4): reads every `crates/voxbridge/src/**/*.rs`,
//! collects the top-level modules each one names through `crate::…`, and fails naming the
//! file and line of any reference from a lower floor to a higher one (or sideways, between
//! two modules of the same floor). The simulator is its own crate (issue 11 point 5): the
//! library must not depend on it, and it may use only the protocol and cause tables.
//!
//! The floors are the ones `crates/voxbridge/src/lib.rs` documents; keep the two in step. Comment lines
//! (`//`, `//!`, `///`) are not read: a doc link up the stack explains, it does not
//! depend. `super::` paths stay inside a module and are not followed; cross-module
//! paths in this crate are written `crate::…`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each top-level module's floor: a module may use only modules on a lower floor.
const FLOORS: &[(&str, u8)] = &[
    ("cause", 0),
    ("http_client", 0),
    ("listen", 0),
    ("config", 1),
    ("document", 1),
    ("esl", 2),
    ("agi", 2),
    ("ami", 2),
    ("record", 2),
    ("metrics", 3),
    ("store", 4),
    ("app", 5),
    ("call", 6),
    ("api", 7),
    ("server", 8),
    ("cli", 9),
];

/// The simulator (crate `voxbridge-sim`) is a test tool beside the stack: it plays the
/// switch, so of the library it may use the protocol and the cause tables only.
const SIM_MAY_USE: &[&str] = &["esl", "cause"];

/// The library's sources.
fn library_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/voxbridge/src")
}

/// A reference from one top-level module to another, where it was written.
#[derive(Debug)]
struct Reference {
    file: PathBuf,
    line: usize,
    from: String,
    to: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `src/store/sqlite/mod.rs` → `store`,
/// `src/cause.rs` → `cause`; `None` for the crate roots (`lib.rs`, `main.rs`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let first = file.strip_prefix(src).ok()?.components().next()?;
    let name = first.as_os_str().to_str()?;
    let name = name.strip_suffix(".rs").unwrap_or(name);
    (name != "lib" && name != "main").then(|| name.to_string())
}

/// The modules named by `crate::NAME` in one line of code, including the members of a
/// `crate::{a::…, b::…}` group.
fn named_modules(code: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        // `$crate::` and `voxbridge_crate::` are not this crate's root.
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // The first name of each member at the group's own depth.
            let mut depth = 0;
            let mut at_member_start = true;
            for (i, c) in group.char_indices() {
                if at_member_start && !c.is_whitespace() {
                    let name = ident(&group[i..]);
                    if !name.is_empty() {
                        found.push(name);
                    }
                    at_member_start = false;
                }
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => at_member_start = true,
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

fn references(src: &Path) -> Vec<Reference> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut refs = Vec::new();
    for file in files {
        let Some(from) = module_of(src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for to in named_modules(line) {
                if to != from {
                    refs.push(Reference {
                        file: file.clone(),
                        line: i + 1,
                        from: from.clone(),
                        to,
                    });
                }
            }
        }
    }
    refs
}

/// Why a reference goes against the layering, or `None` when it points down.
fn violation(floors: &BTreeMap<&str, u8>, r: &Reference) -> Option<String> {
    let (from, to) = (r.from.as_str(), r.to.as_str());
    let Some(&floor_from) = floors.get(from) else {
        return Some(format!(
            "`{from}` has no floor: add it to FLOORS and to crates/voxbridge/src/lib.rs"
        ));
    };
    let Some(&floor_to) = floors.get(to) else {
        return Some(format!(
            "`{to}` has no floor: add it to FLOORS and to crates/voxbridge/src/lib.rs"
        ));
    };
    (floor_to >= floor_from).then(|| {
        format!(
            "`{from}` (floor {floor_from}) uses `{to}` (floor {floor_to}): layers point down only"
        )
    })
}

#[test]
fn layers_point_down_only() {
    let src = library_src();
    let floors: BTreeMap<&str, u8> = FLOORS.iter().copied().collect();
    let refs = references(&src);
    assert!(
        refs.len() > 100,
        "only {} cross-module references found in {}: is the scan reading the sources?",
        refs.len(),
        src.display()
    );
    let problems: Vec<String> = refs
        .iter()
        .filter_map(|r| {
            violation(&floors, r).map(|why| format!("{}:{}: {why}", r.file.display(), r.line))
        })
        .collect();
    assert!(
        problems.is_empty(),
        "imports against the layering (see crates/voxbridge/src/lib.rs):\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_top_level_module_has_a_floor() {
    let src = library_src();
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let floors: BTreeMap<&str, u8> = FLOORS.iter().copied().collect();
    let missing: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';'))
        .filter(|m| !floors.contains_key(m))
        .collect();
    assert!(missing.is_empty(), "modules without a floor: {missing:?}");
}

#[test]
fn the_scan_sees_grouped_and_inline_paths() {
    assert_eq!(
        named_modules("use crate::{app::x, store::{A, B}};"),
        ["app", "store"]
    );
    assert_eq!(
        named_modules("let r = crate::call::reconcile::closed_out_record(&l, crate::cause::X);"),
        ["call", "cause"]
    );
    assert!(named_modules("$crate::esl::x; my_crate::app").is_empty());
    let floors: BTreeMap<&str, u8> = FLOORS.iter().copied().collect();
    let up = Reference {
        file: "src/store/mod.rs".into(),
        line: 1,
        from: "store".into(),
        to: "app".into(),
    };
    assert!(violation(&floors, &up).is_some());
    let down = Reference {
        to: "record".into(),
        ..up
    };
    assert!(violation(&floors, &down).is_none());
}

#[test]
fn the_library_does_not_depend_on_the_simulator() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/voxbridge/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(
        text.contains("[dependencies]"),
        "{} has no [dependencies]: is this the library's manifest?",
        manifest.display()
    );
    assert!(
        !text.contains("voxbridge-sim"),
        "{} names voxbridge-sim: the production library must not link the simulator",
        manifest.display()
    );
    let mut files = Vec::new();
    rust_files(&library_src(), &mut files);
    let users: Vec<String> = files
        .iter()
        .filter(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .any(|l| !l.trim_start().starts_with("//") && l.contains("voxbridge_sim"))
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        users.is_empty(),
        "the library names the simulator in {users:?}"
    );
}

#[test]
fn the_simulator_uses_only_the_protocol_and_the_cause_tables() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/voxbridge-sim/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut used = 0;
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            // `voxbridge::X` paths, read with the same scanner as `crate::X` (the
            // simulator's own `crate::` paths are hidden from it first).
            let as_crate = line
                .replace("crate::", "own_crate::")
                .replace("voxbridge::", " crate::");
            for to in named_modules(&as_crate) {
                used += 1;
                if !SIM_MAY_USE.contains(&to.as_str()) {
                    problems.push(format!(
                        "{}:{}: the simulator uses `voxbridge::{to}`; it may use only {SIM_MAY_USE:?}",
                        file.display(),
                        i + 1
                    ));
                }
            }
        }
    }
    assert!(used > 0, "no `voxbridge::` path found in {}", src.display());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
