//! Why a request was refused, told to the operator and never to the client.
//!
//! The client learns the class of a refusal only (the status of [`AuthError`], RFC 6750's
//! `invalid_token`): an expired, a revoked and a forged token look alike to it. The
//! operator gets the reason, twice: one `debug` event per refusal (target
//! `authcache::refusal`, fields `reason`, `user` once the token verified, and `token`, the
//! first 8 hex characters of [`authcache_jwt::fingerprint`]) and a counter per reason
//! ([`RefusalStats`], exported as `authcache_refusals_total{reason}`). Never the token, a
//! claim payload or a key.

use std::sync::Arc;

use authcache_jwt::{Claims, TokenError};

use crate::AuthError;

/// Why [`AuthService::authenticate`](crate::AuthService::authenticate) refused a token:
/// one reason per [`TokenError`] variant and per kind of [`AuthError`], with the three
/// kinds of revocation that [`AuthError::Revoked`] does not tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Malformed,
    TooLarge,
    UnsupportedAlgorithm,
    DisallowedAlgorithm,
    UnknownKid,
    MissingKid,
    BadSignature,
    Expired,
    NotYetValid,
    LifetimeTooLong,
    WrongIssuer,
    WrongAudience,
    MissingClaim,
    InvalidClaim,
    InvalidKey,
    KeySetUnavailable,
    RedirectRefused,
    /// A [`TokenError`] variant newer than this list.
    InvalidToken,
    /// Logged out ([`AuthService::logout`](crate::AuthService::logout)).
    Revoked,
    /// Issued up to its user's "log out everywhere" cutoff
    /// ([`AuthService::logout_all`](crate::AuthService::logout_all)).
    CutOff,
    /// Issued before its issuer's cutoff
    /// ([`AuthService::revoke_issued_before`](crate::AuthService::revoke_issued_before)).
    IssuerCutOff,
    UnknownUser,
    Disabled,
    Unavailable,
    /// [`AuthError::Config`]: never returned by `authenticate`, named for completeness.
    Configuration,
}

/// How many reasons [`Refusal`] has.
const REASONS: usize = Refusal::ALL.len();

impl Refusal {
    /// Every reason, in the order [`RefusalStats`] lists them.
    const ALL: [Self; 25] = [
        Self::Malformed,
        Self::TooLarge,
        Self::UnsupportedAlgorithm,
        Self::DisallowedAlgorithm,
        Self::UnknownKid,
        Self::MissingKid,
        Self::BadSignature,
        Self::Expired,
        Self::NotYetValid,
        Self::LifetimeTooLong,
        Self::WrongIssuer,
        Self::WrongAudience,
        Self::MissingClaim,
        Self::InvalidClaim,
        Self::InvalidKey,
        Self::KeySetUnavailable,
        Self::RedirectRefused,
        Self::InvalidToken,
        Self::Revoked,
        Self::CutOff,
        Self::IssuerCutOff,
        Self::UnknownUser,
        Self::Disabled,
        Self::Unavailable,
        Self::Configuration,
    ];

    /// The reason an error names by itself; the kind of a revocation is not in the error
    /// (see [`Seen::revocation`]), so [`AuthError::Revoked`] reads as a logout.
    pub(crate) fn of(error: &AuthError) -> Self {
        match error {
            AuthError::Token(error) => Self::of_token(error),
            AuthError::Revoked => Self::Revoked,
            AuthError::UnknownUser => Self::UnknownUser,
            AuthError::Disabled => Self::Disabled,
            AuthError::Unavailable { .. } => Self::Unavailable,
            AuthError::Config(_) => Self::Configuration,
        }
    }

    fn of_token(error: &TokenError) -> Self {
        match error {
            TokenError::Malformed(_) => Self::Malformed,
            TokenError::TooLarge { .. } => Self::TooLarge,
            TokenError::UnsupportedAlgorithm(_) => Self::UnsupportedAlgorithm,
            TokenError::DisallowedAlgorithm(_) => Self::DisallowedAlgorithm,
            TokenError::UnknownKeyId(_) => Self::UnknownKid,
            TokenError::MissingKeyId => Self::MissingKid,
            TokenError::BadSignature => Self::BadSignature,
            TokenError::Expired => Self::Expired,
            TokenError::NotYetValid => Self::NotYetValid,
            TokenError::LifetimeTooLong { .. } => Self::LifetimeTooLong,
            TokenError::WrongIssuer => Self::WrongIssuer,
            TokenError::WrongAudience => Self::WrongAudience,
            TokenError::MissingClaim(_) => Self::MissingClaim,
            TokenError::InvalidClaim { .. } => Self::InvalidClaim,
            TokenError::InvalidKey(_) => Self::InvalidKey,
            TokenError::KeySetUnavailable(_) => Self::KeySetUnavailable,
            TokenError::RedirectRefused { .. } => Self::RedirectRefused,
            _ => Self::InvalidToken,
        }
    }

