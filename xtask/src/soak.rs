//! `cargo xtask soak [--seconds N] [--seed N] [--repeat N]`: the mixed workload of
//! `tests/src/bin/soak/` — Zipf authentications, logouts, `logout_all`, role changes, a Redis
//! restart halfway — on a real redis-server and SecantusDB, with throughput, unexpected
//! results and RSS growth after warm-up. Fails on any unexpected result (and on RSS growth
//! above 5 % in runs of 60 s or more). `cargo xtask ci` runs it once for [`CI_SECONDS`].
//!
//! Every run has a seed, printed with the run and in the error of a failed one: `--seed N`
//! replays that run's workload (the choices each task makes; not the interleaving, which
//! timing decides). `--repeat N` runs the soak N times in a row — each with a fresh seed, or
//! N times with `--seed` — and stops at the first failure.
//!
//! The binary is built with exactly the flags and features of CI's
//! `cargo test --workspace --all-features` (which builds the bins of the package whose
//! integration tests it runs), so that after the tests nothing is compiled again.

use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result, bail};

use crate::run::{cargo, exec, root};
use crate::services::{self, Tools};

/// How long the soak runs without `--seconds`.
const DEFAULT_SECONDS: u64 = 60;

/// How long the soak runs in `cargo xtask ci`: long enough for a warm-up, a Redis restart
/// and its recovery; too short for RSS growth to be judged (the soak says so).
const CI_SECONDS: u64 = 15;

const USAGE: &str =
    "usage: cargo xtask soak [--seconds N (60)] [--seed N (fresh)] [--repeat N (1)]";

/// What to run: how long, with which seed, how many times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Soak {
    pub(crate) seconds: u64,
    /// The seed of every run; `None`: a fresh one for each.
    pub(crate) seed: Option<u64>,
    pub(crate) repeat: usize,
}

impl Default for Soak {
    fn default() -> Self {
        Self {
            seconds: DEFAULT_SECONDS,
            seed: None,
            repeat: 1,
        }
    }
}

impl Soak {
    /// `cargo xtask ci`'s soak: one run of [`CI_SECONDS`] with a fresh seed.
    pub(crate) fn ci() -> Self {
        Self {
            seconds: CI_SECONDS,
            ..Self::default()
        }
    }

    /// Parses `[--seconds N] [--seed N] [--repeat N]`, in any order.
    ///
    /// # Errors
    /// An unknown flag, a flag without a value, a length or a count that is not a positive
    /// number, or a seed that is not a whole number below 2^64.
    pub(crate) fn parse(args: &[&str]) -> Result<Self> {
        let mut soak = Self::default();
        let mut words = args.iter();
        while let Some(&flag) = words.next() {
            let Some(&value) = words.next() else {
                bail!("{flag} wants a value; {USAGE}");
            };
            match flag {
                "--seconds" => soak.seconds = positive(flag, value)?,
                "--repeat" => soak.repeat = usize::try_from(positive(flag, value)?)?,
                "--seed" => {
                    soak.seed = Some(value.parse().with_context(|| {
                        format!("--seed wants a whole number below 2^64, got {value:?}")
                    })?);
                }
                _ => bail!("unknown argument {flag:?}; {USAGE}"),
            }
        }
        Ok(soak)
    }

    /// The command that replays the run of `seed`.
    fn replay(&self, seed: u64) -> String {
        format!("cargo xtask soak --seconds {} --seed {seed}", self.seconds)
    }
}

fn positive(flag: &str, value: &str) -> Result<u64> {
    match value.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("{flag} wants a positive number, got {value:?}"),
    }
}

/// A seed no earlier run chose: std's per-process random hash keys (from the operating
/// system) over the time.
fn fresh_seed() -> u64 {
    RandomState::new().hash_one(SystemTime::now())
}

/// Provisions the servers, builds the soak and runs it.
///
/// # Errors
/// A bad argument, a tool that cannot be installed, a failed build, or a failed soak.
pub(crate) fn run(args: &[&str]) -> Result<()> {
    let soak = Soak::parse(args)?;
    let tools = services::install()?;
    run_with(&tools, &soak)
}

/// Builds the soak once and runs it `soak.repeat` times with the tools already provisioned,
/// stopping at the first failure; prints each run's seed, time and verdict, then all times.
///
/// # Errors
/// A failed build, or a soak that failed: the error names the run and its seed.
pub(crate) fn run_with(tools: &Tools, soak: &Soak) -> Result<()> {
    let executable = build()?;
    let repeat = soak.repeat;
    let mut times = Vec::with_capacity(repeat);
    for attempt in 1..=repeat {
        let seed = soak.seed.unwrap_or_else(fresh_seed);
        println!("\nxtask soak: run {attempt} of {repeat}, seed {seed}");
        let started = Instant::now();
        let outcome = run_once(tools, &executable, soak.seconds, seed);
        let took = started.elapsed();
        let verdict = if outcome.is_ok() { "PASS" } else { "FAIL" };
        println!("xtask soak: run {attempt} of {repeat}, seed {seed}: {verdict} in {took:.0?}");
        outcome.with_context(|| {
            format!(
                "soak run {attempt} of {repeat} failed with seed {seed} (replay: {})",
                soak.replay(seed)
            )
        })?;
        times.push(took);
    }
    if repeat > 1 {
        println!("xtask soak: {repeat} runs passed: {times:.0?}");
    }
    Ok(())
}

fn run_once(tools: &Tools, executable: &Path, seconds: u64, seed: u64) -> Result<()> {
    let (seconds, seed) = (seconds.to_string(), seed.to_string());
    let mut command = Command::new(executable);
    command
        .args(["--seconds", &seconds, "--seed", &seed])
        .current_dir(root());
    exec(tools.apply(&mut command))
}

/// Builds the soak binary as the tests build it, and returns its path (from cargo's own
/// report, so a custom target directory is honoured).
fn build() -> Result<PathBuf> {
    let mut command = cargo(&[
        "test",
        "--workspace",
        "--all-features",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    println!(
        "\n$ cargo test --workspace --all-features --no-run (builds the soak as the tests do)"
    );
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .context("cannot start cargo")?;
    if !output.status.success() {
        bail!("building the soak failed ({})", output.status);
    }
    soak_executable(&String::from_utf8_lossy(&output.stdout))
        .context("cargo built no `soak` binary (is the `soak` feature of authcache-tests gone?)")
}

/// The executable of the `soak` bin target in cargo's JSON messages.
fn soak_executable(messages: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == "soak")
        // Not the unit-test harness of the same file.
        .filter(|message| message["profile"]["test"] == false)
        .filter(|message| {
            message["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bin"))
        })
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
}

#[cfg(test)]
mod tests;
