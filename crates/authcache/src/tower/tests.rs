//! The layers over a plain `tower::service_fn` (any service over `http::Request`) and over
//! an axum router, driven with `ServiceExt::oneshot`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ::tower::{Layer, Service, service_fn};
use authcache_jwt::{Claims, TokenIssuer, unix_now};
use authcache_users::{MockUserRepository, RepositoryError, User};
use http::{Request, Response, StatusCode};

use super::{AuthLayer, RequirePermission, RequireRole};
use crate::test_support::{call, service};
use crate::{AuthService, JwtVerifier, Principal};

const INVALID_TOKEN: &str = r#"Bearer error="invalid_token""#;
const INSUFFICIENT_SCOPE: &str = r#"Bearer error="insufficient_scope""#;

fn bearer(sub: &str) -> String {
    let token = TokenIssuer::test_hs256()
        .issue(sub, Duration::from_secs(600))
        .unwrap();
    format!("Bearer {token}")
}

fn expired_bearer(sub: &str) -> String {
    // An hour past `exp`: far beyond any leeway.
    let mut claims = Claims::new(sub, unix_now() - 3_600);
    claims.iat = Some(unix_now() - 7_200);
    let token = TokenIssuer::test_hs256().sign(&claims).unwrap();
    format!("Bearer {token}")
}

type Inner = Arc<AtomicUsize>;

/// A bare tower service (no axum) answering with the id of the request's principal, and
/// counting its calls: a refused request must never reach it.
fn echo(
    calls: &Inner,
) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    let calls = Arc::clone(calls);
    service_fn(move |request: Request<String>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let who = request
            .extensions()
            .get::<Principal>()
            .map_or_else(|| "nobody".to_owned(), |p| p.id().to_owned());
        async move { Ok::<_, Infallible>(Response::new(who)) }
    })
}

#[tokio::test]
async fn a_valid_token_reaches_the_service_with_its_principal() {
    let auth = service().await;
    let calls = Inner::default();
    let app = AuthLayer::new(auth.clone()).layer(echo(&calls));
    let answer = call(app.clone(), "/", &[&bearer("ada")]).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "ada")
    );
    assert_eq!(answer.challenge(), None);
    // The scheme is case-insensitive.
    let lower = bearer("bob").replacen("Bearer", "bearer", 1);
    assert_eq!(call(app, "/", &[&lower]).await.body, "bob");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(auth.stats().authenticated, 2);
}

#[tokio::test]
async fn no_bearer_credentials_get_a_bare_challenge() {
    let auth = service().await;
    let calls = Inner::default();
    let app = AuthLayer::new(auth.clone()).layer(echo(&calls));
    for authorization in [&[][..], &["Basic YWRhOnNlY3JldA=="]] {
        let answer = call(app.clone(), "/", authorization).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert_eq!(answer.challenge(), Some("Bearer"), "{authorization:?}");
        assert_eq!(answer.body, "");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "a refused request ran");
    assert_eq!(auth.stats().rejected_tokens, 0, "nothing was authenticated");
}

