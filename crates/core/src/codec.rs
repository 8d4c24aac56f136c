//! The envelope every L2 value is stored in.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "AuCa"
//! 4       1     format version (FORMAT_VERSION)
//! 5       1     codec id (CodecId)
//! 6       1     flags (bit 0: signed)
//! 7       n     payload, encoded by the codec
//! 7+n     32    HMAC-SHA256 over (len(key) as u32 BE ‖ key ‖ bytes 0..7+n), only when signed
//! ```
//!
//! The header makes an entry self-describing: an entry written by another codec, another
//! format version or with another signing policy is rejected before its payload is looked
//! at. The tag makes a poisoned cache (someone who can write to Redis) unable to forge
//! entries, and because it covers the full key the entry was written under (prefix, schema,
//! kind and id, length-prefixed so no two keys share a tag input), a genuine entry copied
//! to any other key — an admin's roles over another user's — does not verify there. During
//! a key rotation, entries signed with a previous key keep verifying
//! ([`EnvelopeCodec::with_previous_signing_keys`]); new entries are signed with the current one. Every way an entry can be wrong is a [`DecodeError`], which callers treat as a
//! miss; nothing here panics on input.

use std::fmt;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

use crate::Key;

type HmacSha256 = Hmac<Sha256>;

/// First four bytes of every envelope.
pub const MAGIC: [u8; 4] = *b"AuCa";

/// Version of the envelope layout above; bump when the layout changes.
pub const FORMAT_VERSION: u8 = 2;

/// Bytes before the payload: magic, version, codec id, flags.
pub const HEADER_LEN: usize = MAGIC.len() + 3;

/// Length of the HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;

/// Shortest signing key accepted: 16 bytes (128 bits) is the least HMAC-SHA256 should be
/// keyed with; shorter keys are guessable.
pub const MIN_SIGNING_KEY_LEN: usize = 16;

/// Largest payload accepted by default, 1 MiB: a user with its roles is a few hundred bytes,
/// so anything near this size is not ours.
pub const DEFAULT_MAX_PAYLOAD: usize = 1 << 20;

/// Upper bound on what bincode may allocate while decoding, whatever lengths a forged
/// payload claims (bincode's limit is a compile-time constant).
const BINCODE_DECODE_LIMIT: usize = 4 << 20;

const FLAG_SIGNED: u8 = 0b0000_0001;

/// Which serializer wrote a payload; stored in the envelope header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum CodecId {
    /// bincode 2, serde path, standard configuration (varint integers).
    Bincode = 1,
    /// postcard 1.
    #[cfg(feature = "postcard")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postcard")))]
    Postcard = 2,
}

impl CodecId {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Bincode),
            #[cfg(feature = "postcard")]
            2 => Some(Self::Postcard),
            _ => None,
        }
    }
}

/// A serde payload format that can fill an envelope.
pub trait Codec {
    /// The id written into the envelope header.
    const ID: CodecId;

    /// Appends the encoding of `value` to `out`.
    ///
    /// # Errors
    /// [`CodecError::Encode`] when the value cannot be represented (e.g. a map with
    /// non-serializable keys).
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError>;

    /// Decodes a whole payload; trailing bytes are an error.
    ///
    /// # Errors
    /// [`DecodeError::Payload`] when the bytes are not exactly one valid `T`.
    fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError>;
}

/// bincode 2 through serde, with a decode allocation limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

impl Bincode {
    fn config() -> impl bincode::config::Config {
        bincode::config::standard().with_limit::<BINCODE_DECODE_LIMIT>()
    }
}

impl Codec for Bincode {
    const ID: CodecId = CodecId::Bincode;

    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        bincode::serde::encode_into_std_write(value, out, Self::config())
            .map(drop)
            .map_err(|e| CodecError::Encode(e.to_string()))
    }

    fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError> {
        let (value, read) = bincode::serde::decode_from_slice(payload, Self::config())
            .map_err(|e| DecodeError::Payload(e.to_string()))?;
        ensure_consumed(read, payload.len())?;
        Ok(value)
    }
}

