//! How an adopter's documents map onto records: the kind of `_id`, the collection names and
//! the stored names of fields.
//!
//! # Ids
//! A record's id is always a string. With [`IdKind::Auto`] (the default) an id of 24 hex
//! digits — `str(ObjectId)` in Python, `id.toHexString()` in TypeScript — matches a document
//! whose `_id` is that ObjectId *or* that string, whichever the document has; any other id
//! matches a string `_id` only. An ObjectId `_id` is read back as its lowercase hex, so a
//! token's `sub` and the cached record's id agree.
//!
//! # Writes
//! authcache `$set`s the fields of the record type and nothing else, so fields it does not
//! know (`last_login`, `password_hash`, …) are never removed. A document it creates gets a
//! string `_id`, except with [`IdKind::ObjectId`], which stores the ObjectId.

use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, Document, RawBsonRef, RawDocument, RawDocumentBuf, doc};

use crate::error::{RepositoryError, Result};

/// The default users collection (`_id` = user id).
pub const USERS_COLLECTION: &str = "users";
/// The default roles collection: `{_id: role, permissions: [...]}`.
pub const ROLES_COLLECTION: &str = "roles";
/// The default field of a role document listing its permissions.
pub const PERMISSIONS_FIELD: &str = "permissions";

/// How user ids are stored in `_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum IdKind {
    /// Per document: a 24-hex id matches an ObjectId or a string `_id`, any other id a
    /// string `_id`; new documents get a string `_id`.
    #[default]
    Auto,
    /// Every `_id` is an ObjectId: ids that are not 24 hex digits match nothing and cannot
    /// be written; new documents get an ObjectId `_id`.
    ObjectId,
    /// Every `_id` is a string (authcache's own layout): ids are never read as ObjectIds.
    String,
}

impl IdKind {
    /// The `_id` values that may hold `id`, in order of preference for a new document;
    /// empty when no document can hold it.
    fn candidates(self, id: &str) -> Vec<Bson> {
        let object_id = parse_object_id(id).map(Bson::ObjectId);
        match self {
            Self::Auto => [Some(Bson::String(id.to_owned())), object_id]
                .into_iter()
                .flatten()
                .collect(),
            Self::ObjectId => object_id.into_iter().collect(),
            Self::String => vec![Bson::String(id.to_owned())],
        }
    }

    /// The filter matching the document of `id`; `None` when no document can match.
    pub(super) fn filter(self, id: &str) -> Option<Document> {
        let mut candidates = self.candidates(id);
        match candidates.len() {
            0 => None,
            1 => candidates.pop().map(|only| doc! { "_id": only }),
            _ => Some(doc! { "_id": { "$in": candidates } }),
        }
    }

    /// The `_id` values that may hold any of `ids`.
    pub(super) fn all_candidates<'a>(self, ids: impl IntoIterator<Item = &'a str>) -> Vec<Bson> {
        ids.into_iter().flat_map(|id| self.candidates(id)).collect()
    }

    /// Whether the change feed and `ids_after` name ObjectId documents (by their hex): under
    /// every kind that can find them ([`IdKind::ObjectId`] and [`IdKind::Auto`]), so a raw
    /// write to an ObjectId user is invalidated like any other.
    pub(super) fn feeds_object_ids(self) -> bool {
        matches!(self, Self::ObjectId | Self::Auto)
    }

    /// The `_id` a new document for `id` gets.
    ///
    /// # Errors
    /// [`RepositoryError::InvalidRecord`] when `id` cannot be stored under this kind.
    pub(super) fn new_document_id(self, id: &str) -> Result<Bson> {
        self.candidates(id)
            .into_iter()
            .next()
            .ok_or_else(|| RepositoryError::InvalidRecord {
                id: id.to_owned(),
                reason: "ids are stored as ObjectIds, and this id is not 24 hex digits".into(),
            })
    }
}

/// An ObjectId spelled as 24 hex digits.
fn parse_object_id(id: &str) -> Option<ObjectId> {
    (id.len() == 24)
        .then(|| ObjectId::parse_str(id).ok())
        .flatten()
}

