//! The run's one seed, and the random streams derived from it.
//!
//! Every random choice the soak makes — which user a task authenticates, whether it presents
//! an unknown user's token or re-checks a revoked one, which change the mutator makes and to
//! whom — is drawn from a stream of its own, derived from the seed and the stream's index.
//! Nothing else in the soak draws a random number.
//!
//! `--seed N` replays the *workload*: each task and the mutator make the same sequence of
//! choices as in the run that printed N. It does not replay the *run*: how the tasks
//! interleave, how many requests each makes before the end, which calls Redis times out and
//! where the restart falls among the requests are thread scheduling and timing, and differ
//! from run to run; and a choice among what exists at that moment (which revoked token to
//! re-check) lands on whatever the interleaving made exist. A failure found with a seed is
//! likelier to recur with it, not certain to.

use std::fmt;

use rand::SeedableRng;
use rand::rngs::SmallRng;

/// The seed every random stream of one run derives from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seed(pub(crate) u64);

/// Who draws from a stream: each has its own, so one's draws never shift another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Mutator,
    /// The authenticating task of this index.
    Worker(usize),
}

impl Seed {
    /// A seed no earlier run chose (from the operating system's generator).
    pub(crate) fn fresh() -> Self {
        Self(rand::random())
    }

    /// The generator of `stream`: the same for the same seed, whatever else the run does.
    pub(crate) fn rng(self, stream: Stream) -> SmallRng {
        let index = match stream {
            Stream::Mutator => 0,
            Stream::Worker(task) => (task as u64).wrapping_add(1),
        };
        SmallRng::seed_from_u64(self.0 ^ mix(index))
    }
}

impl fmt::Display for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// SplitMix64's finaliser. A bijection, so two streams of one seed never start from the same
/// state; and neighbouring indexes map far apart, so stream `i` of seed `s` is not stream
/// `i + 1` of seed `s ^ 1`.
fn mix(index: u64) -> u64 {
    let mut z = index.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;
