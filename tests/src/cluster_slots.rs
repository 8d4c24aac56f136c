//! Redis Cluster hash slots, computed rather than hoped for: the slot of a key (CRC16/XMODEM
//! of the key, or of its `{hashtag}`, mod 16384, as the Cluster specification defines it),
//! which master serves which slots (`CLUSTER SLOTS`), and keys chosen so that every master
//! provably holds some of them.
//!
//! Keys that differ only in a counter do not spread "randomly": CRC16 is linear, so how many
//! slots (and masters) a run of such keys reaches depends on the rest of the key — a prefix
//! with the process id in it makes that a matter of luck. [`keys_on_every_master`] instead
//! puts a hashtag in each id, so a key's slot is the CRC16 of the tag alone, the same in
//! every run whatever the prefix, and picks tags by their computed slot.
#![cfg(feature = "redis")]

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;

use authcache_core::{Key, KeyKind, Keyspace};

/// Hash slots in a Redis Cluster.
pub const SLOTS: u16 = 16_384;

/// Candidate tags [`keys_on_every_master`] tries before giving up: far more than any layout
/// of a few masters needs (each master owns thousands of slots).
const MAX_TAGS: usize = 1 << 16;

/// The hash slot of `key`: CRC16/XMODEM of its hash part, mod 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    crc16_xmodem(hash_part(key)) % SLOTS
}

/// What Redis hashes: the bytes between the first `{` and the first `}` after it, when
/// there are some; otherwise the whole key (so `a{}{b}` hashes whole).
fn hash_part(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    match key[open + 1..].iter().position(|&b| b == b'}') {
        Some(len) if len > 0 => &key[open + 1..open + 1 + len],
        _ => key,
    }
}

/// CRC16/XMODEM (polynomial 0x1021, initial value 0, no reflection, no final xor): the
/// checksum the Cluster specification names for key slots.
fn crc16_xmodem(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0, |crc, &byte| {
        (0..8).fold(crc ^ (u16::from(byte) << 8), |crc, _| {
            if crc & 0x8000 == 0 {
                crc << 1
            } else {
                (crc << 1) ^ 0x1021
            }
        })
    })
}

/// Which master serves which slots, by the master's port, as one node reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotLayout {
    masters: BTreeMap<u16, Vec<RangeInclusive<u16>>>,
}

impl SlotLayout {
    /// Asks a node for the slot map (`CLUSTER SLOTS`).
    ///
    /// # Panics
    /// When the answer cannot be read, or its ranges overlap or leave a slot unserved.
    pub fn query(conn: &mut redis::Connection) -> Self {
        let reply: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(conn)
            .expect("CLUSTER SLOTS");
        let mut masters: BTreeMap<u16, Vec<RangeInclusive<u16>>> = BTreeMap::new();
        for entry in &reply {
            let field = |i: usize| entry.get(i).unwrap_or_else(|| panic!("entry {entry:?}"));
            let int = |value: &redis::Value| -> u16 {
                redis::from_redis_value_ref(value).unwrap_or_else(|e| panic!("{value:?}: {e}"))
            };
            let master: Vec<redis::Value> = redis::from_redis_value_ref(field(2))
                .unwrap_or_else(|e| panic!("master of {entry:?}: {e}"));
            let port = int(master.get(1).unwrap_or_else(|| panic!("{master:?}")));
            masters
                .entry(port)
                .or_default()
                .push(int(field(0))..=int(field(1)));
        }
        let layout = Self { masters };
        layout.check_coverage();
        layout
    }

    /// Panics unless every slot has exactly one master.
    fn check_coverage(&self) {
        let mut owners = vec![0_u8; usize::from(SLOTS)];
        for range in self.masters.values().flatten() {
            for slot in range.clone() {
                owners[usize::from(slot)] += 1;
            }
        }
        let wrong = owners.iter().filter(|&&owners| owners != 1).count();
        assert_eq!(
            wrong, 0,
            "{wrong} slots without exactly one master: {self:?}"
        );
    }

    /// The masters' ports, ascending.
    pub fn ports(&self) -> Vec<u16> {
        self.masters.keys().copied().collect()
    }

    /// The port of the master serving `slot`.
    ///
    /// # Panics
    /// When no master serves it (a layout from [`SlotLayout::query`] covers every slot).
    pub fn master_of(&self, slot: u16) -> u16 {
        self.masters
            .iter()
            .find(|(_, ranges)| ranges.iter().any(|range| range.contains(&slot)))
            .map(|(&port, _)| port)
            .unwrap_or_else(|| panic!("no master serves slot {slot}: {self:?}"))
    }
}

/// `per_master` [`KeyKind::User`] keys on every master of `layout`, each in a slot of its
/// own, ordered round-robin over the masters (so neighbours in the list live on different
/// masters). Ids are `{spread-N}`: the hashtag makes a key's slot CRC16(`spread-N`) whatever
/// the prefix, so the same ids are chosen in every run against the same layout.
///
/// # Panics
/// When the prefix holds a brace (the tag would not be the id's), or when the candidate
/// tags cannot give every master `per_master` slots.
pub fn keys_on_every_master(keys: &Keyspace, layout: &SlotLayout, per_master: usize) -> Vec<Key> {
    assert!(
        !keys.prefix().contains(['{', '}']),
        "prefix {:?} would hold the hashtag",
        keys.prefix()
    );
    let mut chosen: BTreeMap<u16, Vec<Key>> = layout
        .ports()
        .into_iter()
        .map(|port| (port, Vec::new()))
        .collect();
    let mut used_slots = BTreeSet::new();
    for tag in 0..MAX_TAGS {
        if chosen.values().all(|keys| keys.len() == per_master) {
            break;
        }
        let key = keys
            .key(KeyKind::User, &format!("{{spread-{tag}}}"))
            .expect("valid id");
        let slot = key_slot(key.as_str().as_bytes());
        let on_master = chosen
            .get_mut(&layout.master_of(slot))
            .expect("the layout's own master");
        if on_master.len() < per_master && used_slots.insert(slot) {
            on_master.push(key);
        }
    }
    let short: Vec<(u16, usize)> = chosen
        .iter()
        .filter(|(_, keys)| keys.len() < per_master)
        .map(|(&port, keys)| (port, keys.len()))
        .collect();
    assert!(
        short.is_empty(),
        "{MAX_TAGS} tags give too few slots (port, keys) {short:?} in {layout:?}"
    );
    (0..per_master)
        .flat_map(|i| chosen.values().map(move |keys| keys[i].clone()))
        .collect()
}

#[cfg(test)]
mod tests;
