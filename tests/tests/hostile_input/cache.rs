//! The cache half: bad bytes at the key of every kind, on a real Redis.
//!
//! A writer instance leaves a real entry of every kind the service keeps in Redis (user
//! records, an unknown user, per-role permissions, a revocation, a logout-all cutoff); the
//! [`Shelf`] keeps copies. Each case empties Redis, puts the real entries back, writes bad
//! bytes — random, or a real entry mutated, cut, extended, re-headed or copied from another
//! key — at one target key, and authenticates through a fresh instance (empty L1, empty
//! memos) on that Redis. Entries are written to last a day, so none expires and none is
//! refreshed ahead in the background during a run. What the documents promise:
//!
//! - a **value** entry (user, permissions) that does not decode and verify is a miss: the
//!   repository's truth is served, the entry counted in that tier's `decode_failures` and
//!   replaced by the fill (a tombstone-shaped entry is a miss too, by design not a failure);
//! - a **mark** (revocation, cutoff) is in force whatever its bytes: refused as `Revoked`,
//!   counted as unreadable, and left where it is — no reader deletes a mark;
//! - the kinds the service never keeps in Redis (roles, token validations) are never read:
//!   bytes there change nothing.

use std::cell::RefCell;
use std::sync::Arc;

use authcache::{AuthError, AuthService, CacheConfig, JwtVerifier, Stats, UserRepository};
use authcache_core::codec::is_tombstone;
use authcache_core::{Fingerprint, KeyKind, Keyspace};
use authcache_jwt::{DEFAULT_LEEWAY, revocation_id, unix_now};
use authcache_tests::redis_server::RedisServer;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

use crate::auth_support::{SECRET, SIGNING_KEY, another_bearer, bearer, memory_repository};
use crate::hostile_input::fixture::{Truth, lasting_ttls, truth};

const PREFIX: &str = "hostile";

/// Far above any Redis reply on a loaded machine: a slow reply must not become an L2
/// error, which would read as "not counted" rather than "counted".
const L2_TIMEOUT_MS: u64 = 10_000;

/// How long restored and bad entries live in Redis (each entry carries its own expiry
/// too): beyond any run.
const ENTRY_PX: u64 = 600_000;

/// First bytes of a tombstone (`codec::TOMBSTONE_HEADER`: the magic, then a version byte no
/// envelope uses); the oracle asks `is_tombstone` itself.
const TOMBSTONE_HEADER: &[u8] = b"AuCa\xff";

/// A key the service reads or writes, and the token whose authentication reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// ada's user record (admin).
    User,
    /// The negative entry of a verified but unknown subject.
    UnknownUser,
    /// The admin role's permissions.
    RolePermissions,
    /// A key of a kind no request reads (the watcher's checkpoint kind, under a user's id):
    /// roles come from the user record and are never kept in Redis.
    Unread,
    /// A token-validation key: validations are in-process only.
    Validation,
    /// The revocation mark of a logged-out token.
    Revocation,
    /// The revocation key of a token nobody logged out.
    LiveRevocation,
    /// A logout-all cutoff, and a token issued after it.
    Cutoff,
}

impl Target {
    pub(crate) const ALL: [Self; 8] = [
        Self::User,
        Self::UnknownUser,
        Self::RolePermissions,
        Self::Unread,
        Self::Validation,
        Self::Revocation,
        Self::LiveRevocation,
        Self::Cutoff,
    ];
}

/// The tiers that count entries they cannot read, in the order [`failures`] lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    Users,
    Permissions,
    Revocations,
    Cutoffs,
}

/// `decode_failures` of every tier, in [`Tier`] order.
fn failures(stats: &Stats) -> [u64; 4] {
    [
        stats.users.decode_failures,
        stats.permissions.decode_failures,
        stats.revocations.decode_failures,
        stats.cutoffs.decode_failures,
    ]
}

/// What the service makes of the bytes at a key.
#[derive(Debug, Clone, Copy)]
enum Reader {
    /// A cached value: unusable bytes are a counted miss.
    Value(Tier),
    /// A mark: any bytes are in force.
    Mark(Tier),
    /// Never read.
    Never,
}

