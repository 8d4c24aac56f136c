//! The token as bytes: `Bearer` handling, size and alphabet checks, segments, fingerprints.
//!
//! Everything here runs before any base64 or JSON decoding, so that a hostile input costs at
//! most one linear scan of at most `max_size` bytes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::claims::{Claims, parse_subject_only};
use crate::error::{Malformed, Result, TokenError};

/// 8 KiB: far above any real access token (a few hundred bytes to ~2 KiB with many claims),
/// small enough that a hostile header costs nothing to reject.
pub const DEFAULT_MAX_TOKEN_SIZE: usize = 8 * 1024;

/// Longest accepted `sub`, the same bound `authcache-core` puts on cache key ids.
pub const MAX_SUBJECT_LEN: usize = 256;

const BEARER: &[u8] = b"bearer";

/// A token split into its three segments; every byte is base64url or one of the two dots.
pub(crate) struct Segments<'t> {
    pub(crate) header: &'t [u8],
    pub(crate) claims: &'t [u8],
    pub(crate) signature: &'t str,
    /// `header.claims`: the bytes the signature covers.
    pub(crate) signed: &'t [u8],
}

/// Removes an optional `Bearer ` scheme (case-insensitive, exactly one space): O(1).
///
/// `Bearer` alone yields an empty token; any other scheme is left in place and later fails
/// the alphabet check on its space.
pub(crate) fn strip_bearer(input: &[u8]) -> &[u8] {
    if input.eq_ignore_ascii_case(BEARER) {
        return &[];
    }
    match input.split_at_checked(BEARER.len()) {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case(BEARER) && rest.first() == Some(&b' ') =>
        {
            &rest[1..]
        }
        _ => input,
    }
}

/// The token without its `Bearer ` scheme, if it is at most `max_size` bytes long.
///
/// # Errors
///
/// [`TokenError::TooLarge`]; nothing but the length is looked at.
pub(crate) fn within_size(input: &[u8], max_size: usize) -> Result<&[u8]> {
    let token = strip_bearer(input);
    if token.len() > max_size {
        return Err(TokenError::TooLarge {
            size: token.len(),
            max: max_size,
        });
    }
    Ok(token)
}

/// Size check, then alphabet check and split, in that order.
///
/// # Errors
///
/// [`TokenError::TooLarge`] before anything else is looked at, then [`TokenError::Malformed`].
pub(crate) fn split(input: &[u8], max_size: usize) -> Result<Segments<'_>> {
    let token = within_size(input, max_size)?;
    if token.is_empty() {
        return Err(Malformed::Empty.into());
    }
    let (first, second) = find_dots(token)?;
    let signature =
        std::str::from_utf8(&token[second + 1..]).map_err(|_| Malformed::InvalidCharacter)?;
    Ok(Segments {
        header: &token[..first],
        claims: &token[first + 1..second],
        signature,
        signed: &token[..second],
    })
}

/// One pass: rejects bytes outside base64url, returns the positions of exactly two dots.
fn find_dots(token: &[u8]) -> Result<(usize, usize)> {
    let mut dots = [0usize; 2];
    let mut count = 0;
    for (i, &b) in token.iter().enumerate() {
        if b == b'.' {
            if count == 2 {
                return Err(Malformed::SegmentCount.into());
            }
            dots[count] = i;
            count += 1;
        } else if !is_base64url(b) {
            return Err(Malformed::InvalidCharacter.into());
        }
    }
    if count != 2 {
        return Err(Malformed::SegmentCount.into());
    }
    Ok((dots[0], dots[1]))
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Decodes one segment; the engine rejects padding and non-zero trailing bits, so every
/// accepted segment has exactly one encoding (no malleability through the spare bits).
pub(crate) fn decode_segment(segment: &[u8], on_error: Malformed) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| on_error.into())
}

/// Checks a subject the way `authcache-core` checks cache key ids: non-empty, at most
/// [`MAX_SUBJECT_LEN`] bytes, no whitespace and no control characters.
pub(crate) fn check_subject(sub: &str) -> Result<()> {
    let reason = if sub.is_empty() {
        "empty"
    } else if sub.len() > MAX_SUBJECT_LEN {
        "longer than 256 bytes"
    } else if sub.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "contains whitespace or a control character"
    } else {
        return Ok(());
    };
    Err(TokenError::InvalidClaim {
        claim: "sub",
        reason,
    })
}

/// SHA-256 of the token, lower-case hex (64 characters): the only form in which a token may
/// appear in a cache key or a log line.
///
/// A leading `Bearer ` (any case) is removed first, so a header value and the bare token it
/// carries have the same fingerprint. Nothing is validated: hashing is cheap and total.
///
/// ```
/// let fp = authcache_jwt::fingerprint("Bearer abc");
/// assert_eq!(fp, authcache_jwt::fingerprint("abc"));
/// assert_eq!(fp.len(), 64);
/// ```
pub fn fingerprint(token: impl AsRef<[u8]>) -> String {
    hex::encode(Sha256::digest(strip_bearer(token.as_ref())))
}

