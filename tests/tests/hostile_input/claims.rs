//! Random claim sets and what a correct verifier makes of them.
//!
//! Each registered claim is drawn from values that pass (absent where optional, the right
//! type and range) and values that fail in a known way (absent where required, wrong type,
//! negative or out-of-range dates, `exp` in the past, `nbf` in the future, another issuer or
//! audience); the extras are arbitrary JSON. `exp` and `iat` are also drawn together, a
//! lifetime apart around the services' maximum ([`MAX_LIFETIME`]).
//!
//! The verifier reads the claims object, then checks `sub`, then `exp` and `nbf`, then the
//! lifetime, then `iss`, then `aud`, and refuses with the first fault it meets. The faults
//! of single claims are kept as a set: a refusal must name one of them (which one depends on
//! the object's member order and the checks'). The lifetime check is the one cross-claim
//! rule — `iat` present, not later than the clock plus the [`LEEWAY`], `exp − iat` at most
//! the maximum — and is modelled by its place in that order: it is reached only when the set
//! holds no fault found before it (everything but a wrong or missing `iss` or `aud`), and
//! then its fault is the only answer; when an earlier fault is there, the verifier never
//! reaches it. No fault at all → the verifier must accept, with exactly these claims.
//!
//! Dates are far from the clock's boundaries (`exp` at least [`FAR`] ahead or 200 s behind
//! the fixture's clock; `nbf` not after it, or `FAR` ahead; `iat` not after the clock plus
//! the leeway, or `FAR` beyond that): a run shorter than `FAR` minus the leeway never
//! changes a verdict. Lifetimes are exact: whole seconds, the same whenever they are checked.

use std::collections::BTreeMap;
use std::ops::Range;

use authcache::{Claims, TokenError};
use authcache_jwt::serde_json::{Map, Value, json};
use authcache_jwt::{Malformed, REGISTERED_CLAIMS};
use proptest::prelude::*;
use proptest::sample::select;

use crate::hostile_input::fixture::{AUD, ISS, KNOWN_SUBJECTS, LEEWAY, MAX_LIFETIME};

/// How far from the fixture's clock a date must be for a run never to change its verdict.
const FAR: u64 = 600;

/// Why a verifier must refuse a claim set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Missing(&'static str),
    Invalid(&'static str),
    Expired,
    NotYetValid,
    /// `exp − iat`, in whole seconds, over [`MAX_LIFETIME`].
    LifetimeTooLong {
        lifetime: u64,
    },
    WrongIssuer,
    WrongAudience,
    /// The claims are not a JSON object (or not JSON).
    NotAnObject,
}

impl Fault {
    /// The fault a verifier's refusal names, if it is about the claims.
    pub(crate) fn of(error: &TokenError) -> Option<Self> {
        Some(match error {
            TokenError::MissingClaim(claim) => Self::Missing(claim),
            TokenError::InvalidClaim { claim, .. } => Self::Invalid(claim),
            TokenError::Expired => Self::Expired,
            TokenError::NotYetValid => Self::NotYetValid,
            // Over some other maximum: the service did not enforce the fixture's.
            TokenError::LifetimeTooLong { lifetime, max } if *max == MAX_LIFETIME => {
                Self::LifetimeTooLong {
                    lifetime: lifetime.as_secs(),
                }
            }
            TokenError::WrongIssuer => Self::WrongIssuer,
            TokenError::WrongAudience => Self::WrongAudience,
            TokenError::Malformed(Malformed::ClaimsJson) => Self::NotAnObject,
            _ => return None,
        })
    }

    /// Whether the verifier looks for this fault of a single claim only after the lifetime
    /// check: a missing or wrong `iss` or `aud` (its last two checks). Every other one is
    /// found before it: reading the object (wrong types, a missing `sub` or `exp`), `sub`'s
    /// content, `exp` and `nbf` against the clock.
    fn found_after_lifetime(self) -> bool {
        matches!(
            self,
            Self::Missing("iss" | "aud") | Self::WrongIssuer | Self::WrongAudience
        )
    }
}

/// A generated claim set: the payload to sign, and the verdict it deserves.
#[derive(Debug, Clone)]
pub(crate) struct ClaimsCase {
    pub(crate) payload: Value,
    /// `Ok`: accepted with exactly these claims; `Err`: refused for one of these faults.
    pub(crate) verdict: Result<Claims, Vec<Fault>>,
    /// What the lifetime check decided, when the verifier reaches it (no earlier fault):
    /// `Ok(lifetime)` passed with `exp − iat` (which may still be refused for `iss` or
    /// `aud`), `Err` the refusal. `None`: not reached, or not a claims object.
    pub(crate) lifetime: Option<Result<u64, Fault>>,
}