/// postcard 1: compact, maintained, `no_std`-friendly.
#[cfg(feature = "postcard")]
#[cfg_attr(docsrs, doc(cfg(feature = "postcard")))]
#[derive(Debug, Clone, Copy, Default)]
pub struct Postcard;

#[cfg(feature = "postcard")]
impl Codec for Postcard {
    const ID: CodecId = CodecId::Postcard;

    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let encoded = postcard::to_stdvec(value).map_err(|e| CodecError::Encode(e.to_string()))?;
        out.extend_from_slice(&encoded);
        Ok(())
    }

    fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError> {
        // postcard reads lengths against the slice, so a forged length cannot allocate
        // more than the payload holds.
        let (value, rest) =
            postcard::take_from_bytes(payload).map_err(|e| DecodeError::Payload(e.to_string()))?;
        ensure_consumed(payload.len() - rest.len(), payload.len())?;
        Ok(value)
    }
}

fn ensure_consumed(read: usize, len: usize) -> Result<(), DecodeError> {
    if read == len {
        Ok(())
    } else {
        Err(DecodeError::Payload(format!(
            "{} trailing bytes after the value",
            len.saturating_sub(read)
        )))
    }
}

/// A secret for HMAC-SHA256 tags. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SigningKey(HmacSha256);