/// Domain tag that starts every input [`revocation_id`] hashes. Length-prefixed, so those
/// inputs start with a zero byte: never a token (base64url and dots only), hence never the
/// input of a [`fingerprint`] of one; "v1" because changing the encoding would silently
/// un-revoke every stored id.
const REVOCATION_DOMAIN: &[u8] = b"authcache-jwt/revocation-id/v1";

/// The id under which a verified token is revoked: what the token asserts, not its signature
/// bytes. SHA-256, lower-case hex (64 characters).
///
/// - With a `jti`: the hash of `("jti", iss or "", jti)`, so every token carrying that token
///   id from that issuer, however encoded or re-signed, has the same revocation id.
/// - Without one: the hash of the token's signing input (`header.payload`, everything before
///   the last `.`), domain-separated so it never equals any token's [`fingerprint`].
///
/// `token` may be bare or `Bearer <jwt>`, exactly as for [`fingerprint`].
///
/// **Only call it with the claims [`JwtVerifier::verify`](crate::JwtVerifier::verify)
/// returned for this very token.** With a `jti` the token's bytes are not looked at at all,
/// so claims from anywhere else (an unverified decode of the payload, say) would let a forged
/// token name, and so revoke or pass for, someone else's token. With verified claims,
/// the only re-encodings an attacker can make are the ECDSA twin `(r, n − s)` (refused by
/// the verifier, and with the same signing input anyway); a JSON re-encoding of header or
/// claims is a different signing input that needs a new signature only the key holder can
/// make. Fields are length-prefixed, so `("ab", "c")` and `("a", "bc")` never collide.
///
/// ```
/// use std::time::Duration;
/// use authcache_jwt::{fingerprint, revocation_id, JwtVerifier, TokenIssuer};
///
/// let secret = b"a-long-random-secret-of-32-bytes!";
/// let token = TokenIssuer::hs256(secret).issue("user-42", Duration::from_secs(600))?;
/// let claims = JwtVerifier::hs256(secret).verify(&token)?;
/// let id = revocation_id(&token, &claims);
/// assert_eq!(id, revocation_id(&format!("Bearer {token}"), &claims));
/// assert_ne!(id, fingerprint(&token));
/// # Ok::<(), authcache_jwt::TokenError>(())
/// ```
pub fn revocation_id(token: &str, claims: &Claims) -> String {
    match &claims.jti {
        Some(jti) => {
            let iss = claims.iss.as_deref().unwrap_or("");
            revocation_hash(&[b"jti", iss.as_bytes(), jti.as_bytes()])
        }
        None => revocation_hash(&[b"signing-input", signing_input(token.as_bytes())]),
    }
}

/// `header.payload` of a (possibly `Bearer `-prefixed) token: everything before the last `.`,
/// or all of it when there is none.
fn signing_input(token: &[u8]) -> &[u8] {
    let token = strip_bearer(token);
    match token.iter().rposition(|&b| b == b'.') {
        Some(dot) => token.split_at(dot).0,
        None => token,
    }
}

/// SHA-256 hex of [`REVOCATION_DOMAIN`] then `fields`, each preceded by its length as a
/// big-endian `u64`: an injective encoding, so different field lists never share an input.
fn revocation_hash(fields: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for field in std::iter::once(&REVOCATION_DOMAIN).chain(fields) {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field);
    }
    hex::encode(hasher.finalize())
}

/// The `sub` of a token **whose signature has not been checked**.
///
/// **For cache keying only — never an authorization decision.** Anyone can mint a token with
/// any `sub`; this exists so that a caller can, for instance, find the cache entries to drop
/// for a token it is about to reject or revoke. To learn who is behind a token, use
/// [`JwtVerifier::verify`](crate::JwtVerifier::verify).
///
/// Applies the same structural checks as the verifier (default size limit first, alphabet,
/// segments, canonical base64url, JSON) and the same subject rules.
///
/// # Errors
///
/// [`TokenError::TooLarge`], [`TokenError::Malformed`], [`TokenError::MissingClaim`] or
/// [`TokenError::InvalidClaim`] for `sub`.
pub fn unverified_subject(token: impl AsRef<[u8]>) -> Result<String> {
    let segments = split(token.as_ref(), DEFAULT_MAX_TOKEN_SIZE)?;
    let json = decode_segment(segments.claims, Malformed::ClaimsEncoding)?;
    let sub = parse_subject_only(&json)?;
    check_subject(&sub)?;
    Ok(sub)
}

#[cfg(test)]
mod tests;
