//! The repository watcher: follows the system of record's [`ChangeFeed`] and turns every
//! change into [`AuthService::invalidate_user`] (or [`AuthService::invalidate_role`]) — the
//! normal protocol, so every instance drops it over the bus — even when the write did not
//! go through authcache (an admin tool, a migration, another service).
//!
//! # Protocol
//! 1. **Read.** Changes are read from the stream into a bounded set of pending ids
//!    ([`PENDING_CAPACITY`]): a change whose id is already pending is absorbed by it
//!    (`coalesced`), so a burst costs one invalidation per distinct id, never a queue.
//! 2. **Invalidate.** Whenever the stream has to wait on the server (nothing buffered), or
//!    the set is full, the pending ids are taken and invalidated, [`DRAIN_CONCURRENCY`] at a
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
//!    accepts it). A change of whole collections ([`Change::Everything`]: a collection
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

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

use authcache_core::{Cache, CacheError, EnvelopeCodec, GuardedCache, Key, KeyKind, Keyspace};
use authcache_users::{Change, ChangeFeed, ChangeStream, FeedError, ResumePoint, UserRecord};
use tokio::sync::oneshot;
use tokio::task::{AbortHandle, JoinSet};

use crate::service::Inner;
use crate::stats::{WatcherFault, WatcherState, WatcherStats};
use crate::{AuthError, AuthService, RepositoryConfig, Result};

/// 4,096 distinct ids at most wait to be invalidated (at most 1 MiB of ids): past it, the
/// watcher invalidates before it reads on.
pub(crate) const PENDING_CAPACITY: usize = 4096;
/// 32 invalidations in flight at once: enough to hide the round trips to Redis without
/// crowding out the requests that share its connection.
pub(crate) const DRAIN_CONCURRENCY: usize = 32;
/// 1 s: a restarted watcher re-invalidates at most about a second of changes (harmless:
/// invalidations are idempotent), and Redis gets at most one checkpoint write a second.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// 7 days: a watcher down longer than that starts over with a clear (no oplog worth
/// resuming from is kept that long by default).
const CHECKPOINT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The id of the checkpoint's key. It lives under the `roles` kind, which no tier uses,
/// until `authcache-core` has a kind of its own for it.
const CHECKPOINT_ID: &str = "change-feed-checkpoint";
/// First pause after a failure; doubled per failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between attempts: a recovered repository or cache is noticed within it.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What [`AuthServiceBuilder`](crate::AuthServiceBuilder) was asked to watch.
#[derive(Clone)]
pub(crate) enum WatchSource {
    /// A feed given explicitly.
    Feed(Arc<dyn ChangeFeed>),
    /// The repository of `repository_config` (MongoDB).
    Repository,
}

/// The service's end of a running watcher: its counters, and the task, aborted on drop.
pub(crate) struct WatcherLink {
    status: Arc<Status>,
    task: AbortHandle,
}

impl WatcherLink {
    pub(crate) fn stats(&self) -> WatcherStats {
        self.status.snapshot()
    }
}

impl Drop for WatcherLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Hands the built service to the watcher task, which waits for it before it starts.
pub(crate) struct WatcherStart<U: UserRecord>(oneshot::Sender<Weak<Inner<U>>>);

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
        service: Weak::new(),
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

/// Where the watcher's resume point is kept: in the shared cache, in a signed envelope
/// bound to its key (a forged point could make the feed skip changes; an unreadable one
/// is treated as lost).
pub(crate) struct Checkpoints {
    key: Key,
    codec: EnvelopeCodec,
    l2: Arc<GuardedCache>,
}

