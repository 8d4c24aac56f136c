//! [`MongoUserRepository`]: users and roles in MongoDB, on the official driver.
//!
//! Documents are read as raw BSON and decoded one by one, so a document that does not fit
//! the record type is reported as [`RepositoryError::Corrupt`] naming its `_id`, and never
//! fails a batch anonymously or panics.
//!
//! # Change feed
//! The repository is a [`ChangeFeed`] on a change stream of its database, filtered to the
//! `users` and `roles` collections (inserts, updates, replaces and deletes by document key;
//! drops, renames and a dropped database as [`Change::Everything`]). It needs a replica set
//! (a single-node one will do). A resume point holds the server's resume token *and* the
//! server process it came from (`hello`'s `topologyVersion.processId`): MongoDB refuses a
//! token whose history was pruned (`ChangeStreamHistoryLost`), but a server that restarted
//! without its oplog — SecantusDB in memory, say — may accept an old token and silently
//! skip everything up to its position. So a point from another process is
//! [`FeedError::HistoryLost`], and a live stream re-checks the process every second: the
//! driver resumes a broken stream on its own, possibly on a restarted server. This is
//! conservative: a failover or a restart of a server that kept its oplog also counts as a
//! lost history, which costs a full invalidation, never a missed change.

use std::collections::{BTreeSet, HashMap};
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use authcache_core::key::validate_id;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Document, RawDocument, RawDocumentBuf, doc};
use mongodb::change_stream::ChangeStream as DriverChangeStream;
use mongodb::change_stream::event::ResumeToken;
use mongodb::error::{Error as DriverError, ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, Cursor, Database, IndexModel};
use serde::{Deserialize, Serialize};

use crate::change_feed::{
    Change, ChangeFeed, ChangeStream, DocumentKind, FeedError, FeedResult, ResumePoint,
};
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
/// The resume point cannot be used: `InvalidResumeToken`, `ChangeStreamFatalError`,
/// `ChangeStreamHistoryLost`.
const HISTORY_LOST_CODES: [i32; 3] = [260, 280, 286];
/// The label MongoDB puts on errors that no resume can cure.
const NON_RESUMABLE_LABEL: &str = "NonResumableChangeStreamError";

/// 1 s: how long one `getMore` of a change stream waits for changes before answering
/// "none yet" (MongoDB's own default), so an idle stream still wakes up to check its server.
pub const FEED_AWAIT: Duration = Duration::from_secs(1);
/// 1 s: how often a live change stream checks that its server is the process it opened on
/// (one `hello`); the bound on noticing a restart the driver resumed across.
pub const SERVER_CHECK_INTERVAL: Duration = Duration::from_secs(1);

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

/// An `_id`, and nothing else of the document.
#[derive(Deserialize)]
struct IdOnly {
    #[serde(rename = "_id")]
    id: String,
}

#[async_trait]
impl<U: UserRecord> ChangeFeed for MongoUserRepository<U> {
    async fn open(&self, from: Option<&ResumePoint>) -> FeedResult<Box<dyn ChangeStream>> {
        let stream = MongoChangeStream::open(self.feed_target(), from).await?;
        Ok(Box::new(stream))
    }

    async fn ids_after(
        &self,
        kind: DocumentKind,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        if limit == 0 {
            return Ok(Vec::new()); // MongoDB reads a limit of 0 as "no limit".
        }
        let collection = match kind {
            DocumentKind::User => &self.users,
            DocumentKind::Role => &self.roles,
        };
        // Only string ids can be cache keys; ObjectIds and numbers are never cached.
        let mut range = doc! { "$type": "string" };
        if let Some(after) = after {
            range.insert("$gt", after);
        }
        let find = collection
            .find(doc! { "_id": range })
            .projection(doc! { "_id": 1 })
            .sort(doc! { "_id": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX));
        let ids: Vec<IdOnly> = self.find_all("ids_after", find).await?;
        Ok(ids.into_iter().map(|document| document.id).collect())
    }
}

