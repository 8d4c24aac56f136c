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
mod tests;
