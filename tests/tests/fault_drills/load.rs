//! The drills' load: a fixed number of tasks, each authenticating fresh tokens of warm and
//! cold users back to back until told to stop, every outcome and latency tallied in the
//! phase (before, during, after the fault) the request ended in. The load never ends on a
//! timer: a drill moves it from phase to phase and stops it once each phase has its count
//! of requests.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authcache::{AuthError, AuthService};
use authcache_tests::process::eventually;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::population::{Population, fresh_bearer};

/// Concurrent request loops.
pub(crate) const TASKS: usize = 16;

/// One request in four is for a cold user.
const COLD_EVERY: u64 = 4;

/// Bound on a phase reaching its count of requests, and on the tasks ending once stopped:
/// each request is bounded by the L2 timeout or the repository timeout, so this is only
/// ever reached when requests stopped completing.
const LOAD_BOUND: Duration = Duration::from_secs(60);

/// Unexpected errors kept verbatim for the failure message.
const ERRORS_KEPT: usize = 10;

/// Where the drill stands relative to its fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Before,
    During,
    After,
}

impl Phase {
    pub(crate) const ALL: [Self; 3] = [Self::Before, Self::During, Self::After];

    fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Before => "before",
            Self::During => "during",
            Self::After => "after",
        }
    }
}

/// Which errors a drill expects from parts that cannot serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tolerance {
    /// None: every request must be served.
    EveryUserServed,
    /// From the fault on, a cold user may get `AuthError::Unavailable` (503): the
    /// repository is down and nothing cached can answer for them. Warm users must be
    /// served, and so must everyone before the fault.
    ColdMayBeUnavailable,
}

/// The figures of one phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PhaseFigures {
    pub(crate) requests: u64,
    pub(crate) cold: u64,
    /// Requests that got an error the drill does not tolerate.
    pub(crate) failures: u64,
    /// Tolerated 503s (cold users while the repository was down).
    pub(crate) unavailable: u64,
    pub(crate) max_latency: Duration,
}

#[derive(Debug, Default)]
struct Tally {
    requests: AtomicU64,
    cold: AtomicU64,
    failures: AtomicU64,
    unavailable: AtomicU64,
    max_latency_us: AtomicU64,
}

impl Tally {
    fn figures(&self) -> PhaseFigures {
        PhaseFigures {
            requests: self.requests.load(Relaxed),
            cold: self.cold.load(Relaxed),
            failures: self.failures.load(Relaxed),
            unavailable: self.unavailable.load(Relaxed),
            max_latency: Duration::from_micros(self.max_latency_us.load(Relaxed)),
        }
    }
}

/// What the load saw, once stopped.
#[derive(Debug)]
pub(crate) struct LoadOutcome {
    pub(crate) phases: [PhaseFigures; 3],
    /// The first unexpected errors, as `phase user: error`.
    pub(crate) errors: Vec<String>,
    /// Cold users that got a tolerated 503.
    pub(crate) unavailable_users: BTreeSet<String>,
}

impl LoadOutcome {
    pub(crate) fn phase(&self, phase: Phase) -> PhaseFigures {
        self.phases[phase.index()]
    }

    pub(crate) fn total(&self) -> PhaseFigures {
        self.phases
            .iter()
            .fold(PhaseFigures::default(), |sum, p| PhaseFigures {
                requests: sum.requests + p.requests,
                cold: sum.cold + p.cold,
                failures: sum.failures + p.failures,
                unavailable: sum.unavailable + p.unavailable,
                max_latency: sum.max_latency.max(p.max_latency),
            })
    }

    /// Fails the test when any request got an error the drill does not tolerate.
    pub(crate) fn assert_no_failures(&self) {
        let total = self.total();
        assert_eq!(
            total.failures, 0,
            "failed authentications: {:?}; first errors: {:#?}",
            self.phases, self.errors
        );
    }
}

struct Shared {
    targets: Vec<AuthService>,
    population: Arc<Population>,
    tolerance: Tolerance,
    phase: AtomicUsize,
    stop: AtomicBool,
    next: AtomicU64,
    tallies: [Tally; 3],
    errors: Mutex<Vec<String>>,
    unavailable_users: Mutex<BTreeSet<String>>,
}

impl Shared {
    fn phase(&self) -> Phase {
        Phase::ALL[self.phase.load(Relaxed)]
    }

