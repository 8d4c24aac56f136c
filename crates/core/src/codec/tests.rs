//! Unit tests of `codec`.

use serde::Deserialize;

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: String,
    email: String,
    roles: Vec<String>,
    disabled: bool,
    updated_at: u64,
}

fn user() -> User {
    User {
        id: "42".into(),
        email: "ada@example.com".into(),
        roles: vec!["admin".into(), "billing".into()],
        disabled: false,
        updated_at: 1_700_000_000,
    }
}

/// The key every test entry lives under.
fn entry_key() -> Key {
    crate::Keyspace::default()
        .key(crate::KeyKind::Checkpoint, "admin-1")
        .unwrap()
}

fn key(byte: u8) -> SigningKey {
    SigningKey::new([byte; 32]).unwrap()
}

fn signed() -> EnvelopeCodec {
    EnvelopeCodec::new().with_signing_key(key(7))
}

fn codecs() -> Vec<EnvelopeCodec> {
    let all = vec![EnvelopeCodec::new(), signed()];
    #[cfg(feature = "postcard")]
    let all = [
        all,
        vec![
            EnvelopeCodec::new().with_codec(CodecId::Postcard),
            signed().with_codec(CodecId::Postcard),
        ],
    ]
    .concat();
    all
}

#[test]
fn round_trips_with_every_codec_and_signing_policy() {
    for codec in codecs() {
        let entry = codec.encode(&entry_key(), &user()).unwrap();
        assert_eq!(&entry[..4], b"AuCa");
        assert_eq!(entry[4], FORMAT_VERSION);
        assert_eq!(entry[5], codec.codec_id() as u8);
        assert_eq!(codec.decode::<User>(&entry_key(), &entry).unwrap(), user());
        let expected_tail = if codec.is_signed() { TAG_LEN } else { 0 };
        let payload_len = entry.len() - HEADER_LEN - expected_tail;
        assert!(payload_len > 0 && payload_len < 100, "{payload_len}");
    }
}

#[test]
fn every_truncation_is_a_miss() {
    for codec in codecs() {
        let entry = codec.encode(&entry_key(), &user()).unwrap();
        for len in 0..entry.len() {
            assert!(
                codec.decode::<User>(&entry_key(), &entry[..len]).is_err(),
                "{:?} decoded a truncation to {len} bytes",
                codec.codec_id()
            );
        }
    }
}

#[test]
fn every_flipped_bit_of_a_signed_entry_is_a_miss() {
    let codec = signed();
    let entry = codec.encode(&entry_key(), &user()).unwrap();
    for at in 0..entry.len() {
        for bit in 0..8 {
            let mut bad = entry.to_vec();
            bad[at] ^= 1 << bit;
            assert!(
                codec.decode::<User>(&entry_key(), &bad).is_err(),
                "byte {at} bit {bit}"
            );
        }
    }
}

#[test]
fn each_region_names_its_error() {
    let codec = signed();
    let entry = codec.encode(&entry_key(), &user()).unwrap();
    let flip = |at: usize| {
        let mut bad = entry.to_vec();
        bad[at] ^= 0x01;
        codec.decode::<User>(&entry_key(), &bad).unwrap_err()
    };
    assert_eq!(flip(0), DecodeError::BadMagic);
    assert_eq!(flip(4), DecodeError::UnsupportedVersion(FORMAT_VERSION ^ 1));
    assert!(matches!(flip(5), DecodeError::CodecMismatch { .. }));
    assert_eq!(flip(6), DecodeError::MissingTag);
    assert_eq!(flip(HEADER_LEN + 1), DecodeError::BadTag);
    assert_eq!(flip(entry.len() - 1), DecodeError::BadTag);
}

#[test]
fn flipped_header_bits_of_an_unsigned_entry_are_a_miss() {
    let codec = EnvelopeCodec::new();
    let entry = codec.encode(&entry_key(), &user()).unwrap();
    for at in 0..HEADER_LEN {
        for bit in 0..8 {
            let mut bad = entry.to_vec();
            bad[at] ^= 1 << bit;
            assert!(
                codec.decode::<User>(&entry_key(), &bad).is_err(),
                "byte {at} bit {bit}"
            );
        }
    }
}

