//! The cache id of a name that is not an id of its own making — a role name, an issuer:
//! every string — empty, with spaces or control characters, of any length — gets one, so
//! every role takes the same path (tiers, single-flight, load timeout, invalidation
//! published to every instance) and every issuer can be revoked.
//!
//! - A name that is already a valid id ([`authcache_core::validate_id`]) and contains
//!   neither `%` nor `#` is its own id, so the common case costs nothing and keys stay
//!   readable in Redis.
//! - Otherwise `%`, `#`, whitespace and control characters are percent-encoded (their
//!   UTF-8 bytes as `%XX`); an empty name is `%` alone, which no encoding produces.
//! - A name whose encoding is longer than [`MAX_ID_LEN`] is `#` and the SHA-256 of the
//!   name in hex. It cannot be decoded back: only background reloads need that, and they
//!   leave such a role to the next foreground load, which knows the name.
//!
//! The mapping is injective: `#…` ids come only from long names, `%` alone only from the
//! empty one, and the rest decode to exactly their name.

use std::borrow::Cow;
use std::fmt::Write as _;

use authcache_core::key::MAX_ID_LEN;
use sha2::{Digest, Sha256};

/// The id of the empty role name.
const EMPTY: &str = "%";
/// What starts the id of a name too long to encode.
const HASHED: char = '#';

/// The cache id of `role` (or of any other name).
pub(crate) fn cache_id(role: &str) -> Cow<'_, str> {
    if role.is_empty() {
        return Cow::Borrowed(EMPTY);
    }
    if !role.contains(needs_encoding) {
        if role.len() <= MAX_ID_LEN {
            return Cow::Borrowed(role);
        }
        return Cow::Owned(hashed(role));
    }
    let mut id = String::with_capacity(role.len() + 8);
    for c in role.chars() {
        if needs_encoding(c) {
            let mut utf8 = [0; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                // Writing to a String cannot fail.
                let _ = write!(id, "%{byte:02X}");
            }
        } else {
            id.push(c);
        }
    }
    if id.len() > MAX_ID_LEN {
        return Cow::Owned(hashed(role));
    }
    Cow::Owned(id)
}

/// The name of a cache id, or `None` for the id of a name too long to encode (and
/// for anything [`cache_id`] never produces).
pub(crate) fn name_of(id: &str) -> Option<Cow<'_, str>> {
    if id == EMPTY {
        return Some(Cow::Borrowed(""));
    }
    if id.starts_with(HASHED) {
        return None;
    }
    percent_encoding::percent_decode_str(id).decode_utf8().ok()
}

fn needs_encoding(c: char) -> bool {
    c == '%' || c == HASHED || c.is_whitespace() || c.is_control()
}

/// A role name is not a token: hashed here, not by the token fingerprint.
fn hashed(role: &str) -> String {
    format!("{HASHED}{}", hex::encode(Sha256::digest(role.as_bytes())))
}

#[cfg(test)]
mod tests;
