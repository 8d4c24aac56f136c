//! [`JwksStats`]: what a remote key set has done so far.

/// Counters of a remote key set, from [`JwtVerifier::jwks_stats`](crate::JwtVerifier::jwks_stats).
/// Counts are totals since the verifier was built, shared by all its clones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JwksStats {
    /// Fetches of the key set begun: the first one, periodic ones, those caused by unknown
    /// `kid`s and [`refresh_keys`](crate::JwtVerifier::refresh_keys).
    pub fetches: u64,
    /// Fetches that failed (unreachable, timed out, not 2xx, too large, not a key set, no
    /// usable key); the previous keys stayed in use each time.
    pub fetch_failures: u64,
    /// Fetches caused by a token with an unknown `kid` (at most one per minimum interval).
    pub unknown_kid_fetches: u64,
    /// Tokens refused by `verify_async`/`verify_at_async` because their `kid` was still
    /// unknown after any refresh.
    pub unknown_kid_rejections: u64,
    /// Keys in the current set.
    pub keys: u64,
    /// Keys of the last set fetched that could not be used (encryption keys, HMAC secrets,
    /// unknown types, broken keys).
    pub keys_skipped: u64,
}
