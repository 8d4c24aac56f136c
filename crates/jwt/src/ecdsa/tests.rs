//! Unit tests of `ecdsa`.

use super::*;

fn signature_with_s(s: U256) -> Vec<u8> {
    let mut sig = vec![0x11; 32];
    sig.extend(s.to_be_bytes());
    sig
}

#[test]
fn half_the_order_is_the_boundary() {
    let half = P256_ORDER >> 1;
    let just_high = half.wrapping_add(&U256::ONE);
    assert_eq!(
        check_low_s(Algorithm::ES256, &signature_with_s(half)),
        Ok(())
    );
    assert_eq!(
        check_low_s(Algorithm::ES256, &signature_with_s(just_high)),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn normalizing_maps_high_s_to_its_twin_and_keeps_low_s() {
    let mut sig = signature_with_s(P256_ORDER.wrapping_sub(&U256::ONE));
    normalize_s(Algorithm::ES256, &mut sig);
    assert_eq!(sig, signature_with_s(U256::ONE));
    normalize_s(Algorithm::ES256, &mut sig);
    assert_eq!(sig, signature_with_s(U256::ONE));
}

#[test]
fn wrong_sizes_are_refused_and_left_alone() {
    for len in [0, 63, 65, 96] {
        let mut sig = vec![0xff; len];
        assert_eq!(
            check_low_s(Algorithm::ES256, &sig),
            Err(TokenError::BadSignature)
        );
        normalize_s(Algorithm::ES256, &mut sig);
        assert_eq!(sig, vec![0xff; len]);
    }
    assert_eq!(
        check_low_s(Algorithm::ES384, &[0x01; 64]),
        Err(TokenError::BadSignature)
    );
    assert_eq!(check_low_s(Algorithm::RS256, &[0xff; 7]), Ok(()));
}
