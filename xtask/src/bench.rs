//! `cargo xtask bench [--quick] [FILTER]`: runs the criterion benches and the `figures`
//! bench, then writes the side-by-side table — figure, ours, reference, ratio, target,
//! met? — to `target/bench-report.md` and prints it. Every row pairs two things measured
//! in the same run; `--quick` gives the same table with shorter runs, for iteration.
//!
//! Sources of the table: criterion's `target/criterion/<group>/<function>/new/estimates.json`
//! (mean time) and the figures file the `figures` bench appends to (throughput, bytes,
//! RSS, counts, percentiles). Rows are listed in [`rows`]; any other criterion group with
//! exactly the functions `raw` and `authcache` is appended as a comparison of its own.

mod report;
mod results;
mod rows;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

use crate::run::{cargo, exec, on_path, root};
use crate::services;

/// Read by the benches (`authcache_benches::QUICK_ENV`): shorter runs.
const QUICK_ENV: &str = "AUTHCACHE_BENCH_QUICK";
/// Read by the benches (`authcache_benches::figures::FIGURES_ENV`): where figures go.
const FIGURES_ENV: &str = "AUTHCACHE_BENCH_FIGURES";
/// Read by the `figures` bench: the quickstart binary to time end to end.
const QUICKSTART_ENV: &str = "AUTHCACHE_QUICKSTART_BIN";

/// Runs the benches (`--quick`: shorter; other arguments go to every bench, e.g. a filter),
/// then writes and prints the report — also when a bench failed, which is then the error.
///
/// # Errors
/// When provisioning, a build or a bench fails, or the report cannot be written.
pub(crate) fn run(args: &[&str]) -> Result<()> {
    let quick = args.contains(&"--quick");
    let bench_args: Vec<&str> = args.iter().copied().filter(|a| *a != "--quick").collect();
    let tools = services::install()?;
    // The references' load generators: `redis-benchmark` for the L2 throughput row, `wrk`
    // for the proxy rows.
    install_apt_tool("redis-benchmark", "redis-tools")?;
    install_apt_tool("wrk", "wrk")?;
    let target = target_dir();
    let quickstart = build_quickstart(&target)?;
    let figures = target.join("bench-figures.jsonl");
    if figures.exists() {
        fs::remove_file(&figures).with_context(|| format!("removing {}", figures.display()))?;
    }
    let started = SystemTime::now();
    let mut cargo_args = vec![
        "bench",
        "-p",
        "authcache-benches",
        "--all-features",
        "--no-fail-fast",
        "--",
    ];
    cargo_args.extend_from_slice(&bench_args);
    let mut command = cargo(&cargo_args);
    tools
        .apply(&mut command)
        .env(FIGURES_ENV, &figures)
        .env(QUICKSTART_ENV, &quickstart);
    if quick {
        command.env(QUICK_ENV, "1");
    }
    let benched = exec(&mut command);
    let results = results::Results::load(&target.join("criterion"), &figures, started)?;
    let report = report::render(&results, quick);
    let path = target.join("bench-report.md");
    fs::write(&path, &report).with_context(|| format!("writing {}", path.display()))?;
    println!("\n{report}\nwritten to {}", path.display());
    benched
}

/// `$CARGO_TARGET_DIR` (relative to the workspace root when relative), else `target/`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// Builds the quickstart in release (the bench profile: release with line tables) with
/// Redis and MongoDB compiled in; returns the binary.
fn build_quickstart(target: &Path) -> Result<PathBuf> {
    exec(&mut cargo(&[
        "build",
        "--profile",
        "bench",
        "-p",
        "authcache",
        "--example",
        "quickstart",
        "--features",
        "redis,mongodb",
    ]))?;
    let binary = target.join("release/examples/quickstart");
    if !binary.is_file() {
        bail!(
            "the quickstart was built but {} is missing",
            binary.display()
        );
    }
    Ok(binary)
}

/// Installs the Debian `package` that provides `program` when it is not on the path (as
/// root; otherwise fails with the command to run).
fn install_apt_tool(program: &str, package: &str) -> Result<()> {
    if on_path(program) {
        return Ok(());
    }
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    if !root_user {
        bail!("{program} missing: run `sudo apt-get install -y {package}`");
    }
    exec(Command::new("apt-get").args(["update", "-q"]))?;
    exec(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}
