//! Unit tests of the sticky mark table: sharding, expiry in deadline order, retries.

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One shard: what a single lookup pops is all there is to see.
fn one_shard() -> StickyMarks {
    StickyMarks::with_shards(1)
}

/// Ten thousand marks in force and a hundred expired ones: dropping the expired ones
/// pops exactly their hundred deadlines, earliest first, and touches nothing else.
#[test]
fn expired_marks_are_dropped_in_deadline_order_without_a_scan() {
    let table = one_shard();
    let t0 = Instant::now();
    for i in 0..10_000 {
        table.raise(&format!("long-{i}"), 1, t0 + Duration::from_secs(3_600), t0);
    }
    for i in 0..100 {
        table.raise(&format!("short-{i}"), 1, t0 + ms(1 + i), t0);
    }
    assert_eq!(table.len(), 10_100);
    // At 50 ms the first fifty deadlines have passed (a deadline is exclusive).
    assert_eq!(table.sweep(t0 + ms(50)), 50);
    assert_eq!(table.len(), 10_050);
    assert_eq!(table.get("short-49", t0 + ms(50)), None);
    assert_eq!(table.get("short-50", t0 + ms(50)), Some(1));
    // A lookup pops the rest of what has expired, and only that.
    assert_eq!(table.get("long-7", t0 + ms(100)), Some(1));
    assert_eq!(table.len(), 10_000);
    assert_eq!(table.sweep(t0 + ms(100)), 0);
    assert!(!table.is_empty());
    assert_eq!(table.sweep(t0 + Duration::from_secs(3_600)), 10_000);
    assert!(table.is_empty());
    // The room the burst took is given back.
    let shard = table.lock(0);
    assert!(shard.entries.capacity() <= 4 * MIN_ROOM);
    assert!(shard.deadlines.capacity() <= 4 * MIN_ROOM);
    assert!(shard.pending.capacity() <= 4 * MIN_ROOM);
}

/// A mark is in force until the very end of its deadline, never less.
#[test]
fn a_mark_holds_until_its_deadline_and_not_after() {
    let table = StickyMarks::default();
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs(60);
    table.raise("jti-1", 9, until, t0);
    let just_before = until.checked_sub(Duration::from_nanos(1)).unwrap();
    assert_eq!(table.get("jti-1", just_before), Some(9));
    assert_eq!(table.get("jti-1", until), None);
    assert!(table.is_empty());
}

#[test]
fn value_and_deadline_only_ever_rise() {
    let table = one_shard();
    let t0 = Instant::now();
    let ticket = table.raise("ada", 100, t0 + ms(10), t0);
    assert_eq!((ticket.value, ticket.until), (100, t0 + ms(10)));
    // A smaller value with a later deadline: the value stays, the deadline moves on.
    let ticket = table.raise("ada", 50, t0 + ms(20), t0);
    assert_eq!((ticket.value, ticket.until), (100, t0 + ms(20)));
    // A larger value with an earlier deadline: the value rises, the deadline stays.
    let ticket = table.raise("ada", 200, t0 + ms(5), t0);
    assert_eq!((ticket.value, ticket.until), (200, t0 + ms(20)));
    // Past the first deadline, the moved one holds: its stale heap item is dropped.
    assert_eq!(table.sweep(t0 + ms(15)), 1);
    assert_eq!(table.get("ada", t0 + ms(15)), Some(200));
    assert_eq!(table.len(), 1);
    assert_eq!(table.get("ada", t0 + ms(20)), None);
    assert!(table.is_empty());
}

#[test]
fn a_mark_already_expired_is_not_held() {
    let table = StickyMarks::default();
    let t0 = Instant::now();
    let ticket = table.raise("late", 7, t0, t0);
    assert_eq!(ticket.value, 7);
    assert!(table.is_empty());
    assert_eq!(table.pending_len(), 0);
    assert!(!table.settle("late", &ticket));
}

/// Only the ticket of the latest raise settles a mark: an earlier write that lands
/// late leaves the later value pending, with its own ticket to retry with.
#[test]
fn only_the_latest_write_settles_a_mark() {
    let table = StickyMarks::default();
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs(60);
    let older = table.raise("ada", 100, until, t0);
    let newer = table.raise("ada", 200, until, t0);
    assert_eq!(table.pending_len(), 1, "one mark, pending once");
    assert!(!table.settle("ada", &older));
    assert_eq!(table.pending(t0), vec![("ada".to_owned(), newer)]);
    // Raising with a smaller value is still a new write of the larger one.
    let again = table.raise("ada", 150, until, t0);
    assert_eq!(again.value, 200);
    assert!(!table.settle("ada", &newer));
    assert!(table.settle("ada", &again));
    assert_eq!(table.pending_len(), 0);
    assert!(table.pending(t0).is_empty());
    assert!(!table.settle("ada", &again), "settles once");
}

/// A reassert makes every mark in force pending again, and a write that was in flight
/// when it happened no longer settles it.
#[test]
fn a_reassert_makes_marks_pending_again_and_outdates_writes_in_flight() {
    let table = StickyMarks::default();
    let t0 = Instant::now();
    let kept = table.raise("kept", 1, t0 + Duration::from_secs(60), t0);
    let settled = table.raise("settled", 2, t0 + Duration::from_secs(60), t0);
    let in_flight = table.raise("in-flight", 3, t0 + Duration::from_secs(60), t0);
    table.raise("gone", 4, t0 + ms(1), t0);
    assert!(table.settle("kept", &kept) && table.settle("settled", &settled));
    assert_eq!(table.pending_len(), 2);
    table.reassert(t0 + ms(1));
    assert_eq!(table.pending_len(), 3, "the expired mark is not reasserted");
    assert!(!table.settle("in-flight", &in_flight));
    let mut pending = table.pending(t0 + ms(1));
    pending.sort_by(|a, b| a.0.cmp(&b.0));
    let ids: Vec<&str> = pending.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["in-flight", "kept", "settled"]);
    for (id, ticket) in &pending {
        assert!(table.settle(id, ticket));
    }
    assert_eq!(table.pending_len(), 0);
}

/// A pending mark that expires leaves the pending set with it: nothing retries it.
#[test]
fn an_expired_pending_mark_is_no_longer_pending() {
    let table = StickyMarks::default();
    let t0 = Instant::now();
    table.raise("short", 1, t0 + ms(5), t0);
    table.raise("long", 1, t0 + Duration::from_secs(60), t0);
    assert_eq!(table.pending_len(), 2);
    let pending = table.pending(t0 + ms(5));
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].0, "long");
    table.sweep(t0 + ms(5));
    assert_eq!(table.pending_len(), 1);
    assert_eq!(table.len(), 1);
}

#[test]
fn a_deadline_too_far_to_represent_is_forever_not_now() {
    let now = Instant::now();
    assert!(deadline(now, Duration::MAX) >= now + FOREVER);
    assert_eq!(deadline(now, ms(5)), now + ms(5));
}
