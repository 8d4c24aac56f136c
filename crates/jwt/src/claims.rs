//! [`Claims`]: what a verified token says, in a form the cache can store.
//!
//! Two serde forms exist on purpose. The token's JSON (registered claims plus arbitrary
//! extras, `aud` as a string or an array, numbers as integers or floats) is read by the
//! hand-written visitor in this module, which needs `deserialize_any`-style flexibility.
//! `Claims`' own derived `Serialize`/`Deserialize` is the *cache* form: fixed fields, the
//! extras kept as their raw JSON text in a `String`, so it round-trips through bincode 2's
//! serde path, which cannot deserialize self-describing values such as `serde_json::Value`.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::BTreeSet;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{Malformed, Result, TokenError};

/// Names of the claims [`Claims`] holds in fields; everything else is an extra.
pub const REGISTERED_CLAIMS: [&str; 7] = ["sub", "exp", "nbf", "iat", "iss", "aud", "jti"];

/// The claims of a verified token.
///
/// `sub` and `exp` are always present (the verifier requires them); the other registered
/// claims are optional. A single-string `aud` becomes a one-element list.
///
/// Claims that are not registered ("extras": `roles`, `scope`, `email`…) are kept as the raw
/// JSON text of an object, read with [`Claims::extra_claims`] or [`Claims::extra_claim`]. They are
/// stored as text rather than a `serde_json::Map` so that `Claims` stays encodable by bincode 2
/// (the cache codec), which cannot decode self-describing values; parse them when needed.
///
/// The derived serde form is the cache form, not the JWT payload; use
/// [`Claims::to_jwt_payload`] for the latter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the user id. Non-empty, at most 256 bytes, no whitespace or control characters.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Not before, seconds since the Unix epoch.
    pub nbf: Option<u64>,
    /// Issued at, seconds since the Unix epoch (whole seconds; a token's fraction of a
    /// second is in [`Claims::iat_micros`]).
    pub iat: Option<u64>,
    /// Issuer.
    pub iss: Option<String>,
    /// Audiences (empty when the token has no `aud`).
    pub aud: Vec<String>,
    /// Token id.
    pub jti: Option<String>,
    /// Raw JSON text of the non-registered claims: `""` when there are none, else an object.
    extra: String,
    /// The fraction of a second of `iat`, in microseconds, when the token gave one (RFC 7519
    /// NumericDate may be fractional); `None` for a whole-second `iat`.
    iat_fraction: Option<u32>,
}

impl Claims {
    /// Claims with the two required fields and nothing else.
    pub fn new(sub: impl Into<String>, exp: u64) -> Self {
        Self {
            sub: sub.into(),
            exp,
            nbf: None,
            iat: None,
            iss: None,
            aud: Vec::new(),
            jti: None,
            extra: String::new(),
            iat_fraction: None,
        }
    }

    /// Sets `iat` to `at`, to the microsecond: the payload then carries a fractional `iat`
    /// (RFC 7519 allows it), so a cutoff made in the same second can tell this token from
    /// the ones issued before it ([`Claims::iat_micros`]). A time before 1970 is 0.
    #[must_use]
    pub fn issued_at(mut self, at: SystemTime) -> Self {
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        self.iat = Some(since.as_secs());
        self.iat_fraction = Some(since.subsec_micros()).filter(|micros| *micros > 0);
        self
    }

    /// `iat` in microseconds since the Unix epoch, with the token's fraction of a second
    /// when it gave one (a whole-second `iat` is a multiple of 10⁶: it may have been issued
    /// anywhere in that second). `None` without `iat`.
    pub fn iat_micros(&self) -> Option<u64> {
        let micros = self.iat?.saturating_mul(1_000_000);
        Some(micros.saturating_add(u64::from(self.iat_fraction.unwrap_or(0))))
    }

    /// Replaces the extra claims. Registered names (see [`REGISTERED_CLAIMS`]) are skipped:
    /// they live in the fields.
    pub fn with_extra(mut self, extra: Map<String, Value>) -> Self {
        let kept: Map<String, Value> = extra
            .into_iter()
            .filter(|(k, _)| !REGISTERED_CLAIMS.contains(&k.as_str()))
            .collect();
        self.extra = if kept.is_empty() {
            String::new()
        } else {
            Value::Object(kept).to_string()
        };
        self
    }

