//! The three kinds of revocation mark one service keeps — revocations (logouts), user
//! cutoffs (`logout_all`) and issuer cutoffs (`revoke_issued_before`) — behind one handle.
//! The protocol of each is in [`crate::tokens`].

use std::sync::Arc;
use std::time::Duration;

use authcache_core::{CacheError, KeyKind, Version};

use crate::stats::Stats;
use crate::tokens::{Lookup, Marks};

/// Revocations, user cutoffs and issuer cutoffs.
#[derive(Debug)]
pub(crate) struct MarkTables {
    revocations: Arc<Marks>,
    cutoffs: Arc<Marks>,
    /// Keyed by the issuer's [`cache_id`](crate::cache_id::cache_id).
    issuer_cutoffs: Arc<Marks>,
}

impl MarkTables {
    /// The tables `table` makes for [`KeyKind::Revoked`], [`KeyKind::Cutoff`] and
    /// [`KeyKind::IssuerCutoff`].
    pub(crate) fn new(table: impl Fn(KeyKind) -> Marks) -> Self {
        Self {
            revocations: Arc::new(table(KeyKind::Revoked)),
            cutoffs: Arc::new(table(KeyKind::Cutoff)),
            issuer_cutoffs: Arc::new(table(KeyKind::IssuerCutoff)),
        }
    }

    /// The revocation mark of a token's revocation id.
    pub(crate) async fn revoked(&self, revocation_id: &str) -> Lookup {
        self.revocations.lookup(revocation_id).await
    }

    /// The `logout_all` cutoff of a user.
    pub(crate) async fn cutoff(&self, user_id: &str) -> Lookup {
        self.cutoffs.lookup(user_id).await
    }

    /// The cutoff of an issuer (`issuer_id`: its cache id).
    pub(crate) async fn issuer_cutoff(&self, issuer_id: &str) -> Lookup {
        self.issuer_cutoffs.lookup(issuer_id).await
    }

    /// Marks a revocation id revoked until `exp`, kept `ttl` (see [`Marks::put`]).
    pub(crate) async fn revoke(
        &self,
        revocation_id: &str,
        exp: u64,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        self.revocations.put(revocation_id, exp, ttl).await
    }

    /// Cuts off a user's tokens issued up to `at` (see [`crate::cutoff`]), kept `ttl`.
    pub(crate) async fn cut_off(
        &self,
        user_id: &str,
        at: u64,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        self.cutoffs.put(user_id, at, ttl).await
    }

    /// Cuts off an issuer's tokens issued before `before` (unix seconds), kept `ttl`.
    pub(crate) async fn cut_off_issuer(
        &self,
        issuer_id: &str,
        before: u64,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        self.issuer_cutoffs.put(issuer_id, before, ttl).await
    }

    /// The memos' epochs, for a warm answer's stamp.
    pub(super) fn epochs(&self) -> [Version; 3] {
        self.all().map(|marks| marks.epoch())
    }

    /// Another instance marked `id` of `kind`: forget what the memo says about it.
    /// Whether `kind` is a kind of mark.
    pub(super) fn forget(&self, kind: KeyKind, id: &str) -> bool {
        let marks = match kind {
            KeyKind::Revoked => &self.revocations,
            KeyKind::Cutoff => &self.cutoffs,
            KeyKind::IssuerCutoff => &self.issuer_cutoffs,
            _ => return false,
        };
        marks.evict_memo(id);
        true
    }

    /// The bus reconnected: the memos may be stale, and the shared cache may have lost
    /// what was written here (see [`Marks::reassert`]).
    pub(super) fn on_resubscribed(&self) {
        for marks in self.all() {
            marks.clear_memo();
            marks.reassert();
        }
    }

    /// Retries the pending marks for as long as the tables live.
    pub(super) fn spawn_retries(&self) {
        crate::tokens::spawn_retries(self.all().into_iter().map(Arc::downgrade).collect());
    }

    /// The marks' part of [`Stats`]; the rest is left at its default.
    pub(super) fn stats(&self) -> Stats {
        Stats {
            revocations: self.revocations.stats(),
            cutoffs: self.cutoffs.stats(),
            issuer_cutoffs: self.issuer_cutoffs.stats(),
            pending_revocations: self.all().iter().map(|marks| marks.pending()).sum(),
            held_marks: self.all().iter().map(|marks| marks.held()).sum(),
            ..Stats::default()
        }
    }

    fn all(&self) -> [&Arc<Marks>; 3] {
        [&self.revocations, &self.cutoffs, &self.issuer_cutoffs]
    }
}
