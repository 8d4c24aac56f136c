//! Envoy's `ext_authz` over gRPC: `envoy.service.auth.v3.Authorization/Check`.
//!
//! # What Envoy sends
//! A `CheckRequest` whose `attributes.request.http` is the client's request: `method`,
//! `path` (with its query, as sent), `host`, and the headers — in `headers` (lower-case
//! names, repeated headers merged with `,`) or, with `encode_raw_headers: true`, in
//! `header_map` (one entry per header; `headers` then stays empty). The credential is read
//! from them as on `/auth` ([`crate::credential`]): the `authorization` header, else the
//! configured cookie. A client that sends two `Authorization` headers is refused either
//! way: merged, they are no token; kept apart, they are ambiguous.
//!
//! `attributes.context_extensions` is the route's requirement, the same keys as the query
//! of `/auth` ([`crate::policy`]): `role`, `permission`, `match`. When the route sets none,
//! the rules of `[server.policy]` apply to the original method, host and path. An unknown
//! key or a bad `match` refuses the request (500) and is logged at `warn`: a typo in
//! Envoy's configuration must not let everyone through.
//!
//! # What is answered
//! | decision | `status` | `http_response` |
//! |---|---|---|
//! | allowed | `OK` (0) | `ok_response`: the identity headers ([`crate::identity`]), each overwriting what the client sent under that name; `headers_to_remove: ["authorization"]` with `[server] strip_authorization = true` |
//! | 401 | `UNAUTHENTICATED` (16) | `denied_response`: status 401 and `www-authenticate` |
//! | 403 | `PERMISSION_DENIED` (7) | `denied_response`: status 403 (and `www-authenticate` for a missing scope) |
//! | 503 | `UNAVAILABLE` (14) | `denied_response`: status 503 |
//! | 500 | `INTERNAL` (13) | `denied_response`: status 500 |
//!
//! Envoy sends the denied status and headers to the client, with no body; the reason of a
//! refusal is logged ([`crate::decision`]), never answered. The RPC itself always succeeds:
//! a gRPC error would be Envoy's `failure_mode_allow` case, which is for an unreachable
//! sidecar, not for a refused request.
//!
//! # Envoy configuration
//! ```yaml
//! http_filters:
//!   - name: envoy.filters.http.ext_authz
//!     typed_config:
//!       "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
//!       transport_api_version: V3
//!       failure_mode_allow: false
//!       grpc_service:
//!         envoy_grpc: { cluster_name: authcache }
//!         timeout: 1s
//!   - name: envoy.filters.http.router
//!     typed_config:
//!       "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
//!
//! # in a route: what this route requires (else the [server.policy] rules apply)
//! routes:
//!   - match: { prefix: "/admin/" }
//!     route: { cluster: app }
//!     typed_per_filter_config:
//!       envoy.filters.http.ext_authz:
//!         "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute
//!         check_settings:
//!           context_extensions: { role: admin, permission: "users:write", match: all }
//!
//! # the sidecar's `grpc_listen`, spoken to in HTTP/2
//! clusters:
//!   - name: authcache
//!     type: STATIC
//!     typed_extension_protocol_options:
//!       envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
//!         "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
//!         explicit_http_config: { http2_protocol_options: {} }
//!     load_assignment:
//!       cluster_name: authcache
//!       endpoints:
//!         - lb_endpoints:
//!             - endpoint:
//!                 address: { socket_address: { address: 127.0.0.1, port_value: 9182 } }
//! ```

#[cfg(test)]
mod tests;

use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, DeniedHttpResponse,
    HeaderAppendAction, HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::envoy::config::core::v3::HeaderValue as ProtoHeaderValue;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::pb::google::rpc;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tonic::Code;

use crate::credential;
use crate::decision::{Decider, Decision, Denial};
use crate::policy::Requirement;
use crate::request::OriginalRequest;
use crate::telemetry::Via;

/// The gRPC service: one [`Decider`], the cookie name, and whether to strip
/// `authorization`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ExtAuthz {
    decider: Decider,
    cookie: Option<Arc<str>>,
    strip_authorization: bool,
}

impl ExtAuthz {
    /// A service deciding with `decider`; `cookie` names the cookie that may carry the token
    /// when there is no `Authorization` header; `strip_authorization` tells Envoy to remove
    /// `authorization` from the request it lets through.
    pub fn new(decider: Decider, cookie: Option<String>, strip_authorization: bool) -> Self {
        Self {
            decider,
            cookie: cookie.map(Arc::from),
            strip_authorization,
        }
    }

    /// The tonic service to serve on the gRPC listener.
    pub fn into_service(self) -> AuthorizationServer<Self> {
        AuthorizationServer::new(self)
    }

