//! Fixed key pairs for tests and benches (feature `test-keys`). **Test keys: never use them
//! in production** — the private halves are published in this crate's source.
//!
//! Generated once with `openssl genpkey` (RSA 2048, P-256, P-384, Ed25519) and checked in
//! under `src/testkeys/` as PEM, plus the DER/raw forms the infallible test constructors use
//! (RSA keys are never generated at run time: that is slow, unoptimised). The two RSA keys
//! let tests present a token "signed by another key".
//!
//! The `JwtVerifier::test_*` and `TokenIssuer::test_*` constructors over these keys live in
//! this module too, so that the one `test-keys` feature gate covers every published key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use crate::error::{Result, TokenError};
use crate::issuer::TokenIssuer;
use crate::verifier::{JwtVerifier, ensure_crypto_provider};

/// HMAC secret of [`TokenIssuer::test_hs256`](crate::TokenIssuer::test_hs256).
pub const HS256_SECRET: &[u8] = b"authcache-test-secret-never-use-in-production";

/// RSA 2048 key "A" (PKCS#8 private key, PEM).
pub const RSA_A_PRIVATE_PEM: &str = include_str!("testkeys/rsa_a.key.pem");
/// RSA key "A", public half (SPKI, PEM).
pub const RSA_A_PUBLIC_PEM: &str = include_str!("testkeys/rsa_a.pub.pem");
/// RSA 2048 key "B": the "other" key, for signatures that must not verify under "A".
pub const RSA_B_PRIVATE_PEM: &str = include_str!("testkeys/rsa_b.key.pem");
/// RSA key "B", public half (SPKI, PEM).
pub const RSA_B_PUBLIC_PEM: &str = include_str!("testkeys/rsa_b.pub.pem");
/// P-256 key for ES256 (PKCS#8 private key, PEM).
pub const EC_P256_PRIVATE_PEM: &str = include_str!("testkeys/ec_p256.key.pem");
/// P-256 public key (SPKI, PEM).
pub const EC_P256_PUBLIC_PEM: &str = include_str!("testkeys/ec_p256.pub.pem");
/// P-384 key for ES384 (PKCS#8 private key, PEM).
pub const EC_P384_PRIVATE_PEM: &str = include_str!("testkeys/ec_p384.key.pem");
/// P-384 public key (SPKI, PEM).
pub const EC_P384_PUBLIC_PEM: &str = include_str!("testkeys/ec_p384.pub.pem");
/// Ed25519 key for EdDSA (PKCS#8 private key, PEM).
pub const ED25519_PRIVATE_PEM: &str = include_str!("testkeys/ed25519.key.pem");
/// Ed25519 public key (SPKI, PEM).
pub const ED25519_PUBLIC_PEM: &str = include_str!("testkeys/ed25519.pub.pem");

/// `kid` of RSA key "A" in [`jwks`].
pub const RSA_A_KID: &str = "test-rsa-a";
/// `kid` of RSA key "B" in [`jwks`].
pub const RSA_B_KID: &str = "test-rsa-b";
/// `kid` of the P-256 key in [`jwks`].
pub const EC_P256_KID: &str = "test-ec-p256";
/// `kid` of the Ed25519 key in [`jwks`].
pub const ED25519_KID: &str = "test-ed25519";

const RSA_A_PRIVATE_DER: &[u8] = include_bytes!("testkeys/rsa_a.key.der");
const RSA_A_PUBLIC_DER: &[u8] = include_bytes!("testkeys/rsa_a.pub.der");
const RSA_B_PRIVATE_DER: &[u8] = include_bytes!("testkeys/rsa_b.key.der");
const EC_P256_PRIVATE_DER: &[u8] = include_bytes!("testkeys/ec_p256.key.der");
const EC_P256_PUBLIC_RAW: &[u8] = include_bytes!("testkeys/ec_p256.pub.raw");
const EC_P384_PRIVATE_DER: &[u8] = include_bytes!("testkeys/ec_p384.key.der");
const ED25519_PRIVATE_DER: &[u8] = include_bytes!("testkeys/ed25519.key.der");
const ED25519_PUBLIC_RAW: &[u8] = include_bytes!("testkeys/ed25519.pub.raw");

