//! What the shared tier (Redis) may and may not do to an answer, against real servers: an
//! entry is bound to the key it was written under; a shared L2 needs a signing key, and a
//! rotated key still reads the old entries; a revocation is keyed by what the token asserts,
//! lives outside the schema, survives Redis going away and is never deleted by a reader;
//! `logout_all` cutoffs; what happens when revocation cannot be checked; and the bounds on
//! a hung Redis, a hung repository and made-up ids.
//!
//! Every test starts its own `redis-server`; the repository is the in-memory one. Every
//! assertion goes through the public API or reads Redis directly, never a clock.
// Test helpers outside `#[test]` functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth_support;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_support::{PROPAGATION, SECRET, SIGNING_KEY, bearer, memory_repository, patient_breaker};
use authcache::{
    Algorithm, AuthError, AuthService, AuthServiceBuilder, BreakerConfig, BreakerStats,
    CacheConfig, Claims, JwtVerifier, Revocation, RevocationCheck, TokenError, TokenIssuer,
    UserRepository,
};
use authcache_jwt::test_keys;
use authcache_tests::hooked_repository::{AfterRead, HookedRepository};
use authcache_tests::process::eventually;
use authcache_tests::redis_server::RedisServer;

const PREFIX: &str = "itest";

/// A cache signing key no instance of the fixture uses.
const OTHER_SIGNING_KEY: &[u8] = b"another-cache-signing-key-987654321";

/// Bound on the background retry of a revocation and the bus's reconnection after Redis
/// comes back (the breaker's cool-down and the subscriber's backoff are both capped well
/// below it).
const RECOVERY: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------------------

/// The fixture's service on `cache`, without a signing key yet. Its breaker is the
/// [`patient_breaker`]: the exact counters these tests read must not change because a
/// loaded machine answered one call slower than the default 100 ms. The tests about a
/// hung Redis set their own timeouts.
fn unsigned_builder(
    cache: CacheConfig,
    repository: &Arc<dyn UserRepository>,
) -> AuthServiceBuilder {
    AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .shared_repository(Arc::clone(repository))
        .cache(cache)
        .prefix(PREFIX)
        .breaker(patient_breaker())
}

/// The fixture's service on `cache`, signing its entries with `key`.
fn builder(
    cache: CacheConfig,
    repository: &Arc<dyn UserRepository>,
    key: &[u8],
) -> AuthServiceBuilder {
    unsigned_builder(cache, repository).signing_key(key)
}

async fn instance(redis: &RedisServer, repository: &Arc<dyn UserRepository>) -> AuthService {
    builder(CacheConfig::redis(redis.url()), repository, SIGNING_KEY)
        .build()
        .await
        .unwrap()
}

/// An instance with the default breaker (100 ms calls), for the tests of a hung Redis.
async fn default_breaker_instance(
    redis: &RedisServer,
    repository: &Arc<dyn UserRepository>,
) -> AuthService {
    builder(CacheConfig::redis(redis.url()), repository, SIGNING_KEY)
        .breaker(BreakerConfig::default())
        .build()
        .await
        .unwrap()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 bearer token of the fixture's issuer with exactly these times.
fn token_issued_at(sub: &str, iat: Option<u64>, exp: u64) -> String {
    let mut claims = Claims::new(sub, exp);
    claims.iat = iat;
    format!(
        "Bearer {}",
        TokenIssuer::hs256(SECRET).sign(&claims).unwrap()
    )
}

fn user_key(id: &str) -> String {
    format!("{PREFIX}:v1:user:{id}")
}

// ---------------------------------------------------------------------------------------
// Raw Redis, bypassing the code under test
// ---------------------------------------------------------------------------------------

fn raw_get(redis: &RedisServer, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET")
        .arg(key)
        .query(&mut redis.connection())
        .unwrap()
}

/// Writes `bytes` at `key` for 5 minutes (the entry carries its own expiry too).
fn raw_set(redis: &RedisServer, key: &str, bytes: &[u8]) {
    redis::cmd("SET")
        .arg(key)
        .arg(bytes)
        .arg("PX")
        .arg(300_000)
        .query::<()>(&mut redis.connection())
        .unwrap();
}

/// Keys matching a `KEYS` glob, sorted.
fn raw_keys(redis: &RedisServer, pattern: &str) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query(&mut redis.connection())
        .unwrap();
    keys.sort();
    keys
}

fn raw_pttl(redis: &RedisServer, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query(&mut redis.connection())
        .unwrap()
}

/// How many times the server has run `command` (`INFO commandstats`).
fn raw_calls(redis: &RedisServer, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut redis.connection())
        .unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

