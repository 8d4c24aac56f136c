//! Unit tests of `metrics`.

use std::time::Duration;

use authcache_jwt::TokenIssuer;
use std::collections::HashMap;

use metrics::{Key, Label, SharedString, Unit, with_local_recorder};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::{CompositeKey, MetricKind};

use super::*;
use crate::test_support::service;

fn bearer(issuer: &TokenIssuer, sub: &str) -> String {
    format!(
        "Bearer {}",
        issuer.issue(sub, Duration::from_secs(600)).unwrap()
    )
}

/// Three good authentications of one token, one forged token, one disabled user.
async fn exercised_service() -> AuthService {
    let auth = service().await;
    let issuer = TokenIssuer::test_hs256();
    let ada = bearer(&issuer, "ada");
    for _ in 0..3 {
        auth.authenticate(&ada).await.unwrap();
    }
    let forger = TokenIssuer::hs256(b"not-the-secret-of-this-service!!");
    auth.authenticate(&bearer(&forger, "ada"))
        .await
        .unwrap_err();
    auth.authenticate(&bearer(&issuer, "eve"))
        .await
        .unwrap_err();
    auth
}

/// What `record_metrics`/`record` wrote inside `f`, in one snapshot (taking a snapshot
/// of a `DebuggingRecorder` resets its values).
fn recorded(f: impl FnOnce()) -> Recorded {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    with_local_recorder(&recorder, f);
    snapshotter.snapshot().into_hashmap()
}

type Recorded = HashMap<CompositeKey, (Option<Unit>, Option<SharedString>, DebugValue)>;

fn value<'a>(
    recorded: &'a Recorded,
    kind: MetricKind,
    name: &str,
    labels: &[(&str, &str)],
) -> &'a DebugValue {
    let labels: Vec<Label> = labels
        .iter()
        .map(|&(k, v)| Label::new(k.to_owned(), v.to_owned()))
        .collect();
    let key = CompositeKey::new(kind, Key::from_parts(name.to_owned(), labels));
    match recorded.get(&key) {
        Some((.., value)) => value,
        None => panic!("no metric {key:?}"),
    }
}

fn counter(recorded: &Recorded, name: &str, labels: &[(&str, &str)]) -> u64 {
    match value(recorded, MetricKind::Counter, name, labels) {
        &DebugValue::Counter(n) => n,
        other => panic!("{name} is not a counter: {other:?}"),
    }
}

#[tokio::test]
async fn stats_are_exported_with_tier_and_kind_labels() {
    let auth = exercised_service().await;
    let recorded = recorded(|| auth.record_metrics());

    let outcome = |o: &str| {
        counter(
            &recorded,
            "authcache_authentications_total",
            &[("outcome", o)],
        )
    };
    assert_eq!(outcome("authenticated"), 3);
    assert_eq!(outcome("rejected_token"), 1);
    assert_eq!(outcome("rejected_user"), 1);
    assert_eq!(outcome("unavailable"), 0);
    let refusals = |r: &str| counter(&recorded, "authcache_refusals_total", &[("reason", r)]);
    assert_eq!(refusals("bad_signature"), 1);
    assert_eq!(refusals("disabled"), 1);
    assert_eq!(refusals("revoked"), 0);

    let validations = |r: &str| {
        counter(
            &recorded,
            "authcache_token_validations_total",
            &[("result", r)],
        )
    };
    assert_eq!((validations("verified"), validations("cached")), (2, 2));

    let users = [("kind", "users")];
    assert_eq!(counter(&recorded, "authcache_loads_total", &users), 2);
    let warm = counter(
        &recorded,
        "authcache_cache_hits_total",
        &[("kind", "principals"), ("tier", "l1")],
    );
    assert_eq!(warm, 2, "the 2nd and 3rd authentication of ada");
    assert_eq!(counter(&recorded, "authcache_l2_errors_total", &users), 0);
    let breaker = value(&recorded, MetricKind::Gauge, "authcache_breaker_state", &[]);
    assert_eq!(breaker, &DebugValue::Gauge(0.0.into()));
}

