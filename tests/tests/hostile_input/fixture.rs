//! The token half's fixture: one service per supported algorithm on the memory cache and
//! the memory repository, the repository's truth about every subject, the proptest runner
//! every property uses, and the checks an answer must pass.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use authcache::{
    Algorithm, AuthError, AuthService, CacheConfig, Claims, JwtVerifier, Principal, TokenError,
    TokenIssuer, Ttls, UserRepository,
};
use authcache_jwt::{SUPPORTED_ALGORITHMS, serde_json, test_keys, unix_now};
use proptest::prop_assert_eq;
use proptest::strategy::{Just, Strategy, Union};
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

use crate::auth_support::{ROLES, SECRET, memory_repository, users};

/// The issuer every service requires.
pub(crate) const ISS: &str = "https://id.hostile.test";
/// The audience every service requires.
pub(crate) const AUD: &str = "api";

/// The services' (default) size limit, checked independently of the crate's constant.
pub(crate) const MAX_TOKEN_SIZE: usize = 8 * 1024;

/// How long the legitimate tokens live: far beyond any run, so none expires mid-test, and
/// within [`MAX_LIFETIME`].
const LIFETIME: u64 = 24 * 3600;

/// The longest token lifetime (`exp − iat`) every service accepts
/// (`AuthServiceBuilder::max_token_lifetime`), which makes the verifier require `iat`, not
/// later than the clock plus [`LEEWAY`]. Set explicitly, and not to the builder's 24 h
/// default, so the claims oracle judges by the very value the services enforce, and a
/// service that ignored the setting would be caught.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(2 * 24 * 3600);

/// Every service's clock leeway on `exp`, `nbf` and `iat` (`AuthServiceBuilder::leeway`):
/// explicit, and not the verifier's 30 s default, for the same reasons.
pub(crate) const LEEWAY: Duration = Duration::from_secs(60);

const _: () = assert!(LIFETIME <= MAX_LIFETIME.as_secs());

/// Shrinking stops after this many steps: a failure is reported in bounded time.
const MAX_SHRINK_ITERS: u32 = 2048;

/// One current-thread runtime per test, built once: proptest cases are synchronous and
/// enter it with `block_on`.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A runner of `cases` cases from a fixed seed (the same inputs on every run, so CI never
/// meets an input the last run did not), persisting nothing.
pub(crate) fn runner(cases: u32, seed: u64) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        max_shrink_iters: MAX_SHRINK_ITERS,
        ..Config::default()
    })
}

/// Runs `test` over `strategy`; a failure (or a panic, which proptest catches and shrinks
/// like any failure) fails the calling test with the minimal input.
pub(crate) fn run<S>(
    runner: &mut TestRunner,
    strategy: &S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    if let Err(failure) = runner.run(strategy, test) {
        panic!("{failure}");
    }
}

// ---------------------------------------------------------------------------------------
// Keys and services
// ---------------------------------------------------------------------------------------

/// The signing and verifying halves of the published test key for `alg`.
pub(crate) fn key_pair(alg: Algorithm) -> (TokenIssuer, JwtVerifier) {
    let pem = |private: &str, public: &str| {
        (
            TokenIssuer::from_pem(alg, private).unwrap(),
            JwtVerifier::from_pem(alg, public).unwrap(),
        )
    };
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => (
            TokenIssuer::from_secret(alg, SECRET).unwrap(),
            JwtVerifier::from_secret(alg, SECRET).unwrap(),
        ),
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 => {
            pem(test_keys::RSA_A_PRIVATE_PEM, test_keys::RSA_A_PUBLIC_PEM)
        }
        Algorithm::ES256 => pem(
            test_keys::EC_P256_PRIVATE_PEM,
            test_keys::EC_P256_PUBLIC_PEM,
        ),
        Algorithm::ES384 => pem(
            test_keys::EC_P384_PRIVATE_PEM,
            test_keys::EC_P384_PUBLIC_PEM,
        ),
        Algorithm::EdDSA => pem(
            test_keys::ED25519_PRIVATE_PEM,
            test_keys::ED25519_PUBLIC_PEM,
        ),
        other => panic!("{other:?} is supported by the verifier but has no test key here"),
    }
}

/// Cached answers that outlive any run: no entry expires, and no read falls into an
/// entry's refresh-ahead window, mid-test (either would add repository loads the
/// assertions do not expect). The L1 cap stays the default.
pub(crate) fn lasting_ttls() -> Ttls {
    const DAY: Duration = Duration::from_secs(24 * 3600);
    Ttls {
        user: DAY,
        perms: DAY,
        negative: DAY,
        ..Ttls::default()
    }
}

