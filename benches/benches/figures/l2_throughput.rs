//! L2 throughput: 64 tasks reading users through a service whose L1 is off, so every read
//! is a Redis `GET` plus the envelope's checks and decode, against `redis-benchmark -c 64
//! -t get -d <the same entry size>` on the same server. Rounds alternate between the two
//! and each side keeps its best, so a burst of load elsewhere on the machine hits both.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use authcache::{AuthService, CacheConfig, JwtVerifier, MemoryUserRepository, Ttls, User};
use authcache_benches::by_mode;
use authcache_benches::figures::Unit;
use authcache_core::{KeyKind, Keyspace};

use crate::{Context, record, record_missing};

const TASKS: u64 = 64;
const PREFIX: &str = "fig_l2";
const ID: &str = "figures-l2";
/// The key `redis-benchmark -t get` reads (without `-r`, its placeholder is taken literally).
const BENCHMARK_KEY: &str = "key:__rand_int__";

pub(crate) fn run(cx: &Context) {
    let requests: u64 = by_mode(200_000, 50_000);
    let rounds = by_mode(3, 1);
    let (auth, entry_len) = cx.runtime.block_on(setup(&cx.redis.url()));
    let mut ours = 0.0_f64;
    let mut reference: Option<f64> = None;
    let mut failure = None;
    for _ in 0..rounds {
        ours = ours.max(cx.runtime.block_on(read_rate(&auth, requests)));
        match redis_benchmark(cx.redis.port(), requests, entry_len) {
            Ok(rate) => reference = Some(reference.unwrap_or(0.0).max(rate)),
            Err(reason) => failure = Some(reason),
        }
    }
    let users = auth.stats().users;
    assert_eq!(users.l1_hits, 0, "the L1 is off");
    assert_eq!(users.loads, 1, "every measured read was an L2 hit");
    record("l2_throughput_64_tasks/authcache", ours, Unit::PerSecond);
    record(
        "l2_throughput_64_tasks/entry_bytes",
        entry_len as f64,
        Unit::Bytes,
    );
    match (reference, failure) {
        (Some(rate), _) => record(
            "l2_throughput_64_tasks/redis_benchmark",
            rate,
            Unit::PerSecond,
        ),
        (None, reason) => record_missing(
            "l2_throughput_64_tasks/redis_benchmark",
            &reason.unwrap_or_default(),
        ),
    }
}

/// A service with the L1 off, its user in L2, and the size of that entry; the same size
/// is written under the key `redis-benchmark` reads.
async fn setup(redis_url: &str) -> (AuthService, usize) {
    let repository = MemoryUserRepository::new()
        .with_user(User::new(ID, "l2@example.com", "Ada Lovelace").with_roles(["admin", "billing"]))
        .unwrap();
    let auth = AuthService::builder()
        .verifier(JwtVerifier::test_hs256())
        .repository(repository)
        .cache(CacheConfig::redis(redis_url))
        .signing_key(b"bench-cache-signing-key-0123456789")
        .prefix(PREFIX)
        .ttls(Ttls {
            l1_cap: Duration::ZERO,
            ..Ttls::default()
        })
        .build()
        .await
        .unwrap();
    auth.user(ID).await.unwrap();
    let key = Keyspace::new(PREFIX)
        .unwrap()
        .key(KeyKind::User, ID)
        .unwrap();
    let mut conn = redis::Client::open(redis_url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let entry: Vec<u8> = redis::cmd("GET")
        .arg(key.as_str())
        .query_async(&mut conn)
        .await
        .unwrap();
    redis::cmd("SET")
        .arg(BENCHMARK_KEY)
        .arg(vec![b'x'; entry.len()])
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    (auth, entry.len())
}

/// `requests` reads over [`TASKS`] tasks; reads per second.
async fn read_rate(auth: &AuthService, requests: u64) -> f64 {
    let remaining = Arc::new(AtomicU64::new(requests));
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (auth, remaining) = (auth.clone(), Arc::clone(&remaining));
            tokio::spawn(async move {
                while remaining
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
                {
                    assert_eq!(auth.user(ID).await.unwrap().id, ID);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    requests as f64 / started.elapsed().as_secs_f64()
}

/// `redis-benchmark`'s GET rate with 64 connections and `size`-byte values.
fn redis_benchmark(port: u16, requests: u64, size: usize) -> Result<f64, String> {
    let output = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-c",
            &TASKS.to_string(),
        ])
        .args([
            "-n",
            &requests.to_string(),
            "-d",
            &size.to_string(),
            "-t",
            "get",
            "--csv",
        ])
        .output()
        .map_err(|e| {
            format!("redis-benchmark: {e} (install redis-tools, or run `cargo xtask bench`)")
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "redis-benchmark failed ({}): {stdout}",
            output.status
        ));
    }
    // `"GET","<requests per second>",…`
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("\"GET\",\""))
        .and_then(|rest| rest.split('"').next())
        .and_then(|rate| rate.parse().ok())
        .ok_or_else(|| format!("no GET rate in redis-benchmark's output: {stdout}"))
}
