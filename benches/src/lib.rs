//! Shared pieces of the benches: the run mode (full, or quick for iteration), criterion's
//! settings for it, and the figures file where what criterion cannot time (throughput,
//! bytes, RSS, load counts, percentiles) is written for `cargo xtask bench`'s report.
//!
//! ```no_run
//! // In a criterion bench: shorter runs under `cargo xtask bench --quick`.
//! let criterion = authcache_benches::criterion();
//! // In the `figures` bench: one measured figure, read back by the report.
//! authcache_benches::figures::record("bytes/envelope", 312.0, authcache_benches::figures::Unit::Bytes)?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::time::Duration;

use criterion::Criterion;

pub mod figures;
#[cfg(feature = "facade")]
pub mod profile;

/// A redis-rs client for the raw references, with the socket option `authcache-redis` sets
/// on its own connections (`TCP_NODELAY`; redis-rs 1.x leaves it off, and redis-py, the
/// replaced system's client, sets it): a ratio then measures what the cache adds, not a
/// socket option.
///
/// # Errors
/// When redis-rs cannot parse `url`.
#[cfg(feature = "redis")]
pub fn raw_redis_client(url: &str) -> redis::RedisResult<redis::Client> {
    use redis::IntoConnectionInfo;
    let nodelay = redis::io::tcp::TcpSettings::default().set_nodelay(true);
    redis::Client::open(url.into_connection_info()?.set_tcp_settings(nodelay))
}

/// Set (to anything but `0`) by `cargo xtask bench --quick`: the same table, shorter runs.
pub const QUICK_ENV: &str = "AUTHCACHE_BENCH_QUICK";

/// Whether this is a quick run ([`QUICK_ENV`]).
pub fn quick() -> bool {
    std::env::var(QUICK_ENV).is_ok_and(|value| !value.is_empty() && value != "0")
}

/// `full` in a full run, `quick` in a quick one.
pub fn by_mode<T>(full: T, quick: T) -> T {
    if self::quick() { quick } else { full }
}

/// Criterion's settings for this run: 30 samples over 3 s after 1 s of warm-up, or, quick,
/// the fewest samples criterion accepts (10) over 1 s after 0.3 s.
pub fn criterion() -> Criterion {
    let (warm_up, measurement, samples) = by_mode(
        (Duration::from_secs(1), Duration::from_secs(3), 30),
        (Duration::from_millis(300), Duration::from_secs(1), 10),
    );
    Criterion::default()
        .warm_up_time(warm_up)
        .measurement_time(measurement)
        .sample_size(samples)
}
