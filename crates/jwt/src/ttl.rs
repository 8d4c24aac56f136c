//! How long a verification result may be cached: never beyond the token's `exp`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// 5 s subtracted from a token's remaining life before caching its validation: instances
/// sharing one cache have clocks a few seconds apart, and an entry written by a slow clock
/// must not be served by a fast one after `exp`.
pub const EXP_SKEW: Duration = Duration::from_secs(5);

/// Shortest worth caching: below 1 s the entry would expire before it is read again.
const MIN_TTL: Duration = Duration::from_secs(1);

/// TTL for a cached validation: `min(cap, exp − now − EXP_SKEW)`, or `None` when that is
/// under one second (expired or about to expire: do not cache).
///
/// `exp` and `now` are seconds since the Unix epoch; nothing overflows or panics for any input.
///
/// ```
/// use std::time::Duration;
/// use authcache_jwt::validation_ttl;
///
/// let cap = Duration::from_secs(120);
/// assert_eq!(validation_ttl(1_000 + 3_600, 1_000, cap), Some(cap));
/// assert_eq!(validation_ttl(1_000 + 65, 1_000, cap), Some(Duration::from_secs(60)));
/// assert_eq!(validation_ttl(1_000 + 5, 1_000, cap), None);
/// assert_eq!(validation_ttl(900, 1_000, cap), None);
/// ```
pub fn validation_ttl(exp: u64, now: u64, cap: Duration) -> Option<Duration> {
    let remaining = Duration::from_secs(exp.saturating_sub(now)).saturating_sub(EXP_SKEW);
    Some(remaining.min(cap)).filter(|ttl| *ttl >= MIN_TTL)
}

/// Seconds since the Unix epoch (0 if the system clock is set before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
