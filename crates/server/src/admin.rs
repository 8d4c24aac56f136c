//! The admin routes: revocation and invalidation for services in any language — what the
//! replaced Python code called after a logout or a profile change.
//!
//! | route | does | answers |
//! |---|---|---|
//! | `POST /logout` | revokes the request's bearer token on every instance | 204; 202 `{"revocation":"pending"}`; 401 for a token that does not verify |
//! | `POST /admin/logout-all/{user}` | refuses every token of `user` issued so far | 204; 202 pending |
//! | `POST /admin/invalidate/user/{id}` | drops the user from every tier of every instance | 204; 503 when Redis did not record it (retry: it is idempotent) |
//! | `POST /admin/invalidate/role/{name}` | drops the role's permissions everywhere | as above |
//!
//! 202 is a success: the revocation is in force on this instance and retried until Redis
//! records it (see [`authcache::Revocation`]); do not retry it.
//!
//! They are served on the admin listener (`admin_listen`, loopback by default). With an
//! admin secret configured (`admin_secret_env` / `admin_secret_file`) every admin route
//! also requires `X-Authcache-Admin: <secret>`, and with `admin_listen = "off"` they are
//! served on the public listener — which needs that secret. They are never routes of
//! `/auth`: a proxy forwarding to `/auth/<path>` cannot reach them.

use std::sync::Arc;

use authcache::tower::bearer_token;
use authcache::{AuthError, AuthService, Revocation};
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::config::ADMIN_SECRET_HEADER;

/// The admin routes on `auth`; every one requires `secret` when there is one.
pub fn router(auth: AuthService, secret: Option<Arc<[u8]>>) -> Router {
    let routes = Router::new()
        .route("/logout", post(logout))
        .route("/admin/logout-all/{user}", post(logout_all))
        .route("/admin/invalidate/user/{id}", post(invalidate_user))
        .route("/admin/invalidate/role/{name}", post(invalidate_role))
        .with_state(auth);
    match secret {
        Some(secret) => routes.route_layer(middleware::from_fn(move |request, next| {
            require_secret(secret.clone(), request, next)
        })),
        None => routes,
    }
}

async fn require_secret(secret: Arc<[u8]>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(ADMIN_SECRET_HEADER)
        .map(HeaderValue::as_bytes);
    if presented.is_some_and(|presented| constant_time_eq(presented, &secret)) {
        next.run(request).await
    } else {
        tracing::warn!(target: "authcache_server::admin", path = %request.uri().path(), "admin call without the admin secret");
        StatusCode::FORBIDDEN.into_response()
    }
}

/// Compares without an early exit, so the time taken does not tell how much of a guess
/// was right (the length is not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Revokes the token the request presents: it must verify, so a forged token cannot be
/// used to flush someone's cache.
async fn logout(State(auth): State<AuthService>, headers: HeaderMap) -> Response {
    let token = match bearer_token(&headers) {
        Ok(Some(token)) => token,
        Ok(None) => return challenge("Bearer"),
        Err(_) => return challenge(r#"Bearer error="invalid_request""#),
    };
    match auth.logout(token).await {
        Ok(revocation) => revoked(revocation),
        Err(AuthError::Token(_)) => challenge(r#"Bearer error="invalid_token""#),
        Err(error) => failed(&error),
    }
}

async fn logout_all(State(auth): State<AuthService>, Path(user): Path<String>) -> Response {
    match auth.logout_all(&user).await {
        Ok(revocation) => revoked(revocation),
        Err(error) => failed(&error),
    }
}

async fn invalidate_user(State(auth): State<AuthService>, Path(id): Path<String>) -> Response {
    match auth.invalidate_user(&id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => failed(&error),
    }
}

async fn invalidate_role(State(auth): State<AuthService>, Path(name): Path<String>) -> Response {
    match auth.invalidate_role(&name).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => failed(&error),
    }
}

/// 204 once every instance refuses; 202 while it is in force here and pending for Redis.
fn revoked(revocation: Revocation) -> Response {
    if revocation.is_shared() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        json(
            StatusCode::ACCEPTED,
            &serde_json::json!({ "revocation": "pending" }),
        )
    }
}

fn challenge(value: &'static str) -> Response {
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static(value));
    response
}

/// An id that cannot be one is the caller's mistake (400); anything else is the backend's
/// (503, retry).
fn failed(error: &AuthError) -> Response {
    let status = match error {
        AuthError::UnknownUser => StatusCode::BAD_REQUEST,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    tracing::warn!(target: "authcache_server::admin", %error, "admin call failed");
    json(status, &serde_json::json!({ "error": error.to_string() }))
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    (
        status,
        [(CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}
