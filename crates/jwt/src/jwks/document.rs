//! Reading a fetched JWK set document into a [`KeySet`], one key at a time.

use jsonwebtoken::jwk::Jwk;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::keys::KeySet;

/// `{"keys": [...]}`, each key kept as text so that one key this crate cannot parse is
/// skipped instead of failing the whole set.
#[derive(Deserialize)]
struct Document<'a> {
    #[serde(borrow)]
    keys: Vec<&'a RawValue>,
}

/// The usable signing keys of a JWK set document, and how many keys were skipped.
///
/// # Errors
///
/// Why the document is refused: not a JWK set, or no usable signing key in it (a set that
/// would leave the verifier without keys is never swapped in).
pub(crate) fn parse_key_set(body: &[u8]) -> Result<(KeySet, u64), String> {
    let document: Document<'_> =
        serde_json::from_slice(body).map_err(|e| format!("not a JWK set: {e}"))?;
    let parsed: Vec<Jwk> = document
        .keys
        .iter()
        .filter_map(|raw| serde_json::from_str(raw.get()).ok())
        .collect();
    let unparsed = document.keys.len() - parsed.len();
    let (set, unusable) = KeySet::lenient(&parsed);
    if set.is_empty() {
        return Err(format!(
            "the JWK set holds no usable signing key ({} keys)",
            document.keys.len()
        ));
    }
    Ok((set, (unparsed + unusable) as u64))
}

#[cfg(test)]
mod tests {
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
}
