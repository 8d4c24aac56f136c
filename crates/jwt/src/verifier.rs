//! [`JwtVerifier`]: strict verification of compact JWS tokens.

use std::time::Duration;

use jsonwebtoken::crypto::{CryptoProvider, rust_crypto};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use crate::claims::{Claims, RawHeader, parse_claims, starts_as_object};
use crate::ecdsa::check_low_s;
use crate::error::{Malformed, Result, TokenError};
#[cfg(feature = "jwks")]
use crate::jwks::RemoteKeys;
use crate::keys::{KeySet, VerifyingKey, check_hmac_secret, load_jwk, probe};
use crate::token::{
    DEFAULT_MAX_TOKEN_SIZE, Segments, check_subject, decode_segment, split, within_size,
};
use crate::ttl::unix_now;

/// The algorithms a verifier can be configured to accept (the `none` algorithm is not, and
/// never will be, one of them).
pub const SUPPORTED_ALGORITHMS: [Algorithm; 10] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// 30 s: covers ordinary clock drift between the issuer and this service without keeping
/// an expired token alive for long.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// 1 h: the most leeway a verifier takes ([`JwtVerifier::leeway`] caps it here). Far beyond
/// any real clock drift; more would keep expired tokens alive for hours, and every revocation
/// must outlive `exp` by the leeway, so an unbounded one (`Duration::MAX` accepts every
/// expired token) would also overflow the arithmetic of whoever keeps revocations.
pub const MAX_LEEWAY: Duration = Duration::from_secs(3600);

/// Verifies bearer tokens: size, structure, algorithm, key, signature, then claims.
///
/// Built once from a key (HMAC secret, PEM, JWK or JWK set — or, with feature `jwks`, a
/// remote key set kept current: `RemoteJwks`) and shared (`Clone` is cheap
/// enough; wrap it in an `Arc` to share one copy). The allow-list of algorithms is explicit:
/// by default exactly the algorithm of the key (or the `alg` of each JWK), never `none`, and
/// a token is verified only with a key of its algorithm's family, so an HS256 token cannot be
/// checked against an RSA public key used as an HMAC secret.
///
/// Checks, in order: size (before any decoding) → alphabet and three segments → header →
/// algorithm allowed → key (by `kid` in a set) → signature → claims JSON → `sub` and `exp`
/// present, `sub` a valid id → `exp`/`nbf` with leeway → with a maximum lifetime
/// ([`JwtVerifier::max_lifetime`]): `iat` present, not in the future beyond the leeway, and
/// `exp − iat` within the maximum → `iss` → `aud`.
///
/// ES256 and ES384 signatures must be in low-S form (`s ≤ n/2`): each ECDSA signature has a
/// twin `(r, n − s)` that anyone can compute and that plain ECDSA also accepts, so without
/// this rule one token would verify under two encodings (two fingerprints). The high-S twin
/// is refused with [`TokenError::BadSignature`]; [`TokenIssuer`](crate::TokenIssuer) always
/// signs in low-S form.
///
/// ```
/// use std::time::Duration;
/// use authcache_jwt::{JwtVerifier, TokenError, TokenIssuer};
///
/// let issuer = TokenIssuer::hs256(b"a-long-random-secret-of-32-bytes!").issuer("https://id.example.com");
/// let verifier = JwtVerifier::hs256(b"a-long-random-secret-of-32-bytes!").issuer("https://id.example.com");
/// let token = issuer.issue("user-42", Duration::from_secs(300))?;
/// assert_eq!(verifier.verify(format!("Bearer {token}"))?.sub, "user-42");
/// assert_eq!(verifier.verify("Bearer"), Err(TokenError::Malformed(authcache_jwt::Malformed::Empty)));
/// # Ok::<(), TokenError>(())
/// ```
#[derive(Debug, Clone)]
pub struct JwtVerifier {
    keys: KeyRing,
    algorithms: Vec<Algorithm>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    /// Seconds; at most [`MAX_LEEWAY`], so no sum with it can come near `u64::MAX`.
    leeway: u64,
    /// Seconds; `None`: `iat` is not required and `exp − iat` is not bounded.
    max_lifetime: Option<u64>,
    max_token_size: usize,
}

