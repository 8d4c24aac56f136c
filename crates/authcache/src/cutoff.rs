//! The rule of a `logout_all` cutoff: when it was made, and which tokens it refuses.
//!
//! A cutoff is the instant of the call (or the earlier instant `logout_all_before` is
//! given: when the user was logged out), to the microsecond. A token is refused when it was
//! issued before that instant *at the precision its `iat` is given in*: a whole-second
//! `iat` is compared with the cutoff's second, a millisecond one (`1765000000.123`) with
//! its millisecond, a microsecond one with its microsecond. So the login that follows a
//! password change is never locked out, however fast it comes — it was issued in the
//! cutoff's second (or millisecond) or later — and the price is that a token issued earlier
//! in that same second, by an issuer that only gives whole seconds, survives. Keycloak's
//! not-before and Firebase's `tokensValidAfterTime` draw the line at the same place.
//! [`TokenIssuer`](authcache_jwt::TokenIssuer) gives microseconds, so its tokens are cut
//! exactly.
//!
//! Cutoffs stored in seconds by an earlier version are read as that second's start.

use std::time::{SystemTime, UNIX_EPOCH};

use authcache_jwt::Claims;

const MICROS: u64 = 1_000_000;

/// A stored cutoff below this is in seconds (10¹¹ s is the year 5138); above, microseconds
/// (10¹¹ µs is 1970-01-02).
const SECONDS_BELOW: u64 = 100_000_000_000;

/// The cutoff a `logout_all` as of `now` stores: microseconds since the Unix epoch.
pub(crate) fn at(now: SystemTime) -> u64 {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
}

/// Whether the stored cutoff `mark` refuses a token with these claims. A token without
/// `iat` counts as issued at the beginning of time (the facade's verifier refuses such
/// tokens anyway). An unreadable mark (`u64::MAX`) refuses everything.
pub(crate) fn refuses(mark: u64, claims: &Claims) -> bool {
    let cutoff = if mark < SECONDS_BELOW {
        mark.saturating_mul(MICROS)
    } else {
        mark
    };
    let Some(issued) = claims.iat_micros() else {
        return true;
    };
    issued < cutoff - cutoff % precision(issued)
}

/// The precision `iat` was given in, as a step in microseconds: 10⁶ for whole seconds, 10³
/// for milliseconds… down to 1. Read from the trailing zeros, so an `iat` that happens to
/// fall on a whole millisecond is taken as millisecond-precise: it is then compared with the
/// cutoff's millisecond, which only ever accepts a token issued at most 1 ms before it.
fn precision(issued: u64) -> u64 {
    let mut step = MICROS;
    while !issued.is_multiple_of(step) {
        step /= 10;
    }
    step
}

#[cfg(test)]
mod tests;