/// What the lifetime check can decide, by name: a run must meet each.
pub(crate) const LIFETIME_OUTCOMES: [&str; 5] = [
    "no iat",
    "iat in the future",
    "too long",
    "exactly the maximum",
    "within the maximum",
];

impl ClaimsCase {
    /// What the lifetime check decides (an index into [`LIFETIME_OUTCOMES`]), when the
    /// verifier reaches it.
    pub(crate) fn lifetime_outcome(&self) -> Option<usize> {
        let index = match self.lifetime? {
            Err(Fault::Missing(_)) => 0,
            Err(Fault::Invalid(_)) => 1,
            Err(Fault::LifetimeTooLong { .. }) => 2,
            Err(other) => unreachable!("{other:?} is not the lifetime check's"),
            Ok(lifetime) if lifetime == MAX_LIFETIME.as_secs() => 3,
            Ok(_) => 4,
        };
        Some(index)
    }
}

/// One registered claim: its JSON (`None`: absent) and what the verifier reads from it.
#[derive(Debug, Clone)]
struct Slot<T> {
    json: Option<Value>,
    read: Result<T, Fault>,
}

fn good<T>(json: Value, read: T) -> Slot<T> {
    Slot {
        json: Some(json),
        read: Ok(read),
    }
}

fn bad<T>(json: Value, fault: Fault) -> Slot<T> {
    Slot {
        json: Some(json),
        read: Err(fault),
    }
}

fn absent<T>(read: Result<T, Fault>) -> Slot<T> {
    Slot { json: None, read }
}

/// Random claim sets around the fixture's clock `now`: mostly objects, sometimes not.
pub(crate) fn claims_case(now: u64) -> BoxedStrategy<ClaimsCase> {
    let object = (
        (subject(), dates(now), not_before(now)),
        (issuer(), audience(), token_id(), extras()),
    )
        .prop_map(move |((sub, (exp, iat), nbf), (iss, aud, jti, extras))| {
            assemble(now, sub, exp, nbf, iat, iss, aud, jti, extras)
        });
    let not_an_object = json_value()
        .prop_map(|value| match value {
            Value::Object(_) => Value::Array(vec![value]),
            other => other,
        })
        .prop_map(|payload| ClaimsCase {
            payload,
            verdict: Err(vec![Fault::NotAnObject]),
            lifetime: None,
        });
    prop_oneof![19 => object, 1 => not_an_object].boxed()
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    now: u64,
    sub: Slot<String>,
    exp: Slot<u64>,
    nbf: Slot<Option<u64>>,
    iat: Slot<Option<u64>>,
    iss: Slot<Option<String>>,
    aud: Slot<Vec<String>>,
    jti: Slot<Option<String>>,
    extras: Map<String, Value>,
) -> ClaimsCase {
    let mut payload = extras.clone();
    let mut faults = Vec::new();
    let mut place = |name: &str, json: Option<Value>, fault: Option<Fault>| {
        if let Some(json) = json {
            payload.insert(name.to_owned(), json);
        }
        faults.extend(fault);
    };
    place("sub", sub.json, sub.read.as_ref().err().copied());
    place("exp", exp.json, exp.read.as_ref().err().copied());
    place("nbf", nbf.json, nbf.read.as_ref().err().copied());
    place("iat", iat.json, iat.read.as_ref().err().copied());
    place("iss", iss.json, iss.read.as_ref().err().copied());
    place("aud", aud.json, aud.read.as_ref().err().copied());
    place("jti", jti.json, jti.read.as_ref().err().copied());
    // Reached only when every fault is found after it; then `exp` and `iat` were read.
    let lifetime = match (&exp.read, &iat.read) {
        (Ok(exp), Ok(iat)) if faults.iter().all(|f| f.found_after_lifetime()) => {
            Some(check_lifetime(now, *exp, *iat))
        }
        _ => None,
    };
    let verdict = match (
        lifetime, sub.read, exp.read, nbf.read, iat.read, iss.read, aud.read, jti.read,
    ) {
        // The first check that fails: the `iss` and `aud` faults come after it.
        (Some(Err(fault)), ..) => Err(vec![fault]),
        (_, Ok(sub), Ok(exp), Ok(nbf), Ok(iat), Ok(iss), Ok(aud), Ok(jti)) => {
            let mut claims = Claims::new(sub, exp);
            (claims.nbf, claims.iat, claims.iss, claims.aud, claims.jti) =
                (nbf, iat, iss, aud, jti);
            Ok(claims.with_extra(extras))
        }
        _ => Err(faults),
    };
    ClaimsCase {
        payload: Value::Object(payload),
        verdict,
        lifetime,
    }
}

