//! Valid tokens of every algorithm verify; key loading, key sets, leeway and helpers.

#![allow(clippy::unwrap_used, clippy::panic)] // test helpers outside `#[test]` fns: a failure here is a test failure.

use std::time::Duration;

use authcache_jwt::jwk::Jwk;
use authcache_jwt::{
    Algorithm, Claims, DEFAULT_LEEWAY, JwtVerifier, MAX_LEEWAY, SUPPORTED_ALGORITHMS, TokenError,
    TokenIssuer, test_keys, unverified_subject, validation_ttl,
};
use serde_json::json;

const NOW: u64 = 1_700_000_000;

fn claims() -> Claims {
    let mut c = Claims::new("user-7", NOW + 300).with_extra(
        json!({"roles": ["admin"], "scope": "read write"})
            .as_object()
            .cloned()
            .unwrap(),
    );
    c.iat = Some(NOW);
    c
}

fn pem_pair(alg: Algorithm) -> (TokenIssuer, JwtVerifier) {
    let (private, public) = match alg {
        Algorithm::ES256 => (
            test_keys::EC_P256_PRIVATE_PEM,
            test_keys::EC_P256_PUBLIC_PEM,
        ),
        Algorithm::ES384 => (
            test_keys::EC_P384_PRIVATE_PEM,
            test_keys::EC_P384_PUBLIC_PEM,
        ),
        Algorithm::EdDSA => (
            test_keys::ED25519_PRIVATE_PEM,
            test_keys::ED25519_PUBLIC_PEM,
        ),
        _ => (test_keys::RSA_A_PRIVATE_PEM, test_keys::RSA_A_PUBLIC_PEM),
    };
    (
        TokenIssuer::from_pem(alg, private).unwrap(),
        JwtVerifier::from_pem(alg, public).unwrap(),
    )
}

fn pair(alg: Algorithm) -> (TokenIssuer, JwtVerifier) {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => (
            TokenIssuer::from_secret(alg, test_keys::HS256_SECRET).unwrap(),
            JwtVerifier::from_secret(alg, test_keys::HS256_SECRET).unwrap(),
        ),
        _ => pem_pair(alg),
    }
}

#[test]
fn valid_tokens_of_every_supported_algorithm_verify() {
    for alg in SUPPORTED_ALGORITHMS {
        let (issuer, verifier) = pair(alg);
        let token = issuer.sign(&claims()).unwrap();
        let got = verifier
            .verify_at(&token, NOW)
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(got, claims(), "{alg:?}");
        assert_eq!(verifier.allowed_algorithms(), [alg]);
    }
}

#[test]
fn test_constructors_match_the_pem_files() {
    let cases = [
        (TokenIssuer::test_hs256(), JwtVerifier::test_hs256()),
        (
            TokenIssuer::test_rs256(),
            JwtVerifier::from_pem(Algorithm::RS256, test_keys::RSA_A_PUBLIC_PEM).unwrap(),
        ),
        (
            TokenIssuer::test_rs256_other(),
            JwtVerifier::from_pem(Algorithm::RS256, test_keys::RSA_B_PUBLIC_PEM).unwrap(),
        ),
        (
            TokenIssuer::test_es256(),
            JwtVerifier::from_pem(Algorithm::ES256, test_keys::EC_P256_PUBLIC_PEM).unwrap(),
        ),
        (
            TokenIssuer::test_es384(),
            JwtVerifier::from_pem(Algorithm::ES384, test_keys::EC_P384_PUBLIC_PEM).unwrap(),
        ),
        (
            TokenIssuer::test_eddsa(),
            JwtVerifier::from_pem(Algorithm::EdDSA, test_keys::ED25519_PUBLIC_PEM).unwrap(),
        ),
    ];
    for (issuer, verifier) in cases {
        let token = issuer.sign(&claims()).unwrap();
        assert_eq!(
            verifier.verify_at(&token, NOW).unwrap().sub,
            "user-7",
            "{:?}",
            issuer.algorithm()
        );
    }
    for (issuer, verifier) in [
        (TokenIssuer::test_rs256(), JwtVerifier::test_rs256()),
        (TokenIssuer::test_es256(), JwtVerifier::test_es256()),
        (TokenIssuer::test_eddsa(), JwtVerifier::test_eddsa()),
    ] {
        assert!(
            verifier
                .verify(issuer.issue("u", Duration::from_secs(60)).unwrap())
                .is_ok()
        );
    }
}

