//! A whole service built from a TOML configuration and nothing else, against a real
//! SecantusDB and a real Redis: the verifier's secret from an environment variable, the
//! cache signing key from a file, and a MongoDB laid out as an adopter has it (ObjectId
//! `_id`s, other collection and field names, indexes managed by the application).
// The suite's helpers are not `#[test]` fns, but a failed unwrap there is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use authcache::{AuthConfig, AuthError, AuthService, TokenIssuer};
use authcache_tests::mongo_server::MongoServer;
use authcache_tests::redis_server::RedisServer;
use mongodb::Collection;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Document, doc};

/// Named by the configuration's `secret_env`; set only in the child process this test runs
/// itself in (a test may not change its own process's environment).
const SECRET_VAR: &str = "AUTHCACHE_CONFIG_FILE_TEST_JWT_SECRET";
const SECRET: &str = "config-file-test-verifier-secret-32-bytes";
const ISSUER: &str = "https://id.example.com";

fn bearer(sub: &str, secret: &str) -> String {
    let token = TokenIssuer::hs256(secret)
        .issuer(ISSUER)
        .issue(sub, Duration::from_secs(600))
        .unwrap();
    format!("Bearer {token}")
}

/// Runs the test `name` of this binary again, alone, with the secret in its environment,
/// and fails if it did not run and pass.
fn rerun_with_secret(name: &str) {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(SECRET_VAR, SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{name} with {SECRET_VAR} set:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_service_built_from_a_toml_file_alone_serves_an_adopters_mongodb() {
    if std::env::var_os(SECRET_VAR).is_none() {
        rerun_with_secret("a_service_built_from_a_toml_file_alone_serves_an_adopters_mongodb");
        return;
    }
    let (mongo, redis) = (MongoServer::start().await, RedisServer::start());
    let db = mongo.fresh_database();
    let raw = mongo.client().await.database(&db);
    let (ada, eve) = (ObjectId::new(), ObjectId::new());
    let accounts: Collection<Document> = raw.collection("accounts");
    accounts
        .insert_many([
            doc! {
                "_id": ada,
                "mail": "ada@example.com",
                "displayName": "Ada",
                "memberOf": ["admin"],
                "last_login": 1_700_000_000_000_i64,
            },
            doc! { "_id": eve, "mail": "eve@example.com", "displayName": "Eve", "locked": true },
        ])
        .await
        .unwrap();
    raw.collection::<Document>("groups")
        .insert_one(doc! { "_id": "admin", "grants": ["users:read", "users:write"] })
        .await
        .unwrap();
    let key_dir = tempfile::tempdir().unwrap();
    let config = |key: &str| {
        let key_file = key_dir.path().join(key);
        std::fs::write(&key_file, format!("{key}\n")).unwrap();
        AuthConfig::from_toml(&format!(
            r#"
            prefix = "cfgfile"
            revocation_check = "fail-closed"

            [verifier]
            secret_env = "{SECRET_VAR}"
            issuer = "{ISSUER}"

            [signing]
            key_file = {key_file:?}

            [cache]
            backend = "redis"
            url = "{redis_url}"

            [repository]
            backend = "mongodb"
            uri = "{mongo_uri}"
            db = "{db}"
            timeout_ms = 2000
            id_kind = "object-id"
            users_collection = "accounts"
            roles_collection = "groups"
            create_indexes = false

            [repository.fields]
            email = "mail"
            name = "displayName"
            roles = "memberOf"
            disabled = "locked"
            permissions = "grants"
            "#,
            key_file = key_file.display().to_string(),
            redis_url = redis.url(),
            mongo_uri = mongo.uri(),
        ))
        .unwrap()
    };
    const KEY: &str = "config-file-test-cache-signing-key";
    let auth = AuthService::builder()
        .config(config(KEY))
        .build()
        .await
        .unwrap();

    let hex = ada.to_hex();
    let who = auth.authenticate(&bearer(&hex, SECRET)).await.unwrap();
    assert_eq!(who.id(), hex);
    assert_eq!(who.user.name, "Ada");
    assert_eq!(who.user.email, "ada@example.com");
    assert_eq!(*who.roles, ["admin"]);
    assert_eq!(*who.permissions, ["users:read", "users:write"]);
    assert_eq!(
        auth.authenticate(&bearer(&eve.to_hex(), SECRET))
            .await
            .unwrap_err(),
        AuthError::Disabled
    );
    // Under `object-id`, an id that is no ObjectId names nobody.
    assert_eq!(
        auth.authenticate(&bearer("ada", SECRET)).await.unwrap_err(),
        AuthError::UnknownUser
    );
    assert!(matches!(
        auth.authenticate(&bearer(&hex, "a-secret-that-is-not-the-configured-one"))
            .await
            .unwrap_err(),
        AuthError::Token(_)
    ));

    let mut names = accounts.list_index_names().await.unwrap();
    names.sort();
    assert_eq!(names, ["_id_"], "create_indexes = false creates none");

    // The shared cache's entries are signed with the key from the file: another instance
    // with the same file reads Ada from Redis, one with another key loads her itself.
    let same_key = AuthService::builder()
        .config(config(KEY))
        .build()
        .await
        .unwrap();
    assert_eq!(
        same_key
            .authenticate(&bearer(&hex, SECRET))
            .await
            .unwrap()
            .id(),
        hex
    );
    assert_eq!(same_key.stats().users.loads, 0, "{:?}", same_key.stats());
    let other_key = AuthService::builder()
        .config(config("another-cache-signing-key-0123456"))
        .build()
        .await
        .unwrap();
    assert_eq!(
        other_key
            .authenticate(&bearer(&hex, SECRET))
            .await
            .unwrap()
            .id(),
        hex
    );
    assert_eq!(other_key.stats().users.loads, 1, "{:?}", other_key.stats());
}
