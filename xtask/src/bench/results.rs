//! What a bench run measured, by id: criterion's mean time of `<group>/<function>`, and the
//! figures the `figures` bench wrote (one JSON object per line).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result};

/// What a figure counts; decides how it is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Nanos,
    PerSecond,
    Bytes,
    Count,
}

impl Unit {
    fn parse(unit: &str) -> Option<Self> {
        match unit {
            "ns" => Some(Self::Nanos),
            "ops/s" => Some(Self::PerSecond),
            "B" => Some(Self::Bytes),
            "count" => Some(Self::Count),
            _ => None,
        }
    }
}

/// One measured value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Measured {
    pub(crate) value: f64,
    pub(crate) unit: Unit,
    /// Measured by this run (criterion keeps results of groups a filtered run skipped).
    pub(crate) fresh: bool,
}

/// A figure's outcome.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Measured(Measured),
    /// The bench could not measure it, and said why.
    Missing(String),
}

/// Every outcome of the run, by id.
#[derive(Debug, Default)]
pub(crate) struct Results {
    outcomes: BTreeMap<String, Outcome>,
}

impl Results {
    /// Reads criterion's results under `criterion` and the figures file; criterion results
    /// older than `since` are marked as not fresh. Either source may be absent.
    ///
    /// # Errors
    /// When the figures file exists but cannot be read.
    pub(crate) fn load(criterion: &Path, figures: &Path, since: SystemTime) -> Result<Self> {
        let mut results = Self::default();
        results.load_criterion(criterion, since);
        if figures.exists() {
            let text = fs::read_to_string(figures)
                .with_context(|| format!("reading {}", figures.display()))?;
            results.load_figures(&text);
        }
        Ok(results)
    }

    /// The outcome of `id`, if the run has one.
    pub(crate) fn get(&self, id: &str) -> Option<&Outcome> {
        self.outcomes.get(id)
    }

    /// The measured value of `id`, if it was measured.
    pub(crate) fn measured(&self, id: &str) -> Option<&Measured> {
        match self.get(id) {
            Some(Outcome::Measured(measured)) => Some(measured),
            _ => None,
        }
    }

    /// Criterion groups holding both a `raw` and an `authcache` function, sorted.
    pub(crate) fn raw_vs_authcache_groups(&self) -> Vec<&str> {
        self.outcomes
            .keys()
            .filter_map(|id| id.strip_suffix("/raw"))
            .filter(|group| self.outcomes.contains_key(&format!("{group}/authcache")))
            .collect()
    }

    fn load_criterion(&mut self, dir: &Path, since: SystemTime) {
        let Ok(groups) = fs::read_dir(dir) else {
            return;
        };
        for group in groups.flatten() {
            let Ok(functions) = fs::read_dir(group.path()) else {
                continue;
            };
            for function in functions.flatten() {
                let estimates = function.path().join("new/estimates.json");
                let Some(mean) = mean_ns(&estimates) else {
                    continue;
                };
                let fresh = fs::metadata(&estimates)
                    .and_then(|meta| meta.modified())
                    .is_ok_and(|modified| modified >= since);
                let id = format!(
                    "{}/{}",
                    group.file_name().to_string_lossy(),
                    function.file_name().to_string_lossy()
                );
                let measured = Measured {
                    value: mean,
                    unit: Unit::Nanos,
                    fresh,
                };
                self.outcomes.insert(id, Outcome::Measured(measured));
            }
        }
    }

    /// Later lines win: a figure measured again replaces the earlier value.
    fn load_figures(&mut self, text: &str) {
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            if let Some((id, outcome)) = parse_figure(line) {
                self.outcomes.insert(id, outcome);
            }
        }
    }
}

fn parse_figure(line: &str) -> Option<(String, Outcome)> {
    let figure: serde_json::Value = serde_json::from_str(line).ok()?;
    let id = figure.get("id")?.as_str()?.to_owned();
    if let Some(reason) = figure.get("missing").and_then(|r| r.as_str()) {
        return Some((id, Outcome::Missing(reason.to_owned())));
    }
    let measured = Measured {
        value: figure.get("value")?.as_f64()?,
        unit: Unit::parse(figure.get("unit")?.as_str()?)?,
        fresh: true,
    };
    Some((id, Outcome::Measured(measured)))
}

fn mean_ns(estimates: &Path) -> Option<f64> {
    let text = fs::read_to_string(estimates).ok()?;
    let estimates: serde_json::Value = serde_json::from_str(&text).ok()?;
    estimates.get("mean")?.get("point_estimate")?.as_f64()
}

#[cfg(test)]
mod tests;
