//! A key dropped from a remote key set ends what the facade remembered about the tokens it
//! signed: `AuthService` over a `RemoteJwks` verifier whose loopback key server (axum)
//! retires a key while the service holds warm answers and remembered validations for
//! tokens signed with it. Every verdict follows a completed `refresh_keys`; time only
//! bounds a hang.

// Test helpers outside `#[test]` functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth_support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_support::memory_repository;
use authcache::{AuthError, AuthService, CacheConfig, JwtVerifier, TokenError, TokenIssuer};
use authcache_jwt::test_keys;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A JWKS endpoint on loopback serving a chosen subset of the published test keys.
struct KeyServer {
    addr: SocketAddr,
    jwks: Arc<Mutex<String>>,
    task: JoinHandle<()>,
}

impl KeyServer {
    async fn start(kids: &[&str]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let jwks = Arc::new(Mutex::new(String::new()));
        let app = Router::new()
            .route("/jwks.json", get(serve_jwks))
            .with_state(Arc::clone(&jwks));
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let server = Self { addr, jwks, task };
        server.serve(kids);
        server
    }

    fn jwks_url(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    /// Publishes the public test keys named by `kids` from now on: a key rotation.
    fn serve(&self, kids: &[&str]) {
        let mut set = test_keys::jwks().unwrap();
        set.keys
            .retain(|k| kids.contains(&k.common.key_id.as_deref().unwrap()));
        assert_eq!(
            set.keys.len(),
            kids.len(),
            "every kid is a published test key"
        );
        *self.jwks.lock().unwrap() = serde_json::to_string(&set).unwrap();
    }
}

impl Drop for KeyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_jwks(State(jwks): State<Arc<Mutex<String>>>) -> impl IntoResponse {
    let body = jwks.lock().unwrap().clone();
    ([(header::CONTENT_TYPE, "application/json")], body)
}

/// The two RSA test keys the server publishes.
#[derive(Debug, Clone, Copy)]
enum Key {
    A,
    B,
}

impl Key {
    fn kid(self) -> &'static str {
        match self {
            Self::A => test_keys::RSA_A_KID,
            Self::B => test_keys::RSA_B_KID,
        }
    }

    /// `Bearer <token>` for `sub`, signed with this key under its own `kid`.
    fn bearer(self, sub: &str) -> String {
        let issuer = match self {
            Self::A => TokenIssuer::test_rs256(),
            Self::B => TokenIssuer::test_rs256_other(),
        };
        let token = issuer
            .kid(self.kid())
            .issue(sub, Duration::from_secs(600))
            .unwrap();
        format!("Bearer {token}")
    }
}

/// Gives a future 60 s, far beyond a loopback fetch, so a hang fails the test.
async fn bounded<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("did not finish within 60 s")
}

async fn service(verifier: JwtVerifier) -> AuthService {
    AuthService::builder()
        .verifier(verifier)
        .shared_repository(memory_repository().await)
        .cache(CacheConfig::memory())
        .prefix("keyrot")
        .build()
        .await
        .unwrap()
}

fn is_unknown_kid(result: &Result<authcache::Principal, AuthError>, kid: &str) -> bool {
    matches!(result, Err(AuthError::Token(TokenError::UnknownKeyId(k))) if k == kid)
}

#[tokio::test]
async fn a_key_dropped_from_the_remote_set_ends_its_tokens_warm_answers_at_once() {
    let server = KeyServer::start(&[Key::A.kid(), Key::B.kid()]).await;
    let verifier = bounded(JwtVerifier::from_jwks_url(server.jwks_url()))
        .await
        .unwrap();
    // The service's copy shares the remote set with this one.
    let auth = service(verifier.clone()).await;

    let by_a = Key::A.bearer("ada");
    let by_b = Key::B.bearer("bob");
    // Signed by A for nobody: a remembered validation without a warm answer (errors are
    // never warm), so the validation cache's own stamp is exercised apart from the warm one.
    let by_a_for_nobody = Key::A.bearer("nobody");

    assert_eq!(auth.authenticate(&by_a).await.unwrap().id(), "ada");
    let before = auth.stats();
    assert_eq!(auth.authenticate(&by_a).await.unwrap().id(), "ada");
    let warm = auth.stats();
    assert_eq!(
        warm.principals.l1_hits,
        before.principals.l1_hits + 1,
        "the second answer for A's token is warm"
    );
    assert_eq!(warm.validations.verified, before.validations.verified);
    assert_eq!(auth.authenticate(&by_b).await.unwrap().id(), "bob");
    for _ in 0..2 {
        assert_eq!(
            auth.authenticate(&by_a_for_nobody).await.unwrap_err(),
            AuthError::UnknownUser
        );
    }
    let remembered = auth.stats();
    assert!(
        remembered.validations.hits > warm.validations.hits,
        "the second look at the token for nobody skipped verification"
    );

    // The identity provider retires A; the service hears of it through the shared set.
    let version = verifier.key_set_version();
    server.serve(&[Key::B.kid()]);
    bounded(verifier.refresh_keys()).await.unwrap();
    assert!(verifier.key_set_version() > version, "A was dropped");

    let refused = bounded(auth.authenticate(&by_a)).await;
    assert!(
        is_unknown_kid(&refused, Key::A.kid()),
        "A's token, warm a moment ago: {refused:?}"
    );
    let refused = bounded(auth.authenticate(&by_a_for_nobody)).await;
    assert!(
        is_unknown_kid(&refused, Key::A.kid()),
        "A's token with only a remembered validation: {refused:?}"
    );
    let after = auth.stats();
    assert_eq!(
        after.principals.l1_hits, remembered.principals.l1_hits,
        "no warm answer served for A"
    );
    assert_eq!(
        after.validations.hits, remembered.validations.hits,
        "no remembered validation served for A"
    );

    // B is still in the set: verified again under the new version, then warm again.
    assert_eq!(bounded(auth.authenticate(&by_b)).await.unwrap().id(), "bob");
    assert_eq!(
        auth.stats().validations.verified,
        after.validations.verified + 1,
        "B's token was verified again under the new key set"
    );
    assert_eq!(bounded(auth.authenticate(&by_b)).await.unwrap().id(), "bob");
    assert_eq!(
        auth.stats().principals.l1_hits,
        after.principals.l1_hits + 1,
        "B's new answer is warm under the new version"
    );
}
