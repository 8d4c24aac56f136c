//! Unit tests of the stats sums and ratios.

use super::*;

#[test]
fn ratios_are_zero_before_any_lookup() {
    let stats = Stats::default();
    assert_eq!(stats.l1_hit_ratio(), 0.0);
    assert_eq!(stats.validations.hit_ratio(), 0.0);
}

#[test]
fn sums_cover_the_data_tiers() {
    let tier = TierStatsSnapshot {
        l1_hits: 3,
        l2_hits: 1,
        misses: 0,
        loads: 2,
        coalesced: 5,
        ..TierStatsSnapshot::default()
    };
    let stats = Stats {
        users: tier,
        roles: tier,
        permissions: tier,
        ..Stats::default()
    };
    assert_eq!(stats.l1_hits(), 9);
    assert_eq!(stats.loads(), 4);
    assert_eq!(stats.coalesced(), 15);
    assert!((stats.l1_hit_ratio() - 0.75).abs() < 1e-9);
}
