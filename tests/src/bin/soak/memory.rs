//! Once-a-second samples of RSS and of the answers so far: RSS growth after warm-up, and
//! throughput per second.

use std::time::Duration;

use crate::workload::Ctx;

/// RSS growth after warm-up, outside the Redis restart, that fails a run long enough to
/// judge it: a leak is growth that goes on while nothing changes.
pub(crate) const RSS_GROWTH_LIMIT_PERCENT: f64 = 5.0;
/// RSS growth across the Redis restart (kill to Redis used again) that fails a run. The
/// outage grows the working set once — marks held until Redis takes them, answers kept in
/// L1 only, requests queued behind the repository — and the allocator keeps those pages;
/// the same seed grew 4.7–5.4 % there (`--seed 11594144716567301703`) before and after
/// the changes of issue 20, so this is a bound on a one-time step, not a leak detector.
pub(crate) const RSS_RESTART_LIMIT_PERCENT: f64 = 15.0;
/// Shortest run whose RSS growth is judged: shorter runs on a shared machine are too
/// short for RSS to be a reliable signal.
pub(crate) const RSS_JUDGED_FROM_SECONDS: u64 = 60;

/// One second's sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    pub(crate) at: Duration,
    pub(crate) rss_kib: Option<u64>,
    pub(crate) authentications: u64,
}

/// `VmRSS` of this process, in KiB (exact, unlike `statm`'s pages, whose size the
/// standard library cannot ask for without `unsafe`).
fn rss_kib() -> Option<u64> {
    parse_vm_rss(&std::fs::read_to_string("/proc/self/status").ok()?)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?;
    line.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// Samples once a second, on the second, from 0 to the end of the run inclusive.
pub(crate) async fn sample_until_the_end(ctx: &Ctx, duration: Duration) -> Vec<Sample> {
    let start = ctx.world.timeline.start;
    let seconds = duration.as_secs();
    let mut samples = Vec::with_capacity(usize::try_from(seconds + 1).unwrap_or(0));
    for second in 0..=seconds {
        tokio::time::sleep_until((start + Duration::from_secs(second)).into()).await;
        samples.push(Sample {
            at: start.elapsed(),
            rss_kib: rss_kib(),
            authentications: ctx.tally.authentications(),
        });
    }
    samples
}

/// RSS at the end of the warm-up and at the end (the judged growth), and around the
/// restart: the last sample before the kill and the first after Redis was used again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Memory {
    pub(crate) warm_up: Duration,
    pub(crate) at_warm_up_kib: u64,
    pub(crate) at_end_kib: u64,
    pub(crate) peak_kib: u64,
    /// `(before the kill, after Redis was used again)`, when both fall after the warm-up.
    pub(crate) around_restart_kib: Option<(u64, u64)>,
}

impl Memory {
    /// `kill` and `back` are when Redis was killed and used again, from the run's start.
    pub(crate) fn of(
        samples: &[Sample],
        warm_up: Duration,
        kill: Option<Duration>,
        back: Option<Duration>,
    ) -> Option<Self> {
        let at_warm_up_kib = samples.iter().find(|s| s.at >= warm_up)?.rss_kib?;
        let at_end_kib = samples.last()?.rss_kib?;
        let peak_kib = samples.iter().filter_map(|s| s.rss_kib).max()?;
        let around_restart_kib = kill.zip(back).and_then(|(kill, back)| {
            let before = samples
                .iter()
                .rev()
                .find(|s| s.at >= warm_up && s.at < kill)?;
            let after = samples.iter().find(|s| s.at >= back)?;
            before.rss_kib.zip(after.rss_kib)
        });
        Some(Self {
            warm_up,
            at_warm_up_kib,
            at_end_kib,
            peak_kib,
            around_restart_kib,
        })
    }

    /// From the end of the warm-up to the end.
    pub(crate) fn growth_percent(&self) -> f64 {
        self.percent_of_warm(self.at_warm_up_kib, self.at_end_kib)
    }

    /// Whether the run stayed within the limits: the growth outside the restart (until the
    /// kill, and after Redis was used again) within [`RSS_GROWTH_LIMIT_PERCENT`], the step
    /// across it within [`RSS_RESTART_LIMIT_PERCENT`]; without a restart to split on, the
    /// whole growth within the first.
    pub(crate) fn within_limits(&self) -> bool {
        match self.growth_parts() {
            Some([before, across, after]) => {
                before + after <= RSS_GROWTH_LIMIT_PERCENT && across <= RSS_RESTART_LIMIT_PERCENT
            }
            None => self.growth_percent() <= RSS_GROWTH_LIMIT_PERCENT,
        }
    }

    /// The judged growth split in three: until the kill, across the restart (kill to Redis
    /// used again), and after.
    pub(crate) fn growth_parts(&self) -> Option<[f64; 3]> {
        let (before, after) = self.around_restart_kib?;
        Some([
            self.percent_of_warm(self.at_warm_up_kib, before),
            self.percent_of_warm(before, after),
            self.percent_of_warm(after, self.at_end_kib),
        ])
    }

    #[allow(clippy::cast_precision_loss)]
    fn percent_of_warm(&self, from_kib: u64, to_kib: u64) -> f64 {
        let warm = self.at_warm_up_kib.max(1) as f64;
        (to_kib as f64 - from_kib as f64) / warm * 100.0
    }
}

/// Authentications per second, over each second of the run.
pub(crate) fn per_second(samples: &[Sample]) -> Vec<u64> {
    samples
        .windows(2)
        .map(|pair| {
            pair[1]
                .authentications
                .saturating_sub(pair[0].authentications)
        })
        .collect()
}

#[cfg(test)]
mod tests;
