//! `MongoUserRepository` against a real (SecantusDB) server made to misbehave: corrupt
//! documents, a killed server, a hung server. Every wait is bounded so a regression fails
//! instead of hanging.
// The suite's helpers are not `#[test]` fns, but a failed unwrap there is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use authcache_tests::mongo_server::MongoServer;
use authcache_tests::process::eventually;
use authcache_users::{MongoOptions, MongoUserRepository, RepositoryError, User, UserRepository};
use mongodb::bson::{Bson, Document, doc};

/// Far above every repository timeout: reaching it means the repository hung.
const NO_HANG: Duration = Duration::from_secs(30);

async fn bounded<T>(what: &str, work: impl Future<Output = T>) -> T {
    tokio::time::timeout(NO_HANG, work)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {NO_HANG:?}"))
}

/// `find_by_id` once the server answers again: retried, bounded, while it fails transiently.
async fn find_once_answering(
    repo: &MongoUserRepository<User>,
    id: &str,
    what: &str,
) -> Result<Option<User>, RepositoryError> {
    eventually(NO_HANG, what, || async {
        !matches!(repo.find_by_id(id).await, Err(e) if e.is_transient())
    })
    .await;
    repo.find_by_id(id).await
}

#[tokio::test]
async fn corrupt_documents_are_typed_errors_naming_the_id() {
    let server = MongoServer::start().await;
    let database = server.fresh_database();
    let repo = MongoUserRepository::<User>::connect(&server.uri(), &database)
        .await
        .unwrap();
    repo.upsert(&User::new("u-good", "good@example.com", "Good"))
        .await
        .unwrap();
    let raw = server.client().await.database(&database);
    raw.collection::<Document>("users")
        .insert_one(doc! { "_id": "u-bad", "email": 42, "name": "Bad" })
        .await
        .unwrap();
    raw.collection::<Document>("roles")
        .insert_one(doc! { "_id": "r-bad", "permissions": "not-an-array" })
        .await
        .unwrap();

    let error = repo.find_by_id("u-bad").await.unwrap_err();
    assert_eq!(error.corrupt_id(), Some("u-bad"), "{error:?}");
    let error = repo
        .find_many(&["u-good".into(), "u-bad".into()])
        .await
        .unwrap_err();
    assert_eq!(error.corrupt_id(), Some("u-bad"), "{error:?}");
    let error = repo
        .permissions_for_roles(&["r-bad".into()])
        .await
        .unwrap_err();
    assert_eq!(error.corrupt_id(), Some("r-bad"), "{error:?}");
    // The good document is still served.
    assert!(repo.find_by_id("u-good").await.unwrap().is_some());
}

#[tokio::test]
async fn killed_server_is_unavailable_promptly_and_recovers_after_restart() {
    let mut server = MongoServer::start().await;
    let database = server.fresh_database();
    let repo = MongoUserRepository::<User>::connect(&server.uri(), &database)
        .await
        .unwrap();
    repo.upsert(&User::new("u1", "u1@example.com", "One"))
        .await
        .unwrap();

    server.kill();
    let error = bounded("find_by_id on a killed server", repo.find_by_id("u1"))
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    let error = bounded(
        "upsert on a killed server",
        repo.upsert(&User::new("u2", "u2@example.com", "Two")),
    )
    .await
    .unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    // Connecting needs no server (start-up with MongoDB down succeeds, and says so): the
    // first call is what finds it unavailable, and its index waits until it is back.
    let late = bounded(
        "connect to a killed server",
        MongoUserRepository::<User>::connect(&server.uri(), &database),
    )
    .await
    .unwrap();
    let error = bounded("find_by_id through it", late.find_by_id("u1"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RepositoryError::Unavailable(_)),
        "{error:?}"
    );

    server.restart().await;
    // Storage is in memory: the restarted server is empty, and the same repository works again.
    let found = find_once_answering(&repo, "u1", "find_by_id after restart").await;
    assert_eq!(found.unwrap(), None);
}

#[tokio::test]
async fn hung_server_times_out() {
    let server = MongoServer::start().await;
    let database = server.fresh_database();
    // Seeded with the default timeout: only the call on the hung server is about the 1 s
    // one, and a loaded machine may take longer than that for a healthy write.
    MongoUserRepository::<User>::connect(&server.uri(), &database)
        .await
        .unwrap()
        .upsert(&User::new("u1", "u1@example.com", "One"))
        .await
        .unwrap();
    let options = MongoOptions::default().operation_timeout(Duration::from_secs(1));
    let repo = MongoUserRepository::<User>::connect_with(&server.uri(), &database, options)
        .await
        .unwrap();

    server.hang();
    let result = bounded("find_by_id on a hung server", repo.find_by_id("u1")).await;
    server.resume();
    let error = result.unwrap_err();
    assert!(error.is_timeout(), "{error:?}");

    let found = find_once_answering(&repo, "u1", "find_by_id after resume").await;
    assert_eq!(found.unwrap().map(|u| u.id), Some("u1".to_owned()));
}

#[tokio::test]
async fn email_index_is_created_once_and_reconnecting_is_idempotent() {
    let server = MongoServer::start().await;
    let database = server.fresh_database();
    for _ in 0..2 {
        MongoUserRepository::<User>::connect(&server.uri(), &database)
            .await
            .unwrap();
    }
    let indexes = server
        .client()
        .await
        .database(&database)
        .collection::<Document>("users")
        .list_indexes()
        .await
        .unwrap();
    let indexes: Vec<_> = futures::TryStreamExt::try_collect(indexes).await.unwrap();
    let email: Vec<_> = indexes
        .iter()
        .filter(|i| i.keys.contains_key("email"))
        .collect();
    assert_eq!(email.len(), 1, "{indexes:?}");
    let options = email[0].options.as_ref().unwrap();
    assert_eq!(options.unique, Some(true), "{indexes:?}");
    assert!(options.partial_filter_expression.is_some(), "{indexes:?}");
    // Record types without an email (or with `email: null`) never clash on it.
    let users = server
        .client()
        .await
        .database(&database)
        .collection::<Document>("users");
    for (id, email) in [
        ("a", None),
        ("b", None),
        ("c", Some(Bson::Null)),
        ("d", Some(Bson::Null)),
    ] {
        let mut document = doc! { "_id": id };
        if let Some(email) = email {
            document.insert("email", email);
        }
        users.insert_one(document).await.unwrap();
    }
}
