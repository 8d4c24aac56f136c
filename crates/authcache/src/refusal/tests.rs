//! Unit tests of refusal reasons, their counters and their debug events.

use super::*;

#[test]
fn every_reason_sits_at_its_index_with_a_distinct_name() {
    let mut names = std::collections::HashSet::new();
    for (index, reason) in Refusal::ALL.iter().enumerate() {
        assert_eq!(reason.index(), index, "{reason:?}");
        assert!(names.insert(reason.as_str()), "{reason:?}");
    }
}

#[test]
fn errors_map_to_their_reasons() {
    let cases = [
        (AuthError::from(TokenError::Expired), "expired"),
        (TokenError::NotYetValid.into(), "not_yet_valid"),
        (TokenError::BadSignature.into(), "bad_signature"),
        (TokenError::UnknownKeyId("k".into()).into(), "unknown_kid"),
        (TokenError::WrongIssuer.into(), "wrong_issuer"),
        (TokenError::WrongAudience.into(), "wrong_audience"),
        (
            TokenError::from(authcache_jwt::Malformed::SegmentCount).into(),
            "malformed",
        ),
        (AuthError::Revoked, "revoked"),
        (AuthError::UnknownUser, "unknown_user"),
        (AuthError::Disabled, "disabled"),
        (AuthError::unavailable("down"), "unavailable"),
    ];
    for (error, reason) in cases {
        assert_eq!(Seen::default().reason(&error).as_str(), reason, "{error}");
    }
    let cut_off = Seen {
        revocation: Some(Refusal::CutOff),
        ..Seen::default()
    };
    assert_eq!(cut_off.reason(&AuthError::Revoked), Refusal::CutOff);
}
