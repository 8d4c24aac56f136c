//! `[server]` and the split of one file into the service's and the sidecar's settings.

use super::*;

#[test]
fn one_file_holds_the_service_and_the_server() {
    let (auth, server) = load(
        r#"
        [cache]
        backend = "memory"

        [server]
        listen = "0.0.0.0:8000"
        admin_listen = "off"
        grpc_listen = "127.0.0.1:8002"
        admin_secret_env = "ADMIN_SECRET"
        cookie = "access_token"
        forwarded_headers = true

        [server.policy]
        default = "deny"
        [[server.policy.rules]]
        path = "/api/"
        roles = ["admin"]
        "#,
    )
    .unwrap();
    assert_eq!(auth.cache, authcache::CacheConfig::memory());
    assert_eq!(server.listen, "0.0.0.0:8000".parse().unwrap());
    assert_eq!(server.admin_listen, None);
    assert_eq!(server.grpc_listen, Some("127.0.0.1:8002".parse().unwrap()));
    assert_eq!(server.cookie.as_deref(), Some("access_token"));
    assert!(server.forwarded_headers);
    assert_eq!(server.policy.rules[0].requirement.roles, ["admin"]);
}

#[test]
fn without_a_server_table_the_defaults_apply_on_loopback() {
    let (_, server) = load("").unwrap();
    assert_eq!(server, ServerConfig::default());
    assert!(server.listen.ip().is_loopback());
    assert!(server.admin_listen.is_some_and(|a| a.ip().is_loopback()));
    assert_eq!(server.grpc_listen, None);
}

#[test]
fn a_misspelt_server_setting_is_an_error_naming_it() {
    let error = load("[server]\nlisten_addr = \"127.0.0.1:1\"\n").unwrap_err();
    assert!(error.to_string().contains("listen_addr"), "{error}");
    let error = load("[server]\nadmin_listen = \"nowhere\"\n").unwrap_err();
    assert!(error.to_string().contains("nowhere"), "{error}");
}

#[test]
fn the_services_own_settings_are_still_checked() {
    let error = load("[cache]\nbackend = \"memcached\"\n").unwrap_err();
    assert!(matches!(error, ConfigError::Auth(_)), "{error}");
}

#[test]
fn a_bad_rule_or_limit_is_refused_when_loaded() {
    let error = load("[[server.policy.rules]]\npath = \"api\"\n").unwrap_err();
    assert!(matches!(error, ConfigError::Rule(_)), "{error}");
    let error = load("[server]\nmax_header_bytes = 100\n").unwrap_err();
    assert!(error.to_string().contains("8192"), "{error}");
    let error = load("[server]\ncookie = \"a=b\"\n").unwrap_err();
    assert!(error.to_string().contains("cookie"), "{error}");
}

#[test]
fn the_admin_secret_is_read_from_its_file_and_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-secret");
    std::fs::write(&file, "0123456789abcdef-long-enough\n").unwrap();
    let config = ServerConfig {
        admin_secret_file: Some(file.display().to_string()),
        ..ServerConfig::default()
    };
    assert_eq!(
        config.admin_secret().unwrap().as_deref(),
        Some(&b"0123456789abcdef-long-enough"[..])
    );
    std::fs::write(&file, "short").unwrap();
    let error = config.admin_secret().unwrap_err().to_string();
    assert!(
        error.contains("16 bytes") && !error.contains("short"),
        "{error}"
    );
    let missing = ServerConfig {
        admin_secret_env: Some("AUTHCACHE_SERVER_TEST_UNSET_VARIABLE".into()),
        ..ServerConfig::default()
    };
    let error = missing.admin_secret().unwrap_err().to_string();
    assert!(
        error.contains("AUTHCACHE_SERVER_TEST_UNSET_VARIABLE"),
        "{error}"
    );
}