impl Checkpoints {
    /// The checkpoint of `keyspace`, in `l2`, encoded by `codec`. Its key is that of
    /// epoch 0 whatever the keyspace's epoch, now or later: the point saved after a
    /// clear must be found by the next watcher, which reads the raised epoch.
    ///
    /// # Errors
    /// [`AuthError::Config`] if the key cannot be built (it always can).
    pub(crate) fn new(
        keyspace: &Keyspace,
        codec: &EnvelopeCodec,
        l2: &Arc<GuardedCache>,
    ) -> Result<Self> {
        // A keyspace of its own, with the same prefix, never raised.
        let key = Keyspace::new(keyspace.prefix())
            .and_then(|outside_epochs| outside_epochs.key(KeyKind::Roles, CHECKPOINT_ID))
            .map_err(|e| AuthError::Config(format!("watcher checkpoint key: {e}")))?;
        Ok(Self {
            key,
            codec: codec.clone(),
            l2: Arc::clone(l2),
        })
    }

    async fn load(&self) -> std::result::Result<Option<ResumePoint>, CacheError> {
        let Some(entry) = self.l2.get(&self.key).await? else {
            return Ok(None);
        };
        match self.codec.decode::<Vec<u8>>(&self.key, &entry) {
            Ok(bytes) => Ok(Some(ResumePoint::from_bytes(bytes))),
            Err(error) => {
                tracing::warn!(%error, "unreadable change-feed checkpoint (another signing key, or written by someone else): starting over");
                Ok(None)
            }
        }
    }

    async fn save(&self, point: &ResumePoint) -> std::result::Result<(), CacheError> {
        let entry = self
            .codec
            .encode(&self.key, point.as_bytes())
            .map_err(|e| CacheError::Codec(e.to_string()))?;
        self.l2.set(&self.key, entry, CHECKPOINT_TTL).await
    }
}

/// Live counters behind [`WatcherStats`] (relaxed atomics: statistics, not
/// synchronisation).
#[derive(Debug, Default)]
struct Status {
    state: AtomicU8,
    last_error: AtomicU8,
    events: AtomicU64,
    invalidations: AtomicU64,
    coalesced: AtomicU64,
    everything: AtomicU64,
    pending: AtomicU64,
    max_pending: AtomicU64,
    resumes: AtomicU64,
    full_clears: AtomicU64,
    checkpoints: AtomicU64,
    errors: AtomicU64,
}

impl Status {
    fn snapshot(&self) -> WatcherStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        WatcherStats {
            state: match self.state.load(Ordering::Relaxed) {
                0 => WatcherState::Starting,
                1 => WatcherState::Running,
                _ => WatcherState::Down,
            },
            events: read(&self.events),
            invalidations: read(&self.invalidations),
            coalesced: read(&self.coalesced),
            everything: read(&self.everything),
            pending: read(&self.pending),
            max_pending: read(&self.max_pending),
            resumes: read(&self.resumes),
            full_clears: read(&self.full_clears),
            checkpoints: read(&self.checkpoints),
            errors: read(&self.errors),
            last_error: match self.last_error.load(Ordering::Relaxed) {
                0 => None,
                1 => Some(WatcherFault::Feed),
                2 => Some(WatcherFault::HistoryLost),
                _ => Some(WatcherFault::Cache),
            },
        }
    }

    fn set_state(&self, state: WatcherState) {
        let code = match state {
            WatcherState::Starting => 0,
            WatcherState::Running => 1,
            _ => 2,
        };
        self.state.store(code, Ordering::Relaxed);
    }

    fn fault(&self, fault: WatcherFault, error: &dyn Display) {
        let code = match fault {
            WatcherFault::Feed => 1,
            WatcherFault::HistoryLost => 2,
            _ => 3,
        };
        self.last_error.store(code, Ordering::Relaxed);
        bump(&self.errors, 1);
        tracing::warn!(%error, ?fault, "repository watcher");
    }

    fn set_pending(&self, pending: usize) {
        let pending = pending as u64;
        self.pending.store(pending, Ordering::Relaxed);
        self.max_pending.fetch_max(pending, Ordering::Relaxed);
    }
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// The service was dropped: the watcher ends.
struct Stopped;

