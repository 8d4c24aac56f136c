//! Unit tests of `config`.

use super::*;

#[test]
fn parses_credentials_db_and_tls_without_showing_them() {
    let config = RedisConfig::from_url("rediss://alice:hunter2@cache.example:6380/3").unwrap();
    assert!(config.uses_tls());
    assert_eq!(config.endpoints(), ["cache.example:6380"]);
    let node = config.first_node().redis_settings();
    assert_eq!(
        (node.username(), node.password(), node.db()),
        (Some("alice"), Some("hunter2"), 3)
    );
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("hunter2") && !debug.contains("alice"),
        "{debug}"
    );
    assert!(
        debug.contains("rediss://<redacted>@cache.example:6380/3"),
        "{debug}"
    );
}

#[test]
fn defaults_and_overrides() {
    let config = RedisConfig::from_url("redis://127.0.0.1").unwrap();
    assert_eq!(config.timeout(), RedisConfig::DEFAULT_TIMEOUT);
    assert_eq!(
        config.connect_timeout(),
        RedisConfig::DEFAULT_CONNECT_TIMEOUT
    );
    assert!(!config.uses_tls());
    let config = config
        .with_timeout(Duration::from_millis(5))
        .with_connect_timeout(Duration::from_millis(7));
    assert_eq!(
        (config.timeout(), config.connect_timeout()),
        (Duration::from_millis(5), Duration::from_millis(7))
    );
}

#[test]
fn every_node_is_connected_with_nagle_off() {
    let config =
        RedisConfig::from_urls(["redis://127.0.0.1:7000", "rediss://cache.example"]).unwrap();
    assert!(
        config
            .nodes()
            .iter()
            .all(|node| node.tcp_settings().nodelay()),
        "a node would be connected with Nagle's algorithm on"
    );
}

#[test]
fn rejects_bad_urls_without_echoing_them() {
    let err = RedisConfig::from_url("http://user:topsecret@host").unwrap_err();
    assert!(matches!(err, ConfigError::InvalidUrl { index: 0, .. }));
    assert!(!err.to_string().contains("topsecret"), "{err}");
    let err = RedisConfig::from_urls(["redis://a", "redis://:pw@b:notaport"]).unwrap_err();
    assert!(
        matches!(err, ConfigError::InvalidUrl { index: 1, .. }),
        "{err:?}"
    );
    assert_eq!(
        RedisConfig::from_urls(Vec::<String>::new()).unwrap_err(),
        ConfigError::NoNodes
    );
}

#[test]
fn redactor_removes_the_password() {
    let config = RedisConfig::from_url("redis://:pa55word@127.0.0.1").unwrap();
    assert_eq!(
        config.redactor().scrub("auth pa55word failed"),
        "auth <redacted> failed"
    );
    assert_eq!(Redactor::default().scrub("plain"), "plain");
}

#[test]
fn preparing_tls_never_panics_and_leaves_a_provider() {
    let config = RedisConfig::from_url("rediss://127.0.0.1").unwrap();
    config.prepare_tls();
    config.prepare_tls();
    assert!(rustls::crypto::CryptoProvider::get_default().is_some());
}
