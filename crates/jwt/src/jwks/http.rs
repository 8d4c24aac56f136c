//! Fetching key sets and discovery documents over HTTPS: which URLs are allowed (redirects
//! included: never from https to anything else), the client (rustls on ring, the OS trust
//! store), and reads bounded in time and size.

use std::error::Error as StdError;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::ACCEPT;
use reqwest::redirect::{Attempt, Policy};
use reqwest::{Client, Url};
use rustls_platform_verifier::BuilderVerifierExt;
use serde::Deserialize;

use super::MAX_DOCUMENT_SIZE;
use super::remote::{Fetched, KeySource, at_location};
use crate::error::{Result, TokenError};

/// 5: enough for a CDN's or a tenant alias's hop or two; more looks like a loop.
const MAX_REDIRECTS: usize = 5;

/// The HTTP client and the URL rule every request and redirect obeys.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    client: Client,
    allow_http: bool,
}

impl HttpClient {
    /// # Errors
    ///
    /// [`TokenError::InvalidKey`] when the client cannot be built.
    pub(crate) fn new(
        timeout: Duration,
        allow_http: bool,
        tls: rustls::ClientConfig,
    ) -> Result<Self> {
        let client = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // Fetches are minutes apart: an idle connection would only go stale meanwhile.
            .pool_max_idle_per_host(0)
            .redirect(Policy::custom(move |attempt| follow(attempt, allow_http)))
            .user_agent(concat!("authcache-jwt/", env!("CARGO_PKG_VERSION")))
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| TokenError::invalid_key(format!("HTTP client: {}", describe(&e))))?;
        Ok(Self { client, allow_http })
    }

    /// `url` parsed, if this client may fetch it.
    ///
    /// # Errors
    ///
    /// [`TokenError::InvalidKey`] naming what is wrong with it.
    pub(crate) fn checked_url(&self, url: &str) -> Result<Url> {
        let parsed = Url::parse(url)
            .map_err(|e| TokenError::invalid_key(format!("key-set URL {url:?}: {e}")))?;
        permitted(&parsed, self.allow_http)
            .map_err(|reason| TokenError::invalid_key(format!("key-set URL {url:?}: {reason}")))?;
        Ok(parsed)
    }

    /// The `jwks_uri` of `issuer`'s OpenID configuration, once its `issuer` is checked.
    ///
    /// # Errors
    ///
    /// [`TokenError::InvalidKey`] for an issuer or `jwks_uri` this client may not fetch;
    /// [`TokenError::KeySetUnavailable`] when the document cannot be had or names another
    /// issuer; [`TokenError::RedirectRefused`].
    pub(crate) async fn discover(&self, issuer: &str) -> Result<Url> {
        let url = self.checked_url(&format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ))?;
        let body = self
            .get(&url)
            .await
            .map_err(|error| at_location(url.as_str(), error))?;
        let unavailable =
            |reason: String| TokenError::KeySetUnavailable(format!("{url}: {reason}"));
        let document: Discovery = serde_json::from_slice(&body)
            .map_err(|e| unavailable(format!("not an OpenID configuration: {e}")))?;
        if document.issuer != issuer {
            return Err(unavailable(format!(
                "it names issuer {:?}, not {issuer:?}",
                document.issuer
            )));
        }
        self.checked_url(&document.jwks_uri)
    }

    /// The body of a 2xx answer to a GET of `url`, at most [`MAX_DOCUMENT_SIZE`] bytes.
    ///
    /// # Errors
    ///
    /// [`TokenError::RedirectRefused`] for a redirect [`follow`] refused;
    /// [`TokenError::KeySetUnavailable`] with the reason (no location) for anything else.
    async fn get(&self, url: &Url) -> Result<Vec<u8>> {
        let unavailable = TokenError::KeySetUnavailable;
        let mut response = self
            .client
            .get(url.clone())
            .header(ACCEPT, "application/json, application/jwk-set+json")
            .send()
            .await
            .map_err(|e| match refused_redirect(&e) {
                Some(refused) => TokenError::RedirectRefused {
                    location: refused.location.clone(),
                    reason: refused.reason,
                },
                None => unavailable(describe(&e)),
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(unavailable(format!("HTTP {status}")));
        }
        let too_large = || unavailable(format!("the document is over {MAX_DOCUMENT_SIZE} bytes"));
        if response
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_SIZE as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unavailable(describe(&e)))?
        {
            if body.len().saturating_add(chunk.len()) > MAX_DOCUMENT_SIZE {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The parts of an OpenID Provider's configuration this crate reads.
#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// The key-set endpoint behind a remote verifier.
#[derive(Debug)]
pub(crate) struct JwksEndpoint {
    http: HttpClient,
    url: Url,
    location: String,
}

impl JwksEndpoint {
    pub(crate) fn new(http: HttpClient, url: Url) -> Self {
        let location = url.to_string();
        Self {
            http,
            url,
            location,
        }
    }
}

impl KeySource for JwksEndpoint {
    fn fetch(&self) -> Fetched<'_> {
        Box::pin(self.http.get(&self.url))
    }

    fn location(&self) -> &str {
        &self.location
    }
}

/// HTTPS always; plain HTTP for loopback hosts, or any host when allowed; never credentials.
fn permitted(url: &Url, allow_http: bool) -> std::result::Result<(), &'static str> {
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in a key-set URL would end up in logs");
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http || is_loopback(url) => Ok(()),
        "http" => Err("plain http is only allowed for loopback hosts (or with `allow_http`)"),
        _ => Err("only https URLs are allowed"),
    }
}

