//! Fixtures shared by the unit tests of this crate: a repository and a service over it,
//! a bounded poll, and (feature `tower`) one HTTP request through any service.

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
    eventually_async(what, || std::future::ready(probe())).await;
}

/// As [`eventually`], for a probe that has to wait for its answer (a read of the shared
/// cache, say).
pub(crate) async fn eventually_async<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !probe().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What a service answered one request, as the tests read it: the body as text.
#[cfg(feature = "tower")]
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: http::StatusCode,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: String,
}

#[cfg(feature = "tower")]
impl Answer {
    /// The `WWW-Authenticate` challenge, if any.
    pub(crate) fn challenge(&self) -> Option<&str> {
        self.headers
            .get(http::header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap())
    }
}

/// A response body the tests read as text: a bare tower service's `String`, an axum
/// router's `Body`.
#[cfg(feature = "tower")]
pub(crate) trait Text {
    /// The whole body (at most 1 KiB for a streamed one).
    async fn text(self) -> String;
}

#[cfg(feature = "tower")]
impl Text for String {
    async fn text(self) -> String {
        self
    }
}

#[cfg(feature = "axum")]
impl Text for ::axum::body::Body {
    async fn text(self) -> String {
        let bytes = ::axum::body::to_bytes(self, 1024).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}

/// One `GET path` through `service`, with one `Authorization` header per value.
#[cfg(feature = "tower")]
pub(crate) async fn call<S, B>(service: S, path: &str, authorization: &[&str]) -> Answer
where
    S: ::tower::Service<http::Request<String>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: Text,
{
    use ::tower::ServiceExt;

    let mut request = http::Request::get(path);
    for value in authorization {
        request = request.header(http::header::AUTHORIZATION, *value);
    }
    let response = service
        .oneshot(request.body(String::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.text().await,
    }
}
