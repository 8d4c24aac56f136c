//! Unit tests of the facade on in-process backends; fault paths with mockall mocks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use authcache_core::{CacheError, MockCache};
use authcache_jwt::{TokenError, TokenIssuer};
use authcache_users::{
    MemoryUserRepository, MockUserRepository, RepositoryError, User, UserRepository,
};

use crate::test_support::repository;
use crate::{AuthError, AuthService, BreakerConfig, JwtVerifier};

const SECRET: &[u8] = b"unit-test-secret-of-at-least-32-bytes";

fn issuer() -> TokenIssuer {
    TokenIssuer::hs256(SECRET)
}

fn bearer(sub: &str) -> String {
    format!(
        "Bearer {}",
        issuer().issue(sub, Duration::from_secs(600)).unwrap()
    )
}

/// Counts `find_by_id` calls and can be switched off (the repository "server" down).
#[derive(Clone)]
struct Counting {
    inner: MemoryUserRepository,
    loads: Arc<AtomicUsize>,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl Counting {
    fn new(inner: MemoryUserRepository) -> Self {
        Self {
            inner,
            loads: Arc::default(),
            down: Arc::default(),
        }
    }

    fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<(), RepositoryError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(RepositoryError::Unavailable("switched off".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl UserRepository for Counting {
    async fn find_by_id(&self, id: &str) -> Result<Option<User>, RepositoryError> {
        self.check()?;
        self.loads.fetch_add(1, Ordering::SeqCst);
        // Yield so that concurrent callers really overlap with the load.
        tokio::task::yield_now().await;
        self.inner.find_by_id(id).await
    }
    async fn find_many(&self, ids: &[String]) -> Result<Vec<User>, RepositoryError> {
        self.check()?;
        self.inner.find_many(ids).await
    }
    async fn permissions_for_roles(
        &self,
        roles: &[String],
    ) -> Result<Vec<String>, RepositoryError> {
        self.check()?;
        self.inner.permissions_for_roles(roles).await
    }
    async fn upsert(&self, user: &User) -> Result<(), RepositoryError> {
        self.check()?;
        self.inner.upsert(user).await
    }
    async fn delete(&self, id: &str) -> Result<bool, RepositoryError> {
        self.check()?;
        self.inner.delete(id).await
    }
}

async fn service(repository: impl UserRepository + 'static) -> AuthService {
    AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .repository(repository)
        .signing_key(b"cache-signing-key-0123456789")
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn authenticates_with_roles_and_sorted_permissions() {
    let auth = service(repository()).await;
    let who = auth.authenticate(&bearer("ada")).await.unwrap();
    assert_eq!(who.id(), "ada");
    assert_eq!(*who.roles, ["admin"]);
    assert_eq!(*who.permissions, ["users:read", "users:write"]);
    assert!(who.has_permission("users:write") && !who.has_permission("users:delete"));
    assert_eq!(who.claims.sub, "ada");
    assert_eq!(auth.stats().authenticated, 1);
}

#[tokio::test]
async fn a_bare_token_works_as_well_as_a_bearer_header() {
    let auth = service(repository()).await;
    let token = issuer().issue("bob", Duration::from_secs(600)).unwrap();
    assert_eq!(auth.authenticate(&token).await.unwrap().id(), "bob");
}

#[tokio::test]
async fn forged_token_for_a_cached_user_is_a_bad_signature() {
    let auth = service(repository()).await;
    auth.authenticate(&bearer("ada")).await.unwrap();
    let forged = TokenIssuer::hs256(b"not-the-secret-not-the-secret-xx")
        .issue("ada", Duration::from_secs(600))
        .unwrap();
    let error = auth.authenticate(&forged).await.unwrap_err();
    assert_eq!(error, AuthError::Token(TokenError::BadSignature));
    assert_eq!(error.status_code(), 401);
}

#[tokio::test]
async fn disabled_and_unknown_users() {
    let auth = service(repository()).await;
    let disabled = auth.authenticate(&bearer("eve")).await.unwrap_err();
    assert_eq!(
        (disabled.clone(), disabled.status_code()),
        (AuthError::Disabled, 403)
    );
    let unknown = auth.authenticate(&bearer("nobody")).await.unwrap_err();
    assert_eq!(
        (unknown.clone(), unknown.status_code()),
        (AuthError::UnknownUser, 401)
    );
    let stats = auth.stats();
    assert_eq!(stats.rejected_users, 2);
}

#[tokio::test]
async fn unknown_users_are_negative_cached() {
    let repository = Counting::new(repository());
    let auth = service(repository.clone()).await;
    for _ in 0..5 {
        assert_eq!(
            auth.authenticate(&bearer("ghost")).await.unwrap_err(),
            AuthError::UnknownUser
        );
    }
    assert_eq!(repository.loads(), 1);
}

#[tokio::test]
async fn oversized_tokens_are_rejected_before_anything_else() {
    let auth = service(repository()).await;
    let huge = format!("Bearer {}", "a".repeat(8 * 1024 + 1));
    let error = auth.authenticate(&huge).await.unwrap_err();
    assert!(
        matches!(error, AuthError::Token(TokenError::TooLarge { .. })),
        "{error}"
    );
    let at_limit = "a".repeat(8 * 1024);
    let error = auth.authenticate(&at_limit).await.unwrap_err();
    assert!(
        matches!(error, AuthError::Token(TokenError::Malformed(_))),
        "{error}"
    );
}

#[tokio::test]
async fn non_ascii_input_near_the_scheme_does_not_panic() {
    let auth = service(repository()).await;
    for input in ["Beare\u{e9} x", "\u{e9}\u{e9}\u{e9}\u{e9}", "", "Bearer "] {
        assert!(auth.authenticate(input).await.is_err());
    }
}

#[tokio::test]
async fn a_repeat_token_skips_verification() {
    let auth = service(repository()).await;
    let token = bearer("ada");
    for _ in 0..3 {
        auth.authenticate(&token).await.unwrap();
    }
    let validations = auth.stats().validations;
    assert_eq!((validations.verified, validations.hits), (1, 2));
}

#[tokio::test]
async fn validation_cache_can_be_turned_off() {
    let auth = AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .repository(repository())
        .validation_cache(false)
        .build()
        .await
        .unwrap();
    let token = bearer("ada");
    auth.authenticate(&token).await.unwrap();
    auth.authenticate(&token).await.unwrap();
    assert_eq!(auth.stats().validations.verified, 2);
}

#[tokio::test]
async fn logout_revokes_the_token_but_not_the_user() {
    let auth = service(repository()).await;
    let first = bearer("ada");
    let second = format!(
        "Bearer {}",
        issuer().issue("ada", Duration::from_secs(601)).unwrap()
    );
    auth.authenticate(&first).await.unwrap();
    auth.logout(&first).await.unwrap();
    assert_eq!(
        auth.authenticate(&first).await.unwrap_err(),
        AuthError::Revoked
    );
    assert_eq!(auth.authenticate(&second).await.unwrap().id(), "ada");
}

#[tokio::test]
async fn logout_needs_a_verified_token_and_accepts_an_expired_one() {
    let auth = service(repository()).await;
    let forged = TokenIssuer::hs256(b"not-the-secret-not-the-secret-xx")
        .issue("ada", Duration::from_secs(600))
        .unwrap();
    assert_eq!(
        auth.logout(&forged).await.unwrap_err(),
        AuthError::Token(TokenError::BadSignature)
    );
    let mut claims = authcache_jwt::Claims::new("ada", authcache_jwt::unix_now() - 3_600);
    claims.iat = Some(authcache_jwt::unix_now() - 7_200);
    let expired = issuer().sign(&claims).unwrap();
    auth.logout(&expired).await.unwrap();
}

#[tokio::test]
async fn role_change_through_cache_user_takes_effect_at_once() {
    let repository = repository();
    let auth = service(repository.clone()).await;
    let token = bearer("bob");
    assert!(
        !auth
            .authenticate(&token)
            .await
            .unwrap()
            .has_permission("users:write")
    );

    let promoted = User::new("bob", "bob@example.com", "Bob").with_roles(["admin"]);
    repository.upsert(&promoted).await.unwrap();
    auth.cache_user(&promoted).await.unwrap();

    let who = auth.authenticate(&token).await.unwrap();
    assert!(who.has_role("admin") && who.has_permission("users:write"));
}

#[tokio::test]
async fn invalidate_user_reloads_from_the_repository() {
    let repository = Counting::new(repository());
    let auth = service(repository.clone()).await;
    let token = bearer("bob");
    auth.authenticate(&token).await.unwrap();
    auth.authenticate(&token).await.unwrap();
    assert_eq!(repository.loads(), 1);
    repository
        .inner
        .upsert(&User::new("bob", "bob@example.com", "Bob").with_disabled(true))
        .await
        .unwrap();
    auth.invalidate_user("bob").await.unwrap();
    assert_eq!(
        auth.authenticate(&token).await.unwrap_err(),
        AuthError::Disabled
    );
    assert_eq!(repository.loads(), 2);
}

#[tokio::test]
async fn user_roles_and_permissions_accessors() {
    let auth = service(repository()).await;
    assert_eq!(auth.user("ada").await.unwrap().name, "Ada");
    assert_eq!(*auth.roles("bob").await.unwrap(), ["viewer"]);
    assert_eq!(
        *auth.permissions("ada").await.unwrap(),
        ["users:read", "users:write"]
    );
    assert_eq!(
        auth.user("nobody").await.unwrap_err(),
        AuthError::UnknownUser
    );
    assert_eq!(
        auth.user("has space").await.unwrap_err(),
        AuthError::UnknownUser
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_cold_authentications_load_once() {
    let repository = Counting::new(repository());
    let auth = service(repository.clone()).await;
    let token = Arc::new(bearer("ada"));
    let tasks: Vec<_> = (0..1_000)
        .map(|_| {
            let (auth, token) = (auth.clone(), Arc::clone(&token));
            tokio::spawn(async move { auth.authenticate(&token).await.map(|p| p.id().to_owned()) })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), "ada");
    }
    assert_eq!(repository.loads(), 1);
    assert_eq!(auth.stats().authenticated, 1_000);
}

#[tokio::test]
async fn repository_down_fails_only_uncached_answers() {
    let repository = Counting::new(repository());
    let auth = service(repository.clone()).await;
    let cached = bearer("ada");
    auth.authenticate(&cached).await.unwrap();
    repository.down.store(true, Ordering::SeqCst);
    assert_eq!(auth.authenticate(&cached).await.unwrap().id(), "ada");
    let error = auth.authenticate(&bearer("bob")).await.unwrap_err();
    assert!(error.is_unavailable(), "{error}");
    assert_eq!(error.status_code(), 503);
    assert_eq!(auth.stats().unavailable, 1);
}

#[tokio::test]
async fn repository_errors_from_a_mock_are_503() {
    let mut repository = MockUserRepository::<User>::new();
    repository
        .expect_find_by_id()
        .returning(|_| Err(RepositoryError::Timeout("slow".into())));
    let auth = service(repository).await;
    let error = auth.authenticate(&bearer("ada")).await.unwrap_err();
    assert_eq!(error.status_code(), 503, "{error}");
}

/// An L2 that fails every call: requests are served from L1 and the repository.
fn broken_l2() -> MockCache {
    let mut cache = MockCache::new();
    cache
        .expect_get()
        .returning(|_| Err(CacheError::unavailable("connection refused")));
    cache
        .expect_set()
        .returning(|_, _, _| Err(CacheError::unavailable("connection refused")));
    cache
        .expect_delete()
        .returning(|_| Err(CacheError::unavailable("connection refused")));
    cache
        .expect_set_if_unchanged()
        .returning(|_, _, _, _| Err(CacheError::unavailable("connection refused")));
    cache
}

#[tokio::test]
async fn a_broken_l2_never_fails_a_request() {
    let repository = Counting::new(repository());
    let auth = AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .repository(repository.clone())
        .l2(Arc::new(broken_l2()))
        .signing_key(b"unit-test-cache-signing-key")
        .build()
        .await
        .unwrap();
    for _ in 0..20 {
        assert_eq!(auth.authenticate(&bearer("ada")).await.unwrap().id(), "ada");
    }
    let stats = auth.stats();
    assert!(stats.l2_errors() > 0);
    assert_eq!(stats.authenticated, 20);
    // Writes report the trouble; reads never do.
    assert!(
        auth.invalidate_user("ada")
            .await
            .unwrap_err()
            .is_unavailable()
    );
    assert_eq!(auth.authenticate(&bearer("ada")).await.unwrap().id(), "ada");
}

#[tokio::test]
async fn missing_verifier_or_repository_is_a_config_error() {
    let error = AuthService::builder()
        .repository(repository())
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AuthError::Config(m) if m.contains("verifier")),
        "{error}"
    );
    let error = AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AuthError::Config(m) if m.contains("repository")),
        "{error}"
    );
    let error = AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .repository(repository())
        .signing_key(b"short")
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AuthError::Config(m) if m.contains("signing key")),
        "{error}"
    );
    let error = AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .repository(repository())
        .prefix("bad:prefix")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(error, AuthError::Config(_)));
}