#[derive(Debug, Clone)]
enum KeyRing {
    /// One key, used whatever `kid` the token names.
    Single(VerifyingKey),
    /// A JWK set: the token's `kid` selects the key.
    Set(KeySet),
    /// Built from an unusable secret by an infallible constructor: every token is refused,
    /// and [`JwtVerifier::check`] reports why.
    Unusable(String),
    /// A JWK set fetched from a URL and refreshed; clones of the verifier share it.
    #[cfg(feature = "jwks")]
    Remote(std::sync::Arc<RemoteKeys>),
}

impl JwtVerifier {
    /// An HS256 verifier with a shared secret of at least 32 random bytes
    /// (RFC 7518 §3.2).
    ///
    /// Infallible so it can be written inline in a builder; a shorter secret yields a verifier
    /// that refuses every token with [`TokenError::InvalidKey`], and whose
    /// [`check`](Self::check) says so — `AuthServiceBuilder::build` calls it, so such a
    /// verifier fails at start-up rather than on every request.
    pub fn hs256(secret: impl AsRef<[u8]>) -> Self {
        Self::from_secret(Algorithm::HS256, secret).unwrap_or_else(|error| {
            let reason = match error {
                TokenError::InvalidKey(reason) => reason,
                other => other.to_string(),
            };
            Self::new(KeyRing::Unusable(reason), vec![Algorithm::HS256])
        })
    }

    /// An HMAC verifier (HS256, HS384 or HS512) with a shared secret of at least 32 bytes
    /// (RFC 7518 §3.2).
    ///
    /// # Errors
    ///
    /// [`TokenError::InvalidKey`] when `alg` is not HMAC or the secret is shorter than 32 bytes
    /// (the message says how long it is and the minimum).
    pub fn from_secret(alg: Algorithm, secret: impl AsRef<[u8]>) -> Result<Self> {
        ensure_crypto_provider();
        if alg.family() != AlgorithmFamily::Hmac {
            return Err(TokenError::invalid_key(format!(
                "{alg:?} is not an HMAC algorithm"
            )));
        }
        check_hmac_secret(secret.as_ref())?;
        Ok(Self::single(DecodingKey::from_secret(secret.as_ref()), alg))
    }

    /// Whether this verifier can verify anything at all: `Err` for one built by an
    /// infallible constructor ([`JwtVerifier::hs256`]) from an unusable key, such as an HMAC
    /// secret shorter than 32 bytes. Every other constructor refuses such
    /// keys itself.
    ///
    /// # Errors
    ///
    /// [`TokenError::InvalidKey`] saying what is wrong with the key.
    pub fn check(&self) -> Result<()> {
        match &self.keys {
            KeyRing::Unusable(reason) => Err(TokenError::invalid_key(reason)),
            _ => Ok(()),
        }
    }

