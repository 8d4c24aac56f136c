//! The sidecar under load: authcache-server on ephemeral loopback ports with the demo's
//! shape (in-process cache, in-memory users, an HS256 issuer) but the bench's own secrets,
//! and the one token every request carries.

use std::net::SocketAddr;
use std::time::Duration;

use authcache::{AuthService, CacheConfig, JwtVerifier, MemoryUserRepository, TokenIssuer, User};
use authcache_server::{Listeners, RunningServer, Server, ServerConfig};

/// The user every request is authenticated as.
pub(crate) const USER: &str = "ada";
/// The bench issuer's HS256 secret.
const TOKEN_SECRET: &[u8] = b"authcache-bench-proxy-token-secret!!";
/// The bench service's cache signing key.
const CACHE_SIGNING_KEY: &[u8] = b"authcache-bench-proxy-cache-key-32b!";
/// Far longer than any run.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3_600);

/// A serving authcache-server, its service (for its counters) and the token.
pub(crate) struct Sidecar {
    auth: AuthService,
    running: RunningServer,
    token: String,
}

impl Sidecar {
    /// Builds the service and serves it, in the current runtime.
    pub(crate) async fn start() -> Self {
        let repository = MemoryUserRepository::new()
            .with_role("admin", ["users:read", "users:write"])
            .unwrap()
            .with_user(User::new(USER, "ada@example.com", "Ada").with_roles(["admin"]))
            .unwrap();
        let auth = AuthService::builder()
            .verifier(JwtVerifier::hs256(TOKEN_SECRET))
            .repository(repository)
            .cache(CacheConfig::memory())
            .signing_key(CACHE_SIGNING_KEY)
            .build()
            .await
            .unwrap();
        let running = Server::new(auth.clone(), ServerConfig::default())
            .await
            .unwrap()
            .start(Listeners::ephemeral().await.unwrap());
        let token = TokenIssuer::hs256(TOKEN_SECRET)
            .issue(USER, TOKEN_LIFETIME)
            .unwrap();
        Self {
            auth,
            running,
            token,
        }
    }

    /// Where `/auth` is served.
    pub(crate) fn address(&self) -> SocketAddr {
        self.running.public_addr()
    }

    /// The `Authorization` value every request carries.
    pub(crate) fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// Repository loads so far: 1 when every decision but the first came from the cache.
    pub(crate) fn loads(&self) -> u64 {
        self.auth.stats().users.loads
    }
}
