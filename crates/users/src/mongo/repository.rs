//! [`MongoUserRepository`] and its [`UserRepository`] implementation: connecting, reads
//! decoded one document at a time, writes that `$set` only the record's fields, the unique
//! `email` index, and the mapping of driver errors.

use std::collections::{BTreeSet, HashMap};
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use authcache_core::key::validate_id;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, RawBsonRef, RawDocument, RawDocumentBuf, doc};
use mongodb::error::{Error as DriverError, ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, Cursor, Database, IndexModel};

use super::options::MongoOptions;
use super::schema::{IdKind, MongoSchema, canonical_id, object_id_hex_after};
use crate::error::{RepositoryError, Result};
use crate::repository::{UserRepository, dedup_in_order, validate_ids};
use crate::user::{User, UserRecord};

/// MongoDB's duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;
/// `MaxTimeMSExpired`: the server gave up on the operation.
const MAX_TIME_EXPIRED: i32 = 50;
/// An index on the same keys exists under another name or with other options.
const INDEX_CONFLICTS: [i32; 2] = [85, 86];

/// Users in the `users` collection (a unique index on `email`, created at start unless
/// opted out), roles in `roles` as `{_id: role, permissions: [...]}`; both names and the
/// fields are configurable with a [`MongoSchema`].
///
/// The record type must store its id as `_id` (`#[serde(rename = "_id")]`, as [`User`]
/// does). Cheap to clone: clones share the driver's connection pool.
#[derive(Debug)]
pub struct MongoUserRepository<U: UserRecord = User> {
    database: Database,
    pub(super) users: Collection<RawDocumentBuf>,
    pub(super) roles: Collection<RawDocumentBuf>,
    pub(super) operation_timeout: Duration,
    schema: Arc<MongoSchema>,
    pub(super) id_kind: IdKind,
    /// Shared by clones: whether the email index still has to be created.
    email_index: Arc<EmailIndex>,
    record: PhantomData<fn() -> U>,
}

impl<U: UserRecord> Clone for MongoUserRepository<U> {
    fn clone(&self) -> Self {
        Self {
            database: self.database.clone(),
            users: self.users.clone(),
            roles: self.roles.clone(),
            operation_timeout: self.operation_timeout,
            schema: Arc::clone(&self.schema),
            id_kind: self.id_kind,
            email_index: Arc::clone(&self.email_index),
            record: PhantomData,
        }
    }
}

impl<U: UserRecord> MongoUserRepository<U> {
    /// Connects to `uri`, uses database `database`, and ensures the unique `email` index,
    /// with the default [`MongoOptions`].
    ///
    /// A server that does not answer does not fail the call: the repository is returned
    /// (logged at `warn`), its calls fail with [`RepositoryError::Unavailable`] until the
    /// server is back, and the index is created then (see the module docs, *Starting
    /// without the server*).
    ///
    /// # Errors
    /// [`RepositoryError::Backend`] for a malformed URI or a refused index.
    pub async fn connect(uri: &str, database: &str) -> Result<Self> {
        Self::connect_with(uri, database, MongoOptions::default()).await
    }

    /// As [`connect`](Self::connect), with explicit [`MongoOptions`] (timeouts, schema, id
    /// kind, index creation).
    ///
    /// # Errors
    /// As [`connect`](Self::connect); [`RepositoryError::Backend`] for an unusable schema.
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

    /// A repository on an existing client (sharing its pool); the connect and
    /// server-selection timeouts of `options` do not apply. Ensures the unique `email`
    /// index unless `options` opts out — later, when no server answers now.
    ///
    /// # Errors
    /// As [`connect_with`](Self::connect_with).
    pub async fn from_client(
        client: &Client,
        database: &str,
        options: MongoOptions,
    ) -> Result<Self> {
        options.schema.validate()?;
        let database = client.database(database);
        let repository = Self {
            users: database.collection(options.schema.users()),
            roles: database.collection(options.schema.roles()),
            database,
            operation_timeout: options.operation_timeout,
            schema: Arc::new(options.schema),
            id_kind: options.id_kind,
            email_index: Arc::new(EmailIndex::default()),
            record: PhantomData,
        };
        if options.create_indexes {
            match repository.ensure_email_index().await {
                Ok(()) => {}
                Err(error) if error.is_transient() => {
                    tracing::warn!(
                        %error,
                        "MongoDB not reachable at start-up: every call fails as unavailable \
                         until it is; the unique email index is created once it answers \
                         (check that the server is running and the uri is right)"
                    );
                    repository.email_index.mark_pending();
                }
                Err(error) => return Err(error),
            }
        }
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
        let document = doc! { "_id": role, self.schema.permissions(): permissions };
        let replacement =
            RawDocumentBuf::from_document(&document).map_err(|e| invalid_record(role, &e))?;
        let replace = self
            .roles
            .replace_one(doc! { "_id": role }, replacement)
            .upsert(true);
        self.bounded("upsert_role", replace).await.map(drop)
    }