    /// The extra claims as JSON text: `""` when there are none, else a JSON object.
    pub fn extra_json(&self) -> &str {
        &self.extra
    }

    /// The extra claims, parsed.
    ///
    /// # Errors
    ///
    /// Only if the stored text is not a JSON object, which cannot happen for claims built by
    /// this crate (it can for a value forged in a cache without an integrity key).
    pub fn extra_claims(&self) -> serde_json::Result<Map<String, Value>> {
        if self.extra.is_empty() {
            return Ok(Map::new());
        }
        serde_json::from_str(&self.extra)
    }

    /// One extra claim, deserialized as `T`; `Ok(None)` when absent.
    ///
    /// # Errors
    ///
    /// When the claim is present but is not a `T`.
    pub fn extra_claim<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> serde_json::Result<Option<T>> {
        match self.extra_claims()?.remove(name) {
            Some(v) => serde_json::from_value(v).map(Some),
            None => Ok(None),
        }
    }

    /// The JWT payload these claims stand for (what [`TokenIssuer`](crate::TokenIssuer) signs).
    pub fn to_jwt_payload(&self) -> Value {
        let mut map = self.extra_claims().unwrap_or_default();
        map.insert("sub".into(), self.sub.clone().into());
        map.insert("exp".into(), self.exp.into());
        if let Some(nbf) = self.nbf {
            map.insert("nbf".into(), nbf.into());
        }
        match (self.iat, self.iat_fraction) {
            (Some(seconds), Some(fraction)) => {
                // The nearest f64 is within 0.24 µs of the instant for any date before
                // 2106: reading it back rounds to the same microsecond.
                #[allow(clippy::cast_precision_loss)]
                let fractional = seconds as f64 + f64::from(fraction) / 1e6;
                map.insert("iat".into(), fractional.into());
            }
            (Some(seconds), None) => {
                map.insert("iat".into(), seconds.into());
            }
            (None, _) => {}
        }
        if let Some(iss) = &self.iss {
            map.insert("iss".into(), iss.clone().into());
        }
        match self.aud.as_slice() {
            [] => {}
            [one] => {
                map.insert("aud".into(), one.clone().into());
            }
            many => {
                map.insert("aud".into(), many.to_vec().into());
            }
        }
        if let Some(jti) = &self.jti {
            map.insert("jti".into(), jti.clone().into());
        }
        Value::Object(map)
    }
}

/// Parses the decoded claims segment of a token.
///
/// # Errors
///
/// [`Malformed::ClaimsJson`] / [`Malformed::DuplicateClaim`] for bad JSON,
/// [`TokenError::InvalidClaim`] for a registered claim of the wrong type,
/// [`TokenError::MissingClaim`] for an absent `sub` or `exp`.
pub(crate) fn parse_claims(json: &[u8]) -> Result<Claims> {
    let current = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(json);
    let parsed = ClaimsSeed { current: &current }
        .deserialize(&mut de)
        .and_then(|c| de.end().map(|()| c));
    let raw = parsed.map_err(|e| classify(&e, current.get()))?;
    raw.into_claims()
}

/// A type error while a registered claim was being read is that claim's fault; anything else
/// (syntax, duplicates, a non-object payload) makes the payload malformed.
fn classify(e: &serde_json::Error, current: Option<Field>) -> TokenError {
    if e.to_string().starts_with(DUPLICATE) {
        return Malformed::DuplicateClaim.into();
    }
    match (e.classify(), current) {
        (serde_json::error::Category::Data, Some(field)) => TokenError::InvalidClaim {
            claim: field.name(),
            reason: field.expected(),
        },
        _ => Malformed::ClaimsJson.into(),
    }
}

const DUPLICATE: &str = "duplicate claim";

