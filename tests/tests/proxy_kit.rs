//! The proxy kit proved on its own, before any sidecar: the real nginx (`auth_request`) and
//! the real Caddy (`forward_auth`) from `authcache_tests::proxy_server`, in front of a stub
//! auth endpoint and the echo upstream. Every scenario runs through both proxies: an
//! allowed request reaches the upstream with the identity the auth endpoint answered, a
//! refusal (401, 403) reaches the client with its challenge and never the upstream, the
//! admin route asks for the admin role, and identity headers forged by the client never
//! reach the upstream as such.
// Test helpers outside `#[test]` functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authcache_tests::process::eventually;
use authcache_tests::proxy_server::{
    CaddyServer, EchoUpstream, IDENTITY_HEADERS, NginxServer, ProxyReply, get,
};
use axum::Router;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::get as route_get;
use tokio::task::JoinHandle;

const INVALID_TOKEN: &str = r#"Bearer error="invalid_token""#;
const INSUFFICIENT_SCOPE: &str = r#"Bearer error="insufficient_scope""#;
/// A token the stub accepts as user `ada`, without the admin role.
const ADA: &str = "Bearer good";
/// A token the stub accepts as user `ada`, answering all four identity headers (empty but
/// the user), as the sidecar does.
const ADA_EVERY_HEADER: &str = "Bearer good-every-header";
/// A token the stub accepts as user `grace`, with the admin role.
const GRACE: &str = "Bearer admin";

/// One call the stub auth endpoint received.
#[derive(Debug, Clone)]
struct AuthCall {
    uri: String,
    headers: HeaderMap,
}

/// The stub auth endpoint: `GET /auth` answers 200 with `X-Auth-Request-User` (and no
/// other identity header, or all four for [`ADA_EVERY_HEADER`]) for a good token, 401 with an `invalid_token` challenge without
/// one, and 403 with an `insufficient_scope` challenge when `role=admin` is asked of a
/// token without it.
struct StubAuth {
    address: SocketAddr,
    calls: Arc<Mutex<Vec<AuthCall>>>,
    task: JoinHandle<()>,
}

impl StubAuth {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/auth", route_get(stub_auth))
            .with_state(Arc::clone(&calls));
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            address,
            calls,
            task,
        }
    }

    fn calls(&self) -> Vec<AuthCall> {
        self.calls.lock().unwrap().clone()
    }
}

impl Drop for StubAuth {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn stub_auth(
    State(calls): State<Arc<Mutex<Vec<AuthCall>>>>,
    uri: Uri,
    headers: HeaderMap,
) -> impl IntoResponse {
    calls.lock().unwrap().push(AuthCall {
        uri: uri.to_string(),
        headers: headers.clone(),
    });
    let token = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let user = match token {
        Some(ADA | ADA_EVERY_HEADER) => "ada",
        Some(GRACE) => "grace",
        _ => {
            return (
                StatusCode::UNAUTHORIZED,
                [(WWW_AUTHENTICATE.as_str(), INVALID_TOKEN)],
            )
                .into_response();
        }
    };
    let wants_admin = uri
        .query()
        .is_some_and(|query| query.split('&').any(|pair| pair == "role=admin"));
    if wants_admin && user != "grace" {
        return (
            StatusCode::FORBIDDEN,
            [(WWW_AUTHENTICATE.as_str(), INSUFFICIENT_SCOPE)],
        )
            .into_response();
    }
    if token == Some(ADA_EVERY_HEADER) {
        let [user_header, rest @ ..] = IDENTITY_HEADERS;
        let mut answer = HeaderMap::new();
        answer.insert(user_header, HeaderValue::from_static(user));
        for name in rest {
            answer.insert(name, HeaderValue::from_static(""));
        }
        return (StatusCode::OK, answer).into_response();
    }
    (StatusCode::OK, [("X-Auth-Request-User", user)]).into_response()
}

/// `X-Auth-Request-User` as `X_Auth_Request_User`: the same header to a CGI-style upstream.
fn underscored(name: &'static str) -> &'static str {
    match name {
        "X-Auth-Request-User" => "X_Auth_Request_User",
        "X-Auth-Request-Email" => "X_Auth_Request_Email",
        "X-Auth-Request-Groups" => "X_Auth_Request_Groups",
        "X-Auth-Request-Permissions" => "X_Auth_Request_Permissions",
        other => panic!("no underscored spelling of {other}"),
    }
}

/// Which proxy a scenario runs through.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Nginx,
    Caddy,
}

enum Proxy {
    Nginx(NginxServer),
    Caddy(CaddyServer),
}

/// A proxy in front of the stub auth endpoint and the echo upstream.
struct Rig {
    // Declared first: the proxy goes before what it points at.
    proxy: Proxy,
    auth: StubAuth,
    upstream: EchoUpstream,
}

impl Rig {
    async fn start(kind: Kind) -> Self {
        let auth = StubAuth::start().await;
        let upstream = EchoUpstream::start().await;
        let proxy = match kind {
            Kind::Nginx => Proxy::Nginx(NginxServer::start(auth.address, upstream.address())),
            Kind::Caddy => Proxy::Caddy(CaddyServer::start(auth.address, upstream.address())),
        };
        Self {
            proxy,
            auth,
            upstream,
        }
    }

