//! Real gRPC over loopback: a tonic server with [`ExtAuthz`], called by the generated client
//! with the `CheckRequest`s Envoy sends.

use std::time::Duration;

use authcache::{AuthService, CacheConfig, JwtVerifier, MemoryUserRepository, TokenIssuer, User};
use envoy_types::ext_authz::v3::pb::{
    CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction, HttpResponse,
    OkHttpResponse,
};
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};

use super::ExtAuthz;
use crate::decision::Decider;
use crate::policy::{self, Policy, Requirement, Rule};
use crate::telemetry::Via;

const SECRET: &[u8] = b"a-long-random-secret-of-32-bytes!";

/// A sidecar serving `ExtAuthz` on loopback, and a client connected to it.
struct Sidecar {
    client: AuthorizationClient<Channel>,
    auth: AuthService,
    /// A clone of the service's decider: its counters are the service's.
    decider: Decider,
}

impl Sidecar {
    async fn start(policy: Policy, cookie: Option<&str>, strip_authorization: bool) -> Self {
        let repository = MemoryUserRepository::new()
            .with_role("admin", ["users:read", "users:write"])
            .unwrap()
            .with_role("viewer", ["users:read"])
            .unwrap()
            .with_user(User::new("ada", "ada@example.com", "Ada").with_roles(["admin"]))
            .unwrap()
            .with_user(User::new("bob", "bob@example.com", "Bob").with_roles(["viewer"]))
            .unwrap();
        let auth = AuthService::builder()
            .verifier(JwtVerifier::hs256(SECRET))
            .repository(repository)
            .cache(CacheConfig::memory())
            .build()
            .await
            .unwrap();
        let decider = Decider::new(auth.clone(), policy, false);
        let service = ExtAuthz::new(
            decider.clone(),
            cookie.map(str::to_owned),
            strip_authorization,
        );
        // Bound before the client connects: the connection waits in the backlog, no sleep.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(
            Server::builder()
                .add_service(service.into_service())
                .serve_with_incoming(TcpIncoming::from(listener)),
        );
        let client = AuthorizationClient::connect(format!("http://{address}"))
            .await
            .unwrap();
        Self {
            client,
            auth,
            decider,
        }
    }

    /// The same, served as an axum router (how a listener shared with other routes would
    /// mount it).
    async fn on_axum() -> Self {
        let sidecar = Self::default().await;
        let decider = Decider::new(sidecar.auth.clone(), Policy::default(), false);
        let service = ExtAuthz::new(decider.clone(), None, false).into_service();
        let router = tonic::service::Routes::new(service)
            .prepare()
            .into_axum_router();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let client = AuthorizationClient::connect(format!("http://{address}"))
            .await
            .unwrap();
        Self {
            client,
            auth: sidecar.auth,
            decider,
        }
    }

    async fn default() -> Self {
        Self::start(Policy::default(), None, false).await
    }

    async fn check(&self, request: CheckRequest) -> CheckResponse {
        self.client
            .clone()
            .check(request)
            .await
            .unwrap()
            .into_inner()
    }
}

fn token(user: &str) -> String {
    TokenIssuer::hs256(SECRET)
        .issue(user, Duration::from_secs(600))
        .unwrap()
}

fn bearer(user: &str) -> String {
    format!("Bearer {}", token(user))
}

fn http(path: &str, headers: &[(&str, &str)]) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        path: path.into(),
        host: "app.example.com".into(),
        headers: headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect(),
        ..HttpRequest::default()
    }
}

fn check_of(http: HttpRequest, extensions: &[(&str, &str)]) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                time: None,
                http: Some(http),
            }),
            context_extensions: extensions
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
            ..AttributeContext::default()
        }),
    }
}

/// Envoy's request for `GET /api/users?page=2` with these headers and extensions.
fn check(headers: &[(&str, &str)], extensions: &[(&str, &str)]) -> CheckRequest {
    check_of(http("/api/users?page=2", headers), extensions)
}

fn code(response: &CheckResponse) -> Code {
    Code::from(response.status.as_ref().map_or(-1, |status| status.code))
}

fn ok(response: &CheckResponse) -> &OkHttpResponse {
    assert_eq!(code(response), Code::Ok, "{response:?}");
    match &response.http_response {
        Some(HttpResponse::OkResponse(ok)) => ok,
        other => panic!("not an ok_response: {other:?}"),
    }
}

/// The refusal's gRPC code, HTTP status and `www-authenticate` (if any).
fn denied(response: &CheckResponse) -> (Code, i32, Option<String>) {
    let Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
        status, headers, ..
    })) = &response.http_response
    else {
        panic!("not a denied_response: {response:?}");
    };
    let challenge = headers
        .iter()
        .filter_map(|option| option.header.as_ref())
        .find(|header| header.key == "www-authenticate")
        .map(|header| header.value.clone());
    assert!(
        headers.len() <= 1,
        "only the challenge is sent: {headers:?}"
    );
    (
        code(response),
        status.as_ref().map_or(0, |status| status.code),
        challenge,
    )
}

