//! Unit tests of `judge`.

use super::*;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use authcache::Claims;

use crate::model::{Token, role_permissions, user_record};

fn token(iat: u64) -> Arc<Token> {
    Arc::new(Token {
        bearer: String::new(),
        user: 0,
        iat,
        jti: 0,
        logout_started: AtomicBool::new(false),
        revoked: AtomicBool::new(false),
    })
}

fn role(role: usize, version: u64, confirmed: Option<Confirmed>) -> RoleBefore {
    RoleBefore {
        role,
        seq: version,
        permissions: Arc::new(role_permissions(role, version)),
        confirmed,
    }
}

fn before(must_refuse: bool, version: u64) -> Before {
    let roles = [Some(1), Some(2)];
    Before {
        at: Instant::now(),
        token: token(100),
        must_refuse,
        seq: version,
        record: Arc::new(user_record(7, version, &roles)),
        confirmed: Some(Confirmed::Seeded),
        roles: [
            Some(role(1, 0, Some(Confirmed::Seeded))),
            Some(role(2, 0, Some(Confirmed::Seeded))),
        ],
    }
}

fn unchanged(before: &Before) -> After {
    After {
        logout_started: false,
        may_refuse_cutoff: false,
        seq: before.seq,
        role_seqs: before.roles.each_ref().map(|r| r.as_ref().map(|r| r.seq)),
    }
}

/// What the service would answer for `user`'s record of `version` and these roles.
fn principal(version: u64, role_versions: [u64; 2]) -> Principal {
    let roles = [Some(1), Some(2)];
    let user = user_record(7, version, &roles);
    let mut permissions: Vec<String> = [(1, role_versions[0]), (2, role_versions[1])]
        .into_iter()
        .flat_map(|(role, version)| role_permissions(role, version))
        .collect();
    permissions.sort_unstable();
    Principal::new(
        Arc::new(user.clone()),
        Arc::new(user.roles.clone()),
        Arc::new(permissions),
        Arc::new(Claims::new("user-7", 200)),
    )
}

fn timeline_with_restart() -> Timeline {
    let timeline = Timeline::new();
    let now = Instant::now();
    let _ = timeline.kill_started.set(now);
    let _ = timeline.kill_done.set(now + Duration::from_millis(10));
    let _ = timeline.restart_done.set(now + Duration::from_secs(2));
    timeline
}

#[test]
fn accepting_a_token_revoked_before_the_request_is_unexpected() {
    let before = before(true, 0);
    let seen = judge(
        &before,
        &unchanged(&before),
        &Ok(principal(0, [0, 0])),
        &Timeline::new(),
    );
    assert_eq!(seen, Seen::AcceptedRevoked);
    assert!(!seen.is_expected());
}

#[test]
fn a_refusal_is_expected_only_when_a_logout_could_explain_it() {
    let before = before(false, 0);
    let mut after = unchanged(&before);
    let refused = Err(AuthError::Revoked);
    assert_eq!(
        judge(&before, &after, &refused, &Timeline::new()),
        Seen::RefusedValid
    );
    after.logout_started = true;
    assert_eq!(
        judge(&before, &after, &refused, &Timeline::new()),
        Seen::RefusedDuringLogout
    );
}

#[test]
fn a_503_from_authenticate_is_unexpected() {
    let before = before(false, 0);
    let result = Err(AuthError::unavailable("repository down"));
    let seen = judge(&before, &unchanged(&before), &result, &Timeline::new());
    assert!(!seen.is_expected());
}

#[test]
fn confirmed_data_must_be_fresh_and_an_unconfirmed_change_may_be_either() {
    let mut before = before(false, 3);
    let timeline = Timeline::new();
    let after = unchanged(&before);
    assert_eq!(
        judge(&before, &after, &Ok(principal(3, [0, 0])), &timeline),
        Seen::Accepted
    );
    assert_eq!(
        judge(&before, &after, &Ok(principal(2, [0, 0])), &timeline),
        Seen::Stale
    );
    assert_eq!(
        judge(&before, &after, &Ok(principal(3, [0, 1])), &timeline),
        Seen::Stale
    );
    before.confirmed = None;
    assert_eq!(
        judge(&before, &after, &Ok(principal(2, [0, 0])), &timeline),
        Seen::AcceptedDuringChange
    );
}

#[test]
fn a_change_beginning_during_the_request_makes_either_answer_expected() {
    let before = before(false, 3);
    let mut after = unchanged(&before);
    after.role_seqs[1] = Some(1);
    let seen = judge(&before, &after, &Ok(principal(3, [0, 1])), &Timeline::new());
    assert_eq!(seen, Seen::AcceptedDuringChange);
}

#[test]
fn only_a_confirmation_sent_to_the_killed_redis_excuses_staleness() {
    let timeline = timeline_with_restart();
    let kill = *timeline.kill_started.get().unwrap();
    let restart = *timeline.restart_done.get().unwrap();
    let confirmed_before_kill = Confirmed::Invalidated {
        started: kill - Duration::from_millis(5),
        done: kill,
    };
    let confirmed_after_restart = Confirmed::Invalidated {
        started: restart,
        done: restart,
    };
    assert!(timeline.exposed(confirmed_before_kill));
    assert!(!timeline.exposed(confirmed_after_restart));
    assert!(!timeline.exposed(Confirmed::Seeded));
    assert!(!Timeline::new().exposed(confirmed_before_kill));

    let mut before = before(false, 3);
    before.confirmed = Some(confirmed_before_kill);
    let stale = Ok(principal(2, [0, 0]));
    assert_eq!(
        judge(&before, &unchanged(&before), &stale, &timeline),
        Seen::StaleAfterRestart
    );
    before.confirmed = Some(confirmed_after_restart);
    assert_eq!(
        judge(&before, &unchanged(&before), &stale, &timeline),
        Seen::Stale
    );
}

#[test]
fn ghosts_must_be_unknown_and_revoked_tokens_refused() {
    assert_eq!(judge_ghost(&Err(AuthError::UnknownUser)), Seen::UnknownUser);
    assert_eq!(judge_ghost(&Ok(principal(0, [0, 0]))), Seen::Error);
    assert_eq!(
        judge_revoked(&Err(AuthError::Revoked)),
        Seen::RefusedRevoked
    );
    assert_eq!(
        judge_revoked(&Ok(principal(0, [0, 0]))),
        Seen::AcceptedRevoked
    );
}
