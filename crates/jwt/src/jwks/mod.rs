//! Remote key sets (feature `jwks`): a [`JwtVerifier`] whose keys come from a JWKS URL or
//! an OpenID Connect issuer, and follow the identity provider's key rotations.
//!
//! The protocol by which the keys stay current is documented on [`RemoteJwks`], where users
//! read it.

mod document;
mod http;
mod remote;
mod stats;

use std::time::Duration;

use crate::error::{Result, TokenError};
use crate::verifier::{JwtVerifier, ensure_crypto_provider};

pub(crate) use remote::RemoteKeys;
use remote::{Intervals, KeySource};
pub use stats::JwksStats;

/// 10 min: identity providers publish a new key well before they sign with it, so a periodic
/// refresh only has to pick up removals (a retired or compromised key) reasonably soon; an
/// unknown `kid` triggers its own refresh meanwhile.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(600);

/// 30 s: the most often an unknown `kid` may cause a fetch, so a flood of forged `kid`s costs
/// the identity provider two requests a minute, and a genuinely new key waits at most this
/// long.
pub const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// 5 s: the longest a request whose token names a new `kid` waits for the key set.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// 1 MiB: key sets and discovery documents are a few KiB; a larger answer is refused, not
/// read into memory.
pub const MAX_DOCUMENT_SIZE: usize = 1 << 20;

/// Builds a [`JwtVerifier`] over a remote key set (a JWKS URL or an OpenID Connect issuer),
/// kept current as the identity provider rotates its keys.
///
/// How the keys stay current, and what each reader may conclude:
///
/// - **Readers never wait and never see half a set.** The current set is one `Arc` behind an
///   `ArcSwap`; [`JwtVerifier::verify_at`] loads it without a lock. A refresh builds the
///   whole new set first, then swaps it in; a refresh that fails, or brings no usable key,
///   swaps nothing, so the previous keys keep working.
/// - **One fetch at a time.** Whoever fetches holds the refresh mutex across the HTTP call;
///   only refreshers ever take it, never the verification path. A caller that finds a fetch
///   in flight waits for it and then looks at its result instead of fetching again.
/// - **Unknown `kid`s cost at most one fetch per [`Self::min_refresh_interval`]**
///   (default 30 s). [`JwtVerifier::verify_at_async`] on an unknown `kid` joins the fetch in
///   flight, or starts one if the last fetch an unknown `kid` caused began at least that long
///   ago; otherwise the token is refused at once. A `kid` absent from a set fetched within the
///   interval is thereby "remembered" as unknown without any per-`kid` state an attacker
///   could grow: a flood of tokens with random `kid`s causes one fetch per interval, however
///   many tokens and `kid`s it holds, while a genuinely new `kid` is accepted within one
///   interval (not after the next periodic refresh).
/// - **Periodic refresh** every [`Self::refresh_interval`] (default 10 min) by a tokio
///   task that holds only a `Weak` reference and is aborted when the last clone of the
///   verifier is dropped. After a failed refresh it tries again after the minimum interval.
///
/// - **A lost key is announced.** A swap whose new set lacks a key of the old one (the `kid`
///   is gone, or its key material or declared `alg` changed) raises
///   [`JwtVerifier::key_set_version`], after the new set is in place; added keys, unchanged
///   sets and failed fetches do not. Whoever keeps verification results reads the version
///   before verifying, keeps it with the result, and verifies again once it has moved, so
///   nothing verified with a dropped key outlives the refetch that dropped it.
///
/// Every fetch is bounded by [`Self::fetch_timeout`] (default 5 s) and
/// [`MAX_DOCUMENT_SIZE`], and counted in [`JwksStats`] ([`JwtVerifier::jwks_stats`]).
///
/// **Transport.** HTTPS with rustls (ring) and the operating system's trust store. Plain
/// `http://` is accepted only for loopback hosts (`localhost`, `127.0.0.0/8`, `::1` — a local
/// identity provider or a test) unless [`Self::allow_http`] says otherwise, and
/// redirects are followed (at most 5) only to URLs that pass the same rule — and **never
/// from `https` to anything but `https`**, whatever the host (not even to
/// `http://localhost`, nor with `allow_http`): a key set is what every token is checked
/// against, so whoever can alter it in transit can sign as anyone. A refused redirect is
/// [`TokenError::RedirectRefused`], naming where it led. URLs with credentials are refused
/// (they would end up in logs).
///
/// **Key selection.** Only asymmetric signing keys are used: keys for encryption, of unknown
/// types, broken ones and `oct` (HMAC) keys are skipped and counted
/// ([`JwksStats::keys_skipped`]) — a secret published in a key set is no secret. The
/// verifier's allow-list is every supported asymmetric algorithm; each key verifies only its
/// own family, and only its `alg` when it declares one, so algorithm confusion stays
/// impossible.
///
/// **Discovery** ([`Self::issuer`]) fetches `{issuer}/.well-known/openid-configuration`
/// once, at build, requires its `issuer` to equal the configured one exactly (OpenID Connect
/// Discovery §4.3), takes its `jwks_uri`, and makes the verifier require that `iss`.
///
/// ```no_run
/// # async fn example() -> Result<(), authcache_jwt::TokenError> {
/// use std::time::Duration;
/// use authcache_jwt::{JwtVerifier, RemoteJwks};
///
/// // Discovery: `jwks_uri` from the issuer's OpenID configuration; `iss` is then required.
/// let verifier = JwtVerifier::from_oidc_issuer("https://id.example.com").await?.audience("api");
///
/// // Or a key-set URL, with its own intervals.
/// let verifier = RemoteJwks::url("https://id.example.com/.well-known/jwks.json")
///     .refresh_interval(Duration::from_secs(300))
///     .build()
///     .await?
///     .issuer("https://id.example.com");
///
/// // On the request path: `verify_async` fetches the set again for a `kid` it does not know.
/// let claims = verifier.verify_async("Bearer eyJ…").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RemoteJwks {
    location: Location,
    intervals: Intervals,
    fetch_timeout: Duration,
    allow_http: bool,
}

