//! Project automation, run as `cargo xtask <command>` (alias in `.cargo/config.toml`).
//!
//! - `ci [--repeat N]` — everything CI checks, provisioning the servers tests need when
//!   missing; `--repeat N` runs it N times in a row (the flake check).
//! - `bench [--quick]` — the benches, then the side-by-side table of ours vs the references,
//!   written to `target/bench-report.md`; `--quick` runs them shorter, for iteration.
//! - `model` — the loom model checks of the in-process coherence protocol (every
//!   interleaving of a fill against an invalidation; `cargo xtask ci` runs them).
//! - `services install|up|down` — install, start or stop throwaway servers for manual use.
//! - `soak [--seconds N] [--seed N] [--repeat N]` — the mixed workload with a Redis restart,
//!   on real servers: throughput, unexpected results, RSS growth after warm-up (default
//!   60 s). Each run prints its seed; `--seed N` replays that run's workload (not its
//!   timing); `--repeat N` runs it N times in a row, stopping at the first failure.

mod bench;
mod ci;
mod model;
mod run;
mod services;
mod soak;
#[cfg(test)]
mod tidy;

use anyhow::{Result, bail};

const USAGE: &str = "usage: cargo xtask <ci [--repeat N] | bench [--quick] | model | services install|up|down | soak [--seconds N] [--seed N] [--repeat N]>";

fn main() {
    if let Err(error) = dispatch() {
        eprintln!("xtask: {error:#}");
        std::process::exit(1);
    }
}

fn dispatch() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["ci", rest @ ..] => ci::run(ci::parse_repeat(rest)?),
        ["bench", rest @ ..] => bench::run(rest),
        ["model"] => model::run(),
        ["services", "install"] => services::install().map(|_| ()),
        ["services", "up"] => services::up(),
        ["services", "down"] => services::down(),
        ["soak", rest @ ..] => soak::run(rest),
        _ => bail!("{USAGE}"),
    }
}