/// Changes read but not invalidated yet: distinct ids, whether whole collections changed,
/// and the resume point after the last change read.
#[derive(Default)]
struct Pending {
    ids: HashSet<Change>,
    everything: bool,
    point: Option<ResumePoint>,
}

/// What [`Pending::add`] did with a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Added {
    New,
    Coalesced,
    Everything,
}

impl Pending {
    fn add(&mut self, change: Change, point: Option<ResumePoint>) -> Added {
        self.advance(point);
        match change {
            Change::User(_) | Change::Role(_) => {
                if self.ids.insert(change) {
                    Added::New
                } else {
                    Added::Coalesced
                }
            }
            // `Everything`, and whatever a newer feed reports that this build cannot
            // tell apart: the safe reading is that anything changed.
            _ => {
                self.everything = true;
                Added::Everything
            }
        }
    }

    fn advance(&mut self, point: Option<ResumePoint>) {
        if point.is_some() {
            self.point = point;
        }
    }

    fn is_full(&self) -> bool {
        self.ids.len() >= PENDING_CAPACITY
    }

    fn take(&mut self) -> Batch {
        Batch {
            changes: self.ids.drain().collect(),
            everything: std::mem::take(&mut self.everything),
            point: self.point.take(),
        }
    }
}

/// Changes to settle, and the point that is safe to save once they are.
struct Batch {
    changes: Vec<Change>,
    everything: bool,
    point: Option<ResumePoint>,
}

/// Exponential backoff between attempts.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(MIN_BACKOFF)
    }

    async fn sleep(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(MAX_BACKOFF);
    }
}

/// The watcher task's state.
struct Watcher<U: UserRecord> {
    service: Weak<Inner<U>>,
    feed: Arc<dyn ChangeFeed>,
    checkpoints: Checkpoints,
    status: Arc<Status>,
    /// The L2 is shared (Redis): entries older than this process may be in it.
    shared: bool,
    /// The point up to which every change has been invalidated.
    position: Option<ResumePoint>,
    /// The last point saved, and when.
    saved: Option<(ResumePoint, Instant)>,
}

impl<U: UserRecord> Watcher<U> {
    async fn run(mut self, service: Weak<Inner<U>>) {
        self.service = service;
        // `Err(Stopped)`: the service is gone, and so is the reason to watch.
        let _ = self.watch().await;
    }

    async fn watch(&mut self) -> std::result::Result<(), Stopped> {
        self.position = self.load_checkpoint().await?;
        // No checkpoint: nobody knows what changed before this process, and a shared
        // cache may hold entries from then.
        let mut clear = self.position.is_none() && self.shared;
        let mut backoff = Backoff::new();
        loop {
            let Some(stream) = self.open(&mut clear).await? else {
                self.status.set_state(WatcherState::Down);
                self.alive()?;
                backoff.sleep().await;
                continue;
            };
            backoff = Backoff::new();
            self.status.set_state(WatcherState::Running);
            let error = self.follow(stream).await?;
            self.status.set_state(WatcherState::Down);
            if error.is_history_lost() {
                // Reopen at once; whether or not the feed still offers the last position,
                // what happened since is unknown. (Counted by the reopening.)
                tracing::warn!(%error, "repository watcher: the stream lost its history");
                clear = true;
            } else {
                self.status.fault(WatcherFault::Feed, &error);
                backoff.sleep().await;
            }
        }
    }

    /// A stream from the last position; when its history is gone, a fresh one — and then
    /// everything is invalidated, before the fresh point is saved. `None` when nothing
    /// could be opened (counted and logged).
    async fn open(
        &mut self,
        clear: &mut bool,
    ) -> std::result::Result<Option<Box<dyn ChangeStream>>, Stopped> {
        let from = self.position.clone();
        let stream = match self.feed.open(from.as_ref()).await {
            Ok(stream) => {
                if from.is_some() {
                    bump(&self.status.resumes, 1);
                    tracing::info!("repository watcher resumed from its last position");
                }
                stream
            }
            Err(error) if error.is_history_lost() => {
                self.status.fault(WatcherFault::HistoryLost, &error);
                *clear = true;
                match self.feed.open(None).await {
                    Ok(stream) => stream,
                    Err(error) => return Ok(self.open_failed(&error)),
                }
            }
            Err(error) => return Ok(self.open_failed(&error)),
        };
        if *clear {
            self.clear_everything().await?;
            *clear = false;
        }
        self.checkpoint(stream.resume_point(), true).await;
        Ok(Some(stream))
    }

