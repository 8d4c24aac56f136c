//! ECDSA signature twins: `(r, s)` and `(r, n − s)` both verify under plain ECDSA, so one
//! ES256/ES384 token has two encodings with two fingerprints. The verifier accepts only the
//! low-S one, the issuer only produces that one, and [`revocation_id`] is the same for both.
//!
//! The twin is computed here with a schoolbook subtraction on the curve order, independently
//! of the crate's own arithmetic.

#![allow(clippy::unwrap_used, clippy::panic)] // test helpers outside `#[test]` fns: a failure here is a test failure.

use std::cmp::Ordering;

use authcache_jwt::{
    Algorithm, Claims, JwtVerifier, TokenError, TokenIssuer, fingerprint, revocation_id, test_keys,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, EncodingKey, Header};

const NOW: u64 = 1_700_000_000;
const ISS: &str = "https://id.test";

const P256_ORDER: &str = "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551";
const P384_ORDER: &str = concat!(
    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
    "C7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
);

const ALGORITHMS: [Algorithm; 2] = [Algorithm::ES256, Algorithm::ES384];

fn pems(alg: Algorithm) -> (&'static str, &'static str) {
    match alg {
        Algorithm::ES256 => (
            test_keys::EC_P256_PRIVATE_PEM,
            test_keys::EC_P256_PUBLIC_PEM,
        ),
        Algorithm::ES384 => (
            test_keys::EC_P384_PRIVATE_PEM,
            test_keys::EC_P384_PUBLIC_PEM,
        ),
        _ => panic!("not an ECDSA algorithm: {alg:?}"),
    }
}

fn issuer(alg: Algorithm) -> TokenIssuer {
    TokenIssuer::from_pem(alg, pems(alg).0).unwrap()
}

fn verifier(alg: Algorithm) -> JwtVerifier {
    JwtVerifier::from_pem(alg, pems(alg).1).unwrap()
}

fn order(alg: Algorithm) -> Vec<u8> {
    hex::decode(match alg {
        Algorithm::ES256 => P256_ORDER,
        _ => P384_ORDER,
    })
    .unwrap()
}

fn claims(sub: &str, iss: Option<&str>, jti: Option<&str>) -> Claims {
    let mut c = Claims::new(sub, NOW + 600);
    c.iat = Some(NOW);
    c.iss = iss.map(Into::into);
    c.jti = jti.map(Into::into);
    c
}

/// `a − b` for big-endian integers of equal width, `a ≥ b`.
fn sub_be(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; a.len()];
    let mut borrow = 0i16;
    for i in (0..a.len()).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = i16::from(d < 0);
        d += 256 * borrow;
        out[i] = u8::try_from(d).unwrap();
    }
    assert_eq!(borrow, 0, "a < b");
    out
}

/// `(header.payload, r, s)` of an ECDSA token.
fn parts(token: &str) -> (&str, Vec<u8>, Vec<u8>) {
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let (r, s) = sig.split_at(sig.len() / 2);
    (signed, r.to_vec(), s.to_vec())
}

