//! The ECDSA low-S rule (ES256, ES384): one accepted signature per token, not two.
//!
//! An ECDSA signature `(r, s)` has a twin `(r, n − s)` (`n` the curve order) that verifies
//! under the same key and message, and anyone can compute it from the token alone. Keyed by
//! its bytes (the [`fingerprint`](crate::fingerprint)), a logged-out token would come back
//! under its twin with a new key. As BIP-62 does for Bitcoin, exactly one of each pair is
//! accepted, the one with `s ≤ n/2` ("low S"): the verifier refuses the other, and the issuer
//! rewrites its own signatures into that form, because the signer (jsonwebtoken's RustCrypto
//! backend, like most) leaves about half of them high.
//!
//! A JWS ECDSA signature is `r || s`, each a big-endian integer of the curve's size (RFC 7518
//! §3.4): 32 bytes each for P-256, 48 for P-384.

use crypto_bigint::{Encoding, Integer, NegMod, U256, U384};
use jsonwebtoken::Algorithm;

use crate::error::{Result, TokenError};

/// Order of the P-256 group (FIPS 186-4, D.1.2.3).
const P256_ORDER: U256 =
    U256::from_be_hex("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551");

/// Order of the P-384 group (FIPS 186-4, D.1.2.4).
const P384_ORDER: U384 = U384::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
    "C7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
));

/// An unsigned integer as wide as a curve's scalars (`U256`, `U384`), read from exactly that
/// many big-endian bytes: the generic part, so both curves share one implementation.
trait ScalarInt: Integer + Encoding + NegMod<Output = Self> {
    /// `None` unless `bytes` is exactly [`Integer::BYTES`] long.
    fn from_be(bytes: &[u8]) -> Option<Self>;
}

impl<T> ScalarInt for T
where
    T: Integer + Encoding + NegMod<Output = T>,
    for<'a> T::Repr: TryFrom<&'a [u8]>,
{
    fn from_be(bytes: &[u8]) -> Option<Self> {
        T::Repr::try_from(bytes).ok().map(T::from_be_bytes)
    }
}

/// Refuses an ES256/ES384 signature (decoded `r || s`) whose `s` is above `n/2`, or that is
/// not `r || s` of the curve's size. Other algorithms pass: they have no such twins.
///
/// # Errors
///
/// [`TokenError::BadSignature`].
pub(crate) fn check_low_s(alg: Algorithm, signature: &[u8]) -> Result<()> {
    let low = match alg {
        Algorithm::ES256 => is_low_s(signature, &P256_ORDER),
        Algorithm::ES384 => is_low_s(signature, &P384_ORDER),
        _ => true,
    };
    if low {
        Ok(())
    } else {
        Err(TokenError::BadSignature)
    }
}

/// Rewrites an ES256/ES384 signature (decoded `r || s`) with a high `s` as its low-S twin
/// `(r, n − s)`: the same signature to plain ECDSA, in the one form the verifier accepts.
/// Anything else is left as it is.
pub(crate) fn normalize_s(alg: Algorithm, signature: &mut [u8]) {
    match alg {
        Algorithm::ES256 => normalize_on(signature, &P256_ORDER),
        Algorithm::ES384 => normalize_on(signature, &P384_ORDER),
        _ => {}
    }
}

/// Rewrites an ES256/ES384 signature (decoded `r || s`, the curve told by its length) as its
/// twin `(r, n − s)`, which plain ECDSA accepts just as well. `false` for any other length.
/// Only the test fixtures forge twins (feature `test-keys`).
#[cfg(feature = "test-keys")]
pub(crate) fn twin(signature: &mut [u8]) -> bool {
    match signature.len() {
        64 => twin_on(signature, &P256_ORDER),
        96 => twin_on(signature, &P384_ORDER),
        _ => false,
    }
}

#[cfg(feature = "test-keys")]
fn twin_on<T: ScalarInt>(signature: &mut [u8], order: &T) -> bool {
    let Some(s) = s_of::<T>(signature) else {
        return false;
    };
    let other = s.neg_mod(order).to_be_bytes();
    for (out, byte) in signature.iter_mut().skip(T::BYTES).zip(other.as_ref()) {
        *out = *byte;
    }
    true
}

/// `s`, if `signature` is exactly `r || s` with both of the curve's size.
fn s_of<T: ScalarInt>(signature: &[u8]) -> Option<T> {
    let (_r, s) = signature.split_at_checked(T::BYTES)?;
    T::from_be(s)
}

fn is_high<T: ScalarInt>(s: &T, order: &T) -> bool {
    // `n` is odd, so `s > ⌊n/2⌋` splits each pair `{s, n − s}` into exactly one low, one high.
    *s > (*order >> 1)
}

fn is_low_s<T: ScalarInt>(signature: &[u8], order: &T) -> bool {
    s_of::<T>(signature).is_some_and(|s| !is_high(&s, order))
}

fn normalize_on<T: ScalarInt>(signature: &mut [u8], order: &T) {
    let Some(s) = s_of::<T>(signature) else {
        return;
    };
    if is_high(&s, order) {
        let low = s.neg_mod(order).to_be_bytes();
        // `s_of` succeeded, so the tail after `r` is exactly `low.len()` bytes.
        for (out, byte) in signature.iter_mut().skip(T::BYTES).zip(low.as_ref()) {
            *out = *byte;
        }
    }
}

#[cfg(test)]
mod tests;
