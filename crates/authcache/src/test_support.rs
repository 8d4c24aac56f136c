//! Fixtures shared by the unit tests of this crate.

use std::time::Duration;

use authcache_users::{MemoryUserRepository, User};

use crate::{AuthService, JwtVerifier};

/// Roles `admin` (`users:write`, `users:read`) and `viewer` (`users:read`); users `ada`
/// (admin), `bob` (viewer) and `eve` (disabled).
pub(crate) fn repository() -> MemoryUserRepository {
    MemoryUserRepository::new()
        .with_role("admin", ["users:write", "users:read"])
        .unwrap()
        .with_role("viewer", ["users:read"])
        .unwrap()
        .with_user(User::new("ada", "ada@example.com", "Ada").with_roles(["admin"]))
        .unwrap()
        .with_user(User::new("bob", "bob@example.com", "Bob").with_roles(["viewer"]))
        .unwrap()
        .with_user(User::new("eve", "eve@example.com", "Eve").with_disabled(true))
        .unwrap()
}

/// A service on [`repository`] that accepts `TokenIssuer::test_hs256` tokens.
#[cfg_attr(not(any(feature = "axum", feature = "metrics")), allow(dead_code))]
pub(crate) async fn service() -> AuthService {
    AuthService::builder()
        .verifier(JwtVerifier::test_hs256())
        .repository(repository())
        .build()
        .await
        .unwrap()
}

/// Waits until `probe` holds, polling every 5 ms; fails the test after 10 s.
pub(crate) async fn eventually<F: FnMut() -> bool>(what: &str, mut probe: F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !probe() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
