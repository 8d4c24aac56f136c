//! Table of bad tokens, each with the exact `TokenError` it must produce.
//!
//! Every case starts from a token the verifier accepts (checked first) and breaks one thing,
//! so each rejection is caused by that one thing. Claims-level cases are correctly signed,
//! since the signature is checked before the claims are read.

#![allow(clippy::unwrap_used, clippy::panic)] // test helpers outside `#[test]` fns: a failure here is a test failure.

use authcache_jwt::jwk::JwkSet;
use authcache_jwt::{Algorithm, JwtVerifier, Malformed, TokenError, TokenIssuer, test_keys};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use serde_json::{Value, json};

const NOW: u64 = 1_700_000_000;
const ISS: &str = "https://id.test";
const AUD: &str = "api";

fn claims() -> Value {
    json!({"sub": "user-1", "exp": NOW + 600, "iat": NOW, "iss": ISS, "aud": AUD, "roles": ["a"]})
}

fn with(field: &str, value: Value) -> Value {
    let mut c = claims();
    c[field] = value;
    c
}

fn without(field: &str) -> Value {
    let mut c = claims();
    c.as_object_mut().unwrap().remove(field);
    c
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RS256 (key "A") over the exact header and claims segments given.
fn signed_segments(header_segment: &str, claims_segment: &str) -> String {
    let key = EncodingKey::from_rsa_pem(test_keys::RSA_A_PRIVATE_PEM.as_bytes()).unwrap();
    let message = format!("{header_segment}.{claims_segment}");
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::RS256).unwrap();
    format!("{message}.{sig}")
}

/// RS256 (key "A") with a raw header JSON text and raw claims JSON text.
fn signed_raw(header_json: &str, claims_json: &str) -> String {
    signed_segments(&b64(header_json), &b64(claims_json))
}

fn rs(payload: &Value) -> String {
    TokenIssuer::test_rs256().sign_payload(payload).unwrap()
}

fn good() -> String {
    rs(&claims())
}

fn unsigned(alg: &str) -> String {
    format!(
        "{}.{}.",
        b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#)),
        b64(claims().to_string())
    )
}

/// The header segment with a non-zero spare bit in its last base64url character.
fn header_with_trailing_bits() -> String {
    let header = r#"{"alg":"RS256", "typ":"JWT"}"#; // 28 bytes: 28 % 3 == 1 leaves 4 spare bits
    let mut chars: Vec<u8> = b64(header).into_bytes();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = chars.len() - 1;
    let index = alphabet.iter().position(|&c| c == chars[last]).unwrap();
    chars[last] = alphabet[index | 1];
    String::from_utf8(chars).unwrap()
}

#[derive(Clone, Copy)]
enum V {
    /// RS256 with key "A", issuer and audience set.
    Rs,
    /// HS256 with the test secret, issuer and audience set.
    Hs,
    /// The JWK set of `test_keys::jwks()`, issuer and audience set.
    Jwks,
}

fn verifier(v: V) -> JwtVerifier {
    let base = match v {
        V::Rs => JwtVerifier::test_rs256(),
        V::Hs => JwtVerifier::test_hs256(),
        V::Jwks => JwtVerifier::from_jwks(&test_keys::jwks().unwrap()).unwrap(),
    };
    base.issuer(ISS).audience(AUD)
}

fn malformed(m: Malformed) -> TokenError {
    TokenError::Malformed(m)
}

fn invalid(claim: &'static str, reason: &'static str) -> TokenError {
    TokenError::InvalidClaim { claim, reason }
}

const NUMERIC: &str = "expected a non-negative NumericDate";
const STRING: &str = "expected a string";

