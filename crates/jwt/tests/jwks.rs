//! Remote key sets against a real HTTP server on loopback that serves a JWK set and an
//! OpenID configuration, counts requests, rotates keys, fails, hangs and goes away.
//! Assertions are on counts and outcomes, never on elapsed time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers: a failure here is a test failure.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authcache_jwt::{
    JwtVerifier, MAX_DOCUMENT_SIZE, RemoteJwks, TokenError, TokenIssuer, fingerprint, test_keys,
};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// What the key server answers on `/jwks.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Serve,
    Fail,
    Hang,
    /// A body over the size limit, with a `Content-Length`.
    Huge,
    /// A body over the size limit, streamed without a length.
    HugeStreamed,
}

struct Shared {
    base: String,
    jwks: Mutex<String>,
    mode: Mutex<Mode>,
    /// What the OpenID configuration says the issuer is (default: the server itself).
    claimed_issuer: Mutex<Option<String>>,
    jwks_hits: AtomicU64,
    discovery_hits: AtomicU64,
}

struct KeyServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl KeyServer {
    async fn start(kids: &[&str]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            base: format!("http://{addr}"),
            jwks: Mutex::new(String::new()),
            mode: Mutex::new(Mode::Serve),
            claimed_issuer: Mutex::new(None),
            jwks_hits: AtomicU64::new(0),
            discovery_hits: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/jwks.json", get(jwks))
            .route("/.well-known/openid-configuration", get(discovery))
            .route(
                "/moved",
                get(|| async { Redirect::permanent("/jwks.json") }),
            )
            .route(
                "/elsewhere",
                get(|| async { Redirect::temporary("http://jwks.example.invalid/jwks.json") }),
            )
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let server = Self { addr, shared, task };
        server.serve(kids);
        server
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.shared.base)
    }

    fn jwks_url(&self) -> String {
        self.url("/jwks.json")
    }

    /// Publishes the public test keys named by `kids`: a key rotation.
    fn serve(&self, kids: &[&str]) {
        let mut set = test_keys::jwks().unwrap();
        set.keys
            .retain(|k| kids.contains(&k.common.key_id.as_deref().unwrap()));
        *self.shared.jwks.lock().unwrap() = serde_json::to_string(&set).unwrap();
    }

    fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    fn jwks_hits(&self) -> u64 {
        self.shared.jwks_hits.load(Ordering::SeqCst)
    }

    fn discovery_hits(&self) -> u64 {
        self.shared.discovery_hits.load(Ordering::SeqCst)
    }

    /// Closes the listener: new connections are refused (the client keeps none open).
    async fn stop(&self) {
        self.task.abort();
        while !self.task.is_finished() {
            tokio::task::yield_now().await;
        }
    }
}

impl Drop for KeyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    shared.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let mode = *shared.mode.lock().unwrap();
    match mode {
        Mode::Serve => {
            let body = shared.jwks.lock().unwrap().clone();
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Mode::Fail => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Mode::Hang => std::future::pending().await,
        Mode::Huge => vec![b' '; MAX_DOCUMENT_SIZE + 1].into_response(),
        Mode::HugeStreamed => {
            let chunks = (0..=MAX_DOCUMENT_SIZE / 65_536)
                .map(|_| Ok::<_, std::io::Error>(vec![b' '; 65_536]));
            Body::from_stream(futures::stream::iter(chunks)).into_response()
        }
    }
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Response {
    shared.discovery_hits.fetch_add(1, Ordering::SeqCst);
    let issuer = shared
        .claimed_issuer
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_else(|| shared.base.clone());
    let document = serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{}/jwks.json", shared.base),
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.to_string(),
    )
        .into_response()
}

fn issuer_for(kid: &str) -> TokenIssuer {
    match kid {
        test_keys::RSA_B_KID => TokenIssuer::test_rs256_other(),
        test_keys::EC_P256_KID => TokenIssuer::test_es256(),
        _ => TokenIssuer::test_rs256(),
    }
    .kid(kid)
}

fn token(kid: &str) -> String {
    issuer_for(kid)
        .issue("user-1", Duration::from_secs(600))
        .unwrap()
}