    async fn run(&self) {
        while !self.stop.load(Relaxed) {
            let n = self.next.fetch_add(1, Relaxed);
            let (id, cold) = self.population.pick(n, COLD_EVERY);
            let auth = &self.targets[usize::try_from(n / COLD_EVERY).unwrap() % self.targets.len()];
            let bearer = fresh_bearer(id);
            let started = Instant::now();
            let result = auth.authenticate(&bearer).await;
            // Counted in the phase it ends in: a request the fault caught in flight
            // belongs to the fault.
            self.record(self.phase(), id, cold, started.elapsed(), result.err());
            // A warm request may never wait on I/O (L1 hits, breaker open): let the
            // drill's own task and the others run.
            tokio::task::yield_now().await;
        }
    }

    fn record(
        &self,
        phase: Phase,
        id: &str,
        cold: bool,
        latency: Duration,
        error: Option<AuthError>,
    ) {
        let tally = &self.tallies[phase.index()];
        tally.requests.fetch_add(1, Relaxed);
        tally.cold.fetch_add(u64::from(cold), Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        tally.max_latency_us.fetch_max(micros, Relaxed);
        let Some(error) = error else { return };
        if self.tolerated(phase, cold, &error) {
            tally.unavailable.fetch_add(1, Relaxed);
            self.unavailable_users.lock().unwrap().insert(id.to_owned());
            return;
        }
        tally.failures.fetch_add(1, Relaxed);
        let mut errors = self.errors.lock().unwrap();
        if errors.len() < ERRORS_KEPT {
            errors.push(format!("{} {id}: {error}", phase.name()));
        }
    }

    fn tolerated(&self, phase: Phase, cold: bool, error: &AuthError) -> bool {
        self.tolerance == Tolerance::ColdMayBeUnavailable
            && phase != Phase::Before
            && cold
            && matches!(error, AuthError::Unavailable { .. })
            && error.status_code() == 503
    }
}

/// A running load; dropping it (a drill that panicked) aborts its tasks.
pub(crate) struct Load {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts [`TASKS`] loops spreading requests over `targets`, in phase `Before`.
    pub(crate) fn start(
        targets: Vec<AuthService>,
        population: &Arc<Population>,
        tolerance: Tolerance,
    ) -> Self {
        let shared = Arc::new(Shared {
            targets,
            population: Arc::clone(population),
            tolerance,
            phase: AtomicUsize::new(Phase::Before.index()),
            stop: AtomicBool::new(false),
            next: AtomicU64::new(0),
            tallies: Default::default(),
            errors: Mutex::new(Vec::new()),
            unavailable_users: Mutex::new(BTreeSet::new()),
        });
        let tasks = (0..TASKS)
            .map(|_| {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move { shared.run().await })
            })
            .collect();
        Self { shared, tasks }
    }

    /// Requests ending from now on count for `phase`: enter `During` before injecting
    /// the fault, `After` once the part is back.
    pub(crate) fn enter(&self, phase: Phase) {
        self.shared.phase.store(phase.index(), Relaxed);
    }

    /// The figures of `phase` so far.
    pub(crate) fn figures(&self, phase: Phase) -> PhaseFigures {
        self.shared.tallies[phase.index()].figures()
    }

    /// Waits (bounded) until `phase` has completed `at_least` requests.
    pub(crate) async fn run_until(&self, phase: Phase, at_least: u64) {
        eventually(
            LOAD_BOUND,
            &format!("{at_least} requests {} the fault", phase.name()),
            || async move { self.figures(phase).requests >= at_least },
        )
        .await;
    }

    /// Waits (bounded) until `phase` has completed `more` requests beyond those so far.
    pub(crate) async fn run_for(&self, phase: Phase, more: u64) {
        self.run_until(phase, self.figures(phase).requests + more)
            .await;
    }

    /// Stops every task (each ends after its current request) and returns the figures.
    pub(crate) async fn stop(mut self) -> LoadOutcome {
        self.shared.stop.store(true, Relaxed);
        let tasks = std::mem::take(&mut self.tasks);
        let joined = tokio::time::timeout(LOAD_BOUND, futures::future::join_all(tasks))
            .await
            .unwrap_or_else(|_| panic!("load tasks still running {LOAD_BOUND:?} after stop"));
        for task in joined {
            task.unwrap_or_else(|e| panic!("a load task failed: {e}"));
        }
        LoadOutcome {
            phases: Phase::ALL.map(|phase| self.figures(phase)),
            errors: self.shared.errors.lock().unwrap().clone(),
            unavailable_users: self.shared.unavailable_users.lock().unwrap().clone(),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.shared.stop.store(true, Relaxed);
        for task in &self.tasks {
            task.abort();
        }
    }
}
