//! Unit tests of [`Tiered`](super::Tiered): single-flight, the tiers' read and write
//! paths, the coherence protocol's races, refused invalidations, stale-if-error and
//! refresh-ahead.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::time::Instant;

use super::l2::unix_ms;
use super::refresh::Failures;
use super::*;
use crate::Cache;
use crate::breaker::{BreakerConfig, BreakerState, DEFAULT_FAILURE_THRESHOLD, with_l2_budget};
use crate::codec::{SigningKey, is_tombstone};
use crate::l1::L1Cache;
use crate::test_support::{HeldL1, RecordingL1};
use crate::testkit::{FlakyCache, Mode};
use crate::{MockCache, MockInvalidationPublisher};

/// One instance's view: its own L1, a shared L2.
struct Rig {
    tier: Arc<Tiered<String>>,
    l1: Arc<RecordingL1<String>>,
    l2: Arc<FlakyCache>,
}

fn rig_with(l2: Arc<FlakyCache>, ttls: &Ttls) -> Rig {
    let l1 = Arc::new(RecordingL1::default());
    let tier = Tiered::builder(KeyKind::User)
        .ttls(ttls)
        .l1(l1.clone())
        .l2(guarded(l2.clone()))
        .build();
    Rig {
        tier: Arc::new(tier),
        l1,
        l2,
    }
}

fn rig() -> Rig {
    rig_with(Arc::default(), &Ttls::default())
}

impl Rig {
    /// `get_or_load` with a counting loader that answers `answer` at once.
    async fn load(
        &self,
        id: &str,
        calls: &Arc<AtomicUsize>,
        answer: Option<&str>,
    ) -> Option<Arc<String>> {
        let load = loader(calls, Duration::ZERO, answer);
        self.tier.get_or_load(id, load).await.unwrap()
    }
}

fn guarded(l2: Arc<dyn Cache>) -> Arc<GuardedCache> {
    Arc::new(GuardedCache::new(l2, BreakerConfig::default()))
}

fn key(id: &str) -> Key {
    Keyspace::default().key(KeyKind::User, id).unwrap()
}

/// A loader that counts its calls and answers `value` after `delay`.
fn loader(
    calls: &Arc<AtomicUsize>,
    delay: Duration,
    value: Option<&str>,
) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = io::Result<Option<String>>> + Send>> + use<>
{
    let calls = Arc::clone(calls);
    let value = value.map(str::to_owned);
    move || {
        Box::pin(async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            Ok(value)
        })
    }
}

