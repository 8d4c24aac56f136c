//! Unit tests of `keys`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::*;
use crate::verifier::ensure_crypto_provider;

#[test]
fn bit_length_ignores_leading_zero_bytes() {
    assert_eq!(bit_length(&[]), 0);
    assert_eq!(bit_length(&[0, 0]), 0);
    assert_eq!(bit_length(&[0, 1]), 1);
    assert_eq!(bit_length(&[0, 0x80, 0]), 16);
    assert_eq!(bit_length(&[0xff; 256]), 2048);
}

#[test]
fn oct_jwks_under_32_bytes_are_refused() {
    ensure_crypto_provider();
    for (bytes, ok) in [(0, false), (31, false), (32, true)] {
        let jwk: Jwk = serde_json::from_value(json!({
            "kty": "oct", "alg": "HS256", "k": URL_SAFE_NO_PAD.encode(vec![7_u8; bytes]),
        }))
        .unwrap();
        let result = load_jwk(&jwk);
        assert_eq!(result.is_ok(), ok, "{bytes} bytes: {:?}", result.err());
        if !ok {
            assert!(result.err().unwrap().to_string().contains("at least 32"));
        }
    }
}

#[test]
fn rsa_keys_under_2048_bits_are_refused() {
    ensure_crypto_provider();
    for (bytes, ok) in [(128, false), (255, false), (256, true)] {
        let mut n = vec![0xc5_u8; bytes];
        n[bytes - 1] |= 1;
        let jwk: Jwk = serde_json::from_value(json!({
            "kty": "RSA", "kid": "k", "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(&n), "e": "AQAB",
        }))
        .unwrap();
        let result = load_jwk(&jwk);
        assert_eq!(result.is_ok(), ok, "{bytes} bytes: {:?}", result.err());
        if !ok {
            assert!(result.err().unwrap().to_string().contains("2048 bits"));
        }
    }
}
