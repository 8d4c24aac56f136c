//! `cargo xtask ci`: fmt → clippy → tests (all features, then default features) → the loom
//! models of the coherence protocol (`cargo xtask model`) → a 15 s soak (`cargo xtask soak`,
//! with a fresh seed, printed) → docs → per-feature checks. The servers the tests need are
//! provisioned first.
//!
//! `cargo xtask ci --repeat N` runs the whole sequence N times in a row and stops at the
//! first failure: the proof that no test depends on luck. Run it beside a CPU hog (one
//! `yes > /dev/null` per core) to prove it under starvation too.

use std::time::Instant;

use anyhow::{Context, Result, bail};

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
