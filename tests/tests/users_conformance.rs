//! One repository conformance suite, run against `MemoryUserRepository` and against
//! `MongoUserRepository` on a real (SecantusDB) server: both must behave the same.
// The suite's helpers are not `#[test]` fns, but a failed unwrap there is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::future::Future;
use std::sync::Arc;

use authcache_tests::mongo_server::MongoServer;
use authcache_users::{
    MemoryUserRepository, MongoOptions, MongoSchema, MongoUserRepository, User, UserRepository,
};

type Repo = Arc<dyn UserRepository<User>>;

/// Every fresh repository starts with these roles and no users.
const ROLES: [(&str, &[&str]); 3] = [
    ("admin", &["users:write", "users:read"]),
    ("support", &["users:read", "tickets:write"]),
    ("empty", &[]),
];

fn ids(ids: &[&str]) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}

fn ada() -> User {
    User::new("u-ada", "ada@example.com", "Ada Lovelace")
        .with_roles(["admin", "support"])
        .with_updated_at(1_700_000_000_123)
}

fn bob() -> User {
    User::new("u-bob", "bob@example.com", "Bob").with_roles(["support"])
}

/// Runs every case, each on a repository fresh from `fresh`.
async fn conformance<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Repo>,
{
    insert_and_find_by_id(fresh().await).await;
    find_many_with_gaps(fresh().await).await;
    upsert_replaces(fresh().await).await;
    delete_removes(fresh().await).await;
    permissions_are_the_union_over_roles(fresh().await).await;
    duplicate_email_rejected(fresh().await).await;
    invalid_ids_rejected(fresh().await).await;
}

async fn insert_and_find_by_id(repo: Repo) {
    assert_eq!(repo.find_by_id("u-ada").await.unwrap(), None);
    repo.upsert(&ada()).await.unwrap();
    assert_eq!(repo.find_by_id("u-ada").await.unwrap(), Some(ada()));
    let disabled = bob().with_disabled(true);
    repo.upsert(&disabled).await.unwrap();
    assert_eq!(repo.find_by_id("u-bob").await.unwrap(), Some(disabled));
}

