//! What each drill prints: per phase, the requests, cold ones among them, failures,
//! tolerated 503s and the slowest request; then the time to recover and the counters that
//! show what the fault did. `docs/reliability.md` is written from these lines.

use std::fmt;
use std::time::Duration;

use authcache::Stats;

use super::load::{LoadOutcome, Phase, TASKS};

/// One drill's figures, printed with `{}`.
pub(crate) struct DrillReport<'a> {
    pub(crate) drill: &'a str,
    pub(crate) injected: &'a str,
    /// From the fault's injection to the part being back.
    pub(crate) outage: Duration,
    /// From the part being back to [`Self::recovered_when`] observed.
    pub(crate) recovery: Duration,
    pub(crate) outcome: &'a LoadOutcome,
    /// What "recovered" meant for this drill.
    pub(crate) recovered_when: &'a str,
    /// The counters of the instance under load, at the end.
    pub(crate) stats: &'a Stats,
    /// Drill-specific figures, one line each.
    pub(crate) notes: &'a [String],
}

impl DrillReport<'_> {
    /// Prints the figures (shown with `--nocapture`), then fails the test on any request
    /// refused that the drill does not tolerate.
    pub(crate) fn print_and_check(&self) {
        println!("{self}");
        self.outcome.assert_no_failures();
    }
}

impl fmt::Display for DrillReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "fault drill: {} — {}", self.drill, self.injected)?;
        writeln!(
            f,
            "  {TASKS} tasks, a fresh token per request, one in four for a cold user"
        )?;
        writeln!(
            f,
            "  {:<7} {:>9} {:>7} {:>9} {:>6} {:>12}",
            "phase", "requests", "cold", "failures", "503s", "max latency"
        )?;
        let rows = Phase::ALL
            .map(|phase| (phase.name(), self.outcome.phase(phase)))
            .into_iter()
            .chain([("total", self.outcome.total())]);
        for (name, p) in rows {
            writeln!(
                f,
                "  {name:<7} {:>9} {:>7} {:>9} {:>6} {:>9.1} ms",
                p.requests,
                p.cold,
                p.failures,
                p.unavailable,
                p.max_latency.as_secs_f64() * 1e3
            )?;
        }
        writeln!(
            f,
            "  part down for {:.3} s; time to recover: {:.3} s ({})",
            self.outage.as_secs_f64(),
            self.recovery.as_secs_f64(),
            self.recovered_when
        )?;
        let s = self.stats;
        let breaker = s.breaker.unwrap_or_else(|| panic!("no breaker: {s:?}"));
        write!(
            f,
            "  counters: L2 errors {}, breaker opened {}x, revocations unchecked {}, \
             repository loads {}, unavailable {}, bus subscribed {:?}",
            s.l2_errors(),
            breaker.opened,
            s.unchecked,
            s.loads(),
            s.unavailable,
            s.bus_subscribed
        )?;
        for note in self.notes {
            write!(f, "\n  {note}")?;
        }
        Ok(())
    }
}
