//! [`CircuitBreaker`]: the state machine every guarded backend shares — closed, open for a
//! doubling cool-down after consecutive failures, then one half-open probe.
//!
//! It knows nothing of what it guards: a wrapper asks [`CircuitBreaker::admit`] before a
//! call, makes the call under [`BreakerConfig::timeout`], and settles the [`BreakerPermit`]
//! with whether the outcome says the backend is healthy. What counts as unhealthy (a
//! timeout, an unreachable server — never a bad key or a corrupt record) is the
//! wrapper's decision.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::{BreakerConfig, BreakerState, BreakerStats};

/// A cool-down far beyond any configuration that makes sense, and still representable.
const MAX_REPRESENTABLE: Duration = Duration::from_secs(365 * 24 * 3600);

#[derive(Debug)]
enum Mode {
    Closed,
    Open { until: Instant },
    HalfOpen,
}

#[derive(Debug)]
struct Machine {
    mode: Mode,
    consecutive_failures: u32,
    cooldown: Duration,
}

impl Machine {
    fn state(&self) -> BreakerState {
        match self.mode {
            Mode::Closed => BreakerState::Closed,
            Mode::Open { .. } => BreakerState::Open,
            Mode::HalfOpen => BreakerState::HalfOpen,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    failures: AtomicU64,
    timeouts: AtomicU64,
    rejected: AtomicU64,
    opened: AtomicU64,
}

/// A circuit breaker: after [`BreakerConfig::failure_threshold`] consecutive failures it
/// opens and refuses every call for a cool-down, which doubles (up to
/// [`BreakerConfig::max_cooldown`]) each time the single half-open probe fails; a success
/// closes it and resets the cool-down.
///
/// ```
/// use authcache_core::{BreakerConfig, BreakerState, CircuitBreaker};
///
/// let breaker = CircuitBreaker::new("example", BreakerConfig { failure_threshold: 2, ..BreakerConfig::default() });
/// for _ in 0..2 {
///     let permit = breaker.admit().expect("closed: admitted");
///     permit.settle(false); // the call failed for want of a healthy backend
/// }
/// assert_eq!(breaker.state(), BreakerState::Open);
/// assert!(breaker.admit().is_none(), "refused at once while open");
/// assert_eq!(breaker.stats().rejected, 1);
/// ```
#[derive(Debug)]
pub struct CircuitBreaker {
    /// What it guards, for its log lines (`L2`, `repository`).
    name: &'static str,
    config: BreakerConfig,
    machine: Mutex<Machine>,
    /// Closed with no failure since the last success (written under the lock): calls to
    /// a healthy backend neither lock to be admitted nor to record success.
    healthy: AtomicBool,
    counters: Counters,
}

impl CircuitBreaker {
    /// A closed breaker with `config`; `name` says what it guards in its log lines.
    pub fn new(name: &'static str, config: BreakerConfig) -> Self {
        let cooldown = config.base_cooldown;
        Self {
            name,
            config,
            machine: Mutex::new(Machine {
                mode: Mode::Closed,
                consecutive_failures: 0,
                cooldown,
            }),
            healthy: AtomicBool::new(true),
            counters: Counters::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.lock().state()
    }

    /// State and counters.
    pub fn stats(&self) -> BreakerStats {
        let (state, consecutive_failures) = {
            let machine = self.lock();
            (machine.state(), machine.consecutive_failures)
        };
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        BreakerStats {
            state,
            consecutive_failures,
            failures: load(&self.counters.failures),
            timeouts: load(&self.counters.timeouts),
            rejected: load(&self.counters.rejected),
            opened: load(&self.counters.opened),
        }
    }

    /// Permission to make one call, or `None` (counted as rejected) while the breaker is
    /// open or its probe is in flight. Once the cool-down has ended, the first caller gets
    /// the probe ([`BreakerPermit::is_probe`]).
    pub fn admit(&self) -> Option<BreakerPermit<'_>> {
        if self.healthy.load(Ordering::Acquire) {
            return Some(BreakerPermit::new(self, false));
        }
        let mut machine = self.lock();
        let probe = match machine.mode {
            Mode::Closed => false,
            Mode::Open { until } if Instant::now() >= until => {
                machine.mode = Mode::HalfOpen;
                true
            }
            Mode::Open { .. } | Mode::HalfOpen => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        Some(BreakerPermit::new(self, probe))
    }

    /// Counts a call that timed out (its failure is recorded by settling its permit).
    pub fn count_timeout(&self) {
        self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Machine> {
        // The state stays consistent under every panic point (plain assignments), so a
        // poisoned lock is still usable.
        self.machine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, success: bool, probe: bool) {
        if success && self.healthy.load(Ordering::Acquire) {
            return; // Already closed, no failures, base cool-down: nothing to reset.
        }
        let mut machine = self.lock();
        self.healthy.store(success, Ordering::Release);
        if success {
            if !matches!(machine.mode, Mode::Closed) {
                tracing::info!(
                    breaker = self.name,
                    "{} circuit breaker closed: it answers again",
                    self.name
                );
            }
            machine.mode = Mode::Closed;
            machine.consecutive_failures = 0;
            machine.cooldown = self.config.base_cooldown;
            return;
        }
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
        machine.consecutive_failures = machine.consecutive_failures.saturating_add(1);
        let threshold = self.config.failure_threshold.max(1);
        if probe {
            machine.cooldown = machine
                .cooldown
                .saturating_mul(2)
                .min(self.config.max_cooldown);
            self.open(&mut machine);
        } else if matches!(machine.mode, Mode::Closed) && machine.consecutive_failures >= threshold
        {
            machine.cooldown = self.config.base_cooldown;
            self.open(&mut machine);
        }
    }

    fn open(&self, machine: &mut Machine) {
        let now = Instant::now();
        machine.mode = Mode::Open {
            // A cool-down too long to represent is as good as forever.
            until: now
                .checked_add(machine.cooldown)
                .unwrap_or(now + MAX_REPRESENTABLE),
        };
        self.counters.opened.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            breaker = self.name,
            cooldown_ms = machine.cooldown.as_millis() as u64,
            failures = machine.consecutive_failures,
            "{} circuit breaker open",
            self.name
        );
    }

    /// A probe abandoned mid-flight (its future dropped) lets the next call probe at once,
    /// instead of leaving the breaker half-open forever.
    fn abandon_probe(&self) {
        let mut machine = self.lock();
        if matches!(machine.mode, Mode::HalfOpen) {
            machine.mode = Mode::Open {
                until: Instant::now(),
            };
        }
    }
}

/// Permission to make one call; records its outcome at most once. Dropped unsettled (the
/// call abandoned), it records nothing — except that an abandoned probe lets the next
/// call probe at once.
#[derive(Debug)]
#[must_use = "a permit records the call's outcome when settled"]
pub struct BreakerPermit<'b> {
    breaker: &'b CircuitBreaker,
    probe: bool,
    settled: bool,
}

impl<'b> BreakerPermit<'b> {
    fn new(breaker: &'b CircuitBreaker, probe: bool) -> Self {
        Self {
            breaker,
            probe,
            settled: false,
        }
    }

    /// Whether this call is the half-open probe: its outcome alone closes the breaker or
    /// opens it again for a doubled cool-down.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// Records the call's outcome: `healthy` is `false` when it failed for want of a
    /// healthy backend (an error that says so, or a timeout).
    pub fn settle(mut self, healthy: bool) {
        self.settled = true;
        self.breaker.record(healthy, self.probe);
    }
}

impl Drop for BreakerPermit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            self.breaker.abandon_probe();
        }
    }
}