/// Subscribers of the fixture's invalidation channel, as the server counts them.
fn raw_subscribers(redis: &RedisServer) -> u64 {
    let (_, count): (String, u64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(format!("{PREFIX}:invalidate"))
        .query(&mut redis.connection())
        .unwrap();
    count
}

// ---------------------------------------------------------------------------------------
// 1. Entries are bound to their key
// ---------------------------------------------------------------------------------------

/// A signed entry copied over another key — an admin's user record over a viewer's, an
/// admin role's permissions over a viewer role's, an entry of one prefix into another —
/// fails its tag there: a counted miss, answered from the repository, never served.
#[tokio::test]
async fn a_signed_entry_copied_to_another_key_is_never_served() {
    let redis = RedisServer::start();
    let repository = memory_repository().await;
    let writer = instance(&redis, &repository).await;
    let ada = writer.authenticate(&bearer("ada")).await.unwrap();
    let bob = writer.authenticate(&bearer("bob")).await.unwrap();
    assert!(ada.has_role("admin") && bob.has_role("viewer"));

    let admin_entry = raw_get(&redis, &user_key("ada")).expect("ada's entry in Redis");
    raw_set(&redis, &user_key("bob"), &admin_entry);
    let reader = instance(&redis, &repository).await;
    let bob = reader.authenticate(&bearer("bob")).await.unwrap();
    assert_eq!((bob.id(), bob.has_role("admin")), ("bob", false));
    assert!(!bob.has_permission("users:write"));
    assert_eq!(*reader.roles("bob").await.unwrap(), ["viewer"]);
    assert_eq!(*reader.permissions("bob").await.unwrap(), ["users:read"]);
    let users = reader.stats().users;
    assert_eq!(
        (users.decode_failures, users.l2_hits, users.loads),
        (1, 0, 1),
        "{users:?}"
    );
    assert_ne!(
        raw_get(&redis, &user_key("bob")).as_deref(),
        Some(&admin_entry[..]),
        "the fill replaced the copied entry"
    );

    // The per-role permission entries are bound the same way.
    let admin_perms = raw_get(&redis, &format!("{PREFIX}:v1:perms:admin")).unwrap();
    raw_set(&redis, &format!("{PREFIX}:v1:perms:viewer"), &admin_perms);
    let reader = instance(&redis, &repository).await;
    let bob = reader.authenticate(&bearer("bob")).await.unwrap();
    assert!(bob.has_permission("users:read") && !bob.has_permission("users:write"));
    assert_eq!(*reader.permissions("bob").await.unwrap(), ["users:read"]);
    assert_eq!(reader.stats().permissions.decode_failures, 1);

    // Same id, same signing key, another application's prefix: not its entry either.
    raw_set(&redis, "otherapp:v1:user:ada", &admin_entry);
    let other = builder(CacheConfig::redis(redis.url()), &repository, SIGNING_KEY)
        .prefix("otherapp")
        .build()
        .await
        .unwrap();
    assert_eq!(
        other.authenticate(&bearer("ada")).await.unwrap().id(),
        "ada"
    );
    let users = other.stats().users;
    assert_eq!(
        (users.decode_failures, users.l2_hits, users.loads),
        (1, 0, 1),
        "{users:?}"
    );
}

/// Without a signing key nothing binds the bytes to the key, but the record names its
/// own id: an admin's record at a viewer's key is still a counted miss.
#[tokio::test]
async fn an_unsigned_user_entry_at_another_users_key_is_never_served() {
    let redis = RedisServer::start();
    let repository = memory_repository().await;
    let unsigned = || async {
        unsigned_builder(CacheConfig::redis(redis.url()), &repository)
            .allow_unsigned_l2()
            .build()
            .await
            .unwrap()
    };
    let writer = unsigned().await;
    writer.authenticate(&bearer("ada")).await.unwrap();
    writer.authenticate(&bearer("bob")).await.unwrap();

    let admin_entry = raw_get(&redis, &user_key("ada")).unwrap();
    raw_set(&redis, &user_key("bob"), &admin_entry);
    let reader = unsigned().await;
    assert_eq!(reader.user("bob").await.unwrap().id, "bob");
    let bob = reader.authenticate(&bearer("bob")).await.unwrap();
    assert_eq!((bob.id(), bob.has_role("admin")), ("bob", false));
    assert_eq!(*reader.roles("bob").await.unwrap(), ["viewer"]);
    let users = reader.stats().users;
    assert_eq!((users.decode_failures, users.l2_hits), (1, 0), "{users:?}");
}

// ---------------------------------------------------------------------------------------
// 2. A shared L2 needs a signing key; rotation
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_shared_l2_without_a_signing_key_is_a_configuration_error() {
    let redis = RedisServer::start();
    let repository = memory_repository().await;
    let refused = unsigned_builder(CacheConfig::redis(redis.url()), &repository)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(refused, AuthError::Config(_)), "{refused}");
    assert_eq!(refused.status_code(), 500);

    let allowed = unsigned_builder(CacheConfig::redis(redis.url()), &repository)
        .allow_unsigned_l2()
        .build()
        .await
        .unwrap();
    assert_eq!(
        allowed.authenticate(&bearer("ada")).await.unwrap().id(),
        "ada"
    );
    // An in-process L2 is nobody else's to write: no key needed.
    unsigned_builder(CacheConfig::memory(), &repository)
        .build()
        .await
        .unwrap();
}

