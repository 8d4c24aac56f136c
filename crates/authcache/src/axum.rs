//! [axum] integration: handlers take an [`Authenticated`] argument and get a verified
//! [`Principal`], or the client gets an RFC 6750 answer.
//!
//! The extractor reads `Authorization: Bearer <token>`, finds the [`AuthService`] in the
//! router state through [`FromRef`] (the service itself as the state, or a field of yours),
//! and calls [`AuthService::authenticate`]. A refusal is an [`AuthRejection`]: 401 with a
//! `WWW-Authenticate: Bearer` challenge (`error="invalid_token"` when a token was presented
//! and refused), 403 for a disabled user, 503 when the answer could not be had. The response
//! body is a short fixed text: it never echoes the token, and never a backend's error (503s
//! are logged at `warn` instead).
//!
//! ```
//! use authcache::AuthService;
//! use authcache::axum::{AuthRejection, Authenticated};
//! use axum::{Router, extract::FromRef, routing::get};
//!
//! #[derive(Clone)]
//! struct AppState {
//!     auth: AuthService,
//! }
//!
//! impl FromRef<AppState> for AuthService {
//!     fn from_ref(state: &AppState) -> Self {
//!         state.auth.clone()
//!     }
//! }
//!
//! async fn me(who: Authenticated) -> String {
//!     format!("hello {}", who.id())
//! }
//!
//! async fn delete_user(who: Authenticated) -> Result<&'static str, AuthRejection> {
//!     who.require_permission("users:write")?;
//!     Ok("deleted")
//! }
//!
//! fn app(auth: AuthService) -> Router {
//!     Router::new()
//!         .route("/me", get(me))
//!         .route("/users/{id}/delete", get(delete_user))
//!         .with_state(AppState { auth })
//! }
//! ```
//!
//! `Option<Authenticated>` is an extractor too: `None` when the request carries no bearer
//! credentials at all, a rejection when it carries a bad token.

use std::ops::Deref;

use ::axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use ::axum::http::HeaderValue;
use ::axum::http::header::WWW_AUTHENTICATE;
use ::axum::http::request::Parts;
use ::axum::response::{IntoResponse, Response};
use authcache_users::{User, UserRecord};

use crate::refusal::{MISSING_PERMISSION, report_missing};
pub use crate::tower::AuthRejection;
use crate::tower::{authenticate_headers, bearer_token};
use crate::{AuthError, AuthService, Principal};

/// A request whose bearer token [`AuthService::authenticate`] accepted: dereferences to its
/// [`Principal`].
#[derive(Debug, Clone)]
pub struct Authenticated<U = User>(pub Principal<U>);

impl<U: UserRecord> Authenticated<U> {
    /// The principal, by value.
    pub fn into_inner(self) -> Principal<U> {
        self.0
    }

    /// Refuses the request (403, `error="insufficient_scope"`) unless the user has
    /// `permission`; use with `?` in a handler returning `Result<_, AuthRejection>`.
    ///
    /// # Errors
    /// [`AuthRejection::Forbidden`] when the permission is missing.
    pub fn require_permission(&self, permission: &str) -> Result<(), AuthRejection> {
        if self.0.has_permission(permission) {
            Ok(())
        } else {
            // The token is not at hand here: the event names the user, not the token.
            let user = self.0.id();
            report_missing(MISSING_PERMISSION, user, permission, None);
            Err(AuthRejection::Forbidden)
        }
    }
}

impl<U> Deref for Authenticated<U> {
    type Target = Principal<U>;

    fn deref(&self) -> &Principal<U> {
        &self.0
    }
}

impl<S, U> FromRequestParts<S> for Authenticated<U>
where
    S: Send + Sync,
    U: UserRecord,
    AuthService<U>: FromRef<S>,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthRejection> {
        let service = AuthService::<U>::from_ref(state);
        Ok(Self(authenticate_headers(&service, &parts.headers).await?))
    }
}

impl<S, U> OptionalFromRequestParts<S> for Authenticated<U>
where
    S: Send + Sync,
    U: UserRecord,
    AuthService<U>: FromRef<S>,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, AuthRejection> {
        if bearer_token(&parts.headers)?.is_none() {
            return Ok(None);
        }
        let service = AuthService::<U>::from_ref(state);
        Ok(Some(Self(
            authenticate_headers(&service, &parts.headers).await?,
        )))
    }
}