/// The string id of a stored `_id`: a string as is, an ObjectId as lowercase hex; `None`
/// for any other type (no record id can name it).
///
/// The change feed and `ids_after` name ObjectId documents only when
/// [`IdKind::feeds_object_ids`] says so.
pub(super) fn canonical_id(id: RawBsonRef<'_>) -> Option<String> {
    match id {
        RawBsonRef::String(id) => Some(id.to_owned()),
        RawBsonRef::ObjectId(id) => Some(id.to_hex()),
        _ => None,
    }
}

/// Where users and roles live and what their fields are called.
///
/// The defaults are authcache's own layout: `users` and `roles`, fields named as the
/// record type names them, permissions in `permissions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MongoSchema {
    users_collection: String,
    roles_collection: String,
    permissions_field: String,
    /// `(record field, stored field)`, for the fields stored under another name.
    user_fields: Vec<(String, String)>,
}

impl Default for MongoSchema {
    fn default() -> Self {
        Self {
            users_collection: USERS_COLLECTION.to_owned(),
            roles_collection: ROLES_COLLECTION.to_owned(),
            permissions_field: PERMISSIONS_FIELD.to_owned(),
            user_fields: Vec::new(),
        }
    }
}

impl MongoSchema {
    /// Sets the collection holding user documents.
    #[must_use]
    pub fn users_collection(mut self, name: impl Into<String>) -> Self {
        self.users_collection = name.into();
        self
    }

    /// Sets the collection holding role documents.
    #[must_use]
    pub fn roles_collection(mut self, name: impl Into<String>) -> Self {
        self.roles_collection = name.into();
        self
    }

    /// Sets the field of a role document that lists its permissions.
    #[must_use]
    pub fn permissions_field(mut self, name: impl Into<String>) -> Self {
        self.permissions_field = name.into();
        self
    }

    /// Stores the record type's field `record_field` (for [`User`](crate::User): `email`,
    /// `name`, `roles`, `disabled`, `updated_at`) under the name `stored_field`. The unique
    /// index is on the stored name of `email`.
    #[must_use]
    pub fn user_field(mut self, record_field: &str, stored_field: impl Into<String>) -> Self {
        self.user_fields
            .retain(|(record, _)| record != record_field);
        self.user_fields
            .push((record_field.to_owned(), stored_field.into()));
        self
    }

    /// The users collection's name.
    pub fn users(&self) -> &str {
        &self.users_collection
    }

    /// The roles collection's name.
    pub fn roles(&self) -> &str {
        &self.roles_collection
    }

    /// The stored name of the roles' permissions field.
    pub fn permissions(&self) -> &str {
        &self.permissions_field
    }

    /// The stored name of the record field `record_field`.
    pub fn stored_name<'a>(&'a self, record_field: &'a str) -> &'a str {
        self.user_fields
            .iter()
            .find(|(record, _)| record == record_field)
            .map_or(record_field, |(_, stored)| stored)
    }

