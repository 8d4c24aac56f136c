//! A stream of invalidations published while the bus drill cuts the subscribers: one
//! instance invalidates users in a loop, paced, until stopped, counting what it published
//! and what it could not.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authcache::AuthService;
use authcache_tests::process::eventually;
use tokio::task::JoinHandle;

/// One invalidation every 2 ms: hundreds a second, a steady stream of bus messages
/// without flooding a shared 2-core machine.
const PACE: Duration = Duration::from_millis(2);

/// Bound on the churn reaching a count: an invalidation is one round trip to a live Redis.
const CHURN_BOUND: Duration = Duration::from_secs(60);

struct Shared {
    stop: AtomicBool,
    published: AtomicU64,
    errors: Mutex<Vec<String>>,
}

/// A running invalidation loop; dropping it aborts the loop.
pub(crate) struct Churn {
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

impl Churn {
    /// Starts invalidating `ids` on `auth`, round robin.
    pub(crate) fn start(auth: AuthService, ids: Vec<String>) -> Self {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            published: AtomicU64::new(0),
            errors: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(Self::run(auth, ids, Arc::clone(&shared)));
        Self {
            shared,
            task: Some(task),
        }
    }

    async fn run(auth: AuthService, ids: Vec<String>, shared: Arc<Shared>) {
        let mut pace = tokio::time::interval(PACE);
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for id in ids.iter().cycle() {
            if shared.stop.load(Relaxed) {
                return;
            }
            pace.tick().await;
            if let Err(e) = auth.invalidate_user(id).await {
                shared.errors.lock().unwrap().push(format!("{id}: {e}"));
            } else {
                shared.published.fetch_add(1, Relaxed);
            }
        }
    }

    /// Waits (bounded) until `more` invalidations beyond the present count went out.
    pub(crate) async fn run_for(&self, more: u64) {
        let target = self.shared.published.load(Relaxed) + more;
        eventually(
            CHURN_BOUND,
            &format!("{target} invalidations published"),
            || async move { self.shared.published.load(Relaxed) >= target },
        )
        .await;
    }

    /// Stops the loop; returns how many invalidations were published and the errors.
    pub(crate) async fn stop(mut self) -> (u64, Vec<String>) {
        self.shared.stop.store(true, Relaxed);
        if let Some(task) = self.task.take() {
            tokio::time::timeout(CHURN_BOUND, task)
                .await
                .unwrap_or_else(|_| panic!("the churn task still runs {CHURN_BOUND:?} after stop"))
                .unwrap_or_else(|e| panic!("the churn task failed: {e}"));
        }
        let errors = self.shared.errors.lock().unwrap().clone();
        (self.shared.published.load(Relaxed), errors)
    }
}

impl Drop for Churn {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