/// The verifier's lifetime check of a readable `exp` and `iat`, at any moment of a run from
/// the fixture's clock `now` on: `iat` present, not later than the clock plus the leeway,
/// and `exp − iat` (whole seconds, no leeway) at most the maximum. `Ok`: the lifetime.
fn check_lifetime(now: u64, exp: u64, iat: Option<u64>) -> Result<u64, Fault> {
    let Some(iat) = iat else {
        return Err(Fault::Missing("iat"));
    };
    let latest = now + LEEWAY.as_secs();
    // An `iat` just past the leeway would be in the future now and not a minute later.
    assert!(
        iat <= latest || iat >= latest + FAR,
        "iat {iat} is too near the clock ({now}) for a verdict: fix the generator"
    );
    if iat > latest {
        return Err(Fault::Invalid("iat"));
    }
    let lifetime = exp.saturating_sub(iat);
    if lifetime > MAX_LIFETIME.as_secs() {
        return Err(Fault::LifetimeTooLong { lifetime });
    }
    Ok(lifetime)
}

// ---------------------------------------------------------------------------------------
// Registered claims
// ---------------------------------------------------------------------------------------

/// `sub`: known users, unknown but valid ids, arbitrary strings judged by the documented
/// rule, lengths around the 256-byte limit, other JSON types, absence.
fn subject() -> BoxedStrategy<Slot<String>> {
    let judged = |s: String| {
        let fine = !s.is_empty()
            && s.len() <= 256
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if fine {
            good(json!(s), s)
        } else {
            bad(json!(s), Fault::Invalid("sub"))
        }
    };
    prop_oneof![
        6 => select(KNOWN_SUBJECTS.to_vec()).prop_map(|s| good(json!(s), s.to_owned())),
        2 => id_like(40).prop_map(judged),
        2 => text(40).prop_map(judged),
        1 => (250usize..262, select(vec!['a', 'é', '中'])).prop_map(move |(n, c)| {
            judged(std::iter::repeat_n(c, n / c.len_utf8()).collect())
        }),
        1 => not_a_string().prop_map(|v| bad(v, Fault::Invalid("sub"))),
        1 => Just(absent(Err(Fault::Missing("sub")))),
    ]
    .boxed()
}

/// `exp` and `iat`: each drawn alone (where each one's own faults are, and lifetimes
/// mostly far over the maximum), or together (see [`lifetime`]).
fn dates(now: u64) -> BoxedStrategy<(Slot<u64>, Slot<Option<u64>>)> {
    prop_oneof![
        1 => (expiry(now), issued_at(now)),
        1 => lifetime(now),
    ]
    .boxed()
}

/// `exp`: ahead (integers, fractions, up to `u64::MAX`), behind, negative, out of range,
/// other types, absence.
fn expiry(now: u64) -> BoxedStrategy<Slot<u64>> {
    let ahead = now + FAR;
    prop_oneof![
        6 => (ahead..ahead + 100_000_000).prop_map(|v| good(json!(v), v)),
        1 => (ahead..=u64::MAX).prop_map(|v| good(json!(v), v)),
        1 => fraction(ahead..ahead + 100_000_000).prop_map(|(json, v)| good(json, v)),
        2 => (0..now - 200).prop_map(|v| bad(json!(v), Fault::Expired)),
        1 => (i64::MIN..0).prop_map(|v| bad(json!(v), Fault::Invalid("exp"))),
        1 => out_of_range_date().prop_map(|v| bad(v, Fault::Invalid("exp"))),
        1 => not_a_number().prop_map(|v| bad(v, Fault::Invalid("exp"))),
        1 => Just(absent(Err(Fault::Missing("exp")))),
    ]
    .boxed()
}