#[test]
fn wrong_magic_version_and_codec_id_are_rejected() {
    let codec = EnvelopeCodec::new();
    let entry = codec.encode(&entry_key(), &user()).unwrap().to_vec();
    let with = |at: usize, byte: u8| {
        let mut bad = entry.clone();
        bad[at] = byte;
        codec.decode::<User>(&entry_key(), &bad).unwrap_err()
    };
    assert_eq!(with(0, b'X'), DecodeError::BadMagic);
    assert_eq!(with(4, 1), DecodeError::UnsupportedVersion(1));
    assert_eq!(with(4, 0), DecodeError::UnsupportedVersion(0));
    assert_eq!(
        with(5, 99),
        DecodeError::CodecMismatch {
            found: 99,
            expected: CodecId::Bincode
        }
    );
    assert_eq!(with(6, 0x80), DecodeError::UnknownFlags(0x80));
}

#[cfg(feature = "postcard")]
#[test]
fn an_entry_of_another_codec_is_never_misread() {
    let bincode = EnvelopeCodec::new();
    let postcard = EnvelopeCodec::new().with_codec(CodecId::Postcard);
    let entry = postcard.encode(&entry_key(), &user()).unwrap();
    assert!(matches!(
        bincode.decode::<User>(&entry_key(), &entry),
        Err(DecodeError::CodecMismatch { found: 2, .. })
    ));
    let entry = bincode.encode(&entry_key(), &user()).unwrap();
    assert!(matches!(
        postcard.decode::<User>(&entry_key(), &entry),
        Err(DecodeError::CodecMismatch { found: 1, .. })
    ));
}

#[test]
fn signing_policies_must_agree() {
    let unsigned = EnvelopeCodec::new().encode(&entry_key(), &user()).unwrap();
    assert_eq!(
        signed().decode::<User>(&entry_key(), &unsigned),
        Err(DecodeError::MissingTag)
    );
    let tagged = signed().encode(&entry_key(), &user()).unwrap();
    assert_eq!(
        EnvelopeCodec::new().decode::<User>(&entry_key(), &tagged),
        Err(DecodeError::UnexpectedTag)
    );
    // An unsigned entry with the signed flag forged on is too short for its "tag" or
    // fails verification: never accepted.
    let mut forged = unsigned.to_vec();
    forged[6] = FLAG_SIGNED;
    assert!(signed().decode::<User>(&entry_key(), &forged).is_err());
}

#[test]
fn a_tag_made_with_another_key_is_rejected() {
    let other = EnvelopeCodec::new().with_signing_key(key(8));
    let entry = other.encode(&entry_key(), &user()).unwrap();
    assert_eq!(
        signed().decode::<User>(&entry_key(), &entry),
        Err(DecodeError::BadTag)
    );
    // Re-signing a tampered payload needs the key: a forged tag of zeros fails too.
    let mut forged = entry.to_vec();
    let len = forged.len();
    forged[len - TAG_LEN..].fill(0);
    assert_eq!(
        signed().decode::<User>(&entry_key(), &forged),
        Err(DecodeError::BadTag)
    );
}

#[test]
fn garbage_is_a_miss() {
    // A small deterministic generator: the test must be reproducible.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for codec in codecs() {
        for len in 0..300 {
            let garbage: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            assert!(codec.decode::<User>(&entry_key(), &garbage).is_err());
            // A valid header followed by garbage.
            let mut framed = codec.encode(&entry_key(), &()).unwrap()[..HEADER_LEN].to_vec();
            framed.extend_from_slice(&garbage);
            assert!(codec.decode::<User>(&entry_key(), &framed).is_err());
        }
    }
}

#[test]
fn trailing_bytes_are_a_miss() {
    let codec = EnvelopeCodec::new();
    let mut entry = codec.encode(&entry_key(), &user()).unwrap().to_vec();
    entry.push(0);
    assert!(matches!(
        codec.decode::<User>(&entry_key(), &entry),
        Err(DecodeError::Payload(_))
    ));
}

