//! Cache keys: `{prefix}:v{schema}:{kind}:{id}`, built here and nowhere else.
//!
//! Revocations live outside the schema version: `{prefix}:{kind}:{id}` for
//! [`KeyKind::Revoked`], [`KeyKind::Cutoff`] and [`KeyKind::IssuerCutoff`]
//! ([`KeyKind::is_versioned`]), so that a
//! schema bump, or a rolling deploy of old and new builds, never un-revokes a token.
//!
//! # Keyspace epochs
//!
//! A [`Keyspace`] also has an *epoch*, a number that only ever rises, shared by every clone
//! of it. Versioned keys carry it: `{prefix}:v{schema}:{kind}:{id}` at epoch 0 (the keys
//! of every deployment that never raised it) and `{prefix}:v{schema}.{epoch}:{kind}:{id}`
//! after. Raising the epoch ([`Keyspace::adopt_epoch`]) therefore moves every user, role,
//! permission and token entry to keys nobody has written yet: whatever the shared tier
//! holds under the old epoch is never read again and expires with its TTL, without a scan
//! or a delete. Marks (revocations and cutoffs) carry no epoch and survive every raise.
//! Where the epoch's value is kept and how instances agree on it is the facade's business;
//! here it costs one atomic load per key built, and [`Keyspace::epoch_key`] names where
//! the shared value lives.
//!
//! Two different `(kind, id)` pairs never produce the same key, nor one pair at two
//! epochs: the prefix is fixed per [`Keyspace`] and contains no `:`; the second field is
//! `v` followed by the schema and, past epoch 0, `.` and the epoch, both in canonical
//! decimal, or the name of an unversioned kind (none starts with `v`); the kind is a fixed
//! token without `:`; so everything after the fourth field (the third for marks) is the
//! id, verbatim. The epoch key, `{prefix}:keyspace_epoch`, has no `:` after the prefix's,
//! which every other key has. Tokens are keyed only by their SHA-256 [`Fingerprint`]; no
//! raw token or secret can reach a key.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::KeyError;

/// Longest id accepted, in bytes: ids are user ids, not documents.
pub const MAX_ID_LEN: usize = 256;

/// Default key prefix, so authcache entries are easy to find (and flush) in a shared Redis.
pub const DEFAULT_PREFIX: &str = "authcache";

/// Schema version baked into every key; bump it when the shape of a cached value changes
/// so that old entries are simply never read again.
pub const SCHEMA_VERSION: u32 = 1;

/// The last field of [`Keyspace::epoch_key`]: `{prefix}:keyspace_epoch`.
const EPOCH_KEY: &str = "keyspace_epoch";

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
    /// An issuer's "revoke everything issued before" cutoff (the answer to a leaked signing
    /// key): tokens of that issuer issued up to it are refused. Not schema-versioned.
    IssuerCutoff,
}

impl KeyKind {
    /// Every kind, in a fixed order.
    pub const ALL: [KeyKind; 7] = [
        KeyKind::User,
        KeyKind::Roles,
        KeyKind::Perms,
        KeyKind::Token,
        KeyKind::Revoked,
        KeyKind::Cutoff,
        KeyKind::IssuerCutoff,
    ];

    /// `false` for the kinds whose keys carry no schema version: revocation marks and
    /// cutoffs must survive schema bumps, and their readers never decode them with a
    /// schema-dependent type.
    pub fn is_versioned(self) -> bool {
        !matches!(
            self,
            KeyKind::Revoked | KeyKind::Cutoff | KeyKind::IssuerCutoff
        )
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
            KeyKind::IssuerCutoff => "issuer_cutoff",
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

/// The namespace keys live in: a prefix, the schema version and the keyspace epoch (see
/// the [module docs](self)).
///
/// Clones share one epoch: raising it through any clone moves the keys every clone builds.
/// [`Keyspace::new`] and [`Keyspace::default`] start a keyspace of their own at epoch 0.
/// Two keyspaces are equal when they build the same keys now.
#[derive(Debug, Clone)]
pub struct Keyspace {
    prefix: Arc<str>,
    schema: u32,
    epoch: Arc<AtomicU64>,
}

impl Default for Keyspace {
    fn default() -> Self {
        Self {
            prefix: Arc::from(DEFAULT_PREFIX),
            schema: SCHEMA_VERSION,
            epoch: Arc::default(),
        }
    }
}

impl PartialEq for Keyspace {
    fn eq(&self, other: &Self) -> bool {
        self.prefix == other.prefix && self.schema == other.schema && self.epoch() == other.epoch()
    }
}

impl Eq for Keyspace {}

impl Keyspace {
    /// A keyspace with a custom prefix (one application's entries apart from another's),
    /// at epoch 0.
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
            ..Self::default()
        })
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The epoch versioned keys are built under now.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Raises the epoch to `epoch`, for every clone of this keyspace; never lowers it.
    /// Returns whether it rose: then every versioned key built from now on is new, and an
    /// owner must drop what it holds in process under the old keys (after this call, so
    /// that nothing read under an old key is filled behind the drop).
    pub fn adopt_epoch(&self, epoch: u64) -> bool {
        self.epoch.fetch_max(epoch, Ordering::AcqRel) < epoch
    }