#[cfg(not(feature = "redis"))]
#[tokio::test]
async fn building_with_redis_without_the_feature_names_it() {
    let error = AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .repository(repository())
        .cache(crate::CacheConfig::redis("redis://127.0.0.1:1"))
        .build()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("`redis` feature"), "{error}");
}

#[cfg(not(feature = "mongodb"))]
#[tokio::test]
async fn building_with_mongodb_without_the_feature_names_it() {
    let error = AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .repository_config(crate::RepositoryConfig::mongodb(
            "mongodb://127.0.0.1:1",
            "app",
        ))
        .build()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("`mongodb` feature"), "{error}");
}

#[tokio::test]
async fn builds_from_a_toml_configuration() {
    let config = crate::AuthConfig::from_toml("prefix = \"unit\"\n[ttls]\nuserTTL = 5\n").unwrap();
    let auth = AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .config(config)
        .build()
        .await
        .unwrap();
    // The memory repository from configuration starts empty.
    assert_eq!(
        auth.authenticate(&bearer("ada")).await.unwrap_err(),
        AuthError::UnknownUser
    );
}

#[tokio::test]
async fn a_logout_the_l2_refused_still_holds_on_this_instance() {
    let auth = AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .repository(repository())
        .l2(Arc::new(broken_l2()))
        .signing_key(b"unit-test-cache-signing-key")
        .build()
        .await
        .unwrap();
    let token = bearer("ada");
    auth.authenticate(&token).await.unwrap();
    assert!(auth.logout(&token).await.unwrap_err().is_unavailable());
    assert_eq!(
        auth.authenticate(&token).await.unwrap_err(),
        AuthError::Revoked
    );
}

