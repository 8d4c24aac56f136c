//! [`Revocation`]: how far a logout has reached when the call returns.
//!
//! A revocation is in force on the instance that made it before anything is written
//! (the sticky marks of [`crate::tokens`]), so a shared cache that refuses the write does
//! not make the logout fail: it makes it *pending* — retried in the background until the
//! shared cache accepts it, and only then announced to the other instances. A caller that
//! retried a logout answered with an error would find its token already refused (401);
//! answering success with the pending state says what is true.

use authcache_core::CacheError;

use crate::{AuthError, Result};

/// How far a [`logout`](crate::AuthService::logout),
/// [`logout_all`](crate::AuthService::logout_all) or
/// [`revoke_issued_before`](crate::AuthService::revoke_issued_before) has reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Revocation {
    /// Recorded in the shared cache and announced: every instance refuses the token(s)
    /// within the bus delay, and instances started later too.
    Recorded,
    /// In force on this instance at once; the shared cache refused it (Redis down, hung
    /// or out of memory), so it is retried in the background until it is accepted, and
    /// the other instances follow then. Counted in
    /// [`Stats::pending_revocations`](crate::Stats::pending_revocations) meanwhile.
    Pending,
    /// Nothing was written: the token had expired, or a revocation at least as long was
    /// already in force.
    AlreadyInForce,
}

impl Revocation {
    /// Whether every instance refuses the token(s) now (or within the bus delay).
    pub fn is_shared(self) -> bool {
        !matches!(self, Self::Pending)
    }

    /// The outcome of the writes a revocation made: the mark, and the invalidation of the
    /// user's cached data that goes with it (when there is one). A key that cannot be built
    /// names no user; any other refusal leaves the write pending and retried (both kinds
    /// retry what the shared cache refused: see [`crate::tokens::Marks::put`] and
    /// `Tiered::delete`).
    pub(crate) fn of_writes(
        what: &str,
        writes: impl IntoIterator<Item = std::result::Result<(), CacheError>>,
    ) -> Result<Self> {
        let mut outcome = Self::Recorded;
        for write in writes {
            match write {
                Ok(()) => {}
                Err(CacheError::InvalidKey(_)) => return Err(AuthError::UnknownUser),
                Err(error) => {
                    tracing::warn!(
                        %error,
                        "{what}: the shared cache did not record it; in force on this instance \
                         and retried until it does (other instances follow then)"
                    );
                    outcome = Self::Pending;
                }
            }
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests;