/// A flood token: a genuine token's claims and signature under a header naming `kid`, as an
/// attacker would send them (the `kid` is looked up before any signature check).
fn forged_kid_token(genuine: &str, kid: &str) -> String {
    let (_, rest) = genuine.split_once('.').unwrap();
    let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": kid});
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
}

fn is_unknown_kid(result: &Result<authcache_jwt::Claims, TokenError>) -> bool {
    matches!(result, Err(TokenError::UnknownKeyId(_)))
}

/// Gives a future 60 s, far beyond any fetch timeout used here, so a hang fails the test.
async fn bounded<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("did not finish within 60 s")
}

#[tokio::test]
async fn a_token_with_a_rotated_in_kid_is_accepted_after_one_refetch() {
    let server = KeyServer::start(&[test_keys::RSA_A_KID]).await;
    let verifier = JwtVerifier::from_jwks_url(server.jwks_url()).await.unwrap();
    let clone = verifier.clone().leeway(Duration::from_secs(5));
    assert_eq!(
        verifier.verify(token(test_keys::RSA_A_KID)).unwrap().sub,
        "user-1"
    );
    let rotated = token(test_keys::RSA_B_KID);
    assert!(is_unknown_kid(&verifier.verify(&rotated)));

    server.serve(&[test_keys::RSA_A_KID, test_keys::RSA_B_KID]);
    assert_eq!(
        bounded(verifier.verify_async(&rotated)).await.unwrap().sub,
        "user-1"
    );
    assert_eq!(server.jwks_hits(), 2, "the initial fetch and one refetch");
    assert!(clone.verify(&rotated).is_ok(), "clones share the key set");
    assert!(bounded(verifier.verify_async(&rotated)).await.is_ok());
    assert_eq!(server.jwks_hits(), 2, "a known kid fetches nothing");

    let stats = verifier.jwks_stats().unwrap();
    assert_eq!(
        (stats.fetches, stats.unknown_kid_fetches, stats.keys),
        (2, 1, 2)
    );
    assert_eq!((stats.fetch_failures, stats.unknown_kid_rejections), (0, 0));
}

#[tokio::test]
async fn ten_thousand_tokens_with_random_kids_cause_one_fetch_per_interval() {
    let server = KeyServer::start(&[test_keys::EC_P256_KID]).await;
    // An interval longer than the test, so "one per interval" is exactly one.
    let verifier = RemoteJwks::url(server.jwks_url())
        .min_refresh_interval(Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    let genuine = token(test_keys::EC_P256_KID);
    let forged = |i: u32| forged_kid_token(&genuine, &fingerprint(i.to_string())[..16]);

    // A burst: 9,000 at once (they queue behind the one fetch and see its result) ...
    let mut tasks = JoinSet::new();
    for i in 0..9_000 {
        let (verifier, token) = (verifier.clone(), forged(i));
        tasks.spawn(async move { verifier.verify_async(&token).await });
    }
    let mut rejected = 0;
    while let Some(result) = bounded(tasks.join_next()).await {
        assert!(is_unknown_kid(&result.unwrap()));
        rejected += 1;
    }
    // ... then 1,000 one after another (each finds no fetch in flight: the rate limit holds).
    for i in 9_000..10_000 {
        assert!(is_unknown_kid(
            &bounded(verifier.verify_async(forged(i))).await
        ));
        rejected += 1;
    }
    assert_eq!(rejected, 10_000);
    assert_eq!(
        server.jwks_hits(),
        2,
        "the initial fetch and one for the flood"
    );
    let stats = verifier.jwks_stats().unwrap();
    assert_eq!((stats.fetches, stats.unknown_kid_fetches), (2, 1));
    assert_eq!(stats.unknown_kid_rejections, 10_000);
    assert!(
        verifier.verify(&genuine).is_ok(),
        "the genuine key still works"
    );
}

#[tokio::test]
async fn an_oidc_issuer_is_discovered_and_its_iss_is_then_required() {
    let server = KeyServer::start(&[test_keys::RSA_A_KID]).await;
    let issuer = server.url("");
    let verifier = JwtVerifier::from_oidc_issuer(&issuer).await.unwrap();
    assert_eq!((server.discovery_hits(), server.jwks_hits()), (1, 1));

    let good = issuer_for(test_keys::RSA_A_KID).issuer(&issuer);
    let claims = verifier
        .verify(good.issue("user-1", Duration::from_secs(60)).unwrap())
        .unwrap();
    assert_eq!(claims.iss.as_deref(), Some(issuer.as_str()));
    let other = issuer_for(test_keys::RSA_A_KID).issuer("https://other.example.com");
    assert_eq!(
        verifier.verify(other.issue("user-1", Duration::from_secs(60)).unwrap()),
        Err(TokenError::WrongIssuer)
    );
    assert_eq!(
        verifier.verify(token(test_keys::RSA_A_KID)),
        Err(TokenError::MissingClaim("iss"))
    );
}

#[tokio::test]
async fn a_discovery_document_naming_another_issuer_is_refused() {
    let server = KeyServer::start(&[test_keys::RSA_A_KID]).await;
    *server.shared.claimed_issuer.lock().unwrap() = Some("https://evil.example.com".into());
    let error = JwtVerifier::from_oidc_issuer(server.url(""))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, TokenError::KeySetUnavailable(reason) if reason.contains("evil.example.com")),
        "{error}"
    );
    assert_eq!(
        server.jwks_hits(),
        0,
        "no keys are fetched from a mismatched issuer"
    );
}

