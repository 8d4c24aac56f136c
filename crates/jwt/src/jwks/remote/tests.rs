//! Unit tests of the refresh protocol against a scripted key source: single flight, the rate
//! limit on unknown `kid`s, failures, the periodic task. Time is tokio's paused clock, so
//! intervals are exact and nothing here depends on the machine's speed.

use std::sync::Mutex as StdMutex;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::*;
use crate::jwks::RemoteJwks;
use crate::{JwtVerifier, TokenIssuer, test_keys};

const HOUR: Duration = Duration::from_secs(3600);

/// A key source whose answer, and whether it answers at once, the test decides.
struct Script {
    answer: StdMutex<std::result::Result<Vec<u8>, String>>,
    calls: AtomicU64,
    /// While set, each fetch waits for a permit of `gate`: a fetch held in flight.
    hold: AtomicBool,
    gate: Semaphore,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            answer: StdMutex::new(Err("nothing served yet".into())),
            calls: AtomicU64::new(0),
            hold: AtomicBool::new(false),
            gate: Semaphore::new(0),
        }
    }
}

impl Script {
    fn serving(kids: &[&str]) -> Arc<Self> {
        let script = Arc::new(Self::default());
        script.serve(kids);
        script
    }

    /// Serves the public test keys named by `kids`.
    fn serve(&self, kids: &[&str]) {
        let mut set = test_keys::jwks().unwrap();
        set.keys
            .retain(|k| kids.contains(&k.common.key_id.as_deref().unwrap()));
        *self.answer.lock().unwrap() = Ok(serde_json::to_vec(&set).unwrap());
    }