impl SigningKey {
    /// Prepares a signing key; share the same bytes between every instance of a deployment.
    ///
    /// # Errors
    /// [`CodecError::WeakKey`] when shorter than [`MIN_SIGNING_KEY_LEN`] bytes.
    pub fn new(bytes: impl AsRef<[u8]>) -> Result<Self, CodecError> {
        let bytes = bytes.as_ref();
        let weak = || CodecError::WeakKey {
            len: bytes.len(),
            min: MIN_SIGNING_KEY_LEN,
        };
        if bytes.len() < MIN_SIGNING_KEY_LEN {
            return Err(weak());
        }
        HmacSha256::new_from_slice(bytes)
            .map(Self)
            .map_err(|_| weak())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// Writes and reads envelopes with one codec and one signing policy.
///
/// Cheap to clone. Every instance sharing an L2 must use the same codec and signing key;
/// entries written otherwise are read as misses, never misread.
#[derive(Debug, Clone)]
pub struct EnvelopeCodec {
    codec: CodecId,
    key: Option<SigningKey>,
    /// Keys that still verify (never sign): the keys being rotated out.
    previous: Vec<SigningKey>,
    max_payload: usize,
}

impl Default for EnvelopeCodec {
    fn default() -> Self {
        Self {
            codec: CodecId::Bincode,
            key: None,
            previous: Vec::new(),
            max_payload: DEFAULT_MAX_PAYLOAD,
        }
    }
}

impl EnvelopeCodec {
    /// bincode, unsigned, payloads up to [`DEFAULT_MAX_PAYLOAD`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Selects the payload codec.
    pub fn with_codec(mut self, codec: CodecId) -> Self {
        self.codec = codec;
        self
    }

    /// Signs every entry written and requires a valid tag on every entry read.
    pub fn with_signing_key(mut self, key: SigningKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Keys that still verify entries but never sign new ones: during a rotation, deploy
    /// the new key as the signing key and the old one here, on every instance; once the
    /// longest TTL has passed, drop the old one. Ignored without a signing key.
    pub fn with_previous_signing_keys(
        mut self,
        keys: impl IntoIterator<Item = SigningKey>,
    ) -> Self {
        self.previous = keys.into_iter().collect();
        self
    }

    /// Largest payload written or read, in bytes.
    pub fn with_max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// The payload codec.
    pub fn codec_id(&self) -> CodecId {
        self.codec
    }

    /// `true` when entries carry an HMAC tag.
    pub fn is_signed(&self) -> bool {
        self.key.is_some()
    }

    /// Wraps `value` in an envelope bound to `key`: signed, it verifies under that key only.
    ///
    /// # Errors
    /// [`CodecError::Encode`] when the codec rejects the value, [`CodecError::TooLarge`] when
    /// the payload exceeds the configured maximum.
    pub fn encode<T: Serialize + ?Sized>(&self, key: &Key, value: &T) -> Result<Bytes, CodecError> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT_VERSION);
        out.push(self.codec as u8);
        out.push(if self.key.is_some() { FLAG_SIGNED } else { 0 });
        match self.codec {
            CodecId::Bincode => Bincode::encode(value, &mut out)?,
            #[cfg(feature = "postcard")]
            CodecId::Postcard => Postcard::encode(value, &mut out)?,
        }
        let payload_len = out.len() - HEADER_LEN;
        if payload_len > self.max_payload {
            return Err(CodecError::TooLarge {
                len: payload_len,
                max: self.max_payload,
            });
        }
        if let Some(signing) = &self.key {
            let tag = signing.tag(key, &out);
            out.extend_from_slice(&tag);
        }
        Ok(Bytes::from(out))
    }

    /// Checks and unwraps an envelope read under `key`.
    ///
    /// # Errors
    /// A [`DecodeError`] naming the first check that failed; callers treat every one of
    /// them as a cache miss.
    pub fn decode<T: DeserializeOwned>(&self, key: &Key, entry: &[u8]) -> Result<T, DecodeError> {
        let payload = self.open(key, entry)?;
        if payload.len() > self.max_payload {
            return Err(DecodeError::TooLarge {
                len: payload.len(),
                max: self.max_payload,
            });
        }
        match self.codec {
            CodecId::Bincode => Bincode::decode(payload),
            #[cfg(feature = "postcard")]
            CodecId::Postcard => Postcard::decode(payload),
        }
    }

    /// Validates the header and tag; returns the payload.
    fn open<'e>(&self, key: &Key, entry: &'e [u8]) -> Result<&'e [u8], DecodeError> {
        let (header, body) = entry
            .split_at_checked(HEADER_LEN)
            .ok_or(DecodeError::Truncated)?;
        if header[..MAGIC.len()] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let [version, codec, flags] = [header[4], header[5], header[6]];
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        if CodecId::from_byte(codec) != Some(self.codec) {
            return Err(DecodeError::CodecMismatch {
                found: codec,
                expected: self.codec,
            });
        }
        if flags & !FLAG_SIGNED != 0 {
            return Err(DecodeError::UnknownFlags(flags));
        }
        match (&self.key, flags & FLAG_SIGNED != 0) {
            (None, false) => Ok(body),
            (None, true) => Err(DecodeError::UnexpectedTag),
            (Some(_), false) => Err(DecodeError::MissingTag),
            (Some(current), true) => {
                let (signed, tag) = split_tag(entry)?;
                let verifies = std::iter::once(current)
                    .chain(&self.previous)
                    .any(|signing| signing.verifies(key, signed, tag));
                if verifies {
                    Ok(&signed[HEADER_LEN..])
                } else {
                    Err(DecodeError::BadTag)
                }
            }
        }
    }
}

/// First bytes of a tombstone: the magic, then a version byte no envelope uses.
const TOMBSTONE_HEADER: [u8; 5] = [b'A', b'u', b'C', b'a', 0xff];

/// A tombstone: what an invalidation leaves in L2 instead of deleting the key. Readers
/// see a miss; a fill that read the key before the invalidation expected other bytes, so
/// its conditional write fails. Each tombstone is unique (128 random bits), so a fill can
/// never mistake a newer invalidation for the one it saw.
pub fn tombstone() -> Bytes {
    let mut bytes = TOMBSTONE_HEADER.to_vec();
    bytes.extend_from_slice(&rand::random::<u128>().to_be_bytes());
    Bytes::from(bytes)
}

