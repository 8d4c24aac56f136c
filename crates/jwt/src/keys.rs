//! Verification keys: loading JWKs safely, and sets of keys chosen by `kid`.

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};

use crate::error::{Result, TokenError};
use crate::verifier::{SUPPORTED_ALGORITHMS, check_supported};

/// One key, and the algorithms it may verify.
#[derive(Debug, Clone)]
pub(crate) struct VerifyingKey {
    pub(crate) kid: Option<String>,
    pub(crate) key: DecodingKey,
    /// The JWK's `alg`, when it declares one: the key then verifies that algorithm only.
    pub(crate) declared: Option<Algorithm>,
}

impl VerifyingKey {
    /// A key that verifies every algorithm of its family (PEM, DER and secrets).
    pub(crate) fn undeclared(key: DecodingKey) -> Self {
        Self {
            kid: None,
            key,
            declared: None,
        }
    }

    pub(crate) fn accepts(&self, alg: Algorithm) -> bool {
        self.key.family() == alg.family() && self.declared.is_none_or(|d| d == alg)
    }

    /// The same key under the same `kid`, for the same algorithms: whatever one verified, the
    /// other verifies too.
    #[cfg(feature = "jwks")]
    fn same_as(&self, other: &Self) -> bool {
        let same_material = match (self.key.kind(), other.key.kind()) {
            (DecodingKeyKind::SecretOrDer(a), DecodingKeyKind::SecretOrDer(b)) => a == b,
            (
                DecodingKeyKind::RsaModulusExponent { n, e },
                DecodingKeyKind::RsaModulusExponent { n: n2, e: e2 },
            ) => n == n2 && e == e2,
            _ => false,
        };
        self.kid == other.kid
            && self.declared == other.declared
            && self.key.family() == other.key.family()
            && same_material
    }
}

/// Keys chosen by the token's `kid`; a token without `kid` is accepted only when the set holds
/// exactly one key.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeySet {
    keys: Vec<VerifyingKey>,
}

impl KeySet {
    /// Every signing key of `set`, strictly: a broken signing key is an error, so a typo in a
    /// configured set fails at start-up rather than on the first token. Returns the set and
    /// the union of its keys' algorithms.
    pub(crate) fn strict(set: &JwkSet) -> Result<(Self, Vec<Algorithm>)> {
        let mut keys = Vec::with_capacity(set.keys.len());
        let mut algorithms = Vec::new();
        for jwk in set.keys.iter().filter(|j| is_signing_key(j)) {
            let (key, alg) = load_jwk(jwk)?;
            if !algorithms.contains(&alg) {
                algorithms.push(alg);
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(TokenError::invalid_key(
                "the JWK set holds no usable signing key",
            ));
        }
        Ok((Self { keys }, algorithms))
    }

    /// The usable asymmetric signing keys of `jwks`, leniently: a key that cannot be used
    /// (broken, of an unknown type, for encryption, or an HMAC secret — a secret published in
    /// a key set is no secret) is skipped, not fatal, so one odd key an identity provider adds
    /// does not stop a rotation. Returns the set and how many keys were skipped.
    #[cfg(feature = "jwks")]
    pub(crate) fn lenient<'a>(jwks: impl IntoIterator<Item = &'a Jwk>) -> (Self, usize) {
        let mut keys = Vec::new();
        let mut skipped = 0;
        for jwk in jwks {
            let usable = is_signing_key(jwk)
                .then(|| load_jwk(jwk).ok())
                .flatten()
                .filter(|(_, alg)| alg.family() != AlgorithmFamily::Hmac);
            match usable {
                Some((key, _)) => keys.push(key),
                None => skipped += 1,
            }
        }
        (Self { keys }, skipped)
    }

    /// The key for a token's `kid`.
    pub(crate) fn select(&self, kid: Option<&str>) -> Result<&VerifyingKey> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or_else(|| TokenError::UnknownKeyId(shorten(kid))),
            None => match self.keys.as_slice() {
                [only] => Ok(only),
                _ => Err(TokenError::MissingKeyId),
            },
        }
    }

    #[cfg(feature = "jwks")]
    pub(crate) fn contains(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// `true` when every key of `older` is in this set unchanged: replacing `older` with
    /// this set takes nothing away that verified a token before.
    #[cfg(feature = "jwks")]
    pub(crate) fn covers(&self, older: &Self) -> bool {
        older
            .keys
            .iter()
            .all(|old| self.keys.iter().any(|new| new.same_as(old)))
    }

    #[cfg(feature = "jwks")]
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    #[cfg(feature = "jwks")]
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &VerifyingKey> {
        self.keys.iter()
    }
}

/// Attacker-chosen text kept in an error: at most 64 bytes, escaped.
fn shorten(text: &str) -> String {
    let mut end = text.len().min(64);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].escape_default().to_string()
}

