//! jsonwebtoken's process-wide crypto provider: building a verifier installs one, so the
//! first verification in a fresh process cannot hit jsonwebtoken's "no provider" panic.
//! (Its own test binary: a fresh process; the other test here installs nothing.)

#![allow(clippy::unwrap_used)] // a failure here is a test failure.

use std::time::Duration;

use authcache_jwt::{JwtVerifier, TokenIssuer};
use jsonwebtoken::crypto::{CryptoProvider, rust_crypto};

#[test]
fn building_a_verifier_installs_the_rust_crypto_provider() {
    let verifier = JwtVerifier::test_es256();
    assert!(
        CryptoProvider::install_default(&rust_crypto::DEFAULT_PROVIDER).is_err(),
        "the verifier's constructor should already have installed a provider"
    );
    let token = TokenIssuer::test_es256()
        .issue("u", Duration::from_secs(60))
        .unwrap();
    assert_eq!(verifier.verify(&token).unwrap().sub, "u");
}

#[test]
fn verifier_and_issuer_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<JwtVerifier>();
    assert_send_sync::<TokenIssuer>();
    assert_send_sync::<authcache_jwt::Claims>();
    assert_send_sync::<authcache_jwt::TokenError>();
}
