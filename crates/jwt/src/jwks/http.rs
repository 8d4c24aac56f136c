//! Fetching key sets and discovery documents over HTTPS: which URLs are allowed, the client
//! (rustls on ring, the OS trust store), and reads bounded in time and size.

use std::error::Error as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::ACCEPT;
use reqwest::redirect::{Attempt, Policy};
use reqwest::{Client, Url};
use rustls_platform_verifier::BuilderVerifierExt;
use serde::Deserialize;

use super::MAX_DOCUMENT_SIZE;
use super::remote::{Fetched, KeySource};
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
    /// [`TokenError::InvalidKey`] when TLS cannot be set up (no usable trust store).
    pub(crate) fn new(timeout: Duration, allow_http: bool) -> Result<Self> {
        let client = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // Fetches are minutes apart: an idle connection would only go stale meanwhile.
            .pool_max_idle_per_host(0)
            .redirect(Policy::custom(move |attempt| follow(attempt, allow_http)))
            .user_agent(concat!("authcache-jwt/", env!("CARGO_PKG_VERSION")))
            .tls_backend_preconfigured(tls_config()?)
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
    /// issuer.
    pub(crate) async fn discover(&self, issuer: &str) -> Result<Url> {
        let url = self.checked_url(&format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ))?;
        let unavailable =
            |reason: String| TokenError::KeySetUnavailable(format!("{url}: {reason}"));
        let body = self.get(&url).await.map_err(unavailable)?;
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
    async fn get(&self, url: &Url) -> std::result::Result<Vec<u8>, String> {
        let mut response = self
            .client
            .get(url.clone())
            .header(ACCEPT, "application/json, application/jwk-set+json")
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let too_large = || format!("the document is over {MAX_DOCUMENT_SIZE} bytes");
        if response
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_SIZE as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
            if body.len() + chunk.len() > MAX_DOCUMENT_SIZE {
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

/// Redirects obey the same rule as the URL they started from.
fn follow(attempt: Attempt<'_>, allow_http: bool) -> reqwest::redirect::Action {
    if attempt.previous().len() >= MAX_REDIRECTS {
        return attempt.error("too many redirects");
    }
    match permitted(attempt.url(), allow_http) {
        Ok(()) => attempt.follow(),
        Err(reason) => attempt.error(format!("redirect refused: {reason}")),
    }
}

/// rustls with the ring provider (set here, so no process-wide default is needed) and the
/// operating system's certificate verifier.
fn tls_config() -> Result<rustls::ClientConfig> {
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
mod tests {
    use super::*;

    fn allowed(url: &str, allow_http: bool) -> bool {
        permitted(&Url::parse(url).unwrap(), allow_http).is_ok()
    }

    #[test]
    fn https_is_allowed_and_plain_http_only_for_loopback_or_by_opt_in() {
        assert!(allowed("https://id.example.com/jwks.json", false));
        for loopback in [
            "http://127.0.0.1:8080/jwks",
            "http://127.8.9.10/jwks",
            "http://localhost:1/jwks",
            "http://LOCALHOST/jwks",
            "http://[::1]:99/jwks",
        ] {
            assert!(allowed(loopback, false), "{loopback}");
        }
        for remote in [
            "http://id.example.com/jwks",
            "http://10.0.0.1/jwks",
            "http://localhost.evil.com/",
        ] {
            assert!(!allowed(remote, false), "{remote}");
            assert!(allowed(remote, true), "{remote} with allow_http");
        }
    }

    #[test]
    fn other_schemes_and_credentials_are_refused() {
        for url in [
            "ftp://id.example.com/jwks",
            "file:///etc/jwks.json",
            "https://user:secret@id.example.com/jwks",
            "https://user@id.example.com/jwks",
        ] {
            assert!(!allowed(url, true), "{url}");
        }
    }
}