#[tokio::test]
async fn the_verifiers_own_size_limit_applies_before_hashing() {
    let auth = AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET).max_token_size(64))
        .repository(repository())
        .build()
        .await
        .unwrap();
    let error = auth.authenticate(&bearer("ada")).await.unwrap_err();
    assert_eq!(
        error,
        AuthError::Token(TokenError::TooLarge {
            size: error_size(&bearer("ada")),
            max: 64
        })
    );
    // Just over the limit, with and without a scheme: the same error either way.
    let just_over = "a".repeat(65);
    for input in [just_over.clone(), format!("Bearer {just_over}")] {
        assert_eq!(
            auth.authenticate(&input).await.unwrap_err(),
            AuthError::Token(TokenError::TooLarge { size: 65, max: 64 })
        );
    }

    let relaxed = AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET).max_token_size(64))
        .repository(repository())
        .max_token_size(4_096)
        .build()
        .await
        .unwrap();
    assert_eq!(
        relaxed.authenticate(&bearer("ada")).await.unwrap().id(),
        "ada"
    );
}

fn error_size(bearer: &str) -> usize {
    bearer.len() - "Bearer ".len()
}

#[tokio::test]
async fn a_shared_l2_without_a_signing_key_is_a_config_error_unless_allowed() {
    let build = |allow: bool| {
        let builder = AuthService::builder()
            .verifier(JwtVerifier::hs256(SECRET))
            .repository(repository())
            .l2(Arc::new(broken_l2()));
        let builder = if allow {
            builder.allow_unsigned_l2()
        } else {
            builder
        };
        builder.build()
    };
    let error = build(false).await.unwrap_err();
    assert!(
        matches!(&error, AuthError::Config(m) if m.contains("signing key")),
        "{error}"
    );
    assert!(build(true).await.is_ok());
}

