//! The sidecar (`authcache-server`) behind the real proxies, on the real backends: nginx's
//! `auth_request` and Caddy's `forward_auth` in front of the echo upstream, asking a sidecar
//! built on Redis (and SecantusDB where the system of record matters).
//!
//! It proves, end to end: an allowed request reaches the upstream carrying the identity the
//! sidecar answered; a token revoked on the sidecar's admin listener is refused with its
//! `invalid_token` challenge passed through by the proxy, and never reaches the upstream; a
//! missing role is a 403 `insufficient_scope`; a logout on one sidecar is refused through
//! another sidecar's nginx within the bus delay; a role changed straight in MongoDB (never
//! through authcache) opens and closes the admin route through the watcher; an identity
//! provider's back-channel logout posted to one sidecar refuses the user's earlier tokens on
//! another, while a replayed logout token or one signed by another key is refused and
//! revokes nothing. Every wait is a bounded poll on an effect.
// Test helpers outside `#[test]` functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod auth_support;

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_support::{
    PROPAGATION, SECRET, SIGNING_KEY, another_bearer, bearer, memory_repository, patient_breaker,
    seed_mongo, service, wait_subscribed,
};
use authcache::{
    Algorithm, AuthService, CacheConfig, JwtVerifier, MongoUserRepository, RepositoryConfig,
    TokenIssuer, UserRepository, VerifierConfig, WatcherState,
};
use authcache_jwt::test_keys::RSA_A_PUBLIC_PEM;
use authcache_server::backchannel::LOGOUT_EVENT;
use authcache_server::{Listeners, RunningServer, Server, ServerConfig};
use authcache_tests::mongo_server::MongoServer;
use authcache_tests::process::eventually;
use authcache_tests::proxy_server::{
    CaddyServer, EchoUpstream, NginxServer, ProxyReply, get, request,
};
use authcache_tests::redis_server::RedisServer;
use axum::http::{Method, Request};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mongodb::bson::{Document, doc};
use serde_json::json;

const INVALID_TOKEN: &str = r#"Bearer error="invalid_token""#;
const INSUFFICIENT_SCOPE: &str = r#"Bearer error="insufficient_scope""#;

/// Bound on a raw MongoDB write reaching the sidecar: the change stream wakes on the write,
/// the invalidation is one Redis round trip — milliseconds, unless the machine is starved.
const WATCH_BOUND: Duration = Duration::from_secs(20);
/// Bound on the watcher opening its change stream.
const WATCHER_START: Duration = Duration::from_secs(60);

/// The test identity provider: its `iss`, and the `aud` it gives this client.
const IDP_ISSUER: &str = "https://idp.test/realms/main";
const CLIENT_ID: &str = "authcache-sidecar";

/// One sidecar on ephemeral loopback ports, serving until dropped.
struct Sidecar {
    running: RunningServer,
}

impl Sidecar {
    async fn start(auth: AuthService, config: ServerConfig) -> Self {
        let server = Server::new(auth, config).await.unwrap();
        let running = server.start(Listeners::ephemeral().await.unwrap());
        Self { running }
    }

    /// The public listener: what the proxies ask.
    fn public(&self) -> SocketAddr {
        self.running.public_addr()
    }

    /// Asks `/auth` directly, as a proxy would, with `bearer`.
    async fn auth(&self, bearer: &str) -> ProxyReply {
        let url = format!("http://{}/auth", self.public());
        get(&url, &[("Authorization", bearer)]).await
    }

    /// `POST /logout` on the admin listener with `bearer`.
    async fn logout(&self, bearer: &str) -> ProxyReply {
        let admin = self.running.admin_addr().expect("an admin listener");
        let url = format!("http://{admin}/logout");
        request(Method::POST, &url, &[("Authorization", bearer)]).await
    }

    /// `POST /backchannel-logout` with the form `logout_token=<token>`.
    async fn backchannel_logout(&self, token: &str) -> ProxyReply {
        let url = format!("http://{}/backchannel-logout", self.public());
        // A compact JWT is base64url and dots: nothing in it needs form encoding.
        post_form(&url, format!("logout_token={token}")).await
    }
}

/// A sidecar on Redis (`redis_url`) over `repository`, with `config`.
async fn sidecar_on(
    redis_url: &str,
    repository: &Arc<dyn UserRepository>,
    config: ServerConfig,
) -> Sidecar {
    let auth = service(CacheConfig::redis(redis_url), Arc::clone(repository)).await;
    Sidecar::start(auth, config).await
}

