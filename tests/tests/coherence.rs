//! Coherence (ARCHITECTURE.md, *Coherence*): a value read before an invalidation, a
//! write-through or a logout completed — on any instance — never lands in a cache after it,
//! and is never served after it beyond the documented bound (none on the calling instance,
//! the bus delay elsewhere).
//!
//! 1. Deterministic interleavings. [`HeldRepository`] answers `find_by_id` of one armed id
//!    only when the test lets it: the read is done, the answer is held. Each protocol step
//!    (`invalidate_user`, `cache_user`, `logout`, `logout_all`) runs while a fill is held,
//!    on Redis with several instances and in memory mode; no sleep orders anything.
//! 2. The calling instance's own reads racing its L2 write ([`HeldCache`] holds one L2 call).
//! 3. A randomized three-instance checker on one Redis ([`randomized_three_instance_checker`]).
// Test helpers outside `#[test]` functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth_support;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_support::{
    PROPAGATION, ROLES, SECRET, SIGNING_KEY, another_bearer, bearer, patient_breaker,
};
use authcache::{
    AuthError, AuthService, AuthServiceBuilder, Cache, CacheConfig, JwtVerifier,
    MemoryUserRepository, Principal, TokenIssuer, Ttls, User, UserRepository,
};
use authcache_core::codec::is_tombstone;
use authcache_core::{EnvelopeCodec, Key, KeyKind, Keyspace, SigningKey};
use authcache_memory::MemoryCache;
use authcache_tests::hooked_repository::{AfterRead, HookedRepository};
use authcache_tests::process::eventually;
use authcache_tests::redis_server::RedisServer;
use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

const PREFIX: &str = "itest";

// ---------------------------------------------------------------------------------------
// Holds: a call that stops at a named point until the test releases it
// ---------------------------------------------------------------------------------------

/// Where a call can be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Point {
    /// After the repository read `find_by_id` of the id: the record is read, not returned.
    RepositoryRead,
    /// After the L2 read of the key: the bytes are read, not returned.
    L2Get,
    /// Before the L2 write of the key: nothing written yet.
    L2Set,
}

#[derive(Debug)]
struct Armed {
    reached: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// Armed holds, each used by the first call that passes its point.
#[derive(Debug, Default)]
struct Holds {
    armed: Mutex<HashMap<(Point, String), Armed>>,
}

impl Holds {
    /// The next call passing `point` for `id` stops there until the gate is released.
    fn arm(&self, point: Point, id: &str) -> Gate {
        let (reached, reached_rx) = oneshot::channel();
        let (release_tx, release) = oneshot::channel();
        let armed = Armed { reached, release };
        self.armed
            .lock()
            .unwrap()
            .insert((point, id.to_owned()), armed);
        Gate {
            reached: reached_rx,
            release: release_tx,
        }
    }

    async fn pass(&self, point: Point, id: &str) {
        let armed = self.armed.lock().unwrap().remove(&(point, id.to_owned()));
        if let Some(armed) = armed {
            let _ = armed.reached.send(());
            // A dropped gate releases the call too.
            let _ = armed.release.await;
        }
    }
}

/// The test's end of one hold.
struct Gate {
    reached: oneshot::Receiver<()>,
    release: oneshot::Sender<()>,
}

impl Gate {
    /// Waits (boundedly) until the held call stands at its point.
    async fn reached(&mut self) {
        tokio::time::timeout(PROPAGATION, &mut self.reached)
            .await
            .expect("the held call never reached its hold")
            .expect("the hold was dropped unused");
    }

    fn release(self) {
        let _ = self.release.send(());
    }
}

/// The shared fixture (ada is an admin, bob a viewer, …) behind a [`HookedRepository`]
/// whose `find_by_id` of an armed id reads the record, reports [`Point::RepositoryRead`],
/// and returns it only when released.
struct HeldRepository {
    holds: Arc<Holds>,
    shared: Arc<dyn UserRepository>,
}

impl HeldRepository {
    async fn seeded() -> Self {
        let holds = Arc::new(Holds::default());
        let hook = Arc::clone(&holds);
        let after_read: AfterRead = Arc::new(move |id| {
            let (holds, id) = (Arc::clone(&hook), id.to_owned());
            Box::pin(async move { holds.pass(Point::RepositoryRead, &id).await })
        });
        let inner = auth_support::memory_repository().await;
        Self {
            holds,
            shared: Arc::new(HookedRepository::new(inner, after_read)),
        }
    }
}

type CacheFuture<'a, T> = Pin<Box<dyn Future<Output = authcache_core::Result<T>> + Send + 'a>>;

/// An in-process L2 whose calls on an armed key can be held: `get` after reading
/// ([`Point::L2Get`]), `set` before writing ([`Point::L2Set`]). Hand-written like
/// [`HeldRepository`].
#[derive(Debug, Default)]
struct HeldCache {
    inner: MemoryCache,
    holds: Holds,
}

impl Cache for HeldCache {
    fn get<'s, 'k, 'f>(&'s self, key: &'k Key) -> CacheFuture<'f, Option<Bytes>>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        Box::pin(async move {
            let found = self.inner.get(key).await;
            self.holds.pass(Point::L2Get, key.as_str()).await;
            found
        })
    }

