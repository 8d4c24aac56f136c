//! Unit tests of logout-all cutoffs judged at the precision of a token's `iat`.

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
