//! The quickstart's end-to-end throughput, release build, in its three set-ups: memory cache
//! and repository; Redis as L2; Redis and the MongoDB-compatible server (each on a fresh
//! Redis, so that no set-up starts warm). `cargo xtask bench` builds the example and names
//! the binary in [`QUICKSTART_ENV`].

use std::path::{Path, PathBuf};
use std::process::Command;

use authcache_benches::by_mode;
use authcache_benches::figures::Unit;
use authcache_tests::mongo_server::MongoServer;
use authcache_tests::redis_server::RedisServer;

use crate::{Context, record, record_missing};

/// The quickstart binary (`target/release/examples/quickstart`, built with the `redis` and
/// `mongodb` features).
pub(crate) const QUICKSTART_ENV: &str = "AUTHCACHE_QUICKSTART_BIN";

const SETUPS: [&str; 3] = ["memory", "redis", "redis_mongodb"];

pub(crate) fn run(cx: &Context) {
    let Some(binary) = std::env::var_os(QUICKSTART_ENV).map(PathBuf::from) else {
        return missing_all(&format!(
            "{QUICKSTART_ENV} is not set (`cargo xtask bench` builds the quickstart and sets it)"
        ));
    };
    if !binary.is_file() {
        return missing_all(&format!("{} does not exist", binary.display()));
    }
    let (requests, users) = by_mode(("1000000", "10000"), ("200000", "2000"));
    let mongo = cx.runtime.block_on(MongoServer::start());
    let mongo_uri = mongo.uri();
    let database = mongo.fresh_database();
    for setup in SETUPS {
        // A Redis of its own: one set-up's entries must not warm the next one's L2.
        let redis_server = RedisServer::start();
        let redis = redis_server.url();
        let mut args = vec!["--requests", requests, "--users", users];
        if setup != "memory" {
            args.extend(["--redis", redis.as_str()]);
        }
        if setup == "redis_mongodb" {
            args.extend(["--mongo", mongo_uri.as_str(), "--db", database.as_str()]);
        }
        let id = format!("quickstart_throughput/{setup}");
        match throughput(&binary, &args) {
            Ok(rate) => record(&id, rate, Unit::PerSecond),
            Err(reason) => record_missing(&id, &reason),
        }
    }
}

fn missing_all(reason: &str) {
    for setup in SETUPS {
        record_missing(&format!("quickstart_throughput/{setup}"), reason);
    }
}

/// Runs the quickstart; its summary's `throughput  N /s`.
fn throughput(binary: &Path, args: &[&str]) -> Result<f64, String> {
    println!("$ {} {}", binary.display(), args.join(" "));
    let output = Command::new(binary)
        .args(args)
        .output()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    if !output.status.success() {
        return Err(format!(
            "quickstart failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("throughput"))
        .and_then(|rest| rest.trim().strip_suffix("/s"))
        .and_then(|rate| rate.trim().parse().ok())
        .ok_or_else(|| format!("no throughput in the quickstart's summary: {stdout}"))
}
