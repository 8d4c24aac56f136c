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
async fn a_logout_of_a_reissued_token_raises_the_mark_to_its_lifetime() {
    // Two tokens asserting the same `iss`+`jti` (a session id used as `jti`), the second
    // living longer: logging both out must keep the revocation until the second expires.
    let auth = service(repository()).await;
    let now = authcache_jwt::unix_now();
    let token = |exp: u64| {
        let mut claims = authcache_jwt::Claims::new("ada", exp);
        claims.iat = Some(now);
        claims.jti = Some("session-7".into());
        issuer().sign(&claims).unwrap()
    };
    let (first, second) = (token(now + 60), token(now + 3600));
    auth.logout(&first).await.unwrap();
    auth.logout(&second).await.unwrap();
    let marks = auth.inner.state.marks();
    let id = authcache_jwt::revocation_id(&second, &auth.inner.verifier.verify(&second).unwrap());
    assert_eq!(
        marks.revoked(&id).await,
        crate::tokens::Lookup::Mark(now + 3600),
        "the mark rose to the later token's exp"
    );
    assert!(matches!(
        auth.authenticate(&second).await,
        Err(AuthError::Revoked)
    ));
}

#[tokio::test]
async fn revoking_an_issuer_refuses_its_earlier_tokens_everywhere_at_once() {
    let auth = service(repository()).await;
    let now = authcache_jwt::unix_now();
    let token = |iss: Option<&str>, iat: u64| {
        let mut claims = authcache_jwt::Claims::new("ada", now + 600);
        claims.iat = Some(iat);
        claims.iss = iss.map(str::to_owned);
        issuer().sign(&claims).unwrap()
    };
    let leaked = "https://login.example/leaked key";
    let (old, fresh) = (token(Some(leaked), now - 20), token(Some(leaked), now - 5));
    let other = token(Some("https://login.example/other"), now - 20);
    let anonymous = token(None, now - 20);
    for bearer in [&old, &fresh, &other, &anonymous] {
        // Warm: the revocation must reach answers this instance already holds.
        auth.authenticate(bearer).await.unwrap();
        auth.authenticate(bearer).await.unwrap();
    }
    let cutoff = std::time::UNIX_EPOCH + Duration::from_secs(now - 10);
    auth.revoke_issued_before(leaked, cutoff).await.unwrap();
    assert_eq!(
        auth.authenticate(&old).await.unwrap_err(),
        AuthError::Revoked
    );
    assert_eq!(auth.authenticate(&fresh).await.unwrap().id(), "ada");
    assert_eq!(auth.authenticate(&other).await.unwrap().id(), "ada");
    assert_eq!(auth.authenticate(&anonymous).await.unwrap().id(), "ada");
    // A cutoff only moves later; `""` names the tokens without an issuer.
    auth.revoke_issued_before(leaked, std::time::UNIX_EPOCH)
        .await
        .unwrap();
    assert_eq!(
        auth.authenticate(&old).await.unwrap_err(),
        AuthError::Revoked
    );
    auth.revoke_issued_before("", cutoff).await.unwrap();
    assert_eq!(
        auth.authenticate(&anonymous).await.unwrap_err(),
        AuthError::Revoked
    );
    // A fraction of a second rounds up: the same second is refused too.
    auth.revoke_issued_before(
        leaked,
        cutoff + Duration::from_secs(5) + Duration::from_millis(1),
    )
    .await
    .unwrap();
    assert_eq!(
        auth.authenticate(&fresh).await.unwrap_err(),
        AuthError::Revoked
    );
    let checks = auth.stats().issuer_cutoffs;
    assert!(checks.misses + checks.l1_hits > 0, "{checks:?}");
}

/// Users and roles in plain maps: any role name, as MongoDB would hold it.
#[derive(Clone, Default)]
struct AnyRoleNames {
    users: Arc<std::sync::Mutex<Vec<User>>>,
    roles: Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<String>>>>,
}

