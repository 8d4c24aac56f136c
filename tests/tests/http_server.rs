//! The `axum_server` example's router served over real HTTP on loopback ports and driven by
//! a real HTTP client (hyper-util): every kind of request gets its status and RFC 6750
//! challenge, refusals name no reason, `/healthz` and `/metrics` report the service, and a
//! logout through one server is refused by a second server sharing the same Redis.
// Test helpers outside `#[test]` functions fail loudly too.
#![allow(clippy::unwrap_used)]

#[path = "../../crates/authcache/examples/axum_server/app.rs"]
mod app;
mod auth_support;

use std::net::SocketAddr;
use std::sync::Arc;

use auth_support::{PROPAGATION, SECRET, another_bearer, bearer, memory_repository, service};
use authcache::{AuthService, CacheConfig, JwtVerifier, TokenIssuer, User};
use authcache_jwt::{Claims, unix_now};
use authcache_tests::process::eventually;
use authcache_tests::redis_server::RedisServer;
use authcache_users::{MockUserRepository, RepositoryError};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinHandle;

const INVALID_TOKEN: &str = r#"Bearer error="invalid_token""#;
const INSUFFICIENT_SCOPE: &str = r#"Bearer error="insufficient_scope""#;

/// The example's router on a free loopback port; stopped on drop.
struct Server {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(auth: AuthService) -> Self {
        // Bound before the task starts: connections queue from now on, so the first
        // request needs no readiness poll.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app::router(auth)).await.unwrap();
        });
        Self { address, task }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a server answered.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn challenge(&self) -> Option<&str> {
        self.headers
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// A real HTTP/1.1 client over TCP, as a browser or another service would be.
struct Http(Client<HttpConnector, Empty<Bytes>>);

impl Http {
    fn new() -> Self {
        Self(Client::builder(TokioExecutor::new()).build_http())
    }

    async fn send(
        &self,
        method: Method,
        server: &Server,
        path: &str,
        authorization: Option<&str>,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", server.address));
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        let response = self
            .0
            .request(request.body(Empty::new()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    async fn get(&self, server: &Server, path: &str, authorization: Option<&str>) -> Reply {
        self.send(Method::GET, server, path, authorization).await
    }

    async fn post(&self, server: &Server, path: &str, authorization: &str) -> Reply {
        self.send(Method::POST, server, path, Some(authorization))
            .await
    }
}

fn expired_bearer(sub: &str) -> String {
    // An hour past `exp`: far beyond the verifier's leeway.
    let mut claims = Claims::new(sub, unix_now() - 3_600);
    claims.iat = Some(unix_now() - 7_200);
    format!(
        "Bearer {}",
        TokenIssuer::hs256(SECRET).sign(&claims).unwrap()
    )
}

/// A refusal: the status and challenge given, an empty body, nothing of the token echoed.
fn assert_refused(reply: &Reply, status: StatusCode, challenge: Option<&str>, what: &str) {
    assert_eq!(reply.status, status, "{what}: {reply:?}");
    assert_eq!(reply.challenge(), challenge, "{what}");
    assert_eq!(reply.body, "", "{what}: a refusal names no reason");
}

async fn memory_server() -> (Server, AuthService) {
    let auth = service(CacheConfig::memory(), memory_repository().await).await;
    (Server::start(auth.clone()).await, auth)
}

#[tokio::test]
async fn valid_missing_malformed_expired_revoked_and_forbidden_requests() {
    let (server, auth) = memory_server().await;
    let http = Http::new();
    let ada = bearer("ada");

    let me = http.get(&server, "/me", Some(&ada)).await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    assert_eq!(me.json()["id"], "ada");
    assert_eq!(me.json()["permissions"][1], "users:write");

    let missing = http.get(&server, "/me", None).await;
    assert_refused(
        &missing,
        StatusCode::UNAUTHORIZED,
        Some("Bearer"),
        "missing",
    );

    for malformed in ["Bearer", "Bearer two words", "Bearer not-a-jwt"] {
        let reply = http.get(&server, "/me", Some(malformed)).await;
        assert_refused(
            &reply,
            StatusCode::UNAUTHORIZED,
            Some(INVALID_TOKEN),
            malformed,
        );
    }

    let expired = http.get(&server, "/me", Some(&expired_bearer("ada"))).await;
    assert_refused(
        &expired,
        StatusCode::UNAUTHORIZED,
        Some(INVALID_TOKEN),
        "expired",
    );

    let bob = bearer("bob");
    let forbidden = http.get(&server, "/admin", Some(&bob)).await;
    assert_refused(
        &forbidden,
        StatusCode::FORBIDDEN,
        Some(INSUFFICIENT_SCOPE),
        "bob /admin",
    );
    let admin = http.get(&server, "/admin", Some(&ada)).await;
    assert_eq!(admin.status, StatusCode::OK, "{admin:?}");

    let logout = http.post(&server, "/logout", &ada).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT, "{logout:?}");
    let revoked = http.get(&server, "/me", Some(&ada)).await;
    assert_refused(
        &revoked,
        StatusCode::UNAUTHORIZED,
        Some(INVALID_TOKEN),
        "revoked",
    );
    // Only that token: the user's other one still works.
    let other = http.get(&server, "/me", Some(&another_bearer("ada"))).await;
    assert_eq!(other.status, StatusCode::OK);

    // /me, bob's /admin (authenticated, then refused by the role layer), ada's /admin,
    // /logout, the other token.
    let stats = auth.stats();
    assert_eq!(stats.authenticated, 5);
    // "not-a-jwt", expired, revoked; "Bearer" and "Bearer two words" never reach it.
    assert_eq!(stats.rejected_tokens, 3);
}

#[tokio::test]
async fn a_repository_that_cannot_answer_is_503_without_a_challenge() {
    let mut repository = MockUserRepository::<User>::new();
    repository.expect_find_by_id().returning(|_| {
        Err(RepositoryError::Unavailable(
            "mongodb://10.0.0.5 down".into(),
        ))
    });
    let auth = AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .repository(repository)
        .build()
        .await
        .unwrap();
    let server = Server::start(auth.clone()).await;
    let reply = Http::new().get(&server, "/me", Some(&bearer("ada"))).await;
    assert_refused(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        "repository down",
    );
    assert_eq!(auth.stats().unavailable, 1);
}

#[tokio::test]
async fn metrics_are_prometheus_text_of_this_service() {
    let (server, _auth) = memory_server().await;
    let http = Http::new();
    let ada = bearer("ada");
    for _ in 0..2 {
        assert_eq!(
            http.get(&server, "/me", Some(&ada)).await.status,
            StatusCode::OK
        );
    }
    let forged = auth_support::forged("ada");
    assert_eq!(
        http.get(&server, "/me", Some(&forged)).await.status,
        StatusCode::UNAUTHORIZED
    );

    let metrics = http.get(&server, "/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let lines: Vec<&str> = metrics.body.lines().collect();
    for expected in [
        r#"authcache_authentications_total{outcome="authenticated"} 2"#,
        r#"authcache_authentications_total{outcome="rejected_token"} 1"#,
        r#"authcache_token_validations_total{result="cached"} 1"#,
        r#"authcache_loads_total{kind="users"} 1"#,
        "# HELP authcache_authentications_total Authentications by outcome.",
    ] {
        assert!(
            lines.contains(&expected),
            "no {expected:?} in\n{}",
            metrics.body
        );
    }
}

/// Two servers on one Redis, each with its own `AuthService`.
async fn two_servers(redis: &RedisServer) -> [(Server, AuthService); 2] {
    let repository = memory_repository().await;
    let mut servers = Vec::new();
    for _ in 0..2 {
        let auth = service(CacheConfig::redis(redis.url()), Arc::clone(&repository)).await;
        servers.push((Server::start(auth.clone()).await, auth));
    }
    servers.try_into().ok().unwrap()
}

/// Until `server` refuses `token` as revoked, bounded by the bus delay allowance.
async fn refused_eventually(http: &Http, server: &Server, token: &str, what: &str) {
    eventually(PROPAGATION, what, || async {
        http.get(server, "/me", Some(token)).await.status == StatusCode::UNAUTHORIZED
    })
    .await;
    let reply = http.get(server, "/me", Some(token)).await;
    assert_refused(&reply, StatusCode::UNAUTHORIZED, Some(INVALID_TOKEN), what);
}

#[tokio::test]
async fn a_logout_through_one_server_is_refused_by_another_sharing_redis() {
    let redis = RedisServer::start();
    let [(first, _), (second, second_auth)] = two_servers(&redis).await;
    let http = Http::new();
    let ada = bearer("ada");
    // The second server has verified the token and cached ada before the logout.
    for _ in 0..2 {
        assert_eq!(
            http.get(&second, "/me", Some(&ada)).await.status,
            StatusCode::OK
        );
    }

    let logout = http.post(&first, "/logout", &ada).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT, "{logout:?}");
    let here = http.get(&first, "/me", Some(&ada)).await;
    assert_refused(
        &here,
        StatusCode::UNAUTHORIZED,
        Some(INVALID_TOKEN),
        "first server",
    );
    refused_eventually(
        &http,
        &second,
        &ada,
        "the second server to refuse the token",
    )
    .await;
    assert!(second_auth.stats().rejected_tokens >= 1);

    // Only that token was revoked.
    let other = http.get(&second, "/me", Some(&another_bearer("ada"))).await;
    assert_eq!(other.status, StatusCode::OK);
}

#[tokio::test]
async fn a_logout_all_through_one_server_is_refused_by_another_sharing_redis() {
    let redis = RedisServer::start();
    let [(first, _), (second, _)] = two_servers(&redis).await;
    let http = Http::new();
    let (ada, ada_elsewhere) = (bearer("ada"), another_bearer("ada"));
    assert_eq!(
        http.get(&second, "/me", Some(&ada_elsewhere)).await.status,
        StatusCode::OK
    );

    let logout = http.post(&first, "/logout-all", &ada).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT, "{logout:?}");
    refused_eventually(
        &http,
        &second,
        &ada_elsewhere,
        "the second server to refuse ada",
    )
    .await;
    // Another user is untouched.
    assert_eq!(
        http.get(&second, "/me", Some(&bearer("bob"))).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn healthz_reports_the_breaker_and_the_bus() {
    let redis = RedisServer::start();
    let auth = service(CacheConfig::redis(redis.url()), memory_repository().await).await;
    let server = Server::start(auth).await;
    let health = Http::new().get(&server, "/healthz", None).await;
    assert_eq!(health.status, StatusCode::OK);
    let health = health.json();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["breaker"], "closed", "{health}");
    assert_eq!(health["bus"], "subscribed", "{health}");

    let (memory, _) = memory_server().await;
    let health = Http::new().get(&memory, "/healthz", None).await.json();
    assert_eq!(
        (health["status"].as_str(), health["bus"].as_str()),
        (Some("ok"), Some("none"))
    );
}
