//! Cache keys: `{prefix}:v{schema}:{kind}:{id}`, built here and nowhere else.
//!
//! Revocations live outside the schema version: `{prefix}:{kind}:{id}` for
//! [`KeyKind::Revoked`] and [`KeyKind::Cutoff`] ([`KeyKind::is_versioned`]), so that a
//! schema bump, or a rolling deploy of old and new builds, never un-revokes a token.
//!
//! Two different `(kind, id)` pairs never produce the same key: the prefix is fixed per
//! [`Keyspace`] and contains no `:`, the schema and kind are fixed tokens without `:`, so
//! everything after the fourth field is the id, verbatim. Tokens are keyed only by their
//! SHA-256 [`Fingerprint`]; no raw token or secret can reach a key.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::KeyError;

/// Longest id accepted, in bytes: ids are user ids, not documents.
pub const MAX_ID_LEN: usize = 256;

/// Default key prefix, so authcache entries are easy to find (and flush) in a shared Redis.
pub const DEFAULT_PREFIX: &str = "authcache";

/// Schema version baked into every key; bump it when the shape of a cached value changes
/// so that old entries are simply never read again.
pub const SCHEMA_VERSION: u32 = 1;

/// What a key's entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum KeyKind {
    /// A user record.
    User,
    /// The roles of a user.
    Roles,
    /// The permissions of a user.
    Perms,
    /// A token validation result, keyed by the token's fingerprint.
    Token,
    /// A revoked token, keyed by its revocation id (what the token asserts, never its
    /// signature bytes). Not schema-versioned.
    Revoked,
    /// A user's "log out everywhere" cutoff: tokens issued up to it are refused. Not
    /// schema-versioned.
    Cutoff,
}

impl KeyKind {
    /// Every kind, in a fixed order.
    pub const ALL: [KeyKind; 6] = [
        KeyKind::User,
        KeyKind::Roles,
        KeyKind::Perms,
        KeyKind::Token,
        KeyKind::Revoked,
        KeyKind::Cutoff,
    ];

    /// `false` for the kinds whose keys carry no schema version: revocation marks and
    /// cutoffs must survive schema bumps, and their readers never decode them with a
    /// schema-dependent type.
    pub fn is_versioned(self) -> bool {
        !matches!(self, KeyKind::Revoked | KeyKind::Cutoff)
    }

    /// The kind's name as it appears in keys.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::User => "user",
            KeyKind::Roles => "roles",
            KeyKind::Perms => "perms",
            KeyKind::Token => "token",
            KeyKind::Revoked => "revoked",
            KeyKind::Cutoff => "cutoff",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The SHA-256 of a token, hex encoded: the only form in which a token reaches a key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Fingerprints a token (the compact JWT, without any `Bearer ` scheme).
    pub fn of(token: &str) -> Self {
        Self(hex::encode(Sha256::digest(token.as_bytes())))
    }

    /// The 64 lowercase hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.0)
    }
}

/// A validated id: non-empty, at most [`MAX_ID_LEN`] bytes, no whitespace or control characters.
///
/// # Errors
/// The [`KeyError`] naming the first rule broken.
pub fn validate_id(id: &str) -> Result<(), KeyError> {
    if id.is_empty() {
        return Err(KeyError::Empty);
    }
    if id.len() > MAX_ID_LEN {
        return Err(KeyError::TooLong {
            len: id.len(),
            max: MAX_ID_LEN,
        });
    }
    match id
        .char_indices()
        .find(|(_, c)| c.is_whitespace() || c.is_control())
    {
        Some((at, _)) => Err(KeyError::ForbiddenCharacter(at)),
        None => Ok(()),
    }
}

/// A complete cache key. Cheap to clone; compares and hashes as its string.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(Arc<str>);

impl Key {
    /// The key as stored in the backend.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.0)
    }
}

/// The namespace keys live in: a prefix and the schema version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyspace {
    prefix: Arc<str>,
    schema: u32,
}

impl Default for Keyspace {
    fn default() -> Self {
        Self {
            prefix: Arc::from(DEFAULT_PREFIX),
            schema: SCHEMA_VERSION,
        }
    }
}

