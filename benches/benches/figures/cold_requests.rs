//! 1,000 concurrent cold requests for one user: how many repository loads they cost. Ours:
//! 1,000 tasks released together call `authenticate` with the user's token (Redis as L2,
//! nothing cached yet). Reference: the hand-rolled pattern under the same burst — `GET
//! user_cache:{id}`, on a miss load and `SET` — whose loads are counted the same way. The
//! repository takes 50 ms per load, so that every request arrives while the first load is
//! still running, as in a burst after a deploy or a flush.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use authcache::{
    AuthService, CacheConfig, JwtVerifier, MemoryUserRepository, TokenIssuer, User, UserRepository,
};
use authcache_benches::figures::Unit;
use authcache_tests::hooked_repository::HookedRepository;
use tokio::sync::Barrier;

use crate::{Context, record};

const REQUESTS: usize = 1_000;
const LOAD_TIME: Duration = Duration::from_millis(50);

pub(crate) fn run(cx: &Context) {
    let url = cx.redis.url();
    let ours = cx.runtime.block_on(ours(&url));
    let hand_rolled = cx.runtime.block_on(hand_rolled(&url));
    record(
        "cold_1000_requests_loads/authcache",
        ours as f64,
        Unit::Count,
    );
    record(
        "cold_1000_requests_loads/hand_rolled",
        hand_rolled as f64,
        Unit::Count,
    );
}

/// A repository holding `id` whose `find_by_id` takes [`LOAD_TIME`], and its load counter.
fn slow_repository(id: &str) -> (Arc<dyn UserRepository>, Arc<AtomicU64>) {
    let inner = MemoryUserRepository::new()
        .with_role("reader", ["articles:read"])
        .unwrap()
        .with_user(User::new(id, "cold@example.com", "Cold Start").with_roles(["reader"]))
        .unwrap();
    let loads = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&loads);
    let hook = move |_: &str| -> Pin<Box<dyn Future<Output = ()> + Send>> {
        counter.fetch_add(1, Ordering::Relaxed);
        Box::pin(tokio::time::sleep(LOAD_TIME))
    };
    let repository = HookedRepository::new(Arc::new(inner), Arc::new(hook));
    (Arc::new(repository), loads)
}

/// Runs `request` on [`REQUESTS`] tasks released at once; waits for all of them.
async fn burst<F, Fut>(request: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(REQUESTS));
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let (barrier, request) = (Arc::clone(&barrier), request());
            tokio::spawn(async move {
                barrier.wait().await;
                request.await;
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

async fn ours(redis_url: &str) -> u64 {
    const ID: &str = "cold-ours";
    let (repository, loads) = slow_repository(ID);
    let auth = AuthService::builder()
        .verifier(JwtVerifier::test_hs256())
        .shared_repository(repository)
        .cache(CacheConfig::redis(redis_url))
        .signing_key(b"bench-cache-signing-key-0123456789")
        .prefix("fig_cold")
        .build()
        .await
        .unwrap();
    let bearer = TokenIssuer::test_hs256()
        .issue(ID, Duration::from_secs(3_600))
        .unwrap();
    burst(|| {
        let (auth, bearer) = (auth.clone(), bearer.clone());
        async move {
            assert_eq!(auth.authenticate(&bearer).await.unwrap().id(), ID);
        }
    })
    .await;
    let stats = auth.stats();
    assert_eq!(stats.authenticated, REQUESTS as u64);
    assert_eq!(stats.users.loads, loads.load(Ordering::Relaxed));
    stats.users.loads
}

async fn hand_rolled(redis_url: &str) -> u64 {
    const ID: &str = "cold-hand-rolled";
    let (repository, loads) = slow_repository(ID);
    let conn =
        redis::aio::ConnectionManager::new(authcache_benches::raw_redis_client(redis_url).unwrap())
            .await
            .unwrap();
    burst(|| {
        let (repository, mut conn) = (Arc::clone(&repository), conn.clone());
        async move {
            let key = format!("user_cache:{ID}");
            let cached: Option<Vec<u8>> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            if cached.is_none() {
                let user = repository.find_by_id(ID).await.unwrap().unwrap();
                redis::cmd("SET")
                    .arg(&key)
                    .arg(authcache_jwt::serde_json::to_vec(&user).unwrap())
                    .arg("EX")
                    .arg(300)
                    .query_async::<()>(&mut conn)
                    .await
                    .unwrap();
            }
        }
    })
    .await;
    loads.load(Ordering::Relaxed)
}