/// Reads only `sub`, for [`crate::unverified_subject`].
pub(crate) fn parse_subject_only(json: &[u8]) -> Result<String> {
    #[derive(Deserialize)]
    struct SubjectOnly {
        sub: Option<Value>,
    }
    if !starts_as_object(json) {
        return Err(Malformed::ClaimsJson.into());
    }
    let parsed: SubjectOnly = serde_json::from_slice(json).map_err(|_| Malformed::ClaimsJson)?;
    match parsed.sub {
        None => Err(TokenError::MissingClaim("sub")),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(TokenError::InvalidClaim {
            claim: "sub",
            reason: Field::Sub.expected(),
        }),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Sub,
    Exp,
    Nbf,
    Iat,
    Iss,
    Aud,
    Jti,
}

impl Field {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "sub" => Self::Sub,
            "exp" => Self::Exp,
            "nbf" => Self::Nbf,
            "iat" => Self::Iat,
            "iss" => Self::Iss,
            "aud" => Self::Aud,
            "jti" => Self::Jti,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Sub => "sub",
            Self::Exp => "exp",
            Self::Nbf => "nbf",
            Self::Iat => "iat",
            Self::Iss => "iss",
            Self::Aud => "aud",
            Self::Jti => "jti",
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Self::Exp | Self::Nbf | Self::Iat => "expected a non-negative NumericDate",
            Self::Aud => "expected a string or an array of strings",
            Self::Sub | Self::Iss | Self::Jti => "expected a string",
        }
    }
}

/// A claims object as read from the token, before the required claims are enforced.
#[derive(Default)]
struct RawClaims {
    sub: Option<String>,
    exp: Option<u64>,
    nbf: Option<u64>,
    iat: Option<NumericDate>,
    iss: Option<String>,
    aud: Option<Vec<String>>,
    jti: Option<String>,
    extra: String,
}

impl RawClaims {
    fn into_claims(self) -> Result<Claims> {
        Ok(Claims {
            sub: self.sub.ok_or(TokenError::MissingClaim("sub"))?,
            exp: self.exp.ok_or(TokenError::MissingClaim("exp"))?,
            nbf: self.nbf,
            iat: self.iat.map(|date| date.seconds),
            iss: self.iss,
            aud: self.aud.unwrap_or_default(),
            jti: self.jti,
            extra: self.extra,
            iat_fraction: self.iat.and_then(|date| date.fraction),
        })
    }
}

/// Deserializes the claims object, recording which registered claim is being read so that a
/// type error can be blamed on it.
struct ClaimsSeed<'c> {
    current: &'c Cell<Option<Field>>,
}

impl<'de> DeserializeSeed<'de> for ClaimsSeed<'_> {
    type Value = RawClaims;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawClaims, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ClaimsSeed<'_> {
    type Value = RawClaims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawClaims, A::Error> {
        let mut raw = RawClaims::default();
        let mut seen_extras = BTreeSet::new();
        while let Some(name) = map.next_key::<KeyName<'de>>()? {
            match Field::from_name(name.as_str()) {
                Some(field) => self.read_field(field, &mut map, &mut raw)?,
                None => {
                    let value: Box<RawValue> = map.next_value()?;
                    append_extra(&mut raw.extra, name.as_str(), &value);
                    if !seen_extras.insert(name.into_cow()) {
                        return Err(de::Error::custom(DUPLICATE));
                    }
                }
            }
        }
        if !raw.extra.is_empty() {
            raw.extra.push('}');
        }
        Ok(raw)
    }
}

impl ClaimsSeed<'_> {
    fn read_field<'de, A: MapAccess<'de>>(
        &self,
        field: Field,
        map: &mut A,
        raw: &mut RawClaims,
    ) -> Result<(), A::Error> {
        self.current.set(Some(field));
        let fresh = match field {
            Field::Sub => set_once(&mut raw.sub, map.next_value()?),
            Field::Iss => set_once(&mut raw.iss, map.next_value()?),
            Field::Jti => set_once(&mut raw.jti, map.next_value()?),
            Field::Exp => set_once(&mut raw.exp, map.next_value::<NumericDate>()?.seconds),
            Field::Nbf => set_once(&mut raw.nbf, map.next_value::<NumericDate>()?.seconds),
            Field::Iat => set_once(&mut raw.iat, map.next_value::<NumericDate>()?),
            Field::Aud => set_once(&mut raw.aud, map.next_value::<OneOrMany>()?.0),
        };
        self.current.set(None);
        if fresh {
            Ok(())
        } else {
            Err(de::Error::custom(DUPLICATE))
        }
    }
}

