//! Deeply nested JSON in a token the right key signed, and what may become of it.

use authcache::{AuthError, Claims, Principal};
use authcache_jwt::serde_json::{Value, json};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseError;

use crate::auth_support::SECRET;
use crate::hostile_input::claims::Fault;
use crate::hostile_input::fixture::{
    expect_signed, expect_token_error, expect_truth, same_registered_claims,
};
use crate::hostile_input::raw::{Nesting, hmac_token};
use authcache::Algorithm;

/// Where the nesting goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// An unknown header member (which the verifier skips).
    Header,
    /// An extra claim (which the verifier keeps as raw text).
    Extra,
    /// A registered claim, which must be a string, a date or a list of strings.
    Registered(&'static str),
    /// The whole claims segment.
    Claims,
}

/// A place, a shape, and a depth from one level to 400,000.
pub(crate) fn case() -> impl Strategy<Value = (Place, Nesting, usize)> {
    let places = vec![
        Place::Header,
        Place::Extra,
        Place::Registered("sub"),
        Place::Registered("exp"),
        Place::Registered("aud"),
        Place::Claims,
    ];
    let shapes = vec![
        Nesting::Arrays,
        Nesting::Objects,
        Nesting::Mixed,
        Nesting::Unclosed,
    ];
    let depth = prop_oneof![1usize..200, 200usize..4_000, 4_000usize..400_000];
    (select(places), select(shapes), depth)
}

/// `Bearer <token>`: `claims` with `nested` put at `place`, HS256-signed with the
/// services' secret.
pub(crate) fn token(place: Place, nested: &str, claims: &Claims) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let payload = claims.to_jwt_payload();
    let (header, payload) = match place {
        Place::Header => (with_member(&header, "x", nested), payload.to_string()),
        Place::Extra => (header.to_string(), with_member(&payload, "x", nested)),
        Place::Registered(name) => (header.to_string(), with_member(&payload, name, nested)),
        Place::Claims => (header.to_string(), nested.to_owned()),
    };
    format!(
        "Bearer {}",
        hmac_token(Algorithm::HS256, SECRET, &header, &payload)
    )
}

/// `object` with member `name` set to the raw JSON text `value`.
fn with_member(object: &Value, name: &str, value: &str) -> String {
    let mut object = object.as_object().cloned().unwrap_or_default();
    object.remove(name);
    let text = Value::Object(object).to_string();
    let open = &text[..text.len() - 1];
    let comma = if open.len() > 1 { "," } else { "" };
    format!("{open}{comma}{}:{value}}}", json!(name))
}

/// A typed error, or the principal of exactly what was signed: nesting in an unknown
/// header member or an extra may be accepted (both are skipped or kept as text, never
/// parsed into a tree), nesting where a string or date belongs never is.
pub(crate) fn check(
    answer: &Result<Principal, AuthError>,
    place: Place,
    shape: Nesting,
    nested: &str,
    claims: &Claims,
) -> Result<(), TestCaseError> {
    let closed = shape != Nesting::Unclosed;
    match (place, answer) {
        (Place::Header, Ok(_)) => {
            prop_assert!(closed, "an unclosed header was accepted");
            expect_signed(answer, claims)
        }
        (Place::Extra, Ok(principal)) => {
            prop_assert!(closed, "unclosed claims were accepted");
            expect_truth(answer, &claims.sub)?;
            same_registered_claims(&principal.claims, claims)?;
            let kept = principal.claims.extra_json();
            prop_assert!(
                kept.ends_with(&format!("\"x\":{nested}}}")),
                "the extra is kept as signed"
            );
            // Reading it back stops cleanly at serde_json's depth limit (128).
            let read = principal.claims.extra_claims();
            prop_assert!(read.is_ok() || nested.len() > 100, "{:?}", read.err());
            Ok(())
        }
        (Place::Registered(name), _) => {
            let error = expect_token_error(answer)?;
            let fault = Fault::of(error);
            prop_assert!(
                matches!(fault, Some(Fault::Invalid(claim)) if claim == name)
                    || fault == Some(Fault::NotAnObject),
                "{:?}",
                error
            );
            Ok(())
        }
        _ => expect_token_error(answer).map(drop),
    }
}
