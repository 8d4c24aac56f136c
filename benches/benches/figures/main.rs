//! The rows of the side-by-side table that criterion cannot time — throughput, bytes per
//! entry, RSS per entry, load counts, the quickstart's end-to-end throughput, tail latency
//! across a TTL boundary — each measured together with its reference in the same run, on
//! throwaway servers from the test kit. Every figure goes to the figures file
//! (`authcache_benches::figures`), where `cargo xtask bench` reads it.
//!
//! `cargo bench -p authcache-benches --features facade --bench figures [-- SECTION]` runs
//! every section, or those whose name contains `SECTION`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bytes;
mod cold_requests;
mod growth;
mod l2_throughput;
mod propagation;
mod quickstart;
mod rss;
mod throughput;
mod ttl_boundary;

use authcache_tests::redis_server::RedisServer;

/// What every section may use: one redis-server and a multi-threaded runtime (one worker
/// per core, as a service would run).
pub(crate) struct Context {
    pub(crate) redis: RedisServer,
    pub(crate) runtime: tokio::runtime::Runtime,
}

/// A named section of figures and the function that measures it.
type Section = (&'static str, fn(&Context));

/// Sections in the order they run; the name is what a filter matches.
const SECTIONS: [Section; 9] = [
    ("throughput", throughput::run),
    ("l2_throughput", l2_throughput::run),
    ("bytes", bytes::run),
    ("rss", rss::run),
    ("cold_requests", cold_requests::run),
    ("quickstart", quickstart::run),
    ("ttl_boundary", ttl_boundary::run),
    ("growth", growth::run),
    ("propagation", propagation::run),
];

fn main() {
    if let Some(probe) = rss::requested_probe() {
        rss::probe(&probe);
        return;
    }
    // cargo passes `--bench`; a word that is not a flag is a filter, as for criterion.
    let filter = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    let context = Context {
        redis: RedisServer::start(),
        runtime: tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime"),
    };
    for (name, run) in SECTIONS {
        if filter
            .as_deref()
            .is_some_and(|filter| !name.contains(filter))
        {
            continue;
        }
        println!("\n== figures: {name}");
        run(&context);
    }
}

/// Records a figure; a figures file that cannot be written fails the run.
pub(crate) fn record(id: &str, value: f64, unit: authcache_benches::figures::Unit) {
    authcache_benches::figures::record(id, value, unit)
        .unwrap_or_else(|e| panic!("cannot write figure {id}: {e}"));
}

/// Records why a figure could not be measured.
pub(crate) fn record_missing(id: &str, reason: &str) {
    authcache_benches::figures::record_missing(id, reason)
        .unwrap_or_else(|e| panic!("cannot write figure {id}: {e}"));
}
