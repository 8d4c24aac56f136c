//! The repository watcher: follows the system of record's [`ChangeFeed`] and turns every
//! change into [`AuthService::invalidate_user`] (or [`AuthService::invalidate_role`]) — the
//! normal protocol, so every instance drops it over the bus — even when the write did not
//! go through authcache (an admin tool, a migration, another service).
//!
//! # Protocol
//! 1. **Read.** Changes are read from the stream into a bounded set of pending ids
//!    ([`PENDING_CAPACITY`](pending::PENDING_CAPACITY)): a change whose id is already pending is absorbed by it
//!    (`coalesced`), so a burst costs one invalidation per distinct id, never a queue.
//! 2. **Invalidate.** Whenever the stream has to wait on the server (nothing buffered), or
//!    the set is full, the pending ids are taken and invalidated, [`DRAIN_CONCURRENCY`](worker::DRAIN_CONCURRENCY) at a
//!    time, while the stream waits. An invalidation the shared cache refuses is retried
//!    (with backoff) before anything later counts as done; reading stops meanwhile — the
//!    feed, not this process, holds the backlog.
//! 3. **Checkpoint.** Once every change up to a resume point is invalidated, that point may
//!    be saved to the shared cache (signed with the service's key; at most once a second),
//!    so a restarted watcher — on this instance or another — resumes where this one was.
//! 4. **Lost history.** When the feed cannot resume (history pruned, server restarted, no or
//!    an unreadable checkpoint with a shared cache that may hold older entries), the watcher
//!    opens a fresh stream *first*, then clears everything: it raises the keyspace epoch
//!    ([`AuthService::clear_everywhere`], retried with backoff until the shared cache
//!    accepts it). A change of whole collections ([`Change::Everything`](authcache_users::Change::Everything): a collection
//!    dropped or renamed, the database dropped) is cleared the same way, after the ids read
//!    before it are invalidated. Only then is the new point saved, so a clear cut short is
//!    redone. Counted in `full_clears`, logged at `warn`.
//!
//! The watcher holds the service weakly and is aborted when the service is dropped.
//!
//! # Clearing everything
//! The epoch protocol (`crate::epoch`) is what makes a clear whole. Raising the epoch
//! moves every instance to keys nobody has written yet: once it is raised this instance
//! serves nothing cached before it, and every other instance stops within the bus delay
//! (one announcement on the bus, then one read of the epoch; should the announcement be
//! lost, the re-check every 5 s). What the shared tier held is never read again — users the
//! repository no longer has included (a dropped collection, a user deleted while the
//! history was lost): nothing has to be listed or tombstoned, so a clear costs the same for
//! ten users as for ten million. Revocations and cutoffs live outside epochs and stay.
//! Without a shared cache (memory mode) the raise clears this one instance's tiers, which
//! is all there is.
//!
//! The resume point is kept outside epochs too (at the keys of epoch 0): a raise must not
//! hide from the next watcher the very point saved after it.

mod checkpoint;
mod link;
mod pending;
#[cfg(test)]
mod tests;
mod worker;

use std::sync::Arc;

use authcache_users::{ChangeFeed, UserRecord};
use tokio::sync::oneshot;

pub(crate) use checkpoint::Checkpoints;
use link::Status;
pub(crate) use link::WatcherLink;
use worker::Watcher;

use crate::service::{AuthService, WeakAuthService};
use crate::{AuthError, RepositoryConfig, Result};

/// What the unit tests reach through `super::*`.
#[cfg(test)]
use {
    crate::stats::{WatcherFault, WatcherState},
    authcache_core::{Cache, EnvelopeCodec, GuardedCache, Keyspace},
    authcache_users::{Change, ChangeStream, FeedError, ResumePoint},
    pending::{Added, PENDING_CAPACITY, Pending},
    std::time::Duration,
};

/// What [`AuthServiceBuilder`](crate::AuthServiceBuilder) was asked to watch.
#[derive(Clone)]
pub(crate) enum WatchSource {
    /// A feed given explicitly.
    Feed(Arc<dyn ChangeFeed>),
    /// The repository of `repository_config` (MongoDB).
    Repository,
}

/// Hands the built service to the watcher task, which waits for it before it starts.
pub(crate) struct WatcherStart<U: UserRecord>(oneshot::Sender<WeakAuthService<U>>);

impl<U: UserRecord> WatcherStart<U> {
    pub(crate) fn start(self, service: &AuthService<U>) {
        // A send fails only when the task is gone already; nothing is left to start.
        let _ = self.0.send(service.downgrade());
    }
}

/// Spawns the watcher of `source`; it starts once [`WatcherStart::start`] hands it the
/// service.
///
/// # Errors
/// [`AuthError::Config`] when `source` is the repository but it was not configured as
/// one with a change feed; [`AuthError::Unavailable`] when it cannot be connected.
pub(crate) async fn spawn<U: UserRecord>(
    source: &WatchSource,
    config: Option<&RepositoryConfig>,
    checkpoints: Checkpoints,
    shared: bool,
) -> Result<(WatcherLink, WatcherStart<U>)> {
    let feed = match source {
        WatchSource::Feed(feed) => Arc::clone(feed),
        WatchSource::Repository => repository_feed(config).await?,
    };
    let status = Arc::new(Status::default());
    let (give, take) = oneshot::channel();
    let watcher = Watcher {
        service: WeakAuthService::default(),
        feed,
        checkpoints,
        status: Arc::clone(&status),
        shared,
        position: None,
        saved: None,
    };
    let task = tokio::spawn(async move {
        if let Ok(service) = take.await {
            watcher.run(service).await;
        }
    });
    let link = WatcherLink {
        status,
        task: task.abort_handle(),
    };
    Ok((link, WatcherStart(give)))
}

/// The change feed of the configured repository: a connection of its own, so the
/// watcher's long polls never hold a connection that requests wait for.
async fn repository_feed(config: Option<&RepositoryConfig>) -> Result<Arc<dyn ChangeFeed>> {
    match config {
        #[cfg(feature = "mongodb")]
        Some(config @ RepositoryConfig::Mongodb { uri, db, .. }) => {
            // The configured collections and id kind; the indexes are the repository's.
            let options = config.mongo_options().create_indexes(false);
            authcache_users::MongoUserRepository::<authcache_users::User>::connect_with(
                uri, db, options,
            )
            .await
            .map(|repository| Arc::new(repository) as Arc<dyn ChangeFeed>)
            .map_err(AuthError::unavailable)
        }
        _ => Err(AuthError::Config(
            "`watch_repository()` follows a MongoDB repository given with \
             `repository_config(…)`; for a repository you built yourself, pass it (a clone) \
             to `.watch(…)`"
                .into(),
        )),
    }
}
