//! One decision for every form of the question (nginx, Caddy, Traefik, Envoy HTTP and
//! gRPC): authenticate the credential with the [`AuthService`], apply the policy's
//! [`Verdict`], and answer [`Decision::Allow`] with the identity headers or a [`Denial`].
//!
//! | denial | status | `WWW-Authenticate` |
//! |---|---|---|
//! | [`Denial::MissingToken`] | 401 | `Bearer` |
//! | [`Denial::InvalidToken`]: malformed, forged, expired, revoked, unknown user | 401 | `Bearer error="invalid_token"` |
//! | [`Denial::InsufficientScope`]: a role or permission missing, or `default = "deny"` | 403 | `Bearer error="insufficient_scope"` |
//! | [`Denial::Disabled`]: the user is disabled | 403 | — |
//! | [`Denial::Unavailable`]: not cached, and the repository cannot answer | 503 | — |
//! | [`Denial::Misconfigured`]: a bad policy parameter from the proxy, or a stored value no header can carry | 500 | — |
//!
//! nginx's `auth_request` passes 401 and 403 (with their challenge) to the client and turns
//! anything else into 500; the other proxies pass every status. The reason of a refusal is
//! logged (target `authcache::refusal`, by the facade; `authcache_server::decision` here),
//! never answered, and never with the token.

use std::sync::Arc;

use authcache::{AuthError, AuthService, Principal};
use http::{HeaderName, HeaderValue, StatusCode};

use crate::credential::Credential;
use crate::identity;
use crate::policy::{Missing, Policy, Requirement, Verdict};
use crate::request::OriginalRequest;
use crate::telemetry::{Counters, Via};

/// What the proxy is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let the request through, with these headers for the upstream.
    Allow {
        /// The identity headers (see [`identity`]).
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    /// Refuse it.
    Deny(Denial),
}

/// Why a request is refused; see the [module docs](self) for the answer of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// No credentials.
    MissingToken,
    /// A token that does not authenticate (which way is never said).
    InvalidToken,
    /// A valid token without what the route requires.
    InsufficientScope,
    /// A valid token of a disabled user.
    Disabled,
    /// The answer is not cached and the repository cannot give it.
    Unavailable,
    /// The proxy's parameters or the stored user cannot be used.
    Misconfigured,
}

impl Denial {
    /// The HTTP status to answer.
    pub fn status(self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope | Self::Disabled => StatusCode::FORBIDDEN,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Misconfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3), when the denial has one.
    pub fn challenge(self) -> Option<HeaderValue> {
        match self {
            Self::MissingToken => Some(HeaderValue::from_static("Bearer")),
            Self::InvalidToken => Some(HeaderValue::from_static(r#"Bearer error="invalid_token""#)),
            Self::InsufficientScope => Some(HeaderValue::from_static(
                r#"Bearer error="insufficient_scope""#,
            )),
            Self::Disabled | Self::Unavailable | Self::Misconfigured => None,
        }
    }

    /// The label of the `authcache_server_decisions_total` metric and of the log.
    pub fn label(self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::Disabled => "disabled",
            Self::Unavailable => "unavailable",
            Self::Misconfigured => "misconfigured",
        }
    }
}

/// Decides requests: the service, the policy and how to name the identity. Cheap to clone.
#[derive(Clone)]
pub struct Decider {
    auth: AuthService,
    policy: Arc<Policy>,
    forwarded_headers: bool,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Decider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decider")
            .field("policy", &self.policy)
            .field("forwarded_headers", &self.forwarded_headers)
            .finish_non_exhaustive()
    }
}

impl Decider {
    /// A decider on `auth` with `policy`; `forwarded_headers` adds the `X-Forwarded-*`
    /// spelling of the identity.
    pub fn new(auth: AuthService, policy: Policy, forwarded_headers: bool) -> Self {
        Self {
            auth,
            policy: Arc::new(policy),
            forwarded_headers,
            counters: Arc::default(),
        }
    }

    /// The service it asks.
    pub fn auth(&self) -> &AuthService {
        &self.auth
    }

    /// The decisions counted so far, by outcome (exported by `/metrics`).
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The verdict for `request`: the proxy's own requirement when it gave one (query
    /// parameters of `/auth`, Envoy's `context_extensions`), else the policy's rules.
    pub fn verdict(&self, request: &OriginalRequest, proxy: Option<Requirement>) -> Verdict {
        match proxy {
            Some(requirement) => Verdict::Require(requirement),
            None => self
                .policy
                .verdict(request.host.as_deref(), &request.method, request.path()),
        }
    }

    /// Decides one request: `via` names the front in metrics and logs.
    pub async fn decide(
        &self,
        credential: Credential<'_>,
        request: &OriginalRequest,
        verdict: Verdict,
        via: Via,
    ) -> Decision {
        let decision = self.judge(credential, verdict).await;
        let outcome = match &decision {
            Decision::Allow { .. } => "allowed",
            Decision::Deny(denial) => denial.label(),
        };
        self.counters.count(via, outcome);
        tracing::debug!(
            target: "authcache_server::decision",
            via = via.label(),
            outcome,
            method = %request.method,
            path = %request.path(),
            "decision"
        );
        decision
    }

    /// A refusal decided before a credential was read (the proxy's parameters are wrong),
    /// counted and logged like any other decision.
    pub fn refuse(&self, denial: Denial, via: Via) -> Denial {
        self.counters.count(via, denial.label());
        tracing::debug!(target: "authcache_server::decision", via = via.label(), outcome = denial.label(), "decision");
        denial
    }

    async fn judge(&self, credential: Credential<'_>, verdict: Verdict) -> Decision {
        let authenticated = match credential {
            Credential::Token(token) => Some(
                self.auth
                    .authenticate(token)
                    .await
                    .map_err(|error| denial_of(&error)),
            ),
            Credential::Missing => None,
            Credential::Malformed => Some(Err(Denial::InvalidToken)),
        };
        match (verdict, authenticated) {
            // A public route: a valid token still names who it is, anything else is no one.
            (Verdict::Anonymous, Some(Ok(principal))) => self.allow(Some(&principal)),
            (Verdict::Anonymous, _) => self.allow(None),
            (_, None) => Decision::Deny(Denial::MissingToken),
            (_, Some(Err(denial))) => Decision::Deny(denial),
            (Verdict::Deny, Some(Ok(_))) => Decision::Deny(Denial::InsufficientScope),
            (Verdict::Require(requirement), Some(Ok(principal))) => {
                match requirement.check(&principal) {
                    Ok(()) => self.allow(Some(&principal)),
                    Err(missing) => {
                        tracing::debug!(
                            target: "authcache::refusal",
                            reason = match missing {
                                Missing::Role => "missing_role",
                                Missing::Permission => "missing_permission",
                            },
                            user = principal.id(),
                            required = ?requirement,
                            "refused"
                        );
                        Decision::Deny(Denial::InsufficientScope)
                    }
                }
            }
        }
    }

    fn allow(&self, principal: Option<&Principal>) -> Decision {
        match identity::headers(principal, self.forwarded_headers) {
            Ok(headers) => Decision::Allow { headers },
            Err(error) => {
                tracing::warn!(target: "authcache_server::decision", %error, "refused");
                Decision::Deny(Denial::Misconfigured)
            }
        }
    }
}

fn denial_of(error: &AuthError) -> Denial {
    match error {
        AuthError::Disabled => Denial::Disabled,
        AuthError::Unavailable { .. } => Denial::Unavailable,
        AuthError::Config(_) => Denial::Misconfigured,
        _ => Denial::InvalidToken,
    }
}
