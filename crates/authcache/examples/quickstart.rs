//! The quickstart: a realistic authentication workload on embedded defaults.
//!
//! ```text
//! cargo run -p authcache --example quickstart
//! cargo run -p authcache --example quickstart --features redis,mongodb -- \
//!     --redis redis://127.0.0.1:6379 --mongo mongodb://127.0.0.1:27017
//! RUST_LOG=authcache::refusal=debug cargo run -p authcache --example quickstart
//! ```
//!
//! Seeds a repository with users, issues one HS256 token per user, then runs many
//! authentications from many tasks, users drawn from a Zipf distribution (a few users are
//! very active, most are not). Midway, one user logs out and another is promoted to admin;
//! the summary shows that both took effect at once, with throughput, latency, hit ratios
//! per tier, repository loads and coalesced waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use authcache::{
    AuthError, AuthService, CacheConfig, JwtVerifier, MemoryUserRepository, Stats,
    TierStatsSnapshot, TokenIssuer, User, UserRepository,
};
use clap::Parser;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::RngExt;
use rand::SeedableRng;
use rand::distr::Distribution;
use rand::rngs::SmallRng;
use rand_distr::Zipf;

/// HS256 secret of the demo issuer. A real service reads it from its secret store.
const TOKEN_SECRET: &[u8] = b"quickstart-token-secret-of-32-bytes!";
/// HMAC key for cache entries: entries not signed with it are misses (see the crate docs).
const CACHE_SIGNING_KEY: &[u8] = b"quickstart-cache-signing-key-32-bytes";
/// One request in this many presents a forged token (signed with another secret).
const FORGED_ONE_IN: u64 = 1_000;
/// Zipf exponent: rank 1 gets ~10 % of the traffic with 10,000 users.
const ZIPF_EXPONENT: f64 = 1.1;
/// The user that logs out midway (rank 3: a very active user) and the one promoted (rank 5).
const LOGGED_OUT_RANK: usize = 3;
const PROMOTED_RANK: usize = 5;

/// A realistic authentication workload against AuthService.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// Use Redis as the shared cache (needs the `redis` feature).
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Use MongoDB as the repository (needs the `mongodb` feature); seeded first.
    #[arg(long, value_name = "URL")]
    mongo: Option<String>,
    /// MongoDB database for --mongo.
    #[arg(long, default_value = "authcache_quickstart")]
    db: String,
    /// Authentications to run.
    #[arg(long, default_value_t = 200_000)]
    requests: u64,
    /// Users to seed.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Concurrent tasks.
    #[arg(long, default_value_t = 64)]
    tasks: u64,
}

/// What the workers share.
struct Workload {
    auth: AuthService,
    tokens: Vec<String>,
    forged: String,
    zipf: Zipf<f64>,
    done: AtomicU64,
    half: u64,
    midway: tokio::sync::Notify,
    logged_out: AtomicBool,
    promoted: AtomicBool,
    outcome: Outcome,
}

/// What the workers saw.
#[derive(Default)]
struct Outcome {
    ok: AtomicU64,
    forged_rejected: AtomicU64,
    revoked_rejected: AtomicU64,
    logged_out_accepted_after: AtomicU64,
    promoted_seen_without_admin_after: AtomicU64,
    unexpected_errors: AtomicU64,
}

