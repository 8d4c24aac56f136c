//! [`ChangeFeed`]: the changes made to the system of record, whoever made them.
//!
//! A cache that drops an entry only when a write goes through it keeps serving old roles
//! after an admin tool, a migration or another service writes the database directly. A
//! change feed closes that gap: it streams the id of every user and role document that
//! changed, with a [`ResumePoint`] after each, so the cache can drop exactly what changed.
//!
//! The one promise every feed keeps: **it never skips silently.** Opened from a resume
//! point, a feed either delivers every change made after that point, or fails with
//! [`FeedError::HistoryLost`] — the history is gone (pruned, or the server restarted
//! without it) — and the caller must assume that anything may have changed. A live stream
//! that loses continuity (its server restarted under it) fails the same way.
//!
//! `MongoUserRepository` (feature `mongodb`) is a feed on MongoDB change streams; any other
//! repository can offer one by implementing the two traits here.

use async_trait::async_trait;

use crate::error::{RepositoryError, Result};

/// One change to the system of record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Change {
    /// The user document with this id was inserted, updated, replaced or deleted.
    User(String),
    /// The role document with this name was inserted, updated, replaced or deleted.
    Role(String),
    /// Whole collections changed at once (dropped, renamed, the database dropped): any
    /// user or role may have changed.
    Everything,
}

/// The documents [`ChangeFeed::ids_after`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DocumentKind {
    /// User documents (their ids).
    User,
    /// Role documents (their names).
    Role,
}

/// Where a stream can be resumed: opaque bytes, meaningful only to the feed that produced
/// them (a MongoDB resume token and the server process it came from, say). Store them
/// where nobody else can write, or signed: a forged point could make a feed skip changes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ResumePoint(Vec<u8>);

impl ResumePoint {
    /// A point from bytes a feed produced earlier (read back from storage).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for ResumePoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResumePoint({} bytes)", self.0.len())
    }
}

/// Why a feed could not be opened or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FeedError {
    /// Continuity from the resume point cannot be guaranteed: the history was pruned, the
    /// server restarted, or the point is unreadable. Changes may have been missed; open a
    /// fresh stream (`open(None)`) and treat everything as changed.
    #[error("change history lost: {0}")]
    HistoryLost(String),
    /// The backend failed (unavailable, timed out, or refused change streams): retry from
    /// the last resume point.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

impl FeedError {
    /// Changes may have been missed: the caller must treat everything as changed.
    pub fn is_history_lost(&self) -> bool {
        matches!(self, Self::HistoryLost(_))
    }
}

/// Result of change-feed calls.
pub type FeedResult<T> = std::result::Result<T, FeedError>;

/// A source of [`ChangeStream`]s over the users and roles of a repository.
///
/// Object safe: the facade holds an `Arc<dyn ChangeFeed>`.
#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// Opens a stream of the changes made after `from` — or, with `None`, from now on.
    ///
    /// # Errors
    /// [`FeedError::HistoryLost`] when the changes after `from` can no longer all be
    /// delivered; [`FeedError::Repository`] when the backend fails or cannot stream changes.
    async fn open(&self, from: Option<&ResumePoint>) -> FeedResult<Box<dyn ChangeStream>>;

    /// Up to `limit` ids of documents of `kind` that exist now, in ascending order, all
    /// greater than `after`: paging through them lets a caller that lost the history drop
    /// every entry the repository could still serve.
    ///
    /// # Errors
    /// The backend unavailable or timing out.
    async fn ids_after(
        &self,
        kind: DocumentKind,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>>;
}

/// An open stream of changes, in the order they were made.
#[async_trait]
pub trait ChangeStream: Send {
    /// The next change; `None` when none came within the feed's own wait (an idle stream:
    /// call again). Changes the feed does not report (other collections, documents whose
    /// id cannot be a user id) are skipped, and the resume point moves past them.
    ///
    /// # Errors
    /// [`FeedError::HistoryLost`] when the stream lost continuity (its server restarted);
    /// [`FeedError::Repository`] when it broke (reopen from [`resume_point`]).
    ///
    /// [`resume_point`]: ChangeStream::resume_point
    async fn next(&mut self) -> FeedResult<Option<Change>>;

    /// Where to reopen to continue right after the last change returned (and past anything
    /// skipped since); `None` before the stream knows its position.
    fn resume_point(&self) -> Option<ResumePoint>;
}

#[cfg(test)]
mod tests;