/// A single-instance service (memory L2, no bus) requiring [`ISS`] and [`AUD`], with
/// [`MAX_LIFETIME`] and [`LEEWAY`].
pub(crate) async fn service(
    verifier: JwtVerifier,
    repository: &Arc<dyn UserRepository>,
    max_token_size: usize,
) -> AuthService {
    AuthService::builder()
        .verifier(verifier.issuer(ISS).audience(AUD))
        .shared_repository(Arc::clone(repository))
        .cache(CacheConfig::memory())
        .ttls(lasting_ttls())
        .max_token_size(max_token_size)
        .max_token_lifetime(MAX_LIFETIME)
        .leeway(LEEWAY)
        .build()
        .await
        .unwrap()
}

/// One supported algorithm: its issuer, a service that accepts it, and a legitimate token.
pub(crate) struct Signer {
    pub(crate) alg: Algorithm,
    pub(crate) issuer: TokenIssuer,
    pub(crate) service: AuthService,
    /// `Bearer <token>` for ada, signed by `issuer`.
    pub(crate) bearer: String,
    /// Exactly the claims `bearer` carries.
    pub(crate) claims: Claims,
}

/// A service per supported algorithm, each already holding its legitimate token's
/// answer (verified, user and permissions cached).
pub(crate) struct Fixture {
    pub(crate) signers: Vec<Signer>,
    pub(crate) repository: Arc<dyn UserRepository>,
    /// The unix second the fixture was built: claims' times are relative to it.
    pub(crate) now: u64,
}

impl Fixture {
    pub(crate) async fn new() -> Self {
        let repository = memory_repository().await;
        let now = unix_now();
        let mut signers = Vec::new();
        for alg in SUPPORTED_ALGORITHMS {
            let (issuer, verifier) = key_pair(alg);
            let service = service(verifier, &repository, MAX_TOKEN_SIZE).await;
            let claims = legitimate_claims("ada", now, &format!("{alg:?}"));
            let bearer = format!("Bearer {}", issuer.sign(&claims).unwrap());
            let answer = service.authenticate(&bearer).await;
            expect_signed(&answer, &claims).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
            signers.push(Signer {
                alg,
                issuer,
                service,
                bearer,
                claims,
            });
        }
        Self {
            signers,
            repository,
            now,
        }
    }
}

// The properties pick an algorithm per case, as often as its cost in a debug build allows
// (measured on the shared 2-core machine, CPU time per operation):
//
// | algorithm              | sign    | verify  |
// |------------------------|---------|---------|
// | HS256/384/512          | 0.05 ms | 0.1 ms  |
// | EdDSA                  | 0.5 ms  | 0.2 ms  |
// | RS256/384/512, PS256   | 6 ms    | 0.9 ms  |
// | ES256                  | 6 ms    | 3 ms    |
// | ES384                  | 40 ms   | 33 ms   |
//
// (ES384's curve arithmetic is generic code the dev profile leaves unoptimised.) Out of
// 10,000 cases every algorithm still gets dozens to thousands.

/// Weights for properties that sign every case.
pub(crate) fn signing_weight(alg: Algorithm) -> u32 {
    match alg {
        Algorithm::ES384 => 1,
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::ES256 => 4,
        _ => 80,
    }
}

/// Weights for properties that only verify.
pub(crate) fn verifying_weight(alg: Algorithm) -> u32 {
    match alg {
        Algorithm::ES384 => 1,
        Algorithm::ES256 => 4,
        _ => 12,
    }
}

impl Fixture {
    /// The signer of `alg`.
    pub(crate) fn signer(&self, alg: Algorithm) -> &Signer {
        self.signers.iter().find(|s| s.alg == alg).unwrap()
    }

    /// The index of a signer, drawn by `weight`.
    pub(crate) fn pick_signer(
        &self,
        weight: fn(Algorithm) -> u32,
    ) -> impl Strategy<Value = usize> + use<> {
        let choices = self
            .signers
            .iter()
            .enumerate()
            .map(|(i, signer)| (weight(signer.alg), Just(i)))
            .collect();
        Union::new_weighted(choices)
    }
}

/// Claims every service accepts for `sub`, with every registered claim and an extra.
pub(crate) fn legitimate_claims(sub: &str, now: u64, jti: &str) -> Claims {
    let mut claims = Claims::new(sub, now + LIFETIME);
    claims.iat = Some(now);
    claims.nbf = Some(now);
    claims.iss = Some(ISS.into());
    claims.aud = vec![AUD.into()];
    claims.jti = Some(jti.into());
    let extra = serde_json::json!({"scope": "read write", "n": [1, 2.5, {"deep": null}]});
    match extra {
        serde_json::Value::Object(map) => claims.with_extra(map),
        _ => claims,
    }
}

// ---------------------------------------------------------------------------------------
// The repository's truth
// ---------------------------------------------------------------------------------------