impl Keyspace {
    /// A keyspace with a custom prefix (one application's entries apart from another's).
    ///
    /// # Errors
    /// [`KeyError::InvalidPrefix`] when the prefix is empty or contains `:`, whitespace or
    /// control characters.
    pub fn new(prefix: &str) -> Result<Self, KeyError> {
        let bad = |c: char| c == ':' || c.is_whitespace() || c.is_control();
        if prefix.is_empty() || prefix.len() > MAX_ID_LEN || prefix.contains(bad) {
            return Err(KeyError::InvalidPrefix(prefix.to_owned()));
        }
        Ok(Self {
            prefix: Arc::from(prefix),
            schema: SCHEMA_VERSION,
        })
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of `(kind, id)`, after validating the id.
    ///
    /// # Errors
    /// The [`KeyError`] from [`validate_id`].
    pub fn key(&self, kind: KeyKind, id: &str) -> Result<Key, KeyError> {
        validate_id(id)?;
        Ok(self.compose(kind, id))
    }

    /// The key of a token-scoped entry ([`KeyKind::Token`] or [`KeyKind::Revoked`]).
    pub fn token_key(&self, kind: KeyKind, fingerprint: &Fingerprint) -> Key {
        self.compose(kind, fingerprint.as_str())
    }

    /// The pub/sub channel that carries invalidated keys between instances.
    pub fn invalidation_channel(&self) -> String {
        format!("{}:invalidate", self.prefix)
    }

    /// Splits a key of this keyspace back into `(kind, id)`; `None` for anything else
    /// (another prefix, an older schema, garbage from the bus).
    pub fn parse<'k>(&self, key: &'k str) -> Option<(KeyKind, &'k str)> {
        let rest = key.strip_prefix(&*self.prefix)?.strip_prefix(':')?;
        let (kind, id) = match rest.strip_prefix('v') {
            Some(versioned) => {
                let (schema, rest) = versioned.split_once(':')?;
                if schema.parse::<u32>().ok()? != self.schema {
                    return None;
                }
                let (kind, id) = rest.split_once(':')?;
                let kind = KeyKind::from_name(kind).filter(|kind| kind.is_versioned())?;
                (kind, id)
            }
            None => {
                let (kind, id) = rest.split_once(':')?;
                let kind = KeyKind::from_name(kind).filter(|kind| !kind.is_versioned())?;
                (kind, id)
            }
        };
        validate_id(id).ok()?;
        Some((kind, id))
    }