#[test]
fn bearer_forms_verify() {
    let token = TokenIssuer::test_hs256().sign(&claims()).unwrap();
    let verifier = JwtVerifier::test_hs256();
    for form in [
        token.clone(),
        format!("Bearer {token}"),
        format!("bearer {token}"),
        format!("BEARER {token}"),
    ] {
        assert_eq!(verifier.verify_at(form, NOW).unwrap().sub, "user-7");
    }
}

#[test]
fn leeway_and_boundaries() {
    let issuer = TokenIssuer::test_hs256();
    let at = |exp: u64, nbf: Option<u64>| {
        let mut c = Claims::new("u", exp);
        c.nbf = nbf;
        JwtVerifier::test_hs256().verify_at(issuer.sign(&c).unwrap(), NOW)
    };
    assert!(at(NOW - 29, None).is_ok(), "expired within the leeway");
    assert_eq!(at(NOW - 30, None), Err(TokenError::Expired));
    assert!(
        at(NOW + 60, Some(NOW + 30)).is_ok(),
        "nbf within the leeway"
    );
    assert_eq!(at(NOW + 60, Some(NOW + 31)), Err(TokenError::NotYetValid));
    let strict = JwtVerifier::test_hs256().leeway(Duration::ZERO);
    assert_eq!(
        strict.verify_at(issuer.sign(&Claims::new("u", NOW)).unwrap(), NOW),
        Err(TokenError::Expired)
    );
    assert!(
        strict
            .verify_at(issuer.sign(&Claims::new("u", NOW + 1)).unwrap(), NOW)
            .is_ok()
    );
}

#[test]
fn leeway_is_capped_at_max_leeway_so_no_setting_revives_every_expired_token() {
    let issuer = TokenIssuer::test_hs256();
    let expired_at = |exp: u64| issuer.sign(&Claims::new("u", exp)).unwrap();
    for huge in [Duration::MAX, Duration::from_secs(u64::MAX), MAX_LEEWAY * 2] {
        let verifier = JwtVerifier::test_hs256().leeway(huge);
        assert_eq!(verifier.clock_leeway(), MAX_LEEWAY, "{huge:?}");
        let long_expired = expired_at(NOW - MAX_LEEWAY.as_secs());
        assert_eq!(
            verifier.verify_at(&long_expired, NOW),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verifier.verify_at(expired_at(0), NOW),
            Err(TokenError::Expired)
        );
        let just_within = expired_at(NOW - MAX_LEEWAY.as_secs() + 1);
        assert!(verifier.verify_at(&just_within, NOW).is_ok());
        // Sums with the leeway (what a revocation's lifetime adds up to) cannot overflow.
        assert!(
            verifier
                .clock_leeway()
                .checked_add(Duration::from_secs(u64::MAX / 2))
                .is_some()
        );
    }
    let exactly = JwtVerifier::test_hs256().leeway(MAX_LEEWAY);
    assert_eq!(exactly.clock_leeway(), MAX_LEEWAY);
    assert_eq!(JwtVerifier::test_hs256().clock_leeway(), DEFAULT_LEEWAY);
}

#[test]
fn extreme_times_and_durations_never_panic() {
    let issuer = TokenIssuer::test_hs256();
    let verifier = JwtVerifier::test_hs256()
        .leeway(Duration::MAX)
        .max_lifetime(Duration::MAX);
    for (exp, iat, nbf) in [
        (u64::MAX, Some(u64::MAX), Some(u64::MAX)),
        (u64::MAX, Some(0), None),
        (0, Some(u64::MAX), Some(0)),
        (1, Some(u64::MAX - 1), None),
    ] {
        let mut claims = Claims::new("u", exp);
        (claims.iat, claims.nbf) = (iat, nbf);
        let token = issuer.sign(&claims).unwrap();
        for now in [0, 1, NOW, u64::MAX - 1, u64::MAX] {
            // Any verdict will do; reaching it without a panic is the point.
            let _ = verifier.verify_at(&token, now);
            let _ = JwtVerifier::test_hs256()
                .max_lifetime(Duration::ZERO)
                .verify_at(&token, now);
        }
    }
    assert!(
        issuer.issue("u", Duration::MAX).is_ok(),
        "exp saturates at u64::MAX"
    );
}