    fn set<'s, 'k, 'f>(&'s self, key: &'k Key, value: Bytes, ttl: Duration) -> CacheFuture<'f, ()>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        Box::pin(async move {
            self.holds.pass(Point::L2Set, key.as_str()).await;
            self.inner.set(key, value, ttl).await
        })
    }

    fn delete<'s, 'k, 'f>(&'s self, key: &'k Key) -> CacheFuture<'f, bool>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.inner.delete(key)
    }

    fn set_if_unchanged<'s, 'k, 'f>(
        &'s self,
        key: &'k Key,
        expected: Option<Bytes>,
        value: Bytes,
        ttl: Duration,
    ) -> CacheFuture<'f, bool>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.inner.set_if_unchanged(key, expected, value, ttl)
    }
}

// ---------------------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------------------

/// The fixture's service settings (secret, signing key, prefix), on any cache. Redis calls
/// may take far longer than the default 100 ms on a loaded 2-core runner; a timeout would
/// change the path under test (a failed L2 read fills L1 only), hence the patient breaker.
fn builder(repository: &Arc<dyn UserRepository>) -> AuthServiceBuilder {
    AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .shared_repository(Arc::clone(repository))
        .signing_key(SIGNING_KEY)
        .prefix(PREFIX)
        .breaker(patient_breaker())
}

/// A service on `cache`, returned once its bus (if any) listens: an invalidation published
/// before would never reach it.
async fn instance(cache: &CacheConfig, repository: &Arc<dyn UserRepository>) -> AuthService {
    let auth = builder(repository)
        .cache(cache.clone())
        .build()
        .await
        .unwrap();
    auth_support::wait_subscribed(&auth).await;
    auth
}

/// ada, demoted from admin to viewer.
fn demoted() -> User {
    User::new("ada", "ada@example.com", "Ada").with_roles(["viewer"])
}

fn is_admin(answer: &Result<Principal, AuthError>) -> bool {
    answer
        .as_ref()
        .is_ok_and(|who| who.roles[..] == ["admin"] && who.has_permission("users:write"))
}

fn is_demoted(answer: &Result<Principal, AuthError>) -> bool {
    answer.as_ref().is_ok_and(|who| {
        who.roles[..] == ["viewer"]
            && who.has_permission("users:read")
            && !who.has_permission("users:write")
    })
}

fn user_key(id: &str) -> Key {
    Keyspace::new(PREFIX)
        .unwrap()
        .key(KeyKind::User, id)
        .unwrap()
}

/// What a user's L2 key holds, read behind the services' back.
#[derive(Debug, PartialEq)]
enum Stored {
    Absent,
    Tombstone,
    Record(User),
    Unreadable,
}

fn stored(bytes: Option<&[u8]>, key: &Key) -> Stored {
    let codec = EnvelopeCodec::new().with_signing_key(SigningKey::new(SIGNING_KEY).unwrap());
    match bytes {
        None => Stored::Absent,
        Some(bytes) if is_tombstone(bytes) => Stored::Tombstone,
        Some(bytes) => match codec.decode::<(u64, Option<User>)>(key, bytes) {
            Ok((_, Some(user))) => Stored::Record(user),
            _ => Stored::Unreadable,
        },
    }
}

fn stored_in_redis(redis: &RedisServer, id: &str) -> Stored {
    let key = user_key(id);
    let bytes: Option<Vec<u8>> = redis::cmd("GET")
        .arg(key.as_str())
        .query(&mut redis.connection())
        .unwrap();
    stored(bytes.as_deref(), &key)
}

/// Drops a user's L2 entry without telling anyone, as Redis eviction would.
fn evict_in_redis(redis: &RedisServer, id: &str) {
    let _: u64 = redis::cmd("DEL")
        .arg(user_key(id).as_str())
        .query(&mut redis.connection())
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// 1. Deterministic interleavings: a change while a fill is held after its read
// ---------------------------------------------------------------------------------------

/// What happens to ada while a request's repository read of her admin record is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Demoted in the repository, then `invalidate_user`.
    Invalidate,
    /// Demoted in the repository, then `cache_user` with the demoted record.
    WriteThrough,
    /// The held request's token is logged out.
    Logout,
    /// `logout_all` of ada.
    LogoutAll,
}

impl Change {
    async fn apply(self, on: &AuthService, repository: &HeldRepository, token: &str) {
        match self {
            Self::Invalidate => {
                repository.shared.upsert(&demoted()).await.unwrap();
                on.invalidate_user("ada").await.unwrap();
            }
            Self::WriteThrough => {
                repository.shared.upsert(&demoted()).await.unwrap();
                on.cache_user(&demoted()).await.unwrap();
            }
            Self::Logout => {
                on.logout(token).await.unwrap();
            }
            Self::LogoutAll => {
                on.logout_all("ada").await.unwrap();
            }
        }
    }

    /// The tokens this change logs out (both were issued before it).
    fn refused<'t>(self, token: &'t str, other: &'t str) -> Vec<&'t str> {
        match self {
            Self::Invalidate | Self::WriteThrough => Vec::new(),
            Self::Logout => vec![token],
            Self::LogoutAll => vec![token, other],
        }
    }
}

