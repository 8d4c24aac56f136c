//! Unit tests of `key`.

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
        keys.key(KeyKind::RolePerms, "7").unwrap().as_str(),
        "app:v1:perms:7"
    );
    assert_eq!(
        keys.key(KeyKind::Checkpoint, "feed").unwrap().as_str(),
        "app:v1:checkpoint:feed"
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
    assert_eq!(before[2].as_str(), "app:v1:token:7");

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
    let newer = at(2).key(KeyKind::RolePerms, "42").unwrap();
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
        Some((KeyKind::RolePerms, "42", Some(2)))
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
    // What `authcache_jwt::fingerprint(token)` answers (core does not depend on jwt).
    let fingerprint =
        Fingerprint::from_hex("0d6c1ad3bbc3a4c51d6bcbd8a0e3ba6d0d1fb3d2c1a0d2ee5b6a1e6f9b2e3c4d")
            .unwrap();
    for kind in [KeyKind::Token, KeyKind::Revoked] {
        let key = keys.token_key(kind, &fingerprint);
        assert!(!key.as_str().contains(token));
        for part in token.split('.') {
            assert!(!key.as_str().contains(part), "{part}");
        }
        assert_eq!(keys.parse(key.as_str()), Some((kind, fingerprint.as_str())));
    }
    assert!(format!("{fingerprint:?}").starts_with("Fingerprint("));
    // Nothing but a fingerprint: not a token, not upper case, not short.
    for not_one in [token, &fingerprint.as_str().to_uppercase(), "abc", ""] {
        assert_eq!(
            Fingerprint::from_hex(not_one),
            Err(KeyError::NotAFingerprint)
        );
    }
}

#[test]
fn keys_display_as_their_string() {
    let key = Keyspace::default().key(KeyKind::RolePerms, "9").unwrap();
    assert_eq!(key.to_string(), "authcache:v1:perms:9");
    assert_eq!(format!("{key:?}"), "Key(authcache:v1:perms:9)");
    assert_eq!(AsRef::<str>::as_ref(&key), key.as_str());
    assert_eq!(KeyKind::Token.to_string(), "token");
}
