//! The one error type of the facade, and how it maps to an HTTP status.

use authcache_jwt::TokenError;

/// Why a request could not be authenticated, or a service could not be built.
///
/// Branch on the kind with [`AuthError::status_code`] (what to answer the client) or by
/// matching; the enum is `#[non_exhaustive]` so new kinds can be added without a breaking
/// change. No variant carries a `redis::` or `mongodb::` type: backend errors are wrapped as
/// text, with credentials already removed by the backend crates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The bearer token is malformed, badly signed, expired, too large, … (401).
    #[error("invalid token: {0}")]
    Token(#[from] TokenError),
    /// The token was revoked by a logout (401).
    #[error("token revoked")]
    Revoked,
    /// The token's subject is not a known user (401).
    #[error("unknown user")]
    UnknownUser,
    /// The user exists but is disabled (403).
    #[error("user disabled")]
    Disabled,
    /// The answer is not cached and the system of record cannot be reached (503).
    #[error("authentication backend unavailable: {reason}")]
    Unavailable {
        /// What failed, without credentials.
        reason: String,
    },
    /// The service could not be built from its configuration (500; never returned by
    /// [`crate::AuthService::authenticate`]).
    #[error("configuration error: {0}")]
    Config(String),
}

impl AuthError {
    /// Wraps any displayable backend error as [`AuthError::Unavailable`].
    pub fn unavailable(reason: impl std::fmt::Display) -> Self {
        Self::Unavailable {
            reason: reason.to_string(),
        }
    }

    /// The HTTP status a web service should answer with: 401 for anything wrong with the
    /// token or its subject, 403 for a disabled user, 503 when the answer could not be had,
    /// 500 for a configuration error.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Token(_) | Self::Revoked | Self::UnknownUser => 401,
            Self::Disabled => 403,
            Self::Unavailable { .. } => 503,
            Self::Config(_) => 500,
        }
    }

    /// `true` when the request may succeed if retried later (the backend was unavailable).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// Result of facade operations.
pub type Result<T, E = AuthError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests;
