//! Unit tests of the revocation marks and the validation cache.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;
use authcache_core::{BreakerConfig, SigningKey};
use authcache_memory::MemoryCache;
use bytes::Bytes;
use tokio::sync::oneshot;

use super::*;

/// What the next compare-and-set write of a [`ScriptedWrites`] does.
#[derive(Debug)]
enum Write {
    /// Says it has begun, waits to be let go, then writes.
    Hold {
        begun: oneshot::Sender<()>,
        go: oneshot::Receiver<()>,
    },
    /// Fails as a Redis that went away would.
    Fail,
}

/// An in-process L2 whose compare-and-set writes follow a script, one step per write
/// (writes beyond it go through). Hand-written, as a `MockCache` answer cannot wait.
#[derive(Debug)]
struct ScriptedWrites {
    inner: MemoryCache,
    script: Mutex<VecDeque<Write>>,
}

impl ScriptedWrites {
    fn new(script: impl IntoIterator<Item = Write>) -> Self {
        Self {
            inner: MemoryCache::default(),
            script: Mutex::new(script.into_iter().collect()),
        }
    }
}

#[async_trait]
impl Cache for ScriptedWrites {
    async fn get(&self, key: &Key) -> authcache_core::Result<Option<Bytes>> {
        self.inner.get(key).await
    }

    async fn set(&self, key: &Key, value: Bytes, ttl: Duration) -> authcache_core::Result<()> {
        self.inner.set(key, value, ttl).await
    }

    async fn delete(&self, key: &Key) -> authcache_core::Result<bool> {
        self.inner.delete(key).await
    }

    async fn set_if_unchanged(
        &self,
        key: &Key,
        expected: Option<Bytes>,
        value: Bytes,
        ttl: Duration,
    ) -> authcache_core::Result<bool> {
        let step = self.script.lock().unwrap().pop_front();
        match step {
            Some(Write::Hold { begun, go }) => {
                begun.send(()).unwrap();
                go.await.unwrap();
            }
            Some(Write::Fail) => return Err(CacheError::unavailable("scripted failure")),
            None => {}
        }
        self.inner.set_if_unchanged(key, expected, value, ttl).await
    }
}

/// A breaker whose timeout never fires while a test holds a write.
fn patient(cache: Arc<dyn Cache>) -> Arc<GuardedCache> {
    let config = BreakerConfig {
        timeout: Duration::from_secs(3_600),
        ..BreakerConfig::default()
    };
    Arc::new(GuardedCache::new(cache, config))
}

fn marks(l2: &Arc<GuardedCache>) -> Marks {
    let codec = EnvelopeCodec::new().with_signing_key(SigningKey::new([3; 32]).unwrap());
    let ttl = Duration::from_secs(30);
    Marks::new(
        KeyKind::Cutoff,
        &Keyspace::default(),
        &codec,
        l2,
        None,
        100,
        ttl,
    )
}

/// Two instances' `logout_all` of one user, the earlier cutoff written last: the shared
/// cutoff stays the later one, and a third instance reads it.
#[tokio::test]
async fn a_smaller_mark_written_last_never_lowers_a_larger_one() {
    let shared: Arc<dyn Cache> = Arc::new(MemoryCache::default());
    let l2 = Arc::new(GuardedCache::new(shared, BreakerConfig::default()));
    let (first, second, reader) = (marks(&l2), marks(&l2), marks(&l2));
    let ttl = Duration::from_secs(60);
    first.put("ada", 200, ttl).await.unwrap();
    second.put("ada", 100, ttl).await.unwrap();
    assert_eq!(reader.lookup("ada").await, Lookup::Mark(200));
    // The writer of the smaller mark enforces the larger shared one once its memo goes:
    // its own sticky mark never shadows a later cutoff.
    second.clear_memo();
    assert_eq!(second.lookup("ada").await, Lookup::Mark(200));
    first.put("ada", 300, ttl).await.unwrap();
    reader.clear_memo();
    assert_eq!(reader.lookup("ada").await, Lookup::Mark(300));
}

/// Issue item 5. Two cutoffs of one user: the earlier put's write is held in flight
/// while the later, larger one is remembered and its write fails; then the earlier
/// write lands. It must not settle the larger cutoff, which L2 never got: that stays
/// pending, and the next retry writes it.
#[tokio::test]
async fn an_earlier_write_landing_late_never_settles_a_later_failed_one() {
    let (begun_tx, begun) = oneshot::channel();
    let (go, go_rx) = oneshot::channel();
    let held = Write::Hold {
        begun: begun_tx,
        go: go_rx,
    };
    let l2 = patient(Arc::new(ScriptedWrites::new([held, Write::Fail])));
    let writer = Arc::new(marks(&l2));
    let ttl = Duration::from_secs(60);
    let earlier = tokio::spawn({
        let writer = Arc::clone(&writer);
        async move { writer.put("ada", 100, ttl).await }
    });
    begun.await.unwrap(); // 100 is remembered, its write in flight.
    assert!(writer.put("ada", 200, ttl).await.is_err());
    go.send(()).unwrap();
    earlier.await.unwrap().unwrap(); // 100 is in L2.
    assert_eq!(writer.pending(), 1, "the cutoff 200 is not in L2 yet");
    assert_eq!(marks(&l2).lookup("ada").await, Lookup::Mark(100));
    writer.retry_pending().await;
    assert_eq!(writer.pending(), 0);
    assert_eq!(marks(&l2).lookup("ada").await, Lookup::Mark(200));
}
