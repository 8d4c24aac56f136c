//! Code invariants checked as a test: no leftover debugging or placeholder macros, a `//!`
//! doc at the top of every Rust file of the workspace, and the published test keys only
//! ever opted into (never by a library's default, `full` or normal dependency).

use std::fs;
use std::path::{Path, PathBuf};

use crate::run::root;

/// Folders whose Rust files are ours (not `target/`).
const SOURCE_DIRS: &[&str] = &["crates", "tests", "benches", "xtask"];

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for path in entries.flatten().map(|entry| entry.path()) {
        if path.is_dir() && path.file_name().is_none_or(|name| name != "target") {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

fn workspace_sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for dir in SOURCE_DIRS {
        rust_files(&root().join(dir), &mut files);
    }
    files
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect()
}

#[test]
fn no_placeholder_or_debugging_macros() {
    // Spelled in pieces so that this file does not trip its own check.
    let banned = [
        concat!("todo", "!("),
        concat!("unimplemented", "!("),
        concat!("dbg", "!("),
    ];
    let offenders: Vec<String> = workspace_sources()
        .iter()
        .flat_map(|(path, text)| {
            banned
                .iter()
                .filter(|macro_call| text.contains(*macro_call))
                .map(move |macro_call| format!("{}: {macro_call}", path.display()))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "banned macros found:\n{}",
        offenders.join("\n")
    );
}

/// A `//` comment that is not a doc comment (`//!` or `///`).
fn is_plain_comment(line: &str) -> bool {
    line.starts_with("//") && !line.starts_with("//!") && !line.starts_with("///")
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let undocumented: Vec<String> = workspace_sources()
        .iter()
        .filter(|(_, text)| {
            let first_code = text.lines().map(str::trim).find(|line| {
                !line.is_empty() && !line.starts_with("#![") && !is_plain_comment(line)
            });
            !first_code.is_some_and(|line| line.starts_with("//!"))
        })
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        undocumented.is_empty(),
        "files without a leading `//!` doc:\n{}",
        undocumented.join("\n")
    );
}

#[test]
fn the_sources_were_found() {
    // Guards the two checks above against passing vacuously on a wrong root.
    let files = workspace_sources();
    assert!(
        files
            .iter()
            .any(|(path, _)| path.ends_with("crates/core/src/lib.rs"))
    );
    assert!(files.len() > 10);
}

/// The crates' manifests (`crates/*/Cargo.toml`).
fn library_manifests() -> Vec<(PathBuf, String)> {
    let Ok(entries) = fs::read_dir(root().join("crates")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|entry| entry.path().join("Cargo.toml"))
        .filter_map(|path| Some((path.clone(), fs::read_to_string(&path).ok()?)))
        .collect()
}

/// `authcache-jwt`'s `test-keys` feature compiles private keys published in its source into
/// the build: no library may turn it on except from its `test-keys` feature (so never from
/// `default` or `full`) or for its own tests (`[dev-dependencies]`).
#[test]
fn test_keys_are_only_ever_opted_into() {
    let mut offenders = Vec::new();
    let manifests = library_manifests();
    for (path, text) in &manifests {
        let mut section = "";
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line;
                continue;
            }
            if line.starts_with('#') || !line.contains("test-keys") {
                continue;
            }
            let allowed = match section {
                "[features]" => line.starts_with("test-keys ="),
                "[dev-dependencies]" => true,
                _ => false,
            };
            if !allowed {
                offenders.push(format!("{}: {section} {line}", path.display()));
            }
        }
    }
    assert!(
        manifests
            .iter()
            .any(|(path, text)| path.ends_with("crates/jwt/Cargo.toml")
                && text.contains("\ntest-keys = []")),
        "authcache-jwt declares no `test-keys` feature"
    );
    assert!(
        offenders.is_empty(),
        "test keys turned on outside an opt-in:\n{}",
        offenders.join("\n")
    );
}
