//! The extractor in an axum router, driven with `ServiceExt::oneshot`.

use std::time::Duration;

use ::axum::Router;
use ::axum::http::StatusCode;
use ::axum::routing::get;
use authcache_jwt::TokenIssuer;

use super::*;
use crate::test_support::{Answer, call, service};

/// A state of the application's own, holding the service: what `FromRef` is for.
#[derive(Clone)]
struct AppState {
    auth: AuthService,
}

impl FromRef<AppState> for AuthService {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

fn token(sub: &str) -> String {
    TokenIssuer::test_hs256()
        .issue(sub, Duration::from_secs(600))
        .unwrap()
}

fn app(auth: AuthService) -> Router {
    async fn me(who: Authenticated) -> String {
        format!("hello {}", who.id())
    }
    async fn write(who: Authenticated) -> Result<&'static str, AuthRejection> {
        who.require_permission("users:write")?;
        Ok("written")
    }
    async fn maybe(who: Option<Authenticated>) -> String {
        who.map_or_else(|| "anonymous".to_owned(), |who| who.id().to_owned())
    }
    Router::new()
        .route("/me", get(me))
        .route("/write", get(write))
        .route("/maybe", get(maybe))
        .with_state(AppState { auth })
}

async fn get_me(app: &Router, authorization: &str) -> Answer {
    call(app.clone(), "/me", &[authorization]).await
}

fn assert_invalid_token(answer: &Answer, token: &str) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenge(), Some(r#"Bearer error="invalid_token""#));
    assert!(
        !token.is_empty() && !answer.body.contains(token),
        "token echoed"
    );
}

#[tokio::test]
async fn a_valid_token_reaches_the_handler() {
    let app = app(service().await);
    let answer = get_me(&app, &format!("Bearer {}", token("ada"))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "hello ada");
    assert_eq!(answer.challenge(), None);
    // The scheme is case-insensitive.
    let answer = get_me(&app, &format!("bearer {}", token("ada"))).await;
    assert_eq!(answer.body, "hello ada");
}

#[tokio::test]
async fn no_bearer_credentials_get_a_bare_challenge() {
    let app = app(service().await);
    for authorization in [&[][..], &["Basic YWRhOnNlY3JldA=="], &["Bearer"]] {
        let answer = call(app.clone(), "/me", authorization).await;
        let expected = if authorization == ["Bearer"] {
            r#"Bearer error="invalid_token""#
        } else {
            "Bearer"
        };
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert_eq!(answer.challenge(), Some(expected), "{authorization:?}");
    }
}

#[tokio::test]
async fn forged_garbled_and_oversized_tokens_are_invalid() {
    let app = app(service().await);
    let forged = TokenIssuer::hs256(b"not-the-secret-of-this-service!!")
        .issue("ada", Duration::from_secs(600))
        .unwrap();
    let oversized = "a".repeat(9 * 1024);
    for token in [forged.as_str(), "not-a-jwt", &oversized] {
        let answer = get_me(&app, &format!("Bearer {token}")).await;
        assert_invalid_token(&answer, token);
    }
    let valid = token("ada");
    for garbled in [
        format!("Bearer {valid} extra"),
        format!("Bearer Bearer {valid}"),
    ] {
        let answer = get_me(&app, &garbled).await;
        assert_invalid_token(&answer, &valid);
    }
}

#[tokio::test]
async fn two_authorization_headers_are_a_bad_request() {
    let app = app(service().await);
    let bearer = format!("Bearer {}", token("ada"));
    let answer = call(app.clone(), "/me", &[&bearer, &bearer]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.challenge(),
        Some(r#"Bearer error="invalid_request""#)
    );
}

#[tokio::test]
async fn a_disabled_user_is_forbidden() {
    let app = app(service().await);
    let answer = get_me(&app, &format!("Bearer {}", token("eve"))).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.body, "user disabled");
}

#[tokio::test]
async fn a_logged_out_token_is_refused() {
    let auth = service().await;
    let app = app(auth.clone());
    let token = token("ada");
    let bearer = format!("Bearer {token}");
    assert_eq!(get_me(&app, &bearer).await.status, StatusCode::OK);
    auth.logout(&bearer).await.unwrap();
    let answer = get_me(&app, &bearer).await;
    assert_invalid_token(&answer, &token);
    assert_eq!(answer.body, "token revoked");
}

#[tokio::test]
async fn permissions_are_checked_in_the_handler() {
    let app = app(service().await);
    let ada = call(
        app.clone(),
        "/write",
        &[&format!("Bearer {}", token("ada"))],
    )
    .await;
    assert_eq!((ada.status, ada.body.as_str()), (StatusCode::OK, "written"));
    let bob = call(
        app.clone(),
        "/write",
        &[&format!("Bearer {}", token("bob"))],
    )
    .await;
    assert_eq!(bob.status, StatusCode::FORBIDDEN);
    assert_eq!(
        bob.challenge(),
        Some(r#"Bearer error="insufficient_scope""#)
    );
}

#[tokio::test]
async fn the_optional_extractor_lets_anonymous_requests_through() {
    let app = app(service().await);
    let anonymous = call(app.clone(), "/maybe", &[]).await;
    assert_eq!(anonymous.body, "anonymous");
    let ada = call(
        app.clone(),
        "/maybe",
        &[&format!("Bearer {}", token("ada"))],
    )
    .await;
    assert_eq!(ada.body, "ada");
    let forged = call(app.clone(), "/maybe", &["Bearer not-a-jwt"]).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn server_side_failures_are_503_without_the_reason() {
    let rejection = AuthRejection::from(AuthError::unavailable("mongodb://10.0.0.5 down"));
    assert_eq!(rejection.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(rejection.challenge(), None);
    assert!(!rejection.body().contains("mongodb"));
    let response = rejection.into_response();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}
