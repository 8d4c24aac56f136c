//! Renders the report: a Markdown table with one line per row — figure, ours, reference,
//! ratio (ours / reference), target, met? — then the other raw-vs-authcache groups.

use std::fmt::Write;

use super::results::{Measured, Outcome, Results, Unit};
use super::rows::{ENTRY_BYTES, GROUP_TARGETS, HISTOGRAMS, ROWS, Row, Target};

/// The whole report.
pub(crate) fn render(results: &Results, quick: bool) -> String {
    let mut out = String::new();
    let mode = if quick {
        "quick run (`cargo xtask bench --quick`: short runs, noisier)"
    } else {
        "full run (`cargo xtask bench`)"
    };
    let _ = writeln!(
        out,
        "# authcache — side by side\n\n{mode}. Every ratio is ours / reference, both measured in the same run; † marks a figure left from an earlier run.\n"
    );
    let _ = writeln!(out, "| figure | ours | reference | ratio | target | met? |");
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for row in ROWS {
        let _ = writeln!(out, "{}", line(results, row));
    }
    let others = other_groups(results);
    if !others.is_empty() {
        let _ = writeln!(
            out,
            "\nOther comparisons (criterion groups `raw` vs `authcache`):\n"
        );
        let _ = writeln!(out, "| figure | ours | reference | ratio | target | met? |");
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for (group, ours, raw, target) in &others {
            let row = Row {
                figure: group,
                ours,
                reference: Some(raw),
                target: *target,
            };
            let _ = writeln!(out, "{}", line(results, &row));
        }
    }
    out.push_str(&histograms(results));
    out
}

/// Buckets looked up per histogram: 2^40 µs is some 12 days.
const BUCKETS: u32 = 40;
/// Characters of the longest bar.
const BAR: u64 = 40;

/// The [`HISTOGRAMS`] this run measured, in a text block: one line per log₂ bucket from the
/// first non-empty one to the last — bounds, count, and a bar scaled to the largest count.
fn histograms(results: &Results) -> String {
    let mut block = String::new();
    for (title, group) in HISTOGRAMS {
        let counts: Vec<(u32, u64)> = (0..BUCKETS)
            .filter_map(|k| {
                let count = results.measured(&format!("{group}/{k}"))?;
                Some((k, count.value as u64))
            })
            .collect();
        let (Some(&(first, _)), Some(&(last, _))) = (counts.first(), counts.last()) else {
            continue;
        };
        let total: u64 = counts.iter().map(|(_, n)| n).sum();
        let widest = counts.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
        let _ = writeln!(block, "{title} (n = {total})");
        for k in first..=last {
            let count = counts.iter().find(|(b, _)| *b == k).map_or(0, |(_, n)| *n);
            // Bucket k is [2^k, 2^(k+1)) µs; bucket 0 also holds what took under 1 µs.
            let micros = |k: u32| 1e3 * f64::from(k).exp2();
            let lower = if k == 0 {
                "0".to_owned()
            } else {
                human_time(micros(k))
            };
            let upper = human_time(micros(k + 1));
            let bar = "#".repeat(count.saturating_mul(BAR).div_ceil(widest) as usize);
            let _ = writeln!(block, "  [{lower:>9}, {upper:>9})  {count:>6}  {bar}");
        }
        block.push('\n');
    }
    if block.is_empty() {
        return block;
    }
    format!(
        "\nPropagation across 3 instances: time from the call returning on one instance until \
         every other one answers the change, count per log₂ bucket:\n\n```text\n{}\n```\n",
        block.trim_end()
    )
}

