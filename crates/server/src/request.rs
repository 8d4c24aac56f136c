//! The request the proxy is asking about, as each proxy tells it.
//!
//! | proxy | method | path | host |
//! |---|---|---|---|
//! | Caddy, Traefik (`forward_auth`) | `X-Forwarded-Method` | `X-Forwarded-Uri` | `X-Forwarded-Host` |
//! | nginx (`auth_request`, with `proxy_set_header`) | `X-Original-Method` | `X-Original-URI` | `X-Original-Host`, else `Host` |
//! | Envoy HTTP (`/auth` + original path) | the request's | what follows `/auth` | `Host` |
//!
//! The `X-Forwarded-*` and `X-Original-*` headers are trusted as the proxy's: the sidecar
//! must be reachable only from the proxy (they choose which rule applies, never who the
//! caller is — that takes a valid token).

use http::{HeaderMap, Method};

/// The proxied request: what the policy's rules match on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalRequest {
    /// The method, upper-case as sent.
    pub method: String,
    /// The path and query, as sent.
    pub uri: String,
    /// The host (with its port, if any), when known.
    pub host: Option<String>,
}

impl OriginalRequest {
    /// The original request of a call to `/auth` (`suffix` = `None`) or `/auth/<suffix>`
    /// (Envoy's HTTP mode, which forwards the client's method and appends its path).
    pub fn from_http(method: &Method, suffix: Option<&str>, headers: &HeaderMap) -> Self {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        if let Some(suffix) = suffix {
            return Self {
                method: method.as_str().to_owned(),
                uri: format!("/{}", suffix.trim_start_matches('/')),
                host: text("host"),
            };
        }
        let method = text("x-forwarded-method")
            .or_else(|| text("x-original-method"))
            .unwrap_or_else(|| method.as_str().to_owned());
        let uri = text("x-forwarded-uri")
            .or_else(|| text("x-original-uri"))
            .unwrap_or_else(|| "/".to_owned());
        let host = text("x-forwarded-host")
            .or_else(|| text("x-original-host"))
            .or_else(|| text("host"));
        Self { method, uri, host }
    }

    /// The path without its query.
    pub fn path(&self) -> &str {
        self.uri.split(['?', '#']).next().unwrap_or_default()
    }
}