#[async_trait]
impl UserRepository for AnyRoleNames {
    async fn find_by_id(&self, id: &str) -> Result<Option<User>, RepositoryError> {
        let users = self.users.lock().unwrap();
        Ok(users.iter().find(|user| user.id == id).cloned())
    }
    async fn find_many(&self, ids: &[String]) -> Result<Vec<User>, RepositoryError> {
        let users = self.users.lock().unwrap();
        Ok(users
            .iter()
            .filter(|u| ids.contains(&u.id))
            .cloned()
            .collect())
    }
    async fn permissions_for_roles(
        &self,
        roles: &[String],
    ) -> Result<Vec<String>, RepositoryError> {
        let map = self.roles.lock().unwrap();
        Ok(roles
            .iter()
            .flat_map(|r| map.get(r).cloned().unwrap_or_default())
            .collect())
    }
    async fn upsert(&self, user: &User) -> Result<(), RepositoryError> {
        self.users.lock().unwrap().push(user.clone());
        Ok(())
    }
    async fn delete(&self, _: &str) -> Result<bool, RepositoryError> {
        Ok(false)
    }
}

#[tokio::test]
async fn role_names_that_are_not_ids_take_the_same_path_as_the_rest() {
    // A space, a `%`, nothing at all, and a name past the id limit: every one is cached
    // once, shared by the users that hold it, and invalidated like any other role.
    let long = "r".repeat(300);
    let roles = ["team lead", "50%", "", long.as_str()];
    // MongoDB holds such names; the in-memory repository refuses them, so a plain map.
    let repo = AnyRoleNames::default();
    let set_roles = |prefix: &str| {
        let mut map = repo.roles.lock().unwrap();
        for (i, role) in roles.iter().enumerate() {
            map.insert((*role).to_owned(), vec![format!("{prefix}{i}")]);
        }
    };
    set_roles("p");
    let auth = service(repo.clone()).await;
    for id in ["ada", "bob"] {
        repo.users
            .lock()
            .unwrap()
            .push(User::new(id, "x@example.com", id).with_roles(roles));
        let who = auth.authenticate(&bearer(id)).await.unwrap();
        assert_eq!(*who.permissions, ["p0", "p1", "p2", "p3"]);
    }
    assert_eq!(
        auth.stats().permissions.loads,
        4,
        "one load per role, shared"
    );
    set_roles("q");
    for role in roles {
        auth.invalidate_role(role).await.unwrap();
    }
    let who = auth.authenticate(&bearer("ada")).await.unwrap();
    assert_eq!(*who.permissions, ["q0", "q1", "q2", "q3"]);
}

