//! Unit tests of `user`.

use super::*;

fn sample() -> User {
    User::new("u1", "ada@example.com", "Ada")
        .with_roles(["admin", "dev"])
        .with_updated_at(1_700_000_000_000)
}

#[test]
fn json_accepts_both_id_spellings_and_defaults() {
    let a: User = serde_json::from_str(r#"{"_id":"u1","email":"e","name":"n"}"#).unwrap();
    let b: User = serde_json::from_str(r#"{"id":"u1","email":"e","name":"n"}"#).unwrap();
    assert_eq!(a, b);
    assert!(a.roles.is_empty() && !a.disabled && a.updated_at == 0);
}

#[test]
fn json_writes_the_mongo_id_field() {
    let json = serde_json::to_string(&sample()).unwrap();
    assert!(json.starts_with(r#"{"_id":"u1""#), "{json}");
}

#[test]
fn bincode_round_trip() {
    let config = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(sample(), config).unwrap();
    let (back, _): (User, usize) = bincode::serde::decode_from_slice(&bytes, config).unwrap();
    assert_eq!(back, sample());
}

#[test]
fn record_accessors() {
    let user = sample();
    assert_eq!(user.id(), "u1");
    assert_eq!(user.roles(), ["admin", "dev"]);
    assert!(!user.disabled());
    assert_eq!(UserRecord::email(&user), Some("ada@example.com"));
    assert!(user.with_disabled(true).disabled());
}
