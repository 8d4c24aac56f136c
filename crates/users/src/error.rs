//! [`RepositoryError`]: what can go wrong talking to the system of record.

use authcache_core::KeyError;

/// Why a repository call failed.
///
/// Callers branch on the query methods ([`is_unavailable`](Self::is_unavailable),
/// [`is_timeout`](Self::is_timeout), …) rather than on backend details: no driver type
/// appears here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RepositoryError {
    /// The backend cannot be reached (no server selectable, connection refused or reset).
    #[error("user repository unavailable: {0}")]
    Unavailable(String),
    /// The backend did not answer in time.
    #[error("user repository timed out: {0}")]
    Timeout(String),
    /// A write would break a uniqueness rule (the unique `email` index, MongoDB E11000).
    #[error("duplicate key: {0}")]
    Duplicate(String),
    /// A stored document could not be decoded into the record type.
    #[error("stored record {id:?} is corrupt: {reason}")]
    Corrupt {
        /// The id (`_id`) of the offending document.
        id: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A record could not be encoded for storage.
    #[error("record {id:?} cannot be stored: {reason}")]
    InvalidRecord {
        /// The id of the record.
        id: String,
        /// Why it could not be encoded.
        reason: String,
    },
    /// A user id or role name is empty, longer than 256 bytes, or contains whitespace or a
    /// control character (the rule of [`authcache_core::key::validate_id`]).
    #[error("invalid id: {0}")]
    InvalidId(#[from] KeyError),
    /// Seed data (JSON) could not be read or parsed.
    #[error("invalid seed data: {0}")]
    Seed(String),
    /// Any other backend failure (authentication, configuration, an unexpected server error).
    #[error("user repository error: {0}")]
    Backend(String),
}

impl RepositoryError {
    /// The backend cannot be reached.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// The backend did not answer in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout(_))
    }

    /// Unavailable or timed out: the call may succeed later, and the request deserves a 503
    /// rather than a 401.
    pub fn is_transient(&self) -> bool {
        self.is_unavailable() || self.is_timeout()
    }

    /// A uniqueness rule was violated.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Self::Duplicate(_))
    }

    /// The id of the corrupt stored record, when that is the error.
    pub fn corrupt_id(&self) -> Option<&str> {
        match self {
            Self::Corrupt { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The id or role name was rejected before reaching the backend.
    pub fn is_invalid_id(&self) -> bool {
        matches!(self, Self::InvalidId(_))
    }
}

/// Result of repository calls.
pub type Result<T, E = RepositoryError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests;
