//! The sidecar's own counters: decisions by front and outcome, exported at scrape time as
//! `authcache_server_decisions_total{via, outcome}` (recording stays off the request path,
//! as the facade's `authcache::metrics` does). A fixed grid of atomics: one relaxed
//! increment per decision, nothing shared to lock.

use std::sync::atomic::{AtomicU64, Ordering};

/// The front a question came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `/auth` (nginx, Caddy, Traefik, Envoy HTTP).
    Http,
    /// Envoy's gRPC `Check`.
    Grpc,
}

impl Via {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Grpc => "grpc",
        }
    }
}

/// Every outcome label, in counting order (`allowed`, then each denial's).
pub(crate) const OUTCOMES: [&str; 7] = [
    "allowed",
    "missing_token",
    "invalid_token",
    "insufficient_scope",
    "disabled",
    "unavailable",
    "misconfigured",
];

/// Decisions counted by `(via, outcome)`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    counts: [[AtomicU64; OUTCOMES.len()]; 2],
}

impl Counters {
    pub(crate) fn count(&self, via: Via, outcome: &'static str) {
        let row = &self.counts[via as usize];
        if let Some(at) = OUTCOMES.iter().position(|known| *known == outcome) {
            row[at].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many decisions of `via` had `outcome`.
    pub(crate) fn get(&self, via: Via, outcome: &str) -> u64 {
        OUTCOMES
            .iter()
            .position(|known| *known == outcome)
            .map_or(0, |at| {
                self.counts[via as usize][at].load(Ordering::Relaxed)
            })
    }

    /// Records the counts into the current `metrics` recorder.
    pub(crate) fn record(&self) {
        for via in [Via::Http, Via::Grpc] {
            for outcome in OUTCOMES {
                metrics::counter!(
                    "authcache_server_decisions_total",
                    "via" => via.label(),
                    "outcome" => outcome
                )
                .absolute(self.get(via, outcome));
            }
        }
    }
}
