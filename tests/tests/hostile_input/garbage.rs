//! Inputs no key signed: random bytes and text, token-shaped noise, forgeries whose header
//! and claims are perfect and whose signature is not, and inputs over the size limit.

use authcache::Algorithm;
use authcache_jwt::serde_json::{Value, json};
use authcache_jwt::{SUPPORTED_ALGORITHMS, test_keys};
use proptest::prelude::*;
use proptest::sample::select;

use crate::hostile_input::claims::{json_value, text};
use crate::hostile_input::fixture::{AUD, ISS, MAX_TOKEN_SIZE};
use crate::hostile_input::raw::{b64, hmac_token};

/// Three runs of base64url-ish characters between dots, maybe after a scheme.
const TOKEN_SHAPED: &str = concat!(
    "(Bearer |bearer |BEARER |Basic |Bearer  )?",
    "[A-Za-z0-9_=.-]{0,120}\\.[A-Za-z0-9_-]{0,300}\\.[A-Za-z0-9_-]{0,400}",
);

/// What a client could send as a bearer header value, none of it signed by the services'
/// keys. `&str` is the API's type: random bytes reach it as their lossy UTF-8 reading.
pub(crate) fn unsigned_bearer(now: u64) -> BoxedStrategy<String> {
    prop_oneof![
        2 => proptest::collection::vec(any::<u8>(), 0..600)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        2 => text(200),
        2 => TOKEN_SHAPED,
        1 => "(Bearer)?[ \t]{0,3}(\\.{0,4})",
        5 => forgery(now),
    ]
    .boxed()
}

/// A token for ada, valid in every respect but its signature: random bytes of the lengths
/// signatures have (and their neighbours), token-shaped noise, or an HMAC under a key the
/// services do not hold — including their public keys, the classic algorithm confusion.
fn forgery(now: u64) -> impl Strategy<Value = String> {
    let claims = json!({"sub": "ada", "exp": now + 3600, "iat": now, "iss": ISS, "aud": AUD});
    (header(), signature()).prop_map(move |(header, signature)| {
        let (header, payload) = (header.to_string(), claims.to_string());
        match signature {
            Signature::Bytes(text) => format!("Bearer {}.{}.{text}", b64(&header), b64(&payload)),
            Signature::Hmac(alg, secret) => {
                format!("Bearer {}", hmac_token(alg, secret, &header, &payload))
            }
        }
    })
}

/// A JOSE header: a supported algorithm, `none` in its spellings, near misses, other
/// types; sometimes a `kid`, `crit`, or arbitrary members.
fn header() -> impl Strategy<Value = Value> {
    let names: Vec<Value> = SUPPORTED_ALGORITHMS
        .iter()
        .map(|alg| json!(format!("{alg:?}")))
        .chain(
            [
                "none", "None", "NONE", "", "HS256 ", "hs256", "RS256\0", "ES512", "HS1",
            ]
            .map(|name| json!(name)),
        )
        .chain([json!(null), json!(256), json!(["HS256"])])
        .collect();
    let extras = proptest::collection::btree_map(text(6), json_value(), 0..3);
    let kid = prop_oneof![Just(None), text(40).prop_map(|k| Some(json!(k)))];
    (select(names), kid, any::<bool>(), extras).prop_map(|(alg, kid, crit, extras)| {
        let mut header: authcache_jwt::serde_json::Map<String, Value> =
            extras.into_iter().collect();
        header.insert("alg".into(), alg);
        header.insert("typ".into(), json!("JWT"));
        if let Some(kid) = kid {
            header.insert("kid".into(), kid);
        }
        if crit {
            header.insert("crit".into(), json!(["exp"]));
        }
        Value::Object(header)
    })
}

/// The third segment of a forgery.
#[derive(Debug, Clone)]
enum Signature {
    /// Text as sent.
    Bytes(String),
    /// An HMAC by this algorithm and secret over the forged header and claims.
    Hmac(Algorithm, &'static [u8]),
}

fn signature() -> impl Strategy<Value = Signature> {
    let lengths = vec![
        0usize, 1, 31, 32, 33, 47, 48, 49, 63, 64, 65, 95, 96, 97, 255, 256, 257, 511, 512, 513,
    ];
    let random = select(lengths)
        .prop_flat_map(|len| proptest::collection::vec(any::<u8>(), len))
        .prop_map(|bytes| Signature::Bytes(b64(bytes)));
    let secrets: Vec<&'static [u8]> = vec![
        test_keys::RSA_A_PUBLIC_PEM.as_bytes(),
        test_keys::EC_P256_PUBLIC_PEM.as_bytes(),
        test_keys::ED25519_PUBLIC_PEM.as_bytes(),
        b"the-attacker-does-not-know-the-secret",
    ];
    let hmacs = vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
    prop_oneof![
        3 => random,
        1 => "[A-Za-z0-9_-]{0,400}".prop_map(Signature::Bytes),
        2 => (select(hmacs), select(secrets))
            .prop_map(|(alg, secret)| Signature::Hmac(alg, secret)),
    ]
}

/// Inputs over the size limit: random text repeated, and token-shaped text, with or
/// without a scheme, in ASCII and in multi-byte characters (the limit is in bytes).
pub(crate) fn oversized_bearer() -> impl Strategy<Value = String> {
    let over = MAX_TOKEN_SIZE + 1..MAX_TOKEN_SIZE * 64;
    let scheme = select(vec!["", "Bearer ", "bEaReR "]);
    let repeated = (scheme.clone(), ".{1,8}", over.clone()).prop_map(|(scheme, unit, len)| {
        let text: String = unit.chars().cycle().take(len).collect();
        format!("{scheme}{text}")
    });
    let shaped = (scheme, over, 1usize..100).prop_map(|(scheme, len, cut)| {
        let segment = "eyJhbGciOiJIUzI1NiJ9".repeat(len / 20 + 1);
        format!(
            "{scheme}{}.{}.{}",
            &segment[..cut],
            &segment[..len],
            &segment[..cut]
        )
    });
    prop_oneof![repeated, shaped]
}
