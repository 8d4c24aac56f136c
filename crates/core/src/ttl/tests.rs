//! Unit tests of `ttl`.

use super::*;

#[test]
fn huge_ttls_never_panic_and_fail_validation() {
    let huge = Ttls {
        user: Duration::MAX,
        ..Ttls::default()
    };
    for unit in [0.0, 0.5, 1.0] {
        assert!(jitter_with(Duration::MAX, 0.5, None, unit) > Duration::ZERO);
    }
    assert!(huge.validate().unwrap_err().contains("user"));
    let nan = Ttls {
        jitter: f64::NAN,
        ..Ttls::default()
    };
    assert!(nan.validate().is_err());
    for refresh_ahead in [f64::NAN, -0.1, 0.6] {
        let bad = Ttls {
            refresh_ahead,
            ..Ttls::default()
        };
        assert!(bad.validate().unwrap_err().contains("refresh_ahead"));
        assert!(bad.refresh_window(Duration::from_secs(10)).is_zero());
    }
    assert_eq!(Ttls::default().validate(), Ok(()));
}

#[test]
fn defaults_are_the_documented_ones() {
    let t = Ttls::default();
    assert_eq!(t.user, Duration::from_secs(300));
    assert_eq!(t.perms, Duration::from_secs(900));
    assert_eq!(t.token, Duration::from_secs(120));
    assert_eq!(t.negative, Duration::from_secs(30));
    assert_eq!(t.l1_cap, Duration::from_secs(30));
    assert!((t.jitter - 0.10).abs() < f64::EPSILON);
    assert_eq!(t.stale_grace, Duration::from_secs(300));
    assert!((t.refresh_ahead - 0.10).abs() < f64::EPSILON);
    assert_eq!(t.refresh_window(t.user), Duration::from_secs(30));
    assert_eq!(t.for_kind(KeyKind::RolePerms), t.perms);
    assert_eq!(t.for_kind(KeyKind::Token), t.token);
}

#[test]
fn jitter_stays_within_bounds_at_the_extremes() {
    let ttl = Duration::from_secs(100);
    assert_eq!(jitter_with(ttl, 0.1, None, 0.0), Duration::from_secs(90));
    assert_eq!(jitter_with(ttl, 0.1, None, 0.5), ttl);
    assert_eq!(jitter_with(ttl, 0.1, None, 1.0), Duration::from_secs(110));
    assert_eq!(jitter_with(ttl, 0.1, Some(ttl), 1.0), ttl);
    assert_eq!(jitter_with(ttl, 0.0, None, 1.0), ttl);
}

#[test]
fn random_jitter_is_within_range_and_never_zero() {
    let t = Ttls::default();
    for _ in 0..10_000 {
        let j = t.jittered(Duration::from_secs(300));
        assert!(
            j >= Duration::from_secs(270) && j <= Duration::from_secs(330),
            "{j:?}"
        );
        let below = t.jittered_below(Duration::from_secs(10));
        assert!(below >= Duration::from_secs(9) && below <= Duration::from_secs(10));
        assert!(!t.jittered(Duration::from_nanos(1)).is_zero());
    }
}

#[test]
fn kind_ttls_respect_caps() {
    let t = Ttls::default();
    for _ in 0..1_000 {
        assert!(t.jittered_for(KeyKind::Token) <= t.token);
        assert!(t.jittered_for(KeyKind::Revoked) <= t.token);
        let user = t.jittered_for(KeyKind::User);
        assert!(user >= Duration::from_secs(270) && user <= Duration::from_secs(330));
    }
}

#[test]
fn zero_means_do_not_cache_and_tiny_ttls_never_become_zero() {
    assert!(jitter_with(Duration::ZERO, 0.1, None, 0.0).is_zero());
    let tiny = jitter_with(Duration::from_nanos(10), 0.5, None, 0.0);
    assert!(!tiny.is_zero() && tiny <= Duration::from_nanos(10));
    assert!(jitter_with(Duration::from_micros(1), 0.1, None, 0.0) >= Duration::from_nanos(900));
}

#[test]
fn nonsense_fractions_are_clamped() {
    let ttl = Duration::from_secs(10);
    assert_eq!(jitter_with(ttl, f64::NAN, None, 0.0), ttl);
    assert_eq!(jitter_with(ttl, 7.0, None, 0.0), Duration::from_secs(5));
    assert_eq!(jitter_with(ttl, -1.0, None, 0.0), ttl);
}

#[test]
fn l1_ttl_is_the_smaller_of_l2_ttl_and_cap() {
    let t = Ttls::default();
    assert_eq!(t.l1_ttl(Duration::from_secs(300)), Duration::from_secs(30));
    assert_eq!(t.l1_ttl(Duration::from_secs(5)), Duration::from_secs(5));
    let off = Ttls {
        l1_cap: Duration::ZERO,
        ..Ttls::default()
    };
    assert!(off.l1_ttl(Duration::from_secs(5)).is_zero());
}