/// Raw-vs-authcache groups no row of [`ROWS`] shows: `(group, ours id, raw id, target)`.
fn other_groups(results: &Results) -> Vec<(String, String, String, Target)> {
    let shown = |id: &str| {
        ROWS.iter()
            .any(|row| row.ours == id || row.reference == Some(id))
    };
    results
        .raw_vs_authcache_groups()
        .into_iter()
        .map(|group| {
            let target = GROUP_TARGETS
                .iter()
                .find(|(prefix, _)| group.starts_with(prefix))
                .map_or(Target::None, |(_, t)| Target::RatioAtMost(*t));
            let (ours, raw) = (format!("{group}/authcache"), format!("{group}/raw"));
            (group.to_owned(), ours, raw, target)
        })
        .filter(|(_, ours, _, _)| !shown(ours))
        .collect()
}

fn line(results: &Results, row: &Row) -> String {
    let figure = figure_text(results, row.figure);
    let ours = results.get(row.ours);
    let reference = row.reference.map(|id| results.get(id));
    let cells = match (ours, reference) {
        (Some(Outcome::Measured(ours)), None) => [
            show(ours),
            "—".into(),
            "—".into(),
            target_text(row.target),
            verdict(row.target, ours, None),
        ],
        (Some(Outcome::Measured(ours)), Some(Some(Outcome::Measured(reference)))) => {
            let ratio = ours.value / reference.value;
            [
                show(ours),
                show(reference),
                format!("{ratio:.2}×"),
                target_text(row.target),
                verdict(row.target, ours, Some(ratio)),
            ]
        }
        _ => {
            let why = missing(ours).or_else(|| reference.and_then(missing));
            let why = why.unwrap_or_else(|| "not measured in this run".into());
            [
                why,
                "—".into(),
                "—".into(),
                target_text(row.target),
                "—".into(),
            ]
        }
    };
    format!("| {figure} | {} |", cells.join(" | "))
}

fn figure_text(results: &Results, figure: &str) -> String {
    let (placeholder, id) = ENTRY_BYTES;
    match results.measured(id) {
        Some(size) if figure.contains(placeholder) => {
            figure.replace(placeholder, &format!("{:.0}", size.value))
        }
        _ => figure.replace(placeholder, "<entry size>"),
    }
}

fn missing(outcome: Option<&Outcome>) -> Option<String> {
    match outcome {
        Some(Outcome::Missing(reason)) => Some(format!("not measured: {reason}")),
        Some(Outcome::Measured(_)) => None,
        None => Some("not measured in this run".into()),
    }
}

fn target_text(target: Target) -> String {
    match target {
        Target::None => "—".into(),
        Target::RatioAtMost(t) => format!("≤ {t}×"),
        Target::RatioAtLeast(t) => format!("≥ {t}×"),
        Target::AtMost(t) => format!("≤ {t}"),
    }
}

fn verdict(target: Target, ours: &Measured, ratio: Option<f64>) -> String {
    let met = match (target, ratio) {
        (Target::None, _) => return "—".into(),
        (Target::RatioAtMost(t), Some(ratio)) => ratio <= t,
        (Target::RatioAtLeast(t), Some(ratio)) => ratio >= t,
        (Target::AtMost(t), _) => ours.value <= t,
        (_, None) => return "—".into(),
    };
    if met { "yes".into() } else { "**no**".into() }
}

fn show(measured: &Measured) -> String {
    let value = match measured.unit {
        Unit::Nanos => human_time(measured.value),
        Unit::PerSecond => human_rate(measured.value),
        Unit::Bytes => format!("{:.0} B", measured.value),
        Unit::Count => format!("{:.0}", measured.value),
    };
    if measured.fresh {
        value
    } else {
        format!("{value} †")
    }
}

fn human_time(ns: f64) -> String {
    match ns {
        ns if ns < 1e3 => format!("{ns:.1} ns"),
        ns if ns < 1e6 => format!("{:.2} µs", ns / 1e3),
        ns => format!("{:.2} ms", ns / 1e6),
    }
}

fn human_rate(per_second: f64) -> String {
    match per_second {
        r if r < 1e3 => format!("{r:.0} /s"),
        r if r < 1e6 => format!("{:.1} k/s", r / 1e3),
        r => format!("{:.2} M/s", r / 1e6),
    }
}

#[cfg(test)]
mod tests;
