//! The watcher task: reads the feed, settles pending changes through the service's
//! public invalidations, clears everything when history is lost, and checkpoints (the
//! protocol is in the [module docs](super)).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::Poll;
use std::time::{Duration, Instant};

use authcache_core::counter;
use authcache_users::{Change, ChangeFeed, ChangeStream, FeedError, ResumePoint, UserRecord};
use tokio::task::JoinSet;

use super::checkpoint::{CHECKPOINT_INTERVAL, Checkpoints};
use super::link::Status;
use super::pending::{Added, Batch, Pending};
use crate::service::{AuthService, WeakAuthService};
use crate::stats::{WatcherFault, WatcherState};
use crate::{AuthError, Result};

/// 32 invalidations in flight at once: enough to hide the round trips to Redis without
/// crowding out the requests that share its connection.
pub(crate) const DRAIN_CONCURRENCY: usize = 32;
/// First pause after a failure; doubled per failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between attempts: a recovered repository or cache is noticed within it.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The service was dropped: the watcher ends.
struct Stopped;

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
pub(super) struct Watcher<U: UserRecord> {
    pub(super) service: WeakAuthService<U>,
    pub(super) feed: Arc<dyn ChangeFeed>,
    pub(super) checkpoints: Checkpoints,
    pub(super) status: Arc<Status>,
    /// The L2 is shared (Redis): entries older than this process may be in it.
    pub(super) shared: bool,
    /// The point up to which every change has been invalidated.
    pub(super) position: Option<ResumePoint>,
    /// The last point saved, and when.
    pub(super) saved: Option<(ResumePoint, Instant)>,
}

impl<U: UserRecord> Watcher<U> {
    pub(super) async fn run(mut self, service: WeakAuthService<U>) {
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
                    counter::bump(&self.status.resumes);
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
        counter::bump(&self.status.events);
        match added {
            Added::New => self.status.set_pending(pending),
            Added::Coalesced => counter::bump(&self.status.coalesced),
            Added::Everything => counter::bump(&self.status.everything),
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
            counter::add(counter, outcome.done);
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
        counter::bump(&self.status.full_clears);
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
                counter::bump(&self.status.checkpoints);
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
        if self.service.is_alive() {
            Ok(())
        } else {
            Err(Stopped)
        }
    }

    fn service(&self) -> std::result::Result<AuthService<U>, Stopped> {
        self.service.upgrade().ok_or(Stopped)
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
