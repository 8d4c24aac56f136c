//! What a refusal answers (RFC 6750 §3): shared by the tower layers and the axum extractor,
//! so both decide status and challenge alike.

use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, Response, StatusCode};

use crate::AuthError;

/// Why a request was refused — by [`AuthLayer`](super::AuthLayer), a
/// [`RequireRole`](super::RequireRole) / [`RequirePermission`](super::RequirePermission)
/// layer, or the axum extractor — with the [`status`](Self::status) and the
/// `WWW-Authenticate` [`challenge`](Self::challenge) to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthRejection {
    /// No bearer credentials: no `Authorization` header, or another scheme (401, bare
    /// `Bearer` challenge as RFC 6750 §3.1 asks when no token was presented).
    #[error("no bearer token")]
    MissingToken,
    /// The `Authorization` header names the Bearer scheme but its value is not a token (401).
    #[error("malformed bearer token")]
    MalformedToken,
    /// More than one `Authorization` header (400, `error="invalid_request"`).
    #[error("more than one Authorization header")]
    AmbiguousCredentials,
    /// The token was presented and
    /// [`AuthService::authenticate`](crate::AuthService::authenticate) refused it; the status
    /// is [`AuthError::status_code`].
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Authenticated, but without a required role or permission (403,
    /// `error="insufficient_scope"`).
    #[error("missing role or permission")]
    Forbidden,
    /// A `Require*` layer found no [`Principal`](crate::Principal) in the request: it runs
    /// outside [`AuthLayer`](super::AuthLayer), or for another user type. A server bug, so
    /// 500 — and the request is refused, never let through.
    #[error("no principal in the request: the AuthLayer must run before Require* layers")]
    MissingPrincipal,
}

impl AuthRejection {
    /// The HTTP status of the response.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::MalformedToken => StatusCode::UNAUTHORIZED,
            Self::AmbiguousCredentials => StatusCode::BAD_REQUEST,
            Self::Auth(error) => StatusCode::from_u16(error.status_code())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::MissingPrincipal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `WWW-Authenticate` challenge of the response, if it has one (RFC 6750 §3).
    pub fn challenge(&self) -> Option<&'static str> {
        match self {
            Self::MissingToken => Some("Bearer"),
            Self::AmbiguousCredentials => Some(r#"Bearer error="invalid_request""#),
            Self::Forbidden => Some(r#"Bearer error="insufficient_scope""#),
            // A token was presented and refused (malformed, bad, expired, revoked, unknown
            // subject); 403 (disabled), 500 and 503 are not about the token.
            _ if self.status() == StatusCode::UNAUTHORIZED => {
                Some(r#"Bearer error="invalid_token""#)
            }
            _ => None,
        }
    }

    /// The response of the tower layers: [`status`](Self::status),
    /// [`challenge`](Self::challenge), and an empty body — the client learns the class of
    /// the refusal, never its reason (expired, revoked and forged tokens look alike).
    pub fn to_response<B: Default>(&self) -> Response<B> {
        self.log_if_server_side();
        let mut response = Response::new(B::default());
        *response.status_mut() = self.status();
        if let Some(challenge) = self.challenge() {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }

    /// The client gets a fixed answer; the operator gets the reason of a server-side failure.
    pub(crate) fn log_if_server_side(&self) {
        if self.status().is_server_error() {
            tracing::warn!(error = %self, "authentication failed on the server side");
        }
    }
}