/// `true` for an entry written by [`tombstone`].
pub fn is_tombstone(entry: &[u8]) -> bool {
    entry.starts_with(&TOMBSTONE_HEADER)
}

/// Splits a signed entry into the signed bytes and the trailing tag.
fn split_tag(entry: &[u8]) -> Result<(&[u8], &[u8]), DecodeError> {
    let signed_len = entry
        .len()
        .checked_sub(TAG_LEN)
        .filter(|&len| len >= HEADER_LEN)
        .ok_or(DecodeError::Truncated)?;
    Ok(entry.split_at(signed_len))
}

impl SigningKey {
    /// The MAC over the key the entry lives under, then the envelope. The key is
    /// length-prefixed so that no (key, envelope) pair shares its input with another.
    fn mac(&self, key: &Key, envelope: &[u8]) -> HmacSha256 {
        let mut mac = self.0.clone();
        let key = key.as_str().as_bytes();
        // Keys are at most a few hundred bytes (ids are capped), far below u32::MAX.
        let len = u32::try_from(key.len()).unwrap_or(u32::MAX);
        mac.update(&len.to_be_bytes());
        mac.update(key);
        mac.update(envelope);
        mac
    }

    fn tag(&self, key: &Key, envelope: &[u8]) -> [u8; TAG_LEN] {
        self.mac(key, envelope).finalize().into_bytes().into()
    }

    /// Checks `tag` in constant time (`verify_slice` compares through `subtle`).
    fn verifies(&self, key: &Key, envelope: &[u8], tag: &[u8]) -> bool {
        self.mac(key, envelope).verify_slice(tag).is_ok()
    }
}

/// Why a value could not be written, or a signing key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The codec could not represent the value.
    #[error("cannot encode value: {0}")]
    Encode(String),
    /// The encoded payload is larger than the configured maximum.
    #[error("encoded value is {len} bytes; the limit is {max}")]
    TooLarge {
        /// Payload length in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The signing key is too short to be safe.
    #[error("signing key is {len} bytes; at least {min} are required")]
    WeakKey {
        /// The key's length in bytes.
        len: usize,
        /// The minimum, [`MIN_SIGNING_KEY_LEN`].
        min: usize,
    },
}

impl From<CodecError> for crate::CacheError {
    fn from(error: CodecError) -> Self {
        Self::Codec(error.to_string())
    }
}

/// Why an entry was rejected. Every variant means "treat as a miss".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Shorter than its header (and tag, when signed).
    #[error("entry is truncated")]
    Truncated,
    /// Does not start with [`MAGIC`]: not an authcache envelope.
    #[error("entry does not start with the authcache magic")]
    BadMagic,
    /// Written with another envelope layout.
    #[error("entry has envelope format version {0}; expected {FORMAT_VERSION}")]
    UnsupportedVersion(u8),
    /// Written by another codec (or one not compiled in).
    #[error("entry was written by codec {found}; this reader uses {expected:?}")]
    CodecMismatch {
        /// The codec id byte found in the header.
        found: u8,
        /// The codec this reader is configured with.
        expected: CodecId,
    },
    /// Header flags this version does not know.
    #[error("entry has unknown flags {0:#04x}")]
    UnknownFlags(u8),
    /// Signing is configured but the entry is not signed.
    #[error("entry is not signed but a signing key is configured")]
    MissingTag,
    /// The entry is signed but no signing key is configured.
    #[error("entry is signed but no signing key is configured")]
    UnexpectedTag,
    /// The tag does not match: tampered, or signed with another key.
    #[error("entry tag does not verify")]
    BadTag,
    /// The payload is larger than the configured maximum.
    #[error("entry payload is {len} bytes; the limit is {max}")]
    TooLarge {
        /// Payload length in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The payload is not one valid value of the expected type.
    #[error("entry payload does not decode: {0}")]
    Payload(String),
}

#[cfg(test)]
mod tests;
