//! The soak's command line, and the durations of the run derived from it.

use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::memory::RSS_JUDGED_FROM_SECONDS;
use crate::seed::Seed;

/// Shortest warm-up, whatever the run length.
const MIN_WARM_UP: Duration = Duration::from_secs(5);

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Args {
    pub(crate) seconds: u64,
    pub(crate) users: usize,
    pub(crate) tasks: usize,
    pub(crate) mutations_per_second: u32,
    /// `--seed`, or a fresh one: every random choice of the run derives from it.
    pub(crate) seed: Seed,
}

const USAGE: &str = "usage: soak [--seconds N (60)] [--users N (1000)] [--tasks N (32)] [--mutations PER_SECOND (25)] [--seed N (fresh)]";

/// Shortest run: a warm-up, a kill, an outage and a recovery need a few seconds.
const MIN_SECONDS: u64 = 4;

impl Args {
    /// The defaults, with `seed`.
    pub(crate) fn defaults(seed: Seed) -> Self {
        Self {
            seconds: 60,
            users: 1000,
            tasks: 32,
            mutations_per_second: 25,
            seed,
        }
    }

    /// Parses the command line; without `--seed`, the seed is fresh.
    pub(crate) fn parse(mut words: impl Iterator<Item = String>) -> Result<Self> {
        let mut args = Self::defaults(Seed::fresh());
        while let Some(flag) = words.next() {
            let value = words
                .next()
                .with_context(|| format!("{flag} wants a value; {USAGE}"))?;
            let number: u64 = value
                .parse()
                .with_context(|| format!("{flag} wants a whole number, got {value:?}"))?;
            match flag.as_str() {
                "--seconds" => args.seconds = number,
                "--users" => args.users = usize::try_from(number)?,
                "--tasks" => args.tasks = usize::try_from(number)?,
                "--mutations" => args.mutations_per_second = u32::try_from(number)?,
                "--seed" => args.seed = Seed(number),
                _ => bail!("unknown argument {flag:?}; {USAGE}"),
            }
        }
        if args.seconds < MIN_SECONDS || args.users == 0 || args.tasks == 0 {
            bail!("--seconds must be at least {MIN_SECONDS}, --users and --tasks at least 1");
        }
        if args.mutations_per_second == 0 {
            bail!("--mutations must be at least 1 per second");
        }
        Ok(args)
    }

    pub(crate) fn duration(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }

    /// The first third of the run, at least [`MIN_WARM_UP`] (but never past the end).
    pub(crate) fn warm_up(&self) -> Duration {
        (self.duration() / 3).max(MIN_WARM_UP).min(self.duration())
    }

    /// When Redis is killed: halfway.
    pub(crate) fn kill_at(&self) -> Duration {
        self.duration() / 2
    }

    /// How long Redis stays down: a tenth of the run, between 0.5 s and 2 s.
    pub(crate) fn outage(&self) -> Duration {
        (self.duration() / 10).clamp(Duration::from_millis(500), Duration::from_secs(2))
    }

    pub(crate) fn judges_rss(&self) -> bool {
        self.seconds >= RSS_JUDGED_FROM_SECONDS
    }

    /// The command that replays this run's workload: `cargo xtask soak` when only the length
    /// and the seed differ from the defaults, else this binary with every argument.
    pub(crate) fn replay(&self) -> String {
        let Self { seconds, seed, .. } = *self;
        let only_length_and_seed = Self {
            seconds,
            ..Self::defaults(seed)
        };
        if *self == only_length_and_seed {
            format!("cargo xtask soak --seconds {seconds} --seed {seed}")
        } else {
            format!(
                "soak --seconds {seconds} --users {} --tasks {} --mutations {} --seed {seed}",
                self.users, self.tasks, self.mutations_per_second
            )
        }
    }
}

#[cfg(test)]
mod tests;