    fn fail(&self, reason: &str) {
        *self.answer.lock().unwrap() = Err(reason.to_owned());
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

struct Scripted(Arc<Script>);

impl KeySource for Scripted {
    fn fetch(&self) -> Fetched<'_> {
        Box::pin(async move {
            self.0.calls.fetch_add(1, Ordering::SeqCst);
            if self.0.hold.load(Ordering::SeqCst) {
                self.0.gate.acquire().await.unwrap().forget();
            }
            self.0
                .answer
                .lock()
                .unwrap()
                .clone()
                .map_err(TokenError::KeySetUnavailable)
        })
    }

    fn location(&self) -> &str {
        "script"
    }
}

async fn verifier(script: &Arc<Script>, refresh: Duration, min_refresh: Duration) -> JwtVerifier {
    let intervals = Intervals {
        refresh,
        min_refresh,
    };
    RemoteJwks::build_with(Box::new(Scripted(Arc::clone(script))), intervals)
        .await
        .unwrap()
}

fn token(kid: &str) -> String {
    let issuer = match kid {
        test_keys::RSA_B_KID => TokenIssuer::test_rs256_other(),
        test_keys::EC_P256_KID => TokenIssuer::test_es256(),
        _ => TokenIssuer::test_rs256(),
    };
    issuer
        .kid(kid)
        .issue("user-1", Duration::from_secs(600))
        .unwrap()
}

/// A token with a `kid` no key set holds (signed by key A; the kid is what matters).
fn random_kid_token(i: usize) -> String {
    token(&format!("random-{i}"))
}

fn stats(verifier: &JwtVerifier) -> JwksStats {
    verifier.jwks_stats().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_rotated_in_kid_is_accepted_after_exactly_one_fetch() {
    let script = Script::serving(&[test_keys::RSA_A_KID]);
    let verifier = verifier(&script, HOUR, Duration::from_secs(30)).await;
    let rotated = token(test_keys::RSA_B_KID);
    assert!(matches!(
        verifier.verify(&rotated),
        Err(TokenError::UnknownKeyId(_))
    ));

    script.serve(&[test_keys::RSA_A_KID, test_keys::RSA_B_KID]);
    assert_eq!(verifier.verify_async(&rotated).await.unwrap().sub, "user-1");
    assert_eq!(verifier.verify_async(&rotated).await.unwrap().sub, "user-1");
    assert!(
        verifier.verify(&rotated).is_ok(),
        "the sync path sees the new set"
    );

    let s = stats(&verifier);
    assert_eq!((s.fetches, s.unknown_kid_fetches, s.keys), (2, 1, 2));
    assert_eq!((s.fetch_failures, s.unknown_kid_rejections), (0, 0));
    assert_eq!(script.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn random_kids_cause_one_fetch_per_min_interval_however_many() {
    let script = Script::serving(&[test_keys::RSA_A_KID]);
    let min = Duration::from_secs(30);
    let verifier = verifier(&script, HOUR, min).await;
    let tokens: Vec<String> = (0..300).map(random_kid_token).collect();

    for round in 1..=3_u64 {
        for token in &tokens {
            assert!(matches!(
                verifier.verify_async(token).await,
                Err(TokenError::UnknownKeyId(_))
            ));
        }
        assert_eq!(stats(&verifier).unknown_kid_fetches, round, "round {round}");
        // Just short of the interval: still no fetch.
        tokio::time::advance(min - Duration::from_millis(1)).await;
        assert!(verifier.verify_async(&tokens[0]).await.is_err());
        assert_eq!(stats(&verifier).unknown_kid_fetches, round);
        tokio::time::advance(Duration::from_millis(1)).await;
    }
    let s = stats(&verifier);
    assert_eq!(s.fetches, 1 + 3);
    assert_eq!(s.unknown_kid_rejections, 3 * 301);
    assert_eq!(script.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn callers_join_the_fetch_in_flight_and_readers_never_wait_for_it() {
    let script = Script::serving(&[test_keys::RSA_A_KID]);
    let verifier = verifier(&script, HOUR, HOUR).await;
    script.serve(&[test_keys::RSA_A_KID, test_keys::RSA_B_KID]);
    script.hold.store(true, Ordering::SeqCst);

    let mut tasks = JoinSet::new();
    for i in 0..100 {
        let verifier = verifier.clone();
        let token = if i % 2 == 0 {
            token(test_keys::RSA_B_KID)
        } else {
            random_kid_token(i)
        };
        tasks.spawn(async move { (i, verifier.verify_async(&token).await) });
    }
    // Bounded wait until the one fetch is in flight (held at the gate).
    for _ in 0..1000 {
        if script.calls() == 2 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(script.calls(), 2, "one fetch should be in flight");
    // While it is held: the sync path answers from the current set without waiting.
    assert!(verifier.verify(token(test_keys::RSA_A_KID)).is_ok());

    script.gate.add_permits(1);
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined.unwrap();
        if i % 2 == 0 {
            assert_eq!(result.unwrap().sub, "user-1", "task {i}");
        } else {
            assert!(
                matches!(result, Err(TokenError::UnknownKeyId(_))),
                "task {i}"
            );
        }
    }
    let s = stats(&verifier);
    assert_eq!((s.fetches, s.unknown_kid_fetches), (2, 1));
    assert_eq!(s.unknown_kid_rejections, 50);
    assert_eq!(script.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_or_empty_fetch_keeps_the_previous_keys_and_is_counted() {
    let script = Script::serving(&[test_keys::RSA_A_KID, test_keys::EC_P256_KID]);
    let verifier = verifier(&script, HOUR, Duration::ZERO).await;
    let known = token(test_keys::RSA_A_KID);

    script.fail("HTTP 500");
    assert!(matches!(
        verifier.refresh_keys().await,
        Err(TokenError::KeySetUnavailable(reason)) if reason == "HTTP 500"
    ));
    *script.answer.lock().unwrap() = Ok(br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#.to_vec());
    assert!(verifier.refresh_keys().await.is_err());
    // An unknown kid still causes its fetch, which fails too.
    assert!(
        verifier
            .verify_async(token(test_keys::RSA_B_KID))
            .await
            .is_err()
    );

    assert_eq!(verifier.verify_async(&known).await.unwrap().sub, "user-1");
    let s = stats(&verifier);
    assert_eq!((s.fetches, s.fetch_failures, s.keys), (4, 3, 2));
    assert_eq!(s.unknown_kid_rejections, 1);
}

#[tokio::test(start_paused = true)]
async fn the_periodic_refresh_follows_rotations_and_retries_sooner_after_a_failure() {
    let script = Script::serving(&[test_keys::RSA_A_KID]);
    let (refresh, min) = (Duration::from_secs(600), Duration::from_secs(30));
    let verifier = verifier(&script, refresh, min).await;
    let rotated = token(test_keys::RSA_B_KID);

    script.serve(&[test_keys::RSA_B_KID]);
    tokio::time::sleep(refresh + Duration::from_secs(1)).await;
    assert_eq!(script.calls(), 2);
    assert!(
        verifier.verify(&rotated).is_ok(),
        "picked up without any kid fetch"
    );
    assert!(
        verifier.verify(token(test_keys::RSA_A_KID)).is_err(),
        "retired key gone"
    );

    script.fail("down");
    tokio::time::sleep(refresh).await;
    assert_eq!(script.calls(), 3, "the periodic fetch failed");
    script.serve(&[test_keys::RSA_B_KID]);
    tokio::time::sleep(min).await;
    assert_eq!(script.calls(), 4, "retried after the minimum interval");
    tokio::time::sleep(refresh - Duration::from_secs(2)).await;
    assert_eq!(
        script.calls(),
        4,
        "back to the full interval after a success"
    );
    assert!(verifier.verify(&rotated).is_ok());
    let s = stats(&verifier);
    assert_eq!(
        (s.fetches, s.fetch_failures, s.unknown_kid_fetches),
        (4, 1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_clone_of_the_verifier_stops_the_periodic_refresh() {
    let script = Script::serving(&[test_keys::RSA_A_KID]);
    let refresh = Duration::from_secs(60);
    let verifier = verifier(&script, refresh, refresh).await;
    let task = verifier
        .remote_keys()
        .unwrap()
        .background
        .get()
        .unwrap()
        .clone();
    let clone = verifier.clone().leeway(Duration::from_secs(5));

    drop(verifier);
    tokio::time::sleep(refresh * 2 + Duration::from_secs(1)).await;
    assert_eq!(script.calls(), 3, "a clone keeps the refresh going");
    assert!(!task.is_finished());

    drop(clone);
    tokio::time::sleep(refresh * 5).await;
    assert_eq!(script.calls(), 3, "no fetch after the last clone is gone");
    assert!(task.is_finished());
}

#[tokio::test(start_paused = true)]
async fn a_verifier_never_starts_without_keys() {
    let script = Arc::new(Script::default());
    script.fail("connection refused");
    let intervals = Intervals {
        refresh: HOUR,
        min_refresh: HOUR,
    };
    let error = RemoteJwks::build_with(Box::new(Scripted(Arc::clone(&script))), intervals)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        TokenError::KeySetUnavailable("script: connection refused".into())
    );
    assert!(error.is_configuration());
}

#[tokio::test(start_paused = true)]
async fn the_key_set_version_rises_when_a_key_is_lost_and_only_then() {
    let script = Script::serving(&[test_keys::RSA_A_KID]);
    let verifier = verifier(&script, HOUR, Duration::ZERO).await;
    let clone = verifier.clone();
    let signed_by_a = token(test_keys::RSA_A_KID);
    assert_eq!(verifier.key_set_version(), 0, "the first set loses nothing");

    // Keys added, the same set again, a failed fetch, an unusable set: nothing lost.
    script.serve(&[test_keys::RSA_A_KID, test_keys::RSA_B_KID]);
    verifier.refresh_keys().await.unwrap();
    verifier.refresh_keys().await.unwrap();
    script.fail("HTTP 503");
    assert!(verifier.refresh_keys().await.is_err());
    *script.answer.lock().unwrap() = Ok(br#"{"keys": []}"#.to_vec());
    assert!(verifier.refresh_keys().await.is_err());
    assert_eq!(verifier.key_set_version(), 0);
    assert!(verifier.verify(&signed_by_a).is_ok());

    // Key A dropped: the version moves, for every clone, and A's tokens are refused.
    script.serve(&[test_keys::RSA_B_KID]);
    verifier.refresh_keys().await.unwrap();
    assert_eq!(verifier.key_set_version(), 1);
    assert_eq!(clone.key_set_version(), 1);
    assert!(matches!(
        verifier.verify(&signed_by_a),
        Err(TokenError::UnknownKeyId(_))
    ));

    // A's kid back with other key material is still a loss (of B, and of A's old key).
    let mut set = test_keys::jwks().unwrap();
    set.keys
        .retain(|k| k.common.key_id.as_deref() == Some(test_keys::RSA_B_KID));
    set.keys[0].common.key_id = Some(test_keys::RSA_A_KID.to_owned());
    *script.answer.lock().unwrap() = Ok(serde_json::to_vec(&set).unwrap());
    verifier.refresh_keys().await.unwrap();
    assert_eq!(verifier.key_set_version(), 2);
    assert_eq!(verifier.verify(&signed_by_a), Err(TokenError::BadSignature));
}

#[tokio::test(start_paused = true)]
async fn a_key_whose_declared_alg_changes_counts_as_lost() {
    let script = Script::serving(&[test_keys::RSA_A_KID]);
    let verifier = verifier(&script, HOUR, Duration::ZERO).await;
    let rs256 = token(test_keys::RSA_A_KID);
    let mut set = test_keys::jwks().unwrap();
    set.keys
        .retain(|k| k.common.key_id.as_deref() == Some(test_keys::RSA_A_KID));
    set.keys[0].common.key_algorithm = Some(jsonwebtoken::jwk::KeyAlgorithm::PS256);
    *script.answer.lock().unwrap() = Ok(serde_json::to_vec(&set).unwrap());
    verifier.refresh_keys().await.unwrap();
    assert_eq!(verifier.key_set_version(), 1);
    assert_eq!(
        verifier.verify(&rs256),
        Err(TokenError::DisallowedAlgorithm(crate::Algorithm::RS256))
    );
}
