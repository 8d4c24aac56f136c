//! Unit tests of the repository watcher against a fake change feed: coalescing,
//! invalidation, lost history, checkpoints, shutdown.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;
use authcache_memory::MemoryCache;
use authcache_users::{DocumentKind, FeedResult, MemoryUserRepository, User, UserRepository};
use tokio::sync::mpsc;

use super::*;
use crate::test_support::{eventually, eventually_async};
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
    eventually_async("a checkpoint after both", || async {
        saved.load().await.unwrap().as_ref().map(position) == Some(2)
    })
    .await;
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
