//! The public listener: the decision endpoint `/auth` for nginx, Caddy, Traefik and
//! Envoy's HTTP mode, the operator's `/healthz`, `/ready` and `/metrics`, and the identity
//! provider's `/backchannel-logout`.
//!
//! | route | answers |
//! |---|---|
//! | `ANY /auth` | the decision for the request in `X-Forwarded-*` / `X-Original-*` ([`crate::request`]); the query (`?role=a,b&permission=x&match=all`) is the proxy's requirement ([`crate::policy`]) |
//! | `ANY /auth/<path>` | Envoy's HTTP mode: the decision for `<method> /<path>`; its query is the client's, never policy |
//! | `GET /healthz` | liveness: always 200, [`authcache::AuthService::health`] as JSON |
//! | `GET /ready` | readiness: the same JSON; 503 when the service cannot answer |
//! | `GET /metrics` | Prometheus text: `authcache_*` and `authcache_server_decisions_total` |
//! | `POST /backchannel-logout` | OpenID Connect back-channel logout ([`crate::backchannel`]), when configured |
//!
//! An allowed request gets `200` with the identity headers ([`crate::identity`]) and no
//! body; a refused one its status and challenge ([`crate::decision`]), no body.

use std::sync::Arc;

use authcache::Health;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use crate::backchannel::{self, BackchannelLogout};
use crate::credential;
use crate::decision::{Decider, Decision, Denial};
use crate::policy::{Requirement, Verdict};
use crate::request::OriginalRequest;
use crate::telemetry::Via;

/// What the public routes share.
#[derive(Clone)]
struct Public {
    decider: Decider,
    cookie: Option<Arc<str>>,
    backchannel: Option<Arc<BackchannelLogout>>,
    /// This router's own recorder: two sidecars in one process (the tests run several)
    /// each export their own service.
    prometheus: Arc<PrometheusRecorder>,
}

/// The public routes (see the module docs).
pub fn router(
    decider: Decider,
    cookie: Option<String>,
    backchannel: Option<Arc<BackchannelLogout>>,
) -> Router {
    let prometheus = Arc::new(PrometheusBuilder::new().build_recorder());
    metrics::with_local_recorder(prometheus.as_ref(), authcache::metrics::describe);
    let state = Public {
        decider,
        cookie: cookie.map(Arc::from),
        backchannel,
        prometheus,
    };
    Router::new()
        .route("/auth", any(auth))
        .route("/auth/", any(auth_envoy_root))
        .route("/auth/{*path}", any(auth_envoy))
        .route("/healthz", get(healthz))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/backchannel-logout", post(backchannel_logout))
        .with_state(state)
}

/// nginx, Caddy, Traefik: the original request is in the headers, the policy in the query.
async fn auth(
    State(app): State<Public>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let request = OriginalRequest::from_http(&method, None, &headers);
    let pairs = form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes());
    match Requirement::from_pairs(pairs) {
        Ok(proxy) => {
            let verdict = app.decider.verdict(&request, proxy);
            decide(&app, &headers, &request, verdict).await
        }
        Err(error) => {
            tracing::warn!(target: "authcache_server::decision", %error, "the proxy's policy parameters are wrong");
            denied(app.decider.refuse(Denial::Misconfigured, Via::Http))
        }
    }
}

/// Envoy's HTTP mode for the original path `/`.
async fn auth_envoy_root(
    state: State<Public>,
    method: Method,
    query: RawQuery,
    headers: HeaderMap,
) -> Response {
    auth_envoy(state, method, Path(String::new()), query, headers).await
}

/// Envoy's HTTP mode: `<method> /auth/<original path>`; the query belongs to the client.
async fn auth_envoy(
    State(app): State<Public>,
    method: Method,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let suffix = match query {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let request = OriginalRequest::from_http(&method, Some(&suffix), &headers);
    let verdict = app.decider.verdict(&request, None);
    decide(&app, &headers, &request, verdict).await
}

async fn decide(
    app: &Public,
    headers: &HeaderMap,
    request: &OriginalRequest,
    verdict: Verdict,
) -> Response {
    let credential = credential::read(headers, app.cookie.as_deref());
    match app
        .decider
        .decide(credential, request, verdict, Via::Http)
        .await
    {
        Decision::Allow { headers } => {
            let mut response = Response::new(Body::empty());
            response
                .headers_mut()
                .extend(headers.into_iter().map(|(k, v)| (Some(k), v)));
            response
        }
        Decision::Deny(denial) => denied(denial),
    }
}

/// A refusal: its status, its challenge, no body.
fn denied(denial: Denial) -> Response {
    let mut response = denial.status().into_response();
    if let Some(challenge) = denial.challenge() {
        response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
    }
    response
}

async fn backchannel_logout(State(app): State<Public>, body: Bytes) -> Response {
    match &app.backchannel {
        Some(logout) => backchannel::handle(app.decider.auth(), logout, &body).await,
        None => (
            StatusCode::NOT_FOUND,
            "back-channel logout is not configured ([server.backchannel])",
        )
            .into_response(),
    }
}

fn json(value: &serde_json::Value) -> impl IntoResponse + use<> {
    ([(CONTENT_TYPE, "application/json")], value.to_string())
}

/// Always 200: a process that answers is alive; the body says what is degraded.
async fn healthz(State(app): State<Public>) -> impl IntoResponse {
    json(&health_body(&app.decider.auth().health().await))
}

/// 200 while the service can answer (`ok` or `degraded`), 503 when it is `down`.
async fn ready(State(app): State<Public>) -> impl IntoResponse {
    let health = app.decider.auth().health().await;
    let status = if health.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, json(&health_body(&health)))
}

/// The health as JSON ([`Health`] serializes with `status` first).
fn health_body(health: &Health) -> serde_json::Value {
    serde_json::to_value(health).unwrap_or_default()
}

/// Records the service's and the sidecar's counters at scrape time, then renders them.
async fn metrics_text(State(app): State<Public>) -> impl IntoResponse {
    metrics::with_local_recorder(app.prometheus.as_ref(), || {
        app.decider.auth().record_metrics();
        app.decider.counters().record();
    });
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.prometheus.handle().render(),
    )
}
