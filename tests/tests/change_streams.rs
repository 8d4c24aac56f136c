//! Invalidation from the system of record: `MongoUserRepository`'s change feed against a real
//! MongoDB-compatible server run as a replica set (SecantusDB, single node), and the facade's
//! watcher turning raw driver writes — never through authcache — into invalidations that
//! every instance follows over Redis. The server is killed mid-stream, its oplog pruned,
//! the watcher restarted; a burst of 10,000 updates is absorbed with a bounded set of
//! pending ids. Every wait is a bounded poll on an effect.
// Test helpers outside `#[test]` functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod auth_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use auth_support::{SECRET, SIGNING_KEY, bearer, patient_breaker, wait_subscribed};
use authcache::{
    AuthError, AuthService, CacheConfig, Change, ChangeFeed, ChangeStream, DocumentKind, FeedError,
    JwtVerifier, MongoUserRepository, ResumePoint, User, UserRepository, WatcherState,
    WatcherStats,
};
use authcache_tests::mongo_server::{MongoServer, MongoServerOptions};
use authcache_tests::process::eventually;
use authcache_tests::redis_server::RedisServer;
use mongodb::Collection;
use mongodb::bson::{Document, doc, oid::ObjectId};

/// Bound on a raw write reaching every instance: the change stream wakes on the write, the
/// invalidation is one Redis round trip and one pub/sub message — milliseconds, unless the
/// machine is starved.
const WATCH_BOUND: Duration = Duration::from_secs(20);
/// Bound on a watcher (re)starting, the server restarting, a backlog being read.
const RECOVERY: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// The feed itself.

/// Raw driver handles on the repository's collections: the writes authcache never sees.
struct Raw {
    users: Collection<Document>,
    roles: Collection<Document>,
    database: mongodb::Database,
}

async fn raw(server: &MongoServer, database: &str) -> Raw {
    let database = server.client().await.database(database);
    Raw {
        users: database.collection("users"),
        roles: database.collection("roles"),
        database,
    }
}

async fn seeded(server: &MongoServer, database: &str) -> MongoUserRepository {
    let repository = MongoUserRepository::connect(&server.uri(), database)
        .await
        .unwrap();
    for (role, permissions) in auth_support::ROLES {
        repository
            .upsert_role(role, permissions.iter().copied())
            .await
            .unwrap();
    }
    for user in auth_support::users() {
        repository.upsert(&user).await.unwrap();
    }
    repository
}

/// The next change of `stream`, waiting through idle answers (bounded).
async fn next_change(stream: &mut Box<dyn ChangeStream>) -> Result<Change, FeedError> {
    let deadline = Instant::now() + WATCH_BOUND;
    loop {
        if let Some(change) = stream.next().await? {
            return Ok(change);
        }
        assert!(
            Instant::now() < deadline,
            "no change within {WATCH_BOUND:?}"
        );
    }
}

#[tokio::test]
async fn the_feed_reports_every_kind_of_write_by_document_key() {
    let server = MongoServer::start_replica_set().await;
    let database = server.fresh_database();
    let repository = seeded(&server, &database).await;
    let raw = raw(&server, &database).await;
    let mut stream = repository.open(None).await.unwrap();

    raw.users
        .insert_one(doc! { "_id": "new", "email": "new@example.com", "name": "New" })
        .await
        .unwrap();
    raw.users
        .update_one(
            doc! { "_id": "ada" },
            doc! { "$set": { "roles": ["viewer"] } },
        )
        .await
        .unwrap();
    raw.users
        .replace_one(
            doc! { "_id": "bob" },
            doc! { "email": "b@example.com", "name": "B" },
        )
        .await
        .unwrap();
    raw.database
        .collection::<Document>("unrelated")
        .insert_one(doc! { "_id": "ada" })
        .await
        .unwrap();
    // An ObjectId `_id` (a Python backend's default) is named by its hex, like the
    // repository finds it.
    let object_id = ObjectId::new();
    raw.users
        .insert_one(doc! { "_id": object_id, "name": "written by pymongo" })
        .await
        .unwrap();
    raw.users
        .insert_one(doc! { "_id": 42, "name": "not a cacheable id" })
        .await
        .unwrap();
    raw.roles
        .update_one(
            doc! { "_id": "viewer" },
            doc! { "$set": { "permissions": [] } },
        )
        .await
        .unwrap();
    raw.users.delete_one(doc! { "_id": "eve" }).await.unwrap();
    raw.roles.drop().await.unwrap();

    let mut changes = Vec::new();
    for _ in 0..7 {
        changes.push(next_change(&mut stream).await.unwrap());
    }
    assert_eq!(
        changes,
        [
            Change::User("new".into()),
            Change::User("ada".into()),
            Change::User("bob".into()),
            Change::User(object_id.to_hex()),
            Change::Role("viewer".into()),
            Change::User("eve".into()),
            Change::Everything,
        ],
        "other collections and ids that cannot be cache keys are skipped"
    );
}