/// The same token under the twin signature `(r, n − s)`.
fn twin(token: &str, alg: Algorithm) -> String {
    let (signed, r, s) = parts(token);
    let sig = [r, sub_be(&order(alg), &s)].concat();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// `s > n/2`, i.e. `s > n − s` (equal widths: big-endian bytes compare as integers).
fn is_high_s(token: &str, alg: Algorithm) -> bool {
    let (_, _, s) = parts(token);
    s.as_slice().cmp(&sub_be(&order(alg), &s)) == Ordering::Greater
}

/// What plain ECDSA (jsonwebtoken, without the low-S rule) says of the signature.
fn plain_ecdsa_accepts(token: &str, alg: Algorithm) -> bool {
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let key = DecodingKey::from_ec_pem(pems(alg).1.as_bytes()).unwrap();
    jsonwebtoken::crypto::verify(sig, signed.as_bytes(), &key, alg).unwrap()
}

/// A token straight from jsonwebtoken's signer, which does not normalise `s`.
fn raw_token(alg: Algorithm, claims: &Claims) -> String {
    let key = EncodingKey::from_ec_pem(pems(alg).0.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(alg), &claims.to_jwt_payload(), &key).unwrap()
}

/// (a) Whichever twin the signer happened to produce, the high-S one is refused and the
/// low-S one verifies — though plain ECDSA accepts both.
#[test]
fn high_s_twin_is_refused_whichever_the_signer_produced() {
    for alg in ALGORITHMS {
        let verifier = verifier(alg);
        let mut seen = [false; 2];
        // RFC 6979 nonces are deterministic: these tokens and their `s` are fixed.
        for i in 0..16 {
            let c = claims(&format!("user-{i}"), Some(ISS), None);
            let produced = raw_token(alg, &c);
            let other = twin(&produced, alg);
            seen[usize::from(is_high_s(&produced, alg))] = true;
            let (low, high) = if is_high_s(&produced, alg) {
                (other, produced)
            } else {
                (produced, other)
            };
            assert!(!is_high_s(&low, alg) && is_high_s(&high, alg));
            assert!(plain_ecdsa_accepts(&low, alg) && plain_ecdsa_accepts(&high, alg));
            assert_eq!(
                verifier.verify_at(&high, NOW),
                Err(TokenError::BadSignature)
            );
            assert_eq!(verifier.verify_at(&low, NOW), Ok(c), "{alg:?}");
        }
        assert_eq!(seen, [true, true], "{alg:?}: the signer made both kinds");
    }
}

/// (b) Our issuer only produces the low-S twin, so its tokens always verify.
#[test]
fn issuer_signs_low_s_only_and_its_tokens_verify() {
    for alg in ALGORITHMS {
        let (issuer, verifier) = (issuer(alg), verifier(alg));
        for i in 0..32 {
            let c = claims(&format!("user-{i}"), Some(ISS), Some(&format!("t-{i}")));
            let token = issuer.sign(&c).unwrap();
            assert!(!is_high_s(&token, alg), "{alg:?} user-{i}");
            assert_eq!(verifier.verify_at(&token, NOW), Ok(c));
            assert_eq!(
                verifier.verify_at(twin(&token, alg), NOW),
                Err(TokenError::BadSignature)
            );
        }
    }
}

/// `test_keys::ecdsa_twin` (the helper other crates' tests use) agrees with this file's own
/// computation, is its own inverse, keeps a `Bearer ` scheme, and refuses non-ECDSA tokens.
#[test]
fn the_test_keys_twin_helper_agrees_with_an_independent_computation() {
    for alg in ALGORITHMS {
        let token = issuer(alg).sign(&claims("u", None, None)).unwrap();
        let twin_of = test_keys::ecdsa_twin(&token).unwrap();
        assert_eq!(twin_of, twin(&token, alg), "{alg:?}");
        assert_eq!(
            test_keys::ecdsa_twin(&twin_of).as_deref(),
            Some(token.as_str())
        );
        let bearer = format!("Bearer {token}");
        assert_eq!(
            test_keys::ecdsa_twin(&bearer),
            Some(format!("Bearer {twin_of}"))
        );
    }
    let hs256 = TokenIssuer::test_hs256()
        .sign(&claims("u", None, None))
        .unwrap();
    assert_eq!(test_keys::ecdsa_twin(&hs256), None);
}

/// (c) Both encodings of one token share a revocation id but not a fingerprint, with and
/// without `jti`.
#[test]
fn twins_share_revocation_id_but_not_fingerprint() {
    for alg in ALGORITHMS {
        for jti in [None, Some("t-1")] {
            let c = claims("user-1", Some(ISS), jti);
            let token = issuer(alg).sign(&c).unwrap();
            let verified = verifier(alg).verify_at(&token, NOW).unwrap();
            let high = twin(&token, alg);
            assert_ne!(fingerprint(&token), fingerprint(&high));
            assert_eq!(
                revocation_id(&token, &verified),
                revocation_id(&high, &verified),
                "{alg:?} {jti:?}"
            );
            assert_eq!(
                revocation_id(&format!("Bearer {high}"), &verified),
                revocation_id(&token, &verified)
            );
        }
    }
}

/// (d) With a `jti`, the id is (iss, jti): the same across different tokens, keys and
/// encodings, different as soon as either differs.
#[test]
fn revocation_id_with_jti_is_issuer_and_token_id() {
    let id = |alg: Algorithm, sub: &str, iss: &str, jti: &str| {
        let token = issuer(alg)
            .sign(&claims(sub, Some(iss), Some(jti)))
            .unwrap();
        let verified = verifier(alg).verify_at(&token, NOW).unwrap();
        (revocation_id(&token, &verified), fingerprint(&token))
    };
    let (a, a_fp) = id(Algorithm::ES256, "user-1", ISS, "t-1");
    let (b, b_fp) = id(Algorithm::ES384, "user-2", ISS, "t-1");
    assert_ne!(a_fp, b_fp);
    assert_eq!(a, b);
    assert_ne!(a, id(Algorithm::ES256, "user-1", ISS, "t-2").0);
    assert_ne!(
        a,
        id(Algorithm::ES256, "user-1", "https://other.test", "t-1").0
    );
}

/// (e) A revocation id is never the fingerprint of its token, in any of its forms.
#[test]
fn revocation_id_never_equals_fingerprint() {
    for alg in ALGORITHMS {
        for jti in [None, Some("t-1")] {
            let token = issuer(alg).sign(&claims("user-1", None, jti)).unwrap();
            let verified = verifier(alg).verify_at(&token, NOW).unwrap();
            let id = revocation_id(&token, &verified);
            assert_eq!(id.len(), 64);
            assert!(id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
            let (signed, _) = token.rsplit_once('.').unwrap();
            for form in [token.clone(), twin(&token, alg), signed.to_owned()] {
                assert_ne!(id, fingerprint(&form), "{alg:?} {jti:?}");
            }
        }
    }
}