/// What the repository says about a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Truth {
    /// An enabled user with these roles and (sorted) permissions.
    Principal {
        roles: Vec<String>,
        permissions: Vec<String>,
    },
    Disabled,
    Unknown,
}

static TRUTH: LazyLock<HashMap<String, Truth>> = LazyLock::new(|| {
    users()
        .into_iter()
        .map(|user| {
            let truth = if user.disabled {
                Truth::Disabled
            } else {
                let mut permissions: Vec<String> =
                    user.roles.iter().flat_map(|r| permissions_of(r)).collect();
                permissions.sort();
                permissions.dedup();
                Truth::Principal {
                    roles: user.roles.clone(),
                    permissions,
                }
            };
            (user.id, truth)
        })
        .collect()
});

/// The permissions the repository grants `role`.
fn permissions_of(role: &str) -> Vec<String> {
    ROLES
        .iter()
        .filter(|(name, _)| *name == role)
        .flat_map(|(_, permissions)| permissions.iter().map(|p| (*p).to_owned()))
        .collect()
}

/// The repository's truth about `sub`.
pub(crate) fn truth(sub: &str) -> Truth {
    TRUTH.get(sub).cloned().unwrap_or(Truth::Unknown)
}

/// Subjects the repository knows, one of each kind (admin, viewers, disabled).
pub(crate) const KNOWN_SUBJECTS: [&str; 5] = ["ada", "bob", "eve", "user-7", "user-42"];

// ---------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------

/// The answer to a token the key signed with exactly `claims`: those claims and the
/// repository's truth about their subject — a principal, `Disabled` or `UnknownUser`.
pub(crate) fn expect_signed(
    answer: &Result<Principal, AuthError>,
    claims: &Claims,
) -> Result<(), TestCaseError> {
    expect_truth(answer, &claims.sub)?;
    match answer {
        Ok(principal) => same_claims(&principal.claims, claims),
        Err(_) => Ok(()),
    }
}

/// The repository's truth about `sub`: the user's principal, `Disabled` or `UnknownUser`.
pub(crate) fn expect_truth(
    answer: &Result<Principal, AuthError>,
    sub: &str,
) -> Result<(), TestCaseError> {
    match (truth(sub), answer) {
        (Truth::Principal { roles, permissions }, Ok(principal)) => {
            prop_assert_eq!(principal.id(), sub);
            prop_assert_eq!(&*principal.roles, &roles);
            prop_assert_eq!(&*principal.permissions, &permissions);
            Ok(())
        }
        (Truth::Disabled, Err(AuthError::Disabled))
        | (Truth::Unknown, Err(AuthError::UnknownUser)) => Ok(()),
        (truth, answer) => Err(TestCaseError::fail(format!(
            "a token signed for {sub:?} ({truth:?}) was answered {answer:?}"
        ))),
    }
}

/// Registered claims equal, extras equal as JSON: what a verified token says is what was
/// signed, whatever the text layout of the extras.
pub(crate) fn same_claims(got: &Claims, signed: &Claims) -> Result<(), TestCaseError> {
    same_registered_claims(got, signed)?;
    prop_assert_eq!(
        got.extra_claims().map_err(|e| e.to_string()),
        signed.extra_claims().map_err(|e| e.to_string())
    );
    Ok(())
}

/// `sub`, `exp`, `nbf`, `iat`, `iss`, `aud` and `jti` equal.
pub(crate) fn same_registered_claims(got: &Claims, signed: &Claims) -> Result<(), TestCaseError> {
    let registered = |c: &Claims| {
        (
            c.sub.clone(),
            c.exp,
            c.nbf,
            c.iat,
            c.iss.clone(),
            c.aud.clone(),
            c.jti.clone(),
        )
    };
    prop_assert_eq!(registered(got), registered(signed));
    Ok(())
}

/// A refusal for the token itself, as the verifier types it (never a configuration error:
/// the keys are fine).
pub(crate) fn expect_token_error(
    answer: &Result<Principal, AuthError>,
) -> Result<&TokenError, TestCaseError> {
    match answer {
        Err(AuthError::Token(error)) if !error.is_configuration() => Ok(error),
        other => Err(TestCaseError::fail(format!(
            "expected a token error, got {other:?}"
        ))),
    }
}

/// The token without its `Bearer ` scheme, as the verifier reads it (any case, one space).
pub(crate) fn bare(bearer: &str) -> &str {
    match bearer.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("bearer ") => &bearer[7..],
        _ => bearer,
    }
}

/// Everything before the last `.`: the bytes a signature covers.
pub(crate) fn signed_part(token: &str) -> &str {
    token.rsplit_once('.').map_or(token, |(signed, _)| signed)
}
