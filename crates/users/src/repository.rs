//! The [`UserRepository`] trait: the system of record as authcache sees it.

use async_trait::async_trait;

use crate::error::Result;
use crate::user::{User, UserRecord};

/// Loads users and the permissions of roles from the system of record.
///
/// Object safe: the facade holds an `Arc<dyn UserRepository<U>>` so the backend is chosen at
/// run time. Every id and role name is validated first (non-empty, at most 256 bytes, no
/// whitespace or control characters) and rejected with [`RepositoryError::InvalidId`]
/// before the backend is asked.
///
/// [`RepositoryError::InvalidId`]: crate::RepositoryError::InvalidId
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait UserRepository<U: UserRecord = User>: Send + Sync {
    /// The user with this id, or `None` when there is none.
    ///
    /// # Errors
    /// [`RepositoryError`](crate::RepositoryError): an invalid id, a corrupt stored record
    /// (naming its id), or the backend unavailable or timing out.
    async fn find_by_id(&self, id: &str) -> Result<Option<U>>;

    /// The users among `ids` that exist, in the order their ids first appear in `ids`;
    /// missing ids are simply absent and duplicates are returned once. One round trip.
    ///
    /// # Errors
    /// As [`find_by_id`](Self::find_by_id); one invalid id fails the whole call.
    async fn find_many(&self, ids: &[String]) -> Result<Vec<U>>;

    /// The union of the permissions of `roles`: sorted, without duplicates. Unknown roles
    /// grant nothing. One round trip (none for an empty slice).
    ///
    /// # Errors
    /// An invalid role name, a corrupt role document (naming the role), or the backend
    /// unavailable or timing out.
    async fn permissions_for_roles(&self, roles: &[String]) -> Result<Vec<String>>;

    /// Inserts the user, or overwrites every field of the record type on the stored user
    /// with the same id. A backend that stores more than the record type holds keeps the
    /// rest: MongoDB `$set`s the record's fields and leaves others (`last_login`, …) as
    /// they are.
    ///
    /// # Errors
    /// [`RepositoryError::Duplicate`](crate::RepositoryError::Duplicate) when another user
    /// has the same email; an invalid id; the backend unavailable or timing out.
    async fn upsert(&self, user: &U) -> Result<()>;

    /// Deletes the user; `true` when there was one.
    ///
    /// # Errors
    /// An invalid id; the backend unavailable or timing out.
    async fn delete(&self, id: &str) -> Result<bool>;

    /// Whether the backend answers now: one cheap round trip, bounded like every call
    /// (MongoDB: the `ping` command under the operation timeout). The default — for
    /// backends in this process, which are always there — answers `Ok` at once. Health
    /// checks call it; requests never do.
    ///
    /// # Errors
    /// The backend unavailable or timing out.
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}

/// Validates every id of a batch, failing on the first bad one.
pub(crate) fn validate_ids(ids: &[String]) -> Result<()> {
    for id in ids {
        authcache_core::key::validate_id(id)?;
    }
    Ok(())
}

/// `ids` without repeats, in order of first appearance.
pub(crate) fn dedup_in_order(ids: &[String]) -> Vec<&str> {
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    ids.iter()
        .map(String::as_str)
        .filter(|id| seen.insert(*id))
        .collect()
}

#[cfg(test)]
mod tests;