/// Starts `auth.authenticate(token)` and returns once its repository read of ada is done
/// and held.
async fn held_authentication(
    auth: &AuthService,
    repository: &HeldRepository,
    token: &str,
) -> (Gate, tokio::task::JoinHandle<Result<Principal, AuthError>>) {
    let mut gate = repository.holds.arm(Point::RepositoryRead, "ada");
    let task = tokio::spawn({
        let (auth, token) = (auth.clone(), token.to_owned());
        async move { auth.authenticate(&token).await }
    });
    gate.reached().await;
    (gate, task)
}

/// On one Redis: A's cold authentication of ada is held after reading her admin record;
/// B makes the change; A is released. W held ada's admin record in its L1 all along (its
/// L2 copy was evicted, which is what makes A's read cold), so only the bus can correct
/// it. Afterwards: B and a freshly built C answer the change at once; A too — its fill was
/// refused, so nothing stale is left anywhere on A; W within the bus bound; and Redis holds
/// a tombstone or the new record, never the admin one.
async fn change_during_a_held_fill_on_redis(change: Change) {
    let redis = RedisServer::start();
    let repository = HeldRepository::seeded().await;
    let shared = Arc::clone(&repository.shared);
    let cache = CacheConfig::redis(redis.url());
    let (a, b, w) = (
        instance(&cache, &shared).await,
        instance(&cache, &shared).await,
        instance(&cache, &shared).await,
    );
    let (token, other) = (bearer("ada"), another_bearer("ada"));
    assert!(is_admin(&w.authenticate(&token).await));
    evict_in_redis(&redis, "ada");

    let (gate, held) = held_authentication(&a, &repository, &token).await;
    change.apply(&b, &repository, &token).await;
    gate.release();
    let answer = held.await.unwrap();
    assert!(
        is_admin(&answer),
        "the held request is answered with what it read (once): {answer:?}"
    );
    assert_eq!(a.stats().users.stale_fills, 1, "A's fill was dropped");

    // Before anything reads ada again: what the held fill left in the shared tier.
    let in_l2 = stored_in_redis(&redis, "ada");
    let c = instance(&cache, &shared).await;
    match change {
        Change::Invalidate | Change::WriteThrough => {
            let fresh = c.authenticate(&token).await;
            assert!(is_demoted(&fresh), "fresh C: {fresh:?}");
            let users = c.stats().users;
            if change == Change::Invalidate {
                assert_eq!(in_l2, Stored::Tombstone);
                assert_eq!((users.l2_hits, users.loads), (0, 1), "C loaded, not hit");
            } else {
                assert_eq!(in_l2, Stored::Record(demoted()));
                assert_eq!((users.l2_hits, users.loads), (1, 0), "C hit the new record");
            }
            for (name, auth) in [("B (the caller)", &b), ("A (held)", &a)] {
                let now = auth.authenticate(&token).await;
                assert!(is_demoted(&now), "{name} at once: {now:?}");
            }
            eventually(PROPAGATION, "W to drop its admin copy", || async {
                is_demoted(&w.authenticate(&token).await)
            })
            .await;
        }
        Change::Logout | Change::LogoutAll => {
            assert_eq!(in_l2, Stored::Tombstone, "a logout invalidates the user");
            for refused in change.refused(&token, &other) {
                for (name, auth) in [("B (the caller)", &b), ("fresh C", &c)] {
                    let now = auth.authenticate(refused).await;
                    assert_eq!(now.err(), Some(AuthError::Revoked), "{name} at once");
                }
                for (name, auth) in [("A (held)", &a), ("W (warm)", &w)] {
                    eventually(PROPAGATION, &format!("{name} to refuse"), || async {
                        auth.authenticate(refused).await.err() == Some(AuthError::Revoked)
                    })
                    .await;
                }
            }
            if change == Change::Logout {
                for auth in [&a, &b, &c, &w] {
                    assert!(is_admin(&auth.authenticate(&other).await), "other token");
                }
            }
        }
    }
}

/// Memory mode: one instance, no bus; the change is made on the instance whose fill is
/// held, and is in force at once.
async fn change_during_a_held_fill_in_memory(change: Change) {
    let repository = HeldRepository::seeded().await;
    let shared = Arc::clone(&repository.shared);
    let auth = instance(&CacheConfig::memory(), &shared).await;
    let (token, other) = (bearer("ada"), another_bearer("ada"));

    let (gate, held) = held_authentication(&auth, &repository, &token).await;
    change.apply(&auth, &repository, &token).await;
    gate.release();
    let answer = held.await.unwrap();
    assert!(is_admin(&answer), "served once: {answer:?}");
    assert_eq!(
        auth.stats().users.stale_fills,
        1,
        "the held fill was dropped"
    );

    match change {
        Change::Invalidate | Change::WriteThrough => {
            // Twice: the second answer comes from what the first one cached.
            for _ in 0..2 {
                let now = auth.authenticate(&token).await;
                assert!(is_demoted(&now), "{now:?}");
            }
        }
        Change::Logout | Change::LogoutAll => {
            for refused in change.refused(&token, &other) {
                let now = auth.authenticate(refused).await;
                assert_eq!(now.err(), Some(AuthError::Revoked));
            }
            if change == Change::Logout {
                assert!(is_admin(&auth.authenticate(&other).await));
            }
        }
    }
}