/// One target, resolved against the writer's entries.
#[derive(Debug)]
struct Spot {
    key: String,
    bearer: String,
    /// The subject of `bearer`, and so the truth served when nothing is revoked.
    subject: &'static str,
    reader: Reader,
    /// The real entry at `key`, if the writer left one.
    original: Option<Vec<u8>>,
    /// The real entry mutations start from (`original`, else one of another key).
    base: Vec<u8>,
}

/// How one case spoils a target key.
#[derive(Debug, Clone)]
pub(crate) enum Corruption {
    Random(Vec<u8>),
    /// One byte of the real entry xor a non-zero mask.
    Flip {
        at: Index,
        mask: u8,
    },
    /// The real entry cut short (possibly to nothing).
    Truncate(Index),
    /// The real entry with bytes appended.
    Extend(Vec<u8>),
    /// The real entry's envelope header, then random bytes.
    Reheaded(Vec<u8>),
    /// A tombstone's header, then random bytes.
    TombstoneShaped(Vec<u8>),
    /// The real entry of another key, as is.
    Foreign(Index),
}

pub(crate) fn corruption() -> impl Strategy<Value = Corruption> {
    let bytes = |max| proptest::collection::vec(any::<u8>(), 0..max);
    prop_oneof![
        2 => bytes(300).prop_map(Corruption::Random),
        3 => (any::<Index>(), 1u8..=255).prop_map(|(at, mask)| Corruption::Flip { at, mask }),
        1 => any::<Index>().prop_map(Corruption::Truncate),
        1 => proptest::collection::vec(any::<u8>(), 1..16).prop_map(Corruption::Extend),
        1 => bytes(200).prop_map(Corruption::Reheaded),
        1 => bytes(32).prop_map(Corruption::TombstoneShaped),
        1 => any::<Index>().prop_map(Corruption::Foreign),
    ]
}

impl Corruption {
    /// The bad bytes, from `base` (non-empty) or, for `Foreign`, from `others`.
    fn apply(&self, base: &[u8], others: &[&[u8]]) -> Vec<u8> {
        let header = &base[..base.len().min(7)];
        match self {
            Self::Random(bytes) => bytes.clone(),
            Self::Flip { at, mask } => {
                let mut bytes = base.to_vec();
                bytes[at.index(base.len())] ^= mask;
                bytes
            }
            Self::Truncate(at) => base[..at.index(base.len())].to_vec(),
            Self::Extend(tail) => [base, tail].concat(),
            Self::Reheaded(tail) => [header, tail].concat(),
            Self::TombstoneShaped(tail) => [TOMBSTONE_HEADER, tail].concat(),
            Self::Foreign(at) => others[at.index(others.len())].to_vec(),
        }
    }
}

/// A Redis, the repository, and the real entries a writer left in it.
pub(crate) struct Shelf {
    redis: RedisServer,
    connection: RefCell<redis::Connection>,
    repository: Arc<dyn UserRepository>,
    /// Every entry the writer left, by key, sorted.
    originals: Vec<(String, Vec<u8>)>,
    spots: Vec<(Target, Spot)>,
    /// Cases that passed, per target (in [`Target::ALL`] order): tombstone-shaped, other.
    passed: RefCell<[[u64; 2]; Target::ALL.len()]>,
}

/// The tokens of the fixture.
struct Tokens {
    ada: String,
    logged_out: String,
    bob: String,
    ghost: String,
    /// user-3's, issued after user-3's logout-all cutoff.
    after_cutoff: String,
}

impl Tokens {
    /// The tokens, with `logged_out` logged out and user-3 logged out everywhere by
    /// `writer` before user-3's token is signed.
    ///
    /// That token must be refused for its cutoff's bad bytes alone, so with the real cutoff
    /// it must pass: issued after the cutoff (which refuses a whole-second `iat` before its
    /// own second) and acceptable to the verifier (`iat` present, not later than the clock
    /// plus the leeway). The cutoff is the instant `logout_all` read, at most the one read
    /// once it returned; `iat` is the second after that — later than the cutoff however fast or slow
    /// the run, and at most a second ahead of any later clock, well within the leeway. The
    /// service keeps the default leeway: a token dated further ahead would need a larger
    /// one, which would also stretch every expiry and revocation it tests.
    async fn logged_out_by(writer: &AuthService) -> Self {
        let logged_out = another_bearer("ada");
        writer.logout(&logged_out).await.unwrap();
        writer.logout_all("user-3").await.unwrap();
        let iat = unix_now() + 1;
        let mut claims = authcache::Claims::new("user-3", iat + 3600);
        claims.iat = Some(iat);
        let after_cutoff = authcache::TokenIssuer::hs256(SECRET).sign(&claims).unwrap();
        Self {
            ada: bearer("ada"),
            logged_out,
            bob: bearer("bob"),
            ghost: bearer("ghost"),
            after_cutoff: format!("Bearer {after_cutoff}"),
        }
    }
}