#[tokio::test]
async fn a_stream_resumes_after_its_last_change() {
    let server = MongoServer::start_replica_set().await;
    let database = server.fresh_database();
    let repository = seeded(&server, &database).await;
    let raw = raw(&server, &database).await;
    let mut stream = repository.open(None).await.unwrap();
    raw.users.delete_one(doc! { "_id": "ada" }).await.unwrap();
    assert_eq!(
        next_change(&mut stream).await.unwrap(),
        Change::User("ada".into())
    );
    let point = stream.resume_point().expect("a point after a change");
    drop(stream);

    // Written while nobody was listening.
    raw.users.delete_one(doc! { "_id": "bob" }).await.unwrap();
    let mut resumed = repository.open(Some(&point)).await.unwrap();
    assert_eq!(
        next_change(&mut resumed).await.unwrap(),
        Change::User("bob".into())
    );

    // Stored and read back as bytes, a point still resumes.
    let stored = ResumePoint::from_bytes(point.as_bytes().to_vec());
    let mut again = repository.open(Some(&stored)).await.unwrap();
    assert_eq!(
        next_change(&mut again).await.unwrap(),
        Change::User("bob".into())
    );
}

#[tokio::test]
async fn a_resume_point_whose_history_was_pruned_is_history_lost() {
    let server =
        MongoServer::start_with(&MongoServerOptions::replica_set().oplog_max_entries(20)).await;
    let database = server.fresh_database();
    let repository = seeded(&server, &database).await;
    let raw = raw(&server, &database).await;
    let mut stream = repository.open(None).await.unwrap();
    raw.users.delete_one(doc! { "_id": "ada" }).await.unwrap();
    next_change(&mut stream).await.unwrap();
    let point = stream.resume_point().unwrap();
    drop(stream);

    let noise: Vec<Document> = (0..100).map(|i| doc! { "i": i }).collect();
    raw.database
        .collection::<Document>("noise")
        .insert_many(noise)
        .await
        .unwrap();
    assert!(server.prune_oplog().await > 0, "the oplog was pruned");
    let error = repository
        .open(Some(&point))
        .await
        .err()
        .expect("history lost");
    assert!(error.is_history_lost(), "{error}");
}

#[tokio::test]
async fn a_restarted_server_never_continues_a_stream_silently() {
    let mut server = MongoServer::start_replica_set().await;
    let database = server.fresh_database();
    let repository = seeded(&server, &database).await;
    let raw = raw(&server, &database).await;
    let mut stream = repository.open(None).await.unwrap();
    raw.users.delete_one(doc! { "_id": "ada" }).await.unwrap();
    next_change(&mut stream).await.unwrap();
    let point = stream.resume_point().unwrap();

    // In memory: the new process has neither the data nor the oplog; the driver may well
    // resume the stream on it by itself.
    server.kill();
    server.restart().await;
    retrying("a write to the restarted server", || async {
        raw.users
            .insert_one(doc! { "_id": "written-after-the-restart" })
            .await
            .is_ok()
    })
    .await;

    // The live stream must end in a lost history (directly, or by breaking and then
    // refusing to resume), never carry on as if nothing happened.
    let deadline = Instant::now() + RECOVERY;
    let error = loop {
        assert!(Instant::now() < deadline, "the restart went unnoticed");
        match stream.next().await {
            Ok(_) => {}
            Err(error) if error.is_history_lost() => break error,
            Err(_) => break reopen_refused(&repository, &point).await,
        }
    };
    assert!(error.is_history_lost(), "{error}");
    let error = reopen_refused(&repository, &point).await;
    assert!(
        error.is_history_lost(),
        "a point of the old process: {error}"
    );
}

