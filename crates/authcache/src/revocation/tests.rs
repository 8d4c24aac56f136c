//! Unit tests of [`Revocation`](super::Revocation): how the writes of a logout are judged.

use super::*;
use authcache_core::KeyError;

#[test]
fn any_refused_write_is_pending_and_an_unkeyable_id_is_no_user() {
    let down = || Err(CacheError::unavailable("redis down"));
    assert_eq!(
        Revocation::of_writes("logout", [Ok(()), Ok(())]),
        Ok(Revocation::Recorded)
    );
    assert_eq!(
        Revocation::of_writes("logout", [Ok(()), down()]),
        Ok(Revocation::Pending)
    );
    assert_eq!(
        Revocation::of_writes(
            "logout",
            [down(), Err(CacheError::InvalidKey(KeyError::Empty))]
        ),
        Err(AuthError::UnknownUser)
    );
    assert!(Revocation::AlreadyInForce.is_shared() && !Revocation::Pending.is_shared());
}