/// A JWK set of the public test keys (RSA "A" as RS256, RSA "B" as RS256, P-256 as ES256,
/// Ed25519 as EdDSA), each with its `kid`: for key-rotation tests.
///
/// # Errors
///
/// Only if the crypto backend cannot read the checked-in keys.
pub fn jwks() -> Result<JwkSet> {
    ensure_crypto_provider();
    let keys = [
        (
            RSA_A_KID,
            EncodingKey::from_rsa_der(RSA_A_PRIVATE_DER),
            Algorithm::RS256,
        ),
        (
            RSA_B_KID,
            EncodingKey::from_rsa_der(RSA_B_PRIVATE_DER),
            Algorithm::RS256,
        ),
        (
            EC_P256_KID,
            EncodingKey::from_ec_der(EC_P256_PRIVATE_DER),
            Algorithm::ES256,
        ),
        (
            ED25519_KID,
            EncodingKey::from_ed_der(ED25519_PRIVATE_DER),
            Algorithm::EdDSA,
        ),
    ];
    let keys = keys
        .into_iter()
        .map(|(kid, key, alg)| {
            let mut jwk = Jwk::from_encoding_key(&key, alg).map_err(TokenError::invalid_key)?;
            jwk.common.key_id = Some(kid.to_owned());
            Ok(jwk)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(JwkSet { keys })
}

/// The same ES256/ES384 token (bare or `Bearer …`) under its twin signature `(r, n − s)`:
/// as valid to plain ECDSA as the original, for tests that a verifier or a revocation is not
/// fooled by it. `None` when the token has no ECDSA signature of either curve.
pub fn ecdsa_twin(token: &str) -> Option<String> {
    let (scheme, token) = match token.strip_prefix("Bearer ") {
        Some(bare) => ("Bearer ", bare),
        None => ("", token),
    };
    let (signed, signature) = token.rsplit_once('.')?;
    let mut signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    crate::ecdsa::twin(&mut signature)
        .then(|| format!("{scheme}{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

#[cfg_attr(docsrs, doc(cfg(feature = "test-keys")))]
impl JwtVerifier {
    /// Verifier for [`TokenIssuer::test_hs256`]. Test key: never in production.
    pub fn test_hs256() -> Self {
        Self::hs256(HS256_SECRET)
    }

    /// Verifier for [`TokenIssuer::test_rs256`]. Test key: never in production.
    pub fn test_rs256() -> Self {
        ensure_crypto_provider();
        Self::single(
            DecodingKey::from_rsa_der(RSA_A_PUBLIC_DER),
            Algorithm::RS256,
        )
    }

    /// Verifier for [`TokenIssuer::test_es256`]. Test key: never in production.
    pub fn test_es256() -> Self {
        ensure_crypto_provider();
        Self::single(
            DecodingKey::from_ec_der(EC_P256_PUBLIC_RAW),
            Algorithm::ES256,
        )
    }

    /// Verifier for [`TokenIssuer::test_eddsa`]. Test key: never in production.
    pub fn test_eddsa() -> Self {
        ensure_crypto_provider();
        Self::single(
            DecodingKey::from_ed_der(ED25519_PUBLIC_RAW),
            Algorithm::EdDSA,
        )
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "test-keys")))]
impl TokenIssuer {
    /// HS256 with [`HS256_SECRET`]. Test key: never in production.
    pub fn test_hs256() -> Self {
        Self::hs256(HS256_SECRET)
    }

    /// RS256 with RSA key "A" ([`RSA_A_PRIVATE_PEM`]). Test key: never in production.
    pub fn test_rs256() -> Self {
        Self::new(
            Algorithm::RS256,
            EncodingKey::from_rsa_der(RSA_A_PRIVATE_DER),
        )
    }

    /// RS256 with RSA key "B": a well-formed signature that key "A" must reject. Test key.
    pub fn test_rs256_other() -> Self {
        Self::new(
            Algorithm::RS256,
            EncodingKey::from_rsa_der(RSA_B_PRIVATE_DER),
        )
    }

    /// ES256 with the P-256 test key. Test key: never in production.
    pub fn test_es256() -> Self {
        Self::new(
            Algorithm::ES256,
            EncodingKey::from_ec_der(EC_P256_PRIVATE_DER),
        )
    }

    /// ES384 with the P-384 test key. Test key: never in production.
    pub fn test_es384() -> Self {
        Self::new(
            Algorithm::ES384,
            EncodingKey::from_ec_der(EC_P384_PRIVATE_DER),
        )
    }

    /// EdDSA with the Ed25519 test key. Test key: never in production.
    pub fn test_eddsa() -> Self {
        Self::new(
            Algorithm::EdDSA,
            EncodingKey::from_ed_der(ED25519_PRIVATE_DER),
        )
    }
}
