//! `MongoUserRepository` on databases as adopters have them: documents written by the raw
//! driver the way a Python or TypeScript backend writes them (ObjectId `_id`s, fields
//! authcache does not know, optional fields missing), other collection and field names, and
//! indexes the application manages itself.
// The suite's helpers are not `#[test]` fns, but a failed unwrap there is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use authcache_tests::mongo_server::MongoServer;
use authcache_users::{
    Change, ChangeFeed, DocumentKind, IdKind, MongoOptions, MongoSchema, MongoUserRepository, User,
    UserRepository,
};
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Document, doc};
use mongodb::{Collection, Database};

/// `str(user.id)` of a MongoEngine user: what a token's `sub` holds.
const ADA_HEX: &str = "6b14a3f8c2d94e0f1a2b3c4d";
const BOB_HEX: &str = "6b14a3f8c2d94e0f1a2b3c4e";

fn oid(hex: &str) -> ObjectId {
    ObjectId::parse_str(hex).unwrap()
}

fn ids(ids: &[&str]) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}

async fn raw_database(server: &MongoServer, database: &str) -> Database {
    server.client().await.database(database)
}

/// Ada as pymongo stores her: ObjectId `_id`, a `last_login` authcache does not know, no
/// `name` and no `disabled`.
fn python_ada() -> Document {
    doc! {
        "_id": oid(ADA_HEX),
        "email": "ada@example.com",
        "roles": ["admin"],
        "last_login": 1_700_000_000_000_i64,
    }
}

async fn connect(
    server: &MongoServer,
    database: &str,
    options: MongoOptions,
) -> MongoUserRepository {
    MongoUserRepository::connect_with(&server.uri(), database, options)
        .await
        .unwrap()
}

#[tokio::test]
async fn python_documents_are_read_updated_and_deleted_by_their_hex_id() {
    let server = MongoServer::start().await;
    let database = server.fresh_database();
    let users: Collection<Document> = raw_database(&server, &database).await.collection("users");
    users.insert_one(python_ada()).await.unwrap();
    users
        .insert_one(doc! { "_id": "u-bob", "email": "bob@example.com", "name": "Bob" })
        .await
        .unwrap();
    let repo = MongoUserRepository::<User>::connect(&server.uri(), &database)
        .await
        .unwrap();

    let ada = repo
        .find_by_id(ADA_HEX)
        .await
        .unwrap()
        .expect("found by hex");
    assert_eq!(
        ada,
        User::new(ADA_HEX, "ada@example.com", "").with_roles(["admin"])
    );
    let upper = repo.find_by_id(&ADA_HEX.to_uppercase()).await.unwrap();
    assert_eq!(
        upper.map(|u| u.id),
        Some(ADA_HEX.to_owned()),
        "canonical id is lowercase"
    );

    let found = repo
        .find_many(&ids(&["u-bob", BOB_HEX, ADA_HEX, "u-bob"]))
        .await
        .unwrap();
    let found: Vec<&str> = found.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(found, ["u-bob", ADA_HEX], "ObjectId and string ids mixed");

    let renamed = ada
        .clone()
        .with_roles(["admin", "support"])
        .with_disabled(true);
    let renamed = User {
        name: "Ada Lovelace".into(),
        ..renamed
    };
    repo.upsert(&renamed).await.unwrap();
    assert_eq!(repo.find_by_id(ADA_HEX).await.unwrap(), Some(renamed));
    let stored = users
        .find_one(doc! { "_id": oid(ADA_HEX) })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.get_i64("last_login").unwrap(),
        1_700_000_000_000,
        "{stored}"
    );
    assert_eq!(stored.get_str("name").unwrap(), "Ada Lovelace");
    assert_eq!(
        users.count_documents(doc! {}).await.unwrap(),
        2,
        "updated in place, no string-id twin"
    );

    assert!(repo.delete(ADA_HEX).await.unwrap());
    assert_eq!(repo.find_by_id(ADA_HEX).await.unwrap(), None);
    assert!(!repo.delete(ADA_HEX).await.unwrap());
}

#[tokio::test]
async fn new_documents_get_the_id_kind_the_options_prescribe() {
    let server = MongoServer::start().await;
    let database = server.fresh_database();
    let users: Collection<Document> = raw_database(&server, &database).await.collection("users");
    let auto = connect(&server, &database, MongoOptions::default()).await;
    auto.upsert(&User::new(ADA_HEX, "ada@example.com", "Ada"))
        .await
        .unwrap();
    assert!(
        users
            .find_one(doc! { "_id": ADA_HEX })
            .await
            .unwrap()
            .is_some(),
        "auto keeps the given string id"
    );

    let forced = MongoOptions::default().id_kind(IdKind::ObjectId);
    let object_ids = connect(&server, &database, forced).await;
    object_ids
        .upsert(&User::new(BOB_HEX, "bob@example.com", "Bob"))
        .await
        .unwrap();
    assert!(
        users
            .find_one(doc! { "_id": oid(BOB_HEX) })
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        object_ids
            .upsert(&User::new("u-eve", "eve@example.com", "Eve"))
            .await
            .is_err()
    );
    assert_eq!(object_ids.find_by_id("u-eve").await.unwrap(), None);

    let strings = MongoOptions::default().id_kind(IdKind::String);
    let strings = connect(&server, &database, strings).await;
    assert_eq!(
        strings.find_by_id(BOB_HEX).await.unwrap(),
        None,
        "never an ObjectId"
    );
    assert!(strings.find_by_id(ADA_HEX).await.unwrap().is_some());
}

