//! Unit tests of `claims`.

use super::*;
use serde_json::json;

fn parse(v: Value) -> Result<Claims> {
    parse_claims(v.to_string().as_bytes())
}

#[test]
fn registered_claims_and_extras_are_split() {
    let c = parse(json!({
        "sub": "u1", "exp": 10, "nbf": 1.9, "iat": 1, "iss": "i", "aud": "a", "jti": "j",
        "roles": ["admin"], "n\"q": {"x": 1}
    }))
    .unwrap();
    assert_eq!(c.sub, "u1");
    assert_eq!(c.nbf, Some(1));
    assert_eq!(c.aud, vec!["a".to_string()]);
    let extra = c.extra_claims().unwrap();
    assert_eq!(extra["roles"], json!(["admin"]));
    assert_eq!(extra["n\"q"], json!({"x": 1}));
    assert_eq!(
        c.extra_claim::<Vec<String>>("roles").unwrap(),
        Some(vec!["admin".into()])
    );
}

#[test]
fn a_fractional_iat_is_kept_to_the_microsecond_and_round_trips() {
    let c = parse(json!({"sub": "u1", "exp": 10, "iat": 1_765_000_000.123_456})).unwrap();
    assert_eq!(c.iat, Some(1_765_000_000));
    assert_eq!(c.iat_micros(), Some(1_765_000_000_123_456));
    let whole = parse(json!({"sub": "u1", "exp": 10, "iat": 1_765_000_000})).unwrap();
    assert_eq!(whole.iat_micros(), Some(1_765_000_000_000_000));
    let point_zero = parse(json!({"sub": "u1", "exp": 10, "iat": 7.0})).unwrap();
    assert_eq!(point_zero.iat_micros(), Some(7_000_000));
    assert_eq!(
        parse(json!({"sub": "u1", "exp": 10})).unwrap().iat_micros(),
        None
    );
    // Every microsecond of a second survives the payload's f64.
    for micros in [1, 999_999, 500_000, 123_457, 999_998] {
        let at = UNIX_EPOCH + std::time::Duration::new(4_102_444_799, micros * 1_000);
        let claims = Claims::new("u1", 4_102_444_800).issued_at(at);
        let back = parse(claims.to_jwt_payload()).unwrap();
        assert_eq!(
            back.iat_micros(),
            Some(4_102_444_799_000_000 + u64::from(micros))
        );
    }
}

#[test]
fn type_errors_blame_the_claim() {
    let err = parse(json!({"sub": 1, "exp": 10})).unwrap_err();
    assert!(matches!(err, TokenError::InvalidClaim { claim: "sub", .. }));
    let err = parse(json!({"sub": "a", "exp": -1})).unwrap_err();
    assert!(matches!(err, TokenError::InvalidClaim { claim: "exp", .. }));
    let err = parse(json!({"sub": "a", "exp": 1, "aud": [1]})).unwrap_err();
    assert!(matches!(err, TokenError::InvalidClaim { claim: "aud", .. }));
}

#[test]
fn duplicates_and_syntax_errors_are_malformed() {
    let dup = br#"{"sub":"a","sub":"b","exp":1}"#;
    assert_eq!(parse_claims(dup), Err(Malformed::DuplicateClaim.into()));
    let dup_extra = br#"{"sub":"a","exp":1,"r":1,"r":2}"#;
    assert_eq!(
        parse_claims(dup_extra),
        Err(Malformed::DuplicateClaim.into())
    );
    assert_eq!(
        parse_claims(br#"{"sub":"a","exp":1"#),
        Err(Malformed::ClaimsJson.into())
    );
    assert_eq!(
        parse_claims(br#"{"sub":"a","exp":1} x"#),
        Err(Malformed::ClaimsJson.into())
    );
    assert_eq!(parse_claims(b"[]"), Err(Malformed::ClaimsJson.into()));
}

#[test]
fn round_trips_through_bincode_2_serde() {
    let claims = Claims {
        iss: Some("i".into()),
        aud: vec!["a".into(), "b".into()],
        ..Claims::new("u", 9)
    }
    .with_extra(
        json!({"roles": ["r"], "sub": "ignored"})
            .as_object()
            .cloned()
            .unwrap(),
    );
    let cfg = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(&claims, cfg).unwrap();
    let (back, _): (Claims, usize) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
    assert_eq!(back, claims);
    assert_eq!(
        back.extra_claims().unwrap(),
        *json!({"roles": ["r"]}).as_object().unwrap()
    );
}

#[test]
fn jwt_payload_round_trips_through_the_parser() {
    let claims = Claims {
        aud: vec!["a".into()],
        jti: Some("j".into()),
        ..Claims::new("u", 9)
    }
    .with_extra(json!({"scope": "read"}).as_object().cloned().unwrap());
    let back = parse(claims.to_jwt_payload()).unwrap();
    assert_eq!(back.extra_claims().unwrap(), claims.extra_claims().unwrap());
    assert_eq!(
        (back.sub, back.aud, back.jti),
        (claims.sub, claims.aud, claims.jti)
    );
}