fn is_loopback(url: &Url) -> bool {
    url.host_str().is_some_and(|host| {
        host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

/// A redirect [`follow`] refused, carried through reqwest's error to [`HttpClient::get`].
#[derive(Debug)]
struct RefusedRedirect {
    location: String,
    reason: &'static str,
}

impl fmt::Display for RefusedRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redirect to {} refused: {}", self.location, self.reason)
    }
}

impl StdError for RefusedRedirect {}

fn follow(attempt: Attempt<'_>, allow_http: bool) -> reqwest::redirect::Action {
    match redirect_verdict(attempt.previous(), attempt.url(), allow_http) {
        Ok(()) => attempt.follow(),
        Err(reason) => {
            let location = loggable(attempt.url());
            attempt.error(RefusedRedirect { location, reason })
        }
    }
}

/// Whether a redirect to `next` may be followed, `previous` being every URL requested so
/// far in the chain (the first one included). At most [`MAX_REDIRECTS`] hops; `next`
/// passes the rule for any URL ([`permitted`]); and once the chain has been on https it
/// stays on https: a downgrade would hand the key set to whoever sits on the path, and a
/// loopback host or `allow_http` (which exist for a local identity provider or a test
/// reached over plain http from the start) never excuse it.
fn redirect_verdict(
    previous: &[Url],
    next: &Url,
    allow_http: bool,
) -> std::result::Result<(), &'static str> {
    if previous.len() >= MAX_REDIRECTS {
        return Err("too many redirects");
    }
    if next.scheme() != "https" && previous.iter().any(|url| url.scheme() == "https") {
        return Err("a redirect from https must stay on https");
    }
    permitted(next, allow_http)
}

/// `url` without credentials, at most 256 bytes, escaped: a redirect's target is the key
/// server's text and ends up in logs.
fn loggable(url: &Url) -> String {
    const MAX: usize = 256;
    let mut url = url.clone();
    // Fails only for URLs that cannot carry credentials anyway.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let text = url.as_str();
    let mut end = text.len().min(MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].escape_default().to_string()
}

/// The [`RefusedRedirect`] somewhere in `error`'s chain of causes.
fn refused_redirect(error: &reqwest::Error) -> Option<&RefusedRedirect> {
    let mut cause: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(current) = cause {
        if let Some(refused) = current.downcast_ref::<RefusedRedirect>() {
            return Some(refused);
        }
        cause = current.source();
    }
    None
}

/// rustls with the ring provider (set here, so no process-wide default is needed) and the
/// operating system's certificate verifier.
///
/// # Errors
///
/// [`TokenError::InvalidKey`] when TLS cannot be set up (no usable trust store).
pub(crate) fn tls_config() -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_error = |e: rustls::Error| TokenError::invalid_key(format!("TLS setup: {e}"));
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_platform_verifier()
        .map_err(tls_error)?
        .with_no_client_auth())
}

/// A reqwest error with its causes ("error sending request" alone says little).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