/// Logs to stderr, filtered by `RUST_LOG` (errors only when unset):
/// `RUST_LOG=authcache::refusal=debug` shows why each request was refused.
fn init_logs() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logs();
    let args = Args::parse();
    if args.users < PROMOTED_RANK || args.tasks == 0 {
        bail!("--users must be at least {PROMOTED_RANK} and --tasks at least 1");
    }
    let started = Instant::now();
    let users = seed_users(args.users);
    let repository = repository(&args, &users).await?;
    let auth = service(&args, repository.clone()).await?;
    let issuer = TokenIssuer::hs256(TOKEN_SECRET);
    let tokens = users
        .iter()
        .map(|user| {
            issuer
                .issue(&user.id, Duration::from_secs(3_600))
                .map(|t| format!("Bearer {t}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let forged = TokenIssuer::hs256(b"an-attacker-guessing-the-secret!!")
        .issue(&users[0].id, Duration::from_secs(3_600))?;
    println!(
        "seeded {} users and issued their tokens in {:.2?}; running {} authentications over {} tasks",
        users.len(),
        started.elapsed(),
        args.requests,
        args.tasks
    );

    let workload = Arc::new(Workload {
        auth,
        tokens,
        forged: format!("Bearer {forged}"),
        zipf: Zipf::new(args.users as f64, ZIPF_EXPONENT)?,
        done: AtomicU64::new(0),
        half: args.requests / 2,
        midway: tokio::sync::Notify::new(),
        logged_out: AtomicBool::new(false),
        promoted: AtomicBool::new(false),
        outcome: Outcome::default(),
    });
    let progress = progress_bar(args.requests);
    let run_started = Instant::now();
    let events = tokio::spawn(midway_events(Arc::clone(&workload), repository, users));
    let workers: Vec<_> = (0..args.tasks)
        .map(|task| {
            let share = args.requests / args.tasks + u64::from(task < args.requests % args.tasks);
            tokio::spawn(worker(Arc::clone(&workload), task, share, progress.clone()))
        })
        .collect();
    let mut latency = Histogram::<u64>::new(3)?;
    for worker in workers {
        latency.add(worker.await??)?;
    }
    let elapsed = run_started.elapsed();
    progress.finish_and_clear();
    let (logout_verified, promotion_verified) = events.await??;
    print_summary(
        &args,
        &workload,
        &latency,
        elapsed,
        logout_verified,
        promotion_verified,
    );
    Ok(())
}

fn seed_users(count: usize) -> Vec<User> {
    (0..count)
        .map(|i| {
            let mut roles = vec!["reader"];
            if i % 10 == 0 {
                roles.push("writer");
            }
            User::new(
                format!("user-{i}"),
                format!("user{i}@example.com"),
                format!("User {i}"),
            )
            .with_roles(roles)
        })
        .collect()
}

/// Role definitions shared by both repositories.
const ROLES: [(&str, &[&str]); 3] = [
    ("reader", &["articles:read", "comments:read"]),
    ("writer", &["articles:write", "comments:write"]),
    ("admin", &["articles:delete", "users:manage"]),
];

async fn repository(args: &Args, users: &[User]) -> anyhow::Result<Arc<dyn UserRepository>> {
    match &args.mongo {
        Some(uri) => mongo_repository(uri, &args.db, users).await,
        None => {
            let mut repository = MemoryUserRepository::new();
            for (role, permissions) in ROLES {
                repository = repository.with_role(role, permissions.iter().copied())?;
            }
            for user in users {
                repository.upsert(user).await?;
            }
            Ok(Arc::new(repository))
        }
    }
}

#[cfg(feature = "mongodb")]
async fn mongo_repository(
    uri: &str,
    db: &str,
    users: &[User],
) -> anyhow::Result<Arc<dyn UserRepository>> {
    use seed::upsert_all;
    let repository = authcache::MongoUserRepository::connect(uri, db)
        .await
        .with_context(|| format!("connecting to {uri}"))?;
    for (role, permissions) in ROLES {
        repository
            .upsert_role(role, permissions.iter().copied())
            .await?;
    }
    upsert_all(&repository, users).await?;
    Ok(Arc::new(repository))
}

#[cfg(not(feature = "mongodb"))]
async fn mongo_repository(
    _uri: &str,
    _db: &str,
    _users: &[User],
) -> anyhow::Result<Arc<dyn UserRepository>> {
    let error = authcache::RepositoryConfig::mongodb("", "")
        .ensure_compiled()
        .err()
        .map_or_else(
            || "mongodb is not compiled in".to_owned(),
            |e| e.to_string(),
        );
    bail!("{error} (run with `--features mongodb`)")
}

#[cfg(feature = "mongodb")]
mod seed {
    //! Seeds MongoDB with a bounded number of concurrent upserts.
    use authcache::{User, UserRepository};

    pub(super) async fn upsert_all(
        repository: &authcache::MongoUserRepository,
        users: &[User],
    ) -> anyhow::Result<()> {
        for chunk in users.chunks(64) {
            let writes = chunk.iter().map(|user| {
                let repository = repository.clone();
                let user = user.clone();
                tokio::spawn(async move { repository.upsert(&user).await })
            });
            for write in writes.collect::<Vec<_>>() {
                write.await??;
            }
        }
        Ok(())
    }
}

async fn service(args: &Args, repository: Arc<dyn UserRepository>) -> anyhow::Result<AuthService> {
    let cache = match &args.redis {
        Some(url) => CacheConfig::redis(url),
        None => CacheConfig::memory(),
    };
    AuthService::builder()
        .verifier(JwtVerifier::hs256(TOKEN_SECRET))
        .shared_repository(repository)
        .cache(cache)
        .signing_key(CACHE_SIGNING_KEY)
        .build()
        .await
        .context("building the AuthService")
}

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} authentications  {per_sec}  eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

/// One task's share of the workload; returns its latency histogram (microseconds).
async fn worker(
    workload: Arc<Workload>,
    task: u64,
    requests: u64,
    progress: ProgressBar,
) -> anyhow::Result<Histogram<u64>> {
    let mut rng = SmallRng::seed_from_u64(task);
    let mut latency = Histogram::<u64>::new(3)?;
    for _ in 0..requests {
        let forged = rng.random_ratio(1, FORGED_ONE_IN as u32);
        // Zipf samples are 1..=n as floats; truncation picks the rank.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = workload.zipf.sample(&mut rng) as usize;
        let token = if forged {
            &workload.forged
        } else {
            &workload.tokens[rank - 1]
        };
        let logged_out_before = workload.logged_out.load(Ordering::Acquire);
        let promoted_before = workload.promoted.load(Ordering::Acquire);
        let started = Instant::now();
        let result = workload.auth.authenticate(token).await;
        latency.record(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX))?;
        workload.record(forged, rank, logged_out_before, promoted_before, &result);
        // A server yields between requests (socket reads); without this, a task whose
        // answers all come from L1 never yields and starves the tasks queued behind it.
        tokio::task::yield_now().await;
        let done = workload.done.fetch_add(1, Ordering::AcqRel) + 1;
        if done == workload.half {
            workload.midway.notify_one();
        }
        if done.is_multiple_of(512) {
            progress.set_position(done);
        }
    }
    Ok(latency)
}

impl Workload {
    fn record(
        &self,
        forged: bool,
        rank: usize,
        logged_out: bool,
        promoted: bool,
        result: &Result<authcache::Principal, AuthError>,
    ) {
        let o = &self.outcome;
        let counter = match result {
            Ok(who) => {
                if !forged && rank == LOGGED_OUT_RANK && logged_out {
                    o.logged_out_accepted_after.fetch_add(1, Ordering::Relaxed);
                }
                if rank == PROMOTED_RANK && promoted && !who.has_role("admin") {
                    o.promoted_seen_without_admin_after
                        .fetch_add(1, Ordering::Relaxed);
                }
                &o.ok
            }
            Err(AuthError::Token(_)) if forged => &o.forged_rejected,
            Err(AuthError::Revoked) if rank == LOGGED_OUT_RANK => &o.revoked_rejected,
            Err(_) => &o.unexpected_errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Halfway through: the rank-3 user logs out and the rank-5 user is promoted to admin
/// (repository first, then write-through). Returns whether each took effect.
async fn midway_events(
    workload: Arc<Workload>,
    repository: Arc<dyn UserRepository>,
    users: Vec<User>,
) -> anyhow::Result<(bool, bool)> {
    if workload.half > 0 {
        workload.midway.notified().await;
    }
    let auth = &workload.auth;
    let logged_out = &workload.tokens[LOGGED_OUT_RANK - 1];
    auth.logout(logged_out).await?;
    workload.logged_out.store(true, Ordering::Release);

    let mut promoted = users[PROMOTED_RANK - 1].clone();
    promoted.roles.push("admin".into());
    repository.upsert(&promoted).await?;
    auth.cache_user(&promoted).await?;
    workload.promoted.store(true, Ordering::Release);

    let logout_ok = matches!(auth.authenticate(logged_out).await, Err(AuthError::Revoked));
    let promoted_principal = auth
        .authenticate(&workload.tokens[PROMOTED_RANK - 1])
        .await?;
    let promotion_ok =
        promoted_principal.has_role("admin") && promoted_principal.has_permission("users:manage");
    Ok((logout_ok, promotion_ok))
}

fn print_summary(
    args: &Args,
    workload: &Workload,
    latency: &Histogram<u64>,
    elapsed: Duration,
    logout_ok: bool,
    promotion_ok: bool,
) {
    let stats = workload.auth.stats();
    let o = &workload.outcome;
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let throughput = args.requests as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
    let rows: Vec<(String, String)> = vec![
        ("backends".into(), backends(args)),
        (
            "authentications".into(),
            format!("{} in {elapsed:.2?}", args.requests),
        ),
        ("throughput".into(), format!("{throughput:.0} /s")),
        (
            "latency p50 / p99 / max".into(),
            format!(
                "{} µs / {} µs / {} µs",
                latency.value_at_quantile(0.50),
                latency.value_at_quantile(0.99),
                latency.max()
            ),
        ),
        ("accepted".into(), get(&o.ok).to_string()),
        (
            "rejected tokens".into(),
            format!(
                "{} (forged: {}, logged out: {})",
                stats.rejected_tokens,
                get(&o.forged_rejected),
                get(&o.revoked_rejected)
            ),
        ),
        (
            "unexpected errors".into(),
            get(&o.unexpected_errors).to_string(),
        ),
        (
            "validation cache hits".into(),
            percent(stats.validations.hit_ratio()),
        ),
        ("users  L1 / L2 hit".into(), tier_ratios(&stats.users)),
        ("roles  L1 / L2 hit".into(), tier_ratios(&stats.roles)),
        ("perms  L1 / L2 hit".into(), tier_ratios(&stats.permissions)),
        (
            "repository loads".into(),
            format!(
                "{} (users {}, perms {})",
                stats.loads(),
                stats.users.loads,
                stats.permissions.loads
            ),
        ),
        ("coalesced waits".into(), stats.coalesced().to_string()),
        ("L2 errors".into(), stats.l2_errors().to_string()),
        (
            "logout took effect".into(),
            confirmation(
                logout_ok,
                get(&o.logged_out_accepted_after),
                "accepted after logout",
            ),
        ),
        (
            "role change took effect".into(),
            confirmation(
                promotion_ok,
                get(&o.promoted_seen_without_admin_after),
                "old roles after the change",
            ),
        ),
    ];
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    println!("\n  {:-<1$}", "", width + 40);
    for (key, value) in rows {
        println!("  {key:<width$}  {value}");
    }
    println!("  {:-<1$}", "", width + 40);
    print_breaker(&stats);
}

fn backends(args: &Args) -> String {
    let cache = args
        .redis
        .as_deref()
        .map_or("memory (L1) + memory (L2)".to_owned(), |url| {
            format!("memory (L1) + redis {url}")
        });
    let repository = args
        .mongo
        .as_deref()
        .map_or("memory".to_owned(), |url| format!("mongodb {url}"));
    format!("cache: {cache}; repository: {repository}")
}

fn tier_ratios(tier: &TierStatsSnapshot) -> String {
    let lookups = (tier.l1_hits + tier.l2_hits + tier.misses).max(1) as f64;
    format!(
        "{} / {}",
        percent(tier.l1_hits as f64 / lookups),
        percent(tier.l2_hits as f64 / lookups)
    )
}

fn percent(ratio: f64) -> String {
    format!("{:.2} %", ratio * 100.0)
}

fn confirmation(verified: bool, violations: u64, what: &str) -> String {
    let mark = if verified && violations == 0 {
        "yes"
    } else {
        "NO"
    };
    format!("{mark} ({violations} {what})")
}

fn print_breaker(stats: &Stats) {
    if let Some(breaker) = stats.breaker {
        println!(
            "  L2 breaker: {:?}, {} failures, {} timeouts",
            breaker.state, breaker.failures, breaker.timeouts
        );
    }
}
