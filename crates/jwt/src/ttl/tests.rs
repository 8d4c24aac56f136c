//! Unit tests of `ttl`.

use super::*;

#[test]
fn ttl_is_capped_skewed_and_never_tiny() {
    let cap = Duration::from_secs(120);
    assert_eq!(validation_ttl(u64::MAX, 0, cap), Some(cap));
    assert_eq!(validation_ttl(0, u64::MAX, cap), None);
    assert_eq!(validation_ttl(106, 100, cap), Some(Duration::from_secs(1)));
    assert_eq!(validation_ttl(105, 100, cap), None);
    assert_eq!(validation_ttl(200, 100, Duration::ZERO), None);
}