#[allow(clippy::too_many_lines)]
fn table() -> Vec<(&'static str, V, Vec<u8>, TokenError)> {
    let good = good();
    let parts: Vec<&str> = good.split('.').collect();
    let other_sig = rs(&with("sub", json!("admin")));
    let other_sig = other_sig.rsplit('.').next().unwrap();
    let jwks_rs = |kid: &str, issuer: TokenIssuer| issuer.kid(kid).sign_payload(&claims()).unwrap();
    let confusion_key = test_keys::RSA_A_PUBLIC_PEM.as_bytes();
    let s = |t: &str| t.as_bytes().to_vec();
    vec![
        // Presentation: empty, whitespace, scheme.
        ("empty", V::Rs, s(""), malformed(Malformed::Empty)),
        (
            "one space",
            V::Rs,
            s(" "),
            malformed(Malformed::InvalidCharacter),
        ),
        (
            "whitespace",
            V::Rs,
            s(" \t\r\n"),
            malformed(Malformed::InvalidCharacter),
        ),
        (
            "Bearer alone",
            V::Rs,
            s("Bearer"),
            malformed(Malformed::Empty),
        ),
        (
            "Bearer and a space",
            V::Rs,
            s("Bearer "),
            malformed(Malformed::Empty),
        ),
        (
            "bearer alone, lower case",
            V::Rs,
            s("bearer"),
            malformed(Malformed::Empty),
        ),
        (
            "Bearer, two spaces",
            V::Rs,
            s(&format!("Bearer  {good}")),
            malformed(Malformed::InvalidCharacter),
        ),
        (
            "Bearer, two tokens",
            V::Rs,
            s(&format!("Bearer {good} {good}")),
            malformed(Malformed::InvalidCharacter),
        ),
        (
            "Bearer, tab",
            V::Rs,
            s(&format!("Bearer\t{good}")),
            malformed(Malformed::InvalidCharacter),
        ),
        (
            "Basic scheme",
            V::Rs,
            s(&format!("Basic {good}")),
            malformed(Malformed::InvalidCharacter),
        ),
        (
            "trailing newline",
            V::Rs,
            s(&format!("{good}\n")),
            malformed(Malformed::InvalidCharacter),
        ),
        // Size: rejected before decoding, whatever the bytes.
        (
            "8 KiB + 1",
            V::Rs,
            vec![b'a'; 8 * 1024 + 1],
            TokenError::TooLarge {
                size: 8193,
                max: 8192,
            },
        ),
        (
            "1 MiB",
            V::Rs,
            vec![0xff; 1 << 20],
            TokenError::TooLarge {
                size: 1 << 20,
                max: 8192,
            },
        ),
        (
            "Bearer + 8 KiB + 1",
            V::Rs,
            [b"Bearer ".as_slice(), &[b'.'; 8193]].concat(),
            TokenError::TooLarge {
                size: 8193,
                max: 8192,
            },
        ),
        // Characters and segments.
        (
            "non-ASCII",
            V::Rs,
            s(&format!("{}é.{}.{}", parts[0], parts[1], parts[2])),
            malformed(Malformed::InvalidCharacter),
        ),
        (
            "NUL byte",
            V::Rs,
            [good.as_bytes(), b"\0"].concat(),
            malformed(Malformed::InvalidCharacter),
        ),
        (
            "standard base64 +",
            V::Rs,
            s(&format!("{}+.{}.{}", parts[0], parts[1], parts[2])),
            malformed(Malformed::InvalidCharacter),
        ),
        (
            "standard base64 /",
            V::Rs,
            s(&format!("{}.{}/.{}", parts[0], parts[1], parts[2])),
            malformed(Malformed::InvalidCharacter),
        ),
        (
            "padded base64",
            V::Rs,
            s(&format!("{}=.{}.{}", parts[0], parts[1], parts[2])),
            malformed(Malformed::InvalidCharacter),
        ),
        (
            "1 segment",
            V::Rs,
            s(parts[0]),
            malformed(Malformed::SegmentCount),
        ),
        (
            "2 segments",
            V::Rs,
            s(&format!("{}.{}", parts[0], parts[1])),
            malformed(Malformed::SegmentCount),
        ),
        (
            "4 segments",
            V::Rs,
            s(&format!("{good}.{}", parts[2])),
            malformed(Malformed::SegmentCount),
        ),
        (
            "three empty segments",
            V::Rs,
            s(".."),
            malformed(Malformed::HeaderJson),
        ),
        // Header.
        (
            "header of impossible length",
            V::Rs,
            s(&format!("a{}.{}.{}", parts[0], parts[1], parts[2])),
            malformed(Malformed::HeaderEncoding),
        ),
        (
            "header with spare bits set",
            V::Rs,
            s(&format!(
                "{}.{}.{}",
                header_with_trailing_bits(),
                parts[1],
                parts[2]
            )),
            malformed(Malformed::HeaderEncoding),
        ),
        (
            "header not JSON",
            V::Rs,
            s(&format!("{}.{}.{}", b64("not json"), parts[1], parts[2])),
            malformed(Malformed::HeaderJson),
        ),
        (
            "header a JSON array",
            V::Rs,
            s(&format!(
                "{}.{}.{}",
                b64(r#"["RS256"]"#),
                parts[1],
                parts[2]
            )),
            malformed(Malformed::HeaderJson),
        ),
        (
            "header without alg",
            V::Rs,
            s(&signed_raw(r#"{"typ":"JWT"}"#, &claims().to_string())),
            malformed(Malformed::HeaderJson),
        ),
        (
            "alg a number",
            V::Rs,
            s(&signed_raw(r#"{"alg":256}"#, &claims().to_string())),
            malformed(Malformed::HeaderJson),
        ),
        (
            "alg twice",
            V::Rs,
            s(&signed_raw(
                r#"{"alg":"RS256","alg":"HS256"}"#,
                &claims().to_string(),
            )),
            malformed(Malformed::HeaderJson),
        ),
        (
            "crit header",
            V::Rs,
            s(&signed_raw(
                r#"{"alg":"RS256","crit":["b64"],"b64":false}"#,
                &claims().to_string(),
            )),
            malformed(Malformed::CriticalHeader),
        ),
        // Algorithms.
        (
            "alg none",
            V::Rs,
            s(&unsigned("none")),
            TokenError::UnsupportedAlgorithm("none".into()),
        ),
        (
            "alg None",
            V::Rs,
            s(&unsigned("None")),
            TokenError::UnsupportedAlgorithm("None".into()),
        ),
        (
            "alg NONE",
            V::Rs,
            s(&unsigned("NONE")),
            TokenError::UnsupportedAlgorithm("NONE".into()),
        ),
        (
            "alg none, HS256 verifier",
            V::Hs,
            s(&unsigned("none")),
            TokenError::UnsupportedAlgorithm("none".into()),
        ),
        (
            "alg hs256, wrong case",
            V::Rs,
            s(&unsigned("hs256")),
            TokenError::UnsupportedAlgorithm("hs256".into()),
        ),
        (
            "alg PS512, not supported",
            V::Rs,
            s(&unsigned("PS512")),
            TokenError::UnsupportedAlgorithm("PS512".into()),
        ),
        (
            "algorithm confusion: HS256 keyed with the RS256 public key",
            V::Rs,
            s(&TokenIssuer::hs256(confusion_key)
                .sign_payload(&claims())
                .unwrap()),
            TokenError::DisallowedAlgorithm(Algorithm::HS256),
        ),
        (
            "ES256 token, RS256 verifier",
            V::Rs,
            s(&TokenIssuer::test_es256().sign_payload(&claims()).unwrap()),
            TokenError::DisallowedAlgorithm(Algorithm::ES256),
        ),
        (
            "RS256 token, HS256 verifier",
            V::Hs,
            s(&good),
            TokenError::DisallowedAlgorithm(Algorithm::RS256),
        ),
        // Signatures.
        (
            "RS256 signed by another key",
            V::Rs,
            s(&TokenIssuer::test_rs256_other()
                .sign_payload(&claims())
                .unwrap()),
            TokenError::BadSignature,
        ),
        (
            "HS256 with another secret",
            V::Hs,
            s(&TokenIssuer::hs256(b"another secret")
                .sign_payload(&claims())
                .unwrap()),
            TokenError::BadSignature,
        ),
        (
            "signature removed",
            V::Rs,
            s(&format!("{}.{}.", parts[0], parts[1])),
            TokenError::BadSignature,
        ),
        (
            "signature of other claims",
            V::Rs,
            s(&format!("{}.{}.{other_sig}", parts[0], parts[1])),
            TokenError::BadSignature,
        ),
        (
            "claims swapped under a signature",
            V::Rs,
            s(&format!(
                "{}.{}.{}",
                parts[0],
                b64(with("sub", json!("admin")).to_string()),
                parts[2]
            )),
            TokenError::BadSignature,
        ),
        (
            "signature of impossible length",
            V::Rs,
            s(&format!("{good}AAA")),
            malformed(Malformed::SignatureEncoding),
        ),
        // Claims structure (correctly signed).
        (
            "claims of impossible length",
            V::Rs,
            s(&signed_segments(parts[0], "a")),
            malformed(Malformed::ClaimsEncoding),
        ),
        (
            "claims not JSON",
            V::Rs,
            s(&signed_raw(r#"{"alg":"RS256"}"#, "hello")),
            malformed(Malformed::ClaimsJson),
        ),
        (
            "claims a JSON array",
            V::Rs,
            s(&signed_raw(r#"{"alg":"RS256"}"#, "[1,2]")),
            malformed(Malformed::ClaimsJson),
        ),
        (
            "claims with trailing bytes",
            V::Rs,
            s(&signed_raw(
                r#"{"alg":"RS256"}"#,
                &format!("{} x", claims()),
            )),
            malformed(Malformed::ClaimsJson),
        ),
        (
            "sub twice",
            V::Rs,
            s(&signed_raw(
                r#"{"alg":"RS256"}"#,
                &format!(r#"{{"sub":"user-1","sub":"admin","exp":{}}}"#, NOW + 60),
            )),
            malformed(Malformed::DuplicateClaim),
        ),
        // Claim types and values.
        (
            "exp as a string",
            V::Rs,
            s(&rs(&with("exp", json!((NOW + 600).to_string())))),
            invalid("exp", NUMERIC),
        ),
        (
            "exp negative",
            V::Rs,
            s(&rs(&with("exp", json!(-1)))),
            invalid("exp", NUMERIC),
        ),
        (
            "nbf a boolean",
            V::Rs,
            s(&rs(&with("nbf", json!(true)))),
            invalid("nbf", NUMERIC),
        ),
        (
            "sub as a number",
            V::Rs,
            s(&rs(&with("sub", json!(42)))),
            invalid("sub", STRING),
        ),
        (
            "iss as an array",
            V::Rs,
            s(&rs(&with("iss", json!([ISS])))),
            invalid("iss", STRING),
        ),
        (
            "aud as a number",
            V::Rs,
            s(&rs(&with("aud", json!(7)))),
            invalid("aud", "expected a string or an array of strings"),
        ),
        (
            "missing sub",
            V::Rs,
            s(&rs(&without("sub"))),
            TokenError::MissingClaim("sub"),
        ),
        (
            "missing exp",
            V::Rs,
            s(&rs(&without("exp"))),
            TokenError::MissingClaim("exp"),
        ),
        (
            "empty sub",
            V::Rs,
            s(&rs(&with("sub", json!("")))),
            invalid("sub", "empty"),
        ),
        (
            "sub with NUL",
            V::Rs,
            s(&rs(&with("sub", json!("user\u{0}1")))),
            invalid("sub", "contains whitespace or a control character"),
        ),
        (
            "sub with newline",
            V::Rs,
            s(&rs(&with("sub", json!("user\n1")))),
            invalid("sub", "contains whitespace or a control character"),
        ),
        (
            "sub of 257 bytes",
            V::Rs,
            s(&rs(&with("sub", json!("u".repeat(257))))),
            invalid("sub", "longer than 256 bytes"),
        ),
        // Time.
        (
            "expired just beyond the leeway",
            V::Rs,
            s(&rs(&with("exp", json!(NOW - 31)))),
            TokenError::Expired,
        ),
        (
            "expired long ago",
            V::Rs,
            s(&rs(&with("exp", json!(0)))),
            TokenError::Expired,
        ),
        (
            "nbf in the future",
            V::Rs,
            s(&rs(&with("nbf", json!(NOW + 31)))),
            TokenError::NotYetValid,
        ),
        // Issuer and audience.
        (
            "wrong iss",
            V::Rs,
            s(&rs(&with("iss", json!("https://evil.test")))),
            TokenError::WrongIssuer,
        ),
        (
            "missing iss",
            V::Rs,
            s(&rs(&without("iss"))),
            TokenError::MissingClaim("iss"),
        ),
        (
            "wrong aud",
            V::Rs,
            s(&rs(&with("aud", json!("other")))),
            TokenError::WrongAudience,
        ),
        (
            "wrong aud list",
            V::Rs,
            s(&rs(&with("aud", json!(["x", "y"])))),
            TokenError::WrongAudience,
        ),
        (
            "empty aud list",
            V::Rs,
            s(&rs(&with("aud", json!([])))),
            TokenError::MissingClaim("aud"),
        ),
        (
            "missing aud",
            V::Rs,
            s(&rs(&without("aud"))),
            TokenError::MissingClaim("aud"),
        ),
        // Key sets.
        (
            "unknown kid",
            V::Jwks,
            s(&jwks_rs("nope", TokenIssuer::test_rs256())),
            TokenError::UnknownKeyId("nope".into()),
        ),
        (
            "no kid, several keys",
            V::Jwks,
            s(&good),
            TokenError::MissingKeyId,
        ),
        (
            "kid of the other RSA key",
            V::Jwks,
            s(&jwks_rs(test_keys::RSA_B_KID, TokenIssuer::test_rs256())),
            TokenError::BadSignature,
        ),
        (
            "kid of an ES256 key, RS256 token",
            V::Jwks,
            s(&jwks_rs(test_keys::EC_P256_KID, TokenIssuer::test_rs256())),
            TokenError::DisallowedAlgorithm(Algorithm::RS256),
        ),
        (
            "HS256 token in an asymmetric key set",
            V::Jwks,
            s(&jwks_rs(test_keys::RSA_A_KID, TokenIssuer::test_hs256())),
            TokenError::DisallowedAlgorithm(Algorithm::HS256),
        ),
    ]
}

#[test]
fn the_base_tokens_are_valid() {
    assert_eq!(
        verifier(V::Rs).verify_at(good(), NOW).unwrap().sub,
        "user-1"
    );
    let hs = TokenIssuer::test_hs256().sign_payload(&claims()).unwrap();
    assert_eq!(verifier(V::Hs).verify_at(hs, NOW).unwrap().sub, "user-1");
    let kid = TokenIssuer::test_rs256()
        .kid(test_keys::RSA_A_KID)
        .sign_payload(&claims())
        .unwrap();
    assert_eq!(verifier(V::Jwks).verify_at(kid, NOW).unwrap().sub, "user-1");
    let raw = signed_raw(r#"{"alg":"RS256"}"#, &claims().to_string());
    assert_eq!(verifier(V::Rs).verify_at(raw, NOW).unwrap().sub, "user-1");
}

#[test]
fn every_bad_token_gets_its_own_error() {
    let verifiers = [V::Rs, V::Hs, V::Jwks].map(verifier);
    let table = table();
    assert!(table.len() >= 40, "only {} cases", table.len());
    let mut failures = Vec::new();
    for (name, v, token, expected) in &table {
        let got = verifiers[*v as usize].verify_at(token, NOW);
        if got.as_ref().err() != Some(expected) {
            failures.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
}

#[test]
fn jwks_json_with_encryption_keys_only_is_refused() {
    let mut set: JwkSet = test_keys::jwks().unwrap();
    for key in &mut set.keys {
        key.common.public_key_use = Some(authcache_jwt::jwk::PublicKeyUse::Encryption);
    }
    assert!(JwtVerifier::from_jwks(&set).unwrap_err().is_configuration());
}