/// Entries signed with the previous key are L2 hits for an instance that lists it among
/// its previous keys; for one that does not they are misses, which it leaves in place.
#[tokio::test]
async fn a_rotated_signing_key_still_reads_entries_of_the_previous_one() {
    const K1: &[u8] = b"rotation-signing-key-number-one-0001";
    const K2: &[u8] = b"rotation-signing-key-number-two-0002";
    let redis = RedisServer::start();
    let repository = memory_repository().await;
    let cache = || CacheConfig::redis(redis.url());
    let old = builder(cache(), &repository, K1).build().await.unwrap();
    old.authenticate(&bearer("ada")).await.unwrap();
    let k1_entry = raw_get(&redis, &user_key("ada")).unwrap();

    let rotated = builder(cache(), &repository, K2)
        .previous_signing_keys([K1])
        .build()
        .await
        .unwrap();
    let ada = rotated.authenticate(&bearer("ada")).await.unwrap();
    assert!(ada.has_permission("users:write"));
    let stats = rotated.stats();
    assert_eq!(
        (stats.users.l2_hits, stats.permissions.l2_hits),
        (1, 1),
        "{stats:?}"
    );
    assert_eq!(
        (stats.loads(), stats.users.decode_failures),
        (0, 0),
        "{stats:?}"
    );

    // Only K2: a miss. A reader whose load caches nothing in L2 (an unknown id asked by a
    // caller) shows that the read itself neither deletes nor rewrites the entry.
    let empty: Arc<dyn UserRepository> = Arc::new(authcache::MemoryUserRepository::new());
    let stranger = builder(cache(), &empty, K2).build().await.unwrap();
    assert_eq!(
        stranger.user("ada").await.unwrap_err(),
        AuthError::UnknownUser
    );
    assert_eq!(stranger.stats().users.decode_failures, 1);
    assert_eq!(raw_get(&redis, &user_key("ada")), Some(k1_entry));

    let stranger = builder(cache(), &repository, K2).build().await.unwrap();
    assert_eq!(
        stranger.authenticate(&bearer("ada")).await.unwrap().id(),
        "ada"
    );
    let users = stranger.stats().users;
    assert_eq!(
        (users.decode_failures, users.l2_hits, users.loads),
        (1, 0, 1),
        "{users:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 3. ECDSA twins and re-signed tokens
// ---------------------------------------------------------------------------------------

/// The published test keys of `authcache-jwt` (private, public).
fn ec_pems(alg: Algorithm) -> (&'static str, &'static str) {
    match alg {
        Algorithm::ES256 => (
            test_keys::EC_P256_PRIVATE_PEM,
            test_keys::EC_P256_PUBLIC_PEM,
        ),
        Algorithm::ES384 => (
            test_keys::EC_P384_PRIVATE_PEM,
            test_keys::EC_P384_PUBLIC_PEM,
        ),
        _ => panic!("not an ECDSA algorithm: {alg:?}"),
    }
}

/// One ECDSA token logged out on one instance: its high-S twin never verifies anywhere,
/// and a re-signed token with the same issuer and token id (another `exp`, so other bytes)
/// is revoked on every instance, including one started afterwards.
#[tokio::test]
async fn a_logged_out_ecdsa_token_has_no_twin_and_no_reissue_that_passes() {
    const ISS: &str = "https://id.test";
    let redis = RedisServer::start();
    let repository = memory_repository().await;
    for alg in [Algorithm::ES256, Algorithm::ES384] {
        let (private, public) = ec_pems(alg);
        let issuer = TokenIssuer::from_pem(alg, private).unwrap();
        let ecdsa_instance = || async {
            AuthService::builder()
                .verifier(JwtVerifier::from_pem(alg, public).unwrap())
                .shared_repository(Arc::clone(&repository))
                .cache(CacheConfig::redis(redis.url()))
                .signing_key(SIGNING_KEY)
                .breaker(patient_breaker())
                .prefix(format!("{alg:?}").to_lowercase())
                .build()
                .await
                .unwrap()
        };
        let token = |iss: &str, exp: u64| {
            let mut claims = Claims::new("ada", exp);
            claims.iat = Some(unix_now());
            claims.iss = Some(iss.into());
            claims.jti = Some("token-1".into());
            format!("Bearer {}", issuer.sign(&claims).unwrap())
        };
        let (one, other) = (ecdsa_instance().await, ecdsa_instance().await);
        let logged_out = token(ISS, unix_now() + 600);
        for auth in [&one, &other] {
            auth.authenticate(&logged_out).await.unwrap();
        }
        one.logout(&logged_out).await.unwrap();

        let high_s = test_keys::ecdsa_twin(&logged_out).unwrap();
        let bad_signature = AuthError::Token(TokenError::BadSignature);
        for auth in [&one, &other] {
            assert_eq!(
                auth.authenticate(&high_s).await.unwrap_err(),
                bad_signature,
                "{alg:?}"
            );
        }
        assert_eq!(one.logout(&high_s).await.unwrap_err(), bad_signature);

        let reissued = token(ISS, unix_now() + 900);
        assert_ne!(reissued, logged_out);
        let late = ecdsa_instance().await;
        for (i, auth) in [&one, &other, &late].into_iter().enumerate() {
            eventually(
                PROPAGATION,
                &format!("{alg:?}: instance {i} to refuse the re-signed token"),
                || async { auth.authenticate(&reissued).await.err() == Some(AuthError::Revoked) },
            )
            .await;
        }
        // The id is issuer and token id together: another issuer's `token-1` is not revoked.
        let elsewhere = token("https://other.test", unix_now() + 600);
        assert_eq!(other.authenticate(&elsewhere).await.unwrap().id(), "ada");
    }
}

// ---------------------------------------------------------------------------------------
// 4. A logout while Redis is down
// ---------------------------------------------------------------------------------------

/// Redis restarted empty loses every mark it held; the instances that wrote them write them
/// back when their bus resubscribes, so a logout and a `logout_all` made before the restart
/// are refused by an instance that never heard of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marks_lost_by_a_redis_restart_are_written_back_by_their_instance() {
    let mut redis = RedisServer::start();
    let repository = memory_repository().await;
    let auth = instance(&redis, &repository).await;
    let (ada, bob) = (bearer("ada"), bearer("bob"));
    auth.logout(&ada).await.unwrap();
    auth.logout_all("bob").await.unwrap();
    assert_eq!(raw_keys(&redis, &format!("{PREFIX}:revoked:*")).len(), 1);

    redis.kill();
    redis.restart();
    assert!(
        raw_keys(&redis, &format!("{PREFIX}:*")).is_empty(),
        "restarted empty"
    );
    eventually(RECOVERY, "the marks to be written back", || async {
        raw_keys(&redis, &format!("{PREFIX}:revoked:*")).len() == 1
            && raw_keys(&redis, &format!("{PREFIX}:cutoff:*")).len() == 1
    })
    .await;
    let stranger = instance(&redis, &repository).await;
    for token in [&ada, &bob] {
        assert_eq!(
            stranger.authenticate(token).await.unwrap_err(),
            AuthError::Revoked
        );
    }
}

/// Redis dies, the token is logged out (503: not shared yet), Redis comes back empty: the
/// logout stays in force here through the bus's reconnection (which clears the L1), is
/// retried into Redis, and from then on refused by an instance that never heard of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_made_while_redis_is_down_stays_in_force_and_reaches_redis_later() {
    let mut redis = RedisServer::start();
    let repository = memory_repository().await;
    let auth = instance(&redis, &repository).await;
    let (token, bob) = (bearer("ada"), bearer("bob"));
    auth.authenticate(&token).await.unwrap();
    auth.authenticate(&bob).await.unwrap();

    redis.kill();
    // Success, saying what is true: in force here, pending for Redis.
    assert_eq!(auth.logout(&token).await, Ok(Revocation::Pending));
    assert_eq!(
        auth.authenticate(&token).await.unwrap_err(),
        AuthError::Revoked
    );
    assert_eq!(auth.stats().pending_revocations, 1);

    redis.restart();
    eventually(RECOVERY, "the bus to subscribe again", || async {
        raw_subscribers(&redis) == 1
    })
    .await;
    // The resubscription clears the whole L1 (bob is then no L1 hit); the logout stays.
    eventually(RECOVERY, "the resubscription to clear the L1", || async {
        assert_eq!(
            auth.authenticate(&token).await.unwrap_err(),
            AuthError::Revoked
        );
        let (l1, warm) = (auth.stats().users.l1_hits, auth.stats().principals.l1_hits);
        auth.authenticate(&bob).await.unwrap();
        let after = auth.stats();
        after.users.l1_hits == l1 && after.principals.l1_hits == warm
    })
    .await;
    eventually(
        RECOVERY,
        "the pending revocation to reach Redis",
        || async {
            assert_eq!(
                auth.authenticate(&token).await.unwrap_err(),
                AuthError::Revoked
            );
            auth.stats().pending_revocations == 0
        },
    )
    .await;
    assert_eq!(
        auth.authenticate(&token).await.unwrap_err(),
        AuthError::Revoked
    );
    assert_eq!(raw_keys(&redis, &format!("{PREFIX}:revoked:*")).len(), 1);

    let fresh = instance(&redis, &repository).await;
    assert_eq!(
        fresh.authenticate(&token).await.unwrap_err(),
        AuthError::Revoked
    );
    assert_eq!(fresh.authenticate(&bob).await.unwrap().id(), "bob");
}