#[test]
fn max_lifetime_requires_iat_and_bounds_exp_minus_iat() {
    let hour = Duration::from_secs(3600);
    let issuer = TokenIssuer::test_hs256();
    let token = |iat: Option<u64>, exp: u64| {
        let mut c = Claims::new("u", exp);
        c.iat = iat;
        issuer.sign(&c).unwrap()
    };
    let verifier = JwtVerifier::test_hs256().max_lifetime(hour);
    assert_eq!(verifier.lifetime_limit(), Some(hour));
    assert_eq!(JwtVerifier::test_hs256().lifetime_limit(), None);

    assert!(
        verifier
            .verify_at(token(Some(NOW), NOW + 3600), NOW)
            .is_ok()
    );
    let thirty_days = token(Some(NOW), NOW + 30 * 86_400);
    let error = verifier.verify_at(&thirty_days, NOW).unwrap_err();
    assert_eq!(
        error,
        TokenError::LifetimeTooLong {
            lifetime: Duration::from_secs(30 * 86_400),
            max: hour,
        }
    );
    assert!(
        error.to_string().contains("shorter-lived tokens"),
        "{error}"
    );
    assert!(!error.is_configuration());
    assert_eq!(
        verifier.verify_at(token(Some(NOW), NOW + 3601), NOW),
        Err(TokenError::LifetimeTooLong {
            lifetime: Duration::from_secs(3601),
            max: hour,
        })
    );
    assert_eq!(
        verifier.verify_at(token(None, NOW + 60), NOW),
        Err(TokenError::MissingClaim("iat"))
    );

    // A future `iat` would stretch the life past the maximum from now: refused beyond the
    // leeway (30 s by default), accepted within it.
    assert!(
        verifier
            .verify_at(token(Some(NOW + 30), NOW + 60), NOW)
            .is_ok()
    );
    assert!(matches!(
        verifier.verify_at(token(Some(NOW + 31), NOW + 60), NOW),
        Err(TokenError::InvalidClaim { claim: "iat", .. })
    ));

    // Without a maximum, none of this is checked (as before).
    let unbounded = JwtVerifier::test_hs256();
    for t in [
        &thirty_days,
        &token(None, NOW + 60),
        &token(Some(NOW + 600), NOW + 60),
    ] {
        assert!(unbounded.verify_at(t, NOW).is_ok());
    }
    // Clones and later settings keep it.
    let narrowed = verifier.clone().leeway(Duration::ZERO);
    assert_eq!(narrowed.lifetime_limit(), Some(hour));
}

#[test]
fn a_verifier_with_fixed_keys_has_a_constant_key_set_version() {
    let set = JwtVerifier::from_jwks(&test_keys::jwks().unwrap()).unwrap();
    for verifier in [JwtVerifier::test_hs256(), JwtVerifier::test_rs256(), set] {
        assert_eq!(verifier.key_set_version(), 0);
        let token = TokenIssuer::test_rs256()
            .kid(test_keys::RSA_A_KID)
            .sign(&claims())
            .unwrap();
        let _ = verifier.verify_at(&token, NOW);
        assert_eq!(verifier.key_set_version(), 0);
    }
}

#[test]
fn several_issuers_and_audiences_are_accepted() {
    let verifier = JwtVerifier::test_hs256()
        .issuer("a")
        .issuer("b")
        .audience("x")
        .audience("y");
    let token = |iss: &str, aud: Vec<&str>| {
        let mut c = Claims::new("u", NOW + 60);
        c.iss = Some(iss.into());
        c.aud = aud.into_iter().map(String::from).collect();
        TokenIssuer::test_hs256().sign(&c).unwrap()
    };
    assert!(verifier.verify_at(token("b", vec!["y"]), NOW).is_ok());
    assert!(verifier.verify_at(token("a", vec!["z", "x"]), NOW).is_ok());
    assert_eq!(
        verifier.verify_at(token("c", vec!["x"]), NOW),
        Err(TokenError::WrongIssuer)
    );
    let no_aud_configured = JwtVerifier::test_hs256();
    assert_eq!(
        no_aud_configured.verify_at(token("a", vec!["x"]), NOW),
        Err(TokenError::WrongAudience)
    );
}