    /// Where the shared value of the epoch is kept: `{prefix}:keyspace_epoch`, outside
    /// every epoch and schema version.
    pub fn epoch_key(&self) -> Key {
        Key(Arc::from(format!("{}:{EPOCH_KEY}", self.prefix)))
    }

    /// Whether `key` is this keyspace's [`epoch_key`](Self::epoch_key).
    pub fn is_epoch_key(&self, key: &str) -> bool {
        key.strip_prefix(&*self.prefix)
            .and_then(|rest| rest.strip_prefix(':'))
            == Some(EPOCH_KEY)
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

    /// Splits a key of this keyspace, at its current epoch, back into `(kind, id)`; `None`
    /// for anything else (another prefix, an older schema, another epoch, garbage from the
    /// bus).
    pub fn parse<'k>(&self, key: &'k str) -> Option<(KeyKind, &'k str)> {
        let (kind, id, epoch) = self.parse_any_epoch(key)?;
        (epoch.is_none_or(|epoch| epoch == self.epoch())).then_some((kind, id))
    }

    /// As [`parse`](Self::parse), at any epoch: `(kind, id, epoch)`, where `epoch` is the
    /// epoch a versioned key was built under and `None` for the kinds that have none.
    pub fn parse_any_epoch<'k>(&self, key: &'k str) -> Option<(KeyKind, &'k str, Option<u64>)> {
        let rest = key.strip_prefix(&*self.prefix)?.strip_prefix(':')?;
        let (kind, id, epoch) = match rest.strip_prefix('v') {
            Some(versioned) => {
                let (tag, rest) = versioned.split_once(':')?;
                let (schema, epoch) = match tag.split_once('.') {
                    Some((schema, epoch)) => (schema, canonical(epoch).filter(|e| *e > 0)?),
                    None => (tag, 0),
                };
                if canonical(schema)? != u64::from(self.schema) {
                    return None;
                }
                let (kind, id) = rest.split_once(':')?;
                let kind = KeyKind::from_name(kind).filter(|kind| kind.is_versioned())?;
                (kind, id, Some(epoch))
            }
            None => {
                let (kind, id) = rest.split_once(':')?;
                let kind = KeyKind::from_name(kind).filter(|kind| !kind.is_versioned())?;
                (kind, id, None)
            }
        };
        validate_id(id).ok()?;
        Some((kind, id, epoch))
    }

    fn compose(&self, kind: KeyKind, id: &str) -> Key {
        let (prefix, schema, kind_name) = (&self.prefix, self.schema, kind.as_str());
        let key = if !kind.is_versioned() {
            format!("{prefix}:{kind_name}:{id}")
        } else {
            match self.epoch() {
                0 => format!("{prefix}:v{schema}:{kind_name}:{id}"),
                epoch => format!("{prefix}:v{schema}.{epoch}:{kind_name}:{id}"),
            }
        };
        Key(Arc::from(key))
    }
}