#[test]
fn a_forged_length_cannot_allocate_gigabytes() {
    for codec in codecs() {
        let mut entry =
            codec.encode(&entry_key(), &Vec::<u64>::new()).unwrap()[..HEADER_LEN].to_vec();
        // bincode varint 253 = "u64 follows"; postcard varint of u64::MAX; both claim
        // ~2^64 elements followed by nothing.
        entry.extend_from_slice(&[253, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        entry.extend_from_slice(&[0xff; 10]);
        assert!(codec.decode::<Vec<u64>>(&entry_key(), &entry).is_err());
        assert!(codec.decode::<String>(&entry_key(), &entry).is_err());
    }
}

#[test]
fn payload_size_is_bounded_both_ways() {
    let small = EnvelopeCodec::new().with_max_payload(16);
    let big = vec![0u8; 100];
    assert!(matches!(
        small.encode(&entry_key(), &big),
        Err(CodecError::TooLarge { .. })
    ));
    let entry = EnvelopeCodec::new().encode(&entry_key(), &big).unwrap();
    assert!(matches!(
        small.decode::<Vec<u8>>(&entry_key(), &entry),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn weak_keys_are_refused_and_keys_never_print() {
    assert!(matches!(
        SigningKey::new(b"short"),
        Err(CodecError::WeakKey { len: 5, min: 16 })
    ));
    let key = SigningKey::new(b"0123456789abcdef-secret").unwrap();
    assert_eq!(format!("{key:?}"), "SigningKey(<redacted>)");
    let codec = EnvelopeCodec::new().with_signing_key(key);
    assert!(!format!("{codec:?}").contains("secret"));
}

#[test]
fn codec_errors_convert_into_cache_errors() {
    let error: crate::CacheError = CodecError::Encode("x".into()).into();
    assert!(matches!(error, crate::CacheError::Codec(_)));
}

#[test]
fn a_signed_entry_copied_to_any_other_key_is_a_miss() {
    let codec = signed();
    let entry = codec.encode(&entry_key(), &user()).unwrap();
    let other_prefix = crate::Keyspace::new("otherapp").unwrap();
    let elsewhere = [
        crate::Keyspace::default().key(crate::KeyKind::Checkpoint, "user-2"),
        crate::Keyspace::default().key(crate::KeyKind::User, "admin-1"),
        crate::Keyspace::default().key(crate::KeyKind::RolePerms, "admin-1"),
        other_prefix.key(crate::KeyKind::Checkpoint, "admin-1"),
    ];
    for key in elsewhere {
        let key = key.unwrap();
        assert_eq!(
            codec.decode::<User>(&key, &entry),
            Err(DecodeError::BadTag),
            "{key}"
        );
    }
    assert_eq!(codec.decode::<User>(&entry_key(), &entry).unwrap(), user());
}

#[test]
fn tombstones_are_unique_and_never_decode() {
    let (a, b) = (tombstone(), tombstone());
    assert_ne!(a, b);
    assert!(is_tombstone(&a) && is_tombstone(&b));
    for codec in codecs() {
        assert!(codec.decode::<User>(&entry_key(), &a).is_err());
        let entry = codec.encode(&entry_key(), &user()).unwrap();
        assert!(!is_tombstone(&entry));
    }
}

#[test]
fn previous_keys_verify_but_never_sign() {
    let rotated = EnvelopeCodec::new()
        .with_signing_key(key(2))
        .with_previous_signing_keys([key(7)]);
    let old_entry = signed().encode(&entry_key(), &user()).unwrap();
    assert_eq!(
        rotated.decode::<User>(&entry_key(), &old_entry).unwrap(),
        user()
    );
    let new_entry = rotated.encode(&entry_key(), &user()).unwrap();
    assert_eq!(
        signed().decode::<User>(&entry_key(), &new_entry),
        Err(DecodeError::BadTag),
        "new entries are signed with the current key only"
    );
    let stranger = EnvelopeCodec::new().with_signing_key(key(3));
    let foreign = stranger.encode(&entry_key(), &user()).unwrap();
    assert_eq!(
        rotated.decode::<User>(&entry_key(), &foreign),
        Err(DecodeError::BadTag)
    );
}