/// Stores `value` unless the slot is already filled; `false` means a duplicate.
fn set_once<T>(slot: &mut Option<T>, value: T) -> bool {
    if slot.is_some() {
        return false;
    }
    *slot = Some(value);
    true
}

/// Appends `"name":value` to the extras object under construction (closed by the caller).
fn append_extra(extra: &mut String, name: &str, value: &RawValue) {
    extra.push(if extra.is_empty() { '{' } else { ',' });
    // Serializing a `str` to JSON cannot fail; the fallback keeps this total anyway.
    extra.push_str(&serde_json::to_string(name).unwrap_or_else(|_| String::from("\"\"")));
    extra.push(':');
    extra.push_str(value.get());
}

/// A claim name, borrowed from the input when it has no escapes.
enum KeyName<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl<'de> KeyName<'de> {
    fn as_str(&self) -> &str {
        match self {
            Self::Borrowed(s) => s,
            Self::Owned(s) => s,
        }
    }

    /// For the duplicate check: a borrowed name is kept without a copy.
    fn into_cow(self) -> Cow<'de, str> {
        match self {
            Self::Borrowed(s) => Cow::Borrowed(s),
            Self::Owned(s) => Cow::Owned(s),
        }
    }
}

impl<'de> Deserialize<'de> for KeyName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a claim name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(KeyName::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(KeyName::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(KeyName::Owned(v))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// RFC 7519 NumericDate: a JSON number of seconds, negative or non-finite values rejected.
/// The whole seconds, and the fraction to the microsecond when there is one: `exp` and `nbf`
/// keep only the seconds, `iat` keeps both (a cutoff in the same second tells a fractional
/// `iat` from an earlier one).
#[derive(Clone, Copy)]
struct NumericDate {
    seconds: u64,
    /// Microseconds, `1..=999_999`; `None` for a whole number.
    fraction: Option<u32>,
}

impl NumericDate {
    const fn whole(seconds: u64) -> Self {
        Self {
            seconds,
            fraction: None,
        }
    }
}

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DateVisitor;
        impl Visitor<'_> for DateVisitor {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative number of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
                Ok(NumericDate::whole(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumericDate, E> {
                u64::try_from(v)
                    .map(NumericDate::whole)
                    .map_err(|_| E::custom("negative NumericDate"))
            }
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                // 2^63 bounds the cast; any real date is far below.
                const LIMIT: f64 = (1u64 << 63) as f64;
                if !(v.is_finite() && (0.0..LIMIT).contains(&v)) {
                    return Err(E::custom("NumericDate out of range"));
                }
                let seconds = v.trunc();
                // Rounded to the nearest microsecond, kept below a whole second.
                let micros = ((v - seconds) * 1e6).round().min(999_999.0) as u32;
                Ok(NumericDate {
                    seconds: seconds as u64,
                    fraction: Some(micros).filter(|micros| *micros > 0),
                })
            }
        }
        deserializer.deserialize_any(DateVisitor)
    }
}

/// `aud`: one string or an array of strings.
struct OneOrMany(Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AudVisitor;
        impl<'de> Visitor<'de> for AudVisitor {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut all = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
                while let Some(s) = seq.next_element::<String>()? {
                    all.push(s);
                }
                Ok(OneOrMany(all))
            }
        }
        deserializer.deserialize_any(AudVisitor)
    }
}

/// `true` when the JSON text opens an object. Derived struct deserializers also accept an
/// array (`["RS256"]` would read as `{"alg":"RS256"}`); JOSE headers and claims are objects.
pub(crate) fn starts_as_object(json: &[u8]) -> bool {
    json.trim_ascii_start().first() == Some(&b'{')
}

/// Header fields this crate reads; anything else is ignored, duplicates are rejected.
#[derive(Deserialize)]
pub(crate) struct RawHeader {
    pub(crate) alg: String,
    #[serde(default)]
    pub(crate) kid: Option<String>,
    #[serde(default)]
    pub(crate) crit: Option<IgnoredAny>,
}

#[cfg(test)]
mod tests;