    /// The answer to one `CheckRequest`.
    async fn answer(&self, check: &CheckRequest) -> CheckResponse {
        let Some((attributes, http)) = check.attributes.as_ref().and_then(|attributes| {
            let http = attributes.request.as_ref()?.http.as_ref()?;
            Some((attributes, http))
        }) else {
            tracing::warn!(
                target: "authcache_server::decision",
                "a CheckRequest without attributes.request.http: use the HTTP ext_authz filter"
            );
            return self.misconfigured();
        };
        let requirement = match Requirement::from_pairs(&attributes.context_extensions) {
            Ok(requirement) => requirement,
            Err(error) => {
                tracing::warn!(
                    target: "authcache_server::decision",
                    %error,
                    "Envoy's context_extensions are wrong"
                );
                return self.misconfigured();
            }
        };
        let request = original_request(http);
        let headers = header_map(http);
        let credential = credential::read(&headers, self.cookie.as_deref());
        let verdict = self.decider.verdict(&request, requirement);
        match self
            .decider
            .decide(credential, &request, verdict, Via::Grpc)
            .await
        {
            Decision::Allow { headers } => self.allowed(&headers),
            Decision::Deny(denial) => denied(denial),
        }
    }

    /// A request refused before it reaches the decider, counted like its decisions.
    fn misconfigured(&self) -> CheckResponse {
        denied(self.decider.refuse(Denial::Misconfigured, Via::Grpc))
    }

    fn allowed(&self, identity: &[(HeaderName, HeaderValue)]) -> CheckResponse {
        let headers_to_remove = if self.strip_authorization {
            vec![AUTHORIZATION.as_str().to_owned()]
        } else {
            Vec::new()
        };
        let ok = OkHttpResponse {
            headers: identity
                .iter()
                .map(|(name, value)| overwrite(name, value))
                .collect(),
            headers_to_remove,
            ..OkHttpResponse::default()
        };
        response(Code::Ok, HttpResponse::OkResponse(ok))
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthz {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(self.answer(request.get_ref()).await))
    }
}

/// The client's request as Envoy describes it.
fn original_request(http: &HttpRequest) -> OriginalRequest {
    let uri = if http.path.is_empty() {
        "/".to_owned()
    } else {
        http.path.clone()
    };
    OriginalRequest {
        method: http.method.clone(),
        uri,
        host: (!http.host.is_empty()).then(|| http.host.clone()),
    }
}

/// The client's headers: `headers` when Envoy filled it, else `header_map`
/// (`encode_raw_headers`). Pseudo-headers (`:path`, …) and anything that is not a valid
/// header name or value are left out.
fn header_map(http: &HttpRequest) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut add = |name: &str, value: &[u8]| {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    };
    if !http.headers.is_empty() {
        for (name, value) in &http.headers {
            add(name, value.as_bytes());
        }
    } else if let Some(map) = &http.header_map {
        for ProtoHeaderValue {
            key,
            value,
            raw_value,
        } in &map.headers
        {
            // Envoy fills `raw_value` here; `value` is the older, textual form.
            let bytes = if raw_value.is_empty() {
                value.as_bytes()
            } else {
                raw_value
            };
            add(key, bytes);
        }
    }
    headers
}

/// A request header set to `value`, replacing any the client sent: `append_action` for
/// current Envoys, and the deprecated `append = false`, which takes precedence when
/// present and means the same.
fn overwrite(name: &HeaderName, value: &HeaderValue) -> HeaderValueOption {
    #[allow(deprecated)]
    HeaderValueOption {
        header: Some(ProtoHeaderValue {
            key: name.as_str().to_owned(),
            // Envoy reads `value` (not `raw_value`) here; the identity's values are
            // UTF-8 text, so nothing is lost.
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            raw_value: Vec::new(),
        }),
        append: Some(BoolValue { value: false }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd.into(),
        keep_empty_value: false,
    }
}

/// A refusal: the gRPC code of its HTTP status, the status and the challenge for the client.
fn denied(denial: Denial) -> CheckResponse {
    let status = denial.status();
    let code = match status {
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
        _ => Code::Internal,
    };
    let headers = denial
        .challenge()
        .map(|challenge| overwrite(&WWW_AUTHENTICATE, &challenge))
        .into_iter()
        .collect();
    let denied = DeniedHttpResponse {
        status: Some(HttpStatus {
            code: i32::from(status.as_u16()),
        }),
        headers,
        body: String::new(),
    };
    response(code, HttpResponse::DeniedResponse(denied))
}

fn response(code: Code, http: HttpResponse) -> CheckResponse {
    CheckResponse {
        status: Some(rpc::Status {
            code: i32::from(code),
            message: String::new(),
            details: Vec::new(),
        }),
        http_response: Some(http),
        dynamic_metadata: None,
    }
}
