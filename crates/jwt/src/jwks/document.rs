//! Reading a fetched JWK set document into a [`KeySet`], one key at a time.

use jsonwebtoken::jwk::Jwk;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::keys::KeySet;

/// `{"keys": [...]}`, each key kept as text so that one key this crate cannot parse is
/// skipped instead of failing the whole set.
#[derive(Deserialize)]
struct Document<'a> {
    #[serde(borrow)]
    keys: Vec<&'a RawValue>,
}

/// The usable signing keys of a JWK set document, and how many keys were skipped.
///
/// # Errors
///
/// Why the document is refused: not a JWK set, or no usable signing key in it (a set that
/// would leave the verifier without keys is never swapped in).
pub(crate) fn parse_key_set(body: &[u8]) -> Result<(KeySet, u64), String> {
    let document: Document<'_> =
        serde_json::from_slice(body).map_err(|e| format!("not a JWK set: {e}"))?;
    let parsed: Vec<Jwk> = document
        .keys
        .iter()
        .filter_map(|raw| serde_json::from_str(raw.get()).ok())
        .collect();
    let unparsed = document.keys.len() - parsed.len();
    let (set, unusable) = KeySet::lenient(&parsed);
    if set.is_empty() {
        return Err(format!(
            "the JWK set holds no usable signing key ({} keys)",
            document.keys.len()
        ));
    }
    Ok((set, (unparsed + unusable) as u64))
}

#[cfg(test)]
mod tests;
