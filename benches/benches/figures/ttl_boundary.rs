//! Tail latency of a hot-user workload across TTL boundaries, with refresh-ahead off
//! (`Ttls::refresh_ahead = 0.0`) and on (`0.1`). Hot users are authenticated every
//! millisecond each, across many expiries of their entries; the repository takes 5 ms per
//! load. Without refresh-ahead, the read that finds an entry expired waits for the load;
//! with it, a read in the last tenth of the TTL reloads in the background and no read waits.
//!
//! The latency is recorded as an open-loop client would see it (hdrhistogram's
//! `record_correct`: a read that took k intervals also counts the reads that would have
//! queued behind it). The share of reads that can land in a stall is load time over TTL, so
//! the TTL is short (200 ms: 2.5 % of reads) for the stall to reach the p99 it is measured by.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authcache::{
    AuthService, CacheConfig, JwtVerifier, MemoryUserRepository, TokenIssuer, Ttls, User,
};
use authcache_benches::by_mode;
use authcache_benches::figures::Unit;
use authcache_tests::hooked_repository::HookedRepository;
use hdrhistogram::Histogram;
use tokio::time::MissedTickBehavior;

use crate::{Context, record};

const HOT_USERS: usize = 8;
const USER_TTL: Duration = Duration::from_millis(200);
const LOAD_TIME: Duration = Duration::from_millis(5);
/// Each hot user is read once per interval.
const INTERVAL: Duration = Duration::from_millis(1);

pub(crate) fn run(cx: &Context) {
    let duration = by_mode(Duration::from_secs(5), Duration::from_secs(2));
    for (name, refresh_ahead) in [("no_refresh_ahead", 0.0), ("refresh_ahead", 0.1)] {
        let latency = cx.runtime.block_on(workload(refresh_ahead, duration));
        let nanos = |q: f64| latency.value_at_quantile(q) as f64;
        record(
            &format!("ttl_boundary_p99/{name}"),
            nanos(0.99),
            Unit::Nanos,
        );
        record(
            &format!("ttl_boundary_p999/{name}"),
            nanos(0.999),
            Unit::Nanos,
        );
    }
}

async fn workload(refresh_ahead: f64, duration: Duration) -> Histogram<u64> {
    let (auth, tokens) = service(refresh_ahead).await;
    for token in &tokens {
        auth.authenticate(token).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + duration;
    let readers: Vec<_> = tokens
        .into_iter()
        .map(|token| tokio::spawn(read_until(auth.clone(), token, deadline)))
        .collect();
    let mut latency = Histogram::<u64>::new(3).unwrap();
    for reader in readers {
        latency.add(reader.await.unwrap()).unwrap();
    }
    let boundaries = duration.as_millis() / USER_TTL.as_millis();
    let loads = auth.stats().users.loads;
    assert!(
        loads > HOT_USERS as u64 * boundaries as u64 / 2,
        "the workload crossed the TTL boundaries ({loads} loads)"
    );
    latency
}

/// Reads `token` once per [`INTERVAL`] until `deadline`.
async fn read_until(
    auth: AuthService,
    token: String,
    deadline: tokio::time::Instant,
) -> Histogram<u64> {
    let mut latency = Histogram::<u64>::new(3).unwrap();
    let interval_ns = u64::try_from(INTERVAL.as_nanos()).unwrap();
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    while ticks.tick().await < deadline {
        let started = Instant::now();
        auth.authenticate(&token).await.unwrap();
        let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        latency.record_correct(took, interval_ns).unwrap();
    }
    latency
}

async fn service(refresh_ahead: f64) -> (AuthService, Vec<String>) {
    let mut inner = MemoryUserRepository::new()
        .with_role("reader", ["articles:read"])
        .unwrap();
    let issuer = TokenIssuer::test_hs256();
    let mut tokens = Vec::new();
    for i in 0..HOT_USERS {
        let id = format!("hot-{i}");
        let user = User::new(&id, format!("hot{i}@example.com"), format!("Hot {i}"));
        inner = inner.with_user(user.with_roles(["reader"])).unwrap();
        tokens.push(issuer.issue(&id, Duration::from_secs(3_600)).unwrap());
    }
    let slow = |_: &str| -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(LOAD_TIME))
    };
    let auth = AuthService::builder()
        .verifier(JwtVerifier::test_hs256())
        .shared_repository(Arc::new(HookedRepository::new(
            Arc::new(inner),
            Arc::new(slow),
        )))
        .cache(CacheConfig::memory())
        .ttls(Ttls {
            user: USER_TTL,
            refresh_ahead,
            ..Ttls::default()
        })
        .build()
        .await
        .unwrap();
    (auth, tokens)
}
