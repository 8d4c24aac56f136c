//! Numbers applied over the library's defaults: `[ttls]`, `[breaker]`, and the top-level
//! `revocation_check` ([`RevocationCheck`]) with its reading.

use std::time::Duration;

use authcache_core::{BreakerConfig, Ttls};
use serde::{Deserialize, Deserializer};

/// TTL settings in seconds, as they appear in configuration; every field is optional and
/// falls back to the library default. Both `snake_case` and the `camelCase`/`TTL` spellings
/// of the systems this replaces are accepted (`user_ttl` = `userTTL`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TtlSettings {
    /// User records (default 300 s).
    #[serde(alias = "userTTL", alias = "userTtl", alias = "userttl")]
    pub user_ttl: Option<u64>,
    /// Permissions of a user (default 900 s).
    #[serde(
        alias = "permissionsTTL",
        alias = "permissionsTtl",
        alias = "permissionsttl",
        alias = "perms_ttl",
        alias = "permsTTL"
    )]
    pub permissions_ttl: Option<u64>,
    /// Cap on cached token validations (default 120 s; never beyond the token's `exp`).
    #[serde(
        alias = "tokenTTL",
        alias = "tokenTtl",
        alias = "tokenttl",
        alias = "validation_ttl"
    )]
    pub token_ttl: Option<u64>,
    /// Unknown users (default 30 s).
    #[serde(alias = "negativeTTL", alias = "negativeTtl", alias = "negativettl")]
    pub negative_ttl: Option<u64>,
    /// Cap on the in-process tier (default 30 s).
    #[serde(alias = "l1Cap", alias = "l1cap")]
    pub l1_cap: Option<u64>,
    /// Relative jitter applied to every TTL, 0.0–0.5 (default 0.1 = ±10 %).
    pub jitter: Option<f64>,
    /// Stale-if-error grace in seconds: how long past its expiry a user's last value may
    /// be served while the repository fails (default 300; 0 turns it off).
    #[serde(alias = "staleGrace", alias = "stale_if_error")]
    pub stale_grace: Option<u64>,
    /// Refresh-ahead window, a fraction 0.0–0.5 of the TTL (default 0.1; 0 turns it off).
    #[serde(alias = "refreshAhead")]
    pub refresh_ahead: Option<f64>,
}

impl TtlSettings {
    /// `ttls` with every setting that is present replacing the corresponding value.
    pub fn apply(&self, ttls: Ttls) -> Ttls {
        let secs =
            |value: Option<u64>, default: Duration| value.map_or(default, Duration::from_secs);
        Ttls {
            user: secs(self.user_ttl, ttls.user),
            perms: secs(self.permissions_ttl, ttls.perms),
            token: secs(self.token_ttl, ttls.token),
            negative: secs(self.negative_ttl, ttls.negative),
            l1_cap: secs(self.l1_cap, ttls.l1_cap),
            jitter: self.jitter.unwrap_or(ttls.jitter),
            stale_grace: secs(self.stale_grace, ttls.stale_grace),
            refresh_ahead: self.refresh_ahead.unwrap_or(ttls.refresh_ahead),
        }
    }
}

/// Settings of the circuit breaker around the shared cache (`[breaker]`); every field is
/// optional and falls back to [`BreakerConfig::default`]. A `[cache]` `timeout_ms`
/// replaces `timeout_ms` here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct BreakerSettings {
    /// Time limit of each shared-cache call, in milliseconds (default 100).
    #[serde(alias = "timeoutMs")]
    pub timeout_ms: Option<u64>,
    /// Consecutive failures that open the breaker (default 5).
    #[serde(alias = "failureThreshold")]
    pub failure_threshold: Option<u32>,
    /// First cool-down after opening, in milliseconds (default 250).
    #[serde(alias = "baseCooldownMs")]
    pub base_cooldown_ms: Option<u64>,
    /// Longest cool-down, in milliseconds (default 30,000).
    #[serde(alias = "maxCooldownMs")]
    pub max_cooldown_ms: Option<u64>,
}

impl BreakerSettings {
    /// `breaker` with every setting that is present replacing the corresponding value.
    pub fn apply(&self, mut breaker: BreakerConfig) -> BreakerConfig {
        let millis =
            |value: Option<u64>, default: Duration| value.map_or(default, Duration::from_millis);
        breaker.failure_threshold = self.failure_threshold.unwrap_or(breaker.failure_threshold);
        breaker.timeout = millis(self.timeout_ms, breaker.timeout);
        breaker.base_cooldown = millis(self.base_cooldown_ms, breaker.base_cooldown);
        breaker.max_cooldown = millis(self.max_cooldown_ms, breaker.max_cooldown);
        breaker
    }
}

/// `"fail-open"` or `"fail-closed"` (also `fail_open`, `failOpen`, any case).
pub(super) fn revocation_check<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<RevocationCheck>, D::Error> {
    let text = String::deserialize(deserializer)?;
    let folded: String = text
        .chars()
        .filter(|c| !matches!(c, '-' | '_'))
        .collect::<String>()
        .to_ascii_lowercase();
    match folded.as_str() {
        "failopen" => Ok(Some(RevocationCheck::FailOpen)),
        "failclosed" => Ok(Some(RevocationCheck::FailClosed)),
        _ => Err(serde::de::Error::custom(format!(
            "revocation_check is `{}`: expected \"fail-open\" or \"fail-closed\"",
            text.escape_default()
        ))),
    }
}

/// What a request gets when the shared cache cannot say whether its token was revoked
/// (Redis down or hung, breaker open). Revocations this instance made or has seen are
/// always enforced; this decides only about the ones it could not ask about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevocationCheck {
    /// Serve it (counted in `Stats::unchecked`): availability first. A token logged out
    /// on another instance may be accepted here while Redis is unreachable and this
    /// instance has not heard of the logout.
    #[default]
    FailOpen,
    /// Refuse it with [`AuthError::Unavailable`](crate::AuthError::Unavailable) (503): no token logged out anywhere is
    /// ever accepted, at the price of failing requests while Redis is unreachable and
    /// the token's check is not remembered.
    FailClosed,
}
