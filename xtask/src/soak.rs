//! `cargo xtask soak [--seconds N]`: the mixed workload of `tests/src/bin/soak/` — Zipf
//! authentications, logouts, `logout_all`, role changes, a Redis restart halfway — on a
//! real redis-server and SecantusDB, with throughput, unexpected results and RSS growth
//! after warm-up. Fails on any unexpected result (and on RSS growth above 5 % in runs of
//! 60 s or more). `cargo xtask ci` runs it for [`CI_SECONDS`].
//!
//! The binary is built with exactly the flags and features of CI's
//! `cargo test --workspace --all-features` (which builds the bins of the package whose
//! integration tests it runs), so that after the tests nothing is compiled again.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::run::{cargo, exec, root};
use crate::services::{self, Tools};

/// How long the soak runs without `--seconds`.
const DEFAULT_SECONDS: u64 = 60;

/// How long the soak runs in `cargo xtask ci`: long enough for a warm-up, a Redis restart
/// and its recovery; too short for RSS growth to be judged (the soak says so).
pub(crate) const CI_SECONDS: u64 = 15;

/// Provisions the servers, builds the soak and runs it.
///
/// # Errors
/// A bad argument, a tool that cannot be installed, a failed build, or a failed soak.
pub(crate) fn run(args: &[&str]) -> Result<()> {
    let seconds = parse_seconds(args)?;
    let tools = services::install()?;
    run_with(&tools, seconds)
}

/// Builds the soak and runs it for `seconds` with the tools already provisioned.
///
/// # Errors
/// A failed build, or a soak that reported unexpected results.
pub(crate) fn run_with(tools: &Tools, seconds: u64) -> Result<()> {
    let soak = build()?;
    let seconds = seconds.to_string();
    let mut command = Command::new(soak);
    command.args(["--seconds", &seconds]).current_dir(root());
    exec(tools.apply(&mut command))
}

/// Parses `--seconds N` (default [`DEFAULT_SECONDS`]).
///
/// # Errors
/// When N is not a positive number.
pub(crate) fn parse_seconds(args: &[&str]) -> Result<u64> {
    match args {
        [] => Ok(DEFAULT_SECONDS),
        ["--seconds", n] => match n.parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => bail!("--seconds wants a positive number, got {n:?}"),
        },
        _ => bail!("usage: cargo xtask soak [--seconds N]"),
    }
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
mod tests {
    use super::*;

    #[test]
    fn seconds_default_to_a_minute_and_must_be_positive() {
        assert_eq!(parse_seconds(&[]).unwrap(), 60);
        assert_eq!(parse_seconds(&["--seconds", "15"]).unwrap(), 15);
        assert!(parse_seconds(&["--seconds", "0"]).is_err());
        assert!(parse_seconds(&["--seconds", "x"]).is_err());
        assert!(parse_seconds(&["15"]).is_err());
    }

    #[test]
    fn the_soak_executable_is_found_among_cargos_messages() {
        let messages = [
            r#"{"reason":"compiler-artifact","target":{"name":"soak","kind":["bin"]},"profile":{"test":true},"executable":"/t/debug/deps/soak-1"}"#,
            r#"{"reason":"compiler-artifact","target":{"name":"soak","kind":["bin"]},"profile":{"test":false},"executable":"/t/debug/soak"}"#,
            r#"{"reason":"compiler-artifact","target":{"name":"soak","kind":["bin"]},"profile":{"test":false},"executable":null}"#,
            r#"{"reason":"compiler-artifact","target":{"name":"coherence","kind":["test"]},"executable":"/t/debug/deps/coherence-1"}"#,
            "not json",
        ];
        assert_eq!(
            soak_executable(&messages.join("\n")),
            Some(PathBuf::from("/t/debug/soak"))
        );
        assert_eq!(soak_executable(&messages[2..].join("\n")), None);
    }
}