fn value(found: &Option<Arc<String>>) -> Option<&str> {
    found.as_deref().map(String::as_str)
}

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_cold_loads_run_the_loader_once() {
    let rig = rig();
    let calls = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let tier = Arc::clone(&rig.tier);
            let load = loader(&calls, Duration::from_millis(10), Some("ada"));
            tokio::spawn(async move { tier.get_or_load("42", load).await })
        })
        .collect();
    for task in tasks {
        let found = task.await.unwrap().unwrap();
        assert_eq!(value(&found), Some("ada"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let stats = rig.tier.stats();
    assert_eq!((stats.loads, stats.coalesced, stats.misses), (1, 999, 1));
    assert!(
        rig.tier.core.lock_flights().is_empty(),
        "finished flights are removed"
    );
    assert!(rig.l2.raw_get(&key("42")).is_some(), "the load filled L2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_loads_on_many_threads_run_the_loader_once() {
    let rig = rig();
    let calls = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let tier = Arc::clone(&rig.tier);
            let (calls, release) = (Arc::clone(&calls), Arc::clone(&release));
            tokio::spawn(async move {
                let load = || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    release.notified().await;
                    Ok::<_, io::Error>(Some(String::from("ada")))
                };
                tier.get_or_load("42", load).await
            })
        })
        .collect();
    // Hold the loader until every other caller is waiting on it (bounded poll).
    for _ in 0..10_000 {
        if rig.tier.stats().coalesced == 999 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(rig.tier.stats().coalesced, 999);
    release.notify_one();
    for task in tasks {
        assert_eq!(value(&task.await.unwrap().unwrap()), Some("ada"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_loader_error_reaches_every_waiter_and_is_not_cached() {
    let rig = rig();
    let calls = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let tier = Arc::clone(&rig.tier);
            let calls = Arc::clone(&calls);
            tokio::spawn(async move {
                tier.get_or_load("42", || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Err::<Option<String>, _>(io::Error::other("mongo down"))
                })
                .await
            })
        })
        .collect();
    for task in tasks {
        let error = task.await.unwrap().unwrap_err();
        assert_eq!(
            error.downcast_ref::<io::Error>().unwrap().to_string(),
            "mongo down"
        );
        assert!(error.to_string().contains("mongo down"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(rig.tier.stats().load_errors, 1);
    let found = rig.load("42", &calls, Some("ada")).await;
    assert_eq!(value(&found), Some("ada"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn reads_go_l1_then_l2_then_loader() {
    let shared = Arc::new(FlakyCache::default());
    let a = rig_with(shared.clone(), &Ttls::default());
    let b = rig_with(shared, &Ttls::default());
    let calls = Arc::new(AtomicUsize::new(0));
    a.load("42", &calls, Some("ada")).await;
    // Another instance finds it in L2, then in its own L1.
    for _ in 0..3 {
        let found = b.load("42", &calls, Some("other")).await;
        assert_eq!(value(&found), Some("ada"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let stats = b.tier.stats();
    assert_eq!((stats.l2_hits, stats.l1_hits, stats.loads), (1, 2, 0));
    assert_eq!(value(&b.tier.get("42").await.unwrap()), Some("ada"));
    assert_eq!(b.tier.get("nobody").await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn l2_failures_never_fail_a_read_and_the_breaker_stops_trying() {
    let rig = rig();
    rig.l2.set_mode(Mode::Failing);
    let calls = Arc::new(AtomicUsize::new(0));
    for n in 0..20 {
        let id = format!("user-{n}");
        let found = rig.load(&id, &calls, Some("ada")).await;
        assert_eq!(value(&found), Some("ada"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 20);
    // One read per request, no write after a failed read: the breaker opened after
    // the threshold and the backend saw nothing more.
    assert_eq!(rig.l2.calls(), u64::from(DEFAULT_FAILURE_THRESHOLD));
    let stats = rig.tier.stats();
    assert_eq!(stats.l2_errors, 20);
    let breaker = stats.breaker.unwrap();
    assert_eq!(breaker.state, BreakerState::Open);
    assert_eq!(breaker.rejected, 15);
    // Values loaded meanwhile are still served from L1.
    let found = rig.load("user-3", &calls, None).await;
    assert_eq!(value(&found), Some("ada"));
    assert_eq!(calls.load(Ordering::SeqCst), 20);
}

#[tokio::test(start_paused = true)]
async fn a_hung_l2_costs_a_read_one_timeout_then_none() {
    let rig = rig();
    rig.l2.set_mode(Mode::Hanging);
    let calls = Arc::new(AtomicUsize::new(0));
    for n in 0..10 {
        let start = Instant::now();
        let found = rig.load(&format!("u{n}"), &calls, Some("ada")).await;
        assert_eq!(value(&found), Some("ada"));
        let expected = if n < DEFAULT_FAILURE_THRESHOLD {
            crate::breaker::DEFAULT_TIMEOUT
        } else {
            Duration::ZERO
        };
        assert_eq!(start.elapsed(), expected, "read {n}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_poisoned_entry_is_a_miss_and_is_overwritten_by_the_next_fill() {
    let rig = rig();
    rig.l2.raw_set(
        &key("42"),
        Bytes::from_static(b"AuCa\x01\x01\x00garbage"),
        Duration::from_secs(60),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let failing = || async { Err::<Option<String>, _>(io::Error::other("down")) };
    assert!(rig.tier.get_or_load("42", failing).await.is_err());
    assert_eq!(rig.tier.stats().decode_failures, 1);
    assert!(
        rig.l2.raw_get(&key("42")).is_some(),
        "readers never delete: only a fill that saw the entry replaces it"
    );
    let found = rig.load("42", &calls, Some("ada")).await;
    assert_eq!(value(&found), Some("ada"));
    assert_eq!(
        rig.tier
            .get("42")
            .await
            .unwrap()
            .as_deref()
            .map(String::as_str),
        Some("ada")
    );
}

#[tokio::test(start_paused = true)]
async fn entries_of_another_signing_key_are_misses_and_left_alone() {
    let shared = Arc::new(FlakyCache::default());
    let writer = rig_with(shared.clone(), &Ttls::default());
    writer.tier.set("42", String::from("ada")).await.unwrap();
    let reader: Tiered<String> = Tiered::builder(KeyKind::User)
        .l2(guarded(shared.clone()))
        .codec(EnvelopeCodec::new().with_signing_key(SigningKey::new([1; 32]).unwrap()))
        .build();
    assert_eq!(reader.get("42").await.unwrap(), None);
    assert_eq!(reader.stats().decode_failures, 1);
    // Left for the instances that can read it (a rotation in progress).
    assert!(shared.raw_get(&key("42")).is_some());
}

#[tokio::test(start_paused = true)]
async fn absent_results_are_cached_as_negative_entries() {
    let rig = rig();
    let calls = Arc::new(AtomicUsize::new(0));
    for _ in 0..5 {
        let found = rig.load("ghost", &calls, None).await;
        assert_eq!(found, None);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let (_, l1_ttl) = rig.l1.ttls()[0].clone();
    let negative = Ttls::default().negative;
    assert!(l1_ttl >= negative.mul_f64(0.9) && l1_ttl <= negative.mul_f64(1.1).min(negative));
    assert!(
        rig.l2.raw_get(&key("ghost")).is_some(),
        "negative entries are shared via L2"
    );
    // Another instance reads the negative entry from L2 without loading.
    let other = rig_with(rig.l2.clone(), &Ttls::default());
    assert_eq!(other.load("ghost", &calls, Some("x")).await, None);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Once it expires, the loader is asked again.
    tokio::time::advance(negative.mul_f64(1.2)).await;
    let found = rig.load("ghost", &calls, Some("late")).await;
    assert_eq!(value(&found), Some("late"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn l1_never_outlives_the_l2_ttl_or_the_cap() {
    let short = Ttls {
        user: Duration::from_secs(10),
        ..Ttls::default()
    };
    let rig = rig_with(Arc::default(), &short);
    let calls = Arc::new(AtomicUsize::new(0));
    rig.load("a", &calls, Some("x")).await;
    rig.tier.set("b", String::from("y")).await.unwrap();
    rig.tier
        .get_or_load_with_ttl("c", || async {
            Ok::<_, io::Error>(Some((String::from("z"), Duration::from_secs(5))))
        })
        .await
        .unwrap();
    rig.tier
        .set_with_ttl("d", String::from("w"), Duration::from_secs(3600))
        .await
        .unwrap();
    let long = rig_with(rig.l2.clone(), &Ttls::default());
    long.load("a", &calls, None).await;
    long.load("c", &calls, None).await;
    let ttls: HashMap<_, _> = rig.l1.ttls().into_iter().collect();
    assert!(ttls["a"] <= Duration::from_secs(11) && ttls["a"] >= Duration::from_secs(9));
    assert!(ttls["b"] <= Duration::from_secs(11));
    assert_eq!(ttls["c"], Duration::from_secs(5));
    assert_eq!(ttls["d"], Duration::from_secs(30));
    // Filled from L2, L1 gets at most what the L2 entry has left.
    let from_l2: HashMap<_, _> = long.l1.ttls().into_iter().collect();
    assert!(from_l2["a"] <= ttls["a"]);
    assert!(from_l2["c"] <= Duration::from_secs(5));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_load_l2_refuses_to_store_is_still_served_from_l1() {
    let mut mock = MockCache::new();
    mock.expect_get().times(1).returning(|_| Ok(None));
    mock.expect_set_if_unchanged()
        .times(1)
        .returning(|_, _, _, _| Err(CacheError::unavailable("connection reset")));
    let l1 = Arc::new(RecordingL1::<String>::default());
    let tier: Tiered<String> = Tiered::builder(KeyKind::User)
        .l1(l1.clone())
        .l2(guarded(Arc::new(mock)))
        .build();
    let calls = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let found = tier
            .get_or_load("42", loader(&calls, Duration::ZERO, Some("ada")))
            .await
            .unwrap();
        assert_eq!(value(&found), Some("ada"));
    }
    // One load; the two later reads were L1 hits (the mock allows a single get and set).
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(tier.stats().l1_hits, 2);
}

#[tokio::test(start_paused = true)]
async fn set_with_ttl_writes_exactly_that_ttl() {
    let mut mock = MockCache::new();
    mock.expect_set()
        .withf(|key, _, ttl| {
            key.as_str() == "authcache:revoked:fp" && *ttl == Duration::from_secs(7)
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    let tier: Tiered<bool> = Tiered::builder(KeyKind::Revoked)
        .l2(guarded(Arc::new(mock)))
        .build();
    tier.set_with_ttl("fp", true, Duration::from_secs(7))
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn writes_and_deletes_reach_both_tiers_and_the_bus() {
    let mut publisher = MockInvalidationPublisher::new();
    publisher
        .expect_publish()
        .withf(|key| key.as_str() == "authcache:v1:user:42")
        .times(3)
        .returning(|_| Ok(()));
    let l2 = Arc::new(FlakyCache::default());
    let l1 = Arc::new(RecordingL1::<String>::default());
    let tier: Tiered<String> = Tiered::builder(KeyKind::User)
        .l1(l1.clone())
        .l2(guarded(l2.clone()))
        .publisher(Arc::new(publisher))
        .build();
    tier.set("42", String::from("ada")).await.unwrap();
    assert!(l1.get("42").is_some() && l2.raw_get(&key("42")).is_some());
    tier.delete("42").await.unwrap();
    let tombstoned = |l2: &FlakyCache| l2.raw_get(&key("42")).is_some_and(|e| is_tombstone(&e));
    assert!(l1.get("42").is_none() && tombstoned(&l2));
    assert_eq!(
        tier.get("42").await.unwrap(),
        None,
        "a tombstone reads as a miss"
    );
    // A zero TTL means "do not cache": it invalidates.
    tier.set_with_ttl("42", String::from("ada"), Duration::ZERO)
        .await
        .unwrap();
    assert!(tombstoned(&l2));
    assert!(matches!(
        tier.set("bad id", String::new()).await,
        Err(CacheError::InvalidKey(_))
    ));
    assert!(tier.delete("").await.is_err());
}

#[tokio::test(start_paused = true)]
async fn bus_and_l2_trouble_on_writes_is_reported_not_hidden() {
    let mut publisher = MockInvalidationPublisher::new();
    publisher
        .expect_publish()
        .returning(|_| Err(CacheError::unavailable("bus down")));
    let rig = rig();
    let tier: Tiered<String> = Tiered::builder(KeyKind::User)
        .l1(rig.l1.clone())
        .l2(guarded(rig.l2.clone()))
        .publisher(Arc::new(publisher))
        .build();
    tier.set("42", String::from("ada")).await.unwrap();
    assert_eq!(tier.stats().publish_errors, 1);
    assert_eq!(tier.stats().pending_invalidations, 1, "the announcement");
    rig.l2.set_mode(Mode::Failing);
    assert!(tier.set("42", String::from("new")).await.is_err());
    assert_eq!(
        value(&tier.get("42").await.unwrap()),
        Some("new"),
        "a write-through L2 refused is in force here"
    );
    assert!(tier.delete("42").await.unwrap_err().is_unavailable());
    assert_eq!(tier.get("42").await.unwrap(), None);
    let stats = tier.stats();
    assert_eq!((stats.publish_errors, stats.pending_invalidations), (3, 1));
}

#[tokio::test(start_paused = true)]
async fn evict_and_clear_local_leave_l2_alone() {
    let rig = rig();
    let calls = Arc::new(AtomicUsize::new(0));
    for id in ["a", "b"] {
        rig.load(id, &calls, Some(id)).await;
    }
    rig.tier.evict_local("a");
    assert!(rig.l1.get("a").is_none() && rig.l1.get("b").is_some());
    rig.tier.clear_local();
    assert!(rig.l1.get("b").is_none());
    for id in ["a", "b"] {
        let found = rig.load(id, &calls, None).await;
        assert_eq!(value(&found), Some(id));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(rig.tier.stats().l2_hits, 2);
}

#[tokio::test(start_paused = true)]
async fn a_write_during_a_load_is_not_overwritten_by_the_load() {
    let rig = rig();
    let calls = Arc::new(AtomicUsize::new(0));
    let slow = tokio::spawn({
        let tier = Arc::clone(&rig.tier);
        let load = loader(&calls, Duration::from_secs(1), Some("old"));
        async move { tier.get_or_load("42", load).await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    rig.tier.set("42", String::from("new")).await.unwrap();
    assert_eq!(value(&slow.await.unwrap().unwrap()), Some("old"));
    let found = rig.load("42", &calls, None).await;
    assert_eq!(value(&found), Some("new"));
    let l2: Option<Arc<String>> = Tiered::<String>::builder(KeyKind::User)
        .l2(guarded(rig.l2.clone()))
        .build()
        .get("42")
        .await
        .unwrap();
    assert_eq!(value(&l2), Some("new"));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_leader_hands_the_load_to_a_waiter() {
    let rig = rig();
    let calls = Arc::new(AtomicUsize::new(0));
    let leader = tokio::spawn({
        let tier = Arc::clone(&rig.tier);
        let load = loader(&calls, Duration::from_secs(3600), Some("never"));
        async move { tier.get_or_load("42", load).await }
    });
    tokio::task::yield_now().await;
    let waiter = tokio::spawn({
        let tier = Arc::clone(&rig.tier);
        let load = loader(&calls, Duration::from_millis(5), Some("ada"));
        async move { tier.get_or_load("42", load).await }
    });
    tokio::task::yield_now().await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    assert_eq!(value(&waiter.await.unwrap().unwrap()), Some("ada"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(rig.tier.core.lock_flights().is_empty());
    // A lone cancelled caller leaves no flight behind either.
    let lone = tokio::time::timeout(
        Duration::from_millis(1),
        rig.tier
            .get_or_load("7", loader(&calls, Duration::from_secs(1), None)),
    );
    assert!(lone.await.is_err());
    assert!(rig.tier.core.lock_flights().is_empty());
}

#[tokio::test(start_paused = true)]
async fn invalid_ids_never_reach_the_loader_or_the_tiers() {
    let rig = rig();
    let calls = Arc::new(AtomicUsize::new(0));
    for id in ["", "a b", "x\n"] {
        let error = rig
            .tier
            .get_or_load(id, loader(&calls, Duration::ZERO, Some("x")))
            .await
            .unwrap_err();
        assert!(matches!(error, LoadError::InvalidId(_)));
        assert!(error.downcast_ref::<io::Error>().is_none());
        assert!(rig.tier.get(id).await.is_err());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(rig.l2.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn works_without_any_tier() {
    let tier: Tiered<u32> = Tiered::builder(KeyKind::RolePerms).build();
    let found = tier
        .get_or_load("1", || async { Ok::<_, io::Error>(Some(7)) })
        .await;
    assert_eq!(found.unwrap().as_deref(), Some(&7));
    tier.set("1", 8).await.unwrap();
    tier.delete("1").await.unwrap();
    assert_eq!(tier.stats().breaker, None);
    assert_eq!(tier.kind(), KeyKind::RolePerms);
    assert!(format!("{tier:?}").contains("Perms"));
    assert!(format!("{:?}", Tiered::<u32>::builder(KeyKind::User)).contains("User"));
}

#[test]
fn futures_are_send() {
    fn assert_send<F: Future + Send>(_: F) {}
    let tier: Tiered<String> = Tiered::builder(KeyKind::User).build();
    assert_send(tier.get_or_load("1", || async { Ok::<_, io::Error>(None) }));
    assert_send(tier.get("1"));
    assert_send(tier.set("1", String::new()));
    assert_send(tier.delete("1"));
    assert_send(tier.retry_pending());
    assert_send(tier.get_or_load_fetched("1", || async { Ok::<_, io::Error>(None) }));
    assert_send(tier.get_or_load_untrusted_fetched("1", || async { Ok::<_, io::Error>(None) }));
}

/// A loader whose error is itself a boxed error (as a `Reloader`'s is) inside a future that
/// must be `Send`: rustc checks it with the error's lifetimes erased, which the loader
/// bound must survive (see `load.rs`).
#[test]
fn futures_with_boxed_loader_errors_are_send() {
    fn assert_send<F: Future + Send>(_: F) {}
    let tier: Tiered<String> = Tiered::builder(KeyKind::User).build();
    let boxed = || async { Ok::<_, Box<dyn Error + Send + Sync>>(None) };
    assert_send(async move { tier.get_or_load("1", boxed).await });
}

/// Instance A's load reads the old value; instance B (same L2, no bus) invalidates
/// while A's loader is held; A's fill must not land in L2 or in A's L1.
#[tokio::test(start_paused = true)]
async fn a_fill_that_read_before_another_instances_invalidation_never_lands() {
    let shared = Arc::new(FlakyCache::default());
    let a = rig_with(shared.clone(), &Ttls::default());
    let b = rig_with(shared.clone(), &Ttls::default());
    let release = Arc::new(tokio::sync::Notify::new());
    let slow = tokio::spawn({
        let (tier, release) = (Arc::clone(&a.tier), Arc::clone(&release));
        async move {
            let load = || async move {
                release.notified().await;
                Ok::<_, io::Error>(Some(String::from("admin")))
            };
            tier.get_or_load("42", load).await
        }
    });
    while a.tier.stats().loads == 0 {
        tokio::task::yield_now().await;
    }
    b.tier.delete("42").await.unwrap();
    release.notify_one();
    assert_eq!(
        value(&slow.await.unwrap().unwrap()),
        Some("admin"),
        "served once"
    );
    assert_eq!(a.tier.stats().stale_fills, 1);
    assert!(shared.raw_get(&key("42")).is_some_and(|e| is_tombstone(&e)));
    let calls = Arc::new(AtomicUsize::new(0));
    assert_eq!(
        value(&a.load("42", &calls, Some("viewer")).await),
        Some("viewer")
    );
    assert_eq!(
        value(&b.load("42", &calls, Some("viewer")).await),
        Some("viewer")
    );
}

/// A fill that passed every check before an invalidation began, and whose L1 insert
/// lands only after the invalidation returned (the thread was preempted in between):
/// the very next read on this instance must not be served the value it read. The
/// insert is held on the filling thread, so the interleaving is exact, not hoped for.
#[tokio::test]
async fn a_fill_inserting_after_an_invalidation_returned_is_never_served() {
    let l1 = Arc::new(HeldL1::new("role-1"));
    let l2 = Arc::new(FlakyCache::default());
    let tier = Arc::new(
        Tiered::builder(KeyKind::RolePerms)
            .l1(l1.clone())
            .l2(guarded(l2.clone()))
            .build(),
    );
    let filler = std::thread::spawn({
        let tier = Arc::clone(&tier);
        move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(tier.get_or_load("role-1", || async {
                Ok::<_, io::Error>(Some(String::from("v4")))
            }))
        }
    });
    l1.wait_for_insert();
    tier.delete("role-1").await.unwrap();
    l1.let_insert();
    let calls = Arc::new(AtomicUsize::new(0));
    let next = tier
        .get_or_load("role-1", loader(&calls, Duration::ZERO, Some("v5")))
        .await
        .unwrap();
    l1.let_go();
    assert_eq!(
        value(&filler.join().unwrap().unwrap()),
        Some("v4"),
        "the filler's own caller began before the invalidation: v4 is its answer"
    );
    assert_eq!(
        value(&next),
        Some("v5"),
        "a read after the invalidation returned was served what a fill read before it"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// The same with a write-through (`set`) from the other instance.
#[tokio::test(start_paused = true)]
async fn a_fill_never_overwrites_a_newer_write_through() {
    let shared = Arc::new(FlakyCache::default());
    let a = rig_with(shared.clone(), &Ttls::default());
    let b = rig_with(shared, &Ttls::default());
    let calls = Arc::new(AtomicUsize::new(0));
    let slow = tokio::spawn({
        let tier = Arc::clone(&a.tier);
        let load = loader(&calls, Duration::from_secs(1), Some("old"));
        async move { tier.get_or_load("42", load).await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    b.tier.set("42", String::from("new")).await.unwrap();
    assert_eq!(value(&slow.await.unwrap().unwrap()), Some("old"));
    assert_eq!(value(&a.load("42", &calls, Some("x")).await), Some("new"));
    assert_eq!(a.tier.stats().stale_fills, 1);
}

#[tokio::test(start_paused = true)]
async fn a_hung_loader_times_out_every_waiter_and_frees_the_flight() {
    let rig = rig();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let tier = Arc::clone(&rig.tier);
            tokio::spawn(async move {
                let hung = || std::future::pending::<io::Result<Option<String>>>();
                tier.get_or_load("42", hung).await
            })
        })
        .collect();
    for task in tasks {
        let error = task.await.unwrap().unwrap_err();
        assert!(matches!(error, LoadError::Timeout(t) if t == DEFAULT_LOAD_TIMEOUT));
    }
    assert_eq!(rig.tier.stats().in_flight, 0);
    let calls = Arc::new(AtomicUsize::new(0));
    assert_eq!(
        value(&rig.load("42", &calls, Some("ada")).await),
        Some("ada")
    );
}

/// Many waiters aborted at once, on several threads: the last one out removes the
/// flight, whatever the interleaving of their drops.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aborted_waiters_never_leak_a_flight() {
    let rig = rig();
    for round in 0..50 {
        let id = format!("id-{round}");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (tier, id) = (Arc::clone(&rig.tier), id.clone());
                tokio::spawn(async move {
                    let hung = || std::future::pending::<io::Result<Option<String>>>();
                    tier.get_or_load(&id, hung).await
                })
            })
            .collect();
        while rig.tier.stats().coalesced < (round + 1) * 7 {
            tokio::task::yield_now().await;
        }
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            assert!(task.await.unwrap_err().is_cancelled());
        }
    }
    assert_eq!(rig.tier.stats().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn a_value_that_fails_validation_is_never_served() {
    let shared = Arc::new(FlakyCache::default());
    let writer = rig_with(shared.clone(), &Ttls::default());
    writer
        .tier
        .set("42", String::from("someone-else"))
        .await
        .unwrap();
    let reader: Tiered<String> = Tiered::builder(KeyKind::User)
        .l2(guarded(shared))
        .validate(|id, value: &String| value.as_str() == id)
        .build();
    assert_eq!(reader.get("42").await.unwrap(), None);
    assert_eq!(reader.stats().decode_failures, 1);
}

#[tokio::test(start_paused = true)]
async fn untrusted_ids_keep_their_absence_out_of_l2() {
    let rig = rig();
    let calls = Arc::new(AtomicUsize::new(0));
    for n in 0..100 {
        let load = loader(&calls, Duration::ZERO, None);
        let found = rig
            .tier
            .get_or_load_untrusted(&format!("made-up-{n}"), load)
            .await;
        assert_eq!(found.unwrap(), None);
    }
    assert_eq!(rig.l2.calls(), 100, "one read each, no write");
    let load = loader(&calls, Duration::ZERO, None);
    assert_eq!(
        rig.tier
            .get_or_load_untrusted("made-up-1", load)
            .await
            .unwrap(),
        None
    );
    assert_eq!(calls.load(Ordering::SeqCst), 100, "remembered in L1");
}

/// One request through two tiers on a hung L2 pays one timeout: the second tier's
/// read is skipped, before the breaker has opened.
#[tokio::test(start_paused = true)]
async fn one_request_pays_one_l2_timeout_across_tiers() {
    let l2 = Arc::new(FlakyCache::default());
    let guard = guarded(l2.clone());
    let tier = |kind| -> Tiered<String> { Tiered::builder(kind).l2(Arc::clone(&guard)).build() };
    let (users, roles) = (tier(KeyKind::User), tier(KeyKind::RolePerms));
    l2.set_mode(Mode::Hanging);
    let start = Instant::now();
    crate::breaker::with_l2_budget(async {
        let ada = || async { Ok::<_, io::Error>(Some(String::from("ada"))) };
        users.get_or_load("42", ada).await.unwrap();
        roles.get_or_load("42", ada).await.unwrap();
        users.delete("43").await.unwrap_err();
    })
    .await;
    assert_eq!(start.elapsed(), crate::breaker::DEFAULT_TIMEOUT);
    assert_eq!(guard.stats().timeouts, 1);
    assert_eq!(guard.stats().state, crate::BreakerState::Closed);
}

/// An L2 entry for `id` holding `value`, expiring `offset_ms` from now (negative: ago).
fn entry_expiring(id: &str, value: &str, offset_ms: i64) -> Bytes {
    let expires_at = unix_ms().saturating_add_signed(offset_ms);
    EnvelopeCodec::default()
        .encode(&key(id), &(expires_at, Some(value)))
        .unwrap()
}

fn failing() -> impl FnOnce() -> Pin<Box<dyn Future<Output = io::Result<Option<String>>> + Send>> {
    || Box::pin(async { Err(io::Error::other("repository down")) })
}

/// What the reloader of [`reloading_tier`] answers (`None`: it fails) and how often
/// it was called; each call waits for a permit of `gate`.
struct Reloads {
    answer: std::sync::Mutex<Option<&'static str>>,
    calls: AtomicUsize,
    gate: tokio::sync::Semaphore,
}

impl Default for Reloads {
    fn default() -> Self {
        Self {
            answer: std::sync::Mutex::default(),
            calls: AtomicUsize::new(0),
            gate: tokio::sync::Semaphore::new(0),
        }
    }
}

fn reloading_tier(
    l2: &Arc<FlakyCache>,
    l1: Option<Arc<RecordingL1<String>>>,
    reloads: &Arc<Reloads>,
    ttls: &Ttls,
) -> Tiered<String> {
    let reloads = Arc::clone(reloads);
    let builder = Tiered::builder(KeyKind::User)
        .ttls(ttls)
        .l2(guarded(l2.clone()))
        .reloader(move |_id| {
            let reloads = Arc::clone(&reloads);
            Box::pin(async move {
                reloads.calls.fetch_add(1, Ordering::SeqCst);
                reloads.gate.acquire().await?.forget();
                let answer = *reloads.answer.lock().unwrap();
                answer
                    .map(|value| Some(value.to_owned()))
                    .ok_or_else(|| io::Error::other("repository down").into())
            })
        });
    match l1 {
        Some(l1) => builder.l1(l1).build(),
        None => builder.build(),
    }
}

/// Lets spawned tasks run until `done` holds (bounded: the clock is paused).
async fn settle(mut done: impl FnMut() -> bool) {
    for _ in 0..1_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("background work did not settle");
}

fn raw_value(l2: &FlakyCache, id: &str) -> Option<String> {
    let bytes = l2.raw_get(&key(id))?;
    let (_, value): (u64, Option<String>) =
        EnvelopeCodec::default().decode(&key(id), &bytes).ok()?;
    value
}

#[tokio::test(start_paused = true)]
async fn a_failing_loader_serves_the_expired_value_within_its_grace() {
    let rig = rig();
    let entry = entry_expiring("42", "old", -1_000);
    rig.l2.raw_set(&key("42"), entry, Duration::from_secs(60));
    let found = rig.tier.get_or_load("42", failing()).await.unwrap();
    assert_eq!(value(&found), Some("old"));
    let stats = rig.tier.stats();
    assert_eq!((stats.stale_served, stats.load_errors), (1, 1));
    assert_eq!(rig.l1.ttls().last().map(|(_, ttl)| *ttl), Some(STALE_RETRY));
    // Kept in L1 briefly: the failing loader is not asked on every request.
    let calls = Arc::new(AtomicUsize::new(0));
    assert_eq!(
        value(&rig.load("42", &calls, Some("new")).await),
        Some("old")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // Once the loader answers again, its answer replaces the stale value.
    tokio::time::advance(STALE_RETRY).await;
    assert_eq!(
        value(&rig.load("42", &calls, Some("new")).await),
        Some("new")
    );
    assert_eq!(raw_value(&rig.l2, "42").as_deref(), Some("new"));
}

#[tokio::test(start_paused = true)]
async fn past_its_grace_invalidated_or_without_grace_a_failure_is_an_error() {
    let rig = rig();
    let long_ago = entry_expiring("1", "old", -301_000);
    rig.l2.raw_set(&key("1"), long_ago, Duration::from_secs(60));
    assert!(rig.tier.get_or_load("1", failing()).await.is_err());
    rig.l2.raw_set(
        &key("2"),
        entry_expiring("2", "old", -1_000),
        Duration::from_secs(60),
    );
    rig.tier.delete("2").await.unwrap();
    assert!(
        rig.tier.get_or_load("2", failing()).await.is_err(),
        "invalidated"
    );
    let no_grace = Ttls {
        stale_grace: Duration::ZERO,
        ..Ttls::default()
    };
    let off = rig_with(Arc::default(), &no_grace);
    off.l2.raw_set(
        &key("3"),
        entry_expiring("3", "old", -1_000),
        Duration::from_secs(60),
    );
    assert!(off.tier.get_or_load("3", failing()).await.is_err());
    assert_eq!(
        rig.tier.stats().stale_served + off.tier.stats().stale_served,
        0
    );
}

#[tokio::test(start_paused = true)]
async fn l2_keeps_values_for_their_grace_but_not_negative_entries() {
    for (grace, kept) in [(Duration::from_secs(300), true), (Duration::ZERO, false)] {
        let ttls = Ttls {
            stale_grace: grace,
            jitter: 0.0,
            ..Ttls::default()
        };
        let rig = rig_with(Arc::default(), &ttls);
        let calls = Arc::new(AtomicUsize::new(0));
        rig.load("ada", &calls, Some("ada")).await;
        rig.load("nobody", &calls, None).await;
        tokio::time::advance(ttls.user + Duration::from_secs(1)).await;
        assert_eq!(
            rig.l2.raw_get(&key("ada")).is_some(),
            kept,
            "grace {grace:?}"
        );
        assert!(rig.l2.raw_get(&key("nobody")).is_none());
        tokio::time::advance(grace).await;
        assert!(rig.l2.raw_get(&key("ada")).is_none());
    }
}

#[tokio::test(start_paused = true)]
async fn a_value_in_its_refresh_window_is_reloaded_once_in_the_background() {
    let l2 = Arc::new(FlakyCache::default());
    let reloads = Arc::new(Reloads::default());
    *reloads.answer.lock().unwrap() = Some("new");
    // No L1: every read reaches L2 and sees the value due for a refresh.
    let tier = reloading_tier(&l2, None, &reloads, &Ttls::default());
    let due = entry_expiring("42", "old", 10_000);
    l2.raw_set(&key("42"), due, Duration::from_secs(60));
    let callers = Arc::new(AtomicUsize::new(0));
    for _ in 0..100 {
        let load = loader(&callers, Duration::ZERO, Some("caller"));
        assert_eq!(
            value(&tier.get_or_load("42", load).await.unwrap()),
            Some("old")
        );
    }
    settle(|| reloads.calls.load(Ordering::SeqCst) == 1).await;
    assert_eq!(
        callers.load(Ordering::SeqCst),
        0,
        "no caller waited for a load"
    );
    assert_eq!(tier.stats().refreshes, 1, "one reload however many reads");
    reloads.gate.add_permits(1);
    settle(|| raw_value(&l2, "42").as_deref() == Some("new")).await;
    assert_eq!(value(&tier.get("42").await.unwrap()), Some("new"));
    assert_eq!(reloads.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn l1_entries_end_where_the_refresh_window_begins() {
    let ttls = Ttls {
        user: Duration::from_secs(20),
        jitter: 0.0,
        ..Ttls::default()
    };
    let l2 = Arc::new(FlakyCache::default());
    let l1 = Arc::new(RecordingL1::default());
    let reloads = Arc::new(Reloads::default());
    let tier = Tiered::builder(KeyKind::User)
        .ttls(&ttls)
        .l1(l1.clone())
        .l2(guarded(l2.clone()))
        .build();
    let calls = Arc::new(AtomicUsize::new(0));
    tier.get_or_load("plain", loader(&calls, Duration::ZERO, Some("a")))
        .await
        .unwrap();
    let refreshing = reloading_tier(&l2, Some(l1.clone()), &reloads, &ttls);
    refreshing
        .get_or_load("due", loader(&calls, Duration::ZERO, Some("b")))
        .await
        .unwrap();
    let recorded = l1.ttls();
    assert_eq!(
        recorded[0],
        (String::from("plain"), Duration::from_secs(20))
    );
    assert_eq!(recorded[1], (String::from("due"), Duration::from_secs(18)));
}

#[tokio::test(start_paused = true)]
async fn a_refresh_that_races_an_invalidation_never_lands() {
    let l2 = Arc::new(FlakyCache::default());
    let reloads = Arc::new(Reloads::default());
    *reloads.answer.lock().unwrap() = Some("new");
    let tier = reloading_tier(&l2, None, &reloads, &Ttls::default());
    l2.raw_set(
        &key("42"),
        entry_expiring("42", "old", 10_000),
        Duration::from_secs(60),
    );
    assert_eq!(value(&tier.get("42").await.unwrap()), Some("old"));
    settle(|| reloads.calls.load(Ordering::SeqCst) == 1).await;
    tier.delete("42").await.unwrap();
    reloads.gate.add_permits(1);
    settle(|| tier.stats().stale_fills == 1).await;
    let left = l2.raw_get(&key("42")).unwrap();
    assert!(
        is_tombstone(&left),
        "the reload read before the invalidation"
    );
}

#[tokio::test(start_paused = true)]
async fn after_a_failure_expired_values_are_served_at_once_and_retried_behind() {
    let l2 = Arc::new(FlakyCache::default());
    let l1 = Arc::new(RecordingL1::default());
    let reloads = Arc::new(Reloads::default());
    let tier = reloading_tier(&l2, Some(l1), &reloads, &Ttls::default());
    l2.raw_set(
        &key("42"),
        entry_expiring("42", "old", -1_000),
        Duration::from_secs(60),
    );
    let first = tier.get_or_load("42", failing()).await.unwrap();
    assert_eq!(value(&first), Some("old"), "served stale after the failure");
    tokio::time::advance(STALE_RETRY).await;
    // The loader failed moments ago: nobody waits for it again, one reload retries.
    let callers = Arc::new(AtomicUsize::new(0));
    let load = loader(&callers, Duration::ZERO, Some("caller"));
    assert_eq!(
        value(&tier.get_or_load("42", load).await.unwrap()),
        Some("old")
    );
    assert_eq!(callers.load(Ordering::SeqCst), 0);
    settle(|| reloads.calls.load(Ordering::SeqCst) == 1).await;
    *reloads.answer.lock().unwrap() = Some("new");
    reloads.gate.add_permits(1);
    settle(|| raw_value(&l2, "42").as_deref() == Some("new")).await;
    let stats = tier.stats();
    assert_eq!((stats.stale_served, stats.refreshes), (2, 1));
    assert!(
        !tier.core.failures.recent("42"),
        "a successful reload ends the failure"
    );
}

/// A shared tier that serves reads but refuses writes on command, as Redis does under
/// `noeviction` at its memory limit, on `MISCONF`, as a `READONLY` replica or for an
/// ACL without `@write`; and that can hold the next conditional fill before it lands.
#[derive(Debug, Default)]
struct WriteRefusing {
    inner: FlakyCache,
    refusing: std::sync::atomic::AtomicBool,
    hold_fill: std::sync::atomic::AtomicBool,
    fill_reached: tokio::sync::Notify,
    fill_released: tokio::sync::Notify,
}

impl WriteRefusing {
    fn refuse_writes(&self, refusing: bool) {
        self.refusing.store(refusing, Ordering::SeqCst);
    }

    fn gate(&self) -> crate::Result<()> {
        if self.refusing.load(Ordering::SeqCst) {
            return Err(CacheError::unavailable(
                "OOM command not allowed when used memory > 'maxmemory'",
            ));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Cache for WriteRefusing {
    async fn get(&self, key: &Key) -> crate::Result<Option<Bytes>> {
        self.inner.get(key).await
    }

    async fn set(&self, key: &Key, value: Bytes, ttl: Duration) -> crate::Result<()> {
        self.gate()?;
        self.inner.set(key, value, ttl).await
    }

    async fn delete(&self, key: &Key) -> crate::Result<bool> {
        self.gate()?;
        self.inner.delete(key).await
    }

    async fn set_if_unchanged(
        &self,
        key: &Key,
        expected: Option<Bytes>,
        value: Bytes,
        ttl: Duration,
    ) -> crate::Result<bool> {
        if self.hold_fill.swap(false, Ordering::SeqCst) {
            self.fill_reached.notify_one();
            self.fill_released.notified().await;
        }
        self.gate()?;
        self.inner.set_if_unchanged(key, expected, value, ttl).await
    }
}

/// A bus that records what it carried, and refuses on command.
#[derive(Debug, Default)]
struct RecordingBus {
    carried: std::sync::Mutex<Vec<String>>,
    down: std::sync::atomic::AtomicBool,
}

impl RecordingBus {
    fn carried(&self) -> Vec<String> {
        self.carried.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl InvalidationPublisher for RecordingBus {
    async fn publish(&self, key: &Key) -> crate::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(CacheError::unavailable("bus down"));
        }
        self.carried.lock().unwrap().push(key.as_str().to_owned());
        Ok(())
    }
}

/// One instance on a shared tier that may refuse writes, with a recording bus.
struct RefusingRig {
    tier: Arc<Tiered<String>>,
    l2: Arc<WriteRefusing>,
    bus: Arc<RecordingBus>,
}

fn refusing_rig() -> RefusingRig {
    let (l2, bus) = (Arc::new(WriteRefusing::default()), Arc::default());
    let tier = Tiered::builder(KeyKind::User)
        .l1(Arc::new(RecordingL1::default()))
        .l2(guarded(l2.clone()))
        .publisher(Arc::clone(&bus) as Arc<dyn InvalidationPublisher>)
        .build();
    RefusingRig {
        tier: Arc::new(tier),
        l2,
        bus,
    }
}

const KEY_42: &str = "authcache:v1:user:42";

#[tokio::test(start_paused = true)]
async fn a_failed_invalidation_is_in_force_here_at_once_and_retried() {
    let rig = refusing_rig();
    let calls = Arc::new(AtomicUsize::new(0));
    let load = |answer| loader(&calls, Duration::ZERO, Some(answer));
    rig.tier.get_or_load("42", load("old")).await.unwrap();
    rig.l2.refuse_writes(true);
    // As the facade calls it: one L2 budget for the request, spent by the refusal.
    let refused = with_l2_budget(rig.tier.delete("42")).await.unwrap_err();
    assert!(refused.is_unavailable());
    assert!(rig.bus.carried().is_empty(), "the publish was skipped");
    assert_eq!(rig.tier.stats().pending_invalidations, 1);
    assert_eq!(raw_value(&rig.l2.inner, "42").as_deref(), Some("old"));
    // The next read here must not read the old entry back from L2.
    let next = rig.tier.get_or_load("42", load("new")).await.unwrap();
    assert_eq!(value(&next), Some("new"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    rig.tier.evict_local("42");
    assert_eq!(
        rig.tier.get("42").await.unwrap(),
        None,
        "L2 is not read while the invalidation is pending"
    );
    assert_eq!(rig.tier.retry_pending().await, 1, "still refused");
    rig.l2.refuse_writes(false);
    assert_eq!(rig.tier.retry_pending().await, 0);
    assert!(
        rig.l2
            .inner
            .raw_get(&key("42"))
            .is_some_and(|e| is_tombstone(&e))
    );
    assert_eq!(rig.bus.carried(), [KEY_42]);
    assert_eq!(rig.tier.stats().pending_invalidations, 0);
    // Landed: L2 is read and filled again.
    let after = rig.tier.get_or_load("42", load("newer")).await.unwrap();
    assert_eq!(value(&after), Some("newer"));
    assert_eq!(raw_value(&rig.l2.inner, "42").as_deref(), Some("newer"));
}

#[tokio::test(start_paused = true)]
async fn a_failed_write_through_is_served_here_and_its_l2_entry_is_never_read_back() {
    let rig = refusing_rig();
    let calls = Arc::new(AtomicUsize::new(0));
    let load = |answer| loader(&calls, Duration::ZERO, Some(answer));
    rig.tier.get_or_load("42", load("old")).await.unwrap();
    rig.l2.refuse_writes(true);
    let write = rig.tier.set("42", String::from("new"));
    assert!(with_l2_budget(write).await.is_err());
    let next = rig
        .tier
        .get_or_load("42", load("repository"))
        .await
        .unwrap();
    assert_eq!(value(&next), Some("new"), "the write-through, from L1");
    tokio::time::advance(Ttls::default().l1_cap).await;
    let later = rig
        .tier
        .get_or_load("42", load("repository"))
        .await
        .unwrap();
    assert_eq!(value(&later), Some("repository"), "not the old L2 entry");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    rig.l2.refuse_writes(false);
    assert_eq!(rig.tier.retry_pending().await, 0);
    assert!(
        rig.l2
            .inner
            .raw_get(&key("42"))
            .is_some_and(|e| is_tombstone(&e))
    );
    assert_eq!(rig.bus.carried(), [KEY_42]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_announcement_alone_is_retried_without_barring_l2() {
    let rig = refusing_rig();
    rig.bus.down.store(true, Ordering::SeqCst);
    rig.tier.delete("42").await.unwrap();
    assert_eq!(rig.tier.stats().pending_invalidations, 1);
    // The tombstone landed, so L2 is still read here (another instance's fill).
    rig.l2.inner.raw_set(
        &key("42"),
        entry_expiring("42", "v2", 60_000),
        TOMBSTONE_TTL,
    );
    assert_eq!(value(&rig.tier.get("42").await.unwrap()), Some("v2"));
    assert_eq!(rig.tier.retry_pending().await, 1, "the bus is still down");
    rig.bus.down.store(false, Ordering::SeqCst);
    assert_eq!(rig.tier.retry_pending().await, 0);
    assert_eq!(rig.bus.carried(), [KEY_42]);
    assert_eq!(
        raw_value(&rig.l2.inner, "42").as_deref(),
        Some("v2"),
        "only the announcement was owed"
    );
}

/// A fill that passed its version check, then an invalidation whose tombstone L2
/// refused, then the fill's conditional write landing (L2 took writes again): L2 now
/// holds a value read before the invalidation, and no read here may serve it.
#[tokio::test(start_paused = true)]
async fn a_fill_racing_a_failed_invalidation_never_lands() {
    let rig = refusing_rig();
    rig.l2.hold_fill.store(true, Ordering::SeqCst);
    let calls = Arc::new(AtomicUsize::new(0));
    let slow = tokio::spawn({
        let tier = Arc::clone(&rig.tier);
        let load = loader(&calls, Duration::ZERO, Some("old"));
        async move { tier.get_or_load("42", load).await }
    });
    rig.l2.fill_reached.notified().await;
    rig.l2.refuse_writes(true);
    assert!(rig.tier.delete("42").await.is_err());
    rig.l2.refuse_writes(false);
    rig.l2.fill_released.notify_one();
    assert_eq!(value(&slow.await.unwrap().unwrap()), Some("old"));
    assert_eq!(raw_value(&rig.l2.inner, "42").as_deref(), Some("old"));
    let next = rig
        .tier
        .get_or_load("42", loader(&calls, Duration::ZERO, Some("new")))
        .await
        .unwrap();
    assert_eq!(value(&next), Some("new"));
    assert_eq!(rig.tier.retry_pending().await, 0);
    assert!(
        rig.l2
            .inner
            .raw_get(&key("42"))
            .is_some_and(|e| is_tombstone(&e)),
        "the retry's tombstone replaces the fill"
    );
}

#[tokio::test(start_paused = true)]
async fn one_failing_id_never_makes_another_id_be_served_stale() {
    let l2 = Arc::new(FlakyCache::default());
    let reloads = Arc::new(Reloads::default());
    let l1 = Some(Arc::new(RecordingL1::default()));
    let tier = reloading_tier(&l2, l1, &reloads, &Ttls::default());
    for id in ["a", "b"] {
        let expired = entry_expiring(id, &format!("old-{id}"), -1_000);
        l2.raw_set(&key(id), expired, Duration::from_secs(60));
    }
    let a = tier.get_or_load("a", failing()).await.unwrap();
    assert_eq!(value(&a), Some("old-a"), "a's loader failed: stale");
    let calls = Arc::new(AtomicUsize::new(0));
    let load = loader(&calls, Duration::ZERO, Some("new-b"));
    let b = tier.get_or_load("b", load).await.unwrap();
    assert_eq!(value(&b), Some("new-b"), "b's loader answers: fresh");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(tier.stats().stale_served, 1);
    assert!(tier.core.failures.recent("a") && !tier.core.failures.recent("b"));
}

#[tokio::test(start_paused = true)]
async fn failure_memory_is_bounded_and_forgets_the_oldest_first() {
    let failures = Failures::default();
    failures.record("first");
    tokio::time::advance(Duration::from_millis(1)).await;
    for n in 1..FAILURE_MEMORY_CAP {
        failures.record(&n.to_string());
    }
    tokio::time::advance(Duration::from_millis(1)).await;
    failures.record("extra");
    assert_eq!(failures.lock().at.len(), FAILURE_MEMORY_CAP);
    assert!(!failures.recent("first") && failures.recent("extra"));
    tokio::time::advance(FAILURE_MEMORY).await;
    failures.record("later");
    assert_eq!(failures.lock().at.len(), 1, "expired failures go first");
    assert!(failures.forget("later") && !failures.forget("later"));
    assert_eq!(failures.count.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn fetched_values_say_until_when_they_may_be_served() {
    let ttls = Ttls {
        jitter: 0.0,
        ..Ttls::default()
    };
    let rig = rig_with(Arc::default(), &ttls);
    let calls = Arc::new(AtomicUsize::new(0));
    let load = |answer| loader(&calls, Duration::ZERO, Some(answer));
    // A load: the L1 TTL it was kept with.
    let loaded_at = Instant::now();
    let fresh = rig
        .tier
        .get_or_load_fetched("a", load("ada"))
        .await
        .unwrap();
    assert_eq!(fresh.until, loaded_at + ttls.l1_cap);
    // An L1 hit: the deadline its entry was inserted with.
    rig.tier
        .get_or_load_with_ttl("t", || async {
            Ok::<_, io::Error>(Some((String::from("x"), Duration::from_secs(5))))
        })
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(2)).await;
    let hit = rig.tier.get_or_load_fetched("t", load("-")).await.unwrap();
    assert_eq!(hit.until, loaded_at + Duration::from_secs(5));
    assert_eq!(hit.remaining(), Duration::from_secs(3));
    let hit = rig.tier.get_or_load_fetched("a", load("-")).await.unwrap();
    assert_eq!(hit.until, fresh.until);
    assert_eq!(rig.tier.stats().l1_hits, 2);
    // An L2 hit: at most its soft expiry.
    rig.l2.raw_set(
        &key("l2"),
        entry_expiring("l2", "y", 8_000),
        Duration::from_secs(60),
    );
    let from_l2 = rig.tier.get_or_load_fetched("l2", load("-")).await.unwrap();
    assert_eq!(value(&from_l2.value), Some("y"));
    assert!(from_l2.until <= Instant::now() + Duration::from_secs(8));
    // A stale value: STALE_RETRY at most.
    rig.l2.raw_set(
        &key("s"),
        entry_expiring("s", "old", -1_000),
        Duration::from_secs(60),
    );
    let stale = rig.tier.get_or_load_fetched("s", failing()).await.unwrap();
    assert_eq!(value(&stale.value), Some("old"));
    assert!(stale.until <= Instant::now() + STALE_RETRY);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_load_that_raced_a_change_is_served_once_and_never_kept() {
    let rig = rig();
    let calls = Arc::new(AtomicUsize::new(0));
    let slow = tokio::spawn({
        let tier = Arc::clone(&rig.tier);
        let load = loader(&calls, Duration::from_secs(1), Some("old"));
        async move { tier.get_or_load_fetched("42", load).await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    rig.tier.delete("42").await.unwrap();
    let raced = slow.await.unwrap().unwrap();
    assert_eq!(value(&raced.value), Some("old"));
    assert_eq!(raced.remaining(), Duration::ZERO);
}