#[tokio::test]
async fn invalidate_user_during_a_held_fill_on_redis() {
    change_during_a_held_fill_on_redis(Change::Invalidate).await;
}

#[tokio::test]
async fn cache_user_during_a_held_fill_on_redis() {
    change_during_a_held_fill_on_redis(Change::WriteThrough).await;
}

#[tokio::test]
async fn logout_during_a_held_fill_on_redis() {
    change_during_a_held_fill_on_redis(Change::Logout).await;
}

#[tokio::test]
async fn logout_all_during_a_held_fill_on_redis() {
    change_during_a_held_fill_on_redis(Change::LogoutAll).await;
}

#[tokio::test]
async fn invalidate_user_during_a_held_fill_in_memory() {
    change_during_a_held_fill_in_memory(Change::Invalidate).await;
}

#[tokio::test]
async fn cache_user_during_a_held_fill_in_memory() {
    change_during_a_held_fill_in_memory(Change::WriteThrough).await;
}

#[tokio::test]
async fn logout_during_a_held_fill_in_memory() {
    change_during_a_held_fill_in_memory(Change::Logout).await;
}

#[tokio::test]
async fn logout_all_during_a_held_fill_in_memory() {
    change_during_a_held_fill_in_memory(Change::LogoutAll).await;
}

// ---------------------------------------------------------------------------------------
// 2. The calling instance: a read racing the change's own L2 write
// ---------------------------------------------------------------------------------------

/// One instance over a holdable in-process L2 (no bus, as in memory mode), with ada's
/// admin record cached in both tiers, and demoted in the repository.
async fn warm_over_held_l2() -> (AuthService, Arc<HeldCache>, String) {
    let repository = auth_support::memory_repository().await;
    let l2 = Arc::new(HeldCache::default());
    let auth = builder(&repository)
        .l2(Arc::clone(&l2) as Arc<dyn Cache>)
        .build()
        .await
        .unwrap();
    let token = bearer("ada");
    assert!(is_admin(&auth.authenticate(&token).await));
    repository.upsert(&demoted()).await.unwrap();
    (auth, l2, token)
}

async fn stored_in(l2: &HeldCache, id: &str) -> Stored {
    let key = user_key(id);
    stored(l2.inner.get(&key).await.unwrap().as_deref(), &key)
}

/// `invalidate_user` is held just before its L2 write (the tombstone); meanwhile a request
/// on the same instance reads ada. That request may be answered with the old record (it
/// began before the invalidation completed), but once `invalidate_user` has returned, the
/// next read on this instance must see the change (ARCHITECTURE.md, *Coherence*, *Bound*:
/// none on the calling instance, and zero in memory mode).
#[tokio::test]
async fn invalidate_user_is_not_undone_by_a_read_racing_its_l2_write() {
    let (auth, l2, token) = warm_over_held_l2().await;
    let mut gate = l2.holds.arm(Point::L2Set, user_key("ada").as_str());
    let invalidation = tokio::spawn({
        let auth = auth.clone();
        async move { auth.invalidate_user("ada").await }
    });
    gate.reached().await;
    let racing = auth.authenticate(&token).await;
    assert!(racing.is_ok(), "{racing:?}");
    gate.release();
    invalidation.await.unwrap().unwrap();
    assert_eq!(stored_in(&l2, "ada").await, Stored::Tombstone);

    let after = auth.authenticate(&token).await;
    assert!(
        is_demoted(&after),
        "the first read after invalidate_user returned is served the admin record it \
         invalidated: the racing read found L1 already dropped and L2 not yet tombstoned, \
         and re-filled L1 with the old L2 entry under the generation the invalidation had \
         already bumped. Stale until the L1 TTL (≤ 30 s) without a bus; got {after:?}"
    );
}