// ---------------------------------------------------------------------------------------
// 5. One L2 timeout per request
// ---------------------------------------------------------------------------------------

fn breaker(auth: &AuthService) -> BreakerStats {
    auth.stats().breaker.unwrap()
}

/// On a hung Redis, a cold request is served from the repository after waiting out one
/// L2 call (every call to a hung server fails by timing out, so failed calls count the
/// timeouts waited on), not one per tier; a logout, whose publish goes through the breaker
/// too, waits out at most one.
#[tokio::test]
async fn a_hung_redis_costs_a_request_one_timeout() {
    let redis = RedisServer::start();
    let repository = memory_repository().await;
    let auth = default_breaker_instance(&redis, &repository).await;
    assert_eq!(breaker(&auth).failures, 0);
    let publishes = raw_calls(&redis, "publish");

    redis.hang();
    let ada = auth.authenticate(&bearer("ada")).await.unwrap();
    assert!(ada.has_permission("users:write"));
    let stats = auth.stats();
    assert_eq!(stats.breaker.unwrap().failures, 1, "{stats:?}");
    assert_eq!(
        stats.loads(),
        2,
        "user and one role, from the repository: {stats:?}"
    );

    // Read at once: the background retry of the pending mark could add its own failure
    // only a full timeout after the logout returned, and on this current-thread runtime
    // nothing else runs between the logout's return and this read.
    assert_eq!(auth.logout(&bearer("bob")).await, Ok(Revocation::Pending));
    let failures = breaker(&auth).failures;
    assert!(
        (1..=2).contains(&failures),
        "the logout waited out {} L2 calls",
        failures - 1
    );

    // Nor did it send anything after its timeout: once the server is back, the only
    // PUBLISHes it has run since the hang are the retries' — the pending mark's and the
    // pending invalidation of bob's cached data — none of the logout's.
    redis.resume();
    eventually(
        RECOVERY,
        "the pending revocation and invalidation to reach Redis",
        || async {
            let stats = auth.stats();
            stats.pending_revocations == 0 && stats.users.pending_invalidations == 0
        },
    )
    .await;
    assert_eq!(raw_calls(&redis, "publish"), publishes + 2);
}

