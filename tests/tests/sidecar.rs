//! `authcache-server` over real HTTP, on in-process backends: every answer of `/auth` as a
//! proxy sees it (nginx's, Caddy's and Envoy's ways of asking), the admin listener, the
//! admin secret, the operator's routes and the limits. The proxies themselves are in
//! `sidecar_proxies.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth_support;

use auth_support::bearer;
use authcache::{AuthService, CacheConfig};
use authcache_server::config;
use authcache_server::{Listeners, RunningServer, Server};
use authcache_tests::proxy_server::{ProxyReply, get, request};
use axum::http::Method;

const ADMIN_SECRET: &str = "sidecar-test-admin-secret";
const INVALID_TOKEN: &str = r#"Bearer error="invalid_token""#;
const INSUFFICIENT_SCOPE: &str = r#"Bearer error="insufficient_scope""#;

async fn post(url: &str, headers: &[(&str, &str)]) -> ProxyReply {
    request(Method::POST, url, headers).await
}

async fn service() -> AuthService {
    auth_support::service(
        CacheConfig::memory(),
        auth_support::memory_repository().await,
    )
    .await
}

/// A sidecar on `[server]` settings `toml`, every listener on a free loopback port.
async fn sidecar(toml: &str) -> (RunningServer, AuthService) {
    let (_, server_config) = config::load(toml).unwrap();
    let auth = service().await;
    let server = Server::new(auth.clone(), server_config).await.unwrap();
    (server.start(Listeners::ephemeral().await.unwrap()), auth)
}

fn url(running: &RunningServer, path: &str) -> String {
    format!("http://{}{path}", running.public_addr())
}

fn admin_url(running: &RunningServer, path: &str) -> String {
    format!("http://{}{path}", running.admin_addr().unwrap())
}

fn assert_refused(reply: &ProxyReply, status: u16, challenge: Option<&str>) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(reply.header("www-authenticate"), challenge, "{reply:?}");
    assert_eq!(reply.header("x-auth-request-user"), None, "{reply:?}");
}

#[tokio::test]
async fn an_allowed_request_names_the_user_and_a_refused_one_says_only_its_class() {
    let (running, auth) = sidecar("").await;
    let ada = bearer("ada");
    let reply = get(&url(&running, "/auth"), &[("authorization", &ada)]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("x-auth-request-user"), Some("ada"));
    assert_eq!(
        reply.header("x-auth-request-email"),
        Some("ada@example.com")
    );
    assert_eq!(reply.header("x-auth-request-groups"), Some("admin"));
    assert_eq!(
        reply.header("x-auth-request-permissions"),
        Some("users:read,users:write")
    );
    assert_eq!(
        reply.header("x-forwarded-user"),
        None,
        "not unless configured"
    );
    assert!(reply.body.is_empty());

    let missing = get(&url(&running, "/auth"), &[]).await;
    assert_refused(&missing, 401, Some("Bearer"));
    let forged = format!("{ada}x");
    for bad in [forged.as_str(), "Bearer not-a-jwt", "Bearer ", "Bearer a b"] {
        let reply = get(&url(&running, "/auth"), &[("authorization", bad)]).await;
        assert_refused(&reply, 401, Some(INVALID_TOKEN));
    }
    let eve = get(
        &url(&running, "/auth"),
        &[("authorization", &bearer("eve"))],
    )
    .await;
    assert_refused(&eve, 403, None);
    let stranger = get(
        &url(&running, "/auth"),
        &[("authorization", &bearer("mallory"))],
    )
    .await;
    assert_refused(&stranger, 401, Some(INVALID_TOKEN));

    auth.logout(&ada).await.unwrap();
    let revoked = get(&url(&running, "/auth"), &[("authorization", &ada)]).await;
    assert_refused(&revoked, 401, Some(INVALID_TOKEN));
    running.shutdown().await;
}

#[tokio::test]
async fn the_proxys_query_is_the_requirement_with_any_or_all() {
    let (running, _) = sidecar("").await;
    let (ada, bob) = (bearer("ada"), bearer("bob"));
    let cases = [
        ("/auth?role=admin", &bob, 403),
        ("/auth?role=admin", &ada, 200),
        ("/auth?role=admin,viewer", &bob, 200),
        ("/auth?role=admin,viewer&match=all", &ada, 403),
        ("/auth?permission=users:read", &bob, 200),
        (
            "/auth?permission=users:read,users:write&match=all",
            &bob,
            403,
        ),
        (
            "/auth?permission=users:read,users:write&match=all",
            &ada,
            200,
        ),
        ("/auth?role=viewer&permission=users:write", &bob, 403),
        ("/auth?rol=admin", &ada, 500),
    ];
    for (path, who, status) in cases {
        let reply = get(&url(&running, path), &[("authorization", who)]).await;
        assert_eq!(reply.status, status, "{path}: {reply:?}");
        if status == 403 {
            assert_eq!(reply.header("www-authenticate"), Some(INSUFFICIENT_SCOPE));
        }
    }
    running.shutdown().await;
}