/// A number in canonical decimal (no sign, no leading zero): the only spelling
/// [`Keyspace`] writes, so the only one it reads.
fn canonical(digits: &str) -> Option<u64> {
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    canonical.then(|| digits.parse().ok()).flatten()
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
    fn no_key_is_shared_across_epochs_but_marks_stay_put() {
        let keys = Keyspace::default();
        let ids = tricky_ids();
        let mut seen = HashSet::new();
        let mut marks = HashSet::new();
        for epoch in [0, 1, 2, 10, u64::MAX] {
            keys.adopt_epoch(epoch);
            assert_eq!(keys.epoch(), epoch);
            for kind in KeyKind::ALL {
                for id in &ids {
                    let key = keys.key(kind, id).unwrap();
                    assert_eq!(keys.parse(key.as_str()), Some((kind, id.as_str())));
                    assert_ne!(key, keys.epoch_key());
                    if kind.is_versioned() {
                        assert!(seen.insert(key.clone()), "collision on {key:?}");
                    } else {
                        marks.insert(key);
                    }
                }
            }
        }
        let versioned = KeyKind::ALL.iter().filter(|k| k.is_versioned()).count();
        assert_eq!(seen.len(), 5 * versioned * ids.len());
        assert_eq!(marks.len(), (KeyKind::ALL.len() - versioned) * ids.len());
    }

    #[test]
    fn keys_at_epoch_zero_are_unchanged_and_a_raise_moves_only_versioned_kinds() {
        let keys = Keyspace::new("app").unwrap();
        let before: Vec<Key> = KeyKind::ALL
            .iter()
            .map(|kind| keys.key(*kind, "7").unwrap())
            .collect();
        assert_eq!(keys.epoch(), 0);
        assert_eq!(before[0].as_str(), "app:v1:user:7");
        assert_eq!(before[3].as_str(), "app:v1:token:7");

        let clone = keys.clone();
        assert!(clone.adopt_epoch(3));
        assert_eq!(keys.epoch(), 3, "clones share the epoch");
        assert_eq!(keys, clone);
        assert_ne!(
            keys,
            Keyspace::new("app").unwrap(),
            "a new keyspace is at 0"
        );
        assert_eq!(
            keys.key(KeyKind::User, "7").unwrap().as_str(),
            "app:v1.3:user:7"
        );
        for (kind, old) in KeyKind::ALL.iter().zip(&before) {
            let now = keys.key(*kind, "7").unwrap();
            assert_eq!(now == *old, !kind.is_versioned(), "{kind}: {old} → {now}");
        }
        assert_eq!(keys.epoch_key().as_str(), "app:keyspace_epoch");
        assert!(keys.is_epoch_key("app:keyspace_epoch"));
        assert!(!keys.is_epoch_key("other:keyspace_epoch"));
        assert!(!keys.is_epoch_key("app:keyspace_epoch:1"));
    }

    #[test]
    fn parse_answers_for_the_current_epoch_only() {
        let at = |epoch| {
            let keys = Keyspace::default();
            keys.adopt_epoch(epoch);
            keys
        };
        let old = at(0).key(KeyKind::User, "42").unwrap();
        let current = at(1).key(KeyKind::User, "42").unwrap();
        let mark = at(1).key(KeyKind::Cutoff, "42").unwrap();
        let newer = at(2).key(KeyKind::Perms, "42").unwrap();
        let keys = at(1);

        assert_eq!(keys.parse(old.as_str()), None, "older epoch");
        assert_eq!(keys.parse(newer.as_str()), None, "newer epoch");
        assert_eq!(keys.parse(current.as_str()), Some((KeyKind::User, "42")));
        assert_eq!(keys.parse(mark.as_str()), Some((KeyKind::Cutoff, "42")));
        assert_eq!(
            keys.parse_any_epoch(old.as_str()),
            Some((KeyKind::User, "42", Some(0)))
        );
        assert_eq!(
            keys.parse_any_epoch(newer.as_str()),
            Some((KeyKind::Perms, "42", Some(2)))
        );
        assert_eq!(
            keys.parse_any_epoch(mark.as_str()),
            Some((KeyKind::Cutoff, "42", None))
        );
        assert_eq!(keys.parse_any_epoch(keys.epoch_key().as_str()), None);
    }

    #[test]
    fn an_epoch_never_lowers() {
        let keys = Keyspace::default();
        assert!(!keys.adopt_epoch(0), "already there");
        assert!(keys.adopt_epoch(5));
        assert!(!keys.adopt_epoch(5));
        assert!(!keys.adopt_epoch(4));
        assert!(!keys.clone().adopt_epoch(1));
        assert_eq!(keys.epoch(), 5);
        assert!(keys.adopt_epoch(6));
        assert_eq!(keys.epoch(), 6);
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
            "authcache:v01:user:42",
            "authcache:v+1:user:42",
            "authcache:v1.0:user:42",
            "authcache:v1.01:user:42",
            "authcache:v1.:user:42",
            "authcache:v1.x:user:42",
            "authcache:v1.1.1:user:42",
            "authcache:v.1:user:42",
            "authcache:v1.1:revoked:42",
            "authcache:keyspace_epoch",
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
