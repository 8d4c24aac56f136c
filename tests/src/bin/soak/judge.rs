//! Judging one answer against the model: expected (and of which kind) or unexpected.

use authcache::{AuthError, Principal, User};

use crate::model::{After, Before, Confirmed, RoleBefore, Timeline};

/// What an authentication saw, judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    Accepted,
    AcceptedDuringChange,
    RefusedRevoked,
    RefusedDuringLogout,
    UnknownUser,
    StaleAfterRestart,
    AcceptedRevoked,
    RefusedValid,
    Stale,
    Error,
}

impl Seen {
    pub(crate) const ALL: [Self; 10] = [
        Self::Accepted,
        Self::AcceptedDuringChange,
        Self::RefusedRevoked,
        Self::RefusedDuringLogout,
        Self::UnknownUser,
        Self::StaleAfterRestart,
        Self::AcceptedRevoked,
        Self::RefusedValid,
        Self::Stale,
        Self::Error,
    ];

    pub(crate) fn is_expected(self) -> bool {
        matches!(
            self,
            Self::Accepted
                | Self::AcceptedDuringChange
                | Self::RefusedRevoked
                | Self::RefusedDuringLogout
                | Self::UnknownUser
                | Self::StaleAfterRestart
        )
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted, with the confirmed record and permissions",
            Self::AcceptedDuringChange => "accepted while a change was not yet confirmed",
            Self::RefusedRevoked => "refused: logged out, or issued before a logout_all",
            Self::RefusedDuringLogout => "refused while a logout or logout_all ran",
            Self::UnknownUser => "unknown user (a token for no user)",
            Self::StaleAfterRestart => {
                "stale: confirmed before the kill, its tombstone lost with Redis' data"
            }
            Self::AcceptedRevoked => "ACCEPTED A REVOKED TOKEN",
            Self::RefusedValid => "refused a token nothing revoked",
            Self::Stale => "stale record or permissions after a confirmed change",
            Self::Error => "error (503, or a wrong kind of refusal)",
        }
    }

    pub(crate) fn index(self) -> usize {
        Self::ALL.iter().position(|&seen| seen == self).unwrap_or(0)
    }
}

/// Judges the answer to a user's current token.
pub(crate) fn judge(
    before: &Before,
    after: &After,
    result: &Result<Principal, AuthError>,
    timeline: &Timeline,
) -> Seen {
    match result {
        Ok(_) if before.must_refuse => Seen::AcceptedRevoked,
        Ok(principal) => judge_data(before, after, principal, timeline),
        Err(AuthError::Revoked) if before.must_refuse => Seen::RefusedRevoked,
        Err(AuthError::Revoked) if after.logout_started || after.may_refuse_cutoff => {
            Seen::RefusedDuringLogout
        }
        Err(AuthError::Revoked) => Seen::RefusedValid,
        Err(_) => Seen::Error,
    }
}

/// Judges the record and permissions of an accepted token: they must be the confirmed ones
/// unless a change was unconfirmed or began while the request ran.
fn judge_data(before: &Before, after: &After, principal: &Principal, timeline: &Timeline) -> Seen {
    let roles_settled =
        before
            .roles
            .iter()
            .zip(after.role_seqs)
            .all(|(role, seq_after)| match role {
                Some(role) => role.confirmed.is_some() && Some(role.seq) == seq_after,
                None => true,
            });
    let Some(confirmed) = before.confirmed else {
        return Seen::AcceptedDuringChange;
    };
    if after.seq != before.seq || !roles_settled {
        return Seen::AcceptedDuringChange;
    }
    if !record_matches(principal, &before.record) {
        return stale(timeline.exposed(confirmed));
    }
    if !permissions_match(&principal.permissions, &before.roles) {
        let exposed = before
            .roles
            .iter()
            .flatten()
            .any(|role| role.confirmed.is_some_and(|c| timeline.exposed(c)));
        return stale(exposed);
    }
    Seen::Accepted
}

pub(crate) fn stale(exposed_by_the_restart: bool) -> Seen {
    if exposed_by_the_restart {
        Seen::StaleAfterRestart
    } else {
        Seen::Stale
    }
}

fn record_matches(principal: &Principal, record: &User) -> bool {
    principal.user.id == record.id
        && principal.user.name == record.name
        && principal.user.roles == record.roles
        && *principal.roles == record.roles
}

/// The permissions must be exactly the union of the roles' lists (which never overlap:
/// each permission names its role).
fn permissions_match(got: &[String], roles: &[Option<RoleBefore>]) -> bool {
    let expected: usize = roles.iter().flatten().map(|r| r.permissions.len()).sum();
    got.len() == expected
        && roles
            .iter()
            .flatten()
            .flat_map(|role| role.permissions.iter())
            .all(|permission| got.binary_search(permission).is_ok())
}

/// A token that was revoked before the request began: refused, or it is a failure.
pub(crate) fn judge_revoked(result: &Result<Principal, AuthError>) -> Seen {
    match result {
        Err(AuthError::Revoked) => Seen::RefusedRevoked,
        Ok(_) => Seen::AcceptedRevoked,
        Err(_) => Seen::Error,
    }
}

pub(crate) fn judge_ghost(result: &Result<Principal, AuthError>) -> Seen {
    match result {
        Err(AuthError::UnknownUser) => Seen::UnknownUser,
        _ => Seen::Error,
    }
}

/// What the model expected of a user's answer, and how long before the request each
/// confirmation returned: the context a stale answer is read in.
pub(crate) fn expectation(before: &Before) -> String {
    let age = |confirmed: Option<Confirmed>| match confirmed {
        Some(Confirmed::Invalidated { done, .. }) => format!(
            "confirmed {:.1?} before the request",
            before.at.saturating_duration_since(done)
        ),
        Some(Confirmed::Seeded) => "seeded".to_owned(),
        None => "unconfirmed".to_owned(),
    };
    let roles: Vec<String> = before
        .roles
        .iter()
        .flatten()
        .map(|role| {
            format!(
                "role-{} {:?} ({})",
                role.role,
                role.permissions,
                age(role.confirmed)
            )
        })
        .collect();
    format!(
        "token iat {}, expected {} {:?} {:?} ({}), {}",
        before.token.iat,
        before.record.id,
        before.record.name,
        before.record.roles,
        age(before.confirmed),
        roles.join(", ")
    )
}

pub(crate) fn describe(what: &str, result: &Result<Principal, AuthError>) -> String {
    match result {
        Ok(principal) => format!(
            "{what}: accepted as {} {:?} roles {:?} permissions {:?}",
            principal.user.id, principal.user.name, principal.roles, principal.permissions
        ),
        Err(error) => format!("{what}: {error}"),
    }
}

#[cfg(test)]
mod tests;
