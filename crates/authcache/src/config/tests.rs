//! Parsing of every section, the environment mapping of every setting, the key sources and
//! their errors, and the redaction of secrets.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use authcache_core::{BreakerConfig, Ttls};
use authcache_jwt::{Algorithm, TokenIssuer, test_keys};

use super::env::{ENV_SETTINGS, Kind, edit_distance, misspelt_setting};
use super::*;
use crate::AuthError;

const SECRET: &str = "unit-test-verifier-secret-of-32-bytes-or-more";

/// An environment of the test's own: `*_env` references are looked up here.
fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let map: HashMap<String, OsString> = pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), OsString::from(value)))
        .collect();
    move |name| map.get(name).cloned()
}

/// A file of this test process's own in the temporary directory, holding `content`.
fn temp_file(name: &str, content: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("authcache-config-{}-{name}", std::process::id()));
    std::fs::write(&path, content).unwrap();
    path
}

fn config_message(result: Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(AuthError::Config(message)) => message,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

fn verifier(toml: &str) -> VerifierConfig {
    AuthConfig::from_toml(&format!("[verifier]\n{toml}"))
        .unwrap()
        .verifier
        .unwrap()
}

fn hs256_bearer(secret: &[u8]) -> String {
    TokenIssuer::hs256(secret)
        .issue("ada", Duration::from_secs(60))
        .unwrap()
}

#[test]
fn the_verifier_section_reads_every_setting() {
    let config = verifier(
        "algorithm = \"HS384\"\nsecretEnv = \"JWT\"\nissuer = \"https://id\"\n\
         audience = [\"api\", \"admin\"]\nleeway_secs = 5\nmaxTokenSize = 4096\n\
         max_token_lifetime_secs = 600\n",
    );
    assert_eq!(config.algorithm, Some(Algorithm::HS384));
    assert_eq!(config.secret_env.as_deref(), Some("JWT"));
    assert_eq!(config.issuer, ["https://id"]);
    assert_eq!(config.audience, ["api", "admin"]);
    assert_eq!(config.leeway_secs, Some(5));
    assert_eq!(config.max_token_size, Some(4096));
    assert_eq!(config.max_token_lifetime_secs, Some(600));
    let error = AuthConfig::from_toml("[verifier]\nalgorithm = \"none\"\n").unwrap_err();
    assert!(error.to_string().contains("none"), "{error}");
    let error = AuthConfig::from_toml("[verifier]\naudience = 5\n").unwrap_err();
    assert!(error.to_string().contains("a string or a list"), "{error}");
}

#[test]
fn a_secret_written_inline_is_refused_naming_the_references_and_never_echoed() {
    for (toml, fix) in [
        (
            "[verifier]\nsecret = \"hunter2-hunter2-hunter2-hunter2-x\"\n",
            "secret_env",
        ),
        (
            "[signing]\nkey = \"hunter2-hunter2-hunter2-hunter2-x\"\n",
            "key_env",
        ),
    ] {
        let message = config_message(AuthConfig::from_toml(toml));
        assert!(
            message.contains(fix) && message.contains("line "),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
    }
    // Nor is a value quoted when the key itself is unknown.
    let message = config_message(AuthConfig::from_toml(
        "[signing]\nsigning_key = \"hunter2-hunter2\"\n",
    ));
    assert!(
        message.contains("signing_key") && !message.contains("hunter2"),
        "{message}"
    );
}

#[tokio::test]
async fn a_secret_from_the_environment_verifies_tokens() {
    let env = env_of(&[("UNIT_JWT_SECRET", SECRET)]);
    let config = verifier("secret_env = \"UNIT_JWT_SECRET\"\nissuer = \"https://id\"\n");
    let built = config.build_with(&env).await.unwrap();
    let token = TokenIssuer::hs256(SECRET)
        .issuer("https://id")
        .issue("ada", Duration::from_secs(60))
        .unwrap();
    assert_eq!(built.verify(&token).unwrap().sub, "ada");
    // The issuer is required.
    assert!(built.verify(hs256_bearer(SECRET.as_bytes())).is_err());
}

#[tokio::test]
async fn a_secret_file_loses_its_trailing_line_break() {
    let path = temp_file("secret", &format!("{SECRET}\n"));
    let config = verifier(&format!("secret_file = {:?}\n", path.display().to_string()));
    let built = config.build_with(&env_of(&[])).await.unwrap();
    assert_eq!(
        built.verify(hs256_bearer(SECRET.as_bytes())).unwrap().sub,
        "ada"
    );
    std::fs::remove_file(path).unwrap();
}

#[tokio::test]
async fn a_missing_variable_or_file_is_named_with_its_setting() {
    let config = verifier("secret_env = \"UNIT_NOT_SET_ANYWHERE\"\n");
    let message = config_message(config.build_with(&env_of(&[])).await);
    assert!(
        message.contains("`UNIT_NOT_SET_ANYWHERE`")
            && message.contains("verifier.secret_env")
            && message.contains("is not set"),
        "{message}"
    );
    let missing = std::env::temp_dir().join("authcache-config-no-such-file");
    let config = verifier(&format!(
        "public_key_file = {:?}\nalgorithm = \"RS256\"\n",
        missing.display().to_string()
    ));
    let message = config_message(config.build_with(&env_of(&[])).await);
    assert!(
        message.contains(&missing.display().to_string())
            && message.contains("verifier.public_key_file")
            && message.contains("cannot be read"),
        "{message}"
    );
    let config = verifier("secret_env = \"UNIT_EMPTY\"\n");
    let message = config_message(config.build_with(&env_of(&[("UNIT_EMPTY", "")])).await);
    assert!(
        message.contains("`UNIT_EMPTY`") && message.contains("empty"),
        "{message}"
    );
}

#[tokio::test]
async fn exactly_one_key_source_is_required() {
    let config = verifier("secret_env = \"A\"\njwks_url = \"https://id/jwks\"\n");
    let message = config_message(config.build_with(&env_of(&[])).await);
    assert!(
        message.contains("`secret_env` and `jwks_url`") && message.contains("keep exactly one"),
        "{message}"
    );
    let config = verifier("issuer = \"https://id\"\n");
    let message = config_message(config.build_with(&env_of(&[])).await);
    assert!(
        message.contains("names no key") && message.contains("secret_env"),
        "{message}"
    );
}

#[tokio::test]
async fn a_short_secret_is_refused_with_its_length_never_its_value() {
    let env = env_of(&[("UNIT_SHORT", "hunter2")]);
    let message = config_message(
        verifier("secret_env = \"UNIT_SHORT\"\n")
            .build_with(&env)
            .await,
    );
    assert!(
        message.contains("7 bytes") && message.contains("at least 32"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn a_public_key_needs_its_asymmetric_algorithm() {
    let env = env_of(&[("UNIT_PEM", test_keys::RSA_A_PUBLIC_PEM)]);
    let built = verifier("public_key_env = \"UNIT_PEM\"\nalgorithm = \"RS256\"\n")
        .build_with(&env)
        .await
        .unwrap();
    let token = TokenIssuer::test_rs256()
        .issue("ada", Duration::from_secs(60))
        .unwrap();
    assert_eq!(built.verify(&token).unwrap().sub, "ada");
    for toml in [
        "public_key_env = \"UNIT_PEM\"\n",
        "public_key_env = \"UNIT_PEM\"\nalgorithm = \"HS256\"\n",
    ] {
        let message = config_message(verifier(toml).build_with(&env).await);
        assert!(
            message.contains("needs the `algorithm`"),
            "{toml}: {message}"
        );
    }
    let message = config_message(
        verifier("public_key_env = \"UNIT_PEM\"\nalgorithm = \"ES256\"\n")
            .build_with(&env)
            .await,
    );
    assert!(message.contains("cannot verify ES256"), "{message}");
    let message = config_message(
        verifier("secret_env = \"UNIT_PEM\"\nalgorithm = \"RS256\"\n")
            .build_with(&env)
            .await,
    );
    assert!(message.contains("public_key_env"), "{message}");
}

#[tokio::test]
async fn the_limits_of_the_section_reach_the_verifier() {
    let env = env_of(&[("UNIT_JWT_SECRET", SECRET)]);
    let built = verifier(
        "secret_env = \"UNIT_JWT_SECRET\"\nleeway_secs = 7\nmax_token_size = 100\n\
         max_token_lifetime_secs = 30\n",
    )
    .build_with(&env)
    .await
    .unwrap();
    assert_eq!(built.clock_leeway(), Duration::from_secs(7));
    assert_eq!(built.token_size_limit(), 100);
    assert_eq!(built.lifetime_limit(), Some(Duration::from_secs(30)));
    let message = config_message(
        verifier("secret_env = \"UNIT_JWT_SECRET\"\nleeway_secs = 3601\n")
            .build_with(&env)
            .await,
    );
    assert!(message.contains("leeway_secs is 3601"), "{message}");
}

#[cfg(feature = "jwks")]
#[tokio::test]
async fn a_remote_key_set_url_is_checked_before_anything_is_fetched() {
    // Plain http to a host that is not loopback: refused without a request.
    let message = config_message(
        verifier("jwks_url = \"http://id.example.com/jwks\"\n")
            .build_with(&env_of(&[]))
            .await,
    );
    assert!(message.contains("jwks_url"), "{message}");
}

#[cfg(not(feature = "jwks"))]
#[tokio::test]
async fn a_remote_key_set_without_its_feature_names_the_feature() {
    let message = config_message(
        verifier("oidc_issuer = \"https://id.example.com\"\n")
            .build_with(&env_of(&[]))
            .await,
    );
    assert!(
        message.contains("oidc_issuer") && message.contains("`jwks` feature"),
        "{message}"
    );
}

#[test]
fn signing_keys_are_read_from_their_references() {
    let path = temp_file("previous-key", "previous-signing-key-in-a-file\r\n");
    let config = AuthConfig::from_toml(&format!(
        "[signing]\nkeyEnv = \"UNIT_SIGNING\"\nprevious_key_envs = [\"UNIT_OLD\"]\n\
         previous_key_files = [{:?}]\nallow_unsigned = true\n",
        path.display().to_string()
    ))
    .unwrap();
    let signing = config.signing.unwrap();
    assert!(signing.allow_unsigned);
    let env = env_of(&[
        ("UNIT_SIGNING", "current-signing-key"),
        ("UNIT_OLD", "old-key"),
    ]);
    let keys = signing.read_with(&env).unwrap();
    assert_eq!(keys.current.as_deref(), Some(&b"current-signing-key"[..]));
    assert_eq!(
        keys.previous,
        [
            b"old-key".to_vec(),
            b"previous-signing-key-in-a-file".to_vec()
        ]
    );
    let message = config_message(
        signing
            .read_with(&env_of(&[("UNIT_SIGNING", "k")]))
            .map(|_| ()),
    );
    assert!(
        message.contains("`UNIT_OLD`") && message.contains("signing.previous_key_envs"),
        "{message}"
    );
    std::fs::remove_file(path).unwrap();

    let both = AuthConfig::from_toml("[signing]\nkey_env = \"A\"\nkey_file = \"/b\"\n")
        .unwrap()
        .signing
        .unwrap();
    let message = config_message(both.read_with(&env_of(&[])).map(|_| ()));
    assert!(message.contains("`key_env` and `key_file`"), "{message}");
}

#[test]
fn service_wide_settings_sit_at_the_top_level() {
    let config = AuthConfig::from_toml(
        "revocation_check = \"fail-closed\"\nl1_capacity = 1000\nvalidationCache = false\n",
    )
    .unwrap();
    assert_eq!(config.revocation_check, Some(RevocationCheck::FailClosed));
    assert_eq!(config.l1_capacity, Some(1000));
    assert_eq!(config.validation_cache, Some(false));
    for spelling in ["fail_open", "failOpen", "FAIL-OPEN"] {
        let config =
            AuthConfig::from_toml(&format!("revocation_check = \"{spelling}\"\n")).unwrap();
        assert_eq!(config.revocation_check, Some(RevocationCheck::FailOpen));
    }
    let message = config_message(AuthConfig::from_toml("revocation_check = \"maybe\"\n"));
    assert!(message.contains("fail-closed"), "{message}");
    assert_eq!(AuthConfig::default().revocation_check, None);
}

#[test]
fn breaker_settings_replace_only_what_they_name() {
    let settings = AuthConfig::from_toml("[breaker]\ntimeout_ms = 40\nmaxCooldownMs = 5000\n")
        .unwrap()
        .breaker;
    let breaker = settings.apply(BreakerConfig::default());
    assert_eq!(breaker.timeout, Duration::from_millis(40));
    assert_eq!(breaker.max_cooldown, Duration::from_secs(5));
    assert_eq!(
        breaker.base_cooldown,
        BreakerConfig::default().base_cooldown
    );
    assert_eq!(
        breaker.failure_threshold,
        BreakerConfig::default().failure_threshold
    );
    let error = AuthConfig::from_toml("[breaker]\ncooldown = 1\n").unwrap_err();
    assert!(error.to_string().contains("cooldown"), "{error}");
}

#[test]
fn the_mongodb_repository_reads_the_adopters_layout() {
    let config = AuthConfig::from_toml(
        "[repository]\nbackend = \"mongodb\"\nuri = \"mongodb://h\"\ndb = \"app\"\n\
         timeout_ms = 1500\nid_kind = \"object-id\"\nusersCollection = \"accounts\"\n\
         roles_collection = \"groups\"\ncreate_indexes = false\n\
         [repository.fields]\nemail = \"mail\"\nname = \"displayName\"\nroles = \"groups\"\n\
         disabled = \"locked\"\nupdatedAt = \"modified\"\npermissions = \"grants\"\n",
    )
    .unwrap();
    let repository = config.repository.unwrap();
    assert_eq!(repository.timeout(), Some(Duration::from_millis(1500)));
    let RepositoryConfig::Mongodb {
        id_kind,
        users_collection,
        roles_collection,
        fields,
        create_indexes,
        ..
    } = &repository
    else {
        panic!("{repository:?}");
    };
    assert_eq!(*id_kind, MongoIdKind::ObjectId);
    assert_eq!(users_collection.as_deref(), Some("accounts"));
    assert_eq!(roles_collection.as_deref(), Some("groups"));
    assert_eq!(*create_indexes, Some(false));
    assert_eq!(fields.email.as_deref(), Some("mail"));
    assert_eq!(fields.updated_at.as_deref(), Some("modified"));
    assert_eq!(fields.permissions.as_deref(), Some("grants"));
    for (spelling, kind) in [
        ("auto", MongoIdKind::Auto),
        ("objectid", MongoIdKind::ObjectId),
        ("ObjectId", MongoIdKind::ObjectId),
        ("string", MongoIdKind::String),
    ] {
        let config = AuthConfig::from_toml(&format!(
            "[repository]\nbackend = \"mongodb\"\nuri = \"mongodb://h\"\ndb = \"a\"\nid_kind = \"{spelling}\"\n"
        ))
        .unwrap();
        assert!(
            matches!(config.repository, Some(RepositoryConfig::Mongodb { id_kind, .. }) if id_kind == kind),
            "{spelling}"
        );
    }
    let error = AuthConfig::from_toml(
        "[repository]\nbackend = \"mongodb\"\nuri = \"mongodb://h\"\ndb = \"a\"\n\
         [repository.fields]\nmail = \"email\"\n",
    )
    .unwrap_err();
    assert!(error.to_string().contains("mail"), "{error}");
}

#[cfg(feature = "mongodb")]
#[test]
fn the_mongodb_settings_become_the_driver_options() {
    use authcache_users::{IdKind, MongoOptions, MongoSchema};

    let config = AuthConfig::from_toml(
        "[repository]\nbackend = \"mongodb\"\nuri = \"mongodb://h\"\ndb = \"app\"\n\
         timeout_ms = 1500\nid_kind = \"string\"\nusers_collection = \"accounts\"\n\
         create_indexes = false\n[repository.fields]\nemail = \"mail\"\npermissions = \"grants\"\n",
    )
    .unwrap();
    let expected = MongoOptions::default()
        .schema(
            MongoSchema::default()
                .users_collection("accounts")
                .permissions_field("grants")
                .user_field("email", "mail"),
        )
        .id_kind(IdKind::String)
        .create_indexes(false)
        .operation_timeout(Duration::from_millis(1500));
    assert_eq!(config.repository.unwrap().mongo_options(), expected);
    // Zero bounds no load, but the driver keeps its own bound.
    let zero = AuthConfig::from_toml(
        "[repository]\nbackend = \"mongodb\"\nuri = \"mongodb://h\"\ndb = \"app\"\ntimeout_ms = 0\n",
    )
    .unwrap()
    .repository
    .unwrap();
    assert_eq!(zero.timeout(), Some(Duration::ZERO));
    assert_eq!(zero.mongo_options(), MongoOptions::default());
}

#[test]
fn debug_shows_references_and_never_credentials() {
    let config = AuthConfig::from_toml(
        "[verifier]\nsecret_env = \"JWT_SECRET\"\n[signing]\nkey_file = \"/run/key\"\n\
         [cache]\nbackend = \"redis\"\nurl = \"redis://:hunter2@redis:6379/0\"\n\
         [repository]\nbackend = \"mongodb\"\nuri = \"mongodb://app:hunter3@a:1,b:2/app?replicaSet=rs\"\ndb = \"app\"\n",
    )
    .unwrap();
    let debug = format!("{config:?}");
    assert!(
        debug.contains("JWT_SECRET") && debug.contains("/run/key"),
        "{debug}"
    );
    assert!(
        !debug.contains("hunter2") && !debug.contains("hunter3"),
        "{debug}"
    );
    assert!(
        debug.contains("redis://***@redis:6379/0")
            && debug.contains("mongodb://***@a:1,b:2/app?replicaSet=rs"),
        "{debug}"
    );
    let cluster = CacheConfig::redis_cluster(["redis://u:hunter4@a:1"]);
    assert!(!format!("{cluster:?}").contains("hunter4"));
}

#[test]
fn credentials_are_redacted_wherever_the_at_sign_is() {
    use super::backends::redact_credentials;

    for (url, redacted) in [
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
        ("redis://:pw@h:1/2", "redis://***@h:1/2"),
        ("mongodb://u:p/w@h/db?x=a@b", "mongodb://***@h/db?x=a@b"),
        ("u:pw@h", "***@h"),
        (
            "mongodb+srv://u:p@cluster.example.com",
            "mongodb+srv://***@cluster.example.com",
        ),
    ] {
        assert_eq!(redact_credentials(url), redacted, "{url}");
    }
}

#[test]
fn new_env_names_map_onto_their_fields() {
    let config = AuthConfig::from_env_vars([
        ("AUTHCACHE_REVOCATION_CHECK", "fail-closed"),
        ("AUTHCACHE_L1_CAPACITY", "123"),
        ("AUTHCACHE_VALIDATION_CACHE", "false"),
        ("AUTHCACHE_VERIFIER__ALGORITHM", "HS512"),
        ("AUTHCACHE_VERIFIER__SECRET_ENV", "MY_SECRET"),
        ("AUTHCACHE_VERIFIER__AUDIENCE", "api,admin"),
        ("AUTHCACHE_VERIFIER__ISSUER", "https://id"),
        ("AUTHCACHE_VERIFIER__LEEWAY_SECS", "3"),
        ("AUTHCACHE_SIGNING__KEY_FILE", "/run/key"),
        ("AUTHCACHE_SIGNING__PREVIOUS_KEY_ENVS", "OLD_1, OLD_2"),
        ("AUTHCACHE_REPOSITORY__BACKEND", "mongodb"),
        ("AUTHCACHE_REPOSITORY__URI", "mongodb://h"),
        ("AUTHCACHE_REPOSITORY__DB", "app"),
        ("AUTHCACHE_REPOSITORY__ID_KIND", "object-id"),
        ("AUTHCACHE_REPOSITORY__FIELDS__EMAIL", "mail"),
        ("AUTHCACHE_REPOSITORY__CREATE_INDEXES", "false"),
        ("AUTHCACHE_BREAKER__FAILURE_THRESHOLD", "9"),
    ])
    .unwrap();
    assert_eq!(config.revocation_check, Some(RevocationCheck::FailClosed));
    assert_eq!(config.l1_capacity, Some(123));
    assert_eq!(config.validation_cache, Some(false));
    let verifier = config.verifier.unwrap();
    assert_eq!(verifier.algorithm, Some(Algorithm::HS512));
    assert_eq!(verifier.secret_env.as_deref(), Some("MY_SECRET"));
    assert_eq!(verifier.audience, ["api", "admin"]);
    assert_eq!(verifier.issuer, ["https://id"]);
    assert_eq!(verifier.leeway_secs, Some(3));
    let signing = config.signing.unwrap();
    assert_eq!(signing.key_file.as_deref(), Some("/run/key"));
    assert_eq!(signing.previous_key_envs, ["OLD_1", "OLD_2"]);
    let Some(RepositoryConfig::Mongodb {
        id_kind,
        fields,
        create_indexes,
        ..
    }) = config.repository
    else {
        panic!("a MongoDB repository");
    };
    assert_eq!(id_kind, MongoIdKind::ObjectId);
    assert_eq!(fields.email.as_deref(), Some("mail"));
    assert_eq!(create_indexes, Some(false));
    assert_eq!(config.breaker.failure_threshold, Some(9));
    // A section named without a field is a mistake, three levels deep too.
    let message = config_message(AuthConfig::from_env_vars([(
        "AUTHCACHE_REPOSITORY__FIELDS",
        "x",
    )]));
    assert!(message.contains("is a section"), "{message}");
}

#[test]
fn every_env_name_reaches_its_field() {
    for setting in ENV_SETTINGS {
        for name in setting.names {
            let value = match (setting.path, setting.kind) {
                (["cache", "backend"], _) => "redis",
                (["repository", "backend"], _) => "memory",
                (["verifier", "algorithm"], _) => "RS256",
                (["repository", "id_kind"], _) => "string",
                (["revocation_check"], _) => "fail-closed",
                (_, Kind::Text) => "text",
                (_, Kind::Integer) => "7",
                (_, Kind::Float) => "0.25",
                (_, Kind::Boolean) => "true",
                (_, Kind::TextList) => "a,b",
            };
            // The rest of a valid section around the setting under test.
            let section: &[(&str, &str)] = match setting.path {
                ["cache", "max_bytes"] => &[("cache__backend", "memory")],
                ["cache", "backend" | "url" | "timeout_ms"] => {
                    &[("cache__backend", "redis"), ("cache__url", "redis://x")]
                }
                ["cache", "urls"] => &[("cache__backend", "redis-cluster")],
                ["repository", "seed_file"] => &[("repository__backend", "memory")],
                ["repository", "backend"] => &[],
                ["repository", ..] => &[
                    ("repository__backend", "mongodb"),
                    ("repository__uri", "mongodb://x"),
                    ("repository__db", "app"),
                ],
                _ => &[],
            };
            let around = |with_setting: bool| {
                let mut vars: Vec<(String, String)> = section
                    .iter()
                    .filter(|(other, _)| !setting.names.contains(other))
                    .map(|(other, value)| (format!("AUTHCACHE_{other}"), (*value).to_owned()))
                    .collect();
                if with_setting {
                    vars.push((format!("AUTHCACHE_{name}"), value.to_owned()));
                }
                AuthConfig::from_env_vars(vars)
            };
            let config = around(true);
            assert!(config.is_ok(), "{name}: {config:?}");
            // Without it (when the section stands without it), something else is read.
            if let Ok(without) = around(false) {
                assert_ne!(config.ok(), Some(without), "{name} changed nothing");
            }
        }
    }
}

/// The sections that document the configuration for users, with the code they describe.
const README: &str = include_str!("../../../../README.md");
const CONFIG_DOCS: &str = include_str!("mod.rs");

#[test]
fn every_env_name_is_documented_in_the_readme_and_on_auth_config() {
    for setting in ENV_SETTINGS {
        let variable = format!("`AUTHCACHE_{}`", setting.names[0].to_ascii_uppercase());
        let path = format!("`{}`", setting.path.join("."));
        for (document, text) in [("README.md", README), ("AuthConfig docs", CONFIG_DOCS)] {
            assert!(
                text.lines()
                    .any(|line| line.contains(&variable) && line.contains(&path)),
                "{document} has no line mapping {variable} to {path}"
            );
        }
    }
}

#[test]
fn the_readme_example_parses() {
    let section = README
        .split_once("## Configuration")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let example = section
        .split_once("```toml\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(example, _)| example)
        .expect("a ```toml example under ## Configuration in README.md");
    let config = AuthConfig::from_toml(example).unwrap();
    assert!(
        config.verifier.is_some() && config.signing.is_some(),
        "{config:?}"
    );
    assert!(config.repository.is_some());
}

#[test]
fn defaults_are_memory_everywhere() {
    let config = AuthConfig::from_toml("").unwrap();
    assert_eq!(config.cache, CacheConfig::memory());
    assert_eq!(
        config.repository, None,
        "no [repository]: absent, not in-memory"
    );
    assert_eq!(config.ttls, TtlSettings::default());
}

#[test]
fn full_toml_document() {
    let config = AuthConfig::from_toml(
        r#"
        prefix = "myapp"
        [cache]
        backend = "redis"
        url = "redis://127.0.0.1:6379/2"
        timeout_ms = 50
        [repository]
        backend = "mongodb"
        uri = "mongodb://127.0.0.1:27017"
        db = "app"
        [ttls]
        user_ttl = 60
        perms_ttl = 180
        jitter = 0.0
        "#,
    )
    .unwrap();
    assert_eq!(config.prefix.as_deref(), Some("myapp"));
    assert_eq!(
        config.cache,
        CacheConfig::Redis {
            url: "redis://127.0.0.1:6379/2".into(),
            timeout_ms: Some(50)
        }
    );
    assert_eq!(
        config.repository,
        Some(RepositoryConfig::mongodb(
            "mongodb://127.0.0.1:27017",
            "app"
        ))
    );
    assert_eq!(config.ttls.user_ttl, Some(60));
    assert_eq!(config.ttls.permissions_ttl, Some(180));
    assert_eq!(config.ttls.jitter, Some(0.0));
}

#[test]
fn a_removed_or_misspelt_setting_is_refused_by_name() {
    // `roles_ttl` was read by nothing (a user's roles are those of the user record):
    // accepting it silently would let an operator believe it does something.
    for field in ["roles_ttl", "rolesTTL", "user_tll"] {
        let error = AuthConfig::from_toml(&format!("[ttls]\n{field} = 42\n")).unwrap_err();
        assert!(
            matches!(&error, AuthError::Config(message) if message.contains(field)),
            "{field}: {error}"
        );
    }
    // In the environment, a name that is no setting is ignored (and logged).
    let config = AuthConfig::from_env_vars([("AUTHCACHE_TTLS__ROLES_TTL", "42")]).unwrap();
    assert_eq!(config, AuthConfig::default());
}

#[test]
fn both_ttl_spellings_are_accepted() {
    for field in ["user_ttl", "userTTL", "userTtl"] {
        let config = AuthConfig::from_toml(&format!("[ttls]\n{field} = 42\n")).unwrap();
        assert_eq!(config.ttls.user_ttl, Some(42), "{field}");
    }
}

#[test]
fn settings_override_only_what_they_name() {
    let settings = AuthConfig::from_toml("[ttls]\nuserTTL = 60\njitter = 0.0\n")
        .unwrap()
        .ttls;
    let ttls = settings.apply(Ttls::default());
    assert_eq!(ttls.user, Duration::from_secs(60));
    assert_eq!(ttls.jitter, 0.0);
    assert_eq!(ttls.perms, Ttls::default().perms);
    assert_eq!(ttls.negative, Ttls::default().negative);
}

#[test]
fn the_watcher_is_off_unless_asked_for() {
    assert!(!AuthConfig::default().watch);
    let config = AuthConfig::from_toml("watch = true\n[repository]\nbackend = \"mongodb\"\nuri = \"mongodb://127.0.0.1:27017\"\ndb = \"app\"\n").unwrap();
    assert!(config.watch);
}

#[test]
fn stale_grace_and_refresh_ahead_are_configurable_and_off_with_zero() {
    let ttls = AuthConfig::from_toml("[ttls]\nstaleGrace = 0\nrefresh_ahead = 0.0\n")
        .unwrap()
        .ttls
        .apply(Ttls::default());
    assert!(ttls.stale_grace.is_zero());
    assert!(ttls.refresh_window(ttls.user).is_zero());
    let defaults = TtlSettings::default().apply(Ttls::default());
    assert_eq!(defaults.stale_grace, Duration::from_secs(300));
    assert_eq!(
        defaults.refresh_window(defaults.user),
        Duration::from_secs(30)
    );
}

#[test]
fn cluster_takes_a_list_of_urls() {
    let config = AuthConfig::from_toml(
        "[cache]\nbackend = \"redis-cluster\"\nurls = [\"redis://a:1\", \"redis://b:2\"]\n",
    )
    .unwrap();
    assert_eq!(
        config.cache,
        CacheConfig::redis_cluster(["redis://a:1", "redis://b:2"])
    );
}

#[test]
fn unknown_backends_and_fields_are_rejected_by_name() {
    let error = AuthConfig::from_toml("[cache]\nbackend = \"memcached\"\n").unwrap_err();
    assert!(error.to_string().contains("memcached"), "{error}");
    let error = AuthConfig::from_toml("[ttls]\nuser_tll = 5\n").unwrap_err();
    assert!(error.to_string().contains("user_tll"), "{error}");
    let error = AuthConfig::from_toml("[cache]\nbackend = \"redis\"\n").unwrap_err();
    assert!(error.to_string().contains("url"), "{error}");
}

#[test]
fn environment_variables_map_onto_the_same_fields() {
    let config = AuthConfig::from_env_vars([
        ("AUTHCACHE_PREFIX", "envapp"),
        ("AUTHCACHE_CACHE__BACKEND", "redis"),
        ("AUTHCACHE_CACHE__URL", "redis://127.0.0.1:7000"),
        ("AUTHCACHE_REPOSITORY__BACKEND", "mongodb"),
        ("AUTHCACHE_REPOSITORY__URI", "mongodb://127.0.0.1:27017"),
        ("AUTHCACHE_REPOSITORY__DB", "app"),
        ("authcache_ttls__user_ttl", "77"),
        ("AUTHCACHE_TTLS__JITTER", "0.05"),
        ("PATH", "/usr/bin"),
    ])
    .unwrap();
    assert_eq!(config.prefix.as_deref(), Some("envapp"));
    assert_eq!(config.cache, CacheConfig::redis("redis://127.0.0.1:7000"));
    assert_eq!(
        config.repository,
        Some(RepositoryConfig::mongodb(
            "mongodb://127.0.0.1:27017",
            "app"
        ))
    );
    assert_eq!(config.ttls.user_ttl, Some(77));
    assert_eq!(config.ttls.jitter, Some(0.05));
}

#[test]
fn env_lists_and_the_ttl_spelling() {
    let config = AuthConfig::from_env_vars([
        ("AUTHCACHE_CACHE__BACKEND", "redis-cluster"),
        (
            "AUTHCACHE_CACHE__URLS",
            "[\"redis://a:1\", \"redis://b:2\"]",
        ),
        ("AUTHCACHE_TTLS__USERTTL", "9"),
    ])
    .unwrap();
    assert_eq!(
        config.cache,
        CacheConfig::redis_cluster(["redis://a:1", "redis://b:2"])
    );
    assert_eq!(config.ttls.user_ttl, Some(9));
}

#[test]
fn unknown_env_variables_are_ignored() {
    // What Kubernetes injects for a Service named `authcache`.
    let config = AuthConfig::from_env_vars([
        ("AUTHCACHE_PORT", "tcp://10.0.0.1:80"),
        ("AUTHCACHE_PORT_80_TCP_ADDR", "10.0.0.1"),
        ("AUTHCACHE_SERVICE_HOST", "10.0.0.1"),
        ("AUTHCACHE_SERVICE_PORT", "80"),
        ("AUTHCACHE_TTLS__USER_TLL", "9"),
        ("AUTHCACHE_PREFIX", "k8s"),
    ])
    .unwrap();
    assert_eq!(config.prefix.as_deref(), Some("k8s"));
    assert_eq!(config.ttls, TtlSettings::default());
}

#[test]
fn a_misspelt_env_setting_is_recognised_for_the_warning() {
    assert_eq!(misspelt_setting("ttls__user_tll"), Some("ttls__user_ttl"));
    assert_eq!(misspelt_setting("prefx"), Some("prefix"));
    assert_eq!(misspelt_setting("cache__ur"), Some("cache__url"));
    for injected in ["port", "port_80_tcp_addr", "service_host", "service_port"] {
        assert_eq!(misspelt_setting(injected), None, "{injected}");
    }
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
}

#[test]
fn env_text_settings_keep_values_that_look_like_numbers() {
    let config = AuthConfig::from_env_vars([
        ("AUTHCACHE_REPOSITORY__BACKEND", "mongodb"),
        ("AUTHCACHE_REPOSITORY__URI", "mongodb://127.0.0.1:27017"),
        ("AUTHCACHE_REPOSITORY__DB", "2024"),
        ("AUTHCACHE_PREFIX", "true"),
    ])
    .unwrap();
    assert_eq!(
        config.repository,
        Some(RepositoryConfig::mongodb(
            "mongodb://127.0.0.1:27017",
            "2024"
        ))
    );
    assert_eq!(config.prefix.as_deref(), Some("true"));
}

#[test]
fn env_numbers_and_booleans_must_parse_and_name_the_variable() {
    for (name, value) in [
        ("AUTHCACHE_TTLS__USER_TTL", "soon"),
        ("AUTHCACHE_TTLS__JITTER", "a bit"),
        ("AUTHCACHE_WATCH", "yes"),
        ("AUTHCACHE_CACHE__URLS", "[1, 2]"),
    ] {
        let error = AuthConfig::from_env_vars([(name, value)]).unwrap_err();
        assert!(
            matches!(&error, AuthError::Config(message) if message.contains(name)),
            "{name}: {error}"
        );
    }
    let config = AuthConfig::from_env_vars([("AUTHCACHE_WATCH", "TRUE")]).unwrap();
    assert!(config.watch);
}

#[test]
fn env_lists_may_be_comma_separated() {
    let config = AuthConfig::from_env_vars([
        ("AUTHCACHE_CACHE__BACKEND", "redis-cluster"),
        ("AUTHCACHE_CACHE__URLS", "redis://a:1, redis://b:2"),
    ])
    .unwrap();
    assert_eq!(
        config.cache,
        CacheConfig::redis_cluster(["redis://a:1", "redis://b:2"])
    );
}

#[test]
fn two_env_names_for_one_setting_are_an_error() {
    let error = AuthConfig::from_env_vars([
        ("AUTHCACHE_TTLS__USER_TTL", "1"),
        ("AUTHCACHE_TTLS__USERTTL", "2"),
    ])
    .unwrap_err();
    assert!(error.to_string().contains("user_ttl"), "{error}");
}

#[test]
fn a_repository_section_is_present_only_when_written() {
    let config = AuthConfig::from_toml("[repository]\nbackend = \"memory\"\n").unwrap();
    assert_eq!(config.repository, Some(RepositoryConfig::default()));
    let config = AuthConfig::from_env_vars([("AUTHCACHE_REPOSITORY__BACKEND", "memory")]).unwrap();
    assert_eq!(config.repository, Some(RepositoryConfig::default()));
    assert_eq!(
        AuthConfig::from_env_vars([("A", "b")]).unwrap().repository,
        None
    );
}

#[test]
fn a_mongodb_uri_without_scheme_or_host_is_refused_before_connecting() {
    for uri in [
        "mongo://",
        "mongodb://",
        "127.0.0.1:27017",
        "mongodb://a,/db",
        "mongodb://u:p@/db",
    ] {
        let error = RepositoryConfig::mongodb(uri, "app")
            .check_syntax()
            .unwrap_err();
        assert!(matches!(error, AuthError::Config(_)), "{uri}: {error}");
    }
    for uri in [
        "mongodb://127.0.0.1:27017",
        "mongodb://u:p@a:1,b:2/app?replicaSet=rs",
        "mongodb+srv://cluster.example.com",
    ] {
        RepositoryConfig::mongodb(uri, "app")
            .check_syntax()
            .unwrap();
    }
    RepositoryConfig::default().check_syntax().unwrap();
}

#[test]
fn the_cache_timeout_is_read_in_milliseconds() {
    let config = AuthConfig::from_toml(
        "[cache]\nbackend = \"redis\"\nurl = \"redis://x\"\ntimeout_ms = 0\n",
    )
    .unwrap();
    assert_eq!(config.cache.timeout(), Some(Duration::ZERO));
    assert_eq!(CacheConfig::memory().timeout(), None);
}

#[test]
fn a_value_that_is_also_a_section_is_an_error() {
    let error =
        AuthConfig::from_env_vars([("AUTHCACHE_CACHE", "x"), ("AUTHCACHE_CACHE__URL", "y")])
            .unwrap_err();
    assert!(matches!(error, AuthError::Config(_)));
}

#[cfg(feature = "memory")]
#[test]
fn memory_backend_is_compiled_in() {
    CacheConfig::memory().ensure_compiled().unwrap();
}

#[cfg(not(feature = "redis"))]
#[test]
fn redis_without_its_feature_names_the_feature() {
    let error = CacheConfig::redis("redis://127.0.0.1")
        .ensure_compiled()
        .unwrap_err();
    assert!(error.to_string().contains("`redis` feature"), "{error}");
}

#[cfg(feature = "redis")]
#[test]
fn redis_with_its_feature_is_accepted() {
    CacheConfig::redis("redis://127.0.0.1")
        .ensure_compiled()
        .unwrap();
}

#[cfg(not(feature = "redis-cluster"))]
#[test]
fn cluster_without_its_feature_names_the_feature() {
    let error = CacheConfig::redis_cluster(["redis://a:1"])
        .ensure_compiled()
        .unwrap_err();
    assert!(
        error.to_string().contains("`redis-cluster` feature"),
        "{error}"
    );
}

#[cfg(feature = "redis-cluster")]
#[test]
fn cluster_with_its_feature_is_accepted() {
    CacheConfig::redis_cluster(["redis://a:1"])
        .ensure_compiled()
        .unwrap();
}

#[cfg(not(feature = "mongodb"))]
#[test]
fn mongodb_without_its_feature_names_the_feature() {
    let error = RepositoryConfig::mongodb("mongodb://x", "db")
        .ensure_compiled()
        .unwrap_err();
    assert!(error.to_string().contains("`mongodb` feature"), "{error}");
}

#[cfg(feature = "mongodb")]
#[test]
fn mongodb_with_its_feature_is_accepted() {
    RepositoryConfig::mongodb("mongodb://x", "db")
        .ensure_compiled()
        .unwrap();
}
