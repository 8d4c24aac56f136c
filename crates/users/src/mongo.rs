//! [`MongoUserRepository`]: users and roles in MongoDB, on the official driver.
//!
//! Documents are read as raw BSON and decoded one by one, so a document that does not fit
//! the record type is reported as [`RepositoryError::Corrupt`] naming its `_id`, and never
//! fails a batch anonymously or panics.

use std::collections::{BTreeSet, HashMap};
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::time::Duration;

use async_trait::async_trait;
use authcache_core::key::validate_id;
use mongodb::bson::{RawDocument, RawDocumentBuf, doc};
use mongodb::error::{Error as DriverError, ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, Cursor, IndexModel};
use serde::Deserialize;

use crate::error::{RepositoryError, Result};
use crate::repository::{UserRepository, dedup_in_order, validate_ids};
use crate::user::{User, UserRecord};

/// The collection holding user documents (`_id` = user id).
pub const USERS_COLLECTION: &str = "users";
/// The collection holding roles: `{_id: role, permissions: [...]}`.
pub const ROLES_COLLECTION: &str = "roles";

/// MongoDB's duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;
/// `MaxTimeMSExpired`: the server gave up on the operation.
const MAX_TIME_EXPIRED: i32 = 50;
/// An index on the same keys exists under another name or with other options.
const INDEX_CONFLICTS: [i32; 2] = [85, 86];

/// Timeouts of a [`MongoUserRepository`].
///
/// Values given in the connection string (`connectTimeoutMS`, `serverSelectionTimeoutMS`)
/// take precedence over the connect and server-selection timeouts set here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MongoOptions {
    connect_timeout: Duration,
    server_selection_timeout: Duration,
    operation_timeout: Duration,
}

impl MongoOptions {
    /// 2 s (driver default 10 s): a dead server should be a prompt error, not a stall.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
    /// 2 s (driver default 30 s): when no server can be selected, requests fail fast with
    /// [`RepositoryError::Unavailable`] and are served from the cache where possible.
    pub const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(2);
    /// 5 s: the driver has no socket timeout, so this bounds every call against a server
    /// that accepted the request and then hung.
    pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

    /// Sets the TCP connect timeout.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets how long to wait for a suitable server before failing.
    #[must_use]
    pub fn server_selection_timeout(mut self, timeout: Duration) -> Self {
        self.server_selection_timeout = timeout;
        self
    }

    /// Sets the bound on every repository call, retries included.
    #[must_use]
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }
}

impl Default for MongoOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            server_selection_timeout: Self::DEFAULT_SERVER_SELECTION_TIMEOUT,
            operation_timeout: Self::DEFAULT_OPERATION_TIMEOUT,
        }
    }
}

/// Users in the `users` collection (a unique index on `email`, created at start), roles in
/// `roles` as `{_id: role, permissions: [...]}`.
///
/// The record type must store its id as `_id` (`#[serde(rename = "_id")]`, as [`User`]
/// does). Cheap to clone: clones share the driver's connection pool.
#[derive(Debug)]
pub struct MongoUserRepository<U: UserRecord = User> {
    users: Collection<RawDocumentBuf>,
    roles: Collection<RawDocumentBuf>,
    operation_timeout: Duration,
    record: PhantomData<fn() -> U>,
}

impl<U: UserRecord> Clone for MongoUserRepository<U> {
    fn clone(&self) -> Self {
        Self {
            users: self.users.clone(),
            roles: self.roles.clone(),
            operation_timeout: self.operation_timeout,
            record: PhantomData,
        }
    }
}

/// A role document as stored.
#[derive(Deserialize)]
struct RoleDocument {
    #[serde(default)]
    permissions: Vec<String>,
}

impl<U: UserRecord> MongoUserRepository<U> {
    /// Connects to `uri`, uses database `database`, and ensures the unique `email` index,
    /// with the default [`MongoOptions`].
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when no server answers within the timeouts;
    /// [`RepositoryError::Backend`] for a malformed URI or a refused index.
    pub async fn connect(uri: &str, database: &str) -> Result<Self> {
        Self::connect_with(uri, database, MongoOptions::default()).await
    }