    fn open_failed(&self, error: &FeedError) -> Option<Box<dyn ChangeStream>> {
        let fault = if error.is_history_lost() {
            WatcherFault::HistoryLost
        } else {
            WatcherFault::Feed
        };
        self.status.fault(fault, error);
        None
    }

    /// Reads and invalidates until the stream fails; returns its error.
    async fn follow(
        &mut self,
        mut stream: Box<dyn ChangeStream>,
    ) -> std::result::Result<FeedError, Stopped> {
        let mut pending = Pending::default();
        loop {
            let read = {
                let mut next = stream.next();
                match poll_once(&mut next).await {
                    Poll::Ready(read) => read,
                    Poll::Pending => {
                        // The stream waits on the server: settle what is pending meanwhile.
                        let batch = self.take(&mut pending);
                        let (settled, read) = tokio::join!(self.settle(batch), next);
                        settled?;
                        read
                    }
                }
            };
            match read {
                Ok(Some(change)) => {
                    let added = pending.add(change, stream.resume_point());
                    self.count(added, pending.ids.len());
                    if pending.is_full() {
                        let batch = self.take(&mut pending);
                        self.settle(batch).await?;
                    }
                }
                Ok(None) => {
                    pending.advance(stream.resume_point());
                    self.alive()?;
                    let batch = self.take(&mut pending);
                    self.settle(batch).await?;
                }
                Err(error) => {
                    // What was read is real: invalidate it before reopening.
                    let batch = self.take(&mut pending);
                    self.settle(batch).await?;
                    return Ok(error);
                }
            }
        }
    }

    fn take(&self, pending: &mut Pending) -> Batch {
        self.status.set_pending(0);
        pending.take()
    }

    fn count(&self, added: Added, pending: usize) {
        bump(&self.status.events, 1);
        match added {
            Added::New => self.status.set_pending(pending),
            Added::Coalesced => bump(&self.status.coalesced, 1),
            Added::Everything => bump(&self.status.everything, 1),
        }
    }

    /// Invalidates a batch, clears everything if it says so, then saves its point (when a
    /// checkpoint is due).
    async fn settle(&mut self, batch: Batch) -> std::result::Result<(), Stopped> {
        self.invalidate(batch.changes, &self.status.invalidations)
            .await?;
        if batch.everything {
            self.clear_everything().await?;
        }
        self.checkpoint(batch.point, false).await;
        Ok(())
    }

    /// Invalidates every change (retrying what the shared cache refused until it is
    /// accepted), counting them in `counter`.
    async fn invalidate(
        &self,
        mut changes: Vec<Change>,
        counter: &AtomicU64,
    ) -> std::result::Result<(), Stopped> {
        let mut backoff = Backoff::new();
        let mut refused = false;
        while !changes.is_empty() {
            let service = self.service()?;
            let outcome = invalidate_concurrently(&service, changes).await;
            drop(service);
            bump(counter, outcome.done);
            changes = outcome.failed;
            if let Some(error) = outcome.error {
                // Not doing its job until the shared cache takes invalidations again.
                refused = true;
                self.status.set_state(WatcherState::Down);
                self.status.fault(WatcherFault::Cache, &error);
                backoff.sleep().await;
            }
        }
        if refused {
            self.status.set_state(WatcherState::Running);
        }
        Ok(())
    }

