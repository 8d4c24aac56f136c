//! Unit tests of [`AuthError`](super::AuthError): status codes and query methods.

use super::*;

#[test]
fn status_codes_follow_the_contract() {
    let cases = [
        (AuthError::Revoked, 401),
        (AuthError::UnknownUser, 401),
        (AuthError::Disabled, 403),
        (AuthError::unavailable("mongodb down"), 503),
        (AuthError::Config("no".into()), 500),
    ];
    for (error, status) in cases {
        assert_eq!(error.status_code(), status, "{error}");
    }
}

#[test]
fn token_errors_are_401() {
    let error = AuthError::from(TokenError::BadSignature);
    assert_eq!(error.status_code(), 401);
    assert!(error.to_string().starts_with("invalid token"));
}

#[test]
fn only_unavailable_is_retryable() {
    assert!(AuthError::unavailable("x").is_unavailable());
    assert!(!AuthError::Disabled.is_unavailable());
}
