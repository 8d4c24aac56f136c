//! Unit tests of the slot computation: the CRC16 check value, the hashtag rule, agreement with
//! redis-rs on thousands of keys, and key choices that do not depend on the prefix.

use redis::cluster_routing::Slot;

use super::*;

#[test]
fn crc16_is_xmodem() {
    // The check value of CRC-16/XMODEM, and the Cluster specification's reference.
    assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
    assert_eq!(crc16_xmodem(b""), 0);
}

#[test]
fn slots_match_what_redis_answers_for_known_keys() {
    // `CLUSTER KEYSLOT` of these keys on Redis 7.
    for (key, slot) in [("foo", 12_182), ("bar", 5_061), ("somekey", 11_058)] {
        assert_eq!(key_slot(key.as_bytes()), slot, "{key}");
    }
}

#[test]
fn hashtags_follow_the_cluster_specification() {
    let user1000 = key_slot(b"user1000");
    assert_eq!(key_slot(b"{user1000}.following"), user1000);
    assert_eq!(key_slot(b"{user1000}.followers"), user1000);
    // The first `{` and the first `}` after it; an empty tag hashes the whole key.
    assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    assert_eq!(key_slot(b"foo{}{bar}"), crc16_xmodem(b"foo{}{bar}") % SLOTS);
    assert_eq!(key_slot(b"foo{bar"), crc16_xmodem(b"foo{bar") % SLOTS);
    assert_eq!(key_slot(b"foo}bar{"), crc16_xmodem(b"foo}bar{") % SLOTS);
}

#[test]
fn slots_agree_with_redis_rs_routing() {
    let keys = (0..2_000)
        .map(|i| format!("authcache:v1:user:id-{i}"))
        .chain((0..200).map(|i| format!("p:v1:user:{{tag-{i}}}")))
        .chain(["a{}b", "{}", "{", "}", "x{y", "{{}}", ""].map(String::from));
    for key in keys {
        assert_eq!(
            Slot::new(key_slot(key.as_bytes())),
            Some(Slot::for_key(&key)),
            "{key:?}"
        );
    }
}

/// The layout `redis-cli --cluster create` gives three masters.
fn three_masters() -> SlotLayout {
    SlotLayout {
        masters: BTreeMap::from([
            (7000, vec![0..=5_460]),
            (7001, vec![5_461..=10_922]),
            (7002, vec![10_923..=16_383]),
        ]),
    }
}

#[test]
fn chosen_keys_cover_every_master_in_distinct_slots_round_robin() {
    let layout = three_masters();
    layout.check_coverage();
    let keys = keys_on_every_master(&Keyspace::new("any").unwrap(), &layout, 7);
    assert_eq!(keys.len(), 21);
    let slots: Vec<u16> = keys
        .iter()
        .map(|k| key_slot(k.as_str().as_bytes()))
        .collect();
    assert_eq!(slots.iter().collect::<BTreeSet<_>>().len(), 21, "{slots:?}");
    let masters: Vec<u16> = slots.iter().map(|&s| layout.master_of(s)).collect();
    assert_eq!(masters, [7000, 7001, 7002].repeat(7));
}

#[test]
fn chosen_ids_do_not_depend_on_the_prefix() {
    let layout = three_masters();
    let ids = |prefix: &str| -> Vec<String> {
        let keys = Keyspace::new(prefix).unwrap();
        keys_on_every_master(&keys, &layout, 5)
            .iter()
            .map(|k| keys.parse(k.as_str()).unwrap().1.to_owned())
            .collect()
    };
    let first = ids("conf1x0");
    for prefix in ["conf4242x17", "authcache", "p"] {
        assert_eq!(ids(prefix), first, "prefix {prefix}");
    }
}

#[test]
fn a_layout_with_a_gap_or_an_overlap_is_refused() {
    let gap = SlotLayout {
        masters: BTreeMap::from([(1, vec![0..=100]), (2, vec![102..=16_383])]),
    };
    let overlap = SlotLayout {
        masters: BTreeMap::from([(1, vec![0..=101]), (2, vec![101..=16_383])]),
    };
    for layout in [gap, overlap] {
        assert!(std::panic::catch_unwind(|| layout.check_coverage()).is_err());
    }
}
