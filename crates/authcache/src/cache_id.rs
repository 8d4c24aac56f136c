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

use authcache_core::Fingerprint;
use authcache_core::key::MAX_ID_LEN;

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

fn hashed(role: &str) -> String {
    format!("{HASHED}{}", Fingerprint::of(role).as_str())
}

#[cfg(test)]
mod tests {
    use authcache_core::validate_id;

    use super::*;

    #[test]
    fn every_role_name_has_a_valid_id_and_plain_names_are_their_own() {
        let long_plain = "r".repeat(MAX_ID_LEN + 1);
        let long_spaced = " ".repeat(MAX_ID_LEN / 3 + 1);
        let names = [
            "admin",
            "billing:read",
            "",
            " ",
            "team lead",
            "tab\there",
            "new\nline",
            "nul\0",
            "50%",
            "%20",
            "#hash",
            "naïve café",
            "\u{a0}nbsp",
            "\u{85}next-line",
            long_plain.as_str(),
            long_spaced.as_str(),
        ];
        for name in names {
            let id = cache_id(name);
            assert_eq!(validate_id(&id), Ok(()), "{name:?} -> {id:?}");
        }
        assert_eq!(cache_id("admin"), "admin");
        assert_eq!(cache_id("naïve-café"), "naïve-café");
        assert_eq!(cache_id("team lead"), "team%20lead");
        assert_eq!(cache_id("50%"), "50%25");
    }

    #[test]
    fn ids_decode_to_their_name_and_never_collide() {
        let long = "r".repeat(MAX_ID_LEN + 1);
        let names = [
            "", " ", "%", "%25", "%20", "#", "#x", "a b", "a%20b", "é", "\u{2028}", "x\u{7f}",
        ];
        let mut seen = std::collections::HashSet::new();
        for name in names.iter().copied().chain([long.as_str()]) {
            let id = cache_id(name).into_owned();
            assert!(seen.insert(id.clone()), "{name:?} collides at {id:?}");
            if name.len() <= MAX_ID_LEN {
                assert_eq!(name_of(&id).as_deref(), Some(name), "{id:?}");
            }
        }
        assert_eq!(name_of(&cache_id(&long)), None);
    }
}
