//! Unit tests of `token`.

use super::*;

#[test]
fn bearer_scheme_is_case_insensitive_and_needs_exactly_one_space() {
    assert_eq!(strip_bearer(b"Bearer a.b.c"), b"a.b.c");
    assert_eq!(strip_bearer(b"bEaReR a.b.c"), b"a.b.c");
    assert_eq!(strip_bearer(b"Bearer  a.b.c"), b" a.b.c");
    assert_eq!(strip_bearer(b"Bearer"), b"");
    assert_eq!(strip_bearer(b"Bearer "), b"");
    assert_eq!(strip_bearer(b"Basic a.b.c"), b"Basic a.b.c");
    assert_eq!(strip_bearer(b"a.b.c"), b"a.b.c");
    assert_eq!(strip_bearer(b"Bearera.b.c"), b"Bearera.b.c");
}

#[test]
fn size_is_checked_before_anything_else() {
    let huge = vec![0u8; DEFAULT_MAX_TOKEN_SIZE + 1];
    assert!(matches!(
        split(&huge, DEFAULT_MAX_TOKEN_SIZE),
        Err(TokenError::TooLarge { .. })
    ));
}

#[test]
fn fingerprint_is_sha256_hex() {
    assert_eq!(
        fingerprint(""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

/// Pins the encoding (a change would un-revoke every stored id) with an input built by
/// hand, independently of `revocation_hash`.
#[test]
fn revocation_id_encoding_is_pinned() {
    let mut claims = Claims::new("u", 1);
    claims.iss = Some("i".into());
    claims.jti = Some("j".into());
    let mut input = Vec::new();
    for field in [REVOCATION_DOMAIN, b"jti", b"i", b"j"] {
        input.extend((field.len() as u64).to_be_bytes());
        input.extend(field);
    }
    let expected = hex::encode(Sha256::digest(&input));
    assert_eq!(revocation_id("a.b.c", &claims), expected);
    assert_eq!(
        expected,
        "4336e02088ee19ea290a4f34de092a9af615af7bd9933fcb759417e01e7a2a00"
    );
}

#[test]
fn revocation_ids_are_domain_separated() {
    let plain = Claims::new("u", 1);
    let with_jti = |iss: Option<&str>, jti: &str| {
        let mut c = plain.clone();
        c.iss = iss.map(Into::into);
        c.jti = Some(jti.into());
        revocation_id("a.b.c", &c)
    };
    // From fingerprints, of the token and of its signing input.
    let by_input = revocation_id("a.b.c", &plain);
    assert_ne!(by_input, fingerprint("a.b.c"));
    assert_ne!(by_input, fingerprint("a.b"));
    // From each other, even when the jti is the signing input.
    assert_ne!(by_input, with_jti(None, "a.b"));
    assert_ne!(by_input, with_jti(Some("signing-input"), "a.b"));
    // Between fields: the length prefixes keep ("ab", "c") apart from ("a", "bc").
    assert_ne!(with_jti(Some("ab"), "c"), with_jti(Some("a"), "bc"));
    // A missing iss is the empty one, as documented.
    assert_eq!(with_jti(None, "j"), with_jti(Some(""), "j"));
    // The signature segment and a `Bearer ` scheme are not part of it.
    assert_eq!(by_input, revocation_id("Bearer a.b.other", &plain));
}

#[test]
fn subject_rules_match_cache_ids() {
    assert!(check_subject("user-42").is_ok());
    assert!(check_subject(&"x".repeat(256)).is_ok());
    assert!(check_subject(&"x".repeat(257)).is_err());
    assert!(check_subject("").is_err());
    assert!(check_subject("a b").is_err());
    assert!(check_subject("a\u{7f}").is_err());
}