/// `CacheConfig::Redis { timeout_ms }` is the breaker's timeout: a hung Redis is waited on
/// for that long — the error of a write-through it refused names the duration — and still
/// once per request.
#[tokio::test]
async fn a_configured_redis_timeout_is_the_breaker_timeout() {
    let redis = RedisServer::start();
    let repository = memory_repository().await;
    let cache = CacheConfig::Redis {
        url: redis.url(),
        timeout_ms: Some(250),
    };
    let auth = builder(cache, &repository, SIGNING_KEY)
        .build()
        .await
        .unwrap();

    redis.hang();
    assert_eq!(auth.authenticate(&bearer("ada")).await.unwrap().id(), "ada");
    assert_eq!(breaker(&auth).failures, 1, "{:?}", auth.stats());

    let user = repository.find_by_id("bob").await.unwrap().unwrap();
    let refused = auth.cache_user(&user).await.unwrap_err();
    assert!(refused.is_unavailable(), "{refused}");
    assert!(
        refused
            .to_string()
            .contains("(cache backend timed out after 250ms): it is in force on this instance"),
        "{refused}"
    );
    assert_eq!(breaker(&auth).failures, 2, "{:?}", auth.stats());
}

/// Without `timeout_ms`, the breaker's timeout is the Redis client's too: a client that gave
/// up at its own 100 ms default would silently undercut a longer breaker timeout.
#[tokio::test]
async fn the_breaker_timeout_is_the_redis_clients_when_none_is_configured() {
    let redis = RedisServer::start();
    let repository = memory_repository().await;
    let cache = CacheConfig::Redis {
        url: redis.url(),
        timeout_ms: None,
    };
    let auth = builder(cache, &repository, SIGNING_KEY)
        .breaker(authcache::BreakerConfig {
            timeout: Duration::from_millis(300),
            ..authcache::BreakerConfig::default()
        })
        .build()
        .await
        .unwrap();
    redis.hang();
    let user = repository.find_by_id("bob").await.unwrap().unwrap();
    let refused = auth.cache_user(&user).await.unwrap_err();
    assert!(refused.is_unavailable(), "{refused}");
    assert!(
        refused
            .to_string()
            .contains("(cache backend timed out after 300ms): it is in force on this instance"),
        "{refused}"
    );
}

