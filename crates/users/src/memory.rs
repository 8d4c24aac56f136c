//! [`MemoryUserRepository`]: the embedded repository for the quickstart, tests and small
//! deployments, seeded from code or JSON.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use authcache_core::key::validate_id;
use serde::Deserialize;

use crate::error::{RepositoryError, Result};
use crate::repository::{UserRepository, dedup_in_order, validate_ids};
use crate::user::{User, UserRecord};

/// An in-process user repository with the same rules as the MongoDB one: ids validated,
/// emails unique (like the unique `email` index), permissions the union over roles.
///
/// Reads take a shared lock and clone the record, so concurrent readers never wait on each
/// other. Clones share the same data.
///
/// Seed files are JSON:
///
/// ```json
/// {
///   "users": [{ "id": "u1", "email": "ada@example.com", "name": "Ada", "roles": ["admin"] }],
///   "roles": { "admin": ["users:read", "users:write"] }
/// }
/// ```
#[derive(Debug)]
pub struct MemoryUserRepository<U: UserRecord = User> {
    state: Arc<RwLock<State<U>>>,
}

#[derive(Debug)]
struct State<U> {
    users: HashMap<String, U>,
    /// email → id of the user holding it: the unique index.
    emails: HashMap<String, String>,
    roles: HashMap<String, Vec<String>>,
}

/// The JSON seed document.
#[derive(Deserialize)]
#[serde(bound = "U: UserRecord")]
struct Seed<U> {
    #[serde(default)]
    users: Vec<U>,
    #[serde(default)]
    roles: HashMap<String, Vec<String>>,
}

impl<U: UserRecord> Default for MemoryUserRepository<U> {
    fn default() -> Self {
        Self::new()
    }
}

impl<U: UserRecord> Clone for MemoryUserRepository<U> {
    fn clone(&self) -> Self {
        Self {
            state: Arc::clone(&self.state),
        }
    }
}

impl<U: UserRecord> MemoryUserRepository<U> {
    /// An empty repository.
    pub fn new() -> Self {
        Self {
            state: Arc::new(RwLock::new(State {
                users: HashMap::new(),
                emails: HashMap::new(),
                roles: HashMap::new(),
            })),
        }
    }

    /// The repository with this user added (seeding from code).
    ///
    /// # Errors
    /// [`RepositoryError::InvalidId`] or [`RepositoryError::Duplicate`] (email taken).
    pub fn with_user(self, user: U) -> Result<Self> {
        self.write().upsert(user)?;
        Ok(self)
    }

    /// The repository with this role and its permissions (seeding from code).
    ///
    /// # Errors
    /// [`RepositoryError::InvalidId`] for an invalid role name.
    pub fn with_role<I, S>(self, role: &str, permissions: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.upsert_role(role, permissions)?;
        Ok(self)
    }

    /// Sets the permissions of a role, replacing any it had.
    ///
    /// # Errors
    /// [`RepositoryError::InvalidId`] for an invalid role name.
    pub fn upsert_role<I, S>(&self, role: &str, permissions: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        validate_id(role)?;
        let permissions = permissions.into_iter().map(Into::into).collect();
        self.write().roles.insert(role.to_owned(), permissions);
        Ok(())
    }

    /// A repository seeded from a JSON document (see the type docs for the shape).
    ///
    /// # Errors
    /// [`RepositoryError::Seed`] for malformed JSON; the errors of
    /// [`with_user`](Self::with_user) and [`with_role`](Self::with_role) for bad content.
    pub fn from_json_str(json: &str) -> Result<Self> {
        let seed: Seed<U> =
            serde_json::from_str(json).map_err(|e| RepositoryError::Seed(e.to_string()))?;
        let repository = Self::new();
        for (role, permissions) in seed.roles {
            repository.upsert_role(&role, permissions)?;
        }
        seed.users
            .into_iter()
            .try_fold(repository, |repository, user| repository.with_user(user))
    }

    /// A repository seeded from a JSON file (see the type docs for the shape).
    ///
    /// # Errors
    /// [`RepositoryError::Seed`] when the file cannot be read or parsed (naming the path);
    /// otherwise as [`from_json_str`](Self::from_json_str).
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let json = std::fs::read_to_string(path)
            .map_err(|e| RepositoryError::Seed(format!("{}: {e}", path.display())))?;
        Self::from_json_str(&json).map_err(|e| match e {
            RepositoryError::Seed(reason) => {
                RepositoryError::Seed(format!("{}: {reason}", path.display()))
            }
            other => other,
        })
    }

    /// The number of users stored.
    pub fn len(&self) -> usize {
        self.read().users.len()
    }

    /// Whether no user is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // A panic while holding the lock cannot leave the maps half-updated (every write is a
    // checked sequence of inserts/removes), so a poisoned lock is still good data.
    fn read(&self) -> RwLockReadGuard<'_, State<U>> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State<U>> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<U: UserRecord> State<U> {
    fn upsert(&mut self, user: U) -> Result<()> {
        let id = user.id().to_owned();
        validate_id(&id)?;
        if let Some(email) = user.email()
            && let Some(holder) = self.emails.get(email).filter(|holder| **holder != id)
        {
            return Err(RepositoryError::Duplicate(format!(
                "email {email:?} already belongs to user {holder:?}"
            )));
        }
        self.forget_email_of(&id);
        if let Some(email) = user.email() {
            self.emails.insert(email.to_owned(), id.clone());
        }
        self.users.insert(id, user);
        Ok(())
    }

    fn remove(&mut self, id: &str) -> bool {
        self.forget_email_of(id);
        self.users.remove(id).is_some()
    }

    fn forget_email_of(&mut self, id: &str) {
        if let Some(email) = self.users.get(id).and_then(UserRecord::email) {
            self.emails.remove(email);
        }
    }
}

#[async_trait]
impl<U: UserRecord> UserRepository<U> for MemoryUserRepository<U> {
    async fn find_by_id(&self, id: &str) -> Result<Option<U>> {
        validate_id(id)?;
        Ok(self.read().users.get(id).cloned())
    }

    async fn find_many(&self, ids: &[String]) -> Result<Vec<U>> {
        validate_ids(ids)?;
        let state = self.read();
        Ok(dedup_in_order(ids)
            .into_iter()
            .filter_map(|id| state.users.get(id).cloned())
            .collect())
    }

    async fn permissions_for_roles(&self, roles: &[String]) -> Result<Vec<String>> {
        validate_ids(roles)?;
        let state = self.read();
        let union: BTreeSet<&String> = roles
            .iter()
            .filter_map(|role| state.roles.get(role))
            .flatten()
            .collect();
        Ok(union.into_iter().cloned().collect())
    }

    async fn upsert(&self, user: &U) -> Result<()> {
        // Cloned before the write lock is taken, not under it.
        let user = user.clone();
        self.write().upsert(user)
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        validate_id(id)?;
        Ok(self.write().remove(id))
    }
}

#[cfg(test)]
mod tests;