#[derive(Debug, Clone)]
enum Location {
    Jwks(String),
    Issuer(String),
}

impl RemoteJwks {
    /// Keys from a JWK set URL (`{"keys": [...]}`).
    pub fn url(jwks_url: impl Into<String>) -> Self {
        Self::new(Location::Jwks(jwks_url.into()))
    }

    /// Keys from an OpenID Connect issuer: its discovery document's `jwks_uri`. The verifier
    /// built then requires `iss` to be this issuer.
    pub fn issuer(issuer: impl Into<String>) -> Self {
        Self::new(Location::Issuer(issuer.into()))
    }

    fn new(location: Location) -> Self {
        Self {
            location,
            intervals: Intervals {
                refresh: DEFAULT_REFRESH_INTERVAL,
                min_refresh: DEFAULT_MIN_REFRESH_INTERVAL,
            },
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            allow_http: false,
        }
    }

    /// How often the key set is fetched in the background (default
    /// [`DEFAULT_REFRESH_INTERVAL`]; must not be zero).
    #[must_use]
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.intervals.refresh = interval;
        self
    }

    /// The least time between two fetches caused by unknown `kid`s (default
    /// [`DEFAULT_MIN_REFRESH_INTERVAL`]); also the retry delay after a failed periodic
    /// refresh.
    #[must_use]
    pub fn min_refresh_interval(mut self, interval: Duration) -> Self {
        self.intervals.min_refresh = interval;
        self
    }

    /// Bound on one fetch, connection included (default [`DEFAULT_FETCH_TIMEOUT`]; must not
    /// be zero).
    #[must_use]
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// Accepts plain `http://` URLs for any host, not only loopback ones. Only for a key
    /// server reached over a network you trust entirely.
    #[must_use]
    pub fn allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Resolves the key-set URL (discovery, for an issuer), fetches the set once, and starts
    /// the periodic refresh on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`TokenError::InvalidKey`] for a URL that is not HTTPS (see [`RemoteJwks::allow_http`])
    /// or carries credentials, a zero interval or timeout, or no tokio runtime;
    /// [`TokenError::KeySetUnavailable`] when the discovery document or the key set cannot be
    /// fetched, names another issuer, or holds no usable signing key;
    /// [`TokenError::RedirectRefused`] when the server redirected where the URL rule forbids.
    pub async fn build(self) -> Result<JwtVerifier> {
        self.validate()?;
        let tls = http::tls_config()?;
        self.build_over(tls).await
    }

    /// [`RemoteJwks::build`], once validated, over a given TLS configuration (tests trust
    /// their own CA).
    pub(crate) async fn build_over(self, tls: rustls::ClientConfig) -> Result<JwtVerifier> {
        ensure_crypto_provider();
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| TokenError::invalid_key("a remote key set needs a tokio runtime"))?;
        let client = http::HttpClient::new(self.fetch_timeout, self.allow_http, tls)?;
        let (jwks_url, issuer) = match self.location {
            Location::Jwks(url) => (client.checked_url(&url)?, None),
            Location::Issuer(issuer) => (client.discover(&issuer).await?, Some(issuer)),
        };
        let source: Box<dyn KeySource> = Box::new(http::JwksEndpoint::new(client, jwks_url));
        let keys = RemoteKeys::start(source, self.intervals, &runtime).await?;
        let verifier = JwtVerifier::remote(keys);
        Ok(match issuer {
            Some(issuer) => verifier.issuer(issuer),
            None => verifier,
        })
    }

    fn validate(&self) -> Result<()> {
        if self.intervals.refresh.is_zero() {
            return Err(TokenError::invalid_key("refresh_interval must not be zero"));
        }
        if self.fetch_timeout.is_zero() {
            return Err(TokenError::invalid_key("fetch_timeout must not be zero"));
        }
        Ok(())
    }

    /// Test seam: a verifier over any key source, without HTTP.
    #[cfg(test)]
    pub(crate) async fn build_with(
        source: Box<dyn KeySource>,
        intervals: Intervals,
    ) -> Result<JwtVerifier> {
        ensure_crypto_provider();
        let runtime = tokio::runtime::Handle::current();
        let keys = RemoteKeys::start(source, intervals, &runtime).await?;
        Ok(JwtVerifier::remote(keys))
    }
}