    /// The stable snake_case name of the `reason` field and label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::DisallowedAlgorithm => "disallowed_algorithm",
            Self::UnknownKid => "unknown_kid",
            Self::MissingKid => "missing_kid",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::LifetimeTooLong => "lifetime_too_long",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim => "missing_claim",
            Self::InvalidClaim => "invalid_claim",
            Self::InvalidKey => "invalid_key",
            Self::KeySetUnavailable => "key_set_unavailable",
            Self::RedirectRefused => "redirect_refused",
            Self::InvalidToken => "invalid_token",
            Self::Revoked => "revoked",
            Self::CutOff => "cut_off",
            Self::IssuerCutOff => "issuer_cut_off",
            Self::UnknownUser => "unknown_user",
            Self::Disabled => "disabled",
            Self::Unavailable => "unavailable",
            Self::Configuration => "configuration",
        }
    }

    /// Its place in [`Refusal::ALL`] (the variants are declared in that order).
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// What `authenticate` learnt on the way to a refusal, for the operator's event: the
/// verified claims (their `sub` only is told), and which revocation refused the token.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub(crate) claims: Option<Arc<Claims>>,
    pub(crate) revocation: Option<Refusal>,
}

impl Seen {
    /// The reason of `error`, with the kind of revocation when one refused the token.
    pub(crate) fn reason(&self, error: &AuthError) -> Refusal {
        match (error, self.revocation) {
            (AuthError::Revoked, Some(revocation)) => revocation,
            _ => Refusal::of(error),
        }
    }

    /// The refusal's `debug` event, in the current span: the reason, the user once the
    /// token verified, and a short fingerprint of the token — but none for a token refused
    /// for its size, which is never hashed.
    pub(crate) fn report(&self, reason: Refusal, bearer: &str) {
        // A flood of forged tokens must not pay a second SHA-256 for a log nobody reads.
        if !tracing::enabled!(target: "authcache::refusal", tracing::Level::DEBUG) {
            return;
        }
        let user = self.claims.as_ref().map(|claims| claims.sub.as_str());
        let token = (reason != Refusal::TooLarge).then(|| short_fingerprint(bearer));
        emit(reason.as_str(), user, token.as_deref());
    }
}

/// The refusal of a [`RequireRole`](crate::tower::RequireRole) layer.
#[cfg(feature = "tower")]
pub(crate) const MISSING_ROLE: &str = "missing_role";
/// The refusal of a [`RequirePermission`](crate::tower::RequirePermission) layer or of
/// [`Authenticated::require_permission`](crate::axum::Authenticated::require_permission).
#[cfg(feature = "tower")]
pub(crate) const MISSING_PERMISSION: &str = "missing_permission";

/// The `debug` event of a refusal for a missing role or permission (`reason` is
/// [`MISSING_ROLE`] or [`MISSING_PERMISSION`]), naming what was required; `bearer` is the
/// request's token, when it is at hand, for its short fingerprint.
#[cfg(feature = "tower")]
pub(crate) fn report_missing(
    reason: &'static str,
    user: &str,
    required: &str,
    bearer: Option<&str>,
) {
    let token = bearer.map(short_fingerprint);
    tracing::debug!(
        target: "authcache::refusal",
        reason,
        user,
        token = token.as_deref(),
        required,
        "request refused"
    );
}

fn emit(reason: &'static str, user: Option<&str>, token: Option<&str>) {
    tracing::debug!(target: "authcache::refusal", reason, user, token, "request refused");
}

/// The first 8 hex characters of the token's SHA-256: enough to tell a client's requests
/// apart in the logs, nothing to replay or to look the token up by.
fn short_fingerprint(bearer: &str) -> String {
    let mut fingerprint = authcache_jwt::fingerprint(bearer);
    fingerprint.truncate(8);
    fingerprint
}

/// Refusals of [`AuthService::authenticate`](crate::AuthService::authenticate) by reason
/// ([`Stats::refusals`](crate::Stats::refusals)); they add up to
/// `rejected_tokens + rejected_users + unavailable`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefusalStats {
    counts: [u64; REASONS],
}

impl RefusalStats {
    /// Refusals for `reason` (`"expired"`, `"bad_signature"`, `"revoked"`, `"cut_off"`,
    /// `"issuer_cut_off"`, `"unknown_user"`, `"disabled"`, `"unavailable"`, … — see
    /// [`RefusalStats::iter`]); 0 for a name that is not a reason.
    pub fn get(&self, reason: &str) -> u64 {
        self.iter()
            .find(|&(name, _)| name == reason)
            .map_or(0, |(_, count)| count)
    }

    /// Every reason with its count, zeros included, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Refusal::ALL
            .iter()
            .zip(self.counts)
            .map(|(reason, count)| (reason.as_str(), count))
    }

    /// Refusals of every reason.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub(crate) fn from_counts(counts: [u64; REASONS]) -> Self {
        Self { counts }
    }
}

/// The live counters behind [`RefusalStats`] (relaxed atomics, as every counter).
pub(crate) type RefusalCounters = [std::sync::atomic::AtomicU64; REASONS];

#[cfg(test)]
mod tests;
