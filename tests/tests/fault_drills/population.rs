//! Who the drills authenticate: warm users (cached before the fault), cold users (never
//! asked for before the load picks them), probe users (kept away from the load, for the
//! recovery probes) — seeded into either repository — and a fresh token per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authcache::{
    AuthService, Claims, MemoryUserRepository, MongoUserRepository, TokenIssuer, User,
    UserRepository,
};
use futures::TryStreamExt;

use crate::auth_support::{ROLES, SECRET};

/// Concurrent writes while seeding SecantusDB: each upsert is a round trip to a Python
/// server, so a thousand users written one after another would dominate the drill.
const SEED_CONCURRENCY: usize = 16;

/// How long a drill token is valid: far beyond any drill, never near `exp`.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The users of one drill, by how the drill uses them.
#[derive(Debug)]
pub(crate) struct Population {
    pub(crate) warm: Vec<String>,
    pub(crate) cold: Vec<String>,
    pub(crate) probes: Vec<String>,
}

impl Population {
    /// `warm` + `cold` + `probes` users, every one a viewer, every eighth warm one an admin
    /// too (so that two roles' permissions are cached).
    pub(crate) fn new(warm: usize, cold: usize, probes: usize) -> Arc<Self> {
        let ids = |kind: &str, count: usize| (0..count).map(|i| format!("{kind}-{i}")).collect();
        Arc::new(Self {
            warm: ids("warm", warm),
            cold: ids("cold", cold),
            probes: ids("probe", probes),
        })
    }

    /// The user records behind every id.
    fn users(&self) -> impl Iterator<Item = User> + '_ {
        let all = self.warm.iter().chain(&self.cold).chain(&self.probes);
        all.enumerate().map(|(i, id)| {
            let roles: &[&str] = if i % 8 == 0 {
                &["viewer", "admin"]
            } else {
                &["viewer"]
            };
            User::new(id.as_str(), format!("{id}@example.com"), id.as_str())
                .with_roles(roles.iter().copied())
        })
    }

    /// An in-memory repository holding every user and role.
    pub(crate) async fn memory_repository(&self) -> Arc<dyn UserRepository> {
        let mut repository = MemoryUserRepository::new();
        for (role, permissions) in ROLES {
            repository = repository
                .with_role(role, permissions.iter().copied())
                .unwrap();
        }
        for user in self.users() {
            repository.upsert(&user).await.unwrap();
        }
        Arc::new(repository)
    }

    /// A MongoDB repository at `uri` (a database of its own) holding every user and role.
    pub(crate) async fn mongo_repository(&self, uri: &str) -> Arc<dyn UserRepository> {
        let repository = MongoUserRepository::connect(uri, "fault_drills")
            .await
            .unwrap_or_else(|e| panic!("connect to SecantusDB at {uri}: {e}"));
        for (role, permissions) in ROLES {
            repository
                .upsert_role(role, permissions.iter().copied())
                .await
                .unwrap();
        }
        let repository: Arc<dyn UserRepository> = Arc::new(repository);
        futures::stream::iter(self.users().map(Ok::<_, authcache::RepositoryError>))
            .try_for_each_concurrent(SEED_CONCURRENCY, |user| {
                let repository = Arc::clone(&repository);
                async move { repository.upsert(&user).await }
            })
            .await
            .unwrap_or_else(|e| panic!("seed SecantusDB: {e}"));
        repository
    }

    /// Authenticates every warm user on `auth` (user, roles, permissions now cached).
    pub(crate) async fn warm_up(&self, auth: &AuthService) {
        for id in &self.warm {
            let served = auth.authenticate(&fresh_bearer(id)).await;
            assert!(served.is_ok(), "warming {id} up: {served:?}");
        }
    }

    /// The user of request number `n`: a cold one every `cold_every`-th request, taken in
    /// order (so a cold user stays cold until the load first reaches it), else a warm one.
    pub(crate) fn pick(&self, n: u64, cold_every: u64) -> (&str, bool) {
        if n % cold_every == cold_every - 1 {
            (nth(&self.cold, n / cold_every), true)
        } else {
            (nth(&self.warm, n), false)
        }
    }
}

fn nth(ids: &[String], n: u64) -> &str {
    let index = usize::try_from(n).unwrap_or(usize::MAX) % ids.len();
    &ids[index]
}

/// A bearer token for `sub` never issued before (its own `jti`): it misses the validation
/// cache and its revocation is looked up in the shared cache, as a new session's would be.
pub(crate) fn fresh_bearer(sub: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = Claims::new(sub, now + TOKEN_LIFETIME.as_secs());
    claims.iat = Some(now);
    claims.jti = Some(format!("drill-{}", NEXT.fetch_add(1, Ordering::Relaxed)));
    let token = TokenIssuer::hs256(SECRET).sign(&claims).unwrap();
    format!("Bearer {token}")
}
