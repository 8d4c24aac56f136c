//! The user model: [`User`], and the [`UserRecord`] trait that lets an application bring its own.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// What authcache needs to know about a user document, whatever its shape.
///
/// Repositories and the facade are generic over `U: UserRecord` (with [`User`] as the default),
/// so an application can keep its own document type. The value must round-trip through the
/// cache codec (bincode: no `#[serde(untagged)]`, no `serde_json::Value`, no
/// `#[serde(flatten)]`, no `skip_serializing_if`) and, for MongoDB, through BSON with the id
/// stored as `_id` (`#[serde(rename = "_id")]`).
pub trait UserRecord: Send + Sync + Clone + Serialize + DeserializeOwned + 'static {
    /// The user id: the document's `_id` and the cache key's id.
    fn id(&self) -> &str;
    /// The names of the roles granted to the user.
    fn roles(&self) -> &[String];
    /// Whether the account is disabled (authentication is refused).
    fn disabled(&self) -> bool;
    /// The unique email address, if the type has one.
    ///
    /// [`MemoryUserRepository`](crate::MemoryUserRepository) enforces its uniqueness the way
    /// the unique `email` index does in MongoDB. The default is `None` (nothing to enforce).
    fn email(&self) -> Option<&str> {
        None
    }
}

/// The default user document.
///
/// Stored in MongoDB as `{_id, email, name, roles, disabled, updated_at}` and in the cache
/// with bincode. JSON seed files may spell the id `"_id"` or `"id"`; `name`, `roles`, `disabled`
/// and `updated_at` may be omitted there and in stored documents.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct User {
    /// The user id (MongoDB `_id`).
    #[serde(rename = "_id", alias = "id")]
    pub id: String,
    /// The email address; unique across users.
    pub email: String,
    /// The display name; empty when the stored document has none.
    #[serde(default)]
    pub name: String,
    /// The names of the roles granted to the user.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Whether the account is disabled.
    #[serde(default)]
    pub disabled: bool,
    /// When the record last changed, in milliseconds since the Unix epoch.
    #[serde(default)]
    pub updated_at: i64,
}

impl User {
    /// A user with no roles, enabled, `updated_at` zero.
    pub fn new(id: impl Into<String>, email: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            email: email.into(),
            name: name.into(),
            roles: Vec::new(),
            disabled: false,
            updated_at: 0,
        }
    }

    /// The same user with these roles.
    #[must_use]
    pub fn with_roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// The same user, disabled or enabled.
    #[must_use]
    pub fn with_disabled(mut self, disabled: bool) -> Self {
        self.disabled = disabled;
        self
    }

    /// The same user with `updated_at` set (milliseconds since the Unix epoch).
    #[must_use]
    pub fn with_updated_at(mut self, unix_millis: i64) -> Self {
        self.updated_at = unix_millis;
        self
    }
}

impl UserRecord for User {
    fn id(&self) -> &str {
        &self.id
    }

    fn roles(&self) -> &[String] {
        &self.roles
    }

    fn disabled(&self) -> bool {
        self.disabled
    }

    fn email(&self) -> Option<&str> {
        Some(&self.email)
    }
}

#[cfg(test)]
mod tests;
