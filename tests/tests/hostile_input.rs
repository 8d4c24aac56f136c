//! Hostile input at scale, through the public API.
//!
//! **Tokens.** `AuthService::authenticate` of one service per supported algorithm
//! (HS256/384/512, RS256/384/512, PS256, ES256/384, EdDSA; memory cache, memory repository)
//! takes 10,000 cases each of random input (through every service), single-byte mutations
//! of valid tokens, and random claims signed with the right key (each case picks the
//! algorithm, as often as its cost allows: see `hostile_input/fixture.rs`), then oversized
//! and deeply nested input. Every answer is a typed error or the legitimate principal —
//! exactly the claims the test signed and the repository's truth about their subject;
//! nothing the key did not sign is accepted; nothing panics (proptest catches a panic and
//! fails the case) or overflows the stack (which would abort the run).
//!
//! **Cache.** On a real Redis, random bytes and mutations of real entries at the key of
//! every kind: the repository's truth is served and the bad entry counted; a revocation
//! mark or cutoff is in force whatever its bytes (see `hostile_input/cache.rs`).
//!
//! Every property runs from a fixed seed with no failure files, so CI meets the same inputs
//! on every run; the counters of every service are checked against the number of cases.
// Test helpers outside `#[test]` functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth_support;

mod hostile_input {
    pub(crate) mod cache;
    pub(crate) mod claims;
    pub(crate) mod fixture;
    pub(crate) mod garbage;
    pub(crate) mod nested;
    pub(crate) mod raw;
}

use std::cell::RefCell;

use authcache::{Algorithm, AuthError, Stats, TokenError};
use authcache_jwt::serde_json::json;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::TestCaseError;

use hostile_input::cache::{Corruption, Shelf, Target, corruption};
use hostile_input::claims::{ClaimsCase, Fault, LIFETIME_OUTCOMES, claims_case};
use hostile_input::fixture::{
    Fixture, MAX_TOKEN_SIZE, bare, expect_signed, expect_token_error, key_pair, legitimate_claims,
    run, runner, runtime, service, signed_part, signing_weight, verifying_weight,
};
use hostile_input::garbage::{oversized_bearer, unsigned_bearer};
use hostile_input::nested;

/// The number of cases the issue asks of each token property.
const CASES: u32 = 10_000;

/// Oversized and nested inputs are large: fewer cases, each one heavier.
const LARGE_CASES: u32 = 128;

/// Each case starts a service on a real Redis: a few hundred round trips' worth.
const CACHE_CASES: u32 = 400;

// ---------------------------------------------------------------------------------------
// Tokens nobody signed
// ---------------------------------------------------------------------------------------

/// Random bytes and text, token-shaped noise and forgeries (perfect header and claims,
/// any signature but the right one) are refused with a token error by every service,
/// before anything is loaded.
#[test]
fn unsigned_input_is_refused_by_every_algorithm() {
    let runtime = runtime();
    let fixture = runtime.block_on(Fixture::new());
    let before = snapshot(&fixture);
    run(
        &mut runner(CASES, 0x6e6f_2d6b_6579),
        &unsigned_bearer(fixture.now),
        |input| {
            for signer in &fixture.signers {
                let answer = runtime.block_on(signer.service.authenticate(&input));
                expect_token_error(&answer).map_err(|e| in_service(e, signer.alg))?;
            }
            Ok(())
        },
    );
    for (signer, before) in fixture.signers.iter().zip(before) {
        let after = signer.service.stats();
        let expected = (
            before.authenticated,
            before.validations.verified,
            before.loads(),
        );
        let found = (
            after.authenticated,
            after.validations.verified,
            after.loads(),
        );
        assert_eq!(
            found, expected,
            "{:?}: nothing verified or loaded",
            signer.alg
        );
        assert_eq!(
            after.rejected_tokens,
            before.rejected_tokens + u64::from(CASES),
            "{:?}",
            signer.alg
        );
    }
}

// ---------------------------------------------------------------------------------------
// Mutations of valid tokens
// ---------------------------------------------------------------------------------------