/// `nbf`: absent, passed (integers and fractions), [`FAR`] ahead, invalid.
fn not_before(now: u64) -> BoxedStrategy<Slot<Option<u64>>> {
    prop_oneof![
        3 => Just(absent(Ok(None))),
        2 => (0..=now).prop_map(|v| good(json!(v), Some(v))),
        1 => fraction(0..now).prop_map(|(json, v)| good(json, Some(v))),
        1 => (now + FAR..now + 100_000_000).prop_map(|v| bad(json!(v), Fault::NotYetValid)),
        1 => invalid_date().prop_map(|v| bad(v, Fault::Invalid("nbf"))),
    ]
    .boxed()
}

/// `iat` alone: absent; up to the clock plus the leeway (any time before, the last day,
/// exactly that latest second, fractions); [`FAR`] beyond it or more, up to `u64::MAX`;
/// other types. Only the type is the claim's own: absence, the future and the lifetime are
/// the lifetime check's ([`check_lifetime`]).
fn issued_at(now: u64) -> BoxedStrategy<Slot<Option<u64>>> {
    let latest = now + LEEWAY.as_secs();
    prop_oneof![
        2 => Just(absent(Ok(None))),
        1 => (0..=latest).prop_map(|v| good(json!(v), Some(v))),
        1 => (now - 24 * 3600..=latest).prop_map(|v| good(json!(v), Some(v))),
        1 => Just(good(json!(latest), Some(latest))),
        1 => fraction(0..latest).prop_map(|(json, v)| good(json, Some(v))),
        1 => (latest + FAR..latest + 100_000_000).prop_map(|v| good(json!(v), Some(v))),
        1 => (latest + FAR..=u64::MAX).prop_map(|v| good(json!(v), Some(v))),
        1 => invalid_date().prop_map(|v| bad(v, Fault::Invalid("iat"))),
    ]
    .boxed()
}

/// `iat` up to the clock plus the leeway (from half the maximum lifetime before the clock)
/// and `exp` a lifetime after it: exactly the maximum, a second more, below it (by up to
/// half of it, so `exp` stays [`FAR`] ahead), or up to twice it. Either date may carry a
/// fraction, which the verifier truncates: `iat` at `latest + 0.75` is not in the future,
/// and `exp` a fraction past `iat` + the maximum is within it.
fn lifetime(now: u64) -> impl Strategy<Value = (Slot<u64>, Slot<Option<u64>>)> {
    let max = MAX_LIFETIME.as_secs();
    let lifetimes = prop_oneof![
        2 => Just(max),
        1 => Just(max + 1),
        3 => max / 2 + FAR..max,
        1 => max + 2..=2 * max,
    ];
    let quarters = prop_oneof![2 => Just(0u8), 1 => 1u8..4];
    (
        now - max / 2..=now + LEEWAY.as_secs(),
        lifetimes,
        quarters.clone(),
        quarters,
    )
        .prop_map(|(iat, lifetime, iat_quarters, exp_quarters)| {
            let exp = iat + lifetime;
            (
                good(numeric_date(exp, exp_quarters), exp),
                good(numeric_date(iat, iat_quarters), Some(iat)),
            )
        })
}

/// `iss`: the required issuer, another, none, another type.
fn issuer() -> BoxedStrategy<Slot<Option<String>>> {
    prop_oneof![
        5 => Just(good(json!(ISS), Some(ISS.to_owned()))),
        1 => text(40).prop_map(|s| {
            if s == ISS {
                good(json!(s), Some(s))
            } else {
                bad(json!(s), Fault::WrongIssuer)
            }
        }),
        1 => Just(absent(Err(Fault::Missing("iss")))),
        1 => not_a_string().prop_map(|v| bad(v, Fault::Invalid("iss"))),
    ]
    .boxed()
}

/// `aud`: the required audience alone or among others, only others, an empty list, none,
/// wrong types.
fn audience() -> BoxedStrategy<Slot<Vec<String>>> {
    let judged = |json: Value, list: Vec<String>| {
        if list.is_empty() {
            bad(json, Fault::Missing("aud"))
        } else if list.iter().any(|a| a == AUD) {
            good(json, list)
        } else {
            bad(json, Fault::WrongAudience)
        }
    };
    let others = proptest::collection::vec(text(12), 0..4);
    prop_oneof![
        4 => Just(good(json!(AUD), vec![AUD.to_owned()])),
        2 => (others.clone(), any::<prop::sample::Index>()).prop_map(move |(mut list, at)| {
            list.insert(at.index(list.len() + 1), AUD.to_owned());
            judged(json!(list), list)
        }),
        1 => text(12).prop_map(move |s: String| judged(json!(s), vec![s])),
        1 => others.prop_map(move |list| judged(json!(list), list)),
        1 => Just(absent(Err(Fault::Missing("aud")))),
        1 => prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            json_value().prop_map(|v| json!({ "v": v })),
            Just(json!([AUD, 1])),
            Just(json!([[AUD]])),
            Just(json!([null])),
        ]
        .prop_map(|v| bad(v, Fault::Invalid("aud"))),
    ]
    .boxed()
}