/// `BreakerStats::timeouts` ("failed calls … of which timeouts", exported as
/// `authcache_breaker_timeouts_total`) counts the calls a hung Redis timed out, whichever
/// timer noticed first: the breaker's or the Redis client's own, set to the same duration.
#[tokio::test]
async fn the_breaker_counts_the_timeouts_of_a_hung_redis() {
    let redis = RedisServer::start();
    let repository = memory_repository().await;
    let configured = CacheConfig::Redis {
        url: redis.url(),
        timeout_ms: Some(250),
    };
    let auths = [
        default_breaker_instance(&redis, &repository).await,
        builder(configured, &repository, SIGNING_KEY)
            .build()
            .await
            .unwrap(),
    ];

    redis.hang();
    for (i, auth) in auths.iter().enumerate() {
        assert_eq!(auth.authenticate(&bearer("ada")).await.unwrap().id(), "ada");
        let breaker = breaker(auth);
        assert_eq!(
            (breaker.failures, breaker.timeouts),
            (1, 1),
            "instance {i}: one call, timed out: {breaker:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 6. Revocation marks live outside the schema
// ---------------------------------------------------------------------------------------

/// A logout writes one unversioned mark; an instance that cannot read it (another signing
/// key) refuses the token anyway and leaves the mark alone; a replayed logout, on the
/// instance that made it or another, changes nothing anywhere.
#[tokio::test]
async fn a_revocation_mark_is_unversioned_unreadable_is_in_force_and_replays_change_nothing() {
    let redis = RedisServer::start();
    let repository = memory_repository().await;
    let (auth, observer) = (
        instance(&redis, &repository).await,
        instance(&redis, &repository).await,
    );
    let (token, other_token) = (bearer("ada"), auth_support::another_bearer("ada"));
    auth.authenticate(&token).await.unwrap();
    for warm in [&other_token, &bearer("bob"), &bearer("user-1")] {
        observer.authenticate(warm).await.unwrap();
    }
    let loads = observer.stats().users.loads;
    auth.logout(&token).await.unwrap();
    // The logout invalidated ada everywhere: once the observer has reloaded her, no
    // announcement of the logout is still on its way to it.
    eventually(
        PROPAGATION,
        "the observer to drop and reload ada",
        || async {
            observer.authenticate(&other_token).await.unwrap();
            observer.stats().users.loads == loads + 1
        },
    )
    .await;

    let marks = raw_keys(&redis, &format!("{PREFIX}:revoked:*"));
    assert_eq!(marks.len(), 1, "{marks:?}");
    assert_eq!(
        raw_keys(&redis, &format!("{PREFIX}:v*:revoked:*")),
        Vec::<String>::new()
    );
    let mark = raw_get(&redis, &marks[0]).unwrap();
    // Computed from the token's own `exp`, not from how long the test has run so far: the
    // mark expires no earlier than now + PTTL (now read first, rounded down).
    let exp = JwtVerifier::hs256(SECRET).verify(&token).unwrap().exp;
    let now = unix_now();
    let pttl = u64::try_from(raw_pttl(&redis, &marks[0])).unwrap_or(0);
    assert!(
        now * 1000 + pttl >= exp * 1000,
        "kept at least until the token's exp {exp}: {pttl} ms left at {now}"
    );

    let stranger = builder(
        CacheConfig::redis(redis.url()),
        &repository,
        OTHER_SIGNING_KEY,
    )
    .build()
    .await
    .unwrap();
    assert_eq!(
        stranger.authenticate(&token).await.unwrap_err(),
        AuthError::Revoked
    );
    assert_eq!(stranger.stats().revocations.decode_failures, 1);
    assert_eq!(raw_get(&redis, &marks[0]), Some(mark.clone()));

    let ada_entry = raw_get(&redis, &user_key("ada")).unwrap();
    let loads = observer.stats().users.loads;
    let replayer = instance(&redis, &repository).await;
    auth.logout(&token).await.unwrap();
    replayer.logout(&token).await.unwrap();
    assert_eq!(
        raw_get(&redis, &user_key("ada")),
        Some(ada_entry),
        "no tombstone"
    );
    assert_eq!(raw_keys(&redis, &format!("{PREFIX}:revoked:*")), marks);
    assert_eq!(raw_get(&redis, &marks[0]), Some(mark));

    // Sentinels after the replays, from both replaying instances: once the observer has
    // dropped bob and user-1 (pub/sub keeps each publisher's order), it would have
    // dropped ada too had a replay announced anything.
    auth.invalidate_user("bob").await.unwrap();
    replayer.invalidate_user("user-1").await.unwrap();
    eventually(
        PROPAGATION,
        "the observer to drop bob and user-1",
        || async {
            observer.authenticate(&bearer("bob")).await.unwrap();
            observer.authenticate(&bearer("user-1")).await.unwrap();
            observer.stats().users.loads == loads + 2
        },
    )
    .await;
    observer.authenticate(&other_token).await.unwrap();
    assert_eq!(
        observer.stats().users.loads,
        loads + 2,
        "ada was not dropped: {:?}",
        observer.stats().users
    );
    assert_eq!(
        observer.authenticate(&token).await.unwrap_err(),
        AuthError::Revoked
    );
}

// ---------------------------------------------------------------------------------------
// 7. logout_all
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn logout_all_refuses_the_users_earlier_tokens_everywhere_and_nothing_else() {
    let redis = RedisServer::start();
    let repository = memory_repository().await;
    let (one, other) = (
        instance(&redis, &repository).await,
        instance(&redis, &repository).await,
    );
    let now = unix_now();
    let earlier = [
        token_issued_at("ada", Some(now - 10), now + 600),
        token_issued_at("ada", Some(now - 1), now + 600),
    ];
    // No `iat`, no way to tell it from a token issued before any cutoff: refused outright
    // (the service's verifier enforces the longest token lifetime, which needs `iat`).
    let undated = token_issued_at("ada", None, now + 600);
    assert!(matches!(
        one.authenticate(&undated).await,
        Err(AuthError::Token(authcache::TokenError::MissingClaim("iat")))
    ));
    let bobs = token_issued_at("bob", Some(now - 10), now + 600);
    for auth in [&one, &other] {
        for token in earlier.iter().chain([&bobs]) {
            auth.authenticate(token).await.unwrap();
        }
    }

    one.logout_all("ada").await.unwrap();
    let late = instance(&redis, &repository).await;
    for (i, auth) in [&one, &other, &late].into_iter().enumerate() {
        for token in &earlier {
            eventually(
                PROPAGATION,
                &format!("instance {i} to refuse ada's earlier token"),
                || async { auth.authenticate(token).await.err() == Some(AuthError::Revoked) },
            )
            .await;
        }
    }
    // A token issued after the cutoff, even one dated slightly in the future (within the
    // leeway), is ada's to use.
    let now = unix_now();
    let later = token_issued_at("ada", Some(now + 2), now + 600);
    for auth in [&one, &other, &late] {
        assert_eq!(auth.authenticate(&later).await.unwrap().id(), "ada");
        assert_eq!(auth.authenticate(&bobs).await.unwrap().id(), "bob");
    }

    assert_eq!(
        raw_keys(&redis, &format!("{PREFIX}:cutoff:*")),
        [format!("{PREFIX}:cutoff:ada")]
    );
    assert_eq!(
        raw_keys(&redis, &format!("{PREFIX}:v*:cutoff:*")),
        Vec::<String>::new()
    );
    assert!(raw_pttl(&redis, &format!("{PREFIX}:cutoff:ada")) > 0);
}

/// The password-change flow on two instances sharing Redis: log out everywhere, then issue a
/// new token at once. The new token is never locked out — from `TokenIssuer` (`iat` to the
/// microsecond) or from an issuer that gives whole seconds (`iat` in the cutoff's second) —
/// and the old ones are refused by both instances.
#[tokio::test]
async fn the_login_that_follows_a_logout_all_is_accepted_everywhere() {
    let redis = RedisServer::start();
    let repository = memory_repository().await;
    let (one, other) = (
        instance(&redis, &repository).await,
        instance(&redis, &repository).await,
    );
    let issuer = TokenIssuer::hs256(SECRET);
    let session = || {
        format!(
            "Bearer {}",
            issuer.issue("ada", Duration::from_secs(600)).unwrap()
        )
    };
    let old = session();
    let old_whole = token_issued_at("ada", Some(unix_now() - 1), unix_now() + 600);
    for auth in [&one, &other] {
        auth.authenticate(&old).await.unwrap();
        auth.authenticate(&old_whole).await.unwrap();
    }

    assert_eq!(one.logout_all("ada").await, Ok(Revocation::Recorded));
    let new = session();
    let new_whole = token_issued_at("ada", Some(unix_now()), unix_now() + 600);

    for (i, auth) in [&one, &other].into_iter().enumerate() {
        for token in [&old, &old_whole] {
            eventually(
                PROPAGATION,
                &format!("instance {i} to refuse ada's old token"),
                || async { auth.authenticate(token).await.err() == Some(AuthError::Revoked) },
            )
            .await;
        }
        assert_eq!(auth.authenticate(&new).await.unwrap().id(), "ada");
        assert_eq!(auth.authenticate(&new_whole).await.unwrap().id(), "ada");
    }
}

// ---------------------------------------------------------------------------------------
// 8. RevocationCheck
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn revocation_check_decides_only_what_could_not_be_checked() {
    let mut redis = RedisServer::start();
    let repository = memory_repository().await;
    let with_check = |check| {
        builder(CacheConfig::redis(redis.url()), &repository, SIGNING_KEY).revocation_check(check)
    };
    let open = with_check(RevocationCheck::FailOpen).build().await.unwrap();
    let closed = with_check(RevocationCheck::FailClosed)
        .build()
        .await
        .unwrap();
    let (open_own, closed_own) = (bearer("ada"), bearer("bob"));
    open.logout(&open_own).await.unwrap();
    closed.logout(&closed_own).await.unwrap();

    redis.kill();
    let unseen = bearer("user-5");
    assert_eq!(open.authenticate(&unseen).await.unwrap().id(), "user-5");
    assert_eq!(open.stats().unchecked, 1);
    let refused = closed.authenticate(&unseen).await.unwrap_err();
    assert!(refused.is_unavailable(), "{refused}");
    assert_eq!(refused.status_code(), 503);
    assert_eq!(closed.stats().unchecked, 1);

    assert_eq!(
        open.authenticate(&open_own).await.unwrap_err(),
        AuthError::Revoked
    );
    assert_eq!(
        closed.authenticate(&closed_own).await.unwrap_err(),
        AuthError::Revoked
    );
}

// ---------------------------------------------------------------------------------------
// 9. Bounded
// ---------------------------------------------------------------------------------------

/// The fixture's repository, except that `find_by_id` of `stalled` never answers.
async fn stalling(stalled: &'static str) -> Arc<dyn UserRepository> {
    let after_read: AfterRead = Arc::new(move |id| {
        if id == stalled {
            Box::pin(std::future::pending())
        } else {
            Box::pin(std::future::ready(()))
        }
    });
    Arc::new(HookedRepository::new(memory_repository().await, after_read))
}

/// Far above the repository timeout of the test (200 ms).
const HUNG_REPOSITORY_BOUND: Duration = Duration::from_secs(10);

/// A repository call that never answers fails every request waiting on it with 503 after
/// the repository timeout, and leaves no load in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_repository_fails_every_waiter_and_leaks_no_flight() {
    let redis = RedisServer::start();
    let repository = stalling("ada").await;
    let auth = builder(CacheConfig::redis(redis.url()), &repository, SIGNING_KEY)
        .repository_timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    let token = Arc::new(bearer("ada"));
    let waiters: Vec<_> = (0..8)
        .map(|_| {
            let (auth, token) = (auth.clone(), Arc::clone(&token));
            tokio::spawn(async move {
                // Bounded, so that a repository call without a bound fails the test
                // instead of hanging it.
                tokio::time::timeout(HUNG_REPOSITORY_BOUND, auth.authenticate(&token)).await
            })
        })
        .collect();
    for waiter in waiters {
        let error = waiter
            .await
            .unwrap()
            .expect("the repository timeout to end the wait")
            .unwrap_err();
        assert!(error.is_unavailable(), "{error}");
    }
    let users = auth.stats().users;
    assert_eq!(users.in_flight, 0, "{users:?}");
    assert!(
        users.loads >= 1 && users.load_errors == users.loads,
        "{users:?}"
    );
    assert_eq!(
        raw_get(&redis, &user_key("ada")),
        None,
        "a failure is not cached"
    );
    assert_eq!(auth.authenticate(&bearer("bob")).await.unwrap().id(), "bob");
}

/// Made-up ids asked by a caller are remembered in this process only; the unknown `sub`
/// of a verified token is remembered in Redis, for every instance.
#[tokio::test]
async fn made_up_ids_never_reach_redis_but_an_unknown_verified_subject_does() {
    let redis = RedisServer::start();
    let repository = memory_repository().await;
    let auth = instance(&redis, &repository).await;
    for i in 0..200 {
        let id = format!("made-up-{i}");
        assert_eq!(
            auth.user(&id).await.unwrap_err(),
            AuthError::UnknownUser,
            "{id}"
        );
    }
    for i in 0..5 {
        let id = format!("made-up-role-query-{i}");
        assert_eq!(auth.roles(&id).await.unwrap_err(), AuthError::UnknownUser);
        assert_eq!(
            auth.permissions(&id).await.unwrap_err(),
            AuthError::UnknownUser
        );
    }
    assert_eq!(raw_keys(&redis, "*made-up*"), Vec::<String>::new());
    assert_eq!(
        auth.stats().users.loads,
        205,
        "each id loaded once, then remembered"
    );

    assert_eq!(
        auth.authenticate(&bearer("ghost")).await.unwrap_err(),
        AuthError::UnknownUser
    );
    assert_eq!(raw_keys(&redis, &user_key("*")), [user_key("ghost")]);
    let other = instance(&redis, &repository).await;
    assert_eq!(
        other.authenticate(&bearer("ghost")).await.unwrap_err(),
        AuthError::UnknownUser
    );
    let users = other.stats().users;
    assert_eq!((users.l2_hits, users.loads), (1, 0), "{users:?}");
}
