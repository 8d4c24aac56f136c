//! Tokens built by hand: base64url segments, HMAC signatures over exact JSON text, and JSON
//! nested to any depth as plain text — never as a `serde_json::Value`, whose serializer and
//! destructor recurse and would overflow the test's own stack first.

use authcache::{Algorithm, TokenIssuer};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;

/// Unpadded base64url, as JWS segments are written.
pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.payload.signature`, the signature an HMAC (`alg`) by `secret` over exactly
/// these two texts.
pub(crate) fn hmac_token(alg: Algorithm, secret: &[u8], header: &str, payload: &str) -> String {
    // Building an issuer installs jsonwebtoken's crypto provider, which `sign` needs.
    drop(TokenIssuer::hs256(secret));
    let signed = format!("{}.{}", b64(header), b64(payload));
    let key = EncodingKey::from_secret(secret);
    let signature = jsonwebtoken::crypto::sign(signed.as_bytes(), &key, alg).unwrap();
    format!("{signed}.{signature}")
}

/// How a deeply nested JSON value is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nesting {
    /// `[[[…]]]`
    Arrays,
    /// `{"a":{"a":…1}}`
    Objects,
    /// Arrays and objects alternating.
    Mixed,
    /// `[[[…` never closed: not JSON at all.
    Unclosed,
}

impl Nesting {
    /// The value nested `depth` levels deep, as JSON text.
    pub(crate) fn text(self, depth: usize) -> String {
        let mut text = String::with_capacity(depth * 6 + 1);
        let opening = |level: usize| match self {
            Self::Arrays | Self::Unclosed => "[",
            Self::Objects => "{\"a\":",
            Self::Mixed if level.is_multiple_of(2) => "[",
            Self::Mixed => "{\"a\":",
        };
        let closing = |level: usize| match self {
            Self::Arrays => "]",
            Self::Objects => "}",
            Self::Mixed if level.is_multiple_of(2) => "]",
            Self::Mixed => "}",
            Self::Unclosed => "",
        };
        for level in 0..depth {
            text.push_str(opening(level));
        }
        if self != Self::Unclosed {
            text.push('1');
        }
        for level in (0..depth).rev() {
            text.push_str(closing(level));
        }
        text
    }
}
