//! Unit tests of `repository`.

use super::*;

#[test]
fn dedup_keeps_first_appearance() {
    let ids: Vec<String> = ["b", "a", "b", "c", "a"].map(String::from).into();
    assert_eq!(dedup_in_order(&ids), ["b", "a", "c"]);
}

#[cfg(feature = "mock")]
#[tokio::test]
async fn mock_stands_in_as_a_trait_object() {
    let mut mock = MockUserRepository::<User>::new();
    mock.expect_find_by_id()
        .returning(|_| Err(crate::RepositoryError::Unavailable("down".into())));
    let repo: std::sync::Arc<dyn UserRepository> = std::sync::Arc::new(mock);
    assert!(repo.find_by_id("u1").await.unwrap_err().is_unavailable());
}

#[tokio::test]
async fn a_backend_in_this_process_answers_a_ping_at_once() {
    let repo: &dyn UserRepository = &crate::MemoryUserRepository::new();
    assert_eq!(repo.ping().await, Ok(()));
}

#[test]
fn validate_ids_rejects_any_bad_id() {
    assert!(validate_ids(&["ok".into(), "also-ok".into()]).is_ok());
    assert!(validate_ids(&["ok".into(), "not ok".into()]).is_err());
    assert!(validate_ids(&[String::new()]).is_err());
}
