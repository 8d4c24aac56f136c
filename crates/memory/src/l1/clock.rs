//! The clock a [`MemoryL1`](super::MemoryL1) checks its deadlines on: the kernel's coarse
//! monotonic clock where there is one (Linux, Android, FreeBSD), else `std`'s `Instant`.
//!
//! Why coarse: every hit reads the clock once, and on a virtual machine a precise
//! `clock_gettime(CLOCK_MONOTONIC)` costs about 30 ns — more than the map lookup it guards
//! (`cargo xtask bench core_l1_hit`). `CLOCK_MONOTONIC_COARSE` is the same clock as of the
//! last timer tick, read from the vDSO in about 5 ns. It is behind the precise clock by less
//! than its resolution (one tick: 4 ms at `HZ=250`), so a deadline is set that much early:
//! an entry is never served past its TTL, and may end up to one tick before it. Nothing
//! cached in an L1 is worth a tick more: the validation cache already ends entries 5 s
//! before the token's `exp` (`authcache_jwt::EXP_SKEW`).

use std::time::Duration;

/// A reading of a [`Clock`]: how far it had run from its zero. Readings of one clock compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Moment(Duration);

/// Where a `MemoryL1` reads the time. Outside unit tests there is one variant, so the match
/// costs nothing; unit tests move a manual clock instead of sleeping.
pub(super) enum Clock {
    /// The system's monotonic clock, coarse where the platform has a coarse one.
    System {
        /// How far a reading may be behind the precise clock: every deadline is set this
        /// much early.
        resolution: Duration,
    },
    #[cfg(test)]
    Manual(std::sync::Arc<ManualClock>),
}

impl Clock {
    pub(super) fn system() -> Self {
        Self::System {
            resolution: system::resolution(),
        }
    }

    pub(super) fn now(&self) -> Moment {
        match self {
            Self::System { .. } => Moment(system::now()),
            #[cfg(test)]
            Self::Manual(clock) => clock.now(),
        }
    }

    /// When an entry stored now for `ttl` must stop being served: `Some(None)` never (the
    /// deadline is beyond what a reading can hold), `None` at once (`ttl` is within the
    /// clock's resolution, too short to keep).
    pub(super) fn deadline(&self, ttl: Duration) -> Option<Option<Moment>> {
        let resolution = match self {
            Self::System { resolution } => *resolution,
            #[cfg(test)]
            Self::Manual(_) => Duration::ZERO,
        };
        let kept = ttl.checked_sub(resolution).filter(|kept| !kept.is_zero())?;
        Some(self.now().0.checked_add(kept).map(Moment))
    }
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
mod system {
    //! `CLOCK_MONOTONIC_COARSE`, through rustix (a vDSO call on Linux, no `unsafe` here).

    use std::time::Duration;

    use rustix::time::{ClockId, Timespec, clock_getres, clock_gettime};

    pub(super) fn now() -> Duration {
        duration(clock_gettime(ClockId::MonotonicCoarse))
    }

    pub(super) fn resolution() -> Duration {
        duration(clock_getres(ClockId::MonotonicCoarse))
    }

    /// The kernel never hands out a negative or unnormalised timespec for these clocks; a
    /// malformed one reads as zero rather than panicking.
    fn duration(at: Timespec) -> Duration {
        let secs = u64::try_from(at.tv_sec).unwrap_or(0);
        let nanos = u32::try_from(at.tv_nsec).unwrap_or(0).min(999_999_999);
        Duration::new(secs, nanos)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
mod system {
    //! `std::time::Instant`, measured from the first reading in this process.

    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    static ZERO: OnceLock<Instant> = OnceLock::new();

    pub(super) fn now() -> Duration {
        ZERO.get_or_init(Instant::now).elapsed()
    }

    /// `Instant` is the precise clock itself.
    pub(super) fn resolution() -> Duration {
        Duration::ZERO
    }
}

/// A clock that moves only when told to.
#[cfg(test)]
pub(super) struct ManualClock(std::sync::Mutex<Duration>);

#[cfg(test)]
impl ManualClock {
    pub(super) fn new() -> Self {
        Self(std::sync::Mutex::new(Duration::from_secs(1)))
    }

    pub(super) fn now(&self) -> Moment {
        Moment(*self.0.lock().unwrap())
    }

    pub(super) fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}
