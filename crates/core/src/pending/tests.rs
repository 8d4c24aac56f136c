//! Unit tests of `pending`.

use super::*;

#[test]
fn a_tombstone_owed_bars_l2_and_an_announcement_does_not() {
    let pending = Pending::default();
    assert!(!pending.bars_l2("a"));
    pending.owe("a", Debt::Announcement, None);
    assert!(!pending.bars_l2("a"));
    pending.owe("a", Debt::Tombstone, None);
    assert!(pending.bars_l2("a") && !pending.bars_l2("b"));
    assert_eq!(pending.len(), 1, "one entry per id");
}

#[test]
fn a_retry_never_settles_a_failure_recorded_while_it_ran() {
    let pending = Pending::default();
    pending.owe("a", Debt::Tombstone, None);
    let [(id, debt, ticket)] = pending.owed().try_into().unwrap();
    assert_eq!((&*id, debt), ("a", Debt::Tombstone));
    // A newer invalidation fails while the retry's tombstone is on its way.
    pending.owe("a", Debt::Tombstone, pending.ticket("a"));
    assert!(!pending.settle("a", Some(ticket)));
    assert!(pending.bars_l2("a"), "the newer debt stays");
    assert!(pending.settle("a", pending.ticket("a")));
    assert_eq!((pending.len(), pending.owed().len()), (0, 0));
}

#[test]
fn a_write_that_landed_replaces_only_the_debt_it_saw() {
    let pending = Pending::default();
    pending.owe("a", Debt::Tombstone, None);
    let seen = pending.ticket("a");
    // Its L2 write landed, its announcement did not: only that is owed now.
    pending.owe("a", Debt::Announcement, seen);
    assert!(!pending.bars_l2("a"));
    // A write that began before a newer failure was recorded cannot lower it.
    let stale = pending.ticket("a");
    pending.owe("a", Debt::Tombstone, None);
    pending.owe("a", Debt::Announcement, stale);
    assert!(pending.bars_l2("a"));
    assert!(!pending.settle("a", stale) && !pending.settle("a", None));
}
