//! [`Principal`]: who is behind a token and what they may do.

use std::sync::Arc;

use authcache_jwt::Claims;
use authcache_users::{User, UserRecord};

/// The answer of [`crate::AuthService::authenticate`]: the verified claims, the user, their
/// roles and their permissions.
///
/// Cheap to clone: every part is shared (`Arc`) with the cache that produced it, so a
/// principal costs no copy of the user record.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Principal<U = User> {
    /// The user record.
    pub user: Arc<U>,
    /// The names of the user's roles.
    pub roles: Arc<Vec<String>>,
    /// The user's permissions: the union over their roles, sorted, without duplicates.
    pub permissions: Arc<Vec<String>>,
    /// The verified claims of the token.
    pub claims: Arc<Claims>,
}

impl<U: UserRecord> Principal<U> {
    /// Assembles a principal from its parts.
    pub fn new(
        user: Arc<U>,
        roles: Arc<Vec<String>>,
        permissions: Arc<Vec<String>>,
        claims: Arc<Claims>,
    ) -> Self {
        Self {
            user,
            roles,
            permissions,
            claims,
        }
    }

    /// The user id.
    pub fn id(&self) -> &str {
        self.user.id()
    }

    /// Whether the user has the role `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the user has the permission `permission` (binary search: the list is sorted).
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions
            .binary_search_by(|p| p.as_str().cmp(permission))
            .is_ok()
    }
}
