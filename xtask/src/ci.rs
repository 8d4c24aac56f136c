//! `cargo xtask ci`: fmt → clippy → tests (all features, then default features) → docs →
//! per-feature checks. The servers the tests need are provisioned first.

use anyhow::Result;

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
            "metrics",
        ],
    ),
    ("authcache-core", &["", "mock", "postcard"]),
    ("authcache-redis", &["", "cluster"]),
    ("authcache-users", &["", "mongodb", "mock"]),
];

/// Runs every check CI runs, stopping at the first failure.
///
/// # Errors
/// The first step that failed, in one line.
pub(crate) fn run() -> Result<()> {
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