/// The extractor's answers carry a short fixed text naming the refusal (the layers of
/// [`crate::tower`] answer with an empty body instead).
impl AuthRejection {
    /// The response body: fixed text, never the token nor a backend's error.
    fn body(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing bearer token",
            Self::MalformedToken | Self::Auth(AuthError::Token(_)) => "invalid bearer token",
            Self::AmbiguousCredentials => "more than one Authorization header",
            Self::Auth(AuthError::Revoked) => "token revoked",
            Self::Auth(AuthError::UnknownUser) => "unknown user",
            Self::Auth(AuthError::Disabled) => "user disabled",
            Self::Auth(AuthError::Unavailable { .. }) => "authentication unavailable",
            Self::Auth(_) => "authentication failed",
            Self::Forbidden => "missing permission",
            Self::MissingPrincipal => "authentication not configured",
        }
    }
}

/// Answers with [`AuthRejection::status`], [`AuthRejection::challenge`] and a short fixed
/// text.
impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        self.log_if_server_side();
        let mut response = (self.status(), self.body()).into_response();
        if let Some(challenge) = self.challenge() {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ::axum::Router;
    use ::axum::body::{Body, to_bytes};
    use ::axum::http::header::AUTHORIZATION;
    use ::axum::http::{Request, StatusCode};
    use ::axum::routing::get;
    use authcache_jwt::TokenIssuer;
    use tower::ServiceExt;

    use super::*;
    use crate::test_support::service;

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

    struct Answer {
        status: StatusCode,
        challenge: Option<String>,
        body: String,
    }

    async fn call(app: &Router, path: &str, authorization: &[&str]) -> Answer {
        let mut request = Request::get(path);
        for value in authorization {
            request = request.header(AUTHORIZATION, *value);
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = to_bytes(response.into_body(), 1024).await.unwrap();
        Answer {
            status,
            challenge,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    async fn get_me(app: &Router, authorization: &str) -> Answer {
        call(app, "/me", &[authorization]).await
    }

    fn assert_invalid_token(answer: &Answer, token: &str) {
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            answer.challenge.as_deref(),
            Some(r#"Bearer error="invalid_token""#)
        );
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
        assert_eq!(answer.challenge, None);
        // The scheme is case-insensitive.
        let answer = get_me(&app, &format!("bearer {}", token("ada"))).await;
        assert_eq!(answer.body, "hello ada");
    }

    #[tokio::test]
    async fn no_bearer_credentials_get_a_bare_challenge() {
        let app = app(service().await);
        for authorization in [&[][..], &["Basic YWRhOnNlY3JldA=="], &["Bearer"]] {
            let answer = call(&app, "/me", authorization).await;
            let expected = if authorization == ["Bearer"] {
                r#"Bearer error="invalid_token""#
            } else {
                "Bearer"
            };
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{authorization:?}");
            assert_eq!(
                answer.challenge.as_deref(),
                Some(expected),
                "{authorization:?}"
            );
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
        let answer = call(&app, "/me", &[&bearer, &bearer]).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            answer.challenge.as_deref(),
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
        let ada = call(&app, "/write", &[&format!("Bearer {}", token("ada"))]).await;
        assert_eq!((ada.status, ada.body.as_str()), (StatusCode::OK, "written"));
        let bob = call(&app, "/write", &[&format!("Bearer {}", token("bob"))]).await;
        assert_eq!(bob.status, StatusCode::FORBIDDEN);
        assert_eq!(
            bob.challenge.as_deref(),
            Some(r#"Bearer error="insufficient_scope""#)
        );
    }

    #[tokio::test]
    async fn the_optional_extractor_lets_anonymous_requests_through() {
        let app = app(service().await);
        let anonymous = call(&app, "/maybe", &[]).await;
        assert_eq!(anonymous.body, "anonymous");
        let ada = call(&app, "/maybe", &[&format!("Bearer {}", token("ada"))]).await;
        assert_eq!(ada.body, "ada");
        let forged = call(&app, "/maybe", &["Bearer not-a-jwt"]).await;
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
}