    /// A verifier with a PEM public key (PKCS#1 or SPKI for RSA; SPKI for EC and Ed25519).
    /// A certificate (`BEGIN CERTIFICATE`) is accepted too; its public key is used.
    ///
    /// # Errors
    ///
    /// [`TokenError::InvalidKey`] when the PEM does not hold a key for `alg`, or `alg` is not
    /// supported or is HMAC (use [`JwtVerifier::from_secret`]).
    pub fn from_pem(alg: Algorithm, pem: impl AsRef<[u8]>) -> Result<Self> {
        ensure_crypto_provider();
        check_supported(alg)?;
        let pem = pem.as_ref();
        let key = match alg.family() {
            AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
            AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
            AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem),
            AlgorithmFamily::Hmac => {
                return Err(TokenError::invalid_key("HMAC keys are secrets, not PEM"));
            }
        }
        .map_err(TokenError::invalid_key)?;
        probe(&key, alg)?;
        Ok(Self::single(key, alg))
    }

    /// A verifier with one JWK; its `alg` (or, absent one, the usual algorithm of its key
    /// type) is the allow-list.
    ///
    /// # Errors
    ///
    /// [`TokenError::InvalidKey`] when the JWK is not a usable verification key.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self> {
        ensure_crypto_provider();
        let (key, alg) = load_jwk(jwk)?;
        Ok(Self::new(KeyRing::Single(key), vec![alg]))
    }

    /// A verifier with a JWK set, for key rotation: the token's `kid` selects the key (a token
    /// without `kid` is accepted only when the set holds one key). Keys meant for encryption
    /// (`"use": "enc"`) or of unsupported types are skipped. The allow-list is the union of the
    /// keys' algorithms.
    ///
    /// # Errors
    ///
    /// [`TokenError::InvalidKey`] when a signing key is broken or no usable key remains.
    pub fn from_jwks(set: &JwkSet) -> Result<Self> {
        ensure_crypto_provider();
        let (keys, algorithms) = KeySet::strict(set)?;
        Ok(Self::new(KeyRing::Set(keys), algorithms))
    }

    /// [`JwtVerifier::from_jwks`] from the JSON text of a JWK set (`{"keys": [...]}`).
    ///
    /// # Errors
    ///
    /// [`TokenError::InvalidKey`] when the text is not a JWK set or holds no usable key.
    pub fn from_jwks_json(json: &str) -> Result<Self> {
        let set: JwkSet = serde_json::from_str(json).map_err(TokenError::invalid_key)?;
        Self::from_jwks(&set)
    }

    pub(crate) fn single(key: DecodingKey, alg: Algorithm) -> Self {
        Self::new(KeyRing::Single(VerifyingKey::undeclared(key)), vec![alg])
    }

    /// A verifier over a remote key set. Its allow-list is every supported asymmetric
    /// algorithm (keys to come may use any of them); each key still verifies only its own
    /// family, and only its declared `alg` when it has one.
    #[cfg(feature = "jwks")]
    pub(crate) fn remote(keys: std::sync::Arc<RemoteKeys>) -> Self {
        let algorithms = SUPPORTED_ALGORITHMS
            .into_iter()
            .filter(|a| a.family() != AlgorithmFamily::Hmac)
            .collect();
        Self::new(KeyRing::Remote(keys), algorithms)
    }

    /// The remote key set behind this verifier, if it has one.
    #[cfg(feature = "jwks")]
    pub(crate) fn remote_keys(&self) -> Option<&RemoteKeys> {
        match &self.keys {
            KeyRing::Remote(remote) => Some(remote),
            _ => None,
        }
    }

    fn new(keys: KeyRing, algorithms: Vec<Algorithm>) -> Self {
        Self {
            keys,
            algorithms,
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: DEFAULT_LEEWAY.as_secs(),
            max_lifetime: None,
            max_token_size: DEFAULT_MAX_TOKEN_SIZE,
        }
    }

    /// Accepts tokens whose `iss` is `issuer` (call again to accept several). Once an issuer
    /// is set, tokens without `iss` are refused.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Accepts tokens whose `aud` names `audience` (call again to accept several). Once an
    /// audience is set, tokens without `aud` are refused; with none set, tokens that carry an
    /// `aud` are refused (RFC 7519 §4.1.3).
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Tolerance for `exp`, `nbf` and (with a maximum lifetime) `iat` (default
    /// [`DEFAULT_LEEWAY`]); whole seconds, capped at [`MAX_LEEWAY`]: a larger value is taken
    /// as `MAX_LEEWAY`, so no setting makes every expired token valid or overflows a sum with
    /// [`JwtVerifier::clock_leeway`]. Callers that want a larger value refused rather than
    /// capped compare it with `MAX_LEEWAY` first.
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.min(MAX_LEEWAY).as_secs();
        self
    }

    /// Refuses tokens that live longer than `lifetime` (`exp − iat`, whole seconds; no
    /// leeway), and then requires `iat`, not later than now plus the leeway.
    ///
    /// Without it, `iat` is optional and unchecked. Set it wherever something about a token
    /// is kept for a bounded time — a "log out everywhere" cutoff that refuses tokens by
    /// `iat` for the longest token lifetime, say: a 30-day token, one without `iat`, or one
    /// dated in the future would otherwise be valid again once the cutoff is forgotten.
    /// Refusals are [`TokenError::LifetimeTooLong`], [`TokenError::MissingClaim`]`("iat")`
    /// and [`TokenError::InvalidClaim`] for `iat`.
    #[must_use]
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = Some(lifetime.as_secs());
        self
    }

    /// Longest accepted token in bytes, not counting a `Bearer ` prefix (default 8 KiB).
    #[must_use]
    pub fn max_token_size(mut self, bytes: usize) -> Self {
        self.max_token_size = bytes;
        self
    }

    /// Replaces the algorithm allow-list.
    ///
    /// # Errors
    ///
    /// [`TokenError::InvalidKey`] when the list is empty, names an unsupported algorithm, or
    /// names one that none of the keys can verify.
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Result<Self> {
        if algorithms.is_empty() {
            return Err(TokenError::invalid_key("empty algorithm allow-list"));
        }
        for &alg in algorithms {
            check_supported(alg)?;
            if !self.keys.can_verify(alg) {
                return Err(TokenError::invalid_key(format!(
                    "no key can verify {alg:?}"
                )));
            }
        }
        self.algorithms = algorithms.to_vec();
        Ok(self)
    }

    /// The algorithms this verifier accepts.
    pub fn allowed_algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// The largest token accepted, in bytes; callers that fingerprint a token before
    /// verifying it check this first, so an oversized token is never hashed.
    pub fn token_size_limit(&self) -> usize {
        self.max_token_size
    }

    /// The size check [`JwtVerifier::verify`] starts with, on its own: callers that hash a
    /// token before verifying it (to look up a cached verification) call this first, so an
    /// oversized token is never hashed.
    ///
    /// # Errors
    ///
    /// [`TokenError::TooLarge`] when the token, without a `Bearer ` scheme, is over
    /// [`JwtVerifier::token_size_limit`].
    pub fn check_size(&self, token: impl AsRef<[u8]>) -> Result<()> {
        within_size(token.as_ref(), self.max_token_size).map(drop)
    }

    /// The clock skew tolerated on `exp` and `nbf`; a revocation must outlive `exp` by it.
    /// Never over [`MAX_LEEWAY`].
    pub fn clock_leeway(&self) -> Duration {
        Duration::from_secs(self.leeway)
    }

    /// The longest token lifetime (`exp − iat`) accepted, set by
    /// [`JwtVerifier::max_lifetime`]; `None` when unbounded (then `iat` is not required).
    pub fn lifetime_limit(&self) -> Option<Duration> {
        self.max_lifetime.map(Duration::from_secs)
    }

    /// A number that rises whenever this verifier's key set loses a key, so that whatever
    /// was verified before can be recognised as possibly verified with a key that is gone.
    ///
    /// A remote key set (feature `jwks`) loses a key when a fetched set lacks a key of the
    /// set it replaces — the `kid` is gone, or its key material or declared `alg` changed.
    /// Keys added by a rotation, refreshes that change nothing and failed fetches leave the
    /// number as it is. A verifier with fixed keys never changes its keys: always `0`.
    ///
    /// Read it **before** verifying and keep it with the result: the new set is in place
    /// before the number rises, so a result kept with version `v` was checked against a set
    /// at least as new as the one `v` stands for. A result whose version is no longer
    /// current must be verified again. The number belongs to this verifier and its clones
    /// only; another process's verifier counts for itself.
    pub fn key_set_version(&self) -> u64 {
        #[cfg(feature = "jwks")]
        if let KeyRing::Remote(remote) = &self.keys {
            return remote.key_set_version();
        }
        0
    }

    /// Verifies a token (bare, or as `Bearer <token>`) against the current time.
    ///
    /// # Errors
    ///
    /// The first check that fails, as a [`TokenError`]; see the type's docs for the order.
    pub fn verify(&self, token: impl AsRef<[u8]>) -> Result<Claims> {
        self.verify_at(token.as_ref(), unix_now())
    }

    /// [`JwtVerifier::verify`] at a given time (seconds since the Unix epoch): for tests and
    /// for callers with their own clock.
    ///
    /// Never waits: with a remote key set it checks against the keys at hand (one lock-free
    /// load) and refuses a `kid` they lack with [`TokenError::UnknownKeyId`]; the request
    /// path uses [`JwtVerifier::verify_at_async`], which fetches the set again for it.
    ///
    /// # Errors
    ///
    /// As [`JwtVerifier::verify`].
    pub fn verify_at(&self, token: impl AsRef<[u8]>, now: u64) -> Result<Claims> {
        let segments = split(token.as_ref(), self.max_token_size)?;
        let header = parse_header(segments.header)?;
        let alg = self.check_algorithm(&header.alg)?;
        let kid = header.kid.as_deref();
        match &self.keys {
            KeyRing::Single(key) => self.verify_with(&segments, key, alg, now),
            KeyRing::Set(keys) => self.verify_with(&segments, keys.select(kid)?, alg, now),
            KeyRing::Unusable(reason) => Err(TokenError::invalid_key(reason)),
            // One lock-free load of the current set; a refresh swaps in a whole new one.
            #[cfg(feature = "jwks")]
            KeyRing::Remote(remote) => {
                let keys = remote.current();
                self.verify_with(&segments, keys.select(kid)?, alg, now)
            }
        }
    }

    /// [`JwtVerifier::verify`] for verifiers whose keys may need fetching: see
    /// [`JwtVerifier::verify_at_async`].
    ///
    /// # Errors
    ///
    /// As [`JwtVerifier::verify_at_async`].
    pub async fn verify_async(&self, token: impl AsRef<[u8]>) -> Result<Claims> {
        self.verify_at_async(token, unix_now()).await
    }

    /// [`JwtVerifier::verify_at`], and for a remote key set (feature `jwks`), on a `kid` the
    /// set does not hold: joins or starts one refresh of the set (single-flight, at most one
    /// per minimum refresh interval, `RemoteJwks::min_refresh_interval`), then verifies once
    /// more. For every other verifier it is `verify_at` and never waits,
    /// so callers can use it whatever verifier they were given.
    ///
    /// # Errors
    ///
    /// As [`JwtVerifier::verify_at`]; [`TokenError::UnknownKeyId`] when the `kid` is still
    /// unknown after the refresh, or no refresh was due, or the key server could not answer.
    pub async fn verify_at_async(&self, token: impl AsRef<[u8]>, now: u64) -> Result<Claims> {
        let token = token.as_ref();
        let first = self.verify_at(token, now);
        #[cfg(feature = "jwks")]
        if let (Err(TokenError::UnknownKeyId(_)), KeyRing::Remote(remote)) = (&first, &self.keys) {
            if let Some(kid) = header_kid(token, self.max_token_size)
                && remote.refresh_for_kid(&kid).await
            {
                return self.verify_at(token, now);
            }
            remote.count_unknown_kid_rejection();
        }
        first
    }

    fn verify_with(
        &self,
        segments: &Segments<'_>,
        key: &VerifyingKey,
        alg: Algorithm,
        now: u64,
    ) -> Result<Claims> {
        if !key.accepts(alg) {
            return Err(TokenError::DisallowedAlgorithm(alg));
        }
        check_signature(segments, &key.key, alg)?;
        let claims = parse_claims(&decode_segment(segments.claims, Malformed::ClaimsEncoding)?)?;
        check_subject(&claims.sub)?;
        self.check_times(&claims, now)?;
        self.check_lifetime(&claims, now)?;
        self.check_issuer(&claims)?;
        self.check_audience(&claims)?;
        Ok(claims)
    }

    fn check_algorithm(&self, name: &str) -> Result<Algorithm> {
        let alg: Algorithm = name
            .parse()
            .map_err(|_| TokenError::unsupported_algorithm(name))?;
        if !SUPPORTED_ALGORITHMS.contains(&alg) {
            return Err(TokenError::unsupported_algorithm(name));
        }
        if !self.algorithms.contains(&alg) {
            return Err(TokenError::DisallowedAlgorithm(alg));
        }
        Ok(alg)
    }

    fn check_times(&self, claims: &Claims, now: u64) -> Result<()> {
        if now >= claims.exp.saturating_add(self.leeway) {
            return Err(TokenError::Expired);
        }
        match claims.nbf {
            Some(nbf) if nbf > now.saturating_add(self.leeway) => Err(TokenError::NotYetValid),
            _ => Ok(()),
        }
    }

    /// With a maximum lifetime: `iat` present, not after `now` + leeway (a future `iat` would
    /// stretch the token's life past the maximum from now, and date it after any cutoff),
    /// and `exp − iat` within the maximum.
    fn check_lifetime(&self, claims: &Claims, now: u64) -> Result<()> {
        let Some(max) = self.max_lifetime else {
            return Ok(());
        };
        let iat = claims.iat.ok_or(TokenError::MissingClaim("iat"))?;
        if iat > now.saturating_add(self.leeway) {
            return Err(TokenError::InvalidClaim {
                claim: "iat",
                reason: "issued in the future, beyond the clock leeway",
            });
        }
        let lifetime = claims.exp.saturating_sub(iat);
        if lifetime > max {
            return Err(TokenError::LifetimeTooLong {
                lifetime: Duration::from_secs(lifetime),
                max: Duration::from_secs(max),
            });
        }
        Ok(())
    }

    fn check_issuer(&self, claims: &Claims) -> Result<()> {
        if self.issuers.is_empty() {
            return Ok(());
        }
        match &claims.iss {
            None => Err(TokenError::MissingClaim("iss")),
            Some(iss) if self.issuers.contains(iss) => Ok(()),
            Some(_) => Err(TokenError::WrongIssuer),
        }
    }

    fn check_audience(&self, claims: &Claims) -> Result<()> {
        if self.audiences.is_empty() {
            return if claims.aud.is_empty() {
                Ok(())
            } else {
                Err(TokenError::WrongAudience)
            };
        }
        if claims.aud.is_empty() {
            return Err(TokenError::MissingClaim("aud"));
        }
        if claims.aud.iter().any(|a| self.audiences.contains(a)) {
            Ok(())
        } else {
            Err(TokenError::WrongAudience)
        }
    }
}

