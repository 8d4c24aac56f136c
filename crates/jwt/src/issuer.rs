//! [`TokenIssuer`]: signs tokens for tests, benches and the quickstart.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, AlgorithmFamily, EncodingKey, Header};
use serde_json::Value;

use crate::claims::Claims;
use crate::ecdsa::normalize_s;
use crate::error::{Result, TokenError};
use crate::verifier::{check_supported, ensure_crypto_provider};

/// Signs tokens (HS256/384/512, RS256/384/512, PS256, ES256/384, EdDSA).
///
/// Meant for tests, benches and the quickstart: a real deployment gets its tokens from an
/// identity provider. With feature `test-keys`, the `test_*` constructors sign with the
/// published `test_keys`; pair them with the matching `JwtVerifier::test_*`. ES256/ES384
/// signatures are always in the low-S form the verifier requires.
///
/// ```
/// use std::time::Duration;
/// use authcache_jwt::{JwtVerifier, TokenIssuer};
///
/// let secret = b"a-long-random-secret-of-32-bytes!";
/// let token = TokenIssuer::hs256(secret).audience("api").issue("user-42", Duration::from_secs(60))?;
/// let claims = JwtVerifier::hs256(secret).audience("api").verify(&token)?;
/// assert_eq!((claims.sub.as_str(), claims.aud.as_slice()), ("user-42", &["api".to_string()][..]));
/// # Ok::<(), authcache_jwt::TokenError>(())
/// ```
#[derive(Clone)]
pub struct TokenIssuer {
    alg: Algorithm,
    key: EncodingKey,
    kid: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("alg", &self.alg)
            .field("key", &"[redacted]")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl TokenIssuer {
    /// An HS256 issuer with a shared secret.
    pub fn hs256(secret: impl AsRef<[u8]>) -> Self {
        Self::new(Algorithm::HS256, EncodingKey::from_secret(secret.as_ref()))
    }

    /// An HMAC issuer (HS256, HS384 or HS512).
    ///
    /// # Errors
    ///
    /// [`TokenError::InvalidKey`] when `alg` is not HMAC.
    pub fn from_secret(alg: Algorithm, secret: impl AsRef<[u8]>) -> Result<Self> {
        if alg.family() != AlgorithmFamily::Hmac {
            return Err(TokenError::invalid_key(format!(
                "{alg:?} is not an HMAC algorithm"
            )));
        }
        Ok(Self::new(alg, EncodingKey::from_secret(secret.as_ref())))
    }

    /// An issuer with a PEM private key (PKCS#1 or PKCS#8 for RSA; PKCS#8 for EC and Ed25519).
    ///
    /// # Errors
    ///
    /// [`TokenError::InvalidKey`] when the PEM holds no private key for `alg`.
    pub fn from_pem(alg: Algorithm, pem: impl AsRef<[u8]>) -> Result<Self> {
        check_supported(alg)?;
        let pem = pem.as_ref();
        let key = match alg.family() {
            AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(pem),
            AlgorithmFamily::Ec => EncodingKey::from_ec_pem(pem),
            AlgorithmFamily::Ed => EncodingKey::from_ed_pem(pem),
            AlgorithmFamily::Hmac => {
                return Err(TokenError::invalid_key("HMAC keys are secrets, not PEM"));
            }
        }
        .map_err(TokenError::invalid_key)?;
        Ok(Self::new(alg, key))
    }

    pub(crate) fn new(alg: Algorithm, key: EncodingKey) -> Self {
        ensure_crypto_provider();
        Self {
            alg,
            key,
            kid: None,
            issuer: None,
            audience: None,
        }
    }

    /// Puts `kid` in the header of every token.
    #[must_use]
    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// Sets `iss` in tokens made by [`TokenIssuer::issue`].
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Sets `aud` in tokens made by [`TokenIssuer::issue`].
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// A token for `sub`, issued now, valid for `ttl`, with this issuer's `iss` and `aud`.
    /// Its `iat` is to the microsecond (a fractional NumericDate, as RFC 7519 allows), so
    /// a `logout_all` made in the same second refuses exactly the tokens issued before it.
    ///
    /// # Errors
    ///
    /// [`TokenError::InvalidKey`] when signing fails.
    pub fn issue(&self, sub: &str, ttl: Duration) -> Result<String> {
        let issued = SystemTime::now();
        let now = issued.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut claims = Claims::new(sub, now.saturating_add(ttl.as_secs())).issued_at(issued);
        claims.iss.clone_from(&self.issuer);
        claims.aud = self.audience.iter().cloned().collect();
        self.sign(&claims)
    }

    /// Signs exactly these claims.
    ///
    /// # Errors
    ///
    /// [`TokenError::InvalidKey`] when signing fails.
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        self.sign_payload(&claims.to_jwt_payload())
    }

    /// Signs an arbitrary JSON payload — including invalid claims, for negative tests.
    ///
    /// # Errors
    ///
    /// [`TokenError::InvalidKey`] when signing fails.
    pub fn sign_payload(&self, payload: &Value) -> Result<String> {
        let mut header = Header::new(self.alg);
        header.kid.clone_from(&self.kid);
        let token =
            jsonwebtoken::encode(&header, payload, &self.key).map_err(TokenError::invalid_key)?;
        with_low_s(token, self.alg)
    }
}

/// jsonwebtoken's ECDSA signers do not normalise `s`, so about half of their ES256/ES384
/// signatures are high-S, which [`JwtVerifier`](crate::JwtVerifier) refuses: such a
/// signature is replaced by its low-S twin, the same signature to plain ECDSA.
fn with_low_s(token: String, alg: Algorithm) -> Result<String> {
    if alg.family() != AlgorithmFamily::Ec {
        return Ok(token);
    }
    let (signed, signature) = token
        .rsplit_once('.')
        .ok_or_else(|| TokenError::invalid_key("the signer returned no signature"))?;
    let mut signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(TokenError::invalid_key)?;
    normalize_s(alg, &mut signature);
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
}