/// Malformed, forged, expired, revoked, and a verified token of an unknown user: one
/// answer for all, so that a client learns nothing about why.
#[tokio::test]
async fn refused_tokens_get_one_answer_that_names_no_reason() {
    let auth = service().await;
    let calls = Inner::default();
    let app = AuthLayer::new(auth.clone()).layer(echo(&calls));
    let revoked = bearer("ada");
    auth.logout(&revoked).await.unwrap();
    let forged = TokenIssuer::hs256(b"not-the-secret-of-this-service!!")
        .issue("ada", Duration::from_secs(600))
        .unwrap();
    let refused = [
        "Bearer".to_owned(),
        "Bearer not a token".to_owned(),
        "Bearer not-a-jwt".to_owned(),
        format!("Bearer {forged}"),
        expired_bearer("ada"),
        revoked,
        bearer("nobody-of-that-name"),
    ];
    for authorization in &refused {
        let answer = call(app.clone(), "/", &[authorization]).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{authorization}");
        assert_eq!(answer.challenge(), Some(INVALID_TOKEN), "{authorization}");
        assert_eq!(
            answer.headers.len(),
            1,
            "{authorization}: {:?}",
            answer.headers
        );
        assert_eq!(answer.body, "", "{authorization}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "a refused request ran");
    // Five reached `authenticate` (the two malformed headers did not): four bad tokens,
    // one unknown user.
    let stats = auth.stats();
    assert_eq!((stats.rejected_tokens, stats.rejected_users), (4, 1));
}

#[tokio::test]
async fn two_authorization_headers_are_a_bad_request() {
    let calls = Inner::default();
    let app = AuthLayer::new(service().await).layer(echo(&calls));
    let ada = bearer("ada");
    let answer = call(app, "/", &[&ada, &ada]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.challenge(),
        Some(r#"Bearer error="invalid_request""#)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_disabled_user_is_forbidden_without_a_challenge() {
    let calls = Inner::default();
    let app = AuthLayer::new(service().await).layer(echo(&calls));
    let answer = call(app, "/", &[&bearer("eve")]).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.challenge(),
        None,
        "the token is fine; the account is not"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_unavailable_repository_is_503_without_the_reason() {
    let mut repository = MockUserRepository::<User>::new();
    repository.expect_find_by_id().returning(|_| {
        Err(RepositoryError::Unavailable(
            "mongodb://10.0.0.5 down".into(),
        ))
    });
    let auth = AuthService::builder()
        .verifier(JwtVerifier::test_hs256())
        .repository(repository)
        .build()
        .await
        .unwrap();
    let calls = Inner::default();
    let answer = call(
        AuthLayer::new(auth.clone()).layer(echo(&calls)),
        "/",
        &[&bearer("ada")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.headers.is_empty(), "{:?}", answer.headers);
    assert_eq!(answer.body, "");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(auth.stats().unavailable, 1);
}

#[tokio::test]
async fn require_role_lets_only_the_role_through() {
    let calls = Inner::default();
    let admin_only = RequireRole::new("admin").layer(echo(&calls));
    let app = AuthLayer::new(service().await).layer(admin_only);
    let ada = call(app.clone(), "/", &[&bearer("ada")]).await;
    assert_eq!((ada.status, ada.body.as_str()), (StatusCode::OK, "ada"));
    let bob = call(app.clone(), "/", &[&bearer("bob")]).await;
    assert_eq!(bob.status, StatusCode::FORBIDDEN);
    assert_eq!(bob.challenge(), Some(INSUFFICIENT_SCOPE));
    assert_eq!(bob.body, "");
    // The authentication layer still answers first.
    let anonymous = call(app, "/", &[]).await;
    assert_eq!(anonymous.challenge(), Some("Bearer"));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "only ada's request ran");
}

#[tokio::test]
async fn require_permission_lets_only_the_permission_through() {
    let calls = Inner::default();
    let writers = RequirePermission::new("users:write").layer(echo(&calls));
    let readers = RequirePermission::new("users:read").layer(echo(&calls));
    let auth = service().await;
    let writers = AuthLayer::new(auth.clone()).layer(writers);
    let readers = AuthLayer::new(auth).layer(readers);
    // bob is a viewer: users:read, not users:write.
    let bob = bearer("bob");
    assert_eq!(call(readers, "/", &[&bob]).await.status, StatusCode::OK);
    let refused = call(writers.clone(), "/", &[&bob]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.challenge(), Some(INSUFFICIENT_SCOPE));
    assert_eq!(
        call(writers, "/", &[&bearer("ada")]).await.status,
        StatusCode::OK
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// A `Require*` layer outside the `AuthLayer` (or alone) is a wiring bug: it must fail
/// closed, loudly (500), not let the request through nor blame the client.
#[tokio::test]
async fn a_require_layer_without_a_principal_refuses_with_500() {
    let calls = Inner::default();
    let misordered =
        RequireRole::new("admin").layer(AuthLayer::new(service().await).layer(echo(&calls)));
    let answer = call(misordered, "/", &[&bearer("ada")]).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.challenge(), None);
    // Nor may a principal of another user type stand in.
    let alone = RequirePermission::new("users:read").layer(echo(&calls));
    assert_eq!(
        call(alone, "/", &[]).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// What a `tracing_subscriber::fmt` subscriber wrote, at `debug`, without colours.
#[derive(Clone, Default)]
struct Logged(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logged {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logged {
    fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish()
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// A missing role or permission is one `debug` event for the operator, with the reason,
/// the user, what was required and a short fingerprint of the token — never the token.
#[tokio::test(flavor = "current_thread")]
async fn a_missing_role_or_permission_is_told_to_the_operator() {
    let calls = Inner::default();
    let auth = service().await;
    let admins = AuthLayer::new(auth.clone()).layer(RequireRole::new("admin").layer(echo(&calls)));
    let writers =
        AuthLayer::new(auth).layer(RequirePermission::new("users:write").layer(echo(&calls)));
    let bob = bearer("bob");
    let fingerprint = &authcache_jwt::fingerprint(&bob)[..8];
    for (service, reason, required) in [
        (admins.clone(), "missing_role", "admin"),
        (writers.clone(), "missing_permission", "users:write"),
    ] {
        let logged = Logged::default();
        let _guard = tracing::subscriber::set_default(logged.subscriber());
        assert_eq!(
            call(service, "/", &[&bob]).await.status,
            StatusCode::FORBIDDEN
        );
        let text = logged.text();
        let refusals: Vec<&str> = text.lines().filter(|l| l.contains("reason=")).collect();
        assert_eq!(refusals.len(), 1, "{text}");
        let line = refusals[0];
        assert!(line.contains("DEBUG"), "{line}");
        for field in [
            format!("reason={reason:?}"),
            r#"user="bob""#.to_owned(),
            format!("token={fingerprint:?}"),
            format!("required={required:?}"),
        ] {
            assert!(line.contains(&field), "no {field} in {line}");
        }
        for part in bob.trim_start_matches("Bearer ").split('.') {
            assert!(!text.contains(part), "logs show {part:?}");
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[cfg(feature = "axum")]
mod with_axum {
    use ::axum::routing::get;
    use ::axum::{Extension, Router};

    use super::*;

    fn router(auth: AuthService) -> Router {
        async fn me(Extension(who): Extension<Principal>) -> String {
            format!("hello {}", who.id())
        }
        Router::new()
            .route("/me", get(me))
            .route(
                "/admin",
                get(|| async { "admin area" }).route_layer(RequireRole::new("admin")),
            )
            .route_layer(AuthLayer::new(auth))
            .route("/healthz", get(|| async { "ok" }))
    }

    #[tokio::test]
    async fn an_axum_router_takes_the_layers() {
        let app = router(service().await);
        let ada = bearer("ada");
        let bob = bearer("bob");
        let me = call(app.clone(), "/me", &[&ada]).await;
        assert_eq!((me.status, me.body.as_str()), (StatusCode::OK, "hello ada"));
        let admin = call(app.clone(), "/admin", &[&ada]).await;
        assert_eq!(
            (admin.status, admin.body.as_str()),
            (StatusCode::OK, "admin area")
        );
        let forbidden = call(app.clone(), "/admin", &[&bob]).await;
        assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
        assert_eq!(forbidden.challenge(), Some(INSUFFICIENT_SCOPE));
        let anonymous = call(app.clone(), "/me", &[]).await;
        assert_eq!(
            (anonymous.status, anonymous.challenge()),
            (StatusCode::UNAUTHORIZED, Some("Bearer"))
        );
        let health = call(app, "/healthz", &[]).await;
        assert_eq!(
            (health.status, health.body.as_str()),
            (StatusCode::OK, "ok")
        );
    }
}