#[test]
fn key_sets_select_by_kid() {
    let verifier = JwtVerifier::from_jwks(&test_keys::jwks().unwrap()).unwrap();
    let mut allowed = verifier.allowed_algorithms().to_vec();
    allowed.sort_by_key(|a| format!("{a:?}"));
    assert_eq!(
        allowed,
        [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256]
    );
    let cases = [
        (TokenIssuer::test_rs256(), test_keys::RSA_A_KID),
        (TokenIssuer::test_rs256_other(), test_keys::RSA_B_KID),
        (TokenIssuer::test_es256(), test_keys::EC_P256_KID),
        (TokenIssuer::test_eddsa(), test_keys::ED25519_KID),
    ];
    for (issuer, kid) in cases {
        let token = issuer.kid(kid).sign(&claims()).unwrap();
        assert_eq!(
            verifier.verify_at(&token, NOW).unwrap().sub,
            "user-7",
            "{kid}"
        );
    }
    let json = serde_json::to_string(&test_keys::jwks().unwrap()).unwrap();
    assert!(JwtVerifier::from_jwks_json(&json).is_ok());
}

/// The facade calls `verify_at_async` whatever verifier it holds: with fixed keys it is
/// `verify_at`, unknown `kid` included (there is nothing to fetch).
#[tokio::test]
async fn verify_at_async_with_fixed_keys_is_verify_at() {
    let verifier = JwtVerifier::from_jwks(&test_keys::jwks().unwrap()).unwrap();
    let known = TokenIssuer::test_rs256()
        .kid(test_keys::RSA_A_KID)
        .sign(&claims())
        .unwrap();
    let unknown = TokenIssuer::test_rs256()
        .kid("not-in-the-set")
        .sign(&claims())
        .unwrap();
    for token in [&known, &unknown, &"Bearer".to_owned()] {
        assert_eq!(
            verifier.verify_at_async(token, NOW).await,
            verifier.verify_at(token, NOW)
        );
    }
    assert!(matches!(
        verifier.verify_at_async(&unknown, NOW).await,
        Err(TokenError::UnknownKeyId(_))
    ));
    #[cfg(feature = "jwks")]
    assert_eq!(verifier.jwks_stats(), None);
    #[cfg(feature = "jwks")]
    assert_eq!(verifier.refresh_keys().await, Ok(()));
}

#[test]
fn a_single_key_set_needs_no_kid_and_a_single_jwk_works() {
    let mut set = test_keys::jwks().unwrap();
    set.keys
        .retain(|k| k.common.key_id.as_deref() == Some(test_keys::RSA_A_KID));
    let verifier = JwtVerifier::from_jwks(&set).unwrap();
    let token = TokenIssuer::test_rs256().sign(&claims()).unwrap();
    assert!(verifier.verify_at(&token, NOW).is_ok());
    assert!(
        JwtVerifier::from_jwk(&set.keys[0])
            .unwrap()
            .verify_at(&token, NOW)
            .is_ok()
    );
}

