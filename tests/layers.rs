//! Layers point down only (issue 11 point 4): reads every `src/**/*.rs`, collects the
//! top-level modules each one names through `crate::…`, and fails naming the file and
//! line of any reference from a lower floor to a higher one (or sideways, between two
//! modules of the same floor), and of any use of the simulator outside the demo.
//!
//! The floors are the ones `src/lib.rs` documents; keep the two in step. Comment lines
//! (`//`, `//!`, `///`) are not read: a doc link up the stack explains, it does not
//! depend. `super::` paths stay inside a module and are not followed; cross-module
//! paths in this crate are written `crate::…`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each top-level module's floor: a module may use only modules on a lower floor.
const FLOORS: &[(&str, u8)] = &[
    ("cause", 0),
    ("http_client", 0),
    ("config", 1),
    ("document", 1),
    ("esl", 2),
    ("agi", 2),
    ("record", 2),
    ("metrics", 3),
    ("store", 4),
    ("app", 5),
    ("call", 6),
    ("api", 7),
    ("server", 8),
    ("cli", 9),
    ("demo", 9),
];

/// The simulator is a test tool beside the stack: it plays the switch, so it may use the
/// protocol and the cause tables only, and only the demo (and tests) may use it.
const SIM: &str = "sim";
const SIM_MAY_USE: &[&str] = &["esl", "cause"];
const MAY_USE_SIM: &[&str] = &["demo"];

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
    if from == SIM {
        return (!SIM_MAY_USE.contains(&to))
            .then(|| format!("the simulator may use only {SIM_MAY_USE:?}, not `{to}`"));
    }
    if to == SIM {
        return (!MAY_USE_SIM.contains(&from))
            .then(|| format!("`{from}` uses the simulator, which only {MAY_USE_SIM:?} may"));
    }
    let Some(&floor_from) = floors.get(from) else {
        return Some(format!(
            "`{from}` has no floor: add it to FLOORS and to src/lib.rs"
        ));
    };
    let Some(&floor_to) = floors.get(to) else {
        return Some(format!(
            "`{to}` has no floor: add it to FLOORS and to src/lib.rs"
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
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
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
        "imports against the layering (see src/lib.rs):\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_top_level_module_has_a_floor() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let floors: BTreeMap<&str, u8> = FLOORS.iter().copied().collect();
    let missing: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';'))
        .filter(|m| *m != SIM && !floors.contains_key(m))
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