/// `jti`: absent, any string, another type.
fn token_id() -> BoxedStrategy<Slot<Option<String>>> {
    prop_oneof![
        2 => Just(absent(Ok(None))),
        2 => text(40).prop_map(|s| good(json!(s), Some(s))),
        1 => not_a_string().prop_map(|v| bad(v, Fault::Invalid("jti"))),
    ]
    .boxed()
}

/// A NumericDate in `seconds` with a fraction (exactly representable: its truncation is
/// certain).
fn fraction(seconds: Range<u64>) -> impl Strategy<Value = (Value, u64)> {
    (seconds, 1u8..4).prop_map(|(whole, quarters)| (numeric_date(whole, quarters), whole))
}

/// `whole` seconds and `quarters` of a second (`0`: an integer); `whole` below 2^53, so the
/// float is exact and its truncation certain.
fn numeric_date(whole: u64, quarters: u8) -> Value {
    if quarters == 0 {
        return json!(whole);
    }
    assert!(whole < 1 << 53, "{whole} has no exact float");
    #[allow(clippy::cast_precision_loss)] // below 2^53: exact.
    let date = whole as f64 + f64::from(quarters) / 4.0;
    json!(date)
}

/// Dates no NumericDate reader may accept: negative, fractional below zero, beyond 2^63.
fn out_of_range_date() -> impl Strategy<Value = Value> {
    select(vec![
        json!(-0.5),
        json!(-1e300),
        json!(1e19),
        json!(9.3e18),
        json!(1e300),
    ])
}

fn invalid_date() -> impl Strategy<Value = Value> {
    prop_oneof![
        (i64::MIN..0).prop_map(|v| json!(v)),
        out_of_range_date(),
        not_a_number(),
    ]
}

/// Any JSON that is not a number (a number is wrapped in an object; no filtering, which
/// would spend proptest's reject budget).
fn not_a_number() -> impl Strategy<Value = Value> {
    json_value().prop_map(|v| if v.is_number() { json!({ "n": v }) } else { v })
}

/// Any JSON that is not a string (a string is wrapped in an array).
fn not_a_string() -> impl Strategy<Value = Value> {
    json_value().prop_map(|v| if v.is_string() { json!([v]) } else { v })
}

// ---------------------------------------------------------------------------------------
// Extras and arbitrary JSON
// ---------------------------------------------------------------------------------------

/// Up to four non-registered claims with arbitrary values (a registered name drawn by
/// chance is renamed: it would not be an extra).
fn extras() -> impl Strategy<Value = Map<String, Value>> {
    let name = text(16).prop_map(|name| {
        if REGISTERED_CLAIMS.contains(&name.as_str()) {
            format!("x-{name}")
        } else {
            name
        }
    });
    proptest::collection::btree_map(name, json_value(), 0..4)
        .prop_map(|extras: BTreeMap<String, Value>| extras.into_iter().collect())
}

/// Arbitrary JSON, two levels of arrays and objects at most. Fractions are multiples of 1/8
/// with short decimal forms, which every JSON reader parses back exactly.
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i32>().prop_map(|i| Value::from(f64::from(i) / 8.0)),
        text(16).prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(text(8), inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Up to `max` arbitrary characters (control characters, whitespace and every plane
/// included). Built from `char`s rather than a regex: proptest's regex strings cost
/// ten times more to generate in a debug build, and a property draws thousands.
pub(crate) fn text(max: usize) -> impl Strategy<Value = String> + Clone {
    proptest::collection::vec(any::<char>(), 0..=max).prop_map(String::from_iter)
}

/// Up to `max` characters that make a plausible user id (`[a-zA-Z0-9._@|-]`), at least one.
fn id_like(max: usize) -> impl Strategy<Value = String> {
    let alphabet: Vec<char> = ('a'..='z')
        .chain('A'..='Z')
        .chain('0'..='9')
        .chain("._@|-".chars())
        .collect();
    proptest::collection::vec(select(alphabet), 1..=max).prop_map(String::from_iter)
}
