//! Unit tests of `versioned`.

use super::*;
use crate::test_support::RecordingL1;

fn tier() -> VersionedL1<String> {
    VersionedL1::new(Some(Arc::new(RecordingL1::default())))
}

fn served(tier: &VersionedL1<String>, id: &str) -> Option<String> {
    tier.get(id)
        .and_then(L1Entry::into_value)
        .map(|value| (*value).clone())
}

#[tokio::test]
async fn an_entry_filled_under_an_old_version_is_never_served() {
    let tier = tier();
    let ttl = Duration::from_secs(30);
    let before = tier.version("a");
    tier.forget("a");
    // The filler read `before`, then the invalidation ran; its insert lands late.
    tier.l1.as_ref().unwrap().insert(
        "a",
        L1Entry::from(Some(Arc::new("old".into()))).at(before),
        ttl,
    );
    assert_eq!(served(&tier, "a"), None);
    tier.insert("a", Some(Arc::new("new".into())), ttl, tier.version("a"));
    assert_eq!(served(&tier, "a").as_deref(), Some("new"));
}

#[tokio::test]
async fn bumps_move_the_epoch_and_forget_all_moves_every_id() {
    let tier = tier();
    let ttl = Duration::from_secs(30);
    let epoch = tier.epoch();
    let (a, b) = (tier.version("a"), tier.version("b"));
    tier.insert("a", Some(Arc::new("1".into())), ttl, a);
    tier.insert("b", Some(Arc::new("2".into())), ttl, b);
    tier.forget("a");
    assert_ne!(tier.epoch(), epoch);
    assert_eq!(served(&tier, "a"), None);
    let epoch = tier.epoch();
    tier.forget_all();
    assert_ne!(tier.epoch(), epoch);
    assert_ne!(tier.version("b"), b);
    assert_eq!(served(&tier, "b"), None);
}

#[tokio::test(start_paused = true)]
async fn a_served_entry_carries_the_deadline_it_was_inserted_with() {
    let tier = tier();
    let ttl = Duration::from_secs(12);
    let inserted = Instant::now();
    tier.insert("a", Some(Arc::new("v".into())), ttl, tier.version("a"));
    tokio::time::advance(Duration::from_secs(5)).await;
    let entry = tier.get("a").unwrap();
    assert_eq!(entry.expires_at(), Some(inserted + ttl));
}

#[tokio::test]
async fn an_insert_already_behind_is_not_stored() {
    let l1 = Arc::new(RecordingL1::<String>::default());
    let tier = VersionedL1::new(Some(l1.clone() as Arc<dyn L1Cache<String>>));
    let before = tier.version("a");
    tier.forget("a");
    tier.insert(
        "a",
        Some(Arc::new("old".into())),
        Duration::from_secs(1),
        before,
    );
    assert!(l1.ttls().is_empty());
}
