//! Unit tests of `verifier`.

use super::*;

const LONG_ENOUGH: &[u8] = b"unit-test-secret-of-at-least-32-bytes";

#[test]
fn hmac_secrets_under_32_bytes_are_refused_with_the_minimum() {
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        for secret in [&b""[..], b"x", &[7; 31]] {
            let error = JwtVerifier::from_secret(alg, secret).unwrap_err();
            assert!(error.is_configuration(), "{alg:?}: {error}");
            let message = error.to_string();
            assert!(
                message.contains(&format!("{} bytes", secret.len()))
                    && message.contains("at least 32"),
                "{message}"
            );
        }
        JwtVerifier::from_secret(alg, [7; 32]).unwrap();
    }
}

#[test]
fn check_reports_a_short_secret_given_to_the_infallible_constructor() {
    JwtVerifier::hs256(LONG_ENOUGH).check().unwrap();
    for secret in [&b""[..], b"too-short-secret"] {
        let verifier = JwtVerifier::hs256(secret);
        let error = verifier.check().unwrap_err();
        assert!(error.is_configuration(), "{error}");
        assert!(error.to_string().contains("at least 32"), "{error}");
    }
}