    fn compose(&self, kind: KeyKind, id: &str) -> Key {
        let key = if kind.is_versioned() {
            format!("{}:v{}:{}:{}", self.prefix, self.schema, kind.as_str(), id)
        } else {
            format!("{}:{}:{}", self.prefix, kind.as_str(), id)
        };
        Key(Arc::from(key))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn id_table() {
        let long = "a".repeat(MAX_ID_LEN);
        let too_long = "a".repeat(MAX_ID_LEN + 1);
        let good = [
            "42",
            "a",
            "user:42",
            ":",
            "::a::",
            "ÿ-ü-名前",
            "e@mail.example",
            "a/b?c=d#e",
            long.as_str(),
            "64f1c2a7e4b0c0ffee000001",
        ];
        for id in good {
            assert_eq!(validate_id(id), Ok(()), "{id:?}");
        }
        let bad: [(&str, KeyError); 13] = [
            ("", KeyError::Empty),
            (&too_long, KeyError::TooLong { len: 257, max: 256 }),
            ("has space", KeyError::ForbiddenCharacter(3)),
            (" lead", KeyError::ForbiddenCharacter(0)),
            ("trail ", KeyError::ForbiddenCharacter(5)),
            ("tab\there", KeyError::ForbiddenCharacter(3)),
            ("new\nline", KeyError::ForbiddenCharacter(3)),
            ("cr\rx", KeyError::ForbiddenCharacter(2)),
            ("nul\0x", KeyError::ForbiddenCharacter(3)),
            ("del\x7fx", KeyError::ForbiddenCharacter(3)),
            ("nbsp\u{a0}x", KeyError::ForbiddenCharacter(4)),
            ("ideo\u{3000}x", KeyError::ForbiddenCharacter(4)),
            ("c1\u{85}x", KeyError::ForbiddenCharacter(2)),
        ];
        for (id, error) in bad {
            assert_eq!(validate_id(id), Err(error), "{id:?}");
            assert!(Keyspace::default().key(KeyKind::User, id).is_err());
        }
        // Multi-byte characters count in bytes: 128 two-byte letters are 256 bytes.
        assert_eq!(validate_id(&"é".repeat(128)), Ok(()));
        assert!(matches!(
            validate_id(&"é".repeat(129)),
            Err(KeyError::TooLong { len: 258, .. })
        ));
    }

    #[test]
    fn keys_have_the_documented_shape() {
        let keys = Keyspace::new("app").unwrap();
        assert_eq!(
            keys.key(KeyKind::Roles, "7").unwrap().as_str(),
            "app:v1:roles:7"
        );
        assert_eq!(keys.invalidation_channel(), "app:invalidate");
        assert_eq!(keys.prefix(), "app");
        // Revocations survive schema bumps: no version in their keys.
        assert_eq!(
            keys.key(KeyKind::Revoked, "ab12").unwrap().as_str(),
            "app:revoked:ab12"
        );
        assert_eq!(
            keys.key(KeyKind::Cutoff, "7").unwrap().as_str(),
            "app:cutoff:7"
        );
        assert_eq!(keys.parse("app:v1:revoked:ab12"), None);
        assert_eq!(keys.parse("app:user:7"), None);
        for bad in ["", "a:b", "a b", "a\nb", "a\0b"] {
            assert!(
                matches!(Keyspace::new(bad), Err(KeyError::InvalidPrefix(_))),
                "{bad:?}"
            );
        }
    }

    fn tricky_ids() -> Vec<String> {
        let atoms = ["", ":", "a", "v1", "user", "roles", "42", "::", "é"];
        let mut ids = Vec::new();
        for a in atoms {
            for b in atoms {
                for c in atoms {
                    ids.push(format!("{a}{b}{c}"));
                }
            }
        }
        ids.retain(|id| !id.is_empty());
        ids.sort();
        ids.dedup();
        ids
    }

    #[test]
    fn no_two_inputs_share_a_key_and_every_key_parses_back() {
        let keys = Keyspace::default();
        let ids = tricky_ids();
        let mut seen = HashSet::new();
        for kind in KeyKind::ALL {
            for id in &ids {
                let key = keys.key(kind, id).unwrap();
                assert_eq!(keys.parse(key.as_str()), Some((kind, id.as_str())));
                assert!(seen.insert(key.clone()), "collision on {key:?}");
            }
        }
        assert_eq!(seen.len(), KeyKind::ALL.len() * ids.len());
    }

    #[test]
    fn keyspaces_with_different_prefixes_never_collide() {
        let a = Keyspace::new("a").unwrap();
        let ab = Keyspace::new("ab").unwrap();
        for id in tricky_ids() {
            let key = a.key(KeyKind::User, &id).unwrap();
            assert_eq!(ab.parse(key.as_str()), None);
            assert_ne!(key, ab.key(KeyKind::User, &id).unwrap());
        }
    }

    #[test]
    fn parse_rejects_foreign_keys() {
        let keys = Keyspace::default();
        for foreign in [
            "",
            "authcache",
            "authcache:v1",
            "authcache:v1:user",
            "authcache:v1:user:",
            "authcache:v2:user:42",
            "authcache:vx:user:42",
            "authcache:v1:group:42",
            "other:v1:user:42",
            "authcache:v1:user:has space",
            "authcachex:v1:user:42",
        ] {
            assert_eq!(keys.parse(foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn token_keys_never_contain_the_token() {
        let keys = Keyspace::default();
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl";
        let fingerprint = Fingerprint::of(token);
        assert_eq!(fingerprint.as_str().len(), 64);
        assert!(fingerprint.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        for kind in [KeyKind::Token, KeyKind::Revoked] {
            let key = keys.token_key(kind, &fingerprint);
            assert!(!key.as_str().contains(token));
            for part in token.split('.') {
                assert!(!key.as_str().contains(part), "{part}");
            }
            assert_eq!(keys.parse(key.as_str()), Some((kind, fingerprint.as_str())));
        }
        assert_ne!(Fingerprint::of("a"), Fingerprint::of("b"));
        assert!(format!("{fingerprint:?}").starts_with("Fingerprint("));
    }

    #[test]
    fn keys_display_as_their_string() {
        let key = Keyspace::default().key(KeyKind::Perms, "9").unwrap();
        assert_eq!(key.to_string(), "authcache:v1:perms:9");
        assert_eq!(format!("{key:?}"), "Key(authcache:v1:perms:9)");
        assert_eq!(AsRef::<str>::as_ref(&key), key.as_str());
        assert_eq!(KeyKind::Token.to_string(), "token");
    }
}
