//! Unit tests of the id rules and the field mapping: which `_id`s an id matches, what a new
//! document gets, how stored names are read and written, which schemas are refused.

use super::*;

const HEX: &str = "6b14a3f8c2d94e0f1a2b3c4d";

#[test]
fn auto_matches_both_kinds_for_hex_ids_only() {
    let oid = ObjectId::parse_str(HEX).unwrap();
    assert_eq!(
        IdKind::Auto.filter(HEX),
        Some(doc! { "_id": { "$in": [HEX, oid] } })
    );
    assert_eq!(IdKind::Auto.filter("u1"), Some(doc! { "_id": "u1" }));
    assert_eq!(IdKind::ObjectId.filter(HEX), Some(doc! { "_id": oid }));
    assert_eq!(IdKind::ObjectId.filter("u1"), None);
    assert_eq!(IdKind::String.filter(HEX), Some(doc! { "_id": HEX }));
}

#[test]
fn new_documents_get_a_string_id_unless_object_ids_are_forced() {
    let oid = ObjectId::parse_str(HEX).unwrap();
    assert_eq!(IdKind::Auto.new_document_id(HEX).unwrap(), Bson::from(HEX));
    assert_eq!(
        IdKind::ObjectId.new_document_id(HEX).unwrap(),
        Bson::ObjectId(oid)
    );
    assert!(IdKind::ObjectId.new_document_id("u1").is_err());
}

#[test]
fn object_ids_read_as_lowercase_hex_and_renamed_fields_under_record_names() {
    let schema = MongoSchema::default().user_field("email", "mail");
    let oid = ObjectId::parse_str(HEX).unwrap();
    let stored = RawDocumentBuf::from_document(
        &doc! { "_id": oid, "mail": "a@example.com", "email": "stale", "last_login": 1 },
    )
    .unwrap();
    let read = Document::try_from(&*schema.read_user(&stored).unwrap()).unwrap();
    assert_eq!(
        read,
        doc! { "_id": HEX, "email": "a@example.com", "last_login": 1 }
    );
    let plain = RawDocumentBuf::from_document(&doc! { "_id": "u1", "email": "e" }).unwrap();
    assert!(matches!(
        MongoSchema::default().read_user(&plain).unwrap(),
        UserDocument::Stored(_)
    ));
}

#[test]
fn writes_set_record_fields_under_stored_names_without_the_id() {
    let schema = MongoSchema::default().user_field("email", "mail");
    let set = schema.write_user(doc! { "_id": "u1", "email": "e", "name": "n" });
    assert_eq!(set, doc! { "mail": "e", "name": "n" });
}

#[test]
fn unusable_schemas_are_rejected() {
    assert!(MongoSchema::default().validate().is_ok());
    assert!(
        MongoSchema::default()
            .users_collection("")
            .validate()
            .is_err()
    );
    assert!(
        MongoSchema::default()
            .user_field("email", "a.b")
            .validate()
            .is_err()
    );
    assert!(
        MongoSchema::default()
            .user_field("email", "_id")
            .validate()
            .is_err()
    );
    assert!(
        MongoSchema::default()
            .permissions_field("$p")
            .validate()
            .is_err()
    );
    let clash = MongoSchema::default()
        .user_field("email", "x")
        .user_field("name", "x");
    assert!(clash.validate().is_err());
}

#[test]
fn least_object_id_hex_after_a_string() {
    assert_eq!(
        object_id_hex_after("").as_deref(),
        Some("000000000000000000000000")
    );
    assert_eq!(
        object_id_hex_after("6b").as_deref(),
        Some("6b0000000000000000000000")
    );
    assert_eq!(
        object_id_hex_after(HEX).as_deref(),
        Some("6b14a3f8c2d94e0f1a2b3c4e")
    );
    assert_eq!(object_id_hex_after("ffffffffffffffffffffffff"), None);
    assert_eq!(object_id_hex_after("u-ada"), None);
    assert_eq!(
        object_id_hex_after("6b-x").as_deref(),
        Some("6b0000000000000000000000")
    );
    assert_eq!(
        object_id_hex_after("6bz").as_deref(),
        Some("6c0000000000000000000000")
    );
    assert_eq!(
        object_id_hex_after("A").as_deref(),
        Some("a00000000000000000000000")
    );
    let longer = format!("{HEX}0");
    assert_eq!(
        object_id_hex_after(&longer).as_deref(),
        Some("6b14a3f8c2d94e0f1a2b3c4e")
    );
}