/// Any one byte of a valid `Bearer` token changed to any other ASCII byte (a `&str` cannot
/// carry a lone byte above 127): refused with a token error, or — when the change left the
/// signed token intact, such as the scheme's case — the very principal of the original.
#[test]
fn single_byte_mutations_authenticate_as_the_original_or_not_at_all() {
    let runtime = runtime();
    let fixture = runtime.block_on(Fixture::new());
    let before = snapshot(&fixture);
    let accepted = RefCell::new(vec![0u64; fixture.signers.len()]);
    let tried = RefCell::new(vec![0u64; fixture.signers.len()]);
    let strategy = (
        fixture.pick_signer(verifying_weight),
        any::<Index>(),
        1u8..128,
    );
    run(
        &mut runner(CASES, 0x6d75_7461_7465),
        &strategy,
        |(which, at, mask)| {
            let signer = &fixture.signers[which];
            let mut bytes = signer.bearer.clone().into_bytes();
            let at = at.index(bytes.len());
            bytes[at] ^= mask;
            let mutated = String::from_utf8(bytes).unwrap();
            let answer = runtime.block_on(signer.service.authenticate(&mutated));
            tried.borrow_mut()[which] += 1;
            if answer.is_ok() {
                prop_assert_eq!(
                    signed_part(bare(&mutated)),
                    signed_part(bare(&signer.bearer)),
                    "{:?} accepted a token whose signed part changed: {}",
                    signer.alg,
                    mutated
                );
                expect_signed(&answer, &signer.claims).map_err(|e| in_service(e, signer.alg))?;
                accepted.borrow_mut()[which] += 1;
            } else {
                expect_token_error(&answer).map_err(|e| in_service(e, signer.alg))?;
            }
            Ok(())
        },
    );
    let (accepted, tried) = (accepted.into_inner(), tried.into_inner());
    for (i, (signer, before)) in fixture.signers.iter().zip(before).enumerate() {
        let after = signer.service.stats();
        assert!(tried[i] > 0, "{:?} was never tried", signer.alg);
        assert_eq!(
            (after.authenticated, after.rejected_tokens, after.loads()),
            (
                before.authenticated + accepted[i],
                before.rejected_tokens + tried[i] - accepted[i],
                before.loads()
            ),
            "{:?}",
            signer.alg
        );
    }
    println!("mutations tried per algorithm: {tried:?}; accepted as the original: {accepted:?}");
}

// ---------------------------------------------------------------------------------------
// Random claims, signed with the right key
// ---------------------------------------------------------------------------------------

/// Random claim sets signed by the service's own key: accepted exactly when every claim is
/// acceptable and the lifetime within the maximum, and then as exactly those claims and the
/// repository's truth about their subject; otherwise refused for one of the faults the set
/// holds — for the lifetime's fault alone when nothing the verifier checks before it fails.
/// Every outcome of the lifetime check is met.
#[test]
fn random_claims_signed_with_the_right_key_yield_exactly_what_they_say() {
    let runtime = runtime();
    let fixture = runtime.block_on(Fixture::new());
    let verdicts = RefCell::new([0u64; 3]);
    let lifetimes = RefCell::new([0u64; LIFETIME_OUTCOMES.len()]);
    let tried = RefCell::new(vec![0u64; fixture.signers.len()]);
    let strategy = (
        fixture.pick_signer(signing_weight),
        claims_case(fixture.now),
    );
    run(
        &mut runner(CASES, 0x636c_6169_6d73),
        &strategy,
        |(which, case): (usize, ClaimsCase)| {
            let signer = &fixture.signers[which];
            let token = signer.issuer.sign_payload(&case.payload).unwrap();
            let answer = runtime.block_on(signer.service.authenticate(&format!("Bearer {token}")));
            let verdict = if token.len() > MAX_TOKEN_SIZE {
                let error = expect_token_error(&answer)?;
                prop_assert!(matches!(error, TokenError::TooLarge { .. }), "{:?}", error);
                2
            } else {
                match &case.verdict {
                    Ok(claims) => expect_signed(&answer, claims).map(|()| 0),
                    Err(faults) => refused_for_one_of(&answer, faults).map(|()| 1),
                }
                .map_err(|e| in_service(e, signer.alg))?
            };
            if verdict != 2
                && let Some(outcome) = case.lifetime_outcome()
            {
                lifetimes.borrow_mut()[outcome] += 1;
            }
            verdicts.borrow_mut()[verdict] += 1;
            tried.borrow_mut()[which] += 1;
            Ok(())
        },
    );
    let [valid, refused, too_large] = verdicts.into_inner();
    let tried = tried.into_inner();
    let lifetimes: Vec<_> = LIFETIME_OUTCOMES
        .iter()
        .zip(lifetimes.into_inner())
        .collect();
    println!(
        "random claims: {valid} valid, {refused} refused, {too_large} too large; \
         per algorithm: {tried:?}; lifetime check: {lifetimes:?}"
    );
    assert!(valid > 0 && refused > 0, "both verdicts were exercised");
    assert!(
        lifetimes.iter().all(|(_, n)| *n > 0),
        "every outcome of the lifetime check was met: {lifetimes:?}"
    );
    assert!(tried.iter().all(|&n| n > 0), "every algorithm signed some");
}

