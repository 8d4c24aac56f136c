//! How long each kind of answer is kept, and the jitter that keeps entries written
//! together from expiring together.

use std::time::Duration;

use crate::KeyKind;

/// 300 s: profile data changes rarely within a session, and changes go through
/// write-through/invalidation anyway; this is what the replaced systems used.
pub const DEFAULT_USER_TTL: Duration = Duration::from_secs(300);

/// 900 s: permissions follow roles, so they share their lifetime.
pub const DEFAULT_PERMS_TTL: Duration = Duration::from_secs(900);

/// 120 s: the longest a token validation result is trusted; the token's own `exp` can only
/// shorten it.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(120);

/// 30 s: "no such user" is remembered briefly, enough to absorb a burst of requests for an
/// unknown id, short enough that a user created meanwhile appears quickly.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(30);

/// 30 s: the in-process tier cannot hear invalidations it missed (bus reconnect), so its
/// entries are short-lived; this bounds staleness across instances.
pub const DEFAULT_L1_CAP: Duration = Duration::from_secs(30);

/// ±10 %: enough to spread a burst of writes over a window, small enough not to matter.
pub const DEFAULT_JITTER: f64 = 0.10;

/// 300 s: how long after a user's entry expired its last value may still be served when
/// the repository cannot answer (stale-if-error). Long enough to ride out a database
/// failover, short enough that a profile change made during an outage is not hidden long.
pub const DEFAULT_STALE_GRACE: Duration = Duration::from_secs(300);

/// 10 %: a hot entry read in the last tenth of its TTL is reloaded in the background, so a
/// user read continuously never waits for the repository when the entry expires.
pub const DEFAULT_REFRESH_AHEAD: f64 = 0.10;

/// The smallest TTL jitter may produce from a non-zero TTL: one millisecond, the resolution
/// of Redis `PX`.
pub const MIN_TTL: Duration = Duration::from_millis(1);

/// The longest TTL accepted: one year. Longer is a configuration mistake (and Redis
/// rejects expiry times past its clock's range).
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// TTL policy. A zero TTL disables caching for that kind (or, for `l1_cap`, the L1).
#[derive(Debug, Clone, PartialEq)]
pub struct Ttls {
    /// User records.
    pub user: Duration,
    /// Permissions of a user.
    pub perms: Duration,
    /// Upper bound for token validation results (and the default for revocations, which
    /// callers should write with the token's remaining lifetime instead).
    pub token: Duration,
    /// "Known absent" entries.
    pub negative: Duration,
    /// Upper bound for any L1 entry.
    pub l1_cap: Duration,
    /// Jitter as a fraction of the TTL (`0.1` = ±10 %); clamped to `0.0..=0.5`.
    pub jitter: f64,
    /// Stale-if-error: for this long after a value expired, the shared tier keeps it, and it
    /// is served (and counted as stale) when the loader fails or times out. Zero turns it
    /// off. Never applies to revocations or negative entries.
    pub stale_grace: Duration,
    /// Refresh-ahead: the last fraction of a value's TTL (`0.1` = the last 10 %) in which a
    /// read reloads it in the background, once (single-flight), while the current value is
    /// still served. `0.0` turns it off; at most `0.5`.
    pub refresh_ahead: f64,
}

impl Default for Ttls {
    fn default() -> Self {
        Self {
            user: DEFAULT_USER_TTL,
            perms: DEFAULT_PERMS_TTL,
            token: DEFAULT_TOKEN_TTL,
            negative: DEFAULT_NEGATIVE_TTL,
            l1_cap: DEFAULT_L1_CAP,
            jitter: DEFAULT_JITTER,
            stale_grace: DEFAULT_STALE_GRACE,
            refresh_ahead: DEFAULT_REFRESH_AHEAD,
        }
    }
}

impl Ttls {
    /// The L2 TTL of a kind, before jitter.
    pub fn for_kind(&self, kind: KeyKind) -> Duration {
        match kind {
            KeyKind::User => self.user,
            KeyKind::RolePerms => self.perms,
            // Written with a TTL of its own by the watcher, never through a tier.
            KeyKind::Checkpoint => self.user,
            KeyKind::Token | KeyKind::Revoked | KeyKind::Cutoff | KeyKind::IssuerCutoff => {
                self.token
            }
        }
    }