const RULES: &str = r#"
[server.policy]
default = "deny"

[[server.policy.rules]]
path = "/public/**"
anonymous = true

[[server.policy.rules]]
methods = ["DELETE"]
path = "/api/users/*"
roles = ["admin"]

[[server.policy.rules]]
host = "*.example.com"
path = "/api/"
"#;

#[tokio::test]
async fn without_a_query_the_rules_judge_the_original_request_of_every_proxy() {
    let (running, _) = sidecar(RULES).await;
    let (ada, bob) = (bearer("ada"), bearer("bob"));
    // (the headers of each proxy's form, who, expected)
    let traefik = |method: &'static str, uri: &'static str| {
        vec![
            ("x-forwarded-method", method),
            ("x-forwarded-uri", uri),
            ("x-forwarded-host", "api.example.com"),
        ]
    };
    let nginx = |method: &'static str, uri: &'static str| {
        vec![
            ("x-original-method", method),
            ("x-original-uri", uri),
            ("x-original-host", "api.example.com"),
        ]
    };
    for form in [traefik, nginx] {
        let public = get(&url(&running, "/auth"), &form("GET", "/public/logo.png")).await;
        assert_eq!(public.status, 200, "anonymous: {public:?}");
        assert_eq!(
            public.header("x-auth-request-user"),
            Some(""),
            "every header, empty"
        );

        let mut delete = form("DELETE", "/api/users/7");
        delete.push(("authorization", &bob));
        let reply = get(&url(&running, "/auth"), &delete).await;
        assert_refused(&reply, 403, Some(INSUFFICIENT_SCOPE));
        delete.pop();
        delete.push(("authorization", &ada));
        assert_eq!(get(&url(&running, "/auth"), &delete).await.status, 200);

        let mut read = form("GET", "/api/users/7?verbose=1");
        read.push(("authorization", &bob));
        assert_eq!(get(&url(&running, "/auth"), &read).await.status, 200);

        let mut elsewhere = form("GET", "/private");
        let anonymous = get(&url(&running, "/auth"), &elsewhere).await;
        assert_refused(&anonymous, 401, Some("Bearer"));
        elsewhere.push(("authorization", &ada));
        let denied = get(&url(&running, "/auth"), &elsewhere).await;
        assert_refused(&denied, 403, Some(INSUFFICIENT_SCOPE));
    }
    // Envoy's HTTP mode: its method and path on the request line, its host in Host.
    let envoy = request(
        Method::DELETE,
        &url(&running, "/auth/api/users/7"),
        &[("authorization", &bob), ("host", "api.example.com")],
    )
    .await;
    assert_refused(&envoy, 403, Some(INSUFFICIENT_SCOPE));
    let envoy = request(
        Method::DELETE,
        &url(&running, "/auth/api/users/7"),
        &[("authorization", &ada), ("host", "api.example.com")],
    )
    .await;
    assert_eq!(envoy.status, 200);
    // The query after Envoy's appended path is the client's: never a requirement.
    let chosen = get(
        &url(&running, "/auth/private?role=viewer"),
        &[("authorization", &bob)],
    )
    .await;
    assert_refused(&chosen, 403, Some(INSUFFICIENT_SCOPE));
    running.shutdown().await;
}

