//! Unit tests of `l1`.

use std::sync::Arc;
use std::time::Instant;

use super::clock::ManualClock;
use super::*;

fn manual(max_entries: u64) -> (MemoryL1<String>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let l1 = MemoryL1::with_clock(max_entries, Clock::Manual(clock.clone()));
    (l1, clock)
}

fn present(value: &str) -> L1Entry<String> {
    L1Entry::present(Arc::new(value.to_owned()))
}

fn value_of(l1: &MemoryL1<String>, id: &str) -> Option<String> {
    l1.get(id)?.into_value().map(|value| (*value).clone())
}

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn insert_get_remove_clear() {
    let l1 = MemoryL1::<String>::default();
    assert!(l1.get("1").is_none());
    let value = Arc::new(String::from("ada"));
    l1.insert("1", L1Entry::present(Arc::clone(&value)), MINUTE);
    l1.insert("2", L1Entry::absent(), MINUTE);
    let hit = l1.get("1").unwrap().into_value().unwrap();
    assert!(
        Arc::ptr_eq(&hit, &value),
        "a hit hands out the same Arc, not a copy"
    );
    assert!(
        !l1.get("2").unwrap().is_present(),
        "negative entries are held"
    );
    l1.remove("1");
    assert!(l1.get("1").is_none());
    l1.insert("3", present("x"), MINUTE);
    l1.clear();
    assert!(l1.get("2").is_none() && l1.get("3").is_none());
    assert_eq!(l1.entry_count(), 0, "clear drops every entry");
    assert!(format!("{l1:?}").starts_with("MemoryL1"));
}

#[test]
fn an_insert_replaces_the_value_and_its_ttl() {
    let (l1, clock) = manual(10);
    l1.insert("1", present("old"), MINUTE);
    l1.insert("1", present("new"), Duration::from_secs(5));
    assert_eq!(value_of(&l1, "1").as_deref(), Some("new"));
    clock.advance(Duration::from_secs(5));
    assert!(
        l1.get("1").is_none(),
        "the shorter TTL of the replacement holds"
    );
    assert_eq!(l1.entry_count(), 0);
}

#[test]
fn clear_drops_the_values_themselves() {
    let l1 = MemoryL1::<String>::new(100);
    let value = Arc::new(String::from("ada"));
    for id in ["1", "2", "3"] {
        l1.insert(id, L1Entry::present(Arc::clone(&value)), MINUTE);
    }
    l1.clear();
    assert_eq!(Arc::strong_count(&value), 1, "no clone is left behind");
}

#[test]
fn a_zero_ttl_removes() {
    let l1 = MemoryL1::<String>::new(10);
    l1.insert("1", present("x"), MINUTE);
    l1.insert("1", present("y"), Duration::ZERO);
    assert!(l1.get("1").is_none());
    assert_eq!(l1.entry_count(), 0);
}

#[test]
fn each_entry_expires_at_its_own_deadline() {
    let (l1, clock) = manual(10);
    l1.insert("short", present("s"), Duration::from_secs(5));
    l1.insert("long", present("l"), Duration::from_secs(30));
    clock.advance(Duration::from_secs(5) - Duration::from_nanos(1));
    assert_eq!(value_of(&l1, "short").as_deref(), Some("s"));
    clock.advance(Duration::from_nanos(1));
    assert!(l1.get("short").is_none(), "expired at insert + ttl");
    assert_eq!(value_of(&l1, "long").as_deref(), Some("l"));
    clock.advance(Duration::from_secs(25));
    assert!(l1.get("long").is_none());
}

#[test]
fn negative_entries_expire_too() {
    let (l1, clock) = manual(10);
    l1.insert("ghost", L1Entry::absent(), Duration::from_secs(30));
    clock.advance(Duration::from_secs(30));
    assert!(l1.get("ghost").is_none());
}

#[test]
fn an_expired_entry_is_removed_when_read() {
    let (l1, clock) = manual(10);
    l1.insert("1", present("x"), Duration::from_secs(1));
    l1.insert("2", present("y"), MINUTE);
    clock.advance(Duration::from_secs(1));
    assert_eq!(l1.entry_count(), 2, "nothing sweeps in the background");
    assert!(l1.get("1").is_none());
    assert_eq!(l1.entry_count(), 1, "the read removed the expired entry");
}

