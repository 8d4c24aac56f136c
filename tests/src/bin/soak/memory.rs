//! Once-a-second samples of RSS and of the answers so far: RSS growth after warm-up, and
//! throughput per second.

use std::time::Duration;

use crate::workload::Ctx;

/// RSS growth after warm-up that fails a run long enough to judge it.
pub(crate) const RSS_GROWTH_LIMIT_PERCENT: f64 = 5.0;
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

    /// The judged figure: from the end of the warm-up to the end.
    pub(crate) fn growth_percent(&self) -> f64 {
        self.percent_of_warm(self.at_warm_up_kib, self.at_end_kib)
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
mod tests {
    use super::*;

    #[test]
    fn rss_growth_is_measured_from_the_end_of_the_warm_up() {
        let sample = |at: u64, rss: u64| Sample {
            at: Duration::from_secs(at),
            rss_kib: Some(rss),
            authentications: at * 10,
        };
        let samples = [
            sample(0, 50),
            sample(5, 100),
            sample(6, 101),
            sample(7, 120),
            sample(8, 103),
            sample(10, 104),
        ];
        let seconds = |s: u64| Some(Duration::from_secs(s));
        let memory = Memory::of(&samples, Duration::from_secs(5), seconds(7), seconds(8)).unwrap();
        assert_eq!(
            (memory.at_warm_up_kib, memory.at_end_kib, memory.peak_kib),
            (100, 104, 120)
        );
        assert!((memory.growth_percent() - 4.0).abs() < 1e-9);
        // 101 before the kill, 103 once Redis is used again.
        let parts = memory.growth_parts().unwrap();
        for (part, expected) in parts.into_iter().zip([1.0, 2.0, 1.0]) {
            assert!((part - expected).abs() < 1e-9, "{parts:?}");
        }
        // A kill inside the warm-up leaves nothing to split.
        let early = Memory::of(&samples, Duration::from_secs(5), seconds(2), seconds(8)).unwrap();
        assert_eq!(early.growth_parts(), None);
        assert_eq!(per_second(&samples), vec![50, 10, 10, 10, 20]);
        assert_eq!(
            parse_vm_rss("Name:\tsoak\nVmRSS:\t  123456 kB\n"),
            Some(123_456)
        );
        assert_eq!(parse_vm_rss("Name:\tsoak\n"), None);
    }
}