fn refused_for_one_of(
    answer: &Result<authcache::Principal, AuthError>,
    faults: &[Fault],
) -> Result<(), TestCaseError> {
    let error = expect_token_error(answer)?;
    let fault = Fault::of(error);
    prop_assert!(
        fault.is_some_and(|f| faults.contains(&f)),
        "refused with {:?}, expected one of {:?}",
        error,
        faults
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Oversized and deeply nested input
// ---------------------------------------------------------------------------------------

/// Input over the size limit — noise, token-shaped text, or a token the service's own key
/// signed — is refused as too large, with its size counted without the scheme, by every
/// service, before anything is verified or loaded.
#[test]
fn oversized_input_is_refused_as_too_large_before_anything_else() {
    let runtime = runtime();
    let fixture = runtime.block_on(Fixture::new());
    let before = snapshot(&fixture);
    let signed = (
        0..fixture.signers.len(),
        MAX_TOKEN_SIZE..MAX_TOKEN_SIZE * 16,
    )
        .prop_map(|(which, padding)| {
            let claims = legitimate_claims("ada", fixture.now, "padded");
            let extra = json!({ "padding": "p".repeat(padding) });
            let claims = claims.with_extra(extra.as_object().cloned().unwrap());
            let token = fixture.signers[which].issuer.sign(&claims).unwrap();
            format!("Bearer {token}")
        });
    let strategy = prop_oneof![oversized_bearer(), signed];
    run(
        &mut runner(LARGE_CASES, 0x6c_6172_6765),
        &strategy,
        |input| {
            let size = bare(&input).len();
            for signer in &fixture.signers {
                let answer = runtime.block_on(signer.service.authenticate(&input));
                let error = expect_token_error(&answer).map_err(|e| in_service(e, signer.alg))?;
                let too_large = TokenError::TooLarge {
                    size,
                    max: MAX_TOKEN_SIZE,
                };
                prop_assert_eq!(error, &too_large, "{:?}", signer.alg);
            }
            Ok(())
        },
    );
    for (signer, before) in fixture.signers.iter().zip(before) {
        let after = signer.service.stats();
        let expected = (before.validations.verified, before.loads());
        let found = (after.validations.verified, after.loads());
        assert_eq!(
            found, expected,
            "{:?}: nothing verified or loaded",
            signer.alg
        );
    }
}

/// At the limit exactly a signed token is accepted; one byte over, it is too large.
#[test]
fn a_signed_token_of_exactly_the_size_limit_passes_and_one_byte_more_does_not() {
    let runtime = runtime();
    let fixture = runtime.block_on(Fixture::new());
    let signer = fixture.signer(Algorithm::HS256);
    let padded = |issuer: &authcache::TokenIssuer, padding: usize| {
        let extra = json!({ "padding": "p".repeat(padding) });
        let claims = legitimate_claims("ada", fixture.now, "limit")
            .with_extra(extra.as_object().cloned().unwrap());
        (issuer.sign(&claims).unwrap(), claims)
    };
    // Base64 grows by 1 or 2 characters per byte and a `kid` shifts the header: together
    // they reach every length around the limit.
    let estimate = (MAX_TOKEN_SIZE - padded(&signer.issuer, 0).0.len()) * 3 / 4;
    let mut by_length = std::collections::BTreeMap::new();
    for kid in ["", "k", "kk", "kkk"] {
        let issuer = signer.issuer.clone().kid(kid);
        for padding in estimate - 16..estimate + 16 {
            let (token, claims) = padded(&issuer, padding);
            by_length.entry(token.len()).or_insert((token, claims));
        }
    }
    let (at_limit, claims) = by_length
        .get(&MAX_TOKEN_SIZE)
        .expect("a token at the limit");
    let answer = runtime.block_on(signer.service.authenticate(&format!("Bearer {at_limit}")));
    expect_signed(&answer, claims).unwrap();
    let (over, _) = by_length
        .get(&(MAX_TOKEN_SIZE + 1))
        .expect("a token one byte over");
    let answer = runtime.block_on(signer.service.authenticate(over));
    let too_large = TokenError::TooLarge {
        size: MAX_TOKEN_SIZE + 1,
        max: MAX_TOKEN_SIZE,
    };
    assert_eq!(answer.unwrap_err(), AuthError::Token(too_large));
}

/// JSON nested up to 400,000 levels — in the header, an extra, a registered claim or as
/// the whole claims, HMAC-signed with the right key — is a typed error or the signed
/// principal, from a service with the default limit and from one that admits 8 MiB
/// tokens. Nothing recurses per level: an overflow would abort the run.
#[test]
fn deeply_nested_json_is_a_typed_error_or_the_signed_principal() {
    let runtime = runtime();
    let (fixture, roomy) = runtime.block_on(async {
        let fixture = Fixture::new().await;
        let (_, verifier) = key_pair(Algorithm::HS256);
        let roomy = service(verifier, &fixture.repository, ROOMY_LIMIT).await;
        (fixture, roomy)
    });
    let compact = &fixture.signer(Algorithm::HS256).service;
    let claims = legitimate_claims("ada", fixture.now, "nested");
    let accepted = RefCell::new(std::collections::BTreeMap::<String, u64>::new());
    run(
        &mut runner(LARGE_CASES, 0x6e65_7374),
        &nested::case(),
        |(place, shape, depth)| {
            let nested = shape.text(depth);
            let bearer = nested::token(place, &nested, &claims);
            for (service, limit) in [(compact, MAX_TOKEN_SIZE), (&roomy, ROOMY_LIMIT)] {
                let answer = runtime.block_on(service.authenticate(&bearer));
                if bare(&bearer).len() > limit {
                    let error = expect_token_error(&answer)?;
                    prop_assert!(matches!(error, TokenError::TooLarge { .. }), "{:?}", error);
                } else {
                    nested::check(&answer, place, shape, &nested, &claims)?;
                    if answer.is_ok() {
                        *accepted
                            .borrow_mut()
                            .entry(format!("{place:?}"))
                            .or_default() += 1;
                    }
                }
            }
            Ok(())
        },
    );
    println!(
        "nested input accepted (signed principal), per place: {:?}",
        accepted.into_inner()
    );
}

/// The token limit of the service that lets deep nesting reach the JSON readers.
const ROOMY_LIMIT: usize = 8 << 20;

// ---------------------------------------------------------------------------------------
// Bad entries in Redis
// ---------------------------------------------------------------------------------------

/// Random bytes and mutations of real entries at the key of every kind, read by a fresh
/// instance: values are counted misses answered with the repository's truth (and replaced),
/// marks are in force and untouched, kinds never kept in Redis are never read.
#[test]
fn bad_bytes_at_every_key_kind_are_counted_and_never_trusted() {
    let runtime = runtime();
    let shelf = runtime.block_on(Shelf::new());
    let strategy = (select(Target::ALL.to_vec()), corruption());
    run(
        &mut runner(CACHE_CASES, 0x72_6564_6973),
        &strategy,
        |(target, corruption): (Target, Corruption)| shelf.case(&runtime, target, &corruption),
    );
    let passed = shelf.passed();
    println!("bad entries per target, [tombstone-shaped, other]: {passed:?}");
    assert!(
        passed.iter().all(|(_, [_, other])| *other > 0),
        "every target was spoiled"
    );
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn snapshot(fixture: &Fixture) -> Vec<Stats> {
    fixture.signers.iter().map(|s| s.service.stats()).collect()
}

/// Names the algorithm's service in a failure.
fn in_service(error: TestCaseError, alg: Algorithm) -> TestCaseError {
    TestCaseError::fail(format!("{alg:?} service: {error}"))
}
