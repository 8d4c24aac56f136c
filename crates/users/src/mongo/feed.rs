//! The change feed of a [`MongoUserRepository`]: a change stream of its database pinned to
//! one server process (see the [module docs](super) for the protocol).

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mongodb::Database;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Document, RawBsonRef, RawDocument, RawDocumentBuf, doc};
use mongodb::change_stream::ChangeStream as DriverChangeStream;
use mongodb::change_stream::event::ResumeToken;
use mongodb::error::{Error as DriverError, ErrorKind};
use serde::{Deserialize, Serialize};

use super::repository::{MongoUserRepository, map_error};
use super::schema::canonical_id;
use crate::change_feed::{
    Change, ChangeFeed, ChangeStream, DocumentKind, FeedError, FeedResult, ResumePoint,
};
use crate::error::{RepositoryError, Result};
use crate::user::UserRecord;

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
        // String ids, and ObjectIds as their hex, can be cache keys; numbers never are.
        self.stored_ids_after(collection, after, limit).await
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
            object_ids: self.id_kind.feeds_object_ids(),
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
    /// Whether ObjectId document keys are reported (as hex) rather than skipped.
    object_ids: bool,
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
        let key = event.get_document("documentKey").ok()?.get("_id").ok()?;
        let reported = key.filter(|key| {
            matches!(key, RawBsonRef::String(_))
                || (self.target.object_ids && matches!(key, RawBsonRef::ObjectId(_)))
        });
        let Some(id) = reported.and_then(canonical_id) else {
            tracing::debug!(
                collection,
                "change to a document whose _id cannot be a cache key here: skipped"
            );
            return None;
        };
        if collection == self.target.users {
            Some(Change::User(id))
        } else if collection == self.target.roles {
            Some(Change::Role(id))
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
