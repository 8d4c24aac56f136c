//! The report: throughput, answers by kind, mutations, the restart, the final checks and
//! RSS — and the verdict.

use std::time::{Duration, Instant};

use authcache::Stats;

use crate::args::Args;
use crate::chaos::RECOVERY_TIMEOUT;
use crate::judge::Seen;
use crate::memory::{
    Memory, RSS_GROWTH_LIMIT_PERCENT, RSS_JUDGED_FROM_SECONDS, RSS_RESTART_LIMIT_PERCENT, Sample,
    per_second,
};
use crate::model::{Timeline, lock};
use crate::probe::Probe;
use crate::seed::Seed;
use crate::tally::{Effect, Mutation, Tally};
use crate::workload::Ctx;

/// Everything the report needs.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) args: Args,
    pub(crate) setup: Duration,
    pub(crate) samples: Vec<Sample>,
    /// When the workload was told to stop.
    pub(crate) ended: Instant,
    pub(crate) stats: Stats,
    pub(crate) probe: Probe,
    pub(crate) redis_back: bool,
}

/// Pass or fail, and why.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    pub(crate) unexpected: u64,
    pub(crate) not_exercised: Vec<String>,
    pub(crate) rss_over_limit: bool,
}

impl Verdict {
    pub(crate) fn passed(&self) -> bool {
        self.unexpected == 0 && self.not_exercised.is_empty() && !self.rss_over_limit
    }
}

pub(crate) fn report(ctx: &Ctx, run: &Run) -> Verdict {
    let tally = &ctx.tally;
    let mut rows: Vec<(String, String)> = Vec::new();
    rows.extend(throughput_rows(ctx, run));
    rows.extend(answer_rows(tally));
    rows.extend(mutation_rows(tally));
    rows.extend(redis_rows(ctx, run));
    rows.extend(probe_rows(&run.probe));
    let timeline = &ctx.world.timeline;
    let since_start = |at: Option<&Instant>| at.map(|at| at.duration_since(timeline.start));
    let memory = Memory::of(
        &run.samples,
        run.args.warm_up(),
        since_start(timeline.kill_started.get()),
        since_start(timeline.recovered.get()),
    );
    rows.push(("RSS".into(), memory_row(memory, run.args)));
    let verdict = Verdict {
        unexpected: tally.unexpected(),
        not_exercised: not_exercised(ctx, run),
        rss_over_limit: run.args.judges_rss() && memory.is_none_or(|m| !m.within_limits()),
    };
    rows.push(("result".into(), verdict_row(&verdict, run.args.seed)));
    print_rows(&rows);
    let details = lock(&tally.details);
    if !details.is_empty() {
        println!("\n  first unexpected results:");
        for detail in details.iter() {
            println!("  - {detail}");
        }
    }
    // Last, so that a failing log ends with what replays it.
    println!(
        "\nsoak: {} with seed {} (replay: {})",
        if verdict.passed() { "PASS" } else { "FAIL" },
        run.args.seed,
        run.args.replay()
    );
    verdict
}

fn throughput_rows(ctx: &Ctx, run: &Run) -> Vec<(String, String)> {
    let total = ctx.tally.authentications();
    #[allow(clippy::cast_precision_loss)]
    let rate = total as f64 / run.args.duration().as_secs_f64();
    let mut seconds = per_second(&run.samples);
    seconds.sort_unstable();
    let pick = |at: usize| seconds.get(at).copied().unwrap_or(0);
    vec![
        ("set-up".into(), format!("{:.1?}", run.setup)),
        (
            "authentications".into(),
            format!("{total} in {} s: {rate:.0} /s", run.args.seconds),
        ),
        (
            "by phase".into(),
            phases(&ctx.world.timeline, total, run.ended),
        ),
        (
            "per second".into(),
            format!(
                "min {} / median {} / max {}",
                pick(0),
                pick(seconds.len() / 2),
                pick(seconds.len().saturating_sub(1))
            ),
        ),
    ]
}