impl KeyRing {
    /// Whether some key (for a remote set: some key to come) can verify `alg`.
    fn can_verify(&self, alg: Algorithm) -> bool {
        match self {
            Self::Single(key) => key.accepts(alg),
            Self::Set(keys) => keys.iter().any(|k| k.accepts(alg)),
            Self::Unusable(_) => false,
            #[cfg(feature = "jwks")]
            Self::Remote(_) => alg.family() != AlgorithmFamily::Hmac,
        }
    }
}

/// The raw `kid` of a token that already passed [`JwtVerifier::verify_at`]'s header checks.
#[cfg(feature = "jwks")]
fn header_kid(token: &[u8], max_token_size: usize) -> Option<String> {
    let segments = split(token, max_token_size).ok()?;
    parse_header(segments.header).ok()?.kid
}

fn parse_header(segment: &[u8]) -> Result<RawHeader> {
    let json = decode_segment(segment, Malformed::HeaderEncoding)?;
    if !starts_as_object(&json) {
        return Err(Malformed::HeaderJson.into());
    }
    let header: RawHeader = serde_json::from_slice(&json).map_err(|_| Malformed::HeaderJson)?;
    if header.crit.is_some() {
        return Err(Malformed::CriticalHeader.into());
    }
    Ok(header)
}