#[tokio::test]
async fn tokens_a_logout_all_could_not_outlive_are_refused() {
    // The cutoff is kept for the longest token lifetime: a token living longer, or with
    // no `iat` to compare with it, would be valid again once the cutoff is forgotten.
    let auth = AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .repository(repository())
        .max_token_lifetime(Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    let now = authcache_jwt::unix_now();
    let token = |iat: Option<u64>, exp: u64| {
        let mut claims = authcache_jwt::Claims::new("ada", exp);
        claims.iat = iat;
        issuer().sign(&claims).unwrap()
    };
    let thirty_days = token(Some(now), now + 30 * 86_400);
    assert!(matches!(
        auth.authenticate(&thirty_days).await,
        Err(AuthError::Token(TokenError::LifetimeTooLong { .. }))
    ));
    let no_iat = token(None, now + 600);
    assert!(matches!(
        auth.authenticate(&no_iat).await,
        Err(AuthError::Token(TokenError::MissingClaim("iat")))
    ));
    // Issued a second before the cutoff (one in the cutoff's own second is accepted).
    let within = token(Some(now - 1), now + 3599);
    assert_eq!(auth.authenticate(&within).await.unwrap().id(), "ada");
    auth.logout_all("ada").await.unwrap();
    assert_eq!(
        auth.authenticate(&within).await.unwrap_err(),
        AuthError::Revoked
    );
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
    let config = crate::AuthConfig::from_toml(
        "prefix = \"unit\"\n[repository]\nbackend = \"memory\"\n[ttls]\nuserTTL = 5\n",
    )
    .unwrap();
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
    // Success, saying what is true: in force here, pending for the shared cache.
    assert_eq!(auth.logout(&token).await, Ok(crate::Revocation::Pending));
    assert_eq!(auth.stats().pending_revocations, 1);
    assert_eq!(
        auth.authenticate(&token).await.unwrap_err(),
        AuthError::Revoked
    );
    // A client that retries the logout is told it is in force.
    assert_eq!(
        auth.logout(&token).await,
        Ok(crate::Revocation::AlreadyInForce)
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
    // One token: two issued apart may differ in length (`iat` carries microseconds).
    let ada = bearer("ada");
    let error = auth.authenticate(&ada).await.unwrap_err();
    assert_eq!(
        error,
        AuthError::Token(TokenError::TooLarge {
            size: error_size(&ada),
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
        base().leeway(Duration::MAX),
        base().leeway(authcache_jwt::MAX_LEEWAY + Duration::from_secs(1)),
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
    let state = &auth.inner.state;
    state.on_bus_event(authcache_core::BusEvent::Resubscribed);
    for noise in [
        "",
        "garbage",
        "authcache:v1:user:",
        "other:v1:user:bob",
        "authcache:revoked:x",
    ] {
        state.on_bus_event(authcache_core::BusEvent::Invalidated(noise.to_owned()));
    }
    let revoked_key = format!("authcache:revoked:{}", {
        let claims = JwtVerifier::hs256(SECRET).verify(&ada).unwrap();
        authcache_jwt::revocation_id(&ada, &claims)
    });
    state.on_bus_event(authcache_core::BusEvent::Invalidated(revoked_key));
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
    warnings: AtomicUsize,
    /// Every span's metadata, and the entered ones (innermost last), so that
    /// `Span::current()` works as under a real subscriber.
    spans: std::sync::Mutex<std::collections::HashMap<u64, &'static tracing::Metadata<'static>>>,
    entered: std::sync::Mutex<Vec<u64>>,
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
        let id = self.next_span.fetch_add(1, Ordering::Relaxed) + 1;
        self.spans.lock().unwrap().insert(id, span.metadata());
        tracing::span::Id::from_u64(id)
    }
    fn current_span(&self) -> tracing_core::span::Current {
        let entered = self.entered.lock().unwrap();
        let current = entered.last().and_then(|id| {
            let metadata = *self.spans.lock().unwrap().get(id)?;
            Some(tracing_core::span::Current::new(
                tracing::span::Id::from_u64(*id),
                metadata,
            ))
        });
        current.unwrap_or_else(tracing_core::span::Current::none)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        self.push(|v| values.record(v));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() <= tracing::Level::WARN {
            self.warnings.fetch_add(1, Ordering::SeqCst);
        }
        self.push(|v| event.record(v));
    }
    fn enter(&self, id: &tracing::span::Id) {
        self.entered.lock().unwrap().push(id.into_u64());
    }
    fn exit(&self, id: &tracing::span::Id) {
        let mut entered = self.entered.lock().unwrap();
        if let Some(at) = entered
            .iter()
            .rposition(|entered| *entered == id.into_u64())
        {
            entered.remove(at);
        }
    }
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
    assert_eq!(auth.logout(&token).await, Ok(crate::Revocation::Pending));
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

/// The password-change flow: log out everywhere, then issue a new token at once. Tokens
/// from [`TokenIssuer`] carry `iat` to the microsecond, so the cutoff tells the old token
/// from the new one however fast the new one comes; a whole-second `iat` is judged by the
/// cutoff's second, so a token issued in that second or later is the user's to use, and one
/// from an earlier second is refused (the rule's edges: `cutoff::tests`).
#[tokio::test]
async fn logout_all_refuses_earlier_tokens_and_never_the_login_that_follows_it() {
    let auth = service(repository()).await;
    let whole_second = |iat: u64| {
        let mut claims = authcache_jwt::Claims::new("ada", authcache_jwt::unix_now() + 600);
        claims.iat = Some(iat);
        format!("Bearer {}", issuer().sign(&claims).unwrap())
    };
    let session = |issuer: &TokenIssuer| {
        let token = issuer.issue("ada", Duration::from_secs(600)).unwrap();
        format!("Bearer {token}")
    };
    let started = authcache_jwt::unix_now();
    let (old, old_whole) = (session(&issuer()), whole_second(started - 1));
    for bearer in [&old, &old_whole] {
        auth.authenticate(bearer).await.unwrap();
    }

    assert_eq!(
        auth.logout_all("ada").await,
        Ok(crate::Revocation::Recorded)
    );
    let new = session(&issuer());
    let new_whole = whole_second(authcache_jwt::unix_now());

    for bearer in [&old, &old_whole] {
        assert_eq!(
            auth.authenticate(bearer).await.unwrap_err(),
            AuthError::Revoked
        );
    }
    assert_eq!(auth.authenticate(&new).await.unwrap().id(), "ada");
    assert_eq!(
        auth.authenticate(&new_whole).await.unwrap().id(),
        "ada",
        "issued in the cutoff's second or later"
    );
    assert_eq!(auth.authenticate(&bearer("bob")).await.unwrap().id(), "bob");
}

/// A service whose user entries live `user_ttl`, with a refresh-ahead window of
/// `refresh_ahead` of it.
async fn service_with_ttls(
    repository: Counting,
    user_ttl: Duration,
    refresh_ahead: f64,
) -> AuthService {
    let ttls = authcache_core::Ttls {
        user: user_ttl,
        jitter: 0.0,
        refresh_ahead,
        ..authcache_core::Ttls::default()
    };
    AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .repository(repository)
        .signing_key(b"cache-signing-key-0123456789")
        .ttls(ttls)
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_expired_user_is_served_stale_while_the_repository_is_down_but_never_once_revoked() {
    let repository = Counting::new(repository());
    let auth = service_with_ttls(repository.clone(), Duration::from_secs(1), 0.0).await;
    let token = bearer("ada");
    auth.authenticate(&token).await.unwrap();
    // Real time: the entry's expiry is wall-clock time, shared with other instances.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    repository.down.store(true, Ordering::SeqCst);
    let principal = auth.authenticate(&token).await.unwrap();
    assert_eq!(principal.id(), "ada");
    assert!(principal.has_role("admin"));
    assert_eq!(auth.stats().users.stale_served, 1);
    // Revocation always wins over a stale answer, and an invalidated user is never
    // served stale: a new token of the same user now needs the repository.
    auth.logout(&token).await.unwrap();
    assert!(matches!(
        auth.authenticate(&token).await,
        Err(AuthError::Revoked)
    ));
    let error = auth.authenticate(&bearer("ada")).await.unwrap_err();
    assert!(error.is_unavailable(), "{error}");
    assert_eq!(auth.stats().users.stale_served, 1);
}

#[tokio::test]
async fn a_warm_answer_never_outlives_the_stale_value_it_was_built_from() {
    // A value served stale is kept `STALE_RETRY` (1 s); the warm answer built on it must
    // not stay longer (without the bound it lives the user TTL, 2 s here).
    let repository = Counting::new(repository());
    let auth = service_with_ttls(repository.clone(), Duration::from_secs(2), 0.0).await;
    let token = bearer("ada");
    auth.authenticate(&token).await.unwrap();
    // Real time: the entry's expiry is wall-clock time, shared with other instances.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    repository.down.store(true, Ordering::SeqCst);
    assert!(auth.authenticate(&token).await.unwrap().has_role("admin"));
    assert_eq!(auth.stats().users.stale_served, 1);
    // Past the stale value's life the answer is asked of the tier again (which serves it
    // stale again, counted), not replayed from the warm path.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(auth.authenticate(&token).await.unwrap().has_role("admin"));
    assert_eq!(auth.stats().users.stale_served, 2);
}

#[tokio::test]
async fn a_user_read_in_the_refresh_window_is_reloaded_in_the_background() {
    let users = repository();
    let repository = Counting::new(users.clone());
    let auth = service(repository.clone()).await;
    let ada = auth.user("ada").await.unwrap();
    assert_eq!(repository.loads(), 1);
    // Ada's entry as if written 290 s ago: 10 s left of 300, inside the last 10 %.
    let tier = auth.inner.state.users_tier();
    tier.set_with_ttl("ada", (*ada).clone(), Duration::from_secs(10))
        .await
        .unwrap();
    tier.evict_local("ada");
    let renamed = User {
        name: "Ada L.".into(),
        ..(*ada).clone()
    };
    users.upsert(&renamed).await.unwrap();
    // Answered from the cache at once; one background reload brings the change in,
    // without any invalidation.
    let token = bearer("ada");
    assert_eq!(auth.authenticate(&token).await.unwrap().user.name, "Ada");
    for _ in 0..500 {
        if auth.user("ada").await.unwrap().name == "Ada L." {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(auth.user("ada").await.unwrap().name, "Ada L.");
    assert_eq!(repository.loads(), 2);
    assert_eq!(auth.stats().users.refreshes, 1);
}

/// The warm path answers a repeated token with one lookup, and every change that reaches
/// this instance — from here or over the bus — is seen by the very next request.
#[tokio::test]
async fn warm_answers_never_outlive_a_change_of_what_they_were_built_from() {
    let users = repository();
    let auth = service(users.clone()).await;
    let state = &auth.inner.state;
    let ada = bearer("ada");
    let warm = |auth: &AuthService| auth.stats().principals.l1_hits;
    auth.authenticate(&ada).await.unwrap();
    auth.authenticate(&ada).await.unwrap();
    assert_eq!(warm(&auth), 1);
    // Another instance announced a change of a role, then of the user: each makes the
    // next request a warm miss, answered again through the tiers.
    let announced = |kind, id| {
        let key = state.keyspace().key(kind, id).unwrap();
        state.on_bus_event(authcache_core::BusEvent::Invalidated(key.to_string()));
    };
    for (kind, id) in [
        (authcache_core::KeyKind::RolePerms, "admin"),
        (authcache_core::KeyKind::User, "ada"),
    ] {
        let before = warm(&auth);
        announced(kind, id);
        auth.authenticate(&ada).await.unwrap();
        assert_eq!(warm(&auth), before, "{kind:?} {id}: a miss");
        auth.authenticate(&ada).await.unwrap();
        assert_eq!(warm(&auth), before + 1, "{kind:?} {id}: warm again");
    }
    // Local changes: a role's permissions, then the user's roles, then logout_all.
    users.upsert_role("admin", ["users:read"]).unwrap();
    auth.invalidate_role("admin").await.unwrap();
    assert!(
        !auth
            .authenticate(&ada)
            .await
            .unwrap()
            .has_permission("users:write")
    );
    let demoted = User {
        roles: vec!["viewer".into()],
        ..(*auth.user("ada").await.unwrap()).clone()
    };
    auth.cache_user(&demoted).await.unwrap();
    assert!(!auth.authenticate(&ada).await.unwrap().has_role("admin"));
    auth.logout_all("ada").await.unwrap();
    assert_eq!(
        auth.authenticate(&ada).await.unwrap_err(),
        AuthError::Revoked
    );
}

/// One span per authentication tells who, how it ended, what answered and whether the token
/// was verified; a dead L2 is logged once per breaker transition, not once per request.
#[tokio::test]
async fn authentications_are_spans_and_a_dead_l2_is_logged_per_transition_only() {
    let capture = Arc::new(Capture::default());
    let _guard = tracing::dispatcher::set_default(&tracing::Dispatch::from(Arc::clone(&capture)));
    let auth = AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .repository(repository())
        .l2(Arc::new(broken_l2()))
        .signing_key(b"cache-signing-key-0123456789")
        .build()
        .await
        .unwrap();
    let tokens: Vec<String> = ["ada", "bob"].iter().map(|sub| bearer(sub)).collect();
    for _ in 0..20 {
        for token in &tokens {
            auth.authenticate(token).await.unwrap();
        }
    }
    auth.authenticate(&bearer("eve")).await.unwrap_err();
    // A healthy instance remembers whole answers (never while revocation is unchecked).
    let healthy = service(repository()).await;
    for _ in 0..2 {
        healthy.authenticate(&tokens[0]).await.unwrap();
    }
    let logged = capture.text.lock().unwrap().clone();
    for field in [
        "user=\"ada\"",
        "user=\"bob\"",
        "outcome=\"authenticated\"",
        "outcome=\"rejected_user\"",
        "tier=\"repository\"",
        "tier=\"l1\"",
        "tier=\"warm\"",
        "token=\"verified\"",
        "token=\"remembered\"",
    ] {
        assert!(logged.contains(field), "no {field} in:\n{logged}");
    }
    let opened = auth.stats().breaker.unwrap().opened;
    assert!(opened >= 1, "the dead L2 opened the breaker");
    assert_eq!(
        capture.warnings.load(Ordering::SeqCst) as u64,
        opened,
        "one warning per breaker opening, none per request:\n{logged}"
    );
}

/// Issue 18's race, exactly as the soak found it: a request's fill of `role-1`'s
/// permissions read `v4` and was preempted before its L1 insert; `invalidate_role` ran to
/// its end; then the insert landed. The next request, and the one after it (the warm path,
/// the derived memo), must see `v5`. The insert is held on the filling thread, so the
/// interleaving is exact.
#[tokio::test]
async fn a_confirmed_role_change_is_seen_next_however_late_an_older_fill_lands() {
    let repository = MemoryUserRepository::new()
        .with_role("role-1", ["role-1:v4"])
        .unwrap()
        .with_user(User::new("ada", "ada@example.com", "Ada").with_roles(["role-1"]))
        .unwrap();
    let held = Arc::new(authcache_core::test_support::HeldL1::new("role-1"));
    let mut builder = AuthService::builder()
        .verifier(JwtVerifier::test_hs256())
        .repository(repository.clone());
    builder.perms_l1 = Some(held.clone());
    let auth = builder.build().await.unwrap();
    let token = format!(
        "Bearer {}",
        TokenIssuer::test_hs256()
            .issue("ada", Duration::from_secs(600))
            .unwrap()
    );
    let filler = std::thread::spawn({
        let (auth, token) = (auth.clone(), token.clone());
        move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(auth.authenticate(&token))
        }
    });
    held.wait_for_insert();
    repository.upsert_role("role-1", ["role-1:v5"]).unwrap();
    auth.invalidate_role("role-1").await.unwrap();
    held.let_insert();
    let next = auth.authenticate(&token).await.unwrap();
    held.let_go();
    let again = auth.authenticate(&token).await.unwrap();
    assert_eq!(
        filler.join().unwrap().unwrap().permissions.as_slice(),
        ["role-1:v4"],
        "the filler's own request began before the change: v4 is its answer"
    );
    assert_eq!(
        next.permissions.as_slice(),
        ["role-1:v5"],
        "the next request"
    );
    assert_eq!(
        again.permissions.as_slice(),
        ["role-1:v5"],
        "asked again at once"
    );
}

/// A token of `sub` signed with the test secret: issued at `iat`, expiring at `exp`, from
/// `iss`.
fn signed_token(sub: &str, iat: u64, exp: u64, iss: Option<&str>) -> String {
    let mut claims = authcache_jwt::Claims::new(sub, exp);
    claims.iat = Some(iat);
    claims.iss = iss.map(str::to_owned);
    format!("Bearer {}", issuer().sign(&claims).unwrap())
}

/// Authenticates `bearer` under a fresh `Capture` and checks the refusal was told to the
/// operator: exactly one event with `reason`, the `user` when the token verified, an
/// 8-hex-character fingerprint of the token, and none of the token's text.
async fn assert_refusal_told(auth: &AuthService, bearer: &str, reason: &str, user: Option<&str>) {
    let capture = Arc::new(Capture::default());
    let dispatch = tracing::Dispatch::from(Arc::clone(&capture));
    let refused = {
        let _guard = tracing::dispatcher::set_default(&dispatch);
        auth.authenticate(bearer).await
    };
    assert!(refused.is_err(), "{reason}: not refused");
    let logged = capture.text.lock().unwrap().clone();
    assert_eq!(logged.matches("reason=").count(), 1, "{reason}:\n{logged}");
    let user = user.map_or(String::new(), |user| format!("user={user:?}\n"));
    let fingerprint = &authcache_jwt::fingerprint(bearer)[..8];
    let told = format!("reason={reason:?}\n{user}token={fingerprint:?}\n");
    assert!(logged.contains(&told), "{reason}: no {told:?} in\n{logged}");
    assert!(fingerprint.chars().all(|c| c.is_ascii_hexdigit()));
    // At `debug`: nothing above it but the repository's own failure (logged at `warn`).
    let warnings = capture.warnings.load(Ordering::SeqCst);
    assert_eq!(
        warnings,
        usize::from(reason == "unavailable"),
        "{reason}:\n{logged}"
    );
    for part in bearer.trim_start_matches("Bearer ").split('.') {
        assert!(!logged.contains(part), "{reason}: logs show {part:?}");
    }
}

/// Issue 20: every refusal of `authenticate` is one `debug` event naming its reason (the
/// client only ever gets the status), and is counted by reason in `Stats::refusals`.
#[tokio::test(flavor = "current_thread")]
async fn every_refusal_is_told_to_the_operator_with_its_reason() {
    let auth = service(repository()).await;
    let now = authcache_jwt::unix_now();
    let forged = format!(
        "Bearer {}",
        TokenIssuer::hs256(b"not-the-secret-not-the-secret-00")
            .issue("ada", Duration::from_secs(600))
            .unwrap()
    );
    assert_refusal_told(&auth, &forged, "bad_signature", None).await;
    let expired = signed_token("ada", now - 4000, now - 3600, None);
    assert_refusal_told(&auth, &expired, "expired", None).await;
    assert_refusal_told(&auth, &bearer("nobody"), "unknown_user", Some("nobody")).await;
    assert_refusal_told(&auth, &bearer("eve"), "disabled", Some("eve")).await;

    let ada = bearer("ada");
    auth.logout(&ada).await.unwrap();
    assert_refusal_told(&auth, &ada, "revoked", Some("ada")).await;

    let bob = signed_token("bob", now - 10, now + 600, None);
    auth.logout_all("bob").await.unwrap();
    assert_refusal_told(&auth, &bob, "cut_off", Some("bob")).await;

    let old = signed_token("ada", now - 10, now + 600, Some("idp"));
    auth.revoke_issued_before("idp", std::time::SystemTime::now())
        .await
        .unwrap();
    assert_refusal_told(&auth, &old, "issuer_cut_off", Some("ada")).await;

    let refusals = auth.stats().refusals;
    for reason in [
        "bad_signature",
        "expired",
        "unknown_user",
        "disabled",
        "revoked",
        "cut_off",
        "issuer_cut_off",
    ] {
        assert_eq!(refusals.get(reason), 1, "{reason}");
    }
    assert_eq!(refusals.total(), 7);
    let stats = auth.stats();
    let refused = stats.rejected_tokens + stats.rejected_users + stats.unavailable;
    assert_eq!(refusals.total(), refused);
}

/// A token from another issuer is refused as `wrong_issuer`, before anything is known of
/// its user.
#[tokio::test(flavor = "current_thread")]
async fn a_token_of_another_issuer_is_told_as_wrong_issuer() {
    let auth = AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET).issuer("x"))
        .repository(repository())
        .build()
        .await
        .unwrap();
    let now = authcache_jwt::unix_now();
    let token = signed_token("ada", now, now + 600, Some("y"));
    assert_refusal_told(&auth, &token, "wrong_issuer", None).await;
    assert_eq!(auth.stats().refusals.get("wrong_issuer"), 1);
}

/// The repository down: `unavailable`, with the user, whose token verified.
#[tokio::test(flavor = "current_thread")]
async fn an_unavailable_repository_is_told_as_unavailable() {
    let repository = Counting::new(repository());
    let auth = service(repository.clone()).await;
    repository.down.store(true, Ordering::SeqCst);
    assert_refusal_told(&auth, &bearer("ada"), "unavailable", Some("ada")).await;
    assert_eq!(auth.stats().refusals.get("unavailable"), 1);
}

/// A cutoff as of a past instant (a back-channel logout's `iat`): tokens issued before it
/// are refused, the ones issued after it kept; an earlier cutoff made later gives nothing
/// back; a `before` in the future is now, and one older than any live token writes nothing.
#[tokio::test(flavor = "current_thread")]
async fn logout_all_before_cuts_at_the_instant_given_and_never_lowers_a_cutoff() {
    use std::time::{SystemTime, UNIX_EPOCH};

    let auth = service(repository()).await;
    let issued = |sub: &str, at: SystemTime| {
        let claims = authcache_jwt::Claims::new(sub, authcache_jwt::unix_now() + 600);
        format!("Bearer {}", issuer().sign(&claims.issued_at(at)).unwrap())
    };
    let logged_out = SystemTime::now() - Duration::from_secs(60);
    let before = issued("ada", logged_out - Duration::from_secs(10));
    let after = issued("ada", logged_out + Duration::from_secs(10));

    assert_eq!(
        auth.logout_all_before("ada", logged_out).await,
        Ok(crate::Revocation::Recorded)
    );
    assert_eq!(
        auth.authenticate(&before).await.unwrap_err(),
        AuthError::Revoked
    );
    assert_eq!(auth.authenticate(&after).await.unwrap().id(), "ada");

    let earlier = logged_out - Duration::from_secs(30);
    assert!(auth.logout_all_before("ada", earlier).await.is_ok());
    assert_eq!(
        auth.authenticate(&before).await.unwrap_err(),
        AuthError::Revoked,
        "the later cutoff stays in force"
    );
    assert_eq!(auth.authenticate(&after).await.unwrap().id(), "ada");

    let future = SystemTime::now() + Duration::from_secs(3600);
    auth.logout_all_before("bob", future).await.unwrap();
    let next_login = issued("bob", SystemTime::now());
    assert_eq!(auth.authenticate(&next_login).await.unwrap().id(), "bob");
    assert_eq!(
        auth.logout_all_before("bob", UNIX_EPOCH).await,
        Ok(crate::Revocation::AlreadyInForce)
    );
}