#[test]
fn broken_keys_fail_at_construction_without_panicking() {
    let short_ed: Jwk =
        serde_json::from_value(json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"})).unwrap();
    assert!(
        JwtVerifier::from_jwk(&short_ed)
            .unwrap_err()
            .is_configuration()
    );
    let bad_ec: Jwk =
        serde_json::from_value(json!({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}))
            .unwrap();
    assert!(
        JwtVerifier::from_jwk(&bad_ec)
            .unwrap_err()
            .is_configuration()
    );
    let empty_oct: Jwk = serde_json::from_value(json!({"kty": "oct", "k": ""})).unwrap();
    assert!(
        JwtVerifier::from_jwk(&empty_oct)
            .unwrap_err()
            .is_configuration()
    );
    assert!(
        JwtVerifier::from_pem(Algorithm::RS256, "not a pem")
            .unwrap_err()
            .is_configuration()
    );
    assert!(
        JwtVerifier::from_pem(Algorithm::ES384, test_keys::EC_P256_PUBLIC_PEM).is_err(),
        "curve mismatch"
    );
    assert!(
        JwtVerifier::from_pem(Algorithm::PS512, test_keys::RSA_A_PUBLIC_PEM).is_err(),
        "not supported"
    );
    assert!(JwtVerifier::from_secret(Algorithm::RS256, b"secret").is_err());
    assert!(JwtVerifier::from_jwks_json("{}").is_err());
    let empty = JwtVerifier::hs256(b"");
    let token = TokenIssuer::hs256(b"x").sign(&claims()).unwrap();
    assert!(empty.verify_at(token, NOW).unwrap_err().is_configuration());
}

#[test]
fn the_allow_list_can_be_narrowed_but_not_widened_past_the_keys() {
    let rsa = JwtVerifier::from_pem(Algorithm::RS256, test_keys::RSA_A_PUBLIC_PEM).unwrap();
    let both = rsa
        .clone()
        .algorithms(&[Algorithm::RS256, Algorithm::PS256])
        .unwrap();
    let (ps, _) = pem_pair(Algorithm::PS256);
    assert!(both.verify_at(ps.sign(&claims()).unwrap(), NOW).is_ok());
    assert!(
        rsa.clone().algorithms(&[Algorithm::HS256]).is_err(),
        "no HMAC key"
    );
    assert!(rsa.clone().algorithms(&[]).is_err());
    assert!(
        rsa.algorithms(&[Algorithm::PS384]).is_err(),
        "not supported"
    );
}

#[test]
fn max_token_size_is_configurable() {
    let token = TokenIssuer::test_hs256().sign(&claims()).unwrap();
    let tight = JwtVerifier::test_hs256().max_token_size(token.len() - 1);
    assert_eq!(
        tight.verify_at(&token, NOW),
        Err(TokenError::TooLarge {
            size: token.len(),
            max: token.len() - 1
        })
    );
    assert!(
        tight
            .max_token_size(token.len())
            .verify_at(&token, NOW)
            .is_ok()
    );
}

#[test]
fn unverified_subject_reads_sub_without_checking_anything_else() {
    let forged = TokenIssuer::hs256(b"anyone").sign(&claims()).unwrap();
    assert_eq!(
        unverified_subject(format!("Bearer {forged}")).unwrap(),
        "user-7"
    );
    let bad_sub = TokenIssuer::test_hs256()
        .sign_payload(&json!({"sub": "a b"}))
        .unwrap();
    assert!(matches!(
        unverified_subject(bad_sub),
        Err(TokenError::InvalidClaim { claim: "sub", .. })
    ));
    let no_sub = TokenIssuer::test_hs256()
        .sign_payload(&json!({"exp": 1}))
        .unwrap();
    assert_eq!(
        unverified_subject(no_sub),
        Err(TokenError::MissingClaim("sub"))
    );
    assert!(unverified_subject("x.y").is_err());
    let array = format!("e30.{}.sig", base64_url(r#"["user-7"]"#));
    assert_eq!(
        unverified_subject(array),
        Err(authcache_jwt::Malformed::ClaimsJson.into())
    );
}

#[test]
fn issued_tokens_get_a_ttl_within_exp() {
    let token = TokenIssuer::test_hs256()
        .issue("u", Duration::from_secs(600))
        .unwrap();
    let claims = JwtVerifier::test_hs256().verify(&token).unwrap();
    let cap = Duration::from_secs(120);
    // Judged at the token's own `iat`, not the clock: the verdict never depends on how long
    // the test took.
    let issued = claims.iat.unwrap();
    assert_eq!(validation_ttl(claims.exp, issued, cap), Some(cap));
    let short = TokenIssuer::test_hs256()
        .issue("u", Duration::from_secs(30))
        .unwrap();
    let claims = JwtVerifier::test_hs256().verify(&short).unwrap();
    assert_eq!(
        validation_ttl(claims.exp, claims.iat.unwrap(), cap),
        Some(Duration::from_secs(25)),
        "30 s of life, less the 5 s skew"
    );
}

#[test]
fn error_messages_do_not_echo_long_attacker_text() {
    let alg = "x".repeat(1000) + "\n";
    let header = base64_url(&format!(r#"{{"alg":"{}"}}"#, alg.escape_default()));
    let token = format!("{header}.e30.sig");
    let err = JwtVerifier::test_hs256().verify(&token).unwrap_err();
    assert!(err.to_string().len() < 100, "{err}");
}

fn base64_url(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[test]
fn check_size_is_verifys_own_first_check() {
    let verifier = JwtVerifier::test_hs256().max_token_size(64);
    let at_limit = "a".repeat(64);
    let over = "a".repeat(65);
    for input in [at_limit.clone(), format!("Bearer {at_limit}")] {
        assert_eq!(verifier.check_size(&input), Ok(()));
    }
    for input in [over.clone(), format!("bearer {over}")] {
        let too_large = TokenError::TooLarge { size: 65, max: 64 };
        assert_eq!(verifier.check_size(&input), Err(too_large.clone()));
        assert_eq!(verifier.verify(&input), Err(too_large));
    }
}
