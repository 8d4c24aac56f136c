//! Misconfiguration is an error at `build()`, with the fix in the message — no server needed.

use authcache_users::{MemoryUserRepository, User};

use crate::{
    AuthConfig, AuthError, AuthServiceBuilder, CacheConfig, JwtVerifier, RepositoryConfig,
};

const SECRET: &[u8] = b"unit-test-secret-of-at-least-32-bytes";

fn builder() -> AuthServiceBuilder<User> {
    AuthServiceBuilder::new().verifier(JwtVerifier::hs256(SECRET))
}

fn memory_repository() -> MemoryUserRepository<User> {
    MemoryUserRepository::new()
}

/// The message of the configuration error `build` returns.
async fn config_error(builder: AuthServiceBuilder<User>) -> String {
    match builder.build().await {
        Err(AuthError::Config(message)) => message,
        Err(other) => panic!("expected a configuration error, got {other:?}"),
        Ok(_) => panic!("expected a configuration error, the service was built"),
    }
}

fn toml(text: &str) -> AuthConfig {
    AuthConfig::from_toml(text).unwrap()
}

#[tokio::test]
async fn a_short_hmac_secret_is_refused_at_build_with_its_length_and_the_minimum() {
    for (secret, length) in [(&b""[..], 0), (b"short-secret", 12), (&[7; 31], 31)] {
        let message = config_error(
            AuthServiceBuilder::new()
                .verifier(JwtVerifier::hs256(secret))
                .repository(memory_repository()),
        )
        .await;
        assert!(
            message.starts_with("verifier:")
                && message.contains(&format!("{length} bytes"))
                && message.contains("at least 32"),
            "{message}"
        );
    }
    builder()
        .repository(memory_repository())
        .build()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_zero_cache_timeout_is_refused_at_build() {
    let zero = CacheConfig::Redis {
        url: "redis://127.0.0.1:1".into(),
        timeout_ms: Some(0),
    };
    let message = config_error(builder().repository(memory_repository()).cache(zero)).await;
    assert!(message.contains("timeout_ms is 0"), "{message}");
    let config = toml(
        "[cache]\nbackend = \"redis-cluster\"\nurls = [\"redis://127.0.0.1:1\"]\ntimeout_ms = 0\n\
         [repository]\nbackend = \"memory\"\n",
    );
    let message = config_error(builder().config(config)).await;
    assert!(message.contains("timeout_ms is 0"), "{message}");
}

#[tokio::test]
async fn a_malformed_mongodb_uri_is_a_configuration_error() {
    for uri in ["mongo://", "mongodb://"] {
        let repository = RepositoryConfig::mongodb(uri, "app");
        config_error(builder().repository_config(repository)).await;
    }
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn a_malformed_redis_url_is_a_configuration_error() {
    let message = config_error(
        builder()
            .repository(memory_repository())
            .cache(CacheConfig::redis("http://127.0.0.1:6379"))
            .signing_key(b"unit-test-cache-signing-key"),
    )
    .await;
    assert!(message.starts_with("redis:"), "{message}");
}

#[tokio::test]
async fn a_repository_in_code_and_in_configuration_is_refused_naming_both() {
    let config = toml("[repository]\nbackend = \"memory\"\n");
    let message = config_error(builder().repository(memory_repository()).config(config)).await;
    assert!(
        message.contains("`.repository(…)`") && message.contains("`[repository]` section"),
        "{message}"
    );
    let message = config_error(
        builder()
            .repository_config(RepositoryConfig::default())
            .repository(memory_repository()),
    )
    .await;
    assert!(message.contains("`.repository_config(…)`"), "{message}");
}

#[tokio::test]
async fn a_configuration_without_a_repository_section_needs_one_in_code() {
    let message = config_error(builder().config(toml("prefix = \"unit\"\n"))).await;
    assert!(message.contains("add `[repository]`"), "{message}");
    builder()
        .config(toml("prefix = \"unit\"\n"))
        .repository(memory_repository())
        .build()
        .await
        .unwrap();
    builder()
        .config(toml("[repository]\nbackend = \"memory\"\n"))
        .build()
        .await
        .unwrap();
}

/// A file of this test process's own in the temporary directory, holding `content`.
fn temp_file(name: &str, content: &str) -> String {
    let path =
        std::env::temp_dir().join(format!("authcache-builder-{}-{name}", std::process::id()));
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn a_service_is_built_from_configuration_alone() {
    use crate::{RevocationCheck, TokenError, TokenIssuer};
    use std::time::Duration;

    let secret = temp_file("alone-secret", "configured-verifier-secret-of-32-bytes\n");
    let key = temp_file("alone-key", "configured-signing-key-0123456789\n");
    let seed = temp_file(
        "alone-seed.json",
        r#"{"users": [{"id": "ada", "email": "ada@example.com", "name": "Ada", "roles": ["admin"]}],
            "roles": {"admin": ["users:read"]}}"#,
    );
    let config = toml(&format!(
        "revocation_check = \"fail-closed\"\nl1_capacity = 100\nvalidation_cache = false\n\
         [verifier]\nsecret_file = {secret:?}\nissuer = \"https://id\"\n\
         [signing]\nkey_file = {key:?}\n\
         [repository]\nbackend = \"memory\"\nseed_file = {seed:?}\n\
         [breaker]\nfailure_threshold = 2\n"
    ));
    let configured = AuthServiceBuilder::<User>::new().config(config);
    assert_eq!(configured.revocation_check, RevocationCheck::FailClosed);
    assert_eq!(configured.l1_capacity, 100);
    assert!(!configured.validation_cache);
    assert_eq!(configured.breaker.failure_threshold, 2);
    assert_eq!(
        configured.signing_key.as_deref(),
        Some(&b"configured-signing-key-0123456789"[..])
    );
    let debug = format!("{configured:?}");
    assert!(!debug.contains("configured-signing-key"), "{debug}");
    let auth = configured.build().await.unwrap();

    let issuer = TokenIssuer::hs256(b"configured-verifier-secret-of-32-bytes").issuer("https://id");
    let token = issuer.issue("ada", Duration::from_secs(60)).unwrap();
    let who = auth.authenticate(&format!("Bearer {token}")).await.unwrap();
    assert!(who.has_permission("users:read"));
    let forged = TokenIssuer::hs256(SECRET)
        .issuer("https://id")
        .issue("ada", Duration::from_secs(60))
        .unwrap();
    assert_eq!(
        auth.authenticate(&forged).await.unwrap_err(),
        AuthError::Token(TokenError::BadSignature)
    );
    for path in [secret, key, seed] {
        std::fs::remove_file(path).unwrap();
    }
}

#[tokio::test]
async fn a_configuration_error_is_returned_first_and_names_the_variable() {
    // No repository either: the unreadable key is what `build` reports.
    let config = toml("[signing]\nkey_env = \"AUTHCACHE_UNIT_TEST_UNSET_SIGNING_KEY\"\n");
    let message = config_error(builder().config(config)).await;
    assert!(
        message.contains("`AUTHCACHE_UNIT_TEST_UNSET_SIGNING_KEY`")
            && message.contains("signing.key_env")
            && message.contains("is not set"),
        "{message}"
    );
    let config = toml(
        "[verifier]\nsecret_env = \"AUTHCACHE_UNIT_TEST_UNSET_JWT_SECRET\"\n\
         [repository]\nbackend = \"memory\"\n",
    );
    let message = config_error(AuthServiceBuilder::new().config(config)).await;
    assert!(
        message.contains("`AUTHCACHE_UNIT_TEST_UNSET_JWT_SECRET`")
            && message.contains("verifier.secret_env"),
        "{message}"
    );
}

#[tokio::test]
async fn a_verifier_in_code_and_in_configuration_is_refused() {
    let secret = temp_file("two-verifiers", "configured-verifier-secret-of-32-bytes");
    let config = || {
        toml(&format!(
            "[verifier]\nsecret_file = {secret:?}\n[repository]\nbackend = \"memory\"\n"
        ))
    };
    let message = config_error(builder().config(config())).await;
    assert!(
        message.contains("two verifiers") && message.contains("`.verifier(…)`"),
        "{message}"
    );
    let message = config_error(
        AuthServiceBuilder::new()
            .config(config())
            .verifier(JwtVerifier::hs256(SECRET)),
    )
    .await;
    assert!(message.contains("two verifiers"), "{message}");
    AuthServiceBuilder::<User>::new()
        .config(config())
        .build()
        .await
        .unwrap();
    std::fs::remove_file(secret).unwrap();
}

#[tokio::test]
async fn configured_verifier_limits_and_timeouts_are_bounded_like_those_in_code() {
    let config = toml(
        "[verifier]\nsecret_env = \"X\"\nleeway_secs = 5\nmax_token_size = 512\n\
         max_token_lifetime_secs = 600\n",
    );
    let configured = AuthServiceBuilder::<User>::new().config(config);
    assert_eq!(configured.leeway, Some(std::time::Duration::from_secs(5)));
    assert_eq!(configured.max_token_size, Some(512));
    assert_eq!(
        configured.max_token_lifetime,
        std::time::Duration::from_secs(600)
    );
    // A day and an hour: past the most a repository timeout may be.
    let config = toml(
        "[repository]\nbackend = \"mongodb\"\nuri = \"mongodb://127.0.0.1:1\"\ndb = \"app\"\n\
         timeout_ms = 90000000\n",
    );
    let message = config_error(builder().config(config)).await;
    assert!(message.contains("repository timeout"), "{message}");
    let config = toml("[breaker]\ntimeout_ms = 0\n[repository]\nbackend = \"memory\"\n");
    let message = config_error(builder().config(config)).await;
    assert!(message.contains("breaker timeout"), "{message}");
}