#[test]
fn the_lazy_removal_spares_an_entry_inserted_since_the_read() {
    let (l1, clock) = manual(10);
    l1.insert("1", present("stale"), Duration::from_secs(1));
    clock.advance(Duration::from_secs(1));
    let read_at = clock.now();
    // A writer refills the id between the reader's lookup and its removal.
    l1.insert("1", present("fresh"), MINUTE);
    l1.remove_expired("1", read_at);
    assert_eq!(value_of(&l1, "1").as_deref(), Some("fresh"));
}

#[test]
fn a_ttl_beyond_the_clock_never_expires() {
    let (l1, clock) = manual(10);
    l1.insert("1", present("x"), Duration::MAX);
    clock.advance(Duration::from_secs(100 * 365 * 24 * 3600));
    assert_eq!(value_of(&l1, "1").as_deref(), Some("x"));
}

#[test]
fn entries_expire_on_the_system_clock_and_never_late() {
    let l1 = MemoryL1::<String>::new(10);
    let ttl = Duration::from_millis(50);
    // Read on the precise clock before the insert: every hit must come before this + ttl.
    let stored_at = Instant::now();
    l1.insert("short", present("x"), ttl);
    l1.insert("long", present("y"), Duration::from_secs(600));
    let mut expired = false;
    // Bounded by count, not time: the coarse clock moves every tick (a few ms).
    for _ in 0..100_000 {
        let hit = l1.get("short").is_some();
        let read_at = Instant::now();
        if !hit {
            expired = true;
            break;
        }
        assert!(
            read_at < stored_at + ttl,
            "served {:?} after the insert, past its TTL of {ttl:?}",
            read_at - stored_at
        );
        std::thread::sleep(Duration::from_micros(500));
    }
    assert!(
        expired,
        "a 50 ms entry was still served after 100,000 reads"
    );
    assert!(l1.get("long").is_some());
}

#[test]
fn a_ttl_within_the_clock_resolution_is_not_kept() {
    let l1 = MemoryL1::<String>::new(10);
    l1.insert("1", present("x"), MINUTE);
    let Clock::System { resolution } = l1.clock else {
        unreachable!("MemoryL1::new reads the system clock")
    };
    l1.insert("1", present("y"), resolution);
    assert!(
        l1.get("1").is_none(),
        "the old value is gone, the new one not kept"
    );
    assert_eq!(l1.entry_count(), 0);
}

#[test]
fn it_is_bounded_by_entries() {
    for max in [0, 1, 7, 31, 100, 1_000, 1_001, 10_000] {
        let l1 = MemoryL1::<String>::new(max);
        let shards = l1.entries.num_shards() as u64;
        let capacity = l1.entries.capacity();
        assert!(
            capacity <= max && max - capacity < shards,
            "max {max}: capacity {capacity} over {shards} shards"
        );
        for n in 0..3 * max + 10 {
            l1.insert(&n.to_string(), present("x"), MINUTE);
            assert!(l1.entry_count() <= max, "max {max}: {}", l1.entry_count());
        }
        let last = (3 * max + 9).to_string();
        assert_eq!(
            l1.get(&last).is_some(),
            max > 0,
            "max {max}: the newest entry is held (unless nothing may be)"
        );
    }
}

#[test]
fn concurrent_readers_and_writers_see_only_their_own_values() {
    const THREADS: usize = 4;
    const IDS: u64 = 200;
    let l1 = Arc::new(MemoryL1::<String>::new(100));
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let l1 = &l1;
            scope.spawn(move || {
                for round in 0..2_000_u64 {
                    let id = ((round * 7 + thread as u64) % IDS).to_string();
                    match round % 4 {
                        0 => l1.insert(&id, present(&id), MINUTE),
                        1 => l1.remove(&id),
                        _ => {
                            if let Some(value) = value_of(l1, &id) {
                                assert_eq!(value, id, "a hit is the value stored for its id");
                            }
                        }
                    }
                }
            });
        }
    });
    assert!(l1.entry_count() <= 100, "{}", l1.entry_count());
    let held = (0..IDS)
        .filter(|n| l1.get(&n.to_string()).is_some())
        .count();
    assert_eq!(
        held as u64,
        l1.entry_count(),
        "every entry held is readable"
    );
}