fn check_signature(segments: &Segments<'_>, key: &DecodingKey, alg: Algorithm) -> Result<()> {
    if alg.family() == AlgorithmFamily::Ec {
        // Before the curve arithmetic: refusing the high-S twin costs one comparison.
        let signature =
            decode_segment(segments.signature.as_bytes(), Malformed::SignatureEncoding)?;
        check_low_s(alg, &signature)?;
    }
    match jsonwebtoken::crypto::verify(segments.signature, segments.signed, key, alg) {
        Ok(true) => Ok(()),
        Ok(false) => Err(TokenError::BadSignature),
        Err(e) if matches!(e.kind(), ErrorKind::Base64(_)) => {
            Err(Malformed::SignatureEncoding.into())
        }
        // The key cannot serve this algorithm (e.g. a P-256 key and an ES384 token).
        Err(_) => Err(TokenError::BadSignature),
    }
}

pub(crate) fn check_supported(alg: Algorithm) -> Result<()> {
    if SUPPORTED_ALGORITHMS.contains(&alg) {
        Ok(())
    } else {
        Err(TokenError::invalid_key(format!("{alg:?} is not supported")))
    }
}

/// Installs jsonwebtoken's RustCrypto provider as the process default unless one is already
/// installed. jsonwebtoken picks it automatically only when exactly one backend feature is
/// enabled in the whole build, and otherwise *panics* on first use; installing it from every
/// constructor makes verification total whatever features other crates turn on. An
/// application that wants another provider installs it before building a verifier.
pub(crate) fn ensure_crypto_provider() {
    // `Err` means a provider is already installed, which is what we want.
    let _ = CryptoProvider::install_default(&rust_crypto::DEFAULT_PROVIDER);
}

#[cfg(test)]
mod tests;