/// `POST url` with a form body (the kit's client sends empty bodies only).
async fn post_form(url: &str, body: String) -> ProxyReply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::post(url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let exchange = async {
        let response = client.request(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        ProxyReply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .unwrap_or_else(|_| panic!("POST {url}: no answer within 30 s"))
}

/// Asserts a refusal: `status` with `challenge`, and nothing more reached the upstream.
fn assert_refused(
    reply: &ProxyReply,
    status: u16,
    challenge: &str,
    upstream: &EchoUpstream,
    hits: u64,
) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(
        reply.header("WWW-Authenticate"),
        Some(challenge),
        "{reply:?}"
    );
    assert_eq!(
        upstream.hits(),
        hits,
        "a refused request reached the upstream"
    );
}

/// The same scenario through any proxy in front of `sidecar` and `upstream` (`url` names a
/// path on the proxy): identity through, missing role, revoked token, missing token.
async fn the_proxy_enforces_the_sidecars_decisions(
    url: impl Fn(&str) -> String,
    sidecar: &Sidecar,
    upstream: &EchoUpstream,
) {
    let (bob, ada) = (bearer("bob"), bearer("ada"));

    let reply = get(&url("/hello"), &[("Authorization", &bob)]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let echoed = reply.echoed();
    assert_eq!(echoed.path, "/hello");
    assert_eq!(echoed.header("x-auth-request-user"), Some("bob"));
    assert_eq!(
        echoed.header("x-auth-request-email"),
        Some("bob@example.com")
    );
    assert_eq!(echoed.header("x-auth-request-groups"), Some("viewer"));
    assert_eq!(
        echoed.header("x-auth-request-permissions"),
        Some("users:read")
    );

    let hits = upstream.hits();
    let reply = get(&url("/admin/users"), &[("Authorization", &bob)]).await;
    assert_refused(&reply, 403, INSUFFICIENT_SCOPE, upstream, hits);

    let reply = get(&url("/admin/users"), &[("Authorization", &ada)]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let echoed = reply.echoed();
    assert_eq!(echoed.header("x-auth-request-user"), Some("ada"));
    assert_eq!(echoed.header("x-auth-request-groups"), Some("admin"));

    assert_eq!(sidecar.logout(&bob).await.status, 204, "revoked everywhere");
    let hits = upstream.hits();
    let reply = get(&url("/hello"), &[("Authorization", &bob)]).await;
    assert_refused(&reply, 401, INVALID_TOKEN, upstream, hits);
    let reply = get(&url("/hello"), &[]).await;
    assert_refused(&reply, 401, "Bearer", upstream, hits);

    // Only that token: bob's other one still goes through.
    let reply = get(&url("/hello"), &[("Authorization", &another_bearer("bob"))]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.echoed().header("x-auth-request-user"), Some("bob"));
}

/// A logout token from the test identity provider (`issuer`'s key) for `sub`, issued now
/// (to the microsecond, as providers that send fractional `iat` do).
fn logout_token(issuer: &TokenIssuer, sub: &str, jti: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let payload = json!({
        "iss": IDP_ISSUER,
        "aud": CLIENT_ID,
        "iat": now.as_secs_f64(),
        "exp": now.as_secs() + 120,
        "jti": jti,
        "sub": sub,
        "events": { LOGOUT_EVENT: {} },
    });
    issuer.sign_payload(&payload).unwrap()
}

/// A `[server]` accepting the test identity provider's logout tokens (RS256 key "A", its
/// public half in `key_file`).
fn backchannel_config(key_file: &tempfile::NamedTempFile) -> ServerConfig {
    let mut idp = VerifierConfig::default();
    idp.algorithm = Some(Algorithm::RS256);
    idp.public_key_file = Some(key_file.path().to_str().unwrap().to_owned());
    idp.issuer = vec![IDP_ISSUER.into()];
    idp.audience = vec![CLIENT_ID.into()];
    let mut config = ServerConfig::default();
    config.backchannel = Some(idp);
    config
}

/// The identity provider's public key, in a file as an operator would give it.
fn idp_public_key_file() -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(RSA_A_PUBLIC_PEM.as_bytes()).unwrap();
    file
}

/// Two sidecars with the back-channel logout, sharing the Redis at `redis_url`.
async fn backchannel_pair(
    redis_url: &str,
    key_file: &tempfile::NamedTempFile,
) -> (Sidecar, Sidecar) {
    let repository = memory_repository().await;
    let a = sidecar_on(redis_url, &repository, backchannel_config(key_file)).await;
    let b = sidecar_on(redis_url, &repository, backchannel_config(key_file)).await;
    (a, b)
}

/// A raw `update_one` of the user's roles, straight through the driver.
async fn set_roles_raw(mongo: &MongoServer, database: &str, id: &str, roles: &[&str]) {
    let users = mongo
        .client()
        .await
        .database(database)
        .collection::<Document>("users");
    let result = users
        .update_one(doc! { "_id": id }, doc! { "$set": { "roles": roles } })
        .await
        .unwrap();
    assert_eq!(result.matched_count, 1, "user {id} is in the database");
}

#[tokio::test]
async fn nginx_lets_the_identity_through_and_passes_revocations_and_missing_roles_back() {
    let redis = RedisServer::start();
    let sidecar = sidecar_on(
        &redis.url(),
        &memory_repository().await,
        ServerConfig::default(),
    )
    .await;
    let upstream = EchoUpstream::start().await;
    let nginx = NginxServer::start(sidecar.public(), upstream.address());

    the_proxy_enforces_the_sidecars_decisions(|path| nginx.url(path), &sidecar, &upstream).await;
}

#[tokio::test]
async fn caddy_copies_the_identity_and_passes_revocations_and_missing_roles_back() {
    let redis = RedisServer::start();
    let sidecar = sidecar_on(
        &redis.url(),
        &memory_repository().await,
        ServerConfig::default(),
    )
    .await;
    let upstream = EchoUpstream::start().await;
    let caddy = CaddyServer::start(sidecar.public(), upstream.address());

    the_proxy_enforces_the_sidecars_decisions(|path| caddy.url(path), &sidecar, &upstream).await;
}

#[tokio::test]
async fn a_logout_on_one_sidecar_is_refused_through_the_other_sidecars_nginx() {
    let redis = RedisServer::start();
    let repository = memory_repository().await;
    let a = sidecar_on(&redis.url(), &repository, ServerConfig::default()).await;
    let b = sidecar_on(&redis.url(), &repository, ServerConfig::default()).await;
    let (upstream_a, upstream_b) = (EchoUpstream::start().await, EchoUpstream::start().await);
    let nginx_a = NginxServer::start(a.public(), upstream_a.address());
    let nginx_b = NginxServer::start(b.public(), upstream_b.address());
    let bob = bearer("bob");
    // Both sidecars have bob and his token in their in-process tier.
    for nginx in [&nginx_a, &nginx_b] {
        for _ in 0..2 {
            let reply = get(&nginx.url("/hello"), &[("Authorization", &bob)]).await;
            assert_eq!(reply.status, 200, "{reply:?}");
        }
    }

    assert_eq!(a.logout(&bob).await.status, 204);
    eventually(
        PROPAGATION,
        "nginx B to refuse bob's logged-out token",
        || async {
            get(&nginx_b.url("/hello"), &[("Authorization", &bob)])
                .await
                .status
                == 401
        },
    )
    .await;
    let hits = upstream_b.hits();
    let reply = get(&nginx_b.url("/hello"), &[("Authorization", &bob)]).await;
    assert_refused(&reply, 401, INVALID_TOKEN, &upstream_b, hits);
    let reply = get(&nginx_a.url("/hello"), &[("Authorization", &bob)]).await;
    assert_eq!(reply.status, 401, "{reply:?}");
}

#[tokio::test]
async fn a_role_changed_straight_in_mongodb_opens_and_closes_the_admin_route_through_nginx() {
    let redis = RedisServer::start();
    let mongo = MongoServer::start_replica_set().await;
    let database = mongo.fresh_database();
    let repository = MongoUserRepository::connect(&mongo.uri(), &database)
        .await
        .unwrap();
    seed_mongo(&repository, None).await;
    let auth = AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .repository_config(RepositoryConfig::mongodb(mongo.uri(), &database))
        .watch_repository()
        .cache(CacheConfig::redis(redis.url()))
        .breaker(patient_breaker())
        .signing_key(SIGNING_KEY)
        .prefix("itest")
        .build()
        .await
        .unwrap();
    wait_subscribed(&auth).await;
    // A write before the change stream is open would not be seen by it.
    eventually(WATCHER_START, "the watcher to follow the feed", || async {
        auth.stats()
            .watcher
            .is_some_and(|watcher| watcher.state == WatcherState::Running)
    })
    .await;
    let sidecar = Sidecar::start(auth, ServerConfig::default()).await;
    let upstream = EchoUpstream::start().await;
    let nginx = NginxServer::start(sidecar.public(), upstream.address());
    let bob = bearer("bob");
    let admin_route = nginx.url("/admin/users");
    // Twice: bob is now cached in both tiers, which only an invalidation can change.
    for _ in 0..2 {
        let reply = get(&admin_route, &[("Authorization", &bob)]).await;
        assert_eq!(reply.status, 403, "{reply:?}");
    }

    set_roles_raw(&mongo, &database, "bob", &["admin"]).await;
    eventually(WATCH_BOUND, "the admin route to open for bob", || async {
        get(&admin_route, &[("Authorization", &bob)]).await.status == 200
    })
    .await;
    let reply = get(&admin_route, &[("Authorization", &bob)]).await;
    assert_eq!(
        reply.echoed().header("x-auth-request-groups"),
        Some("admin")
    );

    set_roles_raw(&mongo, &database, "bob", &["viewer"]).await;
    eventually(WATCH_BOUND, "the admin route to close for bob", || async {
        get(&admin_route, &[("Authorization", &bob)]).await.status == 403
    })
    .await;
    let hits = upstream.hits();
    let reply = get(&admin_route, &[("Authorization", &bob)]).await;
    assert_refused(&reply, 403, INSUFFICIENT_SCOPE, &upstream, hits);
}

#[tokio::test]
async fn a_backchannel_logout_on_one_sidecar_refuses_the_users_earlier_tokens_on_the_other() {
    let redis = RedisServer::start();
    let key_file = idp_public_key_file();
    let (a, b) = backchannel_pair(&redis.url(), &key_file).await;
    let earlier = [bearer("ada"), another_bearer("ada")];
    for sidecar in [&a, &b] {
        for token in &earlier {
            assert_eq!(sidecar.auth(token).await.status, 200);
        }
    }

    let logout = logout_token(&TokenIssuer::test_rs256(), "ada", "logout-ada-1");
    let reply = a.backchannel_logout(&logout).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("Cache-Control"), Some("no-store"));

    for token in &earlier {
        eventually(
            PROPAGATION,
            "sidecar B to refuse ada's earlier token",
            || async { b.auth(token).await.status == 401 },
        )
        .await;
        let reply = b.auth(token).await;
        assert_eq!(reply.header("WWW-Authenticate"), Some(INVALID_TOKEN));
        assert_eq!(a.auth(token).await.status, 401);
    }
    // The login that followed the logout is not refused, on either sidecar.
    let later = bearer("ada");
    assert_eq!(a.auth(&later).await.status, 200);
    assert_eq!(b.auth(&later).await.status, 200);
    // Nor is anyone else.
    assert_eq!(b.auth(&bearer("bob")).await.status, 200);
}

#[tokio::test]
async fn a_replayed_or_foreign_logout_token_is_refused_and_revokes_nothing() {
    let redis = RedisServer::start();
    let key_file = idp_public_key_file();
    let (a, b) = backchannel_pair(&redis.url(), &key_file).await;
    let bob = bearer("bob");
    for sidecar in [&a, &b] {
        assert_eq!(sidecar.auth(&bob).await.status, 200);
    }

    // Signed by a key that is not the provider's: refused before anything is done.
    let foreign = logout_token(
        &TokenIssuer::test_rs256_other(),
        "bob",
        "logout-bob-foreign",
    );
    let reply = a.backchannel_logout(&foreign).await;
    assert_eq!(reply.status, 400, "{reply:?}");
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("does not verify"),
        "{body}"
    );
    assert_eq!(a.auth(&bob).await.status, 200, "nothing was revoked here");
    assert_eq!(b.auth(&bob).await.status, 200, "nor there");

    // The provider's own token is accepted once; its replay is refused.
    let logout = logout_token(&TokenIssuer::test_rs256(), "ada", "logout-ada-replayed");
    assert_eq!(a.backchannel_logout(&logout).await.status, 200);
    let reply = a.backchannel_logout(&logout).await;
    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(reply.body.contains("already accepted"), "{}", reply.body);
    assert_eq!(a.auth(&bob).await.status, 200, "bob was never logged out");
}