// `Tokens::logged_out_by` dates user-3's token a second ahead of the clock.
const _: () = assert!(DEFAULT_LEEWAY.as_secs() >= 1);

impl Shelf {
    /// Starts Redis and lets a writer leave a real entry of every kind; checks that those
    /// are exactly the keys in Redis and that a fresh instance reads them all as valid.
    pub(crate) async fn new() -> Self {
        let redis = RedisServer::start();
        let connection = RefCell::new(redis.connection());
        let repository = memory_repository().await;
        let mut shelf = Self {
            redis,
            connection,
            repository,
            originals: Vec::new(),
            spots: Vec::new(),
            passed: RefCell::default(),
        };
        let tokens = shelf.write_every_kind().await;
        shelf.originals = shelf.raw_entries();
        shelf.spots = Target::ALL
            .iter()
            .map(|&target| (target, shelf.spot(target, &tokens)))
            .collect();
        shelf.expect_exactly_the_written_keys();
        shelf.expect_a_fresh_instance_to_read_them_all().await;
        shelf
    }

    async fn instance(&self) -> AuthService {
        let cache = CacheConfig::Redis {
            url: self.redis.url(),
            timeout_ms: Some(L2_TIMEOUT_MS),
        };
        AuthService::builder()
            .verifier(JwtVerifier::hs256(SECRET))
            .shared_repository(Arc::clone(&self.repository))
            .cache(cache)
            .signing_key(SIGNING_KEY)
            .ttls(lasting_ttls())
            .prefix(PREFIX)
            .build()
            .await
            .unwrap()
    }

    async fn write_every_kind(&self) -> Tokens {
        let writer = self.instance().await;
        // Marks first: a logout and a logout-all invalidate the user they name, and the
        // authentications below fill the records again.
        let tokens = Tokens::logged_out_by(&writer).await;
        for token in [&tokens.ada, &tokens.bob, &tokens.after_cutoff] {
            writer.authenticate(token).await.unwrap();
        }
        let unknown = writer.authenticate(&tokens.ghost).await.unwrap_err();
        assert_eq!(unknown, AuthError::UnknownUser);
        assert_eq!(writer.stats().pending_revocations, 0, "marks reached Redis");
        tokens
    }

    fn spot(&self, target: Target, tokens: &Tokens) -> Spot {
        let keyspace = Keyspace::new(PREFIX).unwrap();
        let key_of = |kind, id: &str| keyspace.key(kind, id).unwrap().as_str().to_owned();
        let revoked = |token: &str| {
            let claims = JwtVerifier::hs256(SECRET).verify(token).unwrap();
            key_of(KeyKind::Revoked, &revocation_id(token, &claims))
        };
        let (key, bearer, subject, reader) = match target {
            Target::User => (
                key_of(KeyKind::User, "ada"),
                &tokens.ada,
                "ada",
                Reader::Value(Tier::Users),
            ),
            Target::UnknownUser => (
                key_of(KeyKind::User, "ghost"),
                &tokens.ghost,
                "ghost",
                Reader::Value(Tier::Users),
            ),
            Target::RolePermissions => (
                key_of(KeyKind::RolePerms, "admin"),
                &tokens.ada,
                "ada",
                Reader::Value(Tier::Permissions),
            ),
            Target::Unread => (
                key_of(KeyKind::Checkpoint, "ada"),
                &tokens.ada,
                "ada",
                Reader::Never,
            ),
            Target::Validation => {
                let fingerprint =
                    Fingerprint::from_hex(&authcache_jwt::fingerprint(&tokens.ada)).unwrap();
                let key = keyspace
                    .token_key(KeyKind::Token, &fingerprint)
                    .as_str()
                    .to_owned();
                (key, &tokens.ada, "ada", Reader::Never)
            }
            Target::Revocation => (
                revoked(&tokens.logged_out),
                &tokens.logged_out,
                "ada",
                Reader::Mark(Tier::Revocations),
            ),
            Target::LiveRevocation => (
                revoked(&tokens.bob),
                &tokens.bob,
                "bob",
                Reader::Mark(Tier::Revocations),
            ),
            Target::Cutoff => (
                key_of(KeyKind::Cutoff, "user-3"),
                &tokens.after_cutoff,
                "user-3",
                Reader::Mark(Tier::Cutoffs),
            ),
        };
        let original = self.original(&key);
        let base = match (&original, reader) {
            (Some(entry), _) => entry.clone(),
            // Another token's real mark: the bytes an attacker would copy.
            (None, Reader::Mark(_)) => self.original(&revoked(&tokens.logged_out)).unwrap(),
            (None, _) => self.original(&key_of(KeyKind::User, "ada")).unwrap(),
        };
        Spot {
            key,
            bearer: bearer.clone(),
            subject,
            reader,
            original,
            base,
        }
    }

