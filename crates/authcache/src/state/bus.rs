//! What a bus event drops here: another instance changed a key (drop it), the bus
//! reconnected (drop all that may be stale — but never this instance's own revocations),
//! or the keyspace epoch was raised (drop everything read under the old keys).

use authcache_core::{BusEvent, KeyKind};
use authcache_users::UserRecord;

use super::State;

#[cfg_attr(not(feature = "redis"), allow(dead_code))]
impl<U: UserRecord> State<U> {
    /// Applies one bus event (see the module docs).
    pub(crate) fn on_bus_event(&self, event: BusEvent) {
        match event {
            BusEvent::Invalidated(key) => self.evict(&key),
            BusEvent::Resubscribed => {
                self.users.clear_local();
                self.role_perms.clear_local();
                self.marks.on_resubscribed();
            }
            // Everything held here was read under keys of an older epoch (see
            // `crate::epoch`); marks live outside epochs and stay.
            BusEvent::EpochRaised => self.on_epoch_raised(),
            _ => {}
        }
    }

    /// The keyspace epoch rose: drops every user and role entry held here.
    pub(crate) fn on_epoch_raised(&self) {
        self.users.clear_local();
        self.role_perms.clear_local();
    }

    fn evict(&self, key: &str) {
        // At any epoch: an invalidation names an id that changed, and while an instance
        // has yet to adopt a raise (its own, or the sender's) dropping the id here too
        // costs one reload and can only help.
        let parsed = self.keyspace.parse_any_epoch(key);
        match parsed.map(|(kind, id, _)| (kind, id)) {
            Some((KeyKind::User, id)) => self.users.evict_local(id),
            Some((KeyKind::RolePerms, role)) => self.role_perms.evict_local(role),
            Some((KeyKind::Token, id)) => self.validations.remove(id),
            Some((kind, id)) if self.marks.forget(kind, id) => {}
            // Another prefix, another schema version, an older build's kind, or noise.
            _ => tracing::trace!(key, "ignoring invalidation outside this keyspace"),
        }
    }
}