fn is_signing_key(jwk: &Jwk) -> bool {
    let signing_use = !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption));
    let supported = !matches!(jwk.algorithm, AlgorithmParameters::Other(_));
    let alg_ok = jwk
        .common
        .key_algorithm
        .is_none_or(|a| key_algorithm(a).is_some_and(|a| SUPPORTED_ALGORITHMS.contains(&a)));
    signing_use && supported && alg_ok
}

/// Converts a JWK into a key and the algorithm it stands for, refusing any key the crypto
/// backend would reject (or, for short Ed25519 keys, panic on) at verification time.
pub(crate) fn load_jwk(jwk: &Jwk) -> Result<(VerifyingKey, Algorithm)> {
    let declared = match jwk.common.key_algorithm {
        Some(a) => Some(
            key_algorithm(a)
                .ok_or_else(|| TokenError::invalid_key(format!("JWK alg {a:?} cannot sign")))?,
        ),
        None => None,
    };
    let alg = match declared {
        Some(alg) => alg,
        None => default_algorithm(&jwk.algorithm)?,
    };
    check_supported(alg)?;
    let key = DecodingKey::from_jwk(jwk).map_err(TokenError::invalid_key)?;
    if key.family() != alg.family() {
        return Err(TokenError::invalid_key(format!(
            "JWK key type does not match {alg:?}"
        )));
    }
    match key.kind() {
        DecodingKeyKind::SecretOrDer(bytes) if alg.family() == AlgorithmFamily::Hmac => {
            check_hmac_secret(bytes)?;
        }
        DecodingKeyKind::SecretOrDer(bytes) if bytes.is_empty() => {
            return Err(TokenError::invalid_key("empty key material"));
        }
        DecodingKeyKind::RsaModulusExponent { n, .. } if bit_length(n) < MIN_RSA_BITS => {
            return Err(TokenError::invalid_key(format!(
                "an RSA key needs at least {MIN_RSA_BITS} bits (RFC 7518 §3.3)"
            )));
        }
        _ => {}
    }
    probe(&key, alg)?;
    Ok((
        VerifyingKey {
            kid: jwk.common.key_id.clone(),
            key,
            declared,
        },
        alg,
    ))
}

/// 32 bytes: RFC 7518 §3.2 requires an HMAC key at least as long as the hash output — 256
/// bits for HS256 — and a shorter shared secret can be brute-forced from one token.
/// Applied to every HMAC algorithm.
pub(crate) const MIN_HMAC_SECRET_BYTES: usize = 32;

/// Refuses an HMAC secret shorter than [`MIN_HMAC_SECRET_BYTES`], saying how long it is.
pub(crate) fn check_hmac_secret(secret: &[u8]) -> Result<()> {
    if secret.len() < MIN_HMAC_SECRET_BYTES {
        return Err(TokenError::invalid_key(format!(
            "HMAC secret is {} bytes; at least {MIN_HMAC_SECRET_BYTES} are required \
             (RFC 7518 §3.2)",
            secret.len()
        )));
    }
    Ok(())
}

/// 2048: RFC 7518 §3.3 requires it for RS*/PS*; shorter moduli can be factored, and whoever
/// factors a key in a fetched set signs as anyone.
const MIN_RSA_BITS: usize = 2048;

/// Bits of a big-endian unsigned integer, leading zero bytes aside.
fn bit_length(n: &[u8]) -> usize {
    let mut significant = n.iter().skip_while(|&&b| b == 0);
    match significant.next() {
        Some(first) => (8 - first.leading_zeros() as usize) + 8 * significant.count(),
        None => 0,
    }
}

/// The signature algorithm a JWK `alg` names (`None` for encryption algorithms).
fn key_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Algorithm::try_from(alg).ok()
}

fn default_algorithm(params: &AlgorithmParameters) -> Result<Algorithm> {
    match params {
        AlgorithmParameters::RSA(_) => Ok(Algorithm::RS256),
        AlgorithmParameters::OctetKey(_) => Ok(Algorithm::HS256),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Ok(Algorithm::ES256),
            EllipticCurve::P384 => Ok(Algorithm::ES384),
            _ => Err(TokenError::invalid_key("unsupported elliptic curve")),
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Ok(Algorithm::EdDSA)
        }
        _ => Err(TokenError::invalid_key("unsupported key type")),
    }
}

/// Runs the backend's key parsing once, so a broken key fails at construction and not on the
/// first request. Ed25519 keys must be exactly 32 bytes: the backend slices `[..32]` unchecked.
pub(crate) fn probe(key: &DecodingKey, alg: Algorithm) -> Result<()> {
    if alg.family() == AlgorithmFamily::Ed {
        let len = key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0);
        if len != 32 {
            return Err(TokenError::invalid_key("an Ed25519 public key is 32 bytes"));
        }
    }
    jsonwebtoken::crypto::verify("", b"", key, alg)
        .map(drop)
        .map_err(TokenError::invalid_key)
}

#[cfg(test)]
mod tests;