/// The request headers `ok` sets, by name.
fn header<'a>(ok: &'a OkHttpResponse, name: &str) -> Option<&'a str> {
    ok.headers
        .iter()
        .filter_map(|option| option.header.as_ref())
        .find(|header| header.key == name)
        .map(|header| header.value.as_str())
}

#[tokio::test]
async fn a_valid_token_is_allowed_with_the_identity_headers() {
    let sidecar = Sidecar::default().await;
    let response = sidecar
        .check(check(&[("authorization", &bearer("ada"))], &[]))
        .await;
    let ok = ok(&response);
    assert_eq!(header(ok, "x-auth-request-user"), Some("ada"));
    assert_eq!(header(ok, "x-auth-request-email"), Some("ada@example.com"));
    assert_eq!(header(ok, "x-auth-request-groups"), Some("admin"));
    let permissions = header(ok, "x-auth-request-permissions").unwrap_or_default();
    let mut permissions: Vec<&str> = permissions.split(',').collect();
    permissions.sort_unstable();
    assert_eq!(permissions, ["users:read", "users:write"]);
    assert!(
        ok.headers_to_remove.is_empty(),
        "{:?}",
        ok.headers_to_remove
    );
    assert_eq!(sidecar.decider.counters().get(Via::Grpc, "allowed"), 1);
    assert_eq!(sidecar.decider.counters().get(Via::Http, "allowed"), 0);
}

#[tokio::test]
async fn identity_headers_overwrite_what_the_client_sent() {
    let sidecar = Sidecar::default().await;
    let response = sidecar
        .check(check(
            &[
                ("authorization", &bearer("bob")),
                ("x-auth-request-user", "ada"),
            ],
            &[],
        ))
        .await;
    let ok = ok(&response);
    assert_eq!(header(ok, "x-auth-request-user"), Some("bob"));
    assert_eq!(ok.headers.len(), 4);
    for option in &ok.headers {
        assert_eq!(
            option.append_action,
            i32::from(HeaderAppendAction::OverwriteIfExistsOrAdd),
            "{option:?}"
        );
        #[allow(deprecated)]
        let append = option.append.as_ref().map(|append| append.value);
        assert_eq!(append, Some(false), "{option:?}");
    }
}

#[tokio::test]
async fn strip_authorization_removes_it_from_the_forwarded_request() {
    let sidecar = Sidecar::start(Policy::default(), None, true).await;
    let response = sidecar
        .check(check(&[("authorization", &bearer("ada"))], &[]))
        .await;
    assert_eq!(ok(&response).headers_to_remove, ["authorization"]);
}

#[tokio::test]
async fn no_token_is_unauthenticated_with_a_bearer_challenge() {
    let sidecar = Sidecar::default().await;
    let response = sidecar.check(check(&[], &[])).await;
    assert_eq!(
        denied(&response),
        (Code::Unauthenticated, 401, Some("Bearer".into()))
    );
}