    /// Rejects names MongoDB would misread (`$…`, dotted paths, `_id`) and two record fields
    /// stored under one name.
    ///
    /// # Errors
    /// [`RepositoryError::Backend`] naming the offending name.
    pub(super) fn validate(&self) -> Result<()> {
        let collections = [&self.users_collection, &self.roles_collection];
        if let Some(bad) = collections.iter().find(|name| name.is_empty()) {
            return Err(schema_error(&format!("empty collection name {bad:?}")));
        }
        let fields = self
            .user_fields
            .iter()
            .flat_map(|(record, stored)| [record, stored])
            .chain([&self.permissions_field]);
        for field in fields {
            if field.is_empty() || field.starts_with('$') || field.contains('.') || field == "_id" {
                return Err(schema_error(&format!("unusable field name {field:?}")));
            }
        }
        let mut stored: Vec<&str> = self.user_fields.iter().map(|(_, s)| s.as_str()).collect();
        stored.sort_unstable();
        if let Some(pair) = stored.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(schema_error(&format!(
                "two record fields are stored as {:?}",
                pair[0]
            )));
        }
        Ok(())
    }

    /// A stored user document as the record type reads it: the `_id` as its string id and
    /// renamed fields under their record names. Borrowed when nothing needs changing.
    pub(super) fn read_user<'a>(&self, stored: &'a RawDocument) -> Result<UserDocument<'a>> {
        let object_id = matches!(stored.get("_id"), Ok(Some(RawBsonRef::ObjectId(_))));
        let renamed = self.user_fields.iter().any(|(record, s)| record != s);
        if !object_id && !renamed {
            return Ok(UserDocument::Stored(stored));
        }
        let mut read = RawDocumentBuf::new();
        for element in stored {
            let (key, value) = element.map_err(|e| RepositoryError::Corrupt {
                id: super::repository::document_id(stored),
                reason: e.to_string(),
            })?;
            if key == "_id" {
                match canonical_id(value) {
                    Some(id) => read.append("_id", id),
                    None => read.append_ref("_id", value),
                }
            } else if let Some(record) = self.record_name(key) {
                read.append_ref(record, value);
            } else if !self.is_renamed_away(key) {
                read.append_ref(key, value);
            }
        }
        Ok(UserDocument::Read(read))
    }

    /// The `$set` of a record's fields (its `_id` left out), under their stored names.
    pub(super) fn write_user(&self, mut record: Document) -> Document {
        record.remove("_id");
        record
            .into_iter()
            .map(|(key, value)| (self.stored_name(&key).to_owned(), value))
            .collect()
    }

    /// The record field stored under `stored`, when it is renamed.
    fn record_name(&self, stored: &str) -> Option<&str> {
        self.user_fields
            .iter()
            .find(|(_, s)| s == stored)
            .map(|(record, _)| record.as_str())
    }

    /// A stored field that shares its name with a renamed record field: not the record's.
    fn is_renamed_away(&self, key: &str) -> bool {
        self.user_fields
            .iter()
            .any(|(record, stored)| record == key && stored != key)
    }
}

/// A user document ready to decode.
pub(super) enum UserDocument<'a> {
    /// Stored as the record type reads it.
    Stored(&'a RawDocument),
    /// Rewritten for the record type.
    Read(RawDocumentBuf),
}

impl std::ops::Deref for UserDocument<'_> {
    type Target = RawDocument;

    fn deref(&self) -> &RawDocument {
        match self {
            Self::Stored(document) => document,
            Self::Read(document) => document,
        }
    }
}

fn schema_error(what: &str) -> RepositoryError {
    RepositoryError::Backend(format!("invalid MongoDB schema: {what}"))
}

/// The smallest string of 24 lowercase hex digits (an ObjectId's hex) greater than `after`,
/// by byte order (MongoDB's order of strings); `None` when there is none.
pub(super) fn object_id_hex_after(after: &str) -> Option<String> {
    const DIGITS: &[u8] = b"0123456789abcdef";
    let after = after.as_bytes();
    let hex_prefix = after
        .iter()
        .take(24)
        .take_while(|b| DIGITS.contains(b))
        .count();
    if hex_prefix == after.len() && hex_prefix < 24 {
        // `after` is a proper prefix of the answer.
        let mut hex = String::from_utf8_lossy(after).into_owned();
        hex.extend(std::iter::repeat_n('0', 24 - hex.len()));
        return Some(hex);
    }
    // Raise the last position that can be raised, at or before the first non-hex byte.
    (0..=hex_prefix.min(23)).rev().find_map(|i| {
        let next = DIGITS.iter().find(|&&d| d > after[i])?;
        let mut hex = String::from_utf8_lossy(&after[..i]).into_owned();
        hex.push(char::from(*next));
        hex.extend(std::iter::repeat_n('0', 23 - i));
        Some(hex)
    })
}

#[cfg(test)]
mod tests;
