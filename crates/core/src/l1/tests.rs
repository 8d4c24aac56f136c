//! Unit tests of `l1`.

use super::*;

#[test]
fn entries_clone_the_arc_only_and_convert_from_options() {
    let value = Arc::new(String::from("v"));
    let entry = L1Entry::from(Some(Arc::clone(&value)));
    let copy = entry.clone();
    assert!(copy.is_present());
    assert!(Arc::ptr_eq(&copy.into_value().unwrap(), &value));
    let absent: L1Entry<String> = L1Entry::from(None);
    assert!(!absent.is_present());
    assert!(absent.clone().into_value().is_none());
    assert_eq!(format!("{absent:?}"), "Absent");
    assert_eq!(format!("{entry:?}"), "Present(\"v\")");
}

#[test]
fn an_entry_keeps_its_deadline_through_clones_and_tags() {
    let deadline = Instant::now() + Duration::from_secs(7);
    let entry = L1Entry::present(Arc::new(1_u8)).expiring_at(deadline);
    assert_eq!(entry.expires_at(), Some(deadline));
    let tagged = entry.clone().at(Version::default());
    assert_eq!(tagged.expires_at(), Some(deadline));
    assert_eq!(L1Entry::<u8>::absent().expires_at(), None);
}
