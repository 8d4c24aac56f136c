//! RSS per L1 entry with 100,000 users cached: each side runs in a process of its own (this
//! bench, re-executed as a probe), reads its resident set before building the cache and
//! after filling it, and reports the growth per user. Ours: an `AuthService` whose L2
//! stores nothing (so the growth is the L1's), filled through `user(id)`. Reference: a
//! bare `moka::sync::Cache<String, Arc<User>>` with a TTL holding the same users.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use authcache::{AuthService, JwtVerifier, MemoryUserRepository, User, UserRepository};
use authcache_benches::figures::Unit;
use authcache_core::{Cache, CacheError, Key};
use bytes::Bytes;

use crate::{Context, record, record_missing};

/// Users cached.
const USERS: usize = 100_000;
/// Set in a probe process: which side it measures.
const PROBE_ENV: &str = "AUTHCACHE_BENCH_RSS_PROBE";
const SIDES: [&str; 2] = ["authcache", "moka"];

pub(crate) fn run(_cx: &Context) {
    for side in SIDES {
        let id = format!("l1_rss_per_entry/{side}");
        match run_probe(side) {
            Ok(bytes) => record(&id, bytes, Unit::Bytes),
            Err(reason) => record_missing(&id, &reason),
        }
    }
}

/// The side this process must measure, when it is a probe.
pub(crate) fn requested_probe() -> Option<String> {
    std::env::var(PROBE_ENV).ok()
}

fn run_probe(side: &str) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new(exe)
        .env(PROBE_ENV, side)
        .output()
        .map_err(|e| format!("cannot start the probe: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("rss_per_entry="))
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| {
            format!(
                "probe {side} failed ({}): {stdout} {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

/// Runs in the probe process: prints `rss_per_entry=<bytes>`.
pub(crate) fn probe(side: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let users: Vec<User> = (0..USERS).map(user).collect();
    let growth = match side {
        "authcache" => runtime.block_on(authcache_growth(&users)),
        "moka" => moka_growth(&users),
        other => panic!("unknown RSS probe {other:?}"),
    };
    println!("rss_per_entry={}", growth as f64 / USERS as f64);
}

fn user(i: usize) -> User {
    User::new(
        format!("rss-user-{i:06}"),
        format!("rss{i}@example.com"),
        format!("Resident Set {i}"),
    )
    .with_roles(["reader", "writer"])
    .with_updated_at(1_700_000_000_000)
}

async fn authcache_growth(users: &[User]) -> u64 {
    let repository = MemoryUserRepository::new();
    for user in users {
        repository.upsert(user).await.unwrap();
    }
    let before = resident_bytes();
    let auth = AuthService::builder()
        .verifier(JwtVerifier::test_hs256())
        .repository(repository)
        .l2(Arc::new(NoL2))
        .signing_key(b"bench-cache-signing-key-0123456789")
        .l1_capacity(USERS as u64 + USERS as u64 / 4)
        .build()
        .await
        .unwrap();
    for user in users {
        auth.user(&user.id).await.unwrap();
    }
    let after = resident_bytes();
    for user in users {
        auth.user(&user.id).await.unwrap();
    }
    let stats = auth.stats().users;
    assert_eq!(
        (stats.loads, stats.l1_hits),
        (USERS as u64, USERS as u64),
        "every user was loaded once and then held by the L1"
    );
    after.saturating_sub(before)
}

fn moka_growth(users: &[User]) -> u64 {
    let before = resident_bytes();
    let cache: moka::sync::Cache<String, Arc<User>> = moka::sync::Cache::builder()
        .max_capacity(USERS as u64 + USERS as u64 / 4)
        .time_to_live(Duration::from_secs(30))
        .build();
    for user in users {
        cache.insert(user.id.clone(), Arc::new(user.clone()));
    }
    cache.run_pending_tasks();
    let after = resident_bytes();
    assert_eq!(cache.entry_count(), USERS as u64, "moka holds every user");
    after.saturating_sub(before)
}

/// `VmRSS` of this process, in bytes (also read by `growth`).
pub(crate) fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

/// An L2 that stores nothing, so that the process's growth is the L1's alone.
#[derive(Debug)]
struct NoL2;

#[async_trait]
impl Cache for NoL2 {
    async fn get(&self, _key: &Key) -> Result<Option<Bytes>, CacheError> {
        Ok(None)
    }

    async fn set(&self, _key: &Key, _value: Bytes, _ttl: Duration) -> Result<(), CacheError> {
        Ok(())
    }

    async fn delete(&self, _key: &Key) -> Result<bool, CacheError> {
        Ok(false)
    }
}
