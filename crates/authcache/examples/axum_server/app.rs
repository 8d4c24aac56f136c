//! The router of the `axum_server` example: what a service built on authcache serves.
//! Kept apart from `main.rs` so that `tests/tests/http_server.rs` serves the very same
//! router over real HTTP.
//!
//! | route | who | answers |
//! |---|---|---|
//! | `GET /me` | any authenticated user | the principal as JSON |
//! | `GET /admin` | role `admin` | a greeting |
//! | `POST /logout` | any authenticated user | 204; the presented token is refused from now on, on every instance (202 with `{"revocation":"pending"}` when Redis has not recorded it yet: in force on this instance, retried) |
//! | `POST /logout-all` | any authenticated user | 204 (or 202, pending, as `/logout`); every token of the user issued so far is refused |
//! | `GET /healthz` | anyone | liveness: always 200, with [`AuthService::health`] as JSON (shared cache, repository, watcher, pending changes, `status`) |
//! | `GET /ready` | anyone | readiness: the same JSON, 200 when the instance can answer, 503 when it is down (repository unreachable and no shared cache serving) |
//! | `GET /metrics` | anyone | Prometheus text: the `authcache_*` metrics |

use std::sync::Arc;

use authcache::axum::AuthRejection;
use authcache::tower::{AuthLayer, RequireRole, bearer_token};
use authcache::{AuthService, BreakerState, Health, Principal, Revocation};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

/// What the handlers share.
#[derive(Clone)]
struct App {
    auth: AuthService,
    /// This router's own recorder rather than the process-wide one: two routers in one
    /// process (the integration test runs two servers) each export their own service.
    prometheus: Arc<PrometheusRecorder>,
}

/// The example's routes (see the module docs) on `auth`.
pub(crate) fn router(auth: AuthService) -> Router {
    let prometheus = Arc::new(PrometheusBuilder::new().build_recorder());
    metrics::with_local_recorder(prometheus.as_ref(), authcache::metrics::describe);
    let app = App { auth, prometheus };
    Router::new()
        .route("/me", get(me))
        .route("/admin", get(admin).route_layer(RequireRole::new("admin")))
        .route("/logout", post(logout))
        .route("/logout-all", post(logout_all))
        // Every route above needs a valid token; the two below are for operators.
        .route_layer(AuthLayer::new(app.auth.clone()))
        .route("/healthz", get(healthz))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .with_state(app)
}

fn json(value: &serde_json::Value) -> impl IntoResponse + use<> {
    ([(CONTENT_TYPE, "application/json")], value.to_string())
}

async fn me(Extension(who): Extension<Principal>) -> impl IntoResponse {
    json(&serde_json::json!({
        "id": who.id(),
        "roles": *who.roles,
        "permissions": *who.permissions,
    }))
}

async fn admin(Extension(who): Extension<Principal>) -> String {
    format!("welcome, administrator {}", who.id())
}

/// Revokes the token the request presented: the `AuthLayer` accepted it, so it is there.
async fn logout(State(app): State<App>, headers: HeaderMap) -> Result<Response, AuthRejection> {
    let token = bearer_token(&headers)?.ok_or(AuthRejection::MissingToken)?;
    Ok(revoked(app.auth.logout(token).await?))
}

async fn logout_all(
    State(app): State<App>,
    Extension(who): Extension<Principal>,
) -> Result<Response, AuthRejection> {
    Ok(revoked(app.auth.logout_all(who.id()).await?))
}

/// 204 once every instance refuses the token; 202 while the revocation is in force here
/// and pending for Redis — a success, so the client does not retry a logout that holds.
fn revoked(revocation: Revocation) -> Response {
    if revocation.is_shared() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        let body = serde_json::json!({ "revocation": "pending" });
        (StatusCode::ACCEPTED, json(&body)).into_response()
    }
}

/// Always 200: a process that answers is alive, and restarting it would not bring the
/// repository or Redis back; the body says what is degraded (`/ready` is the one a load
/// balancer should act on).
async fn healthz(State(app): State<App>) -> impl IntoResponse {
    json(&health_body(&app.auth.health().await))
}

/// 200 while the instance can answer (`ok` or `degraded`), 503 when it is `down`: the
/// repository unreachable and no shared cache to serve from.
async fn ready(State(app): State<App>) -> impl IntoResponse {
    let health = app.auth.health().await;
    let status = if health.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, json(&health_body(&health)))
}

/// The health as JSON, with two one-word summaries for dashboards: `breaker` (the shared
/// cache's) and `bus`.
fn health_body(health: &Health) -> serde_json::Value {
    let mut body = serde_json::to_value(health).unwrap_or_default();
    let breaker = match health.shared_cache.breaker {
        BreakerState::Closed => "closed",
        BreakerState::HalfOpen => "half-open",
        BreakerState::Open => "open",
    };
    let bus = health
        .shared_cache
        .bus_subscribed
        .map_or("none", |up| if up { "subscribed" } else { "unsubscribed" });
    if let Some(body) = body.as_object_mut() {
        body.insert("breaker".into(), breaker.into());
        body.insert("bus".into(), bus.into());
    }
    body
}

/// Exports the service's counters at scrape time (see `authcache::metrics`: recording is
/// a separate step, kept off the request path).
async fn metrics_text(State(app): State<App>) -> impl IntoResponse {
    metrics::with_local_recorder(app.prometheus.as_ref(), || app.auth.record_metrics());
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.prometheus.handle().render(),
    )
}
