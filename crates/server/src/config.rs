//! The `[server]` table: listeners, the admin credential, how the credential and the
//! identity are carried, limits, the policy and the back-channel logout. It sits in the same
//! file as the [`AuthConfig`] the service is built from; [`load`] splits the two.
//!
//! ```toml
//! [verifier]
//! secret_env = "AUTHCACHE_TOKEN_SECRET"
//!
//! [cache]
//! backend = "redis"
//! url = "redis://127.0.0.1:6379"
//!
//! [server]
//! listen = "0.0.0.0:9180"           # /auth, /healthz, /ready, /metrics, /backchannel-logout
//! admin_listen = "127.0.0.1:9181"   # /logout, /admin/… (loopback only by default)
//! grpc_listen = "0.0.0.0:9182"      # Envoy ext_authz over gRPC (off when absent)
//! admin_secret_env = "AUTHCACHE_ADMIN_SECRET"  # also require `X-Authcache-Admin: <secret>`
//! cookie = "access_token"           # read the token from this cookie when no Authorization
//! forwarded_headers = true          # also X-Forwarded-User/-Email/-Groups
//! strip_authorization = true        # gRPC: remove `authorization` before the upstream
//! request_timeout_ms = 5000
//! max_header_bytes = 16384
//!
//! [server.policy]                    # see `policy`
//! default = "authenticated"
//!
//! [server.backchannel]               # OpenID Connect back-channel logout; see `backchannel`
//! oidc_issuer = "https://idp.example.com/realms/main"
//! audience = "my-client-id"
//! ```
//!
//! The listeners can also be set by `--listen`, `--admin-listen` and `--grpc-listen` (or
//! `AUTHCACHE_SERVER_LISTEN`, `AUTHCACHE_SERVER_ADMIN_LISTEN`, `AUTHCACHE_SERVER_GRPC_LISTEN`),
//! which win over the file.

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::Duration;

use authcache::{AuthConfig, AuthError, VerifierConfig};
use serde::Deserialize;

use crate::policy::{Policy, RuleError};

/// Default public listener: loopback, beside the proxy.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9180";
/// Default admin listener: loopback only.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9181";
/// The header that carries the admin secret.
pub const ADMIN_SECRET_HEADER: &str = "x-authcache-admin";

/// The `[server]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerConfig {
    /// `/auth` and the operator's routes.
    pub listen: SocketAddr,
    /// `/logout` and `/admin/…`; `None` (`admin_listen = "off"`) serves them on `listen`
    /// instead, which then requires an admin secret.
    #[serde(deserialize_with = "optional_address")]
    pub admin_listen: Option<SocketAddr>,
    /// Envoy's gRPC `ext_authz`; off when `None`.
    pub grpc_listen: Option<SocketAddr>,
    /// The environment variable holding the admin secret.
    pub admin_secret_env: Option<String>,
    /// The file holding the admin secret.
    pub admin_secret_file: Option<String>,
    /// The cookie holding the token when there is no `Authorization` header.
    pub cookie: Option<String>,
    /// Also send `X-Forwarded-User`, `-Email` and `-Groups`.
    pub forwarded_headers: bool,
    /// gRPC: tell Envoy to remove `authorization` from the request it forwards.
    pub strip_authorization: bool,
    /// Bound on one request, in milliseconds (503 past it).
    pub request_timeout_ms: u64,
    /// Bound on a request's headers, in bytes (431 past it).
    pub max_header_bytes: usize,
    /// Per-route rules.
    pub policy: Policy,
    /// The identity provider whose back-channel logout tokens are accepted.
    pub backchannel: Option<VerifierConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9180))),
            admin_listen: DEFAULT_ADMIN_LISTEN.parse().ok(),
            grpc_listen: None,
            admin_secret_env: None,
            admin_secret_file: None,
            cookie: None,
            forwarded_headers: false,
            strip_authorization: false,
            request_timeout_ms: 5_000,
            max_header_bytes: 16 * 1024,
            policy: Policy::default(),
            backchannel: None,
        }
    }
}

/// `"off"` or an address.
fn optional_address<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text == "off" {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("{text:?} is not an address or \"off\"")))
}

/// What is wrong with the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The `[server]` table, or the file as TOML.
    #[error("[server]: {0}")]
    Server(String),
    /// The rest of the file, as the facade reads it.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A policy rule.
    #[error(transparent)]
    Rule(#[from] RuleError),
}

/// Splits a configuration file into the service's [`AuthConfig`] and the `[server]` table.
///
/// # Errors
/// [`ConfigError`] naming the setting.
pub fn load(text: &str) -> Result<(AuthConfig, ServerConfig), ConfigError> {
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Server(e.message().trim_end().to_owned()))?;
    let server = match table.remove("server") {
        Some(value) => value
            .try_into::<ServerConfig>()
            .map_err(|e| ConfigError::Server(e.message().trim_end().to_owned()))?,
        None => ServerConfig::default(),
    };
    let rest = toml::to_string(&table)
        .map_err(|e| ConfigError::Server(format!("re-reading the file: {e}")))?;
    let auth = AuthConfig::from_toml(&rest)?;
    server.validate()?;
    Ok((auth, server))
}

impl ServerConfig {
    /// Checks what can be checked before anything is bound.
    ///
    /// # Errors
    /// The first setting that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.policy.validate()?;
        if self.admin_secret_env.is_some() && self.admin_secret_file.is_some() {
            return Err(ConfigError::Server(
                "admin_secret_env and admin_secret_file: name one".into(),
            ));
        }
        if self.request_timeout_ms == 0 || self.max_header_bytes < 8192 {
            return Err(ConfigError::Server(
                "request_timeout_ms must be positive and max_header_bytes at least 8192 (hyper's smallest buffer)".into(),
            ));
        }
        if let Some(cookie) = &self.cookie
            && (cookie.is_empty() || cookie.contains([';', '=', ' ']))
        {
            return Err(ConfigError::Server(format!(
                "cookie {cookie:?} is not a cookie name"
            )));
        }
        Ok(())
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Reads the admin secret named by `admin_secret_env` / `admin_secret_file`.
    ///
    /// # Errors
    /// When it is named but missing, empty or shorter than 16 bytes; the error names the
    /// variable or file, never the value.
    pub fn admin_secret(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        let (what, value) = match (&self.admin_secret_env, &self.admin_secret_file) {
            (Some(name), _) => (
                format!("environment variable `{name}` (admin_secret_env)"),
                std::env::var_os(name).map(|v| v.into_encoded_bytes()),
            ),
            (None, Some(path)) => (
                format!("file `{path}` (admin_secret_file)"),
                std::fs::read(path).ok().map(|mut bytes| {
                    while bytes.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
                        bytes.pop();
                    }
                    bytes
                }),
            ),
            (None, None) => return Ok(None),
        };
        match value {
            Some(secret) if secret.len() >= 16 => Ok(Some(secret)),
            Some(_) => Err(ConfigError::Server(format!(
                "{what} holds fewer than 16 bytes: use a long random secret"
            ))),
            None => Err(ConfigError::Server(format!(
                "{what} cannot be read or is not set"
            ))),
        }
    }
}