    fn original(&self, key: &str) -> Option<Vec<u8>> {
        self.originals
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, entry)| entry.clone())
    }

    /// The writer left an entry at every value and mark target (and at the other users
    /// and role it touched), and nothing else: no roles, no validations. A new kind of
    /// entry in Redis fails here until it is a target of this test.
    fn expect_exactly_the_written_keys(&self) {
        let keyspace = Keyspace::new(PREFIX).unwrap();
        let key = |kind, id: &str| keyspace.key(kind, id).unwrap().as_str().to_owned();
        let mut expected: Vec<String> = self
            .spots
            .iter()
            .filter(|(target, spot)| {
                !matches!(spot.reader, Reader::Never) && *target != Target::LiveRevocation
            })
            .map(|(_, spot)| spot.key.clone())
            .chain([
                key(KeyKind::User, "bob"),
                key(KeyKind::User, "user-3"),
                key(KeyKind::RolePerms, "viewer"),
            ])
            .collect();
        expected.sort_unstable();
        let found: Vec<&String> = self.originals.iter().map(|(key, _)| key).collect();
        assert_eq!(
            found,
            expected.iter().collect::<Vec<_>>(),
            "the kinds of entry in Redis changed"
        );
    }

    /// With the real entries restored, a fresh instance reads every one as valid.
    async fn expect_a_fresh_instance_to_read_them_all(&self) {
        self.restore();
        let auth = self.instance().await;
        for (target, spot) in &self.spots {
            let answer = auth.authenticate(&spot.bearer).await;
            let revoked = matches!(target, Target::Revocation);
            check_answer(&answer, spot.subject, revoked)
                .unwrap_or_else(|e| panic!("{target:?}: {e}"));
        }
        let stats = auth.stats();
        assert_eq!(failures(&stats), [0; 4], "{stats:?}");
        assert!(
            stats.users.l2_hits >= 4 && stats.permissions.l2_hits >= 2,
            "the real entries were read from Redis: {stats:?}"
        );
        assert_eq!(
            stats.loads(),
            0,
            "nothing came from the repository: {stats:?}"
        );
    }

    /// One case: `corruption` at the key of `target`, read by a fresh instance.
    pub(crate) fn case(
        &self,
        runtime: &tokio::runtime::Runtime,
        target: Target,
        corruption: &Corruption,
    ) -> Result<(), TestCaseError> {
        let spot = self.spot_of(target);
        let others: Vec<&[u8]> = self
            .originals
            .iter()
            .filter(|(key, _)| *key != spot.key)
            .map(|(_, entry)| entry.as_slice())
            .collect();
        let bad = corruption.apply(&spot.base, &others);
        prop_assume!(
            spot.original.as_ref() != Some(&bad),
            "a genuine entry is not bad"
        );
        self.restore();
        self.raw_set(&spot.key, &bad);
        let (answer, stats) = runtime.block_on(async {
            let auth = self.instance().await;
            let answer = auth.authenticate(&spot.bearer).await;
            (answer, auth.stats())
        });
        let left = self.raw_get(&spot.key);
        let tombstone_shaped = is_tombstone(&bad);
        let breaker_failures = stats.breaker.map(|b| b.failures);
        prop_assert_eq!(
            (stats.unchecked, breaker_failures),
            (0, Some(0)),
            "Redis answered: {:?}",
            stats
        );
        let mut expected = [0; 4];
        match spot.reader {
            Reader::Value(tier) => {
                check_answer(&answer, spot.subject, false)?;
                // A tombstone is a miss by design (an invalidation left it), not a failure.
                expected[tier as usize] = u64::from(!tombstone_shaped);
                prop_assert_ne!(left, Some(bad), "the fill replaced the bad entry");
            }
            Reader::Mark(tier) => {
                prop_assert!(matches!(answer, Err(AuthError::Revoked)), "{:?}", answer);
                expected[tier as usize] = 1;
                prop_assert_eq!(left, Some(bad), "no reader deletes or rewrites a mark");
            }
            Reader::Never => {
                check_answer(&answer, spot.subject, false)?;
                prop_assert_eq!(left, Some(bad), "never read, never written");
            }
        }
        prop_assert_eq!(failures(&stats), expected, "{:?}", stats);
        self.passed.borrow_mut()[target as usize][usize::from(!tombstone_shaped)] += 1;
        Ok(())
    }

    /// Cases that passed per target: `[tombstone-shaped, any other bytes]`.
    pub(crate) fn passed(&self) -> Vec<(Target, [u64; 2])> {
        Target::ALL.into_iter().zip(*self.passed.borrow()).collect()
    }

    fn spot_of(&self, target: Target) -> &Spot {
        self.spots
            .iter()
            .find(|(t, _)| *t == target)
            .map(|(_, spot)| spot)
            .unwrap()
    }

    // -----------------------------------------------------------------------------------
    // Raw Redis, bypassing the code under test
    // -----------------------------------------------------------------------------------

    fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> T {
        command.query(&mut *self.connection.borrow_mut()).unwrap()
    }

    /// Empties Redis and puts every real entry back.
    fn restore(&self) {
        let mut pipe = redis::pipe();
        pipe.cmd("FLUSHDB").ignore();
        for (key, entry) in &self.originals {
            pipe.cmd("SET")
                .arg(key)
                .arg(entry)
                .arg("PX")
                .arg(ENTRY_PX)
                .ignore();
        }
        pipe.query::<()>(&mut *self.connection.borrow_mut())
            .unwrap();
    }

    fn raw_set(&self, key: &str, bytes: &[u8]) {
        let mut set = redis::cmd("SET");
        set.arg(key).arg(bytes).arg("PX").arg(ENTRY_PX);
        self.query::<()>(&set);
    }

    fn raw_get(&self, key: &str) -> Option<Vec<u8>> {
        let mut get = redis::cmd("GET");
        get.arg(key);
        self.query(&get)
    }

    /// Every entry under the prefix, sorted by key.
    fn raw_entries(&self) -> Vec<(String, Vec<u8>)> {
        let mut keys = redis::cmd("KEYS");
        keys.arg(format!("{PREFIX}:*"));
        let mut keys: Vec<String> = self.query(&keys);
        keys.sort();
        keys.into_iter()
            .map(|key| {
                let entry = self.raw_get(&key).unwrap();
                (key, entry)
            })
            .collect()
    }
}

/// The repository's truth about `subject`, or `Revoked`.
fn check_answer(
    answer: &Result<authcache::Principal, AuthError>,
    subject: &str,
    revoked: bool,
) -> Result<(), TestCaseError> {
    match (revoked, truth(subject), answer) {
        (true, _, Err(AuthError::Revoked))
        | (false, Truth::Unknown, Err(AuthError::UnknownUser)) => Ok(()),
        (false, Truth::Principal { roles, permissions }, Ok(principal)) => {
            prop_assert_eq!(principal.id(), subject);
            prop_assert_eq!(&*principal.roles, &roles);
            prop_assert_eq!(&*principal.permissions, &permissions);
            Ok(())
        }
        (_, truth, answer) => Err(TestCaseError::fail(format!(
            "{subject}: expected {} of {truth:?}, got {answer:?}",
            if revoked { "a revocation" } else { "the truth" }
        ))),
    }
}