    /// Changes may have been missed, or whole collections changed: raises the keyspace
    /// epoch — every instance's tiers and the shared tier cleared, see the module docs —
    /// retrying until the shared cache accepts it.
    async fn clear_everything(&self) -> std::result::Result<(), Stopped> {
        tracing::warn!(
            "repository watcher: changes may have been missed; clearing every cached user and role everywhere"
        );
        let mut backoff = Backoff::new();
        let mut refused = false;
        loop {
            let service = self.service()?;
            let raised = service.clear_everywhere().await;
            drop(service);
            match raised {
                Ok(_) => break,
                Err(error) => {
                    // Not doing its job until the shared cache takes the raise.
                    refused = true;
                    self.status.set_state(WatcherState::Down);
                    self.status.fault(WatcherFault::Cache, &error);
                }
            }
            backoff.sleep().await;
        }
        if refused {
            self.status.set_state(WatcherState::Running);
        }
        bump(&self.status.full_clears, 1);
        Ok(())
    }

    /// Remembers `point` as reached and saves it if `now`, or if a checkpoint is due.
    async fn checkpoint(&mut self, point: Option<ResumePoint>, now: bool) {
        let Some(point) = point else {
            return;
        };
        self.position = Some(point.clone());
        let (unchanged, due) = match &self.saved {
            Some((saved, at)) => (*saved == point, at.elapsed() >= CHECKPOINT_INTERVAL),
            None => (false, true),
        };
        if unchanged || !(now || due) {
            return;
        }
        match self.checkpoints.save(&point).await {
            Ok(()) => {
                self.saved = Some((point, Instant::now()));
                bump(&self.status.checkpoints, 1);
            }
            // Kept in `position`: retried at the next checkpoint.
            Err(error) => self.status.fault(WatcherFault::Cache, &error),
        }
    }

    async fn load_checkpoint(&self) -> std::result::Result<Option<ResumePoint>, Stopped> {
        let mut backoff = Backoff::new();
        loop {
            match self.checkpoints.load().await {
                Ok(point) => return Ok(point),
                Err(error) => {
                    self.status.set_state(WatcherState::Down);
                    self.status.fault(WatcherFault::Cache, &error);
                }
            }
            self.alive()?;
            backoff.sleep().await;
        }
    }

    fn alive(&self) -> std::result::Result<(), Stopped> {
        if self.service.strong_count() == 0 {
            Err(Stopped)
        } else {
            Ok(())
        }
    }

    fn service(&self) -> std::result::Result<AuthService<U>, Stopped> {
        AuthService::upgrade(&self.service).ok_or(Stopped)
    }
}

/// How a round of invalidations went.
struct Outcome {
    done: u64,
    failed: Vec<Change>,
    error: Option<AuthError>,
}

/// Invalidates `changes`, [`DRAIN_CONCURRENCY`] at a time.
async fn invalidate_concurrently<U: UserRecord>(
    service: &AuthService<U>,
    changes: Vec<Change>,
) -> Outcome {
    let mut outcome = Outcome {
        done: 0,
        failed: Vec::new(),
        error: None,
    };
    let mut queue = changes.into_iter();
    let mut tasks = JoinSet::new();
    let mut running = HashMap::new();
    loop {
        while tasks.len() < DRAIN_CONCURRENCY
            && let Some(change) = queue.next()
        {
            let (service, task_change) = (service.clone(), change.clone());
            let task = tasks.spawn(async move { invalidate_one(&service, &task_change).await });
            running.insert(task.id(), change);
        }
        let (id, result) = match tasks.join_next_with_id().await {
            None => return outcome,
            Some(Ok((id, result))) => (id, result),
            Some(Err(error)) => (error.id(), Err(AuthError::unavailable(error))),
        };
        let change = running.remove(&id);
        match result {
            Ok(()) => outcome.done += 1,
            Err(error) => {
                outcome.failed.extend(change);
                outcome.error = Some(error);
            }
        }
    }
}

