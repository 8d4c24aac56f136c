//! Where the watcher's resume point is kept: in the shared cache, signed and bound to its
//! key, outside keyspace epochs (a raise must not hide from the next watcher the very
//! point saved after it).

use std::sync::Arc;
use std::time::Duration;

use authcache_core::{Cache, CacheError, EnvelopeCodec, GuardedCache, Key, KeyKind, Keyspace};
use authcache_users::ResumePoint;

use crate::{AuthError, Result};

/// 1 s: a restarted watcher re-invalidates at most about a second of changes (harmless:
/// invalidations are idempotent), and Redis gets at most one checkpoint write a second.
pub(super) const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// 7 days: a watcher down longer than that starts over with a clear (no oplog worth
/// resuming from is kept that long by default).
const CHECKPOINT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The id of the checkpoint's key, of kind [`KeyKind::Checkpoint`].
const CHECKPOINT_ID: &str = "change-feed-checkpoint";

/// Where the watcher's resume point is kept: in the shared cache, in a signed envelope
/// bound to its key (a forged point could make the feed skip changes; an unreadable one
/// is treated as lost).
pub(crate) struct Checkpoints {
    key: Key,
    codec: EnvelopeCodec,
    l2: Arc<GuardedCache>,
}

impl Checkpoints {
    /// The checkpoint of `keyspace`, in `l2`, encoded by `codec`. Its key is that of
    /// epoch 0 whatever the keyspace's epoch, now or later: the point saved after a
    /// clear must be found by the next watcher, which reads the raised epoch.
    ///
    /// # Errors
    /// [`AuthError::Config`] if the key cannot be built (it always can).
    pub(crate) fn new(
        keyspace: &Keyspace,
        codec: &EnvelopeCodec,
        l2: &Arc<GuardedCache>,
    ) -> Result<Self> {
        // A keyspace of its own, with the same prefix, never raised.
        let key = Keyspace::new(keyspace.prefix())
            .and_then(|outside_epochs| outside_epochs.key(KeyKind::Checkpoint, CHECKPOINT_ID))
            .map_err(|e| AuthError::Config(format!("watcher checkpoint key: {e}")))?;
        Ok(Self {
            key,
            codec: codec.clone(),
            l2: Arc::clone(l2),
        })
    }

    pub(super) async fn load(&self) -> std::result::Result<Option<ResumePoint>, CacheError> {
        let Some(entry) = self.l2.get(&self.key).await? else {
            return Ok(None);
        };
        match self.codec.decode::<Vec<u8>>(&self.key, &entry) {
            Ok(bytes) => Ok(Some(ResumePoint::from_bytes(bytes))),
            Err(error) => {
                tracing::warn!(%error, "unreadable change-feed checkpoint (another signing key, or written by someone else): starting over");
                Ok(None)
            }
        }
    }

    pub(super) async fn save(&self, point: &ResumePoint) -> std::result::Result<(), CacheError> {
        let entry = self
            .codec
            .encode(&self.key, point.as_bytes())
            .map_err(|e| CacheError::Codec(e.to_string()))?;
        self.l2.set(&self.key, entry, CHECKPOINT_TTL).await
    }
}