    /// As [`connect`](Self::connect), with explicit timeouts.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(uri: &str, database: &str, options: MongoOptions) -> Result<Self> {
        let mut client_options = ClientOptions::parse(uri).await.map_err(map_error)?;
        client_options
            .connect_timeout
            .get_or_insert(options.connect_timeout);
        client_options
            .server_selection_timeout
            .get_or_insert(options.server_selection_timeout);
        let client = Client::with_options(client_options).map_err(map_error)?;
        Self::from_client(&client, database, options).await
    }

    /// A repository on an existing client (sharing its pool); only the operation timeout of
    /// `options` applies. Ensures the unique `email` index.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn from_client(
        client: &Client,
        database: &str,
        options: MongoOptions,
    ) -> Result<Self> {
        let database = client.database(database);
        let repository = Self {
            users: database.collection(USERS_COLLECTION),
            roles: database.collection(ROLES_COLLECTION),
            operation_timeout: options.operation_timeout,
            record: PhantomData,
        };
        repository.ensure_email_index().await?;
        Ok(repository)
    }

    /// Sets the permissions of a role (inserting it when new): for seeding and admin tools.
    ///
    /// # Errors
    /// [`RepositoryError::InvalidId`] for an invalid role name; the backend unavailable or
    /// timing out.
    pub async fn upsert_role<I, S>(&self, role: &str, permissions: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        validate_id(role)?;
        let permissions: Vec<String> = permissions.into_iter().map(Into::into).collect();
        let document = doc! { "_id": role, "permissions": permissions };
        let replacement =
            RawDocumentBuf::from_document(&document).map_err(|e| invalid_record(role, &e))?;
        let replace = self
            .roles
            .replace_one(doc! { "_id": role }, replacement)
            .upsert(true);
        self.bounded("upsert_role", replace).await.map(drop)
    }

    /// Creating an identical index is a no-op for MongoDB, so this runs at every start.
    /// Partial (string emails only) rather than sparse: a sparse index still holds explicit
    /// `null`s, so two users of a record type with `email: None` would clash.
    async fn ensure_email_index(&self) -> Result<()> {
        let only_strings = doc! { "email": { "$type": "string" } };
        let options = IndexOptions::builder()
            .unique(true)
            .partial_filter_expression(only_strings)
            .build();
        let index = IndexModel::builder()
            .keys(doc! { "email": 1 })
            .options(options)
            .build();
        let created = self
            .within_timeout("create email index", async {
                Ok(self.users.create_index(index).await)
            })
            .await?;
        match created {
            Ok(_) => Ok(()),
            Err(error) if is_index_conflict(&error) => {
                // The application already has its own index on `email`; keep it.
                tracing::warn!(%error, "an index on users.email already exists; keeping it");
                Ok(())
            }
            Err(error) => Err(map_error(error)),
        }
    }

    /// Runs a driver call under the operation timeout, mapping its error.
    async fn bounded<T, F>(&self, what: &str, call: F) -> Result<T>
    where
        F: IntoFuture<Output = mongodb::error::Result<T>>,
    {
        self.within_timeout(what, async { call.await.map_err(map_error) })
            .await
    }

    async fn within_timeout<T>(
        &self,
        what: &str,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        tokio::time::timeout(self.operation_timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(RepositoryError::Timeout(format!(
                    "{what} took longer than {:?}",
                    self.operation_timeout
                )))
            })
    }

    /// Runs a `find` under the operation timeout and decodes every document of its cursor in
    /// place (no copy of the raw bytes).
    async fn find_all<T, F>(&self, what: &str, find: F) -> Result<Vec<T>>
    where
        T: serde::de::DeserializeOwned,
        F: IntoFuture<Output = mongodb::error::Result<Cursor<RawDocumentBuf>>>,
    {
        self.within_timeout(what, async {
            let mut cursor = find.await.map_err(map_error)?;
            let mut decoded = Vec::new();
            while cursor.advance().await.map_err(map_error)? {
                decoded.push(decode(cursor.current())?);
            }
            Ok(decoded)
        })
        .await
    }
}

