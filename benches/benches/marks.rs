//! Revocation marks at scale (issue item 6): the latency of `authenticate` and `logout`
//! while this instance holds a million marks of its own.
//!
//! An `AuthService` in memory mode (no Redis; HS256, cheap to mint and verify) is measured
//! twice: with no marks, then after 1,000,000 logouts of distinct tokens (100,000 under
//! `--quick`), each of which leaves a mark in the sticky table (held until the token would
//! expire anyway), in the shared L2 and in the memo. Each time it measures, one call at a
//! time, and prints p50 / p99 / p99.9 / max of:
//!
//! - `authenticate_warm` — the same token again (the warm path: one in-process lookup);
//! - `authenticate_cold` — a token never seen (signature, both mark lookups missing the
//!   memo — so the sticky table and the L2 are read — and the user from L1);
//! - `logout` — a token never seen (signature, lookup, the mark written to the sticky
//!   table, the memo and the L2, the user invalidated).
//!
//! `cargo bench -p authcache-benches --features facade --bench marks` (with
//! `AUTHCACHE_BENCH_QUICK=1` for the short run, `AUTHCACHE_BENCH_MARKS=<n>` for another
//! fill). Figures go to the figures file as `marks_<count>/<operation>/p<q>`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use authcache::{
    AuthError, AuthService, CacheConfig, Claims, JwtVerifier, MemoryUserRepository, TokenIssuer,
    User,
};
use authcache_benches::figures::{self, Unit};
use hdrhistogram::Histogram;

const SECRET: &[u8] = b"bench-marks-hs256-secret-0123456789";
const SIGNING_KEY: &[u8] = b"bench-cache-signing-key-0123456789";
/// Authenticates; never logged out, so its answers stay warm.
const READER: &str = "reader";
/// Logs out: every mark is one of its tokens.
const LEAVER: &str = "leaver";
/// Tokens live an hour: every mark written here outlives the run.
const TOKEN_LIFETIME: u64 = 3_600;
/// Overrides how many marks the table is filled with.
const MARKS_ENV: &str = "AUTHCACHE_BENCH_MARKS";
/// Concurrent tasks filling the table.
const FILLERS: usize = 8;

