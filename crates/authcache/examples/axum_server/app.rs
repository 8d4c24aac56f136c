//! The router of the `axum_server` example: what a service built on authcache serves.
//! Kept apart from `main.rs` so that `tests/tests/http_server.rs` serves the very same
//! router over real HTTP.
//!
//! | route | who | answers |
//! |---|---|---|
//! | `GET /me` | any authenticated user | the principal as JSON |
//! | `GET /admin` | role `admin` | a greeting |
//! | `POST /logout` | any authenticated user | 204; the presented token is refused from now on, on every instance |
//! | `POST /logout-all` | any authenticated user | 204; every token of the user issued so far is refused |
//! | `GET /healthz` | anyone | breaker, invalidation-bus and repository-watcher state as JSON |
//! | `GET /metrics` | anyone | Prometheus text: the `authcache_*` metrics |

use std::sync::Arc;

use authcache::axum::AuthRejection;
use authcache::tower::{AuthLayer, RequireRole, bearer_token};
use authcache::{AuthService, BreakerState, Principal};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
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
async fn logout(State(app): State<App>, headers: HeaderMap) -> Result<StatusCode, AuthRejection> {
    let token = bearer_token(&headers)?.ok_or(AuthRejection::MissingToken)?;
    app.auth.logout(token).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn logout_all(
    State(app): State<App>,
    Extension(who): Extension<Principal>,
) -> Result<StatusCode, AuthRejection> {
    app.auth.logout_all(who.id()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Always 200: with Redis down or its bus unsubscribed the instance still answers (from
/// its L1 and the repository), so taking it out of a load balancer would not help; the
/// body says what is degraded.
async fn healthz(State(app): State<App>) -> impl IntoResponse {
    let stats = app.auth.stats();
    let breaker = stats.breaker.map(|b| match b.state {
        BreakerState::Closed => "closed",
        BreakerState::HalfOpen => "half-open",
        BreakerState::Open => "open",
    });
    let bus = stats
        .bus_subscribed
        .map(|up| if up { "subscribed" } else { "unsubscribed" });
    let watcher = stats
        .watcher
        .map(|w| if w.is_down() { "down" } else { "up" });
    let degraded = breaker.is_some_and(|b| b != "closed")
        || bus == Some("unsubscribed")
        || watcher == Some("down")
        || stats.marks_evictable;
    json(&serde_json::json!({
        "status": if degraded { "degraded" } else { "ok" },
        "breaker": breaker.unwrap_or("none"),
        "bus": bus.unwrap_or("none"),
        "watcher": watcher.unwrap_or("none"),
        "pending_revocations": stats.pending_revocations,
        "marks_evictable": stats.marks_evictable,
    }))
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