#[async_trait]
impl<U: UserRecord> UserRepository<U> for MongoUserRepository<U> {
    async fn find_by_id(&self, id: &str) -> Result<Option<U>> {
        validate_id(id)?;
        let found = self
            .bounded("find_by_id", self.users.find_one(doc! { "_id": id }))
            .await?;
        found.map(|document| decode(&document)).transpose()
    }

    async fn find_many(&self, ids: &[String]) -> Result<Vec<U>> {
        validate_ids(ids)?;
        let wanted = dedup_in_order(ids);
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let users: Vec<U> = self
            .find_all(
                "find_many",
                self.users.find(doc! { "_id": { "$in": &wanted } }),
            )
            .await?;
        // `$in` returns documents in storage order; give them back in the caller's order.
        let mut by_id: HashMap<String, U> =
            users.into_iter().map(|u| (u.id().to_owned(), u)).collect();
        Ok(wanted
            .into_iter()
            .filter_map(|id| by_id.remove(id))
            .collect())
    }

    async fn permissions_for_roles(&self, roles: &[String]) -> Result<Vec<String>> {
        validate_ids(roles)?;
        let wanted = dedup_in_order(roles);
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let find = self
            .roles
            .find(doc! { "_id": { "$in": &wanted } })
            .projection(doc! { "permissions": 1 });
        let documents: Vec<RoleDocument> = self.find_all("permissions_for_roles", find).await?;
        let union: BTreeSet<String> = documents
            .into_iter()
            .flat_map(|role| role.permissions)
            .collect();
        Ok(union.into_iter().collect())
    }

    async fn upsert(&self, user: &U) -> Result<()> {
        let id = user.id();
        validate_id(id)?;
        let replacement =
            mongodb::bson::to_raw_document_buf(user).map_err(|e| invalid_record(id, &e))?;
        let replace = self
            .users
            .replace_one(doc! { "_id": id }, replacement)
            .upsert(true);
        self.bounded("upsert", replace).await.map(drop)
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        validate_id(id)?;
        let deleted = self
            .bounded("delete", self.users.delete_one(doc! { "_id": id }))
            .await?;
        Ok(deleted.deleted_count > 0)
    }
}

/// Decodes one stored document; failure names the document's `_id`.
fn decode<T: serde::de::DeserializeOwned>(document: &RawDocument) -> Result<T> {
    mongodb::bson::from_slice(document.as_bytes()).map_err(|e| RepositoryError::Corrupt {
        id: document_id(document),
        reason: e.to_string(),
    })
}

/// The `_id` of a raw document, for error messages: the string itself, or a debug rendering
/// of whatever else is there.
fn document_id(document: &RawDocument) -> String {
    match document.get("_id") {
        Ok(Some(id)) => id.as_str().map_or_else(|| format!("{id:?}"), str::to_owned),
        Ok(None) => "<no _id>".to_owned(),
        Err(e) => format!("<unreadable _id: {e}>"),
    }
}

fn invalid_record(id: &str, error: &dyn std::fmt::Display) -> RepositoryError {
    RepositoryError::InvalidRecord {
        id: id.to_owned(),
        reason: error.to_string(),
    }
}

fn is_index_conflict(error: &DriverError) -> bool {
    matches!(error.kind.as_ref(), ErrorKind::Command(command) if INDEX_CONFLICTS.contains(&command.code))
}

/// Maps a driver error onto the typed error callers branch on.
fn map_error(error: DriverError) -> RepositoryError {
    let message = error.to_string();
    match error.kind.as_ref() {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::Shutdown => RepositoryError::Unavailable(message),
        ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            RepositoryError::Timeout(message)
        }
        ErrorKind::Io(_) => RepositoryError::Unavailable(message),
        ErrorKind::Write(WriteFailure::WriteError(write)) if write.code == DUPLICATE_KEY => {
            RepositoryError::Duplicate(write.message.clone())
        }
        ErrorKind::Command(command) if command.code == DUPLICATE_KEY => {
            RepositoryError::Duplicate(command.message.clone())
        }
        ErrorKind::Command(command) if command.code == MAX_TIME_EXPIRED => {
            RepositoryError::Timeout(message)
        }
        _ => RepositoryError::Backend(message),
    }
}
