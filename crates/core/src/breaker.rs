//! A circuit breaker and per-call timeout around an L2 backend.
//!
//! [`GuardedCache`] is itself a [`Cache`](crate::Cache), built once per L2 and shared by
//! every tier that uses it, so that one dead Redis opens one breaker for all of them. Every
//! call carries [`BreakerConfig::timeout`]; after [`BreakerConfig::failure_threshold`]
//! consecutive failures the breaker opens and calls fail at once with
//! [`CacheError::CircuitOpen`](crate::CacheError::CircuitOpen) for a cool-down, which
//! doubles (up to [`BreakerConfig::max_cooldown`]) each time the single half-open probe
//! fails. A hung backend therefore costs a request at most one timeout, and once the
//! breaker is open, none.
//!
//! "One timeout" holds per request, not per call: a request runs inside
//! [`with_l2_budget`], and once one L2 call of it has failed or timed out, its later L2
//! calls (the next tier's read, the fill, the publish) are skipped at once with
//! [`CacheError::Skipped`](crate::CacheError::Skipped) — before the breaker has seen
//! enough failures to open.
//!
//! The state machine itself is [`CircuitBreaker`], which knows nothing of caches: the
//! facade guards its user repository with one too.
//!
//! - `circuit.rs` — [`CircuitBreaker`] and its [`BreakerPermit`]: closed, open, half-open;
//! - `guarded.rs` — [`GuardedCache`] and the request's L2 budget ([`with_l2_budget`]).

use std::time::Duration;

mod circuit;
mod guarded;
#[cfg(test)]
mod tests;

pub use circuit::{BreakerPermit, CircuitBreaker};
pub use guarded::{GuardedCache, with_l2_budget};

/// 5 failures in a row: one or two can be a blip, five are an outage.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;

/// 100 ms: a healthy Redis answers in well under a millisecond; past this, serving from
/// the repository is faster than waiting.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

/// 250 ms: the first cool-down is short, so a blip costs little cache use.
pub const DEFAULT_BASE_COOLDOWN: Duration = Duration::from_millis(250);

/// 30 s: the cool-down stops doubling here, so a recovered backend is noticed within 30 s.
pub const DEFAULT_MAX_COOLDOWN: Duration = Duration::from_secs(30);

/// Breaker and timeout settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures (errors or timeouts) that open the breaker; 0 is read as 1.
    pub failure_threshold: u32,
    /// Time limit for each backend call.
    pub timeout: Duration,
    /// First cool-down after opening.
    pub base_cooldown: Duration,
    /// Longest cool-down.
    pub max_cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            timeout: DEFAULT_TIMEOUT,
            base_cooldown: DEFAULT_BASE_COOLDOWN,
            max_cooldown: DEFAULT_MAX_COOLDOWN,
        }
    }
}

/// Where the breaker stands (serialized as `closed`, `open`, `half_open`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go to the backend.
    #[default]
    Closed,
    /// Calls are skipped until the cool-down ends.
    Open,
    /// One probe call is in flight; the others are skipped.
    HalfOpen,
}

/// Counters and state of a breaker, as a plain copy (the default: a closed breaker that
/// has seen nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BreakerStats {
    /// Current state.
    pub state: BreakerState,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Failed calls (errors and timeouts) since start.
    pub failures: u64,
    /// Of which timeouts.
    pub timeouts: u64,
    /// Calls skipped because the breaker was open.
    pub rejected: u64,
    /// Times the breaker opened.
    pub opened: u64,
}
