//! Unit tests of `error`.

use super::*;

#[test]
fn query_methods() {
    assert!(RepositoryError::Unavailable("x".into()).is_transient());
    assert!(RepositoryError::Timeout("x".into()).is_timeout());
    assert!(RepositoryError::Duplicate("x".into()).is_duplicate());
    assert!(RepositoryError::from(KeyError::Empty).is_invalid_id());
    let corrupt = RepositoryError::Corrupt {
        id: "u1".into(),
        reason: "bad".into(),
    };
    assert_eq!(corrupt.corrupt_id(), Some("u1"));
    assert!(corrupt.to_string().contains("\"u1\""));
    assert!(!corrupt.is_transient());
}
