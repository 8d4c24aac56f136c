//! Unit tests of `model`.

use super::*;

#[test]
fn cutoffs_refuse_before_the_clock_before_and_may_refuse_up_to_the_clock_after() {
    let cutoff = Cutoff {
        must: 10,
        may: 11,
        ..Cutoff::default()
    };
    // A whole-second `iat` in the cutoff's own second is accepted.
    assert!(cutoff.refuses(9) && !cutoff.refuses(10));
    assert!(cutoff.may_refuse(11) && !cutoff.may_refuse(12));
    assert!(!Cutoff::default().refuses(1) && !Cutoff::default().may_refuse(1));
    let running = Cutoff {
        in_flight: true,
        ..Cutoff::default()
    };
    assert!(running.may_refuse(u64::MAX));
}
