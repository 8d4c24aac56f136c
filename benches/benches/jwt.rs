//! `JwtVerifier::verify` against bare `jsonwebtoken::decode` for HS256, RS256 and ES256, and
//! the cost of `fingerprint`.
//!
//! Both sides verify the same token (sub, exp, iat, iss, aud and two extra claims) with the
//! same key and equivalent rules: the algorithm, leeway 30 s, `exp` and `sub` required,
//! `nbf` checked, issuer and audience. The raw side decodes into a JSON map, which is what a
//! caller of `decode` needs to see every claim, as `Claims` lets ours do.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use authcache_jwt::serde_json::{Map, Value, json};
use authcache_jwt::{Algorithm, Claims, JwtVerifier, TokenIssuer, fingerprint, test_keys};
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{DecodingKey, Validation};

const ISS: &str = "https://id.example.com";
const AUD: &str = "api";

struct Case {
    group: &'static str,
    token: String,
    raw_key: DecodingKey,
    raw_validation: Validation,
    verifier: JwtVerifier,
}

fn token(issuer: TokenIssuer) -> String {
    let now = authcache_jwt::unix_now();
    let mut claims = Claims::new("user-42", now + 3600).with_extra(
        json!({"roles": ["admin", "billing"], "scope": "read write"})
            .as_object()
            .cloned()
            .unwrap(),
    );
    claims.iat = Some(now);
    claims.iss = Some(ISS.into());
    claims.aud = vec![AUD.into()];
    issuer.sign(&claims).unwrap()
}

fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = 30;
    v.validate_nbf = true;
    v.set_required_spec_claims(&["exp", "sub"]);
    v.set_issuer(&[ISS]);
    v.set_audience(&[AUD]);
    v
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            group: "jwt_verify_hs256",
            token: token(TokenIssuer::test_hs256()),
            raw_key: DecodingKey::from_secret(test_keys::HS256_SECRET),
            raw_validation: validation(Algorithm::HS256),
            verifier: JwtVerifier::test_hs256(),
        },
        Case {
            group: "jwt_verify_rs256",
            token: token(TokenIssuer::test_rs256()),
            raw_key: DecodingKey::from_rsa_pem(test_keys::RSA_A_PUBLIC_PEM.as_bytes()).unwrap(),
            raw_validation: validation(Algorithm::RS256),
            verifier: JwtVerifier::test_rs256(),
        },
        Case {
            group: "jwt_verify_es256",
            token: token(TokenIssuer::test_es256()),
            raw_key: DecodingKey::from_ec_pem(test_keys::EC_P256_PUBLIC_PEM.as_bytes()).unwrap(),
            raw_validation: validation(Algorithm::ES256),
            verifier: JwtVerifier::test_es256(),
        },
    ]
}

fn verify(c: &mut Criterion) {
    for case in cases() {
        let verifier = case.verifier.issuer(ISS).audience(AUD);
        // Both sides must accept the token, or the comparison means nothing.
        jsonwebtoken::decode::<Map<String, Value>>(
            &case.token,
            &case.raw_key,
            &case.raw_validation,
        )
        .unwrap();
        verifier.verify(&case.token).unwrap();

        let mut group = c.benchmark_group(case.group);
        group.bench_function("raw", |b| {
            b.iter(|| {
                jsonwebtoken::decode::<Map<String, Value>>(
                    black_box(&case.token),
                    &case.raw_key,
                    &case.raw_validation,
                )
                .unwrap()
            })
        });
        group.bench_function("authcache", |b| {
            b.iter(|| verifier.verify(black_box(&case.token)).unwrap())
        });
        group.finish();
    }
}

fn fingerprint_cost(c: &mut Criterion) {
    let token = token(TokenIssuer::test_rs256());
    let mut group = c.benchmark_group("jwt_fingerprint");
    group.bench_function("authcache", |b| b.iter(|| fingerprint(black_box(&token))));
    group.finish();
}

criterion_group! {
    name = benches;
    config = authcache_benches::criterion();
    targets = verify, fingerprint_cost
}
criterion_main!(benches);