/// Opens from `point` until the feed decides (transient errors retried, bounded): it must
/// refuse with a lost history, never resume.
async fn reopen_refused(repository: &MongoUserRepository, point: &ResumePoint) -> FeedError {
    let deadline = Instant::now() + RECOVERY;
    loop {
        match repository.open(Some(point)).await {
            Ok(_) => panic!("resumed a stream across a server restart"),
            Err(error) if error.is_history_lost() => return error,
            Err(error) => assert!(Instant::now() < deadline, "no decision: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Retries `attempt` until it succeeds (a restarted server is being rediscovered).
async fn retrying<F, Fut>(what: &str, attempt: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually(RECOVERY, what, attempt).await;
}

#[tokio::test]
async fn ids_page_through_what_the_repository_holds() {
    let server = MongoServer::start_replica_set().await;
    let database = server.fresh_database();
    let repository = seeded(&server, &database).await;
    let raw = raw(&server, &database).await;
    let object_id = ObjectId::new();
    raw.users
        .insert_one(doc! { "_id": object_id, "name": "written by pymongo" })
        .await
        .unwrap();
    raw.users
        .insert_one(doc! { "_id": 42, "name": "never a cache key" })
        .await
        .unwrap();
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = repository
            .ids_after(DocumentKind::User, after.as_deref(), 7)
            .await
            .unwrap();
        assert!(page.len() <= 7);
        let Some(last) = page.last() else { break };
        after = Some(last.clone());
        all.extend(page);
    }
    let mut expected: Vec<String> = auth_support::users().iter().map(|u| u.id.clone()).collect();
    expected.push(object_id.to_hex());
    expected.sort();
    assert_eq!(all, expected);
    let roles = repository
        .ids_after(DocumentKind::Role, None, 100)
        .await
        .unwrap();
    assert_eq!(roles, ["admin", "viewer"]);
}

// ---------------------------------------------------------------------------------------
// The facade's watcher.

/// Redis, a replica set, a seeded database, and raw handles on it.
struct Deployment {
    redis: RedisServer,
    mongo: MongoServer,
    repository: MongoUserRepository,
    raw: Raw,
}

impl Deployment {
    async fn start() -> Self {
        Self::start_with(&MongoServerOptions::replica_set()).await
    }

    async fn start_with(options: &MongoServerOptions) -> Self {
        let redis = RedisServer::start();
        let mongo = MongoServer::start_with(options).await;
        let database = mongo.fresh_database();
        let repository = seeded(&mongo, &database).await;
        let raw = raw(&mongo, &database).await;
        Self {
            redis,
            mongo,
            repository,
            raw,
        }
    }

    /// An instance on the shared Redis, subscribed to the bus.
    async fn instance(&self) -> AuthService {
        let auth = self.builder().build().await.unwrap();
        wait_subscribed(&auth).await;
        auth
    }

    /// An instance that also runs the watcher, returned once it follows the feed.
    async fn watcher(&self) -> AuthService {
        let auth = self
            .builder()
            .watch(self.repository.clone())
            .build()
            .await
            .unwrap();
        wait_subscribed(&auth).await;
        eventually(RECOVERY, "the watcher to follow the feed", || async {
            watcher_stats(&auth).state == WatcherState::Running
        })
        .await;
        auth
    }

    fn builder(&self) -> authcache::AuthServiceBuilder {
        let repository: Arc<dyn UserRepository> = Arc::new(self.repository.clone());
        AuthService::builder()
            .verifier(JwtVerifier::hs256(SECRET))
            .shared_repository(repository)
            .cache(CacheConfig::redis(self.redis.url()))
            .breaker(patient_breaker())
            .signing_key(SIGNING_KEY)
            .prefix("itest")
    }

    /// A raw `update_one` of the user's roles (retried while a server that was just
    /// thawed or restarted is being rediscovered: `$set` is idempotent).
    async fn set_roles(&self, id: &str, roles: &[&str]) {
        retrying("a raw update of the roles", || async {
            self.raw
                .users
                .update_one(doc! { "_id": id }, doc! { "$set": { "roles": roles } })
                .await
                .is_ok()
        })
        .await;
    }
}

fn watcher_stats(auth: &AuthService) -> WatcherStats {
    auth.stats()
        .watcher
        .expect("this instance runs the watcher")
}

/// Every instance has the user in its L1 (and Redis has it) before anything changes.
async fn warm(instances: &[&AuthService], token: &str) {
    for auth in instances {
        for _ in 0..2 {
            auth.authenticate(token).await.unwrap();
        }
    }
}

async fn everyone_sees<F>(instances: &[&AuthService], token: &str, what: &str, check: F)
where
    F: Fn(&Result<authcache::Principal, AuthError>) -> bool,
{
    for (i, auth) in instances.iter().enumerate() {
        eventually(WATCH_BOUND, &format!("instance {i}: {what}"), || async {
            check(&auth.authenticate(token).await)
        })
        .await;
    }
}

fn is_viewer_only(who: &Result<authcache::Principal, AuthError>) -> bool {
    who.as_ref()
        .is_ok_and(|who| who.has_role("viewer") && !who.has_permission("users:write"))
}

#[tokio::test]
async fn a_raw_role_change_reaches_every_instance() {
    let deployment = Deployment::start().await;
    let watcher = deployment.watcher().await;
    let (one, two) = (deployment.instance().await, deployment.instance().await);
    let instances = [&watcher, &one, &two];
    let (ada, bob) = (bearer("ada"), bearer("bob"));
    warm(&instances, &ada).await;
    warm(&instances, &bob).await;

    deployment.set_roles("ada", &["viewer"]).await;
    everyone_sees(&instances, &ada, "ada demoted", is_viewer_only).await;

    deployment
        .raw
        .roles
        .update_one(
            doc! { "_id": "viewer" },
            doc! { "$set": { "permissions": ["users:read", "reports:read"] } },
        )
        .await
        .unwrap();
    everyone_sees(&instances, &bob, "viewers may read reports", |who| {
        who.as_ref()
            .is_ok_and(|who| who.has_permission("reports:read"))
    })
    .await;
    assert_eq!(watcher_stats(&watcher).events, 2);
}

#[tokio::test]
async fn a_raw_delete_is_an_unknown_user_everywhere() {
    let deployment = Deployment::start().await;
    let watcher = deployment.watcher().await;
    let other = deployment.instance().await;
    let instances = [&watcher, &other];
    let ada = bearer("ada");
    warm(&instances, &ada).await;

    deployment
        .raw
        .users
        .delete_one(doc! { "_id": "ada" })
        .await
        .unwrap();
    everyone_sees(&instances, &ada, "ada unknown", |who| {
        who.as_ref().err() == Some(&AuthError::UnknownUser)
    })
    .await;
}

/// A dropped (or renamed) `users` collection: the repository lists no user any more, yet
/// every instance had them in its L1 and Redis had them in L2. The watcher's clear raises
/// the keyspace epoch; once an instance has adopted it, it serves none of them.
async fn a_collection_gone_is_served_by_no_instance(gone: impl AsyncFnOnce(&Raw)) {
    let deployment = Deployment::start().await;
    let watcher = deployment.watcher().await;
    let other = deployment.instance().await;
    let instances = [&watcher, &other];
    let (ada, bob) = (bearer("ada"), bearer("bob"));
    warm(&instances, &ada).await;
    warm(&instances, &bob).await;
    let clears = watcher_stats(&watcher).full_clears;

    gone(&deployment.raw).await;
    eventually(WATCH_BOUND, "the watcher to clear everything", || async {
        watcher_stats(&watcher).full_clears > clears
    })
    .await;
    let epoch = watcher.stats().keyspace_epoch;
    eventually(
        WATCH_BOUND,
        "the other instance to adopt the epoch",
        || async { other.stats().keyspace_epoch >= epoch },
    )
    .await;
    for (i, auth) in instances.iter().enumerate() {
        for token in [&ada, &bob] {
            let who = auth.authenticate(token).await;
            assert_eq!(who.err(), Some(AuthError::UnknownUser), "instance {i}");
        }
        let ada = auth.user("ada").await;
        assert_eq!(ada.err(), Some(AuthError::UnknownUser), "instance {i}");
    }
}

#[tokio::test]
async fn a_dropped_users_collection_is_served_by_no_instance() {
    a_collection_gone_is_served_by_no_instance(async |raw: &Raw| {
        raw.users.drop().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_renamed_users_collection_is_served_by_no_instance() {
    a_collection_gone_is_served_by_no_instance(async |raw: &Raw| {
        let database = raw.database.name();
        let rename = doc! {
            "renameCollection": format!("{database}.users"),
            "to": format!("{database}.users_before_the_migration"),
        };
        let admin = raw.users.client().database("admin");
        admin.run_command(rename).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_restarted_watcher_resumes_where_the_last_one_stopped() {
    let deployment = Deployment::start().await;
    let first = deployment.watcher().await;
    // Nothing was known about the time before it, and Redis is shared: it started clean.
    assert_eq!(watcher_stats(&first).full_clears, 1);
    let other = deployment.instance().await;
    let ada = bearer("ada");
    warm(&[&other], &ada).await;
    eventually(RECOVERY, "a checkpoint", || async {
        watcher_stats(&first).checkpoints >= 1
    })
    .await;
    drop(first);

    // Nobody watches: this change is seen only if the next watcher resumes.
    deployment.set_roles("ada", &["viewer"]).await;
    let second = deployment.watcher().await;
    everyone_sees(&[&other], &ada, "ada demoted", is_viewer_only).await;
    let stats = watcher_stats(&second);
    assert_eq!((stats.resumes, stats.full_clears), (1, 0), "{stats:?}");
    assert_eq!(stats.events, 1, "{stats:?}");
}

#[tokio::test]
async fn a_pruned_history_is_cleared_not_missed() {
    let deployment =
        Deployment::start_with(&MongoServerOptions::replica_set().oplog_max_entries(20)).await;
    let first = deployment.watcher().await;
    let other = deployment.instance().await;
    let (ada, bob) = (bearer("ada"), bearer("bob"));
    warm(&[&other], &ada).await;
    warm(&[&other], &bob).await;
    eventually(RECOVERY, "a checkpoint", || async {
        watcher_stats(&first).checkpoints >= 1
    })
    .await;
    drop(first);

    deployment.set_roles("ada", &["viewer"]).await;
    let noise: Vec<Document> = (0..100).map(|i| doc! { "i": i }).collect();
    let noise_collection = deployment.raw.database.collection::<Document>("noise");
    noise_collection.insert_many(noise).await.unwrap();
    assert!(deployment.mongo.prune_oplog().await > 0);

    let epoch_before = other.stats().keyspace_epoch;
    let second = deployment.watcher().await;
    let stats = watcher_stats(&second);
    assert_eq!((stats.resumes, stats.full_clears), (0, 1), "{stats:?}");
    // Everything was cleared everywhere: the keyspace epoch was raised.
    assert!(second.stats().keyspace_epoch > epoch_before);
    everyone_sees(&[&other], &ada, "ada demoted", is_viewer_only).await;
    everyone_sees(&[&other], &bob, "bob unchanged", |who| {
        who.as_ref().is_ok_and(|who| who.has_role("viewer"))
    })
    .await;
}

#[tokio::test]
async fn a_server_restart_mid_stream_is_cleared_or_resumed_never_missed() {
    let mut deployment = Deployment::start().await;
    let watcher = deployment.watcher().await;
    let other = deployment.instance().await;
    let instances = [&watcher, &other];
    let ada = bearer("ada");
    warm(&instances, &ada).await;
    let clears_before = watcher_stats(&watcher).full_clears;

    // In memory: the new process is empty. The data is restored (as after a failover to
    // a lagging node) with ada demoted — while the watcher is blind.
    deployment.mongo.kill();
    deployment.mongo.restart().await;
    let repository = &deployment.repository;
    for (role, permissions) in auth_support::ROLES {
        retrying("restoring a role", || async {
            let permissions = permissions.iter().copied();
            repository.upsert_role(role, permissions).await.is_ok()
        })
        .await;
    }
    let demoted = User::new("ada", "ada@example.com", "Ada").with_roles(["viewer"]);
    retrying("restoring ada", || async {
        repository.upsert(&demoted).await.is_ok()
    })
    .await;

    everyone_sees(
        &instances,
        &ada,
        "ada demoted after the restart",
        is_viewer_only,
    )
    .await;
    eventually(RECOVERY, "the watcher to follow the new server", || async {
        let stats = watcher_stats(&watcher);
        stats.state == WatcherState::Running && stats.full_clears > clears_before
    })
    .await;

    // The stream follows the new process: a change after the restart still arrives.
    deployment.set_roles("ada", &["admin"]).await;
    everyone_sees(&instances, &ada, "ada promoted again", |who| {
        who.as_ref()
            .is_ok_and(|who| who.has_permission("users:write"))
    })
    .await;
}

#[tokio::test]
async fn a_hung_server_is_resumed_from_the_same_history_not_cleared() {
    let deployment = Deployment::start().await;
    let watcher = deployment.watcher().await;
    let other = deployment.instance().await;
    let ada = bearer("ada");
    warm(&[&other], &ada).await;
    let before = watcher_stats(&watcher);

    deployment.mongo.hang();
    eventually(RECOVERY, "the watcher to notice", || async {
        watcher_stats(&watcher).is_down()
    })
    .await;
    deployment.mongo.resume();
    deployment.set_roles("ada", &["viewer"]).await;

    everyone_sees(&[&other], &ada, "ada demoted", is_viewer_only).await;
    eventually(RECOVERY, "the watcher to follow again", || async {
        watcher_stats(&watcher).state == WatcherState::Running
    })
    .await;
    let after = watcher_stats(&watcher);
    assert!(after.resumes > before.resumes, "{after:?}");
    assert_eq!(
        after.full_clears, before.full_clears,
        "same server, same history: {after:?}"
    );
}

/// 10,000 updates of 10 users, written while the watcher is away for the first half: it
/// meets a backlog (read in batches, where repeated ids coalesce — deterministic), then
/// follows the rest live. Never more ids wait than there are users.
#[tokio::test]
async fn a_burst_of_ten_thousand_updates_is_coalesced() {
    const USERS: usize = 10;
    const ROUNDS: usize = 1000;
    let deployment = Deployment::start().await;
    let ids: Vec<String> = (0..USERS).map(|i| format!("user-{i}")).collect();
    let tokens: Vec<String> = ids.iter().map(|id| bearer(id)).collect();
    let other = deployment.instance().await;
    for token in &tokens {
        warm(&[&other], token).await;
    }
    let first = deployment.watcher().await;
    eventually(RECOVERY, "a checkpoint", || async {
        watcher_stats(&first).checkpoints >= 1
    })
    .await;
    drop(first);

    let written = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let writer = tokio::spawn(burst(
        deployment.raw.users.clone(),
        ids.clone(),
        ROUNDS,
        Arc::clone(&written),
    ));
    eventually(RECOVERY, "half the burst written", || async {
        written.load(Ordering::Relaxed) >= ROUNDS / 2
    })
    .await;
    let watcher = deployment.watcher().await;
    writer.await.unwrap();
    let writing = started.elapsed();
    let stats = caught_up(&watcher, (USERS * ROUNDS) as u64).await;
    println!(
        "burst: {} updates written in {writing:?}, settled after {:?} -> {} invalidations, \
         {} coalesced, at most {} ids pending",
        stats.events,
        started.elapsed(),
        stats.invalidations,
        stats.coalesced,
        stats.max_pending
    );
    assert_eq!(stats.events, (USERS * ROUNDS) as u64, "{stats:?}");
    assert_eq!(
        stats.invalidations + stats.coalesced,
        stats.events,
        "{stats:?}"
    );
    assert!(
        stats.coalesced > 0,
        "a backlog read in batches coalesces: {stats:?}"
    );
    assert!(stats.max_pending <= USERS as u64, "{stats:?}");
    assert_eq!(stats.pending, 0, "{stats:?}");
    let last = format!("burst-{}", ROUNDS - 1);
    for token in &tokens {
        everyone_sees(&[&other, &watcher], token, &last, |who| {
            who.as_ref().is_ok_and(|who| who.user.name == last)
        })
        .await;
    }
}

/// `rounds` updates of every user in `ids`, one `update_many` per round (one change event
/// per user and round), counting the rounds written.
async fn burst(
    users: Collection<Document>,
    ids: Vec<String>,
    rounds: usize,
    written: Arc<AtomicUsize>,
) {
    for round in 0..rounds {
        users
            .update_many(
                doc! { "_id": { "$in": &ids } },
                doc! { "$set": { "name": format!("burst-{round}") } },
            )
            .await
            .unwrap();
        written.fetch_add(1, Ordering::Relaxed);
    }
}

/// The watcher's stats once it has read `events` changes and invalidated them all.
async fn caught_up(auth: &AuthService, events: u64) -> WatcherStats {
    eventually(
        RECOVERY,
        &format!("{events} changes read and settled"),
        || async {
            let stats = watcher_stats(auth);
            stats.events >= events && stats.invalidations + stats.coalesced == stats.events
        },
    )
    .await;
    watcher_stats(auth)
}