async fn invalidate_one<U: UserRecord>(service: &AuthService<U>, change: &Change) -> Result<()> {
    let invalidated = match change {
        Change::User(id) => service.invalidate_user(id).await,
        Change::Role(role) => service.invalidate_role(role).await,
        _ => Ok(()),
    };
    match invalidated {
        // An id that cannot be a cache key was never cached: nothing to drop.
        Err(AuthError::UnknownUser) => Ok(()),
        other => other,
    }
}

/// Polls `future` once: its output if it is ready at once (a change already buffered), or
/// `Pending` (it waits on the server) — after which it can still be awaited.
async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use authcache_memory::MemoryCache;
    use authcache_users::{DocumentKind, FeedResult, MemoryUserRepository, User, UserRepository};
    use tokio::sync::mpsc;

    use super::*;
    use crate::test_support::eventually;
    use crate::{AuthService, JwtVerifier};

    /// A feed driven by the test: changes sent on a channel; resume points count them.
    #[derive(Clone)]
    struct FakeFeed {
        changes: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<FeedResult<Change>>>>,
        /// What each `open` was asked to resume from (the count of changes before it).
        opened_from: Arc<Mutex<Vec<Option<u64>>>>,
        /// Answers to the next opens from a point (`true`: history lost).
        lost: Arc<Mutex<VecDeque<bool>>>,
        users: Vec<String>,
    }

    fn fake_feed(users: &[&str]) -> (FakeFeed, mpsc::UnboundedSender<FeedResult<Change>>) {
        let (send, receive) = mpsc::unbounded_channel();
        let feed = FakeFeed {
            changes: Arc::new(tokio::sync::Mutex::new(receive)),
            opened_from: Arc::default(),
            lost: Arc::default(),
            users: users.iter().map(|id| (*id).to_owned()).collect(),
        };
        (feed, send)
    }

    fn position(point: &ResumePoint) -> u64 {
        point.as_bytes().try_into().map_or(0, u64::from_be_bytes)
    }

    #[async_trait]
    impl ChangeFeed for FakeFeed {
        async fn open(&self, from: Option<&ResumePoint>) -> FeedResult<Box<dyn ChangeStream>> {
            let from = from.map(position);
            self.opened_from.lock().unwrap().push(from);
            let lost = self.lost.lock().unwrap().pop_front().unwrap_or(false);
            if lost && from.is_some() {
                return Err(FeedError::HistoryLost("pruned".into()));
            }
            Ok(Box::new(FakeStream {
                changes: Arc::clone(&self.changes),
                position: from.unwrap_or(0),
            }))
        }

        async fn ids_after(
            &self,
            kind: DocumentKind,
            after: Option<&str>,
            limit: usize,
        ) -> authcache_users::Result<Vec<String>> {
            let ids = match kind {
                DocumentKind::User => self.users.clone(),
                _ => vec!["admin".to_owned(), "viewer".to_owned()],
            };
            Ok(ids
                .into_iter()
                .filter(|id| after.is_none_or(|after| id.as_str() > after))
                .take(limit)
                .collect())
        }
    }

    struct FakeStream {
        changes: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<FeedResult<Change>>>>,
        position: u64,
    }

    #[async_trait]
    impl ChangeStream for FakeStream {
        async fn next(&mut self) -> FeedResult<Option<Change>> {
            let mut changes = self.changes.lock().await;
            let wait = tokio::time::timeout(Duration::from_millis(20), changes.recv());
            match wait.await {
                Ok(Some(Ok(change))) => {
                    self.position += 1;
                    Ok(Some(change))
                }
                Ok(Some(Err(error))) => Err(error),
                Ok(None) | Err(_) => Ok(None),
            }
        }

        fn resume_point(&self) -> Option<ResumePoint> {
            Some(ResumePoint::from_bytes(self.position.to_be_bytes()))
        }
    }

    async fn watched(
        repository: &Arc<dyn UserRepository>,
        feed: &FakeFeed,
        l2: Option<(&Arc<MemoryCache>, &[u8])>,
    ) -> AuthService {
        let builder = AuthService::builder()
            .verifier(JwtVerifier::test_hs256())
            .shared_repository(Arc::clone(repository))
            .watch(feed.clone());
        let builder = match l2 {
            Some((l2, key)) => builder
                .l2(Arc::clone(l2) as Arc<dyn Cache>)
                .signing_key(key),
            None => builder,
        };
        let auth = builder.build().await.unwrap();
        eventually("the watcher to run", || {
            auth.stats().watcher.unwrap().state == WatcherState::Running
        })
        .await;
        auth
    }

    fn repository() -> Arc<dyn UserRepository> {
        Arc::new(crate::test_support::repository())
    }

    async fn demote_ada(repository: &Arc<dyn UserRepository>) {
        let ada = User::new("ada", "ada@example.com", "Ada").with_roles(["viewer"]);
        repository.upsert(&ada).await.unwrap();
    }

    #[test]
    fn pending_ids_coalesce_and_are_bounded() {
        let mut pending = Pending::default();
        let added: Vec<Added> = (0..10_000)
            .map(|i| pending.add(Change::User(format!("u{}", i % 3)), None))
            .collect();
        assert_eq!(added.iter().filter(|a| **a == Added::New).count(), 3);
        assert_eq!(pending.ids.len(), 3);
        assert_eq!(pending.add(Change::Everything, None), Added::Everything);
        let batch = pending.take();
        assert_eq!((batch.changes.len(), batch.everything), (3, true));
        for i in 0..PENDING_CAPACITY {
            assert!(!pending.is_full());
            pending.add(Change::Role(format!("r{i}")), None);
        }
        assert!(pending.is_full());
    }

    #[test]
    fn a_batch_carries_the_point_after_its_last_change() {
        let mut pending = Pending::default();
        let point = |n: u64| Some(ResumePoint::from_bytes(n.to_be_bytes()));
        pending.add(Change::User("a".into()), point(1));
        pending.advance(None);
        pending.add(Change::User("b".into()), point(2));
        assert_eq!(pending.take().point, point(2));
        assert_eq!(pending.take().point, None, "a point is settled once");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_the_repository_reports_is_invalidated() {
        let repository = repository();
        let (feed, changes) = fake_feed(&["ada", "bob", "eve"]);
        let auth = watched(&repository, &feed, None).await;
        assert_eq!(*auth.roles("ada").await.unwrap(), ["admin"]);
        demote_ada(&repository).await;
        assert_eq!(
            *auth.roles("ada").await.unwrap(),
            ["admin"],
            "cached until told"
        );

        changes.send(Ok(Change::User("ada".into()))).unwrap();
        eventually("the watcher to invalidate ada", || {
            auth.stats().watcher.unwrap().invalidations == 1
        })
        .await;
        assert_eq!(*auth.roles("ada").await.unwrap(), ["viewer"]);
        let stats = auth.stats().watcher.unwrap();
        assert_eq!(
            (stats.events, stats.coalesced, stats.full_clears),
            (1, 0, 0)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_history_clears_everything() {
        let repository = repository();
        let (feed, changes) = fake_feed(&["ada", "bob", "eve"]);
        let auth = watched(&repository, &feed, None).await;
        assert_eq!(*auth.roles("ada").await.unwrap(), ["admin"]);
        demote_ada(&repository).await;

        feed.lost.lock().unwrap().push_back(true);
        changes
            .send(Err(FeedError::HistoryLost("server restarted".into())))
            .unwrap();
        eventually("a full clear", || {
            auth.stats().watcher.unwrap().full_clears == 1
        })
        .await;
        assert_eq!(*auth.roles("ada").await.unwrap(), ["viewer"]);
        assert_eq!(auth.stats().keyspace_epoch, 1, "the epoch was raised");
        let stats = auth.stats().watcher.unwrap();
        assert_eq!(stats.last_error, Some(WatcherFault::HistoryLost));
        let opened = feed.opened_from.lock().unwrap().clone();
        assert_eq!(
            opened,
            [None, Some(0), None],
            "resume refused, then a fresh stream"
        );
    }

    /// A dropped `users` collection: the repository lists no user any more, yet none of
    /// them may be served from any tier.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_collection_clears_users_the_repository_no_longer_lists() {
        let repository = repository();
        let l2 = Arc::new(MemoryCache::new(1 << 20));
        let key = b"watcher-test-signing-key-0123456".as_slice();
        let (feed, changes) = fake_feed(&[]);
        let auth = watched(&repository, &feed, Some((&l2, key))).await;
        let clears = auth.stats().watcher.unwrap().full_clears;
        assert_eq!(auth.user("ada").await.unwrap().id, "ada");
        assert!(repository.delete("ada").await.unwrap());

        changes.send(Ok(Change::Everything)).unwrap();
        eventually("a full clear", || {
            auth.stats().watcher.unwrap().full_clears == clears + 1
        })
        .await;
        assert_eq!(auth.user("ada").await.unwrap_err(), AuthError::UnknownUser);
        let stats = auth.stats().watcher.unwrap();
        assert_eq!((stats.events, stats.everything), (1, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restarted_watcher_resumes_from_its_signed_checkpoint() {
        let repository = repository();
        let l2 = Arc::new(MemoryCache::new(1 << 20));
        let key = b"watcher-test-signing-key-0123456".as_slice();
        let (feed, changes) = fake_feed(&["ada", "bob", "eve"]);
        let first = watched(&repository, &feed, Some((&l2, key))).await;
        assert_eq!(
            first.stats().watcher.unwrap().full_clears,
            1,
            "no checkpoint yet"
        );
        changes.send(Ok(Change::User("bob".into()))).unwrap();
        changes.send(Ok(Change::User("bob".into()))).unwrap();
        // Past the checkpoint interval, an idle stream saves the point after both.
        let guarded = Arc::new(GuardedCache::new(
            Arc::clone(&l2) as Arc<dyn Cache>,
            authcache_core::BreakerConfig::default(),
        ));
        let codec =
            EnvelopeCodec::new().with_signing_key(authcache_core::SigningKey::new(key).unwrap());
        let saved = Checkpoints::new(&Keyspace::default(), &codec, &guarded).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while saved.load().await.unwrap().as_ref().map(position) != Some(2) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no checkpoint after both"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(first);

        let second = watched(&repository, &feed, Some((&l2, key))).await;
        let stats = second.stats().watcher.unwrap();
        assert_eq!((stats.resumes, stats.full_clears), (1, 0));
        assert_eq!(feed.opened_from.lock().unwrap().last(), Some(&Some(2)));
        drop(second);

        // A checkpoint that does not verify is no checkpoint: start over, with a clear.
        let other_key = b"another-signing-key-of-32-bytes!".as_slice();
        let third = watched(&repository, &feed, Some((&l2, other_key))).await;
        let stats = third.stats().watcher.unwrap();
        assert_eq!((stats.resumes, stats.full_clears), (0, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_watcher_stops_with_the_service() {
        let (feed, _changes) = fake_feed(&[]);
        let auth = watched(&repository(), &feed, None).await;
        assert!(
            Arc::strong_count(&feed.opened_from) > 1,
            "the task holds the feed"
        );
        drop(auth);
        eventually("the watcher task to end", || {
            Arc::strong_count(&feed.opened_from) == 1
        })
        .await;
    }

    #[tokio::test]
    async fn a_repository_without_a_feed_cannot_be_watched() {
        let error = AuthService::builder()
            .verifier(JwtVerifier::test_hs256())
            .repository(MemoryUserRepository::new())
            .watch_repository()
            .build()
            .await
            .unwrap_err();
        assert!(matches!(error, AuthError::Config(message) if message.contains(".watch(")));
    }
}