    /// Creating an identical index is a no-op for MongoDB, so this runs at every start;
    /// an index on the same key with other options is left as it is.
    /// Partial (string emails only) rather than sparse: a sparse index still holds explicit
    /// `null`s, so two users of a record type with `email: None` would clash.
    async fn ensure_email_index(&self) -> Result<()> {
        let email = self.schema.stored_name("email");
        let only_strings = doc! { email: { "$type": "string" } };
        let options = IndexOptions::builder()
            .unique(true)
            .partial_filter_expression(only_strings)
            .build();
        let index = IndexModel::builder()
            .keys(doc! { email: 1 })
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
                tracing::warn!(%error, email, "an index on the email field already exists; keeping it");
                Ok(())
            }
            Err(error) => Err(map_error(error)),
        }
    }

    /// After a call the server answered: creates the email index start-up could not, in
    /// the background (one attempt at a time; the call that triggered it does not wait).
    fn index_after_success(&self) {
        if !self.email_index.claim() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.email_index.release(false);
            return;
        };
        let repository = self.clone();
        runtime.spawn(async move { repository.create_claimed_index().await });
    }

    /// Before a write: the unique index exists first, or two users could share an email.
    async fn index_before_write(&self) -> Result<()> {
        if self.email_index.is_done() {
            return Ok(());
        }
        // Idempotent: racing the background attempt is harmless.
        self.ensure_email_index().await?;
        self.email_index.release(true);
        Ok(())
    }

    async fn create_claimed_index(&self) {
        match self.ensure_email_index().await {
            Ok(()) => {
                self.email_index.release(true);
                tracing::info!("created the unique email index MongoDB could not take at start-up");
            }
            Err(error) if error.is_transient() => {
                self.email_index.release(false);
                tracing::debug!(%error, "the email index is still pending");
            }
            Err(error) => {
                // Retrying would fail the same way on every call: said once, loudly.
                self.email_index.release(true);
                tracing::error!(%error, "the unique email index could not be created");
            }
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
    async fn find_all<T, F>(
        &self,
        what: &str,
        find: F,
        decode: impl Fn(&RawDocument) -> Result<T>,
    ) -> Result<Vec<T>>
    where
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

    /// A stored user document as a record.
    fn decode_user(&self, stored: &RawDocument) -> Result<U> {
        decode(&self.schema.read_user(stored)?)
    }

    /// The permissions listed by a stored role document; none when the field is absent.
    fn decode_permissions(&self, stored: &RawDocument) -> Result<Vec<String>> {
        let corrupt = |reason: String| RepositoryError::Corrupt {
            id: document_id(stored),
            reason,
        };
        let field = self.schema.permissions();
        let permissions = match stored.get(field).map_err(|e| corrupt(e.to_string()))? {
            None => return Ok(Vec::new()),
            Some(RawBsonRef::Array(permissions)) => permissions,
            Some(other) => {
                return Err(corrupt(format!(
                    "{field} is {:?}, not an array",
                    other.element_type()
                )));
            }
        };
        permissions
            .into_iter()
            .map(
                |permission| match permission.map_err(|e| corrupt(e.to_string()))? {
                    RawBsonRef::String(permission) => Ok(permission.to_owned()),
                    other => Err(corrupt(format!(
                        "a permission is {:?}, not a string",
                        other.element_type()
                    ))),
                },
            )
            .collect()
    }

    /// The stored ids of `collection` greater than `after`, as strings: string `_id`s and,
    /// when the id kind [feeds ObjectIds](IdKind::feeds_object_ids), ObjectIds (as hex)
    /// merged in string order.
    pub(super) async fn stored_ids_after(
        &self,
        collection: &Collection<RawDocumentBuf>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        let mut strings = doc! { "$type": "string" };
        let mut object_ids = doc! { "$type": "objectId" };
        if let Some(after) = after {
            strings.insert("$gt", after);
            match object_id_hex_after(after).and_then(|hex| ObjectId::parse_str(hex).ok()) {
                Some(least) => object_ids.insert("$gte", least),
                None => object_ids.insert("$in", Vec::<Bson>::new()),
            };
        }
        let limit_i64 = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut ranges = vec![strings];
        if self.id_kind.feeds_object_ids() {
            ranges.push(object_ids);
        }
        let mut ids = Vec::new();
        for range in ranges {
            let find = collection
                .find(doc! { "_id": range })
                .projection(doc! { "_id": 1 })
                .sort(doc! { "_id": 1 })
                .limit(limit_i64);
            ids.extend(self.find_all("ids_after", find, id_of).await?);
        }
        ids.sort_unstable();
        ids.dedup();
        ids.truncate(limit);
        Ok(ids)
    }
}

#[async_trait]
impl<U: UserRecord> UserRepository<U> for MongoUserRepository<U> {
    async fn find_by_id(&self, id: &str) -> Result<Option<U>> {
        validate_id(id)?;
        let Some(filter) = self.id_kind.filter(id) else {
            return Ok(None);
        };
        let found = self
            .bounded("find_by_id", self.users.find_one(filter))
            .await?;
        self.index_after_success();
        found
            .map(|document| self.decode_user(&document))
            .transpose()
    }

    async fn find_many(&self, ids: &[String]) -> Result<Vec<U>> {
        validate_ids(ids)?;
        let wanted = dedup_in_order(ids);
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let candidates = self.id_kind.all_candidates(wanted.iter().copied());
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let find = self.users.find(doc! { "_id": { "$in": candidates } });
        let users: Vec<U> = self
            .find_all("find_many", find, |stored| self.decode_user(stored))
            .await?;
        self.index_after_success();
        // `$in` returns documents in storage order; give them back in the caller's order.
        // An ObjectId comes back as lowercase hex, whatever case the caller spelled it in.
        let mut by_id: HashMap<String, U> =
            users.into_iter().map(|u| (u.id().to_owned(), u)).collect();
        Ok(wanted
            .into_iter()
            .filter_map(|id| {
                by_id
                    .remove(id)
                    .or_else(|| by_id.remove(&id.to_ascii_lowercase()))
            })
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
            .projection(doc! { self.schema.permissions(): 1 });
        let documents = self
            .find_all("permissions_for_roles", find, |stored| {
                self.decode_permissions(stored)
            })
            .await?;
        self.index_after_success();
        let union: BTreeSet<String> = documents.into_iter().flatten().collect();
        Ok(union.into_iter().collect())
    }

    /// `$set`s the record's fields on the document of its id (see [`schema`](super::schema)
    /// for which document that is), leaving every other field as it is; a new document gets
    /// the `_id` [`IdKind`] prescribes.
    async fn upsert(&self, user: &U) -> Result<()> {
        let id = user.id();
        validate_id(id)?;
        let new_id = self.id_kind.new_document_id(id)?;
        self.index_before_write().await?;
        let filter = self
            .id_kind
            .filter(id)
            .unwrap_or_else(|| doc! { "_id": &new_id });
        let record = mongodb::bson::to_document(user).map_err(|e| invalid_record(id, &e))?;
        let update = doc! {
            "$set": self.schema.write_user(record),
            "$setOnInsert": { "_id": new_id },
        };
        let write = self.users.update_one(filter, update).upsert(true);
        self.bounded("upsert", write).await.map(drop)
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        validate_id(id)?;
        let Some(filter) = self.id_kind.filter(id) else {
            return Ok(false);
        };
        let deleted = self
            .bounded("delete", self.users.delete_one(filter))
            .await?;
        self.index_after_success();
        Ok(deleted.deleted_count > 0)
    }

    /// The `ping` command, under the operation timeout (and the server-selection timeout
    /// when no server is known).
    async fn ping(&self) -> Result<()> {
        self.bounded("ping", self.database.run_command(doc! { "ping": 1 }))
            .await?;
        self.index_after_success();
        Ok(())
    }
}

/// Whether the unique email index still has to be created (start-up found no server).
#[derive(Debug, Default)]
struct EmailIndex {
    state: AtomicU8,
}

impl EmailIndex {
    /// Created, or not wanted.
    const DONE: u8 = 0;
    /// Start-up could not create it.
    const PENDING: u8 = 1;
    /// One attempt is running.
    const CREATING: u8 = 2;

    fn mark_pending(&self) {
        self.state.store(Self::PENDING, Ordering::Release);
    }

    fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) == Self::DONE
    }

    /// The right to make the one attempt now, if one is pending and none is running.
    fn claim(&self) -> bool {
        self.state
            .compare_exchange(
                Self::PENDING,
                Self::CREATING,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Ends an attempt: `done`, or pending again.
    fn release(&self, done: bool) {
        let state = if done { Self::DONE } else { Self::PENDING };
        self.state.store(state, Ordering::Release);
    }
}

/// The string id of a document with only its `_id` projected.
fn id_of(stored: &RawDocument) -> Result<String> {
    stored
        .get("_id")
        .ok()
        .flatten()
        .and_then(canonical_id)
        .ok_or_else(|| RepositoryError::Corrupt {
            id: document_id(stored),
            reason: "the _id is neither a string nor an ObjectId".into(),
        })
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
pub(super) fn document_id(document: &RawDocument) -> String {
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
pub(super) fn map_error(error: DriverError) -> RepositoryError {
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
