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
