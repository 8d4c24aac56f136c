//! The figures file: one JSON object per line, `{"id", "value", "unit"}`, appended as each
//! figure is measured (so a run that fails midway keeps what it measured). `cargo xtask
//! bench` names the file in [`FIGURES_ENV`], empties it before the run, and reads it after,
//! next to criterion's results.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

/// The file figures are appended to; without it, `<target>/bench-figures.jsonl`.
pub const FIGURES_ENV: &str = "AUTHCACHE_BENCH_FIGURES";

/// What a figure counts. The report formats and compares values by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A duration in nanoseconds (latencies, percentiles).
    Nanos,
    /// Operations per second.
    PerSecond,
    /// A size in bytes.
    Bytes,
    /// A plain count (repository loads).
    Count,
}

impl Unit {
    /// The spelling in the figures file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nanos => "ns",
            Self::PerSecond => "ops/s",
            Self::Bytes => "B",
            Self::Count => "count",
        }
    }
}

/// Appends one figure to the figures file and echoes it on stdout.
///
/// # Errors
/// When the file cannot be opened or written.
pub fn record(id: &str, value: f64, unit: Unit) -> std::io::Result<()> {
    println!("figure {id:<48} {value:>16.1} {}", unit.as_str());
    append(&serde_json::json!({ "id": id, "value": value, "unit": unit.as_str() }))
}

/// Records that a figure could not be measured, and why: the report shows the reason in
/// its row instead of a number, so nothing goes missing silently.
///
/// # Errors
/// As [`record`].
pub fn record_missing(id: &str, reason: &str) -> std::io::Result<()> {
    println!("figure {id:<48} not measured: {reason}");
    append(&serde_json::json!({ "id": id, "missing": reason }))
}

fn append(line: &serde_json::Value) -> std::io::Result<()> {
    let path = path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(file, "{line}")
}

fn path() -> PathBuf {
    if let Some(path) = std::env::var_os(FIGURES_ENV) {
        return PathBuf::from(path);
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| authcache_tests::process::workspace_root().join("target"))
        .join("bench-figures.jsonl")
}