async fn find_many_with_gaps(repo: Repo) {
    repo.upsert(&ada()).await.unwrap();
    repo.upsert(&bob()).await.unwrap();
    let found = repo
        .find_many(&ids(&["u-bob", "u-missing", "u-ada", "u-bob", "u-gone"]))
        .await
        .unwrap();
    assert_eq!(
        found,
        [bob(), ada()],
        "caller's order, gaps skipped, duplicates once"
    );
    assert!(
        repo.find_many(&ids(&["u-missing"]))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(repo.find_many(&[]).await.unwrap().is_empty());
}

async fn upsert_replaces(repo: Repo) {
    repo.upsert(&ada()).await.unwrap();
    let renamed = User::new("u-ada", "countess@example.com", "Countess of Lovelace")
        .with_roles(["support"])
        .with_updated_at(1_800_000_000_000);
    repo.upsert(&renamed).await.unwrap();
    assert_eq!(repo.find_by_id("u-ada").await.unwrap(), Some(renamed));
    // The old email is free again: the replaced document no longer holds it.
    let newcomer = User::new("u-new", "ada@example.com", "Newcomer");
    repo.upsert(&newcomer).await.unwrap();
}

async fn delete_removes(repo: Repo) {
    repo.upsert(&ada()).await.unwrap();
    assert!(repo.delete("u-ada").await.unwrap());
    assert!(!repo.delete("u-ada").await.unwrap());
    assert_eq!(repo.find_by_id("u-ada").await.unwrap(), None);
    // Its email is free again.
    repo.upsert(&User::new("u-other", "ada@example.com", "Other"))
        .await
        .unwrap();
}

async fn permissions_are_the_union_over_roles(repo: Repo) {
    let union = repo
        .permissions_for_roles(&ids(&["admin", "support"]))
        .await
        .unwrap();
    assert_eq!(union, ["tickets:write", "users:read", "users:write"]);
    let with_unknown = repo
        .permissions_for_roles(&ids(&["support", "no-such-role", "empty", "support"]))
        .await
        .unwrap();
    assert_eq!(with_unknown, ["tickets:write", "users:read"]);
    assert!(
        repo.permissions_for_roles(&ids(&["no-such-role"]))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(repo.permissions_for_roles(&[]).await.unwrap().is_empty());
}

async fn duplicate_email_rejected(repo: Repo) {
    repo.upsert(&ada()).await.unwrap();
    let impostor = User::new("u-impostor", "ada@example.com", "Impostor");
    let error = repo.upsert(&impostor).await.unwrap_err();
    assert!(error.is_duplicate(), "{error:?}");
    assert_eq!(repo.find_by_id("u-impostor").await.unwrap(), None);
    assert_eq!(
        repo.find_by_id("u-ada").await.unwrap(),
        Some(ada()),
        "original untouched"
    );
    // Re-saving a user with its own email is not a duplicate.
    repo.upsert(&ada().with_disabled(true)).await.unwrap();
    // Nor is taking over an email nobody holds.
    repo.upsert(&bob()).await.unwrap();
    let error = repo
        .upsert(&User {
            email: "ada@example.com".to_owned(),
            ..bob().with_roles(["admin"])
        })
        .await
        .unwrap_err();
    assert!(error.is_duplicate(), "{error:?}");
    assert_eq!(
        repo.find_by_id("u-bob").await.unwrap(),
        Some(bob()),
        "failed update changes nothing"
    );
}

async fn invalid_ids_rejected(repo: Repo) {
    let too_long = "x".repeat(257);
    for bad in ["", "has space", "tab\there", "nl\n", too_long.as_str()] {
        let error = repo.find_by_id(bad).await.unwrap_err();
        assert!(error.is_invalid_id(), "find_by_id({bad:?}): {error:?}");
        let error = repo.delete(bad).await.unwrap_err();
        assert!(error.is_invalid_id(), "delete({bad:?}): {error:?}");
        let error = repo
            .upsert(&User::new(bad, "x@example.com", "X"))
            .await
            .unwrap_err();
        assert!(error.is_invalid_id(), "upsert({bad:?}): {error:?}");
        let error = repo.find_many(&ids(&["u-ada", bad])).await.unwrap_err();
        assert!(error.is_invalid_id(), "find_many([.., {bad:?}]): {error:?}");
        let error = repo
            .permissions_for_roles(&ids(&["admin", bad]))
            .await
            .unwrap_err();
        assert!(
            error.is_invalid_id(),
            "permissions_for_roles([.., {bad:?}]): {error:?}"
        );
    }
    assert!(
        repo.find_by_id(&"x".repeat(256)).await.unwrap().is_none(),
        "256 bytes is allowed"
    );
}

#[tokio::test]
async fn memory_repository_conforms() {
    conformance(|| async {
        let repo = ROLES
            .iter()
            .fold(MemoryUserRepository::new(), |repo, (role, perms)| {
                repo.with_role(role, perms.iter().copied()).unwrap()
            });
        Arc::new(repo) as Repo
    })
    .await;
}

#[tokio::test]
async fn mongo_repository_conforms() {
    let server = MongoServer::start().await;
    conformance(|| async {
        let repo = MongoUserRepository::connect(&server.uri(), &server.fresh_database())
            .await
            .unwrap();
        for (role, perms) in ROLES {
            repo.upsert_role(role, perms.iter().copied()).await.unwrap();
        }
        Arc::new(repo) as Repo
    })
    .await;
}

#[tokio::test]
async fn mongo_repository_with_other_names_conforms() {
    let server = MongoServer::start().await;
    conformance(|| async {
        let schema = MongoSchema::default()
            .users_collection("accounts")
            .roles_collection("groups")
            .permissions_field("grants")
            .user_field("email", "mail")
            .user_field("roles", "groups");
        let options = MongoOptions::default().schema(schema);
        let repo =
            MongoUserRepository::connect_with(&server.uri(), &server.fresh_database(), options)
                .await
                .unwrap();
        for (role, perms) in ROLES {
            repo.upsert_role(role, perms.iter().copied()).await.unwrap();
        }
        Arc::new(repo) as Repo
    })
    .await;
}
