//! `cargo xtask ci`: fmt → clippy → tests (all features, then default features) → the loom
//! models of the coherence protocol (`cargo xtask model`) → a 15 s soak (`cargo xtask soak`,
//! with a fresh seed, printed) → docs → packaging (every publishable crate's crates.io
//! metadata, then `cargo package`) → per-feature checks. The servers the tests need are
//! provisioned first.
//!
//! `cargo xtask ci --repeat N` runs the whole sequence N times in a row and stops at the
//! first failure: the proof that no test depends on luck. Run it beside a CPU hog (one
//! `yes > /dev/null` per core) to prove it under starvation too.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::run::{cargo, exec};
use crate::services;

/// Feature sets each crate must build with on its own, beyond `--all-features`.
const FEATURE_CHECKS: &[(&str, &[&str])] = &[
    (
        "authcache",
        &[
            "",
            "memory",
            "redis",
            "redis-cluster",
            "mongodb",
            "mock",
            "axum",
            "tower",
            "metrics",
            "jwks",
            "test-keys",
        ],
    ),
    ("authcache-core", &["", "mock", "postcard", "test-support"]),
    ("authcache-jwt", &["", "jwks", "test-keys"]),
    ("authcache-redis", &["", "cluster"]),
    ("authcache-users", &["", "mongodb", "mock"]),
];

/// The workspace's packages that are never published: each must say `publish = false`, and
/// the packaging step leaves them out. Every other package is published and is checked.
const UNPUBLISHED: &[&str] = &["authcache-tests", "authcache-benches", "xtask"];

/// The crates.io category slugs our crates may use. crates.io only warns about an unknown slug
/// and drops it, so a typo would silently lose the category: a slug not listed here is an
/// error (add it here, once checked against <https://crates.io/category_slugs>).
const CATEGORIES: &[&str] = &[
    "asynchronous",
    "authentication",
    "caching",
    "command-line-utilities",
    "concurrency",
    "config",
    "cryptography",
    "data-structures",
    "database",
    "database-implementations",
    "development-tools::testing",
    "encoding",
    "network-programming",
    "web-programming",
    "web-programming::http-client",
    "web-programming::http-server",
];

/// Runs every check CI runs `repeat` times, stopping at the first failure, and prints the
/// time of each run.
///
/// # Errors
/// The first step that failed, in one line, naming the run.
pub(crate) fn run(repeat: usize) -> Result<()> {
    let mut times = Vec::with_capacity(repeat);
    for attempt in 1..=repeat {
        let started = Instant::now();
        run_once().with_context(|| format!("run {attempt} of {repeat}"))?;
        times.push(started.elapsed());
        println!(
            "\nxtask ci: run {attempt} of {repeat} passed in {:.0?}",
            started.elapsed()
        );
    }
    if repeat > 1 {
        println!("xtask ci: {repeat} runs passed: {times:.0?}");
    }
    Ok(())
}

/// Parses `--repeat N` (default 1).
///
/// # Errors
/// When N is not a positive number.
pub(crate) fn parse_repeat(args: &[&str]) -> Result<usize> {
    match args {
        [] => Ok(1),
        ["--repeat", n] => match n.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => bail!("--repeat wants a positive number, got {n:?}"),
        },
        _ => bail!("usage: cargo xtask ci [--repeat N]"),
    }
}