    fn url(&self, path: &str) -> String {
        match &self.proxy {
            Proxy::Nginx(nginx) => nginx.url(path),
            Proxy::Caddy(caddy) => caddy.url(path),
        }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> ProxyReply {
        get(&self.url(path), headers).await
    }

    fn log_tail(&self) -> String {
        match &self.proxy {
            Proxy::Nginx(nginx) => nginx.log_tail(),
            Proxy::Caddy(caddy) => caddy.log_tail(),
        }
    }
}

async fn allowed_request_reaches_the_upstream_with_the_identity(kind: Kind) {
    let rig = Rig::start(kind).await;
    let reply = rig
        .get("/docs/intro?page=2", &[("Authorization", ADA)])
        .await;
    assert_eq!(reply.status, 200, "{reply:?}\n{}", rig.log_tail());
    let echoed = reply.echoed();
    assert_eq!(echoed.method, "GET");
    assert_eq!(echoed.path, "/docs/intro");
    assert_eq!(echoed.query.as_deref(), Some("page=2"));
    assert_eq!(echoed.header("X-Auth-Request-User"), Some("ada"));
    assert_eq!(echoed.header("Authorization"), Some(ADA));
    assert_eq!(rig.upstream.hits(), 1);
    let calls = rig.auth.calls();
    let [call] = calls.as_slice() else {
        panic!("one auth call expected: {calls:?}")
    };
    // Each proxy tells the auth endpoint what was asked in its own headers.
    // The original request travels in headers, never in the auth call's own query.
    assert_eq!(call.uri, "/auth", "{call:?}");
    let original = match kind {
        Kind::Nginx => ("x-original-uri", "x-original-method"),
        Kind::Caddy => ("x-forwarded-uri", "x-forwarded-method"),
    };
    assert_eq!(call.headers[original.0], "/docs/intro?page=2", "{call:?}");
    assert_eq!(call.headers[original.1], "GET", "{call:?}");
    assert_eq!(call.headers[AUTHORIZATION], ADA, "{call:?}");
}

async fn missing_or_bad_token_gets_401_with_the_challenge(kind: Kind) {
    let rig = Rig::start(kind).await;
    for headers in [&[][..], &[("Authorization", "Bearer forged")][..]] {
        let reply = rig.get("/docs", headers).await;
        assert_eq!(reply.status, 401, "{reply:?}\n{}", rig.log_tail());
        assert_eq!(reply.header("WWW-Authenticate"), Some(INVALID_TOKEN));
    }
    assert_eq!(
        rig.upstream.hits(),
        0,
        "a refused request reached the upstream"
    );
    assert_eq!(rig.auth.calls().len(), 2);
}

async fn admin_route_asks_for_the_admin_role(kind: Kind) {
    let rig = Rig::start(kind).await;
    // The client's own `role` never replaces the one the route asks for.
    let refused = rig
        .get("/admin/users?role=user", &[("Authorization", ADA)])
        .await;
    assert_eq!(refused.status, 403, "{refused:?}\n{}", rig.log_tail());
    assert_eq!(refused.header("WWW-Authenticate"), Some(INSUFFICIENT_SCOPE));
    assert_eq!(
        rig.upstream.hits(),
        0,
        "a refused request reached the upstream"
    );

    let unauthenticated = rig.get("/admin/users", &[]).await;
    assert_eq!(unauthenticated.status, 401, "{unauthenticated:?}");
    assert_eq!(
        unauthenticated.header("WWW-Authenticate"),
        Some(INVALID_TOKEN)
    );

    let allowed = rig.get("/admin/users", &[("Authorization", GRACE)]).await;
    assert_eq!(allowed.status, 200, "{allowed:?}\n{}", rig.log_tail());
    let echoed = allowed.echoed();
    assert_eq!(echoed.path, "/admin/users");
    assert_eq!(echoed.header("X-Auth-Request-User"), Some("grace"));
    assert!(
        rig.auth
            .calls()
            .iter()
            .all(|call| call.uri == "/auth?role=admin"),
        "{:?}",
        rig.auth.calls()
    );

    // Outside `/admin/`, the same user needs no role, whatever the client's query says.
    let elsewhere = rig.get("/docs?role=admin", &[("Authorization", ADA)]).await;
    assert_eq!(elsewhere.status, 200, "{elsewhere:?}");
    assert_eq!(rig.auth.calls().last().unwrap().uri, "/auth");
}

async fn forged_identity_headers_never_reach_the_upstream(kind: Kind) {
    let rig = Rig::start(kind).await;
    let mut headers = vec![("Authorization", ADA_EVERY_HEADER)];
    headers.extend(IDENTITY_HEADERS.map(|name| (name, "mallory")));
    headers.extend(IDENTITY_HEADERS.map(|name| (underscored(name), "mallory")));
    let reply = rig.get("/docs", &headers).await;
    assert_eq!(reply.status, 200, "{reply:?}\n{}", rig.log_tail());
    let echoed = reply.echoed();
    assert_eq!(echoed.values("X-Auth-Request-User"), ["ada"], "{echoed:?}");
    for name in &IDENTITY_HEADERS[1..] {
        // Sent empty by the auth endpoint: nginx drops an empty header, Caddy passes it on.
        let expected: &[&str] = match kind {
            Kind::Nginx => &[],
            Kind::Caddy => &[""],
        };
        assert_eq!(echoed.values(name), expected, "{name}: {echoed:?}");
    }
    for name in IDENTITY_HEADERS {
        // nginx ignores header names with `_` (`underscores_in_headers off`); the Caddyfile
        // deletes them (`request_header -*_*`).
        let canonical = name.to_ascii_lowercase();
        assert!(
            echoed.spellings_of(name).iter().all(|n| *n == canonical),
            "{echoed:?}"
        );
    }

    let refused = rig.get("/docs", &headers[1..]).await;
    assert_eq!(refused.status, 401, "{refused:?}");
    assert_eq!(rig.upstream.hits(), 1);
}

/// What an identity header the auth answer lacks becomes on its way to the upstream when
/// the client sent its own: never the client's value. nginx sends no such header (an
/// empty `proxy_set_header` value drops it). Caddy 2.6's `copy_headers` sets the header
/// unconditionally to the placeholder of the auth answer's header, which stays unreplaced
/// text when that header is missing — so the sidecar sends all four, empty when unknown.
async fn identity_headers_the_auth_answer_lacks(kind: Kind) {
    let rig = Rig::start(kind).await;
    let mut headers = vec![("Authorization", ADA)];
    headers.extend(IDENTITY_HEADERS[1..].iter().map(|name| (*name, "mallory")));
    let reply = rig.get("/docs", &headers).await;
    assert_eq!(reply.status, 200, "{reply:?}\n{}", rig.log_tail());
    let echoed = reply.echoed();
    for name in &IDENTITY_HEADERS[1..] {
        let expected: Vec<String> = match kind {
            Kind::Nginx => Vec::new(),
            Kind::Caddy => vec![format!("{{http.reverse_proxy.header.{name}}}")],
        };
        assert_eq!(echoed.values(name), expected, "{name}: {echoed:?}");
    }
}

/// Runs each scenario once through nginx and once through Caddy.
macro_rules! through_both_proxies {
    ($($scenario:ident),* $(,)?) => {
        mod nginx {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(super::Kind::Nginx).await;
                }
            )*
        }
        mod caddy {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(super::Kind::Caddy).await;
                }
            )*
        }
    };
}

