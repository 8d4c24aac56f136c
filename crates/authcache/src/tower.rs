//! [tower](https://docs.rs/tower) middleware: authenticate every request of a service, and
//! require roles or permissions of some.
//!
//! [`AuthLayer`] reads `Authorization: Bearer <token>`, calls
//! [`AuthService::authenticate`], and puts the [`Principal`](crate::Principal) in the
//! request extensions for the handlers (axum: `Extension<Principal>`). [`RequireRole`] and [`RequirePermission`]
//! then let through only the principals that have a role or a permission. Refusals follow
//! RFC 6750 §3 and tell the class of the problem, never its reason:
//!
//! | request | status | `WWW-Authenticate` |
//! |---|---|---|
//! | no bearer credentials | 401 | `Bearer` |
//! | malformed, forged, expired or revoked token, unknown user | 401 | `Bearer error="invalid_token"` |
//! | two `Authorization` headers | 400 | `Bearer error="invalid_request"` |
//! | disabled user | 403 | — |
//! | missing role or permission | 403 | `Bearer error="insufficient_scope"` |
//! | the repository could not answer | 503 | — (logged at `warn`) |
//!
//! The operator gets the reason: every refusal of a token is a `debug` event of
//! [`AuthService::authenticate`] (target `authcache::refusal`, field `reason`), and a
//! missing role or permission one with `reason` = `missing_role` / `missing_permission`,
//! the `user`, what was `required` and a short fingerprint of the token (`token`, 8 hex
//! characters) — never the token itself.
//!
//! The body of a refusal is empty (`ResBody::default()`), so the layers fit any service over
//! [`http::Request`] whose response body has a default — axum routers included:
//!
//! ```
//! use authcache::{AuthService, Principal};
//! use authcache::tower::{AuthLayer, RequirePermission, RequireRole};
//! use axum::{Extension, Router, routing::{delete, get}};
//!
//! async fn me(Extension(who): Extension<Principal>) -> String {
//!     format!("hello {}", who.id())
//! }
//!
//! fn app(auth: AuthService) -> Router {
//!     Router::new()
//!         .route("/me", get(me))
//!         // Layers added later run earlier: each `Require*` runs inside the `AuthLayer`.
//!         .route("/admin", get(|| async { "admin" }).route_layer(RequireRole::new("admin")))
//!         .route("/users/{id}", delete(|| async { "deleted" })
//!             .route_layer(RequirePermission::new("users:write")))
//!         .route_layer(AuthLayer::new(auth))
//!         // Added after `route_layer`: not authenticated.
//!         .route("/healthz", get(|| async { "ok" }))
//! }
//! ```
//!
//! The axum extractor ([`crate::axum::Authenticated`], feature `axum`) stays: use it where
//! a few handlers of a router authenticate, and the layer where a whole router does.

mod bearer;
mod rejection;
mod require;
#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::tower::{Layer, Service};
use authcache_users::{User, UserRecord};
use http::{Request, Response};

pub(crate) use bearer::authenticate_headers;
pub use bearer::bearer_token;
pub use rejection::AuthRejection;
pub use require::{RequirePermission, RequireRole, RequireService};

use crate::AuthService;

/// The futures of the middleware services: one allocation per request, against a verified
/// token's microseconds; it keeps the services nameable without pinning projections.
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A layer that authenticates every request with an [`AuthService`]; see the
/// [module docs](self).
pub struct AuthLayer<U: UserRecord = User> {
    auth: AuthService<U>,
}

impl<U: UserRecord> AuthLayer<U> {
    /// Authenticates with `auth` (a clone of the application's service: they share
    /// everything).
    pub fn new(auth: AuthService<U>) -> Self {
        Self { auth }
    }
}

impl<U: UserRecord> Clone for AuthLayer<U> {
    fn clone(&self) -> Self {
        Self::new(self.auth.clone())
    }
}

impl<U: UserRecord> fmt::Debug for AuthLayer<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("auth", &self.auth)
            .finish()
    }
}

impl<S, U: UserRecord> Layer<S> for AuthLayer<U> {
    type Service = AuthMiddleware<S, U>;

    fn layer(&self, inner: S) -> AuthMiddleware<S, U> {
        AuthMiddleware {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service of [`AuthLayer`]: calls the inner service only for authenticated requests,
/// with their [`Principal`](crate::Principal) in the extensions.
pub struct AuthMiddleware<S, U: UserRecord = User> {
    inner: S,
    auth: AuthService<U>,
}

impl<S: Clone, U: UserRecord> Clone for AuthMiddleware<S, U> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            auth: self.auth.clone(),
        }
    }
}

impl<S, U: UserRecord> fmt::Debug for AuthMiddleware<S, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthMiddleware")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl<S, U, B, ResBody> Service<Request<B>> for AuthMiddleware<S, U>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    U: UserRecord,
    B: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The instance that was polled ready serves this request; a fresh clone waits for
        // the next `poll_ready` (tower's usual dance for services that await first).
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let auth = self.auth.clone();
        Box::pin(async move {
            match authenticate_headers(&auth, request.headers()).await {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                    inner.call(request).await
                }
                Err(rejection) => Ok(rejection.to_response()),
            }
        })
    }
}
