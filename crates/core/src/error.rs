//! The one error type of the cache layer.

use std::time::Duration;

/// What can go wrong when talking to a cache backend or building a key.
///
/// Callers branch on the kind with [`CacheError::is_timeout`] and
/// [`CacheError::is_unavailable`]; backends wrap their client's error in
/// [`CacheError::Unavailable`] so that no `redis::` type leaks upwards.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The backend could not be reached or answered with an error.
    #[error("cache backend unavailable: {reason}")]
    Unavailable {
        /// What the backend said, with credentials already removed.
        reason: String,
    },
    /// The backend did not answer within the configured time.
    #[error("cache backend timed out after {0:?}")]
    Timeout(Duration),
    /// The circuit breaker is open: the backend is skipped until the cool-down ends.
    #[error("cache backend skipped: circuit breaker open")]
    CircuitOpen,
    /// A value could not be encoded or an entry could not be decoded.
    #[error("cache codec error: {0}")]
    Codec(String),
    /// A key or one of its parts was rejected.
    #[error("invalid cache key: {0}")]
    InvalidKey(#[from] KeyError),
    /// Skipped without trying: this request already waited out one L2 failure
    /// ([`crate::breaker::with_l2_budget`]).
    #[error("cache backend skipped: this request already spent its one timeout")]
    Skipped,
    /// The backend does not offer this operation (named).
    #[error("cache backend does not support {0}")]
    Unsupported(&'static str),
}

impl CacheError {
    /// Wraps any displayable backend error as [`CacheError::Unavailable`].
    pub fn unavailable(reason: impl std::fmt::Display) -> Self {
        Self::Unavailable {
            reason: reason.to_string(),
        }
    }

    /// `true` when the backend did not answer in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout(_))
    }

    /// `true` when the backend could not be used at all (down, refused, breaker open).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. } | Self::CircuitOpen | Self::Skipped
        )
    }
}

/// Why an id, prefix or key was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The id is the empty string.
    #[error("id is empty")]
    Empty,
    /// The id is longer than [`crate::key::MAX_ID_LEN`] bytes.
    #[error("id is {len} bytes long; the limit is {max}")]
    TooLong {
        /// The id's length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The id contains whitespace or a control character (at the given byte offset).
    #[error("id contains whitespace or a control character at byte {0}")]
    ForbiddenCharacter(usize),
    /// The prefix is empty or contains whitespace, control characters or `:`.
    #[error(
        "invalid key prefix {0:?}: it must be non-empty, without ':', whitespace or control characters"
    )]
    InvalidPrefix(String),
    /// Not a token fingerprint: 64 lowercase hex digits are expected.
    #[error("not a token fingerprint (64 lowercase hex digits)")]
    NotAFingerprint,
}

/// Result of cache operations.
pub type Result<T, E = CacheError> = std::result::Result<T, E>;
