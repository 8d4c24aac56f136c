//! Renders the report: a Markdown table with one line per row — figure, ours, reference,
//! ratio (ours / reference), target, met? — then the other raw-vs-authcache groups.

use std::fmt::Write;

use super::results::{Measured, Outcome, Results, Unit};
use super::rows::{ENTRY_BYTES, GROUP_TARGETS, ROWS, Row, Target};

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
    out
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
mod tests {
    use super::*;

    /// The figures file `lines`, loaded; each call writes a file of its own, since tests
    /// run in parallel.
    fn results(lines: &str) -> Results {
        static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("xtask-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let figures = dir.join(format!("{n}.jsonl"));
        std::fs::write(&figures, lines).unwrap();
        let loaded = Results::load(&dir.join("none"), &figures, std::time::SystemTime::now());
        std::fs::remove_file(&figures).unwrap();
        loaded.unwrap()
    }

    #[test]
    fn a_row_shows_both_values_their_ratio_and_whether_the_target_is_met() {
        let results = results(concat!(
            r#"{"id":"l2/authcache","value":95000.0,"unit":"ops/s"}"#,
            "\n",
            r#"{"id":"l2/reference","value":100000.0,"unit":"ops/s"}"#,
        ));
        let row = Row {
            figure: "L2 throughput",
            ours: "l2/authcache",
            reference: Some("l2/reference"),
            target: Target::RatioAtLeast(0.9),
        };
        assert_eq!(
            line(&results, &row),
            "| L2 throughput | 95.0 k/s | 100.0 k/s | 0.95× | ≥ 0.9× | yes |"
        );
        let stricter = Row {
            target: Target::RatioAtLeast(1.0),
            ..row
        };
        assert!(line(&results, &stricter).ends_with("| ≥ 1× | **no** |"));
    }

    #[test]
    fn a_row_without_its_figures_says_why() {
        let results = results(r#"{"id":"quickstart/redis","missing":"no binary"}"#);
        let row = Row {
            figure: "quickstart",
            ours: "quickstart/redis",
            reference: None,
            target: Target::None,
        };
        assert_eq!(
            line(&results, &row),
            "| quickstart | not measured: no binary | — | — | — | — |"
        );
        let absent = Row {
            ours: "nothing/here",
            ..row
        };
        assert!(line(&results, &absent).contains("not measured in this run"));
    }

    #[test]
    fn counts_are_checked_against_their_own_bound() {
        let results = results(concat!(
            r#"{"id":"cold/authcache","value":1.0,"unit":"count"}"#,
            "\n",
            r#"{"id":"cold/hand_rolled","value":1000.0,"unit":"count"}"#,
        ));
        let row = Row {
            figure: "loads",
            ours: "cold/authcache",
            reference: Some("cold/hand_rolled"),
            target: Target::AtMost(1.0),
        };
        assert_eq!(
            line(&results, &row),
            "| loads | 1 | 1000 | 0.00× | ≤ 1 | yes |"
        );
    }

    #[test]
    fn human_units() {
        assert_eq!(human_time(12.34), "12.3 ns");
        assert_eq!(human_time(1_500.0), "1.50 µs");
        assert_eq!(human_time(2_500_000.0), "2.50 ms");
        assert_eq!(human_rate(950.0), "950 /s");
        assert_eq!(human_rate(123_400.0), "123.4 k/s");
        assert_eq!(human_rate(2_500_000.0), "2.50 M/s");
    }
}