/// One run of every check.
fn run_once() -> Result<()> {
    let tools = services::install()?;
    exec(&mut cargo(&["fmt", "--all", "--", "--check"]))?;
    exec(&mut cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    exec(tools.apply(&mut cargo(&["test", "--workspace", "--all-features"])))?;
    exec(tools.apply(&mut cargo(&["test", "--workspace"])))?;
    crate::model::run()?;
    crate::soak::run_with(&tools, &crate::soak::Soak::ci())?;
    exec(
        cargo(&["doc", "--workspace", "--all-features", "--no-deps"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    check_publish_metadata()?;
    // `cargo package` with verification, not `--no-verify`: each crate is built from its
    // packaged sources alone (`target/package/<crate>`), against the others through cargo's
    // local overlay registry, with its default features. That is the one check that sees a
    // file the build needs (`include_str!`, a fixture) left outside the package, a normalized
    // manifest that no longer builds, or a feature the crate relied on another crate to turn
    // on. `--no-verify` sees only manifest errors (a path-only dependency, a missing readme)
    // and takes 6 to 16 s. Verifying, measured on this 2-core machine (beside other builds)
    // for the 7 crates: 7m54s into an empty target directory (the server's tonic,
    // envoy-types and mongodb are most of it); about 2m40s into one that test builds have
    // filled, as the steps above do; 45 s when only our crates are rebuilt (`--repeat`).
    // What makes the middle case cheap: the packaged crates do not inherit the root
    // `[profile.dev]`, so its `debug = "line-tables-only"` is set again here, and the verify
    // builds reuse the dependencies the tests built (for the 6 library crates: 106 units
    // compiled, against 249 at cargo's default full debuginfo). No incremental state:
    // nothing here is rebuilt piecemeal.
    // `--allow-dirty`: this checks packaging, not a clean git tree (`xtask ci` runs before a
    // commit). The crates.io index is read, nothing is uploaded.
    let mut package = vec!["package", "--workspace", "--allow-dirty"];
    for name in UNPUBLISHED {
        package.extend(["--exclude", name]);
    }
    exec(
        cargo(&package)
            .env("CARGO_PROFILE_DEV_DEBUG", "line-tables-only")
            .env("CARGO_INCREMENTAL", "0"),
    )?;
    for (package, feature_sets) in FEATURE_CHECKS {
        for features in *feature_sets {
            exec(&mut cargo(&[
                "check",
                "-p",
                package,
                "--no-default-features",
                "--features",
                features,
            ]))?;
        }
    }
    println!("\nxtask ci: all checks passed");
    Ok(())
}

/// What crates.io shows or needs of every published crate, which `cargo package` does not
/// check (it only warns about a missing description, and never reads keywords or
/// categories): a description, license, repository, rust-version and readme; 1 to 5
/// keywords of at most 20 characters, lowercase ASCII letters, digits, `-` and `_`; 1 to 5
/// categories from [`CATEGORIES`]; docs.rs building with all features, and with
/// `--cfg docsrs` when the crate's root uses it. The unpublished packages must say so.
///
/// # Errors
/// Every problem found, one per line, naming the package.
fn check_publish_metadata() -> Result<()> {
    println!("\n$ cargo metadata --no-deps (publish metadata)");
    let output = cargo(&["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("cannot run `cargo metadata`")?;
    if !output.status.success() {
        bail!(
            "`cargo metadata` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let metadata: Value =
        serde_json::from_slice(&output.stdout).context("`cargo metadata` printed no JSON")?;
    let packages = metadata["packages"]
        .as_array()
        .context("`cargo metadata` lists no packages")?;
    let mut problems = Vec::new();
    let mut published = 0;
    for package in packages {
        let name = package["name"].as_str().unwrap_or("?");
        // `publish = false` is `[]`; absent (`null`) or a list of registries is published.
        let unpublished = package["publish"].as_array().is_some_and(Vec::is_empty);
        match (UNPUBLISHED.contains(&name), unpublished) {
            (true, true) => {}
            (true, false) => problems.push(format!("{name}: must be `publish = false`")),
            (false, true) => problems.push(format!(
                "{name}: `publish = false` but not in xtask's UNPUBLISHED (which the packaging \
                 step leaves out)"
            )),
            (false, false) => {
                published += 1;
                problems.extend(
                    publish_metadata_problems(package)
                        .into_iter()
                        .map(|problem| format!("{name}: {problem}")),
                );
            }
        }
    }
    if published == 0 {
        problems.push("no published package found".to_owned());
    }
    if !problems.is_empty() {
        bail!("publish metadata:\n{}", problems.join("\n"));
    }
    println!("{published} published crates: metadata complete");
    Ok(())
}

/// The problems of one published package's manifest (see [`check_publish_metadata`]).
fn publish_metadata_problems(package: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for field in [
        "description",
        "license",
        "repository",
        "rust_version",
        "readme",
    ] {
        if package[field]
            .as_str()
            .is_none_or(|value| value.trim().is_empty())
        {
            problems.push(format!("no `{}`", field.replace('_', "-")));
        }
    }
    let words = |field: &str| -> Vec<String> {
        package[field]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|value| value.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let keywords = words("keywords");
    if !(1..=5).contains(&keywords.len()) {
        problems.push(format!("{} keywords (1 to 5)", keywords.len()));
    }
    for keyword in &keywords {
        let valid = keyword.len() <= 20
            && keyword.starts_with(|c: char| c.is_ascii_alphanumeric())
            && keyword
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid {
            problems.push(format!(
                "keyword {keyword:?}: at most 20 of a-z, 0-9, `-`, `_`"
            ));
        }
    }
    let categories = words("categories");
    if !(1..=5).contains(&categories.len()) {
        problems.push(format!("{} categories (1 to 5)", categories.len()));
    }
    for category in &categories {
        if !CATEGORIES.contains(&category.as_str()) {
            problems.push(format!(
                "category {category:?} is not a crates.io slug listed in xtask's CATEGORIES"
            ));
        }
    }
    let docs_rs = &package["metadata"]["docs"]["rs"];
    if docs_rs["all-features"].as_bool() != Some(true) {
        problems.push("no `[package.metadata.docs.rs] all-features = true`".to_owned());
    }
    let uses_docsrs = package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|target| {
            target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == "lib"))
        })
        .filter_map(|target| target["src_path"].as_str())
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .any(|source| source.contains("cfg_attr(docsrs"));
    let passes_docsrs = docs_rs["rustdoc-args"].as_array().is_some_and(|args| {
        args.windows(2)
            .any(|pair| pair[0] == "--cfg" && pair[1] == "docsrs")
    });
    if uses_docsrs && !passes_docsrs {
        problems.push(
            "its root uses `cfg_attr(docsrs, ..)`: needs `[package.metadata.docs.rs] \
             rustdoc-args = [\"--cfg\", \"docsrs\"]`"
                .to_owned(),
        );
    }
    problems
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failure here is a test failure.

    use serde_json::json;

    use super::{check_publish_metadata, publish_metadata_problems};

    fn complete() -> serde_json::Value {
        json!({
            "name": "authcache-example",
            "description": "An example.",
            "license": "MIT OR Apache-2.0",
            "repository": "https://github.com/authcache/authcache",
            "rust_version": "1.88",
            "readme": "README.md",
            "keywords": ["auth", "jwt-cache"],
            "categories": ["authentication", "web-programming::http-server"],
            "metadata": { "docs": { "rs": { "all-features": true } } },
            "targets": [],
        })
    }

    #[test]
    fn complete_metadata_has_no_problem() {
        assert_eq!(publish_metadata_problems(&complete()), Vec::<String>::new());
    }

    #[test]
    fn each_gap_is_named() {
        let mut package = complete();
        package["description"] = json!(null);
        package["readme"] = json!(null);
        package["keywords"] = json!(["Auth", "a-keyword-longer-than-20", "-dash"]);
        package["categories"] = json!(["web", "caching"]);
        package["metadata"] = json!(null);
        let problems = publish_metadata_problems(&package).join("\n");
        for expected in [
            "no `description`",
            "no `readme`",
            "keyword \"Auth\"",
            "keyword \"a-keyword-longer-than-20\"",
            "keyword \"-dash\"",
            "category \"web\"",
            "all-features = true",
        ] {
            assert!(
                problems.contains(expected),
                "{expected} not in:\n{problems}"
            );
        }
        assert!(!problems.contains("caching"), "{problems}");
        package["keywords"] = json!(["a", "b", "c", "d", "e", "f"]);
        package["categories"] = json!([]);
        let problems = publish_metadata_problems(&package).join("\n");
        assert!(problems.contains("6 keywords"), "{problems}");
        assert!(problems.contains("0 categories"), "{problems}");
    }

    #[test]
    fn this_workspace_passes() {
        check_publish_metadata().unwrap();
    }
}
