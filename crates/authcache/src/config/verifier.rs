//! `[verifier]`: where the token keys come from, which claims are required, and the limits;
//! built into a [`JwtVerifier`] when the service is built.

use std::fmt;
use std::time::Duration;

use authcache_jwt::{Algorithm, JwtVerifier, MAX_LEEWAY};
use serde::Deserialize;
use serde::de::{Deserializer, SeqAccess, Visitor};

use super::secrets::{self, EnvLookup, SecretRef, at_most_one};
use crate::{AuthError, Result};

/// How tokens are verified (`[verifier]`). Exactly one key source: an HMAC secret
/// (`secret_env` or `secret_file`), a PEM public key (`public_key_env` or
/// `public_key_file`), or a remote key set (`jwks_url`, or `oidc_issuer` for OpenID Connect
/// discovery; feature `jwks`). The secret and the key are named, never written here (see
/// [`AuthConfig`](crate::AuthConfig), *Secrets are references*).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct VerifierConfig {
    /// The algorithm (`"HS256"`, `"RS256"`, `"ES256"`, `"EdDSA"`, …). With a secret it
    /// defaults to HS256 and must be HMAC; a public key needs it; with a remote key set it
    /// narrows the allow-list to that one algorithm (default: every asymmetric one, each
    /// key verifying only its own).
    pub algorithm: Option<Algorithm>,
    /// The environment variable holding the HMAC secret (at least 32 bytes).
    #[serde(alias = "secretEnv")]
    pub secret_env: Option<String>,
    /// The file holding the HMAC secret (at least 32 bytes; a trailing line break is not
    /// part of it).
    #[serde(alias = "secretFile")]
    pub secret_file: Option<String>,
    /// The environment variable holding the PEM public key (or certificate).
    #[serde(alias = "publicKeyEnv")]
    pub public_key_env: Option<String>,
    /// The file holding the PEM public key (or certificate).
    #[serde(alias = "publicKeyFile")]
    pub public_key_file: Option<String>,
    /// A JWK set URL, refreshed in the background (feature `jwks`).
    #[serde(alias = "jwksUrl")]
    pub jwks_url: Option<String>,
    /// An OpenID Connect issuer: its discovery document names the key set, and `iss` must
    /// then be this issuer (feature `jwks`).
    #[serde(alias = "oidcIssuer")]
    pub oidc_issuer: Option<String>,
    /// Accepted `iss` values (a string or a list); once one is set, a token without `iss`
    /// is refused.
    #[serde(deserialize_with = "one_or_many")]
    pub issuer: Vec<String>,
    /// Accepted `aud` values (a string or a list); with none, a token that carries `aud`
    /// is refused (RFC 7519 §4.1.3).
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// Clock leeway for `exp`, `nbf` and `iat`, in seconds (default 30, at most 3,600).
    #[serde(alias = "leewaySecs")]
    pub leeway_secs: Option<u64>,
    /// Largest token accepted, in bytes (default 8,192).
    #[serde(alias = "maxTokenSize")]
    pub max_token_size: Option<usize>,
    /// Longest token lifetime (`exp − iat`) accepted, in seconds (default 86,400): see
    /// [`AuthServiceBuilder::max_token_lifetime`](crate::AuthServiceBuilder::max_token_lifetime).
    #[serde(alias = "maxTokenLifetimeSecs")]
    pub max_token_lifetime_secs: Option<u64>,
    /// `secret = "…"`, refused when read (the secret belongs in a variable or a file).
    #[serde(
        rename = "secret",
        deserialize_with = "secrets::refuse_inline_verifier_secret"
    )]
    inline_secret: secrets::Refused,
}

