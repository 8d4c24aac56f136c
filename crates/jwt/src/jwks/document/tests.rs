//! Unit tests of `document`.

use serde_json::{Value, json};

use super::*;
use crate::test_keys;
use crate::verifier::ensure_crypto_provider;

fn test_jwks() -> Vec<Value> {
    ensure_crypto_provider();
    let set = serde_json::to_value(test_keys::jwks().unwrap()).unwrap();
    set["keys"].as_array().unwrap().clone()
}

fn parse(keys: Vec<Value>) -> Result<(KeySet, u64), String> {
    parse_key_set(json!({ "keys": keys }).to_string().as_bytes())
}

#[test]
fn every_usable_signing_key_is_loaded() {
    let (set, skipped) = parse(test_jwks()).unwrap();
    assert_eq!((set.len(), skipped), (4, 0));
    assert!(set.contains(test_keys::RSA_A_KID));
    assert!(set.contains(test_keys::ED25519_KID));
}

#[test]
fn odd_keys_are_skipped_and_counted_not_fatal() {
    let mut keys = test_jwks();
    let mut weak = keys[0].clone();
    weak["kid"] = json!("weak");
    weak["n"] = json!("AQAB"); // a 17-bit modulus
    let mut encryption = keys[1].clone();
    encryption["kid"] = json!("enc");
    encryption["use"] = json!("enc");
    keys.extend([
        weak,
        encryption,
        json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}),
        json!({"kty": "weird", "kid": "unknown-type"}),
        json!("not an object"),
    ]);
    let (set, skipped) = parse(keys).unwrap();
    assert_eq!((set.len(), skipped), (4, 5));
    for kid in ["weak", "enc", "hmac", "unknown-type"] {
        assert!(!set.contains(kid), "{kid} must not be usable");
    }
}

#[test]
fn a_document_without_a_usable_key_is_refused() {
    let hmac_only = vec![json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"})];
    assert!(
        parse(hmac_only)
            .unwrap_err()
            .contains("no usable signing key")
    );
    assert!(parse(Vec::new()).is_err());
    for body in [&b"{}"[..], b"[]", b"<html>", b"", b"{\"keys\": 3}"] {
        assert!(
            parse_key_set(body)
                .unwrap_err()
                .starts_with("not a JWK set")
        );
    }
}
