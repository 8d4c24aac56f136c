//! The published test keys are opt-in: every fixture signed with them sits in the one module
//! that feature `test-keys` gates, and nothing but that feature (and this crate's own tests,
//! through a dev-dependency) turns it on. Checked on the sources and the manifest, since a
//! build that has the feature — like this test's — cannot see its absence.

#![allow(clippy::unwrap_used, clippy::panic)] // a failure here is a test failure.

use std::fs;
use std::path::{Path, PathBuf};

fn manifest() -> toml::Table {
    include_str!("../Cargo.toml").parse().unwrap()
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for path in fs::read_dir(dir).unwrap().flatten().map(|e| e.path()) {
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn test_keys_is_a_feature_that_nothing_else_turns_on() {
    let manifest = manifest();
    let features = manifest["features"].as_table().unwrap();
    assert_eq!(features["test-keys"].as_array().unwrap().len(), 0);
    for (name, enables) in features {
        let enables = enables.as_array().unwrap();
        assert!(
            name == "test-keys" || !enables.iter().any(|f| f.as_str() == Some("test-keys")),
            "feature {name} turns on test-keys"
        );
    }
    let own_tests = &manifest["dev-dependencies"]["authcache-jwt"]["features"];
    assert!(
        own_tests
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str() == Some("test-keys")),
        "this crate's tests need the test keys"
    );
}

#[test]
fn every_test_fixture_lives_in_the_gated_module() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = fs::read_to_string(src.join("lib.rs")).unwrap();
    assert!(
        lib.contains(concat!(
            "#[cfg(feature = \"test-keys\")]\n",
            "#[cfg_attr(docsrs, doc(cfg(feature = \"test-keys\")))]\n",
            "pub mod test_keys;",
        )),
        "lib.rs must gate `test_keys` behind the feature"
    );
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 10,
        "sources not found under {}",
        src.display()
    );
    for path in files.iter().filter(|p| !p.ends_with("test_keys.rs")) {
        let text = fs::read_to_string(path).unwrap();
        for fixture in ["pub fn test_", "include_str!(\"testkeys/", "HS256_SECRET: "] {
            assert!(
                !text.contains(fixture),
                "{}: `{fixture}` outside the test-keys module",
                path.display()
            );
        }
    }
}