#[tokio::test]
async fn refusals_are_exported_by_reason() {
    let auth = service().await;
    let ada = bearer(&TokenIssuer::test_hs256(), "ada");
    auth.logout(&ada).await.unwrap();
    auth.authenticate(&ada).await.unwrap_err();
    let recorded = recorded(|| auth.record_metrics());
    let revoked = [("reason", "revoked")];
    assert_eq!(counter(&recorded, "authcache_refusals_total", &revoked), 1);
    let cut_off = [("reason", "cut_off")];
    assert_eq!(counter(&recorded, "authcache_refusals_total", &cut_off), 0);
}

#[tokio::test]
async fn recording_twice_does_not_double_count() {
    let auth = exercised_service().await;
    let recorded = recorded(|| {
        auth.record_metrics();
        auth.record_metrics();
    });
    let ok = counter(
        &recorded,
        "authcache_authentications_total",
        &[("outcome", "authenticated")],
    );
    assert_eq!(ok, 3);
}

#[test]
fn every_metric_is_described() {
    let recorded = recorded(|| {
        describe();
        record(&Stats {
            breaker: Some(BreakerStats {
                state: BreakerState::Open,
                consecutive_failures: 5,
                failures: 5,
                timeouts: 1,
                rejected: 7,
                opened: 1,
            }),
            repository_breaker: BreakerStats {
                state: BreakerState::HalfOpen,
                failures: 6,
                opened: 2,
                ..BreakerStats::default()
            },
            repository_reachable: Some(false),
            unchecked: 3,
            pending_revocations: 4,
            bus_subscribed: Some(false),
            watcher: Some(crate::WatcherStats {
                state: WatcherState::Down,
                ..crate::WatcherStats::default()
            }),
            ..Stats::default()
        });
    });
    assert!(!recorded.is_empty());
    for (key, (_, description, _)) in &recorded {
        assert!(
            description.is_some(),
            "{} has no description",
            key.key().name()
        );
    }
    let breaker = value(&recorded, MetricKind::Gauge, "authcache_breaker_state", &[]);
    assert_eq!(breaker, &DebugValue::Gauge(2.0.into()));
    assert_eq!(
        counter(&recorded, "authcache_breaker_rejected_total", &[]),
        7
    );
    let gauge_of = |name: &str, labels: &[(&str, &str)]| match value(
        &recorded,
        MetricKind::Gauge,
        name,
        labels,
    ) {
        DebugValue::Gauge(value) => value.into_inner(),
        other => panic!("{name} is not a gauge: {other:?}"),
    };
    assert_eq!(counter(&recorded, "authcache_unchecked_total", &[]), 3);
    assert_eq!(gauge_of("authcache_pending_revocations", &[]), 4.0);
    assert_eq!(gauge_of("authcache_bus_subscribed", &[]), 0.0);
    assert_eq!(gauge_of("authcache_watcher_up", &[]), 0.0);
    let state = |s: &str| gauge_of("authcache_watcher_state", &[("state", s)]);
    assert_eq!(
        (state("starting"), state("running"), state("down")),
        (0.0, 0.0, 1.0)
    );
    assert_eq!(gauge_of("authcache_repository_breaker_state", &[]), 1.0);
    assert_eq!(gauge_of("authcache_repository_up", &[]), 0.0);
    let repository = |name: &str| counter(&recorded, name, &[]);
    assert_eq!(
        (
            repository("authcache_repository_breaker_failures_total"),
            repository("authcache_repository_breaker_opened_total"),
        ),
        (6, 2)
    );
}

#[tokio::test]
async fn what_a_service_without_a_bus_or_watcher_lacks_is_absent() {
    let auth = service().await;
    let before = recorded(|| auth.record_metrics());
    let absent = [
        "authcache_bus_subscribed",
        "authcache_watcher_up",
        "authcache_repository_up",
    ];
    for name in absent {
        let key = CompositeKey::new(MetricKind::Gauge, Key::from_name(name));
        assert!(!before.contains_key(&key), "{name} recorded");
    }
    let closed = value(
        &before,
        MetricKind::Gauge,
        "authcache_repository_breaker_state",
        &[],
    );
    assert_eq!(closed, &DebugValue::Gauge(0.0.into()));
    assert_eq!(counter(&before, "authcache_unchecked_total", &[]), 0);
    auth.health().await;
    let after = recorded(|| auth.record_metrics());
    let up = value(&after, MetricKind::Gauge, "authcache_repository_up", &[]);
    assert_eq!(up, &DebugValue::Gauge(1.0.into()), "after a health check");
}
