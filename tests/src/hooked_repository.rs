//! [`HookedRepository`]: a repository that runs a hook after `find_by_id` has read its
//! answer and before it returns it — "a repository that delays its answer after reading",
//! the tool that makes a race between a load and an invalidation deterministic.
#![cfg(feature = "users")]

use std::sync::Arc;

use async_trait::async_trait;
use authcache_users::{RepositoryError, User, UserRepository};
use futures::future::BoxFuture;

/// Runs after `find_by_id(id)` has read, before it answers: hold, signal, or never return.
pub type AfterRead = Arc<dyn Fn(&str) -> BoxFuture<'static, ()> + Send + Sync>;

/// Another repository, with a hook after every `find_by_id` read; everything else is
/// passed through untouched.
pub struct HookedRepository {
    inner: Arc<dyn UserRepository>,
    after_read: AfterRead,
}

impl HookedRepository {
    /// Wraps `inner`, running `after_read` after each `find_by_id` has read.
    pub fn new(inner: Arc<dyn UserRepository>, after_read: AfterRead) -> Self {
        Self { inner, after_read }
    }
}

#[async_trait]
impl UserRepository for HookedRepository {
    async fn find_by_id(&self, id: &str) -> Result<Option<User>, RepositoryError> {
        let found = self.inner.find_by_id(id).await;
        (self.after_read)(id).await;
        found
    }

    async fn find_many(&self, ids: &[String]) -> Result<Vec<User>, RepositoryError> {
        self.inner.find_many(ids).await
    }

    async fn permissions_for_roles(
        &self,
        roles: &[String],
    ) -> Result<Vec<String>, RepositoryError> {
        self.inner.permissions_for_roles(roles).await
    }

    async fn upsert(&self, user: &User) -> Result<(), RepositoryError> {
        self.inner.upsert(user).await
    }

    async fn delete(&self, id: &str) -> Result<bool, RepositoryError> {
        self.inner.delete(id).await
    }
}