/// `cache_user` is held just before its L2 write; a request on the same instance reads the
/// old L2 entry and is held before returning it; the write-through completes, then the
/// request. The next read must see the written record.
#[tokio::test]
async fn cache_user_is_not_undone_by_a_read_racing_its_l2_write() {
    let (auth, l2, token) = warm_over_held_l2().await;
    let key = user_key("ada");
    let mut write_gate = l2.holds.arm(Point::L2Set, key.as_str());
    let write = tokio::spawn({
        let auth = auth.clone();
        async move { auth.cache_user(&demoted()).await }
    });
    write_gate.reached().await;
    let mut read_gate = l2.holds.arm(Point::L2Get, key.as_str());
    let read = tokio::spawn({
        let (auth, token) = (auth.clone(), token.clone());
        async move { auth.authenticate(&token).await }
    });
    read_gate.reached().await;
    write_gate.release();
    write.await.unwrap().unwrap();
    read_gate.release();
    let racing = read.await.unwrap();
    assert!(racing.is_ok(), "{racing:?}");
    assert_eq!(stored_in(&l2, "ada").await, Stored::Record(demoted()));

    let after = auth.authenticate(&token).await;
    assert!(
        is_demoted(&after),
        "the first read after cache_user returned is served the record it replaced: a read \
         that began after the write dropped L1 but read L2 before the write landed put the \
         old entry into L1 after the write-through's own L1 insert, under the same \
         generation. Stale until the L1 TTL (≤ 30 s) without a bus; got {after:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 3. The randomized checker
// ---------------------------------------------------------------------------------------

const CHECKER_USERS: usize = 20;
const TOKENS_PER_USER: usize = 3;
const INSTANCES: usize = 3;
const WORKERS: usize = 6;
const MAX_OPERATIONS: u64 = 2_000;
const MAX_RUN: Duration = Duration::from_secs(5);
/// Operations between two delivery barriers.
const ROUND_OPERATIONS: i64 = 50;
/// The checker's user entries and L1 cap: an hour, without jitter, so an L1 entry lives
/// 54 min (the L1 ends where the 10 % refresh-ahead window begins). The residency argument
/// of [`Checker::deliver_everything`] needs L1 entries that only a bus message removes;
/// with the default 30 s cap a slow machine could outlast them.
const CHECKER_TTL: Duration = Duration::from_secs(3600);
/// A run this long proves nothing (L1 entries might have expired) and fails instead: far
/// beyond any run, which stops starting rounds after [`MAX_RUN`].
const RESIDENCY_LIMIT: Duration = Duration::from_secs(1800);

/// The checker's TTLs (see [`CHECKER_TTL`]).
fn checker_ttls() -> Ttls {
    Ttls {
        user: CHECKER_TTL,
        l1_cap: CHECKER_TTL,
        jitter: 0.0,
        ..Ttls::default()
    }
}

/// SplitMix64: seedable and enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The checker's seed when `COHERENCE_SEED` is not set: every run makes the same choices,
/// so whether it passes never depends on the clock. Set the variable to explore others.
const DEFAULT_SEED: u64 = 0x636f_6865_7265_6e74;

/// `COHERENCE_SEED`, else [`DEFAULT_SEED`].
fn checker_seed() -> u64 {
    std::env::var("COHERENCE_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

fn checker_id(user: usize) -> String {
    format!("c-{user}")
}

fn marker_id(instance: usize) -> String {
    format!("marker-{instance}")
}

/// A record whose version is its name (`v17`).
fn versioned(id: &str, version: u64, role: &str) -> User {
    User::new(id, format!("{id}@example.com"), format!("v{version}")).with_roles([role])
}

fn version_of(user: &User) -> Option<u64> {
    user.name.strip_prefix('v')?.parse().ok()
}

fn permissions_of(roles: &[String]) -> Vec<String> {
    let mut permissions: Vec<String> = ROLES
        .iter()
        .filter(|(role, _)| roles.iter().any(|r| r == role))
        .flat_map(|(_, permissions)| permissions.iter().map(|p| (*p).to_owned()))
        .collect();
    permissions.sort_unstable();
    permissions.dedup();
    permissions
}

async fn marker_version(auth: &AuthService, id: &str) -> Option<u64> {
    auth.user(id).await.ok().as_deref().and_then(version_of)
}

struct Token {
    user: usize,
    bearer: String,
    logout_started: AtomicBool,
}

/// Where and when a write or logout completed: the clock after its call returned, and
/// the round it ran in.
#[derive(Debug, Clone, Copy)]
struct Done {
    instance: usize,
    at: u64,
    round: u64,
}

#[derive(Debug)]
struct Write {
    user: usize,
    version: u64,
    done: Done,
}

#[derive(Debug)]
struct Logout {
    token: usize,
    done: Done,
}

#[derive(Debug)]
enum Seen {
    Version(u64),
    Revoked,
    Wrong(String),
}

#[derive(Debug)]
struct Read {
    token: usize,
    user: usize,
    instance: usize,
    started: u64,
    round: u64,
    seen: Seen,
}

impl Read {
    /// Whether `done` must be visible to this read: made on its instance and returned
    /// before it started (bound zero), or completed in an earlier round (its bus message
    /// was handled everywhere before this round began).
    fn bound_by(&self, done: &Done) -> bool {
        self.bound_at_zero_by(done) || done.round < self.round
    }

    /// Whether `done` binds this read through the calling instance's zero bound alone.
    fn bound_at_zero_by(&self, done: &Done) -> bool {
        done.instance == self.instance && done.at < self.started
    }
}

#[derive(Default)]
struct Log {
    writes: Vec<Write>,
    logouts: Vec<Logout>,
    reads: Vec<Read>,
    problems: Vec<String>,
}

struct Verdict {
    reads: usize,
    checked: usize,
    /// Checked reads bound by a change made on their own instance in their own round.
    checked_at_zero: usize,
    violations: Vec<String>,
}

impl Log {
    fn verdict(&self) -> Verdict {
        let mut violations = self.problems.clone();
        let (mut checked, mut checked_at_zero) = (0, 0);
        for read in &self.reads {
            let at_zero = |done: &Done| done.round == read.round && read.bound_at_zero_by(done);
            let local = self
                .writes
                .iter()
                .any(|w| w.user == read.user && at_zero(&w.done))
                || self
                    .logouts
                    .iter()
                    .any(|l| l.token == read.token && at_zero(&l.done));
            checked_at_zero += usize::from(local);
            let logout = self
                .logouts
                .iter()
                .find(|logout| logout.token == read.token && read.bound_by(&logout.done));
            let required = self
                .writes
                .iter()
                .filter(|write| write.user == read.user && read.bound_by(&write.done))
                .map(|write| write.version)
                .max();
            checked += usize::from(logout.is_some() || required.is_some());
            match (&read.seen, logout, required) {
                (Seen::Version(_), Some(logout), _) => {
                    violations.push(format!(
                        "{read:?} accepted a token logged out by {logout:?}"
                    ));
                }
                (Seen::Version(seen), None, Some(required)) if *seen < required => {
                    violations.push(format!("{read:?} is older than v{required}"));
                }
                (Seen::Wrong(what), _, _) => violations.push(format!("{read:?}: {what}")),
                _ => {}
            }
        }
        Verdict {
            reads: self.reads.len(),
            checked,
            checked_at_zero,
            violations,
        }
    }
}

/// The roles and permissions served must be those of the record served.
fn judge(who: &Principal, user: usize) -> Seen {
    let record = &*who.user;
    if record.id != checker_id(user) {
        return Seen::Wrong(format!("answered with user {}", record.id));
    }
    if who.roles[..] != record.roles[..] || who.permissions[..] != permissions_of(&record.roles)[..]
    {
        return Seen::Wrong(format!(
            "roles {:?} and permissions {:?} do not derive from {record:?}",
            who.roles, who.permissions
        ));
    }
    version_of(record).map_or_else(
        || Seen::Wrong(format!("unversioned record {record:?}")),
        Seen::Version,
    )
}

struct Checker {
    instances: Vec<AuthService>,
    repository: Arc<dyn UserRepository>,
    issuer: TokenIssuer,
    started: Instant,
    /// The logical clock.
    clock: AtomicU64,
    round: AtomicU64,
    /// Operations left in this round.
    budget: AtomicI64,
    operations: AtomicU64,
    stop: AtomicBool,
    tokens: Mutex<Vec<Arc<Token>>>,
    /// Each user's live tokens (indexes into `tokens`).
    live: Mutex<Vec<[usize; TOKENS_PER_USER]>>,
    logged_out: Mutex<Vec<usize>>,
    /// Each user's last version; held across a role change.
    versions: Vec<tokio::sync::Mutex<u64>>,
    /// Each instance's marker version (see [`Checker::deliver_everything`]).
    markers: Vec<AtomicU64>,
    lifetimes: AtomicU64,
    log: Mutex<Log>,
}

impl Checker {
    async fn start(redis: &RedisServer) -> Arc<Self> {
        let mut seeded = MemoryUserRepository::new();
        for (role, permissions) in ROLES {
            seeded = seeded.with_role(role, permissions.iter().copied()).unwrap();
        }
        let repository: Arc<dyn UserRepository> = Arc::new(seeded);
        for user in 0..CHECKER_USERS {
            let role = ["admin", "viewer"][user % 2];
            let record = versioned(&checker_id(user), 0, role);
            repository.upsert(&record).await.unwrap();
        }
        for k in 0..INSTANCES {
            let marker = versioned(&marker_id(k), 0, "viewer");
            repository.upsert(&marker).await.unwrap();
        }
        let cache = CacheConfig::redis(redis.url());
        let mut instances = Vec::with_capacity(INSTANCES);
        for _ in 0..INSTANCES {
            let auth = builder(&repository)
                .cache(cache.clone())
                .ttls(checker_ttls())
                .build()
                .await
                .unwrap();
            auth_support::wait_subscribed(&auth).await;
            instances.push(auth);
        }
        let checker = Self {
            instances,
            repository,
            issuer: TokenIssuer::hs256(SECRET),
            started: Instant::now(),
            clock: AtomicU64::new(0),
            round: AtomicU64::new(0),
            budget: AtomicI64::new(ROUND_OPERATIONS),
            operations: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            tokens: Mutex::default(),
            live: Mutex::default(),
            logged_out: Mutex::default(),
            versions: (0..CHECKER_USERS).map(|_| Default::default()).collect(),
            markers: (0..INSTANCES).map(|_| AtomicU64::new(0)).collect(),
            lifetimes: AtomicU64::new(0),
            log: Mutex::default(),
        };
        for user in 0..CHECKER_USERS {
            let tokens = std::array::from_fn(|_| checker.issue(user));
            checker.live.lock().unwrap().push(tokens);
        }
        Arc::new(checker)
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }

    /// A new token of `user`, distinct from all others (its own lifetime).
    fn issue(&self, user: usize) -> usize {
        let lifetime = 600 + self.lifetimes.fetch_add(1, Ordering::SeqCst);
        let token = self
            .issuer
            .issue(&checker_id(user), Duration::from_secs(lifetime))
            .unwrap();
        let mut tokens = self.tokens.lock().unwrap();
        tokens.push(Arc::new(Token {
            user,
            bearer: format!("Bearer {token}"),
            logout_started: AtomicBool::new(false),
        }));
        tokens.len() - 1
    }

    fn token(&self, token: usize) -> Arc<Token> {
        Arc::clone(&self.tokens.lock().unwrap()[token])
    }

    async fn operate(&self, rng: &mut Rng) {
        match rng.below(100) {
            0..70 => {
                let (instance, token) = (rng.below(INSTANCES), self.pick_token(rng));
                self.read(instance, token).await;
            }
            70..90 => self.change_role(rng).await,
            _ => self.logout(rng).await,
        }
        self.operations.fetch_add(1, Ordering::SeqCst);
    }

    /// Mostly a live token; sometimes one already logged out, to be refused.
    fn pick_token(&self, rng: &mut Rng) -> usize {
        if rng.below(100) < 15 {
            let logged_out = self.logged_out.lock().unwrap();
            if !logged_out.is_empty() {
                return logged_out[rng.below(logged_out.len())];
            }
        }
        self.live.lock().unwrap()[rng.below(CHECKER_USERS)][rng.below(TOKENS_PER_USER)]
    }

    async fn read(&self, instance: usize, token_index: usize) {
        let token = self.token(token_index);
        let round = self.round.load(Ordering::SeqCst);
        let started = self.tick();
        let seen = match self.instances[instance].authenticate(&token.bearer).await {
            Ok(who) => judge(&who, token.user),
            Err(AuthError::Revoked) if token.logout_started.load(Ordering::SeqCst) => Seen::Revoked,
            Err(error) => Seen::Wrong(format!("authentication failed: {error}")),
        };
        self.log.lock().unwrap().reads.push(Read {
            token: token_index,
            user: token.user,
            instance,
            started,
            round,
            seen,
        });
    }

    /// The repository first, then `invalidate_user` or `cache_user` on a random instance.
    async fn change_role(&self, rng: &mut Rng) {
        let (user, instance) = (rng.below(CHECKER_USERS), rng.below(INSTANCES));
        let role = ["admin", "viewer"][rng.below(2)];
        let write_through = rng.below(2) == 0;
        // One change of a user at a time, as an application serialises its own writes:
        // two concurrent write-throughs of one user land in either order, cache or not.
        let mut last = self.versions[user].lock().await;
        let version = *last + 1;
        let record = versioned(&checker_id(user), version, role);
        self.repository.upsert(&record).await.unwrap();
        *last = version;
        let round = self.round.load(Ordering::SeqCst);
        let auth = &self.instances[instance];
        let written = if write_through {
            auth.cache_user(&record).await
        } else {
            auth.invalidate_user(&record.id).await
        };
        let at = self.tick();
        drop(last);
        let mut log = self.log.lock().unwrap();
        match written {
            Ok(()) => log.writes.push(Write {
                user,
                version,
                done: Done {
                    instance,
                    at,
                    round,
                },
            }),
            Err(error) => log
                .problems
                .push(format!("change of {record:?} failed: {error}")),
        }
    }

    /// Logs a live token out; its slot gets a fresh token, and it stays pickable.
    async fn logout(&self, rng: &mut Rng) {
        let (user, slot) = (rng.below(CHECKER_USERS), rng.below(TOKENS_PER_USER));
        let instance = rng.below(INSTANCES);
        let token_index = self.live.lock().unwrap()[user][slot];
        let token = self.token(token_index);
        token.logout_started.store(true, Ordering::SeqCst);
        let round = self.round.load(Ordering::SeqCst);
        let result = self.instances[instance].logout(&token.bearer).await;
        let at = self.tick();
        match result {
            // Shared: every instance must refuse it from now on. (Pending would mean Redis
            // refused the write, which nothing in this run makes it do: a problem.)
            Ok(revocation) if revocation.is_shared() => {
                self.log.lock().unwrap().logouts.push(Logout {
                    token: token_index,
                    done: Done {
                        instance,
                        at,
                        round,
                    },
                })
            }
            other => {
                let problem = format!("logout of token {token_index} failed: {other:?}");
                self.log.lock().unwrap().problems.push(problem);
            }
        }
        let fresh = self.issue(user);
        let mut live = self.live.lock().unwrap();
        if live[user][slot] == token_index {
            live[user][slot] = fresh;
        }
        drop(live);
        self.logged_out.lock().unwrap().push(token_index);
    }

    /// Run by one worker while all others wait: proves delivery, then opens the next round
    /// (or stops).
    async fn end_round(&self) {
        self.deliver_everything().await;
        self.round.fetch_add(1, Ordering::SeqCst);
        let done = self.operations.load(Ordering::SeqCst) >= MAX_OPERATIONS
            || self.started.elapsed() >= MAX_RUN;
        if done {
            self.stop.store(true, Ordering::SeqCst);
        } else {
            self.budget.store(ROUND_OPERATIONS, Ordering::SeqCst);
        }
    }

    /// Returns once every instance has handled every bus message published so far (nothing
    /// else runs meanwhile). Instance k keeps its own marker user in its L1; another
    /// instance invalidates it after a repository update; k answers the new version only
    /// once it has handled that message — and so, Redis delivering a channel's messages to
    /// each subscriber in publish order, every message before it.
    async fn deliver_everything(&self) {
        assert!(
            self.started.elapsed() < RESIDENCY_LIMIT,
            "the run took longer than the marker argument allows (L1 entries expire)"
        );
        for k in 0..INSTANCES {
            self.make_marker_resident(k).await;
        }
        for k in 0..INSTANCES {
            let (id, version) = (marker_id(k), self.markers[k].load(Ordering::SeqCst) + 1);
            let marker = versioned(&id, version, "viewer");
            self.repository.upsert(&marker).await.unwrap();
            let announcer = &self.instances[(k + 1) % INSTANCES];
            announcer.invalidate_user(&id).await.unwrap();
            self.markers[k].store(version, Ordering::SeqCst);
        }
        for k in 0..INSTANCES {
            let (auth, id) = (&self.instances[k], marker_id(k));
            let version = self.markers[k].load(Ordering::SeqCst);
            let what = format!("instance {k} to hear of marker v{version}");
            eventually(PROPAGATION, &what, || async {
                marker_version(auth, &id).await == Some(version)
            })
            .await;
        }
    }

    /// Reads k's marker until one answer is an L1 hit of the current version (the L1-hit
    /// counter moves by exactly one while nothing else reads): only a bus message can then
    /// make k answer a newer one.
    async fn make_marker_resident(&self, k: usize) {
        let (auth, id) = (&self.instances[k], marker_id(k));
        let version = self.markers[k].load(Ordering::SeqCst);
        for _ in 0..100 {
            let before = auth.stats().users.l1_hits;
            let seen = marker_version(auth, &id).await;
            if seen == Some(version) && auth.stats().users.l1_hits == before + 1 {
                return;
            }
        }
        panic!("instance {k} never kept marker v{version} in its L1");
    }
}

async fn work(checker: Arc<Checker>, barrier: Arc<tokio::sync::Barrier>, mut rng: Rng) {
    loop {
        while checker.budget.fetch_sub(1, Ordering::SeqCst) > 0 {
            checker.operate(&mut rng).await;
        }
        if barrier.wait().await.is_leader() {
            checker.end_round().await;
        }
        barrier.wait().await;
        if checker.stop.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// A randomized coherence checker. Three instances share one Redis; six workers run, for
/// at most 2,000 operations or 5 s, random authentications (20 users, three live tokens
/// each, and tokens already logged out), role changes (the repository first, then
/// `invalidate_user` or `cache_user` on a random instance) and logouts on random
/// instances. A record's version is its name (`v17`). One logical clock (an `AtomicU64`)
/// stamps each read when it starts and each write or logout once its call has returned.
/// The choices come from [`DEFAULT_SEED`] (or `COHERENCE_SEED`), the same on every run;
/// the interleaving is the scheduler's, and nothing checked depends on it.
///
/// What is checked is chosen so that a correct implementation can never fail it, however
/// the threads and the bus are scheduled:
///
/// - **The calling instance, bound zero.** A read that starts after a write (or logout)
///   made on the same instance returned sees that version or a newer one (is refused).
///   Nothing asynchronous stands in between: before the call returns, the protocol has
///   dropped the local copy and put the tombstone or the value into L2 (the mark, for a
///   logout, into the instance's own sticky table).
/// - **Other instances, only once delivery is proven.** The bus is asynchronous, and a lost
///   subscription is bounded only by the L1 cap (an hour here, [`CHECKER_TTL`]), so no
///   wall-clock bound is safe. "A probe there saw the new version" is not enough either: a
///   revocation lookup that read L2 before the logout may still record "not revoked" in that
///   instance's memo after the probe, legitimately, until the bus message drops it. So the
///   run goes in rounds of 50 operations; between rounds every worker stops and
///   [`Checker::deliver_everything`] proves that each instance has handled every message
///   published so far. Reads on other instances are checked against the writes and
///   logouts of earlier rounds; reads in the same round on another instance are not.
/// - Writes to one user are serialised, as an application's own are: two concurrent
///   write-throughs of one user land in either order whatever the cache does.
/// - Always: the roles and permissions served are those of the record served, a token is
///   refused only once its logout has started, and no call fails (nor any L2 call: a
///   timed-out L2 would take other paths, so the run must not have had any).
///
/// After the last round every instance reads every user once more: all must be current.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_three_instance_checker() {
    let seed = checker_seed();
    println!("coherence checker: seed {seed} (COHERENCE_SEED={seed} replays its choices)");
    let redis = RedisServer::start();
    let checker = Checker::start(&redis).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(WORKERS));
    let mut seeds = Rng(seed);
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let rng = Rng(seeds.next());
            tokio::spawn(work(Arc::clone(&checker), Arc::clone(&barrier), rng))
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    for instance in 0..INSTANCES {
        for user in 0..CHECKER_USERS {
            let token = checker.live.lock().unwrap()[user][0];
            checker.read(instance, token).await;
        }
    }

    let log = checker.log.lock().unwrap();
    let verdict = log.verdict();
    println!(
        "coherence checker: seed {seed}: {} operations ({} reads, {} role changes, {} logouts) \
         in {} rounds; {} reads checked ({} at bound zero on the calling instance); \
         {} violations",
        checker.operations.load(Ordering::SeqCst),
        verdict.reads,
        log.writes.len(),
        log.logouts.len(),
        checker.round.load(Ordering::SeqCst),
        verdict.checked,
        verdict.checked_at_zero,
        verdict.violations.len(),
    );
    for (k, auth) in checker.instances.iter().enumerate() {
        let stats = auth.stats();
        assert_eq!(
            (stats.l2_errors(), stats.unchecked),
            (0, 0),
            "instance {k} had L2 failures: this run checked other paths than coherence"
        );
    }
    assert!(
        verdict.violations.is_empty(),
        "seed {seed}: {} violations; the first ones:\n{}",
        verdict.violations.len(),
        verdict.violations[..verdict.violations.len().min(20)].join("\n")
    );
}