impl JwtVerifier {
    /// A verifier over the key set at `jwks_url`, with the default intervals:
    /// `RemoteJwks::url(jwks_url).build()`.
    ///
    /// # Errors
    ///
    /// As [`RemoteJwks::build`].
    pub async fn from_jwks_url(jwks_url: impl Into<String>) -> Result<Self> {
        RemoteJwks::url(jwks_url).build().await
    }

    /// A verifier over an OpenID Connect issuer's key set (discovery), requiring `iss` to be
    /// that issuer: `RemoteJwks::issuer(issuer).build()`.
    ///
    /// # Errors
    ///
    /// As [`RemoteJwks::build`].
    pub async fn from_oidc_issuer(issuer: impl Into<String>) -> Result<Self> {
        RemoteJwks::issuer(issuer).build().await
    }

    /// Counters of the remote key set; `None` for a verifier with fixed keys.
    pub fn jwks_stats(&self) -> Option<JwksStats> {
        self.remote_keys().map(RemoteKeys::stats)
    }

    /// Fetches the remote key set now (after any fetch in flight), e.g. when told out of band
    /// that the identity provider rotated its keys. A verifier with fixed keys has nothing to
    /// fetch and returns `Ok`.
    ///
    /// # Errors
    ///
    /// [`TokenError::KeySetUnavailable`] when the fetch failed or brought no usable key,
    /// [`TokenError::RedirectRefused`] when the key server redirected where the URL rule
    /// forbids; the previous keys stay in use either way.
    pub async fn refresh_keys(&self) -> Result<()> {
        match self.remote_keys() {
            Some(remote) => remote.refresh_now().await,
            None => Ok(()),
        }
    }
}
