//! A real HTTP service on authcache: axum 0.8, the tower `AuthLayer`, Prometheus metrics.
//!
//! ```text
//! cargo run -p authcache --example axum_server --features axum,metrics
//! cargo run -p authcache --example axum_server --features axum,metrics,redis,mongodb -- \
//!     --redis redis://127.0.0.1:6379 --mongo mongodb://127.0.0.1:27017
//! RUST_LOG=authcache::refusal=debug cargo run -p authcache --example axum_server --features axum,metrics
//! cargo run -p authcache --example axum_server --features axum,metrics,redis,mongodb -- \
//!     --config authcache.toml
//! ```
//!
//! `--config` builds everything from an `AuthConfig` file (verifier, cache, repository: see
//! the README's *Configuration*) and seeds nothing: the users are the repository's, and the
//! tokens come from your issuer.
//!
//! Memory cache and memory users by default; `--redis` shares the cache and the
//! invalidations with every other instance on that Redis (start two on different
//! `--listen` ports and log out through one), `--mongo` reads users from MongoDB. The demo
//! users are seeded either way, and a token for each is printed at start-up with the
//! `curl` lines that use it. Routes: see `app.rs`.

mod app;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use authcache::{
    AuthConfig, AuthService, CacheConfig, JwtVerifier, MemoryUserRepository, TokenIssuer, User,
    UserRepository,
};
use clap::Parser;

/// HS256 secret of the demo issuer. A real service reads it from its secret store.
const TOKEN_SECRET: &[u8] = b"axum-server-demo-token-secret-32-bytes";
/// HMAC key for cache entries (required with a shared Redis: see the crate docs).
const CACHE_SIGNING_KEY: &[u8] = b"axum-server-demo-cache-signing-key-32";
/// Lifetime of the printed demo tokens.
const DEMO_TOKEN_LIFETIME: Duration = Duration::from_secs(3_600);
/// Roles of the demo, with their permissions.
const ROLES: [(&str, &[&str]); 2] = [
    ("admin", &["users:read", "users:write"]),
    ("viewer", &["users:read"]),
];

/// An HTTP service whose every request is authenticated by authcache.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Use Redis as the shared cache and invalidation bus (needs the `redis` feature).
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Use MongoDB as the user repository (needs the `mongodb` feature); demo users are
    /// upserted into it.
    #[arg(long, value_name = "URI")]
    mongo: Option<String>,
    /// MongoDB database for --mongo.
    #[arg(long, default_value = "authcache_axum_server")]
    db: String,
    /// Build from this configuration file (TOML) instead: no demo users, no demo tokens.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["redis", "mongo"])]
    config: Option<std::path::PathBuf>,
}

fn demo_users() -> [User; 2] {
    [
        User::new("ada", "ada@example.com", "Ada").with_roles(["admin"]),
        User::new("bob", "bob@example.com", "Bob").with_roles(["viewer"]),
    ]
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
    if let Some(path) = &args.config {
        let auth = AuthService::builder()
            .config(configuration(path)?)
            .build()
            .await
            .context("building the AuthService from the configuration")?;
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        println!("listening on http://{}", listener.local_addr()?);
        return serve(listener, auth).await;
    }
    let repository = repository(&args).await?;
    let cache = match &args.redis {
        Some(url) => CacheConfig::redis(url),
        None => CacheConfig::memory(),
    };
    let auth = AuthService::builder()
        .verifier(JwtVerifier::hs256(TOKEN_SECRET))
        .shared_repository(repository)
        .cache(cache)
        .signing_key(CACHE_SIGNING_KEY)
        .build()
        .await
        .context("building the AuthService")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr()?;
    print_demo_tokens(address)?;
    serve(listener, auth).await
}

async fn serve(listener: tokio::net::TcpListener, auth: AuthService) -> anyhow::Result<()> {
    axum::serve(listener, app::router(auth))
        .with_graceful_shutdown(async {
            // An error here means no signal handler: then run until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await
        .context("serving")
}

/// The file's settings (secrets are references in it: `secret_env`, `key_file`…).
fn configuration(path: &std::path::Path) -> anyhow::Result<AuthConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    AuthConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))
}

async fn repository(args: &Args) -> anyhow::Result<Arc<dyn UserRepository>> {
    if let Some(uri) = &args.mongo {
        return mongo_repository(uri, &args.db).await;
    }
    let mut repository = MemoryUserRepository::new();
    for (role, permissions) in ROLES {
        repository = repository.with_role(role, permissions.iter().copied())?;
    }
    for user in demo_users() {
        repository.upsert(&user).await?;
    }
    Ok(Arc::new(repository))
}

#[cfg(feature = "mongodb")]
async fn mongo_repository(uri: &str, db: &str) -> anyhow::Result<Arc<dyn UserRepository>> {
    let repository = authcache::MongoUserRepository::connect(uri, db)
        .await
        .with_context(|| format!("connecting to {uri}"))?;
    for (role, permissions) in ROLES {
        repository
            .upsert_role(role, permissions.iter().copied())
            .await?;
    }
    for user in demo_users() {
        repository.upsert(&user).await?;
    }
    Ok(Arc::new(repository))
}

#[cfg(not(feature = "mongodb"))]
async fn mongo_repository(_uri: &str, _db: &str) -> anyhow::Result<Arc<dyn UserRepository>> {
    anyhow::bail!(
        "--mongo needs the `mongodb` feature (run with `--features axum,metrics,mongodb`)"
    )
}

fn print_demo_tokens(address: SocketAddr) -> anyhow::Result<()> {
    let issuer = TokenIssuer::hs256(TOKEN_SECRET);
    println!("listening on http://{address}");
    for user in demo_users() {
        let token = issuer.issue(&user.id, DEMO_TOKEN_LIFETIME)?;
        println!("\n{} ({}):", user.id, user.roles.join(", "));
        println!("  TOKEN={token}");
        println!("  curl -H \"Authorization: Bearer $TOKEN\" http://{address}/me");
        println!("  curl -H \"Authorization: Bearer $TOKEN\" http://{address}/admin");
        println!("  curl -X POST -H \"Authorization: Bearer $TOKEN\" http://{address}/logout");
    }
    println!("\ncurl http://{address}/healthz");
    println!("curl http://{address}/metrics");
    Ok(())
}
