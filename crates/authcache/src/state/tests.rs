//! Tidy check of the state floor's place: it sits below the handle, the builder and the
//! watcher, so none of its sources may name them.

use std::path::Path;

/// The modules above the state floor.
const ABOVE: [&str; 3] = ["crate::service", "crate::builder", "crate::watcher"];

#[test]
fn the_state_floor_imports_nothing_above_it() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/state");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "rs") || path.ends_with("tests.rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        for (number, line) in source.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            let named = ABOVE.iter().find(|above| {
                code.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .any(|path| path == **above || path.starts_with(&format!("{above}::")))
            });
            assert!(
                named.is_none(),
                "{}:{}: the state floor names `{}`: move what it needs into `state/`",
                path.display(),
                number + 1,
                named.unwrap_or(&""),
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 4,
        "read {checked} sources under {}",
        dir.display()
    );
}
