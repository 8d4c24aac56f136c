//! The load generator: `wrk -t2 -c64` with a Lua `done()` that prints the run's counts and
//! percentiles as one JSON line.
//!
//! Why wrk and not a client in this process: all three rows are loaded by the same external
//! tool, so none of them shares a runtime or an allocator with the load, and the reference
//! row measures nginx as operators measure it. Its cost is that wrk's two threads take
//! their share of the same cores as nginx, the sidecar and the upstream.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Open connections, spread over [`THREADS`].
const CONNECTIONS: u32 = 64;
/// wrk's threads: one per core of the 2-core machine the figures were set on.
const THREADS: u32 = 2;

/// Prints `{requests, duration_us, p50_us, p99_us, non_2xx, socket_errors}` when the run
/// ends. `errors.status` counts answers with a status above 399.
const DONE_SCRIPT: &str = r#"done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%.0f,"duration_us":%.0f,"p50_us":%.0f,"p99_us":%.0f,"non_2xx":%.0f,"socket_errors":%.0f}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"#;

/// The one request of a run, sent on every connection.
pub(crate) struct Request<'a> {
    pub(crate) url: &'a str,
    pub(crate) authorization: &'a str,
}

/// What a run measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    pub(crate) per_second: f64,
    pub(crate) p50_ns: f64,
    pub(crate) p99_ns: f64,
}

/// Loads `request` for `duration`; fails, with why, when wrk cannot run or any request
/// failed or was refused.
pub(crate) fn run(request: &Request<'_>, duration: Duration) -> Result<Load, String> {
    let script = Script::write()?;
    let output = Command::new("wrk")
        .args(["-t", &THREADS.to_string(), "-c", &CONNECTIONS.to_string()])
        .args(["-d", &format!("{}s", duration.as_secs().max(1))])
        .args(["--timeout", "5s", "-H"])
        .arg(format!("Authorization: {}", request.authorization))
        .arg("-s")
        .arg(&script.0)
        .arg(request.url)
        .output()
        .map_err(|e| format!("wrk: {e} (install wrk, or run `cargo xtask bench`)"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("wrk failed ({}): {stdout}{stderr}", output.status));
    }
    print!("{stdout}");
    let summary = stdout
        .lines()
        .find_map(|line| serde_json::from_str::<serde_json::Value>(line.trim()).ok())
        .ok_or_else(|| format!("no summary in wrk's output: {stdout}"))?;
    load(&summary)
}

fn load(summary: &serde_json::Value) -> Result<Load, String> {
    let field = |name: &str| {
        summary
            .get(name)
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| format!("no {name} in wrk's summary {summary}"))
    };
    let (requests, failed) = (
        field("requests")?,
        field("non_2xx")? + field("socket_errors")?,
    );
    if requests == 0.0 || failed > 0.0 {
        return Err(format!(
            "{failed} of {requests} requests failed or were refused"
        ));
    }
    Ok(Load {
        per_second: requests / (field("duration_us")? / 1e6),
        p50_ns: field("p50_us")? * 1e3,
        p99_ns: field("p99_us")? * 1e3,
    })
}

/// [`DONE_SCRIPT`] in a file of this process, removed on drop.
struct Script(PathBuf);

impl Script {
    fn write() -> Result<Self, String> {
        let path = std::env::temp_dir().join(format!("authcache-wrk-{}.lua", std::process::id()));
        std::fs::write(&path, DONE_SCRIPT)
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