#[tokio::test]
async fn collections_and_fields_can_have_other_names() {
    let server = MongoServer::start().await;
    let database = server.fresh_database();
    let raw = raw_database(&server, &database).await;
    let accounts: Collection<Document> = raw.collection("accounts");
    accounts
        .insert_one(doc! {
            "_id": oid(ADA_HEX),
            "mail": "ada@example.com",
            "display_name": "Ada",
            "groups": ["admin"],
            "is_blocked": true,
        })
        .await
        .unwrap();
    raw.collection::<Document>("groups")
        .insert_one(doc! { "_id": "admin", "grants": ["users:read", "users:write"] })
        .await
        .unwrap();
    let schema = MongoSchema::default()
        .users_collection("accounts")
        .roles_collection("groups")
        .permissions_field("grants")
        .user_field("email", "mail")
        .user_field("name", "display_name")
        .user_field("roles", "groups")
        .user_field("disabled", "is_blocked");
    let repo = connect(&server, &database, MongoOptions::default().schema(schema)).await;

    let ada = repo.find_by_id(ADA_HEX).await.unwrap().unwrap();
    let expected = User::new(ADA_HEX, "ada@example.com", "Ada")
        .with_roles(["admin"])
        .with_disabled(true);
    assert_eq!(ada, expected);
    assert_eq!(
        repo.permissions_for_roles(&ids(&["admin"])).await.unwrap(),
        ["users:read", "users:write"]
    );

    repo.upsert(&expected.clone().with_disabled(false))
        .await
        .unwrap();
    let stored = accounts.find_one(doc! {}).await.unwrap().unwrap();
    assert!(!stored.get_bool("is_blocked").unwrap(), "{stored}");
    assert!(
        !stored.contains_key("disabled") && !stored.contains_key("email"),
        "{stored}"
    );

    let clash = User::new("u-copy", "ada@example.com", "Copy");
    let error = repo.upsert(&clash).await.unwrap_err();
    assert!(
        error.is_duplicate(),
        "unique index on the stored email field: {error:?}"
    );
    repo.upsert_role("support", ["tickets:write"])
        .await
        .unwrap();
    let groups: Collection<Document> = raw.collection("groups");
    let role = groups.find_one(doc! { "_id": "support" }).await.unwrap();
    assert!(role.unwrap().contains_key("grants"));
}

/// `(name, unique)` of every index of `users`.
async fn indexes(users: &Collection<Document>) -> Vec<(String, bool)> {
    let mut cursor = users.list_indexes().await.unwrap();
    let mut indexes = Vec::new();
    while cursor.advance().await.unwrap() {
        let index = cursor.deserialize_current().unwrap();
        let options = index.options.unwrap_or_default();
        indexes.push((
            options.name.unwrap_or_default(),
            options.unique.unwrap_or(false),
        ));
    }
    indexes
}

#[tokio::test]
async fn index_creation_can_be_turned_off_and_never_changes_an_existing_index() {
    let server = MongoServer::start().await;
    let database = server.fresh_database();
    let users: Collection<Document> = raw_database(&server, &database).await.collection("users");
    users.insert_one(python_ada()).await.unwrap();

    let off = MongoOptions::default().create_indexes(false);
    let repo = connect(&server, &database, off).await;
    assert_eq!(indexes(&users).await, [("_id_".to_owned(), false)]);
    repo.upsert(&User::new("u-twin", "ada@example.com", "Twin"))
        .await
        .unwrap();
    users.delete_one(doc! { "_id": "u-twin" }).await.unwrap();

    // The application's own, non-unique index on email stays as it is.
    let own = mongodb::IndexModel::builder()
        .keys(doc! { "email": 1 })
        .build();
    users.create_index(own).await.unwrap();
    let before = indexes(&users).await;
    assert!(before.iter().all(|(_, unique)| !unique), "{before:?}");
    connect(&server, &database, MongoOptions::default()).await;
    assert_eq!(indexes(&users).await, before);

    let fresh = server.fresh_database();
    connect(&server, &fresh, MongoOptions::default()).await;
    let users: Collection<Document> = raw_database(&server, &fresh).await.collection("users");
    assert!(
        indexes(&users)
            .await
            .contains(&("email_1".to_owned(), true)),
        "on by default"
    );
}

/// Only under `IdKind::ObjectId` for now: `change_streams.rs` still expects `Auto` to skip them.
#[tokio::test]
async fn with_object_id_kind_the_change_feed_names_object_id_documents_by_their_hex() {
    let server = MongoServer::start_replica_set().await;
    let database = server.fresh_database();
    let users: Collection<Document> = raw_database(&server, &database).await.collection("users");
    users
        .insert_one(doc! { "_id": "u-bob", "email": "bob@example.com" })
        .await
        .unwrap();
    let object_ids = MongoOptions::default().id_kind(IdKind::ObjectId);
    let repo = connect(&server, &database, object_ids).await;
    let mut stream = repo.open(None).await.unwrap();
    users.insert_one(python_ada()).await.unwrap();
    let change = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(change) = stream.next().await.unwrap() {
                return change;
            }
        }
    })
    .await
    .expect("the insert is reported");
    assert_eq!(change, Change::User(ADA_HEX.to_owned()));

    users
        .insert_one(doc! { "_id": 7, "email": "n@example.com" })
        .await
        .unwrap();
    let all = repo.ids_after(DocumentKind::User, None, 10).await.unwrap();
    assert_eq!(all, [ADA_HEX, "u-bob"], "string order, numbers left out");
    let after = repo
        .ids_after(DocumentKind::User, Some("6b"), 1)
        .await
        .unwrap();
    assert_eq!(after, [ADA_HEX]);
    let after = repo
        .ids_after(DocumentKind::User, Some(ADA_HEX), 10)
        .await
        .unwrap();
    assert_eq!(after, ["u-bob"]);
}