#[tokio::test]
async fn out_of_range_configuration_is_a_config_error_not_a_panic() {
    let huge = Duration::from_secs(u64::MAX / 4);
    let ttls = authcache_core::Ttls {
        user: huge,
        ..authcache_core::Ttls::default()
    };
    let breakers = [
        BreakerConfig {
            timeout: huge,
            ..BreakerConfig::default()
        },
        BreakerConfig {
            base_cooldown: huge,
            ..BreakerConfig::default()
        },
        BreakerConfig {
            max_cooldown: huge,
            ..BreakerConfig::default()
        },
        BreakerConfig {
            timeout: Duration::ZERO,
            ..BreakerConfig::default()
        },
    ];
    let base = || {
        AuthService::builder()
            .verifier(JwtVerifier::hs256(SECRET))
            .repository(repository())
    };
    let mut builders = vec![
        base().ttls(ttls),
        base().max_token_lifetime(huge),
        base().repository_timeout(huge),
    ];
    builders.extend(breakers.into_iter().map(|b| base().breaker(b)));
    for builder in builders {
        let error = builder.build().await.unwrap_err();
        assert!(matches!(error, AuthError::Config(_)), "{error}");
    }
}

/// Bus events only drop what may be stale: a reconnect or a flood of messages never lifts a
/// revocation this instance made, never lets an unknown key through, and the next request
/// is answered again from the repository's truth.
#[tokio::test]
async fn bus_events_drop_local_state_but_never_this_instances_revocations() {
    let auth = service(repository()).await;
    let (ada, bob) = (bearer("ada"), bearer("bob"));
    auth.authenticate(&ada).await.unwrap();
    auth.authenticate(&bob).await.unwrap();
    auth.logout(&ada).await.unwrap();
    let tiers = &auth.inner.tiers;
    tiers.on_bus_event(authcache_core::BusEvent::Resubscribed);
    for noise in [
        "",
        "garbage",
        "authcache:v1:user:",
        "other:v1:user:bob",
        "authcache:revoked:x",
    ] {
        tiers.on_bus_event(authcache_core::BusEvent::Invalidated(noise.to_owned()));
    }
    let revoked_key = format!("authcache:revoked:{}", {
        let claims = JwtVerifier::hs256(SECRET).verify(&ada).unwrap();
        authcache_jwt::revocation_id(&ada, &claims)
    });
    tiers.on_bus_event(authcache_core::BusEvent::Invalidated(revoked_key));
    assert_eq!(
        auth.authenticate(&ada).await.unwrap_err(),
        AuthError::Revoked
    );
    assert_eq!(auth.authenticate(&bob).await.unwrap().id(), "bob");
}

