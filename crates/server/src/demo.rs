//! `authcache-server --demo`: a sidecar on the embedded defaults (in-process cache,
//! in-memory users, an HS256 demo issuer), with a valid token, a revoked one and the `curl`
//! lines that use them printed at start-up — the README's first command, for the sidecar.
//! Nothing of it is fit for production: the secrets are printed in this file.

use std::net::SocketAddr;
use std::time::Duration;

use authcache::{AuthService, CacheConfig, JwtVerifier, MemoryUserRepository, TokenIssuer, User};

/// The demo issuer's HS256 secret.
const TOKEN_SECRET: &[u8] = b"authcache-server-demo-token-secret!!";
/// The demo's cache signing key.
const CACHE_SIGNING_KEY: &[u8] = b"authcache-server-demo-cache-key-32b!";
/// Lifetime of the printed tokens.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3_600);

/// The demo's service: `ada` (admin: users:read, users:write) and `bob` (viewer:
/// users:read) in memory.
///
/// # Errors
/// Only if the embedded defaults stopped building (a bug).
pub async fn service() -> anyhow::Result<AuthService> {
    let repository = MemoryUserRepository::new()
        .with_role("admin", ["users:read", "users:write"])?
        .with_role("viewer", ["users:read"])?
        .with_user(User::new("ada", "ada@example.com", "Ada").with_roles(["admin"]))?
        .with_user(User::new("bob", "bob@example.com", "Bob").with_roles(["viewer"]))?;
    Ok(AuthService::builder()
        .verifier(JwtVerifier::hs256(TOKEN_SECRET))
        .repository(repository)
        .cache(CacheConfig::memory())
        .signing_key(CACHE_SIGNING_KEY)
        .build()
        .await?)
}

/// Issues the demo tokens (one of them logged out) and returns the text to print.
///
/// # Errors
/// When a token cannot be issued or revoked (a bug in the defaults).
pub async fn introduction(
    auth: &AuthService,
    public: SocketAddr,
    admin: Option<SocketAddr>,
) -> anyhow::Result<String> {
    let issuer = TokenIssuer::hs256(TOKEN_SECRET);
    let ada = issuer.issue("ada", TOKEN_LIFETIME)?;
    let bob = issuer.issue("bob", TOKEN_LIFETIME)?;
    let revoked = issuer.issue("bob", TOKEN_LIFETIME)?;
    auth.logout(&revoked).await?;
    let mut text = format!(
        "authcache-server --demo: in-process cache, in-memory users; /auth on http://{public}\n\n\
         ada (admin):      ADA={ada}\n\
         bob (viewer):     BOB={bob}\n\
         bob, logged out:  REVOKED={revoked}\n\n\
         curl -i -H \"Authorization: Bearer $ADA\" http://{public}/auth                 # 200, X-Auth-Request-User: ada\n\
         curl -i -H \"Authorization: Bearer $BOB\" 'http://{public}/auth?role=admin'    # 403 insufficient_scope\n\
         curl -i -H \"Authorization: Bearer $REVOKED\" http://{public}/auth             # 401 invalid_token\n\
         curl http://{public}/ready\n\
         curl http://{public}/metrics\n"
    );
    if let Some(admin) = admin {
        text.push_str(&format!(
            "curl -i -X POST -H \"Authorization: Bearer $ADA\" http://{admin}/logout         # 204; then /auth answers 401\n\
             curl -i -X POST http://{admin}/admin/logout-all/bob                             # every token of bob\n"
        ));
    }
    Ok(text)
}
