//! Unit tests of `memory`.

use super::*;

const SEED: &str = r#"{
        "users": [
            {"id": "u1", "email": "ada@example.com", "name": "Ada", "roles": ["admin", "dev"]},
            {"_id": "u2", "email": "bob@example.com", "name": "Bob"}
        ],
        "roles": {"admin": ["users:write", "users:read"], "dev": ["deploy", "users:read"]}
    }"#;

#[tokio::test]
async fn seeded_from_json() {
    let repo = MemoryUserRepository::<User>::from_json_str(SEED).unwrap();
    assert_eq!(repo.len(), 2);
    let ada = repo.find_by_id("u1").await.unwrap().unwrap();
    let perms = repo.permissions_for_roles(&ada.roles).await.unwrap();
    assert_eq!(perms, ["deploy", "users:read", "users:write"]);
}

#[test]
fn seed_errors_are_typed() {
    let bad_json = MemoryUserRepository::<User>::from_json_str("{").unwrap_err();
    assert!(matches!(bad_json, RepositoryError::Seed(_)));
    let dup = r#"{"users": [{"id": "a", "email": "x", "name": "A"}, {"id": "b", "email": "x", "name": "B"}]}"#;
    assert!(
        MemoryUserRepository::<User>::from_json_str(dup)
            .unwrap_err()
            .is_duplicate()
    );
    let bad_role = r#"{"roles": {"bad role": []}}"#;
    assert!(
        MemoryUserRepository::<User>::from_json_str(bad_role)
            .unwrap_err()
            .is_invalid_id()
    );
}

#[test]
fn seeded_from_file_and_missing_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.json");
    std::fs::write(&path, SEED).unwrap();
    assert_eq!(
        MemoryUserRepository::<User>::from_json_file(&path)
            .unwrap()
            .len(),
        2
    );
    let missing = MemoryUserRepository::<User>::from_json_file(dir.path().join("nope.json"));
    assert!(matches!(missing, Err(RepositoryError::Seed(reason)) if reason.contains("nope.json")));
}

#[tokio::test]
async fn changing_email_frees_the_old_one() {
    let repo = MemoryUserRepository::new()
        .with_user(User::new("a", "old@x", "A"))
        .unwrap();
    repo.upsert(&User::new("a", "new@x", "A")).await.unwrap();
    repo.upsert(&User::new("b", "old@x", "B")).await.unwrap();
    assert!(
        repo.upsert(&User::new("c", "new@x", "C"))
            .await
            .unwrap_err()
            .is_duplicate()
    );
    assert!(repo.delete("a").await.unwrap());
    repo.upsert(&User::new("c", "new@x", "C")).await.unwrap();
}

/// An application's own record type, without an email.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Account {
    #[serde(rename = "_id")]
    id: String,
    roles: Vec<String>,
    disabled: bool,
}

impl UserRecord for Account {
    fn id(&self) -> &str {
        &self.id
    }
    fn roles(&self) -> &[String] {
        &self.roles
    }
    fn disabled(&self) -> bool {
        self.disabled
    }
}

#[tokio::test]
async fn records_without_email_never_clash() {
    let repo = MemoryUserRepository::<Account>::from_json_str(
        r#"{"users": [{"_id": "a", "roles": [], "disabled": false}]}"#,
    )
    .unwrap();
    let b = Account {
        id: "b".into(),
        roles: vec![],
        disabled: true,
    };
    repo.upsert(&b).await.unwrap();
    assert_eq!(
        repo.find_many(&["b".into(), "a".into()])
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn clones_share_data() {
    let repo = MemoryUserRepository::new();
    let clone = repo.clone();
    clone.upsert(&User::new("a", "a@x", "A")).await.unwrap();
    assert!(repo.find_by_id("a").await.unwrap().is_some());
}
