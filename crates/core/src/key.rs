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
    /// A user record (its roles included: a user's roles are those of the record).
    User,
    /// The permissions of one role, keyed by the role's cache id; a user's permissions
    /// are the union of their roles' entries. Its key string stays `perms`.
    RolePerms,
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
    /// The repository watcher's resume point in its change feed (one key per keyspace,
    /// kept at epoch 0 by its owner). No tier reads it.
    Checkpoint,
}

impl KeyKind {
    /// Every kind, in a fixed order.
    pub const ALL: [KeyKind; 7] = [
        KeyKind::User,
        KeyKind::RolePerms,
        KeyKind::Token,
        KeyKind::Revoked,
        KeyKind::Cutoff,
        KeyKind::IssuerCutoff,
        KeyKind::Checkpoint,
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
            KeyKind::RolePerms => "perms",
            KeyKind::Token => "token",
            KeyKind::Revoked => "revoked",
            KeyKind::Cutoff => "cutoff",
            KeyKind::IssuerCutoff => "issuer_cutoff",
            KeyKind::Checkpoint => "checkpoint",
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

/// The SHA-256 of a token as 64 lowercase hex digits: the only form in which a token
/// reaches a key. It is computed in one place, `authcache_jwt::fingerprint` (which also
/// takes a `Bearer ` header value); this type only accepts its result, so a raw token can
/// never be passed where a fingerprint is expected.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Length of a fingerprint: a SHA-256 in hex.
    pub const LEN: usize = 64;

    /// A fingerprint computed by `authcache_jwt::fingerprint`.
    ///
    /// # Errors
    /// [`KeyError::NotAFingerprint`] for anything but 64 lowercase hex digits.
    pub fn from_hex(hex: &str) -> Result<Self, KeyError> {
        let digits = hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if hex.len() == Self::LEN && digits {
            Ok(Self(hex.to_owned()))
        } else {
            Err(KeyError::NotAFingerprint)
        }
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
mod tests;
