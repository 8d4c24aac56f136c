//! Strict JWT verification for authcache: who is behind this bearer token?
//!
//! [`JwtVerifier`] wraps [`jsonwebtoken`]'s key handling and signature primitives with the
//! checks a service needs on every request, in an order that makes hostile input cheap:
//!
//! 1. **size** — at most 8 KiB by default, checked before anything is decoded;
//! 2. **shape** — a bare token or `Bearer <token>` (scheme in any case, exactly one space),
//!    base64url characters and exactly three segments, canonical unpadded base64url;
//! 3. **algorithm** — an explicit allow-list ([`SUPPORTED_ALGORITHMS`]); `none` never, and a
//!    key only ever verifies algorithms of its own family (no HS256-with-an-RSA-public-key
//!    confusion); a `kid` selects the key in a [`jwk::JwkSet`] (an unknown `kid` is
//!    [`TokenError::UnknownKeyId`]);
//! 4. **signature** (ES256/ES384 in low-S form only, so an ECDSA signature's twin
//!    `(r, n − s)` is refused), then **claims** — `sub` and `exp` required, `sub` a valid
//!    cache id, `exp`/`nbf` with a leeway (30 s by default, never more than [`MAX_LEEWAY`],
//!    1 h: a larger setting is capped), with a maximum lifetime when configured
//!    ([`JwtVerifier::max_lifetime`]: `iat` required, not in the future beyond the leeway,
//!    `exp − iat` within the maximum — [`TokenError::LifetimeTooLong`]), issuer and audience
//!    when configured.
//!
//! Every failure is a typed [`TokenError`]; nothing panics on any input, and no time
//! arithmetic overflows whatever the claims, the clock or the settings
//! (`Duration::MAX` included).
//!
//! [`JwtVerifier::key_set_version`] rises whenever the verifier's key set loses a key (a
//! remote set refetched without a `kid` it had, or with that `kid`'s key changed); it is
//! constant for fixed keys. Whoever keeps verification results stamps them with it, read
//! before verifying, and verifies again once it has moved.
//!
//! Helpers for the cache around it: [`fingerprint`] (the SHA-256 under which a token may be
//! keyed — never the token itself), [`revocation_id`] (what a verified token asserts — its
//! `jti`, else its signed header and claims — under which it is revoked, so no re-encoding
//! escapes a revocation), [`unverified_subject`] (cache keying only, **never an
//! authorization decision**) and [`validation_ttl`] (how long a validation may be cached:
//! never beyond `exp`). [`Claims`] round-trips through bincode 2's serde path so the facade
//! can cache it. [`TokenIssuer`] signs tokens for tests and the quickstart; with feature
//! `test-keys`, `test_keys` and the `test_*` constructors sign and verify them with published
//! fixed keys.
//!
//! ```
//! use std::time::Duration;
//! use authcache_jwt::{fingerprint, validation_ttl, JwtVerifier, TokenError, TokenIssuer};
//!
//! let secret = b"a-long-random-secret-of-32-bytes!";
//! let verifier = JwtVerifier::hs256(secret).issuer("https://id.example.com");
//! let token = TokenIssuer::hs256(secret)
//!     .issuer("https://id.example.com")
//!     .issue("user-42", Duration::from_secs(600))?;
//!
//! let claims = verifier.verify(format!("Bearer {token}"))?;
//! assert_eq!(claims.sub, "user-42");
//! assert_eq!(fingerprint(&token).len(), 64);
//! let ttl = validation_ttl(claims.exp, authcache_jwt::unix_now(), Duration::from_secs(120));
//! assert_eq!(ttl, Some(Duration::from_secs(120)));
//!
//! let forged = TokenIssuer::hs256(b"some-other-secret").issue("admin", Duration::from_secs(600))?;
//! assert_eq!(verifier.verify(&forged), Err(TokenError::BadSignature));
//! # Ok::<(), TokenError>(())
//! ```
//!
//! # Feature flags
//!
//! - `jwks` — [`RemoteJwks`]: a verifier whose keys come from a JWKS URL or an OpenID
//!   Connect issuer (`/.well-known/openid-configuration` → `jwks_uri`), refreshed in the
//!   background and on an unknown `kid` (single-flight, rate-limited, never blocking
//!   verification). Brings in tokio and reqwest (rustls on ring). Use
//!   [`JwtVerifier::verify_async`] on the request path so a rotated-in key is fetched.
//!   Key servers are reached over HTTPS (plain HTTP only for loopback hosts or by opt-in),
//!   and a redirect is never followed from `https` to anything else
//!   ([`TokenError::RedirectRefused`]).
//! - `test-keys` — `test_keys` (key pairs whose **private halves are published** in this
//!   crate's source), `JwtVerifier::test_hs256`/`test_rs256`/`test_es256`/`test_eddsa` and
//!   `TokenIssuer::test_*` over them: for tests, benches and examples only. Off by default
//!   and in no other feature; turn it on from `[dev-dependencies]`.
//!
//! # Crypto provider
//!
//! jsonwebtoken 11 dispatches to a process-wide `CryptoProvider`. Every constructor here
//! installs the RustCrypto provider unless one is installed already, so verification never
//! hits jsonwebtoken's "no provider" panic even if another crate enables a second backend
//! feature. To use a different provider, install it before building a verifier or issuer.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod claims;
mod ecdsa;
mod error;
mod issuer;
#[cfg(feature = "jwks")]
mod jwks;
mod keys;
#[cfg(feature = "test-keys")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-keys")))]
pub mod test_keys;
mod token;
mod ttl;
mod verifier;

pub use claims::{Claims, REGISTERED_CLAIMS};
pub use error::{Malformed, Result, TokenError};
pub use issuer::TokenIssuer;
pub use jsonwebtoken::Algorithm;
/// JWK types of `jsonwebtoken`, for [`JwtVerifier::from_jwk`] and [`JwtVerifier::from_jwks`].
pub use jsonwebtoken::jwk;
#[cfg(feature = "jwks")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
pub use jwks::{
    DEFAULT_FETCH_TIMEOUT, DEFAULT_MIN_REFRESH_INTERVAL, DEFAULT_REFRESH_INTERVAL, JwksStats,
    MAX_DOCUMENT_SIZE, RemoteJwks,
};
/// The JSON types of [`Claims::extra_claims`], re-exported so callers need no version match.
pub use serde_json;
pub use token::{
    DEFAULT_MAX_TOKEN_SIZE, MAX_SUBJECT_LEN, fingerprint, revocation_id, unverified_subject,
};
pub use ttl::{EXP_SKEW, unix_now, validation_ttl};
pub use verifier::{DEFAULT_LEEWAY, JwtVerifier, MAX_LEEWAY, SUPPORTED_ALGORITHMS};
