//! The rule of a `logout_all` cutoff: when it was made, and which tokens it refuses.
//!
//! A cutoff is the instant of the call, to the microsecond. A token is refused when it was
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

/// The cutoff a `logout_all` made at `now` stores: microseconds since the Unix epoch.
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
mod tests {
    use super::*;

    /// Claims with a whole-second `iat`.
    fn issued(seconds: u64) -> Claims {
        let mut claims = Claims::new("ada", 4_000_000_000);
        claims.iat = Some(seconds);
        claims
    }

    /// Claims with `iat` to the microsecond: `seconds` and `micros` of the next one.
    fn issued_at(seconds: u64, micros: u32) -> Claims {
        let at = UNIX_EPOCH + std::time::Duration::new(seconds, micros * 1_000);
        Claims::new("ada", 4_000_000_000).issued_at(at)
    }

    // The cutoff: 1765000000.250300 s.
    const CUTOFF: u64 = 1_765_000_000_250_300;

    #[test]
    fn a_whole_second_iat_is_compared_with_the_cutoffs_second() {
        assert!(refuses(CUTOFF, &issued(1_764_999_999)));
        // The password-change flow: logged out everywhere, then issued a token at once.
        assert!(!refuses(CUTOFF, &issued(1_765_000_000)));
        assert!(!refuses(CUTOFF, &issued(1_765_000_001)));
    }

    #[test]
    fn a_fractional_iat_is_compared_at_its_own_precision() {
        let at = |micros| issued_at(1_765_000_000, micros);
        // Microseconds: exact.
        assert!(refuses(CUTOFF, &at(250_299)));
        assert!(!refuses(CUTOFF, &at(250_300)));
        assert!(!refuses(CUTOFF, &at(250_301)));
        // Milliseconds: the cutoff's millisecond is accepted, the one before refused.
        assert!(refuses(CUTOFF, &at(249_000)));
        assert!(!refuses(CUTOFF, &at(250_000)));
        // Tenths.
        assert!(refuses(CUTOFF, &at(100_000)));
        assert!(!refuses(CUTOFF, &at(200_000)));
    }

    #[test]
    fn a_cutoff_stored_in_seconds_is_that_seconds_start() {
        assert!(refuses(1_765_000_000, &issued(1_764_999_999)));
        assert!(!refuses(1_765_000_000, &issued(1_765_000_000)));
        assert!(refuses(1_765_000_000, &issued_at(1_764_999_999, 900_000)));
    }

    #[test]
    fn no_iat_and_an_unreadable_mark_refuse() {
        assert!(refuses(CUTOFF, &Claims::new("ada", 4_000_000_000)));
        assert!(refuses(u64::MAX, &issued(4_000_000_000)));
    }

    #[test]
    fn the_cutoff_is_the_instant_to_the_microsecond() {
        let instant = UNIX_EPOCH + std::time::Duration::new(1_765_000_000, 250_300_999);
        assert_eq!(at(instant), CUTOFF);
        assert_eq!(at(UNIX_EPOCH - std::time::Duration::from_secs(1)), 0);
    }
}
