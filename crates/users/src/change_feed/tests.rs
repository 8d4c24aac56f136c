//! Unit tests of `change_feed`.

use super::*;

#[test]
fn resume_points_round_trip_and_do_not_print_their_bytes() {
    let point = ResumePoint::from_bytes(vec![1, 2, 3]);
    assert_eq!(ResumePoint::from_bytes(point.as_bytes()), point);
    assert_eq!(format!("{point:?}"), "ResumePoint(3 bytes)");
}

#[test]
fn only_history_lost_asks_for_a_full_invalidation() {
    assert!(FeedError::HistoryLost("pruned".into()).is_history_lost());
    let down = FeedError::from(RepositoryError::Unavailable("down".into()));
    assert!(!down.is_history_lost());
    assert!(down.to_string().contains("down"));
}
