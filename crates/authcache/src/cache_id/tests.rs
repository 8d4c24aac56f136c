//! Unit tests of role and issuer cache ids: every name has one, distinct names never share one.

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