/// Throughput before the kill, while Redis was away or unused, and after A used it again.
fn phases(timeline: &Timeline, total: u64, end: Instant) -> String {
    let (Some(&kill), Some(&at_kill)) =
        (timeline.kill_started.get(), timeline.answered_at_kill.get())
    else {
        return "Redis was not killed".into();
    };
    let rate = |count: u64, from: Instant, to: Instant| {
        count as f64 / to.saturating_duration_since(from).as_secs_f64().max(1e-3)
    };
    let before = rate(at_kill, timeline.start, kill);
    match (
        timeline.recovered.get(),
        timeline.answered_at_recovery.get(),
    ) {
        (Some(&back), Some(&at_back)) if back < end => format!(
            "{before:.0} /s before the kill, {:.0} /s from the kill until A used Redis again, {:.0} /s after",
            rate(at_back.saturating_sub(at_kill), kill, back),
            rate(total.saturating_sub(at_back), back, end),
        ),
        _ => format!(
            "{before:.0} /s before the kill, {:.0} /s after it (A did not use Redis again before the end)",
            rate(total.saturating_sub(at_kill), kill, end),
        ),
    }
}

fn answer_rows(tally: &Tally) -> Vec<(String, String)> {
    let expected: u64 = Seen::ALL
        .iter()
        .filter(|s| s.is_expected())
        .map(|&s| tally.count(s))
        .sum();
    let mut rows = vec![("expected answers".into(), expected.to_string())];
    for seen in Seen::ALL {
        let count = tally.count(seen);
        if seen.is_expected() || count > 0 {
            rows.push((format!("  {}", seen.label()), count.to_string()));
        }
    }
    rows
}

fn mutation_rows(tally: &Tally) -> Vec<(String, String)> {
    Mutation::ALL
        .iter()
        .map(|&mutation| {
            let [confirmed, in_outage, outside, failed] = tally.effects(mutation);
            let mut text = format!(
                "{confirmed} confirmed, {} refused by Redis ({in_outage} in the outage, {outside} outside it: L2 timeouts under load)",
                in_outage + outside
            );
            if failed > 0 {
                text.push_str(&format!(", {failed} FAILED"));
            }
            (mutation.label().to_owned(), text)
        })
        .collect()
}

fn redis_rows(ctx: &Ctx, run: &Run) -> Vec<(String, String)> {
    let timeline = &ctx.world.timeline;
    let stats = &run.stats;
    let breaker = stats.breaker.map_or("none".to_owned(), |b| {
        format!(
            "opened {} times, {} failures ({} timeouts), {} calls skipped",
            b.opened, b.failures, b.timeouts, b.rejected
        )
    });
    vec![
        (
            "Redis restart".into(),
            format!(
                "killed at {}, answering again at {}, used again by A at {}",
                timeline.seconds(timeline.kill_started.get()),
                timeline.seconds(timeline.restart_done.get()),
                timeline.seconds(timeline.recovered.get()),
            ),
        ),
        ("A: L2 breaker".into(), breaker),
        (
            "A: hit ratios".into(),
            format!(
                "L1 {:.1} %, L2 {:.1} %; {} repository loads, {} L2 errors, {} revocation checks unchecked (served, fail-open)",
                stats.l1_hit_ratio() * 100.0,
                stats.l2_hit_ratio() * 100.0,
                stats.loads(),
                stats.l2_errors(),
                stats.unchecked
            ),
        ),
    ]
}

fn probe_rows(probe: &Probe) -> Vec<(String, String)> {
    vec![
        (
            "revoked tokens re-checked".into(),
            format!(
                "{} after the run; A refused {}",
                probe.checked, probe.refused_by_a
            ),
        ),
        (
            "B: revoked after the kill".into(),
            format!(
                "refused {} of {} (marks A retried into the new Redis)",
                probe.must_refuse_refused, probe.must_refuse
            ),
        ),
        (
            "B: revoked before the kill".into(),
            format!(
                "refused {} of {}: their marks died with Redis' data and A wrote them back ({} overlapping the kill: either)",
                probe.lost - probe.lost_accepted,
                probe.lost,
                probe.either
            ),
        ),
    ]
}