#[tokio::test]
async fn the_admin_listener_revokes_and_invalidates_and_auth_never_reaches_it() {
    let (running, auth) = sidecar("").await;
    let (ada, bob) = (bearer("ada"), bearer("bob"));

    // Through /auth, an admin path is only a path to decide on.
    let through_auth = request(
        Method::POST,
        &url(&running, "/auth/admin/logout-all/bob"),
        &[("authorization", &bob)],
    )
    .await;
    assert_eq!(through_auth.status, 200);
    let on_public = post(&url(&running, "/admin/logout-all/bob"), &[]).await;
    assert_eq!(
        on_public.status, 404,
        "admin routes are on the admin listener"
    );
    assert!(auth.authenticate(&bob).await.is_ok());

    let logout = post(&admin_url(&running, "/logout"), &[("authorization", &ada)]).await;
    assert_eq!(logout.status, 204, "{logout:?}");
    let reply = get(&url(&running, "/auth"), &[("authorization", &ada)]).await;
    assert_refused(&reply, 401, Some(INVALID_TOKEN));
    let forged = post(
        &admin_url(&running, "/logout"),
        &[("authorization", "Bearer x.y.z")],
    )
    .await;
    assert_refused(&forged, 401, Some(INVALID_TOKEN));

    let all = post(&admin_url(&running, "/admin/logout-all/bob"), &[]).await;
    assert_eq!(all.status, 204, "{all:?}");
    let reply = get(&url(&running, "/auth"), &[("authorization", &bob)]).await;
    assert_refused(&reply, 401, Some(INVALID_TOKEN));

    let user = post(&admin_url(&running, "/admin/invalidate/user/ada"), &[]).await;
    assert_eq!(user.status, 204);
    let role = post(&admin_url(&running, "/admin/invalidate/role/viewer"), &[]).await;
    assert_eq!(role.status, 204);
    running.shutdown().await;
}

#[tokio::test]
async fn a_configured_admin_secret_is_required_and_may_move_the_admin_routes_to_the_public_listener()
 {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-secret");
    std::fs::write(&file, ADMIN_SECRET).unwrap();
    let toml = format!(
        "[server]\nadmin_listen = \"off\"\nadmin_secret_file = \"{}\"\n",
        file.display()
    );
    let (_, server_config) = config::load(&toml).unwrap();
    let auth = service().await;
    let listeners = Listeners {
        admin: None,
        ..Listeners::ephemeral().await.unwrap()
    };
    let running = Server::new(auth, server_config)
        .await
        .unwrap()
        .start(listeners);
    let path = url(&running, "/admin/logout-all/bob");
    assert_eq!(post(&path, &[]).await.status, 403);
    let wrong = post(&path, &[("x-authcache-admin", "sidecar-test-admin-secreT")]).await;
    assert_eq!(wrong.status, 403);
    let right = post(&path, &[("x-authcache-admin", ADMIN_SECRET)]).await;
    assert_eq!(right.status, 204, "{right:?}");
    running.shutdown().await;

    let (_, open) = config::load("[server]\nadmin_listen = \"off\"\n").unwrap();
    let error = Server::new(service().await, open).await.unwrap_err();
    assert!(error.to_string().contains("admin_secret_env"), "{error}");
}

#[tokio::test]
async fn the_cookie_carries_the_token_when_there_is_no_authorization_header() {
    let (running, _) =
        sidecar("[server]\ncookie = \"access_token\"\nforwarded_headers = true\n").await;
    let token = bearer("ada");
    let token = token.trim_start_matches("Bearer ");
    let cookie = format!("theme=dark; access_token={token}");
    let reply = get(&url(&running, "/auth"), &[("cookie", &cookie)]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("x-forwarded-user"), Some("ada"));
    assert_eq!(reply.header("x-forwarded-groups"), Some("admin"));
    let twice = format!("access_token={token}; access_token=other");
    let reply = get(&url(&running, "/auth"), &[("cookie", &twice)]).await;
    assert_refused(&reply, 401, Some(INVALID_TOKEN));
    running.shutdown().await;
}

#[tokio::test]
async fn the_operators_routes_report_health_readiness_and_decisions() {
    let (running, _) = sidecar("").await;
    get(
        &url(&running, "/auth"),
        &[("authorization", &bearer("ada"))],
    )
    .await;
    get(&url(&running, "/auth"), &[]).await;
    let healthz = get(&url(&running, "/healthz"), &[]).await;
    assert_eq!(healthz.status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&healthz.body).unwrap()["status"],
        "ok",
        "{healthz:?}"
    );
    assert_eq!(get(&url(&running, "/ready"), &[]).await.status, 200);
    let metrics = get(&url(&running, "/metrics"), &[]).await;
    assert!(
        metrics
            .body
            .contains(r#"authcache_server_decisions_total{via="http",outcome="allowed"} 1"#),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains(r#"authcache_server_decisions_total{via="http",outcome="missing_token"} 1"#)
    );
    assert!(
        metrics.body.contains("authcache_authentications_total"),
        "the service's own metrics too"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn oversized_headers_are_refused_and_shutdown_stops_accepting() {
    let (running, _) = sidecar("").await;
    let huge = "x".repeat(20 * 1024);
    let reply = get(&url(&running, "/auth"), &[("x-padding", &huge)]).await;
    assert_eq!(reply.status, 431);
    let address = running.public_addr();
    running.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(address).await.is_err(),
        "nothing listens after shutdown"
    );
}