#[tokio::test]
async fn the_key_server_down_keeps_the_existing_keys_working_and_counts_the_failure() {
    let server = KeyServer::start(&[test_keys::RSA_A_KID]).await;
    let verifier = RemoteJwks::url(server.jwks_url())
        .min_refresh_interval(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let known = token(test_keys::RSA_A_KID);
    let new_kid = token(test_keys::RSA_B_KID);

    server.set_mode(Mode::Fail);
    let error = bounded(verifier.refresh_keys()).await.unwrap_err();
    assert_eq!(
        error,
        TokenError::KeySetUnavailable("HTTP 500 Internal Server Error".into())
    );
    assert!(is_unknown_kid(
        &bounded(verifier.verify_async(&new_kid)).await
    ));
    assert!(bounded(verifier.verify_async(&known)).await.is_ok());

    server.stop().await;
    assert!(bounded(verifier.refresh_keys()).await.is_err());
    assert!(is_unknown_kid(
        &bounded(verifier.verify_async(&new_kid)).await
    ));
    assert!(bounded(verifier.verify_async(&known)).await.is_ok());

    let stats = verifier.jwks_stats().unwrap();
    assert_eq!((stats.fetches, stats.fetch_failures, stats.keys), (5, 4, 1));
    assert_eq!(stats.unknown_kid_rejections, 2);
}

#[tokio::test]
async fn a_hung_key_server_costs_one_fetch_timeout_and_the_keys_stay() {
    let server = KeyServer::start(&[test_keys::RSA_A_KID]).await;
    let verifier = RemoteJwks::url(server.jwks_url())
        // Far beyond a loopback fetch on a starved machine (the first, healthy one runs
        // under it too); each of the two hung fetches below costs it once.
        .fetch_timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    server.set_mode(Mode::Hang);
    let result = bounded(verifier.verify_async(token(test_keys::RSA_B_KID))).await;
    assert!(is_unknown_kid(&result));
    assert_eq!(
        bounded(verifier.refresh_keys()).await,
        Err(TokenError::KeySetUnavailable("timed out".into()))
    );
    assert!(verifier.verify(token(test_keys::RSA_A_KID)).is_ok());
    let stats = verifier.jwks_stats().unwrap();
    assert_eq!((stats.fetches, stats.fetch_failures), (3, 2));
}

#[tokio::test]
async fn the_periodic_refresh_picks_up_a_rotation_without_any_token_asking() {
    let server = KeyServer::start(&[test_keys::RSA_A_KID]).await;
    let verifier = RemoteJwks::url(server.jwks_url())
        .refresh_interval(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    let rotated = token(test_keys::RSA_B_KID);
    server.serve(&[test_keys::RSA_B_KID]);

    // Bounded poll on the effect; only the synchronous path, which never fetches.
    let mut picked_up = false;
    for _ in 0..400 {
        if verifier.verify(&rotated).is_ok() {
            picked_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(picked_up, "the rotation was not picked up within 20 s");
    assert!(
        is_unknown_kid(&verifier.verify(token(test_keys::RSA_A_KID))),
        "retired key gone"
    );
    let stats = verifier.jwks_stats().unwrap();
    assert!(stats.fetches >= 2);
    assert_eq!(stats.unknown_kid_fetches, 0);
}

#[tokio::test]
async fn oversized_answers_are_refused_and_counted() {
    let server = KeyServer::start(&[test_keys::RSA_A_KID]).await;
    let verifier = JwtVerifier::from_jwks_url(server.jwks_url()).await.unwrap();
    for mode in [Mode::Huge, Mode::HugeStreamed] {
        server.set_mode(mode);
        let error = bounded(verifier.refresh_keys()).await.unwrap_err();
        assert!(error.to_string().contains("is over"), "{mode:?}: {error}");
    }
    assert_eq!(verifier.jwks_stats().unwrap().fetch_failures, 2);
    assert!(verifier.verify(token(test_keys::RSA_A_KID)).is_ok());
}

#[tokio::test]
async fn redirects_are_followed_only_where_the_url_rule_allows() {
    let server = KeyServer::start(&[test_keys::RSA_A_KID]).await;
    let verifier = JwtVerifier::from_jwks_url(server.url("/moved"))
        .await
        .unwrap();
    assert!(verifier.verify(token(test_keys::RSA_A_KID)).is_ok());

    // To plain http on a non-loopback host: refused before any connection is made.
    let error = JwtVerifier::from_jwks_url(server.url("/elsewhere"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            TokenError::RedirectRefused { location, reason }
                if location == "http://jwks.example.invalid/jwks.json"
                    && reason.contains("plain http")
        ),
        "{error}"
    );
    assert!(error.is_configuration());
}

#[tokio::test]
async fn dropping_a_kid_moves_the_key_set_version_and_its_tokens_are_refused() {
    let server = KeyServer::start(&[test_keys::RSA_A_KID, test_keys::RSA_B_KID]).await;
    let verifier = JwtVerifier::from_jwks_url(server.jwks_url()).await.unwrap();
    let signed_by_a = token(test_keys::RSA_A_KID);
    assert!(verifier.verify(&signed_by_a).is_ok());
    let before = verifier.key_set_version();

    // A rotation that only adds a key loses nothing.
    server.serve(&[
        test_keys::RSA_A_KID,
        test_keys::RSA_B_KID,
        test_keys::EC_P256_KID,
    ]);
    bounded(verifier.refresh_keys()).await.unwrap();
    assert_eq!(verifier.key_set_version(), before);

    server.serve(&[test_keys::RSA_B_KID, test_keys::EC_P256_KID]);
    bounded(verifier.refresh_keys()).await.unwrap();
    assert!(verifier.key_set_version() > before, "A was dropped");
    assert!(is_unknown_kid(&verifier.verify(&signed_by_a)));
    assert!(is_unknown_kid(
        &bounded(verifier.verify_async(&signed_by_a)).await
    ));
    assert!(verifier.verify(token(test_keys::RSA_B_KID)).is_ok());
}

#[tokio::test]
async fn plain_http_needs_a_loopback_host_or_an_explicit_opt_in() {
    let error = JwtVerifier::from_jwks_url("http://jwks.example.invalid/jwks.json")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, TokenError::InvalidKey(r) if r.contains("plain http")),
        "{error}"
    );
    let error = JwtVerifier::from_oidc_issuer("http://id.example.invalid")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, TokenError::InvalidKey(r) if r.contains("plain http")),
        "{error}"
    );
    for zero in [
        RemoteJwks::url("https://id.example.invalid/jwks").refresh_interval(Duration::ZERO),
        RemoteJwks::url("https://id.example.invalid/jwks").fetch_timeout(Duration::ZERO),
    ] {
        assert!(zero.build().await.unwrap_err().is_configuration());
    }
}

#[tokio::test]
async fn https_is_really_tls_a_plain_server_fails_the_handshake() {
    let server = KeyServer::start(&[test_keys::RSA_A_KID]).await;
    let url = format!("https://{}/jwks.json", server.addr);
    let error = bounded(JwtVerifier::from_jwks_url(url)).await.unwrap_err();
    assert!(matches!(error, TokenError::KeySetUnavailable(_)), "{error}");
    // Only plain requests reach the handler; the TLS client hello did not.
    assert_eq!(server.jwks_hits(), 0);
}
