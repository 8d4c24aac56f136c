//! Unit tests of the keyspace epoch across instances sharing an in-process L2: raises,
//! adoption on a bus hint and at build, write-back of a lost or lower value, memory mode.

use std::sync::Arc;
use std::time::Duration;

use authcache_core::{BusEvent, Cache, EnvelopeCodec, Keyspace, SigningKey};
use authcache_memory::MemoryCache;
use authcache_users::{User, UserRepository};

use crate::test_support::{eventually, eventually_async};
use crate::{AuthError, AuthService, JwtVerifier};

const KEY: &[u8] = b"epoch-test-signing-key-012345678";

/// Two instances (or more) sharing one in-process L2 and no bus: each hears of a raise
/// only when its epoch is re-checked.
struct Shared {
    repository: Arc<dyn UserRepository>,
    l2: Arc<MemoryCache>,
}

impl Shared {
    fn new() -> Self {
        Self {
            repository: Arc::new(crate::test_support::repository()),
            l2: Arc::new(MemoryCache::new(1 << 20)),
        }
    }

    async fn instance(&self) -> AuthService {
        AuthService::builder()
            .verifier(JwtVerifier::test_hs256())
            .shared_repository(Arc::clone(&self.repository))
            .l2(Arc::clone(&self.l2) as Arc<dyn Cache>)
            .signing_key(KEY)
            .build()
            .await
            .unwrap()
    }

    /// What the shared cache holds as the epoch: `None` when absent or unreadable.
    async fn shared_epoch(&self) -> Option<u64> {
        let key = Keyspace::default().epoch_key();
        let bytes = self.l2.get(&key).await.unwrap()?;
        codec().decode::<u64>(&key, &bytes).ok()
    }

    async fn put_shared_epoch(&self, bytes: bytes::Bytes) {
        let key = Keyspace::default().epoch_key();
        self.l2
            .set(&key, bytes, Duration::from_secs(60))
            .await
            .unwrap();
    }
}

fn codec() -> EnvelopeCodec {
    EnvelopeCodec::new().with_signing_key(SigningKey::new(KEY).unwrap())
}

/// Hands the instance a bus event, as its subscriber would.
fn bus_event(auth: &AuthService, event: &BusEvent) {
    auth.hear(event);
}

async fn ada_cached_and_then_deleted(shared: &Shared, instances: &[&AuthService]) {
    for auth in instances {
        assert_eq!(auth.user("ada").await.unwrap().id, "ada");
    }
    assert!(shared.repository.delete("ada").await.unwrap());
    for auth in instances {
        assert_eq!(
            auth.user("ada").await.unwrap().id,
            "ada",
            "cached until told"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raise_clears_the_raiser_at_once_and_the_others_on_their_next_check() {
    let shared = Shared::new();
    let (one, two) = (shared.instance().await, shared.instance().await);
    ada_cached_and_then_deleted(&shared, &[&one, &two]).await;

    assert_eq!(one.clear_everywhere().await.unwrap(), 1);
    assert_eq!(one.stats().keyspace_epoch, 1);
    assert_eq!(shared.shared_epoch().await, Some(1));
    assert_eq!(one.user("ada").await.unwrap_err(), AuthError::UnknownUser);

    // No bus here: the other instance learns at its next re-check, which a resubscription
    // (like the epoch key announced) brings forward.
    assert_eq!(two.stats().keyspace_epoch, 0);
    bus_event(&two, &BusEvent::Resubscribed);
    eventually("the other instance to adopt the raise", || {
        two.stats().keyspace_epoch == 1
    })
    .await;
    assert_eq!(two.user("ada").await.unwrap_err(), AuthError::UnknownUser);

    // Raises stack: each one is above every epoch anyone holds.
    assert_eq!(two.clear_everywhere().await.unwrap(), 2);
    bus_event(
        &one,
        &BusEvent::Invalidated(Keyspace::default().epoch_key().to_string()),
    );
    eventually("the announcement to be followed", || {
        one.stats().keyspace_epoch == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_built_after_a_raise_never_reads_what_was_cached_before() {
    let shared = Shared::new();
    let old = shared.instance().await;
    ada_cached_and_then_deleted(&shared, &[&old]).await;
    // Another instance, built before the raise, would still read ada from L2.
    assert_eq!(shared.instance().await.user("ada").await.unwrap().id, "ada");

    old.clear_everywhere().await.unwrap();
    let late = shared.instance().await;
    assert_eq!(late.stats().keyspace_epoch, 1, "read at build");
    assert_eq!(late.user("ada").await.unwrap_err(), AuthError::UnknownUser);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_or_lower_shared_epoch_is_written_back_never_adopted() {
    let shared = Shared::new();
    let auth = shared.instance().await;
    auth.clear_everywhere().await.unwrap();
    auth.clear_everywhere().await.unwrap();
    assert_eq!(shared.shared_epoch().await, Some(2));

    // Lower, but genuine (signed): written back over.
    let key = Keyspace::default().epoch_key();
    shared
        .put_shared_epoch(codec().encode(&key, &1_u64).unwrap())
        .await;
    bus_event(&auth, &BusEvent::Resubscribed);
    let written_back = || async { shared.shared_epoch().await == Some(2) };
    eventually_async("the epoch to be written back", written_back).await;
    assert_eq!(auth.stats().keyspace_epoch, 2, "never lowered");

    // Gone (Redis restarted empty, the key evicted): written back too.
    shared.l2.delete(&key).await.unwrap();
    bus_event(&auth, &BusEvent::Resubscribed);
    eventually_async("the epoch to be written back", written_back).await;
    let late = shared.instance().await;
    assert_eq!(late.stats().keyspace_epoch, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_shared_epoch_is_not_adopted_but_a_raise_goes_over_it() {
    let shared = Shared::new();
    shared
        .put_shared_epoch(bytes::Bytes::from_static(b"\xffnot an envelope"))
        .await;
    let auth = shared.instance().await;
    assert_eq!(auth.stats().keyspace_epoch, 0);
    assert_eq!(auth.clear_everywhere().await.unwrap(), 1);
    assert_eq!(shared.shared_epoch().await, Some(1));
}

/// Memory mode: one instance, the in-process L2 orphaned with its L1; marks stay.
#[tokio::test]
async fn in_memory_mode_a_clear_drops_everything_but_the_marks() {
    let repository: Arc<dyn UserRepository> = Arc::new(crate::test_support::repository());
    let auth = AuthService::builder()
        .verifier(JwtVerifier::test_hs256())
        .shared_repository(Arc::clone(&repository))
        .build()
        .await
        .unwrap();
    let issuer = crate::TokenIssuer::test_hs256();
    let bob = format!(
        "Bearer {}",
        issuer.issue("bob", Duration::from_secs(600)).unwrap()
    );
    auth.authenticate(&bob).await.unwrap();
    auth.logout(&bob).await.unwrap();
    assert_eq!(auth.user("ada").await.unwrap().id, "ada");
    let demoted = User::new("ada", "ada@example.com", "Ada").with_roles(["viewer"]);
    repository.upsert(&demoted).await.unwrap();
    assert_eq!(*auth.roles("ada").await.unwrap(), ["admin"], "cached");

    assert_eq!(auth.clear_everywhere().await.unwrap(), 1);
    assert_eq!(*auth.roles("ada").await.unwrap(), ["viewer"]);
    assert_eq!(
        auth.authenticate(&bob).await.unwrap_err(),
        AuthError::Revoked
    );
}