#[tokio::test]
async fn a_bad_token_is_unauthenticated_as_invalid_token() {
    let sidecar = Sidecar::default().await;
    let forged = TokenIssuer::hs256(b"another-secret-another-secret-32!")
        .issue("ada", Duration::from_secs(600))
        .unwrap();
    for value in [
        "Bearer not-a-jwt".to_owned(),
        format!("Bearer {forged}"),
        "Bearer ".to_owned(),
    ] {
        let response = sidecar
            .check(check(&[("authorization", &value)], &[]))
            .await;
        assert_eq!(
            denied(&response),
            (
                Code::Unauthenticated,
                401,
                Some(r#"Bearer error="invalid_token""#.into())
            ),
            "{value}"
        );
    }
}

#[tokio::test]
async fn a_logged_out_token_is_unauthenticated() {
    let sidecar = Sidecar::default().await;
    let bearer = bearer("ada");
    let request = check(&[("authorization", &bearer)], &[]);
    ok(&sidecar.check(request.clone()).await);
    sidecar.auth.logout(&bearer).await.unwrap();
    let response = sidecar.check(request).await;
    assert_eq!(
        denied(&response),
        (
            Code::Unauthenticated,
            401,
            Some(r#"Bearer error="invalid_token""#.into())
        )
    );
}

#[tokio::test]
async fn context_extensions_are_the_routes_requirement() {
    let sidecar = Sidecar::default().await;
    let admin = [("role", "admin")];
    let response = sidecar
        .check(check(&[("authorization", &bearer("bob"))], &admin))
        .await;
    assert_eq!(
        denied(&response),
        (
            Code::PermissionDenied,
            403,
            Some(r#"Bearer error="insufficient_scope""#.into())
        )
    );
    let response = sidecar
        .check(check(&[("authorization", &bearer("ada"))], &admin))
        .await;
    assert_eq!(header(ok(&response), "x-auth-request-user"), Some("ada"));

    let both = [("permission", "users:read,users:write"), ("match", "all")];
    let response = sidecar
        .check(check(&[("authorization", &bearer("bob"))], &both))
        .await;
    assert_eq!(denied(&response).1, 403);
    let response = sidecar
        .check(check(&[("authorization", &bearer("ada"))], &both))
        .await;
    ok(&response);
}

#[tokio::test]
async fn a_bad_context_extension_is_internal() {
    let sidecar = Sidecar::default().await;
    for extensions in [[("bogus", "x")], [("match", "most")]] {
        let response = sidecar
            .check(check(&[("authorization", &bearer("ada"))], &extensions))
            .await;
        assert_eq!(
            denied(&response),
            (Code::Internal, 500, None),
            "{extensions:?}"
        );
    }
    assert_eq!(
        sidecar.decider.counters().get(Via::Grpc, "misconfigured"),
        2
    );
}

#[tokio::test]
async fn without_context_extensions_the_policy_rules_apply() {
    let policy = Policy {
        default: policy::Default::Deny,
        rules: vec![
            Rule {
                host: None,
                methods: Vec::new(),
                path: Some("/public/**".into()),
                anonymous: true,
                requirement: Requirement::default(),
            },
            Rule {
                host: Some("*.example.com".into()),
                methods: vec!["GET".into()],
                path: Some("/api/users".into()),
                anonymous: false,
                requirement: Requirement {
                    permissions: vec!["users:read".into()],
                    ..Requirement::default()
                },
            },
        ],
    };
    let sidecar = Sidecar::start(policy, None, false).await;

    let public = sidecar
        .check(check_of(http("/public/a?b=c", &[]), &[]))
        .await;
    assert_eq!(header(ok(&public), "x-auth-request-user"), Some(""));

    let response = sidecar
        .check(check(&[("authorization", &bearer("bob"))], &[]))
        .await;
    assert_eq!(header(ok(&response), "x-auth-request-user"), Some("bob"));

    let mut post = http("/api/users", &[("authorization", &bearer("bob"))]);
    post.method = "POST".into();
    let response = sidecar.check(check_of(post, &[])).await;
    assert_eq!(denied(&response).1, 403, "no rule matches: default deny");

    let response = sidecar.check(check(&[], &[])).await;
    assert_eq!(denied(&response).1, 401);
}

#[tokio::test]
async fn the_token_may_come_in_the_configured_cookie() {
    let sidecar = Sidecar::start(Policy::default(), Some("session"), false).await;
    let cookie = format!("theme=dark; session={}", token("ada"));
    let response = sidecar.check(check(&[("cookie", &cookie)], &[])).await;
    assert_eq!(header(ok(&response), "x-auth-request-user"), Some("ada"));

    let other = format!("other={}", token("ada"));
    let response = sidecar.check(check(&[("cookie", &other)], &[])).await;
    assert_eq!(denied(&response).1, 401);
}

#[tokio::test]
async fn raw_headers_are_read_from_header_map() {
    let sidecar = Sidecar::default().await;
    let raw = |key: &str, value: &str| HeaderValue {
        key: key.into(),
        value: String::new(),
        raw_value: value.as_bytes().to_vec(),
    };
    let mut request = http("/api/users", &[]);
    request.header_map = Some(HeaderMap {
        headers: vec![
            raw(":authority", "app.example.com"),
            raw("authorization", &bearer("ada")),
        ],
    });
    let response = sidecar.check(check_of(request.clone(), &[])).await;
    assert_eq!(header(ok(&response), "x-auth-request-user"), Some("ada"));

    // Two `authorization` headers, kept apart by `encode_raw_headers`: ambiguous, refused.
    if let Some(map) = request.header_map.as_mut() {
        map.headers.push(raw("authorization", &bearer("bob")));
    }
    let response = sidecar.check(check_of(request, &[])).await;
    assert_eq!(denied(&response).1, 401);
}

#[tokio::test]
async fn headers_are_preferred_to_header_map() {
    let sidecar = Sidecar::default().await;
    let mut request = http("/api/users", &[("authorization", &bearer("bob"))]);
    request.header_map = Some(HeaderMap {
        headers: vec![HeaderValue {
            key: "authorization".into(),
            value: bearer("ada"),
            raw_value: Vec::new(),
        }],
    });
    let response = sidecar.check(check_of(request, &[])).await;
    assert_eq!(header(ok(&response), "x-auth-request-user"), Some("bob"));
}

#[tokio::test]
async fn a_request_without_http_attributes_is_internal() {
    let sidecar = Sidecar::default().await;
    let response = sidecar.check(CheckRequest { attributes: None }).await;
    assert_eq!(denied(&response), (Code::Internal, 500, None));
    let response = sidecar
        .check(CheckRequest {
            attributes: Some(AttributeContext::default()),
        })
        .await;
    assert_eq!(denied(&response), (Code::Internal, 500, None));
    assert_eq!(
        sidecar.decider.counters().get(Via::Grpc, "misconfigured"),
        2
    );
}

#[tokio::test]
async fn it_can_be_served_as_an_axum_router() {
    let sidecar = Sidecar::on_axum().await;
    let response = sidecar
        .check(check(&[("authorization", &bearer("ada"))], &[]))
        .await;
    assert_eq!(header(ok(&response), "x-auth-request-user"), Some("ada"));
    let response = sidecar.check(check(&[], &[])).await;
    assert_eq!(denied(&response).1, 401);
}