impl<U: UserRecord> MongoUserRepository<U> {
    fn feed_target(&self) -> FeedTarget {
        let client = self.users.client();
        FeedTarget {
            database: client.database(&self.users.namespace().db),
            admin: client.database("admin"),
            users: self.users.name().to_owned(),
            roles: self.roles.name().to_owned(),
            timeout: self.operation_timeout,
        }
    }
}

/// What a resume point of the MongoDB feed holds.
#[derive(Serialize, Deserialize)]
struct StoredPoint {
    /// `topologyVersion.processId` of the server the token came from; `None` when the
    /// server reports none (then only the server's own history checks apply).
    server: Option<ObjectId>,
    token: ResumeToken,
    /// The token is an `invalidate` event's: only `startAfter` continues from it.
    start_after: bool,
}

impl StoredPoint {
    fn encode(&self) -> Option<ResumePoint> {
        mongodb::bson::to_vec(self)
            .ok()
            .map(ResumePoint::from_bytes)
    }

    fn decode(point: &ResumePoint) -> FeedResult<Self> {
        mongodb::bson::from_slice(point.as_bytes())
            .map_err(|e| FeedError::HistoryLost(format!("unreadable resume point: {e}")))
    }
}

/// The database a change stream watches, and how to ask which server process answers.
struct FeedTarget {
    database: Database,
    admin: Database,
    users: String,
    roles: String,
    timeout: Duration,
}

impl FeedTarget {
    /// The users and roles collections' changes; the document key is enough, so documents
    /// are never shipped.
    fn pipeline(&self) -> Vec<Document> {
        let ours = [self.users.as_str(), self.roles.as_str()];
        vec![
            doc! { "$match": { "$or": [
                { "ns.coll": { "$in": ours.as_slice() } },
                { "to.coll": { "$in": ours.as_slice() } },
                { "operationType": { "$in": ["dropDatabase", "invalidate"] } },
            ] } },
            doc! { "$project": { "fullDocument": 0, "updateDescription": 0 } },
        ]
    }

    async fn watch(
        &self,
        from: Option<StoredPoint>,
    ) -> FeedResult<DriverChangeStream<RawDocumentBuf>> {
        let mut watch = self
            .database
            .watch()
            .pipeline(self.pipeline())
            .max_await_time(FEED_AWAIT);
        if let Some(point) = from {
            watch = if point.start_after {
                watch.start_after(point.token)
            } else {
                watch.resume_after(point.token)
            };
        }
        match tokio::time::timeout(self.timeout, watch.into_future()).await {
            Ok(opened) => opened
                .map(DriverChangeStream::with_type)
                .map_err(feed_error),
            Err(_) => Err(self.timed_out("opening a change stream")),
        }
    }

    /// The server process answering now (`topologyVersion.processId` of `hello`).
    async fn server(&self) -> FeedResult<Option<ObjectId>> {
        let hello = self.admin.run_command(doc! { "hello": 1 });
        let reply = match tokio::time::timeout(self.timeout, hello.into_future()).await {
            Ok(reply) => reply.map_err(|e| FeedError::Repository(map_error(e)))?,
            Err(_) => return Err(self.timed_out("hello")),
        };
        let process = reply
            .get_document("topologyVersion")
            .ok()
            .and_then(|version| version.get_object_id("processId").ok());
        Ok(process)
    }

    fn timed_out(&self, what: &str) -> FeedError {
        RepositoryError::Timeout(format!("{what} took longer than {:?}", self.timeout)).into()
    }
}

/// A change stream of the users and roles collections, pinned to one server process.
struct MongoChangeStream {
    target: FeedTarget,
    stream: DriverChangeStream<RawDocumentBuf>,
    /// The process the stream was opened on.
    server: Option<ObjectId>,
    checked: Instant,
    /// The token of an `invalidate` event seen, which only `startAfter` can continue from.
    invalidated: Option<ResumeToken>,
    /// The server closed the stream (after an `invalidate`).
    closed: bool,
}