through_both_proxies!(
    allowed_request_reaches_the_upstream_with_the_identity,
    missing_or_bad_token_gets_401_with_the_challenge,
    admin_route_asks_for_the_admin_role,
    forged_identity_headers_never_reach_the_upstream,
    identity_headers_the_auth_answer_lacks,
);

#[tokio::test]
async fn nginx_direct_mode_asks_no_one() {
    let upstream = EchoUpstream::start().await;
    let nginx = NginxServer::start_direct(upstream.address());
    let reply = get(&nginx.url("/bench?x=1"), &[]).await;
    assert_eq!(reply.status, 200, "{reply:?}\n{}", nginx.log_tail());
    let echoed = reply.echoed();
    assert_eq!(
        (echoed.path.as_str(), echoed.query.as_deref()),
        ("/bench", Some("x=1"))
    );
    assert!(!nginx.config().contains("auth_request"));
}

#[tokio::test]
async fn a_dropped_proxy_leaves_nothing_listening() {
    let auth = StubAuth::start().await;
    let upstream = EchoUpstream::start().await;
    let nginx = NginxServer::start(auth.address, upstream.address());
    let caddy = CaddyServer::start(auth.address, upstream.address());
    assert_ne!(nginx.port(), caddy.port());
    let ports = [nginx.port(), caddy.port()];
    drop(nginx);
    drop(caddy);
    for port in ports {
        // nginx's master stops and reaps its worker first; Caddy is killed outright.
        eventually(Duration::from_secs(10), "the port closes", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
        })
        .await;
    }
}
