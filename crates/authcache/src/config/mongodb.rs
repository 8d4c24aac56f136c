//! The MongoDB settings of `[repository]`, as adopters' databases need them: how `_id`s
//! are stored, and what the collections and fields are called.

use serde::Deserialize;

use super::RepositoryConfig;

/// How user ids are stored in `_id` (`id_kind`); see
/// [`IdKind`](authcache_users::IdKind) for the rules. Parsed whatever features are on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum MongoIdKind {
    /// Per document: a 24-hex id matches an ObjectId or a string `_id`; new documents get a
    /// string `_id` (`"auto"`, the default).
    #[default]
    Auto,
    /// Every `_id` is an ObjectId, and a token's `sub` is its hex (`"object-id"`).
    #[serde(
        alias = "objectid",
        alias = "objectId",
        alias = "ObjectId",
        alias = "object_id"
    )]
    ObjectId,
    /// Every `_id` is a string (`"string"`).
    String,
}

/// Stored names of the fields of user and role documents (`[repository.fields]`); each one
/// left out keeps the record's own name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct MongoFieldNames {
    /// The user's email (the unique index is on it).
    pub email: Option<String>,
    /// The user's display name.
    pub name: Option<String>,
    /// The user's role names.
    pub roles: Option<String>,
    /// Whether the user is disabled.
    pub disabled: Option<String>,
    /// When the user record last changed.
    #[serde(alias = "updatedAt")]
    pub updated_at: Option<String>,
    /// The permissions of a role document.
    pub permissions: Option<String>,
}

impl MongoFieldNames {
    /// `(record field, stored name)` of the user fields given another name.
    #[cfg(feature = "mongodb")]
    fn user_fields(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("email", &self.email),
            ("name", &self.name),
            ("roles", &self.roles),
            ("disabled", &self.disabled),
            ("updated_at", &self.updated_at),
        ]
        .into_iter()
        .filter_map(|(record, stored)| stored.as_deref().map(|stored| (record, stored)))
    }
}

#[cfg(feature = "mongodb")]
impl From<MongoIdKind> for authcache_users::IdKind {
    fn from(kind: MongoIdKind) -> Self {
        match kind {
            MongoIdKind::Auto => Self::Auto,
            MongoIdKind::ObjectId => Self::ObjectId,
            MongoIdKind::String => Self::String,
        }
    }
}

impl RepositoryConfig {
    /// The driver settings of a MongoDB repository (the defaults for any other backend).
    #[cfg(feature = "mongodb")]
    pub(crate) fn mongo_options(&self) -> authcache_users::MongoOptions {
        use authcache_users::{MongoOptions, MongoSchema};

        let options = MongoOptions::default();
        let Self::Mongodb {
            timeout_ms,
            id_kind,
            users_collection,
            roles_collection,
            fields,
            create_indexes,
            ..
        } = self
        else {
            return options;
        };
        let mut schema = MongoSchema::default();
        if let Some(name) = users_collection {
            schema = schema.users_collection(name);
        }
        if let Some(name) = roles_collection {
            schema = schema.roles_collection(name);
        }
        if let Some(name) = &fields.permissions {
            schema = schema.permissions_field(name);
        }
        for (record, stored) in fields.user_fields() {
            schema = schema.user_field(record, stored);
        }
        let options = options
            .schema(schema)
            .id_kind((*id_kind).into())
            .create_indexes(create_indexes.unwrap_or(true));
        // Zero leaves the load unbounded, never the driver: a zero driver timeout would fail
        // every operation at once.
        match timeout_ms.filter(|ms| *ms > 0) {
            Some(ms) => options.operation_timeout(std::time::Duration::from_millis(ms)),
            None => options,
        }
    }
}
