//! `cargo xtask bench`: runs the criterion benches, then prints each comparison side by
//! side — ours against the raw client measured in the same run — with its target ratio.
//!
//! A comparison is a criterion group holding exactly two functions, `raw` and `authcache`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::run::{cargo, exec, root};
use crate::services;

/// The ratio (ours / raw) each area promises, by group-name prefix.
const TARGETS: &[(&str, f64)] = &[
    ("redis_", 1.2),
    ("jwt_", 1.1),
    ("users_", 1.1),
    ("core_", 1.5),
];

/// Runs the benches (extra arguments go to criterion, e.g. a filter) and prints the table.
///
/// # Errors
/// When provisioning or a bench fails, or criterion wrote no results.
pub(crate) fn run(criterion_args: &[&str]) -> Result<()> {
    let tools = services::install()?;
    let mut args = vec!["bench", "-p", "authcache-benches", "--all-features", "--"];
    args.extend_from_slice(criterion_args);
    exec(tools.apply(&mut cargo(&args)))?;
    print_table(&criterion_dir())
}

fn criterion_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("criterion")
}

/// One row: a group with its two mean times in nanoseconds.
struct Comparison {
    group: String,
    raw_ns: f64,
    ours_ns: f64,
}

fn print_table(dir: &Path) -> Result<()> {
    let rows = comparisons(dir)?;
    println!(
        "\n{:<36} {:>12} {:>12} {:>7} {:>7}",
        "comparison", "raw", "authcache", "ratio", "target"
    );
    for row in &rows {
        let ratio = row.ours_ns / row.raw_ns;
        let target = TARGETS
            .iter()
            .find(|(prefix, _)| row.group.starts_with(prefix));
        let verdict = match target {
            Some((_, t)) if ratio <= *t => format!("≤{t:.1} ✓"),
            Some((_, t)) => format!("≤{t:.1} ✗"),
            None => "—".to_owned(),
        };
        println!(
            "{:<36} {:>12} {:>12} {:>6.2}x {:>7}",
            row.group,
            human(row.raw_ns),
            human(row.ours_ns),
            ratio,
            verdict
        );
    }
    Ok(())
}

fn comparisons(dir: &Path) -> Result<Vec<Comparison>> {
    let entries =
        fs::read_dir(dir).with_context(|| format!("no criterion results in {}", dir.display()))?;
    let mut rows = Vec::new();
    for entry in entries.flatten() {
        let group = entry.path();
        if let (Some(raw_ns), Some(ours_ns)) = (
            mean_ns(&group.join("raw")),
            mean_ns(&group.join("authcache")),
        ) {
            let group = entry.file_name().to_string_lossy().into_owned();
            rows.push(Comparison {
                group,
                raw_ns,
                ours_ns,
            });
        }
    }
    rows.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(rows)
}

fn mean_ns(function_dir: &Path) -> Option<f64> {
    let text = fs::read_to_string(function_dir.join("new/estimates.json")).ok()?;
    let estimates: serde_json::Value = serde_json::from_str(&text).ok()?;
    estimates.get("mean")?.get("point_estimate")?.as_f64()
}

fn human(ns: f64) -> String {
    match ns {
        ns if ns < 1e3 => format!("{ns:.1} ns"),
        ns if ns < 1e6 => format!("{:.2} µs", ns / 1e3),
        ns => format!("{:.2} ms", ns / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_estimate(dir: &Path, group: &str, function: &str, mean: f64) {
        let path = dir.join(group).join(function).join("new");
        fs::create_dir_all(&path).unwrap();
        let json = format!(r#"{{"mean":{{"point_estimate":{mean},"standard_error":1.0}}}}"#);
        fs::write(path.join("estimates.json"), json).unwrap();
    }

    #[test]
    fn pairs_raw_and_authcache_per_group_and_skips_singles() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
        write_estimate(&dir, "redis_get_hit", "raw", 100.0);
        write_estimate(&dir, "redis_get_hit", "authcache", 110.0);
        write_estimate(&dir, "jwt_fingerprint", "authcache", 50.0);
        let rows = comparisons(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].group, "redis_get_hit");
        assert!((rows[0].ours_ns / rows[0].raw_ns - 1.1).abs() < 1e-9);
    }

    #[test]
    fn human_units() {
        assert_eq!(human(12.34), "12.3 ns");
        assert_eq!(human(1_500.0), "1.50 µs");
        assert_eq!(human(2_500_000.0), "2.50 ms");
    }
}
