//! The one error type of this crate.

use std::time::Duration;

use jsonwebtoken::Algorithm;

/// Result of this crate's fallible functions.
pub type Result<T, E = TokenError> = std::result::Result<T, E>;

/// Why a token was rejected (or, for [`TokenError::InvalidKey`], why a key could not be used).
///
/// Every variant but `InvalidKey` is the token's fault and maps to HTTP 401; `InvalidKey` is a
/// configuration error raised by constructors and by [`TokenIssuer`](crate::TokenIssuer).
/// Messages never echo more than a short, escaped prefix of attacker-controlled text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is not a well-formed compact JWS (see [`Malformed`] for the exact reason).
    #[error("malformed token: {0}")]
    Malformed(Malformed),
    /// The token is longer than the verifier's maximum; nothing was decoded.
    #[error("token too large: {size} bytes, at most {max} allowed")]
    TooLarge {
        /// Length of the presented token in bytes.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The header names an algorithm this crate does not implement (including `none`).
    #[error("unsupported algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The algorithm is implemented but not allowed by this verifier, or does not match the
    /// key selected for the token (algorithm confusion).
    #[error("algorithm {0:?} is not allowed")]
    DisallowedAlgorithm(Algorithm),
    /// The header carries a `kid` that is not in the verifier's key set.
    #[error("unknown key id {0:?}")]
    UnknownKeyId(String),
    /// The verifier holds several keys and the header carries no `kid` to choose one.
    #[error("token has no key id and the key set holds several keys")]
    MissingKeyId,
    /// The signature does not match the header and claims.
    #[error("bad signature")]
    BadSignature,
    /// `exp` is in the past, beyond the leeway.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("token not yet valid")]
    NotYetValid,
    /// The token lives longer (`exp − iat`) than the verifier's maximum lifetime
    /// ([`JwtVerifier::max_lifetime`](crate::JwtVerifier::max_lifetime)). Such a token would
    /// outlive every record kept to revoke it (a "log out everywhere" cutoff is kept for the
    /// maximum lifetime only), so it is refused however far from `exp` it is.
    #[error(
        "token lifetime (exp - iat) of {lifetime:?} is over the maximum of {max:?}: \
         have the identity provider issue shorter-lived tokens, or raise the verifier's max_lifetime"
    )]
    LifetimeTooLong {
        /// The token's `exp − iat`.
        lifetime: Duration,
        /// The verifier's maximum.
        max: Duration,
    },
    /// `iss` is not one of the accepted issuers.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` names none of the accepted audiences (or the token has an `aud` and the verifier
    /// accepts none, as RFC 7519 §4.1.3 requires).
    #[error("wrong audience")]
    WrongAudience,
    /// A claim this verifier requires is absent.
    #[error("missing claim `{0}`")]
    MissingClaim(&'static str),
    /// A registered claim has the wrong type or an unacceptable value.
    #[error("invalid claim `{claim}`: {reason}")]
    InvalidClaim {
        /// The claim's name.
        claim: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A key could not be loaded or used: a configuration error, not the token's fault.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A remote key set (feature `jwks`) could not be fetched, or held no usable key. Only
    /// building a remote verifier and forcing a refresh return it, never a verification: a
    /// token whose key could not be fetched is [`TokenError::UnknownKeyId`].
    #[error("key set unavailable: {0}")]
    KeySetUnavailable(String),
    /// The key server (feature `jwks`) redirected to a URL the key-set URL rule refuses: from
    /// `https` to anything but `https`, to plain `http` on a host that is neither loopback nor
    /// allowed by `RemoteJwks::allow_http`, to a URL with credentials, or past the redirect
    /// limit. Nothing was fetched from `location`. Returned where
    /// [`TokenError::KeySetUnavailable`] would be: building a remote verifier and forcing a
    /// refresh.
    #[error(
        "key server redirect to {location} refused: {reason}; \
         configure the key set's final https URL instead"
    )]
    RedirectRefused {
        /// Where the redirect led (credentials removed; at most 256 bytes, escaped).
        location: String,
        /// Why it was refused.
        reason: &'static str,
    },
}

impl TokenError {
    /// `true` when the token was well-formed and correctly signed but its `exp` has passed:
    /// the client should refresh it rather than re-authenticate.
    pub fn is_expired(&self) -> bool {
        matches!(self, Self::Expired)
    }

    /// `true` for [`TokenError::InvalidKey`], [`TokenError::KeySetUnavailable`] and
    /// [`TokenError::RedirectRefused`]: the server's keys are at fault (HTTP 500), every other
    /// variant is the client's token (HTTP 401).
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            Self::InvalidKey(_) | Self::KeySetUnavailable(_) | Self::RedirectRefused { .. }
        )
    }

    /// Shortens and escapes attacker-controlled text before it is stored in an error.
    pub(crate) fn unsupported_algorithm(name: &str) -> Self {
        const MAX: usize = 32;
        let mut end = name.len().min(MAX);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        Self::UnsupportedAlgorithm(name[..end].escape_default().to_string())
    }

    pub(crate) fn invalid_key(reason: impl std::fmt::Display) -> Self {
        Self::InvalidKey(reason.to_string())
    }
}

/// Why a token is not a well-formed compact JWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// Nothing was presented, or `Bearer` with no token after it.
    #[error("empty")]
    Empty,
    /// A byte outside the base64url alphabet and `.` (whitespace, padding `=`, non-ASCII, NUL…).
    #[error("invalid character")]
    InvalidCharacter,
    /// Not exactly three `.`-separated segments.
    #[error("expected 3 segments")]
    SegmentCount,
    /// The header segment is not canonical unpadded base64url.
    #[error("header is not base64url")]
    HeaderEncoding,
    /// The header is not a JSON object with a string `alg` (and optional string `kid`).
    #[error("header is not a valid JOSE header")]
    HeaderJson,
    /// The header carries `crit`: it names extensions this verifier does not implement.
    #[error("header has critical extensions")]
    CriticalHeader,
    /// The claims segment is not canonical unpadded base64url.
    #[error("claims are not base64url")]
    ClaimsEncoding,
    /// The claims are not a JSON object.
    #[error("claims are not a JSON object")]
    ClaimsJson,
    /// A claim name appears twice in the claims object.
    #[error("duplicate claim")]
    DuplicateClaim,
    /// The signature segment is not canonical unpadded base64url.
    #[error("signature is not base64url")]
    SignatureEncoding,
}

impl From<Malformed> for TokenError {
    fn from(m: Malformed) -> Self {
        Self::Malformed(m)
    }
}