fn memory_row(memory: Option<Memory>, args: Args) -> String {
    let Some(memory) = memory else {
        return "not measured (/proc/self/status has no VmRSS)".into();
    };
    let mib = |kib: u64| {
        #[allow(clippy::cast_precision_loss)]
        let mib = kib as f64 / 1024.0;
        mib
    };
    let judged = if args.judges_rss() {
        format!(
            "limits {RSS_GROWTH_LIMIT_PERCENT} % outside the restart, {RSS_RESTART_LIMIT_PERCENT} % across it"
        )
    } else {
        format!(
            "not judged: a {} s run is too short for RSS to be a reliable signal on a shared machine (judged from {RSS_JUDGED_FROM_SECONDS} s)",
            args.seconds
        )
    };
    let parts = memory.growth_parts().map_or(String::new(), |[before, across, after]| {
        format!("; of which {before:+.2} % until the kill, {across:+.2} % across the restart (kill to Redis used again), {after:+.2} % after")
    });
    format!(
        "{:.1} MiB after the warm-up ({:.0?}), {:.1} MiB at the end, peak {:.1} MiB: growth {:+.2} % ({judged}){parts}",
        mib(memory.at_warm_up_kib),
        memory.warm_up,
        mib(memory.at_end_kib),
        mib(memory.peak_kib),
        memory.growth_percent(),
    )
}

/// A run that did not do what it is for proves nothing: each of these fails it.
fn not_exercised(ctx: &Ctx, run: &Run) -> Vec<String> {
    let tally = &ctx.tally;
    let mut missing = Vec::new();
    for (seen, what) in [
        (Seen::Accepted, "no token was accepted with confirmed data"),
        (Seen::RefusedRevoked, "no revoked token was refused"),
        (Seen::UnknownUser, "no unknown user was refused"),
    ] {
        if tally.count(seen) == 0 {
            missing.push(what.to_owned());
        }
    }
    // Attempted, not confirmed: a change Redis refused is still a change made.
    for mutation in [
        Mutation::Logout,
        Mutation::LogoutAll,
        Mutation::UserRoles,
        Mutation::RolePermissions,
    ] {
        if tally.effects(mutation)[..Effect::Failed.index()]
            .iter()
            .sum::<u64>()
            == 0
        {
            missing.push(format!("no {} was made", mutation.label()));
        }
    }
    let confirmed_changes: u64 = [
        Mutation::UserRoles,
        Mutation::RolePermissions,
        Mutation::RetriedInvalidation,
    ]
    .iter()
    .map(|&m| tally.effects(m)[Effect::Confirmed.index()])
    .sum();
    if confirmed_changes == 0 {
        missing.push("no change of a record or a role was confirmed".into());
    }
    if run.stats.breaker.is_none_or(|b| b.failures == 0) {
        missing.push("A never saw Redis fail: the kill did not happen".into());
    }
    if !run.redis_back {
        missing.push(format!(
            "A did not use Redis again within {RECOVERY_TIMEOUT:?} of the restart"
        ));
    }
    if run.probe.must_refuse == 0 {
        missing.push("no token was revoked after the kill".into());
    }
    missing
}

fn verdict_row(verdict: &Verdict, seed: Seed) -> String {
    let mut reasons = Vec::new();
    if verdict.unexpected > 0 {
        reasons.push(format!("{} unexpected results", verdict.unexpected));
    }
    reasons.extend(verdict.not_exercised.iter().cloned());
    if verdict.rss_over_limit {
        reasons.push(format!(
            "RSS grew more than {RSS_GROWTH_LIMIT_PERCENT} % after the warm-up outside the \
             restart, or more than {RSS_RESTART_LIMIT_PERCENT} % across it"
        ));
    }
    if reasons.is_empty() {
        format!("PASS: 0 unexpected results (seed {seed})")
    } else {
        format!("FAIL: {} (seed {seed})", reasons.join("; "))
    }
}

fn print_rows(rows: &[(String, String)]) {
    let width = rows
        .iter()
        .map(|(key, _)| key.chars().count())
        .max()
        .unwrap_or(0);
    println!("\n  {:-<1$}", "", width + 60);
    for (key, value) in rows {
        println!("  {key:<width$}  {value}");
    }
    println!("  {:-<1$}", "", width + 60);
}
