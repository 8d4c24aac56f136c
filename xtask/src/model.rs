//! `cargo xtask model`: the loom model checks of the in-process coherence protocol
//! (`crates/core/src/model.rs`), which explore every interleaving of one fill against one
//! invalidation per kind of cached answer and print how many they explored.
//!
//! They need the whole crate graph built with `--cfg authcache_loom` (loom's atomics in
//! place of std's), so they build into their own target directory, `target/loom`, and
//! never invalidate the ordinary build. Release mode: loom runs each model hundreds of
//! thousands of times.

use anyhow::Result;

use crate::run::{cargo, exec, root};

/// Builds and runs the models.
///
/// # Errors
/// A failed build, or a model in which some interleaving served a stale value.
pub(crate) fn run() -> Result<()> {
    let target = root().join("target").join("loom");
    let target = target.to_string_lossy();
    exec(
        cargo(&[
            "test",
            "-p",
            "authcache-core",
            "--release",
            "--lib",
            "--target-dir",
            &target,
            "model::",
            "--",
            "--nocapture",
        ])
        .env("RUSTFLAGS", "--cfg authcache_loom"),
    )
}