impl MongoChangeStream {
    async fn open(target: FeedTarget, from: Option<&ResumePoint>) -> FeedResult<Self> {
        let server = target.server().await?;
        let from = from.map(StoredPoint::decode).transpose()?;
        if let Some(point) = &from
            && point.server != server
        {
            return Err(FeedError::HistoryLost(format!(
                "the server restarted since the resume point (process {} → {})",
                process_name(point.server),
                process_name(server)
            )));
        }
        let invalidated = from
            .as_ref()
            .filter(|point| point.start_after)
            .map(|point| point.token.clone());
        let stream = target.watch(from).await?;
        // Had the server restarted between the check above and the watch, the token would
        // have been read by a process that never had its history.
        if target.server().await? != server {
            return Err(RepositoryError::Unavailable(
                "the server restarted while the change stream was being opened".into(),
            )
            .into());
        }
        Ok(Self {
            target,
            stream,
            server,
            checked: Instant::now(),
            invalidated,
            closed: false,
        })
    }

    /// Fails with [`FeedError::HistoryLost`] once the server is another process than the
    /// one the stream was opened on: the driver resumes broken streams by itself, and a
    /// restarted server may have accepted the old token without its history.
    async fn check_server_if_due(&mut self) -> FeedResult<()> {
        if self.checked.elapsed() < SERVER_CHECK_INTERVAL {
            return Ok(());
        }
        let now = self.target.server().await?;
        self.checked = Instant::now();
        if now == self.server {
            return Ok(());
        }
        Err(FeedError::HistoryLost(format!(
            "the server restarted under the change stream (process {} → {}); changes made \
             meanwhile may be missing",
            process_name(self.server),
            process_name(now)
        )))
    }

    fn classify(&mut self, event: &RawDocument) -> Option<Change> {
        match event.get_str("operationType").ok()? {
            "insert" | "update" | "replace" | "delete" => self.document_change(event),
            "drop" | "rename" | "dropDatabase" => Some(Change::Everything),
            "invalidate" => {
                self.invalidated = self.stream.resume_token();
                Some(Change::Everything)
            }
            _ => None,
        }
    }

    fn document_change(&self, event: &RawDocument) -> Option<Change> {
        let collection = event.get_document("ns").ok()?.get_str("coll").ok()?;
        let Ok(id) = event.get_document("documentKey").ok()?.get_str("_id") else {
            tracing::debug!(
                collection,
                "change to a document whose _id is not a string: no cache entry holds it"
            );
            return None;
        };
        if collection == self.target.users {
            Some(Change::User(id.to_owned()))
        } else if collection == self.target.roles {
            Some(Change::Role(id.to_owned()))
        } else {
            None
        }
    }
}

#[async_trait]
impl ChangeStream for MongoChangeStream {
    async fn next(&mut self) -> FeedResult<Option<Change>> {
        loop {
            if self.closed {
                return Err(RepositoryError::Unavailable(
                    "the server closed the change stream".into(),
                )
                .into());
            }
            self.check_server_if_due().await?;
            let wait = FEED_AWAIT + self.target.timeout;
            let event = match tokio::time::timeout(wait, self.stream.next_if_any()).await {
                Ok(event) => event.map_err(feed_error)?,
                Err(_) => return Err(self.target.timed_out("a change stream getMore")),
            };
            match event {
                Some(event) => {
                    if let Some(change) = self.classify(&event) {
                        return Ok(Some(change));
                    }
                }
                None if self.stream.is_alive() => return Ok(None),
                None => self.closed = true,
            }
        }
    }

    fn resume_point(&self) -> Option<ResumePoint> {
        let token = self.stream.resume_token()?;
        let start_after = self.invalidated.as_ref() == Some(&token);
        StoredPoint {
            server: self.server,
            token,
            start_after,
        }
        .encode()
    }
}

fn process_name(process: Option<ObjectId>) -> String {
    process.map_or_else(|| "unknown".to_owned(), |id| id.to_hex())
}

/// A change-stream error: history lost when no resume can cure it, else the repository's.
fn feed_error(error: DriverError) -> FeedError {
    let lost = error.contains_label(NON_RESUMABLE_LABEL)
        || matches!(error.kind.as_ref(), ErrorKind::Command(command) if HISTORY_LOST_CODES.contains(&command.code));
    if lost {
        FeedError::HistoryLost(error.to_string())
    } else {
        FeedError::Repository(map_error(error))
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