    /// The jittered L2 TTL for a new entry of `kind`. For [`KeyKind::Token`] and
    /// [`KeyKind::Revoked`] the configured value is a cap, so jitter only shortens it.
    pub fn jittered_for(&self, kind: KeyKind) -> Duration {
        match kind {
            KeyKind::Token | KeyKind::Revoked | KeyKind::Cutoff | KeyKind::IssuerCutoff => {
                self.jittered_below(self.token)
            }
            _ => self.jittered(self.for_kind(kind)),
        }
    }

    /// `ttl` ± the configured jitter; zero stays zero.
    pub fn jittered(&self, ttl: Duration) -> Duration {
        jitter(ttl, self.jitter, None)
    }

    /// `ttl` minus up to the configured jitter, never above `ttl`: for TTLs that are hard
    /// limits (a token's remaining lifetime).
    pub fn jittered_below(&self, ttl: Duration) -> Duration {
        jitter(ttl, self.jitter, Some(ttl))
    }

    /// Checks that every TTL is at most [`MAX_TTL`] and the jitter a finite fraction:
    /// configuration errors are found at start-up, never as a panic mid-request.
    ///
    /// # Errors
    /// A message naming the first field out of range.
    pub fn validate(&self) -> Result<(), String> {
        let fields = [
            ("user", self.user),
            ("perms", self.perms),
            ("token", self.token),
            ("negative", self.negative),
            ("l1_cap", self.l1_cap),
            ("stale_grace", self.stale_grace),
        ];
        if let Some((name, ttl)) = fields.iter().find(|(_, ttl)| *ttl > MAX_TTL) {
            return Err(format!(
                "ttl `{name}` is {ttl:?}; the most accepted is {MAX_TTL:?}"
            ));
        }
        if !(self.jitter.is_finite() && (0.0..=0.5).contains(&self.jitter)) {
            return Err(format!(
                "jitter is {}; it must be a fraction between 0.0 and 0.5",
                self.jitter
            ));
        }
        if !(self.refresh_ahead.is_finite() && (0.0..=0.5).contains(&self.refresh_ahead)) {
            return Err(format!(
                "refresh_ahead is {}; it must be a fraction between 0.0 and 0.5",
                self.refresh_ahead
            ));
        }
        Ok(())
    }

    /// The refresh-ahead window of a value kept `ttl`: the last [`Ttls::refresh_ahead`]
    /// fraction of it (zero when refresh-ahead is off or the fraction is out of range).
    pub fn refresh_window(&self, ttl: Duration) -> Duration {
        let fraction = self.refresh_ahead;
        if !(fraction.is_finite() && fraction > 0.0 && fraction <= 0.5) {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(ttl.as_secs_f64() * fraction).unwrap_or(Duration::ZERO)
    }

    /// The L1 TTL for an entry whose L2 TTL is `l2_ttl`: never longer than either.
    pub fn l1_ttl(&self, l2_ttl: Duration) -> Duration {
        l2_ttl.min(self.l1_cap)
    }
}

/// `ttl` scaled by a random factor in `1 ± fraction`, then clamped to at least [`MIN_TTL`]
/// (or `ttl`, if smaller) and at most `cap`. A non-zero `ttl` never becomes zero, which
/// backends read as "no expiry" or an error; a zero `ttl` (or cap) stays zero: it means
/// "do not cache".
pub fn jitter(ttl: Duration, fraction: f64, cap: Option<Duration>) -> Duration {
    jitter_with(ttl, fraction, cap, rand::random::<f64>())
}

/// [`jitter`] with the random draw `unit` in `0.0..1.0` given, so it can be tested.
fn jitter_with(ttl: Duration, fraction: f64, cap: Option<Duration>, unit: f64) -> Duration {
    if ttl.is_zero() {
        return ttl;
    }
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 0.5)
    } else {
        0.0
    };
    let factor = 1.0 + fraction * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
    // Not `mul_f64`: it panics when the product does not fit, and TTLs come from config.
    let jittered = Duration::try_from_secs_f64(ttl.as_secs_f64() * factor).unwrap_or(ttl);
    // The floor never exceeds `ttl` itself, so a sub-millisecond TTL is not lengthened.
    let floored = jittered.max(MIN_TTL.min(ttl));
    cap.map_or(floored, |cap| floored.min(cap))
}

#[cfg(test)]
mod tests;