/// The key source a [`VerifierConfig`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeySource<'a> {
    Secret(SecretRef<'a>),
    PublicKey(SecretRef<'a>),
    JwksUrl(&'a str),
    OidcIssuer(&'a str),
}

impl VerifierConfig {
    /// Reads the key (from the process environment or a file, or over HTTPS for a remote
    /// key set) and builds the verifier with the claims and limits of this section.
    ///
    /// # Errors
    /// [`AuthError::Config`] for no key source or more than one (naming them), a variable
    /// or file that is missing or empty (naming it, never its content), an HMAC secret under
    /// 32 bytes, a key that does not fit the algorithm, a leeway over an hour, or
    /// `jwks_url`/`oidc_issuer` without the `jwks` feature; [`AuthError::Unavailable`] when
    /// a remote key set cannot be fetched.
    pub async fn build(&self) -> Result<JwtVerifier> {
        self.build_with(&secrets::process_env).await
    }

    /// [`build`](Self::build), looking `*_env` references up with `env`.
    pub(crate) async fn build_with(&self, env: EnvLookup<'_>) -> Result<JwtVerifier> {
        let (setting, source) = self.key_source()?;
        let setting = format!("verifier.{setting}");
        let verifier = match source {
            KeySource::Secret(secret) => {
                let alg = self.algorithm.unwrap_or(Algorithm::HS256);
                if !is_hmac(alg) {
                    return Err(AuthError::Config(format!(
                        "verifier: {alg:?} verifies with a public key, not a secret: name it \
                         with `public_key_env` or `public_key_file` instead of `{setting}`, or \
                         choose HS256, HS384 or HS512"
                    )));
                }
                let bytes = secret.read(&setting, env)?;
                JwtVerifier::from_secret(alg, &bytes).map_err(|error| {
                    AuthError::Config(format!(
                        "verifier: {error} (the secret named by `{setting}`); use a random \
                         secret of at least 32 bytes, the one the token issuer signs with \
                         (for instance `openssl rand -base64 48`)"
                    ))
                })?
            }
            KeySource::PublicKey(pem) => {
                let alg = self.algorithm.filter(|alg| !is_hmac(*alg)).ok_or_else(|| {
                    AuthError::Config(format!(
                        "verifier: a public key (`{setting}`) needs the `algorithm` it signs \
                         with: RS256, RS384, RS512, PS256, ES256, ES384 or EdDSA (an HMAC \
                         algorithm takes `secret_env` or `secret_file` instead)"
                    ))
                })?;
                let bytes = pem.read(&setting, env)?;
                JwtVerifier::from_pem(alg, &bytes).map_err(|error| {
                    AuthError::Config(format!(
                        "verifier: the public key named by `{setting}` cannot verify \
                         {alg:?}: {error}"
                    ))
                })?
            }
            KeySource::JwksUrl(url) => self.remote(Remote::Url(url)).await?,
            KeySource::OidcIssuer(issuer) => self.remote(Remote::Issuer(issuer)).await?,
        };
        self.with_claims_and_limits(verifier)
    }

    /// The one key source, and the setting that names it.
    fn key_source(&self) -> Result<(&'static str, KeySource<'_>)> {
        fn env(name: &Option<String>) -> Option<SecretRef<'_>> {
            name.as_deref().map(SecretRef::Env)
        }
        fn file(path: &Option<String>) -> Option<SecretRef<'_>> {
            path.as_deref().map(SecretRef::File)
        }
        let sources = [
            ("secret_env", env(&self.secret_env).map(KeySource::Secret)),
            (
                "secret_file",
                file(&self.secret_file).map(KeySource::Secret),
            ),
            (
                "public_key_env",
                env(&self.public_key_env).map(KeySource::PublicKey),
            ),
            (
                "public_key_file",
                file(&self.public_key_file).map(KeySource::PublicKey),
            ),
            ("jwks_url", self.jwks_url.as_deref().map(KeySource::JwksUrl)),
            (
                "oidc_issuer",
                self.oidc_issuer.as_deref().map(KeySource::OidcIssuer),
            ),
        ];
        at_most_one("verifier", sources)?.ok_or_else(|| {
            AuthError::Config(
                "[verifier] names no key: give exactly one of `secret_env` or `secret_file` \
                 (an HMAC secret), `public_key_env` or `public_key_file` (a PEM public key), \
                 `jwks_url` or `oidc_issuer` (a remote key set, feature `jwks`)"
                    .into(),
            )
        })
    }

    /// Issuers, audiences, leeway, size and lifetime limits on `verifier`.
    fn with_claims_and_limits(&self, mut verifier: JwtVerifier) -> Result<JwtVerifier> {
        for issuer in &self.issuer {
            verifier = verifier.issuer(issuer);
        }
        for audience in &self.audience {
            verifier = verifier.audience(audience);
        }
        if let Some(leeway) = self.leeway() {
            if leeway > MAX_LEEWAY {
                return Err(AuthError::Config(format!(
                    "verifier.leeway_secs is {}; the most accepted is {} (a leeway is clock \
                     skew, and every second of it keeps an expired token valid)",
                    leeway.as_secs(),
                    MAX_LEEWAY.as_secs()
                )));
            }
            verifier = verifier.leeway(leeway);
        }
        if let Some(bytes) = self.max_token_size {
            verifier = verifier.max_token_size(bytes);
        }
        if let Some(lifetime) = self.max_token_lifetime() {
            verifier = verifier.max_lifetime(lifetime);
        }
        Ok(verifier)
    }

    /// `leeway_secs` as a duration.
    pub(crate) fn leeway(&self) -> Option<Duration> {
        self.leeway_secs.map(Duration::from_secs)
    }

    /// `max_token_lifetime_secs` as a duration.
    pub(crate) fn max_token_lifetime(&self) -> Option<Duration> {
        self.max_token_lifetime_secs.map(Duration::from_secs)
    }

    #[cfg(feature = "jwks")]
    async fn remote(&self, remote: Remote<'_>) -> Result<JwtVerifier> {
        use authcache_jwt::{RemoteJwks, TokenError};

        let (setting, builder) = match remote {
            Remote::Url(url) => ("verifier.jwks_url", RemoteJwks::url(url)),
            Remote::Issuer(issuer) => ("verifier.oidc_issuer", RemoteJwks::issuer(issuer)),
        };
        let verifier = builder.build().await.map_err(|error| match error {
            TokenError::KeySetUnavailable(_) | TokenError::RedirectRefused { .. } => {
                AuthError::unavailable(format!("verifier: the key set of `{setting}`: {error}"))
            }
            other => AuthError::Config(format!("verifier: `{setting}`: {other}")),
        })?;
        match self.algorithm {
            Some(alg) => verifier.algorithms(&[alg]).map_err(|error| {
                AuthError::Config(format!("verifier: `algorithm` {alg:?}: {error}"))
            }),
            None => Ok(verifier),
        }
    }

    #[cfg(not(feature = "jwks"))]
    #[allow(clippy::unused_async)]
    async fn remote(&self, remote: Remote<'_>) -> Result<JwtVerifier> {
        let setting = match remote {
            Remote::Url(_) => "jwks_url",
            Remote::Issuer(_) => "oidc_issuer",
        };
        Err(AuthError::Config(format!(
            "verifier: `{setting}` needs a remote key set, which is not compiled in: enable \
             the `jwks` feature of authcache (authcache = {{ version = \"…\", features = \
             [\"jwks\"] }})"
        )))
    }
}

/// Where a remote key set is (read only when the `jwks` feature can fetch it).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "jwks"), allow(dead_code))]
enum Remote<'a> {
    Url(&'a str),
    Issuer(&'a str),
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// A string or a list of strings, as a list.
fn one_or_many<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Vec<String>, D::Error> {
    struct OneOrMany;

    impl<'de> Visitor<'de> for OneOrMany {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or a list of strings")
        }

        fn visit_str<E: serde::de::Error>(
            self,
            value: &str,
        ) -> std::result::Result<Self::Value, E> {
            Ok(vec![value.to_owned()])
        }

        fn visit_seq<A: SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut values = Vec::new();
            while let Some(value) = seq.next_element::<String>()? {
                values.push(value);
            }
            Ok(values)
        }
    }

    deserializer.deserialize_any(OneOrMany)
}