fn main() {
    let marks = std::env::var(MARKS_ENV)
        .ok()
        .and_then(|marks| marks.parse().ok())
        .unwrap_or_else(|| authcache_benches::by_mode(1_000_000, 100_000));
    let samples = authcache_benches::by_mode(20_000, 5_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let issuer = TokenIssuer::hs256(SECRET);
    let auth = runtime.block_on(service());
    let mint = |batch: &str, n: usize| -> Vec<String> {
        (0..n)
            .map(|i| token(&issuer, LEAVER, &format!("{batch}-{i}")))
            .collect()
    };

    println!("\n== marks: {samples} samples per operation, one call at a time");
    let mut table = Vec::new();
    let empty = mint("measured-empty", samples);
    table.extend(runtime.block_on(measure(&auth, &empty, 0)));

    let filled = mint("filled", marks);
    let started = Instant::now();
    let rss_before = resident_bytes();
    runtime.block_on(fill(&auth, filled.clone()));
    let rss_growth = resident_bytes().saturating_sub(rss_before);
    let elapsed = started.elapsed();
    println!(
        "filled {marks} marks in {:.1} s ({:.0} logouts/s); RSS grew {:.0} bytes per mark (every tier)",
        elapsed.as_secs_f64(),
        marks as f64 / elapsed.as_secs_f64(),
        rss_growth as f64 / marks as f64,
    );
    runtime.block_on(still_revoked(&auth, &filled));
    let fresh = mint("measured-full", samples);
    table.extend(runtime.block_on(measure(&auth, &fresh, marks)));

    let stats = auth.stats();
    assert_eq!(
        stats.pending_revocations, 0,
        "the in-process L2 took every mark"
    );
    print_table(&table);
    for row in &table {
        for (q, value) in [("p50", row.p50), ("p99", row.p99)] {
            let id = format!("marks_{}/{}/{q}", row.marks, row.operation);
            figures::record(&id, value as f64, Unit::Nanos).unwrap();
        }
    }
}

async fn service() -> AuthService {
    let repository = MemoryUserRepository::new()
        .with_role("reader", ["articles:read"])
        .unwrap()
        .with_user(User::new(READER, "reader@example.com", "Reader").with_roles(["reader"]))
        .unwrap()
        .with_user(User::new(LEAVER, "leaver@example.com", "Leaver"))
        .unwrap();
    AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .repository(repository)
        .cache(CacheConfig::memory())
        .signing_key(SIGNING_KEY)
        .build()
        .await
        .unwrap()
}

/// A token of `sub` with `jti`: a revocation id of its own.
fn token(issuer: &TokenIssuer, sub: &str, jti: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = Claims::new(sub, now + TOKEN_LIFETIME);
    claims.iat = Some(now);
    claims.jti = Some(jti.to_owned());
    format!("Bearer {}", issuer.sign(&claims).unwrap())
}

/// Logs every token out, from [`FILLERS`] tasks.
async fn fill(auth: &AuthService, tokens: Vec<String>) {
    let chunk = tokens.len().div_ceil(FILLERS).max(1);
    let tasks: Vec<_> = tokens
        .chunks(chunk)
        .map(|chunk| {
            let (auth, chunk) = (auth.clone(), chunk.to_vec());
            tokio::spawn(async move {
                for bearer in chunk {
                    auth.logout(&bearer).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// Marks written long before (their memo entries long gone) are still in force.
async fn still_revoked(auth: &AuthService, filled: &[String]) {
    let step = (filled.len() / 100).max(1);
    for bearer in filled.iter().step_by(step) {
        let refused = auth.authenticate(bearer).await.unwrap_err();
        assert_eq!(refused, AuthError::Revoked);
    }
}

struct Row {
    operation: &'static str,
    marks: usize,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

/// The three operations, `logouts.len()` calls each; `logouts` are fresh tokens.
async fn measure(auth: &AuthService, logouts: &[String], marks: usize) -> Vec<Row> {
    let samples = logouts.len();
    let issuer = TokenIssuer::hs256(SECRET);
    let warm = token(&issuer, READER, &format!("warm-{marks}"));
    auth.authenticate(&warm).await.unwrap();
    let mut rows = Vec::new();

    let mut latency = histogram();
    for _ in 0..samples {
        let started = Instant::now();
        auth.authenticate(&warm).await.unwrap();
        record(&mut latency, started);
    }
    rows.push(row("authenticate_warm", marks, &latency));

    // Minted up front: the loop times the call only.
    let cold: Vec<String> = (0..samples)
        .map(|i| token(&issuer, READER, &format!("cold-{marks}-{i}")))
        .collect();
    let mut latency = histogram();
    for bearer in &cold {
        let started = Instant::now();
        auth.authenticate(bearer).await.unwrap();
        record(&mut latency, started);
    }
    rows.push(row("authenticate_cold", marks, &latency));

    let mut latency = histogram();
    for bearer in logouts {
        let started = Instant::now();
        auth.logout(bearer).await.unwrap();
        record(&mut latency, started);
    }
    rows.push(row("logout", marks, &latency));
    rows
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap()
}

fn record(histogram: &mut Histogram<u64>, started: Instant) {
    let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    histogram.saturating_record(nanos.max(1));
}

fn row(operation: &'static str, marks: usize, latency: &Histogram<u64>) -> Row {
    Row {
        operation,
        marks,
        p50: latency.value_at_quantile(0.50),
        p99: latency.value_at_quantile(0.99),
        p999: latency.value_at_quantile(0.999),
        max: latency.max(),
    }
}

fn print_table(rows: &[Row]) {
    let us = |nanos: u64| format!("{:.1} µs", nanos as f64 / 1_000.0);
    println!(
        "\n| operation | marks held | p50 | p99 | p99.9 | max |\n|---|---:|---:|---:|---:|---:|"
    );
    for row in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            row.operation,
            row.marks,
            us(row.p50),
            us(row.p99),
            us(row.p999),
            us(row.max)
        );
    }
}

/// This process's resident set, from `/proc/self/statm` (0 where there is none).
fn resident_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    pages * 4_096
}