/// A subscriber that keeps every field and message as text, to check what logs can show.
#[derive(Default)]
struct Capture {
    text: std::sync::Mutex<String>,
    next_span: std::sync::atomic::AtomicU64,
}

impl Capture {
    fn push(&self, record: impl FnOnce(&mut dyn tracing::field::Visit)) {
        let mut visitor = TextVisitor(String::new());
        record(&mut visitor);
        self.text.lock().unwrap().push_str(&visitor.0);
    }
}

struct TextVisitor(String);

impl tracing::field::Visit for TextVisitor {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={value:?}\n", field.name()));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        self.push(|v| span.record(v));
        tracing::span::Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        self.push(|v| values.record(v));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        self.push(|v| event.record(v));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Whatever happens — success, forgery, logout, a broken L2 — no log line holds a token,
/// any of its three parts, or the signing key.
#[tokio::test(flavor = "current_thread")]
async fn logs_never_show_a_token_or_a_key() {
    let capture = Arc::new(Capture::default());
    let _guard = tracing::dispatcher::set_default(&tracing::Dispatch::from(Arc::clone(&capture)));
    const CACHE_KEY: &str = "unit-test-cache-signing-key";
    let auth = AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .repository(repository())
        .l2(Arc::new(broken_l2()))
        .signing_key(CACHE_KEY)
        .build()
        .await
        .unwrap();
    let token = bearer("ada");
    let forged = format!(
        "Bearer {}",
        TokenIssuer::hs256(b"not-the-secret-not-the-secret-00")
            .issue("ada", Duration::from_secs(600))
            .unwrap()
    );
    auth.authenticate(&token).await.unwrap();
    auth.authenticate(&forged).await.unwrap_err();
    auth.logout(&token).await.unwrap_err();
    auth.authenticate(&token).await.unwrap_err();
    let logged = capture.text.lock().unwrap().clone();
    assert!(!logged.is_empty(), "the broken L2 must have been logged");
    let tokens = [&token, &forged];
    let secrets = tokens
        .iter()
        .flat_map(|t| t.trim_start_matches("Bearer ").split('.'))
        .map(str::to_owned)
        .chain([
            CACHE_KEY.to_owned(),
            String::from_utf8_lossy(SECRET).into_owned(),
        ]);
    for secret in secrets {
        assert!(!logged.contains(&secret), "logs show {secret:?}:\n{logged}");
    }
}

/// `iat` has a resolution of one second, and a token issued in the very second of the cutoff
/// may predate it: such a token is refused (the documented, safe side); one second later is
/// after the cutoff and accepted.
#[tokio::test]
async fn logout_all_refuses_tokens_of_the_cutoff_second_and_accepts_later_ones() {
    let auth = service(repository()).await;
    let signed = |iat: u64| {
        let mut claims = authcache_jwt::Claims::new("ada", authcache_jwt::unix_now() + 600);
        claims.iat = Some(iat);
        format!("Bearer {}", issuer().sign(&claims).unwrap())
    };
    let started = authcache_jwt::unix_now();
    let before = signed(started - 1);
    auth.authenticate(&before).await.unwrap();
    auth.logout_all("ada").await.unwrap();
    // The cutoff is the second of the call: somewhere in `started..=ended`.
    let ended = authcache_jwt::unix_now();
    assert_eq!(
        auth.authenticate(&before).await.unwrap_err(),
        AuthError::Revoked
    );
    assert_eq!(
        auth.authenticate(&signed(started)).await.unwrap_err(),
        AuthError::Revoked,
        "issued in the cutoff's second (or before it)"
    );
    assert_eq!(
        auth.authenticate(&signed(ended + 1)).await.unwrap().id(),
        "ada"
    );
    assert_eq!(auth.authenticate(&bearer("bob")).await.unwrap().id(), "bob");
}
